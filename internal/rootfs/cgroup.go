package rootfs

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroupMount describes one mount that a spec "cgroup" mount turns into. The
// plan is made from the host's mountinfo and /proc/self/cgroup by planCgroups,
// a pure function, and carried out by mountCgroup.
type cgroupMount struct {
	// Dir is the entry below the cgroup mount's destination ("cpu,cpuacct",
	// "systemd", "unified"); "" is the destination itself, on hosts with
	// cgroup v2 only.
	Dir string
	// FSType is "cgroup" or "cgroup2" for a fresh mount, made inside the
	// container's cgroup namespace; "" means a bind mount of Source.
	FSType string
	// Data is the fresh v1 mount's hierarchy: its controllers or name
	// ("cpu,cpuacct", "name=systemd").
	Data string
	// Source is the host path of the container's own cgroup directory in
	// this hierarchy: what is bound without a cgroup namespace, and the
	// fallback where a fresh mount is not permitted.
	Source string
	// Links are the names next to Dir that link to it: "cpu" and "cpuacct"
	// for the co-mounted "cpu,cpuacct".
	Links []string
}

// planCgroups lists the mounts that make up a container's cgroup tree:
//
//   - cgroup v2 only: one mount, the destination itself;
//   - cgroup v1 (and hybrid): a tmpfs at the destination (made by the caller)
//     holding one directory per v1 hierarchy, named like the host's, with
//     symlinks for co-mounted controllers, plus "unified" for the v2 mount of a
//     hybrid host.
//
// fresh asks for new mounts (the container has its own cgroup namespace, whose
// root is its cgroup); otherwise each hierarchy is a bind of the container's own
// cgroup directory, from own. Mounts below exclude (the rootfs) are ignored, and
// a hierarchy the process is not a member of is skipped.
func planCgroups(infos []mountInfo, own cgroupMembership, fresh bool, exclude string) ([]cgroupMount, error) {
	var v1, v2 []mountInfo
	for _, mi := range infos {
		if exclude != "" && (mi.Mountpoint == exclude || strings.HasPrefix(mi.Mountpoint, exclude+"/")) {
			continue
		}
		switch mi.FSType {
		case "cgroup":
			v1 = append(v1, mi)
		case "cgroup2":
			v2 = append(v2, mi)
		}
	}
	if len(v1) == 0 && len(v2) == 0 {
		return nil, errors.New("no cgroup filesystem is mounted on the host")
	}

	if len(v1) == 0 {
		m, err := planCgroup2(v2[0], own, fresh)
		if err != nil {
			return nil, err
		}
		m.Dir = ""
		return []cgroupMount{m}, nil
	}

	var plan []cgroupMount
	seen := map[string]bool{}
	for _, mi := range v1 {
		dir := path.Base(mi.Mountpoint)
		hierarchy, ok := v1Hierarchy(mi, own)
		if !ok || seen[dir] {
			continue
		}
		seen[dir] = true
		m := cgroupMount{Dir: dir}
		src, err := ownDir(mi, own[hierarchy])
		if err != nil && !fresh {
			return nil, fmt.Errorf("cgroup hierarchy %s: %w", hierarchy, err)
		}
		m.Source = src
		if fresh {
			m.FSType, m.Data = "cgroup", hierarchy
		}
		if strings.Contains(dir, ",") {
			for _, name := range strings.Split(dir, ",") {
				if name != "" && name != dir {
					m.Links = append(m.Links, name)
				}
			}
		}
		plan = append(plan, m)
	}
	for _, mi := range v2 {
		dir := path.Base(mi.Mountpoint)
		if seen[dir] {
			continue
		}
		seen[dir] = true
		m, err := planCgroup2(mi, own, fresh)
		if err != nil {
			return nil, err
		}
		m.Dir = dir
		plan = append(plan, m)
		// One unified hierarchy exists; later cgroup2 mounts are the same.
		break
	}
	return plan, nil
}

func planCgroup2(mi mountInfo, own cgroupMembership, fresh bool) (cgroupMount, error) {
	m := cgroupMount{}
	src, err := ownDir(mi, own[""])
	if err != nil && !fresh {
		return m, fmt.Errorf("cgroup v2: %w", err)
	}
	m.Source = src
	if fresh {
		m.FSType = "cgroup2"
	}
	return m, nil
}

