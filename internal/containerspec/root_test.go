package containerspec

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/berthproject/berth/internal/caps"
	testrootfs "github.com/berthproject/berth/test/rootfs"
)

// The root tests render specs for a busybox root filesystem and run them
// with bin/berth-runtime (build it with `make` first). Each test has its own
// bundle, runtime state directory and cgroup parent, removed at the end.

// repoRoot finds the directory holding go.mod above the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	t.Fatalf("no go.mod above %s", dir)
	return ""
}

// runResult is what a container printed and how it ended.
type runResult struct {
	stdout, stderr string
	code           int
}

// hostCaps returns the names of the capabilities this process holds, the
// way the engine fills Input.AvailableCaps.
func hostCaps(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var eff uint64
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:\t"); ok {
			fmt.Sscanf(v, "%x", &eff)
		}
	}
	var out []string
	for i, n := range caps.All() {
		if eff&(1<<uint(i)) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// runContainer renders in (its ID, Rootfs, CgroupsPath and EtcFiles are
// filled here) and runs it in the foreground with berth-runtime.
func runContainer(t *testing.T, adapt func(in *Input, dir string)) (*Input, runResult) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running containers needs root")
	}
	if _, err := os.Stat(testrootfs.DefaultBusybox); err != nil {
		t.Skipf("no busybox at %s (install busybox-static): %v", testrootfs.DefaultBusybox, err)
	}
	runtime := filepath.Join(repoRoot(t), "bin", "berth-runtime")
	if _, err := os.Stat(runtime); err != nil {
		t.Fatalf("%v: run `make` first to build the runtime", err)
	}
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := testrootfs.Build(rootfs, testrootfs.DefaultBusybox); err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join(dir, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	var idb [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(idb[:])
	files := map[string]string{
		"/etc/hostname":    id[:12] + "\n",
		"/etc/hosts":       "127.0.0.1\tlocalhost\n",
		"/etc/resolv.conf": "nameserver 127.0.0.53\n",
	}
	etcFiles := map[string]string{}
	for dst, content := range files {
		p := filepath.Join(etc, filepath.Base(dst))
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		etcFiles[dst] = p
	}
	parent := fmt.Sprintf("berth-cstest-%d-%s", os.Getpid(), id[:8])
	in := &Input{
		ID:            id,
		Image:         baseInput().Image,
		Config:        &container.Config{},
		Host:          &container.HostConfig{},
		Rootfs:        rootfs,
		CgroupsPath:   "/" + parent + "/" + id,
		EtcFiles:      etcFiles,
		AvailableCaps: hostCaps(t),
	}
	in.Passwd, _ = os.ReadFile(filepath.Join(rootfs, "etc/passwd"))
	in.Group, _ = os.ReadFile(filepath.Join(rootfs, "etc/group"))
	adapt(in, dir)
	s, err := Generate(in)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	b, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	t.Cleanup(func() {
		exec.Command(runtime, "--root", state, "delete", "--force", id).Run()
		// The runtime removes the container's cgroup; the parent is ours.
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + parent)
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("remove cgroup %s: %v", d, err)
			}
		}
	})
	cmd := exec.Command(runtime, "--root", state, "run", "--bundle", bundle, id)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	res := runResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", runtime, err)
	}
	return in, res
}

// statusField returns a field of /proc/self/status as printed in out.
func statusField(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// mountLine returns the /proc/self/mounts line whose mount point is dst.
func mountLine(out, dst string) string {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && f[1] == dst {
			return l
		}
	}
	return ""
}

const probeScript = `id; grep -E '^(Cap|Seccomp:|NoNewPrivs)' /proc/self/status; echo "hostname=$(hostname)"; echo "home=$HOME"; cat /proc/self/mounts`

