package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/berthproject/berth/internal/archive"
	"github.com/opencontainers/go-digest"
)

// Layers presents a Driver as a store of image layers: committed snapshots
// named by chain id, each on its parent's chain id. It is the pull path:
// Begin a layer, Apply its tar, Commit it under its chain id. With a driver
// that unpacks in parallel, Begin may be called for every layer of an image
// at once (each unpacks into its own directory) and Commit in order.
type Layers struct {
	d    Driver
	opts LayersOptions
}

// LayersOptions tune Layers.
type LayersOptions struct {
	// Sync flushes each layer's filesystem (syncfs) before it is committed,
	// so a committed layer survives a power cut, not just a crash.
	Sync bool
	// Apply is handed to archive.Apply (the whiteout mode is the driver's).
	Apply archive.ApplyOptions
}

// NewLayers wraps d.
func NewLayers(d Driver, opts LayersOptions) *Layers {
	return &Layers{d: d, opts: opts}
}

// Exists reports whether layer chainID is unpacked and committed.
func (l *Layers) Exists(ctx context.Context, chainID digest.Digest) (bool, error) {
	info, err := l.d.Stat(ctx, string(chainID))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return info.Kind == KindCommitted, nil
}

// Parallel reports whether Begin may run before the parent is committed.
func (l *Layers) Parallel() bool { return l.d.ParallelUnpack() }

// Begin starts a layer that goes on parent ("" for a base layer). Unless
// Parallel, parent must be committed already.
func (l *Layers) Begin(ctx context.Context, parent digest.Digest) (*LayerWriter, error) {
	b := make([]byte, 8)
	rand.Read(b)
	key := "unpack-" + hex.EncodeToString(b)
	on := string(parent)
	if l.d.ParallelUnpack() {
		on = ""
	}
	if _, err := l.d.Prepare(ctx, key, on, Transient()); err != nil {
		return nil, fmt.Errorf("begin layer on %q: %w", parent, err)
	}
	dir, mode, err := l.d.UpperDir(ctx, key)
	if err != nil {
		l.d.Remove(ctx, key)
		return nil, fmt.Errorf("begin layer on %q: %w", parent, err)
	}
	return &LayerWriter{l: l, key: key, parent: parent, dir: dir, mode: mode}, nil
}

// Remove removes layer chainID; ErrInUse while something is on top of it.
func (l *Layers) Remove(ctx context.Context, chainID digest.Digest) error {
	return l.d.Remove(ctx, string(chainID))
}

// Walk calls fn for every committed layer (snapshots named by a digest).
func (l *Layers) Walk(ctx context.Context, fn func(chainID, parent digest.Digest) error) error {
	return l.d.Walk(ctx, func(info Info) error {
		if info.Kind != KindCommitted || digest.Digest(info.Name).Validate() != nil {
			return nil
		}
		return fn(digest.Digest(info.Name), digest.Digest(info.Parent))
	})
}

// Usage is the disk space of layer chainID itself, in bytes.
func (l *Layers) Usage(ctx context.Context, chainID digest.Digest) (int64, error) {
	u, err := l.d.Usage(ctx, string(chainID))
	return u.Size, err
}

// Cleanup removes what killed operations left in the driver: layers a
// process died unpacking, half-prepared directories (see Driver.Cleanup).
func (l *Layers) Cleanup(ctx context.Context) error { return l.d.Cleanup(ctx) }

// LayerWriter is one layer being unpacked: a transient active snapshot,
// removed by Cleanup if this process dies before Commit or Abort.
type LayerWriter struct {
	l      *Layers
	key    string
	parent digest.Digest
	dir    string
	mode   archive.WhiteoutMode
	result archive.ApplyResult
	done   bool
}

// Apply unpacks an uncompressed layer tar into the layer.
func (w *LayerWriter) Apply(ctx context.Context, r io.Reader) error {
	opts := w.l.opts.Apply
	opts.Whiteouts = w.mode
	opts.Sync = w.l.opts.Sync
	res, err := archive.Apply(ctx, w.dir, r, opts)
	if err != nil {
		return err
	}
	w.result = res
	return nil
}

// DiffID is the diff id of what Apply read (valid after Apply).
func (w *LayerWriter) DiffID() digest.Digest { return w.result.DiffID }

// Commit publishes the layer as chainID on the parent given to Begin, which
// must be committed by now. If chainID appeared meanwhile (another pull of
// the same layer), this copy is discarded and Commit succeeds.
func (w *LayerWriter) Commit(ctx context.Context, chainID digest.Digest) error {
	var opts []Opt
	if w.parent != "" {
		opts = append(opts, WithParent(string(w.parent)))
	}
	err := w.l.d.Commit(ctx, string(chainID), w.key, opts...)
	if errors.Is(err, ErrAlreadyExists) {
		if rerr := w.l.d.Remove(ctx, w.key); rerr != nil {
			return fmt.Errorf("discard duplicate of layer %s: %w", chainID, rerr)
		}
		err = nil
	}
	if err != nil {
		return fmt.Errorf("commit layer %s: %w", chainID, err)
	}
	w.done = true
	return nil
}

// Abort discards the layer; after Commit or an Abort that succeeded it
// does nothing. One that failed (a disk that other layers filled) may be
// tried again.
func (w *LayerWriter) Abort(ctx context.Context) error {
	if w.done {
		return nil
	}
	if err := w.l.d.Remove(ctx, w.key); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("abort layer: %w", err)
	}
	w.done = true
	return nil
}
