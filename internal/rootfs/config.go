package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Config is the part of an OCI spec that shapes the container's filesystem
// view. The caller owns it; the functions here only read it.
type Config struct {
	Rootfs            string              // absolute host path of the root filesystem (root.path)
	Readonly          bool                // root.readonly
	Mounts            []specs.Mount       // mounts, applied in order
	Devices           []specs.LinuxDevice // linux.devices
	MaskedPaths       []string            // linux.maskedPaths
	ReadonlyPaths     []string            // linux.readonlyPaths
	RootfsPropagation string              // linux.rootfsPropagation: "", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"
	NoPivot           bool                // --no-pivot: MS_MOVE the rootfs onto / and chroot instead of pivot_root
	UserNS            bool                // in a user namespace: device nodes cannot be made, they are bind-mounted from the host
	CgroupNS          bool                // a private cgroup namespace: "cgroup" mounts are fresh mounts, else binds of the container's own cgroup dirs
	MountLabel        string              // linux.mountLabel (SELinux)

	// BindTrees, when set, has one entry per mount: a descriptor (in the
	// calling process) of a detached clone of that bind mount's source,
	// which the runtime made on the host with open_tree(2), or -1. Prepare
	// attaches it instead of binding the source path, which the root of a
	// user namespace may not be allowed to reach (runc and crun do the
	// same), and closes them all.
	BindTrees []int
}

// Outside is what PrepareOutside needs to build the rootfs from outside the
// container's pid namespace and cgroup: on a thread of the runtime that
// joined the container's other namespaces.
type Outside struct {
	// ProcFS has a procfs context (fsopen(2) of "proc") for each "proc"
	// mount, in order, made by the container's init in its pid namespace:
	// a procfs shows the pid namespace of its creator. The caller closes
	// them.
	ProcFS []*os.File
	// InitPid is the container's init, whose /proc/PID/cgroup is the
	// container's cgroup membership (for "cgroup" mounts).
	InitPid int
}

// ProcMounts counts the spec's "proc" mounts, which PrepareOutside makes
// from Outside.ProcFS, and reports whether all of them can be: their flags must
// be ones a detached mount (fsmount(2)) takes.
func ProcMounts(c *Config) (n int, ok bool) {
	const fsmountFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
		unix.MS_NODIRATIME | unix.MS_NOSYMFOLLOW | unix.MS_NOATIME | unix.MS_STRICTATIME | unix.MS_RELATIME
	for _, m := range c.Mounts {
		opts, err := ParseMountOptions(m.Type, m.Options)
		if err != nil {
			return 0, false
		}
		if m.Type != "proc" || opts.Bind() {
			continue
		}
		if opts.Flags&^fsmountFlags != 0 {
			return 0, false
		}
		n++
	}
	return n, true
}

// rootPropagation maps linux.rootfsPropagation to the flags applied to "/".
var rootPropagation = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// lxcfsProcFiles are the only paths inside /proc a mount may cover: files that
// lxcfs (or a similar FUSE filesystem) emulates per container, so that top and
// free show the container's numbers. Anything else there (attr/, sys/, self/...)
// could switch off the kernel's protections.
var lxcfsProcFiles = []string{
	"/proc/cpuinfo",
	"/proc/diskstats",
	"/proc/meminfo",
	"/proc/stat",
	"/proc/swaps",
	"/proc/uptime",
	"/proc/loadavg",
	"/proc/slabinfo",
	"/proc/net/dev",
	"/proc/sys/kernel/ns_last_pid",
	"/proc/sys/crypto/fips_enabled",
}

// sysMountPoints are the places inside /sys a mount may go: the cgroup tree
// and the one file lxcfs emulates.
var sysMountPoints = []string{
	"/sys/fs/cgroup",
	"/sys/devices/system/cpu/online",
}

