package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"strings"
	"time"
	"unsafe"

	"github.com/berthproject/berth/internal/fsroot"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// WhiteoutMode says what Apply does with a layer's whiteout entries.
type WhiteoutMode int

const (
	// WhiteoutOverlay records deletions the way overlayfs reads them: ".wh.NAME"
	// becomes a 0/0 character device NAME and ".wh..wh..opq" the xattr
	// trusted.overlay.opaque=y on its directory. The layer is unpacked on its
	// own, into an empty directory, without its parents.
	WhiteoutOverlay WhiteoutMode = iota
	// WhiteoutApply carries deletions out: NAME is removed, and an opaque
	// directory loses every entry this layer did not add. The layer is unpacked
	// on top of a copy of its parent.
	WhiteoutApply
)

func (m WhiteoutMode) String() string {
	switch m {
	case WhiteoutOverlay:
		return "overlay"
	case WhiteoutApply:
		return "apply"
	}
	return fmt.Sprintf("WhiteoutMode(%d)", int(m))
}

const (
	whiteoutPrefix = ".wh."
	// whiteoutMeta starts aufs metadata names (".wh..wh.plnk", ".wh..wh.aufs"),
	// which mean nothing outside aufs and are skipped.
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"

	// overlayOpaque marks an overlay directory as hiding its lower content.
	overlayOpaque = "trusted.overlay.opaque"

	paxXattr = "SCHILY.xattr."
)

// ErrUnsafeEntry is wrapped by the error Apply returns for an entry that would
// reach outside the target directory: an absolute name, "..", a path through a
// symlink the layer itself created, a hard link to such a place.
var ErrUnsafeEntry = errors.New("unsafe layer entry")

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Whiteouts chooses how deletions are recorded (WhiteoutOverlay by default).
	Whiteouts WhiteoutMode
	// UIDMaps and GIDMaps map the layer's ids (container ids) to the ids
	// written on disk (host ids), for user namespaces. Empty: identity. An id
	// outside the maps is an error naming the entry.
	UIDMaps, GIDMaps []specs.LinuxIDMapping
	// NoLchown leaves files owned by the caller (unprivileged use).
	NoLchown bool
	// Sync flushes the target's filesystem (syncfs) once at the end, so the
	// layer is on disk before the caller records it as complete.
	Sync bool
}

// ApplyResult describes the layer Apply read.
type ApplyResult struct {
	// DiffID is the sha256 of the uncompressed tar stream: the layer's diff id.
	DiffID digest.Digest
	// Size is the length of the uncompressed tar stream.
	Size int64
}

// Apply unpacks the uncompressed layer tar r into dir (which must exist) and
// returns its diff id and size, computed over every byte of r. It refuses
// (ErrUnsafeEntry) entries that would reach outside dir and never writes
// there. On error dir holds part of the layer: callers unpack into a snapshot
// they discard on failure.
func Apply(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) (ApplyResult, error) {
	root, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ApplyResult{}, fmt.Errorf("open layer target: %w", err)
	}
	defer root.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(root.Fd()), &st); err != nil {
		return ApplyResult{}, fmt.Errorf("stat layer target: %w", err)
	}

	hr := &hashReader{r: r, h: sha256.New()}
	a := &applier{
		ctx:      ctx,
		dir:      dir,
		root:     root,
		opts:     opts,
		symlinks: map[string]bool{},
		open:     map[string]openDir{".": {fd: int(root.Fd()), pathOnly: true, direct: true, sgid: st.Mode&unix.S_ISGID != 0}},
		buf:      alignedBuffer(1<<20, directAlign),
		umask:    processUmask(),
		euid:     os.Geteuid(),
		egid:     os.Getegid(),
	}
	if opts.Whiteouts == WhiteoutApply {
		a.created = map[string]bool{}
	}
	defer a.closeDirs()

	tr := tar.NewReader(bufio.NewReaderSize(hr, 128<<10))
	for {
		if err := ctx.Err(); err != nil {
			return ApplyResult{}, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return ApplyResult{}, fmt.Errorf("read layer tar after %d bytes: %w", hr.n, err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return ApplyResult{}, fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
	// The diff id covers the whole stream, including the zero blocks after the
	// end-of-archive marker.
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return ApplyResult{}, fmt.Errorf("read layer tar after %d bytes: %w", hr.n, err)
	}
	if err := a.finishDirs(); err != nil {
		return ApplyResult{}, err
	}
	if opts.Sync {
		if err := syncfs(dir); err != nil {
			return ApplyResult{}, err
		}
	}
	return ApplyResult{DiffID: digest.NewDigest(digest.SHA256, hr.h), Size: hr.n}, nil
}

// hashReader hashes and counts what is read through it.
type hashReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if n > 0 {
		h.h.Write(p[:n])
		h.n += int64(n)
	}
	return n, err
}

