package image

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/berthproject/berth/internal/image/progress"
	"github.com/berthproject/berth/internal/reference"
)

// PushOptions are push's options.
type PushOptions struct {
	// Progress receives per-layer events (nil: none).
	Progress progress.Func
	// Concurrency is the number of blobs uploaded at once (0: 4).
	Concurrency int
}

// Push uploads the image named NAME[:TAG] (":latest" when no tag) to its
// registry: its layer blobs as stored (so digests do not change), config and
// manifest. Blobs the registry has are skipped; blobs of an image pulled from
// another repository of the same registry are mounted from there. The
// pushed manifest's digest is recorded as a repo digest and returned.
func (s *Store) Push(ctx context.Context, nameStr string, opts PushOptions) (digest.Digest, error) {
	d, err := s.pushImage(ctx, nameStr, opts)
	if err == nil {
		s.event("push", nameStr, map[string]string{"name": nameStr})
	}
	return d, err
}

func (s *Store) pushImage(ctx context.Context, nameStr string, opts PushOptions) (digest.Digest, error) {
	ref, err := reference.Parse(nameStr)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", nameStr, err)
	}
	if ref.Digest != "" {
		return "", fmt.Errorf("%w: push %s: push a tag, not a digest", ErrInvalid, nameStr)
	}
	ref = ref.WithDefaultTag()
	d, err := s.push(ctx, ref, opts)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref.Familiar(), err)
	}
	return d, nil
}

func (s *Store) push(ctx context.Context, ref reference.Reference, opts PushOptions) (digest.Digest, error) {
	id, err := s.Resolve(ctx, ref.String())
	if err != nil {
		return "", err
	}
	img, err := s.readRecord(id)
	if err != nil {
		return "", err
	}
	sum, err := s.Get(ctx, id.String())
	if err != nil {
		return "", err
	}
	manifest, err := s.content.ReadBlob(ctx, img.Manifest.Digest)
	if err != nil {
		return "", fmt.Errorf("manifest of %s: %w", ShortID(id), err)
	}
	config, err := s.content.ReadBlob(ctx, img.Config.Digest)
	if err != nil {
		return "", fmt.Errorf("config of %s: %w", ShortID(id), err)
	}
	target, err := s.registry.NameReference(ref)
	if err != nil {
		return "", err
	}
	// A repository on the same registry that has the blobs: mount from it.
	var mountFrom name.Reference
	for _, rd := range sum.RepoDigests {
		src, err := reference.Parse(rd)
		if err != nil || src.Domain != ref.Domain || src.Path == ref.Path {
			continue
		}
		if mountFrom, err = s.registry.NameReference(src); err == nil {
			break
		}
	}
	core := &storedImage{s: s, ctx: ctx, img: img, manifest: manifest, config: config, pf: opts.Progress}
	base, err := partial.CompressedToImage(core)
	if err != nil {
		return "", err
	}
	var layers []v1.Layer
	for _, l := range img.Layers {
		emit(opts.Progress, ShortID(l.Blob.Digest), progress.Preparing, 0, 0)
		cl, err := core.LayerByDigest(v1.Hash{Algorithm: "sha256", Hex: l.Blob.Digest.Encoded()})
		if err != nil {
			return "", err
		}
		vl, err := partial.CompressedToLayer(cl)
		if err != nil {
			return "", err
		}
		if mountFrom != nil {
			vl = &remote.MountableLayer{Layer: vl, Reference: mountFrom}
		}
		layers = append(layers, vl)
	}
	n := opts.Concurrency
	if n <= 0 {
		n = 4
	}
	auth, err := s.registry.Keychain().Resolve(target.Context().Registry)
	if err != nil {
		return "", err
	}
	err = remote.Write(target, &pushImage{Image: base, layers: layers},
		remote.WithContext(ctx), remote.WithAuth(auth), remote.WithJobs(n), remote.WithUserAgent("berth"))
	if err != nil {
		return "", err
	}
	for _, l := range img.Layers {
		id := ShortID(l.Blob.Digest)
		if !core.wasRead(l.Blob.Digest) {
			emit(opts.Progress, id, progress.LayerExists, 0, 0)
		}
	}
	md := img.Manifest.Digest
	if err := s.putImage(img, reference.Reference{Domain: ref.Domain, Path: ref.Path, Digest: md.String()}); err != nil {
		return "", err
	}
	return md, nil
}

// pushImage is the stored image with mountable layers.
type pushImage struct {
	v1.Image
	layers []v1.Layer
}

func (p *pushImage) Layers() ([]v1.Layer, error) { return p.layers, nil }

// storedImage presents a stored image to go-containerregistry with its
// manifest and blobs byte for byte.
type storedImage struct {
	s        *Store
	ctx      context.Context
	img      *Image
	manifest []byte
	config   []byte
	pf       progress.Func
	mu       sync.Mutex
	read     map[digest.Digest]bool
}

func (si *storedImage) RawConfigFile() ([]byte, error) { return si.config, nil }
func (si *storedImage) RawManifest() ([]byte, error)   { return si.manifest, nil }
func (si *storedImage) MediaType() (types.MediaType, error) {
	return types.MediaType(si.img.Manifest.MediaType), nil
}

func (si *storedImage) wasRead(d digest.Digest) bool {
	si.mu.Lock()
	defer si.mu.Unlock()
	return si.read[d]
}

func (si *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	d := digest.Digest(h.String())
	for _, l := range si.img.Layers {
		if l.Blob.Digest == d {
			return &storedLayer{si: si, l: l}, nil
		}
	}
	if d == si.img.Config.Digest {
		return &storedLayer{si: si, l: Layer{Blob: si.img.Config}}, nil
	}
	return nil, fmt.Errorf("blob %s is not part of image %s: %w", d, ShortID(si.img.ID), ErrNotFound)
}

type storedLayer struct {
	si *storedImage
	l  Layer
}

func (sl *storedLayer) Digest() (v1.Hash, error) { return v1.NewHash(sl.l.Blob.Digest.String()) }
func (sl *storedLayer) Size() (int64, error)     { return sl.l.Blob.Size, nil }
func (sl *storedLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(sl.l.Blob.MediaType), nil
}

func (sl *storedLayer) DiffID() (v1.Hash, error) { return v1.NewHash(sl.l.DiffID.String()) }

func (sl *storedLayer) Compressed() (io.ReadCloser, error) {
	f, err := sl.si.s.content.Open(sl.si.ctx, sl.l.Blob.Digest)
	if err != nil {
		return nil, err
	}
	sl.si.mu.Lock()
	if sl.si.read == nil {
		sl.si.read = map[digest.Digest]bool{}
	}
	sl.si.read[sl.l.Blob.Digest] = true
	sl.si.mu.Unlock()
	id := ShortID(sl.l.Blob.Digest)
	return &pushReader{ReadCloser: f, c: countingReader{r: f, total: sl.l.Blob.Size, id: id, status: progress.Pushing, pf: sl.si.pf}, pf: sl.si.pf, id: id}, nil
}

type pushReader struct {
	io.ReadCloser
	c    countingReader
	pf   progress.Func
	id   string
	done bool
}

func (p *pushReader) Read(b []byte) (int, error) {
	n, err := p.c.Read(b)
	if err == io.EOF && !p.done {
		p.done = true
		emit(p.pf, p.id, progress.Pushed, 0, 0)
	}
	return n, err
}
