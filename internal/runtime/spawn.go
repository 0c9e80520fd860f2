package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/cgroups"
	"github.com/berthproject/berth/internal/nsenter"
	"github.com/berthproject/berth/internal/rootfs"
)

// Records of the Go-side protocol (see doc.go); the nsenter records use
// numbers below 200.
const (
	msgConfig    = 201
	msgHooks     = 202
	msgHooksDone = 203
	msgReady     = 204
	msgError     = 205
)

// initConfig is everything the init (or exec) process needs; see wire.go
// for its encoding.
type initConfig struct {
	Kind            string // "create" or "exec"
	ID              string
	Bundle          string
	Process         *specs.Process
	Rootfs          rootfs.Config // create only
	Seccomp         []byte        // compiled filter (seccomp.Program.MarshalBinary)
	SeccompMetadata string        // linux.seccomp.listenerMetadata
	Hostname        string
	Domainname      string
	Sysctl          map[string]string
	Personality     string // linux.personality.domain
	Annotations     map[string]string
	CreateContainer []specs.Hook
	StartContainer  []specs.Hook
	HooksInParent   bool // prestart or createRuntime hooks: ask the parent to run them
	NoNewKeyring    bool
	NewNetNS        bool
	NewUTSNS        bool
	NewCgroupNS     bool     // started without the C stage: create it once in the cgroup
	Setns           []nsJoin // started without the C stage: namespaces to join first
	HostPid         int      // this process, as the runtime sees it
	InitPid         int      // the container's init, as the runtime sees it
	PreserveFds     int
	FifoFd          int
	ConsoleFd       int
	ListenerFd      int
}

// newInitConfig fills the parts of the configuration that come from the
// container's config.
func newInitConfig(kind, id, bundle string, spec *specs.Spec, p *specs.Process, seccomp []byte) *initConfig {
	c := &initConfig{
		Kind: kind, ID: id, Bundle: bundle, Process: p, Seccomp: seccomp,
		Hostname: spec.Hostname, Domainname: spec.Domainname, Annotations: spec.Annotations,
		FifoFd: -1, ConsoleFd: -1, ListenerFd: -1,
	}
	if h := spec.Hooks; h != nil && kind == "create" {
		c.CreateContainer, c.StartContainer = h.CreateContainer, h.StartContainer
		c.HooksInParent = len(h.Prestart) > 0 || len(h.CreateRuntime) > 0
	}
	if l := spec.Linux; l != nil {
		if kind == "create" {
			c.Sysctl = l.Sysctl
		}
		if l.Personality != nil {
			c.Personality = string(l.Personality.Domain)
		}
		if l.Seccomp != nil {
			c.SeccompMetadata = l.Seccomp.ListenerMetadata
		}
	}
	return c
}

// nsJoin is a namespace the init joins itself: Fd (open in the init) names
// it, Path is for messages, Flag is its CLONE_NEW* type.
type nsJoin struct {
	Path     string
	Flag, Fd int
}

// directPlan is how an init is started without the C stage, where nothing
// needs a single-threaded process: clone(2) creates the new namespaces
// (syscall.SysProcAttr.Cloneflags) and the Go init joins the network, IPC
// and UTS namespaces given by path (setns changes only the calling thread,
// the one that executes the container's process) and creates the cgroup
// namespace itself, once the parent has moved it into its cgroup: a cgroup
// namespace is rooted where its creator is. Saves the C program's exec and
// its bootstrap round trip, and the cgroup join overlaps the Go start-up.
// A user or time namespace, or joining a pid or cgroup namespace, takes the
// C stage.
type directPlan struct {
	cloneflags  uintptr
	newCgroupNS bool
	joins       []nsJoin // Fd is filled at spawn
	files       []*os.File
}

// directFor returns the plan for the container's namespaces, or nil when
// they need the C stage.
func directFor(l *specs.Linux, has map[specs.LinuxNamespaceType]specs.LinuxNamespace) *directPlan {
	if _, ok := has[specs.UserNamespace]; ok {
		return nil
	}
	if _, ok := has[specs.TimeNamespace]; ok || len(l.TimeOffsets) > 0 {
		return nil
	}
	d := &directPlan{}
	for _, t := range joinOrder {
		n, ok := has[t]
		switch {
		case !ok:
		case n.Path == "" && t == specs.CgroupNamespace:
			d.newCgroupNS = true
		case n.Path == "":
			d.cloneflags |= nsFlags[t]
		case t == specs.NetworkNamespace || t == specs.IPCNamespace || t == specs.UTSNamespace:
			d.joins = append(d.joins, nsJoin{Path: n.Path, Flag: int(nsFlags[t])})
		default:
			return nil
		}
	}
	return d
}

