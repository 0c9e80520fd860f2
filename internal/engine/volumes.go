package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/archive"
	"github.com/berthproject/berth/internal/containerspec"
	"github.com/berthproject/berth/internal/fsroot"
)

// Volume is a named volume: a directory berth manages, mounted into
// containers (Root/volumes/<name>/_data, its record in volume.json).
type Volume struct {
	Name       string            `json:"Name"`
	Driver     string            `json:"Driver"`
	Mountpoint string            `json:"Mountpoint"`
	CreatedAt  time.Time         `json:"CreatedAt"`
	Labels     map[string]string `json:"Labels"`
	Options    map[string]string `json:"Options"`
	Scope      string            `json:"Scope"`
	// Anonymous volumes are made for a container (-v /data, an image's
	// VOLUME) and removed with it by rm -v.
	Anonymous bool `json:"-"`
}

const anonymousLabel = "com.docker.volume.anonymous"

func (e *Engine) volumesDir() string { return filepath.Join(e.opts.Root, "volumes") }

func validVolumeName(n string) bool { return validName(n) }

// VolumeCreate makes a volume; an existing one with that name is returned
// as it is (Docker's behaviour).
func (e *Engine) VolumeCreate(ctx context.Context, name string, labels, opts map[string]string) (*Volume, error) {
	if name == "" {
		name = newID()
	}
	if !validVolumeName(name) {
		return nil, fmt.Errorf("%w: %q includes invalid characters for a local volume name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", ErrInvalid, name)
	}
	for k := range opts {
		return nil, fmt.Errorf("%w: --opt %s: the local driver takes no options here", ErrInvalid, k)
	}
	lk, err := e.lockVolumes()
	if err != nil {
		return nil, err
	}
	defer lk.Close()
	if v, err := e.readVolume(name); err == nil {
		return v, nil
	}
	dir := filepath.Join(e.volumesDir(), name)
	if err := os.MkdirAll(filepath.Join(dir, "_data"), 0o755); err != nil {
		return nil, err
	}
	if labels == nil {
		labels = map[string]string{}
	}
	v := &Volume{Name: name, Driver: "local", Mountpoint: filepath.Join(dir, "_data"), CreatedAt: time.Now().UTC(),
		Labels: labels, Options: map[string]string{}, Scope: "local"}
	_, v.Anonymous = labels[anonymousLabel]
	b, _ := json.Marshal(v)
	if err := writeFileAtomic(filepath.Join(dir, "volume.json"), b, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e.Emit(events.VolumeEventType, events.ActionCreate, name, map[string]string{"driver": "local"})
	return v, nil
}

func (e *Engine) lockVolumes() (*os.File, error) {
	if err := os.MkdirAll(e.volumesDir(), 0o711); err != nil {
		return nil, err
	}
	return flock(filepath.Join(e.volumesDir(), ".lock"))
}

func (e *Engine) readVolume(name string) (*Volume, error) {
	if !validVolumeName(name) {
		return nil, fmt.Errorf("%w: no such volume: %s", ErrNotFound, name)
	}
	b, err := os.ReadFile(filepath.Join(e.volumesDir(), name, "volume.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: no such volume: %s", ErrNotFound, name)
		}
		return nil, err
	}
	var v Volume
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("volume %s: %w", name, err)
	}
	_, v.Anonymous = v.Labels[anonymousLabel]
	return &v, nil
}

// VolumeInspect returns a volume.
func (e *Engine) VolumeInspect(ctx context.Context, name string) (*Volume, error) {
	return e.readVolume(name)
}

// VolumeList returns every volume, sorted by name.
func (e *Engine) VolumeList(ctx context.Context) ([]*Volume, error) {
	ents, err := os.ReadDir(e.volumesDir())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*Volume
	for _, ent := range ents {
		if v, err := e.readVolume(ent.Name()); err == nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// VolumeListFiltered is VolumeList with `volume ls --filter`s, as Docker
// has them: dangling=true|false (used by no container), driver=NAME,
// label=KEY or label=KEY=VALUE (all must match), label!=KEY[=VALUE] (none
// may), name=PATTERN (a regular expression matched anywhere in the name).
// Several values of dangling, driver or name match any of them.
func (e *Engine) VolumeListFiltered(ctx context.Context, filters []string) ([]*Volume, error) {
	byKey := map[string][]string{}
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("%w: --filter: bad format of filter (expected name=value): %s", ErrInvalid, f)
		}
		switch k {
		case "dangling":
			switch v {
			case "true", "1", "false", "0":
			default:
				return nil, fmt.Errorf("%w: --filter: invalid filter 'dangling=%s'", ErrInvalid, v)
			}
		case "name":
			if _, err := regexp.Compile(v); err != nil {
				return nil, fmt.Errorf("%w: --filter name=%s: %v", ErrInvalid, v, err)
			}
		case "driver", "label", "label!":
		default:
			return nil, fmt.Errorf("%w: --filter: invalid filter '%s'", ErrInvalid, k)
		}
		byKey[k] = append(byKey[k], v)
	}
	vols, err := e.VolumeList(ctx)
	if err != nil || len(filters) == 0 {
		return vols, err
	}
	var used map[string]bool
	if len(byKey["dangling"]) > 0 {
		cs, err := e.List(ctx)
		if err != nil {
			return nil, err
		}
		used = map[string]bool{}
		for _, c := range cs {
			for _, name := range containerVolumes(c) {
				used[name] = true
			}
		}
	}
	var out []*Volume
	for _, v := range vols {
		if volumeMatches(v, byKey, used) {
			out = append(out, v)
		}
	}
	return out, nil
}

