// Package server is the embedded DNS server of user-defined networks: the
// program cmd/berth-dns runs (see package dns for what it serves and how it
// is started). It is apart from package dns so that berth's commands, which
// start and signal it, do not link a DNS library.
package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	gonet "net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/network/dns"
	"github.com/berthproject/berth/internal/network/resolv"
	"github.com/berthproject/berth/internal/network/store"
)

// ErrRunning says another server already serves the run directory.
var ErrRunning = errors.New("an embedded DNS server already runs for this directory")

// ServerConfig configures a server.
type ServerConfig struct {
	Records string // the records directory (package store)
	Run     string // the run directory (lock, pid, control socket)
	// HostResolvConf lists the host's resolvers (default /etc/resolv.conf).
	HostResolvConf string
	// Port is the DNS port on the gateways (53; tests use others).
	Port uint16
	// UpstreamPort is the port of the resolvers forwarded to (53).
	UpstreamPort uint16
	// UpstreamTimeout bounds one forwarded query (default 2s).
	UpstreamTimeout time.Duration
	// MaxForwards bounds forwarded queries in flight (default 1024).
	MaxForwards int
	// IdleExit ends the server once no user-defined network has had
	// containers for this long (0: never). See the package doc.
	IdleExit time.Duration
	Log      *slog.Logger
}

// Server is a running embedded DNS server.
type Server struct {
	cfg   ServerConfig
	store *store.Store
	log   *slog.Logger

	ix       atomic.Pointer[index]
	forwards chan struct{} // semaphore of forwarded queries

	mu       sync.Mutex // guards the fields below and reloads
	closing  bool       // the server is ending: syncs are not answered
	recordID store.FileID
	hostID   fileID
	host     []netip.Addr // the host's resolvers
	servers  map[netip.Addr][]*mdns.Server
}

type fileID struct {
	ino   uint64
	mtime int64
}

// Serve runs a server until ctx ends. It returns ErrRunning if another one
// serves the same run directory.
func Serve(ctx context.Context, cfg ServerConfig) error {
	if cfg.HostResolvConf == "" {
		cfg.HostResolvConf = "/etc/resolv.conf"
	}
	if cfg.Port == 0 {
		cfg.Port = 53
	}
	if cfg.UpstreamPort == 0 {
		cfg.UpstreamPort = 53
	}
	if cfg.UpstreamTimeout == 0 {
		cfg.UpstreamTimeout = 2 * time.Second
	}
	if cfg.MaxForwards == 0 {
		cfg.MaxForwards = 1024
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(cfg.Run, 0o700); err != nil {
		return fmt.Errorf("create DNS run directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.Run, dns.LockFile), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open DNS server lock: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return ErrRunning
		}
		return fmt.Errorf("lock DNS server: %w", err)
	}
	st, err := store.Open(cfg.Records)
	if err != nil {
		return err
	}
	s := &Server{cfg: cfg, store: st, log: cfg.Log, forwards: make(chan struct{}, cfg.MaxForwards), servers: map[netip.Addr][]*mdns.Server{}}
	if err := s.reload(true); err != nil {
		return err
	}
	defer s.closeAll()

	sock := filepath.Join(cfg.Run, dns.SockFile)
	os.Remove(sock) // stale: we hold the lock, so nobody serves it
	ctl, err := gonet.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listen on DNS control socket: %w", err)
	}
	defer ctl.Close()
	if err := os.WriteFile(filepath.Join(cfg.Run, dns.PIDFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("write DNS server pid file: %w", err)
	}
	s.log.Info("embedded DNS server started", "records", cfg.Records, "listen", s.ix.Load().listen)
	idle := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-idle:
		}
		ctl.Close()
	}()
	if cfg.IdleExit > 0 {
		go s.exitWhenIdle(ctx, idle)
	}
	for {
		c, err := ctl.Accept()
		if err != nil {
			select {
			case <-idle:
				s.log.Info("no user-defined network has containers: exiting")
				return nil
			default:
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("DNS control socket: %w", err)
		}
		go s.control(c)
	}
}

