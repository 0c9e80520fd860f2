package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/moby/moby/api/types/container"

	"github.com/berthproject/berth/internal/cgroups"
)

// hostSupport is what the host's cgroups can do, as far as Docker's
// create-time defaults depend on it.
type hostSupport struct {
	swapLimit   bool // memory.memsw.* (v1) or swap accounting (v2)
	blkioWeight bool // blkio.weight at the v1 root, or the v2 io controller
	unified     bool // pure cgroup v2 (not v1, not hybrid)
}

// Docker's warnings, word for word (moby verifyPlatformContainerResources).
const (
	warnNoSwapLimit   = "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap."
	warnNoBlkioWeight = "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
)

// adaptHostConfig applies Docker's create-time adjustments to h, so that
// the record (and inspect) holds what Docker's would: settings the host
// cannot apply are discarded with a warning, MemorySwap defaults to twice
// Memory, and CgroupnsMode to host on cgroup v1 and hybrid hosts, private
// on pure v2. It returns the warnings, for the user. As Docker's, the
// range of --blkio-weight is checked only where the weight is kept.
func adaptHostConfig(h *container.HostConfig, s hostSupport) ([]string, error) {
	r := &h.Resources
	warnings, err := discardUnsupported(r, s)
	if err != nil {
		return warnings, err
	}
	if r.Memory > 0 && r.MemorySwap == 0 {
		r.MemorySwap = 2 * r.Memory
	}
	if h.CgroupnsMode == "" {
		h.CgroupnsMode = container.CgroupnsModeHost
		if s.unified {
			h.CgroupnsMode = container.CgroupnsModePrivate
		}
	}
	return warnings, nil
}

// discardUnsupported drops, with Docker's warnings, the settings of r the
// host cannot apply, then checks the range of a kept --blkio-weight.
func discardUnsupported(r *container.Resources, s hostSupport) ([]string, error) {
	var warnings []string
	if r.Memory > 0 && r.MemorySwap != -1 && !s.swapLimit {
		warnings = append(warnings, warnNoSwapLimit)
		r.MemorySwap = -1
	}
	if r.BlkioWeight > 0 && !s.blkioWeight {
		warnings = append(warnings, warnNoBlkioWeight)
		r.BlkioWeight = 0
	}
	if r.BlkioWeight > 0 && (r.BlkioWeight < 10 || r.BlkioWeight > 1000) {
		return warnings, fmt.Errorf("%w: --blkio-weight: %d: range of blkio weight is from 10 to 1000", ErrInvalid, r.BlkioWeight)
	}
	return warnings, nil
}

// currentHostSupport reads this host's hostSupport.
func currentHostSupport() hostSupport {
	s := hostSupport{swapLimit: swapLimitSupported()}
	layout, err := cgroupLayout()
	if err != nil {
		return s
	}
	s.unified = layout.Mode() == cgroups.ModeV2
	if m, ok := layout.V1["blkio"]; ok {
		// As Docker: the root's blkio.weight (CFQ). BFQ's
		// blkio.bfq.weight is never on the root, and Docker ignores it.
		for _, f := range []string{"blkio.weight", "blkio.bfq.weight"} {
			if _, err := os.Stat(filepath.Join(m.Dir, f)); err == nil {
				s.blkioWeight = true
			}
		}
	} else if layout.Unified != nil {
		s.blkioWeight = slices.Contains(layout.UnifiedControllers, "io")
	}
	return s
}

// adaptUpdate checks and adjusts the resources r of an update of the
// container id, whose settings are h, as Docker's update does: what the
// host cannot apply is discarded with a warning, and a memory limit above
// the recorded memory+swap limit needs a new --memory-swap with it.
func adaptUpdate(id string, h *container.HostConfig, r *container.Resources, s hostSupport) ([]string, error) {
	warnings, err := discardUnsupported(r, s)
	if err != nil {
		return warnings, err
	}
	swap := h.MemorySwap
	if swap == 0 && h.Memory > 0 {
		swap = 2 * h.Memory // a record made before create stored the default
	}
	if r.Memory != 0 && r.MemorySwap == 0 && r.Memory > swap {
		return warnings, fmt.Errorf("%w: Cannot update container %s: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time", ErrConflict, id)
	}
	return warnings, nil
}
