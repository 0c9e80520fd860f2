package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/shim/jsonlog"
)

// TailAll asks ReadLogs for every record.
const TailAll = -1

// LogOptions select the records ReadLogs yields, as `docker logs` flags.
type LogOptions struct {
	Tail   int       // only the last Tail records (then Since/Until/streams filter them); TailAll: all
	Since  time.Time // records at or after; zero: from the start
	Until  time.Time // records before; zero: no bound
	Stdout bool      // yield stdout records
	Stderr bool      // yield stderr records
	Follow bool      // after the end, wait for more (across rotations)
	// Done, with Follow, is polled while waiting: once it returns true (the
	// container is gone), ReadLogs reads what is left and returns nil.
	Done func() bool
}

// followPoll is how often a follower checks ctx and Done between inotify
// events.
const followPoll = 250 * time.Millisecond

// ReadLogs calls fn with the records of the json-file log at path (and its
// rotated files path.1, path.2, ...), oldest first. The record, and its
// Log, are only valid during the call. It returns fn's error, ctx's error
// when following is cancelled, or nil at the end.
func ReadLogs(ctx context.Context, path string, o LogOptions, fn func(*jsonlog.Record) error) error {
	lr := &logReader{path: path, o: o, fn: fn}
	defer lr.closeAll()
	if err := lr.open(); err != nil {
		return err
	}
	if o.Tail >= 0 {
		if err := lr.seekTail(o.Tail); err != nil {
			return err
		}
	}
	for _, f := range lr.files {
		if err := lr.readFile(f, f == lr.cur && o.Follow); err != nil {
			return err
		}
	}
	if !o.Follow {
		return nil
	}
	return lr.follow(ctx)
}

type logReader struct {
	path  string
	o     LogOptions
	fn    func(*jsonlog.Record) error
	files []*os.File // oldest first, all closed at the end
	cur   *os.File   // the current file (path); nil until it exists
	rec   jsonlog.Record
	part  []byte // an incomplete last line (following only)
	buf   []byte // read buffer
}

func (lr *logReader) closeAll() {
	for _, f := range lr.files {
		f.Close()
	}
}

// open opens the rotated files, oldest first, then the current one. A log
// that does not exist yet is empty.
func (lr *logReader) open() error {
	var rotated []*os.File
	for i := 1; ; i++ {
		f, err := os.Open(lr.path + "." + strconv.Itoa(i))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("open log: %w", err)
		}
		rotated = append(rotated, f)
	}
	for i := len(rotated) - 1; i >= 0; i-- {
		lr.files = append(lr.files, rotated[i])
	}
	f, err := os.Open(lr.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // no log yet: empty (a follower waits for it)
	}
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	lr.files = append(lr.files, f)
	lr.cur = f
	return nil
}

// seekTail positions the files so that reading them yields the last n
// records: whole files it skips are dropped.
func (lr *logReader) seekTail(n int) error {
	for i := len(lr.files) - 1; i >= 0; i-- {
		off, found, err := tailOffset(lr.files[i], n)
		if err != nil {
			return fmt.Errorf("read log %s: %w", lr.files[i].Name(), err)
		}
		if found >= n {
			if _, err := lr.files[i].Seek(off, io.SeekStart); err != nil {
				return fmt.Errorf("read log %s: %w", lr.files[i].Name(), err)
			}
			for _, f := range lr.files[:i] {
				f.Close()
			}
			lr.files = lr.files[i:]
			return nil
		}
		n -= found
	}
	return nil
}

// tailOffset returns the offset at which the last n complete lines of f
// start, or how many lines f has if fewer (offset 0).
func tailOffset(f *os.File, n int) (off int64, found int, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	end := st.Size()
	if n == 0 {
		return end, 0, nil
	}
	buf := make([]byte, 32<<10)
	pos := end
	first := true
	for pos > 0 {
		size := min(int64(len(buf)), pos)
		pos -= size
		b := buf[:size]
		if _, err := f.ReadAt(b, pos); err != nil && err != io.EOF {
			return 0, 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != '\n' {
				continue
			}
			if first && pos+int64(i) == end-1 {
				first = false // the newline ending the last line
				continue
			}
			found++
			if found == n {
				return pos + int64(i) + 1, found, nil
			}
		}
		first = false
	}
	// The first line of the file has no newline before it.
	if end > 0 {
		found++
	}
	return 0, found, nil
}

