package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

// TestCrashKillCLI: killing the command that started a container, even
// with SIGKILL and its whole process group, never stops the container.
func TestCrashKillCLI(t *testing.T) {
	e := newCtrEnv(t)
	fg := e.start("run", "--name", "fg", box, "sh", "-c", "echo started; exec sleep 1000")
	waitFor(t, "the foreground run to print", func() bool { return fg.stdout.String() == "started\n" })
	id := e.remember("fg")
	pid := e.cstate(id).Pid
	// The CLI and everything in its process group.
	if err := syscall.Kill(-fg.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the CLI's process group: %v", err)
	}
	fg.wait(t)
	if st := e.cstate(id); !st.Running || st.Pid != pid || !alive(pid) {
		t.Errorf("after kill -9 of the foreground run: %+v (pid %d alive %v), want still running", st, pid, alive(pid))
	}
	if out := e.ok("ps", "--format", "{{.Names}} {{.Status}}"); !strings.HasPrefix(out, "fg Up ") {
		t.Errorf("ps after kill -9 of the CLI = %q", out)
	}
	if out := e.ok("logs", "fg"); out != "started\n" {
		t.Errorf("logs after kill -9 of the CLI = %q", out)
	}

	// run -d's process group, killed after it returned.
	cmd := e.berthCmd("run", "-d", "--name", "bgd", box, "sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run -d: %v", err)
	}
	bid := e.remember(strings.TrimSpace(string(out)))
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if st := e.cstate(bid); !st.Running || !alive(st.Pid) {
		t.Errorf("after killing run -d's process group: %+v", st)
	}
}

// TestCrashKillStopCLI: Docker's stop is the daemon's, so it completes
// when its client is killed during the timeout. Ours hands the deadline
// to the container's monitor: kill -9 of `stop -t 2` while it waits still
// stops a container that ignores the stop signal (SIGKILL, exit 137),
// and nothing of it is left running.
func TestCrashKillStopCLI(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--name", "stubborn", box, "sh", "-c", `trap "" TERM; exec sleep 1000`)
	since := time.Now().Unix()
	st := e.start("stop", "-t", "2", "stubborn")
	// The stop signal is sent (its kill event is written) after the
	// monitor has the deadline.
	e.waitSigterm("stubborn", since)
	if err := syscall.Kill(-st.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the stop's process group: %v", err)
	}
	st.wait(t)
	if s := e.cstate(id); s.Status != container.StateRunning {
		t.Logf("stopped before its CLI was killed: %+v", s) // a slow machine; the stop still held
	}
	e.waitStatus(id, container.StateExited)
	if s := e.cstate(id); s.ExitCode != 137 {
		t.Errorf("after kill -9 of stop -t 2: %+v, want exit 137 (killed at the deadline)", s)
	}
	for _, l := range e.leaks(id) {
		t.Errorf("after the monitor's kill: %s", l)
	}
	// The stop marked it stopped: no restart policy brings it back, and
	// start runs it again.
	e.ok("start", "stubborn")
	e.ok("stop", "-t", "0", "stubborn")
}

// TestRestartInterrupted: Ctrl-C (or SIGTERM) of `restart` while its stop
// waits for a container that ignores the stop signal does not leave the
// container stopped: the restart finishes, as Docker's daemon finishes it
// when its client goes.
func TestRestartInterrupted(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--name", "stubborn", box, "sh", "-c", `trap "" TERM; exec sleep 1000`)
	before := e.cstate(id)
	since := time.Now().Unix()
	rs := e.start("restart", "-t", "1", "stubborn")
	e.waitSigterm("stubborn", since)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		if err := rs.cmd.Process.Signal(sig); err != nil {
			t.Fatalf("signal restart: %v", err)
		}
	}
	if code := rs.wait(t); code != 0 {
		t.Errorf("interrupted restart exited %d (stderr %q), want 0", code, rs.stderr.String())
	}
	after := e.cstate(id)
	if !after.Running || after.Pid == before.Pid || after.StartedAt == before.StartedAt || !alive(after.Pid) {
		t.Errorf("after an interrupted restart: %+v, want running again with a new process (before %+v)", after, before)
	}
}

