package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/network"

	"github.com/berthproject/berth/internal/network/ipam"
	"github.com/berthproject/berth/internal/network/link"
	"github.com/berthproject/berth/internal/network/store"
)

// AttachOptions say how a container joins a network.
type AttachOptions struct {
	ContainerID string
	// ContainerName is resolved by the embedded DNS server (with the
	// aliases and the short container ID) on user-defined networks.
	ContainerName string
	// NetNS is the path of the container's network namespace: a file
	// bind-mounted by netns.Create, or /proc/PID/ns/net.
	NetNS   string
	Network string // name, ID or unique ID prefix

	IPv4, IPv6 netip.Addr       // --ip, --ip6; zero: the next free address
	MAC        net.HardwareAddr // --mac-address; nil: 02:42 and the IPv4 address, like Docker
	Aliases    []string         // --network-alias
	// Links are --link NAME:ALIAS on a user-defined network, ALIAS -> NAME:
	// the embedded DNS server answers ALIAS with NAME's addresses to this
	// container only (ignored on the default bridge, where the engine
	// writes links into /etc/hosts).
	Links map[string]string
	// DNS are the container's --dns servers: the embedded server forwards
	// its other names to them rather than to the host's resolvers.
	DNS   []netip.Addr
	Ports []PortRequest // -p and -P, already expanded (see PortRequests)
}

// Endpoint is a container's attachment to a network.
type Endpoint struct {
	ID            string
	NetworkID     string
	NetworkName   string
	ContainerID   string
	ContainerName string
	NetNS         string
	IfName        string // inside the container
	HostIf        string // the host end of the veth pair
	MAC           net.HardwareAddr
	IPv4          netip.Prefix // address with the subnet's prefix length
	IPv6          netip.Prefix
	Gateway       netip.Addr // the network's gateways
	Gateway6      netip.Addr
	// DefaultRoute says the container's default routes go through here.
	DefaultRoute bool
	Internal     bool
	Aliases      []string
	// DNSNames are the names the embedded DNS server answers with this
	// endpoint's addresses (user-defined networks only).
	DNSNames []string
	Ports    []store.Port
}

// Settings is the endpoint as Docker's container inspect shows it under
// NetworkSettings.Networks.
func (e *Endpoint) Settings() *network.EndpointSettings {
	s := &network.EndpointSettings{
		Aliases: slices.Clone(e.Aliases), NetworkID: e.NetworkID, EndpointID: e.ID,
		MacAddress: network.HardwareAddr(e.MAC), DNSNames: slices.Clone(e.DNSNames),
		Gateway: e.Gateway, IPAddress: e.IPv4.Addr(), IPPrefixLen: e.IPv4.Bits(),
	}
	if e.IPv6.IsValid() {
		s.IPv6Gateway, s.GlobalIPv6Address, s.GlobalIPv6PrefixLen = e.Gateway6, e.IPv6.Addr(), e.IPv6.Bits()
	}
	return s
}

func endpointOf(n *store.Network, e *store.Endpoint) *Endpoint {
	out := &Endpoint{
		ID: e.ID, NetworkID: n.ID, NetworkName: n.Name, ContainerID: e.ContainerID, ContainerName: e.ContainerName,
		NetNS: e.NetNS, IfName: e.IfName, HostIf: e.HostIf, MAC: parseMAC(e.MAC),
		Gateway: n.Gateway, Gateway6: n.Gateway6, DefaultRoute: e.Gateway, Internal: n.Internal,
		Aliases: slices.Clone(e.Aliases), Ports: slices.Clone(e.Ports),
	}
	if e.IPv4.IsValid() {
		out.IPv4 = netip.PrefixFrom(e.IPv4, n.Subnet.Bits())
	}
	if e.IPv6.IsValid() {
		out.IPv6 = netip.PrefixFrom(e.IPv6, n.Subnet6.Bits())
	}
	if !n.Default {
		out.DNSNames = DNSNames(e)
	}
	return out
}

