package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// mountEntry is one line of /proc/<pid>/mountinfo.
type mountEntry struct {
	mountPoint string
	options    string   // per-mount options, e.g. "ro,nosuid"
	optional   []string // propagation tags, e.g. "shared:12", "master:3"
	fsType     string
	source     string
	superOpts  string
}

func parseMountinfo(t *testing.T, text string) []mountEntry {
	t.Helper()
	var entries []mountEntry
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 10 || sep < 6 || sep+3 >= len(f) {
			t.Fatalf("malformed mountinfo line %q", line)
		}
		entries = append(entries, mountEntry{
			mountPoint: unescapeMountinfo(f[4]), options: f[5], optional: f[6:sep],
			fsType: f[sep+1], source: f[sep+2], superOpts: f[sep+3],
		})
	}
	return entries
}

func findMount(entries []mountEntry, mountPoint string) (mountEntry, bool) {
	// The last one wins: it is the mount on top.
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].mountPoint == mountPoint {
			return entries[i], true
		}
	}
	return mountEntry{}, false
}

func hasOption(options, want string) bool { return slices.Contains(strings.Split(options, ","), want) }

// hostMount runs mount(8) on the host; what it mounts under the container's
// dir is unmounted by the container's cleanup.
func hostMount(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Fatalf("mount %v: %v: %s", args, err, out)
	}
}

func mkdirAll(t *testing.T, path string) string {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Mounts are made in the order of the spec: a bind inside a tmpfs needs
// the tmpfs first.
func TestMountsInOrder(t *testing.T) {
	c := newContainer(t)
	src := mkdirAll(t, filepath.Join(c.dir, "src"))
	writeFile(t, filepath.Join(src, "file"), "from the host\n")
	c.spec.Mounts = append(c.spec.Mounts,
		specs.Mount{Destination: "/mnt/a", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
		specs.Mount{Destination: "/mnt/a/b", Type: "bind", Source: src, Options: []string{"rbind"}},
	)
	c.spec.Process.Args = []string{"sh", "-c", "cat /mnt/a/b/file; cat /proc/self/mountinfo"}
	r := c.run()
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	content, info, _ := strings.Cut(r.stdout, "\n")
	if content != "from the host" {
		t.Errorf("the bind mount inside the tmpfs shows %q, want the host file", content)
	}
	var order []string
	for _, m := range parseMountinfo(t, info) {
		if strings.HasPrefix(m.mountPoint, "/mnt/") {
			order = append(order, m.mountPoint)
		}
	}
	if !slices.Equal(order, []string{"/mnt/a", "/mnt/a/b"}) {
		t.Errorf("mounts under /mnt in mountinfo order = %v, want [/mnt/a /mnt/a/b]", order)
	}
}

// Mount propagation options of a bind mount: with rslave a mount made on the
// host later appears inside; with rprivate it does not.
func TestBindMountPropagation(t *testing.T) {
	tests := []struct {
		option      string
		wantVisible bool
		wantTag     string
	}{
		{"rslave", true, "master:"},
		{"rprivate", false, ""},
		{"rshared", true, "shared:"},
	}
	for _, tt := range tests {
		t.Run(tt.option, func(t *testing.T) {
			c := newContainer(t)
			src := mkdirAll(t, filepath.Join(c.dir, "shared"))
			hostMount(t, "--bind", src, src)
			hostMount(t, "--make-shared", src)
			mkdirAll(t, filepath.Join(src, "later"))
			// The spec has no default rootfsPropagation (runc uses rslave,
			// crun rprivate, which cuts the host off before the bind).
			c.spec.Linux.RootfsPropagation = "rslave"
			c.spec.Mounts = append(c.spec.Mounts, specs.Mount{Destination: "/mnt/prop", Type: "bind", Source: src, Options: []string{"rbind", tt.option}})
			c.spec.Process.Args = []string{"sleep", "1000000"}
			c.mustCreate()
			c.mustRT("start", c.id)

			info := c.mustRT("exec", c.id, "cat", "/proc/self/mountinfo").stdout
			m, ok := findMount(parseMountinfo(t, info), "/mnt/prop")
			if !ok {
				t.Fatalf("no /mnt/prop in mountinfo inside:\n%s", info)
			}
			if tt.option == "rshared" {
				crunBindShared.skip(t)
			}
			tagged := false
			for _, o := range m.optional {
				tagged = tagged || (tt.wantTag != "" && strings.HasPrefix(o, tt.wantTag))
			}
			if tt.wantTag != "" && !tagged || tt.wantTag == "" && len(m.optional) != 0 {
				t.Errorf("/mnt/prop propagation tags %v, want %q", m.optional, tt.wantTag)
			}

			hostMount(t, "-t", "tmpfs", "tmpfs", filepath.Join(src, "later"))
			writeFile(t, filepath.Join(src, "later", "file"), "propagated\n")
			r := c.rt("exec", c.id, "cat", "/mnt/prop/later/file")
			if visible := r.code == 0 && r.stdout == "propagated\n"; visible != tt.wantVisible {
				t.Errorf("with %s a host mount made later is visible inside: %v, want %v (%v)", tt.option, visible, tt.wantVisible, r)
			}
		})
	}
}

func TestBindMountRecursiveReadonly(t *testing.T) {
	c := newContainer(t)
	src := mkdirAll(t, filepath.Join(c.dir, "src"))
	nested := mkdirAll(t, filepath.Join(src, "nested"))
	hostMount(t, "-t", "tmpfs", "tmpfs", nested)
	writeFile(t, filepath.Join(nested, "file"), "nested mount\n")
	c.spec.Mounts = append(c.spec.Mounts, specs.Mount{Destination: "/mnt/r", Type: "bind", Source: src, Options: []string{"rbind", "ro"}})
	c.spec.Process.Args = []string{"sh", "-c", "cat /mnt/r/nested/file; touch /mnt/r/x 2>&1; echo touch=$?"}
	r := c.run()
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	if !strings.HasPrefix(r.stdout, "nested mount\n") {
		t.Errorf("rbind does not show the nested mount: %q", r.stdout)
	}
	if !strings.Contains(r.stdout, "Read-only file system") || strings.Contains(r.stdout, "touch=0") {
		t.Errorf("writing to a ro bind mount: %q, want Read-only file system", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(src, "x")); err == nil {
		t.Errorf("the container wrote through a read-only bind mount")
	}
}

func TestTmpfsSize(t *testing.T) {
	out := mustRun(t, "grep ' /mnt/t ' /proc/self/mountinfo; dd if=/dev/zero of=/mnt/t/big bs=1k count=2048 2>&1; echo dd=$?", func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt/t", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m", "mode=755"}})
	})
	if !strings.Contains(out, "size=1024k") {
		t.Errorf("tmpfs mountinfo %q, want size=1024k", out)
	}
	if !strings.Contains(out, "No space left on device") || strings.Contains(out, "dd=0") {
		t.Errorf("writing 2 MiB to a 1 MiB tmpfs: %q, want No space left on device", out)
	}
}

