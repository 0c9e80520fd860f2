package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/content"
	"github.com/berthproject/berth/internal/image/registry"
	"github.com/berthproject/berth/internal/reference"
)

const schemaVersion = "1"

// Holder is a container that uses an image.
type Holder struct {
	ID      string // as Docker's conflicts name it: the short ID
	Running bool   // running or paused: its image cannot be deleted, even forced
}

// HoldersFunc reports which images are in use and by whom, keyed by image
// ID. The engine provides it; nil means nothing holds images.
type HoldersFunc func(ctx context.Context) (map[digest.Digest][]Holder, error)

// Options configure a Store.
type Options struct {
	// Root is berth's root directory (e.g. /var/lib/berth); the store uses Root/image.
	Root string
	// Content is the blob store (nil: content.New(Root)).
	Content *content.Store
	// Layers is the unpacked-layer store (snapshots). Required.
	Layers Layers
	// Registry talks to registries (nil: registry.New with default options).
	Registry *registry.Client
	// Holders tells which images containers use.
	Holders HoldersFunc
	// Platform is the default platform of pulls (zero: HostPlatform()).
	Platform Platform
	// IngestExpiry is how long GC keeps an interrupted download for a later
	// pull to resume (0: 24 hours; negative: GC removes them at once).
	IngestExpiry time.Duration
	// Events, when set, is told of what happened to images with Docker's
	// event actions (pull, push, tag, untag, delete, import, load, save),
	// the actor (an image ID or a reference) and attributes ("name").
	Events func(action, id string, attrs map[string]string)
}

// Store is the image store. It is safe for concurrent use by several
// goroutines and processes sharing the root.
type Store struct {
	dir      string
	content  *content.Store
	layers   Layers
	registry *registry.Client
	holders  HoldersFunc
	events   func(action, id string, attrs map[string]string)
	platform Platform
	// ingestExpiry: see Options.IngestExpiry.
	ingestExpiry time.Duration
}

// New opens (creating if needed) the image store.
func New(opts Options) (*Store, error) {
	if opts.Root == "" {
		return nil, fmt.Errorf("%w: image store needs a root directory", ErrInvalid)
	}
	if opts.Layers == nil {
		return nil, fmt.Errorf("%w: image store needs a layer store", ErrInvalid)
	}
	s := &Store{dir: filepath.Join(opts.Root, "image"), content: opts.Content, layers: opts.Layers,
		registry: opts.Registry, holders: opts.Holders, platform: opts.Platform, events: opts.Events}
	if s.content == nil {
		c, err := content.New(opts.Root)
		if err != nil {
			return nil, err
		}
		s.content = c
	}
	if s.registry == nil {
		s.registry = registry.New(registry.Options{})
	}
	switch {
	case opts.IngestExpiry == 0:
		s.ingestExpiry = 24 * time.Hour
	case opts.IngestExpiry > 0:
		s.ingestExpiry = opts.IngestExpiry
	}
	if s.platform == (Platform{}) {
		s.platform = HostPlatform()
	}
	for _, d := range []string{s.dir, filepath.Join(s.dir, "images"), filepath.Join(s.dir, "leases")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create image store dir %s: %w", d, err)
		}
	}
	vpath := filepath.Join(s.dir, "version")
	v, err := os.ReadFile(vpath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := writeFileAtomic(vpath, []byte(schemaVersion+"\n")); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", vpath, err)
	case strings.TrimSpace(string(v)) != schemaVersion:
		return nil, fmt.Errorf("image store %s has schema version %q; this berth knows %q", s.dir, strings.TrimSpace(string(v)), schemaVersion)
	}
	return s, nil
}

// Content is the store's blob store.
func (s *Store) Content() *content.Store { return s.content }

// Registry is the store's registry client (login/logout live there).
func (s *Store) Registry() *registry.Client { return s.registry }

// lock takes the store's metadata lock; call the returned func to release.
func (s *Store) lock() (func(), error) {
	p := filepath.Join(s.dir, "lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", p, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// refs.json

type refsFile struct {
	Refs map[string]digest.Digest `json:"refs"`
	// Tagged records when each ref was set (Docker's LastTagTime).
	Tagged map[string]time.Time `json:"tagged,omitempty"`
}

func (s *Store) readRefs() (*refsFile, error) {
	rf := &refsFile{Refs: map[string]digest.Digest{}, Tagged: map[string]time.Time{}}
	p := filepath.Join(s.dir, "refs.json")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return rf, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if err := json.Unmarshal(b, rf); err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	if rf.Refs == nil {
		rf.Refs = map[string]digest.Digest{}
	}
	if rf.Tagged == nil {
		rf.Tagged = map[string]time.Time{}
	}
	return rf, nil
}

func (s *Store) writeRefs(rf *refsFile) error {
	b, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.dir, "refs.json"), b)
}

// image records

func (s *Store) recordPath(id digest.Digest) string {
	return filepath.Join(s.dir, "images", id.Encoded()+".json")
}

func (s *Store) readRecord(id digest.Digest) (*Image, error) {
	if id.Validate() != nil {
		return nil, fmt.Errorf("%w: image id %q", ErrInvalid, id)
	}
	b, err := os.ReadFile(s.recordPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("image %s: %w", ShortID(id), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read image record %s: %w", id, err)
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("parse image record %s: %w", id, err)
	}
	return &img, nil
}

func (s *Store) records() ([]*Image, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "images"))
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var out []*Image
	for _, e := range ents {
		hex, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(hex, ".") {
			continue
		}
		img, err := s.readRecord(digest.NewDigestFromEncoded(digest.SHA256, hex))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

// putImage stores a record and points refs at it, atomically with respect to
// other store users. The record's blobs and layers must already be committed.
func (s *Store) putImage(img *Image, refs ...reference.Reference) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(s.recordPath(img.ID)); errors.Is(err, fs.ErrNotExist) {
		b, err := json.MarshalIndent(img, "", "  ")
		if err != nil {
			return err
		}
		if err := writeFileAtomic(s.recordPath(img.ID), b); err != nil {
			return err
		}
	}
	if len(refs) == 0 {
		return nil
	}
	rf, err := s.readRefs()
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	for _, r := range refs {
		rf.Refs[r.String()] = img.ID
		rf.Tagged[r.String()] = now
	}
	return s.writeRefs(rf)
}

