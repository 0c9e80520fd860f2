package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/content"
	testregistry "github.com/berthproject/berth/test/registry"
)

func rootfsTar() []byte {
	return testregistry.Tar(
		testregistry.Entry{Name: "bin/", Type: tar.TypeDir},
		testregistry.Entry{Name: "bin/sh", Body: "not really a shell", Mode: 0o755},
		testregistry.Entry{Name: "etc/", Type: tar.TypeDir},
		testregistry.Entry{Name: "etc/passwd", Body: "root:x:0:0::/root:/bin/sh\n"},
		testregistry.Entry{Name: "etc/motd", Body: "hello\n"},
	)
}

func changesTar() []byte {
	return testregistry.Tar(
		testregistry.Entry{Name: "etc/", Type: tar.TypeDir},
		testregistry.Entry{Name: "etc/.wh.motd"},
		testregistry.Entry{Name: "srv/", Type: tar.TypeDir},
		testregistry.Entry{Name: "srv/data", Body: "committed", Xattrs: map[string]string{"user.k": "v"}},
	)
}

func TestImportCommitSaveLoadPushPull(t *testing.T) {
	ctx := context.Background()
	for _, format := range []string{FormatDocker, FormatOCI} {
		t.Run(format, func(t *testing.T) {
			reg := testregistry.Start(t, testregistry.Options{})
			a := newTestStore(t, true)
			base, err := a.Import(ctx, bytes.NewReader(rootfsTar()), ImportOptions{Ref: "localhost/base:1", Changes: []string{`CMD ["/bin/sh"]`, "ENV A=1"}, Message: "imported"})
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			app, err := a.Commit(ctx, CommitOptions{Base: base.ID, Layer: bytes.NewReader(changesTar()), Ref: "localhost/app:1",
				Author: "tester", Comment: "add srv", Changes: []string{"WORKDIR /srv"}})
			if err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if len(app.Layers) != 2 || app.Layers[0] != base.Layers[0] || app.Parent != base.ID {
				t.Fatalf("committed image layers %+v parent %s, want the base layer plus one", app.Layers, app.Parent)
			}
			if got := a.layers.tarOf(app.ChainID()); !bytes.Equal(got, changesTar()) {
				t.Errorf("committed layer unpacked %d bytes, want the %d of the diff", len(got), len(changesTar()))
			}
			cfg, err := a.Config(ctx, "localhost/app:1")
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Config.WorkingDir != "/srv" || cfg.Config.Cmd[0] != "/bin/sh" || cfg.Author != "tester" || len(cfg.History) != 2 || cfg.History[1].Comment != "add srv" {
				t.Errorf("committed config = %+v", cfg)
			}

			var archive bytes.Buffer
			if err := a.Save(ctx, &archive, []string{"localhost/app:1", "localhost/base:1"}, SaveOptions{Format: format}); err != nil {
				t.Fatalf("Save: %v", err)
			}
			b := newTestStore(t, false)
			loaded, err := b.Load(ctx, bytes.NewReader(archive.Bytes()), LoadOptions{})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(loaded) != 2 || loaded[0].ID != app.ID || strings.Join(loaded[0].Refs, ",") != "localhost/app:1" {
				t.Fatalf("Load = %+v, want app %s tagged localhost/app:1 and base", loaded, app.ID)
			}
			bapp, err := b.Get(ctx, "localhost/app:1")
			if err != nil {
				t.Fatal(err)
			}
			if bapp.Manifest.Digest != app.Manifest.Digest || bapp.ChainID() != app.ChainID() {
				t.Errorf("loaded manifest %s chain %s, want %s %s", bapp.Manifest.Digest, bapp.ChainID(), app.Manifest.Digest, app.ChainID())
			}

			target := reg.Host + "/rt/app:1"
			if err := b.Tag(ctx, "localhost/app:1", target); err != nil {
				t.Fatal(err)
			}
			pushed, err := b.Push(ctx, target, PushOptions{})
			if err != nil {
				t.Fatalf("Push: %v", err)
			}
			if pushed != app.Manifest.Digest {
				t.Errorf("pushed manifest %s, want %s", pushed, app.Manifest.Digest)
			}

			c := newTestStore(t, true)
			pulled, err := c.Pull(ctx, target, PullOptions{})
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if pulled.ID != app.ID || pulled.Manifest.Digest != app.Manifest.Digest || pulled.ChainID() != app.ChainID() {
				t.Errorf("pulled %s/%s/%s, want %s/%s/%s", pulled.ID, pulled.Manifest.Digest, pulled.ChainID(), app.ID, app.Manifest.Digest, app.ChainID())
			}
			// Pushing again uploads nothing new.
			before := reg.Requests("PATCH /v2/rt/app/blobs/uploads/") + reg.Requests("POST /v2/rt/app/blobs/uploads/")
			if _, err := b.Push(ctx, target, PushOptions{}); err != nil {
				t.Fatal(err)
			}
			if after := reg.Requests("PATCH /v2/rt/app/blobs/uploads/") + reg.Requests("POST /v2/rt/app/blobs/uploads/"); after != before {
				t.Errorf("second push started %d uploads", after-before)
			}
		})
	}
}

