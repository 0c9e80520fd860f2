package archive

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sync"

	"github.com/berthproject/berth/internal/fsroot"
	"golang.org/x/sys/unix"
)

// The directory cache: Apply keeps a descriptor of each directory entries
// went into, by clean path, so that an entry costs no path resolution: it is
// created with one *at call relative to its parent's descriptor. A
// directory missing from the cache is opened by name relative to its
// parent's (cached) descriptor, without following a symlink; only when that
// name is a symlink that was there before the layer (the layer's own are
// refused before any lookup) is the whole path resolved inside the root by
// fsroot, as the kernel would follow it with the root as "/".
//
// The cache holds while nothing is removed: a path that named a directory
// still names the same one. Whatever this layer removes (a replaced entry, a
// whiteout, an opaque directory's content) may have been on the way to a
// cached directory, so every removal retires the whole cache. Descriptors
// retired during an entry stay open until that entry is done, since it may
// still use them.

// openDir is a cached directory descriptor.
type openDir struct {
	fd int
	// pathOnly: an O_PATH descriptor (the root, or a directory this process
	// may not read), good for *at calls only.
	pathOnly bool
	// direct: opened by name in its parent without following a symlink, so
	// the path names this very directory (not a symlink to it).
	direct bool
	// sgid: the directory has the setgid bit, so what is created in it takes
	// its group.
	sgid bool
}

// maxOpenDirs bounds the descriptors one Apply keeps open: 1024 (all the
// directories of most layers, so that their times are set through the cache
// at the end), less where the open-file limit is low, since a few layers
// unpack at once. Past it the cache starts afresh with the next entry.
var maxOpenDirs = sync.OnceValue(func() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 64
	}
	return int(max(16, min(1024, lim.Cur/16)))
})

// parent returns directory dir inside the root, creating it (0755) and its
// missing parents. dir and none of its prefixes may be a symlink this layer
// created; symlinks that were there before are followed, inside the root.
func (a *applier) parent(dir string) (openDir, error) {
	d, err := a.resolve(dir, true)
	if errors.Is(err, ErrUnsafeEntry) {
		return openDir{}, err
	}
	if errors.Is(err, unix.ENOTDIR) {
		return openDir{}, fmt.Errorf("parent %s is not a directory: %w", dir, err)
	}
	if err != nil {
		return openDir{}, fmt.Errorf("open parent %s: %w", dir, err)
	}
	return d, nil
}

// lookup returns existing directory dir like parent, without creating it.
func (a *applier) lookup(dir string) (openDir, error) {
	return a.resolve(dir, false)
}

func (a *applier) resolve(dir string, create bool) (openDir, error) {
	if d, ok := a.open[dir]; ok {
		return d, nil
	}
	if err := a.checkThroughSymlink(dir); err != nil {
		return openDir{}, err
	}
	d, err := a.openDir(dir, create)
	if err != nil {
		return openDir{}, err
	}
	a.open[dir] = d
	return d, nil
}

// openDir opens dir (not ".", not cached) relative to its parent.
func (a *applier) openDir(dir string, create bool) (openDir, error) {
	up, base := splitName(dir)
	pd, err := a.resolve(up, create)
	if err != nil {
		return openDir{}, err
	}
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(pd.fd, base, flags, 0)
	if err == nil {
		sgid, err := isSetgid(fd)
		if err != nil {
			unix.Close(fd)
			return openDir{}, err
		}
		return openDir{fd: fd, direct: true, sgid: sgid}, nil
	}
	if errors.Is(err, unix.ENOENT) && create {
		if err := unix.Mkdirat(pd.fd, base, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return openDir{}, fmt.Errorf("mkdir %s: %w", dir, err)
		}
		if a.created != nil {
			a.created[dir] = true
		}
		fd, err = unix.Openat(pd.fd, base, flags, 0)
		if err == nil {
			// mkdir in a setgid directory makes a setgid directory.
			return openDir{fd: fd, direct: true, sgid: pd.sgid}, nil
		}
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EACCES) {
		// A symlink that was there before the layer, something that is not
		// a directory (fsroot says so), or a directory this process may not
		// read.
		return a.openInRoot(dir, create)
	}
	return openDir{}, err
}

// openInRoot resolves dir from the root with fsroot (following symlinks
// inside the root), creating it when create is set and it is missing.
func (a *applier) openInRoot(dir string, create bool) (openDir, error) {
	open := func() (*os.File, bool, error) {
		f, err := fsroot.Open(a.root, dir, unix.O_RDONLY|unix.O_DIRECTORY)
		if errors.Is(err, unix.EACCES) {
			f, err = fsroot.Open(a.root, dir, unix.O_PATH|unix.O_DIRECTORY)
			return f, true, err
		}
		return f, false, err
	}
	f, pathOnly, err := open()
	if errors.Is(err, unix.ENOENT) && create {
		var m *os.File
		if m, err = fsroot.MkdirAll(a.root, dir, 0o755); err == nil {
			m.Close()
			if a.created != nil {
				for p := dir; p != "."; p = path.Dir(p) {
					a.created[p] = true
				}
			}
			f, pathOnly, err = open()
		}
	}
	if err != nil {
		return openDir{}, err
	}
	defer f.Close()
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return openDir{}, fmt.Errorf("dup %s: %w", dir, err)
	}
	unix.CloseOnExec(fd)
	sgid, err := isSetgid(fd)
	if err != nil {
		unix.Close(fd)
		return openDir{}, err
	}
	return openDir{fd: fd, pathOnly: pathOnly, sgid: sgid}, nil
}

func isSetgid(fd int) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, fmt.Errorf("stat directory: %w", err)
	}
	return st.Mode&unix.S_ISGID != 0, nil
}

func (a *applier) checkThroughSymlink(dir string) error {
	for p := dir; p != "."; p = path.Dir(p) {
		if a.symlinks[p] {
			return fmt.Errorf("%w: %s is a symlink created by this layer", ErrUnsafeEntry, p)
		}
	}
	return nil
}

// cacheDir caches d as directory name.
func (a *applier) cacheDir(name string, d openDir) {
	if old, ok := a.open[name]; ok && old.fd != d.fd {
		a.retired = append(a.retired, old.fd)
	}
	a.open[name] = d
}

// retireDirs empties the cache (all but the root), before something is
// removed.
func (a *applier) retireDirs() {
	for p, d := range a.open {
		if p != "." {
			a.retired = append(a.retired, d.fd)
			delete(a.open, p)
		}
	}
}

// closeRetired closes the descriptors retired during the entry just done.
func (a *applier) closeRetired() {
	for _, fd := range a.retired {
		unix.Close(fd)
	}
	a.retired = a.retired[:0]
}

// trimDirs starts the cache afresh when it has grown past maxOpenDirs.
func (a *applier) trimDirs() {
	if len(a.open) > maxOpenDirs() {
		a.retireDirs()
		a.closeRetired()
	}
}

// closeDirs closes every cached descriptor but the root's (Apply's).
func (a *applier) closeDirs() {
	a.retireDirs()
	a.closeRetired()
}
