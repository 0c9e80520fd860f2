package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	ggcr "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/containerspec"
	"github.com/berthproject/berth/internal/fastjson"
	"github.com/berthproject/berth/internal/fsroot"
	"github.com/berthproject/berth/internal/shim"
	"github.com/berthproject/berth/internal/units"
)

// StartOptions tune Start.
type StartOptions struct {
	// Attach, when set, is called once the container exists and before its
	// process runs, with the monitor's directory: a foreground `run`
	// connects to the output there so that nothing is missed.
	Attach func(dir string) error
}

// Start runs a created or stopped container's process under its monitor.
// When the process cannot be started, the container stays as it was, with
// Docker's exit code (127 for a missing command, 126 for one that cannot
// be run, else 128) and the error in its state; an --rm container is
// removed.
func (e *Engine) Start(ctx context.Context, ref string, o StartOptions) error {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return err
	}
	failed, err := e.start(ctx, c.ID, o)
	if failed != nil && failed.HostConfig.AutoRemove {
		// After the container's lock is released: removal takes the
		// names lock, which Create holds while it looks containers up.
		ctx := context.WithoutCancel(ctx)
		if rerr := e.removeStopped(ctx, failed); rerr != nil {
			e.log.Warn("remove the --rm container that failed to start", "container", failed.ID[:12], "err", rerr)
		}
		for _, name := range failed.AnonVolumes {
			_ = e.VolumeRemove(ctx, name, true)
		}
	}
	return err
}

// start starts the container id under its lock. On failure it undoes what
// it did, records the failure and returns the container (for the caller
// to remove an --rm one).
func (e *Engine) start(ctx context.Context, id string, o StartOptions) (failed *Container, err error) {
	t0 := time.Now()
	step := func(what string) { e.log.Debug("start", "step", what, "elapsed", time.Since(t0)) }
	lk, err := e.lockContainer(id)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: No such container: %s", ErrNotFound, id)
		}
		return nil, err
	}
	defer lk.Close()
	c, err := readContainer(e, id)
	if err != nil {
		return nil, err
	}
	switch c.State.Status {
	case StatusRunning, StatusPaused, StatusRestarting:
		return nil, nil // Docker: starting a running container is not an error
	case StatusRemoving, StatusDead:
		return nil, fmt.Errorf("%w: container %s is %s", ErrConflict, c.Name, c.State.Status)
	}
	dir := e.runDir(c.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if e.startMarked(c.ID) {
		e.undoStart(ctx, c) // a start before this one was interrupted
	}
	if err := e.checkStart(ctx, c); err != nil { // no rm under way, the previous monitor gone
		return nil, err
	}
	if err := e.markStart(c.ID); err != nil {
		return nil, err
	}
	defer e.unmarkStart(c.ID) // after the outcome is recorded (defers run last in, first out)
	// A previous run of this container may have left its files.
	for _, f := range []string{"exit.json", "init.pid", "shim.pid", "stopped", "attach.sock", "control.sock", "console.sock"} {
		os.Remove(filepath.Join(dir, f))
	}
	e.deleteRuntimeLeftover(ctx, c.ID)
	defer func() {
		if err != nil {
			e.undoStart(ctx, c)
			c.State.ExitCode = startExitCode(err.Error())
			c.State.Error = err.Error()
			if werr := writeContainer(e, c); werr != nil {
				e.log.Warn("record the failed start", "container", c.ID[:12], "err", werr)
			}
			failed = c
		}
	}()

	step("looked up")
	if _, err := e.allocateIDMap(c); err != nil { // --userns: the ids the rootfs is mapped to
		return nil, err
	}
	rootfs, err := e.mountRootfs(ctx, c.ID, c.HostConfig.AutoRemove)
	if err != nil {
		return nil, err
	}
	step("rootfs mounted")
	if err := e.connectNetworks(ctx, c); err != nil { // undone by undoStart on failure
		return nil, fmt.Errorf("start container %s: %w", c.Name, err)
	}
	step("network connected")
	if !c.State.StartedAt.IsZero() { // started before: linking containers may follow its new address
		e.updateLinkers(ctx, c)
	}
	spec, err := e.renderSpec(ctx, c, rootfs)
	if err != nil {
		return nil, err
	}
	if err := e.idmapMounts(c, spec); err != nil { // --userns: volumes and :idmap binds
		return nil, err
	}
	step("spec rendered")
	b, err := fastjson.Marshal(spec)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		return nil, err
	}
	logMax, logFiles, err := logLimits(c.HostConfig.LogConfig)
	if err != nil {
		return nil, err
	}
	self := siblingBinary("berth")
	if exe, err := os.Executable(); err == nil {
		self = exe
	}
	startID := newID()[:16]
	so := shim.Options{
		Binary:      siblingBinary("berth-shim"),
		ID:          c.ID,
		Bundle:      dir,
		Runtime:     e.runtimePath(),
		RuntimeRoot: e.runtimeRoot(),
		Dir:         dir,
		Tty:         c.Config.Tty,
		Stdin:       c.Config.OpenStdin,
		StdinOnce:   c.Config.StdinOnce,
		Restart:     restartFlag(c.HostConfig.RestartPolicy),
		OOMFile:     oomFile(spec.Linux.CgroupsPath),
		ExitCommand: self,
		// The start's id binds the exit command to this start's runs (see Cleanup).
		ExitArgs: []string{"--root", e.opts.Root, "--state", e.opts.State, "container", "cleanup", "--start-id", startID, c.ID},
	}
	if c.HostConfig.LogConfig.Type != "none" {
		so.Log, so.LogMaxSize, so.LogMaxFiles = e.logPath(c.ID), logMax, logFiles
	}
	so.BeforeStart = o.Attach
	step("bundle written")
	pid, err := shim.Start(so)
	step("monitor reported")
	if err != nil {
		return nil, fmt.Errorf("start container %s: %w", c.Name, err)
	}
	e.containerEvent(c, events.ActionStart, nil)
	shimPid, _ := shim.Pid(dir)
	c.State = State{
		Status: StatusRunning, Pid: pid, StartedAt: time.Now().UTC(), ShimPid: shimPid,
		RestartCount: c.State.RestartCount, StartID: startID,
	}
	return nil, writeContainer(e, c)
}

