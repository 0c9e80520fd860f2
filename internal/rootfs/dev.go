package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"

	"github.com/berthproject/berth/internal/fsroot"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultDevices are in every container with a fresh /dev, as with runc.
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// devLinks are the symlinks of a fresh /dev: link -> target.
var devLinks = [][2]string{
	{"/dev/fd", "/proc/self/fd"},
	{"/dev/stdin", "/proc/self/fd/0"},
	{"/dev/stdout", "/proc/self/fd/1"},
	{"/dev/stderr", "/proc/self/fd/2"},
}

// devKind says how the spec provides /dev.
type devKind int

const (
	devNotMounted devKind = iota // the image's own /dev
	devFresh                     // a new filesystem (usually tmpfs): Prepare fills it
	devBind                      // a bind mount: left as it is
)

// devMount finds the spec's mount of /dev, if any, and its options.
func devMount(c *Config) (devKind, MountOptions) {
	kind, opts := devNotMounted, MountOptions{}
	for _, m := range c.Mounts {
		if path.Clean(m.Destination) != "/dev" {
			continue
		}
		o, err := ParseMountOptions(m.Type, m.Options)
		if err != nil {
			continue
		}
		kind, opts = devFresh, o
		if o.Bind() || m.Type == "bind" {
			kind = devBind
		}
	}
	return kind, opts
}

// devicesToMake lists the devices for /dev of the given kind: the spec's, then
// the defaults the spec does not override.
func devicesToMake(c *Config, kind devKind) []specs.LinuxDevice {
	if kind == devBind {
		return nil
	}
	devs := append([]specs.LinuxDevice(nil), c.Devices...)
	if kind != devFresh {
		return devs
	}
	have := map[string]bool{}
	for _, d := range devs {
		have[path.Clean(d.Path)] = true
	}
	for _, d := range defaultDevices {
		if !have[d.Path] {
			devs = append(devs, d)
		}
	}
	return devs
}

func (p *preparer) setupDev() error {
	kind, _ := devMount(p.c)
	devs := devicesToMake(p.c, kind)
	if len(devs) > 0 {
		// The modes are the spec's exactly.
		old := unix.Umask(0)
		err := p.makeDevices(devs)
		unix.Umask(old)
		if err != nil {
			return err
		}
	}
	if kind != devFresh {
		return nil
	}
	links := devLinks
	// kcore exists only with CONFIG_PROC_KCORE.
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/dev/core", "/proc/kcore"})
	}
	for _, l := range links {
		if err := p.symlink(l[1], l[0]); err != nil {
			return fmt.Errorf("symlink %s -> %s: %w", l[0], l[1], err)
		}
	}
	return p.setupPtmx()
}

// setupPtmx makes /dev/ptmx a symlink to pts/ptmx, so the container opens the
// ptmx of its own devpts instance, not the host's.
func (p *preparer) setupPtmx() error {
	dev, err := fsroot.MkdirAll(p.root, "/dev", 0o755)
	if err != nil {
		return fmt.Errorf("/dev/ptmx: %w", err)
	}
	defer dev.Close()
	if err := unix.Unlinkat(int(dev.Fd()), "ptmx", 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove /dev/ptmx: %w", err)
	}
	if err := unix.Symlinkat("pts/ptmx", int(dev.Fd()), "ptmx"); err != nil {
		return fmt.Errorf("symlink /dev/ptmx -> pts/ptmx: %w", err)
	}
	return nil
}

func (p *preparer) makeDevices(devs []specs.LinuxDevice) error {
	for _, d := range devs {
		if err := p.makeDevice(d); err != nil {
			return fmt.Errorf("device %s: %w", d.Path, err)
		}
	}
	return nil
}

// makeDevice creates d inside the rootfs, with the permission bits of its
// fileMode (type bits some tools put there are ignored). In a user namespace mknod is not
// allowed: the host's node is bound instead (as it is when mknod says EPERM).
func (p *preparer) makeDevice(d specs.LinuxDevice) error {
	if p.c.UserNS {
		return p.bindDevice(d)
	}
	mode := uint32(0o666)
	if d.FileMode != nil {
		mode = uint32(d.FileMode.Perm())
	}
	switch d.Type {
	case "c", "u":
		mode |= unix.S_IFCHR
	case "b":
		mode |= unix.S_IFBLK
	case "p":
		mode |= unix.S_IFIFO
	default:
		return fmt.Errorf("unknown device type %q", d.Type)
	}
	err := fsroot.Mknod(p.root, d.Path, mode, unix.Mkdev(uint32(d.Major), uint32(d.Minor)))
	switch {
	case errors.Is(err, unix.EPERM):
		return p.bindDevice(d)
	case errors.Is(err, os.ErrExist):
		// The image (or an earlier entry) has it; like runc, keep it.
		return nil
	case err != nil:
		return err
	}
	var uid, gid uint32
	if d.UID != nil {
		uid = *d.UID
	}
	if d.GID != nil {
		gid = *d.GID
	}
	if uid == 0 && gid == 0 {
		return nil
	}
	f, err := fsroot.Open(p.root, d.Path, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fchownat(int(f.Fd()), "", int(uid), int(gid), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %d:%d: %w", uid, gid, err)
	}
	return nil
}

// bindDevice binds the host's node at d.Path onto an empty file at d.Path in
// the rootfs.
func (p *preparer) bindDevice(d specs.LinuxDevice) error {
	target, err := fsroot.MkFile(p.root, d.Path, 0)
	if err != nil {
		return err
	}
	defer target.Close()
	mnt, err := fsroot.Mount(p.root, target, d.Path, "", unix.MS_BIND, "")
	if err != nil {
		return err
	}
	return mnt.Close()
}
