package e2e

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

// TestPs: Docker's columns, -a, -q, --no-trunc, -l, --filter and --format.
func TestPs(t *testing.T) {
	e := newCtrEnv(t)
	run := e.runD("--name", "run1", "-l", "app=x", box, "sleep", "1000")
	e.run(nil, "run", "--name", "ex1", box, "sh", "-c", "exit 3")
	ex := e.remember("ex1")
	cr := strings.TrimSpace(e.ok("create", "--name", "cr1", box, "true"))
	e.remember("cr1")

	ps := lines(e.ok("ps"))
	if len(ps) != 2 || strings.Join(strings.Fields(ps[0]), " ") != "CONTAINER ID IMAGE COMMAND CREATED STATUS PORTS NAMES" {
		t.Fatalf("ps = %q, want Docker's header and one row", ps)
	}
	cols := regexp.MustCompile(`\s{3,}`).Split(ps[1], -1)
	if len(cols) != 6 || cols[0] != run[:12] || cols[1] != box || cols[2] != `"sleep 1000"` || !strings.HasPrefix(cols[4], "Up ") || cols[5] != "run1" {
		t.Errorf("ps row = %q, want ID, image, \"sleep 1000\", created, Up..., name", cols)
	}
	// Columns line up under the header.
	if h := strings.Index(ps[0], "NAMES"); h < 0 || strings.Index(ps[1], "run1") != h {
		t.Errorf("NAMES column not aligned:\n%s\n%s", ps[0], ps[1])
	}

	if got := lines(e.ok("ps", "-a", "--format", "{{.Names}}")); !slices.Equal(got, []string{"cr1", "ex1", "run1"}) {
		t.Errorf("ps -a names = %q, want newest first: cr1 ex1 run1", got)
	}
	if got := lines(e.ok("ps", "-q")); !slices.Equal(got, []string{run[:12]}) {
		t.Errorf("ps -q = %q, want %s", got, run[:12])
	}
	if got := lines(e.ok("ps", "-aq", "--no-trunc")); !slices.Equal(got, []string{cr, ex, run}) {
		t.Errorf("ps -aq --no-trunc = %q", got)
	}
	if got := lines(e.ok("ps", "-lq")); !slices.Equal(got, []string{cr[:12]}) {
		t.Errorf("ps -lq = %q, want the latest %s", got, cr[:12])
	}
	if got := lines(e.ok("ps", "-n", "2", "--format", "{{.Names}}")); !slices.Equal(got, []string{"cr1", "ex1"}) {
		t.Errorf("ps -n 2 = %q", got)
	}
	st := lines(e.ok("ps", "-a", "--format", "{{.Names}} {{.Status}}"))
	if len(st) != 3 || st[0] != "cr1 Created" || !strings.HasPrefix(st[1], "ex1 Exited (3) ") || !strings.HasSuffix(st[1], " ago") || !strings.HasPrefix(st[2], "run1 Up ") {
		t.Errorf("ps -a --format '{{.Names}} {{.Status}}' = %q", st)
	}
	filters := []struct {
		args []string
		want []string
	}{
		{[]string{"-a", "--filter", "status=exited"}, []string{"ex1"}},
		{[]string{"-a", "--filter", "status=created"}, []string{"cr1"}},
		{[]string{"-a", "--filter", "status=running"}, []string{"run1"}},
		{[]string{"-a", "--filter", "exited=3"}, []string{"ex1"}},
		{[]string{"-a", "--filter", "name=ex"}, []string{"ex1"}},
		{[]string{"-a", "--filter", "name=1"}, []string{"cr1", "ex1", "run1"}},
		{[]string{"-a", "--filter", "label=app=x"}, []string{"run1"}},
		{[]string{"-a", "--filter", "id=" + ex[:6]}, []string{"ex1"}},
		{[]string{"-a", "--filter", "ancestor=" + box}, []string{"cr1", "ex1", "run1"}},
		{[]string{"-a", "--filter", "status=exited", "--filter", "status=created"}, []string{"cr1", "ex1"}},
		{[]string{"--filter", "status=exited"}, []string{"ex1"}},
	}
	for _, f := range filters {
		args := append(append([]string{"ps"}, f.args...), "--format", "{{.Names}}")
		if got := lines(e.ok(args...)); !slices.Equal(got, f.want) {
			t.Errorf("ps %v = %q, want %q", f.args, got, f.want)
		}
	}
	if r := e.run(nil, "ps", "--filter", "status=nonsense"); r.code == 0 {
		t.Errorf("ps --filter status=nonsense: got %v, want a failure", r)
	}
	if got := strings.TrimSpace(e.ok("ps", "--format", "{{.ID}}|{{.Image}}|{{.Command}}|{{.Labels}}")); got != run[:12]+`|e2e/box|"sleep 1000"|app=x` {
		t.Errorf("ps --format with ID/Image/Command/Labels = %q", got)
	}
}

