package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestCleanName(t *testing.T) {
	tests := []struct {
		in, want string
		unsafe   bool
	}{
		{in: "etc/passwd", want: "etc/passwd"},
		{in: "./etc/passwd", want: "etc/passwd"},
		{in: "etc//x/./y/", want: "etc/x/y"},
		{in: "./", want: "."},
		{in: ".", want: "."},
		{in: "/etc/passwd", unsafe: true},
		{in: "../x", unsafe: true},
		{in: "a/../../x", unsafe: true},
		{in: "a/../b", unsafe: true},
		{in: "a/..", unsafe: true},
	}
	for _, tt := range tests {
		got, err := cleanName(tt.in)
		if tt.unsafe {
			if !errors.Is(err, ErrUnsafeEntry) {
				t.Errorf("cleanName(%q) = %q, %v, want ErrUnsafeEntry", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("cleanName(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestApplyRefusesEscapes unpacks malicious layers: each must fail naming the
// entry (or, where the layer only uses a symlink that was there before, stay
// inside the root) and nothing may appear outside the target directory.
func TestApplyRefusesEscapes(t *testing.T) {
	tests := []struct {
		name    string
		mode    WhiteoutMode
		setup   func(t *testing.T, root, outside string) // before Apply
		entries []tarEntry
		// wantErr: Apply fails with ErrUnsafeEntry naming badEntry.
		wantErr  bool
		badEntry string
		// wantFail: Apply fails, for another reason than ErrUnsafeEntry.
		wantFail bool
		// inside: the file the layer's content must land in, inside the root.
		inside string
	}{
		{name: "dot-dot", entries: []tarEntry{reg("../evil", "x")}, wantErr: true, badEntry: "../evil"},
		{name: "dot-dot inside", entries: []tarEntry{dir("a/"), reg("a/../../evil", "x")}, wantErr: true, badEntry: "a/../../evil"},
		{name: "absolute", entries: []tarEntry{reg("/evil", "x")}, wantErr: true, badEntry: "/evil"},
		{name: "file through own symlink", entries: []tarEntry{
			symlink("link", "../outside"), reg("link/evil", "x"),
		}, wantErr: true, badEntry: "link/evil"},
		{name: "file through own absolute symlink", entries: []tarEntry{
			symlink("link", "/"), reg("link/evil", "x"),
		}, wantErr: true, badEntry: "link/evil"},
		{name: "dir through own symlink", entries: []tarEntry{
			dir("d/"), symlink("d/up", "../.."), dir("d/up/evil/"),
		}, wantErr: true, badEntry: "d/up/evil/"},
		{name: "directory replaced by own symlink", entries: []tarEntry{
			dir("p/"), dir("p/sub/"), reg("p/sub/a", "x"), symlink("p", "../outside"), reg("p/sub/b", "x"),
		}, wantErr: true, badEntry: "p/sub/b"},
		{name: "hard link through own symlink", entries: []tarEntry{
			symlink("link", "/etc"), hardlink("pw", "link/passwd"),
		}, wantErr: true, badEntry: "pw"},
		{name: "hard link to absolute path", entries: []tarEntry{hardlink("pw", "/etc/passwd")}, wantErr: true, badEntry: "pw"},
		{name: "hard link with dot-dot", entries: []tarEntry{hardlink("pw", "../outside/victim")}, wantErr: true, badEntry: "pw"},
		{name: "whiteout through own symlink", mode: WhiteoutApply, entries: []tarEntry{
			symlink("link", "../outside"), reg("link/.wh.victim", ""),
		}, wantErr: true, badEntry: "link/.wh.victim"},
		{name: "opaque through own symlink", mode: WhiteoutApply, entries: []tarEntry{
			symlink("link", "../outside"), reg("link/.wh..wh..opq", ""),
		}, wantErr: true, badEntry: "link/.wh..wh..opq"},
		{name: "whiteout of dot-dot", mode: WhiteoutApply, entries: []tarEntry{reg(".wh...", "")}, wantErr: true, badEntry: ".wh..."},
		{name: "symlink then file of the same name later is fine", entries: []tarEntry{
			symlink("x", "../outside/victim"), reg("x", "replaced"),
		}},
		{
			name: "existing absolute symlink is followed inside the root",
			mode: WhiteoutApply,
			setup: func(t *testing.T, root, outside string) {
				must(t, os.Mkdir(filepath.Join(root, "outside"), 0o755))
				must(t, os.Symlink("/outside", filepath.Join(root, "pre")))
			},
			entries: []tarEntry{reg("pre/file", "x")},
			inside:  "outside/file",
		},
		{
			name: "existing relative symlink climbing out is clamped at the root",
			mode: WhiteoutApply,
			setup: func(t *testing.T, root, outside string) {
				must(t, os.Mkdir(filepath.Join(root, "outside"), 0o755))
				must(t, os.Symlink("../../../../outside", filepath.Join(root, "pre")))
			},
			entries: []tarEntry{reg("pre/file", "x")},
			inside:  "outside/file",
		},
		{
			name: "existing dangling symlink is not a place to create directories",
			mode: WhiteoutApply,
			setup: func(t *testing.T, root, outside string) {
				must(t, os.Symlink("../outside/newdir", filepath.Join(root, "pre")))
			},
			entries:  []tarEntry{reg("pre/file", "x")},
			wantFail: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
			must(t, os.Mkdir(root, 0o755))
			must(t, os.Mkdir(outside, 0o755))
			mustWrite(t, filepath.Join(outside, "victim"), "victim", 0o644)
			if tt.setup != nil {
				tt.setup(t, root, outside)
			}
			_, err := Apply(context.Background(), root, bytes.NewReader(makeTar(t, tt.entries...)), applyOpts(tt.mode))
			if tt.wantErr {
				if !errors.Is(err, ErrUnsafeEntry) {
					t.Fatalf("Apply = %v, want ErrUnsafeEntry", err)
				}
				if want := `layer entry "` + tt.badEntry + `"`; !bytes.Contains([]byte(err.Error()), []byte(want)) {
					t.Errorf("Apply error %q does not name the entry (%s)", err, want)
				}
			} else if tt.wantFail {
				if err == nil {
					t.Fatal("Apply succeeded, want an error")
				}
			} else if err != nil {
				t.Fatalf("Apply = %v, want success", err)
			}
			if tt.inside != "" {
				if b, err := os.ReadFile(filepath.Join(root, tt.inside)); err != nil || string(b) != "x" {
					t.Errorf("root/%s = %q, %v, want the layer's file", tt.inside, b, err)
				}
			}
			entries, err := os.ReadDir(outside)
			must(t, err)
			if len(entries) != 1 || entries[0].Name() != "victim" {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("outside the root now holds %v, want only victim", names)
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "victim")); string(b) != "victim" {
				t.Errorf("outside/victim = %q, want it unchanged", b)
			}
		})
	}
}

func TestApplyDiffID(t *testing.T) {
	layer := makeTar(t, dir("a/"), reg("a/b", "hello"), symlink("a/c", "b"), hardlink("a/d", "a/b"))
	// Trailing zeros beyond the end-of-archive marker are part of the blob.
	layer = append(layer, make([]byte, 4096)...)
	res, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(layer), applyOpts(WhiteoutOverlay))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := digest.FromBytes(layer)
	if res.DiffID != want || res.Size != int64(len(layer)) {
		t.Errorf("Apply = %v %d, want %v %d", res.DiffID, res.Size, want, len(layer))
	}
}

func TestApplyTruncatedLayer(t *testing.T) {
	layer := makeTar(t, reg("big", string(bytes.Repeat([]byte("x"), 10000))))
	_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(layer[:3000]), applyOpts(WhiteoutOverlay))
	if err == nil {
		t.Fatal("Apply of a truncated layer succeeded")
	}
	if !bytes.Contains([]byte(err.Error()), []byte(`"big"`)) {
		t.Errorf("error %q does not name the entry", err)
	}
}

// TestApplyWhiteoutApply unpacks a layer onto a copy of its parent: deleted
// files and directories go, an opaque directory keeps only this layer's
// entries, and entries replace what was there.
func TestApplyWhiteoutApply(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"keep", "gone", "d/gone", "d/keep", "olddir/x/y", "opq/old1", "opq/sub/old2", "file2dir", "dir2file/z"} {
		mustWrite(t, filepath.Join(root, p), "old", 0o644)
	}
	layer := makeTar(t,
		reg(".wh.gone", ""),
		dir("d/"), reg("d/.wh.gone", ""),
		reg(".wh.olddir", ""),
		dir("opq/"), reg("opq/.wh..wh..opq", ""), reg("opq/new", "new"),
		dir("file2dir/"), reg("file2dir/inside", "new"),
		reg("dir2file", "new"),
		reg("keep", "changed"),
		reg(".wh.never-existed", ""),
		reg(".wh..wh.plnk", ""), // aufs metadata: ignored
	)
	if _, err := Apply(context.Background(), root, bytes.NewReader(layer), applyOpts(WhiteoutApply)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	var got []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		if rel != "." {
			if !d.IsDir() {
				b, _ := os.ReadFile(p)
				rel += "=" + string(b)
			}
			got = append(got, rel)
		}
		return nil
	})
	want := []string{"d", "d/keep=old", "dir2file=new", "file2dir", "file2dir/inside=new", "keep=changed", "opq", "opq/new=new"}
	if !slices.Equal(got, want) {
		t.Errorf("tree after Apply:\n got  %q\n want %q", got, want)
	}
}

