// Package shim is the engine's side of berth-shim, the per-container
// monitor: it starts a monitor (Start), attaches to its container's stdio
// (Attach), resizes its terminal and closes its stdin (Resize, CloseStdin),
// takes the final exit over from it (TakeExit),
// reads how the container exited (ReadExit) and its current run
// (ReadRun), tells whether the monitor still runs (Alive), reads the
// json-file log (ReadLogs) and splits Docker's stdcopy streams (Demux,
// NewStdWriter).
//
// The protocol between the two, and the files of the monitor's directory,
// are drawn in package protocol; the log format is package jsonlog's.
package shim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/shim/protocol"
	"github.com/berthproject/berth/internal/unixsock"
)

// Options are what Start passes to the monitor.
type Options struct {
	Binary      string // the berth-shim executable
	ID          string // the container id (the runtime's)
	Bundle      string // the OCI bundle directory
	Runtime     string // the OCI runtime executable
	RuntimeRoot string // the runtime's --root
	Dir         string // the monitor's directory (must exist; see package protocol)

	Log         string // the json-file log; "": output is not logged
	LogMaxSize  int64  // rotate at this size; 0: the monitor's default (10 MiB); < 0: never
	LogMaxFiles int    // files kept in all; 0: the monitor's default (3)

	Tty       bool   // the container has a terminal (process.terminal in the bundle)
	Stdin     bool   // the container's stdin is open (attach clients write to it)
	StdinOnce bool   // close stdin when the first attached stdin ends
	Restart   string // restart policy in --restart syntax; "": no
	OOMFile   string // the cgroup file with the "oom_kill N" counter; "": no OOM report

	ExitCommand string   // run when the container is gone for good
	ExitArgs    []string // its arguments

	Env []string // the monitor's environment; nil: this process's

	// BeforeStart, when set, makes the monitor wait (up to 10 s) for an
	// attach client before it starts the container; it is called once the
	// container is being created, to attach (see Attach) without missing
	// any output.
	BeforeStart func(dir string) error `json:"-"`
}

// Args returns the monitor's command line arguments for o.
func (o *Options) Args() []string {
	args := []string{"--id", o.ID, "--bundle", o.Bundle, "--runtime", o.Runtime}
	if o.RuntimeRoot != "" {
		args = append(args, "--runtime-root", o.RuntimeRoot)
	}
	args = append(args, "--dir", o.Dir)
	if o.Log != "" {
		args = append(args, "--log", o.Log)
	}
	if o.LogMaxSize != 0 {
		args = append(args, "--log-max-size", strconv.FormatInt(max(o.LogMaxSize, -1), 10))
	}
	if o.LogMaxFiles != 0 {
		args = append(args, "--log-max-files", strconv.Itoa(o.LogMaxFiles))
	}
	for _, f := range []struct {
		on   bool
		flag string
	}{{o.Tty, "--tty"}, {o.Stdin, "--stdin"}, {o.StdinOnce, "--stdin-once"}, {o.BeforeStart != nil, "--wait-attach"}} {
		if f.on {
			args = append(args, f.flag)
		}
	}
	if o.Restart != "" {
		args = append(args, "--restart", o.Restart)
	}
	if o.OOMFile != "" {
		args = append(args, "--oom-file", o.OOMFile)
	}
	if o.ExitCommand != "" {
		args = append(args, "--exit-command", o.ExitCommand)
		for _, a := range o.ExitArgs {
			args = append(args, "--exit-arg", a)
		}
	}
	return args
}

// StartError is the monitor's report that the container could not be
// started (the runtime's message, as Docker's "OCI runtime create failed:
// ..."). The monitor has cleaned up and exited.
type StartError struct {
	ID  string
	Msg string
}

func (e *StartError) Error() string { return e.Msg }

