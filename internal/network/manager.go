package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berthproject/berth/internal/network/link"
	"github.com/berthproject/berth/internal/network/nft"
	"github.com/berthproject/berth/internal/network/store"
)

// Errors, classified for errors.Is (the engine maps them to exit codes and
// HTTP statuses).
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("conflict")
	ErrInvalid   = errors.New("invalid argument")
	ErrForbidden = errors.New("forbidden") // acting on a predefined network
)

// Drivers, as Docker names them.
const (
	DriverBridge = "bridge"
	DriverHost   = "host"
	DriverNull   = "null"
)

// Predefined network names.
const (
	NameBridge = "bridge"
	NameHost   = "host"
	NameNone   = "none"
)

// Network options understood (Docker's names).
const (
	OptionMTU        = "com.docker.network.driver.mtu"
	OptionMasquerade = "com.docker.network.bridge.enable_ip_masquerade"
	OptionBridgeName = "com.docker.network.bridge.name"
	optionDefault    = "com.docker.network.bridge.default_bridge"
)

// Defaults.
var (
	// DefaultSubnet is the default bridge network's subnet: not docker0's
	// 172.17.0.0/16, so both engines can run on one host.
	DefaultSubnet = netip.MustParsePrefix("172.30.0.0/16")
)

const (
	DefaultBridge = "berth0"
	DefaultMTU    = 1500
)

// Config configures a Manager.
type Config struct {
	// Dir holds the records (persistent: ROOT/network).
	Dir string
	// DefaultSubnet of the "bridge" network (DefaultSubnet if zero). A
	// change takes effect once no container uses the network.
	DefaultSubnet netip.Prefix
	// DNS controls the embedded DNS server (see package dns); nil: none, and
	// containers on user-defined networks resolve only through their
	// resolv.conf's other servers.
	DNS DNS
	Log *slog.Logger
}

// DNS is the embedded DNS server as the manager needs it.
type DNS interface {
	// Sync makes the server serve the current records, starting it if it
	// does not run, and returns once it does.
	Sync(ctx context.Context) error
	// SyncIfRunning tells a running server to re-read the records.
	SyncIfRunning(ctx context.Context) error
}

// kernel is what the manager changes in the host's kernel.
type kernel interface {
	EnsureBridge(link.Bridge) error
	AddVeth(link.Veth) error
	DeleteLink(name string) error
	LinkExists(name string) (bool, error)
	OwnedLinks() ([]link.Owned, error)
	SetDefaultRoutes(netnsPath, ifname string, gws []netip.Addr) error
	Routes() ([]netip.Prefix, error)
	ApplyRules([]nft.Table) error
	// SyncRedirects makes the connect-time redirection of published ports
	// (package portredirect) hold exactly these; it never fails: without
	// it, the DNAT rules serve the ports alone.
	SyncRedirects([]Redirect)
	// PortFree tells whether a host port can be bound (nobody listens).
	PortFree(proto string, ip netip.Addr, port uint16) error
	// NetNSAlive tells whether a network namespace path still exists.
	NetNSAlive(path string) bool
	// LocalPortRange is the kernel's ephemeral port range.
	LocalPortRange() (lo, hi uint16)
}

// applyRules makes the kernel's rules and redirections match the records:
// the nftables tables, then the connect-time redirections (an accelerator
// of the rules, so made after them and from the same records).
func (m *Manager) applyRules(st *store.State, k kernel) error {
	if err := k.ApplyRules(Rules(st)); err != nil {
		return err
	}
	k.SyncRedirects(Redirects(st))
	return nil
}

// Manager manages the networks and endpoints of one store.
type Manager struct {
	cfg   Config
	store *store.Store
	log   *slog.Logger

	// newKernel opens the kernel side on first use, so that reading the
	// records needs neither root nor netlink.
	newKernel func() (kernel, error)

	mu     sync.Mutex
	kernel kernel // opened by newKernel
}

// New opens the records under cfg.Dir.
func New(cfg Config) (*Manager, error) {
	return newManager(cfg, func() (kernel, error) {
		return openHostKernel(filepath.Join(cfg.Dir, "rules.applied"), RedirectName(cfg.Dir), cfg.Log)
	})
}

func newManager(cfg Config, newKernel func() (kernel, error)) (*Manager, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("%w: network records directory is not set", ErrInvalid)
	}
	if !cfg.DefaultSubnet.IsValid() {
		cfg.DefaultSubnet = DefaultSubnet
	}
	if !cfg.DefaultSubnet.Addr().Is4() || cfg.DefaultSubnet != cfg.DefaultSubnet.Masked() {
		return nil, fmt.Errorf("%w: default bridge subnet %s: want a masked IPv4 prefix", ErrInvalid, cfg.DefaultSubnet)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := store.Open(cfg.Dir)
	if err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, store: s, log: cfg.Log, newKernel: newKernel}, nil
}

