package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"

	"github.com/berthproject/berth/internal/image/registry"
	"github.com/berthproject/berth/internal/reference"
)

// Layer media types of layers berth creates.
const (
	mediaTypeDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mediaTypeOCILayerGzip    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// ImportOptions are import's options.
type ImportOptions struct {
	// Ref tags the new image (REPO[:TAG]; "" leaves it untagged).
	Ref string
	// Changes are Dockerfile instructions applied to the config (--change).
	Changes []string
	// Message is the history comment (--message).
	Message string
	// Platform "os/arch[/variant]" of the image ("" = the store's platform).
	Platform string
	// Source is recorded in the history ("-" for stdin, a file name, a URL).
	Source string
}

// Import makes a single-layer image from a root filesystem tarball (plain,
// gzip or zstd, detected).
func (s *Store) Import(ctx context.Context, r io.Reader, opts ImportOptions) (*Image, error) {
	img, err := s.importImage(ctx, r, opts)
	if err == nil {
		s.event("import", string(img.ID), map[string]string{"name": opts.Ref})
	}
	return img, err
}

func (s *Store) importImage(ctx context.Context, r io.Reader, opts ImportOptions) (*Image, error) {
	img, err := s.importTar(ctx, r, opts)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	return img, nil
}

func (s *Store) importTar(ctx context.Context, r io.Reader, opts ImportOptions) (*Image, error) {
	refs, err := parseTargetRef(opts.Ref)
	if err != nil {
		return nil, err
	}
	plat := s.platform
	if opts.Platform != "" {
		if plat, err = ParsePlatform(opts.Platform); err != nil {
			return nil, err
		}
	}
	var cfgc v1.Config
	if err := ApplyChanges(&cfgc, opts.Changes); err != nil {
		return nil, err
	}
	src := opts.Source
	if src == "" {
		src = "-"
	}
	now := time.Now().UTC()
	cfg := &imageConfig{ConfigFile: v1.ConfigFile{Architecture: plat.Architecture, OS: plat.OS, Variant: plat.Variant, Created: v1.Time{Time: now},
		Config: cfgc, RootFS: v1.RootFS{Type: "layers"},
		History: []v1.History{{Created: v1.Time{Time: now}, CreatedBy: "Imported from " + src, Comment: opts.Message}}}, Comment: opts.Message}
	br := bufio.NewReaderSize(r, 1<<20)
	zr, err := decompress(br, sniffCompression(br))
	if err != nil {
		return nil, fmt.Errorf("%w: tarball: %v", ErrInvalid, err)
	}
	defer zr.Close()
	ls, err := s.newLease()
	if err != nil {
		return nil, err
	}
	img, err := s.createImage(ctx, ls, nil, cfg, zr, registry.MediaTypeDockerManifest, refs)
	if err != nil {
		s.cleanupFailed(ctx, ls)
		return nil, err
	}
	ls.release()
	return img, nil
}

// CommitOptions describe a container's changes to make into an image.
type CommitOptions struct {
	// Base is the container's image ID ("" for a container made from scratch).
	Base digest.Digest
	// Layer is the container's changes as an uncompressed layer tar (the
	// engine makes it with archive.Diff of the container's upper directory).
	Layer io.Reader
	// Config replaces the base image's run config when not nil (Docker
	// commits the container's config: its Cmd, Env, ...).
	Config *v1.Config
	// Changes are Dockerfile instructions applied after (-c).
	Changes []string
	// Ref tags the new image (REPO[:TAG]; "" leaves it untagged).
	Ref string
	// Author and Comment go to the config and history (-a, -m).
	Author, Comment string
	// ContainerID is recorded in the config ("container").
	ContainerID string
	// CreatedBy is the history's created_by (e.g. the container's command).
	CreatedBy string
}

// Commit makes a new image: the base image plus one layer of the
// container's changes (stored gzip-compressed), with the config changes
// applied. The base image's layers, manifest media type and history are kept.
func (s *Store) Commit(ctx context.Context, opts CommitOptions) (*Image, error) {
	img, err := s.commit(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return img, nil
}

func (s *Store) commit(ctx context.Context, opts CommitOptions) (*Image, error) {
	if opts.Layer == nil {
		return nil, fmt.Errorf("%w: no layer to commit", ErrInvalid)
	}
	refs, err := parseTargetRef(opts.Ref)
	if err != nil {
		return nil, err
	}
	var base *Image
	cfg := &imageConfig{ConfigFile: v1.ConfigFile{OS: s.platform.OS, Architecture: s.platform.Architecture, Variant: s.platform.Variant, RootFS: v1.RootFS{Type: "layers"}}}
	manifestType := registry.MediaTypeDockerManifest
	if opts.Base != "" {
		if base, err = s.readRecord(opts.Base); err != nil {
			return nil, err
		}
		raw, err := s.content.ReadBlob(ctx, base.Config.Digest)
		if err != nil {
			return nil, fmt.Errorf("config of base image %s: %w", ShortID(base.ID), err)
		}
		if cfg, err = parseConfig(raw); err != nil {
			return nil, fmt.Errorf("config of base image %s: %w", ShortID(base.ID), err)
		}
		manifestType = base.Manifest.MediaType
	}
	if opts.Config != nil {
		cfg.Config = *opts.Config
	}
	if err := ApplyChanges(&cfg.Config, opts.Changes); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	cfg.Created = v1.Time{Time: now}
	cfg.Author = opts.Author
	cfg.Comment = opts.Comment
	cfg.Container = opts.ContainerID
	cfg.History = append(cfg.History, v1.History{Created: v1.Time{Time: now}, Author: opts.Author, CreatedBy: opts.CreatedBy, Comment: opts.Comment})
	ls, err := s.newLease()
	if err != nil {
		return nil, err
	}
	img, err := s.createImage(ctx, ls, base, cfg, opts.Layer, manifestType, refs)
	if err != nil {
		s.cleanupFailed(ctx, ls)
		return nil, err
	}
	ls.release()
	return img, nil
}

func parseTargetRef(s string) ([]reference.Reference, error) {
	if s == "" {
		return nil, nil
	}
	ref, err := reference.Parse(s)
	if err != nil {
		return nil, err
	}
	if ref.Digest != "" {
		return nil, fmt.Errorf("%w: %s: a tag cannot carry a digest", ErrInvalid, s)
	}
	return []reference.Reference{ref.WithDefaultTag()}, nil
}

// createImage stores layer (uncompressed tar) on top of base, appends it to
// cfg, writes config and manifest blobs and the image record.
func (s *Store) createImage(ctx context.Context, ls *lease, base *Image, cfg *imageConfig, layer io.Reader, manifestType string, refs []reference.Reference) (*Image, error) {
	var parent digest.Digest
	var layers []Layer
	if base != nil {
		parent = base.ChainID()
		layers = append(layers, base.Layers...)
	}
	layerMT := mediaTypeDockerLayerGzip
	if manifestType == registry.MediaTypeOCIManifest {
		layerMT = mediaTypeOCILayerGzip
	}
	l, err := s.storeLayer(ctx, ls, layer, parent, layerMT)
	if err != nil {
		return nil, err
	}
	layers = append(layers, l)
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, v1.Hash{Algorithm: "sha256", Hex: l.DiffID.Encoded()})
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		return nil, fmt.Errorf("%w: base config lists %d layers, its image has %d", ErrInvalid, len(cfg.RootFS.DiffIDs)-1, len(layers)-1)
	}
	img, err := s.storeImage(ctx, ls, cfg, layers, manifestType)
	if err != nil {
		return nil, err
	}
	if base != nil {
		img.Parent = base.ID
	}
	if err := s.putImage(img, refs...); err != nil {
		return nil, err
	}
	return img, nil
}

