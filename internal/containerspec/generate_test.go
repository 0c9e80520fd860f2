package containerspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/ocispec"
	"github.com/berthproject/berth/internal/seccomp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

const testPasswd = `root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
`

const testGroup = `root:x:0:
wheel:x:10:user
audio:x:29:user,other
nobody:x:65534:
user:x:1000:
`

// stubSeccomp pins the default profile in golden files: Docker's real one
// depends on the kernel version of the machine running the test.
var stubSeccomp = &specs.LinuxSeccomp{
	DefaultAction: specs.ActErrno,
	Architectures: []specs.Arch{specs.ArchX86_64},
	Syscalls:      []specs.LinuxSyscall{{Names: []string{"read", "write", "exit_group"}, Action: specs.ActAllow}},
}

// allCaps are the capabilities of a 6.x kernel, pinned so that golden
// files do not depend on the machine.
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// baseInput is `berth run busybox` as the engine would describe it.
func baseInput() *Input {
	return &Input{
		ID: testID,
		Image: v1.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"sh"},
		},
		Config:      &container.Config{},
		Host:        &container.HostConfig{},
		Rootfs:      "/var/lib/berth/containers/" + testID + "/rootfs",
		Passwd:      []byte(testPasswd),
		Group:       []byte(testGroup),
		CgroupsPath: "/berth/" + testID,
		EtcFiles: map[string]string{
			"/etc/hostname":    "/run/berth/containers/" + testID + "/hostname",
			"/etc/hosts":       "/run/berth/containers/" + testID + "/hosts",
			"/etc/resolv.conf": "/run/berth/containers/" + testID + "/resolv.conf",
		},
		SeccompDefault: stubSeccomp,
		AvailableCaps:  allCaps,
	}
}

func ptr[T any](v T) *T { return &v }