// TestStopKillRestartStart: stop (SIGTERM, then SIGKILL after -t), kill -s,
// restart and start, seen in State and inside.
func TestStopKillRestartStart(t *testing.T) {
	e := newCtrEnv(t)
	trap := `trap "echo got-term; exit 0" TERM; trap "echo got-usr1" USR1; echo ready; while :; do sleep 0.1; done`
	e.runD("--name", "trapper", box, "sh", "-c", trap)
	waitFor(t, "the traps to be set", func() bool { return e.ok("logs", "trapper") == "ready\n" })
	if out := e.ok("kill", "-s", "USR1", "trapper"); out != "trapper\n" {
		t.Errorf("kill printed %q", out)
	}
	waitFor(t, "USR1 to be handled", func() bool { return strings.Contains(e.ok("logs", "trapper"), "got-usr1") })
	if st := e.cstate("trapper"); !st.Running {
		t.Errorf("kill -s USR1 stopped the container: %+v", st)
	}
	before := e.cstate("trapper")
	if out := e.ok("stop", "trapper"); out != "trapper\n" {
		t.Errorf("stop printed %q", out)
	}
	after := e.cstate("trapper")
	if after.Status != container.StateExited || after.ExitCode != 0 || !strings.Contains(e.ok("logs", "trapper"), "got-term") {
		t.Errorf("stop of a container handling SIGTERM: %+v, logs %q; want exited 0 and got-term", after, e.ok("logs", "trapper"))
	}
	if alive(before.Pid) {
		t.Errorf("the stopped container's process %d still lives", before.Pid)
	}
	started, _ := time.Parse(time.RFC3339Nano, after.StartedAt)
	finished, err := time.Parse(time.RFC3339Nano, after.FinishedAt)
	if err != nil || finished.Before(started) {
		t.Errorf("FinishedAt %q is not after StartedAt %q", after.FinishedAt, after.StartedAt)
	}
	id := e.remember("trapper")
	for _, l := range e.leaks(id) {
		t.Errorf("a stopped container still holds: %s", l)
	}

	// sleep as pid 1 ignores SIGTERM: stop kills it after -t.
	e.runD("--name", "sleeper", box, "sleep", "1000")
	e.ok("stop", "-t", "1", "sleeper")
	if st := e.cstate("sleeper"); st.Status != container.StateExited || st.ExitCode != 137 {
		t.Errorf("stop -t 1 of a container ignoring SIGTERM: %+v, want exited 137", st)
	}
	if r := e.run(nil, "kill", "sleeper"); r.code == 0 || !strings.Contains(r.stderr, "is not running") {
		t.Errorf("kill of a stopped container: got %v, want \"... is not running\"", r)
	}
	if out := e.ok("stop", "sleeper"); out != "sleeper\n" {
		t.Errorf("stop of a stopped container printed %q, want the name (no error, as Docker)", out)
	}

	// start runs it again; start -a attaches and passes the exit code.
	if out := e.ok("start", "sleeper"); out != "sleeper\n" {
		t.Errorf("start printed %q", out)
	}
	st := e.cstate("sleeper")
	if !st.Running || !alive(st.Pid) || cmdline(st.Pid) != "sleep 1000" {
		t.Errorf("after start: %+v", st)
	}
	e.ok("kill", "sleeper")
	if st := e.cstate("sleeper"); st.ExitCode != 137 || st.Running {
		t.Errorf("kill (SIGKILL): %+v, want exited 137", st)
	}
	e.run(nil, "run", "--name", "twice", box, "sh", "-c", "echo run; exit 5")
	e.remember("twice")
	r := e.run(nil, "start", "-a", "twice")
	if r.code != 5 || r.stdout != "run\n" {
		t.Errorf("start -a of an exited container: got %v, want its output and exit 5", r)
	}

	// restart: a new process, a new StartedAt, the same container.
	id = e.runD("--name", "rs", box, "sleep", "1000")
	before = e.cstate("rs")
	if out := e.ok("restart", "-t", "1", "rs"); out != "rs\n" {
		t.Errorf("restart printed %q", out)
	}
	after = e.cstate("rs")
	if !after.Running || after.Pid == before.Pid || after.StartedAt == before.StartedAt || alive(before.Pid) || !alive(after.Pid) {
		t.Errorf("restart: before %+v after %+v; want a new live process", before, after)
	}
	if got := e.remember("rs"); got != id {
		t.Errorf("restart changed the ID: %s -> %s", id, got)
	}
	for _, verb := range []string{"stop", "kill", "restart", "start", "pause", "unpause"} {
		if r := e.run(nil, verb, "nosuch"); r.code == 0 || !strings.Contains(r.stderr, "No such container: nosuch") {
			t.Errorf("%s nosuch: got %v, want \"No such container: nosuch\"", verb, r)
		}
	}
}

