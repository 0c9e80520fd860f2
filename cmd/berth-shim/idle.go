package main

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/shim/protocol"
)

// Idle hand-over. A Go process keeps some 620 kB of memory doing nothing,
// and one monitor runs per container, while most of a container's life
// needs nothing of the monitor but copying its output into the log. So once
// the container has run for a moment with nobody attached and no request in
// progress, the monitor executes berth-shim-idle (a small static C program,
// installed next to it) in its own process: same pid, still the init's
// parent and a subreaper, same descriptors. That program copies the output
// into the log as the sink would, and executes berth-shim again with
// --resume (this file) when a connection waits on control.sock or
// attach.sock, or when the init exits; the resumed monitor accepts the
// connection or reaps the init, and carries on where it was.
//
// Nothing is lost in between: connections wait in the listen queue (the
// accept loops stop taking them before the hand-over), output waits in the
// pipe or pty (the copies stop reading before it, and the incomplete last
// line goes along), the init's exit waits as a zombie (the hand-over holds
// the reaper's lock, and berth-shim-idle never reaps the init).
//
// Both programs are executed from descriptors opened when the monitor first
// starts (its own binary through /proc/self/exe, berth-shim-idle by path),
// kept across every hand-over: a container's monitor runs the code it was
// started with for the container's whole life, as a monitor that never goes
// idle does, even when berth is upgraded meanwhile. The resume state and the
// two programs' arguments therefore never meet another build's.

// defaultIdleDelay is how long the monitor must have had nothing to do
// before it hands over. BERTH_SHIM_IDLE in the monitor's environment
// changes it (a duration), or disables the hand-over ("off").
const defaultIdleDelay = time.Second

// idleBinary is the hand-over's program, next to berth-shim.
const idleBinary = "berth-shim-idle"

// idle tracks whether the monitor has anything to do.
type idle struct {
	path  string // berth-shim-idle; "": never hand over
	delay time.Duration
	// The binaries the hand-overs execute (see above); -1 when path is "".
	fd, shimFd int

	mu       sync.Mutex
	cond     *sync.Cond // handing changed
	busy     int        // connections being served
	stopping bool       // a stop deadline waits for the current run's end
	running  bool       // the monitor waits for the current run's init
	handing  bool       // a hand-over is under way: accepts wait
	kick     chan struct{}
}

// errHanding is accept's answer while a hand-over is under way.
var errHanding = errors.New("handing over to " + idleBinary)

func newIdle(shimPath string, env func(string) string, resume *resumeState) *idle {
	d := &idle{delay: defaultIdleDelay, kick: make(chan struct{}, 1), fd: -1, shimFd: -1}
	d.cond = sync.NewCond(&d.mu)
	switch v := env("BERTH_SHIM_IDLE"); v {
	case "":
	case "off":
		return d
	default:
		if t, err := time.ParseDuration(v); err == nil && t >= 0 {
			d.delay = t
		}
	}
	if shimPath == "" {
		return d
	}
	p := filepath.Join(filepath.Dir(shimPath), idleBinary)
	if resume != nil {
		// The binaries pinned by the first start came along (a resume
		// state without them does not parse).
		d.path, d.fd, d.shimFd = p, resume.idleFd, resume.shimFd
		unix.CloseOnExec(d.fd)
		unix.CloseOnExec(d.shimFd)
		return d
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return d
	}
	// The file this process runs, even if its path was replaced since.
	self, err := unix.Open("/proc/self/exe", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return d
	}
	d.path, d.fd, d.shimFd = p, fd, self
	return d
}

func (d *idle) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// release ends one connection's work.
func (d *idle) release() {
	d.mu.Lock()
	d.busy--
	d.mu.Unlock()
	d.poke()
}

// holdStop keeps the monitor in Go until the current run ends: a stop's
// deadline is a timer here.
func (d *idle) holdStop() {
	d.mu.Lock()
	d.stopping = true
	d.mu.Unlock()
}

// startRun and endRun bracket the monitor's wait for a run's init.
func (d *idle) startRun() {
	d.mu.Lock()
	d.running = true
	d.mu.Unlock()
	d.poke()
}

func (d *idle) endRun() {
	d.mu.Lock()
	d.running, d.stopping = false, false
	d.mu.Unlock()
}

// waitHanding blocks while a hand-over is under way (it ends only if it
// failed: the process is berth-shim-idle's otherwise).
func (d *idle) waitHanding() {
	d.mu.Lock()
	for d.handing {
		d.cond.Wait()
	}
	d.mu.Unlock()
}

// loop hands the monitor over after it had nothing to do for the delay.
func (s *shim) idleLoop() {
	d := s.idle
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-d.kick:
			t.Reset(d.delay)
		case <-t.C:
			if err := s.handOver(); err != nil {
				s.warn("hand over to " + idleBinary + ": " + err.Error() + "; staying")
				return
			}
		}
	}
}