// open opens the namespaces to join, to pass to the init.
func (d *directPlan) open() error {
	for _, j := range d.joins {
		f, err := os.OpenFile(j.Path, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			d.close()
			return fmt.Errorf("linux.namespaces: open namespace %s: %w", j.Path, err)
		}
		d.files = append(d.files, f)
	}
	return nil
}

func (d *directPlan) close() {
	closeFiles(d.files)
	d.files = nil
}

// child is a runtime process started into a container's namespaces.
type child struct {
	stage0 int      // pid of the process we started
	reaped bool     // stage0 has been waited for
	pid    int      // host pid of the init / exec process
	forked bool     // pid is a child of ours distinct from stage0
	conn   *os.File // our end of the protocol socket

	console *os.File   // where the pty master arrives when we relay the terminal
	procfs  []*os.File // procfs contexts of a container init berth-nsenter finishes
}

// spawnOpts say how to start a child.
type spawnOpts struct {
	binary   string     // Runtime.Binary
	preserve []*os.File // become fds 3.. in the child
	extra    []*os.File // after the sync socket; their fd numbers are returned
	stdio    [3]*os.File
	boot     nsenter.Bootstrap
	cg       cgroups.Manager
	res      *specs.LinuxResources // written to cg after the child joined it (create)
	linux    *specs.Linux          // for user namespace maps
	direct   *directPlan           // start without the C stage
	console  int                   // with boot.Exec.Terminal: the console socket's index in extra
}

