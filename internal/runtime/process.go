package runtime

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/caps"
	"github.com/berthproject/berth/internal/console"
	"github.com/berthproject/berth/internal/fsroot"
	"github.com/berthproject/berth/internal/ocispec"
	"github.com/berthproject/berth/internal/seccomp"
)

// proc is a process ready to be executed: everything that can fail has
// been done, except the steps that must come last.
type proc struct {
	cfg      *initConfig
	path     string
	args     []string
	env      []string
	nnp      bool
	late     *seccomp.Program // loaded right before execve (with no_new_privs)
	listener int              // seccomp notify fd, once loaded
}

var rlimitNums = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// prepareProcess applies the process definition to this (locked) thread in
// the order the kernel requires: console, limits, program lookup, working
// directory, early seccomp, bounding set, user, capabilities,
// no_new_privs. It runs on the main goroutine, which nsenter locked to
// the main thread.
func prepareProcess(cfg *initConfig) (*proc, error) {
	p := cfg.Process
	if p.Terminal {
		if err := setupConsole(cfg); err != nil {
			return nil, err
		}
	}
	for i, rl := range p.Rlimits {
		if err := setRlimit(rl); err != nil {
			return nil, fmt.Errorf("process.rlimits[%d] (%s): %w", i, rl.Type, err)
		}
	}
	if err := setScheduling(p); err != nil {
		return nil, err
	}
	if cfg.Personality != "" {
		dom := uintptr(0) // PER_LINUX
		if cfg.Personality == string(specs.PerLinux32) {
			dom = 0x0008 // PER_LINUX32
		}
		if _, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, dom, 0, 0); e != 0 {
			return nil, fmt.Errorf("linux.personality: %w", e)
		}
	}
	if p.ApparmorProfile != "" {
		if err := writeAttr("apparmor/exec", "exec "+p.ApparmorProfile); err != nil {
			return nil, fmt.Errorf("process.apparmorProfile: %w", err)
		}
	}
	if p.SelinuxLabel != "" {
		if err := writeAttr("exec", p.SelinuxLabel); err != nil {
			return nil, fmt.Errorf("process.selinuxLabel: %w", err)
		}
	}
	if p.User.Umask != nil {
		unix.Umask(int(*p.User.Umask))
	}

	path, err := lookPath(p.Args[0], p.Env)
	if err != nil {
		return nil, err
	}
	if err := chdirInRoot(p.Cwd); err != nil {
		return nil, err
	}
	pr := &proc{cfg: cfg, path: path, args: p.Args, env: p.Env, nnp: p.NoNewPrivileges, listener: -1}
	if pr.env == nil {
		pr.env = []string{}
	}

	var prog *seccomp.Program
	if len(cfg.Seccomp) > 0 {
		prog = &seccomp.Program{}
		if err := prog.UnmarshalBinary(cfg.Seccomp); err != nil {
			return nil, fmt.Errorf("linux.seccomp: %w", err)
		}
		// Without no_new_privs, installing a filter needs CAP_SYS_ADMIN:
		// do it while we still have it. With it, as late as possible, so
		// that the filter need not allow what the runtime itself does.
		if p.NoNewPrivileges {
			pr.late = prog
		} else if pr.listener, err = seccomp.Load(prog); err != nil {
			return nil, fmt.Errorf("linux.seccomp: %w", err)
		}
	}

	sets, err := caps.Parse("process.capabilities", p.Capabilities)
	if err != nil {
		return nil, err
	}
	if p.Capabilities != nil {
		if err := caps.DropBounding(sets.Bounding); err != nil {
			return nil, fmt.Errorf("process.capabilities.bounding: %w", err)
		}
	}
	if err := setUser(&p.User); err != nil {
		return nil, err
	}
	if p.Capabilities != nil {
		if err := caps.SetThread(sets); err != nil {
			return nil, fmt.Errorf("process.capabilities: %w", err)
		}
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("process.noNewPrivileges: %w", err)
		}
	}
	return pr, nil
}

