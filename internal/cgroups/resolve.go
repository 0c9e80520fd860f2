package cgroups

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"strings"
)

// Resolve turns the OCI spec's linux.cgroupsPath into an absolute cgroup path
// such as "/a/b", the same in every hierarchy.
//
//   - An absolute path is taken as it is, relative to the hierarchy root.
//   - A relative path is relative to the calling process's own cgroup, read
//     from /proc/self/cgroup: its cgroup2 ("0::") entry when there is one,
//     else its name=systemd entry, else its first entry.
//   - "" means the relative path id, as runc does.
//
// With systemd set, cgroupsPath has runc's "slice:prefix:name" form and is
// mapped, without asking systemd, to the directory systemd would use:
// "system.slice:docker:abc" -> "/system.slice/docker-abc.scope", a nested
// slice "a-b.slice" -> "/a.slice/a-b.slice", an empty slice -> system.slice,
// a name ending in ".slice" -> that slice itself. "" means
// "system.slice:berth:<id>".
func Resolve(cgroupsPath, id string, systemd bool) (string, error) {
	return resolve(cgroupsPath, id, systemd, ownCgroup)
}

func resolve(cgroupsPath, id string, systemd bool, own func() (string, error)) (string, error) {
	if systemd {
		if cgroupsPath == "" {
			cgroupsPath = "system.slice:berth:" + id
		}
		p, err := systemdPath(cgroupsPath)
		if err != nil {
			return "", fmt.Errorf("linux.cgroupsPath %q: %w", cgroupsPath, err)
		}
		return p, nil
	}
	if cgroupsPath == "" {
		cgroupsPath = id
	}
	if cgroupsPath == "" {
		return "", fmt.Errorf("linux.cgroupsPath: empty, and no container id to default to")
	}
	if err := checkComponents(cgroupsPath); err != nil {
		return "", fmt.Errorf("linux.cgroupsPath %q: %w", cgroupsPath, err)
	}
	if strings.HasPrefix(cgroupsPath, "/") {
		return path.Clean(cgroupsPath), nil
	}
	base, err := own()
	if err != nil {
		return "", fmt.Errorf("linux.cgroupsPath %q is relative: %w", cgroupsPath, err)
	}
	return path.Join("/", base, cgroupsPath), nil
}

// checkComponents refuses ".." so a path cannot climb out of the hierarchy
// or out of the caller's cgroup, and refuses characters no cgroup name has.
func checkComponents(p string) error {
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return fmt.Errorf("\"..\" is not allowed")
		}
	}
	if strings.ContainsAny(p, "\x00\n") {
		return fmt.Errorf("NUL or newline is not allowed")
	}
	return nil
}

// systemdPath maps "slice:prefix:name" to the cgroupfs path of the unit.
func systemdPath(s string) (string, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return "", fmt.Errorf("want \"slice:prefix:name\" with systemd cgroups")
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	if name == "" {
		return "", fmt.Errorf("empty unit name")
	}
	if strings.HasSuffix(name, ".slice") {
		// A slice unit lives where its name puts it, which must be a child
		// of the parent slice when one is given.
		p, err := expandSlice(name)
		if err != nil {
			return "", err
		}
		if slice != "" {
			parent, err := expandSlice(slice)
			if err != nil {
				return "", err
			}
			if path.Dir(p) != parent {
				return "", fmt.Errorf("slice %q is not a child of %q", name, slice)
			}
		}
		return p, nil
	}
	if slice == "" {
		slice = "system.slice"
	}
	parent, err := expandSlice(slice)
	if err != nil {
		return "", err
	}
	unit := name + ".scope"
	if prefix != "" {
		unit = prefix + "-" + unit
	}
	if strings.ContainsAny(unit, "/\x00\n") {
		return "", fmt.Errorf("unit name %q has a character systemd does not allow", unit)
	}
	return path.Join(parent, unit), nil
}

// expandSlice turns a systemd slice name into its path: "a-b-c.slice" ->
// "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" is the root.
func expandSlice(slice string) (string, error) {
	base, ok := strings.CutSuffix(slice, ".slice")
	if !ok || base == "" || strings.ContainsAny(slice, "/\x00\n") {
		return "", fmt.Errorf("invalid slice name %q", slice)
	}
	if base == "-" {
		return "/", nil
	}
	var b strings.Builder
	prefix := ""
	for _, part := range strings.Split(base, "-") {
		if part == "" {
			return "", fmt.Errorf("invalid slice name %q: empty component", slice)
		}
		b.WriteString("/" + prefix + part + ".slice")
		prefix += part + "-"
	}
	return b.String(), nil
}

// ownCgroup reads the calling process's cgroup from /proc/self/cgroup.
func ownCgroup() (string, error) {
	const file = "/proc/self/cgroup"
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read own cgroup: %w", err)
	}
	p, err := parseOwnCgroup(data)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", file, err)
	}
	return p, nil
}

// parseOwnCgroup picks one path from /proc/self/cgroup ("hier:ctrls:path"
// lines): the cgroup2 entry, else name=systemd, else the first line.
func parseOwnCgroup(data []byte) (string, error) {
	var first, named string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			return parts[2], nil
		case parts[1] == "name=systemd" && named == "":
			named = parts[2]
		case first == "":
			first = parts[2]
		}
	}
	if named != "" {
		return named, nil
	}
	if first != "" {
		return first, nil
	}
	return "", fmt.Errorf("no cgroup entry")
}
