package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// hostNS is the test process's own namespace link, e.g. "net:[4026531840]".
func hostNS(t *testing.T, ns string) string {
	t.Helper()
	return nsLink(t, os.Getpid(), ns)
}

// withNamespace adds a namespace (with an optional path) unless the spec has it.
func withNamespace(typ specs.LinuxNamespaceType, path string) func(*specs.Spec) {
	return func(s *specs.Spec) {
		for i, n := range s.Linux.Namespaces {
			if n.Type == typ {
				s.Linux.Namespaces[i].Path = path
				return
			}
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: typ, Path: path})
	}
}

// Each namespace of the default config is new: its link inside differs from
// the host's.
func TestNamespacesAreNew(t *testing.T) {
	tests := []struct {
		ns  string
		typ specs.LinuxNamespaceType
	}{
		{"pid", specs.PIDNamespace},
		{"uts", specs.UTSNamespace},
		{"ipc", specs.IPCNamespace},
		{"net", specs.NetworkNamespace},
		{"mnt", specs.MountNamespace},
		{"cgroup", specs.CgroupNamespace},
	}
	for _, tt := range tests {
		t.Run(tt.ns, func(t *testing.T) {
			out := mustRun(t, "readlink /proc/self/ns/"+tt.ns, withNamespace(tt.typ, ""))
			if got, host := strings.TrimSpace(out), hostNS(t, tt.ns); got == host || !strings.HasPrefix(got, tt.ns+":[") {
				t.Errorf("namespace %s inside = %q, host = %q: want a new one", tt.ns, got, host)
			}
		})
	}
}

func TestPIDNamespace(t *testing.T) {
	out, code := runContainer(t, func(s *specs.Spec) { s.Process.Args = []string{"ps", "-o", "pid,comm"} })
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// The header and ps itself as pid 1: nothing of the host.
	if code != 0 || len(lines) != 2 || strings.Join(strings.Fields(lines[1]), " ") != "1 ps" {
		t.Errorf("ps inside printed %q, want only ps as pid 1", out)
	}
	if out := mustRun(t, "echo $$"); out != "1\n" {
		t.Errorf("the init's pid inside = %q, want 1", out)
	}
}

func TestUTSNamespaceHostname(t *testing.T) {
	out := mustRun(t, "hostname", func(s *specs.Spec) { s.Hostname = "berth-box" })
	if out != "berth-box\n" {
		t.Errorf("hostname inside = %q, want berth-box", out)
	}
	host, _ := os.Hostname()
	if host == "berth-box" {
		t.Errorf("the host's hostname changed to berth-box")
	}
}

func TestNetNamespaceOnlyLoopbackUp(t *testing.T) {
	out := mustRun(t, "ip -o link show")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], ": lo: ") || !strings.Contains(lines[0], "UP") {
		t.Errorf("links inside = %q, want only lo, up", out)
	}
}

