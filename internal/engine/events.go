package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"golang.org/x/sys/unix"
)

// Events.
//
// With no daemon to hold them, events go to a journal: one JSON object per
// line (Docker's events.Message) appended to STATE/events/events.log by
// whichever process did the thing: the CLI for create/start/stop/..., the
// monitor's exit command for die and oom. Appends of one line are atomic
// with O_APPEND. The journal lives on the state tmpfs, as Docker's event
// ring lives in the daemon's memory: events do not survive a reboot. When
// it passes eventsMaxSize it is rotated once (events.log.1), under a lock,
// so a reader with --since sees at least the last eventsMaxSize bytes.
// A follower waits for appends with inotify on the directory.

const eventsMaxSize = 1 << 20

func (e *Engine) eventsDir() string { return filepath.Join(e.opts.State, "events") }

// Emit records an event. It never fails the operation it describes: an
// event that cannot be written is logged and dropped.
func (e *Engine) Emit(typ events.Type, action events.Action, id string, attrs map[string]string) {
	now := time.Now()
	m := events.Message{Type: typ, Action: action, Actor: events.Actor{ID: id, Attributes: attrs},
		Scope: "local", Time: now.Unix(), TimeNano: now.UnixNano()}
	line, err := json.Marshal(m)
	if err != nil {
		return
	}
	if err := e.appendEvent(append(line, '\n')); err != nil {
		e.log.Debug("event dropped", "action", action, "id", id, "err", err)
	}
}

func (e *Engine) appendEvent(line []byte) error {
	dir := e.eventsDir()
	path := filepath.Join(dir, "events.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		}
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(line); err != nil {
		return err
	}
	if st, err := f.Stat(); err == nil && st.Size() > eventsMaxSize {
		e.rotateEvents(path, st)
	}
	return nil
}

// rotateEvents moves a full journal aside, once: two writers that both saw
// it full take the lock in turn and the second finds a new file.
func (e *Engine) rotateEvents(path string, full os.FileInfo) {
	lk, err := os.OpenFile(filepath.Join(e.eventsDir(), "events.lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return
	}
	defer lk.Close()
	if unix.Flock(int(lk.Fd()), unix.LOCK_EX) != nil {
		return
	}
	if st, err := os.Stat(path); err == nil && os.SameFile(st, full) {
		_ = os.Rename(path, path+".1")
	}
}

// containerEvent records an event of c with Docker's attributes: name,
// image, the container's labels, and extra.
func (e *Engine) containerEvent(c *Container, action events.Action, extra map[string]string) {
	attrs := map[string]string{"name": c.Name, "image": string(c.Image)}
	if c.Config != nil {
		if c.Config.Image != "" {
			attrs["image"] = c.Config.Image // as the user named it, as Docker shows it
		}
		for k, v := range c.Config.Labels {
			attrs[k] = v
		}
	}
	for k, v := range extra {
		attrs[k] = v
	}
	e.Emit(events.ContainerEventType, action, c.ID, attrs)
}

// EventsOptions select events, as `docker events` does.
type EventsOptions struct {
	// Since and Until bound the events' times; zero means no bound. With
	// no Until the stream follows new events until ctx ends.
	Since, Until time.Time
	// Filters: container, event, image, label, type, volume, network,
	// scope; values of one key are alternatives, keys must all match.
	Filters map[string][]string
}

// validEventFilters are the filter keys Events knows.
var validEventFilters = map[string]bool{"container": true, "event": true, "image": true, "label": true,
	"type": true, "volume": true, "network": true, "scope": true, "daemon": true}

// Events calls fn for each recorded event matching o, oldest first: past
// ones from Since (none when Since is zero), then new ones as they come
// until Until passes or ctx ends.
func (e *Engine) Events(ctx context.Context, o EventsOptions, fn func(events.Message) error) error {
	for k := range o.Filters {
		if !validEventFilters[k] {
			return fmt.Errorf("%w: invalid filter '%s'", ErrInvalid, k)
		}
	}
	start := time.Now()
	dir := e.eventsDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Watch before reading, so that nothing appended in between is missed.
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("watch the event journal: %w", err)
	}
	defer unix.Close(in)
	if _, err := unix.InotifyAddWatch(in, dir, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		return fmt.Errorf("watch the event journal: %w", err)
	}
	emit := func(m events.Message) (stop bool, err error) {
		t := time.Unix(0, m.TimeNano)
		if !o.Until.IsZero() && t.After(o.Until) {
			return true, nil
		}
		if o.Since.IsZero() && t.Before(start) || !o.Since.IsZero() && t.Before(o.Since) {
			return false, nil
		}
		if !matchEvent(m, o.Filters) {
			return false, nil
		}
		return false, fn(m)
	}
	path := filepath.Join(dir, "events.log")
	// read holds the journal files (by inode) already read, so that after
	// a rotation the follower catches up on the rotated file only if it
	// had not read it.
	read := map[uint64]bool{}
	catchUp := func() (bool, error) {
		var st unix.Stat_t
		if unix.Stat(path+".1", &st) != nil || read[st.Ino] {
			return false, nil
		}
		read[st.Ino] = true
		return readEvents(path+".1", emit)
	}
	if !o.Since.IsZero() {
		if stop, err := catchUp(); err != nil || stop {
			return err
		}
	}
	var f *os.File
	var r *bufio.Reader
	var partial []byte
	drain := func() (bool, error) {
		for r != nil {
			line, err := r.ReadBytes('\n')
			if err == io.EOF {
				partial = append(partial, line...)
				return false, nil
			}
			if err != nil {
				return false, err
			}
			if len(partial) > 0 {
				line = append(partial, line...)
				partial = nil
			}
			var m events.Message
			if json.Unmarshal(bytes.TrimSpace(line), &m) != nil {
				continue
			}
			if stop, err := emit(m); err != nil || stop {
				return stop, err
			}
		}
		return false, nil
	}
	open := func() {
		nf, err := os.Open(path)
		if err != nil {
			return
		}
		var st unix.Stat_t
		if unix.Fstat(int(nf.Fd()), &st) == nil {
			read[st.Ino] = true
		}
		f, r, partial = nf, bufio.NewReader(nf), nil
	}
	open()
	var old *oldJournal
	defer func() {
		if f != nil {
			f.Close()
		}
		if old != nil {
			old.f.Close()
		}
	}()
	for {
		if stop, err := drain(); err != nil || stop {
			return err
		}
		if !o.Until.IsZero() && !time.Now().Before(o.Until) {
			return nil
		}
		// Rotated (or created): finish the old file, catch up on the
		// rotated one if it is not the one just read, go on in the new.
		if st, err := os.Stat(path); err == nil && (f == nil || !sameFile(f, st)) {
			if f != nil {
				if stop, err := drain(); err != nil || stop {
					return err
				}
				// A writer that opened the old file just before the
				// rotation may still append to it: keep reading it for
				// a moment.
				if old != nil {
					old.f.Close()
				}
				old = &oldJournal{f: f, r: r, partial: partial, until: time.Now().Add(2 * time.Second)}
				f, r = nil, nil
			}
			if stop, err := catchUp(); err != nil || stop {
				return err
			}
			open()
			continue
		}
		if old != nil {
			// Drain it with the shared reader state swapped in.
			f, r, partial, old.f, old.r, old.partial = old.f, old.r, old.partial, f, r, partial
			stop, err := drain()
			f, r, partial, old.f, old.r, old.partial = old.f, old.r, old.partial, f, r, partial
			if err != nil || stop {
				return err
			}
			if time.Now().After(old.until) {
				old.f.Close()
				old = nil
			}
		}
		wait := 500 * time.Millisecond
		if !o.Until.IsZero() {
			wait = min(wait, time.Until(o.Until)+time.Millisecond)
		}
		if err := waitInotify(ctx, in, wait); err != nil {
			return nil // ctx ended: the stream ends cleanly
		}
	}
}

// oldJournal is a rotated journal still read for a moment.
type oldJournal struct {
	f       *os.File
	r       *bufio.Reader
	partial []byte
	until   time.Time
}

func sameFile(f *os.File, st os.FileInfo) bool {
	fst, err := f.Stat()
	return err == nil && os.SameFile(fst, st)
}

// waitInotify waits up to d for an inotify event on in (and drains them);
// it returns ctx's error once ctx is done.
func waitInotify(ctx context.Context, in int, d time.Duration) error {
	deadline := time.Now().Add(d)
	var buf [4096]byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		// Short slices, so that a cancelled ctx is seen soon.
		ms := int(min(left, 100*time.Millisecond) / time.Millisecond)
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(in), Events: unix.POLLIN}}, max(ms, 1))
		if err != nil && err != unix.EINTR {
			return err
		}
		if n > 0 {
			for {
				if _, err := unix.Read(in, buf[:]); err != nil {
					break
				}
			}
			return nil
		}
	}
}

