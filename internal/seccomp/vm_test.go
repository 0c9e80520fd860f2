package seccomp

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// call is one system call as the filter sees it (struct seccomp_data).
type call struct {
	arch uint32 // AUDIT_ARCH_*
	nr   uint32
	args [6]uint64
}

func x86_64(nr uint32, args ...uint64) call { return mk(unix.AUDIT_ARCH_X86_64, nr, args) }
func i386(nr uint32, args ...uint64) call   { return mk(unix.AUDIT_ARCH_I386, nr, args) }
func mk(arch, nr uint32, args []uint64) call {
	c := call{arch: arch, nr: nr}
	copy(c.args[:], args)
	return c
}

// seccompData lays c out the way a classic BPF load sees seccomp_data on a
// host of the given byte order. x/net/bpf's VM reads 32-bit words in
// network byte order while the kernel reads them in its own, so the buffer
// holds every 32-bit word big-endian, at the offset the kernel has it at:
// a 64-bit argument's low word comes first on a little-endian host.
func seccompData(c call, bigEndianHost bool) []byte {
	b := make([]byte, 64)
	be := binary.BigEndian
	be.PutUint32(b[0:], c.nr)
	be.PutUint32(b[4:], c.arch)
	for i, a := range c.args {
		off := 16 + 8*i
		hi, lo := uint32(a>>32), uint32(a)
		if bigEndianHost {
			be.PutUint32(b[off:], hi)
			be.PutUint32(b[off+4:], lo)
		} else {
			be.PutUint32(b[off:], lo)
			be.PutUint32(b[off+4:], hi)
		}
	}
	return b
}

// vm runs a compiled program like the kernel would.
type vm struct {
	t         *testing.T
	m         *bpf.VM
	bigEndian bool
}

func newVM(t *testing.T, p *Program, bigEndianHost bool) *vm {
	t.Helper()
	raw := make([]bpf.RawInstruction, len(p.Filter))
	for i, in := range p.Filter {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("program does not disassemble:\n%s", p)
	}
	m, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatalf("bpf.NewVM: %v\n%s", err, p)
	}
	return &vm{t: t, m: m, bigEndian: bigEndianHost}
}

func (v *vm) run(c call) uint32 {
	v.t.Helper()
	r, err := v.m.Run(seccompData(c, v.bigEndian))
	if err != nil {
		v.t.Fatalf("run %+v: %v", c, err)
	}
	return uint32(r)
}
