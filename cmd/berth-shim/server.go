package main

import (
	"errors"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/shim/protocol"
)

// inheritedListener takes over the listening attach socket the engine
// made and passed as fd (--attach-fd), so that a client could connect
// before this process ran.
func inheritedListener(fd int, path string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, errors.New("--attach-fd " + strconv.Itoa(fd) + ": not a socket")
	}
	if on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || on != 1 {
		return nil, errors.New("--attach-fd " + strconv.Itoa(fd) + ": not a listening socket")
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, &os.SyscallError{Syscall: "fcntl", Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// accept waits for the next connection on l and returns it non-blocking
// (pollable), with its descriptor; the connection counts as work for the
// idle hand-over until its server releases it. During a hand-over it
// accepts nothing (errHanding): the connection waits in the listen queue
// for berth-shim-idle to notice.
func (s *shim) accept(l *os.File) (*os.File, int, error) {
	rc, err := l.SyscallConn()
	if err != nil {
		return nil, -1, err
	}
	nfd := -1
	var aerr error
	err = rc.Read(func(fd uintptr) bool {
		s.idle.mu.Lock()
		defer s.idle.mu.Unlock()
		if s.idle.handing {
			aerr = errHanding
			return true
		}
		nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		if aerr == nil {
			s.idle.busy++
		}
		return aerr != unix.EAGAIN && aerr != unix.EINTR
	})
	if err != nil {
		return nil, -1, err
	}
	if aerr == errHanding {
		return nil, -1, aerr
	}
	if aerr != nil {
		return nil, -1, &os.SyscallError{Syscall: "accept4", Err: aerr}
	}
	return os.NewFile(uintptr(nfd), "conn"), nfd, nil
}

// lineReader reads newline-terminated lines from a connection.
type lineReader struct {
	conn       *os.File
	buf        []byte
	start, end int // buf[start:end] is read and not yet returned
}

func newLineReader(conn *os.File, size int) *lineReader {
	return &lineReader{conn: conn, buf: make([]byte, size)}
}

// next returns the next line without its newline; it is valid until the
// next call.
func (r *lineReader) next() ([]byte, error) {
	for {
		for i := r.start; i < r.end; i++ {
			if r.buf[i] == '\n' {
				line := r.buf[r.start:i]
				r.start = i + 1
				return line, nil
			}
		}
		if r.start > 0 {
			r.end = copy(r.buf, r.buf[r.start:r.end])
			r.start = 0
		}
		if r.end == len(r.buf) {
			return nil, errLineTooLong
		}
		n, err := r.conn.Read(r.buf[r.end:])
		r.end += n
		if n == 0 && err != nil {
			return nil, err
		}
	}
}

// buffered returns the bytes read after the last line.
func (r *lineReader) buffered() []byte { return r.buf[r.start:r.end] }

var errLineTooLong = errors.New("line too long")

// serveAttach accepts attach clients forever.
func (s *shim) serveAttach(l *os.File) {
	for {
		conn, fd, err := s.accept(l)
		if err == errHanding {
			s.idle.waitHanding()
			continue
		}
		if err != nil {
			s.warn("accept on attach.sock: " + err.Error())
			return
		}
		go func() {
			defer s.idle.release()
			s.attach(conn, fd)
		}()
	}
}

// attach serves one attach client: the hello line, then the client's
// stdin while its output is written by its own writer.
func (s *shim) attach(conn *os.File, fd int) {
	lr := newLineReader(conn, 4096)
	line, err := lr.next()
	if err != nil {
		conn.Close()
		return
	}
	hello, err := protocol.ParseHello(line)
	if err != nil {
		conn.Close()
		return
	}
	c := &client{conn: conn, fd: fd, hello: hello, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if hello.Exit {
		s.hand.claim(c, peerPidfd(fd))
		defer s.hand.release(c)
	}
	s.out.add(c)
	go c.writeLoop(s.out)
	s.firstClient.Do(func() { close(s.attached) })

	forward := hello.Stdin && s.cfg.stdin
	if rest := lr.buffered(); forward && len(rest) > 0 {
		s.in.write(rest)
	}
	// Without stdin to forward, reading still notices a client that goes
	// away, and keeps its socket buffer from filling.
	buf := lr.buf
	for {
		n, err := conn.Read(buf)
		if n > 0 && forward {
			s.in.write(buf[:n])
		}
		if err != nil {
			break
		}
	}
	// As Docker's (moby container/stream CopyStreams): the end of the
	// first attached stdin closes the container's only without a
	// terminal. With one, the client's end is a detach (the detach keys,
	// or its connection gone): a later attach types into the same shell.
	if forward && s.cfg.stdinOnce && !s.cfg.tty {
		s.in.closeOnce()
	}
}

// serveControl accepts control connections forever.
func (s *shim) serveControl(l *os.File) {
	for {
		conn, _, err := s.accept(l)
		if err == errHanding {
			s.idle.waitHanding()
			continue
		}
		if err != nil {
			s.warn("accept on control.sock: " + err.Error())
			return
		}
		go func() {
			defer s.idle.release()
			s.control(conn)
		}()
	}
}

// control answers the requests of one control connection.
func (s *shim) control(conn *os.File) {
	defer conn.Close()
	taker := false // this connection took the final exit
	defer func() {
		if taker {
			s.hand.abandon() // unless it said it recorded the exit
		}
	}()
	lr := newLineReader(conn, 512)
	var out []byte
	for {
		line, err := lr.next()
		if err != nil {
			return
		}
		msg := ""
		req, err := protocol.ParseRequest(line)
		switch {
		case err != nil:
			msg = "bad request: " + err.Error()
		case req.Resize != nil:
			if err := s.term.resize(*req.Resize); err != nil {
				msg = err.Error()
			}
		case req.CloseStdin:
			s.in.close()
		case req.TakeExit:
			if err := s.hand.take(); err != nil {
				msg = err.Error()
			} else {
				taker = true
			}
		case req.ExitHandled, req.ExitRemoved:
			if !taker {
				msg = "exit-handled: the exit was not taken on this connection"
			} else {
				s.hand.done(req.ExitRemoved)
			}
		case req.KillAfter > 0:
			s.killAfter(req.KillAfter)
		case req.WaitDeleted:
			if !taker {
				msg = "wait-deleted: the exit was not taken on this connection"
			} else if err := s.hand.deletion().wait(); err != nil {
				msg = err.Error()
			}
		}
		out = protocol.AppendReply(out[:0], msg)
		if _, err := conn.Write(out); err != nil {
			return
		}
	}
}

// input is the container's stdin as the monitor holds it: the write end of
// the stdin pipe, or the pty master.
type input struct {
	mu       sync.Mutex
	w        *os.File // nil: no stdin (none, or closed)
	pipe     bool     // w is a pipe: closing it is EOF for the container
	onceDone bool     // the first attached stdin has ended (--stdin-once)
}

// set makes w the container's stdin for a new run (nil: none).
func (in *input) set(w *os.File, pipe bool) {
	in.mu.Lock()
	in.w, in.pipe, in.onceDone = w, pipe, false
	in.mu.Unlock()
}

// write forwards p to the container. A container that does not read
// blocks only the client that writes.
func (in *input) write(p []byte) {
	in.mu.Lock()
	w := in.w
	in.mu.Unlock()
	if w != nil {
		_, _ = w.Write(p)
	}
}

// close closes the container's stdin: EOF for the container. With a
// terminal it only stops forwarding; the pty stays the container's.
func (in *input) close() {
	in.mu.Lock()
	w, pipe := in.w, in.pipe
	in.w = nil
	in.mu.Unlock()
	if w != nil && pipe {
		w.Close()
	}
}

// closeOnce closes stdin when the first attached stdin ends.
func (in *input) closeOnce() {
	in.mu.Lock()
	done := in.onceDone
	in.onceDone = true
	in.mu.Unlock()
	if !done {
		in.close()
	}
}

// term is the container's terminal, with --tty.
type term struct {
	mu     sync.Mutex
	tty    bool
	master *os.File // nil between runs
	size   *protocol.WindowSize
}

var errNoTerminal = errors.New("resize: the container has no terminal")

// resize sets the terminal's size now, and for the next runs.
func (t *term) resize(ws protocol.WindowSize) error {
	if !t.tty {
		return errNoTerminal
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.size = &ws
	if t.master == nil {
		return nil
	}
	return t.apply()
}

func (t *term) apply() error {
	rc, err := t.master.SyscallConn()
	if err != nil {
		return err
	}
	var ioerr error
	err = rc.Control(func(fd uintptr) {
		ioerr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: t.size.Height, Col: t.size.Width})
	})
	if err == nil && ioerr != nil {
		err = &os.SyscallError{Syscall: "ioctl TIOCSWINSZ", Err: ioerr}
	}
	return err
}

// set makes master the terminal of a new run (nil: none) and gives it the
// last size asked for.
func (t *term) set(master *os.File) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.master = master
	if master == nil || t.size == nil {
		return nil
	}
	return t.apply()
}