// goldenCases are the rendered specs kept in testdata/<name>.json.
var goldenCases = []struct {
	name  string
	adapt func(*Input)
}{
	{"default", func(*Input) {}},
	{"user-name", func(in *Input) { in.Config.User = "user" }},
	{"user-uid-gid-group-add", func(in *Input) {
		in.Config.User = "4242:audio"
		in.Host.GroupAdd = []string{"wheel", "777"}
	}},
	{"privileged", func(in *Input) {
		in.Host.Privileged = true
		in.HostDevices = []Device{
			{Path: "/dev/kmsg", Type: "c", Major: 1, Minor: 11, Mode: 0o644},
			{Path: "/dev/sda", Type: "b", Major: 8, Minor: 0, Mode: 0o660, GID: 6},
		}
	}},
	{"read-only-tmpfs", func(in *Input) {
		in.Host.ReadonlyRootfs = true
		in.Host.Tmpfs = map[string]string{"/run": "rw,size=64m", "/tmp": "exec,mode=1777"}
	}},
	{"bind-ro", func(in *Input) {
		in.Host.Binds = []string{"/srv/data:/data:ro", "/srv/app.conf:/etc/app.conf", "/srv/logs:/var/log/app:rslave"}
		in.Host.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: "/srv/plain", Target: "/plain", ReadOnly: true,
			BindOptions: &mount.BindOptions{NonRecursive: true}}}
	}},
	{"named-volume", func(in *Input) {
		in.Image.Volumes = map[string]struct{}{"/var/lib/db": {}, "/data": {}}
		in.Host.Binds = []string{"cache:/var/cache"}
		in.Host.Mounts = []mount.Mount{
			{Type: mount.TypeVolume, Source: "data", Target: "/data", ReadOnly: true},
			{Type: mount.TypeTmpfs, Target: "/scratch", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 16 << 20, Mode: 0o700}},
		}
		in.Volumes = map[string]string{
			"cache":       "/var/lib/berth/volumes/cache/_data",
			"data":        "/var/lib/berth/volumes/data/_data",
			"/var/lib/db": "/var/lib/berth/volumes/3f9c/_data",
		}
	}},
	{"bind-idmap", func(in *Input) { // podman's idmap: left in the options for the engine
		in.Host.Binds = []string{"/srv/shared:/shared:idmap,ro", "cache:/var/cache:idmap"}
		in.Volumes = map[string]string{"cache": "/var/lib/berth/volumes/cache/_data"}
	}},
	{"memory", func(in *Input) {
		r := &in.Host.Resources
		r.Memory, r.MemorySwap, r.MemoryReservation = 256<<20, 1<<30, 128<<20
		r.OomKillDisable = ptr(true)
		r.MemorySwappiness = ptr(int64(10))
		r.PidsLimit = ptr(int64(100))
	}},
	{"cpus-blkio", func(in *Input) {
		r := &in.Host.Resources
		r.NanoCPUs, r.CPUShares, r.CpusetCpus, r.CpusetMems = 1_500_000_000, 512, "0-1", "0"
		r.BlkioWeight = 300
		r.BlkioDeviceReadBps = []*blkiodev.ThrottleDevice{{Path: "/dev/sda", Rate: 1 << 20}}
		r.BlkioDeviceWriteIOps = []*blkiodev.ThrottleDevice{{Path: "/dev/sda", Rate: 100}}
		r.BlkioWeightDevice = []*blkiodev.WeightDevice{{Path: "/dev/sda", Weight: 200}}
		in.DeviceNodes = map[string][]Device{"/dev/sda": {{Path: "/dev/sda", Type: "b", Major: 8, Minor: 0, Mode: 0o660}}}
	}},
	{"cap-drop-all-add-net-admin", func(in *Input) {
		in.Host.CapDrop = []string{"ALL"}
		in.Host.CapAdd = []string{"net_admin"}
	}},
	{"pid-host", func(in *Input) { in.Host.PidMode = "host" }},
	{"join-container", func(in *Input) {
		in.Host.NetworkMode = "container:web"
		in.Host.IpcMode = "container:web"
		in.Host.PidMode = "container:web"
		in.Host.UTSMode = "container:web"
		in.ShmPath = "/run/berth/web/shm"
		in.Namespaces = map[specs.LinuxNamespaceType]string{
			specs.NetworkNamespace: "/proc/self/ns/net",
			specs.IPCNamespace:     "/proc/self/ns/ipc",
			specs.PIDNamespace:     "/proc/self/ns/pid",
			specs.UTSNamespace:     "/proc/self/ns/uts",
		}
	}},
	{"ipc-shareable", func(in *Input) {
		in.Host.IpcMode = "shareable"
		in.ShmPath = "/run/berth/0123/shm"
	}},
	{"net-host-cgroupns-host", func(in *Input) {
		in.Host.NetworkMode = "host"
		in.Host.CgroupnsMode = "host"
		in.Host.IpcMode = "host"
		in.Host.UTSMode = "host"
	}},
	{"init", func(in *Input) {
		in.Host.Init = ptr(true)
		in.InitPath = "/usr/libexec/berth/berth-init"
	}},
	{"no-new-privileges-seccomp-unconfined", func(in *Input) {
		in.Host.SecurityOpt = []string{"no-new-privileges", "seccomp=unconfined"}
	}},
	{"device", func(in *Input) {
		in.Host.Devices = []container.DeviceMapping{
			{PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm"},
			{PathOnHost: "/dev/snd", PathInContainer: "/dev/sound", CgroupPermissions: "rw"},
		}
		in.Host.DeviceCgroupRules = []string{"c 13:* rmw"}
		in.DeviceNodes = map[string][]Device{
			"/dev/fuse": {{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, Mode: 0o666}},
			"/dev/snd": {
				{Path: "/dev/snd/controlC0", Type: "c", Major: 116, Minor: 0, Mode: 0o660, GID: 29},
				{Path: "/dev/snd/timer", Type: "c", Major: 116, Minor: 33, Mode: 0o660, GID: 29},
			},
		}
	}},
	{"ulimit-oom-score", func(in *Input) {
		in.Host.Ulimits = []*container.Ulimit{
			{Name: "nofile", Soft: 1024, Hard: 2048},
			{Name: "core", Soft: 0, Hard: -1},
		}
		in.Host.OomScoreAdj = 500
	}},
	{"userns", func(in *Input) { in.Host.UsernsMode = "map=0:100000:65536" }},
	{"sysctl", func(in *Input) {
		in.Host.Sysctls = map[string]string{"net.core.somaxconn": "1024", "kernel.shmmax": "68719476736", "net.ipv4.ping_group_range": "0 0"}
	}},
	{"tty-env-workdir-entrypoint", func(in *Input) {
		in.Image.Env = append(in.Image.Env, "LANG=C.UTF-8", "FOO=from-image", "UNSET_ME=1")
		in.Image.WorkingDir = "/srv"
		in.Config.Tty, in.Config.OpenStdin = true, true
		in.Config.Env = []string{"FOO=bar", "PATH=/custom/bin:/bin", "UNSET_ME", "HOME=/tmp"}
		in.Config.WorkingDir = "/app"
		in.Config.Entrypoint = []string{"/bin/echo"}
		in.Config.Cmd = []string{"hello", "world"}
		in.Config.Hostname, in.Config.Domainname = "web", "example.org"
		in.Host.ConsoleSize = [2]uint{24, 80}
		in.Host.Annotations = map[string]string{"org.example/owner": "ops"}
	}},
}

func TestGenerateGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			tc.adapt(in)
			s, err := Generate(in)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			got, err := json.MarshalIndent(s, "", "\t")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", tc.name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run `go test -update` to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Generate(%s) differs from %s (run `go test -update` and review the diff):\n%s", tc.name, golden, got)
			}
		})
	}
}

// allNamespaces is a host that can create every namespace type.
var allNamespaces = ocispec.Host{Namespaces: map[specs.LinuxNamespaceType]bool{
	specs.PIDNamespace: true, specs.NetworkNamespace: true, specs.MountNamespace: true, specs.IPCNamespace: true,
	specs.UTSNamespace: true, specs.UserNamespace: true, specs.CgroupNamespace: true, specs.TimeNamespace: true,
}}

// Every golden spec must be one the runtime accepts.
func TestGeneratedSpecsValidate(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			tc.adapt(in)
			in.Rootfs = t.TempDir()
			s, err := Generate(in)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if err := ocispec.Validate(s, filepath.Dir(in.Rootfs), allNamespaces); err != nil {
				t.Errorf("ocispec.Validate: %v", err)
			}
		})
	}
}

