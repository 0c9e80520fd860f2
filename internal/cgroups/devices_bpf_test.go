package cgroups

import (
	"errors"
	"maps"
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/bpf"
)

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
	other, err := bpf.LoadProg(bpf.ProgSpec{Type: unix.BPF_PROG_TYPE_CGROUP_DEVICE, Name: "other_devices", Insns: prog, License: "GPL"})
	if err != nil {
		t.Fatalf("load the other program: %v", err)
	}
	defer unix.Close(other)
	if err := bpf.Attach(cgroup, other, unix.BPF_CGROUP_DEVICE); err != nil {
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
		fd, err := bpf.ProgFDByID(id)
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
