package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/caps"
	"github.com/berthproject/berth/internal/console"
	"github.com/berthproject/berth/internal/nsenter"
	"github.com/berthproject/berth/internal/ocispec"
	"github.com/berthproject/berth/internal/seccomp"
)

// ExecOpts are the options of exec besides the process itself.
type ExecOpts struct {
	Detach        bool
	PidFile       string
	ConsoleSocket string // where to send the pty master; "" with a terminal: relay our own terminal
	PreserveFds   int
	Stdio         [3]*os.File
}

// Exec runs p in the running container id. Without Detach it waits and
// returns the process's exit code.
func (r *Runtime) Exec(id string, p *specs.Process, o ExecOpts) (int, error) {
	if err := CheckID(id); err != nil {
		return -1, err
	}
	st, err := readState(r.dir(id), id)
	if err != nil {
		return -1, err
	}
	switch s := r.status(st); s {
	case "running", "created":
	default:
		return -1, fmt.Errorf("%w: cannot exec in a container that is %s", ErrState, s)
	}
	if err := ocispec.ValidateProcess("process", p, ocispec.CurrentHost()); err != nil {
		return -1, err
	}
	spec, seccompProg, ok, err := readExecConfig(r.dir(id), id)
	if err != nil {
		return -1, err
	}
	if !ok { // created without the kept filter: compile (or find) it
		if spec, err = readConfig(r.dir(id), id); err != nil {
			return -1, err
		}
		if spec.Linux.Seccomp != nil {
			prog, err := r.seccompCache().Program(spec.Linux.Seccomp)
			if err != nil {
				return -1, err
			}
			if seccompProg, err = prog.MarshalBinary(); err != nil {
				return -1, err
			}
		}
	}
	cg, err := r.cgroup(st)
	if err != nil {
		return -1, err
	}

	// Join every namespace the container's init is in that differs from
	// ours.
	has := map[specs.LinuxNamespaceType]specs.LinuxNamespace{}
	for _, n := range spec.Linux.Namespaces {
		f, _ := ocispec.NSFile(n.Type)
		path := "/proc/" + strconv.Itoa(st.Pid) + "/ns/" + f
		if sameNS(path, "/proc/self/ns/"+f) {
			continue
		}
		has[n.Type] = specs.LinuxNamespace{Type: n.Type, Path: path}
	}
	boot := bootstrapFor(&specs.Linux{}, has, "")
	boot.Exec = finishInC(spec, p, seccompProg, o.PreserveFds)

	var extra []*os.File
	var consoleRecv *os.File
	if p.Terminal {
		sockPath := o.ConsoleSocket
		var sock *os.File
		if sockPath != "" {
			if sock, err = dialUnix(sockPath, "--console-socket"); err != nil {
				return -1, err
			}
		} else {
			// No console socket: receive the master ourselves and relay
			// our terminal to it.
			pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return -1, err
			}
			sock = os.NewFile(uintptr(pair[1]), "console")
			consoleRecv = os.NewFile(uintptr(pair[0]), "console-recv")
			defer consoleRecv.Close()
		}
		defer sock.Close()
		extra = append(extra, sock)
	}
	listenerAt := -1
	if sc := spec.Linux.Seccomp; sc != nil && sc.ListenerPath != "" {
		listener, err := dialUnix(sc.ListenerPath, "linux.seccomp.listenerPath")
		if err != nil {
			return -1, err
		}
		defer listener.Close()
		listenerAt = len(extra)
		extra = append(extra, listener)
	}
	preserve, err := preservedFds(o.PreserveFds)
	if err != nil {
		return -1, err
	}
	stdio := o.Stdio
	for i, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if stdio[i] == nil {
			stdio[i] = f
		}
	}
	c, fds, err := spawn(spawnOpts{binary: r.Binary, preserve: preserve, extra: extra, stdio: stdio, boot: boot, cg: cg, console: 0})
	if err != nil {
		return -1, err
	}
	defer c.conn.Close()
	if boot.Exec == nil { // the Go init finishes the process: its configuration
		cfg := newInitConfig("exec", id, st.Bundle, spec, p, seccompProg)
		cfg.HostPid, cfg.InitPid, cfg.PreserveFds = c.pid, st.Pid, o.PreserveFds
		if p.Terminal {
			cfg.ConsoleFd = fds[0]
		}
		if listenerAt >= 0 {
			cfg.ListenerFd = fds[listenerAt]
		}
		b, err := cfg.MarshalBinary()
		if err != nil {
			c.kill()
			return -1, err
		}
		if err := writeMsg(c.conn, msgConfig, b); err != nil {
			c.kill()
			return -1, fmt.Errorf("send exec config: %w", err)
		}
	}
	for _, f := range extra {
		f.Close()
	}
	typ, payload, err := readMsg(c.conn)
	switch {
	case err == nil && typ == msgError:
		c.kill()
		return -1, errors.New(string(payload))
	case err != nil && !errors.Is(err, io.EOF):
		c.kill()
		return -1, fmt.Errorf("exec: %w", err)
	case err == nil:
		c.kill()
		return -1, fmt.Errorf("exec: unexpected message %d", typ)
	}
	// EOF: the process runs.
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, c.pid); err != nil {
			return -1, err
		}
	}
	if o.Detach {
		return 0, nil
	}
	var relayed chan struct{}
	if consoleRecv != nil {
		master, err := console.RecvFd(consoleRecv)
		if err != nil {
			return -1, err
		}
		relayed = make(chan struct{})
		go func() { _ = console.Relay(master, os.Stdin, os.Stdout); close(relayed) }()
	}
	stop := forwardSignals(c.pid)
	defer stop()
	code, err := c.wait()
	if relayed != nil {
		// What the process wrote last may still be in the pty: the relay
		// ends when the last holder of the terminal closes it (EIO), at
		// once unless the process left a child behind that holds it.
		select {
		case <-relayed:
		case <-time.After(250 * time.Millisecond):
		}
	}
	return code, err
}