// Start starts a monitor for the container of o and waits until the
// container runs; it returns the container init's pid. The monitor runs in
// a session of its own and outlives the calling process.
func Start(o Options) (pid int, err error) {
	if o.Binary == "" || o.ID == "" || o.Bundle == "" || o.Runtime == "" || o.Dir == "" {
		return 0, errors.New("start berth-shim: Binary, ID, Bundle, Runtime and Dir are required")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("start berth-shim for %s: %w", o.ID, err)
	}
	defer r.Close()
	args := o.Args()
	files := []*os.File{w} // fd 3, closed here once the monitor has it
	if o.BeforeStart != nil {
		// The attach socket is made here and passed down (fd 4): the
		// client connects and says hello at once, while the monitor
		// starts, instead of polling for a socket of the monitor's.
		l, err := unixsock.Listen(filepath.Join(o.Dir, "attach.sock"))
		if err != nil {
			w.Close()
			return 0, fmt.Errorf("start berth-shim for %s: %w", o.ID, err)
		}
		files = append(files, l)
		args = append(args, "--attach-fd", "4")
	}
	env := o.Env
	if env == nil {
		env = os.Environ()
	}
	// One P from the first instruction: fewer threads and caches in every
	// monitor (the monitor removes it from its children's environment).
	env = append(env[:len(env):len(env)], "GOMAXPROCS=1")
	shimPid, err := spawn(o.Binary, args, env, files)
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		return 0, fmt.Errorf("start berth-shim for %s: %w", o.ID, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- reap(shimPid) }() // whenever it ends

	var hookErr error
	if o.BeforeStart != nil {
		if err := o.BeforeStart(o.Dir); err != nil {
			hookErr = fmt.Errorf("attach to %s before start: %w", o.ID, err)
		}
	}
	line, err := io.ReadAll(r)
	if err != nil {
		return 0, fmt.Errorf("read the ready pipe of berth-shim for %s: %w", o.ID, err)
	}
	if len(bytes.TrimSpace(line)) == 0 {
		werr := <-exited
		return 0, fmt.Errorf("berth-shim for %s exited without reporting (%v)%s", o.ID, werr, shimLog(o.Dir))
	}
	ready, err := protocol.ParseReady(line)
	if err != nil {
		return 0, fmt.Errorf("berth-shim for %s: ready line %q: %w", o.ID, line, err)
	}
	if ready.Error != "" {
		return 0, &StartError{ID: o.ID, Msg: ready.Error}
	}
	return ready.Pid, hookErr
}

// spawn starts the monitor in a session of its own, stdio on /dev/null
// and files from fd 3 on. It calls syscall.ForkExec, not os.StartProcess,
// which probes once per process whether clone can return a pidfd, at the
// cost of one more process creation.
func spawn(binary string, args, env []string, files []*os.File) (int, error) {
	path := binary
	if !strings.Contains(path, "/") {
		var err error
		if path, err = exec.LookPath(binary); err != nil {
			return 0, err
		}
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	fds := []uintptr{null.Fd(), null.Fd(), null.Fd()}
	for _, f := range files {
		fds = append(fds, f.Fd())
	}
	return syscall.ForkExec(path, append([]string{binary}, args...), &syscall.ProcAttr{
		Env: env, Files: fds, Sys: &syscall.SysProcAttr{Setsid: true},
	})
}

// reap waits for the monitor's exit and describes it as os/exec does:
// nil for exit status 0.
func reap(pid int) error {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return &os.SyscallError{Syscall: "wait4", Err: err}
		}
		break
	}
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited():
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Errorf("signal: %v", ws.Signal())
	}
	return fmt.Errorf("wait status %#x", uint32(ws))
}

// shimLog returns the monitor's warnings, if any, for an error message.
func shimLog(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "shim.log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	return ": " + strings.TrimSpace(string(b))
}

// Exit is how the container's init exited.
type Exit = protocol.Exit

