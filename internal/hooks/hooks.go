// Package hooks runs OCI lifecycle hooks: each hook's program gets the
// container state as JSON on stdin, its own args and env, and is killed when
// its timeout passes.
package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Run runs the hooks of one lifecycle phase (named by phase, for messages)
// in order and stops at the first failure.
func Run(phase string, list []specs.Hook, state *specs.State) error {
	if len(list) == 0 {
		return nil
	}
	stdin, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("encode state for %s hooks: %w", phase, err)
	}
	for i, h := range list {
		if err := runOne(h, stdin); err != nil {
			return fmt.Errorf("%s hook #%d (%s): %w", phase, i, h.Path, err)
		}
	}
	return nil
}

func runOne(h specs.Hook, stdin []byte) error {
	ctx := context.Background()
	if h.Timeout != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	if len(h.Args) > 0 {
		cmd.Args = h.Args
	}
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A hook that forks a daemon keeping our pipes open must not hold us
	// past its own exit (or its timeout).
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("killed: timeout of %ds expired", *h.Timeout)
	}
	if err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}
