package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/berthproject/berth/internal/image/progress"
	"github.com/berthproject/berth/internal/image/registry"
	testregistry "github.com/berthproject/berth/test/registry"
	"github.com/opencontainers/go-digest"
)

// testLayers is a three-layer image with whiteouts, an opaque dir, a hard
// link and xattrs.
func testLayers() [][]byte {
	return [][]byte{
		testregistry.Tar(
			testregistry.Entry{Name: "etc/", Type: tar.TypeDir},
			testregistry.Entry{Name: "etc/hostname", Body: "base\n"},
			testregistry.Entry{Name: "bin/", Type: tar.TypeDir},
			testregistry.Entry{Name: "bin/tool", Body: "#!/bin/sh\n", Mode: 0o755, Xattrs: map[string]string{"user.origin": "base"}},
			testregistry.Entry{Name: "bin/tool-link", Type: tar.TypeLink, Linkname: "bin/tool"},
			testregistry.Entry{Name: "var/cache/", Type: tar.TypeDir},
			testregistry.Entry{Name: "var/cache/a", Body: "a"},
		),
		testregistry.Tar(
			testregistry.Entry{Name: "etc/", Type: tar.TypeDir},
			testregistry.Entry{Name: "etc/.wh.hostname"},
			testregistry.Entry{Name: "var/cache/", Type: tar.TypeDir},
			testregistry.Entry{Name: "var/cache/.wh..wh..opq"},
			testregistry.Entry{Name: "var/cache/b", Body: "b"},
		),
		testregistry.Tar(testregistry.Entry{Name: "app", Body: strings.Repeat("payload ", 100000)}),
	}
}

func gzipImage() testregistry.Image {
	var ls []testregistry.Layer
	for _, t := range testLayers() {
		ls = append(ls, testregistry.GzipLayer(t))
	}
	return testregistry.Image{Layers: ls, Cmd: []string{"/bin/tool"}}
}

func TestPullFormats(t *testing.T) {
	tars := testLayers()
	tests := []struct {
		name     string
		image    testregistry.Image
		parallel bool
	}{
		{"docker schema 2, gzip, parallel unpack", gzipImage(), true},
		{"docker schema 2, gzip, sequential unpack", gzipImage(), false},
		{"oci, zstd", testregistry.Image{ManifestMediaType: testregistry.OCIManifest,
			Layers: []testregistry.Layer{testregistry.ZstdLayer(tars[0]), testregistry.ZstdLayer(tars[1]), testregistry.ZstdLayer(tars[2])}}, true},
		{"oci, mixed gzip/zstd/uncompressed", testregistry.Image{ManifestMediaType: testregistry.OCIManifest,
			Layers: []testregistry.Layer{testregistry.GzipLayer(tars[0]), testregistry.PlainLayer(tars[1]), testregistry.ZstdLayer(tars[2])}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			reg := testregistry.Start(t, testregistry.Options{})
			pushed := reg.Push(t, "test/app", "v1", tt.image)
			ts := newTestStore(t, tt.parallel)
			var mu sync.Mutex
			statuses := map[string][]string{}
			img, err := ts.Pull(ctx, reg.Host+"/test/app:v1", PullOptions{Progress: func(e progress.Event) {
				mu.Lock()
				defer mu.Unlock()
				if s := statuses[e.ID]; len(s) == 0 || s[len(s)-1] != e.Status {
					statuses[e.ID] = append(s, e.Status)
				}
			}})
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if img.ID.String() != pushed.ConfigDigest || img.Manifest.Digest.String() != pushed.ManifestDigest {
				t.Errorf("Pull = id %s manifest %s, want %s %s", img.ID, img.Manifest.Digest, pushed.ConfigDigest, pushed.ManifestDigest)
			}
			for i, l := range img.Layers {
				if got := ts.layers.tarOf(l.ChainID); string(got) != string(tars[i]) {
					t.Errorf("layer %d unpacked %d bytes, want the %d bytes of its tar", i, len(got), len(tars[i]))
				}
				if l.Size != int64(len(tars[i])) {
					t.Errorf("layer %d Size = %d, want %d", i, l.Size, len(tars[i]))
				}
			}
			sum, err := ts.Get(ctx, reg.Host+"/test/app:v1")
			if err != nil {
				t.Fatal(err)
			}
			wantTag := reg.Host + "/test/app:v1"
			wantDigest := reg.Host + "/test/app@" + pushed.ManifestDigest
			if len(sum.RepoTags) != 1 || sum.RepoTags[0] != wantTag || len(sum.RepoDigests) != 1 || sum.RepoDigests[0] != wantDigest {
				t.Errorf("RepoTags %v RepoDigests %v, want [%s] [%s]", sum.RepoTags, sum.RepoDigests, wantTag, wantDigest)
			}
			for _, l := range img.Layers {
				s := statuses[ShortID(l.Blob.Digest)]
				if len(s) < 2 || s[0] != progress.PullingFsLayer || s[len(s)-1] != progress.PullComplete {
					t.Errorf("progress of layer %s = %v, want Pulling fs layer ... Pull complete", ShortID(l.Blob.Digest), s)
				}
			}

			// A second pull downloads nothing.
			before := reg.BlobRequests("test/app", img.Layers[0].Blob.Digest.String())
			if _, err := ts.Pull(ctx, reg.Host+"/test/app:v1", PullOptions{}); err != nil {
				t.Fatal(err)
			}
			if after := reg.BlobRequests("test/app", img.Layers[0].Blob.Digest.String()); after != before {
				t.Errorf("second pull fetched the layer again (%d -> %d requests)", before, after)
			}
		})
	}
}

