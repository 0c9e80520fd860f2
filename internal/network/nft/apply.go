package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The expressions below are the ones nft itself generates for the same
// rule text (checked with `nft --debug=netlink`), so that nft lists our
// tables in the words String uses.

const reg = 1 // NFT_REG_1: every match loads into and compares register 1

func ifnameExprs(key expr.MetaKey, name string, not bool) []expr.Any {
	var data []byte
	if prefix, ok := cutStar(name); ok {
		data = []byte(prefix) // a prefix compares only its own bytes
	} else {
		data = make([]byte, unix.IFNAMSIZ)
		copy(data, name)
	}
	return []expr.Any{
		&expr.Meta{Key: key, Register: reg},
		&expr.Cmp{Op: cmpOp(not), Register: reg, Data: data},
	}
}

func cutStar(name string) (string, bool) {
	if n := len(name); n > 0 && name[n-1] == '*' {
		return name[:n-1], true
	}
	return "", false
}

func cmpOp(not bool) expr.CmpOp {
	if not {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

// addrExprs compares the address with a prefix the way nft does: a prefix
// that ends on a byte boundary loads just its bytes; any other loads the
// whole address and masks it.
func addrExprs(f Family, daddr bool, p netip.Prefix, not bool) []expr.Any {
	off := uint32(12) // IPv4 source
	switch {
	case f == IPv4 && daddr:
		off = 16
	case f == IPv6 && !daddr:
		off = 8
	case f == IPv6 && daddr:
		off = 24
	}
	p = p.Masked()
	addr := p.Addr().AsSlice()
	if p.Bits()%8 == 0 {
		n := uint32(p.Bits() / 8)
		return []expr.Any{
			&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Cmp{Op: cmpOp(not), Register: reg, Data: addr[:n]},
		}
	}
	n := uint32(len(addr))
	mask := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: cmpOp(not), Register: reg, Data: addr},
	}
}

func native32(v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return b
}

func ctBitsExprs(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg, Key: key},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: native32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: make([]byte, 4)},
	}
}

// conntrack bits (linux/netfilter/nf_conntrack_common.h)
const (
	ctStateEstablished = 1 << 1 // NF_CT_STATE_BIT(IP_CT_ESTABLISHED)
	ctStateRelated     = 1 << 2 // NF_CT_STATE_BIT(IP_CT_RELATED)
	ctStatusDNAT       = 1 << 5 // IPS_DST_NAT
	rtnLocal           = 2      // RTN_LOCAL
)

func (m IIfName) exprs(Family) []expr.Any { return ifnameExprs(expr.MetaKeyIIFNAME, m.Name, m.Not) }
func (m OIfName) exprs(Family) []expr.Any { return ifnameExprs(expr.MetaKeyOIFNAME, m.Name, m.Not) }
func (m Saddr) exprs(f Family) []expr.Any { return addrExprs(f, false, m.Prefix, m.Not) }
func (m Daddr) exprs(f Family) []expr.Any { return addrExprs(f, true, m.Prefix, m.Not) }

func (FibDaddrLocal) exprs(Family) []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: native32(rtnLocal)},
	}
}

func (m Dport) exprs(Family) []expr.Any {
	proto := byte(unix.IPPROTO_TCP)
	if m.Proto == "udp" {
		proto = unix.IPPROTO_UDP
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{proto}},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binary.BigEndian.AppendUint16(nil, m.Port)},
	}
}

func (CtEstablished) exprs(Family) []expr.Any {
	return ctBitsExprs(expr.CtKeySTATE, ctStateEstablished|ctStateRelated)
}

func (CtDNAT) exprs(Family) []expr.Any { return ctBitsExprs(expr.CtKeySTATUS, ctStatusDNAT) }

func (v Verdict) exprs(f Family) []expr.Any {
	switch v.Kind {
	case Accept:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
	case Drop:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	case Jump:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: v.Chain}}
	case Masquerade:
		return []expr.Any{&expr.Masq{}}
	case DNAT:
		fam := uint32(unix.NFPROTO_IPV4)
		if f == IPv6 {
			fam = unix.NFPROTO_IPV6
		}
		return []expr.Any{
			&expr.Immediate{Register: 1, Data: v.To.Addr().AsSlice()},
			&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, v.To.Port())},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: 2, RegProtoMax: 2, Specified: true},
		}
	}
	return nil
}

