package containerdtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	testrootfs "github.com/berthproject/berth/test/rootfs"
)

const (
	namespace = "berth-test"
	imageRef  = "berth.test/busybox:latest"
	shimName  = "io.containerd.runc.v2"
)

// env is what every test shares: one daemon, the imported image, the
// runtime binary given to the shim.
var env struct {
	skip     string // why the tests cannot run here (not root, no containerd)
	err      error  // why the setup failed; every test reports it
	ctr      string
	runtime  string // --runc-binary
	rtName   string // "berth" or the base name of a reference runtime
	d        *daemon
	cgParent string // cgroup parent of every container of this run
	ids      atomic.Int64
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		env.skip = "containerd tests need root"
		return m.Run()
	}
	containerd, err := exec.LookPath("containerd")
	if err != nil {
		env.skip = "containerd is not installed (apt-get install -y containerd): " + err.Error()
		return m.Run()
	}
	if env.ctr, err = exec.LookPath("ctr"); err != nil {
		env.skip = "ctr is not installed (apt-get install -y containerd): " + err.Error()
		return m.Run()
	}
	if _, err := exec.LookPath("containerd-shim-runc-v2"); err != nil {
		env.skip = "containerd-shim-runc-v2 is not installed (apt-get install -y containerd): " + err.Error()
		return m.Run()
	}
	if env.runtime, env.rtName, env.err = selectRuntime(); env.err != nil {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "berth-ctr-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create the daemon dir:", err)
		return 1
	}
	// The root of a user-namespaced container must be able to reach its
	// bundle below T, as it can below /run/containerd.
	if err := os.Chmod(dir, 0o711); err != nil {
		fmt.Fprintln(os.Stderr, "chmod the daemon dir:", err)
		return 1
	}
	env.cgParent = fmt.Sprintf("/berth-ctr-%d", os.Getpid())
	defer func() {
		if env.d != nil {
			env.d.stop()
		}
		killCgroupProcesses(env.cgParent)
		removeCgroup(env.cgParent)
		unmountUnder(dir)
		os.RemoveAll(dir)
		if env.d != nil {
			env.d.removeRunDirs()
		}
	}()
	env.d, env.err = startDaemon(dir, containerd, env.ctr, env.runtime)
	if env.err == nil {
		env.err = importImage(dir)
	}
	return m.Run()
}

// selectRuntime reads BERTH_TEST_RUNTIME like test/integration: a path or
// a name in $PATH; by default <repo>/bin/berth-runtime.
func selectRuntime() (path, name string, err error) {
	want := os.Getenv("BERTH_TEST_RUNTIME")
	if want == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", "", fmt.Errorf("find the repository root: %w", err)
		}
		root := filepath.Dir(filepath.Dir(wd)) // test/containerd
		path = filepath.Join(root, "bin", "berth-runtime")
		if _, err := os.Stat(path); err != nil {
			return "", "", fmt.Errorf("runtime %s: %w: run `make` in %s to build it, or set BERTH_TEST_RUNTIME", path, err, root)
		}
		return path, "berth", nil
	}
	path = want
	if !strings.Contains(want, "/") {
		if path, err = exec.LookPath(want); err != nil {
			return "", "", fmt.Errorf("BERTH_TEST_RUNTIME=%s: %w", want, err)
		}
	}
	if path, err = filepath.Abs(path); err != nil {
		return "", "", fmt.Errorf("BERTH_TEST_RUNTIME=%s: %w", want, err)
	}
	if _, err := os.Stat(path); err != nil {
		return "", "", fmt.Errorf("BERTH_TEST_RUNTIME=%s: %w", want, err)
	}
	name = "berth"
	if base := filepath.Base(path); base == "runc" || base == "crun" {
		name = base
	}
	return path, name, nil
}

// importImage builds the busybox tree, writes it as an OCI archive and
// imports it into the daemon as imageRef.
func importImage(dir string) error {
	rootfs := filepath.Join(dir, "image-rootfs")
	if err := testrootfs.Build(rootfs, testrootfs.DefaultBusybox); err != nil {
		return fmt.Errorf("build busybox rootfs: %w", err)
	}
	archive := filepath.Join(dir, "busybox-oci.tar")
	f, err := os.Create(archive)
	if err != nil {
		return fmt.Errorf("create %s: %w", archive, err)
	}
	base, tag, _ := strings.Cut(imageRef, ":")
	if err := writeImageArchive(f, rootfs, tag); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", archive, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", archive, err)
	}
	if err := os.RemoveAll(rootfs); err != nil {
		return fmt.Errorf("remove %s: %w", rootfs, err)
	}
	r := ctrRun(context.Background(), "image", "import", "--base-name", base, archive)
	if r.err != nil || r.code != 0 {
		return fmt.Errorf("import the busybox image: %v\n%s", r, env.d.log())
	}
	return nil
}

