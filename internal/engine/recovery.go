package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/cgroups"
	"github.com/berthproject/berth/internal/shim"
)

// Interrupted starts.
//
// Start works under the container's lock and records the result only at
// the end: the record says "created" (or "exited") until the monitor has
// reported the container running. A command killed on the way (kill -9 of
// `berth run -d`) leaves whatever it had done so far: the root filesystem
// mounted, a monitor that goes on starting the container, the runtime's
// state, a cgroup. So Start first writes a marker, startMarker in the
// container's run directory, and removes it once the record is written:
//
//	lock .lock -> write "starting" -> mount, bundle, monitor, runtime
//	           -> write container.json -> remove "starting" -> unlock
//
// The lock dies with its process. Whoever later finds the marker with the
// lock free (reconcile, which every command runs on the containers it
// looks at, or the next Start) knows the start was interrupted and undoes
// it (undoStart), so the container is a clean "created" (or "exited") as
// its record says: no monitor, no runtime state, no cgroup, no mount. A
// marker next to a record that says "running" only means the command died
// between the two writes: the record stands (reconcile checks it against
// the monitor as usual).
//
// Starts and the other commands.
//
// The commands that change a container wait for a start under way (they
// take, or wait for, the lock it holds) and then act on the record read
// under the lock, never on one read before:
//
//   - rm holds the container's removal lock (.remove) from before it waits
//     for the start until the container is gone, and a start that finds it
//     held refuses to begin (checkStart): the container ends removed, or
//     the rm fails and the container is as the start left it.
//   - stop, kill, pause, unpause and commit wait for the start's outcome
//     (lookupSettled) instead of seeing a "created" container.
//   - reconcile decides again under the lock before it records an exit or
//     stops a container whose monitor it found dead: read before a stop
//     and a new start, the record would make it take the new run (not yet
//     monitored) for a dead one and unmount its root filesystem.
//   - The monitor's exit command (Cleanup) acts under the lock, and only on
//     the runs of the start that started that monitor (State.StartID); a
//     start waits for the previous run's monitor to end (checkStart).

// startMarker is the file that says a Start is, or was, under way.
const startMarker = "starting"

