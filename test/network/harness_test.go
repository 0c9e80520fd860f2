package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/network"
	"github.com/berthproject/berth/internal/network/dns"
	"github.com/berthproject/berth/internal/network/netns"
	"github.com/berthproject/berth/internal/network/nft"
	"github.com/berthproject/berth/internal/network/portredirect"
)

// host is the test's view of the host: a manager on fresh records.
type host struct {
	t       testing.TB
	dir     string
	records string
	run     string
	m       *network.Manager
	dns     *dns.Client
}

// hostResolv is the host's resolv.conf the DNS server forwards by: the
// test's fake upstream on 127.0.0.1.
const hostResolv = "nameserver 127.0.0.1\nsearch example.test\n"

func newHost(t testing.TB) *host {
	t.Helper()
	needRoot(t)
	dir := t.TempDir()
	h := &host{t: t, dir: dir, records: filepath.Join(dir, "records"), run: filepath.Join(dir, "run")}
	resolvConf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte(hostResolv), 0o644); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h.dns = &dns.Client{
		Records: h.records, Run: h.run,
		// The test binary is the DNS server when envRole says so.
		Command: []string{"/bin/sh", "-c", envRole + `=dns exec "$0" "$@"`, exe, "--resolv-conf", resolvConf},
	}
	h.m = h.newManager()
	t.Cleanup(h.cleanup)
	return h
}

func (h *host) newManager() *network.Manager {
	m, err := network.New(network.Config{Dir: h.records, DNS: h.dns})
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

// cleanup removes everything the test made in the host namespace, so that
// the next test starts from an empty one.
func (h *host) cleanup() {
	if h.t.Failed() {
		if pid := dns.PID(h.run); pid > 0 && os.Getenv("BERTH_NETTEST_DUMP") != "" {
			syscall.Kill(pid, syscall.SIGQUIT)
			time.Sleep(500 * time.Millisecond)
		}
		if b, err := os.ReadFile(filepath.Join(h.run, "dns.log")); err == nil {
			h.t.Logf("DNS server log:\n%s", b)
		}
	}
	h.crash()
	links, _ := netlink.LinkList()
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "bt-") {
			netlink.LinkDel(l)
		}
	}
}

// crash loses what the kernel holds for berth, as a reboot would: the DNS
// server dies, berth's links and tables go; the records stay.
func (h *host) crash() {
	if pid := dns.PID(h.run); pid > 0 {
		stopProcess(h.t, pid)
	}
	h.m.Close()
	links, _ := netlink.LinkList()
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, "berth:") {
			netlink.LinkDel(l)
		}
	}
	if c, err := nft.Open(); err == nil {
		c.Apply(nil, nft.Table{Family: nft.IPv4, Name: network.TableName}, nft.Table{Family: nft.IPv6, Name: network.TableName})
		c.Close()
	}
	if err := portredirect.Remove(h.redirectName()); err != nil {
		h.t.Errorf("remove the port redirection: %v", err)
	}
}

// redirectName is the name of the store's connect-time redirection.
func (h *host) redirectName() string { return network.RedirectName(h.records) }

// redirects lists the store's connect-time redirections as
// "ADDR:PORT -> ADDR:PORT", sorted.
func (h *host) redirects() []string {
	h.t.Helper()
	es, err := portredirect.Entries(h.redirectName())
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, netip.AddrPortFrom(e.Addr, e.Port).String()+" -> "+e.To.String())
	}
	slices.Sort(out)
	return out
}

// redirectLeft says what is left of the store's redirection: programs
// attached to the cgroup2 root (BPF_PROG_QUERY) and pins; "" if nothing.
func (h *host) redirectLeft() string {
	h.t.Helper()
	var left []string
	if n, err := portredirect.Attached(h.redirectName()); err != nil || n != 0 {
		left = append(left, fmt.Sprintf("%d programs attached (%v)", n, err))
	}
	if _, err := os.Lstat(portredirect.Dir(h.redirectName())); !errors.Is(err, os.ErrNotExist) {
		left = append(left, "pins in "+portredirect.Dir(h.redirectName()))
	}
	return strings.Join(left, ", ")
}

// stopProcess ends a process this test started and waits until it is gone.
func stopProcess(t testing.TB, pid int) {
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 500; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Logf("process %d needed SIGKILL", pid)
}

// ctr is a "container": a network namespace of the test's.
type ctr struct {
	name, id string
	ns       string
}

func (h *host) container(name string) *ctr {
	h.t.Helper()
	p := filepath.Join(h.dir, "ns-"+name)
	if err := netns.Create(p, nil); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { netns.Remove(p) })
	id := fmt.Sprintf("%x", []byte(name+"--------------------------------"))[:64]
	return &ctr{name: name, id: id, ns: p}
}

func (h *host) attach(c *ctr, o network.AttachOptions) *network.Endpoint {
	h.t.Helper()
	o.ContainerID, o.ContainerName, o.NetNS = c.id, c.name, c.ns
	if o.Network == "" {
		o.Network = "bridge"
	}
	ep, err := h.m.Attach(context.Background(), o)
	if err != nil {
		h.t.Fatalf("Attach(%s to %s): %v", c.name, o.Network, err)
	}
	return ep
}