// Validate checks c without changing anything, before any namespace or mount is
// made. Every problem found is reported, each naming the spec field at fault
// ("mounts[3].destination: ...").
func Validate(c *Config) error {
	if c == nil {
		return errors.New("rootfs: no config")
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	if !path.IsAbs(c.Rootfs) {
		bad("root.path", "%q must be an absolute path", c.Rootfs)
	} else if fi, err := os.Stat(c.Rootfs); errors.Is(err, os.ErrNotExist) {
		bad("root.path", "%s: no such directory", c.Rootfs)
	} else if err != nil {
		bad("root.path", "%v", err)
	} else if !fi.IsDir() {
		bad("root.path", "%s: not a directory", c.Rootfs)
	}

	if _, ok := rootPropagation[c.RootfsPropagation]; !ok && c.RootfsPropagation != "" {
		bad("linux.rootfsPropagation", "unknown propagation %q (want private, rprivate, slave, rslave, shared, rshared, unbindable or runbindable)", c.RootfsPropagation)
	}

	if c.MountLabel != "" && !selinuxEnabled() {
		bad("linux.mountLabel", "%q is set but SELinux is not enabled on this host", c.MountLabel)
	}

	for i, m := range c.Mounts {
		field := fmt.Sprintf("mounts[%d]", i)
		opts, err := ParseMountOptions(m.Type, m.Options)
		if err != nil {
			bad(field+".options", "%v", err)
			continue
		}
		switch {
		case m.Destination == "":
			bad(field+".destination", "required")
			continue
		case !path.IsAbs(m.Destination):
			bad(field+".destination", "%q must be absolute", m.Destination)
			continue
		case path.Clean(m.Destination) == "/":
			bad(field+".destination", "cannot mount over the root; use root.path")
			continue
		case escapesRoot(m.Destination):
			bad(field+".destination", "%q climbs above the container's root with \"..\"", m.Destination)
			continue
		}
		if m.Type == "" && !opts.Bind() {
			bad(field+".type", "required unless the options say bind or rbind")
			continue
		}
		if opts.Bind() {
			if m.Source == "" {
				bad(field+".source", "required for a bind mount")
				continue
			}
			if !path.IsAbs(m.Source) {
				bad(field+".source", "%q must be absolute (resolve it against the bundle first)", m.Source)
				continue
			}
			if _, err := os.Stat(m.Source); err != nil {
				bad(field+".source", "%v", unwrapPath(err))
				continue
			}
		}
		if err := checkDestination(path.Clean(m.Destination), m.Type, m.Source, opts.Bind()); err != nil {
			bad(field+".destination", "%v", err)
		}
	}

	for i, d := range c.Devices {
		field := fmt.Sprintf("linux.devices[%d]", i)
		if !path.IsAbs(d.Path) || path.Clean(d.Path) == "/" {
			bad(field+".path", "%q must be an absolute path to a file", d.Path)
		}
		switch d.Type {
		case "c", "u", "b", "p":
		default:
			bad(field+".type", "%q is not a device type (want c, u, b or p)", d.Type)
		}
		if d.Type != "p" && (d.Major < 0 || d.Minor < 0) {
			bad(field, "major and minor must not be negative")
		}
	}

	for i, p := range c.MaskedPaths {
		if !path.IsAbs(p) {
			bad(fmt.Sprintf("linux.maskedPaths[%d]", i), "%q must be absolute", p)
		}
	}
	for i, p := range c.ReadonlyPaths {
		if !path.IsAbs(p) {
			bad(fmt.Sprintf("linux.readonlyPaths[%d]", i), "%q must be absolute", p)
		}
	}
	return errors.Join(errs...)
}

// checkDestination refuses mounts that would cover the kernel's own views in
// /proc and /sys (CVE-2019-19921 overmounted /proc/self/attr to switch off the
// LSM), except the usual ones: a procfs on /proc, anything on /sys itself, the
// cgroup tree and the files lxcfs emulates. dest is clean and absolute; in the
// init it is the destination after symlinks were resolved inside the rootfs.
func checkDestination(dest, fstype, source string, bind bool) error {
	switch {
	case dest == "/proc":
		if fstype == "proc" && !bind {
			return nil
		}
		if bind && isProcfs(source) {
			return nil
		}
		return fmt.Errorf("%s: only a procfs can be mounted on /proc", dest)
	case strings.HasPrefix(dest, "/proc/"):
		for _, ok := range lxcfsProcFiles {
			if dest == ok {
				return nil
			}
		}
		return fmt.Errorf("%s is inside /proc: only %s may be mounted there", dest, strings.Join(lxcfsProcFiles, ", "))
	case strings.HasPrefix(dest, "/sys/"):
		for _, ok := range sysMountPoints {
			if dest == ok || strings.HasPrefix(dest, ok+"/") {
				return nil
			}
		}
		return fmt.Errorf("%s is inside /sys: only /sys/fs/cgroup and /sys/devices/system/cpu/online may be mounted there", dest)
	}
	return nil
}

func isProcfs(p string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(p, &fs) == nil && fs.Type == unix.PROC_SUPER_MAGIC
}

// selinuxEnabled reports whether an SELinux policy is loaded: selinuxfs is
// mounted at its usual place.
func selinuxEnabled() bool {
	const selinuxMagic = 0xf97cff8c
	var fs unix.Statfs_t
	return unix.Statfs("/sys/fs/selinux", &fs) == nil && fs.Type == selinuxMagic
}

// unwrapPath shortens a *os.PathError to "path: cause" for messages that
// already say what was being done.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// escapesRoot reports whether an absolute path has more ".." components
// than directories above them at some point, i.e. it would climb above
// "/". The kernel would stop at "/" (and resolution in the rootfs clamps
// it too), but such a config is a mistake or an attack: refuse it.
func escapesRoot(p string) bool {
	depth := 0
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}
