package rootfs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	testrootfs "github.com/berthproject/berth/test/rootfs"
	"golang.org/x/sys/unix"
)

// The root tests re-execute the test binary as a container init: TestMain sees
// childEnv (the path of a JSON childSpec) and runs runChild instead of the
// tests. The child starts in new mount, pid, uts, ipc and net namespaces (and a
// user namespace where asked), so every mount it makes dies with it:
//
//	parent (test)                      child (pid 1 of its pid namespace)
//	  build busybox rootfs, cgroups
//	  write spec.json
//	  start child ---------------------> join the test's cgroups
//	                                     [unshare cgroup ns, re-exec]
//	                                     make / rslave; test-only setup mounts
//	                                     Prepare, Enter, Finalize
//	                                     exec busybox sh -c script
//	  read stdout, assert  <------------ script prints observations
//	  check host mountinfo, remove cgroups
const (
	childEnv = "BERTH_ROOTFS_TEST_CHILD"
	// stageEnv marks the re-exec after the cgroup namespace was unshared.
	stageEnv = "BERTH_ROOTFS_TEST_STAGE"
)

// childSpec is what the parent asks the child to do.
type childSpec struct {
	Config Config
	// Tmpfs are host paths on which the child mounts a tmpfs before Prepare
	// (submounts for rbind tests), in its own namespace.
	Tmpfs []string
	// SelfBinds are host paths the child binds onto themselves before
	// Prepare, making them mount points (as an overlay rootfs is).
	SelfBinds []string
	// Cgroups are cgroup directories the child moves itself into first.
	Cgroups []string
	// NewCgroupNS unshares a cgroup namespace after joining Cgroups, so its
	// root is the test's cgroup.
	NewCgroupNS bool
	// Script is run by busybox sh inside the finished container.
	Script string
}

func TestMain(m *testing.M) {
	if p := os.Getenv(childEnv); p != "" {
		os.Exit(runChild(p))
	}
	os.Exit(m.Run())
}

func runChild(specPath string) int {
	fail := func(stage string, err error) int {
		fmt.Fprintf(os.Stderr, "CHILD-ERROR %s: %v\n", stage, err)
		return 3
	}
	data, err := os.ReadFile(specPath)
	if err != nil {
		return fail("read spec", err)
	}
	var spec childSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return fail("parse spec", err)
	}
	if os.Getenv(stageEnv) == "" {
		for _, cg := range spec.Cgroups {
			if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
				return fail("join cgroup", err)
			}
		}
		if spec.NewCgroupNS {
			// The namespace is per thread until execve makes it the
			// whole new image's.
			runtime.LockOSThread()
			if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
				return fail("unshare cgroup ns", err)
			}
			env := append(os.Environ(), stageEnv+"=2")
			return fail("re-exec", syscall.Exec("/proc/self/exe", os.Args, env))
		}
	}
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fail("rslave /", err)
	}
	for _, p := range spec.Tmpfs {
		if err := unix.Mount("tmpfs", p, "tmpfs", 0, "size=1m"); err != nil {
			return fail("setup tmpfs "+p, err)
		}
	}
	for _, p := range spec.SelfBinds {
		if err := unix.Mount(p, p, "", unix.MS_BIND, ""); err != nil {
			return fail("setup bind "+p, err)
		}
	}
	c := &spec.Config
	if err := Prepare(c); err != nil {
		return fail("Prepare", err)
	}
	if err := Enter(c); err != nil {
		return fail("Enter", err)
	}
	if err := Finalize(c, nil); err != nil {
		return fail("Finalize", err)
	}
	err = syscall.Exec("/bin/busybox", []string{"sh", "-c", spec.Script}, []string{"PATH=/bin"})
	return fail("exec busybox", err)
}

