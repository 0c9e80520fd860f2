package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
)

// Docker's default capability set as a CapEff mask: CHOWN DAC_OVERRIDE
// FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW
// SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
const dockerDefaultCaps = "00000000a80425fb"

// procStatus reads a host process's /proc/PID/status.
func procStatus(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of the container's process: %v", err)
	}
	return string(b)
}

// TestSecurityCapabilities: Docker's default set, --cap-add, --cap-drop
// (ALL too) and --privileged, seen in CapEff inside and on the host.
func TestSecurityCapabilities(t *testing.T) {
	e := newCtrEnv(t)
	hostBnd := hostStatusField(t, "CapBnd")
	tests := []struct {
		flags []string
		want  string
	}{
		{nil, dockerDefaultCaps},
		{[]string{"--cap-drop", "NET_RAW"}, "00000000a80405fb"},
		{[]string{"--cap-add", "SYS_ADMIN"}, "00000000a82425fb"},
		{[]string{"--cap-add", "CAP_SYS_ADMIN", "--cap-drop", "CAP_CHOWN"}, "00000000a82425fa"},
		{[]string{"--cap-drop", "ALL", "--cap-add", "CHOWN"}, "0000000000000001"},
		// Privileged gets every capability the engine itself holds.
		{[]string{"--privileged"}, hostBnd},
	}
	for _, tc := range tests {
		args := append(append([]string{}, tc.flags...), box, "sleep", "1000")
		id := e.runD(args...)
		inside := statusField(e.sh(id, "cat /proc/self/status"), "CapEff")
		outside := statusField(procStatus(t, e.cstate(id).Pid), "CapEff")
		if inside != tc.want || outside != tc.want {
			t.Errorf("run %v: CapEff inside %s, on the host %s; want %s", tc.flags, inside, outside, tc.want)
		}
		if bnd := statusField(procStatus(t, e.cstate(id).Pid), "CapBnd"); bnd != tc.want {
			t.Errorf("run %v: CapBnd %s, want %s (the bounding set is the container's set)", tc.flags, bnd, tc.want)
		}
	}
	if r := e.run(nil, "run", "--rm", "--cap-add", "NOT_A_CAP", box, "true"); r.code != 125 || !strings.Contains(r.stderr, "NOT_A_CAP") {
		t.Errorf("--cap-add NOT_A_CAP: got %v, want exit 125 naming it", r)
	}
}

// TestSecurityPrivileged: --privileged lifts seccomp, the masked and
// read-only /proc paths, and gives the host's devices.
func TestSecurityPrivileged(t *testing.T) {
	e := newCtrEnv(t)
	// /proc/timer_list rather than /proc/kcore, which kernels without
	// CONFIG_PROC_KCORE lack. A privileged container has no /proc/sys mount
	// of its own (Docker's either): /proc's options count then.
	script := "grep Seccomp: /proc/self/status | tr -d '\\t'; stat -c %F /proc/timer_list 2>&1; " +
		"{ grep ' /proc/sys ' /proc/mounts || grep ' /proc ' /proc/mounts; } | head -n 1 | cut -d' ' -f4 | cut -d, -f1; ls /dev | grep -c ."
	def := lines(e.sh(e.runD(box, "sleep", "1000"), script))
	priv := lines(e.sh(e.runD("--privileged", box, "sleep", "1000"), script))
	if len(def) != 4 || len(priv) != 4 {
		t.Fatalf("default %q, privileged %q: want 4 lines each", def, priv)
	}
	if def[0] != "Seccomp:2" || priv[0] != "Seccomp:0" {
		t.Errorf("Seccomp default %q privileged %q, want 2 and 0", def[0], priv[0])
	}
	if def[1] != "character special file" || !strings.HasPrefix(priv[1], "regular") {
		t.Errorf("/proc/timer_list is %q by default (want masked: character special file) and %q privileged (want a regular file)", def[1], priv[1])
	}
	if def[2] != "ro" || priv[2] == "ro" {
		t.Errorf("/proc/sys mounted %q by default (want ro) and %q privileged (want rw)", def[2], priv[2])
	}
	if nd, np := atoi(def[3]), atoi(priv[3]); nd >= np {
		t.Errorf("/dev has %s entries by default and %s privileged: want the host's devices in a privileged one", def[3], priv[3])
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(s))
	return n
}