// Exprs is the rule as nftables expressions (for tests and Apply).
func (r Rule) Exprs(f Family) []expr.Any {
	var out []expr.Any
	for _, m := range r.Match {
		out = append(out, m.exprs(f)...)
	}
	return append(out, r.Verdict.exprs(f)...)
}

var hooks = map[string]*nftables.ChainHook{
	"prerouting":  nftables.ChainHookPrerouting,
	"input":       nftables.ChainHookInput,
	"forward":     nftables.ChainHookForward,
	"output":      nftables.ChainHookOutput,
	"postrouting": nftables.ChainHookPostrouting,
}

func family(f Family) nftables.TableFamily {
	if f == IPv6 {
		return nftables.TableFamilyIPv6
	}
	return nftables.TableFamilyIPv4
}

// Conn is a netlink connection to nftables in the network namespace it was
// opened in.
type Conn struct {
	c *nftables.Conn
	// gen asks for the ruleset generation (a request the nftables
	// package does not have).
	gen *netlink.Conn
}

// Open opens a connection in the calling thread's network namespace (the
// host's, for the engine).
func Open() (*Conn, error) {
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	gen, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		c.CloseLasting()
		return nil, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	return &Conn{c: c, gen: gen}, nil
}

// Close closes the connection.
func (c *Conn) Close() error {
	c.gen.Close()
	return c.c.CloseLasting()
}

// Apply replaces each given table by its description, and deletes the
// tables named in remove, all in one transaction: either every table is as
// described afterwards or nothing changed.
func (c *Conn) Apply(tables []Table, remove ...Table) error {
	for _, t := range tables {
		if err := t.Validate(); err != nil {
			return err
		}
	}
	for _, t := range remove {
		nt := &nftables.Table{Family: family(t.Family), Name: t.Name}
		// Adding an existing table is a no-op; it makes the delete that
		// follows valid whether or not the table was there.
		c.c.AddTable(nt)
		c.c.DelTable(nt)
	}
	for _, t := range tables {
		nt := &nftables.Table{Family: family(t.Family), Name: t.Name}
		c.c.AddTable(nt)
		c.c.DelTable(nt)
		c.c.AddTable(nt)
		chains := map[string]*nftables.Chain{}
		for _, ch := range t.Chains {
			nc := &nftables.Chain{Name: ch.Name, Table: nt}
			if ch.Hook != "" {
				hook, ok := hooks[ch.Hook]
				if !ok {
					return fmt.Errorf("table %s %s chain %s: unknown hook %q", t.Family, t.Name, ch.Name, ch.Hook)
				}
				prio := nftables.ChainPriority(ch.Priority)
				policy := nftables.ChainPolicyAccept
				nc.Hooknum, nc.Priority, nc.Policy = hook, &prio, &policy
				nc.Type = nftables.ChainTypeFilter
				if ch.Type == "nat" {
					nc.Type = nftables.ChainTypeNAT
				}
			}
			chains[ch.Name] = c.c.AddChain(nc)
		}
		for _, ch := range t.Chains {
			for _, r := range ch.Rules {
				nr := &nftables.Rule{Table: nt, Chain: chains[ch.Name], Exprs: r.Exprs(t.Family)}
				if r.Comment != "" {
					nr.UserData = userdata.AppendString(nil, userdata.TypeComment, r.Comment)
				}
				c.c.AddRule(nr)
			}
		}
	}
	if err := c.c.Flush(); err != nil {
		return fmt.Errorf("apply nftables tables %s: %w", names(tables, remove), err)
	}
	return nil
}

// Exists reports whether the table is in the kernel.
func (c *Conn) Exists(f Family, name string) (bool, error) {
	_, err := c.c.ListTableOfFamily(name, family(f))
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("list nftables table %s %s: %w", f, name, err)
	}
	return true, nil
}

func names(tables, remove []Table) string {
	s := ""
	for _, t := range tables {
		s += fmt.Sprintf(" %s %s", t.Family, t.Name)
	}
	for _, t := range remove {
		s += fmt.Sprintf(" -%s %s", t.Family, t.Name)
	}
	if s == "" {
		return "(none)"
	}
	return s[1:]
}
