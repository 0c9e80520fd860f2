package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultConfig is what `runc spec` would make of r's rootfs.
func (r *run) defaultConfig() Config {
	return Config{
		Rootfs:        r.rootfs,
		Readonly:      true,
		Mounts:        defaultMounts(),
		MaskedPaths:   defaultMaskedPaths,
		ReadonlyPaths: defaultReadonlyPaths,
	}
}

// defaultScript observes what the default spec is about.
const defaultScript = `
mi
for d in null zero full random urandom tty; do stat -c "DEV %n %F %t:%T %a %u:%g" /dev/$d; done
for l in fd stdin stdout stderr ptmx core; do echo "LINK /dev/$l $(readlink /dev/$l)"; done
stat -c "DEV %n %F %a" /dev/pts/ptmx
echo "RELEASE_AGENTS $(ls /sys/fs/cgroup/*/release_agent 2>/dev/null | wc -l)"
echo "CGROUPS $(ls /sys/fs/cgroup | tr '\n' ' ')"
echo "KEYS $(cat /proc/keys | wc -c)"
echo "ACPI $(ls -A /proc/acpi | wc -l)"
echo "PWD $(pwd)"
w /proc/sys/kernel/hostname
w /proc/sys/kernel/core_pattern
w /sys/kernel/uevent_helper
w /sys/fs/cgroup/x
w /sys/fs/cgroup/cpu/cgroup.procs
w /sys/fs/cgroup/cpu/release_agent
w /newfile
w /tmp/f
w /dev/shm/f
w /dev/f
w /proc/acpi/f
`

func TestDefaultSpec(t *testing.T) {
	r := newRun(t)
	c := r.defaultConfig()
	out := r.mustStart(childSpec{Config: c, Script: defaultScript}, false)
	checkDefault(t, out, false)
}

