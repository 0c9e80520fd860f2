package integration

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// statusField returns the value of a "Name:\tvalue" line of /proc/<pid>/status text.
func statusField(t *testing.T, status, name string) string {
	t.Helper()
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in status:\n%s", name, status)
	return ""
}

func TestProcessArgsEnvCwd(t *testing.T) {
	out, code := runContainer(t, func(s *specs.Spec) {
		s.Process.Args = []string{"sh", "-c", `echo "$0 $1|$FOO|$(pwd)|$PATH"`, "zero", "one"}
		s.Process.Env = []string{"PATH=/bin", "FOO=bar baz"}
		s.Process.Cwd = "/tmp"
	})
	if want := "zero one|bar baz|/tmp|/bin\n"; code != 0 || out != want {
		t.Errorf("args, env, cwd inside = %q, want %q", out, want)
	}
}

func TestProcessUser(t *testing.T) {
	out := mustRun(t, "id -u; id -g; grep Groups: /proc/self/status", func(s *specs.Spec) {
		s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 65534}}
	})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != "1000" || lines[1] != "1000" || strings.Join(strings.Fields(lines[2]), " ") != "Groups: 10 65534" {
		t.Errorf("uid, gid, groups inside = %q, want 1000, 1000, Groups: 10 65534", out)
	}
}

func TestProcessUmask(t *testing.T) {
	umask := uint32(0o027)
	out := mustRun(t, "umask; touch /tmp/f; stat -c %a /tmp/f", func(s *specs.Spec) { s.Process.User.Umask = &umask })
	if want := "0027\n640\n"; out != want {
		t.Errorf("umask and new file mode inside = %q, want %q", out, want)
	}
}

var capNumbers = map[string]uint{
	"CAP_CHOWN": unix.CAP_CHOWN, "CAP_KILL": unix.CAP_KILL, "CAP_SETUID": unix.CAP_SETUID,
	"CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE, "CAP_NET_RAW": unix.CAP_NET_RAW,
	"CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN, "CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
}

func capMask(t *testing.T, names []string) string {
	t.Helper()
	var m uint64
	for _, n := range names {
		bit, ok := capNumbers[n]
		if !ok {
			t.Fatalf("capability %s missing from the test's table", n)
		}
		m |= 1 << bit
	}
	return fmt.Sprintf("%016x", m)
}

// The five capability sets as the process runs them. execve recomputes
// permitted and effective (root gets its bounding set back, others get
// their ambient set), so each case picks sets that execve leaves as they are.
func TestProcessCapabilities(t *testing.T) {
	all := []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"}
	tests := []struct {
		name string
		uid  uint32
		caps specs.LinuxCapabilities
	}{
		{"root", 0, specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all,
			Inheritable: []string{"CAP_KILL"}, Ambient: []string{"CAP_KILL"}}},
		{"user with ambient", 1000, specs.LinuxCapabilities{Bounding: all,
			Effective: []string{"CAP_NET_BIND_SERVICE"}, Permitted: []string{"CAP_NET_BIND_SERVICE"},
			Inheritable: []string{"CAP_NET_BIND_SERVICE"}, Ambient: []string{"CAP_NET_BIND_SERVICE"}}},
		{"none", 0, specs.LinuxCapabilities{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caps := tt.caps
			status := mustRun(t, "cat /proc/self/status", func(s *specs.Spec) {
				s.Process.User = specs.User{UID: tt.uid, GID: tt.uid}
				s.Process.Capabilities = &caps
			})
			for field, names := range map[string][]string{"CapBnd": caps.Bounding, "CapEff": caps.Effective,
				"CapPrm": caps.Permitted, "CapInh": caps.Inheritable, "CapAmb": caps.Ambient} {
				if got, want := statusField(t, status, field), capMask(t, names); got != want {
					t.Errorf("%s = %s, want %s (%v)", field, got, want, names)
				}
			}
		})
	}
}

