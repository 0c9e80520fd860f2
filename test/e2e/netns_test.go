package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// The suite runs in a throwaway network namespace that plays the host
// (TESTING.md): containers get bridge networking by default, and berth's
// bridges, veths and nftables tables must never touch the real host's
// network. TestMain re-executes the test binary in a new network namespace
// (with loopback up, for the registries the tests start on 127.0.0.1);
// whatever a failed test leaves in it goes with the last process in it.

const envInNetns = "BERTH_E2E_NETNS" // set in the re-executed test binary

// reexecInThrowawayNetns runs the test binary again in a new network
// namespace and returns its exit code with ok; in the re-executed binary
// it brings loopback up and returns ok false: the tests run there.
func reexecInThrowawayNetns() (code int, ok bool) {
	if os.Getenv(envInNetns) != "" {
		if err := loopbackUp(); err != nil {
			fmt.Fprintln(os.Stderr, "bring lo up in the tests' network namespace:", err)
			return 1, true
		}
		return 0, false
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), envInNetns+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if ee, isExit := err.(*exec.ExitError); isExit {
			return ee.ExitCode(), true
		}
		fmt.Fprintln(os.Stderr, "re-execute the tests in a throwaway network namespace:", err)
		return 1, true
	}
	return 0, true
}

// loopbackUp sets lo up in this process's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
