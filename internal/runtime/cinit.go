package runtime

import (
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/fsroot"
	"github.com/berthproject/berth/internal/nsenter"
	"github.com/berthproject/berth/internal/rootfs"
)

// cinitFor decides whether berth-nsenter finishes the container's init
// itself, with the runtime building the root filesystem from a thread of
// its own, and returns the process and the number of "proc" mounts; nil
// when the init goes through the Go init as before.
//
// A Go init costs a Go start-up inside the container (~10 ms on the
// project's 2-CPU VMs, most of a `run` beyond crun's); berth-nsenter
// already makes exec'd processes. What the Go init did around the process
// is mount work in the container's namespaces, which a thread of the
// runtime can do once it has unshared its filesystem context and joined
// them (setns of a mount namespace is per thread then); a procfs, which
// shows the pid namespace of its creator, comes as a context the init
// opened (nsenter.Create). So it takes: the direct plan (no user or time
// namespace, nothing to join but network, IPC and UTS), pivot_root, no
// hook the init would run or have to wait for (prestart, createRuntime,
// createContainer, startContainer), a process berth-nsenter can make
// (finishInC: no terminal, seccomp agent, scheduling, personality or
// label), and proc mounts fsmount can make. BERTH_RUNTIME_EXEC_INIT=go
// turns it off, as for exec.
func cinitFor(p *prepared, o *CreateOpts) (*nsenter.Process, int) {
	if p.direct == nil || o.NoPivot {
		return nil, 0
	}
	if h := p.spec.Hooks; h != nil && (len(h.Prestart) > 0 || len(h.CreateRuntime) > 0 ||
		len(h.CreateContainer) > 0 || len(h.StartContainer) > 0) {
		return nil, 0
	}
	n, ok := rootfs.ProcMounts(&p.rootfs)
	if !ok || n > 8 || n > 0 && !fsopenWorks() {
		return nil, 0
	}
	x := finishInC(p.spec, p.spec.Process, p.seccomp, o.PreserveFds)
	if x == nil {
		return nil, 0
	}
	return x, n
}

// fsopenWorks reports whether the kernel has fsopen(2) for procfs (Linux
// 5.2), which the proc mounts of a container built this way need; asked
// once per process.
var fsopenWorks = sync.OnceValue(func() bool {
	fd, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err == nil {
		unix.Close(fd)
	}
	return !errors.Is(err, unix.ENOSYS)
})

// buildRootfs does, for a container init that berth-nsenter finishes, what
// the Go init does before it reports ready (initContainer): the loopback
// link, the root filesystem, the hostname, the sysctls, the working
// directory, the read-only and masked paths, pivot_root. It runs on a
// thread of its own that joins the init's namespaces and never leaves
// them: locked to its goroutine and never unlocked, the thread ends with
// it (the Go runtime makes new threads from a clean template thread, not
// from a locked one). pivot_root moves the root of every process of the
// mount namespace whose root was the old one: the init's too.
//
// The order differs from the Go init's in one place: the read-only and
// masked paths (Finalize) come before pivot_root, resolved below the
// rootfs, as the runtime's thread cannot see its own /proc/self in the
// container's procfs afterwards. procfs are the init's procfs contexts.
func buildRootfs(pid int, cfg *initConfig, procfs []*os.File) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // for good: see above
		errc <- buildRootfsOnThread(pid, cfg, procfs)
	}()
	return <-errc
}

// containerNS are the namespaces the rootfs thread joins, in order: the
// mount namespace last, so the others' paths resolve in ours.
var containerNS = []struct {
	name string
	flag int
}{
	{"cgroup", unix.CLONE_NEWCGROUP},
	{"ipc", unix.CLONE_NEWIPC},
	{"uts", unix.CLONE_NEWUTS},
	{"net", unix.CLONE_NEWNET},
	{"mnt", unix.CLONE_NEWNS},
}

func buildRootfsOnThread(pid int, cfg *initConfig, procfs []*os.File) error {
	// A thread may join a mount namespace only with a filesystem context
	// (root, cwd, umask) of its own.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare the filesystem context: %w", err)
	}
	for _, ns := range containerNS {
		p := "/proc/" + strconv.Itoa(pid) + "/ns/" + ns.name
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open the container's namespace %s: %w", p, err)
		}
		err = unix.Setns(fd, ns.flag)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("join the container's namespace %s: %w", p, err)
		}
	}
	if cfg.NewNetNS {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	c := &cfg.Rootfs
	if err := rootfs.PrepareOutside(c, rootfs.Outside{ProcFS: procfs, InitPid: pid}); err != nil {
		return err
	}
	if err := setUTS(cfg); err != nil {
		return err
	}
	// Before pivot_root /proc is the host's procfs, as the mount namespace
	// was copied; what a sysctl file means follows the writer's network,
	// IPC and UTS namespaces: ours are the container's.
	if err := writeSysctls(cfg); err != nil {
		return err
	}
	root, err := os.OpenFile(c.Rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	// runc creates a missing working directory; images rely on it.
	d, err := fsroot.MkdirAll(root, cfg.Process.Cwd, 0o755)
	if err != nil {
		return fmt.Errorf("process.cwd: %w", err)
	}
	d.Close()
	if err := rootfs.Finalize(c, root); err != nil {
		return err
	}
	return rootfs.Enter(c)
}

// setUTS sets the hostname and domain name of a new UTS namespace.
func setUTS(cfg *initConfig) error {
	if !cfg.NewUTSNS {
		return nil
	}
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	if cfg.Domainname != "" {
		if err := unix.Setdomainname([]byte(cfg.Domainname)); err != nil {
			return fmt.Errorf("domainname: %w", err)
		}
	}
	return nil
}

// writeSysctls writes linux.sysctl through /proc/sys.
func writeSysctls(cfg *initConfig) error {
	for k, v := range cfg.Sysctl {
		p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			return fmt.Errorf("linux.sysctl[%q]: %w", k, err)
		}
	}
	return nil
}
