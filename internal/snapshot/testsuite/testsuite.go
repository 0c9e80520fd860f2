// Package testsuite is the conformance suite every snapshot driver runs (as
// containerd's core/snapshots/testsuite): the semantics of Prepare, View,
// Commit and Remove, parent chains, copy-on-write observed through real
// mounts, whiteouts and opaque directories, a 120-layer stack, two processes
// working on one root at once, crash leftovers removed by Cleanup, Usage, and
// Diff/Changes of a container layer.
//
// A driver's test calls Run from a top-level test function:
//
//	func TestSuite(t *testing.T) {
//		testsuite.Run(t, func(t *testing.T, root string) snapshot.Driver { ... })
//	}
//
// Run re-executes the test binary (that same test) for the tests that need a
// second process; in the child it runs the child's part and exits. Tests that
// mount need root and skip without it.
package testsuite

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/archive"
	"github.com/berthproject/berth/internal/snapshot"
	"github.com/opencontainers/go-digest"
)

// NewDriver opens a driver rooted at root (a fresh temporary directory, or
// the root of another test's driver for the multi-process tests).
type NewDriver func(t *testing.T, root string) snapshot.Driver

const (
	childEnv = "BERTH_SNAPSHOT_TESTSUITE_CHILD"
	rootEnv  = "BERTH_SNAPSHOT_TESTSUITE_ROOT"
	idEnv    = "BERTH_SNAPSHOT_TESTSUITE_ID"
)

// Run runs the suite against the driver newDriver opens.
func Run(t *testing.T, newDriver NewDriver) {
	if action := os.Getenv(childEnv); action != "" {
		runChild(t, action, newDriver)
		return
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, newDriver NewDriver)
	}{
		{"Lifecycle", testLifecycle},
		{"Errors", testErrors},
		{"Labels", testLabels},
		{"ParentChain", testParentChain},
		{"CopyOnWrite", testCopyOnWrite},
		{"Whiteouts", testWhiteouts},
		{"ManyLayers", testManyLayers},
		{"ConcurrentInstances", testConcurrentInstances},
		{"TwoProcesses", testTwoProcesses},
		{"CrashedPrepareIsCleaned", testCrashCleanup},
		{"CleanupKeepsLiveSnapshots", testCleanupKeepsLive},
		{"Usage", testUsage},
		{"DiffAndChanges", testDiffAndChanges},
		{"DuplicateLayerCommit", testDuplicateLayer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newDriver) })
	}
}

func open(t *testing.T, newDriver NewDriver) (snapshot.Driver, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "snapshots")
	d := newDriver(t, root)
	t.Cleanup(func() { d.Close() })
	return d, root
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounts snapshots: needs root")
	}
}

var ctx = context.Background()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// upper is the directory where the test writes into active snapshot key.
func upper(t *testing.T, d snapshot.Driver, key string) string {
	t.Helper()
	dir, _, err := d.UpperDir(ctx, key)
	must(t, err)
	return dir
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), 0o644))
}

