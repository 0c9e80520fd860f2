package network

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/berthproject/berth/internal/network/link"
	"github.com/berthproject/berth/internal/network/netns"
	"github.com/berthproject/berth/internal/network/nft"
)

// hostKernel is the real kernel of the host's network namespace.
type hostKernel struct {
	links *link.Host
	nft   *nft.Conn
}

func openHostKernel() (*hostKernel, error) {
	l, err := link.OpenHost()
	if err != nil {
		return nil, err
	}
	c, err := nft.Open()
	if err != nil {
		l.Close()
		return nil, err
	}
	return &hostKernel{links: l, nft: c}, nil
}

func (k *hostKernel) Close() error {
	k.links.Close()
	return k.nft.Close()
}

func (k *hostKernel) EnsureBridge(b link.Bridge) error     { return k.links.EnsureBridge(b) }
func (k *hostKernel) AddVeth(v link.Veth) error            { return k.links.AddVeth(v) }
func (k *hostKernel) DeleteLink(name string) error         { return k.links.DeleteLink(name) }
func (k *hostKernel) LinkExists(name string) (bool, error) { return k.links.Exists(name) }
func (k *hostKernel) OwnedLinks() ([]link.Owned, error)    { return k.links.Owned() }
func (k *hostKernel) ApplyRules(t []nft.Table) error       { return k.nft.Apply(t) }
func (k *hostKernel) NetNSAlive(path string) bool          { return netns.Alive(path) }

func (k *hostKernel) SetDefaultRoutes(path, ifname string, gws []netip.Addr) error {
	return link.SetDefaultRoutes(path, ifname, gws)
}

func (k *hostKernel) Routes() ([]netip.Prefix, error) {
	rs, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		a, _ := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		out = append(out, netip.PrefixFrom(a.Unmap(), ones))
	}
	return out, nil
}

// PortFree binds the port (and lets it go at once) to see whether a
// program of the host holds it.
func (k *hostKernel) PortFree(proto string, ip netip.Addr, port uint16) error {
	network := proto + "4"
	if ip.Is6() {
		network = proto + "6"
	}
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
	if proto == "udp" {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// LocalPortRange reads net.ipv4.ip_local_port_range (Docker's range if it
// cannot).
func (k *hostKernel) LocalPortRange() (uint16, uint16) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			lo, err1 := strconv.ParseUint(f[0], 10, 16)
			hi, err2 := strconv.ParseUint(f[1], 10, 16)
			if err1 == nil && err2 == nil && lo > 0 && lo <= hi {
				return uint16(lo), uint16(hi)
			}
		}
	}
	return 49153, 60999
}
