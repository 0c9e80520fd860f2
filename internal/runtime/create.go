package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/cgroups"
	"github.com/berthproject/berth/internal/hooks"
	"github.com/berthproject/berth/internal/nsenter"
	"github.com/berthproject/berth/internal/ocispec"
	"github.com/berthproject/berth/internal/rootfs"
	"github.com/berthproject/berth/internal/unixsock"
)

// CreateOpts are the options of create (and run).
type CreateOpts struct {
	Bundle        string
	PidFile       string
	ConsoleSocket string
	NoPivot       bool
	NoNewKeyring  bool
	PreserveFds   int
	Stdio         [3]*os.File // the init's stdin, stdout, stderr (default: ours)

	// relayConsole (run in the foreground with a terminal and no console
	// socket): receive the pty master ourselves on child.console.
	relayConsole bool
}

// errHook marks failures of lifecycle hooks: the lifecycle then continues
// with destroying the container and the poststop hooks.
var errHook = errors.New("hook failed")

// prepared is a validated create request.
type prepared struct {
	spec    *specs.Spec
	raw     []byte // config.json as read, kept frozen in the state directory
	bundle  string
	rootfs  rootfs.Config
	seccomp []byte
	cgPath  string
	cg      cgroups.Manager
	boot    nsenter.Bootstrap
	direct  *directPlan // nil: through the C stage
	res     *specs.LinuxResources
	// cinit, with direct, is the process when berth-nsenter finishes the
	// init itself and the runtime builds its rootfs (see cinitFor).
	cinit  *nsenter.Process
	procfs int // its "proc" mounts
}

// prepare validates everything before anything is created.
func (r *Runtime) prepare(id string, o *CreateOpts) (*prepared, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	// Before anything exists: exec into the container needs the C stage
	// even when create does not.
	if err := checkNsenter(r.Binary); err != nil {
		return nil, err
	}
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return nil, err
	}
	spec, raw, err := loadSpec(bundle)
	if err != nil {
		return nil, err
	}
	if err := ocispec.Validate(spec, bundle, ocispec.CurrentHost()); err != nil {
		return nil, err
	}
	p := &prepared{spec: spec, raw: raw, bundle: bundle}
	l := spec.Linux
	has := map[specs.LinuxNamespaceType]specs.LinuxNamespace{}
	for _, n := range l.Namespaces {
		has[n.Type] = n
	}
	if n, ok := has[specs.MountNamespace]; !ok || n.Path != "" {
		return nil, fmt.Errorf("%w: linux.namespaces: berth-runtime needs a new mount namespace for the container", ocispec.ErrInvalid)
	}
	p.rootfs = rootfs.Config{
		Rootfs:            ocispec.RootfsPath(bundle, spec),
		Readonly:          spec.Root.Readonly,
		Mounts:            spec.Mounts,
		Devices:           l.Devices,
		MaskedPaths:       l.MaskedPaths,
		ReadonlyPaths:     l.ReadonlyPaths,
		RootfsPropagation: l.RootfsPropagation,
		NoPivot:           o.NoPivot,
		MountLabel:        l.MountLabel,
	}
	if _, ok := has[specs.UserNamespace]; ok {
		p.rootfs.UserNS = true
	}
	if _, ok := has[specs.CgroupNamespace]; ok {
		p.rootfs.CgroupNS = true
	}
	if err := rootfs.Validate(&p.rootfs); err != nil {
		return nil, err
	}
	if l.Seccomp != nil {
		prog, err := r.seccompCache().Program(l.Seccomp)
		if err != nil {
			return nil, err
		}
		if err := prog.CheckKernel(); err != nil {
			return nil, fmt.Errorf("%w: linux.seccomp: %v", ocispec.ErrInvalid, err)
		}
		if p.seccomp, err = prog.MarshalBinary(); err != nil {
			return nil, err
		}
	}
	if p.cgPath, err = cgroups.Resolve(l.CgroupsPath, id, r.Systemd); err != nil {
		return nil, err
	}
	if p.cg, err = cgroups.New(p.cgPath, r.cgroupOptions()); err != nil {
		return nil, err
	}
	p.res = cgroupResources(l)
	p.boot = bootstrapFor(l, has, "")
	if os.Getenv("BERTH_RUNTIME_NSENTER") != "always" {
		p.direct = directFor(l, has)
	}
	if spec.Process.OOMScoreAdj != nil {
		if err := checkOOMScoreAdj(*spec.Process.OOMScoreAdj); err != nil {
			return nil, err
		}
	}
	p.cinit, p.procfs = cinitFor(p, o)
	return p, nil
}