// TestSecurityOpt: seccomp=unconfined, seccomp=PROFILE (a profile that
// refuses mkdir) and no-new-privileges.
func TestSecurityOpt(t *testing.T) {
	e := newCtrEnv(t)
	profile := filepath.Join(e.dir, "no-mkdir.json")
	os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644)
	tests := []struct {
		flags            []string
		seccomp, nnp     string
		mkdirFailsInside bool
	}{
		{nil, "2", "0", false},
		{[]string{"--security-opt", "seccomp=unconfined"}, "0", "0", false},
		{[]string{"--security-opt", "no-new-privileges"}, "2", "1", false},
		{[]string{"--security-opt", "no-new-privileges:true", "--security-opt", "seccomp=unconfined"}, "0", "1", false},
		{[]string{"--security-opt", "seccomp=" + profile}, "2", "0", true},
	}
	for _, tc := range tests {
		id := e.runD(append(append([]string{}, tc.flags...), box, "sleep", "1000")...)
		out := e.sh(id, "cat /proc/self/status; mkdir /made 2>/dev/null && echo mkdir-ok || echo mkdir-failed")
		host := procStatus(t, e.cstate(id).Pid)
		for _, where := range []struct{ name, status string }{{"inside", out}, {"on the host", host}} {
			if got := statusField(where.status, "Seccomp"); got != tc.seccomp {
				t.Errorf("run %v: Seccomp %s = %s, want %s", tc.flags, where.name, got, tc.seccomp)
			}
			if got := statusField(where.status, "NoNewPrivs"); got != tc.nnp {
				t.Errorf("run %v: NoNewPrivs %s = %s, want %s", tc.flags, where.name, got, tc.nnp)
			}
		}
		if failed := strings.Contains(out, "mkdir-failed"); failed != tc.mkdirFailsInside {
			t.Errorf("run %v: mkdir failed = %v, want %v", tc.flags, failed, tc.mkdirFailsInside)
		}
	}
	for _, bad := range []string{"seccomp=" + filepath.Join(e.dir, "missing.json"), "nonsense"} {
		if r := e.run(nil, "run", "--rm", "--security-opt", bad, box, "true"); r.code != 125 {
			t.Errorf("--security-opt %s: got %v, want exit 125", bad, r)
		}
	}
}

// TestDevice: --device adds the node and allows it in the device cgroup;
// :r allows opening it for reading only. /dev/loop-control is used because
// Docker's default rules do not allow it already, and opening it does
// nothing.
func TestDevice(t *testing.T) {
	e := newCtrEnv(t)
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no /dev/loop-control on this host")
	}
	probe := "stat -c '%t:%T %F' /dev/xloop; (exec 3</dev/xloop) 2>/dev/null && echo read-ok || echo read-refused; (exec 3>/dev/xloop) 2>/dev/null && echo write-ok || echo write-refused"
	id := e.runD("--device", "/dev/loop-control:/dev/xloop", box, "sleep", "1000")
	if out := e.sh(id, probe); out != "a:ed character special file\nread-ok\nwrite-ok\n" {
		t.Errorf("--device /dev/loop-control:/dev/xloop: inside %q", out)
	}
	if l := cgroupFile(t, id, "devices", "devices.list"); !strings.Contains(l, "c 10:237 rwm") {
		t.Errorf("devices.list lacks \"c 10:237 rwm\":\n%s", l)
	}
	id = e.runD("--device", "/dev/loop-control:/dev/xloop:r", box, "sleep", "1000")
	if out := e.sh(id, probe); out != "a:ed character special file\nread-ok\nwrite-refused\n" {
		t.Errorf("--device ...:r: inside %q, want reads allowed and writes refused", out)
	}
	if l := cgroupFile(t, id, "devices", "devices.list"); !strings.Contains(l, "c 10:237 r\n") {
		t.Errorf("devices.list lacks \"c 10:237 r\":\n%s", l)
	}
	id = e.runD(box, "sleep", "1000")
	if out := e.sh(id, "ls /dev/xloop 2>/dev/null || echo none"); out != "none\n" {
		t.Errorf("without --device /dev/xloop is %q", out)
	}
	if r := e.run(nil, "run", "--rm", "--device", "/dev/no-such-device", box, "true"); r.code != 125 || !strings.Contains(r.stderr, "/dev/no-such-device") {
		t.Errorf("--device of a missing node: got %v, want exit 125 naming it", r)
	}
}

