package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	berthnet "github.com/berthproject/berth/internal/network"
	"github.com/berthproject/berth/internal/network/dns"
	"github.com/berthproject/berth/internal/network/netns"
	"github.com/berthproject/berth/internal/network/portredirect"
)

// Networking end to end, in the suite's throwaway network namespace (see
// netns_test.go), which plays the host: the default bridge, published
// ports (from the host by 127.0.0.1 and by its address, from another host,
// and from a container by hairpin), user-defined networks with their DNS,
// connect and disconnect, the network modes, and that nothing is left of a
// container's network after rm or kill -9.

// netEnv is a ctrEnv whose end also checks the test's host namespace: no
// veth, no published port rule and no endpoint record is left once the
// containers are removed; the embedded DNS server is stopped.
type netEnv struct{ *ctrEnv }

func newNetEnv(t *testing.T) *netEnv {
	t.Helper()
	e := &netEnv{newCtrEnv(t)}
	for _, tool := range []string{"nft", "ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	// Runs before ctrEnv's cleanup (which removes the containers again and
	// checks for leftovers of the containers themselves).
	t.Cleanup(e.netCleanup)
	return e
}

func (e *netEnv) netCleanup() {
	t := e.t
	if ids := lines(e.run(nil, "ps", "-aq", "--no-trunc").stdout); len(ids) > 0 {
		e.run(nil, append([]string{"rm", "-f", "-v"}, ids...)...)
	}
	e.run(nil, "network", "prune", "-f")
	// The kernel deletes the veth pairs of destroyed namespaces in the
	// background (Manager.Release): give it a moment.
	for i := 0; i < 100 && slices.ContainsFunc(hostLinks(t), func(l string) bool { return strings.HasPrefix(l, "veth") }); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	for _, l := range hostLinks(t) {
		if strings.HasPrefix(l, "veth") || strings.HasPrefix(l, "berth-") {
			t.Errorf("after rm of every container and network prune, link %s is left", l)
		}
	}
	if rules := nftTable(t, "ip"); strings.Contains(rules, "dnat to") {
		t.Errorf("after rm of every container, published ports are left:\n%s", rules)
	}
	if eps := e.endpointRecords(); len(eps) > 0 {
		t.Errorf("after rm of every container, endpoint records are left: %v", eps)
	}
	// Nor is anything of the connect-time redirection of published ports:
	// no program attached to the cgroup2 root (BPF_PROG_QUERY), no pins.
	name := e.redirectName()
	if n, err := portredirect.Attached(name); err != nil || n != 0 {
		t.Errorf("after rm of every container, %d redirection programs are attached (%v)", n, err)
	}
	if _, err := os.Lstat(portredirect.Dir(name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after rm of every container, the redirection's pins are left in %s", portredirect.Dir(name))
		portredirect.Remove(name)
	}
	if pid := dns.PID(filepath.Join(e.state, "network", "dns")); pid > 0 {
		syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 200 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// The next test starts from an empty host namespace.
	for _, l := range hostLinks(t) {
		if strings.HasPrefix(l, "berth") || strings.HasPrefix(l, "veth") {
			exec.Command("ip", "link", "del", l).Run()
		}
	}
	exec.Command("nft", "delete", "table", "ip", "berth").Run()
	exec.Command("nft", "delete", "table", "ip6", "berth").Run()
}

// redirectName is the name of the store's connect-time redirection.
func (e *netEnv) redirectName() string {
	return berthnet.RedirectName(filepath.Join(e.root, "network"))
}

// redirects lists the store's redirections as "ADDR:PORT -> ADDR:PORT".
func (e *netEnv) redirects() []string {
	es, err := portredirect.Entries(e.redirectName())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, r := range es {
		out = append(out, netip.AddrPortFrom(r.Addr, r.Port).String()+" -> "+r.To.String())
	}
	slices.Sort(out)
	return out
}

// endpointRecords lists the container IDs of the network records'
// endpoints.
func (e *netEnv) endpointRecords() []string {
	var out []string
	for id := range e.hostLinksOf() {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// hostLinksOf maps the containers of the network records' endpoints to the
// host ends of their veth pairs.
func (e *netEnv) hostLinksOf() map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile(filepath.Join(e.root, "network", "state.json"))
	if err != nil {
		return out
	}
	var st struct {
		Endpoints map[string]struct {
			ContainerID string `json:"container"`
			HostIf      string `json:"hostIf"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		e.t.Errorf("network records: %v", err)
		return out
	}
	for _, ep := range st.Endpoints {
		out[ep.ContainerID] = ep.HostIf
	}
	return out
}

// hostLinks lists the links of the test's host namespace.
func hostLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link: %v", err)
	}
	var names []string
	for _, l := range lines(string(out)) {
		f := strings.Fields(l)
		if len(f) > 1 {
			names = append(names, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
		}
	}
	return names
}

// nftTable is `nft list table FAMILY berth` ("" when there is none).
func nftTable(t *testing.T, family string) string {
	out, err := exec.Command("nft", "list", "table", family, "berth").CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

// endpoint is the container's endpoint on a network, from inspect.
func (e *netEnv) endpoint(ref, netName string) *network.EndpointSettings {
	e.t.Helper()
	in, _ := e.inspectC(ref)
	ep := in.NetworkSettings.Networks[netName]
	if ep == nil {
		e.t.Fatalf("inspect %s: no endpoint on network %s: %+v", ref, netName, in.NetworkSettings.Networks)
	}
	return ep
}

// wget fetches url from the host namespace (ns "") or another one, with
// busybox wget; it returns the body and whether the fetch worked.
func wget(t *testing.T, ns, url string) (string, bool) {
	t.Helper()
	// busybox wget's -T crashes (Debian's 1.35); the context bounds it.
	args := []string{"busybox", "wget", "-q", "-O", "-", url}
	if ns != "" {
		args = append([]string{"nsenter", "--net=" + ns}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).Output()
	return string(out), err == nil
}

// otherHost makes a network namespace playing another host, joined to the
// test's host namespace by a veth pair: the host is 10.251.0.1/24 on it,
// the other host 10.251.0.2/24.
func otherHost(t *testing.T) string {
	t.Helper()
	// By unshare(1), not in this process: a thread that changed namespace
	// may be the main one, which Go never ends, and /proc/PID/ns/net would
	// then name the other host's namespace (see hostNS).
	path := filepath.Join(t.TempDir(), "other-host")
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("unshare", "--net="+path, "true").CombinedOutput(); err != nil {
		t.Fatalf("create the other host's namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { netns.Remove(path) })
	ip := func(ns string, args ...string) {
		t.Helper()
		if ns != "" {
			args = append([]string{"nsenter", "--net=" + ns, "ip"}, args...)
		} else {
			args = append([]string{"ip"}, args...)
		}
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	ip("", "link", "add", "bte2e-up", "type", "veth", "peer", "name", "bte2e-peer")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "bte2e-up").Run() })
	ip("", "link", "set", "bte2e-peer", "netns", path)
	ip("", "addr", "add", "10.251.0.1/24", "dev", "bte2e-up")
	ip("", "link", "set", "bte2e-up", "up")
	ip(path, "link", "set", "lo", "up")
	ip(path, "addr", "add", "10.251.0.2/24", "dev", "bte2e-peer")
	ip(path, "link", "set", "bte2e-peer", "up")
	ip(path, "route", "add", "default", "via", "10.251.0.1")
	return path
}

// TestNetworkBridge: by default a container is on the bridge network: eth0
// with an address of 172.30.0.0/16, a default route via the gateway, its
// name in /etc/hosts; containers on the bridge reach each other; inspect
// and network inspect show the endpoints as Docker does; stop takes the
// endpoint away and start gives one again.
func TestNetworkBridge(t *testing.T) {
	e := newNetEnv(t)
	a := e.runD("--name", "ca", box, "sleep", "1000")
	b := e.runD("--name", "cb", "--mac-address", "02:42:00:00:00:bb", box, "sleep", "1000")
	in, _ := e.inspectC(a)
	if in.HostConfig.NetworkMode != "bridge" {
		t.Errorf("inspect HostConfig.NetworkMode = %q, want bridge", in.HostConfig.NetworkMode)
	}
	epA, epB := e.endpoint(a, "bridge"), e.endpoint(b, "bridge")
	bridgeNet := netip.MustParsePrefix("172.30.0.0/16")
	if !bridgeNet.Contains(epA.IPAddress) || epA.IPPrefixLen != 16 || epA.Gateway != netip.MustParseAddr("172.30.0.1") {
		t.Errorf("bridge endpoint %+v, want an address of %s/16 via 172.30.0.1", epA, bridgeNet)
	}
	if epA.IPAddress == epB.IPAddress {
		t.Errorf("two containers got the same address %s", epA.IPAddress)
	}
	if want := fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", epA.IPAddress.As4()[0], epA.IPAddress.As4()[1], epA.IPAddress.As4()[2], epA.IPAddress.As4()[3]); epA.MacAddress.String() != want {
		t.Errorf("MacAddress = %s, want %s (02:42 and the address, as Docker)", epA.MacAddress, want)
	}
	if epB.MacAddress.String() != "02:42:00:00:00:bb" {
		t.Errorf("--mac-address: MacAddress = %s", epB.MacAddress)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(epA.EndpointID) || epA.NetworkID == "" {
		t.Errorf("EndpointID %q, NetworkID %q", epA.EndpointID, epA.NetworkID)
	}
	if id := strings.TrimSpace(e.ok("network", "inspect", "-f", "{{.Id}}", "bridge")); id != epA.NetworkID {
		t.Errorf("NetworkID %s, network inspect bridge's Id %s", epA.NetworkID, id)
	}
	if out := e.sh(a, "ip -4 addr show eth0; ip route"); !strings.Contains(out, epA.IPAddress.String()+"/16") || !strings.Contains(out, "default via 172.30.0.1 dev eth0") {
		t.Errorf("inside a: %s", out)
	}
	if out := e.sh(b, "cat /sys/class/net/eth0/address"); out != "02:42:00:00:00:bb\n" {
		t.Errorf("--mac-address: eth0's address %q", out)
	}
	hn := a[:12]
	if out := e.sh(a, "cat /etc/hosts"); !strings.Contains(out, epA.IPAddress.String()+"\t"+hn+"\n") || !strings.Contains(out, "127.0.0.1\tlocalhost\n") {
		t.Errorf("/etc/hosts of a:\n%s", out)
	}
	if out := e.sh(a, "cat /etc/hostname"); out != hn+"\n" {
		t.Errorf("/etc/hostname = %q", out)
	}
	if _, code, stderr := e.shAny(a, "ping -c 1 -W 5 "+epB.IPAddress.String()); code != 0 {
		t.Errorf("a cannot ping b on the bridge: %s", stderr)
	}
	if _, code, stderr := e.shAny(a, "ping -c 1 -W 5 172.30.0.1"); code != 0 {
		t.Errorf("a cannot ping its gateway: %s", stderr)
	}
	var nw []network.Inspect
	if err := json.Unmarshal([]byte(e.ok("network", "inspect", "bridge")), &nw); err != nil || len(nw) != 1 {
		t.Fatalf("network inspect bridge: %v", err)
	}
	if c, ok := nw[0].Containers[a]; !ok || c.Name != "ca" || c.IPv4Address.Addr() != epA.IPAddress || c.EndpointID != epA.EndpointID {
		t.Errorf("network inspect bridge: Containers[a] = %+v (%v)", c, ok)
	}
	if nw[0].IPAM.Config[0].Subnet != bridgeNet || nw[0].Options["com.docker.network.bridge.name"] != "berth0" {
		t.Errorf("network inspect bridge: %+v", nw[0])
	}

	e.ok("stop", "-t", "0", "ca")
	if in, _ := e.inspectC(a); in.NetworkSettings.Networks["bridge"] == nil || in.NetworkSettings.Networks["bridge"].IPAddress.IsValid() || in.NetworkSettings.SandboxKey != "" {
		t.Errorf("a stopped: NetworkSettings %+v, want the bridge network without an address", in.NetworkSettings)
	}
	if eps := e.endpointRecords(); !slices.Equal(eps, []string{b}) {
		t.Errorf("a stopped: endpoints of %v, want b's only", eps)
	}
	if out := e.ok("network", "inspect", "-f", "{{len .Containers}}", "bridge"); out != "1\n" {
		t.Errorf("a stopped: the bridge has %s containers", out)
	}
	e.ok("start", "ca")
	if ep := e.endpoint(a, "bridge"); !bridgeNet.Contains(ep.IPAddress) {
		t.Errorf("a started again: endpoint %+v", ep)
	}
	e.ok("restart", "-t", "0", "ca")
	if _, code, stderr := e.shAny(a, "ping -c 1 -W 5 "+epB.IPAddress.String()); code != 0 {
		t.Errorf("after restart, a cannot ping b: %s", stderr)
	}
}

// TestNetworkPublish: -p publishes in the kernel: from the host by
// 127.0.0.1 and by its addresses, from another host, from a container
// through the host's address (hairpin); port, ps and inspect show the real
// mappings; -P and host port ranges pick free ports; a host port taken is
// refused before anything is created; stop unpublishes.
func TestNetworkPublish(t *testing.T) {
	e := newNetEnv(t)
	other := otherHost(t)
	web := e.runD("--name", "web", "-p", "18080:80", "-p", "127.0.0.1:18081:81/udp", "--expose", "9999", box, "httpd", "-f", "-p", "80", "-h", "/etc")
	want := web[:12] + "\n" // the container's /etc/hostname
	waitFor(t, "httpd in web", func() bool { _, ok := wget(t, "", "http://127.0.0.1:18080/hostname"); return ok })
	for _, c := range []struct{ what, ns, url string }{
		{"the host by 127.0.0.1", "", "http://127.0.0.1:18080/hostname"},
		{"the host by localhost", "", "http://localhost:18080/hostname"},
		{"the host by its address", "", "http://10.251.0.1:18080/hostname"},
		{"the host by the bridge's address", "", "http://172.30.0.1:18080/hostname"},
		{"another host", other, "http://10.251.0.1:18080/hostname"},
	} {
		if got, ok := wget(t, c.ns, c.url); !ok || got != want {
			t.Errorf("from %s: %s = %q (%v), want %q", c.what, c.url, got, ok, want)
		}
	}
	// Host clients are redirected at connect(): 18080/tcp on each of the
	// host's IPv4 addresses; the UDP port is not.
	webAt := e.endpoint(web, "bridge").IPAddress.String() + ":80"
	if got, want := e.redirects(), []string{"10.251.0.1:18080 -> " + webAt, "127.0.0.1:18080 -> " + webAt, "172.30.0.1:18080 -> " + webAt, "[::1]:18080 -> " + webAt}; !slices.Equal(got, want) {
		t.Errorf("redirections = %q, want %q", got, want)
	}
	// No proxy process: nothing listens on the published port, the kernel
	// (a DNAT rule, or the redirection) serves it.
	if out, err := exec.Command("ss", "-Htlnp", "sport = :18080").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("something listens on the published port 18080 on the host (%v):\n%s", err, out)
	}
	if rules := nftTable(t, "ip"); !strings.Contains(rules, "tcp dport 18080 dnat to "+e.endpoint(web, "bridge").IPAddress.String()+":80") {
		t.Errorf("no DNAT rule for 18080:\n%s", rules)
	}
	client := e.runD("--name", "client", box, "sleep", "1000")
	if out, code, stderr := e.shAny(client, "timeout 10 wget -q -O - http://10.251.0.1:18080/hostname"); code != 0 || out != want {
		t.Errorf("hairpin from a container through the host's address: %q, exit %d, %s", out, code, stderr)
	}
	if out, code, stderr := e.shAny(web, "timeout 10 wget -q -O - http://10.251.0.1:18080/hostname"); code != 0 || out != want {
		t.Errorf("hairpin from the container to its own published port: %q, exit %d, %s", out, code, stderr)
	}
	// 127.0.0.1:18081/udp is published on 127.0.0.1 only.
	// [::]:18080 too, as Docker lists it: host clients reach it by [::1]
	// (the redirection), as docker-proxy's [::] serves them.
	if got := lines(e.ok("port", "web")); !slices.Equal(got, []string{"80/tcp -> 0.0.0.0:18080", "80/tcp -> [::]:18080", "81/udp -> 127.0.0.1:18081"}) {
		t.Errorf("port web = %q", got)
	}
	if out := e.ok("port", "web", "81/udp"); out != "127.0.0.1:18081\n" {
		t.Errorf("port web 81/udp = %q", out)
	}
	if out := e.ok("ps", "--filter", "name=web", "--format", "{{.Ports}}"); out != "9999/tcp, 0.0.0.0:18080->80/tcp, [::]:18080->80/tcp, 127.0.0.1:18081->81/udp\n" {
		// Docker's CLI order: ports published on their own number and
		// unpublished ones first (grouped), then the other mappings.
		t.Errorf("ps PORTS = %q", out)
	}
	in, raw := e.inspectC(web)
	p80 := in.NetworkSettings.Ports[network.MustParsePort("80/tcp")]
	if len(p80) != 2 || p80[0].HostIP != netip.IPv4Unspecified() || p80[0].HostPort != "18080" || p80[1].HostIP != netip.IPv6Unspecified() {
		t.Errorf("inspect NetworkSettings.Ports[80/tcp] = %+v", p80)
	}
	if ports := raw["NetworkSettings"].(map[string]any)["Ports"].(map[string]any); ports["9999/tcp"] != nil {
		t.Errorf("inspect: an exposed port without a binding is %v, want null", ports["9999/tcp"])
	}

	// -P publishes the exposed ports on free host ports; a range gives one
	// port of it; host port 0 is any free one (Docker's reading).
	all := e.runD("--name", "all", "-P", "--expose", "80", "-p", "18090-18095:8080", "-p", "127.0.0.1:0:81", box, "httpd", "-f", "-p", "80", "-h", "/etc")
	hostPort := strings.TrimPrefix(lines(e.ok("port", "all", "80"))[0], "0.0.0.0:")
	if n := atoi(hostPort); n < 1024 {
		t.Errorf("-P: port all 80 = %q, want a port of the ephemeral range", hostPort)
	}
	waitFor(t, "httpd in all", func() bool { _, ok := wget(t, "", "http://127.0.0.1:"+hostPort+"/hostname"); return ok })
	if got, _ := wget(t, other, "http://10.251.0.1:"+hostPort+"/hostname"); got != all[:12]+"\n" {
		t.Errorf("-P port %s from another host: %q", hostPort, got)
	}
	if n := atoi(strings.TrimPrefix(lines(e.ok("port", "all", "8080"))[0], "0.0.0.0:")); n < 18090 || n > 18095 {
		t.Errorf("-p 18090-18095:8080 published on %d", n)
	}
	if out := strings.TrimSpace(e.ok("port", "all", "81")); !strings.HasPrefix(out, "127.0.0.1:") || atoi(strings.TrimPrefix(out, "127.0.0.1:")) < 1024 {
		t.Errorf("-p 127.0.0.1:0:81: port all 81 = %q, want 127.0.0.1:PORT of the ephemeral range", out)
	}

	// A host port that is taken: refused, and nothing is created.
	before := lines(e.ok("ps", "-aq", "--no-trunc"))
	if r := e.run(nil, "run", "-d", "-p", "18080:80", box, "sleep", "1000"); r.code != 125 || !strings.Contains(r.stderr, "18080") || !strings.HasPrefix(r.stderr, "Error") {
		t.Errorf("run -p 18080 taken by web: %v", r)
	}
	if l, err := netListen("127.0.0.1:18200"); err == nil {
		if r := e.run(nil, "run", "-d", "-p", "127.0.0.1:18200:80", box, "sleep", "1000"); r.code != 125 || !strings.Contains(r.stderr, "18200") {
			t.Errorf("run -p 18200 taken by a program of the host: %v", r)
		}
		l.Close()
	}
	if after := lines(e.ok("ps", "-aq", "--no-trunc")); !slices.Equal(after, before) {
		t.Errorf("a refused run created a container: %q -> %q", before, after)
	}
	// create does not refuse (as Docker), start does, and the container
	// stays created.
	id := strings.TrimSpace(e.ok("create", "--name", "late", "-p", "18080:80", box, "sleep", "1000"))
	e.remember(id)
	if r := e.run(nil, "start", "late"); r.code == 0 || !strings.Contains(r.stderr, "18080") {
		t.Errorf("start of a container whose host port is taken: %v", r)
	}
	if st := e.cstate(id); st.Status != container.StateCreated {
		t.Errorf("after the refused start: %s", st.Status)
	}
	if eps := e.endpointRecords(); slices.Contains(eps, id) {
		t.Errorf("the refused start left an endpoint")
	}

	e.ok("stop", "-t", "0", "web")
	if rules := nftTable(t, "ip"); strings.Contains(rules, "18080") {
		t.Errorf("web stopped: its port is still published:\n%s", rules)
	}
	if out := e.ok("port", "web"); out != "" {
		t.Errorf("port of a stopped container = %q", out)
	}
	if _, ok := wget(t, "", "http://127.0.0.1:18080/hostname"); ok {
		t.Errorf("web stopped: 127.0.0.1:18080 still answers")
	}
	for _, r := range e.redirects() {
		if strings.Contains(r, ":18080 ") {
			t.Errorf("web stopped: its port is still redirected: %s", r)
		}
	}
	e.ok("start", "late") // the port is free now
	e.ok("rm", "-f", "late")
	e.ok("start", "web")
	waitFor(t, "httpd in web after start", func() bool { got, _ := wget(t, "", "http://127.0.0.1:18080/hostname"); return got == want })
}

// TestNetworkUserDefined: network create with Docker's flags and JSON;
// containers on it resolve each other by name, alias and short ID through
// the embedded DNS server (a container that joins later too) and reach
// each other; other names are forwarded; the network is isolated from the
// default bridge; rm is refused while containers use it.
func TestNetworkUserDefined(t *testing.T) {
	e := newNetEnv(t)
	id := strings.TrimSpace(e.ok("network", "create", "--subnet", "10.123.0.0/24", "--gateway", "10.123.0.254",
		"--ip-range", "10.123.0.128/25", "-l", "team=blue", "e2enet"))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("network create printed %q", id)
	}
	var nw []network.Inspect
	if err := json.Unmarshal([]byte(e.ok("network", "inspect", "e2enet")), &nw); err != nil || len(nw) != 1 {
		t.Fatalf("network inspect: %v", err)
	}
	n := nw[0]
	if n.ID != id || n.Name != "e2enet" || n.Driver != "bridge" || n.Scope != "local" || n.Labels["team"] != "blue" || n.Internal || n.EnableIPv6 ||
		len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet.String() != "10.123.0.0/24" || n.IPAM.Config[0].Gateway.String() != "10.123.0.254" ||
		n.IPAM.Config[0].IPRange.String() != "10.123.0.128/25" || n.IPAM.Driver != "default" || len(n.Containers) != 0 {
		t.Errorf("network inspect e2enet = %+v", n)
	}
	if got := lines(e.ok("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}")); !slices.Equal(got, []string{"bridge bridge local", "e2enet bridge local", "host host local", "none null local"}) {
		t.Errorf("network ls = %q", got)
	}
	if got := e.ok("network", "ls", "-q", "--filter", "label=team=blue"); got != id[:12]+"\n" {
		t.Errorf("network ls -q --filter label=team=blue = %q", got)
	}
	if got := lines(e.ok("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}")); !slices.Equal(got, []string{"e2enet"}) {
		t.Errorf("network ls --filter type=custom = %q", got)
	}

	db := e.runD("--name", "db", "--network", "e2enet", "--network-alias", "database", "--ip", "10.123.0.10", box, "sleep", "1000")
	app := e.runD("--name", "app", "--network", "e2enet", box, "sleep", "1000")
	ep := e.endpoint(db, "e2enet")
	if ep.IPAddress.String() != "10.123.0.10" || ep.Gateway.String() != "10.123.0.254" || !slices.Equal(ep.Aliases, []string{"database"}) ||
		!slices.Contains(ep.DNSNames, "db") || !slices.Contains(ep.DNSNames, "database") || !slices.Contains(ep.DNSNames, db[:12]) ||
		ep.IPAMConfig == nil || ep.IPAMConfig.IPv4Address.String() != "10.123.0.10" {
		t.Errorf("db's endpoint %+v", ep)
	}
	if a := e.endpoint(app, "e2enet").IPAddress; !netip.MustParsePrefix("10.123.0.128/25").Contains(a) {
		t.Errorf("app got %s, outside --ip-range 10.123.0.128/25", a)
	}
	if out := e.sh(app, "cat /etc/resolv.conf"); !strings.Contains(out, "nameserver 10.123.0.254\n") {
		t.Errorf("app's resolv.conf names not the embedded server:\n%s", out)
	}
	resolve := func(from, name string) string {
		t.Helper()
		out, code, _ := e.shAny(from, "nslookup "+name+" | sed -n '/^Name:/,$p' | grep -m1 Address | cut -d' ' -f2")
		if code != 0 {
			return ""
		}
		return strings.TrimSpace(out)
	}
	for _, name := range []string{"db", "database", db[:12], "db.e2enet"} {
		if got := resolve(app, name); got != "10.123.0.10" {
			t.Errorf("app resolves %s to %q, want 10.123.0.10", name, got)
		}
	}
	if _, code, stderr := e.shAny(app, "ping -c 1 -W 5 db"); code != 0 {
		t.Errorf("app cannot ping db by name: %s", stderr)
	}
	late := e.runD("--name", "late", "--network", "e2enet", box, "sleep", "1000")
	if got, want := resolve(app, "late"), e.endpoint(late, "e2enet").IPAddress.String(); got != want {
		t.Errorf("a container that joined later: app resolves late to %q, want %s", got, want)
	}
	// A container on the default bridge neither resolves nor reaches them.
	outsider := e.runD("--name", "outsider", box, "sleep", "1000")
	if _, code, _ := e.shAny(outsider, "ping -c 1 -W 2 10.123.0.10"); code == 0 {
		t.Errorf("a container on the default bridge reaches the user-defined network")
	}
	if out := e.ok("network", "inspect", "-f", "{{len .Containers}}", "e2enet"); out != "3\n" {
		t.Errorf("network inspect: %s containers, want 3", out)
	}

	if r := e.run(nil, "network", "rm", "e2enet"); r.code == 0 || !strings.Contains(r.stderr, "active endpoints") {
		t.Errorf("network rm of a network in use: %v", r)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "--subnet", "10.123.0.0/16", "overlap"}, "overlaps"},
		{[]string{"network", "create", "e2enet"}, "already exists"},
		{[]string{"network", "create", "--subnet", "10.200.0.0/24", "--gateway", "10.201.0.1", "badgw"}, "10.201.0.1"},
		{[]string{"network", "create", "--subnet", "nonsense", "badsub"}, "nonsense"},
		{[]string{"network", "rm", "bridge"}, "pre-defined"},
		{[]string{"network", "rm", "nosuch"}, "nosuch"},
		{[]string{"network", "inspect", "nosuch"}, "nosuch"},
		{[]string{"network", "connect", "nosuch", "app"}, "nosuch"},
	} {
		if r := e.run(nil, bad.args...); r.code == 0 || !strings.Contains(r.stderr, bad.want) || !strings.HasPrefix(r.stderr, "Error") {
			t.Errorf("%v: %v, want an error with %q", bad.args, r, bad.want)
		}
	}
	if got := lines(e.ok("network", "ls", "-q")); len(got) != 4 {
		t.Errorf("refused creates made networks: %q", got)
	}
	// Bad input of run and create: exit 125, nothing created.
	before := lines(e.ok("ps", "-aq", "--no-trunc"))
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--network", "nosuchnet"}, "nosuchnet"},
		{[]string{"--ip", "172.30.9.9"}, "--ip"},
		{[]string{"--network-alias", "x"}, "--network-alias"},
		{[]string{"--network", "e2enet", "--ip", "10.9.9.9"}, "10.9.9.9"},
		{[]string{"--network", "e2enet", "--ip", "10.123.0.10"}, "10.123.0.10"}, // db's: refused at start
		{[]string{"--mac-address", "nonsense"}, "--mac-address"},
		{[]string{"--add-host", "nocolon"}, "--add-host"},
		{[]string{"--net", "container:nosuch"}, "nosuch"},
	} {
		args := append(append([]string{"run", "-d"}, bad.args...), box, "sleep", "1000")
		if r := e.run(nil, args...); r.code != 125 || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("run %v: %v, want exit 125 naming %q", bad.args, r, bad.want)
		}
	}
	for _, id := range lines(e.ok("ps", "-aq", "--no-trunc")) {
		if !slices.Contains(before, id) {
			// A start refused after the create leaves the container created,
			// as in Docker; nothing else may be made.
			if st := e.cstate(id); st.Status != container.StateCreated {
				t.Errorf("a refused run left container %s %s", id[:12], st.Status)
			}
			e.ok("rm", id)
		}
	}

	for _, c := range []string{db, app, late} {
		e.ok("rm", "-f", c)
	}
	e.ok("network", "rm", "e2enet")
	for _, l := range hostLinks(t) {
		if strings.HasPrefix(l, "berth-") {
			t.Errorf("network rm left bridge %s", l)
		}
	}
	// prune removes the unused ones only.
	e.ok("network", "create", "unused")
	e.ok("network", "create", "used")
	e.runD("--name", "user", "--network", "used", box, "sleep", "1000")
	if out := e.ok("network", "prune", "-f"); out != "Deleted Networks:\nunused\n\n" {
		t.Errorf("network prune = %q", out)
	}
}

// TestNetworkConnect: network connect and disconnect on a running
// container (a new interface, its names in DNS, /etc/hosts updated) and on
// a stopped one (it joins when it starts).
func TestNetworkConnect(t *testing.T) {
	e := newNetEnv(t)
	e.ok("network", "create", "--subnet", "10.124.0.0/24", "side")
	peer := e.runD("--name", "peer", "--network", "side", box, "sleep", "1000")
	web := e.runD("--name", "web", box, "sleep", "1000")
	e.ok("network", "connect", "--alias", "www", "--ip", "10.124.0.99", "side", "web")
	if out := e.sh(web, "ip -4 addr show eth1"); !strings.Contains(out, "10.124.0.99/24") {
		t.Errorf("connected: eth1 of web:\n%s", out)
	}
	if out := e.sh(web, "cat /etc/hosts"); !strings.Contains(out, "10.124.0.99\t"+web[:12]) {
		t.Errorf("connected: web's /etc/hosts lacks its new address:\n%s", out)
	}
	for _, name := range []string{"web", "www"} {
		if out, code, _ := e.shAny(peer, "nslookup "+name); code != 0 || !strings.Contains(out, "10.124.0.99") {
			t.Errorf("peer resolves %s: %q", name, out)
		}
	}
	// web, started on the default bridge, now uses the embedded DNS server
	// (Docker: the sandbox's resolver starts on the join and rewrites
	// resolv.conf), and resolves peer by name.
	peerIP := e.endpoint(peer, "side").IPAddress.String()
	if out, code, _ := e.shAny(web, "nslookup peer"); code != 0 || !strings.Contains(out, peerIP) {
		t.Errorf("connected: web resolves peer: %q (resolv.conf:\n%s)", out, e.sh(web, "cat /etc/resolv.conf"))
	}
	// A resolv.conf the user changed is left alone, as in Docker.
	mod := e.runD("--name", "mod", box, "sleep", "1000")
	e.sh(mod, "echo 'nameserver 192.0.2.53' > /etc/resolv.conf")
	e.ok("network", "connect", "side", "mod")
	if out := e.sh(mod, "cat /etc/resolv.conf"); out != "nameserver 192.0.2.53\n" {
		t.Errorf("connected: a resolv.conf the user wrote was changed to:\n%s", out)
	}
	if in, _ := e.inspectC(web); len(in.NetworkSettings.Networks) != 2 || in.NetworkSettings.Networks["side"].IPAddress.String() != "10.124.0.99" {
		t.Errorf("inspect after connect: %+v", in.NetworkSettings.Networks)
	}
	if r := e.run(nil, "network", "connect", "side", "web"); r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("connect twice: %v", r)
	}
	e.ok("network", "disconnect", "side", "web")
	if _, code, _ := e.shAny(web, "ip addr show eth1"); code == 0 {
		t.Errorf("disconnected: web still has eth1")
	}
	// The embedded server was on side's gateway: back to the host's
	// resolvers (Docker keeps 127.0.0.11, which its daemon still serves).
	if out := e.sh(web, "cat /etc/resolv.conf"); strings.Contains(out, "10.124.0.1") || strings.Contains(out, "ndots:0") {
		t.Errorf("disconnected from its only user-defined network: web's resolv.conf still names the embedded server:\n%s", out)
	}
	if out, code, _ := e.shAny(peer, "nslookup web"); code == 0 && strings.Contains(out, "10.124.0.99") {
		t.Errorf("disconnected: peer still resolves web: %q", out)
	}
	if r := e.run(nil, "network", "disconnect", "side", "web"); r.code == 0 || !strings.Contains(r.stderr, "not connected") {
		t.Errorf("disconnect twice: %v", r)
	}
	// A stopped container joins at its start.
	id := strings.TrimSpace(e.ok("create", "--name", "later", box, "sleep", "1000"))
	e.remember(id)
	e.ok("network", "connect", "side", "later")
	if in, _ := e.inspectC(id); len(in.NetworkSettings.Networks) != 2 {
		t.Errorf("a created container connected: %+v", in.NetworkSettings.Networks)
	}
	e.ok("start", "later")
	out := e.sh(id, "ip -4 addr; ip route")
	if !strings.Contains(out, "172.30.") || !strings.Contains(out, "10.124.0.") || !strings.Contains(out, "default via 172.30.0.1") {
		t.Errorf("started after connect: %s", out)
	}
	if r := e.run(nil, "network", "connect", "side", e.runD("--net", "host", box, "sleep", "1000")); r.code == 0 {
		t.Errorf("connect of a --net host container: %v", r)
	}
	// peer leaves the network whose gateway served its DNS: it moves to
	// the server of the other user-defined network it is on.
	e.ok("network", "create", "--subnet", "10.125.0.0/24", "side2")
	e.ok("network", "connect", "side2", "peer")
	e.ok("network", "disconnect", "side", "peer")
	if out := e.sh(peer, "cat /etc/resolv.conf"); !strings.Contains(out, "nameserver 10.125.0.1\n") {
		t.Errorf("peer left side for side2: resolv.conf:\n%s", out)
	}
}

// TestNetworkModes: none has loopback only, host the host's stack,
// container:X the other container's (same address, same /etc/hosts), each
// shown by inspect as Docker does.
func TestNetworkModes(t *testing.T) {
	e := newNetEnv(t)
	none := e.runD("--net", "none", box, "sleep", "1000")
	if out := e.sh(none, "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"); out != "lo\n" {
		t.Errorf("--net none: interfaces %q", out)
	}
	if in, _ := e.inspectC(none); len(in.NetworkSettings.Networks) != 1 || in.NetworkSettings.Networks["none"] == nil {
		t.Errorf("--net none: inspect Networks %+v", in.NetworkSettings.Networks)
	}
	host := e.runD("--net", "host", box, "sleep", "1000")
	if in := e.nsInside(host, "net"); in != hostNS(t, "net") {
		t.Errorf("--net host: %s, want the host's %s", in, hostNS(t, "net"))
	}
	web := e.runD("--name", "web", box, "sleep", "1000")
	joiner := e.runD("--net", "container:web", box, "sleep", "1000")
	if a, b := e.nsInside(web, "net"), e.nsInside(joiner, "net"); a != b {
		t.Errorf("--net container:web: namespace %s, web's %s", b, a)
	}
	if a, b := e.sh(web, "cat /etc/hosts /etc/resolv.conf"), e.sh(joiner, "cat /etc/hosts /etc/resolv.conf"); a != b {
		t.Errorf("--net container:web: /etc files differ:\n%s\n---\n%s", a, b)
	}
	if r := e.run(nil, "run", "--rm", "--net", "container:web", "-p", "8080:80", box, "true"); r.code != 125 {
		t.Errorf("--net container:web with -p: %v", r)
	}
	// web stops while joiner lives on in its namespace: web's veth goes at
	// once (its address is free for another container, and must not stay
	// on the bridge).
	veth := e.hostLinksOf()[web]
	e.ok("stop", "-t", "0", "web")
	if slices.Contains(hostLinks(t), veth) {
		t.Errorf("web stopped, joiner running in its namespace: web's veth %s is left", veth)
	}
	// Joining a container that is not running is refused and leaves no
	// mark of the joiner once both are removed.
	e.ok("create", "--name", "idle", box, "sleep", "1000")
	if r := e.run(nil, "run", "-d", "--name", "late", "--net", "container:idle", box, "true"); r.code != 125 || !strings.Contains(r.stderr, "not running") {
		t.Errorf("--net container:idle (created, not running): %v", r)
	}
	e.ok("rm", "-f", "idle", "late")
	if left, _ := filepath.Glob(filepath.Join(e.state, "netns", "*.users")); len(left) > 0 {
		t.Errorf("joined a stopped container, both removed: left %v", left)
	}
	// DNS options and extra hosts.
	opts := e.runD("--dns", "192.0.2.53", "--dns-search", "example.test", "--dns-option", "ndots:3", "--add-host", "db.example:192.0.2.7", box, "sleep", "1000")
	if out := e.sh(opts, "cat /etc/resolv.conf"); !strings.Contains(out, "nameserver 192.0.2.53\nsearch example.test\noptions ndots:3\n") {
		t.Errorf("--dns, --dns-search, --dns-option:\n%s", out)
	}
	if out := e.sh(opts, "cat /etc/hosts"); !strings.Contains(out, "192.0.2.7\tdb.example\n") {
		t.Errorf("--add-host:\n%s", out)
	}
	gw := e.runD("--add-host", "me:host-gateway", box, "sleep", "1000")
	if out := e.sh(gw, "cat /etc/hosts"); !strings.Contains(out, "172.30.0.1\tme\n") {
		t.Errorf("--add-host me:host-gateway:\n%s", out)
	}
}

// TestNetworkKill: kill -9 of a container's monitor, or of `run` at any
// moment, leaves nothing that outlives the containers: the next command
// frees the endpoints of dead containers, and their host ports and
// addresses can be used again.
func TestNetworkKill(t *testing.T) {
	e := newNetEnv(t)
	e.ok("network", "create", "--subnet", "10.125.0.0/24", "killnet")
	id := e.runD("--name", "k1", "-p", "18300:80", "--network", "killnet", "--ip", "10.125.0.5", box, "sleep", "1000")
	dir := filepath.Join(e.state, "containers", id)
	b, err := os.ReadFile(filepath.Join(dir, "shim.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var shimPid int
	fmt.Sscan(string(b), &shimPid)
	pid := e.cstate(id).Pid
	syscall.Kill(shimPid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, "the killed monitor to go", func() bool { return !alive(shimPid) })
	if st := e.cstate(id); st.Running {
		t.Fatalf("after kill -9 of the monitor: %+v", st)
	}
	if eps := e.endpointRecords(); slices.Contains(eps, id) {
		t.Errorf("after kill -9 of the monitor, the endpoint is left")
	}
	if rules := nftTable(t, "ip"); strings.Contains(rules, "18300") {
		t.Errorf("after kill -9 of the monitor, its port is still published:\n%s", rules)
	}
	if got := e.redirects(); len(got) != 0 {
		t.Errorf("after kill -9 of the monitor, its port is still redirected: %q", got)
	}
	// Its port and address are free again.
	e.runD("--name", "k22", "-p", "18300:80", "--network", "killnet", "--ip", "10.125.0.5", box, "sleep", "1000")

	// kill -9 of run -d at any moment.
	for i := 0; i < 10; i++ {
		r := e.start("run", "-d", "--name", fmt.Sprintf("r%d", i), "-p", fmt.Sprintf("%d:80", 18310+i), "--network", "killnet", box, "sleep", "1000")
		time.Sleep(time.Duration(i*20) * time.Millisecond)
		r.cmd.Process.Kill()
		r.wait(t)
	}
	// Whatever each one reached, the store says it and the network agrees:
	// every endpoint belongs to a running container.
	e.ok("network", "prune", "-f") // reconciles
	running := map[string]bool{}
	for _, l := range lines(e.ok("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.State}}")) {
		f := strings.Fields(l)
		e.remember(f[0])
		if f[1] == "running" {
			running[f[0]] = true
		}
	}
	for _, ep := range e.endpointRecords() {
		if !running[ep] {
			t.Errorf("endpoint of container %s, which does not run, is left", ep[:12])
		}
	}
	// The redirections are those of the running containers' ports: every
	// one of those by 127.0.0.1, and none of another.
	published := map[string]bool{} // ":PORT -> IP:80"
	for id := range running {
		ip := e.endpoint(id, "killnet").IPAddress.String()
		for _, l := range lines(e.ok("port", id, "80")) {
			if p, ok := strings.CutPrefix(l, "0.0.0.0:"); ok {
				published[":"+p+" -> "+ip+":80"] = true
			}
		}
	}
	redirects := e.redirects()
	for p := range published {
		if !slices.Contains(redirects, "127.0.0.1"+p) {
			t.Errorf("after kill -9 of run -d and a reconcile, 127.0.0.1%s is not redirected (redirections: %q)", p, redirects)
		}
	}
	for _, r := range redirects {
		dialed, to, _ := strings.Cut(r, " -> ")
		if ap, err := netip.ParseAddrPort(dialed); err != nil || !published[fmt.Sprintf(":%d -> %s", ap.Port(), to)] {
			t.Errorf("after kill -9 of run -d and a reconcile, %s is redirected, not a port of a running container", r)
		}
	}
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("r%d", i)
		if r := e.run(nil, "inspect", "--type", "container", name); r.code != 0 {
			continue // killed before the create
		}
		if st := e.cstate(name); !st.Running {
			if r := e.run(nil, "start", name); r.code != 0 {
				t.Errorf("start %s after its run was killed: %v", name, r)
			}
		}
	}
	veths := func() int {
		n := 0
		for _, l := range hostLinks(t) {
			if strings.HasPrefix(l, "veth") {
				n++
			}
		}
		return n
	}
	want := len(lines(e.ok("ps", "-q")))
	// Veths of destroyed namespaces go in the background.
	for i := 0; i < 100 && veths() > want; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if n := veths(); n != want {
		t.Errorf("%d veths for %d running containers", n, want)
	}
}

func netListen(addr string) (interface{ Close() error }, error) { return net.Listen("tcp", addr) }

// TestNetworkIPv6Internal: a network created with --ipv6 gives containers
// dual-stack addresses that inspect shows and that reach each other; an
// --internal network has no way out: no default route, no published port.
func TestNetworkIPv6Internal(t *testing.T) {
	e := newNetEnv(t)
	e.ok("network", "create", "--ipv6", "--subnet", "10.126.0.0/24", "--subnet", "fd00:126::/64", "v6net")
	a := e.runD("--name", "v6a", "--network", "v6net", "-p", "18400:80", box, "sleep", "1000")
	b := e.runD("--name", "v6b", "--network", "v6net", "--ip6", "fd00:126::99", box, "sleep", "1000")
	if r := e.run(nil, "run", "--rm", "--network", "v6net", "--ip6", "fd00:127::5", box, "true"); r.code != 125 || !strings.Contains(r.stderr, "--ip6 fd00:127::5: no configured subnet") {
		t.Errorf("--ip6 outside the subnets: %v", r)
	}
	epA, epB := e.endpoint(a, "v6net"), e.endpoint(b, "v6net")
	v6 := netip.MustParsePrefix("fd00:126::/64")
	if !v6.Contains(epA.GlobalIPv6Address) || epA.GlobalIPv6PrefixLen != 64 || epA.IPv6Gateway.String() != "fd00:126::1" || !epA.IPAddress.IsValid() {
		t.Errorf("dual-stack endpoint %+v", epA)
	}
	if epB.GlobalIPv6Address.String() != "fd00:126::99" {
		t.Errorf("--ip6: %s", epB.GlobalIPv6Address)
	}
	if out := e.sh(a, "ip -6 addr show eth0; ip -6 route"); !strings.Contains(out, epA.GlobalIPv6Address.String()+"/64") || !strings.Contains(out, "default via fd00:126::1") {
		t.Errorf("inside v6a:\n%s", out)
	}
	if _, code, stderr := e.shAny(a, "ping -6 -c 1 -W 5 fd00:126::99"); code != 0 {
		t.Errorf("v6a cannot ping v6b over IPv6: %s", stderr)
	}
	if out, code, _ := e.shAny(a, "nslookup -type=AAAA v6b"); code != 0 || !strings.Contains(out, "fd00:126::99") {
		t.Errorf("v6a resolves v6b's AAAA: %q", out)
	}
	if got := lines(e.ok("port", "v6a")); !slices.Equal(got, []string{"80/tcp -> 0.0.0.0:18400", "80/tcp -> [::]:18400"}) {
		t.Errorf("port of a dual-stack container = %q", got)
	}
	if rules := nftTable(t, "ip6"); !strings.Contains(rules, "dnat to ["+epA.GlobalIPv6Address.String()+"]:80") {
		t.Errorf("the IPv6 port rule is missing:\n%s", rules)
	}

	e.ok("network", "create", "--internal", "--subnet", "10.127.0.0/24", "closed")
	c := e.runD("--name", "inside", "--network", "closed", "-p", "18401:80", box, "sleep", "1000")
	if out := e.sh(c, "ip route"); strings.Contains(out, "default") {
		t.Errorf("--internal: a default route:\n%s", out)
	}
	if out := e.ok("port", "inside"); out != "" {
		t.Errorf("--internal: published ports %q", out)
	}
	if out := e.ok("network", "inspect", "-f", "{{.Internal}}", "closed"); out != "true\n" {
		t.Errorf("network inspect Internal = %q", out)
	}
}

// TestNetworkLinks: Docker's legacy links. On the default bridge the
// linked container's alias, hostname and name in /etc/hosts and Docker's
// variables; a link to a missing or stopped container, or with host
// networking, refused with Docker's messages; on a user-defined network
// the alias resolves by DNS for the linking container.
func TestNetworkLinks(t *testing.T) {
	e := newNetEnv(t)
	web := e.runD("--name", "web", "--expose", "80", "--expose", "5000-5001/udp", "-e", "SECRET=s3", box, "sleep", "1000")
	ip := e.endpoint(web, "bridge").IPAddress.String()
	out := e.ok("run", "--rm", "--name", "client", "--link", "web:db-alias", "-e", "DB_ALIAS_ENV_SECRET=mine", box,
		"sh", "-c", "env; cat /etc/hosts")
	for _, want := range []string{
		"DB_ALIAS_PORT=tcp://" + ip + ":80",
		"DB_ALIAS_PORT_80_TCP=tcp://" + ip + ":80", "DB_ALIAS_PORT_80_TCP_ADDR=" + ip, "DB_ALIAS_PORT_80_TCP_PORT=80", "DB_ALIAS_PORT_80_TCP_PROTO=tcp",
		"DB_ALIAS_PORT_5000_UDP=udp://" + ip + ":5000", "DB_ALIAS_PORT_5001_UDP_PROTO=udp",
		"DB_ALIAS_PORT_5000_UDP_START=udp://" + ip + ":5000", "DB_ALIAS_PORT_5000_UDP_END=udp://" + ip + ":5001",
		"DB_ALIAS_NAME=/client/db-alias", "DB_ALIAS_ENV_IMG=box",
		"DB_ALIAS_ENV_SECRET=mine", // the container's own variables win
		ip + "\tdb-alias " + web[:12] + " web",
	} {
		if !slices.Contains(lines(out), want) {
			t.Errorf("run --link web:db-alias: no line %q in env and /etc/hosts:\n%s", want, out)
		}
	}
	if strings.Contains(out, "DB_ALIAS_ENV_PATH") || strings.Contains(out, "DB_ALIAS_ENV_SECRET=s3") {
		t.Errorf("run --link web:db-alias: PATH passed on or the container's variable overridden:\n%s", out)
	}
	out = e.ok("run", "--rm", "--link", web[:12], box, "sh", "-c", "grep -w web /etc/hosts; ping -c 1 -W 5 web >/dev/null && echo pinged")
	if want := ip + "\t" + web[:12] + " " + web[:12] + " web\npinged\n"; out != want {
		t.Errorf("run --link WEB_ID: %q", out)
	}
	e.ok("create", "--name", "linker", "--link", "web:w", box, "true")
	if c, _ := e.inspectC("linker"); !slices.Equal(c.HostConfig.Links, []string{"/web:/linker/w"}) {
		t.Errorf("inspect HostConfig.Links = %q, want [/web:/linker/w]", c.HostConfig.Links)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--rm", "--link", "nosuch:x", box, "true"}, "could not get container for nosuch: No such container: nosuch"},
		{[]string{"run", "--rm", "--link", "a:b:c", box, "true"}, "bad format for links: a:b:c"},
		{[]string{"run", "--rm", "--net", "host", "--link", "web", box, "true"}, "conflicting options: host type networking can't be used with links"},
	} {
		if r := e.fails(tt.args...); r.code != 125 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%q: %v, want exit 125 and %q", tt.args, r, tt.want)
		}
	}
	e.ok("create", "--name", "stopped", box, "true")
	e.ok("create", "--name", "c3", "--link", "stopped:s", box, "true")
	if r := e.fails("start", "c3"); !strings.Contains(r.stderr, "Cannot link to a non running container: /stopped AS /c3/s") {
		t.Errorf("start with a link to a stopped container: %v", r)
	}
	if hostLinksOf := e.hostLinksOf(); len(hostLinksOf) != 1 {
		t.Errorf("after the refused start, host links %v, want web's only", hostLinksOf)
	}

	// web starts again with another address: the /etc/hosts of a running
	// container linking to it follows (Docker updates it at web's start).
	lk := e.runD("--name", "lk", "--link", "web:db", box, "sleep", "1000")
	e.ok("stop", "-t", "0", "web")
	e.runD(box, "sleep", "1000") // takes web's address
	e.ok("start", "web")
	ip2 := e.endpoint(web, "bridge").IPAddress.String()
	if ip2 == ip {
		t.Errorf("web restarted with its old address %s: the test needs another", ip)
	}
	if out := e.sh(lk, "grep -w db /etc/hosts"); out != ip2+"\tdb "+web[:12]+" web\n" {
		t.Errorf("after web restarted on %s, lk's /etc/hosts has %q", ip2, out)
	}
	// Renames keep the links (Docker's link graph holds containers):
	// inspect shows the new names and lk starts again with web renamed.
	e.ok("rename", "web", "web2")
	e.ok("rename", "lk", "lk2")
	if c, _ := e.inspectC(lk); !slices.Equal(c.HostConfig.Links, []string{"/web2:/lk2/db"}) {
		t.Errorf("after renames, inspect lk2 HostConfig.Links = %q, want [/web2:/lk2/db]", c.HostConfig.Links)
	}
	e.ok("restart", "-t", "0", "lk2")
	if out := e.sh(lk, "grep -w db /etc/hosts"); out != ip2+"\tdb "+web[:12]+" web2\n" {
		t.Errorf("lk2 restarted with a link to the renamed web2: /etc/hosts has %q", out)
	}

	e.ok("network", "create", "--subnet", "10.124.0.0/24", "lnet")
	// A connect re-renders /etc/hosts: the entries of a linked container
	// that stopped since stay, as Docker's do.
	e.ok("stop", "-t", "0", "web2")
	e.ok("network", "connect", "lnet", "lk2")
	if out := e.sh(lk, "grep -w db /etc/hosts"); out != ip2+"\tdb "+web[:12]+" web2\n" {
		t.Errorf("lk2 connected to lnet while web2 is stopped: /etc/hosts has %q", out)
	}
	srv := e.runD("--name", "srv", "--network", "lnet", box, "sleep", "1000")
	cli := e.runD("--name", "cli", "--network", "lnet", "--link", "srv:backend", "--link", "nosuch:later", box, "sleep", "1000")
	out, code, _ := e.shAny(cli, "nslookup backend | sed -n '/^Name:/,$p' | grep -m1 Address | cut -d' ' -f2")
	if want := e.endpoint(srv, "lnet").IPAddress.String(); code != 0 || strings.TrimSpace(out) != want {
		t.Errorf("on a user-defined network, cli resolves its link alias backend to %q, want %s", out, want)
	}
}

// TestNetworkDNSBurst: name resolution keeps working under load (Docker's
// embedded DNS is known to time out): four containers each fire 250
// lookups at once (nslookup asks A and AAAA: 2000 queries within a few
// seconds), of each other's names, and every one is answered right.
func TestNetworkDNSBurst(t *testing.T) {
	e := newNetEnv(t)
	e.ok("network", "create", "--subnet", "10.128.0.0/24", "burst")
	const n, per = 4, 250
	ips := map[string]string{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("burst%d", i)
		id := e.runD("--name", name, "--network", "burst", box, "sleep", "1000")
		ips[name] = e.endpoint(id, "burst").IPAddress.String()
	}
	// Each lookup prints its name and the address it got, or FAIL.
	script := func(i int) string {
		return fmt.Sprintf(`for k in $(seq %d); do
  name=burst$(( (k + %d) %% %d ))
  ( out=$(nslookup $name 2>&1) && echo "$name $(echo "$out" | sed -n '/^Name:/,$p' | grep -m1 Address | cut -d' ' -f2)" || echo "FAIL $name: $out" ) &
done; wait`, per, i, n)
	}
	type result struct {
		out  string
		code int
	}
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			out, code, _ := e.shAny(fmt.Sprintf("burst%d", i), script(i))
			results <- result{out, code}
		}(i)
	}
	answered, failed := 0, 0
	for i := 0; i < n; i++ {
		r := <-results
		if r.code != 0 {
			t.Errorf("burst script exit %d", r.code)
		}
		for _, l := range lines(r.out) {
			name, addr, _ := strings.Cut(l, " ")
			if want, ok := ips[name]; ok && addr == want {
				answered++
				continue
			}
			if failed++; failed <= 5 {
				t.Errorf("lookup: %s", l)
			}
		}
	}
	if answered != n*per || failed > 0 {
		t.Errorf("%d of %d lookups answered right, %d failed", answered, n*per, failed)
	}
}

// TestNetworkConnectLink: network connect --link on a user-defined network
// is an alias of the linked container for the connected container only,
// shown in inspect's NetworkSettings; refused on the default bridge.
func TestNetworkConnectLink(t *testing.T) {
	e := newNetEnv(t)
	e.ok("network", "create", "--subnet", "10.129.0.0/24", "clink")
	srv := e.runD("--name", "lsrv", "--network", "clink", box, "sleep", "1000")
	e.ok("network", "create", "--subnet", "10.130.0.0/24", "cfirst")
	cli := e.runD("--name", "lcli", "--network", "cfirst", box, "sleep", "1000")
	e.ok("network", "connect", "--link", "lsrv:db", "clink", "lcli")
	out, code, _ := e.shAny(cli, "nslookup db | sed -n '/^Name:/,$p' | grep -m1 Address | cut -d' ' -f2")
	if want := e.endpoint(srv, "clink").IPAddress.String(); code != 0 || strings.TrimSpace(out) != want {
		t.Errorf("after connect --link lsrv:db, lcli resolves db to %q, want %s", out, want)
	}
	if ep := e.endpoint(cli, "clink"); !slices.Equal(ep.Links, []string{"lsrv:db"}) {
		t.Errorf("inspect NetworkSettings.Networks.clink.Links = %q", ep.Links)
	}
	if r := e.fails("network", "connect", "--link", "lcli:x", "bridge", "lsrv"); r.code != 1 || !strings.Contains(r.stderr, "links are only supported for user-defined networks") {
		t.Errorf("connect --link to the default bridge: %v", r)
	}
}

// TestNetworkDockerParity runs the same scenario on berth and on Docker
// (skipped where dockerd is not installed): a container of the default
// bridge connected later to a user-defined network resolves that network's
// containers by name (its resolv.conf switches to the embedded server); a
// container linking to another sees it at its new address once it starts
// again; renaming either keeps the link, with the new names in inspect and
// in /etc/hosts after a restart.
func TestNetworkDockerParity(t *testing.T) {
	e := newNetEnv(t)
	d := startDockerdWith(t, "")
	if out, err := d.run("import", busyboxTar, "e2e/parity:1"); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
	berth := func(args ...string) (string, error) {
		r := e.run(nil, args...)
		if r.code != 0 {
			return r.stdout + r.stderr, fmt.Errorf("berth %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r.stdout, nil
	}
	t.Run("berth", func(t *testing.T) { networkParity(t, berth, box, "10.126.0") })
	t.Run("docker", func(t *testing.T) { networkParity(t, d.run, "e2e/parity:1", "10.127.0") })
}

// networkParity is TestNetworkDockerParity's scenario on one engine: run
// runs its CLI, img is its busybox image, net24 the first three bytes of
// the user-defined network's subnet.
func networkParity(t *testing.T, run func(args ...string) (string, error), img, net24 string) {
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}
	t.Cleanup(func() {
		run("rm", "-f", "ppeer", "pweb", "pweb2", "plk", "plk2", "pfill")
		run("network", "rm", "pnet")
	})
	must("network", "create", "--subnet", net24+".0/24", "pnet")
	must("run", "-d", "--name", "ppeer", "--network", "pnet", img, "sleep", "1000")
	must("run", "-d", "--name", "pweb", img, "sleep", "1000")
	before := must("exec", "pweb", "cat", "/etc/resolv.conf")
	must("network", "connect", "pnet", "pweb")
	after := must("exec", "pweb", "cat", "/etc/resolv.conf")
	if after == before || !strings.Contains(after, "ndots:0") {
		t.Errorf("resolv.conf after connect to a user-defined network:\n%s\nbefore:\n%s", after, before)
	}
	if out, err := run("exec", "pweb", "nslookup", "ppeer"); err != nil || !strings.Contains(out, "Address: "+net24+".") {
		t.Errorf("connected: pweb resolves ppeer: %v\n%s", err, out)
	}

	bridgeIP := func(ctr string) string {
		return strings.TrimSpace(must("inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", ctr))
	}
	id := strings.TrimSpace(must("inspect", "-f", "{{.Id}}", "pweb"))
	must("run", "-d", "--name", "plk", "--link", "pweb:db", img, "sleep", "1000")
	old := bridgeIP("pweb")
	must("stop", "-t", "0", "pweb")
	must("run", "-d", "--name", "pfill", img, "sleep", "1000")
	must("start", "pweb")
	ip := bridgeIP("pweb")
	if ip == old {
		t.Errorf("pweb started again on its old address %s: the scenario needs another", ip)
	}
	if out := must("exec", "plk", "cat", "/etc/hosts"); !strings.Contains(out, ip+"\tdb "+id[:12]+" pweb\n") {
		t.Errorf("after pweb restarted on %s, plk's /etc/hosts:\n%s", ip, out)
	}
	must("rename", "pweb", "pweb2")
	must("rename", "plk", "plk2")
	if out := strings.TrimSpace(must("inspect", "-f", "{{json .HostConfig.Links}}", "plk2")); out != `["/pweb2:/plk2/db"]` {
		t.Errorf("after renames, plk2's HostConfig.Links = %s", out)
	}
	must("restart", "-t", "0", "plk2")
	if out := must("exec", "plk2", "cat", "/etc/hosts"); !strings.Contains(out, ip+"\tdb "+id[:12]+" pweb2\n") {
		t.Errorf("plk2 restarted after the renames: /etc/hosts:\n%s", out)
	}
}

// TestNetworkRefusedLeavesNothing: the bad input (an overlapping
// subnet, an address outside the subnet, an address in use, an unknown
// network, a taken host port, removing a network with containers) is
// refused with an error that names it, and leaves nothing half-made: the
// host's links, berth's nftables table, the endpoint records (the leases)
// and the networks are as before, and so are the interfaces inside the
// container a refused connect was for.
func TestNetworkRefusedLeavesNothing(t *testing.T) {
	e := newNetEnv(t)
	e.ok("network", "create", "--subnet", "10.131.0.0/24", "--ip-range", "10.131.0.128/25", "held")
	db := e.runD("--name", "db", "--network", "held", "--ip", "10.131.0.10", "-p", "18500:80", box, "sleep", "1000")
	other := e.runD("--name", "other", "-p", "18501:80", box, "sleep", "1000")
	// What must not change: the host's links, the ruleset, the leases, the
	// networks, and other's interfaces.
	snapshot := func() string {
		links := slices.DeleteFunc(hostLinks(t), func(l string) bool { return l == "lo" })
		slices.Sort(links)
		var eps []string
		b, _ := os.ReadFile(filepath.Join(e.root, "network", "state.json"))
		var st struct {
			Endpoints map[string]struct {
				ContainerID string     `json:"container"`
				NetworkID   string     `json:"network"`
				IPv4        netip.Addr `json:"ipv4"`
			} `json:"endpoints"`
		}
		json.Unmarshal(b, &st)
		for _, ep := range st.Endpoints {
			eps = append(eps, ep.ContainerID[:12]+"@"+ep.NetworkID[:12]+"="+ep.IPv4.String())
		}
		slices.Sort(eps)
		return fmt.Sprintf("links %v\nleases %v\nnetworks %q\nother's interfaces %q\nnft:\n%s", links, eps,
			lines(e.ok("network", "ls", "-q")), e.sh(other, "ls /sys/class/net"), nftTable(t, "ip"))
	}
	before := snapshot()
	same := func(what string) {
		t.Helper()
		// The kernel deletes the links of a destroyed namespace in the
		// background: wait for it before comparing.
		now := snapshot()
		for i := 0; i < 100 && now != before; i++ {
			time.Sleep(50 * time.Millisecond)
			now = snapshot()
		}
		if now != before {
			t.Errorf("after %s:\n%s\nbefore:\n%s", what, now, before)
		}
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "--subnet", "10.131.0.128/25", "overlap"}, "overlaps"},
		{[]string{"network", "create", "--subnet", "172.30.5.0/24", "overlap-bridge"}, "overlaps"},
		{[]string{"network", "create", "--subnet", "10.132.0.0/24", "--gateway", "10.133.0.1", "gw-outside"}, "10.133.0.1"},
		{[]string{"network", "create", "--subnet", "10.132.0.0/24", "--ip-range", "10.133.0.0/25", "range-outside"}, "10.133.0.0/25"},
		{[]string{"network", "connect", "--ip", "10.9.9.9", "held", "other"}, "10.9.9.9"},
		{[]string{"network", "connect", "--ip", "10.131.0.10", "held", "other"}, "10.131.0.10"},
		{[]string{"network", "connect", "--ip", "10.131.0.11", "bridge", "db"}, "user defined networks only"},
		{[]string{"network", "connect", "nosuch", "other"}, "nosuch"},
		{[]string{"network", "rm", "held"}, "active endpoints"},
		{[]string{"network", "prune", "-f"}, ""}, // held is in use: kept
	} {
		r := e.run(nil, bad.args...)
		if bad.want != "" && (r.code == 0 || !strings.HasPrefix(r.stderr, "Error") || !strings.Contains(r.stderr, bad.want)) {
			t.Errorf("%v: %v, want an error naming %q", bad.args, r, bad.want)
		}
		same(strings.Join(bad.args, " "))
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--network", "held", "--ip", "10.131.0.10"}, "10.131.0.10"}, // db's: refused at start
		{[]string{"--network", "held", "--ip", "10.9.9.9"}, "10.9.9.9"},
		{[]string{"--network", "nosuch"}, "nosuch"},
		{[]string{"-p", "18500:80"}, "18500"},                      // db's host port
		{[]string{"--network", "held", "-p", "18501:80"}, "18501"}, // other's
	} {
		args := append(append([]string{"run", "-d"}, bad.args...), box, "sleep", "1000")
		if r := e.run(nil, args...); r.code != 125 || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("run %v: %v, want exit 125 naming %q", bad.args, r, bad.want)
		}
		// A start refused after the create leaves the container created, as
		// in Docker; remove it to compare.
		for _, id := range lines(e.ok("ps", "-aq", "--no-trunc", "--filter", "status=created")) {
			e.ok("rm", id)
		}
		same("run " + strings.Join(bad.args, " "))
	}
	// A network that only a stopped container names can be removed (as in
	// Docker: it has no endpoint); the container's start then fails naming
	// it, and makes nothing.
	e.ok("network", "create", "--subnet", "10.134.0.0/24", "gone")
	e.ok("create", "--name", "orphan", "--network", "gone", box, "sleep", "1000")
	e.ok("network", "rm", "gone")
	if r := e.run(nil, "start", "orphan"); r.code == 0 || !strings.Contains(r.stderr, "network gone not found") {
		t.Errorf("start of a container whose network was removed: %v, want an error with \"network gone not found\"", r)
	}
	if st := e.cstate("orphan"); st.Status != container.StateCreated {
		t.Errorf("after its refused start, orphan is %s", st.Status)
	}
	e.ok("rm", "orphan")
	same("start of a container whose network was removed")

	// What was refused did not break what is there: db still answers on
	// its address and its port.
	if _, code, stderr := e.shAny(db, "ping -c 1 -W 5 10.131.0.1"); code != 0 {
		t.Errorf("db cannot reach its gateway after the refusals: %s", stderr)
	}
	if out := e.ok("port", "db"); out != "80/tcp -> 0.0.0.0:18500\n80/tcp -> [::]:18500\n" {
		t.Errorf("port db = %q", out)
	}
}

// TestNetworkPortForms: host port 0 is a free port of the kernel's
// ephemeral range and the binding keeps "0" (Docker's reading); ports
// published on their own number are shown by ps as one range, as
// docker-cli does.
func TestNetworkPortForms(t *testing.T) {
	e := newNetEnv(t)
	id := e.runD("--name", "forms", "-p", "0:80", "-p", "19000-19002:19000-19002", "-p", "19010-19011:81-82/udp", box, "httpd", "-f", "-p", "80", "-h", "/etc")
	out := lines(e.ok("port", "forms", "80/tcp"))[0]
	hostPort := atoi(strings.TrimPrefix(out, "0.0.0.0:"))
	if !strings.HasPrefix(out, "0.0.0.0:") || hostPort < 1024 {
		t.Fatalf("-p 0:80: port forms 80 = %q, want 0.0.0.0:PORT of the ephemeral range", out)
	}
	waitFor(t, "httpd in forms", func() bool { _, ok := wget(t, "", fmt.Sprintf("http://127.0.0.1:%d/hostname", hostPort)); return ok })
	if got, _ := wget(t, "", fmt.Sprintf("http://127.0.0.1:%d/hostname", hostPort)); got != id[:12]+"\n" {
		t.Errorf("-p 0:80 by 127.0.0.1:%d: %q", hostPort, got)
	}
	in, _ := e.inspectC(id)
	if b := in.HostConfig.PortBindings[network.MustParsePort("80/tcp")]; len(b) != 1 || b[0].HostPort != "0" {
		t.Errorf("-p 0:80: HostConfig.PortBindings[80/tcp] = %+v, want HostPort \"0\"", b)
	}
	want := fmt.Sprintf("0.0.0.0:19000-19002->19000-19002/tcp, [::]:19000-19002->19000-19002/tcp, 0.0.0.0:%d->80/tcp, [::]:%d->80/tcp, 0.0.0.0:19010->81/udp, 0.0.0.0:19011->82/udp\n", hostPort, hostPort)
	if out := e.ok("ps", "--filter", "name=forms", "--format", "{{.Ports}}"); out != want {
		t.Errorf("ps PORTS = %q, want %q", out, want)
	}
	// Another -p 0:80 gets another port.
	e.runD("--name", "forms2", "-p", "0:80", box, "sleep", "1000")
	if out := lines(e.ok("port", "forms2", "80"))[0]; atoi(strings.TrimPrefix(out, "0.0.0.0:")) == hostPort {
		t.Errorf("two -p 0:80 got the same host port %d", hostPort)
	}
}

// TestNetworkBridgeSubnet: the default bridge's subnet is the engine's
// configuration (--bridge-subnet, BERTH_BRIDGE_SUBNET): the bridge moves
// to it when no container uses it, with its gateway, addresses and
// masquerade, and back again.
func TestNetworkBridgeSubnet(t *testing.T) {
	e := newNetEnv(t)
	r := e.run(nil, "--bridge-subnet", "10.140.0.0/24", "run", "-d", box, "sleep", "1000")
	if r.code != 0 {
		t.Fatalf("run with --bridge-subnet: %v", r)
	}
	id := e.remember(strings.TrimSpace(r.stdout))
	ep := e.endpoint(id, "bridge")
	if !netip.MustParsePrefix("10.140.0.0/24").Contains(ep.IPAddress) || ep.IPPrefixLen != 24 || ep.Gateway.String() != "10.140.0.1" {
		t.Errorf("--bridge-subnet 10.140.0.0/24: endpoint %+v", ep)
	}
	if out := e.ok("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", "bridge"); out != "10.140.0.0/24 10.140.0.1\n" {
		t.Errorf("network inspect bridge: %q", out)
	}
	if out := e.sh(id, "ip route; ping -c 1 -W 5 10.140.0.1 >/dev/null && echo gateway answers"); !strings.Contains(out, "default via 10.140.0.1 dev eth0") || !strings.Contains(out, "gateway answers") {
		t.Errorf("inside, with --bridge-subnet 10.140.0.0/24:\n%s", out)
	}
	if rules := nftTable(t, "ip"); !strings.Contains(rules, "10.140.0.0/24") || strings.Contains(rules, "172.30.0.0/16") {
		t.Errorf("the rules do not follow the bridge's subnet:\n%s", rules)
	}
	e.ok("rm", "-f", id)
	// Back to the default once nothing uses it.
	back := e.runD(box, "sleep", "1000")
	if ep := e.endpoint(back, "bridge"); !netip.MustParsePrefix("172.30.0.0/16").Contains(ep.IPAddress) || ep.Gateway.String() != "172.30.0.1" {
		t.Errorf("without --bridge-subnet again: endpoint %+v", ep)
	}
	if _, code, stderr := e.shAny(back, "ping -c 1 -W 5 172.30.0.1"); code != 0 {
		t.Errorf("back on 172.30.0.0/16: the gateway does not answer: %s", stderr)
	}
	if r := e.run(nil, "--bridge-subnet", "10.140.0.1/24", "run", "--rm", box, "true"); r.code == 0 || !strings.Contains(r.stderr, "10.140.0.1/24") {
		t.Errorf("--bridge-subnet 10.140.0.1/24 (not masked): %v", r)
	}
}

// TestNetworkPublishIPv6: host clients reach published ports over IPv6 as
// Docker's docker-proxy on [::] serves them: -p PORT:PORT by [::1] and by
// the host's IPv6 addresses, for an IPv4-only container (connected over
// IPv4 to its address) and a dual-stack one (to its IPv6 address), with
// getpeername answering what was dialed; -p 127.0.0.1:P:P is not served on
// [::1], -p [::1]:P:P on [::1] alone; neither another host, a container,
// nor another namespace's [::1] is redirected; port and ps list what is
// served; without the redirection (BERTH_PORT_REDIRECT=0) -p [::1]:P:P is
// refused with the reason.
func TestNetworkPublishIPv6(t *testing.T) {
	e := newNetEnv(t)
	other := otherHost(t)
	// A global IPv6 address of the host, and one for the other host.
	for _, args := range [][]string{
		{"ip", "addr", "add", "fd00:251::1/64", "dev", "bte2e-up", "nodad"},
		{"nsenter", "--net=" + other, "ip", "addr", "add", "fd00:251::2/64", "dev", "bte2e-peer", "nodad"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	web := e.runD("--name", "web6", "-p", "18600:80", "-p", "127.0.0.1:18601:80", "-p", "[::1]:18602:80", box, "httpd", "-f", "-p", "80", "-h", "/etc")
	want := web[:12] + "\n"
	waitFor(t, "httpd in web6", func() bool { _, ok := wget(t, "", "http://127.0.0.1:18600/hostname"); return ok })
	for _, url := range []string{"http://[::1]:18600/hostname", "http://[fd00:251::1]:18600/hostname", "http://[::1]:18602/hostname", "http://127.0.0.1:18601/hostname"} {
		if got, ok := wget(t, "", url); !ok || got != want {
			t.Errorf("IPv4-only container: %s from the host = %q (%v), want %q", url, got, ok, want)
		}
	}
	client := e.runD("--name", "client6", box, "sleep", "1000")
	for _, c := range []struct{ what, ns, url string }{
		{"a port published on 127.0.0.1, by [::1]", "", "http://[::1]:18601/hostname"},
		{"a port published on [::1], by 127.0.0.1", "", "http://127.0.0.1:18602/hostname"},
		{"another namespace's [::1]", other, "http://[::1]:18600/hostname"},
		{"another host over IPv6 (no userland proxy)", other, "http://[fd00:251::1]:18600/hostname"},
	} {
		if got, ok := wget(t, c.ns, c.url); ok {
			t.Errorf("%s: %s answered %q", c.what, c.url, got)
		}
	}
	if out, code, _ := e.shAny(client, "timeout 10 wget -q -O - http://[::1]:18600/hostname"); code == 0 {
		t.Errorf("a container's own [::1]:18600 answered %q", out)
	}
	// The client sees the address it dialed (getpeername).
	for _, addr := range []string{"[::1]:18600", "[fd00:251::1]:18600", "[::1]:18602"} {
		if peer, body, err := httpPeer(addr); err != nil || peer != addr || !strings.HasSuffix(body, "\r\n\r\n"+want) {
			t.Errorf("GET from %s: peer %s, body %q, %v; want peer %s and the hostname", addr, peer, body, err, addr)
		}
	}
	webAt := e.endpoint(web, "bridge").IPAddress.String() + ":80"
	got := e.redirects()
	for _, r := range []string{"[::1]:18600 -> " + webAt, "[fd00:251::1]:18600 -> " + webAt, "[::1]:18602 -> " + webAt, "127.0.0.1:18601 -> " + webAt} {
		if !slices.Contains(got, r) {
			t.Errorf("redirections %q, missing %q", got, r)
		}
	}
	for _, r := range got {
		if strings.Contains(r, ":18601 ") && !strings.HasPrefix(r, "127.0.0.1:") || strings.Contains(r, ":18602 ") && !strings.HasPrefix(r, "[::1]:") {
			t.Errorf("redirected beyond what is published: %s", r)
		}
	}
	if got := lines(e.ok("port", "web6")); !slices.Equal(got, []string{"80/tcp -> 0.0.0.0:18600", "80/tcp -> 127.0.0.1:18601", "80/tcp -> [::1]:18602", "80/tcp -> [::]:18600"}) {
		t.Errorf("port web6 = %q", got)
	}
	if out := e.ok("ps", "--filter", "name=web6", "--format", "{{.Ports}}"); out != "0.0.0.0:18600->80/tcp, 127.0.0.1:18601->80/tcp, [::]:18600->80/tcp, [::1]:18602->80/tcp\n" {
		t.Errorf("ps PORTS = %q", out)
	}

	// A dual-stack container: IPv6 clients go to its IPv6 address.
	e.ok("network", "create", "--ipv6", "--subnet", "10.128.0.0/24", "--subnet", "fd00:128::/64", "v6pub")
	dual := e.runD("--name", "dual6", "--network", "v6pub", "-p", "18610:80", "-p", "[::1]:18611:80", box, "httpd", "-f", "-p", "80", "-h", "/etc")
	waitFor(t, "httpd in dual6", func() bool { _, ok := wget(t, "", "http://127.0.0.1:18610/hostname"); return ok })
	for _, url := range []string{"http://[::1]:18610/hostname", "http://[fd00:251::1]:18610/hostname", "http://[::1]:18611/hostname"} {
		if got, ok := wget(t, "", url); !ok || got != dual[:12]+"\n" {
			t.Errorf("dual-stack container: %s from the host = %q (%v)", url, got, ok)
		}
	}
	if peer, body, err := httpPeer("[::1]:18610"); err != nil || peer != "[::1]:18610" || !strings.HasSuffix(body, dual[:12]+"\n") {
		t.Errorf("GET from [::1]:18610: peer %s, body %q, %v", peer, body, err)
	}
	dualAt := "[" + e.endpoint(dual, "v6pub").GlobalIPv6Address.String() + "]:80"
	got = e.redirects()
	for _, r := range []string{"[::1]:18610 -> " + dualAt, "[fd00:251::1]:18610 -> " + dualAt, "[::1]:18611 -> " + dualAt} {
		if !slices.Contains(got, r) {
			t.Errorf("redirections %q, missing %q", got, r)
		}
	}
	if rules := nftTable(t, "ip6"); strings.Contains(rules, "18611") {
		t.Errorf("a DNAT rule for [::1]:18611 (the kernel would drop its packets):\n%s", rules)
	}
	if got := lines(e.ok("port", "dual6")); !slices.Equal(got, []string{"80/tcp -> 0.0.0.0:18610", "80/tcp -> [::1]:18611", "80/tcp -> [::]:18610"}) {
		t.Errorf("port dual6 = %q", got)
	}

	// Without the redirection, [::1] cannot be served: refused at run and
	// create with the reason, nothing made.
	t.Setenv(berthnet.RedirectEnv, "0")
	for _, cmd := range []string{"run", "create"} {
		r := e.fails(cmd, "-p", "[::1]:18620:80", box, "true")
		if r.code != 125 || !strings.Contains(r.stderr, "publishing on IPv6 loopback is not supported") || !strings.Contains(r.stderr, "BERTH_PORT_REDIRECT=0") {
			t.Errorf("%s -p [::1]:18620:80 with BERTH_PORT_REDIRECT=0: %v, want exit 125 and the reason", cmd, r)
		}
	}
	// The next command that applies the rules takes the redirection away;
	// the IPv4 ports stay served by DNAT, and [::] is no longer listed.
	e.ok("network", "create", "--subnet", "10.129.0.0/24", "after6")
	if got, ok := wget(t, "", "http://127.0.0.1:18600/hostname"); !ok || got != want {
		t.Errorf("BERTH_PORT_REDIRECT=0: 127.0.0.1:18600 = %q (%v)", got, ok)
	}
	if got, ok := wget(t, "", "http://[::1]:18600/hostname"); ok {
		t.Errorf("BERTH_PORT_REDIRECT=0: [::1]:18600 still answers %q", got)
	}
	if n, err := portredirect.Attached(e.redirectName()); err != nil || n != 0 {
		t.Errorf("BERTH_PORT_REDIRECT=0: %d programs still attached (%v)", n, err)
	}
	if got := lines(e.ok("port", "web6", "80")); !slices.Equal(got, []string{"0.0.0.0:18600", "127.0.0.1:18601", "[::1]:18602"}) {
		t.Errorf("BERTH_PORT_REDIRECT=0: port web6 80 = %q", got)
	}
}

// httpPeer sends GET /hostname to addr from the test's process (the host)
// and returns what getpeername answered and the whole response.
func httpPeer(addr string) (peer, body string, err error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /hostname HTTP/1.0\r\n\r\n"); err != nil {
		return "", "", err
	}
	b, err := io.ReadAll(c)
	return c.RemoteAddr().String(), string(b), err
}
