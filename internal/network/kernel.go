package network

import (
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/network/link"
	"github.com/berthproject/berth/internal/network/netns"
	"github.com/berthproject/berth/internal/network/nft"
	"github.com/berthproject/berth/internal/network/portredirect"
)

// hostKernel is the real kernel of the host's network namespace.
type hostKernel struct {
	links *link.Host
	nft   *nft.Conn
	// rulesStamp is a file that names the ruleset berth applied last and
	// the kernel's ruleset generation right after (see ApplyRules).
	rulesStamp string
	// redirect names the store's connect-time redirection (portredirect).
	redirect string
	log      *slog.Logger
}

func openHostKernel(rulesStamp, redirect string, log *slog.Logger) (*hostKernel, error) {
	l, err := link.OpenHost()
	if err != nil {
		return nil, err
	}
	c, err := nft.Open()
	if err != nil {
		l.Close()
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &hostKernel{links: l, nft: c, rulesStamp: rulesStamp, redirect: redirect, log: log}, nil
}

func (k *hostKernel) Close() error {
	k.links.Close()
	return k.nft.Close()
}

func (k *hostKernel) EnsureBridge(b link.Bridge) error     { return k.links.EnsureBridge(b) }
func (k *hostKernel) AddVeth(v link.Veth) error            { return k.links.AddVeth(v) }
func (k *hostKernel) DeleteLink(name string) error         { return k.links.DeleteLink(name) }
func (k *hostKernel) LinkExists(name string) (bool, error) { return k.links.Exists(name) }
func (k *hostKernel) OwnedLinks() ([]link.Owned, error)    { return k.links.Owned() }
func (k *hostKernel) NetNSAlive(path string) bool          { return netns.Alive(path) }

// ApplyRules applies berth's tables, or does nothing when they are in the
// kernel already: the stamp file names the tables applied last (a hash),
// the boot and network namespace, and the ruleset generation right after
// that commit; if the kernel's generation is still that one, nobody
// committed anything since, and the kernel holds exactly those tables.
// Attaching a container without published ports to an existing network
// then costs one netlink request instead of re-creating both tables (~90
// messages, 5-20 ms). The commit and the stamp are under the records'
// lock, like every ApplyRules; the stamp is written only when the
// generation moved by exactly our commit, so a concurrent commit by
// someone else is never taken for ours.
func (k *hostKernel) ApplyRules(t []nft.Table) error {
	want := rulesID(t)
	gen, genErr := k.nft.Generation()
	if genErr == nil && want != "" {
		if b, err := os.ReadFile(k.rulesStamp); err == nil && string(b) == stampOf(want, gen) {
			return nil
		}
	}
	os.Remove(k.rulesStamp)
	if err := k.nft.Apply(t); err != nil {
		return err
	}
	if genErr != nil || want == "" {
		return nil
	}
	if after, err := k.nft.Generation(); err == nil && after == gen+1 {
		// No fsync: a stamp lost in a crash only costs one more commit.
		tmp := k.rulesStamp + ".tmp"
		if os.WriteFile(tmp, []byte(stampOf(want, after)), 0o600) == nil {
			os.Rename(tmp, k.rulesStamp)
		}
	}
	return nil
}

// rulesID names a set of tables in this boot and network namespace; ""
// if the namespace cannot be told. The namespace is told by its cookie
// (SO_NETNS_COOKIE, Linux 5.14), which the kernel never reuses while it
// runs: a namespace's inode number is reused once it is gone, and the
// generation of a new namespace starts again from the same number.
func rulesID(t []nft.Table) string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	unix.Close(fd)
	if err != nil {
		return ""
	}
	h := sha256.New()
	for _, tb := range t {
		io.WriteString(h, tb.String())
	}
	return fmt.Sprintf("%s netns %d %x", strings.TrimSpace(string(boot)), cookie, h.Sum(nil))
}

func stampOf(id string, gen uint32) string { return fmt.Sprintf("v1 %s gen %d\n", id, gen) }

// RedirectEnv set to 0 turns connect-time redirection off: published ports
// are then served by the DNAT rules alone (and what a previous run attached
// is removed by the next change of the rules).
const RedirectEnv = "BERTH_PORT_REDIRECT"

// RedirectAvailable tells why connect-time redirection cannot serve
// published ports here (nil: it can): turned off by BERTH_PORT_REDIRECT=0,
// no cgroup2 hierarchy, or a kernel without SO_NETNS_COOKIE (5.14). It
// does not load the programs: a kernel that refuses them is found when the
// rules are applied (and logged at debug level).
func RedirectAvailable() error {
	if os.Getenv(RedirectEnv) == "0" {
		return fmt.Errorf("connect-time redirection is turned off (%s=0)", RedirectEnv)
	}
	if _, err := portredirect.CgroupRoot(); err != nil {
		return fmt.Errorf("connect-time redirection needs cgroup2: %w", err)
	}
	if _, err := portredirect.NetNSCookie(); err != nil {
		return fmt.Errorf("connect-time redirection needs SO_NETNS_COOKIE (Linux 5.14): %w", err)
	}
	return nil
}

