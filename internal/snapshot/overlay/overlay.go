// Package overlay is the overlayfs snapshot driver: each snapshot directory
// holds one layer's own changes, overlay whiteout format (0/0 character
// devices for deletions, trusted.overlay.opaque=y on opaque directories);
// stacks are overlay mounts.
//
//	<root>/<id>/fs     the layer: an upperdir while active, a lowerdir once committed
//	<root>/<id>/work   overlay's workdir (active snapshots)
//
// Mounts of an active snapshot: overlay lowerdir=<parents' fs, nearest
// first>,upperdir=<fs>,workdir=<work>; with no parent a read-write bind of
// fs. A view: a read-only bind of its only parent's fs, or an overlay of
// lowerdirs only. Long stacks (100+ layers) exceed one page of mount options;
// snapshot.MountAll handles that (fsconfig lowerdir+, or short fd paths).
//
// Because a layer's directory never holds its parents' files, a layer can be
// unpacked before its parent exists, and committed onto it afterwards
// (ParallelUnpack, snapshot.WithParent): that is how a pull unpacks all the
// layers of an image at once.
package overlay

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthproject/berth/internal/archive"
	"github.com/berthproject/berth/internal/snapshot"
	"github.com/berthproject/berth/internal/snapshot/storage"
	"golang.org/x/sys/unix"
)

// Snapshotter is the overlay driver.
type Snapshotter struct {
	*storage.Base
}

var _ snapshot.Driver = (*Snapshotter)(nil)

// New opens (creating) an overlay driver rooted at root.
func New(root string) (*Snapshotter, error) {
	if strings.ContainsAny(root, ":,") {
		return nil, fmt.Errorf("overlay snapshot root %q: %w: it may not contain ':' or ',' (overlay option separators)", root, snapshot.ErrInvalid)
	}
	b, err := storage.New(root, storage.Hooks{Populate: populate, Mounts: mounts, Rebase: true})
	if err != nil {
		return nil, fmt.Errorf("overlay snapshotter: %w", err)
	}
	return &Snapshotter{Base: b}, nil
}

// Supported checks that overlayfs mounts on the filesystem of dir (an
// existing directory), with whiteouts and opaque directories, by mounting a
// tiny one. Needs root.
func Supported(dir string) error {
	tmp, err := os.MkdirTemp(dir, "overlay-check-")
	if err != nil {
		return fmt.Errorf("overlay check: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, d := range []string{"l1", "l2", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return fmt.Errorf("overlay check: %w", err)
		}
	}
	if err := unix.Setxattr(filepath.Join(tmp, "l1"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		return fmt.Errorf("overlay check: trusted xattrs on %s: %w", dir, err)
	}
	m := []snapshot.Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + filepath.Join(tmp, "l1") + ":" + filepath.Join(tmp, "l2"),
		"upperdir=" + filepath.Join(tmp, "u"),
		"workdir=" + filepath.Join(tmp, "w"),
	}}}
	target := filepath.Join(tmp, "m")
	if err := snapshot.MountAll(m, target); err != nil {
		return fmt.Errorf("overlay check on %s: %w", dir, err)
	}
	return snapshot.Unmount(target)
}

func populate(ctx context.Context, dir string, kind snapshot.Kind, parents []string) error {
	if err := os.Mkdir(filepath.Join(dir, storage.ContentDir), 0o755); err != nil {
		return fmt.Errorf("create layer directory: %w", err)
	}
	if kind == snapshot.KindActive {
		if err := os.Mkdir(filepath.Join(dir, "work"), 0o700); err != nil {
			return fmt.Errorf("create overlay workdir: %w", err)
		}
	}
	return nil
}

func mounts(dir string, kind snapshot.Kind, parents []string) []snapshot.Mount {
	fs := filepath.Join(dir, storage.ContentDir)
	lower := make([]string, len(parents))
	for i, p := range parents {
		lower[i] = filepath.Join(p, storage.ContentDir)
	}
	switch {
	case kind == snapshot.KindActive && len(parents) == 0:
		return []snapshot.Mount{{Type: "bind", Source: fs, Options: []string{"rbind", "rw"}}}
	case kind == snapshot.KindActive:
		return []snapshot.Mount{{Type: "overlay", Source: "overlay", Options: []string{
			"lowerdir=" + strings.Join(lower, ":"),
			"upperdir=" + fs,
			"workdir=" + filepath.Join(dir, "work"),
			// Whatever the host's defaults, the upper dir must hold plain
			// files and whiteouts that Diff can read back as a layer: no
			// inode index, no redirected directories, no metadata-only
			// copy-ups.
			"index=off",
			"redirect_dir=off",
			"metacopy=off",
		}}}
	case len(parents) == 0:
		return []snapshot.Mount{{Type: "bind", Source: fs, Options: []string{"rbind", "ro"}}}
	case len(parents) == 1:
		return []snapshot.Mount{{Type: "bind", Source: lower[0], Options: []string{"rbind", "ro"}}}
	}
	return []snapshot.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + strings.Join(lower, ":")}}}
}

// UpperDir implements snapshot.Driver.
func (s *Snapshotter) UpperDir(ctx context.Context, key string) (string, archive.WhiteoutMode, error) {
	r, err := s.Resolve(key)
	if err != nil {
		return "", 0, err
	}
	if r.Record.Kind != snapshot.KindActive.String() {
		return "", 0, fmt.Errorf("upper dir of %s: %w: it is %s, not active", key, snapshot.ErrInvalid, r.Record.Kind)
	}
	return filepath.Join(r.Dir, storage.ContentDir), archive.WhiteoutOverlay, nil
}

// ParallelUnpack implements snapshot.Driver: yes.
func (s *Snapshotter) ParallelUnpack() bool { return true }

// Diff implements snapshot.Driver: the layer directory is the diff.
func (s *Snapshotter) Diff(ctx context.Context, key string, w io.Writer, opts archive.DiffOptions) error {
	r, err := s.Resolve(key)
	if err != nil {
		return err
	}
	return archive.Diff(ctx, filepath.Join(r.Dir, storage.ContentDir), w, opts)
}

// Changes implements snapshot.Driver.
func (s *Snapshotter) Changes(ctx context.Context, key string) ([]archive.Change, error) {
	r, err := s.Resolve(key)
	if err != nil {
		return nil, err
	}
	lower := make([]string, len(r.Parents))
	for i, p := range r.Parents {
		lower[i] = filepath.Join(p, storage.ContentDir)
	}
	return archive.Changes(ctx, filepath.Join(r.Dir, storage.ContentDir), lower)
}