// TestPauseUnpause: pause freezes every process (a counter stops, the
// freezer says FROZEN, ps says Paused); unpause resumes it.
func TestPauseUnpause(t *testing.T) {
	e := newCtrEnv(t)
	out := filepath.Join(e.dir, "out")
	id := e.runD("-v", out+":/out", box, "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /out/n.tmp; mv /out/n.tmp /out/n; sleep 0.05; done")
	read := func() int {
		b, _ := os.ReadFile(filepath.Join(out, "n"))
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	waitFor(t, "the counter to count", func() bool { return read() > 2 })
	if o := e.ok("pause", id); o != id+"\n" {
		t.Errorf("pause printed %q", o)
	}
	st := e.cstate(id)
	if st.Status != container.StatePaused || !st.Paused || !st.Running {
		t.Errorf("after pause State = %+v, want paused, Paused and Running true", st)
	}
	if f := cgroupFile(t, id, "freezer", "freezer.state"); f != "FROZEN" {
		t.Errorf("freezer.state = %q, want FROZEN", f)
	}
	if s := e.ok("ps", "--format", "{{.Status}}"); !strings.Contains(s, "(Paused)") {
		t.Errorf("ps Status of a paused container = %q, want ... (Paused)", s)
	}
	n1 := read()
	time.Sleep(500 * time.Millisecond) // ten counter periods
	if n2 := read(); n2 != n1 {
		t.Errorf("the counter moved while paused: %d -> %d", n1, n2)
	}
	if r := e.run(nil, "pause", id); r.code == 0 {
		t.Errorf("pause of a paused container: got %v, want an error", r)
	}
	e.ok("unpause", id)
	if f := cgroupFile(t, id, "freezer", "freezer.state"); f != "THAWED" {
		t.Errorf("after unpause freezer.state = %q, want THAWED", f)
	}
	waitFor(t, "the counter to move again", func() bool { return read() > n1 })
	if st := e.cstate(id); st.Status != container.StateRunning || st.Paused {
		t.Errorf("after unpause State = %+v", st)
	}
	// A paused container can be stopped.
	e.ok("pause", id)
	e.ok("stop", "-t", "1", id)
	if st := e.cstate(id); st.Status != container.StateExited {
		t.Errorf("stop of a paused container: %+v, want exited", st)
	}
	for _, l := range e.leaks(id) {
		t.Errorf("after stopping a paused container: %s", l)
	}
}

// TestWait: wait blocks until exit and prints the code, for several
// containers and for one already stopped.
func TestWait(t *testing.T) {
	e := newCtrEnv(t)
	ctl := filepath.Join(e.dir, "ctl")
	os.MkdirAll(ctl, 0o755)
	e.runD("--name", "w42", "-v", ctl+":/ctl", box, "sh", "-c", "while [ ! -f /ctl/go ]; do sleep 0.05; done; exit 42")
	e.runD("--name", "w7", box, "sh", "-c", "exit 7")
	w := e.start("wait", "w42", "w7")
	time.Sleep(300 * time.Millisecond)
	if w.exited() {
		t.Errorf("wait returned while w42 still runs: %q", w.stdout)
	}
	os.WriteFile(filepath.Join(ctl, "go"), nil, 0o644)
	if code := w.wait(t); code != 0 || w.stdout.String() != "42\n7\n" {
		t.Errorf("wait w42 w7: exit %d, stdout %q, stderr %q; want 42 and 7", code, w.stdout, w.stderr)
	}
	if out := e.ok("wait", "w7"); out != "7\n" {
		t.Errorf("wait of an exited container printed %q", out)
	}
	if r := e.run(nil, "wait", "nosuch"); r.code == 0 || !strings.Contains(r.stderr, "No such container: nosuch") {
		t.Errorf("wait nosuch: %v", r)
	}
}

// TestRm: rm refuses a running container, -f kills and removes it, -v
// removes its anonymous volumes; nothing of it is left.
func TestRm(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--name", "busy", box, "sleep", "1000")
	r := e.run(nil, "rm", "busy")
	if r.code == 0 || !strings.Contains(r.stderr, "stop the container before removing or force remove") {
		t.Errorf("rm of a running container: got %v, want Docker's refusal", r)
	}
	if st := e.cstate("busy"); !st.Running {
		t.Errorf("a refused rm changed the container: %+v", st)
	}
	pid := e.cstate("busy").Pid
	if out := e.ok("rm", "-f", "busy"); out != "busy\n" {
		t.Errorf("rm -f printed %q", out)
	}
	if alive(pid) {
		t.Errorf("rm -f left the container's process %d", pid)
	}
	if r := e.run(nil, "inspect", "busy"); r.code == 0 {
		t.Errorf("inspect after rm -f: %v", r)
	}
	for _, l := range e.leaks(id) {
		t.Errorf("after rm -f: %s", l)
	}
	if _, err := os.Stat(filepath.Join(e.root, "containers", id)); err == nil {
		t.Errorf("rm -f left %s", filepath.Join(e.root, "containers", id))
	}

	// Anonymous volumes: kept by rm, removed by rm -v.
	e.runD("--name", "anon1", "-v", "/anon", box, "sleep", "1000")
	e.runD("--name", "anon2", "-v", "/anon", box, "sleep", "1000")
	vols := lines(e.ok("volume", "ls", "-q"))
	if len(vols) != 2 {
		t.Fatalf("two containers with -v /anon: volume ls -q = %q, want two anonymous volumes", vols)
	}
	e.ok("rm", "-f", "anon1")
	if got := lines(e.ok("volume", "ls", "-q")); len(got) != 2 {
		t.Errorf("rm without -v removed an anonymous volume: %q", got)
	}
	e.ok("rm", "-f", "-v", "anon2")
	if got := lines(e.ok("volume", "ls", "-q")); len(got) != 1 {
		t.Errorf("rm -v kept the anonymous volume: %q", got)
	}
	e.runD("--name", "x1", box, "true")
	e.runD("--name", "x2", box, "true")
	if out := e.ok("rm", "-f", "x1", "x2"); out != "x1\nx2\n" {
		t.Errorf("rm -f x1 x2 printed %q", out)
	}
	if r := e.run(nil, "rm", "nosuch"); r.code == 0 || !strings.Contains(r.stderr, "No such container: nosuch") {
		t.Errorf("rm nosuch: %v", r)
	}
}

// TestRename: rename changes the name (inspect, ps, lookups); a name in use
// or a missing container is refused.
func TestRename(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--name", "old", box, "sleep", "1000")
	e.runD("--name", "taken", box, "sleep", "1000")
	if out := e.ok("rename", "old", "new"); out != "" {
		t.Errorf("rename printed %q, want nothing", out)
	}
	in, _ := e.inspectC("new")
	if in.Name != "/new" || in.ID != id {
		t.Errorf("after rename: Name %q Id %s", in.Name, in.ID)
	}
	if r := e.run(nil, "inspect", "--type", "container", "old"); r.code == 0 {
		t.Errorf("the old name still resolves: %v", r)
	}
	if got := lines(e.ok("ps", "--filter", "id="+id, "--format", "{{.Names}}")); !slices.Equal(got, []string{"new"}) {
		t.Errorf("ps shows %q after rename", got)
	}
	if r := e.run(nil, "rename", "new", "taken"); r.code == 0 || !strings.Contains(r.stderr, "already in use") {
		t.Errorf("rename to a name in use: %v", r)
	}
	if r := e.run(nil, "rename", "nosuch", "other"); r.code == 0 || !strings.Contains(r.stderr, "No such container: nosuch") {
		t.Errorf("rename nosuch: %v", r)
	}
	// The old name is free again.
	e.runD("--name", "old", box, "sleep", "1000")
}

// TestInspectShape: inspect has Docker's JSON shape and values for a
// running and then a stopped container.
func TestInspectShape(t *testing.T) {
	e := newCtrEnv(t)
	host := filepath.Join(e.dir, "h")
	os.MkdirAll(host, 0o755)
	imageID := strings.TrimSpace(e.ok("image", "inspect", "-f", "{{.Id}}", box))
	id := e.runD("--name", "insp", "-v", host+":/h:ro", "-v", "named:/data", "-e", "X=1", "-l", "k=v", box, "sleep", "1000")
	in, raw := e.inspectC("insp")
	for _, k := range []string{"Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath", "HostsPath",
		"LogPath", "Name", "RestartCount", "Driver", "Platform", "MountLabel", "ProcessLabel", "AppArmorProfile", "ExecIDs",
		"HostConfig", "Mounts", "Config", "NetworkSettings"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("inspect lacks the top-level key %s", k)
		}
	}
	stateKeys := []string{"Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode", "Error", "StartedAt", "FinishedAt"}
	for _, k := range stateKeys {
		if _, ok := raw["State"].(map[string]any)[k]; !ok {
			t.Errorf("inspect State lacks %s", k)
		}
	}
	for _, k := range []string{"Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
		"StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir", "Entrypoint", "Labels"} {
		if _, ok := raw["Config"].(map[string]any)[k]; !ok {
			t.Errorf("inspect Config lacks %s", k)
		}
	}
	if in.ID != id || in.Name != "/insp" || in.Image != imageID || in.Config.Image != box || in.Path != "sleep" || !slices.Equal(in.Args, []string{"1000"}) {
		t.Errorf("inspect: Id %s Name %q Image %q Config.Image %q Path %q Args %q", in.ID, in.Name, in.Image, in.Config.Image, in.Path, in.Args)
	}
	created, err1 := time.Parse(time.RFC3339Nano, in.Created)
	started, err2 := time.Parse(time.RFC3339Nano, in.State.StartedAt)
	if err1 != nil || err2 != nil || started.Before(created) {
		t.Errorf("Created %q StartedAt %q: want RFC 3339 times, started after created", in.Created, in.State.StartedAt)
	}
	if st := in.State; st.Status != container.StateRunning || !st.Running || st.Paused || st.Restarting || st.OOMKilled || st.Dead ||
		st.ExitCode != 0 || !alive(st.Pid) || st.FinishedAt != "0001-01-01T00:00:00Z" {
		t.Errorf("State of a running container = %+v", *st)
	}
	if !slices.Contains(in.Config.Env, "X=1") || in.Config.Labels["k"] != "v" || !slices.Equal(in.Config.Cmd, []string{"sleep", "1000"}) {
		t.Errorf("Config Env %q Labels %v Cmd %q", in.Config.Env, in.Config.Labels, in.Config.Cmd)
	}
	if !slices.Equal(in.HostConfig.Binds, []string{host + ":/h:ro", "named:/data"}) {
		t.Errorf("HostConfig.Binds = %q", in.HostConfig.Binds)
	}
	if in.LogPath == "" {
		t.Errorf("LogPath is empty")
	} else if _, err := os.Stat(in.LogPath); err != nil {
		t.Errorf("LogPath %s: %v", in.LogPath, err)
	}
	mounts := map[string]container.MountPoint{}
	for _, m := range in.Mounts {
		mounts[m.Destination] = m
	}
	if m := mounts["/h"]; m.Type != "bind" || m.Source != host || m.RW || m.Mode != "ro" {
		t.Errorf("Mounts[/h] = %+v, want a read-only bind of %s", m, host)
	}
	if m := mounts["/data"]; m.Type != "volume" || m.Name != "named" || m.Driver != "local" || !m.RW || m.Source == "" {
		t.Errorf("Mounts[/data] = %+v, want the named volume", m)
	}
	if out := e.ok("inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.Running}}", "insp"); out != "/insp running true\n" {
		t.Errorf("inspect -f = %q", out)
	}
	if out := e.ok("container", "inspect", "-f", "{{.Config.Hostname}}", "insp"); out != id[:12]+"\n" {
		t.Errorf("container inspect -f {{.Config.Hostname}} = %q", out)
	}

	e.ok("stop", "-t", "0", "insp")
	in, _ = e.inspectC("insp")
	finished, err := time.Parse(time.RFC3339Nano, in.State.FinishedAt)
	if st := in.State; st.Status != container.StateExited || st.Running || st.Pid != 0 || st.ExitCode != 137 || err != nil || finished.Before(started) {
		t.Errorf("State of a stopped container = %+v, want exited 137, Pid 0, FinishedAt after StartedAt", *st)
	}
	e.runD("--name", "insp2", box, "sleep", "1000")
	if out := e.ok("inspect", "-f", "{{.Name}}", "insp", "insp2"); out != "/insp\n/insp2\n" {
		t.Errorf("inspect of two containers = %q", out)
	}
	if r := e.run(nil, "inspect", "nosuch"); r.code == 0 || !strings.Contains(r.stderr, "No such object: nosuch") {
		t.Errorf("inspect nosuch: %v", r)
	}
}

