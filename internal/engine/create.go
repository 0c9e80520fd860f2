package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthproject/berth/internal/containerspec"
	"github.com/berthproject/berth/internal/image"
	"github.com/berthproject/berth/internal/image/progress"
	"github.com/berthproject/berth/internal/reference"
	"github.com/berthproject/berth/internal/shim"
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
	// NetworkingConfig holds the endpoint settings of the network named by
	// the network mode (--ip, --network-alias, --mac-address).
	NetworkingConfig *network.NetworkingConfig
	// CheckPorts refuses host ports that are published or in use now (run:
	// the container starts at once, and a conflict then creates nothing).
	CheckPorts bool
	// Warn is told, once the container exists, of each setting the host
	// cannot apply and that was discarded (Docker's create warnings).
	Warn func(msg string)
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
	if err := validateCreate(o.Config, o.HostConfig); err != nil {
		return nil, err
	}
	warnings, err := adaptHostConfig(o.HostConfig, currentHostSupport())
	if err != nil {
		return nil, err
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
	e.removeUnfinishedCreates(ctx)
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
	if err := e.prepareNetworking(ctx, c, o.NetworkingConfig, o.CheckPorts); err != nil {
		return nil, err
	}
	dir := e.containerDir(c.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ctx := context.WithoutCancel(ctx)
			e.removeOrphanVolumes(ctx, c.ID)
			_ = e.Driver.Remove(ctx, c.ID)
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
	if err := e.createNamedVolumes(ctx, c); err != nil {
		return nil, err
	}
	if err := writeContainer(e, c); err != nil {
		return nil, err
	}
	os.Remove(e.anonVolumesFile(c.ID)) // the record names them now
	e.containerEvent(c, events.ActionCreate, nil)
	if o.Warn != nil {
		for _, w := range warnings {
			o.Warn(w)
		}
	}
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
		// Docker names the image with its default tag: "busybox:latest".
		if r, perr := reference.Parse(ref); perr == nil {
			ref = r.WithDefaultTag().Familiar()
		}
		return fmt.Errorf("%w: %w: %s", ErrNotFound, ErrNoSuchImage, ref)
	}
	return err
}

// removeUnfinishedCreates removes the container directories that have no
// record: Create makes the directory, the layer and the volumes before it
// writes the record, and rm removes the record before the rest, all under
// the names lock, so a directory without a record seen under that lock is
// what a killed create (or rm) left. The anonymous volumes a killed create
// made are removed too: it lists them in the directory before it makes
// them (anonVolumesFile). Call it with the names lock held.
func (e *Engine) removeUnfinishedCreates(ctx context.Context) {
	e.removeOrphanRunDirs(ctx)
	ids, _ := e.listIDs()
	for _, id := range ids {
		if _, err := os.Stat(filepath.Join(e.containerDir(id), "container.json")); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		e.log.Info("removing an unfinished container", "container", id[:12])
		e.unmountRootfs(id)
		e.removeOrphanVolumes(ctx, id)
		e.removeLeftovers(ctx, id)
	}
}

// removeOrphanRunDirs removes the run directories that belong to no
// container and that no monitor uses: an --rm container removed by the
// foreground run that recorded its exit leaves its run directory, the
// runtime's state and the cgroup to its monitor (removeStopped), and a
// monitor killed before it finished leaves them behind. Call it with the
// names lock held (no create makes a container directory meanwhile).
func (e *Engine) removeOrphanRunDirs(ctx context.Context) {
	ents, err := os.ReadDir(filepath.Join(e.opts.State, "containers"))
	if err != nil {
		return
	}
	for _, ent := range ents {
		id := ent.Name()
		if !ent.IsDir() || len(id) != 64 {
			continue
		}
		if _, err := os.Lstat(e.containerDir(id)); !errors.Is(err, os.ErrNotExist) {
			continue // a container's (or unknown: leave it)
		}
		if shim.Alive(e.runDir(id)) {
			continue // its monitor is still at it
		}
		e.log.Info("removing what a removed container's monitor left", "container", id[:12])
		e.deleteRuntimeLeftover(ctx, id)
		e.unmountRootfs(id)
		if mounted(e.rootfsDir(id)) || !e.unmountIDMapped(id) {
			continue // never remove what is below a mount
		}
		if err := os.RemoveAll(e.runDir(id)); err != nil {
			e.log.Warn("remove the runtime directory of a removed container", "container", id[:12], "err", err)
		}
	}
}

