package main

import (
	"bytes"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/shim/jsonlog"
	"github.com/berthproject/berth/internal/shim/protocol"
	"github.com/berthproject/berth/internal/unixsock"
)

// shim is the monitor of one container.
type shim struct {
	cfg     *config
	reaper  *reaper
	env     []string
	devnull int
	ready   *os.File // the ready pipe (fd 3) until the first start is reported

	out  *sink
	in   input
	term term
	outs [2]*stream // stdout (or the pty), stderr

	attached    chan struct{} // closed when the first attach client said hello
	firstClient sync.Once
	hand        *handover // the final exit, for a client that records it

	init      *proc            // the container's init of the current run
	startedAt time.Time        // when the current run started
	oomBase   int64            // oom_kill count before the current run; -1: unknown
	ended     atomic.Int64     // runs that have ended (kill-after kills only the run it was asked in)
	restarts  int              // restarts done before the current run
	backoff   protocol.Backoff // the delay before the next restart

	exe          string // this program, for berth-shim-idle to execute again
	idle         *idle  // the hand-over to berth-shim-idle
	ctlFd, attFd int    // the listening sockets' descriptors
}

// waitAttachTimeout is how long --wait-attach waits for a client.
const waitAttachTimeout = 10 * time.Second

// run is the monitor's life; it returns the exit status.
func run(args []string) int {
	var ready *os.File
	if !resuming(args) {
		// A resumed monitor reported long ago; its fd 3 may be anything.
		ready = readyPipe()
	}
	cfg, err := parseArgs(args)
	if err != nil {
		report(ready, protocol.Ready{Error: "berth-shim: " + err.Error()})
		return 2
	}
	closeStrayFds(cfg)
	s := &shim{cfg: cfg, reaper: newReaper(), env: childEnv(), ready: ready, attached: make(chan struct{}), hand: newHandover()}
	s.exe = shimPath()
	s.idle = newIdle(s.exe, os.Getenv, cfg.resume)
	if cfg.resume != nil {
		// Executed by descriptor (/proc/self/fd/N), the process is named "N".
		_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&[]byte("berth-shim\x00")[0])), 0, 0, 0)
		if err := s.resume(); err != nil {
			// The container runs on, without its monitor: the engine
			// finds it gone and reports the container stopped.
			s.warn("resume after " + idleBinary + ": " + err.Error())
			return 1
		}
		s.monitor()
		return 0
	}
	if err := s.setup(); err != nil {
		report(ready, protocol.Ready{Error: "berth-shim: " + err.Error()})
		s.removeSockets()
		return 1
	}
	if err := s.startContainer(true); err != nil {
		s.deleteContainer()
		s.stopOutput()
		report(ready, protocol.Ready{Error: err.Error()})
		s.ready = nil
		s.removeSockets()
		return 1
	}
	s.writeRun(0)
	report(s.ready, protocol.Ready{Pid: s.init.pid})
	s.ready = nil
	s.monitor()
	return 0
}

// resuming reports whether args resume the monitor after berth-shim-idle.
func resuming(args []string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, "--resume=") {
			return true
		}
	}
	return false
}

// readyPipe returns fd 3 if it is a pipe (as the engine passes it), so
// that a monitor started without one never writes to another file.
func readyPipe() *os.File {
	var st unix.Stat_t
	if err := unix.Fstat(3, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return nil
	}
	unix.CloseOnExec(3)
	return os.NewFile(3, "ready")
}

// report writes the ready line and closes the pipe.
func report(ready *os.File, r protocol.Ready) {
	if ready == nil {
		return
	}
	_, _ = ready.Write(r.Append(nil))
	ready.Close()
}

func (s *shim) path(name string) string { return s.cfg.dir + "/" + name }

// shimPath is this program's path: the one it was started by, which stays
// right when the binary is replaced on disk (/proc/self/exe would name the
// deleted file).
func shimPath() string {
	if strings.HasPrefix(os.Args[0], "/") {
		return os.Args[0]
	}
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	return p
}