// TestCrashKillStopCLISecondStop: after kill -9 of a `stop` that waited
// with a long timeout, a second stop does the job with its own timeout
// and returns once the container is stopped (exit 137 here: it ignores
// SIGTERM).
func TestCrashKillStopCLISecondStop(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--name", "stubborn", box, "sh", "-c", `trap "" TERM; exec sleep 1000`)
	since := time.Now().Unix()
	first := e.start("stop", "-t", "600", "stubborn")
	e.waitSigterm("stubborn", since)
	if err := syscall.Kill(-first.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the stop's process group: %v", err)
	}
	first.wait(t)
	if s := e.cstate(id); !s.Running || !alive(s.Pid) {
		t.Fatalf("after kill -9 of stop -t 600: %+v, want still running (its deadline is far)", s)
	}
	if r := e.run(nil, "stop", "-t", "1", "stubborn"); r.code != 0 || r.stdout != "stubborn\n" {
		t.Errorf("second stop: %v, want exit 0 and the name", r)
	}
	if s := e.cstate(id); s.Status != container.StateExited || s.ExitCode != 137 {
		t.Errorf("after the second stop: %+v, want exited 137", s)
	}
	e.monitorGone(id)
	for _, l := range e.leaks(id) {
		t.Errorf("after the second stop: %s", l)
	}
	e.ok("start", "stubborn")
	if s := e.cstate(id); !s.Running || !alive(s.Pid) {
		t.Errorf("start after the second stop: %+v", s)
	}
}

// TestCrashKillRestartCLI: kill -9 of `restart` during its stop leaves
// the container stopped (the monitor kills it at the stop's deadline, as
// documented), with nothing of its run left (monitor, cgroup, runtime
// state, mounts); killed at any other moment, the container is running
// with a live process or stopped the same clean way, and start/restart
// work again.
func TestCrashKillRestartCLI(t *testing.T) {
	e := newCtrEnv(t)
	id := e.runD("--name", "stubborn", box, "sh", "-c", `trap "" TERM; exec sleep 1000`)
	since := time.Now().Unix()
	rs := e.start("restart", "-t", "1", "stubborn")
	e.waitSigterm("stubborn", since)
	if err := syscall.Kill(-rs.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the restart's process group: %v", err)
	}
	rs.wait(t)
	e.waitStatus(id, container.StateExited)
	e.monitorGone(id)
	if s := e.cstate(id); s.ExitCode != 137 || s.Pid != 0 {
		t.Errorf("after kill -9 of restart during its stop: %+v, want exited 137", s)
	}
	for _, l := range e.leaks(id) {
		t.Errorf("after kill -9 of restart during its stop: %s", l)
	}
	e.ok("start", "stubborn")
	e.ok("stop", "-t", "0", "stubborn")

	// Killed at any moment of a restart that does not wait.
	rid := e.runD("--name", "rst", box, "sleep", "1000")
	for i := 0; i < 10; i++ {
		b := e.start("restart", "-t", "0", "rst")
		time.Sleep(time.Duration(i*15) * time.Millisecond)
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		b.wait(t)
		// A container the killed restart had just killed is running
		// with a dead process for as long as its monitor takes to
		// record the exit: wait for that to settle.
		var st container.State
		waitFor(t, "the state to settle", func() bool {
			st = e.cstate(rid)
			return st.Status != container.StateRunning || alive(st.Pid)
		})
		switch st.Status {
		case container.StateRunning:
		case container.StateExited:
			e.monitorGone(rid)
			for _, l := range e.leaks(rid) {
				t.Errorf("round %d: exited after kill -9 of restart, but %s", i, l)
			}
		default:
			t.Errorf("round %d: %s after kill -9 of restart: %+v", i, st.Status, st)
		}
		if out := e.ok("ps", "-a", "--filter", "name=rst", "--format", "{{.State}}"); out != string(st.Status)+"\n" {
			t.Errorf("round %d: ps says %q, inspect %s", i, out, st.Status)
		}
		e.ok("restart", "-t", "0", "rst")
		if st := e.cstate(rid); !st.Running || !alive(st.Pid) {
			t.Fatalf("round %d: restart after the killed one: %+v", i, st)
		}
	}
}

// waitSigterm waits for the kill event of a SIGTERM to container name
// since the Unix time since.
func (e *ctrEnv) waitSigterm(name string, since int64) {
	e.t.Helper()
	waitFor(e.t, "SIGTERM to be sent to "+name, func() bool {
		r := e.run(nil, "events", "--since", fmt.Sprint(since), "--until", fmt.Sprint(time.Now().Unix()+1),
			"--filter", "container="+name, "--filter", "event=kill", "--format", "{{.Actor.Attributes.signal}}")
		return strings.Contains(r.stdout, "15")
	})
}

