package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestBindDir: -v HOST_DIR:DST shares the directory both ways at once.
func TestBindDir(t *testing.T) {
	e := newCtrEnv(t)
	host := filepath.Join(e.dir, "shared")
	os.MkdirAll(host, 0o755)
	os.WriteFile(filepath.Join(host, "before"), []byte("before\n"), 0o644)
	id := e.runD("-v", host+":/mnt", box, "sleep", "1000")
	if out := e.sh(id, "cat /mnt/before"); out != "before\n" {
		t.Errorf("the container sees %q in the bind", out)
	}
	os.WriteFile(filepath.Join(host, "later"), []byte("from the host\n"), 0o644)
	if out := e.sh(id, "cat /mnt/later"); out != "from the host\n" {
		t.Errorf("a host write is not seen at once inside: %q", out)
	}
	e.sh(id, "echo from the container > /mnt/inside")
	if b, err := os.ReadFile(filepath.Join(host, "inside")); err != nil || string(b) != "from the container\n" {
		t.Errorf("a container write is not seen at once on the host: %q %v", b, err)
	}
	if out := e.sh(id, "grep ' /mnt ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1"); out != "rw\n" {
		t.Errorf("/mnt mount options %q, want rw", out)
	}
}

// TestBindReadOnly: :ro binds refuse writes inside; reads work.
func TestBindReadOnly(t *testing.T) {
	e := newCtrEnv(t)
	host := filepath.Join(e.dir, "ro")
	os.MkdirAll(host, 0o755)
	os.WriteFile(filepath.Join(host, "f"), []byte("read me\n"), 0o644)
	r := e.run(nil, "run", "--rm", "-v", host+":/mnt:ro", box, "sh", "-c", "cat /mnt/f; touch /mnt/g; echo rc=$?")
	if r.stdout != "read me\nrc=1\n" || !strings.Contains(r.stderr, "Read-only file system") {
		t.Errorf("-v %s:/mnt:ro: %v\nwant the read and a refused write", host, r)
	}
	if _, err := os.Stat(filepath.Join(host, "g")); err == nil {
		t.Errorf("a write through a read-only bind reached the host")
	}
}

// TestBindMissingDir: a missing HOST_DIR is created, as Docker does for -v.
func TestBindMissingDir(t *testing.T) {
	e := newCtrEnv(t)
	host := filepath.Join(e.dir, "does", "not", "exist")
	if out := e.ok("run", "--rm", "-v", host+":/mnt", box, "sh", "-c", "echo made > /mnt/f; cat /mnt/f"); out != "made\n" {
		t.Errorf("-v of a missing dir: %q", out)
	}
	if fi, err := os.Stat(host); err != nil || !fi.IsDir() {
		t.Fatalf("-v did not create the host directory %s: %v", host, err)
	}
	if b, _ := os.ReadFile(filepath.Join(host, "f")); string(b) != "made\n" {
		t.Errorf("the created directory holds %q", b)
	}
	// --mount type=bind does not create it (Docker refuses).
	missing := filepath.Join(e.dir, "missing-for-mount")
	if r := e.run(nil, "run", "--rm", "--mount", "type=bind,source="+missing+",target=/mnt", box, "true"); r.code != 125 || !strings.Contains(r.stderr, missing) {
		t.Errorf("--mount type=bind of a missing source: %v, want exit 125 naming it", r)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("--mount type=bind created %s", missing)
	}
}

