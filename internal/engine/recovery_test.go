package engine

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"
)

// recoveryEngine opens an engine on a temporary store whose OCI runtime is
// /bin/true: the tests below look at what the engine does to its records,
// mounts and volumes, not at containers.
func recoveryEngine(t *testing.T) *Engine {
	t.Helper()
	dir := t.TempDir()
	e, err := Open(Options{Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state"), Runtime: "/bin/true", Driver: "native"})
	if err != nil {
		t.Fatalf("open an engine on %s: %v", dir, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// testRecord writes a container record with state st.
func testRecord(t *testing.T, e *Engine, st State) *Container {
	t.Helper()
	c := &Container{ID: newID(), Name: "", Created: time.Now().UTC(),
		Config: &container.Config{}, HostConfig: &container.HostConfig{}, State: st}
	c.Name = "c" + c.ID[:6]
	if err := os.MkdirAll(e.containerDir(c.ID), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e.runDir(c.ID), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeContainer(e, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// mountRootfsTmpfs stands for a run's root filesystem: a tmpfs at the
// container's rootfs directory, unmounted at the test's end.
func mountRootfsTmpfs(t *testing.T, e *Engine, id string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs as a container's root filesystem")
	}
	dir := e.rootfsDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		for unix.Unmount(dir, unix.MNT_DETACH) == nil {
		}
	})
	return dir
}

// fakeMonitor starts a process that shim.Alive takes for the monitor of
// dir ("--dir DIR" on its command line) and records it in shim.pid.
func fakeMonitor(t *testing.T, dir string) int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "sleep 1000", "berth-shim", "--dir", dir)
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true} // the sleep goes with the shell
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Kill(-cmd.Process.Pid, unix.SIGKILL); cmd.Wait() })
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(dir, "shim.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestReconcileStaleRecord: a command that read the record of the previous
// run (running), and looks at the monitor's files while a new start is
// under way (its marker there, no monitor yet), takes the new run for a
// dead monitor's. It must decide on the record read under the lock, after
// the start: not unmount the new run's root filesystem, nor record it
// stopped.
func TestReconcileStaleRecord(t *testing.T) {
	e := recoveryEngine(t)
	ctx := context.Background()
	stale := testRecord(t, e, State{Status: StatusRunning, Pid: 1, StartID: "old"})
	id := stale.ID

	// A start under way: the lock held, the marker written, the new
	// run's root filesystem mounted, its monitor not started yet.
	lk, err := e.lockContainer(id)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := readContainer(e, id)
	cur.State = State{Status: StatusExited, StartID: "old"}
	if err := writeContainer(e, cur); err != nil {
		t.Fatal(err)
	}
	if err := e.markStart(id); err != nil {
		t.Fatal(err)
	}
	rootfs := mountRootfsTmpfs(t, e, id)

	type result struct {
		c   *Container
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := e.reconcile(ctx, stale)
		done <- result{c, err}
	}()
	time.Sleep(100 * time.Millisecond)
	if !mounted(rootfs) {
		t.Fatalf("reconcile of a stale record unmounted the root filesystem of a start under way")
	}
	// The start completes: its monitor runs, its outcome is recorded.
	pid := fakeMonitor(t, e.runDir(id))
	cur.State = State{Status: StatusRunning, Pid: pid, StartID: "new", StartedAt: time.Now().UTC()}
	if err := writeContainer(e, cur); err != nil {
		t.Fatal(err)
	}
	e.unmarkStart(id)
	lk.Close()

	r := <-done
	if r.err != nil {
		t.Fatalf("reconcile: %v", r.err)
	}
	if r.c.State.Status != StatusRunning || r.c.State.StartID != "new" {
		t.Errorf("reconcile returned %+v, want the new run", r.c.State)
	}
	if rec, _ := readContainer(e, id); rec.State.Status != StatusRunning || rec.State.StartID != "new" || rec.State.Pid != pid {
		t.Errorf("record after reconcile: %+v, want the new run (pid %d)", rec.State, pid)
	}
	if !mounted(rootfs) {
		t.Errorf("the new run's root filesystem was unmounted")
	}
}

// TestCleanupOtherStart: the exit command of an earlier start leaves the
// run of a later one alone (its record, its root filesystem); the exit
// command of the current start records the exit and unmounts.
func TestCleanupOtherStart(t *testing.T) {
	e := recoveryEngine(t)
	ctx := context.Background()
	c := testRecord(t, e, State{Status: StatusRunning, Pid: 1, StartID: "new"})
	rootfs := mountRootfsTmpfs(t, e, c.ID)
	exit := `{"exitCode":3,"finishedAt":"2026-11-28T10:00:00Z","restartCount":0}`
	if err := os.WriteFile(filepath.Join(e.runDir(c.ID), "exit.json"), []byte(exit), 0o600); err != nil {
		t.Fatal(err)
	}

	if err := e.CleanupStart(ctx, c.ID, "old"); err != nil {
		t.Fatalf("CleanupStart of an earlier start: %v", err)
	}
	if rec, _ := readContainer(e, c.ID); rec.State.Status != StatusRunning || rec.State.StartID != "new" {
		t.Errorf("the exit command of an earlier start changed the record: %+v", rec.State)
	}
	if !mounted(rootfs) {
		t.Errorf("the exit command of an earlier start unmounted the current run's root filesystem")
	}

	if err := e.CleanupStart(ctx, c.ID, "new"); err != nil {
		t.Fatalf("CleanupStart of the current start: %v", err)
	}
	if rec, _ := readContainer(e, c.ID); rec.State.Status != StatusExited || rec.State.ExitCode != 3 {
		t.Errorf("the exit command of the current start recorded %+v, want exited 3", rec.State)
	}
	if mounted(rootfs) {
		t.Errorf("the exit command of the current start left the root filesystem mounted")
	}
}

// TestRemoveUnfinishedCreateVolumes: the sweep of a container directory
// without a record removes the anonymous volumes its create listed, but
// not one that is not anonymous, nor one a container uses.
func TestRemoveUnfinishedCreateVolumes(t *testing.T) {
	e := recoveryEngine(t)
	ctx := context.Background()
	anon := map[string]string{anonymousLabel: ""}
	orphan, used, named := newID(), newID(), "mine"
	for _, v := range []struct {
		name   string
		labels map[string]string
	}{{orphan, anon}, {used, anon}, {named, nil}} {
		if _, err := e.VolumeCreate(ctx, v.name, v.labels, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A container that uses one of them (its name given to -v).
	user := testRecord(t, e, State{Status: StatusCreated})
	user.HostConfig.Binds = []string{used + ":/data"}
	if err := writeContainer(e, user); err != nil {
		t.Fatal(err)
	}
	// What a create killed before its record left.
	id := newID()
	if err := os.MkdirAll(e.containerDir(id), 0o700); err != nil {
		t.Fatal(err)
	}
	list := orphan + "\n" + used + "\n" + named + "\n" + newID() + "\n" // the last one was never made
	if err := os.WriteFile(e.anonVolumesFile(id), []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}

	e.removeUnfinishedCreates(ctx)

	var names []string
	vols, err := e.VolumeList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		names = append(names, v.Name)
	}
	if slices.Contains(names, orphan) {
		t.Errorf("the unfinished create's volume %s is left", orphan[:12])
	}
	if !slices.Contains(names, used) || !slices.Contains(names, named) {
		t.Errorf("volumes after the sweep %q: want %s (in use) and %s (named) kept", names, used[:12], named)
	}
	if _, err := os.Stat(e.containerDir(id)); !os.IsNotExist(err) {
		t.Errorf("the unfinished create's directory: %v, want it removed", err)
	}
	if _, err := readContainer(e, user.ID); err != nil {
		t.Errorf("the other container: %v", err)
	}
}

// TestRemoveOrphanRunDirs: the sweep of a create removes a run directory
// that belongs to no container once no monitor uses it (an --rm
// container's monitor killed before it finished), deleting the runtime's
// state of it first; it leaves alone the run directory of a container and
// one whose monitor is still at work.
func TestRemoveOrphanRunDirs(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "runtime.log")
	rt := filepath.Join(dir, "runtime")
	if err := os.WriteFile(rt, []byte("#!/bin/sh\necho \"$@\" >>"+log+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := Open(Options{Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state"), Runtime: rt, Driver: "native"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	orphan, busy := newID(), newID()
	for _, id := range []string{orphan, busy} {
		if err := os.MkdirAll(filepath.Join(e.runDir(id), "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(e.runtimeRoot(), orphan), 0o700); err != nil {
		t.Fatal(err)
	}
	fakeMonitor(t, e.runDir(busy))
	kept := testRecord(t, e, State{Status: StatusExited})

	e.removeUnfinishedCreates(context.Background())

	if _, err := os.Stat(e.runDir(orphan)); !os.IsNotExist(err) {
		t.Errorf("the orphan run directory: %v, want it removed", err)
	}
	b, _ := os.ReadFile(log)
	if want := "--root " + e.runtimeRoot() + " delete --force " + orphan + "\n"; string(b) != want {
		t.Errorf("runtime calls %q, want %q", b, want)
	}
	for what, id := range map[string]string{"of a live monitor": busy, "of a container": kept.ID} {
		if _, err := os.Stat(e.runDir(id)); err != nil {
			t.Errorf("the run directory %s: %v, want it kept", what, err)
		}
	}
}
