package containerspec

import (
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultShmSize is the size of /dev/shm when --shm-size is not given.
const DefaultShmSize = 64 << 20

// defaultMounts are Docker's, in Docker's order.
func defaultMounts(shmSize int64) []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shmSize, 10)}},
	}
}

// userMount is a mount the user (or the engine's /etc files) asked for.
type userMount struct {
	m    specs.Mount
	flag string // the flag it came from, for errors
}

var propagations = map[string]bool{
	"private": true, "rprivate": true, "shared": true, "rshared": true, "slave": true, "rslave": true,
}

// checkDestination validates a mount destination in the container.
func checkDestination(flag, dst string) (string, error) {
	if dst == "" {
		return "", invalid(flag, "no destination given")
	}
	if !path.IsAbs(dst) {
		return "", invalid(flag, "invalid mount path %q: a mount path must be absolute", dst)
	}
	dst = path.Clean(dst)
	if dst == "/" {
		return "", invalid(flag, "invalid mount path %q: the destination can't be '/'", dst)
	}
	return dst, nil
}

// validVolumeName is Docker's rule for local volume names:
// [a-zA-Z0-9][a-zA-Z0-9_.-]+
func validVolumeName(n string) bool {
	if len(n) < 2 {
		return false
	}
	for i, c := range n {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// bindOptions renders the options of a bind mount the way Docker does:
// rbind (or bind), then ro (and rro for a recursive read-only mount), then
// the propagation.
func bindOptions(recursive, readonly, readonlyNonRecursive bool, propagation string) []string {
	opts := []string{"rbind"}
	if !recursive {
		opts[0] = "bind"
	}
	if readonly {
		opts = append(opts, "ro")
		if recursive && !readonlyNonRecursive {
			opts = append(opts, "rro")
		}
	}
	if propagation != "" {
		opts = append(opts, propagation)
	}
	return opts
}

// volumeSource returns the host directory of a named or anonymous volume.
func (in *Input) volumeSource(flag, key string) (string, error) {
	src, ok := in.Volumes[key]
	if !ok || src == "" {
		return "", invalid(flag, "volume %q: no host directory given for it (the engine creates volumes before rendering the spec)", key)
	}
	if !path.IsAbs(src) {
		return "", invalid(flag, "volume %q: host directory %q is not absolute", key, src)
	}
	return src, nil
}

// parseBind parses one -v value: SRC:DST[:OPTS] or DST (an anonymous
// volume). SRC is an absolute host path (a bind) or a volume name.
func (in *Input) parseBind(raw string) (userMount, error) {
	const flag = "-v"
	parts := strings.Split(raw, ":")
	var src, dst, mode string
	switch len(parts) {
	case 1:
		dst = parts[0]
	case 2:
		src, dst = parts[0], parts[1]
	case 3:
		src, dst, mode = parts[0], parts[1], parts[2]
	default:
		return userMount{}, invalid(flag, "invalid volume specification %q: want SRC:DST[:OPTIONS]", raw)
	}
	if len(parts) > 1 && src == "" {
		return userMount{}, invalid(flag, "invalid volume specification %q: empty source", raw)
	}
	dst, err := checkDestination(flag, dst)
	if err != nil {
		return userMount{}, err
	}
	isBind := path.IsAbs(src)
	readonly, rwSeen, prop, nocopy, idmap := false, false, "", false, false
	if mode != "" {
		for _, o := range strings.Split(mode, ",") {
			switch {
			case o == "ro" || o == "rw":
				if rwSeen {
					return userMount{}, invalid(flag, "invalid mode %q in %q: ro and rw given twice", mode, raw)
				}
				rwSeen, readonly = true, o == "ro"
			case propagations[o]:
				if prop != "" {
					return userMount{}, invalid(flag, "invalid mode %q in %q: more than one propagation", mode, raw)
				}
				prop = o
			case o == "z" || o == "Z": // SELinux relabelling: no SELinux here
			case o == "consistent" || o == "cached" || o == "delegated" || o == "default": // macOS hints
			case o == "nocopy":
				nocopy = true
			case o == "idmap": // podman's: mapped with the container's user namespace (the engine does it)
				idmap = true
			default:
				return userMount{}, invalid(flag, "invalid mode %q in %q", o, raw)
			}
		}
	}
	if isBind {
		if nocopy {
			return userMount{}, invalid(flag, "invalid mode \"nocopy\" in %q: only for volumes", raw)
		}
		if prop == "" {
			prop = "rprivate"
		}
		return userMount{flag: flag, m: specs.Mount{
			Destination: dst, Type: "bind", Source: path.Clean(src),
			Options: withIDMap(bindOptions(true, readonly, false, prop), idmap),
		}}, nil
	}
	if prop != "" {
		return userMount{}, invalid(flag, "invalid mode %q in %q: propagation applies to bind mounts only", prop, raw)
	}
	key := dst // anonymous
	if src != "" {
		if !validVolumeName(src) {
			return userMount{}, invalid(flag, "%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed; if you intended to pass a host directory, use an absolute path", src)
		}
		key = src
	}
	hostDir, err := in.volumeSource(flag, key)
	if err != nil {
		return userMount{}, err
	}
	return userMount{flag: flag, m: specs.Mount{
		Destination: dst, Type: "bind", Source: hostDir,
		Options: withIDMap(bindOptions(true, readonly, false, ""), idmap),
	}}, nil
}

// withIDMap adds the OCI "idmap" mount option when asked for. The runtime
// does not id-map mounts itself: the engine replaces such a mount's source
// by an id-mapped clone before the spec is written (see package engine).
func withIDMap(opts []string, idmap bool) []string {
	if idmap {
		return append(opts, "idmap")
	}
	return opts
}

// parseMount converts one --mount entry.
func (in *Input) parseMount(mm mount.Mount) (userMount, error) {
	const flag = "--mount"
	dst, err := checkDestination(flag, mm.Target)
	if err != nil {
		return userMount{}, err
	}
	mustBeNil := func(name string, isNil bool) error {
		if !isNil {
			return invalid(flag, "type %s: field %s must not be specified", mm.Type, name)
		}
		return nil
	}
	switch mm.Type {
	case mount.TypeBind:
		if err := firstErr(mustBeNil("VolumeOptions", mm.VolumeOptions == nil), mustBeNil("TmpfsOptions", mm.TmpfsOptions == nil), mustBeNil("ImageOptions", mm.ImageOptions == nil)); err != nil {
			return userMount{}, err
		}
		if mm.Source == "" {
			return userMount{}, invalid(flag, "type bind: a source is required")
		}
		if !path.IsAbs(mm.Source) {
			return userMount{}, invalid(flag, "type bind: invalid source %q: the path must be absolute", mm.Source)
		}
		recursive, roNonRec, prop := true, false, "rprivate"
		if b := mm.BindOptions; b != nil {
			if b.Propagation != "" {
				if !propagations[string(b.Propagation)] {
					return userMount{}, invalid(flag, "type bind: invalid propagation %q", b.Propagation)
				}
				prop = string(b.Propagation)
			}
			recursive = !b.NonRecursive
			roNonRec = b.ReadOnlyNonRecursive
			if b.ReadOnlyNonRecursive && b.ReadOnlyForceRecursive {
				return userMount{}, invalid(flag, "type bind: readonly non-recursive and force-recursive cannot both be set")
			}
			if (b.ReadOnlyNonRecursive || b.ReadOnlyForceRecursive) && !mm.ReadOnly {
				return userMount{}, invalid(flag, "type bind: a readonly option needs readonly")
			}
			if b.ReadOnlyForceRecursive && b.NonRecursive {
				return userMount{}, invalid(flag, "type bind: force-recursive readonly needs a recursive bind")
			}
		}
		return userMount{flag: flag, m: specs.Mount{
			Destination: dst, Type: "bind", Source: path.Clean(mm.Source),
			Options: bindOptions(recursive, mm.ReadOnly, roNonRec, prop),
		}}, nil
	case mount.TypeVolume:
		if err := firstErr(mustBeNil("BindOptions", mm.BindOptions == nil), mustBeNil("TmpfsOptions", mm.TmpfsOptions == nil), mustBeNil("ImageOptions", mm.ImageOptions == nil)); err != nil {
			return userMount{}, err
		}
		key := dst
		if mm.Source != "" {
			if !validVolumeName(mm.Source) {
				return userMount{}, invalid(flag, "type volume: %q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed", mm.Source)
			}
			key = mm.Source
		}
		if o := mm.VolumeOptions; o != nil && o.Subpath != "" {
			sub := o.Subpath
			if path.IsAbs(sub) || path.Clean(sub) != sub || sub == ".." || strings.HasPrefix(sub, "../") {
				return userMount{}, invalid(flag, "type volume: subpath %q must be a clean relative path inside the volume", sub)
			}
			if mm.Source == "" {
				return userMount{}, invalid(flag, "type volume: a subpath needs a named volume")
			}
			key = mm.Source + "/" + sub
		}
		if o := mm.VolumeOptions; o != nil && o.DriverConfig != nil && o.DriverConfig.Name != "" && o.DriverConfig.Name != "local" {
			return userMount{}, invalid(flag, "type volume: volume driver %q is not supported (only local)", o.DriverConfig.Name)
		}
		hostDir, err := in.volumeSource(flag, key)
		if err != nil {
			return userMount{}, err
		}
		return userMount{flag: flag, m: specs.Mount{
			Destination: dst, Type: "bind", Source: hostDir,
			Options: bindOptions(true, mm.ReadOnly, false, ""),
		}}, nil
	case mount.TypeTmpfs:
		if err := firstErr(mustBeNil("BindOptions", mm.BindOptions == nil), mustBeNil("VolumeOptions", mm.VolumeOptions == nil), mustBeNil("ImageOptions", mm.ImageOptions == nil)); err != nil {
			return userMount{}, err
		}
		if mm.Source != "" {
			return userMount{}, invalid(flag, "type tmpfs: field Source must not be specified")
		}
		data, err := tmpfsData(mm.TmpfsOptions, mm.ReadOnly)
		if err != nil {
			return userMount{}, err
		}
		return tmpfsMount(flag, dst, data)
	case "":
		return userMount{}, invalid(flag, "type is required (bind, volume or tmpfs)")
	default:
		return userMount{}, invalid(flag, "type %q is not supported (bind, volume or tmpfs)", mm.Type)
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// tmpfsData renders --mount type=tmpfs options as a --tmpfs option string,
// the size with the largest unit that divides it (Docker's form).
func tmpfsData(o *mount.TmpfsOptions, readonly bool) (string, error) {
	var raw []string
	if readonly {
		raw = append(raw, "ro")
	}
	if o != nil {
		if o.Mode != 0 {
			raw = append(raw, fmt.Sprintf("mode=%o", unixMode(o.Mode)))
		}
		if o.SizeBytes < 0 {
			return "", invalid("--mount", "type tmpfs: invalid size %d", o.SizeBytes)
		}
		if o.SizeBytes > 0 {
			size, suffix := o.SizeBytes, ""
			for _, u := range []struct {
				suffix string
				div    int64
			}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
				if size%u.div == 0 {
					size, suffix = size/u.div, u.suffix
					break
				}
			}
			raw = append(raw, fmt.Sprintf("size=%d%s", size, suffix))
		}
		for _, kv := range o.Options {
			switch len(kv) {
			case 1:
				raw = append(raw, kv[0])
			case 2:
				raw = append(raw, kv[0]+"="+kv[1])
			default:
				return "", invalid("--mount", "type tmpfs: invalid option %q", strings.Join(kv, "="))
			}
		}
	}
	return strings.Join(raw, ","), nil
}

// unixMode returns the permission bits of m as chmod takes them. The API's
// tmpfs mode holds them raw (the docker CLI parses "1777" as octal), but a
// Go caller may use os.ModeSticky and friends: accept both.
func unixMode(m os.FileMode) uint32 {
	v := uint32(m & 0o7777)
	if m&os.ModeSticky != 0 {
		v |= 0o1000
	}
	if m&os.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&os.ModeSetuid != 0 {
		v |= 0o4000
	}
	return v
}

// tmpfsFlags groups the flag options of a tmpfs mount: within a group the
// last one given wins (Docker's MergeTmpfsOptions).
var tmpfsFlags = map[string]string{
	"ro": "ro", "rw": "ro",
	"nosuid": "suid", "suid": "suid",
	"nodev": "dev", "dev": "dev",
	"noexec": "exec", "exec": "exec",
	"sync": "sync", "async": "sync",
	"dirsync": "dirsync",
	"noatime": "atime", "atime": "atime",
	"nodiratime": "diratime", "diratime": "diratime",
	"relatime": "relatime", "norelatime": "relatime",
	"strictatime": "strictatime", "nostrictatime": "strictatime",
	"private": "propagation", "rprivate": "propagation", "shared": "propagation",
	"rshared": "propagation", "slave": "propagation", "rslave": "propagation",
}

// tmpfsDataKeys are the key=value options a tmpfs accepts.
var tmpfsDataKeys = map[string]bool{
	"size": true, "mode": true, "uid": true, "gid": true, "nr_inodes": true, "nr_blocks": true, "mpol": true,
}

// tmpfsMount builds a tmpfs mount with Docker's defaults (noexec, nosuid,
// nodev, rprivate) overridden by the user's options.
func tmpfsMount(flag, dst, data string) (userMount, error) {
	opts := []string{"noexec", "nosuid", "nodev", "rprivate"}
	if data != "" {
		opts = append(opts, strings.Split(data, ",")...)
	}
	// Walk backwards so the last option of each group is the one kept,
	// then restore the order.
	seen := map[string]bool{}
	var kept []string
	for i := len(opts) - 1; i >= 0; i-- {
		o := strings.TrimSpace(opts[i])
		if o == "" || o == "defaults" {
			continue
		}
		key, isFlag := tmpfsFlags[o]
		if !isFlag {
			k, _, hasValue := strings.Cut(o, "=")
			if !hasValue || !tmpfsDataKeys[k] {
				return userMount{}, invalid(flag, "invalid tmpfs option %q for %s", o, dst)
			}
			key = "=" + k
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		kept = append(kept, o)
	}
	slices.Reverse(kept)
	return userMount{flag: flag, m: specs.Mount{Destination: dst, Type: "tmpfs", Source: "tmpfs", Options: kept}}, nil
}

// depth is the number of path elements of a clean absolute path.
func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// mounts assembles the spec's mounts: the defaults, then the /etc files and
// the user's mounts sorted parents first.
func (in *Input) mounts(h *container.HostConfig, readonlyRoot, privileged, userNS bool) ([]specs.Mount, error) {
	var user []userMount
	dests := map[string]string{} // destination -> the flag that claimed it
	add := func(um userMount) error {
		if prev, ok := dests[um.m.Destination]; ok {
			return invalid(um.flag, "duplicate mount point %s (also given by %s)", um.m.Destination, prev)
		}
		dests[um.m.Destination] = um.flag
		user = append(user, um)
		return nil
	}
	for _, b := range h.Binds {
		um, err := in.parseBind(b)
		if err != nil {
			return nil, err
		}
		if err := add(um); err != nil {
			return nil, err
		}
	}
	for _, m := range h.Mounts {
		um, err := in.parseMount(m)
		if err != nil {
			return nil, err
		}
		if err := add(um); err != nil {
			return nil, err
		}
	}
	for _, dst := range sortedKeys(h.Tmpfs) {
		d, err := checkDestination("--tmpfs", dst)
		if err != nil {
			return nil, err
		}
		um, err := tmpfsMount("--tmpfs", d, h.Tmpfs[dst])
		if err != nil {
			return nil, err
		}
		if err := add(um); err != nil {
			return nil, err
		}
	}
	// The image's VOLUMEs not covered by a user mount are anonymous volumes.
	for _, dst := range sortedKeys(in.Image.Volumes) {
		d, err := checkDestination("image VOLUME", dst)
		if err != nil {
			return nil, err
		}
		if _, taken := dests[d]; taken {
			continue
		}
		src, err := in.volumeSource("image VOLUME", d)
		if err != nil {
			return nil, err
		}
		if err := add(userMount{flag: "image VOLUME", m: specs.Mount{Destination: d, Type: "bind", Source: src, Options: bindOptions(true, false, false, "")}}); err != nil {
			return nil, err
		}
	}
	// The engine's /etc files yield to a user mount on the same path.
	for _, dst := range sortedKeys(in.EtcFiles) {
		d, err := checkDestination("/etc files", dst)
		if err != nil {
			return nil, err
		}
		if _, taken := dests[d]; taken {
			continue
		}
		src := in.EtcFiles[dst]
		if !path.IsAbs(src) {
			return nil, invalid("/etc files", "host file %q for %s is not absolute", src, d)
		}
		dests[d] = "/etc files"
		user = append(user, userMount{flag: "/etc files", m: specs.Mount{Destination: d, Type: "bind", Source: src, Options: bindOptions(true, readonlyRoot, false, "rprivate")}})
	}
	// IPC: none has no /dev/shm; host and container:X share one, and so
	// does shareable when the engine made one on the host (ShmPath).
	ipc := h.IpcMode
	var dropShm bool
	switch {
	case ipc.IsNone():
		dropShm = true
	case ipc.IsShareable() && in.ShmPath != "":
		if _, taken := dests["/dev/shm"]; !taken {
			if !path.IsAbs(in.ShmPath) {
				return nil, invalid("--ipc", "shareable: the host /dev/shm %q is not absolute (ShmPath)", in.ShmPath)
			}
			dests["/dev/shm"] = "--ipc"
			user = append(user, userMount{flag: "--ipc", m: specs.Mount{Destination: "/dev/shm", Type: "bind", Source: in.ShmPath, Options: []string{"rbind", "rprivate"}}})
		}
	case ipc.IsHost():
		if _, taken := dests["/dev/shm"]; !taken {
			dests["/dev/shm"] = "--ipc"
			user = append(user, userMount{flag: "--ipc", m: specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/dev/shm", Options: []string{"rbind", "rprivate"}}})
		}
	case ipc.IsContainer():
		if _, taken := dests["/dev/shm"]; !taken {
			if in.ShmPath == "" {
				return nil, invalid("--ipc", "%s: no /dev/shm of that container given (ShmPath)", ipc)
			}
			dests["/dev/shm"] = "--ipc"
			user = append(user, userMount{flag: "--ipc", m: specs.Mount{Destination: "/dev/shm", Type: "bind", Source: in.ShmPath, Options: []string{"rbind", "rprivate"}}})
		}
	}
	sort.SliceStable(user, func(i, j int) bool { return depth(user[i].m.Destination) < depth(user[j].m.Destination) })

	shm := h.ShmSize
	if shm < 0 {
		return nil, invalid("--shm-size", "%d: must not be negative", shm)
	}
	if shm == 0 {
		shm = DefaultShmSize
	}
	var out []specs.Mount
	_, userDev := dests["/dev"]
	for _, m := range defaultMounts(shm) {
		if _, ok := dests[m.Destination]; ok {
			continue
		}
		if userDev && strings.HasPrefix(m.Destination, "/dev/") {
			continue
		}
		if m.Destination == "/dev/shm" && dropShm {
			continue
		}
		switch {
		case m.Destination == "/sys" && privileged:
			m.Options = without(m.Options, "ro")
		case m.Type == "cgroup" && (privileged || userNS):
			m.Options = without(m.Options, "ro")
		}
		if readonlyRoot {
			switch m.Destination {
			case "/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev":
			default:
				if !slices.Contains(m.Options, "ro") {
					m.Options = append(m.Options, "ro")
				}
			}
		}
		out = append(out, m)
	}
	for _, um := range user {
		out = append(out, um.m)
	}
	return out, nil
}

func without(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
