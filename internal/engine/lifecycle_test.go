package engine

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/shim"
)

func TestMonitorState(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	running := State{Status: StatusRunning, Pid: 100, StartedAt: t0}
	tests := []struct {
		name string
		st   State
		run  *shim.Run
		ex   *shim.Exit
		want State
	}{
		{"no run recorded", running, nil, nil, running},
		{"the first run", running, &shim.Run{Pid: 100, StartedAt: t0.Add(time.Millisecond)}, nil, running},
		{"paused stays paused", State{Status: StatusPaused, Pid: 100, StartedAt: t0},
			&shim.Run{Pid: 100, StartedAt: t0}, nil, State{Status: StatusPaused, Pid: 100, StartedAt: t0}},
		{"exited, to restart", running, &shim.Run{Pid: 100, StartedAt: t0},
			&shim.Exit{ExitCode: 1, FinishedAt: t0.Add(time.Second), Restarting: true},
			State{Status: StatusRestarting, ExitCode: 1, StartedAt: t0, FinishedAt: t0.Add(time.Second), RestartCount: 1}},
		{"exited for good: left to the exit command", running, &shim.Run{Pid: 100, StartedAt: t0},
			&shim.Exit{ExitCode: 1, FinishedAt: t0.Add(time.Second)}, running},
		{"restarted", State{Status: StatusRestarting, ExitCode: 1, StartedAt: t0, FinishedAt: t0.Add(time.Second), RestartCount: 1},
			&shim.Run{Pid: 200, StartedAt: t0.Add(2 * time.Second), RestartCount: 1},
			&shim.Exit{ExitCode: 1, FinishedAt: t0.Add(time.Second), Restarting: true},
			State{Status: StatusRunning, Pid: 200, StartedAt: t0.Add(2 * time.Second), FinishedAt: t0.Add(time.Second), RestartCount: 1}},
		{"restarted, not seen restarting", running,
			&shim.Run{Pid: 300, StartedAt: t0.Add(3 * time.Second), RestartCount: 2},
			&shim.Exit{ExitCode: 0, RestartCount: 1, FinishedAt: t0.Add(time.Second), Restarting: true},
			State{Status: StatusRunning, Pid: 300, StartedAt: t0.Add(3 * time.Second), RestartCount: 2}},
	}
	for _, tt := range tests {
		if got := monitorState(tt.st, tt.run, tt.ex); !sameState(got, tt.want) {
			t.Errorf("%s: monitorState(%+v, %+v, %+v) =\n%+v, want\n%+v", tt.name, tt.st, tt.run, tt.ex, got, tt.want)
		}
	}
}

// mounted sees mount points of every kind: another file system, and a
// bind mount of the same one (same device: only the kernel can tell).
func TestMounted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := t.TempDir()
	bind, tmp := filepath.Join(dir, "bind"), filepath.Join(dir, "tmp")
	for _, d := range []string{bind, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if mounted(bind) || mounted(tmp) || mounted(filepath.Join(dir, "missing")) {
		t.Fatal("a plain directory (or a missing one) is reported mounted")
	}
	if err := unix.Mount(bind, bind, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(bind, unix.MNT_DETACH)
	if err := unix.Mount("tmpfs", tmp, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(tmp, unix.MNT_DETACH)
	if !mounted(bind) || !mounted(tmp) {
		t.Fatalf("mounted(bind) = %v, mounted(tmpfs) = %v; want both true", mounted(bind), mounted(tmp))
	}
	if err := unix.Unmount(tmp, 0); err != nil {
		t.Fatal(err)
	}
	if mounted(tmp) {
		t.Fatal("an unmounted directory is reported mounted")
	}
}
