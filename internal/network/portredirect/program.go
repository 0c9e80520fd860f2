package portredirect

import (
	"golang.org/x/sys/unix"

	. "github.com/berthproject/berth/internal/bpf" // an assembly listing reads better without the prefix
)

// Offsets in struct bpf_sock_addr (include/uapi/linux/bpf.h), the context
// of cgroup sock_addr programs:
//
//	__u32 user_family;  0
//	__u32 user_ip4;     4   network byte order, read and write
//	__u32 user_ip6[4];  8
//	__u32 user_port;    24  network byte order, read and write
//	__u32 family;       28
//	__u32 type;         32
//	__u32 protocol;     36
const (
	offUserIP4  = 4
	offUserPort = 24
	offProtocol = 36
)

// Stack slots (below the frame pointer R10).
const (
	stKey    = -16 // services key, 16 bytes
	stRevVal = -32 // revnat value, 16 bytes
	stRevKey = -40 // revnat key, 8 bytes
)

// ConnectProgram is the BPF_CGROUP_INET4_CONNECT program:
//
//	if ctx.protocol != TCP: allow
//	key = {netns cookie of the socket, ctx.user_ip4, ctx.user_port, TCP}
//	to = services[key]; if none: allow (DNAT, if anything, does the rest)
//	revnat[socket cookie] = {dialed addr, port, to.addr, to.port}
//	ctx.user_ip4, ctx.user_port = to
//	allow
//
// The netns cookie in the key is what keeps the program to the engine's
// namespace: a socket of any other namespace (a container, another test)
// never finds an entry.
func ConnectProgram(services, revnat int) ([]Insn, error) {
	var a Asm
	a.Add(Mov64Reg(R6, R1)) // R6 = ctx
	a.Add(LdxMem(W, R2, R6, offProtocol))
	a.JmpImmTo(unix.BPF_JNE, R2, unix.IPPROTO_TCP, "allow")

	a.Add(Mov64Reg(R1, R6), Call(FuncGetNetNSCookie))
	a.Add(StxMem(DW, R10, R0, stKey))
	a.Add(LdxMem(W, R1, R6, offUserIP4), StxMem(W, R10, R1, stKey+8))
	a.Add(LdxMem(W, R1, R6, offUserPort), StxMem(H, R10, R1, stKey+12))
	a.Add(StMem(B, R10, stKey+14, unix.IPPROTO_TCP), StMem(B, R10, stKey+15, 0))
	a.AddMapFD(R1, services)
	a.Add(Mov64Reg(R2, R10), Alu64Imm(unix.BPF_ADD, R2, stKey), Call(FuncMapLookupElem))
	a.JmpImmTo(unix.BPF_JEQ, R0, 0, "allow")
	a.Add(Mov64Reg(R7, R0)) // R7 = &services[key]

	// What was dialed, then where it goes, into the revnat value; the
	// destination is rewritten on the way.
	a.Add(LdxMem(W, R1, R6, offUserIP4), StxMem(W, R10, R1, stRevVal))
	a.Add(LdxMem(W, R1, R6, offUserPort), StxMem(H, R10, R1, stRevVal+4), StMem(H, R10, stRevVal+6, 0))
	a.Add(LdxMem(W, R1, R7, 0), StxMem(W, R10, R1, stRevVal+8), StxMem(W, R6, R1, offUserIP4))
	a.Add(LdxMem(H, R1, R7, 4), StxMem(H, R10, R1, stRevVal+12), StxMem(W, R6, R1, offUserPort))
	a.Add(StMem(H, R10, stRevVal+14, 0))

	a.Add(Mov64Reg(R1, R6), Call(FuncGetSocketCookie), StxMem(DW, R10, R0, stRevKey))
	a.AddMapFD(R1, revnat)
	a.Add(Mov64Reg(R2, R10), Alu64Imm(unix.BPF_ADD, R2, stRevKey))
	a.Add(Mov64Reg(R3, R10), Alu64Imm(unix.BPF_ADD, R3, stRevVal))
	a.Add(Mov64Imm(R4, 0), Call(FuncMapUpdateElem)) // BPF_ANY; a full LRU map evicts, never fails

	a.Label("allow")
	a.Add(Mov64Imm(R0, 1), ExitInsn())
	return a.Program()
}

