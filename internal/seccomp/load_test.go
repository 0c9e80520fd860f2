package seccomp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The kernel tests run the filter for real. Loading a filter cannot be
// undone, so each runs in a child: the test binary re-executed with
// childEnv naming what to do. The child reads the compiled program from
// stdin (as the container init gets it from `create`), locks its thread,
// sets no_new_privs, loads the program, makes its system calls and prints
// the outcome as JSON. Loading a filter under no_new_privs needs no
// privilege, so these tests run as any user; they skip where the kernel
// has no seccomp filter support.
const (
	childEnv    = "BERTH_SECCOMP_TEST_CHILD"
	childDirEnv = "BERTH_SECCOMP_TEST_DIR"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// outcome of one system call in the child: its return value and errno.
type outcome struct {
	Ret   int64 `json:"ret"`
	Errno int   `json:"errno"`
}

func sys(trap uintptr, a ...uintptr) outcome {
	var args [3]uintptr
	copy(args[:], a)
	r, _, e := unix.RawSyscall(trap, args[0], args[1], args[2])
	return outcome{Ret: int64(r), Errno: int(e)}
}

func child(mode string) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "child: "+format+"\n", a...)
		return 2
	}
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		return fail("read program: %v", err)
	}
	var p Program
	if err := p.UnmarshalBinary(data); err != nil {
		return fail("%v", err)
	}
	dir := os.Getenv(childDirEnv)
	path := func(name string) uintptr {
		b, _ := unix.BytePtrFromString(filepath.Join(dir, name))
		return uintptr(unsafe.Pointer(b))
	}
	atFdcwd := uintptr(0xffffff9c) // AT_FDCWD as an unsigned register value
	mkdirat := func(name string) outcome { return sys(unix.SYS_MKDIRAT, atFdcwd, path(name), 0o755) }

	runtime.LockOSThread() // never unlocked: this thread carries the filter
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fail("prctl(PR_SET_NO_NEW_PRIVS): %v", err)
	}
	fd, err := Load(&p)
	if err != nil {
		return fail("%v", err)
	}

	results := map[string]outcome{}
	switch mode {
	case "enforce":
		buf := make([]byte, 256)
		results["mkdirat"] = mkdirat("denied")
		results["getcwd"] = sys(unix.SYS_GETCWD, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		results["umask 077"] = sys(unix.SYS_UMASK, 0o077)
		results["umask 022"] = sys(unix.SYS_UMASK, 0o022)
		results["getpid"] = sys(unix.SYS_GETPID)
		results["listener fd"] = outcome{Ret: int64(fd)}
	case "tsync":
		// Another OS thread: the filter must be there too.
		done := make(chan outcome)
		go func() {
			runtime.LockOSThread()
			done <- mkdirat("other-thread")
		}()
		results["mkdirat other thread"] = <-done
		results["mkdirat"] = mkdirat("this-thread")
	case "notify":
		state := specs.ContainerProcessState{
			Pid:      os.Getpid(),
			Metadata: "agent-metadata",
			State:    specs.State{ID: "seccomp-notify-test", Status: specs.StateCreating, Pid: os.Getpid()},
		}
		if err := SendListener(3, state, fd); err != nil {
			return fail("%v", err)
		}
		unix.Close(3)
		unix.Close(fd)
		results["mkdirat"] = mkdirat("notified")
	case "kill":
		sys(unix.SYS_GETPPID)
		return fail("getppid returned under SCMP_ACT_KILL_PROCESS")
	default:
		return fail("unknown mode %q", mode)
	}
	out, _ := json.Marshal(results)
	os.Stdout.Write(out)
	return 0
}

func requireSeccomp(t *testing.T) {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil || !bytes.Contains(status, []byte("\nSeccomp:")) {
		t.Skip("the kernel has no seccomp support (no Seccomp: line in /proc/self/status)")
	}
}

// startChild runs the test binary as a child in mode with program p on
// stdin; extra files become fds 3 and up.
func startChild(t *testing.T, mode string, p *Program, dir string, extra ...*os.File) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	data, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childDirEnv+"="+dir)
	cmd.Stdin = bytes.NewReader(data)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.ExtraFiles = extra
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &stdout, &stderr
}

func waitResults(t *testing.T, cmd *exec.Cmd, stdout, stderr *bytes.Buffer) map[string]outcome {
	t.Helper()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, stderr)
	}
	res := map[string]outcome{}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("child output %q: %v\n%s", stdout, err, stderr)
	}
	return res
}

func TestKernelEnforces(t *testing.T) {
	requireSeccomp(t)
	dir := t.TempDir()
	p, err := Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdirat"}, Action: specs.ActErrno},
			{Names: []string{"getcwd"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(unix.ENOSYS))},
			{Names: []string{"umask"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(unix.EACCES)),
				Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: 0o077}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd, stdout, stderr := startChild(t, "enforce", p, dir)
	res := waitResults(t, cmd, stdout, stderr)
	tests := []struct {
		call  string
		errno unix.Errno
	}{
		{"mkdirat", unix.EPERM},
		{"getcwd", unix.ENOSYS},
		{"umask 077", unix.EACCES},
		{"umask 022", 0},
		{"getpid", 0},
	}
	for _, tt := range tests {
		if got := unix.Errno(res[tt.call].Errno); got != tt.errno {
			t.Errorf("%s in the child: errno %d (%v), want %d (%v)", tt.call, got, got, tt.errno, tt.errno)
		}
	}
	if got := res["getpid"].Ret; got != int64(cmd.Process.Pid) {
		t.Errorf("getpid in the child = %d, want %d", got, cmd.Process.Pid)
	}
	if got := res["listener fd"].Ret; got != -1 {
		t.Errorf("Load returned listener fd %d for a filter without NOTIFY, want -1", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "denied")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the denied mkdirat created the directory (stat: %v)", err)
	}
}