// setup does what precedes the first run: subreaper, pid file, log,
// sockets.
func (s *shim) setup() error {
	if err := writeFileAtomic(s.path("shim.pid"), []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
		return err
	}
	// What a previous life of the container left says nothing of this one.
	for _, name := range []string{"exit.json", "run.json", "stopped", "init.pid"} {
		if err := os.Remove(s.path(name)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if err := s.setupCommon(); err != nil {
		return err
	}
	var al *os.File
	var err error
	if s.cfg.attachFd > 0 {
		al, err = inheritedListener(s.cfg.attachFd, s.path("attach.sock"))
	} else {
		al, err = unixsock.Listen(s.path("attach.sock"))
	}
	if err != nil {
		return err
	}
	cl, err := unixsock.Listen(s.path("control.sock"))
	if err != nil {
		return err
	}
	s.attFd, s.ctlFd = fileFd(al), fileFd(cl)
	go s.serveAttach(al)
	go s.serveControl(cl)
	go s.reaper.sweep(s.out.trim)
	go s.idleLoop()
	return nil
}

// setupCommon does what a monitor resumed after berth-shim-idle does too:
// signals, subreaper, /dev/null, the log and the output streams.
func (s *shim) setupCommon() error {
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return &os.SyscallError{Syscall: "prctl PR_SET_CHILD_SUBREAPER", Err: err}
	}
	fd, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/dev/null", Err: err}
	}
	s.devnull = fd
	s.out = &sink{tty: s.cfg.tty, logFiles: s.cfg.logMaxFiles, warn: s.warn}
	if s.cfg.log != "" {
		if s.out.log, err = jsonlog.Open(s.cfg.log, s.cfg.logMaxSize, s.cfg.logMaxFiles); err != nil {
			return err
		}
	}
	s.outs[0] = newStream(s.out, protocol.Stdout)
	s.outs[1] = newStream(s.out, protocol.Stderr)
	s.term.tty = s.cfg.tty
	return nil
}

// startContainer creates and starts the container once. On error the
// container may exist: the caller deletes it.
//
// With --wait-attach the first client is awaited before anything runs: it
// receives all of the output, since the monitor copies none before the
// container exists.
func (s *shim) startContainer(first bool) error {
	if first && s.cfg.waitAttach {
		t := time.NewTimer(waitAttachTimeout)
		select {
		case <-s.attached:
		case <-t.C:
		}
		t.Stop()
	}
	// The count before the run, read before the runtime makes the cgroup:
	// a container can be killed for memory within a millisecond of its
	// start, before the runtime has even returned.
	s.oomBase = s.oomCountBefore()
	if err := s.launch(); err != nil {
		return err
	}
	s.startedAt = time.Now()
	return nil
}

