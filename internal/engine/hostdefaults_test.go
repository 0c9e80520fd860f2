package engine

import (
	"errors"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/container"
)

// TestAdaptHostConfig: Docker's create-time defaults and discards, as
// moby's adaptContainerSettings and verifyPlatformContainerResources make
// them (and as dockerd 20.10 showed them on a hybrid v1 host).
func TestAdaptHostConfig(t *testing.T) {
	const m64 = 64 << 20
	all := hostSupport{swapLimit: true, blkioWeight: true}
	v2 := hostSupport{swapLimit: true, blkioWeight: true, unified: true}
	tests := []struct {
		name     string
		in       container.HostConfig
		host     hostSupport
		swap     int64
		weight   uint16
		cgroupns container.CgroupnsMode
		warnings []string
		err      error
	}{
		{"memory only: swap twice", hc(m64, 0, 0, ""), all, 2 * m64, 0, "host", nil, nil},
		{"unlimited swap kept", hc(m64, -1, 0, ""), all, -1, 0, "host", nil, nil},
		{"explicit swap kept", hc(m64, 100<<20, 0, ""), all, 100 << 20, 0, "host", nil, nil},
		{"no memory: no swap", hc(0, 0, 0, ""), all, 0, 0, "host", nil, nil},
		{"no swap accounting", hc(m64, 0, 0, ""), hostSupport{blkioWeight: true}, -1, 0, "host", []string{warnNoSwapLimit}, nil},
		{"no swap accounting, -1", hc(m64, -1, 0, ""), hostSupport{blkioWeight: true}, -1, 0, "host", nil, nil},
		{"weight kept", hc(0, 0, 300, ""), all, 0, 300, "host", nil, nil},
		{"weight discarded", hc(0, 0, 300, ""), hostSupport{swapLimit: true}, 0, 0, "host", []string{warnNoBlkioWeight}, nil},
		{"weight out of range discarded", hc(0, 0, 5, ""), hostSupport{swapLimit: true}, 0, 0, "host", []string{warnNoBlkioWeight}, nil},
		{"weight out of range", hc(0, 0, 5, ""), all, 0, 5, "", nil, ErrInvalid},
		{"v2: cgroupns private", hc(0, 0, 0, ""), v2, 0, 0, "private", nil, nil},
		{"v2: explicit host kept", hc(0, 0, 0, "host"), v2, 0, 0, "host", nil, nil},
		{"v1: explicit private kept", hc(0, 0, 0, "private"), all, 0, 0, "private", nil, nil},
	}
	for _, tt := range tests {
		h := tt.in
		warnings, err := adaptHostConfig(&h, tt.host)
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: adaptHostConfig error %v, want %v", tt.name, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if h.MemorySwap != tt.swap || h.BlkioWeight != tt.weight || h.CgroupnsMode != tt.cgroupns || !slices.Equal(warnings, tt.warnings) {
			t.Errorf("%s: adaptHostConfig = MemorySwap %d BlkioWeight %d CgroupnsMode %q warnings %q, want %d %d %q %q",
				tt.name, h.MemorySwap, h.BlkioWeight, h.CgroupnsMode, warnings, tt.swap, tt.weight, tt.cgroupns, tt.warnings)
		}
	}
}

func hc(mem, swap int64, weight uint16, cgroupns container.CgroupnsMode) container.HostConfig {
	h := container.HostConfig{CgroupnsMode: cgroupns}
	h.Memory, h.MemorySwap, h.BlkioWeight = mem, swap, weight
	return h
}

// TestAdaptUpdate: Docker's update refuses a memory limit above the
// recorded memory+swap limit unless --memory-swap comes with it, and
// discards what the host cannot apply.
func TestAdaptUpdate(t *testing.T) {
	const m64 = 64 << 20
	all := hostSupport{swapLimit: true, blkioWeight: true}
	res := func(mem, swap int64, weight uint16) container.Resources {
		return container.Resources{Memory: mem, MemorySwap: swap, BlkioWeight: weight}
	}
	tests := []struct {
		name     string
		cur      container.HostConfig
		r        container.Resources
		host     hostSupport
		weight   uint16
		warnings []string
		err      error
	}{
		{"below the swap limit", hc(m64, 2*m64, 0, "host"), res(32<<20, 0, 0), all, 0, nil, nil},
		{"above the swap limit", hc(m64, 2*m64, 0, "host"), res(256<<20, 0, 0), all, 0, nil, ErrConflict},
		{"above, with a new swap limit", hc(m64, 2*m64, 0, "host"), res(256<<20, 512<<20, 0), all, 0, nil, nil},
		{"no limit before", hc(0, 0, 0, "host"), res(m64, 0, 0), all, 0, nil, ErrConflict},
		{"unlimited swap before", hc(m64, -1, 0, "host"), res(32<<20, 0, 0), all, 0, nil, ErrConflict},
		{"record without the default", hc(m64, 0, 0, ""), res(100<<20, 0, 0), all, 0, nil, nil},
		{"weight discarded", hc(0, 0, 0, "host"), res(0, 0, 300), hostSupport{swapLimit: true}, 0, []string{warnNoBlkioWeight}, nil},
		{"weight out of range", hc(0, 0, 0, "host"), res(0, 0, 5), all, 0, nil, ErrInvalid},
		{"weight kept", hc(0, 0, 0, "host"), res(0, 0, 300), all, 300, nil, nil},
	}
	for _, tt := range tests {
		cur, r := tt.cur, tt.r
		warnings, err := adaptUpdate("c1", &cur, &r, tt.host)
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: adaptUpdate error %v, want %v", tt.name, err, tt.err)
			continue
		}
		if err == nil && (r.BlkioWeight != tt.weight || !slices.Equal(warnings, tt.warnings)) {
			t.Errorf("%s: adaptUpdate = BlkioWeight %d warnings %q, want %d %q", tt.name, r.BlkioWeight, warnings, tt.weight, tt.warnings)
		}
	}
}
