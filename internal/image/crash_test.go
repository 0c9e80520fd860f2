package image

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/content"
	"github.com/berthproject/berth/internal/image/registry"
	"github.com/berthproject/berth/internal/snapshot"
	"github.com/berthproject/berth/internal/snapshot/overlay"
	testregistry "github.com/berthproject/berth/test/registry"
)

const childEnv = "BERTH_IMAGE_TEST_PULL_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		root, ref, _ := strings.Cut(spec, " ")
		if err := childPull(root, ref); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func openOverlayStore(root string) (*Store, snapshot.Driver, error) {
	d, err := overlay.New(filepath.Join(root, "snapshots", "overlay"))
	if err != nil {
		return nil, nil, err
	}
	s, err := New(Options{Root: root, Layers: FromSnapshots(snapshot.NewLayers(d, snapshot.LayersOptions{})),
		Registry: registry.New(registry.Options{ConfigDir: filepath.Join(root, "docker-config")}), Platform: Platform{OS: "linux", Architecture: "amd64"}})
	return s, d, err
}

// childPull is the process the test kills in the middle of a pull.
func childPull(root, ref string) error {
	s, _, err := openOverlayStore(root)
	if err != nil {
		return err
	}
	_, err = s.Pull(context.Background(), ref, PullOptions{})
	return err
}

// A pull killed with SIGKILL mid-download leaves nothing listed; GC and the
// snapshotter's Cleanup remove its leftovers but keep the partial download,
// and the next pull resumes it.
func TestPullKilledMidway(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the overlay driver needs root")
	}
	ctx := context.Background()
	reg := testregistry.Start(t, testregistry.Options{})
	// A layer of random bytes, larger than the content writer's buffer, so
	// part of it reaches the disk before the kill.
	noise := make([]byte, 3<<20)
	rand.Read(noise)
	img := gzipImage()
	img.Layers = append(img.Layers, testregistry.GzipLayer(testregistry.Tar(testregistry.Entry{Name: "noise", Body: string(noise)})))
	reg.Push(t, "crash/app", "v1", img)
	big := img.Layers[3]
	arrived := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	var ranges []string
	var mu sync.Mutex
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+big.Digest()) {
			return false
		}
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		first := len(ranges) == 1
		mu.Unlock()
		if !first {
			return false
		}
		// Send half the blob, then hold the connection until the client is dead.
		w.Header().Set("Content-Length", fmt.Sprint(len(big.Blob)))
		w.Write(big.Blob[:len(big.Blob)/2])
		w.(http.Flusher).Flush()
		once.Do(func() { close(arrived) })
		<-release
		return true
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	root := t.TempDir()
	ref := reg.Host + "/crash/app:v1"
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+root+" "+ref)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	<-arrived
	// Wait until part of the half blob is in the ingest, then kill the puller.
	cs, err := content.New(root)
	if err != nil {
		t.Fatal(err)
	}
	for partial := false; !partial; {
		ing, _ := cs.Ingests()
		for _, i := range ing {
			partial = partial || (i.Expected.String() == big.Digest() && i.Offset > 0)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	close(release)

	s, d, err := openOverlayStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if imgs, _ := s.List(ctx); len(imgs) != 0 {
		t.Errorf("%d images listed after the killed pull", len(imgs))
	}
	if err := d.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	d.Walk(ctx, func(snapshot.Info) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d snapshots left after Cleanup and GC", n)
	}
	var blobs int
	s.Content().Walk(ctx, func(content.Info) error { blobs++; return nil })
	if blobs != 0 {
		t.Errorf("%d blobs left after GC of a pull that did not finish", blobs)
	}
	pulled, err := s.Pull(ctx, ref, PullOptions{})
	if err != nil {
		t.Fatalf("pull after the crash: %v", err)
	}
	if len(pulled.Layers) != 4 {
		t.Fatalf("pulled %d layers", len(pulled.Layers))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ranges) != 2 || !strings.HasPrefix(ranges[1], "bytes=") {
		t.Errorf("blob requests had ranges %q; want the second pull to resume", ranges)
	}
}
