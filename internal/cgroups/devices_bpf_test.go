package cgroups

import (
	"errors"
	"github.com/berthproject/berth/internal/bpf"
	"maps"
	"os"
	"strings"
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The bpf(2) attr structs have the kernel's offsets (include/uapi/linux/bpf.h).
func TestBPFAttrLayout(t *testing.T) {
	for _, tc := range []struct {
		field     string
		got, want uintptr
	}{
		{"sizeof(struct bpf_insn)", unsafe.Sizeof(bpf.Insn{}), 8},
		{"sizeof(__aligned_u64 pointer)", unsafe.Sizeof(bpfPointer{}), 8},

		{"prog_load.insn_cnt", unsafe.Offsetof(progLoadAttr{}.insnCnt), 4},
		{"prog_load.insns", unsafe.Offsetof(progLoadAttr{}.insns), 8},
		{"prog_load.license", unsafe.Offsetof(progLoadAttr{}.license), 16},
		{"prog_load.log_level", unsafe.Offsetof(progLoadAttr{}.logLevel), 24},
		{"prog_load.log_size", unsafe.Offsetof(progLoadAttr{}.logSize), 28},
		{"prog_load.log_buf", unsafe.Offsetof(progLoadAttr{}.logBuf), 32},
		{"prog_load.kern_version", unsafe.Offsetof(progLoadAttr{}.kernVersion), 40},
		{"prog_load.prog_flags", unsafe.Offsetof(progLoadAttr{}.progFlags), 44},
		{"prog_load.prog_name", unsafe.Offsetof(progLoadAttr{}.progName), 48},
		{"sizeof(prog_load up to prog_name)", unsafe.Sizeof(progLoadAttr{}), 64},

		{"attach.attach_bpf_fd", unsafe.Offsetof(progAttachAttr{}.attachBPFFD), 4},
		{"attach.attach_type", unsafe.Offsetof(progAttachAttr{}.attachType), 8},
		{"attach.attach_flags", unsafe.Offsetof(progAttachAttr{}.attachFlags), 12},

		{"query.attach_type", unsafe.Offsetof(progQueryAttr{}.attachType), 4},
		{"query.query_flags", unsafe.Offsetof(progQueryAttr{}.queryFlags), 8},
		{"query.attach_flags", unsafe.Offsetof(progQueryAttr{}.attachFlags), 12},
		{"query.prog_ids", unsafe.Offsetof(progQueryAttr{}.progIDs), 16},
		{"query.prog_cnt", unsafe.Offsetof(progQueryAttr{}.progCnt), 24},

		{"get_fd_by_id.next_id", unsafe.Offsetof(getFDByIDAttr{}.nextID), 4},
		{"get_fd_by_id.open_flags", unsafe.Offsetof(getFDByIDAttr{}.openFlags), 8},

		{"info.info_len", unsafe.Offsetof(objInfoAttr{}.infoLen), 4},
		{"info.info", unsafe.Offsetof(objInfoAttr{}.info), 8},

		{"bpf_prog_info.tag", unsafe.Offsetof(progInfo{}.tag), 8},
		{"bpf_prog_info.jited_prog_insns", unsafe.Offsetof(progInfo{}.jitedProgInsns), 24},
		{"bpf_prog_info.load_time", unsafe.Offsetof(progInfo{}.loadTime), 40},
		{"bpf_prog_info.map_ids", unsafe.Offsetof(progInfo{}.mapIDs), 56},
		{"bpf_prog_info.name", unsafe.Offsetof(progInfo{}.name), 64},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.field, tc.got, tc.want)
		}
	}
}

// As root, the kernel accepts the device program under our name, and a
// program it refuses comes back with the verifier's reason. Nothing is
// attached: this needs no cgroup2.
func TestRootLoadDeviceProgram(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading an eBPF program needs root")
	}
	rules, err := parseDeviceRules(fullResources().Devices)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := loadDeviceProgram(deviceProgram(rules))
	if errors.Is(err, unix.ENOSYS) {
		t.Skip("this kernel has no bpf(2)")
	}
	if err != nil {
		t.Fatalf("loadDeviceProgram: %v", err)
	}
	name, err := programName(fd)
	unix.Close(fd)
	if err != nil {
		t.Fatalf("programName: %v", err)
	}
	if name != deviceProgramName {
		t.Errorf("loaded program is named %q, want %q", name, deviceProgramName)
	}

	// Returning R0 without setting it: the verifier says "R0 !read_ok".
	fd, err = loadDeviceProgram([]bpf.Insn{bpf.ExitInsn()})
	if err == nil {
		unix.Close(fd)
		t.Fatal("the kernel loaded a program that returns an unset R0")
	}
	if !errors.Is(err, unix.EACCES) || !strings.Contains(err.Error(), "R0 !read_ok") {
		t.Errorf("loadDeviceProgram(exit) = %v, want EACCES with the verifier's \"R0 !read_ok\"", err)
	}
}

// Setting our program twice on a cgroup2 directory that also holds someone
// else's device program leaves theirs attached and exactly one of ours.
// Runs wherever there is a cgroup2 mount, the hybrid host's included.
func TestRootDeviceProgramLeavesOthers(t *testing.T) {
	m, l, _ := rootCgroup(t)
	if l.Unified == nil {
		t.Skip("no cgroup2 mount")
	}
	if err := m.Apply(0); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	dir := m.Path("")
	cgroup, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(cgroup)

	// Someone else's program: allow everything, under another name.
	prog := []bpf.Insn{bpf.Alu32Imm(unix.BPF_MOV, unix.BPF_REG_0, 1), bpf.ExitInsn()}
	license := []byte("GPL\x00")
	load := progLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(prog)),
		insns:    pointerTo(unsafe.Pointer(&prog[0])),
		license:  pointerTo(unsafe.Pointer(&license[0])),
	}
	copy(load.progName[:], "other_devices")
	other, err := progLoad(&load)
	if err != nil {
		t.Fatalf("load the other program: %v", err)
	}
	defer unix.Close(other)
	attach := progAttachAttr{targetFD: uint32(cgroup), attachBPFFD: uint32(other), attachType: unix.BPF_CGROUP_DEVICE, attachFlags: unix.BPF_F_ALLOW_MULTI}
	if _, err := bpfSyscall(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attach), unsafe.Sizeof(attach)); err != nil {
		t.Fatalf("attach the other program: %v", err)
	}

	rules, err := parseDeviceRules([]specs.LinuxDeviceCgroup{rule(false, "a", -1, -1, "rwm")})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := attachDeviceProgram(dir, deviceProgram(rules)); err != nil {
			t.Fatalf("attachDeviceProgram #%d: %v", i+1, err)
		}
	}
	ids, err := devicePrograms(cgroup)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, id := range ids {
		get := getFDByIDAttr{progID: id}
		fd, err := bpfSyscall(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&get), unsafe.Sizeof(get))
		if err != nil {
			t.Fatalf("open program %d: %v", id, err)
		}
		name, err := programName(fd)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("name of program %d: %v", id, err)
		}
		names[name]++
	}
	if want := map[string]int{"other_devices": 1, deviceProgramName: 1}; !maps.Equal(names, want) {
		t.Errorf("programs attached to %s by name: %v, want %v", dir, names, want)
	}
}
