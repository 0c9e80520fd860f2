package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixedTime is the time every entry of the golden trees gets.
var fixedTime = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

// capV2 is a security.capability value (VFS_CAP_REVISION_2) granting
// cap_net_bind_service, permitted and effective.
var capV2 = string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// buildFullTree makes a tree with every kind of entry a layer can carry,
// including overlay whiteouts and an opaque directory, as an upper dir has.
func buildFullTree(t *testing.T, root string) {
	t.Helper()
	mustWrite(t, filepath.Join(root, "etc/hostname"), "box\n", 0o644)
	mustWrite(t, filepath.Join(root, "etc/shadow"), "root:*:1::::::\n", 0o640)
	must(t, os.Chown(filepath.Join(root, "etc/shadow"), 0, 42))
	mustWrite(t, filepath.Join(root, "bin/su"), "#!setuid\n", 0o4755)
	mustWrite(t, filepath.Join(root, "bin/wall"), "#!setgid\n", 0o2755)
	mustWrite(t, filepath.Join(root, "bin/ping"), "#!caps\n", 0o755)
	must(t, unix.Setxattr(filepath.Join(root, "bin/ping"), "security.capability", []byte(capV2), 0))
	must(t, os.Mkdir(filepath.Join(root, "tmp"), 0o755))
	must(t, unix.Chmod(filepath.Join(root, "tmp"), 0o1777))
	must(t, os.Mkdir(filepath.Join(root, "home"), 0o755))
	must(t, os.Mkdir(filepath.Join(root, "home/user"), 0o700))
	must(t, os.Mkdir(filepath.Join(root, "srv"), 0o755))
	must(t, unix.Chmod(filepath.Join(root, "srv"), 0o2775))
	must(t, os.Chown(filepath.Join(root, "home/user"), 1000, 1000))
	mustWrite(t, filepath.Join(root, "home/user/notes"), "mine", 0o600)
	must(t, os.Chown(filepath.Join(root, "home/user/notes"), 1000, 1000))
	must(t, unix.Setxattr(filepath.Join(root, "home/user/notes"), "user.comment", []byte("hello\x00world"), 0))
	must(t, unix.Setxattr(filepath.Join(root, "home/user"), "trusted.berth", []byte("t"), 0))
	must(t, os.Symlink("hostname", filepath.Join(root, "etc/alias")))
	must(t, os.Lchown(filepath.Join(root, "etc/alias"), 7, 8))
	must(t, os.Symlink("/nowhere/at/all", filepath.Join(root, "dangling")))
	// Three names of one inode.
	mustWrite(t, filepath.Join(root, "bin/busybox"), "multi-call", 0o755)
	must(t, os.Link(filepath.Join(root, "bin/busybox"), filepath.Join(root, "bin/sh")))
	must(t, os.Link(filepath.Join(root, "bin/busybox"), filepath.Join(root, "etc/zz-busybox")))
	must(t, os.Mkdir(filepath.Join(root, "dev"), 0o755))
	must(t, unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(filepath.Join(root, "dev/loop9"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 9))))
	must(t, unix.Mknod(filepath.Join(root, "dev/fifo"), unix.S_IFIFO|0o600, 0))
	// A sparse file: data, a hole, data, a trailing hole.
	sparse := filepath.Join(root, "var/sparse.img")
	must(t, os.MkdirAll(filepath.Dir(sparse), 0o755))
	f, err := os.Create(sparse)
	must(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte{'a'}, 8192), 0)
	must(t, err)
	_, err = f.WriteAt(bytes.Repeat([]byte{'b'}, 4096), 1<<20)
	must(t, err)
	must(t, f.Truncate(3<<20))
	must(t, f.Close())
	// A sparse file that is all hole.
	f, err = os.Create(filepath.Join(root, "var/hole.img"))
	must(t, err)
	must(t, f.Truncate(1<<20))
	must(t, f.Close())
	// Long names: a 200-byte component in a path over 300 bytes.
	long := filepath.Join(root, "long", strings.Repeat("d", 120), strings.Repeat("n", 200))
	mustWrite(t, long, "long", 0o644)
	mustWrite(t, filepath.Join(root, "unicode/héllo wörld ✓"), "u", 0o644)
	mustWrite(t, filepath.Join(root, "empty"), "", 0o644)
	// Overlay upper dir features.
	must(t, unix.Mknod(filepath.Join(root, "etc/removed"), unix.S_IFCHR, 0))
	must(t, os.MkdirAll(filepath.Join(root, "opaque/sub"), 0o755))
	must(t, unix.Setxattr(filepath.Join(root, "opaque"), overlayOpaque, []byte("y"), 0))
	mustWrite(t, filepath.Join(root, "opaque/sub/kept"), "k", 0o644)
}

