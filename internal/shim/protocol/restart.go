package protocol

import (
	"errors"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Restart policy names, as Docker spells them.
const (
	RestartNo            = "no"
	RestartAlways        = "always"
	RestartUnlessStopped = "unless-stopped"
	RestartOnFailure     = "on-failure"
)

// RestartPolicy says when the monitor starts an exited container again.
type RestartPolicy struct {
	Name              string // one of the Restart* names
	MaximumRetryCount int    // on-failure only; 0: no limit
}

// ParseRestartPolicy parses the --restart value: "" or no, always,
// unless-stopped, on-failure or on-failure:N.
func ParseRestartPolicy(s string) (RestartPolicy, error) {
	name, count, hasCount := strings.Cut(s, ":")
	switch name {
	case "", RestartNo, RestartAlways, RestartUnlessStopped:
		if hasCount {
			return RestartPolicy{}, &FieldError{Field: "--restart", Err: errors.New("maximum retry count cannot be used with restart policy '" + name + "'")}
		}
		if name == "" {
			name = RestartNo
		}
		return RestartPolicy{Name: name}, nil
	case RestartOnFailure:
		p := RestartPolicy{Name: name}
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				return RestartPolicy{}, &FieldError{Field: "--restart", Err: errors.New("maximum retry count must be a non-negative integer: " + strconv.Quote(count))}
			}
			p.MaximumRetryCount = n
		}
		return p, nil
	}
	return RestartPolicy{}, &FieldError{Field: "--restart", Err: errors.New("invalid restart policy " + strconv.Quote(s) + " (want no, always, unless-stopped or on-failure[:N])")}
}

// String returns the policy in --restart syntax.
func (p RestartPolicy) String() string {
	if p.Name == RestartOnFailure && p.MaximumRetryCount > 0 {
		return p.Name + ":" + strconv.Itoa(p.MaximumRetryCount)
	}
	if p.Name == "" {
		return RestartNo
	}
	return p.Name
}

// ShouldRestart decides as Docker's restart manager: never once the user
// stopped the container; always and unless-stopped restart whatever the
// exit code; on-failure restarts on a non-zero exit code while fewer than
// MaximumRetryCount restarts were done (no limit when it is 0).
func (p RestartPolicy) ShouldRestart(exitCode, restarts int, stopped bool) bool {
	if stopped {
		return false
	}
	switch p.Name {
	case RestartAlways, RestartUnlessStopped:
		return true
	case RestartOnFailure:
		return exitCode != 0 && (p.MaximumRetryCount == 0 || restarts < p.MaximumRetryCount)
	}
	return false
}

// Restart delays, as Docker's: the first restart waits 100 ms, each next
// one twice as long up to a minute; a run of 10 s or more resets it.
const (
	RestartDelayMin   = 100 * time.Millisecond
	RestartDelayMax   = time.Minute
	RestartDelayReset = 10 * time.Second
)

// Backoff is the delay before the next restart; the zero value is ready.
type Backoff struct{ delay time.Duration }

// Delay returns the last delay given (0: none yet), and SetDelay restores
// it: the monitor carries it across its hand-over to berth-shim-idle.
func (b *Backoff) Delay() time.Duration { return b.delay }

// SetDelay restores a delay returned by Delay.
func (b *Backoff) SetDelay(d time.Duration) { b.delay = d }

// Next returns the delay before restarting a container whose last run
// lasted ran.
func (b *Backoff) Next(ran time.Duration) time.Duration {
	if ran >= RestartDelayReset {
		b.delay = 0
	}
	switch {
	case b.delay == 0:
		b.delay = RestartDelayMin
	case b.delay < RestartDelayMax:
		b.delay *= 2
	}
	if b.delay > RestartDelayMax {
		b.delay = RestartDelayMax
	}
	return b.delay
}

// ExitCode is the exit code of a process as a shell reports it: its exit
// status, or 128+N when signal N killed it.
func ExitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 255
}
