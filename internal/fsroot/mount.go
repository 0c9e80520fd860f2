package fsroot

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount mounts source (of type fstype, with flags and data, as mount(2)) onto
// target, an O_PATH descriptor obtained from Open, MkdirAll or MkFile in root. The
// mount goes through /proc/self/fd/N, so it lands on the object target refers to
// whatever happens to the path meanwhile. Mount checks before that target lies
// inside root, and after that the target's path now shows a new mount, and
// returns an O_PATH descriptor of that new mount's root (use it to remount or to
// change propagation: target itself still refers to what is underneath).
//
// For a bind mount of something inside a root, pass FdPath of its descriptor as
// source. Mount is for placing new mounts; remounts and propagation changes act on
// a descriptor directly.
func Mount(root, target *os.File, source, fstype string, flags uintptr, data string) (*os.File, error) {
	return current().mount(root, target, source, fstype, flags, data)
}

func (r resolver) mount(root, target *os.File, source, fstype string, flags uintptr, data string) (*os.File, error) {
	what := source
	if what == "" {
		what = fstype
	}
	return r.place(root, target, what, func(dst string) error { return unix.Mount(source, dst, fstype, flags, data) })
}

// Attach moves tree, a detached mount made with open_tree(OPEN_TREE_CLONE)
// (possibly by another process, in another mount namespace), onto target,
// with the checks and the result of Mount; what names the tree in errors.
// It lets a process bind what it could not reach by path itself, such as
// a host directory opened for a container in a user namespace.
func Attach(root, target, tree *os.File, what string) (*os.File, error) {
	return current().place(root, target, what, func(string) error {
		// By descriptor: move_mount does not follow the /proc/self/fd link.
		return unix.MoveMount(int(tree.Fd()), "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	})
}

// place runs do with the /proc/self/fd path of target, after checking that
// target lies inside root, and checks that the path then shows a new mount.
func (r resolver) place(root, target *os.File, what string, do func(dst string) error) (*os.File, error) {
	rootPath, err := Path(root)
	if err != nil {
		return nil, err
	}
	want, err := Path(target)
	if err != nil {
		return nil, err
	}
	if !within(rootPath, want) {
		return nil, fmt.Errorf("mount %s on %s: target is outside the root %s", what, want, rootPath)
	}
	if err := checkProc(); err != nil {
		return nil, fmt.Errorf("mount %s on %s: %w", what, want, err)
	}
	before, err := mountID(target)
	if err != nil {
		return nil, fmt.Errorf("mount %s on %s: %w", what, want, err)
	}
	if err := do(FdPath(target)); err != nil {
		return nil, fmt.Errorf("mount %s on %s: %w", what, want, err)
	}
	got, err := r.openExact(want)
	if err != nil {
		return nil, fmt.Errorf("verify mount of %s on %s: %w", what, want, err)
	}
	after, err := mountID(got)
	if err == nil && (after == before || !isMountRoot(got)) {
		err = errors.New("the path does not show the new mount")
	}
	if err != nil {
		got.Close()
		return nil, fmt.Errorf("verify mount of %s on %s: %w", what, want, err)
	}
	return got, nil
}

// within reports whether p is root or below it (both as the kernel prints paths).
func within(root, p string) bool {
	if root == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == root || strings.HasPrefix(p, root+"/")
}

// checkProc makes sure /proc is a procfs, so /proc/self/fd/N means what we think.
func checkProc() error {
	var fs unix.Statfs_t
	if err := unix.Statfs("/proc", &fs); err != nil {
		return fmt.Errorf("statfs /proc: %w", err)
	}
	if fs.Type != unix.PROC_SUPER_MAGIC {
		return errors.New("/proc is not a procfs")
	}
	return nil
}

// openExact opens an absolute path the kernel printed for a descriptor, refusing
// any symlink on the way: such a path has none unless someone swapped one in.
func (r resolver) openExact(p string) (*os.File, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("%q is not an absolute path", p)
	}
	slash, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer slash.Close()
	rel := clean(p)
	if !r.walk {
		f, err := openat2(slash, rel, unix.O_PATH, unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_MAGICLINKS)
		if !errors.Is(err, unix.ENOSYS) {
			return f, err
		}
		openat2Missing.Store(true)
	}
	return walk(slash, rel, unix.O_PATH, true)
}

// mountID is the id of the mount f is on (the first field of mountinfo).
func mountID(f *os.File) (uint64, error) {
	var st unix.Statx_t
	err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st)
	if err == nil && st.Mask&unix.STATX_MNT_ID != 0 {
		return st.Mnt_id, nil
	}
	// Before Linux 5.8: fdinfo has it.
	fi, err := os.Open("/proc/self/fdinfo/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return 0, fmt.Errorf("mount id of %s: %w", f.Name(), err)
	}
	defer fi.Close()
	s := bufio.NewScanner(fi)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "mnt_id:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("mount id of %s: no mnt_id in fdinfo", f.Name())
}

// isMountRoot reports whether f is the root of its mount. Kernels without
// STATX_ATTR_MOUNT_ROOT (before 5.8) cannot tell; the mount id check then stands
// alone.
func isMountRoot(f *os.File) bool {
	var st unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, 0, &st); err != nil {
		return false
	}
	if st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return true
	}
	return st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
}

// MountID is the id of the mount that f is on, as in the first field of
// /proc/self/mountinfo.
func MountID(f *os.File) (uint64, error) {
	return mountID(f)
}
