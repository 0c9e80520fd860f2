package native

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// copyTree copies the tree src into dst (which must not exist), keeping
// owners, modes, times, xattrs, hard links within the tree, symlinks,
// devices, fifos and holes. src is a committed snapshot: nothing changes it
// while it is read, and the walk never follows a symlink. dst is built by
// this function only, each directory made by it before anything goes in, so
// paths below dst name exactly what was made.
func copyTree(ctx context.Context, src, dst string) error {
	isRoot := os.Geteuid() == 0
	links := map[[2]uint64]string{} // source inode -> first copy
	type dirMeta struct {
		path string
		st   unix.Stat_t
		from string
	}
	var dirs []dirMeta
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		typ := st.Mode & unix.S_IFMT
		if typ == unix.S_IFDIR {
			// Writable for now; the real mode is set after the content.
			if err := os.Mkdir(target, 0o700); err != nil {
				return fmt.Errorf("mkdir %s: %w", target, err)
			}
			dirs = append(dirs, dirMeta{path: target, st: st, from: p})
			return nil
		}
		key := [2]uint64{st.Dev, st.Ino}
		if st.Nlink > 1 {
			if first, ok := links[key]; ok {
				if err := os.Link(first, target); err != nil {
					return fmt.Errorf("hard link %s: %w", target, err)
				}
				return nil
			}
			links[key] = target
		}
		switch typ {
		case unix.S_IFREG:
			if err := copyFile(p, target, st.Size, buf); err != nil {
				return err
			}
		case unix.S_IFLNK:
			link, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("readlink %s: %w", p, err)
			}
			if err := os.Symlink(link, target); err != nil {
				return fmt.Errorf("symlink %s: %w", target, err)
			}
		case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
			if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
				return fmt.Errorf("mknod %s: %w", target, err)
			}
		default:
			return nil // sockets
		}
		return copyMeta(p, target, &st, isRoot)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := copyMeta(dirs[i].from, dirs[i].path, &dirs[i].st, isRoot); err != nil {
			return err
		}
	}
	return nil
}

// copyMeta gives target the owner, mode, xattrs and times of src (stat st):
// chown first, since it clears setuid bits and file capabilities.
func copyMeta(src, target string, st *unix.Stat_t, isRoot bool) error {
	if isRoot {
		if err := unix.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", target, err)
		}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(target, st.Mode&0o7777); err != nil {
			return fmt.Errorf("chmod %s: %w", target, err)
		}
	}
	if err := copyXattrs(src, target); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", target, err)
	}
	return nil
}

func copyXattrs(src, target string) error {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(src, buf)
	if errors.Is(err, unix.ERANGE) {
		size, err2 := unix.Llistxattr(src, nil)
		if err2 != nil {
			return fmt.Errorf("list xattrs of %s: %w", src, err2)
		}
		buf = make([]byte, size)
		n, err = unix.Llistxattr(src, buf)
	}
	if errors.Is(err, unix.ENOTSUP) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list xattrs of %s: %w", src, err)
	}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		size, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			return fmt.Errorf("read xattr %s of %s: %w", name, src, err)
		}
		val := make([]byte, size)
		size, err = unix.Lgetxattr(src, name, val)
		if err != nil {
			return fmt.Errorf("read xattr %s of %s: %w", name, src, err)
		}
		if err := unix.Lsetxattr(target, name, val[:size], 0); err != nil {
			return fmt.Errorf("set xattr %s on %s: %w", name, target, err)
		}
	}
	return nil
}

// copyFile copies a regular file: a reflink (FICLONE) where the filesystem
// shares extents, else copy_file_range over the data runs only (holes stay
// holes), else plain reads and writes.
func copyFile(src, dst string, size int64, buf []byte) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	err = copyData(in, out, size, buf)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

func copyData(in, out *os.File, size int64, buf []byte) error {
	if size == 0 {
		return nil
	}
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return nil
	}
	useRange := true
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // a hole to the end
		}
		if err != nil {
			data = off // no SEEK_DATA here: copy everything
		}
		end := size
		if err == nil {
			if hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE); err == nil {
				end = min(hole, size)
			}
		}
		if useRange {
			n, err := copyRange(in, out, data, end-data)
			if err == nil {
				off = end
				continue
			}
			if !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EOPNOTSUPP) {
				return err
			}
			useRange = false
			data += n
		}
		if _, err := io.CopyBuffer(&offsetWriter{f: out, off: data}, io.NewSectionReader(in, data, end-data), buf); err != nil {
			return err
		}
		off = end
	}
	return out.Truncate(size)
}

// copyRange copies n bytes at off with copy_file_range, returning how many
// it copied before an error.
func copyRange(in, out *os.File, off, n int64) (int64, error) {
	var done int64
	for done < n {
		roff, woff := off+done, off+done
		c, err := unix.CopyFileRange(int(in.Fd()), &roff, int(out.Fd()), &woff, int(min(n-done, 1<<30)), 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		if c == 0 {
			return done, io.ErrUnexpectedEOF
		}
		done += int64(c)
	}
	return done, nil
}

type offsetWriter struct {
	f   *os.File
	off int64
}

func (w *offsetWriter) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}
