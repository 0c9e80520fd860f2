package engine

// User namespaces (--userns auto and map=C:H:N).
//
// A container in a user namespace runs as host ids of its own range, yet its
// files stay stored as the image has them (root's files owned by 0): the
// root filesystem is mounted with id-mapped layers (mount_setattr(2)
// MOUNT_ATTR_IDMAP), so that a file stored as k shows as host id H+k, and a
// file the container makes as H+k is stored as k. diff, commit, export and
// restarts with another range are unaffected. overlayfs itself cannot be
// id-mapped, its layers can (Linux 5.19+): each lower layer and the
// directory holding the upper and work directories get an id-mapped clone,
// the overlay is mounted on those, and the clones are detached again (the
// overlay keeps private copies).
//
// The overlay does its own work in the upper layer (the work directory,
// whiteouts) as the engine, host root, which the container's range does not
// map: the mapping of the layers adds one id past the range for host root,
// so those files are stored as that id instead of failing with EOVERFLOW.
//
// The range of --userns auto is chosen at each start, among ranges no
// mounted container holds: runDir/idmap.json records it from the choice
// until the root filesystem is unmounted (unmountRootfs removes it), and
// is the claim other starts see. The choice happens under a lock file.
//
// Bind mount sources (the /etc files, volumes) are reached by the
// runtime, which clones them on the host side (open_tree(2)); the path
// to the root filesystem must still be searchable by the container's
// root, so the state directories get the search bit for others, as
// Docker does with its root directory.
//
// Volumes (named, anonymous, and so those of --volumes-from) are id-mapped
// the same way as the layers, so that what is stored as root shows as the
// container's root and what the container writes is stored as root:
// volumes stay shareable between containers of any mapping. Bind mounts
// of host paths are left as Docker leaves them (host ids, unmapped ones
// showing as nobody), unless -v asks for podman's "idmap" option. The
// runtime does not id-map mounts: idmapMounts mounts an id-mapped clone of
// each such source under runDir/idmapped for as long as the root
// filesystem is mounted (restarts included), and points the spec at it;
// the runtime's clone of that mount keeps the mapping.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/containerspec"
	"github.com/berthproject/berth/internal/snapshot"
)

// The --userns auto pool: ranges of autoSize ids between autoFirst and
// autoLast, which systemd reserves for containers (systemd's UIDS-GIDS.md),
// skipping those /etc/subuid and /etc/subgid give to users.
const (
	autoSize  = 65536
	autoFirst = 0x80000    // 524288
	autoLast  = 0x6FFFFFFF // 1879048191
)

// idmapFile is the claim of a started container's id range.
func (e *Engine) idmapFile(id string) string { return filepath.Join(e.runDir(id), "idmap.json") }

// allocateIDMap decides the id mapping of a container about to start and
// claims it: --userns auto gets a free range, map=C:H:N its own. Others
// get none (nil). It also makes the way to the root filesystem searchable.
func (e *Engine) allocateIDMap(c *Container) ([]specs.LinuxIDMapping, error) {
	mode := string(c.HostConfig.UsernsMode)
	var m []specs.LinuxIDMapping
	switch {
	case mode == "auto":
		lk, err := flock(filepath.Join(e.opts.State, "userns.lock"))
		if err != nil {
			return nil, err
		}
		defer lk.Close()
		if m = e.claimedIDMap(c.ID); m != nil {
			return m, nil // a start before this one claimed it, and still holds the mount
		}
		used, err := e.claimedRanges()
		if err != nil {
			return nil, err
		}
		used = append(used, subordinateRanges()...)
		base, ok := freeRange(used)
		if !ok {
			return nil, fmt.Errorf("%w: --userns auto: no free range of %d ids left", ErrConflict, autoSize)
		}
		m = []specs.LinuxIDMapping{{ContainerID: 0, HostID: base, Size: autoSize}}
	case strings.HasPrefix(mode, "map="):
		var err error
		if m, err = containerspec.ParseIDMap(strings.TrimPrefix(mode, "map=")); err != nil {
			return nil, err
		}
	default:
		return nil, nil
	}
	if err := e.searchableRunDir(c.ID); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(e.idmapFile(c.ID), b, 0o600); err != nil {
		return nil, err
	}
	return m, nil
}