func testLifecycle(t *testing.T, newDriver NewDriver) {
	d, _ := open(t, newDriver)
	if _, err := d.Prepare(ctx, "a", ""); err != nil {
		t.Fatalf("Prepare(a): %v", err)
	}
	info, err := d.Stat(ctx, "a")
	if err != nil || info.Kind != snapshot.KindActive || info.Parent != "" || info.Name != "a" {
		t.Fatalf("Stat(a) = %+v, %v; want active a with no parent", info, err)
	}
	writeFile(t, filepath.Join(upper(t, d, "a"), "hello"), "world")
	if err := d.Commit(ctx, "base", "a"); err != nil {
		t.Fatalf("Commit(base, a): %v", err)
	}
	if _, err := d.Stat(ctx, "a"); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("Stat(a) after commit = %v, want ErrNotFound", err)
	}
	info, err = d.Stat(ctx, "base")
	if err != nil || info.Kind != snapshot.KindCommitted {
		t.Fatalf("Stat(base) = %+v, %v; want committed", info, err)
	}
	// The key is free again.
	if _, err := d.Prepare(ctx, "a", "base"); err != nil {
		t.Fatalf("Prepare(a, base) after commit: %v", err)
	}
	if _, err := d.View(ctx, "v", "base"); err != nil {
		t.Fatalf("View(v, base): %v", err)
	}
	if info, err := d.Stat(ctx, "v"); err != nil || info.Kind != snapshot.KindView || info.Parent != "base" {
		t.Errorf("Stat(v) = %+v, %v; want a view of base", info, err)
	}
	for _, key := range []string{"a", "v"} {
		if m, err := d.Mounts(ctx, key); err != nil || len(m) == 0 {
			t.Errorf("Mounts(%s) = %v, %v; want mounts", key, m, err)
		}
	}
	var names []string
	must(t, d.Walk(ctx, func(i snapshot.Info) error {
		names = append(names, i.Name+":"+i.Kind.String())
		return nil
	}))
	if want := []string{"a:active", "base:committed", "v:view"}; !slices.Equal(names, want) {
		t.Errorf("Walk = %v, want %v", names, want)
	}
	if err := d.Remove(ctx, "base"); !errors.Is(err, snapshot.ErrInUse) {
		t.Errorf("Remove(base) with children = %v, want ErrInUse", err)
	}
	must(t, d.Remove(ctx, "a"))
	must(t, d.Remove(ctx, "v"))
	if err := d.Remove(ctx, "base"); err != nil {
		t.Errorf("Remove(base) once childless: %v", err)
	}
	must(t, d.Walk(ctx, func(i snapshot.Info) error {
		t.Errorf("Walk after removing everything lists %s", i.Name)
		return nil
	}))
}

func testErrors(t *testing.T, newDriver NewDriver) {
	d, _ := open(t, newDriver)
	_, err := d.Prepare(ctx, "active", "")
	must(t, err)
	_, err = d.Prepare(ctx, "c", "")
	must(t, err)
	must(t, d.Commit(ctx, "committed", "c"))
	_, err = d.View(ctx, "view", "committed")
	must(t, err)

	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"Prepare existing key", func() error { _, err := d.Prepare(ctx, "active", ""); return err }, snapshot.ErrAlreadyExists},
		{"Prepare on a missing parent", func() error { _, err := d.Prepare(ctx, "x", "missing"); return err }, snapshot.ErrNotFound},
		{"Prepare on an active parent", func() error { _, err := d.Prepare(ctx, "x", "active"); return err }, snapshot.ErrInvalid},
		{"Prepare on a view", func() error { _, err := d.Prepare(ctx, "x", "view"); return err }, snapshot.ErrInvalid},
		{"Prepare with an empty key", func() error { _, err := d.Prepare(ctx, "", ""); return err }, snapshot.ErrInvalid},
		{"View of a missing parent", func() error { _, err := d.View(ctx, "x", "missing"); return err }, snapshot.ErrNotFound},
		{"Commit a missing key", func() error { return d.Commit(ctx, "x", "missing") }, snapshot.ErrNotFound},
		{"Commit a view", func() error { return d.Commit(ctx, "x", "view") }, snapshot.ErrInvalid},
		{"Commit a committed snapshot", func() error { return d.Commit(ctx, "x", "committed") }, snapshot.ErrInvalid},
		{"Commit onto an existing name", func() error { return d.Commit(ctx, "committed", "active") }, snapshot.ErrAlreadyExists},
		{"Commit on a missing parent", func() error { return d.Commit(ctx, "x", "active", snapshot.WithParent("missing")) }, nil},
		{"Mounts of a committed snapshot", func() error { _, err := d.Mounts(ctx, "committed"); return err }, snapshot.ErrInvalid},
		{"Mounts of a missing key", func() error { _, err := d.Mounts(ctx, "missing"); return err }, snapshot.ErrNotFound},
		{"Remove a missing key", func() error { return d.Remove(ctx, "missing") }, snapshot.ErrNotFound},
		{"Remove a parent", func() error { return d.Remove(ctx, "committed") }, snapshot.ErrInUse},
		{"Stat a missing key", func() error { _, err := d.Stat(ctx, "missing"); return err }, snapshot.ErrNotFound},
		{"Usage of a missing key", func() error { _, err := d.Usage(ctx, "missing"); return err }, snapshot.ErrNotFound},
	}
	for _, tt := range tests {
		err := tt.op()
		if tt.want == nil {
			// Refused either way: ErrNotFound (rebasing driver) or ErrInvalid.
			if !errors.Is(err, snapshot.ErrNotFound) && !errors.Is(err, snapshot.ErrInvalid) {
				t.Errorf("%s = %v, want ErrNotFound or ErrInvalid", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, err, tt.want)
		}
	}
	// Failed operations changed nothing.
	if info, err := d.Stat(ctx, "active"); err != nil || info.Kind != snapshot.KindActive {
		t.Errorf("after the failed operations Stat(active) = %+v, %v", info, err)
	}
	if !d.ParallelUnpack() {
		if err := d.Commit(ctx, "x", "active", snapshot.WithParent("committed")); !errors.Is(err, snapshot.ErrInvalid) {
			t.Errorf("Commit WithParent on a driver without ParallelUnpack = %v, want ErrInvalid", err)
		}
	}
}

