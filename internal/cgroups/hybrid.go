package cgroups

import (
	"errors"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// hybrid manages a cgroup on a host with v1 hierarchies and a cgroup2
// mount. Each resource group goes where its controller is: to v1 when the
// v1 controller is mounted, else to cgroup2 when its root offers the v2
// controller. The process joins both, so the freezer (v1) and the cgroup2
// limits (typically hugetlb) all see it.
type hybrid struct {
	layout *Layout
	v1     *v1
	v2     *v2
}

// onV2 reports whether the group with v1 controller c1 and v2 controller c2
// is managed through cgroup2.
func (h *hybrid) onV2(c1, c2 string) bool {
	return !h.layout.hasV1(c1) && h.layout.hasV2(c2)
}

func (h *hybrid) Path(ctrl string) string {
	if ctrl == "" {
		return h.v2.dir
	}
	if d := h.v1.Path(ctrl); d != "" {
		return d
	}
	return h.v2.Path(ctrl)
}

func (h *hybrid) SelfJoin() (tasks []string, v2dir string) {
	tasks, _ = h.v1.SelfJoin()
	return tasks, h.v2.dir
}

func (h *hybrid) Apply(pid int) error {
	if err := h.v1.Apply(pid); err != nil {
		return err
	}
	return h.v2.Apply(pid)
}

// split divides r into the part for v1 and the part for cgroup2.
func (h *hybrid) split(r *specs.LinuxResources) (r1, r2 *specs.LinuxResources, err error) {
	r1, r2 = &specs.LinuxResources{}, &specs.LinuxResources{}
	pick := func(c1, c2 string) *specs.LinuxResources {
		if h.onV2(c1, c2) {
			return r2
		}
		return r1
	}
	if r.Memory != nil {
		pick("memory", "memory").Memory = r.Memory
	}
	if c := r.CPU; c != nil {
		cpu := *c
		cpu.Cpus, cpu.Mems = "", ""
		if cpu != (specs.LinuxCPU{}) {
			pick("cpu", "cpu").CPU = &cpu
		}
		if c.Cpus != "" || c.Mems != "" {
			dst := pick("cpuset", "cpuset")
			if dst.CPU == nil {
				dst.CPU = &specs.LinuxCPU{}
			}
			dst.CPU.Cpus, dst.CPU.Mems = c.Cpus, c.Mems
		}
	}
	if r.Pids != nil {
		pick("pids", "pids").Pids = r.Pids
	}
	if r.BlockIO != nil {
		pick("blkio", "io").BlockIO = r.BlockIO
	}
	if r.HugepageLimits != nil {
		pick("hugetlb", "hugetlb").HugepageLimits = r.HugepageLimits
	}
	r1.Network, r1.Rdma = r.Network, r.Rdma
	if r.Devices != nil {
		// Device programs attach to any cgroup2 directory; the v1
		// controller wins when it is mounted.
		if h.layout.hasV1("devices") {
			r1.Devices = r.Devices
		} else {
			r2.Devices = r.Devices
		}
	}
	for _, k := range sortedKeys(r.Unified) {
		ctrl, _, _ := strings.Cut(k, ".")
		if !h.layout.hasV2(ctrl) {
			return nil, nil, fmt.Errorf("linux.resources.unified[%q]: controller %q is not on this hybrid host's cgroup2 hierarchy (it has %v)",
				k, ctrl, h.layout.UnifiedControllers)
		}
		if r2.Unified == nil {
			r2.Unified = map[string]string{}
		}
		r2.Unified[k] = r.Unified[k]
	}
	return r1, r2, nil
}

// dir maps a write's controller to its directory: "" is cgroup2.
func (h *hybrid) dir(ctrl string) string {
	if ctrl == "" {
		return h.v2.dir
	}
	return h.v1.Path(ctrl)
}

func (h *hybrid) plan(r *specs.LinuxResources) (ws []write, v2devices []specs.LinuxDeviceCgroup, err error) {
	if r == nil {
		return nil, nil, nil
	}
	r1, r2, err := h.split(r)
	if err != nil {
		return nil, nil, err
	}
	w1, err := h.v1.plan(r1)
	if err != nil {
		return nil, nil, err
	}
	w2, err := h.v2.plan(r2)
	if err != nil {
		return nil, nil, err
	}
	return append(w1, w2...), r2.Devices, nil
}

func (h *hybrid) Set(r *specs.LinuxResources) error {
	ws, devices, err := h.plan(r)
	if err != nil {
		return err
	}
	if err := applyWrites(ws, h.dir); err != nil {
		return err
	}
	return h.v2.setDevices(devices)
}

func (h *hybrid) Stats() (*Stats, error) {
	s, err := statsV1(h.v1.Path)
	if err != nil {
		return nil, err
	}
	s2, err := statsV2(h.v2.dir)
	if err != nil {
		return nil, err
	}
	if h.onV2("cpuacct", "cpu") {
		s.CPU = s2.CPU
	}
	if h.onV2("memory", "memory") {
		s.Memory = s2.Memory
	}
	if h.onV2("pids", "pids") {
		s.Pids = s2.Pids
	}
	if h.onV2("blkio", "io") {
		s.Blkio = s2.Blkio
	}
	if h.onV2("hugetlb", "hugetlb") {
		s.Hugetlb = s2.Hugetlb
	}
	return s, nil
}

// control is the side that freezes, lists and signals: the v1 freezer when
// mounted, else cgroup2 (which freezes without a controller).
func (h *hybrid) control() Manager {
	if h.layout.hasV1("freezer") {
		return h.v1
	}
	return h.v2
}

func (h *hybrid) Freeze(frozen bool) error { return h.control().Freeze(frozen) }
func (h *hybrid) Frozen() (bool, error)    { return h.control().Frozen() }
func (h *hybrid) Pids() ([]int, error)     { return h.control().Pids() }
func (h *hybrid) Kill(sig unix.Signal) error {
	return h.control().Kill(sig)
}

func (h *hybrid) Destroy() error {
	return errors.Join(h.v1.Destroy(), h.v2.Destroy())
}
