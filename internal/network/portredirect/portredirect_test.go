package portredirect

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// inNewNetNS runs fn on a thread of its own in a new network namespace
// with lo up; the thread ends with fn, and the namespace with it.
func inNewNetNS(t *testing.T, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			done <- err
			return
		}
		done <- fn()
	}()
	return <-done
}

// useTempBPFFS points BPFFS at a directory of the test's, where Sync mounts
// a bpf file system of its own, and checks at the end that nothing of name
// is left attached.
func useTempBPFFS(t *testing.T, name string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := CgroupRoot(); err != nil {
		t.Skip(err)
	}
	old := BPFFS
	BPFFS = t.TempDir()
	t.Cleanup(func() {
		Remove(name)
		if n, err := Attached(name); err != nil || n != 0 {
			t.Errorf("after Remove, %d programs of %s attached (%v)", n, name, err)
		}
		unix.Unmount(BPFFS, unix.MNT_DETACH)
		BPFFS = old
	})
}

func serve(t *testing.T, l net.Listener, reply string) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", reply, c.RemoteAddr())
			c.Close()
		}
	}()
}

func fetch(addr string) (line, peer string, err error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err = bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), c.RemoteAddr().String(), err
}

// A connect() to a published address in the namespace the entries were
// made for reaches the target; getpeername answers with what was dialed;
// another namespace is not redirected; Remove leaves nothing.
func TestRedirect(t *testing.T) {
	name := fmt.Sprintf("berth-test-%d", os.Getpid())
	useTempBPFFS(t, name)
	var cookie uint64
	err := inNewNetNS(t, func() error {
		var err error
		if cookie, err = NetNSCookie(); err != nil {
			return err
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l.Close()
		serve(t, l, "backend")
		backend := l.Addr().(*net.TCPAddr).AddrPort()
		// 127.0.0.2 answers on lo too; nothing listens on port 8080.
		if err := Sync(name, cookie, []Entry{
			{Proto: "tcp", Addr: netip.MustParseAddr("127.0.0.2"), Port: 8080, To: backend},
			{Proto: "udp", Addr: netip.MustParseAddr("127.0.0.2"), Port: 8053, To: backend}, // not redirected
		}); err != nil {
			return err
		}
		if es, err := Entries(name); err != nil || len(es) != 1 || es[0].To != backend || es[0].Port != 8080 {
			t.Errorf("Entries = %v, %v; want one, 127.0.0.2:8080 -> %s", es, err, backend)
		}
		line, peer, err := fetch("127.0.0.2:8080")
		if err != nil || !strings.HasPrefix(line, "backend ") || peer != "127.0.0.2:8080" {
			t.Errorf("dial 127.0.0.2:8080 = %q, peer %s, %v; want the backend, peer 127.0.0.2:8080", line, peer, err)
		}
		// Sync again with the same entries: nothing changes, nothing doubles.
		if err := Sync(name, cookie, []Entry{{Proto: "tcp", Addr: netip.MustParseAddr("127.0.0.2"), Port: 8080, To: backend}}); err != nil {
			return err
		}
		if n, err := Attached(name); err != nil || n != 4 {
			t.Errorf("Attached = %d, %v; want 4 (connect4, getpeername4, connect6, getpeername6, once)", n, err)
		}
		// Another namespace dialing the same address is not redirected.
		err = inNewNetNS(t, func() error {
			_, _, err := fetch("127.0.0.2:8080")
			return err
		})
		if !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("dial 127.0.0.2:8080 from another namespace: %v; want connection refused", err)
		}
		// An entry that goes stops redirecting.
		if err := Sync(name, cookie, []Entry{{Proto: "tcp", Addr: netip.MustParseAddr("127.0.0.3"), Port: 8080, To: backend}}); err != nil {
			return err
		}
		if _, _, err := fetch("127.0.0.2:8080"); !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("dial 127.0.0.2:8080 after its entry went: %v; want connection refused", err)
		}
		if line, _, err := fetch("127.0.0.3:8080"); err != nil || !strings.HasPrefix(line, "backend ") {
			t.Errorf("dial 127.0.0.3:8080 = %q, %v", line, err)
		}
		// No entries: everything goes.
		if err := Sync(name, cookie, nil); err != nil {
			return err
		}
		if _, err := os.Stat(Dir(name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pins left: %v", err)
		}
		if n, err := Attached(name); err != nil || n != 0 {
			t.Errorf("Attached after Sync(nil) = %d, %v", n, err)
		}
		if _, _, err := fetch("127.0.0.3:8080"); !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("dial 127.0.0.3:8080 after Sync(nil): %v; want connection refused", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A directory of pins left half-made (a crash during create) is made again.
func TestSyncRepairsPins(t *testing.T) {
	name := fmt.Sprintf("berth-test2-%d", os.Getpid())
	useTempBPFFS(t, name)
	err := inNewNetNS(t, func() error {
		cookie, err := NetNSCookie()
		if err != nil {
			return err
		}
		e := []Entry{{Proto: "tcp", Addr: netip.MustParseAddr("127.0.0.1"), Port: 1, To: netip.MustParseAddrPort("127.0.0.1:2")}}
		if err := Sync(name, cookie, e); err != nil {
			return err
		}
		if err := os.Remove(filepath.Join(Dir(name), pinPeerName)); err != nil {
			return err
		}
		if err := Sync(name, cookie, e); err != nil {
			return err
		}
		if n, err := Attached(name); err != nil || n != 4 {
			t.Errorf("Attached after repair = %d, %v; want 4", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The bpf file system is unmounted under a live redirection (the pins go,
// the programs stay attached, the map with them): Remove still finds the
// programs by name on the cgroup2 root and detaches them.
func TestRemoveAfterPinsLost(t *testing.T) {
	name := fmt.Sprintf("berth-test3-%d", os.Getpid())
	useTempBPFFS(t, name)
	err := inNewNetNS(t, func() error {
		cookie, err := NetNSCookie()
		if err != nil {
			return err
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l.Close()
		serve(t, l, "backend")
		e := []Entry{{Proto: "tcp", Addr: netip.MustParseAddr("127.0.0.2"), Port: 8080, To: l.Addr().(*net.TCPAddr).AddrPort()}}
		if err := Sync(name, cookie, e); err != nil {
			return err
		}
		if err := unix.Unmount(BPFFS, unix.MNT_DETACH); err != nil {
			return err
		}
		if line, _, err := fetch("127.0.0.2:8080"); err != nil || !strings.HasPrefix(line, "backend ") {
			t.Errorf("with the pins gone, the programs still redirect: %q, %v", line, err)
		}
		if err := Remove(name); err != nil {
			return err
		}
		if n, err := Attached(name); err != nil || n != 0 {
			t.Errorf("Attached after Remove without pins = %d, %v; want 0", n, err)
		}
		if _, _, err := fetch("127.0.0.2:8080"); !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("dial 127.0.0.2:8080 after Remove: %v; want connection refused", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// peerName is getpeername(2) of c, as the kernel (and the programs) give
// it: an IPv4-mapped address stays mapped.
func peerName(c net.Conn) (netip.AddrPort, error) {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var sa unix.Sockaddr
	var gerr error
	if err := rc.Control(func(fd uintptr) { sa, gerr = unix.Getpeername(int(fd)) }); err != nil {
		return netip.AddrPort{}, err
	}
	if gerr != nil {
		return netip.AddrPort{}, gerr
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)), nil
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("getpeername: %T", sa)
}

// fetch6 dials addr over IPv6 ("tcp", so without IPV6_V6ONLY, as curl and
// most clients do) and returns the line the server sent and what
// getpeername answers.
func fetch6(network, addr string) (line string, peer netip.AddrPort, err error) {
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return "", peer, err
	}
	defer c.Close()
	if peer, err = peerName(c); err != nil {
		return "", peer, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err = bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), peer, err
}

// IPv6 clients: [::1] to an IPv4 target (connected mapped, over IPv4) and
// to an IPv6 one; getpeername answers the dialed [::1]:PORT; a socket with
// IPV6_V6ONLY cannot be sent to an IPv4 target; another namespace is not
// redirected; entries of one family go without touching the other's;
// Sync(nil) leaves nothing.
func TestRedirect6(t *testing.T) {
	name := fmt.Sprintf("berth-test6-%d", os.Getpid())
	useTempBPFFS(t, name)
	err := inNewNetNS(t, func() error {
		cookie, err := NetNSCookie()
		if err != nil {
			return err
		}
		l4, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l4.Close()
		serve(t, l4, "backend4")
		l6, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 on lo: %v", err)
		}
		defer l6.Close()
		serve(t, l6, "backend6")
		b4, b6 := l4.Addr().(*net.TCPAddr).AddrPort(), l6.Addr().(*net.TCPAddr).AddrPort()
		loop6 := netip.IPv6Loopback()
		entries := []Entry{
			{Proto: "tcp", Addr: loop6, Port: 8080, To: b4},
			{Proto: "tcp", Addr: loop6, Port: 8081, To: b6},
			{Proto: "tcp", Addr: netip.MustParseAddr("127.0.0.2"), Port: 8080, To: b4},
		}
		if err := Sync(name, cookie, entries); err != nil {
			return err
		}
		if n, err := Attached(name); err != nil || n != 4 {
			t.Errorf("Attached = %d, %v; want 4", n, err)
		}
		es, err := Entries(name)
		if err != nil || len(es) != 3 {
			t.Errorf("Entries = %v, %v; want 3", es, err)
		}
		for _, e := range es {
			if e.Addr == loop6 && e.Port == 8080 && e.To != b4 {
				t.Errorf("Entries: [::1]:8080 -> %s, want %s (a mapped target given as IPv4)", e.To, b4)
			}
		}
		line, peer, err := fetch6("tcp", "[::1]:8080")
		if err != nil || !strings.HasPrefix(line, "backend4 127.0.0.1:") || peer != netip.AddrPortFrom(loop6, 8080) {
			t.Errorf("dial [::1]:8080 (IPv4 target) = %q, peer %s, %v; want backend4 from 127.0.0.1, peer [::1]:8080", line, peer, err)
		}
		line, peer, err = fetch6("tcp", "[::1]:8081")
		if err != nil || !strings.HasPrefix(line, "backend6 [::1]:") || peer != netip.AddrPortFrom(loop6, 8081) {
			t.Errorf("dial [::1]:8081 (IPv6 target) = %q, peer %s, %v; want backend6, peer [::1]:8081", line, peer, err)
		}
		if line, _, err := fetch("127.0.0.2:8080"); err != nil || !strings.HasPrefix(line, "backend4 ") {
			t.Errorf("dial 127.0.0.2:8080 beside the IPv6 entries = %q, %v", line, err)
		}
		// "tcp6" sets IPV6_V6ONLY: such a socket cannot connect to a
		// mapped address, and the kernel says so.
		if _, _, err := fetch6("tcp6", "[::1]:8080"); !errors.Is(err, unix.ENETUNREACH) {
			t.Errorf("dial [::1]:8080 with IPV6_V6ONLY: %v; want network unreachable", err)
		}
		err = inNewNetNS(t, func() error {
			_, _, err := fetch6("tcp", "[::1]:8080")
			return err
		})
		if !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("dial [::1]:8080 from another namespace: %v; want connection refused", err)
		}
		// The IPv6 entries go, the IPv4 one stays.
		if err := Sync(name, cookie, entries[2:]); err != nil {
			return err
		}
		if _, _, err := fetch6("tcp", "[::1]:8080"); !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("dial [::1]:8080 after its entry went: %v; want connection refused", err)
		}
		if line, _, err := fetch("127.0.0.2:8080"); err != nil || !strings.HasPrefix(line, "backend4 ") {
			t.Errorf("dial 127.0.0.2:8080 after the IPv6 entries went = %q, %v", line, err)
		}
		// And back, IPv6 only; then nothing.
		if err := Sync(name, cookie, entries[:1]); err != nil {
			return err
		}
		if _, _, err := fetch("127.0.0.2:8080"); !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("dial 127.0.0.2:8080 after its entry went: %v; want connection refused", err)
		}
		if line, _, err := fetch6("tcp", "[::1]:8080"); err != nil || !strings.HasPrefix(line, "backend4 ") {
			t.Errorf("dial [::1]:8080 with IPv6 entries only = %q, %v", line, err)
		}
		if err := Sync(name, cookie, nil); err != nil {
			return err
		}
		if _, err := os.Stat(Dir(name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pins left: %v", err)
		}
		if n, err := Attached(name); err != nil || n != 0 {
			t.Errorf("Attached after Sync(nil) = %d, %v", n, err)
		}
		if _, _, err := fetch6("tcp", "[::1]:8080"); !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("dial [::1]:8080 after Sync(nil): %v; want connection refused", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A directory of pins of an older berth (the IPv4 objects only) is made
// again with all of them.
func TestSyncUpgradesPins(t *testing.T) {
	name := fmt.Sprintf("berth-test4-%d", os.Getpid())
	useTempBPFFS(t, name)
	err := inNewNetNS(t, func() error {
		cookie, err := NetNSCookie()
		if err != nil {
			return err
		}
		e := []Entry{{Proto: "tcp", Addr: netip.IPv6Loopback(), Port: 1, To: netip.MustParseAddrPort("127.0.0.1:2")}}
		if err := Sync(name, cookie, e); err != nil {
			return err
		}
		for _, f := range []string{pinServices6, pinRevNAT6, pinConnect6, pinPeerName6} {
			if err := os.Remove(filepath.Join(Dir(name), f)); err != nil {
				return err
			}
		}
		if err := Sync(name, cookie, e); err != nil {
			return err
		}
		if n, err := Attached(name); err != nil || n != 4 {
			t.Errorf("Attached after upgrade = %d, %v; want 4", n, err)
		}
		if es, err := Entries(name); err != nil || len(es) != 1 {
			t.Errorf("Entries after upgrade = %v, %v", es, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// What Remove costs when nothing of name exists, in a bpf file system
// (one stat) and where none is mounted (a look at the cgroup2 root).
func BenchmarkRemoveNothing(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	old := BPFFS
	defer func() { BPFFS = old }()
	for _, c := range []struct {
		name  string
		mount bool
	}{{"bpffs", true}, {"no-bpffs", false}} {
		b.Run(c.name, func(b *testing.B) {
			BPFFS = b.TempDir()
			if c.mount {
				if err := mountBPFFS(); err != nil {
					b.Fatal(err)
				}
				defer unix.Unmount(BPFFS, unix.MNT_DETACH)
			}
			for i := 0; i < b.N; i++ {
				if err := Remove("berth-bench-nothing"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
