package content

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// TestWriterBypassesPageCache writes blobs of sizes around the writer's
// block and buffer sizes in uneven pieces: each must commit with its exact
// content and, where the filesystem takes O_DIRECT, its whole blocks must
// not be left in the page cache (only the last partial one is written
// buffered). An interrupted ingest resumes from what reached the file.
func TestWriterBypassesPageCache(t *testing.T) {
	ctx := context.Background()
	probe, err := os.Create(filepath.Join(t.TempDir(), "probe"))
	if err != nil {
		t.Fatal(err)
	}
	_, directErr := unix.FcntlInt(probe.Fd(), unix.F_SETFL, unix.O_WRONLY|unix.O_DIRECT)
	probe.Close()
	if directErr != nil {
		t.Logf("the test directory's filesystem refuses O_DIRECT (%v): content checked only", directErr)
	}
	for _, size := range []int{1, directAlign - 1, directAlign, 1 << 20, 1<<20 + 1, 5<<20 + 4097} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(i*13 + i>>12)
			}
			dgst := digest.FromBytes(data)
			s := newStore(t)
			w, err := s.Writer(ctx, "ref", dgst, int64(size))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			for rest := data; len(rest) > 0; {
				k := min(len(rest), 300001)
				if _, err := w.Write(rest[:k]); err != nil {
					t.Fatal(err)
				}
				rest = rest[k:]
			}
			if err := w.Commit(ctx); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			p, _ := s.BlobPath(dgst)
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("blob of %d bytes read back: %d bytes, %v; want the content written", size, len(got), err)
			}
			if directErr == nil && size >= directAlign {
				// Reading the file above filled the cache: measure on a fresh write.
				if k := cachedPages(t, data); k > 1 {
					t.Errorf("blob of %d bytes: %d pages in the page cache after commit, want at most 1", size, k)
				}
			}
		})
	}
	t.Run("resume", func(t *testing.T) {
		data := bytes.Repeat([]byte("0123456789abcdef"), 300000) // 4.8 MB
		dgst := digest.FromBytes(data)
		s := newStore(t)
		w, err := s.Writer(ctx, "ref", dgst, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data[:1<<20+1000]); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		w, err = s.Writer(ctx, "ref", dgst, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		prefix, err := io.ReadAll(w.Prefix())
		if err != nil || !bytes.Equal(prefix, data[:w.Offset()]) || w.Offset() != 1<<20+1000 {
			t.Fatalf("resumed at %d with a prefix of %d bytes (%v), want %d bytes of the blob", w.Offset(), len(prefix), err, 1<<20+1000)
		}
		if _, err := w.Write(data[w.Offset():]); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatalf("Commit after resume: %v", err)
		}
	})
}

// cachedPages writes data as a new blob into a fresh store and counts its
// pages in the page cache after the commit.
func cachedPages(t *testing.T, data []byte) int {
	t.Helper()
	s := newStore(t)
	dgst := digest.FromBytes(data)
	w, err := s.Writer(context.Background(), "ref", dgst, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	p, _ := s.BlobPath(dgst)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, len(data), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(data)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	return bytes.Count(vec, []byte{1})
}
