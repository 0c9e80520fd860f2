package image

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthproject/berth/internal/image/progress"
	"github.com/berthproject/berth/internal/image/registry"
	"github.com/berthproject/berth/internal/reference"
)

// Archive formats of Save.
const (
	// FormatDocker is an OCI image layout that also carries Docker's
	// manifest.json and repositories, as `docker save` (25+) writes it:
	// `docker load` and OCI tools both read it.
	FormatDocker = "docker"
	// FormatOCI is an OCI image layout only (index.json, oci-layout, blobs/).
	FormatOCI = "oci"
)

// Annotations naming images in an OCI layout's index.
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// SaveOptions are save's options.
type SaveOptions struct {
	// Format is FormatDocker (default) or FormatOCI.
	Format string
}

// Save writes the named images (references or IDs) as a tar to w. Blobs are
// written as stored, so manifests and their digests survive a load.
func (s *Store) Save(ctx context.Context, w io.Writer, names []string, opts SaveOptions) error {
	if err := s.saveImages(ctx, w, names, opts); err != nil {
		return err
	}
	for _, n := range names {
		s.event("save", n, map[string]string{"name": n})
	}
	return nil
}

func (s *Store) saveImages(ctx context.Context, w io.Writer, names []string, opts SaveOptions) error {
	if err := s.save(ctx, w, names, opts); err != nil {
		return fmt.Errorf("save %s: %w", strings.Join(names, " "), err)
	}
	return nil
}

type savedImage struct {
	img  *Image
	refs []reference.Reference // tags to record ("" tag: saved by ID)
}

