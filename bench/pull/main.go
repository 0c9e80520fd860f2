// Command pull times berth's image pull in-process: a multi-layer image
// (built from this host's files, or any reference) is pulled from a local
// registry into a fresh store, several times, and the median wall time,
// throughput (compressed and uncompressed MB/s) and the unpacked size are
// reported. The cross-engine comparison (docker, podman) is a separate
// script; this one measures berth alone, reliably.
//
//	go run ./bench/pull                              # in-process registry, synthetic 4-layer image
//	go run ./bench/pull -registry 127.0.0.1:5000     # Debian's docker-registry
//	go run ./bench/pull -registry 127.0.0.1:5000 -push-only   # just publish the test image
//	go run ./bench/pull -image 127.0.0.1:5000/x/y:t -layers-store archive
//
// Layer stores (-layers-store):
//
//	overlay  the overlay snapshot driver (berth's default): what `berth pull` does
//	native   the copying snapshot driver (layers unpacked one after the other)
//	archive  each layer unpacked with internal/archive into its own directory
//	         (overlay whiteout format), concurrently: the overlay driver's work
//	         without the snapshotter's bookkeeping
//	discard  layers are decompressed and their tar read, nothing written:
//	         download + verify + decompress only
//
// Run as root for archive (ownership, device nodes).
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/archive"
	"github.com/berthproject/berth/internal/content"
	"github.com/berthproject/berth/internal/image"
	"github.com/berthproject/berth/internal/image/progress"
	"github.com/berthproject/berth/internal/image/registry"
	"github.com/berthproject/berth/internal/snapshot"
	"github.com/berthproject/berth/internal/snapshot/native"
	"github.com/berthproject/berth/internal/snapshot/overlay"
)

func main() {
	regAddr := flag.String("registry", "", "registry host:port (empty: an in-process registry on 127.0.0.1)")
	ref := flag.String("image", "", "image to pull (empty: build and push a synthetic image from host files)")
	layers := flag.Int("layers", 4, "synthetic image: number of layers")
	layerMB := flag.Int("layer-mb", 60, "synthetic image: uncompressed MB per layer")
	sources := flag.String("sources", "/usr/lib/x86_64-linux-gnu,/usr/share,/usr/bin,/usr/lib", "synthetic image: directories to take files from")
	store := flag.String("layers-store", "overlay", "overlay, native, archive or discard")
	runs := flag.Int("runs", 5, "number of timed pulls")
	rootDir := flag.String("root", "", "scratch directory (empty: a temp dir)")
	pushOnly := flag.Bool("push-only", false, "push the synthetic image and exit")
	noSync := flag.Bool("nosync", false, "skip the content store's fsync (to measure its cost)")
	verbose := flag.Bool("v", false, "print layer events with their times")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed pulls to this file")
	flag.Parse()
	log.SetFlags(0)
	ctx := context.Background()

	host := *regAddr
	if host == "" {
		srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
		defer srv.Close()
		host = strings.TrimPrefix(srv.URL, "http://")
	}
	if *ref == "" {
		*ref = host + "/bench/synthetic:latest"
		if err := buildAndPush(*ref, *layers, *layerMB<<20, strings.Split(*sources, ",")); err != nil {
			log.Fatalf("build image: %v", err)
		}
		if *pushOnly {
			fmt.Println(*ref)
			return
		}
	}
	scratch := *rootDir
	if scratch == "" {
		d, err := os.MkdirTemp("/var/tmp", "berth-bench-pull-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		scratch = d
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var times, cpus []time.Duration
	var compressed, uncompressed, disk int64
	for i := 0; i < *runs; i++ {
		root := filepath.Join(scratch, fmt.Sprintf("run%d", i))
		ls, err := newLayers(*store, root)
		if err != nil {
			log.Fatal(err)
		}
		cs, err := content.New(root)
		if err != nil {
			log.Fatal(err)
		}
		cs.NoSync = *noSync
		s, err := image.New(image.Options{Root: root, Content: cs, Layers: ls, Registry: registry.New(registry.Options{})})
		if err != nil {
			log.Fatal(err)
		}
		syncDisk()
		cpu0 := cpuTime()
		start := time.Now()
		var pf progress.Func
		if *verbose {
			t0 := time.Now()
			pf = func(e progress.Event) {
				if e.Status != progress.Downloading {
					fmt.Printf("  %6.3fs %s %s\n", time.Since(t0).Seconds(), e.ID, e.Status)
				}
			}
		}
		img, err := s.Pull(ctx, *ref, image.PullOptions{Progress: pf})
		if err != nil {
			log.Fatalf("pull: %v", err)
		}
		syncDisk() // count the writes the pull left for the kernel to flush
		d := time.Since(start)
		cpus = append(cpus, cpuTime()-cpu0)
		times = append(times, d)
		compressed, uncompressed = 0, img.Size
		for _, l := range img.Layers {
			compressed += l.Blob.Size
		}
		disk = du(filepath.Join(root, "layers"))
		fmt.Printf("run %d: %v (cpu %v)\n", i+1, d.Round(time.Millisecond), cpus[i].Round(time.Millisecond))
		os.RemoveAll(root)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	sort.Slice(cpus, func(i, j int) bool { return cpus[i] < cpus[j] })
	med := times[len(times)/2]
	mb := func(n int64) float64 { return float64(n) / 1e6 }
	fmt.Printf("image %s: %.1f MB compressed, %.1f MB uncompressed, %.1f MB unpacked on disk\n", *ref, mb(compressed), mb(uncompressed), mb(disk))
	fmt.Printf("pull (%s): median %v (min %v, max %v) over %d runs; %.0f MB/s compressed, %.0f MB/s uncompressed\n",
		*store, med.Round(time.Millisecond), times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond), len(times),
		mb(compressed)/med.Seconds(), mb(uncompressed)/med.Seconds())
	fmt.Printf("cpu time of the pulling process (user+sys): median %v; the machine's load skews wall times, not this\n", cpus[len(cpus)/2].Round(time.Millisecond))
}

// cpuTime is this process's user+system time so far.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// syncDisk flushes the whole system: the pull's dirty pages are part of its cost.
func syncDisk() { unix.Sync() }

func du(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// buildAndPush makes n gzip layers of about size bytes each from files under
// sources and pushes them as ref.
func buildAndPush(ref string, n, size int, sources []string) error {
	var files []string
	for _, src := range sources {
		filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
	}
	sort.Strings(files)
	blobs := make([][]byte, n)
	var g errgroup.Group
	next := 0
	for i := 0; i < n; i++ {
		// each layer takes the next files until it has size bytes
		var mine []string
		total := 0
		for ; next < len(files) && total < size; next++ {
			fi, err := os.Stat(files[next])
			if err != nil || fi.Size() > int64(size) {
				continue
			}
			mine = append(mine, files[next])
			total += int(fi.Size())
		}
		g.Go(func() error {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			tw := tar.NewWriter(zw)
			for _, f := range mine {
				fi, err := os.Lstat(f)
				if err != nil {
					continue
				}
				h, err := tar.FileInfoHeader(fi, "")
				if err != nil {
					continue
				}
				h.Name = fmt.Sprintf("layer%d", i) + f
				b, err := os.ReadFile(f)
				if err != nil {
					continue
				}
				h.Size = int64(len(b))
				tw.WriteHeader(h)
				tw.Write(b)
			}
			tw.Close()
			zw.Close()
			blobs[i] = buf.Bytes()
			return nil
		})
	}
	g.Wait()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}, Config: v1.Config{Cmd: []string{"/bin/sh"}}})
	if err != nil {
		return err
	}
	for _, b := range blobs {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			return err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return err
		}
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(r, img)
}

