package containerspec

import (
	"path"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// MinMemory is Docker's smallest --memory and --memory-reservation.
const MinMemory = 6 << 20

// CFS bounds (microseconds), as the kernel and Docker enforce them.
const (
	minCPUPeriod = 1000
	maxCPUPeriod = 1000000
	minCPUQuota  = 1000
	minCPUShares = 2
	maxCPUShares = 262144
	nanoPeriod   = 100000 // the period --cpus uses
)

func i64p(v int64) *int64   { return &v }
func u64p(v uint64) *uint64 { return &v }
func u16p(v uint16) *uint16 { return &v }
func u32p(v uint32) *uint32 { return &v }
func boolp(v bool) *bool    { return &v }

// memory renders --memory, --memory-swap, --memory-reservation,
// --memory-swappiness and --oom-kill-disable with Docker's checks and its
// default of a swap limit twice the memory limit.
func memory(r *container.Resources, noSwapLimit bool) (*specs.LinuxMemory, error) {
	if r.Memory < 0 {
		return nil, invalid("--memory", "%d: must not be negative", r.Memory)
	}
	if r.Memory > 0 && r.Memory < MinMemory {
		return nil, invalid("--memory", "minimum memory limit allowed is 6MB")
	}
	if r.MemorySwap < -1 {
		return nil, invalid("--memory-swap", "%d: want -1 (unlimited) or a size", r.MemorySwap)
	}
	if r.MemorySwap > 0 && r.Memory == 0 {
		return nil, invalid("--memory-swap", "you should always set the memory limit (--memory) when using a memoryswap limit")
	}
	if r.MemorySwap > 0 && r.MemorySwap < r.Memory {
		return nil, invalid("--memory-swap", "minimum memoryswap limit should be larger than memory limit (it counts memory plus swap)")
	}
	if r.MemoryReservation < 0 {
		return nil, invalid("--memory-reservation", "%d: must not be negative", r.MemoryReservation)
	}
	if r.MemoryReservation > 0 && r.MemoryReservation < MinMemory {
		return nil, invalid("--memory-reservation", "minimum memory reservation allowed is 6MB")
	}
	if r.Memory > 0 && r.MemoryReservation > r.Memory {
		return nil, invalid("--memory-reservation", "the memory limit (--memory) can not be less than the memory reservation")
	}
	if s := r.MemorySwappiness; s != nil && *s != -1 && (*s < 0 || *s > 100) {
		return nil, invalid("--memory-swappiness", "invalid value %d: valid memory swappiness range is 0-100", *s)
	}
	var m specs.LinuxMemory
	set := false
	if r.Memory > 0 {
		m.Limit, set = i64p(r.Memory), true
		swap := r.MemorySwap
		if swap == 0 {
			swap = 2 * r.Memory
		}
		if swap > 0 && !noSwapLimit {
			m.Swap = i64p(swap)
		}
	}
	if r.MemoryReservation > 0 {
		m.Reservation, set = i64p(r.MemoryReservation), true
	}
	if s := r.MemorySwappiness; s != nil && *s != -1 {
		m.Swappiness, set = u64p(uint64(*s)), true
	}
	if r.OomKillDisable != nil {
		m.DisableOOMKiller, set = boolp(*r.OomKillDisable), true
	}
	if !set {
		return nil, nil
	}
	return &m, nil
}

// validCPUList checks the kernel's list syntax ("0-2,4", "1").
func validCPUList(s string) bool {
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return false
		}
		if isRange {
			b, err := strconv.ParseUint(hi, 10, 16)
			if err != nil || b < a {
				return false
			}
		}
	}
	return true
}

