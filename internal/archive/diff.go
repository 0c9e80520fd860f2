package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DiffOptions tune Diff and DiffDirs.
type DiffOptions struct {
	// UIDMaps and GIDMaps map the ids on disk (host ids) back to the ids
	// written in the layer (container ids), for user namespaces. Empty:
	// identity.
	UIDMaps, GIDMaps []specs.LinuxIDMapping
	// ModTimeLimit, when set, replaces every later modification time, for
	// reproducible layers (SOURCE_DATE_EPOCH).
	ModTimeLimit time.Time
}

// Diff writes the layer tar of an overlay upper directory: every entry of
// upper, with 0/0 character devices written as ".wh.NAME" and opaque
// directories followed by their ".wh..wh..opq" marker. Entries come in
// depth-first order, each directory's entries sorted by name; the output
// depends only on what is on disk (modification times as stored, to the
// nanosecond).
func Diff(ctx context.Context, upper string, w io.Writer, opts DiffOptions) error {
	t := newTarWriter(w, opts)
	err := walkTree(ctx, upper, func(n *node) error {
		if isWhiteout(&n.st) {
			return t.whiteout(path.Dir(n.path), n.name)
		}
		if err := t.entry(n); err != nil {
			return err
		}
		if !n.isDir() {
			return nil
		}
		opaque, err := isOpaque(n.dirfd, n.name)
		if err != nil {
			return fmt.Errorf("%s: %w", n.path, err)
		}
		if opaque {
			return t.opaque(n.path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("diff %s: %w", upper, err)
	}
	if err := t.close(); err != nil {
		return fmt.Errorf("diff %s: %w", upper, err)
	}
	return nil
}

// DiffDirs writes the layer tar that turns tree lower into tree upper (two
// complete trees, as a copying snapshotter keeps them): added and changed
// entries, a ".wh.NAME" for each deleted one, and the directories holding
// changes (so their owner and mode travel with the layer). Files are compared
// by type, mode, owner, size, modification time, device number, symlink target
// and extended attributes, not by content; directories by type, mode, owner
// and extended attributes.
func DiffDirs(ctx context.Context, lower, upper string, w io.Writer, opts DiffOptions) error {
	t := newTarWriter(w, opts)
	err := comparePair(ctx, lower, upper, func(c change) error {
		if c.kind == ChangeDelete {
			return t.whiteout(path.Dir(c.path), path.Base(c.path))
		}
		return t.entry(c.node)
	})
	if err != nil {
		return fmt.Errorf("diff %s against %s: %w", upper, lower, err)
	}
	if err := t.close(); err != nil {
		return fmt.Errorf("diff %s against %s: %w", upper, lower, err)
	}
	return nil
}

// tarWriter writes layer entries for nodes.
type tarWriter struct {
	bw   *bufio.Writer
	tw   *tar.Writer
	opts DiffOptions
	// links maps an inode with several links to the first name written for
	// it; later names become hard link entries.
	links map[inode]string
	buf   []byte
}

type inode struct{ dev, ino uint64 }

func newTarWriter(w io.Writer, opts DiffOptions) *tarWriter {
	bw := bufio.NewWriterSize(w, 256<<10)
	return &tarWriter{bw: bw, tw: tar.NewWriter(bw), opts: opts, links: map[inode]string{}, buf: make([]byte, 1<<20)}
}

func (t *tarWriter) close() error {
	if err := t.tw.Close(); err != nil {
		return fmt.Errorf("finish tar: %w", err)
	}
	if err := t.bw.Flush(); err != nil {
		return fmt.Errorf("write tar: %w", err)
	}
	return nil
}

// markerTime is the modification time of the whiteout and opaque entries the
// layer synthesizes: fixed, so the same changes give the same layer.
var markerTime = time.Unix(0, 0)

// whiteout writes the entry deleting name in dir.
func (t *tarWriter) whiteout(dir, name string) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: path.Join(dir, whiteoutPrefix+name), ModTime: markerTime, Format: tar.FormatPAX}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write whiteout %s: %w", hdr.Name, err)
	}
	return nil
}

