// Package nft describes nftables tables as plain values and applies them.
//
// A Table is a description: chains, and rules made of matches and one
// verdict, in the order nft prints them. String renders it exactly as
// `nft list table` shows it, so golden files are readable and a root test
// can compare the kernel's listing with the description. Apply turns the
// description into nftables expressions and replaces the table in the kernel
// in one netlink batch (one transaction): a table is created if missing,
// deleted and created again with all its chains and rules, so that nobody
// ever sees half of it. Apply touches only the tables it is given: never
// another table, never the whole ruleset.
//
// Only what berth's rules need is here: interface names (exact or a prefix
// ending in "*"), source and destination prefixes, `fib daddr type local`,
// a transport protocol with a destination port, conntrack state and status,
// and the verdicts accept, drop, jump, dnat and masquerade.
package nft

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/expr"
)

// Family is a table's address family.
type Family string

// Families berth uses.
const (
	IPv4 Family = "ip"
	IPv6 Family = "ip6"
)

// Table is one nftables table.
type Table struct {
	Family Family
	Name   string
	Chains []Chain
}

// Chain is a chain of rules; a base chain hooks into the packet path, a
// regular chain (Hook "") is only reached by jumps.
type Chain struct {
	Name     string
	Type     string // "nat" or "filter" (base chains)
	Hook     string // "prerouting", "input", "forward", "output", "postrouting"; "" for a regular chain
	Priority int
	Rules    []Rule
}

// Rule is a list of matches, all of which must hold, and a verdict.
type Rule struct {
	Match   []Match
	Verdict Verdict
	Comment string
}

// Match is one condition of a rule.
type Match interface {
	text(Family) string
	exprs(Family) []expr.Any
}

// IIfName matches the input interface name; a Name ending in "*" matches
// every name with that prefix.
type IIfName struct {
	Name string
	Not  bool
}

// OIfName matches the output interface name, as IIfName.
type OIfName struct {
	Name string
	Not  bool
}

// Saddr matches the network-layer source address against a prefix.
type Saddr struct {
	Prefix netip.Prefix
	Not    bool
}

// Daddr matches the network-layer destination address against a prefix.
type Daddr struct {
	Prefix netip.Prefix
	Not    bool
}

// FibDaddrLocal matches packets addressed to one of this host's addresses.
type FibDaddrLocal struct{}

// Dport matches a transport protocol ("tcp" or "udp") and destination port.
type Dport struct {
	Proto string
	Port  uint16
}

// CtEstablished matches packets of connections already seen both ways, or
// related to one (`ct state established,related`).
type CtEstablished struct{}

// CtDNAT matches packets of connections whose destination was translated.
type CtDNAT struct{}

// VerdictKind says what a rule does with a matching packet.
type VerdictKind int

// Verdicts.
const (
	Accept VerdictKind = iota + 1
	Drop
	Jump
	DNAT
	Masquerade
)

// Verdict is a rule's action: Chain for Jump, To for DNAT.
type Verdict struct {
	Kind  VerdictKind
	Chain string
	To    netip.AddrPort
}

func ifname(key, name string, not bool) string {
	op := ""
	if not {
		op = "!= "
	}
	return fmt.Sprintf("%s %s%q", key, op, name)
}

func addrText(f Family, dir string, p netip.Prefix, not bool) string {
	s := p.String()
	if p.IsSingleIP() {
		s = p.Addr().String()
	}
	op := ""
	if not {
		op = "!= "
	}
	return fmt.Sprintf("%s %s %s%s", f, dir, op, s)
}

func (m IIfName) text(Family) string     { return ifname("iifname", m.Name, m.Not) }
func (m OIfName) text(Family) string     { return ifname("oifname", m.Name, m.Not) }
func (m Saddr) text(f Family) string     { return addrText(f, "saddr", m.Prefix, m.Not) }
func (m Daddr) text(f Family) string     { return addrText(f, "daddr", m.Prefix, m.Not) }
func (FibDaddrLocal) text(Family) string { return "fib daddr type local" }
func (m Dport) text(Family) string       { return fmt.Sprintf("%s dport %d", m.Proto, m.Port) }
func (CtEstablished) text(Family) string { return "ct state established,related" }
func (CtDNAT) text(Family) string        { return "ct status dnat" }

func (v Verdict) text() string {
	switch v.Kind {
	case Accept:
		return "accept"
	case Drop:
		return "drop"
	case Jump:
		return "jump " + v.Chain
	case DNAT:
		if v.To.Addr().Is6() {
			return fmt.Sprintf("dnat to [%s]:%d", v.To.Addr(), v.To.Port())
		}
		return "dnat to " + v.To.String()
	case Masquerade:
		return "masquerade"
	}
	return fmt.Sprintf("verdict(%d)", v.Kind)
}

