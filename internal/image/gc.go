package image

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berthproject/berth/internal/content"
	"github.com/berthproject/berth/internal/reference"
)

// RemoveOptions are rmi's flags.
type RemoveOptions struct {
	// Force removes an image used by a container, or by ID with several tags.
	Force bool
	// NoPrune keeps the image's layers and blobs (no GC after removal).
	NoPrune bool
}

// RemoveReport lists what rmi did, like Docker's "Untagged:"/"Deleted:" lines.
type RemoveReport struct {
	Untagged []string
	Deleted  []digest.Digest
}

// Remove is rmi: a tag is untagged, and the image itself deleted when no
// other tag names it. An image a container uses is refused unless Force; an
// ID naming an image with several tags is refused unless Force.
func (s *Store) Remove(ctx context.Context, nameOrID string, opts RemoveOptions) (*RemoveReport, error) {
	var id string
	if d, err := s.Resolve(ctx, nameOrID); err == nil {
		id = string(d)
	}
	rep, err := s.remove(ctx, nameOrID, opts)
	if rep != nil {
		for _, u := range rep.Untagged {
			s.event("untag", id, map[string]string{"name": u})
		}
		for _, d := range rep.Deleted {
			s.event("delete", string(d), map[string]string{"name": nameOrID})
		}
	}
	return rep, err
}

func (s *Store) remove(ctx context.Context, nameOrID string, opts RemoveOptions) (*RemoveReport, error) {
	id, err := s.Resolve(ctx, nameOrID)
	if err != nil {
		return nil, err
	}
	var held []Holder
	if s.holders != nil {
		h, err := s.holders(ctx)
		if err != nil {
			return nil, fmt.Errorf("list image holders: %w", err)
		}
		held = h[id]
	}
	report := &RemoveReport{}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	rf, err := s.readRefs()
	if err != nil {
		unlock()
		return nil, err
	}
	var names []string // refs naming this image
	for r, rid := range rf.Refs {
		if rid == id {
			names = append(names, r)
		}
	}
	sort.Strings(names)
	byRef := ""
	if ref, err := reference.Parse(nameOrID); err == nil {
		full := ref.WithDefaultTag().String()
		if rf.Refs[full] == id {
			byRef = full
		}
	}
	tags := 0
	for _, n := range names {
		if !strings.Contains(n, "@") {
			tags++
		}
	}
	deleteImage := true
	switch {
	case byRef != "" && tags > 1 && !strings.Contains(byRef, "@"):
		// untag only: other tags keep the image
		deleteImage = false
		names = []string{byRef}
	case byRef == "" && tags > 1 && !opts.Force:
		unlock()
		return nil, fmt.Errorf("%w: unable to delete %s (must be forced) - image is referenced in multiple repositories", ErrInUse, ShortID(id))
	}
	// Docker's conflicts: any container blocks the deletion unless forced;
	// a running one even then. Forced by name, the name goes and the image
	// stays for it (untagged); forced by ID, it is an error.
	if deleteImage && len(held) > 0 {
		running := ""
		for _, h := range held {
			if h.Running {
				running = h.ID
				break
			}
		}
		switch {
		case !opts.Force && byRef != "":
			unlock()
			return nil, fmt.Errorf("%w: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", ErrInUse, nameOrID, held[0].ID, ShortID(id))
		case !opts.Force:
			unlock()
			what := "stopped container"
			if running != "" {
				what = "running container"
			}
			return nil, fmt.Errorf("%w: unable to delete %s (must be forced) - image is being used by %s %s", ErrInUse, ShortID(id), what, held[0].ID)
		case running != "" && byRef == "":
			unlock()
			return nil, fmt.Errorf("%w: unable to delete %s (cannot be forced) - image is being used by running container %s", ErrInUse, ShortID(id), running)
		case running != "":
			deleteImage = false
			names = []string{byRef}
		}
	}
	for _, n := range names {
		delete(rf.Refs, n)
		delete(rf.Tagged, n)
		if r, err := reference.ParseFull(n); err == nil {
			report.Untagged = append(report.Untagged, r.Familiar())
		}
	}
	if err := s.writeRefs(rf); err != nil {
		unlock()
		return nil, err
	}
	if deleteImage {
		if err := removeFile(s.recordPath(id)); err != nil {
			unlock()
			return nil, fmt.Errorf("delete image record %s: %w", id, err)
		}
		report.Deleted = append(report.Deleted, id)
	}
	unlock()
	if deleteImage && !opts.NoPrune {
		if _, err := s.GC(ctx); err != nil {
			return report, err
		}
	}
	return report, nil
}

