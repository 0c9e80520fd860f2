package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/shim"
	"github.com/berthproject/berth/internal/snapshot"
)

// runtimeRoot is where berth-runtime keeps the state of berth's containers.
func (e *Engine) runtimeRoot() string { return filepath.Join(e.opts.State, "runtime") }

// runtimePath is the OCI runtime binary: the configured one, else
// berth-runtime next to the running executable, else from $PATH.
func (e *Engine) runtimePath() string {
	if e.opts.Runtime != "" {
		return e.opts.Runtime
	}
	return siblingBinary("berth-runtime")
}

// siblingBinary finds a berth binary installed next to the running one,
// else in $PATH.
func siblingBinary(name string) string {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

// runtime runs the OCI runtime with args and returns its error output on
// failure.
func (e *Engine) runtime(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, e.runtimePath(), append([]string{"--root", e.runtimeRoot()}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "berth-runtime: "))
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("runtime %s: %s", args[0], msg)
	}
	return nil
}

// reconcile brings a record up to date with what really exists: the
// monitor's exit file, and whether the monitor and the process still live.
// The kernel is the truth; the record is a cache of it.
//
// c may be stale: read before a stop and a start that made a new run. So
// a change is decided again on the record read under the container's lock
// (reconcileLocked): acting on a stale record would take the new run's
// monitor for a dead one, and unmount its root filesystem.
func (e *Engine) reconcile(ctx context.Context, c *Container) (*Container, error) {
	if !active(c.State.Status) || !e.needsReconcile(c) {
		return c, nil
	}
	lk, err := e.lockContainer(c.ID)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return c, nil // removed meanwhile
		}
		return nil, err
	}
	defer lk.Close()
	cur, err := readContainer(e, c.ID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return c, nil
		}
		return nil, err
	}
	return e.settleLocked(ctx, cur)
}

// needsReconcile tells, without the lock, whether the monitor's files or
// its death say more than c does.
func (e *Engine) needsReconcile(c *Container) bool {
	dir := e.runDir(c.ID)
	if !shim.Alive(dir) {
		return true
	}
	run, _ := shim.ReadRun(dir)
	ex, _ := shim.ReadExit(dir)
	return !sameState(monitorState(c.State, run, ex), c.State)
}

// reconcileLocked is reconcile on a record read with the container's lock
// held; it writes the record when it changes it.
func (e *Engine) reconcileLocked(ctx context.Context, c *Container) (*Container, error) {
	if !active(c.State.Status) {
		return c, nil
	}
	dir := e.runDir(c.ID)
	run, _ := shim.ReadRun(dir)
	ex, _ := shim.ReadExit(dir)
	if shim.Alive(dir) {
		// Running (or paused as recorded by Pause), or between runs of
		// a restart policy: the monitor's files tell the current run.
		if st := monitorState(c.State, run, ex); !sameState(st, c.State) {
			c.State = st
			return c, writeContainer(e, c)
		}
		return c, nil
	}
	ctx = context.WithoutCancel(ctx)
	if ex != nil && (run == nil || run.Ended(ex)) {
		// The monitor recorded the last run's end and is gone, but its
		// exit command did not record it (it failed, or was killed):
		// finish its job.
		e.deleteRuntimeLeftover(ctx, c.ID)
		e.unmountRootfs(c.ID)
		e.disconnectContainer(ctx, c)
		e.applyExit(c, ex)
		return c, writeContainer(e, c)
	}
	// The monitor died without an exit record (kill -9). Nobody reads the
	// container's output or reaps it any more: stop it and report it
	// stopped with what is known.
	_ = e.runtime(ctx, "delete", "--force", c.ID)
	e.unmountRootfs(c.ID)
	e.disconnectContainer(ctx, c)
	c.State.Status = StatusExited
	c.State.Pid = 0
	c.State.ExitCode = 255
	c.State.Error = "the container's monitor (berth-shim) died; the container was stopped"
	c.State.FinishedAt = time.Now().UTC()
	return c, writeContainer(e, c)
}

