package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/console"
)

// ptyOutput collects what a terminal's master side reads.
type ptyOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (p *ptyOutput) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// TestRunTTYResizeAndDetach: `run -it` on a real terminal gives the
// container a terminal of the caller's size, follows a resize (SIGWINCH),
// and the detach keys (ctrl-p ctrl-q by default) leave the container running
// while the CLI exits 0.
func TestRunTTYResizeAndDetach(t *testing.T) {
	e := newCtrEnv(t)
	master, slave, err := console.OpenPty("/dev/ptmx")
	if err != nil {
		t.Fatalf("open a pty: %v", err)
	}
	defer master.Close()
	if err := console.SetSize(slave, 30, 100); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(berthBin, "--root", e.root, "--state", e.state, "run", "-it", "--name", "tty1", box, "sh")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+e.dockCfg, "HOME="+e.dir, "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	out := &ptyOutput{}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			out.mu.Lock()
			out.buf.Write(b[:n])
			out.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()
	waitFor(t, "the container", func() bool { return e.remember("tty1") != "" })
	ask := func(want string) {
		t.Helper()
		// Markers split by quotes so the echoed command line cannot match.
		if _, err := master.Write([]byte("echo SIZE=$(stty size)=''END\r")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "stty size "+want+" in the container", func() bool {
			return strings.Contains(out.String(), "SIZE="+want+"=END")
		})
	}
	ask("30 100")
	// Resizing the terminal sends SIGWINCH to its foreground process group:
	// the CLI.
	if err := console.SetSize(master, 40, 120); err != nil {
		t.Fatal(err)
	}
	ask("40 120")

	if _, err := master.Write([]byte{0x10, 0x11}); err != nil { // ctrl-p ctrl-q
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run -it after the detach keys: %v\n%s", err, out.String())
		}
	case <-time.After(commandGuard):
		t.Fatalf("the CLI did not detach on ctrl-p ctrl-q:\n%s", out.String())
	}
	if got := e.ok("inspect", "-f", "{{.State.Running}}", "tty1"); got != "true\n" {
		t.Errorf("after detaching, Running = %q, want true", got)
	}
}
