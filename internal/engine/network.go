package engine

// Networking: how a container's network follows its life (package
// internal/network does the links, addresses, rules and DNS).
//
//	create  the network mode is resolved ("" and "default" become "bridge")
//	        and the networks the container joins are recorded in
//	        Container.Networks with the user's endpoint settings (--ip,
//	        --network-alias, --mac-address); an unknown network, or a flag
//	        the network refuses, fails here and nothing is created.
//	start   a network namespace is made at State/netns/<id> (a bind mount)
//	        and attached to each network: a veth, addresses, routes, the
//	        published ports, the names in the embedded DNS server. The
//	        container's /etc/hosts and /etc/resolv.conf are rendered from the
//	        endpoints, and the runtime joins the namespace by path: the
//	        network is ready before the process runs.
//	stop    the monitor's exit command (Cleanup) detaches the container and
//	        removes its namespace; so do rm, the next start (leftovers of a
//	        crash), and a record's reconcile that finds the monitor dead
//	        (kill -9).
//	crash   endpoints whose container is gone (a berth command killed between
//	        attach and start, a reboot) are freed by the network manager's
//	        Reconcile: once per boot (a mark under State/network), when an
//	        attach meets a conflict (an address or a host port taken), and on
//	        `network prune`.
//
// The modes host, none and container:X have no endpoints: the runtime makes
// the loopback-only namespace of none, and container:X joins X's namespace
// and shares its /etc/hosts, /etc/resolv.conf and /etc/hostname, as Docker
// does.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"
	mnetwork "github.com/moby/moby/api/types/network"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/network"
	"github.com/berthproject/berth/internal/network/dns"
	"github.com/berthproject/berth/internal/network/netns"
	"github.com/berthproject/berth/internal/network/resolv"
)

// netState is the engine's network manager, opened on first use.
type netState struct {
	mu sync.Mutex
	m  *network.Manager
	// detached holds the containers this process found without network
	// namespace and endpoints (disconnectNetworks): a stopped container
	// gets none meanwhile (a start would need its lock), and a removal
	// asks up to three times.
	detached map[string]bool
}

func (e *Engine) netnsDir() string           { return filepath.Join(e.opts.State, "netns") }
func (e *Engine) netnsPath(id string) string { return filepath.Join(e.netnsDir(), id) }
func (e *Engine) netRunDir() string          { return filepath.Join(e.opts.State, "network") }

// network opens the network manager: records under Root/network, the
// embedded DNS server (berth-dns next to berth) run from State/network/dns.
func (e *Engine) network() (*network.Manager, error) {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	if e.net.m != nil {
		return e.net.m, nil
	}
	dir := filepath.Join(e.opts.Root, "network")
	m, err := network.New(network.Config{
		Dir:           dir,
		DefaultSubnet: e.opts.BridgeSubnet,
		DNS: &dns.Client{
			Records: dir, Run: filepath.Join(e.netRunDir(), "dns"),
			Command: []string{siblingBinary("berth-dns")},
		},
		Log: e.log,
	})
	if err != nil {
		return nil, netError(err)
	}
	e.net.m = m
	return m, nil
}

func (e *Engine) closeNetwork() {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	if e.net.m != nil {
		e.net.m.Close()
		e.net.m = nil
	}
}

// kindError gives an error of package network the engine's kind for
// errors.Is, keeping its text.
type kindError struct{ kind, err error }

func (k kindError) Error() string   { return k.err.Error() }
func (k kindError) Unwrap() []error { return []error{k.kind, k.err} }

// netError classifies errors of the network packages with the engine's
// sentinel kinds.
func netError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, network.ErrNotFound):
		return kindError{ErrNotFound, err}
	case errors.Is(err, network.ErrConflict):
		return kindError{ErrConflict, err}
	case errors.Is(err, network.ErrInvalid), errors.Is(err, network.ErrForbidden), errors.Is(err, resolv.ErrInvalid):
		return kindError{ErrInvalid, err}
	}
	return err
}

// bridgeMode says the container's network mode attaches it to bridge
// networks (the default bridge or a user-defined one).
func bridgeMode(h *container.HostConfig) bool {
	m := h.NetworkMode
	return !m.IsHost() && !m.IsNone() && !m.IsContainer()
}

// networkOrder lists the networks a container joins at start: the one of
// its network mode first (its default route and published ports go
// there), then the ones `network connect` added, by name.
func networkOrder(c *Container) []string {
	var names []string
	for n := range c.Networks {
		names = append(names, n)
	}
	sort.Strings(names)
	first := string(c.HostConfig.NetworkMode)
	if i := slices.Index(names, first); i > 0 {
		names = append(append([]string{first}, names[:i]...), names[i+1:]...)
	}
	return names
}

