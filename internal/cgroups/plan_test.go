package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fullResources sets every field that means something on every layout.
func fullResources() *specs.LinuxResources {
	dev := func(major, minor int64) specs.LinuxBlockIODevice {
		return specs.LinuxBlockIODevice{Major: major, Minor: minor}
	}
	return &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"},
			{Allow: true, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](3), Access: "rwm"},
			{Allow: true, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](5), Access: "rw"},
			{Allow: true, Type: "a", Access: "m"},
			{Allow: false, Type: "c", Major: ptr[int64](5), Minor: ptr[int64](1), Access: "w"},
		},
		Memory: &specs.LinuxMemory{
			Limit:             ptr[int64](256 << 20),
			Reservation:       ptr[int64](128 << 20),
			Swap:              ptr[int64](512 << 20),
			Kernel:            ptr[int64](64 << 20),
			KernelTCP:         ptr[int64](16 << 20),
			Swappiness:        ptr[uint64](10),
			DisableOOMKiller:  ptr(false),
			CheckBeforeUpdate: ptr(true),
		},
		CPU: &specs.LinuxCPU{
			Shares: ptr[uint64](512),
			Quota:  ptr[int64](50000),
			Period: ptr[uint64](100000),
			Burst:  ptr[uint64](10000),
			Idle:   ptr[int64](0),
			Cpus:   "0-1",
			Mems:   "0",
		},
		Pids: &specs.LinuxPids{Limit: ptr[int64](100)},
		BlockIO: &specs.LinuxBlockIO{
			Weight:                  ptr[uint16](300),
			WeightDevice:            []specs.LinuxWeightDevice{{LinuxBlockIODevice: dev(8, 0), Weight: ptr[uint16](200)}},
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 0), Rate: 1 << 20}},
			ThrottleWriteBpsDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 0), Rate: 2 << 20}},
			ThrottleReadIOPSDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 0), Rate: 100}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev(8, 16), Rate: 0}},
		},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}, {Pagesize: "1GB", Limit: 0}},
	}
}

// v1Extras adds the fields only v1 has.
func v1Extras(r *specs.LinuxResources) *specs.LinuxResources {
	r.CPU.RealtimePeriod = ptr[uint64](1000000)
	r.CPU.RealtimeRuntime = ptr[int64](950000)
	r.BlockIO.LeafWeight = ptr[uint16](400)
	r.BlockIO.WeightDevice[0].LeafWeight = ptr[uint16](100)
	r.Network = &specs.LinuxNetwork{
		ClassID:    ptr[uint32](0x100001),
		Priorities: []specs.LinuxInterfacePriority{{Name: "eth0", Priority: 5}, {Name: "lo", Priority: 1}},
	}
	r.Memory.UseHierarchy = ptr(true)
	return r
}

type planner interface {
	plan(r *specs.LinuxResources) ([]write, error)
}

// hybridPlanner adapts hybrid.plan (which also returns cgroup2 devices).
type hybridPlanner struct{ h *hybrid }

func (p hybridPlanner) plan(r *specs.LinuxResources) ([]write, error) {
	ws, devs, err := p.h.plan(r)
	if len(devs) > 0 {
		return nil, fmt.Errorf("devices went to cgroup2 on a host with the v1 devices controller")
	}
	return ws, err
}

func planOf(t *testing.T, m Manager) planner {
	t.Helper()
	switch m := m.(type) {
	case *v1:
		return m
	case *v2:
		return m
	case *hybrid:
		return hybridPlanner{m}
	}
	t.Fatalf("unknown manager %T", m)
	return nil
}

