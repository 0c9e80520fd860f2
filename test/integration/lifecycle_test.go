package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// The lifecycle of the spec: create -> created -> start -> running -> the
// process exits -> stopped -> delete -> gone.
func TestLifecycleCreateStartStateDelete(t *testing.T) {
	annotations := map[string]string{"org.berth.test": "lifecycle", "org.berth.empty": ""}
	c := newContainer(t, sh("echo started; exec sleep 1000000"), func(s *specs.Spec) {
		s.Annotations = annotations
	})
	c.mustCreate()

	pid := c.initPid()
	if !processAlive(pid) {
		t.Fatalf("pid file names %d, which is not a live host process", pid)
	}
	st := c.state()
	want := specs.State{Version: st.Version, ID: c.id, Status: specs.StateCreated, Pid: pid, Bundle: c.bundle, Annotations: annotations}
	if st.Version == "" || !reflect.DeepEqual(st, want) {
		t.Errorf("state after create = %+v, want %+v with a non-empty ociVersion", st, want)
	}
	if out := c.output(); out != "" {
		t.Errorf("the user process ran before start: output %q", out)
	}

	c.mustRT("start", c.id)
	c.waitOutput("started")
	if st := c.state(); st.Status != specs.StateRunning || st.Pid != pid {
		t.Errorf("state after start = %+v, want status running, pid %d", st, pid)
	}
	if r := c.rt("start", c.id); r.code == 0 {
		t.Errorf("a second start succeeded: %v", r)
	}

	c.mustRT("kill", c.id, "KILL")
	st = c.waitStatus(specs.StateStopped)
	if st.ID != c.id || st.Bundle != c.bundle {
		t.Errorf("state when stopped = %+v, want id %s, bundle %s", st, c.id, c.bundle)
	}

	c.mustRT("delete", c.id)
	if r := c.rt("state", c.id); r.code == 0 {
		t.Errorf("state of a deleted container succeeded: %v", r)
	}
	assertNoLeftovers(t, c)
}

func TestPidFileHoldsHostPid(t *testing.T) {
	c := startedContainer(t, []string{"sh", "-c", "echo $$; exec sleep 1000000"})
	// Inside, the init is pid 1 of its pid namespace; the pid file holds the host pid.
	c.waitOutput("\n")
	if got := strings.TrimSpace(c.output()); got != "1" {
		t.Errorf("pid inside = %q, want 1", got)
	}
	// The echo comes before the exec: wait for the sleep, then it must be
	// the process the pid file names.
	pid := c.initPid()
	waitFor(t, fmt.Sprintf("pid %d (from the pid file) to run the container's sleep", pid), func() bool {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatalf("pid file names %d, which is not a host process: %v", pid, err)
		}
		return strings.HasPrefix(string(cmdline), "sleep\x00")
	})
}

func TestKillSignal(t *testing.T) {
	// Init ignores signals it has no handler for, so TERM needs the trap.
	script := `trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 1; done`
	tests := []struct {
		signal  string
		wantOut string // what the process prints on the signal, if it can
	}{
		{"KILL", ""},
		{"9", ""},
		{"SIGKILL", ""},
		{"SIGTERM", "got TERM"},
		{"TERM", "got TERM"},
		{"15", "got TERM"},
	}
	for _, tt := range tests {
		t.Run(tt.signal, func(t *testing.T) {
			c := startedContainer(t, []string{"sh", "-c", script})
			c.waitOutput("ready")
			c.mustRT("kill", c.id, tt.signal)
			c.waitStatus(specs.StateStopped)
			if tt.wantOut != "" && !strings.Contains(c.output(), tt.wantOut) {
				t.Errorf("after kill %s the output is %q, want %q", tt.signal, c.output(), tt.wantOut)
			}
		})
	}
}

func TestKillAll(t *testing.T) {
	c := startedContainer(t, []string{"sh", "-c", "sleep 1000000 & sleep 1000000 & echo ready; wait"})
	c.waitOutput("ready")
	procs := c.cgroupFile("pids/cgroup.procs", "cgroup.procs")
	var pids []string
	waitFor(t, "three processes in the container's cgroup", func() bool {
		pids = strings.Fields(readFile(t, procs))
		return len(pids) == 3
	})
	c.mustRT("kill", "--all", c.id, "KILL")
	c.waitStatus(specs.StateStopped)
	for _, p := range pids {
		pid, _ := strconv.Atoi(p)
		waitFor(t, fmt.Sprintf("process %d to die", pid), func() bool { return !processAlive(pid) })
	}
}