// readEvents passes each event of the file at path to emit.
func readEvents(path string, emit func(events.Message) (bool, error)) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m events.Message
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		if stop, err := emit(m); err != nil || stop {
			return stop, err
		}
	}
	return false, sc.Err()
}

// matchEvent applies Docker's event filters.
func matchEvent(m events.Message, filters map[string][]string) bool {
	any := func(key string, match func(v string) bool) bool {
		vals, ok := filters[key]
		if !ok {
			return true
		}
		for _, v := range vals {
			if match(v) {
				return true
			}
		}
		return false
	}
	attr := m.Actor.Attributes
	idOrName := func(v string) bool {
		return v == m.Actor.ID || (len(v) >= 1 && strings.HasPrefix(m.Actor.ID, v)) || v == attr["name"]
	}
	return any("type", func(v string) bool { return string(m.Type) == v }) &&
		any("event", func(v string) bool {
			// "health_status" matches its "health_status: healthy" forms.
			return string(m.Action) == v || strings.HasPrefix(string(m.Action), v+":")
		}) &&
		any("scope", func(v string) bool { return m.Scope == v }) &&
		any("container", func(v string) bool { return m.Type == events.ContainerEventType && idOrName(v) }) &&
		any("volume", func(v string) bool { return m.Type == events.VolumeEventType && idOrName(v) }) &&
		any("network", func(v string) bool { return m.Type == events.NetworkEventType && idOrName(v) }) &&
		any("daemon", func(v string) bool { return m.Type == events.DaemonEventType && idOrName(v) }) &&
		any("image", func(v string) bool {
			if m.Type == events.ImageEventType {
				return idOrName(v) || strings.HasPrefix(strings.TrimPrefix(m.Actor.ID, "sha256:"), strings.TrimPrefix(v, "sha256:"))
			}
			return attr["image"] == v || strings.TrimSuffix(attr["image"], ":latest") == strings.TrimSuffix(v, ":latest")
		}) &&
		any("label", func(v string) bool {
			k, val, hasVal := strings.Cut(v, "=")
			got, ok := attr[k]
			return ok && (!hasVal || got == val)
		})
}
