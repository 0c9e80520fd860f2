package main

import (
	"errors"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// handover is the container's final exit offered to the attach client
// that asked to record it itself (hello "exit"), in place of the exit
// command: a foreground `run` saves a process start that way. Exactly one
// of the two records the exit: the exit command runs unless the client
// took the exit and said it recorded it (see package protocol, "Exit
// hand-over").
type handover struct {
	mu       sync.Mutex
	claimant *client  // the first client whose hello said "exit", while connected
	pidfd    *os.File // the claimant's process (nil: unknown), watched once the exit is offered
	state    handState
	changed  chan struct{} // a state change, for wait
	del      *deletion     // the runtime's delete of the final exit (see deletion)
	removed  bool          // the taker removed the container (exit-removed)
}

type handState int

const (
	handNone      handState = iota // no final exit yet
	handOffered                    // the final exit waits to be taken
	handTaken                      // a control connection took it
	handDone                       // the taker recorded it
	handAbandoned                  // the taker went away before it said so
	handRefused                    // not taken in time: the exit command records it
)

// takeTimeout is how long an offered exit waits to be taken. The claimant
// takes it as soon as it read the end of the output; only a claimant that
// died (or is stopped) in between makes the monitor wait this long.
const takeTimeout = 10 * time.Second

func newHandover() *handover { return &handover{changed: make(chan struct{}, 1)} }

// claim makes c the claimant, unless there is one. pidfd is the
// client's process (or nil), which the handover owns from here on.
func (h *handover) claim(c *client, pidfd *os.File) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.claimant == nil && h.state == handNone {
		h.claimant = c
		if h.pidfd != nil {
			h.pidfd.Close()
		}
		h.pidfd = pidfd
		return
	}
	if pidfd != nil {
		pidfd.Close()
	}
}

// peerPidfd opens a pidfd of the process at the other end of a unix
// socket (SO_PEERCRED), nil when that fails.
func peerPidfd(fd int) *os.File {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil || cred.Pid <= 0 {
		return nil
	}
	pfd, err := unix.PidfdOpen(int(cred.Pid), 0)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(pfd), "claimant")
}

// release is called when c's connection ended.
func (h *handover) release(c *client) {
	h.mu.Lock()
	if h.claimant == c {
		h.claimant = nil
	}
	h.mu.Unlock()
}

// offer offers the final exit, recorded in exit.json and being deleted
// from the runtime (see deleting), to a claimant still connected; it
// reports whether there is one.
func (h *handover) offer() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.claimant == nil {
		return false
	}
	h.set(handOffered)
	if h.pidfd != nil {
		go h.watch(h.pidfd)
	}
	return true
}

// watch abandons an offered exit as soon as the claimant's process ends
// (a foreground run killed after the end of the output and before it took
// the exit): the exit command records it at once, not after takeTimeout.
// The connection cannot tell: the monitor closes it after the output.
func (h *handover) watch(pidfd *os.File) {
	fds := []unix.PollFd{{Fd: int32(pidfd.Fd()), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(takeTimeout/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return // the offer's timeout decides
		}
		break
	}
	h.mu.Lock()
	if h.state == handOffered {
		h.set(handAbandoned)
	}
	h.mu.Unlock()
}

var errNoExit = errors.New("take-exit: no exit to take (the container has not exited, or its exit was taken or is being recorded)")

// take is the take-exit request.
func (h *handover) take() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != handOffered {
		return errNoExit
	}
	h.set(handTaken)
	return nil
}

// done is the exit-handled request of the taker, or exit-removed
// (removed): then the monitor removes the run directory at the end.
func (h *handover) done(removed bool) {
	h.mu.Lock()
	if h.state == handTaken {
		h.removed = removed
		h.set(handDone)
	}
	h.mu.Unlock()
}

// removedByTaker reports whether the taker removed the container.
func (h *handover) removedByTaker() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state == handDone && h.removed
}

// abandon is called when the taker's connection ends: unless it said the
// exit was recorded, the exit command records it.
func (h *handover) abandon() {
	h.mu.Lock()
	if h.state == handTaken {
		h.set(handAbandoned)
	}
	h.mu.Unlock()
}

// set changes the state; h.mu is held.
func (h *handover) set(s handState) {
	h.state = s
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// wait waits for the outcome of an offer: true when the taker recorded
// the exit, false when the exit command must.
func (h *handover) wait() bool {
	timeout := time.NewTimer(takeTimeout)
	defer timeout.Stop()
	expired := false
	for {
		h.mu.Lock()
		switch h.state {
		case handDone:
			h.mu.Unlock()
			return true
		case handAbandoned:
			h.mu.Unlock()
			return false
		case handOffered:
			if expired {
				h.set(handRefused)
				h.mu.Unlock()
				return false
			}
		}
		h.mu.Unlock()
		select {
		case <-h.changed:
		case <-timeout.C:
			expired = true
		}
	}
}
