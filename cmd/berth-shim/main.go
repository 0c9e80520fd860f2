// Command berth-shim is berth's per-container monitor: the parent of one
// container for its whole life, so that the container outlives the command
// that started it. It creates and starts the container through the OCI
// runtime, holds its stdio or pty, writes its output to a json-file log,
// serves attach and control sockets, records the exit status (and OOM
// kills), applies the restart policy, and finally runs the engine's exit
// command. The protocol (command line, files, sockets, messages) is drawn
// in package internal/shim/protocol.
//
// One monitor runs per container, so its memory is the engine's cost per
// container. It is written to stay small: one P (GOMAXPROCS=1), no fmt, no
// encoding/json, no net; every descriptor (pipes, pty, sockets, pidfds)
// waits in the Go netpoller, so that an idle monitor is one thread asleep
// in epoll_wait plus the runtime's sysmon, and the output path allocates
// nothing per line. Even so a Go process keeps ~620 kB: once the container
// runs with nobody attached and nothing to do, the monitor executes
// berth-shim-idle, a small C program, in its own process, which copies the
// output into the log and executes berth-shim again (--resume) when a
// request comes or the init exits (idle.go).
//
// Processes: the monitor is a child subreaper. It starts the runtime with
// clone(CLONE_PIDFD) and waits for each child through its pidfd; the
// container's init, adopted when `runtime create` exits, through
// pidfd_open. Every reaped status is kept until its waiter takes it, so the
// single wait4(-1) reaper never loses one; orphans adopted from a container
// sharing the host's pid namespace are reaped every 30 seconds and on every
// exit.
//
// Signals: SIGTERM, SIGINT and SIGHUP are ignored (stopping a container
// goes through the runtime's kill, never through the monitor), so the
// monitor survives its CLI and anything sent to its session. Only SIGKILL
// ends it early: then the container's init is adopted by the next
// subreaper or pid 1 and keeps running; the engine sees the monitor gone.
package main

import (
	"encoding/hex"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/shim/jsonlog"
	"github.com/berthproject/berth/internal/shim/protocol"
)

// config is the command line.
type config struct {
	id, bundle, runtime, runtimeRoot, dir string

	log         string
	logMaxSize  int64
	logMaxFiles int

	tty, stdin, stdinOnce, waitAttach bool
	attachFd                          int // the listening attach.sock, made by the engine; 0: make it

	restart     protocol.RestartPolicy
	oomFile     string
	exitCommand string
	exitArgs    []string

	// After berth-shim-idle (see idle.go): the monitor's state, the
	// output descriptors (-1: ended) and their incomplete last lines.
	resume        *resumeState // nil: a new monitor
	resumeOut     [2]int
	resumePartial [2][]byte
}

// argv renders the configuration as a command line parseArgs reads back
// (paths absolute; no --attach-fd, no --resume): what berth-shim-idle
// executes again.
func (c *config) argv() []string {
	a := []string{"--id", c.id, "--bundle", c.bundle, "--runtime", c.runtime, "--dir", c.dir,
		"--log-max-size", strconv.FormatInt(c.logMaxSize, 10), "--log-max-files", strconv.Itoa(c.logMaxFiles),
		"--restart", c.restart.String()}
	for _, kv := range [][2]string{{"runtime-root", c.runtimeRoot}, {"log", c.log}, {"oom-file", c.oomFile}, {"exit-command", c.exitCommand}} {
		if kv[1] != "" {
			a = append(a, "--"+kv[0], kv[1])
		}
	}
	for _, v := range c.exitArgs {
		a = append(a, "--exit-arg", v)
	}
	for _, f := range []struct {
		name string
		on   bool
	}{{"tty", c.tty}, {"stdin", c.stdin}, {"stdin-once", c.stdinOnce}, {"wait-attach", c.waitAttach}} {
		if f.on {
			a = append(a, "--"+f.name)
		}
	}
	return a
}