// Summary is an image with its names, as `images` lists it.
type Summary struct {
	*Image
	// RepoTags are familiar tagged references ("busybox:latest").
	RepoTags []string
	// RepoDigests are familiar digested references ("busybox@sha256:...").
	RepoDigests []string
	// LastTagTime is when a tag last pointed here.
	LastTagTime time.Time
	// Containers is the number of containers using the image (-1 unknown).
	Containers int
}

// List returns every image, newest first.
func (s *Store) List(ctx context.Context) ([]Summary, error) {
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	rf, err := s.readRefs()
	if err != nil {
		return nil, err
	}
	held := map[digest.Digest][]Holder{}
	if s.holders != nil {
		if held, err = s.holders(ctx); err != nil {
			return nil, fmt.Errorf("list image holders: %w", err)
		}
	}
	byID := map[digest.Digest]*Summary{}
	var out []Summary
	for _, img := range recs {
		out = append(out, Summary{Image: img, Containers: len(held[img.ID])})
	}
	for i := range out {
		byID[out[i].ID] = &out[i]
	}
	for r, id := range rf.Refs {
		sum := byID[id]
		if sum == nil {
			continue
		}
		ref, err := reference.ParseFull(r)
		if err != nil {
			continue
		}
		if ref.Digest != "" {
			sum.RepoDigests = append(sum.RepoDigests, ref.Familiar())
		} else {
			sum.RepoTags = append(sum.RepoTags, ref.Familiar())
		}
		if t := rf.Tagged[r]; t.After(sum.LastTagTime) {
			sum.LastTagTime = t
		}
	}
	for i := range out {
		sort.Strings(out[i].RepoTags)
		sort.Strings(out[i].RepoDigests)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Get resolves a name or ID (see Resolve) to its summary.
func (s *Store) Get(ctx context.Context, nameOrID string) (*Summary, error) {
	id, err := s.Resolve(ctx, nameOrID)
	if err != nil {
		return nil, err
	}
	all, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].ID == id {
			return &all[i], nil
		}
	}
	return nil, fmt.Errorf("image %s: %w", nameOrID, ErrNotFound)
}

// Resolve finds the image ID for a reference ("busybox", "x:tag",
// "name@sha256:..."), a full ID ("sha256:<hex>") or a unique ID prefix, the
// way Docker does: a reference first, then an ID.
func (s *Store) Resolve(ctx context.Context, nameOrID string) (digest.Digest, error) {
	rf, err := s.readRefs()
	if err != nil {
		return "", err
	}
	if ref, err := reference.Parse(nameOrID); err == nil {
		if id, ok := rf.Refs[ref.WithDefaultTag().String()]; ok {
			return id, nil
		}
		if ref.Digest != "" && ref.Tag != "" {
			if id, ok := rf.Refs[ref.Name()+"@"+ref.Digest]; ok {
				return id, nil
			}
		}
	}
	hex := strings.TrimPrefix(nameOrID, "sha256:")
	if len(hex) > 0 && len(hex) <= 64 && strings.Trim(hex, "0123456789abcdef") == "" {
		recs, err := s.records()
		if err != nil {
			return "", err
		}
		var found []digest.Digest
		for _, img := range recs {
			if strings.HasPrefix(img.ID.Encoded(), hex) {
				found = append(found, img.ID)
			}
		}
		if len(found) == 1 {
			return found[0], nil
		}
		if len(found) > 1 {
			return "", fmt.Errorf("%w: image ID prefix %q is ambiguous (%d images)", ErrInvalid, nameOrID, len(found))
		}
	}
	if _, err := reference.Parse(nameOrID); err != nil && !strings.HasPrefix(nameOrID, "sha256:") {
		return "", fmt.Errorf("image %q: %w", nameOrID, err)
	}
	return "", fmt.Errorf("image %s: %w", nameOrID, ErrNotFound)
}

// Image returns the record of an image ID.
func (s *Store) Image(ctx context.Context, id digest.Digest) (*Image, error) {
	return s.readRecord(id)
}

// Tag points target (a reference; ":latest" added when it has no tag) at the
// image source names.
func (s *Store) Tag(ctx context.Context, source, target string) error {
	if err := s.tag(ctx, source, target); err != nil {
		return err
	}
	if d, err := s.Resolve(ctx, target); err == nil {
		s.event("tag", string(d), map[string]string{"name": target})
	}
	return nil
}

func (s *Store) tag(ctx context.Context, source, target string) error {
	id, err := s.Resolve(ctx, source)
	if err != nil {
		return err
	}
	ref, err := reference.Parse(target)
	if err != nil {
		return fmt.Errorf("tag %s: %w", target, err)
	}
	if ref.Digest != "" {
		return fmt.Errorf("%w: tag %s: a tag cannot carry a digest", ErrInvalid, target)
	}
	img, err := s.readRecord(id)
	if err != nil {
		return err
	}
	return s.putImage(img, ref.WithDefaultTag())
}

func removeFile(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// event tells Options.Events, if any.
func (s *Store) event(action, id string, attrs map[string]string) {
	if s.events != nil {
		s.events(action, id, attrs)
	}
}
