package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthproject/berth/internal/image"
	"github.com/berthproject/berth/internal/image/progress"
	"github.com/berthproject/berth/internal/snapshot"
)

// Pull policies of create and run (Docker's --pull).
const (
	PullMissing = "missing"
	PullAlways  = "always"
	PullNever   = "never"
)

// CreateOptions are the inputs of Create. Config.Image names the image.
type CreateOptions struct {
	Name       string
	Config     *container.Config
	HostConfig *container.HostConfig
	Pull       string        // PullMissing (default), PullAlways, PullNever
	Progress   progress.Func // pull progress, when a pull happens
	Platform   string
}

// Create makes a container: its record and its writable layer on the
// image. Nothing runs until Start.
func (e *Engine) Create(ctx context.Context, o CreateOptions) (_ *Container, err error) {
	if o.Config == nil || o.Config.Image == "" {
		return nil, fmt.Errorf("%w: an image is required", ErrInvalid)
	}
	if o.HostConfig == nil {
		o.HostConfig = &container.HostConfig{}
	}
	if o.Name != "" && !validName(o.Name) {
		return nil, fmt.Errorf("%w: Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", ErrInvalid, o.Name)
	}
	img, err := e.ensureImage(ctx, o.Config.Image, o.Pull, o.Platform, o.Progress)
	if err != nil {
		return nil, err
	}

	lk, err := e.lockNames()
	if err != nil {
		return nil, err
	}
	defer lk.Close()
	name := o.Name
	if name == "" {
		name = e.generateName()
	} else if id, taken := e.nameTaken(name); taken {
		return nil, fmt.Errorf("%w: Conflict. The container name \"/%s\" is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", ErrConflict, name, id)
	}
	if err := e.expandVolumesFrom(ctx, o.HostConfig); err != nil {
		return nil, err
	}
	imgCfg, err := e.Images.Config(ctx, img.ID.String())
	if err != nil {
		return nil, err
	}
	ic := imageConfig(imgCfg.Config)
	cfg := mergeImageConfig(o.Config, &ic)
	c := &Container{
		ID: newID(), Name: name, Created: time.Now().UTC(), Image: img.ID, ImageName: o.Config.Image,
		Config: cfg, HostConfig: o.HostConfig, Driver: e.driverName(),
		State: State{Status: StatusCreated},
	}
	dir := e.containerDir(c.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = e.Driver.Remove(context.WithoutCancel(ctx), c.ID)
			os.RemoveAll(dir)
		}
	}()
	if _, err := e.Driver.Prepare(ctx, c.ID, string(img.ChainID()), snapshot.WithLabels(map[string]string{"berth.container": c.ID})); err != nil {
		return nil, fmt.Errorf("prepare the container's layer: %w", err)
	}
	if c.Config.Hostname == "" && (c.HostConfig.UTSMode == "" || c.HostConfig.UTSMode == "private") {
		// Not with --uts host or container:X: the container shows that
		// namespace's name, and a hostname of its own is a conflict.
		c.Config.Hostname = c.ID[:12]
	}
	if c.AnonVolumes, err = e.createAnonVolumes(ctx, c); err != nil {
		return nil, err
	}
	if err := writeContainer(e, c); err != nil {
		return nil, err
	}
	e.containerEvent(c, events.ActionCreate, nil)
	return c, nil
}

// mergeImageConfig fills the container's configuration from its image's,
// the way Docker does at create: the image's environment under the
// container's, its command unless the container sets one (a container
// entrypoint resets the image's command), its working directory, user,
// labels, ports, volumes and stop signal where the container has none.
func mergeImageConfig(c *container.Config, img *v1.ImageConfig) *container.Config {
	out := *c
	out.Env = mergeEnv(img.Env, c.Env)
	if c.Entrypoint == nil {
		out.Entrypoint = img.Entrypoint
		if len(c.Cmd) == 0 {
			out.Cmd = img.Cmd
		}
	}
	if out.WorkingDir == "" {
		out.WorkingDir = img.WorkingDir
	}
	if out.User == "" {
		out.User = img.User
	}
	if out.StopSignal == "" {
		out.StopSignal = img.StopSignal
	}
	if len(img.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range img.Labels {
			labels[k] = v
		}
		for k, v := range c.Labels {
			labels[k] = v
		}
		out.Labels = labels
	}
	if len(img.ExposedPorts) > 0 {
		ports := network.PortSet{}
		for p := range img.ExposedPorts {
			if pp, err := network.ParsePort(p); err == nil {
				ports[pp] = struct{}{}
			}
		}
		for p := range c.ExposedPorts {
			ports[p] = struct{}{}
		}
		out.ExposedPorts = ports
	}
	if len(img.Volumes) > 0 {
		vols := map[string]struct{}{}
		for v := range img.Volumes {
			vols[v] = struct{}{}
		}
		for v := range c.Volumes {
			vols[v] = struct{}{}
		}
		out.Volumes = vols
	}
	return &out
}