// usageError is a command line error; the monitor exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func parseArgs(args []string) (*config, error) {
	c := &config{logMaxSize: jsonlog.DefaultMaxSize, logMaxFiles: jsonlog.DefaultMaxFiles, resumeOut: [2]int{-1, -1}}
	c.restart.Name = protocol.RestartNo
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "--") {
			return nil, &usageError{"unexpected argument " + strconv.Quote(arg)}
		}
		name, value, hasValue := strings.Cut(arg[2:], "=")
		switch name {
		case "tty", "stdin", "stdin-once", "wait-attach":
			if hasValue {
				return nil, &usageError{"--" + name + " takes no value"}
			}
			switch name {
			case "tty":
				c.tty = true
			case "stdin":
				c.stdin = true
			case "stdin-once":
				c.stdinOnce = true
			case "wait-attach":
				c.waitAttach = true
			}
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, &usageError{"--" + name + " needs a value"}
			}
			i++
			value = args[i]
		}
		var err error
		switch name {
		case "id":
			c.id = value
		case "bundle":
			c.bundle = value
		case "runtime":
			c.runtime = value
		case "runtime-root":
			c.runtimeRoot = value
		case "dir":
			c.dir = value
		case "log":
			c.log = value
		case "log-max-size":
			c.logMaxSize, err = strconv.ParseInt(value, 10, 64)
		case "log-max-files":
			c.logMaxFiles, err = strconv.Atoi(value)
		case "attach-fd":
			if c.attachFd, err = strconv.Atoi(value); err == nil && c.attachFd < 3 {
				return nil, &usageError{"--attach-fd: " + value + " is not an inherited descriptor (3 or more)"}
			}
		case "restart":
			c.restart, err = protocol.ParseRestartPolicy(value)
			if err != nil {
				return nil, &usageError{err.Error()}
			}
		case "oom-file":
			c.oomFile = value
		case "exit-command":
			c.exitCommand = value
		case "exit-arg":
			c.exitArgs = append(c.exitArgs, value)
		case "resume":
			st, perr := parseResumeState(value)
			if perr != nil {
				return nil, &usageError{perr.Error()}
			}
			c.resume = &st
		case "resume-out":
			c.resumeOut[0], err = strconv.Atoi(value)
		case "resume-err":
			c.resumeOut[1], err = strconv.Atoi(value)
		case "resume-partial-out", "resume-partial-err":
			i := 0
			if name == "resume-partial-err" {
				i = 1
			}
			if c.resumePartial[i], err = hex.DecodeString(value); err != nil {
				return nil, &usageError{"--" + name + ": invalid hex"}
			}
		default:
			return nil, &usageError{"unknown flag --" + name}
		}
		if err != nil {
			return nil, &usageError{"--" + name + ": invalid number " + strconv.Quote(value)}
		}
	}
	for _, req := range []struct{ name, value string }{
		{"id", c.id}, {"bundle", c.bundle}, {"runtime", c.runtime}, {"dir", c.dir},
	} {
		if req.value == "" {
			return nil, &usageError{"--" + req.name + " is required"}
		}
	}
	if c.stdinOnce && !c.stdin {
		return nil, &usageError{"--stdin-once needs --stdin"}
	}
	if len(c.exitArgs) > 0 && c.exitCommand == "" {
		return nil, &usageError{"--exit-arg needs --exit-command"}
	}
	// The monitor leaves its working directory for / (it must not keep the
	// CLI's directory busy for the container's life): make paths absolute.
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for _, p := range []*string{&c.runtime, &c.exitCommand} {
		if *p != "" && !strings.Contains(*p, "/") {
			if *p, err = lookPath(*p); err != nil {
				return nil, err
			}
		}
	}
	for _, p := range []*string{&c.bundle, &c.runtime, &c.runtimeRoot, &c.dir, &c.log, &c.oomFile, &c.exitCommand} {
		if *p != "" && !strings.HasPrefix(*p, "/") {
			*p = cwd + "/" + *p
		}
	}
	return c, nil
}

// lookPath finds the executable name in $PATH.
func lookPath(name string) (string, error) {
	for _, dir := range strings.Split(os.Getenv("PATH"), ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && unix.Access(p, unix.X_OK) == nil {
			return p, nil
		}
	}
	return "", &usageError{name + ": executable file not found in $PATH"}
}

func main() {
	// One P: the monitor never has two things to compute at once, and each
	// extra P costs its caches and, sooner or later, a thread. The engine
	// also starts the monitor with GOMAXPROCS=1 so that the runtime's start
	// does not create them in the first place.
	runtime.GOMAXPROCS(1)
	// The output path allocates nothing per line; what little garbage the
	// rest makes is collected when it reaches a few MiB. No collection
	// runs otherwise, not even the periodic one: a first collection pages
	// in about 300 KiB of the collector's metadata and stacks, nearly half
	// of an idle monitor.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(memoryLimit)
	// No heap profile: its samples would cost buckets nobody reads.
	runtime.MemProfileRate = 0
	os.Exit(run(os.Args[1:]))
}

// closeStrayFds closes the descriptors the monitor inherited by accident:
// every one above 2 without close-on-exec but those the command line names
// (the attach socket; after berth-shim-idle, what it hands back). The ready
// pipe is close-on-exec by now (readyPipe). A shell that starts the engine
// with a pipe open (a command substitution, a CI runner) would otherwise
// wait on it for the container's life. The Go runtime's own descriptors
// are all close-on-exec.
func closeStrayFds(c *config) {
	keep := map[int]bool{c.attachFd: true, c.resumeOut[0]: true, c.resumeOut[1]: true}
	if r := c.resume; r != nil {
		keep[r.ctl], keep[r.att], keep[r.in] = true, true, true
		keep[r.idleFd], keep[r.shimFd] = true, true
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 || keep[fd] {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			unix.Close(fd)
		}
	}
}

// memoryLimit is the soft limit of the monitor's Go memory: the collector
// runs when it is reached. The runtime's own mappings count about 5 MiB of
// it, attach clients' buffers up to 2 MiB each while they are behind; the
// rest is room for the little garbage (big client buffers are given back
// by trim, which collects).
const memoryLimit = 16 << 20