// bootstrapFor renders the namespace bootstrap: join what has a path (from
// the spec, or from /proc/<pid>/ns of a running container for exec), create
// the rest.
func bootstrapFor(l *specs.Linux, has map[specs.LinuxNamespaceType]specs.LinuxNamespace, _ string) nsenter.Bootstrap {
	var b nsenter.Bootstrap
	if n, ok := has[specs.UserNamespace]; ok {
		if n.Path != "" {
			b.UserNS = n.Path
		} else {
			b.Unshare |= unix.CLONE_NEWUSER
		}
	}
	for _, t := range joinOrder {
		n, ok := has[t]
		if !ok {
			continue
		}
		if n.Path != "" {
			b.Join = append(b.Join, n.Path)
		} else {
			b.Unshare |= nsFlags[t]
		}
		if t == specs.PIDNamespace || t == specs.TimeNamespace {
			b.Fork = true
		}
	}
	if len(l.TimeOffsets) > 0 {
		var sb strings.Builder
		for _, clock := range []string{"monotonic", "boottime"} {
			if o, ok := l.TimeOffsets[clock]; ok {
				fmt.Fprintf(&sb, "%s %d %d\n", clock, o.Secs, o.Nanosecs)
			}
		}
		b.TimeOffsets = sb.String()
	}
	return b
}

// defaultDeviceRules are allowed in every container's device cgroup, after
// the spec's own rules: the devices the runtime creates in /dev and the
// pseudo-terminals, plus mknod of anything (opening it stays denied).
var defaultDeviceRules = []specs.LinuxDeviceCgroup{
	{Allow: true, Type: "c", Access: "m"},
	{Allow: true, Type: "b", Access: "m"},
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"}, // null
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(5), Access: "rwm"}, // zero
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(7), Access: "rwm"}, // full
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(8), Access: "rwm"}, // random
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(9), Access: "rwm"}, // urandom
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(0), Access: "rwm"}, // tty
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(1), Access: "rwm"}, // console
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(2), Access: "rwm"}, // ptmx
	{Allow: true, Type: "c", Major: i64(136), Minor: nil, Access: "rwm"},  // pts/*
}

func i64(v int64) *int64 { return &v }

// cgroupResources returns the resources to write: the spec's, with the
// default device rules appended. The nodes of linux.devices get no rule of
// their own, as in runc: the spec's rules say what may be done with them
// (Docker's --device /dev/x:r is a node plus an "r" rule; an "rwm" rule
// added here would override it).
func cgroupResources(l *specs.Linux) *specs.LinuxResources {
	var res specs.LinuxResources
	if l.Resources != nil {
		res = *l.Resources
	}
	devs := append([]specs.LinuxDeviceCgroup{}, res.Devices...)
	devs = append(devs, defaultDeviceRules...)
	res.Devices = devs
	return &res
}

// checkOOMScoreAdj refuses, before anything exists, an oom_score_adj this
// process may not set: lowering it needs CAP_SYS_RESOURCE.
func checkOOMScoreAdj(v int) error {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return nil
	}
	cur, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || v >= cur {
		return nil
	}
	if !hasCap(unix.CAP_SYS_RESOURCE) {
		return fmt.Errorf("%w: process.oomScoreAdj: lowering it to %d (from %d) (writing /proc/PID/oom_score_adj) needs CAP_SYS_RESOURCE, which this runtime does not have", ocispec.ErrInvalid, v, cur)
	}
	return nil
}

func hasCap(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<uint(c%32)) != 0
}

// Create creates container id from a bundle: when it returns, the init is
// waiting for start in fully set up namespaces, cgroup and root filesystem.
func (r *Runtime) Create(id string, o CreateOpts) error {
	c, _, err := r.create(id, &o)
	if err != nil {
		return err
	}
	c.conn.Close()
	return nil
}

