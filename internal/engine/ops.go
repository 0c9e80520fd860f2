package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/events"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/shim"
)

// Kill sends sig to the container's main process.
func (e *Engine) Kill(ctx context.Context, ref string, sig unix.Signal) error {
	c, err := e.lookupSettled(ctx, ref)
	if err != nil {
		return err
	}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		return fmt.Errorf("%w: cannot kill container %s: container %s is not running", ErrConflict, c.Name, c.ID)
	}
	if err := e.kill(ctx, c, sig, false); err != nil {
		return err
	}
	if sig == unix.SIGKILL {
		// As Docker: a SIGKILL returns once the container is stopped (the
		// monitor recorded the exit), not merely signalled; a process
		// that takes longer to die (stuck in the kernel) is left to it.
		if _, err := e.waitShim(ctx, c, 10*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// kill signals the container; with wait it returns once the monitor has
// recorded the exit (and run its exit command).
func (e *Engine) kill(ctx context.Context, c *Container, sig unix.Signal, wait bool) error {
	if sig == unix.SIGKILL || sig == unix.SIGTERM || sig == unix.SIGINT {
		// An explicit stop: no restart policy brings it back.
		markStopped(e.runDir(c.ID))
	}
	if c.State.Status == StatusPaused {
		_ = e.runtime(ctx, "resume", c.ID)
	}
	all := []string{"kill", c.ID, strconv.Itoa(int(sig))}
	if sig == unix.SIGKILL {
		all = []string{"kill", "--all", c.ID, "9"}
	}
	// The signal and its event under the container's lock, as Docker's
	// daemon does: the die of the exit it causes is told by the monitor's
	// exit command, which takes the lock first, so "kill" always comes
	// before "die" in events.
	lk, err := e.lockContainerWait(ctx, c.ID)
	if err != nil {
		return err
	}
	if err := e.runtime(ctx, all...); err != nil {
		lk.Close()
		if _, werr := e.waitShim(ctx, c, 0); werr == nil {
			return nil // it had exited meanwhile
		}
		return err
	}
	e.containerEvent(c, events.ActionKill, map[string]string{"signal": strconv.Itoa(int(sig))})
	lk.Close()
	if !wait {
		return nil
	}
	_, err = e.waitShim(ctx, c, 0)
	return err
}

func markStopped(dir string) {
	if f, err := os.Create(filepath.Join(dir, "stopped")); err == nil {
		f.Close()
	}
}

// monitorKillGrace is how much later than Stop's own deadline the
// monitor kills a container that has not stopped.
const monitorKillGrace = time.Second

// Stop asks the container to stop with its stop signal, and kills it after
// timeout (nil: the container's --stop-timeout, else 10 s).
func (e *Engine) Stop(ctx context.Context, ref string, timeout *int) error {
	c, err := e.lookupSettled(ctx, ref)
	if err != nil {
		return err
	}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused && c.State.Status != StatusRestarting {
		return nil // Docker: stopping a stopped container succeeds
	}
	t := 10
	if c.Config.StopTimeout != nil {
		t = *c.Config.StopTimeout
	}
	if timeout != nil {
		t = *timeout
	}
	sig := unix.SIGTERM
	if c.Config.StopSignal != "" {
		if s, err := ParseSignal(c.Config.StopSignal); err == nil {
			sig = s
		}
	}
	if t > 0 {
		// Docker's stop is the daemon's: it holds when the client goes.
		// Ours is this process's, so the monitor holds the deadline too,
		// a little after ours (this process kills first, and says so in
		// its events, unless it is gone).
		// The deadline goes before the stopped mark (the monitor makes
		// the mark too when it takes it): killed in between, this
		// process leaves no mark without a deadline, which would keep a
		// running container from its restart policy for good.
		if err := shim.KillAfter(e.runDir(c.ID), time.Duration(t)*time.Second+monitorKillGrace); err != nil {
			e.log.Debug("hand the stop's deadline to the monitor", "container", c.ID[:12], "err", err)
		}
	}
	markStopped(e.runDir(c.ID))
	if t != 0 {
		if err := e.kill(ctx, c, sig, false); err == nil {
			if t < 0 {
				if _, err := e.waitShim(ctx, c, 0); err != nil {
					return err
				}
				e.containerEvent(c, events.ActionStop, nil)
				return nil
			}
			if done, _ := e.waitShim(ctx, c, time.Duration(t)*time.Second); done {
				e.containerEvent(c, events.ActionStop, nil)
				return nil
			}
		}
	}
	if err := e.kill(ctx, c, unix.SIGKILL, true); err != nil {
		return err
	}
	e.containerEvent(c, events.ActionStop, nil)
	return nil
}

// waitShim waits until the container's monitor is gone (it exits after
// recording the exit and running its exit command), or timeout (0: for
// ever). It reports whether the monitor is gone.
func (e *Engine) waitShim(ctx context.Context, c *Container, timeout time.Duration) (bool, error) {
	dir := e.runDir(c.ID)
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	pidfd := -1
	if c.State.ShimPid > 0 {
		if fd, err := unix.PidfdOpen(c.State.ShimPid, 0); err == nil {
			pidfd = fd
			defer unix.Close(fd)
		}
	}
	for {
		if !shim.Alive(dir) {
			return true, nil
		}
		wait := 50 * time.Millisecond
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return false, nil
			}
			wait = min(wait, left)
		}
		if pidfd >= 0 {
			fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			_, _ = unix.Poll(fds, int(wait/time.Millisecond))
		} else {
			time.Sleep(wait)
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
}

// Wait blocks until the container stops and returns its exit code
// (`docker wait`). A container that is not running returns at once.
func (e *Engine) Wait(ctx context.Context, ref string) (int, error) {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			// An --rm container its monitor's exit command removed before
			// this wait began (a foreground run that could not take the
			// exit over waits by ID): the exit was left behind for it.
			if ex, terr := e.takeTombstone(ref); terr == nil {
				return ex.ExitCode, nil
			}
		}
		return -1, err
	}
	if c.State.Status == StatusRunning || c.State.Status == StatusPaused || c.State.Status == StatusRestarting {
		id := c.ID
		if _, err := e.waitShim(ctx, c, 0); err != nil {
			return -1, err
		}
		if c, err = readContainer(e, id); err != nil {
			if errors.Is(err, ErrNotFound) {
				// Removed by --rm: the monitor's exit command left the exit
				// behind for us.
				if ex, terr := e.takeTombstone(id); terr == nil {
					return ex.ExitCode, nil
				}
			}
			return -1, err
		}
		if c, err = e.reconcile(ctx, c); err != nil {
			return -1, err
		}
	}
	return c.State.ExitCode, nil
}

