// Package e2e drives the built berth command line (bin/berth, or $BERTH_BIN)
// end to end, as a user would: each test gets its own --root, --state and
// Docker config directory, talks only to registries the test starts on
// 127.0.0.1 (go-containerregistry's in-memory registry, see test/registry),
// and uses images it builds itself (a busybox root filesystem tarball).
//
// The tests need root (ownership and device nodes in layers, overlay
// mounts) and skip without it. Build the binary first: `make`.
package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	testrootfs "github.com/berthproject/berth/test/rootfs"
)

// commandGuard turns a hung command into a failure; it never judges speed.
const commandGuard = 5 * time.Minute

var (
	berthBin   string // the binary under test
	busyboxTar string // a tar of the busybox root filesystem
	setupErr   error  // why the suite cannot run; every test reports it
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		return m.Run() // every test skips
	}
	if code, ok := reexecInThrowawayNetns(); ok { // see netns_test.go
		return code
	}
	work, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create work dir:", err)
		return 1
	}
	defer os.RemoveAll(work)
	setupErr = setup(work)
	return m.Run()
}

func setup(work string) error {
	berthBin = os.Getenv("BERTH_BIN")
	if berthBin == "" {
		berthBin = "../../bin/berth"
	}
	abs, err := filepath.Abs(berthBin)
	if err != nil {
		return err
	}
	berthBin = abs
	if _, err := os.Stat(berthBin); err != nil {
		return fmt.Errorf("berth binary: %w (run make, or set BERTH_BIN)", err)
	}
	rootfs := filepath.Join(work, "rootfs")
	if err := testrootfs.Build(rootfs, testrootfs.DefaultBusybox); err != nil {
		return fmt.Errorf("build busybox rootfs: %w", err)
	}
	busyboxTar = filepath.Join(work, "busybox.tar")
	if err := tarDir(rootfs, busyboxTar); err != nil {
		return fmt.Errorf("tar busybox rootfs: %w", err)
	}
	return nil
}

