package containerspec

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// nsMode is what one namespace type becomes.
type nsMode int

const (
	nsAbsent nsMode = iota // not used at all (user without --userns, time)
	nsNew                  // a new namespace of the container's own
	nsJoin                 // another's, by path
	nsHost                 // the host's: not listed in the spec
)

// nsPlan is the decision for every namespace type.
type nsPlan struct {
	mode    map[specs.LinuxNamespaceType]nsMode
	path    map[specs.LinuxNamespaceType]string
	uidMaps []specs.LinuxIDMapping
	gidMaps []specs.LinuxIDMapping
}

func (p *nsPlan) has(t specs.LinuxNamespaceType) bool {
	m := p.mode[t]
	return m == nsNew || m == nsJoin
}

// ownsNew reports whether the container gets a fresh namespace of type t.
func (p *nsPlan) ownsNew(t specs.LinuxNamespaceType) bool { return p.mode[t] == nsNew }

// containerRef splits "container:NAME"; ok is false for other values.
func containerRef(mode string) (name string, ok bool) {
	name, ok = strings.CutPrefix(mode, "container:")
	return name, ok
}

// modeOf reads one of Docker's namespace modes: "" or private (new), host,
// or container:X (join). flag names the option for errors.
func modeOf(flag, mode string, extra ...string) (nsMode, error) {
	switch {
	case mode == "" || mode == "private":
		return nsNew, nil
	case mode == "host":
		return nsHost, nil
	}
	if name, ok := containerRef(mode); ok {
		if name == "" {
			return 0, invalid(flag, "%q: no container named", mode)
		}
		return nsJoin, nil
	}
	for _, e := range extra {
		if mode == e {
			return nsNew, nil
		}
	}
	return 0, invalid(flag, "invalid mode %q", mode)
}

// ParseIDMap parses the ranges of --userns map=: "C:H:N[,C:H:N...]".
func ParseIDMap(s string) ([]specs.LinuxIDMapping, error) {
	var out []specs.LinuxIDMapping
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(part, ":")
		if len(f) != 3 {
			return nil, invalid("--userns", "map=%s: want CONTAINER_ID:HOST_ID:SIZE[,...]", s)
		}
		var v [3]uint32
		for i, x := range f {
			n, err := strconv.ParseUint(x, 10, 32)
			if err != nil {
				return nil, invalid("--userns", "map=%s: %q is not a number", s, x)
			}
			v[i] = uint32(n)
		}
		if v[2] == 0 {
			return nil, invalid("--userns", "map=%s: a range of size 0", s)
		}
		out = append(out, specs.LinuxIDMapping{ContainerID: v[0], HostID: v[1], Size: v[2]})
	}
	return out, nil
}