// TestTop: top lists the container's processes with ps -ef's columns.
func TestTop(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD(box, "sh", "-c", "sleep 1001 & exec sleep 1000")
	e.waitTree(id, "sleep 1000", "sleep 1001")
	out := lines(e.ok("top", id))
	if len(out) != 3 || strings.Join(strings.Fields(out[0]), " ") != "UID PID PPID C STIME TTY TIME CMD" {
		t.Fatalf("top = %q, want ps -ef's header and two processes", out)
	}
	pid := strconv.Itoa(e.cstate(id).Pid)
	var cmds []string
	for _, l := range out[1:] {
		f := strings.Fields(l)
		cmds = append(cmds, strings.Join(f[7:], " "))
		if f[0] != "root" {
			t.Errorf("top row %q: UID %s, want root", l, f[0])
		}
		if strings.Join(f[7:], " ") == "sleep 1000" && f[1] != pid {
			t.Errorf("top: sleep 1000 has PID %s, want State.Pid %s (host pids)", f[1], pid)
		}
	}
	slices.Sort(cmds)
	if !slices.Equal(cmds, []string{"sleep 1000", "sleep 1001"}) {
		t.Errorf("top CMDs = %q", cmds)
	}
	e.ok("stop", "-t", "0", id)
	if r := e.run(nil, "top", id); r.code == 0 || !strings.Contains(r.stderr, "is not running") {
		t.Errorf("top of a stopped container: %v", r)
	}
}

// TestStats: stats --no-stream prints Docker's columns once, with the
// memory usage and limit from the cgroup.
func TestStats(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--name", "st1", "-m", "64m", box, "sh", "-c", "sleep 1001 & exec sleep 1000")
	e.runD("--name", "st2", box, "sleep", "1000")
	e.waitTree(id, "sleep 1000", "sleep 1001")
	out := lines(e.ok("stats", "--no-stream"))
	if len(out) != 3 || strings.Join(strings.Fields(out[0]), " ") != "CONTAINER ID NAME CPU % MEM USAGE / LIMIT MEM % NET I/O BLOCK I/O PIDS" {
		t.Fatalf("stats --no-stream = %q, want Docker's header and two rows", out)
	}
	var row []string
	for _, l := range out[1:] {
		if strings.HasPrefix(l, id[:12]) {
			row = regexp.MustCompile(`\s{2,}`).Split(l, -1)
		}
	}
	if len(row) != 8 {
		t.Fatalf("stats row of st1 = %q, want 8 columns", row)
	}
	if row[1] != "st1" || !regexp.MustCompile(`^\d+\.\d\d%$`).MatchString(row[2]) || row[7] != "2" {
		t.Errorf("stats row = %q: want name st1, a CPU %%, 2 pids", row)
	}
	// Docker prints memory in binary units: "1.5MiB / 64MiB".
	m := regexp.MustCompile(`^([0-9.]+)(B|KiB|MiB|GiB) / 64MiB$`).FindStringSubmatch(row[3])
	if m == nil {
		t.Errorf("stats MEM USAGE / LIMIT = %q, want \"N(KiB|MiB) / 64MiB\"", row[3])
	} else if v, _ := strconv.ParseFloat(m[1], 64); v <= 0 {
		t.Errorf("stats memory usage %q is not positive", row[3])
	}
	usage, _ := strconv.ParseInt(cgroupFile(t, id, "memory", "memory.usage_in_bytes"), 10, 64)
	if usage <= 0 {
		t.Errorf("memory.usage_in_bytes = %d", usage)
	}
	if got := lines(e.ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "st1")); !slices.Equal(got, []string{"st1 2"}) {
		t.Errorf("stats --format '{{.Name}} {{.PIDs}}' st1 = %q", got)
	}
	if r := e.run(nil, "stats", "--no-stream", "nosuch"); r.code == 0 || !strings.Contains(r.stderr, "No such container: nosuch") {
		t.Errorf("stats nosuch: %v", r)
	}
}