// startExitCode is the exit code Docker records for a container whose
// process could not be started, from the runtime's message: 127 when the
// command (or a mount source) does not exist, 126 when it may not be run,
// else 128.
func startExitCode(msg string) int {
	msg = strings.ToLower(msg)
	switch {
	case strings.Contains(msg, "permission denied"):
		return 126
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"),
		strings.Contains(msg, "not a directory"):
		return 127
	}
	return 128
}

// renderSpec gathers what the spec depends on and renders it.
func (e *Engine) renderSpec(ctx context.Context, c *Container, rootfs string) (*specs.Spec, error) {
	cfg, err := e.Images.Config(ctx, c.Image.String())
	if err != nil {
		return nil, err
	}
	etc, err := e.writeEtcFiles(ctx, c)
	if err != nil {
		return nil, err
	}
	in := &containerspec.Input{
		ID:          c.ID,
		Image:       imageConfig(cfg.Config),
		Config:      c.Config,
		Host:        c.HostConfig,
		Rootfs:      rootfs,
		Passwd:      readInRoot(rootfs, "/etc/passwd"),
		Group:       readInRoot(rootfs, "/etc/group"),
		CgroupsPath: cgroupsPath(c),
		EtcFiles:    etc,
		Namespaces:  map[specs.LinuxNamespaceType]string{},
	}
	if c.HostConfig.Init != nil && *c.HostConfig.Init {
		in.InitPath = siblingBinary("berth-init")
	}
	e.hostFacts(c, in)
	if bridgeMode(c.HostConfig) {
		if _, err := os.Lstat(e.netnsPath(c.ID)); err == nil {
			in.Namespaces[specs.NetworkNamespace] = e.netnsPath(c.ID)
		}
	}
	if err := e.resolveNamespaces(ctx, c, in); err != nil {
		return nil, err
	}
	if err := e.resolveVolumes(ctx, c, in); err != nil {
		return nil, err
	}
	spec, err := containerspec.Generate(in)
	if err != nil {
		return nil, err
	}
	if err := e.addLinkEnv(ctx, c, spec); err != nil {
		return nil, err
	}
	return spec, e.netSysctlsFromHost(c, spec)
}

// cgroupsPath is the container's cgroup: under --cgroup-parent, else /berth.
func cgroupsPath(c *Container) string {
	parent := c.HostConfig.CgroupParent
	if parent == "" {
		parent = "/berth"
	}
	if !strings.HasPrefix(parent, "/") {
		parent = "/" + parent
	}
	return filepath.Join(parent, c.ID)
}

// oomFile is the cgroup file whose oom_kill count tells whether the kernel
// killed the container for lack of memory.
func oomFile(path string) string {
	layout, err := cgroupLayout()
	if err != nil {
		return ""
	}
	if m, ok := layout.V1["memory"]; ok {
		return filepath.Join(m.Dir, path, "memory.oom_control")
	}
	if layout.Unified != nil {
		return filepath.Join(layout.Unified.Dir, path, "memory.events")
	}
	return ""
}

func restartFlag(p container.RestartPolicy) string {
	switch p.Name {
	case container.RestartPolicyOnFailure:
		if p.MaximumRetryCount > 0 {
			return "on-failure:" + strconv.Itoa(p.MaximumRetryCount)
		}
		return "on-failure"
	case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		return string(p.Name)
	}
	return "no"
}

