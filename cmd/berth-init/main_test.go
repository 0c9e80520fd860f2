package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/console"
)

// The test binary doubles as berth-init: with this variable set it runs
// main's body on its arguments instead of the tests.
const asInit = "BERTH_INIT_TEST_AS_INIT"

func TestMain(m *testing.M) {
	if os.Getenv(asInit) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// initCmd runs berth-init (this binary) with args.
func initCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asInit+"=1")
	return cmd
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("run berth-init: %v", err)
	}
	return ee.ExitCode()
}

func TestExitStatus(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"success", []string{"--", "true"}, 0},
		{"exit code", []string{"--", "sh", "-c", "exit 3"}, 3},
		{"without --", []string{"sh", "-c", "exit 4"}, 4},
		{"killed by a signal", []string{"--", "sh", "-c", "kill -KILL $$"}, 128 + 9},
		{"terminated by a signal", []string{"--", "sh", "-c", "kill -TERM $$"}, 128 + 15},
		{"not found", []string{"--", "berth-init-no-such-program"}, 127},
		{"not found by path", []string{"--", "/no/such/program"}, 127},
		{"not executable", []string{"--", notExec}, 126},
		{"no program", []string{"--"}, 2},
	} {
		err := initCmd(tc.args...).Run()
		if got := exitCode(t, err); got != tc.want {
			t.Errorf("%s: berth-init %q exited %d, want %d", tc.name, tc.args, got, tc.want)
		}
	}
}

// started runs berth-init with a shell script and waits until the script
// printed "ready".
func started(t *testing.T, script string) (*exec.Cmd, *bufio.Reader, io.WriteCloser) {
	t.Helper()
	cmd := initCmd("--", "sh", "-c", script)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	r := bufio.NewReader(stdout)
	line, err := r.ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("berth-init's program printed %q, %v; want ready", line, err)
	}
	return cmd, r, stdin
}

func TestForwardsSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGQUIT} {
		name := strings.TrimPrefix(fmt.Sprint(sig), "signal ")
		t.Run(name, func(t *testing.T) {
			n := int(sig)
			// The trap exits with the signal's number; a background
			// sleep keeps the shell waiting where a trap can interrupt.
			script := fmt.Sprintf(`trap 'kill $s 2>/dev/null; echo got %d; exit %d' %d; echo ready; while :; do sleep 1 & s=$!; wait $s; done`, n, n, n)
			cmd, out, _ := started(t, script)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(out)
			code := exitCode(t, cmd.Wait())
			if code != n || !strings.Contains(string(rest), fmt.Sprintf("got %d", n)) {
				t.Errorf("berth-init given %v: exited %d with output %q, want the program to trap it and exit %d", sig, code, rest, n)
			}
		})
	}
}

// procStat returns the state letter and parent of pid; state is "" when
// the process is gone.
func procStat(pid int) (state string, ppid int) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return "", 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid
}

func TestReapsOrphans(t *testing.T) {
	// An inner shell starts a short sleep in the background and exits at
	// once: the sleep is orphaned to berth-init (a subreaper here), which
	// must reap it while the program keeps running.
	cmd, out, stdin := started(t, `echo ready; sh -c 'sleep 0.3 & echo $!'; read x || true`)
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatalf("read the orphan's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("orphan pid %q: %v", line, err)
	}
	// Poll until the orphan is gone, noting whether it was berth-init's
	// child meanwhile. The bound is a liveness check, not a speed test.
	adopted := false
	state, ppid := procStat(pid)
	for i := 0; i < 3000 && state != ""; i++ {
		adopted = adopted || ppid == cmd.Process.Pid
		time.Sleep(10 * time.Millisecond)
		state, ppid = procStat(pid)
	}
	if state != "" {
		t.Errorf("orphan %d still exists in state %q: berth-init did not reap it", pid, state)
	}
	if !adopted {
		t.Errorf("orphan %d was never a child of berth-init (pid %d): it is not a subreaper", pid, cmd.Process.Pid)
	}
	stdin.Close()
	if code := exitCode(t, cmd.Wait()); code != 0 {
		t.Errorf("berth-init exited %d after the program ended normally, want 0", code)
	}
}

// On a terminal the program's process group is the foreground one, so
// that ^C reaches the program directly.
func TestForegroundOnTerminal(t *testing.T) {
	master, slave, err := console.OpenPty("/dev/ptmx")
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer master.Close()
	cmd := initCmd("--", "sh", "-c", `set -- $(cat /proc/$$/stat); echo "pid=$1 pgrp=$5 tpgid=$8"`)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var buf bytes.Buffer
	io.Copy(&buf, master) // ends with EIO once the last holder of the slave exits
	if code := exitCode(t, cmd.Wait()); code != 0 {
		t.Fatalf("berth-init exited %d: %s", code, buf.String())
	}
	var pid, pgrp, tpgid int
	out := buf.String()
	if i := strings.Index(out, "pid="); i >= 0 {
		fmt.Sscanf(out[i:], "pid=%d pgrp=%d tpgid=%d", &pid, &pgrp, &tpgid)
	}
	if pid == 0 || pgrp != pid || tpgid != pid {
		t.Errorf("program's pid/pgrp/foreground group = %d/%d/%d (output %q), want a group of its own in the foreground", pid, pgrp, tpgid, out)
	}
}
