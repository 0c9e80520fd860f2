package integration

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// consoleSocket is the unix socket a runtime sends a container's pty master
// to (--console-socket), as one SCM_RIGHTS message.
type consoleSocket struct {
	path string
	got  chan consoleResult
}

type consoleResult struct {
	master *os.File
	err    error
}

func newConsoleSocket(t *testing.T, dir string) *consoleSocket {
	t.Helper()
	s := &consoleSocket{path: filepath.Join(dir, "console.sock"), got: make(chan consoleResult, 1)}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.path, Net: "unix"})
	if err != nil {
		t.Fatalf("listen on console socket %s: %v", s.path, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		s.got <- receiveMaster(ln)
	}()
	return s
}

func receiveMaster(ln *net.UnixListener) consoleResult {
	conn, err := ln.AcceptUnix()
	if err != nil {
		return consoleResult{err: err}
	}
	defer conn.Close()
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4*4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return consoleResult{err: err}
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return consoleResult{err: err}
	}
	if len(msgs) != 1 {
		return consoleResult{err: errors.New("want one control message with the pty master")}
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil {
		return consoleResult{err: err}
	}
	if len(fds) != 1 {
		return consoleResult{err: errors.New("want exactly one fd, the pty master")}
	}
	// Non-blocking, so that reads can have a deadline.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		return consoleResult{err: err}
	}
	return consoleResult{master: os.NewFile(uintptr(fds[0]), "pty-master")}
}

// master waits for the runtime to send the pty master.
func (s *consoleSocket) master(t *testing.T) *os.File {
	t.Helper()
	select {
	case r := <-s.got:
		if r.err != nil {
			t.Fatalf("receive the pty master on %s: %v", s.path, r.err)
		}
		t.Cleanup(func() { r.master.Close() })
		return r.master
	case <-time.After(pollGuard):
		t.Fatalf("no pty master arrived on %s", s.path)
		return nil
	}
}

// readUntil reads the pty until its output contains want.
func readUntil(t *testing.T, f *os.File, want string) string {
	t.Helper()
	f.SetReadDeadline(time.Now().Add(pollGuard))
	var out strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(out.String(), want) {
		n, err := f.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Fatalf("read the pty waiting for %q: %v; got %q", want, err, out.String())
		}
	}
	return out.String()
}

// The container's init on a terminal: the runtime sends the pty master to
// --console-socket; a command written there runs and its output comes back.
func TestTerminal(t *testing.T) {
	c := newContainer(t, func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Process.Args = []string{"sh"}
	})
	sock := newConsoleSocket(t, c.dir)
	c.mustCreate("--console-socket", sock.path)
	master := sock.master(t)
	c.mustRT("start", c.id)
	if _, err := master.Write([]byte("tty; echo $((6*7))x\n")); err != nil {
		t.Fatalf("write to the pty: %v", err)
	}
	out := readUntil(t, master, "42x")
	if !strings.Contains(out, "/dev/pts/0") {
		t.Errorf("tty inside printed %q, want /dev/pts/0 (the container's own devpts)", out)
	}
	if _, err := master.Write([]byte("exit 0\n")); err != nil {
		t.Fatalf("write to the pty: %v", err)
	}
	c.waitStatus(specs.StateStopped)
}

// TestTerminalConsoleSize: process.consoleSize sizes the pty before the
// process runs, and the pty is its controlling terminal (a shell's job
// control needs that: a read from /dev/tty works).
func TestTerminalConsoleSize(t *testing.T) {
	c := newContainer(t, func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Process.ConsoleSize = &specs.Box{Height: 40, Width: 120}
		s.Process.Args = []string{"sh"}
	})
	sock := newConsoleSocket(t, c.dir)
	c.mustCreate("--console-socket", sock.path)
	master := sock.master(t)
	c.mustRT("start", c.id)
	if _, err := master.Write([]byte("busybox stty size; echo ctty > /dev/tty; echo $((6*7))x\n")); err != nil {
		t.Fatalf("write to the pty: %v", err)
	}
	out := readUntil(t, master, "42x")
	if !strings.Contains(out, "40 120") {
		t.Errorf("stty size inside printed %q, want 40 120 (process.consoleSize)", out)
	}
	if !strings.Contains(out, "\nctty") && !strings.Contains(out, "ctty\r") {
		t.Errorf("no output through /dev/tty (the controlling terminal): %q", out)
	}
	if _, err := master.Write([]byte("exit 0\n")); err != nil {
		t.Fatalf("write to the pty: %v", err)
	}
	c.waitStatus(specs.StateStopped)
}
