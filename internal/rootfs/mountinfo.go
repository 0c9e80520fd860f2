package rootfs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	ID, Parent   int
	Root         string   // the path inside the filesystem that is mounted
	Mountpoint   string   // where, as seen from the process's root
	Options      string   // per-mount options: "rw,nosuid,relatime"
	Optional     []string // "shared:1", "master:2", ...
	FSType       string
	Source       string
	SuperOptions string // per-filesystem options: "rw,cpu,cpuacct"
}

// shared reports whether the mount is in a peer group.
func (m mountInfo) shared() bool {
	for _, o := range m.Optional {
		if strings.HasPrefix(o, "shared:") {
			return true
		}
	}
	return false
}

// readMountinfo reads the mount table of the calling thread's mount
// namespace (thread-self: the runtime builds a rootfs from a thread that
// joined the container's).
func readMountinfo() ([]mountInfo, error) {
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

// parseMountinfo parses the format of proc(5):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfo(r io.Reader) ([]mountInfo, error) {
	var out []mountInfo
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for s.Scan() {
		line++
		fields := strings.Split(s.Text(), " ")
		sep := -1
		for i, f := range fields {
			if f == "-" && i >= 6 {
				sep = i
				break
			}
		}
		if sep < 0 || len(fields) < sep+4 {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", line, s.Text())
		}
		id, err1 := strconv.Atoi(fields[0])
		parent, err2 := strconv.Atoi(fields[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo line %d: malformed ids: %q", line, s.Text())
		}
		out = append(out, mountInfo{
			ID:           id,
			Parent:       parent,
			Root:         unescapeMountinfo(fields[3]),
			Mountpoint:   unescapeMountinfo(fields[4]),
			Options:      fields[5],
			Optional:     fields[6:sep],
			FSType:       fields[sep+1],
			Source:       unescapeMountinfo(fields[sep+2]),
			SuperOptions: fields[sep+3],
		})
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for space, \011,
// \012, \134).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
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

// cgroupMembership is /proc/self/cgroup: the controllers field of each line
// ("cpu,cpuacct", "name=systemd", "" for cgroup v2) mapped to the path.
type cgroupMembership map[string]string

// readCgroupMembership reads /proc/PID/cgroup (pid 0: our own), the paths
// relative to the calling thread's cgroup namespace.
func readCgroupMembership(pid int) (cgroupMembership, error) {
	name := "/proc/self/cgroup"
	if pid != 0 {
		name = "/proc/" + strconv.Itoa(pid) + "/cgroup"
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseCgroupMembership(f)
}

func parseCgroupMembership(r io.Reader) (cgroupMembership, error) {
	out := cgroupMembership{}
	s := bufio.NewScanner(r)
	for s.Scan() {
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("/proc/self/cgroup: malformed line %q", s.Text())
		}
		out[parts[1]] = parts[2]
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	return out, nil
}
