package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// hookRecorder makes hooks that record, in one directory, the state JSON
// they get on stdin (<name>.json) and their order (a line each in "order").
// Hooks that run in the container's namespaces write through a bind mount
// of that directory at /hooklog; the others write to it directly.
type hookRecorder struct {
	dir string
}

func newHookRecorder(t *testing.T, c *container) *hookRecorder {
	t.Helper()
	h := &hookRecorder{dir: mkdirAll(t, filepath.Join(c.dir, "hooklog"))}
	c.spec.Mounts = append(c.spec.Mounts, specs.Mount{Destination: "/hooklog", Type: "bind", Source: h.dir, Options: []string{"rbind"}})
	return h
}

// hook records itself as name, then runs then (a shell command).
func (h *hookRecorder) hook(name, then string, timeout *int) specs.Hook {
	script := fmt.Sprintf(`d=%s; [ -d "$d" ] || d=/hooklog; cat > "$d/%s.json"; echo %s >> "$d/order"; %s`, h.dir, name, name, then)
	return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", script}, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, Timeout: timeout}
}

func (h *hookRecorder) order() []string {
	data, _ := os.ReadFile(filepath.Join(h.dir, "order"))
	return strings.Fields(string(data))
}

func (h *hookRecorder) state(t *testing.T, name string) specs.State {
	t.Helper()
	var s specs.State
	data := readFile(t, filepath.Join(h.dir, name+".json"))
	if err := json.Unmarshal([]byte(data), &s); err != nil {
		t.Fatalf("hook %s got %q on stdin, not state JSON: %v", name, data, err)
	}
	return s
}

func allHooks(h *hookRecorder) *specs.Hooks {
	return &specs.Hooks{
		Prestart:        []specs.Hook{h.hook("prestart", "", nil)},
		CreateRuntime:   []specs.Hook{h.hook("createRuntime", "", nil)},
		CreateContainer: []specs.Hook{h.hook("createContainer", "", nil)},
		StartContainer:  []specs.Hook{h.hook("startContainer", "", nil)},
		Poststart:       []specs.Hook{h.hook("poststart", "", nil)},
		Poststop:        []specs.Hook{h.hook("poststop", "", nil)},
	}
}

// Every hook runs once, at its point of the lifecycle, in order, with the
// state on stdin.
func TestHooksOrderAndState(t *testing.T) {
	c := newContainer(t, sh("exec sleep 1000000"))
	h := newHookRecorder(t, c)
	c.spec.Hooks = allHooks(h)

	// sameRun compares the hooks run so far; with runc's deviation only
	// the set is compared, each hook still once.
	sameRun := func(got, want []string) bool {
		if runcPoststartAtCreate.applies() || crunStartHookRace.applies() {
			got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
		}
		return slices.Equal(got, want)
	}
	for _, d := range []deviation{runcPoststartAtCreate, crunStartHookRace} {
		if d.applies() {
			d.log(t)
		}
	}
	c.mustCreate()
	if got, want := h.order(), []string{"prestart", "createRuntime", "createContainer"}; !runcPoststartAtCreate.applies() && !sameRun(got, want) {
		t.Errorf("hooks run by create: %v, want %v", got, want)
	}
	c.mustRT("start", c.id)
	if crunStartHookRace.applies() {
		// The startContainer hook may still be running after start returned.
		waitFor(t, "five hooks to have run", func() bool { return len(h.order()) >= 5 })
	}
	if got, want := h.order(), []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart"}; !sameRun(got, want) {
		t.Errorf("hooks run by create and start: %v, want %v", got, want)
	}
	pid := c.initPid()
	c.mustRT("kill", c.id, "KILL")
	c.waitStatus(specs.StateStopped)
	c.mustRT("delete", c.id)
	all := []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}
	if got := h.order(); !sameRun(got, all) {
		t.Errorf("hooks run over the lifecycle: %v, want %v", got, all)
	}

	for _, name := range all {
		if (name == "createContainer" || name == "startContainer") && containerHookState.applies() {
			containerHookState.log(t)
			continue
		}
		s := h.state(t, name)
		if s.ID != c.id || s.Bundle != c.bundle || s.Version == "" {
			t.Errorf("hook %s state = %+v, want id %s, bundle %s, an ociVersion", name, s, c.id, c.bundle)
		}
		// The pid as seen where the hook runs: in the container's pid
		// namespace the init is 1 (runtime-spec runtime.md, State).
		wantPid := pid
		if name == "createContainer" || name == "startContainer" {
			wantPid = 1
		}
		if name != "poststop" && s.Pid != wantPid {
			t.Errorf("hook %s state pid = %d, want %d", name, s.Pid, wantPid)
		}
	}
	for name, want := range map[string]specs.ContainerState{"poststart": specs.StateRunning, "poststop": specs.StateStopped} {
		if name == "poststart" && runcPoststartAtCreate.applies() {
			continue
		}
		if got := h.state(t, name).Status; got != want {
			t.Errorf("hook %s state status = %s, want %s", name, got, want)
		}
	}
}