// Close releases the kernel connections.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.kernel.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Store is the manager's records (the DNS server reads them too).
func (m *Manager) Store() *store.Store { return m.store }

func (m *Manager) k() (kernel, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.kernel == nil {
		k, err := m.newKernel()
		if err != nil {
			return nil, err
		}
		m.kernel = k
	}
	return m.kernel, nil
}

// update runs fn under the store's lock with the predefined networks in
// place and the kernel opened.
func (m *Manager) update(fn func(*store.State, kernel) error) error {
	k, err := m.k()
	if err != nil {
		return err
	}
	return m.store.Update(func(st *store.State) error {
		if err := m.ensurePredefined(st); err != nil {
			return err
		}
		return fn(st, k)
	})
}

// read returns the records, creating the predefined networks first if this
// store has none yet (so their IDs are stable).
func (m *Manager) read() (*store.State, error) {
	st, err := m.store.Read()
	if err != nil {
		return nil, err
	}
	if hasPredefined(st) && !m.defaultMoves(st) {
		return st, nil
	}
	if err := m.store.Update(func(st *store.State) error { return m.ensurePredefined(st) }); err != nil {
		return nil, err
	}
	return m.store.Read()
}

// defaultMoves says the default bridge is unused and not on the configured
// subnet (the configuration changed).
func (m *Manager) defaultMoves(st *store.State) bool {
	for _, n := range st.Networks {
		if n.Default {
			return n.Subnet != m.cfg.DefaultSubnet && len(st.NetworkEndpoints(n.ID)) == 0
		}
	}
	return false
}

func hasPredefined(st *store.State) bool {
	n := 0
	for _, nw := range st.Networks {
		if nw.Default || (nw.Name == NameHost && nw.Driver == DriverHost) || (nw.Name == NameNone && nw.Driver == DriverNull) {
			n++
		}
	}
	return n == 3
}

// ensurePredefined adds the networks bridge, host and none, and moves the
// default bridge to the configured subnet when nobody uses it.
func (m *Manager) ensurePredefined(st *store.State) error {
	var def *store.Network
	have := map[string]bool{}
	for _, n := range st.Networks {
		if n.Default {
			def = n
		}
		have[n.Name] = true
	}
	now := time.Now().UTC()
	for _, p := range []struct{ name, driver string }{{NameHost, DriverHost}, {NameNone, DriverNull}} {
		if !have[p.name] {
			id := newID()
			st.Networks[id] = &store.Network{ID: id, Name: p.name, Driver: p.driver, Created: now}
		}
	}
	want := m.cfg.DefaultSubnet
	if def != nil && def.Subnet == want {
		return nil
	}
	for _, n := range st.Networks {
		if n != def && overlaps(n, want) {
			if def == nil || len(st.NetworkEndpoints(def.ID)) == 0 {
				return fmt.Errorf("%w: default bridge subnet %s overlaps network %s (%s)", ErrConflict, want, n.Name, n.Subnet)
			}
			m.log.Warn("default bridge subnet not changed: it overlaps another network", "want", want, "network", n.Name)
			return nil
		}
	}
	if def == nil {
		id := newID()
		def = &store.Network{ID: id, Name: NameBridge, Driver: DriverBridge, Created: now, Default: true, Bridge: DefaultBridge}
		st.Networks[id] = def
	} else if len(st.NetworkEndpoints(def.ID)) > 0 {
		m.log.Warn("default bridge subnet not changed while containers use it", "have", def.Subnet, "want", want)
		return nil
	}
	def.Subnet, def.Gateway, def.Last4 = want, want.Addr().Next(), netip.Addr{}
	return nil
}

func overlaps(n *store.Network, p netip.Prefix) bool {
	return (n.Subnet.IsValid() && n.Subnet.Addr().Is4() == p.Addr().Is4() && n.Subnet.Overlaps(p)) ||
		(n.Subnet6.IsValid() && p.Addr().Is6() && n.Subnet6.Overlaps(p))
}

// lookup finds a network by name, full ID or unique ID prefix (Docker's
// order).
func lookup(st *store.State, ref string) (*store.Network, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: network name is empty", ErrInvalid)
	}
	for _, n := range st.Networks {
		if n.Name == ref {
			return n, nil
		}
	}
	if n, ok := st.Networks[ref]; ok {
		return n, nil
	}
	var found *store.Network
	for id, n := range st.Networks {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, fmt.Errorf("%w: network %s is ambiguous (several IDs start with it)", ErrConflict, ref)
			}
			found = n
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: network %s", ErrNotFound, ref)
	}
	return found, nil
}

func newID() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}
