package shimtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/shim"
)

func TestRestartOnFailureTwice(t *testing.T) {
	c := newCtr(t, sh("echo run; exit 1"))
	c.opts.Restart = "on-failure:2"
	c.start()
	e := c.waitGone()
	if e.ExitCode != 1 || e.RestartCount != 2 || e.Restarting {
		t.Errorf("last exit = %+v, want code 1 after 2 restarts, not restarting", e)
	}
	if got := c.records(); strings.Join(got, "") != strings.Repeat("stdout:run\n", 3) {
		t.Errorf("log = %q, want three runs in the same file", got)
	}
}

func TestRestartOnFailureNotAfterSuccess(t *testing.T) {
	c := newCtr(t, sh("exit 0"))
	c.opts.Restart = "on-failure"
	c.start()
	if e := c.waitGone(); e.RestartCount != 0 || e.ExitCode != 0 {
		t.Errorf("exit = %+v, want code 0 and no restart", e)
	}
}

func TestRestartAlwaysUntilStopped(t *testing.T) {
	c := newCtr(t, []string{"sleep", "1000"})
	c.opts.Restart = "always"
	first := c.start()
	// Killed from outside: always restarts it (a new init).
	if out, err := c.rt("kill", c.id, "KILL"); err != nil {
		t.Fatalf("runtime kill: %v: %s", err, out)
	}
	var second int
	waitFor(t, "the container to run again", func() bool {
		e, err := shim.ReadExit(c.sdir)
		if err != nil || !e.Restarting {
			return false
		}
		out, err := c.rt("state", c.id)
		if err != nil || !strings.Contains(out, `"running"`) {
			return false
		}
		second = c.initPid()
		return second != first
	})
	// The engine's stop: mark it stopped, then kill it.
	if err := os.WriteFile(filepath.Join(c.sdir, "stopped"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := c.rt("kill", c.id, "KILL"); err != nil {
		t.Fatalf("runtime kill: %v: %s", err, out)
	}
	e := c.waitGone()
	if e.ExitCode != 137 || e.RestartCount != 1 || e.Restarting {
		t.Errorf("last exit = %+v, want 137 after one restart, not restarting", e)
	}
}

func TestAttachClientStaysAcrossRestarts(t *testing.T) {
	c := newCtr(t, sh("echo run; exit 2"))
	c.opts.Restart = "on-failure:1"
	ap := c.attachBeforeStart(shim.AttachOptions{Stdout: true})
	c.start()
	var out strings.Builder
	if err := (*ap).Demux(&out, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != "run\nrun\n" {
		t.Errorf("attached output = %q, want both runs", out.String())
	}
	c.waitGone()
}

func TestOOMKillIsReported(t *testing.T) {
	limit := int64(16 << 20)
	c := newCtr(t, sh("exec dd if=/dev/zero of=/dev/null bs=64M count=1"), func(s *specs.Spec) {
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
		if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err == nil {
			s.Linux.Resources.Memory.Swap = &limit
		}
	})
	// The cgroup file with the oom_kill counter: v1 memory.oom_control, v2
	// memory.events.
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err == nil {
		c.opts.OOMFile = filepath.Join("/sys/fs/cgroup/memory", c.spec.Linux.CgroupsPath, "memory.oom_control")
	} else {
		c.opts.OOMFile = filepath.Join("/sys/fs/cgroup", c.spec.Linux.CgroupsPath, "memory.events")
	}
	c.start()
	e := c.waitGone()
	if !e.OOMKilled || e.ExitCode != 137 {
		t.Errorf("exit = %+v, want 137 and oomKilled", e)
	}
}

func TestNoOOMWhenNoneHappened(t *testing.T) {
	c := newCtr(t, sh("exit 137"))
	c.opts.OOMFile = filepath.Join("/sys/fs/cgroup/memory", c.spec.Linux.CgroupsPath, "memory.oom_control")
	c.start()
	if e := c.waitGone(); e.OOMKilled || e.ExitCode != 137 {
		t.Errorf("exit = %+v, want 137 without OOM", e)
	}
}