// requireEnv skips without root or containerd and fails when the setup did.
func requireEnv(t *testing.T) {
	t.Helper()
	if env.skip != "" {
		t.Skip(env.skip)
	}
	if env.err != nil {
		t.Fatal(env.err)
	}
}

// result is what one ctr invocation did.
type result struct {
	args           []string
	stdout, stderr string
	code           int // exit code; -1 when killed by a signal
	err            error
}

func (r result) String() string {
	s := fmt.Sprintf("`%s` exited %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
	if r.err != nil {
		s += "\nerror: " + r.err.Error()
	}
	return s
}

// ctrRun runs ctr against the test daemon in the test namespace.
func ctrRun(ctx context.Context, args ...string) result {
	full := append([]string{"-a", env.d.sock, "-n", namespace}, args...)
	ctx, cancel := context.WithTimeout(ctx, commandGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.ctr, full...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	r := result{args: append([]string{"ctr"}, full...), stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		r.err = err
	}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("hung: killed after %v", commandGuard)
	}
	return r
}

// endMark is the line the script of a foreground container writes to its
// stdout and its stderr once it has done its work (see runDrained).
const endMark = "ctr-test-end-of-output"

// runDrained runs `ctr run` in the foreground (flags extra, then sh -c
// script) and holds the container's exit until ctr has printed all that
// the script wrote to stdout and stderr. Without that hold ctr may lose
// the tail of the output: ctr 1.6 (Debian 12 ships 1.6.20) ends a
// foreground run with task.Delete, which closes its readers of the stdio
// fifos before it waits for their copy, so whatever the shim had not yet
// passed through the fifos when the task's exit event reached ctr is
// dropped (containerd PR #8643 made Delete wait first). The script runs
// as the init itself, as before: an EXIT trap writes endMark to both
// streams and waits for a line on stdin, which the test sends once ctr
// has printed both marks; the trap then exits with the script's status.
// A container killed outright (SIGKILL, OOM) runs no trap; ctr exits
// then and the test stops waiting.
func (c *container) runDrained(extra []string, script string) result {
	c.t.Helper()
	from := logSize()
	wrapped := "trap 'rc=$?; echo " + endMark + "; echo " + endMark + " >&2; read _; exit $rc' EXIT\n" + script
	full := append([]string{"-a", env.d.sock, "-n", namespace}, c.runArgs(extra...)...)
	full = append(full, "sh", "-c", wrapped)
	ctx, cancel := context.WithTimeout(context.Background(), commandGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.ctr, full...)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", env.ctr, err)
	}
	err = waitReleasing(cmd, stdin, func() bool {
		return containsLine(stdout.String(), endMark) && containsLine(stderr.String(), endMark)
	})
	r := result{args: append([]string{"ctr"}, full...),
		stdout: strings.Replace(stdout.String(), endMark+"\n", "", 1),
		stderr: strings.Replace(stderr.String(), endMark+"\n", "", 1)}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.err = fmt.Errorf("hung: killed after %v", commandGuard)
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		r.err = err
	}
	if r.err != nil {
		c.t.Fatalf("%v\ndaemon log:\n%s", r, logSince(from))
	}
	return r
}

// waitReleasing waits for cmd, started with stdin, and writes the line that
// releases the container's exit once printed says ctr has printed the end
// mark (see runDrained).
func waitReleasing(cmd *exec.Cmd, stdin io.WriteCloser, printed func() bool) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	released := false
	for {
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Millisecond):
			if !released && printed() {
				stdin.Write([]byte("\n"))
				stdin.Close()
				released = true
			}
		}
	}
}

// syncBuffer is a strings.Builder safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// container is one container id of a test, with the cgroup path it gets
// and the files the runc shim and the runtime keep for it; t.Cleanup
// removes all of it.
type container struct {
	t      *testing.T
	id     string
	cgroup string // cgroupsPath, under env.cgParent
	log    string // --log-uri file of a detached task
}

