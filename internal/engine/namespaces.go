package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/containerspec"
)

// resolveNamespaces finds the namespaces a container joins: another
// container's (--net/--pid/--ipc/--uts container:NAME). It also gives the
// container the /dev/shm its IPC mode calls for (see prepareShm).
func (e *Engine) resolveNamespaces(ctx context.Context, c *Container, in *containerspec.Input) error {
	h := c.HostConfig
	joined := map[specs.LinuxNamespaceType]*Container{}
	join := func(flag, mode string, t specs.LinuxNamespaceType, file string) error {
		ref, ok := strings.CutPrefix(mode, "container:")
		if !ok {
			return nil
		}
		other, err := e.Lookup(ctx, ref)
		if err != nil {
			return fmt.Errorf("%s %s: %w", flag, mode, err)
		}
		if other.ID == c.ID {
			return fmt.Errorf("%w: %s %s: a container cannot join itself", ErrInvalid, flag, mode)
		}
		if other.State.Status != StatusRunning && other.State.Status != StatusPaused {
			return fmt.Errorf("%w: %s %s: container %s is not running", ErrConflict, flag, mode, other.Name)
		}
		in.Namespaces[t] = "/proc/" + strconv.Itoa(other.State.Pid) + "/ns/" + file
		joined[t] = other
		return nil
	}
	if err := join("--network", string(h.NetworkMode), specs.NetworkNamespace, "net"); err != nil {
		return err
	}
	if err := join("--pid", string(h.PidMode), specs.PIDNamespace, "pid"); err != nil {
		return err
	}
	if err := join("--ipc", string(h.IpcMode), specs.IPCNamespace, "ipc"); err != nil {
		return err
	}
	if err := e.prepareShm(c, joined[specs.IPCNamespace], in); err != nil {
		return err
	}
	if err := join("--uts", string(h.UTSMode), specs.UTSNamespace, "uts"); err != nil {
		return err
	}
	return nil
}

// shmDir is where the /dev/shm of a container with --ipc shareable is
// mounted on the host, for it and the containers that join its IPC
// namespace to bind (Docker's containers/ID/mounts/shm).
func (e *Engine) shmDir(id string) string { return filepath.Join(e.runDir(id), "shm") }

// prepareShm sets in.ShmPath, the host directory bound at /dev/shm, as
// Docker does: --ipc shareable gets a tmpfs mounted on the host side (a
// tmpfs the runtime mounts lives in the container's mount namespace, and
// the kernel refuses to bind a mount of another namespace, such as
// /proc/PID/root/dev/shm); --ipc container:X binds X's, which X must have
// shared (or be --ipc host: the host's /dev/shm). The mount is undone with
// the root filesystem's (unmountRootfs).
func (e *Engine) prepareShm(c *Container, donor *Container, in *containerspec.Input) error {
	h := c.HostConfig
	switch {
	case h.IpcMode.IsShareable():
		dir := e.shmDir(c.ID)
		if mounted(dir) {
			in.ShmPath = dir
			return nil
		}
		size := h.ShmSize
		if size < 0 {
			return fmt.Errorf("%w: --shm-size: %d: must not be negative", ErrInvalid, size)
		}
		if size == 0 {
			size = containerspec.DefaultShmSize
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("--ipc shareable: %w", err)
		}
		opts := "mode=1777,size=" + strconv.FormatInt(size, 10)
		if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
			return fmt.Errorf("--ipc shareable: mount the shared /dev/shm on %s: %w", dir, err)
		}
		in.ShmPath = dir
	case donor != nil:
		switch dm := donor.HostConfig.IpcMode; {
		case dm.IsShareable():
			dir := e.shmDir(donor.ID)
			if !mounted(dir) {
				return fmt.Errorf("%w: --ipc %s: container %s has no shared /dev/shm mounted (restart it)", ErrConflict, h.IpcMode, donor.Name)
			}
			in.ShmPath = dir
		case dm.IsHost():
			in.ShmPath = "/dev/shm"
		default:
			return fmt.Errorf("%w: --ipc %s: container %s's IPC is not shareable (start it with --ipc shareable)", ErrInvalid, h.IpcMode, donor.Name)
		}
	}
	return nil
}

// unmountShm undoes prepareShm's mount; a missing mount is fine.
func (e *Engine) unmountShm(id string) {
	if dir := e.shmDir(id); mounted(dir) {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	}
}

// utsHostname is the name a container without a hostname of its own shows
// (--uts host or container:X), for its /etc/hostname and /etc/hosts: the
// host's, or the other container's.
func (e *Engine) utsHostname(ctx context.Context, c *Container) string {
	if ref, ok := strings.CutPrefix(string(c.HostConfig.UTSMode), "container:"); ok {
		if other, err := e.Lookup(ctx, ref); err == nil && other.ID != c.ID {
			if other.Config.Hostname != "" {
				return other.Config.Hostname
			}
			if !other.HostConfig.UTSMode.IsHost() {
				return other.ID[:12]
			}
		}
	}
	if hn, err := os.Hostname(); err == nil {
		return hn
	}
	return c.ID[:12]
}
