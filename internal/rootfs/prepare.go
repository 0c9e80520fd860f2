package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/berthproject/berth/internal/fsroot"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// preparer carries what Prepare needs from step to step.
type preparer struct {
	c *Config
	// root is the rootfs mount (the rootfs bound onto itself): every path of
	// the container is resolved below it.
	root *os.File
	// rootPath is the kernel's name for root, to relate resolved descriptors
	// back to container paths.
	rootPath string
	// hostMounts is /proc/self/mountinfo as read before the first mount of
	// Prepare: what lies outside the rootfs (the host's cgroup
	// hierarchies) does not change until pivot_root, and the kernel's
	// rendering of the listing is not free.
	hostMounts []mountInfo
	// out is set when Prepare runs outside the container's pid namespace
	// (PrepareOutside); procUsed counts its ProcFS taken.
	out      *Outside
	procUsed int
}

// Prepare builds the container's filesystem view below c.Rootfs. It runs in the
// container init, in the init's own new mount namespace, before Enter:
//
//  1. "/" becomes MS_SLAVE|MS_REC (or linux.rootfsPropagation), so nothing
//     mounted from here on reaches the host; the mount the rootfs is on is
//     made private if it is shared (pivot_root refuses shared mounts);
//  2. the rootfs is bound onto itself, so that it is a mount point;
//  3. the spec's mounts, in order, each destination resolved inside the rootfs
//     (missing directories, or an empty file for a bind of a file, created);
//  4. if /dev is a fresh mount (usually a tmpfs): the default devices, the
//     spec's devices, /dev/fd, /dev/std{in,out,err}, /dev/core and /dev/ptmx ->
//     pts/ptmx; if /dev is not mounted only the spec's devices; if /dev is a
//     bind mount nothing.
//
// Nothing is made read-only that must still be written: Finalize does that
// after Enter. Prepare does not undo anything when it fails: the init is
// expected to exit, and its mount namespace goes with it.
func Prepare(c *Config) error {
	return prepare(c, nil)
}

// PrepareOutside is Prepare run from outside the container's pid namespace
// and cgroup, by a thread that joined its mount, network, IPC, UTS and cgroup
// namespaces (with a filesystem context of its own): proc mounts are made
// from o.ProcFS, the container's cgroups are those of o.InitPid.
func PrepareOutside(c *Config, o Outside) error {
	return prepare(c, &o)
}

func prepare(c *Config, out *Outside) error {
	prop := uintptr(unix.MS_SLAVE | unix.MS_REC)
	if c.RootfsPropagation != "" {
		var ok bool
		if prop, ok = rootPropagation[c.RootfsPropagation]; !ok {
			return fmt.Errorf("linux.rootfsPropagation: unknown propagation %q", c.RootfsPropagation)
		}
	}
	if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("set propagation of / to %s: %w", c.RootfsPropagation, err)
	}
	hostMounts, err := privateRootfsMount(c.Rootfs)
	if err != nil {
		return err
	}
	if err := unix.Mount(c.Rootfs, c.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s onto itself: %w", c.Rootfs, err)
	}
	root, err := os.OpenFile(c.Rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	rootPath, err := fsroot.Path(root)
	if err != nil {
		return err
	}
	p := &preparer{c: c, root: root, rootPath: rootPath, hostMounts: hostMounts, out: out}
	defer p.closeTrees()

	for i, m := range c.Mounts {
		if err := p.mountSpec(i, m); err != nil {
			return fmt.Errorf("mounts[%d] (%s on %s): %w", i, m.Type, m.Destination, err)
		}
	}
	return p.setupDev()
}

// privateRootfsMount makes the mount that rootfs is on private if it is
// shared: its own mount when it is a mount point (an overlay), else the mount
// holding the directory. pivot_root(2) refuses a new root whose parent mount is
// shared or that is shared itself, and the self-bind copies the propagation of
// its source. It returns the mount table it read.
func privateRootfsMount(rootfs string) ([]mountInfo, error) {
	f, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open rootfs: %w", err)
	}
	defer f.Close()
	id, err := fsroot.MountID(f)
	if err != nil {
		return nil, err
	}
	infos, err := readMountinfo()
	if err != nil {
		return nil, err
	}
	for _, mi := range infos {
		if uint64(mi.ID) != id || !mi.shared() {
			continue
		}
		if err := unix.Mount("", mi.Mountpoint, "", unix.MS_PRIVATE, ""); err != nil {
			return nil, fmt.Errorf("make %s (the mount of the rootfs) private: %w", mi.Mountpoint, err)
		}
	}
	return infos, nil
}

