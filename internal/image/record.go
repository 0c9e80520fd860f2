package image

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	// ErrNotFound: no such image, tag or layer.
	ErrNotFound = errors.New("not found")
	// ErrInUse: an image is used by a container, or a reference is ambiguous
	// (an ID with several tags): a conflict a user resolves with force.
	ErrInUse = errors.New("conflict")
	// ErrInvalid: bad input: a malformed reference, manifest, config, tar or option.
	ErrInvalid = errors.New("invalid argument")
)

// Descriptor locates a blob.
type Descriptor struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
}

// Platform is an image's OS and CPU.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// HostPlatform is the platform of this machine.
func HostPlatform() Platform {
	p := Platform{OS: "linux", Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// ParsePlatform parses "os/arch[/variant]" (as --platform takes it).
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(strings.ToLower(s), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Platform{}, fmt.Errorf("%w: platform %q: want os/arch[/variant]", ErrInvalid, s)
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	if p.Architecture == "aarch64" {
		p.Architecture = "arm64"
	}
	if p.Architecture == "x86_64" || p.Architecture == "x86-64" {
		p.Architecture = "amd64"
	}
	return p, nil
}

// Matches tells whether an image for p runs where want is asked (a missing
// variant matches any).
func (p Platform) Matches(want Platform) bool {
	if p.OS != want.OS || p.Architecture != want.Architecture {
		return false
	}
	return want.Variant == "" || p.Variant == "" || p.Variant == want.Variant
}

// Layer is one layer of an image.
type Layer struct {
	// Blob is the (usually compressed) layer blob in the content store.
	Blob Descriptor `json:"blob"`
	// DiffID is the digest of the uncompressed tar.
	DiffID digest.Digest `json:"diffID"`
	// ChainID names the unpacked layer stack up to this layer.
	ChainID digest.Digest `json:"chainID"`
	// Size is the size of the uncompressed tar.
	Size int64 `json:"size"`
}

// Image is an image record.
type Image struct {
	// ID is the digest of the config blob.
	ID digest.Digest `json:"id"`
	// Config is the config blob.
	Config Descriptor `json:"config"`
	// Manifest is the image manifest (for this platform).
	Manifest Descriptor `json:"manifest"`
	// Index is the index (manifest list) the manifest was chosen from, if any.
	Index    *Descriptor `json:"index,omitempty"`
	Platform Platform    `json:"platform"`
	Layers   []Layer     `json:"layers"`
	// Created is the config's creation time.
	Created time.Time `json:"created"`
	// Size is the sum of the layers' uncompressed sizes.
	Size int64 `json:"size"`
	// Parent is the local parent image (commit), if any.
	Parent digest.Digest `json:"parent,omitempty"`
	// Added is when this store got the image.
	Added time.Time `json:"added"`
}

// ChainID is the chain id of the whole image ("" for an image without layers):
// the parent a container's writable layer goes on.
func (img *Image) ChainID() digest.Digest {
	if len(img.Layers) == 0 {
		return ""
	}
	return img.Layers[len(img.Layers)-1].ChainID
}

// ShortID is the 12 hex digits Docker shows.
func ShortID(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		return e[:12]
	}
	return e
}

// ChainIDs computes the chain ids of a list of diffIDs:
// chain(0) = diffID(0); chain(n) = sha256(chain(n-1) + " " + diffID(n)).
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}
