package cgroups

// Root tests: they create real cgroups under a unique parent at the top of
// every hierarchy, put child processes in them and read the kernel's files.
// They run on whatever layout the machine has: the project's hybrid hosts
// directly, and pure cgroup v2 inside the VM of test/qemu.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// childEnv selects what the re-executed test binary does instead of tests.
const childEnv = "BERTH_CGROUPS_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// runChild is the body of a child process. Children that must act inside
// the cgroup first wait for a line on stdin, sent after Apply.
func runChild(mode string, args []string) int {
	gate := func() { bufio.NewReader(os.Stdin).ReadString('\n') }
	switch mode {
	case "sleep":
		for {
			time.Sleep(time.Hour)
		}
	case "alloc": // alloc MiB: touch that much memory
		gate()
		n, _ := strconv.Atoi(args[0])
		b := make([]byte, n<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Println("survived")
		return 0
	case "open": // open PATH read-write
		gate()
		f, err := os.OpenFile(args[0], os.O_RDWR, 0)
		if errors.Is(err, unix.EPERM) {
			return 13
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		f.Close()
		return 0
	case "count": // count FILE: write 1, 2, 3... to FILE, one a millisecond
		for n := 1; ; n++ {
			os.WriteFile(args[0], []byte(strconv.Itoa(n)), 0o644)
			time.Sleep(time.Millisecond)
		}
	}
	fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
	return 2
}

type child struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	outFile string
	done    chan error
}

// startChild runs this test binary as a child in mode, or, if mode starts
// with "/", that program with args. The child is killed and reaped at the
// end of the test.
func startChild(t *testing.T, mode string, args ...string) *child {
	t.Helper()
	var cmd *exec.Cmd
	if strings.HasPrefix(mode, "/") {
		cmd = exec.Command(mode, args...)
	} else {
		cmd = exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), childEnv+"="+mode)
	}
	// Output goes to a file, not a pipe: a grandchild holding a pipe open
	// would keep Wait from returning after the child itself exits.
	out, err := os.CreateTemp(t.TempDir(), "child-output")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	c := &child{cmd: cmd, outFile: out.Name(), done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child %s: %v", mode, err)
	}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		unix.Kill(cmd.Process.Pid, unix.SIGKILL)
		<-c.done
		c.done <- nil // later waits return at once
	})
	return c
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) output() string {
	data, _ := os.ReadFile(c.outFile)
	return string(data)
}

func (c *child) release(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
		t.Fatalf("release child: %v", err)
	}
}