func testLabels(t *testing.T, newDriver NewDriver) {
	d, _ := open(t, newDriver)
	_, err := d.Prepare(ctx, "a", "", snapshot.WithLabels(map[string]string{"x": "1", "y": "2"}))
	must(t, err)
	must(t, d.Commit(ctx, "b", "a", snapshot.WithLabels(map[string]string{"y": "3", "z": "4"})))
	info, err := d.Stat(ctx, "b")
	must(t, err)
	want := map[string]string{"x": "1", "y": "3", "z": "4"}
	if fmt.Sprint(info.Labels) != fmt.Sprint(want) {
		t.Errorf("labels after commit = %v, want %v", info.Labels, want)
	}
	if time.Since(info.Created) > time.Hour || info.Created.After(time.Now().Add(time.Minute)) {
		t.Errorf("Created = %v, want about now", info.Created)
	}
}

// mount makes a mount point and mounts snapshot key there, unmounted at the
// end of the test whatever happens.
func mount(t *testing.T, d snapshot.Driver, key string) string {
	t.Helper()
	m, err := d.Mounts(ctx, key)
	must(t, err)
	target := t.TempDir()
	if err := snapshot.MountAll(m, target); err != nil {
		t.Fatalf("mount %s (%+v): %v", key, m, err)
	}
	t.Cleanup(func() {
		if err := snapshot.Unmount(target); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
	})
	return target
}

// readTree lists a tree: path -> "dir", "file:<content>", "link:<target>".
func readTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		switch {
		case fi.IsDir():
			out[rel] = fmt.Sprintf("dir %o", fi.Mode().Perm())
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "link:" + l
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = "file:" + string(b)
		default:
			out[rel] = fi.Mode().String()
		}
		return nil
	})
	must(t, err)
	return out
}

func treeString(m map[string]string) string {
	var lines []string
	for k, v := range m {
		lines = append(lines, k+" = "+v)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func checkTree(t *testing.T, what, root string, want map[string]string) {
	t.Helper()
	got := readTree(t, root)
	if treeString(got) != treeString(want) {
		t.Errorf("%s:\n%s\nwant\n%s", what, treeString(got), treeString(want))
	}
}

// layerTar builds a layer: "dir/" is a directory, "name=content" a file,
// "name->target" a symlink, ".wh.*" names are files too (whiteouts).
func layerTar(t testing.TB, entries ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	for _, e := range entries {
		var hdr tar.Header
		var content string
		switch {
		case strings.HasSuffix(e, "/"):
			hdr = tar.Header{Typeflag: tar.TypeDir, Name: e, Mode: 0o755}
		case strings.Contains(e, "->"):
			name, target, _ := strings.Cut(e, "->")
			hdr = tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}
		default:
			name, c, _ := strings.Cut(e, "=")
			content = c
			hdr = tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(c))}
		}
		hdr.ModTime = mtime
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("tar header %s: %v", e, err)
		}
		io.WriteString(tw, content)
	}
	must2(t, tw.Close())
	return buf.Bytes()
}

// newLayers is the pull path as the tests use it: without root, files stay
// the caller's.
func newLayers(d snapshot.Driver) *snapshot.Layers {
	return snapshot.NewLayers(d, snapshot.LayersOptions{Apply: archive.ApplyOptions{NoLchown: os.Geteuid() != 0}})
}