// Docker's default profile, rendered for each capability set, compiles
// with berth's seccomp compiler, and capability-gated system calls follow
// --cap-add.
func TestDefaultSeccompFollowsCapabilities(t *testing.T) {
	allowed := func(s *specs.LinuxSeccomp, name string) bool {
		for _, sc := range s.Syscalls {
			if sc.Action == specs.ActAllow && len(sc.Args) == 0 && slices.Contains(sc.Names, name) {
				return true
			}
		}
		return false
	}
	for _, tc := range []struct {
		capAdd  []string
		syscall string
		want    bool
	}{
		{nil, "read", true},
		{nil, "mount", false},
		{[]string{"SYS_ADMIN"}, "mount", true},
		{nil, "settimeofday", false},
		{[]string{"CAP_SYS_TIME"}, "settimeofday", true},
		{nil, "init_module", false},
		{[]string{"SYS_MODULE"}, "init_module", true},
	} {
		in := baseInput()
		in.SeccompDefault = nil
		in.Host.CapAdd = tc.capAdd
		s, err := Generate(in)
		if err != nil {
			t.Fatalf("Generate(--cap-add %v): %v", tc.capAdd, err)
		}
		if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
			t.Fatalf("Generate(--cap-add %v): seccomp = %+v, want Docker's default profile", tc.capAdd, s.Linux.Seccomp)
		}
		if got := allowed(s.Linux.Seccomp, tc.syscall); got != tc.want {
			t.Errorf("Generate(--cap-add %v): %s allowed = %v, want %v", tc.capAdd, tc.syscall, got, tc.want)
		}
		if _, err := seccomp.Compile(s.Linux.Seccomp); err != nil {
			t.Errorf("Generate(--cap-add %v): the profile does not compile: %v", tc.capAdd, err)
		}
	}
}