// exitWhenIdle closes idle once the server has had nothing to serve for
// IdleExit. A client that starts a server holds the start lock; so does
// the ending server from its last look at the records until it exits, and
// it answers no sync after that look: a client either gets its sync
// answered by a server that serves its records, or finds none and starts
// one after this one is gone.
func (s *Server) exitWhenIdle(ctx context.Context, idle chan<- struct{}) {
	period := s.cfg.IdleExit / 4
	var since time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(period):
		}
		if len(s.ix.Load().listen) > 0 {
			since = time.Time{}
			continue
		}
		if since.IsZero() {
			since = time.Now()
		}
		if time.Since(since) < s.cfg.IdleExit {
			continue
		}
		lf, err := os.OpenFile(filepath.Join(s.cfg.Run, dns.StartFile), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if err != nil {
			continue
		}
		if unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			lf.Close() // a client is starting a server: look again later
			continue
		}
		s.mu.Lock()
		st, err := s.store.Read()
		if err == nil && len(buildIndex(st).listen) == 0 {
			s.closing = true
			s.mu.Unlock()
			// lf stays locked until the process exits.
			close(idle)
			return
		}
		s.mu.Unlock()
		lf.Close()
		since = time.Time{}
		if err == nil {
			s.reload(true)
		}
	}
}

// control serves one client of the control socket.
func (s *Server) control(c gonet.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch strings.TrimSpace(line) {
		case "sync":
			err := s.reload(true)
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return // the client finds no server and starts one
			}
			if err != nil {
				s.log.Error("reload", "err", err)
				fmt.Fprintf(c, "error: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
				continue
			}
			io.WriteString(c, "ok\n")
		default:
			io.WriteString(c, "error: unknown command\n")
		}
	}
}

// reload rebuilds the index if the records changed (always if force) and
// makes the listeners match it; it also re-reads the host's resolvers if
// their file changed.
func (s *Server) reload(force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, err := statFile(s.cfg.HostResolvConf); err == nil && id != s.hostID {
		if b, err := os.ReadFile(s.cfg.HostResolvConf); err == nil {
			s.host, s.hostID = resolv.ParseConf(b).Nameservers, id
		}
	}
	id, err := s.store.Stat()
	if err != nil {
		return err
	}
	if !force && id == s.recordID && s.ix.Load() != nil {
		return nil
	}
	st, err := s.store.Read()
	if err != nil {
		return err
	}
	ix := buildIndex(st)
	s.ix.Store(ix)
	s.recordID = id
	return s.listen(ix.listen)
}