// TestCrashKillCLIAnyPoint: kill -9 of `run -d` at any moment leaves a
// consistent store: every container listed is in a real state, and rm -f
// removes them without leftovers.
func TestCrashKillCLIAnyPoint(t *testing.T) {
	e := newCtrEnv(t)
	for i := 0; i < 12; i++ {
		b := e.start("run", "-d", "--name", fmt.Sprintf("k%d", i), box, "sleep", "1000")
		time.Sleep(time.Duration(i*15) * time.Millisecond)
		b.cmd.Process.Kill()
		b.wait(t)
	}
	ps := lines(e.ok("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.State}}"))
	for _, l := range ps {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Errorf("ps row %q", l)
			continue
		}
		e.remember(f[0])
		st := e.cstate(f[0])
		switch st.Status {
		case container.StateCreated, container.StateExited:
			if l := e.leaks(f[0]); len(l) > 0 {
				t.Errorf("%s is %s but: %s", f[1], st.Status, strings.Join(l, "; "))
			}
		case container.StateRunning:
			if !alive(st.Pid) {
				t.Errorf("%s is reported running with a dead pid %d", f[1], st.Pid)
			}
		default:
			t.Errorf("%s is %s after its CLI was killed", f[1], st.Status)
		}
		if f[2] != string(st.Status) {
			t.Errorf("ps says %s is %s, inspect says %s", f[1], f[2], st.Status)
		}
	}
	// Every interrupted name is usable: the container exists, or the name is free.
	for i := 0; i < 12; i++ {
		name := fmt.Sprintf("k%d", i)
		if r := e.run(nil, "inspect", "--type", "container", name); r.code != 0 {
			e.runD("--name", name, box, "true")
		}
	}
	if r := e.run(nil, append([]string{"rm", "-f"}, lines(e.ok("ps", "-aq"))...)...); r.code != 0 {
		t.Errorf("rm -f of every container: %v", r)
	}
	if left := e.ok("ps", "-aq"); left != "" {
		t.Errorf("after rm -f: %q", left)
	}
}

// TestCrashKillMonitor: kill -9 of a container's monitor: the next command
// reports it stopped (not stuck running), its process is gone, nothing of
// it is left; other containers do not notice; it can be started again.
func TestCrashKillMonitor(t *testing.T) {
	e := newCtrEnv(t)
	a := e.runD("--name", "victim", box, "sleep", "1000")
	b := e.runD("--name", "bystander", box, "sleep", "1000")
	aPid, bPid := e.cstate(a).Pid, e.cstate(b).Pid
	shim := shimPid(a)
	if shim == 0 {
		t.Fatalf("no berth-shim process for %s", a[:12])
	}
	bShim := shimPid(b)
	syscall.Kill(shim, syscall.SIGKILL)
	waitFor(t, "the monitor to die", func() bool { return !alive(shim) })

	ps := lines(e.ok("ps", "-a", "--format", "{{.Names}} {{.Status}}"))
	slices.Sort(ps)
	if len(ps) != 2 || !strings.HasPrefix(ps[0], "bystander Up ") || !strings.HasPrefix(ps[1], "victim Exited ") {
		t.Errorf("ps -a after kill -9 of victim's monitor = %q, want bystander Up, victim Exited", ps)
	}
	st := e.cstate(a)
	if st.Running || st.Status != container.StateExited || st.Pid != 0 {
		t.Errorf("victim's State = %+v, want exited with no pid", st)
	}
	if alive(aPid) {
		t.Errorf("victim's process %d outlives its monitor", aPid)
	}
	for _, l := range e.leaks(a) {
		t.Errorf("after the monitor's death: %s", l)
	}
	if st := e.cstate(b); !st.Running || !alive(bPid) || !alive(bShim) {
		t.Errorf("bystander after another monitor's death: %+v (monitor alive %v)", st, alive(bShim))
	}
	// The victim can be started again.
	e.ok("start", "victim")
	if st := e.cstate(a); !st.Running || !alive(st.Pid) {
		t.Errorf("start after the monitor's death: %+v", st)
	}

	// The monitor killed while the container is paused.
	e.ok("pause", "bystander")
	syscall.Kill(bShim, syscall.SIGKILL)
	waitFor(t, "the monitor to die", func() bool { return !alive(bShim) })
	if st := e.cstate(b); st.Running || st.Paused || st.Status != container.StateExited {
		t.Errorf("bystander after its monitor died while paused: %+v, want exited", st)
	}
	waitFor(t, "the frozen process to be gone", func() bool { return !alive(bPid) })
	for _, l := range e.leaks(b) {
		t.Errorf("after the death of a paused container's monitor: %s", l)
	}
}

