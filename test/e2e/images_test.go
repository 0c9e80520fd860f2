package e2e

import (
	"archive/tar"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	testregistry "github.com/berthproject/berth/test/registry"
)

func shortID(id string) string { return strings.TrimPrefix(id, "sha256:")[:12] }

// TestImportPushPull: an imported image survives push, rmi and pull with its
// ID, and images/inspect/history show it as Docker would.
func TestImportPushPull(t *testing.T) {
	e := newEnv(t)
	reg := testregistry.Start(t, testregistry.Options{})
	id := e.importBusybox("e2e/busybox:v1", "-c", `CMD ["sh"]`, "-m", "from e2e")
	remote := reg.Host + "/e2e/busybox:v1"
	if out := e.ok("tag", "e2e/busybox:v1", remote); out != "" {
		t.Errorf("tag printed %q, want nothing", out)
	}
	out := e.ok("push", remote)
	for _, want := range []string{"The push refers to repository [" + reg.Host + "/e2e/busybox]\n", ": Pushed\n", "v1: digest: sha256:"} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`v1: digest: (sha256:[0-9a-f]{64}) size: [1-9][0-9]*\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("push output has no \"v1: digest: ... size: N\" line:\n%s", out)
	}
	pushed := m[1]

	out = e.ok("rmi", "e2e/busybox:v1", remote)
	for _, want := range []string{"Untagged: e2e/busybox:v1\n", "Untagged: " + remote + "\n", "Deleted: " + id + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("rmi output lacks %q:\n%s", want, out)
		}
	}
	if got := e.storeEntries(); len(got) != 0 {
		t.Errorf("after rmi of the only image the store still holds %q", got)
	}

	out = e.ok("pull", remote)
	for _, want := range []string{"v1: Pulling from e2e/busybox\n", ": Pull complete\n", "Digest: " + pushed + "\n", "Status: Downloaded newer image for " + remote + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("pull output lacks %q:\n%s", want, out)
		}
	}
	if l := lines(out); l[len(l)-1] != remote {
		t.Errorf("pull's last line = %q, want the reference %q", l[len(l)-1], remote)
	}
	if got := strings.TrimSpace(e.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")); got != remote+" "+shortID(id) {
		t.Errorf("images after pull = %q, want %q", got, remote+" "+shortID(id))
	}
	in := e.inspect(remote)
	if in["Id"] != id {
		t.Errorf("inspect Id = %v, want the imported ID %s", in["Id"], id)
	}
	if tags, _ := json.Marshal(in["RepoTags"]); string(tags) != `["`+remote+`"]` {
		t.Errorf("inspect RepoTags = %s, want [%s]", tags, remote)
	}
	if digests, _ := json.Marshal(in["RepoDigests"]); string(digests) != `["`+reg.Host+`/e2e/busybox@`+pushed+`"]` {
		t.Errorf("inspect RepoDigests = %s, want the pushed digest %s", digests, pushed)
	}
	if cmd, _ := json.Marshal(in["Config"].(map[string]any)["Cmd"]); string(cmd) != `["sh"]` {
		t.Errorf("inspect Config.Cmd = %s, want [\"sh\"]", cmd)
	}
	if layers := in["RootFS"].(map[string]any)["Layers"].([]any); len(layers) != 1 {
		t.Errorf("inspect RootFS.Layers = %v, want one layer", layers)
	}
	if size, _ := in["Size"].(float64); size < 1e6 {
		t.Errorf("inspect Size = %v, want the busybox layer's size (> 1 MB)", in["Size"])
	}
	hist := lines(e.ok("history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Comment}}", remote))
	if len(hist) != 1 || hist[0] != id+"|Imported from "+busyboxTar+"|from e2e" {
		t.Errorf("history = %q, want one entry: the import with its message", hist)
	}

	// run of an image that is not here: docker-cli's announcement and the
	// pull's lines on stderr, the container's output alone on stdout.
	e.ok("rmi", remote)
	r := e.run(nil, "run", "--rm", remote, "echo", "ran")
	if r.code != 0 || r.stdout != "ran\n" {
		t.Errorf("run of a missing image: %v, want it pulled and run", r)
	}
	for _, want := range []string{"Unable to find image '" + remote + "' locally\n", "v1: Pulling from e2e/busybox\n", "Digest: " + pushed + "\n", "Status: Downloaded newer image for " + remote + "\n"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("run's stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if slices.Contains(lines(r.stderr), remote) {
		t.Errorf("run's stderr has pull's final reference line:\n%s", r.stderr)
	}
	e.ok("rmi", remote)
	if r := e.run(nil, "run", "--rm", "-q", remote, "echo", "ran"); r.code != 0 || r.stdout != "ran\n" || r.stderr != "" {
		t.Errorf("run -q of a missing image: %v, want it pulled and run without a word on stderr", r)
	}
	r = e.run(nil, "run", "--rm", "--pull", "always", remote, "true")
	if r.code != 0 || !strings.Contains(r.stderr, "v1: Pulling from e2e/busybox\n") ||
		!strings.Contains(r.stderr, "Status: Image is up to date for "+remote+"\n") || strings.Contains(r.stderr, "Unable to find") {
		t.Errorf("run --pull always of an image that is here: %v, want pull's lines (up to date) and no announcement", r)
	}

	out = e.ok("pull", remote)
	if !strings.Contains(out, "Status: Image is up to date for "+remote+"\n") {
		t.Errorf("second pull does not say the image is up to date:\n%s", out)
	}
	if out := e.ok("pull", "-q", remote); out != remote+"\n" {
		t.Errorf("pull -q printed %q, want just %q", out, remote+"\n")
	}
	byDigest := reg.Host + "/e2e/busybox@" + pushed
	out = e.ok("pull", byDigest)
	if !strings.Contains(out, "Status: Image is up to date for "+byDigest) {
		t.Errorf("pull by digest:\n%s", out)
	}
}

// TestPullPlatformAndFormats: --platform picks from a multi-arch index; a
// zstd + gzip multi-layer OCI image pulls with its layers in order.
func TestPullPlatformAndFormats(t *testing.T) {
	e := newEnv(t)
	reg := testregistry.Start(t, testregistry.Options{})
	layer := func(body string) testregistry.Layer {
		return testregistry.GzipLayer(testregistry.Tar(testregistry.Entry{Name: "arch", Body: body}))
	}
	host := runtime.GOARCH
	other := "arm64"
	if host == "arm64" {
		other = "amd64"
	}
	reg.PushIndex(t, "e2e/multi", "1", testregistry.OCIIndex,
		testregistry.Image{Architecture: host, Layers: []testregistry.Layer{layer(host)}},
		testregistry.Image{Architecture: other, Layers: []testregistry.Layer{layer(other)}})
	ref := reg.Host + "/e2e/multi:1"

	e.ok("pull", "--platform", "linux/"+other, ref)
	if got := e.inspect(ref)["Architecture"]; got != other {
		t.Errorf("pull --platform linux/%s: Architecture = %v", other, got)
	}
	e.ok("rmi", ref)
	e.ok("pull", ref)
	if got := e.inspect(ref)["Architecture"]; got != host {
		t.Errorf("pull without --platform: Architecture = %v, want the host's %s", got, host)
	}
	e.ok("rmi", ref)
	before := e.storeEntries()
	r := e.fails("pull", "--platform", "linux/s390x", ref)
	if !strings.Contains(r.stderr, "s390x") {
		t.Errorf("pull of a platform the index lacks should name it: %v", r)
	}
	r = e.fails("pull", "--platform", "nonsense", ref)
	if !strings.Contains(r.stderr, "--platform") {
		t.Errorf("a malformed --platform should name the flag: %v", r)
	}
	if after := e.storeEntries(); !slices.Equal(before, after) {
		t.Errorf("failed pulls changed the store: %q -> %q", before, after)
	}

	base := testregistry.Tar(
		testregistry.Entry{Name: "etc/", Type: tar.TypeDir},
		testregistry.Entry{Name: "etc/gone", Body: "deleted by the next layer"},
		testregistry.Entry{Name: "etc/kept", Body: "kept"})
	top := testregistry.Tar(testregistry.Entry{Name: "etc/.wh.gone"}, testregistry.Entry{Name: "etc/new", Body: "new"})
	reg.Push(t, "e2e/layers", "2", testregistry.Image{ManifestMediaType: testregistry.OCIManifest,
		Layers: []testregistry.Layer{testregistry.ZstdLayer(base), testregistry.GzipLayer(top)}})
	ref = reg.Host + "/e2e/layers:2"
	out := e.ok("pull", ref)
	if n := strings.Count(out, ": Pull complete\n"); n != 2 {
		t.Errorf("pull of a 2-layer image shows %d \"Pull complete\" lines:\n%s", n, out)
	}
	in := e.inspect(ref)
	if layers := in["RootFS"].(map[string]any)["Layers"].([]any); len(layers) != 2 || layers[0] != testregistry.Digest(base) || layers[1] != testregistry.Digest(top) {
		t.Errorf("RootFS.Layers = %v, want the diff ids of both layers in order", layers)
	}
	if hist := lines(e.ok("history", "-q", ref)); len(hist) != 2 || hist[1] != "<missing>" {
		t.Errorf("history -q = %q, want the image ID then <missing>", hist)
	}
}

// TestSaveLoad: save -> rmi -> load gives back the same images and names,
// through a file, through stdin/stdout, and as an OCI layout.
func TestSaveLoad(t *testing.T) {
	e := newEnv(t)
	idX := e.importBusybox("e2e/x:1", "-c", "ENV A=1")
	e.ok("tag", "e2e/x:1", "e2e/x:2")
	idY := e.importBusybox("e2e/y:1", "-c", "ENV B=2")
	archive := filepath.Join(e.dir, "images.tar")
	if out := e.ok("save", "-o", archive, "e2e/x:1", "e2e/x:2", "e2e/y:1"); out != "" {
		t.Errorf("save -o printed %q", out)
	}
	names := tarNames(t, archive)
	for _, want := range []string{"manifest.json", "index.json", "oci-layout", "blobs/sha256/" + strings.TrimPrefix(idX, "sha256:")} {
		if !slices.Contains(names, want) {
			t.Errorf("saved archive lacks %s (has %q)", want, names)
		}
	}
	e.ok("rmi", "e2e/x:1", "e2e/x:2", "e2e/y:1")
	if out := e.ok("images", "-q"); out != "" {
		t.Fatalf("images left after rmi: %q", out)
	}
	out := e.ok("load", "-i", archive)
	for _, want := range []string{"Loaded image: e2e/x:1\n", "Loaded image: e2e/x:2\n", "Loaded image: e2e/y:1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("load output lacks %q:\n%s", want, out)
		}
	}
	for name, id := range map[string]string{"e2e/x:1": idX, "e2e/x:2": idX, "e2e/y:1": idY} {
		if got := strings.TrimSpace(e.ok("image", "inspect", "-f", "{{.Id}}", name)); got != id {
			t.Errorf("after load %s has ID %s, want %s", name, got, id)
		}
	}

	// stdout and stdin
	f, err := os.Create(filepath.Join(e.dir, "y.tar"))
	if err != nil {
		t.Fatal(err)
	}
	r := e.runWith(nil, f, "save", "e2e/y:1")
	f.Close()
	if r.code != 0 {
		t.Fatalf("save to stdout: %v", r)
	}
	e.ok("rmi", "e2e/y:1")
	in, err := os.Open(filepath.Join(e.dir, "y.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if r := e.run(in, "load"); r.code != 0 || r.stdout != "Loaded image: e2e/y:1\n" {
		t.Errorf("load from stdin: %v", r)
	}

	// OCI layout, and an image saved by ID has no name to load
	oci := filepath.Join(e.dir, "oci.tar")
	e.ok("save", "--format", "oci", "-o", oci, idY)
	if names := tarNames(t, oci); slices.Contains(names, "manifest.json") || !slices.Contains(names, "index.json") {
		t.Errorf("--format oci archive entries %q, want index.json and no manifest.json", names)
	}
	e.ok("rmi", "e2e/y:1")
	if out := e.ok("load", "-q", "-i", oci); out != "Loaded image ID: "+idY+"\n" {
		t.Errorf("load of an image saved by ID printed %q, want \"Loaded image ID: %s\"", out, idY)
	}
}

func tarNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	return names
}

// TestImagesListing: images' table, -q, --no-trunc, --format and --filter.
func TestImagesListing(t *testing.T) {
	e := newEnv(t)
	idBase := e.importBusybox("e2e/base:1", "-c", "LABEL tier=base")
	idApp := e.importBusybox("e2e/app:1", "-c", "LABEL tier=app", "-c", "CMD [\"sh\"]")
	e.ok("tag", "e2e/app:1", "e2e/app:latest")
	idNone := e.importBusybox("", "-c", "LABEL tier=none")

	table := lines(e.ok("images"))
	if strings.Join(strings.Fields(table[0]), " ") != "REPOSITORY TAG IMAGE ID CREATED SIZE" {
		t.Errorf("images header = %q", table[0])
	}
	if len(table) != 5 {
		t.Errorf("images shows %d rows, want 4 (one per tag, one <none>):\n%s", len(table)-1, strings.Join(table, "\n"))
	}
	if !regexp.MustCompile(`^<none>\s+<none>\s+` + shortID(idNone) + `\s+.* ago\s+[0-9.]+MB$`).MatchString(table[1]) {
		t.Errorf("newest row should be the untagged image: %q", table[1])
	}
	rows := func(args ...string) string {
		t.Helper()
		l := lines(e.ok(append([]string{"images", "--format", "{{.Repository}}:{{.Tag}}"}, args...)...))
		slices.Sort(l)
		return strings.Join(l, " ")
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"all", nil, "<none>:<none> e2e/app:1 e2e/app:latest e2e/base:1"},
		{"dangling", []string{"--filter", "dangling=true"}, "<none>:<none>"},
		{"not dangling", []string{"-f", "dangling=false"}, "e2e/app:1 e2e/app:latest e2e/base:1"},
		{"reference by repository", []string{"--filter", "reference=e2e/app"}, "e2e/app:1 e2e/app:latest"},
		{"reference glob on name:tag shows only matching tags", []string{"--filter", "reference=*/*:latest"}, "e2e/app:latest"},
		{"REPOSITORY argument", []string{"e2e/base"}, "e2e/base:1"},
		{"label key=value", []string{"--filter", "label=tier=app"}, "e2e/app:1 e2e/app:latest"},
		{"label key", []string{"--filter", "label=tier"}, "<none>:<none> e2e/app:1 e2e/app:latest e2e/base:1"},
		{"since", []string{"--filter", "since=e2e/base:1"}, "<none>:<none> e2e/app:1 e2e/app:latest"},
		{"before", []string{"--filter", "before=e2e/app:1"}, "e2e/base:1"},
		{"filters combine", []string{"--filter", "since=e2e/base:1", "--filter", "dangling=false"}, "e2e/app:1 e2e/app:latest"},
	}
	for _, tt := range tests {
		if got := rows(tt.args...); got != tt.want {
			t.Errorf("%s: images %q = %s, want %s", tt.name, tt.args, got, tt.want)
		}
	}

	q := lines(e.ok("images", "-q"))
	slices.Sort(q)
	q = slices.Compact(q)
	want := []string{shortID(idBase), shortID(idApp), shortID(idNone)}
	slices.Sort(want)
	if !slices.Equal(q, want) {
		t.Errorf("images -q IDs = %q, want %q", q, want)
	}
	full := lines(e.ok("images", "-q", "--no-trunc", "e2e/base"))
	if len(full) != 1 || full[0] != idBase {
		t.Errorf("images -q --no-trunc e2e/base = %q, want [%s]", full, idBase)
	}
	for _, l := range lines(e.ok("images", "--format", "json")) {
		var row map[string]string
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatalf("images --format json line %q: %v", l, err)
		}
		for _, k := range []string{"Repository", "Tag", "ID", "CreatedSince", "CreatedAt", "Size", "Digest"} {
			if row[k] == "" {
				t.Errorf("images --format json row lacks %s: %q", k, l)
			}
		}
	}
	tbl := lines(e.ok("images", "--format", `table {{.Repository}}\t{{.Tag}}`, "e2e/base"))
	if len(tbl) != 2 || strings.Join(strings.Fields(tbl[0]), " ") != "REPOSITORY TAG" || strings.Join(strings.Fields(tbl[1]), " ") != "e2e/base 1" {
		t.Errorf("images --format 'table ...' = %q", tbl)
	}
	dig := lines(e.ok("images", "--digests", "e2e/base"))
	if strings.Join(strings.Fields(dig[0]), " ") != "REPOSITORY TAG DIGEST IMAGE ID CREATED SIZE" {
		t.Errorf("images --digests header = %q", dig[0])
	}

	for _, bad := range [][]string{
		{"--filter", "bogus=1"},
		{"--filter", "dangling=maybe"},
		{"--filter", "before=e2e/nosuch:1"},
		{"--format", "{{.Nope}}"},
	} {
		e.fails(append([]string{"images"}, bad...)...)
	}
}

// TestRmi: untagging vs deleting, conflicts, and several names at once.
func TestRmi(t *testing.T) {
	e := newEnv(t)
	id := e.importBusybox("e2e/a:1")
	e.ok("tag", "e2e/a:1", "e2e/a:2")
	if out := e.ok("rmi", "e2e/a:1"); out != "Untagged: e2e/a:1\n" {
		t.Errorf("rmi of one of two tags printed %q, want only the Untagged line", out)
	}
	if got := strings.TrimSpace(e.ok("images", "--format", "{{.Repository}}:{{.Tag}}")); got != "e2e/a:2" {
		t.Errorf("after untagging, images = %q, want e2e/a:2", got)
	}
	e.ok("tag", "e2e/a:2", "e2e/b:1")
	r := e.fails("rmi", shortID(id))
	if !strings.Contains(r.stderr, "must be forced") || r.code != 1 {
		t.Errorf("rmi by ID of an image with two tags: %v", r)
	}
	out := e.ok("rmi", "-f", shortID(id))
	if !strings.Contains(out, "Untagged: e2e/a:2\n") || !strings.Contains(out, "Untagged: e2e/b:1\n") || !strings.Contains(out, "Deleted: "+id+"\n") {
		t.Errorf("rmi -f by ID:\n%s", out)
	}
	e.importBusybox("e2e/c:1")
	r = e.run(nil, "rmi", "e2e/c:1", "e2e/nosuch")
	if r.code != 1 || !strings.Contains(r.stdout, "Untagged: e2e/c:1") || !strings.Contains(r.stderr, "Error: No such image: e2e/nosuch") {
		t.Errorf("rmi of a present and a missing image should remove one and report the other: %v", r)
	}
	if got := e.storeEntries(); len(got) != 0 {
		t.Errorf("store not empty after removing every image: %q", got)
	}
}

// TestPruneAndDiskUsage: prune removes dangling images (or, with -a, all),
// asks first without -f, and system df accounts for what is there.
func TestPruneAndDiskUsage(t *testing.T) {
	e := newEnv(t)
	dangling := e.importBusybox("", "-c", "ENV X=1")
	tagged := e.importBusybox("e2e/keep:1")

	df := lines(e.ok("system", "df"))
	if len(df) != 2 || strings.Join(strings.Fields(df[0]), " ") != "TYPE TOTAL ACTIVE SIZE RECLAIMABLE" ||
		!regexp.MustCompile(`^Images\s+2\s+0\s+[0-9.]+MB\s+[0-9.]+MB \(100%\)$`).MatchString(df[1]) {
		t.Errorf("system df =\n%s", strings.Join(df, "\n"))
	}
	v := e.ok("system", "df", "-v")
	if !strings.HasPrefix(v, "Images space usage:\n\nREPOSITORY") || !strings.Contains(v, shortID(tagged)) {
		t.Errorf("system df -v =\n%s", v)
	}

	if out := e.okIn("n\n", "image", "prune"); !strings.Contains(out, "WARNING! This will remove all dangling images.") || !strings.Contains(out, "Total reclaimed space: 0B") {
		t.Errorf("prune answered no:\n%s", out)
	}
	if n := len(lines(e.ok("images", "-q"))); n != 2 {
		t.Fatalf("prune answered no removed images: %d left", n)
	}
	out := e.ok("image", "prune", "-f")
	if !strings.Contains(out, "Deleted Images:\ndeleted: "+dangling+"\n") || !regexp.MustCompile(`Total reclaimed space: [0-9.]+[kMG]?B\n$`).MatchString(out) {
		t.Errorf("image prune -f:\n%s", out)
	}
	if got := strings.TrimSpace(e.ok("images", "-q", "--no-trunc")); got != tagged {
		t.Errorf("after prune images = %q, want only %s", got, tagged)
	}
	out = e.okIn("y\n", "image", "prune", "-a")
	if !strings.Contains(out, "untagged: e2e/keep:1\n") || !strings.Contains(out, "deleted: "+tagged+"\n") {
		t.Errorf("image prune -a:\n%s", out)
	}
	if got := e.storeEntries(); len(got) != 0 {
		t.Errorf("store not empty after prune -a: %q", got)
	}
	df = lines(e.ok("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Size}} {{.Reclaimable}}"))
	if len(df) != 1 || df[0] != "Images 0 0B 0B" {
		t.Errorf("system df of an empty store = %q", df)
	}
}

// TestLoginPushPull: push and pull against registries that want basic or
// bearer-token authentication, with credentials stored as Docker does.
func TestLoginPushPull(t *testing.T) {
	for _, tc := range []struct {
		name string
		auth testregistry.Auth
	}{{"basic", testregistry.Basic}, {"bearer", testregistry.Bearer}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			reg := testregistry.Start(t, testregistry.Options{Auth: tc.auth, Username: "e2e", Password: "s3cret"})
			remote := reg.Host + "/e2e/private:1"
			e.importBusybox(remote)
			e.fails("push", remote)

			r := e.run(strings.NewReader("wrong\n"), "login", "-u", "e2e", "--password-stdin", reg.Host)
			if r.code == 0 {
				t.Errorf("login with a wrong password succeeded: %v", r)
			}
			if _, err := os.Stat(filepath.Join(e.dockCfg, "config.json")); err == nil {
				t.Errorf("a failed login wrote config.json")
			}
			if out := e.okIn("s3cret\n", "login", "-u", "e2e", "--password-stdin", reg.Host); out != "Login Succeeded\n" {
				t.Errorf("login printed %q", out)
			}
			cfgPath := filepath.Join(e.dockCfg, "config.json")
			st, err := os.Stat(cfgPath)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("config.json after login: %v (mode %v), want mode 0600", err, st)
			}
			var cfg struct {
				Auths map[string]struct{ Auth string }
			}
			b, _ := os.ReadFile(cfgPath)
			if err := json.Unmarshal(b, &cfg); err != nil || cfg.Auths[reg.Host].Auth != base64.StdEncoding.EncodeToString([]byte("e2e:s3cret")) {
				t.Errorf("config.json = %s, want auths[%q].auth = base64(e2e:s3cret)", b, reg.Host)
			}

			e.ok("push", remote)
			e.ok("rmi", remote)
			e.ok("pull", remote)

			if out := e.ok("logout", reg.Host); out != "Removing login credentials for "+reg.Host+"\n" {
				t.Errorf("logout printed %q", out)
			}
			if out := e.ok("logout", reg.Host); out != "Not logged in to "+reg.Host+"\n" {
				t.Errorf("second logout printed %q", out)
			}
			e.ok("rmi", remote)
			before := e.storeEntries()
			e.fails("pull", remote)
			if after := e.storeEntries(); !slices.Equal(before, after) {
				t.Errorf("an unauthorized pull changed the store: %q -> %q", before, after)
			}
			r = e.run(nil, "login", "-u", "e2e", "-p", "s3cret", "http://"+reg.Host+"/")
			if r.code != 0 || r.stdout != "Login Succeeded\n" || !strings.Contains(r.stderr, "--password-stdin") {
				t.Errorf("login -p: %v", r)
			}
			e.ok("pull", remote)
		})
	}
}

// TestErrors: bad names, missing images and unreachable registries fail
// with a message naming what is wrong, and leave the store as it was.
func TestErrors(t *testing.T) {
	e := newEnv(t)
	reg := testregistry.Start(t, testregistry.Options{})
	e.importBusybox("e2e/base:1")
	garbage := filepath.Join(e.dir, "garbage")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a tar archive\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	before := e.storeEntries()
	tests := []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"image", "inspect", "nosuch"}, "Error: No such image: nosuch\n"},
		{[]string{"rmi", "nosuch"}, "Error: No such image: nosuch\n"},
		{[]string{"tag", "nosuch", "e2e/x:1"}, "Error: No such image: nosuch\n"},
		{[]string{"history", "nosuch"}, "Error: No such image: nosuch\n"},
		{[]string{"save", "-o", filepath.Join(e.dir, "x.tar"), "nosuch"}, "Error: No such image: nosuch\n"},
		{[]string{"push", reg.Host + "/e2e/nosuch:1"}, "does not exist locally"},
		{[]string{"pull", "Foo:bar"}, "invalid reference format"},
		{[]string{"tag", "e2e/base:1", "Bad:Tag"}, "invalid reference format"},
		{[]string{"pull", "127.0.0.1:1/e2e/x:1"}, "127.0.0.1:1"},
		{[]string{"pull", reg.Host + "/e2e/missing:1"}, "e2e/missing"},
		{[]string{"import", filepath.Join(e.dir, "nonexistent.tar")}, "nonexistent.tar"},
		{[]string{"import", garbage, "e2e/garbage:1"}, "Error: " + garbage + ": import"},
		{[]string{"import", "http://127.0.0.1:1/rootfs.tar"}, "URL"},
		{[]string{"load", "-i", garbage}, "Error: " + garbage + ": load"},
		{[]string{"tag", "e2e/base:1"}, "requires exactly 2 arguments"},
		{[]string{"images", "--filter", "nope=1"}, "nope"},
	}
	for _, tt := range tests {
		r := e.fails(tt.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("want exit 1 and %q in stderr: %v", tt.want, r)
		}
	}
	if after := e.storeEntries(); !slices.Equal(before, after) {
		t.Errorf("failed commands changed the store:\nbefore %q\nafter  %q", before, after)
	}
	if got := strings.TrimSpace(e.ok("images", "--format", "{{.Repository}}:{{.Tag}}")); got != "e2e/base:1" {
		t.Errorf("images after failures = %q, want only e2e/base:1", got)
	}
}

// TestDockerArchiveInterop: Docker loads what berth saves, and berth loads
// what Docker saves, with the same image IDs and tags (skipped where Docker
// is not installed).
func TestDockerArchiveInterop(t *testing.T) {
	e := newEnv(t)
	d := startDockerd(t)
	id := e.importBusybox("e2e/interop:1", "-c", `CMD ["/bin/sh"]`)
	e.ok("tag", "e2e/interop:1", "e2e/interop:2")
	archive := filepath.Join(e.dir, "berth.tar")
	e.ok("save", "-o", archive, "e2e/interop:1", "e2e/interop:2")
	out, err := d.run("load", "-i", archive)
	if err != nil || !strings.Contains(out, "Loaded image: e2e/interop:1") || !strings.Contains(out, "Loaded image: e2e/interop:2") {
		t.Fatalf("docker load of berth's archive: %v\n%s", err, out)
	}
	for _, name := range []string{"e2e/interop:1", "e2e/interop:2"} {
		if got, err := d.run("image", "inspect", "-f", "{{.Id}}", name); err != nil || strings.TrimSpace(got) != id {
			t.Errorf("docker sees %s as %q (%v), berth saved %s", name, strings.TrimSpace(got), err, id)
		}
	}

	fromDocker := filepath.Join(e.dir, "docker.tar")
	if out, err := d.run("save", "-o", fromDocker, "e2e/interop:1"); err != nil {
		t.Fatalf("docker save: %v\n%s", err, out)
	}
	e.ok("rmi", "e2e/interop:1", "e2e/interop:2")
	if out := e.ok("load", "-i", fromDocker); out != "Loaded image: e2e/interop:1\n" {
		t.Errorf("berth load of docker's archive printed %q", out)
	}
	if got := strings.TrimSpace(e.ok("image", "inspect", "-f", "{{.Id}}", "e2e/interop:1")); got != id {
		t.Errorf("berth loaded docker's archive as %s, want %s", got, id)
	}
}

// TestRmiImageInUse: as Docker, rmi refuses an image a container (even a
// stopped one) uses, image prune -a keeps it, images and system df count
// it as in use; once the container is gone rmi works.
func TestRmiImageInUse(t *testing.T) {
	e := newCtrEnv(t)
	id := strings.TrimSpace(e.ok("image", "inspect", "-f", "{{.Id}}", box))
	e.ok("run", "--name", "user", box, "true")
	ctr := e.remember("user")
	r := e.fails("rmi", box)
	if r.code != 1 || !strings.Contains(r.stderr, "conflict") || !strings.Contains(r.stderr, ctr[:12]) {
		t.Errorf("rmi of an image a stopped container uses: want exit 1 and a conflict naming the container %s: %v", ctr[:12], r)
	}
	e.ok("image", "prune", "-a", "-f")
	if got := strings.TrimSpace(e.ok("images", "-q", "--no-trunc")); got != id {
		t.Errorf("after a refused rmi and prune -a, images = %q, want %s", got, id)
	}
	if df := lines(e.ok("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}")); len(df) == 0 || df[0] != "Images 1 1" {
		t.Errorf("system df with the image in use = %q, want \"Images 1 1\"", df)
	}
	e.ok("rm", "user")
	if out := e.ok("rmi", box); !strings.Contains(out, "Deleted: "+id+"\n") {
		t.Errorf("rmi once the container is removed:\n%s", out)
	}
}

// TestRmiForceRunning: as Docker, a running container's image is not
// deleted even with -f: by ID it is a conflict that cannot be forced, by
// name only the name goes (the image stays, untagged, for the container).
func TestRmiForceRunning(t *testing.T) {
	e := newCtrEnv(t)
	id := strings.TrimSpace(e.ok("image", "inspect", "-f", "{{.Id}}", box))
	e.ok("tag", box, "e2e/solo:1")
	e.ok("rmi", box) // e2e/solo:1 is now the image's only name
	ctr := e.runD("--name", "runner", "e2e/solo:1", "sleep", "1000")
	r := e.fails("rmi", "-f", id[len("sha256:"):len("sha256:")+12])
	if r.code != 1 || !strings.Contains(r.stderr, "cannot be forced") || !strings.Contains(r.stderr, ctr[:12]) {
		t.Errorf("rmi -f ID of a running container's image: want exit 1 and a conflict that cannot be forced naming %s: %v", ctr[:12], r)
	}
	out := e.ok("rmi", "-f", "e2e/solo:1")
	if out != "Untagged: e2e/solo:1\n" {
		t.Errorf("rmi -f NAME of a running container's image printed %q, want only the untag", out)
	}
	if got := strings.TrimSpace(e.ok("images", "-q", "--no-trunc")); got != id {
		t.Errorf("images after rmi -f NAME = %q, want the image kept: %s", got, id)
	}
	if got := e.sh(ctr, "echo still here"); got != "still here\n" {
		t.Errorf("exec into the container after rmi -f: %q", got)
	}
	e.ok("rm", "-f", "runner")
	if out := e.ok("rmi", id); !strings.Contains(out, "Deleted: "+id+"\n") {
		t.Errorf("rmi once the container is removed:\n%s", out)
	}
}

// TestCopyOnWrite: a file changed or deleted in one container is unchanged
// in another container of the same image and in the image itself.
func TestCopyOnWrite(t *testing.T) {
	e := newCtrEnv(t)
	e.ok("run", "--name", "writer", box, "sh", "-c", "echo changed > /data/seed.txt; rm /bin/vi")
	e.remember("writer")
	if got := e.ok("run", "--rm", box, "sh", "-c", "cat /data/seed.txt; ls /bin/vi"); got != boxSeed+"/bin/vi\n" {
		t.Errorf("another container sees %q, want the image's seed.txt and /bin/vi", got)
	}
	e.ok("commit", "writer", "e2e/written")
	if got := e.ok("run", "--rm", "e2e/written", "sh", "-c", "cat /data/seed.txt; ls /bin/vi 2>/dev/null || echo no-vi"); got != "changed\nno-vi\n" {
		t.Errorf("the writer's commit has %q", got)
	}
	e.ok("rm", "writer")
	if got := e.ok("run", "--rm", box, "sh", "-c", "cat /data/seed.txt; ls /bin/vi"); got != boxSeed+"/bin/vi\n" {
		t.Errorf("the image after commit and rm of the writer has %q", got)
	}
}

// TestPullFullDisk: a layer too big for the disk fails the pull with an
// error naming the image, the layer and the cause, and leaves no image and
// no snapshot (record or directory) behind.
func TestPullFullDisk(t *testing.T) {
	e := newEnv(t)
	reg := testregistry.Start(t, testregistry.Options{})
	small := testregistry.GzipLayer(testregistry.Tar(testregistry.Entry{Name: "small", Body: "fits"}))
	big := testregistry.GzipLayer(testregistry.Tar(testregistry.Entry{Name: "big", Body: strings.Repeat("0123456789abcdef", 1<<18)})) // 4 MiB, compresses to KBs
	reg.Push(t, "e2e/big", "1", testregistry.Image{Layers: []testregistry.Layer{small, big}})
	if err := os.MkdirAll(e.root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", e.root, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(e.root, syscall.MNT_DETACH) }) // before newEnv's check for leftover mounts
	// The big layer is served once the small one is in the store (its
	// blob, its file unpacked): served together, the big one could fill
	// the disk first and the pull fail on the small one's write instead.
	smallBlob := filepath.Join(e.root, "content", "blobs", "sha256", strings.TrimPrefix(small.Digest(), "sha256:"))
	smallIn := func() bool {
		if _, err := os.Stat(smallBlob); err != nil {
			return false
		}
		if _, err := os.Stat(filepath.Join(e.root, "snapshots", "overlay")); err != nil {
			return true // unpacked after the downloads: the blob is enough
		}
		found := false
		filepath.WalkDir(filepath.Join(e.root, "snapshots"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && d.Name() == "small" {
				b, _ := os.ReadFile(p)
				found = found || string(b) == "fits"
			}
			return nil
		})
		return found
	}
	bigBlob := "/v2/e2e/big/blobs/" + big.Digest()
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && r.URL.Path == bigBlob {
			for deadline := time.Now().Add(commandGuard); !smallIn() && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
		}
		return false
	})
	ref := reg.Host + "/e2e/big:1"
	r := e.fails("pull", ref)
	// The layers unpack at once: the big one fills the disk, and either
	// may be the first to find it full.
	namesLayer := strings.Contains(r.stderr, "layer "+big.Digest()) || strings.Contains(r.stderr, "layer "+small.Digest())
	if r.code != 1 || !strings.Contains(r.stderr, ref) || !namesLayer || !strings.Contains(r.stderr, "no space left on device") {
		t.Errorf("pull onto a full disk: want exit 1 and an error naming %s, the layer and the cause: %v", ref, r)
	}
	if out := e.ok("images", "-q"); out != "" {
		t.Errorf("images after the failed pull: %q", out)
	}
	for _, p := range e.storeEntries() {
		if strings.HasPrefix(p, "snapshots/") {
			t.Errorf("the failed pull left %s", p)
		}
	}
	meta, _ := filepath.Glob(filepath.Join(e.root, "snapshots", "*", "metadata.json"))
	for _, m := range meta {
		var tbl struct{ Snapshots map[string]any }
		b, _ := os.ReadFile(m)
		if err := json.Unmarshal(b, &tbl); err != nil || len(tbl.Snapshots) != 0 {
			t.Errorf("%s after the failed pull: %s (%v)", m, b, err)
		}
	}
}
