// Package bpf is berth's small eBPF toolkit: an assembler for the few
// instructions its programs need (Insn and its constructors, Asm for jumps
// to labels) and the bpf(2) commands that load, pin and attach them (sys.go).
// It has no dependency beyond golang.org/x/sys: berth's programs are a few
// dozen instructions, written here in Go, not compiled C objects.
package bpf

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Insn is one eBPF instruction in the kernel's layout, struct bpf_insn in
// include/uapi/linux/bpf.h:
//
//	__u8  code;        opcode: class | operation | source (BPF_K or BPF_X)
//	__u8  dst_reg:4;   destination register
//	__u8  src_reg:4;   source register
//	__s16 off;         memory offset, or jump distance in instructions
//	__s32 imm;         immediate operand
//
// A slice of Insn is what BPF_PROG_LOAD reads. Only the instructions
// berth's programs need have a constructor below; their names follow the
// kernel's macros in include/linux/filter.h.
type Insn struct {
	Code uint8
	Regs uint8 // dst_reg and src_reg, see regs
	Off  int16
	Imm  int32
}

// Registers.
const (
	R0  = unix.BPF_REG_0 // return value, helper result
	R1  = unix.BPF_REG_1 // first argument; the context on entry
	R2  = unix.BPF_REG_2
	R3  = unix.BPF_REG_3
	R4  = unix.BPF_REG_4
	R5  = unix.BPF_REG_5
	R6  = unix.BPF_REG_6 // R6-R9 survive helper calls
	R7  = unix.BPF_REG_7
	R8  = unix.BPF_REG_8
	R9  = unix.BPF_REG_9
	R10 = unix.BPF_REG_10 // frame pointer, read only
)

// Sizes of memory accesses.
const (
	B  = unix.BPF_B
	H  = unix.BPF_H
	W  = unix.BPF_W
	DW = unix.BPF_DW
)

// BigEndian reports the machine's byte order, which decides where C puts
// the dst_reg bit-field in its byte: low nibble on little-endian machines,
// high nibble on big-endian ones.
var BigEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 0
}()

func regs(dst, src uint8) uint8 {
	if BigEndian {
		return dst<<4 | src&0xf
	}
	return src<<4 | dst&0xf
}

// Dst is the instruction's destination register.
func (i Insn) Dst() uint8 {
	if BigEndian {
		return i.Regs >> 4
	}
	return i.Regs & 0xf
}

// Src is the instruction's source register.
func (i Insn) Src() uint8 {
	if BigEndian {
		return i.Regs & 0xf
	}
	return i.Regs >> 4
}

// LdxMemW loads a 32-bit word: dst = *(u32 *)(src + off).
func LdxMemW(dst, src uint8, off int16) Insn { return LdxMem(W, dst, src, off) }

// LdxMem loads size bytes (B, H, W, DW), zero-extended: dst = *(size *)(src + off).
func LdxMem(size, dst, src uint8, off int16) Insn {
	return Insn{Code: unix.BPF_LDX | unix.BPF_MEM | size, Regs: regs(dst, src), Off: off}
}

// StxMem stores the low size bytes of src: *(size *)(dst + off) = src.
func StxMem(size, dst, src uint8, off int16) Insn {
	return Insn{Code: unix.BPF_STX | unix.BPF_MEM | size, Regs: regs(dst, src), Off: off}
}

// StMem stores an immediate: *(size *)(dst + off) = imm.
func StMem(size, dst uint8, off int16, imm int32) Insn {
	return Insn{Code: unix.BPF_ST | unix.BPF_MEM | size, Regs: regs(dst, 0), Off: off, Imm: imm}
}

// Alu32Imm applies a 32-bit ALU operation (BPF_AND, BPF_RSH, BPF_MOV...)
// with an immediate: dst = uint32(dst op imm), the upper half zeroed.
func Alu32Imm(op uint8, dst uint8, imm int32) Insn {
	return Insn{Code: unix.BPF_ALU | op | unix.BPF_K, Regs: regs(dst, 0), Imm: imm}
}

// Alu64Imm applies a 64-bit ALU operation with an immediate
// (sign-extended): dst = dst op imm.
func Alu64Imm(op uint8, dst uint8, imm int32) Insn {
	return Insn{Code: unix.BPF_ALU64 | op | unix.BPF_K, Regs: regs(dst, 0), Imm: imm}
}

