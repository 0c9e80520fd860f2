package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// v2 manages a cgroup in the cgroup2 hierarchy.
type v2 struct {
	path   string
	layout *Layout
	dir    string
}

func newV2(path string, l *Layout) *v2 {
	return &v2{path: path, layout: l, dir: dirIn(*l.Unified, path)}
}

// Path returns the cgroup's directory for "" and for every controller the
// cgroup2 root offers.
func (m *v2) Path(ctrl string) string {
	if ctrl == "" || m.layout.hasV2(ctrl) {
		return m.dir
	}
	return ""
}

// fileDir is the directory every v2 write goes to.
func (m *v2) fileDir(string) string { return m.dir }

func (m *v2) SelfJoin() (tasks []string, v2dir string) { return nil, m.dir }

func (m *v2) Apply(pid int) error {
	base := m.layout.Unified.Dir
	rel, err := filepath.Rel(base, m.dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("apply cgroup %s: %s is not under %s", m.path, m.dir, base)
	}
	cur := base
	if rel != "." {
		for _, part := range strings.Split(rel, "/") {
			// A controller is usable in a cgroup only when its parent
			// enables it for its children.
			enableControllers(cur)
			cur = filepath.Join(cur, part)
			if err := os.Mkdir(cur, 0o755); err != nil && !os.IsExist(err) {
				return fmt.Errorf("apply cgroup %s: create %s: %w", m.path, cur, unwrapPathError(err))
			}
		}
	}
	if err := joinPid(m.dir, pid); err != nil {
		return fmt.Errorf("apply cgroup %s: %w", m.path, err)
	}
	return nil
}

// enableControllers enables in dir's cgroup.subtree_control every
// controller dir has. Failures are left for Set to report: a controller
// can be refused (cpu while a realtime task runs, or anything in a
// delegated subtree we may not touch), and its files are then missing,
// which Set names.
func enableControllers(dir string) {
	avail, err := readFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return
	}
	enabled, _ := readFile(filepath.Join(dir, "cgroup.subtree_control"))
	on := map[string]bool{}
	for _, c := range strings.Fields(enabled) {
		on[c] = true
	}
	var add []string
	for _, c := range strings.Fields(avail) {
		if !on[c] {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return
	}
	file := filepath.Join(dir, "cgroup.subtree_control")
	if writeFile(file, strings.Join(add, " ")) != nil {
		for _, c := range add {
			_ = writeFile(file, c)
		}
	}
}

func (m *v2) plan(r *specs.LinuxResources) ([]write, error) {
	return planV2(r, dirProber(m.fileDir))
}

func (m *v2) Set(r *specs.LinuxResources) error {
	ws, err := m.plan(r)
	if err != nil {
		return err
	}
	if err := applyWrites(ws, m.fileDir); err != nil {
		return err
	}
	if r != nil {
		return m.setDevices(r.Devices)
	}
	return nil
}

// setDevices attaches the device program for the rules; no rules, no
// program (everything the parent allows stays allowed).
func (m *v2) setDevices(devices []specs.LinuxDeviceCgroup) error {
	if len(devices) == 0 {
		return nil
	}
	rules, err := parseDeviceRules(devices)
	if err != nil {
		return err
	}
	if err := attachDeviceProgram(m.dir, deviceProgram(rules)); err != nil {
		return fmt.Errorf("set linux.resources.devices: %w", err)
	}
	return nil
}

func (m *v2) Stats() (*Stats, error) {
	return statsV2(m.dir)
}

func (m *v2) Freeze(frozen bool) error {
	verb, want := "thaw", "0"
	if frozen {
		verb, want = "freeze", "1"
	}
	if err := writeFile(filepath.Join(m.dir, "cgroup.freeze"), want); err != nil {
		return fmt.Errorf("%s cgroup %s: %w", verb, m.path, err)
	}
	// cgroup.freeze is the wish; cgroup.events "frozen" is the fact.
	ok, err := waitFor(func() (bool, error) {
		got, err := m.Frozen()
		return got == frozen, err
	})
	if err != nil {
		return fmt.Errorf("%s cgroup %s: %w", verb, m.path, err)
	}
	if !ok {
		if frozen {
			_ = writeFile(filepath.Join(m.dir, "cgroup.freeze"), "0")
		}
		return fmt.Errorf("%s cgroup %s: cgroup.events did not report frozen %s in time", verb, m.path, want)
	}
	return nil
}

func (m *v2) Frozen() (bool, error) {
	events, err := readKeyValues(filepath.Join(m.dir, "cgroup.events"))
	if err != nil {
		return false, fmt.Errorf("read freeze state of cgroup %s: %w", m.path, err)
	}
	return events["frozen"] == 1, nil
}

func (m *v2) Pids() ([]int, error) {
	return readPids(m.dir)
}

func (m *v2) Kill(sig unix.Signal) error {
	killFile := filepath.Join(m.dir, "cgroup.kill")
	if sig == unix.SIGKILL {
		if _, err := os.Stat(killFile); err == nil {
			if err := writeFile(killFile, "1"); err != nil {
				return fmt.Errorf("kill cgroup %s: %w", m.path, err)
			}
			return nil
		}
	}
	return freezeSignalThaw(m, true, sig)
}

func (m *v2) Destroy() error {
	if m.dir == m.layout.Unified.Dir {
		return nil // the hierarchy's root is nobody's to remove
	}
	return removeDir(m.dir)
}