// prepareNetworking checks a new container's network settings and records
// the networks it joins (Create calls it before anything is made).
func (e *Engine) prepareNetworking(ctx context.Context, c *Container, nc *mnetwork.NetworkingConfig, checkPorts bool) error {
	h := c.HostConfig
	switch h.NetworkMode {
	case "", "default":
		h.NetworkMode = network.NameBridge
	}
	for _, s := range h.ExtraHosts {
		if _, err := resolv.ParseAddHost(s, netip.IPv4Unspecified()); err != nil {
			return netError(err)
		}
	}
	if err := e.prepareLinks(ctx, c); err != nil {
		return err
	}
	var eps map[string]*mnetwork.EndpointSettings
	if nc != nil {
		eps = nc.EndpointsConfig
	}
	mode := string(h.NetworkMode)
	if !bridgeMode(h) {
		if len(eps) > 0 {
			for name, s := range eps {
				if s != nil && (len(s.Aliases) > 0 || s.IPAMConfig != nil || len(s.MacAddress) > 0) && name != mode {
					return fmt.Errorf("%w: --network %s: container cannot be connected to network %s as well", ErrInvalid, mode, name)
				}
			}
		}
		if h.NetworkMode.IsContainer() && (len(h.PortBindings) > 0 || h.PublishAllPorts) {
			return fmt.Errorf("%w: --publish: conflicting options: port publishing and the container type network mode", ErrInvalid)
		}
		if h.NetworkMode.IsContainer() && len(h.DNS)+len(h.DNSSearch)+len(h.DNSOptions)+len(h.ExtraHosts) > 0 {
			return fmt.Errorf("%w: --dns and --add-host: conflicting options: dns and the container type network mode", ErrInvalid)
		}
		if h.NetworkMode.IsContainer() {
			if other, err := e.Lookup(ctx, strings.TrimPrefix(mode, "container:")); err != nil {
				return fmt.Errorf("--network %s: %w", mode, err)
			} else if c.Config.Hostname == "" {
				c.Config.Hostname, c.Config.Domainname = other.Config.Hostname, other.Config.Domainname
			}
		}
		return nil
	}
	m, err := e.network()
	if err != nil {
		return err
	}
	for name := range eps {
		if name != mode {
			return fmt.Errorf("%w: --network %s: endpoint settings given for network %s", ErrInvalid, mode, name)
		}
	}
	nw, err := m.Inspect(ctx, mode)
	if err != nil {
		if errors.Is(err, network.ErrNotFound) {
			return fmt.Errorf("%w: --network: network %s not found", ErrNotFound, mode)
		}
		return netError(err)
	}
	if nw.Driver != network.DriverBridge {
		return fmt.Errorf("%w: --network %s: not a bridge network", ErrInvalid, mode)
	}
	s := eps[mode]
	if s == nil {
		s = &mnetwork.EndpointSettings{}
	}
	if err := checkEndpointSettings(nw, s); err != nil {
		return err
	}
	// Recorded under the name the user gave (Docker's key), with the ID.
	s.NetworkID = nw.ID
	c.Networks = map[string]*mnetwork.EndpointSettings{mode: s}
	reqs, err := network.PortRequests(h.PortBindings, c.Config.ExposedPorts, h.PublishAllPorts)
	if err != nil {
		return netError(err)
	}
	if checkPorts {
		if err := m.CheckPorts(ctx, c.ID, reqs); err != nil {
			return netError(err)
		}
	}
	return nil
}

// checkEndpointSettings refuses what the network would refuse at start.
func checkEndpointSettings(nw mnetwork.Inspect, s *mnetwork.EndpointSettings) error {
	def := nw.Options["com.docker.network.bridge.default_bridge"] == "true"
	if def && len(s.Aliases) > 0 {
		return fmt.Errorf("%w: --network-alias: network-scoped aliases are supported only for containers in user-defined networks", ErrInvalid)
	}
	if ip := s.IPAMConfig; ip != nil {
		for i, a := range []netip.Addr{ip.IPv4Address, ip.IPv6Address} {
			if !a.IsValid() {
				continue
			}
			flag := [...]string{"--ip", "--ip6"}[i]
			if def {
				return fmt.Errorf("%w: %s %s: user specified IP address is supported on user defined networks only", ErrInvalid, flag, a)
			}
			in := false
			for _, cfg := range nw.IPAM.Config {
				in = in || cfg.Subnet.Contains(a)
			}
			if !in {
				return fmt.Errorf("%w: %s %s: no configured subnet of network %s contains the address", ErrInvalid, flag, a, nw.Name)
			}
		}
	}
	if mac := s.MacAddress; len(mac) > 0 && (len(mac) != 6 || mac[0]&1 != 0) {
		return fmt.Errorf("%w: --mac-address %s: want a unicast Ethernet address", ErrInvalid, net.HardwareAddr(mac))
	}
	return nil
}

// connectNetworks gives a container that is starting its network: a
// namespace at State/netns/<id> attached to each of its networks. On error
// nothing is left.
func (e *Engine) connectNetworks(ctx context.Context, c *Container) (err error) {
	e.setDetached(c.ID, false)
	if !bridgeMode(c.HostConfig) {
		e.joinNetwork(ctx, c)
		return nil
	}
	m, err := e.network()
	if err != nil {
		return err
	}
	e.reconcileNetworksOnce(ctx, m)
	if _, err := e.bridgeLinks(ctx, c); err != nil { // before anything is made
		return err
	}
	// Leftovers of a previous life the exit command did not clean (kill -9).
	e.disconnectNetworks(ctx, c.ID)
	names := networkOrder(c)
	if len(names) == 0 {
		// Disconnected from every network: a namespace with lo only, as
		// Docker leaves it.
		return nil
	}
	if err := os.MkdirAll(e.netnsDir(), 0o700); err != nil {
		return err
	}
	path := e.netnsPath(c.ID)
	if err := netns.Create(path, nil); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			e.disconnectNetworks(context.WithoutCancel(ctx), c.ID)
		}
	}()
	ports, err := network.PortRequests(c.HostConfig.PortBindings, c.Config.ExposedPorts, c.HostConfig.PublishAllPorts)
	if err != nil {
		return netError(err)
	}
	for i, name := range names {
		o := attachOptions(c, name, c.Networks[name], path)
		if i == 0 {
			o.Ports = ports
			for alias, name := range userNetworkLinks(c) {
				if o.Links == nil {
					o.Links = map[string]string{}
				}
				o.Links[alias] = name
			}
		}
		if err := e.attach(ctx, m, o); err != nil {
			return err
		}
	}
	return nil
}