func TestUserNamespaceMappings(t *testing.T) {
	const hostID = 100000
	c := newContainer(t, withNamespace(specs.UserNamespace, ""), sh("cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/owned; id -u"), func(s *specs.Spec) {
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
	})
	r := c.run()
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	fields := strings.Fields(r.stdout)
	if want := []string{"0", "100000", "65536", "0", "100000", "65536", "0"}; strings.Join(fields, " ") != strings.Join(want, " ") {
		t.Errorf("uid_map, gid_map, id -u inside = %q, want %v", r.stdout, want)
	}
	fi, err := os.Stat(filepath.Join(c.rootfs, "tmp/owned"))
	if err != nil {
		t.Fatalf("the file root made inside: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != hostID || st.Gid != hostID {
		t.Errorf("a file made by root inside is owned by %d:%d outside, want %d:%d", st.Uid, st.Gid, hostID, hostID)
	}
}

// TestUserNamespaceBindFromPrivateDir: the root of a user namespace is
// "others" on the host and cannot search a 0700 directory of root's, yet
// bind mounts from there work (the runtime clones the sources on the host
// side, as runc and crun do), read-only ones stay read-only, and a file
// source binds as a file.
func TestUserNamespaceBindFromPrivateDir(t *testing.T) {
	const hostID = 100000
	private := t.TempDir() // 0700, root's
	dir := filepath.Join(private, "dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "in-dir"), []byte("from the dir\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(private, "file")
	if err := os.WriteFile(file, []byte("from the file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "cat /tmp/dir/in-dir /tmp/file; touch /tmp/dir/x 2>/dev/null && echo writable || echo read-only",
		withNamespace(specs.UserNamespace, ""), func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
			s.Mounts = append(s.Mounts,
				specs.Mount{Destination: "/tmp/dir", Type: "bind", Source: dir, Options: []string{"rbind", "ro"}},
				specs.Mount{Destination: "/tmp/file", Type: "bind", Source: file, Options: []string{"bind"}})
		})
	if want := "from the dir\nfrom the file\nread-only\n"; out != want {
		t.Errorf("binds from a 0700 directory in a user namespace: %q, want %q", out, want)
	}
}

func TestCgroupNamespaceRoot(t *testing.T) {
	out := mustRun(t, "cat /proc/self/cgroup", withNamespace(specs.CgroupNamespace, ""))
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasSuffix(line, ":/") {
			t.Errorf("cgroup line inside %q, want the path /", line)
		}
	}
}

func TestTimeNamespaceOffsets(t *testing.T) {
	noTimeNamespace.skip(t)
	crunTimeNamespace.skip(t)
	const offset = 10 * 86400 // ten days
	before := hostUptime(t)
	out := mustRun(t, "cat /proc/uptime", withNamespace(specs.TimeNamespace, ""), func(s *specs.Spec) {
		s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: offset}, "monotonic": {Secs: offset}}
	})
	after := hostUptime(t)
	inside, err := strconv.ParseFloat(strings.Fields(out)[0], 64)
	if err != nil {
		t.Fatalf("/proc/uptime inside = %q: %v", out, err)
	}
	// Bounds, not timing: the container read its clock between our reads.
	if inside < before+offset-0.01 || inside > after+offset+0.01 {
		t.Errorf("uptime inside = %.2f, want between %.2f and %.2f (host uptime + %d s)", inside, before+offset, after+offset, offset)
	}
}

func hostUptime(t *testing.T) float64 {
	t.Helper()
	data := readFile(t, "/proc/uptime")
	v, err := strconv.ParseFloat(strings.Fields(data)[0], 64)
	if err != nil {
		t.Fatalf("parse /proc/uptime %q: %v", data, err)
	}
	return v
}

// nsHolder starts a process in new namespaces of the given unshare flags
// (e.g. --net) and returns its pid; it is killed when the test ends.
func nsHolder(t *testing.T, flags ...string) int {
	t.Helper()
	cmd := exec.Command("unshare", append(flags, "sleep", "1000000")...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a namespace holder: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	waitFor(t, "the holder to exec sleep in its namespaces", func() bool {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return strings.HasPrefix(string(data), "sleep\x00")
	})
	return pid
}

func TestJoinNamespaceByPath(t *testing.T) {
	holder := nsHolder(t, "--net", "--uts", "--ipc")
	tests := []struct {
		ns  string
		typ specs.LinuxNamespaceType
	}{
		{"net", specs.NetworkNamespace},
		{"uts", specs.UTSNamespace},
		{"ipc", specs.IPCNamespace},
	}
	for _, tt := range tests {
		t.Run(tt.ns, func(t *testing.T) {
			path := fmt.Sprintf("/proc/%d/ns/%s", holder, tt.ns)
			adapt := []func(*specs.Spec){withNamespace(tt.typ, path)}
			if tt.typ == specs.UTSNamespace {
				// runc refuses a hostname without a new uts namespace; leave it unset.
				adapt = append(adapt, func(s *specs.Spec) { s.Hostname = "" })
			}
			out := mustRun(t, "readlink /proc/self/ns/"+tt.ns, adapt...)
			if got, want := strings.TrimSpace(out), nsLink(t, holder, tt.ns); got != want {
				t.Errorf("joined namespace %s = %q, want the holder's %q", tt.ns, got, want)
			}
		})
	}
}