// markStart writes the marker of a start under way (see above).
func (e *Engine) markStart(id string) error {
	return os.WriteFile(filepath.Join(e.runDir(id), startMarker), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
}

// unmarkStart removes the marker once the start's outcome is recorded.
func (e *Engine) unmarkStart(id string) {
	_ = os.Remove(filepath.Join(e.runDir(id), startMarker))
}

func (e *Engine) startMarked(id string) bool {
	_, err := os.Stat(filepath.Join(e.runDir(id), startMarker))
	return err == nil
}

// recoverStart undoes the start of c that its command did not finish, if
// there is one: the marker is there and nobody holds the container's lock.
// It returns the record as it is afterwards (c itself when there was
// nothing to do, or the lock was busy: the start may still be under way).
func (e *Engine) recoverStart(ctx context.Context, c *Container) *Container {
	if !e.startMarked(c.ID) {
		return c
	}
	lk, ok, err := tryLock(filepath.Join(e.containerDir(c.ID), ".lock"))
	if err != nil || !ok {
		return c
	}
	defer lk.Close()
	cur, err := readContainer(e, c.ID)
	if err != nil {
		return c
	}
	e.undoInterruptedStart(ctx, cur)
	return cur // the start finished meanwhile: its outcome; or what is left once undone
}

// undoInterruptedStart undoes a start of c (read with its lock held) whose
// marker is there: whoever made it would hold the lock, so it was
// interrupted.
func (e *Engine) undoInterruptedStart(ctx context.Context, c *Container) {
	if !e.startMarked(c.ID) {
		return
	}
	if !active(c.State.Status) {
		e.log.Info("undoing an interrupted start", "container", c.ID[:12])
		e.undoStart(ctx, c)
	}
	// else the outcome was recorded; only the marker's removal was lost.
	e.unmarkStart(c.ID)
}

// settleLocked brings c, read with its lock held, up to date: an
// interrupted start is undone, then the record is reconciled with the
// monitor and the kernel.
func (e *Engine) settleLocked(ctx context.Context, c *Container) (*Container, error) {
	e.undoInterruptedStart(ctx, c)
	return e.reconcileLocked(ctx, c)
}

// previousMonitorWait bounds how long a start waits for the monitor of the
// container's previous run to finish.
const previousMonitorWait = 10 * time.Second

// checkStart is what a start checks with the container's lock held before
// it begins: that no rm of the container is under way (it would remove
// what the start makes), and that the monitor of the previous run is gone.
// That monitor records the exit through its exit command a moment before
// it ends; it still removes its sockets then, which would be the new
// run's. An --rm container's is on its way to remove it: that is refused.
func (e *Engine) checkStart(ctx context.Context, c *Container) error {
	removing, err := e.removalUnderWay(c.ID)
	if err != nil {
		return err
	}
	if removing {
		return fmt.Errorf("%w: container %s is marked for removal and cannot be started", ErrConflict, c.Name)
	}
	dir := e.runDir(c.ID)
	if !shim.Alive(dir) {
		return nil
	}
	if c.HostConfig.AutoRemove {
		return fmt.Errorf("%w: container %s is marked for removal and cannot be started", ErrConflict, c.Name)
	}
	for deadline := time.Now().Add(previousMonitorWait); shim.Alive(dir); {
		if time.Now().After(deadline) {
			e.log.Warn("the monitor of the previous run does not end; killing it", "container", c.ID[:12])
			killMonitor(dir)
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// undoStart removes what a start that did not complete may have left of
// c: its monitor (and the runtime commands it runs), the runtime's state
// and the container's processes, its cgroup, the root filesystem's mount,
// the monitor's files. Call it with the container's lock held. It costs
// little when there is nothing to undo.
func (e *Engine) undoStart(ctx context.Context, c *Container) {
	ctx = context.WithoutCancel(ctx)
	dir := e.runDir(c.ID)
	killMonitor(dir)
	state := filepath.Join(e.runtimeRoot(), c.ID)
	if _, err := os.Stat(state); err == nil {
		if err := e.runtime(ctx, "delete", "--force", c.ID); err != nil {
			e.log.Warn("delete an interrupted container from the runtime", "container", c.ID[:12], "err", err)
		}
	}
	if err := destroyCgroup(cgroupsPath(c)); err != nil {
		e.log.Warn("remove the cgroup of an interrupted container", "container", c.ID[:12], "err", err)
	}
	// A runtime killed half-way through create may leave a state the
	// delete above does not understand; its processes are gone now.
	if _, err := os.Stat(state); err == nil {
		_ = os.RemoveAll(state)
	}
	e.unmountRootfs(c.ID)
	e.disconnectContainer(ctx, c)
	for _, f := range []string{"exit.json", "init.pid", "shim.pid", "stopped", "attach.sock", "control.sock", "console.sock"} {
		os.Remove(filepath.Join(dir, f))
	}
}

// killMonitor kills the monitor of dir, if it still runs, with its process
// group (the runtime commands and the exit command it runs: it is a
// session leader, see package shim's Start), and waits until it is gone.
// The pidfd makes sure the signal reaches the monitor, not a process that
// reused its pid.
func killMonitor(dir string) {
	pid, err := shim.Pid(dir)
	if err != nil {
		return
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // gone
	}
	defer unix.Close(fd)
	if !shim.Alive(dir) {
		return // exited, or the pid is another process's now
	}
	if pgid, err := unix.Getpgid(pid); err == nil && pgid == pid {
		_ = unix.Kill(-pid, unix.SIGKILL)
	}
	_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		n, err := unix.Poll(fds, 100)
		if n > 0 || (err != nil && !errors.Is(err, unix.EINTR)) {
			return
		}
	}
}

// destroyCgroup kills every process left in the cgroup at path and
// removes it from every hierarchy; a missing cgroup is fine.
func destroyCgroup(path string) error {
	m, err := cgroups.New(path, cgroups.Options{})
	if err != nil {
		return err
	}
	if pids, err := m.Pids(); err == nil && len(pids) > 0 {
		if err := m.Kill(unix.SIGKILL); err != nil {
			return err
		}
		for i := 0; i < 100; i++ {
			if pids, err := m.Pids(); err != nil || len(pids) == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return m.Destroy()
}
