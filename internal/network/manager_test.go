package network

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/network"

	"github.com/berthproject/berth/internal/network/link"
	"github.com/berthproject/berth/internal/network/store"
)

func newTestManager(t *testing.T) (*Manager, *fakeKernel, *fakeDNS) {
	t.Helper()
	withRedirect(t, false)
	k, d := newFakeKernel(), &fakeDNS{}
	m, err := newManager(Config{Dir: t.TempDir(), DNS: d}, func() (kernel, error) { return k, nil })
	if err != nil {
		t.Fatal(err)
	}
	return m, k, d
}

// withRedirect makes the connect-time redirection available (IPv6 clients
// served: [::1] can be published, [::] listed for IPv4-only containers) or
// not, for the test, whatever the machine running it has.
func withRedirect(t *testing.T, ok bool) {
	oldServes, oldCheck := servesIPv6, loopback6Check
	t.Cleanup(func() { servesIPv6, loopback6Check = oldServes, oldCheck })
	servesIPv6 = func() bool { return ok }
	loopback6Check = func() error {
		if ok {
			return nil
		}
		return errors.New("publishing on IPv6 loopback is not supported here: connect-time redirection is turned off (BERTH_PORT_REDIRECT=0)")
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

var ctx = context.Background()

func attach(t *testing.T, m *Manager, name, nw string, o AttachOptions) *Endpoint {
	t.Helper()
	o.ContainerID, o.ContainerName, o.NetNS, o.Network = name+"-id-0123456789abcdef", name, "/run/netns/"+name, nw
	ep, err := m.Attach(ctx, o)
	if err != nil {
		t.Fatalf("Attach(%s to %s): %v", name, nw, err)
	}
	return ep
}

func TestPredefinedNetworks(t *testing.T) {
	m, _, _ := newTestManager(t)
	list, err := m.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range list {
		got = append(got, n.Name+"/"+n.Driver)
	}
	if want := []string{"bridge/bridge", "host/host", "none/null"}; !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	again, _ := m.List(ctx)
	if again[0].ID != list[0].ID {
		t.Errorf("predefined network IDs change between calls: %s, %s", list[0].ID, again[0].ID)
	}
	br, err := m.Inspect(ctx, "bridge")
	if err != nil {
		t.Fatal(err)
	}
	if len(br.IPAM.Config) != 1 || br.IPAM.Config[0].Subnet != DefaultSubnet || br.IPAM.Config[0].Gateway != ip("172.30.0.1") {
		t.Errorf("bridge IPAM = %+v", br.IPAM)
	}
	for _, name := range []string{"bridge", "host", "none"} {
		if err := m.Remove(ctx, name); !errors.Is(err, ErrForbidden) {
			t.Errorf("Remove(%s) = %v, want ErrForbidden", name, err)
		}
	}
}

func TestDefaultSubnetOption(t *testing.T) {
	dir := t.TempDir()
	k := newFakeKernel()
	open := func(subnet string) *Manager {
		m, err := newManager(Config{Dir: dir, DefaultSubnet: pfx(subnet)}, func() (kernel, error) { return k, nil })
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := open("10.200.0.0/16")
	ep := attach(t, m, "a", "bridge", AttachOptions{})
	if ep.IPv4 != pfx("10.200.0.2/16") {
		t.Errorf("address on a configured default subnet = %v", ep.IPv4)
	}
	// In use: the change waits.
	m = open("10.201.0.0/16")
	if n, _ := m.Inspect(ctx, "bridge"); n.IPAM.Config[0].Subnet != pfx("10.200.0.0/16") {
		t.Errorf("default subnet changed while a container uses it: %v", n.IPAM.Config[0].Subnet)
	}
	if err := m.DetachAll(ctx, ep.ContainerID); err != nil {
		t.Fatal(err)
	}
	m = open("10.201.0.0/16")
	if n, _ := m.Inspect(ctx, "bridge"); n.IPAM.Config[0].Subnet != pfx("10.201.0.0/16") {
		t.Errorf("default subnet not changed once unused: %v", n.IPAM.Config[0].Subnet)
	}
	if _, err := newManager(Config{Dir: dir, DefaultSubnet: pfx("10.1.2.3/16")}, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("unmasked default subnet: %v, want ErrInvalid", err)
	}
}

func TestCreate(t *testing.T) {
	m, k, _ := newTestManager(t)
	k.routes = []netip.Prefix{pfx("0.0.0.0/0"), pfx("172.18.0.0/16"), pfx("10.0.0.0/24")}
	tests := []struct {
		name string
		opts CreateOptions
		// want: subnet gateway range [subnet6 gateway6]; or err
		want []string
		err  error
	}{
		{"auto subnet skips host routes", CreateOptions{Name: "auto1"}, []string{"172.19.0.0/16", "172.19.0.1", "invalid Prefix"}, nil},
		{"auto subnet skips networks", CreateOptions{Name: "auto2"}, []string{"172.20.0.0/16", "172.20.0.1", "invalid Prefix"}, nil},
		{"given subnet", CreateOptions{Name: "given", Subnets: []netip.Prefix{pfx("10.10.0.0/24")}}, []string{"10.10.0.0/24", "10.10.0.1", "invalid Prefix"}, nil},
		{"gateway and range", CreateOptions{Name: "ranged", Subnets: []netip.Prefix{pfx("10.11.0.0/16")}, Gateways: []netip.Addr{ip("10.11.255.254")}, IPRanges: []netip.Prefix{pfx("10.11.5.0/24")}},
			[]string{"10.11.0.0/16", "10.11.255.254", "10.11.5.0/24"}, nil},
		{"dual stack", CreateOptions{Name: "dual", Subnets: []netip.Prefix{pfx("10.12.0.0/24"), pfx("fd00:12::/64")}, IPv6: true},
			[]string{"10.12.0.0/24", "10.12.0.1", "invalid Prefix", "fd00:12::/64", "fd00:12::1"}, nil},
		{"overlapping subnet", CreateOptions{Name: "overlap", Subnets: []netip.Prefix{pfx("10.10.0.128/25")}}, nil, ErrConflict},
		{"overlapping the default bridge", CreateOptions{Name: "overlap2", Subnets: []netip.Prefix{pfx("172.30.5.0/24")}}, nil, ErrConflict},
		{"overlapping IPv6", CreateOptions{Name: "overlap6", Subnets: []netip.Prefix{pfx("10.13.0.0/24"), pfx("fd00:12::/48")}, IPv6: true}, nil, ErrConflict},
		{"same name", CreateOptions{Name: "given"}, nil, ErrConflict},
		{"predefined name", CreateOptions{Name: "host"}, nil, ErrForbidden},
		{"bad name", CreateOptions{Name: "-x"}, nil, ErrInvalid},
		{"gateway outside", CreateOptions{Name: "gwout", Subnets: []netip.Prefix{pfx("10.14.0.0/24")}, Gateways: []netip.Addr{ip("10.15.0.1")}}, nil, ErrInvalid},
		{"gateway without subnet", CreateOptions{Name: "gwonly", Gateways: []netip.Addr{ip("10.15.0.1")}}, nil, ErrInvalid},
		{"range outside", CreateOptions{Name: "rngout", Subnets: []netip.Prefix{pfx("10.14.0.0/24")}, IPRanges: []netip.Prefix{pfx("10.14.1.0/25")}}, nil, ErrInvalid},
		{"unmasked subnet", CreateOptions{Name: "unmasked", Subnets: []netip.Prefix{pfx("10.14.0.5/24")}}, nil, ErrInvalid},
		{"IPv6 subnet without --ipv6", CreateOptions{Name: "v6no", Subnets: []netip.Prefix{pfx("fd00:14::/64")}}, nil, ErrInvalid},
		{"two IPv4 subnets", CreateOptions{Name: "two", Subnets: []netip.Prefix{pfx("10.16.0.0/24"), pfx("10.17.0.0/24")}}, nil, ErrInvalid},
		{"bad MTU", CreateOptions{Name: "mtu", Options: map[string]string{OptionMTU: "huge"}}, nil, ErrInvalid},
		{"bridge name option", CreateOptions{Name: "brname", Options: map[string]string{OptionBridgeName: "br0"}}, nil, ErrInvalid},
	}
	for _, tt := range tests {
		n, err := m.Create(ctx, tt.opts)
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: Create = %v, want %v", tt.name, err, tt.err)
			continue
		}
		if err != nil {
			if _, ierr := m.Inspect(ctx, tt.opts.Name); tt.opts.Name != "given" && tt.opts.Name != "host" && !errors.Is(ierr, ErrNotFound) {
				t.Errorf("%s: refused network exists: %v", tt.name, ierr)
			}
			continue
		}
		var got []string
		for _, c := range n.IPAM.Config {
			got = append(got, c.Subnet.String(), c.Gateway.String())
			if c.Subnet.Addr().Is4() {
				got = append(got, c.IPRange.String())
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: IPAM = %v, want %v", tt.name, got, tt.want)
		}
		st, _ := m.store.Read()
		rec := st.Networks[n.ID]
		if b, ok := k.bridges[rec.Bridge]; !ok || b.Alias != aliasNetwork+n.ID || len(rec.Bridge) > 15 {
			t.Errorf("%s: bridge %q not made with the network's alias: %+v", tt.name, rec.Bridge, b)
		}
	}
}

func TestCreateRollsBack(t *testing.T) {
	m, k, _ := newTestManager(t)
	k.fail["ApplyRules"] = errors.New("nft says no")
	if _, err := m.Create(ctx, CreateOptions{Name: "doomed"}); err == nil || !strings.Contains(err.Error(), "nft says no") {
		t.Fatalf("Create with failing rules = %v", err)
	}
	if _, err := m.Inspect(ctx, "doomed"); !errors.Is(err, ErrNotFound) {
		t.Errorf("network of a failed create exists: %v", err)
	}
	for name := range k.links {
		t.Errorf("link %s left by a failed create", name)
	}
}

func TestAttach(t *testing.T) {
	m, k, d := newTestManager(t)
	if _, err := m.Create(ctx, CreateOptions{Name: "app", Subnets: []netip.Prefix{pfx("10.1.0.0/24"), pfx("fd00:1::/64")}, IPv6: true,
		Options: map[string]string{OptionMTU: "1400"}}); err != nil {
		t.Fatal(err)
	}
	a := attach(t, m, "a", "app", AttachOptions{Aliases: []string{"web"}})
	if a.IPv4 != pfx("10.1.0.2/24") || a.IPv6 != pfx("fd00:1::2/64") || a.IfName != "eth0" || !a.DefaultRoute {
		t.Errorf("first endpoint = %+v", a)
	}
	if a.MAC.String() != "02:42:0a:01:00:02" {
		t.Errorf("generated MAC = %s, want 02:42:0a:01:00:02", a.MAC)
	}
	if !slices.Equal(a.DNSNames, []string{"a", "a-id-0123456", "web"}) {
		t.Errorf("DNSNames = %v", a.DNSNames)
	}
	v := k.veths[a.HostIf]
	if !strings.HasPrefix(a.HostIf, "veth") || len(a.HostIf) != 12 || v.MTU != 1400 || v.IfName != "eth0" || v.NetNS != "/run/netns/a" ||
		!slices.Equal(v.Gateways, []netip.Addr{ip("10.1.0.1"), ip("fd00:1::1")}) || v.Alias != aliasEndpoint+a.ID {
		t.Errorf("veth = %+v", v)
	}
	if d.starts != 1 {
		t.Errorf("DNS syncs after attaching to a user network = %d, want 1", d.starts)
	}
	mac, _ := net.ParseMAC("02:00:00:00:00:99")
	b := attach(t, m, "b", "app", AttachOptions{IPv4: ip("10.1.0.200"), IPv6: ip("fd00:1::200"), MAC: mac})
	if b.IPv4 != pfx("10.1.0.200/24") || b.IPv6 != pfx("fd00:1::200/64") || b.MAC.String() != "02:00:00:00:00:99" {
		t.Errorf("endpoint with --ip, --ip6, --mac-address = %+v", b)
	}
	// Sequential allocation continues after the last one handed out.
	c := attach(t, m, "c", "app", AttachOptions{})
	if c.IPv4 != pfx("10.1.0.201/24") {
		t.Errorf("next address = %v, want 10.1.0.201/24", c.IPv4)
	}
	// The same container on the default bridge too: eth1, no second default route.
	a2 := attach(t, m, "a", "bridge", AttachOptions{})
	if a2.IfName != "eth1" || a2.DefaultRoute || len(k.veths[a2.HostIf].Gateways) != 0 {
		t.Errorf("second network of a container = %+v", a2)
	}
	if d.starts != 3 {
		t.Errorf("DNS syncs = %d, want 3 (the default bridge has no DNS)", d.starts)
	}

	bad := []struct {
		name string
		nw   string
		opts AttachOptions
		err  error
	}{
		{"address in use", "app", AttachOptions{IPv4: ip("10.1.0.200")}, ErrConflict},
		{"IPv6 address in use", "app", AttachOptions{IPv6: ip("fd00:1::2")}, ErrConflict},
		{"address outside the subnet", "app", AttachOptions{IPv4: ip("10.2.0.5")}, ErrInvalid},
		{"gateway address", "app", AttachOptions{IPv4: ip("10.1.0.1")}, ErrInvalid},
		{"--ip6 on an IPv4 network", "bridge", AttachOptions{IPv6: ip("fd00::5")}, ErrInvalid},
		{"--ip on the default bridge", "bridge", AttachOptions{IPv4: ip("172.30.0.50")}, ErrInvalid},
		{"alias on the default bridge", "bridge", AttachOptions{Aliases: []string{"x"}}, ErrInvalid},
		{"unknown network", "nope", AttachOptions{}, ErrNotFound},
		{"host network", "host", AttachOptions{}, ErrInvalid},
		{"none network", "none", AttachOptions{}, ErrInvalid},
		{"multicast MAC", "app", AttachOptions{MAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}}, ErrInvalid},
	}
	for _, tt := range bad {
		links := len(k.links)
		o := tt.opts
		o.ContainerID, o.ContainerName, o.NetNS, o.Network = "z-id", "z", "/run/netns/z", tt.nw
		if _, err := m.Attach(ctx, o); !errors.Is(err, tt.err) {
			t.Errorf("%s: Attach = %v, want %v", tt.name, err, tt.err)
		}
		if len(k.links) != links {
			t.Errorf("%s: a refused attach made links", tt.name)
		}
	}
	// Same container twice, same name twice.
	if _, err := m.Attach(ctx, AttachOptions{ContainerID: a.ContainerID, ContainerName: "a", NetNS: "/x", Network: "app"}); !errors.Is(err, ErrConflict) {
		t.Errorf("attaching a container twice: %v, want ErrConflict", err)
	}
	if _, err := m.Attach(ctx, AttachOptions{ContainerID: "other-id", ContainerName: "a", NetNS: "/x", Network: "app"}); !errors.Is(err, ErrConflict) {
		t.Errorf("two containers named a on one network: %v, want ErrConflict", err)
	}

	// Removing a network with containers is refused.
	if err := m.Remove(ctx, "app"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "active endpoints") {
		t.Errorf("Remove(app) with containers = %v, want ErrConflict", err)
	}

	// Detaching a's gateway endpoint moves the default route to its other network.
	if err := m.Detach(ctx, a.ContainerID, "app"); err != nil {
		t.Fatal(err)
	}
	if k.defaultRoutes["/run/netns/a"] != "eth1" {
		t.Errorf("default route after detaching the gateway endpoint: %v", k.defaultRoutes)
	}
	eps, _ := m.Endpoints(ctx, a.ContainerID)
	if len(eps) != 1 || !eps[0].DefaultRoute {
		t.Errorf("endpoints left = %+v", eps)
	}
	if _, ok := k.links[a.HostIf]; ok {
		t.Errorf("veth %s not deleted", a.HostIf)
	}
	if err := m.Detach(ctx, a.ContainerID, "app"); !errors.Is(err, ErrNotFound) {
		t.Errorf("detaching twice = %v, want ErrNotFound", err)
	}
	// The freed address is handed out again only after the others.
	e := attach(t, m, "e", "app", AttachOptions{})
	if e.IPv4 != pfx("10.1.0.202/24") {
		t.Errorf("address after a release = %v, want 10.1.0.202/24", e.IPv4)
	}
}

func TestAttachRollsBack(t *testing.T) {
	m, k, d := newTestManager(t)
	if _, err := m.Create(ctx, CreateOptions{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	k.fail["ApplyRules"] = errors.New("nft says no")
	if _, err := m.Attach(ctx, AttachOptions{ContainerID: "x", NetNS: "/x", Network: "app"}); err == nil {
		t.Fatal("Attach with failing rules succeeded")
	}
	delete(k.fail, "ApplyRules")
	if len(k.veths) != 0 {
		t.Errorf("veths left by a failed attach: %v", k.veths)
	}
	d.err = errors.New("no DNS for you")
	if _, err := m.Attach(ctx, AttachOptions{ContainerID: "x", NetNS: "/x", Network: "app"}); err == nil || !strings.Contains(err.Error(), "no DNS for you") {
		t.Fatalf("Attach with a failing DNS server = %v", err)
	}
	if eps, _ := m.Endpoints(ctx, "x"); len(eps) != 0 || len(k.veths) != 0 {
		t.Errorf("a failed attach left endpoints %v, veths %v", eps, k.veths)
	}
}

func TestPorts(t *testing.T) {
	m, k, _ := newTestManager(t)
	k.busy["tcp/9000"] = true
	a := attach(t, m, "a", "bridge", AttachOptions{Ports: []PortRequest{
		{Proto: "tcp", HostPort: 8080, ContainerPort: 80},
		{Proto: "udp", HostPort: 8080, ContainerPort: 53},
		{Proto: "tcp", HostIP: ip("127.0.0.1"), HostPort: 8081, ContainerPort: 81},
		{Proto: "tcp", ContainerPort: 82},
		{Proto: "tcp", HostPort: 9000, HostPortEnd: 9002, ContainerPort: 83},
	}})
	var got []string
	for _, p := range a.Ports {
		got = append(got, PortRequest{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort}.String())
	}
	if got[0] != "8080:80/tcp" || got[1] != "8080:53/udp" || got[2] != "127.0.0.1:8081:81/tcp" ||
		a.Ports[3].HostPort < 40000 || a.Ports[3].HostPort > 40009 || (got[4] != "9001:83/tcp" && got[4] != "9002:83/tcp") {
		t.Errorf("ports = %v", got)
	}
	bad := []struct {
		name string
		req  PortRequest
		err  string
	}{
		{"same port", PortRequest{Proto: "tcp", HostPort: 8080, ContainerPort: 80}, "already published by container a"},
		{"same port on one address", PortRequest{Proto: "tcp", HostIP: ip("10.0.0.1"), HostPort: 8080, ContainerPort: 80}, "already published"},
		{"all addresses over a specific one", PortRequest{Proto: "tcp", HostPort: 8081, ContainerPort: 80}, "already published"},
		{"a host program's port", PortRequest{Proto: "tcp", HostPort: 9000, ContainerPort: 80}, "in use on the host"},
		{"sctp", PortRequest{Proto: "sctp", HostPort: 7000, ContainerPort: 80}, "only tcp and udp"},
		{"IPv6 host address on an IPv4 network", PortRequest{Proto: "tcp", HostIP: ip("fd00::1"), HostPort: 7001, ContainerPort: 80}, "no IPv6"},
		{"[::1] without the redirection", PortRequest{Proto: "tcp", HostIP: ip("::1"), HostPort: 7001, ContainerPort: 80}, "IPv6 loopback is not supported"},
	}
	for _, tt := range bad {
		_, err := m.Attach(ctx, AttachOptions{ContainerID: "b", ContainerName: "b", NetNS: "/b", Network: "bridge", Ports: []PortRequest{tt.req}})
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: Attach = %v, want an error with %q", tt.name, err, tt.err)
		}
	}
	// Another address of the same port, other protocol: fine.
	attach(t, m, "c", "bridge", AttachOptions{Ports: []PortRequest{{Proto: "tcp", HostIP: ip("127.0.0.2"), HostPort: 8081, ContainerPort: 80}}})
	// The ephemeral range runs out.
	for i := 0; i < 9; i++ {
		attach(t, m, "r"+string(rune('0'+i)), "bridge", AttachOptions{Ports: []PortRequest{{Proto: "tcp", ContainerPort: 80}}})
	}
	if _, err := m.Attach(ctx, AttachOptions{ContainerID: "full", NetNS: "/f", Network: "bridge", Ports: []PortRequest{{Proto: "tcp", ContainerPort: 80}}}); !errors.Is(err, ErrConflict) {
		t.Errorf("random port with the range used up = %v, want ErrConflict", err)
	}
	pm, _ := m.PortMap(ctx, a.ContainerID)
	if bs := pm[network.MustParsePort("80/tcp")]; len(bs) != 1 || bs[0].HostIP != ip("0.0.0.0") || bs[0].HostPort != "8080" {
		t.Errorf("PortMap[80/tcp] = %v", bs)
	}
}

func TestPortRequests(t *testing.T) {
	withRedirect(t, false)
	bindings := network.PortMap{
		network.MustParsePort("80/tcp"):  {{HostPort: "8080"}, {HostIP: ip("127.0.0.1"), HostPort: "9090"}},
		network.MustParsePort("53/udp"):  {{HostPort: ""}},
		network.MustParsePort("443/tcp"): {{HostPort: "8443-8450"}},
		network.MustParsePort("81/tcp"):  {{HostPort: "0"}}, // any free port (Docker)
	}
	exposed := network.PortSet{network.MustParsePort("80/tcp"): {}, network.MustParsePort("22/tcp"): {}}
	tests := []struct {
		publishAll bool
		want       []string
	}{
		{false, []string{"8080:80/tcp", "127.0.0.1:9090:80/tcp", "0:81/tcp", "8443-8450:443/tcp", "0:53/udp"}},
		{true, []string{"8080:80/tcp", "127.0.0.1:9090:80/tcp", "0:81/tcp", "8443-8450:443/tcp", "0:53/udp", "0:22/tcp"}},
	}
	for _, tt := range tests {
		reqs, err := PortRequests(bindings, exposed, tt.publishAll)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range reqs {
			got = append(got, r.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("PortRequests(publishAll %v) = %v, want %v", tt.publishAll, got, tt.want)
		}
	}
	if _, err := PortRequests(network.PortMap{network.MustParsePort("80/tcp"): {{HostIP: ip("::1"), HostPort: "8080"}}}, nil, false); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), "IPv6 loopback is not supported") {
		t.Errorf("PortRequests([::1]:8080:80) = %v, want ErrInvalid naming IPv6 loopback", err)
	}
	withRedirect(t, true)
	if reqs, err := PortRequests(network.PortMap{network.MustParsePort("80/tcp"): {{HostIP: ip("::1"), HostPort: "8080"}}}, nil, false); err != nil ||
		len(reqs) != 1 || reqs[0].String() != "::1:8080:80/tcp" {
		t.Errorf("PortRequests([::1]:8080:80) with the redirection = %v, %v", reqs, err)
	}
	for _, hp := range []string{"x", "0-10", "70000", "9000-8000"} {
		if _, err := PortRequests(network.PortMap{network.MustParsePort("80/tcp"): {{HostPort: hp}}}, nil, false); !errors.Is(err, ErrInvalid) {
			t.Errorf("PortRequests(host port %q) = %v, want ErrInvalid", hp, err)
		}
	}
	if _, err := PortRequests(network.PortMap{network.MustParsePort("80/sctp"): {{}}}, nil, false); !errors.Is(err, ErrInvalid) {
		t.Errorf("PortRequests(sctp) = %v, want ErrInvalid", err)
	}
}

func TestReconcile(t *testing.T) {
	m, k, _ := newTestManager(t)
	if _, err := m.Create(ctx, CreateOptions{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	live := attach(t, m, "live", "app", AttachOptions{Ports: []PortRequest{{Proto: "tcp", HostPort: 8080, ContainerPort: 80}}})
	dead := attach(t, m, "dead", "app", AttachOptions{Ports: []PortRequest{{Proto: "tcp", HostPort: 8081, ContainerPort: 80}}})
	gone := attach(t, m, "gone", "bridge", AttachOptions{})
	twoNets := attach(t, m, "two", "bridge", AttachOptions{})
	attach(t, m, "two", "app", AttachOptions{})
	k.deadNetNS["/run/netns/gone"] = true // its namespace vanished (a reboot)

	// A crash: every link is gone, and an orphan veth and bridge exist.
	k.links, k.veths, k.bridges = map[string]string{}, map[string]link.Veth{}, map[string]link.Bridge{}
	k.links["vethdeadbeef"] = aliasEndpoint + "0000"
	k.links["berth-000000000"] = aliasNetwork + "0000"
	k.links["eth9"] = "" // not ours
	alive := func(id string) bool { return id != dead.ContainerID }
	if err := m.Reconcile(ctx, alive); err != nil {
		t.Fatal(err)
	}
	st, _ := m.store.Read()
	var names []string
	for _, e := range st.SortedEndpoints() {
		names = append(names, e.ContainerName)
	}
	if !slices.Equal(names, []string{"live", "two", "two"}) {
		t.Errorf("endpoints after reconcile = %v, want live, two, two", names)
	}
	for _, want := range []string{live.HostIf, "berth0", "eth9"} {
		if _, ok := k.links[want]; !ok {
			t.Errorf("link %s missing after reconcile: %v", want, k.links)
		}
	}
	for _, notWant := range []string{dead.HostIf, gone.HostIf, "vethdeadbeef", "berth-000000000"} {
		if _, ok := k.links[notWant]; ok {
			t.Errorf("link %s still there after reconcile", notWant)
		}
	}
	rules := ""
	for _, tbl := range k.rules {
		rules += tbl.String()
	}
	if !strings.Contains(rules, "tcp dport 8080") || strings.Contains(rules, "tcp dport 8081") {
		t.Errorf("rules after reconcile:\n%s", rules)
	}
	// Idempotent.
	before := len(k.links)
	if err := m.Reconcile(ctx, alive); err != nil {
		t.Fatal(err)
	}
	if len(k.links) != before {
		t.Errorf("second reconcile changed links: %d, had %d", len(k.links), before)
	}
	_ = twoNets
}

func TestPrune(t *testing.T) {
	m, _, _ := newTestManager(t)
	for _, n := range []CreateOptions{{Name: "used"}, {Name: "idle", Labels: map[string]string{"tier": "test"}}, {Name: "idle2"}} {
		if _, err := m.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	attach(t, m, "a", "used", AttachOptions{})
	removed, err := m.Prune(ctx, func(n network.Inspect) bool { return n.Labels["tier"] == "test" })
	if err != nil || !slices.Equal(removed, []string{"idle"}) {
		t.Errorf("Prune(label tier=test) = %v, %v; want [idle]", removed, err)
	}
	removed, err = m.Prune(ctx, nil)
	if err != nil || !slices.Equal(removed, []string{"idle2"}) {
		t.Errorf("Prune() = %v, %v; want [idle2]", removed, err)
	}
}

// TestInspectJSON pins the Docker JSON shape of `network inspect`.
func TestInspectJSON(t *testing.T) {
	m, _, _ := newTestManager(t)
	if _, err := m.Create(ctx, CreateOptions{Name: "app", Subnets: []netip.Prefix{pfx("10.1.0.0/24"), pfx("fd00:1::/64")}, IPv6: true,
		Labels: map[string]string{"a": "b"}, Internal: true}); err != nil {
		t.Fatal(err)
	}
	ep := attach(t, m, "web", "app", AttachOptions{})
	n, err := m.Inspect(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(n)
	var got map[string]any
	json.Unmarshal(b, &got)
	for key, want := range map[string]any{
		"Name": "app", "Scope": "local", "Driver": "bridge", "EnableIPv6": true, "EnableIPv4": true, "Internal": true,
		"Labels": map[string]any{"a": "b"}, "Attachable": false,
	} {
		if g, _ := json.Marshal(got[key]); string(g) != mustJSON(want) {
			t.Errorf("inspect %s = %s, want %s", key, g, mustJSON(want))
		}
	}
	ipamJSON, _ := json.Marshal(got["IPAM"])
	if want := `{"Config":[{"Gateway":"10.1.0.1","Subnet":"10.1.0.0/24"},{"Gateway":"fd00:1::1","Subnet":"fd00:1::/64"}],"Driver":"default","Options":{}}`; string(ipamJSON) != want {
		t.Errorf("inspect IPAM = %s, want %s", ipamJSON, want)
	}
	c, _ := json.Marshal(got["Containers"])
	want := `{"` + ep.ContainerID + `":{"EndpointID":"` + ep.ID + `","IPv4Address":"10.1.0.2/24","IPv6Address":"fd00:1::2/64","MacAddress":"02:42:0a:01:00:02","Name":"web"}}`
	if string(c) != want {
		t.Errorf("inspect Containers = %s, want %s", c, want)
	}
	if _, err := m.Inspect(ctx, n.ID[:6]); err != nil {
		t.Errorf("Inspect by ID prefix: %v", err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

var _ = store.Version

// TestRelease: Release frees the records, addresses, ports and rules of a
// container at once and leaves its links to the namespace's destruction;
// DetachAll deletes them.
func TestRelease(t *testing.T) {
	m, k, _ := newTestManager(t)
	a := attach(t, m, "a", "bridge", AttachOptions{Ports: []PortRequest{{Proto: "tcp", HostPort: 8080, ContainerPort: 80}}})
	b := attach(t, m, "b", "bridge", AttachOptions{})
	applies := k.applies
	if err := m.Release(ctx, a.ContainerID); err != nil {
		t.Fatal(err)
	}
	if eps, _ := m.Endpoints(ctx, a.ContainerID); len(eps) != 0 {
		t.Errorf("after Release: endpoints %v", eps)
	}
	if _, ok := k.links[a.HostIf]; !ok {
		t.Errorf("Release deleted the veth %s: the namespace's destruction does", a.HostIf)
	}
	if k.applies != applies+1 {
		t.Errorf("Release applied the rules %d times, want once", k.applies-applies)
	}
	if pm, _ := m.PortMap(ctx, a.ContainerID); len(pm) != 0 {
		t.Errorf("after Release: ports %v", pm)
	}
	// Its port and address are free again.
	attach(t, m, "c", "bridge", AttachOptions{Ports: []PortRequest{{Proto: "tcp", HostPort: 8080, ContainerPort: 80}}})
	if err := m.DetachAll(ctx, b.ContainerID); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.links[b.HostIf]; ok {
		t.Errorf("DetachAll left the veth %s", b.HostIf)
	}
	if err := m.Release(ctx, "nosuch"); err != nil {
		t.Errorf("Release of a container without endpoints = %v", err)
	}
}

func TestValidName(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "net_1.x-y": true, "9": true, "Z.": true,
		"": false, "_a": false, ".a": false, "-a": false, "a b": false, "a/b": false, "é": false, "a:b": false,
	} {
		if got := validName(s); got != want {
			t.Errorf("validName(%q) = %v, want %v", s, got, want)
		}
	}
}

// The redirections the kernel is given follow the records in the same
// calls as the rules: every TCP port, with the container's IPv4 and IPv6
// addresses (UDP and --internal networks keep DNAT alone, or nothing),
// "every address" left to the kernel side to expand (0.0.0.0: IPv4 ones
// only); gone with the endpoint.
func TestRedirects(t *testing.T) {
	m, k, _ := newTestManager(t)
	if _, err := m.Create(ctx, CreateOptions{Name: "v6", IPv6: true, Subnets: []netip.Prefix{pfx("10.9.0.0/24"), pfx("fd00:9::/64")}}); err != nil {
		t.Fatal(err)
	}
	a := attach(t, m, "a", "v6", AttachOptions{Ports: []PortRequest{
		{Proto: "tcp", HostPort: 8080, ContainerPort: 80},
		{Proto: "udp", HostPort: 8080, ContainerPort: 53},
		{Proto: "tcp", HostIP: ip("127.0.0.1"), HostPort: 8081, ContainerPort: 81},
		{Proto: "tcp", HostIP: ip("0.0.0.0"), HostPort: 8082, ContainerPort: 82},
		{Proto: "tcp", HostIP: ip("fd00:9::1"), HostPort: 8083, ContainerPort: 83},
	}})
	to := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(a.IPv4.Addr(), port) }
	to6 := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(a.IPv6.Addr(), port) }
	want := []Redirect{
		{HostPort: 8080, To: to(80), To6: to6(80)},
		{HostIP: ip("127.0.0.1"), HostPort: 8081, To: to(81), To6: to6(81)},
		{HostIP: ip("0.0.0.0"), HostPort: 8082, To: to(82), To6: to6(82)},
		{HostIP: ip("fd00:9::1"), HostPort: 8083, To: to(83), To6: to6(83)},
	}
	if !slices.Equal(k.redirects, want) {
		t.Errorf("redirects = %v, want %v", k.redirects, want)
	}
	if _, err := m.Create(ctx, CreateOptions{Name: "in", Internal: true}); err != nil {
		t.Fatal(err)
	}
	attach(t, m, "b", "in", AttachOptions{Ports: []PortRequest{{Proto: "tcp", HostPort: 9090, ContainerPort: 80}}})
	if !slices.Equal(k.redirects, want) {
		t.Errorf("after a container on an internal network publishes: redirects = %v, want %v", k.redirects, want)
	}
	if err := m.DetachAll(ctx, a.ContainerID); err != nil {
		t.Fatal(err)
	}
	if len(k.redirects) != 0 {
		t.Errorf("after detach: redirects = %v", k.redirects)
	}
	// An IPv4-only container: [::1] is accepted where the redirection
	// is, and goes to the IPv4 address (To6 none); no DNAT rule for it.
	withRedirect(t, true)
	c := attach(t, m, "c", "bridge", AttachOptions{Ports: []PortRequest{
		{Proto: "tcp", HostPort: 8090, ContainerPort: 80},
		{Proto: "tcp", HostIP: ip("::1"), HostPort: 8091, ContainerPort: 81},
	}})
	cto := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(c.IPv4.Addr(), port) }
	if want := []Redirect{{HostPort: 8090, To: cto(80)}, {HostIP: ip("::1"), HostPort: 8091, To: cto(81)}}; !slices.Equal(k.redirects, want) {
		t.Errorf("IPv4-only container: redirects = %v, want %v", k.redirects, want)
	}
	for _, tb := range k.rules {
		if strings.Contains(tb.String(), "8091") {
			t.Errorf("a rule for [::1]:8091:\n%s", tb)
		}
	}
	if _, err := m.Attach(ctx, AttachOptions{ContainerID: "d", ContainerName: "d", NetNS: "/d", Network: "bridge",
		Ports: []PortRequest{{Proto: "tcp", HostIP: ip("fd00::5"), HostPort: 8092, ContainerPort: 80}}}); err == nil || !strings.Contains(err.Error(), "no IPv6") {
		t.Errorf("a global IPv6 host address on an IPv4 network = %v, want refused (no IPv6)", err)
	}
	pm, _ := m.PortMap(ctx, c.ContainerID)
	if bs := pm[network.MustParsePort("80/tcp")]; len(bs) != 2 || bs[0].HostIP != ip("0.0.0.0") || bs[1].HostIP != ip("::") || bs[1].HostPort != "8090" {
		t.Errorf("PortMap[80/tcp] of an IPv4-only container with the redirection = %v, want 0.0.0.0 and :: (as Docker)", bs)
	}
	if bs := pm[network.MustParsePort("81/tcp")]; len(bs) != 1 || bs[0].HostIP != ip("::1") {
		t.Errorf("PortMap[81/tcp] = %v, want [::1] only", bs)
	}
	withRedirect(t, false)
	if _, err := m.Attach(ctx, AttachOptions{ContainerID: "e", ContainerName: "e", NetNS: "/e", Network: "bridge",
		Ports: []PortRequest{{Proto: "tcp", HostIP: ip("::1"), HostPort: 8093, ContainerPort: 80}}}); err == nil || !strings.Contains(err.Error(), "IPv6 loopback is not supported") {
		t.Errorf("[::1] without the redirection = %v, want refused with the reason", err)
	}
	pm, _ = m.PortMap(ctx, c.ContainerID)
	if bs := pm[network.MustParsePort("80/tcp")]; len(bs) != 1 {
		t.Errorf("PortMap[80/tcp] without the redirection = %v, want 0.0.0.0 only", bs)
	}
}

func TestRedirectName(t *testing.T) {
	a, b := RedirectName("/var/lib/berth/network"), RedirectName("/tmp/x/root/network")
	if a == b || !strings.HasPrefix(a, "berth-") || len(a) != len("berth-")+12 {
		t.Errorf("RedirectName = %q, %q; want berth-HEX12, one per store", a, b)
	}
}
