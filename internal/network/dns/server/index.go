package server

import (
	"net/netip"
	"strings"

	"github.com/berthproject/berth/internal/network/store"
)

// index is what the server answers from, built from one version of the
// records. It is never changed after build: a reload builds a new one.
type index struct {
	// byIP finds the querying container by its source address.
	byIP map[netip.Addr]*member
	// byGateway finds the network a query arrived on (for a source we do
	// not know).
	byGateway map[netip.Addr]*netEntry
	// listen are the addresses to serve on: the gateways of user-defined
	// networks with containers.
	listen []netip.Addr
}

type netEntry struct {
	id, name string
	internal bool
	subnets  []netip.Prefix
	// names maps lower-case names (container name, short ID, aliases) to
	// the endpoints that carry them.
	names map[string][]*member
	// byIP finds an endpoint of this network by address (PTR).
	byIP map[netip.Addr]*member
}

// member is one endpoint on a user-defined network.
type member struct {
	net       *netEntry
	container string
	name      string
	v4, v6    netip.Addr
	dns       []netip.Addr
	// links are the container's legacy links: alias (lower case) -> the
	// name it stands for, for this container's queries only.
	links map[string]string
	// nets are the user-defined networks of the member's container, its
	// first network first: where its queries are resolved.
	nets []*netEntry
}

func buildIndex(st *store.State) *index {
	ix := &index{byIP: map[netip.Addr]*member{}, byGateway: map[netip.Addr]*netEntry{}}
	nets := map[string]*netEntry{}
	for _, n := range st.SortedNetworks() {
		if n.Driver != "bridge" || n.Default || len(st.NetworkEndpoints(n.ID)) == 0 {
			continue
		}
		nn := &netEntry{id: n.ID, name: n.Name, internal: n.Internal, names: map[string][]*member{}, byIP: map[netip.Addr]*member{}}
		for _, p := range []netip.Prefix{n.Subnet, n.Subnet6} {
			if p.IsValid() {
				nn.subnets = append(nn.subnets, p)
			}
		}
		for _, gw := range []netip.Addr{n.Gateway, n.Gateway6} {
			if gw.IsValid() {
				ix.byGateway[gw] = nn
				ix.listen = append(ix.listen, gw)
			}
		}
		nets[n.ID] = nn
	}
	byContainer := map[string][]*member{}
	for _, e := range st.SortedEndpoints() {
		nn := nets[e.NetworkID]
		if nn == nil {
			continue
		}
		m := &member{net: nn, container: e.ContainerID, name: e.ContainerName, v4: e.IPv4, v6: e.IPv6, dns: e.DNS, links: e.Links}
		for _, name := range endpointNames(e) {
			k := strings.ToLower(name)
			nn.names[k] = append(nn.names[k], m)
		}
		for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
			if a.IsValid() {
				ix.byIP[a] = m
				nn.byIP[a] = m
			}
		}
		byContainer[e.ContainerID] = append(byContainer[e.ContainerID], m)
	}
	for _, ms := range byContainer {
		var cnets []*netEntry
		// A container's links hold whichever network its query arrives on
		// (they were given on one network: run --link, network connect
		// --link), the first network's first.
		var links map[string]string
		for _, m := range ms {
			cnets = append(cnets, m.net)
			for alias, name := range m.links {
				if links == nil {
					links = map[string]string{}
				}
				if _, ok := links[alias]; !ok {
					links[alias] = name
				}
			}
		}
		for _, m := range ms {
			m.nets, m.links = cnets, links
		}
	}
	return ix
}

// endpointNames are the DNS names of an endpoint: container name, short
// container ID, aliases (as network.DNSNames; repeated here to keep this
// package free of the manager).
func endpointNames(e *store.Endpoint) []string {
	id := e.ContainerID
	if len(id) > 12 {
		id = id[:12]
	}
	out := []string{}
	for _, n := range append([]string{e.ContainerName, id}, e.Aliases...) {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// scope is the networks a query from src resolves in, and the member that
// asked (nil for an unknown source on the network of gateway local).
func (ix *index) scope(src, local netip.Addr) ([]*netEntry, *member) {
	if m := ix.byIP[src]; m != nil {
		return m.nets, m
	}
	if n := ix.byGateway[local]; n != nil {
		for _, p := range n.subnets {
			if p.Contains(src) {
				return []*netEntry{n}, nil
			}
		}
	}
	return nil, nil
}

// lookup finds the members called name (lower case, no final dot) in the
// networks, also as NAME.NETWORK.
func lookup(nets []*netEntry, name string) []*member {
	for _, n := range nets {
		if ms := n.names[name]; len(ms) > 0 {
			return ms
		}
		if base, ok := strings.CutSuffix(name, "."+strings.ToLower(n.name)); ok {
			if ms := n.names[base]; len(ms) > 0 {
				return ms
			}
		}
	}
	return nil
}
