// Package ocispec loads an OCI bundle's config.json, checks it against the
// runtime-spec and what this host supports, and renders the default config
// that `berth-runtime spec` writes.
//
// Validation is pure apart from reading a few host facts (which namespaces
// and security modules exist); it runs in the parent before anything is
// created, so bad input leaves nothing behind. Every error names the field
// at fault as a JSON path, e.g. `linux.namespaces[2].type`.
package ocispec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrInvalid marks a config that does not validate.
var ErrInvalid = errors.New("invalid config")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Load reads and decodes bundle/config.json. Unknown fields are allowed, as
// the spec requires; a type mismatch names the field.
func Load(bundle string) (*specs.Spec, error) {
	s, _, err := LoadRaw(bundle)
	return s, err
}

// LoadRaw is Load that also returns the file's bytes, for a runtime that
// keeps a frozen copy of the config.
func LoadRaw(bundle string) (*specs.Spec, []byte, error) {
	path := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open bundle config: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, nil, invalid("%s: %s: field %s: cannot use %s as %s", path, te.Field, te.Field, te.Value, te.Type)
		}
		return nil, nil, invalid("%s: %v", path, err)
	}
	return &s, b, nil
}

// RootfsPath returns the absolute root filesystem path of spec in bundle.
func RootfsPath(bundle string, s *specs.Spec) string {
	p := s.Root.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(bundle, p)
	}
	return filepath.Clean(p)
}
