package ipam

import (
	"errors"
	"net/netip"
	"testing"
)

func pfx(s string) netip.Prefix {
	if s == "" {
		return netip.Prefix{}
	}
	return netip.MustParsePrefix(s)
}

func addr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

func TestNewPool(t *testing.T) {
	tests := []struct {
		subnet, ipRange, gateway string
		want                     Pool
		err                      error
	}{
		{subnet: "172.30.0.0/16", want: Pool{pfx("172.30.0.0/16"), pfx("172.30.0.0/16"), addr("172.30.0.1")}},
		{subnet: "10.1.0.0/24", gateway: "10.1.0.254", want: Pool{pfx("10.1.0.0/24"), pfx("10.1.0.0/24"), addr("10.1.0.254")}},
		{subnet: "10.1.0.0/24", ipRange: "10.1.0.128/25", want: Pool{pfx("10.1.0.0/24"), pfx("10.1.0.128/25"), addr("10.1.0.1")}},
		{subnet: "fd00:1::/64", want: Pool{pfx("fd00:1::/64"), pfx("fd00:1::/64"), addr("fd00:1::1")}},
		{subnet: "10.1.0.0/30", want: Pool{pfx("10.1.0.0/30"), pfx("10.1.0.0/30"), addr("10.1.0.1")}},
		{subnet: "", err: ErrInvalid},
		{subnet: "10.1.0.5/24", err: ErrInvalid},                           // host bits set
		{subnet: "10.1.0.0/31", err: ErrInvalid},                           // no room
		{subnet: "10.1.0.0/24", gateway: "10.2.0.1", err: ErrInvalid},      // gateway outside
		{subnet: "10.1.0.0/24", gateway: "10.1.0.0", err: ErrInvalid},      // network address
		{subnet: "10.1.0.0/24", gateway: "10.1.0.255", err: ErrInvalid},    // broadcast
		{subnet: "10.1.0.0/24", gateway: "fd00::1", err: ErrInvalid},       // other family
		{subnet: "10.1.0.0/24", ipRange: "10.2.0.0/25", err: ErrInvalid},   // range outside
		{subnet: "10.1.0.0/24", ipRange: "10.1.0.0/23", err: ErrInvalid},   // range larger
		{subnet: "10.1.0.0/24", ipRange: "10.1.0.129/25", err: ErrInvalid}, // range not masked
		{subnet: "fd00:1::/64", ipRange: "10.1.0.0/25", err: ErrInvalid},   // range of other family
	}
	for _, tt := range tests {
		got, err := NewPool(pfx(tt.subnet), pfx(tt.ipRange), addr(tt.gateway))
		if !errors.Is(err, tt.err) || (tt.err == nil && got != tt.want) {
			t.Errorf("NewPool(%q, %q, %q) = %+v, %v; want %+v, %v", tt.subnet, tt.ipRange, tt.gateway, got, err, tt.want, tt.err)
		}
	}
}

// set is a set of addresses in use.
type set map[netip.Addr]bool

func (s set) has(a netip.Addr) bool { return s[a] }

