package engine

import (
	"context"
	"fmt"
	"io"
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
	return e.Driver.Changes(ctx, c.ID)
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
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return nil, err
	}
	if o.Pause && c.State.Status == StatusRunning {
		if err := e.runtime(ctx, "pause", c.ID); err == nil {
			defer e.runtime(context.WithoutCancel(ctx), "resume", c.ID)
		}
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(e.Driver.Diff(ctx, c.ID, pw, archive.DiffOptions{}))
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
