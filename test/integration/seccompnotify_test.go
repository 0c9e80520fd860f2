package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The seccomp user notification structures of linux/seccomp.h, which
// x/sys/unix does not define (it has the ioctl numbers). Sizes: 64, 80
// and 24 bytes, as the ioctl numbers encode.
type seccompData struct {
	Nr                 int32
	Arch               uint32
	InstructionPointer uint64
	Args               [6]uint64
}

type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  seccompData
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32 // a negative errno, or 0
	Flags uint32
}

// seccompAgent is the process a seccomp notify profile names in
// linux.seccomp.listenerPath: it accepts the runtime's connections, reads
// one container process state with the listener fd from each, and answers
// the notifications of every listener it got.
type seccompAgent struct {
	t      *testing.T
	path   string
	ln     *net.UnixListener
	answer seccompNotifResp // ID filled per notification
	done   chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	conns    []*net.UnixConn
	messages []*agentMessage
	notes    []notification
	errs     []error
}

// agentMessage is what the runtime sent on one connection.
type agentMessage struct {
	payload string
	state   specs.ContainerProcessState
	fds     int  // descriptors received by SCM_RIGHTS
	closed  bool // the runtime closed the connection after the message
}

// notification is one system call the agent was asked about.
type notification struct {
	nr        int32
	pid       uint32
	path      string // the pathname argument, read from the caller's memory
	pidNS     string // the caller's pid namespace
	statePidN string // the pid namespace of the state's pid, at the same time
}

// startAgent listens at path and answers every notification with answer
// until the test ends.
func startAgent(t *testing.T, path string, answer seccompNotifResp) *seccompAgent {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("listen on %s: %v", path, err)
	}
	a := &seccompAgent{t: t, path: path, ln: ln, answer: answer, done: make(chan struct{})}
	a.wg.Add(1)
	go a.accept()
	t.Cleanup(a.stop)
	return a
}

// stop closes the socket and waits for every goroutine; safe to call twice.
func (a *seccompAgent) stop() {
	select {
	case <-a.done:
		return
	default:
	}
	close(a.done)
	a.ln.Close()
	// Connections still open now were not closed by the runtime.
	a.mu.Lock()
	for _, c := range a.conns {
		c.SetReadDeadline(time.Now())
	}
	a.mu.Unlock()
	a.wg.Wait()
}

func (a *seccompAgent) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.errs = append(a.errs, err)
}

func (a *seccompAgent) accept() {
	defer a.wg.Done()
	for {
		conn, err := a.ln.AcceptUnix()
		if err != nil {
			select {
			case <-a.done:
			default:
				a.fail(fmt.Errorf("accept on %s: %w", a.path, err))
			}
			return
		}
		a.wg.Add(1)
		go a.receive(conn)
	}
}

// receive reads the runtime's one message: JSON with the listener fd in an
// SCM_RIGHTS control message (of the first part: a stream socket may split
// the payload). It serves the listener as soon as the JSON is complete,
// then checks that the runtime closes the connection (one state per
// connection, closed after it).
func (a *seccompAgent) receive(conn *net.UnixConn) {
	defer a.wg.Done()
	defer conn.Close()
	a.mu.Lock()
	a.conns = append(a.conns, conn)
	a.mu.Unlock()
	conn.SetReadDeadline(time.Now().Add(pollGuard))
	var payload []byte
	var fds []int
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(4*8))
	var err error
	for !json.Valid(payload) && err == nil {
		var n, oobn int
		n, oobn, _, _, err = conn.ReadMsgUnix(buf, oob)
		payload = append(payload, buf[:max(n, 0)]...)
		fds = append(fds, a.parseRights(oob[:max(oobn, 0)])...)
	}
	if !json.Valid(payload) {
		a.fail(fmt.Errorf("read the runtime's message: %v (got %q)", err, payload))
	}
	msg := &agentMessage{payload: string(payload), fds: len(fds)}
	if err := json.Unmarshal(payload, &msg.state); err != nil {
		a.fail(fmt.Errorf("decode the container process state %q: %w", payload, err))
	}
	a.mu.Lock()
	a.messages = append(a.messages, msg)
	a.mu.Unlock()
	for i, fd := range fds {
		if i > 0 {
			unix.Close(fd)
			continue
		}
		a.wg.Add(1)
		go a.serve(fd, msg.state.Pid)
	}
	n, err := conn.Read(buf)
	a.mu.Lock()
	msg.closed = n == 0 && errors.Is(err, io.EOF)
	a.mu.Unlock()
	if n > 0 {
		a.fail(fmt.Errorf("the runtime sent more after the container process state: %q", buf[:n]))
	}
}