// checkDefault asserts what every container with the default spec shows.
func checkDefault(t *testing.T, out string, userNS bool) {
	t.Helper()
	mounts := containerMounts(t, out)

	// Exactly the expected mount points, and nothing of the old root.
	var got []string
	for _, mi := range mounts {
		got = append(got, mi.Mountpoint)
	}
	want := []string{"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}
	for _, mi := range hostCgroupDirs(t) {
		want = append(want, "/sys/fs/cgroup/"+mi)
	}
	want = append(want, hostExists(defaultMaskedPaths)...)
	want = append(want, hostExists(defaultReadonlyPaths)...)
	if userNS {
		for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
			want = append(want, "/dev/"+d)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("container mount points:\n got %v\nwant %v", got, want)
	}

	readOnly := map[string]bool{"/": true, "/sys": true, "/sys/fs/cgroup": true, "/proc/sys": true, "/proc/acpi": true}
	for _, d := range hostCgroupDirs(t) {
		readOnly["/sys/fs/cgroup/"+d] = true
	}
	for _, p := range hostExists(append(defaultMaskedPaths, defaultReadonlyPaths...)) {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			readOnly[p] = true // masked directories and readonly paths
		}
	}
	for mp, ro := range map[string]bool{"/proc": false, "/dev": false, "/dev/shm": false, "/dev/pts": false} {
		readOnly[mp] = ro
	}
	for mp, wantRO := range readOnly {
		mi, ok := mountAt(mounts, mp)
		if !ok {
			continue // reported above
		}
		if isRO := hasOption(mi.Options, "ro"); isRO != wantRO {
			t.Errorf("mount %s options %s: read-only = %v, want %v", mp, mi.Options, isRO, wantRO)
		}
	}
	if mi, ok := mountAt(mounts, "/dev"); ok && (mi.FSType != "tmpfs" || !hasOption(mi.Options, "nosuid") || !hasOption(mi.SuperOptions, "size=65536k")) {
		t.Errorf("/dev mount = %s %s %s, want a nosuid tmpfs of 65536k", mi.FSType, mi.Options, mi.SuperOptions)
	}
	if mi, ok := mountAt(mounts, "/dev/pts"); ok && (mi.FSType != "devpts" || !hasOption(mi.SuperOptions, "ptmxmode=666")) {
		t.Errorf("/dev/pts mount = %s %s, want a devpts with ptmxmode=666", mi.FSType, mi.SuperOptions)
	}
	if mi, ok := mountAt(mounts, "/"); ok && !hasOption(mi.Options, "relatime") {
		t.Errorf("/ options %s: the read-only remount dropped relatime", mi.Options)
	}

	wantDevs := map[string]string{
		"/dev/null":     "character special file 1:3 666 0:0",
		"/dev/zero":     "character special file 1:5 666 0:0",
		"/dev/full":     "character special file 1:7 666 0:0",
		"/dev/random":   "character special file 1:8 666 0:0",
		"/dev/urandom":  "character special file 1:9 666 0:0",
		"/dev/tty":      "character special file 5:0 666 0:0",
		"/dev/pts/ptmx": "character special file 666",
	}
	if userNS {
		// Bound from the host: the owners are the host's, which other
		// programs may change; compare the rest.
		for dev, want := range wantDevs {
			got := line(t, out, "DEV", dev)
			if dev != "/dev/pts/ptmx" {
				got, want = got[:strings.LastIndex(got, " ")], want[:strings.LastIndex(want, " ")]
			}
			if got != want {
				t.Errorf("stat %s = %q, want %q", dev, got, want)
			}
		}
		wantDevs = nil
	}
	for dev, want := range wantDevs {
		if got := line(t, out, "DEV", dev); got != want {
			t.Errorf("stat %s = %q, want %q", dev, got, want)
		}
	}
	wantLinks := map[string]string{
		"/dev/fd":     "/proc/self/fd",
		"/dev/stdin":  "/proc/self/fd/0",
		"/dev/stdout": "/proc/self/fd/1",
		"/dev/stderr": "/proc/self/fd/2",
		"/dev/ptmx":   "pts/ptmx",
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		wantLinks["/dev/core"] = "/proc/kcore"
	}
	for link, want := range wantLinks {
		if got := line(t, out, "LINK", link); got != want {
			t.Errorf("readlink %s = %q, want %q", link, got, want)
		}
	}

	wantWrites := map[string]string{
		"/proc/sys/kernel/hostname":       "Read-only file system",
		"/proc/sys/kernel/core_pattern":   "Read-only file system",
		"/sys/kernel/uevent_helper":       "Read-only file system",
		"/sys/fs/cgroup/x":                "Read-only file system",
		"/sys/fs/cgroup/cpu/cgroup.procs": "Read-only file system",
		"/newfile":                        "Read-only file system",
		"/tmp/f":                          "Read-only file system",
		"/proc/acpi/f":                    "Read-only file system",
		"/dev/shm/f":                      "ok",
		"/dev/f":                          "ok",
	}
	for p, want := range wantWrites {
		if got := line(t, out, "WRITE", p); got != want {
			t.Errorf("write %s: %q, want %q", p, got, want)
		}
	}
	// The host's release_agent must not be reachable: the cgroup dirs are
	// binds of the container's own cgroups, not hierarchy roots.
	if got := line(t, out, "RELEASE_AGENTS", ""); got != "0" {
		t.Errorf("release_agent files visible in /sys/fs/cgroup: %s, want 0", got)
	}
	if got := line(t, out, "WRITE", "/sys/fs/cgroup/cpu/release_agent"); got == "ok" {
		t.Errorf("write /sys/fs/cgroup/cpu/release_agent succeeded")
	}
	if _, err := os.Stat("/proc/keys"); err == nil {
		if got := line(t, out, "KEYS", ""); got != "0" {
			t.Errorf("masked /proc/keys reads %s bytes, want 0", got)
		}
	}
	if got := line(t, out, "ACPI", ""); got != "0" {
		t.Errorf("masked /proc/acpi has %s entries, want 0", got)
	}
	if got := line(t, out, "PWD", ""); got != "/" {
		t.Errorf("working directory %q, want /", got)
	}
}

// hostCgroupDirs are the names the container's /sys/fs/cgroup must hold: one
// per host hierarchy.
func hostCgroupDirs(t *testing.T) []string {
	t.Helper()
	infos, err := readMountinfo()
	if err != nil {
		t.Fatal(err)
	}
	own, err := readCgroupMembership(0)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := planCgroups(infos, own, false, "")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, m := range plan {
		if m.Dir != "" {
			dirs = append(dirs, m.Dir)
		}
	}
	return dirs
}

func TestNoPivot(t *testing.T) {
	r := newRun(t)
	c := r.defaultConfig()
	c.NoPivot = true
	out := r.mustStart(childSpec{Config: c, Script: defaultScript}, false)
	checkDefault(t, out, false)
}

func TestUserNamespace(t *testing.T) {
	r := newRun(t)
	r.userNS = true
	c := r.defaultConfig()
	c.UserNS = true
	out := r.mustStart(childSpec{Config: c, Script: defaultScript}, false)
	// The devices are the host's nodes, bound in.
	checkDefault(t, out, true)
}

