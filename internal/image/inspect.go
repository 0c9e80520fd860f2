package image

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Inspect is `image inspect` output in Docker's JSON shape.
type Inspect struct {
	ID            string      `json:"Id"`
	RepoTags      []string    `json:"RepoTags"`
	RepoDigests   []string    `json:"RepoDigests"`
	Parent        string      `json:"Parent"`
	Comment       string      `json:"Comment"`
	Created       string      `json:"Created"`
	DockerVersion string      `json:"DockerVersion"`
	Author        string      `json:"Author"`
	Config        *v1.Config  `json:"Config"`
	Architecture  string      `json:"Architecture"`
	Variant       string      `json:"Variant,omitempty"`
	Os            string      `json:"Os"`
	Size          int64       `json:"Size"`
	RootFS        InspectFS   `json:"RootFS"`
	Metadata      InspectMeta `json:"Metadata"`
}

// InspectFS is Inspect's RootFS.
type InspectFS struct {
	Type   string   `json:"Type"`
	Layers []string `json:"Layers"`
}

// InspectMeta is Inspect's Metadata.
type InspectMeta struct {
	LastTagTime string `json:"LastTagTime"`
}

// Inspect returns the image's inspect data.
func (s *Store) Inspect(ctx context.Context, nameOrID string) (*Inspect, error) {
	sum, err := s.Get(ctx, nameOrID)
	if err != nil {
		return nil, err
	}
	cfg, err := s.config(ctx, sum.Image)
	if err != nil {
		return nil, err
	}
	out := &Inspect{
		ID: sum.ID.String(), RepoTags: nonNil(sum.RepoTags), RepoDigests: nonNil(sum.RepoDigests),
		Comment: cfg.Comment, Created: cfg.Created.Time.UTC().Format(time.RFC3339Nano), DockerVersion: cfg.DockerVersion,
		Author: cfg.Author, Config: &cfg.Config, Architecture: cfg.Architecture, Variant: cfg.Variant, Os: cfg.OS,
		Size: sum.Size, RootFS: InspectFS{Type: cfg.RootFS.Type, Layers: []string{}},
	}
	if sum.Parent != "" {
		out.Parent = sum.Parent.String()
	}
	if cfg.Comment == "" && len(cfg.History) > 0 {
		out.Comment = cfg.History[len(cfg.History)-1].Comment
	}
	for _, d := range cfg.RootFS.DiffIDs {
		out.RootFS.Layers = append(out.RootFS.Layers, d.String())
	}
	if !sum.LastTagTime.IsZero() {
		out.Metadata.LastTagTime = sum.LastTagTime.Format(time.RFC3339Nano)
	} else {
		out.Metadata.LastTagTime = time.Time{}.Format(time.RFC3339)
	}
	return out, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Store) config(ctx context.Context, img *Image) (*imageConfig, error) {
	raw, err := s.content.ReadBlob(ctx, img.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("config of image %s: %w", ShortID(img.ID), err)
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("config of image %s: %w", ShortID(img.ID), err)
	}
	return cfg, nil
}

// Config returns the image's parsed config (run settings, history, rootfs).
func (s *Store) Config(ctx context.Context, id string) (*v1.ConfigFile, error) {
	sum, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	cfg, err := s.config(ctx, sum.Image)
	if err != nil {
		return nil, err
	}
	return &cfg.ConfigFile, nil
}

// HistoryEntry is one line of `history`, newest first like Docker.
type HistoryEntry struct {
	// ID is the image ID on the newest entry, "<missing>" elsewhere (Docker
	// only knows IDs of locally built parents).
	ID        string
	Created   time.Time
	CreatedBy string
	// Size is the size of the layer this step made (0 for empty layers).
	Size    int64
	Comment string
	Tags    []string
}

// History lists the image's history, newest first.
func (s *Store) History(ctx context.Context, nameOrID string) ([]HistoryEntry, error) {
	sum, err := s.Get(ctx, nameOrID)
	if err != nil {
		return nil, err
	}
	cfg, err := s.config(ctx, sum.Image)
	if err != nil {
		return nil, err
	}
	var out []HistoryEntry
	li := 0
	for _, h := range cfg.History {
		e := HistoryEntry{ID: "<missing>", Created: h.Created.Time, CreatedBy: h.CreatedBy, Comment: h.Comment}
		if !h.EmptyLayer && li < len(sum.Layers) {
			e.Size = sum.Layers[li].Size
			li++
		}
		out = append(out, e)
	}
	// Entries for layers the history does not describe.
	for ; li < len(sum.Layers); li++ {
		out = append(out, HistoryEntry{ID: "<missing>", Size: sum.Layers[li].Size})
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if len(out) > 0 {
		out[0].ID = sum.ID.String()
		out[0].Tags = sum.RepoTags
	}
	return out, nil
}
