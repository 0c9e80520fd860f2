package e2e

// The container tests (containers_*_test.go) drive berth's container
// lifecycle as a Docker user would, and look at each result from both
// sides: from inside the container (exec, the process's own /proc) and
// from outside (inspect, ps, the cgroup files under
// /sys/fs/cgroup/<controller>/berth/<id>, the host's /proc).
//
// Each test has its own --root and --state (newCtrEnv) and an image of its
// own, e2e/box, made from the harness's busybox tree plus a few users and
// files (see boxTar). When the test ends, every container it made is
// removed with `rm -f -v`, every volume with `volume rm -f`, and the test
// fails if anything of the engine's outlived that: a cgroup directory, a
// runtime state directory, a monitor or container process, a mount.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

// box is the image every container test runs.
const box = "e2e/box"

// The users and groups boxTar adds to the busybox tree's own (root 0,
// nobody 65534, user 1000).
const (
	boxPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" +
		"user:x:1000:1000:user:/home/user:/bin/sh\n" +
		"alice:x:1001:1002:alice:/home/alice:/bin/sh\n"
	boxGroup = "root:x:0:\n" +
		"nobody:x:65534:\n" +
		"user:x:1000:\n" +
		"staff:x:1002:\n" +
		"devs:x:1003:alice\n"
	// boxSeed is /data/seed.txt in the image: a named volume mounted on
	// /data starts with it.
	boxSeed = "seed from the image\n"
)