// finish runs before (the startContainer hooks), loads the late seccomp
// filter, hands a seccomp notify fd to its listener, closes every
// descriptor the process must not inherit and execs. It returns only on
// failure.
func (pr *proc) finish(before func() error) error {
	if before != nil {
		if err := before(); err != nil {
			return err
		}
	}
	if pr.late != nil {
		fd, err := seccomp.Load(pr.late)
		if err != nil {
			return fmt.Errorf("linux.seccomp: %w", err)
		}
		pr.listener = fd
	}
	if pr.listener >= 0 && pr.cfg.ListenerFd >= 0 {
		st := specs.ContainerProcessState{
			Version: specs.Version,
			Fds:     []string{specs.SeccompFdName},
			Pid:     pr.cfg.HostPid,
			State:   specs.State{Version: specs.Version, ID: pr.cfg.ID, Status: specs.StateRunning, Pid: pr.cfg.InitPid, Bundle: pr.cfg.Bundle, Annotations: pr.cfg.Annotations},
		}
		st.Metadata = pr.cfg.SeccompMetadata
		err := seccomp.SendListener(pr.cfg.ListenerFd, st, pr.listener)
		unix.Close(pr.cfg.ListenerFd)
		unix.Close(pr.listener)
		if err != nil {
			return fmt.Errorf("linux.seccomp.listenerPath: %w", err)
		}
	}
	// Nothing of the runtime may leak into the container: every fd above
	// stdio and the preserved ones is closed by execve.
	if err := unix.CloseRange(uint(3+pr.cfg.PreserveFds), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close runtime file descriptors: %w", err)
	}
	err := syscall.Exec(pr.path, pr.args, pr.env)
	return fmt.Errorf("exec %s: %w", pr.path, err)
}

func setupConsole(cfg *initConfig) error {
	if cfg.ConsoleFd < 0 {
		return errors.New("process.terminal: no console socket")
	}
	sock := os.NewFile(uintptr(cfg.ConsoleFd), "console-socket")
	defer sock.Close()
	master, slave, err := console.OpenPty("/dev/ptmx")
	if err != nil {
		return fmt.Errorf("process.terminal: %w", err)
	}
	defer master.Close()
	if sz := cfg.Process.ConsoleSize; sz != nil {
		if err := console.SetSize(slave, uint16(sz.Height), uint16(sz.Width)); err != nil {
			return fmt.Errorf("process.consoleSize: %w", err)
		}
	}
	if err := console.SendFd(sock, master); err != nil {
		return err
	}
	if cfg.Kind == "exec" {
		if _, err := unix.Setsid(); err != nil {
			return fmt.Errorf("setsid: %w", err)
		}
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
			return fmt.Errorf("process.terminal: dup pty: %w", err)
		}
	}
	slave.Close()
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("process.terminal: set controlling terminal: %w", err)
	}
	return nil
}

func setRlimit(rl specs.POSIXRlimit) error {
	res := rlimitNums[rl.Type]
	var err error
	if res == unix.RLIMIT_NOFILE {
		// syscall.Setrlimit also tells the Go runtime not to restore its
		// own idea of the soft limit at execve.
		err = syscall.Setrlimit(res, &syscall.Rlimit{Cur: rl.Soft, Max: rl.Hard})
	} else {
		err = unix.Prlimit(0, res, &unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}, nil)
	}
	if errors.Is(err, unix.EPERM) {
		var cur unix.Rlimit
		_ = unix.Prlimit(0, res, nil, &cur)
		return fmt.Errorf("raising the hard limit from %d to %d needs CAP_SYS_RESOURCE: %w", cur.Max, rl.Hard, err)
	}
	return err
}