func TestKernelTSYNC(t *testing.T) {
	requireSeccomp(t)
	dir := t.TempDir()
	p, err := Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Flags:         []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC"},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActErrno}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd, stdout, stderr := startChild(t, "tsync", p, dir)
	res := waitResults(t, cmd, stdout, stderr)
	for _, call := range []string{"mkdirat", "mkdirat other thread"} {
		if got := unix.Errno(res[call].Errno); got != unix.EPERM {
			t.Errorf("%s: errno %v, want EPERM", call, got)
		}
	}
}

func TestKernelKillProcess(t *testing.T) {
	requireSeccomp(t)
	p, err := Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActKillProcess}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd, _, stderr := startChild(t, "kill", p, t.TempDir())
	err = cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ok || !ws.Signaled() || ws.Signal() != unix.SIGSYS {
		t.Errorf("child ended with %v (%v), want death by SIGSYS\n%s", err, cmd.ProcessState, stderr)
	}
}

// seccompNotif and seccompNotifResp are struct seccomp_notif and
// seccomp_notif_resp of <linux/seccomp.h>.
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  struct {
		Nr   int32
		Arch uint32
		IP   uint64
		Args [6]uint64
	}
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// TestKernelNotify plays the seccomp agent: it receives the listener over
// the socket as the runtime-spec describes, answers the child's mkdirat
// with 42 instead of running it, and checks the child saw 42.
func TestKernelNotify(t *testing.T) {
	requireSeccomp(t)
	dir := t.TempDir()
	p, err := Compile(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		ListenerPath:  "/unused/in/this/test.sock", // the test hands the child a connected socket instead
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActNotify}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckKernel(); err != nil {
		t.Skipf("kernel without SCMP_ACT_NOTIFY: %v", err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	agentEnd := os.NewFile(uintptr(fds[0]), "agent")
	childEnd := os.NewFile(uintptr(fds[1]), "child")
	t.Cleanup(func() { agentEnd.Close() })
	cmd, stdout, stderr := startChild(t, "notify", p, dir, childEnd)
	childEnd.Close()

	c, err := net.FileConn(agentEnd)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := c.(*net.UnixConn).ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatalf("receive the listener: %v\n%s", err, stderr)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v: %v", msgs, err)
	}
	rights, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(rights) != 1 {
		t.Fatalf("SCM_RIGHTS %v: %v", rights, err)
	}
	listener := rights[0]
	defer unix.Close(listener)

	var state specs.ContainerProcessState
	if err := json.Unmarshal(buf[:n], &state); err != nil {
		t.Fatalf("state %q: %v", buf[:n], err)
	}
	if len(state.Fds) != 1 || state.Fds[0] != specs.SeccompFdName || state.Pid != cmd.Process.Pid ||
		state.Metadata != "agent-metadata" || state.State.ID != "seccomp-notify-test" || state.Version != specs.Version {
		t.Errorf("container process state = %+v; want fds [seccompFd], pid %d, the metadata, the id and version %s", state, cmd.Process.Pid, specs.Version)
	}

	// Wait for the notification; POLLHUP means the child is gone.
	pfd := []unix.PollFd{{Fd: int32(listener), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(pfd, -1); err == nil || !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if pfd[0].Revents&unix.POLLIN == 0 {
		t.Fatalf("listener poll revents %#x without a notification\n%s", pfd[0].Revents, stderr)
	}
	var req seccompNotif
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req))); e != 0 {
		t.Fatalf("SECCOMP_IOCTL_NOTIF_RECV: %v", e)
	}
	if req.Data.Nr != unix.SYS_MKDIRAT || req.Pid != uint32(cmd.Process.Pid) || req.Data.Arch != archInfo[NativeArch()].audit {
		t.Errorf("notification for nr %d from pid %d arch %#x; want mkdirat (%d) from %d", req.Data.Nr, req.Pid, req.Data.Arch, unix.SYS_MKDIRAT, cmd.Process.Pid)
	}
	resp := seccompNotifResp{ID: req.ID, Val: 42}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp))); e != 0 {
		t.Fatalf("SECCOMP_IOCTL_NOTIF_SEND: %v", e)
	}

	res := waitResults(t, cmd, stdout, stderr)
	if got := res["mkdirat"]; got.Ret != 42 || got.Errno != 0 {
		t.Errorf("mkdirat in the child = %+v, want the agent's answer 42", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "notified")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mkdirat ran although the agent answered it (stat: %v)", err)
	}
}

func TestCheckKernel(t *testing.T) {
	requireSeccomp(t)
	all := &Program{Actions: []uint32{retKillProcess, retKillThread, retTrap, retErrno, retTrace, retLog, retAllow}}
	if err := all.CheckKernel(); err != nil {
		t.Errorf("CheckKernel for the actions of Linux 4.14: %v", err)
	}
	bogus := &Program{Actions: []uint32{retAllow, 0x7ff80000}}
	err := bogus.CheckKernel()
	if err == nil || !strings.Contains(err.Error(), "is not supported by this kernel") {
		t.Errorf("CheckKernel for an action no kernel has = %v, want 'not supported by this kernel'", err)
	}
}

func TestLoadRefusesBadProgram(t *testing.T) {
	if _, err := Load(&Program{}); err == nil || !strings.Contains(err.Error(), "0 instructions") {
		t.Errorf("Load of an empty program = %v, want a refusal before the kernel sees it", err)
	}
}
