package content

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Writer streams one blob into the store. It is not safe for concurrent use.
// Close it in every case (Commit does not close it).
type Writer struct {
	s        *Store
	ref      string
	dir      string
	expected digest.Digest
	total    int64
	lock     *fileLock
	f        *os.File
	buf      *bufio.Writer
	h        hash.Hash
	offset   int64
	// resumedAt is the offset the writer resumed at.
	resumedAt int64
	done      bool
}

// Writer opens the ingest ref for the blob expected ("" when unknown) of size
// bytes (-1 when unknown). If the blob is already committed it returns an
// error wrapping ErrAlreadyExists. If another Writer holds ref, it waits for
// it (then usually finds the blob committed). An earlier, interrupted ingest
// of the same ref and blob is resumed: Offset tells how many bytes are
// already there, and the caller continues from there (or calls Reset).
func (s *Store) Writer(ctx context.Context, ref string, expected digest.Digest, size int64) (*Writer, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: content writer needs a ref", ErrInvalid)
	}
	if expected != "" {
		if err := validate(expected); err != nil {
			return nil, fmt.Errorf("content writer %s: %w", ref, err)
		}
		if s.Exists(expected) {
			return nil, fmt.Errorf("blob %s: %w", expected, ErrAlreadyExists)
		}
	}
	key := ingestKey(ref)
	l, err := lock(ctx, s.ingestLockPath(key))
	if err != nil {
		return nil, fmt.Errorf("content writer %s: %w", ref, err)
	}
	// Another writer may have committed while we waited.
	if expected != "" && s.Exists(expected) {
		l.unlinkAndRelease()
		return nil, fmt.Errorf("blob %s: %w", expected, ErrAlreadyExists)
	}
	w := &Writer{s: s, ref: ref, dir: filepath.Join(s.ingestRoot(), key), expected: expected, total: size, lock: l, h: sha256.New()}
	if err := w.open(); err != nil {
		l.release()
		return nil, err
	}
	return w, nil
}

// open resumes the ingest when it is for the same blob, else starts afresh.
func (w *Writer) open() error {
	prevDigest, prevTotal := readExpected(w.dir)
	resume := prevDigest == w.expected && prevTotal == w.total
	if !resume {
		if err := os.RemoveAll(w.dir); err != nil {
			return fmt.Errorf("clear ingest %s: %w", w.ref, err)
		}
	}
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return fmt.Errorf("create ingest %s: %w", w.ref, err)
	}
	if !resume {
		if err := os.WriteFile(filepath.Join(w.dir, "ref"), []byte(w.ref), 0o600); err != nil {
			return fmt.Errorf("write ingest %s: %w", w.ref, err)
		}
		exp := fmt.Sprintf("%s %d", w.expected, w.total)
		if err := os.WriteFile(filepath.Join(w.dir, "expected"), []byte(exp), 0o600); err != nil {
			return fmt.Errorf("write ingest %s: %w", w.ref, err)
		}
	}
	f, err := os.OpenFile(filepath.Join(w.dir, "data"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open ingest %s: %w", w.ref, err)
	}
	w.f = f
	// Rebuild the hash state from the bytes already there. A size past the
	// expected total cannot be right: start over.
	n, err := io.Copy(w.h, f)
	if err != nil {
		f.Close()
		return fmt.Errorf("read ingest %s: %w", w.ref, err)
	}
	w.offset, w.resumedAt = n, n
	if w.total >= 0 && n > w.total {
		if err := w.Reset(); err != nil {
			f.Close()
			return err
		}
	}
	w.buf = bufio.NewWriterSize(f, 1<<20)
	return nil
}

func readExpected(dir string) (digest.Digest, int64) {
	b, err := os.ReadFile(filepath.Join(dir, "expected"))
	if err != nil {
		return "invalid", -2
	}
	d, sz, _ := strings.Cut(string(b), " ")
	n, err := strconv.ParseInt(sz, 10, 64)
	if err != nil {
		return "invalid", -2
	}
	return digest.Digest(d), n
}