// launch runs `runtime run --detach` (create and start in one runtime
// process: one process start less than create, then start) with the
// container's stdio, adopts the init and starts copying its output.
func (s *shim) launch() (err error) {
	_ = os.Remove(s.path("init.pid"))
	var stdio [3]int
	var closeAfter []int // the container's ends, closed once the runtime has them
	defer func() {
		for _, fd := range closeAfter {
			unix.Close(fd)
		}
	}()
	var console *os.File
	var errRead int // where the runtime's stderr can be read on failure
	args := []string{"run", "--detach", "--bundle", s.cfg.bundle, "--pid-file", s.path("init.pid")}
	if s.cfg.tty {
		if console, err = unixsock.Listen(s.path("console.sock")); err != nil {
			return err
		}
		defer func() {
			console.Close()
			_ = os.Remove(s.path("console.sock"))
		}()
		args = append(args, "--console-socket", s.path("console.sock"))
		f, r, w, perr := pipe(true)
		if perr != nil {
			return perr
		}
		defer f.Close()
		closeAfter = append(closeAfter, w)
		stdio = [3]int{s.devnull, s.devnull, w}
		errRead = r
	} else {
		stdio[0] = s.devnull
		if s.cfg.stdin {
			w, _, r, perr := pipe(false)
			if perr != nil {
				return perr
			}
			closeAfter = append(closeAfter, r)
			stdio[0] = r
			s.in.set(w, true)
		}
		for i, st := range s.outs {
			f, mine, theirs, perr := pipe(true)
			if perr != nil {
				return perr
			}
			closeAfter = append(closeAfter, theirs)
			stdio[i+1] = theirs
			st.f, st.fd = f, mine
		}
		// Before start, whatever is on the container's stderr is the
		// runtime's.
		errRead = s.outs[1].fd
	}
	args = append(args, s.cfg.id)
	// Reported as Docker words it: the container could not be created.
	if err := s.runtimeCmd("create", stdio, errRead, args...); err != nil {
		return err
	}
	if s.cfg.tty {
		master, fd, err := recvConsole(console)
		if err != nil {
			return err
		}
		if err := s.term.set(master); err != nil {
			s.warn("resize the terminal: " + err.Error())
		}
		if s.cfg.stdin {
			s.in.set(master, false)
		}
		s.outs[0].f, s.outs[0].fd = master, fd
	}
	for _, st := range s.outs {
		if st.f != nil {
			st.run()
		}
	}
	b, err := os.ReadFile(s.path("init.pid"))
	if err != nil {
		return errors.New("OCI runtime create failed: read the init pid: " + err.Error())
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid <= 0 {
		return errors.New("OCI runtime create failed: invalid init pid " + strconv.Quote(string(b)))
	}
	if s.init, err = s.reaper.watch(pid); err != nil {
		return errors.New("OCI runtime create failed: watch the init: " + err.Error())
	}
	return nil
}

// recvConsole takes the pty master the runtime sent on the console
// socket: by the time `runtime create` has succeeded, the connection is
// queued and the message is in it.
func recvConsole(l *os.File) (*os.File, int, error) {
	rc, err := l.SyscallConn()
	if err != nil {
		return nil, -1, err
	}
	cfd := -1
	var aerr error
	_ = rc.Control(func(fd uintptr) {
		cfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_CLOEXEC)
	})
	if aerr != nil {
		return nil, -1, errors.New("OCI runtime create failed: no terminal received on the console socket: " + aerr.Error())
	}
	defer unix.Close(cfd)
	oob := make([]byte, unix.CmsgSpace(4))
	name := make([]byte, 256)
	_, oobn, _, _, err := unix.Recvmsg(cfd, name, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, -1, errors.New("OCI runtime create failed: receive the terminal: " + err.Error())
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, -1, errors.New("OCI runtime create failed: no terminal in the console socket message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, -1, errors.New("OCI runtime create failed: expected one terminal descriptor")
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, -1, &os.SyscallError{Syscall: "fcntl", Err: err}
	}
	return os.NewFile(uintptr(fds[0]), "pty"), fds[0], nil
}

// runtimeArgv is the runtime's command line with the global flags.
func (s *shim) runtimeArgv(args ...string) []string {
	argv := []string{s.cfg.runtime}
	if s.cfg.runtimeRoot != "" {
		argv = append(argv, "--root", s.cfg.runtimeRoot)
	}
	argv = append(argv, "--log", s.path("runtime.log"), "--log-format", "json")
	return append(argv, args...)
}

// runtimeSimple runs a runtime command with stdio on /dev/null but for a
// stderr pipe the error message is read from.
func (s *shim) runtimeSimple(args ...string) error {
	f, r, w, err := pipe(true)
	if err != nil {
		return err
	}
	defer f.Close()
	defer unix.Close(w)
	return s.runtimeCmd(args[0], [3]int{s.devnull, s.devnull, w}, r, args...)
}

// runtimeCmd runs the runtime and waits for it. On failure the error is
// "OCI runtime OP failed: " and the runtime's last "level":"error" log
// message, else what it wrote on stderr (read from errRead), else its exit
// status.
func (s *shim) runtimeCmd(op string, stdio [3]int, errRead int, args ...string) error {
	var mark int64
	if st, err := os.Stat(s.path("runtime.log")); err == nil {
		mark = st.Size()
	}
	p, err := s.reaper.spawn(s.runtimeArgv(args...), s.env, stdio)
	if err != nil {
		return errors.New("OCI runtime " + op + " failed: " + err.Error())
	}
	ws := s.reaper.wait(p)
	if ws.Exited() && ws.ExitStatus() == 0 {
		return nil
	}
	msg := lastLogError(s.path("runtime.log"), mark)
	if msg == "" && errRead >= 0 {
		msg = string(bytes.TrimSpace(drain(errRead, 4096)))
	}
	if msg == "" {
		msg = s.cfg.runtime + " exited with status " + strconv.Itoa(protocol.ExitCode(ws))
	}
	return errors.New("OCI runtime " + op + " failed: " + msg)
}

// lastLogError returns the message of the last "level":"error" line the
// runtime wrote to its JSON log after offset mark.
func lastLogError(path string, mark int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() <= mark {
		return ""
	}
	const max = 64 << 10
	if st.Size()-mark > max {
		mark = st.Size() - max
	}
	buf := make([]byte, st.Size()-mark)
	n, _ := f.ReadAt(buf, mark)
	buf = buf[:n]
	msg := ""
	for len(buf) > 0 {
		line := buf
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			line, buf = buf[:i], buf[i+1:]
		} else {
			buf = nil
		}
		if !bytes.Contains(line, []byte(`"level":"error"`)) {
			continue
		}
		_ = protocol.DecodeObject(line, func(name, v []byte) error {
			if string(name) == "msg" {
				if m, err := protocol.String(v); err == nil {
					msg = m
				}
			}
			return nil
		})
	}
	return msg
}

