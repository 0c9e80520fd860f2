// Package snapshot is berth's vocabulary for layered root filesystems: a
// snapshot is a directory tree stacked on a parent snapshot; committed
// snapshots are image layers (named by chain id, shared by every image that
// has them), an active snapshot is a container's writable layer, a view a
// read-only stack.
//
// A snapshotter never mounts anything: it returns the mounts to make
// ([]Mount, as mount(2) takes them) and MountAll, the one executor, makes
// them on a target the caller chooses. Two drivers implement the same
// interfaces and pass the same conformance suite (snapshot/testsuite):
//
//   - snapshot/overlay: one directory per layer holding only that layer's
//     changes (overlay whiteout format); a stack is an overlayfs mount. Layers
//     of an image can be unpacked concurrently, each into its own directory,
//     and stacked at commit time (ParallelUnpack, Commit WithParent).
//   - snapshot/native: every snapshot is a full copy of its parent (reflink or
//     copy_file_range where the filesystem can), mounted with a bind mount, for
//     hosts where overlayfs cannot mount. Layers are unpacked one after the
//     other, each onto a copy of its parent.
//
// Both keep their records with snapshot/storage: a small table of snapshots
// replaced atomically under a file lock, so several processes can share one
// root; see that package for the on-disk schema and crash behaviour.
//
// The pull path (Layers, LayerWriter) unpacks a layer straight into the
// snapshot's directory without mounting, then commits it under its chain id:
//
//	overlay:  Prepare(tmp, "", Transient()) -> archive.Apply(UpperDir(tmp), WhiteoutOverlay)
//	          -> Commit(chainID, tmp, WithParent(parentChainID))       (any order, parents first at commit)
//	native:   Prepare(tmp, parentChainID, Transient()) -> archive.Apply(UpperDir(tmp), WhiteoutApply)
//	          -> Commit(chainID, tmp)                                  (strictly in order)
//
// A transient snapshot belongs to the process that prepared it: if that
// process dies before committing it, Cleanup removes it.
package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/berthproject/berth/internal/archive"
	"github.com/opencontainers/go-digest"
)

// Kind is the state of a snapshot.
type Kind int

const (
	// KindActive is writable: a container's layer, or a layer being unpacked.
	KindActive Kind = iota + 1
	// KindView is a read-only stack of its parent's layers.
	KindView
	// KindCommitted is immutable and may be the parent of other snapshots.
	KindCommitted
)