// ReadExit reads the last exit the monitor recorded in dir. The error
// wraps fs.ErrNotExist while the container has not exited yet.
func ReadExit(dir string) (*Exit, error) {
	path := filepath.Join(dir, "exit.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	e, err := protocol.ParseExit(b)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &e, nil
}

// Run is the container's current run, as the monitor recorded it.
type Run = protocol.Run

// ReadRun reads the run the monitor in dir last started. The error wraps
// fs.ErrNotExist before the first start.
func ReadRun(dir string) (*Run, error) {
	path := filepath.Join(dir, "run.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := protocol.ParseRun(b)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &r, nil
}

// Pid returns the monitor's pid recorded in dir.
func Pid(dir string) (int, error) {
	path := filepath.Join(dir, "shim.pid")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("read %s: invalid pid %q", path, b)
	}
	return pid, nil
}

// Alive reports whether the monitor of dir runs: the process of shim.pid
// exists, is not a zombie, and has "--dir DIR" on its command line (which
// no other live process can have, so a reused pid is not mistaken for it).
func Alive(dir string) bool {
	pid, err := Pid(dir)
	if err != nil {
		return false
	}
	proc := "/proc/" + strconv.Itoa(pid)
	cmdline, err := os.ReadFile(proc + "/cmdline")
	// The monitor executes itself and berth-shim-idle in turn: inside
	// execve, from the switch to the new program's memory until its
	// arguments are laid out, the command line reads empty. That is
	// usually a moment, but on a loaded machine the monitor can be
	// descheduled or wait for a page of the binary in between: a bound
	// of a few milliseconds took a live monitor for a dead one, and its
	// running container was stopped as orphaned. Wait while the process
	// is in execve; empty for good is a zombie or a kernel thread that
	// took the pid. execWait only bounds a process that never gets a
	// command line (one exec'd without arguments on an old kernel).
	for deadline := time.Now().Add(execWait); err == nil && len(cmdline) == 0 && inExec(proc) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		cmdline, err = os.ReadFile(proc + "/cmdline")
	}
	if err != nil || len(cmdline) == 0 { // gone, or a zombie
		return false
	}
	args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	want := filepath.Clean(dir)
	for i, a := range args {
		switch {
		case a == "--dir" && i+1 < len(args) && filepath.Clean(args[i+1]) == want:
			return true
		case strings.HasPrefix(a, "--dir=") && filepath.Clean(a[len("--dir="):]) == want:
			return true
		}
	}
	return false
}

// execWait bounds how long Alive waits for a process in execve to get its
// command line; an execve takes milliseconds.
const execWait = 10 * time.Second

// pfKthread is PF_KTHREAD in the flags of /proc/PID/stat.
const pfKthread = 0x00200000

// inExec reports whether the process of /proc/PID proc, whose command line
// read empty, may be inside execve: it lives (not gone, not a zombie) and
// is not a kernel thread (whose command line is always empty).
func inExec(proc string) bool {
	b, err := os.ReadFile(proc + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false
	}
	// After the command: state, ppid, pgrp, session, tty_nr, tpgid, flags.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 7 || f[0] == "Z" || f[0] == "X" {
		return false
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	return err == nil && flags&pfKthread == 0
}

// dial connects to one of the monitor's sockets.
func dial(dir, name string) (*net.UnixConn, error) {
	// unixsock reaches paths longer than a sockaddr_un holds.
	f, err := unixsock.Dial(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("connect to the container monitor: %w", err)
	}
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("connect to the container monitor: %w", err)
	}
	return c.(*net.UnixConn), nil
}