// A classic docker-archive: <id>/layer.tar, <config>.json, manifest.json.
func TestLoadClassicDockerArchive(t *testing.T) {
	ctx := context.Background()
	layer := rootfsTar()
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{"Cmd": []string{"/bin/sh"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{testregistry.Digest(layer)}}})
	cfgName := strings.TrimPrefix(testregistry.Digest(cfg), "sha256:") + ".json"
	man, _ := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{"busybox:latest"}, "Layers": []string{"abc/layer.tar"}}})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		body []byte
	}{{"abc/layer.tar", layer}, {cfgName, cfg}, {"manifest.json", man}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Size: int64(len(f.body)), Mode: 0o644, Typeflag: tar.TypeReg})
		tw.Write(f.body)
	}
	tw.Close()
	ts := newTestStore(t, true)
	loaded, err := ts.Load(ctx, &buf, LoadOptions{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(loaded) != 1 || loaded[0].ID.String() != testregistry.Digest(cfg) || loaded[0].Refs[0] != "busybox:latest" {
		t.Fatalf("Load = %+v", loaded)
	}
	img, err := ts.Get(ctx, "busybox")
	if err != nil {
		t.Fatal(err)
	}
	if string(ts.layers.tarOf(img.ChainID())) != string(layer) || img.Layers[0].Blob.MediaType != "application/vnd.docker.image.rootfs.diff.tar" {
		t.Errorf("loaded layer %+v", img.Layers[0])
	}
}

func TestLoadBadArchives(t *testing.T) {
	ctx := context.Background()
	mk := func(files map[string][]byte) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for n, b := range files {
			tw.WriteHeader(&tar.Header{Name: n, Size: int64(len(b)), Mode: 0o644, Typeflag: tar.TypeReg})
			tw.Write(b)
		}
		tw.Close()
		return buf.Bytes()
	}
	tests := []struct {
		name    string
		archive []byte
		wantMsg string
	}{
		{"not a tar", []byte("hello, I am not an archive at all............................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................"), "read archive"},
		{"no index nor manifest", mk(map[string][]byte{"x": []byte("y")}), "neither index.json"},
		{"blob under a wrong name", mk(map[string][]byte{"blobs/sha256/" + strings.Repeat("0", 64): []byte("y"), "index.json": []byte(`{}`)}), "has digest"},
		{"missing layer", mk(map[string][]byte{"manifest.json": []byte(`[{"Config":"c.json","Layers":["l.tar"]}]`), "c.json": []byte(`{"rootfs":{"type":"layers","diff_ids":["sha256:` + strings.Repeat("a", 64) + `"]}}`)}), "l.tar, which is not in the archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestStore(t, true)
			_, err := ts.Load(ctx, bytes.NewReader(tt.archive), LoadOptions{})
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Load = %v, want ErrInvalid containing %q", err, tt.wantMsg)
			}
			ts.assertEmpty(t)
		})
	}
}