// DNSNames are the names of an endpoint on a user-defined network: the
// container's name, its short ID and its aliases (Docker's list).
func DNSNames(e *store.Endpoint) []string {
	var out []string
	for _, n := range append([]string{e.ContainerName, short(e.ContainerID)}, e.Aliases...) {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func parseMAC(s string) net.HardwareAddr {
	m, _ := net.ParseMAC(s)
	return m
}

// Attach connects a container's network namespace to a bridge network: a
// veth pair (host end on the bridge, the other end ethN in the namespace
// with the container's addresses and, on its first non-internal network,
// default routes via the gateways), its published ports, and its names in
// the embedded DNS server. It serves `run` (before the process starts) and
// `network connect` (on a running container) alike. On error nothing is
// left behind.
func (m *Manager) Attach(ctx context.Context, o AttachOptions) (*Endpoint, error) {
	if o.ContainerID == "" {
		return nil, fmt.Errorf("%w: attach: container ID is empty", ErrInvalid)
	}
	if o.NetNS == "" {
		return nil, fmt.Errorf("%w: attach %s: network namespace path is empty", ErrInvalid, o.ContainerID)
	}
	if o.MAC != nil && (len(o.MAC) != 6 || o.MAC[0]&1 != 0 || isZero(o.MAC)) {
		return nil, fmt.Errorf("%w: --mac-address %s: want a unicast Ethernet address", ErrInvalid, o.MAC)
	}
	var out *Endpoint
	var userNet bool
	err := m.update(func(st *store.State, k kernel) error {
		n, err := lookup(st, o.Network)
		if err != nil {
			return err
		}
		if n.Driver != DriverBridge {
			return fmt.Errorf("%w: network %s: a container joins host or none by its network mode, not by attaching", ErrInvalid, n.Name)
		}
		e, err := m.newEndpoint(st, k, n, o)
		if err != nil {
			return err
		}
		if err := k.EnsureBridge(bridgeOf(n)); err != nil {
			return err
		}
		if err := k.AddVeth(vethOf(n, e)); err != nil {
			return err
		}
		st.Endpoints[e.ID] = e
		if err := m.applyRules(st, k); err != nil {
			delete(st.Endpoints, e.ID)
			k.DeleteLink(e.HostIf)
			return err
		}
		if e.IPv4.IsValid() {
			n.Last4 = e.IPv4
		}
		if e.IPv6.IsValid() {
			n.Last6 = e.IPv6
		}
		out, userNet = endpointOf(n, e), !n.Default
		return nil
	})
	if err != nil {
		return nil, err
	}
	if userNet {
		if err := m.syncDNS(ctx, true); err != nil {
			if derr := m.Detach(context.WithoutCancel(ctx), o.ContainerID, out.NetworkID); derr != nil {
				err = errors.Join(err, derr)
			}
			return nil, fmt.Errorf("attach %s to %s: %w", o.ContainerID, out.NetworkName, err)
		}
	}
	return out, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// newEndpoint checks the request against the records and fills in the
// endpoint: addresses, MAC, interface names, host ports.
func (m *Manager) newEndpoint(st *store.State, k kernel, n *store.Network, o AttachOptions) (*store.Endpoint, error) {
	mine := st.ContainerEndpoints(o.ContainerID)
	for _, e := range mine {
		if e.NetworkID == n.ID {
			return nil, fmt.Errorf("%w: container %s is already attached to network %s", ErrConflict, nameOr(o), n.Name)
		}
	}
	if n.Default && len(o.Aliases) > 0 {
		return nil, fmt.Errorf("%w: --network-alias: network-scoped aliases are supported only on user-defined networks", ErrInvalid)
	}
	if n.Default && (o.IPv4.IsValid() || o.IPv6.IsValid()) {
		return nil, fmt.Errorf("%w: --ip: user-specified addresses are supported only on user-defined networks", ErrInvalid)
	}
	if o.IPv6.IsValid() && !n.IPv6 {
		return nil, fmt.Errorf("%w: --ip6 %s: network %s has no IPv6", ErrInvalid, o.IPv6, n.Name)
	}
	if o.IPv4.IsValid() && !o.IPv4.Unmap().Is4() {
		return nil, fmt.Errorf("%w: --ip %s is not an IPv4 address", ErrInvalid, o.IPv4)
	}
	if !n.Default && o.ContainerName != "" {
		for _, e := range st.NetworkEndpoints(n.ID) {
			if e.ContainerName == o.ContainerName {
				return nil, fmt.Errorf("%w: network %s already has a container named %s", ErrConflict, n.Name, o.ContainerName)
			}
		}
	}
	for _, a := range o.Aliases {
		if a == "" || strings.ContainsAny(a, " \t") {
			return nil, fmt.Errorf("%w: --network-alias %q", ErrInvalid, a)
		}
	}
	inUse := func(nw string, v6 bool) func(netip.Addr) bool {
		return func(a netip.Addr) bool {
			for _, e := range st.Endpoints {
				if e.NetworkID == nw && ((!v6 && e.IPv4 == a) || (v6 && e.IPv6 == a)) {
					return true
				}
			}
			return false
		}
	}
	e := &store.Endpoint{
		ID: newID(), NetworkID: n.ID, ContainerID: o.ContainerID, ContainerName: o.ContainerName,
		Created: time.Now().UTC(), NetNS: o.NetNS, Aliases: slices.Clone(o.Aliases), DNS: slices.Clone(o.DNS),
	}
	if !n.Default {
		for alias, name := range o.Links {
			if e.Links == nil {
				e.Links = map[string]string{}
			}
			e.Links[strings.ToLower(alias)] = name
		}
	}
	pool, err := ipam.NewPool(n.Subnet, n.IPRange, n.Gateway)
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", n.Name, err)
	}
	if o.IPv4.IsValid() {
		e.IPv4, err = pool.Claim(o.IPv4, inUse(n.ID, false))
	} else {
		e.IPv4, err = pool.Allocate(n.Last4, inUse(n.ID, false))
	}
	if err != nil {
		return nil, ipamError(n, err)
	}
	if n.IPv6 {
		pool6, err := ipam.NewPool(n.Subnet6, n.IPRange6, n.Gateway6)
		if err != nil {
			return nil, fmt.Errorf("network %s: %w", n.Name, err)
		}
		if o.IPv6.IsValid() {
			e.IPv6, err = pool6.Claim(o.IPv6, inUse(n.ID, true))
		} else {
			e.IPv6, err = pool6.Allocate(n.Last6, inUse(n.ID, true))
		}
		if err != nil {
			return nil, ipamError(n, err)
		}
	}
	if o.MAC != nil {
		e.MAC = o.MAC.String()
	} else {
		a := e.IPv4.As4()
		e.MAC = net.HardwareAddr{0x02, 0x42, a[0], a[1], a[2], a[3]}.String()
	}
	e.IfName = freeIfName(mine)
	e.HostIf = "veth" + randomHex(8)
	e.Gateway = !n.Internal && !slices.ContainsFunc(mine, func(e *store.Endpoint) bool { return e.Gateway })
	if e.Ports, err = m.assignPorts(st, k, n, e, o.Ports); err != nil {
		return nil, err
	}
	return e, nil
}

func nameOr(o AttachOptions) string {
	if o.ContainerName != "" {
		return o.ContainerName
	}
	return short(o.ContainerID)
}

func ipamError(n *store.Network, err error) error {
	switch {
	case errors.Is(err, ipam.ErrInUse):
		return fmt.Errorf("%w: network %s: %v", ErrConflict, n.Name, err)
	case errors.Is(err, ipam.ErrExhausted):
		return fmt.Errorf("%w: network %s: %v", ErrConflict, n.Name, err)
	}
	return fmt.Errorf("%w: network %s: %v", ErrInvalid, n.Name, err)
}

// freeIfName is the first ethN the container does not use yet.
func freeIfName(eps []*store.Endpoint) string {
	for i := 0; ; i++ {
		name := fmt.Sprintf("eth%d", i)
		if !slices.ContainsFunc(eps, func(e *store.Endpoint) bool { return e.IfName == name }) {
			return name
		}
	}
}

func vethOf(n *store.Network, e *store.Endpoint) link.Veth {
	v := link.Veth{
		HostName: e.HostIf, Alias: aliasEndpoint + e.ID, Bridge: n.Bridge, MTU: n.MTU,
		NetNS: e.NetNS, IfName: e.IfName, MAC: parseMAC(e.MAC),
	}
	if v.MTU == 0 {
		v.MTU = DefaultMTU
	}
	if e.IPv4.IsValid() {
		v.Addrs = append(v.Addrs, netip.PrefixFrom(e.IPv4, n.Subnet.Bits()))
	}
	if e.IPv6.IsValid() {
		v.Addrs = append(v.Addrs, netip.PrefixFrom(e.IPv6, n.Subnet6.Bits()))
	}
	if e.Gateway {
		v.Gateways = gateways(n)
	}
	return v
}

func gateways(n *store.Network) []netip.Addr {
	var gws []netip.Addr
	if n.Gateway.IsValid() {
		gws = append(gws, n.Gateway)
	}
	if n.IPv6 && n.Gateway6.IsValid() {
		gws = append(gws, n.Gateway6)
	}
	return gws
}

// Detach disconnects a container from one network: its veth pair, its
// published ports and its DNS names go. `network disconnect` uses it on a
// running container.
func (m *Manager) Detach(ctx context.Context, containerID, networkRef string) error {
	var errs []error
	var userNet bool
	err := m.update(func(st *store.State, k kernel) error {
		n, err := lookup(st, networkRef)
		if err != nil {
			return err
		}
		for _, e := range st.ContainerEndpoints(containerID) {
			if e.NetworkID == n.ID {
				errs, userNet = m.detach(st, k, e), !n.Default
				return nil
			}
		}
		return fmt.Errorf("%w: container %s is not attached to network %s", ErrNotFound, short(containerID), n.Name)
	})
	if err != nil {
		return err
	}
	if userNet {
		m.syncDNS(ctx, false)
	}
	return errors.Join(errs...)
}

// DetachAll disconnects a container from every network (it stopped).
func (m *Manager) DetachAll(ctx context.Context, containerID string) error {
	return m.detachAll(ctx, containerID, true)
}

// Release is DetachAll for a container whose network namespace is about to
// be destroyed with no process left in it: its records, addresses, ports
// and rules go now, and its veth pairs go with the namespace (the kernel
// deletes a pair when the namespace of one end is destroyed, in the
// background), where deleting them here would wait for the kernel's RCU
// grace periods (~20-30 ms a link on a busy host). Links the kernel has not
// deleted yet carry no address of the host's and no record; Reconcile
// deletes any that outlive their namespace.
func (m *Manager) Release(ctx context.Context, containerID string) error {
	return m.detachAll(ctx, containerID, false)
}

func (m *Manager) detachAll(ctx context.Context, containerID string, deleteLinks bool) error {
	var errs []error
	var userNet bool
	err := m.update(func(st *store.State, k kernel) error {
		eps := st.ContainerEndpoints(containerID)
		if len(eps) == 0 {
			return nil
		}
		for _, e := range eps {
			userNet = userNet || !st.Networks[e.NetworkID].Default
			delete(st.Endpoints, e.ID)
			if deleteLinks {
				if err := k.DeleteLink(e.HostIf); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if err := m.applyRules(st, k); err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if userNet {
		m.syncDNS(ctx, false)
	}
	return errors.Join(errs...)
}

// detach removes an endpoint from the records and the kernel. The records
// change even if the kernel refuses: they are what Reconcile repairs from.
func (m *Manager) detach(st *store.State, k kernel, e *store.Endpoint) []error {
	var errs []error
	delete(st.Endpoints, e.ID)
	if err := k.DeleteLink(e.HostIf); err != nil {
		errs = append(errs, err)
	}
	if e.Gateway {
		if err := m.moveDefaultRoute(st, k, e.ContainerID); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.applyRules(st, k); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// moveDefaultRoute gives a container's default routes to its oldest
// remaining non-internal endpoint, after the one that had them left.
func (m *Manager) moveDefaultRoute(st *store.State, k kernel, containerID string) error {
	for _, o := range st.ContainerEndpoints(containerID) {
		n := st.Networks[o.NetworkID]
		if n == nil || n.Internal {
			continue
		}
		o.Gateway = true
		if !k.NetNSAlive(o.NetNS) {
			return nil
		}
		return k.SetDefaultRoutes(o.NetNS, o.IfName, gateways(n))
	}
	return nil
}

// Endpoints returns a container's endpoints, the first attached first.
func (m *Manager) Endpoints(ctx context.Context, containerID string) ([]*Endpoint, error) {
	st, err := m.store.Read()
	if err != nil {
		return nil, err
	}
	var out []*Endpoint
	for _, e := range st.ContainerEndpoints(containerID) {
		if n := st.Networks[e.NetworkID]; n != nil {
			out = append(out, endpointOf(n, e))
		}
	}
	return out, nil
}
