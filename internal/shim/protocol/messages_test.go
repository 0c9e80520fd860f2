package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseHello(t *testing.T) {
	tests := []struct {
		line string
		want Hello
	}{
		{`{"stdin":true,"stdout":true,"stderr":true,"logs":false}`, Hello{Stdin: true, Stdout: true, Stderr: true}},
		{`{"stdout":true}`, Hello{Stdout: true}},
		{`{"logs":true,"stderr":true,"detachKeys":"ctrl-p"}` + "\n", Hello{Logs: true, Stderr: true}},
		{`{}`, Hello{}},
		{`{"stdout":true,"exit":true}`, Hello{Stdout: true, Exit: true}},
	}
	for _, tt := range tests {
		got, err := ParseHello([]byte(tt.line))
		if err != nil || got != tt.want {
			t.Errorf("ParseHello(%q) = %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
	}
	for _, bad := range []string{``, `{"stdin":1}`, `{"stdout":"yes"}`, `stdin`} {
		if _, err := ParseHello([]byte(bad)); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseHello(%q) error = %v, want ErrSyntax", bad, err)
		}
	}
}

func TestHelloRoundTrip(t *testing.T) {
	for _, h := range []Hello{{}, {Stdin: true}, {Stdout: true, Stderr: true, Logs: true}, {Stdout: true, Exit: true}} {
		line := h.Append(nil)
		if !strings.HasSuffix(string(line), "}\n") || strings.Count(string(line), "\n") != 1 {
			t.Errorf("Hello%+v.Append = %q, want one JSON line", h, line)
		}
		if got, err := ParseHello(line); err != nil || got != h {
			t.Errorf("ParseHello(%q) = %+v, %v; want %+v", line, got, err, h)
		}
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		line string
		want string // Request in Append form, or the error's text
	}{
		{`{"resize":{"height":24,"width":80}}`, `{"resize":{"height":24,"width":80}}`},
		{`{"resize":{"width":132}}`, `{"resize":{"height":0,"width":132}}`},
		{`{"close-stdin":true}`, `{"close-stdin":true}`},
		{`{"close-stdin":false}`, `invalid JSON: empty request: want "resize", "close-stdin", "take-exit", "exit-handled", "exit-removed", "wait-deleted" or "kill-after-ms"`},
		{`{}`, `invalid JSON: empty request: want "resize", "close-stdin", "take-exit", "exit-handled", "exit-removed", "wait-deleted" or "kill-after-ms"`},
		{`{"take-exit":true}`, `{"take-exit":true}`},
		{`{"exit-handled":true}`, `{"exit-handled":true}`},
		{`{"exit-removed":true}`, `{"exit-removed":true}`},
		{`{"exit-handled":true,"exit-removed":true}`, `invalid JSON: one request per line`},
		{`{"wait-deleted":true}`, `{"wait-deleted":true}`},
		{`{"kill-after-ms":11000}`, `{"kill-after-ms":11000}`},
		{`{"kill-after-ms":0}`, `kill-after-ms: invalid JSON: expected a positive integer`},
		{`{"kill-after-ms":"1s"}`, `kill-after-ms: invalid JSON: expected a positive integer`},
		{`{"take-exit":1}`, `take-exit: invalid JSON: expected true or false`},
		{`{"take-exit":true,"exit-handled":true}`, `invalid JSON: one request per line`},
		{`{"kill":9}`, `kill: invalid JSON: unknown request`},
		{`{"resize":{"height":-1,"width":80}}`, `resize.height: invalid JSON: expected an integer from 0 to 65535`},
		{`{"resize":{"height":24,"width":70000}}`, `resize.width: invalid JSON: expected an integer from 0 to 65535`},
		{`{"resize":{"height":1,"width":1},"close-stdin":true}`, `invalid JSON: one request per line`},
		{`not json`, `invalid JSON: expected an object`},
	}
	for _, tt := range tests {
		r, err := ParseRequest([]byte(tt.line))
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = strings.TrimSuffix(string(r.Append(nil)), "\n")
		}
		if got != tt.want {
			t.Errorf("ParseRequest(%s) = %s, want %s", tt.line, got, tt.want)
		}
	}
}

func TestReplyRoundTrip(t *testing.T) {
	for _, msg := range []string{"", "resize: the container has no terminal", `quote " and \ newline` + "\n"} {
		line := AppendReply(nil, msg)
		got, err := ParseReply(line)
		if err != nil || got != msg {
			t.Errorf("ParseReply(%q) = %q, %v; want %q", line, got, err, msg)
		}
	}
	if got := string(AppendReply(nil, "")); got != `{"ok":true}`+"\n" {
		t.Errorf("AppendReply ok = %q", got)
	}
	if _, err := ParseReply([]byte(`{}`)); err == nil {
		t.Error(`ParseReply({}) succeeded, want an error`)
	}
}

