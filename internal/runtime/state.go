package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Sentinel kinds of errors, checked with errors.Is.
var (
	ErrNotExist = errors.New("container does not exist")
	ErrExist    = errors.New("container already exists")
	ErrState    = errors.New("container is not in the right state")
	ErrInvalid  = errors.New("invalid argument")
)

// stateVersion is the schema version of state.json. Bump it and add a
// migration in readState when the layout changes.
const stateVersion = 1

// Phases a container goes through before its status can be read from the
// kernel alone.
const (
	phaseCreating = "creating" // create has not finished
	phaseCreated  = "created"  // the init reported ready
)

// State is what the runtime records about one container (state.json).
// The container's configuration is kept apart in config.json and read only
// by the commands that need it (exec, update, and start or delete when the
// config has poststart or poststop hooks): decoding a runtime-spec config
// costs every command of the runtime milliseconds.
type State struct {
	Version     int               `json:"version"`
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Pid         int               `json:"pid,omitempty"`
	PidStart    uint64            `json:"pidStart,omitempty"` // start time of Pid in clock ticks, against pid reuse
	Created     time.Time         `json:"created"`
	CgroupPath  string            `json:"cgroupPath"`
	Phase       string            `json:"phase"`
	Owner       string            `json:"owner,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Poststart   bool              `json:"poststart,omitempty"` // the config has poststart hooks
	Poststop    bool              `json:"poststop,omitempty"`  // the config has poststop hooks
}

// Status values beyond the spec's created, running and stopped.
const (
	StatusPaused = "paused"
)

// CheckID refuses ids that are empty, too long, or could name another path.
func CheckID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: container id must not be empty", ErrInvalid)
	}
	// A leading dot is reserved for the runtime's own files.
	valid := len(id) <= 1024 && id[0] != '.'
	for _, c := range id {
		valid = valid && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_+.-", c))
	}
	if !valid {
		return fmt.Errorf("%w: invalid container id %q (allowed: letters, digits, _ + . -, not starting with .)", ErrInvalid, id)
	}
	return nil
}

func (r *Runtime) dir(id string) string { return filepath.Join(r.Root, id) }

func statePath(dir string) string  { return filepath.Join(dir, "state.json") }
func configPath(dir string) string { return filepath.Join(dir, "config.json") }
func fifoPath(dir string) string   { return filepath.Join(dir, "exec.fifo") }

// seccompPath holds the container's compiled seccomp filter, for exec.
func seccompPath(dir string) string { return filepath.Join(dir, "seccomp.bpf") }

// writeState stores st atomically.
func writeState(dir string, st *State) error {
	st.Version = stateVersion
	return writeJSON(dir, statePath(dir), st)
}

// writeConfig stores the container's configuration atomically.
func writeConfig(dir string, s *specs.Spec) error { return writeJSON(dir, configPath(dir), s) }

// readConfig reads the configuration a container was created with.
func readConfig(dir, id string) (*specs.Spec, error) {
	b, err := os.ReadFile(configPath(dir))
	if err != nil {
		return nil, fmt.Errorf("read config of %s: %w", id, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read config of %s: %w", id, err)
	}
	return &s, nil
}

// execConfig is what exec needs of the container's config: not the seccomp
// rules (hundreds of them; decoding them and hashing them for the cache
// took most of exec's own time), whose compiled filter create kept.
type execConfig struct {
	Hostname    string            `json:"hostname,omitempty"`
	Domainname  string            `json:"domainname,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Linux       *struct {
		Namespaces  []specs.LinuxNamespace  `json:"namespaces,omitempty"`
		Personality *specs.LinuxPersonality `json:"personality,omitempty"`
		Seccomp     *struct {
			ListenerPath     string `json:"listenerPath,omitempty"`
			ListenerMetadata string `json:"listenerMetadata,omitempty"`
		} `json:"seccomp,omitempty"`
	} `json:"linux,omitempty"`
}

// readExecConfig returns what exec needs of the container's config as a
// spec, and the compiled seccomp filter create kept (nil: none). ok is
// false for a container created without the kept filter (by an older
// runtime): then the caller reads the whole config.
func readExecConfig(dir, id string) (spec *specs.Spec, seccomp []byte, ok bool, err error) {
	b, err := os.ReadFile(configPath(dir))
	if err != nil {
		return nil, nil, false, fmt.Errorf("read config of %s: %w", id, err)
	}
	var c execConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, nil, false, fmt.Errorf("read config of %s: %w", id, err)
	}
	spec = &specs.Spec{Hostname: c.Hostname, Domainname: c.Domainname, Annotations: c.Annotations, Linux: &specs.Linux{}}
	if c.Linux != nil {
		spec.Linux.Namespaces, spec.Linux.Personality = c.Linux.Namespaces, c.Linux.Personality
		if sc := c.Linux.Seccomp; sc != nil {
			spec.Linux.Seccomp = &specs.LinuxSeccomp{ListenerPath: sc.ListenerPath, ListenerMetadata: sc.ListenerMetadata}
			if seccomp, err = os.ReadFile(seccompPath(dir)); err != nil {
				return nil, nil, false, nil
			}
		}
	}
	return spec, seccomp, true, nil
}

func writeJSON(dir, path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return writeFile(dir, path, b)
}

