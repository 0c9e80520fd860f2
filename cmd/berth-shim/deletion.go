package main

// deletion is the container's final `runtime delete`. With a claimant it
// runs while the claimant records the exit, so that the runtime's process
// start (some 20 ms here) overlaps the client's work; a claimant may wait
// for it (wait-deleted), and one that removed the container leaves it to
// the monitor (see package protocol, "Exit hand-over").
type deletion struct {
	done chan struct{} // closed when the runtime is done
	err  error         // the delete's failure; read after done
}

func newDeletion() *deletion { return &deletion{done: make(chan struct{})} }

// finish records the outcome of the delete and releases its waiters.
func (d *deletion) finish(err error) {
	d.err = err
	close(d.done)
}

// wait waits for the delete and returns its failure.
func (d *deletion) wait() error {
	<-d.done
	return d.err
}

// deleting makes del the delete of the final exit; call it before offer,
// so that a taker always finds it.
func (h *handover) deleting(del *deletion) {
	h.mu.Lock()
	h.del = del
	h.mu.Unlock()
}

// deletion is the delete of the final exit; nil before deleting.
func (h *handover) deletion() *deletion {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.del
}