// newContainer names a container for t and registers its cleanup.
func newContainer(t *testing.T) *container {
	t.Helper()
	requireEnv(t)
	id := fmt.Sprintf("ctr%d", env.ids.Add(1))
	c := &container{t: t, id: id, cgroup: env.cgParent + "/" + id, log: filepath.Join(env.d.dir, id+".log")}
	t.Cleanup(c.cleanup)
	return c
}

// ctr runs ctr and fails the test if ctr could not run at all or hung;
// the daemon's log lines written meanwhile are attached to a failure.
func (c *container) ctr(args ...string) result {
	c.t.Helper()
	from := logSize()
	r := ctrRun(context.Background(), args...)
	if r.err != nil {
		c.t.Fatalf("%v\ndaemon log:\n%s", r, logSince(from))
	}
	return r
}

// mustCtr runs ctr and fails the test unless it exits 0.
func (c *container) mustCtr(args ...string) result {
	c.t.Helper()
	from := logSize()
	r := c.ctr(args...)
	if r.code != 0 {
		c.t.Fatalf("%v\n%s", r, c.diagnostics(from))
	}
	return r
}

// runArgs are the `ctr run` flags that put the container on the runc shim
// with the runtime under test, in its own cgroup, with every file under
// the daemon's directory; extra flags go before the image.
func (c *container) runArgs(extra ...string) []string {
	args := []string{"run", "--runtime", shimName, "--runc-binary", env.runtime,
		"--runc-root", env.d.runcRoot, "--cgroup", c.cgroup, "--fifo-dir", filepath.Join(env.d.dir, "fifo")}
	return append(append(args, extra...), imageRef, c.id)
}

// run runs script in the foreground with `ctr run --rm` (see runDrained).
func (c *container) run(script string, extra ...string) result {
	c.t.Helper()
	return c.runDrained(append([]string{"--rm"}, extra...), script)
}

// runDetached starts script as a detached task (`ctr run -d`) whose stdout
// and stderr go to c.log.
func (c *container) runDetached(script string, extra ...string) {
	c.t.Helper()
	c.mustCtr(append(c.runArgs(append([]string{"-d", "--log-uri", "file://" + c.log}, extra...)...), "sh", "-c", script)...)
}

// diagnostics is what a failure report needs: the daemon's log since from
// (it carries the shim's log) and the runtime's log.json of the task.
func (c *container) diagnostics(from int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "daemon log since the command:\n%s", logSince(from))
	logJSON := filepath.Join(env.d.taskDir(namespace, c.id), "log.json")
	if data, err := os.ReadFile(logJSON); err == nil {
		fmt.Fprintf(&b, "%s:\n%s", logJSON, data)
	}
	return b.String()
}

// taskLine is the `ctr task ls` row of the container: TASK PID STATUS.
type taskLine struct {
	pid    int
	status string
}

// task reads the container's row of `ctr task ls`; ok is false without one.
func (c *container) task() (taskLine, bool) {
	c.t.Helper()
	r := c.mustCtr("task", "ls")
	for _, line := range strings.Split(r.stdout, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == c.id {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				c.t.Fatalf("ctr task ls: pid column %q of %s: %v\n%s", f[1], c.id, err, r.stdout)
			}
			return taskLine{pid: pid, status: f[2]}, true
		}
	}
	return taskLine{}, false
}

// waitTaskStatus polls `ctr task ls` until the task has status.
func (c *container) waitTaskStatus(status string) taskLine {
	c.t.Helper()
	var tl taskLine
	waitFor(c.t, fmt.Sprintf("task %s to be %s in `ctr task ls`", c.id, status), func() bool {
		var ok bool
		tl, ok = c.task()
		return ok && tl.status == status
	})
	return tl
}

// output is what a detached task has written to its log so far.
func (c *container) output() string {
	b, _ := os.ReadFile(c.log)
	return string(b)
}

func (c *container) waitOutput(want string) string {
	c.t.Helper()
	var out string
	waitFor(c.t, fmt.Sprintf("task %s output %s to contain %q", c.id, c.log, want), func() bool {
		out = c.output()
		return strings.Contains(out, want)
	})
	return out
}

