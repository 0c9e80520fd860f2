package cgroups

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestParseLayout(t *testing.T) {
	for _, tc := range []struct {
		mode        Mode
		v1          []string // controllers
		v1Dirs      map[string]string
		unified     string // mount dir, relative to root
		controllers []string
	}{
		{
			mode:   ModeV1,
			v1:     []string{"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory", "name=systemd", "net_cls", "net_prio", "perf_event", "pids"},
			v1Dirs: map[string]string{"cpu": "cpu,cpuacct", "cpuacct": "cpu,cpuacct", "name=systemd": "systemd", "net_prio": "net_cls,net_prio"},
		},
		{mode: ModeV2, unified: ".", controllers: []string{"cpu", "cpuset", "hugetlb", "io", "memory", "pids"}},
		{
			mode:        ModeHybrid,
			v1:          []string{"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "name=systemd", "pids"},
			v1Dirs:      map[string]string{"cpu": "cpu", "name=systemd": "systemd"},
			unified:     "unified",
			controllers: []string{"hugetlb"},
		},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			root, l := fakeHost(t, tc.mode)
			if got := l.Mode(); got != tc.mode {
				t.Errorf("Mode() = %s, want %s", got, tc.mode)
			}
			var ctrls []string
			for c, m := range l.V1 {
				ctrls = append(ctrls, c)
				if m.Root != "/" {
					t.Errorf("V1[%s].Root = %q, want /", c, m.Root)
				}
			}
			sort.Strings(ctrls)
			if !reflect.DeepEqual(ctrls, tc.v1) {
				t.Errorf("V1 controllers = %v, want %v", ctrls, tc.v1)
			}
			for c, dir := range tc.v1Dirs {
				if got, want := l.V1[c].Dir, filepath.Join(root, dir); got != want {
					t.Errorf("V1[%s].Dir = %s, want %s", c, got, want)
				}
			}
			if tc.unified == "" {
				if l.Unified != nil {
					t.Errorf("Unified = %+v, want none", l.Unified)
				}
				return
			}
			if l.Unified == nil || l.Unified.Dir != filepath.Join(root, tc.unified) {
				t.Fatalf("Unified = %+v, want a mount at %s", l.Unified, filepath.Join(root, tc.unified))
			}
			if !reflect.DeepEqual(l.UnifiedControllers, tc.controllers) {
				t.Errorf("UnifiedControllers = %v, want %v", l.UnifiedControllers, tc.controllers)
			}
		})
	}
}

func TestParseLayoutEdges(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "my cg"), 0o755)
	os.WriteFile(filepath.Join(root, "my cg", "cgroup.controllers"), []byte("memory pids\n"), 0o644)
	for _, tc := range []struct {
		name      string
		mountinfo string
		check     func(t *testing.T, l *Layout)
		wantErr   string
	}{
		{
			name: "escaped mount point and a bind-mounted subtree",
			mountinfo: "40 30 0:37 / ROOT/my\\040cg rw - cgroup2 cgroup2 rw\n" +
				"41 30 0:38 /docker/abc ROOT/memory rw - cgroup cgroup rw,memory\n",
			check: func(t *testing.T, l *Layout) {
				if l.Unified == nil || l.Unified.Dir != root+"/my cg" {
					t.Errorf("Unified = %+v, want %s/my cg", l.Unified, root)
				}
				m := l.V1["memory"]
				if m.Root != "/docker/abc" {
					t.Errorf("memory root = %q, want /docker/abc", m.Root)
				}
				if got, want := dirIn(m, "/docker/abc/c1"), root+"/memory/c1"; got != want {
					t.Errorf("dirIn(bind mount, /docker/abc/c1) = %s, want %s", got, want)
				}
			},
		},
		{
			name:      "cgroup mounts elsewhere do not count",
			mountinfo: "40 30 0:37 / /elsewhere rw - cgroup2 cgroup2 rw\n",
			wantErr:   "no cgroup",
		},
		{
			name:      "a malformed line is an error",
			mountinfo: "40 30 0:37 / ROOT\n",
			wantErr:   "line 1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ParseLayout(strings.NewReader(strings.ReplaceAll(tc.mountinfo, "ROOT", root)), root)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseLayout = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, l)
		})
	}
}

// This machine's own layout parses, whatever it is.
func TestDetectLayoutOnThisHost(t *testing.T) {
	if _, err := os.Stat(DefaultRoot); err != nil {
		t.Skipf("no %s here", DefaultRoot)
	}
	l, err := DetectLayout(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mode %s, v1 %d controllers, cgroup2 controllers %v", l.Mode(), len(l.V1), l.UnifiedControllers)
}
