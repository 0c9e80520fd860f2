package cgroups

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// planV2 describes the cgroup2 file writes for r (device rules are not
// files on v2: see deviceProgram). p answers which files exist and what
// cpu.max and memory.current hold now.
//
// Fields without a v2 file are ignored as runc ignores them:
// memory.swappiness, memory.disableOOMKiller, memory.useHierarchy (always
// on), memory.kernel and memory.kernelTCP, network. Realtime cpu,
// blockIO.leafWeight and rdma have no v2 meaning and are refused.
func planV2(r *specs.LinuxResources, p prober) ([]write, error) {
	if r == nil {
		return nil, nil
	}
	var ws []write
	add := func(file, value, field string) {
		ws = append(ws, write{file: file, value: value, field: field})
	}
	if len(r.Rdma) > 0 {
		return nil, fmt.Errorf("linux.resources.rdma: not supported by berth")
	}
	if c := r.CPU; c != nil {
		if c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
			return nil, fmt.Errorf("linux.resources.cpu.realtimeRuntime: not supported on cgroup v2")
		}
		if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
			return nil, fmt.Errorf("linux.resources.cpu.realtimePeriod: not supported on cgroup v2")
		}
		if c.Cpus != "" {
			add("cpuset.cpus", c.Cpus, "linux.resources.cpu.cpus")
		}
		if c.Mems != "" {
			add("cpuset.mems", c.Mems, "linux.resources.cpu.mems")
		}
		if c.Shares != nil && *c.Shares != 0 {
			add("cpu.weight", u64(sharesToWeight(*c.Shares)), "linux.resources.cpu.shares")
		}
		if v, err := cpuMax(c, p); err != nil {
			return nil, err
		} else if v != "" {
			field := "linux.resources.cpu.quota"
			if c.Quota == nil {
				field = "linux.resources.cpu.period"
			}
			add("cpu.max", v, field)
		}
		if c.Burst != nil {
			add("cpu.max.burst", u64(*c.Burst), "linux.resources.cpu.burst")
		}
		if c.Idle != nil {
			add("cpu.idle", i64(*c.Idle), "linux.resources.cpu.idle")
		}
	}
	if m := r.Memory; m != nil {
		mw, err := memoryV2(m, p)
		if err != nil {
			return nil, err
		}
		ws = append(ws, mw...)
	}
	if r.Pids != nil && r.Pids.Limit != nil {
		add("pids.max", pidsMax(*r.Pids.Limit), "linux.resources.pids.limit")
	}
	if b := r.BlockIO; b != nil {
		iw, err := ioV2(b, p)
		if err != nil {
			return nil, err
		}
		ws = append(ws, iw...)
	}
	for i, h := range r.HugepageLimits {
		field := fmt.Sprintf("linux.resources.hugepageLimits[%d]", i)
		if err := checkPagesize(h.Pagesize); err != nil {
			return nil, fmt.Errorf("%s.pageSize: %w", field, err)
		}
		if rsvd := "hugetlb." + h.Pagesize + ".rsvd.max"; p.exists("", rsvd) {
			add(rsvd, u64(h.Limit), field+".limit")
		}
		add("hugetlb."+h.Pagesize+".max", u64(h.Limit), field+".limit")
	}
	for _, k := range sortedKeys(r.Unified) {
		field := fmt.Sprintf("linux.resources.unified[%q]", k)
		if k == "" || strings.ContainsAny(k, "/\x00") || k == "." || k == ".." {
			return nil, fmt.Errorf("%s: not a cgroup file name", field)
		}
		switch k {
		case "cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "cgroup.kill":
			return nil, fmt.Errorf("%s: the runtime manages this file itself", field)
		}
		add(k, r.Unified[k], field)
	}
	return ws, nil
}

// sharesToWeight maps cpu.shares [2, 262144] linearly onto cpu.weight
// [1, 10000], the conversion runc and crun used for years.
func sharesToWeight(shares uint64) uint64 {
	shares = min(max(shares, 2), 262144)
	return 1 + ((shares-2)*9999)/262142
}

// cpuMax renders cpu.max ("$QUOTA $PERIOD"). A quota of -1 is "max". When
// only one half is given, the other is kept from the current file.
func cpuMax(c *specs.LinuxCPU, p prober) (string, error) {
	quota, period := optI64(c.Quota), optU64(c.Period)
	if quota == "" && period == "" {
		return "", nil
	}
	if quota == "-1" {
		quota = "max"
	}
	if quota == "" || period == "" {
		cur, err := p.read("", "cpu.max")
		if err != nil {
			return "", fmt.Errorf("linux.resources.cpu: read current cpu.max: %w", err)
		}
		f := strings.Fields(cur)
		if len(f) != 2 {
			return "", fmt.Errorf("linux.resources.cpu: parse current cpu.max %q", cur)
		}
		if quota == "" {
			quota = f[0]
		}
		if period == "" {
			period = f[1]
		}
	}
	return quota + " " + period, nil
}

