package ocispec

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/caps"
)

// Host describes what the running system offers; Validate checks a config
// against it. CurrentHost reads it from the kernel.
type Host struct {
	Namespaces map[specs.LinuxNamespaceType]bool // kernel supports creating it
	AppArmor   bool
	SELinux    bool
}

// CurrentHost returns the facts of this machine.
func CurrentHost() Host {
	h := Host{Namespaces: map[specs.LinuxNamespaceType]bool{}}
	for t, f := range nsFiles {
		if _, err := os.Stat("/proc/self/ns/" + f); err == nil {
			h.Namespaces[t] = true
		}
	}
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && strings.HasPrefix(string(b), "Y") {
		h.AppArmor = true
	}
	if _, err := os.Stat("/sys/fs/selinux/enforce"); err == nil {
		h.SELinux = true
	}
	return h
}

// nsFiles maps each namespace type to its /proc/PID/ns entry.
var nsFiles = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace:     "pid",
	specs.NetworkNamespace: "net",
	specs.MountNamespace:   "mnt",
	specs.IPCNamespace:     "ipc",
	specs.UTSNamespace:     "uts",
	specs.UserNamespace:    "user",
	specs.CgroupNamespace:  "cgroup",
	specs.TimeNamespace:    "time",
}

// NSFile returns the /proc/PID/ns entry name of a namespace type.
func NSFile(t specs.LinuxNamespaceType) (string, bool) {
	f, ok := nsFiles[t]
	return f, ok
}

var rlimitTypes = map[string]bool{
	"RLIMIT_AS": true, "RLIMIT_CORE": true, "RLIMIT_CPU": true, "RLIMIT_DATA": true,
	"RLIMIT_FSIZE": true, "RLIMIT_LOCKS": true, "RLIMIT_MEMLOCK": true, "RLIMIT_MSGQUEUE": true,
	"RLIMIT_NICE": true, "RLIMIT_NOFILE": true, "RLIMIT_NPROC": true, "RLIMIT_RSS": true,
	"RLIMIT_RTPRIO": true, "RLIMIT_RTTIME": true, "RLIMIT_SIGPENDING": true, "RLIMIT_STACK": true,
}

// Validate checks s (the config of a bundle at bundle) for create. It does
// not check mounts and seccomp, which their own packages validate.
func Validate(s *specs.Spec, bundle string, h Host) error {
	if s.Version == "" {
		return invalid("ociVersion: must be set")
	}
	if !strings.HasPrefix(s.Version, "1.") {
		return invalid("ociVersion: %q is not a 1.x version", s.Version)
	}
	if s.Root == nil || s.Root.Path == "" {
		return invalid("root.path: must be set")
	}
	root := RootfsPath(bundle, s)
	if st, err := os.Stat(root); err != nil {
		return invalid("root.path: %v", err)
	} else if !st.IsDir() {
		return invalid("root.path: %s is not a directory", root)
	}
	if s.Process == nil {
		return invalid("process: must be set to create a container")
	}
	if s.Linux == nil {
		return invalid("linux: must be set on Linux")
	}
	ns, err := validateNamespaces(s.Linux, h)
	if err != nil {
		return err
	}
	if err := ValidateProcess("process", s.Process, h); err != nil {
		return err
	}
	if s.Hostname != "" && !ns[specs.UTSNamespace] {
		return invalid("hostname: needs a new uts namespace (linux.namespaces has none)")
	}
	if s.Domainname != "" && !ns[specs.UTSNamespace] {
		return invalid("domainname: needs a new uts namespace (linux.namespaces has none)")
	}
	if err := validateSysctls(s.Linux.Sysctl, ns); err != nil {
		return err
	}
	if err := validateHooks(s.Hooks); err != nil {
		return err
	}
	if err := validateDevices(s.Linux.Devices); err != nil {
		return err
	}
	if len(s.Linux.TimeOffsets) > 0 && !ns[specs.TimeNamespace] {
		return invalid("linux.timeOffsets: needs a new time namespace (linux.namespaces has none)")
	}
	for clock := range s.Linux.TimeOffsets {
		if clock != "monotonic" && clock != "boottime" {
			return invalid("linux.timeOffsets: unknown clock %q (want monotonic or boottime)", clock)
		}
	}
	if s.Linux.IntelRdt != nil {
		return invalid("linux.intelRdt: Intel RDT is not supported by berth-runtime")
	}
	if len(s.Linux.NetDevices) > 0 {
		return invalid("linux.netDevices: moving network devices is not supported by berth-runtime")
	}
	if s.Linux.MemoryPolicy != nil {
		return invalid("linux.memoryPolicy: NUMA memory policies are not supported by berth-runtime")
	}
	if p := s.Linux.Personality; p != nil {
		if p.Domain != specs.PerLinux && p.Domain != specs.PerLinux32 {
			return invalid("linux.personality.domain: unknown domain %q", p.Domain)
		}
		if len(p.Flags) > 0 {
			return invalid("linux.personality.flags: not supported")
		}
	}
	if s.Linux.MountLabel != "" && !h.SELinux {
		return invalid("linux.mountLabel: SELinux is not enabled on this host")
	}
	return nil
}