// monitorState is st brought up to date with the files of a live monitor:
// its current run and its last exit (either may be nil). A run that
// ended with a restart to come is "restarting" (with Docker's count: the
// coming restart included); a run that ended for good is left for the
// exit command to record; a new run is "running" with its own pid and
// start time.
func monitorState(st State, run *shim.Run, ex *shim.Exit) State {
	if run == nil {
		return st
	}
	if run.Ended(ex) {
		if !ex.Restarting {
			return st
		}
		st.Status = StatusRestarting
		st.Pid = 0
		st.ExitCode = ex.ExitCode
		st.OOMKilled = ex.OOMKilled
		st.FinishedAt = ex.FinishedAt
		st.RestartCount = ex.RestartCount + 1
		return st
	}
	if st.Pid == run.Pid && (st.Status == StatusRunning || st.Status == StatusPaused) {
		return st
	}
	st.Status = StatusRunning
	st.Pid = run.Pid
	st.StartedAt = run.StartedAt.UTC()
	st.RestartCount = run.RestartCount
	st.ExitCode = 0
	st.Error = ""
	st.OOMKilled = false
	return st
}

// sameState compares states, times by instant.
func sameState(a, b State) bool {
	if !a.StartedAt.Equal(b.StartedAt) || !a.FinishedAt.Equal(b.FinishedAt) {
		return false
	}
	a.StartedAt, a.FinishedAt, b.StartedAt, b.FinishedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b
}

// applyExit records an exit the monitor reported.
func (e *Engine) applyExit(c *Container, ex *shim.Exit) {
	c.State.Status = StatusExited
	c.State.Pid = 0
	c.State.ExitCode = ex.ExitCode
	c.State.OOMKilled = ex.OOMKilled
	c.State.FinishedAt = ex.FinishedAt
	c.State.RestartCount = ex.RestartCount
	if ex.Error != "" {
		c.State.Error = ex.Error
	}
}

// saveLocked re-reads the record under its lock, applies change and writes
// it: concurrent commands never lose each other's updates.
func (e *Engine) saveLocked(ctx context.Context, c *Container, change func(cur *Container)) error {
	lk, err := e.lockContainer(c.ID)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // removed meanwhile
		}
		return err
	}
	defer lk.Close()
	cur, err := readContainer(e, c.ID)
	if err != nil {
		return err
	}
	change(cur)
	*c = *cur
	return writeContainer(e, cur)
}

// rootfsDir is where a container's root filesystem is mounted while it runs.
func (e *Engine) rootfsDir(id string) string { return filepath.Join(e.runDir(id), "rootfs") }

// mountRootfs mounts the container's layer stack at rootfsDir. A volatile
// mount (for containers removed when they exit, as Podman does for --rm)
// asks overlayfs to skip syncing the upper layer's file system: without it,
// the unmount at exit runs syncfs on the whole file system under the store,
// which costs from milliseconds to seconds depending on what else the host
// writes.
func (e *Engine) mountRootfs(ctx context.Context, id string, volatile bool) (string, error) {
	target := e.rootfsDir(id)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", err
	}
	if mounted(target) {
		return target, nil
	}
	mounts, err := e.Driver.Mounts(ctx, id)
	if err != nil {
		return "", err
	}
	for _, m := range mounts {
		if m.Type != "overlay" {
			continue
		}
		for _, o := range m.Options {
			// After a volatile mount overlayfs leaves this marker and
			// refuses the work dir until it is removed.
			if w, ok := strings.CutPrefix(o, "workdir="); ok {
				os.RemoveAll(filepath.Join(w, "work", "incompat"))
			}
		}
	}
	if volatile {
		vm := withVolatile(mounts)
		if err := e.mountLayers(id, vm, target); err == nil {
			return target, nil
		} else if !errors.Is(err, unix.EINVAL) {
			return "", fmt.Errorf("mount the container's root filesystem: %w", err)
		}
		// Linux before 5.10 does not know "volatile".
	}
	if err := e.mountLayers(id, mounts, target); err != nil {
		return "", fmt.Errorf("mount the container's root filesystem: %w", err)
	}
	return target, nil
}

// withVolatile returns mounts with overlay's "volatile" option added.
func withVolatile(mounts []snapshot.Mount) []snapshot.Mount {
	out := make([]snapshot.Mount, len(mounts))
	for i, m := range mounts {
		if m.Type == "overlay" && slices.ContainsFunc(m.Options, func(o string) bool { return strings.HasPrefix(o, "upperdir=") }) {
			m.Options = append(slices.Clip(m.Options), "volatile")
		}
		out[i] = m
	}
	return out
}