func TestPullByDigestAndIndex(t *testing.T) {
	ctx := context.Background()
	reg := testregistry.Start(t, testregistry.Options{})
	amd := gzipImage()
	arm := testregistry.Image{Architecture: "arm64", Variant: "v8", Layers: []testregistry.Layer{testregistry.GzipLayer(testregistry.Tar(testregistry.Entry{Name: "arm", Body: "arm64"}))}}
	for _, mt := range []string{testregistry.OCIIndex, testregistry.DockerList} {
		t.Run(mt, func(t *testing.T) {
			indexDigest, pushed := reg.PushIndex(t, "multi/app", "latest", mt, amd, arm)
			tests := []struct {
				platform string
				want     testregistry.Pushed
			}{
				{"", pushed[0]},
				{"linux/arm64", pushed[1]},
				{"linux/arm64/v8", pushed[1]},
				{"linux/amd64", pushed[0]},
			}
			for _, tt := range tests {
				ts := newTestStore(t, true)
				img, err := ts.Pull(ctx, reg.Host+"/multi/app", PullOptions{Platform: tt.platform})
				if err != nil {
					t.Fatalf("Pull --platform %q: %v", tt.platform, err)
				}
				if img.ID.String() != tt.want.ConfigDigest || img.Index == nil || img.Index.Digest.String() != indexDigest {
					t.Errorf("Pull --platform %q = %s (index %v), want %s from index %s", tt.platform, img.ID, img.Index, tt.want.ConfigDigest, indexDigest)
				}
				// Docker records the index digest as the repo digest.
				sum, _ := ts.Get(ctx, img.ID.String())
				if len(sum.RepoDigests) != 1 || !strings.HasSuffix(sum.RepoDigests[0], "@"+indexDigest) {
					t.Errorf("RepoDigests = %v, want the index digest %s", sum.RepoDigests, indexDigest)
				}
			}
			// by digest of the index and of a single manifest
			ts := newTestStore(t, true)
			if _, err := ts.Pull(ctx, reg.Host+"/multi/app@"+indexDigest, PullOptions{}); err != nil {
				t.Errorf("pull by index digest: %v", err)
			}
			img, err := ts.Pull(ctx, reg.Host+"/multi/app@"+pushed[1].ManifestDigest, PullOptions{Platform: "linux/arm64"})
			if err != nil || img.ID.String() != pushed[1].ConfigDigest {
				t.Errorf("pull by manifest digest = %v, %v", img, err)
			}
			if _, err := ts.Get(ctx, reg.Host+"/multi/app@"+pushed[1].ManifestDigest); err != nil {
				t.Errorf("image pulled by digest is not found by that digest: %v", err)
			}
		})
	}
}

