// Command berth-init is the tiny init that `berth run --init` puts at pid 1
// of a container: it starts the real program, forwards the signals it gets
// to it, reaps every zombie the container's orphans leave behind, and exits
// with the program's status.
//
// Usage (the engine binds it at /sbin/berth-init):
//
//	berth-init [--] PROGRAM [ARG...]
//
// How it behaves:
//   - PROGRAM is looked up in $PATH when it has no "/". If it cannot be
//     started berth-init exits 127 (not found) or 126 (not executable), the
//     codes Docker uses.
//   - The program runs in a process group of its own; when stdin is a
//     terminal that group is made the terminal's foreground group, so ^C and
//     ^Z from the terminal reach the program once, not via berth-init.
//   - Every signal berth-init can catch is sent on to the program, except
//     SIGCHLD (berth-init's own business) and the job-control ones a
//     terminal sends to background groups (SIGTTIN, SIGTTOU), which it
//     catches so that it is never stopped.
//   - Children are reaped as they exit. When the program exits, berth-init
//     reaps what is left and exits with the program's code, or 128+N when a
//     signal N killed it. (Leaving pid 1 makes the kernel kill everything
//     else in the pid namespace.)
//   - Outside pid 1 (say in tests) it makes itself a child subreaper, so the
//     orphans still come to it.
//
// It is built static and imports only the standard library's os, os/signal
// and syscall packages (and unsafe for one ioctl) so that its memory cost
// per container stays small. Signals the Go runtime sends itself (SIGURG,
// for preemption) may be forwarded too; their default action is to be
// ignored.
package main

import (
	"os"
	"os/signal"
	"syscall"
	"unsafe"
)

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

func main() {
	os.Exit(run(os.Args[1:]))
}

func warn(msg string) {
	os.Stderr.WriteString("berth-init: " + msg + "\n")
}

// run is main without the exit, for tests.
func run(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		warn("usage: berth-init [--] PROGRAM [ARG...]")
		return 2
	}
	if os.Getpid() != 1 {
		if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
			warn("become a child subreaper: " + e.Error())
		}
	}
	// Ask for every signal before the program starts, so none is lost.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)

	prog, code := lookPath(args[0])
	if code != 0 {
		return code
	}
	attr := &syscall.SysProcAttr{Setpgid: true}
	if isTerminal(0) {
		// Go blocks signals while it hands the terminal over, so the new
		// background group gets no SIGTTOU for it.
		attr.Foreground, attr.Ctty = true, 0
	}
	p, err := os.StartProcess(prog, args, &os.ProcAttr{
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   attr,
	})
	if err != nil {
		warn("start " + args[0] + ": " + err.Error())
		if os.IsNotExist(err) {
			return 127
		}
		return 126
	}
	child := p.Pid
	for sig := range sigs {
		s, ok := sig.(syscall.Signal)
		if !ok {
			continue
		}
		switch s {
		case syscall.SIGCHLD:
		case syscall.SIGTTIN, syscall.SIGTTOU:
			// Sent by the terminal to berth-init's own (background)
			// group; caught so that berth-init is not stopped.
			continue
		default:
			// The program may be gone already: ESRCH is fine.
			syscall.Kill(child, s)
			continue
		}
		if status, done := reap(child); done {
			reap(-1) // what is left over, without waiting for it
			return status
		}
	}
	return 0 // not reached: the channel is never closed
}

// reap collects every exited child. It returns the program's exit status
// once the program itself has been collected.
func reap(child int) (status int, done bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return status, done
		}
		if pid == child && child > 0 {
			done = true
			switch {
			case ws.Exited():
				status = ws.ExitStatus()
			case ws.Signaled():
				status = 128 + int(ws.Signal())
			}
		}
	}
}

// lookPath finds prog in $PATH like a shell: a name with a slash is taken
// as it is. On failure it returns the exit code to use.
func lookPath(prog string) (string, int) {
	for i := 0; i < len(prog); i++ {
		if prog[i] == '/' {
			return prog, 0
		}
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	denied := false
	start := 0
	for i := 0; i <= len(path); i++ {
		if i < len(path) && path[i] != ':' {
			continue
		}
		dir := path[start:i]
		start = i + 1
		if dir == "" {
			dir = "."
		}
		cand := dir + "/" + prog
		fi, err := os.Stat(cand)
		if err != nil || fi.IsDir() {
			continue
		}
		if fi.Mode()&0o111 == 0 {
			denied = true
			continue
		}
		return cand, 0
	}
	if denied {
		warn(prog + ": permission denied")
		return "", 126
	}
	warn(prog + ": executable file not found in $PATH")
	return "", 127
}

// isTerminal reports whether fd is a terminal (it has a foreground process
// group to ask for).
func isTerminal(fd int) bool {
	var pgrp int32
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&pgrp)))
	return e == 0
}
