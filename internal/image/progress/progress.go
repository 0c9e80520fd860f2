// Package progress carries per-layer progress of pulls, pushes and loads and
// draws it as Docker does: on a terminal one line per layer with a bar, sizes
// and speed, redrawn in place; otherwise one plain line per status change;
// nothing when quiet.
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Statuses, as Docker words them.
const (
	PullingFsLayer   = "Pulling fs layer"
	Waiting          = "Waiting"
	Downloading      = "Downloading"
	Verifying        = "Verifying Checksum"
	DownloadComplete = "Download complete"
	Extracting       = "Extracting"
	PullComplete     = "Pull complete"
	AlreadyExists    = "Already exists"
	Preparing        = "Preparing"
	Pushing          = "Pushing"
	Pushed           = "Pushed"
	LayerExists      = "Layer already exists"
	Mounted          = "Mounted from"
	Loading          = "Loading layer"
)

// Event is the progress of one item (a layer, by its short digest).
type Event struct {
	ID             string
	Status         string
	Current, Total int64
}

// Func receives events; it must be safe for concurrent calls (Renderer is).
type Func func(Event)

// Mode chooses how a Renderer draws.
type Mode int

const (
	// Auto draws bars on a terminal, plain lines otherwise.
	Auto Mode = iota
	// Terminal always draws bars (ANSI cursor movement).
	Terminal
	// Plain prints one line per status change.
	Plain
	// Quiet prints nothing.
	Quiet
)

// IsTerminal tells whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Renderer draws events to a writer.
type Renderer struct {
	w    io.Writer
	mode Mode
	now  func() time.Time

	mu    sync.Mutex
	order []string
	items map[string]*item
	drawn int // lines drawn by the last terminal redraw
}

type item struct {
	ev           Event
	start        time.Time
	startCurrent int64
}

// NewRenderer makes a renderer; Auto picks Terminal or Plain from w.
func NewRenderer(w io.Writer, mode Mode) *Renderer {
	if mode == Auto {
		mode = Plain
		if IsTerminal(w) {
			mode = Terminal
		}
	}
	return &Renderer{w: w, mode: mode, now: time.Now, items: map[string]*item{}}
}

// Func is the renderer as a progress callback.
func (r *Renderer) Func() Func { return r.Event }

// Event records and draws one event.
func (r *Renderer) Event(e Event) {
	if r.mode == Quiet {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	it, ok := r.items[e.ID]
	if !ok {
		it = &item{}
		r.items[e.ID] = it
		r.order = append(r.order, e.ID)
	}
	changed := !ok || it.ev.Status != e.Status
	if changed {
		it.start, it.startCurrent = r.now(), 0
	}
	it.ev = e
	switch r.mode {
	case Plain:
		if changed {
			fmt.Fprintln(r.w, r.plainLine(e))
		}
	case Terminal:
		r.redraw()
	}
}

func (r *Renderer) plainLine(e Event) string {
	if e.ID == "" {
		return e.Status
	}
	return e.ID + ": " + e.Status
}

// redraw moves the cursor up over the previous drawing and draws every line.
func (r *Renderer) redraw() {
	var b strings.Builder
	if r.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", r.drawn)
	}
	for _, id := range r.order {
		b.WriteString("\x1b[2K")
		b.WriteString(r.line(r.items[id]))
		b.WriteString("\n")
	}
	r.drawn = len(r.order)
	io.WriteString(r.w, b.String())
}

// line renders "id: Status [=====>     ]  1.2MB/3.4MB  5.6MB/s".
func (r *Renderer) line(it *item) string {
	e := it.ev
	s := r.plainLine(e)
	if e.Total <= 0 || (e.Status != Downloading && e.Status != Extracting && e.Status != Pushing && e.Status != Loading) {
		return s
	}
	return s + " " + Bar(e.Current, e.Total, 50) + " " + HumanSize(e.Current) + "/" + HumanSize(e.Total) + r.speed(it)
}

func (r *Renderer) speed(it *item) string {
	d := r.now().Sub(it.start).Seconds()
	if d < 0.2 || it.ev.Current <= it.startCurrent {
		return ""
	}
	return fmt.Sprintf("  %s/s", HumanSize(int64(float64(it.ev.Current-it.startCurrent)/d)))
}

// Bar draws "[=====>      ]" width characters wide.
func Bar(current, total int64, width int) string {
	if total <= 0 {
		return ""
	}
	if current > total {
		current = total
	}
	n := int(float64(width) * float64(current) / float64(total))
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	return "[" + bar + "]"
}

// HumanSize is Docker's decimal size: "12.3MB".
func HumanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	return fmt.Sprintf("%.3g%s", f, units[i])
}
