package engine

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/blkiodev"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/caps"
	"github.com/berthproject/berth/internal/cgroups"
	"github.com/berthproject/berth/internal/containerspec"
)

// hostFacts fills what the spec needs from the host: device nodes named
// by flags, every host device for --privileged, the --userns auto range,
// host-specific masked paths, whether swap can be limited, and the
// capabilities the engine holds.
func (e *Engine) hostFacts(c *Container, in *containerspec.Input) {
	h := c.HostConfig
	var paths []string
	for _, d := range h.Devices {
		paths = append(paths, d.PathOnHost)
	}
	for _, list := range [][]string{throttlePaths(h.BlkioDeviceReadBps), throttlePaths(h.BlkioDeviceWriteBps),
		throttlePaths(h.BlkioDeviceReadIOps), throttlePaths(h.BlkioDeviceWriteIOps)} {
		paths = append(paths, list...)
	}
	for _, w := range h.BlkioWeightDevice {
		paths = append(paths, w.Path)
	}
	if len(paths) > 0 {
		in.DeviceNodes = map[string][]containerspec.Device{}
		for _, p := range paths {
			in.DeviceNodes[p] = deviceNodes(p)
		}
	}
	if h.Privileged {
		in.HostDevices = deviceNodes("/dev")
	}
	if h.UsernsMode == "auto" {
		in.IDMap = e.claimedIDMap(c.ID) // allocateIDMap chose it (see userns.go)
	}
	if matches, _ := filepath.Glob("/sys/devices/system/cpu/cpu*/thermal_throttle"); len(matches) > 0 {
		in.HostMaskedPaths = matches
	}
	in.NoSwapLimit = !swapLimitSupported()
	// --privileged and --cap-add ALL grant what the engine holds, not what
	// the kernel knows: a capability missing from the host's bounding set
	// cannot be given (capset fails with EPERM).
	if held, err := caps.Held(); err == nil {
		in.AvailableCaps = held
	}
}

// deviceNodes lists the device nodes at p: the node itself, or every node
// below a directory.
func deviceNodes(p string) []containerspec.Device {
	var out []containerspec.Device
	add := func(path string) {
		var st unix.Stat_t
		if unix.Stat(path, &st) != nil {
			return
		}
		t := ""
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			t = "c"
		case unix.S_IFBLK:
			t = "b"
		default:
			return
		}
		out = append(out, containerspec.Device{Path: path, Type: t, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
			Mode: os.FileMode(st.Mode & 0o777), UID: st.Uid, GID: st.Gid})
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil
	}
	if !fi.IsDir() {
		add(p)
		return out
	}
	filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (strings.HasPrefix(path, "/dev/pts") || strings.HasPrefix(path, "/dev/shm") || strings.HasPrefix(path, "/dev/mqueue")) {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			add(path)
		}
		return nil
	})
	return out
}

// cgroupLayout is the host's cgroup layout, read once per process (from
// mountinfo: ~0.4 ms, and a start asked three times).
var cgroupLayout = sync.OnceValues(func() (*cgroups.Layout, error) {
	return cgroups.DetectLayout(cgroups.Options{})
})

// swapLimitSupported reports whether the memory cgroup can limit swap.
func swapLimitSupported() bool {
	layout, err := cgroupLayout()
	if err != nil {
		return false
	}
	if m, ok := layout.V1["memory"]; ok {
		_, err := os.Stat(filepath.Join(m.Dir, "memory.memsw.limit_in_bytes"))
		return err == nil
	}
	if layout.Unified != nil {
		for _, c := range layout.UnifiedControllers {
			if c == "memory" {
				_, err := os.Stat("/proc/swaps")
				return err == nil
			}
		}
	}
	return false
}

func throttlePaths(list []*blkiodev.ThrottleDevice) []string {
	var out []string
	for _, t := range list {
		out = append(out, t.Path)
	}
	return out
}