func TestReady(t *testing.T) {
	tests := []struct {
		r    Ready
		line string
	}{
		{Ready{Pid: 1234}, `{"pid":1234}` + "\n"},
		{Ready{Error: `OCI runtime create failed: exec: "x": not found`}, `{"error":"OCI runtime create failed: exec: \"x\": not found"}` + "\n"},
	}
	for _, tt := range tests {
		if got := string(tt.r.Append(nil)); got != tt.line {
			t.Errorf("Ready%+v.Append = %q, want %q", tt.r, got, tt.line)
		}
		if got, err := ParseReady([]byte(tt.line)); err != nil || got != tt.r {
			t.Errorf("ParseReady(%q) = %+v, %v; want %+v", tt.line, got, err, tt.r)
		}
	}
	for _, bad := range []string{`{}`, `{"pid":0}`, `{"pid":"1"}`, ``} {
		if _, err := ParseReady([]byte(bad)); err == nil {
			t.Errorf("ParseReady(%q) succeeded, want an error", bad)
		}
	}
}

func TestExitRecord(t *testing.T) {
	at := time.Date(2026, 11, 27, 21, 3, 41, 123456789, time.UTC)
	tests := []struct {
		e    Exit
		line string
	}{
		{Exit{ExitCode: 3, FinishedAt: at}, `{"exitCode":3,"oomKilled":false,"finishedAt":"2026-11-27T21:03:41.123456789Z","restartCount":0}`},
		{Exit{ExitCode: 137, OOMKilled: true, FinishedAt: at.Truncate(time.Millisecond), RestartCount: 2, Restarting: true},
			`{"exitCode":137,"oomKilled":true,"finishedAt":"2026-11-27T21:03:41.123Z","restartCount":2,"restarting":true}`},
		{Exit{ExitCode: 1, FinishedAt: at, Error: "OCI runtime start failed: boom"},
			`{"exitCode":1,"oomKilled":false,"finishedAt":"2026-11-27T21:03:41.123456789Z","restartCount":0,"error":"OCI runtime start failed: boom"}`},
	}
	for _, tt := range tests {
		got := string(tt.e.Append(nil))
		if got != tt.line+"\n" {
			t.Errorf("Exit%+v.Append =\n%s\nwant\n%s", tt.e, got, tt.line)
		}
		back, err := ParseExit([]byte(got))
		if err != nil || back != tt.e {
			t.Errorf("ParseExit(%s) = %+v, %v; want %+v", got, back, err, tt.e)
		}
		// The engine may read it with encoding/json too.
		var v struct {
			ExitCode     int       `json:"exitCode"`
			OOMKilled    bool      `json:"oomKilled"`
			FinishedAt   time.Time `json:"finishedAt"`
			RestartCount int       `json:"restartCount"`
		}
		if err := json.Unmarshal([]byte(got), &v); err != nil || v.ExitCode != tt.e.ExitCode || !v.FinishedAt.Equal(tt.e.FinishedAt) {
			t.Errorf("encoding/json reads %s as %+v, %v", got, v, err)
		}
	}
	if _, err := ParseExit([]byte(`{"exitCode":"3"}`)); err == nil || !strings.Contains(err.Error(), "exitCode") {
		t.Errorf("ParseExit with a string exitCode = %v, want an error naming exitCode", err)
	}
}

func TestRunRecord(t *testing.T) {
	at := time.Date(2026, 11, 27, 21, 3, 41, 123456789, time.UTC)
	r := Run{Pid: 4242, StartedAt: at, RestartCount: 3}
	want := `{"pid":4242,"startedAt":"2026-11-27T21:03:41.123456789Z","restartCount":3}` + "\n"
	if got := string(r.Append(nil)); got != want {
		t.Errorf("Run%+v.Append = %s, want %s", r, got, want)
	}
	if back, err := ParseRun([]byte(want)); err != nil || back != r {
		t.Errorf("ParseRun(%s) = %+v, %v; want %+v", want, back, err, r)
	}
	for _, bad := range []string{`{}`, `{"pid":0}`, `{"pid":"1"}`, `{"pid":1,"startedAt":"yesterday"}`} {
		if _, err := ParseRun([]byte(bad)); err == nil {
			t.Errorf("ParseRun(%s) succeeded, want an error", bad)
		}
	}
	ended := []struct {
		exit *Exit
		want bool
	}{
		{nil, false},
		{&Exit{RestartCount: 2}, false}, // the previous run's exit
		{&Exit{RestartCount: 3}, true},
	}
	for _, tt := range ended {
		if got := r.Ended(tt.exit); got != tt.want {
			t.Errorf("Run{RestartCount: 3}.Ended(%+v) = %v, want %v", tt.exit, got, tt.want)
		}
	}
}

