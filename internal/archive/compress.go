package archive

import (
	"bufio"
	"bytes"
	"errors"
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
// less often than they are missing). See Decompress.
func DecompressStream(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, Uncompressed, fmt.Errorf("read layer header: %w", err)
	}
	c := DetectCompression(magic)
	rc, err := Decompress(br, c)
	return rc, c, err
}

// Decompress returns the uncompressed content of r, compressed with c.
// Closing the result releases the decompressor, not r; once Close returns
// (or a read has returned an error or io.EOF), nothing reads r any more, so
// the caller may read what is left of it.
//
// Decompression runs beside the reader, so that it overlaps with unpacking:
// gzip in a goroutine a few blocks ahead, or, where ISA-L's igzip is
// installed, in an igzip process (see GzipDecoder); zstd in the decoder's
// own goroutines.
func Decompress(r io.Reader, c Compression) (io.ReadCloser, error) {
	switch c {
	case Gzip:
		if p := GzipDecoder(); p != "" {
			rc, err := startIgzip(p, r)
			if err != nil {
				return nil, fmt.Errorf("open gzip stream: %w", err)
			}
			return rc, nil
		}
		br, ok := r.(*bufio.Reader)
		if !ok {
			br = bufio.NewReaderSize(r, 64<<10)
		}
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("open gzip stream: %w", err)
		}
		return newReadAhead(gz), nil
	case Zstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxWindow(1<<30))
		if err != nil {
			return nil, fmt.Errorf("open zstd stream: %w", err)
		}
		return zr.IOReadCloser(), nil
	case Uncompressed:
		return io.NopCloser(r), nil
	}
	return nil, fmt.Errorf("unknown compression %v", c)
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
		// Fill the block; io.ReadFull would turn the source's own
		// io.ErrUnexpectedEOF (a truncated stream) into a clean end.
		n := 0
		var err error
		for n < cap(buf) && err == nil {
			var k int
			k, err = ra.src.Read(buf[n:cap(buf)])
			n += k
		}
		if n > 0 {
			select {
			case ra.full <- buf[:n]:
			case <-ra.done:
				return
			}
		}
		if err != nil {
			ra.err = err
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	if ra.closed {
		return 0, errors.New("read after close")
	}
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

// Close stops the goroutine, once its current read is done, and closes the
// source.
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
