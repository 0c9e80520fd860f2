package network

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/network"

	"github.com/berthproject/berth/internal/network/ipam"
	"github.com/berthproject/berth/internal/network/link"
	"github.com/berthproject/berth/internal/network/store"
)

// CreateOptions are `network create`'s flags.
type CreateOptions struct {
	Name string
	// Subnets: at most one IPv4 and (with IPv6) one IPv6 subnet; none: one
	// is picked from the free private ranges.
	Subnets []netip.Prefix
	// Gateways and IPRanges belong to the subnet that contains them.
	Gateways []netip.Addr
	IPRanges []netip.Prefix
	Internal bool
	IPv6     bool
	Labels   map[string]string
	Options  map[string]string
}

// validName is Docker's rule for network names: [a-zA-Z0-9][a-zA-Z0-9_.-]*.
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return s != ""
}

// Candidate subnets for networks created without --subnet, in order (like
// Docker's default pools, without docker0's 172.17.0.0/16).
func candidateSubnets() []netip.Prefix {
	var out []netip.Prefix
	for i := 18; i <= 31; i++ {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(i), 0, 0}), 16))
	}
	for i := 0; i < 256; i += 16 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i), 0}), 20))
	}
	return out
}

// Create creates a user-defined bridge network and its bridge.
func (m *Manager) Create(ctx context.Context, o CreateOptions) (network.Inspect, error) {
	if !validName(o.Name) {
		return network.Inspect{}, fmt.Errorf("%w: network name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", ErrInvalid, o.Name)
	}
	if o.Name == NameBridge || o.Name == NameHost || o.Name == NameNone {
		return network.Inspect{}, fmt.Errorf("%w: network name %s is a predefined network", ErrForbidden, o.Name)
	}
	if _, ok := o.Options[OptionBridgeName]; ok {
		return network.Inspect{}, fmt.Errorf("%w: option %s: berth names its bridges itself", ErrInvalid, OptionBridgeName)
	}
	mtu := DefaultMTU
	if v, ok := o.Options[OptionMTU]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 68 || n > 65535 {
			return network.Inspect{}, fmt.Errorf("%w: option %s=%q: want a number from 68 to 65535", ErrInvalid, OptionMTU, v)
		}
		mtu = n
	}
	if v, ok := o.Options[OptionMasquerade]; ok && v != "true" && v != "false" {
		return network.Inspect{}, fmt.Errorf("%w: option %s=%q: want true or false", ErrInvalid, OptionMasquerade, v)
	}
	var out *store.Network
	err := m.update(func(st *store.State, k kernel) error {
		for _, n := range st.Networks {
			if n.Name == o.Name {
				return fmt.Errorf("%w: network with name %s already exists", ErrConflict, o.Name)
			}
		}
		id := newID()
		n := &store.Network{
			ID: id, Name: o.Name, Driver: DriverBridge, Created: time.Now().UTC(),
			Bridge: "berth-" + id[:9], MTU: mtu, Internal: o.Internal, IPv6: o.IPv6,
			Labels: maps.Clone(o.Labels), Options: maps.Clone(o.Options),
		}
		if err := m.addressNetwork(st, k, n, o); err != nil {
			return err
		}
		if err := k.EnsureBridge(bridgeOf(n)); err != nil {
			k.DeleteLink(n.Bridge)
			return err
		}
		st.Networks[id] = n
		if err := m.applyRules(st, k); err != nil {
			delete(st.Networks, id)
			k.DeleteLink(n.Bridge)
			return err
		}
		out = n
		return nil
	})
	if err != nil {
		return network.Inspect{}, err
	}
	st, err := m.store.Read()
	if err != nil {
		return network.Inspect{}, err
	}
	return inspect(st, out), nil
}