// Pause freezes every process of a running container.
func (e *Engine) Pause(ctx context.Context, ref string) error {
	c, err := e.lookupSettled(ctx, ref)
	if err != nil {
		return err
	}
	switch c.State.Status {
	case StatusRunning:
	case StatusPaused:
		return fmt.Errorf("%w: container %s is already paused", ErrConflict, c.Name)
	default:
		return fmt.Errorf("%w: container %s is not running", ErrConflict, c.Name)
	}
	if err := e.runtime(ctx, "pause", c.ID); err != nil {
		return err
	}
	e.containerEvent(c, events.ActionPause, nil)
	return e.saveLocked(ctx, c, func(cur *Container) { cur.State.Status = StatusPaused })
}

// Unpause thaws a paused container.
func (e *Engine) Unpause(ctx context.Context, ref string) error {
	c, err := e.lookupSettled(ctx, ref)
	if err != nil {
		return err
	}
	if c.State.Status != StatusPaused {
		return fmt.Errorf("%w: container %s is not paused", ErrConflict, c.Name)
	}
	if err := e.runtime(ctx, "resume", c.ID); err != nil {
		return err
	}
	e.containerEvent(c, events.ActionUnPause, nil)
	return e.saveLocked(ctx, c, func(cur *Container) { cur.State.Status = StatusRunning })
}

