package main

import (
	"errors"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/shim/jsonlog"
	"github.com/berthproject/berth/internal/shim/protocol"
)

// sink receives the container's output: it writes the log and hands a copy
// to every attach client.
type sink struct {
	tty      bool
	logFiles int // --log-max-files: how many rotated files a replay reads
	warn     func(string)

	mu      sync.Mutex
	log     *jsonlog.Writer // nil without --log
	logErr  bool            // a log write failed (warned once)
	clients []*client
	frame   []byte // the stdcopy frame being sent, reused

	released atomic.Bool // a client gave big buffers back (garbage to return)
}

// stream copies one output descriptor of the container (stdout, stderr or
// the pty master) to the sink, cut into log lines.
type stream struct {
	sink  *sink
	id    byte   // protocol.Stdout or protocol.Stderr
	name  string // jsonlog.Stdout or jsonlog.Stderr
	lines jsonlog.Lines
	now   time.Time // when the output being committed was read
	emit  func([]byte)

	f    *os.File // the monitor's end; nil when not running
	fd   int
	done chan struct{} // closed when copy returns

	pausing atomic.Bool // copy returns at its read deadline, leaving the rest (see handOver)
	ended   bool        // copy reached the end of the output (set before done is closed)
}

func newStream(k *sink, id byte) *stream {
	s := &stream{sink: k, id: id, name: jsonlog.Stdout}
	if id == protocol.Stderr {
		s.name = jsonlog.Stderr
	}
	s.emit = s.writeLog // bound once: no allocation per line
	return s
}

// run starts copying from s.f (whose descriptor is s.fd) until stop.
func (s *stream) run() {
	s.done, s.ended = make(chan struct{}), false
	go s.copy()
}

func (s *stream) copy() {
	defer close(s.done)
	for {
		n, err := s.f.Read(s.lines.Free())
		if n > 0 && s.commit(n) {
			// Output was queued for an attach client: let its writer run
			// now. With one P a reader whose pipe is never empty would
			// otherwise keep it waiting for a whole time slice.
			runtime.Gosched()
		}
		if err != nil {
			if s.pausing.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
				return // paused: the output stays in the descriptor
			}
			break
		}
	}
	defer func() { s.ended = true }()
	// Stopped (deadline) or end of output: take what the pipe still holds.
	// The container's processes are gone by then, so this is all of it.
	for {
		n, err := unix.Read(s.fd, s.lines.Free())
		if err == unix.EINTR {
			continue
		}
		if n <= 0 {
			break
		}
		s.commit(n)
	}
	s.sink.mu.Lock()
	s.now = time.Now()
	s.lines.Flush(s.emit)
	s.sink.mu.Unlock()
}

// commit hands the n bytes just read to the attach clients and the log;
// it reports whether some output was queued for a client.
func (s *stream) commit(n int) bool {
	k := s.sink
	k.mu.Lock()
	s.now = time.Now()
	queued := k.fanout(s.id, s.lines.Free()[:n])
	s.lines.Commit(n, s.emit)
	k.mu.Unlock()
	return queued
}

// writeLog writes one line to the log; the sink's lock is held.
func (s *stream) writeLog(line []byte) {
	k := s.sink
	if k.log == nil {
		return
	}
	if err := k.log.Write(s.name, line, s.now); err != nil && !k.logErr {
		k.logErr = true
		k.warn("write log " + k.log.Path() + ": " + err.Error())
	}
}

// pause ends the copy without reading further, for a hand-over.
func (s *stream) pause() {
	if s.f == nil || s.done == nil {
		return
	}
	s.pausing.Store(true)
	_ = s.f.SetReadDeadline(time.Unix(1, 0))
	<-s.done
}

// unpause starts the copy again after a hand-over that failed.
func (s *stream) unpause() {
	if !s.pausing.Swap(false) {
		return
	}
	_ = s.f.SetReadDeadline(time.Time{})
	if !s.ended {
		s.run()
	}
}

