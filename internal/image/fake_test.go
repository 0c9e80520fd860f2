package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berthproject/berth/internal/content"
	"github.com/berthproject/berth/internal/image/registry"
)

// fakeLayers is an in-memory Layers: each layer keeps its tar and its parent.
type fakeLayers struct {
	parallel bool
	mu       sync.Mutex
	layers   map[digest.Digest]*fakeLayer
	// holdChildren marks layers that have a container on top (Remove refuses).
	holdChildren map[digest.Digest]bool
}

type fakeLayer struct {
	parent digest.Digest
	tar    []byte
}

func newFakeLayers(parallel bool) *fakeLayers {
	return &fakeLayers{parallel: parallel, layers: map[digest.Digest]*fakeLayer{}, holdChildren: map[digest.Digest]bool{}}
}

func (f *fakeLayers) Exists(ctx context.Context, c digest.Digest) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.layers[c]
	return ok, nil
}

func (f *fakeLayers) Parallel() bool { return f.parallel }

func (f *fakeLayers) Begin(ctx context.Context, parent digest.Digest) (LayerWriter, error) {
	if !f.parallel && parent != "" {
		if ok, _ := f.Exists(ctx, parent); !ok {
			return nil, fmt.Errorf("parent %s is not committed", parent)
		}
	}
	return &fakeWriter{f: f, parent: parent}, nil
}

func (f *fakeLayers) Remove(ctx context.Context, c digest.Digest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.layers[c]; !ok {
		return fmt.Errorf("layer %s: %w", c, ErrNotFound)
	}
	if f.holdChildren[c] {
		return fmt.Errorf("layer %s has children", c)
	}
	for _, l := range f.layers {
		if l.parent == c {
			return fmt.Errorf("layer %s has children", c)
		}
	}
	delete(f.layers, c)
	return nil
}

func (f *fakeLayers) Walk(ctx context.Context, fn func(c, p digest.Digest) error) error {
	f.mu.Lock()
	var keys []digest.Digest
	for k := range f.layers {
		keys = append(keys, k)
	}
	f.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		f.mu.Lock()
		l := f.layers[k]
		f.mu.Unlock()
		if l == nil {
			continue
		}
		if err := fn(k, l.parent); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeLayers) Usage(ctx context.Context, c digest.Digest) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.layers[c]; ok {
		return int64(len(l.tar)), nil
	}
	return 0, ErrNotFound
}

func (f *fakeLayers) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.layers)
}

// tarOf returns the layer's tar.
func (f *fakeLayers) tarOf(c digest.Digest) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.layers[c]; l != nil {
		return l.tar
	}
	return nil
}

type fakeWriter struct {
	f             *fakeLayers
	chain, parent digest.Digest
	buf           bytes.Buffer
	done          bool
}

// Apply reads the tar entry by entry, as an unpacker does (it stops at the
// end-of-archive marker), refusing what is not a tar.
func (w *fakeWriter) Apply(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(io.TeeReader(r, &w.buf))
	for {
		_, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read layer tar: %w", err)
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return fmt.Errorf("read layer tar: %w", err)
		}
	}
}

func (w *fakeWriter) Commit(ctx context.Context, chain digest.Digest) error {
	w.chain = chain
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	if w.parent != "" {
		if _, ok := w.f.layers[w.parent]; !ok {
			return fmt.Errorf("commit %s: parent %s is not committed", w.chain, w.parent)
		}
	}
	w.done = true
	if _, ok := w.f.layers[w.chain]; ok {
		return nil
	}
	w.f.layers[w.chain] = &fakeLayer{parent: w.parent, tar: w.buf.Bytes()}
	return nil
}

func (w *fakeWriter) Abort(ctx context.Context) error { return nil }

// testStore is a store on a temp root with fake layers and a registry
// client whose config.json is in a temp dir.
type testStore struct {
	*Store
	root   string
	layers *fakeLayers
	held   map[digest.Digest][]Holder
}

func newTestStore(t *testing.T, parallel bool) *testStore {
	t.Helper()
	root := t.TempDir()
	ts := &testStore{root: root, layers: newFakeLayers(parallel), held: map[digest.Digest][]Holder{}}
	cs, err := content.New(root)
	if err != nil {
		t.Fatal(err)
	}
	cs.NoSync = true
	s, err := New(Options{Root: root, Content: cs, Layers: ts.layers,
		Registry: registry.New(registry.Options{ConfigDir: t.TempDir()}),
		Holders:  func(context.Context) (map[digest.Digest][]Holder, error) { return ts.held, nil },
		Platform: Platform{OS: "linux", Architecture: "amd64"}})
	if err != nil {
		t.Fatal(err)
	}
	ts.Store = s
	return ts
}

// assertEmpty checks the store holds no image, no layer and no blob.
func (ts *testStore) assertEmpty(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	imgs, err := ts.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 0 {
		t.Errorf("images listed after a failed operation: %d", len(imgs))
	}
	if n := ts.layers.count(); n != 0 {
		t.Errorf("%d orphan layers after a failed operation", n)
	}
	var blobs []digest.Digest
	ts.content.Walk(ctx, func(i content.Info) error { blobs = append(blobs, i.Digest); return nil })
	if len(blobs) != 0 {
		t.Errorf("blobs left after a failed operation: %v", blobs)
	}
}

func isErr(err, target error) bool { return errors.Is(err, target) }