// validateNamespaces returns the set of namespaces the container gets
// (created or joined).
func validateNamespaces(l *specs.Linux, h Host) (map[specs.LinuxNamespaceType]bool, error) {
	seen := map[specs.LinuxNamespaceType]bool{}
	for i, n := range l.Namespaces {
		field := fmt.Sprintf("linux.namespaces[%d]", i)
		if _, ok := nsFiles[n.Type]; !ok {
			return nil, invalid("%s.type: unknown namespace type %q", field, n.Type)
		}
		if seen[n.Type] {
			return nil, invalid("%s.type: namespace %q listed twice", field, n.Type)
		}
		seen[n.Type] = true
		if !h.Namespaces[n.Type] {
			return nil, invalid("%s.type: the kernel does not support %s namespaces", field, n.Type)
		}
		if n.Path != "" {
			if !filepath.IsAbs(n.Path) {
				return nil, invalid("%s.path: %q is not absolute", field, n.Path)
			}
			if _, err := os.Stat(n.Path); err != nil {
				return nil, invalid("%s.path: %v", field, err)
			}
		}
	}
	userNew := false
	for _, n := range l.Namespaces {
		if n.Type == specs.UserNamespace && n.Path == "" {
			userNew = true
		}
	}
	if !seen[specs.UserNamespace] && (len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0) {
		return nil, invalid("linux.uidMappings: mappings need a user namespace (linux.namespaces has none)")
	}
	if userNew {
		if len(l.UIDMappings) == 0 {
			return nil, invalid("linux.uidMappings: a new user namespace needs at least one mapping")
		}
		if len(l.GIDMappings) == 0 {
			return nil, invalid("linux.gidMappings: a new user namespace needs at least one mapping")
		}
	}
	if err := validateMappings("linux.uidMappings", l.UIDMappings); err != nil {
		return nil, err
	}
	if err := validateMappings("linux.gidMappings", l.GIDMappings); err != nil {
		return nil, err
	}
	return seen, nil
}

func validateMappings(field string, m []specs.LinuxIDMapping) error {
	if len(m) > 340 {
		return invalid("%s: %d mappings, the kernel allows 340", field, len(m))
	}
	for i, a := range m {
		if a.Size == 0 {
			return invalid("%s[%d].size: must be greater than zero", field, i)
		}
		if uint64(a.ContainerID)+uint64(a.Size) > 1<<32 || uint64(a.HostID)+uint64(a.Size) > 1<<32 {
			return invalid("%s[%d]: range exceeds the 32-bit id space", field, i)
		}
		for j := 0; j < i; j++ {
			b := m[j]
			if overlap(a.ContainerID, a.Size, b.ContainerID, b.Size) {
				return invalid("%s[%d]: containerID range overlaps %s[%d]", field, i, field, j)
			}
			if overlap(a.HostID, a.Size, b.HostID, b.Size) {
				return invalid("%s[%d]: hostID range overlaps %s[%d]", field, i, field, j)
			}
		}
	}
	return nil
}

func overlap(a, an, b, bn uint32) bool {
	return uint64(a) < uint64(b)+uint64(bn) && uint64(b) < uint64(a)+uint64(an)
}

// ValidateProcess checks a process definition (the config's or an exec's).
func ValidateProcess(field string, p *specs.Process, h Host) error {
	if len(p.Args) == 0 || p.Args[0] == "" {
		return invalid("%s.args: must name a program to run", field)
	}
	if p.Cwd == "" || !filepath.IsAbs(p.Cwd) {
		return invalid("%s.cwd: %q is not an absolute path", field, p.Cwd)
	}
	for i, e := range p.Env {
		if !strings.Contains(e, "=") {
			return invalid("%s.env[%d]: %q is not KEY=value", field, i, e)
		}
	}
	if p.ConsoleSize != nil && !p.Terminal {
		return invalid("%s.consoleSize: only valid with terminal: true", field)
	}
	if _, err := caps.Parse(field+".capabilities", p.Capabilities); err != nil {
		return invalid("%v", err)
	}
	seen := map[string]bool{}
	for i, r := range p.Rlimits {
		if !rlimitTypes[r.Type] {
			return invalid("%s.rlimits[%d].type: unknown rlimit %q", field, i, r.Type)
		}
		if seen[r.Type] {
			return invalid("%s.rlimits[%d].type: %s set twice", field, i, r.Type)
		}
		seen[r.Type] = true
		if r.Soft > r.Hard {
			return invalid("%s.rlimits[%d]: soft limit %d is above the hard limit %d", field, i, r.Soft, r.Hard)
		}
	}
	if p.OOMScoreAdj != nil && (*p.OOMScoreAdj < -1000 || *p.OOMScoreAdj > 1000) {
		return invalid("%s.oomScoreAdj: %d is outside -1000..1000", field, *p.OOMScoreAdj)
	}
	if p.ApparmorProfile != "" && !h.AppArmor {
		return invalid("%s.apparmorProfile: AppArmor is not enabled on this host", field)
	}
	if p.SelinuxLabel != "" && !h.SELinux {
		return invalid("%s.selinuxLabel: SELinux is not enabled on this host", field)
	}
	if s := p.Scheduler; s != nil {
		if _, ok := SchedPolicies[s.Policy]; !ok {
			return invalid("%s.scheduler.policy: unknown policy %q", field, s.Policy)
		}
	}
	if io := p.IOPriority; io != nil {
		if _, ok := IOPrioClasses[io.Class]; !ok {
			return invalid("%s.ioPriority.class: unknown class %q", field, io.Class)
		}
		if io.Priority < 0 || io.Priority > 7 {
			return invalid("%s.ioPriority.priority: %d is outside 0..7", field, io.Priority)
		}
	}
	return nil
}

