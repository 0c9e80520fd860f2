package nft

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
)

func TestRuleText(t *testing.T) {
	tests := []struct {
		f    Family
		r    Rule
		want string
	}{
		{IPv4, Rule{Match: []Match{IIfName{Name: "berth0"}, OIfName{Name: "berth*"}}, Verdict: Verdict{Kind: Drop}}, `iifname "berth0" oifname "berth*" drop`},
		{IPv4, Rule{Match: []Match{Saddr{Prefix: netip.MustParsePrefix("10.6.0.0/20")}, OIfName{Name: "x", Not: true}}, Verdict: Verdict{Kind: Masquerade}}, `ip saddr 10.6.0.0/20 oifname != "x" masquerade`},
		{IPv4, Rule{Match: []Match{Daddr{Prefix: netip.MustParsePrefix("10.0.0.5/32")}, Dport{Proto: "udp", Port: 53}}, Verdict: Verdict{Kind: DNAT, To: netip.MustParseAddrPort("172.30.0.2:5353")}, Comment: "x y"},
			`ip daddr 10.0.0.5 udp dport 53 dnat to 172.30.0.2:5353 comment "x y"`},
		{IPv6, Rule{Match: []Match{Dport{Proto: "tcp", Port: 80}}, Verdict: Verdict{Kind: DNAT, To: netip.MustParseAddrPort("[fd00::2]:8080")}}, `tcp dport 80 dnat to [fd00::2]:8080`},
		{IPv6, Rule{Match: []Match{FibDaddrLocal{}, Daddr{Prefix: netip.MustParsePrefix("::1/128"), Not: true}}, Verdict: Verdict{Kind: Jump, Chain: "ports"}}, `fib daddr type local ip6 daddr != ::1 jump ports`},
		{IPv4, Rule{Match: []Match{CtDNAT{}, CtEstablished{}}, Verdict: Verdict{Kind: Accept}}, `ct status dnat ct state established,related accept`},
	}
	for _, tt := range tests {
		if got := tt.r.text(tt.f); got != tt.want {
			t.Errorf("text = %s, want %s", got, tt.want)
		}
	}
}

func TestPriorityText(t *testing.T) {
	tests := []struct {
		hook string
		prio int
		want string
	}{
		{"prerouting", -100, "dstnat"},
		{"output", -100, "-100"}, // nft names dstnat only on prerouting
		{"postrouting", 100, "srcnat"},
		{"forward", -10, "filter - 10"},
		{"forward", 5, "filter + 5"},
		{"forward", -50, "-50"},
		{"input", 50, "security"},
	}
	for _, tt := range tests {
		if got := priorityText(tt.hook, tt.prio); got != tt.want {
			t.Errorf("priorityText(%s, %d) = %q, want %q", tt.hook, tt.prio, got, tt.want)
		}
	}
}

// TestExprs pins the expressions of the less obvious matches to what nft
// generates for the same text (nft --debug=netlink).
func TestExprs(t *testing.T) {
	tests := []struct {
		name string
		f    Family
		m    Match
		want []expr.Any
	}{
		{"byte-aligned prefix loads only its bytes", IPv4, Saddr{Prefix: netip.MustParsePrefix("172.30.0.0/16")}, []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{172, 30}},
		}},
		{"other prefixes are masked", IPv4, Daddr{Prefix: netip.MustParsePrefix("10.6.0.0/20"), Not: true}, []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{0xff, 0xff, 0xf0, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{10, 6, 0, 0}},
		}},
		{"IPv6 source", IPv6, Saddr{Prefix: netip.MustParsePrefix("fd00:7::/64")}, []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 8},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0xfd, 0, 0, 7, 0, 0, 0, 0}},
		}},
		{"an interface name is padded", IPv4, IIfName{Name: "berth0"}, []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("berth0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")},
		}},
		{"a wildcard compares the prefix", IPv4, OIfName{Name: "berth*"}, []expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("berth")},
		}},
	}
	for _, tt := range tests {
		if got := tt.m.exprs(tt.f); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: exprs = %#v, want %#v", tt.name, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Table{Family: IPv4, Name: "t", Chains: []Chain{{Name: "c", Type: "nat", Hook: "prerouting"}, {Name: "d"}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(valid) = %v", err)
	}
	tests := []struct {
		name string
		f    Family
		r    Rule
		err  string
	}{
		{"IPv6 prefix in an ip table", IPv4, Rule{Match: []Match{Saddr{Prefix: netip.MustParsePrefix("fd00::/8")}}, Verdict: Verdict{Kind: Accept}}, "not an ip prefix"},
		{"sctp", IPv4, Rule{Match: []Match{Dport{Proto: "sctp", Port: 1}}, Verdict: Verdict{Kind: Accept}}, "not tcp or udp"},
		{"long interface name", IPv4, Rule{Match: []Match{IIfName{Name: "a-very-long-interface"}}, Verdict: Verdict{Kind: Accept}}, "interface name"},
		{"jump nowhere", IPv4, Rule{Verdict: Verdict{Kind: Jump, Chain: "nope"}}, "no chain"},
		{"dnat without a port", IPv4, Rule{Verdict: Verdict{Kind: DNAT, To: netip.MustParseAddrPort("10.0.0.1:80")}}, "port match"},
		{"dnat to the other family", IPv6, Rule{Match: []Match{Dport{Proto: "tcp", Port: 1}}, Verdict: Verdict{Kind: DNAT, To: netip.MustParseAddrPort("10.0.0.1:80")}}, "dnat needs an ip6 address"},
		{"no verdict", IPv4, Rule{}, "no verdict"},
	}
	for _, tt := range tests {
		tbl := ok
		tbl.Family = tt.f
		tbl.Chains = []Chain{{Name: "d"}, {Name: "c", Rules: []Rule{tt.r}}}
		err := tbl.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "chain c rule 1") {
			t.Errorf("%s: Validate = %v, want an error naming chain c rule 1 with %q", tt.name, err, tt.err)
		}
	}
	if err := (Table{Family: "inet", Name: "t"}).Validate(); err == nil {
		t.Errorf("Validate(inet) succeeded")
	}
}
