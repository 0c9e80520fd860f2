package image

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/archive"
	"github.com/berthproject/berth/internal/content"
	"github.com/berthproject/berth/internal/image/registry"
	"github.com/berthproject/berth/internal/snapshot"
	"github.com/berthproject/berth/internal/snapshot/native"
	"github.com/berthproject/berth/internal/snapshot/overlay"
	testregistry "github.com/berthproject/berth/test/registry"
)

type driverCase struct {
	name string
	open func(root string) (snapshot.Driver, error)
}

var drivers = []driverCase{
	{"overlay", func(root string) (snapshot.Driver, error) { return overlay.New(root) }},
	{"native", func(root string) (snapshot.Driver, error) { return native.New(root) }},
}

// realStore is an image store on a real snapshot driver.
type realStore struct {
	*Store
	d       snapshot.Driver
	drvRoot string // the driver's root, for another instance (another process)
}

func newRealStore(t *testing.T, dc driverCase) *realStore {
	t.Helper()
	root := t.TempDir()
	drvRoot := filepath.Join(root, "snapshots", dc.name)
	d, err := dc.open(drvRoot)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	cs, err := content.New(root)
	if err != nil {
		t.Fatal(err)
	}
	cs.NoSync = true
	s, err := New(Options{Root: root, Content: cs, Layers: FromSnapshots(snapshot.NewLayers(d, snapshot.LayersOptions{})),
		Registry: registry.New(registry.Options{ConfigDir: t.TempDir()}), Platform: Platform{OS: "linux", Architecture: "amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	return &realStore{Store: s, d: d, drvRoot: drvRoot}
}

// container prepares a writable layer on the image and mounts it; both go
// away when the test ends.
func (rs *realStore) container(t *testing.T, key string, img *Image) string {
	t.Helper()
	ctx := context.Background()
	mounts, err := rs.d.Prepare(ctx, key, string(img.ChainID()))
	if err != nil {
		t.Fatalf("prepare %s: %v", key, err)
	}
	target := t.TempDir()
	if err := snapshot.MountAll(mounts, target); err != nil {
		rs.d.Remove(ctx, key)
		t.Fatalf("mount %s: %v", key, err)
	}
	t.Cleanup(func() {
		snapshot.Unmount(target)
		rs.d.Remove(ctx, key)
	})
	return target
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestPullOntoSnapshotDrivers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("unpacking layers with owners and mounting snapshots needs root")
	}
	ctx := context.Background()
	for _, dc := range drivers {
		t.Run(dc.name, func(t *testing.T) {
			reg := testregistry.Start(t, testregistry.Options{})
			pushed := reg.Push(t, "real/app", "v1", gzipImage())
			rs := newRealStore(t, dc)
			img, err := rs.Pull(ctx, reg.Host+"/real/app:v1", PullOptions{})
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if img.ID.String() != pushed.ConfigDigest {
				t.Fatalf("pulled %s, want %s", img.ID, pushed.ConfigDigest)
			}
			c1 := rs.container(t, "berth-test-c1", img)
			c2 := rs.container(t, "berth-test-c2", img)

			// The layers stack: whiteouts delete, opaque dirs hide, links and xattrs survive.
			for _, gone := range []string{"etc/hostname", "var/cache/a"} {
				if _, err := os.Lstat(filepath.Join(c1, gone)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s visible in the container (err %v); a later layer deleted it", gone, err)
				}
			}
			if b, err := os.ReadFile(filepath.Join(c1, "var/cache/b")); err != nil || string(b) != "b" {
				t.Errorf("var/cache/b = %q, %v", b, err)
			}
			if inode(t, filepath.Join(c1, "bin/tool")) != inode(t, filepath.Join(c1, "bin/tool-link")) {
				t.Error("bin/tool-link is not a hard link of bin/tool")
			}
			buf := make([]byte, 64)
			if n, err := unix.Lgetxattr(filepath.Join(c1, "bin/tool"), "user.origin", buf); err != nil || string(buf[:n]) != "base" {
				t.Errorf("xattr user.origin of bin/tool = %q, %v; want base", buf[:max(n, 0)], err)
			}

			// Copy-on-write: c1's changes stay in c1.
			if err := os.WriteFile(filepath.Join(c1, "bin/tool"), []byte("changed"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(c1, "app")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(c1, "new-file"), []byte("new"), 0o644); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(c2, "bin/tool")); string(b) != "#!/bin/sh\n" {
				t.Errorf("c2 sees bin/tool = %q after c1 changed it", b)
			}
			if _, err := os.Stat(filepath.Join(c2, "app")); err != nil {
				t.Errorf("c2 lost app after c1 deleted it: %v", err)
			}
			c3 := rs.container(t, "berth-test-c3", img)
			if b, _ := os.ReadFile(filepath.Join(c3, "bin/tool")); string(b) != "#!/bin/sh\n" {
				t.Errorf("a new container sees bin/tool = %q: the image changed", b)
			}

			// docker diff and commit of c1.
			changes, err := rs.d.Changes(ctx, "berth-test-c1")
			if err != nil {
				t.Fatal(err)
			}
			var list []string
			for _, c := range changes {
				list = append(list, c.String())
			}
			got := strings.Join(list, " ")
			for _, want := range []string{"D /app", "A /new-file", "C /bin/tool"} {
				if !strings.Contains(got, want) {
					t.Errorf("changes %q lack %q", got, want)
				}
			}
			var diff bytes.Buffer
			if err := rs.d.Diff(ctx, "berth-test-c1", &diff, archive.DiffOptions{}); err != nil {
				t.Fatal(err)
			}
			committed, err := rs.Commit(ctx, CommitOptions{Base: img.ID, Layer: &diff, Ref: "localhost/committed:1", Comment: "c1"})
			if err != nil {
				t.Fatalf("Commit: %v", err)
			}
			c4 := rs.container(t, "berth-test-c4", committed)
			if b, _ := os.ReadFile(filepath.Join(c4, "bin/tool")); string(b) != "changed" {
				t.Errorf("committed image has bin/tool = %q", b)
			}
			if _, err := os.Stat(filepath.Join(c4, "app")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("committed image still has app (%v)", err)
			}

			// save -> load on the other driver -> push -> pull: same digests.
			var saved bytes.Buffer
			if err := rs.Save(ctx, &saved, []string{"localhost/committed:1"}, SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			other := drivers[0]
			if dc.name == other.name {
				other = drivers[1]
			}
			rs2 := newRealStore(t, other)
			if _, err := rs2.Load(ctx, &saved, LoadOptions{}); err != nil {
				t.Fatalf("Load on %s: %v", other.name, err)
			}
			target := reg.Host + "/real/committed:1"
			if err := rs2.Tag(ctx, "localhost/committed:1", target); err != nil {
				t.Fatal(err)
			}
			if _, err := rs2.Push(ctx, target, PushOptions{}); err != nil {
				t.Fatalf("Push: %v", err)
			}
			rs3 := newRealStore(t, dc)
			again, err := rs3.Pull(ctx, target, PullOptions{})
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if again.ID != committed.ID || again.Manifest.Digest != committed.Manifest.Digest || again.ChainID() != committed.ChainID() {
				t.Errorf("round trip changed the image: %s/%s, want %s/%s", again.ID, again.Manifest.Digest, committed.ID, committed.Manifest.Digest)
			}
		})
	}
}

func TestGCOnSnapshotDriver(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("unpacking layers with owners needs root")
	}
	ctx := context.Background()
	for _, dc := range drivers {
		t.Run(dc.name, func(t *testing.T) {
			rs := newRealStore(t, dc)
			base, err := rs.Import(ctx, bytes.NewReader(rootfsTar()), ImportOptions{Ref: "localhost/base:1"})
			if err != nil {
				t.Fatal(err)
			}
			app, err := rs.Commit(ctx, CommitOptions{Base: base.ID, Layer: bytes.NewReader(changesTar()), Ref: "localhost/app:1"})
			if err != nil {
				t.Fatal(err)
			}
			count := 0
			rs.d.Walk(ctx, func(snapshot.Info) error { count++; return nil })
			if count != 2 {
				t.Fatalf("%d snapshots after import+commit, want 2", count)
			}
			// A container on app keeps its layers through a forced rmi.
			mounts, err := rs.d.Prepare(ctx, "berth-test-gc-c", string(app.ChainID()))
			if err != nil {
				t.Fatal(err)
			}
			_ = mounts
			if _, err := rs.Remove(ctx, "localhost/app:1", RemoveOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := rs.Remove(ctx, "localhost/base:1", RemoveOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
			count = 0
			rs.d.Walk(ctx, func(snapshot.Info) error { count++; return nil })
			if count != 3 {
				t.Errorf("%d snapshots with a container on the removed image, want 3 (2 layers + the container)", count)
			}
			if err := rs.d.Remove(ctx, "berth-test-gc-c"); err != nil {
				t.Fatal(err)
			}
			if _, err := rs.GC(ctx); err != nil {
				t.Fatal(err)
			}
			count = 0
			rs.d.Walk(ctx, func(snapshot.Info) error { count++; return nil })
			if count != 0 {
				t.Errorf("%d snapshots after the container went and GC ran, want 0", count)
			}
			var blobs int
			rs.content.Walk(ctx, func(content.Info) error { blobs++; return nil })
			if blobs != 0 {
				t.Errorf("%d blobs after GC, want 0", blobs)
			}
		})
	}
}

func TestImportRefusesPathTraversal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("unpacking layers with owners needs root")
	}
	ctx := context.Background()
	tests := []struct {
		name    string
		entries []testregistry.Entry
	}{
		{"dot-dot", []testregistry.Entry{{Name: "../berth-escape", Body: "x"}}},
		{"through a symlink", []testregistry.Entry{{Name: "link", Type: '2', Linkname: "/tmp"}, {Name: "link/berth-escape", Body: "x"}}},
		{"hard link to outside", []testregistry.Entry{{Name: "passwd", Type: '1', Linkname: "../../../../etc/passwd"}}},
	}
	for _, dc := range drivers {
		for _, tt := range tests {
			t.Run(dc.name+"/"+tt.name, func(t *testing.T) {
				rs := newRealStore(t, dc)
				_, err := rs.Import(ctx, bytes.NewReader(testregistry.Tar(tt.entries...)), ImportOptions{Ref: "localhost/evil:1"})
				if !errors.Is(err, archive.ErrUnsafeEntry) {
					t.Fatalf("Import of a %s tar = %v, want ErrUnsafeEntry", tt.name, err)
				}
				if _, err := os.Stat("/tmp/berth-escape"); err == nil {
					os.Remove("/tmp/berth-escape")
					t.Error("the tar wrote /tmp/berth-escape")
				}
				if imgs, _ := rs.List(ctx); len(imgs) != 0 {
					t.Errorf("%d images listed after a refused import", len(imgs))
				}
				n := 0
				rs.d.Walk(ctx, func(snapshot.Info) error { n++; return nil })
				if n != 0 {
					t.Errorf("%d snapshots left after a refused import", n)
				}
				var blobs int
				rs.content.Walk(ctx, func(content.Info) error { blobs++; return nil })
				if blobs != 0 {
					t.Errorf("%d blobs left after a refused import", blobs)
				}
				if ing, _ := rs.content.Ingests(); len(ing) != 0 {
					t.Errorf("ingests left after a refused import: %+v", ing)
				}
			})
		}
	}
}

// TestGCRemovesKilledPullLeftovers: a pull killed while unpacking leaves a
// transient snapshot (its process gone); the next GC (rmi, image prune)
// removes it, and keeps one a live process is still unpacking.
func TestGCRemovesKilledPullLeftovers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("snapshot drivers need root")
	}
	ctx := context.Background()
	for _, dc := range drivers {
		t.Run(dc.name, func(t *testing.T) {
			rs := newRealStore(t, dc)
			killed, err := dc.open(rs.drvRoot)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := killed.Prepare(ctx, "unpack-killed", "", snapshot.Transient()); err != nil {
				t.Fatal(err)
			}
			killed.Close() // the process is gone: its lease is free
			live, err := dc.open(rs.drvRoot)
			if err != nil {
				t.Fatal(err)
			}
			defer live.Close()
			if _, err := live.Prepare(ctx, "unpack-live", "", snapshot.Transient()); err != nil {
				t.Fatal(err)
			}
			if _, err := rs.Prune(ctx, PruneOptions{All: true}); err != nil {
				t.Fatal(err)
			}
			var left []string
			rs.d.Walk(ctx, func(i snapshot.Info) error { left = append(left, i.Name); return nil })
			if len(left) != 1 || left[0] != "unpack-live" {
				t.Errorf("snapshots after image prune = %q, want only the live unpack-live", left)
			}
			live.Remove(ctx, "unpack-live")
		})
	}
}
