package shimtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/shim"
	"github.com/berthproject/berth/internal/shim/jsonlog"
)

// attachBeforeStart sets c's options to attach (with o) before the
// container starts, and returns where the attachment will be.
func (c *ctr) attachBeforeStart(o shim.AttachOptions) **shim.Attachment {
	var a *shim.Attachment
	c.opts.BeforeStart = func(dir string) error {
		var err error
		a, err = shim.Attach(dir, o)
		return err
	}
	c.t.Cleanup(func() {
		if a != nil {
			a.Close()
		}
	})
	return &a
}

func TestStdinThroughAttachWithStdinOnce(t *testing.T) {
	c := newCtr(t, []string{"cat"})
	c.opts.Stdin, c.opts.StdinOnce = true, true
	ap := c.attachBeforeStart(shim.AttachOptions{Stdin: true, Stdout: true, Stderr: true})
	c.start()
	a := *ap
	if _, err := io.WriteString(a, "hello\nworld\n"); err != nil {
		t.Fatal(err)
	}
	// The end of this client's stdin closes the container's (StdinOnce):
	// cat sees EOF and exits.
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := a.Demux(&stdout, &stderr); err != nil {
		t.Fatalf("Demux: %v", err)
	}
	if stdout.String() != "hello\nworld\n" || stderr.Len() != 0 {
		t.Errorf("attach output = %q, %q; want the input echoed on stdout", stdout.String(), stderr.String())
	}
	if e := c.waitGone(); e.ExitCode != 0 {
		t.Errorf("exit code = %d, want 0", e.ExitCode)
	}
	if got := c.records(); strings.Join(got, "") != "stdout:hello\nstdout:world\n" {
		t.Errorf("log = %q", got)
	}
}