// PeerNameProgram is the BPF_CGROUP_INET4_GETPEERNAME program: a socket
// ConnectProgram redirected, still connected where it was sent, reports
// the address it dialed.
//
//	r = revnat[socket cookie]; if none: return
//	if ctx.user_ip4, ctx.user_port != r.to: return
//	ctx.user_ip4, ctx.user_port = r.dialed
func PeerNameProgram(revnat int) ([]Insn, error) {
	var a Asm
	a.Add(Mov64Reg(R6, R1))
	a.Add(Call(FuncGetSocketCookie), StxMem(DW, R10, R0, stRevKey))
	a.AddMapFD(R1, revnat)
	a.Add(Mov64Reg(R2, R10), Alu64Imm(unix.BPF_ADD, R2, stRevKey), Call(FuncMapLookupElem))
	a.JmpImmTo(unix.BPF_JEQ, R0, 0, "out")
	a.Add(LdxMem(W, R1, R6, offUserIP4), LdxMem(W, R2, R0, 8))
	a.JmpRegTo(unix.BPF_JNE, R1, R2, "out")
	a.Add(LdxMem(W, R1, R6, offUserPort), LdxMem(H, R2, R0, 12))
	a.JmpRegTo(unix.BPF_JNE, R1, R2, "out")
	a.Add(LdxMem(W, R1, R0, 0), StxMem(W, R6, R1, offUserIP4))
	a.Add(LdxMem(H, R1, R0, 4), StxMem(W, R6, R1, offUserPort))
	a.Label("out")
	a.Add(Mov64Imm(R0, 1), ExitInsn())
	return a.Program()
}

// The IPv6 programs' context fields and stack slots. user_ip6 is four
// 32-bit words at offsets 8, 12, 16 and 20 (4-byte loads and stores), in
// network byte order as the address's bytes are.
const (
	offUserIP6 = 8

	st6Key    = -32 // services6 key, 28 bytes (-32..-5)
	st6RevVal = -72 // revnat6 value, 40 bytes (-72..-33)
	st6RevKey = -80 // revnat6 key, 8 bytes
)

