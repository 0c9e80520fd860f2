package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRunBadInput: bad flags, values, images and names fail with exit 125
// and a message naming what is wrong, and create nothing: no container,
// no volume, no host directory.
func TestRunBadInput(t *testing.T) {
	e := newCtrEnv(t)
	e.runD("--name", "taken", box, "sleep", "1000")
	hostDir := filepath.Join(e.dir, "must-not-appear")
	tests := []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"--nosuch", box}, "unknown flag: --nosuch"},
		{[]string{"--memory", "12x", box}, "12x"},
		{[]string{"--memory", "1m", box}, "6MB"},
		{[]string{"-m", "64m", "--memory-swap", "32m", box}, "memory-swap"},
		{[]string{"--cpus", "abc", box}, "abc"},
		{[]string{"--cpus", "999", box}, "CPUs"},
		{[]string{"--cpuset-cpus", "99", box}, "99"},
		{[]string{"--restart", "sometimes", box}, "sometimes"},
		{[]string{"--restart", "on-failure:x", box}, "on-failure:x"},
		{[]string{"-p", "99999:80", box}, "99999"},
		{[]string{"-p", "abc", box}, "abc"},
		{[]string{"-p", "80:http", box}, "http"},
		{[]string{"-v", hostDir + ":relative", box}, "relative"},
		{[]string{"-v", "a:b:c:d", box}, "a:b:c:d"},
		{[]string{"-v", hostDir + ":/x:bogus", box}, "bogus"},
		{[]string{"--name", "bad name!", box}, "Invalid container name"},
		{[]string{"--name", "taken", box}, `The container name "/taken" is already in use`},
		{[]string{"--pull", "never", "e2e/nosuch"}, "No such image: e2e/nosuch:latest"},
		// A registry on a loopback port nothing listens on.
		{[]string{"127.0.0.1:1/e2e/nosuch"}, "127.0.0.1:1/e2e/nosuch"},
		{[]string{"--network", "bridge-of-sighs", box}, "bridge-of-sighs"},
		{[]string{"--device-read-bps", "/dev/nosuch:1mb", box}, "/dev/nosuch"},
		{[]string{"-e", "=novar", box}, "=novar"},
		{[]string{"--stop-signal", "SIGNOPE", box}, "SIGNOPE"},
	}
	for _, tc := range tests {
		for _, verb := range []string{"run", "create"} {
			args := append([]string{verb, "-v", hostDir + ":/mnt"}, tc.args...)
			if verb == "run" {
				args = append(args, "true")
			}
			before := lines(e.ok("ps", "-aq", "--no-trunc"))
			r := e.run(nil, args...)
			if r.code != 125 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%s %v: exit %d, stderr %q; want exit 125 and %q", verb, tc.args, r.code, r.stderr, tc.want)
			}
			// Before the error, as with docker-cli, may come the pull of an
			// image that is not here.
			if !strings.HasPrefix(r.stderr, "Error") && !strings.Contains(r.stderr, "\nError") {
				t.Errorf("%s %v: stderr %q lacks Docker's \"Error...\" style", verb, tc.args, r.stderr)
			}
			for _, id := range lines(e.ok("ps", "-aq", "--no-trunc")) {
				if !slices.Contains(before, id) {
					t.Errorf("%s %v created container %s", verb, tc.args, id[:12])
					e.remember(id)
					e.run(nil, "rm", "-f", id)
				}
			}
			if _, err := os.Stat(hostDir); err == nil {
				t.Errorf("%s %v created the bind source %s", verb, tc.args, hostDir)
				os.RemoveAll(hostDir)
			}
			if vols := e.ok("volume", "ls", "-q"); vols != "" {
				t.Errorf("%s %v created volumes %q", verb, tc.args, vols)
			}
		}
	}
	if n := containerDirs(t, e.root); n != 1 {
		t.Errorf("%d container directories in the store, want 1", n)
	}
}

// TestRunExitCodes: the container's code, 126 for a command that cannot
// be run, 127 for one that is not found; --rm still removes the container.
func TestRunExitCodes(t *testing.T) {
	e := newCtrEnv(t)
	tests := []struct {
		cmd  []string
		code int
		want string
	}{
		{[]string{"sh", "-c", "exit 3"}, 3, ""},
		// pid 1 ignores SIGKILL from inside: with --init, sh is not pid 1.
		{[]string{"--init", box, "sh", "-c", "kill -9 $$"}, 137, ""},
		{[]string{"/etc/passwd"}, 126, "permission denied"},
		{[]string{"/tmp"}, 126, ""},
		{[]string{"nosuchcmd"}, 127, "nosuchcmd"},
		{[]string{"/no/such/path"}, 127, "/no/such/path"},
	}
	for _, tc := range tests {
		args := append([]string{"run", "--rm"}, tc.cmd...)
		if tc.cmd[0] != "--init" {
			args = append([]string{"run", "--rm", box}, tc.cmd...)
		}
		r := e.run(nil, args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("run --rm box %v: exit %d stderr %q; want %d and %q", tc.cmd, r.code, r.stderr, tc.code, tc.want)
		}
		if left := e.ok("ps", "-aq"); left != "" {
			t.Errorf("run --rm box %v left %q", tc.cmd, left)
			for _, id := range lines(left) {
				e.remember(id)
				e.run(nil, "rm", "-f", id)
			}
		}
	}
	// Without --rm, the failed container stays, with the code in its state.
	r := e.run(nil, "run", "--name", "notfound", box, "nosuchcmd")
	e.remember("notfound")
	if r.code != 127 {
		t.Errorf("run nosuchcmd: %v", r)
	}
	if st := e.cstate("notfound"); st.Status != "created" || st.ExitCode != 127 || st.Error == "" {
		t.Errorf("State of a container whose command is missing: %+v, want created, ExitCode 127 and the error (Docker's)", st)
	}
	// start -a fails the same way, but Docker's CLI maps the start error
	// to 125/126/127 for run only: start exits 1 with the message.
	if r := e.run(nil, "start", "-a", "notfound"); r.code != 1 || !strings.Contains(r.stderr, "nosuchcmd") {
		t.Errorf("start -a of it: %v, want exit 1 naming nosuchcmd", r)
	}
	if st := e.cstate("notfound"); st.Status != "created" || st.ExitCode != 127 || st.Error == "" {
		t.Errorf("State after start -a failed: %+v, want created, ExitCode 127 and the error", st)
	}
}

// TestStartRemoved: verbs on a removed container say Docker's "No such
// container" and fail.
func TestStartRemoved(t *testing.T) {
	e := newCtrEnv(t)
	id := strings.TrimSpace(e.ok("create", "--name", "gone", box, "true"))
	e.ok("rm", "gone")
	for _, ref := range []string{"gone", id, id[:12]} {
		r := e.run(nil, "start", ref)
		if r.code == 0 || !strings.Contains(r.stderr, "No such container: "+ref) {
			t.Errorf("start of a removed container %s: %v", ref, r)
		}
	}
	if n := containerDirs(t, e.root); n != 0 {
		t.Errorf("start of a removed container left %d container directories", n)
	}
}