// SchedPolicies maps the spec's scheduler policies to the kernel's numbers.
var SchedPolicies = map[specs.LinuxSchedulerPolicy]int{
	specs.SchedOther: 0, specs.SchedFIFO: 1, specs.SchedRR: 2, specs.SchedBatch: 3,
	specs.SchedISO: 4, specs.SchedIdle: 5, specs.SchedDeadline: 6,
}

// IOPrioClasses maps the spec's I/O priority classes to the kernel's numbers.
var IOPrioClasses = map[specs.IOPriorityClass]int{
	specs.IOPRIO_CLASS_RT: 1, specs.IOPRIO_CLASS_BE: 2, specs.IOPRIO_CLASS_IDLE: 3,
}

// isSysctlName reports whether k looks like a sysctl: dot-separated
// components of letters, digits and _@:+- (the first one lower case), at
// least two of them. (No regexp: its compilation would cost every exec of
// the runtime at start-up.)
func isSysctlName(k string) bool {
	parts := strings.Split(k, ".")
	if len(parts) < 2 {
		return false
	}
	for i, p := range parts {
		if p == "" {
			return false
		}
		for _, c := range p {
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' ||
				i > 0 && (c >= 'A' && c <= 'Z' || strings.ContainsRune("@:+-", c))
			if !ok {
				return false
			}
		}
	}
	return true
}

// validateSysctls allows only sysctls that belong to a namespace the
// container has of its own, as runc does: anything else would change the
// host.
func validateSysctls(m map[string]string, ns map[specs.LinuxNamespaceType]bool) error {
	for k := range m {
		field := fmt.Sprintf("linux.sysctl[%q]", k)
		key := strings.ReplaceAll(k, "/", ".")
		if !isSysctlName(key) {
			return invalid("%s: not a sysctl name", field)
		}
		switch {
		case strings.HasPrefix(key, "net."):
			if !ns[specs.NetworkNamespace] {
				return invalid("%s: needs a network namespace of the container's own", field)
			}
		case key == "kernel.msgmax", key == "kernel.msgmnb", key == "kernel.msgmni", key == "kernel.sem",
			key == "kernel.shmall", key == "kernel.shmmax", key == "kernel.shmmni", key == "kernel.shm_rmid_forced",
			strings.HasPrefix(key, "fs.mqueue."):
			if !ns[specs.IPCNamespace] {
				return invalid("%s: needs an ipc namespace of the container's own", field)
			}
		case key == "kernel.hostname", key == "kernel.domainname":
			if !ns[specs.UTSNamespace] {
				return invalid("%s: needs a uts namespace of the container's own", field)
			}
		default:
			return invalid("%s: not namespaced; it would change the host", field)
		}
	}
	return nil
}

func validateHooks(h *specs.Hooks) error {
	if h == nil {
		return nil
	}
	for _, list := range []struct {
		name  string
		hooks []specs.Hook
	}{
		{"prestart", h.Prestart}, {"createRuntime", h.CreateRuntime}, {"createContainer", h.CreateContainer},
		{"startContainer", h.StartContainer}, {"poststart", h.Poststart}, {"poststop", h.Poststop},
	} {
		for i, hk := range list.hooks {
			if !filepath.IsAbs(hk.Path) {
				return invalid("hooks.%s[%d].path: %q is not absolute", list.name, i, hk.Path)
			}
			if hk.Timeout != nil && *hk.Timeout <= 0 {
				return invalid("hooks.%s[%d].timeout: must be greater than zero", list.name, i)
			}
		}
	}
	return nil
}

func validateDevices(devs []specs.LinuxDevice) error {
	for i, d := range devs {
		field := fmt.Sprintf("linux.devices[%d]", i)
		if !filepath.IsAbs(d.Path) {
			return invalid("%s.path: %q is not absolute", field, d.Path)
		}
		switch d.Type {
		case "c", "b", "u":
		case "p":
			if d.Major != 0 || d.Minor != 0 {
				return invalid("%s: a fifo has no major/minor numbers", field)
			}
		default:
			return invalid("%s.type: unknown device type %q (want c, b, u or p)", field, d.Type)
		}
	}
	return nil
}
