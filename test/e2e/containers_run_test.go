package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/moby/api/types/container"
)

// TestRunDetached: run -d prints the ID; ps shows the container Up; the
// process runs on the host as State.Pid and is pid 1 inside.
func TestRunDetached(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD(box, "sleep", "1000")
	ps := lines(e.ok("ps"))
	if len(ps) != 2 || !strings.HasPrefix(ps[1], id[:12]+" ") || !strings.Contains(ps[1], " Up ") {
		t.Errorf("ps after run -d = %q, want one row with %s ... Up", ps, id[:12])
	}
	st := e.cstate(id)
	if st.Status != container.StateRunning || !st.Running || st.Pid <= 0 {
		t.Fatalf("State = %+v, want running with a pid", st)
	}
	if got := cmdline(st.Pid); got != "sleep 1000" {
		t.Errorf("host /proc/%d/cmdline = %q, want \"sleep 1000\"", st.Pid, got)
	}
	if got := e.sh(id, "tr '\\0' ' ' </proc/1/cmdline"); got != "sleep 1000 " {
		t.Errorf("inside, pid 1 is %q, want \"sleep 1000\"", got)
	}
}

// TestRunForeground: a foreground run relays stdout and stderr apart and
// exits with the container's code.
func TestRunForeground(t *testing.T) {
	e := newCtrEnv(t)
	r := e.run(nil, "run", "--name", "fg", box, "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.code != 3 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Errorf("run: got %v\nwant exit 3, stdout \"out\\n\", stderr \"err\\n\"", r)
	}
	e.remember("fg")
	if st := e.cstate("fg"); st.Status != container.StateExited || st.ExitCode != 3 || st.Running {
		t.Errorf("State after exit 3 = %+v, want exited with code 3", st)
	}
	if out := e.ok("ps", "-a", "--format", "{{.Status}}"); !strings.HasPrefix(out, "Exited (3) ") {
		t.Errorf("ps -a Status = %q, want \"Exited (3) ...\"", out)
	}
}

// TestRunInteractive: -i passes piped stdin through and EOF ends it;
// without -i the container reads nothing.
func TestRunInteractive(t *testing.T) {
	e := newCtrEnv(t)
	r := e.run(strings.NewReader("hello\nworld\n"), "run", "-i", "--rm", box, "sh", "-c", "cat; echo end; exit 6")
	if r.code != 6 || r.stdout != "hello\nworld\nend\n" {
		t.Errorf("run -i: got %v\nwant exit 6 and stdout \"hello\\nworld\\nend\\n\"", r)
	}
	r = e.run(strings.NewReader("hello\n"), "run", "--rm", box, "sh", "-c", "cat; echo end")
	if r.code != 0 || r.stdout != "end\n" {
		t.Errorf("run without -i: got %v\nwant stdout \"end\\n\" (stdin not attached)", r)
	}
}

// TestRunTTY: -t gives the container a terminal; what is typed reaches it
// and the exit code comes back.
func TestRunTTY(t *testing.T) {
	e := newCtrEnv(t)
	out, code := e.runScript("", "run", "-t", "--rm", box, "sh", "-c", "tty; exit 4")
	if code != 4 || !strings.Contains(out, "/dev/pts/0") {
		t.Errorf("run -t: exit %d, output %q; want exit 4 and /dev/pts/0", code, out)
	}
	out, code = e.runScript("echo typed-$((40+2))\nexit 5\n", "run", "-i", "-t", "--rm", box, "sh")
	if code != 5 || !strings.Contains(out, "typed-42") {
		t.Errorf("run -it with typed input: exit %d, output %q; want exit 5 and typed-42", code, out)
	}
	if left := e.ok("ps", "-aq"); left != "" {
		t.Errorf("--rm containers left: %q", left)
	}
}