// PruneOptions are `image prune`'s flags.
type PruneOptions struct {
	// All removes every image no container uses, not only dangling (untagged) ones.
	All bool
}

// PruneReport tells what prune removed.
type PruneReport struct {
	Deleted        []digest.Digest
	Untagged       []string
	SpaceReclaimed int64
}

// Prune removes dangling images (All: every unused image), then runs GC.
func (s *Store) Prune(ctx context.Context, opts PruneOptions) (*PruneReport, error) {
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	report := &PruneReport{}
	for _, img := range all {
		if img.Containers > 0 || (!opts.All && len(img.RepoTags) > 0) {
			continue
		}
		rr, err := s.Remove(ctx, img.ID.String(), RemoveOptions{Force: true, NoPrune: true})
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return report, err
		}
		report.Deleted = append(report.Deleted, rr.Deleted...)
		report.Untagged = append(report.Untagged, rr.Untagged...)
	}
	gc, err := s.GC(ctx)
	if gc != nil {
		report.SpaceReclaimed = gc.BytesFreed
	}
	return report, err
}

// GCReport tells what GC freed.
type GCReport struct {
	Layers     []digest.Digest
	Blobs      []digest.Digest
	BytesFreed int64
}

// GC removes every layer and blob that no image record and no live operation
// uses, and ingests abandoned for longer than Options.IngestExpiry (younger
// ones are kept so the next pull of the same blob resumes them). Layers with children still in use (a container
// of a force-removed image) stay until those go.
func (s *Store) GC(ctx context.Context) (*GCReport, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	usedBlobs, usedLayers, err := s.liveLeases()
	if err != nil {
		return nil, err
	}
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	for _, img := range recs {
		usedBlobs[img.Config.Digest] = true
		usedBlobs[img.Manifest.Digest] = true
		if img.Index != nil {
			usedBlobs[img.Index.Digest] = true
		}
		for _, l := range img.Layers {
			usedBlobs[l.Blob.Digest] = true
			usedLayers[l.ChainID] = true
		}
	}
	report := &GCReport{}
	if err := s.removeLayers(ctx, func(d digest.Digest) bool { return !usedLayers[d] }, report); err != nil {
		return report, err
	}
	// A pull or load killed while unpacking left its layer; nothing else
	// ever removes it.
	if c, ok := s.layers.(interface{ Cleanup(context.Context) error }); ok {
		if err := c.Cleanup(ctx); err != nil {
			return report, err
		}
	}
	removed, freed, err := s.content.Prune(ctx, content.PruneOptions{Keep: func(d digest.Digest) bool { return usedBlobs[d] }, IngestAge: s.ingestExpiry})
	report.Blobs = removed
	report.BytesFreed += freed
	return report, err
}

