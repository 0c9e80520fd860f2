package network

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/berthproject/berth/internal/network/store"
)

// Reconcile makes the kernel and the records agree after a crash or a
// reboot, and is safe to run at any time (it is idempotent):
//
//   - endpoints of containers that are gone (alive says no) or whose network
//     namespace is gone are removed, and their addresses and host ports
//     freed;
//   - every bridge network's bridge is created again if missing;
//   - an endpoint whose veth pair vanished while its container lives is
//     plugged again with the same names and addresses;
//   - links that carry berth's mark but no record (a crash between making a
//     link and writing its record) are deleted;
//   - the nftables tables are rendered again from the records;
//   - the DNS server is told (and started if a user-defined network has
//     containers).
//
// alive reports whether a container ID is a container that still runs.
func (m *Manager) Reconcile(ctx context.Context, alive func(containerID string) bool) error {
	var errs []error
	var userEndpoints bool
	err := m.update(func(st *store.State, k kernel) error {
		for _, e := range st.SortedEndpoints() {
			if alive(e.ContainerID) && k.NetNSAlive(e.NetNS) {
				continue
			}
			m.log.Info("reconcile: freeing endpoint of a stopped container", "container", short(e.ContainerID), "endpoint", short(e.ID))
			delete(st.Endpoints, e.ID)
			if err := k.DeleteLink(e.HostIf); err != nil {
				errs = append(errs, err)
			}
		}
		// The gateway endpoint of a container may just have gone.
		for _, e := range st.SortedEndpoints() {
			if !hasGateway(st, e.ContainerID) {
				if err := m.moveDefaultRoute(st, k, e.ContainerID); err != nil {
					errs = append(errs, err)
				}
			}
		}
		for _, n := range st.SortedNetworks() {
			if n.Driver != DriverBridge {
				continue
			}
			// The default bridge is made on first use, not at every reconcile.
			if n.Default && len(st.NetworkEndpoints(n.ID)) == 0 {
				if ok, _ := k.LinkExists(n.Bridge); !ok {
					continue
				}
			}
			if err := k.EnsureBridge(bridgeOf(n)); err != nil {
				errs = append(errs, err)
				continue
			}
			for _, e := range st.NetworkEndpoints(n.ID) {
				userEndpoints = userEndpoints || !n.Default
				ok, err := k.LinkExists(e.HostIf)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if ok {
					continue
				}
				m.log.Info("reconcile: plugging endpoint again", "container", short(e.ContainerID), "network", n.Name)
				if err := k.AddVeth(vethOf(n, e)); err != nil {
					errs = append(errs, fmt.Errorf("reconnect container %s to network %s: %w", short(e.ContainerID), n.Name, err))
				}
			}
		}
		owned, err := k.OwnedLinks()
		if err != nil {
			errs = append(errs, err)
		}
		for _, l := range owned {
			if id, ok := strings.CutPrefix(l.Alias, aliasEndpoint); ok {
				if _, known := st.Endpoints[id]; !known {
					m.log.Info("reconcile: deleting a veth nothing uses", "link", l.Name)
					errs = append(errs, k.DeleteLink(l.Name))
				}
			}
			if id, ok := strings.CutPrefix(l.Alias, aliasNetwork); ok {
				if n, known := st.Networks[id]; !known || n.Bridge != l.Name {
					m.log.Info("reconcile: deleting a bridge nothing uses", "link", l.Name)
					errs = append(errs, k.DeleteLink(l.Name))
				}
			}
		}
		if err := m.applyRules(st, k); err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := m.syncDNS(ctx, userEndpoints); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func hasGateway(st *store.State, containerID string) bool {
	for _, e := range st.ContainerEndpoints(containerID) {
		if e.Gateway {
			return true
		}
	}
	return false
}