// TestRunRm: --rm removes the container when it exits, in the foreground
// and with -d, and leaves nothing of it behind.
func TestRunRm(t *testing.T) {
	e := newCtrEnv(t)
	if out := e.ok("run", "--rm", box, "echo", "once"); out != "once\n" {
		t.Errorf("run --rm printed %q", out)
	}
	if left := e.ok("ps", "-aq"); left != "" {
		t.Errorf("run --rm left %q", left)
	}
	// The container's monitor deletes it from the runtime and removes its
	// run directory after the run returned (the run does not wait for
	// that process): nothing is left once it is gone.
	waitFor(t, "the monitor of the foreground --rm container to exit", func() bool {
		for _, pid := range pidsMentioning(e.state) {
			if strings.Contains(cmdline(pid), "berth-shim") {
				return false
			}
		}
		return true
	})
	for _, sub := range []string{"containers", "runtime"} {
		if ents, _ := os.ReadDir(filepath.Join(e.state, sub)); len(ents) > 0 {
			t.Errorf("after run --rm, %s holds %s", filepath.Join(e.state, sub), ents[0].Name())
		}
	}
	ents, _ := os.ReadDir(filepath.Join(e.root, "containers"))
	for _, ent := range ents {
		if ent.IsDir() {
			t.Errorf("after run --rm, the store's containers directory holds %s", ent.Name())
		}
	}
	id := e.runD("--rm", box, "sh", "-c", "sleep 0.3")
	waitFor(t, "the --rm -d container to be removed", func() bool { return e.ok("ps", "-aq") == "" })
	e.monitorGone(id)
	for _, l := range e.leaks(id) {
		t.Errorf("after run -d --rm: %s", l)
	}
	if n := containerDirs(t, e.root); n != 0 {
		t.Errorf("%s/containers still holds %d containers after --rm", e.root, n)
	}
}

// TestRunName: --name names the container (/NAME in inspect); a name in use
// is refused with exit 125 and nothing is created.
func TestRunName(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--name", "web", box, "sleep", "1000")
	in, _ := e.inspectC("web")
	if in.Name != "/web" || in.ID != id {
		t.Errorf("inspect web: Name %q Id %s, want /web and %s", in.Name, in.ID, id)
	}
	r := e.run(nil, "run", "--name", "web", box, "true")
	if r.code != 125 || !strings.Contains(r.stderr, `The container name "/web" is already in use`) {
		t.Errorf("run with a name in use: got %v\nwant exit 125, \"The container name \\\"/web\\\" is already in use\"", r)
	}
	if r := e.run(nil, "create", "--name", "web", box); r.code != 125 {
		t.Errorf("create with a name in use: got %v, want exit 125", r)
	}
	if ids := lines(e.ok("ps", "-aq")); len(ids) != 1 {
		t.Errorf("after refused runs ps -a lists %q, want only web", ids)
	}
	if n := containerDirs(t, e.root); n != 1 {
		t.Errorf("%s/containers holds %d containers, want 1", e.root, n)
	}
}

// TestRunEnv: -e KEY=v, -e KEY (from berth's environment), --env-file, the
// image's ENV (overridable), and Docker's PATH, HOSTNAME and HOME.
func TestRunEnv(t *testing.T) {
	e := newCtrEnv(t)
	envFile := filepath.Join(e.dir, "env")
	os.WriteFile(envFile, []byte("# a comment\nC=3\n\nD=four five\nFROM_FILE_HOST\n"), 0o644)
	cmd := e.berthCmd("run", "--name", "envs", "-e", "A=1", "-e", "FROM_HOST", "-e", "NOT_SET_ANYWHERE",
		"--env-file", envFile, "-e", "IMG=over", box, "env")
	cmd.Env = append(cmd.Env, "FROM_HOST=hostval", "FROM_FILE_HOST=fileval")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run with env: %v (%s)", err, out)
	}
	id := e.remember("envs")
	got := lines(string(out))
	want := []string{"A=1", "FROM_HOST=hostval", "C=3", "D=four five", "FROM_FILE_HOST=fileval", "IMG=over",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + id[:12], "HOME=/root"}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("env lacks %q: %q", w, got)
		}
	}
	for _, g := range got {
		if strings.HasPrefix(g, "NOT_SET_ANYWHERE") || g == "IMG=box" {
			t.Errorf("env has %q: an unset -e KEY is left out and -e overrides the image", g)
		}
	}
	in, _ := e.inspectC("envs")
	for _, w := range []string{"A=1", "FROM_HOST=hostval", "D=four five", "IMG=over"} {
		if !slices.Contains(in.Config.Env, w) {
			t.Errorf("inspect Config.Env lacks %q: %q", w, in.Config.Env)
		}
	}
	if r := e.run(nil, "run", "--rm", "--env-file", filepath.Join(e.dir, "missing"), box, "true"); r.code != 125 || !strings.Contains(r.stderr, "missing") {
		t.Errorf("--env-file of a missing file: got %v, want exit 125 naming the file", r)
	}
}

