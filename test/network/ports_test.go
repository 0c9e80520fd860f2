package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/network"
	"github.com/berthproject/berth/internal/network/nft"
	"github.com/berthproject/berth/internal/network/portredirect"
)

// TestPublishedPorts: with connect-time redirection (the default), and
// with DNAT alone (BERTH_PORT_REDIRECT=0), every way to a published port
// works; the difference a client can see is the source address the
// container sees for a host client dialing the host's address.
func TestPublishedPorts(t *testing.T) { testPublishedPorts(t, true) }

func TestPublishedPortsDNATOnly(t *testing.T) {
	t.Setenv(network.RedirectEnv, "0")
	testPublishedPorts(t, false)
}

func testPublishedPorts(t *testing.T, redirect bool) {
	h := newHost(t)
	other := h.otherHost()
	web, client := h.container("web"), h.container("client")
	epWeb := h.attach(web, network.AttachOptions{Ports: []network.PortRequest{
		{Proto: "tcp", HostPort: 8080, ContainerPort: 80},
		{Proto: "udp", HostPort: 8053, ContainerPort: 53},
		{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 9090, ContainerPort: 80},
	}})
	epClient := h.attach(client, network.AttachOptions{})
	serveTCP(t, web.ns, ":80", "web")
	serveUDP(t, web.ns, ":53", "web-udp")

	webIP := epWeb.IPv4.Addr().String()
	if got, err := fetchTCP(client.ns, webIP+":80"); err != nil || got != "web from "+epClient.IPv4.Addr().String() {
		t.Errorf("client -> web directly = %q, %v; want the client's own address", got, err)
	}
	// DNAT keeps the host address as the source; a redirected connect()
	// is a connection to the container's address, from the address the
	// route to the bridge gives: the gateway's.
	hostByAddress := "web from 10.250.0.1"
	if redirect {
		hostByAddress = "web from 172.30.0.1"
	}
	tests := []struct {
		name, from, addr, want string
	}{
		{"from another host", other, "10.250.0.1:8080", "web from 10.250.0.2"},
		{"from the host by its address", "", "10.250.0.1:8080", hostByAddress},
		{"from the host by 127.0.0.1", "", "127.0.0.1:8080", "web from 172.30.0.1"},
		{"from the host by localhost only", "", "127.0.0.1:9090", "web from 172.30.0.1"},
		// Not in the redirection's map (it holds 127.0.0.1): DNAT serves it.
		{"from the host by 127.0.0.2", "", "127.0.0.2:8080", "web from 172.30.0.1"},
		{"from the host by the gateway address", "", "172.30.0.1:8080", "web from 172.30.0.1"},
		// Through the host and back onto the same bridge, the source is
		// masqueraded to the gateway: replies then go back through the
		// host whether or not br_netfilter runs bridged packets through
		// conntrack.
		{"from another container by the host address", client.ns, "10.250.0.1:8080", "web from 172.30.0.1"},
		{"from the container itself (hairpin)", web.ns, "10.250.0.1:8080", "web from 172.30.0.1"},
		{"from another container by the gateway", client.ns, "172.30.0.1:8080", "web from 172.30.0.1"},
		{"direct on the bridge", "", webIP + ":80", "web from 172.30.0.1"},
	}
	if redirect {
		// IPv6 clients of the host reach the IPv4-only container as
		// docker-proxy's [::] serves them: connected mapped, over IPv4.
		tests = append(tests,
			struct{ name, from, addr, want string }{"from the host by [::1]", "", "[::1]:8080", "web from 172.30.0.1"},
			struct{ name, from, addr, want string }{"from the host by its IPv6 address", "", "[fd00:250::1]:8080", "web from 172.30.0.1"})
	}
	for _, tt := range tests {
		// The client sees the address it dialed (getpeername), redirected
		// or not.
		got, peer, err := fetchTCPPeer(tt.from, tt.addr)
		if err != nil || got != tt.want || peer != tt.addr {
			t.Errorf("%s: fetch %s = %q, peer %s, %v; want %q, peer %s", tt.name, tt.addr, got, peer, err, tt.want, tt.addr)
		}
	}
	// The redirections: every IPv4 address of the host for 8080, 127.0.0.1
	// alone for 9090; TCP only.
	wantRedirects := []string{
		"10.250.0.1:8080 -> " + webIP + ":80",
		"127.0.0.1:8080 -> " + webIP + ":80",
		"127.0.0.1:9090 -> " + webIP + ":80",
		"172.30.0.1:8080 -> " + webIP + ":80",
	}
	// And [::1] and the host's IPv6 address for 8080 (not 9090).
	wantRedirects = append(wantRedirects,
		"[::1]:8080 -> "+webIP+":80",
		"[fd00:250::1]:8080 -> "+webIP+":80")
	if !redirect {
		wantRedirects = nil
	}
	if got := h.redirects(); !slices.Equal(got, wantRedirects) {
		t.Errorf("redirections = %q; want %q", got, wantRedirects)
	}
	// Not on [::1] for the 127.0.0.1-only port; never for a container's
	// own [::1]; not over IPv6 from another host to an IPv4-only container
	// (no userland proxy); and without the redirection, not on IPv6 at all.
	notServed := []struct{ from, addr string }{{"", "[::1]:9090"}, {client.ns, "[::1]:8080"}, {other, "[fd00:250::1]:8080"}}
	if !redirect {
		notServed = append(notServed, struct{ from, addr string }{"", "[::1]:8080"}, struct{ from, addr string }{"", "[fd00:250::1]:8080"})
	}
	for _, c := range notServed {
		if got, err := fetchTCP(c.from, c.addr); err == nil {
			t.Errorf("%s from %q answered %q", c.addr, c.from, got)
		}
	}
	if redirect {
		if n, err := portredirect.Attached(h.redirectName()); err != nil || n != 4 {
			t.Errorf("%d programs attached (%v); want 4 (connect4, getpeername4, connect6, getpeername6)", n, err)
		}
	} else if left := h.redirectLeft(); left != "" {
		t.Errorf("BERTH_PORT_REDIRECT=0, yet %s", left)
	}
	// The 127.0.0.1-only port is not published on the host's other addresses.
	if got, err := fetchTCP(other, "10.250.0.1:9090"); err == nil {
		t.Errorf("127.0.0.1:9090 reached from another host: %q", got)
	}
	for _, from := range []string{other, ""} {
		if got, err := askUDP(from, "10.250.0.1:8053"); err != nil || got != "web-udp" {
			t.Errorf("udp 8053 from %q = %q, %v; want web-udp", from, got, err)
		}
	}

	// The applied table is exactly the rendered description.
	st, err := h.m.Store().Read()
	if err != nil {
		t.Fatal(err)
	}
	for _, tbl := range network.Rules(st) {
		if got, want := nftList(t, tbl.Family), tbl.String(); got != want {
			t.Errorf("nft list table %s berth:\n%s\nwant (rendered):\n%s", tbl.Family, got, want)
		}
	}

	// PortMap as docker port shows it.
	pm, err := h.m.PortMap(context.Background(), web.id)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for p, bs := range pm {
		for _, b := range bs {
			got = append(got, p.String()+" -> "+b.HostIP.String()+":"+b.HostPort)
		}
	}
	for _, want := range []string{"80/tcp -> 0.0.0.0:8080", "53/udp -> 0.0.0.0:8053", "80/tcp -> 127.0.0.1:9090"} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("PortMap = %v, missing %q", got, want)
		}
	}
	// [::] for the TCP port served over IPv6 by the redirection, as Docker
	// lists it; never for the UDP one; not without the redirection.
	if v6 := slices.Contains(got, "80/tcp -> :::8080"); v6 != redirect || slices.Contains(got, "53/udp -> :::8053") {
		t.Errorf("PortMap = %v; want 80/tcp -> [::]:8080 listed: %v, never 53/udp on ::", got, redirect)
	}

	// A second container cannot take a published port, nor a port a host
	// program listens on; nothing is left of the refused attempt.
	third := h.container("third")
	linksBefore := len(linksOf(t, ""))
	_, err = h.m.Attach(context.Background(), network.AttachOptions{ContainerID: third.id, ContainerName: "third", NetNS: third.ns, Network: "bridge",
		Ports: []network.PortRequest{{Proto: "tcp", HostPort: 8080, ContainerPort: 80}}})
	if !errors.Is(err, network.ErrConflict) || !strings.Contains(err.Error(), "8080/tcp is already published by container web") {
		t.Errorf("publishing 8080 twice: %v; want a conflict naming container web", err)
	}
	l, lerr := net.Listen("tcp", "127.0.0.1:7070")
	if lerr != nil {
		t.Fatal(lerr)
	}
	defer l.Close()
	_, err = h.m.Attach(context.Background(), network.AttachOptions{ContainerID: third.id, ContainerName: "third", NetNS: third.ns, Network: "bridge",
		Ports: []network.PortRequest{{Proto: "tcp", HostPort: 7070, ContainerPort: 80}}})
	if !errors.Is(err, network.ErrConflict) || !strings.Contains(err.Error(), "in use on the host") {
		t.Errorf("publishing a port a host program listens on: %v; want a conflict", err)
	}
	// Where IPv6 clients are served, a host program on [::1] holds the
	// port too (docker-proxy's bind to [::] would fail the same way).
	if redirect {
		l6, err := net.Listen("tcp6", "[::1]:7071")
		if err != nil {
			t.Fatal(err)
		}
		defer l6.Close()
		_, err = h.m.Attach(context.Background(), network.AttachOptions{ContainerID: third.id, ContainerName: "third", NetNS: third.ns, Network: "bridge",
			Ports: []network.PortRequest{{Proto: "tcp", HostPort: 7071, ContainerPort: 80}}})
		if !errors.Is(err, network.ErrConflict) || !strings.Contains(err.Error(), "in use on the host") {
			t.Errorf("publishing a port a host program listens on at [::1]: %v; want a conflict", err)
		}
	}
	if n := len(linksOf(t, "")); n != linksBefore {
		t.Errorf("refused attaches left links behind: %d links, had %d", n, linksBefore)
	}
	if eps, _ := h.m.Endpoints(context.Background(), third.id); len(eps) != 0 {
		t.Errorf("refused attaches left endpoints: %v", eps)
	}

	// A random port (-P) from the ephemeral range works the same way.
	ep := h.attach(third, network.AttachOptions{Ports: []network.PortRequest{{Proto: "tcp", ContainerPort: 80}}})
	serveTCP(t, third.ns, ":80", "third")
	hp := ep.Ports[0].HostPort
	if lo, hi := 1024, 65535; int(hp) < lo || int(hp) > hi {
		t.Errorf("random host port %d", hp)
	}
	if got, err := fetchTCP(other, netip.AddrPortFrom(hostAddr, hp).String()); err != nil || !strings.HasPrefix(got, "third") {
		t.Errorf("random port %d from another host = %q, %v", hp, got, err)
	}

	// Detach removes the container's rules and nothing else.
	if err := h.m.DetachAll(context.Background(), web.id); err != nil {
		t.Fatal(err)
	}
	s := nftList(t, nft.IPv4)
	if strings.Contains(s, "8080") || strings.Contains(s, webIP) || strings.Contains(s, "endpoint "+epWeb.ID[:12]) {
		t.Errorf("rules of the detached container remain:\n%s", s)
	}
	if !strings.Contains(s, "endpoint "+ep.ID[:12]) {
		t.Errorf("the other container's rule went too:\n%s", s)
	}
	for _, from := range []string{other, ""} {
		if got, err := fetchTCP(from, "10.250.0.1:8080"); err == nil {
			t.Errorf("port 8080 still answers after detach, from %q: %q", from, got)
		}
	}
	if got, err := fetchTCP("", "127.0.0.1:8080"); err == nil {
		t.Errorf("127.0.0.1:8080 still answers after detach: %q", got)
	}
	for _, r := range h.redirects() {
		if strings.Contains(r, webIP) {
			t.Errorf("redirection of the detached container remains: %s", r)
		}
	}
	if redirect {
		if got, err := fetchTCP("", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), hp).String()); err != nil || !strings.HasPrefix(got, "third") {
			t.Errorf("the other container's port %d by 127.0.0.1 after the detach = %q, %v", hp, got, err)
		}
	}
	// Once no port is published, nothing of the redirection is left.
	for _, c := range []*ctr{third, client} {
		if err := h.m.DetachAll(context.Background(), c.id); err != nil {
			t.Fatal(err)
		}
	}
	if left := h.redirectLeft(); left != "" {
		t.Errorf("no port published, yet %s", left)
	}
}