func TestProcessRlimits(t *testing.T) {
	out := mustRun(t, "ulimit -n; ulimit -Hn", func(s *specs.Spec) {
		s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 256, Hard: 512}}
	})
	if out != "256\n512\n" {
		t.Errorf("ulimit -n, -Hn inside = %q, want 256 and 512", out)
	}
}

// CAP_SYS_RESOURCE is not in this host's bounding set: raising a hard
// limit above the runtime's own must fail cleanly, naming the rlimit.
func TestProcessRlimitAboveHardLimitFailsCleanly(t *testing.T) {
	var host unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &host); err != nil {
		t.Fatal(err)
	}
	if hasCapability(t, unix.CAP_SYS_RESOURCE) {
		t.Skip("this host has CAP_SYS_RESOURCE: raising rlimits works here")
	}
	c := newContainer(t, sh("echo should not run"), func(s *specs.Spec) {
		s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: host.Max * 2, Hard: host.Max * 2}}
	})
	r := c.run()
	if r.code == 0 || strings.Contains(r.stdout, "should not run") {
		t.Fatalf("a hard limit above the host's (%d) was accepted: %v", host.Max, r)
	}
	assertCleanError(t, r, "rlimit")
	assertNoLeftovers(t, c)
}

// assertCleanError checks a runtime failure is an error message naming
// what failed, not a crash.
func assertCleanError(t *testing.T, r result, mustMention ...string) {
	t.Helper()
	msg := strings.ToLower(r.stderr + r.stdout)
	for _, crash := range []string{"panic:", "goroutine ", "sigsegv"} {
		if strings.Contains(msg, crash) {
			t.Errorf("the runtime crashed instead of reporting an error: %v", r)
		}
	}
	for _, m := range mustMention {
		if !strings.Contains(msg, strings.ToLower(m)) {
			t.Errorf("the error does not mention %q: %v", m, r)
		}
	}
}

func hasCapability(t *testing.T, capability uint) bool {
	t.Helper()
	bnd := statusField(t, readFile(t, "/proc/self/status"), "CapBnd")
	mask, err := strconv.ParseUint(bnd, 16, 64)
	if err != nil {
		t.Fatalf("parse CapBnd %q: %v", bnd, err)
	}
	return mask&(1<<capability) != 0
}

func TestProcessNoNewPrivileges(t *testing.T) {
	for _, nnp := range []bool{true, false} {
		t.Run(strconv.FormatBool(nnp), func(t *testing.T) {
			status := mustRun(t, "cat /proc/self/status", func(s *specs.Spec) { s.Process.NoNewPrivileges = nnp })
			want := map[bool]string{true: "1", false: "0"}[nnp]
			if got := statusField(t, status, "NoNewPrivs"); got != want {
				t.Errorf("NoNewPrivs = %s, want %s", got, want)
			}
		})
	}
}

func TestProcessOOMScoreAdj(t *testing.T) {
	t.Run("raise", func(t *testing.T) {
		adj := 500
		out := mustRun(t, "cat /proc/self/oom_score_adj", func(s *specs.Spec) { s.Process.OOMScoreAdj = &adj })
		if out != "500\n" {
			t.Errorf("oom_score_adj inside = %q, want 500", out)
		}
	})
	t.Run("lower without CAP_SYS_RESOURCE", func(t *testing.T) {
		if hasCapability(t, unix.CAP_SYS_RESOURCE) {
			t.Skip("this host has CAP_SYS_RESOURCE: lowering oom_score_adj works here")
		}
		own, _ := strconv.Atoi(strings.TrimSpace(readFile(t, "/proc/self/oom_score_adj")))
		adj := own - 100
		c := newContainer(t, sh("echo should not run"), func(s *specs.Spec) { s.Process.OOMScoreAdj = &adj })
		r := c.run()
		if r.code == 0 {
			t.Fatalf("lowering oom_score_adj to %d without CAP_SYS_RESOURCE succeeded: %v", adj, r)
		}
		assertCleanError(t, r, "oom_score_adj")
		assertNoLeftovers(t, c)
	})
}

