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
// decompressor, not r. Decompression runs in its own goroutine, a few
// blocks ahead of the reader. klauspost/compress decodes both formats, about twice as
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
		return newReadAhead(gz), c, nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxWindow(1<<30))
		if err != nil {
			return nil, c, fmt.Errorf("open zstd stream: %w", err)
		}
		return zr.IOReadCloser(), c, nil
	}
	return io.NopCloser(br), Uncompressed, nil
}

// readAhead runs r in its own goroutine, a few blocks ahead of the reader, so
// that decompression (one core) overlaps with unpacking (the other).
type readAhead struct {
	src    io.ReadCloser
	full   chan []byte // blocks read, in order; closed at the end
	free   chan []byte // blocks to fill again
	done   chan struct{}
	err    error  // set before full is closed
	cur    []byte // the block being read, from off on
	off    int
	closed bool
}

const (
	aheadBlock  = 1 << 20
	aheadBlocks = 4
)

func newReadAhead(src io.ReadCloser) *readAhead {
	ra := &readAhead{
		src:  src,
		full: make(chan []byte, aheadBlocks),
		free: make(chan []byte, aheadBlocks),
		done: make(chan struct{}),
	}
	for range aheadBlocks {
		ra.free <- make([]byte, aheadBlock)
	}
	go ra.fill()
	return ra
}

func (ra *readAhead) fill() {
	defer close(ra.full)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.done:
			return
		}
		n, err := io.ReadFull(ra.src, buf[:cap(buf)])
		if n > 0 {
			select {
			case ra.full <- buf[:n]:
			case <-ra.done:
				return
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			ra.err = io.EOF
			return
		}
		if err != nil {
			ra.err = err
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	if ra.off == len(ra.cur) {
		if ra.cur != nil {
			ra.free <- ra.cur[:0]
			ra.cur, ra.off = nil, 0
		}
		buf, ok := <-ra.full
		if !ok {
			return 0, ra.err
		}
		ra.cur, ra.off = buf, 0
	}
	n := copy(p, ra.cur[ra.off:])
	ra.off += n
	return n, nil
}

// Close stops the goroutine and closes the source.
func (ra *readAhead) Close() error {
	if ra.closed {
		return nil
	}
	ra.closed = true
	close(ra.done)
	for range ra.full { // let fill see done and exit
	}
	return ra.src.Close()
}