func (a *seccompAgent) parseRights(oob []byte) []int {
	if len(oob) == 0 {
		return nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		a.fail(fmt.Errorf("parse the control message from the runtime: %w", err))
		return nil
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			a.fail(fmt.Errorf("parse SCM_RIGHTS from the runtime: %w", err))
		}
		fds = append(fds, got...)
	}
	return fds
}

// serve answers the notifications of one listener until no process uses
// its filter any more (POLLHUP) or the agent stops.
func (a *seccompAgent) serve(fd, statePid int) {
	defer a.wg.Done()
	defer unix.Close(fd)
	for {
		select {
		case <-a.done:
			return
		default:
		}
		// A bounded wait, so that stop is seen; not a synchronisation.
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 100)
		switch {
		case errors.Is(err, unix.EINTR) || n == 0:
			continue
		case err != nil:
			a.fail(fmt.Errorf("poll the seccomp listener: %w", err))
			return
		case pfd[0].Revents&unix.POLLIN != 0:
			a.handle(fd, statePid)
		default: // POLLHUP: the filter has no users left
			return
		}
	}
}

func (a *seccompAgent) handle(fd, statePid int) {
	var req seccompNotif // RECV wants it zeroed
	if err := ioctl(fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(&req)); err != nil {
		if !errors.Is(err, unix.ENOENT) { // the caller died meanwhile
			a.fail(fmt.Errorf("SECCOMP_IOCTL_NOTIF_RECV: %w", err))
		}
		return
	}
	note := notification{nr: req.Data.Nr, pid: req.Pid}
	note.pidNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", req.Pid))
	note.statePidN, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", statePid))
	var ptr uint64
	switch req.Data.Nr {
	case unix.SYS_MKDIR:
		ptr = req.Data.Args[0]
	case unix.SYS_MKDIRAT:
		ptr = req.Data.Args[1]
	}
	if ptr != 0 {
		note.path = readString(req.Pid, ptr)
		// The memory read is only the caller's if the request is still
		// pending (the pid could have been reused).
		id := req.ID
		if err := ioctl(fd, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&id)); err != nil {
			note.path = fmt.Sprintf("(request gone: %v)", err)
		}
	}
	a.mu.Lock()
	a.notes = append(a.notes, note)
	a.mu.Unlock()
	resp := a.answer
	resp.ID = req.ID
	if err := ioctl(fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&resp)); err != nil && !errors.Is(err, unix.ENOENT) {
		a.fail(fmt.Errorf("SECCOMP_IOCTL_NOTIF_SEND %+v: %w", resp, err))
	}
}

// readString reads a NUL-terminated string at addr in pid's memory.
func readString(pid uint32, addr uint64) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return fmt.Sprintf("(open memory: %v)", err)
	}
	defer f.Close()
	buf := make([]byte, unix.PathMax)
	n, err := f.ReadAt(buf, int64(addr))
	if n == 0 {
		return fmt.Sprintf("(read memory: %v)", err)
	}
	if i := slices.Index(buf[:n], 0); i >= 0 {
		n = i
	}
	return string(buf[:n])
}

func ioctl(fd int, req uint, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// results stops the agent and returns what it saw; an agent error fails
// the test.
func (a *seccompAgent) results() ([]*agentMessage, []notification) {
	a.t.Helper()
	a.stop()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, err := range a.errs {
		a.t.Errorf("seccomp agent: %v", err)
	}
	return a.messages, a.notes
}

// crunExecListenerState is a deviation of crun's seccomp notify hand-off
// for exec'd processes (kept here with the test that shows it).
var crunExecListenerState = deviation{[]string{"crun"},
	"(1.8.1) sends the container process state of an exec'd process with pid 0 and bundle \".\""}

// notifyMkdir is a profile that allows everything but hands mkdir and
// mkdirat to the agent at path.
func notifyMkdir(path, metadata string) func(*specs.Spec) {
	return func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction:    specs.ActAllow,
			Architectures:    []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
			ListenerPath:     path,
			ListenerMetadata: metadata,
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify},
			},
		}
	}
}

