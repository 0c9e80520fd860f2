package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// treeLines describes dir one line per entry, sorted: "path type", plus
// "=content" for files, "->target" for symlinks, "nlink=N" for files with
// several links.
func treeLines(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for p, d := range describeTree(t, dir) {
		line := p + " " + d.Type
		switch d.Type {
		case "file":
			b, err := os.ReadFile(filepath.Join(dir, p))
			must(t, err)
			line += "=" + string(b)
			if d.Nlink > 1 {
				line += fmt.Sprintf(" nlink=%d", d.Nlink)
			}
		case "symlink":
			line += "->" + d.Link
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

// TestApplyOrder unpacks layers whose entries depend on each other's order:
// what comes later in the layer wins, whatever Apply does at once.
func TestApplyOrder(t *testing.T) {
	manyDirs := []tarEntry{}
	for i := range 300 { // more than the directory cache holds at a low limit
		manyDirs = append(manyDirs, dir(fmt.Sprintf("m/d%03d/", i)), reg(fmt.Sprintf("m/d%03d/f", i), fmt.Sprint(i)))
	}
	manyDirs = append(manyDirs, reg("m/d000/late", "late"), hardlink("m/d299/link", "m/d000/f"))
	manyWant := []string{"m dir"}
	for i := range 300 {
		manyWant = append(manyWant, fmt.Sprintf("m/d%03d dir", i))
		f := fmt.Sprintf("m/d%03d/f file=%d", i, i)
		if i == 0 {
			f += " nlink=2"
		}
		manyWant = append(manyWant, f)
	}
	manyWant = append(manyWant, "m/d000/late file=late", "m/d299/link file=0 nlink=2")
	slices.Sort(manyWant)

	tests := []struct {
		name    string
		mode    WhiteoutMode
		setup   func(t *testing.T, root string)
		entries []tarEntry
		want    []string
	}{
		{
			name:    "a file replaced later in the layer",
			entries: []tarEntry{reg("a", "first"), reg("b", "b"), reg("a", "second")},
			want:    []string{"a file=second", "b file=b"},
		},
		{
			name:    "a file replaced by a directory and a directory by a file",
			entries: []tarEntry{reg("x", "file"), dir("y/"), reg("y/in", "in"), dir("x/"), reg("x/in", "in"), reg("y", "file")},
			want:    []string{"x dir", "x/in file=in", "y file=file"},
		},
		{
			name:    "a directory entry after its content keeps the content",
			entries: []tarEntry{reg("d/sub/f", "f"), dir("d/sub/"), dir("d/")},
			want:    []string{"d dir", "d/sub dir", "d/sub/f file=f"},
		},
		{
			name:    "a hard link to a file written just before",
			entries: []tarEntry{reg("bin/a", "exe"), reg("bin/b", "other"), hardlink("bin/c", "bin/a"), hardlink("sbin/d", "bin/a")},
			want:    []string{"bin dir", "bin/a file=exe nlink=3", "bin/b file=other", "bin/c file=exe nlink=3", "sbin dir", "sbin/d file=exe nlink=3"},
		},
		{
			name:    "a hard link replaced by a file leaves the target alone",
			entries: []tarEntry{reg("a", "a"), hardlink("b", "a"), reg("b", "b")},
			want:    []string{"a file=a", "b file=b"},
		},
		{
			name:    "whiteout then recreate (apply)",
			mode:    WhiteoutApply,
			setup:   func(t *testing.T, root string) { mustWrite(t, filepath.Join(root, "d/old"), "old", 0o644) },
			entries: []tarEntry{reg(".wh.d", ""), dir("d/"), reg("d/new", "new")},
			want:    []string{"d dir", "d/new file=new"},
		},
		{
			name:    "recreate then whiteout (apply)",
			mode:    WhiteoutApply,
			entries: []tarEntry{dir("d/"), reg("d/f", "f"), reg("d/g", "g"), reg("d/.wh.f", "")},
			want:    []string{"d dir", "d/g file=g"},
		},
		{
			name:    "opaque keeps what this layer wrote before it (apply)",
			mode:    WhiteoutApply,
			setup:   func(t *testing.T, root string) { mustWrite(t, filepath.Join(root, "o/old"), "old", 0o644) },
			entries: []tarEntry{dir("o/"), reg("o/new", "new"), reg("o/.wh..wh..opq", ""), reg("o/after", "after")},
			want:    []string{"o dir", "o/after file=after", "o/new file=new"},
		},
		{
			name: "entries through a symlink that was there before (apply)",
			mode: WhiteoutApply,
			setup: func(t *testing.T, root string) {
				must(t, os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755))
				must(t, os.Symlink("usr/lib", filepath.Join(root, "lib")))
			},
			entries: []tarEntry{reg("lib/a", "a"), reg("lib/x/b", "b"), reg("usr/lib/c", "c")},
			want:    []string{"lib symlink->usr/lib", "usr dir", "usr/lib dir", "usr/lib/a file=a", "usr/lib/c file=c", "usr/lib/x dir", "usr/lib/x/b file=b"},
		},
		{
			name: "a symlink that was there before replaced by a directory (apply)",
			mode: WhiteoutApply,
			setup: func(t *testing.T, root string) {
				must(t, os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755))
				must(t, os.Symlink("usr/lib", filepath.Join(root, "lib")))
			},
			entries: []tarEntry{reg("lib/a", "a"), dir("lib/"), reg("lib/b", "b")},
			want:    []string{"lib dir", "lib/b file=b", "usr dir", "usr/lib dir", "usr/lib/a file=a"},
		},
		{
			name:    "many directories",
			entries: manyDirs,
			want:    manyWant,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, root)
			}
			if _, err := Apply(context.Background(), root, bytes.NewReader(makeTar(t, tt.entries...)), applyOpts(tt.mode)); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got := treeLines(t, root); !slices.Equal(got, tt.want) {
				t.Errorf("tree after Apply:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(tt.want, "\n      "))
			}
		})
	}
}