// ipv6Enabled tells whether this network namespace has IPv6.
func ipv6Enabled() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/disable_ipv6")
	return err == nil && strings.TrimSpace(string(b)) == "0"
}

// servesIPv6 tells whether host clients reach published ports of IPv4-only
// containers over IPv6 ([::1] and the host's IPv6 addresses): the
// redirection is available and the namespace has IPv6. A variable for the
// tests.
var servesIPv6 = func() bool { return ipv6Enabled() && RedirectAvailable() == nil }

// SyncRedirects makes the store's connect-time redirection hold rs, for
// sockets of this network namespace, a port published on every address
// redirected from 127.0.0.1, ::1 and each address the namespace has now
// (IPv6 link-local ones excepted; an address added later is served by
// DNAT, or not at all over IPv6 for an IPv4-only container). With no rs
// (or redirection turned off) it removes what there is, which costs one
// stat when there is nothing. A failure (an old kernel, no cgroup2, EPERM) leaves the DNAT
// rules alone to serve the ports: it is logged at debug level and what was
// half made is removed.
func (k *hostKernel) SyncRedirects(rs []Redirect) {
	if len(rs) == 0 || os.Getenv(RedirectEnv) == "0" {
		if err := portredirect.Remove(k.redirect); err != nil {
			k.log.Debug("remove port redirection", "err", err)
		}
		return
	}
	err := k.syncRedirects(rs)
	if err == nil {
		return
	}
	k.log.Debug("port redirection not available; published ports are served by DNAT only", "err", err)
	if err := portredirect.Remove(k.redirect); err != nil {
		k.log.Debug("remove port redirection", "err", err)
	}
}

func (k *hostKernel) syncRedirects(rs []Redirect) error {
	cookie, err := portredirect.NetNSCookie()
	if err != nil {
		return fmt.Errorf("netns cookie: %w", err)
	}
	var local4, local6 []netip.Addr
	var listed bool
	list := func() error {
		if listed {
			return nil
		}
		listed = true
		addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("list addresses: %w", err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			switch ip = ip.Unmap(); {
			case !ok:
			case ip.Is4():
				local4 = append(local4, ip)
			case !ip.IsLinkLocalUnicast() && !ip.IsMulticast():
				local6 = append(local6, ip)
			}
		}
		return nil
	}
	var entries []portredirect.Entry
	add := func(addrs []netip.Addr, r Redirect) {
		for _, a := range addrs {
			to := r.To
			if a.Is6() && r.To6.IsValid() {
				to = r.To6
			}
			entries = append(entries, portredirect.Entry{Proto: "tcp", Addr: a, Port: r.HostPort, To: to})
		}
	}
	for _, r := range rs {
		if r.HostIP.IsValid() && !r.HostIP.IsUnspecified() {
			add([]netip.Addr{r.HostIP}, r)
			continue
		}
		if err := list(); err != nil {
			return err
		}
		if !r.HostIP.IsValid() || r.HostIP.Is4() {
			add(local4, r)
		}
		if !r.HostIP.IsValid() || r.HostIP.Is6() {
			add(local6, r)
		}
	}
	return portredirect.Sync(k.redirect, cookie, entries)
}

func (k *hostKernel) SetDefaultRoutes(path, ifname string, gws []netip.Addr) error {
	return link.SetDefaultRoutes(path, ifname, gws)
}

func (k *hostKernel) Routes() ([]netip.Prefix, error) {
	rs, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		a, _ := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		out = append(out, netip.PrefixFrom(a.Unmap(), ones))
	}
	return out, nil
}

// PortFree binds the port (and lets it go at once) to see whether a
// program of the host holds it.
func (k *hostKernel) PortFree(proto string, ip netip.Addr, port uint16) error {
	network := proto + "4"
	if ip.Is6() {
		network = proto + "6"
	}
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
	if proto == "udp" {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// LocalPortRange reads net.ipv4.ip_local_port_range (Docker's range if it
// cannot).
func (k *hostKernel) LocalPortRange() (uint16, uint16) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			lo, err1 := strconv.ParseUint(f[0], 10, 16)
			hi, err2 := strconv.ParseUint(f[1], 10, 16)
			if err1 == nil && err2 == nil && lo > 0 && lo <= hi {
				return uint16(lo), uint16(hi)
			}
		}
	}
	return 49153, 60999
}