// inNS runs fn in a namespace ("" is the host's: the test process's own).
func inNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	return netns.Do(path, fn)
}

// serveTCP answers every connection to addr inside ns with reply and the
// client's address as the server saw it, then closes it.
func serveTCP(t testing.TB, ns, addr, reply string) {
	t.Helper()
	var l net.Listener
	if err := inNS(ns, func() (err error) { l, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s from %s\n", reply, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap())
			c.Close()
		}
	}()
}

// serveUDP answers every datagram to addr inside ns with reply.
func serveUDP(t testing.TB, ns, addr, reply string) {
	t.Helper()
	var pc net.PacketConn
	if err := inNS(ns, func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatalf("listen on udp %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(reply), from)
		}
	}()
}

// ioTimeout keeps a test that fails from hanging; it is not an assertion
// about speed.
const ioTimeout = 5 * time.Second

// fetchTCP connects from ns to addr and returns the first line it gets.
func fetchTCP(ns, addr string) (string, error) {
	var c net.Conn
	if err := inNS(ns, func() (err error) { c, err = net.DialTimeout("tcp", addr, ioTimeout); return err }); err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// fetchTCPPeer is fetchTCP that also returns the server's address as the
// client sees it (getpeername).
func fetchTCPPeer(ns, addr string) (line, peer string, err error) {
	var c net.Conn
	if err := inNS(ns, func() (err error) { c, err = net.DialTimeout("tcp", addr, ioTimeout); return err }); err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	line, err = bufio.NewReader(c).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", "", err
	}
	return strings.TrimSpace(line), c.RemoteAddr().String(), nil
}

// askUDP sends a datagram from ns to addr and returns the answer.
func askUDP(ns, addr string) (string, error) {
	var c net.Conn
	if err := inNS(ns, func() (err error) { c, err = net.Dial("udp", addr); return err }); err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write([]byte("ping")); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// ping pings addr once from ns with busybox.
func ping(ns string, addr netip.Addr) error { return pingWait(ns, addr, "3") }

// unreachable says whether one ping from ns to addr goes unanswered (for a
// second: a dropped packet gives no other sign).
func unreachable(ns string, addr netip.Addr) bool { return pingWait(ns, addr, "1") != nil }

func pingWait(ns string, addr netip.Addr, wait string) error {
	args := []string{"--net=" + ns, "busybox", "ping", "-c", "1", "-W", wait, addr.String()}
	if addr.Is6() {
		args = []string{"--net=" + ns, "busybox", "ping6", "-c", "1", "-W", wait, addr.String()}
	}
	out, err := exec.Command("nsenter", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v: %s", addr, ns, err, out)
	}
	return nil
}

// otherHost is a second namespace, "another host", joined to the host
// namespace by the veth pair bt-host (10.250.0.1/24, fd00:250::1/64, in the
// host) and eth0 (10.250.0.2/24, fd00:250::2/64, there).
func (h *host) otherHost() string {
	h.t.Helper()
	p := filepath.Join(h.dir, "ns-otherhost")
	if err := netns.Create(p, nil); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { netns.Remove(p) })
	f, err := os.Open(p)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "bt-host"
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(f.Fd())}
	if err := netlink.LinkAdd(veth); err != nil {
		h.t.Fatal("create bt-host:", err)
	}
	setup := func(name string, addrs ...string) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		// No duplicate address detection on this test link: it would
		// hold the link-local addresses back for a second or two.
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/accept_dad", []byte("0"), 0o644); err != nil {
			return err
		}
		for _, a := range addrs {
			pa, _ := netlink.ParseAddr(a)
			pa.Flags = unix.IFA_F_NODAD
			if err := netlink.AddrAdd(l, pa); err != nil {
				return fmt.Errorf("add %s to %s: %w", a, name, err)
			}
		}
		if lo, err := netlink.LinkByName("lo"); err == nil {
			netlink.LinkSetUp(lo)
		}
		return netlink.LinkSetUp(l)
	}
	if err := setup("bt-host", "10.250.0.1/24", "fd00:250::1/64"); err != nil {
		h.t.Fatal(err)
	}
	if err := netns.Do(p, func() error { return setup("eth0", "10.250.0.2/24", "fd00:250::2/64") }); err != nil {
		h.t.Fatal(err)
	}
	return p
}

var hostAddr = netip.MustParseAddr("10.250.0.1")

// linksOf lists the names of the links in ns.
func linksOf(t testing.TB, ns string) []string {
	t.Helper()
	var names []string
	err := inNS(ns, func() error {
		ls, err := netlink.LinkList()
		for _, l := range ls {
			names = append(names, l.Attrs().Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// nftList is `nft list table FAMILY berth` in the host namespace ("" if
// there is no such table).
func nftList(t testing.TB, family nft.Family) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", string(family), network.TableName).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No such file") {
			return ""
		}
		t.Fatalf("nft list table %s %s: %v: %s", family, network.TableName, err, out)
	}
	return string(out)
}
