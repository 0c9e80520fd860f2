package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berthproject/berth/internal/shim/jsonlog"
)

// The container monitor hands an idle container to berth-shim-idle (a
// small C program, in the same process) and takes it back on a request or
// the init's exit; cmd/berth-shim/idle.go explains. These tests make the
// hand-over quick (BERTH_SHIM_IDLE) and look at what a user relies on:
// the log written while idle is what the Go monitor would have written,
// and every request reaches an idle container.

// idleMonitor waits until the container's monitor is berth-shim-idle,
// and returns its pid (which must be the monitor's pid all along).
func (e *ctrEnv) idleMonitor(id string) int {
	e.t.Helper()
	pid := shimPid(id)
	if pid == 0 {
		e.t.Fatalf("no monitor for %s", id[:12])
	}
	waitFor(e.t, "the monitor of "+id[:12]+" to hand over to berth-shim-idle", func() bool {
		return strings.Contains(cmdline(pid), "berth-shim-idle ")
	})
	b, err := os.ReadFile(filepath.Join(e.state, "containers", id, "shim.pid"))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
		e.t.Fatalf("shim.pid %q (%v), the idle monitor is pid %d", b, err, pid)
	}
	return pid
}

// idlePayload is output meant to exercise the json-file encoding: JSON's
// escapes, what Go's encoder escapes besides (<, >, &, U+2028, U+2029),
// valid and invalid UTF-8 (overlong, surrogate, above U+10FFFF, cut short
// at the end of a line), and lines longer than a record (16 KiB), one with a
// multi-byte character across the cut.
func idlePayload() []byte {
	var b bytes.Buffer
	b.WriteString("plain line\n")
	b.WriteString("quote \" backslash \\ tab \t cr \r ctl \x01\x1f\x7f <a href=\"x\">&amp;</a>\n")
	b.WriteString("utf-8: é 日本 🎉 ls\u2028ps\u2029\n")
	b.WriteString("invalid: \xff \xc0\x80 \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82\n")
	b.WriteString("cut short \xe2\x82")
	b.WriteString("\n")
	b.WriteString(strings.Repeat("0123456789", 4000) + "\n")
	b.WriteString(strings.Repeat("x", jsonlog.MaxLine-1) + "é and on\n")
	b.WriteString("\n")
	return b.Bytes()
}

// splitLines cuts output into records as the monitor does.
func splitLines(p []byte) [][]byte {
	var out [][]byte
	var l jsonlog.Lines
	for len(p) > 0 {
		n := copy(l.Free(), p)
		p = p[n:]
		l.Commit(n, func(line []byte) { out = append(out, append([]byte(nil), line...)) })
	}
	l.Flush(func(line []byte) { out = append(out, append([]byte(nil), line...)) })
	return out
}

