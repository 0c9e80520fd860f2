package ocispec

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var update = flag.Bool("update", false, "rewrite golden files")

// allHost supports everything, so tests do not depend on this machine.
var allHost = Host{Namespaces: map[specs.LinuxNamespaceType]bool{
	specs.PIDNamespace: true, specs.NetworkNamespace: true, specs.MountNamespace: true, specs.IPCNamespace: true,
	specs.UTSNamespace: true, specs.UserNamespace: true, specs.CgroupNamespace: true, specs.TimeNamespace: true,
}}

func bundle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDefaultValidates(t *testing.T) {
	if err := Validate(Default(), bundle(t), allHost); err != nil {
		t.Fatalf("Validate(Default()) = %v, want nil", err)
	}
	s := Default()
	MakeRootless(s, 1000, 1000)
	if err := Validate(s, bundle(t), allHost); err != nil {
		t.Fatalf("Validate(rootless Default()) = %v, want nil", err)
	}
}

func TestDefaultGolden(t *testing.T) {
	got, err := json.MarshalIndent(Default(), "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "default.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("Default() differs from %s; run go test -update if the change is intended:\n%s", golden, got)
	}
}

func TestValidateErrors(t *testing.T) {
	i := func(v int) *int { return &v }
	tests := []struct {
		name   string
		adapt  func(s *specs.Spec)
		host   *Host
		errSub string
	}{
		{"no version", func(s *specs.Spec) { s.Version = "" }, nil, "ociVersion: must be set"},
		{"version 2", func(s *specs.Spec) { s.Version = "2.0.0" }, nil, `ociVersion: "2.0.0" is not a 1.x version`},
		{"no root", func(s *specs.Spec) { s.Root = nil }, nil, "root.path: must be set"},
		{"missing rootfs", func(s *specs.Spec) { s.Root.Path = "nope" }, nil, "root.path: stat"},
		{"no process", func(s *specs.Spec) { s.Process = nil }, nil, "process: must be set"},
		{"empty args", func(s *specs.Spec) { s.Process.Args = nil }, nil, "process.args: must name a program"},
		{"relative cwd", func(s *specs.Spec) { s.Process.Cwd = "tmp" }, nil, `process.cwd: "tmp" is not an absolute path`},
		{"bad env", func(s *specs.Spec) { s.Process.Env = []string{"A=1", "B"} }, nil, `process.env[1]: "B" is not KEY=value`},
		{"unknown capability", func(s *specs.Spec) { s.Process.Capabilities.Bounding = []string{"CAP_KILL", "CAP_NOPE"} }, nil,
			`process.capabilities.bounding[1]: unknown capability "CAP_NOPE"`},
		{"unknown rlimit", func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_FOO"}} }, nil,
			`process.rlimits[0].type: unknown rlimit "RLIMIT_FOO"`},
		{"soft above hard", func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 5}}
		}, nil,
			"process.rlimits[0]: soft limit 10 is above the hard limit 5"},
		{"oom score out of range", func(s *specs.Spec) { s.Process.OOMScoreAdj = i(2000) }, nil, "process.oomScoreAdj: 2000 is outside -1000..1000"},
		{"apparmor without apparmor", func(s *specs.Spec) { s.Process.ApparmorProfile = "p" }, nil,
			"process.apparmorProfile: AppArmor is not enabled on this host"},
		{"selinux without selinux", func(s *specs.Spec) { s.Process.SelinuxLabel = "l" }, nil,
			"process.selinuxLabel: SELinux is not enabled on this host"},
		{"unknown namespace", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "foo"})
		}, nil, `linux.namespaces[6].type: unknown namespace type "foo"`},
		{"namespace twice", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "pid"})
		}, nil, `linux.namespaces[6].type: namespace "pid" listed twice`},
		{"unsupported namespace", func(s *specs.Spec) {}, &Host{Namespaces: map[specs.LinuxNamespaceType]bool{}},
			"linux.namespaces[0].type: the kernel does not support pid namespaces"},
		{"relative namespace path", func(s *specs.Spec) { s.Linux.Namespaces[1].Path = "net" }, nil,
			`linux.namespaces[1].path: "net" is not absolute`},
		{"missing namespace path", func(s *specs.Spec) { s.Linux.Namespaces[1].Path = "/nonexistent/ns" }, nil,
			"linux.namespaces[1].path: stat /nonexistent/ns"},
		{"mappings without user ns", func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 1}}
		}, nil, "linux.uidMappings: mappings need a user namespace"},
		{"user ns without mappings", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
		}, nil, "linux.uidMappings: a new user namespace needs at least one mapping"},
		{"zero-size mapping", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 0}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 1}}
		}, nil, "linux.uidMappings[0].size: must be greater than zero"},
		{"overlapping mappings", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "user"})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 10}, {ContainerID: 5, HostID: 5000, Size: 10}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 1}}
		}, nil, "linux.uidMappings[1]: containerID range overlaps linux.uidMappings[0]"},
		{"hostname without uts", func(s *specs.Spec) { s.Linux.Namespaces = s.Linux.Namespaces[:3] }, nil,
			"hostname: needs a new uts namespace"},
		{"host sysctl", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"vm.swappiness": "1"} }, nil,
			`linux.sysctl["vm.swappiness"]: not namespaced; it would change the host`},
		{"net sysctl without netns", func(s *specs.Spec) {
			s.Linux.Namespaces = []specs.LinuxNamespace{{Type: "pid"}, {Type: "mount"}, {Type: "uts"}}
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		}, nil, `linux.sysctl["net.ipv4.ip_forward"]: needs a network namespace`},
		{"not a sysctl", func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"net": "1"} }, nil,
			`linux.sysctl["net"]: not a sysctl name`},
		{"relative hook", func(s *specs.Spec) { s.Hooks = &specs.Hooks{Poststop: []specs.Hook{{Path: "hook"}}} }, nil,
			`hooks.poststop[0].path: "hook" is not absolute`},
		{"zero hook timeout", func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/true", Timeout: i(0)}}}
		}, nil, "hooks.createRuntime[0].timeout: must be greater than zero"},
		{"bad device type", func(s *specs.Spec) { s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "z"}} }, nil,
			`linux.devices[0].type: unknown device type "z"`},
		{"offsets without time ns", func(s *specs.Spec) {
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 1}}
		}, nil, "linux.timeOffsets: needs a new time namespace"},
		{"unknown clock", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "time"})
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"realtime": {Secs: 1}}
		}, nil, `linux.timeOffsets: unknown clock "realtime"`},
		{"intel rdt", func(s *specs.Spec) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{} }, nil, "linux.intelRdt: Intel RDT is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Default()
			tt.adapt(s)
			h := allHost
			if tt.host != nil {
				h = *tt.host
			}
			err := Validate(s, bundle(t), h)
			if err == nil || !strings.Contains(err.Error(), tt.errSub) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.errSub)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate() = %v, want errors.Is(err, ErrInvalid)", err)
			}
		})
	}
}

func TestLoadNamesTheField(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"ociVersion": "1.0.0", "process": {"args": "sh"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "process.args") {
		t.Fatalf("Load() = %v, want an error naming process.args", err)
	}
}

func TestIsSysctlName(t *testing.T) {
	for k, want := range map[string]bool{
		"net.ipv4.ip_forward": true, "kernel.shmmax": true, "net.ipv4.conf.eth0@1.forwarding": true,
		"net": false, "net..x": false, "Net.ipv4": false, "net.ipv4/x": false, "": false,
	} {
		if got := isSysctlName(k); got != want {
			t.Errorf("isSysctlName(%q) = %v, want %v", k, got, want)
		}
	}
}
