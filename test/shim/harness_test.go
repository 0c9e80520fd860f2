package shimtest

import (
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
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/shim"
	"github.com/berthproject/berth/internal/shim/jsonlog"
	testrootfs "github.com/berthproject/berth/test/rootfs"
)

// pollGuard turns a hang into a failure; it never judges behaviour.
const pollGuard = 2 * time.Minute

var (
	setupErr     error
	shimBin      string // the berth-shim built for this run
	runtimeBin   string // the OCI runtime under test
	baseRootfs   string
	baseSpec     []byte
	cgroupParent string
	idCounter    atomic.Int64
)

func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) != "" {
		os.Exit(cliMain())
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run() // every test skips
	}
	work, err := os.MkdirTemp("", "berth-shim-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create work dir:", err)
		return 1
	}
	defer os.RemoveAll(work)
	cgroupParent = fmt.Sprintf("/berth-shim-test-%d", os.Getpid())
	defer removeCgroup(cgroupParent)
	setupErr = setup(work)
	return m.Run()
}

func setup(work string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	shimBin = filepath.Join(work, "berth-shim")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", shimBin, "./cmd/berth-shim")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if os.Getenv("BERTH_TEST_SHIM_RACE") != "" {
		// The race detector in the monitor (its stderr is /dev/null: run
		// with GORACE=log_path=/tmp/shimrace to see its reports).
		build = exec.Command("go", "build", "-race", "-o", shimBin, "./cmd/berth-shim")
	}
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build berth-shim: %v: %s", err, out)
	}
	runtimeBin = os.Getenv("BERTH_TEST_RUNTIME")
	if runtimeBin == "" {
		runtimeBin = filepath.Join(root, "bin", "berth-runtime")
	} else if !strings.Contains(runtimeBin, "/") {
		if runtimeBin, err = exec.LookPath(runtimeBin); err != nil {
			return fmt.Errorf("BERTH_TEST_RUNTIME: %w", err)
		}
	}
	if _, err := os.Stat(runtimeBin); err != nil {
		return fmt.Errorf("runtime %s: %w: run `make` in %s, or set BERTH_TEST_RUNTIME=runc|PATH", runtimeBin, err, root)
	}
	baseRootfs = filepath.Join(work, "rootfs")
	if err := testrootfs.Build(baseRootfs, testrootfs.DefaultBusybox); err != nil {
		return fmt.Errorf("build busybox rootfs: %w", err)
	}
	specDir := filepath.Join(work, "spec")
	if err := os.Mkdir(specDir, 0o755); err != nil {
		return err
	}
	cmd := exec.Command(runtimeBin, "spec")
	cmd.Dir = specDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s spec: %v: %s", runtimeBin, err, out)
	}
	baseSpec, err = os.ReadFile(filepath.Join(specDir, "config.json"))
	return err
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no go.mod above %s", dir)
}