// stop ends the copy once the container's init is gone: the pending read
// is cut short, what is left in the descriptor is read, and it is closed.
func (s *stream) stop() {
	if s.f == nil {
		return
	}
	if s.done != nil {
		_ = s.f.SetReadDeadline(time.Unix(1, 0))
		<-s.done
	}
	s.f.Close()
	s.f, s.fd, s.done = nil, -1, nil
}

// fanout sends output to the attach clients; k.mu is held. It reports
// whether some of it had to be queued.
func (k *sink) fanout(id byte, p []byte) bool {
	if len(k.clients) == 0 {
		return false
	}
	frame := p
	if !k.tty {
		k.frame = protocol.AppendFrame(k.frame[:0], id, p)
		frame = k.frame
	}
	queued := false
	for _, c := range k.clients {
		if id == protocol.Stdout && !c.hello.Stdout || id == protocol.Stderr && !c.hello.Stderr {
			continue
		}
		if c.push(frame) {
			queued = true
		}
	}
	return queued
}

// client is one attach connection.
type client struct {
	conn  *os.File
	fd    int // conn's descriptor (non-blocking)
	hello protocol.Hello

	mu      sync.Mutex
	pending []byte // output not yet written
	spare   []byte // the buffer being written
	writing bool   // the writer is writing (spare, or the log replay)
	dead    bool   // too slow, or the connection failed
	quiet   bool   // no output since the last trim tick
	trim    bool   // quiet for a whole tick: the writer drops big buffers
	closing bool   // the container is gone: write what is pending, then close
	wake    chan struct{}
	done    chan struct{} // closed when the writer has closed conn

	replay    []*os.File // rotated log files for "logs":true, oldest first
	replayCur *os.File   // the current log file, sent up to cut
	cut       int64
}

// push sends frame to the client; c's sink lock is held. When nothing is
// queued before it, it is written at once, without blocking, as far as
// the socket takes it; the rest is queued for the writer. It reports
// whether something was queued.
func (c *client) push(frame []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || c.closing {
		return false
	}
	c.quiet, c.trim = false, false
	if len(c.pending) == 0 && !c.writing {
		n, err := unix.Write(c.fd, frame)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			n = 0
		case err != nil: // the client went away
			c.dead = true
			c.wakeWriter()
			return false
		}
		if n == len(frame) {
			return false
		}
		frame = frame[n:]
	}
	if len(c.pending)+len(frame) > protocol.MaxClientBacklog {
		// A slow client must not hold the container back, nor grow the
		// monitor: it is dropped; the log has everything.
		c.dead = true
		// Cut a write in progress short; the writer closes the connection.
		_ = c.conn.SetWriteDeadline(time.Unix(1, 0))
	} else {
		c.pending = append(c.pending, frame...)
	}
	c.wakeWriter()
	return true
}