func TestPullAuth(t *testing.T) {
	ctx := context.Background()
	for _, auth := range []testregistry.Auth{testregistry.Basic, testregistry.Bearer} {
		t.Run(fmt.Sprint(auth), func(t *testing.T) {
			reg := testregistry.Start(t, testregistry.Options{Auth: auth, Username: "alice", Password: "s3cret"})
			pushed := reg.Push(t, "private/app", "v1", gzipImage())
			ts := newTestStore(t, true)
			name := reg.Host + "/private/app:v1"

			if _, err := ts.Pull(ctx, name, PullOptions{}); !errors.Is(err, registry.ErrUnauthorized) {
				t.Fatalf("anonymous pull error = %v, want unauthorized", err)
			}
			ts.assertEmpty(t)
			if err := ts.Registry().Login(ctx, reg.Host, "alice", "wrong"); !errors.Is(err, registry.ErrUnauthorized) {
				t.Errorf("Login with a wrong password = %v, want unauthorized", err)
			}
			if err := ts.Registry().Login(ctx, reg.Host, "alice", "s3cret"); err != nil {
				t.Fatalf("Login: %v", err)
			}
			img, err := ts.Pull(ctx, name, PullOptions{})
			if err != nil {
				t.Fatalf("pull after login: %v", err)
			}
			if img.ID.String() != pushed.ConfigDigest {
				t.Errorf("pulled %s, want %s", img.ID, pushed.ConfigDigest)
			}
			if err := ts.Registry().Logout(reg.Host); err != nil {
				t.Fatal(err)
			}
			if err := ts.Registry().Logout(reg.Host); err == nil || !strings.Contains(err.Error(), "not logged in") {
				t.Errorf("second Logout = %v, want not logged in", err)
			}
		})
	}
}

func TestPullBadInput(t *testing.T) {
	ctx := context.Background()
	good := gzipImage()
	tests := []struct {
		name    string
		setup   func(t *testing.T, reg *testregistry.Server) string // returns the reference to pull
		wantErr error
		wantMsg []string
	}{
		{"wrong digest", func(t *testing.T, reg *testregistry.Server) string {
			p := reg.Push(t, "x/app", "v1", good)
			bad := good.Layers[1].Digest()
			reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				if strings.HasSuffix(r.URL.Path, "/blobs/"+bad) && r.Method == http.MethodGet {
					body := []byte(strings.Repeat("x", len(good.Layers[1].Blob)))
					w.Header().Set("Content-Length", fmt.Sprint(len(body)))
					w.Write(body)
					return true
				}
				return false
			})
			_ = p
			return reg.Host + "/x/app:v1"
		}, ErrInvalid, []string{"pull " + "HOST/x/app:v1", "layer " + good.Layers[1].Digest()}},
		{"truncated blob", func(t *testing.T, reg *testregistry.Server) string {
			reg.Push(t, "x/app", "v1", good)
			cut := good.Layers[2].Digest()
			reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				if strings.HasSuffix(r.URL.Path, "/blobs/"+cut) && r.Method == http.MethodGet {
					b := good.Layers[2].Blob
					w.Header().Set("Content-Length", fmt.Sprint(len(b)))
					w.Write(b[:len(b)/2]) // the server dies mid-stream
					return true
				}
				return false
			})
			return reg.Host + "/x/app:v1"
		}, nil, []string{"layer " + good.Layers[2].Digest()}},
		{"unknown layer media type", func(t *testing.T, reg *testregistry.Server) string {
			img := good
			img.Layers = append([]testregistry.Layer{}, good.Layers...)
			img.Layers[1].MediaType = "application/vnd.example.layer.v1+weird"
			reg.Push(t, "x/app", "v1", img)
			return reg.Host + "/x/app:v1"
		}, ErrInvalid, []string{"unknown layer media type", "application/vnd.example.layer.v1+weird", good.Layers[1].Digest()}},
		{"diff ids that do not match the layers", func(t *testing.T, reg *testregistry.Server) string {
			img := good
			img.DiffIDs = []string{good.Layers[0].DiffID, good.Layers[0].DiffID, good.Layers[2].DiffID}
			reg.Push(t, "x/app", "v1", img)
			return reg.Host + "/x/app:v1"
		}, ErrInvalid, []string{"layer " + good.Layers[1].Digest(), "the config says"}},
		{"manifest for another platform", func(t *testing.T, reg *testregistry.Server) string {
			img := good
			img.Architecture = "s390x"
			reg.Push(t, "x/app", "v1", img)
			return reg.Host + "/x/app:v1"
		}, ErrInvalid, []string{"platform linux/s390x, not linux/amd64"}},
		{"index without the platform", func(t *testing.T, reg *testregistry.Server) string {
			img := good
			img.Architecture = "riscv64"
			reg.PushIndex(t, "x/app", "v1", testregistry.OCIIndex, img)
			return reg.Host + "/x/app:v1"
		}, ErrNotFound, []string{"no image for platform linux/amd64", "linux/riscv64"}},
		{"unknown tag", func(t *testing.T, reg *testregistry.Server) string {
			return reg.Host + "/x/none:v1"
		}, nil, []string{"x/none:v1", "UNKNOWN"}},
		{"malformed reference", func(t *testing.T, reg *testregistry.Server) string {
			return reg.Host + "/X/App:v1"
		}, nil, []string{"invalid reference format", "must be lowercase"}},
		{"unreachable registry", func(t *testing.T, reg *testregistry.Server) string {
			return "127.0.0.1:1/x/app:v1"
		}, nil, []string{"127.0.0.1:1", "connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := testregistry.Start(t, testregistry.Options{})
			name := tt.setup(t, reg)
			ts := newTestStore(t, true)
			_, err := ts.Pull(ctx, name, PullOptions{})
			if err == nil {
				t.Fatalf("Pull(%s) succeeded, want an error", name)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Pull(%s) error %v, want %v", name, err, tt.wantErr)
			}
			for _, m := range tt.wantMsg {
				m = strings.ReplaceAll(m, "HOST", reg.Host)
				if !strings.Contains(err.Error(), m) {
					t.Errorf("Pull(%s) error = %q, want it to mention %q", name, err, m)
				}
			}
			ts.assertEmpty(t)
		})
	}
}