// anonVolumesFile lists, one name a line, the anonymous volumes Create
// makes for container id, written before it makes them: the volumes of a
// create killed before it wrote the record can be found and removed.
func (e *Engine) anonVolumesFile(id string) string {
	return filepath.Join(e.containerDir(id), "anon-volumes")
}

// removeOrphanVolumes removes the anonymous volumes listed for a container
// that has no record (see anonVolumesFile). A volume that is not
// anonymous, or that a container uses (its name could have been given to
// -v since), is left alone.
func (e *Engine) removeOrphanVolumes(ctx context.Context, id string) {
	b, err := os.ReadFile(e.anonVolumesFile(id))
	if err != nil {
		return
	}
	for _, name := range strings.Fields(string(b)) {
		v, err := e.readVolume(name)
		if err != nil || !v.Anonymous {
			continue
		}
		if err := e.VolumeRemove(ctx, name, true); err != nil {
			e.log.Info("keep a volume an unfinished container made", "container", id[:12], "volume", name, "err", err)
		}
	}
	os.Remove(e.anonVolumesFile(id))
}

// validateCreate checks at create what Docker's daemon checks there, so
// that no container is made that could never start: the stop signal, the
// CPUs asked for, the network.
func validateCreate(cfg *container.Config, h *container.HostConfig) error {
	if cfg.StopSignal != "" {
		if _, err := ParseSignal(cfg.StopSignal); err != nil {
			return fmt.Errorf("%w: --stop-signal: Invalid signal: %s", ErrInvalid, cfg.StopSignal)
		}
	}
	if err := validateCPUs(&h.Resources); err != nil {
		return err
	}
	if err := validateUserns(h.UsernsMode); err != nil {
		return err
	}
	return validateNetwork(h.NetworkMode)
}

// validateUserns checks --userns: Docker's "" and host, and berth's auto
// and map=C:H:N (podman's). Docker's CLI refuses other values before
// anything is made, with this message.
func validateUserns(m container.UsernsMode) error {
	switch s := string(m); {
	case s == "", s == "host", s == "auto":
		return nil
	case strings.HasPrefix(s, "map="):
		if _, err := containerspec.ParseIDMap(strings.TrimPrefix(s, "map=")); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return nil
	}
	return fmt.Errorf("%w: --userns: invalid USER mode", ErrInvalid)
}

// validateCPUs checks --cpus against the CPUs there are, and --cpuset-cpus
// and --cpuset-mems against the host's, with Docker's messages.
func validateCPUs(r *container.Resources) error {
	if n := goruntime.NumCPU(); r.NanoCPUs > int64(n)*1e9 {
		return fmt.Errorf("%w: --cpus: Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", ErrInvalid, n, n)
	}
	for _, set := range []struct {
		flag, value, file, fallback, what string
	}{
		{"--cpuset-cpus", r.CpusetCpus, "cpuset.cpus", "/sys/devices/system/cpu/online", "CPUs"},
		{"--cpuset-mems", r.CpusetMems, "cpuset.mems", "/sys/devices/system/node/online", "memory nodes"},
	} {
		if set.value == "" {
			continue
		}
		want, err := parseList(set.value)
		if err != nil {
			return fmt.Errorf("%w: %s: Invalid value %s for cpuset %s", ErrInvalid, set.flag, set.value, strings.TrimPrefix(set.file, "cpuset."))
		}
		avail := hostCpuset(set.file, set.fallback)
		have, err := parseList(avail)
		if err != nil {
			continue // unknown: the runtime will tell
		}
		for n := range want {
			if !have[n] {
				return fmt.Errorf("%w: %s: Requested %s are not available - requested %s, available: %s", ErrInvalid, set.flag, set.what, set.value, avail)
			}
		}
	}
	return nil
}

// hostCpuset is the list of CPUs (file "cpuset.cpus") or memory nodes
// ("cpuset.mems") containers may use: the root cpuset's, else what the
// kernel has online.
func hostCpuset(file, fallback string) string {
	candidates := []string{
		filepath.Join("/sys/fs/cgroup/cpuset", file),       // v1
		filepath.Join("/sys/fs/cgroup", file+".effective"), // v2
		fallback,
	}
	if file == "cpuset.mems" {
		candidates = append(candidates, "") // no NUMA information: node 0
	}
	for _, p := range candidates {
		if p == "" {
			return "0"
		}
		if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

// parseList reads a kernel list such as "0-3,8,10-11".
func parseList(s string) (map[int]bool, error) {
	out := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("invalid list %q", s)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("invalid list %q", s)
			}
		}
		if b-a > 1<<16 {
			return nil, fmt.Errorf("invalid list %q", s)
		}
		for n := a; n <= b; n++ {
			out[n] = true
		}
	}
	return out, nil
}

