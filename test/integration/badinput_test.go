package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Invalid configs: create fails with a message naming what is wrong and
// leaves no state, cgroup, mount or process behind.
func TestBadInput(t *testing.T) {
	tests := []struct {
		name    string
		adapt   func(c *container)
		mention []string // the error names one of these (the field or the value)
		dev     deviation
		// warns: the spec allows a warning instead of an error (one that
		// names the value): config.md says capabilities that cannot be
		// mapped MUST be logged as a warning, and runtimes SHOULD NOT fail.
		warns bool
	}{
		{"unknown namespace type", func(c *container) {
			c.spec.Linux.Namespaces = append(c.spec.Linux.Namespaces, specs.LinuxNamespace{Type: "bogusns"})
		}, []string{"bogusns"}, deviation{}, false},
		{"bad uid mapping", func(c *container) {
			c.spec.Linux.Namespaces = append(c.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			c.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 4294967290, Size: 100}}
			c.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		}, []string{"uid", "mapping", "uid_map"}, deviation{}, false},
		{"missing rootfs", func(c *container) {
			c.spec.Root.Path = "no-such-rootfs"
		}, []string{"no-such-rootfs", "rootfs", "root.path"}, deviation{}, false},
		{"mount destination escaping with ..", func(c *container) {
			c.spec.Mounts = append(c.spec.Mounts, specs.Mount{
				Destination: "/../../../../../../.." + filepath.Join(c.dir, "escaped"), Type: "tmpfs", Source: "tmpfs"})
		}, []string{"destination", ".."}, dotDotDestinationAccepted, false},
		{"unknown seccomp syscall", func(c *container) {
			c.spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"no_such_syscall"}, Action: specs.ActErrno}}}
		}, []string{"no_such_syscall"}, unknownSyscallIgnored, false},
		{"unknown capability", func(c *container) {
			c.spec.Process.Capabilities.Bounding = append(c.spec.Process.Capabilities.Bounding, "CAP_NO_SUCH_THING")
		}, []string{"cap_no_such_thing"}, unknownCapabilitySilent, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newContainer(t, sh("echo should not run; exec sleep 1000000"))
			tt.adapt(c)
			r := c.create()
			if _, err := os.Stat(filepath.Join(c.dir, "escaped")); err == nil {
				t.Errorf("the runtime created %s on the host", filepath.Join(c.dir, "escaped"))
			}
			if r.code == 0 && tt.warns && containsAny(strings.ToLower(r.stderr), tt.mention) {
				t.Logf("accepted with a warning, as the spec allows: %s", r.stderr)
				c.rt("delete", "--force", c.id)
				assertNoLeftovers(t, c)
				return
			}
			if r.code == 0 && tt.dev.applies() {
				c.rt("delete", "--force", c.id)
				assertNoLeftovers(t, c)
				tt.dev.skip(t)
			}
			if r.code == 0 {
				t.Fatalf("create accepted the config")
			}
			assertCleanError(t, r)
			if msg := strings.ToLower(r.stderr); !containsAny(msg, tt.mention) {
				t.Errorf("the error %q names none of %q", r.stderr, tt.mention)
			}
			assertNoLeftovers(t, c)
		})
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, strings.ToLower(sub)) {
			return true
		}
	}
	return false
}

// SIGKILL of the runtime in the middle of create (while a createRuntime
// hook runs) leaves nothing that `delete --force` does not remove.
func TestKilledDuringCreate(t *testing.T) {
	c := newContainer(t, sh("exec sleep 1000000"))
	hookPid := filepath.Join(c.dir, "hook.pid")
	c.spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{
		Path: "/bin/sh", Args: []string{"sh", "-c", "echo $$ > " + hookPid + "; exec sleep 1000000"},
	}}}
	c.writeSpec()
	cmd := rt.command(t.Context(), "--root", c.root, "create", "--bundle", c.bundle, c.id)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start create: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var pid int
	waitFor(t, "the createRuntime hook to run", func() bool {
		data, err := os.ReadFile(hookPid)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil && pid > 0
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill the runtime: %v", err)
	}
	select {
	case <-done:
	case <-time.After(pollGuard):
		t.Fatal("the killed runtime did not exit")
	}
	// The hook is the test's own process, orphaned by the kill.
	killProcess(pid)
	waitFor(t, "the hook to die", func() bool { return !processAlive(pid) })

	r := c.rt("delete", "--force", c.id)
	t.Logf("delete --force after the kill: %v", r)
	leftoverAfterKill.skip(t)
	assertNoLeftovers(t, c)
}

// berth-runtime without its namespace stage next to it (installed alone):
// create names the missing program and leaves nothing behind.
func TestMissingNsenter(t *testing.T) {
	requireRuntime(t)
	if !isBerth() {
		t.Skip("berth-nsenter is berth-runtime's own")
	}
	c := newContainer(t, sh("echo should not run"))
	c.writeSpec()
	data, err := os.ReadFile(rt.path)
	if err != nil {
		t.Fatal(err)
	}
	alone := filepath.Join(t.TempDir(), "berth-runtime")
	if err := os.WriteFile(alone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(alone, "--root", c.root, "create", "--bundle", c.bundle, c.id).CombinedOutput()
	if err == nil {
		t.Fatalf("create without berth-nsenter succeeded: %s", out)
	}
	assertCleanError(t, result{stderr: string(out)}, "berth-nsenter", filepath.Dir(alone))
	assertNoLeftovers(t, c)
}

// SIGKILL of the runtime at any moment of a create without hooks (where
// berth-runtime builds the rootfs from a thread of its own while
// berth-nsenter waits as the init): `delete --force` then leaves nothing,
// and the init does not outlive the runtime it waited for.
func TestKilledAnywhereInCreate(t *testing.T) {
	c := newContainer(t, sh("exec sleep 1000000"))
	c.writeSpec()
	// The init inherits the runtime's stdio: /dev/null here, so that
	// nothing waits for it to close them.
	start := time.Now()
	if err := rt.command(t.Context(), "--root", c.root, "create", "--bundle", c.bundle, c.id).Run(); err != nil {
		t.Fatalf("create: %v", err)
	}
	took := time.Since(start)
	if r := c.rt("delete", "--force", c.id); r.code != 0 {
		t.Fatalf("delete: %v", r)
	}
	const rounds = 20
	for i := range rounds {
		cmd := rt.command(t.Context(), "--root", c.root, "create", "--bundle", c.bundle, c.id)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start create: %v", err)
		}
		time.Sleep(took * time.Duration(i) / rounds)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// An init left without its runtime ends on its own (EOF on the
		// bootstrap socket); one the create finished waits for start.
		r := c.rt("delete", "--force", c.id)
		if r.code != 0 && !strings.Contains(r.stderr, "does not exist") && !strings.Contains(r.stderr, "not exist") {
			t.Logf("round %d: delete --force: %v", i, r)
		}
		leftoverAfterKill.skip(t)
		assertNoLeftovers(t, c)
		if t.Failed() {
			t.Fatalf("round %d (killed %v into a %v create) left the above", i, took*time.Duration(i)/rounds, took)
		}
	}
}