func TestDelete(t *testing.T) {
	t.Run("running container needs force", func(t *testing.T) {
		c := startedContainer(t, []string{"sleep", "1000000"})
		pid := c.initPid()
		if r := c.rt("delete", c.id); r.code == 0 {
			t.Fatalf("delete of a running container succeeded without --force: %v", r)
		}
		if st := c.state(); st.Status != specs.StateRunning {
			t.Errorf("after a refused delete the status is %s, want running", st.Status)
		}
		c.mustRT("delete", "--force", c.id)
		waitFor(t, "the init to die", func() bool { return !processAlive(pid) })
		assertNoLeftovers(t, c)
	})
	t.Run("created container with force", func(t *testing.T) {
		c := newContainer(t, sh("sleep 1000000"))
		c.mustCreate()
		pid := c.initPid()
		c.mustRT("delete", "--force", c.id)
		waitFor(t, "the init to die", func() bool { return !processAlive(pid) })
		assertNoLeftovers(t, c)
	})
	t.Run("stopped container", func(t *testing.T) {
		c := startedContainer(t, []string{"true"})
		c.waitStatus(specs.StateStopped)
		c.mustRT("delete", c.id)
		if _, err := os.Stat(filepath.Join(c.root, c.id)); !os.IsNotExist(err) {
			t.Errorf("state dir %s/%s after delete: %v, want it gone", c.root, c.id, err)
		}
		assertNoLeftovers(t, c)
	})
}

func TestRunExitCode(t *testing.T) {
	for _, code := range []int{0, 1, 3, 42} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			_, got := runContainer(t, sh(fmt.Sprintf("exit %d", code)))
			if got != code {
				t.Errorf("run of `exit %d` exited %d", code, got)
			}
		})
	}
	t.Run("stdout", func(t *testing.T) {
		if out := mustRun(t, "echo hello from busybox"); out != "hello from busybox\n" {
			t.Errorf("stdout = %q, want %q", out, "hello from busybox\n")
		}
	})
}

func TestRunDetach(t *testing.T) {
	c := newContainer(t, sh("echo detached; exec sleep 1000000"))
	c.writeSpec()
	r, out := c.rtDetached("run", "--detach", "--bundle", c.bundle, "--pid-file", c.pidFile, c.id)
	if r.code != 0 {
		t.Fatalf("run --detach: %v", r)
	}
	c.initOut = out
	st := c.state()
	if st.Status != specs.StateRunning || st.Pid != c.initPid() {
		t.Errorf("state after run --detach = %+v, want running with pid %d", st, c.initPid())
	}
	c.waitOutput("detached")
}

func TestPauseResume(t *testing.T) {
	c := startedContainer(t, []string{"sh", "-c", `i=0; while true; do i=$((i+1)); echo $i > /tmp/count; done`})
	// The count file is rewritten all the time: its content may be caught
	// empty, and it is compared, not parsed.
	count := func() string {
		data, _ := os.ReadFile(filepath.Join(c.rootfs, "tmp/count"))
		return string(data)
	}
	waitFor(t, "the loop to count", func() bool { return strings.TrimSpace(count()) != "" })

	c.mustRT("pause", c.id)
	if st := c.state(); st.Status != "paused" {
		t.Errorf("status after pause = %s, want paused", st.Status)
	}
	if cgroupV2 {
		if events := readFile(t, c.cgroupFile("", "cgroup.events")); !strings.Contains(events, "frozen 1") {
			t.Errorf("cgroup.events = %q, want frozen 1", events)
		}
	} else if got := strings.TrimSpace(readFile(t, c.cgroupFile("freezer/freezer.state", ""))); got != "FROZEN" {
		t.Errorf("freezer.state = %s, want FROZEN", got)
	}
	frozen := count()
	// The loop writes thousands of times a second when it runs: watch it
	// for a while (observing, not synchronising).
	for i := 0; i < 20; i++ {
		sleepBriefly()
		if n := count(); n != frozen {
			t.Fatalf("paused loop counted on: %q -> %q", frozen, n)
		}
	}

	c.mustRT("resume", c.id)
	if st := c.state(); st.Status != specs.StateRunning {
		t.Errorf("status after resume = %s, want running", st.Status)
	}
	waitFor(t, "the loop to count again", func() bool { return count() != frozen })
}

