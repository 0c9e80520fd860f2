package resolv

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", p, got, want)
	}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

const hostResolv = `# a typical host file
domain corp.example
search corp.example lab.example
nameserver 127.0.0.53
nameserver 10.0.0.2
nameserver fe80::1%eth0
nameserver 2001:db8::53
options edns0 trust-ad
`

func TestRenderHosts(t *testing.T) {
	tests := []struct {
		golden string
		hosts  Hosts
	}{
		{"hosts-bridge", Hosts{Hostname: "3f4e5d6c7b8a", Addrs: addrs("172.30.0.2")}},
		{"hosts-dual-stack-domain", Hosts{Hostname: "web", Domainname: "example.org", Addrs: addrs("172.31.0.5", "fd00:31::5")}},
		{"hosts-add-host", Hosts{Hostname: "web", Addrs: addrs("172.31.0.5"), Extra: []HostEntry{
			{"db", netip.MustParseAddr("10.1.2.3")}, {"host.docker.internal", netip.MustParseAddr("172.31.0.1")},
		}}},
		{"hosts-no-ipv6", Hosts{Hostname: "web", Addrs: addrs("172.31.0.5", "fd00:31::5"), NoIPv6: true}},
		{"hosts-none", Hosts{Hostname: "lonely"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) { golden(t, tt.golden, RenderHosts(tt.hosts)) })
	}
}

func TestRenderResolvConf(t *testing.T) {
	tests := []struct {
		golden string
		opts   ResolvOptions
	}{
		{"resolv-bridge", ResolvOptions{Host: []byte(hostResolv)}},
		{"resolv-bridge-ipv6", ResolvOptions{Host: []byte(hostResolv), IPv6: true}},
		{"resolv-bridge-only-loopback", ResolvOptions{Host: []byte("nameserver 127.0.0.1\nnameserver ::1\n")}},
		{"resolv-bridge-only-loopback-ipv6", ResolvOptions{Host: []byte("nameserver 127.0.0.1\n"), IPv6: true}},
		{"resolv-bridge-overrides", ResolvOptions{Host: []byte(hostResolv), DNS: addrs("9.9.9.9"), Search: []string{"a.example"}, Options: []string{"ndots:2", "timeout:1"}}},
		{"resolv-bridge-no-search", ResolvOptions{Host: []byte(hostResolv), Search: []string{"."}}},
		{"resolv-embedded", ResolvOptions{Host: []byte(hostResolv), Embedded: netip.MustParseAddr("172.31.0.1")}},
		{"resolv-embedded-dns", ResolvOptions{Host: []byte(hostResolv), Embedded: netip.MustParseAddr("172.31.0.1"), DNS: addrs("9.9.9.9"), Options: []string{"ndots:3"}}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) { golden(t, tt.golden, RenderResolvConf(tt.opts)) })
	}
}

func TestParseConf(t *testing.T) {
	got := ParseConf([]byte(hostResolv))
	want := Conf{
		Nameservers: addrs("127.0.0.53", "10.0.0.2", "2001:db8::53"),
		Search:      []string{"corp.example", "lab.example"},
		Options:     []string{"edns0", "trust-ad"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseConf = %+v, want %+v", got, want)
	}
}

func TestUpstreams(t *testing.T) {
	if got := Upstreams(ResolvOptions{Host: []byte(hostResolv)}); !reflect.DeepEqual(got, addrs("127.0.0.53", "10.0.0.2", "2001:db8::53")) {
		t.Errorf("Upstreams(host) = %v", got)
	}
	if got := Upstreams(ResolvOptions{Host: []byte(hostResolv), DNS: addrs("9.9.9.9")}); !reflect.DeepEqual(got, addrs("9.9.9.9")) {
		t.Errorf("Upstreams(--dns 9.9.9.9) = %v", got)
	}
}

func TestParseAddHost(t *testing.T) {
	gw := netip.MustParseAddr("172.31.0.1")
	tests := []struct {
		in   string
		want HostEntry
		err  error
	}{
		{"db:10.1.2.3", HostEntry{"db", netip.MustParseAddr("10.1.2.3")}, nil},
		{"db=10.1.2.3", HostEntry{"db", netip.MustParseAddr("10.1.2.3")}, nil},
		{"v6:fd00::1", HostEntry{"v6", netip.MustParseAddr("fd00::1")}, nil},
		{"v6=[fd00::1]", HostEntry{"v6", netip.MustParseAddr("fd00::1")}, nil},
		{"host.docker.internal:host-gateway", HostEntry{"host.docker.internal", gw}, nil},
		{"db", HostEntry{}, ErrInvalid},
		{":10.1.2.3", HostEntry{}, ErrInvalid},
		{"db:not-an-ip", HostEntry{}, ErrInvalid},
		{"a b:10.1.2.3", HostEntry{}, ErrInvalid},
	}
	for _, tt := range tests {
		got, err := ParseAddHost(tt.in, gw)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("ParseAddHost(%q) = %+v, %v; want %+v, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	if _, err := ParseAddHost("h:host-gateway", netip.Addr{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseAddHost(host-gateway) without a gateway = %v, want ErrInvalid", err)
	}
}

func TestRenderHostname(t *testing.T) {
	if got := string(RenderHostname("web")); got != "web\n" {
		t.Errorf("RenderHostname(web) = %q", got)
	}
}

func TestUpdateHostsAddr(t *testing.T) {
	hosts := "127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"172.30.0.2\tdb web1 web\n" +
		"fd00::2\tdb web1 web\n" +
		"172.30.0.5\tdbx other\n" +
		"172.30.0.2\tweb db\n" +
		"# 172.30.0.2\tdb\n" +
		"172.30.0.3\tself"
	want := "127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"172.30.0.9\tdb web1 web\n" +
		"fd00::9\tdb web1 web\n" +
		"172.30.0.5\tdbx other\n" +
		"172.30.0.2\tweb db\n" + // db is not the first name
		"# 172.30.0.2\tdb\n" +
		"172.30.0.3\tself"
	if got := string(UpdateHostsAddr([]byte(hosts), "db", netip.MustParseAddr("172.30.0.9"), netip.MustParseAddr("fd00::9"))); got != want {
		t.Errorf("UpdateHostsAddr(db) =\n%s\nwant\n%s", got, want)
	}
	// Without an IPv6 address the IPv6 entry keeps its own.
	got := string(UpdateHostsAddr([]byte(hosts), "db", netip.MustParseAddr("172.30.0.9"), netip.Addr{}))
	if !strings.Contains(got, "fd00::2\tdb web1 web\n") || !strings.Contains(got, "172.30.0.9\tdb web1 web\n") {
		t.Errorf("UpdateHostsAddr(db, no IPv6) =\n%s", got)
	}
}

func TestHostsEntries(t *testing.T) {
	hosts := "127.0.0.1\tlocalhost\n172.30.0.2\tdb web1 web\nfd00::2\tdb web1 web\n172.30.0.5\tdbx\n# 172.30.0.2\tdb\n"
	got := HostsEntries([]byte(hosts), "db")
	want := []HostEntry{{Name: "db web1 web", Addr: netip.MustParseAddr("172.30.0.2")}, {Name: "db web1 web", Addr: netip.MustParseAddr("fd00::2")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("HostsEntries(db) = %v, want %v", got, want)
	}
	if got := HostsEntries(nil, "db"); got != nil {
		t.Errorf("HostsEntries(nil) = %v", got)
	}
}