func newLayers(kind, root string) (image.Layers, error) {
	switch kind {
	case "archive":
		dir := filepath.Join(root, "layers")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		return &dirLayers{dir: dir, parents: map[digest.Digest]digest.Digest{}}, nil
	case "discard":
		return &dirLayers{parents: map[digest.Digest]digest.Digest{}}, nil
	case "overlay":
		d, err := overlay.New(filepath.Join(root, "layers"))
		if err != nil {
			return nil, err
		}
		return image.FromSnapshots(snapshot.NewLayers(d, snapshot.LayersOptions{})), nil
	case "native":
		d, err := native.New(filepath.Join(root, "layers"))
		if err != nil {
			return nil, err
		}
		return image.FromSnapshots(snapshot.NewLayers(d, snapshot.LayersOptions{})), nil
	}
	return nil, fmt.Errorf("unknown -layers-store %q", kind)
}

// dirLayers unpacks each layer into its own directory (dir "" discards).
type dirLayers struct {
	dir     string
	mu      sync.Mutex
	n       int
	parents map[digest.Digest]digest.Digest
}

func (d *dirLayers) Exists(ctx context.Context, c digest.Digest) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.parents[c]
	return ok, nil
}
func (d *dirLayers) Parallel() bool { return true }
func (d *dirLayers) Begin(ctx context.Context, parent digest.Digest) (image.LayerWriter, error) {
	d.mu.Lock()
	d.n++
	n := d.n
	d.mu.Unlock()
	w := &dirWriter{d: d, parent: parent}
	if d.dir != "" {
		w.path = filepath.Join(d.dir, fmt.Sprint(n))
		if err := os.Mkdir(w.path, 0o755); err != nil {
			return nil, err
		}
	}
	return w, nil
}
func (d *dirLayers) Remove(ctx context.Context, c digest.Digest) error { return nil }
func (d *dirLayers) Walk(ctx context.Context, fn func(c, p digest.Digest) error) error {
	return nil
}
func (d *dirLayers) Usage(ctx context.Context, c digest.Digest) (int64, error) { return 0, nil }

type dirWriter struct {
	d      *dirLayers
	parent digest.Digest
	path   string
}

func (w *dirWriter) Apply(ctx context.Context, r io.Reader) error {
	if w.path == "" {
		tr := tar.NewReader(r)
		for {
			if _, err := tr.Next(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			io.Copy(io.Discard, tr)
		}
	}
	_, err := archive.Apply(ctx, w.path, r, archive.ApplyOptions{Whiteouts: archive.WhiteoutOverlay})
	return err
}
func (w *dirWriter) Commit(ctx context.Context, c digest.Digest) error {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	w.d.parents[c] = w.parent
	return nil
}
func (w *dirWriter) Abort(ctx context.Context) error {
	if w.path != "" {
		return os.RemoveAll(w.path)
	}
	return nil
}