// Ref is the writer's reference.
func (w *Writer) Ref() string { return w.ref }

// Offset is the number of bytes written so far (including resumed ones).
func (w *Writer) Offset() int64 { return w.offset }

// Digest is the digest of the bytes written so far.
func (w *Writer) Digest() digest.Digest { return digest.NewDigest(digest.SHA256, w.h) }

// Prefix reads the bytes that were already there when the writer resumed
// (the first Offset() bytes at open time).
func (w *Writer) Prefix() io.Reader { return io.NewSectionReader(w.f, 0, w.resumedAt) }

// Reset drops everything written so far (a source that cannot resume).
func (w *Writer) Reset() error {
	if w.buf != nil {
		w.buf.Reset(w.f)
	}
	if err := w.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate ingest %s: %w", w.ref, err)
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("seek ingest %s: %w", w.ref, err)
	}
	w.h.Reset()
	w.offset, w.resumedAt = 0, 0
	return nil
}

// Write appends p to the blob.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("write ingest %s: writer is closed", w.ref)
	}
	if w.total >= 0 && w.offset+int64(len(p)) > w.total {
		return 0, fmt.Errorf("%w: blob %s (%s) is longer than its expected %d bytes", ErrInvalid, w.expected, w.ref, w.total)
	}
	n, err := w.buf.Write(p)
	w.h.Write(p[:n])
	w.offset += int64(n)
	if err != nil {
		return n, fmt.Errorf("write ingest %s: %w", w.ref, err)
	}
	return n, nil
}

// Commit verifies size and digest and moves the blob into place. A mismatch
// discards the ingest (its bytes are wrong); a short blob keeps it so a
// later Writer can resume. If the same blob was committed meanwhile by
// another writer, Commit succeeds.
func (w *Writer) Commit(ctx context.Context) error {
	if w.done {
		return fmt.Errorf("commit ingest %s: writer is closed", w.ref)
	}
	if err := w.buf.Flush(); err != nil {
		return fmt.Errorf("write ingest %s: %w", w.ref, err)
	}
	if w.total >= 0 && w.offset != w.total {
		return fmt.Errorf("%w: blob %s (%s) is truncated: %d of %d bytes", ErrInvalid, w.expected, w.ref, w.offset, w.total)
	}
	got := w.Digest()
	if w.expected != "" && got != w.expected {
		w.discard()
		return fmt.Errorf("%w: blob %s (%s): content has digest %s", ErrInvalid, w.expected, w.ref, got)
	}
	if !w.s.NoSync {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("sync ingest %s: %w", w.ref, err)
		}
	}
	if err := w.f.Chmod(0o444); err != nil {
		return fmt.Errorf("chmod ingest %s: %w", w.ref, err)
	}
	target, _ := w.s.BlobPath(got)
	if err := os.Rename(filepath.Join(w.dir, "data"), target); err != nil {
		return fmt.Errorf("commit blob %s (%s): %w", got, w.ref, err)
	}
	w.discard()
	return nil
}

// discard removes the ingest and ends the writer.
func (w *Writer) discard() {
	w.f.Close()
	os.RemoveAll(w.dir)
	w.done = true
	w.lock.unlinkAndRelease()
}

// Close releases the ingest. Uncommitted bytes stay for a later resume.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	ferr := w.buf.Flush()
	if err := w.f.Close(); ferr == nil {
		ferr = err
	}
	if w.offset == 0 {
		// nothing to resume
		os.RemoveAll(w.dir)
		w.lock.unlinkAndRelease()
		return nil
	}
	w.lock.release()
	if ferr != nil && !errors.Is(ferr, fs.ErrClosed) {
		return fmt.Errorf("close ingest %s: %w", w.ref, ferr)
	}
	return nil
}