// The default config's special filesystems have their types, and devpts is
// a new instance with its own ptmx.
func TestSpecialFilesystems(t *testing.T) {
	out := mustRun(t, "cat /proc/self/mountinfo; echo ---; readlink /dev/ptmx; ls /dev/pts")
	info, rest, _ := strings.Cut(out, "---\n")
	entries := parseMountinfo(t, info)
	for mp, fs := range map[string]string{"/proc": "proc", "/sys": "sysfs", "/dev/mqueue": "mqueue", "/dev/pts": "devpts", "/dev": "tmpfs", "/dev/shm": "tmpfs"} {
		if m, ok := findMount(entries, mp); !ok || m.fsType != fs {
			t.Errorf("mount at %s: %+v (found %v), want type %s", mp, m, ok, fs)
		}
	}
	if m, _ := findMount(entries, "/dev/pts"); !strings.Contains(m.superOpts, "ptmxmode=666") {
		t.Errorf("devpts options %q, want ptmxmode=666 (a private instance)", m.superOpts)
	}
	lines := strings.Fields(rest)
	if len(lines) < 2 || lines[0] != "pts/ptmx" || !slices.Equal(lines[1:], []string{"ptmx"}) {
		t.Errorf("/dev/ptmx -> %q and /dev/pts holds %v, want pts/ptmx and only ptmx (no host ptys)", lines[:min(1, len(lines))], lines[min(1, len(lines)):])
	}
}