// writeFile replaces path (in dir) with b atomically.
func writeFile(dir, path string, b []byte) error {
	tmp, err := os.CreateTemp(dir, ".state-*")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

func readState(dir, id string) (*State, error) {
	b, err := os.ReadFile(statePath(dir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, derr := os.Stat(dir); derr == nil {
				// A create killed before its first write: nothing but the
				// directory exists; report it so delete can remove it.
				return &State{ID: id, Phase: phaseCreating}, nil
			}
			return nil, fmt.Errorf("%w: %s", ErrNotExist, id)
		}
		return nil, fmt.Errorf("read state of %s: %w", id, err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read state of %s: %w", id, err)
	}
	if st.Version > stateVersion {
		return nil, fmt.Errorf("state of %s has schema version %d; this berth-runtime knows up to %d", id, st.Version, stateVersion)
	}
	return &st, nil
}

// lock takes the exclusive lock of a container directory. The returned
// file is the lock: close it to release.
func lock(dir, id string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNotExist, id)
		}
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
		return nil, fmt.Errorf("lock container %s: %w", id, err)
	}
	// A delete may have removed the directory while we waited.
	if _, err := os.Stat(dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s", ErrNotExist, id)
	}
	return f, nil
}

// procStart returns the start time of pid (field 22 of /proc/PID/stat) and
// whether it is a zombie.
func procStart(pid int) (start uint64, zombie bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, false, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0] == "Z" || f[0] == "X", err
}

// alive reports whether the recorded init process still exists (and has
// not exited, and is not another process that reused its pid).
func (st *State) alive() bool {
	if st.Pid <= 0 {
		return false
	}
	start, zombie, err := procStart(st.Pid)
	if err != nil || zombie {
		// /proc/PID shows the thread group's leader: a zombie while
		// another thread of the process lives (a leader that called
		// pthread_exit; a program executed by another thread, until that
		// thread takes the leader's place, when /proc/PID is missing for
		// an instant). Only a pidfd tells whether the process exited.
		if !running(st.Pid) {
			return false
		}
		for try := 0; err != nil && try < 50; try++ {
			time.Sleep(time.Millisecond)
			start, _, err = procStart(st.Pid)
		}
		if err != nil {
			return false
		}
	}
	return st.PidStart == 0 || start == st.PidStart
}

// running reports whether process pid exists and has a thread that has not
// exited.
func running(pid int) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
	return err == nil && n == 0
}

// status derives the container's status from the kernel.
func (r *Runtime) status(st *State) string {
	if st.Phase == phaseCreating {
		// A create in progress, or one whose runtime died: it has
		// processes as long as its cgroup does.
		if st.alive() || r.cgroupBusy(st) {
			return "creating"
		}
		return "stopped"
	}
	if !st.alive() {
		return "stopped"
	}
	if _, err := os.Lstat(fifoPath(r.dir(st.ID))); err == nil {
		return "created"
	}
	if cg, err := r.cgroup(st); err == nil {
		if frozen, err := cg.Frozen(); err == nil && frozen {
			return StatusPaused
		}
	}
	return "running"
}

// cgroupBusy reports whether the container's cgroup has live processes.
func (r *Runtime) cgroupBusy(st *State) bool {
	if st.CgroupPath == "" {
		return false
	}
	cg, err := r.cgroup(st)
	if err != nil {
		return false
	}
	pids, err := cg.Pids()
	if err != nil {
		return false
	}
	for _, p := range pids {
		if _, zombie, err := procStart(p); err == nil && !zombie {
			return true
		}
	}
	return false
}

// SpecState returns the container's state in the runtime-spec's shape.
func (r *Runtime) specState(st *State, status string) *specs.State {
	s := &specs.State{
		Version: specs.Version,
		ID:      st.ID,
		Status:  specs.ContainerState(status),
		Bundle:  st.Bundle,
	}
	if status != "stopped" {
		s.Pid = st.Pid
	}
	s.Annotations = st.Annotations
	return s
}

// Info is one container as `list` and `state` show it.
type Info struct {
	specs.State
	Rootfs  string    `json:"rootfs"`
	Created time.Time `json:"created"`
	Owner   string    `json:"owner"`
}

// State returns the state of container id.
func (r *Runtime) State(id string) (*Info, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	st, err := readState(r.dir(id), id)
	if err != nil {
		return nil, err
	}
	return r.info(st), nil
}

func (r *Runtime) info(st *State) *Info {
	owner := st.Owner
	if owner == "" {
		owner = "root"
	}
	return &Info{State: *r.specState(st, r.status(st)), Rootfs: st.Rootfs, Created: st.Created, Owner: owner}
}

// List returns every container under the root, sorted by id.
func (r *Runtime) List() ([]*Info, error) {
	ents, err := os.ReadDir(r.Root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*Info
	for _, e := range ents {
		if !e.IsDir() || CheckID(e.Name()) != nil {
			continue
		}
		st, err := readState(r.dir(e.Name()), e.Name())
		if err != nil {
			continue // removed meanwhile, or unreadable: not ours to show
		}
		out = append(out, r.info(st))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Config returns the configuration container id was created with (with
// later updates of its resources).
func (r *Runtime) Config(id string) (*specs.Spec, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	dir := r.dir(id)
	st, err := readState(dir, id)
	if err != nil {
		return nil, err
	}
	if st.Phase == phaseCreating {
		return nil, fmt.Errorf("%w: container %s is still being created", ErrState, id)
	}
	return readConfig(dir, id)
}
