package engine

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/api/types/events"

	"github.com/berthproject/berth/internal/shim"
	"github.com/berthproject/berth/internal/shim/jsonlog"
)

// AttachOptions say which of the container's streams to attach.
type AttachOptions = shim.AttachOptions

// AttachStream is a connection to a container's stdio through its monitor.
type AttachStream = shim.Attachment

// Demux splits Docker's stdcopy stream (a container without a terminal)
// into stdout and stderr.
var Demux = shim.Demux

// Attach connects to a running container's stdio.
func (e *Engine) Attach(ctx context.Context, ref string, o AttachOptions) (*AttachStream, error) {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return nil, err
	}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused {
		return nil, fmt.Errorf("%w: container %s is not running", ErrConflict, c.Name)
	}
	a, err := shim.Attach(e.runDir(c.ID), o)
	if err == nil {
		e.containerEvent(c, events.ActionAttach, nil)
	}
	return a, err
}

// AttachDir connects to the monitor in dir (the hook of Start).
func (e *Engine) AttachDir(dir string, o AttachOptions) (*AttachStream, error) {
	return shim.Attach(dir, o)
}

// ResizeTTY sets the size of a container's terminal.
func (e *Engine) ResizeTTY(id string, height, width uint16) error {
	return shim.Resize(e.runDir(id), height, width)
}

// LogsOptions are `docker logs` flags.
type LogsOptions struct {
	Follow     bool
	Timestamps bool
	Tail       int // -1: all
	Since      time.Time
	Until      time.Time
}

// Logs copies the container's logged output to stdout and stderr, streams
// kept apart; with Follow it goes on until the container is gone for good.
func (e *Engine) Logs(ctx context.Context, ref string, o LogsOptions, stdout, stderr io.Writer) error {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return err
	}
	if c.HostConfig.LogConfig.Type == "none" {
		return fmt.Errorf("%w: configured logging driver does not support reading", ErrInvalid)
	}
	dir := e.runDir(c.ID)
	lo := shim.LogOptions{Tail: o.Tail, Since: o.Since, Until: o.Until, Stdout: true, Stderr: true, Follow: o.Follow,
		Done: func() bool { return !shim.Alive(dir) }}
	if c.State.Status != StatusRunning && c.State.Status != StatusPaused && c.State.Status != StatusRestarting {
		lo.Follow = false
	}
	buf := make([]byte, 0, 256)
	return shim.ReadLogs(ctx, e.logPath(c.ID), lo, func(r *jsonlog.Record) error {
		w := stdout
		if r.Stream == jsonlog.Stderr {
			w = stderr
		}
		if o.Timestamps {
			buf = r.Time.UTC().AppendFormat(buf[:0], time.RFC3339Nano)
			buf = append(buf, ' ')
			buf = append(buf, r.Log...)
			_, err := w.Write(buf)
			return err
		}
		_, err := w.Write(r.Log)
		return err
	})
}