// tree is the detached clone of mounts[i]'s source the runtime opened on
// the host (Config.BindTrees), or nil.
func (p *preparer) tree(i int) *os.File {
	if i >= len(p.c.BindTrees) || p.c.BindTrees[i] < 0 {
		return nil
	}
	return os.NewFile(uintptr(p.c.BindTrees[i]), "bind source of mounts["+strconv.Itoa(i)+"]")
}

// closeTrees closes the descriptors of Config.BindTrees: the container's
// process must not inherit them.
func (p *preparer) closeTrees() {
	for _, fd := range p.c.BindTrees {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// mountSpec makes mounts[i] of the spec.
func (p *preparer) mountSpec(i int, m specs.Mount) error {
	opts, err := ParseMountOptions(m.Type, m.Options)
	if err != nil {
		return err
	}
	dest := path.Clean(m.Destination)
	if !path.IsAbs(m.Destination) || dest == "/" {
		return fmt.Errorf("destination %q must be an absolute path below /", m.Destination)
	}
	if opts.Bind() {
		return p.bind(dest, m.Source, opts, p.tree(i))
	}

	flags := opts.Flags
	switch m.Type {
	case "cgroup":
		return p.mountCgroup(dest, opts)
	case "tmpfs":
		// Read-only comes after the mode is set (and for /dev, after
		// Finalize made the devices).
		flags &^= unix.MS_RDONLY
	}

	if m.Type == "proc" && p.out != nil {
		mnt, err := p.mountProcFS(dest, m.Source, flags, opts.Data)
		if err != nil {
			return err
		}
		defer mnt.Close()
		return p.finish(mnt, opts)
	}
	mnt, err := p.mountNew(dest, m.Source, m.Type, flags, p.label(m.Type, opts.Data))
	switch {
	case err == nil:
	case p.c.UserNS && errors.Is(err, unix.EPERM) && m.Type == "sysfs":
		// A user namespace that does not own the network namespace may not
		// mount sysfs: show the host's, like runc.
		opts.Flags |= unix.MS_BIND | unix.MS_REC
		return p.mountBind(dest, "/sys", opts)
	case p.c.UserNS && errors.Is(err, unix.EPERM) && m.Type == "mqueue":
		// Likewise for an IPC namespace it does not own.
		opts.Flags |= unix.MS_BIND
		return p.mountBind(dest, "/dev/mqueue", opts)
	case p.c.UserNS && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY)) && m.Type == "cgroup2":
		return p.mountCgroup(dest, opts)
	default:
		return err
	}
	defer mnt.Close()
	if m.Type == "tmpfs" && opts.Flags&unix.MS_RDONLY != 0 && dest != "/dev" {
		if err := setAttr(mnt, unix.MOUNT_ATTR_RDONLY, 0, false); err != nil {
			return err
		}
	}
	return p.finish(mnt, opts)
}

// mountNew places a new mount (not a bind) on dest inside the rootfs and returns
// a descriptor of its root. A tmpfs without a mode= keeps the mode of the
// directory it covers.
func (p *preparer) mountNew(dest, source, fstype string, flags uintptr, data string) (*os.File, error) {
	target, err := p.target(dest, false, fstype, source, false)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(target.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", dest, err)
	}
	mnt, err := fsroot.Mount(p.root, target, source, fstype, flags, data)
	if err != nil {
		return nil, err
	}
	if fstype == "tmpfs" && !hasDataKey(data, "mode") {
		if err := unix.Chmod(fsroot.FdPath(mnt), st.Mode&07777); err != nil {
			mnt.Close()
			return nil, fmt.Errorf("chmod tmpfs on %s: %w", dest, err)
		}
	}
	return mnt, nil
}

