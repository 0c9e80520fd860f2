package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/berthproject/berth/internal/network"
	"github.com/berthproject/berth/internal/network/nft"
)

func TestUserNetworks(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	other := h.otherHost()
	front, err := h.m.Create(ctx, network.CreateOptions{Name: "front", Subnets: []netip.Prefix{netip.MustParsePrefix("10.91.0.0/16")},
		Gateways: []netip.Addr{netip.MustParseAddr("10.91.255.254")}, IPRanges: []netip.Prefix{netip.MustParsePrefix("10.91.8.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Create(ctx, network.CreateOptions{Name: "back", Subnets: []netip.Prefix{netip.MustParsePrefix("10.92.0.0/24")}}); err != nil {
		t.Fatal(err)
	}
	// Bad input: clear errors, nothing made.
	linksBefore := linksOf(t, "")
	for _, o := range []network.CreateOptions{
		{Name: "overlap", Subnets: []netip.Prefix{netip.MustParsePrefix("10.91.200.0/24")}},
		{Name: "front"},
		{Name: "badgw", Subnets: []netip.Prefix{netip.MustParsePrefix("10.93.0.0/24")}, Gateways: []netip.Addr{netip.MustParseAddr("10.94.0.1")}},
	} {
		if _, err := h.m.Create(ctx, o); err == nil {
			t.Errorf("Create(%s) succeeded", o.Name)
		}
	}
	if got := linksOf(t, ""); !slices.Equal(got, linksBefore) {
		t.Errorf("refused creates changed the links: %v, had %v", got, linksBefore)
	}

	a, b, c := h.container("ua"), h.container("ub"), h.container("uc")
	epA := h.attach(a, network.AttachOptions{Network: "front"})
	epB := h.attach(b, network.AttachOptions{Network: "front", IPv4: netip.MustParseAddr("10.91.0.77")})
	epC := h.attach(c, network.AttachOptions{Network: "back"})
	if epA.IPv4 != netip.MustParsePrefix("10.91.8.0/16") {
		t.Errorf("first address from --ip-range 10.91.8.0/24 = %v", epA.IPv4)
	}
	if epB.IPv4 != netip.MustParsePrefix("10.91.0.77/16") {
		t.Errorf("--ip 10.91.0.77 = %v", epB.IPv4)
	}
	if _, err := h.m.Attach(ctx, network.AttachOptions{ContainerID: "x", NetNS: c.ns, Network: "front", IPv4: netip.MustParseAddr("10.91.0.77")}); !errors.Is(err, network.ErrConflict) {
		t.Errorf("--ip of another container: %v, want a conflict", err)
	}
	if err := ping(a.ns, epB.IPv4.Addr()); err != nil {
		t.Error("same network:", err)
	}
	if err := ping(a.ns, netip.MustParseAddr("10.91.255.254")); err != nil {
		t.Error("gateway given by --gateway:", err)
	}
	// Networks are isolated from each other; both reach the outside.
	if !unreachable(a.ns, epC.IPv4.Addr()) {
		t.Errorf("front reached back's container %s", epC.IPv4.Addr())
	}
	if !unreachable(c.ns, epA.IPv4.Addr()) {
		t.Errorf("back reached front's container %s", epA.IPv4.Addr())
	}
	serveTCP(t, other, ":7000", "outside")
	if got, err := fetchTCP(a.ns, "10.250.0.2:7000"); err != nil || got != "outside from 10.250.0.1" {
		t.Errorf("outbound from a user network = %q, %v; want it masqueraded to the host address", got, err)
	}

	// network connect: c joins front as eth1; its default route stays on back.
	epC2 := h.attach(c, network.AttachOptions{Network: "front", Aliases: []string{"cache"}})
	if epC2.IfName != "eth1" || epC2.DefaultRoute {
		t.Errorf("connected endpoint = %s, default route %v; want eth1 without", epC2.IfName, epC2.DefaultRoute)
	}
	if err := ping(c.ns, epA.IPv4.Addr()); err != nil {
		t.Error("after connect:", err)
	}
	// network disconnect back: the default route moves to front.
	if err := h.m.Detach(ctx, c.id, "back"); err != nil {
		t.Fatal(err)
	}
	if gw := defaultGateway(t, c.ns); gw != "10.91.255.254" {
		t.Errorf("default route after disconnecting its network = %q, want via 10.91.255.254", gw)
	}
	if slices.Contains(linksOf(t, c.ns), "eth0") {
		t.Errorf("eth0 still in the container after disconnect")
	}
	if got, err := fetchTCP(c.ns, "10.250.0.2:7000"); err != nil || !strings.HasPrefix(got, "outside") {
		t.Errorf("outbound after the route moved = %q, %v", got, err)
	}

	// rm is refused while containers are connected, then works.
	if err := h.m.Remove(ctx, "front"); !errors.Is(err, network.ErrConflict) {
		t.Errorf("rm with containers: %v, want a conflict", err)
	}
	for _, x := range []*ctr{a, b, c} {
		if err := h.m.DetachAll(ctx, x.id); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := h.m.Store().Read()
	bridge := st.Networks[front.ID].Bridge
	if err := h.m.Remove(ctx, "front"); err != nil {
		t.Fatal(err)
	}
	if removed, err := h.m.Prune(ctx, nil); err != nil || !slices.Equal(removed, []string{"back"}) {
		t.Errorf("prune = %v, %v; want [back]", removed, err)
	}
	// Nothing is left: no bridge, no veth, no rule of those networks.
	for _, l := range linksOf(t, "") {
		if l == bridge || strings.HasPrefix(l, "veth") || (strings.HasPrefix(l, "berth-")) {
			t.Errorf("link %s left after rm", l)
		}
	}
	for _, f := range []nft.Family{nft.IPv4, nft.IPv6} {
		if s := nftList(t, f); strings.Contains(s, "berth-") || strings.Contains(s, "10.91.") || strings.Contains(s, "dnat to") {
			t.Errorf("rules left after rm:\n%s", s)
		}
	}
}

func defaultGateway(t *testing.T, ns string) string {
	t.Helper()
	gw := ""
	inNS(ns, func() error {
		rs, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		for _, r := range rs {
			if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw != nil {
				gw = r.Gw.String()
			}
		}
		return err
	})
	return gw
}

func TestIPv6DualStack(t *testing.T) {
	h := newHost(t)
	other := h.otherHost()
	if _, err := h.m.Create(context.Background(), network.CreateOptions{Name: "dual", IPv6: true,
		Subnets: []netip.Prefix{netip.MustParsePrefix("10.95.0.0/24"), netip.MustParsePrefix("fd00:95::/64")}}); err != nil {
		t.Fatal(err)
	}
	a, b := h.container("v6a"), h.container("v6b")
	mac, _ := net.ParseMAC("02:aa:bb:cc:dd:01")
	epA := h.attach(a, network.AttachOptions{Network: "dual", MAC: mac, Ports: []network.PortRequest{{Proto: "tcp", HostPort: 8086, ContainerPort: 80}}})
	epB := h.attach(b, network.AttachOptions{Network: "dual", IPv6: netip.MustParseAddr("fd00:95::b")})
	if epA.IPv6 != netip.MustParsePrefix("fd00:95::2/64") || epB.IPv6 != netip.MustParsePrefix("fd00:95::b/64") {
		t.Errorf("IPv6 addresses = %v, %v", epA.IPv6, epB.IPv6)
	}
	var gotMAC string
	inNS(a.ns, func() error {
		l, err := netlink.LinkByName("eth0")
		if err == nil {
			gotMAC = l.Attrs().HardwareAddr.String()
		}
		return err
	})
	if gotMAC != "02:aa:bb:cc:dd:01" {
		t.Errorf("--mac-address: eth0 has %s", gotMAC)
	}
	if err := ping(b.ns, epA.IPv6.Addr()); err != nil {
		t.Error(err)
	}
	if err := ping(b.ns, netip.MustParseAddr("fd00:95::1")); err != nil {
		t.Error(err)
	}
	serveTCP(t, a.ns, ":80", "v6web")
	for _, addr := range []string{"[fd00:250::1]:8086", "10.250.0.1:8086"} {
		if got, err := fetchTCP(other, addr); err != nil || !strings.HasPrefix(got, "v6web from ") {
			t.Errorf("published port from another host by %s = %q, %v", addr, got, err)
		}
	}
	if got, err := fetchTCP(other, "[fd00:250::1]:8086"); err != nil || got != "v6web from fd00:250::2" {
		t.Errorf("IPv6 published port keeps the client address: %q, %v", got, err)
	}
	if got, err := fetchTCP(b.ns, "[fd00:250::1]:8086"); err != nil || !strings.HasPrefix(got, "v6web from ") {
		t.Errorf("IPv6 hairpin = %q, %v", got, err)
	}
	// From the host itself by its global IPv6 address and by [::1]: the
	// connect-time redirection sends the socket to the container's IPv6
	// address (DNAT could not serve ::1: IPv6 has no route_localnet), from
	// the bridge's IPv6 gateway; getpeername answers what was dialed.
	for _, addr := range []string{"[fd00:250::1]:8086", "[::1]:8086"} {
		if got, peer, err := fetchTCPPeer("", addr); err != nil || got != "v6web from fd00:95::1" || peer != addr {
			t.Errorf("IPv6 published port from the host by %s = %q, peer %s, %v; want v6web from fd00:95::1, peer %s", addr, got, peer, err, addr)
		}
	}
	wantRedirects := []string{
		"10.250.0.1:8086 -> " + epA.IPv4.Addr().String() + ":80",
		"127.0.0.1:8086 -> " + epA.IPv4.Addr().String() + ":80",
		"[::1]:8086 -> [fd00:95::2]:80",
		"[fd00:250::1]:8086 -> [fd00:95::2]:80",
	}
	if got := h.redirects(); !slices.ContainsFunc(got, func(s string) bool { return s == wantRedirects[2] }) || !slices.ContainsFunc(got, func(s string) bool { return s == wantRedirects[3] }) {
		t.Errorf("redirections = %q, want among them %q", got, wantRedirects)
	}
	// A container's [::1] is its own.
	if got, err := fetchTCP(b.ns, "[::1]:8086"); err == nil {
		t.Errorf("[::1]:8086 from another container answered %q", got)
	}
	pm, _ := h.m.PortMap(context.Background(), a.id)
	var bindings []string
	for _, bs := range pm {
		for _, b := range bs {
			bindings = append(bindings, b.HostIP.String()+":"+b.HostPort)
		}
	}
	slices.Sort(bindings)
	if !slices.Equal(bindings, []string{"0.0.0.0:8086", ":::8086"}) {
		t.Errorf("PortMap of a dual-stack container = %v", bindings)
	}
	out, _ := exec.Command("nft", "list", "table", "ip6", "berth").CombinedOutput()
	if !strings.Contains(string(out), "dnat to [fd00:95::2]:80") {
		t.Errorf("no IPv6 DNAT rule:\n%s", out)
	}
}