// validateNetwork checks the form of --network; whether a network of that
// name exists is prepareNetworking's question.
func validateNetwork(m container.NetworkMode) error {
	if mode := string(m); strings.HasPrefix(mode, "container:") && strings.TrimPrefix(mode, "container:") == "" {
		return fmt.Errorf("%w: --network container: needs a container name or id", ErrInvalid)
	}
	return nil
}

// driverName is the name of the snapshot driver in use.
func (e *Engine) driverName() string {
	b, err := os.ReadFile(e.opts.Root + "/driver")
	if err != nil {
		return ""
	}
	return string(b[:len(b)-1])
}

// expandVolumesFrom adds to the new container's mounts those of the
// containers named by --volumes-from NAME[:ro|rw], as Docker does at
// create: their binds, named volumes and anonymous volumes (the image's
// VOLUMEs too), at the same destinations, read-only where they are
// read-only or with :ro. The container's own mounts win over them on the
// same destination. Tmpfs mounts are not shared.
func (e *Engine) expandVolumesFrom(ctx context.Context, h *container.HostConfig) error {
	own := map[string]bool{}
	for _, b := range h.Binds {
		parts := strings.Split(b, ":")
		own[parts[min(1, len(parts)-1)]] = true
	}
	for _, m := range h.Mounts {
		own[m.Target] = true
	}
	for dst := range h.Tmpfs {
		own[dst] = true
	}
	var binds []string
	var mounts []mount.Mount
	taken := map[string]bool{}
	claim := func(dst string) bool {
		if own[dst] || taken[dst] {
			return false
		}
		taken[dst] = true
		return true
	}
	for _, from := range h.VolumesFrom {
		ref, mode, _ := strings.Cut(from, ":")
		if mode != "" && mode != "ro" && mode != "rw" {
			return fmt.Errorf("%w: --volumes-from %s: invalid mode %q (want ro or rw)", ErrInvalid, from, mode)
		}
		src, err := e.Lookup(ctx, ref)
		if err != nil {
			return fmt.Errorf("--volumes-from %s: %w", from, err)
		}
		for _, b := range src.HostConfig.Binds {
			parts := strings.Split(b, ":")
			if len(parts) == 1 { // an anonymous volume: its name below
				continue
			}
			if claim(parts[1]) {
				binds = append(binds, bindMode(b, mode))
			}
		}
		for _, m := range src.HostConfig.Mounts {
			if m.Type == mount.TypeTmpfs {
				continue
			}
			if m.Type == mount.TypeVolume && m.Source == "" {
				if m.Source = src.AnonVolumes[m.Target]; m.Source == "" {
					continue
				}
				m.VolumeOptions = nil // the volume exists and has its content
			}
			if mode == "ro" {
				m.ReadOnly = true
			}
			if claim(m.Target) {
				mounts = append(mounts, m)
			}
		}
		dsts := make([]string, 0, len(src.AnonVolumes))
		for dst := range src.AnonVolumes {
			dsts = append(dsts, dst)
		}
		sort.Strings(dsts)
		for _, dst := range dsts {
			if claim(dst) {
				binds = append(binds, bindMode(src.AnonVolumes[dst]+":"+dst, mode))
			}
		}
	}
	h.Binds = append(binds, h.Binds...)
	h.Mounts = append(mounts, h.Mounts...)
	return nil
}

// bindMode applies --volumes-from's mode to a -v SRC:DST[:OPTIONS] spec:
// ro makes it read-only; rw (or none) keeps it as it is, as Docker does
// (a read-only mount stays read-only).
func bindMode(b, mode string) string {
	if mode != "ro" {
		return b
	}
	parts := strings.SplitN(b, ":", 3)
	var opts []string
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			if o != "rw" && o != "ro" && o != "" {
				opts = append(opts, o)
			}
		}
	}
	return parts[0] + ":" + parts[1] + ":" + strings.Join(append(opts, "ro"), ",")
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
	// The names first, written down before any volume exists (see
	// anonVolumesFile).
	out := map[string]string{}
	var names []string
	for _, dst := range want {
		if _, ok := out[dst]; ok {
			continue
		}
		out[dst] = newID()
		names = append(names, out[dst])
	}
	if err := writeFileAtomic(e.anonVolumesFile(c.ID), []byte(strings.Join(names, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	for _, name := range names {
		if _, err := e.VolumeCreate(ctx, name, map[string]string{anonymousLabel: ""}, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}
