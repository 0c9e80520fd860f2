// Package resolv renders a container's name-resolution files the way Docker
// writes them: /etc/hosts (localhost lines, --add-host entries, the
// container's own addresses and hostname), /etc/resolv.conf (the embedded
// DNS server on user-defined networks, else the host's resolvers without
// the loopback ones, with --dns, --dns-search and --dns-option applied) and
// /etc/hostname. The functions are pure; the engine writes the files.
package resolv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// ErrInvalid classifies bad --add-host, --dns and similar values.
var ErrInvalid = errors.New("invalid name resolution option")

// HostEntry is one extra /etc/hosts line (--add-host NAME:IP).
type HostEntry struct {
	Name string
	Addr netip.Addr
}

// HostGateway is the --add-host address that means "the host", as in Docker.
const HostGateway = "host-gateway"

// ParseAddHost reads one --add-host value: NAME:IP or NAME=IP, where IP may
// be an IPv6 address (bare or in brackets) or "host-gateway", replaced by
// gateway (the container's gateway on its network).
func ParseAddHost(s string, gateway netip.Addr) (HostEntry, error) {
	name, ip, ok := strings.Cut(s, "=")
	if !ok {
		name, ip, ok = strings.Cut(s, ":")
	}
	if !ok || name == "" || ip == "" {
		return HostEntry{}, fmt.Errorf("%w: --add-host %q: want NAME:IP", ErrInvalid, s)
	}
	if strings.ContainsAny(name, " \t#") {
		return HostEntry{}, fmt.Errorf("%w: --add-host %q: bad host name %q", ErrInvalid, s, name)
	}
	if ip == HostGateway {
		if !gateway.IsValid() {
			return HostEntry{}, fmt.Errorf("%w: --add-host %q: the container has no gateway address", ErrInvalid, s)
		}
		return HostEntry{Name: name, Addr: gateway}, nil
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]"))
	if err != nil {
		return HostEntry{}, fmt.Errorf("%w: --add-host %q: %q is not an IP address", ErrInvalid, s, ip)
	}
	return HostEntry{Name: name, Addr: a}, nil
}

// Hosts says what a container's /etc/hosts holds.
type Hosts struct {
	Hostname   string
	Domainname string
	// Addrs are the container's own addresses, its first network's first.
	Addrs []netip.Addr
	Extra []HostEntry // --add-host, in order
	// NoIPv6 leaves out the IPv6 localhost lines (IPv6 disabled in the
	// container).
	NoIPv6 bool
}

// RenderHosts renders /etc/hosts.
func RenderHosts(h Hosts) []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n")
	if !h.NoIPv6 {
		b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
		b.WriteString("fe00::0\tip6-localnet\n")
		b.WriteString("ff00::0\tip6-mcastprefix\n")
		b.WriteString("ff02::1\tip6-allnodes\n")
		b.WriteString("ff02::2\tip6-allrouters\n")
	}
	for _, e := range h.Extra {
		fmt.Fprintf(&b, "%s\t%s\n", e.Addr, e.Name)
	}
	if h.Hostname != "" {
		names := h.Hostname
		if h.Domainname != "" {
			names = h.Hostname + "." + h.Domainname + " " + h.Hostname
		}
		for _, a := range h.Addrs {
			if a.Is6() && h.NoIPv6 {
				continue
			}
			fmt.Fprintf(&b, "%s\t%s\n", a, names)
		}
	}
	return b.Bytes()
}

// UpdateHostsAddr gives the /etc/hosts content hosts with the address of
// every entry whose first name is name replaced: IPv4 entries by v4, IPv6
// ones by v6 (when valid). Docker does this to a linking container's file
// when the linked one gets a new address (libnetwork's etchosts.Update).
func UpdateHostsAddr(hosts []byte, name string, v4, v6 netip.Addr) []byte {
	lines := bytes.SplitAfter(hosts, []byte("\n"))
	var b bytes.Buffer
	for _, l := range lines {
		addr, names, ok := bytes.Cut(l, []byte("\t"))
		f := strings.Fields(string(names))
		old, err := netip.ParseAddr(string(addr))
		if !ok || err != nil || len(f) == 0 || f[0] != name {
			b.Write(l)
			continue
		}
		switch {
		case old.Is4() && v4.IsValid():
			addr = []byte(v4.String())
		case old.Is6() && v6.IsValid():
			addr = []byte(v6.String())
		}
		b.Write(addr)
		b.WriteByte('\t')
		b.Write(names)
	}
	return b.Bytes()
}

// HostsEntries are the entries of the /etc/hosts content hosts whose first
// name is name, with all their names.
func HostsEntries(hosts []byte, name string) []HostEntry {
	var out []HostEntry
	for _, l := range strings.Split(string(hosts), "\n") {
		addr, names, ok := strings.Cut(l, "\t")
		a, err := netip.ParseAddr(addr)
		f := strings.Fields(names)
		if ok && err == nil && len(f) > 0 && f[0] == name {
			out = append(out, HostEntry{Name: strings.Join(f, " "), Addr: a})
		}
	}
	return out
}