func TestSeccompOptions(t *testing.T) {
	profile := `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod"],"action":"SCMP_ACT_ERRNO"}]}`
	for _, tc := range []struct {
		name       string
		opts       []string
		privileged bool
		want       string // "none", "default" or the default action of the profile
	}{
		{"default", nil, false, "default"},
		{"builtin", []string{"seccomp=builtin"}, false, "default"},
		{"unconfined", []string{"seccomp=unconfined"}, false, "none"},
		{"legacy colon", []string{"seccomp:unconfined"}, false, "none"},
		{"privileged", nil, true, "none"},
		{"privileged ignores a profile", []string{"seccomp=" + profile}, true, "none"},
		{"custom profile", []string{"seccomp=" + profile}, false, string(specs.ActAllow)},
	} {
		in := baseInput()
		in.SeccompDefault = nil
		in.Host.SecurityOpt = tc.opts
		in.Host.Privileged = tc.privileged
		s, err := Generate(in)
		if err != nil {
			t.Fatalf("%s: Generate: %v", tc.name, err)
		}
		got := "none"
		if sc := s.Linux.Seccomp; sc != nil {
			got = string(sc.DefaultAction)
			names := 0
			for _, c := range sc.Syscalls {
				names += len(c.Names)
			}
			if sc.DefaultAction == specs.ActErrno && names > 300 {
				got = "default" // Docker's profile allows some 370 names
			}
		}
		if got != tc.want {
			t.Errorf("%s: seccomp = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// The error table: each bad input names the flag at fault and is
// ErrInvalid, so the engine answers with exit code 125.
func TestGenerateErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		adapt func(*Input)
		want  string
	}{
		{"unknown cap", func(in *Input) { in.Host.CapAdd = []string{"FOO"} }, `--cap-add: unknown capability "FOO"`},
		{"unavailable cap", func(in *Input) {
			in.AvailableCaps = slices.DeleteFunc(slices.Clone(allCaps), func(c string) bool { return c == "CAP_SYS_RESOURCE" })
			in.Host.CapAdd = []string{"SYS_RESOURCE"}
		}, "--cap-add: capability CAP_SYS_RESOURCE is not available here"},
		{"unknown cap drop", func(in *Input) { in.Host.CapDrop = []string{"CAP_NOPE"} }, `--cap-drop: unknown capability "CAP_NOPE"`},
		{"unknown user", func(in *Input) { in.Config.User = "bob" }, `-u: no user "bob" in the image's /etc/passwd`},
		{"unknown user no passwd", func(in *Input) { in.Config.User = "bob"; in.Passwd = nil }, `-u: no user "bob": the image has no /etc/passwd`},
		{"unknown group", func(in *Input) { in.Config.User = "user:staff" }, `-u: no group "staff" in the image's /etc/group`},
		{"empty group", func(in *Input) { in.Config.User = "user:" }, `-u: "user:": empty group`},
		{"group-add unknown", func(in *Input) { in.Host.GroupAdd = []string{"video"} }, `--group-add: no group "video"`},
		{"no command", func(in *Input) { in.Image.Cmd = nil }, "no command specified"},
		{"entrypoint reset drops image cmd", func(in *Input) { in.Config.Entrypoint = []string{""} }, "no command specified"},
		{"relative workdir", func(in *Input) { in.Config.WorkingDir = "app" }, `-w: "app" is not an absolute path`},
		{"memory too small", func(in *Input) { in.Host.Memory = 4 << 20 }, "--memory: minimum memory limit allowed is 6MB"},
		{"swap without memory", func(in *Input) { in.Host.MemorySwap = 1 << 30 }, "--memory-swap: you should always set the memory limit"},
		{"swap below memory", func(in *Input) { in.Host.Memory, in.Host.MemorySwap = 512<<20, 256<<20 }, "--memory-swap: minimum memoryswap limit should be larger than memory limit"},
		{"reservation above memory", func(in *Input) { in.Host.Memory, in.Host.MemoryReservation = 64<<20, 128<<20 }, "--memory-reservation: the memory limit (--memory) can not be less than the memory reservation"},
		{"swappiness", func(in *Input) { in.Host.MemorySwappiness = ptr(int64(101)) }, "--memory-swappiness: invalid value 101"},
		{"cpus and period", func(in *Input) { in.Host.NanoCPUs, in.Host.CPUPeriod = 1e9, 50000 }, "--cpus: conflicting options: --cpus and --cpu-period"},
		{"cpus too small", func(in *Input) { in.Host.NanoCPUs = 1e6 }, "--cpus: range of CPUs starts at 0.01"},
		{"cpu period", func(in *Input) { in.Host.CPUPeriod = 10 }, "--cpu-period: CPU cfs period can not be less than 1ms"},
		{"cpu quota", func(in *Input) { in.Host.CPUQuota = 10 }, "--cpu-quota: CPU cfs quota can not be less than 1ms"},
		{"cpuset", func(in *Input) { in.Host.CpusetCpus = "0-x" }, `--cpuset-cpus: invalid value "0-x"`},
		{"blkio weight", func(in *Input) { in.Host.BlkioWeight = 5 }, "--blkio-weight: range of blkio weight is from 10 to 1000"},
		{"throttle on a char device", func(in *Input) {
			in.Host.BlkioDeviceReadBps = []*blkiodev.ThrottleDevice{{Path: "/dev/null", Rate: 1}}
			in.DeviceNodes = map[string][]Device{"/dev/null": {{Path: "/dev/null", Type: "c", Major: 1, Minor: 3}}}
		}, "--device-read-bps: /dev/null is not a block device"},
		{"throttle without node", func(in *Input) {
			in.Host.BlkioDeviceWriteBps = []*blkiodev.ThrottleDevice{{Path: "/dev/sdz", Rate: 1}}
		}, "--device-write-bps: no device node given for /dev/sdz"},
		{"device permissions", func(in *Input) {
			in.Host.Devices = []container.DeviceMapping{{PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwx"}}
		}, `--device: /dev/fuse: invalid permissions "rwx"`},
		{"device cgroup rule", func(in *Input) { in.Host.DeviceCgroupRules = []string{"c 1-3 rwm"} }, `--device-cgroup-rule: invalid rule "c 1-3 rwm"`},
		{"ulimit name", func(in *Input) { in.Host.Ulimits = []*container.Ulimit{{Name: "files", Soft: 1, Hard: 1}} }, `--ulimit: unknown limit "files"`},
		{"ulimit soft above hard", func(in *Input) { in.Host.Ulimits = []*container.Ulimit{{Name: "nofile", Soft: 10, Hard: 5}} }, "--ulimit: nofile=10:5: the soft limit must not be above the hard limit"},
		{"oom score", func(in *Input) { in.Host.OomScoreAdj = 2000 }, "--oom-score-adj: invalid value 2000"},
		{"security opt", func(in *Input) { in.Host.SecurityOpt = []string{"foo=bar"} }, `--security-opt: invalid option "foo=bar"`},
		{"security opt nnp value", func(in *Input) { in.Host.SecurityOpt = []string{"no-new-privileges=maybe"} }, `--security-opt: invalid option "no-new-privileges=maybe"`},
		{"seccomp path not read", func(in *Input) { in.Host.SecurityOpt = []string{"seccomp=/etc/profile.json"} }, "--security-opt: seccomp=/etc/profile.json: want unconfined, builtin or a profile's JSON"},
		{"seccomp bad json", func(in *Input) { in.Host.SecurityOpt = []string{"seccomp={bad"} }, "--security-opt: seccomp profile: "},
		{"selinux label", func(in *Input) { in.Host.SecurityOpt = []string{"label=type:svirt_t"} }, "--security-opt: label=type:svirt_t: SELinux labels are not supported"},
		{"bind relative", func(in *Input) { in.Host.Binds = []string{"./data:/data"} }, `-v: "./data" includes invalid characters for a local volume name`},
		{"bind dest relative", func(in *Input) { in.Host.Binds = []string{"/srv:data"} }, `-v: invalid mount path "data": a mount path must be absolute`},
		{"bind dest root", func(in *Input) { in.Host.Binds = []string{"/srv:/"} }, `-v: invalid mount path "/": the destination can't be '/'`},
		{"bind too many parts", func(in *Input) { in.Host.Binds = []string{"/a:/b:ro:x"} }, `-v: invalid volume specification "/a:/b:ro:x"`},
		{"bind bad mode", func(in *Input) { in.Host.Binds = []string{"/a:/b:rx"} }, `-v: invalid mode "rx" in "/a:/b:rx"`},
		{"bind ro twice", func(in *Input) { in.Host.Binds = []string{"/a:/b:ro,rw"} }, `-v: invalid mode "ro,rw"`},
		{"volume propagation", func(in *Input) {
			in.Host.Binds = []string{"data:/b:rshared"}
			in.Volumes = map[string]string{"data": "/v/data"}
		}, "-v: invalid mode \"rshared\" in \"data:/b:rshared\": propagation applies to bind mounts only"},
		{"volume not given", func(in *Input) { in.Host.Binds = []string{"data:/data"} }, `-v: volume "data": no host directory given for it`},
		{"duplicate mount point", func(in *Input) {
			in.Host.Binds = []string{"/a:/data"}
			in.Host.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: "/b", Target: "/data/"}}
		}, "--mount: duplicate mount point /data (also given by -v)"},
		{"mount type", func(in *Input) { in.Host.Mounts = []mount.Mount{{Type: mount.TypeImage, Source: "img", Target: "/x"}} }, `--mount: type "image" is not supported`},
		{"mount bind relative", func(in *Input) { in.Host.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: "rel", Target: "/x"}} }, `--mount: type bind: invalid source "rel": the path must be absolute`},
		{"mount tmpfs source", func(in *Input) { in.Host.Mounts = []mount.Mount{{Type: mount.TypeTmpfs, Source: "x", Target: "/x"}} }, "--mount: type tmpfs: field Source must not be specified"},
		{"mount bind with volume options", func(in *Input) {
			in.Host.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: "/a", Target: "/x", VolumeOptions: &mount.VolumeOptions{}}}
		}, "--mount: type bind: field VolumeOptions must not be specified"},
		{"volume subpath escapes", func(in *Input) {
			in.Host.Mounts = []mount.Mount{{Type: mount.TypeVolume, Source: "data", Target: "/x", VolumeOptions: &mount.VolumeOptions{Subpath: "../etc"}}}
		}, `--mount: type volume: subpath "../etc" must be a clean relative path`},
		{"tmpfs option", func(in *Input) { in.Host.Tmpfs = map[string]string{"/run": "size=1m,bogus"} }, `--tmpfs: invalid tmpfs option "bogus" for /run`},
		{"tmpfs dest", func(in *Input) { in.Host.Tmpfs = map[string]string{"run": ""} }, `--tmpfs: invalid mount path "run"`},
		{"pid mode", func(in *Input) { in.Host.PidMode = "bogus" }, `--pid: invalid mode "bogus"`},
		{"ipc mode", func(in *Input) { in.Host.IpcMode = "bogus" }, `--ipc: invalid mode "bogus"`},
		{"cgroupns mode", func(in *Input) { in.Host.CgroupnsMode = "bogus" }, `--cgroupns: invalid mode "bogus"`},
		{"join without path", func(in *Input) { in.Host.PidMode = "container:web" }, "--pid: the namespace of the container to join was not given"},
		{"join without name", func(in *Input) { in.Host.PidMode = "container:" }, `--pid: "container:": no container named`},
		{"ipc container without shm", func(in *Input) {
			in.Host.IpcMode = "container:web"
			in.Namespaces = map[specs.LinuxNamespaceType]string{specs.IPCNamespace: "/proc/self/ns/ipc"}
		}, "--ipc: container:web: no /dev/shm of that container given"},
		{"userns syntax", func(in *Input) { in.Host.UsernsMode = "map=0:1" }, "--userns: map=0:1: want CONTAINER_ID:HOST_ID:SIZE"},
		{"userns mode", func(in *Input) { in.Host.UsernsMode = "keep-id" }, `--userns: invalid mode "keep-id"`},
		{"userns auto without range", func(in *Input) { in.Host.UsernsMode = "auto" }, "--userns: auto: no id range was allocated"},
		{"userns privileged", func(in *Input) { in.Host.UsernsMode = "map=0:100000:65536"; in.Host.Privileged = true }, "--userns: privileged mode is incompatible with user namespaces"},
		{"userns net host", func(in *Input) { in.Host.UsernsMode = "map=0:100000:65536"; in.Host.NetworkMode = "host" }, "--userns: cannot share the host's network namespace"},
		{"hostname with uts host", func(in *Input) { in.Host.UTSMode = "host"; in.Config.Hostname = "x" }, "--hostname: conflicting options: a hostname cannot be set with --uts host"},
		{"sysctl not namespaced", func(in *Input) { in.Host.Sysctls = map[string]string{"vm.swappiness": "1"} }, "--sysctl: vm.swappiness: not a namespaced sysctl"},
		{"sysctl net with net host", func(in *Input) {
			in.Host.NetworkMode = "host"
			in.Host.Sysctls = map[string]string{"net.core.somaxconn": "1"}
		}, "--sysctl: net.core.somaxconn: not allowed with --network host"},
		{"sysctl ipc with ipc host", func(in *Input) {
			in.Host.IpcMode = "host"
			in.Host.Sysctls = map[string]string{"kernel.shmmax": "1"}
		}, "--sysctl: kernel.shmmax: not allowed with --ipc host"},
		{"domainname with uts host", func(in *Input) { in.Host.UTSMode = "host"; in.Config.Domainname = "x" }, "--domainname: conflicting options"},
		{"gpus", func(in *Input) { in.Host.DeviceRequests = []container.DeviceRequest{{Count: -1}} }, "--gpus: device requests (GPUs) are not supported"},
		{"init without binary", func(in *Input) { in.Host.Init = ptr(true) }, "--init: no init binary"},
		{"shm size", func(in *Input) { in.Host.ShmSize = -1 }, "--shm-size: -1: must not be negative"},
	} {
		in := baseInput()
		tc.adapt(in)
		_, err := Generate(in)
		if err == nil {
			t.Errorf("%s: Generate succeeded, want an error containing %q", tc.name, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Generate error = %q, want it to contain %q", tc.name, err, tc.want)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Generate error %q is not ErrInvalid", tc.name, err)
		}
	}
}

