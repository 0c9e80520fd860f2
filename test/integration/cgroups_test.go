package integration

import (
	"os"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The project's hosts are cgroup v1 (hybrid); test/qemu boots a pure v2
// kernel. The tests read the container's cgroup files from the host (v1 or
// v2 names, see assertCgroup) and from inside, where the default config
// mounts the container's cgroups at /sys/fs/cgroup.

func resources(f func(*specs.LinuxResources)) func(*specs.Spec) {
	return func(s *specs.Spec) {
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		f(s.Linux.Resources)
	}
}

func TestMemoryLimit(t *testing.T) {
	limit := int64(32 << 20)
	adapt := resources(func(r *specs.LinuxResources) {
		r.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &limit}
	})
	t.Run("in force", func(t *testing.T) {
		c := startedContainer(t, []string{"sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; exec sleep 1000000"}, adapt)
		assertCgroup(t, c, "memory/memory.limit_in_bytes", "33554432", "memory.max", "33554432")
		if out := c.waitOutput("\n"); out != "33554432\n" {
			t.Errorf("memory.limit_in_bytes inside = %q, want 33554432", out)
		}
	})
	// Without a cgroup namespace the container's /sys/fs/cgroup shows its
	// own cgroup directories bound from the host's: the init must be in
	// them by the time the rootfs is built.
	t.Run("in force without a cgroup namespace", func(t *testing.T) {
		noCgroupNS := func(s *specs.Spec) {
			var ns []specs.LinuxNamespace
			for _, n := range s.Linux.Namespaces {
				if n.Type != specs.CgroupNamespace {
					ns = append(ns, n)
				}
			}
			s.Linux.Namespaces = ns
		}
		out := mustRun(t, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max", adapt, noCgroupNS)
		if out != "33554432\n" {
			t.Errorf("memory limit inside = %q, want 33554432", out)
		}
	})
	t.Run("allocating more is OOM killed", func(t *testing.T) {
		// dd fills a 64 MiB buffer from /dev/zero: twice the limit.
		out := mustRun(t, "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd=$?; "+
			"grep oom_kill /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null || grep '^oom_kill ' /sys/fs/cgroup/memory.events", adapt)
		if !strings.Contains(out, "dd=137") || !strings.Contains(out, "oom_kill 1") {
			t.Errorf("allocating 64 MiB under a 32 MiB limit: %q, want dd killed (137) and oom_kill 1", out)
		}
	})
}

func TestCPUSharesQuota(t *testing.T) {
	shares, quota, period := uint64(512), int64(50000), uint64(100000)
	c := startedContainer(t, []string{"sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max; exec sleep 1000000"}, resources(func(r *specs.LinuxResources) {
		r.CPU = &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period}
	}))
	// v2 has cpu.weight: the runtimes' conversion 1 + (shares-2)*9999/262142.
	assertCgroup(t, c, "cpu/cpu.shares", "512", "cpu.weight", "20")
	assertCgroup(t, c, "cpu/cpu.cfs_quota_us", "50000", "cpu.max", "50000 100000")
	if !cgroupV2 {
		assertCgroup(t, c, "cpu/cpu.cfs_period_us", "100000", "", "")
	}
	if out := c.waitOutput("\n"); out != "50000\n" {
		t.Errorf("cpu.cfs_quota_us inside = %q, want 50000", out)
	}
}

func TestCpuset(t *testing.T) {
	out := mustRun(t, "nproc; cat /proc/self/status | grep Cpus_allowed_list", resources(func(r *specs.LinuxResources) {
		r.CPU = &specs.LinuxCPU{Cpus: "0", Mems: "0"}
	}))
	if f := strings.Fields(out); len(f) != 3 || f[0] != "1" || f[2] != "0" {
		t.Errorf("nproc and Cpus_allowed_list inside = %q, want 1 and 0", out)
	}
}

func TestPidsLimitCapsForkBomb(t *testing.T) {
	limit := int64(20)
	// busybox sh exits when a fork fails: the bomb runs in a child shell.
	c := startedContainer(t, []string{"sh", "-c", "sh -c 'for i in $(seq 1 40); do sleep 1000000 & done' 2>/tmp/err; echo done; exec sleep 1000000"},
		resources(func(r *specs.LinuxResources) { r.Pids = &specs.LinuxPids{Limit: &limit} }))
	c.waitOutput("done")
	assertCgroup(t, c, "pids/pids.max", "20", "pids.max", "20")
	// The shell whose fork failed has exited: at most the limit remains.
	if n, _ := strconv.Atoi(strings.TrimSpace(readFile(t, c.cgroupFile("pids/pids.current", "pids.current")))); n < 19 || n > 20 {
		t.Errorf("pids.current = %d, want 19 or 20 (the limit, less the failed shell)", n)
	}
	if events := readFile(t, c.cgroupFile("pids/pids.events", "pids.events")); events == "max 0\n" {
		t.Errorf("pids.events = %q, want fork failures counted", events)
	}
	if errs := readFile(t, rootfsPath(c, "tmp/err")); !strings.Contains(errs, "fork") {
		t.Errorf("the shell's errors %q, want fork failures", errs)
	}
}

