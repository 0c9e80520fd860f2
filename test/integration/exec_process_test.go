package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestExecProcessAttributes checks every attribute of an exec'd process
// that berth-runtime can set without its Go init (berth-nsenter finishes
// such processes itself; scripts/test.sh runs this suite through the Go
// init too): user, additional groups, umask, rlimits, the five capability
// sets, no_new_privs and the container's seccomp filter, observed from
// inside.
func TestExecProcessAttributes(t *testing.T) {
	eperm := uint(unix.EPERM)
	c := startedContainer(t, []string{"sleep", "1000000"}, func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eperm}},
		}
	})
	umask := uint32(0o027)
	all := []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"}
	bind := []string{"CAP_NET_BIND_SERVICE"}
	proc := specs.Process{
		Args: []string{"sh", "-c", `id -u; id -G; umask; ulimit -n; ulimit -Hn; cat /proc/self/status; mkdir /tmp/x 2>&1; echo "mkdir rc=$?"`},
		Env:  []string{"PATH=/bin"},
		Cwd:  "/tmp",
		User: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{5, 6}, Umask: &umask},
		Rlimits: []specs.POSIXRlimit{
			{Type: "RLIMIT_NOFILE", Soft: 256, Hard: 512},
		},
		Capabilities:    &specs.LinuxCapabilities{Bounding: all, Effective: bind, Permitted: bind, Inheritable: bind, Ambient: bind},
		NoNewPrivileges: true,
	}
	out := c.mustRT("exec", "--process", writeJSON(t, c.dir, "process.json", proc), c.id).stdout
	head, status, _ := strings.Cut(out, "Name:")
	want := "1000\n1000 5 6\n0027\n256\n512\n"
	if runcExecUmaskRlimits.applies() {
		runcExecUmaskRlimits.log(t)
		want = "1000\n1000 5 6\n0022\n512\n512\n"
		if head == "1000\n1000 5 6\n0022\n256\n512\n" { // its soft limit depends on its own
			want = head
		}
	}
	if head != want {
		t.Errorf("id -u, id -G, umask, ulimit -n, -Hn = %q, want %q", head, want)
	}
	for field, names := range map[string][]string{"CapBnd": all, "CapEff": bind, "CapPrm": bind, "CapInh": bind, "CapAmb": bind} {
		if got, want := statusField(t, status, field), capMask(t, names); got != want {
			t.Errorf("%s = %s, want %s (%v)", field, got, want, names)
		}
	}
	if got := statusField(t, status, "NoNewPrivs"); got != "1" {
		t.Errorf("NoNewPrivs = %s, want 1", got)
	}
	if got := statusField(t, status, "Seccomp"); got != "2" {
		t.Errorf("Seccomp = %s, want 2 (a filter)", got)
	}
	if !strings.Contains(out, "Operation not permitted") || !strings.Contains(out, "mkdir rc=1") {
		t.Errorf("mkdir in the exec'd process under the container's filter: %q, want Operation not permitted", out)
	}
}

// TestExecErrors checks what exec says when the process cannot be run, with
// Docker's words for the cases it maps to exit codes 126 and 127.
func TestExecErrors(t *testing.T) {
	execErrorWords.skip(t)
	c := startedContainer(t, []string{"sleep", "1000000"})
	tests := []struct {
		args []string
		cwd  string
		want string
	}{
		{[]string{"/no/such/binary"}, "", `exec: "/no/such/binary": stat /no/such/binary: no such file or directory`},
		{[]string{"nosuchcommand"}, "", `exec: "nosuchcommand": executable file not found in $PATH`},
		{[]string{"/etc"}, "", `exec: "/etc": is a directory`},
		{[]string{"/etc/hostname"}, "", `exec: "/etc/hostname": permission denied`},
		{[]string{"true"}, "/no/such/dir", `process.cwd "/no/such/dir": openat2 /no/such/dir: no such file or directory`},
	}
	for _, tt := range tests {
		args := []string{"exec"}
		if tt.cwd != "" {
			args = append(args, "--cwd", tt.cwd)
		}
		r := c.rt(append(append(args, c.id), tt.args...)...)
		if r.code == 0 || !strings.HasSuffix(strings.TrimSuffix(r.stderr, "\n"), tt.want) {
			t.Errorf("exec %v (cwd %q): exit %d, stderr %q; want a failure ending with %q", tt.args, tt.cwd, r.code, r.stderr, tt.want)
		}
	}
	// The process reports its error as soon as it is forked, while the
	// namespace stage may still be sending its pid: the two must not mix
	// (they did, in about one exec in ten, before the child waited).
	for i := 0; i < 30; i++ {
		r := c.rt("exec", c.id, "/no/such/binary")
		if want := tests[0].want; !strings.HasSuffix(strings.TrimSuffix(r.stderr, "\n"), want) {
			t.Fatalf("exec %d of a missing program: stderr %q, want it to end with %q", i, r.stderr, want)
		}
	}
}

// A hard limit above the runtime's own needs CAP_SYS_RESOURCE, which this
// host's bounding set lacks: exec fails with the Go init's explanation.
func TestExecRlimitAboveHardLimit(t *testing.T) {
	var host unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &host); err != nil {
		t.Fatal(err)
	}
	if hasCapability(t, unix.CAP_SYS_RESOURCE) {
		t.Skip("this host has CAP_SYS_RESOURCE: raising rlimits works here")
	}
	c := startedContainer(t, []string{"sleep", "1000000"})
	proc := specs.Process{
		Args: []string{"echo", "should not run"}, Env: []string{"PATH=/bin"}, Cwd: "/",
		Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: host.Max * 2, Hard: host.Max * 2}},
	}
	r := c.rt("exec", "--process", writeJSON(t, c.dir, "process.json", proc), c.id)
	if r.code == 0 || strings.Contains(r.stdout, "should not run") {
		t.Fatalf("a hard limit above the host's (%d) was accepted: %v", host.Max, r)
	}
	want := fmt.Sprintf("process.rlimits[0] (RLIMIT_NOFILE): raising the hard limit from %d to %d needs CAP_SYS_RESOURCE: operation not permitted", host.Max, host.Max*2)
	if isBerth() && !strings.HasSuffix(strings.TrimSuffix(r.stderr, "\n"), want) {
		t.Errorf("stderr %q, want it to end with %q", r.stderr, want)
	}
}

// TestExecPreserveFds checks --preserve-fds: the first N descriptors after
// stdio reach the exec'd process, and nothing else of the runtime does.
func TestExecPreserveFds(t *testing.T) {
	c := startedContainer(t, []string{"sleep", "1000000"})
	extra, err := os.Open(filepath.Join(c.rootfs, "etc/hostname"))
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	ctx, cancel := context.WithTimeout(context.Background(), commandGuard)
	defer cancel()
	cmd := rt.command(ctx, "--root", c.root, "exec", "--preserve-fds", "1", c.id, "sh", "-c", "cat <&3; ls /proc/$$/fd; true")
	cmd.ExtraFiles = []*os.File{extra}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("exec --preserve-fds 1: %v", err)
	}
	if want := "berth\n0\n1\n2\n3\n"; string(out) != want {
		t.Errorf("exec --preserve-fds 1 printed %q, want the file's content and fds 0-3", out)
	}
}
