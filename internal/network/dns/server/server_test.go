package server

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/berthproject/berth/internal/network/dns"
	"github.com/berthproject/berth/internal/network/store"
)

// These tests run the server without root: the "network" is a piece of
// the loopback range (127.77.0.0/16, gateway 127.77.0.1), and clients send
// from loopback addresses of it, so the server sees them as containers.

const (
	testPort     = 15353
	upstreamPort = 15354
)

func startUpstream(t *testing.T) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(ip("127.0.0.1"), upstreamPort).String())
	if err != nil {
		t.Skipf("cannot listen for the fake upstream: %v", err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 1}, A: net.IPv4(192, 0, 2, 7)})
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
}

type fixture struct {
	store   *store.Store
	records string
	run     string
}

func startServer(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{records: filepath.Join(dir, "records"), run: filepath.Join(dir, "run")}
	var err error
	if f.store, err = store.Open(f.records); err != nil {
		t.Fatal(err)
	}
	resolvConf := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolvConf, []byte("nameserver 127.0.0.1\n"), 0o644)
	f.update(t, func(st *store.State) {
		st.Networks["n"] = &store.Network{ID: "n", Name: "loop", Driver: "bridge", Subnet: netip.MustParsePrefix("127.77.0.0/16"), Gateway: ip("127.77.0.1")}
		st.Endpoints["e1"] = &store.Endpoint{ID: "e1", NetworkID: "n", ContainerID: "c1", ContainerName: "web", IPv4: ip("127.77.0.2"), Aliases: []string{"www"}}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ServerConfig{Records: f.records, Run: f.run, HostResolvConf: resolvConf, Port: testPort, UpstreamPort: upstreamPort})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	c := &dns.Client{Records: f.records, Run: f.run}
	for i := 0; ; i++ {
		if err := c.Reload(context.Background()); err == nil {
			break
		} else if i == 500 {
			t.Fatalf("server did not come up: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return f
}

func (f *fixture) update(t *testing.T, fn func(*store.State)) {
	t.Helper()
	if err := f.store.Update(func(st *store.State) error { fn(st); return nil }); err != nil {
		t.Fatal(err)
	}
}

// ask queries the server from a source address of the loopback network.
func ask(t *testing.T, from, name string, qtype uint16) []string {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}}
	conn, err := d.Dial("udp", netip.AddrPortFrom(ip("127.77.0.1"), testPort).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	c := &mdns.Client{Timeout: 5 * time.Second}
	resp, _, err := c.ExchangeWithConn(m, &mdns.Conn{Conn: conn})
	if err != nil {
		t.Fatalf("query %s from %s: %v", name, from, err)
	}
	if resp.Rcode != mdns.RcodeSuccess {
		return []string{mdns.RcodeToString[resp.Rcode]}
	}
	var out []string
	for _, rr := range resp.Answer {
		switch rr := rr.(type) {
		case *mdns.A:
			out = append(out, rr.A.String())
		case *mdns.PTR:
			out = append(out, rr.Ptr)
		}
	}
	sort.Strings(out)
	return out
}

func TestServer(t *testing.T) {
	startUpstream(t)
	f := startServer(t)
	tests := []struct {
		from, name string
		qtype      uint16
		want       []string
	}{
		{"127.77.0.2", "web", mdns.TypeA, []string{"127.77.0.2"}},
		{"127.77.0.2", "WWW.", mdns.TypeA, []string{"127.77.0.2"}},
		{"127.77.0.9", "web.loop", mdns.TypeA, []string{"127.77.0.2"}},
		{"127.77.0.2", "2.0.77.127.in-addr.arpa", mdns.TypePTR, []string{"web.loop."}},
		{"127.77.0.2", "elsewhere.example", mdns.TypeA, []string{"192.0.2.7"}},
		{"127.0.0.1", "web", mdns.TypeA, []string{"REFUSED"}}, // not from a berth network
	}
	for _, tt := range tests {
		if got := ask(t, tt.from, tt.name, tt.qtype); !slices.Equal(got, tt.want) {
			t.Errorf("%s asks %s = %v, want %v", tt.from, tt.name, got, tt.want)
		}
	}
	// A new container is answered at once, without a sync: the server
	// notices the records changed.
	f.update(t, func(st *store.State) {
		st.Endpoints["e2"] = &store.Endpoint{ID: "e2", NetworkID: "n", ContainerID: "c2", ContainerName: "late", IPv4: ip("127.77.0.3")}
	})
	if got := ask(t, "127.77.0.2", "late", mdns.TypeA); !slices.Equal(got, []string{"127.77.0.3"}) {
		t.Errorf("container added to the records = %v, want 127.77.0.3", got)
	}
	f.update(t, func(st *store.State) { delete(st.Endpoints, "e2") })
	if got := ask(t, "127.77.0.2", "late", mdns.TypeA); !slices.Equal(got, []string{"192.0.2.7"}) {
		t.Errorf("container removed from the records = %v, want it forwarded", got)
	}
	if pid := dns.PID(f.run); pid != os.Getpid() {
		t.Errorf("PID = %d, want this process %d", pid, os.Getpid())
	}
}

// TestServerLinks: a legacy link (--link web:backend on a user-defined
// network) is an alias of the linked container for the linking container
// only, as in Docker.
func TestServerLinks(t *testing.T) {
	startUpstream(t)
	f := startServer(t)
	f.update(t, func(st *store.State) {
		st.Endpoints["e3"] = &store.Endpoint{ID: "e3", NetworkID: "n", ContainerID: "c3", ContainerName: "client", IPv4: ip("127.77.0.4"),
			Links: map[string]string{"backend": "web"}}
	})
	tests := []struct{ from, name, want string }{
		{"127.77.0.4", "backend", "127.77.0.2"},
		{"127.77.0.4", "BACKEND.", "127.77.0.2"},
		{"127.77.0.4", "web", "127.77.0.2"},
		{"127.77.0.2", "backend", "192.0.2.7"}, // not web's link: forwarded
	}
	for _, tt := range tests {
		if got := ask(t, tt.from, tt.name, mdns.TypeA); !slices.Equal(got, []string{tt.want}) {
			t.Errorf("%s asks %s = %v, want [%s]", tt.from, tt.name, got, tt.want)
		}
	}
}

func TestServeRefusesASecondServer(t *testing.T) {
	f := startServer(t)
	err := Serve(context.Background(), ServerConfig{Records: f.records, Run: f.run, Port: testPort + 10})
	if err != ErrRunning {
		t.Errorf("second Serve = %v, want ErrRunning", err)
	}
}

func TestClientWithoutServer(t *testing.T) {
	c := &dns.Client{Records: t.TempDir(), Run: t.TempDir()}
	if err := c.SyncIfRunning(context.Background()); err != nil {
		t.Errorf("SyncIfRunning without a server = %v, want nil", err)
	}
	if err := c.Sync(context.Background()); err == nil {
		t.Errorf("Sync without a server or a command succeeded")
	}
	if pid := dns.PID(c.Run); pid != 0 {
		t.Errorf("PID without a server = %d", pid)
	}
}

// TestServerIdleExit: with IdleExit, a server ends once no user-defined
// network has had containers for that long, and not before.
func TestServerIdleExit(t *testing.T) {
	dir := t.TempDir()
	f := &fixture{records: filepath.Join(dir, "records"), run: filepath.Join(dir, "run")}
	var err error
	if f.store, err = store.Open(f.records); err != nil {
		t.Fatal(err)
	}
	f.update(t, func(st *store.State) {
		st.Networks["n"] = &store.Network{ID: "n", Name: "loop", Driver: "bridge", Subnet: netip.MustParsePrefix("127.78.0.0/16"), Gateway: ip("127.78.0.1")}
		st.Endpoints["e1"] = &store.Endpoint{ID: "e1", NetworkID: "n", ContainerID: "c1", ContainerName: "web", IPv4: ip("127.78.0.2")}
	})
	const idle = 200 * time.Millisecond
	done := make(chan error, 1)
	go func() {
		done <- Serve(context.Background(), ServerConfig{Records: f.records, Run: f.run, Port: testPort + 20, IdleExit: idle})
	}()
	c := &dns.Client{Records: f.records, Run: f.run}
	for i := 0; c.Reload(context.Background()) != nil; i++ {
		if i == 500 {
			t.Fatal("server did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Serve ended (%v) while a network has a container", err)
	case <-time.After(3 * idle):
	}
	f.update(t, func(st *store.State) { delete(st.Endpoints, "e1") })
	if err := c.SyncIfRunning(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after idling = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not end once idle")
	}
	if err := c.SyncIfRunning(context.Background()); err != nil {
		t.Errorf("SyncIfRunning after the server ended = %v", err)
	}
}