// TestUlimit: --ulimit sets soft and hard limits, inside and on the host.
func TestUlimit(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--ulimit", "nofile=1024:2048", box, "sleep", "1000")
	if out := e.sh(id, "ulimit -n; ulimit -Hn"); out != "1024\n2048\n" {
		t.Errorf("--ulimit nofile=1024:2048: ulimit -n/-Hn inside = %q", out)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", e.cstate(id).Pid))
	found := false
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); strings.HasPrefix(l, "Max open files") && len(f) >= 5 && f[3] == "1024" && f[4] == "2048" {
			found = true
		}
	}
	if !found {
		t.Errorf("host /proc/PID/limits has no \"Max open files 1024 2048\":\n%s", b)
	}
	if r := e.run(nil, "run", "--rm", "--ulimit", "nofile=20:10", box, "true"); r.code != 125 || !strings.Contains(r.stderr, "nofile") {
		t.Errorf("--ulimit with soft > hard: got %v, want exit 125 naming nofile", r)
	}
	if r := e.run(nil, "run", "--rm", "--ulimit", "nosuch=1", box, "true"); r.code != 125 || !strings.Contains(r.stderr, "nosuch") {
		t.Errorf("--ulimit nosuch=1: got %v, want exit 125 naming it", r)
	}
}

// hostNS is the namespace link of this test process.
func hostNS(t *testing.T, ns string) string { return nsLink(t, os.Getpid(), ns) }

// nsInside is a container's namespace link seen from inside.
func (e *ctrEnv) nsInside(id, ns string) string {
	e.t.Helper()
	return strings.TrimSpace(e.sh(id, "readlink /proc/self/ns/"+ns))
}

// TestNamespaceDefaults: a container has its own pid, ipc, uts, mount and
// network namespaces (on the default bridge: lo and eth0, as in Docker).
func TestNamespaceDefaults(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD(box, "sleep", "1000")
	pid := e.cstate(id).Pid
	for _, ns := range []string{"pid", "ipc", "uts", "mnt", "net"} {
		if in, out := e.nsInside(id, ns), nsLink(t, pid, ns); in == hostNS(t, ns) || in != out {
			t.Errorf("%s namespace: inside %s, of State.Pid %s, host %s; want its own", ns, in, out, hostNS(t, ns))
		}
	}
	if out := e.sh(id, "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort"); out != "eth0\nlo\n" {
		t.Errorf("a default container's network interfaces: %q, want eth0 and lo", out)
	}
}

// TestNamespacePidHost: --pid host shares the host's pid namespace.
func TestNamespacePidHost(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--pid", "host", box, "sleep", "1000")
	if got := nsLink(t, e.cstate(id).Pid, "pid"); got != hostNS(t, "pid") {
		t.Errorf("--pid host: State.Pid's pid namespace %s, want the host's %s", got, hostNS(t, "pid"))
	}
	hostInit, _ := os.ReadFile("/proc/1/comm")
	if got := e.sh(id, "cat /proc/1/comm"); got != string(hostInit) {
		t.Errorf("--pid host: pid 1 inside is %q, want the host's %q", got, hostInit)
	}
	if got := e.nsInside(id, "pid"); got != hostNS(t, "pid") {
		t.Errorf("--pid host: inside %s, want the host's %s", got, hostNS(t, "pid"))
	}
}

