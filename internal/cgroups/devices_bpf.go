package cgroups

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/bpf"
)

// The device program goes through bpf(2) directly, by package bpf: load,
// attach, detach, query, and the name of a program by its id.

// loadDeviceProgram loads prog as a BPF_PROG_TYPE_CGROUP_DEVICE program
// named deviceProgramName and returns its fd. When the verifier refuses
// it, the error carries the verifier's message.
func loadDeviceProgram(prog []bpf.Insn) (int, error) {
	if len(prog) == 0 {
		return -1, errors.New("load device program: no instructions")
	}
	fd, err := bpf.LoadProg(bpf.ProgSpec{Type: unix.BPF_PROG_TYPE_CGROUP_DEVICE, Name: deviceProgramName, Insns: prog, License: "Apache-2.0"})
	if err != nil {
		return -1, fmt.Errorf("load device program: %w", err)
	}
	return fd, nil
}

// attachDeviceProgram loads prog as a cgroup device program and attaches
// it to the cgroup2 directory dir with BPF_F_ALLOW_MULTI, then detaches the
// programs of ours attached before. The new program goes in before the old
// ones go out, so the cgroup is never without a filter. Programs attached by
// others (systemd, say) are left alone; they can only restrict further.
func attachDeviceProgram(dir string, prog []bpf.Insn) error {
	cgroup, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	defer unix.Close(cgroup)

	old, err := ourDevicePrograms(cgroup)
	if err != nil {
		return fmt.Errorf("list device programs of %s: %w", dir, err)
	}
	defer closeFDs(old)

	fd, err := loadDeviceProgram(prog)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := bpf.Attach(cgroup, fd, unix.BPF_CGROUP_DEVICE); err != nil {
		return fmt.Errorf("attach device program to %s: %w", dir, err)
	}
	for _, p := range old {
		if err := bpf.Detach(cgroup, p, unix.BPF_CGROUP_DEVICE); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("detach old device program from %s: %w", dir, err)
		}
	}
	return nil
}

// ourDevicePrograms returns fds of the device programs named
// deviceProgramName attached directly to the cgroup open at cgroup. The
// caller closes them.
func ourDevicePrograms(cgroup int) ([]int, error) {
	ids, err := devicePrograms(cgroup)
	if err != nil {
		return nil, err
	}
	var ours []int
	for _, id := range ids {
		fd, err := bpf.ProgFDByID(id)
		if errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist) {
			continue // not ours to see (LSM), or gone meanwhile
		}
		if err != nil {
			closeFDs(ours)
			return nil, fmt.Errorf("open program %d: %w", id, err)
		}
		if name, err := programName(fd); err == nil && name == deviceProgramName {
			ours = append(ours, fd)
			continue
		}
		unix.Close(fd)
	}
	return ours, nil
}

// devicePrograms returns the ids of the device programs attached directly
// to the cgroup open at cgroup.
func devicePrograms(cgroup int) ([]uint32, error) {
	return bpf.Query(cgroup, unix.BPF_CGROUP_DEVICE)
}

// programName returns the name the program open at fd was loaded with.
func programName(fd int) (string, error) {
	_, name, err := bpf.ProgInfo(fd)
	return name, err
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
