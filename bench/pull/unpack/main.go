// Command unpack times internal/archive.Apply on real layer blobs, without a
// registry or a snapshotter: each blob (gzip, zstd or plain tar, found by its
// magic) is decompressed and unpacked into its own fresh directory, all at
// once as a pull does, several times; it prints the wall time and the CPU
// (user, system, with the decompressor processes) of each round and their
// medians. BERTH_GZIP=go picks Go's gzip decoder over igzip.
//
//	go run ./bench/pull/unpack -dir /var/tmp/x BLOB...
//	go run ./bench/pull/unpack -oci ~/.cache/berth-bench/debian-oci-*  # the layers of an OCI layout
//	go run ./bench/pull/unpack -cpuprofile cpu.out -runs 1 BLOB...
//
// The target directories are removed (and the disk synced, outside the
// timing) between rounds, or left in place with -keep. Removing is not
// free for the next round: on ext4 without a journal, the inode allocator
// skips inodes freed in the last minutes, scanning past them on every
// create, so a round right after a removal of the same size pays several
// times the system time of one on a quiet filesystem (perf: recently_deleted
// under ext4_create). Run as root: owners and device nodes are kept.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/archive"
)

func main() {
	dir := flag.String("dir", "", "scratch directory (empty: a temp dir under /var/tmp)")
	oci := flag.String("oci", "", "take the layers of the first manifest of this OCI layout")
	runs := flag.Int("runs", 3, "number of timed rounds")
	serial := flag.Bool("serial", false, "unpack the layers one after the other")
	mode := flag.String("whiteouts", "overlay", "overlay or apply")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed rounds to this file")
	keep := flag.Bool("keep", false, "leave the unpacked trees in place (see below)")
	flag.Parse()
	log.SetFlags(0)

	blobs := flag.Args()
	if *oci != "" {
		l, err := ociLayers(*oci)
		if err != nil {
			log.Fatal(err)
		}
		blobs = append(blobs, l...)
	}
	if len(blobs) == 0 {
		log.Fatal("no layer blobs given")
	}
	opts := archive.ApplyOptions{NoLchown: os.Geteuid() != 0}
	if *mode == "apply" {
		opts.Whiteouts = archive.WhiteoutApply
	}
	scratch := *dir
	if scratch == "" {
		d, err := os.MkdirTemp("/var/tmp", "berth-unpack-")
		if err != nil {
			log.Fatal(err)
		}
		scratch = d
		if !*keep {
			defer os.RemoveAll(d)
		}
	}
	if *keep {
		defer fmt.Printf("kept the unpacked trees in %s\n", scratch)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var walls, users, syss []time.Duration
	for r := range *runs {
		base := filepath.Join(scratch, fmt.Sprint(r))
		unix.Sync()
		u0, s0 := cpu()
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, len(blobs))
		for i, b := range blobs {
			d := filepath.Join(base, fmt.Sprint(i))
			if err := os.MkdirAll(d, 0o755); err != nil {
				log.Fatal(err)
			}
			run := func() { errs[i] = apply(d, b, opts) }
			if *serial {
				run()
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); run() }()
		}
		wg.Wait()
		wall := time.Since(start)
		u1, s1 := cpu()
		for i, err := range errs {
			if err != nil {
				log.Fatalf("%s: %v", blobs[i], err)
			}
		}
		walls, users, syss = append(walls, wall), append(users, u1-u0), append(syss, s1-s0)
		fmt.Printf("round %d: wall %v user %v sys %v\n", r+1, wall.Round(time.Millisecond), (u1 - u0).Round(time.Millisecond), (s1 - s0).Round(time.Millisecond))
		if *keep {
			continue
		}
		if err := os.RemoveAll(base); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("median: wall %v user %v sys %v\n", median(walls), median(users), median(syss))
}

func apply(dir, blob string, opts archive.ApplyOptions) error {
	f, err := os.Open(blob)
	if err != nil {
		return err
	}
	defer f.Close()
	r, _, err := archive.DecompressStream(f)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = archive.Apply(context.Background(), dir, r, opts)
	if err == nil {
		_, err = io.Copy(io.Discard, r)
	}
	return err
}

// cpu is the CPU time of this process and of its waited-for children (the
// igzip decoders).
func cpu() (user, sys time.Duration) {
	for _, who := range []int{unix.RUSAGE_SELF, unix.RUSAGE_CHILDREN} {
		var ru unix.Rusage
		unix.Getrusage(who, &ru)
		user += time.Duration(ru.Utime.Nano())
		sys += time.Duration(ru.Stime.Nano())
	}
	return user, sys
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}

// ociLayers lists the layer blobs of the first manifest of an OCI layout.
func ociLayers(layout string) ([]string, error) {
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
	}
	read := func(p string, v any) error {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, v)
	}
	blob := func(d string) string {
		return filepath.Join(layout, "blobs", strings.Replace(d, ":", "/", 1))
	}
	var idx struct{ Manifests []desc }
	if err := read(filepath.Join(layout, "index.json"), &idx); err != nil {
		return nil, fmt.Errorf("read %s index: %w", layout, err)
	}
	if len(idx.Manifests) == 0 {
		return nil, fmt.Errorf("%s: no manifest", layout)
	}
	var m struct{ Layers []desc }
	if err := read(blob(idx.Manifests[0].Digest), &m); err != nil {
		return nil, fmt.Errorf("read %s manifest: %w", layout, err)
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, blob(l.Digest))
	}
	return out, nil
}