// applier is the state of one Apply.
type applier struct {
	ctx  context.Context
	dir  string
	root *os.File // O_PATH descriptor of dir
	opts ApplyOptions

	// symlinks holds the paths of the symlinks this layer created: no later
	// entry may be placed through them.
	symlinks map[string]bool
	// created holds, in WhiteoutApply mode, the paths this layer created, which
	// an opaque marker keeps.
	created map[string]bool
	// dirs are the directories whose times are set at the end, once nothing
	// more is created in them.
	dirs []dirTimes

	// open caches the directories entries went into, by clean path (see
	// dircache.go); retired holds descriptors dropped from it during the
	// current entry, closed when the entry is done.
	open    map[string]openDir
	retired []int

	buf        []byte // aligned for O_DIRECT
	noDirect   bool   // the target refused O_DIRECT: buffered writes only
	umask      uint32
	euid, egid int // the owner of what this process creates
}

type dirTimes struct {
	path         string
	atime, mtime time.Time
}

// cleanName turns a tar entry name into a clean relative path ("." for the
// root), refusing absolute names and "..".
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute path", ErrUnsafeEntry)
	}
	parts := strings.Split(name, "/")
	out := parts[:0]
	for _, p := range parts {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: path contains \"..\"", ErrUnsafeEntry)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return ".", nil
	}
	return strings.Join(out, "/"), nil
}

// splitName splits a clean relative path into its directory ("." at the
// top) and last component.
func splitName(name string) (dir, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return ".", name
	}
	return name[:i], name[i+1:]
}

func (a *applier) entry(hdr *tar.Header, data io.Reader) error {
	a.trimDirs()
	defer a.closeRetired()
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("the layer root must be a directory, not type %q", hdr.Typeflag)
		}
		return a.rootDir(hdr)
	}
	dir, base := splitName(name)
	if strings.HasPrefix(base, whiteoutPrefix) {
		switch {
		case base == whiteoutOpaque:
			return a.opaque(dir)
		case strings.HasPrefix(base, whiteoutMeta):
			return nil
		}
		return a.whiteout(dir, base[len(whiteoutPrefix):], hdr)
	}

	pd, err := a.parent(dir)
	if err != nil {
		return err
	}
	delete(a.symlinks, name)
	if a.created != nil {
		a.created[name] = true
	}

	uid, gid, err := a.owner(hdr)
	if err != nil {
		return err
	}
	// A new entry is owned by this process (and the directory's group when
	// it has the setgid bit): chown only what differs.
	chown := !a.opts.NoLchown && (uid != a.euid || gid != a.egid || pd.sgid)
	perm := uint32(hdr.Mode) & 0o7777
	fd := pd.fd
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		return a.regular(fd, base, hdr, data, uid, gid, perm, chown)
	case tar.TypeDir:
		return a.directory(pd, base, name, hdr, uid, gid, perm)
	case tar.TypeSymlink:
		err := a.create(fd, base, func() error { return unix.Symlinkat(hdr.Linkname, fd, base) })
		if err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
		a.symlinks[name] = true
		return a.finishAt(fd, base, hdr, uid, gid, perm, false, chown)
	case tar.TypeLink:
		return a.hardlink(fd, base, name, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := perm & 0o777
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := a.create(fd, base, func() error { return unix.Mknodat(fd, base, mode, int(dev)) }); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
		return a.finishAt(fd, base, hdr, uid, gid, perm, true, chown)
	}
	return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
}