// TestRunWorkdir: -w sets the working directory, creating it if missing.
func TestRunWorkdir(t *testing.T) {
	e := newCtrEnv(t)
	if out := e.ok("run", "--name", "wd", "-w", "/new/deep/dir", box, "sh", "-c", "pwd; ls -ld /new/deep/dir | cut -c1"); out != "/new/deep/dir\nd\n" {
		t.Errorf("run -w /new/deep/dir: %q, want the directory created and current", out)
	}
	e.remember("wd")
	if in, _ := e.inspectC("wd"); in.Config.WorkingDir != "/new/deep/dir" {
		t.Errorf("inspect Config.WorkingDir = %q", in.Config.WorkingDir)
	}
	if out := e.ok("run", "--rm", "-u", "user", "-w", "/home/user", box, "pwd"); out != "/home/user\n" {
		t.Errorf("run -u user -w /home/user: %q", out)
	}
}

// TestRunUser: -u takes names and numbers from the image's /etc/passwd and
// /etc/group; supplementary groups come from /etc/group.
func TestRunUser(t *testing.T) {
	e := newCtrEnv(t)
	tests := []struct {
		user       string
		uid, gid   string
		wantGroups []string
	}{
		{"alice", "uid=1001(alice)", "gid=1002(staff)", []string{"1003(devs)"}},
		{"alice:devs", "uid=1001(alice)", "gid=1003(devs)", nil},
		{"1000:1003", "uid=1000(user)", "gid=1003(devs)", nil},
		{"user", "uid=1000(user)", "gid=1000(user)", nil},
		{"4242", "uid=4242", "gid=0(root)", nil},
	}
	for _, tc := range tests {
		out := strings.Fields(e.ok("run", "--rm", "-u", tc.user, box, "id"))
		if len(out) < 2 || out[0] != tc.uid || out[1] != tc.gid {
			t.Errorf("run -u %s: id = %q, want %s %s", tc.user, out, tc.uid, tc.gid)
			continue
		}
		for _, g := range tc.wantGroups {
			if len(out) < 3 || !strings.Contains(out[2], g) {
				t.Errorf("run -u %s: id = %q, want supplementary group %s", tc.user, out, g)
			}
		}
	}
	// Outside: the process runs as the user on the host too.
	id := e.runD("-u", "alice", box, "sleep", "1000")
	pid := e.cstate(id).Pid
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if uid := strings.Fields(statusField(string(b), "Uid")); len(uid) == 0 || uid[0] != "1001" {
		t.Errorf("host /proc/%d/status Uid = %q, want 1001", pid, uid)
	}
	if gid := strings.Fields(statusField(string(b), "Gid")); len(gid) == 0 || gid[0] != "1002" {
		t.Errorf("host /proc/%d/status Gid = %q, want 1002", pid, gid)
	}
	if groups := strings.Fields(statusField(string(b), "Groups")); !slices.Contains(groups, "1003") {
		t.Errorf("host /proc/%d/status Groups = %q, want 1003 among them", pid, groups)
	}
	if r := e.run(nil, "run", "--rm", "-u", "nosuchuser", box, "true"); r.code == 0 || !strings.Contains(r.stderr, "nosuchuser") {
		t.Errorf("run -u nosuchuser: got %v, want a failure naming the user", r)
	}
}