// removeLayers removes the layers doomed says, children before parents;
// layers that cannot go (they have children in use) are left.
func (s *Store) removeLayers(ctx context.Context, doomed func(digest.Digest) bool, report *GCReport) error {
	parents := map[digest.Digest]digest.Digest{}
	if err := s.layers.Walk(ctx, func(c, p digest.Digest) error { parents[c] = p; return nil }); err != nil {
		return fmt.Errorf("list layers: %w", err)
	}
	depth := func(c digest.Digest) int {
		n := 0
		for c != "" && n <= len(parents) {
			c = parents[c]
			n++
		}
		return n
	}
	var victims []digest.Digest
	for c := range parents {
		if doomed(c) {
			victims = append(victims, c)
		}
	}
	// deepest first, so children go before their parents
	sort.Slice(victims, func(i, j int) bool { return depth(victims[i]) > depth(victims[j]) })
	for _, c := range victims {
		size, _ := s.layers.Usage(ctx, c)
		if err := s.layers.Remove(ctx, c); err != nil {
			continue // in use (children); a later GC retries
		}
		report.Layers = append(report.Layers, c)
		report.BytesFreed += size
	}
	return nil
}

// cleanupFailed removes what a failed operation created and nothing else uses.
func (s *Store) cleanupFailed(ctx context.Context, l *lease) {
	blobs, layers := slices.Clone(l.Blobs), slices.Clone(l.Layers)
	l.release()
	unlock, err := s.lock()
	if err != nil {
		return
	}
	defer unlock()
	usedBlobs, usedLayers, err := s.liveLeases()
	if err != nil {
		return
	}
	recs, err := s.records()
	if err != nil {
		return
	}
	for _, img := range recs {
		usedBlobs[img.Config.Digest], usedBlobs[img.Manifest.Digest] = true, true
		if img.Index != nil {
			usedBlobs[img.Index.Digest] = true
		}
		for _, ly := range img.Layers {
			usedBlobs[ly.Blob.Digest], usedLayers[ly.ChainID] = true, true
		}
	}
	mine := map[digest.Digest]bool{}
	for _, c := range layers {
		mine[c] = !usedLayers[c]
	}
	s.removeLayers(ctx, func(d digest.Digest) bool { return mine[d] }, &GCReport{})
	for _, b := range blobs {
		if !usedBlobs[b] {
			s.content.Delete(ctx, b)
		}
	}
}

// DiskUsage is `system df`'s image part.
type DiskUsage struct {
	Images, ActiveImages int
	// LayersSize is the disk space of all unpacked layers.
	LayersSize int64
	// BlobsSize is the disk space of the content store.
	BlobsSize int64
	// Reclaimable is what removing every unused image would free (layers only
	// they use, plus their blobs).
	Reclaimable int64
	// PerImage: the unique and shared sizes of each image (docker system df -v).
	PerImage []ImageUsage
}

// ImageUsage is one image's share of the disk.
type ImageUsage struct {
	ID                     digest.Digest
	RepoTags               []string
	Size, SharedSize       int64
	UniqueSize, Containers int64
}

// DiskUsage computes `system df` data.
func (s *Store) DiskUsage(ctx context.Context) (*DiskUsage, error) {
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	du := &DiskUsage{Images: len(all)}
	layerSize := map[digest.Digest]int64{}
	if err := s.layers.Walk(ctx, func(c, _ digest.Digest) error {
		n, err := s.layers.Usage(ctx, c)
		if err == nil {
			layerSize[c] = n
			du.LayersSize += n
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	s.content.Walk(ctx, func(i content.Info) error { du.BlobsSize += i.Size; return nil })
	users := map[digest.Digest]int{}
	usedByActive := map[digest.Digest]bool{}
	for _, img := range all {
		for _, l := range img.Layers {
			users[l.ChainID]++
			if img.Containers > 0 {
				usedByActive[l.ChainID] = true
			}
		}
		if img.Containers > 0 {
			du.ActiveImages++
		}
	}
	for _, img := range all {
		iu := ImageUsage{ID: img.ID, RepoTags: img.RepoTags, Containers: int64(img.Containers)}
		for _, l := range img.Layers {
			n := layerSize[l.ChainID]
			iu.Size += n
			if users[l.ChainID] > 1 {
				iu.SharedSize += n
			} else {
				iu.UniqueSize += n
			}
		}
		du.PerImage = append(du.PerImage, iu)
	}
	for c, n := range layerSize {
		if !usedByActive[c] {
			du.Reclaimable += n
		}
	}
	return du, nil
}
