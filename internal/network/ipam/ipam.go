// Package ipam hands out the addresses of one subnet: the gateway, the
// addresses a user asks for (--ip), and the next free one for everybody
// else. It is pure: the caller says which addresses are in use (package
// store keeps them, under its lock) and where the last allocation was.
//
// Allocation is sequential with wrap-around, like Docker's: the address after
// the last one handed out, so that an address just released is not given to
// the next container at once (stale DNS answers and ARP caches then point
// nowhere rather than at the wrong container).
package ipam

import (
	"errors"
	"fmt"
	"net/netip"
)

// Errors, classified for errors.Is.
var (
	// ErrInvalid: a subnet, range, gateway or requested address that
	// cannot be used.
	ErrInvalid = errors.New("invalid address configuration")
	// ErrInUse: the requested address belongs to somebody else.
	ErrInUse = errors.New("address in use")
	// ErrExhausted: no free address is left in the range.
	ErrExhausted = errors.New("no free address")
)

// maxScan bounds the search for a free address in huge (IPv6) ranges, where
// walking the whole range is impossible. Real ranges are either small enough
// to be walked or so sparsely used that the first addresses tried are free.
const maxScan = 1 << 20

// Pool is one subnet's addresses.
type Pool struct {
	Subnet  netip.Prefix // the network, in canonical (masked) form
	Range   netip.Prefix // where dynamic addresses come from; zero: the whole Subnet
	Gateway netip.Addr   // the bridge's address; never handed out
}

// NewPool checks a subnet, range and gateway given by a user (the range and
// gateway may be zero) and fills in the defaults: the range is the subnet,
// the gateway is the subnet's first host address.
func NewPool(subnet, ipRange netip.Prefix, gateway netip.Addr) (Pool, error) {
	if !subnet.IsValid() {
		return Pool{}, fmt.Errorf("%w: subnet is missing", ErrInvalid)
	}
	if subnet != subnet.Masked() {
		return Pool{}, fmt.Errorf("%w: subnet %s: it should be %s", ErrInvalid, subnet, subnet.Masked())
	}
	hostBits := subnet.Addr().BitLen() - subnet.Bits()
	if hostBits < 2 {
		return Pool{}, fmt.Errorf("%w: subnet %s is too small: it needs room for a gateway and a container", ErrInvalid, subnet)
	}
	p := Pool{Subnet: subnet, Range: ipRange, Gateway: gateway}
	if ipRange.IsValid() {
		if ipRange != ipRange.Masked() {
			return Pool{}, fmt.Errorf("%w: ip-range %s: it should be %s", ErrInvalid, ipRange, ipRange.Masked())
		}
		if ipRange.Addr().Is4() != subnet.Addr().Is4() || ipRange.Bits() < subnet.Bits() || !subnet.Contains(ipRange.Addr()) {
			return Pool{}, fmt.Errorf("%w: ip-range %s is not inside subnet %s", ErrInvalid, ipRange, subnet)
		}
	} else {
		p.Range = subnet
	}
	if !gateway.IsValid() {
		p.Gateway = subnet.Addr().Next()
	} else if err := p.usable(gateway); err != nil {
		return Pool{}, fmt.Errorf("%w: gateway %s: %v", ErrInvalid, gateway, err)
	}
	return p, nil
}

// usable says why a cannot be a host address of the subnet, if it cannot.
func (p Pool) usable(a netip.Addr) error {
	a = a.Unmap()
	if a.Is4() != p.Subnet.Addr().Is4() || !p.Subnet.Contains(a) {
		return fmt.Errorf("not in subnet %s", p.Subnet)
	}
	if a == p.Subnet.Addr() {
		return fmt.Errorf("is the subnet's own address")
	}
	if a.Is4() && a == lastAddr(p.Subnet) {
		return fmt.Errorf("is the subnet's broadcast address")
	}
	return nil
}

// Check tells whether a user may ask for a (--ip): a host address of the
// subnet, not the gateway. It does not check whether a is in use.
func (p Pool) Check(a netip.Addr) error {
	if err := p.usable(a); err != nil {
		return fmt.Errorf("%w: address %s %v", ErrInvalid, a, err)
	}
	if a.Unmap() == p.Gateway {
		return fmt.Errorf("%w: address %s is the gateway of %s", ErrInvalid, a, p.Subnet)
	}
	return nil
}

// Claim checks a requested address and that nobody uses it.
func (p Pool) Claim(a netip.Addr, inUse func(netip.Addr) bool) (netip.Addr, error) {
	a = a.Unmap()
	if err := p.Check(a); err != nil {
		return netip.Addr{}, err
	}
	if inUse(a) {
		return netip.Addr{}, fmt.Errorf("%w: address %s is already in use", ErrInUse, a)
	}
	return a, nil
}

// Allocate returns the first free address of the range after last (or from
// the range's start when last is zero or outside it), wrapping around once.
func (p Pool) Allocate(last netip.Addr, inUse func(netip.Addr) bool) (netip.Addr, error) {
	first, end := p.Range.Addr(), lastAddr(p.Range)
	start := first
	if last.IsValid() && p.Range.Contains(last) && last != end {
		start = last.Next()
	}
	a := start
	for n := 0; n < maxScan; n++ {
		if p.usable(a) == nil && a != p.Gateway && !inUse(a) {
			return a, nil
		}
		if a == end {
			a = first
		} else {
			a = a.Next()
		}
		if a == start {
			break
		}
	}
	return netip.Addr{}, fmt.Errorf("%w in %s", ErrExhausted, p.Range)
}

// Size is the number of addresses the range can hand out dynamically, at
// most 1<<63 (for inspect's IPAM status).
func (p Pool) Size() uint64 {
	hostBits := p.Range.Addr().BitLen() - p.Range.Bits()
	if hostBits >= 63 {
		return 1 << 63
	}
	n := uint64(1) << hostBits
	for _, a := range []netip.Addr{p.Subnet.Addr(), p.Gateway} {
		if p.Range.Contains(a) {
			n--
		}
	}
	if p.Subnet.Addr().Is4() && p.Range.Contains(lastAddr(p.Subnet)) {
		n--
	}
	return n
}

// lastAddr is the highest address of a prefix (the broadcast address of an
// IPv4 subnet).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Overlap reports whether two subnets share addresses (families differ: no).
func Overlap(a, b netip.Prefix) bool {
	return a.IsValid() && b.IsValid() && a.Addr().Is4() == b.Addr().Is4() && a.Overlaps(b)
}
