package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	testrootfs "github.com/berthproject/berth/test/rootfs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Guards against a hung runtime: they turn a hang into a failure and are
// never used to judge behaviour.
const (
	commandGuard = 2 * time.Minute
	pollGuard    = time.Minute
)

// runtimeUnderTest is the OCI runtime binary the suite drives.
type runtimeUnderTest struct {
	name string // "runc", "crun" or "berth"
	path string
}

var (
	rt           runtimeUnderTest
	setupErr     error        // why the suite cannot run; reported by every test
	baseRootfs   string       // the busybox tree every bundle copies
	baseSpec     []byte       // `<runtime> spec` output, the default config
	cgroupParent string       // cgroupsPath parent of every container of this run
	idCounter    atomic.Int64 // makes container ids unique within the run
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run() // every test skips
	}
	work, err := os.MkdirTemp("", "berth-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create work dir:", err)
		return 1
	}
	defer os.RemoveAll(work)
	cgroupParent = fmt.Sprintf("/berth-it-%d", os.Getpid())
	defer removeCgroup(cgroupParent)
	setupErr = setup(work)
	return m.Run()
}

func setup(work string) error {
	var err error
	if rt, err = selectRuntime(); err != nil {
		return err
	}
	baseRootfs = filepath.Join(work, "rootfs")
	if err := testrootfs.Build(baseRootfs, testrootfs.DefaultBusybox); err != nil {
		return fmt.Errorf("build busybox rootfs: %w", err)
	}
	specDir := filepath.Join(work, "spec")
	if err := os.Mkdir(specDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", specDir, err)
	}
	cmd := rt.command(context.Background(), "spec")
	cmd.Dir = specDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s spec: %w: %s", rt.path, err, out)
	}
	if baseSpec, err = os.ReadFile(filepath.Join(specDir, "config.json")); err != nil {
		return fmt.Errorf("read the config.json written by `%s spec`: %w", rt.path, err)
	}
	return nil
}

// selectRuntime reads BERTH_TEST_RUNTIME: a path, or the name runc or crun.
func selectRuntime() (runtimeUnderTest, error) {
	want := os.Getenv("BERTH_TEST_RUNTIME")
	if want == "" {
		root, err := repoRoot()
		if err != nil {
			return runtimeUnderTest{}, err
		}
		path := filepath.Join(root, "bin", "berth-runtime")
		if _, err := os.Stat(path); err != nil {
			return runtimeUnderTest{}, fmt.Errorf("runtime %s: %w: run `make` in %s to build it, or set BERTH_TEST_RUNTIME=runc|crun|PATH", path, err, root)
		}
		return runtimeUnderTest{name: "berth", path: path}, nil
	}
	path := want
	if !strings.Contains(want, "/") {
		p, err := exec.LookPath(want)
		if err != nil {
			return runtimeUnderTest{}, fmt.Errorf("BERTH_TEST_RUNTIME=%s: %w", want, err)
		}
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		return runtimeUnderTest{}, fmt.Errorf("BERTH_TEST_RUNTIME=%s: %w", want, err)
	}
	name := "berth"
	if base := filepath.Base(path); base == "runc" || base == "crun" {
		name = base
	}
	return runtimeUnderTest{name: name, path: path}, nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the repository root: %w", err)
	}
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("find the repository root: no go.mod above %s", dir)
}

// command builds an invocation of the runtime. crun runs in a private mount
// namespace without the cgroup2 mount, see the package doc.
func (r runtimeUnderTest) command(ctx context.Context, args ...string) *exec.Cmd {
	if r.name == "crun" {
		wrapped := append([]string{"--mount", "--propagation", "unchanged", "sh", "-c",
			`mount --make-rprivate /sys/fs/cgroup && umount /sys/fs/cgroup/unified && exec "$0" "$@"`, r.path}, args...)
		return exec.CommandContext(ctx, "unshare", wrapped...)
	}
	return exec.CommandContext(ctx, r.path, args...)
}

// isBerth reports whether the runtime under test is ours rather than a
// reference runtime (runc, crun).
func isBerth() bool { return rt.name == "berth" }