// TestLogs: stdout and stderr kept apart, --tail, -t, --since/--until,
// -f until the container exits, and size rotation.
func TestLogs(t *testing.T) {
	e := newCtrEnv(t)
	// The monitor reads stdout and stderr from two pipes and stamps a line
	// when it reads it: lines written close together on the two streams
	// may be stamped in either order. The container writes each line once
	// the test has seen the one before in the log.
	lgctl := filepath.Join(e.dir, "lgctl")
	os.MkdirAll(lgctl, 0o755)
	lg := e.runD("--name", "lg", "-v", lgctl+":/ctl", box, "sh", "-c",
		"echo o1; until [ -f /ctl/1 ]; do sleep 0.05; done; echo e1 >&2; until [ -f /ctl/2 ]; do sleep 0.05; done; echo o2; until [ -f /ctl/3 ]; do sleep 0.05; done; echo e2 >&2")
	for i, want := range []struct{ stdout, stderr string }{{"o1\n", ""}, {"o1\n", "e1\n"}, {"o1\no2\n", "e1\n"}} {
		waitFor(t, "the log to hold "+strconv.Quote(want.stdout)+" and "+strconv.Quote(want.stderr), func() bool {
			r := e.run(nil, "logs", "lg")
			return r.stdout == want.stdout && r.stderr == want.stderr
		})
		os.WriteFile(filepath.Join(lgctl, strconv.Itoa(i+1)), nil, 0o644)
	}
	e.ok("wait", lg)
	r := e.run(nil, "logs", "lg")
	if r.stdout != "o1\no2\n" || r.stderr != "e1\ne2\n" {
		t.Errorf("logs: stdout %q stderr %q, want o1 o2 and e1 e2 apart", r.stdout, r.stderr)
	}
	tails := []struct{ n, stdout, stderr string }{
		{"1", "", "e2\n"},
		{"2", "o2\n", "e2\n"},
		{"0", "", ""},
		{"all", "o1\no2\n", "e1\ne2\n"},
	}
	for _, tc := range tails {
		if r := e.run(nil, "logs", "--tail", tc.n, "lg"); r.stdout != tc.stdout || r.stderr != tc.stderr {
			t.Errorf("logs --tail %s: stdout %q stderr %q, want %q %q", tc.n, r.stdout, r.stderr, tc.stdout, tc.stderr)
		}
	}
	ts := lines(e.ok("logs", "-t", "lg"))
	if len(ts) != 2 {
		t.Fatalf("logs -t stdout = %q", ts)
	}
	stamps := make([]time.Time, 2)
	for i, l := range ts {
		stamp, text, _ := strings.Cut(l, " ")
		at, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil || text != []string{"o1", "o2"}[i] || !strings.HasSuffix(stamp, "Z") {
			t.Fatalf("logs -t line %q: want an RFC 3339 UTC time, a space and the line", l)
		}
		stamps[i] = at
	}
	after := stamps[0].Add(time.Nanosecond).Format(time.RFC3339Nano)
	if r := e.run(nil, "logs", "--since", after, "lg"); r.stdout != "o2\n" || r.stderr != "e1\ne2\n" {
		t.Errorf("logs --since %s: stdout %q stderr %q, want o2 / e1 e2", after, r.stdout, r.stderr)
	}
	if r := e.run(nil, "logs", "--until", after, "lg"); r.stdout != "o1\n" || r.stderr != "" {
		t.Errorf("logs --until %s: stdout %q stderr %q, want o1 only", after, r.stdout, r.stderr)
	}
	if r := e.run(nil, "logs", "--since", "1h", "lg"); r.stdout != "o1\no2\n" {
		t.Errorf("logs --since 1h: %q", r.stdout)
	}
	if r := e.run(nil, "logs", "--since", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10), "lg"); r.stdout != "" || r.stderr != "" {
		t.Errorf("logs --since an hour ahead: %v", r)
	}
	if r := e.run(nil, "logs", "--since", "yesterday-ish", "lg"); r.code == 0 || !strings.Contains(r.stderr, "--since") {
		t.Errorf("logs --since nonsense: %v", r)
	}

	// -f follows until the container exits.
	ctl := filepath.Join(e.dir, "ctl")
	os.MkdirAll(ctl, 0o755)
	e.runD("--name", "fl", "-v", ctl+":/ctl", box, "sh", "-c", "echo one; while [ ! -f /ctl/go ]; do sleep 0.05; done; echo two; echo err-two >&2")
	f := e.start("logs", "-f", "fl")
	waitFor(t, "logs -f to show the first line", func() bool { return f.stdout.String() == "one\n" })
	if f.exited() {
		t.Fatalf("logs -f returned while the container runs: %q", f.stdout)
	}
	os.WriteFile(filepath.Join(ctl, "go"), nil, 0o644)
	if code := f.wait(t); code != 0 || f.stdout.String() != "one\ntwo\n" || f.stderr.String() != "err-two\n" {
		t.Errorf("logs -f: exit %d stdout %q stderr %q, want one two / err-two and exit 0 when the container ends", code, f.stdout, f.stderr)
	}
	if r := e.run(nil, "logs", "-f", "fl"); r.code != 0 || r.stdout != "one\ntwo\n" {
		t.Errorf("logs -f of a stopped container: %v", r)
	}

	// Rotation: at most max-file files of about max-size each; logs shows
	// the newest lines.
	id := e.runD("--name", "rot", "--log-opt", "max-size=10k", "--log-opt", "max-file=2", box, "sh", "-c",
		"i=0; while [ $i -lt 2000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done")
	e.ok("wait", id)
	files, _ := filepath.Glob(filepath.Join(e.root, "containers", id, id+"-json.log*"))
	total := int64(0)
	for _, p := range files {
		if fi, err := os.Stat(p); err == nil {
			total += fi.Size()
		}
	}
	if len(files) != 2 || total > 40<<10 {
		t.Errorf("rotation with max-size=10k max-file=2: %d files, %d bytes: %q", len(files), total, files)
	}
	if got := lines(e.ok("logs", "--tail", "1", "rot")); !slices.Equal(got, []string{"line-1999-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}) {
		t.Errorf("logs --tail 1 after rotation = %q", got)
	}
	if r := e.run(nil, "run", "--rm", "--log-opt", "max-size=lots", box, "true"); r.code != 125 || !strings.Contains(r.stderr, "max-size") {
		t.Errorf("--log-opt max-size=lots: %v", r)
	}
}

