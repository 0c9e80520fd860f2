package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// This file holds the test helpers: building trees and tars, and reading a
// tree back into a comparable description.

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown, mknod, trusted.* xattrs); run the tests as root")
	}
}

// fileDesc is everything a round trip must keep about one entry.
type fileDesc struct {
	Type     string
	Mode     uint32 // permission bits with setuid/setgid/sticky
	UID, GID uint32
	Size     int64
	MTime    int64 // nanoseconds
	Rdev     uint64
	Link     string
	Xattrs   map[string]string
	Nlink    uint64
	Data     []segment // data runs (SEEK_DATA), for regular files
	Sum      string    // sha256 of the content
}

func (d fileDesc) String() string {
	return fmt.Sprintf("%s %04o %d:%d size=%d mtime=%d rdev=%d link=%q xattrs=%v nlink=%d data=%v sum=%.12s",
		d.Type, d.Mode, d.UID, d.GID, d.Size, d.MTime, d.Rdev, d.Link, d.Xattrs, d.Nlink, d.Data, d.Sum)
}

// describeTree reads dir into path -> description (the root itself left out).
// Whiteouts are described as such only: their own metadata means nothing.
func describeTree(t *testing.T, dir string) map[string]fileDesc {
	t.Helper()
	out := map[string]fileDesc{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if isWhiteout(&st) {
			out[rel] = fileDesc{Type: "whiteout"}
			return nil
		}
		d := fileDesc{
			Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid,
			MTime: st.Mtim.Nano(), Xattrs: rawXattrs(t, p),
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			d.Type, d.Size, d.Nlink = "file", st.Size, uint64(st.Nlink)
			d.Data, d.Sum = fileData(t, p, st.Size)
		case unix.S_IFDIR:
			d.Type = "dir"
		case unix.S_IFLNK:
			d.Type = "symlink"
			d.Link, _ = os.Readlink(p)
			d.Nlink = uint64(st.Nlink)
		case unix.S_IFCHR:
			d.Type, d.Rdev = "char", st.Rdev
		case unix.S_IFBLK:
			d.Type, d.Rdev = "block", st.Rdev
		case unix.S_IFIFO:
			d.Type = "fifo"
		default:
			d.Type = "other"
		}
		out[rel] = d
		return nil
	})
	if err != nil {
		t.Fatalf("describe %s: %v", dir, err)
	}
	return out
}

func rawXattrs(t *testing.T, p string) map[string]string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	var out map[string]string
	for _, k := range strings.Split(string(buf[:n]), "\x00") {
		if k == "" || k == "security.selinux" {
			continue
		}
		v, err := lgetxattr(p, k)
		if err != nil {
			t.Fatalf("lgetxattr %s %s: %v", p, k, err)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = string(v)
	}
	return out
}

func fileData(t *testing.T, p string, size int64) ([]segment, string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	segs, err := dataSegments(int(f.Fd()), size)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		t.Fatal(err)
	}
	return segs, hex.EncodeToString(h.Sum(nil))
}

// compareTrees fails the test with one line per difference.
func compareTrees(t *testing.T, want, got map[string]fileDesc) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	bad := 0
	for _, k := range keys {
		w, wok := want[k]
		g, gok := got[k]
		switch {
		case !wok:
			t.Errorf("%s: unexpected entry %v", k, g)
		case !gok:
			t.Errorf("%s: missing, want %v", k, w)
		case w.String() != g.String():
			t.Errorf("%s:\n got  %v\n want %v", k, g, w)
		default:
			continue
		}
		if bad++; bad > 20 {
			t.Fatal("too many differences")
		}
	}
}

// tarEntry is one entry of a tar built by a test.
type tarEntry struct {
	hdr  tar.Header
	data string
}

func reg(name, data string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(1e9, 0)}, data: data}
}

func dir(name string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: time.Unix(1e9, 0)}}
}

func symlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: time.Unix(1e9, 0)}}
}

func hardlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: time.Unix(1e9, 0)}}
}

func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("write header %s: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// listTar describes a layer tar one line per entry, for golden files.
func listTar(t *testing.T, b []byte) string {
	t.Helper()
	var out strings.Builder
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		h := sha256.New()
		n, err := io.Copy(h, tr)
		if err != nil {
			t.Fatalf("read %s: %v", hdr.Name, err)
		}
		fmt.Fprintf(&out, "%c %05o %d:%d %d %s %s", hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid, n,
			hdr.ModTime.UTC().Format(time.RFC3339Nano), hdr.Name)
		if hdr.Linkname != "" {
			fmt.Fprintf(&out, " -> %s", hdr.Linkname)
		}
		if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
			fmt.Fprintf(&out, " dev=%d,%d", hdr.Devmajor, hdr.Devminor)
		}
		var recs []string
		for k, v := range hdr.PAXRecords {
			if strings.HasPrefix(k, paxXattr) || strings.HasPrefix(k, "GNU.sparse.") {
				recs = append(recs, fmt.Sprintf("%s=%q", k, v))
			}
		}
		sort.Strings(recs)
		for _, r := range recs {
			out.WriteString(" " + r)
		}
		if n > 0 {
			fmt.Fprintf(&out, " sha256=%.16x", h.Sum(nil))
		}
		out.WriteString("\n")
	}
	return out.String()
}

func mustWrite(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	// unix.Chmod: os.FileMode keeps setuid/setgid/sticky in other bits.
	if err := unix.Chmod(p, uint32(mode)); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// setTimes gives every entry below dir (and dir) the same fixed times, so
// golden listings do not depend on when the test ran.
func setTimes(t *testing.T, dir string, when time.Time) {
	t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(when.UnixNano()), unix.NsecToTimespec(when.UnixNano())}
	var paths []string
	filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err == nil {
			paths = append(paths, p)
		}
		return nil
	})
	// Deepest first, so setting a child does not move its parent's mtime.
	for i := len(paths) - 1; i >= 0; i-- {
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// applyOpts are the options a test uses: without root, files stay ours.
func applyOpts(mode WhiteoutMode) ApplyOptions {
	return ApplyOptions{Whiteouts: mode, NoLchown: os.Geteuid() != 0}
}