// TestBindFile: -v HOST_FILE:DST binds the file's inode. A write in place
// shows on the other side at once; a file replaced by rename on the host
// (what editors do) is a new inode the container does not see until it
// restarts. berth's README documents this.
func TestBindFile(t *testing.T) {
	e := newCtrEnv(t)
	f := filepath.Join(e.dir, "config.txt")
	os.WriteFile(f, []byte("v1\n"), 0o644)
	id := e.runD("--name", "fb", "-v", f+":/etc/app.conf", box, "sleep", "1000")
	if out := e.sh(id, "cat /etc/app.conf"); out != "v1\n" {
		t.Fatalf("the bound file reads %q", out)
	}
	// In place: same inode (truncate and write).
	if err := os.WriteFile(f, []byte("v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := e.sh(id, "cat /etc/app.conf"); out != "v2\n" {
		t.Errorf("after an in-place write on the host the container reads %q, want v2", out)
	}
	e.sh(id, "echo v2-inside >> /etc/app.conf")
	if b, _ := os.ReadFile(f); string(b) != "v2\nv2-inside\n" {
		t.Errorf("an in-place write inside shows on the host as %q", b)
	}
	// Replace by rename: a new inode.
	tmp := f + ".tmp"
	os.WriteFile(tmp, []byte("v3\n"), 0o644)
	if err := os.Rename(tmp, f); err != nil {
		t.Fatal(err)
	}
	if out := e.sh(id, "cat /etc/app.conf"); out != "v2\nv2-inside\n" {
		t.Errorf("after a replace-by-rename the container reads %q, want the old inode's content (documented)", out)
	}
	e.ok("restart", "-t", "0", "fb")
	if out := e.sh(e.remember("fb"), "cat /etc/app.conf"); out != "v3\n" {
		t.Errorf("after restart the container reads %q, want the new file v3", out)
	}
	readme, _ := os.ReadFile("../../README.md")
	if !strings.Contains(string(readme), "rename") || !strings.Contains(string(readme), "inode") {
		t.Errorf("README.md does not document the file bind's rename behaviour")
	}
}

// volumeInspect is `volume inspect` of one volume.
type volumeInspect struct {
	CreatedAt  string
	Driver     string
	Labels     map[string]string
	Mountpoint string
	Name       string
	Options    map[string]string
	Scope      string
}

func (e *ctrEnv) volume(name string) volumeInspect {
	e.t.Helper()
	var v []volumeInspect
	s := e.ok("volume", "inspect", name)
	if err := json.Unmarshal([]byte(s), &v); err != nil || len(v) != 1 {
		e.t.Fatalf("volume inspect %s: %v: %q", name, err, s)
	}
	return v[0]
}

// TestNamedVolume: -v NAME:DST creates the volume on first use, fills it
// from the image's content at DST (only while it is empty), and keeps its
// data across containers.
func TestNamedVolume(t *testing.T) {
	e := newCtrEnv(t)
	if out := e.ok("run", "--rm", "-v", "vol1:/data", box, "cat", "/data/seed.txt"); out != boxSeed {
		t.Errorf("a new named volume on /data reads %q, want the image's seed", out)
	}
	if got := lines(e.ok("volume", "ls", "-q")); !slices.Equal(got, []string{"vol1"}) {
		t.Errorf("volume ls -q after first use = %q", got)
	}
	v := e.volume("vol1")
	if v.Name != "vol1" || v.Driver != "local" || v.Scope != "local" || v.Mountpoint == "" {
		t.Errorf("volume inspect vol1 = %+v", v)
	}
	if b, err := os.ReadFile(filepath.Join(v.Mountpoint, "seed.txt")); err != nil || string(b) != boxSeed {
		t.Errorf("the volume's Mountpoint %s holds %q %v", v.Mountpoint, b, err)
	}
	e.ok("run", "--rm", "-v", "vol1:/data", box, "sh", "-c", "echo kept > /data/kept; rm /data/seed.txt")
	if out := e.ok("run", "--rm", "-v", "vol1:/data", box, "ls", "/data"); out != "kept\n" {
		t.Errorf("a reused volume lists %q, want kept only (no refill once used)", out)
	}
	// On the host, at once, both ways.
	id := e.runD("-v", "vol1:/data", box, "sleep", "1000")
	os.WriteFile(filepath.Join(v.Mountpoint, "host"), []byte("h\n"), 0o644)
	if out := e.sh(id, "cat /data/host"); out != "h\n" {
		t.Errorf("a write into the Mountpoint is not seen inside: %q", out)
	}
	if out := e.ok("run", "--rm", "-v", "fresh:/nowhere", box, "ls", "-A", "/nowhere"); out != "" {
		t.Errorf("a new volume on a path the image lacks lists %q, want empty", out)
	}
}

// TestMountFlag: --mount type=bind|volume|tmpfs with their options.
func TestMountFlag(t *testing.T) {
	e := newCtrEnv(t)
	host := filepath.Join(e.dir, "b")
	os.MkdirAll(host, 0o755)
	os.WriteFile(filepath.Join(host, "f"), []byte("bound\n"), 0o644)
	id := e.runD("--mount", "type=bind,source="+host+",target=/b,readonly",
		"--mount", "type=volume,source=mv,target=/data",
		"--mount", "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770",
		"--mount", "type=volume,target=/anon",
		box, "sleep", "1000")
	out, _, _ := e.shAny(id, "cat /b/f; touch /b/g 2>/dev/null && echo b-writable || echo b-ro; cat /data/seed.txt; "+
		"grep ' /t ' /proc/mounts | cut -d' ' -f3,4; stat -c %a /t; echo x > /t/x && echo t-ok")
	want := "bound\nb-ro\n" + boxSeed
	if !strings.HasPrefix(out, want) {
		t.Errorf("--mount bind,readonly + volume: inside %q, want prefix %q", out, want)
	}
	rest := lines(strings.TrimPrefix(out, want))
	if len(rest) != 3 || !strings.HasPrefix(rest[0], "tmpfs ") || !strings.Contains(rest[0], "size=1024k") || rest[1] != "1770" || rest[2] != "t-ok" {
		t.Errorf("--mount type=tmpfs,tmpfs-size=1m,tmpfs-mode=1770: %q", rest)
	}
	vols := lines(e.ok("volume", "ls", "-q"))
	slices.Sort(vols)
	if len(vols) != 2 || vols[1] != "mv" || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(vols[0]) {
		t.Errorf("volume ls -q = %q, want mv and one anonymous volume", vols)
	}
	in, _ := e.inspectC(id)
	types := map[string]string{}
	for _, m := range in.Mounts {
		types[m.Destination] = string(m.Type)
	}
	if types["/b"] != "bind" || types["/data"] != "volume" || types["/anon"] != "volume" || types["/t"] != "tmpfs" {
		t.Errorf("inspect Mounts types = %v", types)
	}
	for _, bad := range []string{"type=nosuch,target=/x", "type=bind,target=/x", "type=volume,source=v", "type=tmpfs,target=/t,tmpfs-size=lots", "type=bind,source=" + host + ",target=relative"} {
		if r := e.run(nil, "run", "--rm", "--mount", bad, box, "true"); r.code != 125 {
			t.Errorf("--mount %s: %v, want exit 125", bad, r)
		}
	}
}

// TestVolumeCommands: volume create/ls/inspect/rm/prune, and rm of a
// volume a container uses is refused.
func TestVolumeCommands(t *testing.T) {
	e := newCtrEnv(t)
	if out := e.ok("volume", "create", "v1"); out != "v1\n" {
		t.Errorf("volume create v1 printed %q", out)
	}
	generated := strings.TrimSpace(e.ok("volume", "create"))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(generated) {
		t.Errorf("volume create without a name printed %q, want a 64-hex name", generated)
	}
	e.ok("volume", "create", "--label", "k=v", "v2")
	ls := lines(e.ok("volume", "ls"))
	if len(ls) != 4 || strings.Join(strings.Fields(ls[0]), " ") != "DRIVER VOLUME NAME" {
		t.Fatalf("volume ls = %q", ls)
	}
	if f := strings.Fields(ls[1]); len(f) != 2 || f[0] != "local" {
		t.Errorf("volume ls row %q", ls[1])
	}
	if v := e.volume("v2"); v.Labels["k"] != "v" || v.Driver != "local" || v.CreatedAt == "" {
		t.Errorf("volume inspect v2 = %+v", v)
	}
	if out := e.ok("volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "v1"); out != "v1 local\n" {
		t.Errorf("volume inspect -f = %q", out)
	}
	if r := e.run(nil, "volume", "ls", "-q", "--filter", "label=k=v"); r.code != 0 || !slices.Equal(lines(r.stdout), []string{"v2"}) {
		t.Errorf("volume ls -q --filter label=k=v: %v\nwant v2", r)
	}
	if out := e.ok("volume", "create", "v1"); out != "v1\n" {
		t.Errorf("volume create of an existing name printed %q (Docker: the name, no error)", out)
	}

	// In use, even by a stopped container: refused.
	e.run(nil, "run", "--name", "user", "-v", "v1:/data", box, "true")
	e.remember("user")
	if r := e.run(nil, "volume", "rm", "v1"); r.code == 0 || !strings.Contains(r.stderr, "volume is in use") {
		t.Errorf("volume rm of a volume in use: %v", r)
	}
	mp := e.volume("v1").Mountpoint
	e.ok("rm", "user")
	if out := e.ok("volume", "rm", "v1"); out != "v1\n" {
		t.Errorf("volume rm printed %q", out)
	}
	if _, err := os.Stat(mp); err == nil {
		t.Errorf("volume rm left %s", mp)
	}
	if r := e.run(nil, "volume", "rm", "nosuch"); r.code == 0 || !strings.Contains(r.stderr, "no such volume") {
		t.Errorf("volume rm nosuch: %v", r)
	}

	// prune: a container's anonymous volumes once unused; -a: every
	// unused volume (a generated name is not anonymous, as in Docker);
	// used ones stay.
	e.runD("--name", "holder", "-v", "v2:/data", box, "sleep", "1000")
	e.ok("volume", "create", "v3")
	e.run(nil, "run", "--name", "anonuser", "-v", "/anon", box, "true")
	e.remember("anonuser")
	var anon string
	for _, v := range lines(e.ok("volume", "ls", "-q")) {
		if v != generated && regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(v) {
			anon = v
		}
	}
	e.ok("rm", "anonuser")
	out := e.ok("volume", "prune", "-f")
	if anon == "" || out != "Deleted Volumes:\n"+anon+"\n\nTotal reclaimed space: 0B\n" {
		t.Errorf("volume prune -f printed:\n%s\nwant the anonymous volume %q only", out, anon)
	}
	if got := lines(e.ok("volume", "ls", "-q")); !slices.Equal(got, []string{generated, "v2", "v3"}) {
		t.Errorf("after prune volume ls = %q, want %s v2 v3", got, generated)
	}
	e.ok("volume", "prune", "-a", "-f")
	if got := lines(e.ok("volume", "ls", "-q")); !slices.Equal(got, []string{"v2"}) {
		t.Errorf("after prune -a volume ls = %q, want the used v2 only", got)
	}
}

// TestVolumesFrom: --volumes-from mounts another container's volumes and
// binds at the same places (read-only with :ro).
func TestVolumesFrom(t *testing.T) {
	e := newCtrEnv(t)
	host := filepath.Join(e.dir, "h")
	os.MkdirAll(host, 0o755)
	os.WriteFile(filepath.Join(host, "f"), []byte("bound\n"), 0o644)
	src := e.runD("--name", "src", "-v", "vf:/data", "-v", host+":/h", "-v", "/anon", box, "sleep", "1000")
	e.sh(src, "echo from-src > /anon/x")
	id := e.runD("--name", "dst", "--volumes-from", "src", box, "sleep", "1000")
	for path, want := range map[string]string{"/data/seed.txt": boxSeed, "/h/f": "bound\n", "/anon/x": "from-src\n"} {
		if out, _, errOut := e.shAny(id, "cat "+path); out != want {
			t.Errorf("--volumes-from src: %s reads %q %s, want %q (src's)", path, out, errOut, want)
		}
	}
	srcIn, _ := e.inspectC("src")
	dstIn, _ := e.inspectC("dst")
	names := map[string]string{}
	for _, m := range srcIn.Mounts {
		names[m.Destination] = m.Name + m.Source
	}
	for _, m := range dstIn.Mounts {
		if names[m.Destination] != m.Name+m.Source {
			t.Errorf("--volumes-from: dst's %s is %s%s, src's is %s", m.Destination, m.Name, m.Source, names[m.Destination])
		}
	}
	e.shAny(id, "echo from-dst > /anon/y")
	if out, _, _ := e.shAny(src, "cat /anon/y"); out != "from-dst\n" {
		t.Errorf("the shared anonymous volume: src reads %q", out)
	}
	ro := e.runD("--volumes-from", "src:ro", box, "sleep", "1000")
	if out, _, _ := e.shAny(ro, "touch /data/z 2>/dev/null && echo writable || echo ro"); out != "ro\n" {
		t.Errorf("--volumes-from src:ro: /data is %q", out)
	}
	in, _ := e.inspectC("dst")
	var dsts []string
	for _, m := range in.Mounts {
		dsts = append(dsts, m.Destination)
	}
	slices.Sort(dsts)
	if !slices.Equal(dsts, []string{"/anon", "/data", "/h"}) {
		t.Errorf("inspect dst Mounts = %q", dsts)
	}
	if r := e.run(nil, "run", "--rm", "--volumes-from", "nosuch", box, "true"); r.code != 125 || !strings.Contains(r.stderr, "nosuch") {
		t.Errorf("--volumes-from nosuch: %v", r)
	}
}

// TestNamedVolumeAtCreate: create makes the container's named volumes, as
// Docker does: volume ls lists them and inspect shows the mount before any
// start; the image's content is copied in at the first start only, so a
// container that empties its volume finds it empty when started again.
func TestNamedVolumeAtCreate(t *testing.T) {
	e := newCtrEnv(t)
	id := e.remember(strings.TrimSpace(e.ok("create", "--name", "vc", "-v", "cvol:/data",
		"--mount", "type=volume,source=cmnt,target=/m", box, "sh", "-c", "ls /data; rm -f /data/seed.txt")))
	if got := lines(e.ok("volume", "ls", "-q")); !slices.Equal(got, []string{"cmnt", "cvol"}) {
		t.Errorf("volume ls -q after create = %q, want [cmnt cvol]", got)
	}
	var names []string
	in, _ := e.inspectC(id)
	for _, m := range in.Mounts {
		names = append(names, m.Name+":"+m.Destination)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"cmnt:/m", "cvol:/data"}) {
		t.Errorf("inspect Mounts after create = %q", names)
	}
	if r := e.run(nil, "volume", "rm", "cvol"); r.code == 0 {
		t.Errorf("volume rm of a created container's volume succeeded")
	}
	if out := e.ok("start", "-a", "vc"); out != "seed.txt\n" {
		t.Errorf("first start lists %q, want the image's seed.txt copied in", out)
	}
	if out := e.ok("start", "-a", "vc"); out != "" {
		t.Errorf("second start lists %q, want the emptied volume left empty", out)
	}
	// A name that cannot be a volume: nothing created.
	r := e.run(nil, "create", "--name", "bad", "-v", "ok1:/a", "--mount", "type=volume,source=b@d,target=/b", box)
	if r.code != 125 || !strings.Contains(r.stderr, "b@d") {
		t.Errorf("create with a bad volume name: %v", r)
	}
	if got := lines(e.ok("volume", "ls", "-q")); !slices.Equal(got, []string{"cmnt", "cvol"}) {
		t.Errorf("volume ls -q after a failed create = %q", got)
	}
}