// volumeMatches applies parsed filters (see VolumeListFiltered); used
// names the volumes containers mount.
func volumeMatches(v *Volume, byKey map[string][]string, used map[string]bool) bool {
	anyOf := func(key string, match func(string) bool) bool {
		vals := byKey[key]
		if len(vals) == 0 {
			return true
		}
		for _, val := range vals {
			if match(val) {
				return true
			}
		}
		return false
	}
	hasLabel := func(kv string) bool {
		k, want, withValue := strings.Cut(kv, "=")
		got, ok := v.Labels[k]
		return ok && (!withValue || got == want)
	}
	if !anyOf("dangling", func(val string) bool { return (val == "true" || val == "1") == !used[v.Name] }) ||
		!anyOf("driver", func(val string) bool { return val == v.Driver }) ||
		!anyOf("name", func(val string) bool { return regexp.MustCompile(val).MatchString(v.Name) }) {
		return false
	}
	for _, kv := range byKey["label"] {
		if !hasLabel(kv) {
			return false
		}
	}
	for _, kv := range byKey["label!"] {
		if hasLabel(kv) {
			return false
		}
	}
	return true
}

// volumeUsers lists the containers that mount volume name.
func (e *Engine) volumeUsers(ctx context.Context, name string) ([]string, error) {
	cs, err := e.List(ctx)
	if err != nil {
		return nil, err
	}
	var users []string
	for _, c := range cs {
		for _, v := range containerVolumes(c) {
			if v == name {
				users = append(users, c.Name)
				break
			}
		}
	}
	return users, nil
}

// VolumeRemove deletes a volume; one in use by a container is refused
// (with force too, like Docker).
func (e *Engine) VolumeRemove(ctx context.Context, name string, force bool) error {
	if _, err := e.readVolume(name); err != nil {
		if force && errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	users, err := e.volumeUsers(ctx, name)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return fmt.Errorf("%w: remove %s: volume is in use - [%s]", ErrConflict, name, strings.Join(users, ", "))
	}
	lk, err := e.lockVolumes()
	if err != nil {
		return err
	}
	defer lk.Close()
	if err := os.RemoveAll(filepath.Join(e.volumesDir(), name)); err != nil {
		return err
	}
	e.Emit(events.VolumeEventType, events.ActionDestroy, name, map[string]string{"driver": "local"})
	return nil
}