// TestRunEntrypoint: --entrypoint replaces the image's entrypoint and, as
// in Docker, its CMD too; arguments after the image are the new CMD.
func TestRunEntrypoint(t *testing.T) {
	e := newCtrEnv(t)
	if out := e.ok("run", "--name", "ep", "--entrypoint", "/bin/echo", box, "a", "b"); out != "a b\n" {
		t.Errorf("--entrypoint /bin/echo box a b printed %q", out)
	}
	e.remember("ep")
	in, _ := e.inspectC("ep")
	if in.Path != "/bin/echo" || !slices.Equal(in.Args, []string{"a", "b"}) ||
		!slices.Equal(in.Config.Entrypoint, []string{"/bin/echo"}) || !slices.Equal(in.Config.Cmd, []string{"a", "b"}) {
		t.Errorf("inspect: Path %q Args %q Entrypoint %q Cmd %q", in.Path, in.Args, in.Config.Entrypoint, in.Config.Cmd)
	}
	// The image's CMD ["sh"] is not appended to a new entrypoint.
	if out := e.ok("run", "--rm", "--entrypoint", "/bin/echo", box); out != "\n" {
		t.Errorf("--entrypoint without arguments printed %q, want an empty line (image CMD dropped)", out)
	}
}

// TestRunHostname: --hostname sets the UTS name and /etc/hostname; the
// default is the short ID.
func TestRunHostname(t *testing.T) {
	e := newCtrEnv(t)
	if out := e.ok("run", "--rm", "--hostname", "myhost", box, "sh", "-c", "hostname; cat /etc/hostname"); out != "myhost\nmyhost\n" {
		t.Errorf("--hostname myhost: %q", out)
	}
	id := e.runD("-h", "other", box, "sleep", "1000")
	if in, _ := e.inspectC(id); in.Config.Hostname != "other" {
		t.Errorf("inspect Config.Hostname = %q, want other", in.Config.Hostname)
	}
	host, _ := os.Hostname()
	if host == "other" {
		t.Fatal("the host is called other: pick another name")
	}
	id = e.runD(box, "sleep", "1000")
	if out := e.sh(id, "hostname"); out != id[:12]+"\n" {
		t.Errorf("default hostname %q, want the short ID %s", out, id[:12])
	}
}

// TestRunReadOnly: --read-only makes / read-only; --tmpfs mounts stay
// writable.
func TestRunReadOnly(t *testing.T) {
	e := newCtrEnv(t)
	r := e.run(nil, "run", "--name", "ro", "--read-only", "--tmpfs", "/scratch", box, "sh", "-c",
		"touch /x; echo rc=$?; touch /scratch/y && echo scratch-ok; grep ' /scratch ' /proc/mounts | cut -d' ' -f3; grep -E '^[^ ]+ / ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1")
	if r.code != 0 || r.stdout != "rc=1\nscratch-ok\ntmpfs\nro\n" || !strings.Contains(r.stderr, "Read-only file system") {
		t.Errorf("--read-only --tmpfs /scratch: got %v\nwant rc=1 (Read-only file system), scratch-ok, tmpfs, ro", r)
	}
	e.remember("ro")
	in, _ := e.inspectC("ro")
	if !in.HostConfig.ReadonlyRootfs {
		t.Errorf("inspect HostConfig.ReadonlyRootfs = false")
	}
	if _, ok := in.HostConfig.Tmpfs["/scratch"]; !ok {
		t.Errorf("inspect HostConfig.Tmpfs = %v, want /scratch", in.HostConfig.Tmpfs)
	}
}

// nsProcs lists the host pids in the pid namespace of pid, with their state
// letter and command line.
func nsProcs(t *testing.T, pid int) map[int]string {
	t.Helper()
	want := nsLink(t, pid, "pid")
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, de := range ents {
		p, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p))
		if err != nil || l != want {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		out[p] = s[i+2:i+3] + " " + cmdline(p)
	}
	return out
}