func (r *Runtime) create(id string, o *CreateOpts) (_ *child, _ *State, err error) {
	p, err := r.prepare(id, o)
	if err != nil {
		return nil, nil, err
	}
	dir := r.dir(id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, nil, fmt.Errorf("%w: %s", ErrExist, id)
		}
		return nil, nil, fmt.Errorf("create state directory: %w", err)
	}
	lk, err := lock(dir, id)
	if err != nil {
		os.Remove(dir)
		return nil, nil, err
	}
	defer lk.Close()

	h := hooksOf(p.spec)
	st := &State{
		ID: id, Bundle: p.bundle, Rootfs: p.rootfs.Rootfs, Created: time.Now().UTC(),
		CgroupPath: p.cgPath, Phase: phaseCreating, Annotations: p.spec.Annotations,
		Poststart: len(h.Poststart) > 0, Poststop: len(h.Poststop) > 0,
	}
	var c *child
	var consoleRecv *os.File
	hookFailed := false
	defer func() {
		if err == nil {
			return
		}
		if consoleRecv != nil {
			consoleRecv.Close()
		}
		if c != nil {
			c.kill()
			c.conn.Close()
		}
		r.destroy(st, p.cg)
		if hookFailed {
			r.runPoststop(st, p.spec)
		}
	}()
	if err := writeFile(dir, configPath(dir), p.raw); err != nil {
		return nil, nil, err
	}
	if p.seccomp != nil {
		if err := writeFile(dir, seccompPath(dir), p.seccomp); err != nil {
			return nil, nil, err
		}
	}
	if err := writeState(dir, st); err != nil {
		return nil, nil, err
	}

	// 0622 (not reduced by the umask): the init opens it for writing after
	// switching to the process user.
	if err := unix.Mkfifo(fifoPath(dir), 0o622); err != nil {
		return nil, nil, fmt.Errorf("create exec fifo: %w", err)
	}
	if err := os.Chmod(fifoPath(dir), 0o622); err != nil {
		return nil, nil, fmt.Errorf("create exec fifo: %w", err)
	}
	fifo, err := os.OpenFile(fifoPath(dir), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open exec fifo: %w", err)
	}
	defer fifo.Close()
	extra := []*os.File{fifo}
	var console, listener *os.File
	if p.spec.Process.Terminal && o.ConsoleSocket == "" && o.relayConsole {
		pair, perr := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if perr != nil {
			return nil, nil, perr
		}
		console = os.NewFile(uintptr(pair[1]), "console")
		consoleRecv = os.NewFile(uintptr(pair[0]), "console-recv")
		defer console.Close()
		extra = append(extra, console)
	} else if p.spec.Process.Terminal {
		if o.ConsoleSocket == "" {
			return nil, nil, fmt.Errorf("%w: process.terminal is true: --console-socket is required", ErrInvalid)
		}
		if console, err = dialUnix(o.ConsoleSocket, "--console-socket"); err != nil {
			return nil, nil, err
		}
		defer console.Close()
		extra = append(extra, console)
	} else if o.ConsoleSocket != "" {
		return nil, nil, fmt.Errorf("%w: --console-socket given but process.terminal is false", ErrInvalid)
	}
	if sc := p.spec.Linux.Seccomp; sc != nil && sc.ListenerPath != "" {
		if listener, err = dialUnix(sc.ListenerPath, "linux.seccomp.listenerPath"); err != nil {
			return nil, nil, err
		}
		defer listener.Close()
		extra = append(extra, listener)
	}
	var trees []*os.File
	if p.rootfs.UserNS {
		if trees, err = openBindTrees(p.rootfs.Mounts); err != nil {
			return nil, nil, err
		}
		defer closeFiles(trees)
		for _, t := range trees {
			if t != nil {
				extra = append(extra, t)
			}
		}
	}
	preserve, err := preservedFds(o.PreserveFds)
	if err != nil {
		return nil, nil, err
	}
	stdio := o.Stdio
	for i, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if stdio[i] == nil {
			stdio[i] = f
		}
	}
	boot := p.boot
	if p.cinit != nil {
		boot = nsenter.Bootstrap{Exec: p.cinit, Create: &nsenter.Create{ProcFS: p.procfs}}
		for _, j := range p.direct.joins {
			boot.Join = append(boot.Join, j.Path)
		}
		if p.direct.newCgroupNS {
			boot.Unshare = unix.CLONE_NEWCGROUP
		}
		if !o.NoNewKeyring {
			boot.Create.Keyring = "_ses." + id
		}
	} else if p.direct != nil {
		if err := p.direct.open(); err != nil {
			return nil, nil, err
		}
		defer p.direct.close()
	}
	c, fds, err := spawn(spawnOpts{binary: r.Binary, preserve: preserve, extra: extra, stdio: stdio, boot: boot, cg: p.cg, res: p.res, linux: p.spec.Linux, direct: p.direct, console: 1})
	if c != nil {
		defer closeFiles(c.procfs)
	}
	if err != nil {
		return nil, nil, err
	}
	// The pid is recorded with the ready state below; until then a crash
	// leaves a "creating" record whose processes delete finds through the
	// cgroup.
	st.Pid = c.pid
	if st.PidStart, _, err = procStart(c.pid); err != nil {
		return nil, nil, fmt.Errorf("container init exited early: %w", err)
	}
	if adj := p.spec.Process.OOMScoreAdj; adj != nil {
		if err := os.WriteFile("/proc/"+strconv.Itoa(c.pid)+"/oom_score_adj", []byte(strconv.Itoa(*adj)), 0); err != nil {
			return nil, nil, fmt.Errorf("process.oomScoreAdj: %w", err)
		}
	}

	cfg := newInitConfig("create", id, p.bundle, p.spec, p.spec.Process, p.seccomp)
	cfg.Rootfs, cfg.NoNewKeyring, cfg.HostPid, cfg.InitPid = p.rootfs, o.NoNewKeyring, c.pid, c.pid
	cfg.PreserveFds, cfg.FifoFd = o.PreserveFds, fds[0]
	next := 1
	if console != nil {
		cfg.ConsoleFd = fds[next]
		next++
	}
	if listener != nil {
		cfg.ListenerFd = fds[next]
		next++
	}
	if trees != nil {
		cfg.Rootfs.BindTrees = make([]int, len(trees))
		for i, t := range trees {
			cfg.Rootfs.BindTrees[i] = -1
			if t != nil {
				cfg.Rootfs.BindTrees[i] = fds[next]
				next++
			}
		}
	}
	if p.direct != nil {
		cfg.Setns, cfg.NewCgroupNS = p.direct.joins, p.direct.newCgroupNS
	}
	for _, n := range p.spec.Linux.Namespaces {
		if n.Path == "" && n.Type == specs.NetworkNamespace {
			cfg.NewNetNS = true
		}
		if n.Path == "" && n.Type == specs.UTSNamespace {
			cfg.NewUTSNS = true
		}
	}
	if p.cinit != nil {
		if err := buildRootfs(c.pid, cfg, c.procfs); err != nil {
			return nil, nil, err
		}
		if err := nsenter.RootfsDone(c.conn); err != nil {
			return nil, nil, fmt.Errorf("container init: %w", err)
		}
	} else {
		b, err := cfg.MarshalBinary()
		if err != nil {
			return nil, nil, err
		}
		if err := writeMsg(c.conn, msgConfig, b); err != nil {
			return nil, nil, fmt.Errorf("send init config: %w", err)
		}
	}
	for ready := false; !ready; {
		typ, payload, err := readMsg(c.conn)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, nil, errors.New("container init exited before it was ready")
			}
			return nil, nil, fmt.Errorf("read from container init: %w", err)
		}
		switch typ {
		case msgHooks:
			state := r.specState(st, "creating")
			state.Pid = c.pid
			herr := hooks.Run("prestart", p.spec.Hooks.Prestart, state)
			if herr == nil {
				herr = hooks.Run("createRuntime", p.spec.Hooks.CreateRuntime, state)
			}
			if herr != nil {
				hookFailed = true
				_ = writeMsg(c.conn, msgError, []byte(herr.Error()))
				return nil, nil, fmt.Errorf("%w: %v", errHook, herr)
			}
			if err := writeMsg(c.conn, msgHooksDone, nil); err != nil {
				return nil, nil, fmt.Errorf("container init: %w", err)
			}
		case msgReady:
			ready = true
		case msgError:
			msg := string(payload)
			if strings.Contains(msg, "createContainer hook") {
				hookFailed = true
				return nil, nil, fmt.Errorf("%w: %s", errHook, msg)
			}
			return nil, nil, errors.New(msg)
		default:
			return nil, nil, fmt.Errorf("container init sent unexpected message %d", typ)
		}
	}
	st.Phase = phaseCreated
	if err := writeState(dir, st); err != nil {
		return nil, nil, err
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, c.pid); err != nil {
			return nil, nil, err
		}
	}
	c.console = consoleRecv
	return c, st, nil
}

