package cgroups

import (
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	own := func() (string, error) { return "/user.slice/session-1.scope", nil }
	for _, tc := range []struct {
		path    string
		id      string
		systemd bool
		want    string
		wantErr string
	}{
		{path: "/berth/abc", want: "/berth/abc"},
		{path: "/berth//abc/", want: "/berth/abc"},
		{path: "/", want: "/"},
		{path: "ctr", want: "/user.slice/session-1.scope/ctr"},
		{path: "a/b", want: "/user.slice/session-1.scope/a/b"},
		{path: "", id: "abc", want: "/user.slice/session-1.scope/abc"},
		{path: "", id: "", wantErr: "linux.cgroupsPath"},
		{path: "/a/../b", wantErr: "linux.cgroupsPath"},
		{path: "../escape", wantErr: "linux.cgroupsPath"},
		{path: "..", wantErr: "linux.cgroupsPath"},

		{path: "system.slice:docker:abc", systemd: true, want: "/system.slice/docker-abc.scope"},
		{path: "machine-a-b.slice:libpod:x", systemd: true, want: "/machine.slice/machine-a.slice/machine-a-b.slice/libpod-x.scope"},
		{path: ":docker:abc", systemd: true, want: "/system.slice/docker-abc.scope"},
		{path: "system.slice::abc", systemd: true, want: "/system.slice/abc.scope"},
		{path: "-.slice:berth:abc", systemd: true, want: "/berth-abc.scope"},
		{path: "a.slice:x:a-b.slice", systemd: true, want: "/a.slice/a-b.slice"},
		{path: ":x:a-b.slice", systemd: true, want: "/a.slice/a-b.slice"},
		{path: "", id: "abc", systemd: true, want: "/system.slice/berth-abc.scope"},
		{path: "/berth/abc", systemd: true, wantErr: "linux.cgroupsPath"},
		{path: "a:b", systemd: true, wantErr: "linux.cgroupsPath"},
		{path: "system.slice:docker:", systemd: true, wantErr: "linux.cgroupsPath"},
		{path: "system:docker:abc", systemd: true, wantErr: "linux.cgroupsPath"},
		{path: "a--b.slice:docker:abc", systemd: true, wantErr: "linux.cgroupsPath"},
		{path: "a/b.slice:docker:abc", systemd: true, wantErr: "linux.cgroupsPath"},
		{path: "b.slice:x:a-c.slice", systemd: true, wantErr: "linux.cgroupsPath"},
	} {
		got, err := resolve(tc.path, tc.id, tc.systemd, own)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Resolve(%q, %q, systemd=%v) = %q, %v; want an error naming %s", tc.path, tc.id, tc.systemd, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q, %q, systemd=%v) = %q, %v; want %q", tc.path, tc.id, tc.systemd, got, err, tc.want)
		}
	}
}

func TestParseOwnCgroup(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"v2", "0::/user.slice/user-0.slice/session-3.scope\n", "/user.slice/user-0.slice/session-3.scope"},
		{"hybrid prefers cgroup2", "9:name=systemd:/s\n4:memory:/m\n0::/u\n", "/u"},
		{"v1 prefers name=systemd", "4:memory:/m\n9:name=systemd:/s\n", "/s"},
		{"v1 without systemd takes the first", "4:memory:/m\n3:cpu,cpuacct:/c\n", "/m"},
	} {
		got, err := parseOwnCgroup([]byte(tc.data))
		if err != nil || got != tc.want {
			t.Errorf("%s: parseOwnCgroup(%q) = %q, %v; want %q", tc.name, tc.data, got, err, tc.want)
		}
	}
	if _, err := parseOwnCgroup([]byte("garbage\n")); err == nil {
		t.Error("parseOwnCgroup(garbage) succeeded, want an error")
	}
}

// Resolve reads the real /proc/self/cgroup for relative paths.
func TestResolveRelativeUsesOwnCgroup(t *testing.T) {
	own, err := ownCgroup()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Resolve("x", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSuffix(own, "/") + "/x"; got != want {
		t.Errorf("Resolve(\"x\") = %q, want %q", got, want)
	}
}