// cpu renders --cpus, --cpu-shares, --cpu-quota, --cpu-period,
// --cpu-rt-*, --cpuset-cpus and --cpuset-mems.
func cpu(r *container.Resources) (*specs.LinuxCPU, error) {
	if r.NanoCPUs < 0 {
		return nil, invalid("--cpus", "must not be negative")
	}
	if r.NanoCPUs > 0 && r.CPUPeriod > 0 {
		return nil, invalid("--cpus", "conflicting options: --cpus and --cpu-period cannot both be set")
	}
	if r.NanoCPUs > 0 && r.CPUQuota > 0 {
		return nil, invalid("--cpus", "conflicting options: --cpus and --cpu-quota cannot both be set")
	}
	if r.CPUPeriod != 0 && (r.CPUPeriod < minCPUPeriod || r.CPUPeriod > maxCPUPeriod) {
		return nil, invalid("--cpu-period", "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
	}
	if r.CPUQuota > 0 && r.CPUQuota < minCPUQuota {
		return nil, invalid("--cpu-quota", "CPU cfs quota can not be less than 1ms (i.e. 1000)")
	}
	if r.CPUQuota < -1 {
		return nil, invalid("--cpu-quota", "%d: want -1 (unlimited) or a quota in microseconds", r.CPUQuota)
	}
	if r.CPUShares < 0 {
		return nil, invalid("--cpu-shares", "%d: must not be negative", r.CPUShares)
	}
	if r.CpusetCpus != "" && !validCPUList(r.CpusetCpus) {
		return nil, invalid("--cpuset-cpus", "invalid value %q: want a list such as 0-3,6", r.CpusetCpus)
	}
	if r.CpusetMems != "" && !validCPUList(r.CpusetMems) {
		return nil, invalid("--cpuset-mems", "invalid value %q: want a list such as 0-1", r.CpusetMems)
	}
	if r.CPURealtimePeriod < 0 || r.CPURealtimeRuntime < -1 {
		return nil, invalid("--cpu-rt-period", "the real-time period and runtime must not be negative")
	}
	if r.CPURealtimePeriod > 0 && r.CPURealtimeRuntime > r.CPURealtimePeriod {
		return nil, invalid("--cpu-rt-runtime", "the real-time runtime cannot be higher than the real-time period")
	}
	var c specs.LinuxCPU
	set := false
	if r.NanoCPUs > 0 {
		quota := r.NanoCPUs * nanoPeriod / 1e9
		if quota < minCPUQuota {
			return nil, invalid("--cpus", "range of CPUs starts at 0.01")
		}
		c.Period, c.Quota, set = u64p(nanoPeriod), i64p(quota), true
	}
	if r.CPUShares > 0 {
		// Docker clamps to what the kernel accepts rather than failing.
		c.Shares, set = u64p(uint64(min(max(r.CPUShares, minCPUShares), maxCPUShares))), true
	}
	if r.CPUQuota != 0 {
		c.Quota, set = i64p(r.CPUQuota), true
	}
	if r.CPUPeriod != 0 {
		c.Period, set = u64p(uint64(r.CPUPeriod)), true
	}
	if r.CPURealtimePeriod != 0 {
		c.RealtimePeriod, set = u64p(uint64(r.CPURealtimePeriod)), true
	}
	if r.CPURealtimeRuntime != 0 {
		c.RealtimeRuntime, set = i64p(r.CPURealtimeRuntime), true
	}
	if r.CpusetCpus != "" {
		c.Cpus, set = r.CpusetCpus, true
	}
	if r.CpusetMems != "" {
		c.Mems, set = r.CpusetMems, true
	}
	if !set {
		return nil, nil
	}
	return &c, nil
}

// pids renders --pids-limit: nil leaves it alone, 0 or less is unlimited.
func pids(r *container.Resources) *specs.LinuxPids {
	if r.PidsLimit == nil {
		return nil
	}
	if *r.PidsLimit <= 0 {
		return &specs.LinuxPids{Limit: i64p(-1)}
	}
	return &specs.LinuxPids{Limit: i64p(*r.PidsLimit)}
}

// blockDevice returns the single block device node at a host path.
func (in *Input) blockDevice(flag, p string) (Device, error) {
	nodes, ok := in.DeviceNodes[p]
	if !ok {
		return Device{}, invalid(flag, "no device node given for %s (the engine stats it)", p)
	}
	if len(nodes) != 1 || nodes[0].Type != "b" {
		return Device{}, invalid(flag, "%s is not a block device", p)
	}
	return nodes[0], nil
}

func (in *Input) throttle(flag string, list []*blkiodev.ThrottleDevice) ([]specs.LinuxThrottleDevice, error) {
	var out []specs.LinuxThrottleDevice
	for _, t := range list {
		if t == nil {
			continue
		}
		d, err := in.blockDevice(flag, t.Path)
		if err != nil {
			return nil, err
		}
		var td specs.LinuxThrottleDevice
		td.Major, td.Minor, td.Rate = d.Major, d.Minor, t.Rate
		out = append(out, td)
	}
	return out, nil
}

// blockIO renders --blkio-weight, --blkio-weight-device and the
// --device-{read,write}-{bps,iops} throttles.
func (in *Input) blockIO(r *container.Resources) (*specs.LinuxBlockIO, error) {
	if r.BlkioWeight != 0 && (r.BlkioWeight < 10 || r.BlkioWeight > 1000) {
		return nil, invalid("--blkio-weight", "range of blkio weight is from 10 to 1000")
	}
	var b specs.LinuxBlockIO
	set := false
	if r.BlkioWeight != 0 {
		b.Weight, set = u16p(r.BlkioWeight), true
	}
	for _, w := range r.BlkioWeightDevice {
		if w == nil {
			continue
		}
		if w.Weight < 10 || w.Weight > 1000 {
			return nil, invalid("--blkio-weight-device", "%s:%d: range of blkio weight is from 10 to 1000", w.Path, w.Weight)
		}
		d, err := in.blockDevice("--blkio-weight-device", w.Path)
		if err != nil {
			return nil, err
		}
		var wd specs.LinuxWeightDevice
		wd.Major, wd.Minor, wd.Weight = d.Major, d.Minor, u16p(w.Weight)
		b.WeightDevice, set = append(b.WeightDevice, wd), true
	}
	for _, t := range []struct {
		flag string
		list []*blkiodev.ThrottleDevice
		dst  *[]specs.LinuxThrottleDevice
	}{
		{"--device-read-bps", r.BlkioDeviceReadBps, &b.ThrottleReadBpsDevice},
		{"--device-write-bps", r.BlkioDeviceWriteBps, &b.ThrottleWriteBpsDevice},
		{"--device-read-iops", r.BlkioDeviceReadIOps, &b.ThrottleReadIOPSDevice},
		{"--device-write-iops", r.BlkioDeviceWriteIOps, &b.ThrottleWriteIOPSDevice},
	} {
		list, err := in.throttle(t.flag, t.list)
		if err != nil {
			return nil, err
		}
		if len(list) > 0 {
			*t.dst, set = list, true
		}
	}
	if !set {
		return nil, nil
	}
	return &b, nil
}

// defaultDeviceRules are Docker's: deny everything, allow the devices every
// container has, deny fuse. The runtime appends its own allow rules (mknod,
// ptys, ptmx) after these.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	allow := func(major, minor int64) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64p(major), Minor: i64p(minor), Access: "rwm"}
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		allow(1, 5), // zero
		allow(1, 3), // null
		allow(1, 9), // urandom
		allow(1, 8), // random
		allow(5, 0), // tty
		allow(5, 1), // console
		{Allow: false, Type: "c", Major: i64p(10), Minor: i64p(229), Access: "rwm"}, // fuse
	}
}