func TestDefaultDevices(t *testing.T) {
	out := mustRun(t, "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done; for l in fd stdin stdout stderr; do readlink /dev/$l; done")
	want := `/dev/null character special file 1:3 666
/dev/zero character special file 1:5 666
/dev/full character special file 1:7 666
/dev/random character special file 1:8 666
/dev/urandom character special file 1:9 666
/dev/tty character special file 5:0 666
/proc/self/fd
/proc/self/fd/0
/proc/self/fd/1
/proc/self/fd/2
`
	if out != want {
		t.Errorf("default devices inside:\n%s\nwant:\n%s", out, want)
	}
}

func TestSpecDevices(t *testing.T) {
	mode := os.FileMode(0o640)
	uid, gid := uint32(1000), uint32(1000)
	out := mustRun(t, "stat -c '%n %F %t:%T %a %u:%g' /dev/mynull /dev/myblock", func(s *specs.Spec) {
		s.Linux.Devices = append(s.Linux.Devices,
			specs.LinuxDevice{Path: "/dev/mynull", Type: "c", Major: 1, Minor: 3, FileMode: &mode, UID: &uid, GID: &gid},
			specs.LinuxDevice{Path: "/dev/myblock", Type: "b", Major: 7, Minor: 200, FileMode: &mode, UID: &uid, GID: &gid},
		)
	})
	want := "/dev/mynull character special file 1:3 640 1000:1000\n/dev/myblock block special file 7:c8 640 1000:1000\n"
	if out != want {
		t.Errorf("spec devices inside = %q, want %q", out, want)
	}
}

// After pivot_root no host path is mounted inside: every mount point is
// the root, a special filesystem or a spec mount.
func TestPivotRootHidesHost(t *testing.T) {
	out := mustRun(t, "cat /proc/self/mountinfo")
	for _, m := range parseMountinfo(t, out) {
		mp := m.mountPoint
		if mp != "/" && !strings.HasPrefix(mp, "/proc") && !strings.HasPrefix(mp, "/sys") && !strings.HasPrefix(mp, "/dev") {
			t.Errorf("mount point %s inside is not the container's", mp)
		}
	}
	if _, err := os.Stat("/work"); err == nil {
		if out := mustRun(t, "ls /work 2>&1; true"); !strings.Contains(out, "No such file") {
			t.Errorf("the host's /work is reachable inside: %q", out)
		}
	}
}

func TestNoPivot(t *testing.T) {
	c := newContainer(t, sh("cat /etc/hostname; cat /proc/self/mountinfo"))
	r := c.run("--no-pivot")
	if r.code != 0 {
		t.Fatalf("run --no-pivot: %v", r)
	}
	hostname, info, _ := strings.Cut(r.stdout, "\n")
	if hostname != "berth" {
		t.Errorf("/etc/hostname with --no-pivot = %q, want the rootfs's berth", hostname)
	}
	if _, ok := findMount(parseMountinfo(t, info), "/proc"); !ok {
		t.Errorf("no /proc inside with --no-pivot:\n%s", info)
	}
	// And create takes the option too.
	c2 := newContainer(t, sh("cat /etc/hostname"))
	c2.mustCreate("--no-pivot")
	c2.mustRT("start", c2.id)
	c2.waitOutput("berth\n")
}

