// Package content is berth's content-addressed blob store: manifests, image
// configs and compressed layers, each stored once under its sha256 digest and
// verified as it is written.
//
// On-disk schema (root = <berth root>/content):
//
//	blobs/sha256/<hex>        committed blobs, read-only, never modified
//	ingest/<key>/ref          the writer's reference (free text: "layer-sha256:...")
//	ingest/<key>/data         bytes written so far (resumable)
//	ingest/<key>/expected     expected digest and size: "<digest> <size>"
//	ingest/<key>.lock         flock'd while a Writer owns the ingest
//
// where <key> is the hex sha256 of the ref. A blob appears under its digest
// only through rename(2) of a fully written, fsync'd and verified ingest file,
// so a crash leaves at worst an ingest directory (resumed by the next Writer
// of the same ref, or removed by Prune), never a corrupt blob. Two writers of
// the same ref are serialized by the lock file; two writers of the same blob
// under different refs both verify and the second rename replaces identical
// bytes.
package content

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	// ErrNotFound: no blob (or ingest) under that digest (ref).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: the blob is already committed; a writer has nothing to do.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalid: bad digest, bad size, content that does not match.
	ErrInvalid = errors.New("invalid content")
)

// Info describes a committed blob.
type Info struct {
	Digest    digest.Digest
	Size      int64
	CreatedAt time.Time
}

// Store is a content store rooted at one directory. It is safe for concurrent
// use by several goroutines and several processes.
type Store struct {
	root string
	// NoSync skips fsync before commit; for tests and benchmarks on scratch
	// storage only (a crash may then leave a truncated blob under its digest).
	NoSync bool
}

// New opens (creating if needed) the content store under <root>/content.
func New(root string) (*Store, error) {
	s := &Store{root: filepath.Join(root, "content")}
	for _, d := range []string{s.blobDir(), s.ingestRoot()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create content store dir %s: %w", d, err)
		}
	}
	return s, nil
}

// Root is the store's directory (<berth root>/content).
func (s *Store) Root() string { return s.root }

func (s *Store) blobDir() string    { return filepath.Join(s.root, "blobs", "sha256") }
func (s *Store) ingestRoot() string { return filepath.Join(s.root, "ingest") }

// BlobPath is where the blob d lives (whether or not it exists). Callers must
// treat the file as read-only.
func (s *Store) BlobPath(d digest.Digest) (string, error) {
	if err := validate(d); err != nil {
		return "", err
	}
	return filepath.Join(s.blobDir(), d.Encoded()), nil
}

func validate(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: digest %q: %v", ErrInvalid, d, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return fmt.Errorf("%w: digest %q: only sha256 is supported", ErrInvalid, d)
	}
	return nil
}

// Info stats the blob d.
func (s *Store) Info(ctx context.Context, d digest.Digest) (Info, error) {
	p, err := s.BlobPath(d)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Info{}, fmt.Errorf("blob %s: %w", d, ErrNotFound)
		}
		return Info{}, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return Info{Digest: d, Size: fi.Size(), CreatedAt: fi.ModTime()}, nil
}

// Exists reports whether the blob d is committed.
func (s *Store) Exists(d digest.Digest) bool {
	p, err := s.BlobPath(d)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// ReaderAt is an open blob.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

type fileReaderAt struct {
	*os.File
	size int64
}

func (f fileReaderAt) Size() int64 { return f.size }

// ReaderAt opens the blob d for random access.
func (s *Store) ReaderAt(ctx context.Context, d digest.Digest) (ReaderAt, error) {
	f, err := s.open(d)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return fileReaderAt{File: f, size: fi.Size()}, nil
}

// Open opens the blob d for reading from the start.
func (s *Store) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	return s.open(d)
}

func (s *Store) open(d digest.Digest) (*os.File, error) {
	p, err := s.BlobPath(d)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
		}
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	return f, nil
}

// ReadBlob reads a whole (small) blob: a manifest, a config.
func (s *Store) ReadBlob(ctx context.Context, d digest.Digest) ([]byte, error) {
	f, err := s.open(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}
	return b, nil
}

// Delete removes the blob d. Deleting a missing blob is ErrNotFound.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	p, err := s.BlobPath(d)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete blob %s: %w", d, ErrNotFound)
		}
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	return nil
}