// scriptHelpers are shell functions the test scripts use:
//
//	w PATH   prints "WRITE PATH ok" or "WRITE PATH <error>" for a write attempt
const scriptHelpers = `
w() { if out=$( (echo x > "$1") 2>&1 ); then echo "WRITE $1 ok"; else echo "WRITE $1 ${out##*: }"; fi; }
mi() { echo MI-BEGIN; cat /proc/self/mountinfo; echo MI-END; }
`

// run is one container: the child with the given namespaces, its stdout, and
// the checks that the host is untouched afterwards.
type run struct {
	t      *testing.T
	tmp    string // the test's temp dir; rootfs is tmp/rootfs
	rootfs string
	userNS bool
	// hostNet keeps the host's network namespace (no CLONE_NEWNET).
	hostNet bool
	cgroups []string
}

func newRun(t *testing.T) *run {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds containers in new mount, pid and user namespaces")
	}
	if _, err := os.Stat(testrootfs.DefaultBusybox); err != nil {
		t.Skipf("needs a static busybox at %s (Debian: busybox-static): %v", testrootfs.DefaultBusybox, err)
	}
	r := &run{t: t, tmp: t.TempDir()}
	r.rootfs = filepath.Join(r.tmp, "rootfs")
	if err := testrootfs.Build(r.rootfs, testrootfs.DefaultBusybox); err != nil {
		t.Fatalf("build rootfs: %v", err)
	}
	return r
}

var cgroupSeq atomic.Int64

// makeCgroups creates a cgroup for the test below the test process's own cgroup
// in every hierarchy, and removes them at cleanup.
func (r *run) makeCgroups() []string {
	t := r.t
	infos, err := readMountinfo()
	if err != nil {
		t.Fatal(err)
	}
	own, err := readCgroupMembership(0)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("berth-rootfs-test-%d-%d", os.Getpid(), cgroupSeq.Add(1))
	var dirs []string
	for _, mi := range infos {
		var cg string
		switch mi.FSType {
		case "cgroup":
			h, ok := v1Hierarchy(mi, own)
			if !ok {
				continue
			}
			cg = own[h]
		case "cgroup2":
			cg = own[""]
		default:
			continue
		}
		parent, err := ownDir(mi, cg)
		if err != nil {
			t.Fatalf("cgroup of the test in %s: %v", mi.Mountpoint, err)
		}
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("create test cgroup: %v", err)
		}
		t.Cleanup(func() {
			if err := os.Remove(dir); err != nil {
				t.Errorf("remove test cgroup: %v", err)
			}
		})
		if strings.Contains(mi.SuperOptions, "cpuset") {
			// A new cpuset has no cpus or mems: nothing could join it.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(parent, f))
				if err == nil {
					err = os.WriteFile(filepath.Join(dir, f), v, 0)
				}
				if err != nil {
					t.Fatalf("set up cpuset %s: %v", dir, err)
				}
			}
		}
		dirs = append(dirs, dir)
	}
	r.cgroups = dirs
	return dirs
}

// start runs the child with spec and returns its stdout; a failing child
// fails the test unless wantErr, and then the child's error text is returned.
func (r *run) start(spec childSpec, cgroupNS bool) (stdout, childErr string) {
	t := r.t
	t.Helper()
	spec.Cgroups = r.makeCgroups()
	spec.NewCgroupNS = cgroupNS
	spec.Script = scriptHelpers + spec.Script
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	specPath := filepath.Join(r.tmp, "spec.json")
	if err := os.WriteFile(specPath, data, 0o600); err != nil {
		t.Fatal(err)
	}

	hostBefore := hostMounts(t)
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), childEnv+"="+specPath)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET,
		Pdeathsig:  syscall.SIGKILL,
	}
	if r.hostNet {
		cmd.SysProcAttr.Cloneflags &^= syscall.CLONE_NEWNET
	}
	if r.userNS {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}}
	}
	err = cmd.Run()
	r.checkHost(hostBefore)
	if err != nil {
		return out.String(), errOut.String()
	}
	if errOut.Len() > 0 {
		t.Logf("child stderr:\n%s", errOut.String())
	}
	return out.String(), ""
}