// create runs mk, which creates base in directory pfd and fails with EEXIST
// when something is there already; then whatever is there goes (with its
// content), and mk runs again. Trying first saves a stat of every entry:
// most layers create each name once.
func (a *applier) create(pfd int, base string, mk func() error) error {
	err := mk()
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	if err := a.remove(pfd, base); err != nil {
		return err
	}
	return mk()
}

// remove removes base from directory pfd and, for a directory, its content.
// What went may have been on the way to a cached directory: the cache is
// retired.
func (a *applier) remove(pfd int, base string) error {
	a.retireDirs()
	if err := removeAllAt(pfd, base); err != nil {
		return fmt.Errorf("remove existing %s: %w", base, err)
	}
	return nil
}

// removeAllAt removes name in directory dirfd and, for a directory, all it
// holds, without following symlinks.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(fd, n); err != nil {
				break
			}
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// whiteout handles ".wh.NAME" in dir.
func (a *applier) whiteout(dir, name string, hdr *tar.Header) error {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("%w: bad whiteout name", ErrUnsafeEntry)
	}
	p := path.Join(dir, name)
	if a.opts.Whiteouts == WhiteoutApply {
		pd, err := a.lookup(dir)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil // nothing to delete
		}
		if err != nil {
			return fmt.Errorf("open parent %s: %w", dir, err)
		}
		delete(a.symlinks, p)
		a.retireDirs()
		if err := removeAllAt(pd.fd, name); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
		return nil
	}
	pd, err := a.parent(dir)
	if err != nil {
		return err
	}
	delete(a.symlinks, p)
	mode := unix.S_IFCHR | (uint32(hdr.Mode) & 0o777)
	if err := a.create(pd.fd, name, func() error { return unix.Mknodat(pd.fd, name, mode, 0) }); err != nil {
		return fmt.Errorf("mknod whiteout %s: %w", p, err)
	}
	uid, gid, err := a.owner(hdr)
	if err != nil {
		return err
	}
	chown := !a.opts.NoLchown && (uid != a.euid || gid != a.egid || pd.sgid)
	return a.finishAt(pd.fd, name, &tar.Header{ModTime: hdr.ModTime, AccessTime: hdr.AccessTime}, uid, gid, uint32(hdr.Mode)&0o777, true, chown)
}

// opaque handles ".wh..wh..opq" in dir.
func (a *applier) opaque(dir string) error {
	if a.opts.Whiteouts == WhiteoutApply {
		pd, err := a.lookup(dir)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", dir, err)
		}
		lfd, err := unix.Openat(pd.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", dir, err)
		}
		d := os.NewFile(uintptr(lfd), dir)
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		for _, n := range names {
			p := path.Join(dir, n)
			if a.created[p] {
				continue
			}
			delete(a.symlinks, p)
			a.retireDirs()
			if err := removeAllAt(pd.fd, n); err != nil {
				return fmt.Errorf("remove %s: %w", p, err)
			}
		}
		return nil
	}
	pd, err := a.parent(dir)
	if err != nil {
		return err
	}
	if pd.pathOnly {
		// setxattr, not lsetxattr: the path is the magic link to the directory.
		err = unix.Setxattr("/proc/self/fd/"+itoa(pd.fd), overlayOpaque, []byte("y"), 0)
	} else {
		err = unix.Fsetxattr(pd.fd, overlayOpaque, []byte("y"), 0)
	}
	if err != nil {
		return fmt.Errorf("mark %s opaque: %w", dir, err)
	}
	return nil
}

// owner maps the entry's owner to the ids written on disk.
func (a *applier) owner(hdr *tar.Header) (int, int, error) {
	uid, err := mapID(a.opts.UIDMaps, hdr.Uid)
	if err != nil {
		return 0, 0, fmt.Errorf("uid %d: %w", hdr.Uid, err)
	}
	gid, err := mapID(a.opts.GIDMaps, hdr.Gid)
	if err != nil {
		return 0, 0, fmt.Errorf("gid %d: %w", hdr.Gid, err)
	}
	return uid, gid, nil
}

// needChmod reports whether perm cannot be had from creation alone: special
// bits, bits the umask removes.
func (a *applier) needChmod(perm uint32) bool {
	return perm&(0o7000|a.umask) != 0
}