// Walk calls fn for every committed blob, in directory order.
func (s *Store) Walk(ctx context.Context, fn func(Info) error) error {
	ents, err := os.ReadDir(s.blobDir())
	if err != nil {
		return fmt.Errorf("list blobs in %s: %w", s.blobDir(), err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			continue // a temp file, or a stranger
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("stat blob %s: %w", d, err)
		}
		if err := fn(Info{Digest: d, Size: fi.Size(), CreatedAt: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// WriteBlob stores the content of r as the blob expected (size -1 when
// unknown). A blob that is already there is success.
func (s *Store) WriteBlob(ctx context.Context, ref string, r io.Reader, expected digest.Digest, size int64) error {
	w, err := s.Writer(ctx, ref, expected, size)
	if errors.Is(err, ErrAlreadyExists) {
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	if w.Offset() > 0 {
		w.Reset()
	}
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("write blob %s (%s): %w", expected, ref, err)
	}
	return w.Commit(ctx)
}

// PruneOptions says what Prune may remove.
type PruneOptions struct {
	// Keep tells whether a blob is in use; blobs for which it is false are removed.
	// nil keeps every blob (only ingests are pruned).
	Keep func(digest.Digest) bool
	// IngestAge is the age above which an unlocked ingest is abandoned
	// (0: every unlocked ingest).
	IngestAge time.Duration
}

// Prune is the garbage collector's hook: it removes the blobs that opts.Keep
// rejects and the abandoned ingests (not locked by a writer and older than
// opts.IngestAge). It returns the digests removed and the bytes freed.
func (s *Store) Prune(ctx context.Context, opts PruneOptions) ([]digest.Digest, int64, error) {
	var removed []digest.Digest
	var freed int64
	if opts.Keep != nil {
		err := s.Walk(ctx, func(i Info) error {
			if opts.Keep(i.Digest) {
				return nil
			}
			if err := s.Delete(ctx, i.Digest); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			removed = append(removed, i.Digest)
			freed += i.Size
			return nil
		})
		if err != nil {
			return removed, freed, err
		}
	}
	ents, err := os.ReadDir(s.ingestRoot())
	if err != nil {
		return removed, freed, fmt.Errorf("list ingests: %w", err)
	}
	for _, e := range ents {
		key, isLock := strings.CutSuffix(e.Name(), ".lock")
		if isLock || !e.IsDir() {
			continue
		}
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < opts.IngestAge {
			continue
		}
		l, err := tryLock(s.ingestLockPath(key))
		if err != nil || l == nil {
			continue // owned by a live writer
		}
		n := dirSize(filepath.Join(s.ingestRoot(), key))
		if err := os.RemoveAll(filepath.Join(s.ingestRoot(), key)); err == nil {
			freed += n
		}
		l.unlinkAndRelease()
	}
	return removed, freed, nil
}

// IngestStatus describes an in-progress (or abandoned) write.
type IngestStatus struct {
	Ref      string
	Offset   int64
	Total    int64
	Expected digest.Digest
	Updated  time.Time
}

// Ingests lists the in-progress writes.
func (s *Store) Ingests() ([]IngestStatus, error) {
	ents, err := os.ReadDir(s.ingestRoot())
	if err != nil {
		return nil, fmt.Errorf("list ingests: %w", err)
	}
	var out []IngestStatus
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(s.ingestRoot(), e.Name())
		ref, err := os.ReadFile(filepath.Join(dir, "ref"))
		if err != nil {
			continue
		}
		st := IngestStatus{Ref: string(ref)}
		st.Expected, st.Total = readExpected(dir)
		if fi, err := os.Stat(filepath.Join(dir, "data")); err == nil {
			st.Offset, st.Updated = fi.Size(), fi.ModTime()
		}
		out = append(out, st)
	}
	return out, nil
}

// Abort removes the ingest of ref, waiting for its writer to release it.
func (s *Store) Abort(ctx context.Context, ref string) error {
	key := ingestKey(ref)
	l, err := lock(ctx, s.ingestLockPath(key))
	if err != nil {
		return fmt.Errorf("abort ingest %s: %w", ref, err)
	}
	defer l.unlinkAndRelease()
	dir := filepath.Join(s.ingestRoot(), key)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ingest %s: %w", ref, ErrNotFound)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("abort ingest %s: %w", ref, err)
	}
	return nil
}

func ingestKey(ref string) string {
	h := sha256.Sum256([]byte(ref))
	return hex.EncodeToString(h[:])
}

func (s *Store) ingestLockPath(key string) string {
	return filepath.Join(s.ingestRoot(), key+".lock")
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