// unmountRootfs undoes mountRootfs; a missing mount is fine.
func (e *Engine) unmountRootfs(id string) {
	target := e.rootfsDir(id)
	if mounted(target) {
		_ = snapshot.Unmount(target)
	}
	// --ipc shareable's /dev/shm and the claim of a --userns range live as
	// long as the mount.
	e.unmountShm(id)
	e.unmountIDMapped(id)
	e.releaseIDMap(id)
}

// mounted reports whether path is a mount point.
func mounted(path string) bool {
	// One statx where the kernel tells (Linux 5.8): reading mountinfo
	// took ~0.25 ms, several times per command.
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, 0, &stx); err != nil {
		return false
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
	}
	var st, parent unix.Stat_t
	if unix.Lstat(path, &st) != nil || unix.Lstat(filepath.Dir(path), &parent) != nil {
		return false
	}
	if st.Dev != parent.Dev {
		return true
	}
	// Same device: a bind or overlay of the same filesystem still shows in
	// mountinfo.
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMount(f[4]) == path {
			return true
		}
	}
	return false
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Remove deletes a container. A running one needs force (it is killed).
//
// A start of the container under way is waited for (it holds the
// container's lock until its outcome is recorded), and none begins while
// the removal goes on: rm holds the container's removal lock (.remove)
// throughout, which Start checks. So a start and an rm -f racing end with
// the container removed, or with the rm failing and the container as the
// start left it, never with half of either.
func (e *Engine) Remove(ctx context.Context, ref string, force, volumes bool) error {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return err
	}
	rl, err := flock(e.removeLockPath(c.ID))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: No such container: %s", ErrNotFound, ref)
		}
		return err
	}
	defer rl.Close()
	lk, err := e.lockContainerWait(ctx, c.ID)
	if err != nil {
		return err
	}
	cur, err := readContainer(e, c.ID)
	if err == nil {
		cur, err = e.settleLocked(ctx, cur)
	}
	lk.Close()
	if err != nil {
		return err
	}
	if active(cur.State.Status) {
		if !force {
			return fmt.Errorf("%w: cannot remove container %q: container is %s: stop the container before removing or force remove", ErrConflict, cur.Name, cur.State.Status)
		}
		// Without the lock: the monitor's exit command records the exit
		// under it, and kill waits for the monitor.
		if err := e.kill(ctx, cur, unix.SIGKILL, true); err != nil {
			return err
		}
	}
	if err := e.removeStopped(ctx, cur); err != nil {
		return err
	}
	if volumes {
		for _, name := range cur.AnonVolumes {
			if err := e.VolumeRemove(ctx, name, true); err != nil {
				e.log.Warn("remove anonymous volume", "volume", name, "err", err)
			}
		}
	}
	return nil
}

// removeLockPath is the lock rm holds while it removes the container.
func (e *Engine) removeLockPath(id string) string {
	return filepath.Join(e.containerDir(id), ".remove")
}

// removalUnderWay tells whether an rm holds the container's removal lock.
func (e *Engine) removalUnderWay(id string) (bool, error) {
	f, ok, err := tryLock(e.removeLockPath(id))
	if err != nil {
		return false, err
	}
	if ok {
		f.Close()
	}
	return !ok, nil
}