// Errors that are the engine's, not the user's, are not ErrInvalid.
func TestGenerateEngineErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		adapt func(*Input)
		want  string
	}{
		{"short id", func(in *Input) { in.ID = "abc" }, `ID "abc" is not 64 lower-case hex digits`},
		{"relative rootfs", func(in *Input) { in.Rootfs = "rootfs" }, `Rootfs "rootfs" is not an absolute path`},
		{"no config", func(in *Input) { in.Config = nil }, "Config and its Host must be set"},
		{"path for a host namespace", func(in *Input) {
			in.Host.NetworkMode = "host"
			in.Namespaces = map[specs.LinuxNamespaceType]string{specs.NetworkNamespace: "/proc/self/ns/net"}
		}, "namespace network: a path (/proc/self/ns/net) is given but the container uses the host's"},
	} {
		in := baseInput()
		tc.adapt(in)
		_, err := Generate(in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Generate error = %v, want it to contain %q", tc.name, err, tc.want)
			continue
		}
		if errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Generate error %q is ErrInvalid, want an engine error", tc.name, err)
		}
	}
}

func TestCommand(t *testing.T) {
	img, imgCmd := []string{"/entry"}, []string{"default-arg"}
	for _, tc := range []struct {
		name       string
		entrypoint []string
		cmd        []string
		want       []string
	}{
		{"image's entrypoint and cmd", nil, nil, []string{"/entry", "default-arg"}},
		{"user cmd replaces image cmd", nil, []string{"x"}, []string{"/entry", "x"}},
		{"user entrypoint drops image cmd", []string{"/other"}, nil, []string{"/other"}},
		{"user entrypoint and cmd", []string{"/other"}, []string{"y"}, []string{"/other", "y"}},
		{"empty entrypoint keeps image cmd", []string{}, nil, []string{"default-arg"}},
		{"reset entrypoint with cmd", []string{""}, []string{"sh"}, []string{"sh"}},
	} {
		got, err := command(img, imgCmd, &container.Config{Entrypoint: tc.entrypoint, Cmd: tc.cmd})
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: command = %q, %v, want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name      string
		image     []string
		user      []string
		tty       bool
		home      string
		want      []string
		wantOrder bool
	}{
		{"defaults", nil, nil, false, "/root",
			[]string{"PATH=" + DefaultPath, "HOSTNAME=h", "HOME=/root"}, true},
		{"tty", nil, nil, true, "/",
			[]string{"PATH=" + DefaultPath, "HOSTNAME=h", "TERM=xterm", "HOME=/"}, true},
		{"image PATH replaces the default in place", []string{"PATH=/x", "A=1"}, nil, false, "/",
			[]string{"PATH=/x", "HOSTNAME=h", "A=1", "HOME=/"}, true},
		{"user wins over image", []string{"A=1", "B=2"}, []string{"A=u"}, false, "/",
			[]string{"PATH=" + DefaultPath, "HOSTNAME=h", "A=u", "B=2", "HOME=/"}, true},
		{"later user value wins", nil, []string{"A=1", "A=2"}, false, "/",
			[]string{"PATH=" + DefaultPath, "HOSTNAME=h", "A=2", "HOME=/"}, true},
		{"bare key unsets", []string{"A=1"}, []string{"A", "TERM"}, true, "/",
			[]string{"PATH=" + DefaultPath, "HOSTNAME=h", "HOME=/"}, true},
		{"user HOME kept", nil, []string{"HOME=/data"}, false, "/root",
			[]string{"PATH=" + DefaultPath, "HOSTNAME=h", "HOME=/data"}, true},
		{"user HOSTNAME wins", nil, []string{"HOSTNAME=x"}, false, "/",
			[]string{"PATH=" + DefaultPath, "HOSTNAME=x", "HOME=/"}, true},
	} {
		got := environment(tc.image, tc.user, "h", tc.tty, tc.home)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: environment = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestResolveUser(t *testing.T) {
	for _, tc := range []struct {
		spec             string
		passwd, group    string
		uid, gid         uint32
		sgids            []uint32
		home             string
		wantErrSubstring string
	}{
		{spec: "", passwd: testPasswd, group: testGroup, uid: 0, gid: 0, home: "/root"},
		{spec: "user", passwd: testPasswd, group: testGroup, uid: 1000, gid: 1000, sgids: []uint32{10, 29}, home: "/home/user"},
		{spec: "1000", passwd: testPasswd, group: testGroup, uid: 1000, gid: 1000, sgids: []uint32{10, 29}, home: "/home/user"},
		{spec: "user:wheel", passwd: testPasswd, group: testGroup, uid: 1000, gid: 10, home: "/home/user"},
		{spec: "user:29", passwd: testPasswd, group: testGroup, uid: 1000, gid: 29, home: "/home/user"},
		{spec: "4242", passwd: testPasswd, group: testGroup, uid: 4242, gid: 0, home: "/"},
		{spec: "4242:4343", uid: 4242, gid: 4343, home: "/"},
		{spec: "0", uid: 0, gid: 0, home: "/"},
		{spec: "nobody:", wantErrSubstring: "empty group"},
		{spec: ":1", wantErrSubstring: "empty user name"},
		{spec: "user", passwd: "", wantErrSubstring: `no user "user": the image has no /etc/passwd`},
		{spec: "99999999999", wantErrSubstring: "no user"},
	} {
		var passwd, group []byte
		if tc.passwd != "" {
			passwd = []byte(tc.passwd)
		}
		if tc.group != "" {
			group = []byte(tc.group)
		}
		u, err := resolveUser(tc.spec, passwd, group)
		if tc.wantErrSubstring != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstring) {
				t.Errorf("resolveUser(%q) error = %v, want one containing %q", tc.spec, err, tc.wantErrSubstring)
			}
			continue
		}
		if err != nil {
			t.Errorf("resolveUser(%q): %v", tc.spec, err)
			continue
		}
		if u.uid != tc.uid || u.gid != tc.gid || !slices.Equal(u.sgids, tc.sgids) || u.home != tc.home {
			t.Errorf("resolveUser(%q) = uid %d gid %d sgids %v home %q, want %d %d %v %q",
				tc.spec, u.uid, u.gid, u.sgids, u.home, tc.uid, tc.gid, tc.sgids, tc.home)
		}
	}
}