func (a *applier) regular(pfd int, base string, hdr *tar.Header, data io.Reader, uid, gid int, perm uint32, chown bool) error {
	var fd int
	err := a.create(pfd, base, func() error {
		var err error
		fd, err = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm&0o777)
		return err
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	err = a.writeData(fd, hdr, data)
	if err == nil {
		err = a.finishFd(fd, hdr, uid, gid, perm, chown)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	return err
}

// writeData copies the entry's content into fd with large writes. For a
// sparse entry the all-zero blocks are skipped, so its holes stay holes.
// Content of directMin bytes or more is written with O_DIRECT (see
// writeDirect).
func (a *applier) writeData(fd int, hdr *tar.Header, data io.Reader) error {
	sparse := isSparse(hdr)
	if !sparse && hdr.Size >= directMin && !a.noDirect {
		return a.writeDirect(fd, hdr, data)
	}
	var off int64
	for off < hdr.Size {
		n := int64(len(a.buf))
		if rest := hdr.Size - off; rest < n {
			n = rest
		}
		chunk := a.buf[:n]
		if _, err := io.ReadFull(data, chunk); err != nil {
			return fmt.Errorf("read content at offset %d of %d: %w", off, hdr.Size, err)
		}
		if sparse {
			if err := writeSparseChunk(fd, chunk, off); err != nil {
				return err
			}
		} else if err := writeAll(fd, chunk); err != nil {
			return err
		}
		off += n
	}
	if sparse {
		if err := unix.Ftruncate(fd, hdr.Size); err != nil {
			return fmt.Errorf("set size: %w", err)
		}
	}
	return nil
}

const (
	// directMin is the size from which file content bypasses the page cache.
	// Filling page-cache pages is what a buffered write costs: on the VMs
	// berth is measured on, about 3.5 ms of system time per MB (a fault on
	// every new page), against 0.3 ms with O_DIRECT. O_DIRECT writes wait for
	// the disk, so small files, most of a layer's files but a small part of
	// its bytes, stay buffered.
	directMin = 256 << 10
	// directAlign satisfies O_DIRECT's alignment of buffer, offset and
	// length on any logical block size up to a page.
	directAlign = 4096
)

// writeDirect writes the entry's content with O_DIRECT from a.buf: whole
// aligned chunks, the last one padded with zeros to directAlign and the file
// cut back to its size. A filesystem that refuses O_DIRECT (EINVAL) gets
// buffered writes, for this entry and the rest of the layer.
func (a *applier) writeDirect(fd int, hdr *tar.Header, data io.Reader) error {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("get file flags: %w", err)
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags|unix.O_DIRECT)
	direct := err == nil
	if !direct {
		a.noDirect = true
	}
	var off int64
	for off < hdr.Size {
		n := int64(len(a.buf))
		if rest := hdr.Size - off; rest < n {
			n = rest
		}
		if _, err := io.ReadFull(data, a.buf[:n]); err != nil {
			return fmt.Errorf("read content at offset %d of %d: %w", off, hdr.Size, err)
		}
		if direct {
			padded := (n + directAlign - 1) &^ (directAlign - 1)
			clear(a.buf[n:padded])
			err := pwriteAll(fd, a.buf[:padded], off)
			if err == nil {
				off += n
				continue
			}
			if !errors.Is(err, unix.EINVAL) {
				return err
			}
			direct = false
			a.noDirect = true
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags); err != nil {
				return fmt.Errorf("set file flags: %w", err)
			}
		}
		if err := pwriteAll(fd, a.buf[:n], off); err != nil {
			return err
		}
		off += n
	}
	if direct && hdr.Size%directAlign != 0 {
		if err := unix.Ftruncate(fd, hdr.Size); err != nil {
			return fmt.Errorf("set size: %w", err)
		}
	}
	return nil
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write at %d: %w", off, err)
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// alignedBuffer returns n bytes starting at a multiple of align. Go's heap
// does not move objects, so the alignment holds.
func alignedBuffer(n, align int) []byte {
	b := make([]byte, n+align)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % uintptr(align)); r != 0 {
		skip = align - r
	}
	return b[skip : skip+n : skip+n]
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		b = b[n:]
	}
	return nil
}

// holeBlock is the granularity at which zeros become holes: the page size,
// and the block size of common filesystems.
const holeBlock = 4096

var zeroBlock [holeBlock]byte