// VolumePrune removes unused volumes: anonymous ones, or all with all.
func (e *Engine) VolumePrune(ctx context.Context, all bool) ([]string, int64, error) {
	vols, err := e.VolumeList(ctx)
	if err != nil {
		return nil, 0, err
	}
	var removed []string
	var space int64
	for _, v := range vols {
		if !all && !v.Anonymous {
			continue
		}
		if users, err := e.volumeUsers(ctx, v.Name); err != nil || len(users) > 0 {
			continue
		}
		n := dirSize(v.Mountpoint)
		if err := e.VolumeRemove(ctx, v.Name, false); err == nil {
			removed = append(removed, v.Name)
			space += n
		}
	}
	return removed, space, nil
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// containerVolumes lists the volume names a container mounts.
func containerVolumes(c *Container) []string {
	var out []string
	for _, name := range c.AnonVolumes {
		out = append(out, name)
	}
	for _, b := range c.HostConfig.Binds {
		if src, _, ok := strings.Cut(b, ":"); ok && !filepath.IsAbs(src) {
			out = append(out, src)
		}
	}
	for _, m := range c.HostConfig.Mounts {
		if m.Type == mount.TypeVolume && m.Source != "" {
			out = append(out, m.Source)
		}
	}
	return out
}

// namedVolumes lists the named volumes of the container's -v NAME:DST and
// --mount type=volume,source=NAME, with the flag each came from.
func namedVolumes(c *Container) (names, flags []string) {
	for _, b := range c.HostConfig.Binds {
		if src, _, ok := strings.Cut(b, ":"); ok && !filepath.IsAbs(src) {
			names, flags = append(names, src), append(flags, "--volume "+b)
		}
	}
	for _, m := range c.HostConfig.Mounts {
		if m.Type == mount.TypeVolume && m.Source != "" {
			names, flags = append(names, m.Source), append(flags, "--mount "+m.Target)
		}
	}
	return names, flags
}

// createNamedVolumes makes the container's named volumes that do not
// exist, at create as Docker does (volume ls lists them before the
// container starts); they are filled from the image at the first start.
// Every name is checked before any volume is made.
func (e *Engine) createNamedVolumes(ctx context.Context, c *Container) error {
	names, flags := namedVolumes(c)
	for i, name := range names {
		if !validVolumeName(name) {
			return fmt.Errorf("%w: %s: %q includes invalid characters for a local volume name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", ErrInvalid, flags[i], name)
		}
	}
	for i, name := range names {
		if _, err := e.VolumeCreate(ctx, name, nil, nil); err != nil {
			return fmt.Errorf("%s: %w", flags[i], err)
		}
	}
	return nil
}

// resolveVolumes makes sure every volume and bind source of the container
// exists (a missing host directory is created, as Docker does), populates
// new volumes from the image's content at their mount point, and tells the
// spec where each volume lives.
func (e *Engine) resolveVolumes(ctx context.Context, c *Container, in *containerspec.Input) error {
	in.Volumes = map[string]string{}
	unmap := unmapIDs(e.claimedIDMap(c.ID))
	populateVolume := func(ctx context.Context, rootfs, dst, volumeDir string) error {
		return populateVolume(ctx, rootfs, dst, volumeDir, unmap)
	}
	use := func(name, dst string, nocopy bool) error {
		v, err := e.VolumeCreate(ctx, name, nil, nil)
		if err != nil {
			return err
		}
		in.Volumes[name] = v.Mountpoint
		if !nocopy && !c.VolumesPopulated {
			return populateVolume(ctx, in.Rootfs, dst, v.Mountpoint)
		}
		return nil
	}
	for _, b := range c.HostConfig.Binds {
		parts := strings.Split(b, ":")
		if len(parts) < 2 {
			continue
		}
		src, dst := parts[0], parts[1]
		nocopy := len(parts) == 3 && strings.Contains(parts[2], "nocopy")
		if filepath.IsAbs(src) {
			if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(src, 0o755); err != nil {
					return fmt.Errorf("--volume %s: create the host directory: %w", b, err)
				}
			}
			continue
		}
		if err := use(src, dst, nocopy); err != nil {
			return fmt.Errorf("--volume %s: %w", b, err)
		}
	}
	for dst, name := range c.AnonVolumes {
		v, err := e.readVolume(name)
		if err != nil {
			return fmt.Errorf("anonymous volume for %s: %w", dst, err)
		}
		in.Volumes[dst] = v.Mountpoint
		if c.VolumesPopulated {
			continue
		}
		if err := populateVolume(ctx, in.Rootfs, dst, v.Mountpoint); err != nil {
			return err
		}
	}
	for _, m := range c.HostConfig.Mounts {
		switch m.Type {
		case mount.TypeVolume:
			if m.Source == "" {
				continue
			}
			nocopy := m.VolumeOptions != nil && m.VolumeOptions.NoCopy
			if err := use(m.Source, m.Target, nocopy); err != nil {
				return fmt.Errorf("--mount %s: %w", m.Target, err)
			}
		case mount.TypeBind:
			if _, err := os.Stat(m.Source); err != nil {
				return fmt.Errorf("%w: --mount: invalid mount config: bind source path does not exist: %s", ErrInvalid, m.Source)
			}
		}
	}
	// Recorded with the start's outcome (the record is written then).
	c.VolumesPopulated = true
	return nil
}

// unmapIDs is the mapping that stores the files of an id-mapped root
// filesystem (which shows container id k as host id H+k, and the engine's
// own files in the upper layer as host root) as the image has them, for a
// copy into a volume: volumes are id-mapped too (see userns.go). nil for a
// container without a mapping.
func unmapIDs(m []specs.LinuxIDMapping) []specs.LinuxIDMapping {
	if m == nil {
		return nil
	}
	var out []specs.LinuxIDMapping
	next, hostRoot := uint32(0), false
	for _, r := range m {
		out = append(out, specs.LinuxIDMapping{ContainerID: r.HostID, HostID: r.ContainerID, Size: r.Size})
		next = max(next, r.ContainerID+r.Size)
		hostRoot = hostRoot || r.HostID == 0
	}
	if !hostRoot {
		out = append(out, specs.LinuxIDMapping{ContainerID: 0, HostID: next, Size: 1})
	}
	return out
}

// populateVolume copies what the image has at dst into an empty volume,
// the first time the volume is used (Docker's copy-up of volume content).
// unmap (see unmapIDs) stores the ids of an id-mapped rootfs as the image
// has them.
func populateVolume(ctx context.Context, rootfs, dst, volumeDir string, unmap []specs.LinuxIDMapping) error {
	ents, err := os.ReadDir(volumeDir)
	if err != nil || len(ents) > 0 {
		return err
	}
	root, err := os.Open(rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	src, err := fsroot.Open(root, dst, os.O_RDONLY|0o200000) // O_DIRECTORY
	if err != nil {
		return nil // nothing in the image there
	}
	srcPath := fsroot.FdPath(src)
	defer src.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.Diff(ctx, srcPath, pw, archive.DiffOptions{})) }()
	_, err = archive.Apply(ctx, volumeDir, pr, archive.ApplyOptions{Whiteouts: archive.WhiteoutApply, UIDMaps: unmap, GIDMaps: unmap})
	pr.Close()
	if err != nil {
		return fmt.Errorf("copy the image's %s into the volume: %w", dst, err)
	}
	return nil
}
