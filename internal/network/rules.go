package network

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"path/filepath"
	"slices"

	"github.com/berthproject/berth/internal/network/nft"
	"github.com/berthproject/berth/internal/network/store"
)

// TableName is the name of berth's nftables tables (one per family).
const TableName = "berth"

// bridgeWildcard matches every bridge berth makes (berth0, berth-xxxxxxxxx).
const bridgeWildcard = "berth*"

// Chain priorities: NAT at the standard points; the filter chain a little
// before the standard filter priority, so that our accepts are seen first.
// An accept only ends our chain: a drop in another table's forward chain
// (a host firewall, Docker's FORWARD DROP) still drops, which is right, as
// the host firewall is the host owner's.
const (
	prioDstNAT  = -100
	prioSrcNAT  = 100
	prioForward = -10
)

var loopback4 = netip.MustParsePrefix("127.0.0.0/8")

// Rules renders berth's nftables tables from the records: for every bridge
// network its forwarding policy and masquerading, and for every published
// port a DNAT rule reached from the outside (prerouting) and from the host
// itself (output).
//
//	prerouting, output (nat)  fib daddr type local -> jump ports
//	ports                     [ip daddr HOST_IP] PROTO dport HOST_PORT dnat to CONTAINER_IP:PORT
//	postrouting (nat)         127.0.0.0/8 -> bridge: masquerade (localhost; route_localnet)
//	                          DNATed subnet -> own bridge: masquerade (hairpin)
//	                          subnet -> elsewhere: masquerade (outbound; not --internal)
//	forward (filter)          same bridge: accept; to another berth bridge: drop;
//	                          out: accept; in: established or DNATed only;
//	                          --internal: nothing in or out, no ports published
//
// IPv6 has the same rules, except that ::1 is not DNATed: the kernel has no
// route_localnet for IPv6 and would drop the packets (host clients of
// [::1] are served by connect-time redirection alone, see Redirects).
func Rules(st *store.State) []nft.Table {
	var nets []*store.Network
	for _, n := range st.SortedNetworks() {
		if n.Driver == DriverBridge {
			nets = append(nets, n)
		}
	}
	return []nft.Table{family(st, nets, nft.IPv4), family(st, nets, nft.IPv6)}
}

func family(st *store.State, nets []*store.Network, f nft.Family) nft.Table {
	v6 := f == nft.IPv6
	jump := []nft.Match{nft.FibDaddrLocal{}}
	jumpOut := jump
	if v6 {
		jumpOut = []nft.Match{nft.FibDaddrLocal{}, nft.Daddr{Prefix: netip.MustParsePrefix("::1/128"), Not: true}}
	}
	pre := nft.Chain{Name: "prerouting", Type: "nat", Hook: "prerouting", Priority: prioDstNAT,
		Rules: []nft.Rule{{Match: jump, Verdict: nft.Verdict{Kind: nft.Jump, Chain: "ports"}}}}
	out := nft.Chain{Name: "output", Type: "nat", Hook: "output", Priority: prioDstNAT,
		Rules: []nft.Rule{{Match: jumpOut, Verdict: nft.Verdict{Kind: nft.Jump, Chain: "ports"}}}}
	ports := nft.Chain{Name: "ports"}
	post := nft.Chain{Name: "postrouting", Type: "nat", Hook: "postrouting", Priority: prioSrcNAT}
	fwd := nft.Chain{Name: "forward", Type: "filter", Hook: "forward", Priority: prioForward}

	masq := nft.Verdict{Kind: nft.Masquerade}
	accept, drop := nft.Verdict{Kind: nft.Accept}, nft.Verdict{Kind: nft.Drop}
	for _, n := range nets {
		br := n.Bridge
		subnet := n.Subnet
		if v6 {
			subnet = n.Subnet6
		}
		if subnet.IsValid() && !n.Internal {
			if !v6 {
				post.Rules = append(post.Rules, nft.Rule{Match: []nft.Match{nft.Saddr{Prefix: loopback4}, nft.OIfName{Name: br}}, Verdict: masq})
			}
			post.Rules = append(post.Rules, nft.Rule{Match: []nft.Match{nft.CtDNAT{}, nft.Saddr{Prefix: subnet}, nft.OIfName{Name: br}}, Verdict: masq})
			if !n.Internal && masquerades(n) {
				post.Rules = append(post.Rules, nft.Rule{Match: []nft.Match{nft.Saddr{Prefix: subnet}, nft.OIfName{Name: br, Not: true}}, Verdict: masq})
			}
		}
		fwd.Rules = append(fwd.Rules,
			nft.Rule{Match: []nft.Match{nft.IIfName{Name: br}, nft.OIfName{Name: br}}, Verdict: accept},
			nft.Rule{Match: []nft.Match{nft.IIfName{Name: br}, nft.OIfName{Name: bridgeWildcard}}, Verdict: drop},
		)
		if n.Internal {
			fwd.Rules = append(fwd.Rules,
				nft.Rule{Match: []nft.Match{nft.IIfName{Name: br}}, Verdict: drop},
				nft.Rule{Match: []nft.Match{nft.OIfName{Name: br}}, Verdict: drop},
			)
			continue
		}
		fwd.Rules = append(fwd.Rules,
			nft.Rule{Match: []nft.Match{nft.IIfName{Name: br}}, Verdict: accept},
			nft.Rule{Match: []nft.Match{nft.OIfName{Name: br}, nft.CtEstablished{}}, Verdict: accept},
			nft.Rule{Match: []nft.Match{nft.OIfName{Name: br}, nft.CtDNAT{}}, Verdict: accept},
			nft.Rule{Match: []nft.Match{nft.OIfName{Name: br}}, Verdict: drop},
		)
	}

	type dnat struct {
		port store.Port
		to   netip.AddrPort
		ep   string
	}
	var dnats []dnat
	for _, e := range st.Endpoints {
		if n := st.Networks[e.NetworkID]; n == nil || n.Internal {
			continue
		}
		ip := e.IPv4
		if v6 {
			ip = e.IPv6
		}
		if !ip.IsValid() {
			continue
		}
		for _, p := range e.Ports {
			if p.HostIP.IsValid() && (p.HostIP.Is6() != v6 || p.HostIP.IsLoopback() && v6) {
				continue
			}
			dnats = append(dnats, dnat{p, netip.AddrPortFrom(ip, p.ContainerPort), e.ID})
		}
	}
	slices.SortFunc(dnats, func(a, b dnat) int {
		return cmp.Or(cmp.Compare(a.port.Proto, b.port.Proto), cmp.Compare(a.port.HostPort, b.port.HostPort),
			a.port.HostIP.Compare(b.port.HostIP), cmp.Compare(a.ep, b.ep))
	})
	for _, d := range dnats {
		var m []nft.Match
		if d.port.HostIP.IsValid() && !d.port.HostIP.IsUnspecified() {
			m = append(m, nft.Daddr{Prefix: netip.PrefixFrom(d.port.HostIP, d.port.HostIP.BitLen())})
		}
		m = append(m, nft.Dport{Proto: d.port.Proto, Port: d.port.HostPort})
		ports.Rules = append(ports.Rules, nft.Rule{Match: m, Verdict: nft.Verdict{Kind: nft.DNAT, To: d.to}, Comment: "endpoint " + short(d.ep)})
	}
	return nft.Table{Family: f, Name: TableName, Chains: []nft.Chain{pre, out, ports, post, fwd}}
}