// wait returns the child's exit status (code, or -signal).
func (c *child) wait() int {
	err := <-c.done
	c.done <- err
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			return -int(ws.Signal())
		}
		return ws.ExitStatus()
	}
	if err != nil {
		return -1000
	}
	return 0
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9]+`)

// rootCgroup returns a manager for a fresh cgroup /berth-test-<pid>-<test>/c
// and removes the whole test parent, in every hierarchy, at the end.
func rootCgroup(t *testing.T) (Manager, *Layout, string) {
	t.Helper()
	requireRoot(t)
	l, err := DetectLayout(Options{})
	if err != nil {
		t.Fatal(err)
	}
	parent := fmt.Sprintf("/berth-test-%d-%s", os.Getpid(), unsafeName.ReplaceAllString(t.Name(), "_"))
	path := parent + "/c"
	m, err := New(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pm, err := New(parent, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Freeze(false)
		_ = m.Kill(unix.SIGKILL)
		for i := 0; i < 200; i++ {
			if pids, err := m.Pids(); err != nil || len(pids) == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := pm.Destroy(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return m, l, path
}

// kernelFile returns the host file for a setting: the v1 file when the v1
// controller is mounted, else the cgroup2 file.
func kernelFile(m Manager, l *Layout, v1ctrl, v1file, v2ctrl, v2file string) string {
	if l.hasV1(v1ctrl) {
		return filepath.Join(m.Path(v1ctrl), v1file)
	}
	return filepath.Join(m.Path(v2ctrl), v2file)
}

func readKernel(t *testing.T, file string) string {
	t.Helper()
	s, err := readFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// blockDevice returns "major:minor" of a block device of this machine,
// preferring a real disk over a loop device; "" if there is none.
func blockDevice() string {
	entries, _ := filepath.Glob("/sys/block/*/dev")
	sort.Slice(entries, func(i, j int) bool {
		li, lj := strings.Contains(entries[i], "/loop"), strings.Contains(entries[j], "/loop")
		if li != lj {
			return lj
		}
		return entries[i] < entries[j]
	})
	for _, e := range entries {
		if s, err := readFile(e); err == nil {
			return s
		}
	}
	return ""
}

func TestRootApplySetReadBack(t *testing.T) {
	m, l, path := rootCgroup(t)
	c := startChild(t, "count", filepath.Join(t.TempDir(), "count"))
	if err := m.Apply(c.pid()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	// The child is in the cgroup in every hierarchy.
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !strings.HasSuffix(line, ":"+path) {
			t.Errorf("/proc/%d/cgroup line %q: not in %s", c.pid(), line, path)
		}
	}

	r := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr[int64](64 << 20)},
		CPU:    &specs.LinuxCPU{Shares: ptr[uint64](512), Quota: ptr[int64](20000), Period: ptr[uint64](100000), Cpus: "0"},
		Pids:   &specs.LinuxPids{Limit: ptr[int64](50)},
	}
	type check struct{ file, want string }
	checks := []check{
		{kernelFile(m, l, "memory", "memory.limit_in_bytes", "memory", "memory.max"), "67108864"},
		{kernelFile(m, l, "pids", "pids.max", "pids", "pids.max"), "50"},
		{kernelFile(m, l, "cpuset", "cpuset.cpus", "cpuset", "cpuset.cpus"), "0"},
	}
	if l.hasV1("cpu") {
		checks = append(checks, check{filepath.Join(m.Path("cpu"), "cpu.shares"), "512"},
			check{filepath.Join(m.Path("cpu"), "cpu.cfs_quota_us"), "20000"},
			check{filepath.Join(m.Path("cpu"), "cpu.cfs_period_us"), "100000"})
	} else {
		checks = append(checks, check{filepath.Join(m.Path("cpu"), "cpu.weight"), "20"},
			check{filepath.Join(m.Path("cpu"), "cpu.max"), "20000 100000"})
	}
	if dev := blockDevice(); dev != "" {
		var maj, min int64
		fmt.Sscanf(dev, "%d:%d", &maj, &min)
		r.BlockIO = &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{
			{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: maj, Minor: min}, Rate: 1 << 20},
		}}
		if l.hasV1("blkio") {
			checks = append(checks, check{filepath.Join(m.Path("blkio"), "blkio.throttle.read_bps_device"), dev + " 1048576"})
		} else {
			checks = append(checks, check{filepath.Join(m.Path("io"), "io.max"), dev + " rbps=1048576 wbps=max riops=max wiops=max"})
		}
	} else {
		t.Log("no block device: blockIO throttling not checked")
	}
	if _, err := os.Stat(filepath.Join(m.Path("io"), "io.weight")); err == nil && !l.hasV1("blkio") {
		r.BlockIO = orEmpty(r.BlockIO)
		r.BlockIO.Weight = ptr[uint16](500)
		checks = append(checks, check{filepath.Join(m.Path("io"), "io.weight"), "default 4950"})
	}
	hugeFile := kernelFile(m, l, "hugetlb", "hugetlb.2MB.limit_in_bytes", "hugetlb", "hugetlb.2MB.max")
	if _, err := os.Stat(hugeFile); err == nil {
		r.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}
		checks = append(checks, check{hugeFile, "4194304"})
	} else {
		t.Log("no 2MB hugetlb files: hugepage limits not checked")
	}

	if err := m.Set(r); err != nil {
		t.Fatalf("Set: %v", err)
	}
	for _, c := range checks {
		if got := readKernel(t, c.file); got != c.want {
			t.Errorf("after Set, %s = %q, want %q", c.file, got, c.want)
		}
	}

	s, err := m.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if s.Memory.Usage.Limit != 64<<20 || s.Pids.Current < 1 || s.Pids.Limit != 50 {
		t.Errorf("Stats = memory limit %d, pids %d/%d; want 64 MiB, >= 1/50", s.Memory.Usage.Limit, s.Pids.Current, s.Pids.Limit)
	}
	// The counting child uses cpu time in the cgroup: the stats see it.
	for s.CPU.Usage.Total == 0 {
		time.Sleep(10 * time.Millisecond)
		if s, err = m.Stats(); err != nil {
			t.Fatalf("Stats: %v", err)
		}
	}
	pids, err := m.Pids()
	if err != nil || len(pids) != 1 || pids[0] != c.pid() {
		t.Errorf("Pids() = %v, %v; want [%d]", pids, err, c.pid())
	}
}

func orEmpty(b *specs.LinuxBlockIO) *specs.LinuxBlockIO {
	if b == nil {
		return &specs.LinuxBlockIO{}
	}
	return b
}

// A process over the memory limit is killed by the kernel, and the stats
// show it.
func TestRootOOM(t *testing.T) {
	m, l, _ := rootCgroup(t)
	c := startChild(t, "alloc", "256")
	if err := m.Apply(c.pid()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	mem := &specs.LinuxMemory{Limit: ptr[int64](32 << 20)}
	if _, err := os.Stat(kernelFile(m, l, "memory", "memory.memsw.limit_in_bytes", "memory", "memory.swap.max")); err == nil {
		mem.Swap = ptr[int64](32 << 20) // no swapping out of the limit
	}
	if err := m.Set(&specs.LinuxResources{Memory: mem}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	c.release(t)
	if got := c.wait(); got != -int(unix.SIGKILL) {
		t.Fatalf("child touching 256 MiB under a 32 MiB limit: status %d (output %q), want killed by SIGKILL", got, c.output())
	}
	s, err := m.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	// Kernels differ in whether v1 memory.failcnt counts here (6.18 does
	// not); the OOM kill count and the peak are always there.
	if s.Memory.EventCount.OOMKill < 1 {
		t.Errorf("after an OOM kill, stats oom_kill = %d, want >= 1", s.Memory.EventCount.OOMKill)
	}
	if s.Memory.Usage.Max < 16<<20 || s.Memory.Usage.Max > 33<<20 {
		t.Errorf("after an OOM kill, peak usage = %d, want near the 32 MiB limit", s.Memory.Usage.Max)
	}
	if !l.hasV1("memory") && s.Memory.EventCount.Max < 1 {
		t.Errorf("after an OOM kill, memory.events max = %d, want >= 1", s.Memory.EventCount.Max)
	}
	t.Logf("failcnt %d, memory+swap failcnt %d", s.Memory.Usage.Failcnt, s.Memory.Swap.Failcnt)
}

func busybox(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("needs busybox for a shell that forks")
	return ""
}

// pids.max stops forks: the shell cannot start more than the limit allows.
func TestRootPidsLimit(t *testing.T) {
	m, l, _ := rootCgroup(t)
	bb := busybox(t)
	script := `read x; i=0; while [ $i -lt 10 ]; do ` + bb + ` sleep 1000 & i=$((i+1)); done; exec ` + bb + ` sleep 1000`
	c := startChild(t, bb, "sh", "-c", script)
	if err := m.Apply(c.pid()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](4)}}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	c.release(t)
	events := kernelFile(m, l, "pids", "pids.events", "pids", "pids.events")
	for {
		kv, err := readKeyValues(events)
		if err != nil {
			t.Fatal(err)
		}
		if kv["max"] > 0 {
			break // the kernel refused a fork
		}
		time.Sleep(10 * time.Millisecond)
	}
	pids, err := m.Pids()
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) > 4 {
		t.Errorf("with pids.max 4, the cgroup has %d processes: %v", len(pids), pids)
	}
	if s, err := m.Stats(); err != nil || s.Pids.Current > 4 || s.Pids.Limit != 4 {
		t.Errorf("Stats pids = %+v, %v; want current <= 4, limit 4", s.Pids, err)
	}
}

// Freeze stops every process until thawed, and the kernel says so.
func TestRootFreeze(t *testing.T) {
	m, l, _ := rootCgroup(t)
	counter := filepath.Join(t.TempDir(), "count")
	c := startChild(t, "count", counter)
	if err := m.Apply(c.pid()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	read := func() string {
		data, _ := os.ReadFile(counter)
		return string(data)
	}
	for read() == "" {
		time.Sleep(time.Millisecond)
	}
	if err := m.Freeze(true); err != nil {
		t.Fatalf("Freeze(true): %v", err)
	}
	if frozen, err := m.Frozen(); err != nil || !frozen {
		t.Errorf("Frozen() after Freeze(true) = %v, %v; want true", frozen, err)
	}
	if l.hasV1("freezer") {
		if got := readKernel(t, filepath.Join(m.Path("freezer"), "freezer.state")); got != "FROZEN" {
			t.Errorf("freezer.state = %q, want FROZEN", got)
		}
	} else {
		kv, _ := readKeyValues(filepath.Join(m.Path(""), "cgroup.events"))
		if kv["frozen"] != 1 {
			t.Errorf("cgroup.events frozen = %d, want 1", kv["frozen"])
		}
	}
	before := read()
	time.Sleep(100 * time.Millisecond) // the child counts every millisecond when it runs
	if after := read(); after != before {
		t.Errorf("frozen child counted from %s to %s", before, after)
	}
	if err := m.Freeze(false); err != nil {
		t.Fatalf("Freeze(false): %v", err)
	}
	if frozen, err := m.Frozen(); err != nil || frozen {
		t.Errorf("Frozen() after Freeze(false) = %v, %v; want false", frozen, err)
	}
	for read() == before {
		time.Sleep(time.Millisecond) // thawed: it counts again
	}
}

// Kill reaches every process of the cgroup, children of children too, for
// SIGKILL (cgroup.kill where the kernel has it) and other signals (freeze,
// signal each, thaw).
func TestRootKill(t *testing.T) {
	for _, sig := range []unix.Signal{unix.SIGKILL, unix.SIGTERM} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			m, _, _ := rootCgroup(t)
			bb := busybox(t)
			c := startChild(t, bb, "sh", "-c", `read x; `+bb+` sleep 1000 & `+bb+` sleep 1000 & `+bb+` sleep 1000 & wait`)
			if err := m.Apply(c.pid()); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			c.release(t)
			for {
				pids, err := m.Pids()
				if err != nil {
					t.Fatal(err)
				}
				if len(pids) == 4 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			if err := m.Kill(sig); err != nil {
				t.Fatalf("Kill(%v): %v", sig, err)
			}
			if got := c.wait(); got != -int(sig) {
				t.Errorf("shell status %d, want killed by %v", got, sig)
			}
			for {
				pids, err := m.Pids()
				if err != nil {
					t.Fatal(err)
				}
				if len(pids) == 0 {
					break // the orphaned sleeps are gone too
				}
				time.Sleep(time.Millisecond)
			}
			if frozen, _ := m.Frozen(); frozen {
				t.Error("Kill left the cgroup frozen")
			}
		})
	}
}

// Device rules deny /dev/null and allow /dev/zero to a process in the
// cgroup: devices.deny/allow on v1, the eBPF program on v2.
func TestRootDevices(t *testing.T) {
	m, l, _ := rootCgroup(t)
	r := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](5), Access: "rwm"},
	}}
	if err := m.Apply(0); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	// Set twice, as an update does: on v2 the second program replaces the first.
	for i := 0; i < 2; i++ {
		if err := m.Set(r); err != nil {
			t.Fatalf("Set #%d: %v", i+1, err)
		}
	}
	if !l.hasV1("devices") {
		fd, err := unix.Open(m.Path(""), unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		progs, err := ourDevicePrograms(fd)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		closeFDs(progs)
		if len(progs) != 1 {
			t.Errorf("after two Sets, %d device programs of ours are attached, want 1", len(progs))
		}
	}
	for _, tc := range []struct {
		dev  string
		want int
	}{{"/dev/null", 13}, {"/dev/zero", 0}} {
		c := startChild(t, "open", tc.dev)
		if err := m.Apply(c.pid()); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		c.release(t)
		if got := c.wait(); got != tc.want {
			t.Errorf("open %s in the cgroup: status %d (output %q), want %d (13 = EPERM)", tc.dev, got, c.output(), tc.want)
		}
	}
}

// Destroy removes the cgroup from every hierarchy, and a second Destroy
// is fine.
func TestRootDestroy(t *testing.T) {
	m, l, _ := rootCgroup(t)
	c := startChild(t, "sleep")
	if err := m.Apply(c.pid()); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	var dirs []string
	for ctrl := range l.V1 {
		dirs = append(dirs, m.Path(ctrl))
	}
	if l.Unified != nil {
		dirs = append(dirs, m.Path(""))
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("after Apply: %v", err)
		}
	}
	if err := m.Kill(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.wait()
	for i := 0; i < 2; i++ {
		if err := m.Destroy(); err != nil {
			t.Fatalf("Destroy #%d: %v", i+1, err)
		}
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after Destroy, stat %s = %v, want not exist", d, err)
		}
	}
}
