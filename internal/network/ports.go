package network

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/network"

	"github.com/berthproject/berth/internal/network/store"
)

// PortRequest is one port to publish: the container's port, and the host
// port wanted for it: HostPort (0: any free one from the kernel's ephemeral
// range), or any free one of HostPort..HostPortEnd.
type PortRequest struct {
	Proto         string     // "tcp" or "udp"
	HostIP        netip.Addr // zero: every host address
	HostPort      uint16
	HostPortEnd   uint16 // > HostPort: a range to pick from
	ContainerPort uint16
}

func (r PortRequest) String() string {
	host := strconv.Itoa(int(r.HostPort))
	if r.HostPortEnd > r.HostPort {
		host += "-" + strconv.Itoa(int(r.HostPortEnd))
	}
	if r.HostIP.IsValid() {
		host = netip.AddrPortFrom(r.HostIP, 0).Addr().String() + ":" + host
	}
	return fmt.Sprintf("%s:%d/%s", host, r.ContainerPort, r.Proto)
}

// PortRequests turns a container's Docker port configuration into
// requests: every binding of -p (HostPort "" or "0": any free port;
// "8080"; or "8000-8010"), and with -P every exposed port without a
// binding, to a random host port.
func PortRequests(bindings network.PortMap, exposed network.PortSet, publishAll bool) ([]PortRequest, error) {
	var out []PortRequest
	add := func(p network.Port, b network.PortBinding) error {
		proto := string(p.Proto())
		if proto != "tcp" && proto != "udp" {
			return fmt.Errorf("%w: port %s: only tcp and udp ports can be published", ErrInvalid, p)
		}
		r := PortRequest{Proto: proto, HostIP: b.HostIP, ContainerPort: p.Num()}
		if r.HostIP.IsValid() {
			r.HostIP = r.HostIP.Unmap()
		}
		if r.HostIP.Is6() && r.HostIP.IsLoopback() {
			if err := loopback6Check(); err != nil {
				return fmt.Errorf("%w: --publish [::1]:%s:%s: %v", ErrInvalid, b.HostPort, p, err)
			}
		}
		// Host port "0" is any free port, as "" (Docker's reading).
		if b.HostPort != "" && b.HostPort != "0" {
			lo, hi, isRange := strings.Cut(b.HostPort, "-")
			l, err := strconv.ParseUint(lo, 10, 16)
			if err != nil || l == 0 {
				return fmt.Errorf("%w: port %s: host port %q", ErrInvalid, p, b.HostPort)
			}
			r.HostPort = uint16(l)
			if isRange {
				h, err := strconv.ParseUint(hi, 10, 16)
				if err != nil || h < l {
					return fmt.Errorf("%w: port %s: host port range %q", ErrInvalid, p, b.HostPort)
				}
				r.HostPortEnd = uint16(h)
			}
		}
		out = append(out, r)
		return nil
	}
	for _, p := range sortedPorts(keys(bindings)) {
		bs := bindings[p]
		if len(bs) == 0 {
			bs = []network.PortBinding{{}}
		}
		for _, b := range bs {
			if err := add(p, b); err != nil {
				return nil, err
			}
		}
	}
	if publishAll {
		for _, p := range sortedPorts(keys(exposed)) {
			if _, ok := bindings[p]; ok {
				continue
			}
			if err := add(p, network.PortBinding{}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// loopback6 tells why [::1] cannot be published (nil: it can). Docker
// serves [::1] with its userland proxy; berth has none, and the kernel
// drops DNATed packets from ::1 (IPv6 has no route_localnet): only the
// connect-time redirection serves it.
func loopback6() error {
	err := RedirectAvailable()
	if err == nil && !ipv6Enabled() {
		err = errors.New("IPv6 is disabled")
	}
	if err != nil {
		return fmt.Errorf("publishing on IPv6 loopback is not supported here: the kernel does not route DNATed packets from ::1, and %v; publish on 127.0.0.1, or on every address and connect to 127.0.0.1 or a global IPv6 address of the host", err)
	}
	return nil
}

// loopback6Check is loopback6, a variable for the tests.
var loopback6Check = loopback6

func keys[V any](m map[network.Port]V) []network.Port {
	out := make([]network.Port, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func sortedPorts(ps []network.Port) []network.Port {
	slices.SortFunc(ps, func(a, b network.Port) int {
		if a.Proto() != b.Proto() {
			return strings.Compare(string(a.Proto()), string(b.Proto()))
		}
		return int(a.Num()) - int(b.Num())
	})
	return ps
}

// hostIPsOverlap says whether two published host addresses share one
// (zero: every address of both families; 0.0.0.0 and ::, every one of
// theirs).
func hostIPsOverlap(a, b netip.Addr) bool {
	if !a.IsValid() || !b.IsValid() {
		return true
	}
	if a.Is4() != b.Is4() {
		return false
	}
	return a.IsUnspecified() || b.IsUnspecified() || a == b
}

// portOwner finds who publishes a host port already.
func portOwner(st *store.State, proto string, ip netip.Addr, port uint16, pending []store.Port) string {
	for _, p := range pending {
		if p.Proto == proto && p.HostPort == port && hostIPsOverlap(p.HostIP, ip) {
			return "this container"
		}
	}
	for _, e := range st.Endpoints {
		for _, p := range e.Ports {
			if p.Proto == proto && p.HostPort == port && hostIPsOverlap(p.HostIP, ip) {
				if e.ContainerName != "" {
					return "container " + e.ContainerName
				}
				return "container " + short(e.ContainerID)
			}
		}
	}
	return ""
}

// assignPorts chooses host ports for the requests and checks each against
// the records (another container's) and the host (a listening program).
//
// Ports are not published from --internal networks (Docker's rule): such a
// network has no way in or out.
func (m *Manager) assignPorts(st *store.State, k kernel, n *store.Network, e *store.Endpoint, reqs []PortRequest) ([]store.Port, error) {
	if n.Internal {
		if len(reqs) > 0 {
			m.log.Info("ports are not published from an internal network", "network", n.Name, "container", short(e.ContainerID))
		}
		return nil, nil
	}
	var out []store.Port
	for _, r := range reqs {
		if r.Proto != "tcp" && r.Proto != "udp" {
			return nil, fmt.Errorf("%w: publish %s: only tcp and udp ports can be published", ErrInvalid, r)
		}
		if r.ContainerPort == 0 {
			return nil, fmt.Errorf("%w: publish %s: container port 0", ErrInvalid, r)
		}
		if r.HostIP.IsValid() && r.HostIP.Is6() && r.HostIP.IsLoopback() {
			// [::1] of any network: served by the redirection alone.
			if err := loopback6Check(); err != nil {
				return nil, fmt.Errorf("%w: publish %s: %v", ErrInvalid, r, err)
			}
		} else if r.HostIP.IsValid() && r.HostIP.Is6() && !n.IPv6 {
			return nil, fmt.Errorf("%w: publish %s: network %s has no IPv6", ErrInvalid, r, n.Name)
		}
		free := func(port uint16) error {
			if owner := portOwner(st, r.Proto, r.HostIP, port, out); owner != "" {
				return fmt.Errorf("%w: publish %s: host port %d/%s is already published by %s", ErrConflict, r, port, r.Proto, owner)
			}
			for _, ip := range probeAddrs(r.HostIP, n.IPv6 || r.Proto == "tcp" && servesIPv6()) {
				if err := k.PortFree(r.Proto, ip, port); err != nil {
					return fmt.Errorf("%w: publish %s: host port %d/%s is in use on the host: %v", ErrConflict, r, port, r.Proto, err)
				}
			}
			return nil
		}
		var port uint16
		switch {
		case r.HostPort != 0 && r.HostPortEnd <= r.HostPort:
			if err := free(r.HostPort); err != nil {
				return nil, err
			}
			port = r.HostPort
		default:
			lo, hi := r.HostPort, r.HostPortEnd
			if lo == 0 {
				lo, hi = k.LocalPortRange()
			}
			var err error
			if port, err = pickPort(lo, hi, free); err != nil {
				return nil, fmt.Errorf("%w: publish %s: no free host port in %d-%d (last: %v)", ErrConflict, r, lo, hi, err)
			}
		}
		out = append(out, store.Port{Proto: r.Proto, HostIP: r.HostIP, HostPort: port, ContainerPort: r.ContainerPort})
	}
	return out, nil
}

// probeAddrs are the addresses to test a host port on.
func probeAddrs(ip netip.Addr, v6 bool) []netip.Addr {
	if ip.IsValid() {
		return []netip.Addr{ip}
	}
	out := []netip.Addr{netip.IPv4Unspecified()}
	if v6 {
		out = append(out, netip.IPv6Unspecified())
	}
	return out
}

// pickPort tries the ports of lo..hi from a random start.
func pickPort(lo, hi uint16, free func(uint16) error) (uint16, error) {
	if hi < lo {
		lo, hi = hi, lo
	}
	n := int(hi) - int(lo) + 1
	start := rand.IntN(n)
	var err error
	for i := 0; i < n; i++ {
		p := uint16(int(lo) + (start+i)%n)
		if err = free(p); err == nil {
			return p, nil
		}
	}
	return 0, err
}

// PortMap is a container's published ports as Docker shows them
// (NetworkSettings.Ports, `port`): every address is 0.0.0.0, plus :: when
// the endpoint has IPv6 or, for a TCP port, when host clients reach it
// over IPv6 by the connect-time redirection (as Docker lists [::] for an
// IPv4-only container, which its docker-proxy serves).
func (m *Manager) PortMap(ctx context.Context, containerID string) (network.PortMap, error) {
	eps, err := m.Endpoints(ctx, containerID)
	if err != nil {
		return nil, err
	}
	return PortMapOf(eps), nil
}

// PortMapOf is PortMap for endpoints at hand.
func PortMapOf(eps []*Endpoint) network.PortMap {
	out := network.PortMap{}
	v6 := sync.OnceValue(servesIPv6)
	for _, e := range eps {
		for _, p := range e.Ports {
			key, ok := network.PortFrom(p.ContainerPort, network.IPProtocol(p.Proto))
			if !ok {
				continue
			}
			host := strconv.Itoa(int(p.HostPort))
			if p.HostIP.IsValid() {
				out[key] = append(out[key], network.PortBinding{HostIP: p.HostIP, HostPort: host})
				continue
			}
			out[key] = append(out[key], network.PortBinding{HostIP: netip.IPv4Unspecified(), HostPort: host})
			if e.IPv6.IsValid() || p.Proto == "tcp" && v6() {
				out[key] = append(out[key], network.PortBinding{HostIP: netip.IPv6Unspecified(), HostPort: host})
			}
		}
	}
	return out
}

// CheckPorts tells whether the host ports the requests name exactly could
// be published now: no other container publishes them (containerID's own
// endpoints do not count) and nothing on the host listens on them. `run`
// asks before it creates a container, so that a conflict creates nothing;
// Attach checks again, under the lock.
func (m *Manager) CheckPorts(ctx context.Context, containerID string, reqs []PortRequest) error {
	st, err := m.store.Read()
	if err != nil {
		return err
	}
	var k kernel
	var seen []store.Port
	for _, r := range reqs {
		if r.HostPort == 0 || r.HostPortEnd > r.HostPort {
			continue // any free port of a range: chosen at start
		}
		for _, e := range st.Endpoints {
			if e.ContainerID == containerID {
				continue
			}
			for _, p := range e.Ports {
				if p.Proto == r.Proto && p.HostPort == r.HostPort && hostIPsOverlap(p.HostIP, r.HostIP) {
					return fmt.Errorf("%w: publish %s: host port %d/%s is already published by container %s", ErrConflict, r, r.HostPort, r.Proto, nameOrID(e))
				}
			}
		}
		for _, p := range seen {
			if p.Proto == r.Proto && p.HostPort == r.HostPort && hostIPsOverlap(p.HostIP, r.HostIP) {
				return fmt.Errorf("%w: publish %s: host port %d/%s is published twice", ErrConflict, r, r.HostPort, r.Proto)
			}
		}
		seen = append(seen, store.Port{Proto: r.Proto, HostIP: r.HostIP, HostPort: r.HostPort})
		if k == nil {
			if k, err = m.k(); err != nil {
				return err
			}
		}
		for _, ip := range probeAddrs(r.HostIP, false) {
			if err := k.PortFree(r.Proto, ip, r.HostPort); err != nil {
				return fmt.Errorf("%w: publish %s: host port %d/%s is in use on the host: %v", ErrConflict, r, r.HostPort, r.Proto, err)
			}
		}
	}
	return nil
}

func nameOrID(e *store.Endpoint) string {
	if e.ContainerName != "" {
		return e.ContainerName
	}
	return short(e.ContainerID)
}
