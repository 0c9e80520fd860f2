package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Stats is a cgroup's usage, with the JSON names of runc's types.Stats, the
// "data" of `runc events --stats` that containerd decodes.
type Stats struct {
	CPU     CPU                `json:"cpu"`
	Memory  Memory             `json:"memory"`
	Pids    Pids               `json:"pids"`
	Blkio   Blkio              `json:"blkio"`
	Hugetlb map[string]Hugetlb `json:"hugetlb"`
}

// CPU is cpu time used and throttling.
type CPU struct {
	Usage      CPUUsage   `json:"usage,omitempty"`
	Throttling Throttling `json:"throttling,omitempty"`
}

// CPUUsage is in nanoseconds. The per-cpu lists exist on v1 only.
type CPUUsage struct {
	Total        uint64   `json:"total,omitempty"`
	Percpu       []uint64 `json:"percpu,omitempty"`
	PercpuKernel []uint64 `json:"percpu_kernel,omitempty"`
	PercpuUser   []uint64 `json:"percpu_user,omitempty"`
	Kernel       uint64   `json:"kernel"`
	User         uint64   `json:"user"`
}

// Throttling counts CFS periods; ThrottledTime is in nanoseconds.
type Throttling struct {
	Periods          uint64 `json:"periods,omitempty"`
	ThrottledPeriods uint64 `json:"throttledPeriods,omitempty"`
	ThrottledTime    uint64 `json:"throttledTime,omitempty"`
}

// Memory is memory use in bytes. Swap is memory+swap on both v1 and v2, as
// in runc. Raw holds memory.stat as it is.
type Memory struct {
	Cache      uint64            `json:"cache,omitempty"`
	Usage      MemoryEntry       `json:"usage,omitempty"`
	Swap       MemoryEntry       `json:"swap,omitempty"`
	Kernel     MemoryEntry       `json:"kernel,omitempty"`
	KernelTCP  MemoryEntry       `json:"kernelTCP,omitempty"`
	Raw        map[string]uint64 `json:"raw,omitempty"`
	EventCount MemoryEvents      `json:"event_count"`
}

// MemoryEntry is one memory counter. Failcnt on v2 is memory.events "max"
// (times the limit was hit).
type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// MemoryEvents are v2's memory.events counters; on v1 only OOMKill (from
// memory.oom_control) is known.
type MemoryEvents struct {
	Low     uint64 `json:"low"`
	High    uint64 `json:"high"`
	Max     uint64 `json:"max"`
	OOM     uint64 `json:"oom"`
	OOMKill uint64 `json:"oom_kill"`
}

// Pids is the number of tasks and the limit (0 for none).
type Pids struct {
	Current uint64 `json:"current,omitempty"`
	Limit   uint64 `json:"limit,omitempty"`
}

// Blkio lists per-device I/O counters.
type Blkio struct {
	IoServiceBytesRecursive []BlkioEntry `json:"ioServiceBytesRecursive,omitempty"`
	IoServicedRecursive     []BlkioEntry `json:"ioServicedRecursive,omitempty"`
}

// BlkioEntry is one counter of one device; Op is "Read", "Write"...
type BlkioEntry struct {
	Major uint64 `json:"major,omitempty"`
	Minor uint64 `json:"minor,omitempty"`
	Op    string `json:"op,omitempty"`
	Value uint64 `json:"value,omitempty"`
}