// setScheduling applies process.scheduler and process.ioPriority.
func setScheduling(p *specs.Process) error {
	if s := p.Scheduler; s != nil {
		attr := schedAttr{
			size:     uint32(unsafe.Sizeof(schedAttr{})),
			policy:   uint32(ocispec.SchedPolicies[s.Policy]),
			nice:     s.Nice,
			priority: uint32(s.Priority),
			runtime:  s.Runtime,
			deadline: s.Deadline,
			period:   s.Period,
		}
		for _, f := range s.Flags {
			attr.flags |= schedFlags[f]
		}
		if _, _, e := unix.Syscall(unix.SYS_SCHED_SETATTR, 0, uintptr(unsafe.Pointer(&attr)), 0); e != 0 {
			return fmt.Errorf("process.scheduler: %w", e)
		}
	}
	if io := p.IOPriority; io != nil {
		const ioprioWhoProcess = 1
		prio := ocispec.IOPrioClasses[io.Class]<<13 | io.Priority
		if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, uintptr(prio)); e != 0 {
			return fmt.Errorf("process.ioPriority: %w", e)
		}
	}
	return nil
}

type schedAttr struct {
	size     uint32
	policy   uint32
	flags    uint64
	nice     int32
	priority uint32
	runtime  uint64
	deadline uint64
	period   uint64
}

var schedFlags = map[specs.LinuxSchedulerFlag]uint64{
	specs.SchedFlagResetOnFork: 0x01, specs.SchedFlagReclaim: 0x02, specs.SchedFlagDLOverrun: 0x04,
	specs.SchedFlagKeepPolicy: 0x08, specs.SchedFlagKeepParams: 0x10, specs.SchedFlagUtilClampMin: 0x20,
	specs.SchedFlagUtilClampMax: 0x40,
}

func writeAttr(name, value string) error {
	return os.WriteFile("/proc/thread-self/attr/"+name, []byte(value), 0)
}

// chdirInRoot changes to the process's working directory, resolved inside
// the container's root: a symlink or a magic link such as /proc/self/fd/N
// (the leaked-fd escape, CVE-2024-21626) cannot lead out of it.
func chdirInRoot(cwd string) error {
	root, err := os.Open("/")
	if err != nil {
		return err
	}
	defer root.Close()
	d, err := fsroot.Open(root, cwd, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("process.cwd %q: %w", cwd, err)
	}
	defer d.Close()
	if err := unix.Fchdir(int(d.Fd())); err != nil {
		return fmt.Errorf("process.cwd %q: %w", cwd, err)
	}
	if wd, err := unix.Getwd(); err != nil || len(wd) == 0 || wd[0] != '/' {
		return fmt.Errorf("process.cwd %q: resolves outside the container", cwd)
	}
	return nil
}

// setUser switches the thread to the process user, keeping the permitted
// capabilities for caps.SetThread.
//
// The credential calls change only the calling thread, the init's main
// thread that execs the process: syscall.Setresuid and friends (which
// x/sys/unix calls too) stop every thread of the Go runtime with a signal to
// change them all, about a millisecond each on a small VM, for threads that
// the execve ends anyway.
func setUser(u *specs.User) error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keep capabilities: %w", err)
	}
	gids := make([]uint32, 0, len(u.AdditionalGids))
	gids = append(gids, u.AdditionalGids...)
	if err := threadSetgroups(gids); err != nil && !(errors.Is(err, unix.EPERM) && len(gids) == 0) {
		return fmt.Errorf("process.user.additionalGids: %w", err)
	}
	if err := threadSetres(unix.SYS_SETRESGID, u.GID); err != nil {
		return fmt.Errorf("process.user.gid %d: %w", u.GID, err)
	}
	if err := threadSetres(unix.SYS_SETRESUID, u.UID); err != nil {
		return fmt.Errorf("process.user.uid %d: %w", u.UID, err)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keep capabilities: %w", err)
	}
	return nil
}

// threadSetgroups sets the calling thread's supplementary groups.
func threadSetgroups(gids []uint32) error {
	var p unsafe.Pointer
	if len(gids) > 0 {
		p = unsafe.Pointer(&gids[0])
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), uintptr(p), 0); e != 0 {
		return e
	}
	return nil
}

// threadSetres sets the calling thread's real, effective and saved ids
// (trap is SYS_SETRESUID or SYS_SETRESGID).
func threadSetres(trap uintptr, id uint32) error {
	if _, _, e := unix.RawSyscall(trap, uintptr(id), uintptr(id), uintptr(id)); e != 0 {
		return e
	}
	return nil
}