// masquerades tells whether outbound traffic is masqueraded (Docker's
// com.docker.network.bridge.enable_ip_masquerade, on by default).
func masquerades(n *store.Network) bool {
	return n.Options[OptionMasquerade] != "false"
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Redirect is a published TCP port that host-local clients reach by
// connect-time redirection (package portredirect) instead of DNAT.
type Redirect struct {
	// HostIP is the published address: zero (-p PORT:PORT) every address
	// of the host, IPv4 and IPv6 (::1 included), as Docker serves;
	// 0.0.0.0 every IPv4 one; :: every IPv6 one; else that address.
	HostIP   netip.Addr
	HostPort uint16
	To       netip.AddrPort // the container's IPv4 address
	// To6 is the container's IPv6 address, if it has one: the target of
	// IPv6 clients. Without it, they go to To (connected as
	// ::ffff:A.B.C.D, over IPv4), as docker-proxy serves an IPv4-only
	// container on [::].
	To6 netip.AddrPort
}

// Redirects lists the published ports that connect-time redirection
// serves: the TCP ones of Rules' DNAT rules, and IPv6 host addresses
// (::1 included) of every published TCP port, also for IPv4-only
// containers, which DNAT does not serve over IPv6. UDP and everything else
// stay with the DNAT rules alone.
func Redirects(st *store.State) []Redirect {
	var out []Redirect
	for _, e := range st.SortedEndpoints() {
		if n := st.Networks[e.NetworkID]; n == nil || n.Internal || n.Driver != DriverBridge || !e.IPv4.IsValid() {
			continue
		}
		for _, p := range e.Ports {
			if p.Proto != "tcp" {
				continue
			}
			r := Redirect{HostIP: p.HostIP, HostPort: p.HostPort, To: netip.AddrPortFrom(e.IPv4, p.ContainerPort)}
			if e.IPv6.IsValid() {
				r.To6 = netip.AddrPortFrom(e.IPv6, p.ContainerPort)
			}
			out = append(out, r)
		}
	}
	return out
}

// RedirectName is the name under which the connect-time redirection of the
// store at dir is pinned (/sys/fs/bpf/NAME): one per store, so that test
// roots and engines with other roots do not share it.
func RedirectName(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	sum := sha256.Sum256([]byte(dir))
	return "berth-" + hex.EncodeToString(sum[:6])
}
