// Package store keeps berth's network records on disk: the networks, their
// endpoints (one per container and network) and, through the endpoints, the
// addresses and host ports in use.
//
// Schema: one JSON document, Dir/state.json, written whole to a temporary
// file and renamed over the old one, so that a reader without the lock (the
// DNS server) always sees a complete version:
//
//	{
//	  "version": 1,
//	  "networks":  { NETWORK-ID:  Network  },   name, bridge device, subnets, IPAM cursor
//	  "endpoints": { ENDPOINT-ID: Endpoint }    container, netns, veth names, MAC, IPs, ports
//	}
//
// An address is in use exactly when an endpoint holds it, so allocations
// and endpoints cannot disagree. Every change runs under an exclusive flock
// on Dir/lock (Update), held across the change to the kernel too: two
// `berth run` at once are serialised and never get the same address or host
// port, and nftables tables are rendered from the one current state.
//
// Version is the schema version; Read refuses a newer one and migrates older
// ones (there are none yet).
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/fastjson"
)

// Version is the schema version this package writes.
const Version = 1

// State is every record.
type State struct {
	Version   int                  `json:"version"`
	Networks  map[string]*Network  `json:"networks"`
	Endpoints map[string]*Endpoint `json:"endpoints"`
}

// Network is a network: a bridge network, or one of the predefined "host"
// (driver "host") and "none" (driver "null") that have no links of theirs.
type Network struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Driver  string    `json:"driver"`
	Created time.Time `json:"created"`
	// Default marks the predefined network "bridge".
	Default  bool              `json:"default,omitempty"`
	Bridge   string            `json:"bridge,omitempty"` // the bridge device
	MTU      int               `json:"mtu,omitempty"`
	Internal bool              `json:"internal,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Options  map[string]string `json:"options,omitempty"`

	Subnet  netip.Prefix `json:"subnet,omitzero"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
	IPRange netip.Prefix `json:"ipRange,omitzero"`
	// IPv6 networks are dual-stack.
	IPv6     bool         `json:"ipv6,omitempty"`
	Subnet6  netip.Prefix `json:"subnet6,omitzero"`
	Gateway6 netip.Addr   `json:"gateway6,omitzero"`
	IPRange6 netip.Prefix `json:"ipRange6,omitzero"`

	// Last4 and Last6 are the addresses handed out last (the IPAM cursor).
	Last4 netip.Addr `json:"last4,omitzero"`
	Last6 netip.Addr `json:"last6,omitzero"`
}