// Which hook failures are fatal (runtime-spec 1.3 runtime.md, Lifecycle):
// create-time hooks fail create and leave nothing; startContainer and
// poststart fail start and stop the container; poststop only warns.
// (runtime-spec 1.0 had poststart only warn; 1.1 made it an error.)
func TestHookFailures(t *testing.T) {
	tests := []struct {
		hook  string
		fatal string // the command that fails: "create", "start" or "" (none)
	}{
		{"prestart", "create"},
		{"createRuntime", "create"},
		{"createContainer", "create"},
		{"startContainer", "start"},
		{"poststart", "start"},
		{"poststop", ""},
	}
	for _, tt := range tests {
		t.Run(tt.hook, func(t *testing.T) {
			if tt.hook == "startContainer" {
				startContainerHookNotFatal.skip(t)
			}
			if tt.hook == "poststart" {
				runcPoststartAtCreate.skip(t)
				poststartFailureWarns.skip(t)
			}
			c := newContainer(t, sh("exec sleep 1000000"))
			h := newHookRecorder(t, c)
			c.spec.Hooks = hooksWith(tt.hook, h.hook(tt.hook, "exit 3", nil))
			r := c.create()
			if tt.fatal == "create" {
				if r.code == 0 {
					t.Fatalf("create succeeded though the %s hook failed", tt.hook)
				}
				assertCleanError(t, r)
				assertNoLeftovers(t, c)
				return
			}
			if r.code != 0 {
				t.Fatalf("create: %v", r)
			}
			pid := c.initPid()
			r = c.rt("start", c.id)
			if tt.fatal == "start" {
				if r.code == 0 {
					t.Errorf("start succeeded though the %s hook failed", tt.hook)
				}
				assertCleanError(t, r)
				// Stopped: the init is gone, whether or not the state is.
				waitFor(t, "the container to be stopped", func() bool { return !processAlive(pid) })
				c.rt("delete", "--force", c.id)
				assertNoLeftovers(t, c)
				return
			}
			if r.code != 0 {
				t.Fatalf("start failed because of the %s hook, which should only warn: %v", tt.hook, r)
			}
			if st := c.state(); st.Status != specs.StateRunning {
				t.Errorf("after a failed %s hook the status is %s, want running", tt.hook, st.Status)
			}
			c.mustRT("delete", "--force", c.id)
			if got := h.order(); !slices.Equal(got, []string{tt.hook}) {
				t.Errorf("hooks that ran: %v, want [%s]", got, tt.hook)
			}
			assertNoLeftovers(t, c)
		})
	}
}

func hooksWith(kind string, hook specs.Hook) *specs.Hooks {
	h := &specs.Hooks{}
	list := map[string]*[]specs.Hook{
		"prestart": &h.Prestart, "createRuntime": &h.CreateRuntime, "createContainer": &h.CreateContainer,
		"startContainer": &h.StartContainer, "poststart": &h.Poststart, "poststop": &h.Poststop,
	}[kind]
	*list = append(*list, hook)
	return h
}

// A hook that outlives its timeout is killed and fails the operation.
func TestHookTimeout(t *testing.T) {
	for _, kind := range []string{"prestart", "createRuntime"} {
		t.Run(kind, func(t *testing.T) {
			c := newContainer(t, sh("exec sleep 1000000"))
			h := newHookRecorder(t, c)
			timeout := 1
			c.spec.Hooks = hooksWith(kind, h.hook(kind, "exec sleep 1000000", &timeout))
			r := c.create()
			if r.code == 0 {
				t.Fatalf("create succeeded though the %s hook outlived its timeout", kind)
			}
			assertCleanError(t, r, "timeout")
			assertNoLeftovers(t, c)
			if pids := hookSleepers(h.dir); len(pids) != 0 {
				t.Errorf("the timed out hook still runs: pids %v", pids)
			}
		})
	}
}

// hookSleepers lists processes whose command line mentions dir (the hook
// scripts name their log directory).
func hookSleepers(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(data), dir) {
			var pid int
			fmt.Sscan(e.Name(), &pid)
			pids = append(pids, pid)
		}
	}
	return pids
}
