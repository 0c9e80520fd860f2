package containerspec

import (
	"errors"
	"fmt"
	"os"

	"github.com/moby/moby/api/types/container"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Input is everything Generate needs. The caller owns it; Generate only
// reads it and never keeps a reference into it.
type Input struct {
	ID     string            // the container's id, 64 hex digits
	Image  v1.ImageConfig    // the image's config: Env, Entrypoint, Cmd, WorkingDir, User, Volumes
	Config *container.Config // the user's options: Cmd, Entrypoint (nil = the image's; [] or [""] = none), Env, WorkingDir, User, Tty, Hostname, Domainname
	Host   *container.HostConfig

	Rootfs string // absolute path of the mounted root filesystem

	// The image's /etc/passwd and /etc/group, nil if the image has none:
	// for -u NAME[:GROUP], --group-add and HOME.
	Passwd, Group []byte

	// Volumes maps a named volume (or the destination of an anonymous one,
	// or "NAME/SUBPATH") to its host directory; see the package doc.
	Volumes map[string]string

	// Namespaces to join by path: the net namespace the network layer
	// made, or the pid/ipc/uts/user namespace of the container named by a
	// "container:X" mode. Types not listed are created new, except those
	// the modes say are the host's.
	Namespaces map[specs.LinuxNamespaceType]string

	CgroupsPath string // e.g. "/berth/<id>"

	// EtcFiles maps "/etc/hosts", "/etc/hostname" and "/etc/resolv.conf"
	// to the host files bound there (read-only with --read-only, like Docker).
	EtcFiles map[string]string

	// InitPath is the host path of the init binary (berth-init) for --init;
	// it is bound read-only at /sbin/berth-init.
	InitPath string

	// ShmPath is the host directory bound at /dev/shm so that containers
	// sharing an IPC namespace see the same POSIX shared memory: with --ipc
	// shareable the tmpfs the engine mounted on the host for this
	// container, with --ipc container:X the one of X. Empty with shareable:
	// a tmpfs of the container's own, which no other container can join.
	ShmPath string

	// DeviceNodes maps a host path named by --device or a blkio device flag
	// to the device nodes there; HostDevices are all of the host's, for
	// --privileged. See the package doc.
	DeviceNodes map[string][]Device
	HostDevices []Device

	// IDMap is the id range of --userns auto (uids and gids alike).
	IDMap []specs.LinuxIDMapping

	// HostMaskedPaths are paths that exist on this host and that Docker
	// masks as well as its fixed list, such as
	// /sys/devices/system/cpu/cpuN/thermal_throttle.
	HostMaskedPaths []string

	// AvailableCaps are the capabilities the engine holds (the names of
	// the bits of its CapEff): --privileged and --cap-add ALL grant these,
	// and --cap-add of another one is refused, as Docker does. Nil means
	// every capability the running kernel knows.
	AvailableCaps []string

	// NoSwapLimit says the kernel cannot limit swap (no memory.memsw or
	// memory.swap.max): --memory-swap is dropped, as Docker does with a
	// warning.
	NoSwapLimit bool

	// SeccompDefault replaces Docker's default profile (tests pin it so
	// golden files do not depend on the kernel version).
	SeccompDefault *specs.LinuxSeccomp
}

// Device is a device node on the host, as the engine found it with stat.
type Device struct {
	Path         string      // host path
	Type         string      // "c" or "b"
	Major, Minor int64       // device numbers
	Mode         os.FileMode // permission bits
	UID, GID     uint32      // owner
}

// ErrInvalid marks an input a user can fix: a flag's value is bad or two
// flags conflict. errors.Is(err, ErrInvalid) holds for every such error from
// Generate; the engine reports them with Docker's exit code 125.
var ErrInvalid = errors.New("invalid container options")

// invalidError keeps the message a user reads free of the sentinel's text.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

// invalid formats an error a user can fix; the message starts with the flag
// at fault, e.g. invalid("--memory", "minimum is 6MB").
func invalid(flag, format string, args ...any) error {
	return &invalidError{msg: flag + ": " + fmt.Sprintf(format, args...)}
}