// storeImage writes the config and a manifest for layers; it does not write
// the record.
func (s *Store) storeImage(ctx context.Context, ls *lease, cfg *imageConfig, layers []Layer, manifestType string) (*Image, error) {
	cfgRaw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgMT := mediaTypeDockerConfig
	if manifestType == registry.MediaTypeOCIManifest {
		cfgMT = mediaTypeOCIConfig
	}
	cfgDesc := Descriptor{MediaType: cfgMT, Digest: digest.FromBytes(cfgRaw), Size: int64(len(cfgRaw))}
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
	}{SchemaVersion: 2, MediaType: manifestType, Config: desc{cfgMT, cfgDesc.Size, cfgDesc.Digest}, Layers: []desc{}}
	for _, l := range layers {
		m.Layers = append(m.Layers, desc{l.Blob.MediaType, l.Blob.Size, l.Blob.Digest})
	}
	mRaw, err := json.MarshalIndent(m, "", "   ")
	if err != nil {
		return nil, err
	}
	mDesc := Descriptor{MediaType: manifestType, Digest: digest.FromBytes(mRaw), Size: int64(len(mRaw))}
	if err := ls.add([]digest.Digest{cfgDesc.Digest, mDesc.Digest}, nil); err != nil {
		return nil, err
	}
	if err := s.content.WriteBlob(ctx, "config-"+cfgDesc.Digest.String(), bytes.NewReader(cfgRaw), cfgDesc.Digest, cfgDesc.Size); err != nil {
		return nil, err
	}
	if err := s.content.WriteBlob(ctx, "manifest-"+mDesc.Digest.String(), bytes.NewReader(mRaw), mDesc.Digest, mDesc.Size); err != nil {
		return nil, err
	}
	img := &Image{ID: cfgDesc.Digest, Config: cfgDesc, Manifest: mDesc, Layers: layers, Created: cfg.Created.Time,
		Platform: Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}, Added: time.Now().UTC()}
	for _, l := range layers {
		img.Size += l.Size
	}
	return img, nil
}