// TestApplyWhiteoutOverlay unpacks a layer alone, as an overlay upper dir.
func TestApplyWhiteoutOverlay(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	layer := makeTar(t,
		reg(".wh.gone", ""),
		dir("d/"), reg("d/.wh..wh..opq", ""), reg("d/new", "new"),
		reg("implicit/parent/.wh.x", ""),
	)
	if _, err := Apply(context.Background(), root, bytes.NewReader(layer), applyOpts(WhiteoutOverlay)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got := describeTree(t, root)
	for _, p := range []string{"gone", "implicit/parent/x"} {
		if got[p].Type != "whiteout" {
			t.Errorf("%s = %v, want a whiteout (0/0 char device)", p, got[p])
		}
	}
	if v := got["d"].Xattrs[overlayOpaque]; v != "y" {
		t.Errorf("d xattr %s = %q, want y", overlayOpaque, v)
	}
	if got["implicit"].Type != "dir" || got["implicit"].Mode != 0o755 {
		t.Errorf("implicit parent = %v, want a 0755 directory", got["implicit"])
	}
}

func TestApplyIDMapping(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	e := reg("f", "x")
	e.hdr.Uid, e.hdr.Gid = 1000, 0
	maps := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	opts := ApplyOptions{UIDMaps: maps, GIDMaps: maps}
	if _, err := Apply(context.Background(), root, bytes.NewReader(makeTar(t, e)), opts); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(root, "f"), &st))
	if st.Uid != 101000 || st.Gid != 100000 {
		t.Errorf("owner = %d:%d, want 101000:100000", st.Uid, st.Gid)
	}
	e.hdr.Uid = 70000
	_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(makeTar(t, e)), opts)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("uid 70000")) {
		t.Errorf("Apply with an unmapped uid = %v, want an error naming uid 70000", err)
	}

	// And back: Diff maps host ids to container ids.
	var buf bytes.Buffer
	if err := Diff(context.Background(), root, &buf, DiffOptions{UIDMaps: maps, GIDMaps: maps}); err != nil {
		t.Fatalf("Diff: %v", err)
	}
	hdr, err := tar.NewReader(&buf).Next()
	if err != nil || hdr.Uid != 1000 || hdr.Gid != 0 {
		t.Errorf("Diff header = %+v, %v, want owner 1000:0", hdr, err)
	}
}

func TestApplyCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, t.TempDir(), bytes.NewReader(makeTar(t, reg("a", "b"))), applyOpts(WhiteoutOverlay))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestDetectCompression(t *testing.T) {
	sum := sha256.Sum256(nil)
	_ = sum
	tests := []struct {
		in   []byte
		want Compression
	}{
		{[]byte{0x1f, 0x8b, 8, 0}, Gzip},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0}, Zstd},
		{[]byte("etc/"), Uncompressed},
		{nil, Uncompressed},
	}
	for _, tt := range tests {
		if got := DetectCompression(tt.in); got != tt.want {
			t.Errorf("DetectCompression(% x) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestApplyLargeFilesBypassPageCache unpacks files from directMin bytes up,
// which are written with O_DIRECT: their content and size must be exact (the
// last block is padded for the write, then cut), and, where the filesystem
// takes O_DIRECT, none of their pages may be left in the page cache.
func TestApplyLargeFilesBypassPageCache(t *testing.T) {
	content := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + i/4096)
		}
		return string(b)
	}
	sizes := []int{directMin, directMin + 1, 3<<20 + 123, 1<<20 - 1 + directMin}
	var entries []tarEntry
	for i, n := range sizes {
		entries = append(entries, reg(fmt.Sprintf("f%d", i), content(n)))
	}
	entries = append(entries, reg("small", "x"))
	root := t.TempDir()
	if _, err := Apply(context.Background(), root, bytes.NewReader(makeTar(t, entries...)), applyOpts(WhiteoutOverlay)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	probe, err := os.Create(filepath.Join(t.TempDir(), "probe"))
	if err != nil {
		t.Fatal(err)
	}
	_, directErr := unix.FcntlInt(probe.Fd(), unix.F_SETFL, unix.O_WRONLY|unix.O_DIRECT)
	probe.Close()
	for i, n := range sizes {
		p := filepath.Join(root, fmt.Sprintf("f%d", i))
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if directErr == nil {
			m, err := unix.Mmap(int(f.Fd()), 0, n, unix.PROT_READ, unix.MAP_SHARED)
			if err != nil {
				t.Fatal(err)
			}
			vec := make([]byte, (n+os.Getpagesize()-1)/os.Getpagesize())
			if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
				t.Fatalf("mincore: %v", errno)
			}
			unix.Munmap(m)
			if k := bytes.Count(vec, []byte{1}); k > 0 {
				t.Errorf("%s (%d bytes): %d pages in the page cache after Apply, want 0", p, n, k)
			}
		} else {
			t.Logf("the test directory's filesystem refuses O_DIRECT (%v): content checked only", directErr)
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n || string(got) != content(n) {
			t.Errorf("%s: %d bytes read back, want %d of the entry's content", p, len(got), n)
		}
	}
}
