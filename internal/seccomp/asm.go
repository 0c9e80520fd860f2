package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// The assembler turns instructions with symbolic jump targets into classic
// BPF. Classic BPF jumps only forward, and a conditional jump reaches at most
// 255 instructions; a target further away gets a trampoline (an
// unconditional `ja`, whose 32-bit offset reaches anywhere) right after the
// conditional jump. Trampolines move later code, so layout repeats until no
// jump changes size; each jump can only grow once, so this ends.

// label names a position in the program. The zero label means "the next
// instruction".
type label int

const next label = 0

// op is one instruction before layout.
type op struct {
	code   uint16
	k      uint32
	jt, jf label // conditional jumps; ja uses jt
	define label // a pseudo-instruction that places this label here
	// Set by layout: the target is too far for an 8-bit offset.
	longT, longF bool
}

type assembler struct {
	ops    []op
	labels int
}

func (a *assembler) newLabel() label {
	a.labels++
	return label(a.labels)
}

// place puts l at the current position.
func (a *assembler) place(l label) {
	a.ops = append(a.ops, op{define: l})
}

func (a *assembler) loadAbs(off uint32) {
	a.ops = append(a.ops, op{code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, k: off})
}

func (a *assembler) and(k uint32) {
	a.ops = append(a.ops, op{code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, k: k})
}

func (a *assembler) ret(k uint32) {
	a.ops = append(a.ops, op{code: unix.BPF_RET | unix.BPF_K, k: k})
}

func (a *assembler) jump(to label) {
	if to == next {
		return
	}
	a.ops = append(a.ops, op{code: unix.BPF_JMP | unix.BPF_JA, jt: to})
}

// jmpIf emits a conditional jump comparing A with k; cond is one of
// unix.BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET.
func (a *assembler) jmpIf(cond uint16, k uint32, jt, jf label) {
	if jt == jf {
		a.jump(jt)
		return
	}
	a.ops = append(a.ops, op{code: unix.BPF_JMP | cond | unix.BPF_K, k: k, jt: jt, jf: jf})
}

func isCond(o op) bool {
	return o.define == 0 && o.code&0x07 == unix.BPF_JMP && o.code&0xf0 != unix.BPF_JA
}

// size is how many instructions o occupies after layout.
func (o op) size() int {
	switch {
	case o.define != 0:
		return 0
	case isCond(o):
		n := 1
		if o.longT {
			n++
		}
		if o.longF {
			n++
		}
		return n
	default:
		return 1
	}
}

// assemble lays the program out and returns the instructions.
func (a *assembler) assemble() ([]unix.SockFilter, error) {
	pos := make([]int, len(a.ops)) // position of each op
	at := make([]int, a.labels+1)  // position of each label
	for {
		p := 0
		for i, o := range a.ops {
			pos[i] = p
			if o.define != 0 {
				at[o.define] = p
			}
			p += o.size()
		}
		grew := false
		for i := range a.ops {
			o := &a.ops[i]
			if !isCond(*o) {
				continue
			}
			end := pos[i] + 1 // offsets count from the instruction after the jump
			if o.jt != next && !o.longT && at[o.jt]-end > 255 {
				o.longT, grew = true, true
			}
			if o.jf != next && !o.longF && at[o.jf]-end > 255 {
				o.longF, grew = true, true
			}
		}
		if !grew {
			break
		}
	}

	var out []unix.SockFilter
	// target is the offset from instruction position from to label l; next
	// means the instruction that follows the whole op (after trampolines).
	target := func(l label, from, after int) (uint32, error) {
		dst := after
		if l != next {
			dst = at[l]
		}
		if dst < from {
			return 0, fmt.Errorf("internal error: backward jump to label %d", l)
		}
		return uint32(dst - from), nil
	}
	for i, o := range a.ops {
		p := pos[i]
		after := p + o.size()
		switch {
		case o.define != 0:
			continue
		case isCond(o):
			// Layout: jcc; [ja T if longT]; [ja F if longF]
			tramp := p + 1
			var jt, jf uint32
			var err error
			if o.longT {
				jt = uint32(tramp - (p + 1))
				tramp++
			} else if jt, err = target(o.jt, p+1, after); err != nil {
				return nil, err
			}
			if o.longF {
				jf = uint32(tramp - (p + 1))
			} else if jf, err = target(o.jf, p+1, after); err != nil {
				return nil, err
			}
			if jt > 255 || jf > 255 {
				return nil, fmt.Errorf("internal error: jump offset %d/%d after layout", jt, jf)
			}
			out = append(out, unix.SockFilter{Code: o.code, Jt: uint8(jt), Jf: uint8(jf), K: o.k})
			q := p + 1
			if o.longT {
				d, err := target(o.jt, q+1, after)
				if err != nil {
					return nil, err
				}
				out = append(out, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: d})
				q++
			}
			if o.longF {
				d, err := target(o.jf, q+1, after)
				if err != nil {
					return nil, err
				}
				out = append(out, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: d})
			}
		case o.code == unix.BPF_JMP|unix.BPF_JA:
			d, err := target(o.jt, p+1, after)
			if err != nil {
				return nil, err
			}
			out = append(out, unix.SockFilter{Code: o.code, K: d})
		default:
			out = append(out, unix.SockFilter{Code: o.code, K: o.k})
		}
	}
	return out, nil
}
