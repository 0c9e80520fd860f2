package shimtest

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/shim"
)

func TestExitCodeAndBothStreamsLogged(t *testing.T) {
	c := newCtr(t, sh("echo out; echo err >&2; exit 3"))
	c.start()
	e := c.waitGone()
	if e.ExitCode != 3 || e.OOMKilled || e.RestartCount != 0 || e.Restarting {
		t.Errorf("exit = %+v, want code 3, no OOM, no restart", e)
	}
	got := c.records()
	want := []string{"stdout:out\n", "stderr:err\n"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("log records = %q, want %q", got, want)
	}
	for _, name := range []string{"attach.sock", "control.sock"} {
		if _, err := os.Stat(filepath.Join(c.sdir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after exit: %v, want it removed", name, err)
		}
	}
	if out, err := c.rt("state", c.id); err == nil {
		t.Errorf("runtime state after exit succeeded, want the container deleted: %s", out)
	}
}

func TestExitCodeOfSignal(t *testing.T) {
	c := newCtr(t, []string{"sleep", "1000"})
	c.start()
	if out, err := c.rt("kill", c.id, "KILL"); err != nil {
		t.Fatalf("runtime kill: %v: %s", err, out)
	}
	if e := c.waitGone(); e.ExitCode != 137 {
		t.Errorf("exit code = %d, want 137 (128+SIGKILL)", e.ExitCode)
	}
}

func TestStartErrorIsTheRuntimes(t *testing.T) {
	c := newCtr(t, []string{"/no/such/binary"})
	_, err := c.tryStart()
	var se *shim.StartError
	if !errors.As(err, &se) {
		t.Fatalf("Start error = %v, want a *shim.StartError", err)
	}
	if !strings.Contains(se.Msg, "/no/such/binary") || !strings.HasPrefix(se.Msg, "OCI runtime") {
		t.Errorf("Start error = %q, want the runtime's message naming /no/such/binary", se.Msg)
	}
	waitFor(t, "the monitor to exit", func() bool { return !shim.Alive(c.sdir) })
	if out, err := c.rt("state", c.id); err == nil {
		t.Errorf("runtime state after a failed start succeeded, want nothing left: %s", out)
	}
}

func TestExitCommandRuns(t *testing.T) {
	c := newCtr(t, sh("exit 0"))
	mark := filepath.Join(c.dir, "exited")
	c.opts.ExitCommand = "/bin/busybox"
	c.opts.ExitArgs = []string{"sh", "-c", `cat "$0" > "$1"`, filepath.Join(c.sdir, "exit.json"), mark}
	c.start()
	c.waitGone()
	b, err := os.ReadFile(mark)
	if err != nil {
		t.Fatalf("the exit command did not run: %v", err)
	}
	if !bytes.Contains(b, []byte(`"exitCode":0`)) {
		t.Errorf("exit.json as the exit command saw it = %q, want it written before", b)
	}
}

func TestAStartForgetsThePreviousLife(t *testing.T) {
	c := newCtr(t, []string{"sleep", "1000"})
	for name, content := range map[string]string{"exit.json": `{"exitCode":99}`, "stopped": ""} {
		if err := os.WriteFile(filepath.Join(c.sdir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.start()
	if _, err := shim.ReadExit(c.sdir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadExit of a running container = %v, want ErrNotExist (the old exit.json removed)", err)
	}
	if _, err := os.Stat(filepath.Join(c.sdir, "stopped")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stopped file after a new start: %v, want it removed", err)
	}
	if out, err := c.rt("kill", c.id, "KILL"); err != nil {
		t.Fatalf("runtime kill: %v: %s", err, out)
	}
	c.waitGone()
}

// TestExitHandedOver: a client that attached with Exit takes the final
// exit (TakeExit, after the end of its output), records it and says so
// (Done): the exit command does not run, and the monitor is gone when Done
// returns. Taken and given back (Close without Done), or never taken, the
// exit command runs.
func TestExitHandedOver(t *testing.T) {
	for _, how := range []string{"done", "given back", "claimant gone"} {
		t.Run(how, func(t *testing.T) {
			c := newCtr(t, sh("echo bye; exit 7"))
			mark := filepath.Join(c.dir, "exit-command-ran")
			c.opts.ExitCommand = "/bin/busybox"
			c.opts.ExitArgs = []string{"touch", mark}
			ap := c.attachBeforeStart(shim.AttachOptions{Stdout: true, Stderr: true, Exit: true})
			c.start()
			a := *ap
			if how == "claimant gone" {
				a.Close() // before the exit: the monitor does not wait for it
				c.waitGone()
				if _, err := os.Stat(mark); err != nil {
					t.Errorf("the claimant went away before the exit: the exit command did not run: %v", err)
				}
				return
			}
			var stdout bytes.Buffer
			if err := a.Demux(&stdout, nil); err != nil || stdout.String() != "bye\n" {
				t.Errorf("attach output = %q, %v; want bye", stdout.String(), err)
			}
			h, err := shim.TakeExit(c.sdir)
			if err != nil {
				t.Fatalf("TakeExit: %v", err)
			}
			if h.Exit.ExitCode != 7 {
				t.Errorf("the exit taken = %+v, want code 7", h.Exit)
			}
			// The monitor deletes the container from the runtime while the
			// claimant records the exit; WaitDeleted waits for that.
			if err := h.WaitDeleted(); err != nil {
				t.Errorf("WaitDeleted: %v", err)
			}
			if out, err := c.rt("state", c.id); err == nil {
				t.Errorf("runtime state after WaitDeleted succeeded, want the container deleted: %s", out)
			}
			if _, err := shim.TakeExit(c.sdir); err == nil {
				t.Errorf("a second TakeExit succeeded, want it refused")
			}
			if how == "done" {
				if err := h.Done(); err != nil {
					t.Fatalf("Done: %v", err)
				}
				if shim.Alive(c.sdir) {
					t.Errorf("the monitor is alive after Done returned")
				}
				if _, err := os.Stat(mark); err == nil {
					t.Errorf("the exit command ran although the exit was recorded by the client")
				}
				return
			}
			h.Close()
			waitFor(t, "the monitor to exit", func() bool { return !shim.Alive(c.sdir) })
			if _, err := os.Stat(mark); err != nil {
				t.Errorf("the exit was given back: the exit command did not run: %v", err)
			}
		})
	}
}