// TestRunInit: with --init, pid 1 is berth-init and orphans are reaped;
// without it an orphan stays a zombie under a pid 1 that never waits.
func TestRunInit(t *testing.T) {
	e := newCtrEnv(t)
	// The subshell's child is orphaned and reparented to pid 1; the test
	// kills it once the shell has exec'd sleep 1000 (the shell itself, still
	// waiting for the subshell, could reap it otherwise).
	orphan := "(sleep 1001 &); exec sleep 1000"
	for _, init := range []bool{true, false} {
		args := []string{box, "sh", "-c", orphan}
		if init {
			args = append([]string{"--init"}, args...)
		}
		id := e.runD(args...)
		pid := e.cstate(id).Pid
		// run -d returns once the init runs, before the shell has forked
		// the orphan and exec'd sleep 1000.
		orphanPid := 0
		waitFor(t, "the shell to exec sleep 1000 after orphaning sleep 1001", func() bool {
			execd := false
			for p, c := range nsProcs(t, pid) {
				switch {
				case strings.HasSuffix(c, " sleep 1000"):
					execd = true
				case strings.HasSuffix(c, " sleep 1001"):
					orphanPid = p
				}
			}
			return execd && orphanPid != 0
		})
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		inside := e.sh(id, "cat /proc/1/comm")
		if init && (strings.TrimSpace(string(comm)) != "berth-init" || inside != "berth-init\n") {
			t.Errorf("--init: State.Pid's comm is %q and pid 1 inside is %q, want berth-init", comm, inside)
		}
		if !init && inside != "sleep\n" {
			t.Errorf("without --init pid 1 inside is %q, want sleep", inside)
		}
		if ppid := statusField(procStatus(t, orphanPid), "PPid"); ppid != strconv.Itoa(pid) {
			t.Errorf("the orphan's parent is %s, want pid 1 of the container (%d)", ppid, pid)
		}
		syscall.Kill(orphanPid, syscall.SIGKILL)
		// Once it has died: reaped (gone) under --init, a zombie without.
		var procs map[int]string
		waitFor(t, "the orphan to die and, with --init, be reaped", func() bool {
			procs = nsProcs(t, pid)
			c, ok := procs[orphanPid]
			return init && !ok || !init && strings.HasPrefix(c, "Z")
		})
		zombies := 0
		for _, p := range procs {
			if strings.HasPrefix(p, "Z") {
				zombies++
			}
		}
		if init && zombies != 0 {
			t.Errorf("--init: %d zombies in the container: %v", zombies, procs)
		}
		if !init && zombies != 1 {
			t.Errorf("without --init the orphan should stay a zombie (the check must be able to see one): %v", procs)
		}
	}
	// --init forwards the stop signal and passes the exit code on.
	out := e.run(nil, "run", "--rm", "--init", box, "sh", "-c", "exit 9")
	if out.code != 9 {
		t.Errorf("run --init exit 9: got %v", out)
	}
}

// TestRunRestartOnFailure: on-failure:2 restarts a failing container twice,
// then leaves it exited with RestartCount 2.
func TestRunRestartOnFailure(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--restart", "on-failure:2", box, "sh", "-c", "echo run; exit 1")
	e.monitorGone(id)
	in, _ := e.inspectC(id)
	if in.State.Status != container.StateExited || in.State.ExitCode != 1 || in.RestartCount != 2 {
		t.Errorf("after on-failure:2: Status %s ExitCode %d RestartCount %d, want exited 1 2", in.State.Status, in.State.ExitCode, in.RestartCount)
	}
	if in.HostConfig.RestartPolicy.Name != container.RestartPolicyOnFailure || in.HostConfig.RestartPolicy.MaximumRetryCount != 2 {
		t.Errorf("inspect HostConfig.RestartPolicy = %+v", in.HostConfig.RestartPolicy)
	}
	if out := e.ok("logs", id); out != "run\nrun\nrun\n" {
		t.Errorf("logs = %q, want three runs", out)
	}
	// A success is not restarted.
	id = e.runD("--restart", "on-failure:2", box, "sh", "-c", "echo ok")
	e.monitorGone(id)
	if in, _ := e.inspectC(id); in.RestartCount != 0 || in.State.ExitCode != 0 {
		t.Errorf("on-failure after exit 0: RestartCount %d ExitCode %d, want 0 0", in.RestartCount, in.State.ExitCode)
	}
	for _, l := range e.leaks(id) {
		t.Errorf("a stopped container still holds: %s", l)
	}
}

