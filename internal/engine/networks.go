package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/moby/moby/api/types/events"
	mnetwork "github.com/moby/moby/api/types/network"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/network"
)

// NetworkCreate creates a user-defined bridge network (`network create`).
func (e *Engine) NetworkCreate(ctx context.Context, o network.CreateOptions) (mnetwork.Inspect, error) {
	m, err := e.network()
	if err != nil {
		return mnetwork.Inspect{}, err
	}
	e.reconcileNetworksOnce(ctx, m)
	nw, err := m.Create(ctx, o)
	if err != nil {
		return nw, netError(err)
	}
	e.Emit(events.NetworkEventType, events.ActionCreate, nw.ID, map[string]string{"name": nw.Name, "type": nw.Driver})
	return nw, nil
}

// NetworkList lists every network, sorted by name (`network ls`).
func (e *Engine) NetworkList(ctx context.Context) ([]mnetwork.Inspect, error) {
	m, err := e.network()
	if err != nil {
		return nil, err
	}
	l, err := m.List(ctx)
	return l, netError(err)
}

// NetworkInspect returns a network by name, ID or unique ID prefix.
func (e *Engine) NetworkInspect(ctx context.Context, ref string) (mnetwork.Inspect, error) {
	m, err := e.network()
	if err != nil {
		return mnetwork.Inspect{}, err
	}
	nw, err := m.Inspect(ctx, ref)
	if errors.Is(err, network.ErrNotFound) {
		return nw, fmt.Errorf("%w: network %s not found", ErrNotFound, ref)
	}
	return nw, netError(err)
}

// NetworkRemove removes a user-defined network no running container uses.
func (e *Engine) NetworkRemove(ctx context.Context, ref string) error {
	nw, err := e.NetworkInspect(ctx, ref)
	if err != nil {
		return err
	}
	m, err := e.network()
	if err != nil {
		return err
	}
	if len(nw.Containers) > 0 {
		// Endpoints of containers that died without cleaning up do not
		// count.
		e.reconcileNetworks(ctx, m)
	}
	if err := m.Remove(ctx, nw.ID); err != nil {
		return netError(err)
	}
	e.Emit(events.NetworkEventType, events.ActionDestroy, nw.ID, map[string]string{"name": nw.Name, "type": nw.Driver})
	return nil
}

// NetworkPrune removes the user-defined networks no running container
// uses (those match accepts; all if nil) and returns their names.
func (e *Engine) NetworkPrune(ctx context.Context, match func(mnetwork.Inspect) bool) ([]string, error) {
	m, err := e.network()
	if err != nil {
		return nil, err
	}
	e.reconcileNetworks(ctx, m)
	names, err := m.Prune(ctx, match)
	for _, n := range names {
		e.Emit(events.NetworkEventType, events.ActionDestroy, "", map[string]string{"name": n, "type": network.DriverBridge})
	}
	return names, netError(err)
}

// NetworkConnect connects a container to a network (`network connect`): a
// running one at once, a stopped one when it starts.
func (e *Engine) NetworkConnect(ctx context.Context, netRef, ctrRef string, s *mnetwork.EndpointSettings) error {
	if s == nil {
		s = &mnetwork.EndpointSettings{}
	}
	c, err := e.Lookup(ctx, ctrRef)
	if err != nil {
		return err
	}
	lk, err := e.lockContainer(c.ID)
	if err != nil {
		return err
	}
	defer lk.Close()
	if c, err = readContainer(e, c.ID); err != nil {
		return err
	}
	if !bridgeMode(c.HostConfig) {
		return fmt.Errorf("%w: container %s uses network mode %s: it cannot be connected to another network", ErrInvalid, c.Name, c.HostConfig.NetworkMode)
	}
	nw, err := e.NetworkInspect(ctx, netRef)
	if err != nil {
		return err
	}
	if nw.Driver != network.DriverBridge {
		return fmt.Errorf("%w: container %s cannot be connected to network %s (driver %s)", ErrInvalid, c.Name, nw.Name, nw.Driver)
	}
	for name, cfg := range c.Networks {
		if name == nw.Name || (cfg != nil && cfg.NetworkID == nw.ID) {
			return fmt.Errorf("%w: endpoint with name %s already exists in network %s", ErrConflict, c.Name, nw.Name)
		}
	}
	if err := checkEndpointSettings(nw, s); err != nil {
		return err
	}
	if err := checkEndpointLinks(nw, s.Links); err != nil {
		return err
	}
	rec := &mnetwork.EndpointSettings{IPAMConfig: s.IPAMConfig, Aliases: slices.Clone(s.Aliases), MacAddress: s.MacAddress, NetworkID: nw.ID,
		Links: slices.Clone(s.Links)}
	if running(c) {
		m, err := e.network()
		if err != nil {
			return err
		}
		path := e.netnsPath(c.ID)
		if _, err := os.Lstat(path); err != nil {
			return fmt.Errorf("%w: container %s has no network namespace of its own to connect", ErrConflict, c.Name)
		}
		if err := e.attach(ctx, m, attachOptions(c, nw.Name, rec, path)); err != nil {
			return err
		}
	}
	if c.Networks == nil {
		c.Networks = map[string]*mnetwork.EndpointSettings{}
	}
	c.Networks[nw.Name] = rec
	if err := writeContainer(e, c); err != nil {
		return err
	}
	if running(c) {
		e.refreshEtcFiles(ctx, c)
	}
	e.Emit(events.NetworkEventType, events.ActionConnect, nw.ID, map[string]string{"name": nw.Name, "type": nw.Driver, "container": c.ID})
	return nil
}