func TestFrameHeader(t *testing.T) {
	h := AppendFrameHeader(nil, Stderr, 0x01020304)
	if string(h) != "\x02\x00\x00\x00\x01\x02\x03\x04" {
		t.Errorf("AppendFrameHeader(stderr, 0x01020304) = %q", h)
	}
	if s, n := ParseFrameHeader(h); s != Stderr || n != 0x01020304 {
		t.Errorf("ParseFrameHeader(%q) = %d, %d", h, s, n)
	}
	f := AppendFrame(nil, Stdout, []byte("hi"))
	if string(f) != "\x01\x00\x00\x00\x00\x00\x00\x02hi" {
		t.Errorf("AppendFrame(stdout, hi) = %q", f)
	}
}

func TestParseRestartPolicy(t *testing.T) {
	tests := []struct {
		in   string
		want RestartPolicy
		err  string
	}{
		{"", RestartPolicy{Name: "no"}, ""},
		{"no", RestartPolicy{Name: "no"}, ""},
		{"always", RestartPolicy{Name: "always"}, ""},
		{"unless-stopped", RestartPolicy{Name: "unless-stopped"}, ""},
		{"on-failure", RestartPolicy{Name: "on-failure"}, ""},
		{"on-failure:5", RestartPolicy{Name: "on-failure", MaximumRetryCount: 5}, ""},
		{"on-failure:x", RestartPolicy{}, `--restart: maximum retry count must be a non-negative integer: "x"`},
		{"on-failure:-1", RestartPolicy{}, `--restart: maximum retry count must be a non-negative integer: "-1"`},
		{"always:3", RestartPolicy{}, "--restart: maximum retry count cannot be used with restart policy 'always'"},
		{"sometimes", RestartPolicy{}, `--restart: invalid restart policy "sometimes" (want no, always, unless-stopped or on-failure[:N])`},
	}
	for _, tt := range tests {
		got, err := ParseRestartPolicy(tt.in)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != tt.want || gotErr != tt.err {
			t.Errorf("ParseRestartPolicy(%q) = %+v, %q; want %+v, %q", tt.in, got, gotErr, tt.want, tt.err)
		}
		if err == nil && tt.in != "" {
			if s := got.String(); s != tt.in {
				t.Errorf("RestartPolicy%+v.String() = %q, want %q", got, s, tt.in)
			}
		}
	}
}

func TestShouldRestart(t *testing.T) {
	tests := []struct {
		policy   string
		code     int
		restarts int
		stopped  bool
		want     bool
	}{
		{"no", 1, 0, false, false},
		{"always", 0, 0, false, true},
		{"always", 137, 100, false, true},
		{"always", 1, 0, true, false},
		{"unless-stopped", 0, 3, false, true},
		{"unless-stopped", 0, 3, true, false},
		{"on-failure", 0, 0, false, false},
		{"on-failure", 1, 0, false, true},
		{"on-failure", 1, 1000, false, true}, // no maximum
		{"on-failure:2", 1, 0, false, true},
		{"on-failure:2", 1, 1, false, true},
		{"on-failure:2", 1, 2, false, false},
		{"on-failure:2", 1, 0, true, false},
		{"on-failure:2", 0, 0, false, false},
	}
	for _, tt := range tests {
		p, err := ParseRestartPolicy(tt.policy)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.ShouldRestart(tt.code, tt.restarts, tt.stopped); got != tt.want {
			t.Errorf("%s.ShouldRestart(code %d, restarts %d, stopped %v) = %v, want %v", tt.policy, tt.code, tt.restarts, tt.stopped, got, tt.want)
		}
	}
}

func TestBackoffDoublesToAMinuteAndResets(t *testing.T) {
	var b Backoff
	var got []time.Duration
	for i := 0; i < 12; i++ {
		got = append(got, b.Next(time.Second))
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond, 12800 * time.Millisecond,
		25600 * time.Millisecond, 51200 * time.Millisecond, time.Minute, time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays = %v, want %v", got, want)
		}
	}
	if d := b.Next(10 * time.Second); d != 100*time.Millisecond {
		t.Errorf("after a 10 s run the delay = %v, want 100ms", d)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		ws   syscall.WaitStatus
		want int
	}{
		{0, 0},
		{3 << 8, 3},
		{255 << 8, 255},
		{syscall.WaitStatus(syscall.SIGKILL), 137},
		{syscall.WaitStatus(syscall.SIGTERM), 143},
		{syscall.WaitStatus(syscall.SIGSEGV) | 0x80, 139}, // core dumped
	}
	for _, tt := range tests {
		if got := ExitCode(tt.ws); got != tt.want {
			t.Errorf("ExitCode(%#x) = %d, want %d", uint32(tt.ws), got, tt.want)
		}
	}
}