// removeCgroup removes path (and what is below) from every v1 hierarchy
// and the unified one.
func removeCgroup(path string) {
	mounts, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, m := range append(mounts, "/sys/fs/cgroup") {
		dir := filepath.Join(m, path)
		subs, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, s := range subs {
			if st, err := os.Stat(s); err == nil && st.IsDir() {
				_ = os.Remove(s)
			}
		}
		_ = os.Remove(dir)
	}
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("berth-shim end-to-end tests need root")
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

// ctr is one container with its bundle, runtime root and monitor
// directory, all removed when the test ends.
type ctr struct {
	t      testing.TB
	id     string
	dir    string // holds everything below
	bundle string
	root   string // the runtime's --root
	sdir   string // the monitor's --dir
	log    string
	spec   *specs.Spec
	opts   shim.Options
}

var unsafeID = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// newCtr makes a container running args with the default spec adapted.
func newCtr(t testing.TB, args []string, adapt ...func(*specs.Spec)) *ctr {
	t.Helper()
	requireRoot(t)
	name := strings.ToLower(unsafeID.ReplaceAllString(strings.TrimPrefix(strings.TrimPrefix(t.Name(), "Test"), "Benchmark"), "-"))
	if len(name) > 30 {
		name = name[len(name)-30:]
	}
	id := fmt.Sprintf("shim%d-%s", idCounter.Add(1), strings.Trim(name, "-"))
	dir, err := os.MkdirTemp("", "bshim")
	if err != nil {
		t.Fatal(err)
	}
	c := &ctr{t: t, id: id, dir: dir, bundle: filepath.Join(dir, "bundle"), root: filepath.Join(dir, "state"), sdir: filepath.Join(dir, "shim")}
	c.log = filepath.Join(c.sdir, "json.log")
	t.Cleanup(c.cleanup)
	for _, d := range []string{c.bundle, c.sdir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := testrootfs.Copy(baseRootfs, filepath.Join(c.bundle, "rootfs")); err != nil {
		t.Fatalf("copy rootfs: %v", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(baseSpec, &s); err != nil {
		t.Fatal(err)
	}
	s.Process.Terminal = false
	s.Process.Args = args
	s.Root.Readonly = false
	s.Linux.CgroupsPath = cgroupParent + "/" + id
	for _, f := range adapt {
		f(&s)
	}
	c.spec = &s
	c.opts = shim.Options{
		Binary: shimBin, ID: id, Bundle: c.bundle, Runtime: runtimeBin, RuntimeRoot: c.root,
		Dir: c.sdir, Log: c.log, Tty: s.Process.Terminal,
	}
	return c
}

func sh(script string) []string { return []string{"sh", "-c", script} }

func (c *ctr) writeSpec() {
	c.t.Helper()
	data, err := json.MarshalIndent(c.spec, "", "\t")
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.bundle, "config.json"), data, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// start starts the monitor and the container; it fails the test on error.
func (c *ctr) start() int {
	c.t.Helper()
	pid, err := c.tryStart()
	if err != nil {
		c.t.Fatalf("shim.Start: %v", err)
	}
	return pid
}

func (c *ctr) tryStart() (int, error) {
	c.writeSpec()
	return shim.Start(c.opts)
}

// waitFor polls cond until it holds (or the guard fails the test).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(pollGuard); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("gave up waiting for %s after %v", what, pollGuard)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitGone waits until the monitor has exited and returns the last exit.
func (c *ctr) waitGone() *shim.Exit {
	c.t.Helper()
	waitFor(c.t, "the monitor of "+c.id+" to exit", func() bool { return !shim.Alive(c.sdir) })
	e, err := shim.ReadExit(c.sdir)
	if err != nil {
		c.t.Fatalf("ReadExit: %v", err)
	}
	return e
}

// records returns the log's records as "stream:text" strings.
func (c *ctr) records() []string {
	c.t.Helper()
	var out []string
	err := shim.ReadLogs(context.Background(), c.log, shim.LogOptions{Tail: shim.TailAll, Stdout: true, Stderr: true},
		func(r *jsonlog.Record) error {
			out = append(out, r.Stream+":"+string(r.Log))
			return nil
		})
	if err != nil {
		c.t.Fatalf("ReadLogs: %v", err)
	}
	return out
}

// rt runs the runtime with --root.
func (c *ctr) rt(args ...string) (string, error) {
	out, err := exec.Command(runtimeBin, append([]string{"--root", c.root}, args...)...).CombinedOutput()
	return string(out), err
}

// initPid reads the container init's pid the runtime wrote.
func (c *ctr) initPid() int {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.sdir, "init.pid"))
	if err != nil {
		c.t.Fatalf("read init.pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		c.t.Fatalf("init.pid %q: %v", b, err)
	}
	return pid
}

// cleanup kills what is left: the monitor (if the test left it running,
// by its pid), the container, and removes the directories.
func (c *ctr) cleanup() {
	_ = os.WriteFile(filepath.Join(c.sdir, "stopped"), nil, 0o644)
	if pid, err := shim.Pid(c.sdir); err == nil && shim.Alive(c.sdir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_, _ = c.rt("delete", "--force", c.id)
	removeCgroup(c.spec.Linux.CgroupsPath)
	_ = os.RemoveAll(c.dir)
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

var errNoExit = errors.New("no exit yet")
