package containerspec

import (
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/caps"
)

// ExecInput is what `exec` changes of a running container's process.
type ExecInput struct {
	Cmd        []string
	Env        []string // added to the container's, later wins per key
	WorkingDir string   // "" keeps the container's
	User       string   // -u; "" keeps the container's
	Tty        bool
	Privileged bool // every capability, like Docker's exec --privileged
	// AvailableCaps are what Privileged grants: the capabilities the
	// engine holds (see Input.AvailableCaps). Nil: every one the running
	// kernel knows.
	AvailableCaps []string
	// The container's /etc/passwd and /etc/group, for -u NAME.
	Passwd, Group []byte
}

// ExecProcess renders the process of `exec` from the running container's
// spec: its environment, user, capabilities, rlimits, no_new_privileges
// and security labels, with the exec's own changes. Pure.
func ExecProcess(spec *specs.Spec, in ExecInput) (*specs.Process, error) {
	if spec.Process == nil {
		return nil, invalid("exec", "the container has no process")
	}
	if len(in.Cmd) == 0 {
		return nil, invalid("exec", "no command given")
	}
	p := *spec.Process
	p.Args = append([]string{}, in.Cmd...)
	p.Terminal = in.Tty
	p.ConsoleSize = nil
	p.Env = mergeEnvLists(spec.Process.Env, in.Env)
	if in.Tty && !hasKey(p.Env, "TERM") {
		p.Env = append(p.Env, "TERM=xterm")
	}
	if in.WorkingDir != "" {
		if !strings.HasPrefix(in.WorkingDir, "/") {
			return nil, invalid("--workdir", "%q is not an absolute path", in.WorkingDir)
		}
		p.Cwd = in.WorkingDir
	}
	if in.User != "" {
		u, err := resolveUser(in.User, in.Passwd, in.Group)
		if err != nil {
			return nil, err
		}
		p.User = specs.User{UID: u.uid, GID: u.gid, AdditionalGids: u.sgids, Umask: spec.Process.User.Umask}
		p.Env = setKey(p.Env, "HOME", u.home)
	}
	if in.Privileged {
		all := in.AvailableCaps
		if all == nil {
			all = caps.All()
		}
		p.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	}
	return &p, nil
}

func mergeEnvLists(base, over []string) []string {
	out := append([]string{}, base...)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		out = setKey(out, k, kv[min(len(kv), len(k)+1):])
	}
	return out
}

func hasKey(env []string, k string) bool {
	for _, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek == k {
			return true
		}
	}
	return false
}

func setKey(env []string, k, v string) []string {
	for i, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}