// deleteContainer removes the container from the runtime, killing what is
// left of it.
func (s *shim) deleteContainer() {
	if err := s.runtimeSimple("delete", "--force", s.cfg.id); err != nil {
		s.warn(err.Error())
	}
}

// stopOutput ends the current run's output copies and stdin.
func (s *shim) stopOutput() {
	for _, st := range s.outs {
		st.stop()
	}
	s.in.close()
	s.in.set(nil, false)
	_ = s.term.set(nil)
}

// monitor waits for each run to end, records it and restarts the
// container as its policy says; then the exit command, or the attach
// client that asked to, records the final exit.
func (s *shim) monitor() {
	handedOver, removeDir := false, false
	for {
		restarts := s.restarts
		s.idle.startRun()
		ws := s.reaper.wait(s.init)
		s.idle.endRun()
		s.ended.Add(1)
		exit := protocol.Exit{ExitCode: protocol.ExitCode(ws), FinishedAt: time.Now(), RestartCount: restarts}
		s.stopOutput()
		if n := s.oomCount(); s.oomBase >= 0 && n > s.oomBase {
			exit.OOMKilled = true
		}
		exit.Restarting = s.cfg.restart.ShouldRestart(exit.ExitCode, restarts, s.stopped())
		s.writeExit(exit)
		if !exit.Restarting {
			del := newDeletion()
			s.hand.deleting(del)
			if !s.hand.offer() {
				// Deleted before the clients' output ends: a client
				// that looks at the container finds the runtime done
				// with it.
				s.deleteContainer()
				s.out.closeClients()
				break
			}
			// The claimant records the exit while the runtime deletes
			// the container. One that keeps the container waits for
			// this process's exit (after the delete); one that removed
			// it (exit-removed) leaves the run directory to us.
			go func() { del.finish(s.runtimeSimple("delete", "--force", s.cfg.id)) }()
			s.out.closeClients()
			handedOver = s.hand.wait()
			if err := del.wait(); err != nil {
				s.warn(err.Error())
			} else if handedOver && s.hand.removedByTaker() {
				removeDir = true
			}
			break
		}
		s.deleteContainer()
		// The engine records the exit (the container restarting) and
		// reports it (a die event).
		s.exitCommand()
		delay := s.backoff.Next(exit.FinishedAt.Sub(s.startedAt))
		if !s.sleepUnlessStopped(delay) {
			// Stopped while waiting to restart: Docker counted the
			// restart when it decided on it (inspect showed it as
			// "restarting" with that count) and keeps the count.
			exit.Restarting, exit.RestartCount = false, restarts+1
			s.writeExit(exit)
			s.out.closeClients()
			break
		}
		restarts++
		s.restarts = restarts
		if err := s.startContainer(false); err != nil {
			s.deleteContainer()
			s.stopOutput()
			exit.Restarting, exit.Error, exit.RestartCount = false, err.Error(), restarts
			s.writeExit(exit)
			s.out.closeClients()
			break
		}
		s.writeRun(restarts)
		// The engine records the new run (its pid) and reports it (a
		// start event).
		s.exitCommand()
	}
	if !handedOver {
		s.exitCommand()
	}
	s.removeSockets()
	if removeDir {
		s.removeRunDir()
	}
}

// removeRunDir removes the run directory of a container that the client
// which recorded its exit removed (exit-removed), now that the runtime is
// done with it: the bundle, the logs, the state files. Nothing below a
// mount point is touched: a root filesystem or a volume still mounted
// there keeps the directory for the engine's sweep of orphan run
// directories.
func (s *shim) removeRunDir() {
	dir := filepath.Clean(s.cfg.dir)
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		s.warn("keep the run directory: " + err.Error())
		return
	}
	if p, ok := mountBelow(mounts, dir); ok {
		s.warn("keep the run directory: " + p + " is mounted")
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		s.warn("remove the run directory: " + err.Error())
	}
}

// mountBelow returns a mount point of mountinfo at or below dir.
func mountBelow(mountinfo []byte, dir string) (string, bool) {
	for line := range bytes.Lines(mountinfo) {
		f := bytes.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := unescapeMountPath(f[4])
		if p == dir || len(p) > len(dir) && p[:len(dir)] == dir && p[len(dir)] == '/' {
			return p, true
		}
	}
	return "", false
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s []byte) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(string(s[i+1:i+4]), 8, 8); err == nil {
				out = append(out, byte(n))
				i += 3
				continue
			}
		}
		out = append(out, s[i])
	}
	return string(out)
}