// TestExec: exec runs in the container's namespaces, cgroup and security
// settings; -e -w -u -i -t -d; its exit code comes back.
func TestExec(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--name", "ex", "--cap-drop", "NET_RAW", "--security-opt", "no-new-privileges", box, "sleep", "1000")
	if r := e.run(nil, "exec", "ex", "echo", "hi"); r.code != 0 || r.stdout != "hi\n" {
		t.Fatalf("exec ex echo hi: got %v, want hi", r)
	}
	if r := e.run(nil, "exec", "ex", "sh", "-c", "echo out; echo err >&2; exit 9"); r.code != 9 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Errorf("exec with exit 9: got %v, want exit 9 and the streams apart", r)
	}
	pid := e.cstate(id).Pid
	for _, ns := range []string{"pid", "net", "ipc", "uts", "mnt", "cgroup", "user"} {
		if got, want := strings.TrimSpace(e.ok("exec", "ex", "readlink", "/proc/self/ns/"+ns)), nsLink(t, pid, ns); got != want {
			t.Errorf("exec's %s namespace %s, want the container's %s", ns, got, want)
		}
	}
	if got, want := e.ok("exec", "ex", "cat", "/proc/self/cgroup"), e.sh(id, "cat /proc/1/cgroup"); got != want {
		t.Errorf("exec's cgroups:\n%s\nwant the container's:\n%s", got, want)
	}
	execStatus := e.ok("exec", "ex", "cat", "/proc/self/status")
	initStatus := procStatus(t, pid)
	for _, f := range []string{"CapEff", "CapBnd", "CapPrm", "Seccomp", "NoNewPrivs"} {
		if statusField(execStatus, f) != statusField(initStatus, f) {
			t.Errorf("exec's %s = %s, the container's %s", f, statusField(execStatus, f), statusField(initStatus, f))
		}
	}
	if statusField(execStatus, "NoNewPrivs") != "1" || statusField(execStatus, "CapEff") != "00000000a80405fb" {
		t.Errorf("exec: NoNewPrivs %s CapEff %s, want 1 and the container's set without NET_RAW", statusField(execStatus, "NoNewPrivs"), statusField(execStatus, "CapEff"))
	}

	env := lines(e.ok("exec", "-e", "X=1", "-e", "IMG=over", "ex", "env"))
	if !slices.Contains(env, "X=1") || !slices.Contains(env, "IMG=over") || !slices.Contains(env, "HOSTNAME="+id[:12]) {
		t.Errorf("exec -e: env = %q, want X=1, IMG=over and the container's HOSTNAME", env)
	}
	if out := e.ok("exec", "-w", "/tmp", "ex", "pwd"); out != "/tmp\n" {
		t.Errorf("exec -w /tmp: %q", out)
	}
	if out := e.ok("exec", "-u", "alice:devs", "ex", "id", "-u"); out != "1001\n" {
		t.Errorf("exec -u alice:devs id -u: %q", out)
	}
	if out := e.ok("exec", "-u", "user", "ex", "id", "-g"); out != "1000\n" {
		t.Errorf("exec -u user id -g: %q", out)
	}
	if out := e.okIn("piped\ndata\n", "exec", "-i", "ex", "cat"); out != "piped\ndata\n" {
		t.Errorf("exec -i cat: %q", out)
	}
	if r := e.run(strings.NewReader("ignored\n"), "exec", "ex", "cat"); r.code != 0 || r.stdout != "" {
		t.Errorf("exec without -i reads stdin: %v", r)
	}
	out, code := e.runScript("", "exec", "-t", "ex", "sh", "-c", "tty; exit 3")
	if code != 3 || !strings.Contains(out, "/dev/pts/") {
		t.Errorf("exec -t: exit %d output %q, want a pty and exit 3", code, out)
	}
	if out := e.ok("exec", "-d", "ex", "sh", "-c", "sleep 0.2; echo done > /tmp/flag"); out != "" {
		t.Errorf("exec -d printed %q", out)
	}
	waitFor(t, "the detached exec to finish", func() bool {
		o, _, _ := e.shAny(id, "cat /tmp/flag")
		return o == "done\n"
	})
	if r := e.run(nil, "exec", "ex", "nosuchcmd"); r.code != 127 {
		t.Errorf("exec of a missing command: %v, want exit 127", r)
	}
	if r := e.run(nil, "exec", "ex", "/etc/passwd"); r.code != 126 {
		t.Errorf("exec of a non-executable file: %v, want exit 126", r)
	}
	// The same through a runtime command named with --runtime, where exec
	// runs it rather than the runtime library in-process.
	rt := filepath.Join(filepath.Dir(berthBin), "berth-runtime")
	if r := e.run(nil, "--runtime", rt, "exec", "ex", "sh", "-c", "echo via; exit 5"); r.code != 5 || r.stdout != "via\n" {
		t.Errorf("exec with --runtime: %v, want via and exit 5", r)
	}
	if r := e.run(nil, "--runtime", rt, "exec", "ex", "nosuchcmd"); r.code != 127 || !strings.Contains(r.stderr, "executable file not found") {
		t.Errorf("exec of a missing command with --runtime: %v, want exit 127 and why", r)
	}
	if r := e.run(nil, "exec", "ex", "nosuchcmd"); !strings.Contains(r.stderr, `exec: "nosuchcmd": executable file not found in $PATH`) {
		t.Errorf("exec of a missing command: stderr %q, want the runtime's reason", r.stderr)
	}
	// Docker's daemon refuses an exec in a paused container before the
	// exec exists: "Container ex is paused, unpause the container before
	// exec", exit 1 (dockerd 20.10 with the docker 28 CLI); no process
	// file, no exec_create event.
	e.ok("pause", "ex")
	since := time.Now().Unix()
	if r := e.run(nil, "exec", "ex", "echo", "refused"); r.code != 1 || !strings.Contains(r.stderr, "Container ex is paused, unpause the container before exec") {
		t.Errorf("exec in a paused container: %v, want exit 1 and Docker's message", r)
	}
	if r := e.run(nil, "exec", id[:12], "true"); r.code != 1 || !strings.Contains(r.stderr, "Container "+id[:12]+" is paused") {
		t.Errorf("exec in a paused container by short id: %v, want exit 1 naming it as given", r)
	}
	if left, _ := filepath.Glob(filepath.Join(e.state, "containers", id, "exec-*")); len(left) > 0 {
		t.Errorf("a refused exec left %v", left)
	}
	r := e.run(nil, "events", "--since", strconv.FormatInt(since, 10), "--until", strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10),
		"--filter", "container=ex", "--format", "{{.Action}}")
	if r.code != 0 || strings.Contains(r.stdout, "refused") {
		t.Errorf("events of a refused exec: %v, want none", r)
	}
	e.ok("unpause", "ex")
	e.ok("stop", "-t", "0", "ex")
	if r := e.run(nil, "exec", "ex", "true"); r.code != 1 || !strings.Contains(r.stderr, "is not running") {
		t.Errorf("exec in a stopped container: %v, want exit 1 (Docker's daemon error)", r)
	}
	if r := e.run(nil, "exec", "nosuch", "true"); r.code != 1 || !strings.Contains(r.stderr, "No such container: nosuch") {
		t.Errorf("exec nosuch: %v, want exit 1 (Docker's daemon error)", r)
	}
	// exec in a container sharing the host's pid namespace.
	e.runD("--name", "pidhost", "--pid", "host", box, "sleep", "1000")
	if r := e.run(nil, "exec", "pidhost", "echo", "ok"); r.code != 0 || r.stdout != "ok\n" {
		t.Errorf("exec in a --pid host container: %v", r)
	}
}

// TestAttach: attach relays stdin and output and returns the container's
// exit code; --no-stdin only watches.
func TestAttach(t *testing.T) {
	e := newCtrEnv(t)
	e.runD("-i", "--name", "att", box, "sh", "-c", "read l; echo got:$l; echo err:$l >&2; exit 4")
	// What is written before attach connects waits in the pipe.
	a := e.start("attach", "att")
	if _, err := a.stdin.Write([]byte("hi\n")); err != nil {
		t.Fatalf("write to attach: %v", err)
	}
	if code := a.wait(t); code != 4 || a.stdout.String() != "got:hi\n" || a.stderr.String() != "err:hi\n" {
		t.Errorf("attach: exit %d stdout %q stderr %q; want 4, got:hi, err:hi", code, a.stdout, a.stderr)
	}

	ctl := filepath.Join(e.dir, "ctl")
	os.MkdirAll(ctl, 0o755)
	e.runD("--name", "tick", "-v", ctl+":/ctl", box, "sh", "-c", "while [ ! -f /ctl/stop ]; do echo tick; sleep 0.05; done; echo bye; exit 2")
	w := e.start("attach", "--no-stdin", "tick")
	waitFor(t, "attached output", func() bool { return strings.Contains(w.stdout.String(), "tick\n") })
	os.WriteFile(filepath.Join(ctl, "stop"), nil, 0o644)
	if code := w.wait(t); code != 2 || !strings.HasSuffix(w.stdout.String(), "tick\nbye\n") {
		t.Errorf("attach --no-stdin: exit %d stdout %q, want ticks then bye and exit 2", code, w.stdout)
	}
	if r := e.run(nil, "attach", "tick"); r.code == 0 || !strings.Contains(r.stderr, "not running") && !strings.Contains(r.stderr, "stopped") {
		t.Errorf("attach to a stopped container: %v", r)
	}
}