// requireRuntime skips without root and fails when the suite could not set up.
func requireRuntime(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runtime integration tests need root")
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

// result is what one runtime invocation did.
type result struct {
	args           []string
	stdout, stderr string
	code           int // exit code; -1 when killed by a signal
}

func (r result) String() string {
	return fmt.Sprintf("`%s` exited %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// container is one bundle, its own --root state dir and cgroup, all removed
// when the test ends.
type container struct {
	t       *testing.T
	id      string
	dir     string // holds everything below; removed at cleanup
	bundle  string
	rootfs  string
	root    string // the runtime's --root state directory
	pidFile string
	spec    *specs.Spec // written to config.json by create and run
	initOut string      // the file the container's stdout goes to after create
	nio     int
}

var unsafeID = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// newContainer makes a bundle with the default config (the runtime's
// `spec` output with terminal false, a writable root and a cgroupsPath under
// this run's parent), adapted by each function in order.
func newContainer(t *testing.T, adapt ...func(*specs.Spec)) *container {
	t.Helper()
	requireRuntime(t)
	name := strings.ToLower(unsafeID.ReplaceAllString(strings.TrimPrefix(t.Name(), "Test"), "-"))
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	id := fmt.Sprintf("it%d-%s", idCounter.Add(1), strings.Trim(name, "-"))
	dir, err := os.MkdirTemp("", "bit")
	if err != nil {
		t.Fatalf("create bundle dir: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("chmod %s: %v", dir, err)
	}
	c := &container{
		t: t, id: id, dir: dir,
		bundle:  filepath.Join(dir, "bundle"),
		root:    filepath.Join(dir, "state"),
		pidFile: filepath.Join(dir, "pid"),
	}
	c.rootfs = filepath.Join(c.bundle, "rootfs")
	t.Cleanup(c.cleanup)
	if err := os.Mkdir(c.bundle, 0o755); err != nil {
		t.Fatalf("create bundle: %v", err)
	}
	if err := testrootfs.Copy(baseRootfs, c.rootfs); err != nil {
		t.Fatalf("copy rootfs: %v", err)
	}
	c.spec = defaultSpec(t)
	c.spec.Linux.CgroupsPath = cgroupParent + "/" + id
	for _, f := range adapt {
		f(c.spec)
	}
	return c
}

func defaultSpec(t *testing.T) *specs.Spec {
	t.Helper()
	var s specs.Spec
	if err := json.Unmarshal(baseSpec, &s); err != nil {
		t.Fatalf("parse the runtime's default spec: %v", err)
	}
	s.Process.Terminal = false
	s.Root.Readonly = false
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	return &s
}

// cgroupPath is the container's cgroupsPath.
func (c *container) cgroupPath() string { return c.spec.Linux.CgroupsPath }

// writeSpec writes c.spec to the bundle's config.json.
func (c *container) writeSpec() {
	c.t.Helper()
	data, err := json.MarshalIndent(c.spec, "", "\t")
	if err != nil {
		c.t.Fatalf("encode config.json: %v", err)
	}
	if err := os.WriteFile(filepath.Join(c.bundle, "config.json"), data, 0o644); err != nil {
		c.t.Fatalf("write config.json: %v", err)
	}
}

// rt runs the runtime with --root and args, capturing its output through
// pipes. Use it for commands that leave no process holding their stdio.
func (c *container) rt(args ...string) result {
	c.t.Helper()
	return c.invoke(nil, args...)
}

// rtDetached runs the runtime with its stdio connected to files, for
// commands that leave a process behind (create, run -d, exec -d): that
// process inherits them. It returns the content at the runtime's exit and
// the path of the stdout file.
func (c *container) rtDetached(args ...string) (result, string) {
	c.t.Helper()
	c.nio++
	out := filepath.Join(c.dir, fmt.Sprintf("io%d.out", c.nio))
	errf := filepath.Join(c.dir, fmt.Sprintf("io%d.err", c.nio))
	files := make([]*os.File, 2)
	for i, p := range []string{out, errf} {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			c.t.Fatalf("create %s: %v", p, err)
		}
		defer f.Close()
		files[i] = f
	}
	r := c.invoke(files, args...)
	r.stdout, r.stderr = readFile(c.t, out), readFile(c.t, errf)
	return r, out
}

func (c *container) invoke(stdio []*os.File, args ...string) result {
	c.t.Helper()
	full := append([]string{"--root", c.root}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), commandGuard)
	defer cancel()
	cmd := rt.command(ctx, full...)
	var stdout, stderr strings.Builder
	if stdio != nil {
		cmd.Stdout, cmd.Stderr = stdio[0], stdio[1]
	} else {
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
	}
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	r := result{args: append([]string{rt.name}, full...), stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		c.t.Fatalf("run %s: %v", rt.path, err)
	}
	if ctx.Err() != nil {
		c.t.Fatalf("%s hung: killed after %v", strings.Join(r.args, " "), commandGuard)
	}
	return r
}

// mustRT runs the runtime and fails the test unless it exits 0.
func (c *container) mustRT(args ...string) result {
	c.t.Helper()
	r := c.rt(args...)
	if r.code != 0 {
		c.t.Fatalf("%v", r)
	}
	return r
}

// create runs `create --bundle --pid-file` with extra flags before the id.
func (c *container) create(extra ...string) result {
	c.t.Helper()
	c.writeSpec()
	args := append([]string{"create", "--bundle", c.bundle, "--pid-file", c.pidFile}, extra...)
	r, out := c.rtDetached(append(args, c.id)...)
	c.initOut = out
	return r
}

func (c *container) mustCreate(extra ...string) {
	c.t.Helper()
	if r := c.create(extra...); r.code != 0 {
		c.t.Fatalf("create: %v", r)
	}
}

// startedContainer creates and starts a container running args (a long
// running command) and waits until it runs.
func startedContainer(t *testing.T, args []string, adapt ...func(*specs.Spec)) *container {
	t.Helper()
	c := newContainer(t, append([]func(*specs.Spec){func(s *specs.Spec) { s.Process.Args = args }}, adapt...)...)
	c.mustCreate()
	c.mustRT("start", c.id)
	return c
}

// run runs the container in the foreground (`run --bundle`), capturing
// its stdout and stderr.
func (c *container) run(extra ...string) result {
	c.t.Helper()
	c.writeSpec()
	args := append([]string{"run", "--bundle", c.bundle}, extra...)
	return c.rt(append(args, c.id)...)
}

// runContainer runs a container with the default config adapted by adapt
// in the foreground and returns its stdout and exit code.
func runContainer(t *testing.T, adapt ...func(*specs.Spec)) (string, int) {
	t.Helper()
	c := newContainer(t, adapt...)
	r := c.run()
	if r.code != 0 {
		t.Logf("%v", r)
	}
	return r.stdout, r.code
}

// sh returns an adaptation that runs script with busybox sh.
func sh(script string) func(*specs.Spec) {
	return func(s *specs.Spec) { s.Process.Args = []string{"sh", "-c", script} }
}

// mustRun runs script in a container with the given adaptations and fails
// unless it exits 0; it returns stdout.
func mustRun(t *testing.T, script string, adapt ...func(*specs.Spec)) string {
	t.Helper()
	c := newContainer(t, append(adapt, sh(script))...)
	r := c.run()
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	return r.stdout
}

// state runs `state` and parses its JSON.
func (c *container) state() specs.State {
	c.t.Helper()
	r := c.mustRT("state", c.id)
	var s specs.State
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		c.t.Fatalf("parse state JSON %q: %v", r.stdout, err)
	}
	return s
}

// waitStatus polls `state` until the container has the given status.
func (c *container) waitStatus(want specs.ContainerState) specs.State {
	c.t.Helper()
	var s specs.State
	waitFor(c.t, fmt.Sprintf("container %s to be %s", c.id, want), func() bool {
		s = c.state()
		return s.Status == want
	})
	return s
}

// initPid is the host pid of the container's init process (from the pid file).
func (c *container) initPid() int {
	c.t.Helper()
	data := readFile(c.t, c.pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(data))
	if err != nil {
		c.t.Fatalf("pid file %s holds %q: %v", c.pidFile, data, err)
	}
	return pid
}

// output is what the container's init has written to its stdout so far.
func (c *container) output() string {
	c.t.Helper()
	return readFile(c.t, c.initOut)
}

// waitOutput polls the init's stdout until it contains want.
func (c *container) waitOutput(want string) string {
	c.t.Helper()
	var out string
	waitFor(c.t, fmt.Sprintf("container output to contain %q", want), func() bool {
		out = c.output()
		return strings.Contains(out, want)
	})
	return out
}

// cleanup removes the container, its cgroups, mounts under its dir and the
// dir itself, whatever state the test left them in.
func (c *container) cleanup() {
	// A frozen process cannot die: thaw first.
	if cgroupV2 {
		os.WriteFile(c.cgroupFile("", "cgroup.freeze"), []byte("0"), 0o644)
	} else {
		os.WriteFile(c.cgroupFile("freezer/freezer.state", ""), []byte("THAWED"), 0o644)
	}
	if _, err := os.Stat(c.root); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), commandGuard)
		rt.command(ctx, "--root", c.root, "delete", "--force", c.id).Run()
		cancel()
	}
	for _, pid := range processesOf(c) {
		killProcess(pid)
	}
	removeCgroup(c.cgroupPath())
	unmountUnder(c.dir)
	os.RemoveAll(c.dir)
}

