package shimtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/shim"
)

// TestKillAfterKillsTheRun: the monitor holds a stop's deadline: a
// container that ignores SIGTERM is killed (137) once it passes, with no
// client connected.
func TestKillAfterKillsTheRun(t *testing.T) {
	c := newCtr(t, sh(`trap "" TERM; exec sleep 1000`))
	c.start()
	if err := shim.KillAfter(c.sdir, 100*time.Millisecond); err != nil {
		t.Fatalf("KillAfter: %v", err)
	}
	if out, err := c.rt("kill", c.id, "TERM"); err != nil {
		t.Fatalf("runtime kill TERM: %v: %s", err, out)
	}
	if e := c.waitGone(); e.ExitCode != 137 {
		t.Errorf("exit after the deadline = %+v, want 137", e)
	}
}

// TestKillAfterIsAStop: a stop's deadline marks the container stopped when
// the monitor takes it, so the restart policy does not bring back what it
// kills, even if the engine's process that asked is gone before it made
// the mark itself.
func TestKillAfterIsAStop(t *testing.T) {
	c := newCtr(t, sh(`trap "" TERM; exec sleep 1000`))
	c.opts.Restart = "always"
	c.start()
	if err := shim.KillAfter(c.sdir, 100*time.Millisecond); err != nil {
		t.Fatalf("KillAfter: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(c.sdir, "stopped")); err != nil {
		t.Errorf("after KillAfter: %v, want the stopped mark", err)
	}
	if e := c.waitGone(); e.ExitCode != 137 || e.Restarting {
		t.Errorf("exit after the deadline = %+v, want 137 and no restart", e)
	}
}

// TestKillAfterSparesALaterRun: the deadline is the run's that was current
// when asked; a run the restart policy started since is not killed.
func TestKillAfterSparesALaterRun(t *testing.T) {
	c := newCtr(t, []string{"sleep", "1000"})
	c.opts.Restart = "always"
	first := c.start()
	const deadline = 500 * time.Millisecond
	asked := time.Now()
	if err := shim.KillAfter(c.sdir, deadline); err != nil {
		t.Fatalf("KillAfter: %v", err)
	}
	// The monitor marked the container stopped; a restart decided before
	// the mark (the container ended by itself as the stop began) is the
	// way a later run comes: take the mark away to get one.
	if err := os.Remove(filepath.Join(c.sdir, "stopped")); err != nil {
		t.Fatal(err)
	}
	if out, err := c.rt("kill", c.id, "KILL"); err != nil {
		t.Fatalf("runtime kill: %v: %s", err, out)
	}
	var second int
	waitFor(t, "the container to run again", func() bool {
		out, err := c.rt("state", c.id)
		if err != nil || !strings.Contains(out, `"running"`) {
			return false
		}
		second = c.initPid()
		return second != first
	})
	time.Sleep(time.Until(asked.Add(2 * deadline)))
	if !alive(second) {
		t.Errorf("the run started after the kill-after request (pid %d) was killed at its deadline", second)
	}
}
