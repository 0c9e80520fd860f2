package shim

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestOptionsArgs(t *testing.T) {
	base := Options{Binary: "/bin/berth-shim", ID: "c1", Bundle: "/b", Runtime: "/bin/rt", Dir: "/d"}
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"minimal", func(*Options) {}, "--id c1 --bundle /b --runtime /bin/rt --dir /d"},
		{"everything", func(o *Options) {
			o.RuntimeRoot, o.Log, o.LogMaxSize, o.LogMaxFiles = "/r", "/d/log", 1024, 5
			o.Tty, o.Stdin, o.StdinOnce, o.Restart, o.OOMFile = true, true, true, "on-failure:3", "/cg/memory.events"
			o.ExitCommand, o.ExitArgs = "/bin/berth", []string{"container", "cleanup", "c1"}
			o.BeforeStart = func(string) error { return nil }
		}, "--id c1 --bundle /b --runtime /bin/rt --runtime-root /r --dir /d --log /d/log --log-max-size 1024 --log-max-files 5 " +
			"--tty --stdin --stdin-once --wait-attach --restart on-failure:3 --oom-file /cg/memory.events " +
			"--exit-command /bin/berth --exit-arg container --exit-arg cleanup --exit-arg c1"},
		{"rotation off", func(o *Options) { o.LogMaxSize = -5 }, "--id c1 --bundle /b --runtime /bin/rt --dir /d --log-max-size -1"},
	}
	for _, tt := range tests {
		o := base
		tt.edit(&o)
		if got := strings.Join(o.Args(), " "); got != tt.want {
			t.Errorf("%s: Args() =\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
}

func TestStartNeedsTheRequiredOptions(t *testing.T) {
	if _, err := Start(Options{ID: "x"}); err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("Start without Binary etc. = %v, want an error naming the required options", err)
	}
}

func TestStartReportsAMonitorThatDiesSilently(t *testing.T) {
	dir := t.TempDir()
	_, err := Start(Options{Binary: "/bin/true", ID: "c1", Bundle: dir, Runtime: "/bin/false", Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "exited without reporting") {
		t.Errorf("Start with a monitor that exits at once = %v, want an error saying so", err)
	}
}

func TestStartRelaysTheReadyError(t *testing.T) {
	dir := t.TempDir()
	// A stand-in monitor that reports a failure on fd 3 as berth-shim does.
	fake := filepath.Join(dir, "fake-shim")
	script := "#!/bin/sh\nprintf '{\"error\":\"OCI runtime create failed: boom\"}\\n' >&3\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Start(Options{Binary: fake, ID: "c1", Bundle: dir, Runtime: "/bin/false", Dir: dir})
	var se *StartError
	if !errors.As(err, &se) || se.Msg != "OCI runtime create failed: boom" {
		t.Errorf("Start = %v, want StartError with the monitor's message", err)
	}
}

func TestReadExitBeforeAndAfter(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadExit(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadExit before the exit = %v, want ErrNotExist", err)
	}
	line := `{"exitCode":3,"oomKilled":true,"finishedAt":"2026-11-27T21:03:41.5Z","restartCount":1}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "exit.json"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := ReadExit(dir)
	if err != nil || e.ExitCode != 3 || !e.OOMKilled || e.RestartCount != 1 || e.FinishedAt.Nanosecond() != 500000000 {
		t.Errorf("ReadExit = %+v, %v", e, err)
	}
}

func TestAliveChecksTheProcessAndItsDir(t *testing.T) {
	dir := t.TempDir()
	if Alive(dir) {
		t.Error("Alive without shim.pid = true")
	}
	// A process whose command line carries "--dir DIR", as a monitor's
	// (the ":" keeps sh from exec'ing sleep in its place).
	cmd := exec.Command("/bin/sh", "-c", "echo ready; sleep 100; :", "--dir", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	write := func(pid int) {
		if err := os.WriteFile(filepath.Join(dir, "shim.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// sh has run (its command line is the one above) once it wrote.
	if _, err := out.Read(make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	write(cmd.Process.Pid)
	if !Alive(dir) {
		t.Error("Alive with the monitor running = false")
	}
	if !Alive(dir + "/") {
		t.Error("Alive(dir + /) = false, want the same directory")
	}
	if Alive(t.TempDir()) {
		t.Error("Alive of another directory = true")
	}
	write(os.Getpid()) // a live process, but not this directory's monitor
	if Alive(dir) {
		t.Error("Alive with a reused pid = true")
	}
	// A kernel thread's command line is empty for good: not a monitor in
	// execve (kthreadd is pid 2 of the initial pid namespace).
	if b, err := os.ReadFile("/proc/2/stat"); err == nil && strings.Contains(string(b), "(kthreadd)") {
		write(2)
		if Alive(dir) {
			t.Error("Alive with the pid of a kernel thread = true")
		}
	}
	write(cmd.Process.Pid)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if Alive(dir) {
		t.Error("Alive after the monitor died = true")
	}
}

func TestDemuxSplitsStreams(t *testing.T) {
	var stream bytes.Buffer
	out := NewStdWriter(&stream, 1)
	errw := NewStdWriter(&stream, 2)
	for _, w := range []struct {
		w *StdWriter
		s string
	}{{out, "hello "}, {errw, "oops\n"}, {out, "world\n"}, {out, ""}, {errw, strings.Repeat("e", 70000)}} {
		if n, err := w.w.Write([]byte(w.s)); err != nil || n != len(w.s) {
			t.Fatalf("StdWriter.Write(%d bytes) = %d, %v", len(w.s), n, err)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := Demux(&stream, &stdout, &stderr); err != nil {
		t.Fatalf("Demux: %v", err)
	}
	if stdout.String() != "hello world\n" || stderr.String() != "oops\n"+strings.Repeat("e", 70000) {
		t.Errorf("Demux = %q, %d bytes of stderr", stdout.String(), stderr.Len())
	}
}

func TestDemuxErrors(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"truncated header", "\x01\x00\x00"},
		{"truncated payload", "\x01\x00\x00\x00\x00\x00\x00\x05abc"},
		{"bad stream", "\x07\x00\x00\x00\x00\x00\x00\x01x"},
	}
	for _, tt := range tests {
		if err := Demux(strings.NewReader(tt.in), io.Discard, io.Discard); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: Demux = %v, want ErrFrame", tt.name, err)
		}
	}
	if err := Demux(strings.NewReader(""), nil, nil); err != nil {
		t.Errorf("Demux of an empty stream = %v, want nil", err)
	}
}

func TestStartPassesTheAttachSocket(t *testing.T) {
	dir := t.TempDir()
	// A stand-in monitor that never listens itself: it checks that it was
	// given the attach socket (fd 4), waits until the client attached
	// through it, and reports a pid.
	fake := filepath.Join(dir, "fake-shim")
	script := `#!/bin/sh
fail() { printf '{"error":"%s"}\n' "$1" >&3; exit 1; }
case " $* " in *" --attach-fd 4 "*) ;; *) fail "no --attach-fd 4 in $*" ;; esac
[ -S /proc/self/fd/4 ] || fail "fd 4 is not a socket"
i=0
while [ ! -e "` + dir + `/attached" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
printf '{"pid":1}\n' >&3
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var att *Attachment
	pid, err := Start(Options{Binary: fake, ID: "c1", Bundle: dir, Runtime: "/bin/false", Dir: dir,
		BeforeStart: func(dir string) (err error) {
			if att, err = Attach(dir, AttachOptions{Stdout: true}); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "attached"), nil, 0o644)
		}})
	if err != nil || pid != 1 {
		t.Fatalf("Start = %d, %v; want 1 and the client attached before the monitor listened", pid, err)
	}
	att.Close()
}