// control sends one control request and returns the monitor's answer.
func control(dir string, req protocol.Request) error {
	c, err := dial(dir, "control.sock")
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(req.Append(nil)); err != nil {
		return fmt.Errorf("send to the container monitor: %w", err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read the container monitor's reply: %w", err)
	}
	msg, err := protocol.ParseReply(line)
	if err != nil {
		return fmt.Errorf("container monitor reply %q: %w", line, err)
	}
	if msg != "" {
		return errors.New(msg)
	}
	return nil
}

// Resize sets the size of the container's terminal.
func Resize(dir string, height, width uint16) error {
	return control(dir, protocol.Request{Resize: &protocol.WindowSize{Height: height, Width: width}})
}

// KillAfter asks the monitor to kill every process of the container if
// its current run still runs after d: the deadline of a stop, which so
// holds when the caller is killed before it.
func KillAfter(dir string, d time.Duration) error {
	return control(dir, protocol.Request{KillAfter: d})
}

// CloseStdin closes the container's stdin (the container reads EOF).
func CloseStdin(dir string) error {
	return control(dir, protocol.Request{CloseStdin: true})
}

// ExitHandover is a container's final exit taken over from its monitor by
// the client that attached with AttachOptions.Exit: the caller records the
// exit (what the monitor's exit command would have done), then calls Done.
// Closed without Done, the monitor runs its exit command after all.
type ExitHandover struct {
	Exit  *Exit // the final exit
	conn  *net.UnixConn
	r     *bufio.Reader
	pidfd int // the monitor's
}

// TakeExit takes the final exit of the container of the monitor in dir.
// It fails when there is none to take: the container has not exited yet
// (the caller's output ended early), the monitor is gone, or it did not
// wait (the caller did not attach with Exit, or came too late); the exit
// command records the exit then.
func TakeExit(dir string) (*ExitHandover, error) {
	pid, err := Pid(dir)
	if err != nil {
		return nil, err
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, &os.SyscallError{Syscall: "pidfd_open", Err: err}
	}
	if !Alive(dir) { // the pid is not (or no longer) the monitor's
		unix.Close(pidfd)
		return nil, errors.New("take the exit: the container monitor is gone")
	}
	c, err := dial(dir, "control.sock")
	if err != nil {
		unix.Close(pidfd)
		return nil, err
	}
	h := &ExitHandover{conn: c, r: bufio.NewReader(c), pidfd: pidfd}
	if err := h.request(protocol.Request{TakeExit: true}); err != nil {
		h.Close()
		return nil, err
	}
	if h.Exit, err = ReadExit(dir); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// request sends one control request on the handover's connection.
func (h *ExitHandover) request(req protocol.Request) error {
	if _, err := h.conn.Write(req.Append(nil)); err != nil {
		return fmt.Errorf("send to the container monitor: %w", err)
	}
	line, err := h.r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read the container monitor's reply: %w", err)
	}
	msg, err := protocol.ParseReply(line)
	if err != nil {
		return fmt.Errorf("container monitor reply %q: %w", line, err)
	}
	if msg != "" {
		return errors.New(msg)
	}
	return nil
}

// WaitDeleted waits until the runtime has deleted the container (the
// monitor deletes it while the caller records the exit). An error says the
// delete failed, or the monitor does not tell (an older one, which deleted
// it before it handed the exit over): the caller checks for itself.
func (h *ExitHandover) WaitDeleted() error {
	return h.request(protocol.Request{WaitDeleted: true})
}

// monitorExitTimeout bounds Done's wait for the monitor, which has nothing
// left to do but finish the runtime's delete and remove its sockets.
const monitorExitTimeout = 5 * time.Second

// Done tells the monitor the exit is recorded, closes the handover and
// waits for the monitor to exit: nothing of the container is left then.
func (h *ExitHandover) Done() error {
	err := h.request(protocol.Request{ExitHandled: true})
	h.conn.Close()
	if err == nil {
		fds := []unix.PollFd{{Fd: int32(h.pidfd), Events: unix.POLLIN}}
		for deadline := time.Now().Add(monitorExitTimeout); ; {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			n, perr := unix.Poll(fds, int(left/time.Millisecond)+1)
			if n > 0 || perr != nil && perr != unix.EINTR {
				break
			}
		}
	}
	unix.Close(h.pidfd)
	h.pidfd = -1
	return err
}

// Removed is Done for a container the caller removed (--rm): the monitor
// removes the run directory once its runtime delete is done, and the
// caller returns at once (it does not wait for the monitor's exit).
func (h *ExitHandover) Removed() error {
	err := h.request(protocol.Request{ExitRemoved: true})
	h.conn.Close()
	unix.Close(h.pidfd)
	h.pidfd = -1
	return err
}

// Close gives the exit back to the monitor unless Done was called.
func (h *ExitHandover) Close() error {
	if h.pidfd < 0 {
		return nil
	}
	unix.Close(h.pidfd)
	h.pidfd = -1
	return h.conn.Close()
}
