package fsroot

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// maxSymlinks is the number of symlinks one resolution may follow, the kernel's
// MAXSYMLINKS.
const maxSymlinks = 40

// openat2Missing is set once openat2 has answered ENOSYS (kernel older than 5.6,
// or a seccomp filter); later resolutions go straight to the userspace walk.
var openat2Missing atomic.Bool

// resolver holds the choice between the two implementations of the same rules.
// The exported functions use the kernel one when it exists; tests run every case
// against both.
type resolver struct {
	// walk forces the userspace walk even where openat2 exists.
	walk bool
}

func current() resolver {
	return resolver{walk: openat2Missing.Load()}
}

// Open resolves p inside root and opens the result with flags (O_CLOEXEC is
// always added). A trailing symlink is followed unless flags has O_NOFOLLOW (then,
// with O_PATH, the link itself is returned). O_CREAT is refused: use MkdirAll,
// MkFile, Mknod or Symlink to create things.
func Open(root *os.File, p string, flags int) (*os.File, error) {
	return current().open(root, p, flags)
}

// clean turns a container path into the relative form both resolvers walk:
// lexically cleaned as if absolute (so leading ".." vanish), without the leading
// slash, "." for the root itself.
func clean(p string) string {
	c := path.Clean("/" + p)
	if c == "/" {
		return "."
	}
	return c[1:]
}

func (r resolver) open(root *os.File, p string, flags int) (*os.File, error) {
	if flags&unix.O_CREAT != 0 {
		return nil, &os.PathError{Op: "open in root", Path: p, Err: unix.EINVAL}
	}
	rel := clean(p)
	if !r.walk {
		f, err := openat2(root, rel, flags, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
		if !errors.Is(err, unix.ENOSYS) {
			return f, err
		}
		openat2Missing.Store(true)
	}
	return walk(root, rel, flags, false)
}

// openat2 opens rel below dir with the given resolve flags, retrying the EAGAIN
// the kernel returns when a rename or mount raced with a ".." lookup.
func openat2(dir *os.File, rel string, flags int, resolve uint64) (*os.File, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolve}
	var (
		fd  int
		err error
	)
	for range 16 {
		fd, err = unix.Openat2(int(dir.Fd()), rel, &how)
		if err != unix.EAGAIN && err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: displayPath(dir, rel), Err: err}
	}
	return os.NewFile(uintptr(fd), displayPath(dir, rel)), nil
}

// displayPath names rel below dir for error messages and *os.File names.
func displayPath(dir *os.File, rel string) string {
	return path.Join(dir.Name(), rel)
}

// walk is the userspace resolver. The directories walked so far are kept open on
// a stack: ".." pops (and cannot pop the root), an absolute symlink empties the
// stack back to the root, so no lookup ever starts outside the root. With
// noSymlinks every symlink is an error (RESOLVE_NO_SYMLINKS), which Mount uses to
// re-check a path the kernel printed.
func walk(root *os.File, rel string, flags int, noSymlinks bool) (_ *os.File, err error) {
	fail := func(e error) error { return &os.PathError{Op: "resolve in root", Path: displayPath(root, rel), Err: e} }

	rootFd, err := unix.FcntlInt(root.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fail(err)
	}
	// fds[i] is the directory reached by names[:i]; fds[0] is the root.
	fds := []int{rootFd}
	names := []string{""}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	pop := func() {
		unix.Close(fds[len(fds)-1])
		fds, names = fds[:len(fds)-1], names[:len(names)-1]
	}

	todo := splitPath(rel)
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(fds) > 1 {
				pop()
			}
			continue
		}
		fd, err := unix.Openat(fds[len(fds)-1], name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fail(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, fail(err)
		}
		isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
		if isLink && len(todo) == 0 && flags&unix.O_NOFOLLOW != 0 {
			// The caller wants the trailing symlink itself.
			fds, names = append(fds, fd), append(names, name)
			break
		}
		if !isLink {
			fds, names = append(fds, fd), append(names, name)
			continue
		}
		if noSymlinks {
			unix.Close(fd)
			return nil, fail(unix.ELOOP)
		}
		links++
		if links > maxSymlinks {
			unix.Close(fd)
			return nil, fail(unix.ELOOP)
		}
		target, err := readlinkFd(fd)
		if err == nil && isMagicLink(fd, target) {
			err = unix.ELOOP
		}
		unix.Close(fd)
		if err != nil {
			return nil, fail(err)
		}
		if strings.HasPrefix(target, "/") {
			for len(fds) > 1 {
				pop()
			}
		}
		todo = append(splitPath(target), todo...)
	}

	last := fds[len(fds)-1]
	var st unix.Stat_t
	if err := unix.Fstat(last, &st); err != nil {
		return nil, fail(err)
	}
	if flags&unix.O_DIRECTORY != 0 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fail(unix.ENOTDIR)
	}
	// Re-open the final component from its parent with the caller's flags.
	// O_NOFOLLOW makes sure a symlink swapped in since the walk is not followed,
	// and the inode check makes sure it is still the object walked to.
	var fd int
	if len(fds) == 1 {
		fd, err = unix.Openat(last, ".", flags|unix.O_CLOEXEC, 0)
	} else {
		fd, err = unix.Openat(fds[len(fds)-2], names[len(names)-1], flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fail(err)
	}
	var got unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil {
		unix.Close(fd)
		return nil, fail(err)
	}
	if got.Dev != st.Dev || got.Ino != st.Ino {
		unix.Close(fd)
		return nil, fail(errors.New("path changed while it was being resolved"))
	}
	return os.NewFile(uintptr(fd), displayPath(root, rel)), nil
}

func splitPath(p string) []string {
	return strings.Split(p, "/")
}

// readlinkFd reads the target of the symlink that fd (an O_PATH descriptor of
// the link itself) refers to.
func readlinkFd(fd int) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// isMagicLink reports whether the symlink fd is a procfs magic link
// (/proc/PID/fd/N, exe, cwd, root, ns/*, map_files/*), which the kernel resolves
// by jumping to an object instead of following text. Ordinary procfs links
// (/proc/self, /proc/mounts) have relative targets; magic ones print an absolute
// path or "type:[inode]".
func isMagicLink(fd int, target string) bool {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil || fs.Type != unix.PROC_SUPER_MAGIC {
		return false
	}
	return strings.HasPrefix(target, "/") || strings.Contains(target, ":")
}

// FdPath is the /proc/self/fd path of f, for system calls that only take a path.
// The kernel follows it to exactly the object f refers to.
func FdPath(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}

// Path is the kernel's name for the object f refers to, as seen from the current
// root (the target of /proc/self/fd/N).
func Path(f *os.File) (string, error) {
	p, err := os.Readlink(FdPath(f))
	if err != nil {
		return "", fmt.Errorf("path of fd %d (%s): %w", f.Fd(), f.Name(), err)
	}
	return p, nil
}