// TestIdleMonitorLog: output written while the monitor is idle is in the
// log byte for byte as the Go monitor writes it, stdout and stderr kept
// apart, an incomplete last line kept across the hand-back, and rotation by
// size as configured.
func TestIdleMonitorLog(t *testing.T) {
	t.Setenv("BERTH_SHIM_IDLE", "50ms")
	e := newCtrEnv(t)
	x := t.TempDir()
	payload := idlePayload()
	if err := os.WriteFile(filepath.Join(x, "payload"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	// An incomplete line goes to berth-shim-idle with the hand-over, and
	// comes back to the Go side with a stop.
	id := e.runD("-v", x+":/x", box, "sh", "-c",
		`printf 'before idle'; while [ ! -e /x/go ]; do sleep 0.05; done; echo ' after'; cat /x/payload; echo to stderr >&2; `+
			`printf 'no newline yet'; trap 'echo " and now one"; exit 0' TERM; while true; do sleep 0.05; done`)
	initPid := e.cstate(id).Pid
	pid := e.idleMonitor(id)
	if err := os.WriteFile(filepath.Join(x, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := strings.TrimSpace(e.ok("inspect", "-f", "{{.LogPath}}", id))
	want := splitLines(append([]byte("before idle after\n"), payload...))
	waitFor(t, "the payload and stderr line in the log", func() bool {
		b, _ := os.ReadFile(logPath)
		return bytes.Count(b, []byte("\n")) >= len(want)+1
	})
	if !strings.Contains(cmdline(pid), "berth-shim-idle ") {
		t.Fatalf("the monitor left berth-shim-idle for output alone: %q", cmdline(pid))
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var out, errLines [][]byte
	var rec jsonlog.Record
	for line := range bytes.Lines(b) {
		if err := jsonlog.ParseRecord(bytes.TrimSuffix(line, []byte("\n")), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		// The Go writer's encoding of the same bytes at the same time.
		var exp []byte
		switch rec.Stream {
		case jsonlog.Stdout:
			if len(out) < len(want) {
				exp = jsonlog.AppendRecord(nil, rec.Stream, want[len(out)], rec.Time)
			}
			out = append(out, line)
		case jsonlog.Stderr:
			exp = jsonlog.AppendRecord(nil, rec.Stream, []byte("to stderr\n"), rec.Time)
			errLines = append(errLines, line)
		}
		if !bytes.Equal(line, exp) {
			t.Errorf("log record\n%q\nwant (as the Go monitor writes it)\n%q", line, exp)
		}
	}
	if len(out) != len(want) || len(errLines) != 1 {
		t.Fatalf("%d stdout records (want %d) and %d stderr (want 1)", len(out), len(want), len(errLines))
	}

	// The shell has printed "no newline yet" once it catches TERM.
	waitCaught(t, initPid, syscall.SIGTERM)
	e.ok("stop", id)
	if b, _ := os.ReadFile(logPath); !bytes.Contains(b, []byte(`"log":"no newline yet and now one\n"`)) {
		t.Errorf("the line completed after the hand-back is not one record:\n%s", b[bytes.LastIndex(b[:len(b)-1], []byte("\n"))+1:])
	}
	e.ok("rm", "-f", id)

	// Rotation: 100 records of ~100 bytes into files of 2 kB, 3 files.
	id = e.runD("--log-opt", "max-size=2k", "--log-opt", "max-file=3", "-v", x+":/x", box, "sh", "-c",
		`while [ ! -e /x/go2 ]; do sleep 0.05; done; i=0; while [ $i -lt 100 ]; do echo "record $i $(printf '%050d' $i)"; i=$((i+1)); done; sleep 1000`)
	pid = e.idleMonitor(id)
	if err := os.WriteFile(filepath.Join(x, "go2"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	logPath = strings.TrimSpace(e.ok("inspect", "-f", "{{.LogPath}}", id))
	waitFor(t, "record 99 in the log", func() bool {
		b, _ := os.ReadFile(logPath)
		return bytes.Contains(b, []byte(`record 99 `))
	})
	if !strings.Contains(cmdline(pid), "berth-shim-idle ") {
		t.Fatalf("the monitor left berth-shim-idle: %q", cmdline(pid))
	}
	var all []byte
	for _, p := range []string{logPath + ".2", logPath + ".1", logPath} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("rotated log: %v", err)
		}
		if len(b) > 2048 {
			t.Errorf("%s is %d bytes, over max-size 2k", filepath.Base(p), len(b))
		}
		all = append(all, b...)
	}
	if _, err := os.Stat(logPath + ".3"); err == nil {
		t.Errorf("%s.3 exists with max-file=3", filepath.Base(logPath))
	}
	// The files hold the last records, in order, none missing.
	var nums []int
	for line := range bytes.Lines(all) {
		if err := jsonlog.ParseRecord(bytes.TrimSuffix(line, []byte("\n")), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		f := strings.Fields(string(rec.Log))
		n, _ := strconv.Atoi(f[1])
		nums = append(nums, n)
	}
	if len(nums) < 30 || nums[len(nums)-1] != 99 {
		t.Fatalf("records kept: %v", nums)
	}
	for i := 1; i < len(nums); i++ {
		if nums[i] != nums[i-1]+1 {
			t.Fatalf("records kept are not consecutive: %v", nums)
		}
	}
	logs := e.ok("logs", "--tail", "1", id)
	if !strings.HasPrefix(logs, "record 99 ") {
		t.Errorf("logs --tail 1: %q", logs)
	}
}

// TestIdleMonitorWakes: an idle container is still fully served: stop,
// attach, exit while idle (exit code, wait), the restart policy (restart
// count kept across hand-overs), with a terminal too, and kill -9 of the
// idle monitor is a monitor crash like any other.
func TestIdleMonitorWakes(t *testing.T) {
	t.Setenv("BERTH_SHIM_IDLE", "50ms")
	e := newCtrEnv(t)
	x := t.TempDir()

	// Exit while idle: the exit code, wait, a die recorded.
	id := e.runD("-v", x+":/x", box, "sh", "-c", `while [ ! -e /x/exit ]; do sleep 0.05; done; exit 3`)
	e.idleMonitor(id)
	if err := os.WriteFile(filepath.Join(x, "exit"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(e.ok("wait", id)); got != "3" {
		t.Errorf("wait of a container that exited while its monitor was idle: %q, want 3", got)
	}
	if st := e.cstate(id); st.Running || st.ExitCode != 3 {
		t.Errorf("state after the exit: running %v, exit code %d", st.Running, st.ExitCode)
	}
	e.monitorGone(id)

	// Restart policy: each run ends while idle; the count goes on.
	id = e.runD("--restart", "on-failure:2", box, "sh", "-c", `sleep 0.5; exit 1`)
	waitFor(t, "two restarts and the final exit", func() bool {
		st := e.cstate(id)
		return !st.Running && !st.Restarting && st.ExitCode == 1 &&
			strings.TrimSpace(e.ok("inspect", "-f", "{{.RestartCount}}", id)) == "2"
	})

	// Stop while idle: the stop signal, then the exit recorded.
	id = e.runD(box, "sh", "-c", `trap 'exit 7' TERM; while true; do sleep 0.05; done`)
	waitCaught(t, e.cstate(id).Pid, syscall.SIGTERM)
	e.idleMonitor(id)
	e.ok("stop", id)
	if st := e.cstate(id); st.Running || st.ExitCode != 7 {
		t.Errorf("after stop of an idle container: running %v, exit code %d (want 7)", st.Running, st.ExitCode)
	}

	// Attach to an idle container with stdin: input in, output out.
	id = e.runD("-i", box, "sh", "-c", `read l; echo "got $l"`)
	e.idleMonitor(id)
	if r := e.run(strings.NewReader("hello\n"), "attach", id); r.code != 0 || !strings.Contains(r.stdout, "got hello") {
		t.Errorf("attach to an idle container: %v", r)
	}

	// A terminal: the pty's output logged while idle (the pty's \r\n).
	id = e.runD("-t", "-v", x+":/x", box, "sh", "-c", `while [ ! -e /x/tty ]; do sleep 0.05; done; echo tty-out; while true; do sleep 0.05; done`)
	pid := e.idleMonitor(id)
	if err := os.WriteFile(filepath.Join(x, "tty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the terminal's output in the log", func() bool {
		return strings.Contains(e.ok("logs", id), "tty-out\r\n")
	})
	if !strings.Contains(cmdline(pid), "berth-shim-idle ") {
		t.Errorf("the monitor left berth-shim-idle for output alone: %q", cmdline(pid))
	}
	e.ok("stop", "-t", "1", id)

	// kill -9 of the idle monitor: reported stopped, nothing left.
	id = e.runD(box, "sleep", "1000")
	pid = e.idleMonitor(id)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the killed idle monitor to be reported", func() bool {
		return !e.cstate(id).Running
	})
	e.ok("rm", "-f", id)
}

// TestIdleMonitorReapsOrphans: with --pid host the container's orphans
// become the monitor's children; the idle monitor reaps them (no zombie
// left) and stays idle, and the container's own exit still wakes it.
func TestIdleMonitorReapsOrphans(t *testing.T) {
	t.Setenv("BERTH_SHIM_IDLE", "50ms")
	e := newCtrEnv(t)
	x := t.TempDir()
	id := e.runD("--pid", "host", "-v", x+":/x", box, "sh", "-c",
		`while [ ! -e /x/go ]; do sleep 0.05; done; (sleep 0.2 &); (sleep 0.3 &); touch /x/forked; `+
			`while [ ! -e /x/exit ]; do sleep 0.05; done; exit 5`)
	pid := e.idleMonitor(id)
	if err := os.WriteFile(filepath.Join(x, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the orphans", func() bool { _, err := os.Stat(filepath.Join(x, "forked")); return err == nil })
	children := func() (all, zombies int) {
		ents, _ := os.ReadDir("/proc")
		for _, de := range ents {
			b, err := os.ReadFile("/proc/" + de.Name() + "/stat")
			if err != nil {
				continue
			}
			s := string(b)
			i := strings.LastIndexByte(s, ')')
			f := strings.Fields(s[i+2:])
			if len(f) > 1 && f[1] == strconv.Itoa(pid) {
				all++
				if f[0] == "Z" {
					zombies++
				}
			}
		}
		return
	}
	// The orphans were adopted, have exited and are reaped: the
	// container's init (sh) is the monitor's only child again.
	waitFor(t, "the orphans to be reaped", func() bool { all, z := children(); return all == 1 && z == 0 })
	if !strings.Contains(cmdline(pid), "berth-shim-idle ") {
		t.Errorf("the monitor left berth-shim-idle for orphans: %q", cmdline(pid))
	}
	if err := os.WriteFile(filepath.Join(x, "exit"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(e.ok("wait", id)); got != "5" {
		t.Errorf("wait: %q, want 5", got)
	}
}

// TestIdleMonitorUpgrade: a monitor runs the binaries its container was
// started with for the container's whole life. berth-shim and
// berth-shim-idle replaced on disk (an upgrade, by rename) while the
// container runs change nothing: every wake and hand-over afterwards still
// executes the old pair, whose resume state and arguments match.
func TestIdleMonitorUpgrade(t *testing.T) {
	t.Setenv("BERTH_SHIM_IDLE", "50ms")
	e := newCtrEnv(t)
	x := t.TempDir()

	// A copy of the binaries, to be "upgraded" without touching the ones
	// the other tests use.
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Dir(berthBin))
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(berthBin), ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, ent.Name()), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := e.berthCmd("run", "-d", "--restart", "on-failure:2", "-v", x+":/x", box, "sh", "-c",
		`n=$(( $(cat /x/n 2>/dev/null || echo 0) + 1 )); echo $n > /x/n; while [ ! -e /x/go$n ]; do sleep 0.05; done; exit 1`)
	cmd.Path, cmd.Args[0] = filepath.Join(bin, "berth"), filepath.Join(bin, "berth")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run -d with the copied binaries: %v %s", err, out)
	}
	id := e.remember(strings.TrimSpace(string(out)))

	marker := filepath.Join(x, "new-binary-ran")
	run := func(n int) {
		t.Helper()
		waitFor(t, "run "+strconv.Itoa(n), func() bool {
			if b, err := os.ReadFile(marker); err == nil {
				t.Fatalf("before run %d: a replaced binary was executed: %s", n, b)
			}
			b, _ := os.ReadFile(filepath.Join(x, "n"))
			return strings.TrimSpace(string(b)) == strconv.Itoa(n)
		})
	}
	run(1)
	pid := e.idleMonitor(id)
	for _, name := range []string{"berth-shim", "berth-shim-idle"} {
		p := filepath.Join(bin, name)
		script := "#!/bin/sh\necho \"$0 $*\" >> " + marker + "\nexit 1\n"
		if err := os.WriteFile(p+".new", []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".new", p); err != nil {
			t.Fatal(err)
		}
	}
	for n := 1; n <= 3; n++ {
		run(n)
		if got := e.idleMonitor(id); got != pid {
			t.Fatalf("run %d: the monitor is pid %d, was %d", n, got, pid)
		}
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if exe != filepath.Join(bin, "berth-shim-idle")+" (deleted)" || string(comm) != "berth-shim-idle\n" {
			t.Errorf("run %d: the idle monitor executes %q named %q; want the replaced berth-shim-idle, named so", n, exe, comm)
		}
		if err := os.WriteFile(filepath.Join(x, "go"+strconv.Itoa(n)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the third run's exit", func() bool {
		st := e.cstate(id)
		return !st.Running && !st.Restarting && st.ExitCode == 1
	})
	if got := strings.TrimSpace(e.ok("inspect", "-f", "{{.RestartCount}}", id)); got != "2" {
		t.Errorf("RestartCount %s, want 2", got)
	}
	if b, err := os.ReadFile(marker); err == nil {
		t.Errorf("a replaced binary was executed: %s", b)
	}
	e.monitorGone(id)
}
