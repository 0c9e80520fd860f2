package archive

import (
	"archive/tar"
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// benchLayer is a ~200 MB layer of mixed files, built once: many small
// files (configuration, scripts, headers: 1-64 KiB) holding about half the
// bytes, and some large ones (libraries, binaries: 2-16 MiB). Contents mix
// text-like and random bytes, so they compress about as real layers do.
var benchLayer = sync.OnceValues(func() (layer, gz []byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"usr", "lib", "share", "config", "return", "static", "int", "the", "value", "error", "\n", "\t", "{", "}"}
	content := func(n int) []byte {
		b := make([]byte, 0, n)
		for len(b) < n {
			if rng.IntN(160) == 0 { // a stretch of random bytes (code, data)
				k := min(n-len(b), 16+rng.IntN(256))
				for range k {
					b = append(b, byte(rng.Uint32()))
				}
				continue
			}
			b = append(b, words[rng.IntN(len(words))]...)
			b = append(b, ' ')
		}
		return b[:n]
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	total := 0
	for d := 0; total < 200<<20; d++ {
		dir := fmt.Sprintf("usr/share/pkg%03d/", d)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: mtime})
		for f := range 40 {
			n := 1024 + rng.IntN(64<<10)
			if f == 0 && d%2 == 0 {
				n = 2<<20 + rng.IntN(14<<20)
			}
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%sfile%02d", dir, f), Mode: 0o644, Size: int64(n), ModTime: mtime})
			tw.Write(content(n))
			total += n
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: dir + "link", Linkname: "file00", ModTime: mtime})
	}
	tw.Close()
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.DefaultCompression)
	zw.Write(buf.Bytes())
	zw.Close()
	return buf.Bytes(), z.Bytes()
})

func benchApply(b *testing.B, open func() io.Reader, parallel int) {
	layer, _ := benchLayer()
	b.SetBytes(int64(len(layer) * parallel))
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		base := filepath.Join(b.TempDir(), fmt.Sprint(i))
		dirs := make([]string, parallel)
		for j := range dirs {
			dirs[j] = filepath.Join(base, fmt.Sprint(j))
			os.MkdirAll(dirs[j], 0o755)
		}
		b.StartTimer()
		var wg sync.WaitGroup
		for _, d := range dirs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := Apply(context.Background(), d, open(), ApplyOptions{NoLchown: os.Geteuid() != 0}); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		os.RemoveAll(base)
		b.StartTimer()
	}
}

// BenchmarkApply measures unpack throughput (MB/s of uncompressed layer).
func BenchmarkApply(b *testing.B) {
	layer, gz := benchLayer()
	b.Logf("layer: %d MB uncompressed, %d MB gzip", len(layer)>>20, len(gz)>>20)
	b.Run("tar", func(b *testing.B) {
		benchApply(b, func() io.Reader { return bytes.NewReader(layer) }, 1)
	})
	b.Run("gzip", func(b *testing.B) {
		benchApply(b, func() io.Reader {
			r, _, err := DecompressStream(bytes.NewReader(gz))
			if err != nil {
				b.Fatal(err)
			}
			return r
		}, 1)
	})
	b.Run("gzip-2-layers-at-once", func(b *testing.B) {
		benchApply(b, func() io.Reader {
			r, _, _ := DecompressStream(bytes.NewReader(gz))
			return r
		}, 2)
	})
}

// BenchmarkDecompress compares gzip decoders and zstd on the same layer.
func BenchmarkDecompress(b *testing.B) {
	layer, gz := benchLayer()
	var zs bytes.Buffer
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(layer)
	zw.Close()
	cases := []struct {
		name string
		open func() io.Reader
	}{
		{"compress-gzip", func() io.Reader { r, _ := stdgzip.NewReader(bytes.NewReader(gz)); return r }},
		{"klauspost-gzip", func() io.Reader { r, _ := gzip.NewReader(bytes.NewReader(gz)); return r }},
		{"klauspost-zstd", func() io.Reader { r, _, _ := DecompressStream(bytes.NewReader(zs.Bytes())); return r }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(layer)))
			for range b.N {
				if _, err := io.Copy(io.Discard, c.open()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