func TestCapabilities(t *testing.T) {
	for _, tc := range []struct {
		name      string
		add, drop []string
		want      []string // nil: check wantHas/wantNot only
		wantHas   []string
		wantNot   []string
	}{
		{name: "default", want: DefaultCapabilities},
		{name: "drop one add one", add: []string{"sys_admin"}, drop: []string{"NET_RAW"},
			wantHas: []string{"CAP_SYS_ADMIN", "CAP_CHOWN"}, wantNot: []string{"CAP_NET_RAW"}},
		{name: "drop all add one", add: []string{"CAP_NET_ADMIN"}, drop: []string{"all"}, want: []string{"CAP_NET_ADMIN"}},
		{name: "add all drop one", add: []string{"ALL"}, drop: []string{"SYS_ADMIN"},
			wantHas: []string{"CAP_SYS_MODULE", "CAP_CHOWN"}, wantNot: []string{"CAP_SYS_ADMIN"}},
		{name: "adding a default one keeps one copy", add: []string{"CHOWN"}, want: DefaultCapabilities},
	} {
		got, err := capabilities(&container.HostConfig{CapAdd: tc.add, CapDrop: tc.drop}, allCaps)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if tc.want != nil && !slices.Equal(got, tc.want) {
			t.Errorf("%s: capabilities = %v, want %v", tc.name, got, tc.want)
		}
		for _, c := range tc.wantHas {
			if !slices.Contains(got, c) {
				t.Errorf("%s: capabilities = %v, want %s in it", tc.name, got, c)
			}
		}
		for _, c := range tc.wantNot {
			if slices.Contains(got, c) {
				t.Errorf("%s: capabilities = %v, want no %s", tc.name, got, c)
			}
		}
	}
}