func must2(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// unpack unpacks layer tars as an image's layers through snapshot.Layers:
// concurrently when the driver can, else in order. It returns the chain ids.
func unpack(t testing.TB, d snapshot.Driver, layers ...[]byte) []digest.Digest {
	t.Helper()
	l := newLayers(d)
	diffIDs := make([]digest.Digest, len(layers))
	for i, b := range layers {
		diffIDs[i] = digest.FromBytes(b)
	}
	chain := snapshot.ChainIDs(diffIDs)
	parent := func(i int) digest.Digest {
		if i == 0 {
			return ""
		}
		return chain[i-1]
	}
	if !l.Parallel() {
		for i, b := range layers {
			w, err := l.Begin(ctx, parent(i))
			must2(t, err)
			must2(t, w.Apply(ctx, bytes.NewReader(b)))
			if w.DiffID() != diffIDs[i] {
				t.Fatalf("layer %d diff id = %s, want %s", i, w.DiffID(), diffIDs[i])
			}
			must2(t, w.Commit(ctx, chain[i]))
		}
		return chain
	}
	writers := make([]*snapshot.LayerWriter, len(layers))
	errs := make([]error, len(layers))
	var wg sync.WaitGroup
	for i, b := range layers {
		w, err := l.Begin(ctx, parent(i))
		must2(t, err)
		writers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.Apply(ctx, bytes.NewReader(b))
		}()
	}
	wg.Wait()
	for i, w := range writers {
		if errs[i] != nil {
			t.Fatalf("apply layer %d: %v", i, errs[i])
		}
		if w.DiffID() != diffIDs[i] {
			t.Fatalf("layer %d diff id = %s, want %s", i, w.DiffID(), diffIDs[i])
		}
		must2(t, w.Commit(ctx, chain[i]))
	}
	return chain
}

func testParentChain(t *testing.T, newDriver NewDriver) {
	needRoot(t)
	d, _ := open(t, newDriver)
	chain := unpack(t, d,
		layerTar(t, "etc/", "etc/a=one", "etc/b=b"),
		layerTar(t, "etc/", "etc/a=two", "usr/", "usr/c=c"),
		layerTar(t, "etc/", "etc/.wh.b", "usr/", "usr/d->c"),
	)
	for i, c := range chain {
		info, err := d.Stat(ctx, string(c))
		if err != nil || info.Kind != snapshot.KindCommitted {
			t.Fatalf("layer %d (%s) = %+v, %v; want committed", i, c, info, err)
		}
		if i > 0 && info.Parent != string(chain[i-1]) {
			t.Errorf("layer %d parent = %s, want %s", i, info.Parent, chain[i-1])
		}
	}
	_, err := d.View(ctx, "v1", string(chain[0]))
	must(t, err)
	_, err = d.View(ctx, "v2", string(chain[1]))
	must(t, err)
	_, err = d.Prepare(ctx, "ctr", string(chain[2]))
	must(t, err)
	checkTree(t, "view of layer 1", mount(t, d, "v1"), map[string]string{"etc": "dir 755", "etc/a": "file:one", "etc/b": "file:b"})
	checkTree(t, "view of layer 2", mount(t, d, "v2"), map[string]string{
		"etc": "dir 755", "etc/a": "file:two", "etc/b": "file:b", "usr": "dir 755", "usr/c": "file:c",
	})
	checkTree(t, "container on layer 3", mount(t, d, "ctr"), map[string]string{
		"etc": "dir 755", "etc/a": "file:two", "usr": "dir 755", "usr/c": "file:c", "usr/d": "link:c",
	})
}

