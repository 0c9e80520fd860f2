package content

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func blobs(t *testing.T, s *Store) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	if err := s.Walk(context.Background(), func(i Info) error { out = append(out, i.Digest); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteCommitRead(t *testing.T) {
	ctx := context.Background()
	data := bytes.Repeat([]byte("berth "), 100000)
	dgst := digest.FromBytes(data)
	tests := []struct {
		name     string
		expected digest.Digest
		size     int64
	}{
		{"digest and size known", dgst, int64(len(data))},
		{"size unknown", dgst, -1},
		{"nothing known", "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			w, err := s.Writer(ctx, "ref-1", tt.expected, tt.size)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(ctx); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			got, err := s.ReadBlob(ctx, dgst)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("ReadBlob(%s) = %d bytes, %v; want the %d bytes written", dgst, len(got), err, len(data))
			}
			info, err := s.Info(ctx, dgst)
			if err != nil || info.Size != int64(len(data)) {
				t.Errorf("Info(%s) = %+v, %v", dgst, info, err)
			}
			ra, err := s.ReaderAt(ctx, dgst)
			if err != nil {
				t.Fatal(err)
			}
			p := make([]byte, 6)
			if _, err := ra.ReadAt(p, 6); err != nil || string(p) != "berth " || ra.Size() != int64(len(data)) {
				t.Errorf("ReadAt = %q, %v (size %d)", p, err, ra.Size())
			}
			ra.Close()
			if ing, _ := s.Ingests(); len(ing) != 0 {
				t.Errorf("ingests left after commit: %+v", ing)
			}
			// A second writer of the same blob has nothing to do.
			if _, err := s.Writer(ctx, "ref-2", dgst, -1); !errors.Is(err, ErrAlreadyExists) {
				t.Errorf("Writer for a committed blob: err = %v, want ErrAlreadyExists", err)
			}
		})
	}
}

func TestBadContentIsNeverCommitted(t *testing.T) {
	ctx := context.Background()
	data := []byte("the real layer bytes")
	dgst := digest.FromBytes(data)
	tests := []struct {
		name      string
		write     []byte
		size      int64
		wantMsg   string
		keepsData bool // the ingest is kept for resume
	}{
		{"wrong content", []byte("the fake layer bytes"), int64(len(data)), "content has digest", false},
		{"truncated", data[:5], int64(len(data)), "is truncated: 5 of 20 bytes", true},
		{"truncated, size unknown", data[:5], -1, "content has digest", false},
		{"too long", append(append([]byte{}, data...), 'x'), int64(len(data)), "longer than its expected", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			w, err := s.Writer(ctx, "layer", dgst, tt.size)
			if err != nil {
				t.Fatal(err)
			}
			_, werr := w.Write(tt.write)
			cerr := w.Commit(ctx)
			w.Close()
			err = errors.Join(werr, cerr)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("write+commit error = %v, want ErrInvalid containing %q", err, tt.wantMsg)
			}
			if !strings.Contains(err.Error(), dgst.String()) {
				t.Errorf("error %q does not name the blob %s", err, dgst)
			}
			if got := blobs(t, s); len(got) != 0 {
				t.Errorf("blobs after a failed commit: %v, want none", got)
			}
			ing, _ := s.Ingests()
			if tt.keepsData != (len(ing) == 1) {
				t.Errorf("ingests after failure = %+v, want kept=%v", ing, tt.keepsData)
			}
		})
	}
}

func TestResume(t *testing.T) {
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789"), 5000)
	dgst := digest.FromBytes(data)
	s := newStore(t)

	// An interrupted download: half the bytes, then the process goes away.
	w, err := s.Writer(ctx, "layer-x", dgst, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:20000])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// The next writer of the same ref and blob continues where it stopped.
	w, err = s.Writer(ctx, "layer-x", dgst, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 20000 {
		t.Fatalf("resumed Offset() = %d, want 20000", w.Offset())
	}
	w.Write(data[w.Offset():])
	if err := w.Commit(ctx); err != nil {
		t.Fatalf("Commit after resume: %v", err)
	}
	w.Close()
	if got, _ := s.ReadBlob(ctx, dgst); !bytes.Equal(got, data) {
		t.Errorf("resumed blob differs from the source")
	}

	// A writer of the same ref for another blob starts afresh.
	other := []byte("other")
	w, _ = s.Writer(ctx, "layer-y", digest.FromBytes(data[:10]), 10)
	w.Write(data[:3])
	w.Close()
	w, err = s.Writer(ctx, "layer-y", digest.FromBytes(other), 5)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 0 {
		t.Errorf("writer for a different blob resumed at %d, want 0", w.Offset())
	}
	w.Write(other)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
}

func TestConcurrentWritersOfOneBlob(t *testing.T) {
	ctx := context.Background()
	data := bytes.Repeat([]byte("concurrent"), 200000)
	dgst := digest.FromBytes(data)
	s := newStore(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// half the writers share a ref (serialized by its lock), half have their own
			ref := "same-ref"
			if i%2 == 1 {
				ref = "ref-" + string(rune('a'+i))
			}
			errs[i] = s.WriteBlob(ctx, ref, bytes.NewReader(data), dgst, int64(len(data)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if got, _ := s.ReadBlob(ctx, dgst); !bytes.Equal(got, data) {
		t.Errorf("blob differs after concurrent writes")
	}
	if ing, _ := s.Ingests(); len(ing) != 0 {
		t.Errorf("ingests left: %+v", ing)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	keep, drop := []byte("keep me"), []byte("drop me")
	for _, b := range [][]byte{keep, drop} {
		if err := s.WriteBlob(ctx, string(b), bytes.NewReader(b), digest.FromBytes(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	// an empty ingest goes away on Close
	w, _ := s.Writer(ctx, "empty", "", -1)
	w.Close()
	if ing, _ := s.Ingests(); len(ing) != 0 {
		t.Errorf("an empty ingest was kept: %+v", ing)
	}
	// an abandoned ingest and a live one
	w, _ = s.Writer(ctx, "abandoned", "", -1)
	w.Write([]byte("junk"))
	w.Close()
	live, _ := s.Writer(ctx, "live", "", -1)
	live.Write([]byte("in progress"))
	defer live.Close()

	removed, freed, err := s.Prune(ctx, PruneOptions{Keep: func(d digest.Digest) bool { return d == digest.FromBytes(keep) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != digest.FromBytes(drop) {
		t.Errorf("Prune removed %v, want [%s]", removed, digest.FromBytes(drop))
	}
	if freed < int64(len(drop)) {
		t.Errorf("Prune freed %d bytes, want at least %d", freed, len(drop))
	}
	if got := blobs(t, s); len(got) != 1 || got[0] != digest.FromBytes(keep) {
		t.Errorf("blobs after prune = %v", got)
	}
	ing, _ := s.Ingests()
	if len(ing) != 1 || ing[0].Ref != "live" {
		t.Errorf("ingests after prune = %+v, want only the live one", ing)
	}
}

func TestInvalidDigestsAndMissingBlobs(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Writer(ctx, "x", "sha256:nothex", 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("Writer with a bad digest: %v, want ErrInvalid", err)
	}
	missing := digest.FromString("missing")
	if _, err := s.Info(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("Info(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Open(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open(missing) = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete(missing) = %v, want ErrNotFound", err)
	}
	// a stray file in the blob dir is not a blob
	os.WriteFile(filepath.Join(s.Root(), "blobs", "sha256", ".tmp-123"), nil, 0o600)
	if got := blobs(t, s); len(got) != 0 {
		t.Errorf("Walk listed %v, want nothing", got)
	}
}
