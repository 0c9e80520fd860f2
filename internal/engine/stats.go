package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/cgroups"
)

// Sample is one reading of a container's cgroup, straight from the
// cgroup files (no daemon, no runtime process).
type Sample struct {
	Read        time.Time
	CPUTotal    uint64 // nanoseconds of CPU time used
	MemoryUsage uint64 // bytes, without the page cache (like Docker)
	MemoryLimit uint64 // bytes (the host's memory when unlimited)
	Pids        uint64
	BlockRead   uint64
	BlockWrite  uint64
	OnlineCPUs  int
}

// Stats reads a running container's resource usage.
func (e *Engine) Stats(ctx context.Context, ref string) (*Container, *Sample, error) {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		return c, &Sample{Read: time.Now()}, nil
	}
	cg, err := cgroups.New(cgroupsPath(c), cgroups.Options{})
	if err != nil {
		return nil, nil, err
	}
	st, err := cg.Stats()
	if err != nil {
		return nil, nil, err
	}
	s := &Sample{Read: time.Now(), CPUTotal: st.CPU.Usage.Total, Pids: st.Pids.Current, OnlineCPUs: onlineCPUs()}
	s.MemoryUsage = st.Memory.Usage.Usage
	// Docker shows usage without the inactive page cache.
	for _, k := range []string{"total_inactive_file", "inactive_file"} {
		if v, ok := st.Memory.Raw[k]; ok && v < s.MemoryUsage {
			s.MemoryUsage -= v
			break
		}
	}
	s.MemoryLimit = st.Memory.Usage.Limit
	if mem := hostMemory(); s.MemoryLimit == 0 || s.MemoryLimit > mem {
		s.MemoryLimit = mem
	}
	for _, e := range st.Blkio.IoServiceBytesRecursive {
		switch e.Op {
		case "Read", "read":
			s.BlockRead += e.Value
		case "Write", "write":
			s.BlockWrite += e.Value
		}
	}
	return c, s, nil
}

// CPUPercent is Docker's CPU %: the container's share of the host's CPU
// time between two samples, times the number of CPUs.
func CPUPercent(prev, cur *Sample) float64 {
	if prev == nil {
		return 0
	}
	dt := cur.Read.Sub(prev.Read)
	if prev.Read.IsZero() || dt <= 0 || cur.CPUTotal < prev.CPUTotal {
		return 0
	}
	return float64(cur.CPUTotal-prev.CPUTotal) / float64(dt.Nanoseconds()) * 100
}

// Update changes a container's resource limits (and restart policy),
// recorded for its next start and applied now if it runs. It returns
// Docker's warnings for what the host cannot apply and was discarded.
func (e *Engine) Update(ctx context.Context, ref string, r container.Resources, rp *container.RestartPolicy) ([]string, error) {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return nil, err
	}
	warnings, err := adaptUpdate(c.ID, c.HostConfig, &r, currentHostSupport())
	if err != nil {
		return warnings, err
	}
	old := *c.HostConfig
	err = e.saveLocked(ctx, c, func(cur *Container) {
		h := cur.HostConfig
		if r.Memory != 0 {
			h.Memory = r.Memory
		}
		if r.MemorySwap != 0 {
			h.MemorySwap = r.MemorySwap
		}
		if r.MemoryReservation != 0 {
			h.MemoryReservation = r.MemoryReservation
		}
		if r.NanoCPUs != 0 {
			h.NanoCPUs, h.CPUQuota, h.CPUPeriod = r.NanoCPUs, 0, 0
		}
		if r.CPUShares != 0 {
			h.CPUShares = r.CPUShares
		}
		if r.CPUQuota != 0 {
			h.CPUQuota, h.NanoCPUs = r.CPUQuota, 0
		}
		if r.CPUPeriod != 0 {
			h.CPUPeriod, h.NanoCPUs = r.CPUPeriod, 0
		}
		if r.CpusetCpus != "" {
			h.CpusetCpus = r.CpusetCpus
		}
		if r.CpusetMems != "" {
			h.CpusetMems = r.CpusetMems
		}
		if r.PidsLimit != nil {
			h.PidsLimit = r.PidsLimit
		}
		if r.BlkioWeight != 0 {
			h.BlkioWeight = r.BlkioWeight
		}
		if rp != nil {
			h.RestartPolicy = *rp
		}
	})
	if err != nil {
		return warnings, err
	}
	e.containerEvent(c, events.ActionUpdate, nil)
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		return warnings, nil
	}
	spec, err := e.renderSpec(ctx, c, e.rootfsDir(c.ID))
	if err != nil {
		_ = e.saveLocked(ctx, c, func(cur *Container) { *cur.HostConfig = old })
		return warnings, err
	}
	b, err := json.Marshal(spec.Linux.Resources)
	if err != nil {
		return warnings, err
	}
	cmd := exec.CommandContext(ctx, e.runtimePath(), "--root", e.runtimeRoot(), "update", "-r", "-", c.ID)
	cmd.Stdin = bytes.NewReader(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = e.saveLocked(ctx, c, func(cur *Container) { *cur.HostConfig = old })
		return warnings, fmt.Errorf("update %s: %s", c.Name, bytes.TrimSpace(out))
	}
	return warnings, nil
}

func onlineCPUs() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 1
	}
	return set.Count()
}

// hostMemory is the machine's memory in bytes.
func hostMemory() uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}
