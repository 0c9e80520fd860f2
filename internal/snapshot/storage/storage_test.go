package storage

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthproject/berth/internal/snapshot"
	"golang.org/x/sys/unix"
)

func newBase(t *testing.T) (*Base, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "drv")
	b, err := New(root, Hooks{
		Populate: func(ctx context.Context, dir string, kind snapshot.Kind, parents []string) error {
			return os.Mkdir(filepath.Join(dir, ContentDir), 0o755)
		},
		Mounts: func(dir string, kind snapshot.Kind, parents []string) []snapshot.Mount {
			return []snapshot.Mount{{Type: "bind", Source: filepath.Join(dir, ContentDir)}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, root
}

// TestCleanupRemovesCrashLeftovers plants what a crash at each step of
// Prepare and Remove leaves, and checks Cleanup takes exactly that.
func TestCleanupRemovesCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	b, root := newBase(t)
	if _, err := b.Prepare(ctx, "live", ""); err != nil {
		t.Fatal(err)
	}
	leftovers := []string{
		filepath.Join(root, "77", "fs", "x"),          // renamed in, table not written
		filepath.Join(root, tmpDir, "abandoned", "x"), // Populate interrupted
		filepath.Join(root, trashDir, "5-dead", "x"),  // Remove interrupted
	}
	for _, p := range leftovers {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A directory being prepared by a live process (its flock held) stays.
	busy, release, err := b.newTemp()
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	if err := b.Cleanup(ctx); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	for _, p := range leftovers {
		if _, err := os.Stat(filepath.Dir(p)); !os.IsNotExist(err) {
			t.Errorf("%s survived Cleanup (%v)", filepath.Dir(p), err)
		}
	}
	if _, err := os.Stat(busy); err != nil {
		t.Errorf("Cleanup removed a directory a live preparer holds: %v", err)
	}
	r, err := b.Resolve("live")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir, ContentDir)); err != nil {
		t.Errorf("Cleanup touched a recorded snapshot: %v", err)
	}
}

// TestFreshIDOverLeftover: a crash after installing a directory but before
// writing the table leaves <id>/ under the next id; the next Prepare moves it
// away instead of failing or mixing contents.
func TestFreshIDOverLeftover(t *testing.T) {
	ctx := context.Background()
	b, root := newBase(t)
	if err := os.MkdirAll(filepath.Join(root, "1", "fs", "stale"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Prepare(ctx, "a", ""); err != nil {
		t.Fatalf("Prepare over a leftover: %v", err)
	}
	r, _ := b.Resolve("a")
	if _, err := os.Stat(filepath.Join(r.Dir, ContentDir, "stale")); !os.IsNotExist(err) {
		t.Errorf("the new snapshot holds the leftover's files (%v)", err)
	}
}

func TestTableSchema(t *testing.T) {
	ctx := context.Background()
	b, root := newBase(t)
	if _, err := b.Prepare(ctx, "a", "", snapshot.WithLabels(map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, metadataFile))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Version   int
		NextID    uint64 `json:"next_id"`
		Snapshots map[string]map[string]any
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	rec := got.Snapshots["a"]
	if got.Version != 1 || got.NextID != 2 || rec["id"] != "1" || rec["kind"] != "active" || rec["labels"].(map[string]any)["k"] != "v" {
		t.Errorf("metadata.json = %s", raw)
	}
	// A table from a future berth is refused, not misread.
	os.WriteFile(filepath.Join(root, metadataFile), []byte(`{"version":2,"snapshots":{}}`), 0o600)
	if _, err := b.Stat(ctx, "a"); err == nil {
		t.Error("reading a version 2 table succeeded")
	}
}

// TestRemoveOnFullDisk: a layer that fills the disk while it is unpacked is
// removed when the unpack fails: its record too, although writing the table
// needs the space the layer held (no orphan record, nothing in trash).
func TestRemoveOnFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	ctx := context.Background()
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=256k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	root := filepath.Join(mnt, "drv")
	b, err := New(root, Hooks{
		Populate: func(ctx context.Context, dir string, kind snapshot.Kind, parents []string) error {
			return os.Mkdir(filepath.Join(dir, ContentDir), 0o755)
		},
		Mounts: func(dir string, kind snapshot.Kind, parents []string) []snapshot.Mount { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Prepare(ctx, "unpack", "", snapshot.Transient()); err != nil {
		t.Fatal(err)
	}
	r, err := b.Resolve("unpack")
	if err != nil {
		t.Fatal(err)
	}
	// Fill the disk, as a layer too big for it does.
	f, err := os.Create(filepath.Join(r.Dir, ContentDir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	if err := b.Remove(ctx, "unpack"); err != nil {
		t.Fatalf("Remove on a full disk: %v", err)
	}
	if _, err := b.Resolve("unpack"); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("the record survived Remove: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, trashDir)); len(ents) != 0 {
		t.Errorf("trash holds %d entries after Remove", len(ents))
	}
}
