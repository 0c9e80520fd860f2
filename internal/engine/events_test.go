package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
)

func testEngine(t *testing.T) *Engine {
	return &Engine{opts: Options{State: t.TempDir()}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func collect(t *testing.T, e *Engine, o EventsOptions) []events.Message {
	t.Helper()
	var got []events.Message
	if err := e.Events(context.Background(), o, func(m events.Message) error {
		got = append(got, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func actions(ms []events.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Action)+" "+m.Actor.Attributes["name"])
	}
	return out
}

func TestEventsSinceUntilAndFilters(t *testing.T) {
	e := testEngine(t)
	t0 := time.Now()
	c1 := &Container{ID: "aaaa1111", Name: "web"}
	c2 := &Container{ID: "bbbb2222", Name: "db"}
	e.containerEvent(c1, events.ActionCreate, map[string]string{"tier": "front"})
	e.containerEvent(c2, events.ActionCreate, nil)
	e.containerEvent(c1, events.ActionStart, map[string]string{"tier": "front"})
	e.containerEvent(c1, events.ActionDie, map[string]string{"exitCode": "3"})
	e.Emit(events.VolumeEventType, events.ActionCreate, "data", map[string]string{"driver": "local"})
	t1 := time.Now()

	all := collect(t, e, EventsOptions{Since: t0, Until: t1})
	if want := "[create web create db start web die web create ]"; fmt.Sprint(actions(all)) != want {
		t.Fatalf("all events = %v, want %s", actions(all), want)
	}
	if m := all[3]; m.Type != events.ContainerEventType || m.Actor.ID != "aaaa1111" || m.Actor.Attributes["exitCode"] != "3" || m.Scope != "local" || m.TimeNano == 0 {
		t.Fatalf("die event = %+v", m)
	}
	for _, tc := range []struct {
		filters map[string][]string
		want    string
	}{
		{map[string][]string{"container": {"web"}}, "[create web start web die web]"},
		{map[string][]string{"container": {"bbbb"}}, "[create db]"},
		{map[string][]string{"event": {"create"}, "type": {"container"}}, "[create web create db]"},
		{map[string][]string{"event": {"start", "die"}}, "[start web die web]"},
		{map[string][]string{"label": {"tier=front"}}, "[create web start web]"},
		{map[string][]string{"label": {"tier"}, "event": {"start"}}, "[start web]"},
		{map[string][]string{"type": {"volume"}}, "[create ]"},
		{map[string][]string{"volume": {"data"}}, "[create ]"},
	} {
		got := actions(collect(t, e, EventsOptions{Since: t0, Until: t1, Filters: tc.filters}))
		if fmt.Sprint(got) != tc.want {
			t.Errorf("filters %v: got %v, want %s", tc.filters, got, tc.want)
		}
	}
	// Without Since, only events after the call count.
	if got := collect(t, e, EventsOptions{Until: time.Now().Add(50 * time.Millisecond)}); len(got) != 0 {
		t.Errorf("no --since: got past events %v", actions(got))
	}
	if err := e.Events(context.Background(), EventsOptions{Filters: map[string][]string{"colour": {"red"}}}, nil); err == nil {
		t.Error("an unknown filter was accepted")
	}
}

// A follower sees events written by others while it waits, across a
// rotation of the journal, and stops when its context ends.
func TestEventsFollowAndRotation(t *testing.T) {
	e := testEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan events.Message, 10000)
	done := make(chan error, 1)
	go func() {
		done <- e.Events(ctx, EventsOptions{}, func(m events.Message) error { got <- m; return nil })
	}()
	// A follower without --since skips what was written before it began:
	// write markers until it passes one on, then it is watching.
	for i, watching := 0, false; !watching; i++ {
		e.Emit(events.ContainerEventType, events.ActionStart, fmt.Sprintf("ready-%d", i), nil)
		select {
		case <-got:
			watching = true
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Enough events, with big attributes, to rotate the 1 MiB journal once
	// (1200 events of some 1.1 kB).
	big := strings.Repeat("x", 1000)
	const n = 1200
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < n/4; i++ {
				e.Emit(events.ContainerEventType, events.ActionStart, fmt.Sprintf("c%d-%d", w, i), map[string]string{"pad": big})
			}
		}(w)
	}
	wg.Wait()
	if _, err := os.Stat(filepath.Join(e.eventsDir(), "events.log.1")); err != nil {
		t.Fatalf("the journal was not rotated: %v", err)
	}
	seen := map[string]bool{}
	timeout := time.After(30 * time.Second)
	for len(seen) < n {
		select {
		case m := <-got:
			if strings.HasPrefix(m.Actor.ID, "ready-") {
				continue // a marker written before the follower passed one on
			}
			if seen[m.Actor.ID] {
				t.Fatalf("event %s delivered twice", m.Actor.ID)
			}
			seen[m.Actor.ID] = true
		case <-timeout:
			t.Fatalf("follower saw %d of %d events", len(seen), n)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Events after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Events did not return after its context ended")
	}
}