// readFile yields the records of f from its current offset to its end.
// With keepPart an incomplete last line is kept for the next read (the
// writer may be in the middle of it); otherwise it is dropped.
func (lr *logReader) readFile(f *os.File, keepPart bool) error {
	if lr.buf == nil {
		lr.buf = make([]byte, 64<<10)
	}
	for {
		n, err := f.Read(lr.buf)
		if n > 0 {
			if perr := lr.feed(lr.buf[:n]); perr != nil {
				return perr
			}
		}
		if err == io.EOF {
			if !keepPart {
				lr.part = lr.part[:0]
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read log %s: %w", f.Name(), err)
		}
	}
}

// feed yields the complete lines of lr.part+b.
func (lr *logReader) feed(b []byte) error {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			lr.part = append(lr.part, b...)
			return nil
		}
		line := b[:i+1]
		if len(lr.part) > 0 {
			lr.part = append(lr.part, line...)
			line = lr.part
		}
		b = b[i+1:]
		err := lr.record(line)
		lr.part = lr.part[:0]
		if err != nil {
			return err
		}
	}
	return nil
}

// record filters and yields one line.
func (lr *logReader) record(line []byte) error {
	if err := jsonlog.ParseRecord(line, &lr.rec); err != nil {
		return nil // a torn or foreign line: skip it, as Docker does
	}
	r := &lr.rec
	switch {
	case r.Stream == jsonlog.Stdout && !lr.o.Stdout, r.Stream == jsonlog.Stderr && !lr.o.Stderr:
		return nil
	case !lr.o.Since.IsZero() && r.Time.Before(lr.o.Since):
		return nil
	case !lr.o.Until.IsZero() && !r.Time.Before(lr.o.Until):
		return nil
	}
	return lr.fn(r)
}

// follow waits for new records in the current file, and moves to the new
// file when the log rotates, until ctx is done or o.Done says so.
func (lr *logReader) follow(ctx context.Context) error {
	in, err := newWatcher(filepath.Dir(lr.path))
	if err != nil {
		return err
	}
	defer in.close()
	cur := lr.cur
	for {
		done := lr.o.Done != nil && lr.o.Done()
		// Read what the current file has, then see whether it was rotated.
		if cur != nil {
			if err := lr.readFile(cur, true); err != nil {
				return err
			}
		}
		rotated, err := lr.checkRotation(&cur)
		if err != nil {
			return err
		}
		if rotated {
			continue
		}
		if done {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := in.wait(followPoll); err != nil {
			return err
		}
	}
}

// checkRotation opens the log file again when the path names another file
// than cur: it reads what cur still had, the files rotated in between, and
// moves cur to the new file.
func (lr *logReader) checkRotation(cur **os.File) (bool, error) {
	st, err := os.Stat(lr.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil // between rename and create, or not yet
		}
		return false, fmt.Errorf("follow log: %w", err)
	}
	if *cur != nil {
		cst, err := (*cur).Stat()
		if err != nil {
			return false, fmt.Errorf("follow log: %w", err)
		}
		if os.SameFile(st, cst) {
			return false, nil
		}
		// Rotated: finish the old file, then any file rotated after it.
		if err := lr.readFile(*cur, false); err != nil {
			return false, err
		}
		for _, f := range lr.rotatedAfter(cst) {
			err := lr.readFile(f, false)
			f.Close()
			if err != nil {
				return false, err
			}
		}
	}
	f, err := os.Open(lr.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("follow log: %w", err)
	}
	lr.files = append(lr.files, f)
	*cur = f
	return true, nil
}

// rotatedAfter opens the rotated files newer than old (path.k-1 ... path.1
// when old is now path.k), oldest first.
func (lr *logReader) rotatedAfter(old os.FileInfo) []*os.File {
	k := 0
	for i := 1; i < 1000; i++ {
		st, err := os.Stat(lr.path + "." + strconv.Itoa(i))
		if err != nil {
			break
		}
		if os.SameFile(st, old) {
			k = i
			break
		}
	}
	var files []*os.File
	for i := k - 1; i >= 1; i-- {
		if f, err := os.Open(lr.path + "." + strconv.Itoa(i)); err == nil {
			files = append(files, f)
		}
	}
	return files
}

// watcher wakes a follower when the log's directory changes.
type watcher struct {
	fd  int
	buf [4096]byte
}

func newWatcher(dir string) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("follow log: inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM|unix.IN_CLOSE_WRITE); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("follow log: watch %s: %w", dir, err)
	}
	return &watcher{fd: fd}, nil
}

// wait returns after an event or timeout, the events read and dropped.
func (w *watcher) wait(timeout time.Duration) error {
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	if _, err := unix.Poll(fds, int(timeout/time.Millisecond)); err != nil && err != syscall.EINTR {
		return fmt.Errorf("follow log: poll: %w", err)
	}
	for {
		n, err := unix.Read(w.fd, w.buf[:])
		if n <= 0 || err != nil {
			return nil
		}
	}
}

func (w *watcher) close() { unix.Close(w.fd) }