// logLimits reads --log-opt max-size and max-file (Docker's json-file
// options); rotation is on by default: 10 MiB, 3 files.
func logLimits(lc container.LogConfig) (int64, int, error) {
	switch lc.Type {
	case "", "json-file", "none":
	default:
		return 0, 0, fmt.Errorf("%w: --log-driver: %q is not supported (json-file or none)", ErrInvalid, lc.Type)
	}
	size, files := int64(10<<20), 3
	if v := lc.Config["max-size"]; v != "" {
		n, err := units.RAMInBytes(v)
		if err != nil || n <= 0 {
			return 0, 0, fmt.Errorf("%w: --log-opt max-size=%s: not a size", ErrInvalid, v)
		}
		size = n
	}
	if v := lc.Config["max-file"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, fmt.Errorf("%w: --log-opt max-file=%s: not a positive number", ErrInvalid, v)
		}
		files = n
	}
	return size, files, nil
}

// logPath is the container's json-file log.
func (e *Engine) logPath(id string) string { return filepath.Join(e.containerDir(id), id+"-json.log") }

// readInRoot reads a small file of the container's filesystem without
// following links out of it; a missing file reads as nil.
func readInRoot(rootfs, path string) []byte {
	root, err := os.Open(rootfs)
	if err != nil {
		return nil
	}
	defer root.Close()
	f, err := fsroot.Open(root, path, os.O_RDONLY)
	if err != nil {
		return nil
	}
	defer f.Close()
	// At most 1 MiB, read into what the file needs: a 1 MiB buffer for
	// each of /etc/passwd and /etc/group brought the CLI's heap to its
	// first garbage collection.
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return b
}

// imageConfig converts the image's run configuration to image-spec's type.
func imageConfig(c ggcr.Config) imagespec.ImageConfig {
	return imagespec.ImageConfig{
		User: c.User, ExposedPorts: c.ExposedPorts, Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd,
		Volumes: c.Volumes, WorkingDir: c.WorkingDir, Labels: c.Labels, StopSignal: c.StopSignal,
	}
}

// writeEtcFiles writes the container's /etc/hostname, /etc/hosts and
// /etc/resolv.conf into its directory, for the spec to bind-mount (see
// etcFiles). With --network container:X the container shares X's files,
// as in Docker.
func (e *Engine) writeEtcFiles(ctx context.Context, c *Container) (map[string]string, error) {
	if ref, ok := strings.CutPrefix(string(c.HostConfig.NetworkMode), "container:"); ok {
		other, err := e.Lookup(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("--network %s: %w", c.HostConfig.NetworkMode, err)
		}
		out := map[string]string{}
		for _, f := range []string{"hostname", "hosts", "resolv.conf"} {
			p := filepath.Join(e.containerDir(other.ID), f)
			if _, err := os.Stat(p); err == nil {
				out["/etc/"+f] = p
			}
		}
		return out, nil
	}
	hostname := c.Config.Hostname
	if hostname == "" { // --uts host or container:X: the name in that namespace
		hostname = e.utsHostname(ctx, c)
	}
	files, err := e.etcFiles(ctx, c, hostname)
	if err != nil {
		return nil, err
	}
	dir := e.containerDir(c.ID)
	out := map[string]string{}
	for dst, content := range files {
		p := filepath.Join(dir, filepath.Base(dst))
		if err := writeFileAtomic(p, content, 0o644); err != nil {
			return nil, err
		}
		out[dst] = p
	}
	// What berth wrote, to leave alone a resolv.conf the user changed when
	// the networks change (refreshEtcFiles).
	rc := filepath.Join(dir, "resolv.conf")
	if err := writeFileAtomic(rc+".hash", hashOf(files["/etc/resolv.conf"]), 0o600); err != nil {
		return nil, err
	}
	return out, nil
}

// FinishRun records the final exit of a container that the caller ran
// attached with AttachOptions.Exit, once its output has ended: the monitor
// hands the exit over and this process does what the monitor's exit
// command would have done (Cleanup), without that process start. It
// returns the exit code, and ok false when the monitor kept the exit (the
// container has not exited, the monitor is gone, or recording it failed
// here): then the exit command records it and Wait tells the code.
func (e *Engine) FinishRun(ctx context.Context, id string) (code int, ok bool) {
	h, err := shim.TakeExit(e.runDir(id))
	if err != nil {
		e.log.Debug("the monitor keeps the exit", "container", id[:12], "err", err)
		return 0, false
	}
	defer h.Close()
	// Not to be cut short by an interrupt: the exit would be half recorded.
	// The monitor deletes the container from the runtime meanwhile: an
	// --rm removal leaves the runtime's part to it (removeStopped), a
	// plain record needs nothing of the runtime, and Done waits for the
	// monitor's exit.
	mh := &monitorHandover{}
	ctx = context.WithValue(context.WithoutCancel(ctx), monitorDeleteKey{}, mh)
	if err := e.Cleanup(ctx, id); err != nil {
		e.log.Warn("record the container's exit; its monitor does", "container", id[:12], "err", err)
		return 0, false
	}
	_, _ = e.takeTombstone(id) // an --rm container's, for a Wait: this is the waiter
	done := h.Done
	if mh.removed {
		done = h.Removed
	}
	if err := done(); err != nil {
		e.log.Warn("tell the monitor the exit is recorded", "container", id[:12], "err", err)
	}
	return h.Exit.ExitCode, true
}
