// Package network holds berth's root tests of container networking. Every
// test runs inside a throwaway network namespace that plays the host: the
// test binary re-executes itself in new network and mount namespaces, so
// the real host's links, addresses and nftables rules are never touched and
// whatever a failed test leaves vanishes with the process. "Containers" are
// network namespaces the tests create; "another host" is one more namespace
// joined to the host namespace by a veth pair.
package network

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	dnsserver "github.com/berthproject/berth/internal/network/dns/server"
)

const (
	envInner = "BERTH_NETTEST_INNER" // set in the re-executed test binary
	envRole  = "BERTH_NETTEST_ROLE"  // "dns": act as berth-dns
)

func TestMain(m *testing.M) {
	if os.Getenv(envRole) == "dns" {
		os.Exit(dnsMain(os.Args[1:]))
	}
	if os.Geteuid() != 0 {
		os.Exit(m.Run()) // every test skips itself
	}
	if os.Getenv(envInner) == "" {
		os.Exit(reexec())
	}
	// A private mount table: netns bind mounts go with the process.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fmt.Fprintln(os.Stderr, "make mounts private:", err)
		os.Exit(1)
	}
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bring lo up in the test's host namespace:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// reexec runs this test binary again in new network and mount namespaces.
func reexec() int {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), envInner+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "re-execute the tests in a throwaway network namespace:", err)
		return 1
	}
	return 0
}

// dnsMain is berth-dns inside the test binary (the manager starts it with
// the test binary's path and envRole=dns).
func dnsMain(args []string) int {
	cfg := dnsserver.ServerConfig{Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "--records":
			cfg.Records = args[i+1]
		case "--run":
			cfg.Run = args[i+1]
		case "--resolv-conf":
			cfg.HostResolvConf = args[i+1]
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := dnsserver.Serve(ctx, cfg); err != nil && err != dnsserver.ErrRunning {
		fmt.Fprintln(os.Stderr, "dns:", err)
		return 1
	}
	return 0
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, links and nftables tables (in a throwaway namespace)")
	}
}