// storeLayer reads an uncompressed layer tar once and, at the same time,
// unpacks it on top of parent and stores it gzip-compressed in the content
// store. It returns the layer with its diffID, chain id and blob.
func (s *Store) storeLayer(ctx context.Context, ls *lease, tarStream io.Reader, parent digest.Digest, mediaType string) (Layer, error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	cw, err := s.content.Writer(ctx, "layer-"+hex.EncodeToString(rnd[:]), "", -1)
	if err != nil {
		return Layer{}, err
	}
	defer cw.Close()
	lw, err := s.layers.Begin(ctx, parent)
	if err != nil {
		return Layer{}, err
	}
	committed := false
	defer func() {
		if !committed {
			lw.Abort(context.WithoutCancel(ctx))
			// a random ref is never resumed: drop its bytes
			cw.Close()
			s.content.Abort(context.WithoutCancel(ctx), cw.Ref())
		}
	}()
	zw, err := gzip.NewWriterLevel(cw, gzip.DefaultCompression)
	if err != nil {
		return Layer{}, err
	}
	dg := newDigester(tarStream)
	tee := io.TeeReader(dg, zw)
	if err := lw.Apply(ctx, tee); err != nil {
		return Layer{}, fmt.Errorf("unpack layer: %w", err)
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return Layer{}, fmt.Errorf("read layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return Layer{}, fmt.Errorf("compress layer: %w", err)
	}
	diffID := dg.Digest()
	chain := diffID
	if parent != "" {
		chain = digest.FromString(parent.String() + " " + diffID.String())
	}
	blob := Descriptor{MediaType: mediaType, Digest: cw.Digest(), Size: cw.Offset()}
	if err := ls.add([]digest.Digest{blob.Digest}, []digest.Digest{chain}); err != nil {
		return Layer{}, err
	}
	if err := cw.Commit(ctx); err != nil {
		return Layer{}, err
	}
	if err := lw.Commit(ctx, chain); err != nil {
		return Layer{}, fmt.Errorf("commit layer %s: %w", chain, err)
	}
	committed = true
	return Layer{Blob: blob, DiffID: diffID, ChainID: chain, Size: dg.n}, nil
}