// handOver executes berth-shim-idle if the monitor has nothing to do. It
// returns nil when there was something to do (the next end of it kicks
// the loop again), an error when the hand-over failed.
func (s *shim) handOver() error {
	d := s.idle
	d.mu.Lock()
	quiet := d.path != "" && d.running && !d.stopping && d.busy == 0 && !d.handing
	if quiet {
		s.out.mu.Lock()
		quiet = len(s.out.clients) == 0
		s.out.mu.Unlock()
	}
	if quiet {
		s.hand.mu.Lock()
		quiet = s.hand.claimant == nil && s.hand.state == handNone
		s.hand.mu.Unlock()
	}
	if !quiet {
		d.mu.Unlock()
		return nil
	}
	init := s.init // the run's, set before running
	d.handing = true
	d.mu.Unlock()

	// From here no connection is accepted. The reaper's lock keeps the
	// init unreaped up to the exec, and the monitor in its wait for it: the
	// end of the run (which stops the output copies) cannot overlap their
	// pause.
	s.reaper.mu.Lock()
	var err error
	if _, exited := s.reaper.exited[init.pid]; !exited && !init.reaped && init.pidfd != nil {
		for _, st := range s.outs {
			st.pause()
		}
		err = s.execIdle(init)
		for _, st := range s.outs {
			st.unpause()
		}
	} // else the run has just ended: nothing to hand over
	s.reaper.mu.Unlock()

	d.mu.Lock()
	d.handing = false
	if err != nil {
		d.path = "" // do not try again
	}
	d.cond.Broadcast()
	d.mu.Unlock()
	return err
}

// execIdle executes berth-shim-idle; it returns only on failure. The
// reaper's lock is held and the output copies are paused.
func (s *shim) execIdle(init *proc) error {
	st := resumeState{
		pid: init.pid, restarts: s.restarts, startedAt: s.startedAt.UnixNano(), oomBase: s.oomBase,
		backoff: int64(s.backoff.Delay()), ctl: s.ctlFd, att: s.attFd, in: -1,
		idleFd: s.idle.fd, shimFd: s.idle.shimFd,
	}
	outFds := [2]int{-1, -1}
	for i, o := range s.outs {
		if o.f != nil && !o.ended {
			outFds[i] = o.fd
		}
	}
	s.in.mu.Lock()
	if w := s.in.w; w != nil {
		switch {
		case s.cfg.tty:
			st.in = -2 // the pty
		default:
			st.in = fileFd(w)
			st.inPipe = s.in.pipe
		}
	}
	st.inOnceDone = s.in.onceDone
	s.in.mu.Unlock()
	s.term.mu.Lock()
	if s.term.size != nil {
		st.winH, st.winW = s.term.size.Height, s.term.size.Width
	}
	s.term.mu.Unlock()

	argv := []string{s.idle.path, "--dir", s.cfg.dir, "--pid", strconv.Itoa(st.pid),
		"--control", strconv.Itoa(st.ctl), "--attach", strconv.Itoa(st.att),
		"--out", strconv.Itoa(outFds[0]), "--err", strconv.Itoa(outFds[1])}
	if s.cfg.log != "" {
		argv = append(argv, "--log", s.cfg.log, "--log-max-size", strconv.FormatInt(s.cfg.logMaxSize, 10),
			"--log-max-files", strconv.Itoa(s.cfg.logMaxFiles))
	}
	for i, flag := range []string{"--partial-out", "--partial-err"} {
		if p := s.outs[i].lines.Pending(); len(p) > 0 && outFds[i] >= 0 {
			argv = append(argv, flag, hex.EncodeToString(p))
		}
	}
	argv = append(argv, "--resume", st.String(), "--shim-fd", strconv.Itoa(st.shimFd), "--", s.exe)
	argv = append(argv, s.cfg.argv()...)

	pass := []int{st.ctl, st.att, outFds[0], outFds[1], st.idleFd, st.shimFd}
	if st.in >= 0 {
		pass = append(pass, st.in)
	}
	for _, fd := range pass {
		if fd >= 0 {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
				return &os.SyscallError{Syscall: "fcntl F_SETFD", Err: err}
			}
		}
	}
	// By the pinned descriptor; argv[0] keeps the path for ps, and the
	// program sets its name back (comm would be the descriptor's number).
	err := syscall.Exec("/proc/self/fd/"+strconv.Itoa(st.idleFd), argv, os.Environ())
	for _, fd := range pass {
		if fd >= 0 {
			unix.CloseOnExec(fd)
		}
	}
	return &os.SyscallError{Syscall: "execve " + s.idle.path, Err: err}
}

// fileFd returns f's descriptor without making it blocking (as Fd does).
func fileFd(f *os.File) int {
	fd := -1
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(u uintptr) { fd = int(u) })
	}
	return fd
}