// TestDiffApplyRoundTrip: a tree with every feature -> Diff -> Apply gives
// the same tree, and Diff of the result gives the same bytes.
func TestDiffApplyRoundTrip(t *testing.T) {
	needRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	buildFullTree(t, src)
	setTimes(t, src, fixedTime)

	var layer bytes.Buffer
	if err := Diff(context.Background(), src, &layer, DiffOptions{}); err != nil {
		t.Fatalf("Diff: %v", err)
	}
	checkGolden(t, "full-tree.golden", listTar(t, layer.Bytes()))

	if _, err := Apply(context.Background(), dst, bytes.NewReader(layer.Bytes()), ApplyOptions{}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	compareTrees(t, describeTree(t, src), describeTree(t, dst))

	var again bytes.Buffer
	if err := Diff(context.Background(), dst, &again, DiffOptions{}); err != nil {
		t.Fatalf("Diff of the unpacked tree: %v", err)
	}
	if !bytes.Equal(layer.Bytes(), again.Bytes()) {
		t.Errorf("Diff after Apply differs from the original layer:\n%s\nvs\n%s", listTar(t, again.Bytes()), listTar(t, layer.Bytes()))
	}
}

// TestSparseEntryReadByGNUTar checks the hand-made PAX sparse entries with
// another reader than our own.
func TestSparseEntryReadByGNUTar(t *testing.T) {
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("GNU tar not installed")
	}
	src, out := t.TempDir(), t.TempDir()
	f, err := os.Create(filepath.Join(src, strings.Repeat("s", 150)))
	must(t, err)
	_, err = f.WriteAt([]byte("tail"), 5<<20)
	must(t, err)
	must(t, f.Close())
	var layer bytes.Buffer
	if err := Diff(context.Background(), src, &layer, DiffOptions{}); err != nil {
		t.Fatalf("Diff: %v", err)
	}
	if layer.Len() > 64<<10 {
		t.Errorf("layer of a 5 MiB sparse file is %d bytes, want the holes left out", layer.Len())
	}
	cmd := exec.Command(tarBin, "-x", "-C", out)
	cmd.Stdin = bytes.NewReader(layer.Bytes())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, b)
	}
	b, err := os.ReadFile(filepath.Join(out, strings.Repeat("s", 150)))
	if err != nil || len(b) != 5<<20+4 || string(b[5<<20:]) != "tail" || b[0] != 0 {
		t.Errorf("GNU tar extracted %d bytes (%v), want 5 MiB of zeros then \"tail\"", len(b), err)
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		must(t, os.MkdirAll("testdata", 0o755))
		must(t, os.WriteFile(p, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read golden file (go test -update writes it): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s--- want\n%s", p, got, want)
	}
}

// buildLowerUpper makes a tree and a modified copy of it, the two sides of a
// copying snapshotter, with the changes listed in wantChanges.
func buildLowerUpper(t *testing.T) (lower, upper string) {
	t.Helper()
	lower, upper = t.TempDir(), t.TempDir()
	for _, root := range []string{lower, upper} {
		mustWrite(t, filepath.Join(root, "etc/hosts"), "127.0.0.1 localhost\n", 0o644)
		mustWrite(t, filepath.Join(root, "etc/passwd"), "root:x:0:0\n", 0o644)
		mustWrite(t, filepath.Join(root, "etc/deep/a/b"), "b", 0o644)
		mustWrite(t, filepath.Join(root, "usr/bin/tool"), "tool", 0o755)
		mustWrite(t, filepath.Join(root, "usr/lib/gone/x"), "x", 0o644)
		mustWrite(t, filepath.Join(root, "var/log/old"), "log", 0o644)
		mustWrite(t, filepath.Join(root, "swap"), "file", 0o644)
		must(t, os.Symlink("hosts", filepath.Join(root, "etc/link")))
		setTimes(t, root, fixedTime)
	}
	// The container's changes.
	mustWrite(t, filepath.Join(upper, "etc/hosts"), "127.0.0.1 localhost box\n", 0o644)
	must(t, os.Chmod(filepath.Join(upper, "usr/bin/tool"), 0o700))
	must(t, os.RemoveAll(filepath.Join(upper, "usr/lib/gone")))
	must(t, os.Remove(filepath.Join(upper, "var/log/old")))
	mustWrite(t, filepath.Join(upper, "var/log/new"), "new", 0o644)
	mustWrite(t, filepath.Join(upper, "srv/www/index.html"), "hi", 0o644)
	must(t, os.Remove(filepath.Join(upper, "swap")))
	must(t, os.Mkdir(filepath.Join(upper, "swap"), 0o755))
	mustWrite(t, filepath.Join(upper, "swap/inside"), "i", 0o644)
	must(t, os.Remove(filepath.Join(upper, "etc/link")))
	must(t, os.Symlink("passwd", filepath.Join(upper, "etc/link")))
	must(t, unix.Setxattr(filepath.Join(upper, "etc/passwd"), "user.tag", []byte("v"), 0))
	touchChanged(t, upper, fixedTime, fixedTime.Add(time.Hour))
	return lower, upper
}

// touchChanged gives the entries whose modification time is not old the
// time new, so golden files do not depend on when the test ran.
func touchChanged(t *testing.T, root string, old, new time.Time) {
	t.Helper()
	var paths []string
	filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		var st unix.Stat_t
		if err == nil && unix.Lstat(p, &st) == nil && st.Mtim.Nano() != old.UnixNano() {
			paths = append(paths, p)
		}
		return nil
	})
	ts := []unix.Timespec{unix.NsecToTimespec(new.UnixNano()), unix.NsecToTimespec(new.UnixNano())}
	for i := len(paths) - 1; i >= 0; i-- {
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

var wantChanges = []string{
	"C /etc",
	"C /etc/hosts",
	"C /etc/link",
	"C /etc/passwd",
	"A /srv",
	"A /srv/www",
	"A /srv/www/index.html",
	"C /swap",
	"A /swap/inside",
	"C /usr",
	"C /usr/bin",
	"C /usr/bin/tool",
	"C /usr/lib",
	"D /usr/lib/gone",
	"C /var",
	"C /var/log",
	"A /var/log/new",
	"D /var/log/old",
}

func changeStrings(c []Change) []string {
	var out []string
	for _, x := range c {
		out = append(out, x.String())
	}
	return out
}

func TestChangesDirs(t *testing.T) {
	lower, upper := buildLowerUpper(t)
	got, err := ChangesDirs(context.Background(), lower, upper)
	if err != nil {
		t.Fatalf("ChangesDirs: %v", err)
	}
	if g := changeStrings(got); !slices.Equal(g, wantChanges) {
		t.Errorf("ChangesDirs =\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(wantChanges, "\n"))
	}
}

// TestDiffDirsApply: lower + DiffDirs(lower, upper) applied = upper.
func TestDiffDirsApply(t *testing.T) {
	lower, upper := buildLowerUpper(t)
	var layer bytes.Buffer
	if err := DiffDirs(context.Background(), lower, upper, &layer, DiffOptions{}); err != nil {
		t.Fatalf("DiffDirs: %v", err)
	}
	list := listTar(t, layer.Bytes())
	if strings.Contains(list, "etc/deep") || strings.Contains(list, "usr/lib/gone/") {
		t.Errorf("the layer carries unchanged or deleted content:\n%s", list)
	}
	if os.Geteuid() == 0 {
		checkGolden(t, "diffdirs.golden", list)
	}
	// Unpack onto a copy of lower (here: lower itself, a scratch tree).
	if _, err := Apply(context.Background(), lower, bytes.NewReader(layer.Bytes()), applyOpts(WhiteoutApply)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	compareTrees(t, describeTree(t, upper), describeTree(t, lower))
}

// TestChangesOverlay lists the changes of an overlay upper dir over two
// lower layers.
func TestChangesOverlay(t *testing.T) {
	needRoot(t)
	l1, l2, upper := t.TempDir(), t.TempDir(), t.TempDir()
	// l2 is the bottom layer, l1 on top of it.
	for _, p := range []string{"etc/hosts", "etc/passwd", "opq/a", "opq/b", "var/x", "usr/lib/y"} {
		mustWrite(t, filepath.Join(l2, p), "base", 0o644)
	}
	mustWrite(t, filepath.Join(l1, "opq/c"), "l1", 0o644)
	must(t, unix.Mknod(filepath.Join(l1, "opq/b"), unix.S_IFCHR, 0)) // l1 deleted opq/b
	must(t, os.MkdirAll(filepath.Join(l1, "usr"), 0o755))
	must(t, unix.Setxattr(filepath.Join(l1, "usr"), overlayOpaque, []byte("y"), 0)) // l1 hid usr/lib

	// The container: changed etc/hosts, deleted etc/passwd, emptied opq and
	// added d there, added usr/lib (new again: hidden below by l1's opaque usr).
	mustWrite(t, filepath.Join(upper, "etc/hosts"), "new", 0o644)
	must(t, unix.Mknod(filepath.Join(upper, "etc/passwd"), unix.S_IFCHR, 0))
	mustWrite(t, filepath.Join(upper, "opq/d"), "new", 0o644)
	must(t, unix.Setxattr(filepath.Join(upper, "opq"), overlayOpaque, []byte("y"), 0))
	mustWrite(t, filepath.Join(upper, "usr/lib/z"), "new", 0o644)

	got, err := Changes(context.Background(), upper, []string{l1, l2})
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	want := []string{
		"C /etc", "C /etc/hosts", "D /etc/passwd",
		"C /opq", "D /opq/a", "D /opq/c", "A /opq/d",
		"C /usr", "A /usr/lib", "A /usr/lib/z",
	}
	if g := changeStrings(got); !slices.Equal(g, want) {
		t.Errorf("Changes =\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
}

func TestDiffModTimeLimit(t *testing.T) {
	src := t.TempDir()
	mustWrite(t, filepath.Join(src, "new"), "n", 0o644)
	limit := time.Unix(1700000000, 0)
	var layer bytes.Buffer
	if err := Diff(context.Background(), src, &layer, DiffOptions{ModTimeLimit: limit}); err != nil {
		t.Fatalf("Diff: %v", err)
	}
	hdr, err := tar.NewReader(&layer).Next()
	if err != nil || !hdr.ModTime.Equal(limit) {
		t.Errorf("entry mtime = %v (%v), want clamped to %v", hdr.ModTime, err, limit)
	}
}

func TestDecompressStream(t *testing.T) {
	// Several read-ahead blocks long.
	payload := bytes.Repeat([]byte("layer content "), 500000)
	var gz, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(payload)
	gw.Close()
	zw, err := zstd.NewWriter(&zs)
	must(t, err)
	zw.Write(payload)
	zw.Close()
	tests := []struct {
		name string
		in   []byte
		want Compression
	}{
		{"gzip", gz.Bytes(), Gzip},
		{"zstd", zs.Bytes(), Zstd},
		{"plain", payload, Uncompressed},
		{"tiny", []byte("ab"), Uncompressed},
	}
	for _, tt := range tests {
		rc, kind, err := DecompressStream(bytes.NewReader(tt.in))
		if err != nil {
			t.Fatalf("DecompressStream(%s): %v", tt.name, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		want := payload
		if tt.name == "tiny" {
			want = tt.in
		}
		if kind != tt.want || err != nil || !bytes.Equal(got, want) {
			t.Errorf("DecompressStream(%s) = %v, %d bytes, %v; want %v, %d bytes", tt.name, kind, len(got), err, tt.want, len(want))
		}
	}
	// A corrupt gzip stream fails when read, not silently.
	bad := append([]byte(nil), gz.Bytes()...)
	bad[len(bad)/2] ^= 0xff
	rc, _, err := DecompressStream(bytes.NewReader(bad))
	if err == nil {
		_, err = io.ReadAll(rc)
	}
	if err == nil {
		t.Error("reading a corrupt gzip stream succeeded")
	}
}
