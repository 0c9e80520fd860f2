package network

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/network"
	"github.com/berthproject/berth/internal/network/nft"
	"github.com/berthproject/berth/internal/network/store"
)

// TestRulesetConformance applies rendered tables with every kind of rule
// (odd prefix lengths, IPv6, internal and non-masquerading networks, ports
// on host addresses) and wants nft to list exactly the rendering: the
// description, its text and the expressions sent to the kernel agree.
func TestRulesetConformance(t *testing.T) {
	h := newHost(t)
	st := store.New()
	add := func(n *store.Network) { st.Networks[n.ID] = n }
	add(&store.Network{ID: "d", Name: "bridge", Driver: "bridge", Default: true, Bridge: "berth0", Subnet: netip.MustParsePrefix("172.30.0.0/16"), Gateway: netip.MustParseAddr("172.30.0.1")})
	add(&store.Network{ID: "i", Name: "secret", Driver: "bridge", Bridge: "berth-i", Internal: true, Subnet: netip.MustParsePrefix("10.5.0.0/24")})
	add(&store.Network{ID: "n", Name: "nomasq", Driver: "bridge", Bridge: "berth-n", Subnet: netip.MustParsePrefix("10.6.0.0/20"), Options: map[string]string{network.OptionMasquerade: "false"}})
	add(&store.Network{ID: "v", Name: "dual", Driver: "bridge", Bridge: "berth-v", IPv6: true, Subnet: netip.MustParsePrefix("10.7.0.0/25"), Subnet6: netip.MustParsePrefix("fd00:7::/61")})
	st.Endpoints["e1"] = &store.Endpoint{ID: "e1aaaaaaaaaaaaaa", NetworkID: "v", IPv4: netip.MustParseAddr("10.7.0.2"), IPv6: netip.MustParseAddr("fd00:7::2"), Created: time.Now(),
		Ports: []store.Port{{Proto: "tcp", HostPort: 80, ContainerPort: 8080}, {Proto: "udp", HostIP: netip.MustParseAddr("fd00:250::1"), HostPort: 53, ContainerPort: 53},
			{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 81, ContainerPort: 81}}}
	st.Endpoints["e2"] = &store.Endpoint{ID: "e2bbbbbbbbbbbbbb", NetworkID: "n", IPv4: netip.MustParseAddr("10.6.0.2"), Created: time.Now(),
		Ports: []store.Port{{Proto: "udp", HostPort: 5353, ContainerPort: 53}}}
	// A table of the host's own, which berth must leave alone.
	foreign := "table inet hostfw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}\n"
	load := exec.Command("nft", "-f", "-")
	load.Stdin = strings.NewReader(foreign)
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", "hostfw").Run() })
	c, err := nft.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tables := network.Rules(st)
	if err := c.Apply(tables); err != nil {
		t.Fatal(err)
	}
	for _, tbl := range tables {
		if got, want := nftList(t, tbl.Family), tbl.String(); got != want {
			t.Errorf("nft list table %s berth:\n%s\nwant (rendered):\n%s", tbl.Family, got, want)
		}
	}
	// Applying again replaces, it does not add.
	if err := c.Apply(tables); err != nil {
		t.Fatal(err)
	}
	if got, want := nftList(t, nft.IPv4), tables[0].String(); got != want {
		t.Errorf("after a second apply:\n%s", got)
	}
	// Other tables are never touched.
	if out, err := exec.Command("nft", "list", "table", "inet", "hostfw").CombinedOutput(); err != nil || string(out) != foreign {
		t.Errorf("the host's table changed: %v\n%s", err, out)
	}
	h.cleanup()
	if out, err := exec.Command("nft", "list", "table", "inet", "hostfw").CombinedOutput(); err != nil || string(out) != foreign {
		t.Errorf("the host's table changed when berth's went: %v\n%s", err, out)
	}
}

// TestRulesCommittedOnlyOnChange: attaching and releasing containers that
// change nothing in the rendered tables commits nothing (the ruleset
// generation stays), yet a ruleset someone else changed meanwhile is made
// again, and a change of the tables is committed.
func TestRulesCommittedOnlyOnChange(t *testing.T) {
	h := newHost(t)
	c, err := nft.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	gen := func() uint32 {
		t.Helper()
		g, err := c.Generation()
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	h.attach(h.container("first"), network.AttachOptions{})
	before := gen()
	h.attach(h.container("second"), network.AttachOptions{})
	if err := h.m.Release(context.Background(), h.container("third").id); err != nil {
		t.Fatal(err)
	}
	if after := gen(); after != before {
		t.Errorf("attach without ports: ruleset generation %d -> %d, want no commit", before, after)
	}
	if out, err := exec.Command("nft", "delete", "table", "ip", network.TableName).CombinedOutput(); err != nil {
		t.Fatalf("nft delete table: %v: %s", err, out)
	}
	h.attach(h.container("fourth"), network.AttachOptions{})
	if got := nftList(t, nft.IPv4); !strings.Contains(got, "masquerade") {
		t.Errorf("after the table was deleted by someone else, attach left:\n%s", got)
	}
	h.attach(h.container("fifth"), network.AttachOptions{Ports: []network.PortRequest{{Proto: "tcp", HostPort: 18080, ContainerPort: 80}}})
	if got := nftList(t, nft.IPv4); !strings.Contains(got, "tcp dport 18080 dnat to") {
		t.Errorf("a published port is not in the table:\n%s", got)
	}
}