func testCopyOnWrite(t *testing.T, newDriver NewDriver) {
	needRoot(t)
	d, _ := open(t, newDriver)
	chain := unpack(t, d, layerTar(t, "f1=base1", "f2=base2", "d/", "d/f3=base3"))
	base := string(chain[0])
	for _, key := range []string{"A", "B"} {
		_, err := d.Prepare(ctx, key, base)
		must(t, err)
	}
	_, err := d.View(ctx, "image", base)
	must(t, err)
	a, b, image := mount(t, d, "A"), mount(t, d, "B"), mount(t, d, "image")
	baseTree := map[string]string{"f1": "file:base1", "f2": "file:base2", "d": "dir 755", "d/f3": "file:base3"}
	checkTree(t, "A before changes", a, baseTree)

	must(t, os.WriteFile(filepath.Join(a, "f1"), []byte("changed in A"), 0o644))
	must(t, os.Remove(filepath.Join(a, "f2")))
	must(t, os.RemoveAll(filepath.Join(a, "d")))
	must(t, os.WriteFile(filepath.Join(a, "new"), []byte("new in A"), 0o644))
	must(t, os.WriteFile(filepath.Join(b, "f2"), []byte("changed in B"), 0o644))

	checkTree(t, "A after its changes", a, map[string]string{"f1": "file:changed in A", "new": "file:new in A"})
	checkTree(t, "B (only its own change)", b, map[string]string{"f1": "file:base1", "f2": "file:changed in B", "d": "dir 755", "d/f3": "file:base3"})
	checkTree(t, "the image", image, baseTree)
	if err := os.WriteFile(filepath.Join(image, "f1"), []byte("x"), 0o644); err == nil {
		t.Error("writing into a view succeeded, want a read-only file system")
	}
	// A second container on the image sees the image, not A's or B's changes.
	_, err = d.Prepare(ctx, "C", base)
	must(t, err)
	checkTree(t, "a new container", mount(t, d, "C"), baseTree)
}

func testWhiteouts(t *testing.T, newDriver NewDriver) {
	needRoot(t)
	d, _ := open(t, newDriver)
	chain := unpack(t, d,
		layerTar(t, "x/", "x/old1=1", "x/sub/", "x/sub/old2=2", "y/", "y/z=z", "keep=k", "gone=g"),
		layerTar(t, "x/", "x/.wh..wh..opq", "x/new=n", ".wh.y", ".wh.gone"),
		layerTar(t, "gone/", "gone/again=a"),
	)
	_, err := d.Prepare(ctx, "ctr", string(chain[2]))
	must(t, err)
	target := mount(t, d, "ctr")
	checkTree(t, "opaque x, deleted y, re-created gone", target, map[string]string{
		"x": "dir 755", "x/new": "file:n", "keep": "file:k", "gone": "dir 755", "gone/again": "file:a",
	})
	// Deleting in the container hides lower files; re-creating shows them new.
	must(t, os.Remove(filepath.Join(target, "keep")))
	must(t, os.RemoveAll(filepath.Join(target, "x")))
	must(t, os.Mkdir(filepath.Join(target, "x"), 0o700))
	checkTree(t, "after deleting in the container", target, map[string]string{
		"x": "dir 700", "gone": "dir 755", "gone/again": "file:a",
	})
}

func testManyLayers(t *testing.T, newDriver NewDriver) {
	needRoot(t)
	d, _ := open(t, newDriver)
	const n = 120
	layers := make([][]byte, n)
	want := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("f%03d", i)
		layers[i] = layerTar(t, name+"="+name)
		want[name] = "file:" + name
	}
	layers[n-1] = layerTar(t, ".wh.f000", "last=last")
	delete(want, "f000")
	delete(want, fmt.Sprintf("f%03d", n-1))
	want["last"] = "file:last"
	chain := unpack(t, d, layers...)
	top := string(chain[n-1])
	_, err := d.Prepare(ctx, "ctr", top)
	must(t, err)
	_, err = d.View(ctx, "view", top)
	must(t, err)
	checkTree(t, "container on 120 layers", mount(t, d, "ctr"), want)
	checkTree(t, "view of 120 layers", mount(t, d, "view"), want)
}

// testConcurrentInstances: two instances on one root (separate locks, as two
// processes have) prepare and commit at once.
func testConcurrentInstances(t *testing.T, newDriver NewDriver) {
	d1, root := open(t, newDriver)
	d2 := newDriver(t, root)
	t.Cleanup(func() { d2.Close() })
	_, err := d1.Prepare(ctx, "b", "")
	must(t, err)
	must(t, d1.Commit(ctx, "base", "b"))
	const n = 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for w, d := range []snapshot.Driver{d1, d2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				key := fmt.Sprintf("w%d-%d", w, i)
				if _, err := d.Prepare(ctx, key, "base"); err != nil {
					errs <- err
					return
				}
				if err := d.Commit(ctx, key+"-c", key); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent prepare/commit: %v", err)
	}
	count := 0
	must(t, d1.Walk(ctx, func(i snapshot.Info) error {
		count++
		return nil
	}))
	if count != 2*n+1 {
		t.Errorf("Walk lists %d snapshots, want %d", count, 2*n+1)
	}
}