// Endpoint is one container's attachment to one network.
type Endpoint struct {
	ID            string     `json:"id"`
	NetworkID     string     `json:"network"`
	ContainerID   string     `json:"container"`
	ContainerName string     `json:"name"`
	Created       time.Time  `json:"created"`
	NetNS         string     `json:"netns"`  // path of the container's network namespace
	IfName        string     `json:"ifname"` // interface name inside the container
	HostIf        string     `json:"hostIf"` // host end of the veth pair
	MAC           string     `json:"mac"`
	IPv4          netip.Addr `json:"ipv4"`
	IPv6          netip.Addr `json:"ipv6,omitzero"`
	// Gateway marks the endpoint that carries the container's default route.
	Gateway bool     `json:"gateway,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
	// Links are the container's legacy links on a user-defined network
	// (--link NAME:ALIAS): ALIAS, lower case, resolves to NAME for this
	// container only, as in Docker.
	Links map[string]string `json:"links,omitempty"`
	// DNS are the resolvers the DNS server forwards this container's other
	// names to (--dns); empty: the host's.
	DNS   []netip.Addr `json:"dns,omitempty"`
	Ports []Port       `json:"ports,omitempty"`
}

// Port is one published port: HostIP zero means every host address (of
// each family the network has).
type Port struct {
	Proto         string     `json:"proto"`
	HostIP        netip.Addr `json:"hostIP,omitzero"`
	HostPort      uint16     `json:"hostPort"`
	ContainerPort uint16     `json:"containerPort"`
}

// New returns an empty state of the current version.
func New() *State {
	return &State{Version: Version, Networks: map[string]*Network{}, Endpoints: map[string]*Endpoint{}}
}

// NetworkEndpoints returns the endpoints on a network, oldest first.
func (s *State) NetworkEndpoints(networkID string) []*Endpoint {
	var out []*Endpoint
	for _, e := range s.Endpoints {
		if e.NetworkID == networkID {
			out = append(out, e)
		}
	}
	sortEndpoints(out)
	return out
}

// ContainerEndpoints returns a container's endpoints, oldest first.
func (s *State) ContainerEndpoints(containerID string) []*Endpoint {
	var out []*Endpoint
	for _, e := range s.Endpoints {
		if e.ContainerID == containerID {
			out = append(out, e)
		}
	}
	sortEndpoints(out)
	return out
}

// SortedEndpoints returns every endpoint, oldest first.
func (s *State) SortedEndpoints() []*Endpoint {
	out := make([]*Endpoint, 0, len(s.Endpoints))
	for _, e := range s.Endpoints {
		out = append(out, e)
	}
	sortEndpoints(out)
	return out
}

func sortEndpoints(eps []*Endpoint) {
	slices.SortFunc(eps, func(a, b *Endpoint) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		if a.ContainerID != b.ContainerID {
			if a.ContainerID < b.ContainerID {
				return -1
			}
			return 1
		}
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
}

// SortedNetworks returns the networks sorted by name.
func (s *State) SortedNetworks() []*Network {
	out := make([]*Network, 0, len(s.Networks))
	for _, n := range s.Networks {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *Network) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// Store is the records under one directory.
type Store struct {
	dir string
}

// Open opens (creating) the records directory.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create network records directory %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

// Dir is the records directory.
func (s *Store) Dir() string { return s.dir }

// Path is the state file.
func (s *Store) Path() string { return filepath.Join(s.dir, "state.json") }

// Read reads the current state without the lock (the file is replaced
// atomically, so it is always whole).
func (s *Store) Read() (*State, error) {
	b, err := os.ReadFile(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return New(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read network records: %w", err)
	}
	return Decode(b, s.Path())
}

// Decode parses a state file's content (name is for messages).
func Decode(b []byte, name string) (*State, error) {
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("network records %s: %w", name, err)
	}
	if head.Version > Version {
		return nil, fmt.Errorf("network records %s: schema version %d is newer than this berth's (%d)", name, head.Version, Version)
	}
	if head.Version < 1 {
		return nil, fmt.Errorf("network records %s: no schema version", name)
	}
	// Older versions would be migrated here, one step at a time.
	st := &State{} // zero, for fastjson's fast path; the maps are made below
	if err := fastjson.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("network records %s: %w", name, err)
	}
	if st.Networks == nil {
		st.Networks = map[string]*Network{}
	}
	if st.Endpoints == nil {
		st.Endpoints = map[string]*Endpoint{}
	}
	st.Version = Version
	return st, nil
}

// FileID identifies one version of the state file: it changes with every
// write (each write is a new file renamed into place).
type FileID struct {
	Ino   uint64
	Ctime int64
}

// Stat returns the identity of the current state file (zero if none).
func (s *Store) Stat() (FileID, error) {
	fi, err := os.Stat(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return FileID{}, nil
	}
	if err != nil {
		return FileID{}, fmt.Errorf("stat network records: %w", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return FileID{Ino: st.Ino, Ctime: st.Ctim.Nano()}, nil
}

// Update runs fn on the current state under the exclusive lock and writes
// the state fn leaves if it returns nil. fn may act on the kernel: the lock
// is held until the state is written.
func (s *Store) Update(fn func(*State) error) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	st, err := s.Read()
	if err != nil {
		return err
	}
	if err := fn(st); err != nil {
		return err
	}
	return s.write(st)
}

// View runs fn on the current state under the lock, writing nothing.
func (s *Store) View(fn func(*State) error) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	st, err := s.Read()
	if err != nil {
		return err
	}
	return fn(st)
}

func (s *Store) lock() (func(), error) {
	p := filepath.Join(s.dir, "lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open network lock %s: %w", p, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}

func (s *Store) write(st *State) error {
	st.Version = Version
	b, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return fmt.Errorf("encode network records: %w", err)
	}
	f, err := os.CreateTemp(s.dir, ".state-*")
	if err != nil {
		return fmt.Errorf("write network records: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.Path())
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write network records %s: %w", s.Path(), err)
	}
	return nil
}
