package engine

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/containerspec"
)

// resolveNamespaces finds the namespaces a container joins: another
// container's (--net/--pid/--ipc/--uts container:NAME).
func (e *Engine) resolveNamespaces(ctx context.Context, c *Container, in *containerspec.Input) error {
	h := c.HostConfig
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
	if p, ok := in.Namespaces[specs.IPCNamespace]; ok {
		// The same POSIX shared memory too: the other container's /dev/shm.
		in.ShmPath = strings.TrimSuffix(p, "/ns/ipc") + "/root/dev/shm"
	}
	if err := join("--uts", string(h.UTSMode), specs.UTSNamespace, "uts"); err != nil {
		return err
	}
	switch mode := string(h.NetworkMode); {
	case mode == "", mode == "default", mode == "bridge", mode == "none", mode == "host",
		strings.HasPrefix(mode, "container:"):
	default:
		return fmt.Errorf("%w: --network %s: user-defined networks are not supported yet", ErrInvalid, mode)
	}
	return nil
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

// networkMode is the container's network mode with the default resolved.
// Until bridge networking lands, the default is a network namespace of the
// container's own with only loopback.
func networkMode(h *container.HostConfig) string {
	switch h.NetworkMode {
	case "", "default", "bridge":
		return "none"
	}
	return string(h.NetworkMode)
}
