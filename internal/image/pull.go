package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/berthproject/berth/internal/content"
	"github.com/berthproject/berth/internal/fastjson"
	"github.com/berthproject/berth/internal/image/progress"
	"github.com/berthproject/berth/internal/image/registry"
	"github.com/berthproject/berth/internal/reference"
)

// PullOptions are pull's options.
type PullOptions struct {
	// Platform "os/arch[/variant]" picks from a multi-arch index ("" = the
	// store's platform).
	Platform string
	// Progress receives per-layer events (nil: none).
	Progress progress.Func
	// Concurrency is the number of layers fetched at once (0: 6).
	Concurrency int
}

// Media types of image configs.
const (
	mediaTypeDockerConfig = "application/vnd.docker.container.image.v1+json"
	mediaTypeOCIConfig    = "application/vnd.oci.image.config.v1+json"
)

// Pull fetches an image (NAME[:TAG|@DIGEST]) from its registry, stores it and
// tags it. Layers download concurrently; each is verified and stored in the
// content store while it is decompressed and unpacked (on stores that unpack
// in parallel). Layers already present are skipped. On failure the store is
// left as it was (nothing listed, no orphan layer, no blob under a wrong
// digest); an interrupted download keeps its bytes for the next pull.
func (s *Store) Pull(ctx context.Context, name string, opts PullOptions) (*Image, error) {
	img, err := s.pullImage(ctx, name, opts)
	if err == nil {
		s.event("pull", name, map[string]string{"name": name})
	}
	return img, err
}

func (s *Store) pullImage(ctx context.Context, name string, opts PullOptions) (*Image, error) {
	ref, err := reference.Parse(name)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	ref = ref.WithDefaultTag()
	img, err := s.pull(ctx, ref, opts)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref.Familiar(), err)
	}
	return img, nil
}

func emit(f progress.Func, id, status string, cur, total int64) {
	if f != nil {
		f(progress.Event{ID: id, Status: status, Current: cur, Total: total})
	}
}

// manifestInfo is a parsed image manifest with its bytes.
type manifestInfo struct {
	desc     Descriptor
	index    *Descriptor
	indexRaw []byte
	raw      []byte
	m        ocispec.Manifest
}