// Connect6Program is the BPF_CGROUP_INET6_CONNECT program, ConnectProgram
// for IPv6 sockets:
//
//	if ctx.protocol != TCP: allow
//	key = {netns cookie of the socket, ctx.user_ip6, ctx.user_port, TCP}
//	to = services6[key]; if none: allow
//	revnat6[socket cookie] = {dialed addr, port, to.addr, to.port}
//	ctx.user_ip6, ctx.user_port = to
//	allow
//
// to.addr is the container's IPv6 address, or for an IPv4-only container
// its IPv4 address mapped (::ffff:A.B.C.D): tcp_v6_connect hands a mapped
// destination to tcp_v4_connect, so the socket connects over IPv4 to the
// container (unless the socket set IPV6_V6ONLY, which makes connect()
// fail with ENETUNREACH). Cilium's socket load balancer does the same.
func Connect6Program(services6, revnat6 int) ([]Insn, error) {
	var a Asm
	a.Add(Mov64Reg(R6, R1)) // R6 = ctx
	a.Add(LdxMem(W, R2, R6, offProtocol))
	a.JmpImmTo(unix.BPF_JNE, R2, unix.IPPROTO_TCP, "allow")

	a.Add(Mov64Reg(R1, R6), Call(FuncGetNetNSCookie))
	a.Add(StxMem(DW, R10, R0, st6Key))
	for i := int16(0); i < 16; i += 4 {
		a.Add(LdxMem(W, R1, R6, offUserIP6+i), StxMem(W, R10, R1, st6Key+8+i))
	}
	a.Add(LdxMem(W, R1, R6, offUserPort), StxMem(H, R10, R1, st6Key+24))
	a.Add(StMem(B, R10, st6Key+26, unix.IPPROTO_TCP), StMem(B, R10, st6Key+27, 0))
	a.AddMapFD(R1, services6)
	a.Add(Mov64Reg(R2, R10), Alu64Imm(unix.BPF_ADD, R2, st6Key), Call(FuncMapLookupElem))
	a.JmpImmTo(unix.BPF_JEQ, R0, 0, "allow")
	a.Add(Mov64Reg(R7, R0)) // R7 = &services6[key]

	// What was dialed (from the key on the stack), then where it goes; the
	// destination is rewritten on the way.
	for i := int16(0); i < 16; i += 4 {
		a.Add(LdxMem(W, R1, R10, st6Key+8+i), StxMem(W, R10, R1, st6RevVal+i))
	}
	a.Add(LdxMem(H, R1, R10, st6Key+24), StxMem(H, R10, R1, st6RevVal+16), StMem(H, R10, st6RevVal+18, 0))
	for i := int16(0); i < 16; i += 4 {
		a.Add(LdxMem(W, R1, R7, i), StxMem(W, R10, R1, st6RevVal+20+i), StxMem(W, R6, R1, offUserIP6+i))
	}
	a.Add(LdxMem(H, R1, R7, 16), StxMem(H, R10, R1, st6RevVal+36), StxMem(W, R6, R1, offUserPort))
	a.Add(StMem(H, R10, st6RevVal+38, 0))

	a.Add(Mov64Reg(R1, R6), Call(FuncGetSocketCookie), StxMem(DW, R10, R0, st6RevKey))
	a.AddMapFD(R1, revnat6)
	a.Add(Mov64Reg(R2, R10), Alu64Imm(unix.BPF_ADD, R2, st6RevKey))
	a.Add(Mov64Reg(R3, R10), Alu64Imm(unix.BPF_ADD, R3, st6RevVal))
	a.Add(Mov64Imm(R4, 0), Call(FuncMapUpdateElem))

	a.Label("allow")
	a.Add(Mov64Imm(R0, 1), ExitInsn())
	return a.Program()
}

// PeerName6Program is the BPF_CGROUP_INET6_GETPEERNAME program: a socket
// Connect6Program redirected, still connected where it was sent (for a
// mapped destination the kernel reports it mapped, as it was given),
// reports the address it dialed.
//
//	r = revnat6[socket cookie]; if none: return
//	if ctx.user_ip6, ctx.user_port != r.to: return
//	ctx.user_ip6, ctx.user_port = r.dialed
func PeerName6Program(revnat6 int) ([]Insn, error) {
	var a Asm
	a.Add(Mov64Reg(R6, R1))
	a.Add(Call(FuncGetSocketCookie), StxMem(DW, R10, R0, st6RevKey))
	a.AddMapFD(R1, revnat6)
	a.Add(Mov64Reg(R2, R10), Alu64Imm(unix.BPF_ADD, R2, st6RevKey), Call(FuncMapLookupElem))
	a.JmpImmTo(unix.BPF_JEQ, R0, 0, "out")
	for i := int16(0); i < 16; i += 4 {
		a.Add(LdxMem(W, R1, R6, offUserIP6+i), LdxMem(W, R2, R0, 20+i))
		a.JmpRegTo(unix.BPF_JNE, R1, R2, "out")
	}
	a.Add(LdxMem(W, R1, R6, offUserPort), LdxMem(H, R2, R0, 36))
	a.JmpRegTo(unix.BPF_JNE, R1, R2, "out")
	for i := int16(0); i < 16; i += 4 {
		a.Add(LdxMem(W, R1, R0, i), StxMem(W, R6, R1, offUserIP6+i))
	}
	a.Add(LdxMem(H, R1, R0, 16), StxMem(W, R6, R1, offUserPort))
	a.Label("out")
	a.Add(Mov64Imm(R0, 1), ExitInsn())
	return a.Program()
}
