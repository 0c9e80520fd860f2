package main

import (
	"io"
	"testing"
)

// chunks is a reader that returns one chunk per Read, as a terminal
// returns what was typed since the last read.
type chunks [][]byte

func (c *chunks) Read(p []byte) (int, error) {
	if len(*c) == 0 {
		return 0, io.EOF
	}
	n := copy(p, (*c)[0])
	*c = (*c)[1:]
	return n, nil
}

// TestDetachReader: the detach keys end the input after what came before
// them, are never passed on, and a broken start of them is passed on.
func TestDetachReader(t *testing.T) {
	const p, q, x = 0x10, 0x11, 0x18
	tests := []struct {
		name     string
		keys     string
		reads    []string
		out      string
		detached bool
	}{
		{"typed one by one", "", []string{"l", "s", "\r", string([]byte{p}), string([]byte{q}), "more"}, "ls\r", true},
		{"in one read", "", []string{"ls\r" + string([]byte{p, q}) + "more"}, "ls\r", true},
		{"broken start passed on", "", []string{string([]byte{p}), "a"}, string([]byte{p}) + "a", false},
		{"start held at the end of input", "", []string{"a" + string([]byte{p})}, "a" + string([]byte{p}), false},
		{"a start again after a broken one", "", []string{string([]byte{p, p}), string([]byte{q})}, string([]byte{p}), true},
		{"custom keys: default ones pass", "ctrl-x,x", []string{string([]byte{p, q}), "a", string([]byte{x}), "x"}, string([]byte{p, q}) + "a", true},
		{"one key", "ctrl-x", []string{"ab" + string([]byte{x})}, "ab", true},
	}
	for _, tt := range tests {
		keys, err := parseDetachKeys(tt.keys)
		if err != nil {
			t.Fatal(err)
		}
		var in chunks
		for _, r := range tt.reads {
			in = append(in, []byte(r))
		}
		d := &detachReader{r: &in, keys: keys, detached: make(chan struct{})}
		got, err := io.ReadAll(d)
		detached := false
		select {
		case <-d.detached:
			detached = true
		default:
		}
		if err != nil || string(got) != tt.out || detached != tt.detached {
			t.Errorf("%s: read %q (err %v), detached %v; want %q, %v", tt.name, got, err, detached, tt.out, tt.detached)
		}
	}
}