func statFile(p string) (fileID, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return fileID{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fileID{ino: st.Ino, mtime: st.Mtim.Nano()}, nil
}

// listen serves exactly the given addresses (UDP and TCP each).
func (s *Server) listen(addrs []netip.Addr) error {
	want := map[netip.Addr]bool{}
	var errs []error
	for _, a := range addrs {
		want[a] = true
		if _, ok := s.servers[a]; ok {
			continue
		}
		srvs, err := s.serve(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.servers[a] = srvs
	}
	for a, srvs := range s.servers {
		if !want[a] {
			for _, srv := range srvs {
				srv.Shutdown()
			}
			delete(s.servers, a)
		}
	}
	return errors.Join(errs...)
}

// freebind lets the server bind a gateway address before (or while) the
// bridge carries it.
func freebind(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if strings.HasSuffix(network, "6") {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

func (s *Server) serve(a netip.Addr) ([]*mdns.Server, error) {
	addr := netip.AddrPortFrom(a, s.cfg.Port).String()
	fam := "4"
	if a.Is6() {
		fam = "6"
	}
	lc := gonet.ListenConfig{Control: freebind}
	pc, err := lc.ListenPacket(context.Background(), "udp"+fam, addr)
	if err != nil {
		return nil, fmt.Errorf("DNS server: listen on udp %s: %w", addr, err)
	}
	l, err := lc.Listen(context.Background(), "tcp"+fam, addr)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("DNS server: listen on tcp %s: %w", addr, err)
	}
	h := mdns.HandlerFunc(s.handle)
	udp := &mdns.Server{PacketConn: pc, Handler: h, UDPSize: 4096}
	tcp := &mdns.Server{Listener: l, Handler: h}
	for _, srv := range []*mdns.Server{udp, tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				s.log.Error("DNS server stopped", "addr", addr, "err", err)
			}
		}()
		<-started
	}
	s.log.Info("serving", "addr", addr)
	return []*mdns.Server{udp, tcp}, nil
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, srvs := range s.servers {
		for _, srv := range srvs {
			srv.Shutdown()
		}
		delete(s.servers, a)
	}
}

const ttl = 600

func addrOf(a gonet.Addr) netip.Addr {
	switch a := a.(type) {
	case *gonet.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *gonet.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// handle answers one query.
func (s *Server) handle(w mdns.ResponseWriter, r *mdns.Msg) {
	if err := s.reload(false); err != nil {
		s.log.Warn("reload", "err", err)
	}
	ix := s.ix.Load()
	src, local := addrOf(w.RemoteAddr()), addrOf(w.LocalAddr())
	nets, asker := ix.scope(src, local)
	if len(nets) == 0 || len(r.Question) != 1 || r.Opcode != mdns.OpcodeQuery {
		m := new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeRefused)
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	if q.Qclass == mdns.ClassINET {
		if m := s.answerLocal(r, q, name, nets, asker); m != nil {
			w.WriteMsg(m)
			return
		}
	}
	if !forwards(nets) {
		m := new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeRefused)
		m.RecursionAvailable = true
		w.WriteMsg(m)
		return
	}
	upstreams := s.upstreams(asker)
	_, isTCP := w.RemoteAddr().(*gonet.TCPAddr)
	w.WriteMsg(s.forward(r, upstreams, isTCP))
}

// forwards: a container on internal networks only gets no outside names.
func forwards(nets []*netEntry) bool {
	for _, n := range nets {
		if !n.internal {
			return true
		}
	}
	return false
}

func (s *Server) upstreams(m *member) []netip.Addr {
	if m != nil && len(m.dns) > 0 {
		return m.dns
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.host
}

// answerLocal answers for containers' names and addresses, or returns nil
// for a name that is not theirs. The asker's link aliases come first.
func (s *Server) answerLocal(r *mdns.Msg, q mdns.Question, name string, nets []*netEntry, asker *member) *mdns.Msg {
	if q.Qtype == mdns.TypePTR {
		a, ok := reverseAddr(name)
		if !ok {
			return nil
		}
		for _, n := range nets {
			if m := n.byIP[a]; m != nil {
				out := reply(r)
				target := mdns.Fqdn(m.name + "." + n.name)
				if m.name == "" {
					target = mdns.Fqdn(shortID(m.container) + "." + n.name)
				}
				out.Answer = append(out.Answer, &mdns.PTR{Hdr: hdr(q, mdns.TypePTR), Ptr: target})
				return out
			}
		}
		return nil
	}
	if asker != nil {
		if target, ok := asker.links[name]; ok {
			name = strings.ToLower(target)
		}
	}
	ms := lookup(nets, name)
	if len(ms) == 0 {
		return nil
	}
	out := reply(r)
	for _, m := range ms {
		if (q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY) && m.v4.IsValid() {
			out.Answer = append(out.Answer, &mdns.A{Hdr: hdr(q, mdns.TypeA), A: m.v4.AsSlice()})
		}
		if (q.Qtype == mdns.TypeAAAA || q.Qtype == mdns.TypeANY) && m.v6.IsValid() {
			out.Answer = append(out.Answer, &mdns.AAAA{Hdr: hdr(q, mdns.TypeAAAA), AAAA: m.v6.AsSlice()})
		}
	}
	// Other types of a container's name: no data, and not forwarded.
	return out
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func reply(r *mdns.Msg) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	return m
}

func hdr(q mdns.Question, t uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: q.Name, Rrtype: t, Class: mdns.ClassINET, Ttl: ttl}
}

// reverseAddr reads an in-addr.arpa or ip6.arpa name.
func reverseAddr(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		p := strings.Split(rest, ".")
		if len(p) != 4 {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(p[3] + "." + p[2] + "." + p[1] + "." + p[0])
		return a, err == nil
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		p := strings.Split(rest, ".")
		if len(p) != 32 {
			return netip.Addr{}, false
		}
		var b strings.Builder
		for i := 31; i >= 0; i-- {
			b.WriteString(p[i])
			if i%4 == 0 && i > 0 {
				b.WriteByte(':')
			}
		}
		a, err := netip.ParseAddr(b.String())
		return a, err == nil
	}
	return netip.Addr{}, false
}

// forward asks the upstreams in turn and returns the first answer, or
// SERVFAIL.
func (s *Server) forward(r *mdns.Msg, upstreams []netip.Addr, tcp bool) *mdns.Msg {
	fail := func() *mdns.Msg {
		m := new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeServerFailure)
		m.RecursionAvailable = true
		return m
	}
	select {
	case s.forwards <- struct{}{}:
		defer func() { <-s.forwards }()
	default:
		s.log.Warn("too many forwarded queries in flight: failing one", "max", cap(s.forwards))
		return fail()
	}
	c := &mdns.Client{Net: "udp", Timeout: s.cfg.UpstreamTimeout, UDPSize: 4096}
	if tcp {
		c.Net = "tcp"
	}
	for _, u := range upstreams {
		addr := netip.AddrPortFrom(u, s.cfg.UpstreamPort).String()
		resp, _, err := c.Exchange(r, addr)
		if err != nil {
			s.log.Debug("upstream failed", "upstream", addr, "err", err)
			continue
		}
		return resp
	}
	return fail()
}