// childCmd runs this test binary as a child process doing action on root.
func childCmd(t *testing.T, action, root, id string) *exec.Cmd {
	top := strings.SplitN(t.Name(), "/", 2)[0]
	cmd := exec.Command(os.Args[0], "-test.run=^"+top+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+action, rootEnv+"="+root, idEnv+"="+id)
	return cmd
}

// runChild is the child side. It reports on stdout.
func runChild(t *testing.T, action string, newDriver NewDriver) {
	root, id := os.Getenv(rootEnv), os.Getenv(idEnv)
	d := newDriver(t, root)
	fail := func(err error) {
		fmt.Printf("child error: %v\n", err)
		os.Exit(1)
	}
	switch action {
	case "churn":
		// Prepare, write, commit, view, remove; and race the other process
		// for the name "shared".
		for i := range 20 {
			key := fmt.Sprintf("p%s-%d", id, i)
			if _, err := d.Prepare(ctx, key, "base"); err != nil {
				fail(err)
			}
			dir, _, err := d.UpperDir(ctx, key)
			if err != nil {
				fail(err)
			}
			if err := os.WriteFile(filepath.Join(dir, key), []byte(key), 0o644); err != nil {
				fail(err)
			}
			if err := d.Commit(ctx, key+"-c", key); err != nil {
				fail(err)
			}
			if _, err := d.View(ctx, key+"-v", key+"-c"); err != nil {
				fail(err)
			}
			if err := d.Remove(ctx, key+"-v"); err != nil {
				fail(err)
			}
		}
		key := "shared-" + id
		if _, err := d.Prepare(ctx, key, "base"); err != nil {
			fail(err)
		}
		err := d.Commit(ctx, "shared", key)
		switch {
		case err == nil:
			fmt.Println("won shared")
		case errors.Is(err, snapshot.ErrAlreadyExists):
			if err := d.Remove(ctx, key); err != nil {
				fail(err)
			}
			fmt.Println("lost shared")
		default:
			fail(err)
		}
	case "prepare-and-hang":
		if _, err := d.Prepare(ctx, "crashed", "", snapshot.Transient()); err != nil {
			fail(err)
		}
		dir, _, err := d.UpperDir(ctx, "crashed")
		if err != nil {
			fail(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "half"), []byte("half a layer"), 0o644); err != nil {
			fail(err)
		}
		fmt.Println("ready")
		time.Sleep(time.Hour) // killed by the parent
	default:
		fail(fmt.Errorf("unknown child action %q", action))
	}
	d.Close()
	os.Exit(0)
}

func testTwoProcesses(t *testing.T, newDriver NewDriver) {
	d, root := open(t, newDriver)
	_, err := d.Prepare(ctx, "b", "")
	must(t, err)
	must(t, d.Commit(ctx, "base", "b"))

	var outs [2]bytes.Buffer
	var cmds [2]*exec.Cmd
	for i := range cmds {
		cmds[i] = childCmd(t, "churn", root, strconv.Itoa(i))
		cmds[i].Stdout = &outs[i]
		cmds[i].Stderr = &outs[i]
		must(t, cmds[i].Start())
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i].String())
		}
	}
	won := strings.Count(outs[0].String()+outs[1].String(), "won shared")
	lost := strings.Count(outs[0].String()+outs[1].String(), "lost shared")
	if won != 1 || lost != 1 {
		t.Errorf("the race for one name: %d won, %d lost; want 1 and 1\n%s\n%s", won, lost, outs[0].String(), outs[1].String())
	}
	var names []string
	must(t, d.Walk(ctx, func(i snapshot.Info) error {
		names = append(names, i.Name)
		return nil
	}))
	if len(names) != 42 { // base, shared, 2 x 20 committed
		t.Errorf("after two processes Walk lists %d snapshots, want 42: %v", len(names), names)
	}
	must(t, d.Cleanup(ctx))
	// Every committed layer kept its content, and Cleanup took nothing.
	for p := range 2 {
		for i := range 20 {
			key := fmt.Sprintf("p%d-%d", p, i)
			_, err := d.Prepare(ctx, key, key+"-c")
			must(t, err)
			u := upper(t, d, key)
			if d.ParallelUnpack() {
				continue // an overlay upper holds only the new layer's files
			}
			if b, err := os.ReadFile(filepath.Join(u, key)); err != nil || string(b) != key {
				t.Errorf("content of %s-c = %q, %v", key, b, err)
			}
		}
	}
	if os.Geteuid() == 0 {
		target := mount(t, d, "p1-7")
		if b, err := os.ReadFile(filepath.Join(target, "p1-7")); err != nil || string(b) != "p1-7" {
			t.Errorf("mounted p1-7 shows %q, %v", b, err)
		}
	}
}

