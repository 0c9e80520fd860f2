package containerspec

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Generate renders the OCI spec of the container described by in. It
// reads nothing but in (see the package doc for the two host facts its
// libraries read). Errors a user can fix are ErrInvalid and start with the
// flag at fault.
func Generate(in *Input) (*specs.Spec, error) {
	if in == nil || in.Config == nil || in.Host == nil {
		return nil, errors.New("containerspec: Input, its Config and its Host must be set")
	}
	if !validID(in.ID) {
		return nil, fmt.Errorf("containerspec: ID %q is not 64 lower-case hex digits", in.ID)
	}
	if !path.IsAbs(in.Rootfs) {
		return nil, fmt.Errorf("containerspec: Rootfs %q is not an absolute path", in.Rootfs)
	}
	c, h := in.Config, in.Host

	sec, err := parseSecurityOpts(h.SecurityOpt)
	if err != nil {
		return nil, err
	}
	ns, err := in.planNamespaces(h)
	if err != nil {
		return nil, err
	}
	userNS := ns.has(specs.UserNamespace)

	args, err := command(in.Image.Entrypoint, in.Image.Cmd, c)
	if err != nil {
		return nil, err
	}
	// --init only where the container has a pid namespace of its own:
	// elsewhere there is already an init (Docker ignores it the same way).
	withInit := h.Init != nil && *h.Init && ns.ownsNew(specs.PIDNamespace)
	if withInit {
		if !path.IsAbs(in.InitPath) {
			return nil, invalid("--init", "no init binary: InitPath %q is not an absolute path", in.InitPath)
		}
		args = append([]string{InitPathInContainer, "--"}, args...)
	}

	userSpec := c.User
	if userSpec == "" {
		userSpec = in.Image.User
	}
	eu, err := resolveUser(userSpec, in.Passwd, in.Group)
	if err != nil {
		return nil, err
	}
	added, err := resolveGroups(h.GroupAdd, in.Group)
	if err != nil {
		return nil, err
	}
	gids := []uint32{eu.gid}
	for _, g := range append(eu.sgids, added...) {
		if !slices.Contains(gids, g) {
			gids = append(gids, g)
		}
	}

	if c.Hostname != "" && ns.mode[specs.UTSNamespace] != nsNew {
		return nil, invalid("--hostname", "conflicting options: a hostname cannot be set with --uts %s", h.UTSMode)
	}
	if c.Domainname != "" && ns.mode[specs.UTSNamespace] != nsNew {
		return nil, invalid("--domainname", "conflicting options: a domain name cannot be set with --uts %s", h.UTSMode)
	}
	if len(h.DeviceRequests) > 0 {
		return nil, invalid("--gpus", "device requests (GPUs) are not supported")
	}
	if len(c.Hostname) > 64 {
		return nil, invalid("--hostname", "%q is longer than 64 characters", c.Hostname)
	}
	if len(c.Domainname) > 64 {
		return nil, invalid("--domainname", "%q is longer than 64 characters", c.Domainname)
	}
	hostname := c.Hostname
	if hostname == "" {
		hostname = in.ID[:12]
	}

	cwd, err := workingDir(c.WorkingDir, in.Image.WorkingDir)
	if err != nil {
		return nil, err
	}
	capList, err := capabilities(h, in.AvailableCaps)
	if err != nil {
		return nil, err
	}
	rl, err := rlimits(h)
	if err != nil {
		return nil, err
	}
	if h.OomScoreAdj < -1000 || h.OomScoreAdj > 1000 {
		return nil, invalid("--oom-score-adj", "invalid value %d: the range is [-1000, 1000]", h.OomScoreAdj)
	}

	proc := &specs.Process{
		Terminal: c.Tty,
		User:     specs.User{UID: eu.uid, GID: eu.gid, AdditionalGids: gids},
		Args:     args,
		Env:      environment(in.Image.Env, c.Env, hostname, c.Tty, eu.home),
		Cwd:      cwd,
		// A user other than root starts with no effective or permitted
		// capabilities (Docker drops them before the exec, so that
		// CAP_DAC_OVERRIDE does not let it run files it may not read);
		// the bounding set still limits what setuid programs get.
		Capabilities:    &specs.LinuxCapabilities{Bounding: capList},
		Rlimits:         rl,
		NoNewPrivileges: sec.noNewPrivileges,
	}
	if eu.uid == 0 {
		proc.Capabilities.Effective = slices.Clone(capList)
		proc.Capabilities.Permitted = slices.Clone(capList)
	}
	if c.Tty && (h.ConsoleSize[0] > 0 || h.ConsoleSize[1] > 0) {
		proc.ConsoleSize = &specs.Box{Height: h.ConsoleSize[0], Width: h.ConsoleSize[1]}
	}
	if sec.apparmor != "" && sec.apparmor != "unconfined" {
		proc.ApparmorProfile = sec.apparmor
	}
	// Only a non-zero score is written: writing 0 over an inherited
	// positive score would lower it, which needs CAP_SYS_RESOURCE.
	if h.OomScoreAdj != 0 {
		adj := h.OomScoreAdj
		proc.OOMScoreAdj = &adj
	}

	mounts, err := in.mounts(h, h.ReadonlyRootfs, h.Privileged, userNS)
	if err != nil {
		return nil, err
	}
	if withInit {
		mounts = append(mounts, specs.Mount{Destination: InitPathInContainer, Type: "bind", Source: in.InitPath, Options: []string{"bind", "ro"}})
	}

	res := &specs.LinuxResources{}
	if res.Memory, err = memory(&h.Resources, in.NoSwapLimit); err != nil {
		return nil, err
	}
	if res.CPU, err = cpu(&h.Resources); err != nil {
		return nil, err
	}
	res.Pids = pids(&h.Resources)
	if res.BlockIO, err = in.blockIO(&h.Resources); err != nil {
		return nil, err
	}
	devs, rules, err := in.devices(h)
	if err != nil {
		return nil, err
	}
	res.Devices = rules

	sysctl, err := sysctls(h, ns, userNS)
	if err != nil {
		return nil, err
	}

	s := &specs.Spec{
		Version:  specs.Version,
		Process:  proc,
		Root:     &specs.Root{Path: in.Rootfs, Readonly: h.ReadonlyRootfs},
		Mounts:   mounts,
		Hostname: "",
		Linux: &specs.Linux{
			UIDMappings:       ns.uidMaps,
			GIDMappings:       ns.gidMaps,
			Sysctl:            sysctl,
			Resources:         res,
			CgroupsPath:       in.CgroupsPath,
			Namespaces:        ns.list(),
			Devices:           devs,
			RootfsPropagation: rootfsPropagation(mounts),
		},
	}
	if ns.ownsNew(specs.UTSNamespace) {
		s.Hostname, s.Domainname = hostname, c.Domainname
	}
	if len(h.Annotations) > 0 {
		s.Annotations = maps.Clone(h.Annotations)
	}
	switch {
	case h.Privileged || sec.unconfinedPaths:
	case h.MaskedPaths != nil || h.ReadonlyPaths != nil:
		// The API's overrides: a nil list keeps its default.
		s.Linux.MaskedPaths = slices.Clone(h.MaskedPaths)
		if h.MaskedPaths == nil {
			s.Linux.MaskedPaths = append(slices.Clone(DefaultMaskedPaths), in.HostMaskedPaths...)
		}
		s.Linux.ReadonlyPaths = slices.Clone(h.ReadonlyPaths)
		if h.ReadonlyPaths == nil {
			s.Linux.ReadonlyPaths = slices.Clone(DefaultReadonlyPaths)
		}
	default:
		s.Linux.MaskedPaths = append(slices.Clone(DefaultMaskedPaths), in.HostMaskedPaths...)
		s.Linux.ReadonlyPaths = slices.Clone(DefaultReadonlyPaths)
	}
	// The seccomp profile depends on the bounding set, so it comes last.
	if s.Linux.Seccomp, err = seccompProfile(sec, h.Privileged, s, in.SeccompDefault); err != nil {
		return nil, err
	}
	return s, nil
}