// addressNetwork gives a new network its subnets, gateways and ranges.
func (m *Manager) addressNetwork(st *store.State, k kernel, n *store.Network, o CreateOptions) error {
	var sub4, sub6 netip.Prefix
	for _, s := range o.Subnets {
		switch {
		case !s.IsValid():
			return fmt.Errorf("%w: --subnet is empty", ErrInvalid)
		case s.Addr().Is4() && !sub4.IsValid():
			sub4 = s
		case s.Addr().Is6() && !sub6.IsValid():
			sub6 = s
		default:
			return fmt.Errorf("%w: --subnet %s: one subnet per address family", ErrInvalid, s)
		}
	}
	if sub6.IsValid() && !o.IPv6 {
		return fmt.Errorf("%w: --subnet %s is IPv6: add --ipv6", ErrInvalid, sub6)
	}
	pick := func(p netip.Prefix, what string) (netip.Prefix, netip.Addr, netip.Prefix, error) {
		var gw netip.Addr
		var rng netip.Prefix
		for _, g := range o.Gateways {
			if g.Is4() == p.Addr().Is4() {
				if gw.IsValid() {
					return netip.Prefix{}, netip.Addr{}, netip.Prefix{}, fmt.Errorf("%w: --gateway %s: one gateway per subnet", ErrInvalid, g)
				}
				gw = g
			}
		}
		for _, r := range o.IPRanges {
			if r.Addr().Is4() == p.Addr().Is4() {
				if rng.IsValid() {
					return netip.Prefix{}, netip.Addr{}, netip.Prefix{}, fmt.Errorf("%w: --ip-range %s: one range per subnet", ErrInvalid, r)
				}
				rng = r
			}
		}
		pool, err := ipam.NewPool(p, rng, gw)
		if err != nil {
			return netip.Prefix{}, netip.Addr{}, netip.Prefix{}, fmt.Errorf("%w: %s: %v", ErrInvalid, what, err)
		}
		for _, other := range st.Networks {
			if overlaps(other, p) {
				sub := other.Subnet
				if p.Addr().Is6() {
					sub = other.Subnet6
				}
				return netip.Prefix{}, netip.Addr{}, netip.Prefix{}, fmt.Errorf("%w: subnet %s overlaps network %s (%s)", ErrConflict, p, other.Name, sub)
			}
		}
		if rng == pool.Subnet {
			rng = netip.Prefix{}
		}
		return pool.Subnet, pool.Gateway, rng, nil
	}
	for _, g := range o.Gateways {
		if (g.Is4() && !sub4.IsValid()) || (g.Is6() && !sub6.IsValid()) {
			return fmt.Errorf("%w: --gateway %s needs a --subnet of its family", ErrInvalid, g)
		}
	}
	for _, r := range o.IPRanges {
		if (r.Addr().Is4() && !sub4.IsValid()) || (r.Addr().Is6() && !sub6.IsValid()) {
			return fmt.Errorf("%w: --ip-range %s needs a --subnet of its family", ErrInvalid, r)
		}
	}
	if !sub4.IsValid() {
		var err error
		if sub4, err = freeSubnet(st, k); err != nil {
			return err
		}
	}
	var err error
	if n.Subnet, n.Gateway, n.IPRange, err = pick(sub4, "--subnet "+sub4.String()); err != nil {
		return err
	}
	if o.IPv6 {
		if !sub6.IsValid() {
			sub6 = randomULA()
		}
		if n.Subnet6, n.Gateway6, n.IPRange6, err = pick(sub6, "--subnet "+sub6.String()); err != nil {
			return err
		}
	}
	return nil
}

// freeSubnet picks the first candidate subnet no network and no host route
// uses.
func freeSubnet(st *store.State, k kernel) (netip.Prefix, error) {
	routes, err := k.Routes()
	if err != nil {
		return netip.Prefix{}, err
	}
	mine := map[netip.Prefix]bool{}
	for _, n := range st.Networks {
		mine[n.Subnet] = true
	}
next:
	for _, c := range candidateSubnets() {
		for _, n := range st.Networks {
			if overlaps(n, c) {
				continue next
			}
		}
		for _, r := range routes {
			// A default route covers everything and says nothing.
			if r.Bits() > 0 && r.Addr().Is4() && r.Overlaps(c) && !mine[r] {
				continue next
			}
		}
		return c, nil
	}
	return netip.Prefix{}, fmt.Errorf("%w: no free subnet left for a new network: give one with --subnet", ErrConflict)
}

