package runtime

import (
	"os"
	"os/exec"
	goruntime "runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The helper process of TestAliveWithAZombieLeader: its main thread exits
// alone (as pthread_exit does), another thread goes on.
func init() {
	if os.Getenv("BERTH_TEST_LEADER_EXIT") != "1" {
		return
	}
	goruntime.LockOSThread() // the main goroutine keeps the main thread
	go func() {
		goruntime.LockOSThread() // another thread
		for {
			time.Sleep(time.Hour)
		}
	}()
	time.Sleep(10 * time.Millisecond) // let that thread start
	os.Stdout.WriteString("ready\n")
	syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0) // this thread only
}

// TestAliveWithAZombieLeader: a process whose leader thread exited while
// another thread runs is running (/proc/PID/stat says Z): the runtime must
// not report its container stopped and refuse to signal it. Once the
// process is killed, it is gone (a zombie until reaped).
func TestAliveWithAZombieLeader(t *testing.T) {
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), "BERTH_TEST_LEADER_EXIT=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("the helper said %q, %v", buf, err)
	}
	pid := cmd.Process.Pid
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	start, _, err := procStart(pid)
	if err != nil {
		t.Fatal(err)
	}
	st := &State{Pid: pid, PidStart: start}
	// The leader becomes a zombie once its exit is through.
	for i := 0; ; i++ {
		if _, zombie, _ := procStart(pid); zombie {
			break
		}
		if i == 5000 {
			t.Fatal("the helper's leader thread did not exit")
		}
		time.Sleep(time.Millisecond)
	}
	if !st.alive() {
		t.Errorf("a process with a zombie leader and a live thread: alive() = false")
	}
	if other := (&State{Pid: pid, PidStart: start + 1}); other.alive() {
		t.Errorf("alive() of another start time = true (a reused pid)")
	}
	cmd.Process.Kill()
	for i := 0; !exited(pidfd); i++ {
		if i == 5000 {
			t.Fatal("the killed helper still runs")
		}
		time.Sleep(time.Millisecond)
	}
	if st.alive() {
		t.Errorf("a killed process, not yet reaped: alive() = true")
	}
	cmd.Wait()
	if st.alive() {
		t.Errorf("a reaped process: alive() = true")
	}
}

// exited reports whether the process of pidfd has exited.
func exited(pidfd int) bool {
	n, err := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, 0)
	return err == nil && n > 0
}