// TestNamespaceContainer: --pid and --ipc container:X join X's namespaces:
// its processes and its /dev/shm are seen.
func TestNamespaceContainer(t *testing.T) {
	e := newCtrEnv(t)
	donor := e.runD("--name", "donor", "--ipc", "shareable", box, "sh", "-c", "echo shared > /dev/shm/mark; exec sleep 1000")
	// Its shell writes the mark, then execs sleep 1000: after run -d.
	e.waitTree(donor, "sleep 1000")
	donorPid := e.cstate(donor).Pid
	joiner := e.runD("--pid", "container:donor", "--ipc", "container:donor", box, "sleep", "1001")
	joinerPid := e.cstate(joiner).Pid
	for _, ns := range []string{"pid", "ipc"} {
		want := nsLink(t, donorPid, ns)
		if in, out := e.nsInside(joiner, ns), nsLink(t, joinerPid, ns); in != want || out != want {
			t.Errorf("--%s container:donor: inside %s, of State.Pid %s; want the donor's %s", ns, in, out, want)
		}
	}
	if got, own := nsLink(t, joinerPid, "uts"), nsLink(t, donorPid, "uts"); got == own {
		t.Errorf("the joiner shares the donor's uts namespace too: only pid and ipc were asked for")
	}
	if out := e.sh(joiner, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"); !strings.Contains(out, "sleep 1000") {
		t.Errorf("--pid container:donor: the donor's sleep 1000 is not seen: %q", out)
	}
	if out := e.sh(joiner, "cat /dev/shm/mark"); out != "shared\n" {
		t.Errorf("--ipc container:donor: /dev/shm/mark = %q, want the donor's", out)
	}
	for _, flag := range []string{"--pid", "--ipc"} {
		if r := e.run(nil, "run", "--rm", flag, "container:nosuch", box, "true"); r.code != 125 || !strings.Contains(r.stderr, "nosuch") {
			t.Errorf("%s container:nosuch: got %v, want exit 125 naming it", flag, r)
		}
	}
}

// TestNamespaceUTSHost: --uts host shows the host's name.
func TestNamespaceUTSHost(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--uts", "host", box, "sleep", "1000")
	hn, _ := os.Hostname()
	if in := e.nsInside(id, "uts"); in != hostNS(t, "uts") || nsLink(t, e.cstate(id).Pid, "uts") != hostNS(t, "uts") {
		t.Errorf("--uts host: namespace %s, want the host's %s", in, hostNS(t, "uts"))
	}
	if got := e.sh(id, "hostname"); got != hn+"\n" {
		t.Errorf("--uts host: hostname %q, want the host's %q", got, hn)
	}
}

// TestNamespaceCgroupns: --cgroupns host shows the full cgroup path;
// private shows the container's cgroup as the root. Without the flag,
// as Docker: host on a cgroup v1 or hybrid host, private on pure v2.
func TestNamespaceCgroupns(t *testing.T) {
	e := newCtrEnv(t)
	cgHost := e.runD("--cgroupns", "host", box, "sleep", "1000")
	cgPriv := e.runD("--cgroupns", "private", box, "sleep", "1000")
	cgDefault := e.runD(box, "sleep", "1000")
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Fatal(err)
	}
	wantMode, wantShared := container.CgroupnsModeHost, true
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		wantMode, wantShared = container.CgroupnsModePrivate, false
	}
	if in, _ := e.inspectC(cgDefault); in.HostConfig.CgroupnsMode != wantMode {
		t.Errorf("no --cgroupns: inspect HostConfig.CgroupnsMode = %q, want %q", in.HostConfig.CgroupnsMode, wantMode)
	}
	if in := e.nsInside(cgDefault, "cgroup"); (in == hostNS(t, "cgroup")) != wantShared {
		t.Errorf("no --cgroupns: namespace inside %s, host's %s; want shared %v (mode %s)", in, hostNS(t, "cgroup"), wantShared, wantMode)
	}
	if in := e.nsInside(cgHost, "cgroup"); in != hostNS(t, "cgroup") {
		t.Errorf("--cgroupns host: %s, want the host's %s", in, hostNS(t, "cgroup"))
	}
	if in := e.nsInside(cgPriv, "cgroup"); in == hostNS(t, "cgroup") || nsLink(t, e.cstate(cgPriv).Pid, "cgroup") != in {
		t.Errorf("--cgroupns private: %s, want its own namespace", in)
	}
	if out := e.sh(cgHost, "grep :memory: /proc/self/cgroup"); !strings.Contains(out, "/berth/"+cgHost) {
		t.Errorf("--cgroupns host: /proc/self/cgroup memory line %q, want the full path /berth/%s", out, cgHost)
	}
	if out := strings.TrimSpace(e.sh(cgPriv, "grep :memory: /proc/self/cgroup")); !strings.HasSuffix(out, ":/") {
		t.Errorf("--cgroupns private: /proc/self/cgroup memory line %q, want the root /", out)
	}
}

