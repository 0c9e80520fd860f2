package cgroups

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// v1 manages a cgroup in every mounted v1 hierarchy.
type v1 struct {
	path   string
	layout *Layout
	dirs   map[string]string // controller -> directory of this cgroup
}

func newV1(path string, l *Layout) *v1 {
	m := &v1{path: path, layout: l, dirs: map[string]string{}}
	for ctrl, mnt := range l.V1 {
		m.dirs[ctrl] = dirIn(mnt, path)
	}
	return m
}

func (m *v1) Path(ctrl string) string { return m.dirs[ctrl] }

func (m *v1) SelfJoin() (tasks []string, v2dir string) {
	for _, c := range m.hierarchies() {
		tasks = append(tasks, filepath.Join(m.dirs[c], "tasks"))
	}
	return tasks, ""
}

// hierarchies lists each mounted hierarchy once (co-mounted controllers
// share one), in a stable order, cpuset first so its files are ready
// before anything else joins.
func (m *v1) hierarchies() []string {
	seen := map[string]bool{}
	var ctrls []string
	for ctrl := range m.dirs {
		ctrls = append(ctrls, ctrl)
	}
	sort.Slice(ctrls, func(i, j int) bool {
		if (ctrls[i] == "cpuset") != (ctrls[j] == "cpuset") {
			return ctrls[i] == "cpuset"
		}
		return ctrls[i] < ctrls[j]
	})
	var out []string
	for _, c := range ctrls {
		mnt := m.layout.V1[c]
		if seen[mnt.Dir] {
			continue
		}
		seen[mnt.Dir] = true
		out = append(out, c)
	}
	return out
}

func (m *v1) Apply(pid int) error {
	// One directory per hierarchy: made concurrently, since each mkdir in
	// a cgroup filesystem can wait for the kernel (RCU, per-cpu state) and
	// the hierarchies do not depend on each other.
	ctrls := m.hierarchies()
	errs := make([]error, len(ctrls))
	var wg sync.WaitGroup
	for i, ctrl := range ctrls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mnt, dir := m.layout.V1[ctrl], m.dirs[ctrl]
			var created func(string) error
			if _, ok := m.layout.V1["cpuset"]; ok && m.layout.V1["cpuset"].Dir == mnt.Dir {
				created = copyCpuset
			}
			if err := createDir(mnt.Dir, dir, created); err != nil {
				errs[i] = fmt.Errorf("apply cgroup %s (%s): %w", m.path, ctrl, err)
				return
			}
			if err := joinPid(dir, pid); err != nil {
				errs[i] = fmt.Errorf("apply cgroup %s (%s): %w", m.path, ctrl, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// copyCpuset gives a new v1 cpuset its parent's cpus and mems: a cpuset
// starts empty, and no task can join an empty one.
func copyCpuset(dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := readFile(filepath.Join(dir, f))
		if err != nil {
			return fmt.Errorf("read %s: %w", filepath.Join(dir, f), err)
		}
		if cur != "" {
			continue
		}
		parent, err := readFile(filepath.Join(filepath.Dir(dir), f))
		if err != nil {
			return fmt.Errorf("read %s: %w", filepath.Join(filepath.Dir(dir), f), err)
		}
		if err := writeFile(filepath.Join(dir, f), parent); err != nil {
			return err
		}
	}
	return nil
}

func (m *v1) plan(r *specs.LinuxResources) ([]write, error) {
	return planV1(r, dirProber(m.Path))
}

func (m *v1) Set(r *specs.LinuxResources) error {
	ws, err := m.plan(r)
	if err != nil {
		return err
	}
	return applyWrites(ws, m.Path)
}

func (m *v1) Stats() (*Stats, error) {
	return statsV1(m.Path)
}

const (
	freezerState = "freezer.state"
	v1Frozen     = "FROZEN"
	v1Thawed     = "THAWED"
)

func (m *v1) Freeze(frozen bool) error {
	dir := m.Path("freezer")
	if dir == "" {
		return fmt.Errorf("freeze cgroup %s: the v1 freezer is not mounted", m.path)
	}
	file := filepath.Join(dir, freezerState)
	if !frozen {
		if err := writeFile(file, v1Thawed); err != nil {
			return fmt.Errorf("thaw cgroup %s: %w", m.path, err)
		}
		return nil
	}
	// The kernel may stay in FREEZING while a task sits in a state it
	// cannot freeze (a vfork parent, say). Keep asking; every so often
	// thaw for a moment to let such a task move, as runc learned to do.
	for i := 0; i < 1000; i++ {
		if i%50 == 49 {
			_ = writeFile(file, v1Thawed)
			time.Sleep(10 * time.Millisecond)
		}
		if err := writeFile(file, v1Frozen); err != nil {
			return fmt.Errorf("freeze cgroup %s: %w", m.path, err)
		}
		if i > 25 {
			time.Sleep(10 * time.Millisecond)
		}
		state, err := readFile(file)
		if err != nil {
			return fmt.Errorf("freeze cgroup %s: %w", m.path, err)
		}
		if state == v1Frozen {
			return nil
		}
	}
	_ = writeFile(file, v1Thawed)
	return fmt.Errorf("freeze cgroup %s: still not %s after many tries; thawed it again", m.path, v1Frozen)
}

func (m *v1) Frozen() (bool, error) {
	dir := m.Path("freezer")
	if dir == "" {
		return false, nil
	}
	state, err := readFile(filepath.Join(dir, freezerState))
	if err != nil {
		return false, fmt.Errorf("read freezer state of cgroup %s: %w", m.path, err)
	}
	return state == v1Frozen, nil
}

// pidsDir is the hierarchy Pids reads; every hierarchy holds the same
// processes once Apply has run, so any will do.
func (m *v1) pidsDir() string {
	for _, c := range []string{"pids", "freezer", "memory", "cpu", "devices", "name=systemd"} {
		if d := m.Path(c); d != "" {
			return d
		}
	}
	if hs := m.hierarchies(); len(hs) > 0 {
		return m.Path(hs[0])
	}
	return ""
}

func (m *v1) Pids() ([]int, error) {
	dir := m.pidsDir()
	if dir == "" {
		return nil, fmt.Errorf("list processes of cgroup %s: no v1 hierarchy mounted", m.path)
	}
	return readPids(dir)
}

func (m *v1) Kill(sig unix.Signal) error {
	return freezeSignalThaw(m, m.Path("freezer") != "", sig)
}

// freezeSignalThaw signals every process with the cgroup frozen, so that
// none can fork a child we would miss; a frozen task gets its signal when
// thawed.
func freezeSignalThaw(m Manager, canFreeze bool, sig unix.Signal) error {
	if canFreeze {
		if err := m.Freeze(true); err != nil {
			canFreeze = false // signal anyway; a kill should not fail for this
		}
	}
	pids, err := m.Pids()
	if err == nil {
		err = signalAll(pids, sig)
	}
	if canFreeze {
		if terr := m.Freeze(false); terr != nil {
			err = errors.Join(err, terr)
		}
	}
	if err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	return nil
}

func (m *v1) Destroy() error {
	ctrls := m.hierarchies()
	errs := make([]error, len(ctrls))
	var wg sync.WaitGroup
	for i, ctrl := range ctrls {
		if m.dirs[ctrl] == m.layout.V1[ctrl].Dir {
			continue // the hierarchy's root is nobody's to remove
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = removeDir(m.dirs[ctrl])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
