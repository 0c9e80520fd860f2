package containerdtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const memoryLimit = 64 << 20 // bytes, for --memory-limit

// hostNamespaces are the namespace links of the test process.
func hostNamespace(t *testing.T, ns string) string {
	t.Helper()
	link, err := os.Readlink("/proc/self/ns/" + ns)
	if err != nil {
		t.Fatalf("read the host's %s namespace: %v", ns, err)
	}
	return link
}

// TestRunForeground runs `ctr run --rm` in the foreground through the runc
// shim with the runtime under test and checks what ctr reports and what
// the container saw.
func TestRunForeground(t *testing.T) {
	requireEnv(t)
	tests := []struct {
		name       string
		args       []string                                  // command in the container
		extra      []string                                  // ctr run flags
		flags      func(t *testing.T, c *container) []string // more flags, made for the container
		wantCode   int                                       // -1: any non-zero code
		wantStdout []string
		wantStderr []string
		check      func(t *testing.T, stdout string)
		skipFor    map[string]string // reference runtime name -> known deviation
	}{
		{
			name:       "stdout and stderr reach ctr",
			args:       []string{"sh", "-c", "echo out-marker; echo err-marker >&2"},
			wantStdout: []string{"out-marker\n"},
			wantStderr: []string{"err-marker\n"},
		},
		{
			name:     "exit code propagates",
			args:     []string{"sh", "-c", "echo before-exit; exit 3"},
			wantCode: 3, wantStdout: []string{"before-exit\n"},
		},
		{
			name: "own pid, uts, mount, ipc and net namespaces",
			args: []string{"sh", "-c", "echo pid=$$; for n in pid uts mnt ipc net; do echo $n=$(readlink /proc/self/ns/$n); done"},
			check: func(t *testing.T, stdout string) {
				if !strings.Contains(stdout, "pid=1\n") {
					t.Errorf("the shell's pid inside is not 1:\n%s", stdout)
				}
				for _, ns := range []string{"pid", "uts", "mnt", "ipc", "net"} {
					host := hostNamespace(t, ns)
					inside := valueOf(stdout, ns+"=")
					if inside == "" || inside == host {
						t.Errorf("%s namespace inside is %q, want a new one (host %s)", ns, inside, host)
					}
				}
			},
		},
		{
			// ctr's default spec mounts no cgroup filesystem: the limit is
			// checked from the host in TestDetachedTask.
			name: "runs in the cgroup given by --cgroup",
			args: []string{"sh", "-c", "cat /proc/self/cgroup"},
			check: func(t *testing.T, stdout string) {
				if !strings.Contains(stdout, ":memory:"+env.cgParent+"/") && !strings.Contains(stdout, "0::"+env.cgParent+"/") {
					t.Errorf("/proc/self/cgroup inside does not name a cgroup under %s:\n%s", env.cgParent, stdout)
				}
			},
		},
		{
			// containerd's default profile (Docker's): filter mode, and
			// unshare(CLONE_NEWUSER) refused without CAP_SYS_ADMIN.
			name:       "--seccomp loads containerd's default profile",
			args:       []string{"sh", "-c", "grep Seccomp: /proc/self/status; unshare -U true || echo unshare-refused"},
			extra:      []string{"--seccomp"},
			wantStdout: []string{"Seccomp:\t2\n", "unshare-refused\n"},
		},
		{
			name:  "--privileged: every capability of the bounding set, host devices",
			args:  []string{"sh", "-c", "grep CapEff: /proc/self/status; test -c /dev/kmsg && echo host-devices"},
			extra: []string{"--privileged"},
			check: func(t *testing.T, stdout string) {
				host := valueOf(readFile(t, "/proc/self/status"), "CapBnd:")
				if got := valueOf(stdout, "CapEff:"); got != host {
					t.Errorf("CapEff inside %q, want the host's bounding set %q", got, host)
				}
				if !strings.Contains(stdout, "host-devices\n") {
					t.Errorf("no /dev/kmsg in a privileged container:\n%s", stdout)
				}
			},
		},
		{
			name:       "--read-only root",
			args:       []string{"sh", "-c", "touch /file 2>&1; echo rc=$?"},
			extra:      []string{"--read-only"},
			wantStdout: []string{"Read-only file system\n", "rc=1\n"},
		},
		{
			name: "--mount of a host dir, read-only",
			args: []string{"sh", "-c", "cat /mnt/file; touch /mnt/new 2>&1; echo rc=$?"},
			flags: func(t *testing.T, c *container) []string {
				dir := filepath.Join(env.d.dir, c.id+"-bind")
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatalf("create %s: %v", dir, err)
				}
				if err := os.WriteFile(filepath.Join(dir, "file"), []byte("from-the-host\n"), 0o644); err != nil {
					t.Fatalf("write %s/file: %v", dir, err)
				}
				return []string{"--mount", "type=bind,src=" + dir + ",dst=/mnt,options=rbind:ro"}
			},
			wantStdout: []string{"from-the-host\n", "Read-only file system\n", "rc=1\n"},
		},
		{
			name:       "--env and --cwd",
			args:       []string{"sh", "-c", "echo foo=$FOO; pwd"},
			extra:      []string{"--env", "FOO=bar", "--cwd", "/tmp"},
			wantStdout: []string{"foo=bar\n", "/tmp\n"},
		},
		{
			name:       "--uidmap and --gidmap: a user namespace",
			args:       []string{"sh", "-c", "echo uid_map $(cat /proc/self/uid_map); echo gid_map $(cat /proc/self/gid_map); echo id=$(id -u)"},
			extra:      []string{"--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"},
			wantStdout: []string{"uid_map 0 100000 65536\n", "gid_map 0 100000 65536\n", "id=0\n"},
		},
		{
			name:       "--rootfs-propagation shared",
			args:       []string{"sh", "-c", "grep ' / / ' /proc/self/mountinfo"},
			extra:      []string{"--rootfs-propagation", "shared"},
			wantStdout: []string{" shared:"},
			skipFor:    map[string]string{"runc": "(1.1.5) leaves the root mount private with rootfsPropagation shared (a deviation of test/integration)"},
		},
		{
			name:       "--no-pivot",
			args:       []string{"sh", "-c", "echo no-pivot-ran"},
			extra:      []string{"--no-pivot"},
			wantStdout: []string{"no-pivot-ran\n"},
		},
		{
			// The shell holds the 40 MB string: the OOM killer picks it.
			name:     "--memory-limit: the OOM-killed init makes ctr exit 137",
			args:     []string{"sh", "-c", "x=$(head -c 40000000 /dev/zero | tr '\\0' a); echo survived"},
			extra:    []string{"--memory-limit", strconv.Itoa(16 << 20)},
			wantCode: 137,
		},
		{
			name:       "a missing command fails ctr with the runtime's error",
			args:       []string{"/no-such-command"},
			wantCode:   -1,
			wantStderr: []string{"/no-such-command"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if why, ok := tt.skipFor[env.rtName]; ok {
				t.Skipf("reference runtime %s %s", env.rtName, why)
			}
			c := newContainer(t)
			from := logSize()
			extra := append([]string{"--rm"}, tt.extra...)
			if tt.flags != nil {
				extra = append(extra, tt.flags(t, c)...)
			}
			var r result
			if len(tt.args) == 3 && tt.args[0] == "sh" && tt.args[1] == "-c" {
				r = c.runDrained(extra, tt.args[2]) // all the output, see runDrained
			} else {
				r = c.ctr(append(c.runArgs(extra...), tt.args...)...)
			}
			failed := false
			if tt.wantCode == -1 && r.code == 0 || tt.wantCode != -1 && r.code != tt.wantCode {
				t.Errorf("exit code %d, want %d", r.code, tt.wantCode)
				failed = true
			}
			for _, want := range tt.wantStdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout does not contain %q", want)
					failed = true
				}
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not contain %q", want)
					failed = true
				}
			}
			if tt.check != nil {
				tt.check(t, r.stdout)
			}
			if failed || t.Failed() {
				t.Logf("%v\n%s", r, c.diagnostics(from))
			}
			assertNoLeftovers(t, c)
		})
	}
}