// Hugetlb is one page size's usage; Max (peak usage) exists on v1 only.
type Hugetlb struct {
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// userHZ is the unit of cpuacct.stat: USER_HZ, 100 on every Linux ABI.
const userHZ = 100

// statsV1 reads the v1 files of the controllers dir knows. A file the
// kernel does not have (no swap accounting, an old kernel) leaves its
// counter zero; a missing cgroup is an error.
func statsV1(dir func(ctrl string) string) (*Stats, error) {
	s := &Stats{Hugetlb: map[string]Hugetlb{}}
	r := &statReader{}
	if d := dir("cpuacct"); d != "" {
		r.must(d)
		s.CPU.Usage.Total = r.uint(d, "cpuacct.usage")
		s.CPU.Usage.Percpu = r.uints(d, "cpuacct.usage_percpu")
		s.CPU.Usage.PercpuKernel = r.uints(d, "cpuacct.usage_percpu_sys")
		s.CPU.Usage.PercpuUser = r.uints(d, "cpuacct.usage_percpu_user")
		kv := r.keyValues(d, "cpuacct.stat")
		s.CPU.Usage.User = kv["user"] * (1e9 / userHZ)
		s.CPU.Usage.Kernel = kv["system"] * (1e9 / userHZ)
	}
	if d := dir("cpu"); d != "" {
		r.must(d)
		kv := r.keyValues(d, "cpu.stat")
		s.CPU.Throttling = Throttling{kv["nr_periods"], kv["nr_throttled"], kv["throttled_time"]}
	}
	if d := dir("memory"); d != "" {
		r.must(d)
		s.Memory.Raw = r.keyValues(d, "memory.stat")
		s.Memory.Cache = s.Memory.Raw["cache"]
		entry := func(prefix string) MemoryEntry {
			return MemoryEntry{
				Limit:   r.uint(d, prefix+".limit_in_bytes"),
				Usage:   r.uint(d, prefix+".usage_in_bytes"),
				Max:     r.uint(d, prefix+".max_usage_in_bytes"),
				Failcnt: r.uint(d, prefix+".failcnt"),
			}
		}
		s.Memory.Usage = entry("memory")
		s.Memory.Swap = entry("memory.memsw")
		s.Memory.Kernel = entry("memory.kmem")
		s.Memory.KernelTCP = entry("memory.kmem.tcp")
		s.Memory.EventCount.OOMKill = r.keyValues(d, "memory.oom_control")["oom_kill"]
	}
	if d := dir("pids"); d != "" {
		r.must(d)
		s.Pids = Pids{Current: r.uint(d, "pids.current"), Limit: r.uint(d, "pids.max")}
	}
	if d := dir("blkio"); d != "" {
		r.must(d)
		// BFQ's counters where BFQ runs, else the throttle layer's, which
		// see every I/O.
		for _, prefix := range []string{"blkio.bfq.", "blkio.throttle."} {
			s.Blkio.IoServiceBytesRecursive = r.blkio(d, prefix+"io_service_bytes_recursive")
			s.Blkio.IoServicedRecursive = r.blkio(d, prefix+"io_serviced_recursive")
			if len(s.Blkio.IoServiceBytesRecursive) > 0 {
				break
			}
		}
	}
	if d := dir("hugetlb"); d != "" {
		r.must(d)
		for _, size := range hugetlbSizes(d, ".limit_in_bytes") {
			p := "hugetlb." + size
			s.Hugetlb[size] = Hugetlb{
				Usage:   r.uint(d, p+".usage_in_bytes"),
				Max:     r.uint(d, p+".max_usage_in_bytes"),
				Failcnt: r.uint(d, p+".failcnt"),
			}
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("read cgroup v1 stats: %w", r.err)
	}
	return s, nil
}

// statsV2 reads the cgroup2 files in dir.
func statsV2(dir string) (*Stats, error) {
	s := &Stats{Hugetlb: map[string]Hugetlb{}}
	r := &statReader{}
	r.must(dir)
	cpu := r.keyValues(dir, "cpu.stat")
	s.CPU.Usage.Total = cpu["usage_usec"] * 1000
	s.CPU.Usage.User = cpu["user_usec"] * 1000
	s.CPU.Usage.Kernel = cpu["system_usec"] * 1000
	s.CPU.Throttling = Throttling{cpu["nr_periods"], cpu["nr_throttled"], cpu["throttled_usec"] * 1000}

	s.Memory.Raw = r.keyValues(dir, "memory.stat")
	s.Memory.Cache = s.Memory.Raw["file"]
	events := r.keyValues(dir, "memory.events")
	s.Memory.EventCount = MemoryEvents{events["low"], events["high"], events["max"], events["oom"], events["oom_kill"]}
	s.Memory.Usage = MemoryEntry{
		Limit:   r.uint(dir, "memory.max"),
		Usage:   r.uint(dir, "memory.current"),
		Max:     r.uint(dir, "memory.peak"),
		Failcnt: events["max"],
	}
	// v1 reports memory+swap; do the same.
	swap := MemoryEntry{Usage: r.uint(dir, "memory.swap.current"), Limit: r.uint(dir, "memory.swap.max")}
	swap.Usage += s.Memory.Usage.Usage
	if swap.Limit != math.MaxUint64 && s.Memory.Usage.Limit != math.MaxUint64 {
		swap.Limit += s.Memory.Usage.Limit
	} else {
		swap.Limit = math.MaxUint64
	}
	s.Memory.Swap = swap

	pidsMax := r.uint(dir, "pids.max")
	if pidsMax == math.MaxUint64 {
		pidsMax = 0
	}
	s.Pids = Pids{Current: r.uint(dir, "pids.current"), Limit: pidsMax}

	s.Blkio = r.ioStat(dir)
	for _, size := range hugetlbSizes(dir, ".max") {
		p := "hugetlb." + size
		s.Hugetlb[size] = Hugetlb{
			Usage:   r.uint(dir, p+".current"),
			Failcnt: r.keyValues(dir, p+".events")["max"],
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("read cgroup v2 stats: %w", r.err)
	}
	return s, nil
}

// hugetlbSizes finds the page sizes a cgroup has files for: "2MB", "1GB".
func hugetlbSizes(dir, suffix string) []string {
	matches, _ := filepath.Glob(filepath.Join(dir, "hugetlb.*"+suffix))
	var sizes []string
	for _, m := range matches {
		size := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), "hugetlb."), suffix)
		if !strings.Contains(size, ".") { // not hugetlb.2MB.rsvd.max
			sizes = append(sizes, size)
		}
	}
	sort.Strings(sizes)
	return sizes
}

