package engine

import (
	"testing"
	"time"

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
