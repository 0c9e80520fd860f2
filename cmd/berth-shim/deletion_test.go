package main

import (
	"errors"
	"testing"
)

func TestHandoverDeletion(t *testing.T) {
	h := newHandover()
	if d := h.deletion(); d != nil {
		t.Errorf("deletion() before deleting = %v, want nil", d)
	}
	h.claim(&client{}, nil)
	del := newDeletion()
	h.deleting(del)
	if !h.offer() {
		t.Fatalf("offer with a claimant = false")
	}
	if err := h.take(); err != nil {
		t.Fatalf("take after offer: %v", err)
	}
	if h.deletion() != del {
		t.Errorf("deletion() after the take is not the one being deleted")
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