// standard priorities with the hooks nft names them for (nft's prio2str):
// a priority within 10 of one of these prints as "name +/- offset".
var standardPriorities = []struct {
	name  string
	value int
	hooks string // "" for every hook
}{
	{"raw", -300, ""},
	{"mangle", -150, ""},
	{"dstnat", -100, "prerouting"},
	{"filter", 0, ""},
	{"security", 50, ""},
	{"srcnat", 100, "postrouting"},
}

func priorityText(hook string, prio int) string {
	for _, s := range standardPriorities {
		if s.hooks != "" && s.hooks != hook {
			continue
		}
		switch off := prio - s.value; {
		case off == 0:
			return s.name
		case off > 0 && off <= 10:
			return fmt.Sprintf("%s + %d", s.name, off)
		case off < 0 && off >= -10:
			return fmt.Sprintf("%s - %d", s.name, -off)
		}
	}
	return fmt.Sprint(prio)
}

// String renders the table as `nft list table FAMILY NAME` prints it.
func (t Table) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", t.Family, t.Name)
	for i, c := range t.Chains {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if c.Hook != "" {
			fmt.Fprintf(&b, "\t\ttype %s hook %s priority %s; policy accept;\n", c.Type, c.Hook, priorityText(c.Hook, c.Priority))
		}
		for _, r := range c.Rules {
			b.WriteString("\t\t")
			b.WriteString(r.text(t.Family))
			b.WriteString("\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func (r Rule) text(f Family) string {
	parts := make([]string, 0, len(r.Match)+2)
	for _, m := range r.Match {
		parts = append(parts, m.text(f))
	}
	parts = append(parts, r.Verdict.text())
	if r.Comment != "" {
		parts = append(parts, fmt.Sprintf("comment %q", r.Comment))
	}
	return strings.Join(parts, " ")
}

// Validate checks what the kernel would refuse, so that a bad description
// fails with a message naming the rule rather than a bare EINVAL.
func (t Table) Validate() error {
	if t.Family != IPv4 && t.Family != IPv6 {
		return fmt.Errorf("table %s: unknown family %q", t.Name, t.Family)
	}
	chains := map[string]bool{}
	for _, c := range t.Chains {
		chains[c.Name] = true
	}
	for _, c := range t.Chains {
		for i, r := range c.Rules {
			where := fmt.Sprintf("table %s %s chain %s rule %d (%s)", t.Family, t.Name, c.Name, i+1, r.text(t.Family))
			for _, m := range r.Match {
				switch m := m.(type) {
				case Saddr:
					if !m.Prefix.IsValid() || m.Prefix.Addr().Is6() != (t.Family == IPv6) {
						return fmt.Errorf("%s: source %v is not an %s prefix", where, m.Prefix, t.Family)
					}
				case Daddr:
					if !m.Prefix.IsValid() || m.Prefix.Addr().Is6() != (t.Family == IPv6) {
						return fmt.Errorf("%s: destination %v is not an %s prefix", where, m.Prefix, t.Family)
					}
				case Dport:
					if m.Proto != "tcp" && m.Proto != "udp" {
						return fmt.Errorf("%s: protocol %q is not tcp or udp", where, m.Proto)
					}
				case IIfName:
					if len(m.Name) == 0 || len(m.Name) > 15 {
						return fmt.Errorf("%s: interface name %q", where, m.Name)
					}
				case OIfName:
					if len(m.Name) == 0 || len(m.Name) > 15 {
						return fmt.Errorf("%s: interface name %q", where, m.Name)
					}
				}
			}
			switch r.Verdict.Kind {
			case Accept, Drop, Masquerade:
			case Jump:
				if !chains[r.Verdict.Chain] {
					return fmt.Errorf("%s: no chain %q to jump to", where, r.Verdict.Chain)
				}
			case DNAT:
				hasPort := false
				for _, m := range r.Match {
					if _, ok := m.(Dport); ok {
						hasPort = true
					}
				}
				if !r.Verdict.To.IsValid() || r.Verdict.To.Addr().Is6() != (t.Family == IPv6) || !hasPort {
					return fmt.Errorf("%s: dnat needs an %s address and a port match", where, t.Family)
				}
			default:
				return fmt.Errorf("%s: no verdict", where)
			}
		}
	}
	return nil
}
