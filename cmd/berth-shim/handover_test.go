package main

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

func TestHandover(t *testing.T) {
	c := &client{}
	tests := []struct {
		name  string
		steps func(h *handover) // before wait
		want  bool              // wait: the client recorded the exit
	}{
		{"taken and done", func(h *handover) {
			h.claim(c, nil)
			h.offer()
			if err := h.take(); err != nil {
				t.Errorf("take after offer: %v", err)
			}
			h.done(false)
		}, true},
		{"taken and abandoned", func(h *handover) {
			h.claim(c, nil)
			h.offer()
			_ = h.take()
			h.abandon()
		}, false},
		{"done without take", func(h *handover) {
			h.claim(c, nil)
			h.offer()
			h.done(false)
			_ = h.take()
			h.abandon()
		}, false},
	}
	for _, tt := range tests {
		h := newHandover()
		tt.steps(h)
		if got := h.wait(); got != tt.want {
			t.Errorf("%s: wait() = %v, want %v", tt.name, got, tt.want)
		}
	}

	h := newHandover()
	if err := h.take(); err == nil {
		t.Errorf("take before the exit succeeded")
	}
	if h.offer() {
		t.Errorf("offer without a claimant = true")
	}
	h.claim(c, nil)
	h.release(c)
	if h.offer() {
		t.Errorf("offer after the claimant went away = true")
	}
	h = newHandover()
	h.claim(c, nil)
	h.claim(&client{}, nil) // a second claimant is not taken at its word
	h.release(&client{})
	if !h.offer() {
		t.Errorf("offer with the first claimant connected = false")
	}
}

// A claimant whose process ends while the exit waits to be taken abandons
// it at once: the exit command records it without waiting for takeTimeout.
func TestHandoverClaimantDiesAfterOffer(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "read x")
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	c := &client{}
	h := newHandover()
	h.claim(c, os.NewFile(uintptr(pfd), "claimant"))
	if !h.offer() {
		t.Fatalf("offer with a claimant = false")
	}
	w.Close() // the claimant ends
	cmd.Wait()
	// wait ends on the claimant's end, or after takeTimeout with handRefused.
	if h.wait() {
		t.Errorf("wait after the claimant died = true, want false")
	}
	if h.state != handAbandoned {
		t.Errorf("state after the claimant died = %v, want handAbandoned (not the timeout's handRefused)", h.state)
	}
}