func testCrashCleanup(t *testing.T, newDriver NewDriver) {
	d, root := open(t, newDriver)
	cmd := childCmd(t, "prepare-and-hang", root, "0")
	out, err := cmd.StdoutPipe()
	must(t, err)
	cmd.Stderr = os.Stderr
	must(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("child said %q, %v; want ready", line, err)
	}
	if info, err := d.Stat(ctx, "crashed"); err != nil || info.Kind != snapshot.KindActive {
		t.Fatalf("Stat(crashed) while the child lives = %+v, %v", info, err)
	}
	dir := upper(t, d, "crashed")
	// While its process lives, the transient snapshot is not garbage.
	must(t, d.Cleanup(ctx))
	if _, err := d.Stat(ctx, "crashed"); err != nil {
		t.Fatalf("Cleanup removed the transient snapshot of a live process: %v", err)
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	cmd.Wait()
	must(t, d.Cleanup(ctx))
	if _, err := d.Stat(ctx, "crashed"); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("Stat(crashed) after the crash and Cleanup = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the crashed snapshot's directory %s is still there (%v)", dir, err)
	}
}

func testCleanupKeepsLive(t *testing.T, newDriver NewDriver) {
	d, _ := open(t, newDriver)
	_, err := d.Prepare(ctx, "mine", "", snapshot.Transient())
	must(t, err)
	_, err = d.Prepare(ctx, "container", "")
	must(t, err)
	_, err = d.Prepare(ctx, "c", "")
	must(t, err)
	must(t, d.Commit(ctx, "layer", "c"))
	must(t, d.Cleanup(ctx))
	for _, k := range []string{"mine", "container", "layer"} {
		if _, err := d.Stat(ctx, k); err != nil {
			t.Errorf("Cleanup removed live snapshot %s: %v", k, err)
		}
	}
	// Closed without commit, a transient snapshot is garbage.
	must(t, d.Close())
	must(t, d.Cleanup(ctx))
	if _, err := d.Stat(ctx, "mine"); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("transient snapshot after Close and Cleanup: %v, want ErrNotFound", err)
	}
	if _, err := d.Stat(ctx, "container"); err != nil {
		t.Errorf("Cleanup removed an ordinary active snapshot: %v", err)
	}
}

func testUsage(t *testing.T, newDriver NewDriver) {
	d, _ := open(t, newDriver)
	_, err := d.Prepare(ctx, "a", "")
	must(t, err)
	empty, err := d.Usage(ctx, "a")
	must(t, err)
	u := upper(t, d, "a")
	writeFile(t, filepath.Join(u, "big"), strings.Repeat("x", 1<<20))
	for i := range 10 {
		writeFile(t, filepath.Join(u, "small", strconv.Itoa(i)), "s")
	}
	must(t, os.Link(filepath.Join(u, "big"), filepath.Join(u, "big-link")))
	got, err := d.Usage(ctx, "a")
	must(t, err)
	if got.Size-empty.Size < 1<<20 || got.Size-empty.Size > 2<<20 {
		t.Errorf("Usage grew by %d bytes for a 1 MiB file (and its hard link), want 1-2 MiB", got.Size-empty.Size)
	}
	if got.Inodes-empty.Inodes != 12 { // big, small/, 10 files
		t.Errorf("Usage inodes grew by %d, want 12", got.Inodes-empty.Inodes)
	}
	must(t, d.Commit(ctx, "b", "a"))
	if after, err := d.Usage(ctx, "b"); err != nil || after != got {
		t.Errorf("Usage after commit = %+v, %v; want %+v", after, err, got)
	}
}