// Restart stops (like Stop) and starts the container again.
func (e *Engine) Restart(ctx context.Context, ref string, timeout *int) error {
	// A restart is finished once begun, as Docker's daemon finishes it
	// when its client goes: cancelled between the stop and the start
	// (Ctrl-C during the stop's timeout), it would leave the container
	// stopped.
	ctx = context.WithoutCancel(ctx)
	if err := e.Stop(ctx, ref, timeout); err != nil {
		return err
	}
	if err := e.Start(ctx, ref, StartOptions{}); err != nil {
		return err
	}
	if c, err := e.Lookup(ctx, ref); err == nil {
		e.containerEvent(c, events.ActionRestart, nil)
	}
	return nil
}

// Rename gives a container a new name.
func (e *Engine) Rename(ctx context.Context, ref, name string) error {
	if !validName(name) {
		return fmt.Errorf("%w: Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", ErrInvalid, name)
	}
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return err
	}
	lk, err := e.lockNames()
	if err != nil {
		return err
	}
	defer lk.Close()
	if id, taken := e.nameTaken(name); taken && id != c.ID {
		return fmt.Errorf("%w: Conflict. The container name \"/%s\" is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", ErrConflict, name, id)
	}
	old := c.Name
	if err := e.saveLocked(ctx, c, func(cur *Container) {
		cur.Name = name
		cur.HostConfig.Links = renameLinks(cur.HostConfig.Links, old, name)
	}); err != nil {
		return err
	}
	e.renameInLinkers(ctx, c.ID, old, name)
	e.containerEvent(c, events.ActionRename, map[string]string{"oldName": "/" + old})
	return nil
}

// Cleanup is the monitor's exit command, run after each change of the
// container's run (see package protocol): it records a restart (the run
// that ended, then the new one) with its die and start events; at the
// final exit it records the exit, unmounts the root filesystem and
// removes an --rm container. It runs in a process of its own, after the
// runtime deleted the container.
//
// Cleanup does not check which start's runs it records: the exit command
// runs CleanupStart.
func (e *Engine) Cleanup(ctx context.Context, id string) error {
	return e.CleanupStart(ctx, id, "")
}

// monitorDeleteKey marks the context of a FinishRun: its value, a
// *monitorHandover, stands for the runtime delete the container's monitor
// runs while this process records the exit.
type monitorDeleteKey struct{}

// monitorHandover is the monitor's side of a FinishRun.
type monitorHandover struct {
	// removed is set by an --rm removal that left the rest to the
	// monitor: once its delete is done, the monitor removes the run
	// directory (with the runtime's logs and the bundle) itself, and
	// nobody waits for that.
	removed bool
}

// monitorDelete returns, in a FinishRun, the monitor's side (nil
// elsewhere).
func monitorDelete(ctx context.Context) *monitorHandover {
	h, _ := ctx.Value(monitorDeleteKey{}).(*monitorHandover)
	return h
}

