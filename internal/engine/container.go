package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/fastjson"
)

// Sentinel kinds of errors; the CLI and the API server map them to exit
// codes and HTTP statuses in one place each.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid argument")
	// ErrNoSuchImage marks, with ErrNotFound, the failure of a create whose
	// image is not in the store (--pull never, or before docker-cli's pull).
	ErrNoSuchImage = errors.New("No such image")
)

// containerSchema is the version of container.json; bump it with a
// migration in readContainer when the layout changes.
const containerSchema = 1

// Container status values, as Docker names them.
const (
	StatusCreated    = "created"
	StatusRunning    = "running"
	StatusPaused     = "paused"
	StatusRestarting = "restarting"
	StatusRemoving   = "removing"
	StatusExited     = "exited"
	StatusDead       = "dead"
)

// Container is one container's record: Root/containers/<id>/container.json.
type Container struct {
	Version    int                   `json:"version"`
	ID         string                `json:"id"`
	Name       string                `json:"name"` // without Docker's leading "/"
	Created    time.Time             `json:"created"`
	Image      digest.Digest         `json:"image"`     // image ID
	ImageName  string                `json:"imageName"` // as the user gave it
	Config     *container.Config     `json:"config"`
	HostConfig *container.HostConfig `json:"hostConfig"`
	Driver     string                `json:"driver"`
	State      State                 `json:"state"`
	// AnonVolumes maps the destination of each anonymous volume (-v /dst,
	// --mount type=volume without a source, the image's VOLUMEs) to the
	// volume made for it at create; rm -v removes them.
	AnonVolumes map[string]string `json:"anonVolumes,omitempty"`
	// VolumesPopulated: the first start copied the image's content into
	// the container's empty volumes; as Docker, later starts do not.
	VolumesPopulated bool `json:"volumesPopulated,omitempty"`
	// Networks are the networks the container joins when it starts (bridge
	// network modes), by name, with the user's endpoint settings and the
	// network's ID (see network.go).
	Networks map[string]*network.EndpointSettings `json:"networks,omitempty"`
}

// State is what is known of a container's process. The monitor's files
// (exit.json) and the kernel override it when they disagree: see
// reconcile.
type State struct {
	Status       string    `json:"status"`
	Pid          int       `json:"pid,omitempty"`
	ExitCode     int       `json:"exitCode"`
	Error        string    `json:"error,omitempty"`
	OOMKilled    bool      `json:"oomKilled,omitempty"`
	StartedAt    time.Time `json:"startedAt,omitempty"`
	FinishedAt   time.Time `json:"finishedAt,omitempty"`
	RestartCount int       `json:"restartCount,omitempty"`
	ShimPid      int       `json:"shimPid,omitempty"`
	ShimStart    uint64    `json:"shimStart,omitempty"` // start time of ShimPid, against pid reuse
	Stopped      bool      `json:"stopped,omitempty"`   // stopped by the user (unless-stopped, no restart)
	// StartID names the Start that made the current (or last) run: its
	// monitor passes it to the exit command, so that the exit command of
	// an earlier start, finishing late, never acts on a later one's run
	// (see Cleanup).
	StartID string `json:"startId,omitempty"`
}

// active reports whether a status has a monitor behind it.
func active(status string) bool {
	return status == StatusRunning || status == StatusPaused || status == StatusRestarting
}

func (e *Engine) containersDir() string         { return filepath.Join(e.opts.Root, "containers") }
func (e *Engine) containerDir(id string) string { return filepath.Join(e.containersDir(), id) }

// runDir holds a container's runtime artefacts: the bundle and the
// monitor's sockets and files.
func (e *Engine) runDir(id string) string { return filepath.Join(e.opts.State, "containers", id) }

func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// validName is Docker's rule for container names:
// [a-zA-Z0-9][a-zA-Z0-9_.-]+
func validName(n string) bool {
	if len(n) < 2 {
		return false
	}
	for i, c := range n {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i > 0 {
			ok = ok || c == '_' || c == '.' || c == '-'
		}
		if !ok {
			return false
		}
	}
	return true
}

