package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/berthproject/berth/internal/network/link"
	"github.com/berthproject/berth/internal/network/nft"
)

// fakeKernel records what the manager asks of the kernel.
type fakeKernel struct {
	mu        sync.Mutex
	links     map[string]string // name -> alias
	bridges   map[string]link.Bridge
	veths     map[string]link.Veth
	rules     []nft.Table
	applies   int
	redirects []Redirect
	routes    []netip.Prefix
	// busy are host ports a program listens on ("tcp/8080").
	busy map[string]bool
	// fail makes the named operation fail.
	fail map[string]error
	// defaultRoutes records SetDefaultRoutes calls: netns -> ifname.
	defaultRoutes map[string]string
	deadNetNS     map[string]bool
	// portLo and portHi are the ephemeral port range.
	portLo, portHi uint16
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{
		links: map[string]string{}, bridges: map[string]link.Bridge{}, veths: map[string]link.Veth{},
		busy: map[string]bool{}, fail: map[string]error{}, defaultRoutes: map[string]string{}, deadNetNS: map[string]bool{},
		portLo: 40000, portHi: 40009,
	}
}

func (k *fakeKernel) EnsureBridge(b link.Bridge) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail["EnsureBridge"]; err != nil {
		return err
	}
	k.links[b.Name], k.bridges[b.Name] = b.Alias, b
	return nil
}

func (k *fakeKernel) AddVeth(v link.Veth) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail["AddVeth"]; err != nil {
		return err
	}
	if _, ok := k.links[v.HostName]; ok {
		return fmt.Errorf("link %s exists", v.HostName)
	}
	k.links[v.HostName], k.veths[v.HostName] = v.Alias, v
	return nil
}

func (k *fakeKernel) DeleteLink(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.links, name)
	delete(k.veths, name)
	delete(k.bridges, name)
	return nil
}

func (k *fakeKernel) LinkExists(name string) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.links[name]
	return ok, nil
}

func (k *fakeKernel) OwnedLinks() ([]link.Owned, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []link.Owned
	for name, alias := range k.links {
		if alias != "" {
			out = append(out, link.Owned{Name: name, Alias: alias})
		}
	}
	return out, nil
}

func (k *fakeKernel) SetDefaultRoutes(ns, ifname string, gws []netip.Addr) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.defaultRoutes[ns] = ifname
	return nil
}

func (k *fakeKernel) Routes() ([]netip.Prefix, error) { return k.routes, nil }

func (k *fakeKernel) ApplyRules(t []nft.Table) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fail["ApplyRules"]; err != nil {
		return err
	}
	k.rules = t
	k.applies++
	return nil
}

func (k *fakeKernel) SyncRedirects(rs []Redirect) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.redirects = rs
}

func (k *fakeKernel) PortFree(proto string, ip netip.Addr, port uint16) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.busy[fmt.Sprintf("%s/%d", proto, port)] {
		return errors.New("address already in use")
	}
	return nil
}

func (k *fakeKernel) NetNSAlive(path string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return !k.deadNetNS[path]
}

func (k *fakeKernel) LocalPortRange() (uint16, uint16) { return k.portLo, k.portHi }

// fakeDNS counts the syncs the manager asks for.
type fakeDNS struct {
	mu            sync.Mutex
	starts, pokes int
	err           error
}

func (d *fakeDNS) Sync(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.starts++
	return d.err
}

func (d *fakeDNS) SyncIfRunning(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pokes++
	return nil
}