// checkProcessState checks one message of the runtime to the agent.
func checkProcessState(t *testing.T, m *agentMessage, c *container, pid int, metadata string) {
	t.Helper()
	t.Logf("container process state from %s: %s", rt.name, m.payload)
	st := m.state
	if m.fds != 1 {
		t.Errorf("the runtime sent %d descriptors, want 1 (the listener)", m.fds)
	}
	if !m.closed {
		t.Errorf("the runtime did not close the connection after the container process state")
	}
	if st.Version == "" || !slices.Equal(st.Fds, []string{specs.SeccompFdName}) || st.Metadata != metadata {
		t.Errorf("container process state: ociVersion %q, fds %q, metadata %q; want a version, [%q], %q\n%s",
			st.Version, st.Fds, st.Metadata, specs.SeccompFdName, metadata, m.payload)
	}
	if st.Pid != pid || st.State.Pid != pid || st.State.ID != c.id || st.State.Bundle != c.bundle {
		t.Errorf("container process state: pid %d, state pid %d, id %q, bundle %q; want pid %d, id %q, bundle %q\n%s",
			st.Pid, st.State.Pid, st.State.ID, st.State.Bundle, pid, c.id, c.bundle, m.payload)
	}
	valid := []specs.ContainerState{specs.StateCreating, specs.StateCreated, specs.StateRunning}
	if !slices.Contains(valid, st.State.Status) {
		t.Errorf("container process state: status %q, want one of %v\n%s", st.State.Status, valid, m.payload)
	}
}

// checkMkdirNotification checks that the agent was asked about exactly one
// mkdir of want, by a process in pid namespace pidNS ("": the namespace of
// the state's pid).
func checkMkdirNotification(t *testing.T, notes []notification, want, pidNS string) {
	t.Helper()
	if len(notes) != 1 {
		t.Fatalf("the agent got %d notifications, want 1 (mkdir %s): %+v", len(notes), want, notes)
	}
	n := notes[0]
	if n.nr != unix.SYS_MKDIR && n.nr != unix.SYS_MKDIRAT {
		t.Errorf("notified system call %d, want mkdir (%d) or mkdirat (%d)", n.nr, unix.SYS_MKDIR, unix.SYS_MKDIRAT)
	}
	if n.path != want {
		t.Errorf("notified mkdir of %q, want %q", n.path, want)
	}
	if pidNS == "" {
		pidNS = n.statePidN
	}
	if n.pidNS == "" || n.pidNS != pidNS {
		t.Errorf("notifying pid %d is in pid namespace %q, want the container's %q", n.pid, n.pidNS, pidNS)
	}
}

