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
		if n, err := Attached(name); err != nil || n != 2 {
			t.Errorf("Attached = %d, %v; want 2 (connect4 and getpeername4, once)", n, err)
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
		if n, err := Attached(name); err != nil || n != 2 {
			t.Errorf("Attached after repair = %d, %v; want 2", n, err)
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
