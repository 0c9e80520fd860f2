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
	p := e.startPty(30, 100, "run", "-it", "--name", "tty1", box, "sh")
	waitFor(t, "the container", func() bool { return e.remember("tty1") != "" })
	p.expect("$(stty size)", "30 100")
	// Resizing the terminal sends SIGWINCH to its foreground process group:
	// the CLI.
	if err := console.SetSize(p.master, 40, 120); err != nil {
		t.Fatal(err)
	}
	p.expect("$(stty size)", "40 120")

	if _, err := p.master.Write([]byte{0x10, 0x11}); err != nil { // ctrl-p ctrl-q
		t.Fatal(err)
	}
	if code := p.wait(); code != 0 {
		t.Fatalf("run -it after the detach keys: exit %d\n%s", code, p.out.String())
	}
	if got := e.ok("inspect", "-f", "{{.State.Running}}", "tty1"); got != "true\n" {
		t.Errorf("after detaching, Running = %q, want true", got)
	}
}

// ptyCmd is a berth command whose stdin, stdout and stderr are a new
// terminal of rows x cols; the test talks to it through master.
type ptyCmd struct {
	t      *testing.T
	cmd    *exec.Cmd
	master *os.File
	out    *ptyOutput
	done   chan error
}

func (e *ctrEnv) startPty(rows, cols uint16, args ...string) *ptyCmd {
	t := e.t
	t.Helper()
	master, slave, err := console.OpenPty("/dev/ptmx")
	if err != nil {
		t.Fatalf("open a pty: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := console.SetSize(slave, rows, cols); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(berthBin, append([]string{"--root", e.root, "--state", e.state}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+e.dockCfg, "HOME="+e.dir, "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	p := &ptyCmd{t: t, cmd: cmd, master: master, out: &ptyOutput{}, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			p.out.mu.Lock()
			p.out.buf.Write(b[:n])
			p.out.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	return p
}

// typeKeys writes b to the terminal one byte per write, as keys typed.
func (p *ptyCmd) typeKeys(b []byte) {
	p.t.Helper()
	for _, c := range b {
		if _, err := p.master.Write([]byte{c}); err != nil {
			p.t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // separate reads, not a timing check
	}
}

// expect types a shell command that echoes a marker with what, and waits
// until the container's answer shows on the terminal.
func (p *ptyCmd) expect(what, want string) {
	p.t.Helper()
	if _, err := p.master.Write([]byte("echo MARK=" + what + "=''END\r")); err != nil {
		p.t.Fatal(err)
	}
	waitFor(p.t, what+" = "+want+" in the container", func() bool {
		return strings.Contains(p.out.String(), "MARK="+want+"=END")
	})
}

// wait waits for the command and returns its exit code.
func (p *ptyCmd) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(commandGuard):
		p.t.Fatalf("%v did not finish:\n%s", p.cmd.Args, p.out.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// exited reports whether the command has finished.
func (p *ptyCmd) exited() bool { return p.cmd.ProcessState != nil || len(p.done) > 0 }

// TestAttachTTYDetachKeys: attach to a -t container on a real terminal
// relays input and output, gives the container the terminal's size and
// follows a resize; ctrl-p ctrl-q detaches it (exit 0, "read escape
// sequence", the container still running and still reading its input at
// the next attach); --detach-keys replaces the sequence, the default one
// then reaching the container; run -it --detach-keys too.
func TestAttachTTYDetachKeys(t *testing.T) {
	e := newCtrEnv(t)
	e.runD("-it", "--name", "att", box, "sh")

	a := e.startPty(24, 80, "attach", "att")
	a.expect("$(stty size)", "24 80")
	if err := console.SetSize(a.master, 33, 99); err != nil {
		t.Fatal(err)
	}
	a.expect("$(stty size)", "33 99")
	a.typeKeys([]byte{0x10, 0x11})
	if code := a.wait(); code != 0 || !strings.Contains(a.out.String(), "read escape sequence") {
		t.Errorf("attach after ctrl-p ctrl-q: exit %d, terminal %q; want 0 and read escape sequence", code, a.out.String())
	}
	if got := e.ok("inspect", "-f", "{{.State.Running}}", "att"); got != "true\n" {
		t.Fatalf("after detaching, Running = %q, want true", got)
	}

	// A custom sequence: ctrl-p ctrl-q are keys like others then.
	b := e.startPty(24, 80, "attach", "--detach-keys", "ctrl-x,x", "att")
	b.expect("still", "still")
	b.typeKeys([]byte{0x10, 0x11})
	b.expect("after-ctrl-p-q", "after-ctrl-p-q")
	if b.exited() {
		t.Errorf("attach --detach-keys ctrl-x,x left on ctrl-p ctrl-q")
	}
	b.typeKeys([]byte{0x18, 'x'})
	if code := b.wait(); code != 0 {
		t.Errorf("attach --detach-keys ctrl-x,x: exit %d after ctrl-x x, want 0\n%s", code, b.out.String())
	}
	if got := e.ok("inspect", "-f", "{{.State.Running}}", "att"); got != "true\n" {
		t.Errorf("after detaching with ctrl-x x, Running = %q, want true", got)
	}

	// run -it with its own sequence.
	r := e.startPty(24, 80, "run", "-it", "--name", "run-keys", "--detach-keys", "ctrl-a,d", box, "sh")
	r.expect("run", "run")
	r.typeKeys([]byte{0x01, 'd'})
	if code := r.wait(); code != 0 {
		t.Errorf("run -it --detach-keys ctrl-a,d: exit %d, want 0\n%s", code, r.out.String())
	}
	if got := e.ok("inspect", "-f", "{{.State.Running}}", "run-keys"); got != "true\n" {
		t.Errorf("after detaching run -it, Running = %q, want true", got)
	}
	// and its input still reaches the shell at the next attach.
	c := e.startPty(24, 80, "attach", "run-keys")
	c.expect("again", "again")
	c.typeKeys([]byte{0x10, 0x11})
	c.wait()
}
