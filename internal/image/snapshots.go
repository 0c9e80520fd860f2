package image

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/berthproject/berth/internal/snapshot"
)

// FromSnapshots presents the snapshot package's layer store (a snapshot
// driver seen as layers by chain id) as the image store's Layers.
func FromSnapshots(l *snapshot.Layers) Layers { return snapshotLayers{l} }

type snapshotLayers struct{ *snapshot.Layers }

func (s snapshotLayers) Begin(ctx context.Context, parent digest.Digest) (LayerWriter, error) {
	w, err := s.Layers.Begin(ctx, parent)
	if err != nil {
		return nil, err
	}
	return w, nil
}
