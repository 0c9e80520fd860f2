package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

// createdIDs lists the ids of every container created in the store since
// the Unix time since, from its events: also those removed since.
func (e *ctrEnv) createdIDs(since int64) []string {
	e.t.Helper()
	until := time.Now().Add(time.Second).Unix()
	out := e.ok("events", "--since", strconv.FormatInt(since, 10), "--until", strconv.FormatInt(until, 10),
		"--filter", "event=create", "--format", "{{.Actor.ID}}")
	return lines(out)
}

// TestRaceRunRemove: `rm -f` racing `run -d` of the same container, at
// every moment of the run: each round ends with the container removed
// (the run failing, or succeeding just before the removal), or with the
// rm failing because no container had that name yet and the container
// running; never with a container half removed or half started, and
// nothing of a removed one is left (monitor, runtime state, cgroup, mount,
// directories).
func TestRaceRunRemove(t *testing.T) {
	e := newCtrEnv(t)
	since := time.Now().Add(-time.Second).Unix()
	const rounds = 24
	outcomes := map[string]int{}
	for i := 0; i < rounds; i++ {
		name := fmt.Sprintf("race%d", i)
		run := e.start("run", "-d", "--name", name, box, "sleep", "1000")
		time.Sleep(time.Duration(i%12) * 8 * time.Millisecond)
		rm := e.run(nil, "rm", "-f", name)
		runCode := run.wait(t)
		switch {
		case rm.code == 0:
			if r := e.run(nil, "inspect", "--type", "container", name); r.code == 0 {
				t.Errorf("round %d: rm -f succeeded but %s still exists: %s", i, name, r.stdout)
			}
		case strings.Contains(rm.stderr, "No such container"):
			// rm came before the create: the run is the only outcome.
			if runCode != 0 {
				t.Errorf("round %d: rm found nothing, yet run -d failed: %s", i, run.stderr)
				continue
			}
			id := e.remember(name)
			if st := e.cstate(id); !st.Running || !alive(st.Pid) {
				t.Errorf("round %d: rm found nothing, run -d succeeded, yet %s is %+v", i, name, st)
			}
			e.ok("rm", "-f", name)
		default:
			t.Errorf("round %d: rm -f %s: %v", i, name, rm)
		}
		outcomes[fmt.Sprintf("rm %d, run %d", rm.code, runCode)]++
		if runCode != 0 && runCode != 125 {
			t.Errorf("round %d: run -d exited %d: %s", i, runCode, run.stderr.String())
		}
		if runCode == 0 && !regexp64(strings.TrimSpace(run.stdout.String())) {
			t.Errorf("round %d: run -d succeeded and printed %q, want the container's id", i, run.stdout.String())
		}
	}
	t.Logf("outcomes (exit codes): %v", outcomes)
	if left := e.ok("ps", "-aq"); left != "" {
		t.Errorf("containers left: %q", left)
	}
	ids := e.createdIDs(since)
	if len(ids) == 0 {
		t.Fatalf("no create event in the store: the check below would see nothing")
	}
	for _, id := range ids {
		e.mu.Lock()
		e.ids[id] = true // the final leak check too
		e.mu.Unlock()
		for _, l := range e.leaks(id) {
			t.Errorf("removed container %s: %s", id[:12], l)
		}
	}
	for _, dir := range []string{filepath.Join(e.root, "containers"), filepath.Join(e.state, "containers"), filepath.Join(e.state, "runtime")} {
		ents, _ := os.ReadDir(dir)
		for _, de := range ents {
			if regexp64(de.Name()) {
				t.Errorf("%s is left in %s", de.Name()[:12], dir)
			}
		}
	}
}

// TestRaceStartRemove: `rm -f` racing `start` of a created container:
// the rm always wins in the end (the start fails, or succeeds just before
// the removal), and nothing of the container is left.
func TestRaceStartRemove(t *testing.T) {
	e := newCtrEnv(t)
	outcomes := map[string]int{}
	for i := 0; i < 16; i++ {
		id := e.remember(strings.TrimSpace(e.ok("create", box, "sleep", "1000")))
		start := e.start("start", id)
		time.Sleep(time.Duration(i%8) * 4 * time.Millisecond)
		rm := e.run(nil, "rm", "-f", id)
		startCode := start.wait(t)
		outcomes[fmt.Sprintf("rm %d, start %d", rm.code, startCode)]++
		if rm.code != 0 {
			t.Errorf("round %d: rm -f: %v", i, rm)
		}
		if startCode != 0 && !strings.Contains(start.stderr.String(), "marked for removal") && !strings.Contains(start.stderr.String(), "No such container") {
			t.Errorf("round %d: start failed with %q, want the container marked for removal, or gone", i, start.stderr.String())
		}
		if r := e.run(nil, "inspect", "--type", "container", id); r.code == 0 {
			t.Errorf("round %d: the container is still there after rm -f: %s", i, r.stdout)
		}
		for _, l := range e.leaks(id) {
			t.Errorf("round %d: %s", i, l)
		}
	}
	t.Logf("outcomes (exit codes): %v", outcomes)
}