func (s *Store) pull(ctx context.Context, ref reference.Reference, opts PullOptions) (*Image, error) {
	plat := s.platform
	if opts.Platform != "" {
		p, err := ParsePlatform(opts.Platform)
		if err != nil {
			return nil, err
		}
		plat = p
	}
	repo, err := s.registry.Open(ctx, ref, false)
	if err != nil {
		return nil, err
	}
	mi, err := resolveManifest(ctx, repo, ref, plat)
	if err != nil {
		return nil, err
	}
	// The config: small, fetched whole and verified.
	cfgDesc := mi.m.Config
	if cfgDesc.MediaType != mediaTypeDockerConfig && cfgDesc.MediaType != mediaTypeOCIConfig {
		return nil, fmt.Errorf("%w: manifest %s: unknown config media type %q", ErrInvalid, mi.desc.Digest, cfgDesc.MediaType)
	}
	cfgRaw, err := fetchSmallBlob(ctx, repo, cfgDesc.Digest, cfgDesc.Size)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", cfgDesc.Digest, err)
	}
	cfg, err := parseConfig(cfgRaw)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", cfgDesc.Digest, err)
	}
	got := Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if !got.Matches(plat) {
		return nil, fmt.Errorf("%w: image is for platform %s, not %s (choose one with --platform)", ErrInvalid, got, plat)
	}
	layers, err := layerPlan(mi.m, cfg)
	if err != nil {
		return nil, err
	}
	img := &Image{ID: cfgDesc.Digest, Config: Descriptor{MediaType: cfgDesc.MediaType, Digest: cfgDesc.Digest, Size: int64(len(cfgRaw))},
		Manifest: mi.desc, Index: mi.index, Platform: got, Layers: layers, Created: cfg.Created.Time, Added: time.Now().UTC()}
	for _, l := range layers {
		img.Size += l.Size
	}

	ls, err := s.newLease()
	if err != nil {
		return nil, err
	}
	blobs := []digest.Digest{img.Config.Digest, img.Manifest.Digest}
	if img.Index != nil {
		blobs = append(blobs, img.Index.Digest)
	}
	var chains []digest.Digest
	for _, l := range layers {
		blobs = append(blobs, l.Blob.Digest)
		chains = append(chains, l.ChainID)
	}
	if err := ls.add(blobs, chains); err != nil {
		ls.release()
		return nil, err
	}
	sizes, err := s.fetchLayers(ctx, repo, layers, opts)
	if err != nil {
		s.cleanupFailed(ctx, ls)
		return nil, err
	}
	for i := range img.Layers {
		if sizes[i] > 0 {
			img.Layers[i].Size = sizes[i]
		} else {
			img.Layers[i].Size = s.knownLayerSize(ctx, img.Layers[i].ChainID)
		}
	}
	img.Size = 0
	for _, l := range img.Layers {
		img.Size += l.Size
	}
	// Small blobs last: the image is complete once its manifest is stored.
	if err := s.content.WriteBlob(ctx, "config-"+cfgDesc.Digest.String(), bytes.NewReader(cfgRaw), cfgDesc.Digest, int64(len(cfgRaw))); err != nil {
		s.cleanupFailed(ctx, ls)
		return nil, err
	}
	if mi.index != nil {
		if err := s.content.WriteBlob(ctx, "index-"+mi.index.Digest.String(), bytes.NewReader(mi.indexRaw), mi.index.Digest, mi.index.Size); err != nil {
			s.cleanupFailed(ctx, ls)
			return nil, err
		}
	}
	if err := s.content.WriteBlob(ctx, "manifest-"+mi.desc.Digest.String(), bytes.NewReader(mi.raw), mi.desc.Digest, mi.desc.Size); err != nil {
		s.cleanupFailed(ctx, ls)
		return nil, err
	}
	repoDigest := mi.desc.Digest
	if mi.index != nil {
		repoDigest = mi.index.Digest
	}
	refs := []reference.Reference{{Domain: ref.Domain, Path: ref.Path, Digest: repoDigest.String()}}
	if ref.Tag != "" {
		refs = append(refs, reference.Reference{Domain: ref.Domain, Path: ref.Path, Tag: ref.Tag})
	}
	if err := s.putImage(img, refs...); err != nil {
		s.cleanupFailed(ctx, ls)
		return nil, err
	}
	ls.release()
	return img, nil
}

// resolveManifest fetches the manifest of ref, choosing plat from an index.
func resolveManifest(ctx context.Context, repo *registry.Repo, ref reference.Reference, plat Platform) (*manifestInfo, error) {
	raw, mt, dgst, err := repo.Manifest(ctx, ref.Identifier())
	if err != nil {
		return nil, err
	}
	mi := &manifestInfo{}
	if mt == "" || mt == "application/json" || mt == "text/plain" {
		mt = sniffManifestType(raw)
	}
	if registry.IsManifestList(mt) {
		var idx ocispec.Index
		if err := json.Unmarshal(raw, &idx); err != nil {
			return nil, fmt.Errorf("%w: index %s: %v", ErrInvalid, dgst, err)
		}
		mi.index = &Descriptor{MediaType: mt, Digest: dgst, Size: int64(len(raw))}
		mi.indexRaw = raw
		var pick *ocispec.Descriptor
		var avail []string
		for i, d := range idx.Manifests {
			if d.Platform == nil {
				continue
			}
			p := Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant}
			avail = append(avail, p.String())
			if pick == nil && p.Matches(plat) {
				pick = &idx.Manifests[i]
			}
		}
		if pick == nil {
			return nil, fmt.Errorf("%w: no image for platform %s in index %s (it has %v)", ErrNotFound, plat, dgst, avail)
		}
		raw, mt, dgst, err = repo.Manifest(ctx, pick.Digest.String())
		if err != nil {
			return nil, err
		}
		if mt == "" || mt == "application/json" {
			mt = pick.MediaType
		}
	}
	if registry.IsSchema1(mt) {
		return nil, fmt.Errorf("%w: manifest %s uses Docker's retired schema 1 (%s); push it again with a current client", ErrInvalid, dgst, mt)
	}
	if mt != registry.MediaTypeDockerManifest && mt != registry.MediaTypeOCIManifest {
		return nil, fmt.Errorf("%w: manifest %s: unknown media type %q", ErrInvalid, dgst, mt)
	}
	if err := json.Unmarshal(raw, &mi.m); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", ErrInvalid, dgst, err)
	}
	mi.raw = raw
	mi.desc = Descriptor{MediaType: mt, Digest: dgst, Size: int64(len(raw))}
	return mi, nil
}