// TestRunRestartAlways: always restarts whatever the exit code, and
// inspect follows (RestartCount, the new Pid); stop stops it for good.
func TestRunRestartAlways(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--restart", "always", box, "sh", "-c", "echo run; exit 0")
	waitFor(t, "four runs in the log", func() bool { return strings.Count(e.ok("logs", id), "run\n") >= 4 })
	if in, _ := e.inspectC(id); in.RestartCount < 2 {
		t.Errorf("after four runs inspect RestartCount = %d, want at least 2 (3 restarts happened)", in.RestartCount)
	}
	if out := e.ok("stop", id); out != id+"\n" {
		t.Errorf("stop printed %q, want the reference given", out)
	}
	e.monitorGone(id)
	st := e.cstate(id)
	if st.Status != container.StateExited || st.Running || st.Restarting {
		t.Errorf("after stop: %+v, want exited", st)
	}
	in1, _ := e.inspectC(id)
	// Give a wrongly surviving restart loop the chance to show.
	e.ok("run", "--rm", box, "sleep", "1")
	in2, _ := e.inspectC(id)
	if in2.State.Status != container.StateExited || in2.RestartCount != in1.RestartCount || in2.State.StartedAt != in1.State.StartedAt {
		t.Errorf("a stopped always container came back: before %+v/%d, after %+v/%d", in1.State, in1.RestartCount, in2.State, in2.RestartCount)
	}
	for _, l := range e.leaks(id) {
		t.Errorf("a stopped container still holds: %s", l)
	}

	// The first run fails, the second stays up: inspect shows the new
	// process (the container's layer keeps /tmp/once across restarts).
	id = e.runD("--restart", "always", box, "sh", "-c", "[ -f /tmp/once ] && exec sleep 1000; touch /tmp/once; exit 1")
	// The restarted shell can exec sleep 1000 before the monitor has
	// recorded the new run: wait for inspect to show that run.
	var pid int
	var in container.InspectResponse
	waitFor(t, "the restarted container's sleep 1000, running in inspect", func() bool {
		pid = 0
		for _, p := range cgroupPids(filepath.Join("/sys/fs/cgroup/pids/berth", id)) {
			if cmdline(p) == "sleep 1000" {
				pid = p
			}
		}
		if pid == 0 {
			return false
		}
		in, _ = e.inspectC(id)
		return in.State.Status != container.StateRestarting && in.RestartCount > 0
	})
	if in.State.Pid != pid || in.RestartCount != 1 || in.State.Status != container.StateRunning {
		t.Errorf("after one restart: State.Pid %d RestartCount %d Status %s, want %d (the live process), 1, running",
			in.State.Pid, in.RestartCount, in.State.Status, pid)
	}
}

// TestRunRestartStopWhileRestarting: stop during the wait before a
// restart keeps the RestartCount inspect showed while "restarting"
// (Docker counts a restart when it decides on it); it was one less.
func TestRunRestartStopWhileRestarting(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--restart", "always", box, "sh", "-c", "exit 1")
	var seen int
	waitFor(t, "restarting with RestartCount >= 3", func() bool {
		in, _ := e.inspectC(id)
		seen = in.RestartCount
		return in.State.Status == container.StateRestarting && seen >= 3
	})
	e.ok("stop", id)
	e.monitorGone(id)
	in, _ := e.inspectC(id)
	if in.State.Status != container.StateExited || in.RestartCount < seen {
		t.Errorf("after stop while restarting (RestartCount %d): Status %s RestartCount %d, want exited, at least %d",
			seen, in.State.Status, in.RestartCount, seen)
	}
}

