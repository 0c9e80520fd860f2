package engine

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/berthproject/berth/internal/archive"
	"github.com/berthproject/berth/internal/image"
)

// Diff lists what the container changed in its image's filesystem
// (`docker diff`: A added, C changed, D deleted).
func (e *Engine) Diff(ctx context.Context, ref string) ([]archive.Change, error) {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return nil, err
	}
	chs, err := e.Driver.Changes(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	return withoutEtcMounts(chs), nil
}

// etcMounts are the files berth bind-mounts into every container: its
// /etc/hostname, /etc/hosts and /etc/resolv.conf. When the image lacks
// them the runtime creates their mount points in the container's layer.
// Docker keeps these in an init layer under the container's, so they are
// no change of the container's: diff and commit leave them out, and their
// /etc when nothing else in it changed. (What the container writes to them
// goes to the mounted files, never to the layer.)
var etcMounts = map[string]bool{"/etc/hostname": true, "/etc/hosts": true, "/etc/resolv.conf": true}

// mountDirs are the directories the runtime creates in the container's
// layer when the image lacks them: the mount points /dev, /proc and /sys
// (Docker's init layer has them too), and /etc for etcMounts. Each is left
// out of diff and commit unless something else in it changed.
var mountDirs = map[string]bool{"/dev": true, "/etc": true, "/proc": true, "/sys": true}

// mountDirOf is the entry of mountDirs that p is under ("" if none).
func mountDirOf(p string) string {
	top, _, under := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if !under || !mountDirs["/"+top] {
		return ""
	}
	return "/" + top
}

// withoutEtcMounts returns chs without the mount points of etcMounts and
// the mountDirs nothing else changed in.
func withoutEtcMounts(chs []archive.Change) []archive.Change {
	out := make([]archive.Change, 0, len(chs))
	dirAt := map[string]int{} // index in out of the change of each mountDirs entry
	used := map[string]bool{} // mountDirs with another change in them
	for _, ch := range chs {
		switch {
		case etcMounts[ch.Path] && ch.Kind != archive.ChangeDelete:
			continue
		case mountDirs[ch.Path]:
			dirAt[ch.Path] = len(out)
		case mountDirOf(ch.Path) != "":
			used[mountDirOf(ch.Path)] = true
		}
		out = append(out, ch)
	}
	drop := map[int]bool{}
	for d, i := range dirAt {
		if !used[d] && out[i].Kind != archive.ChangeDelete {
			drop[i] = true
		}
	}
	if len(drop) == 0 {
		return out
	}
	kept := out[:0]
	for i, ch := range out {
		if !drop[i] {
			kept = append(kept, ch)
		}
	}
	return kept
}

// filterEtcMounts copies the layer tar r to w without the entries of
// etcMounts, and without the mountDirs entries nothing else in the layer is
// under (see etcMounts and mountDirs).
func filterEtcMounts(r io.Reader, w io.Writer) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	held := map[string]*tar.Header{} // mountDirs entries, written before the first other entry under them
	for {
		h, err := tr.Next()
		if err == io.EOF {
			_, _ = io.Copy(io.Discard, r) // whatever pads the end: the writer must not block
			break
		}
		if err != nil {
			return err
		}
		name := path.Clean("/" + h.Name)
		switch {
		case etcMounts[name] && h.Typeflag != tar.TypeDir:
			continue
		case mountDirs[name] && h.Typeflag == tar.TypeDir:
			held[name] = h
			continue
		case held[mountDirOf(name)] != nil:
			d := mountDirOf(name)
			if err := tw.WriteHeader(held[d]); err != nil {
				return err
			}
			delete(held, d)
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	return tw.Close()
}

// CommitOptions are the inputs of Commit besides the container.
type CommitOptions struct {
	Ref     string   // REPO[:TAG] of the new image ("" leaves it untagged)
	Author  string   // -a
	Comment string   // -m
	Changes []string // -c Dockerfile instructions
	Pause   bool     // freeze the container while its layer is read (Docker's default)
}

// Commit makes an image of the container: its image plus one layer with
// the container's changes, and the container's run configuration.
func (e *Engine) Commit(ctx context.Context, ref string, o CommitOptions) (*image.Image, error) {
	c, err := e.lookupSettled(ctx, ref)
	if err != nil {
		return nil, err
	}
	if o.Pause && c.State.Status == StatusRunning {
		if err := e.runtime(ctx, "pause", c.ID); err == nil {
			defer e.runtime(context.WithoutCancel(ctx), "resume", c.ID)
		}
	}
	lr, lw := io.Pipe()
	go func() {
		lw.CloseWithError(e.Driver.Diff(ctx, c.ID, lw, archive.DiffOptions{}))
	}()
	defer lr.Close()
	pr, pw := io.Pipe()
	go func() {
		err := filterEtcMounts(lr, pw)
		lr.CloseWithError(err) // stops the diff when the filter failed
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	img, err := e.Images.Commit(ctx, image.CommitOptions{
		Base: c.Image, Layer: pr, Config: runConfig(c.Config), Changes: o.Changes, Ref: o.Ref,
		Author: o.Author, Comment: o.Comment, ContainerID: c.ID,
		CreatedBy: strings.Join(append(append([]string{}, c.Config.Entrypoint...), c.Config.Cmd...), " "),
	})
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", c.Name, err)
	}
	e.containerEvent(c, events.ActionCommit, map[string]string{"comment": o.Comment, "imageID": string(img.ID)})
	return img, nil
}

// runConfig is the image run configuration Docker records at commit: the
// container's own (merged) configuration.
func runConfig(c *container.Config) *v1.Config {
	if c == nil {
		return nil
	}
	rc := &v1.Config{
		User: c.User, Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd, WorkingDir: c.WorkingDir,
		Labels: c.Labels, StopSignal: c.StopSignal, Hostname: c.Hostname, Domainname: c.Domainname,
	}
	if len(c.ExposedPorts) > 0 {
		rc.ExposedPorts = map[string]struct{}{}
		for p := range c.ExposedPorts {
			rc.ExposedPorts[string(p.String())] = struct{}{}
		}
	}
	if len(c.Volumes) > 0 {
		rc.Volumes = c.Volumes
	}
	return rc
}

// Export writes the container's whole filesystem as a tar (`docker export`).
func (e *Engine) Export(ctx context.Context, ref string, w io.Writer) error {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return err
	}
	root, release, err := e.readRootfs(ctx, c)
	if err != nil {
		return err
	}
	defer release()
	e.containerEvent(c, events.ActionExport, nil)
	return archive.Diff(ctx, root, w, archive.DiffOptions{})
}