// The default spec runs: root with Docker's capabilities, seccomp, its
// mounts and masked paths, the hostname and the /etc files.
func TestRootDefaultSpecRuns(t *testing.T) {
	in, res := runContainer(t, func(in *Input, _ string) {
		in.Config.Cmd = []string{"sh", "-c", probeScript}
	})
	if res.code != 0 {
		t.Fatalf("container exited %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	out := res.stdout
	if !strings.Contains(out, "uid=0(root) gid=0(root) groups=0(root)") {
		t.Errorf("id printed %q, want uid=0(root) gid=0(root) groups=0(root)", strings.SplitN(out, "\n", 2)[0])
	}
	const dockerCaps = "00000000a80425fb" // Docker's default set
	for _, f := range []struct{ name, want string }{
		{"CapBnd", dockerCaps}, {"CapEff", dockerCaps}, {"CapPrm", dockerCaps},
		{"CapInh", "0000000000000000"}, {"CapAmb", "0000000000000000"},
		{"Seccomp", "2"}, {"NoNewPrivs", "0"},
	} {
		if got := statusField(out, f.name); got != f.want {
			t.Errorf("%s = %q, want %q", f.name, got, f.want)
		}
	}
	for _, want := range []string{"hostname=" + in.ID[:12], "home=/root"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, m := range []struct {
		dst, fstype string
		opts        []string
	}{
		{"/proc", "proc", []string{"rw", "nosuid", "nodev", "noexec"}},
		{"/dev", "tmpfs", []string{"rw", "nosuid", "size=65536k", "mode=755"}},
		{"/dev/pts", "devpts", []string{"rw", "nosuid", "noexec", "gid=5", "mode=620", "ptmxmode=666"}},
		{"/sys", "sysfs", []string{"ro", "nosuid", "nodev", "noexec"}},
		{"/dev/mqueue", "mqueue", []string{"rw", "nosuid", "nodev", "noexec"}},
		{"/dev/shm", "tmpfs", []string{"rw", "nosuid", "nodev", "noexec", "size=65536k"}},
		{"/etc/hostname", "", []string{"rw"}},
		{"/etc/hosts", "", []string{"rw"}},
		{"/etc/resolv.conf", "", []string{"rw"}},
		{"/proc/sys", "proc", []string{"ro"}},
		{"/proc/keys", "", nil}, // masked: /dev/null bound over it
		{"/sys/firmware", "tmpfs", []string{"ro"}},
	} {
		line := mountLine(out, m.dst)
		if line == "" {
			t.Errorf("no mount on %s in:\n%s", m.dst, out)
			continue
		}
		f := strings.Fields(line)
		if m.fstype != "" && f[2] != m.fstype {
			t.Errorf("%s is %s, want %s: %s", m.dst, f[2], m.fstype, line)
		}
		opts := strings.Split(f[3], ",")
		for _, o := range m.opts {
			found := false
			for _, have := range opts {
				found = found || have == o
			}
			if !found {
				t.Errorf("%s lacks option %s: %s", m.dst, o, line)
			}
		}
	}
	// The cgroup tree is there and read-only.
	cg := ""
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 4 && strings.HasPrefix(f[1], "/sys/fs/cgroup") && (f[2] == "cgroup" || f[2] == "cgroup2" || f[2] == "tmpfs") {
			cg = l
			if !strings.HasPrefix(f[3], "ro") {
				t.Errorf("cgroup mount is writable: %s", l)
			}
		}
	}
	if cg == "" {
		t.Errorf("no cgroup mount under /sys/fs/cgroup in:\n%s", out)
	}
}

// A user other than root: its ids and groups from /etc/passwd, no
// effective capabilities, Docker's bounding set.
func TestRootUserSpecRuns(t *testing.T) {
	_, res := runContainer(t, func(in *Input, _ string) {
		in.Config.User = "user"
		in.Config.Cmd = []string{"sh", "-c", probeScript}
	})
	if res.code != 0 {
		t.Fatalf("container exited %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	out := res.stdout
	if !strings.Contains(out, "uid=1000(user) gid=1000(user) groups=1000(user)") {
		t.Errorf("id printed %q, want uid=1000(user) gid=1000(user) groups=1000(user)", strings.SplitN(out, "\n", 2)[0])
	}
	for _, f := range []struct{ name, want string }{
		{"CapBnd", "00000000a80425fb"}, {"CapEff", "0000000000000000"}, {"CapPrm", "0000000000000000"},
	} {
		if got := statusField(out, f.name); got != f.want {
			t.Errorf("%s = %q, want %q", f.name, got, f.want)
		}
	}
	if !strings.Contains(out, "home=/home/user") {
		t.Errorf("HOME is not the user's: %s", out)
	}
}

// --read-only, --tmpfs and a read-only bind behave as Docker's do.
func TestRootReadOnlyTmpfsBind(t *testing.T) {
	_, res := runContainer(t, func(in *Input, dir string) {
		data := filepath.Join(dir, "data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, "hello"), []byte("from the host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		in.Host.ReadonlyRootfs = true
		in.Host.Tmpfs = map[string]string{"/run": "size=1m"}
		in.Host.Binds = []string{data + ":/data:ro"}
		in.Host.SecurityOpt = []string{"no-new-privileges"}
		in.Config.Cmd = []string{"sh", "-c", `cat /data/hello
touch /root/x 2>/dev/null && echo rootfs=rw || echo rootfs=ro
touch /run/x && echo run=rw || echo run=ro
touch /data/x 2>/dev/null && echo data=rw || echo data=ro
touch /etc/hosts 2>/dev/null && echo hosts=rw || echo hosts=ro
grep NoNewPrivs /proc/self/status`}
	})
	if res.code != 0 {
		t.Fatalf("container exited %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{"from the host", "rootfs=ro", "run=rw", "data=ro", "hosts=ro", "NoNewPrivs:\t1"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
}

// --init: berth-init is pid 1, runs the command, and passes its exit code
// on.
func TestRootInit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running containers needs root")
	}
	initBin := filepath.Join(t.TempDir(), "berth-init")
	build := exec.Command("go", "build", "-o", initBin, "./cmd/berth-init")
	build.Dir = repoRoot(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build berth-init: %v\n%s", err, out)
	}
	_, res := runContainer(t, func(in *Input, _ string) {
		in.Host.Init = ptr(true)
		in.InitPath = initBin
		in.Config.Cmd = []string{"sh", "-c", `tr '\0' ' ' < /proc/1/cmdline; echo; echo "me=$$"; exit 3`}
	})
	if res.code != 3 {
		t.Fatalf("container exited %d, want the command's 3\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	if !strings.HasPrefix(res.stdout, InitPathInContainer+" -- sh -c ") {
		t.Errorf("pid 1 is %q, want %s running the command", strings.SplitN(res.stdout, "\n", 2)[0], InitPathInContainer)
	}
	if strings.Contains(res.stdout, "me=1\n") {
		t.Errorf("the command runs as pid 1; want it below berth-init:\n%s", res.stdout)
	}
}

// --userns map=...: root in the container is uid 100000 outside. Like
// Docker's userns-remap, the engine must hand over a root filesystem owned
// by the mapped ids and reachable by them; the test does that by hand.
func TestRootUserns(t *testing.T) {
	_, res := runContainer(t, func(in *Input, dir string) {
		for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		err := filepath.Walk(in.Rootfs, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, 100000, 100000)
		})
		if err != nil {
			t.Fatal(err)
		}
		in.Host.UsernsMode = "map=0:100000:65536"
		in.Config.Cmd = []string{"sh", "-c", "id; cat /proc/self/uid_map; ls -ln /bin/busybox"}
	})
	if res.code != 0 {
		t.Fatalf("container exited %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	if f := strings.Fields(res.stdout); len(f) < 5 || f[0] != "uid=0(root)" || f[3] != "0" || f[4] != "100000" {
		t.Errorf("container output %q, want root inside mapped from 100000", res.stdout)
	}
	if !strings.Contains(res.stdout, " 0        0 ") {
		t.Errorf("the rootfs does not look owned by root inside: %s", res.stdout)
	}
}