// memoryV2 converts OCI memory (swap is memory+swap) to memory.swap.max
// (swap alone), like runc.
func memoryV2(m *specs.LinuxMemory, p prober) ([]write, error) {
	var ws []write
	add := func(file, value, field string) {
		ws = append(ws, write{file: file, value: value, field: field})
	}
	limit, swap := int64(0), int64(0)
	if m.Limit != nil {
		limit = *m.Limit
	}
	if m.Swap != nil {
		swap = *m.Swap
	}
	if limit < -1 {
		return nil, fmt.Errorf("linux.resources.memory.limit %d: want -1 or a byte count", limit)
	}
	if swap < -1 {
		return nil, fmt.Errorf("linux.resources.memory.swap %d: want -1 or a byte count", swap)
	}
	if m.CheckBeforeUpdate != nil && *m.CheckBeforeUpdate && limit > 0 {
		if err := checkUsage(p, "", "memory.current", limit); err != nil {
			return nil, err
		}
	}
	swapMax := ""
	switch {
	case limit == -1 && swap == 0, swap == -1:
		swapMax = "max"
	case swap > 0:
		if limit <= 0 {
			return nil, fmt.Errorf("linux.resources.memory.swap: needs a memory.limit on cgroup v2")
		}
		if swap < limit {
			return nil, fmt.Errorf("linux.resources.memory.swap %d: less than memory.limit %d (swap is memory+swap)", swap, limit)
		}
		swapMax = i64(swap - limit)
	}
	if swapMax != "" {
		switch {
		case p.exists("", "memory.swap.max"):
			add("memory.swap.max", swapMax, "linux.resources.memory.swap")
		case swapMax != "max" && swapMax != "0":
			return nil, fmt.Errorf("linux.resources.memory.swap: swap accounting is off in this kernel (no memory.swap.max)")
		}
	}
	if limit != 0 {
		add("memory.max", maxOr(limit), "linux.resources.memory.limit")
	}
	if m.Reservation != nil && *m.Reservation != 0 {
		add("memory.low", maxOr(*m.Reservation), "linux.resources.memory.reservation")
	}
	return ws, nil
}

// ioV2 writes io.weight (or io.bfq.weight) and io.max.
func ioV2(b *specs.LinuxBlockIO, p prober) ([]write, error) {
	var ws []write
	add := func(file, value, field string) {
		ws = append(ws, write{file: file, value: value, field: field})
	}
	if b.LeafWeight != nil {
		return nil, fmt.Errorf("linux.resources.blockIO.leafWeight: not supported on cgroup v2")
	}
	// BFQ takes the v1 weight range as it is; io.weight has its own range.
	bfq := p.exists("", "io.bfq.weight")
	weight := func(w uint16) string {
		if bfq {
			return strconv.Itoa(int(w))
		}
		return u64(blkioToIOWeight(uint64(w)))
	}
	file := "io.weight"
	if bfq {
		file = "io.bfq.weight"
	}
	if b.Weight != nil {
		add(file, "default "+weight(*b.Weight), "linux.resources.blockIO.weight")
	}
	for i, d := range b.WeightDevice {
		field := fmt.Sprintf("linux.resources.blockIO.weightDevice[%d]", i)
		if d.LeafWeight != nil {
			return nil, fmt.Errorf("%s.leafWeight: not supported on cgroup v2", field)
		}
		if d.Weight != nil {
			add(file, fmt.Sprintf("%d:%d %s", d.Major, d.Minor, weight(*d.Weight)), field+".weight")
		}
	}
	for _, t := range []struct {
		list  []specs.LinuxThrottleDevice
		key   string
		field string
	}{
		{b.ThrottleReadBpsDevice, "rbps", "throttleReadBpsDevice"},
		{b.ThrottleWriteBpsDevice, "wbps", "throttleWriteBpsDevice"},
		{b.ThrottleReadIOPSDevice, "riops", "throttleReadIOPSDevice"},
		{b.ThrottleWriteIOPSDevice, "wiops", "throttleWriteIOPSDevice"},
	} {
		for i, d := range t.list {
			rate := u64(d.Rate)
			if d.Rate == 0 {
				rate = "max"
			}
			add("io.max", fmt.Sprintf("%d:%d %s=%s", d.Major, d.Minor, t.key, rate),
				fmt.Sprintf("linux.resources.blockIO.%s[%d]", t.field, i))
		}
	}
	return ws, nil
}

// blkioToIOWeight maps blkio.weight [10, 1000] onto io.weight [1, 10000].
func blkioToIOWeight(w uint64) uint64 {
	w = min(max(w, 10), 1000)
	return 1 + (w-10)*9999/990
}

// maxOr renders a v2 limit: -1 is "max".
func maxOr(v int64) string {
	if v == -1 {
		return "max"
	}
	return i64(v)
}