func testDiffAndChanges(t *testing.T, newDriver NewDriver) {
	needRoot(t)
	d, _ := open(t, newDriver)
	chain := unpack(t, d, layerTar(t, "etc/", "etc/hosts=old", "etc/passwd=root", "var/", "var/log/", "var/log/x=x", "bin/", "bin/sh=sh"))
	_, err := d.Prepare(ctx, "ctr", string(chain[0]))
	must(t, err)
	target := mount(t, d, "ctr")
	must(t, os.WriteFile(filepath.Join(target, "etc/hosts"), []byte("new"), 0o644))
	must(t, os.Remove(filepath.Join(target, "etc/passwd")))
	must(t, os.RemoveAll(filepath.Join(target, "var/log")))
	must(t, os.MkdirAll(filepath.Join(target, "srv/www"), 0o755))
	must(t, os.WriteFile(filepath.Join(target, "srv/www/index"), []byte("hi"), 0o644))
	want := readTree(t, target)

	changes, err := d.Changes(ctx, "ctr")
	must(t, err)
	var got []string
	for _, c := range changes {
		got = append(got, c.String())
	}
	wantChanges := []string{"C /etc", "C /etc/hosts", "D /etc/passwd", "A /srv", "A /srv/www", "A /srv/www/index", "C /var", "D /var/log"}
	if !slices.Equal(got, wantChanges) {
		t.Errorf("Changes =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantChanges, "\n"))
	}

	// Commit: the container layer as a tar, unpacked as a new layer.
	var layer bytes.Buffer
	must(t, d.Diff(ctx, "ctr", &layer, archive.DiffOptions{}))
	l := newLayers(d)
	w, err := l.Begin(ctx, chain[0])
	must(t, err)
	must(t, w.Apply(ctx, bytes.NewReader(layer.Bytes())))
	committed := snapshot.ChainID(chain[0], w.DiffID())
	must(t, w.Commit(ctx, committed))
	_, err = d.View(ctx, "image", string(committed))
	must(t, err)
	checkTree(t, "the committed image", mount(t, d, "image"), want)
}

// testDuplicateLayer: two unpacks of the same layer (two pulls at once): the
// second commit finds the layer there, discards its copy and succeeds.
func testDuplicateLayer(t *testing.T, newDriver NewDriver) {
	d, _ := open(t, newDriver)
	l := newLayers(d)
	layer := layerTar(t, "a=1")
	chainID := digest.FromBytes(layer)
	w1, err := l.Begin(ctx, "")
	must(t, err)
	w2, err := l.Begin(ctx, "")
	must(t, err)
	for _, w := range []*snapshot.LayerWriter{w1, w2} {
		must(t, w.Apply(ctx, bytes.NewReader(layer)))
	}
	must(t, w1.Commit(ctx, chainID))
	if err := w2.Commit(ctx, chainID); err != nil {
		t.Errorf("second commit of the same layer = %v, want success", err)
	}
	if ok, err := l.Exists(ctx, chainID); !ok || err != nil {
		t.Errorf("Exists(%s) = %v, %v", chainID, ok, err)
	}
	// An aborted layer leaves nothing.
	w3, err := l.Begin(ctx, chainID)
	must(t, err)
	must(t, w3.Abort(ctx))
	var names []string
	must(t, d.Walk(ctx, func(i snapshot.Info) error {
		names = append(names, i.Name)
		return nil
	}))
	if len(names) != 1 || names[0] != string(chainID) {
		t.Errorf("after duplicate and aborted layers Walk = %v, want only %s", names, chainID)
	}
	var walked []string
	must(t, l.Walk(ctx, func(c, p digest.Digest) error {
		walked = append(walked, string(c)+" on "+string(p))
		return nil
	}))
	if len(walked) != 1 {
		t.Errorf("Layers.Walk = %v, want one layer", walked)
	}
}