func (s *Store) save(ctx context.Context, w io.Writer, names []string, opts SaveOptions) error {
	if opts.Format == "" {
		opts.Format = FormatDocker
	}
	if opts.Format != FormatDocker && opts.Format != FormatOCI {
		return fmt.Errorf("%w: unknown archive format %q (want %s or %s)", ErrInvalid, opts.Format, FormatDocker, FormatOCI)
	}
	if len(names) == 0 {
		return fmt.Errorf("%w: no image to save", ErrInvalid)
	}
	var order []digest.Digest
	byID := map[digest.Digest]*savedImage{}
	for _, n := range names {
		id, err := s.Resolve(ctx, n)
		if err != nil {
			return err
		}
		si := byID[id]
		if si == nil {
			img, err := s.readRecord(id)
			if err != nil {
				return err
			}
			si = &savedImage{img: img}
			byID[id] = si
			order = append(order, id)
		}
		// A reference with a tag is recorded; an ID is saved untagged.
		if ref, err := reference.Parse(n); err == nil && !strings.HasPrefix(id.Encoded(), strings.TrimPrefix(n, "sha256:")) {
			if ref.Digest == "" {
				si.refs = append(si.refs, ref.WithDefaultTag())
			}
		}
	}
	tw := tar.NewWriter(w)
	written := map[digest.Digest]bool{}
	writeBlob := func(d digest.Digest) error {
		if written[d] {
			return nil
		}
		written[d] = true
		ra, err := s.content.ReaderAt(ctx, d)
		if err != nil {
			return err
		}
		defer ra.Close()
		if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + d.Encoded(), Mode: 0o444, Size: ra.Size(), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := io.Copy(tw, io.NewSectionReader(ra, 0, ra.Size())); err != nil {
			return fmt.Errorf("write blob %s: %w", d, err)
		}
		return nil
	}
	writeFile := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/", Mode: 0o755, ModTime: time.Unix(0, 0), Typeflag: tar.TypeDir}); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/", Mode: 0o755, ModTime: time.Unix(0, 0), Typeflag: tar.TypeDir}); err != nil {
		return err
	}
	type dockerEntry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var dockerManifest []dockerEntry
	repositories := map[string]map[string]string{}
	index := ocispec.Index{MediaType: registry.MediaTypeOCIIndex, Manifests: []ocispec.Descriptor{}}
	index.SchemaVersion = 2
	for _, id := range order {
		si := byID[id]
		img := si.img
		for _, l := range img.Layers {
			if err := writeBlob(l.Blob.Digest); err != nil {
				return err
			}
		}
		if err := writeBlob(img.Config.Digest); err != nil {
			return err
		}
		if err := writeBlob(img.Manifest.Digest); err != nil {
			return err
		}
		de := dockerEntry{Config: "blobs/sha256/" + img.Config.Digest.Encoded(), RepoTags: []string{}}
		for _, l := range img.Layers {
			de.Layers = append(de.Layers, "blobs/sha256/"+l.Blob.Digest.Encoded())
		}
		md := ocispec.Descriptor{MediaType: img.Manifest.MediaType, Digest: img.Manifest.Digest, Size: img.Manifest.Size}
		if len(si.refs) == 0 {
			index.Manifests = append(index.Manifests, md)
		}
		for _, r := range si.refs {
			d := md
			d.Annotations = map[string]string{annotationImageName: r.String(), annotationRefName: r.Tag}
			index.Manifests = append(index.Manifests, d)
			de.RepoTags = append(de.RepoTags, r.Familiar())
			if len(img.Layers) > 0 {
				if repositories[r.FamiliarName()] == nil {
					repositories[r.FamiliarName()] = map[string]string{}
				}
				repositories[r.FamiliarName()][r.Tag] = img.Layers[len(img.Layers)-1].Blob.Digest.Encoded()
			}
		}
		dockerManifest = append(dockerManifest, de)
	}
	if err := writeFile("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	ib, _ := json.Marshal(index)
	if err := writeFile("index.json", ib); err != nil {
		return err
	}
	if opts.Format == FormatDocker {
		mb, _ := json.Marshal(dockerManifest)
		if err := writeFile("manifest.json", mb); err != nil {
			return err
		}
		if len(repositories) > 0 {
			rb, _ := json.Marshal(repositories)
			if err := writeFile("repositories", rb); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// LoadOptions are load's options.
type LoadOptions struct {
	// Progress receives per-layer events (nil: none).
	Progress progress.Func
	// Platform picks from nested indexes ("" = the store's platform).
	Platform string
}

// Loaded is one image a load stored.
type Loaded struct {
	ID digest.Digest
	// Refs are the familiar references tagged ("busybox:latest").
	Refs []string
}

// Load reads an archive made by Save, `docker save` (docker-archive, old
// and new) or an OCI image layout tar, and stores its images.
func (s *Store) Load(ctx context.Context, r io.Reader, opts LoadOptions) ([]Loaded, error) {
	loaded, err := s.loadImages(ctx, r, opts)
	for _, l := range loaded {
		s.event("load", string(l.ID), map[string]string{"name": strings.Join(l.Refs, ",")})
	}
	return loaded, err
}

func (s *Store) loadImages(ctx context.Context, r io.Reader, opts LoadOptions) ([]Loaded, error) {
	out, err := s.load(ctx, r, opts)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return out, nil
}

// archiveFile is a regular file of the archive, stored as a blob.
type archiveFile struct {
	digest digest.Digest
	size   int64
}

func (s *Store) load(ctx context.Context, r io.Reader, opts LoadOptions) ([]Loaded, error) {
	plat := s.platform
	if opts.Platform != "" {
		var err error
		if plat, err = ParsePlatform(opts.Platform); err != nil {
			return nil, err
		}
	}
	ls, err := s.newLease()
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(r, 1<<20)
	zr, err := decompress(br, sniffCompression(br))
	if err != nil {
		ls.release()
		return nil, fmt.Errorf("%w: archive: %v", ErrInvalid, err)
	}
	defer zr.Close()
	files := map[string]archiveFile{}
	small := map[string][]byte{}
	tr := tar.NewReader(zr)
	var rnd [8]byte
	rand.Read(rnd[:])
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.cleanupFailed(ctx, ls)
			return nil, fmt.Errorf("%w: read archive: %v", ErrInvalid, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		switch name {
		case "index.json", "manifest.json", "oci-layout", "repositories":
			b, err := io.ReadAll(io.LimitReader(tr, 16<<20))
			if err != nil {
				s.cleanupFailed(ctx, ls)
				return nil, fmt.Errorf("read %s: %w", name, err)
			}
			small[name] = b
			continue
		}
		n++
		cw, err := s.content.Writer(ctx, fmt.Sprintf("load-%x-%d", rnd, n), "", h.Size)
		if err != nil {
			s.cleanupFailed(ctx, ls)
			return nil, err
		}
		if _, err := io.Copy(cw, tr); err != nil {
			cw.Close()
			s.content.Abort(ctx, cw.Ref())
			s.cleanupFailed(ctx, ls)
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		d := cw.Digest()
		if strings.HasPrefix(name, "blobs/sha256/") && path.Base(name) != d.Encoded() {
			cw.Close()
			s.content.Abort(ctx, cw.Ref())
			s.cleanupFailed(ctx, ls)
			return nil, fmt.Errorf("%w: archive entry %s has digest %s", ErrInvalid, name, d)
		}
		if err := ls.add([]digest.Digest{d}, nil); err != nil {
			cw.Close()
			s.content.Abort(ctx, cw.Ref())
			s.cleanupFailed(ctx, ls)
			return nil, err
		}
		err = cw.Commit(ctx)
		cw.Close()
		if err != nil {
			s.cleanupFailed(ctx, ls)
			return nil, err
		}
		files[name] = archiveFile{digest: d, size: h.Size}
	}
	var loaded []Loaded
	switch {
	case small["index.json"] != nil:
		loaded, err = s.loadOCI(ctx, ls, files, small, plat, opts)
	case small["manifest.json"] != nil:
		loaded, err = s.loadDocker(ctx, ls, files, small, opts)
	default:
		err = fmt.Errorf("%w: archive has neither index.json (OCI layout) nor manifest.json (docker-archive)", ErrInvalid)
	}
	// Blobs of the archive that no image uses go; on failure, everything new goes.
	s.cleanupFailed(ctx, ls)
	if err != nil {
		return nil, err
	}
	return loaded, nil
}

func (s *Store) loadOCI(ctx context.Context, ls *lease, files map[string]archiveFile, small map[string][]byte, plat Platform, opts LoadOptions) ([]Loaded, error) {
	var index ocispec.Index
	if err := json.Unmarshal(small["index.json"], &index); err != nil {
		return nil, fmt.Errorf("%w: index.json: %v", ErrInvalid, err)
	}
	// Docker's manifest.json names tags by config when the index does not.
	tagsByConfig := map[string][]string{}
	if b := small["manifest.json"]; b != nil {
		var dm []struct {
			Config   string
			RepoTags []string
		}
		json.Unmarshal(b, &dm)
		for _, e := range dm {
			tagsByConfig[path.Base(e.Config)] = append(tagsByConfig[path.Base(e.Config)], e.RepoTags...)
		}
	}
	var out []Loaded
	seen := map[digest.Digest]int{}
	for _, d := range index.Manifests {
		md, raw, err := s.pickManifest(ctx, d, plat)
		if err != nil {
			return nil, err
		}
		img, err := s.loadManifest(ctx, ls, md, raw, opts)
		if err != nil {
			return nil, err
		}
		var refs []reference.Reference
		if name := d.Annotations[annotationImageName]; name != "" {
			if r, err := reference.Parse(name); err == nil {
				refs = append(refs, r.WithDefaultTag())
			}
		} else if name := d.Annotations[annotationRefName]; name != "" && strings.ContainsAny(name, "/:") {
			if r, err := reference.Parse(name); err == nil {
				refs = append(refs, r.WithDefaultTag())
			}
		}
		if len(refs) == 0 {
			for _, t := range tagsByConfig[img.ID.Encoded()] {
				if r, err := reference.Parse(t); err == nil {
					refs = append(refs, r.WithDefaultTag())
				}
			}
		}
		if err := s.putImage(img, refs...); err != nil {
			return nil, err
		}
		i, ok := seen[img.ID]
		if !ok {
			i = len(out)
			seen[img.ID] = i
			out = append(out, Loaded{ID: img.ID})
		}
		for _, r := range refs {
			out[i].Refs = append(out[i].Refs, r.Familiar())
		}
	}
	return out, nil
}

// pickManifest follows nested indexes to the manifest for plat.
func (s *Store) pickManifest(ctx context.Context, d ocispec.Descriptor, plat Platform) (Descriptor, []byte, error) {
	for depth := 0; depth < 4; depth++ {
		raw, err := s.content.ReadBlob(ctx, d.Digest)
		if err != nil {
			return Descriptor{}, nil, fmt.Errorf("%w: manifest %s is not in the archive", ErrInvalid, d.Digest)
		}
		mt := d.MediaType
		if mt == "" {
			mt = sniffManifestType(raw)
		}
		if !registry.IsManifestList(mt) {
			return Descriptor{MediaType: mt, Digest: d.Digest, Size: int64(len(raw))}, raw, nil
		}
		var idx ocispec.Index
		if err := json.Unmarshal(raw, &idx); err != nil {
			return Descriptor{}, nil, fmt.Errorf("%w: index %s: %v", ErrInvalid, d.Digest, err)
		}
		found := false
		for _, m := range idx.Manifests {
			if m.Platform == nil || (Platform{OS: m.Platform.OS, Architecture: m.Platform.Architecture, Variant: m.Platform.Variant}).Matches(plat) {
				if s.content.Exists(m.Digest) {
					d, found = m, true
					break
				}
			}
		}
		if !found {
			return Descriptor{}, nil, fmt.Errorf("%w: no image for platform %s in index %s", ErrNotFound, plat, d.Digest)
		}
	}
	return Descriptor{}, nil, fmt.Errorf("%w: indexes nested too deep at %s", ErrInvalid, d.Digest)
}

// loadManifest checks a stored manifest's config and layers and unpacks the
// layers; it returns the record (not yet written).
func (s *Store) loadManifest(ctx context.Context, ls *lease, md Descriptor, raw []byte, opts LoadOptions) (*Image, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", ErrInvalid, md.Digest, err)
	}
	cfgRaw, err := s.content.ReadBlob(ctx, m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("%w: config %s is not in the archive", ErrInvalid, m.Config.Digest)
	}
	cfg, err := parseConfig(cfgRaw)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	layers, err := layerPlan(m, cfg)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", md.Digest, err)
	}
	for _, l := range layers {
		if !s.content.Exists(l.Blob.Digest) {
			return nil, fmt.Errorf("%w: layer %s is not in the archive", ErrInvalid, l.Blob.Digest)
		}
	}
	if err := s.unpackLayers(ctx, ls, layers, opts.Progress); err != nil {
		return nil, err
	}
	img := &Image{ID: m.Config.Digest, Config: Descriptor{MediaType: m.Config.MediaType, Digest: m.Config.Digest, Size: int64(len(cfgRaw))},
		Manifest: md, Platform: Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}, Layers: layers,
		Created: cfg.Created.Time, Added: time.Now().UTC()}
	for _, l := range layers {
		img.Size += l.Size
	}
	return img, nil
}

// unpackLayers unpacks stored layer blobs that are not unpacked yet, in
// order, filling in their sizes.
func (s *Store) unpackLayers(ctx context.Context, ls *lease, layers []Layer, pf progress.Func) error {
	var chains []digest.Digest
	for _, l := range layers {
		chains = append(chains, l.ChainID)
	}
	if err := ls.add(nil, chains); err != nil {
		return err
	}
	for i := range layers {
		l := &layers[i]
		ok, err := s.layers.Exists(ctx, l.ChainID)
		if err != nil {
			return fmt.Errorf("layer %s: %w", l.Blob.Digest, err)
		}
		if ok {
			l.Size = s.knownLayerSize(ctx, l.ChainID)
			continue
		}
		var parent digest.Digest
		if i > 0 {
			parent = layers[i-1].ChainID
		}
		emit(pf, ShortID(l.Blob.Digest), progress.Loading, 0, l.Blob.Size)
		size, err := s.unpackBlob(ctx, *l, parent, pf)
		if err != nil {
			return fmt.Errorf("layer %s: %w", l.Blob.Digest, err)
		}
		l.Size = size
	}
	return nil
}

// knownLayerSize is the uncompressed size of a layer recorded by any image;
// for a layer no image names (kept for a container of a force-removed
// image), the disk space it takes.
func (s *Store) knownLayerSize(ctx context.Context, chain digest.Digest) int64 {
	recs, _ := s.records()
	for _, img := range recs {
		for _, l := range img.Layers {
			if l.ChainID == chain && l.Size > 0 {
				return l.Size
			}
		}
	}
	n, err := s.layers.Usage(ctx, chain)
	if err != nil {
		return 0
	}
	return n
}

// loadDocker loads a classic docker-archive (manifest.json with config and
// layer tar paths); a registry manifest is made for each image.
func (s *Store) loadDocker(ctx context.Context, ls *lease, files map[string]archiveFile, small map[string][]byte, opts LoadOptions) ([]Loaded, error) {
	var dm []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(small["manifest.json"], &dm); err != nil {
		return nil, fmt.Errorf("%w: manifest.json: %v", ErrInvalid, err)
	}
	var out []Loaded
	for _, e := range dm {
		cf, ok := files[path.Clean(e.Config)]
		if !ok {
			return nil, fmt.Errorf("%w: manifest.json names config %s, which is not in the archive", ErrInvalid, e.Config)
		}
		cfgRaw, err := s.content.ReadBlob(ctx, cf.digest)
		if err != nil {
			return nil, err
		}
		cfg, err := parseConfig(cfgRaw)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", e.Config, err)
		}
		if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
			return nil, fmt.Errorf("%w: config %s lists %d diff ids for %d layers", ErrInvalid, e.Config, len(cfg.RootFS.DiffIDs), len(e.Layers))
		}
		var diffIDs []digest.Digest
		for _, d := range cfg.RootFS.DiffIDs {
			diffIDs = append(diffIDs, digest.Digest(d.String()))
		}
		chains := ChainIDs(diffIDs)
		var layers []Layer
		for i, lp := range e.Layers {
			f, ok := files[path.Clean(lp)]
			if !ok {
				return nil, fmt.Errorf("%w: manifest.json names layer %s, which is not in the archive", ErrInvalid, lp)
			}
			mt, err := s.sniffLayerType(ctx, f.digest)
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", lp, err)
			}
			layers = append(layers, Layer{Blob: Descriptor{MediaType: mt, Digest: f.digest, Size: f.size}, DiffID: diffIDs[i], ChainID: chains[i]})
		}
		if err := s.unpackLayers(ctx, ls, layers, opts.Progress); err != nil {
			return nil, err
		}
		// The config is stored as is (its digest is the image ID); a Docker
		// schema 2 manifest is made to go with it.
		img, err := s.storeImageRaw(ctx, ls, cfgRaw, cfg, layers)
		if err != nil {
			return nil, err
		}
		var refs []reference.Reference
		var fam []string
		for _, t := range e.RepoTags {
			r, err := reference.Parse(t)
			if err != nil {
				return nil, fmt.Errorf("manifest.json tag %q: %w", t, err)
			}
			refs = append(refs, r.WithDefaultTag())
			fam = append(fam, r.WithDefaultTag().Familiar())
		}
		if err := s.putImage(img, refs...); err != nil {
			return nil, err
		}
		out = append(out, Loaded{ID: img.ID, Refs: fam})
	}
	return out, nil
}