// TestRunTTY runs `ctr run --tty` under script(1), which gives ctr the
// terminal it insists on: the container's stdio is a pty.
func TestRunTTY(t *testing.T) {
	c := newContainer(t)
	from := logSize()
	out, code := c.runTTYDrained(t, []string{"--rm", "--tty"}, "tty; test -t 0 && test -t 1 && echo stdio-is-a-tty; exit 4")
	if code != 4 || !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "stdio-is-a-tty\n") {
		t.Errorf("ctr run --tty exited %d with output %q; want 4, a /dev/pts/N tty and stdio-is-a-tty\n%s", code, out, c.diagnostics(from))
	}
	assertNoLeftovers(t, c)
}

// ctrWithTerminal runs ctr under script(1), which gives it a pty as its
// stdio (ctr --tty refuses anything else), and returns the output without
// carriage returns and ctr's exit code.
func (c *container) ctrWithTerminal(t *testing.T, args ...string) (string, int) {
	t.Helper()
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skipf("script (util-linux) is not installed, ctr --tty needs a terminal: %v", err)
	}
	full := append([]string{env.ctr, "-a", env.d.sock, "-n", namespace}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), commandGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "--quiet", "--return", "--command", shellQuote(full), "/dev/null")
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	code := 0
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s hung: killed after %v", strings.Join(full, " "), commandGuard)
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", script, err)
	}
	// Both ptys, script's and the container's, turn \n into \r\n.
	return strings.ReplaceAll(string(out), "\r", ""), code
}