func TestCloseStdinControl(t *testing.T) {
	c := newCtr(t, sh("cat; echo eof"))
	c.opts.Stdin = true
	c.start()
	a, err := shim.Attach(c.sdir, shim.AttachOptions{Stdin: true, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := io.WriteString(a, "one\n"); err != nil {
		t.Fatal(err)
	}
	// Without StdinOnce a detaching client leaves stdin open; the control
	// request closes it.
	waitFor(t, "cat to echo", func() bool { return len(c.records()) == 1 })
	if err := shim.CloseStdin(c.sdir); err != nil {
		t.Fatalf("CloseStdin: %v", err)
	}
	var out bytes.Buffer
	if err := a.Demux(&out, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != "one\neof\n" {
		t.Errorf("output = %q, want one, eof", out.String())
	}
	c.waitGone()
}

func TestTerminalAttachAndResize(t *testing.T) {
	c := newCtr(t, sh("read line; stty size; echo \"got $line\"; exit 4"), func(s *specs.Spec) {
		s.Process.Terminal = true
	})
	c.opts.Tty, c.opts.Stdin = true, true
	ap := c.attachBeforeStart(shim.AttachOptions{Stdin: true, Stdout: true, Stderr: true})
	c.start()
	a := *ap
	if err := shim.Resize(c.sdir, 33, 111); err != nil {
		t.Fatalf("Resize: %v", err)
	}
	if _, err := io.WriteString(a, "ping\r"); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(a) // raw bytes: a terminal has one stream
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"33 111\r\n", "got ping\r\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("terminal output %q lacks %q", out, want)
		}
	}
	if e := c.waitGone(); e.ExitCode != 4 {
		t.Errorf("exit code = %d, want 4", e.ExitCode)
	}
	logged := strings.Join(c.records(), "")
	if !strings.Contains(logged, "stdout:got ping\r\n") {
		t.Errorf("log = %q, want the terminal's output as stdout", logged)
	}
}

func TestResizeWithoutTerminalFails(t *testing.T) {
	c := newCtr(t, []string{"sleep", "1000"})
	c.start()
	if err := shim.Resize(c.sdir, 10, 10); err == nil || !strings.Contains(err.Error(), "no terminal") {
		t.Errorf("Resize without a terminal = %v, want a no terminal error", err)
	}
	if _, err := c.rt("kill", c.id, "KILL"); err != nil {
		t.Fatal(err)
	}
	c.waitGone()
}

func TestAttachClientsStreamsAndLogsReplay(t *testing.T) {
	c := newCtr(t, sh("echo early; echo early-err >&2; read x; echo late; echo late-err >&2"))
	c.opts.Stdin = true
	c.start()
	waitFor(t, "the early output in the log", func() bool { return len(c.records()) == 2 })
	all, err := shim.Attach(c.sdir, shim.AttachOptions{Stdout: true, Stderr: true, Logs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	errOnly, err := shim.Attach(c.sdir, shim.AttachOptions{Stdin: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer errOnly.Close()
	if _, err := io.WriteString(errOnly, "go\n"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var o1, e1, o2, e2 bytes.Buffer
	var err1, err2 error
	wg.Add(2)
	go func() { defer wg.Done(); err1 = all.Demux(&o1, &e1) }()
	go func() { defer wg.Done(); err2 = errOnly.Demux(&o2, &e2) }()
	wg.Wait()
	if err1 != nil || err2 != nil {
		t.Fatalf("Demux: %v, %v", err1, err2)
	}
	if o1.String() != "early\nlate\n" || e1.String() != "early-err\nlate-err\n" {
		t.Errorf("client with logs got %q, %q; want the replay then the live output", o1.String(), e1.String())
	}
	if o2.String() != "" || e2.String() != "late-err\n" {
		t.Errorf("stderr-only client got %q, %q; want late-err only", o2.String(), e2.String())
	}
	c.waitGone()
}

func TestLogRotationAndReadAcrossFiles(t *testing.T) {
	const lines = 400
	c := newCtr(t, sh(fmt.Sprintf("i=0; while [ $i -lt %d ]; do echo line-$i; i=$((i+1)); done", lines)))
	c.opts.LogMaxSize, c.opts.LogMaxFiles = 4096, 100
	c.start()
	c.waitGone()
	rotated, _ := filepath.Glob(c.log + ".*")
	if len(rotated) < 3 {
		t.Errorf("rotated files = %v, want several at 4 KiB each", rotated)
	}
	for _, p := range append(rotated, c.log) {
		if st, err := os.Stat(p); err != nil || st.Size() > 4096 {
			t.Errorf("%s: %v, size over 4096", p, err)
		}
	}
	got := c.records()
	if len(got) != lines {
		t.Fatalf("read %d records across the files, want %d", len(got), lines)
	}
	for i, r := range got {
		if want := fmt.Sprintf("stdout:line-%d\n", i); r != want {
			t.Fatalf("record %d = %q, want %q", i, r, want)
		}
	}
	var tail []string
	err := shim.ReadLogs(context.Background(), c.log, shim.LogOptions{Tail: 150, Stdout: true}, func(r *jsonlog.Record) error {
		tail = append(tail, string(r.Log))
		return nil
	})
	if err != nil || len(tail) != 150 || tail[0] != fmt.Sprintf("line-%d\n", lines-150) {
		t.Errorf("tail 150 = %d records from %q (%v), want from line-%d", len(tail), first(tail), err, lines-150)
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func TestFollowLogsAcrossRotationUntilExit(t *testing.T) {
	const lines = 300
	c := newCtr(t, sh(fmt.Sprintf("read go; i=0; while [ $i -lt %d ]; do echo line-$i; i=$((i+1)); done", lines)))
	c.opts.Stdin = true
	c.opts.LogMaxSize, c.opts.LogMaxFiles = 2048, 1000
	c.start()
	var got []string
	done := make(chan error, 1)
	go func() {
		done <- shim.ReadLogs(context.Background(), c.log, shim.LogOptions{Tail: shim.TailAll, Stdout: true, Follow: true,
			Done: func() bool { return !shim.Alive(c.sdir) }},
			func(r *jsonlog.Record) error {
				got = append(got, string(r.Log))
				return nil
			})
	}()
	a, err := shim.Attach(c.sdir, shim.AttachOptions{Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(a, "go\n"); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if err := <-done; err != nil {
		t.Fatalf("ReadLogs follow: %v", err)
	}
	if len(got) != lines {
		t.Fatalf("followed %d records, want %d", len(got), lines)
	}
	for i, r := range got {
		if want := fmt.Sprintf("line-%d\n", i); r != want {
			t.Fatalf("record %d = %q, want %q", i, r, want)
		}
	}
}

func TestLongLinesAreSplitLikeDockers(t *testing.T) {
	// 40000 bytes and a newline: records of 16384, 16384 and 7232+"\n".
	c := newCtr(t, sh("head -c 40000 /dev/zero | tr '\\0' x; echo; printf tail"))
	c.start()
	c.waitGone()
	var sizes []int
	var last string
	err := shim.ReadLogs(context.Background(), c.log, shim.LogOptions{Tail: shim.TailAll, Stdout: true}, func(r *jsonlog.Record) error {
		sizes = append(sizes, len(r.Log))
		last = string(r.Log)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[16384 16384 7233 4]" || last != "tail" {
		t.Errorf("record sizes = %v (last %q), want [16384 16384 7233 4] ending with the unterminated \"tail\"", sizes, last)
	}
}