// claimedIDMap is the mapping claimed for id, or nil.
func (e *Engine) claimedIDMap(id string) []specs.LinuxIDMapping {
	b, err := os.ReadFile(e.idmapFile(id))
	if err != nil {
		return nil
	}
	var m []specs.LinuxIDMapping
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// releaseIDMap drops the claim; unmountRootfs calls it.
func (e *Engine) releaseIDMap(id string) { os.Remove(e.idmapFile(id)) }

// claimedRanges are the host ranges every container's claim holds.
func (e *Engine) claimedRanges() ([]specs.LinuxIDMapping, error) {
	ents, err := os.ReadDir(filepath.Join(e.opts.State, "containers"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []specs.LinuxIDMapping
	for _, ent := range ents {
		out = append(out, e.claimedIDMap(ent.Name())...)
	}
	return out, nil
}

// subordinateRanges are the ranges /etc/subuid and /etc/subgid give to
// users (NAME:START:COUNT lines).
func subordinateRanges() []specs.LinuxIDMapping {
	var out []specs.LinuxIDMapping
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			var start, count uint32
			parts := strings.Split(strings.TrimSpace(line), ":")
			if len(parts) != 3 {
				continue
			}
			if _, err := fmt.Sscan(parts[1], &start); err != nil {
				continue
			}
			if _, err := fmt.Sscan(parts[2], &count); err != nil {
				continue
			}
			out = append(out, specs.LinuxIDMapping{HostID: start, Size: count})
		}
	}
	return out
}

// freeRange is the first autoSize-aligned range of the pool that overlaps
// none of used.
func freeRange(used []specs.LinuxIDMapping) (uint32, bool) {
	for base := uint64(autoFirst); base+autoSize-1 <= autoLast; base += autoSize {
		if !slices.ContainsFunc(used, func(u specs.LinuxIDMapping) bool {
			return base < uint64(u.HostID)+uint64(u.Size) && uint64(u.HostID) < base+autoSize
		}) {
			return uint32(base), true
		}
	}
	return 0, false
}

// searchableRunDir gives the directories from the state directory down to
// the container's run directory (which holds the root filesystem's mount)
// the search bit for others: the container's root is "others" there.
func (e *Engine) searchableRunDir(id string) error {
	for _, d := range []string{e.opts.State, filepath.Join(e.opts.State, "containers"), e.runDir(id)} {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("let the container's root reach its root filesystem: %w", err)
			}
		}
	}
	return nil
}

// mountLayers makes mounts on target, id-mapped by the container's claim
// when it has one (see the top of this file).
func (e *Engine) mountLayers(id string, mounts []snapshot.Mount, target string) error {
	m := e.claimedIDMap(id)
	if m == nil {
		return snapshot.MountAll(mounts, target)
	}
	userns, err := idmapUserns(m)
	if err != nil {
		return err
	}
	defer userns.Close()
	scratch := filepath.Join(e.runDir(id), "idmap")
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return err
	}
	// The clones are only needed while the overlay is mounted on them.
	var clones []string
	defer func() {
		for _, c := range clones {
			_ = unix.Unmount(c, unix.MNT_DETACH)
		}
		os.RemoveAll(scratch)
	}()
	clone := func(src string) (string, error) {
		dst := filepath.Join(scratch, fmt.Sprint(len(clones)))
		if err := os.Mkdir(dst, 0o700); err != nil {
			return "", err
		}
		if err := attachIDMapped(src, dst, userns); err != nil {
			return "", err
		}
		clones = append(clones, dst)
		return dst, nil
	}
	var out []snapshot.Mount
	for _, mnt := range mounts {
		switch mnt.Type {
		case "overlay":
			opts, err := idmapOverlayOptions(mnt.Options, clone)
			if err != nil {
				return err
			}
			mnt.Options = opts
			out = append(out, mnt)
		case "bind":
			if len(mounts) != 1 {
				return fmt.Errorf("id-mapped root filesystem: a bind among %d mounts is not supported", len(mounts))
			}
			if err := attachIDMapped(mnt.Source, target, userns); err != nil {
				return err
			}
			if slices.Contains(mnt.Options, "ro") {
				if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
					_ = unix.Unmount(target, unix.MNT_DETACH)
					return fmt.Errorf("remount %s read-only: %w", target, err)
				}
			}
			return nil
		default:
			return fmt.Errorf("id-mapped root filesystem: mounts of type %q are not supported", mnt.Type)
		}
	}
	return snapshot.MountAll(out, target)
}

// idmapOverlayOptions replaces an overlay's lower layers, and the directory
// of its upper and work directories, by id-mapped clones.
func idmapOverlayOptions(options []string, clone func(string) (string, error)) ([]string, error) {
	var upper, work string
	for _, o := range options {
		if v, ok := strings.CutPrefix(o, "upperdir="); ok {
			upper = v
		}
		if v, ok := strings.CutPrefix(o, "workdir="); ok {
			work = v
		}
	}
	if (upper == "") != (work == "") || (upper != "" && filepath.Dir(upper) != filepath.Dir(work)) {
		return nil, fmt.Errorf("id-mapped overlay: upperdir %q and workdir %q must share a directory", upper, work)
	}
	var rw string
	if upper != "" {
		var err error
		if rw, err = clone(filepath.Dir(upper)); err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(options))
	for _, o := range options {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			var lowers []string
			for _, l := range strings.Split(v, ":") {
				c, err := clone(l)
				if err != nil {
					return nil, err
				}
				lowers = append(lowers, c)
			}
			o = "lowerdir=" + strings.Join(lowers, ":")
		case "upperdir", "workdir":
			o = k + "=" + filepath.Join(rw, filepath.Base(v))
		}
		out = append(out, o)
	}
	return out, nil
}