// renderPlan prints one "path: value" line per write, paths relative to
// the fake root.
func renderPlan(t *testing.T, root string, m Manager, ws []write) string {
	t.Helper()
	var b strings.Builder
	for _, w := range ws {
		dir := m.Path(w.ctrl)
		rel, err := filepath.Rel(root, filepath.Join(dir, w.file))
		if err != nil {
			t.Fatal(err)
		}
		note := ""
		if w.mayFail {
			note = "   # EINVAL ignored, written again below"
		}
		fmt.Fprintf(&b, "%s: %s%s\n", rel, strings.ReplaceAll(w.value, "\n", `\n`), note)
	}
	return b.String()
}

// The file writes Set makes for a full LinuxResources, per layout.
func TestPlanGolden(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		r    *specs.LinuxResources
	}{
		{ModeV1, v1Extras(fullResources())},
		{ModeHybrid, v1Extras(fullResources())},
		{ModeV2, func() *specs.LinuxResources {
			r := fullResources()
			r.Unified = map[string]string{"memory.high": "200000000"}
			return r
		}()},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			root, l := fakeHost(t, tc.mode)
			m, err := New(leaf, Options{Root: root, Layout: l})
			if err != nil {
				t.Fatal(err)
			}
			ws, err := planOf(t, m).plan(tc.r)
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			checkGolden(t, "plan-"+string(tc.mode)+".golden", renderPlan(t, root, m, ws))
		})
	}
}

// Set performs the plan: after it, each file holds the last value planned
// for it.
func TestSetWritesPlannedValues(t *testing.T) {
	for _, mode := range []Mode{ModeV1, ModeHybrid, ModeV2} {
		t.Run(string(mode), func(t *testing.T) {
			root, l := fakeHost(t, mode)
			m, err := New(leaf, Options{Root: root, Layout: l})
			if err != nil {
				t.Fatal(err)
			}
			r := fullResources()
			if mode != ModeV2 {
				r = v1Extras(r)
			} else {
				r.Devices = nil // an eBPF program needs a real cgroup2 directory
			}
			ws, err := planOf(t, m).plan(r)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Set(r); err != nil {
				t.Fatalf("Set: %v", err)
			}
			last := map[string]string{}
			for _, w := range ws {
				last[filepath.Join(m.Path(w.ctrl), w.file)] = w.value
			}
			for file, want := range last {
				got, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != want {
					t.Errorf("after Set, %s = %q, want %q", file, got, want)
				}
			}
		})
	}
}

// Nil resources, or nil groups, write nothing.
func TestPlanNilWritesNothing(t *testing.T) {
	for _, r := range []*specs.LinuxResources{nil, {}, {Memory: &specs.LinuxMemory{}, CPU: &specs.LinuxCPU{}, BlockIO: &specs.LinuxBlockIO{}, Pids: &specs.LinuxPids{}}} {
		for _, mode := range []Mode{ModeV1, ModeHybrid, ModeV2} {
			root, l := fakeHost(t, mode)
			m, _ := New(leaf, Options{Root: root, Layout: l})
			ws, err := planOf(t, m).plan(r)
			if err != nil || len(ws) != 0 {
				t.Errorf("%s: plan(%+v) = %v, %v; want no writes", mode, r, ws, err)
			}
		}
	}
}

// fakeProbe answers a plan's questions from a map of file contents.
type fakeProbe map[string]string

func (f fakeProbe) exists(ctrl, file string) bool {
	_, ok := f[filepath.Join(ctrl, file)]
	return ok
}

func (f fakeProbe) read(ctrl, file string) (string, error) {
	v, ok := f[filepath.Join(ctrl, file)]
	if !ok {
		return "", os.ErrNotExist
	}
	return v, nil
}

