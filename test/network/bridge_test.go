package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/berthproject/berth/internal/network"
	"github.com/berthproject/berth/internal/network/nft"
)

func TestDefaultBridge(t *testing.T) {
	h := newHost(t)
	a, b := h.container("a"), h.container("b")
	epA := h.attach(a, network.AttachOptions{})
	brMAC := func() string {
		l, err := netlink.LinkByName("berth0")
		if err != nil {
			t.Fatal(err)
		}
		return l.Attrs().HardwareAddr.String()
	}
	mac := brMAC()
	epB := h.attach(b, network.AttachOptions{})
	// More ports do not change the bridge's address (the containers'
	// ARP entries for the gateway stay right).
	for i := 0; i < 8; i++ {
		h.attach(h.container(fmt.Sprintf("mac%d", i)), network.AttachOptions{})
	}
	if got := brMAC(); got != mac {
		t.Errorf("the bridge's MAC changed from %s to %s as containers joined", mac, got)
	}

	if got, want := epA.IPv4, netip.MustParsePrefix("172.30.0.2/16"); got != want {
		t.Errorf("first container's address = %v, want %v", got, want)
	}
	if got, want := epB.IPv4, netip.MustParsePrefix("172.30.0.3/16"); got != want {
		t.Errorf("second container's address = %v, want %v", got, want)
	}
	if got, want := epA.MAC.String(), "02:42:ac:1e:00:02"; got != want {
		t.Errorf("first container's MAC = %s, want %s", got, want)
	}

	// Inside: eth0 with the address and MAC, lo up, default route via the gateway.
	err := inNS(a.ns, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if l.Attrs().HardwareAddr.String() != epA.MAC.String() || l.Attrs().Flags&net.FlagUp == 0 || l.Attrs().MTU != 1500 {
			t.Errorf("eth0 = mac %s flags %v mtu %d; want %s, up, 1500", l.Attrs().HardwareAddr, l.Attrs().Flags, l.Attrs().MTU, epA.MAC)
		}
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != "172.30.0.2/16" {
			t.Errorf("eth0 addresses = %v, want 172.30.0.2/16", addrs)
		}
		routes, _ := netlink.RouteList(nil, netlink.FAMILY_V4)
		found := false
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				found = found || r.Gw.String() == "172.30.0.1"
			}
		}
		if !found {
			t.Errorf("no default route via 172.30.0.1 in %v", routes)
		}
		lo, _ := netlink.LinkByName("lo")
		if lo == nil || lo.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("lo is not up")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Bridge berth0 with the gateway, the host end of each veth on it.
	br, err := netlink.LinkByName("berth0")
	if err != nil {
		t.Fatal("no bridge berth0:", err)
	}
	hostEnd, err := netlink.LinkByName(epA.HostIf)
	if err != nil || hostEnd.Attrs().MasterIndex != br.Attrs().Index {
		t.Errorf("host end %s is not on berth0: %v", epA.HostIf, err)
	}

	// Containers reach each other and the gateway.
	if err := ping(a.ns, epB.IPv4.Addr()); err != nil {
		t.Error(err)
	}
	if err := ping(b.ns, netip.MustParseAddr("172.30.0.1")); err != nil {
		t.Error(err)
	}
	serveTCP(t, b.ns, ":80", "b")
	if got, err := fetchTCP(a.ns, "172.30.0.3:80"); err != nil || got != "b from 172.30.0.2" {
		t.Errorf("a -> b:80 = %q, %v; want %q", got, err, "b from 172.30.0.2")
	}
	// Outbound NAT: another host sees the host's address, not the
	// container's.
	other := h.otherHost()
	serveTCP(t, other, ":7000", "outside")
	if got, err := fetchTCP(a.ns, "10.250.0.2:7000"); err != nil || got != "outside from 10.250.0.1" {
		t.Errorf("outbound from the default bridge = %q, %v; want it masqueraded to the host address", got, err)
	}

	// Detach removes the veth pair, and the address is free again.
	if err := h.m.DetachAll(context.Background(), a.id); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(linksOf(t, ""), epA.HostIf) {
		t.Errorf("host end %s still exists after detach", epA.HostIf)
	}
	if slices.Contains(linksOf(t, a.ns), "eth0") {
		t.Errorf("eth0 still exists in the container after detach")
	}
	if s := nftList(t, nft.IPv4); strings.Contains(s, "172.30.0.2") {
		t.Errorf("rules still mention the detached container:\n%s", s)
	}
}
