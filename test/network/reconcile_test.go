package network

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"github.com/berthproject/berth/internal/network"
	"github.com/berthproject/berth/internal/network/nft"
	"github.com/berthproject/berth/internal/network/portredirect"
)

// TestReconcileAfterCrash: the records survive, the kernel's state does not
// (a reboot, or someone deleting links and flushing tables): Reconcile
// builds it again, and the containers work as before.
func TestReconcileAfterCrash(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	other := h.otherHost()
	if _, err := h.m.Create(ctx, network.CreateOptions{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	web, db := h.container("rweb"), h.container("rdb")
	epWeb := h.attach(web, network.AttachOptions{Ports: []network.PortRequest{{Proto: "tcp", HostPort: 8088, ContainerPort: 80}}})
	epDB := h.attach(db, network.AttachOptions{Network: "app"})
	serveTCP(t, web.ns, ":80", "rweb")

	// The crash: every berth link and both tables are gone, the DNS server
	// died, and the manager is a new process.
	h.crash()
	if s := nftList(t, nft.IPv4); s != "" {
		t.Fatalf("table still there after the simulated crash:\n%s", s)
	}
	h.m = h.newManager()
	alive := func(string) bool { return true }
	if err := h.m.Reconcile(ctx, alive); err != nil {
		t.Fatal(err)
	}
	if got, err := fetchTCP(other, "10.250.0.1:8088"); err != nil || got != "rweb from 10.250.0.2" {
		t.Errorf("published port after reconcile = %q, %v", got, err)
	}
	// The connect-time redirection is made again from the records too.
	webAt := epWeb.IPv4.Addr().String() + ":80"
	if got := h.redirects(); !slices.Contains(got, "127.0.0.1:8088 -> "+webAt) || !slices.Contains(got, "10.250.0.1:8088 -> "+webAt) {
		t.Errorf("redirections after reconcile = %q", got)
	}
	if got, peer, err := fetchTCPPeer("", "127.0.0.1:8088"); err != nil || got != "rweb from 172.30.0.1" || peer != "127.0.0.1:8088" {
		t.Errorf("127.0.0.1:8088 after reconcile = %q, peer %s, %v", got, peer, err)
	}
	if err := ping(db.ns, netip.MustParseAddr("10.250.0.2")); err != nil {
		t.Errorf("user network's way out after reconcile: %v", err)
	}
	if got, err := newResolver(t, db.ns, epDB.Gateway).query("rdb", mdns.TypeA); err != nil || !slices.Equal(got, []string{epDB.IPv4.Addr().String()}) {
		t.Errorf("DNS after reconcile = %v, %v (the server should have been started again)", got, err)
	}
	if l, err := netlink.LinkByName(epWeb.HostIf); err != nil || l.Attrs().Alias == "" {
		t.Errorf("veth %s not plugged again: %v", epWeb.HostIf, err)
	}
	// Idempotent: a second run changes nothing.
	before := linksOf(t, "")
	rules := nftList(t, nft.IPv4)
	if err := h.m.Reconcile(ctx, alive); err != nil {
		t.Fatal(err)
	}
	if got := linksOf(t, ""); !slices.Equal(got, before) {
		t.Errorf("second reconcile changed links: %v, had %v", got, before)
	}
	if got := nftList(t, nft.IPv4); got != rules {
		t.Errorf("second reconcile changed rules:\n%s\nhad:\n%s", got, rules)
	}

	// The map alone is lost (someone unpinned and detached it; berth was
	// killed halfway through a change): the next reconcile makes it again.
	if err := portredirect.Remove(h.redirectName()); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Reconcile(ctx, alive); err != nil {
		t.Fatal(err)
	}
	if got := h.redirects(); !slices.Contains(got, "127.0.0.1:8088 -> "+webAt) {
		t.Errorf("redirections after the map was lost and reconcile = %q", got)
	}

	// The container dies (kill -9: nobody detached it): its endpoint, veth,
	// address and port are freed.
	dead := func(id string) bool { return id != web.id }
	if err := h.m.Reconcile(ctx, dead); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(linksOf(t, ""), epWeb.HostIf) {
		t.Errorf("veth of a dead container survived reconcile")
	}
	if s := nftList(t, nft.IPv4); strings.Contains(s, "8088") {
		t.Errorf("port of a dead container survived reconcile:\n%s", s)
	}
	if eps, _ := h.m.Endpoints(ctx, web.id); len(eps) != 0 {
		t.Errorf("endpoints of a dead container: %v", eps)
	}
	// Its redirection is gone with it, and with it the last published
	// port: nothing is left attached or pinned.
	if got := h.redirects(); len(got) != 0 {
		t.Errorf("redirections of a dead container survived reconcile: %q", got)
	}
	if left := h.redirectLeft(); left != "" {
		t.Errorf("no port published after reconcile, yet %s", left)
	}
	if got, err := fetchTCP("", "127.0.0.1:8088"); err == nil {
		t.Errorf("127.0.0.1:8088 answers after its container died: %q", got)
	}
}

// TestReconcileOrphans: links berth made but has no record of (a crash
// between making them and writing the records) are removed; links of
// others are not.
func TestReconcileOrphans(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	if _, err := h.m.Create(ctx, network.CreateOptions{Name: "lost"}); err != nil {
		t.Fatal(err)
	}
	c := h.container("orphan")
	ep := h.attach(c, network.AttachOptions{Network: "lost", Ports: []network.PortRequest{{Proto: "tcp", HostPort: 8089, ContainerPort: 80}}})
	// Somebody else's bridge and veth, without berth's mark.
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "bt-foreign"
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		t.Fatal(err)
	}
	// The records are lost.
	if err := os.Remove(h.m.Store().Path()); err != nil {
		t.Fatal(err)
	}
	h.m = h.newManager()
	if err := h.m.Reconcile(ctx, func(string) bool { return true }); err != nil {
		t.Fatal(err)
	}
	links := linksOf(t, "")
	for _, l := range links {
		if l == ep.HostIf || strings.HasPrefix(l, "berth-") {
			t.Errorf("orphaned link %s survived reconcile (links: %v)", l, links)
		}
	}
	if !slices.Contains(links, "bt-foreign") {
		t.Errorf("reconcile removed a bridge that is not berth's")
	}
	if s := nftList(t, nft.IPv4); strings.Contains(s, "8089") {
		t.Errorf("rules of lost records survived:\n%s", s)
	}
}

// TestConcurrentAttachKernel: two managers (as two berth processes) attach
// twenty containers at once to one network: all get their own address and
// all can be reached.
func TestConcurrentAttachKernel(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	if _, err := h.m.Create(ctx, network.CreateOptions{Name: "busy", Subnets: []netip.Prefix{netip.MustParsePrefix("10.97.0.0/24")}}); err != nil {
		t.Fatal(err)
	}
	m2 := h.newManager()
	defer m2.Close()
	var wg sync.WaitGroup
	ctrs := make([]*ctr, 20)
	errs := make([]error, 20)
	for i := range ctrs {
		ctrs[i] = h.container(fmt.Sprintf("cc%d", i))
	}
	for i, c := range ctrs {
		wg.Add(1)
		go func(i int, c *ctr) {
			defer wg.Done()
			m := h.m
			if i%2 == 1 {
				m = m2
			}
			_, errs[i] = m.Attach(ctx, network.AttachOptions{ContainerID: c.id, ContainerName: c.name, NetNS: c.ns, Network: "busy"})
		}(i, c)
	}
	wg.Wait()
	st, err := h.m.Store().Read()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]bool{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("attach %d: %v", i, err)
		}
	}
	for _, e := range st.Endpoints {
		if seen[e.IPv4] {
			t.Errorf("address %s given twice", e.IPv4)
		}
		seen[e.IPv4] = true
	}
	if len(seen) != 20 {
		t.Errorf("%d addresses for 20 containers", len(seen))
	}
	if err := ping(ctrs[0].ns, st.ContainerEndpoints(ctrs[19].id)[0].IPv4); err != nil {
		t.Error(err)
	}
}
