package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultMounts are the mounts of `runc spec`'s default config.
func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// defaultMaskedPaths and defaultReadonlyPaths are `runc spec`'s.
var (
	defaultMaskedPaths = []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

func TestValidate(t *testing.T) {
	tmp := t.TempDir()
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	base := func() *Config {
		return &Config{
			Rootfs:        rootfs,
			Readonly:      true,
			Mounts:        defaultMounts(),
			MaskedPaths:   defaultMaskedPaths,
			ReadonlyPaths: defaultReadonlyPaths,
		}
	}
	withMount := func(m specs.Mount) func(c *Config) {
		return func(c *Config) { c.Mounts = []specs.Mount{m} }
	}
	lxcfsList := "/proc/cpuinfo, /proc/diskstats, /proc/meminfo, /proc/stat, /proc/swaps, /proc/uptime, /proc/loadavg, /proc/slabinfo, /proc/net/dev, /proc/sys/kernel/ns_last_pid, /proc/sys/crypto/fips_enabled"

	cases := []struct {
		name   string
		change func(c *Config)
		want   string // "" for valid
	}{
		{"runc default spec", func(c *Config) {}, ""},
		{"every propagation", func(c *Config) { c.RootfsPropagation = "rshared" }, ""},
		{"bind of a file with options", withMount(specs.Mount{Destination: "/etc/hosts", Type: "bind", Source: file, Options: []string{"rbind", "ro", "rprivate"}}), ""},
		{"bind of procfs on /proc", withMount(specs.Mount{Destination: "/proc", Type: "bind", Source: "/proc", Options: []string{"rbind"}}), ""},
		{"lxcfs file in /proc", withMount(specs.Mount{Destination: "/proc/meminfo", Type: "bind", Source: file, Options: []string{"bind"}}), ""},
		{"below the cgroup tree", withMount(specs.Mount{Destination: "/sys/fs/cgroup/extra", Type: "tmpfs", Source: "tmpfs"}), ""},
		{"overlay passes its data", withMount(specs.Mount{Destination: "/data", Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/a", "upperdir=/b", "workdir=/c"}}), ""},
		{"devices", func(c *Config) {
			mode := os.FileMode(0o620)
			c.Devices = []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &mode}, {Path: "/dev/fifo", Type: "p"}}
		}, ""},

		{"relative root", func(c *Config) { c.Rootfs = "rootfs" }, `root.path: "rootfs" must be an absolute path`},
		{"missing root", func(c *Config) { c.Rootfs = filepath.Join(tmp, "nope") }, fmt.Sprintf("root.path: %s/nope: no such directory", tmp)},
		{"root is a file", func(c *Config) { c.Rootfs = file }, fmt.Sprintf("root.path: %s: not a directory", file)},
		{"bad propagation", func(c *Config) { c.RootfsPropagation = "sideways" },
			`linux.rootfsPropagation: unknown propagation "sideways" (want private, rprivate, slave, rslave, shared, rshared, unbindable or runbindable)`},
		{"relative destination", func(c *Config) { c.Mounts[1].Destination = "dev" }, `mounts[1].destination: "dev" must be absolute`},
		{"destination climbing above the root", func(c *Config) { c.Mounts[1].Destination = "/dev/../../etc" },
			`mounts[1].destination: "/dev/../../etc" climbs above the container's root with ".."`},
		{"empty destination", func(c *Config) { c.Mounts[2].Destination = "" }, `mounts[2].destination: required`},
		{"destination /", func(c *Config) { c.Mounts[0].Destination = "/" }, `mounts[0].destination: cannot mount over the root; use root.path`},
		{"unknown option", func(c *Config) { c.Mounts[3].Options = append(c.Mounts[3].Options, "foo") }, `mounts[3].options: unknown option "foo"`},
		{"no type", withMount(specs.Mount{Destination: "/x", Source: "tmpfs"}), `mounts[0].type: required unless the options say bind or rbind`},
		{"bind without source", withMount(specs.Mount{Destination: "/x", Type: "bind", Options: []string{"bind"}}), `mounts[0].source: required for a bind mount`},
		{"relative bind source", withMount(specs.Mount{Destination: "/x", Type: "bind", Source: "data", Options: []string{"rbind"}}),
			`mounts[0].source: "data" must be absolute (resolve it against the bundle first)`},
		{"missing bind source", withMount(specs.Mount{Destination: "/x", Source: filepath.Join(tmp, "missing"), Options: []string{"bind"}}),
			fmt.Sprintf("mounts[0].source: %s/missing: no such file or directory", tmp)},
		{"tmpfs on /proc", withMount(specs.Mount{Destination: "/proc", Type: "tmpfs", Source: "tmpfs"}), `mounts[0].destination: /proc: only a procfs can be mounted on /proc`},
		{"bind of a non-procfs on /proc", withMount(specs.Mount{Destination: "/proc", Source: tmp, Options: []string{"rbind"}}), `mounts[0].destination: /proc: only a procfs can be mounted on /proc`},
		{"inside /proc", withMount(specs.Mount{Destination: "/proc/self/attr", Type: "tmpfs", Source: "tmpfs"}),
			"mounts[0].destination: /proc/self/attr is inside /proc: only " + lxcfsList + " may be mounted there"},
		{"inside /proc after cleaning", withMount(specs.Mount{Destination: "/x/../proc/sys", Type: "tmpfs", Source: "tmpfs"}),
			"mounts[0].destination: /proc/sys is inside /proc: only " + lxcfsList + " may be mounted there"},
		{"inside /sys", withMount(specs.Mount{Destination: "/sys/kernel/security", Type: "tmpfs", Source: "tmpfs"}),
			`mounts[0].destination: /sys/kernel/security is inside /sys: only /sys/fs/cgroup and /sys/devices/system/cpu/online may be mounted there`},
		{"relative device", func(c *Config) { c.Devices = []specs.LinuxDevice{{Path: "dev/x", Type: "c", Major: 1, Minor: 3}} },
			`linux.devices[0].path: "dev/x" must be an absolute path to a file`},
		{"device type", func(c *Config) { c.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "x"}} },
			`linux.devices[0].type: "x" is not a device type (want c, u, b or p)`},
		{"negative major", func(c *Config) { c.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "c", Major: -1}} },
			`linux.devices[0]: major and minor must not be negative`},
		{"relative masked path", func(c *Config) { c.MaskedPaths = []string{"/proc/kcore", "proc/keys"} }, `linux.maskedPaths[1]: "proc/keys" must be absolute`},
		{"relative readonly path", func(c *Config) { c.ReadonlyPaths = []string{"proc/sys"} }, `linux.readonlyPaths[0]: "proc/sys" must be absolute`},
		{"all problems reported", func(c *Config) {
			c.Mounts[1].Destination = "dev"
			c.Mounts[4].Options = []string{"foo"}
		}, "mounts[1].destination: \"dev\" must be absolute\nmounts[4].options: unknown option \"foo\""},
	}
	if !selinuxEnabled() {
		cases = append(cases, struct {
			name   string
			change func(c *Config)
			want   string
		}{"mount label without SELinux", func(c *Config) { c.MountLabel = "system_u:object_r:container_file_t:s0" },
			`linux.mountLabel: "system_u:object_r:container_file_t:s0" is set but SELinux is not enabled on this host`})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.change(c)
			err := Validate(c)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
	if err := Validate(nil); err == nil {
		t.Errorf("Validate(nil) = nil, want an error")
	}
}
