package cgroups

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// planV1 describes the cgroup v1 file writes for r. p answers which files
// exist and what memory.limit_in_bytes holds now (it decides the order of
// the memory writes). Writes for an unmounted net_cls/net_prio are left out;
// any other unmounted controller fails when the plan is applied.
func planV1(r *specs.LinuxResources, p prober) ([]write, error) {
	if r == nil {
		return nil, nil
	}
	var ws []write
	add := func(ctrl, file, value, field string) {
		ws = append(ws, write{ctrl: ctrl, file: file, value: value, field: field})
	}
	if len(r.Unified) > 0 {
		return nil, fmt.Errorf("linux.resources.unified: needs a cgroup v2 hierarchy, this host has only cgroup v1")
	}
	if len(r.Rdma) > 0 {
		return nil, fmt.Errorf("linux.resources.rdma: not supported by berth")
	}
	if c := r.CPU; c != nil {
		if c.Cpus != "" {
			add("cpuset", "cpuset.cpus", c.Cpus, "linux.resources.cpu.cpus")
		}
		if c.Mems != "" {
			add("cpuset", "cpuset.mems", c.Mems, "linux.resources.cpu.mems")
		}
		if c.Shares != nil && *c.Shares != 0 {
			add("cpu", "cpu.shares", u64(*c.Shares), "linux.resources.cpu.shares")
		}
		// Period and quota (and the realtime pair) are checked against
		// each other: a smaller period can be refused until the quota is
		// written. Like runc: period (may fail), quota, period again.
		ws = append(ws, pairWrites("cpu",
			"cpu.cfs_period_us", optU64(c.Period), "linux.resources.cpu.period",
			"cpu.cfs_quota_us", optI64(c.Quota), "linux.resources.cpu.quota")...)
		ws = append(ws, pairWrites("cpu",
			"cpu.rt_period_us", optU64(c.RealtimePeriod), "linux.resources.cpu.realtimePeriod",
			"cpu.rt_runtime_us", optI64(c.RealtimeRuntime), "linux.resources.cpu.realtimeRuntime")...)
		if c.Burst != nil {
			add("cpu", "cpu.cfs_burst_us", u64(*c.Burst), "linux.resources.cpu.burst")
		}
		if c.Idle != nil {
			add("cpu", "cpu.idle", i64(*c.Idle), "linux.resources.cpu.idle")
		}
	}
	if m := r.Memory; m != nil {
		mw, err := memoryV1(m, p)
		if err != nil {
			return nil, err
		}
		ws = append(ws, mw...)
	}
	if r.Pids != nil && r.Pids.Limit != nil {
		add("pids", "pids.max", pidsMax(*r.Pids.Limit), "linux.resources.pids.limit")
	}
	if b := r.BlockIO; b != nil {
		ws = append(ws, blkioV1(b, p)...)
	}
	for i, h := range r.HugepageLimits {
		field := fmt.Sprintf("linux.resources.hugepageLimits[%d]", i)
		if err := checkPagesize(h.Pagesize); err != nil {
			return nil, fmt.Errorf("%s.pageSize: %w", field, err)
		}
		// OCI: limit reservations too where the kernel can.
		if rsvd := "hugetlb." + h.Pagesize + ".rsvd.limit_in_bytes"; p.exists("hugetlb", rsvd) {
			add("hugetlb", rsvd, u64(h.Limit), field+".limit")
		}
		add("hugetlb", "hugetlb."+h.Pagesize+".limit_in_bytes", u64(h.Limit), field+".limit")
	}
	if n := r.Network; n != nil {
		if n.ClassID != nil && p.exists("net_cls", "net_cls.classid") {
			add("net_cls", "net_cls.classid", strconv.FormatUint(uint64(*n.ClassID), 10), "linux.resources.network.classID")
		}
		if p.exists("net_prio", "net_prio.ifpriomap") {
			for i, prio := range n.Priorities {
				add("net_prio", "net_prio.ifpriomap", fmt.Sprintf("%s %d", prio.Name, prio.Priority),
					fmt.Sprintf("linux.resources.network.priorities[%d]", i))
			}
		}
	}
	if r.Devices != nil {
		rules, err := parseDeviceRules(r.Devices)
		if err != nil {
			return nil, err
		}
		ws = append(ws, v1DeviceWrites(rules)...)
	}
	return ws, nil
}