// TestNamespaceNetwork: --network host and none.
func TestNamespaceNetwork(t *testing.T) {
	e := newCtrEnv(t)
	netHost := e.runD("--network", "host", box, "sleep", "1000")
	if in := e.nsInside(netHost, "net"); in != hostNS(t, "net") {
		t.Errorf("--network host: %s, want the host's %s", in, hostNS(t, "net"))
	}
	netNone := e.runD("--net", "none", box, "sleep", "1000")
	if in := e.nsInside(netNone, "net"); in == hostNS(t, "net") {
		t.Errorf("--net none: the host's network namespace")
	}
	if out := e.sh(netNone, "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"); out != "lo\n" {
		t.Errorf("--net none: interfaces %q, want lo only", out)
	}
	for id, want := range map[string]string{netHost: "host", netNone: "none"} {
		if in, _ := e.inspectC(id); string(in.HostConfig.NetworkMode) != want {
			t.Errorf("inspect HostConfig.NetworkMode = %q, want %q", in.HostConfig.NetworkMode, want)
		}
	}
}

// TestUserns: --userns auto maps the container's root to an unprivileged
// host uid; inside it is still root and the image's files are root's.
func TestUserns(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--userns", "auto", box, "sleep", "1000")
	out := lines(e.sh(id, "id -u; cat /proc/self/uid_map; stat -c '%u:%g' /bin/busybox; touch /tmp/mine && stat -c '%u' /tmp/mine"))
	if len(out) != 4 || out[0] != "0" || out[2] != "0:0" || out[3] != "0" {
		t.Fatalf("--userns auto inside: %q, want uid 0, a map, /bin/busybox 0:0, a new file owned by 0", out)
	}
	m := strings.Fields(out[1])
	if len(m) != 3 || m[0] != "0" || m[1] == "0" {
		t.Errorf("--userns auto: uid_map %q, want 0 mapped to a non-zero host uid", out[1])
	}
	pid := e.cstate(id).Pid
	uid := strings.Fields(statusField(procStatus(t, pid), "Uid"))
	if len(uid) == 0 || uid[0] == "0" || (len(m) == 3 && uid[0] != m[1]) {
		t.Errorf("--userns auto: the container's process runs as host uid %q, want the mapped %q", uid, m)
	}
	if nsLink(t, pid, "user") == nsLink(t, os.Getpid(), "user") {
		t.Errorf("--userns auto: the container is in the host's user namespace")
	}
	// Two containers get ranges that do not overlap.
	id2 := e.runD("--userns", "auto", box, "sleep", "1000")
	m2 := strings.Fields(e.sh(id2, "cat /proc/self/uid_map"))
	if len(m2) == 3 && len(m) == 3 && m2[1] == m[1] {
		t.Errorf("two --userns auto containers share the host range %s", m[1])
	}
}

// TestUsernsHost: --userns host (Docker's only value besides the
// default) runs in the host's user namespace with the identity map, as
// without --userns, and inspect shows the mode; an unknown mode is
// refused with exit 125 and nothing made.
func TestUsernsHost(t *testing.T) {
	e := newCtrEnv(t)
	for _, args := range [][]string{{"--userns", "host"}, nil} {
		id := e.runD(append(args, box, "sleep", "1000")...)
		pid := e.cstate(id).Pid
		if nsLink(t, pid, "user") != nsLink(t, os.Getpid(), "user") {
			t.Errorf("%v: the container has a user namespace of its own", args)
		}
		if out := strings.Fields(e.sh(id, "id -u; cat /proc/self/uid_map")); !slices.Equal(out, []string{"0", "0", "0", "4294967295"}) {
			t.Errorf("%v: id -u and uid_map %q, want 0 and the identity map", args, out)
		}
		want := ""
		if args != nil {
			want = "host"
		}
		if in, _ := e.inspectC(id); string(in.HostConfig.UsernsMode) != want {
			t.Errorf("%v: inspect HostConfig.UsernsMode = %q, want %q", args, in.HostConfig.UsernsMode, want)
		}
	}
	before := containerDirs(t, e.root)
	if r := e.run(nil, "run", "-d", "--userns", "bogus", box, "true"); r.code != 125 || !strings.Contains(r.stderr, "userns") {
		t.Errorf("--userns bogus: %v, want exit 125 naming the flag", r)
	}
	if after := containerDirs(t, e.root); after != before {
		t.Errorf("--userns bogus left a container (%d directories, were %d)", after, before)
	}
}