// TestCp: cp in and out of running and stopped containers, files and
// directories; paths in the container resolve inside its root, whatever
// its symlinks say.
func TestCp(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--name", "cpc", box, "sleep", "1000")
	src := filepath.Join(e.dir, "in.txt")
	os.WriteFile(src, []byte("from the host\n"), 0o640)
	e.ok("cp", src, "cpc:/tmp/in.txt")
	if out := e.sh(id, "cat /tmp/in.txt; stat -c %a /tmp/in.txt"); out != "from the host\n640\n" {
		t.Errorf("cp in: the container has %q", out)
	}
	dir := filepath.Join(e.dir, "tree")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("deep\n"), 0o644)
	e.ok("cp", dir, "cpc:/tmp/")
	if out := e.sh(id, "cat /tmp/tree/sub/f"); out != "deep\n" {
		t.Errorf("cp of a directory in: %q", out)
	}
	outFile := filepath.Join(e.dir, "hostname.out")
	e.ok("cp", "cpc:/etc/hostname", outFile)
	if b, _ := os.ReadFile(outFile); string(b) != id[:12]+"\n" {
		t.Errorf("cp out /etc/hostname: %q", b)
	}
	outDir := filepath.Join(e.dir, "outdir")
	os.MkdirAll(outDir, 0o755)
	e.ok("cp", "cpc:/data", outDir)
	if b, _ := os.ReadFile(filepath.Join(outDir, "data", "seed.txt")); string(b) != boxSeed {
		t.Errorf("cp out of a directory: data/seed.txt = %q", b)
	}

	// A stopped container's filesystem can be copied to and from too.
	e.ok("stop", "-t", "0", "cpc")
	e.ok("cp", src, "cpc:/stopped.txt")
	back := filepath.Join(e.dir, "back.txt")
	e.ok("cp", "cpc:/stopped.txt", back)
	if b, _ := os.ReadFile(back); string(b) != "from the host\n" {
		t.Errorf("cp in and out of a stopped container: %q", b)
	}
	if r := e.run(nil, "cp", "cpc:/no/such/file", back); r.code == 0 {
		t.Errorf("cp of a missing path: %v", r)
	}
	if r := e.run(nil, "cp", "nosuch:/etc/hostname", back); r.code == 0 || !strings.Contains(r.stderr, "No such container") {
		t.Errorf("cp from a missing container: %v", r)
	}
}

// TestCpTarStream: "-" is Docker's tar stream: `cp CONTAINER:SRC -` writes
// SRC as a tar archive to stdout (entries named after SRC's last element),
// `cp - CONTAINER:DIR` unpacks one from stdin into an existing directory.
// cp once wrote a host file named "-" instead.
func TestCpTarStream(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--name", "cpd", box, "sh", "-c", "mkdir -p /tmp/d/e && echo deep > /tmp/d/e/f && ln -s /etc/hostname /tmp/d/l && exec sleep 1000")
	// The shell has made the whole tree, the link last, once it has
	// exec'd sleep 1000.
	e.waitTree(id, "sleep 1000")
	t.Cleanup(func() { os.Remove("-") })

	entries := func(data string) map[string]string {
		got := map[string]string{}
		tr := tar.NewReader(strings.NewReader(data))
		for {
			hdr, err := tr.Next()
			if err != nil {
				break
			}
			body, _ := io.ReadAll(tr)
			got[hdr.Name] = string(body) + hdr.Linkname
		}
		return got
	}
	out := e.ok("cp", "cpd:/tmp/d", "-")
	want := map[string]string{"d/": "", "d/e/": "", "d/e/f": "deep\n", "d/l": "/etc/hostname"}
	if got := entries(out); !reflect.DeepEqual(got, want) {
		t.Errorf("cp cpd:/tmp/d - wrote %v, want %v", got, want)
	}
	out = e.ok("cp", "cpd:/etc/hostname", "-")
	if got := entries(out); !reflect.DeepEqual(got, map[string]string{"hostname": id[:12] + "\n"}) {
		t.Errorf("cp cpd:/etc/hostname - wrote %v", got)
	}
	if _, err := os.Lstat("-"); err == nil {
		t.Errorf("cp CONTAINER:SRC - wrote a host file named \"-\"")
	}

	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	tw.WriteHeader(&tar.Header{Name: "new/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "new/g", Typeflag: tar.TypeReg, Mode: 0o600, Size: 4})
	tw.Write([]byte("tar\n"))
	tw.Close()
	if r := e.run(bytes.NewReader(in.Bytes()), "cp", "-", "cpd:/tmp"); r.code != 0 {
		t.Fatalf("cp - cpd:/tmp: %v", r)
	}
	if out := e.sh(id, "cat /tmp/new/g; stat -c %a /tmp/new/g"); out != "tar\n600\n" {
		t.Errorf("cp - cpd:/tmp: the container has %q", out)
	}
	if r := e.run(bytes.NewReader(in.Bytes()), "cp", "-", "cpd:/etc/hostname"); r.code == 0 || !strings.Contains(r.stderr, "not a directory") {
		t.Errorf("cp - onto a file: %v, want an error", r)
	}
	if r := e.run(nil, "cp", "-", "-"); r.code == 0 {
		t.Errorf("cp - -: %v, want an error", r)
	}
}

// TestCpSymlinkEscape: symlinks a container made cannot make cp read or
// write the host's files.
func TestCpSymlinkEscape(t *testing.T) {
	e := newCtrEnv(t)
	hostSide := filepath.Join(e.dir, "hostside")
	os.MkdirAll(hostSide, 0o755)
	secret := filepath.Join(hostSide, "secret")
	os.WriteFile(secret, []byte("host secret\n"), 0o600)
	shadow, _ := os.ReadFile("/etc/shadow")
	id := e.runD("--name", "evil", box, "sleep", "1000")
	e.sh(id, "ln -s / /tmp/up; ln -s /etc/shadow /tmp/shadow; ln -s ../../../../../../../../etc /tmp/etcup; ln -s "+hostSide+" /tmp/hostside; ln -s "+secret+" /tmp/secret")

	// leaked tells whether p is a regular file holding a host secret (a
	// copied symlink is only a link, not a leak).
	leaked := func(p string) bool {
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			return false
		}
		b, _ := os.ReadFile(p)
		return (len(shadow) > 0 && strings.Contains(string(b), string(shadow))) || strings.Contains(string(b), "host secret")
	}
	reads := []string{"/tmp/up/etc/shadow", "/tmp/etcup/shadow", "/../../../../etc/shadow", "/tmp/hostside/secret", "/tmp/secret/."}
	for i, p := range reads {
		dst := filepath.Join(e.dir, "got"+strconv.Itoa(i))
		e.run(nil, "cp", "evil:"+p, dst)
		// Read a copied tree too: cp may have made a directory.
		filepath.WalkDir(dst, func(q string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && leaked(q) {
				t.Errorf("cp evil:%s leaked a host file into %s", p, q)
			}
			return nil
		})
	}
	// Without -L a symlink is copied as the link itself.
	dst := filepath.Join(e.dir, "link")
	if r := e.run(nil, "cp", "evil:/tmp/shadow", dst); r.code != 0 {
		t.Errorf("cp evil:/tmp/shadow: %v", r)
	} else if fi, err := os.Lstat(dst); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("cp evil:/tmp/shadow: want the symlink itself, got %v %v", fi, err)
	}
	// -L follows it inside the container's root, where there is no shadow.
	dstL := filepath.Join(e.dir, "followed")
	r := e.run(nil, "cp", "-L", "evil:/tmp/shadow", dstL)
	if r.code == 0 || leaked(dstL) {
		t.Errorf("cp -L evil:/tmp/shadow (the container has no /etc/shadow): %v; want a failure and no host file", r)
	}

	// Writes through the container's links stay inside it.
	src := filepath.Join(e.dir, "payload")
	os.WriteFile(src, []byte("payload\n"), 0o644)
	for _, p := range []string{"/tmp/hostside/dropped", "/tmp/up" + hostSide + "/dropped2", "/../../../.." + hostSide + "/dropped3"} {
		e.run(nil, "cp", src, "evil:"+p)
	}
	ents, _ := os.ReadDir(hostSide)
	for _, de := range ents {
		if de.Name() != "secret" {
			t.Errorf("cp into the container wrote the host's %s", filepath.Join(hostSide, de.Name()))
		}
	}
	if b, _ := os.ReadFile(secret); string(b) != "host secret\n" {
		t.Errorf("the host file changed: %q", b)
	}
}