// killAfter kills every process of the current run if it still runs
// after d: the deadline of a stop, which so holds when the engine's
// process that asked for it is gone. It marks the container stopped
// first, as the engine does: a stop whose process is killed right after
// handing over its deadline is still a stop (the restart policy does not
// bring the container back), as a Docker stop the daemon finishes.
func (s *shim) killAfter(d time.Duration) {
	s.idle.holdStop()
	if f, err := os.OpenFile(s.path("stopped"), os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	} else {
		s.warn("mark the container stopped: " + err.Error())
	}
	run := s.ended.Load()
	time.AfterFunc(d, func() {
		if s.ended.Load() == run {
			_ = s.runtimeSimple("kill", "--all", s.cfg.id, "9")
		}
	})
}

// stopped reports whether the engine marked the container stopped.
func (s *shim) stopped() bool {
	_, err := os.Lstat(s.path("stopped"))
	return err == nil
}

// sleepUnlessStopped waits d, and returns false as soon as the container
// is marked stopped.
func (s *shim) sleepUnlessStopped(d time.Duration) bool {
	const step = 100 * time.Millisecond
	for end := time.Now().Add(d); ; {
		if s.stopped() {
			return false
		}
		left := time.Until(end)
		if left <= 0 {
			return true
		}
		time.Sleep(min(left, step))
	}
}

// writeRun records the run just started (see protocol.Run).
func (s *shim) writeRun(restarts int) {
	r := protocol.Run{Pid: s.init.pid, StartedAt: s.startedAt, RestartCount: restarts}
	if err := writeFileAtomic(s.path("run.json"), r.Append(nil)); err != nil {
		s.warn(err.Error())
	}
}

func (s *shim) writeExit(e protocol.Exit) {
	if err := writeFileAtomic(s.path("exit.json"), e.Append(nil)); err != nil {
		s.warn(err.Error())
	}
}

// oomCount reads the "oom_kill N" counter of --oom-file (cgroup v1
// memory.oom_control or v2 memory.events); -1 when unknown.
func (s *shim) oomCount() int64 {
	n, _ := s.readOOMCount()
	return n
}

// oomCountBefore is the oom_kill count a run starts from: the cgroup's
// current count when it exists already, 0 when it does not (the runtime
// makes it anew, counting from 0).
func (s *shim) oomCountBefore() int64 {
	n, err := s.readOOMCount()
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	return n
}

// readOOMCount reads the oom_kill count of --oom-file (-1 when unknown).
func (s *shim) readOOMCount() (int64, error) {
	if s.cfg.oomFile == "" {
		return -1, nil
	}
	b, err := os.ReadFile(s.cfg.oomFile)
	if err != nil {
		return -1, err
	}
	return parseOOMKill(b), nil
}

// parseOOMKill returns N of the "oom_kill N" line of a cgroup file, -1
// when there is none.
func parseOOMKill(b []byte) int64 {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if v, ok := bytes.CutPrefix(line, []byte("oom_kill ")); ok {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// exitCommand runs the engine's exit command, if any, and waits for it.
func (s *shim) exitCommand() {
	if s.cfg.exitCommand == "" {
		return
	}
	argv := append([]string{s.cfg.exitCommand}, s.cfg.exitArgs...)
	p, err := s.reaper.spawn(argv, s.env, [3]int{s.devnull, s.devnull, s.devnull})
	if err != nil {
		s.warn("exit command: " + err.Error())
		return
	}
	if ws := s.reaper.wait(p); !ws.Exited() || ws.ExitStatus() != 0 {
		s.warn("exit command " + s.cfg.exitCommand + " exited with status " + strconv.Itoa(protocol.ExitCode(ws)))
	}
}

func (s *shim) removeSockets() {
	for _, name := range []string{"attach.sock", "control.sock", "console.sock"} {
		_ = os.Remove(s.path(name))
	}
}

// warn appends a line to DIR/shim.log: the monitor's stderr is /dev/null.
func (s *shim) warn(msg string) {
	f, err := os.OpenFile(s.path("shim.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	line := time.Now().UTC().AppendFormat(nil, time.RFC3339Nano)
	line = append(line, ' ')
	line = append(line, msg...)
	_, _ = f.Write(append(line, '\n'))
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so that a reader sees the old content or the new, never part.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
