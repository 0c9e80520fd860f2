package archive

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression is the compression of a layer stream.
type Compression int

const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// DetectCompression recognizes gzip and zstd by their magic numbers at the
// start of b; anything else is taken as uncompressed.
func DetectCompression(b []byte) Compression {
	switch {
	case bytes.HasPrefix(b, gzipMagic):
		return Gzip
	case bytes.HasPrefix(b, zstdMagic):
		return Zstd
	}
	return Uncompressed
}

// DecompressStream returns the uncompressed content of r, a layer that is
// gzip, zstd or not compressed, chosen by its first bytes (media types lie
// less often than they are missing). Closing the result releases the
// decompressor, not r. klauspost/compress decodes both formats, about twice as
// fast as compress/gzip for gzip.
func DecompressStream(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, Uncompressed, fmt.Errorf("read layer header: %w", err)
	}
	switch c := DetectCompression(magic); c {
	case Gzip:
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("open gzip stream: %w", err)
		}
		return gz, c, nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxWindow(1<<30))
		if err != nil {
			return nil, c, fmt.Errorf("open zstd stream: %w", err)
		}
		return zr.IOReadCloser(), c, nil
	}
	return io.NopCloser(br), Uncompressed, nil
}
