package shim

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeRuntime stands in for the OCI runtime: `run` starts a short-lived
// "init" (a child the monitor adopts) and writes its pid file; `delete`
// says it started, then waits until the test releases it (a bounded wait,
// so that a monitor that waits for it does not hang the test), and says it
// ended.
const fakeRuntime = `#!/bin/sh
dir=$(dirname "$0")
prev=
for a; do
	[ "$prev" = --pid-file ] && pidfile=$a
	prev=$a
done
case " $* " in
*" run "*)
	sleep 0.2 </dev/null >/dev/null 2>&1 &
	echo $! >"$pidfile"
	;;
*" delete "*)
	: >"$dir/delete-started"
	i=0
	while [ ! -e "$dir/release" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	: >"$dir/deleted"
	;;
esac
`

// startHandover starts a monitor with the fake runtime in its own
// directories, reads the container's output to its end and takes the
// final exit. exists tells whether the fake runtime left a file.
func startHandover(t *testing.T) (dir string, h *ExitHandover, exists func(name string) bool, release func()) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "berth-shim")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/berthproject/berth/cmd/berth-shim").CombinedOutput(); err != nil {
		t.Fatalf("build berth-shim: %v\n%s", err, out)
	}
	rtDir := t.TempDir()
	rt := filepath.Join(rtDir, "runtime")
	if err := os.WriteFile(rt, []byte(fakeRuntime), 0o755); err != nil {
		t.Fatal(err)
	}
	exists = func(name string) bool {
		_, err := os.Stat(filepath.Join(rtDir, name))
		return err == nil
	}
	release = func() {
		if err := os.WriteFile(filepath.Join(rtDir, "release"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir = t.TempDir()
	var att *Attachment
	_, err := Start(Options{Binary: bin, ID: "c1", Bundle: dir, Runtime: rt, Dir: dir,
		BeforeStart: func(dir string) (err error) {
			att, err = Attach(dir, AttachOptions{Stdout: true, Stderr: true, Exit: true})
			return err
		}})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { att.Close() })
	if _, err := io.Copy(io.Discard, att); err != nil {
		t.Fatalf("read the output: %v", err)
	}
	if h, err = TakeExit(dir); err != nil {
		t.Fatalf("TakeExit: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return dir, h, exists, release
}

// TestExitHandoverOverlapsTheDelete checks that the monitor hands the
// final exit over while the runtime deletes the container, and that Done
// returns once the monitor, after the delete, is gone: a foreground run
// records the exit meanwhile instead of after it.
func TestExitHandoverOverlapsTheDelete(t *testing.T) {
	dir, h, exists, release := startHandover(t)
	if exists("deleted") {
		t.Errorf("the runtime's delete ended before the exit was handed over, want them to overlap")
	}
	release()
	if err := h.Done(); err != nil {
		t.Errorf("Done: %v", err)
	}
	if !exists("delete-started") || !exists("deleted") {
		t.Errorf("Done returned before the runtime's delete ended")
	}
	if Alive(dir) {
		t.Errorf("the monitor is alive after Done")
	}
	if _, err := os.Stat(filepath.Join(dir, "control.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control.sock after Done: %v, want it removed", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the run directory of a container that was not removed: %v, want it kept", err)
	}
}

// TestExitRemovedLeavesTheRestToTheMonitor checks the hand-over of an --rm
// container: Removed returns while the runtime still deletes the
// container, and the monitor removes the run directory after the delete.
func TestExitRemovedLeavesTheRestToTheMonitor(t *testing.T) {
	dir, h, exists, release := startHandover(t)
	if err := h.Removed(); err != nil {
		t.Fatalf("Removed: %v", err)
	}
	if exists("deleted") {
		t.Errorf("Removed waited for the runtime's delete")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the run directory is gone before the runtime's delete ended: %v", err)
	}
	release()
	waitGone(t, dir)
}

// TestExitRemovedKeepsMounts checks that the monitor removes nothing
// below a mount point: the run directory stays when something is still
// mounted in it (the next create's sweep deals with it).
func TestExitRemovedKeepsMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir, h, _, release := startHandover(t)
	mnt := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	keep := filepath.Join(mnt, "keep")
	if err := os.WriteFile(keep, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.Removed(); err != nil {
		t.Fatalf("Removed: %v", err)
	}
	release()
	for i := 0; Alive(dir); i++ {
		if i == 500 { // 10 s: only stops a hung test
			t.Fatal("the monitor did not exit after the runtime's delete")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a file on a mount below the run directory: %v, want it kept", err)
	}
}

// waitGone waits until the monitor in dir has removed dir and exited.
func waitGone(t *testing.T, dir string) {
	t.Helper()
	for i := 0; ; i++ {
		_, err := os.Stat(dir)
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if i == 500 { // 10 s: only stops a hung test
			t.Fatalf("the run directory %s is still there (%v)", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
