package cgroups

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// insn is one eBPF instruction in the kernel's layout, struct bpf_insn in
// include/uapi/linux/bpf.h:
//
//	__u8  code;        opcode: class | operation | source (BPF_K or BPF_X)
//	__u8  dst_reg:4;   destination register
//	__u8  src_reg:4;   source register
//	__s16 off;         memory offset, or jump distance in instructions
//	__s32 imm;         immediate operand
//
// A slice of insn is what BPF_PROG_LOAD reads. Only the few instructions the
// device program needs have a constructor below; their names follow the
// kernel's macros in include/linux/filter.h.
type insn struct {
	code uint8
	regs uint8 // dst_reg and src_reg, see bpfRegs
	off  int16
	imm  int32
}

// bigEndian reports the machine's byte order, which decides where C puts
// the dst_reg bit-field in its byte: low nibble on little-endian machines,
// high nibble on big-endian ones.
var bigEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 0
}()

func bpfRegs(dst, src uint8) uint8 {
	if bigEndian {
		return dst<<4 | src&0xf
	}
	return src<<4 | dst&0xf
}

// ldxMemW loads a 32-bit word: dst = *(u32 *)(src + off).
func ldxMemW(dst, src uint8, off int16) insn {
	return insn{code: unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W, regs: bpfRegs(dst, src), off: off}
}

// alu32Imm applies a 32-bit ALU operation (BPF_AND, BPF_RSH, BPF_MOV...)
// with an immediate: dst = uint32(dst op imm), the upper half zeroed.
func alu32Imm(op uint8, dst uint8, imm int32) insn {
	return insn{code: unix.BPF_ALU | op | unix.BPF_K, regs: bpfRegs(dst, 0), imm: imm}
}

// mov32Reg copies the lower half of a register: dst = uint32(src).
func mov32Reg(dst, src uint8) insn {
	return insn{code: unix.BPF_ALU | unix.BPF_MOV | unix.BPF_X, regs: bpfRegs(dst, src)}
}

// jmpImm compares the whole 64-bit dst with imm (sign-extended) and, when
// op (BPF_JEQ, BPF_JNE...) holds, skips the next off instructions.
func jmpImm(op uint8, dst uint8, imm int32, off int16) insn {
	return insn{code: unix.BPF_JMP | op | unix.BPF_K, regs: bpfRegs(dst, 0), off: off, imm: imm}
}

// exitInsn returns R0 to the kernel.
func exitInsn() insn {
	return insn{code: unix.BPF_JMP | unix.BPF_EXIT}
}
