// Package caps names Linux capabilities and applies the five capability sets
// of an OCI process (bounding, effective, permitted, inheritable, ambient) to
// the calling thread.
package caps

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// names maps "CAP_X" to its number, as the kernel headers define them.
var names = map[string]int{
	"CAP_CHOWN":              0,
	"CAP_DAC_OVERRIDE":       1,
	"CAP_DAC_READ_SEARCH":    2,
	"CAP_FOWNER":             3,
	"CAP_FSETID":             4,
	"CAP_KILL":               5,
	"CAP_SETGID":             6,
	"CAP_SETUID":             7,
	"CAP_SETPCAP":            8,
	"CAP_LINUX_IMMUTABLE":    9,
	"CAP_NET_BIND_SERVICE":   10,
	"CAP_NET_BROADCAST":      11,
	"CAP_NET_ADMIN":          12,
	"CAP_NET_RAW":            13,
	"CAP_IPC_LOCK":           14,
	"CAP_IPC_OWNER":          15,
	"CAP_SYS_MODULE":         16,
	"CAP_SYS_RAWIO":          17,
	"CAP_SYS_CHROOT":         18,
	"CAP_SYS_PTRACE":         19,
	"CAP_SYS_PACCT":          20,
	"CAP_SYS_ADMIN":          21,
	"CAP_SYS_BOOT":           22,
	"CAP_SYS_NICE":           23,
	"CAP_SYS_RESOURCE":       24,
	"CAP_SYS_TIME":           25,
	"CAP_SYS_TTY_CONFIG":     26,
	"CAP_MKNOD":              27,
	"CAP_LEASE":              28,
	"CAP_AUDIT_WRITE":        29,
	"CAP_AUDIT_CONTROL":      30,
	"CAP_SETFCAP":            31,
	"CAP_MAC_OVERRIDE":       32,
	"CAP_MAC_ADMIN":          33,
	"CAP_SYSLOG":             34,
	"CAP_WAKE_ALARM":         35,
	"CAP_BLOCK_SUSPEND":      36,
	"CAP_AUDIT_READ":         37,
	"CAP_PERFMON":            38,
	"CAP_BPF":                39,
	"CAP_CHECKPOINT_RESTORE": 40,
}

// Known reports whether name (with or without the CAP_ prefix, any case) is
// a capability name.
func Known(name string) bool {
	_, ok := names[canonical(name)]
	return ok
}

// All returns the names of every capability the running kernel supports,
// in number order.
func All() []string {
	last := LastCap()
	out := make([]string, last+1)
	for n, v := range names {
		if v <= last {
			out[v] = n
		}
	}
	return out
}

// Held returns the names of the capabilities in the calling thread's
// effective set that the running kernel supports, in number order: what a
// process this one starts can be given (Docker's and Podman's rule for
// --privileged: a container cannot get what its creator lacks, such as a
// capability dropped from the host's bounding set).
func Held() ([]string, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil, fmt.Errorf("get capabilities: %w", err)
	}
	eff := uint64(data[0].Effective) | uint64(data[1].Effective)<<32
	var out []string
	for i, n := range All() {
		if n != "" && eff&(1<<uint(i)) != 0 {
			out = append(out, n)
		}
	}
	return out, nil
}

func canonical(name string) string {
	name = strings.ToUpper(name)
	if !strings.HasPrefix(name, "CAP_") {
		name = "CAP_" + name
	}
	return name
}

var lastCap = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return v
		}
	}
	return names["CAP_CHECKPOINT_RESTORE"]
})

// LastCap is the highest capability number the running kernel knows.
func LastCap() int { return lastCap() }

// Mask turns a list of capability names into a bit mask. Names the kernel
// does not support are left out (like runc, so one config serves older
// kernels); unknown names are an error naming field and index.
func Mask(field string, list []string) (uint64, error) {
	var m uint64
	for i, n := range list {
		v, ok := names[canonical(n)]
		if !ok || !strings.HasPrefix(strings.ToUpper(n), "CAP_") {
			return 0, fmt.Errorf("%s[%d]: unknown capability %q", field, i, n)
		}
		if v <= LastCap() {
			m |= 1 << uint(v)
		}
	}
	return m, nil
}

// Sets are the five capability sets as masks.
type Sets struct {
	Bounding, Effective, Permitted, Inheritable, Ambient uint64
}

// Parse validates c and returns its masks; field prefixes error messages
// (e.g. "process.capabilities").
func Parse(field string, c *specs.LinuxCapabilities) (Sets, error) {
	var s Sets
	if c == nil {
		return s, nil
	}
	var err error
	for _, x := range []struct {
		name string
		list []string
		dst  *uint64
	}{
		{"bounding", c.Bounding, &s.Bounding},
		{"effective", c.Effective, &s.Effective},
		{"permitted", c.Permitted, &s.Permitted},
		{"inheritable", c.Inheritable, &s.Inheritable},
		{"ambient", c.Ambient, &s.Ambient},
	} {
		if *x.dst, err = Mask(field+"."+x.name, x.list); err != nil {
			return s, err
		}
	}
	return s, nil
}

// DropBounding removes from the calling thread's bounding set every
// capability not in keep. It must run while the thread still has
// CAP_SETPCAP, i.e. before the switch to the process user.
func DropBounding(keep uint64) error {
	for c := 0; c <= LastCap(); c++ {
		if keep&(1<<uint(c)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			if err == unix.EINVAL { // not supported by this kernel
				continue
			}
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// SetThread sets the effective, permitted and inheritable sets of the
// calling thread, then its ambient set.
func SetThread(s Sets) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	data[0].Effective = uint32(s.Effective)
	data[1].Effective = uint32(s.Effective >> 32)
	data[0].Permitted = uint32(s.Permitted)
	data[1].Permitted = uint32(s.Permitted >> 32)
	data[0].Inheritable = uint32(s.Inheritable)
	data[1].Inheritable = uint32(s.Inheritable >> 32)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("set capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	// The kernel only allows ambient capabilities that are permitted and
	// inheritable. Configs such as runc's default list ambient ones without
	// making them inheritable; like runc, skip those rather than fail.
	for c := 0; c <= LastCap(); c++ {
		bit := uint64(1) << uint(c)
		if s.Ambient&bit == 0 || s.Permitted&bit == 0 || s.Inheritable&bit == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return fmt.Errorf("raise ambient capability %d (it must be permitted and inheritable): %w", c, err)
		}
	}
	return nil
}
