package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/berthproject/berth/internal/image"
)

// removeOptions are the flags of `rmi` / `image rm`.
type removeOptions struct {
	force, noPrune bool
}

// removeImages untags or deletes each image, printing Docker's
// "Untagged:"/"Deleted:" lines; it goes on past failures and reports them all.
func removeImages(ctx context.Context, s *image.Store, names []string, o removeOptions, out, errOut io.Writer) error {
	var failed []error
	for _, n := range names {
		rep, err := s.Remove(ctx, n, image.RemoveOptions{Force: o.force, NoPrune: o.noPrune})
		if rep != nil {
			for _, u := range rep.Untagged {
				fmt.Fprintln(out, "Untagged:", u)
			}
			for _, d := range rep.Deleted {
				fmt.Fprintln(out, "Deleted:", d)
			}
		}
		if err != nil {
			failed = append(failed, noSuchImage(n, err))
		}
	}
	return reportAll(errOut, failed)
}

// pruneOptions are the flags of `image prune`.
type pruneOptions struct {
	all, force bool
}

// pruneImages removes dangling images (all: every image no container uses)
// after asking, unless force.
func pruneImages(ctx context.Context, s *image.Store, o pruneOptions, in io.Reader, out io.Writer) error {
	if !o.force {
		warning := "WARNING! This will remove all dangling images."
		if o.all {
			warning = "WARNING! This will remove all images without at least one container associated to them."
		}
		if !confirm(in, out, warning) {
			fmt.Fprintln(out, "Total reclaimed space: 0B")
			return nil
		}
	}
	rep, err := s.Prune(ctx, image.PruneOptions{All: o.all})
	if rep != nil {
		if len(rep.Untagged)+len(rep.Deleted) > 0 {
			fmt.Fprintln(out, "Deleted Images:")
			for _, u := range rep.Untagged {
				fmt.Fprintln(out, "untagged:", u)
			}
			for _, d := range rep.Deleted {
				fmt.Fprintln(out, "deleted:", d)
			}
			fmt.Fprintln(out)
		}
		if err == nil {
			fmt.Fprintln(out, "Total reclaimed space:", humanSize(rep.SpaceReclaimed, 4))
		}
	}
	return err
}

// confirm asks a yes/no question; anything but y/yes (or end of input) is no.
func confirm(in io.Reader, out io.Writer, warning string) bool {
	fmt.Fprintf(out, "%s\nAre you sure you want to continue? [y/N] ", warning)
	line, _ := bufio.NewReader(in).ReadString('\n')
	ans := strings.ToLower(strings.TrimSpace(line))
	if ans == "" {
		fmt.Fprintln(out)
	}
	return ans == "y" || ans == "yes"
}

// dfOptions are the flags of `system df`.
type dfOptions struct {
	verbose bool
	format  string
}

const dfTable = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"

var dfHeader = map[string]string{
	"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE",
}

const dfImagesTable = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}"

// diskUsage prints `system df`: the images' share of the disk (containers,
// volumes and build cache are other parts of the engine and add their rows).
func diskUsage(ctx context.Context, s *image.Store, o dfOptions, out io.Writer) error {
	du, err := s.DiskUsage(ctx)
	if err != nil {
		return err
	}
	if !o.verbose {
		fm := formatter{Format: o.format, Default: dfTable, Header: dfHeader}
		return fm.Write(out, []any{dfImagesRow(du)})
	}
	all, err := s.List(ctx)
	if err != nil {
		return err
	}
	byID := map[string]image.Summary{}
	for _, img := range all {
		byID[img.ID.String()] = img
	}
	fmt.Fprint(out, "Images space usage:\n\n")
	var rows []any
	now := time.Now()
	for _, iu := range du.PerImage {
		sum := byID[iu.ID.String()]
		for _, r := range imageRows([]image.Summary{sum}, true, false, false, now) {
			m := r.(map[string]string)
			m["Size"] = humanSize(iu.Size, 4)
			m["SharedSize"] = humanSize(iu.SharedSize, 4)
			m["UniqueSize"] = humanSize(iu.UniqueSize, 4)
			m["Containers"] = strconv.FormatInt(iu.Containers, 10)
			rows = append(rows, m)
		}
	}
	fm := formatter{Format: o.format, Default: dfImagesTable, Header: imagesHeader}
	return fm.Write(out, rows)
}

// dfImagesRow is the "Images" row of `system df`. Size is what the images
// take on disk: unpacked layers plus the content store's (compressed) blobs;
// reclaimable is what removing every image no container uses would free
// (the store counts layers only; with no image in use, the blobs go too).
func dfImagesRow(du *image.DiskUsage) map[string]string {
	size := du.LayersSize + du.BlobsSize
	reclaimable := du.Reclaimable
	if du.ActiveImages == 0 {
		reclaimable = size
	}
	reclaim := humanSize(reclaimable, 4)
	if size > 0 {
		reclaim = fmt.Sprintf("%s (%d%%)", reclaim, reclaimable*100/size)
	}
	return map[string]string{
		"Type": "Images", "TotalCount": strconv.Itoa(du.Images), "Active": strconv.Itoa(du.ActiveImages),
		"Size": humanSize(size, 4), "Reclaimable": reclaim,
	}
}