// The kernel keeps memory.limit_in_bytes <= memory.memsw.limit_in_bytes at
// every moment, so the order of the two writes depends on the current limit.
func TestMemoryV1WriteOrder(t *testing.T) {
	const (
		limit = "memory.limit_in_bytes"
		memsw = "memory.memsw.limit_in_bytes"
	)
	for _, tc := range []struct {
		name        string
		current     string
		limit, swap int64
		want        []string
	}{
		{"raise both: memsw first", "104857600", 200 << 20, 400 << 20, []string{memsw + "=419430400", limit + "=209715200"}},
		{"lower both: limit first", "1073741824", 100 << 20, 200 << 20, []string{limit + "=104857600", memsw + "=209715200"}},
		{"unlimited both: memsw first", "104857600", -1, -1, []string{memsw + "=-1", limit + "=-1"}},
		{"unlimited memory implies unlimited swap", "104857600", -1, 0, []string{memsw + "=-1", limit + "=-1"}},
		{"limit only", "104857600", 50 << 20, 0, []string{limit + "=52428800"}},
		{"swap only", "104857600", 0, 300 << 20, []string{memsw + "=314572800"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := fakeProbe{"memory/" + limit: tc.current, "memory/" + memsw: tc.current}
			m := &specs.LinuxMemory{}
			if tc.limit != 0 {
				m.Limit = &tc.limit
			}
			if tc.swap != 0 {
				m.Swap = &tc.swap
			}
			ws, err := memoryV1(m, p)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range ws {
				got = append(got, w.file+"="+w.value)
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("memoryV1(limit %d, swap %d, current %s) = %v, want %v", tc.limit, tc.swap, tc.current, got, tc.want)
			}
		})
	}
}

func TestMemoryV2Swap(t *testing.T) {
	for _, tc := range []struct {
		limit, swap int64
		want        string // memory.swap.max, "" for no write
	}{
		{256 << 20, 512 << 20, "268435456"},
		{256 << 20, 256 << 20, "0"},
		{256 << 20, -1, "max"},
		{-1, 0, "max"},
		{256 << 20, 0, ""},
	} {
		m := &specs.LinuxMemory{Limit: &tc.limit}
		if tc.swap != 0 {
			m.Swap = &tc.swap
		}
		ws, err := memoryV2(m, fakeProbe{"memory.swap.max": "max"})
		if err != nil {
			t.Fatalf("memoryV2(limit %d, swap %d): %v", tc.limit, tc.swap, err)
		}
		got := ""
		for _, w := range ws {
			if w.file == "memory.swap.max" {
				got = w.value
			}
		}
		if got != tc.want {
			t.Errorf("memoryV2(limit %d, swap %d): memory.swap.max = %q, want %q", tc.limit, tc.swap, got, tc.want)
		}
	}
}

func TestConversions(t *testing.T) {
	for _, tc := range []struct{ shares, weight uint64 }{
		{2, 1}, {1024, 39}, {262144, 10000}, {1, 1}, {1 << 30, 10000},
	} {
		if got := sharesToWeight(tc.shares); got != tc.weight {
			t.Errorf("sharesToWeight(%d) = %d, want %d", tc.shares, got, tc.weight)
		}
	}
	for _, tc := range []struct{ blkio, io uint64 }{
		{10, 1}, {500, 4950}, {1000, 10000},
	} {
		if got := blkioToIOWeight(tc.blkio); got != tc.io {
			t.Errorf("blkioToIOWeight(%d) = %d, want %d", tc.blkio, got, tc.io)
		}
	}
}

// cpu.max keeps the half of the value that the config leaves out.
func TestCPUMaxKeepsCurrentHalf(t *testing.T) {
	p := fakeProbe{"cpu.max": "20000 50000"}
	for _, tc := range []struct {
		quota  *int64
		period *uint64
		want   string
	}{
		{ptr[int64](10000), nil, "10000 50000"},
		{nil, ptr[uint64](100000), "20000 100000"},
		{ptr[int64](-1), ptr[uint64](100000), "max 100000"},
		{nil, nil, ""},
	} {
		got, err := cpuMax(&specs.LinuxCPU{Quota: tc.quota, Period: tc.period}, p)
		if err != nil || got != tc.want {
			t.Errorf("cpuMax(quota %v, period %v) = %q, %v; want %q", tc.quota, tc.period, got, err, tc.want)
		}
	}
}

