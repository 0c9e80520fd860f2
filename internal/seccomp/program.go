package seccomp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Program is a compiled filter, ready for Load.
type Program struct {
	// Filter is the classic BPF program, 1 to MaxInstructions long.
	Filter []unix.SockFilter
	// Flags are the SECCOMP_FILTER_FLAG_* bits linux.seccomp.flags asked
	// for (TSYNC, LOG, SPEC_ALLOW, WAIT_KILLABLE_RECV). Load adds
	// NEW_LISTENER (and TSYNC_ESRCH next to TSYNC) when Notify is set.
	Flags uint32
	// Notify is set when some rule uses SCMP_ACT_NOTIFY: Load then returns
	// a listener fd for the seccomp agent.
	Notify bool
	// Actions are the distinct SECCOMP_RET_* actions (without their data)
	// the filter can return, sorted; CheckKernel asks the kernel for each.
	Actions []uint32
}

// The binary form, all integers little-endian:
//
//	magic    [8]byte  "BSECCOMP"
//	version  uint32   binaryVersion
//	flags    uint32
//	notify   uint32   0 or 1
//	nactions uint32,  then nactions × uint32
//	ninsns   uint32,  then ninsns × {code uint16, jt uint8, jf uint8, k uint32}
//	sum      [32]byte sha256 of everything before it
//
// The checksum lets Cache tell a torn or damaged entry from a good one.
const (
	binaryMagic   = "BSECCOMP"
	binaryVersion = 1
)

// MarshalBinary encodes p for the container init (or the cache).
func (p *Program) MarshalBinary() ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(binaryMagic)
	le := binary.LittleEndian
	put := func(v uint32) { b.Write(le.AppendUint32(nil, v)) }
	put(binaryVersion)
	put(p.Flags)
	notify := uint32(0)
	if p.Notify {
		notify = 1
	}
	put(notify)
	put(uint32(len(p.Actions)))
	for _, a := range p.Actions {
		put(a)
	}
	put(uint32(len(p.Filter)))
	for _, in := range p.Filter {
		b.Write(le.AppendUint16(nil, in.Code))
		b.WriteByte(in.Jt)
		b.WriteByte(in.Jf)
		put(in.K)
	}
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return b.Bytes(), nil
}

// errCorrupt is wrapped by every UnmarshalBinary error.
var errCorrupt = errors.New("corrupt seccomp program")

// UnmarshalBinary decodes what MarshalBinary produced and checks that the
// result is a well-formed seccomp program.
func (p *Program) UnmarshalBinary(data []byte) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", errCorrupt, fmt.Sprintf(format, a...))
	}
	if len(data) < len(binaryMagic)+sha256.Size || string(data[:len(binaryMagic)]) != binaryMagic {
		return fail("bad magic")
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return fail("checksum mismatch")
	}
	r := body[len(binaryMagic):]
	le := binary.LittleEndian
	u32 := func() (uint32, bool) {
		if len(r) < 4 {
			return 0, false
		}
		v := le.Uint32(r)
		r = r[4:]
		return v, true
	}
	version, ok := u32()
	if !ok || version != binaryVersion {
		return fail("version %d, want %d", version, binaryVersion)
	}
	var q Program
	var notify, n uint32
	if q.Flags, ok = u32(); !ok {
		return fail("short header")
	}
	if notify, ok = u32(); !ok || notify > 1 {
		return fail("bad notify field")
	}
	q.Notify = notify == 1
	if n, ok = u32(); !ok || uint64(n)*4 > uint64(len(r)) {
		return fail("bad action count")
	}
	for range n {
		a, _ := u32()
		q.Actions = append(q.Actions, a)
	}
	if n, ok = u32(); !ok || uint64(n)*8 != uint64(len(r)) {
		return fail("instruction count does not match the length")
	}
	q.Filter = make([]unix.SockFilter, n)
	for i := range q.Filter {
		q.Filter[i] = unix.SockFilter{Code: le.Uint16(r), Jt: r[2], Jf: r[3], K: le.Uint32(r[4:])}
		r = r[8:]
	}
	if err := q.check(); err != nil {
		return fmt.Errorf("%w: %w", errCorrupt, err)
	}
	*p = q
	return nil
}

// check verifies what the kernel's seccomp_check_filter would refuse for
// the instructions berth emits: size, opcodes, aligned loads inside
// seccomp_data, jumps inside the program, a final return.
func (p *Program) check() error {
	n := len(p.Filter)
	if n == 0 || n > MaxInstructions {
		return fmt.Errorf("seccomp program has %d instructions, want 1 to %d", n, MaxInstructions)
	}
	for i, in := range p.Filter {
		left := uint64(n - i - 1) // instructions after this one
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K%4 != 0 || in.K >= 64 {
				return fmt.Errorf("instruction %d: load at offset %d outside seccomp_data", i, in.K)
			}
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, unix.BPF_RET | unix.BPF_K:
		case unix.BPF_JMP | unix.BPF_JA:
			if uint64(in.K) >= left {
				return fmt.Errorf("instruction %d: jump past the end", i)
			}
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K,
			unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			if uint64(in.Jt) >= left || uint64(in.Jf) >= left {
				return fmt.Errorf("instruction %d: jump past the end", i)
			}
		default:
			return fmt.Errorf("instruction %d: opcode %#x not used by seccomp filters", i, in.Code)
		}
	}
	if p.Filter[n-1].Code != unix.BPF_RET|unix.BPF_K {
		return errors.New("seccomp program does not end with a return")
	}
	return nil
}

// String disassembles the program, one instruction a line.
func (p *Program) String() string {
	var b strings.Builder
	for i, in := range p.Filter {
		fmt.Fprintf(&b, "%04d: ", i)
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			fmt.Fprintf(&b, "ld [%d]", in.K)
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			fmt.Fprintf(&b, "and #%#x", in.K)
		case unix.BPF_RET | unix.BPF_K:
			fmt.Fprintf(&b, "ret %s", actionName(in.K))
		case unix.BPF_JMP | unix.BPF_JA:
			fmt.Fprintf(&b, "ja %04d", i+1+int(in.K))
		default:
			name := map[uint16]string{unix.BPF_JEQ: "jeq", unix.BPF_JGT: "jgt", unix.BPF_JGE: "jge", unix.BPF_JSET: "jset"}[in.Code&0xf0]
			if in.Code&0x07 != unix.BPF_JMP || name == "" {
				fmt.Fprintf(&b, "op %#04x jt %d jf %d k %#x", in.Code, in.Jt, in.Jf, in.K)
				break
			}
			fmt.Fprintf(&b, "%s #%#x, %04d, %04d", name, in.K, i+1+int(in.Jt), i+1+int(in.Jf))
		}
		b.WriteByte('\n')
	}
	return b.String()
}
