// Package link makes the links of bridge networks through netlink: a
// network's bridge with its gateway addresses, and for each endpoint a veth
// pair whose host end is a port of the bridge and whose other end, created
// directly inside the container's network namespace, carries the
// container's addresses and routes.
//
// Links berth owns carry an interface alias (IFLA_IFALIAS) that names the
// network or endpoint they belong to: reconciliation recognises them by it
// and never touches a link without one.
package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/network/netns"
)

// Host is a netlink connection to the host's network namespace (the one the
// calling process is in).
type Host struct {
	h *netlink.Handle
	// procSys is /proc/sys, for the sysctls of the host's namespace.
	procSys string
}

// OpenHost opens a netlink connection in the current network namespace.
func OpenHost() (*Host, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	return &Host{h: h, procSys: "/proc/sys"}, nil
}

// Close closes the connection.
func (h *Host) Close() { h.h.Close() }

// Bridge describes a network's bridge device.
type Bridge struct {
	Name  string
	Alias string // ownership mark
	MTU   int
	// MAC is set on the bridge once and for all: a bridge without an
	// address of its own takes the lowest of its ports', so plugging a
	// container in could change it, and the other containers' ARP entries
	// for the gateway would point nowhere for a while.
	MAC net.HardwareAddr
	// Addrs are the gateway addresses with the subnet's prefix length.
	Addrs []netip.Prefix
}

// EnsureBridge creates the bridge if it is missing and brings it to the
// description: alias, MTU, exactly these addresses, up. It also turns on
// what forwarding through it needs: IPv4 forwarding (and IPv6 forwarding for
// a bridge with an IPv6 address), and route_localnet on the bridge, so that
// connections to 127.0.0.1 that nftables sends to a container may leave
// through it.
func (h *Host) EnsureBridge(b Bridge) error {
	l, err := h.h.LinkByName(b.Name)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("look up bridge %s: %w", b.Name, err)
	}
	if l == nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.Alias, attrs.MTU, attrs.HardwareAddr = b.Name, b.Alias, b.MTU, b.MAC
		if err := h.h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return fmt.Errorf("create bridge %s: %w", b.Name, err)
		}
		if l, err = h.h.LinkByName(b.Name); err != nil {
			return fmt.Errorf("look up bridge %s: %w", b.Name, err)
		}
	}
	if l.Type() != "bridge" {
		return fmt.Errorf("link %s exists and is a %s, not a bridge", b.Name, l.Type())
	}
	if l.Attrs().Alias != b.Alias {
		if a := l.Attrs().Alias; a != "" && !strings.HasPrefix(a, AliasPrefix) {
			return fmt.Errorf("bridge %s exists and is not berth's (alias %q)", b.Name, a)
		}
		if err := h.h.LinkSetAlias(l, b.Alias); err != nil {
			return fmt.Errorf("set alias of bridge %s: %w", b.Name, err)
		}
	}
	if b.MAC != nil && l.Attrs().HardwareAddr.String() != b.MAC.String() {
		if err := h.h.LinkSetHardwareAddr(l, b.MAC); err != nil {
			return fmt.Errorf("set MAC address of bridge %s: %w", b.Name, err)
		}
	}
	if b.MTU > 0 && l.Attrs().MTU != b.MTU {
		if err := h.h.LinkSetMTU(l, b.MTU); err != nil {
			return fmt.Errorf("set MTU of bridge %s to %d: %w", b.Name, b.MTU, err)
		}
	}
	v6 := false
	for _, a := range b.Addrs {
		v6 = v6 || a.Addr().Is6()
	}
	if v6 {
		// A bridge made while IPv6 is off by default would refuse the address.
		if err := h.sysctl("net/ipv6/conf/"+b.Name+"/disable_ipv6", "0"); err != nil {
			return err
		}
		// The bridge's link-local address must be usable at once: the
		// kernel sends neighbour solicitations for forwarded packets from
		// it, and while duplicate address detection holds it back (a
		// second or two) published ports of a new network do not answer.
		if err := h.sysctl("net/ipv6/conf/"+b.Name+"/accept_dad", "0"); err != nil {
			return err
		}
	}
	if err := h.setAddrs(l, b.Addrs); err != nil {
		return err
	}
	if err := h.sysctl("net/ipv4/conf/"+b.Name+"/route_localnet", "1"); err != nil {
		return err
	}
	if err := h.sysctlAtLeast("net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	if v6 {
		if err := h.sysctlAtLeast("net/ipv6/conf/all/forwarding", "1"); err != nil {
			return err
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.h.LinkSetUp(l); err != nil {
			return fmt.Errorf("bring bridge %s up: %w", b.Name, err)
		}
	}
	return nil
}

