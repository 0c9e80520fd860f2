package containerspec

import (
	"slices"
	"strconv"
	"strings"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultMaskedPaths are the paths Docker hides from a container (a bind of
// /dev/null, or an empty read-only tmpfs for a directory).
var DefaultMaskedPaths = []string{
	"/proc/acpi",
	"/proc/asound",
	"/proc/interrupts",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/sys/devices/virtual/powercap",
	"/sys/firmware",
}

// DefaultReadonlyPaths are the paths Docker makes read-only.
var DefaultReadonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// securityOpts is what --security-opt asked for.
type securityOpts struct {
	noNewPrivileges  bool
	seccomp          string // "" (default), "unconfined", "builtin" or a profile's JSON
	apparmor         string
	unconfinedPaths  bool // systempaths=unconfined
	selinuxDisabled  bool // label=disable
	seccompGivenJSON bool
}

// parseSecurityOpts reads Docker's --security-opt values; see the package
// doc for the accepted forms.
func parseSecurityOpts(list []string) (securityOpts, error) {
	const flag = "--security-opt"
	var s securityOpts
	for _, opt := range list {
		switch opt {
		case "no-new-privileges":
			s.noNewPrivileges = true
			continue
		case "disable":
			s.selinuxDisabled = true
			continue
		}
		var k, v string
		var ok bool
		if strings.Contains(opt, "=") {
			k, v, ok = strings.Cut(opt, "=")
		} else {
			k, v, ok = strings.Cut(opt, ":") // the legacy separator
		}
		if !ok {
			return s, invalid(flag, "invalid option %q", opt)
		}
		switch k {
		case "no-new-privileges":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return s, invalid(flag, "invalid option %q: no-new-privileges takes true or false", opt)
			}
			s.noNewPrivileges = b
		case "seccomp":
			switch {
			case v == "unconfined" || v == "builtin":
				s.seccomp = v
			case strings.HasPrefix(strings.TrimSpace(v), "{"):
				s.seccomp, s.seccompGivenJSON = v, true
			default:
				return s, invalid(flag, "seccomp=%s: want unconfined, builtin or a profile's JSON (the command line reads the profile file)", shorten(v))
			}
		case "apparmor":
			if v == "" {
				return s, invalid(flag, "apparmor: no profile named")
			}
			s.apparmor = v
		case "systempaths":
			if v != "unconfined" {
				return s, invalid(flag, "systempaths=%s: only unconfined is supported", v)
			}
			s.unconfinedPaths = true
		case "label":
			if v != "disable" {
				return s, invalid(flag, "label=%s: SELinux labels are not supported (only label=disable)", v)
			}
			s.selinuxDisabled = true
		default:
			return s, invalid(flag, "invalid option %q", opt)
		}
	}
	return s, nil
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// seccompProfile returns the filter: none for --privileged and
// seccomp=unconfined, the user's profile, or Docker's default with the
// system calls gated on the spec's bounding capabilities.
func seccompProfile(sec securityOpts, privileged bool, s *specs.Spec, override *specs.LinuxSeccomp) (*specs.LinuxSeccomp, error) {
	if sec.seccomp == "unconfined" || privileged {
		return nil, nil
	}
	if sec.seccompGivenJSON {
		p, err := mobyseccomp.LoadProfile(sec.seccomp, s)
		if err != nil {
			return nil, invalid("--security-opt", "seccomp profile: %v", err)
		}
		return p, nil
	}
	if override != nil {
		c := *override
		c.Architectures = slices.Clone(c.Architectures)
		c.Flags = slices.Clone(c.Flags)
		c.Syscalls = slices.Clone(c.Syscalls)
		return &c, nil
	}
	p, err := mobyseccomp.GetDefaultProfile(s)
	if err != nil {
		return nil, err
	}
	return p, nil
}