// boxTar writes the e2e/box root filesystem as a tar at out: the harness's
// busybox tree with boxPasswd and boxGroup, alice's home, and /data/seed.txt.
func boxTar(out string) error {
	in, err := os.Open(busyboxTar)
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	tr := tar.NewReader(in)
	now := time.Now()
	file := func(name, body string, mode int64) error {
		h := &tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: now}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := io.WriteString(tw, body)
		return err
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", busyboxTar, err)
		}
		if h.Name == "etc/passwd" || h.Name == "etc/group" {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	dirs := []*tar.Header{
		{Name: "home/alice/", Mode: 0o755, Uid: 1001, Gid: 1002, Typeflag: tar.TypeDir, ModTime: now},
		{Name: "data/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: now},
	}
	for _, h := range dirs {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	for name, body := range map[string]string{"etc/passwd": boxPasswd, "etc/group": boxGroup, "data/seed.txt": boxSeed} {
		if err := file(name, body, 0o644); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// ctrEnv is an env with the e2e/box image and the containers the test made.
type ctrEnv struct {
	*env
	mu  sync.Mutex
	ids map[string]bool // full IDs of every container seen, for the leak check
}

// newCtrEnv makes a store with the e2e/box image (CMD sh, ENV IMG=box) and
// removes, at the end, everything the test left, failing on leaks.
func newCtrEnv(t *testing.T) *ctrEnv {
	t.Helper()
	e := &ctrEnv{env: newEnv(t), ids: map[string]bool{}}
	// The monitor's sockets live under --state; a test's TempDir is too long
	// a path for them (see TestContainerLongStatePath), so use a short one.
	short, err := os.MkdirTemp("", "b")
	if err != nil {
		t.Fatal(err)
	}
	e.state = short
	t.Cleanup(func() {
		unmountUnder(t, short)
		os.RemoveAll(short)
	})
	tarPath := filepath.Join(e.dir, "box.tar")
	if err := boxTar(tarPath); err != nil {
		t.Fatalf("make the e2e/box rootfs tar: %v", err)
	}
	e.ok("import", "-c", `CMD ["sh"]`, "-c", "ENV IMG=box", tarPath, box)
	t.Cleanup(e.cleanup)
	return e
}

// remember records a container (by any reference) for the leak check.
func (e *ctrEnv) remember(ref string) string {
	e.t.Helper()
	r := e.run(nil, "inspect", "--type", "container", "-f", "{{.Id}}", ref)
	id := strings.TrimSpace(r.stdout)
	if r.code == 0 && regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		e.mu.Lock()
		e.ids[id] = true
		e.mu.Unlock()
	}
	return id
}

// cleanup removes every container and volume, then fails the test for
// anything of the engine that outlived `rm -f` and removes it by hand.
func (e *ctrEnv) cleanup() {
	t := e.t
	r := e.run(nil, "ps", "-aq", "--no-trunc")
	for _, id := range lines(r.stdout) {
		e.ids[id] = true
	}
	if len(e.ids) > 0 {
		args := []string{"rm", "-f", "-v"}
		for id := range e.ids {
			args = append(args, id)
		}
		e.run(nil, args...) // some are gone already: that is fine
	}
	if left := lines(e.run(nil, "ps", "-aq").stdout); len(left) > 0 {
		t.Errorf("rm -f left containers: %q", left)
	}
	if vols := lines(e.run(nil, "volume", "ls", "-q").stdout); len(vols) > 0 {
		if r := e.run(nil, append([]string{"volume", "rm", "-f"}, vols...)...); r.code != 0 {
			t.Errorf("remove the test's volumes: %v", r)
		}
	}
	for id := range e.ids {
		// The monitor of an --rm container that a foreground run
		// removed finishes the runtime's delete after the run returned.
		e.monitorGone(id)
		for _, l := range e.leaks(id) {
			t.Errorf("after rm -f of %s: %s", id[:12], l)
		}
		forceClean(t, id)
	}
	// Any process still naming this test's directories is one of ours
	// (once the monitors of --rm containers that foreground runs removed
	// have finished their work).
	waitFor(t, "the test's container monitors to exit", func() bool {
		for _, pid := range pidsMentioning(e.state) {
			if strings.Contains(cmdline(pid), "berth-shim") {
				return false
			}
		}
		return true
	})
	for _, dir := range []string{e.dir, e.state} {
		for _, pid := range pidsMentioning(dir) {
			t.Errorf("process %d (%s) outlived the test", pid, cmdline(pid))
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// cgroupControllers are the v1 hierarchies (and the unified one) a
// container's cgroup may be made in.
func cgroupDirs(id string) []string {
	var out []string
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	for _, de := range ents {
		p := filepath.Join("/sys/fs/cgroup", de.Name(), "berth", id)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// leaks lists what the engine still holds of a container it should have
// let go of entirely (removed, or stopped with its monitor gone): cgroups,
// runtime state, monitor and container processes, mounts.
func (e *ctrEnv) leaks(id string) []string {
	var out []string
	if dirs := cgroupDirs(id); len(dirs) > 0 {
		var ctrls []string
		for _, d := range dirs {
			ctrls = append(ctrls, strings.Split(strings.TrimPrefix(d, "/sys/fs/cgroup/"), "/")[0])
		}
		out = append(out, "cgroup berth/"+id[:12]+" is left in "+strings.Join(ctrls, ","))
	}
	if _, err := os.Stat(filepath.Join(e.state, "runtime", id)); err == nil {
		out = append(out, "runtime state "+filepath.Join(e.state, "runtime", id)+" is left")
	}
	for _, m := range mountsUnder(filepath.Join(e.state, "containers", id)) {
		out = append(out, "mount "+m+" is left")
	}
	for _, pid := range pidsMentioning(id) {
		out = append(out, fmt.Sprintf("process %d (%s) is left", pid, strings.Fields(cmdline(pid) + " ?")[0]))
	}
	return out
}

// forceClean kills what is left in a container's cgroups and removes them.
func forceClean(t *testing.T, id string) {
	for _, d := range cgroupDirs(id) {
		if strings.Contains(d, "/freezer/") {
			os.WriteFile(filepath.Join(d, "freezer.state"), []byte("THAWED"), 0o644)
		}
	}
	for _, d := range cgroupDirs(id) {
		for _, pid := range cgroupPids(d) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, d := range cgroupDirs(id) {
		for i := 0; i < 100 && len(cgroupPids(d)) > 0; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		// Remove child cgroups first (deepest first).
		var sub []string
		filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		for i := len(sub) - 1; i >= 0; i-- {
			if err := os.Remove(sub[i]); err != nil {
				t.Logf("remove leaked cgroup %s: %v", sub[i], err)
			}
		}
	}
	for _, pid := range pidsMentioning(id) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func cgroupPids(dir string) []int {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// pidsMentioning lists the processes (other than this one) whose command
// line contains s.
func pidsMentioning(s string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, de := range ents {
		pid, err := strconv.Atoi(de.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if strings.Contains(cmdline(pid), s) {
			out = append(out, pid)
		}
	}
	return out
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// waitTree waits until the container's init runs initCmd and has the
// children whose command lines are given: a container started with
// "sh -c 'sleep 1001 & exec sleep 1000'" is running when run -d returns,
// but its shell may not have forked or exec'd yet.
func (e *ctrEnv) waitTree(id, initCmd string, children ...string) {
	e.t.Helper()
	pid := e.cstate(id).Pid
	want := slices.Clone(children)
	slices.Sort(want)
	waitFor(e.t, fmt.Sprintf("the processes of %s to be %q with children %q", id, initCmd, children), func() bool {
		if cmdline(pid) != initCmd {
			return false
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		var got []string
		for _, c := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(c)
			got = append(got, cmdline(n))
		}
		slices.Sort(got)
		return slices.Equal(got, want)
	})
}

// waitCaught waits until the host process pid (a container's shell)
// catches sig, that is until the shell has run its `trap ... SIG`: run -d
// returns before it has, and a pid 1 without a handler ignores a stop
// signal sent meanwhile.
func waitCaught(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	waitFor(t, fmt.Sprintf("process %d to catch %v", pid, sig), func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		mask, err := strconv.ParseUint(statusField(string(b), "SigCgt"), 16, 64)
		return err == nil && mask&(1<<(uint(sig)-1)) != 0
	})
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	return out
}

// runD runs `berth run -d ARGS...` and returns the full container ID.
func (e *ctrEnv) runD(args ...string) string {
	e.t.Helper()
	out := e.ok(append([]string{"run", "-d"}, args...)...)
	id := strings.TrimSpace(out)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		e.t.Fatalf("run -d printed %q, want a 64-hex container ID", out)
	}
	e.mu.Lock()
	e.ids[id] = true
	e.mu.Unlock()
	return id
}

// sh runs a shell script in a running container and returns its stdout;
// it fails the test unless the script succeeds. It looks from inside with
// the OCI runtime's own exec (berth-runtime next to berth, on the engine's
// runtime root), not `berth exec`: tests of other features should not
// depend on exec, which TestExec covers.
func (e *ctrEnv) sh(ctr, script string) string {
	e.t.Helper()
	out, code, stderr := e.shAny(ctr, script)
	if code != 0 {
		e.t.Fatalf("berth-runtime exec %s sh -c %q: exit %d\nstdout: %s\nstderr: %s", ctr, script, code, out, stderr)
	}
	return out
}

// shAny is sh that returns the script's stdout, exit code and stderr.
func (e *ctrEnv) shAny(ctr, script string) (string, int, string) {
	e.t.Helper()
	id := ctr
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		id = strings.TrimSpace(e.ok("inspect", "--type", "container", "-f", "{{.Id}}", ctr))
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(filepath.Dir(berthBin), "berth-runtime"),
		"--root", filepath.Join(e.state, "runtime"), "exec", id, "sh", "-c", script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// A background process the script leaves holding stdout must not
	// make the test wait for it.
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.Output()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode(), stderr.String()
	case err != nil:
		e.t.Fatalf("berth-runtime exec %s: %v", id[:12], err)
	}
	return string(out), 0, stderr.String()
}

// inspectC returns `inspect` of one container, typed with Docker's own API
// type, and as a plain map to check the JSON's shape.
func (e *ctrEnv) inspectC(ref string) (container.InspectResponse, map[string]any) {
	e.t.Helper()
	s := e.ok("inspect", "--type", "container", ref)
	var typed []container.InspectResponse
	if err := json.Unmarshal([]byte(s), &typed); err != nil || len(typed) != 1 {
		e.t.Fatalf("inspect %s: %v: %q", ref, err, s)
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		e.t.Fatalf("inspect %s: %v", ref, err)
	}
	if typed[0].State == nil || typed[0].Config == nil || typed[0].HostConfig == nil {
		e.t.Fatalf("inspect %s lacks State, Config or HostConfig: %s", ref, s)
	}
	return typed[0], raw[0]
}

// cstate is the container's State from inspect.
func (e *ctrEnv) cstate(ref string) container.State {
	e.t.Helper()
	in, _ := e.inspectC(ref)
	return *in.State
}

// waitFor polls cond until it holds. The guard only turns a hang into a
// failure; it says nothing about speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(commandGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %v for %s", commandGuard, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitStatus waits until inspect shows the container in status.
func (e *ctrEnv) waitStatus(ref string, status container.ContainerState) {
	e.t.Helper()
	var last container.State
	waitFor(e.t, fmt.Sprintf("%s to be %s (last state %+v)", ref, status, &last), func() bool {
		last = e.cstate(ref)
		return last.Status == status
	})
}

// monitorGone waits until no process names the container any more: its
// monitor has exited (after any restarts it chose to do).
func (e *ctrEnv) monitorGone(id string) {
	e.t.Helper()
	waitFor(e.t, "the monitor of "+id[:12]+" to exit", func() bool {
		for _, pid := range pidsMentioning(id) {
			if strings.Contains(cmdline(pid), "berth-shim") {
				return false
			}
		}
		return true
	})
}

// cgroupFile reads a file of the container's cgroup in a v1 controller.
func cgroupFile(t *testing.T, id, controller, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, "berth", id, file))
	if err != nil {
		t.Fatalf("read the container's cgroup file: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// bg is a berth command running in the background.
type bg struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// start starts berth in the background (its own process group) with a
// stdin pipe; the test's end kills it by pid if it is still running.
func (e *ctrEnv) start(args ...string) *bg {
	e.t.Helper()
	return e.startCmd(e.berthCmd(args...))
}

// berthCmd is the exec.Cmd for berth with the env's store.
func (e *ctrEnv) berthCmd(args ...string) *exec.Cmd {
	full := append([]string{"--root", e.root, "--state", e.state}, args...)
	cmd := exec.Command(berthBin, full...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+e.dockCfg, "HOME="+e.dir)
	return cmd
}

// startCmd starts cmd in the background like start.
func (e *ctrEnv) startCmd(cmd *exec.Cmd) *bg {
	e.t.Helper()
	b := &bg{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	var err error
	if b.stdin, err = cmd.StdinPipe(); err != nil {
		e.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = b.stdout, b.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start %v: %v", cmd.Args, err)
	}
	go func() { b.err = cmd.Wait(); close(b.done) }()
	e.t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

// wait waits for the background command and returns its exit code.
func (b *bg) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(commandGuard):
		t.Fatalf("%v did not finish within %v; stdout %q stderr %q", b.cmd.Args, commandGuard, b.stdout, b.stderr)
	}
	var ee *exec.ExitError
	if errors.As(b.err, &ee) {
		return ee.ExitCode()
	}
	if b.err != nil {
		t.Fatalf("%v: %v", b.cmd.Args, b.err)
	}
	return 0
}

// exited tells whether the background command has finished.
func (b *bg) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// runScript runs berth under script(1) so that it has a terminal, and
// returns what the terminal showed and the exit code (script -e passes the
// child's on). stdin is what is typed.
func (e *ctrEnv) runScript(stdin string, args ...string) (string, int) {
	e.t.Helper()
	var q []string
	for _, a := range append([]string{berthBin, "--root", e.root, "--state", e.state}, args...) {
		q = append(q, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, "script", "-qefc", strings.Join(q, " "), "/dev/null")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+e.dockCfg, "HOME="+e.dir, "TERM=xterm")
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		e.t.Fatalf("script %v did not finish within %v: %q", args, commandGuard, out)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("script %v: %v", args, err)
	}
	return strings.ReplaceAll(string(out), "\r\n", "\n"), code
}

// nsLink is the namespace link of a host process (e.g. "pid:[4026531836]").
func nsLink(t *testing.T, pid int, ns string) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		t.Fatalf("read namespace link: %v", err)
	}
	return l
}

// statusField is a field of /proc/PID/status text ("CapEff", "Seccomp"...).
func statusField(status, field string) string {
	for _, l := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// hostStatusField reads a field of this test process's /proc/self/status.
func hostStatusField(t *testing.T, field string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	return statusField(string(b), field)
}

// alive tells whether a host pid exists and is not a zombie.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// shimPid is the pid of the container's monitor (0 if none).
func shimPid(id string) int {
	for _, pid := range pidsMentioning(id) {
		if strings.HasPrefix(filepath.Base(strings.Fields(cmdline(pid))[0]), "berth-shim") {
			return pid
		}
	}
	return 0
}

// TestContainerHarness: the image the container tests use is what they
// expect (users, seed file, config), and a container's leftovers are seen.
func TestContainerHarness(t *testing.T) {
	e := newCtrEnv(t)
	out := e.ok("run", "--rm", box, "sh", "-c", "cat /etc/passwd /data/seed.txt; echo $IMG")
	if !strings.Contains(out, "alice:x:1001:1002") || !strings.Contains(out, boxSeed) || !strings.HasSuffix(out, "box\n") {
		t.Errorf("the e2e/box image is not as built: %q", out)
	}
	if got := e.ok("image", "inspect", "-f", "{{json .Config.Cmd}}", box); strings.TrimSpace(got) != `["sh"]` {
		t.Errorf("e2e/box CMD = %s, want [\"sh\"]", got)
	}
}
