package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/berthproject/berth/internal/network"
	"github.com/berthproject/berth/internal/network/dns"
)

// fakeUpstream answers A queries for *.example.test with 192.0.2.1 on
// 127.0.0.1:53 of the host namespace (the host resolver of hostResolv), and
// counts what it is asked.
func fakeUpstream(t *testing.T) *atomic.Int64 {
	t.Helper()
	var asked atomic.Int64
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		asked.Add(1)
		m := new(mdns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		if strings.HasSuffix(q.Name, "example.test.") && q.Qtype == mdns.TypeA {
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
		} else {
			m.Rcode = mdns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:53")
	if err != nil {
		t.Fatal("fake upstream:", err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: h}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return &asked
}

// resolver is a DNS client socket inside a container's namespace.
type resolver struct {
	c *mdns.Client
	// dial makes a socket in the container's namespace.
	dial func() (*mdns.Conn, error)
}

func newResolver(t *testing.T, ns string, server netip.Addr) *resolver {
	return &resolver{
		c: &mdns.Client{Timeout: ioTimeout},
		dial: func() (*mdns.Conn, error) {
			var c net.Conn
			err := inNS(ns, func() (err error) { c, err = net.Dial("udp", netip.AddrPortFrom(server, 53).String()); return err })
			if err != nil {
				return nil, err
			}
			return &mdns.Conn{Conn: c}, nil
		},
	}
}

// query asks one question on a fresh socket and returns the answer's
// addresses (or the rcode's name when it is not NOERROR).
func (r *resolver) query(name string, qtype uint16) ([]string, error) {
	conn, err := r.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return r.queryOn(conn, name, qtype)
}

func (r *resolver) queryOn(conn *mdns.Conn, name string, qtype uint16) ([]string, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	resp, _, err := r.c.ExchangeWithConn(m, conn)
	if err != nil {
		return nil, err
	}
	if resp.Rcode != mdns.RcodeSuccess {
		return []string{mdns.RcodeToString[resp.Rcode]}, nil
	}
	var out []string
	for _, rr := range resp.Answer {
		switch rr := rr.(type) {
		case *mdns.A:
			out = append(out, rr.A.String())
		case *mdns.AAAA:
			out = append(out, rr.AAAA.String())
		case *mdns.PTR:
			out = append(out, rr.Ptr)
		}
	}
	sort.Strings(out)
	return out, nil
}

func TestEmbeddedDNS(t *testing.T) {
	h := newHost(t)
	asked := fakeUpstream(t)
	ctx := context.Background()
	n, err := h.m.Create(ctx, network.CreateOptions{Name: "app", Subnets: []netip.Prefix{netip.MustParsePrefix("10.88.0.0/24")},
		IPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	web, db := h.container("web"), h.container("db")
	epWeb := h.attach(web, network.AttachOptions{Network: "app", Aliases: []string{"www", "frontend"}})
	epDB := h.attach(db, network.AttachOptions{Network: "app", DNS: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	gw := n.IPAM.Config[0].Gateway
	r := newResolver(t, web.ns, gw)
	rdb := newResolver(t, db.ns, gw)

	tests := []struct {
		name  string
		r     *resolver
		q     string
		qtype uint16
		want  []string
	}{
		{"container name", r, "db", mdns.TypeA, []string{epDB.IPv4.Addr().String()}},
		{"own name", r, "web", mdns.TypeA, []string{epWeb.IPv4.Addr().String()}},
		{"alias", rdb, "www", mdns.TypeA, []string{epWeb.IPv4.Addr().String()}},
		{"second alias, any case", rdb, "FrontEnd", mdns.TypeA, []string{epWeb.IPv4.Addr().String()}},
		{"short ID", rdb, web.id[:12], mdns.TypeA, []string{epWeb.IPv4.Addr().String()}},
		{"name.network", r, "db.app", mdns.TypeA, []string{epDB.IPv4.Addr().String()}},
		{"AAAA", r, "db", mdns.TypeAAAA, []string{epDB.IPv6.Addr().String()}},
		{"PTR", r, reverse(epDB.IPv4.Addr()), mdns.TypePTR, []string{"db.app."}},
		{"other type of a container name: no data", r, "db", mdns.TypeMX, nil},
		{"forwarded to the host's resolver", r, "www.example.test", mdns.TypeA, []string{"192.0.2.1"}},
		{"forwarded to --dns", rdb, "api.example.test", mdns.TypeA, []string{"192.0.2.1"}},
		{"unknown name", r, "nothing.invalid", mdns.TypeA, []string{"NXDOMAIN"}},
	}
	for _, tt := range tests {
		got, err := tt.r.query(tt.q, tt.qtype)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: query %s %s = %v, %v; want %v", tt.name, tt.q, mdns.TypeToString[tt.qtype], got, err, tt.want)
		}
	}
	if asked.Load() == 0 {
		t.Errorf("the upstream was never asked")
	}

	// A container that joins later resolves at once, and one that leaves
	// stops resolving at once.
	late := h.container("late")
	epLate := h.attach(late, network.AttachOptions{Network: "app", Aliases: []string{"cache"}})
	if got, err := r.query("cache", mdns.TypeA); err != nil || !slices.Equal(got, []string{epLate.IPv4.Addr().String()}) {
		t.Errorf("alias of a container that joined later = %v, %v; want %s", got, err, epLate.IPv4.Addr())
	}
	if err := h.m.Detach(ctx, late.id, "app"); err != nil {
		t.Fatal(err)
	}
	if got, err := r.query("late", mdns.TypeA); err != nil || !slices.Equal(got, []string{"NXDOMAIN"}) {
		t.Errorf("name of a container that left = %v, %v; want NXDOMAIN", got, err)
	}

	// A container on another network does not see these names.
	if _, err := h.m.Create(ctx, network.CreateOptions{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	stranger := h.container("stranger")
	epS := h.attach(stranger, network.AttachOptions{Network: "other"})
	rs := newResolver(t, stranger.ns, epS.Gateway)
	if got, err := rs.query("db", mdns.TypeA); err != nil || !slices.Equal(got, []string{"NXDOMAIN"}) {
		t.Errorf("name on another network = %v, %v; want NXDOMAIN", got, err)
	}
	// ...and after `network connect` it does.
	h.attach(stranger, network.AttachOptions{Network: "app"})
	if got, err := rs.query("db", mdns.TypeA); err != nil || !slices.Equal(got, []string{epDB.IPv4.Addr().String()}) {
		t.Errorf("name after network connect = %v, %v; want %s", got, err, epDB.IPv4.Addr())
	}

	// The server is one process for all networks, restarted when it died.
	pid := dns.PID(h.run)
	if pid == 0 {
		t.Fatal("no DNS server pid")
	}
	stopProcess(t, pid)
	again := h.container("again")
	h.attach(again, network.AttachOptions{Network: "app"})
	if dns.PID(h.run) == 0 || dns.PID(h.run) == pid {
		t.Errorf("the DNS server was not restarted (pid %d, before %d)", dns.PID(h.run), pid)
	}
	if got, err := r.query("again", mdns.TypeA); err != nil || len(got) != 1 || got[0] == "NXDOMAIN" {
		t.Errorf("name after the server restarted = %v, %v", got, err)
	}
}

func reverse(a netip.Addr) string {
	s, _ := mdns.ReverseAddr(a.String())
	return s
}

func TestEmbeddedDNSInternalNetwork(t *testing.T) {
	h := newHost(t)
	asked := fakeUpstream(t)
	if _, err := h.m.Create(context.Background(), network.CreateOptions{Name: "secret", Internal: true}); err != nil {
		t.Fatal(err)
	}
	a, b := h.container("ia"), h.container("ib")
	epA := h.attach(a, network.AttachOptions{Network: "secret"})
	epB := h.attach(b, network.AttachOptions{Network: "secret"})
	r := newResolver(t, a.ns, epA.Gateway)
	if got, err := r.query("ib", mdns.TypeA); err != nil || !slices.Equal(got, []string{epB.IPv4.Addr().String()}) {
		t.Errorf("name on an internal network = %v, %v; want %s", got, err, epB.IPv4.Addr())
	}
	if got, err := r.query("www.example.test", mdns.TypeA); err != nil || !slices.Equal(got, []string{"REFUSED"}) {
		t.Errorf("outside name on an internal network = %v, %v; want REFUSED", got, err)
	}
	if asked.Load() != 0 {
		t.Errorf("an internal network's query went upstream")
	}
	// No default route, no way out; the containers still reach each other.
	if err := ping(a.ns, epB.IPv4.Addr()); err != nil {
		t.Error(err)
	}
	if _, err := fetchTCP(a.ns, "10.250.0.1:1"); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("internal container reaching outside: %v; want network unreachable", err)
	}
}

// TestEmbeddedDNSUnderLoad sends about 1000 queries a second from three
// containers for a few seconds, half for containers' names and half
// forwarded, and wants every one answered right (a lost or late answer
// shows as a failure after the generous client timeout, not as a timing
// assertion).
func TestEmbeddedDNSUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	h := newHost(t)
	fakeUpstream(t)
	if _, err := h.m.Create(context.Background(), network.CreateOptions{Name: "busy"}); err != nil {
		t.Fatal(err)
	}
	var ctrs []*ctr
	var eps []*network.Endpoint
	for i := 0; i < 3; i++ {
		c := h.container(fmt.Sprintf("busy%d", i))
		ctrs = append(ctrs, c)
		eps = append(eps, h.attach(c, network.AttachOptions{Network: "busy"}))
	}
	const (
		perSecond = 1000
		seconds   = 3
		workers   = 8 // per container
	)
	total := perSecond * seconds
	var failures atomic.Int64
	var mu sync.Mutex
	var latencies []time.Duration
	var firstErr atomic.Value
	var wg sync.WaitGroup
	interval := time.Second * time.Duration(len(ctrs)*workers) / perSecond
	for ci, c := range ctrs {
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(ci, w int) {
				defer wg.Done()
				r := newResolver(t, c.ns, eps[ci].Gateway)
				conn, err := r.dial()
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
					return
				}
				defer conn.Close()
				tick := time.NewTicker(interval)
				defer tick.Stop()
				for i := 0; i < total/(len(ctrs)*workers); i++ {
					<-tick.C
					name, want := fmt.Sprintf("busy%d", (ci+i)%3), eps[(ci+i)%3].IPv4.Addr().String()
					if i%2 == 1 {
						name, want = fmt.Sprintf("host%d.example.test", i), "192.0.2.1"
					}
					start := time.Now()
					got, err := r.queryOn(conn, name, mdns.TypeA)
					d := time.Since(start)
					if err != nil || !slices.Equal(got, []string{want}) {
						failures.Add(1)
						if err == nil {
							err = fmt.Errorf("%s = %v, want %s", name, got, want)
						}
						firstErr.CompareAndSwap(nil, err)
						continue
					}
					mu.Lock()
					latencies = append(latencies, d)
					mu.Unlock()
				}
			}(ci, w)
		}
	}
	wg.Wait()
	slices.Sort(latencies)
	if len(latencies) > 0 {
		t.Logf("%d queries answered; latency p50 %v p99 %v max %v", len(latencies),
			latencies[len(latencies)/2], latencies[len(latencies)*99/100], latencies[len(latencies)-1])
	}
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d queries failed; first: %v", n, total, firstErr.Load())
	}
}