// TestConcurrentSameName: two `run -d --name X` at once: exactly one wins,
// the other says the name is in use (125); nothing of the loser is left.
func TestConcurrentSameName(t *testing.T) {
	e := newCtrEnv(t)
	for round := 0; round < 5; round++ {
		name := fmt.Sprintf("same%d", round)
		var wg sync.WaitGroup
		results := make([]result, 2)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := e.berthCmd("run", "-d", "--name", name, box, "sleep", "1000")
				var out, errb strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &errb
				err := cmd.Run()
				results[i] = result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
				_ = err
			}()
		}
		wg.Wait()
		wins, losses := 0, 0
		for _, r := range results {
			switch {
			case r.code == 0:
				wins++
				e.remember(strings.TrimSpace(r.stdout))
			case r.code == 125 && strings.Contains(r.stderr, "is already in use"):
				losses++
			default:
				t.Errorf("round %d: a run ended %d: %q", round, r.code, r.stderr)
			}
		}
		if wins != 1 || losses != 1 {
			t.Errorf("round %d: %d wins and %d name conflicts, want 1 and 1", round, wins, losses)
		}
		if got := lines(e.ok("ps", "-a", "--filter", "name="+name, "--format", "{{.Names}}")); !slices.Equal(got, []string{name}) {
			t.Errorf("round %d: ps lists %q", round, got)
		}
	}
	if n := containerDirs(t, e.root); n != 5 {
		t.Errorf("%d container directories, want 5 (the losers must leave none)", n)
	}
}

// TestConcurrentRuns: parallel run -d and rm on one store lose nothing.
func TestConcurrentRuns(t *testing.T) {
	e := newCtrEnv(t)
	const n = 10
	var wg sync.WaitGroup
	errs := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := e.berthCmd("run", "-d", "--name", fmt.Sprintf("par%d", i), "-l", "batch=1", box, "sleep", "1000")
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Sprintf("%v: %s", err, out)
			}
		}()
	}
	wg.Wait()
	for i, s := range errs {
		if s != "" {
			t.Errorf("run -d par%d: %s", i, s)
		}
	}
	got := lines(e.ok("ps", "--filter", "label=batch=1", "--format", "{{.Names}}"))
	if len(got) != n {
		t.Errorf("after %d parallel runs ps shows %d: %q", n, len(got), got)
	}
	for _, id := range lines(e.ok("ps", "-q", "--no-trunc")) {
		e.remember(id)
	}
	// Parallel stops and removes.
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.berthCmd("rm", "-f", fmt.Sprintf("par%d", i)).Run()
		}()
	}
	wg.Wait()
	if left := e.ok("ps", "-aq"); left != "" {
		t.Errorf("after parallel rm -f: %q", left)
	}
	if _, err := os.Stat(e.root); err != nil {
		t.Fatal(err)
	}
}

// TestCrashKillCLIBeforeTakingExit: a foreground run killed after its
// container ended but before it took the exit over from the monitor (it
// is stopped meanwhile, then killed): the monitor records the exit as soon
// as the CLI is gone, as Docker's daemon does, and an --rm container is
// removed. The monitor's fallback for a claimant that never takes the exit
// is 10 s; the bound below is half of that, not a speed check.
func TestCrashKillCLIBeforeTakingExit(t *testing.T) {
	e := newCtrEnv(t)
	for _, rm := range []bool{false, true} {
		name := fmt.Sprintf("fg-rm-%v", rm)
		args := []string{"run", "--name", name}
		if rm {
			args = append(args, "--rm")
		}
		fg := e.start(append(args, box, "sh", "-c", "echo started; exec sleep 1000")...)
		waitFor(t, "the foreground run to print", func() bool { return fg.stdout.String() == "started\n" })
		id := e.remember(name)
		pid := e.cstate(id).Pid
		if err := syscall.Kill(fg.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		syscall.Kill(pid, syscall.SIGKILL)
		waitFor(t, "the container's process to end", func() bool { return !alive(pid) })
		// The monitor has offered the exit to the stopped CLI by now or
		// does so in a moment; either way the CLI never takes it.
		time.Sleep(200 * time.Millisecond)
		syscall.Kill(fg.cmd.Process.Pid, syscall.SIGKILL)
		fg.wait(t)
		killed := time.Now()
		recorded := func() bool {
			if rm {
				return e.run(nil, "inspect", "--type", "container", id).code != 0
			}
			return !e.cstate(id).Running
		}
		waitFor(t, name+"'s exit to be recorded", recorded)
		if d := time.Since(killed); d > 5*time.Second {
			t.Errorf("%s: the exit was recorded %v after the CLI was killed, want at once", name, d)
		}
		if !rm {
			if st := e.cstate(id); st.ExitCode != 137 || st.Status != container.StateExited {
				t.Errorf("%s: state %+v, want exited 137", name, st)
			}
		}
	}
}
