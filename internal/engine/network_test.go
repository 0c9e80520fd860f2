package engine

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/container"
	mnetwork "github.com/moby/moby/api/types/network"
)

func TestParseLink(t *testing.T) {
	tests := []struct {
		in, name, alias string
		err             bool
	}{
		{"web", "web", "web", false},
		{"web:db", "web", "db", false},
		{"/web:/client/db", "web", "db", false}, // the recorded form
		{"a:b:c", "", "", true},
		{"", "", "", true},
		{"web:", "", "", true},
	}
	for _, tt := range tests {
		name, alias, err := parseLink(tt.in)
		if name != tt.name || alias != tt.alias || (err != nil) != tt.err {
			t.Errorf("parseLink(%q) = %q, %q, %v; want %q, %q, error %v", tt.in, name, alias, err, tt.name, tt.alias, tt.err)
		}
	}
}

// TestLinkEnv: the variables of Docker's links (moby daemon/links): the
// lowest port (tcp first) as ALIAS_PORT, a _START/_END group per run of
// consecutive ports, four variables a port, the link's name, and the
// linked container's variables but HOME and PATH.
func TestLinkEnv(t *testing.T) {
	ports := mnetwork.PortSet{}
	for _, p := range []string{"81/tcp", "80/udp", "80/tcp", "90/tcp"} {
		ports[mnetwork.MustParsePort(p)] = struct{}{}
	}
	l := link{alias: "db-1", ipv4: netip.MustParseAddr("172.30.0.5"), child: &Container{
		Name:   "web",
		Config: &container.Config{ExposedPorts: ports, Env: []string{"PATH=/bin", "HOME=/root", "K=v=w", "BARE"}},
	}}
	want := []string{
		"DB_1_PORT=tcp://172.30.0.5:80",
		"DB_1_PORT_80_TCP_START=tcp://172.30.0.5:80",
		"DB_1_PORT_80_TCP_ADDR=172.30.0.5",
		"DB_1_PORT_80_TCP_PROTO=tcp",
		"DB_1_PORT_80_TCP_PORT_START=80",
		"DB_1_PORT_80_TCP_END=tcp://172.30.0.5:81",
		"DB_1_PORT_80_TCP_PORT_END=81",
		"DB_1_PORT_80_TCP=tcp://172.30.0.5:80", "DB_1_PORT_80_TCP_ADDR=172.30.0.5", "DB_1_PORT_80_TCP_PORT=80", "DB_1_PORT_80_TCP_PROTO=tcp",
		"DB_1_PORT_80_UDP=udp://172.30.0.5:80", "DB_1_PORT_80_UDP_ADDR=172.30.0.5", "DB_1_PORT_80_UDP_PORT=80", "DB_1_PORT_80_UDP_PROTO=udp",
		"DB_1_PORT_81_TCP=tcp://172.30.0.5:81", "DB_1_PORT_81_TCP_ADDR=172.30.0.5", "DB_1_PORT_81_TCP_PORT=81", "DB_1_PORT_81_TCP_PROTO=tcp",
		"DB_1_PORT_90_TCP=tcp://172.30.0.5:90", "DB_1_PORT_90_TCP_ADDR=172.30.0.5", "DB_1_PORT_90_TCP_PORT=90", "DB_1_PORT_90_TCP_PROTO=tcp",
		"DB_1_NAME=/client/db-1",
		"DB_1_ENV_K=v=w",
	}
	if got := l.env("client"); !slices.Equal(got, want) {
		t.Errorf("env(client) =\n%q\nwant\n%q", got, want)
	}
}

func TestRenameLinks(t *testing.T) {
	tests := []struct {
		links []string
		want  []string
	}{
		{nil, nil},
		{[]string{"/web:/cli/db"}, []string{"/web2:/cli/db"}},                          // web is the linked container
		{[]string{"/db:/web/db", "/x:/web/y"}, []string{"/db:/web2/db", "/x:/web2/y"}}, // web links to others
		{[]string{"/webx:/cli/web"}, []string{"/webx:/cli/web"}},                       // another name, the alias alone
		{[]string{"/web:/web/self"}, []string{"/web2:/web2/self"}},
	}
	for _, tt := range tests {
		if got := renameLinks(slices.Clone(tt.links), "web", "web2"); !slices.Equal(got, tt.want) {
			t.Errorf("renameLinks(%q, web -> web2) = %q, want %q", tt.links, got, tt.want)
		}
	}
}
