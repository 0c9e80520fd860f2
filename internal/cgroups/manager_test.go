package cgroups

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestNewRefusesBadPaths(t *testing.T) {
	root, l := fakeHost(t, ModeV2)
	for _, p := range []string{"relative/c1", "/a/../../etc", ""} {
		if _, err := New(p, Options{Root: root, Layout: l}); err == nil {
			t.Errorf("New(%q) succeeded, want an error", p)
		}
	}
}

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		want map[string]string // controller -> dir relative to root, "" for none
	}{
		{ModeV1, map[string]string{"memory": "memory/berth/c1", "cpuacct": "cpu,cpuacct/berth/c1", "name=systemd": "systemd/berth/c1", "": "", "io": ""}},
		{ModeV2, map[string]string{"memory": "berth/c1", "": "berth/c1", "freezer": ""}},
		{ModeHybrid, map[string]string{"memory": "memory/berth/c1", "hugetlb": "unified/berth/c1", "": "unified/berth/c1", "net_cls": ""}},
	} {
		root, l := fakeHost(t, tc.mode)
		m, err := New(leaf, Options{Root: root, Layout: l})
		if err != nil {
			t.Fatal(err)
		}
		for ctrl, rel := range tc.want {
			want := ""
			if rel != "" {
				want = filepath.Join(root, rel)
			}
			if got := m.Path(ctrl); got != want {
				t.Errorf("%s: Path(%q) = %q, want %q", tc.mode, ctrl, got, want)
			}
		}
	}
}

// Pids lists the processes of the cgroup and of every cgroup below it.
func TestPidsIsRecursive(t *testing.T) {
	root, l := fakeHost(t, ModeV2)
	m, err := New(leaf, Options{Root: root, Layout: l})
	if err != nil {
		t.Fatal(err)
	}
	dir := m.Path("")
	os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte("10\n3\n"), 0o644)
	writeFakeFile(t, filepath.Join(dir, "child"), "cgroup.procs", "7\n")
	writeFakeFile(t, filepath.Join(dir, "child", "grandchild"), "cgroup.procs", "3\n12\n")
	got, err := m.Pids()
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 7, 10, 12}; !reflect.DeepEqual(got, want) {
		t.Errorf("Pids() = %v, want %v", got, want)
	}
}

// Apply makes the missing levels and, on v2, enables the controllers each
// parent has for its children.
func TestApplyCreatesLevels(t *testing.T) {
	root, l := fakeHost(t, ModeV2)
	m, err := New("/berth/new/deep", Options{Root: root, Layout: l})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(0); err != nil {
		t.Fatalf("Apply(0): %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "berth/new/deep")); err != nil {
		t.Errorf("Apply(0) did not create the cgroup: %v", err)
	}
	got, _ := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
	if want := "+cpuset +cpu +io +memory +hugetlb +pids"; string(got) != want {
		t.Errorf("root cgroup.subtree_control = %q, want %q", got, want)
	}
}

// Destroy removes the cgroup and its children, is idempotent, and never
// removes a hierarchy's root.
func TestDestroy(t *testing.T) {
	root, l := fakeHost(t, ModeV2)
	m, err := New("/gone/c", Options{Root: root, Layout: l})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "gone/c/child/grandchild"), 0o755)
	for i := 0; i < 2; i++ {
		if err := m.Destroy(); err != nil {
			t.Fatalf("Destroy #%d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "gone/c")); !os.IsNotExist(err) {
		t.Errorf("after Destroy, stat gone/c = %v, want not exist", err)
	}
	if _, err := os.Stat(filepath.Join(root, "gone")); err != nil {
		t.Errorf("Destroy removed the parent it does not own: %v", err)
	}
	rootMgr, _ := New("/", Options{Root: root, Layout: l})
	if err := rootMgr.Destroy(); err != nil {
		t.Errorf("Destroy of / = %v, want a no-op", err)
	}
	if _, err := os.Stat(filepath.Join(root, "gone")); err != nil {
		t.Errorf("Destroy of / removed a cgroup: %v", err)
	}
}

func TestFrozenReadsKernelState(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		file string // relative to the cgroup dir of the controller
		ctrl string
		data string
		want bool
	}{
		{ModeV2, "cgroup.events", "", "populated 1\nfrozen 1\n", true},
		{ModeV2, "cgroup.events", "", "populated 1\nfrozen 0\n", false},
		{ModeV1, "freezer.state", "freezer", "FROZEN\n", true},
		{ModeV1, "freezer.state", "freezer", "FREEZING\n", false},
		{ModeHybrid, "freezer.state", "freezer", "FROZEN\n", true},
	} {
		root, l := fakeHost(t, tc.mode)
		m, _ := New(leaf, Options{Root: root, Layout: l})
		os.WriteFile(filepath.Join(m.Path(tc.ctrl), tc.file), []byte(tc.data), 0o644)
		got, err := m.Frozen()
		if err != nil || got != tc.want {
			t.Errorf("%s: Frozen() with %s %q = %v, %v; want %v", tc.mode, tc.file, tc.data, got, err, tc.want)
		}
	}
}

// In hybrid mode unified keys go to cgroup2 only for controllers it has.
func TestHybridUnified(t *testing.T) {
	root, l := fakeHost(t, ModeHybrid)
	m, _ := New(leaf, Options{Root: root, Layout: l})
	if err := m.Set(&specs.LinuxResources{Unified: map[string]string{"hugetlb.2MB.max": "2097152"}}); err != nil {
		t.Fatalf("Set(unified hugetlb.2MB.max): %v", err)
	}
	got, _ := os.ReadFile(filepath.Join(root, "unified/berth/c1/hugetlb.2MB.max"))
	if string(got) != "2097152" {
		t.Errorf("unified hugetlb.2MB.max = %q, want 2097152", got)
	}
	err := m.Set(&specs.LinuxResources{Unified: map[string]string{"pids.max": "5"}})
	if err == nil || !strings.Contains(err.Error(), `linux.resources.unified["pids.max"]`) {
		t.Errorf("Set(unified pids.max) on hybrid = %v, want an error naming the key", err)
	}
}

// SelfJoin names one tasks file per v1 hierarchy (co-mounted controllers
// once) and the cgroup2 directory, for a process that moves itself in.
func TestSelfJoin(t *testing.T) {
	for _, mode := range []Mode{ModeV1, ModeV2, ModeHybrid} {
		root, l := fakeHost(t, mode)
		m, err := New(leaf, Options{Root: root, Layout: l})
		if err != nil {
			t.Fatal(err)
		}
		tasks, v2 := m.SelfJoin()
		seen := map[string]bool{}
		for _, p := range tasks {
			if filepath.Base(p) != "tasks" || seen[p] {
				t.Errorf("%s: tasks file %q (repeated: %v)", mode, p, seen[p])
			}
			seen[p] = true
		}
		switch mode {
		case ModeV2:
			if len(tasks) != 0 || v2 != m.Path("") {
				t.Errorf("v2: SelfJoin = %v, %q; want none, %q", tasks, v2, m.Path(""))
			}
		default:
			for _, ctrl := range []string{"memory", "cpu", "cpuacct", "pids"} {
				if d := m.Path(ctrl); d != "" && !seen[filepath.Join(d, "tasks")] && !(mode == ModeHybrid && d == m.Path("")) {
					t.Errorf("%s: no tasks file for %s (%s) in %v", mode, ctrl, d, tasks)
				}
			}
			if mode == ModeHybrid && v2 != m.Path("") || mode == ModeV1 && v2 != "" {
				t.Errorf("%s: cgroup2 directory %q, want %q", mode, v2, m.Path(""))
			}
		}
	}
}