// TestRunStopSignalAndTimeout: stop sends --stop-signal, and kills after
// --stop-timeout when the signal is ignored.
func TestRunStopSignalAndTimeout(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--stop-signal", "USR1", "--stop-timeout", "60", box, "sh", "-c",
		`trap "echo got-usr1; exit 7" USR1; echo ready; while :; do sleep 0.1; done`)
	waitFor(t, "the trap to be set", func() bool { return e.ok("logs", id) == "ready\n" })
	e.ok("stop", id)
	in, _ := e.inspectC(id)
	if in.State.ExitCode != 7 || !strings.Contains(e.ok("logs", id), "got-usr1") {
		t.Errorf("stop with --stop-signal USR1: ExitCode %d, logs %q; want 7 and got-usr1", in.State.ExitCode, e.ok("logs", id))
	}
	if !strings.Contains(in.Config.StopSignal, "USR1") || in.Config.StopTimeout == nil || *in.Config.StopTimeout != 60 {
		t.Errorf("inspect Config.StopSignal %q StopTimeout %v, want USR1 and 60", in.Config.StopSignal, in.Config.StopTimeout)
	}

	id = e.runD("--stop-timeout", "1", box, "sh", "-c", `trap "" TERM; echo ready; while :; do sleep 0.1; done`)
	waitFor(t, "the trap to be set", func() bool { return e.ok("logs", id) == "ready\n" })
	e.ok("stop", id)
	if st := e.cstate(id); st.Status != container.StateExited || st.ExitCode != 137 {
		t.Errorf("stop of a container ignoring SIGTERM: %+v, want exited 137 (killed after the timeout)", st)
	}
}

// TestRunLabels: -l sets labels; ps --filter label= selects by them.
func TestRunLabels(t *testing.T) {
	e := newCtrEnv(t)
	e.runD("--name", "web", "-l", "tier=web", "-l", "flag", box, "sleep", "1000")
	e.runD("--name", "db", "-l", "tier=db", box, "sleep", "1000")
	e.runD("--name", "plain", box, "sleep", "1000")
	in, _ := e.inspectC("web")
	if in.Config.Labels["tier"] != "web" || len(in.Config.Labels) != 2 {
		t.Errorf("inspect Config.Labels = %v, want tier=web and flag", in.Config.Labels)
	}
	if v, ok := in.Config.Labels["flag"]; !ok || v != "" {
		t.Errorf("-l flag: Labels[flag] = %q, %v; want \"\"", v, ok)
	}
	tests := []struct {
		filter string
		want   []string
	}{
		{"label=tier=web", []string{"web"}},
		{"label=tier", []string{"db", "web"}},
		{"label=flag", []string{"web"}},
		{"label=tier=none", nil},
	}
	for _, tc := range tests {
		got := lines(e.ok("ps", "--filter", tc.filter, "--format", "{{.Names}}"))
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("ps --filter %s = %q, want %q", tc.filter, got, tc.want)
		}
	}
	if got := strings.TrimSpace(e.ok("ps", "--filter", "name=web", "--format", "{{.Labels}}")); got != "flag=,tier=web" {
		t.Errorf("ps --format {{.Labels}} = %q, want \"flag=,tier=web\"", got)
	}
}

// TestContainerLongStatePath: a --state path of ordinary length works
// (unix socket paths are limited to 108 bytes; the monitor must not put
// its sockets where that limit bites).
func TestContainerLongStatePath(t *testing.T) {
	e := newCtrEnv(t)
	long := &env{t: t, dir: e.dir, root: e.root, dockCfg: e.dockCfg,
		state: filepath.Join(e.dir, "a-state-directory-with-a-rather-long-name")}
	t.Cleanup(func() {
		for _, id := range lines(long.run(nil, "ps", "-aq", "--no-trunc").stdout) {
			long.run(nil, "rm", "-f", id)
			forceClean(t, id)
		}
	})
	if r := long.run(nil, "run", "--rm", box, "echo", "ok"); r.code != 0 || r.stdout != "ok\n" {
		t.Errorf("run with --state %s (%d bytes): got %v\nwant ok", long.state, len(long.state), r)
	}
	if left := long.run(nil, "ps", "-aq").stdout; left != "" {
		t.Errorf("run --rm left %q", left)
	}
}

// containerDirs counts the container directories (64-hex names) in the
// store.
func containerDirs(t *testing.T, root string) int {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(root, "containers"))
	n := 0
	for _, de := range ents {
		if regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(de.Name()) {
			n++
		}
	}
	return n
}
