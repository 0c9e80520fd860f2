package containerspec

import (
	"path"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/caps"
)

// DefaultPath is the PATH a container gets when neither the image nor the
// user sets one (Docker's).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultCapabilities is Docker's default capability set, in Docker's order.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// InitPathInContainer is where --init binds the init binary.
const InitPathInContainer = "/sbin/berth-init"

// command returns the process arguments with Docker's rules: no entrypoint
// given (nil) means the image's, and then also the image's Cmd when the user
// gave none; a given entrypoint, even an empty one, drops the image's Cmd;
// [""] means no entrypoint at all.
func command(img []string, imgCmd []string, c *container.Config) ([]string, error) {
	entry, cmd := c.Entrypoint, c.Cmd
	if len(entry) == 0 {
		if len(cmd) == 0 {
			cmd = imgCmd
		}
		if entry == nil {
			entry = img
		}
	}
	if len(entry) == 1 && entry[0] == "" {
		entry = nil
	}
	args := append(append([]string{}, entry...), cmd...)
	if len(args) == 0 {
		return nil, invalid("no command specified", "the image has no Entrypoint or Cmd and none was given")
	}
	if args[0] == "" {
		return nil, invalid("--entrypoint", "the command to run is an empty string")
	}
	return args, nil
}

// environment builds the process environment as Docker does: PATH,
// HOSTNAME and (with a tty) TERM first, then the user's variables, then the
// image's that the user did not set; a later KEY=value replaces an earlier
// one in place, and a bare KEY (no "=") removes KEY. HOME comes last, from
// the user's passwd entry, unless set.
func environment(imageEnv, userEnv []string, hostname string, tty bool, home string) []string {
	env := []string{"PATH=" + DefaultPath, "HOSTNAME=" + hostname}
	if tty {
		env = append(env, "TERM=xterm")
	}
	// The image's variables come after the user's and only where the user
	// did not name the key (Docker's merge at create).
	merged := append([]string{}, userEnv...)
	userKeys := map[string]bool{}
	for _, e := range userEnv {
		k, _, _ := strings.Cut(e, "=")
		userKeys[k] = true
	}
	for _, e := range imageEnv {
		k, _, _ := strings.Cut(e, "=")
		if !userKeys[k] {
			merged = append(merged, e)
		}
	}
	index := map[string]int{}
	for i, e := range env {
		k, _, _ := strings.Cut(e, "=")
		index[k] = i
	}
	removed := map[int]bool{}
	for _, e := range merged {
		k, _, hasValue := strings.Cut(e, "=")
		if k == "" {
			continue
		}
		i, seen := index[k]
		switch {
		case !hasValue && seen:
			removed[i] = true
			delete(index, k)
		case !hasValue:
		case seen:
			env[i] = e
		default:
			index[k] = len(env)
			env = append(env, e)
		}
	}
	out := env[:0:0]
	for i, e := range env {
		if !removed[i] {
			out = append(out, e)
		}
	}
	if _, ok := index["HOME"]; !ok {
		out = append(out, "HOME="+home)
	}
	return out
}

// workingDir returns the process's cwd: the user's, the image's, or "/".
func workingDir(user, image string) (string, error) {
	wd := user
	if wd == "" {
		wd = image
	}
	if wd == "" {
		return "/", nil
	}
	if !path.IsAbs(wd) {
		if user != "" {
			return "", invalid("-w", "%q is not an absolute path", wd)
		}
		// Old builders stored relative WORKDIRs; Docker treats them as
		// relative to /.
		wd = "/" + wd
	}
	return path.Clean(wd), nil
}

// normalizeCaps turns user capability names into CAP_X form; "ALL" stays.
func normalizeCaps(flag string, list []string) ([]string, error) {
	var out []string
	for _, c := range list {
		u := strings.ToUpper(strings.TrimSpace(c))
		if u == "ALL" {
			out = append(out, u)
			continue
		}
		if !strings.HasPrefix(u, "CAP_") {
			u = "CAP_" + u
		}
		if !caps.Known(u) {
			return nil, invalid(flag, "unknown capability %q", c)
		}
		out = append(out, u)
	}
	return out, nil
}

// capabilities applies --privileged, --cap-add and --cap-drop to Docker's
// default set, with Docker's rules: add ALL grants everything but what is
// dropped; drop ALL keeps only what is added; otherwise drop, then add.
// "Everything" is available, the capabilities the engine holds (Docker's
// rule too: a container cannot get what its creator lacks), or every one
// the kernel knows when available is nil.
func capabilities(h *container.HostConfig, available []string) ([]string, error) {
	all := available
	if all == nil {
		all = caps.All()
	}
	if h.Privileged {
		return slices.Clone(all), nil
	}
	add, err := normalizeCaps("--cap-add", h.CapAdd)
	if err != nil {
		return nil, err
	}
	for _, c := range add {
		if c != "ALL" && !slices.Contains(all, c) {
			return nil, invalid("--cap-add", "capability %s is not available here: the engine does not hold it", c)
		}
	}
	drop, err := normalizeCaps("--cap-drop", h.CapDrop)
	if err != nil {
		return nil, err
	}
	var out []string
	switch {
	case slices.Contains(add, "ALL"):
		for _, c := range all {
			if !slices.Contains(drop, c) {
				out = append(out, c)
			}
		}
	case slices.Contains(drop, "ALL"):
		out = add
	default:
		for _, c := range DefaultCapabilities {
			if !slices.Contains(drop, c) {
				out = append(out, c)
			}
		}
		out = append(out, add...)
	}
	// Keep the first of duplicates ("--cap-add CHOWN" on top of the default).
	var uniq []string
	for _, c := range out {
		if !slices.Contains(uniq, c) {
			uniq = append(uniq, c)
		}
	}
	return uniq, nil
}

// rlimitNames are the --ulimit names (Docker's, plus "as").
var rlimitNames = map[string]bool{
	"as": true, "core": true, "cpu": true, "data": true, "fsize": true, "locks": true,
	"memlock": true, "msgqueue": true, "nice": true, "nofile": true, "nproc": true,
	"rss": true, "rtprio": true, "rttime": true, "sigpending": true, "stack": true,
}

// rlimits converts --ulimit entries; -1 means unlimited.
func rlimits(h *container.HostConfig) ([]specs.POSIXRlimit, error) {
	var out []specs.POSIXRlimit
	seen := map[string]bool{}
	for _, u := range h.Ulimits {
		if u == nil {
			continue
		}
		name := strings.ToLower(u.Name)
		if !rlimitNames[name] {
			return nil, invalid("--ulimit", "unknown limit %q", u.Name)
		}
		if seen[name] {
			return nil, invalid("--ulimit", "%s given twice", name)
		}
		seen[name] = true
		if u.Soft < -1 || u.Hard < -1 {
			return nil, invalid("--ulimit", "%s=%d:%d: limits are -1 (unlimited) or a count", name, u.Soft, u.Hard)
		}
		soft, hard := uint64(u.Soft), uint64(u.Hard) // -1 becomes RLIM_INFINITY
		if soft > hard {
			return nil, invalid("--ulimit", "%s=%d:%d: the soft limit must not be above the hard limit", name, u.Soft, u.Hard)
		}
		out = append(out, specs.POSIXRlimit{Type: "RLIMIT_" + strings.ToUpper(name), Soft: soft, Hard: hard})
	}
	return out, nil
}
