package archive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// node is one entry of a tree being read. Trees are read relative to open
// directory descriptors, one component at a time, never following a symlink:
// a running container may change its own upper directory while it is read,
// and nothing it does may make us read a file outside it.
type node struct {
	path  string // relative to the tree's root, clean, never "."
	dirfd int    // the directory holding it (open while the node is visited)
	name  string // last component of path
	st    unix.Stat_t
}

func (n *node) isDir() bool { return n.st.Mode&unix.S_IFMT == unix.S_IFDIR }

// isWhiteout reports whether st is an overlay whiteout: a 0/0 char device.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// procPath names entry name of directory dirfd for the path-only system calls
// (llistxattr): the kernel follows /proc/self/fd/N to exactly that directory,
// and the last component is not followed by the l* calls.
func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + itoa(dirfd) + "/" + name
}

func openRoot(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return fd, nil
}

func openDirAt(dirfd int, name string) (int, error) {
	return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// readNames lists directory fd, sorted. fd keeps its offset at the end, so
// each directory is listed once.
func readNames(fd int) ([]string, error) {
	// A duplicate gets its own open file description, so the caller's fd
	// stays usable for *at calls and its close stays the caller's.
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(dfd), ".")
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// walkTree calls fn for every entry below root in depth-first order, the
// entries of each directory sorted by name, a directory before its content.
// Descending happens after fn returns, with a fresh O_NOFOLLOW open of the
// directory that is checked to be the inode fn saw.
func walkTree(ctx context.Context, root string, fn func(n *node) error) error {
	fd, err := openRoot(root)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return walkDir(ctx, fd, "", fn)
}

func walkDir(ctx context.Context, dirfd int, rel string, fn func(n *node) error) error {
	names, err := readNames(dirfd)
	if err != nil {
		return fmt.Errorf("list %s: %w", displayRel(rel), err)
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := node{path: path.Join(rel, name), dirfd: dirfd, name: name}
		if err := unix.Fstatat(dirfd, name, &n.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // removed while we read
			}
			return fmt.Errorf("stat %s: %w", n.path, err)
		}
		if err := fn(&n); err != nil {
			return err
		}
		if !n.isDir() {
			continue
		}
		sub, err := openSameDir(dirfd, &n)
		if err != nil {
			return err
		}
		err = walkDir(ctx, sub, n.path, fn)
		unix.Close(sub)
		if err != nil {
			return err
		}
	}
	return nil
}

// openSameDir opens directory n (no symlink followed) and checks it is still
// the inode that was stat'ed.
func openSameDir(dirfd int, n *node) (int, error) {
	fd, err := openDirAt(dirfd, n.name)
	if err != nil {
		return -1, fmt.Errorf("open directory %s: %w", n.path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Ino != n.st.Ino || st.Dev != n.st.Dev {
		unix.Close(fd)
		return -1, fmt.Errorf("directory %s changed while it was read", n.path)
	}
	return fd, nil
}

func displayRel(rel string) string {
	if rel == "" {
		return "/"
	}
	return rel
}

// skippedXattr reports the extended attributes that describe the storage,
// not the file, and are never carried in a layer: overlayfs bookkeeping
// (opaque, origin, impure, redirect, ... in trusted. or user. for
// unprivileged mounts) and the host's SELinux label.
func skippedXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") ||
		strings.HasPrefix(name, "user.overlay.") ||
		name == "security.selinux"
}

// xattrsAt reads the extended attributes of entry name in dirfd, without
// following a symlink; nil when there are none.
func xattrsAt(dirfd int, name string) (map[string]string, error) {
	p := procPath(dirfd, name)
	buf := make([]byte, 1024)
	var list []byte
	for {
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list xattrs: %w", err)
		}
		list = buf[:n]
		break
	}
	var out map[string]string
	for _, k := range strings.Split(string(list), "\x00") {
		if k == "" || skippedXattr(k) {
			continue
		}
		v, err := lgetxattr(p, k)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read xattr %s: %w", k, err)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = string(v)
	}
	return out, nil
}

func lgetxattr(p, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// isOpaque reports whether directory name in dirfd is an overlay opaque
// directory.
func isOpaque(dirfd int, name string) (bool, error) {
	v, err := lgetxattr(procPath(dirfd, name), overlayOpaque)
	if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", overlayOpaque, err)
	}
	return string(v) == "y", nil
}
