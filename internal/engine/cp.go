package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/archive"
	"github.com/berthproject/berth/internal/fsroot"
)

// CopyFrom copies a path of the container to the host (`docker cp
// CONTAINER:SRC DST`). The container's path is resolved inside its root
// filesystem: a symlink planted in the container cannot make berth read a
// host file. Semantics follow Docker: a directory lands inside an existing
// DST directory, or becomes DST; a file lands in an existing DST directory
// or becomes the file DST.
func (e *Engine) CopyFrom(ctx context.Context, ref, src, dst string) error {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return err
	}
	rootfs, release, err := e.readRootfs(ctx, c)
	if err != nil {
		return err
	}
	defer release()
	root, err := os.Open(rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	s, err := fsroot.Open(root, src, unix.O_PATH)
	if err != nil {
		return fmt.Errorf("%w: Could not find the file %s in container %s", ErrNotFound, src, c.Name)
	}
	defer s.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(s.Fd()), &st); err != nil {
		return err
	}
	target := dst
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		target = filepath.Join(dst, path.Base(path.Clean("/"+src)))
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err := os.MkdirAll(target, os.FileMode(st.Mode&0o7777)); err != nil {
			return err
		}
		return copyTree(ctx, fsroot.FdPath(s), target)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%w: %s is not a regular file or a directory", ErrInvalid, src)
	}
	in, err := os.OpenFile(fsroot.FdPath(s), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.FileMode(st.Mode&0o7777))
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// CopyTo copies a host path into the container (`docker cp SRC
// CONTAINER:DST`). The destination is resolved inside the container's root
// filesystem and every entry written stays inside it.
func (e *Engine) CopyTo(ctx context.Context, ref, src, dst string) error {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	rootfs, release, err := e.readRootfs(ctx, c)
	if err != nil {
		return err
	}
	defer release()
	root, err := os.Open(rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	// DST an existing directory: copy into it; else DST names the copy.
	parent, name := dst, filepath.Base(src)
	if d, err := fsroot.Open(root, dst, unix.O_PATH|unix.O_DIRECTORY); err == nil {
		d.Close()
	} else {
		parent, name = path.Dir(path.Clean("/"+dst)), path.Base(path.Clean("/"+dst))
	}
	pd, err := fsroot.Open(root, parent, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("%w: the destination directory %s does not exist in container %s", ErrNotFound, parent, c.Name)
	}
	defer pd.Close()
	if fi.IsDir() {
		target, err := fsroot.MkdirAll(pd, name, fi.Mode().Perm())
		if err != nil {
			return err
		}
		defer target.Close()
		return copyTree(ctx, src, fsroot.FdPath(target))
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file or a directory", ErrInvalid, src)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	// O_NOFOLLOW: a symlink at the destination name is replaced, never
	// followed.
	out, err := os.OpenFile(filepath.Join(fsroot.FdPath(pd), name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copyTree copies the tree at src into dst (both directories), keeping
// owners, modes, links and xattrs, through a layer tar: Apply keeps every
// entry inside dst.
func copyTree(ctx context.Context, src, dst string) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.Diff(ctx, src, pw, archive.DiffOptions{})) }()
	_, err := archive.Apply(ctx, dst, pr, archive.ApplyOptions{Whiteouts: archive.WhiteoutApply})
	pr.Close()
	return err
}