func TestAllocate(t *testing.T) {
	tests := []struct {
		name, subnet, ipRange, gateway, last string
		used                                 []string
		want                                 string
		err                                  error
	}{
		{name: "first after gateway", subnet: "10.1.0.0/24", want: "10.1.0.2"},
		{name: "after last", subnet: "10.1.0.0/24", last: "10.1.0.7", want: "10.1.0.8"},
		{name: "skips used", subnet: "10.1.0.0/24", used: []string{"10.1.0.2", "10.1.0.3"}, want: "10.1.0.4"},
		{name: "wraps, skipping network and gateway", subnet: "10.1.0.0/24", last: "10.1.0.254", want: "10.1.0.2"},
		{name: "never broadcast", subnet: "10.1.0.0/24", last: "10.1.0.253", used: []string{"10.1.0.254"}, want: "10.1.0.2"},
		{name: "gateway elsewhere", subnet: "10.1.0.0/24", gateway: "10.1.0.254", want: "10.1.0.1"},
		{name: "from the range", subnet: "10.1.0.0/24", ipRange: "10.1.0.128/25", want: "10.1.0.128"},
		{name: "last outside range", subnet: "10.1.0.0/24", ipRange: "10.1.0.128/25", last: "10.1.0.9", want: "10.1.0.128"},
		{name: "range end wraps to range start", subnet: "10.1.0.0/24", ipRange: "10.1.0.128/26", last: "10.1.0.191", want: "10.1.0.128"},
		{name: "exhausted /30", subnet: "10.1.0.0/30", used: []string{"10.1.0.2"}, err: ErrExhausted},
		{name: "exhausted range", subnet: "10.1.0.0/24", ipRange: "10.1.0.4/31", used: []string{"10.1.0.4", "10.1.0.5"}, err: ErrExhausted},
		{name: "ipv6", subnet: "fd00:1::/64", want: "fd00:1::2"},
		{name: "ipv6 after last", subnet: "fd00:1::/64", last: "fd00:1::ff", want: "fd00:1::100"},
		{name: "ipv6 top of subnet is usable", subnet: "fd00:1::/126", last: "fd00:1::2", want: "fd00:1::3"},
	}
	for _, tt := range tests {
		p, err := NewPool(pfx(tt.subnet), pfx(tt.ipRange), addr(tt.gateway))
		if err != nil {
			t.Fatalf("%s: NewPool: %v", tt.name, err)
		}
		used := set{}
		for _, u := range tt.used {
			used[addr(u)] = true
		}
		got, err := p.Allocate(addr(tt.last), used.has)
		if !errors.Is(err, tt.err) || got != addr(tt.want) {
			t.Errorf("%s: Allocate(last %q, used %v) = %v, %v; want %q, %v", tt.name, tt.last, tt.used, got, err, tt.want, tt.err)
		}
	}
}

func TestAllocateFillsTheSubnetOnce(t *testing.T) {
	p, err := NewPool(pfx("10.9.0.0/24"), netip.Prefix{}, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	used := set{}
	var last netip.Addr
	for i := 0; i < 253; i++ {
		a, err := p.Allocate(last, used.has)
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		if used[a] {
			t.Fatalf("allocation %d: %v handed out twice", i, a)
		}
		used[a], last = true, a
	}
	if a, err := p.Allocate(last, used.has); !errors.Is(err, ErrExhausted) {
		t.Fatalf("allocation 254 = %v, %v; want ErrExhausted", a, err)
	}
	// Released addresses come back once the cursor wraps, lowest first.
	delete(used, addr("10.9.0.100"))
	delete(used, addr("10.9.0.50"))
	if a, err := p.Allocate(last, used.has); err != nil || a != addr("10.9.0.50") {
		t.Fatalf("after release: Allocate = %v, %v; want 10.9.0.50", a, err)
	}
	if got := p.Size(); got != 253 {
		t.Errorf("Size() = %d, want 253", got)
	}
}

func TestClaim(t *testing.T) {
	p, err := NewPool(pfx("10.1.0.0/24"), pfx("10.1.0.128/25"), netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	used := set{addr("10.1.0.20"): true}
	tests := []struct {
		ip  string
		err error
	}{
		{"10.1.0.5", nil}, // outside the dynamic range, inside the subnet: fine (Docker's rule)
		{"10.1.0.200", nil},
		{"::ffff:10.1.0.6", nil},
		{"10.1.0.20", ErrInUse},
		{"10.1.0.1", ErrInvalid},   // gateway
		{"10.1.0.0", ErrInvalid},   // network
		{"10.1.0.255", ErrInvalid}, // broadcast
		{"10.2.0.5", ErrInvalid},
		{"fd00::5", ErrInvalid},
	}
	for _, tt := range tests {
		_, err := p.Claim(addr(tt.ip), used.has)
		if !errors.Is(err, tt.err) {
			t.Errorf("Claim(%s) = %v, want %v", tt.ip, err, tt.err)
		}
	}
}

func TestOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"10.0.0.0/8", "10.1.0.0/16", true},
		{"10.1.0.0/16", "10.0.0.0/8", true},
		{"10.1.0.0/16", "10.2.0.0/16", false},
		{"172.30.0.0/16", "172.30.255.0/24", true},
		{"fd00::/64", "fd00::/48", true},
		{"fd00::/64", "fd01::/64", false},
		{"10.0.0.0/8", "::/0", false},
	}
	for _, tt := range tests {
		if got := Overlap(pfx(tt.a), pfx(tt.b)); got != tt.want {
			t.Errorf("Overlap(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