func TestPullResumesInterruptedDownload(t *testing.T) {
	ctx := context.Background()
	reg := testregistry.Start(t, testregistry.Options{})
	img := gzipImage()
	reg.Push(t, "x/app", "v1", img)
	big := img.Layers[2]
	var ranges []string
	var mu sync.Mutex
	cutOnce := true
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/blobs/"+big.Digest()) || r.Method != http.MethodGet {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		ranges = append(ranges, r.Header.Get("Range"))
		if cutOnce {
			cutOnce = false
			w.Header().Set("Content-Length", fmt.Sprint(len(big.Blob)))
			w.Write(big.Blob[:len(big.Blob)/2])
			return true
		}
		return false
	})
	ts := newTestStore(t, true)
	if _, err := ts.Pull(ctx, reg.Host+"/x/app:v1", PullOptions{}); err == nil {
		t.Fatal("first pull succeeded through a cut connection")
	}
	ing, _ := ts.content.Ingests()
	if len(ing) != 1 || ing[0].Offset == 0 {
		t.Fatalf("ingests after the cut = %+v, want the partial layer kept", ing)
	}
	pulled, err := ts.Pull(ctx, reg.Host+"/x/app:v1", PullOptions{})
	if err != nil {
		t.Fatalf("second pull: %v", err)
	}
	if got := ts.layers.tarOf(pulled.Layers[2].ChainID); len(got) == 0 {
		t.Error("resumed layer was not unpacked")
	}
	want := fmt.Sprintf("bytes=%d-%d", ing[0].Offset, len(big.Blob)-1)
	if len(ranges) != 2 || ranges[1] != want {
		t.Errorf("blob requests had ranges %q, want [\"\" %q]", ranges, want)
	}
}

func TestConcurrentPullsOfOneImage(t *testing.T) {
	ctx := context.Background()
	reg := testregistry.Start(t, testregistry.Options{})
	pushed := reg.Push(t, "x/app", "v1", gzipImage())
	ts := newTestStore(t, true)
	// A second Store on the same root stands for another process.
	other, err := New(Options{Root: ts.root, Layers: ts.layers, Registry: ts.registry, Platform: ts.platform})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := ts.Store
			if i%2 == 1 {
				s = other
			}
			_, errs[i] = s.Pull(ctx, reg.Host+"/x/app:v1", PullOptions{})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("pull %d: %v", i, err)
		}
	}
	imgs, _ := ts.List(ctx)
	if len(imgs) != 1 || imgs[0].ID.String() != pushed.ConfigDigest {
		t.Fatalf("images after concurrent pulls: %d", len(imgs))
	}
	if n := ts.layers.count(); n != 3 {
		t.Errorf("%d layers after concurrent pulls, want 3", n)
	}
	if ing, _ := ts.content.Ingests(); len(ing) != 0 {
		t.Errorf("ingests left: %+v", ing)
	}
}

