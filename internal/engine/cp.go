package engine

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/archive"
	"github.com/berthproject/berth/internal/fsroot"
)

// CopyOptions tune a copy between a container and the host.
type CopyOptions struct {
	// FollowLink copies what a symlink at the container's path points to
	// (resolved inside the container), not the link (`docker cp -L`).
	FollowLink bool
}

// containerRoot opens the directory the container's paths resolve in, and
// returns what undoes it. For a running (or paused) container it is its
// init's root as the kernel sees it (/proc/PID/root): the container's own
// mount namespace, with its volumes, binds and /etc/hostname, as Docker's
// cp sees them. For a stopped one it is its root filesystem, mounted for
// the caller.
func (e *Engine) containerRoot(ctx context.Context, c *Container) (*os.File, func(), error) {
	if c.State.Status == StatusRunning || c.State.Status == StatusPaused {
		if root, err := liveRoot(c); err == nil {
			return root, func() { root.Close() }, nil
		}
	}
	rootfs, release, err := e.readRootfs(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	root, err := os.Open(rootfs)
	if err != nil {
		release()
		return nil, nil, err
	}
	return root, func() { root.Close(); release() }, nil
}

// liveRoot opens /proc/PID/root of the container's init, making sure the
// process is the container's (in its cgroup) and still the same process
// once the root is open (a pidfd against pid reuse).
func liveRoot(c *Container) (*os.File, error) {
	pid := c.State.Pid
	if pid <= 0 {
		return nil, fmt.Errorf("container %s has no process", c.Name)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil || !strings.Contains(string(cg), c.ID) {
		return nil, fmt.Errorf("process %d is not container %s's", pid, c.Name)
	}
	root, err := os.OpenFile(fmt.Sprintf("/proc/%d/root", pid), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	// The pidfd polls readable once the process has exited: then the pid
	// may have been reused between the checks and the open.
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 0); err != nil || n != 0 {
		root.Close()
		return nil, fmt.Errorf("process %d exited", pid)
	}
	return root, nil
}

// CopyFrom copies a path of the container to the host (`docker cp
// CONTAINER:SRC DST`). The container's path is resolved inside its root
// (its mount namespace while it runs): a symlink planted in the container
// cannot make berth read a host file. Semantics follow Docker: a symlink
// is copied as a link unless FollowLink or SRC ends in "/" or "/."; a
// directory lands inside an existing DST directory, or becomes DST (SRC
// ending in "/." copies its content); a file lands in an existing DST
// directory or becomes the file DST.
func (e *Engine) CopyFrom(ctx context.Context, ref, src, dst string, o CopyOptions) error {
	s, contentOnly, release, err := e.openCopySource(ctx, ref, src, o)
	if err != nil {
		return err
	}
	defer release()
	var st unix.Stat_t
	if err := unix.Fstat(int(s.Fd()), &st); err != nil {
		return err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	target := dst
	dstInfo, err := os.Stat(dst)
	switch {
	case err == nil && dstInfo.IsDir():
		if !isDir || !contentOnly {
			target = filepath.Join(dst, path.Base(path.Clean("/"+src)))
		}
	case err == nil && isDir:
		return fmt.Errorf("%w: cannot copy a directory to a file: %s", ErrInvalid, dst)
	case err == nil:
	case !errors.Is(err, os.ErrNotExist):
		return err
	case strings.HasSuffix(dst, "/") && !isDir:
		return fmt.Errorf("%w: the destination directory %s does not exist", ErrNotFound, dst)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.MkdirAll(target, os.FileMode(st.Mode&0o777)); err != nil {
			return err
		}
		return copyTree(ctx, fsroot.FdPath(s), target)
	case unix.S_IFLNK:
		link, err := readlinkFd(s)
		if err != nil {
			return err
		}
		if fi, err := os.Lstat(target); err == nil && !fi.IsDir() {
			os.Remove(target) // replaced, as Docker's extraction does
		}
		return os.Symlink(link, target)
	case unix.S_IFREG:
	default:
		return fmt.Errorf("%w: %s is not a regular file, a directory or a symlink", ErrInvalid, src)
	}
	// Reopen the resolved file through its descriptor: no path is
	// resolved again.
	in, err := os.OpenFile(fsroot.FdPath(s), os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.FileMode(st.Mode&0o777))
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// openCopySource resolves the container's SRC for cp (inside its root: a
// symlink planted in the container cannot lead out) and returns it as an
// O_PATH descriptor, whether SRC names a directory's content ("/."), and
// what undoes it all. A symlink is opened itself unless FollowLink or SRC
// ends in "/" or "/.".
func (e *Engine) openCopySource(ctx context.Context, ref, src string, o CopyOptions) (*os.File, bool, func(), error) {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return nil, false, nil, err
	}
	root, release, err := e.containerRoot(ctx, c)
	if err != nil {
		return nil, false, nil, err
	}
	contentOnly := src == "." || strings.HasSuffix(src, "/.")
	flags := unix.O_PATH
	if !o.FollowLink && !contentOnly && !strings.HasSuffix(src, "/") {
		flags |= unix.O_NOFOLLOW // the link itself
	}
	s, err := fsroot.Open(root, src, flags)
	if err != nil {
		release()
		return nil, false, nil, fmt.Errorf("%w: Could not find the file %s in container %s", ErrNotFound, src, c.Name)
	}
	return s, contentOnly, func() { s.Close(); release() }, nil
}

// readlinkFd reads the target of the symlink an O_PATH descriptor holds.
func readlinkFd(f *os.File) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(int(f.Fd()), "", buf)
	if err != nil {
		return "", fmt.Errorf("readlink %s: %w", f.Name(), err)
	}
	return string(buf[:n]), nil
}

// CopyTo copies a host path into the container (`docker cp SRC
// CONTAINER:DST`). The destination is resolved inside the container's root
// (its mount namespace while it runs) and every entry written stays
// inside it.
func (e *Engine) CopyTo(ctx context.Context, ref, src, dst string) error {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	root, release, err := e.containerRoot(ctx, c)
	if err != nil {
		return err
	}
	defer release()
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
	dstPath := filepath.Join(fsroot.FdPath(pd), name)
	out, err := os.OpenFile(dstPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, fi.Mode().Perm())
	if errors.Is(err, unix.ELOOP) {
		if err := unix.Unlinkat(int(pd.Fd()), name, 0); err != nil {
			return fmt.Errorf("replace the symlink %s: %w", path.Join(parent, name), err)
		}
		out, err = os.OpenFile(dstPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, fi.Mode().Perm())
	}
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

// CopyFromArchive writes the container's SRC to w as a tar stream (`docker
// cp CONTAINER:SRC -`), resolved as CopyFrom resolves it: entries are named
// after SRC's last element (a directory's below "NAME/"), or, for SRC
// ending in "/.", after the directory's content alone.
func (e *Engine) CopyFromArchive(ctx context.Context, ref, src string, w io.Writer, o CopyOptions) error {
	s, contentOnly, release, err := e.openCopySource(ctx, ref, src, o)
	if err != nil {
		return err
	}
	defer release()
	fi, err := os.Stat(fsroot.FdPath(s)) // the descriptor's own inode, a symlink included
	if err != nil {
		return err
	}
	name := path.Base(path.Clean("/" + src))
	if name == "/" {
		name = "."
	}
	tw := tar.NewWriter(w)
	switch {
	case fi.IsDir():
		prefix := name + "/"
		if contentOnly {
			prefix = "./"
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name, hdr.Uname, hdr.Gname = prefix, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if err := renameTar(ctx, fsroot.FdPath(s), prefix, tw); err != nil {
			return err
		}
	case fi.Mode()&os.ModeSymlink != 0:
		link, err := readlinkFd(s)
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name, hdr.Uname, hdr.Gname = name, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
	case fi.Mode().IsRegular():
		in, err := os.Open(fsroot.FdPath(s))
		if err != nil {
			return err
		}
		defer in.Close()
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name, hdr.Uname, hdr.Gname = name, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, in); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: %s is not a regular file, a directory or a symlink", ErrInvalid, src)
	}
	return tw.Close()
}

// renameTar writes the tree below dir to tw with every name under prefix.
func renameTar(ctx context.Context, dir, prefix string, tw *tar.Writer) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.Diff(ctx, dir, pw, archive.DiffOptions{})) }()
	defer pr.Close()
	tr := tar.NewReader(pr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		hdr.Name = prefix + strings.TrimPrefix(hdr.Name, "./")
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = prefix + strings.TrimPrefix(hdr.Linkname, "./")
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// CopyToArchive unpacks the tar stream r into the container's directory DST
// (`docker cp - CONTAINER:DST`), which must exist. Every entry stays inside
// DST, resolved inside the container's root.
func (e *Engine) CopyToArchive(ctx context.Context, ref string, r io.Reader, dst string) error {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return err
	}
	root, release, err := e.containerRoot(ctx, c)
	if err != nil {
		return err
	}
	defer release()
	d, err := fsroot.Open(root, dst, unix.O_PATH)
	if err != nil {
		return fmt.Errorf("%w: Could not find the file %s in container %s", ErrNotFound, dst, c.Name)
	}
	defer d.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%w: extraction point is not a directory: %s", ErrInvalid, dst)
	}
	_, err = archive.Apply(ctx, fsroot.FdPath(d), r, archive.ApplyOptions{Whiteouts: archive.WhiteoutApply})
	return err
}