// setAddrs makes the link's global addresses exactly want.
func (h *Host) setAddrs(l netlink.Link, want []netip.Prefix) error {
	have, err := h.h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	keep := map[netip.Prefix]bool{}
	for _, a := range have {
		p := prefixOf(a.IPNet)
		if p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if contains(want, p) {
			keep[p] = true
			continue
		}
		if err := h.h.AddrDel(l, &a); err != nil {
			return fmt.Errorf("remove address %s from %s: %w", p, l.Attrs().Name, err)
		}
	}
	for _, p := range want {
		if keep[p] {
			continue
		}
		if err := h.h.AddrAdd(l, addr(p)); err != nil {
			return fmt.Errorf("add address %s to %s: %w", p, l.Attrs().Name, err)
		}
	}
	return nil
}

func contains(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// addr is a netlink address; IPv6 ones skip duplicate address detection,
// which would leave them unusable ("tentative") for a second or more.
func addr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: ipnet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) netip.Prefix {
	a, _ := netip.AddrFromSlice(n.IP)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

func (h *Host) sysctl(name, value string) error {
	p := filepath.Join(h.procSys, name)
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", strings.ReplaceAll(name, "/", "."), value, err)
	}
	return nil
}

// sysctlAtLeast sets a boolean sysctl on if it is off, leaving it alone
// otherwise (no write, so a read-only /proc/sys that is already right is
// fine).
func (h *Host) sysctlAtLeast(name, value string) error {
	b, err := os.ReadFile(filepath.Join(h.procSys, name))
	if err == nil && strings.TrimSpace(string(b)) == value {
		return nil
	}
	return h.sysctl(name, value)
}

// Veth describes an endpoint's veth pair.
type Veth struct {
	HostName string // the host end, a port of Bridge
	Alias    string // ownership mark of the host end
	Bridge   string
	MTU      int
	NetNS    string // the container's network namespace
	IfName   string // the container end's name there
	MAC      net.HardwareAddr
	// Addrs are the container's addresses with the subnet's prefix length.
	Addrs []netip.Prefix
	// Gateways get default routes (one per family); empty: none.
	Gateways []netip.Addr
}

// AddVeth creates and configures the pair; on failure it removes it again.
//
// It takes two requests that hold the kernel's RTNL lock on the host side
// (five before), plus four in the container's namespace (lo up, address,
// up, route): every one waits for the lock while other namespaces are made
// or destroyed on the host, so fewer is faster under load. One
// RTM_NEWLINK makes the pair, the host end up and on the bridge, the
// container end in its namespace with its MAC; a second sets what the
// kernel ignores at creation (the alias, the bridge port's hairpin mode).
func (h *Host) AddVeth(v Veth) error {
	br, err := h.h.LinkByName(v.Bridge)
	if err != nil {
		return fmt.Errorf("look up bridge %s: %w", v.Bridge, err)
	}
	nsf, err := os.Open(v.NetNS)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", v.NetNS, err)
	}
	defer nsf.Close()
	if err := newVeth(v, br.Attrs().Index, int(nsf.Fd())); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create veth pair %s/%s: %s exists here or %s in %s: %w", v.HostName, v.IfName, v.HostName, v.IfName, v.NetNS, err)
		}
		return fmt.Errorf("create veth pair %s/%s in %s: %w", v.HostName, v.IfName, v.NetNS, err)
	}
	if err := plugVeth(v); err != nil {
		h.DeleteLink(v.HostName)
		return err
	}
	if err := configureInside(v); err != nil {
		h.DeleteLink(v.HostName)
		return err
	}
	return nil
}

