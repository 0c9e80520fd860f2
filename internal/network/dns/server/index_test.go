package server

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/berthproject/berth/internal/network/store"
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func testState() *store.State {
	st := store.New()
	st.Networks["d"] = &store.Network{ID: "d", Name: "bridge", Driver: "bridge", Default: true, Subnet: netip.MustParsePrefix("172.30.0.0/16"), Gateway: ip("172.30.0.1")}
	st.Networks["a"] = &store.Network{ID: "a", Name: "app", Driver: "bridge", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: ip("10.1.0.1"),
		IPv6: true, Subnet6: netip.MustParsePrefix("fd00:1::/64"), Gateway6: ip("fd00:1::1")}
	st.Networks["b"] = &store.Network{ID: "b", Name: "back", Driver: "bridge", Internal: true, Subnet: netip.MustParsePrefix("10.2.0.0/24"), Gateway: ip("10.2.0.1")}
	st.Networks["e"] = &store.Network{ID: "e", Name: "empty", Driver: "bridge", Subnet: netip.MustParsePrefix("10.3.0.0/24"), Gateway: ip("10.3.0.1")}
	add := func(id, nw, cid, name, v4, v6 string, aliases ...string) {
		e := &store.Endpoint{ID: id, NetworkID: nw, ContainerID: cid, ContainerName: name, IPv4: ip(v4), Aliases: aliases}
		if v6 != "" {
			e.IPv6 = ip(v6)
		}
		st.Endpoints[id] = e
	}
	add("e1", "a", "c1aaaaaaaaaaaaaaaa", "web", "10.1.0.2", "fd00:1::2", "www")
	add("e2", "a", "c2bbbbbbbbbbbbbbbb", "api", "10.1.0.3", "")
	add("e3", "b", "c2bbbbbbbbbbbbbbbb", "api", "10.2.0.2", "")
	add("e4", "b", "c3cccccccccccccccc", "db", "10.2.0.3", "")
	add("e5", "d", "c4dddddddddddddddd", "old", "172.30.0.2", "")
	return st
}

func names(ms []*member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.name)
	}
	return out
}

func TestIndex(t *testing.T) {
	ix := buildIndex(testState())
	if want := []netip.Addr{ip("10.1.0.1"), ip("fd00:1::1"), ip("10.2.0.1")}; !slices.Equal(ix.listen, want) {
		t.Errorf("listen = %v, want %v (user networks with containers only)", ix.listen, want)
	}
	tests := []struct {
		name       string
		src, local string
		query      string
		want       []string
	}{
		{"by name", "10.1.0.2", "10.1.0.1", "api", []string{"api"}},
		{"by alias", "10.1.0.3", "10.1.0.1", "www", []string{"web"}},
		{"by short ID", "10.1.0.3", "10.1.0.1", "c1aaaaaaaaaa", []string{"web"}},
		{"name.network", "10.1.0.3", "10.1.0.1", "web.app", []string{"web"}},
		{"from IPv6", "fd00:1::2", "fd00:1::1", "api", []string{"api"}},
		{"a container's other network", "10.1.0.3", "10.1.0.1", "db", []string{"db"}},
		{"not a shared network", "10.1.0.2", "10.1.0.1", "db", nil},
		{"default bridge names are not served", "10.1.0.2", "10.1.0.1", "old", nil},
		{"unknown source in the subnet", "10.1.0.99", "10.1.0.1", "web", []string{"web"}},
	}
	for _, tt := range tests {
		nets, _ := ix.scope(ip(tt.src), ip(tt.local))
		if got := names(lookup(nets, tt.query)); !slices.Equal(got, tt.want) {
			t.Errorf("%s: lookup(%s) from %s = %v, want %v", tt.name, tt.query, tt.src, got, tt.want)
		}
	}
	if nets, _ := ix.scope(ip("192.0.2.9"), ip("10.1.0.1")); nets != nil {
		t.Errorf("a source outside berth's networks got a scope: %v", nets)
	}
	nets, asker := ix.scope(ip("10.2.0.3"), ip("10.2.0.1"))
	if asker == nil || asker.name != "db" || forwards(nets) {
		t.Errorf("internal-only container: asker %v, forwards %v; want db, false", asker, forwards(nets))
	}
	if nets, _ := ix.scope(ip("10.1.0.3"), ip("10.1.0.1")); !forwards(nets) {
		t.Errorf("a container on an internal and a normal network does not forward")
	}
}

func TestReverseAddr(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"2.0.1.10.in-addr.arpa", "10.1.0.2"},
		{"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa", "fd00:1::2"},
		{"1.10.in-addr.arpa", ""},
		{"example.com", ""},
	}
	for _, tt := range tests {
		a, ok := reverseAddr(tt.in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tt.want {
			t.Errorf("reverseAddr(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
