package cgroups

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// DefaultRoot is where the cgroup filesystems are mounted on every common
// distribution.
const DefaultRoot = "/sys/fs/cgroup"

// Mode names the cgroup layout of a host.
type Mode string

// The three layouts a host can have.
const (
	ModeV1     Mode = "v1"     // only v1 hierarchies
	ModeV2     Mode = "v2"     // one cgroup2 hierarchy at Root
	ModeHybrid Mode = "hybrid" // v1 hierarchies plus a cgroup2 mount
)

// Mount is one mounted cgroup hierarchy.
type Mount struct {
	// Dir is the mount point, e.g. /sys/fs/cgroup/memory.
	Dir string
	// Root is the cgroup shown at Dir (mountinfo's root field): "/" on a
	// host, a deeper path when a subtree is bind-mounted.
	Root string
}

// Layout says where each controller is mounted.
type Layout struct {
	// V1 maps every v1 controller ("memory", "cpu") and named hierarchy
	// ("name=systemd") to its mount. Co-mounted controllers share a Mount.
	V1 map[string]Mount
	// Unified is the cgroup2 mount, nil when there is none.
	Unified *Mount
	// UnifiedControllers are the controllers the cgroup2 root offers
	// (its cgroup.controllers), sorted.
	UnifiedControllers []string
}

// Mode reports whether the layout is v1, v2 or hybrid.
func (l *Layout) Mode() Mode {
	switch {
	case l.Unified == nil:
		return ModeV1
	case len(l.V1) == 0:
		return ModeV2
	default:
		return ModeHybrid
	}
}

// hasV1 reports whether the v1 controller ctrl is mounted.
func (l *Layout) hasV1(ctrl string) bool {
	_, ok := l.V1[ctrl]
	return ok
}

// hasV2 reports whether the cgroup2 root offers controller ctrl.
func (l *Layout) hasV2(ctrl string) bool {
	if l.Unified == nil {
		return false
	}
	for _, c := range l.UnifiedControllers {
		if c == ctrl {
			return true
		}
	}
	return false
}

// v1Controllers are the kernel's v1 controller names; any other super option
// of a "cgroup" mount (rw, xattr, nsdelegate...) is not a controller.
var v1Controllers = map[string]bool{
	"cpuset": true, "cpu": true, "cpuacct": true, "blkio": true, "memory": true,
	"devices": true, "freezer": true, "net_cls": true, "perf_event": true,
	"net_prio": true, "hugetlb": true, "pids": true, "rdma": true, "misc": true,
}

// DetectLayout reads /proc/self/mountinfo and returns the cgroup mounts at or
// under opts.Root (default /sys/fs/cgroup). opts.Layout, when set, is
// returned as it is.
func DetectLayout(opts Options) (*Layout, error) {
	if opts.Layout != nil {
		return opts.Layout, nil
	}
	const mountinfo = "/proc/self/mountinfo"
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, fmt.Errorf("detect cgroup layout: %w", err)
	}
	defer f.Close()
	l, err := ParseLayout(f, opts.root())
	if err != nil {
		return nil, fmt.Errorf("detect cgroup layout from %s: %w", mountinfo, err)
	}
	return l, nil
}

// ParseLayout builds a Layout from a mountinfo listing (proc(5) format),
// keeping the cgroup and cgroup2 mounts at or under root, and reads the
// cgroup2 root's cgroup.controllers. The first mount of each hierarchy wins.
func ParseLayout(mountinfo io.Reader, root string) (*Layout, error) {
	root = filepath.Clean(root)
	l := &Layout{V1: map[string]Mount{}}
	sc := bufio.NewScanner(mountinfo)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		// ID parent maj:min root mountpoint opts [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			return nil, fmt.Errorf("line %d: no \" - \" separator: %q", n, line)
		}
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 6 || len(tail) < 3 {
			return nil, fmt.Errorf("line %d: too few fields: %q", n, line)
		}
		fstype := tail[0]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		dir := unescapeMountinfo(fields[4])
		if dir != root && !strings.HasPrefix(dir, root+"/") {
			continue
		}
		m := Mount{Dir: dir, Root: unescapeMountinfo(fields[3])}
		if fstype == "cgroup2" {
			if l.Unified == nil {
				l.Unified = &m
			}
			continue
		}
		for _, opt := range strings.Split(tail[2], ",") {
			if v1Controllers[opt] || strings.HasPrefix(opt, "name=") {
				if _, seen := l.V1[opt]; !seen {
					l.V1[opt] = m
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if l.Unified == nil && len(l.V1) == 0 {
		return nil, fmt.Errorf("no cgroup or cgroup2 filesystem mounted at or under %s", root)
	}
	if l.Unified != nil {
		file := filepath.Join(l.Unified.Dir, "cgroup.controllers")
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read cgroup2 controllers: %w", err)
		}
		l.UnifiedControllers = strings.Fields(string(data))
		sort.Strings(l.UnifiedControllers)
	}
	return l, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for space...) the kernel
// puts in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// dirIn returns the directory of cgroup path p inside mount m. A mount whose
// root is a subtree (a bind mount, a cgroup namespace) shows p relative to
// that subtree.
func dirIn(m Mount, p string) string {
	if m.Root != "/" && m.Root != "" {
		if rel, ok := strings.CutPrefix(p, m.Root); ok && (rel == "" || rel[0] == '/') {
			p = rel
		}
	}
	return filepath.Join(m.Dir, p)
}