// spawn starts the C stage (stage0), puts it in the cgroup, drives the
// namespace bootstrap and returns the child with the fd numbers its extra
// files got. Stage0 then executes the runtime binary as the init, or
// finishes the process itself (boot.Exec). A container init berth-nsenter
// finishes (boot.Create, with a direct plan) is started by clone(2) in its
// new namespaces like a direct Go init; its exec fifo is extra[0].
func spawn(o spawnOpts) (c *child, fds []int, err error) {
	cinit := o.direct != nil && o.boot.Create != nil
	// The child's descriptors (counted as below), and as many again that
	// its fork may move out of the way first (syscall.forkAndExecInChild
	// moves each fd[i] < i above len(fd)): the binaries it executes by
	// /proc/self/fd/N are placed above them all.
	nfiles := len(o.stdio) + len(o.preserve) + 1 + len(o.extra) + 1
	if o.direct != nil {
		nfiles += len(o.direct.files)
	}
	floor := 2*nfiles + 2
	var stage0 *os.File
	if o.direct == nil || cinit {
		if stage0, err = sealedNsenter(o.binary, floor); err != nil {
			return nil, nil, err
		}
		defer stage0.Close()
	}
	var exe *os.File // the runtime binary, but for a process the C stage finishes itself
	if (o.direct != nil && !cinit) || (o.direct == nil && o.boot.Exec == nil) {
		if exe, err = sealedExe(o.binary, floor); err != nil {
			return nil, nil, err
		}
		defer exe.Close()
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	parent := os.NewFile(uintptr(pair[0]), "sync-parent")
	childEnd := os.NewFile(uintptr(pair[1]), "sync-child")
	defer childEnd.Close()

	// The child's descriptors: stdio (/dev/null where none is given, as
	// os/exec does), then the preserved files, the sync socket, the extras.
	files := make([]uintptr, 0, 4+len(o.preserve)+len(o.extra))
	for i, f := range o.stdio {
		if f == nil {
			flag := os.O_RDONLY
			if i > 0 {
				flag = os.O_WRONLY
			}
			if f, err = os.OpenFile(os.DevNull, flag|unix.O_CLOEXEC, 0); err != nil {
				parent.Close()
				return nil, nil, err
			}
			defer f.Close()
		}
		files = append(files, f.Fd())
	}
	for _, f := range o.preserve {
		files = append(files, f.Fd())
	}
	syncFd := len(files)
	files = append(files, childEnd.Fd())
	for i, f := range o.extra {
		files = append(files, f.Fd())
		fds = append(fds, syncFd+1+i)
	}
	if x := o.boot.Exec; x != nil && x.Terminal {
		if o.console < 0 || o.console >= len(fds) {
			parent.Close()
			return nil, nil, errors.New("process.terminal: no console socket")
		}
		x.ConsoleFd = fds[o.console]
	}
	env := []string{nsenter.EnvInit + "=" + strconv.Itoa(syncFd)}
	var path string
	var argv []string
	var sys *syscall.SysProcAttr
	if cinit {
		o.boot.Create.FifoFd = fds[0]
		path, argv = "/proc/self/fd/"+strconv.Itoa(int(stage0.Fd())), []string{NsenterName, "-"}
		sys = &syscall.SysProcAttr{Cloneflags: o.direct.cloneflags}
	} else if d := o.direct; d == nil {
		// Stage0 executes the runtime binary, and closes it on exec.
		path, argv = "/proc/self/fd/"+strconv.Itoa(int(stage0.Fd())), []string{NsenterName, "-"}
		if exe != nil {
			argv[1] = strconv.Itoa(len(files))
			files = append(files, exe.Fd())
		}
	} else {
		for i, f := range d.files {
			d.joins[i].Fd = len(files)
			files = append(files, f.Fd())
		}
		path, argv = "/proc/self/fd/"+strconv.Itoa(int(exe.Fd())), []string{"berth-runtime", "init"}
		env = append(env, "GOMAXPROCS=1") // as berth-nsenter sets it
		sys = &syscall.SysProcAttr{Cloneflags: d.cloneflags}
	}
	if len(files) > nfiles {
		// The floor above was counted short: the child's fork could put
		// one of its descriptors where the binary it executes is.
		parent.Close()
		return nil, nil, fmt.Errorf("internal error: %d descriptors for the child, %d counted", len(files), nfiles)
	}
	// berth-nsenter, single-threaded, moves itself into the cgroup (see
	// cgroups.Manager.SelfJoin): a cgroup.procs write would wait, after a
	// quiet while, for an RCU grace period in the kernel, 5-20 ms on an
	// idle VM, more than the rest of an exec. The cgroup's directories
	// must exist before the clone then (CLONE_INTO_CGROUP).
	selfJoin := o.cg != nil && (o.direct == nil || cinit) && os.Getenv(EnvCgroupJoin) != "procs"
	// The rest of the cgroup's set-up is done while the child starts:
	// it waits for its bootstrap before it does anything, and the
	// bootstrap is sent once cgReady said the cgroup is ready.
	setRes := func() error {
		if o.res != nil {
			if err := o.cg.Set(o.res); err != nil {
				return fmt.Errorf("apply linux.resources: %w", err)
			}
		}
		return nil
	}
	cgReady := make(chan error, 1)
	switch {
	case o.cg == nil:
		cgReady <- nil
	case selfJoin:
		if err := o.cg.Apply(0); err != nil {
			parent.Close()
			return nil, nil, err
		}
		go func() { cgReady <- setRes() }()
	default:
		go func() {
			err := o.cg.Apply(0)
			if err == nil {
				err = setRes()
			}
			cgReady <- err
		}()
	}
	var v2dir string
	if selfJoin {
		o.boot.CgroupTasks, v2dir = o.cg.SelfJoin()
		if v2dir != "" {
			dir, err := os.OpenFile(v2dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				parent.Close()
				<-cgReady // the limits are written: the caller may remove the cgroup now
				return nil, nil, fmt.Errorf("join cgroup: %w", err)
			}
			defer dir.Close()
			if sys == nil {
				sys = &syscall.SysProcAttr{}
			}
			sys.UseCgroupFD, sys.CgroupFD = true, int(dir.Fd())
		}
	}
	// syscall.StartProcess rather than os/exec: os.StartProcess probes
	// once per process whether pidfds work, with a throwaway vfork child,
	// and we wait with wait4 anyway.
	attr := &syscall.ProcAttr{Env: env, Files: files, Sys: sys}
	pid0, _, err := syscall.StartProcess(path, argv, attr)
	intoV2 := sys != nil && sys.UseCgroupFD
	if err != nil && intoV2 && (errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.E2BIG) || errors.Is(err, unix.EINVAL)) {
		// clone3 or CLONE_INTO_CGROUP (Linux 5.7) missing: the parent
		// writes cgroup.procs of the cgroup2 directory below.
		sys.UseCgroupFD, intoV2 = false, false
		pid0, _, err = syscall.StartProcess(path, argv, attr)
	}
	if err != nil {
		parent.Close()
		if cerr := <-cgReady; cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, nil, fmt.Errorf("start container init: %w", err)
	}
	c = &child{stage0: pid0, pid: pid0, conn: parent}
	defer func() {
		if err != nil {
			c.kill()
			c.conn.Close()
			c = nil
		}
	}()
	childEnd.Close()
	// Into the cgroup before the bootstrap, or, started directly, while the
	// Go runtime starts up: the init waits for its configuration, sent
	// after this, before it does anything.
	if err := <-cgReady; err != nil {
		return c, nil, err
	}
	switch {
	case selfJoin && v2dir != "" && !intoV2:
		if err := os.WriteFile(filepath.Join(v2dir, "cgroup.procs"), []byte(strconv.Itoa(pid0)), 0); err != nil {
			return c, nil, fmt.Errorf("join cgroup: %w", err)
		}
	case !selfJoin && o.cg != nil:
		if err := o.cg.Apply(pid0); err != nil {
			return c, nil, fmt.Errorf("join cgroup: %w", err)
		}
	}
	if o.direct != nil && !cinit {
		return c, fds, nil
	}
	var mapUser func(int) error
	if o.boot.Unshare&unix.CLONE_NEWUSER != 0 {
		mapUser = func(pid int) error { return writeIDMaps(pid, o.linux) }
	}
	pid, err := nsenter.Drive(parent, pid0, &o.boot, mapUser)
	if err != nil {
		return c, nil, err
	}
	if o.boot.Fork {
		c.pid, c.forked = pid, true
		ws, err := c.waitStage0()
		if err == nil && (!ws.Exited() || ws.ExitStatus() != 0) {
			err = fmt.Errorf("%s", describeStatus(ws))
		}
		if err != nil {
			return c, nil, fmt.Errorf("namespace setup: %w", err)
		}
	}
	if cinit {
		if c.procfs, err = nsenter.RecvProcFS(parent, o.boot.Create.ProcFS); err != nil {
			return c, nil, err
		}
	}
	return c, fds, nil
}