func TestRemovePruneGC(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, true)
	base, err := ts.Import(ctx, bytes.NewReader(rootfsTar()), ImportOptions{Ref: "localhost/base:1"})
	if err != nil {
		t.Fatal(err)
	}
	app, err := ts.Commit(ctx, CommitOptions{Base: base.ID, Layer: bytes.NewReader(changesTar()), Ref: "localhost/app:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Tag(ctx, "localhost/app:1", "localhost/app:2"); err != nil {
		t.Fatal(err)
	}
	blobCount := func() int {
		n := 0
		ts.content.Walk(ctx, func(content.Info) error { n++; return nil })
		return n
	}
	if n := blobCount(); n != 6 {
		t.Fatalf("%d blobs after import+commit, want 6 (2 layers, 2 configs, 2 manifests)", n)
	}

	// An ID with two tags needs force.
	if _, err := ts.Remove(ctx, app.ID.String(), RemoveOptions{}); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "referenced in multiple repositories") {
		t.Errorf("rmi of an ID with two tags = %v, want a conflict", err)
	}
	// A tag among several is only untagged.
	rr, err := ts.Remove(ctx, "localhost/app:2", RemoveOptions{})
	if err != nil || len(rr.Deleted) != 0 || strings.Join(rr.Untagged, ",") != "localhost/app:2" {
		t.Errorf("rmi localhost/app:2 = %+v, %v; want untagged only", rr, err)
	}
	// An image a container uses is refused unless forced.
	ts.held[app.ID] = []Holder{{ID: "web"}}
	if _, err := ts.Remove(ctx, "localhost/app:1", RemoveOptions{}); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "(must force) - container web is using its referenced image") {
		t.Errorf("rmi of a held image = %v, want a conflict naming the container", err)
	}
	// A running container's image cannot be deleted, even forced: by ID
	// that is an error, by name the name goes and the image stays (Docker).
	ts.held[app.ID] = []Holder{{ID: "web", Running: true}}
	if _, err := ts.Remove(ctx, ShortID(app.ID), RemoveOptions{Force: true}); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "(cannot be forced) - image is being used by running container web") {
		t.Errorf("rmi -f of a running container's image by ID = %v, want a hard conflict", err)
	}
	// prune -a keeps held images
	pr, err := ts.Prune(ctx, PruneOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.Deleted) != 1 || pr.Deleted[0] != base.ID {
		t.Errorf("prune -a deleted %v, want only the base image", pr.Deleted)
	}
	// the base layer is still used by app
	if ok, _ := ts.layers.Exists(ctx, base.ChainID()); !ok {
		t.Error("prune removed a layer the remaining image uses")
	}
	if n := blobCount(); n != 4 {
		t.Errorf("%d blobs after pruning the base image, want 4", n)
	}
	rr, err = ts.Remove(ctx, "localhost/app:1", RemoveOptions{Force: true})
	if err != nil || len(rr.Deleted) != 0 || strings.Join(rr.Untagged, ",") != "localhost/app:1" {
		t.Errorf("rmi -f of a running container's image by name = %+v, %v; want untagged only", rr, err)
	}
	if _, err := ts.Get(ctx, app.ID.String()); err != nil {
		t.Errorf("the running container's image went with its name: %v", err)
	}
	// A stopped container's image goes when forced.
	ts.held[app.ID] = []Holder{{ID: "web"}}
	rr, err = ts.Remove(ctx, app.ID.String(), RemoveOptions{Force: true})
	if err != nil || len(rr.Deleted) != 1 {
		t.Fatalf("rmi -f = %+v, %v", rr, err)
	}
	delete(ts.held, app.ID)
	ts.assertEmpty(t)
}

func TestInspectAndHistory(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, true)
	base, err := ts.Import(ctx, bytes.NewReader(rootfsTar()), ImportOptions{Ref: "localhost/base:1", Message: "imported", Changes: []string{"CMD /bin/sh"}})
	if err != nil {
		t.Fatal(err)
	}
	app, err := ts.Commit(ctx, CommitOptions{Base: base.ID, Layer: bytes.NewReader(changesTar()), Ref: "localhost/app:1", Comment: "second", Author: "me", CreatedBy: "/bin/sh -c make"})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ts.Inspect(ctx, "localhost/app:1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(in)
	var generic map[string]any
	json.Unmarshal(b, &generic)
	for _, k := range []string{"Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Config", "Architecture", "Os", "Size", "RootFS", "Metadata"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("inspect JSON lacks %q: %s", k, b)
		}
	}
	if in.ID != app.ID.String() || in.Parent != base.ID.String() || in.Comment != "second" || in.Author != "me" ||
		len(in.RootFS.Layers) != 2 || in.RootFS.Type != "layers" || in.Size != int64(len(rootfsTar())+len(changesTar())) ||
		strings.Join(in.RepoTags, ",") != "localhost/app:1" {
		t.Errorf("Inspect = %s", b)
	}
	h, err := ts.History(ctx, "localhost/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].ID != app.ID.String() || h[0].CreatedBy != "/bin/sh -c make" || h[0].Size != int64(len(changesTar())) ||
		h[1].ID != "<missing>" || h[1].CreatedBy != "Imported from -" || h[1].Comment != "imported" {
		t.Errorf("History = %+v", h)
	}
	du, err := ts.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if du.Images != 2 || du.LayersSize != int64(len(rootfsTar())+len(changesTar())) || du.Reclaimable != du.LayersSize {
		t.Errorf("DiskUsage = %+v", du)
	}
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, true)
	img, err := ts.Import(ctx, bytes.NewReader(rootfsTar()), ImportOptions{Ref: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"busybox", "busybox:latest", "docker.io/library/busybox:latest", img.ID.String(), img.ID.Encoded(), img.ID.Encoded()[:12]} {
		id, err := ts.Resolve(ctx, name)
		if err != nil || id != img.ID {
			t.Errorf("Resolve(%q) = %s, %v; want %s", name, id, err, img.ID)
		}
	}
	for _, name := range []string{"busybox:other", "nothing", "ffffffffffff"} {
		if _, err := ts.Resolve(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Errorf("Resolve(%q) = %v, want ErrNotFound", name, err)
		}
	}
	if _, err := ts.Resolve(ctx, "Bad Name"); err == nil || !strings.Contains(err.Error(), "invalid reference format") {
		t.Errorf("Resolve of a malformed name = %v", err)
	}
}
