package main

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// reaper is the single place that calls wait4. The monitor is a
// subreaper, so it collects its own children (runtime commands, the exit
// command), the container's init once `runtime create` has exited, and any
// orphan of a container sharing the host's pid namespace. A status reaped
// while looking for another process is kept until its waiter takes it.
type reaper struct {
	mu     sync.Mutex
	exited map[int]reaped // reaped, not yet taken
	gen    int            // advanced by each periodic sweep
}

type reaped struct {
	ws  syscall.WaitStatus
	gen int
}

func newReaper() *reaper { return &reaper{exited: map[int]reaped{}} }

// reapLocked collects every child that has exited.
func (r *reaper) reapLocked() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		r.exited[pid] = reaped{ws: ws, gen: r.gen}
	}
}

// sweepInterval is how often orphans are reaped when nothing else
// happens, and idle attach clients give back their buffers.
const sweepInterval = 30 * time.Second

// sweep reaps orphans forever, calling also each period. A status nobody
// claimed for two sweeps is an orphan's and is dropped.
func (r *reaper) sweep(also func()) {
	for {
		time.Sleep(sweepInterval)
		also()
		r.mu.Lock()
		r.gen++
		r.reapLocked()
		for pid, e := range r.exited {
			if e.gen < r.gen-1 {
				delete(r.exited, pid)
			}
		}
		r.mu.Unlock()
	}
}

// proc is a process the monitor waits for: a child or the adopted init.
type proc struct {
	pid    int
	pidfd  *os.File // nil when it was reaped already
	ws     syscall.WaitStatus
	reaped bool // its status was taken (the reaper's lock is held to set it)
}

// watch returns a proc for pid, which must be (or become, by adoption) a
// child of the monitor and not be reaped by anyone else. Holding the lock
// between the look-up and pidfd_open means the pid cannot be reaped and
// reused in between.
func (r *reaper) watch(pid int) (*proc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.exited[pid]; ok {
		delete(r.exited, pid)
		return &proc{pid: pid, ws: e.ws}, nil
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, &os.SyscallError{Syscall: "pidfd_open " + strconv.Itoa(pid), Err: err}
	}
	return &proc{pid: pid, pidfd: os.NewFile(uintptr(fd), "pidfd")}, nil
}

// wait blocks (in the netpoller) until the process has exited and returns
// its status.
func (r *reaper) wait(p *proc) syscall.WaitStatus {
	if p.pidfd == nil {
		return p.ws
	}
	rc, err := p.pidfd.SyscallConn()
	found := false
	take := func(uintptr) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.reapLocked()
		if e, ok := r.exited[p.pid]; ok {
			delete(r.exited, p.pid)
			p.ws, found, p.reaped = e.ws, true, true
		}
		return found
	}
	if err == nil {
		err = rc.Read(take)
	}
	for err != nil && !found {
		// Not pollable (cannot happen with a pidfd): poll the slow way.
		time.Sleep(10 * time.Millisecond)
		take(0)
	}
	p.pidfd.Close()
	p.pidfd = nil
	return p.ws
}

// spawn starts argv[0] with the given stdio descriptors and environment.
// The child gets nothing else: every descriptor of the monitor is
// close-on-exec.
func (r *reaper) spawn(argv []string, env []string, stdio [3]int) (*proc, error) {
	pidfd := -1
	attr := &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{uintptr(stdio[0]), uintptr(stdio[1]), uintptr(stdio[2])},
		Sys:   &syscall.SysProcAttr{PidFD: &pidfd},
	}
	pid, err := syscall.ForkExec(argv[0], argv, attr)
	if err != nil {
		return nil, &os.PathError{Op: "exec", Path: argv[0], Err: err}
	}
	p := &proc{pid: pid}
	if pidfd < 0 {
		// A kernel without CLONE_PIDFD: the child cannot have been reaped
		// yet (only wait() reaps a spawned pid), so pidfd_open is safe.
		return r.watch(pid)
	}
	if err := unix.SetNonblock(pidfd, true); err != nil {
		unix.Close(pidfd)
		return nil, &os.SyscallError{Syscall: "fcntl pidfd", Err: err}
	}
	p.pidfd = os.NewFile(uintptr(pidfd), "pidfd")
	return p, nil
}

// childEnv is the environment of the monitor's children: the monitor's
// own without the GOMAXPROCS=1 the engine gives the monitor.
func childEnv() []string {
	env := os.Environ()
	out := env[:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// pipe returns a pipe whose end for the monitor (read end when forRead,
// else the write end) is non-blocking and the other one blocking, both
// close-on-exec. The child's end must be blocking: a container whose
// stdout returns EAGAIN would lose output.
func pipe(forRead bool) (mine *os.File, mineFd, theirs int, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, -1, -1, &os.SyscallError{Syscall: "pipe2", Err: err}
	}
	m, t := p[1], p[0]
	if forRead {
		m, t = p[0], p[1]
	}
	if err := unix.SetNonblock(m, true); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, -1, -1, &os.SyscallError{Syscall: "fcntl", Err: err}
	}
	return os.NewFile(uintptr(m), "pipe"), m, t, nil
}

// drain reads what is left in the non-blocking descriptor fd, up to max
// bytes.
func drain(fd int, max int) []byte {
	var out []byte
	buf := make([]byte, 4096)
	for len(out) < max {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if n <= 0 {
			break
		}
		out = append(out, buf[:n]...)
	}
	return out
}