// newVeth makes the pair in one request: the host end up and a port of
// the bridge (IFLA_MASTER), the peer up in the namespace nsFd with its MAC
// (the kernel applies each end's ifinfomsg flags at creation).
func newVeth(v Veth, master, nsFd int) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.HostName)))
	if v.MTU > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.MTU))))
	}
	req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(master))))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	peer := info.AddRtAttr(nl.IFLA_INFO_DATA, nil).AddRtAttr(nl.VETH_INFO_PEER, nil)
	// Not up here: the kernel configures the peer before it pairs the two,
	// and a veth without its peer refuses to go up (ENOTCONN).
	nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
	peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.IfName))
	if v.MTU > 0 {
		peer.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.MTU)))
	}
	if v.MAC != nil {
		peer.AddRtAttr(unix.IFLA_ADDRESS, []byte(v.MAC))
	}
	peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(nsFd)))
	req.AddData(info)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// plugVeth sets, in one request on the host end (found by name), its
// alias (berth's mark) and hairpin mode on the bridge port: a container
// reaching its own published port through the host address gets its
// packets back through the port they came in by (with br_netfilter,
// bridged DNAT turns around inside the bridge).
func plugVeth(v Veth) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.HostName)))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFALIAS, []byte(v.Alias)))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_SLAVE_DATA, nil).AddRtAttr(unix.IFLA_BRPORT_MODE, []byte{1})
	req.AddData(info)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("set alias and hairpin mode of %s on bridge %s: %w", v.HostName, v.Bridge, err)
	}
	return nil
}

// inside opens a netlink connection in a container's network namespace.
func inside(path string) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := netns.Do(path, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open netlink socket in %s: %w", path, err)
	}
	return h, nil
}

func configureInside(v Veth) error {
	h, err := inside(v.NetNS)
	if err != nil {
		return err
	}
	defer h.Close()
	if lo, err := h.LinkByName("lo"); err == nil && lo.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("bring lo up in %s: %w", v.NetNS, err)
		}
	}
	l, err := h.LinkByName(v.IfName)
	if err != nil {
		return fmt.Errorf("look up %s in %s: %w", v.IfName, v.NetNS, err)
	}
	for _, p := range v.Addrs {
		if err := h.AddrAdd(l, addr(p)); err != nil {
			return fmt.Errorf("add address %s to %s in %s: %w", p, v.IfName, v.NetNS, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring %s up in %s: %w", v.IfName, v.NetNS, err)
	}
	return setDefaultRoutes(h, l, v.NetNS, v.Gateways)
}

func setDefaultRoutes(h *netlink.Handle, l netlink.Link, path string, gws []netip.Addr) error {
	for _, gw := range gws {
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if gw.Is6() {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipnet(dst), Gw: net.IP(gw.AsSlice())}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("add default route via %s on %s in %s: %w", gw, l.Attrs().Name, path, err)
		}
	}
	return nil
}

// SetDefaultRoutes points a container's default routes through ifname: to
// move them when the endpoint that carried them leaves.
func SetDefaultRoutes(path, ifname string, gws []netip.Addr) error {
	h, err := inside(path)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("look up %s in %s: %w", ifname, path, err)
	}
	return setDefaultRoutes(h, l, path, gws)
}

// DeleteLink deletes a link of the host; a missing one is not an error.
// Deleting either end of a veth pair deletes both.
func (h *Host) DeleteLink(name string) error {
	l, err := h.h.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if err := h.h.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// Exists reports whether the host has a link of that name.
func (h *Host) Exists(name string) (bool, error) {
	_, err := h.h.LinkByName(name)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", name, err)
	}
	return true, nil
}

// AliasPrefix starts the alias of every link berth owns.
const AliasPrefix = "berth:"

// Owned is a link of the host that carries berth's mark.
type Owned struct {
	Name  string
	Alias string
	Kind  string // "bridge", "veth"
}

// Owned lists the host's links whose alias starts with AliasPrefix.
func (h *Host) Owned() ([]Owned, error) {
	links, err := h.h.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("list links: %w", err)
	}
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		// A link changed while we listed: list once more for a clean view.
		if links, err = h.h.LinkList(); err != nil {
			return nil, fmt.Errorf("list links: %w", err)
		}
	}
	var out []Owned
	for _, l := range links {
		if a := l.Attrs().Alias; strings.HasPrefix(a, AliasPrefix) {
			out = append(out, Owned{Name: l.Attrs().Name, Alias: a, Kind: l.Type()})
		}
	}
	return out, nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}