// TestSeccompNotify runs `mkdir` under a profile that notifies mkdir and
// mkdirat to an agent at linux.seccomp.listenerPath. The agent receives the
// container process state and the listener fd from the runtime and
// answers; the container sees the answer.
func TestSeccompNotify(t *testing.T) {
	const script = "mkdir /tmp/x; echo rc=$?; if [ -d /tmp/x ]; then echo dir=exists; else echo dir=absent; fi"
	tests := []struct {
		name       string
		nnp        bool
		answer     seccompNotifResp
		wantOut    string
		wantStderr string
	}{
		{
			name:    "answered with an errno",
			nnp:     true,
			answer:  seccompNotifResp{Error: -int32(unix.ENOSPC)},
			wantOut: "rc=1\ndir=absent\n", wantStderr: "No space left on device",
		},
		{
			name:    "answered with success, the call not made",
			nnp:     true,
			answer:  seccompNotifResp{Val: 0},
			wantOut: "rc=0\ndir=absent\n",
		},
		{
			name:    "continued, the kernel makes the call",
			nnp:     true,
			answer:  seccompNotifResp{Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE},
			wantOut: "rc=0\ndir=exists\n",
		},
		{
			name:    "without no_new_privs",
			nnp:     false,
			answer:  seccompNotifResp{Error: -int32(unix.ENOSPC)},
			wantOut: "rc=1\ndir=absent\n", wantStderr: "No space left on device",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireRuntime(t)
			metadata := fmt.Sprintf("berth-notify-%d", i)
			c := newContainer(t, sh(script), func(s *specs.Spec) { s.Process.NoNewPrivileges = tt.nnp })
			agent := startAgent(t, filepath.Join(c.dir, "agent.sock"), tt.answer)
			notifyMkdir(agent.path, metadata)(c.spec)
			c.mustCreate()
			pid := c.initPid()
			c.mustRT("start", c.id)
			c.waitStatus(specs.StateStopped)
			messages, notes := agent.results()

			if out := c.output(); out != tt.wantOut {
				t.Errorf("container output %q, want %q", out, tt.wantOut)
			}
			if stderr := readFile(t, strings.TrimSuffix(c.initOut, ".out")+".err"); !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("container stderr %q, want it to contain %q", stderr, tt.wantStderr)
			}
			if len(messages) != 1 {
				t.Fatalf("the agent got %d connections with a message, want 1: %+v", len(messages), messages)
			}
			checkProcessState(t, messages[0], c, pid, metadata)
			checkMkdirNotification(t, notes, "/tmp/x", "")
			c.mustRT("delete", c.id)
			assertNoLeftovers(t, c)
		})
	}
}

// TestSeccompNotifyExec checks that a process started by `exec` gets the
// notify filter too and that the runtime hands its listener to the agent
// (as runc does): a second connection, whose answer the exec'd process
// sees.
func TestSeccompNotifyExec(t *testing.T) {
	requireRuntime(t)
	const metadata = "berth-notify-exec"
	c := newContainer(t, sh("echo ready; exec sleep 100000"))
	agent := startAgent(t, filepath.Join(c.dir, "agent.sock"), seccompNotifResp{Error: -int32(unix.ENOSPC)})
	notifyMkdir(agent.path, metadata)(c.spec)
	c.mustCreate()
	pid := c.initPid()
	c.mustRT("start", c.id)
	c.waitOutput("ready\n")
	initNS := nsLink(t, pid, "pid")
	r := c.rt("exec", c.id, "sh", "-c", "mkdir /tmp/y 2>&1; echo rc=$?")
	messages, notes := agent.results()

	if want := "mkdir: can't create directory '/tmp/y': No space left on device\nrc=1\n"; r.stdout != want {
		t.Errorf("exec'd mkdir under the notify profile: %q, want %q (the agent's answer)\n%v", r.stdout, want, r)
	}
	if len(messages) != 2 {
		t.Fatalf("the agent got %d connections with a message, want 2 (init, exec): %+v", len(messages), messages)
	}
	checkProcessState(t, messages[0], c, pid, metadata)
	m := messages[1]
	t.Logf("exec's container process state from %s: %s", rt.name, m.payload)
	if m.fds != 1 || !m.closed || m.state.State.ID != c.id || m.state.Metadata != metadata {
		t.Errorf("exec's container process state: %d fds, connection closed %v, id %q, metadata %q; want 1 fd, closed, %q, %q\n%s",
			m.fds, m.closed, m.state.State.ID, m.state.Metadata, c.id, metadata, m.payload)
	}
	if crunExecListenerState.applies() {
		crunExecListenerState.log(t)
	} else if m.state.Pid <= 0 || m.state.Pid == pid || m.state.State.Pid != pid || m.state.State.Bundle != c.bundle {
		// pid is the process the filter belongs to; state.pid stays the
		// container's (its init), as in every state.
		t.Errorf("exec's container process state: pid %d, state pid %d, bundle %q; want the exec'd process's pid, the init's %d, %q\n%s",
			m.state.Pid, m.state.State.Pid, m.state.State.Bundle, pid, c.bundle, m.payload)
	}
	checkMkdirNotification(t, notes, "/tmp/y", initNS)
	c.mustRT("kill", c.id, "KILL")
	c.waitStatus(specs.StateStopped)
	c.mustRT("delete", c.id)
	assertNoLeftovers(t, c)
}
