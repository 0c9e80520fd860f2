package integration

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestExec(t *testing.T) {
	c := startedContainer(t, []string{"sleep", "1000000"})
	tests := []struct {
		name     string
		flags    []string
		args     []string
		wantOut  string
		wantCode int
		dev      deviation
	}{
		{"stdout and exit code", nil, []string{"sh", "-c", "echo hi; exit 5"}, "hi\n", 5, deviation{}},
		{"cwd", []string{"--cwd", "/tmp"}, []string{"pwd"}, "/tmp\n", 0, deviation{}},
		{"env", []string{"--env", "FOO=bar baz"}, []string{"sh", "-c", `echo "$FOO"`}, "bar baz\n", 0, execEnvReplaces},
		{"user", []string{"-u", "1000:1000"}, []string{"sh", "-c", "id -u; id -g"}, "1000\n1000\n", 0, deviation{}},
		{"missing binary", nil, []string{"/no/such/binary"}, "", -2, deviation{}}, // any non-zero
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.dev.skip(t)
			args := append(append(append([]string{"exec"}, tt.flags...), c.id), tt.args...)
			r := c.rt(args...)
			switch {
			case tt.wantCode == -2 && r.code == 0:
				t.Errorf("exec %v exited 0, want an error: %v", tt.args, r)
			case tt.wantCode != -2 && (r.code != tt.wantCode || r.stdout != tt.wantOut):
				t.Errorf("exec %v: exit %d stdout %q, want %d %q (stderr %q)", tt.args, r.code, r.stdout, tt.wantCode, tt.wantOut, r.stderr)
			}
		})
	}
}

func TestExecProcessFile(t *testing.T) {
	c := startedContainer(t, []string{"sleep", "1000000"})
	proc := specs.Process{
		Args: []string{"sh", "-c", `echo "$GREETING from $(pwd) as $(id -u):$(id -g)"`},
		Env:  []string{"PATH=/bin", "GREETING=hello"},
		Cwd:  "/home/user",
		User: specs.User{UID: 1000, GID: 1000},
	}
	path := writeJSON(t, c.dir, "process.json", proc)
	r := c.mustRT("exec", "--process", path, c.id)
	if want := "hello from /home/user as 1000:1000\n"; r.stdout != want {
		t.Errorf("exec --process printed %q, want %q", r.stdout, want)
	}
}

func TestExecDetachPidFile(t *testing.T) {
	c := startedContainer(t, []string{"sleep", "1000000"})
	pidFile := filepath.Join(c.dir, "exec.pid")
	r, _ := c.rtDetached("exec", "--detach", "--pid-file", pidFile, c.id, "sleep", "999999")
	if r.code != 0 {
		t.Fatalf("exec --detach: %v", r)
	}
	data := readFile(t, pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(data))
	if err != nil {
		t.Fatalf("exec pid file holds %q: %v", data, err)
	}
	// A runtime may return once execve has closed its close-on-exec fds, a
	// moment before the kernel has set up the new argument area: the
	// cmdline is empty until then (runc was seen there), so wait it out.
	cmdlinePath := fmt.Sprintf("/proc/%d/cmdline", pid)
	waitFor(t, "the exec'd process's cmdline", func() bool { return readFile(t, cmdlinePath) != "" })
	if cmdline := readFile(t, cmdlinePath); cmdline != "sleep\x00999999\x00" {
		t.Errorf("exec pid file names %d whose cmdline is %q, want the exec'd sleep", pid, cmdline)
	}
	if got := readFile(t, fmt.Sprintf("/proc/%d/cgroup", pid)); got != readFile(t, fmt.Sprintf("/proc/%d/cgroup", c.initPid())) {
		t.Errorf("detached exec cgroups %q differ from the init's", got)
	}
}

// An exec'd process joins every namespace and the cgroup of the init.
func TestExecJoinsNamespacesAndCgroup(t *testing.T) {
	c := startedContainer(t, []string{"sleep", "1000000"}, withNamespace(specs.CgroupNamespace, ""))
	namespaces := []string{"cgroup", "ipc", "mnt", "net", "pid", "uts", "user"}
	script := `for n in ` + strings.Join(namespaces, " ") + `; do echo "$n $(readlink /proc/self/ns/$n)"; done`
	r := c.mustRT("exec", c.id, "sh", "-c", script)
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		ns, link, _ := strings.Cut(line, " ")
		if want := nsLink(t, c.initPid(), ns); link != want {
			t.Errorf("exec'd process namespace %s = %s, init's = %s", ns, link, want)
		}
	}
	r = c.mustRT("exec", c.id, "sh", "-c", "cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup")
	self, init, _ := strings.Cut(r.stdout, "---\n")
	if self != init {
		t.Errorf("exec'd process cgroups\n%s\ndiffer from the init's\n%s", self, init)
	}
}

func TestExecTTY(t *testing.T) {
	c := startedContainer(t, []string{"sleep", "1000000"})
	sock := newConsoleSocket(t, c.dir)
	r, _ := c.rtDetached("exec", "--detach", "--tty", "--console-socket", sock.path, c.id,
		"sh", "-c", "tty; read line; echo got-$line")
	if r.code != 0 {
		t.Fatalf("exec --tty: %v", r)
	}
	master := sock.master(t)
	out := readUntil(t, master, "/dev/pts/")
	if _, err := master.Write([]byte("ping\n")); err != nil {
		t.Fatalf("write to the exec pty: %v", err)
	}
	out += readUntil(t, master, "got-ping")
	if !strings.Contains(out, "/dev/pts/") {
		t.Errorf("tty in exec printed %q, want a /dev/pts device", out)
	}
}
