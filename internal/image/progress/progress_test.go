package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestHumanSizeAndBar(t *testing.T) {
	sizes := []struct {
		n    int64
		want string
	}{{0, "0B"}, {999, "999B"}, {1000, "1kB"}, {1234567, "1.23MB"}, {45600000, "45.6MB"}, {2e9, "2GB"}}
	for _, tt := range sizes {
		if got := HumanSize(tt.n); got != tt.want {
			t.Errorf("HumanSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	bars := []struct {
		cur, total int64
		want       string
	}{{0, 10, "[>         ]"}, {5, 10, "[=====>    ]"}, {10, 10, "[==========]"}, {12, 10, "[==========]"}, {1, 0, ""}}
	for _, tt := range bars {
		if got := Bar(tt.cur, tt.total, 10); got != tt.want {
			t.Errorf("Bar(%d, %d) = %q, want %q", tt.cur, tt.total, got, tt.want)
		}
	}
}

func events(r *Renderer) {
	r.Event(Event{ID: "aaaaaaaaaaaa", Status: PullingFsLayer})
	r.Event(Event{ID: "bbbbbbbbbbbb", Status: AlreadyExists})
	r.Event(Event{ID: "aaaaaaaaaaaa", Status: Downloading, Current: 500000, Total: 1000000})
	r.Event(Event{ID: "aaaaaaaaaaaa", Status: Downloading, Current: 1000000, Total: 1000000})
	r.Event(Event{ID: "aaaaaaaaaaaa", Status: PullComplete})
}

func TestRendererModes(t *testing.T) {
	tests := []struct {
		mode Mode
		want string
	}{
		{Quiet, ""},
		{Plain, "aaaaaaaaaaaa: Pulling fs layer\nbbbbbbbbbbbb: Already exists\naaaaaaaaaaaa: Downloading\naaaaaaaaaaaa: Pull complete\n"},
		// On a terminal each event redraws every line in place.
		{Terminal, "" +
			"\x1b[2Kaaaaaaaaaaaa: Pulling fs layer\n" +
			"\x1b[1A\x1b[2Kaaaaaaaaaaaa: Pulling fs layer\n\x1b[2Kbbbbbbbbbbbb: Already exists\n" +
			"\x1b[2A\x1b[2Kaaaaaaaaaaaa: Downloading [=========================>                        ] 500kB/1MB  1MB/s\n\x1b[2Kbbbbbbbbbbbb: Already exists\n" +
			"\x1b[2A\x1b[2Kaaaaaaaaaaaa: Downloading [==================================================] 1MB/1MB  1MB/s\n\x1b[2Kbbbbbbbbbbbb: Already exists\n" +
			"\x1b[2A\x1b[2Kaaaaaaaaaaaa: Pull complete\n\x1b[2Kbbbbbbbbbbbb: Already exists\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		r := NewRenderer(&buf, tt.mode)
		clock := time.Unix(1000, 0)
		r.now = func() time.Time { clock = clock.Add(500 * time.Millisecond); return clock }
		events(r)
		if got := buf.String(); got != tt.want {
			t.Errorf("mode %d output:\n%q\nwant\n%q", tt.mode, got, tt.want)
		}
	}
	// Auto on a non-terminal is plain.
	var buf bytes.Buffer
	events(NewRenderer(&buf, Auto))
	if !strings.HasPrefix(buf.String(), "aaaaaaaaaaaa: Pulling fs layer\n") || strings.Contains(buf.String(), "\x1b") {
		t.Errorf("Auto on a buffer drew %q, want plain lines", buf.String())
	}
}
