// Package native is the copying snapshot driver, for hosts where overlayfs
// cannot mount (nested in overlay, some filesystems, no privileges for
// trusted xattrs). Every snapshot directory holds a complete tree:
//
//	<root>/<id>/fs     the whole root filesystem of the snapshot
//
// Prepare copies the parent's tree (a reflink where the filesystem can,
// otherwise copy_file_range, holes kept; never hard links, which would break
// copy-on-write), and a snapshot mounts as a bind mount. A layer is unpacked
// onto the copy of its parent (archive.WhiteoutApply), so the layers of an
// image unpack one after the other (ParallelUnpack is false), and Diff
// compares a snapshot's tree with its parent's.
package native

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/berthproject/berth/internal/archive"
	"github.com/berthproject/berth/internal/snapshot"
	"github.com/berthproject/berth/internal/snapshot/storage"
)

// Snapshotter is the copying driver.
type Snapshotter struct {
	*storage.Base
}

var _ snapshot.Driver = (*Snapshotter)(nil)

// New opens (creating) a native driver rooted at root.
func New(root string) (*Snapshotter, error) {
	b, err := storage.New(root, storage.Hooks{Populate: populate, Mounts: mounts})
	if err != nil {
		return nil, fmt.Errorf("native snapshotter: %w", err)
	}
	return &Snapshotter{Base: b}, nil
}

func populate(ctx context.Context, dir string, kind snapshot.Kind, parents []string) error {
	fs := filepath.Join(dir, storage.ContentDir)
	if kind != snapshot.KindActive || len(parents) == 0 {
		// A view shows its parent's tree read-only: nothing to copy.
		if err := os.Mkdir(fs, 0o755); err != nil {
			return fmt.Errorf("create snapshot directory: %w", err)
		}
		return nil
	}
	if err := copyTree(ctx, filepath.Join(parents[0], storage.ContentDir), fs); err != nil {
		return fmt.Errorf("copy parent tree: %w", err)
	}
	return nil
}

func mounts(dir string, kind snapshot.Kind, parents []string) []snapshot.Mount {
	if kind == snapshot.KindActive {
		return []snapshot.Mount{{Type: "bind", Source: filepath.Join(dir, storage.ContentDir), Options: []string{"rbind", "rw"}}}
	}
	src := filepath.Join(dir, storage.ContentDir)
	if len(parents) > 0 {
		src = filepath.Join(parents[0], storage.ContentDir)
	}
	return []snapshot.Mount{{Type: "bind", Source: src, Options: []string{"rbind", "ro"}}}
}

// UpperDir implements snapshot.Driver: the snapshot's full tree.
func (s *Snapshotter) UpperDir(ctx context.Context, key string) (string, archive.WhiteoutMode, error) {
	r, err := s.Resolve(key)
	if err != nil {
		return "", 0, err
	}
	if r.Record.Kind != snapshot.KindActive.String() {
		return "", 0, fmt.Errorf("upper dir of %s: %w: it is %s, not active", key, snapshot.ErrInvalid, r.Record.Kind)
	}
	return filepath.Join(r.Dir, storage.ContentDir), archive.WhiteoutApply, nil
}

// ParallelUnpack implements snapshot.Driver: no, each layer needs its parent.
func (s *Snapshotter) ParallelUnpack() bool { return false }

// Diff implements snapshot.Driver: the snapshot's tree against its parent's.
func (s *Snapshotter) Diff(ctx context.Context, key string, w io.Writer, opts archive.DiffOptions) error {
	lower, upper, err := s.pair(key)
	if err != nil {
		return err
	}
	return archive.DiffDirs(ctx, lower, upper, w, opts)
}

// Changes implements snapshot.Driver.
func (s *Snapshotter) Changes(ctx context.Context, key string) ([]archive.Change, error) {
	lower, upper, err := s.pair(key)
	if err != nil {
		return nil, err
	}
	return archive.ChangesDirs(ctx, lower, upper)
}

// pair returns the trees of key's parent and of key; a base snapshot is
// compared with an empty directory kept in the driver root.
func (s *Snapshotter) pair(key string) (string, string, error) {
	r, err := s.Resolve(key)
	if err != nil {
		return "", "", err
	}
	upper := filepath.Join(r.Dir, storage.ContentDir)
	if len(r.Parents) > 0 {
		return filepath.Join(r.Parents[0], storage.ContentDir), upper, nil
	}
	empty := filepath.Join(s.Store().Root(), "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		return "", "", fmt.Errorf("create empty tree: %w", err)
	}
	return empty, upper, nil
}