func writeContainer(e *Engine, c *Container) error {
	c.Version = containerSchema
	b, err := fastjson.Marshal(c)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(e.containerDir(c.ID), "container.json"), b, 0o600)
}

func readContainer(e *Engine, id string) (*Container, error) {
	b, err := os.ReadFile(filepath.Join(e.containerDir(id), "container.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: No such container: %s", ErrNotFound, id)
		}
		return nil, err
	}
	var c Container
	if err := fastjson.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	if c.Version > containerSchema {
		return nil, fmt.Errorf("container %s has record version %d; this berth knows up to %d", id, c.Version, containerSchema)
	}
	return &c, nil
}

// flock takes an exclusive lock on path (created if needed); close the
// file to release it.
func flock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// tryLock is flock without waiting: ok is false (and f nil) when another
// open file holds the lock, in this process or another.
func tryLock(path string) (f *os.File, ok bool, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, false, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err == nil:
		return f, true, nil
	case errors.Is(err, unix.EWOULDBLOCK):
		f.Close()
		return nil, false, nil
	default:
		f.Close()
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
}

// lockNames serialises changes to the set of containers (create, rename,
// remove), so that two processes cannot take the same name.
func (e *Engine) lockNames() (*os.File, error) {
	if err := os.MkdirAll(e.containersDir(), 0o711); err != nil {
		return nil, err
	}
	return flock(filepath.Join(e.containersDir(), ".lock"))
}

// Locks. Three kinds of file locks (flock, released when their process
// dies) serialise the commands working on one store, always taken in this
// order, never the other way round:
//
//	containers/.lock        the set of containers and their names: create,
//	                        rename, the removal of a record
//	containers/<id>/.remove held by rm for the whole removal: a start that
//	                        finds it held refuses to begin
//	containers/<id>/.lock   the container's record and what its state says
//	                        exists (mount, monitor, runtime state): held by
//	                        Start from the record's read to the outcome's
//	                        write, and by every change of the record
//
// A command holding one container's lock may look at another container
// (Start with --ipc container:X reconciles X), never at the names lock.

// lockContainer serialises changes to one container.
func (e *Engine) lockContainer(id string) (*os.File, error) {
	return flock(filepath.Join(e.containerDir(id), ".lock"))
}

// lockWaitLimit bounds how long a command waits for another's hold of a
// container (a start under way takes at most seconds; a hung one should
// not hang every command after it).
const lockWaitLimit = 2 * time.Minute

