package runtime

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/cgroups"
)

// Pause freezes every process of a running container.
func (r *Runtime) Pause(id string) error { return r.freeze(id, true) }

// Resume thaws a paused container.
func (r *Runtime) Resume(id string) error { return r.freeze(id, false) }

func (r *Runtime) freeze(id string, frozen bool) error {
	if err := CheckID(id); err != nil {
		return err
	}
	dir := r.dir(id)
	lk, err := lock(dir, id)
	if err != nil {
		return err
	}
	defer lk.Close()
	st, err := readState(dir, id)
	if err != nil {
		return err
	}
	s := r.status(st)
	if frozen && s != "running" && s != "created" {
		return fmt.Errorf("%w: cannot pause a container that is %s", ErrState, s)
	}
	if !frozen && s != StatusPaused {
		return fmt.Errorf("%w: cannot resume a container that is %s", ErrState, s)
	}
	cg, err := r.cgroup(st)
	if err != nil {
		return err
	}
	return cg.Freeze(frozen)
}

// Pids lists the host pids of every process of the container.
func (r *Runtime) Pids(id string) ([]int, error) {
	st, err := r.loadLive(id)
	if err != nil {
		return nil, err
	}
	cg, err := r.cgroup(st)
	if err != nil {
		return nil, err
	}
	return cg.Pids()
}

// Stats reads the container's cgroup statistics.
func (r *Runtime) Stats(id string) (*cgroups.Stats, error) {
	st, err := r.loadLive(id)
	if err != nil {
		return nil, err
	}
	cg, err := r.cgroup(st)
	if err != nil {
		return nil, err
	}
	return cg.Stats()
}

// Update changes the resource limits of a container and records them.
func (r *Runtime) Update(id string, res *specs.LinuxResources) error {
	if err := CheckID(id); err != nil {
		return err
	}
	dir := r.dir(id)
	lk, err := lock(dir, id)
	if err != nil {
		return err
	}
	defer lk.Close()
	st, err := readState(dir, id)
	if err != nil {
		return err
	}
	if s := r.status(st); s == "stopped" || s == "creating" {
		return fmt.Errorf("%w: cannot update a container that is %s", ErrState, s)
	}
	cg, err := r.cgroup(st)
	if err != nil {
		return err
	}
	spec, err := readConfig(dir, id)
	if err != nil {
		return err
	}
	if err := cg.Set(res); err != nil {
		return err
	}
	spec.Linux.Resources = mergeResources(spec.Linux.Resources, res)
	return writeConfig(dir, spec)
}

func (r *Runtime) loadLive(id string) (*State, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	st, err := readState(r.dir(id), id)
	if err != nil {
		return nil, err
	}
	if s := r.status(st); s == "stopped" || s == "creating" {
		return nil, fmt.Errorf("%w: container %s is %s", ErrState, id, s)
	}
	return st, nil
}

// mergeResources overlays the set fields of upd on old.
func mergeResources(old, upd *specs.LinuxResources) *specs.LinuxResources {
	if old == nil {
		c := *upd
		return &c
	}
	m := *old
	if upd.Memory != nil {
		if m.Memory == nil {
			m.Memory = &specs.LinuxMemory{}
		}
		mm, u := *m.Memory, upd.Memory
		if u.Limit != nil {
			mm.Limit = u.Limit
		}
		if u.Reservation != nil {
			mm.Reservation = u.Reservation
		}
		if u.Swap != nil {
			mm.Swap = u.Swap
		}
		if u.Swappiness != nil {
			mm.Swappiness = u.Swappiness
		}
		if u.DisableOOMKiller != nil {
			mm.DisableOOMKiller = u.DisableOOMKiller
		}
		m.Memory = &mm
	}
	if upd.CPU != nil {
		if m.CPU == nil {
			m.CPU = &specs.LinuxCPU{}
		}
		cc, u := *m.CPU, upd.CPU
		if u.Shares != nil {
			cc.Shares = u.Shares
		}
		if u.Quota != nil {
			cc.Quota = u.Quota
		}
		if u.Period != nil {
			cc.Period = u.Period
		}
		if u.Cpus != "" {
			cc.Cpus = u.Cpus
		}
		if u.Mems != "" {
			cc.Mems = u.Mems
		}
		if u.RealtimeRuntime != nil {
			cc.RealtimeRuntime = u.RealtimeRuntime
		}
		if u.RealtimePeriod != nil {
			cc.RealtimePeriod = u.RealtimePeriod
		}
		m.CPU = &cc
	}
	if upd.Pids != nil {
		m.Pids = upd.Pids
	}
	if upd.BlockIO != nil {
		m.BlockIO = upd.BlockIO
	}
	if upd.Unified != nil {
		m.Unified = upd.Unified
	}
	if upd.HugepageLimits != nil {
		m.HugepageLimits = upd.HugepageLimits
	}
	return &m
}