// writeSparseChunk writes chunk at offset off, leaving out all-zero blocks.
func writeSparseChunk(fd int, chunk []byte, off int64) error {
	start := -1 // start of the pending run of data
	flush := func(end int) error {
		b := chunk[start:end]
		pos := off + int64(start)
		for len(b) > 0 {
			n, err := unix.Pwrite(fd, b, pos)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("write at %d: %w", pos, err)
			}
			b, pos = b[n:], pos+int64(n)
		}
		start = -1
		return nil
	}
	for i := 0; i < len(chunk); i += holeBlock {
		end := min(i+holeBlock, len(chunk))
		zero := end-i == holeBlock && (off+int64(i))%holeBlock == 0 && string(chunk[i:end]) == string(zeroBlock[:])
		if !zero && start < 0 {
			start = i
		}
		if zero && start >= 0 {
			if err := flush(i); err != nil {
				return err
			}
		}
	}
	if start >= 0 {
		return flush(len(chunk))
	}
	return nil
}

// isSparse reports whether the entry came as a GNU sparse file (old GNU
// format or PAX 0.x/1.0), whose holes Apply recreates.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// finishFd sets owner, mode, xattrs and times of the open file fd, in that
// order: chown clears setuid bits and file capabilities.
func (a *applier) finishFd(fd int, hdr *tar.Header, uid, gid int, perm uint32, chown bool) error {
	if chown {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fmt.Errorf("chown %d:%d: %w", uid, gid, err)
		}
	}
	if a.needChmod(perm) {
		if err := unix.Fchmod(fd, perm); err != nil {
			return fmt.Errorf("chmod %o: %w", perm, err)
		}
	}
	if err := eachXattr(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	return futimes(fd, hdr)
}

// finishAt is finishFd for entries that are not opened: symlinks, devices,
// fifos, whiteouts.
func (a *applier) finishAt(pfd int, base string, hdr *tar.Header, uid, gid int, perm uint32, chmod, chown bool) error {
	if chown {
		if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %d:%d: %w", uid, gid, err)
		}
	}
	if chmod && a.needChmod(perm) {
		// Not a symlink (chmod is false for those): nothing to follow.
		if err := unix.Fchmodat(pfd, base, perm, 0); err != nil {
			return fmt.Errorf("chmod %o: %w", perm, err)
		}
	}
	if hasXattrs(hdr) {
		p := "/proc/self/fd/" + itoa(pfd) + "/" + base
		if err := eachXattr(hdr, func(k string, v []byte) error { return unix.Lsetxattr(p, k, v, 0) }); err != nil {
			return err
		}
	}
	ts := timespecs(hdr)
	if err := unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// directory handles a directory entry: an existing directory stays, with