func TestMemorySwap(t *testing.T) {
	for _, tc := range []struct {
		name             string
		memory, swap     int64
		noSwapLimit      bool
		wantLimit, wantS *int64
	}{
		{"default swap is twice the memory", 256 << 20, 0, false, ptr(int64(256 << 20)), ptr(int64(512 << 20))},
		{"explicit swap", 256 << 20, 300 << 20, false, ptr(int64(256 << 20)), ptr(int64(300 << 20))},
		{"unlimited swap leaves it unset", 256 << 20, -1, false, ptr(int64(256 << 20)), nil},
		{"no swap accounting drops it", 256 << 20, 1 << 30, true, ptr(int64(256 << 20)), nil},
		{"no memory limit", 0, 0, false, nil, nil},
	} {
		m, err := memory(&container.Resources{Memory: tc.memory, MemorySwap: tc.swap}, tc.noSwapLimit)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var limit, swap *int64
		if m != nil {
			limit, swap = m.Limit, m.Swap
		}
		if !eqPtr(limit, tc.wantLimit) || !eqPtr(swap, tc.wantS) {
			t.Errorf("%s: limit %v swap %v, want %v %v", tc.name, deref(limit), deref(swap), deref(tc.wantLimit), deref(tc.wantS))
		}
	}
}

func eqPtr(a, b *int64) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }
func deref(a *int64) any {
	if a == nil {
		return "unset"
	}
	return *a
}

func TestTmpfsOptionsMerge(t *testing.T) {
	for _, tc := range []struct {
		data string
		want []string
	}{
		{"", []string{"noexec", "nosuid", "nodev", "rprivate"}},
		{"exec", []string{"nosuid", "nodev", "rprivate", "exec"}},
		{"size=64m,size=128m", []string{"noexec", "nosuid", "nodev", "rprivate", "size=128m"}},
		{"rshared,ro,rw", []string{"noexec", "nosuid", "nodev", "rshared", "rw"}},
	} {
		um, err := tmpfsMount("--tmpfs", "/t", tc.data)
		if err != nil || !slices.Equal(um.m.Options, tc.want) {
			t.Errorf("tmpfsMount(%q) = %q, %v, want %q", tc.data, um.m.Options, err, tc.want)
		}
	}
}

func TestTmpfsMountOptions(t *testing.T) {
	for _, tc := range []struct {
		o        *mount.TmpfsOptions
		readonly bool
		want     string
	}{
		{nil, false, ""},
		{nil, true, "ro"},
		{&mount.TmpfsOptions{Mode: 0o1777}, false, "mode=1777"},
		{&mount.TmpfsOptions{Mode: os.ModeSticky | 0o777}, false, "mode=1777"},
		{&mount.TmpfsOptions{SizeBytes: 3 << 30}, false, "size=3g"},
		{&mount.TmpfsOptions{SizeBytes: 1536 << 10}, false, "size=1536k"},
		{&mount.TmpfsOptions{SizeBytes: 1000}, false, "size=1000"},
		{&mount.TmpfsOptions{Options: [][]string{{"exec"}, {"uid", "1000"}}}, false, "exec,uid=1000"},
	} {
		got, err := tmpfsData(tc.o, tc.readonly)
		if err != nil || got != tc.want {
			t.Errorf("tmpfsData(%+v, ro=%v) = %q, %v, want %q", tc.o, tc.readonly, got, err, tc.want)
		}
	}
}