// attach is Manager.Attach that, on a conflict (an address or a host port
// taken), frees what dead containers hold and tries once more.
func (e *Engine) attach(ctx context.Context, m *network.Manager, o network.AttachOptions) error {
	_, err := m.Attach(ctx, o)
	if errors.Is(err, network.ErrConflict) {
		e.reconcileNetworks(ctx, m)
		_, err = m.Attach(ctx, o)
	}
	if errors.Is(err, network.ErrNotFound) {
		// The network was removed while the container was stopped
		// (Docker allows it too): say so as Docker does.
		if _, ierr := m.Inspect(ctx, o.Network); errors.Is(ierr, network.ErrNotFound) {
			return kindError{ErrNotFound, fmt.Errorf("network %s not found", o.Network)}
		}
	}
	if err != nil {
		return netError(fmt.Errorf("connect to network %s: %w", o.Network, err))
	}
	return nil
}

func attachOptions(c *Container, name string, s *mnetwork.EndpointSettings, nsPath string) network.AttachOptions {
	o := network.AttachOptions{
		ContainerID: c.ID, ContainerName: c.Name, NetNS: nsPath, Network: name, DNS: c.HostConfig.DNS,
	}
	if s != nil {
		if s.IPAMConfig != nil {
			o.IPv4, o.IPv6 = s.IPAMConfig.IPv4Address, s.IPAMConfig.IPv6Address
		}
		if len(s.MacAddress) > 0 {
			o.MAC = net.HardwareAddr(s.MacAddress)
		}
		o.Aliases = slices.Clone(s.Aliases)
		for _, l := range s.Links { // network connect --link
			if name, alias, err := parseLink(l); err == nil {
				if o.Links == nil {
					o.Links = map[string]string{}
				}
				o.Links[alias] = name
			}
		}
	}
	return o
}

// checkEndpointLinks checks network connect --link: legacy links on a
// network other than the default bridge are aliases (Docker refuses them
// on the default bridge).
func checkEndpointLinks(nw mnetwork.Inspect, links []string) error {
	if len(links) == 0 {
		return nil
	}
	if nw.Options["com.docker.network.bridge.default_bridge"] == "true" {
		return fmt.Errorf("%w: --link: links are only supported for user-defined networks", ErrInvalid)
	}
	for _, l := range links {
		if _, _, err := parseLink(l); err != nil {
			return err
		}
	}
	return nil
}

// disconnectNetworks detaches a container from every network and removes
// its namespace: when it stopped, is removed, or before it starts again.
// It costs a stat or two when there is nothing to do.
//
// When no other container joined the namespace (--network container:ID),
// nothing runs in it any more and the links go with it (Manager.Release,
// ~20 ms less than deleting them); else they are deleted first, since the
// namespace lives on with the joiners in it.
func (e *Engine) disconnectNetworks(ctx context.Context, id string) {
	e.leaveJoined(id)
	path := e.netnsPath(id)
	_, statErr := os.Lstat(path)
	if statErr != nil && (e.detached(id) || !e.hasEndpoints(id)) {
		e.setDetached(id, true)
		return
	}
	e.setDetached(id, false)
	users := e.joinersDir(id)
	joined, _ := os.ReadDir(users)
	if m, err := e.network(); err == nil {
		if statErr == nil && len(joined) == 0 {
			err = m.Release(ctx, id)
		} else {
			err = m.DetachAll(ctx, id)
		}
		if err != nil {
			e.log.Warn("detach the container from its networks", "container", id, "err", err)
		}
	}
	if err := netns.Remove(path); err != nil {
		e.log.Warn("remove the container's network namespace", "container", id, "err", err)
	}
	os.RemoveAll(users)
}

// disconnectContainer is disconnectNetworks for a container whose record
// is at hand. A network mode other than bridge cannot have endpoints
// (network connect refuses it): without a network namespace file there is
// nothing to detach, and the network records (a read of some 2 ms in a
// fresh process) are not read to make sure.
func (e *Engine) disconnectContainer(ctx context.Context, c *Container) {
	if !bridgeMode(c.HostConfig) {
		e.setDetached(c.ID, true)
	}
	e.disconnectNetworks(ctx, c.ID)
}

// detached reports whether this process found id without network
// namespace and endpoints (see netState.detached).
func (e *Engine) detached(id string) bool {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	return e.net.detached[id]
}

func (e *Engine) setDetached(id string, yes bool) {
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	if !yes {
		delete(e.net.detached, id)
		return
	}
	if e.net.detached == nil {
		e.net.detached = map[string]bool{}
	}
	e.net.detached[id] = true
}

// joinersDir holds a mark per container that joined id's network
// namespace (--network container:ID) and may still be in it.
func (e *Engine) joinersDir(id string) string { return e.netnsPath(id) + ".users" }

