package shim

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The helper process of TestAliveAcrossExecFromAThread: a Go program that
// executes itself again and again from a thread other than the main one,
// as the monitor hands over to berth-shim-idle (and a resumed monitor to
// the next one).
func init() {
	n, err := strconv.Atoi(os.Getenv("BERTH_TEST_REEXEC"))
	if err != nil {
		return
	}
	runtime.LockOSThread() // the main goroutine keeps the main thread
	if n == 0 {
		os.Exit(0)
	}
	os.Setenv("BERTH_TEST_REEXEC", strconv.Itoa(n-1))
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // another thread than the main one
		done <- syscall.Exec("/proc/self/exe", os.Args, os.Environ())
	}()
	err = <-done
	os.Stderr.WriteString("exec: " + err.Error() + "\n")
	os.Exit(2)
}

// TestAliveAcrossExecFromAThread: a monitor is alive all through its
// execs. When a thread other than the leader executes, the leader (what
// /proc/PID shows) is a zombie without a command line until the thread
// takes its place; a command that looked then (ps, inspect: reconcile)
// took the monitor for dead and stopped the container.
func TestAliveAcrossExecFromAThread(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("/proc/self/exe", "-test.run=^$", "--dir", dir)
	cmd.Env = append(os.Environ(), "BERTH_TEST_REEXEC=300")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err := os.WriteFile(filepath.Join(dir, "shim.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	looks, dead := 0, 0
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the helper: %v", err)
			}
			if dead > 0 {
				t.Errorf("Alive said a process executing itself from a thread was gone %d times out of %d", dead, looks)
			}
			if looks < 50 {
				t.Logf("only %d looks during the execs", looks)
			}
			return
		default:
		}
		alive := Alive(dir)
		// Only a false answer while the process still runs is wrong: it
		// may have ended (a zombie for Wait) since.
		if !alive && !exited(pidfd) {
			dead++
		}
		looks++
	}
}

// exited reports whether the process of pidfd has exited.
func exited(pidfd int) bool {
	n, err := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, 0)
	return err == nil && n > 0
}