func (s *Store) sniffLayerType(ctx context.Context, d digest.Digest) (string, error) {
	f, err := s.content.Open(ctx, d)
	if err != nil {
		return "", err
	}
	defer f.Close()
	switch sniffCompression(bufio.NewReader(f)) {
	case gzipped:
		return mediaTypeDockerLayerGzip, nil
	case zstdCompressed:
		return "application/vnd.oci.image.layer.v1.tar+zstd", nil
	}
	return "application/vnd.docker.image.rootfs.diff.tar", nil
}

// storeImageRaw writes a manifest for an existing config blob.
func (s *Store) storeImageRaw(ctx context.Context, ls *lease, cfgRaw []byte, cfg *imageConfig, layers []Layer) (*Image, error) {
	cfgDesc := Descriptor{MediaType: mediaTypeDockerConfig, Digest: digest.FromBytes(cfgRaw), Size: int64(len(cfgRaw))}
	type desc struct {
		MediaType string        `json:"mediaType"`
		Size      int64         `json:"size"`
		Digest    digest.Digest `json:"digest"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{2, registry.MediaTypeDockerManifest, desc{cfgDesc.MediaType, cfgDesc.Size, cfgDesc.Digest}, []desc{}}
	for _, l := range layers {
		m.Layers = append(m.Layers, desc{l.Blob.MediaType, l.Blob.Size, l.Blob.Digest})
	}
	mRaw, err := json.MarshalIndent(m, "", "   ")
	if err != nil {
		return nil, err
	}
	mDesc := Descriptor{MediaType: registry.MediaTypeDockerManifest, Digest: digest.FromBytes(mRaw), Size: int64(len(mRaw))}
	if err := ls.add([]digest.Digest{mDesc.Digest}, nil); err != nil {
		return nil, err
	}
	if err := s.content.WriteBlob(ctx, "manifest-"+mDesc.Digest.String(), strings.NewReader(string(mRaw)), mDesc.Digest, mDesc.Size); err != nil {
		return nil, err
	}
	img := &Image{ID: cfgDesc.Digest, Config: cfgDesc, Manifest: mDesc, Layers: layers, Created: cfg.Created.Time,
		Platform: Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}, Added: time.Now().UTC()}
	for _, l := range layers {
		img.Size += l.Size
	}
	return img, nil
}
