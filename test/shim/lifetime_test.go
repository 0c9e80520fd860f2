package shimtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berthproject/berth/internal/shim"
)

// cliEnv makes the test binary act as a CLI: it starts a monitor with the
// options in the file the variable names, prints the init's pid and waits
// to be killed.
const cliEnv = "BERTH_SHIM_TEST_CLI"

func cliMain() int {
	b, err := os.ReadFile(os.Getenv(cliEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var o shim.Options
	if err := json.Unmarshal(b, &o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pid, err := shim.Start(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(pid)
	select {}
}

// startFromCLI starts c's monitor from a separate CLI process and returns
// that process (still running) and the init's pid.
func (c *ctr) startFromCLI() (*exec.Cmd, int) {
	c.t.Helper()
	c.writeSpec()
	b, err := json.Marshal(c.opts)
	if err != nil {
		c.t.Fatal(err)
	}
	optFile := c.dir + "/opts.json"
	if err := os.WriteFile(optFile, b, 0o600); err != nil {
		c.t.Fatal(err)
	}
	cli := exec.Command(os.Args[0])
	cli.Env = append(os.Environ(), cliEnv+"="+optFile)
	cli.Stderr = os.Stderr
	out, err := cli.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cli.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		_ = cli.Process.Kill()
		_ = cli.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		c.t.Fatalf("the CLI did not report the init's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		c.t.Fatalf("CLI printed %q", line)
	}
	return cli, pid
}

func TestKillingTheCLIDoesNotAffectTheContainer(t *testing.T) {
	c := newCtr(t, sh("trap 'echo term; exit 7' TERM; echo up; while :; do sleep 0.1; done"))
	cli, pid := c.startFromCLI()
	if err := cli.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cli.Wait()
	if !alive(pid) || !shim.Alive(c.sdir) {
		t.Fatalf("after kill -9 of the CLI: init alive %v, monitor alive %v; want both", alive(pid), shim.Alive(c.sdir))
	}
	// The monitor still does its job: the stop goes through the runtime.
	waitFor(t, "the container's first output", func() bool { return len(c.records()) > 0 })
	if out, err := c.rt("kill", c.id, "TERM"); err != nil {
		t.Fatalf("runtime kill: %v: %s", err, out)
	}
	e := c.waitGone()
	if e.ExitCode != 7 {
		t.Errorf("exit code = %d, want 7 (the trap's)", e.ExitCode)
	}
	if got := c.records(); len(got) != 2 || got[1] != "stdout:term\n" {
		t.Errorf("log = %q, want up and term", got)
	}
}

func TestKillingTheMonitorLeavesTheContainerRunning(t *testing.T) {
	c := newCtr(t, []string{"sleep", "1000"})
	pid := c.start()
	spid, err := shim.Pid(c.sdir)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(spid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the monitor to die", func() bool { return !shim.Alive(c.sdir) })
	if !alive(pid) {
		t.Fatalf("the container's init %d died with its monitor", pid)
	}
	// What the engine can do about it: the runtime still knows the
	// container, and stops and deletes it.
	if out, err := c.rt("state", c.id); err != nil || !strings.Contains(out, `"running"`) {
		t.Errorf("runtime state = %v %s, want running", err, out)
	}
	if out, err := c.rt("delete", "--force", c.id); err != nil {
		t.Fatalf("runtime delete --force: %v: %s", err, out)
	}
	waitFor(t, "the orphaned init to be gone", func() bool { return !alive(pid) })
}

func TestSignalsToTheMonitorAreIgnored(t *testing.T) {
	c := newCtr(t, []string{"sleep", "1000"})
	pid := c.start()
	spid, err := shim.Pid(c.sdir)
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		if err := syscall.Kill(spid, sig); err != nil {
			t.Fatal(err)
		}
	}
	// Round trip through the monitor so that it has handled the signals.
	if err := shim.CloseStdin(c.sdir); err != nil {
		t.Fatalf("CloseStdin after signals: %v", err)
	}
	if !shim.Alive(c.sdir) || !alive(pid) {
		t.Fatalf("after SIGTERM, SIGINT, SIGHUP: monitor alive %v, init alive %v; want both", shim.Alive(c.sdir), alive(pid))
	}
	if out, err := c.rt("kill", c.id, "KILL"); err != nil {
		t.Fatalf("runtime kill: %v: %s", err, out)
	}
	if e := c.waitGone(); e.ExitCode != 137 {
		t.Errorf("exit code = %d, want 137", e.ExitCode)
	}
}