// mustStart is start for containers that must come up.
func (r *run) mustStart(spec childSpec, cgroupNS bool) string {
	r.t.Helper()
	out, childErr := r.start(spec, cgroupNS)
	if childErr != "" {
		r.t.Fatalf("container failed:\n%s\nstdout:\n%s", childErr, out)
	}
	return out
}

// hostMounts is the host's mount table as a set of lines.
func hostMounts(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		set[l] = true
	}
	return set
}

// checkHost compares the host's mount table with before. Other people's tests
// may mount things on the host meanwhile, so a difference fails the test only
// when it touches this test's temp dir or the host's core mounts.
func (r *run) checkHost(before map[string]bool) {
	t := r.t
	t.Helper()
	after := hostMounts(t)
	diff := func(a, b map[string]bool, what string) {
		for l := range a {
			if b[l] {
				continue
			}
			infos, err := parseMountinfo(strings.NewReader(l))
			if err != nil || len(infos) != 1 {
				t.Errorf("host mount %s: %s", what, l)
				continue
			}
			mp := infos[0].Mountpoint
			core := mp == "/" || mp == "/proc" || mp == "/sys" || mp == "/dev" || strings.HasPrefix(mp, "/dev/") || strings.HasPrefix(mp, "/sys/fs/cgroup")
			if core || mp == r.tmp || strings.HasPrefix(mp, r.tmp+"/") {
				t.Errorf("host mount table changed: %s %s", what, l)
			} else {
				t.Logf("host mount %s by someone else (ignored): %s", what, l)
			}
		}
	}
	diff(after, before, "added")
	diff(before, after, "removed")
}

// section returns the lines of out between MI-BEGIN and MI-END, parsed.
func containerMounts(t *testing.T, out string) []mountInfo {
	t.Helper()
	start := strings.Index(out, "MI-BEGIN\n")
	end := strings.Index(out, "MI-END\n")
	if start < 0 || end < start {
		t.Fatalf("no mountinfo in the output:\n%s", out)
	}
	infos, err := parseMountinfo(strings.NewReader(out[start+len("MI-BEGIN\n") : end]))
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

// lines returns the output lines that start with prefix+" ", without it.
func lines(out, prefix string) []string {
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix+" "); ok {
			got = append(got, rest)
		}
	}
	return got
}

// line returns the one output line for prefix+" "+key, without the prefix and
// key.
func line(t *testing.T, out, prefix, key string) string {
	t.Helper()
	for _, l := range lines(out, prefix) {
		if key == "" {
			return l
		}
		if rest, ok := strings.CutPrefix(l, key+" "); ok {
			return rest
		}
		if l == key {
			return ""
		}
	}
	t.Fatalf("no %q line for %s in the output:\n%s", prefix, key, out)
	return ""
}

// mountAt finds the topmost mount at mountpoint mp.
func mountAt(infos []mountInfo, mp string) (mountInfo, bool) {
	var found mountInfo
	ok := false
	for _, mi := range infos {
		if mi.Mountpoint == mp {
			found, ok = mi, true
		}
	}
	return found, ok
}

func hasOption(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// hostExists filters paths to those that exist on the host (which runs the
// same kernel as the container's /proc and /sys).
func hostExists(paths []string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// mirror creates, inside the rootfs, the directory that host path p names, so
// a symlink to p resolved inside the rootfs finds it there.
func (r *run) mirror(p string) string {
	in := filepath.Join(r.rootfs, p)
	if err := os.MkdirAll(in, 0o755); err != nil {
		r.t.Fatal(err)
	}
	return in
}

func (r *run) symlink(target, link string) {
	if err := os.Symlink(target, filepath.Join(r.rootfs, link)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *run) writeFile(p, data string) string {
	full := filepath.Join(r.rootfs, p)
	if err := os.MkdirAll(path.Dir(full), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return full
}

// emptyDir fails the test unless host directory dir is empty (or missing).
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("host directory %s was written to: %v", dir, names)
	}
}