// openBindTrees clones the source of every bind mount on the host side
// (open_tree(2), recursive for rbind), for an init in a user namespace: its
// root may not be allowed to reach the source by path (a directory of the
// engine's that is not searchable by others), and a detached clone can be
// attached in any mount namespace. Entries of other mounts are nil.
func openBindTrees(mounts []specs.Mount) ([]*os.File, error) {
	trees := make([]*os.File, len(mounts))
	for i, m := range mounts {
		opts, err := rootfs.ParseMountOptions(m.Type, m.Options)
		if err != nil || !opts.Bind() {
			continue // Validate reported bad options already
		}
		flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
		if opts.Recursive() {
			flags |= unix.AT_RECURSIVE
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, m.Source, flags)
		if err != nil {
			closeFiles(trees)
			return nil, fmt.Errorf("mounts[%d]: clone bind source %s: %w", i, m.Source, err)
		}
		trees[i] = os.NewFile(uintptr(fd), m.Source)
	}
	return trees, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

func dialUnix(path, what string) (*os.File, error) {
	f, err := unixsock.Dial(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return f, nil
}

// preservedFds returns our fds 3..3+n-1, which the container inherits.
func preservedFds(n int) ([]*os.File, error) {
	var out []*os.File
	for i := 0; i < n; i++ {
		fd := 3 + i
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("%w: --preserve-fds %d: fd %d is not open", ErrInvalid, n, fd)
		}
		out = append(out, os.NewFile(uintptr(fd), "preserved-"+strconv.Itoa(fd)))
	}
	return out, nil
}

// writePidFile writes pid atomically, so a reader never sees a partial file.
func writePidFile(path string, pid int) error {
	path, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--pid-file: %w", err)
	}
	return nil
}