// tarDir writes the tree at dir as a tar file (ownership, modes, symlinks).
func tarDir(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return fmt.Errorf("tar header of %s: %w", p, err)
		}
		rel, _ := filepath.Rel(dir, p)
		h.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			h.Name += "/"
		}
		h.Uname, h.Gname = "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			defer src.Close()
			if _, err := io.Copy(tw, src); err != nil {
				return fmt.Errorf("tar %s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// env is one user's berth: its own store, state and Docker config.
type env struct {
	t                         *testing.T
	dir, root, state, dockCfg string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the e2e tests need root (layer ownership, device nodes, overlay mounts)")
	}
	if setupErr != nil {
		t.Fatalf("e2e setup: %v", setupErr)
	}
	dir := t.TempDir()
	e := &env{t: t, dir: dir, root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state"), dockCfg: filepath.Join(dir, "docker")}
	// Runs before TempDir's removal: nothing berth mounted may be left.
	t.Cleanup(func() { unmountUnder(t, dir) })
	return e
}

// unmountUnder fails the test for, and removes, every mount below dir.
func unmountUnder(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Errorf("read mountinfo: %v", err)
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			mounts = append(mounts, fields[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		t.Errorf("berth left a mount at %s", mounts[i])
		if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mounts[i], err)
		}
	}
}

// result is what a berth command did.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("berth %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// run runs berth with the env's store; stdin may be nil.
func (e *env) run(stdin io.Reader, args ...string) result {
	e.t.Helper()
	return e.runWith(stdin, nil, args...)
}

// runWith is run with stdout going to w (nil: captured in the result).
func (e *env) runWith(stdin io.Reader, w io.Writer, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandGuard)
	defer cancel()
	full := append([]string{"--root", e.root, "--state", e.state}, args...)
	cmd := exec.CommandContext(ctx, berthBin, full...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+e.dockCfg, "HOME="+e.dir)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if w != nil {
		cmd.Stdout = w
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errb.String()}
	if ctx.Err() != nil {
		e.t.Fatalf("berth %s did not finish within %v", strings.Join(args, " "), commandGuard)
	}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("run berth %s: %v", strings.Join(args, " "), err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// ok runs berth and fails the test unless it succeeds; it returns stdout.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	r := e.run(nil, args...)
	if r.code != 0 {
		e.t.Fatalf("%v", r)
	}
	return r.stdout
}

// okIn is ok with stdin.
func (e *env) okIn(stdin string, args ...string) string {
	e.t.Helper()
	r := e.run(strings.NewReader(stdin), args...)
	if r.code != 0 {
		e.t.Fatalf("%v", r)
	}
	return r.stdout
}

// fails runs berth and fails the test unless it exits non-zero with an
// "Error: " message on stderr.
func (e *env) fails(args ...string) result {
	e.t.Helper()
	r := e.run(nil, args...)
	if r.code == 0 {
		e.t.Fatalf("want a failure, got success: %v", r)
	}
	if !strings.Contains(r.stderr, "Error: ") {
		e.t.Errorf("want an \"Error: \" message: %v", r)
	}
	return r
}

// importBusybox imports the busybox tarball as ref ("" for untagged) with
// extra flags and returns the image ID.
func (e *env) importBusybox(ref string, flags ...string) string {
	e.t.Helper()
	args := append([]string{"import"}, flags...)
	args = append(args, busyboxTar)
	if ref != "" {
		args = append(args, ref)
	}
	id := strings.TrimSpace(e.ok(args...))
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(id) {
		e.t.Fatalf("import printed %q, want an image ID", id)
	}
	return id
}

// inspect returns `image inspect` of one image, decoded.
func (e *env) inspect(name string) map[string]any {
	e.t.Helper()
	var out []map[string]any
	s := e.ok("image", "inspect", name)
	if err := json.Unmarshal([]byte(s), &out); err != nil || len(out) != 1 {
		e.t.Fatalf("image inspect %s: %v: %q", name, err, s)
	}
	return out[0]
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// storeEntries lists what the store holds, relative to its root: blobs and
// in-progress ingests, image records, and each snapshot driver's snapshots
// and scratch entries. A failed operation must leave it as it was.
func (e *env) storeEntries() []string {
	e.t.Helper()
	var out []string
	add := func(p string) {
		rel, _ := filepath.Rel(e.root, p)
		out = append(out, rel)
	}
	filepath.WalkDir(filepath.Join(e.root, "content"), func(p string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() && filepath.Base(p) != "lock" {
			add(p)
		}
		return nil
	})
	recs, _ := filepath.Glob(filepath.Join(e.root, "image", "images", "*"))
	for _, p := range recs {
		add(p)
	}
	drivers, _ := filepath.Glob(filepath.Join(e.root, "snapshots", "*"))
	for _, d := range drivers {
		ents, _ := os.ReadDir(d)
		for _, de := range ents {
			switch de.Name() {
			case "lock", "metadata.json":
			case "tmp", "trash":
				scratch, _ := os.ReadDir(filepath.Join(d, de.Name()))
				for _, s := range scratch {
					add(filepath.Join(d, de.Name(), s.Name()))
				}
			default:
				add(filepath.Join(d, de.Name()))
			}
		}
	}
	return out
}

// dockerd is a private Docker daemon for tests that check compatibility
// with Docker itself: its own data root, exec root and socket under a temp
// dir, no iptables (and no bridge unless asked), stopped (with the
// containerd it starts) and unmounted when the test ends.
type dockerd struct {
	t    *testing.T
	dir  string
	cli  string
	sock string
}

// startDockerd starts a private dockerd, or skips the test when Docker is
// not installed (Debian: docker.io).
func startDockerd(t *testing.T) *dockerd {
	t.Helper()
	return startDockerdWith(t, "--bridge=none")
}

// startDockerdWith is startDockerd with the default bridge given by
// bridgeFlag: "--bridge=none" for none, "" for Docker's docker0 (172.17/16,
// in the suite's throwaway network namespace; still no iptables).
func startDockerdWith(t *testing.T, bridgeFlag string) *dockerd {
	t.Helper()
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		t.Skip("dockerd not installed (apt-get install docker.io): no comparison with Docker")
	}
	cli, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("docker CLI not installed")
	}
	// A short path: the daemon's sockets must fit in sun_path.
	dir, err := os.MkdirTemp("", "e2e-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &dockerd{t: t, dir: dir, cli: cli, sock: filepath.Join(dir, "docker.sock")}
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config-file", filepath.Join(dir, "daemon.json"),
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "-H", "unix://" + d.sock,
		"--iptables=false", "--ip-masq=false", "--log-level", "warn"}
	if bridgeFlag != "" {
		args = append(args, bridgeFlag)
	}
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	t.Cleanup(func() {
		children := childPids(cmd.Process.Pid)
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			<-done
		}
		for _, pid := range children {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		logf.Close()
		unmountUnder(t, dir)
		os.RemoveAll(dir)
	})
	for i := 0; ; i++ {
		if _, err := d.run("version"); err == nil {
			break
		}
		if i == 600 {
			b, _ := os.ReadFile(filepath.Join(dir, "dockerd.log"))
			t.Fatalf("dockerd did not answer within a minute:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return d
}

// run runs the docker CLI against the private daemon.
func (d *dockerd) run(args ...string) (string, error) {
	cmd := exec.Command(d.cli, append([]string{"-H", "unix://" + d.sock}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(d.dir, "cli"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// childPids lists the direct children of pid (the containerd dockerd starts).
func childPids(pid int) []int {
	var out []int
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	for _, f := range strings.Fields(string(b)) {
		var c int
		if _, err := fmt.Sscan(f, &c); err == nil {
			out = append(out, c)
		}
	}
	return out
}