// Invalid input is refused with an error naming the OCI field.
func TestPlanErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		modes []Mode
		r     *specs.LinuxResources
		want  string
	}{
		{[]Mode{ModeV1}, &specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}, "linux.resources.unified"},
		{[]Mode{ModeHybrid}, &specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}, `linux.resources.unified["memory.high"]`},
		{[]Mode{ModeV2}, &specs.LinuxResources{Unified: map[string]string{"cgroup.procs": "1"}}, `linux.resources.unified["cgroup.procs"]`},
		{[]Mode{ModeV2}, &specs.LinuxResources{Unified: map[string]string{"../x": "1"}}, `linux.resources.unified["../x"]`},
		{[]Mode{ModeV1, ModeHybrid, ModeV2}, &specs.LinuxResources{Rdma: map[string]specs.LinuxRdma{"mlx": {}}}, "linux.resources.rdma"},
		{[]Mode{ModeV1, ModeHybrid, ModeV2}, &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2M"}}}, "linux.resources.hugepageLimits[0].pageSize"},
		{[]Mode{ModeV1, ModeHybrid, ModeV2}, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](200), Swap: ptr[int64](100)}}, "linux.resources.memory.swap"},
		{[]Mode{ModeV1, ModeHybrid, ModeV2}, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](-5)}}, "linux.resources.memory.limit"},
		{[]Mode{ModeV1, ModeHybrid, ModeV2}, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](1000), CheckBeforeUpdate: ptr(true)}}, "checkBeforeUpdate"},
		{[]Mode{ModeV1, ModeHybrid}, &specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: ptr[uint64](101)}}, "linux.resources.memory.swappiness"},
		{[]Mode{ModeV1, ModeHybrid, ModeV2}, &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "x"}}}, "linux.resources.devices[0].type"},
		{[]Mode{ModeV1, ModeHybrid}, &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{}, {Access: "rwx"}}}, "linux.resources.devices[1].access"},
		{[]Mode{ModeV1, ModeHybrid}, &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Major: ptr[int64](-7)}}}, "linux.resources.devices[0].major"},
		{[]Mode{ModeV2}, &specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr[int64](1000)}}, "linux.resources.cpu.realtimeRuntime"},
		{[]Mode{ModeV2}, &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{LeafWeight: ptr[uint16](10)}}, "linux.resources.blockIO.leafWeight"},
		{[]Mode{ModeV2}, &specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: ptr[int64](1 << 20)}}, "linux.resources.memory.swap"},
	} {
		for _, mode := range tc.modes {
			root, l := fakeHost(t, mode)
			m, err := New(leaf, Options{Root: root, Layout: l})
			if err != nil {
				t.Fatal(err)
			}
			err = m.Set(tc.r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: Set(%s) = %v, want an error naming %s", mode, describe(tc.r), err, tc.want)
			}
		}
	}
}

// A controller that is not mounted fails when the plan reaches it, naming
// the field; a file the kernel lacks fails naming field and file.
func TestSetNamesFieldAndFile(t *testing.T) {
	root, l := fakeHost(t, ModeHybrid)
	m, err := New(leaf, Options{Root: root, Layout: l})
	if err != nil {
		t.Fatal(err)
	}
	// The hybrid fixture, like this project's hosts, has no blkio.weight.
	os.Remove(filepath.Join(m.Path("blkio"), "blkio.weight"))
	err = m.Set(&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr[uint16](100)}})
	if err == nil || !strings.Contains(err.Error(), "linux.resources.blockIO.weight") || !strings.Contains(err.Error(), "blkio.weight") {
		t.Errorf("Set(blockIO.weight) without blkio.weight = %v, want an error naming the field and the file", err)
	}
}

func describe(r *specs.LinuxResources) string {
	s := fmt.Sprintf("%+v", *r)
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}