// attachIDMapped mounts an id-mapped clone of the directory src on dst.
func attachIDMapped(src, dst string, userns *os.File) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("clone %s: %w", src, err)
	}
	defer unix.Close(fd)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("id-map %s (needs Linux 5.19+ and a file system that supports it): %w", src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach the id-mapped %s on %s: %w", src, dst, err)
	}
	return nil
}

// idmapUserns returns a user namespace with the container's mapping plus
// host root at the first id past it, for mount_setattr: a process is
// started into a new user namespace and stopped by ptrace at its execve
// (so nothing runs in it), its namespace is opened, and it is killed.
func idmapUserns(m []specs.LinuxIDMapping) (*os.File, error) {
	var ids []syscall.SysProcIDMap
	next, hostRoot := uint32(0), false
	for _, r := range m {
		ids = append(ids, syscall.SysProcIDMap{ContainerID: int(r.ContainerID), HostID: int(r.HostID), Size: int(r.Size)})
		next = max(next, r.ContainerID+r.Size)
		hostRoot = hostRoot || r.HostID == 0
	}
	if !hostRoot {
		ids = append(ids, syscall.SysProcIDMap{ContainerID: int(next), HostID: 0, Size: 1})
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	proc, err := os.StartProcess(exe, []string{"berth-userns"}, &os.ProcAttr{Sys: &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER, UidMappings: ids, GidMappings: ids,
		Ptrace: true, // stopped at execve
	}})
	if err != nil {
		return nil, fmt.Errorf("start a process in a user namespace for id-mapped mounts: %w", err)
	}
	defer func() {
		_ = proc.Kill()
		var info unix.Siginfo
		_ = unix.Waitid(unix.P_PID, proc.Pid, &info, unix.WEXITED, nil)
		_ = proc.Release()
	}()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", proc.Pid))
	if err != nil {
		return nil, fmt.Errorf("open the user namespace for id-mapped mounts: %w", err)
	}
	return f, nil
}

// idmappedDir holds the id-mapped clones of mount sources (see the top of
// this file).
func (e *Engine) idmappedDir(id string) string { return filepath.Join(e.runDir(id), "idmapped") }

// idmapMounts points the container's volume mounts, and the bind mounts
// with the "idmap" option, at id-mapped clones of their sources when the
// container has an id mapping; the "idmap" option is removed (without a
// mapping it asks for nothing).
func (e *Engine) idmapMounts(c *Container, spec *specs.Spec) error {
	e.unmountIDMapped(c.ID) // what an interrupted start left
	m := e.claimedIDMap(c.ID)
	var userns *os.File
	defer func() {
		if userns != nil {
			userns.Close()
		}
	}()
	volumes := e.volumesDir() + string(filepath.Separator)
	for i := range spec.Mounts {
		mnt := &spec.Mounts[i]
		asked := false
		if k := slices.Index(mnt.Options, "idmap"); k >= 0 {
			mnt.Options = slices.Delete(slices.Clone(mnt.Options), k, k+1)
			asked = true
		}
		if m == nil || mnt.Type != "bind" || !asked && !strings.HasPrefix(mnt.Source, volumes) {
			continue
		}
		if userns == nil {
			var err error
			if userns, err = idmapUserns(m); err != nil {
				return err
			}
		}
		src, err := e.idmapSource(c.ID, i, mnt.Source, userns)
		if err != nil {
			return fmt.Errorf("id-mapped mount of %s on %s: %w", mnt.Source, mnt.Destination, err)
		}
		mnt.Source = src
	}
	return nil
}

// idmapSource mounts an id-mapped clone of src (a directory or a file) in
// the container's idmappedDir and returns where.
func (e *Engine) idmapSource(id string, i int, src string, userns *os.File) (string, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return "", err
	}
	dir := e.idmappedDir(id)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, strconv.Itoa(i))
	if fi.IsDir() {
		err = os.Mkdir(dst, 0o700)
	} else {
		err = os.WriteFile(dst, nil, 0o600)
	}
	if err != nil {
		return "", err
	}
	if err := attachIDMapped(src, dst, userns); err != nil {
		os.Remove(dst)
		return "", err
	}
	return dst, nil
}

// unmountIDMapped removes the id-mapped clones of mount sources; it
// reports whether they are all gone. Only their mount points are removed,
// never recursively: a clone still mounted is the volume itself.
func (e *Engine) unmountIDMapped(id string) bool {
	dir := e.idmappedDir(id)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	for _, ent := range ents {
		p := filepath.Join(dir, ent.Name())
		for unix.Unmount(p, unix.MNT_DETACH) == nil {
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			e.log.Warn("remove an id-mapped mount point", "path", p, "err", err)
		}
	}
	err = os.Remove(dir)
	return err == nil || errors.Is(err, os.ErrNotExist)
}
