package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/moby/api/types/events"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/caps"
	"github.com/berthproject/berth/internal/containerspec"
	"github.com/berthproject/berth/internal/fastjson"
	"github.com/berthproject/berth/internal/runtime"
)

// ExecOptions describe a process to run in a running container.
type ExecOptions struct {
	Cmd         []string
	Env         []string
	WorkingDir  string
	User        string
	Tty         bool
	Interactive bool
	Detach      bool
	Privileged  bool
	Stdin       *os.File // default: ours
	Stdout      *os.File
	Stderr      *os.File
}

// Exec runs a process in the container's namespaces, cgroup and security
// settings (through the runtime's exec) and returns its exit code; with
// Detach it returns once the process runs.
func (e *Engine) Exec(ctx context.Context, ref string, o ExecOptions) (int, error) {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return -1, err
	}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		// As Docker serialises them: an exec waits for a start under
		// way (it holds the container's lock until its outcome is
		// recorded), then runs, or finds the container not running if
		// the start failed.
		lk, err := e.lockContainerWait(ctx, c.ID)
		if err != nil {
			return -1, err
		}
		lk.Close()
		if c, err = e.Lookup(ctx, c.ID); err != nil {
			return -1, err
		}
	}
	switch c.State.Status {
	case StatusRunning:
	case StatusPaused:
		// Docker's words, with the container as the user named it;
		// refused before anything of the exec exists (no process
		// file, no exec_create event).
		return -1, fmt.Errorf("%w: Container %s is paused, unpause the container before exec", ErrConflict, ref)
	default:
		return -1, fmt.Errorf("%w: container %s is not running", ErrConflict, c.ID)
	}
	if len(o.Cmd) == 0 {
		return -1, fmt.Errorf("%w: exec: no command", ErrInvalid)
	}
	dir := e.runDir(c.ID)
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return -1, err
	}
	// Only the process is used: decoding the rest (the seccomp profile's
	// hundreds of rules above all) took most of exec's own time.
	var spec struct {
		Process *specs.Process `json:"process"`
	}
	if err := fastjson.Unmarshal(b, &spec); err != nil {
		return -1, err
	}
	in := containerspec.ExecInput{
		Cmd: o.Cmd, Env: o.Env, WorkingDir: o.WorkingDir, User: o.User, Tty: o.Tty, Privileged: o.Privileged,
	}
	// What only -u and --privileged need is read only for them.
	if o.User != "" {
		in.Passwd, in.Group = readInRoot(e.rootfsDir(c.ID), "/etc/passwd"), readInRoot(e.rootfsDir(c.ID), "/etc/group")
	}
	if o.Privileged {
		if in.AvailableCaps, err = caps.Held(); err != nil {
			return -1, err
		}
	}
	p, err := containerspec.ExecProcess(&specs.Spec{Process: spec.Process}, in)
	if err != nil {
		return -1, err
	}
	// The runtime library in this process, or the runtime command the
	// engine's options name, given the process as a file.
	run := func() (int, error) { return e.execInProcess(c, p, o) }
	if e.opts.Runtime != "" {
		pb, err := fastjson.Marshal(p)
		if err != nil {
			return -1, err
		}
		f, err := os.CreateTemp(dir, "exec-*.json")
		if err != nil {
			return -1, err
		}
		defer os.Remove(f.Name())
		if _, err := f.Write(pb); err != nil {
			f.Close()
			return -1, err
		}
		f.Close()
		run = func() (int, error) { return e.runExec(ctx, c, f.Name(), o) }
	}
	execID := newID()
	cmdline := strings.Join(o.Cmd, " ")
	e.containerEvent(c, events.Action(string(events.ActionExecCreate)+": "+cmdline), map[string]string{"execID": execID})
	e.containerEvent(c, events.Action(string(events.ActionExecStart)+": "+cmdline), map[string]string{"execID": execID})
	code, err := run()
	if err == nil && !o.Detach {
		e.containerEvent(c, events.ActionExecDie, map[string]string{"execID": execID, "exitCode": strconv.Itoa(code)})
	}
	return code, err
}

// execInProcess runs p in c with berth-runtime's library in this process:
// the runtime's own exec without a runtime process of its own (a Go
// process start: ~2 ms of an exec here). berth-nsenter, next to
// berth-runtime, makes the process, or starts berth-runtime as its Go init
// where it needs one (a terminal, ...). The outcome is the runtime
// command's: its error on stderr as it words it, the 126/127 convention.
// As the runtime command did, this process passes the signals it gets
// (SIGINT, SIGTERM, ...) on to the exec'd process while it waits.
func (e *Engine) execInProcess(c *Container, p *specs.Process, o ExecOptions) (int, error) {
	r, err := runtime.New(e.runtimeRoot(), e.log)
	if err != nil {
		return -1, err
	}
	r.Binary = e.runtimePath()
	stdio := [3]*os.File{o.Stdin, o.Stdout, o.Stderr}
	if stdio[0] == nil && !o.Interactive {
		null, err := os.Open(os.DevNull)
		if err != nil {
			return -1, err
		}
		defer null.Close()
		stdio[0] = null
	}
	if stdio[2] == nil {
		stdio[2] = os.Stderr
	}
	code, err := r.Exec(c.ID, p, runtime.ExecOpts{Detach: o.Detach, Stdio: stdio})
	if err == nil {
		return code, nil
	}
	fmt.Fprintln(stdio[2], "berth-runtime:", err)
	return execFailureCode(err.Error()), nil
}