func TestPsJSON(t *testing.T) {
	c := startedContainer(t, []string{"sh", "-c", "sleep 1000000 & echo ready; wait"})
	c.waitOutput("ready")
	var pids []int
	waitFor(t, "ps to show init and sleep", func() bool {
		r := c.mustRT("ps", "--format", "json", c.id)
		if err := json.Unmarshal([]byte(r.stdout), &pids); err != nil {
			t.Fatalf("ps --format json printed %q: %v", r.stdout, err)
		}
		return len(pids) == 2
	})
	if !slices.Contains(pids, c.initPid()) {
		t.Errorf("ps pids %v do not include the init %d", pids, c.initPid())
	}
}

func TestList(t *testing.T) {
	c := startedContainer(t, []string{"sleep", "1000000"})
	r := c.mustRT("list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if listTableNames.applies() {
		listTableNames.log(t)
	} else if got := strings.Fields(lines[0]); !slices.Equal(got, []string{"ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"}) {
		t.Errorf("list header = %q, want runc's ID PID STATUS BUNDLE CREATED OWNER", lines[0])
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[1], c.id+" ") || !strings.Contains(lines[1], "running") {
		t.Errorf("list rows = %q, want one running row for %s", lines[1:], c.id)
	}

	r = c.mustRT("list", "--format", "json")
	var list []struct {
		ID     string `json:"id"`
		Pid    int    `json:"pid"`
		Status string `json:"status"`
		Bundle string `json:"bundle"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("list --format json printed %q: %v", r.stdout, err)
	}
	if len(list) != 1 || list[0].ID != c.id || list[0].Pid != c.initPid() || list[0].Status != "running" || list[0].Bundle != c.bundle {
		t.Errorf("list --format json = %+v, want one running %s pid %d bundle %s", list, c.id, c.initPid(), c.bundle)
	}
}

func TestEventsStats(t *testing.T) {
	noEvents.skip(t)
	c := startedContainer(t, []string{"sleep", "1000000"})
	r := c.mustRT("events", "--stats", c.id)
	var ev struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Data struct {
			CPU    map[string]any `json:"cpu"`
			Memory map[string]any `json:"memory"`
			Pids   struct {
				Current uint64 `json:"current"`
			} `json:"pids"`
		} `json:"data"`
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 1 {
		t.Fatalf("events --stats printed %d lines, want one record: %q", len(lines), r.stdout)
	}
	if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil {
		t.Fatalf("events --stats printed %q: %v", r.stdout, err)
	}
	if ev.Type != "stats" || ev.ID != c.id {
		t.Errorf("event type %q id %q, want stats %s", ev.Type, ev.ID, c.id)
	}
	if len(ev.Data.CPU) == 0 || len(ev.Data.Memory) == 0 || ev.Data.Pids.Current != 1 {
		t.Errorf("stats data cpu=%v memory=%v pids.current=%d, want cpu and memory data and one pid", ev.Data.CPU, ev.Data.Memory, ev.Data.Pids.Current)
	}
}

func TestUpdate(t *testing.T) {
	c := startedContainer(t, []string{"sleep", "1000000"})
	mem := "64M"
	if updateNoUnits.applies() {
		updateNoUnits.log(t)
		mem = "67108864"
	}
	c.mustRT("update", "--memory", mem, "--pids-limit", "50", c.id)
	assertCgroup(t, c, "memory/memory.limit_in_bytes", "67108864", "memory.max", "67108864")
	assertCgroup(t, c, "pids/pids.max", "50", "pids.max", "50")

	limit, pids, shares := int64(48<<20), int64(30), uint64(512)
	res := writeJSON(t, c.dir, "resources.json", specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &limit},
		Pids:   &specs.LinuxPids{Limit: &pids},
		CPU:    &specs.LinuxCPU{Shares: &shares},
	})
	c.mustRT("update", "-r", res, c.id)
	assertCgroup(t, c, "memory/memory.limit_in_bytes", "50331648", "memory.max", "50331648")
	assertCgroup(t, c, "pids/pids.max", "30", "pids.max", "30")
	// v2 has cpu.weight: the runtimes' conversion 1 + (shares-2)*9999/262142.
	assertCgroup(t, c, "cpu/cpu.shares", "512", "cpu.weight", "20")
}

// assertFile checks a file's content without its trailing newline.
func assertFile(t *testing.T, path, want string) {
	t.Helper()
	if got := strings.TrimSpace(readFile(t, path)); got != want {
		t.Errorf("%s = %q, want %q", path, got, want)
	}
}

func TestFeatures(t *testing.T) {
	noFeatures.skip(t)
	c := newContainer(t)
	r := c.mustRT("features")
	var f features.Features
	if err := json.Unmarshal([]byte(r.stdout), &f); err != nil {
		t.Fatalf("features printed %q: %v", r.stdout, err)
	}
	if f.OCIVersionMin == "" || f.OCIVersionMax == "" {
		t.Errorf("features ociVersionMin %q ociVersionMax %q, want both", f.OCIVersionMin, f.OCIVersionMax)
	}
	for _, h := range []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"} {
		if !slices.Contains(f.Hooks, h) {
			t.Errorf("features hooks %v lack %s", f.Hooks, h)
		}
	}
	if f.Linux == nil || !slices.Contains(f.Linux.Namespaces, "pid") || !slices.Contains(f.Linux.Capabilities, "CAP_SYS_ADMIN") {
		t.Errorf("features linux = %+v, want namespaces with pid and capabilities with CAP_SYS_ADMIN", f.Linux)
	}
}

func TestSpecCommand(t *testing.T) {
	c := newContainer(t)
	dir := filepath.Join(c.dir, "specout")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := c.mustRT("spec", "--bundle", dir)
	var s specs.Spec
	data := readFile(t, filepath.Join(dir, "config.json"))
	if err := json.Unmarshal([]byte(data), &s); err != nil {
		t.Fatalf("spec wrote an invalid config.json (%v): %q", r, data)
	}
	if s.Version == "" || s.Process == nil || len(s.Process.Args) == 0 || s.Root == nil || s.Root.Path != "rootfs" || s.Linux == nil {
		t.Errorf("spec wrote %+v, want ociVersion, process args, root rootfs and linux", s)
	}
	var ns []specs.LinuxNamespaceType
	for _, n := range s.Linux.Namespaces {
		ns = append(ns, n.Type)
	}
	for _, want := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace} {
		if !slices.Contains(ns, want) {
			t.Errorf("spec namespaces %v lack %s", ns, want)
		}
	}
	// It must be usable as it is (after the rootfs is there): the suite's
	// default config is this very output.
	if r := c.rt("spec", "--bundle", dir); r.code == 0 {
		t.Errorf("spec overwrote an existing config.json: %v", r)
	}
}

func TestVersion(t *testing.T) {
	c := newContainer(t)
	r := c.mustRT("--version")
	if !strings.Contains(r.stdout, "version") || !strings.Contains(r.stdout, "spec: 1.") {
		t.Errorf("--version printed %q, want a version and a `spec: 1.x` line", r.stdout)
	}
}

func TestLogJSON(t *testing.T) {
	c := newContainer(t)
	logFile := filepath.Join(c.dir, "runtime.log")
	r := c.rt("--log", logFile, "--log-format", "json", "state", "no-such-container")
	if r.code == 0 {
		t.Fatalf("state of a missing container succeeded: %v", r)
	}
	data := readFile(t, logFile)
	var errorLines int
	for _, line := range strings.Split(strings.TrimSpace(data), "\n") {
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("log line %q is not JSON: %v", line, err)
			continue
		}
		if entry.Level == "error" && strings.Contains(entry.Msg, "no-such-container") || strings.Contains(entry.Msg, "not exist") {
			errorLines++
		}
	}
	if errorLines == 0 {
		t.Errorf("log %q has no error line about the missing container", data)
	}
}