// joinNetwork marks that c joins the network namespace of the container
// its network mode names.
func (e *Engine) joinNetwork(ctx context.Context, c *Container) {
	ref, ok := strings.CutPrefix(string(c.HostConfig.NetworkMode), "container:")
	if !ok {
		return
	}
	other, err := e.Lookup(ctx, ref)
	if err != nil {
		return // start fails on it
	}
	if _, err := os.Lstat(e.netnsPath(other.ID)); err != nil {
		// No namespace of its own to keep (not running: start fails on
		// it; or none, host, no network): a mark would outlive both.
		return
	}
	if err := os.MkdirAll(e.joinersDir(other.ID), 0o700); err == nil {
		_ = os.WriteFile(filepath.Join(e.joinersDir(other.ID), c.ID), nil, 0o600)
	}
}

// leaveJoined removes the marks of id as a joiner.
func (e *Engine) leaveJoined(id string) {
	marks, _ := filepath.Glob(filepath.Join(e.netnsDir(), "*.users", id))
	for _, p := range marks {
		os.Remove(p)
	}
}

// hasEndpoints says the network records hold endpoints of the container
// (its namespace file is gone but the records were not cleaned).
func (e *Engine) hasEndpoints(id string) bool {
	m, err := e.network()
	if err != nil {
		return false
	}
	eps, err := m.Endpoints(context.Background(), id)
	return err == nil && len(eps) > 0
}

// reconcileMark records that the network records were reconciled since
// the state directory (a tmpfs) was made: after a reboot there is none.
func (e *Engine) reconcileMark() string { return filepath.Join(e.netRunDir(), "reconciled") }

// reconcileNetworksOnce reconciles once per boot.
func (e *Engine) reconcileNetworksOnce(ctx context.Context, m *network.Manager) {
	if _, err := os.Stat(e.reconcileMark()); err == nil {
		return
	}
	e.reconcileNetworks(ctx, m)
	if err := os.MkdirAll(e.netRunDir(), 0o700); err == nil {
		_ = writeFileAtomic(e.reconcileMark(), nil, 0o600)
	}
}

// reconcileNetworks makes the network records and the kernel agree with
// the containers that live (see network.Manager.Reconcile).
func (e *Engine) reconcileNetworks(ctx context.Context, m *network.Manager) error {
	alive := e.aliveContainers(ctx)
	if err := m.Reconcile(ctx, alive); err != nil {
		e.log.Warn("reconcile networks", "err", err)
		return netError(err)
	}
	return nil
}

// aliveContainers tells which containers may hold network endpoints: those
// that run, and those a command is working on (their lock is held: one may
// be starting). It is computed before Reconcile takes the network records'
// lock, since a record's reconcile may detach a dead container.
func (e *Engine) aliveContainers(ctx context.Context) func(string) bool {
	alive := map[string]bool{}
	ids, _ := e.listIDs()
	for _, id := range ids {
		if busy(filepath.Join(e.containerDir(id), ".lock")) {
			alive[id] = true
			continue
		}
		c, err := readContainer(e, id)
		if err != nil {
			continue
		}
		if c, err = e.reconcile(ctx, c); err != nil {
			alive[id] = true // unknown: keep its network
			continue
		}
		switch c.State.Status {
		case StatusRunning, StatusPaused, StatusRestarting:
			alive[id] = true
		}
	}
	return func(id string) bool { return alive[id] }
}

// busy says someone holds the lock file at path.
func busy(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	return false
}

// etcFiles renders the container's /etc/hostname, /etc/hosts and
// /etc/resolv.conf from its network mode and endpoints (the records of a
// running container; none when it does not run).
func (e *Engine) etcFiles(ctx context.Context, c *Container, hostname string) (map[string][]byte, error) {
	h := c.HostConfig
	files := map[string][]byte{"/etc/hostname": resolv.RenderHostname(hostname)}
	hostResolv, err := resolv.HostConf()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var eps []*network.Endpoint
	if bridgeMode(h) {
		m, err := e.network()
		if err != nil {
			return nil, err
		}
		if eps, err = m.Endpoints(ctx, c.ID); err != nil {
			return nil, netError(err)
		}
	}
	hosts := resolv.Hosts{Hostname: hostname, Domainname: c.Config.Domainname}
	var gateway netip.Addr
	ro := resolv.ResolvOptions{Host: hostResolv, DNS: h.DNS, Search: h.DNSSearch, Options: h.DNSOptions}
	for _, ep := range eps {
		if ep.IPv4.IsValid() {
			hosts.Addrs = append(hosts.Addrs, ep.IPv4.Addr())
		}
		if ep.IPv6.IsValid() {
			hosts.Addrs = append(hosts.Addrs, ep.IPv6.Addr())
			ro.IPv6 = true
		}
		if !gateway.IsValid() && ep.DefaultRoute {
			gateway = ep.Gateway
		}
		// The embedded DNS server of the first user-defined network.
		if !ro.Embedded.IsValid() && len(ep.DNSNames) > 0 {
			ro.Embedded = ep.Gateway
		}
	}
	if !gateway.IsValid() && len(eps) > 0 {
		gateway = eps[0].Gateway
	}
	for _, s := range h.ExtraHosts {
		he, err := resolv.ParseAddHost(s, gateway)
		if err != nil {
			return nil, netError(err)
		}
		hosts.Extra = append(hosts.Extra, he)
	}
	hosts.Extra = append(hosts.Extra, e.linkHostEntries(ctx, c)...)
	if h.NetworkMode.IsHost() {
		// The host's own files, as Docker gives them.
		b, _ := os.ReadFile("/etc/hosts")
		var buf bytes.Buffer
		buf.Write(b)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			buf.WriteByte('\n')
		}
		for _, he := range hosts.Extra {
			fmt.Fprintf(&buf, "%s\t%s\n", he.Addr, he.Name)
		}
		files["/etc/hosts"] = buf.Bytes()
		files["/etc/resolv.conf"] = hostModeResolvConf(hostResolv, h)
		return files, nil
	}
	files["/etc/hosts"] = resolv.RenderHosts(hosts)
	files["/etc/resolv.conf"] = resolv.RenderResolvConf(ro)
	return files, nil
}