// cleanup removes the task and the container through containerd, then
// whatever is left of them on the host, even when the test failed.
func (c *container) cleanup() {
	freezerState := filepath.Join("/sys/fs/cgroup/freezer", c.cgroup, "freezer.state")
	os.WriteFile(freezerState, []byte("THAWED"), 0o644)
	ctx := context.Background()
	if r := ctrRun(ctx, "task", "kill", "--signal", "SIGKILL", c.id); r.code == 0 {
		deadline := time.Now().Add(pollGuard)
		for time.Now().Before(deadline) {
			if r := ctrRun(ctx, "task", "ls"); !strings.Contains(r.stdout, c.id+" ") || strings.Contains(r.stdout, "STOPPED") {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ctrRun(ctx, "task", "delete", "--force", c.id)
	ctrRun(ctx, "container", "delete", c.id)
	killCgroupProcesses(c.cgroup)
	removeCgroup(c.cgroup)
	unmountUnder(env.d.taskDir(namespace, c.id))
	os.RemoveAll(filepath.Join(env.d.runcRoot, namespace, c.id))
	os.RemoveAll(filepath.Join(defaultRuncRoot, namespace, c.id))
	os.Remove(env.d.shimSocket(namespace, c.id))
}

// assertNoLeftovers checks that nothing of the container is left: no task
// or container in containerd, no shim, no bundle or mount, no runtime
// state, no cgroup.
func assertNoLeftovers(t *testing.T, c *container) {
	t.Helper()
	if r := c.mustCtr("task", "ls", "-q"); containsLine(r.stdout, c.id) {
		t.Errorf("task %s still listed by `ctr task ls`:\n%s", c.id, r.stdout)
	}
	if r := c.mustCtr("container", "ls", "-q"); containsLine(r.stdout, c.id) {
		t.Errorf("container %s still listed by `ctr container ls`:\n%s", c.id, r.stdout)
	}
	// The shim exits and removes its socket after answering the last
	// delete: poll.
	waitFor(t, fmt.Sprintf("the shim of %s to exit", c.id), func() bool { return len(shimPidsOf(c.id)) == 0 })
	if _, err := os.Stat(env.d.shimSocket(namespace, c.id)); err == nil {
		t.Errorf("shim socket %s of %s left behind", env.d.shimSocket(namespace, c.id), c.id)
	}
	if _, err := os.Stat(env.d.taskDir(namespace, c.id)); err == nil {
		t.Errorf("task bundle %s left behind", env.d.taskDir(namespace, c.id))
	}
	if m := mountsUnder(env.d.taskDir(namespace, c.id)); len(m) > 0 {
		t.Errorf("mounts left behind: %v", m)
	}
	for _, root := range []string{env.d.runcRoot, defaultRuncRoot} {
		if st := filepath.Join(root, namespace, c.id); exists(st) {
			t.Errorf("runtime state %s left behind", st)
		}
	}
	for _, dir := range cgroupDirs(c.cgroup) {
		if exists(dir) {
			t.Errorf("cgroup %s left behind", dir)
		}
	}
}

// shimPidsOf lists the daemon's shims serving id.
func shimPidsOf(id string) []int {
	var pids []int
	for _, pid := range env.d.shimPids() {
		args := cmdline(pid)
		for i, a := range args {
			if a == "-id" && i+1 < len(args) && args[i+1] == id {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func containsLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
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

func logSize() int64 {
	st, err := os.Stat(env.d.logPath)
	if err != nil {
		return 0
	}
	return st.Size()
}

func logSince(from int64) string {
	f, err := os.Open(env.d.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	f.Seek(from, 0)
	var b strings.Builder
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		b.WriteString(s.Text())
		b.WriteByte('\n')
	}
	return b.String()
}

// cgroupDirs lists the host directories of a cgroupsPath, one per mounted
// hierarchy (v1 hybrid), or the one of a pure v2 host.
func cgroupDirs(path string) []string {
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	if exists("/sys/fs/cgroup/cgroup.controllers") {
		hierarchies = []string{"/sys/fs/cgroup"}
	}
	var dirs []string
	for _, h := range hierarchies {
		if st, err := os.Stat(h); err == nil && st.IsDir() {
			dirs = append(dirs, filepath.Join(h, path))
		}
	}
	return dirs
}

// killCgroupProcesses kills every process in the cgroup tree at path.
func killCgroupProcesses(path string) {
	for _, dir := range cgroupDirs(path) {
		filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() || info.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					killProcess(pid)
				}
			}
			return nil
		})
	}
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

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var found []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
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
