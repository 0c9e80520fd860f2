package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A mount destination that is a symlink pointing out of the rootfs is
// resolved inside the rootfs: the mount lands there, the host is untouched.
func TestMountDestinationSymlinkStaysInside(t *testing.T) {
	c := newContainer(t)
	hostTarget := filepath.Join(c.dir, "hostside")
	link := strings.Repeat("../", 20) + strings.TrimPrefix(hostTarget, "/")
	if err := os.Symlink(link, filepath.Join(c.rootfs, "escape")); err != nil {
		t.Fatal(err)
	}
	c.spec.Mounts = append(c.spec.Mounts, specs.Mount{Destination: "/escape", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}})
	c.spec.Process.Args = []string{"sh", "-c", "echo inside > /escape/file; cat /proc/self/mountinfo"}
	r := c.run()
	if _, err := os.Stat(hostTarget); err == nil {
		t.Errorf("the runtime followed the symlink out of the rootfs: %s exists on the host", hostTarget)
	}
	if r.code != 0 {
		// Refusing the mount is safe too.
		t.Logf("the runtime refused the symlinked destination: %v", r)
		return
	}
	m, ok := findMount(parseMountinfo(t, r.stdout), hostTarget)
	if !ok || m.fsType != "tmpfs" {
		t.Errorf("no tmpfs at %s inside the container (where the symlink resolves within the rootfs):\n%s", hostTarget, r.stdout)
	}
}

// No file descriptor of the runtime reaches the container's processes.
func TestNoFdLeaks(t *testing.T) {
	// ls lists the shell's fds, not its own. No pipeline: the shell would
	// hold the pipe's fds while ls runs. "; true" stops busybox from
	// exec'ing ls in place of the shell.
	const script = `ls /proc/$$/fd; true`
	t.Run("init", func(t *testing.T) {
		if out := strings.Fields(mustRun(t, script)); strings.Join(out, " ") != "0 1 2" {
			t.Errorf("fds of the init = %v, want only 0 1 2", out)
		}
	})
	t.Run("exec", func(t *testing.T) {
		c := startedContainer(t, []string{"sleep", "1000000"})
		if out := strings.Fields(c.mustRT("exec", c.id, "sh", "-c", script).stdout); strings.Join(out, " ") != "0 1 2" {
			t.Errorf("fds of an exec'd process = %v, want only 0 1 2", out)
		}
	})
}

// CVE-2024-21626: a cwd of /proc/self/fd/N must not reach a directory the
// runtime left open on the host. Either the runtime refuses it, or the
// process's view stays inside the container.
func TestLeakedCwdFdEscape(t *testing.T) {
	host, _ := os.ReadFile("/etc/hostname") // for the message only; test/qemu's VM has none
	hostHostname := strings.TrimSpace(string(host))
	// From any host directory, enough ../ reach the host's /etc/hostname.
	probe := "cat " + strings.Repeat("../", 16) + "etc/hostname"
	for fd := 3; fd <= 10; fd++ {
		t.Run("init fd "+strconv.Itoa(fd), func(t *testing.T) {
			out, code := runContainer(t, sh(probe), func(s *specs.Spec) { s.Process.Cwd = "/proc/self/fd/" + strconv.Itoa(fd) })
			if code == 0 && strings.TrimSpace(out) != "berth" {
				t.Errorf("with cwd /proc/self/fd/%d the container read %q, want the container's hostname file (or a refusal); the host's is %q", fd, out, hostHostname)
			}
		})
	}
	c := startedContainer(t, []string{"sleep", "1000000"})
	for fd := 3; fd <= 10; fd++ {
		r := c.rt("exec", "--cwd", "/proc/self/fd/"+strconv.Itoa(fd), c.id, "sh", "-c", probe)
		if r.code == 0 && strings.TrimSpace(r.stdout) != "berth" {
			t.Errorf("exec with cwd /proc/self/fd/%d read %q, want the container's hostname file (or a refusal)", fd, r.stdout)
		}
	}
}

// CVE-2019-5736: while exec brings a runtime process into the container,
// a container process tries to open for writing the exe link of every
// process it can see that is not one of its own. None may succeed, and the
// host binary stays as it was.
func TestRuntimeBinaryNotWritable(t *testing.T) {
	before := hostFileSum(t, rt.path)
	// The attacker loops over /proc; comm tells its own processes apart.
	// The open runs in a subshell: a failed redirection of the special
	// builtin ":" would end a non-interactive shell.
	const attacker = `while true; do for p in /proc/[0-9]*; do
		case "$(cat $p/comm 2>/dev/null)" in sh|sleep|cat|true|"") continue;; esac
		if ( : >> $p/exe ) 2>/dev/null; then echo "WROTE $p $(cat $p/comm)" >> /tmp/wrote; else echo $p >> /tmp/tried; fi
	done; done`
	c := startedContainer(t, []string{"sh", "-c", attacker})
	tried := filepath.Join(c.rootfs, "tmp/tried")
	// berth-runtime finishes most exec'd processes in its C stage, whose
	// moment in the container is too short to be caught reliably: exec
	// through the Go init (the runtime binary itself in the container)
	// until the attacker has caught a runtime process at least once, then
	// through the C stage as well.
	t.Setenv("BERTH_RUNTIME_EXEC_INIT", "go")
	for i := 0; !fileExists(tried); i++ {
		if i == 500 {
			t.Fatal("in 500 execs the container never saw a runtime process: the test proves nothing")
		}
		c.mustRT("exec", c.id, "true")
	}
	t.Setenv("BERTH_RUNTIME_EXEC_INIT", "")
	for i := 0; i < 100; i++ {
		c.mustRT("exec", c.id, "true")
	}
	if wrote, err := os.ReadFile(filepath.Join(c.rootfs, "tmp/wrote")); err == nil {
		t.Errorf("the container opened a runtime process's exe for writing:\n%s", wrote)
	}
	if after := hostFileSum(t, rt.path); after != before {
		t.Errorf("the runtime binary %s changed: %s -> %s", rt.path, before, after)
	}
}

// The container cannot reach the host's cgroup release_agent nor /proc/sys.
func TestHostControlFilesNotWritable(t *testing.T) {
	agents, _ := filepath.Glob("/sys/fs/cgroup/*/release_agent")
	before := map[string]string{}
	for _, a := range append(agents, "/proc/sys/kernel/core_pattern") {
		before[a] = readFile(t, a)
	}
	// Only files that exist count: /sys/fs/cgroup may be a writable tmpfs.
	script := `for f in /sys/fs/cgroup/release_agent /sys/fs/cgroup/*/release_agent; do
			[ -f $f ] && { echo /evil > $f; } 2>/dev/null && echo "wrote $f"
		done
		mkdir /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg 2>/dev/null && echo "mounted cgroup"
		{ echo '|/evil' > /proc/sys/kernel/core_pattern; } 2>/dev/null && echo "wrote core_pattern"
		{ echo h > /proc/sysrq-trigger; } 2>/dev/null && echo "wrote sysrq-trigger"
		true`
	if out := mustRun(t, script); out != "" {
		t.Errorf("the container wrote host control files:\n%s", out)
	}
	for f, was := range before {
		if now := readFile(t, f); now != was {
			t.Errorf("host %s changed from %q to %q", f, was, now)
		}
	}
}
