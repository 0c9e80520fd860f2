package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/shim"
)

// TestWaitOfARemovedRmContainer: a foreground run that could not take the
// exit over from the monitor waits by ID; when the monitor's exit command
// has removed the --rm container already, the exit it left behind is the
// answer (once), not "No such container". Other refs are never paths.
func TestWaitOfARemovedRmContainer(t *testing.T) {
	ctx := context.Background()
	e := testEngine(t)
	e.opts.Root = t.TempDir()
	if err := os.MkdirAll(e.containersDir(), 0o711); err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("ab", 32)
	e.leaveTombstone(id, &shim.Exit{ExitCode: 6})
	if code, err := e.Wait(ctx, id); code != 6 || err != nil {
		t.Errorf("Wait of a removed --rm container = %d, %v; want 6 from its tombstone", code, err)
	}
	if _, err := e.Wait(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Wait = %v, want ErrNotFound (the tombstone is taken once)", err)
	}
	victim := filepath.Join(e.opts.State, "victim")
	if err := os.WriteFile(victim, []byte("3"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, err := e.Wait(ctx, "../victim"); err == nil {
		t.Errorf("Wait ../victim = %d, nil; want an error", code)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("Wait ../victim touched %s: %v", victim, err)
	}
}