func TestMountOrderAndOverrides(t *testing.T) {
	in := baseInput()
	in.Host.Binds = []string{"/h/etc-app:/etc/app/conf.d", "/h/etc:/etc/app", "/h/hosts:/etc/hosts"}
	in.Host.Tmpfs = map[string]string{"/dev/shm": "size=1g"}
	s, err := Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	var dests []string
	sources := map[string]string{}
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
		sources[m.Destination] = m.Source
	}
	want := []string{"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue",
		"/etc/app", "/etc/hosts", "/dev/shm", "/etc/hostname", "/etc/resolv.conf", "/etc/app/conf.d"}
	if !slices.Equal(dests, want) {
		t.Errorf("mount destinations = %q, want %q", dests, want)
	}
	if sources["/etc/hosts"] != "/h/hosts" {
		t.Errorf("/etc/hosts from %q, want the user's /h/hosts over the engine's file", sources["/etc/hosts"])
	}
	if sources["/dev/shm"] != "tmpfs" {
		t.Errorf("/dev/shm from %q, want the user's tmpfs", sources["/dev/shm"])
	}

	// A user /dev replaces every default below /dev.
	in = baseInput()
	in.Host.Binds = []string{"/h/dev:/dev"}
	if s, err = Generate(in); err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Mounts {
		if strings.HasPrefix(m.Destination, "/dev") && m.Source != "/h/dev" {
			t.Errorf("mount %s (%s) kept under a user /dev", m.Destination, m.Type)
		}
	}
}

// Generate must not keep or change what the caller owns.
func TestGenerateDoesNotAliasInput(t *testing.T) {
	in := baseInput()
	in.Host.OomScoreAdj = 100
	in.IDMap = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	in.Host.UsernsMode = "auto"
	s, err := Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	*s.Process.OOMScoreAdj = 7
	s.Linux.UIDMappings[0].HostID = 1
	s.Linux.Seccomp.Syscalls[0].Action = specs.ActKill
	if in.Host.OomScoreAdj != 100 || in.IDMap[0].HostID != 100000 || stubSeccomp.Syscalls[0].Action != specs.ActAllow {
		t.Errorf("changing the spec changed the input")
	}
}

func TestMaskedPaths(t *testing.T) {
	for _, tc := range []struct {
		name             string
		adapt            func(*Input)
		masked, readonly []string
		wantNoneAtAll    bool
	}{
		{"default", func(*Input) {}, DefaultMaskedPaths, DefaultReadonlyPaths, false},
		{"host extras", func(in *Input) { in.HostMaskedPaths = []string{"/sys/devices/system/cpu/cpu0/thermal_throttle"} },
			append(slices.Clone(DefaultMaskedPaths), "/sys/devices/system/cpu/cpu0/thermal_throttle"), DefaultReadonlyPaths, false},
		{"privileged", func(in *Input) { in.Host.Privileged = true }, nil, nil, true},
		{"systempaths=unconfined", func(in *Input) { in.Host.SecurityOpt = []string{"systempaths=unconfined"} }, nil, nil, true},
		{"API override of masked only", func(in *Input) { in.Host.MaskedPaths = []string{"/proc/x"} }, []string{"/proc/x"}, DefaultReadonlyPaths, false},
		{"API empty lists", func(in *Input) { in.Host.MaskedPaths, in.Host.ReadonlyPaths = []string{}, []string{} }, nil, nil, true},
	} {
		in := baseInput()
		tc.adapt(in)
		s, err := Generate(in)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.wantNoneAtAll {
			if len(s.Linux.MaskedPaths)+len(s.Linux.ReadonlyPaths) != 0 {
				t.Errorf("%s: masked %q read-only %q, want none", tc.name, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
			continue
		}
		if !slices.Equal(s.Linux.MaskedPaths, tc.masked) || !slices.Equal(s.Linux.ReadonlyPaths, tc.readonly) {
			t.Errorf("%s: masked %q read-only %q, want %q %q", tc.name, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, tc.masked, tc.readonly)
		}
	}
}

// --privileged and --cap-add ALL grant what the engine holds, not more.
func TestCapabilitiesBoundedByEngine(t *testing.T) {
	held := slices.DeleteFunc(slices.Clone(allCaps), func(c string) bool { return c == "CAP_SYS_RESOURCE" })
	for _, h := range []*container.HostConfig{{Privileged: true}, {CapAdd: []string{"ALL"}}} {
		got, err := capabilities(h, held)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(got, "CAP_SYS_RESOURCE") || len(got) != len(held) {
			t.Errorf("capabilities(privileged=%v, add=%v) = %d caps (SYS_RESOURCE: %v), want the %d the engine holds",
				h.Privileged, h.CapAdd, len(got), slices.Contains(got, "CAP_SYS_RESOURCE"), len(held))
		}
	}
}

func TestSecurityOptForms(t *testing.T) {
	for _, tc := range []struct {
		opts []string
		nnp  bool
	}{
		{[]string{"no-new-privileges"}, true},
		{[]string{"no-new-privileges=true"}, true},
		{[]string{"no-new-privileges:true"}, true},
		{[]string{"no-new-privileges=false"}, false},
		{[]string{"no-new-privileges", "no-new-privileges=false"}, false},
		{[]string{"label=disable", "apparmor=unconfined"}, false},
	} {
		in := baseInput()
		in.Host.SecurityOpt = tc.opts
		s, err := Generate(in)
		if err != nil {
			t.Errorf("--security-opt %q: %v", tc.opts, err)
			continue
		}
		if s.Process.NoNewPrivileges != tc.nnp || s.Process.ApparmorProfile != "" {
			t.Errorf("--security-opt %q: noNewPrivileges %v apparmor %q, want %v and none", tc.opts, s.Process.NoNewPrivileges, s.Process.ApparmorProfile, tc.nnp)
		}
	}
}