// planNamespaces applies the network, pid, ipc, uts, cgroupns and userns
// modes and the engine's paths.
func (in *Input) planNamespaces(h *container.HostConfig) (*nsPlan, error) {
	p := &nsPlan{mode: map[specs.LinuxNamespaceType]nsMode{}, path: map[specs.LinuxNamespaceType]string{}}
	var err error
	p.mode[specs.MountNamespace] = nsNew
	net := string(h.NetworkMode)
	switch {
	case net == "host":
		p.mode[specs.NetworkNamespace] = nsHost
	case strings.HasPrefix(net, "container:"):
		if p.mode[specs.NetworkNamespace], err = modeOf("--network", net); err != nil {
			return nil, err
		}
	default: // none, bridge, default, a user-defined network: the container's own
		p.mode[specs.NetworkNamespace] = nsNew
	}
	if p.mode[specs.PIDNamespace], err = modeOf("--pid", string(h.PidMode)); err != nil {
		return nil, err
	}
	if p.mode[specs.IPCNamespace], err = modeOf("--ipc", string(h.IpcMode), "shareable", "none"); err != nil {
		return nil, err
	}
	if p.mode[specs.UTSNamespace], err = modeOf("--uts", string(h.UTSMode)); err != nil {
		return nil, err
	}
	switch h.CgroupnsMode {
	case "", container.CgroupnsModePrivate:
		p.mode[specs.CgroupNamespace] = nsNew
	case container.CgroupnsModeHost:
		p.mode[specs.CgroupNamespace] = nsHost
	default:
		return nil, invalid("--cgroupns", "invalid mode %q (want private or host)", h.CgroupnsMode)
	}
	userns := string(h.UsernsMode)
	switch {
	case userns == "" || userns == "host":
		p.mode[specs.UserNamespace] = nsAbsent
	case userns == "auto":
		if len(in.IDMap) == 0 {
			return nil, invalid("--userns", "auto: no id range was allocated for the container (IDMap)")
		}
		p.mode[specs.UserNamespace] = nsNew
		p.uidMaps = append([]specs.LinuxIDMapping{}, in.IDMap...)
		p.gidMaps = append([]specs.LinuxIDMapping{}, in.IDMap...)
	case strings.HasPrefix(userns, "map="):
		m, err := ParseIDMap(strings.TrimPrefix(userns, "map="))
		if err != nil {
			return nil, err
		}
		p.mode[specs.UserNamespace] = nsNew
		p.uidMaps, p.gidMaps = m, append([]specs.LinuxIDMapping{}, m...)
	case strings.HasPrefix(userns, "container:"):
		if p.mode[specs.UserNamespace], err = modeOf("--userns", userns); err != nil {
			return nil, err
		}
	default:
		return nil, invalid("--userns", "invalid mode %q (want host, auto, map=C:H:N or container:NAME)", userns)
	}
	// The engine's paths: joins for "container:X" modes, and namespaces
	// made for the container (its network namespace).
	for t, nsPath := range in.Namespaces {
		if nsPath == "" {
			continue
		}
		switch p.mode[t] {
		case nsHost:
			return nil, fmt.Errorf("namespace %s: a path (%s) is given but the container uses the host's", t, nsPath)
		case nsAbsent:
			if t != specs.UserNamespace && t != specs.TimeNamespace {
				return nil, fmt.Errorf("namespace %s: unknown type", t)
			}
			if t == specs.UserNamespace {
				return nil, fmt.Errorf("namespace user: a path (%s) is given without --userns", nsPath)
			}
		}
		p.mode[t], p.path[t] = nsJoin, nsPath
		if t == specs.UserNamespace {
			p.uidMaps, p.gidMaps = nil, nil
		}
	}
	for _, j := range []struct {
		t    specs.LinuxNamespaceType
		flag string
	}{
		{specs.NetworkNamespace, "--network"}, {specs.PIDNamespace, "--pid"}, {specs.IPCNamespace, "--ipc"},
		{specs.UTSNamespace, "--uts"}, {specs.UserNamespace, "--userns"},
	} {
		if p.mode[j.t] == nsJoin && p.path[j.t] == "" {
			return nil, invalid(j.flag, "the namespace of the container to join was not given")
		}
	}
	if p.has(specs.UserNamespace) {
		switch {
		case h.Privileged:
			return nil, invalid("--userns", "privileged mode is incompatible with user namespaces")
		case p.mode[specs.NetworkNamespace] == nsHost:
			return nil, invalid("--userns", "cannot share the host's network namespace when user namespaces are enabled")
		case p.mode[specs.PIDNamespace] == nsHost:
			return nil, invalid("--userns", "cannot share the host PID namespace when user namespaces are enabled")
		}
	}
	return p, nil
}

// list renders the plan in Docker's order.
func (p *nsPlan) list() []specs.LinuxNamespace {
	var out []specs.LinuxNamespace
	for _, t := range []specs.LinuxNamespaceType{
		specs.MountNamespace, specs.NetworkNamespace, specs.UTSNamespace, specs.PIDNamespace,
		specs.IPCNamespace, specs.UserNamespace, specs.CgroupNamespace, specs.TimeNamespace,
	} {
		if p.has(t) {
			out = append(out, specs.LinuxNamespace{Type: t, Path: p.path[t]})
		}
	}
	return out
}