// runTTYDrained is ctrWithTerminal for `ctr run` (flags extra, then sh -c
// script) that holds the container's exit until ctr has printed all of
// its output, as runDrained does without a terminal: the end mark is
// printed, then a line typed on the terminal releases the container.
func (c *container) runTTYDrained(t *testing.T, extra []string, script string) (string, int) {
	t.Helper()
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		t.Skipf("script (util-linux) is not installed, ctr --tty needs a terminal: %v", err)
	}
	wrapped := "trap 'rc=$?; echo " + endMark + "; read _; exit $rc' EXIT\n" + script
	full := append([]string{env.ctr, "-a", env.d.sock, "-n", namespace}, c.runArgs(extra...)...)
	full = append(full, "sh", "-c", wrapped)
	ctx, cancel := context.WithTimeout(context.Background(), commandGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, scriptBin, "--quiet", "--return", "--command", shellQuote(full), "/dev/null")
	cmd.WaitDelay = 10 * time.Second
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", scriptBin, err)
	}
	err = waitReleasing(cmd, stdin, func() bool { return containsLine(out.String(), endMark) })
	code := 0
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s hung: killed after %v", strings.Join(full, " "), commandGuard)
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", scriptBin, err)
	}
	// Both ptys, script's and the container's, turn \n into \r\n.
	return strings.Replace(strings.ReplaceAll(out.String(), "\r", ""), endMark+"\n", "", 1), code
}