func TestRootReadonly(t *testing.T) {
	out := mustRun(t, "touch /newfile 2>&1; touch /tmp/newfile 2>&1; awk '$5 == \"/\"' /proc/self/mountinfo", func(s *specs.Spec) {
		s.Root.Readonly = true
	})
	if strings.Count(out, "Read-only file system") != 2 {
		t.Errorf("writes to a readonly root: %q, want two Read-only file system errors", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if m := parseMountinfo(t, lines[len(lines)-1]); len(m) != 1 || !hasOption(m[0].options, "ro") {
		t.Errorf("root mount %+v, want ro", m)
	}
}

func TestMaskedPaths(t *testing.T) {
	// /proc/kcore, the brief's example, does not exist on every kernel;
	// /proc/timer_list does and is never empty.
	if data, err := os.ReadFile("/proc/timer_list"); err != nil || len(data) == 0 {
		t.Fatalf("this host has no /proc/timer_list content to mask: %v", err)
	}
	c := newContainer(t)
	mkdirAll(t, filepath.Join(c.rootfs, "secret"))
	writeFile(t, filepath.Join(c.rootfs, "secret/key"), "hidden\n")
	writeFile(t, filepath.Join(c.rootfs, "etc/token"), "hidden\n")
	c.spec.Linux.MaskedPaths = append(c.spec.Linux.MaskedPaths, "/secret", "/etc/token")
	c.spec.Process.Args = []string{"sh", "-c", "cat /proc/timer_list | wc -c; ls -A /secret | wc -l; wc -c < /etc/token; true"}
	r := c.run()
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	if got := strings.Fields(r.stdout); !slices.Equal(got, []string{"0", "0", "0"}) {
		t.Errorf("sizes of masked /proc/timer_list (default config), /secret entries, /etc/token = %v, want all 0 (stderr %q)", got, r.stderr)
	}
}

func TestReadonlyPaths(t *testing.T) {
	out := mustRun(t, "{ echo x > /proc/sys/kernel/hostname; } 2>&1; echo rc=$?; grep ' /proc/sys ' /proc/self/mountinfo")
	if !strings.Contains(out, "Read-only file system") || strings.Contains(out, "rc=0") {
		t.Errorf("write to /proc/sys: %q, want Read-only file system", out)
	}
}

func TestRootfsPropagation(t *testing.T) {
	tests := []struct {
		propagation string
		wantTag     string // "" = no tag: private
	}{
		{"private", ""},
		{"rprivate", ""},
		{"shared", "shared:"},
		{"rshared", "shared:"},
	}
	for _, tt := range tests {
		t.Run(tt.propagation, func(t *testing.T) {
			if tt.wantTag == "shared:" {
				runcRootfsShared.skip(t)
			}
			out := mustRun(t, "awk '$5 == \"/\"' /proc/self/mountinfo", func(s *specs.Spec) { s.Linux.RootfsPropagation = tt.propagation })
			m := parseMountinfo(t, out)
			if len(m) != 1 {
				t.Fatalf("root mount lines %q", out)
			}
			tagged := len(m[0].optional) > 0 && strings.HasPrefix(m[0].optional[0], tt.wantTag)
			if tt.wantTag == "" && len(m[0].optional) != 0 || tt.wantTag != "" && !tagged {
				t.Errorf("rootfsPropagation %s: root mount tags %v, want %q", tt.propagation, m[0].optional, tt.wantTag)
			}
		})
	}
}

// A proc mount shows the container's pid namespace and takes its options
// and flags, also a second one (berth-runtime makes them from procfs
// contexts its init opened when it builds the rootfs itself).
func TestProcMountOptions(t *testing.T) {
	out := mustRun(t, "grep -E ' /(proc|mnt/p) ' /proc/self/mountinfo; echo ---; ls /mnt/p | grep -c ^[0-9]; cat /mnt/p/1/comm; true", func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt/p", Type: "proc", Source: "proc2", Options: []string{"nosuid", "noexec", "nodev", "ro", "hidepid=2"}})
	})
	info, rest, _ := strings.Cut(out, "---\n")
	entries := parseMountinfo(t, info)
	m, ok := findMount(entries, "/mnt/p")
	if !ok || m.fsType != "proc" {
		t.Fatalf("second proc mount: %+v (found %v) in %q", m, ok, info)
	}
	for _, o := range []string{"ro", "nosuid", "nodev", "noexec"} {
		if !hasOption(m.options, o) {
			t.Errorf("second proc mount options %q, want %s", m.options, o)
		}
	}
	if !strings.Contains(m.superOpts, "hidepid=invisible") && !strings.Contains(m.superOpts, "hidepid=2") {
		t.Errorf("second proc mount super options %q, want hidepid", m.superOpts)
	}
	if m.source != "proc2" {
		t.Errorf("second proc mount source %q, want proc2", m.source)
	}
	f := strings.Fields(rest)
	// The shell and its pipeline: a handful of pids, not the host's.
	if len(f) != 2 || f[0] == "0" || len(f[0]) > 1 || f[1] != "sh" {
		t.Errorf("pids in the container's procfs and /proc/1/comm: %q, want a few and sh", rest)
	}
}