func (k Kind) String() string {
	switch k {
	case KindActive:
		return "active"
	case KindView:
		return "view"
	case KindCommitted:
		return "committed"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ParseKind is String's inverse.
func ParseKind(s string) (Kind, error) {
	for _, k := range []Kind{KindActive, KindView, KindCommitted} {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown snapshot kind %q", ErrInvalid, s)
}

// Sentinel errors; test with errors.Is.
var (
	ErrNotFound      = errors.New("snapshot not found")
	ErrAlreadyExists = errors.New("snapshot already exists")
	// ErrInUse: the snapshot has children (snapshots on top of it).
	ErrInUse = errors.New("snapshot in use")
	// ErrInvalid: a bad key, a parent that is not committed, an operation
	// the snapshot's kind or the driver does not allow.
	ErrInvalid = errors.New("invalid snapshot operation")
)

// Info describes a snapshot.
type Info struct {
	Name    string
	Parent  string // "" for a base snapshot
	Kind    Kind
	Created time.Time
	Labels  map[string]string
}

// Usage is the disk space of a snapshot's own layer (not its parents').
type Usage struct {
	Size   int64 // bytes of allocated blocks
	Inodes int64
}

// Mount is one mount to make, as mount(2) takes it; the caller picks the
// target. Options holds flag words (ro, rbind, nosuid, ...) and filesystem
// data (lowerdir=..., upperdir=...) alike.
type Mount struct {
	Type    string
	Source  string
	Options []string
}

// Snapshotter manages snapshots under one root directory. Keys are free
// strings chosen by the caller (chain ids for image layers, container ids
// for their layers).
type Snapshotter interface {
	// Prepare creates active snapshot key on top of committed snapshot parent
	// ("" for an empty base) and returns how to mount it.
	Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)
	// View creates read-only snapshot key showing committed snapshot parent.
	View(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)
	// Mounts returns how to mount active or view snapshot key.
	Mounts(ctx context.Context, key string) ([]Mount, error)
	// Commit turns active snapshot key into committed snapshot name; key is
	// gone afterwards. ErrAlreadyExists if name exists (key is kept).
	Commit(ctx context.Context, name, key string, opts ...Opt) error
	// Remove deletes snapshot key and its directory; ErrInUse while other
	// snapshots have it as parent.
	Remove(ctx context.Context, key string) error
	Stat(ctx context.Context, key string) (Info, error)
	// Usage is the disk space of key's own layer.
	Usage(ctx context.Context, key string) (Usage, error)
	// Walk calls fn for every snapshot, sorted by name.
	Walk(ctx context.Context, fn func(Info) error) error
	// Cleanup removes what crashes left behind: transient snapshots whose
	// process died, directories no record points to, half-prepared
	// directories. It never touches what a live process is using.
	Cleanup(ctx context.Context) error
	// Close releases what this instance holds (the leases of its transient
	// snapshots: they become garbage for Cleanup unless committed by now).
	Close() error
}

// Driver is a Snapshotter whose snapshots are also read and written
// directly, without mounting: the pull path unpacks layers into them, and a
// container's commit or `diff` reads its changes from them.
type Driver interface {
	Snapshotter
	// UpperDir is the directory holding active snapshot key's own content,
	// where a layer is unpacked, and the whiteout mode to unpack it with.
	UpperDir(ctx context.Context, key string) (string, archive.WhiteoutMode, error)
	// ParallelUnpack reports whether an active snapshot prepared with no
	// parent may be committed on top of any committed parent (Commit
	// WithParent), so the layers of an image unpack concurrently. A driver
	// that keeps full copies cannot: it unpacks each layer onto its parent.
	ParallelUnpack() bool
	// Diff writes the layer tar of snapshot key's changes to its parent.
	Diff(ctx context.Context, key string, w io.Writer, opts archive.DiffOptions) error
	// Changes lists snapshot key's changes to its parent (`docker diff`).
	Changes(ctx context.Context, key string) ([]archive.Change, error)
}

// Options of Prepare, View and Commit.
type Options struct {
	Labels    map[string]string
	Parent    string
	Transient bool
}

// Opt sets an option.
type Opt func(*Options)

// WithLabels attaches labels to the snapshot (Prepare, View, Commit).
func WithLabels(labels map[string]string) Opt {
	return func(o *Options) {
		if o.Labels == nil {
			o.Labels = map[string]string{}
		}
		for k, v := range labels {
			o.Labels[k] = v
		}
	}
}

// WithParent (Commit) stacks the committed snapshot on parent: the snapshot
// was prepared with no parent and holds one layer in overlay whiteout
// format. Only drivers with ParallelUnpack accept a parent other than the
// one the snapshot was prepared on.
func WithParent(parent string) Opt {
	return func(o *Options) { o.Parent = parent }
}

// Transient (Prepare) makes the snapshot belong to this process until it is
// committed or removed: if the process dies first, Cleanup removes it.
func Transient() Opt {
	return func(o *Options) { o.Transient = true }
}

// ChainID is the chain id of a layer with diff id diffID on top of a layer
// with chain id parent ("" for a base layer), as the OCI image spec defines
// it: sha256(parent + " " + diffID).
func ChainID(parent, diffID digest.Digest) digest.Digest {
	if parent == "" {
		return diffID
	}
	sum := sha256.Sum256([]byte(string(parent) + " " + string(diffID)))
	return digest.Digest("sha256:" + hex.EncodeToString(sum[:]))
}

// ChainIDs returns the chain id of every prefix of a layer stack.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	var parent digest.Digest
	for i, d := range diffIDs {
		parent = ChainID(parent, d)
		out[i] = parent
	}
	return out
}