// opaque writes the marker that hides the lower content of dir.
func (t *tarWriter) opaque(dir string) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: path.Join(dir, whiteoutOpaque), ModTime: markerTime, Format: tar.FormatPAX}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write opaque marker %s: %w", hdr.Name, err)
	}
	return nil
}

// header describes node n as a tar header (content not included).
func (t *tarWriter) header(n *node) (*tar.Header, error) {
	uid, err := unmapID(t.opts.UIDMaps, int(n.st.Uid))
	if err != nil {
		return nil, fmt.Errorf("%s: owner uid %d: %w", n.path, n.st.Uid, err)
	}
	gid, err := unmapID(t.opts.GIDMaps, int(n.st.Gid))
	if err != nil {
		return nil, fmt.Errorf("%s: owner gid %d: %w", n.path, n.st.Gid, err)
	}
	mtime := time.Unix(n.st.Mtim.Unix())
	if !t.opts.ModTimeLimit.IsZero() && mtime.After(t.opts.ModTimeLimit) {
		mtime = t.opts.ModTimeLimit
	}
	hdr := &tar.Header{
		Name:    n.path,
		Mode:    int64(n.st.Mode & 0o7777),
		Uid:     uid,
		Gid:     gid,
		ModTime: mtime,
		Format:  tar.FormatPAX,
	}
	switch n.st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = n.st.Size
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		target, err := readlinkAt(n.dirfd, n.name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.path, err)
		}
		hdr.Linkname = target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if n.st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(n.st.Rdev))
		hdr.Devminor = int64(unix.Minor(n.st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFSOCK:
		return nil, nil // sockets do not outlive their process; layers skip them
	default:
		return nil, fmt.Errorf("%s: unsupported file type %#o", n.path, n.st.Mode&unix.S_IFMT)
	}
	xattrs, err := xattrsAt(n.dirfd, n.name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.path, err)
	}
	for k, v := range xattrs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxXattr+k] = v
	}
	return hdr, nil
}

// entry writes node n: its header and, for a regular file, its content (as a
// sparse entry when the file has holes), or a hard link to the first name of
// its inode already written.
func (t *tarWriter) entry(n *node) error {
	hdr, err := t.header(n)
	if err != nil || hdr == nil {
		return err
	}
	if !n.isDir() && n.st.Nlink > 1 {
		key := inode{dev: n.st.Dev, ino: n.st.Ino}
		if first, ok := t.links[key]; ok {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			hdr.Size = 0
			if err := t.tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("write %s: %w", n.path, err)
			}
			return nil
		}
		t.links[key] = n.path
	}
	if hdr.Typeflag != tar.TypeReg {
		if err := t.tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write %s: %w", n.path, err)
		}
		return nil
	}

	fd, err := unix.Openat(n.dirfd, n.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", n.path, err)
	}
	f := os.NewFile(uintptr(fd), n.path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Ino != n.st.Ino || st.Dev != n.st.Dev {
		return fmt.Errorf("%s changed while it was read", n.path)
	}
	segs, err := dataSegments(fd, hdr.Size)
	if err != nil {
		return fmt.Errorf("%s: %w", n.path, err)
	}
	if segs != nil {
		return t.writeSparse(hdr, f, segs)
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write %s: %w", n.path, err)
	}
	// pread through a SectionReader: dataSegments moved the file offset.
	copied, err := io.CopyBuffer(t.tw, io.NewSectionReader(f, 0, hdr.Size), t.buf)
	if err != nil {
		return fmt.Errorf("write %s: %w", n.path, err)
	}
	if copied != hdr.Size {
		return fmt.Errorf("%s shrank from %d to %d bytes while it was read", n.path, hdr.Size, copied)
	}
	return nil
}

func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", fmt.Errorf("readlink: %w", err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