// TestRootPropagationShared: with "rshared" every mount becomes shared, which
// pivot_root refuses for the rootfs's own mount; Prepare makes that one private
// and Enter gives the container's / the asked propagation afterwards. Both a
// rootfs that is a plain directory and one that is a mount point (as an overlay
// is) must work.
// TestUserNamespaceHostNetwork: a user namespace that does not own the network
// namespace may not mount sysfs; the host's /sys is bound instead, read-only
// down to its last submount.
func TestUserNamespaceHostNetwork(t *testing.T) {
	r := newRun(t)
	r.userNS, r.hostNet = true, true
	c := r.defaultConfig()
	c.UserNS = true
	out := r.mustStart(childSpec{Config: c, Script: "mi\nw /sys/kernel/uevent_helper\n"}, false)
	mounts := containerMounts(t, out)
	sys, ok := mountAt(mounts, "/sys")
	if !ok || sys.FSType != "sysfs" || !hasOption(sys.Options, "ro") {
		t.Errorf("/sys = %+v, want a read-only sysfs", sys)
	}
	below := 0
	for _, mi := range mounts {
		if strings.HasPrefix(mi.Mountpoint, "/sys/") {
			below++
			if !hasOption(mi.Options, "ro") {
				t.Errorf("%s under the bound /sys is writable: %s", mi.Mountpoint, mi.Options)
			}
		}
	}
	if below == 0 {
		t.Errorf("no mounts below /sys; want the host's submounts and the cgroup tree")
	}
	if got := line(t, out, "WRITE", "/sys/kernel/uevent_helper"); got != "Read-only file system" {
		t.Errorf("write /sys/kernel/uevent_helper: %q, want Read-only file system", got)
	}
}

func TestRootPropagationShared(t *testing.T) {
	for _, mountPoint := range []bool{false, true} {
		t.Run(fmt.Sprintf("rootfs is a mount point=%v", mountPoint), func(t *testing.T) {
			r := newRun(t)
			c := r.defaultConfig()
			c.RootfsPropagation = "rshared"
			spec := childSpec{Config: c, Script: "mi\n"}
			if mountPoint {
				spec.SelfBinds = []string{r.rootfs}
			}
			out := r.mustStart(spec, false)
			mi, ok := mountAt(containerMounts(t, out), "/")
			if !ok || !mi.shared() {
				t.Errorf("container / = %+v, want a shared mount", mi)
			}
		})
	}
}

// TestCgroupNamespace: with a private cgroup namespace the hierarchies are
// fresh cgroup mounts, whose roots are the container's cgroups; "ro" still
// keeps release_agent and everything else unwritable.
func TestCgroupNamespace(t *testing.T) {
	r := newRun(t)
	c := r.defaultConfig()
	c.CgroupNS = true
	script := `
mi
echo "CGROUPS $(ls /sys/fs/cgroup | tr '\n' ' ')"
echo "SELF $(cat /proc/self/cgroup | grep -c ':/$')"
w /sys/fs/cgroup/cpu/release_agent
w /sys/fs/cgroup/memory/cgroup.procs
`
	out := r.mustStart(childSpec{Config: c, Script: script}, true)
	mounts := containerMounts(t, out)
	for _, d := range hostCgroupDirs(t) {
		mi, ok := mountAt(mounts, "/sys/fs/cgroup/"+d)
		if !ok {
			t.Errorf("no mount at /sys/fs/cgroup/%s", d)
			continue
		}
		if mi.FSType != "cgroup" && mi.FSType != "cgroup2" {
			t.Errorf("/sys/fs/cgroup/%s is a %s mount, want a fresh cgroup mount", d, mi.FSType)
		}
		if mi.Root != "/" {
			t.Errorf("/sys/fs/cgroup/%s shows %s of its hierarchy, want the namespace root /", d, mi.Root)
		}
		if !hasOption(mi.Options, "ro") {
			t.Errorf("/sys/fs/cgroup/%s options %s, want ro", d, mi.Options)
		}
	}
	for _, p := range []string{"/sys/fs/cgroup/cpu/release_agent", "/sys/fs/cgroup/memory/cgroup.procs"} {
		if got := line(t, out, "WRITE", p); got != "Read-only file system" {
			t.Errorf("write %s: %q, want Read-only file system", p, got)
		}
	}
}