// randomULA is a random IPv6 unique local /64 (RFC 4193), for --ipv6
// without an IPv6 --subnet.
func randomULA() netip.Prefix {
	var b [16]byte
	b[0] = 0xfd
	copy(b[1:6], mustRandom(5))
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

func mustRandom(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

func bridgeOf(n *store.Network) link.Bridge {
	b := link.Bridge{Name: n.Bridge, Alias: aliasNetwork + n.ID, MTU: n.MTU, MAC: bridgeMAC(n.ID)}
	if n.MTU == 0 {
		b.MTU = DefaultMTU
	}
	if n.Gateway.IsValid() {
		b.Addrs = append(b.Addrs, netip.PrefixFrom(n.Gateway, n.Subnet.Bits()))
	}
	if n.Gateway6.IsValid() {
		b.Addrs = append(b.Addrs, netip.PrefixFrom(n.Gateway6, n.Subnet6.Bits()))
	}
	return b
}

// bridgeMAC is a network's bridge address: locally administered, unicast,
// the same whenever the bridge is made again (after a reboot), and unlike
// the containers' 02:42:... addresses.
func bridgeMAC(id string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(id))
	return net.HardwareAddr{0x02, 0xb7, sum[0], sum[1], sum[2], sum[3]}
}

// Link aliases that mark what berth owns.
const (
	aliasNetwork  = link.AliasPrefix + "net:"
	aliasEndpoint = link.AliasPrefix + "ep:"
)

// Remove removes a user-defined network with no containers, and its bridge.
func (m *Manager) Remove(ctx context.Context, ref string) error {
	err := m.update(func(st *store.State, k kernel) error {
		n, err := lookup(st, ref)
		if err != nil {
			return err
		}
		return m.remove(st, k, n)
	})
	if err != nil {
		return err
	}
	m.syncDNS(ctx, false)
	return nil
}

func (m *Manager) remove(st *store.State, k kernel, n *store.Network) error {
	if n.Default || n.Driver != DriverBridge {
		return fmt.Errorf("%w: %s is a pre-defined network and cannot be removed", ErrForbidden, n.Name)
	}
	if eps := st.NetworkEndpoints(n.ID); len(eps) > 0 {
		var names []string
		for _, e := range eps {
			names = append(names, e.ContainerName)
		}
		return fmt.Errorf("%w: network %s has active endpoints (containers %v)", ErrConflict, n.Name, names)
	}
	delete(st.Networks, n.ID)
	if err := m.applyRules(st, k); err != nil {
		st.Networks[n.ID] = n
		return err
	}
	if err := k.DeleteLink(n.Bridge); err != nil {
		// The record is gone; Reconcile removes the orphaned bridge.
		m.log.Warn("remove bridge", "network", n.Name, "err", err)
	}
	return nil
}

// Prune removes the user-defined networks no container uses, those match
// accepts (all when match is nil), and returns their names.
func (m *Manager) Prune(ctx context.Context, match func(network.Inspect) bool) ([]string, error) {
	var removed []string
	err := m.update(func(st *store.State, k kernel) error {
		for _, n := range st.SortedNetworks() {
			if n.Default || n.Driver != DriverBridge || len(st.NetworkEndpoints(n.ID)) > 0 {
				continue
			}
			if match != nil && !match(inspect(st, n)) {
				continue
			}
			if err := m.remove(st, k, n); err != nil {
				return err
			}
			removed = append(removed, n.Name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(removed) > 0 {
		m.syncDNS(ctx, false)
	}
	return removed, nil
}

// List returns every network as `network inspect` shows it, sorted by name.
func (m *Manager) List(ctx context.Context) ([]network.Inspect, error) {
	st, err := m.read()
	if err != nil {
		return nil, err
	}
	var out []network.Inspect
	for _, n := range st.SortedNetworks() {
		out = append(out, inspect(st, n))
	}
	return out, nil
}

// Inspect returns one network (by name, ID or unique ID prefix).
func (m *Manager) Inspect(ctx context.Context, ref string) (network.Inspect, error) {
	st, err := m.read()
	if err != nil {
		return network.Inspect{}, err
	}
	n, err := lookup(st, ref)
	if err != nil {
		return network.Inspect{}, err
	}
	return inspect(st, n), nil
}

// inspect is Docker's `network inspect` view of a record.
func inspect(st *store.State, n *store.Network) network.Inspect {
	out := network.Inspect{
		Network: network.Network{
			Name: n.Name, ID: n.ID, Created: n.Created, Scope: "local", Driver: n.Driver,
			EnableIPv4: n.Driver == DriverBridge, EnableIPv6: n.IPv6, Internal: n.Internal,
			IPAM:    network.IPAM{Driver: "default", Options: map[string]string{}, Config: []network.IPAMConfig{}},
			Options: map[string]string{}, Labels: map[string]string{},
		},
		Containers: map[string]network.EndpointResource{},
	}
	maps.Copy(out.Labels, n.Labels)
	maps.Copy(out.Options, n.Options)
	if n.Default {
		out.Options[optionDefault] = "true"
		out.Options[OptionBridgeName] = n.Bridge
		out.Options[OptionMTU] = strconv.Itoa(DefaultMTU)
	}
	if n.Subnet.IsValid() {
		out.IPAM.Config = append(out.IPAM.Config, network.IPAMConfig{Subnet: n.Subnet, Gateway: n.Gateway, IPRange: n.IPRange})
	}
	if n.Subnet6.IsValid() {
		out.IPAM.Config = append(out.IPAM.Config, network.IPAMConfig{Subnet: n.Subnet6, Gateway: n.Gateway6, IPRange: n.IPRange6})
	}
	for _, e := range st.NetworkEndpoints(n.ID) {
		r := network.EndpointResource{Name: e.ContainerName, EndpointID: e.ID, MacAddress: network.HardwareAddr(parseMAC(e.MAC))}
		if e.IPv4.IsValid() {
			r.IPv4Address = netip.PrefixFrom(e.IPv4, n.Subnet.Bits())
		}
		if e.IPv6.IsValid() {
			r.IPv6Address = netip.PrefixFrom(e.IPv6, n.Subnet6.Bits())
		}
		out.Containers[e.ContainerID] = r
	}
	return out
}

// syncDNS tells the DNS server about a change; start says whether to start
// it when it does not run.
func (m *Manager) syncDNS(ctx context.Context, start bool) error {
	if m.cfg.DNS == nil {
		return nil
	}
	var err error
	if start {
		err = m.cfg.DNS.Sync(ctx)
	} else {
		err = m.cfg.DNS.SyncIfRunning(ctx)
	}
	if err != nil && !start {
		m.log.Warn("embedded DNS server", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("embedded DNS server: %w", err)
	}
	return nil
}
