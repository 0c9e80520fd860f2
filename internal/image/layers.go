package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/berthproject/berth/internal/archive"
)

// Layers is what the image store needs from the snapshot side: unpacked
// layers named by chain id, each on top of its parent's chain id. The engine
// passes an adapter over a snapshotter (see SnapshotLayers); tests pass fakes.
type Layers interface {
	// Exists reports whether the layer chainID is unpacked and committed.
	Exists(ctx context.Context, chainID digest.Digest) (bool, error)
	// Parallel reports whether Begin may be called before the parent layer
	// is committed (overlay: each layer unpacks into its own empty directory).
	// When false, callers unpack layers one after another in order.
	Parallel() bool
	// Begin starts unpacking a layer that goes on top of parent ("" for a
	// base layer). Its chain id is given at Commit (an import or a commit
	// only knows it once the whole tar is read).
	Begin(ctx context.Context, parent digest.Digest) (LayerWriter, error)
	// Remove removes the committed layer chainID. It fails (and removes
	// nothing) while the layer has children (layers or containers on top).
	Remove(ctx context.Context, chainID digest.Digest) error
	// Walk calls fn for every committed layer.
	Walk(ctx context.Context, fn func(chainID, parent digest.Digest) error) error
	// Usage is the disk space the layer chainID itself takes.
	Usage(ctx context.Context, chainID digest.Digest) (int64, error)
}

// LayerWriter is one layer being unpacked.
type LayerWriter interface {
	// Apply unpacks an uncompressed layer tar. The caller computes the diffID.
	Apply(ctx context.Context, r io.Reader) error
	// Commit publishes the layer as chainID (after its parent is
	// committed). If the layer appeared meanwhile (a concurrent pull), Commit
	// discards this copy and succeeds.
	Commit(ctx context.Context, chainID digest.Digest) error
	// Abort discards an uncommitted layer; after Commit it does nothing.
	Abort(ctx context.Context) error
}

// Compression kinds of layer blobs.
type compression int

const (
	uncompressed compression = iota
	gzipped
	zstdCompressed
)

var layerMediaTypes = map[string]compression{
	"application/vnd.docker.image.rootfs.diff.tar.gzip":            gzipped,
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":    gzipped,
	"application/vnd.docker.image.rootfs.diff.tar":                 uncompressed,
	"application/vnd.docker.image.rootfs.diff.tar.zstd":            zstdCompressed,
	"application/vnd.oci.image.layer.v1.tar":                       uncompressed,
	"application/vnd.oci.image.layer.v1.tar+gzip":                  gzipped,
	"application/vnd.oci.image.layer.v1.tar+zstd":                  zstdCompressed,
	"application/vnd.oci.image.layer.nondistributable.v1.tar":      uncompressed,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": gzipped,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": zstdCompressed,
}

// layerCompression tells how a layer media type is compressed; unknown media
// types are an error.
func layerCompression(mediaType string) (compression, error) {
	c, ok := layerMediaTypes[mediaType]
	if !ok {
		return 0, fmt.Errorf("%w: unknown layer media type %q", ErrInvalid, mediaType)
	}
	return c, nil
}

// sniffCompression detects gzip or zstd by their magic bytes.
func sniffCompression(br *bufio.Reader) compression {
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return gzipped
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return zstdCompressed
	}
	return uncompressed
}

// decompress wraps r according to c (archive.Decompress: decompression
// runs beside the unpacking). Close releases decoder resources.
func decompress(r io.Reader, c compression) (io.ReadCloser, error) {
	switch c {
	case gzipped:
		return archive.Decompress(r, archive.Gzip)
	case zstdCompressed:
		return archive.Decompress(r, archive.Zstd)
	}
	return io.NopCloser(r), nil
}

// digester hashes (unless h is nil) and counts what is read through it.
type digester struct {
	r io.Reader
	h hash.Hash
	n int64
}

func newDigester(r io.Reader) *digester { return &digester{r: r, h: sha256.New()} }

func (d *digester) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if d.h != nil {
		d.h.Write(p[:n])
	}
	d.n += int64(n)
	return n, err
}

// diffIDer is a LayerWriter that computes the diff id itself while it
// unpacks (snapshot.LayerWriter does), so the stream is not hashed twice.
type diffIDer interface {
	DiffID() digest.Digest
}

func (d *digester) Digest() digest.Digest { return digest.NewDigest(digest.SHA256, d.h) }

// applyLayer unpacks the compressed stream r into lw and returns the diffID
// and uncompressed size. The whole stream is consumed, so the caller's
// hash of the compressed bytes (a TeeReader under r) sees every byte.
func applyLayer(ctx context.Context, lw LayerWriter, r io.Reader, c compression) (digest.Digest, int64, error) {
	// A big buffer under the decompressor: it then reads through it
	// directly (fewer, larger reads from the network and the content store).
	zr, err := decompress(bufio.NewReaderSize(r, 1<<20), c)
	if err != nil {
		return "", 0, err
	}
	defer zr.Close()
	dg := newDigester(zr)
	did, selfHashing := lw.(diffIDer)
	if selfHashing {
		dg.h = nil
	}
	if err := lw.Apply(ctx, dg); err != nil {
		return "", 0, err
	}
	// The tar reader stops at the end-of-archive blocks: read the padding too.
	if n, err := io.Copy(io.Discard, dg); err != nil {
		return "", 0, fmt.Errorf("read layer tail: %w", err)
	} else if n > 0 && selfHashing {
		return "", 0, fmt.Errorf("layer writer left %d bytes of the layer unread", n)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return "", 0, fmt.Errorf("read layer tail: %w", err)
	}
	if selfHashing {
		return did.DiffID(), dg.n, nil
	}
	return dg.Digest(), dg.n, nil
}
