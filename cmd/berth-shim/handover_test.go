package main

import "testing"

func TestHandover(t *testing.T) {
	c := &client{}
	tests := []struct {
		name  string
		steps func(h *handover) // before wait
		want  bool              // wait: the client recorded the exit
	}{
		{"taken and done", func(h *handover) {
			h.claim(c)
			h.offer()
			if err := h.take(); err != nil {
				t.Errorf("take after offer: %v", err)
			}
			h.done()
		}, true},
		{"taken and abandoned", func(h *handover) {
			h.claim(c)
			h.offer()
			_ = h.take()
			h.abandon()
		}, false},
		{"done without take", func(h *handover) {
			h.claim(c)
			h.offer()
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
	if h.offer() {
		t.Errorf("offer without a claimant = true")
	}
	h.claim(c)
	h.release(c)
	if h.offer() {
		t.Errorf("offer after the claimant went away = true")
	}
	h = newHandover()
	h.claim(c)
	h.claim(&client{}) // a second claimant is not taken at its word
	h.release(&client{})
	if !h.offer() {
		t.Errorf("offer with the first claimant connected = false")
	}
}
