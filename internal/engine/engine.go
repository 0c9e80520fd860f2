// Package engine is berth as a library: images, containers, volumes and
// networks on one store, without a daemon. The command line (cmd/berth) and
// the Docker Engine API server (`berth serve`) are thin layers on it. The
// engine makes no system calls of its own to isolate anything: it renders
// OCI bundles and hands them to the OCI runtime (berth-runtime, or any
// runc-compatible one), through the per-container monitor (berth-shim).
//
// Several processes may use one store at once (two CLI commands, or a CLI
// and `berth serve`): every record is written atomically and changes are
// serialised by file locks held for short critical sections.
//
// On-disk layout (Root defaults to /var/lib/berth, State to /run/berth):
//
//	Root/driver                the snapshot driver chosen for this root ("overlay" or "native")
//	Root/content/              blobs (package content)
//	Root/image/                image records and tags (package image)
//	Root/snapshots/<driver>/   layers and containers' writable layers (package snapshot)
//	Root/containers/<id>/      container records and logs
//	State/containers/<id>/     runtime artefacts: the OCI bundle, the monitor's socket
//	Root/network/              networks, endpoints, leases (package network/store)
//	State/netns/<id>           a container's network namespace (bind mount), while it runs
//	State/network/             the embedded DNS server's run directory, the reconcile mark
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/moby/api/types/events"
	"github.com/opencontainers/go-digest"

	"github.com/berthproject/berth/internal/content"
	"github.com/berthproject/berth/internal/image"
	"github.com/berthproject/berth/internal/image/registry"
	"github.com/berthproject/berth/internal/snapshot"
	"github.com/berthproject/berth/internal/snapshot/native"
	"github.com/berthproject/berth/internal/snapshot/overlay"
)

// Options configure an Engine.
type Options struct {
	Root    string // persistent store (default /var/lib/berth)
	State   string // runtime state, gone at reboot (default /run/berth)
	Runtime string // OCI runtime binary (default: berth-runtime next to the running binary, else in $PATH)
	// Driver names the snapshot driver ("overlay", "native"); "" keeps the
	// one this root was first used with, or picks overlay when it works.
	Driver string
	// InsecureRegistries are registries reached over plain HTTP (localhost
	// and 127.0.0.1 always are).
	InsecureRegistries []string
	// BridgeSubnet is the default bridge network's subnet (zero: 172.30.0.0/16).
	BridgeSubnet netip.Prefix
	Log          *slog.Logger
}

// Engine is berth on one store.
type Engine struct {
	opts     Options
	Content  *content.Store
	Driver   snapshot.Driver
	Layers   *snapshot.Layers
	Images   *image.Store
	Registry *registry.Client
	log      *slog.Logger
	net      netState // see network.go
}

// Default directories.
const (
	DefaultRoot  = "/var/lib/berth"
	DefaultState = "/run/berth"
)

// Open opens (creating) the store under opts.Root.
func Open(opts Options) (*Engine, error) {
	if opts.Root == "" {
		opts.Root = DefaultRoot
	}
	if opts.State == "" {
		opts.State = DefaultState
	}
	var err error
	if opts.Root, err = filepath.Abs(opts.Root); err != nil {
		return nil, err
	}
	if opts.State, err = filepath.Abs(opts.State); err != nil {
		return nil, err
	}
	for _, d := range []string{opts.Root, opts.State} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	e := &Engine{opts: opts, log: opts.Log}
	if e.Content, err = content.New(opts.Root); err != nil {
		return nil, err
	}
	if e.Driver, err = openDriver(opts.Root, opts.Driver); err != nil {
		return nil, err
	}
	e.Layers = snapshot.NewLayers(e.Driver, snapshot.LayersOptions{})
	e.Registry = registry.New(registry.Options{Insecure: opts.InsecureRegistries})
	e.Images, err = image.New(image.Options{
		Root: opts.Root, Content: e.Content, Layers: image.FromSnapshots(e.Layers), Registry: e.Registry,
		Holders: e.imageHolders,
		Events: func(action, id string, attrs map[string]string) {
			e.Emit(events.ImageEventType, events.Action(action), id, attrs)
		},
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Close releases what the engine holds.
func (e *Engine) Close() error {
	e.closeNetwork()
	return e.Driver.Close()
}

// Root is the engine's persistent directory.
func (e *Engine) Root() string { return e.opts.Root }

// StateDir is the engine's runtime directory.
func (e *Engine) StateDir() string { return e.opts.State }

// openDriver opens the snapshot driver of root. The choice is recorded in
// root/driver the first time, so later commands (and upgrades) keep using
// the layers that exist; asking for another driver on a used root is an
// error rather than a silently empty store.
func openDriver(root, want string) (snapshot.Driver, error) {
	recorded := ""
	if b, err := os.ReadFile(filepath.Join(root, "driver")); err == nil {
		recorded = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	name := want
	switch {
	case recorded != "" && want != "" && want != recorded:
		return nil, fmt.Errorf("--storage-driver %s: the store %s uses %s; use another --root to change drivers", want, root, recorded)
	case recorded != "":
		name = recorded
	case name == "":
		name = "overlay"
		if err := overlay.Supported(root); err != nil {
			name = "native"
		}
	}
	dir := filepath.Join(root, "snapshots", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var d snapshot.Driver
	var err error
	switch name {
	case "overlay":
		d, err = overlay.New(dir)
	case "native":
		d, err = native.New(dir)
	default:
		return nil, fmt.Errorf("--storage-driver: unknown driver %q (want overlay or native)", name)
	}
	if err != nil {
		return nil, err
	}
	if recorded == "" {
		if err := writeFileAtomic(filepath.Join(root, "driver"), []byte(name+"\n"), 0o644); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// imageHolders tells the image store which images containers use, so that
// rmi refuses them (a running container's even forced), image prune keeps
// them and images/system df count them. Each container is named by its
// short ID, as Docker's conflicts do. Only the image, id and status of each
// record are decoded (a whole record costs a good part of a millisecond).
func (e *Engine) imageHolders(ctx context.Context) (map[digest.Digest][]image.Holder, error) {
	ids, err := e.listIDs()
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	held := map[digest.Digest][]image.Holder{}
	for _, id := range ids {
		b, err := os.ReadFile(filepath.Join(e.containerDir(id), "container.json"))
		if err != nil {
			continue // removed meanwhile
		}
		var rec struct {
			Image digest.Digest `json:"image"`
			State struct {
				Status string `json:"status"`
			} `json:"state"`
		}
		if json.Unmarshal(b, &rec) != nil || rec.Image == "" {
			continue
		}
		running := rec.State.Status == StatusRunning || rec.State.Status == StatusPaused || rec.State.Status == StatusRestarting
		held[rec.Image] = append(held[rec.Image], image.Holder{ID: id[:12], Running: running})
	}
	return held, nil
}

// writeFileAtomic replaces path with b (temp file + rename).
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