// memoryV1 orders the memory writes. The kernel keeps limit <= memsw limit
// at all times, so raising both writes memsw first and lowering both writes
// the limit first; runc decides from the current limit the same way.
func memoryV1(m *specs.LinuxMemory, p prober) ([]write, error) {
	var ws []write
	add := func(file, value, field string) {
		ws = append(ws, write{ctrl: "memory", file: file, value: value, field: field})
	}
	const (
		limitFile = "memory.limit_in_bytes"
		swapFile  = "memory.memsw.limit_in_bytes"
	)
	limit, swap := int64(0), int64(0) // 0: not set
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
	hasSwap := p.exists("memory", swapFile)
	if limit == -1 && swap == 0 && hasSwap {
		swap = -1 // unlimited memory means unlimited memory+swap
	}
	if swap != 0 && !hasSwap {
		return nil, fmt.Errorf("linux.resources.memory.swap: swap accounting is off in this kernel (no %s)", swapFile)
	}
	if limit > 0 && swap > 0 && swap < limit {
		return nil, fmt.Errorf("linux.resources.memory.swap %d: less than memory.limit %d (swap is memory+swap)", swap, limit)
	}
	if m.CheckBeforeUpdate != nil && *m.CheckBeforeUpdate && limit > 0 {
		if err := checkUsage(p, "memory", "memory.usage_in_bytes", limit); err != nil {
			return nil, err
		}
	}
	limitW := func() {
		if limit != 0 {
			add(limitFile, i64(limit), "linux.resources.memory.limit")
		}
	}
	swapW := func() {
		if swap != 0 {
			add(swapFile, i64(swap), "linux.resources.memory.swap")
		}
	}
	swapFirst := false
	if limit != 0 && swap != 0 {
		if swap == -1 {
			swapFirst = true
		} else {
			cur, err := p.read("memory", limitFile)
			if err != nil {
				return nil, fmt.Errorf("linux.resources.memory: read current %s: %w", limitFile, err)
			}
			n, err := strconv.ParseUint(cur, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("linux.resources.memory: parse current %s %q: %w", limitFile, cur, err)
			}
			swapFirst = n < uint64(swap)
		}
	}
	if swapFirst {
		swapW()
		limitW()
	} else {
		limitW()
		swapW()
	}
	if m.Reservation != nil && *m.Reservation != 0 {
		add("memory.soft_limit_in_bytes", i64(*m.Reservation), "linux.resources.memory.reservation")
	}
	// m.Kernel is ignored: kernel memory limits are gone from the kernel.
	if m.KernelTCP != nil && *m.KernelTCP != 0 {
		add("memory.kmem.tcp.limit_in_bytes", i64(*m.KernelTCP), "linux.resources.memory.kernelTCP")
	}
	if m.Swappiness != nil {
		if *m.Swappiness > 100 {
			return nil, fmt.Errorf("linux.resources.memory.swappiness %d: want 0..100", *m.Swappiness)
		}
		add("memory.swappiness", u64(*m.Swappiness), "linux.resources.memory.swappiness")
	}
	if m.DisableOOMKiller != nil {
		add("memory.oom_control", boolDigit(*m.DisableOOMKiller), "linux.resources.memory.disableOOMKiller")
	}
	if m.UseHierarchy != nil {
		add("memory.use_hierarchy", boolDigit(*m.UseHierarchy), "linux.resources.memory.useHierarchy")
	}
	return ws, nil
}