// Mov32Reg copies the lower half of a register: dst = uint32(src).
func Mov32Reg(dst, src uint8) Insn {
	return Insn{Code: unix.BPF_ALU | unix.BPF_MOV | unix.BPF_X, Regs: regs(dst, src)}
}

// Mov64Reg copies a register: dst = src.
func Mov64Reg(dst, src uint8) Insn {
	return Insn{Code: unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_X, Regs: regs(dst, src)}
}

// Mov64Imm sets a register to an immediate, sign-extended: dst = imm.
func Mov64Imm(dst uint8, imm int32) Insn { return Alu64Imm(unix.BPF_MOV, dst, imm) }

// JmpImm compares the whole 64-bit dst with imm (sign-extended) and, when
// op (BPF_JEQ, BPF_JNE...) holds, skips the next off instructions.
func JmpImm(op uint8, dst uint8, imm int32, off int16) Insn {
	return Insn{Code: unix.BPF_JMP | op | unix.BPF_K, Regs: regs(dst, 0), Off: off, Imm: imm}
}

// JmpReg compares two registers: when dst op src holds, skips the next off
// instructions.
func JmpReg(op uint8, dst, src uint8, off int16) Insn {
	return Insn{Code: unix.BPF_JMP | op | unix.BPF_X, Regs: regs(dst, src), Off: off}
}

// Call calls the kernel helper numbered fn (enum bpf_func_id): arguments in
// R1-R5, result in R0; R1-R5 are clobbered.
func Call(fn int32) Insn {
	return Insn{Code: unix.BPF_JMP | unix.BPF_CALL, Imm: fn}
}

// LdMapFD loads a map's address into dst from the map's fd, which the
// verifier replaces (BPF_PSEUDO_MAP_FD). It is two instructions wide.
func LdMapFD(dst uint8, fd int) [2]Insn {
	return [2]Insn{
		{Code: unix.BPF_LD | unix.BPF_DW | unix.BPF_IMM, Regs: regs(dst, unix.BPF_PSEUDO_MAP_FD), Imm: int32(fd)},
		{},
	}
}

// ExitInsn returns R0 to the kernel.
func ExitInsn() Insn {
	return Insn{Code: unix.BPF_JMP | unix.BPF_EXIT}
}

// Helper functions (enum bpf_func_id in include/uapi/linux/bpf.h).
const (
	FuncMapLookupElem   = 1
	FuncMapUpdateElem   = 2
	FuncGetSocketCookie = 46
	FuncGetNetNSCookie  = 122
)

// Asm assembles a program whose jumps go to labels, so that inserting an
// instruction does not mean recounting every jump distance by hand.
type Asm struct {
	insns  []Insn
	labels map[string]int
	fixups []fixup
}

type fixup struct {
	at    int
	label string
}

// Add appends instructions.
func (a *Asm) Add(ins ...Insn) { a.insns = append(a.insns, ins...) }

// AddMapFD appends the two instructions of LdMapFD.
func (a *Asm) AddMapFD(dst uint8, fd int) {
	i := LdMapFD(dst, fd)
	a.insns = append(a.insns, i[0], i[1])
}

// JmpImmTo is JmpImm to a label.
func (a *Asm) JmpImmTo(op uint8, dst uint8, imm int32, label string) {
	a.fixups = append(a.fixups, fixup{len(a.insns), label})
	a.Add(JmpImm(op, dst, imm, 0))
}

// JmpRegTo is JmpReg to a label.
func (a *Asm) JmpRegTo(op uint8, dst, src uint8, label string) {
	a.fixups = append(a.fixups, fixup{len(a.insns), label})
	a.Add(JmpReg(op, dst, src, 0))
}

// Label names the next instruction.
func (a *Asm) Label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.insns)
}

// Program resolves the jumps and returns the instructions.
func (a *Asm) Program() ([]Insn, error) {
	out := append([]Insn(nil), a.insns...)
	for _, f := range a.fixups {
		to, ok := a.labels[f.label]
		if !ok {
			return nil, fmt.Errorf("bpf: jump to unknown label %q", f.label)
		}
		d := to - f.at - 1
		if d < -32768 || d > 32767 {
			return nil, fmt.Errorf("bpf: jump to %q too far", f.label)
		}
		out[f.at].Off = int16(d)
	}
	return out, nil
}
