package image

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// slowReader hands out its data a little at a time.
type slowReader struct {
	data []byte
	err  error // after the data (io.EOF when nil)
	read int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 65519)], s.data)
	s.data = s.data[n:]
	s.read += n
	return n, nil
}

func TestDownloadAhead(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), ((downloadBlocks+2)*downloadBlock)/10+123) // more than the download may run ahead
	errNet := errors.New("connection reset")
	errBlob := errors.New("digest mismatch")
	tests := []struct {
		name      string
		srcErr    error // after the payload
		finishErr error
		stopAfter int // bytes read before Stop (-1: read everything)
		wantRead  error
	}{
		{name: "whole", stopAfter: -1},
		{name: "whole, finish fails", finishErr: errBlob, stopAfter: -1},
		{name: "source breaks", srcErr: errNet, stopAfter: -1, wantRead: errNet},
		{name: "reader stops early", stopAfter: 100},
		{name: "reader stops early, source breaks", srcErr: errNet, stopAfter: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &slowReader{data: payload, err: tt.srcErr}
			finished := false
			d := startDownload(src, func() error { finished = true; return tt.finishErr })
			var got []byte
			var err error
			if tt.stopAfter < 0 {
				got, err = io.ReadAll(d)
			} else {
				got = make([]byte, tt.stopAfter)
				_, err = io.ReadFull(d, got)
				d.Stop()
			}
			readErr, finishErr := d.Wait()
			if !errors.Is(err, tt.wantRead) {
				t.Errorf("reader error = %v, want %v", err, tt.wantRead)
			}
			if !bytes.Equal(got, payload[:len(got)]) || (tt.stopAfter < 0 && tt.srcErr == nil && len(got) != len(payload)) {
				t.Errorf("reader got %d bytes that are not the payload's first", len(got))
			}
			if src.read != len(payload) {
				t.Errorf("source read %d of %d bytes, want all (the blob is always read to its end)", src.read, len(payload))
			}
			if !errors.Is(readErr, tt.srcErr) {
				t.Errorf("Wait read error = %v, want %v", readErr, tt.srcErr)
			}
			wantFinish := tt.srcErr == nil
			if finished != wantFinish || !errors.Is(finishErr, tt.finishErr) {
				t.Errorf("finish ran: %v (%v), want %v (%v)", finished, finishErr, wantFinish, tt.finishErr)
			}
		})
	}
}
