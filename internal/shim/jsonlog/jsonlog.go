// Package jsonlog writes and parses a container's output in Docker's
// json-file log format: one JSON object per line,
//
//	{"log":"hello\n","stream":"stdout","time":"2026-11-27T21:03:41.123456789Z"}
//
// where "log" is one line of output with its newline (a line longer than
// MaxLine is cut into records of MaxLine bytes; only the last piece ends
// with a newline, and output that ends without one gives a record without
// one), "stream" is stdout or stderr and "time" is when berth read it, in
// UTC, RFC 3339 with nanoseconds and trailing zeros trimmed.
//
// Rotation is by size: when a record would make FILE exceed its maximum
// size, FILE.(N-2) becomes FILE.(N-1), ..., FILE becomes FILE.1 and a new
// FILE is started, for at most N files in all (Docker's max-size and
// max-file). A reader following the log must expect FILE to be replaced.
//
// The package is part of the container monitor (berth-shim) and stays
// small: no fmt, no encoding/json.
package jsonlog

import (
	"os"
	"strconv"
	"time"

	"github.com/berthproject/berth/internal/shim/protocol"
)

// MaxLine is the longest piece of output one record holds (Docker's).
const MaxLine = 16 << 10

// Defaults of the monitor's rotation (Docker's recommended settings).
const (
	DefaultMaxSize  = 10 << 20
	DefaultMaxFiles = 3
)

// Stream names.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// Record is one log line.
type Record struct {
	Stream string    // Stdout or Stderr
	Time   time.Time // when the output was read
	Log    []byte    // the output, with its newline if it had one
}

// AppendRecord appends the JSON line of a record to dst.
func AppendRecord(dst []byte, stream string, log []byte, t time.Time) []byte {
	dst = append(dst, `{"log":`...)
	dst = protocol.AppendString(dst, log)
	dst = append(dst, `,"stream":"`...)
	dst = append(dst, stream...)
	dst = append(dst, `","time":"`...)
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, "\"}\n"...)
}

// ParseRecord parses one JSON line into r, reusing r.Log's storage.
func ParseRecord(line []byte, r *Record) error {
	r.Log = r.Log[:0]
	r.Stream = ""
	r.Time = time.Time{}
	return protocol.DecodeObject(line, func(name, v []byte) error {
		var err error
		switch string(name) {
		case "log":
			r.Log, err = protocol.AppendUnquote(r.Log[:0], v)
		case "stream":
			switch string(v) {
			case `"stdout"`:
				r.Stream = Stdout
			case `"stderr"`:
				r.Stream = Stderr
			default:
				r.Stream, err = protocol.String(v)
			}
		case "time":
			var s string
			if s, err = protocol.String(v); err == nil {
				r.Time, err = time.Parse(time.RFC3339Nano, s)
			}
		}
		if err != nil {
			return &protocol.FieldError{Field: string(name), Err: err}
		}
		return nil
	})
}

// Writer appends records to a log file and rotates it by size. It is not
// safe for concurrent use.
type Writer struct {
	path     string
	maxSize  int64 // 0: no rotation
	maxFiles int
	f        *os.File
	size     int64
	buf      []byte // one record, reused
}

// Open opens (creating it, mode 0640) the log file at path for appending.
// maxSize <= 0 disables rotation; maxFiles < 1 counts as 1 (the file is
// truncated when full).
func Open(path string, maxSize int64, maxFiles int) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if maxFiles < 1 {
		maxFiles = 1
	}
	return &Writer{path: path, maxSize: maxSize, maxFiles: maxFiles, f: f, size: st.Size()}, nil
}

// Path returns the path of the current log file.
func (w *Writer) Path() string { return w.path }

// Size returns the size of the current log file.
func (w *Writer) Size() int64 { return w.size }

// Write writes one record, rotating first if it would make the file
// exceed its maximum size.
func (w *Writer) Write(stream string, log []byte, t time.Time) error {
	w.buf = AppendRecord(w.buf[:0], stream, log, t)
	if w.maxSize > 0 && w.size > 0 && w.size+int64(len(w.buf)) > w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(w.buf)
	w.size += int64(n)
	return err
}

// rotate shifts FILE.i to FILE.i+1 (dropping the last) and FILE to FILE.1,
// then starts a new FILE.
func (w *Writer) rotate() error {
	if w.maxFiles > 1 {
		last := w.path + "." + strconv.Itoa(w.maxFiles-1)
		if err := os.Remove(last); err != nil && !os.IsNotExist(err) {
			return err
		}
		for i := w.maxFiles - 2; i >= 1; i-- {
			from := w.path + "." + strconv.Itoa(i)
			if err := os.Rename(from, w.path+"."+strconv.Itoa(i+1)); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
		if err := os.Rename(w.path, w.path+".1"); err != nil {
			return err
		}
		f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return err
		}
		w.f.Close()
		w.f, w.size = f, 0
		return nil
	}
	if err := w.f.Truncate(0); err != nil {
		return err
	}
	w.size = 0
	return nil
}

// Close closes the log file.
func (w *Writer) Close() error { return w.f.Close() }

// Lines cuts output into log lines: at each newline, and every MaxLine
// bytes of a longer line. Read output straight into Free, then Commit it.
type Lines struct {
	buf []byte // len MaxLine; buf[:n] is an incomplete line
	n   int
}

// Free returns the space to read the next output into; it is never empty.
func (l *Lines) Free() []byte {
	if l.buf == nil {
		l.buf = make([]byte, MaxLine)
	}
	return l.buf[l.n:]
}

// Commit takes the k bytes just read into Free and calls emit for each
// line they complete, and for the pending bytes if they fill MaxLine. The
// slice given to emit is only valid during the call.
func (l *Lines) Commit(k int, emit func(line []byte)) {
	start := 0
	for i := l.n; i < l.n+k; i++ {
		if l.buf[i] == '\n' {
			emit(l.buf[start : i+1])
			start = i + 1
		}
	}
	l.n += k
	if start > 0 {
		l.n = copy(l.buf, l.buf[start:l.n])
	}
	if l.n == len(l.buf) {
		emit(l.buf[:l.n])
		l.n = 0
	}
}

// Pending returns the incomplete line not emitted yet (valid until the next
// Free or Commit): the monitor hands it to berth-shim-idle and back.
func (l *Lines) Pending() []byte { return l.buf[:l.n] }

// Restore makes p (shorter than MaxLine) the incomplete line, as returned by
// Pending in another process.
func (l *Lines) Restore(p []byte) {
	if len(p) >= MaxLine {
		p = p[:MaxLine-1]
	}
	l.Free()
	l.n = copy(l.buf, p)
}

// Flush emits the pending incomplete line, if any (at the end of output).
func (l *Lines) Flush(emit func(line []byte)) {
	if l.n > 0 {
		emit(l.buf[:l.n])
		l.n = 0
	}
}