// lockContainerWait is lockContainer for a command that may have to wait
// for a start under way: it gives up after lockWaitLimit, or when ctx
// ends. A container removed meanwhile is ErrNotFound.
func (e *Engine) lockContainerWait(ctx context.Context, id string) (*os.File, error) {
	path := filepath.Join(e.containerDir(id), ".lock")
	deadline := time.Now().Add(lockWaitLimit)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		f, ok, err := tryLock(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("%w: No such container: %s", ErrNotFound, id)
		case err != nil:
			return nil, err
		case ok:
			return f, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: container %s is busy: another command (a start?) has held it for %v", ErrConflict, id[:12], lockWaitLimit)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// lookupSettled is Lookup for the commands that change a container (stop,
// kill, pause, commit...): when a start of it is under way, it waits for
// the outcome (the start holds the container's lock until it is recorded)
// and returns the container as that start left it.
func (e *Engine) lookupSettled(ctx context.Context, ref string) (*Container, error) {
	c, err := e.Lookup(ctx, ref)
	if err != nil || !e.startMarked(c.ID) {
		return c, err
	}
	lk, err := e.lockContainerWait(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	lk.Close()
	return e.Lookup(ctx, c.ID)
}

// listIDs returns the ids of every container record.
func (e *Engine) listIDs() ([]string, error) {
	ents, err := os.ReadDir(e.containersDir())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var ids []string
	for _, ent := range ents {
		if ent.IsDir() && len(ent.Name()) == 64 {
			ids = append(ids, ent.Name())
		}
	}
	return ids, nil
}

// Lookup finds a container by full id, unique id prefix or name (with or
// without a leading "/").
func (e *Engine) Lookup(ctx context.Context, ref string) (*Container, error) {
	ref = strings.TrimPrefix(ref, "/")
	if ref == "" {
		return nil, fmt.Errorf("%w: container name or id must not be empty", ErrInvalid)
	}
	if len(ref) == 64 {
		if c, err := readContainer(e, ref); err == nil {
			return e.refresh(ctx, c)
		}
	}
	ids, err := e.listIDs()
	if err != nil {
		return nil, err
	}
	var byPrefix []*Container
	for _, id := range ids {
		c, err := readContainer(e, id)
		if err != nil {
			continue // removed meanwhile
		}
		if c.Name == ref {
			return e.refresh(ctx, c)
		}
		if strings.HasPrefix(id, ref) {
			byPrefix = append(byPrefix, c)
		}
	}
	switch len(byPrefix) {
	case 1:
		return e.refresh(ctx, byPrefix[0])
	case 0:
		return nil, fmt.Errorf("%w: No such container: %s", ErrNotFound, ref)
	default:
		return nil, fmt.Errorf("%w: multiple containers match %q: give more of the id", ErrInvalid, ref)
	}
}

// refresh brings a record up to date before a command uses it: an
// interrupted start is undone (recovery.go), then the record is
// reconciled with the monitor and the kernel (reconcile).
func (e *Engine) refresh(ctx context.Context, c *Container) (*Container, error) {
	return e.reconcile(ctx, e.recoverStart(ctx, c))
}

// List returns every container, newest first.
func (e *Engine) List(ctx context.Context) ([]*Container, error) {
	ids, err := e.listIDs()
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, id := range ids {
		c, err := readContainer(e, id)
		if err != nil {
			continue
		}
		if c, err = e.refresh(ctx, c); err == nil {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// nameTaken reports the container using name, if any. Call with the names
// lock held.
func (e *Engine) nameTaken(name string) (string, bool) {
	id, ok := e.containerNames()[name]
	return id, ok
}

// containerNames maps the name of every container to its id. Only the
// name of each record is decoded: a whole record (moby's config types)
// costs a good part of a millisecond, for every container, for every name
// tried.
func (e *Engine) containerNames() map[string]string {
	names := map[string]string{}
	ids, _ := e.listIDs()
	for _, id := range ids {
		b, err := os.ReadFile(filepath.Join(e.containerDir(id), "container.json"))
		if err != nil {
			continue // removed meanwhile
		}
		var r struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(b, &r) == nil {
			names[r.Name] = id
		}
	}
	return names
}

// generateName picks a free Docker-style adjective_noun name.
func (e *Engine) generateName() string {
	taken := e.containerNames()
	for i := 0; ; i++ {
		b := make([]byte, 2)
		rand.Read(b)
		n := adjectives[int(b[0])%len(adjectives)] + "_" + nouns[int(b[1])%len(nouns)]
		if i > 10 {
			n += fmt.Sprint(i)
		}
		if _, ok := taken[n]; !ok {
			return n
		}
	}
}

var adjectives = []string{"agile", "bold", "brave", "calm", "clever", "eager", "fair", "gentle", "happy", "keen",
	"lucid", "merry", "nimble", "quiet", "rapid", "sharp", "steady", "swift", "tidy", "vivid", "witty", "zen"}

var nouns = []string{"anchor", "bay", "buoy", "cove", "dock", "ferry", "harbor", "hull", "jetty", "keel", "mast",
	"mooring", "pier", "quay", "rudder", "sail", "skiff", "tide", "wake", "wharf"}
