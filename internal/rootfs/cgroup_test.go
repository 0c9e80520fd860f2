package rootfs

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestPlanCgroups turns each testdata/cgroup/<host>.mountinfo and .cgroup (the
// host's mount table and the process's /proc/self/cgroup) into the cgroup
// mounts of a container, with and without a cgroup namespace, and compares them
// with <host>.<bind|fresh>.golden.
func TestPlanCgroups(t *testing.T) {
	hosts, err := filepath.Glob("testdata/cgroup/*.mountinfo")
	if err != nil || len(hosts) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, mi := range hosts {
		host := strings.TrimSuffix(filepath.Base(mi), ".mountinfo")
		for _, fresh := range []bool{false, true} {
			mode := map[bool]string{false: "bind", true: "fresh"}[fresh]
			t.Run(host+"/"+mode, func(t *testing.T) {
				infos := mustParseMountinfo(t, mi)
				own := mustParseCgroup(t, strings.TrimSuffix(mi, ".mountinfo")+".cgroup")
				plan, err := planCgroups(infos, own, fresh, "/var/lib/berth/c1/rootfs")
				var got []byte
				if err != nil {
					got = []byte("error: " + err.Error() + "\n")
				} else {
					got, _ = json.MarshalIndent(plan, "", "  ")
					got = append(got, '\n')
				}
				golden := filepath.Join("testdata/cgroup", host+"."+mode+".golden")
				if *update {
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if string(got) != string(want) {
					t.Errorf("planCgroups(%s, fresh=%v) =\n%s\nwant (%s):\n%s", host, fresh, got, golden, want)
				}
			})
		}
	}
}

func mustParseMountinfo(t *testing.T, p string) []mountInfo {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	infos, err := parseMountinfo(f)
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

func mustParseCgroup(t *testing.T, p string) cgroupMembership {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	own, err := parseCgroupMembership(f)
	if err != nil {
		t.Fatal(err)
	}
	return own
}

func TestParseMountinfo(t *testing.T) {
	in := "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 shared:4 - ext3 /dev/root rw,errors=continue\n" +
		"37 36 0:5 / /a\\134b rw - tmpfs tmp\\011fs rw\n"
	got, err := parseMountinfo(strings.NewReader(in))
	if err != nil {
		t.Fatalf("parseMountinfo: %v", err)
	}
	want := []mountInfo{
		{ID: 36, Parent: 35, Root: "/mnt1", Mountpoint: "/mnt two", Options: "rw,noatime", Optional: []string{"master:1", "shared:4"},
			FSType: "ext3", Source: "/dev/root", SuperOptions: "rw,errors=continue"},
		{ID: 37, Parent: 36, Root: "/", Mountpoint: `/a\b`, Options: "rw", Optional: []string{},
			FSType: "tmpfs", Source: "tmp\tfs", SuperOptions: "rw"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseMountinfo =\n%+v\nwant\n%+v", got, want)
	}
	if !got[0].shared() || got[1].shared() {
		t.Errorf("shared() = %v, %v; want true, false", got[0].shared(), got[1].shared())
	}
	for _, bad := range []string{"36 35 98:0 / /mnt rw\n", "x 35 98:0 / /mnt rw - ext4 /dev/sda rw\n"} {
		if _, err := parseMountinfo(strings.NewReader(bad)); err == nil {
			t.Errorf("parseMountinfo(%q) = nil error, want one", bad)
		}
	}
}

func TestDevicesToMake(t *testing.T) {
	mode := os.FileMode(0o600)
	spec := []specs.LinuxDevice{
		{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: &mode},
		{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
	}
	c := &Config{Devices: spec}
	paths := func(devs []specs.LinuxDevice) string {
		var p []string
		for _, d := range devs {
			p = append(p, d.Path)
		}
		return strings.Join(p, " ")
	}
	cases := []struct {
		kind devKind
		want string
	}{
		// The spec's /dev/null replaces the default one.
		{devFresh, "/dev/null /dev/fuse /dev/zero /dev/full /dev/random /dev/urandom /dev/tty"},
		{devNotMounted, "/dev/null /dev/fuse"},
		{devBind, ""},
	}
	for _, tc := range cases {
		if got := paths(devicesToMake(c, tc.kind)); got != tc.want {
			t.Errorf("devicesToMake(kind %d) = %q, want %q", tc.kind, got, tc.want)
		}
	}

	kinds := []struct {
		mounts []specs.Mount
		want   devKind
	}{
		{defaultMounts(), devFresh},
		{nil, devNotMounted},
		{[]specs.Mount{{Destination: "/dev/", Type: "bind", Source: "/dev", Options: []string{"rbind"}}}, devBind},
	}
	for _, tc := range kinds {
		if got, _ := devMount(&Config{Mounts: tc.mounts}); got != tc.want {
			t.Errorf("devMount(%v) = %d, want %d", tc.mounts, got, tc.want)
		}
	}
}