// its content, and takes the entry's metadata; anything else there is
// replaced. The directory's descriptor joins the cache.
func (a *applier) directory(pd openDir, base, name string, hdr *tar.Header, uid, gid int, perm uint32) error {
	fresh := true
	err := unix.Mkdirat(pd.fd, base, perm&0o777)
	if errors.Is(err, unix.EEXIST) {
		fresh = false
		fd, oerr := unix.Openat(pd.fd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if oerr == nil {
			return a.finishNewDir(fd, pd, name, hdr, uid, gid, perm, fresh)
		}
		if !errors.Is(oerr, unix.ENOTDIR) && !errors.Is(oerr, unix.ELOOP) {
			return fmt.Errorf("open existing directory: %w", oerr)
		}
		if err := a.remove(pd.fd, base); err != nil {
			return err
		}
		fresh = true
		err = unix.Mkdirat(pd.fd, base, perm&0o777)
	}
	if err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	fd, err := unix.Openat(pd.fd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	return a.finishNewDir(fd, pd, name, hdr, uid, gid, perm, fresh)
}

// finishNewDir sets the metadata of directory fd (name, in pd) and caches it.
func (a *applier) finishNewDir(fd int, pd openDir, name string, hdr *tar.Header, uid, gid int, perm uint32, fresh bool) error {
	chown := !a.opts.NoLchown && (!fresh || uid != a.euid || gid != a.egid || pd.sgid)
	if err := a.finishDir(fd, name, hdr, uid, gid, perm, chown); err != nil {
		unix.Close(fd)
		return err
	}
	a.cacheDir(name, openDir{fd: fd, direct: true, sgid: perm&unix.S_ISGID != 0})
	return nil
}

func (a *applier) finishDir(fd int, name string, hdr *tar.Header, uid, gid int, perm uint32, chown bool) error {
	if chown {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fmt.Errorf("chown %d:%d: %w", uid, gid, err)
		}
	}
	// An existing directory keeps nothing of its old mode; a new one may
	// have taken the setgid bit of its parent.
	if err := unix.Fchmod(fd, perm); err != nil {
		return fmt.Errorf("chmod %o: %w", perm, err)
	}
	if err := eachXattr(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	a.dirs = append(a.dirs, dirTimes{path: name, atime: atime, mtime: hdr.ModTime})
	return nil
}

func (a *applier) rootDir(hdr *tar.Header) error {
	uid, gid, err := a.owner(hdr)
	if err != nil {
		return err
	}
	d, err := fsroot.Open(a.root, ".", unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open layer root: %w", err)
	}
	defer d.Close()
	perm := uint32(hdr.Mode) & 0o7777
	if err := a.finishDir(int(d.Fd()), ".", hdr, uid, gid, perm, !a.opts.NoLchown); err != nil {
		return err
	}
	root := a.open["."]
	root.sgid = perm&unix.S_ISGID != 0
	a.open["."] = root
	return nil
}

func (a *applier) hardlink(pfd int, base, name string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if target == "." {
		return fmt.Errorf("hard link target %q: %w: the root", hdr.Linkname, ErrUnsafeEntry)
	}
	if target == name {
		return nil
	}
	tdir, tbase := splitName(target)
	td, err := a.lookup(tdir)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if err := a.create(pfd, base, func() error { return unix.Linkat(td.fd, tbase, pfd, base, 0) }); err != nil {
		return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
	}
	if a.symlinks[target] {
		a.symlinks[name] = true
	}
	return nil
}

// finishDirs sets directory times, deepest last-created first, now that
// nothing more is created in them.
func (a *applier) finishDirs() error {
	for i := len(a.dirs) - 1; i >= 0; i-- {
		d := a.dirs[i]
		if od, ok := a.open[d.path]; ok && od.direct && !od.pathOnly {
			if err := futimes(od.fd, &tar.Header{ModTime: d.mtime, AccessTime: d.atime}); err != nil {
				return fmt.Errorf("directory %s: %w", d.path, err)
			}
			continue
		}
		f, err := fsroot.Open(a.root, d.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			continue // replaced or removed by a later entry
		}
		if err != nil {
			return fmt.Errorf("open directory %s to set its times: %w", d.path, err)
		}
		err = futimes(int(f.Fd()), &tar.Header{ModTime: d.mtime, AccessTime: d.atime})
		f.Close()
		if err != nil {
			return fmt.Errorf("directory %s: %w", d.path, err)
		}
	}
	return nil
}

// mapID maps a container id to a host id; no maps is the identity.
func mapID(maps []specs.LinuxIDMapping, id int) (int, error) {
	if len(maps) == 0 {
		return id, nil
	}
	for _, m := range maps {
		if id >= int(m.ContainerID) && id-int(m.ContainerID) < int(m.Size) {
			return int(m.HostID) + id - int(m.ContainerID), nil
		}
	}
	return 0, errors.New("not in the id mappings")
}

// unmapID is mapID's inverse: a host id back to a container id.
func unmapID(maps []specs.LinuxIDMapping, id int) (int, error) {
	if len(maps) == 0 {
		return id, nil
	}
	for _, m := range maps {
		if id >= int(m.HostID) && id-int(m.HostID) < int(m.Size) {
			return int(m.ContainerID) + id - int(m.HostID), nil
		}
	}
	return 0, errors.New("not in the id mappings")
}

func hasXattrs(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattr) {
			return true
		}
	}
	return false
}

// eachXattr calls set for each extended attribute of the entry.
func eachXattr(hdr *tar.Header, set func(name string, value []byte) error) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattr)
		if !ok {
			continue
		}
		if err := set(name, []byte(v)); err != nil {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	return nil
}

func timespecs(hdr *tar.Header) [2]unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return [2]unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
}
