package network

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/network/nft"
	"github.com/berthproject/berth/internal/network/store"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", p, got, want)
	}
}

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func defaultNet() *store.Network {
	return &store.Network{ID: "d000", Name: "bridge", Driver: DriverBridge, Default: true, Bridge: "berth0",
		Subnet: pfx("172.30.0.0/16"), Gateway: ip("172.30.0.1"), Created: t0}
}

func TestRulesGolden(t *testing.T) {
	tests := []struct {
		golden string
		nets   []*store.Network
		eps    []*store.Endpoint
	}{
		{
			golden: "rules-default-bridge.nft",
			nets:   []*store.Network{defaultNet(), {ID: "h", Name: "host", Driver: DriverHost}, {ID: "n", Name: "none", Driver: DriverNull}},
			eps: []*store.Endpoint{
				{ID: "e1aaaaaaaaaaaaaa", NetworkID: "d000", ContainerID: "c1", IPv4: ip("172.30.0.2"), Created: t0, Ports: []store.Port{
					{Proto: "tcp", HostPort: 8080, ContainerPort: 80},
					{Proto: "udp", HostPort: 5353, ContainerPort: 53},
					{Proto: "tcp", HostIP: ip("127.0.0.1"), HostPort: 9090, ContainerPort: 9000},
				}},
				{ID: "e2bbbbbbbbbbbbbb", NetworkID: "d000", ContainerID: "c2", IPv4: ip("172.30.0.3"), Created: t0, Ports: []store.Port{
					{Proto: "tcp", HostIP: ip("192.0.2.10"), HostPort: 443, ContainerPort: 8443},
				}},
				{ID: "e3cccccccccccccc", NetworkID: "d000", ContainerID: "c3", IPv4: ip("172.30.0.4"), Created: t0},
			},
		},
		{
			golden: "rules-user-networks.nft",
			nets: []*store.Network{defaultNet(),
				{ID: "i000", Name: "secret", Driver: DriverBridge, Bridge: "berth-i00000000", Internal: true, Subnet: pfx("10.5.0.0/24"), Gateway: ip("10.5.0.1")},
				{ID: "n000", Name: "nomasq", Driver: DriverBridge, Bridge: "berth-n00000000", Subnet: pfx("10.6.0.0/20"), Gateway: ip("10.6.0.1"),
					Options: map[string]string{OptionMasquerade: "false"}},
			},
			eps: []*store.Endpoint{
				{ID: "e4dddddddddddddd", NetworkID: "n000", ContainerID: "c4", IPv4: ip("10.6.0.2"), Created: t0, Ports: []store.Port{
					{Proto: "tcp", HostPort: 80, ContainerPort: 80},
				}},
			},
		},
		{
			golden: "rules-ipv6.nft",
			nets: []*store.Network{defaultNet(),
				{ID: "v000", Name: "dual", Driver: DriverBridge, Bridge: "berth-v00000000", IPv6: true,
					Subnet: pfx("10.7.0.0/24"), Gateway: ip("10.7.0.1"), Subnet6: pfx("fd00:7::/64"), Gateway6: ip("fd00:7::1")},
			},
			eps: []*store.Endpoint{
				{ID: "e5eeeeeeeeeeeeee", NetworkID: "v000", ContainerID: "c5", IPv4: ip("10.7.0.2"), IPv6: ip("fd00:7::2"), Created: t0, Ports: []store.Port{
					{Proto: "tcp", HostPort: 8080, ContainerPort: 80},
					{Proto: "tcp", HostIP: ip("fd00:250::1"), HostPort: 8081, ContainerPort: 81},
					{Proto: "udp", HostIP: ip("10.250.0.1"), HostPort: 8082, ContainerPort: 82},
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			st := store.New()
			for _, n := range tt.nets {
				st.Networks[n.ID] = n
			}
			for _, e := range tt.eps {
				st.Endpoints[e.ID] = e
			}
			var b strings.Builder
			for _, tbl := range Rules(st) {
				if err := tbl.Validate(); err != nil {
					t.Errorf("Validate: %v", err)
				}
				b.WriteString(tbl.String())
			}
			golden(t, tt.golden, b.String())
		})
	}
}

// TestRulesOrderIsStable: the same records render the same tables, however
// Go orders the maps.
func TestRulesOrderIsStable(t *testing.T) {
	st := store.New()
	st.Networks["d000"] = defaultNet()
	for i, port := range []uint16{8080, 81, 9000, 22, 7000, 443} {
		id := string(rune('a'+i)) + "0000000000000000"
		st.Endpoints[id] = &store.Endpoint{ID: id, NetworkID: "d000", IPv4: ip("172.30.0.2").Next(), Ports: []store.Port{{Proto: "tcp", HostPort: port, ContainerPort: 80}}}
	}
	first := Rules(st)[0].String()
	for i := 0; i < 20; i++ {
		if again := Rules(st)[0].String(); again != first {
			t.Fatalf("rendering differs between runs:\n%s\n%s", first, again)
		}
	}
	var _ = nft.IPv4
}