// blkioV1 writes the CFQ-era files, or BFQ's where only those exist.
func blkioV1(b *specs.LinuxBlockIO, p prober) []write {
	var ws []write
	add := func(file, value, field string) {
		ws = append(ws, write{ctrl: "blkio", file: file, value: value, field: field})
	}
	weightFile, weightDevFile := "blkio.weight", "blkio.weight_device"
	if !p.exists("blkio", weightFile) && p.exists("blkio", "blkio.bfq.weight") {
		weightFile, weightDevFile = "blkio.bfq.weight", "blkio.bfq.weight_device"
	}
	if b.Weight != nil {
		add(weightFile, strconv.Itoa(int(*b.Weight)), "linux.resources.blockIO.weight")
	}
	if b.LeafWeight != nil {
		add("blkio.leaf_weight", strconv.Itoa(int(*b.LeafWeight)), "linux.resources.blockIO.leafWeight")
	}
	for i, d := range b.WeightDevice {
		field := fmt.Sprintf("linux.resources.blockIO.weightDevice[%d]", i)
		if d.Weight != nil {
			add(weightDevFile, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.Weight), field+".weight")
		}
		if d.LeafWeight != nil {
			add("blkio.leaf_weight_device", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.LeafWeight), field+".leafWeight")
		}
	}
	for _, t := range []struct {
		list  []specs.LinuxThrottleDevice
		file  string
		field string
	}{
		{b.ThrottleReadBpsDevice, "blkio.throttle.read_bps_device", "throttleReadBpsDevice"},
		{b.ThrottleWriteBpsDevice, "blkio.throttle.write_bps_device", "throttleWriteBpsDevice"},
		{b.ThrottleReadIOPSDevice, "blkio.throttle.read_iops_device", "throttleReadIOPSDevice"},
		{b.ThrottleWriteIOPSDevice, "blkio.throttle.write_iops_device", "throttleWriteIOPSDevice"},
	} {
		for i, d := range t.list {
			add(t.file, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate),
				fmt.Sprintf("linux.resources.blockIO.%s[%d]", t.field, i))
		}
	}
	return ws
}

// pairWrites writes a period and the budget that is checked against it:
// the period first (an EINVAL is then expected and ignored), the budget,
// and the period again. With only one of them set, just that one.
func pairWrites(ctrl, periodFile, period, periodField, budgetFile, budget, budgetField string) []write {
	switch {
	case period != "" && budget != "":
		return []write{
			{ctrl: ctrl, file: periodFile, value: period, field: periodField, mayFail: true},
			{ctrl: ctrl, file: budgetFile, value: budget, field: budgetField},
			{ctrl: ctrl, file: periodFile, value: period, field: periodField},
		}
	case period != "":
		return []write{{ctrl: ctrl, file: periodFile, value: period, field: periodField}}
	case budget != "":
		return []write{{ctrl: ctrl, file: budgetFile, value: budget, field: budgetField}}
	}
	return nil
}

// checkUsage refuses a memory limit below what the cgroup uses now
// (OCI checkBeforeUpdate).
func checkUsage(p prober, ctrl, file string, limit int64) error {
	cur, err := p.read(ctrl, file)
	if err != nil {
		return fmt.Errorf("linux.resources.memory.checkBeforeUpdate: read %s: %w", file, err)
	}
	usage, err := strconv.ParseUint(cur, 10, 64)
	if err != nil {
		return fmt.Errorf("linux.resources.memory.checkBeforeUpdate: parse %s %q: %w", file, cur, err)
	}
	if uint64(limit) < usage {
		return fmt.Errorf("linux.resources.memory.limit %d: below current usage %d (checkBeforeUpdate)", limit, usage)
	}
	return nil
}

// checkPagesize accepts the kernel's hugetlb size names: 64KB, 2MB, 1GB.
func checkPagesize(s string) error {
	n := len(s)
	ok := n >= 3 && s[n-1] == 'B' && strings.ContainsRune("KMG", rune(s[n-2])) && s[0] >= '1' && s[0] <= '9'
	for i := 1; ok && i < n-2; i++ {
		ok = s[i] >= '0' && s[i] <= '9'
	}
	if !ok {
		return fmt.Errorf("%q: want a size like 2MB or 1GB", s)
	}
	return nil
}

// pidsMax maps the OCI limit to pids.max: zero or negative means no limit.
func pidsMax(limit int64) string {
	if limit <= 0 {
		return "max"
	}
	return i64(limit)
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }
func i64(v int64) string  { return strconv.FormatInt(v, 10) }

// optU64 and optI64 format a set, non-zero value; "" means leave it alone
// (zero means "unset" for these fields, as in runc).
func optU64(v *uint64) string {
	if v == nil || *v == 0 {
		return ""
	}
	return u64(*v)
}

func optI64(v *int64) string {
	if v == nil || *v == 0 {
		return ""
	}
	return i64(*v)
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// sortedKeys returns m's keys in order, for plans that do not depend on map
// iteration order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