func TestPushMountsBlobsFromAnotherRepository(t *testing.T) {
	ctx := context.Background()
	reg := testregistry.Start(t, testregistry.Options{})
	img := gzipImage()
	reg.Push(t, "team/base", "v1", img)
	ts := newTestStore(t, true)
	if _, err := ts.Pull(ctx, reg.Host+"/team/base:v1", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var mounts []string
	// The in-memory registry shares blobs between repositories and does not
	// mount: act as a registry that does (blobs unknown in the new
	// repository, mount requests answered 201 Created).
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodHead && strings.HasPrefix(r.URL.Path, "/v2/other/copy/blobs/") {
			w.WriteHeader(http.StatusNotFound)
			return true
		}
		if r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" {
			mu.Lock()
			mounts = append(mounts, r.URL.Query().Get("mount")+" from "+r.URL.Query().Get("from"))
			mu.Unlock()
			w.Header().Set("Location", "/v2/other/copy/blobs/"+r.URL.Query().Get("mount"))
			w.WriteHeader(http.StatusCreated)
			return true
		}
		return false
	})
	target := reg.Host + "/other/copy:v1"
	if err := ts.Tag(ctx, reg.Host+"/team/base:v1", target); err != nil {
		t.Fatal(err)
	}
	var events []string
	if _, err := ts.Push(ctx, target, PushOptions{Progress: func(e progress.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e.ID+" "+e.Status)
	}}); err != nil {
		t.Fatalf("Push: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, l := range img.Layers {
		want := l.Digest() + " from team/base"
		found := false
		for _, m := range mounts {
			found = found || m == want
		}
		if !found {
			t.Errorf("layer %s was not mounted from team/base (mount requests: %q)", l.Digest(), mounts)
		}
	}
	if reg.Requests("PATCH /v2/other/copy/blobs/uploads/") != 0 {
		t.Errorf("layers were uploaded although they could be mounted")
	}
	if !strings.Contains(strings.Join(events, ","), ShortID(digest.Digest(img.Layers[0].Digest()))+" "+progress.Preparing) {
		t.Errorf("push progress %q lacks Preparing events", events)
	}
}

// TestPullSizeOfKeptLayers: a pull whose layers are already unpacked but
// named by no image (kept for a container of a force-removed image) records
// their size, not 0.
func TestPullSizeOfKeptLayers(t *testing.T) {
	ctx := context.Background()
	reg := testregistry.Start(t, testregistry.Options{})
	reg.Push(t, "x/app", "v1", gzipImage())
	ts := newTestStore(t, true)
	name := reg.Host + "/x/app:v1"
	first, err := ts.Pull(ctx, name, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Size <= 0 {
		t.Fatalf("first pull: Size = %d", first.Size)
	}
	// rmi -f of an image a container uses: the record goes, the layers stay.
	if _, err := ts.Remove(ctx, name, RemoveOptions{Force: true, NoPrune: true}); err != nil {
		t.Fatal(err)
	}
	again, err := ts.Pull(ctx, name, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Size != first.Size {
		t.Errorf("pull over kept layers: Size = %d, want %d as the first pull", again.Size, first.Size)
	}
	for i, l := range again.Layers {
		if l.Size != first.Layers[i].Size {
			t.Errorf("layer %d: Size = %d, want %d", i, l.Size, first.Layers[i].Size)
		}
	}
}

// TestPullErrorWithoutDetail: a registry's error response is told by code and
// message (as distribution sends for an unknown tag), without its free-form
// detail printed as a Go map.
func TestPullErrorWithoutDetail(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/manifests/") {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"v9"}}]}`))
		return true
	})
	ts := newTestStore(t, true)
	_, err := ts.Pull(context.Background(), reg.Host+"/x/app:v9", PullOptions{})
	if err == nil {
		t.Fatal("pull of an unknown tag succeeded")
	}
	want := "fetch manifest " + reg.Host + "/x/app:v9: GET http://" + reg.Host + "/v2/x/app/manifests/v9: MANIFEST_UNKNOWN: manifest unknown"
	if !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error = %q, want it to end with %q", err, want)
	}
	ts.assertEmpty(t)
}
