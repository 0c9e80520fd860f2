package cgroups

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// attachDeviceProgram loads insns as a cgroup device program and attaches
// it to the cgroup2 directory dir with BPF_F_ALLOW_MULTI, then detaches the
// programs of ours attached before. The new program goes in before the old
// ones go out, so the cgroup is never without a filter. Programs attached by
// others (systemd, say) are left alone; they can only restrict further.
func attachDeviceProgram(dir string, insns asm.Instructions) error {
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	defer unix.Close(fd)

	old, err := ourDevicePrograms(fd)
	if err != nil {
		return fmt.Errorf("list device programs of %s: %w", dir, err)
	}
	defer func() {
		for _, p := range old {
			p.Close()
		}
	}()

	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         deviceProgramName,
		Type:         ebpf.CGroupDevice,
		Instructions: insns,
		License:      "Apache-2.0",
	})
	if err != nil {
		return fmt.Errorf("load device program: %w", err)
	}
	defer prog.Close()
	err = link.RawAttachProgram(link.RawAttachProgramOptions{
		Target:  fd,
		Program: prog,
		Attach:  ebpf.AttachCGroupDevice,
		Flags:   unix.BPF_F_ALLOW_MULTI,
	})
	if err != nil {
		return fmt.Errorf("attach device program to %s: %w", dir, err)
	}
	for _, p := range old {
		err := link.RawDetachProgram(link.RawDetachProgramOptions{
			Target:  fd,
			Program: p,
			Attach:  ebpf.AttachCGroupDevice,
		})
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("detach old device program from %s: %w", dir, err)
		}
	}
	return nil
}

// ourDevicePrograms returns the device programs named deviceProgramName
// attached directly to the cgroup open at fd.
func ourDevicePrograms(fd int) ([]*ebpf.Program, error) {
	res, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return nil, err
	}
	var ours []*ebpf.Program
	for _, ap := range res.Programs {
		p, err := ebpf.NewProgramFromID(ap.ID)
		if errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist) {
			continue // not ours to see (LSM), or gone meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("open program %d: %w", ap.ID, err)
		}
		info, err := p.Info()
		if err == nil && info.Name == deviceProgramName {
			ours = append(ours, p)
			continue
		}
		p.Close()
	}
	return ours, nil
}