// waitStage0 reaps the process we started.
func (c *child) waitStage0() (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(c.stage0, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return ws, fmt.Errorf("wait for pid %d: %w", c.stage0, err)
		}
		c.reaped = true
		return ws, nil
	}
}

// describeStatus words a wait status as os/exec does ("exit status 1",
// "signal: killed").
func describeStatus(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal: " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}

// kill stops the child and reaps it.
func (c *child) kill() {
	if c.forked && c.pid > 0 {
		_ = unix.Kill(c.pid, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(c.pid, &ws, 0, nil)
	}
	if !c.reaped {
		_ = unix.Kill(c.stage0, unix.SIGKILL)
		_, _ = c.waitStage0()
	}
}

// wait waits for the init / exec process to exit and returns its exit code
// the way a shell reports it (128+signal when killed).
func (c *child) wait() (int, error) {
	var ws unix.WaitStatus
	if c.forked {
		for {
			_, err := unix.Wait4(c.pid, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return -1, fmt.Errorf("wait for pid %d: %w", c.pid, err)
			}
			break
		}
	} else {
		var err error
		if ws, err = c.waitStage0(); err != nil {
			return -1, err
		}
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// writeIDMaps writes the user namespace maps of pid.
func writeIDMaps(pid int, l *specs.Linux) error {
	render := func(m []specs.LinuxIDMapping) []byte {
		var b strings.Builder
		for _, e := range m {
			fmt.Fprintf(&b, "%d %d %d\n", e.ContainerID, e.HostID, e.Size)
		}
		return []byte(b.String())
	}
	p := "/proc/" + strconv.Itoa(pid)
	if err := os.WriteFile(p+"/uid_map", render(l.UIDMappings), 0); err != nil {
		return fmt.Errorf("linux.uidMappings: write %s/uid_map: %w", p, err)
	}
	if err := os.WriteFile(p+"/gid_map", render(l.GIDMappings), 0); err != nil {
		return fmt.Errorf("linux.gidMappings: write %s/gid_map: %w", p, err)
	}
	return nil
}

// readMsg reads one protocol record; EOF becomes io.EOF. An error of the C
// stage (it fails to execute the runtime binary after it sent the pid)
// reads as msgError.
func readMsg(f *os.File) (uint32, []byte, error) {
	typ, payload, err := nsenter.ReadRecord(f)
	if typ == nsenter.MsgError {
		typ, payload = msgError, []byte(strings.TrimPrefix(string(payload), "nsenter: "))
	}
	return typ, payload, err
}

func writeMsg(f *os.File, typ uint32, payload []byte) error {
	return nsenter.WriteRecord(f, typ, payload)
}

// nsFlags are the clone flags of each namespace type.
var nsFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

// joinOrder is the order in which existing namespaces are joined after the
// user namespace; mount comes last among them only for readability, as all
// are opened before any is joined.
var joinOrder = []specs.LinuxNamespaceType{
	specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace, specs.PIDNamespace,
	specs.CgroupNamespace, specs.TimeNamespace, specs.MountNamespace,
}