func sniffManifestType(raw []byte) string {
	var probe struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	json.Unmarshal(raw, &probe)
	if probe.MediaType != "" {
		return probe.MediaType
	}
	if probe.Manifests != nil {
		return registry.MediaTypeOCIIndex
	}
	return registry.MediaTypeOCIManifest
}

// imageConfig is an image config: OCI's plus Docker's fields.
type imageConfig struct {
	v1.ConfigFile
	// Comment is Docker's top-level comment (commit -m).
	Comment string `json:"comment,omitempty"`
}

// parseConfig reads an image config (Docker's superset of OCI's).
func parseConfig(raw []byte) (*imageConfig, error) {
	var cfg imageConfig
	if err := fastjson.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("%w: parse image config: %v", ErrInvalid, err)
	}
	return &cfg, nil
}

// layerPlan checks the manifest's layers against the config's diffIDs and
// computes chain ids.
func layerPlan(m ocispec.Manifest, cfg *imageConfig) ([]Layer, error) {
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("%w: manifest has %d layers but its config lists %d diff ids", ErrInvalid, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	var diffIDs []digest.Digest
	for _, d := range cfg.RootFS.DiffIDs {
		dd := digest.Digest(d.String())
		if err := dd.Validate(); err != nil {
			return nil, fmt.Errorf("%w: config diff id %q: %v", ErrInvalid, d, err)
		}
		diffIDs = append(diffIDs, dd)
	}
	chains := ChainIDs(diffIDs)
	var out []Layer
	for i, d := range m.Layers {
		if _, err := layerCompression(d.MediaType); err != nil {
			return nil, fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		if err := d.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("%w: layer digest %q: %v", ErrInvalid, d.Digest, err)
		}
		out = append(out, Layer{Blob: Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, DiffID: diffIDs[i], ChainID: chains[i]})
	}
	return out, nil
}

func fetchSmallBlob(ctx context.Context, repo *registry.Repo, d digest.Digest, size int64) ([]byte, error) {
	if size > 16<<20 {
		return nil, fmt.Errorf("%w: blob %s of %d bytes is too large for a config", ErrInvalid, d, size)
	}
	body, _, _, err := repo.Blob(ctx, d, 0, size)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}
	if got := digest.FromBytes(b); got != d {
		return nil, fmt.Errorf("%w: blob %s: registry sent content with digest %s", ErrInvalid, d, got)
	}
	return b, nil
}