// execFailureCode is the exit code of an exec the runtime could not make:
// Docker's 126/127 convention, else 1 (the runtime command's status).
func execFailureCode(msg string) int {
	switch {
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"):
		return 127
	case strings.Contains(msg, "permission denied"), strings.Contains(msg, "is a directory"):
		return 126
	}
	return 1
}

// runExec runs the process described in the file process in c, through the
// runtime command given in the engine's options, and returns its exit code.
func (e *Engine) runExec(ctx context.Context, c *Container, process string, o ExecOptions) (int, error) {
	args := []string{"--root", e.runtimeRoot(), "exec", "--process", process}
	if o.Detach {
		args = append(args, "--detach")
	}
	args = append(args, c.ID)
	stdin := o.Stdin
	if stdin == nil && o.Interactive {
		stdin = os.Stdin
	}
	if stdin == nil {
		null, err := os.Open(os.DevNull)
		if err != nil {
			return -1, err
		}
		defer null.Close()
		stdin = null
	}
	stdout, stderr := o.Stdout, o.Stderr
	if stdout == nil {
		stdout = os.Stdout
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	// The runtime's stderr goes through a pipe: what it says is kept to
	// tell why it could not run the command.
	errR, errW, err := os.Pipe()
	if err != nil {
		return -1, err
	}
	var errBuf strings.Builder
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&teeWriter{w: stderr, keep: &errBuf}, errR)
		errR.Close()
		close(copied)
	}()
	// syscall.ForkExec, not os/exec: os.StartProcess first probes, once
	// per process, whether clone can return a pidfd, with a child of its
	// own (1.5 ms of every exec here).
	path := e.runtimePath()
	if !strings.Contains(path, "/") {
		if path, err = exec.LookPath(path); err != nil {
			errW.Close()
			<-copied
			return -1, err
		}
	}
	pid, err := syscall.ForkExec(path, append([]string{path}, args...), &syscall.ProcAttr{
		Env: os.Environ(), Files: []uintptr{stdin.Fd(), stdout.Fd(), errW.Fd()},
	})
	errW.Close()
	if err != nil {
		<-copied
		return -1, fmt.Errorf("exec %s: %w", path, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	stop()
	<-copied
	if err != nil {
		return -1, os.NewSyscallError("wait4", err)
	}
	if ws.Exited() && ws.ExitStatus() == 0 {
		return 0, nil
	}
	code := -1 // killed by a signal, as os/exec reports it
	if ws.Exited() {
		code = ws.ExitStatus()
	}
	// The runtime says why it could not run the command: Docker's
	// 126/127 convention.
	if msg := errBuf.String(); strings.Contains(msg, "berth-runtime:") {
		if c := execFailureCode(msg); c != 1 {
			return c, nil
		}
	}
	return code, nil
}

// teeWriter passes writes through and keeps a copy of the last few.
type teeWriter struct {
	w    *os.File
	keep *strings.Builder
}

func (t *teeWriter) Write(p []byte) (int, error) {
	if t.keep.Len() < 4096 {
		t.keep.Write(p)
	}
	return t.w.Write(p)
}

// Top lists the container's processes with ps(1) columns.
func (e *Engine) Top(ctx context.Context, ref string, psArgs []string) (titles []string, rows [][]string, err error) {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		return nil, nil, fmt.Errorf("%w: container %s is not running", ErrConflict, c.Name)
	}
	out, err := exec.CommandContext(ctx, e.runtimePath(), "--root", e.runtimeRoot(), "ps", "--format", "json", c.ID).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("list the processes of %s: %w", c.Name, err)
	}
	var pids []int
	if err := json.Unmarshal(out, &pids); err != nil {
		return nil, nil, err
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	psOut, err := exec.CommandContext(ctx, "ps", psArgs...).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
	}
	lines := strings.Split(strings.TrimRight(string(psOut), "\n"), "\n")
	titles = strings.Fields(lines[0])
	col := -1
	for i, t := range titles {
		if t == "PID" {
			col = i
		}
	}
	if col < 0 {
		return nil, nil, fmt.Errorf("%w: ps %s: no PID column", ErrInvalid, strings.Join(psArgs, " "))
	}
	in := map[string]bool{}
	for _, p := range pids {
		in[strconv.Itoa(p)] = true
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if col < len(f) && in[f[col]] {
			// The last column (the command) may contain spaces.
			if len(f) > len(titles) {
				f = append(f[:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
			}
			rows = append(rows, f)
		}
	}
	return titles, rows, nil
}