// statReader reads counter files, keeping the first real error. A missing
// file reads as zero: kernels differ in which counters they have.
type statReader struct {
	err error
}

// must records an error if the cgroup directory itself is gone.
func (r *statReader) must(dir string) {
	if _, err := os.Stat(dir); err != nil && r.err == nil {
		r.err = err
	}
}

func (r *statReader) read(dir, file string) (string, bool) {
	data, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && r.err == nil {
			r.err = err
		}
		return "", false
	}
	return string(data), true
}

func (r *statReader) fail(dir, file string, err error) {
	if r.err == nil {
		r.err = fmt.Errorf("parse %s: %w", filepath.Join(dir, file), err)
	}
}

// uint reads a single number; "max" is MaxUint64.
func (r *statReader) uint(dir, file string) uint64 {
	s, ok := r.read(dir, file)
	if !ok {
		return 0
	}
	v, err := parseCounter(strings.TrimSpace(s))
	if err != nil {
		r.fail(dir, file, err)
	}
	return v
}

// uints reads a space-separated list of numbers.
func (r *statReader) uints(dir, file string) []uint64 {
	s, ok := r.read(dir, file)
	if !ok {
		return nil
	}
	var out []uint64
	for _, f := range strings.Fields(s) {
		v, err := parseCounter(f)
		if err != nil {
			r.fail(dir, file, err)
			return nil
		}
		out = append(out, v)
	}
	return out
}

// keyValues reads "key value" lines.
func (r *statReader) keyValues(dir, file string) map[string]uint64 {
	s, ok := r.read(dir, file)
	if !ok {
		return map[string]uint64{}
	}
	kv, err := parseKeyValues(s)
	if err != nil {
		r.fail(dir, file, err)
	}
	return kv
}

// blkio reads v1 "major:minor Op value" lines; the "Total" line without a
// device is left out.
func (r *statReader) blkio(dir, file string) []BlkioEntry {
	s, ok := r.read(dir, file)
	if !ok {
		return nil
	}
	var out []BlkioEntry
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		major, minor, err := parseDevNum(f[0])
		if err != nil {
			r.fail(dir, file, err)
			return nil
		}
		v, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			r.fail(dir, file, err)
			return nil
		}
		out = append(out, BlkioEntry{Major: major, Minor: minor, Op: f[1], Value: v})
	}
	return out
}

// ioStat reads v2 io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...") into
// v1's shape.
func (r *statReader) ioStat(dir string) Blkio {
	var b Blkio
	s, ok := r.read(dir, "io.stat")
	if !ok {
		return b
	}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		major, minor, err := parseDevNum(f[0])
		if err != nil {
			r.fail(dir, "io.stat", err)
			return Blkio{}
		}
		for _, kv := range f[1:] {
			k, vs, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			v, err := strconv.ParseUint(vs, 10, 64)
			if err != nil {
				continue // a non-counter key such as cost.* on some kernels
			}
			e := BlkioEntry{Major: major, Minor: minor, Value: v}
			switch k {
			case "rbytes":
				e.Op = "Read"
				b.IoServiceBytesRecursive = append(b.IoServiceBytesRecursive, e)
			case "wbytes":
				e.Op = "Write"
				b.IoServiceBytesRecursive = append(b.IoServiceBytesRecursive, e)
			case "rios":
				e.Op = "Read"
				b.IoServicedRecursive = append(b.IoServicedRecursive, e)
			case "wios":
				e.Op = "Write"
				b.IoServicedRecursive = append(b.IoServicedRecursive, e)
			}
		}
	}
	return b
}

func parseDevNum(s string) (major, minor uint64, err error) {
	ma, mi, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("device %q: want major:minor", s)
	}
	if major, err = strconv.ParseUint(ma, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("device %q: %w", s, err)
	}
	if minor, err = strconv.ParseUint(mi, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("device %q: %w", s, err)
	}
	return major, minor, nil
}

// parseCounter parses a cgroup number; "max" is MaxUint64. A negative
// value (v1 writes -1 back as a huge number, but some files do say -1)
// reads as 0.
func parseCounter(s string) (uint64, error) {
	if s == "max" {
		return math.MaxUint64, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		if _, ierr := strconv.ParseInt(s, 10, 64); ierr == nil {
			return 0, nil
		}
		return 0, err
	}
	return v, nil
}

// parseKeyValues parses "key value" lines (memory.stat, cpu.stat,
// cgroup.events...). Lines whose value is not a number are skipped.
func parseKeyValues(s string) (map[string]uint64, error) {
	kv := map[string]uint64{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("line %q: want \"key value\"", sc.Text())
		}
		v, err := parseCounter(f[1])
		if err != nil {
			continue
		}
		kv[f[0]] = v
	}
	return kv, sc.Err()
}

// readKeyValues reads a "key value" file.
func readKeyValues(path string) (map[string]uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kv, err := parseKeyValues(string(data))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return kv, nil
}