// TestApplyDirTimes checks that every directory ends with the time of its
// entry, however much was created in it afterwards, including directories
// whose entry comes after their content and more directories than the
// directory cache holds.
func TestApplyDirTimes(t *testing.T) {
	var entries []tarEntry
	want := map[string]time.Time{}
	at := func(e tarEntry, sec int64) tarEntry {
		e.hdr.ModTime = time.Unix(sec, 0)
		return e
	}
	entries = append(entries, reg("late/f", "f"), at(dir("late/"), 1000))
	want["late"] = time.Unix(1000, 0)
	for i := range 1200 {
		d := fmt.Sprintf("a/b%02d/c%04d", i%10, i)
		entries = append(entries, at(dir(d+"/"), int64(2000+i)), reg(d+"/f", "x"), at(dir(d+"/sub/"), int64(5000+i)), reg(d+"/sub/g", "y"))
		want[d] = time.Unix(int64(2000+i), 0)
		want[d+"/sub"] = time.Unix(int64(5000+i), 0)
	}
	for i := range 10 {
		d := fmt.Sprintf("a/b%02d", i)
		entries = append(entries, at(dir(d+"/"), int64(100+i)), reg(d+"/last", "z"))
		want[d] = time.Unix(int64(100+i), 0)
	}
	root := t.TempDir()
	if _, err := Apply(context.Background(), root, bytes.NewReader(makeTar(t, entries...)), applyOpts(WhiteoutOverlay)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for p, w := range want {
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(root, p), &st))
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(w) {
			t.Errorf("%s mtime = %v, want %v", p, got.UTC(), w.UTC())
		}
	}
}

// TestApplyOwnersInSetgidDir: files in a setgid directory take its group on
// creation, so Apply must still give them the group of their entry.
func TestApplyOwnersInSetgidDir(t *testing.T) {
	needRoot(t)
	owned := func(e tarEntry, uid, gid int, mode int64) tarEntry {
		e.hdr.Uid, e.hdr.Gid = uid, gid
		if mode != 0 {
			e.hdr.Mode = mode
		}
		return e
	}
	entries := []tarEntry{
		owned(dir("g/"), 0, 1000, 0o2775),
		owned(reg("g/root", "x"), 0, 0, 0),
		owned(reg("g/implicit/root", "x"), 0, 0, 0),
		owned(symlink("g/link", "root"), 0, 0, 0),
		owned(dir("g/sub/"), 0, 0, 0o755),
		owned(reg("g/user", "x"), 1000, 1000, 0),
		owned(reg("plain", "x"), 0, 0, 0),
		owned(reg("other", "x"), 1000, 2000, 0),
	}
	want := map[string][2]uint32{
		"g": {0, 1000}, "g/root": {0, 0}, "g/implicit/root": {0, 0}, "g/link": {0, 0}, "g/sub": {0, 0},
		"g/user": {1000, 1000}, "plain": {0, 0}, "other": {1000, 2000},
	}
	root := t.TempDir()
	if _, err := Apply(context.Background(), root, bytes.NewReader(makeTar(t, entries...)), ApplyOptions{}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for p, w := range want {
		var st unix.Stat_t
		must(t, unix.Lstat(filepath.Join(root, p), &st))
		if st.Uid != w[0] || st.Gid != w[1] {
			t.Errorf("%s owner = %d:%d, want %d:%d", p, st.Uid, st.Gid, w[0], w[1])
		}
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(root, "g/sub"), &st))
	if st.Mode&0o7777 != 0o755 {
		t.Errorf("g/sub mode = %o, want 755 (not the setgid bit of its parent)", st.Mode&0o7777)
	}
}

var _ = tar.TypeReg