// TestUsernsVolumes: with --userns, named volumes (and so --volumes-from)
// are id-mapped like the root filesystem: the image's root-owned content
// copied in shows as root inside, what the container writes is stored as
// root on disk, and containers of other mappings share the volume. A host
// bind shows host ids unmapped (nobody), as in Docker, unless it has
// podman's idmap option; a source that cannot be id-mapped fails the start
// with a message naming it.
func TestUsernsVolumes(t *testing.T) {
	e := newCtrEnv(t)
	const show = "stat -c '%u:%g %n' /data/seed.txt; touch /data/w; stat -c '%u:%g %n' /data/w"
	if out := e.ok("run", "--rm", "--userns", "auto", "-v", "uv:/data", box, "sh", "-c", show); out != "0:0 /data/seed.txt\n0:0 /data/w\n" {
		t.Errorf("--userns auto with a named volume: %q, want everything root's", out)
	}
	mp := e.volume("uv").Mountpoint
	for _, f := range []string{"seed.txt", "w"} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(mp, f), &st); err != nil || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("the volume's %s on disk: uid %d gid %d (%v), want 0:0", f, st.Uid, st.Gid, err)
		}
	}
	// Another mapping, and --volumes-from; then a container without one.
	src := e.runD("--userns", "map=0:300000:65536", "-v", "uv:/data", box, "sleep", "1000")
	if out := e.ok("run", "--rm", "--userns", "auto", "--volumes-from", src, box, "stat", "-c", "%u:%g", "/data/w"); out != "0:0\n" {
		t.Errorf("--volumes-from into a --userns auto container: /data/w is %q, want 0:0", out)
	}
	if out := e.sh(src, "stat -c %u:%g /data/w"); out != "0:0\n" {
		t.Errorf("--userns map=0:300000:65536 with the volume: /data/w is %q, want 0:0", out)
	}
	if out := e.ok("run", "--rm", "-v", "uv:/data", box, "stat", "-c", "%u:%g", "/data/w"); out != "0:0\n" {
		t.Errorf("without --userns: /data/w is %q, want 0:0", out)
	}

	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "f"), nil, 0o644)
	if out := e.ok("run", "--rm", "--userns", "auto", "-v", host+":/h", box, "stat", "-c", "%u", "/h/f"); out != "65534\n" {
		t.Errorf("--userns auto with a plain bind: /h/f is %q, want 65534 (unmapped, as Docker)", out)
	}
	if out := e.ok("run", "--rm", "--userns", "auto", "-v", host+":/h:idmap", box, "sh", "-c", "stat -c %u /h/f; touch /h/new"); out != "0\n" {
		t.Errorf("--userns auto with -v ...:idmap: /h/f is %q, want 0", out)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(host, "new"), &st); err != nil || st.Uid != 0 {
		t.Errorf("a file made through an idmap bind: uid %d (%v), want 0", st.Uid, err)
	}
	if out := e.ok("run", "--rm", "-v", host+":/h:idmap", box, "stat", "-c", "%u", "/h/f"); out != "0\n" {
		t.Errorf("-v ...:idmap without --userns: /h/f is %q, want 0", out)
	}
	r := e.run(nil, "run", "--rm", "--userns", "auto", "-v", "/sys/kernel:/k:idmap", box, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "/sys/kernel") || !strings.Contains(r.stderr, "id-map") {
		t.Errorf("an idmap bind of sysfs: %v, want exit 125 naming /sys/kernel", r)
	}
}