// mergeEnv overlays KEY=value lists, later lists winning per key.
func mergeEnv(lists ...[]string) []string {
	var out []string
	idx := map[string]int{}
	for _, l := range lists {
		for _, kv := range l {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := idx[k]; ok {
				out[i] = kv
				continue
			}
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// ensureImage finds the image, pulling it when the policy says so.
func (e *Engine) ensureImage(ctx context.Context, ref, policy, platform string, pf progress.Func) (*image.Image, error) {
	if policy == "" {
		policy = PullMissing
	}
	switch policy {
	case PullMissing, PullAlways, PullNever:
	default:
		return nil, fmt.Errorf("%w: --pull: unknown policy %q (want missing, always or never)", ErrInvalid, policy)
	}
	if policy != PullAlways {
		id, err := e.Images.Resolve(ctx, ref)
		if err == nil {
			return e.Images.Image(ctx, id)
		}
		if !errors.Is(err, image.ErrNotFound) || policy == PullNever {
			return nil, imageError(ref, err)
		}
	}
	opts := image.PullOptions{Progress: pf, Platform: platform}
	img, err := e.Images.Pull(ctx, ref, opts)
	if err != nil {
		return nil, err
	}
	return img, nil
}

func imageError(ref string, err error) error {
	if errors.Is(err, image.ErrNotFound) {
		return fmt.Errorf("%w: No such image: %s", ErrNotFound, ref)
	}
	return err
}

// driverName is the name of the snapshot driver in use.
func (e *Engine) driverName() string {
	b, err := os.ReadFile(e.opts.Root + "/driver")
	if err != nil {
		return ""
	}
	return string(b[:len(b)-1])
}

// expandVolumesFrom copies the mounts of the containers named by
// --volumes-from NAME[:ro|rw] into the new container's own, as Docker
// does at create.
func (e *Engine) expandVolumesFrom(ctx context.Context, h *container.HostConfig) error {
	for _, from := range h.VolumesFrom {
		ref, mode, _ := strings.Cut(from, ":")
		if mode != "" && mode != "ro" && mode != "rw" {
			return fmt.Errorf("%w: --volumes-from %s: mode must be ro or rw", ErrInvalid, from)
		}
		src, err := e.Lookup(ctx, ref)
		if err != nil {
			return fmt.Errorf("--volumes-from %s: %w", from, err)
		}
		for _, b := range src.HostConfig.Binds {
			parts := strings.Split(b, ":")
			if len(parts) < 2 {
				continue
			}
			if mode != "" {
				b = parts[0] + ":" + parts[1] + ":" + mode
			}
			h.Binds = append(h.Binds, b)
		}
		for _, m := range src.HostConfig.Mounts {
			if m.Type == mount.TypeTmpfs {
				continue
			}
			if mode != "" {
				m.ReadOnly = mode == "ro"
			}
			h.Mounts = append(h.Mounts, m)
		}
	}
	h.VolumesFrom = nil
	return nil
}

// createAnonVolumes makes the container's anonymous volumes: -v /dst,
// --mount type=volume without a source, and the image's VOLUMEs that no
// other mount covers.
func (e *Engine) createAnonVolumes(ctx context.Context, c *Container) (map[string]string, error) {
	covered := map[string]bool{}
	var want []string
	for _, b := range c.HostConfig.Binds {
		parts := strings.Split(b, ":")
		if len(parts) == 1 {
			want = append(want, parts[0])
		} else {
			covered[parts[1]] = true
		}
	}
	for _, m := range c.HostConfig.Mounts {
		if m.Type == mount.TypeVolume && m.Source == "" {
			want = append(want, m.Target)
		} else {
			covered[m.Target] = true
		}
	}
	for dst := range c.HostConfig.Tmpfs {
		covered[dst] = true
	}
	for dst := range c.Config.Volumes {
		if !covered[dst] {
			want = append(want, dst)
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, dst := range want {
		if _, ok := out[dst]; ok {
			continue
		}
		v, err := e.VolumeCreate(ctx, "", map[string]string{anonymousLabel: ""}, nil)
		if err != nil {
			return nil, err
		}
		out[dst] = v.Name
	}
	return out, nil
}