// validPermissions checks a device cgroup access string: some of r, w, m.
func validPermissions(p string) bool {
	if p == "" || len(p) > 3 {
		return false
	}
	seen := map[rune]bool{}
	for _, c := range p {
		if (c != 'r' && c != 'w' && c != 'm') || seen[c] {
			return false
		}
		seen[c] = true
	}
	return true
}

// parseCgroupRule parses a --device-cgroup-rule: "TYPE MAJOR:MINOR ACCESS"
// with TYPE a, b or c and * for any number.
func parseCgroupRule(rule string) (specs.LinuxDeviceCgroup, error) {
	bad := invalid("--device-cgroup-rule", "invalid rule %q: want \"a|b|c MAJOR:MINOR rwm\" (* for any number)", rule)
	f := strings.Fields(rule)
	if len(f) != 3 || len(f[0]) != 1 || !strings.Contains("abc", f[0]) || !validPermissions(f[2]) {
		return specs.LinuxDeviceCgroup{}, bad
	}
	maj, mnr, ok := strings.Cut(f[1], ":")
	if !ok {
		return specs.LinuxDeviceCgroup{}, bad
	}
	num := func(s string) (*int64, bool) {
		if s == "*" {
			return nil, true
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return nil, false
		}
		return &v, true
	}
	r := specs.LinuxDeviceCgroup{Allow: true, Type: f[0], Access: f[2]}
	if r.Major, ok = num(maj); !ok {
		return specs.LinuxDeviceCgroup{}, bad
	}
	if r.Minor, ok = num(mnr); !ok {
		return specs.LinuxDeviceCgroup{}, bad
	}
	return r, nil
}

