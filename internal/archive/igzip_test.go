package archive

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// gzipDecoders are the decoders Decompress may use for gzip: Go's always,
// igzip where it is installed (Debian package isal).
func gzipDecoders(t *testing.T) map[string]func(io.Reader) (io.ReadCloser, error) {
	dec := map[string]func(io.Reader) (io.ReadCloser, error){
		"go": func(r io.Reader) (io.ReadCloser, error) {
			gz, err := gzip.NewReader(r)
			if err != nil {
				return nil, err
			}
			return newReadAhead(gz), nil
		},
	}
	if p, err := exec.LookPath("igzip"); err == nil {
		dec["igzip"] = func(r io.Reader) (io.ReadCloser, error) { return startIgzip(p, r) }
	} else {
		t.Log("igzip not installed (apt-get install isal): testing Go's decoder only")
	}
	return dec
}

// brokenReader returns its data, then err.
type brokenReader struct {
	data []byte
	err  error
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, b.err
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

func TestGzipDecoders(t *testing.T) {
	payload := bytes.Repeat([]byte("layer content, several pipe buffers long "), 200000)
	gz := func(parts ...[]byte) []byte {
		var b bytes.Buffer
		for _, p := range parts {
			w := gzip.NewWriter(&b)
			w.Write(p)
			w.Close()
		}
		return b.Bytes()
	}
	whole := gz(payload)
	corrupt := append([]byte(nil), whole...)
	corrupt[len(corrupt)/2] ^= 0xff
	errNet := errors.New("connection reset")
	tests := []struct {
		name    string
		src     func() io.Reader
		want    []byte
		wantErr error // errors.Is; nil: any error when fail is set
		fail    bool
	}{
		{name: "one member", src: func() io.Reader { return bytes.NewReader(whole) }, want: payload},
		{name: "two members", src: func() io.Reader { return bytes.NewReader(gz(payload[:1000], payload[1000:])) }, want: payload},
		{name: "corrupt", src: func() io.Reader { return bytes.NewReader(corrupt) }, fail: true},
		{name: "truncated", src: func() io.Reader { return bytes.NewReader(whole[:len(whole)/2]) }, fail: true},
		{name: "source error", src: func() io.Reader { return &brokenReader{data: whole[:len(whole)/2], err: errNet} }, fail: true, wantErr: errNet},
	}
	for name, open := range gzipDecoders(t) {
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				rc, err := open(tt.src())
				var got []byte
				if err == nil {
					got, err = io.ReadAll(rc)
					rc.Close()
				}
				switch {
				case tt.fail && err == nil:
					t.Fatalf("read %d bytes without an error, want one", len(got))
				case tt.fail && tt.wantErr != nil && !errors.Is(err, tt.wantErr):
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				case !tt.fail && err != nil:
					t.Fatalf("error %v", err)
				case !tt.fail && !bytes.Equal(got, tt.want):
					t.Fatalf("got %d bytes, want %d (the payload)", len(got), len(tt.want))
				}
			})
		}
	}
}

// TestGzipDecoderCloseEarly: closing before the end stops the decoder, and
// then nothing reads the source any more: the caller may read the rest.
func TestGzipDecoderCloseEarly(t *testing.T) {
	payload := []byte(strings.Repeat("0123456789abcdef", 1<<20))
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(payload)
	w.Close()
	for name, open := range gzipDecoders(t) {
		t.Run(name, func(t *testing.T) {
			src := bytes.NewReader(b.Bytes())
			rc, err := open(src)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
				t.Fatalf("read the start: %v", err)
			}
			rc.Close()
			left := src.Len()
			if _, err := rc.Read(make([]byte, 10)); err == nil {
				t.Error("read after Close succeeded")
			}
			if src.Len() != left {
				t.Errorf("the source was read after Close (%d bytes left, then %d)", left, src.Len())
			}
		})
	}
}
