package main

import (
	"errors"
	"testing"
)

func TestHandover(t *testing.T) {
	c := &client{}
	tests := []struct {
		name  string
		steps func(h *handover) // before wait
		want  bool              // wait: the client recorded the exit
	}{
		{"taken and done", func(h *handover) {
			h.claim(c)
			h.offer(newDeletion())
			if err := h.take(); err != nil {
				t.Errorf("take after offer: %v", err)
			}
			h.done()
		}, true},
		{"taken and abandoned", func(h *handover) {
			h.claim(c)
			h.offer(newDeletion())
			_ = h.take()
			h.abandon()
		}, false},
		{"done without take", func(h *handover) {
			h.claim(c)
			h.offer(newDeletion())
			h.done()
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
	if h.offer(newDeletion()) {
		t.Errorf("offer without a claimant = true")
	}
	h.claim(c)
	h.release(c)
	if h.offer(newDeletion()) {
		t.Errorf("offer after the claimant went away = true")
	}
	h = newHandover()
	h.claim(c)
	h.claim(&client{}) // a second claimant is not taken at its word
	h.release(&client{})
	if !h.offer(newDeletion()) {
		t.Errorf("offer with the first claimant connected = false")
	}
}

func TestHandoverDeletion(t *testing.T) {
	h := newHandover()
	if d := h.deletion(); d != nil {
		t.Errorf("deletion() before an offer = %v, want nil", d)
	}
	h.claim(&client{})
	del := newDeletion()
	if !h.offer(del) {
		t.Fatalf("offer with a claimant = false")
	}
	if h.deletion() != del {
		t.Errorf("deletion() after the offer is not the offered one")
	}
	select {
	case <-del.done:
		t.Errorf("the deletion is done before finish")
	default:
	}
	go del.finish(errors.New("OCI runtime delete failed: busy"))
	if err := h.deletion().wait(); err == nil || err.Error() != "OCI runtime delete failed: busy" {
		t.Errorf("deletion wait() = %v, want the delete's failure", err)
	}
}
