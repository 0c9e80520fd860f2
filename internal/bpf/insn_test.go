package bpf

import (
	"bytes"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Instructions encode as struct bpf_insn: code, dst_reg in the low and
// src_reg in the high nibble, off and imm little-endian (the bytes the
// kernel documents, and that llvm-objdump prints, for these instructions).
func TestInsnEncoding(t *testing.T) {
	if BigEndian {
		t.Skip("the expected bytes are little-endian")
	}
	for _, tc := range []struct {
		name string
		ins  Insn
		want []byte
	}{
		{"r2 = *(u32 *)(r1 +4)", LdxMemW(2, 1, 4), []byte{0x61, 0x12, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00}},
		{"w3 >>= 16", Alu32Imm(unix.BPF_RSH, 3, 16), []byte{0x74, 0x03, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00}},
		{"w2 &= 0xffff", Alu32Imm(unix.BPF_AND, 2, 0xffff), []byte{0x54, 0x02, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00}},
		{"w0 = 1", Alu32Imm(unix.BPF_MOV, 0, 1), []byte{0xb4, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00}},
		{"w1 = w3", Mov32Reg(1, 3), []byte{0xbc, 0x31, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}},
		{"if r4 != 0x88 goto pc+3", JmpImm(unix.BPF_JNE, 4, 136, 3), []byte{0x55, 0x04, 0x03, 0x00, 0x88, 0x00, 0x00, 0x00}},
		{"if r1 == 0x0 goto pc+2", JmpImm(unix.BPF_JEQ, 1, 0, 2), []byte{0x15, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00}},
		{"if r5 != -1 goto pc-2", JmpImm(unix.BPF_JNE, 5, -1, -2), []byte{0x55, 0x05, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"exit", ExitInsn(), []byte{0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}},
	} {
		got := unsafe.Slice((*byte)(unsafe.Pointer(&tc.ins)), unsafe.Sizeof(tc.ins))
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s encodes as % x, want % x", tc.name, got, tc.want)
		}
	}
}