func (c *client) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// finish asks the writer to write what is pending and close. A client
// that does not read any more must not keep the monitor alive: its writes
// get a deadline, the one in progress included.
func (c *client) finish() {
	_ = c.conn.SetWriteDeadline(time.Now().Add(flushTimeout))
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// idleBuffer is the most buffer an idle client keeps.
const idleBuffer = 16 << 10

// flushTimeout bounds the last writes to a client when the monitor exits.
const flushTimeout = 5 * time.Second

// writeLoop writes the client's output until it is closed.
func (c *client) writeLoop(k *sink) {
	defer func() {
		c.conn.Close()
		k.remove(c)
		close(c.done)
	}()
	if c.replay != nil || c.replayCur != nil {
		err := c.replayLog(k.tty)
		c.mu.Lock()
		c.writing = false
		c.mu.Unlock()
		c.wakeWriter() // for what was queued meanwhile
		if err != nil {
			return
		}
	}
	for range c.wake {
		c.mu.Lock()
		if c.dead {
			c.mu.Unlock()
			return
		}
		c.pending, c.spare = c.spare[:0], c.pending
		c.writing = len(c.spare) > 0
		closing := c.closing
		c.mu.Unlock()
		if len(c.spare) > 0 {
			if _, err := c.conn.Write(c.spare); err != nil {
				return
			}
		}
		c.mu.Lock()
		c.writing = false
		empty := len(c.pending) == 0
		if empty && c.trim {
			// Quiet for a while: do not keep a burst's buffers for the
			// container's life. While output flows they are reused, so
			// the output path makes no garbage.
			if cap(c.spare) > idleBuffer {
				c.spare = nil
			}
			if cap(c.pending) > idleBuffer {
				c.pending = nil
			}
			c.trim = false
			k.released.Store(true)
		}
		c.mu.Unlock()
		if closing && empty {
			return
		}
	}
}

// replayLog sends the log files' content recorded when the client came.
func (c *client) replayLog(tty bool) error {
	defer func() {
		for _, f := range c.replay {
			f.Close()
		}
		c.replay = nil
	}()
	if c.replayCur != nil {
		c.replay = append(c.replay, c.replayCur)
	}
	var rec jsonlog.Record
	var out []byte
	for _, f := range c.replay {
		var r io.Reader = f
		if f == c.replayCur {
			r = io.LimitReader(f, c.cut)
		}
		err := eachLine(r, func(line []byte) error {
			if jsonlog.ParseRecord(line, &rec) != nil {
				return nil // not a record: skip it
			}
			id := protocol.Stdout
			if rec.Stream == jsonlog.Stderr {
				id = protocol.Stderr
			}
			if id == protocol.Stdout && !c.hello.Stdout || id == protocol.Stderr && !c.hello.Stderr {
				return nil
			}
			out = out[:0]
			if !tty {
				out = protocol.AppendFrameHeader(out, id, len(rec.Log))
			}
			out = append(out, rec.Log...)
			_, err := c.conn.Write(out)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// eachLine calls fn with every complete line of r.
func eachLine(r io.Reader, fn func([]byte) error) error {
	buf := make([]byte, 64<<10)
	n := 0
	for {
		m, err := r.Read(buf[n:])
		n += m
		start := 0
		for i := n - m; i < n; i++ {
			if buf[i] == '\n' {
				if ferr := fn(buf[start : i+1]); ferr != nil {
					return ferr
				}
				start = i + 1
			}
		}
		n = copy(buf, buf[start:n])
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// add registers a client; with hello.Logs it also opens the log files as
// they are now, so that the replay ends exactly where the live output
// starts.
func (k *sink) add(c *client) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c.hello.Logs && k.log != nil {
		path := k.log.Path()
		for i := k.logFiles - 1; i >= 1; i-- {
			if f, err := os.Open(path + "." + strconv.Itoa(i)); err == nil {
				c.replay = append(c.replay, f)
			}
		}
		if f, err := os.Open(path); err == nil {
			c.replayCur, c.cut = f, k.log.Size()
		}
		// Live output waits behind the replay.
		c.writing = c.replay != nil || c.replayCur != nil
	}
	k.clients = append(k.clients, c)
}

func (k *sink) remove(c *client) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, x := range k.clients {
		if x == c {
			k.clients = slices.Delete(k.clients, i, i+1)
			return
		}
	}
}

// trim is called periodically: a client without output for a whole
// period gives its big buffers back; the next call returns the memory to
// the system (the collector runs only then, or at the memory limit).
func (k *sink) trim() {
	if k.released.Swap(false) {
		debug.FreeOSMemory()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.clients {
		c.mu.Lock()
		if c.quiet && (cap(c.pending) > idleBuffer || cap(c.spare) > idleBuffer) {
			c.trim = true
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
		c.quiet = true
		c.mu.Unlock()
	}
}

// closeClients ends every attach connection after its pending output and
// waits for them.
func (k *sink) closeClients() {
	k.mu.Lock()
	clients := append([]*client(nil), k.clients...)
	k.mu.Unlock()
	for _, c := range clients {
		c.finish()
	}
	for _, c := range clients {
		<-c.done
	}
}
