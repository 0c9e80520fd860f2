package fsroot

import (
	"errors"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// MkdirAll creates the missing directories of p inside root (with mode, less the
// umask) and returns an O_PATH descriptor of the final directory. Symlinks on the
// way are followed inside root; a symlink that points nowhere is an error rather
// than a place to create directories, and so is an existing non-directory.
func MkdirAll(root *os.File, p string, mode os.FileMode) (*os.File, error) {
	return current().mkdirAll(root, p, mode)
}

// MkFile makes sure p exists inside root as something that is not a directory,
// creating the parent directories (0755) and an empty regular file with mode if
// nothing is there, and returns an O_PATH descriptor of it. It is the target for
// bind mounts of files.
func MkFile(root *os.File, p string, mode os.FileMode) (*os.File, error) {
	return current().mkFile(root, p, mode)
}

// Mknod creates the special file p inside root with mknod(2)'s mode (type and
// permission bits, less the umask) and device number. The parent directories are
// created (0755) if missing. An existing p gives an error matching fs.ErrExist.
func Mknod(root *os.File, p string, mode uint32, dev uint64) error {
	return current().mknod(root, p, mode, dev)
}

// Symlink creates p inside root as a symlink to target. The parent directories
// are created (0755) if missing; an existing p gives an error matching
// fs.ErrExist. target is stored as given: it is resolved later, by whoever
// follows the link, from inside the container.
func Symlink(root *os.File, target, p string) error {
	return current().symlink(root, target, p)
}

func (r resolver) mkdirAll(root *os.File, p string, mode os.FileMode) (*os.File, error) {
	rel := clean(p)
	dir, err := r.open(root, ".", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	if rel == "." {
		return dir, nil
	}
	// Walk one more component at a time, resolving each prefix afresh inside
	// root, so a symlink anywhere is followed the same way Open would.
	names := splitPath(rel)
	for i, name := range names {
		prefix := path.Join(names[:i+1]...)
		next, err := r.open(root, prefix, unix.O_PATH|unix.O_DIRECTORY)
		if errors.Is(err, unix.ENOENT) {
			// dir is what names[:i] resolves to, so name is created exactly
			// where the lookup of prefix failed.
			if err := unix.Mkdirat(int(dir.Fd()), name, uint32(mode.Perm())); err != nil && !errors.Is(err, unix.EEXIST) {
				dir.Close()
				return nil, fmt.Errorf("mkdir %s in %s: %w", prefix, root.Name(), err)
			}
			next, err = r.open(root, prefix, unix.O_PATH|unix.O_DIRECTORY)
			if errors.Is(err, unix.ENOENT) {
				err = fmt.Errorf("%s in %s is a dangling symlink: %w", prefix, root.Name(), err)
			}
		}
		dir.Close()
		if err != nil {
			return nil, err
		}
		dir = next
	}
	return dir, nil
}

// parent creates and opens the directory that will hold p, and returns p's last
// component, which is then used with the *at system calls (a single name: no
// symlink on the way can be followed).
func (r resolver) parent(root *os.File, p string) (*os.File, string, error) {
	rel := clean(p)
	if rel == "." {
		return nil, "", &os.PathError{Op: "create in root", Path: p, Err: unix.EEXIST}
	}
	dir, err := r.mkdirAll(root, path.Dir(rel), 0o755)
	if err != nil {
		return nil, "", err
	}
	return dir, path.Base(rel), nil
}

func (r resolver) mkFile(root *os.File, p string, mode os.FileMode) (*os.File, error) {
	dir, name, err := r.parent(root, p)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, uint32(mode.Perm()))
	if err == nil {
		unix.Close(fd)
	} else if !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create %s in %s: %w", p, root.Name(), err)
	}
	f, err := r.open(root, p, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("%s in %s is a dangling symlink: %w", p, root.Name(), err)
	}
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s in %s: %w", p, root.Name(), err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		f.Close()
		return nil, &os.PathError{Op: "create file in root", Path: p, Err: unix.EISDIR}
	}
	return f, nil
}

func (r resolver) mknod(root *os.File, p string, mode uint32, dev uint64) error {
	dir, name, err := r.parent(root, p)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := unix.Mknodat(int(dir.Fd()), name, mode, int(dev)); err != nil {
		return &os.PathError{Op: "mknod", Path: p, Err: err}
	}
	return nil
}

func (r resolver) symlink(root *os.File, target, p string) error {
	dir, name, err := r.parent(root, p)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := unix.Symlinkat(target, int(dir.Fd()), name); err != nil {
		return &os.PathError{Op: "symlink", Path: p, Err: err}
	}
	return nil
}