// TestDetachedTask drives one detached task through the task commands of
// ctr: exec, ps, metrics, pause, resume, kill, delete. Each step is a
// subtest so that one broken command does not hide the others.
func TestDetachedTask(t *testing.T) {
	c := newContainer(t)
	from := logSize()
	c.runDetached(`trap "echo got-term; exit 0" TERM; echo started; sleep 100000 & wait`,
		"--memory-limit", strconv.Itoa(memoryLimit), "--cpus", "0.5", "--cpu-shares", "512")
	c.waitOutput("started\n")
	task := c.waitTaskStatus("RUNNING")
	if task.pid <= 0 {
		t.Fatalf("ctr task ls shows pid %d for %s\n%s", task.pid, c.id, c.diagnostics(from))
	}
	pid := task.pid

	t.Run("the runtime under test keeps the task's state", func(t *testing.T) {
		stateFile := filepath.Join(env.d.runcRoot, namespace, c.id, "state.json")
		data, err := os.ReadFile(stateFile)
		if err != nil {
			t.Fatalf("the shim did not run %s with --root %s: %v", env.runtime, filepath.Join(env.d.runcRoot, namespace), err)
		}
		var st map[string]any
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatalf("parse %s: %v\n%s", stateFile, err, data)
		}
		// berth-runtime's state.json (internal/runtime.State) differs from
		// runc's: its fields prove which binary made it.
		var want map[string]any
		switch env.rtName {
		case "berth":
			want = map[string]any{"version": float64(1), "id": c.id, "pid": float64(pid),
				"bundle": env.d.taskDir(namespace, c.id), "cgroupPath": c.cgroup}
			if _, ok := st["pidStart"]; !ok {
				t.Errorf("%s has no pidStart: not written by berth-runtime\n%s", stateFile, data)
			}
		case "runc":
			want = map[string]any{"id": c.id, "init_process_pid": float64(pid)}
		}
		for k, v := range want {
			if st[k] != v {
				t.Errorf("%s: %s = %v, want %v", stateFile, k, st[k], v)
			}
		}
	})

	t.Run("the init runs in the cgroup and new namespaces", func(t *testing.T) {
		cg := readFile(t, fmt.Sprintf("/proc/%d/cgroup", pid))
		if !strings.Contains(cg, ":memory:"+c.cgroup+"\n") && !strings.Contains(cg, "0::"+c.cgroup+"\n") {
			t.Errorf("/proc/%d/cgroup does not name %s:\n%s", pid, c.cgroup, cg)
		}
		for _, ns := range []string{"pid", "uts", "mnt", "ipc", "net"} {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
			if err != nil || link == hostNamespace(t, ns) {
				t.Errorf("init's %s namespace %q (%v) is the host's", ns, link, err)
			}
		}
	})

	t.Run("memory limit in the cgroup", func(t *testing.T) {
		file := filepath.Join("/sys/fs/cgroup/memory", c.cgroup, "memory.limit_in_bytes")
		if got := strings.TrimSpace(readFile(t, file)); got != strconv.Itoa(memoryLimit) {
			t.Errorf("%s = %s, want %d", file, got, memoryLimit)
		}
	})

	t.Run("cpu limits in the cgroup", func(t *testing.T) {
		for file, want := range map[string]string{"cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000", "cpu.shares": "512"} {
			path := filepath.Join("/sys/fs/cgroup/cpu", c.cgroup, file)
			if got := strings.TrimSpace(readFile(t, path)); got != want {
				t.Errorf("%s = %s, want %s", path, got, want)
			}
		}
	})

	t.Run("exec --user", func(t *testing.T) {
		from := logSize()
		r := c.ctr("task", "exec", "--exec-id", "u1", "--user", "1000", "--cwd", "/tmp", "--fifo-dir", filepath.Join(env.d.dir, "fifo"), c.id,
			"sh", "-c", "echo uid=$(id -u) gid=$(id -g) cwd=$(pwd)")
		if r.code != 0 || !strings.Contains(r.stdout, "uid=1000 gid=1000 cwd=/tmp\n") {
			t.Errorf("exec --user 1000 --cwd /tmp: want uid=1000 gid=1000 cwd=/tmp\n%v\n%s", r, c.diagnostics(from))
		}
	})

	t.Run("exec", func(t *testing.T) {
		from := logSize()
		r := c.ctr("task", "exec", "--exec-id", "x1", "--fifo-dir", filepath.Join(env.d.dir, "fifo"), c.id,
			"sh", "-c", "echo exec-out; echo pidns=$(readlink /proc/self/ns/pid); exit 5")
		initNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
		if r.code != 5 || !strings.Contains(r.stdout, "exec-out\n") || valueOf(r.stdout, "pidns=") != initNS {
			t.Errorf("exec: want exit 5, exec-out and the init's pid namespace %s\n%v\n%s", initNS, r, c.diagnostics(from))
		}
	})

	t.Run("exec --tty", func(t *testing.T) {
		from := logSize()
		out, code := c.ctrWithTerminal(t, "task", "exec", "--tty", "--exec-id", "t1", "--fifo-dir", filepath.Join(env.d.dir, "fifo"), c.id,
			"sh", "-c", "tty; test -t 0 && test -t 1 && echo stdio-is-a-tty; exit 6")
		if code != 6 || !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "stdio-is-a-tty\n") {
			t.Errorf("ctr task exec --tty exited %d with output %q; want 6, a /dev/pts/N tty and stdio-is-a-tty\n%s", code, out, c.diagnostics(from))
		}
	})

	t.Run("exec of a missing command fails with the runtime's error", func(t *testing.T) {
		from := logSize()
		r := c.ctr("task", "exec", "--exec-id", "x2", "--fifo-dir", filepath.Join(env.d.dir, "fifo"), c.id, "/no-such-command")
		if r.code == 0 || !strings.Contains(r.stderr, "/no-such-command") {
			t.Errorf("exec of a missing command: want a non-zero exit and an error naming it\n%v\n%s", r, c.diagnostics(from))
		}
	})

	t.Run("ps lists the processes of the cgroup", func(t *testing.T) {
		from := logSize()
		r := c.mustCtr("task", "ps", c.id)
		var listed []int
		for _, line := range strings.Split(r.stdout, "\n")[1:] {
			if f := strings.Fields(line); len(f) > 0 {
				p, err := strconv.Atoi(f[0])
				if err != nil {
					t.Fatalf("ctr task ps: pid %q: %v\n%s", f[0], err, r.stdout)
				}
				listed = append(listed, p)
			}
		}
		procs := cgroupProcs(t, c.cgroup)
		slices.Sort(listed)
		if !slices.Equal(listed, procs) || !slices.Contains(listed, pid) {
			t.Errorf("ctr task ps lists %v, want the cgroup's processes %v (init %d)\n%s", listed, procs, pid, c.diagnostics(from))
		}
	})

	t.Run("metrics", func(t *testing.T) {
		from := logSize()
		r := c.mustCtr("task", "metrics", c.id)
		if valueOf(r.stdout, "memory.limit_in_bytes") != strconv.Itoa(memoryLimit) {
			t.Errorf("ctr task metrics: want memory.limit_in_bytes %d\n%v\n%s", memoryLimit, r, c.diagnostics(from))
		}
	})

	t.Run("pause and resume", func(t *testing.T) {
		freezer := filepath.Join("/sys/fs/cgroup/freezer", c.cgroup, "freezer.state")
		c.mustCtr("task", "pause", c.id)
		c.waitTaskStatus("PAUSED")
		if got := strings.TrimSpace(readFile(t, freezer)); got != "FROZEN" {
			t.Errorf("after pause %s = %s, want FROZEN", freezer, got)
		}
		c.mustCtr("task", "resume", c.id)
		c.waitTaskStatus("RUNNING")
		if got := strings.TrimSpace(readFile(t, freezer)); got != "THAWED" {
			t.Errorf("after resume %s = %s, want THAWED", freezer, got)
		}
	})

	t.Run("kill and delete", func(t *testing.T) {
		from := logSize()
		c.mustCtr("task", "kill", c.id) // SIGTERM, trapped by the init
		c.waitOutput("got-term\n")
		c.waitTaskStatus("STOPPED")
		r := c.mustCtr("task", "delete", c.id)
		if _, ok := c.task(); ok {
			t.Errorf("task %s still listed after `ctr task delete`\n%v\n%s", c.id, r, c.diagnostics(from))
		}
		c.mustCtr("container", "delete", c.id)
		assertNoLeftovers(t, c)
	})
}

// cgroupProcs lists the pids in the memory cgroup at path, sorted.
func cgroupProcs(t *testing.T, path string) []int {
	t.Helper()
	file := filepath.Join("/sys/fs/cgroup/memory", path, "cgroup.procs")
	var pids []int
	for _, f := range strings.Fields(readFile(t, file)) {
		p, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s holds %q: %v", file, f, err)
		}
		pids = append(pids, p)
	}
	slices.Sort(pids)
	return pids
}

// valueOf returns what follows key on the first line of text starting with
// key (spaces trimmed), or "".
func valueOf(text, key string) string {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(data)
}

// shellQuote joins args into one sh command line.
func shellQuote(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}