func regexp64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// TestRaceStopStart: stop followed at once by start, many times, with
// other commands looking at the container all along: each start's run has
// its root filesystem mounted and working (the previous run's exit
// command, or a command that read the record before the stop, must never
// unmount or stop the new run), and the record tells the new run.
func TestRaceStopStart(t *testing.T) {
	e := newCtrEnv(t)
	// Stops on SIGTERM at once (sh as pid 1 has no default action for it).
	id := e.runD("--name", "ss", box, "sh", "-c", `trap "exit 0" TERM; while :; do sleep 1 & wait; done`)
	rootfs := filepath.Join(e.state, "containers", id, "rootfs")

	// Readers all along: their reconciliation must never act on a stale
	// record.
	var stop atomic.Bool
	var wg sync.WaitGroup
	for _, args := range [][]string{{"ps", "-a"}, {"inspect", "ss"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				e.berthCmd(args...).Run()
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()

	for i := 0; i < 20; i++ {
		switch i % 3 {
		case 0:
			e.ok("stop", "ss")
		case 1:
			e.ok("stop", "-t", "0", "ss")
		case 2:
			e.ok("kill", "ss")
		}
		e.ok("start", "ss")
		st := e.cstate(id)
		if !st.Running || !alive(st.Pid) {
			t.Fatalf("round %d: after stop and start: %+v", i, st)
		}
		if m := mountsUnder(rootfs); !slices.Contains(m, rootfs) {
			t.Fatalf("round %d: the running container's root filesystem %s is not mounted (mounts there: %q)", i, rootfs, m)
		}
		if out := e.ok("exec", "ss", "ls", "/"); !slices.Contains(strings.Fields(out), "bin") {
			t.Fatalf("round %d: exec ls / = %q", i, out)
		}
	}
	stop.Store(true)
	wg.Wait()
	// The runs' exit commands are done: the last run is still as it was.
	if st := e.cstate(id); !st.Running || !alive(st.Pid) || !slices.Contains(mountsUnder(rootfs), rootfs) {
		t.Errorf("after the loop: %+v, rootfs mounted %v", st, slices.Contains(mountsUnder(rootfs), rootfs))
	}
}

// TestRaceStartAfterExit: a container that exits by itself, started again
// at once, many times: the start waits for the previous run's monitor, so
// the new run keeps its root filesystem and the monitor its sockets
// (attach and logs work).
func TestRaceStartAfterExit(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--name", "quick", box, "sh", "-c", "echo run; ls / >/dev/null")
	for i := 0; i < 10; i++ {
		if code := strings.TrimSpace(e.ok("wait", "quick")); code != "0" {
			t.Fatalf("round %d: wait = %s", i, code)
		}
		if out := e.ok("start", "-a", "quick"); out != "run\n" {
			t.Fatalf("round %d: start -a printed %q, want \"run\\n\"", i, out)
		}
	}
	e.ok("wait", "quick")
	e.monitorGone(id)
	if st := e.cstate(id); st.Status != container.StateExited || st.ExitCode != 0 {
		t.Errorf("after the loop: %+v", st)
	}
	for _, l := range e.leaks(id) {
		t.Errorf("after the last run: %s", l)
	}
	if n := len(lines(e.ok("logs", "quick"))); n != 11 {
		t.Errorf("logs has %d lines, want 11 (one a run)", n)
	}
}

// TestRaceKilledCreateVolumes: a create killed at any moment leaves no
// anonymous volume behind once the next create has run (the volumes of a
// create killed before it wrote its record are removed with the rest of
// it), and the volumes of the containers that exist are kept.
func TestRaceKilledCreateVolumes(t *testing.T) {
	e := newCtrEnv(t)
	e.ok("volume", "create", "named")
	keep := e.remember(strings.TrimSpace(e.ok("create", "--name", "keeper", "-v", "/data", "-v", "named:/named", box)))
	// Many volumes: the kills fall more often while they are made.
	args := []string{"create"}
	for i := 0; i < 40; i++ {
		args = append(args, "-v", fmt.Sprintf("/v%d", i))
	}
	for i := 0; i < 30; i++ {
		b := e.start(append(args, "--name", fmt.Sprintf("kv%d", i), box)...)
		// A create takes tens of milliseconds: the kills fall all along it.
		time.Sleep(time.Duration(i) * 3 * time.Millisecond)
		b.cmd.Process.Kill()
		b.wait(t)
	}
	// The next create sweeps what the killed ones left.
	e.remember(strings.TrimSpace(e.ok("create", "--name", "last", box)))
	used := map[string]string{}
	for _, id := range lines(e.ok("ps", "-aq", "--no-trunc")) {
		e.remember(id)
		in, _ := e.inspectC(id)
		for _, m := range in.Mounts {
			if m.Name != "" {
				used[m.Name] = in.Name
			}
		}
	}
	var orphans []string
	for _, v := range lines(e.ok("volume", "ls", "-q")) {
		if _, ok := used[v]; !ok {
			orphans = append(orphans, v[:min(12, len(v))])
		}
	}
	if len(orphans) > 0 {
		t.Errorf("%d volumes are left, used by no container: %q", len(orphans), orphans)
	}
	in, _ := e.inspectC(keep)
	for _, m := range in.Mounts {
		if r := e.run(nil, "volume", "inspect", m.Name); r.code != 0 {
			t.Errorf("keeper's volume %s (%s) is gone: %v", m.Name, m.Destination, r)
		}
	}
	if len(in.Mounts) != 2 {
		t.Errorf("keeper has mounts %+v, want /data and /named", in.Mounts)
	}
	// Every directory in the store is a container's.
	ents, _ := os.ReadDir(filepath.Join(e.root, "containers"))
	for _, de := range ents {
		if !de.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(e.root, "containers", de.Name(), "container.json")); err != nil {
			t.Errorf("container directory %s has no record: %v", de.Name(), err)
		}
	}
}

// TestRaceExecStarting: exec into a container whose start is under way
// waits for the start, as Docker serialises them: it runs once the
// container runs, and fails with "is not running" when the start failed.
func TestRaceExecStarting(t *testing.T) {
	e := newCtrEnv(t)
	for _, tc := range []struct {
		name   string
		cmd    []string
		starts bool
	}{
		{"xs-ok", []string{"sleep", "1000"}, true},
		{"xs-fail", []string{"/no/such/cmd"}, false},
	} {
		id := e.remember(strings.TrimSpace(e.ok(append([]string{"create", "--name", tc.name, box}, tc.cmd...)...)))
		marker := filepath.Join(e.state, "containers", id, "starting")
		caught := 0
		for i := 0; i < 5; i++ {
			if tc.starts {
				e.run(nil, "stop", "-t", "0", tc.name)
			}
			st := e.start("start", tc.name)
			for !st.exited() {
				if _, err := os.Stat(marker); err == nil {
					break
				}
			}
			if _, err := os.Stat(marker); err == nil {
				caught++
			}
			r := e.run(nil, "exec", tc.name, "echo", "in")
			code := st.wait(t)
			switch {
			case tc.starts && (r.code != 0 || r.stdout != "in\n"):
				t.Errorf("%s round %d: exec during start: %v, want it to wait and run", tc.name, i, r)
			case !tc.starts && (r.code == 0 || !strings.Contains(r.stderr, "is not running")):
				t.Errorf("%s round %d: exec during a failing start: %v, want \"is not running\"", tc.name, i, r)
			case tc.starts != (code == 0):
				t.Errorf("%s round %d: start exit %d", tc.name, i, code)
			}
		}
		if caught == 0 {
			t.Logf("%s: no exec ran while the start was under way", tc.name)
		}
	}
}

// TestConcurrentStore: 20 `run -d` at once, half of them pairs that want
// the same name, while `rm -f` removes the first ones as they appear and
// `ps` (table and JSON) lists the store without pause: every ps row is a
// whole container in a real state, every record on disk parses, exactly
// one of each same-name pair wins (the other says the name is in use,
// exit 125), and what was not removed is all there and running.
func TestConcurrentStore(t *testing.T) {
	e := newCtrEnv(t)
	const n = 20
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("cs%d", i)
		if i >= n/2 {
			names[i] = fmt.Sprintf("dup%d", i%(n/4)) // five pairs
		}
	}
	var (
		wg      sync.WaitGroup
		results = make([]result, n)
		stop    atomic.Bool
		psErrs  []string
		psMu    sync.Mutex
	)
	psFail := func(format string, args ...any) {
		psMu.Lock()
		psErrs = append(psErrs, fmt.Sprintf(format, args...))
		psMu.Unlock()
	}
	// Readers: ps and ps --format json for as long as the writers run.
	var readers sync.WaitGroup
	for _, format := range []string{"{{.ID}} {{.Names}} {{.State}}", "json"} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for !stop.Load() {
				cmd := e.berthCmd("ps", "-a", "--no-trunc", "--format", format)
				var out, errb strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &errb
				if err := cmd.Run(); err != nil {
					psFail("ps --format %s: %v: %s", format, err, errb.String())
					continue
				}
				for _, l := range lines(out.String()) {
					if format == "json" {
						var row map[string]any
						if err := json.Unmarshal([]byte(l), &row); err != nil || row["ID"] == nil || row["Names"] == nil {
							psFail("ps json row %q: %v", l, err)
						}
						continue
					}
					f := strings.Fields(l)
					if len(f) != 3 || len(f[0]) != 64 {
						psFail("ps row %q", l)
						continue
					}
					switch container.ContainerState(f[2]) {
					case container.StateCreated, container.StateRunning, container.StateExited, container.StateRemoving:
					default:
						psFail("ps row %q: state %s", l, f[2])
					}
				}
			}
		}()
	}
	// Records: every container.json in the store parses, all the time.
	readers.Add(1)
	go func() {
		defer readers.Done()
		for !stop.Load() {
			ents, _ := os.ReadDir(filepath.Join(e.root, "containers"))
			for _, de := range ents {
				b, err := os.ReadFile(filepath.Join(e.root, "containers", de.Name(), "container.json"))
				if err != nil {
					continue // being made or removed
				}
				var rec map[string]any
				if err := json.Unmarshal(b, &rec); err != nil {
					psFail("container.json of %s torn: %v: %q", de.Name(), err, b)
				}
			}
		}
	}()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := e.berthCmd("run", "-d", "--name", names[i], "-l", "batch=cs", box, "sleep", "1000")
			var out, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errb
			_ = cmd.Run()
			results[i] = result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
		}()
	}
	// rm -f of cs0..cs4 as soon as each exists (a miss is retried).
	removed := make([]bool, 5)
	for i := range removed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			waitFor(t, "run -d of "+names[i]+" to make it", func() bool {
				r := e.run(nil, "rm", "-f", names[i])
				return r.code == 0
			})
			removed[i] = true
		}()
	}
	wg.Wait()
	stop.Store(true)
	readers.Wait()
	for _, s := range psErrs {
		t.Error(s)
	}

	want := map[string]bool{}
	for i := 0; i < n/2; i++ {
		if i < len(removed) {
			// Removed under it: the run may fail (TestRaceRunRemove).
			if results[i].code != 0 {
				t.Logf("run -d --name %s, removed while it ran: exit %d: %s", names[i], results[i].code, results[i].stderr)
			}
			continue
		}
		if results[i].code != 0 {
			t.Errorf("run -d --name %s: exit %d: %s", names[i], results[i].code, results[i].stderr)
		}
		want[names[i]] = true
	}
	for d := 0; d < n/4; d++ {
		a, b := results[n/2+d], results[n/2+d+n/4]
		wins := 0
		for _, r := range []result{a, b} {
			switch {
			case r.code == 0:
				wins++
			case r.code == 125 && strings.Contains(r.stderr, "is already in use"):
			default:
				t.Errorf("run -d --name dup%d: exit %d: %s", d, r.code, r.stderr)
			}
		}
		if wins != 1 {
			t.Errorf("dup%d: %d of the two runs won, want 1 (%q; %q)", d, wins, a.stderr, b.stderr)
		}
		want[fmt.Sprintf("dup%d", d)] = true
	}
	got := map[string]bool{}
	for _, l := range lines(e.ok("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.State}}")) {
		f := strings.Fields(l)
		e.remember(f[0])
		if got[f[1]] {
			t.Errorf("two containers named %s", f[1])
		}
		got[f[1]] = true
		if st := e.cstate(f[0]); !st.Running || !alive(st.Pid) {
			t.Errorf("%s: %+v, want running", f[1], st)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("ps lists %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	if d := containerDirs(t, e.root); d != len(want) {
		t.Errorf("%d container directories, want %d", d, len(want))
	}
}