func validID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// rootfsPropagation follows Docker: a shared bind needs a shared root, a
// slave bind an rslave one; otherwise the runtime's default (rslave).
func rootfsPropagation(mounts []specs.Mount) string {
	prop := ""
	for _, m := range mounts {
		for _, o := range m.Options {
			switch o {
			case "shared", "rshared":
				prop = "shared"
			case "slave", "rslave":
				if prop == "" {
					prop = "rslave"
				}
			}
		}
	}
	return prop
}

// ipcSysctl reports whether a sysctl belongs to the ipc namespace.
func ipcSysctl(k string) bool {
	switch k {
	case "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
		"kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced":
		return true
	}
	return strings.HasPrefix(k, "fs.mqueue.")
}

// sysctls merges Docker's defaults for a network namespace of the
// container's own (ping for every group, unprivileged ports from 0) with
// --sysctl, refusing those that would change the host or another
// container's namespace.
func sysctls(h *container.HostConfig, ns *nsPlan, userNS bool) (map[string]string, error) {
	out := map[string]string{}
	privateNet := h.NetworkMode != "host" && !strings.HasPrefix(string(h.NetworkMode), "container:")
	if privateNet {
		// A group range cannot be set in a user namespace whose gids do
		// not map all of it.
		if !userNS {
			out["net.ipv4.ping_group_range"] = "0 2147483647"
		}
		out["net.ipv4.ip_unprivileged_port_start"] = "0"
	}
	for _, k := range sortedKeys(h.Sysctls) {
		key := strings.ReplaceAll(k, "/", ".")
		switch {
		case strings.HasPrefix(key, "net."):
			if !privateNet {
				return nil, invalid("--sysctl", "%s: not allowed with --network %s: the network namespace is not the container's own", k, h.NetworkMode)
			}
		case ipcSysctl(key):
			if !ns.ownsNew(specs.IPCNamespace) {
				return nil, invalid("--sysctl", "%s: not allowed with --ipc %s: the ipc namespace is not the container's own", k, h.IpcMode)
			}
		case key == "kernel.domainname" || key == "kernel.hostname":
			if !ns.ownsNew(specs.UTSNamespace) {
				return nil, invalid("--sysctl", "%s: not allowed with --uts %s: the uts namespace is not the container's own", k, h.UTSMode)
			}
		default:
			return nil, invalid("--sysctl", "%s: not a namespaced sysctl; it would change the host", k)
		}
		out[k] = h.Sysctls[k]
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