// EnvCgroupJoin set to "procs" makes the runtime move every C stage into
// the container's cgroup itself (cgroup.procs), as before berth-nsenter
// joined by itself (for tests of that path).
const EnvCgroupJoin = "BERTH_RUNTIME_CGROUP_JOIN"

// EnvExecInit set to "go" makes every exec'd process go through the Go
// init, as those finishInC turns down do (for tests of that path).
const EnvExecInit = "BERTH_RUNTIME_EXEC_INIT"

// finishInC returns p as berth-nsenter makes it itself, or nil when p needs
// the Go init: a terminal, a seccomp agent (notify), scheduling or I/O
// priority, a personality, an AppArmor or SELinux label. The C stage then
// executes the program directly: the Go start-up of the runtime binary was
// most of an exec's time. Anything it cannot encode (an unknown rlimit or
// capability, a filter the kernel cannot load) is left to the Go init too,
// which reports it as it always has.
func finishInC(spec *specs.Spec, p *specs.Process, seccompProg []byte, preserve int) *nsenter.Process {
	if os.Getenv(EnvExecInit) == "go" || p.Scheduler != nil || p.IOPriority != nil ||
		p.ApparmorProfile != "" || p.SelinuxLabel != "" {
		return nil
	}
	if l := spec.Linux; l != nil && (l.Personality != nil || l.Seccomp != nil && l.Seccomp.ListenerPath != "") {
		return nil
	}
	x := &nsenter.Process{
		Args: p.Args, Env: p.Env, Cwd: p.Cwd, UID: p.User.UID, GID: p.User.GID, Umask: p.User.Umask,
		AdditionalGids: p.User.AdditionalGids, NoNewPrivs: p.NoNewPrivileges, PreserveFds: preserve,
		Terminal: p.Terminal,
	}
	if p.Terminal && p.ConsoleSize != nil {
		x.ConsoleRows, x.ConsoleCols = uint16(p.ConsoleSize.Height), uint16(p.ConsoleSize.Width)
	}
	for i, rl := range p.Rlimits {
		res, ok := rlimitNums[rl.Type]
		if !ok {
			return nil
		}
		x.Rlimits = append(x.Rlimits, nsenter.Rlimit{Resource: uint32(res), Index: uint32(i), Soft: rl.Soft, Hard: rl.Hard})
	}
	if p.Capabilities != nil {
		sets, err := caps.Parse("process.capabilities", p.Capabilities)
		if err != nil {
			return nil
		}
		x.Caps = &nsenter.CapSets{LastCap: uint32(caps.LastCap()), Bounding: sets.Bounding, Effective: sets.Effective,
			Permitted: sets.Permitted, Inheritable: sets.Inheritable, Ambient: sets.Ambient}
	}
	if len(seccompProg) > 0 {
		var prog seccomp.Program
		if err := prog.UnmarshalBinary(seccompProg); err != nil {
			return nil
		}
		flags, filter, err := prog.Raw()
		if err != nil {
			return nil
		}
		x.Seccomp, x.SeccompFlags = filter, flags
	}
	return x
}

func sameNS(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// forwardedSignals are passed on to a foreground container process. Not
// SIGCHLD (ours to wait for; never ignore it either, that would reap the
// child for us), not SIGWINCH (the terminal relay resizes), not SIGURG (the
// Go runtime's own preemption signal).
var forwardedSignals = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGALRM, unix.SIGCONT, unix.SIGPWR, unix.SIGSYS, unix.SIGTRAP,
}

// forwardSignals passes the signals we receive on to pid, as runc does for
// foreground processes. The returned function stops it.
func forwardSignals(pid int) func() {
	ch := make(chan os.Signal, 32)
	signal.Notify(ch, forwardedSignals...)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-ch:
				if sig, ok := s.(unix.Signal); ok {
					_ = unix.Kill(pid, sig)
				}
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
