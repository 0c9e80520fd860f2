package shim

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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

// TestExitHandoverOverlapsTheDelete checks that the monitor hands the
// final exit over while the runtime deletes the container, and that
// WaitDeleted waits for that delete: a foreground run records the exit
// meanwhile instead of after it.
func TestExitHandoverOverlapsTheDelete(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "berth-shim")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/berthproject/berth/cmd/berth-shim").CombinedOutput(); err != nil {
		t.Fatalf("build berth-shim: %v\n%s", err, out)
	}
	rtDir := t.TempDir()
	rt := filepath.Join(rtDir, "runtime")
	if err := os.WriteFile(rt, []byte(fakeRuntime), 0o755); err != nil {
		t.Fatal(err)
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(rtDir, name))
		return err == nil
	}
	dir := t.TempDir()
	var att *Attachment
	_, err := Start(Options{Binary: bin, ID: "c1", Bundle: dir, Runtime: rt, Dir: dir,
		BeforeStart: func(dir string) (err error) {
			att, err = Attach(dir, AttachOptions{Stdout: true, Stderr: true, Exit: true})
			return err
		}})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer att.Close()
	if _, err := io.Copy(io.Discard, att); err != nil {
		t.Fatalf("read the output: %v", err)
	}
	h, err := TakeExit(dir)
	if err != nil {
		t.Fatalf("TakeExit: %v", err)
	}
	defer h.Close()
	if exists("deleted") {
		t.Errorf("the runtime's delete ended before the exit was handed over, want them to overlap")
	}
	if err := os.WriteFile(filepath.Join(rtDir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitDeleted(); err != nil {
		t.Errorf("WaitDeleted: %v", err)
	}
	if !exists("delete-started") || !exists("deleted") {
		t.Errorf("WaitDeleted returned before the runtime's delete ended")
	}
	if err := h.Done(); err != nil {
		t.Errorf("Done: %v", err)
	}
	if Alive(dir) {
		t.Errorf("the monitor is alive after Done")
	}
	if _, err := os.Stat(filepath.Join(dir, "control.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control.sock after Done: %v, want it removed", err)
	}
}