// resumeState is what the monitor needs to carry on after berth-shim-idle:
// it goes there and back on the command line (--resume), unread by it.
type resumeState struct {
	pid, restarts      int
	startedAt, oomBase int64
	backoff            int64 // protocol.Backoff's delay
	ctl, att           int   // the listening control and attach sockets
	in                 int   // the container's stdin: -1 none, -2 the pty, else the pipe
	inPipe, inOnceDone bool
	winH, winW         uint16 // the terminal's size asked for (0: none)
	idleFd, shimFd     int    // the pinned binaries (see idle)
}

func (r resumeState) String() string {
	b := []byte("pid=")
	b = strconv.AppendInt(b, int64(r.pid), 10)
	for _, kv := range []struct {
		k string
		v int64
	}{
		{"restarts", int64(r.restarts)}, {"started", r.startedAt}, {"oom", r.oomBase}, {"backoff", r.backoff},
		{"ctl", int64(r.ctl)}, {"att", int64(r.att)}, {"in", int64(r.in)}, {"inpipe", b2i(r.inPipe)},
		{"once", b2i(r.inOnceDone)}, {"winh", int64(r.winH)}, {"winw", int64(r.winW)},
		{"idlefd", int64(r.idleFd)}, {"shimfd", int64(r.shimFd)},
	} {
		b = append(b, ',')
		b = append(b, kv.k...)
		b = append(b, '=')
		b = strconv.AppendInt(b, kv.v, 10)
	}
	return string(b)
}

func b2i(v bool) int64 {
	if v {
		return 1
	}
	return 0
}

func parseResumeState(s string) (resumeState, error) {
	var r resumeState
	seen := 0
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			return r, errors.New("--resume: bad field " + strconv.Quote(kv))
		}
		seen++
		switch k {
		case "pid":
			r.pid = int(n)
		case "restarts":
			r.restarts = int(n)
		case "started":
			r.startedAt = n
		case "oom":
			r.oomBase = n
		case "backoff":
			r.backoff = n
		case "ctl":
			r.ctl = int(n)
		case "att":
			r.att = int(n)
		case "in":
			r.in = int(n)
		case "inpipe":
			r.inPipe = n != 0
		case "once":
			r.inOnceDone = n != 0
		case "winh":
			r.winH = uint16(n)
		case "winw":
			r.winW = uint16(n)
		case "idlefd":
			r.idleFd = int(n)
		case "shimfd":
			r.shimFd = int(n)
		default:
			return r, errors.New("--resume: unknown field " + strconv.Quote(k))
		}
	}
	if seen != 14 || r.pid <= 0 || r.ctl < 3 || r.att < 3 || r.idleFd < 3 || r.shimFd < 3 {
		return r, errors.New("--resume: incomplete state " + strconv.Quote(s))
	}
	return r, nil
}

// resume takes the monitor over from berth-shim-idle: what setup and
// startContainer did is in the state and the inherited descriptors.
func (s *shim) resume() error {
	st := s.cfg.resume
	if err := s.setupCommon(); err != nil {
		return err
	}
	al, err := inheritedListener(st.att, s.path("attach.sock"))
	if err != nil {
		return err
	}
	cl, err := inheritedListener(st.ctl, s.path("control.sock"))
	if err != nil {
		return err
	}
	s.ctlFd, s.attFd = st.ctl, st.att
	s.restarts, s.startedAt, s.oomBase = st.restarts, time.Unix(0, st.startedAt), st.oomBase
	s.backoff.SetDelay(time.Duration(st.backoff))
	s.term.tty = s.cfg.tty
	if st.winH != 0 || st.winW != 0 {
		s.term.size = &protocol.WindowSize{Height: st.winH, Width: st.winW}
	}
	for i, fd := range s.cfg.resumeOut {
		if fd < 0 {
			continue
		}
		unix.CloseOnExec(fd)
		if err := unix.SetNonblock(fd, true); err != nil {
			return &os.SyscallError{Syscall: "fcntl", Err: err}
		}
		o := s.outs[i]
		o.f, o.fd = os.NewFile(uintptr(fd), o.name), fd
		o.lines.Restore(s.cfg.resumePartial[i])
	}
	switch {
	case st.in == -2 && s.outs[0].f != nil:
		s.in.set(s.outs[0].f, false)
	case st.in >= 0:
		unix.CloseOnExec(st.in)
		_ = unix.SetNonblock(st.in, true)
		s.in.set(os.NewFile(uintptr(st.in), "stdin"), st.inPipe)
	}
	s.in.onceDone = st.inOnceDone
	if s.cfg.tty && s.outs[0].f != nil {
		if err := s.term.set(s.outs[0].f); err != nil {
			s.warn("resize the terminal: " + err.Error())
		}
	}
	if s.init, err = s.reaper.watch(st.pid); err != nil {
		return err
	}
	// The first client is long past (--wait-attach).
	s.firstClient.Do(func() { close(s.attached) })
	for _, o := range s.outs {
		if o.f != nil {
			o.run()
		}
	}
	go s.serveAttach(al)
	go s.serveControl(cl)
	go s.reaper.sweep(s.out.trim)
	go s.idleLoop()
	return nil
}