// fetchLayers makes every layer present (blob and unpacked layer) and
// returns the uncompressed sizes it measured (0 where it did not unpack).
func (s *Store) fetchLayers(ctx context.Context, repo *registry.Repo, layers []Layer, opts PullOptions) ([]int64, error) {
	n := opts.Concurrency
	if n <= 0 {
		n = 6
	}
	sizes := make([]int64, len(layers))
	type state struct{ haveBlob, haveLayer bool }
	st := make([]state, len(layers))
	for i, l := range layers {
		st[i].haveBlob = s.content.Exists(l.Blob.Digest)
		ok, err := s.layers.Exists(ctx, l.ChainID)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Blob.Digest, err)
		}
		st[i].haveLayer = ok
		id := ShortID(l.Blob.Digest)
		if st[i].haveBlob && ok {
			emit(opts.Progress, id, progress.AlreadyExists, 0, 0)
		} else {
			emit(opts.Progress, id, progress.PullingFsLayer, 0, 0)
		}
	}
	parallel := s.layers.Parallel()
	writers := make([]LayerWriter, len(layers))
	// abortAll discards the layers being unpacked. A layer that filled
	// the disk holds the space another's abort needs to rewrite the
	// driver's table (that one may have been cancelled before it wrote
	// anything it could free): a second round retries what failed once
	// the others are gone.
	abortAll := func() {
		for range 2 {
			for _, w := range writers {
				if w != nil {
					w.Abort(context.WithoutCancel(ctx))
				}
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	for i, l := range layers {
		if st[i].haveBlob && (st[i].haveLayer || !parallel) {
			continue
		}
		var parent digest.Digest
		if i > 0 {
			parent = layers[i-1].ChainID
		}
		unpack := parallel && !st[i].haveLayer
		if unpack {
			w, err := s.layers.Begin(ctx, parent)
			if err != nil {
				abortAll()
				return nil, fmt.Errorf("layer %s: %w", l.Blob.Digest, err)
			}
			writers[i] = w
		}
		g.Go(func() error {
			size, err := s.fetchLayer(gctx, repo, l, writers[i], opts.Progress)
			if err != nil {
				return fmt.Errorf("layer %s: %w", l.Blob.Digest, err)
			}
			sizes[i] = size
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		abortAll()
		return nil, err
	}
	// Commit (parallel) or unpack from the blobs (sequential), in order.
	for i, l := range layers {
		id := ShortID(l.Blob.Digest)
		if parallel {
			if writers[i] != nil {
				if err := writers[i].Commit(ctx, l.ChainID); err != nil {
					abortAll()
					return nil, fmt.Errorf("layer %s: commit %s: %w", l.Blob.Digest, l.ChainID, err)
				}
				emit(opts.Progress, id, progress.PullComplete, 0, 0)
			}
			continue
		}
		if st[i].haveLayer {
			if !st[i].haveBlob {
				emit(opts.Progress, id, progress.PullComplete, 0, 0)
			}
			continue
		}
		var parent digest.Digest
		if i > 0 {
			parent = layers[i-1].ChainID
		}
		size, err := s.unpackBlob(ctx, l, parent, opts.Progress)
		if err != nil {
			abortAll()
			return nil, fmt.Errorf("layer %s: %w", l.Blob.Digest, err)
		}
		sizes[i] = size
		emit(opts.Progress, id, progress.PullComplete, 0, 0)
	}
	return sizes, nil
}

// unpackBlob unpacks a stored layer blob as the layer l on top of parent.
func (s *Store) unpackBlob(ctx context.Context, l Layer, parent digest.Digest, pf progress.Func) (int64, error) {
	c, err := layerCompression(l.Blob.MediaType)
	if err != nil {
		return 0, err
	}
	w, err := s.layers.Begin(ctx, parent)
	if err != nil {
		return 0, err
	}
	f, err := s.content.Open(ctx, l.Blob.Digest)
	if err != nil {
		w.Abort(ctx)
		return 0, err
	}
	defer f.Close()
	cr := &countingReader{r: f, total: l.Blob.Size, id: ShortID(l.Blob.Digest), status: progress.Extracting, pf: pf}
	diffID, size, err := applyLayer(ctx, w, cr, c)
	if err == nil && diffID != l.DiffID {
		err = fmt.Errorf("%w: uncompressed content has digest %s, the config says %s", ErrInvalid, diffID, l.DiffID)
	}
	if err != nil {
		w.Abort(ctx)
		return 0, err
	}
	if err := w.Commit(ctx, l.ChainID); err != nil {
		w.Abort(ctx)
		return 0, fmt.Errorf("commit %s: %w", l.ChainID, err)
	}
	return size, nil
}

// fetchLayer downloads the blob of l into the content store and, when w is
// not nil, unpacks it into w on the way (tee). It resumes an earlier
// interrupted download of the same blob when the registry supports ranges.
func (s *Store) fetchLayer(ctx context.Context, repo *registry.Repo, l Layer, w LayerWriter, pf progress.Func) (int64, error) {
	c, err := layerCompression(l.Blob.MediaType)
	if err != nil {
		return 0, err
	}
	id := ShortID(l.Blob.Digest)
	cw, err := s.content.Writer(ctx, "pull-"+l.Blob.Digest.String(), l.Blob.Digest, l.Blob.Size)
	if errors.Is(err, content.ErrAlreadyExists) {
		// another pull stored it while we waited
		if w == nil {
			return 0, nil
		}
		f, err := s.content.Open(ctx, l.Blob.Digest)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		return checkApply(ctx, w, f, c, l)
	}
	if err != nil {
		return 0, err
	}
	defer cw.Close()
	offset := cw.Offset()
	body, _, resumed, err := repo.Blob(ctx, l.Blob.Digest, offset, l.Blob.Size)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	if offset > 0 && !resumed {
		if err := cw.Reset(); err != nil {
			return 0, err
		}
		offset = 0
	}
	net := &countingReader{r: body, n: offset, total: l.Blob.Size, id: id, status: progress.Downloading, pf: pf}
	src := io.TeeReader(net, cw)
	commit := func() error {
		emit(pf, id, progress.Verifying, 0, 0)
		if err := cw.Commit(ctx); err != nil {
			if errors.Is(err, content.ErrInvalid) {
				return fmt.Errorf("%w: %w", ErrInvalid, err)
			}
			return err
		}
		emit(pf, id, progress.DownloadComplete, 0, 0)
		return nil
	}
	if w == nil {
		if _, err := io.Copy(io.Discard, src); err != nil {
			return 0, fmt.Errorf("download: %w", err)
		}
		return 0, commit()
	}
	// The download runs ahead of the unpacking, so the blob is verified and
	// synced while the end of the layer is still being unpacked.
	// A resumed download starts once the bytes already there are read
	// (the commit closes the ingest file they are read from).
	var dl *download
	start := func() *download {
		if dl == nil {
			dl = startDownload(src, commit)
		}
		return dl
	}
	var r io.Reader
	if offset > 0 {
		r = io.MultiReader(cw.Prefix(), readerFunc(func(p []byte) (int, error) { return start().Read(p) }))
	} else {
		r = start()
	}
	size, err := checkApply(ctx, w, r, c, l)
	start()
	if err != nil {
		dl.Stop() // the blob is still read to its end and committed
	}
	readErr, commitErr := dl.Wait()
	switch {
	case commitErr != nil && errors.Is(commitErr, content.ErrInvalid) && !strings.Contains(commitErr.Error(), "truncated"):
		// If the blob itself is wrong, that is the error to report.
		return 0, commitErr
	case err != nil:
		return 0, err
	case readErr != nil:
		return 0, fmt.Errorf("download: %w", readErr)
	case commitErr != nil:
		return 0, commitErr
	}
	return size, nil
}

// readerFunc is a Read method.
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// A layer's download may run this far ahead of its unpacking (compressed
// bytes): enough that the blob is complete, verified and synced to disk
// while the last part of the layer is still being unpacked, rather than
// after it. Every block is fresh memory, a page fault per page on first use
// (~20 us each on the VMs berth is measured on): 16 blocks per layer were
// 16 000 of a 4-layer pull's 20 000 faults.
const (
	downloadBlock  = 1 << 20
	downloadBlocks = 4
)

// download reads a layer blob from src (the registry's body teed into the
// content store) in its own goroutine, at most downloadBlocks blocks ahead of
// its reader. At the end of src the reader sees io.EOF at once, and then the
// goroutine runs finish (commit the blob).
type download struct {
	full    chan []byte   // blocks read, in order; closed at the end of src
	free    chan []byte   // blocks to fill again
	stop    chan struct{} // closed by Stop: the reader is gone
	ended   chan struct{} // closed when the goroutine is done
	readErr error         // src's error (not io.EOF), set before full is closed
	doneErr error         // finish's error, set before ended is closed

	cur     []byte
	off     int
	stopped bool
}

func startDownload(src io.Reader, finish func() error) *download {
	d := &download{
		full:  make(chan []byte, downloadBlocks),
		free:  make(chan []byte, downloadBlocks),
		stop:  make(chan struct{}),
		ended: make(chan struct{}),
	}
	for range downloadBlocks {
		d.free <- make([]byte, downloadBlock)
	}
	go d.run(src, finish)
	return d
}

func (d *download) run(src io.Reader, finish func() error) {
	defer close(d.ended)
	var spare []byte // read into once the reader is gone
	for {
		var buf []byte
		handOn := true
		select {
		case buf = <-d.free:
		case <-d.stop:
			if spare == nil {
				spare = make([]byte, downloadBlock)
			}
			buf, handOn = spare, false
		}
		n := 0
		var err error
		for n < len(buf) && err == nil {
			var k int
			k, err = src.Read(buf[n:])
			n += k
		}
		if n > 0 && handOn {
			select {
			case d.full <- buf[:n]:
			case <-d.stop:
			}
		}
		if err != nil {
			if err != io.EOF {
				d.readErr = err
			}
			close(d.full)
			if err == io.EOF {
				d.doneErr = finish()
			}
			return
		}
	}
}

func (d *download) Read(p []byte) (int, error) {
	if d.off == len(d.cur) {
		if d.cur != nil {
			d.free <- d.cur[:cap(d.cur)]
			d.cur, d.off = nil, 0
		}
		buf, ok := <-d.full
		if !ok {
			if d.readErr != nil {
				return 0, d.readErr
			}
			return 0, io.EOF
		}
		d.cur = buf
	}
	n := copy(p, d.cur[d.off:])
	d.off += n
	return n, nil
}

// Stop tells the goroutine that nothing reads any more: it reads src to
// its end without handing it on, and still runs finish.
func (d *download) Stop() {
	if !d.stopped {
		d.stopped = true
		close(d.stop)
	}
}

// Wait waits for the goroutine and returns src's error and finish's.
func (d *download) Wait() (readErr, finishErr error) {
	<-d.ended
	return d.readErr, d.doneErr
}

func checkApply(ctx context.Context, w LayerWriter, r io.Reader, c compression, l Layer) (int64, error) {
	diffID, size, err := applyLayer(ctx, w, r, c)
	if err != nil {
		return 0, err
	}
	if diffID != l.DiffID {
		return 0, fmt.Errorf("%w: uncompressed content has digest %s, the config says %s", ErrInvalid, diffID, l.DiffID)
	}
	return size, nil
}

// countingReader reports progress (at most every 256 KiB).
type countingReader struct {
	r        io.Reader
	n, total int64
	last     int64
	id       string
	status   string
	pf       progress.Func
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.pf != nil && (c.n-c.last >= 256<<10 || (err == io.EOF && c.n != c.last)) {
		c.last = c.n
		c.pf(progress.Event{ID: c.id, Status: c.status, Current: c.n, Total: c.total})
	}
	if err == io.EOF && c.total > 0 && c.n < c.total {
		return n, fmt.Errorf("%w: connection closed after %d of %d bytes", io.ErrUnexpectedEOF, c.n, c.total)
	}
	return n, err
}
