package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/nsenter"
	"github.com/berthproject/berth/internal/rootfs"
	"github.com/berthproject/berth/internal/seccomp"
)

func TestCheckID(t *testing.T) {
	for id, ok := range map[string]bool{
		"abc": true, "a.b_c-d+e": true, "0123": true,
		"": false, ".": false, "..": false, ".seccomp": false, "a/b": false, "../x": false, "a b": false, "é": false,
	} {
		err := CheckID(id)
		if (err == nil) != ok {
			t.Errorf("CheckID(%q) = %v, want ok=%v", id, err, ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckID(%q) = %v, want ErrInvalid", id, err)
		}
	}
}

func TestBootstrapFor(t *testing.T) {
	ns := func(list ...specs.LinuxNamespace) map[specs.LinuxNamespaceType]specs.LinuxNamespace {
		m := map[specs.LinuxNamespaceType]specs.LinuxNamespace{}
		for _, n := range list {
			m[n.Type] = n
		}
		return m
	}
	tests := []struct {
		name  string
		linux *specs.Linux
		has   map[specs.LinuxNamespaceType]specs.LinuxNamespace
		want  nsenter.Bootstrap
	}{
		{"all new", &specs.Linux{}, ns(
			specs.LinuxNamespace{Type: "pid"}, specs.LinuxNamespace{Type: "mount"}, specs.LinuxNamespace{Type: "network"},
			specs.LinuxNamespace{Type: "user"}),
			nsenter.Bootstrap{Unshare: unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWUSER, Fork: true}},
		{"no pid ns: no fork", &specs.Linux{}, ns(specs.LinuxNamespace{Type: "mount"}, specs.LinuxNamespace{Type: "uts"}),
			nsenter.Bootstrap{Unshare: unix.CLONE_NEWNS | unix.CLONE_NEWUTS}},
		{"joined user and net first, mount last", &specs.Linux{}, ns(
			specs.LinuxNamespace{Type: "user", Path: "/u"}, specs.LinuxNamespace{Type: "mount", Path: "/m"},
			specs.LinuxNamespace{Type: "network", Path: "/n"}, specs.LinuxNamespace{Type: "ipc"}),
			nsenter.Bootstrap{UserNS: "/u", Join: []string{"/n", "/m"}, Unshare: unix.CLONE_NEWIPC}},
		{"time offsets", &specs.Linux{TimeOffsets: map[string]specs.LinuxTimeOffset{"boottime": {Secs: 5}, "monotonic": {Secs: -2, Nanosecs: 7}}},
			ns(specs.LinuxNamespace{Type: "time"}),
			nsenter.Bootstrap{Unshare: unix.CLONE_NEWTIME, Fork: true, TimeOffsets: "monotonic -2 7\nboottime 5 0\n"}},
	}
	for _, tt := range tests {
		if got := bootstrapFor(tt.linux, tt.has, ""); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: bootstrapFor = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestCgroupResourcesAppendsDefaultDevices(t *testing.T) {
	deny := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	major, minor := int64(10), int64(229)
	readOnly := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "r"}
	l := &specs.Linux{
		Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{deny, readOnly}},
		Devices:   []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}, {Path: "/dev/p", Type: "p"}},
	}
	res := cgroupResources(l)
	if !reflect.DeepEqual(res.Devices[:2], []specs.LinuxDeviceCgroup{deny, readOnly}) {
		t.Errorf("first rules = %+v, want the spec's deny-all and its read-only rule", res.Devices[:2])
	}
	if got, want := len(res.Devices), 2+len(defaultDeviceRules); got != want {
		t.Fatalf("%d rules, want %d (the spec's, then the defaults; none for linux.devices)", got, want)
	}
	for _, r := range res.Devices[2:] {
		if r.Major != nil && *r.Major == 10 {
			t.Errorf("rule %+v for /dev/fuse: linux.devices must not widen the spec's rules", r)
		}
	}
	if len(l.Resources.Devices) != 2 {
		t.Errorf("cgroupResources changed the spec's own rules: %+v", l.Resources.Devices)
	}
}