// hostModeResolvConf is the host's resolv.conf (its loopback resolvers are
// reachable from the host's network) with --dns, --dns-search and
// --dns-option in place of its entries.
func hostModeResolvConf(host []byte, h *container.HostConfig) []byte {
	if len(h.DNS)+len(h.DNSSearch)+len(h.DNSOptions) == 0 {
		return host
	}
	conf := resolv.ParseConf(host)
	var b bytes.Buffer
	servers := conf.Nameservers
	if len(h.DNS) > 0 {
		servers = h.DNS
	}
	for _, a := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	search, options := conf.Search, conf.Options
	if len(h.DNSSearch) > 0 {
		search = h.DNSSearch
	}
	if len(h.DNSOptions) > 0 {
		options = h.DNSOptions
	}
	if len(search) > 0 && !(len(search) == 1 && search[0] == ".") {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.Bytes()
}

// networkSettings is inspect's NetworkSettings: the recorded networks,
// with the live endpoints' addresses while the container runs, and the
// published ports.
func (e *Engine) networkSettings(ctx context.Context, c *Container) *container.NetworkSettings {
	out := &container.NetworkSettings{Networks: map[string]*mnetwork.EndpointSettings{}, Ports: mnetwork.PortMap{}}
	running := c.State.Status == StatusRunning || c.State.Status == StatusPaused || c.State.Status == StatusRestarting
	h := c.HostConfig
	m, err := e.network()
	if err != nil {
		return out
	}
	switch {
	case h.NetworkMode.IsContainer():
		return out
	case h.NetworkMode.IsHost(), h.NetworkMode.IsNone():
		s := &mnetwork.EndpointSettings{}
		if nw, err := m.Inspect(ctx, string(h.NetworkMode)); err == nil {
			s.NetworkID = nw.ID
		}
		out.Networks[string(h.NetworkMode)] = s
		return out
	}
	for name, cfg := range c.Networks {
		s := &mnetwork.EndpointSettings{}
		if cfg != nil {
			s.IPAMConfig, s.Aliases, s.MacAddress, s.NetworkID, s.Links = cfg.IPAMConfig, cfg.Aliases, cfg.MacAddress, cfg.NetworkID, cfg.Links
		}
		out.Networks[name] = s
	}
	if !running {
		return out
	}
	out.SandboxKey = e.netnsPath(c.ID)
	eps, err := m.Endpoints(ctx, c.ID)
	if err != nil {
		return out
	}
	for _, ep := range eps {
		s := ep.Settings()
		name := ep.NetworkName
		for n, cfg := range c.Networks {
			if cfg != nil && cfg.NetworkID == ep.NetworkID {
				name = n
				s.IPAMConfig, s.Links = cfg.IPAMConfig, cfg.Links
			}
		}
		out.Networks[name] = s
	}
	out.Ports = network.PortMapOf(eps)
	for p := range c.Config.ExposedPorts {
		if _, ok := out.Ports[p]; !ok {
			out.Ports[p] = nil
		}
	}
	return out
}

// PublishedPorts are a running container's published ports (none when it
// does not run): `port`, and ps's PORTS.
func (e *Engine) PublishedPorts(ctx context.Context, c *Container) (mnetwork.PortMap, error) {
	switch c.State.Status {
	case StatusRunning, StatusPaused, StatusRestarting:
	default:
		return mnetwork.PortMap{}, nil
	}
	if !bridgeMode(c.HostConfig) {
		return mnetwork.PortMap{}, nil
	}
	m, err := e.network()
	if err != nil {
		return nil, err
	}
	pm, err := m.PortMap(ctx, c.ID)
	return pm, netError(err)
}

// netSysctlsFromHost writes the spec's net.* sysctls into the container's
// network namespace from the host, and takes them out of the spec, when the
// container has a user namespace: the network namespace was made by the
// engine in the host's user namespace, and the container's root may not
// write its sysctls (Docker leaves its default ones out then; berth sets
// them, so the container sees the same as without --userns).
func (e *Engine) netSysctlsFromHost(c *Container, spec *specs.Spec) error {
	if spec.Linux == nil || len(spec.Linux.Sysctl) == 0 || !bridgeMode(c.HostConfig) {
		return nil
	}
	userns := false
	for _, ns := range spec.Linux.Namespaces {
		userns = userns || ns.Type == specs.UserNamespace
	}
	path := e.netnsPath(c.ID)
	if !userns || !netns.Alive(path) {
		return nil
	}
	var keys []string
	for k := range spec.Linux.Sysctl {
		if strings.HasPrefix(strings.ReplaceAll(k, "/", "."), "net.") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	err := netns.Do(path, func() error {
		for _, k := range keys {
			p := "/proc/sys/" + k // the slash form names the file as it is
			if !strings.Contains(k, "/") {
				p = "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			}
			if err := os.WriteFile(p, []byte(spec.Linux.Sysctl[k]), 0o644); err != nil {
				return fmt.Errorf("%w: --sysctl %s: %v", ErrInvalid, k, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		delete(spec.Linux.Sysctl, k)
	}
	return nil
}

// Legacy links (--link NAME[:ALIAS]), as Docker has them:
//
//   - on the default bridge the linking container gets, in /etc/hosts,
//     "IP ALIAS HOSTNAME NAME" of each linked container and, in its
//     environment, ALIAS_PORT_80_TCP=tcp://IP:80 (with _ADDR, _PORT, _PROTO),
//     ALIAS_PORT, ALIAS_NAME=/PARENT/ALIAS and ALIAS_ENV_K of the linked
//     container's variables; the linked container must run on the default
//     bridge when the linking one starts;
//   - on a user-defined network a link is an alias of the linked container
//     that the embedded DNS server answers to the linking container only;
//   - with --network host or container:X a link is refused.
//
// HostConfig.Links records them in Docker's form, "/NAME:/PARENT/ALIAS".

// parseLink splits --link NAME[:ALIAS] or a recorded "/NAME:/PARENT/ALIAS".
func parseLink(s string) (name, alias string, err error) {
	parts := strings.Split(s, ":")
	switch {
	case s == "":
		return "", "", fmt.Errorf("%w: --link: empty string specified for links", ErrInvalid)
	case len(parts) > 2:
		return "", "", fmt.Errorf("%w: --link: bad format for links: %s", ErrInvalid, s)
	case len(parts) == 1:
		return strings.TrimPrefix(s, "/"), strings.TrimPrefix(s, "/"), nil
	}
	name, alias = strings.TrimPrefix(parts[0], "/"), parts[1]
	if strings.HasPrefix(parts[0], "/") {
		alias = alias[strings.LastIndex(alias, "/")+1:]
	}
	if name == "" || alias == "" {
		return "", "", fmt.Errorf("%w: --link: bad format for links: %s", ErrInvalid, s)
	}
	return name, alias, nil
}

// prepareLinks checks a new container's --link flags and records them in
// Docker's form. The linked containers must exist on the default bridge
// (Docker's errors); on user-defined networks they are names resolved
// later.
func (e *Engine) prepareLinks(ctx context.Context, c *Container) error {
	h := c.HostConfig
	if len(h.Links) == 0 {
		return nil
	}
	switch {
	case h.NetworkMode.IsHost():
		return fmt.Errorf("%w: --link: conflicting options: host type networking can't be used with links. This would result in undefined behavior", ErrInvalid)
	case h.NetworkMode.IsContainer():
		return fmt.Errorf("%w: --link: conflicting options: container type network can't be used with links. This would result in undefined behavior", ErrInvalid)
	}
	out := make([]string, 0, len(h.Links))
	for _, l := range h.Links {
		name, alias, err := parseLink(l)
		if err != nil {
			return err
		}
		if string(h.NetworkMode) == network.NameBridge {
			child, err := e.linkedContainer(ctx, name)
			if err != nil {
				return err
			}
			if child.HostConfig.NetworkMode.IsHost() {
				return fmt.Errorf("%w: --link: conflicting options: host type networking can't be used with links. This would result in undefined behavior", ErrInvalid)
			}
			name = child.Name
		}
		out = append(out, "/"+name+":/"+c.Name+"/"+alias)
	}
	h.Links = out
	return nil
}

// linkedContainer finds the container a link names, through --network
// container:X to the container whose network it is (Docker's errors).
func (e *Engine) linkedContainer(ctx context.Context, name string) (*Container, error) {
	for range 10 {
		child, err := e.Lookup(ctx, name)
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: could not get container for %s: No such container: %s", ErrInvalid, name, name)
		} else if err != nil {
			return nil, fmt.Errorf("could not get container for %s: %w", name, err)
		}
		ref, ok := strings.CutPrefix(string(child.HostConfig.NetworkMode), "container:")
		if !ok {
			return child, nil
		}
		name = ref
	}
	return nil, fmt.Errorf("%w: --link %s: too many --network container: hops", ErrInvalid, name)
}

// link is a legacy link of a container on the default bridge, resolved
// when it starts.
type link struct {
	alias string
	child *Container
	ipv4  netip.Addr
	ipv6  netip.Addr
}

// bridgeLinks resolves the links of a container on the default bridge: the
// linked containers must run there (Docker's errors). Other modes have none.
func (e *Engine) bridgeLinks(ctx context.Context, c *Container) ([]link, error) {
	if len(c.HostConfig.Links) == 0 || string(c.HostConfig.NetworkMode) != network.NameBridge {
		return nil, nil
	}
	m, err := e.network()
	if err != nil {
		return nil, err
	}
	var out []link
	for _, l := range c.HostConfig.Links {
		lk, err := e.bridgeLink(ctx, m, c, l)
		if err != nil {
			return nil, err
		}
		out = append(out, lk)
	}
	return out, nil
}

// bridgeLink resolves one link of bridgeLinks.
func (e *Engine) bridgeLink(ctx context.Context, m *network.Manager, c *Container, l string) (link, error) {
	name, alias, err := parseLink(l)
	if err != nil {
		return link{}, err
	}
	child, err := e.linkedContainer(ctx, name)
	if err != nil {
		return link{}, err
	}
	switch child.State.Status {
	case StatusRunning, StatusPaused, StatusRestarting:
	default:
		return link{}, fmt.Errorf("%w: Cannot link to a non running container: /%s AS /%s/%s", ErrConflict, child.Name, c.Name, alias)
	}
	eps, err := m.Endpoints(ctx, child.ID)
	if err != nil {
		return link{}, netError(err)
	}
	lk := link{alias: alias, child: child}
	for _, ep := range eps {
		if ep.NetworkName == network.NameBridge {
			lk.ipv4, lk.ipv6 = ep.IPv4.Addr(), ep.IPv6.Addr()
		}
	}
	if !lk.ipv4.IsValid() {
		return link{}, fmt.Errorf("%w: Cannot link to /%s, as it does not belong to the default network", ErrConflict, child.Name)
	}
	return lk, nil
}

// linkHostEntries are the /etc/hosts entries of a container's links on the
// default bridge. They are checked at start (bridgeLinks); on a later
// render (network connect, disconnect) a linked container that stopped or
// went since keeps the entries the file has for its alias, as Docker's
// do (it only ever updates them), and the others are rendered anew.
func (e *Engine) linkHostEntries(ctx context.Context, c *Container) []resolv.HostEntry {
	if len(c.HostConfig.Links) == 0 || string(c.HostConfig.NetworkMode) != network.NameBridge {
		return nil
	}
	m, err := e.network()
	if err != nil {
		return nil
	}
	var current []byte
	var out []resolv.HostEntry
	for _, l := range c.HostConfig.Links {
		if lk, err := e.bridgeLink(ctx, m, c, l); err == nil {
			out = append(out, lk.hostsLines()...)
			continue
		}
		_, alias, err := parseLink(l)
		if err != nil {
			continue
		}
		if current == nil {
			current, _ = os.ReadFile(filepath.Join(e.containerDir(c.ID), "hosts"))
		}
		out = append(out, resolv.HostsEntries(current, alias)...)
	}
	return out
}

// userNetworkLinks are the links of a container on a user-defined network,
// alias -> name, for the embedded DNS server.
func userNetworkLinks(c *Container) map[string]string {
	if len(c.HostConfig.Links) == 0 || string(c.HostConfig.NetworkMode) == network.NameBridge {
		return nil
	}
	out := map[string]string{}
	for _, l := range c.HostConfig.Links {
		if name, alias, err := parseLink(l); err == nil {
			out[alias] = name
		}
	}
	return out
}

// updateLinkers points the /etc/hosts entries of the running containers
// that link to c (--link on the default bridge) at c's address, after c
// started again with another one, as Docker does (its daemon calls
// UpdateHostsEntry on each linking container's sandbox when the linked one
// joins the bridge): the lines whose first name is the link's alias get the
// new address; the rest of each file is left as it is. Only a container
// that ran before can have linkers (a link needs it running).
func (e *Engine) updateLinkers(ctx context.Context, c *Container) {
	if string(c.HostConfig.NetworkMode) != network.NameBridge {
		return
	}
	m, err := e.network()
	if err != nil {
		return
	}
	eps, err := m.Endpoints(ctx, c.ID)
	if err != nil {
		return
	}
	var v4, v6 netip.Addr
	for _, ep := range eps {
		if ep.NetworkName == network.NameBridge {
			v4, v6 = ep.IPv4.Addr(), ep.IPv6.Addr()
		}
	}
	if !v4.IsValid() {
		return
	}
	ids, _ := e.listIDs()
	for _, id := range ids {
		if id == c.ID {
			continue
		}
		// Only records that name c are decoded (a whole record costs a
		// good part of a millisecond).
		b, err := os.ReadFile(filepath.Join(e.containerDir(id), "container.json"))
		if err != nil || !bytes.Contains(b, []byte(c.Name)) {
			continue
		}
		p, err := readContainer(e, id)
		if err != nil || !running(p) || string(p.HostConfig.NetworkMode) != network.NameBridge {
			continue
		}
		for _, l := range p.HostConfig.Links {
			name, alias, err := parseLink(l)
			if err != nil || name != c.Name {
				continue
			}
			path := filepath.Join(e.containerDir(p.ID), "hosts")
			old, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			if b := resolv.UpdateHostsAddr(old, alias, v4, v6); !bytes.Equal(b, old) {
				if err := rewriteInPlace(path, b); err != nil {
					e.log.Warn("update /etc/hosts of a linking container", "container", p.ID, "link", l, "err", err)
				}
			}
		}
	}
}

// renameLinks is a container's links (Docker's "/CHILD:/PARENT/ALIAS")
// after a container was renamed from old to name: as the linked container
// (CHILD) and as the linking one (PARENT). Docker's link graph holds
// containers, not names, so its links survive a rename, and inspect shows
// the new names.
func renameLinks(links []string, old, name string) []string {
	if len(links) == 0 {
		return links
	}
	out := make([]string, len(links))
	for i, l := range links {
		child, parent, ok := strings.Cut(l, ":")
		if ok && child == "/"+old {
			child = "/" + name
		}
		if rest, isOld := strings.CutPrefix(parent, "/"+old+"/"); ok && isOld {
			parent = "/" + name + "/" + rest
		}
		if ok {
			l = child + ":" + parent
		}
		out[i] = l
	}
	return out
}

// renameInLinkers renames the container id (from old to name) in the
// links of the containers on the default bridge that link to it, so that
// they find it at their next start (see renameLinks). Their /etc/hosts
// keep the old name until then, as in Docker. Call with the names lock
// held (a container's lock comes after it).
func (e *Engine) renameInLinkers(ctx context.Context, id, old, name string) {
	ids, _ := e.listIDs()
	for _, pid := range ids {
		if pid == id {
			continue
		}
		b, err := os.ReadFile(filepath.Join(e.containerDir(pid), "container.json"))
		if err != nil || !bytes.Contains(b, []byte(old)) {
			continue
		}
		p, err := readContainer(e, pid)
		if err != nil || string(p.HostConfig.NetworkMode) != network.NameBridge ||
			slices.Equal(renameLinks(p.HostConfig.Links, old, name), p.HostConfig.Links) {
			continue
		}
		err = e.saveLocked(ctx, p, func(cur *Container) {
			// Only the linked container's part: the linking one is not
			// renamed.
			for i, l := range cur.HostConfig.Links {
				if child, parent, ok := strings.Cut(l, ":"); ok && child == "/"+old {
					cur.HostConfig.Links[i] = "/" + name + ":" + parent
				}
			}
		})
		if err != nil {
			e.log.Warn("rename a linked container in the links of another", "container", pid, "err", err)
		}
	}
}

// hostsLines are the /etc/hosts entries of a link: "ALIAS HOSTNAME NAME"
// (NAME only when it is not the alias) for each of the linked container's
// addresses.
func (l link) hostsLines() []resolv.HostEntry {
	names := l.alias + " " + l.child.Config.Hostname
	if l.alias != l.child.Name {
		names += " " + l.child.Name
	}
	var out []resolv.HostEntry
	for _, a := range []netip.Addr{l.ipv4, l.ipv6} {
		if a.IsValid() {
			out = append(out, resolv.HostEntry{Name: names, Addr: a})
		}
	}
	return out
}

// env are the variables Docker gives the linking container (its moby
// daemon/links package): ALIAS is the alias in upper case with "-" as "_".
func (l link) env(parent string) []string {
	alias := strings.ReplaceAll(strings.ToUpper(l.alias), "-", "_")
	ip := l.ipv4.String()
	type port struct {
		num   int
		proto string
	}
	var ports []port
	for p := range l.child.Config.ExposedPorts {
		ports = append(ports, port{int(p.Num()), string(p.Proto())})
	}
	// By number, tcp before udp on the same number.
	sort.Slice(ports, func(i, j int) bool {
		if ports[i].num != ports[j].num {
			return ports[i].num < ports[j].num
		}
		return ports[i].proto == "tcp" && ports[j].proto != "tcp"
	})
	var env []string
	if len(ports) > 0 {
		env = append(env, fmt.Sprintf("%s_PORT=%s://%s:%d", alias, ports[0].proto, ip, ports[0].num))
	}
	// Runs of consecutive numbers get _START and _END variables. As in
	// Docker, a run counts entries, not numbers: 80/tcp, 80/udp, 81/tcp is
	// one (its end is the third entry).
	for i := 0; i < len(ports); {
		j, next := i, ports[i].num+1
		for j+1 < len(ports) && ports[j+1].num <= next {
			j, next = j+1, next+1
		}
		if j > i {
			p, q := ports[i], ports[j]
			key := fmt.Sprintf("%s_PORT_%d_%s", alias, p.num, strings.ToUpper(p.proto))
			env = append(env,
				fmt.Sprintf("%s_START=%s://%s:%d", key, p.proto, ip, p.num),
				fmt.Sprintf("%s_ADDR=%s", key, ip),
				fmt.Sprintf("%s_PROTO=%s", key, p.proto),
				fmt.Sprintf("%s_PORT_START=%d", key, p.num),
				fmt.Sprintf("%s_END=%s://%s:%d", key, q.proto, ip, q.num),
				fmt.Sprintf("%s_PORT_END=%d", key, q.num))
		}
		i = j + 1
	}
	for _, p := range ports {
		key := fmt.Sprintf("%s_PORT_%d_%s", alias, p.num, strings.ToUpper(p.proto))
		env = append(env,
			fmt.Sprintf("%s=%s://%s:%d", key, p.proto, ip, p.num),
			fmt.Sprintf("%s_ADDR=%s", key, ip),
			fmt.Sprintf("%s_PORT=%d", key, p.num),
			fmt.Sprintf("%s_PROTO=%s", key, p.proto))
	}
	env = append(env, fmt.Sprintf("%s_NAME=/%s/%s", alias, parent, l.alias))
	for _, kv := range l.child.Config.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "HOME" || k == "PATH" {
			continue
		}
		env = append(env, fmt.Sprintf("%s_ENV_%s=%s", alias, k, v))
	}
	return env
}

// addLinkEnv puts the variables of the container's links into its
// process's environment, after PATH, HOSTNAME and TERM and before the
// others, which win (Docker's order).
func (e *Engine) addLinkEnv(ctx context.Context, c *Container, spec *specs.Spec) error {
	links, err := e.bridgeLinks(ctx, c)
	if err != nil || len(links) == 0 || spec.Process == nil {
		return err
	}
	have := map[string]bool{}
	for _, kv := range spec.Process.Env {
		k, _, _ := strings.Cut(kv, "=")
		have[k] = true
	}
	var add []string
	for _, l := range links {
		for _, kv := range l.env(c.Name) {
			k, _, _ := strings.Cut(kv, "=")
			if !have[k] {
				add = append(add, kv)
			}
		}
	}
	env := spec.Process.Env
	at := 0
	for at < len(env) && (strings.HasPrefix(env[at], "PATH=") || strings.HasPrefix(env[at], "HOSTNAME=") || strings.HasPrefix(env[at], "TERM=")) {
		at++
	}
	spec.Process.Env = slices.Concat(env[:at:at], add, env[at:])
	return nil
}