// RenderHostname renders /etc/hostname.
func RenderHostname(hostname string) []byte { return []byte(hostname + "\n") }

// Conf is the content of a resolv.conf that matters here.
type Conf struct {
	Nameservers []netip.Addr
	Search      []string
	Options     []string
}

// ParseConf reads resolv.conf content; lines it does not know are skipped.
func ParseConf(b []byte) Conf {
	var c Conf
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 {
				// A zone suffix (fe80::1%eth0) is meaningless in another
				// network namespace; such servers are dropped.
				if a, err := netip.ParseAddr(f[1]); err == nil && a.Zone() == "" {
					c.Nameservers = append(c.Nameservers, a)
				}
			}
		case "search", "domain": // the last one wins, as in glibc
			c.Search = slices.Clone(f[1:])
		case "options":
			c.Options = append(c.Options, f[1:]...)
		}
	}
	return c
}

// Default resolvers when the host has none a container can reach (Docker's).
var (
	DefaultNameservers4 = []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("8.8.4.4")}
	DefaultNameservers6 = []netip.Addr{netip.MustParseAddr("2001:4860:4860::8888"), netip.MustParseAddr("2001:4860:4860::8844")}
)

// ResolvOptions say what a container's /etc/resolv.conf holds.
type ResolvOptions struct {
	// Host is the host's resolv.conf content.
	Host []byte
	// Embedded is the embedded DNS server's address (containers on
	// user-defined networks); zero: the container uses resolvers itself.
	Embedded netip.Addr
	// DNS, Search and Options override the host's (--dns, --dns-search,
	// --dns-option). Search ["."] means no search domains.
	DNS     []netip.Addr
	Search  []string
	Options []string
	// IPv6 says the container has IPv6: the host's IPv6 resolvers are
	// kept, and IPv6 default resolvers are added when none is left.
	IPv6 bool
}

// Upstreams are the resolvers a container's names go to in the end: its
// --dns servers, else the host's. With the embedded server these are where
// it forwards to (loopback ones included: the server runs on the host).
func Upstreams(o ResolvOptions) []netip.Addr {
	if len(o.DNS) > 0 {
		return o.DNS
	}
	return ParseConf(o.Host).Nameservers
}

// RenderResolvConf renders /etc/resolv.conf.
func RenderResolvConf(o ResolvOptions) []byte {
	host := ParseConf(o.Host)
	search, options := host.Search, host.Options
	if len(o.Search) > 0 {
		search = o.Search
		if len(search) == 1 && search[0] == "." {
			search = nil
		}
	}
	if len(o.Options) > 0 {
		options = o.Options
	}
	var b bytes.Buffer
	b.WriteString("# Generated by berth.\n")
	if o.Embedded.IsValid() {
		fmt.Fprintf(&b, "nameserver %s\n", o.Embedded)
		writeSearchOptions(&b, search, withNdots0(options))
		fmt.Fprintf(&b, "\n# The embedded DNS server answers for containers' names and forwards\n# other names to: %s\n", joinAddrs(Upstreams(o)))
		return b.Bytes()
	}
	servers := o.DNS
	if len(servers) == 0 {
		for _, a := range host.Nameservers {
			// Loopback resolvers are the host's, not the container's;
			// IPv6 ones are unreachable without IPv6 (Docker drops both).
			if !a.IsLoopback() && (o.IPv6 || a.Is4()) {
				servers = append(servers, a)
			}
		}
		if len(servers) == 0 {
			servers = slices.Clone(DefaultNameservers4)
			if o.IPv6 {
				servers = append(servers, DefaultNameservers6...)
			}
		}
	}
	for _, a := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	writeSearchOptions(&b, search, options)
	return b.Bytes()
}

func writeSearchOptions(b *bytes.Buffer, search, options []string) {
	if len(search) > 0 {
		fmt.Fprintf(b, "search %s\n", strings.Join(search, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(b, "options %s\n", strings.Join(options, " "))
	}
}

// withNdots0 adds ndots:0 unless an ndots option is there: with the
// embedded server, a container's bare names are answered first (Docker's
// choice).
func withNdots0(options []string) []string {
	for _, o := range options {
		if strings.HasPrefix(o, "ndots:") {
			return options
		}
	}
	return append(slices.Clone(options), "ndots:0")
}

func joinAddrs(as []netip.Addr) string {
	if len(as) == 0 {
		return "(none)"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

// systemdStub is systemd-resolved's local stub resolver.
var systemdStub = netip.MustParseAddr("127.0.0.53")

// HostConf reads the host's resolv.conf for containers: /etc/resolv.conf,
// or, when that names only systemd-resolved's loopback stub (useless in a
// container's network namespace), the upstream list systemd-resolved keeps
// in /run/systemd/resolve/resolv.conf (Docker does the same).
func HostConf() ([]byte, error) {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil, fmt.Errorf("read the host's resolv.conf: %w", err)
	}
	ns := ParseConf(b).Nameservers
	if len(ns) == 1 && ns[0] == systemdStub {
		if up, err := os.ReadFile("/run/systemd/resolve/resolv.conf"); err == nil {
			return up, nil
		}
	}
	return b, nil
}