// specDevice turns a host node into a device of the container at p.
func specDevice(d Device, p string) specs.LinuxDevice {
	mode := d.Mode.Perm()
	return specs.LinuxDevice{Path: p, Type: d.Type, Major: d.Major, Minor: d.Minor, FileMode: &mode, UID: u32p(d.UID), GID: u32p(d.GID)}
}

// devices renders --device, --device-cgroup-rule and --privileged: the
// nodes the container gets and the device cgroup's rules.
func (in *Input) devices(h *container.HostConfig) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	var devs []specs.LinuxDevice
	rules := defaultDeviceRules()
	if h.Privileged {
		for _, d := range in.HostDevices {
			devs = append(devs, specDevice(d, d.Path))
		}
		rules = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	for _, dm := range h.Devices {
		host := dm.PathOnHost
		if !path.IsAbs(host) {
			return nil, nil, invalid("--device", "%q: the host path must be absolute", host)
		}
		ctr := dm.PathInContainer
		if ctr == "" {
			ctr = host
		}
		if !path.IsAbs(ctr) {
			return nil, nil, invalid("--device", "%q: the path in the container must be absolute", ctr)
		}
		perms := dm.CgroupPermissions
		if perms == "" {
			perms = "rwm"
		}
		if !validPermissions(perms) {
			return nil, nil, invalid("--device", "%s: invalid permissions %q (some of r, w and m)", host, perms)
		}
		nodes, ok := in.DeviceNodes[host]
		if !ok {
			return nil, nil, invalid("--device", "no device node given for %s (the engine stats it)", host)
		}
		if len(nodes) == 0 {
			return nil, nil, invalid("--device", "no device nodes found at %s", host)
		}
		for _, n := range nodes {
			p := ctr
			if n.Path != host {
				rel := strings.TrimPrefix(n.Path, host+"/")
				if rel == n.Path {
					return nil, nil, invalid("--device", "node %s is not below %s", n.Path, host)
				}
				p = path.Join(ctr, rel)
			}
			if n.Type != "c" && n.Type != "b" {
				return nil, nil, invalid("--device", "%s is not a device node", n.Path)
			}
			// Privileged containers have every host device already; a
			// device mapped to the same path is not added twice.
			if h.Privileged && p == n.Path {
				continue
			}
			devs = append(devs, specDevice(n, p))
			if !h.Privileged {
				rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: n.Type, Major: i64p(n.Major), Minor: i64p(n.Minor), Access: perms})
			}
		}
	}
	if !h.Privileged {
		for _, r := range h.DeviceCgroupRules {
			rule, err := parseCgroupRule(r)
			if err != nil {
				return nil, nil, err
			}
			rules = append(rules, rule)
		}
	}
	return devs, rules, nil
}