// waitFor polls cond until it holds; pollGuard only stops a hung test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(data)
}

// cgroupV2 is set when /sys/fs/cgroup is a pure cgroup v2 mount (as in
// test/qemu's VM); this project's hosts are v1 hybrid.
var cgroupV2 = isCgroup2("/sys/fs/cgroup")

func isCgroup2(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// cgroupDirs lists the host directories of a cgroupsPath: one per mounted
// v1 hierarchy (controllers, name=systemd, the hybrid unified one), or the
// one of a pure v2 host.
func cgroupDirs(path string) []string {
	if cgroupV2 {
		return []string{filepath.Join("/sys/fs/cgroup", path)}
	}
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	var dirs []string
	for _, h := range hierarchies {
		dirs = append(dirs, filepath.Join(h, path))
	}
	return dirs
}

// cgroupFile is the host path of a file of the container's cgroup: v1 is
// "<controller>/<file>" in the v1 hierarchies, v2 the file's name in the
// unified hierarchy of a pure v2 host.
func (c *container) cgroupFile(v1, v2 string) string {
	if cgroupV2 {
		return filepath.Join("/sys/fs/cgroup", c.cgroupPath(), v2)
	}
	controller, file, _ := strings.Cut(v1, "/")
	return filepath.Join("/sys/fs/cgroup", controller, c.cgroupPath(), file)
}

// assertCgroup checks a file of the container's cgroup: v1 and want1 on a
// v1 host, v2 and want2 on a v2 host.
func assertCgroup(t *testing.T, c *container, v1, want1, v2, want2 string) {
	t.Helper()
	want := want1
	if cgroupV2 {
		want = want2
	}
	assertFile(t, c.cgroupFile(v1, v2), want)
}

// removeCgroup removes the directories of a cgroupsPath, children first.
func removeCgroup(path string) {
	if path == "" || path == "/" {
		return
	}
	for _, dir := range cgroupDirs(path) {
		var subdirs []string
		filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.IsDir() {
				subdirs = append(subdirs, p)
			}
			return nil
		})
		for i := len(subdirs) - 1; i >= 0; i-- {
			// Killed processes leave a cgroup a little after they die.
			for try := 0; try < 100; try++ {
				if err := os.Remove(subdirs[i]); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) {
	for _, m := range mountsUnder(dir) {
		unmount(m)
	}
}

// mountsUnder lists the mount points at or below dir in this mount
// namespace, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var found []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			found = append(found, mp)
		}
	}
	for i, j := 0, len(found)-1; i < j; i, j = i+1, j-1 {
		found[i], found[j] = found[j], found[i]
	}
	return found
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// processesOf lists host pids that belong to the container: in its cgroup,
// or with a cwd or root inside its directory.
func processesOf(c *container) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil && c.cgroupPath() != "" &&
			strings.Contains(string(cg), ":"+c.cgroupPath()+"\n") {
			pids = append(pids, pid)
			continue
		}
		for _, link := range []string{"cwd", "root"} {
			if p, err := os.Readlink(fmt.Sprintf("/proc/%d/%s", pid, link)); err == nil &&
				(p == c.dir || strings.HasPrefix(p, c.dir+"/")) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