// mountProcFS places a procfs made from the next of Outside.ProcFS on dest:
// the data's options set on the context, the flags as the detached mount's
// attributes (ProcMounts checked that they map), then attached like a bind
// tree.
func (p *preparer) mountProcFS(dest, source string, flags uintptr, data string) (*os.File, error) {
	if p.procUsed >= len(p.out.ProcFS) {
		return nil, errors.New("no procfs context left for this proc mount")
	}
	fsfd := int(p.out.ProcFS[p.procUsed].Fd())
	p.procUsed++
	target, err := p.target(dest, false, "proc", source, false)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if source != "" {
		if err := unix.FsconfigSetString(fsfd, "source", source); err != nil {
			return nil, fmt.Errorf("proc source %q: %w", source, err)
		}
	}
	for _, o := range strings.Split(data, ",") {
		if o == "" {
			continue
		}
		if k, v, ok := strings.Cut(o, "="); ok {
			err = unix.FsconfigSetString(fsfd, k, v)
		} else {
			err = unix.FsconfigSetFlag(fsfd, o)
		}
		if err != nil {
			return nil, fmt.Errorf("proc option %q: %w", o, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, fmt.Errorf("create procfs: %w", err)
	}
	attr, _ := setattrOf(flags, 0)
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, int(attr))
	if err != nil {
		return nil, fmt.Errorf("fsmount procfs: %w", err)
	}
	tree := os.NewFile(uintptr(mfd), "procfs")
	defer tree.Close()
	return fsroot.Attach(p.root, target, tree, "proc")
}

// mountBind binds the host path source onto dest inside the rootfs, then
// applies the options' flags: to the bind alone, or with "rbind" to every mount
// below it too (a read-only rbind must not leave writable submounts).
func (p *preparer) mountBind(dest, source string, opts MountOptions) error {
	return p.bind(dest, source, opts, nil)
}

// bind is mountBind; with tree non-nil, the source is that detached mount
// (already recursive or not, as the options say) rather than the path.
func (p *preparer) bind(dest, source string, opts MountOptions, tree *os.File) error {
	var fi os.FileInfo
	var err error
	if tree != nil {
		fi, err = tree.Stat()
	} else {
		fi, err = os.Stat(source)
	}
	if err != nil {
		return fmt.Errorf("bind source: %w", err)
	}
	target, err := p.target(dest, !fi.IsDir(), "bind", source, true)
	if err != nil {
		return err
	}
	defer target.Close()
	var mnt *os.File
	if tree != nil {
		mnt, err = fsroot.Attach(p.root, target, tree, source)
	} else {
		mnt, err = fsroot.Mount(p.root, target, source, "", unix.MS_BIND|(opts.Flags&unix.MS_REC), "")
	}
	if err != nil {
		return err
	}
	defer mnt.Close()
	set, clr := setattrOf(opts.Flags&^(unix.MS_BIND|unix.MS_REC), opts.Cleared)
	if set != 0 || clr != 0 {
		if err := setAttr(mnt, set, clr, opts.Recursive()); err != nil {
			return fmt.Errorf("apply options to bind of %s on %s: %w", source, dest, err)
		}
	}
	return p.finish(mnt, opts)
}

// finish applies what comes after a mount exists: the propagation options and
// the recursive attributes ("rro", ...).
func (p *preparer) finish(mnt *os.File, opts MountOptions) error {
	if err := setPropagation(mnt, opts.Propagation); err != nil {
		return err
	}
	if opts.RecursiveSet != 0 || opts.RecursiveClear != 0 {
		if err := setAttr(mnt, opts.RecursiveSet, opts.RecursiveClear, true); err != nil {
			return err
		}
	}
	return nil
}

// target resolves dest inside the rootfs, creating it (a directory, or with
// file an empty file) if missing, and checks that where it resolved to is an
// allowed destination.
func (p *preparer) target(dest string, file bool, fstype, source string, bind bool) (*os.File, error) {
	var (
		f   *os.File
		err error
	)
	if file {
		f, err = fsroot.MkFile(p.root, dest, 0o644)
	} else {
		f, err = fsroot.MkdirAll(p.root, dest, 0o755)
	}
	if err != nil {
		return nil, fmt.Errorf("mount point %s: %w", dest, err)
	}
	resolved, err := p.containerPath(f)
	if err == nil {
		err = checkDestination(resolved, fstype, source, bind)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mount point %s: %w", dest, err)
	}
	return f, nil
}

// containerPath is the path inside the container of f, a descriptor below the
// rootfs.
func (p *preparer) containerPath(f *os.File) (string, error) {
	hostPath, err := fsroot.Path(f)
	if err != nil {
		return "", err
	}
	if hostPath == p.rootPath {
		return "/", nil
	}
	rel, ok := strings.CutPrefix(hostPath, strings.TrimSuffix(p.rootPath, "/")+"/")
	if !ok {
		return "", fmt.Errorf("%s resolved outside the rootfs, to %s", f.Name(), hostPath)
	}
	return "/" + rel, nil
}

func (p *preparer) symlink(target, link string) error {
	if err := fsroot.Symlink(p.root, target, link); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

// label adds the SELinux mount label to the data of filesystems that take one.
func (p *preparer) label(fstype, data string) string {
	if p.c.MountLabel == "" {
		return data
	}
	switch fstype {
	case "proc", "sysfs", "cgroup", "cgroup2", "bind":
		return data
	}
	ctx := fmt.Sprintf("context=%q", p.c.MountLabel)
	if data == "" {
		return ctx
	}
	return data + "," + ctx
}

func hasDataKey(data, key string) bool {
	for _, o := range strings.Split(data, ",") {
		if strings.HasPrefix(o, key+"=") {
			return true
		}
	}
	return false
}