// TestMountCases covers the mount kinds and the attempts to escape the rootfs
// through symlinks in it.
func TestMountCases(t *testing.T) {
	r := newRun(t)

	// Host side: sources of binds, and directories the escapes aim at.
	roSrc := filepath.Join(r.tmp, "ro-src")
	rbSrc := filepath.Join(r.tmp, "rb-src")
	outside := filepath.Join(r.tmp, "outside")        // a symlinked mount destination aims here
	devOutside := filepath.Join(r.tmp, "dev-outside") // a symlinked device path aims here
	for _, d := range []string{roSrc, filepath.Join(rbSrc, "sub"), outside, devOutside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(roSrc, "hello"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fileSrc := filepath.Join(r.tmp, "bound-file")
	if err := os.WriteFile(fileSrc, []byte("bound\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Rootfs side: the escape symlinks and their targets as seen inside.
	r.symlink(outside, "abs-escape")                              // absolute
	r.symlink("../../../../../../../../.."+outside, "rel-escape") // climbs past the root
	r.symlink("../../../../../../../../.."+devOutside, "dev-escape")
	r.mirror(outside)
	r.mirror(devOutside)
	r.writeFile("etc/secretdir/key", "secret\n")
	r.writeFile("etc/secretfile", "secret\n")
	r.writeFile("data/file", "data\n")

	mode := os.FileMode(0o640)
	uid, gid := uint32(1000), uint32(1000)
	c := Config{
		Rootfs: r.rootfs,
		Mounts: append(defaultMounts(),
			specs.Mount{Destination: "/mnt/ro", Type: "bind", Source: roSrc, Options: []string{"bind", "ro"}},
			specs.Mount{Destination: "/etc/bound", Type: "bind", Source: fileSrc, Options: []string{"bind"}},
			specs.Mount{Destination: "/mnt/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m", "mode=700", "nodev"}},
			specs.Mount{Destination: "/mnt/rb", Type: "bind", Source: rbSrc, Options: []string{"rbind", "ro", "nosuid"}},
			specs.Mount{Destination: "/mnt/shared", Type: "tmpfs", Source: "tmpfs", Options: []string{"shared"}},
			specs.Mount{Destination: "/abs-escape", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
			specs.Mount{Destination: "/rel-escape/sub", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
			specs.Mount{Destination: "/data/sub", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
		),
		Devices: []specs.LinuxDevice{
			{Path: "/dev/testdev", Type: "c", Major: 1, Minor: 7, FileMode: &mode, UID: &uid, GID: &gid},
			{Path: "/dev-escape/null2", Type: "c", Major: 1, Minor: 3},
		},
		MaskedPaths:   []string{"/etc/secretdir", "/etc/secretfile", "/nonexistent"},
		ReadonlyPaths: []string{"/data", "/missing"},
	}
	script := `
mi
echo "HELLO $(cat /mnt/ro/hello)"
echo "BOUND $(cat /etc/bound)"
stat -c "STAT %n %a" /mnt/tmp
stat -c "DEV %n %F %t:%T %a %u:%g" /dev/testdev /dev-escape/null2
echo "SECRETDIR $(ls -A /etc/secretdir | wc -l)"
echo "SECRETFILE $(cat /etc/secretfile | wc -c)"
echo "DATA $(cat /data/file)"
w /mnt/ro/x
w /mnt/rb/x
w /mnt/rb/sub/x
w /mnt/tmp/x
w /abs-escape/marker
w /rel-escape/sub/marker
w /data/x
w /data/sub/x
w /etc/secretfile
w /newfile
`
	out := r.mustStart(childSpec{Config: c, Tmpfs: []string{filepath.Join(rbSrc, "sub")}, Script: script}, false)
	mounts := containerMounts(t, out)

	for key, want := range map[string]string{"HELLO": "hello", "BOUND": "bound", "SECRETDIR": "0", "SECRETFILE": "0", "DATA": "data"} {
		if got := line(t, out, key, ""); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if got := line(t, out, "STAT", "/mnt/tmp"); got != "700" {
		t.Errorf("tmpfs mode = %s, want 700", got)
	}
	for dev, want := range map[string]string{
		"/dev/testdev":      "character special file 1:7 640 1000:1000",
		"/dev-escape/null2": "character special file 1:3 666 0:0",
	} {
		if got := line(t, out, "DEV", dev); got != want {
			t.Errorf("stat %s = %q, want %q", dev, got, want)
		}
	}
	for p, want := range map[string]string{
		"/mnt/ro/x":              "Read-only file system",
		"/mnt/rb/x":              "Read-only file system",
		"/mnt/rb/sub/x":          "Read-only file system", // the submount too
		"/mnt/tmp/x":             "ok",
		"/abs-escape/marker":     "ok",
		"/rel-escape/sub/marker": "ok",
		"/data/x":                "Read-only file system",
		"/data/sub/x":            "Read-only file system", // readonlyPaths are recursive
		"/etc/secretfile":        "ok",                    // it is /dev/null now: the write goes nowhere
		"/newfile":               "ok",
	} {
		if got := line(t, out, "WRITE", p); got != want {
			t.Errorf("write %s: %q, want %q", p, got, want)
		}
	}

	// Where the mounts are, inside the container.
	if mi, ok := mountAt(mounts, "/mnt/tmp"); !ok || mi.FSType != "tmpfs" || !hasOption(mi.SuperOptions, "size=1024k") || !hasOption(mi.Options, "nodev") {
		t.Errorf("/mnt/tmp = %+v, want a nodev tmpfs of 1024k", mi)
	}
	if mi, ok := mountAt(mounts, "/mnt/rb"); !ok || !hasOption(mi.Options, "nosuid") {
		t.Errorf("/mnt/rb = %+v, want nosuid", mi)
	}
	if mi, ok := mountAt(mounts, "/mnt/shared"); !ok || !mi.shared() {
		t.Errorf("/mnt/shared = %+v, want a shared mount", mi)
	}
	// The escapes landed on the host paths' mirrors inside the rootfs.
	if _, ok := mountAt(mounts, outside); !ok {
		t.Errorf("no mount at %s inside the container (where /abs-escape points)", outside)
	}
	if _, ok := mountAt(mounts, filepath.Join(outside, "sub")); !ok {
		t.Errorf("no mount at %s/sub inside the container (where /rel-escape/sub points)", outside)
	}
	// ... and nothing reached the host.
	emptyDir(t, outside)
	emptyDir(t, devOutside)
	if data, err := os.ReadFile(filepath.Join(r.rootfs, "etc/secretfile")); err != nil || string(data) != "secret\n" {
		t.Errorf("masked file in the rootfs now reads %q, %v", data, err)
	}
}

// TestEscapesThatFail: a destination that resolves to nothing inside the
// rootfs, or to a forbidden place, stops Prepare; nothing is made on the host.
func TestEscapesThatFail(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(r *run) Config
		wantErr string
	}{
		{"dangling symlink to a host dir", func(r *run) Config {
			r.symlink(filepath.Join(r.tmp, "outside"), "evil")
			return Config{Rootfs: r.rootfs, Mounts: []specs.Mount{{Destination: "/evil/x", Type: "tmpfs", Source: "tmpfs"}}}
		}, "is a dangling symlink"},
		{"symlink into /proc", func(r *run) Config {
			r.symlink("/proc/self/attr", "attr")
			return Config{Rootfs: r.rootfs, Mounts: []specs.Mount{
				{Destination: "/proc", Type: "proc", Source: "proc"},
				{Destination: "/attr", Type: "tmpfs", Source: "tmpfs"},
			}}
		}, "is inside /proc"},
		{"device through a dangling symlink", func(r *run) Config {
			r.symlink(filepath.Join(r.tmp, "outside"), "evil")
			return Config{Rootfs: r.rootfs, Devices: []specs.LinuxDevice{{Path: "/evil/null", Type: "c", Major: 1, Minor: 3}}}
		}, "is a dangling symlink"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRun(t)
			if err := os.Mkdir(filepath.Join(r.tmp, "outside"), 0o755); err != nil {
				t.Fatal(err)
			}
			c := tc.setup(r)
			out, childErr := r.start(childSpec{Config: c, Script: "echo STARTED\n"}, false)
			if childErr == "" {
				t.Fatalf("container started, want it to fail with %q; output:\n%s", tc.wantErr, out)
			}
			if !strings.Contains(childErr, tc.wantErr) {
				t.Errorf("container error = %q, want one saying %q", childErr, tc.wantErr)
			}
			emptyDir(t, filepath.Join(r.tmp, "outside"))
		})
	}
}

// TestMaskRefusesFakeDevNull: a container whose /dev/null is not the null
// device cannot make masking bind it over /proc files.
func TestMaskRefusesFakeDevNull(t *testing.T) {
	r := newRun(t)
	r.writeFile("dev/null", "not a device\n")
	c := Config{
		Rootfs:      r.rootfs,
		Mounts:      []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		MaskedPaths: []string{"/proc/keys"},
	}
	_, childErr := r.start(childSpec{Config: c, Script: "echo STARTED\n"}, false)
	if want := "is not the null device"; !strings.Contains(childErr, want) {
		t.Errorf("container error = %q, want one saying %q", childErr, want)
	}
}