func rootfsPath(c *container, path string) string { return c.rootfs + "/" + path }

func TestBlkio(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	major, minor := int64(unix.Major(st.Dev)), int64(unix.Minor(st.Dev))
	if major == 0 {
		t.Skip("the root filesystem is not on a block device (tmpfs in test/qemu's VM)")
	}
	c := startedContainer(t, []string{"sleep", "1000000"}, resources(func(r *specs.LinuxResources) {
		r.BlockIO = &specs.LinuxBlockIO{
			ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{
				LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: 1 << 20,
			}},
		}
	}))
	dev := strconv.FormatInt(major, 10) + ":" + strconv.FormatInt(minor, 10)
	assertCgroup(t, c, "blkio/blkio.throttle.read_bps_device", dev+" 1048576", "io.max", dev+" rbps=1048576 wbps=max riops=max wiops=max")
}

func TestBlkioWeight(t *testing.T) {
	crunBlkioWeight.skip(t)
	weight := uint16(500)
	c := startedContainer(t, []string{"sleep", "1000000"}, resources(func(r *specs.LinuxResources) {
		r.BlockIO = &specs.LinuxBlockIO{Weight: &weight}
	}))
	cfq, bfq := c.cgroupFile("blkio/blkio.weight", "io.weight"), c.cgroupFile("blkio/blkio.bfq.weight", "io.bfq.weight")
	if cgroupV2 {
		// io.weight takes a converted value; only BFQ's weight is checked.
		cfq = "/nonexistent"
	}
	switch {
	case fileExists(cfq):
		assertFile(t, cfq, "500")
	case fileExists(bfq):
		// "500" on some kernels, "default 500" on others.
		if got := strings.TrimSpace(readFile(t, bfq)); got != "500" && got != "default 500" {
			t.Errorf("%s = %q, want 500", bfq, got)
		}
	default:
		t.Skip("this kernel's blkio controller has no weight file (neither CFQ nor BFQ)")
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// The device cgroup: the default config denies everything but the
// runtime's default devices; rules apply in order, the last match wins.
// The device is /dev/kmsg (c 1:11), opened write-only, which needs no
// capability, writes nothing, is built into every kernel and is not a
// default device.
func TestDevicesCgroupRules(t *testing.T) {
	major, minor := int64(1), int64(11)
	allow := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: "w"}
	deny := specs.LinuxDeviceCgroup{Allow: false, Type: "c", Major: &major, Minor: &minor, Access: "rwm"}
	tests := []struct {
		name     string
		rules    []specs.LinuxDeviceCgroup
		wantOpen bool
	}{
		{"default denies", nil, false},
		{"allowed", []specs.LinuxDeviceCgroup{allow}, true},
		{"allowed then denied", []specs.LinuxDeviceCgroup{allow, deny}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newContainer(t, sh(": > /tmp/kmsg && echo opened"), resources(func(r *specs.LinuxResources) {
				r.Devices = append(r.Devices, tt.rules...)
			}))
			if err := unix.Mknod(rootfsPath(c, "tmp/kmsg"), unix.S_IFCHR|0o600, int(unix.Mkdev(uint32(major), uint32(minor)))); err != nil {
				t.Fatalf("mknod /dev/kmsg's device in the rootfs: %v", err)
			}
			r := c.run()
			if opened := r.stdout == "opened\n"; opened != tt.wantOpen {
				t.Errorf("open of char device %d:%d: opened %v, want %v (%v)", major, minor, opened, tt.wantOpen, r)
			}
			if !tt.wantOpen && !strings.Contains(r.stderr, "Operation not permitted") {
				t.Errorf("a refused open says %q, want Operation not permitted", r.stderr)
			}
		})
	}
}

func TestHugetlb(t *testing.T) {
	controllers, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if !fileExists("/sys/fs/cgroup/hugetlb") && !(cgroupV2 && strings.Contains(string(controllers), "hugetlb")) {
		t.Skip("no hugetlb controller in use here (the hybrid hosts have it only in their cgroup2 mount)")
	}
	c := startedContainer(t, []string{"sleep", "1000000"}, resources(func(r *specs.LinuxResources) {
		r.HugepageLimits = []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}
	}))
	assertCgroup(t, c, "hugetlb/hugetlb.2MB.limit_in_bytes", "4194304", "hugetlb.2MB.max", "4194304")
}