func TestSeccompDeniesMkdir(t *testing.T) {
	eperm := uint(unix.EPERM)
	out := mustRun(t, "mkdir /tmp/x 2>&1; echo rc=$?; echo still running", func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eperm},
			},
		}
	})
	if !strings.Contains(out, "Operation not permitted") || strings.Contains(out, "rc=0") || !strings.Contains(out, "still running") {
		t.Errorf("mkdir under a seccomp profile denying it: %q, want Operation not permitted", out)
	}
}

// A Docker-style profile: deny by default (EPERM), allow a list.
func TestSeccompAllowList(t *testing.T) {
	eperm := uint(unix.EPERM)
	var allowed []string
	for _, name := range dockerStyleAllowList {
		if name != "mkdir" && name != "mkdirat" {
			allowed = append(allowed, name)
		}
	}
	out := mustRun(t, "echo allowed; mkdir /tmp/x 2>&1; ls /tmp | wc -l", func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction:   specs.ActErrno,
			DefaultErrnoRet: &eperm,
			Architectures:   []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
			Syscalls:        []specs.LinuxSyscall{{Names: allowed, Action: specs.ActAllow}},
		}
	})
	if want := "allowed\nmkdir: can't create directory '/tmp/x': Operation not permitted\n0\n"; out != want {
		t.Errorf("under an allow list without mkdir: %q, want %q", out, want)
	}
}

// The syscalls of Docker's default profile that a shell and the runtime's
// last steps before exec need (a subset, by name).
var dockerStyleAllowList = []string{
	"access", "arch_prctl", "brk", "capget", "capset", "chdir", "chmod", "chown", "clock_getres",
	"clock_gettime", "clock_nanosleep", "clone", "clone3", "close", "close_range", "dup", "dup2", "dup3",
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_wait", "eventfd2", "execve",
	"execveat", "exit", "exit_group", "faccessat", "faccessat2", "fchdir", "fchmod", "fchmodat", "fchown",
	"fchownat", "fcntl", "fstat", "fstatfs", "fsync", "futex", "getcwd", "getdents", "getdents64",
	"getegid", "geteuid", "getgid", "getgroups", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
	"getrandom", "getresgid", "getresuid", "getrlimit", "getrusage", "getsid", "gettid", "gettimeofday",
	"getuid", "getxattr", "ioctl", "kill", "lchown", "lgetxattr", "link", "linkat", "listxattr", "lseek",
	"lstat", "madvise", "mkdir", "mkdirat", "mmap", "mprotect", "mremap", "munmap", "nanosleep",
	"newfstatat", "open", "openat", "openat2", "pause", "pipe", "pipe2", "poll", "ppoll", "prctl", "pread64",
	"prlimit64", "pselect6", "pwrite64", "read", "readlink", "readlinkat", "readv", "rename", "renameat",
	"renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
	"rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "sched_getaffinity",
	"sched_yield", "select", "set_robust_list", "set_tid_address", "setgid", "setgroups", "setitimer",
	"setpgid", "setresgid", "setresuid", "setsid", "setuid", "sigaltstack", "stat", "statfs", "statx",
	"symlink", "symlinkat", "sysinfo", "tgkill", "time", "times", "tkill", "umask", "uname", "unlink",
	"unlinkat", "utimensat", "vfork", "wait4", "waitid", "write", "writev",
}

func TestSysctl(t *testing.T) {
	host := readFile(t, "/proc/sys/net/ipv4/ip_forward")
	out := mustRun(t, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/ip_unprivileged_port_start", func(s *specs.Spec) {
		s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.ip_unprivileged_port_start": "80"}
	})
	if out != "1\n80\n" {
		t.Errorf("sysctls inside = %q, want 1 and 80", out)
	}
	if now := readFile(t, "/proc/sys/net/ipv4/ip_forward"); now != host {
		t.Errorf("the host's ip_forward changed from %q to %q", host, now)
	}
}
