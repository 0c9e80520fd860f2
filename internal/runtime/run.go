package runtime

import (
	"fmt"
	"os"

	"github.com/berthproject/berth/internal/console"
)

// Run creates and starts container id; unless detach, it waits for the
// init to exit, destroys the container and returns the exit code.
func (r *Runtime) Run(id string, o CreateOpts, detach bool) (int, error) {
	o.relayConsole = !detach
	c, st, err := r.create(id, &o)
	if err != nil {
		return -1, err
	}
	defer c.conn.Close()
	if err := r.start(st); err != nil {
		return -1, err
	}
	if detach {
		return 0, nil
	}
	if c.console != nil {
		master, err := console.RecvFd(c.console)
		c.console.Close()
		if err != nil {
			return -1, err
		}
		go func() { _ = console.Relay(master, os.Stdin, os.Stdout) }()
	}
	stop := forwardSignals(c.pid)
	code, err := c.wait()
	stop()
	if err != nil {
		return -1, err
	}
	// The init is gone; take down what it left and the container itself.
	if err := r.Delete(id, true); err != nil {
		return code, fmt.Errorf("delete container %s: %w", id, err)
	}
	return code, nil
}