// TestPort: port lists the published ports as Docker does.
func TestPort(t *testing.T) {
	e := newCtrEnv(t)
	e.runD("--name", "pub", "-p", "127.0.0.1:18080:80", "-p", "127.0.0.1:18081:81/udp", box, "sleep", "1000")
	got := lines(e.ok("port", "pub"))
	slices.Sort(got)
	if !slices.Equal(got, []string{"80/tcp -> 127.0.0.1:18080", "81/udp -> 127.0.0.1:18081"}) {
		t.Errorf("port pub = %q", got)
	}
	if out := e.ok("port", "pub", "80"); out != "127.0.0.1:18080\n" {
		t.Errorf("port pub 80 = %q", out)
	}
	if out := e.ok("port", "pub", "81/udp"); out != "127.0.0.1:18081\n" {
		t.Errorf("port pub 81/udp = %q", out)
	}
	if r := e.run(nil, "port", "pub", "99"); r.code == 0 || !strings.Contains(r.stderr, "No public port '99/tcp' published for pub") {
		t.Errorf("port pub 99: %v", r)
	}
	e.runD("--name", "nopub", box, "sleep", "1000")
	if out := e.ok("port", "nopub"); out != "" {
		t.Errorf("port of a container without published ports: %q", out)
	}
}

// TestContainerPrune: prune removes stopped and created containers only.
func TestContainerPrune(t *testing.T) {
	e := newCtrEnv(t)
	keep := e.runD("--name", "keep", box, "sleep", "1000")
	e.run(nil, "run", "--name", "done", box, "true")
	done := e.remember("done")
	created := strings.TrimSpace(e.ok("create", "--name", "fresh", box))
	e.remember("fresh")
	out := e.ok("container", "prune", "-f")
	if !strings.HasPrefix(out, "Deleted Containers:\n") || !strings.Contains(out, done+"\n") || !strings.Contains(out, created+"\n") ||
		strings.Contains(out, keep) || !strings.Contains(out, "Total reclaimed space: ") {
		t.Errorf("container prune -f printed:\n%s", out)
	}
	if got := lines(e.ok("ps", "-aq", "--no-trunc")); !slices.Equal(got, []string{keep}) {
		t.Errorf("after prune ps -a = %q, want only the running one", got)
	}
	for _, id := range []string{done, created} {
		for _, l := range e.leaks(id) {
			t.Errorf("after prune: %s", l)
		}
		if _, err := os.Stat(filepath.Join(e.root, "containers", id)); err == nil {
			t.Errorf("prune left the record of %s", id[:12])
		}
	}
}

// TestCommitDiffExport: diff lists A/C/D changes; commit makes an image of
// them (with -c applied); export writes the whole filesystem.
func TestCommitDiffExport(t *testing.T) {
	e := newCtrEnv(t)
	e.run(nil, "run", "--name", "ch", box, "sh", "-c", "echo new > /added; echo more >> /data/seed.txt; rm /bin/vi")
	e.remember("ch")
	if got := lines(e.ok("diff", "ch")); !slices.Equal(got, []string{"A /added", "C /bin", "D /bin/vi", "C /data", "C /data/seed.txt"}) {
		t.Errorf("diff ch = %q, want A /added, C /bin, D /bin/vi, C /data, C /data/seed.txt", got)
	}
	out := strings.TrimSpace(e.ok("commit", "-c", `CMD ["cat","/added"]`, "-m", "from e2e", "ch", "e2e/committed:1"))
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(out) {
		t.Errorf("commit printed %q, want the image ID", out)
	}
	if got := e.ok("run", "--rm", "e2e/committed:1"); got != "new\n" {
		t.Errorf("run of the committed image (CMD from -c) printed %q", got)
	}
	if got := e.ok("run", "--rm", "e2e/committed:1", "sh", "-c", "cat /data/seed.txt; ls /bin/vi 2>/dev/null || echo no-vi"); got != boxSeed+"more\nno-vi\n" {
		t.Errorf("the committed image's files: %q", got)
	}
	if cmd := strings.TrimSpace(e.ok("image", "inspect", "-f", "{{json .Config.Cmd}}", "e2e/committed:1")); cmd != `["cat","/added"]` {
		t.Errorf("committed image Config.Cmd = %s", cmd)
	}
	if h := lines(e.ok("history", "-q", "e2e/committed:1")); len(h) != 2 {
		t.Errorf("history of the committed image = %q, want two layers", h)
	}
	// A running container is committed too (paused meanwhile).
	id := e.runD("--name", "live", box, "sh", "-c", "echo live > /live; exec sleep 1000")
	waitFor(t, "the file to be written", func() bool { o, _, _ := e.shAny(id, "cat /live"); return o == "live\n" })
	e.ok("commit", "live", "e2e/live")
	if got := e.ok("run", "--rm", "e2e/live", "cat", "/live"); got != "live\n" {
		t.Errorf("commit of a running container: %q", got)
	}
	if st := e.cstate("live"); !st.Running || st.Paused {
		t.Errorf("commit left the container %+v", st)
	}

	tarPath := filepath.Join(e.dir, "ch.tar")
	e.ok("export", "-o", tarPath, "ch")
	names := tarNames(t, tarPath)
	for _, want := range []string{"added", "bin/busybox", "data/seed.txt", "etc/passwd"} {
		if !slices.Contains(names, want) && !slices.Contains(names, "./"+want) && !slices.Contains(names, "/"+want) {
			t.Errorf("export lacks %s (%d entries)", want, len(names))
		}
	}
	for _, n := range names {
		if strings.TrimPrefix(strings.TrimPrefix(n, "."), "/") == "bin/vi" {
			t.Errorf("export has the deleted bin/vi")
		}
	}
	f, _ := os.Create(filepath.Join(e.dir, "stdout.tar"))
	if r := e.runWith(nil, f, "export", "ch"); r.code != 0 {
		t.Errorf("export to stdout: %v", r)
	}
	f.Close()
	if n := tarNames(t, filepath.Join(e.dir, "stdout.tar")); len(n) != len(names) {
		t.Errorf("export to stdout has %d entries, -o has %d", len(n), len(names))
	}
}

// TestEvents: events reports Docker's event names for a container's life.
func TestEvents(t *testing.T) {
	e := newCtrEnv(t)
	since := time.Now().Add(-time.Second).Unix()
	e.runD("--name", "ev", box, "sleep", "1000")
	e.ok("pause", "ev")
	e.ok("unpause", "ev")
	e.ok("kill", "ev")
	e.ok("wait", "ev")
	e.ok("rm", "ev")
	until := time.Now().Add(time.Second).Unix()
	r := e.run(nil, "events", "--since", strconv.FormatInt(since, 10), "--until", strconv.FormatInt(until, 10),
		"--filter", "container=ev", "--format", "{{.Action}}")
	if r.code != 0 {
		t.Fatalf("events: %v", r)
	}
	got := lines(r.stdout)
	want := []string{"create", "start", "pause", "unpause", "kill", "die", "destroy"}
	if !slices.Equal(got, want) {
		t.Errorf("events actions = %q, want %q", got, want)
	}
}