// v1Hierarchy finds the /proc/self/cgroup line of the v1 mount mi: the one whose
// controllers ("cpu,cpuacct", "name=systemd") are all among mi's super options.
func v1Hierarchy(mi mountInfo, own cgroupMembership) (string, bool) {
	opts := map[string]bool{}
	for _, o := range strings.Split(mi.SuperOptions, ",") {
		opts[o] = true
	}
	for hierarchy := range own {
		if hierarchy == "" {
			continue
		}
		all := true
		for _, c := range strings.Split(hierarchy, ",") {
			if !opts[c] {
				all = false
				break
			}
		}
		if all {
			return hierarchy, true
		}
	}
	return "", false
}

// ownDir is where the cgroup at path cg (from /proc/self/cgroup) appears below
// the mount mi, which may show only part of the hierarchy (its Root).
func ownDir(mi mountInfo, cg string) (string, error) {
	switch {
	case cg == "":
		return "", fmt.Errorf("not a member (no line in /proc/self/cgroup)")
	case mi.Root == "/":
		return path.Join(mi.Mountpoint, cg), nil
	case cg == mi.Root || strings.HasPrefix(cg, mi.Root+"/"):
		return path.Join(mi.Mountpoint, strings.TrimPrefix(cg, mi.Root)), nil
	}
	return "", fmt.Errorf("own cgroup %s is not visible in the mount at %s (which shows %s)", cg, mi.Mountpoint, mi.Root)
}

// mountCgroup makes the container's cgroup tree at dest, as planned by
// planCgroups. opts are the spec mount's options: their flags (usually
// nosuid,nodev,noexec,relatime,ro) apply to every mount of the tree.
func (p *preparer) mountCgroup(dest string, opts MountOptions) error {
	infos := p.hostMounts // planCgroups looks only outside the rootfs
	if infos == nil {
		var err error
		if infos, err = readMountinfo(); err != nil {
			return fmt.Errorf("cgroup mount on %s: %w", dest, err)
		}
	}
	pid := 0
	if p.out != nil {
		pid = p.out.InitPid
	}
	own, err := readCgroupMembership(pid)
	if err != nil {
		return fmt.Errorf("cgroup mount on %s: %w", dest, err)
	}
	plan, err := planCgroups(infos, own, p.c.CgroupNS, p.rootPath)
	if err != nil {
		return fmt.Errorf("cgroup mount on %s: %w", dest, err)
	}
	if len(plan) == 1 && plan[0].Dir == "" {
		return p.mountCgroupEntry(dest, plan[0], opts)
	}

	// cgroup v1: a tmpfs to hold the hierarchies, read-only only once filled.
	tmpfsFlags := (opts.Flags | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC) &^ unix.MS_RDONLY
	holder, err := p.mountNew(dest, "tmpfs", "tmpfs", tmpfsFlags, p.label("tmpfs", "mode=755"))
	if err != nil {
		return err
	}
	defer holder.Close()
	for _, e := range plan {
		if err := p.mountCgroupEntry(path.Join(dest, e.Dir), e, opts); err != nil {
			return err
		}
		for _, l := range e.Links {
			if err := p.symlink(e.Dir, path.Join(dest, l)); err != nil {
				return err
			}
		}
	}
	if opts.Flags&unix.MS_RDONLY != 0 {
		if err := setAttr(holder, unix.MOUNT_ATTR_RDONLY, 0, false); err != nil {
			return fmt.Errorf("make %s read-only: %w", dest, err)
		}
	}
	return p.finish(holder, opts)
}

func (p *preparer) mountCgroupEntry(dest string, e cgroupMount, opts MountOptions) error {
	if e.FSType != "" {
		m, err := p.mountNew(dest, e.FSType, e.FSType, opts.Flags, e.Data)
		if err == nil {
			defer m.Close()
			return p.finish(m, opts)
		}
		// Without the privilege for a fresh cgroup mount (a user namespace
		// without its own cgroup namespace), bind what we can see.
		if e.Source == "" || !(errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY)) {
			return err
		}
	}
	bindOpts := opts
	bindOpts.Flags |= unix.MS_BIND | unix.MS_REC
	return p.mountBind(dest, e.Source, bindOpts)
}
