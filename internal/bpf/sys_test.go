package bpf

import (
	"testing"
	"unsafe"
)

// The bpf(2) attr structs have the kernel's offsets (include/uapi/linux/bpf.h).
func TestAttrLayout(t *testing.T) {
	for _, tc := range []struct {
		field     string
		got, want uintptr
	}{
		{"sizeof(struct bpf_insn)", unsafe.Sizeof(Insn{}), 8},
		{"sizeof(__aligned_u64 pointer)", unsafe.Sizeof(pointer{}), 8},

		{"map_create.max_entries", unsafe.Offsetof(mapCreateAttr{}.maxEntries), 12},
		{"map_create.numa_node", unsafe.Offsetof(mapCreateAttr{}.numaNode), 24},
		{"map_create.map_name", unsafe.Offsetof(mapCreateAttr{}.name), 28},

		{"map_elem.key", unsafe.Offsetof(mapElemAttr{}.key), 8},
		{"map_elem.value", unsafe.Offsetof(mapElemAttr{}.value), 16},
		{"map_elem.flags", unsafe.Offsetof(mapElemAttr{}.flags), 24},

		{"prog_load.license", unsafe.Offsetof(progLoadAttr{}.license), 16},
		{"prog_load.log_buf", unsafe.Offsetof(progLoadAttr{}.logBuf), 32},
		{"prog_load.prog_name", unsafe.Offsetof(progLoadAttr{}.progName), 48},
		{"prog_load.prog_ifindex", unsafe.Offsetof(progLoadAttr{}.progIfindex), 64},
		{"prog_load.expected_attach_type", unsafe.Offsetof(progLoadAttr{}.expectedAttachType), 68},

		{"obj.bpf_fd", unsafe.Offsetof(objAttr{}.bpfFD), 8},
		{"obj.file_flags", unsafe.Offsetof(objAttr{}.fileFlags), 12},

		{"attach.attach_type", unsafe.Offsetof(attachAttr{}.attachType), 8},
		{"attach.attach_flags", unsafe.Offsetof(attachAttr{}.attachFlags), 12},

		{"query.prog_ids", unsafe.Offsetof(queryAttr{}.progIDs), 16},
		{"query.prog_cnt", unsafe.Offsetof(queryAttr{}.progCnt), 24},

		{"info.info", unsafe.Offsetof(infoAttr{}.info), 8},
		{"bpf_prog_info.id", unsafe.Offsetof(progInfo{}.id), 4},
		{"bpf_prog_info.name", unsafe.Offsetof(progInfo{}.name), 64},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.field, tc.got, tc.want)
		}
	}
}

// Jumps to labels resolve to the distance the kernel counts: from the
// instruction after the jump; a map fd takes two instructions.
func TestAsmLabels(t *testing.T) {
	var a Asm
	a.JmpImmTo(0x10 /* BPF_JEQ */, R1, 0, "end")  // 0
	a.AddMapFD(R1, 3)                             // 1, 2
	a.JmpRegTo(0x50 /* BPF_JNE */, R1, R2, "end") // 3
	a.Add(Mov64Imm(R0, 0))                        // 4
	a.Label("end")
	a.Add(Mov64Imm(R0, 1), ExitInsn()) // 5, 6
	p, err := a.Program()
	if err != nil {
		t.Fatal(err)
	}
	if p[0].Off != 4 || p[3].Off != 1 || len(p) != 7 || p[1].Imm != 3 || p[1].Src() != 1 {
		t.Errorf("program = %+v", p)
	}
	var b Asm
	b.JmpImmTo(0x10, R1, 0, "nowhere")
	if _, err := b.Program(); err == nil {
		t.Error("a jump to an unknown label assembled")
	}
}