func TestMergeResources(t *testing.T) {
	i := func(v int64) *int64 { return &v }
	u := func(v uint64) *uint64 { return &v }
	old := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: i(100), Reservation: i(50)},
		CPU:    &specs.LinuxCPU{Shares: u(512), Cpus: "0"},
	}
	got := mergeResources(old, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i(200)}, Pids: &specs.LinuxPids{Limit: i(10)}})
	if *got.Memory.Limit != 200 || *got.Memory.Reservation != 50 || *got.CPU.Shares != 512 || got.CPU.Cpus != "0" || *got.Pids.Limit != 10 {
		t.Errorf("mergeResources = memory %+v cpu %+v pids %+v", got.Memory, got.CPU, got.Pids)
	}
	if *old.Memory.Limit != 100 {
		t.Errorf("mergeResources changed its input: limit %d", *old.Memory.Limit)
	}
}

func TestStateRoundTripAndStatus(t *testing.T) {
	r := &Runtime{Root: t.TempDir()}
	dir := r.dir("c1")
	if err := os.Mkdir(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	// A process that surely exited: our own child, reaped.
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Skip("no /bin/true:", err)
	}
	dead := p.Pid
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	st := &State{ID: "c1", Bundle: "/b", Pid: dead, PidStart: 1, Created: time.Now().UTC(), Phase: phaseCreated,
		Annotations: map[string]string{"k": "v"}}
	if err := writeState(dir, st); err != nil {
		t.Fatal(err)
	}
	got, err := readState(dir, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != stateVersion || got.Pid != dead || got.Bundle != "/b" {
		t.Errorf("readState = %+v", got)
	}
	if s := r.status(got); s != "stopped" {
		t.Errorf("status of a container whose init exited = %q, want stopped", s)
	}
	// Our own pid is alive; with its real start time it counts as the init.
	start, _, err := procStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	got.Pid, got.PidStart = os.Getpid(), start
	if err := unix.Mkfifo(fifoPath(dir), 0o600); err != nil {
		t.Fatal(err)
	}
	if s := r.status(got); s != "created" {
		t.Errorf("status with the exec fifo present = %q, want created", s)
	}
	got.PidStart = start + 1 // the pid was reused by another process
	if s := r.status(got); s != "stopped" {
		t.Errorf("status with a reused pid = %q, want stopped", s)
	}
	info, err := r.State("c1")
	if err != nil {
		t.Fatal(err)
	}
	if info.Annotations["k"] != "v" || info.Pid != 0 || info.Status != "stopped" {
		t.Errorf("State() = %+v", info)
	}
	if _, err := r.State("nope"); !errors.Is(err, ErrNotExist) {
		t.Errorf("State(missing) = %v, want ErrNotExist", err)
	}
	// A newer schema is refused, not misread.
	if err := os.WriteFile(statePath(dir), []byte(`{"version": 99}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readState(dir, "c1"); err == nil {
		t.Error("readState accepted schema version 99")
	}
	// A directory without state.json is a create killed early: "creating".
	d2 := r.dir("c2")
	if err := os.Mkdir(d2, 0o711); err != nil {
		t.Fatal(err)
	}
	if st, err := readState(d2, "c2"); err != nil || st.Phase != phaseCreating {
		t.Errorf("readState(no state.json) = %+v, %v; want phase creating", st, err)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, ".state-*")); len(entries) != 0 {
		t.Errorf("temporary state files left behind: %v", entries)
	}
}

// Which configs start the init without the C stage, and what the init does
// itself then.
func TestDirectFor(t *testing.T) {
	ns := func(l ...specs.LinuxNamespace) (*specs.Linux, map[specs.LinuxNamespaceType]specs.LinuxNamespace) {
		has := map[specs.LinuxNamespaceType]specs.LinuxNamespace{}
		for _, n := range l {
			has[n.Type] = n
		}
		return &specs.Linux{Namespaces: l}, has
	}
	n := func(t specs.LinuxNamespaceType, path string) specs.LinuxNamespace {
		return specs.LinuxNamespace{Type: t, Path: path}
	}
	l, has := ns(n(specs.PIDNamespace, ""), n(specs.MountNamespace, ""), n(specs.NetworkNamespace, "/run/netns/x"),
		n(specs.UTSNamespace, ""), n(specs.CgroupNamespace, ""))
	d := directFor(l, has)
	if d == nil {
		t.Fatal("the usual container went through the C stage")
	}
	if want := uintptr(unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS); d.cloneflags != want {
		t.Errorf("clone flags %#x, want %#x (the cgroup namespace is made by the init)", d.cloneflags, want)
	}
	if !d.newCgroupNS || len(d.joins) != 1 || d.joins[0].Path != "/run/netns/x" || d.joins[0].Flag != unix.CLONE_NEWNET {
		t.Errorf("plan %+v: want a new cgroup namespace and a join of /run/netns/x", d)
	}
	for name, extra := range map[string]specs.LinuxNamespace{
		"new user namespace":    n(specs.UserNamespace, ""),
		"joined user namespace": n(specs.UserNamespace, "/proc/1/ns/user"),
		"time namespace":        n(specs.TimeNamespace, ""),
		"joined pid namespace":  n(specs.PIDNamespace, "/proc/1/ns/pid"),
		"joined cgroup ns":      n(specs.CgroupNamespace, "/proc/1/ns/cgroup"),
	} {
		l, has := ns(n(specs.MountNamespace, ""), extra)
		if d := directFor(l, has); d != nil {
			t.Errorf("%s: started without the C stage (%+v)", name, d)
		}
	}
	l, has = ns(n(specs.MountNamespace, ""))
	l.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 1}}
	if d := directFor(l, has); d != nil {
		t.Errorf("time offsets: started without the C stage")
	}
}

// finishInC takes the usual exec'd process to the C stage, with every
// attribute encoded, and leaves to the Go init what only it does.
func TestFinishInC(t *testing.T) {
	umask := uint32(0o077)
	base := func() *specs.Process {
		return &specs.Process{
			Args: []string{"sh"}, Env: []string{"PATH=/bin"}, Cwd: "/w",
			User:            specs.User{UID: 1, GID: 2, AdditionalGids: []uint32{3}, Umask: &umask},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 20}},
			Capabilities:    &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL", "CAP_CHOWN"}, Effective: []string{"CAP_KILL"}},
			NoNewPrivileges: true,
		}
	}
	spec := &specs.Spec{Linux: &specs.Linux{}}
	prog, err := seccomp.Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}}})
	if err != nil {
		t.Fatal(err)
	}
	progBytes, err := prog.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	x := finishInC(spec, base(), progBytes, 2)
	if x == nil {
		t.Fatal("the usual exec'd process went to the Go init")
	}
	if !reflect.DeepEqual(x.Args, []string{"sh"}) || x.Cwd != "/w" || x.UID != 1 || x.GID != 2 || *x.Umask != 0o077 ||
		!reflect.DeepEqual(x.AdditionalGids, []uint32{3}) || !x.NoNewPrivs || x.PreserveFds != 2 {
		t.Errorf("process %+v", x)
	}
	if want := []nsenter.Rlimit{{Resource: unix.RLIMIT_NOFILE, Index: 0, Soft: 10, Hard: 20}}; !reflect.DeepEqual(x.Rlimits, want) {
		t.Errorf("rlimits %+v, want %+v", x.Rlimits, want)
	}
	if c := x.Caps; c == nil || c.Bounding != 1<<unix.CAP_KILL|1<<unix.CAP_CHOWN || c.Effective != 1<<unix.CAP_KILL || c.Permitted != 0 {
		t.Errorf("capabilities %+v", c)
	}
	if len(x.Seccomp) != 8*len(prog.Filter) {
		t.Errorf("seccomp filter of %d bytes, want %d instructions of 8", len(x.Seccomp), len(prog.Filter))
	}
	if x := finishInC(spec, &specs.Process{Args: []string{"true"}, Cwd: "/"}, nil, 0); x == nil || x.Caps != nil || x.Seccomp != nil || x.Terminal {
		t.Errorf("a process without capabilities, filter or terminal: %+v, want none touched", x)
	}
	tp := base()
	tp.Terminal, tp.ConsoleSize = true, &specs.Box{Height: 40, Width: 120}
	if x := finishInC(spec, tp, nil, 0); x == nil || !x.Terminal || x.ConsoleRows != 40 || x.ConsoleCols != 120 {
		t.Errorf("a process with a terminal of 40x120: %+v, want it finished in C with that size", x)
	}

	notify, err := seccomp.Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		ListenerPath: "/agent", Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}})
	if err != nil {
		t.Fatal(err)
	}
	notifyBytes, _ := notify.MarshalBinary()
	goInit := map[string]func(*specs.Spec, *specs.Process) []byte{
		"scheduler":   func(_ *specs.Spec, p *specs.Process) []byte { p.Scheduler = &specs.Scheduler{}; return nil },
		"io priority": func(_ *specs.Spec, p *specs.Process) []byte { p.IOPriority = &specs.LinuxIOPriority{}; return nil },
		"apparmor":    func(_ *specs.Spec, p *specs.Process) []byte { p.ApparmorProfile = "x"; return nil },
		"selinux":     func(_ *specs.Spec, p *specs.Process) []byte { p.SelinuxLabel = "x"; return nil },
		"personality": func(s *specs.Spec, _ *specs.Process) []byte {
			s.Linux.Personality = &specs.LinuxPersonality{}
			return nil
		},
		"agent": func(s *specs.Spec, _ *specs.Process) []byte {
			s.Linux.Seccomp = &specs.LinuxSeccomp{ListenerPath: "/x"}
			return nil
		},
		"notify": func(*specs.Spec, *specs.Process) []byte { return notifyBytes },
		"rlimit": func(_ *specs.Spec, p *specs.Process) []byte { p.Rlimits[0].Type = "RLIMIT_BOGUS"; return nil },
		"capability": func(_ *specs.Spec, p *specs.Process) []byte {
			p.Capabilities.Effective = []string{"CAP_BOGUS"}
			return nil
		},
		"bad filter": func(*specs.Spec, *specs.Process) []byte { return []byte("junk") },
	}
	for name, adapt := range goInit {
		s, p := &specs.Spec{Linux: &specs.Linux{}}, base()
		filter := adapt(s, p)
		if x := finishInC(s, p, filter, 0); x != nil {
			t.Errorf("%s: finished in the C stage, want the Go init", name)
		}
	}
	t.Setenv(EnvExecInit, "go")
	if x := finishInC(spec, base(), nil, 0); x != nil {
		t.Errorf("%s=go: finished in the C stage, want the Go init", EnvExecInit)
	}
}

// cinitFor lets berth-nsenter be the container's init only where the
// runtime can build the rootfs from its own thread and nothing needs the Go
// init.
func TestCinitFor(t *testing.T) {
	base := func() (*prepared, *CreateOpts) {
		spec := &specs.Spec{
			Process: &specs.Process{Args: []string{"sh"}, Cwd: "/"},
			Linux:   &specs.Linux{},
			Mounts: []specs.Mount{
				{Destination: "/proc", Type: "proc", Source: "proc"},
				{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
				{Destination: "/mnt/p", Type: "proc", Source: "proc", Options: []string{"nosuid", "ro", "hidepid=2"}},
				{Destination: "/host/proc", Type: "bind", Source: "/proc", Options: []string{"rbind"}},
			},
		}
		p := &prepared{spec: spec, rootfs: rootfs.Config{Mounts: spec.Mounts}, direct: &directPlan{}}
		return p, &CreateOpts{}
	}
	p, o := base()
	x, n := cinitFor(p, o)
	if x == nil || n != 2 {
		t.Fatalf("default container: process %v, %d proc mounts; want the C init with 2 (the bind is not one)", x, n)
	}
	goInit := map[string]func(*prepared, *CreateOpts){
		"C stage (user or time namespace)": func(p *prepared, _ *CreateOpts) { p.direct = nil },
		"no-pivot":                         func(_ *prepared, o *CreateOpts) { o.NoPivot = true },
		"createContainer hook": func(p *prepared, _ *CreateOpts) {
			p.spec.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/x"}}}
		},
		"startContainer hook": func(p *prepared, _ *CreateOpts) {
			p.spec.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/x"}}}
		},
		"prestart hook": func(p *prepared, _ *CreateOpts) { p.spec.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/x"}}} },
		"createRuntime hook": func(p *prepared, _ *CreateOpts) {
			p.spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/x"}}}
		},
		"proc flag fsmount cannot set": func(p *prepared, _ *CreateOpts) {
			p.rootfs.Mounts = append(p.rootfs.Mounts, specs.Mount{Destination: "/p", Type: "proc", Options: []string{"sync"}})
		},
	}
	for name, adapt := range goInit {
		p, o := base()
		adapt(p, o)
		if x, _ := cinitFor(p, o); x != nil {
			t.Errorf("%s: berth-nsenter as the init, want the Go init", name)
		}
	}
	p, o = base()
	p.spec.Hooks = &specs.Hooks{Poststart: []specs.Hook{{Path: "/x"}}, Poststop: []specs.Hook{{Path: "/x"}}}
	if x, _ := cinitFor(p, o); x == nil {
		t.Errorf("poststart/poststop hooks (the runtime's own): the Go init, want berth-nsenter")
	}
	t.Setenv(EnvExecInit, "go")
	if p, o := base(); func() bool { x, _ := cinitFor(p, o); return x != nil }() {
		t.Errorf("%s=go: berth-nsenter as the init, want the Go init", EnvExecInit)
	}
}