// removeStopped deletes a container that runs no process, under the names
// lock and the container's (waiting for a start under way); one that runs
// again by then is refused. Removed already is fine.
func (e *Engine) removeStopped(ctx context.Context, c *Container) error {
	nl, err := e.lockNames()
	if err != nil {
		return err
	}
	defer nl.Close()
	lk, err := e.lockContainerWait(ctx, c.ID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	defer lk.Close()
	cur, err := readContainer(e, c.ID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	if cur, err = e.settleLocked(ctx, cur); err != nil {
		return err
	}
	if active(cur.State.Status) {
		return fmt.Errorf("%w: cannot remove container %q: container is %s: stop the container before removing or force remove", ErrConflict, cur.Name, cur.State.Status)
	}
	ctx = context.WithoutCancel(ctx)
	// In a FinishRun the container's monitor deletes it from the runtime
	// meanwhile (see FinishRun): the runtime's state, the cgroup and the
	// run directory (the bundle; the runtime logs there) are left to it,
	// and this command returns without waiting for that process. If the
	// monitor dies first, the next create finds the run directory without
	// a container and finishes the job (removeOrphanRunDirs).
	mh := monitorDelete(ctx)
	if mh == nil {
		e.removeRuntimeState(ctx, cur)
	}
	e.unmountRootfs(cur.ID)
	e.disconnectContainer(ctx, cur)
	if mounted(e.rootfsDir(cur.ID)) {
		return fmt.Errorf("remove container %s: its root filesystem %s is still mounted", cur.Name, e.rootfsDir(cur.ID))
	}
	// The record goes first: from then on the container does not exist,
	// and what is left of it is removed below or, if this command dies,
	// by the next create (removeUnfinishedCreates).
	if err := os.Remove(filepath.Join(e.containerDir(cur.ID), "container.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if mh != nil {
		e.removeStore(ctx, cur.ID)
		mh.removed = true
	} else {
		e.removeLeftovers(ctx, cur.ID)
	}
	e.containerEvent(cur, events.ActionDestroy, nil)
	return nil
}

// removeLeftovers removes what a container without a record may have left:
// its layer, its runtime directory, its directory. Call it with the names
// lock held, on a container that has no record any more, or never had one.
func (e *Engine) removeLeftovers(ctx context.Context, id string) {
	e.disconnectNetworks(ctx, id)
	if err := e.Driver.Remove(ctx, id); err != nil && !errors.Is(err, snapshot.ErrNotFound) {
		// The directory stays, for the next create to try again.
		e.log.Warn("remove the layer of a removed container", "container", id[:12], "err", err)
		return
	}
	if mounted(e.rootfsDir(id)) || !e.unmountIDMapped(id) {
		return // never remove what is below a mount (a volume's clone would lose the volume's files)
	}
	if err := os.RemoveAll(e.runDir(id)); err != nil {
		e.log.Warn("remove the runtime directory of a removed container", "container", id[:12], "err", err)
	}
	if err := os.RemoveAll(e.containerDir(id)); err != nil {
		e.log.Warn("remove the directory of a removed container", "container", id[:12], "err", err)
	}
}

// removeStore is removeLeftovers without the run directory, which the
// container's monitor removes once the runtime is done with it (an --rm
// container whose exit a foreground run recorded: see removeStopped).
func (e *Engine) removeStore(ctx context.Context, id string) {
	e.disconnectNetworks(ctx, id)
	if err := e.Driver.Remove(ctx, id); err != nil && !errors.Is(err, snapshot.ErrNotFound) {
		e.log.Warn("remove the layer of a removed container", "container", id[:12], "err", err)
		return
	}
	if err := os.RemoveAll(e.containerDir(id)); err != nil {
		e.log.Warn("remove the directory of a removed container", "container", id[:12], "err", err)
	}
}

// readRootfs gives the container's root filesystem to read: the running
// container's mount, or a mount made for the caller (release undoes it).
// The container's lock is held until release: a start in between would
// take that mount for its own and lose it at the release.
func (e *Engine) readRootfs(ctx context.Context, c *Container) (dir string, release func(), err error) {
	dir = e.rootfsDir(c.ID)
	if mounted(dir) {
		return dir, func() {}, nil
	}
	lk, err := e.lockContainerWait(ctx, c.ID)
	if err != nil {
		return "", nil, err
	}
	if mounted(dir) { // started meanwhile
		lk.Close()
		return dir, func() {}, nil
	}
	if dir, err = e.mountRootfs(ctx, c.ID, c.HostConfig.AutoRemove); err != nil {
		lk.Close()
		return "", nil, err
	}
	return dir, func() { e.unmountRootfs(c.ID); lk.Close() }, nil
}

// removeRuntimeState deletes what the runtime may still hold of a stopped
// container: its state and its cgroup.
func (e *Engine) removeRuntimeState(ctx context.Context, c *Container) {
	e.deleteRuntimeLeftover(ctx, c.ID)
	if err := destroyCgroup(cgroupsPath(c)); err != nil {
		e.log.Warn("remove the cgroup of a removed container", "container", c.ID[:12], "err", err)
	}
}

// deleteRuntimeLeftover removes the runtime's record of a container that
// should have none (after a crash); it costs nothing when there is none.
func (e *Engine) deleteRuntimeLeftover(ctx context.Context, id string) {
	if _, err := os.Stat(filepath.Join(e.runtimeRoot(), id)); err == nil {
		_ = e.runtime(ctx, "delete", "--force", id)
	}
}