// NetworkDisconnect disconnects a container from a network.
func (e *Engine) NetworkDisconnect(ctx context.Context, netRef, ctrRef string, force bool) error {
	c, err := e.Lookup(ctx, ctrRef)
	if err != nil {
		return err
	}
	lk, err := e.lockContainer(c.ID)
	if err != nil {
		return err
	}
	defer lk.Close()
	if c, err = readContainer(e, c.ID); err != nil {
		return err
	}
	nw, err := e.NetworkInspect(ctx, netRef)
	if err != nil {
		return err
	}
	if !bridgeMode(c.HostConfig) || nw.Driver != network.DriverBridge {
		return fmt.Errorf("%w: container %s cannot be disconnected from network %s (network mode %s)", ErrInvalid, c.Name, nw.Name, c.HostConfig.NetworkMode)
	}
	key := ""
	for name, cfg := range c.Networks {
		if name == nw.Name || (cfg != nil && cfg.NetworkID == nw.ID) {
			key = name
		}
	}
	if key == "" && !force {
		return fmt.Errorf("%w: container %s is not connected to network %s", ErrNotFound, c.Name, nw.Name)
	}
	if running(c) {
		m, err := e.network()
		if err != nil {
			return err
		}
		if err := m.Detach(ctx, c.ID, nw.ID); err != nil && !(force && errors.Is(err, network.ErrNotFound)) {
			return netError(err)
		}
	}
	delete(c.Networks, key)
	if err := writeContainer(e, c); err != nil {
		return err
	}
	if running(c) {
		e.refreshEtcFiles(ctx, c)
	}
	e.Emit(events.NetworkEventType, events.ActionDisconnect, nw.ID, map[string]string{"name": nw.Name, "type": nw.Driver, "container": c.ID})
	return nil
}

func running(c *Container) bool {
	switch c.State.Status {
	case StatusRunning, StatusPaused, StatusRestarting:
		return true
	}
	return false
}

// refreshEtcFiles rewrites a running container's /etc/hosts and
// /etc/resolv.conf after its networks changed, in place: the container
// sees the files through bind mounts of these inodes.
//
// resolv.conf follows the networks as in Docker (libnetwork's
// Sandbox.rebuildDNS on a join): joining a user-defined network switches
// it to the embedded DNS server. Leaving that network switches it to the
// next user-defined network's server, or back to the host's resolvers:
// Docker keeps its 127.0.0.11 resolver for the container's life, while
// berth's server listens on the network's gateway and goes with it. A
// resolv.conf the user changed is left alone, as Docker does.
func (e *Engine) refreshEtcFiles(ctx context.Context, c *Container) {
	hostname := c.Config.Hostname
	if hostname == "" {
		hostname = e.utsHostname(ctx, c)
	}
	files, err := e.etcFiles(ctx, c, hostname)
	if err != nil {
		e.log.Warn("render /etc/hosts and /etc/resolv.conf", "container", c.ID, "err", err)
		return
	}
	dir := e.containerDir(c.ID)
	if err := rewriteInPlace(filepath.Join(dir, "hosts"), files["/etc/hosts"]); err != nil {
		e.log.Warn("rewrite /etc/hosts", "container", c.ID, "err", err)
	}
	rc := filepath.Join(dir, "resolv.conf")
	if userModified(rc) {
		return
	}
	if err := rewriteInPlace(rc, files["/etc/resolv.conf"]); err != nil {
		e.log.Warn("rewrite /etc/resolv.conf", "container", c.ID, "err", err)
		return
	}
	if err := writeFileAtomic(rc+".hash", hashOf(files["/etc/resolv.conf"]), 0o600); err != nil {
		e.log.Warn("record the hash of /etc/resolv.conf", "container", c.ID, "err", err)
	}
}

// rewriteInPlace replaces the content of the file at path, keeping its
// inode (a bind mount's source); a missing file is left missing.
func rewriteInPlace(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// hashOf is the hash recorded next to a file berth wrote (PATH.hash).
func hashOf(b []byte) []byte {
	sum := sha256.Sum256(b)
	return []byte(hex.EncodeToString(sum[:]))
}

// userModified says the file at path is not what berth last wrote there
// (PATH.hash). Without a hash (a container started by an older berth)
// the file counts as berth's, as in Docker.
func userModified(path string) bool {
	want, err := os.ReadFile(path + ".hash")
	if err != nil {
		return false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	return !bytes.Equal(hashOf(b), want)
}