// CleanupStart is Cleanup for the runs of the start startID, the monitor's
// exit command: it acts only while the record's run is that start's (it
// checks under the container's lock). An exit command finishing after a
// later start (which start rules out by waiting for the previous monitor,
// but the check costs nothing) leaves the new run alone. "" (a monitor of
// an older berth) skips the check.
func (e *Engine) CleanupStart(ctx context.Context, id, startID string) error {
	lk, err := e.lockContainer(id)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: No such container: %s", ErrNotFound, id)
		}
		return err
	}
	defer func() {
		if lk != nil {
			lk.Close()
		}
	}()
	c, err := readContainer(e, id)
	if err != nil {
		return err
	}
	if startID != "" && c.State.StartID != startID {
		e.log.Info("exit command of an earlier start: nothing to do", "container", id[:12], "start", startID)
		return nil
	}
	dir := e.runDir(id)
	ex, err := shim.ReadExit(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	run, rerr := shim.ReadRun(dir)
	if rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		return rerr
	}
	if ex == nil && run == nil {
		return err // nothing recorded: the monitor's files are gone
	}
	if run != nil && (!run.Ended(ex) || ex.Restarting) {
		// Between runs of the restart policy: the layer stays mounted.
		c.State = monitorState(c.State, run, ex)
		if err := writeContainer(e, c); err != nil {
			return err
		}
		lk.Close()
		lk = nil
		if run.Ended(ex) {
			if ex.OOMKilled {
				e.containerEvent(c, events.ActionOOM, nil)
			}
			e.containerEvent(c, events.ActionDie, map[string]string{"exitCode": strconv.Itoa(ex.ExitCode)})
		} else {
			e.containerEvent(c, events.ActionStart, nil)
		}
		return nil
	}
	if ex == nil {
		return err
	}
	e.unmountRootfs(id)
	e.disconnectContainer(ctx, c)
	// Stopped while waiting to restart: the die of this exit was told.
	told := c.State.Status == StatusRestarting && c.State.FinishedAt.Equal(ex.FinishedAt)
	// Recorded already, by a foreground run that took the exit over from
	// the monitor (FinishRun) and was killed before it said so: its die
	// was told; only an --rm removal may be left to do.
	told = told || c.State.Status == StatusExited && c.State.FinishedAt.Equal(ex.FinishedAt)
	e.applyExit(c, ex)
	if err := writeContainer(e, c); err != nil {
		return err
	}
	lk.Close()
	lk = nil
	if !told {
		if ex.OOMKilled {
			e.containerEvent(c, events.ActionOOM, nil)
		}
		e.containerEvent(c, events.ActionDie, map[string]string{"exitCode": strconv.Itoa(ex.ExitCode)})
	}
	if c.HostConfig.AutoRemove {
		e.leaveTombstone(id, ex)
		// In a FinishRun the monitor's runtime delete may still run:
		// removeStopped waits for it before it touches what the runtime
		// uses.
		if err := e.removeStopped(ctx, c); err != nil {
			return err
		}
		for _, name := range c.AnonVolumes { // --rm takes them too, as Docker does
			_ = e.VolumeRemove(ctx, name, true)
		}
		return nil
	}
	return nil
}

// Tombstones: the exit of an --rm container, kept on tmpfs after the
// container is gone, for the `run` or `wait` that waits for it. Ones nobody
// took are dropped after an hour.
func (e *Engine) tombstoneDir() string { return filepath.Join(e.opts.State, "exited") }

func (e *Engine) leaveTombstone(id string, ex *shim.Exit) {
	dir := e.tombstoneDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	if ents, err := os.ReadDir(dir); err == nil {
		for _, ent := range ents {
			if fi, err := ent.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.Remove(filepath.Join(dir, ent.Name()))
			}
		}
	}
	_ = writeFileAtomic(filepath.Join(dir, id), []byte(strconv.Itoa(ex.ExitCode)), 0o600)
}

func (e *Engine) takeTombstone(id string) (*shim.Exit, error) {
	if !isContainerID(id) { // a name or anything a user typed: not a path
		return nil, os.ErrNotExist
	}
	p := filepath.Join(e.tombstoneDir(), id)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	os.Remove(p)
	code, err := strconv.Atoi(string(b))
	if err != nil {
		return nil, err
	}
	return &shim.Exit{ExitCode: code}, nil
}

// isContainerID reports whether s is a full container ID (64 lowercase
// hex digits).
func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Prune removes every stopped container.
func (e *Engine) Prune(ctx context.Context) ([]string, error) {
	cs, err := e.List(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, c := range cs {
		if c.State.Status == StatusExited || c.State.Status == StatusCreated || c.State.Status == StatusDead {
			if err := e.removeStopped(ctx, c); err == nil {
				removed = append(removed, c.ID)
			}
		}
	}
	return removed, nil
}

// ParseSignal accepts "KILL", "SIGKILL", "9".
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	name := s
	if len(name) < 3 || name[:3] != "SIG" {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("%w: invalid signal: %s", ErrInvalid, s)
}
