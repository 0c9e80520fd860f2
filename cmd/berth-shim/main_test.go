package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/shim/jsonlog"
	"github.com/berthproject/berth/internal/shim/protocol"
)

func TestParseArgs(t *testing.T) {
	req := "--id c1 --bundle /b --runtime /bin/true --dir /d"
	tests := []struct {
		args string
		want string // fmt of selected fields, or the error
	}{
		{req, "id=c1 bundle=/b runtime=/bin/true root= dir=/d log= max=10485760/3 tty=false stdin=false once=false wait=false restart=no oom= exit=[]"},
		{req + " --runtime-root /r --log /d/l --log-max-size 100 --log-max-files 2 --tty --stdin --stdin-once --wait-attach" +
			" --restart on-failure:4 --oom-file /cg/f --exit-command /bin/true --exit-arg a --exit-arg b",
			"id=c1 bundle=/b runtime=/bin/true root=/r dir=/d log=/d/l max=100/2 tty=true stdin=true once=true wait=true restart=on-failure:4 oom=/cg/f exit=/bin/true[a b]"},
		{"--id=c1 --bundle=/b --runtime=/bin/true --dir=/d --restart=always",
			"id=c1 bundle=/b runtime=/bin/true root= dir=/d log= max=10485760/3 tty=false stdin=false once=false wait=false restart=always oom= exit=[]"},
		{"--id c1 --bundle /b --runtime true --dir /d", "id=c1 bundle=/b runtime=/usr/bin/true root= dir=/d log= max=10485760/3 tty=false stdin=false once=false wait=false restart=no oom= exit=[]"},
		{"--id c1 --bundle /b --runtime /bin/true", "--dir is required"},
		{req + " --bogus 1", "unknown flag --bogus"},
		{req + " --log-max-size ten", `--log-max-size: invalid number "ten"`},
		{req + " --restart sometimes", `--restart: invalid restart policy "sometimes" (want no, always, unless-stopped or on-failure[:N])`},
		{req + " --tty=yes", "--tty takes no value"},
		{req + " --stdin-once", "--stdin-once needs --stdin"},
		{req + " --exit-arg x", "--exit-arg needs --exit-command"},
		{req + " --log", "--log needs a value"},
		{req + " extra", `unexpected argument "extra"`},
		{"--id c1 --bundle /b --runtime no-such-runtime-binary --dir /d", "no-such-runtime-binary: executable file not found in $PATH"},
	}
	for _, tt := range tests {
		c, err := parseArgs(strings.Fields(tt.args))
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = fmt.Sprintf("id=%s bundle=%s runtime=%s root=%s dir=%s log=%s max=%d/%d tty=%v stdin=%v once=%v wait=%v restart=%s oom=%s exit=%s%v",
				c.id, c.bundle, c.runtime, c.runtimeRoot, c.dir, c.log, c.logMaxSize, c.logMaxFiles, c.tty, c.stdin, c.stdinOnce, c.waitAttach,
				c.restart, c.oomFile, c.exitCommand, c.exitArgs)
		}
		if got != tt.want {
			t.Errorf("parseArgs(%s) =\n%s\nwant\n%s", tt.args, got, tt.want)
		}
	}
}

func TestParseArgsAttachFd(t *testing.T) {
	req := "--id c1 --bundle /b --runtime /bin/true --dir /d"
	tests := []struct {
		args string
		want string // the descriptor, or the error
	}{
		{req, "0"},
		{req + " --attach-fd 4", "4"},
		{req + " --attach-fd=4", "4"},
		{req + " --attach-fd 2", "--attach-fd: 2 is not an inherited descriptor (3 or more)"},
		{req + " --attach-fd four", `--attach-fd: invalid number "four"`},
	}
	for _, tt := range tests {
		c, err := parseArgs(strings.Fields(tt.args))
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = fmt.Sprint(c.attachFd)
		}
		if got != tt.want {
			t.Errorf("parseArgs(%s): attach fd %s, want %s", tt.args, got, tt.want)
		}
	}
}

func TestInheritedListenerNeedsAListeningSocket(t *testing.T) {
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := inheritedListener(int(f.Fd()), "x"); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("inheritedListener(/dev/null) = %v, want not a socket", err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := inheritedListener(fd, "x"); err == nil || !strings.Contains(err.Error(), "not a listening socket") {
		t.Errorf("inheritedListener(unbound socket) = %v, want not a listening socket", err)
	}
}

func TestParseArgsMakesPathsAbsolute(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseArgs([]string{"--id", "c", "--bundle", "b", "--runtime", "/bin/true", "--dir", "d", "--log", "d/l"})
	if err != nil {
		t.Fatal(err)
	}
	if c.bundle != cwd+"/b" || c.dir != cwd+"/d" || c.log != cwd+"/d/l" {
		t.Errorf("paths = %s %s %s, want them under %s", c.bundle, c.dir, c.log, cwd)
	}
}

func TestParseOOMKill(t *testing.T) {
	tests := []struct {
		file string
		want int64
	}{
		{"oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", 3},                // v1 memory.oom_control
		{"low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n", 2}, // v2 memory.events
		{"oom_kill_disable 0\nunder_oom 0\n", -1},                           // old kernels
		{"oom_kill 7", 7}, // no final newline
		{"oom_kill x\n", -1},
	}
	for _, tt := range tests {
		if got := parseOOMKill([]byte(tt.file)); got != tt.want {
			t.Errorf("parseOOMKill(%q) = %d, want %d", tt.file, got, tt.want)
		}
	}
}

// newTestSink returns a sink logging to a temp file.
func newTestSink(t *testing.T, tty bool) *sink {
	t.Helper()
	w, err := jsonlog.Open(filepath.Join(t.TempDir(), "c.log"), 1<<30, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return &sink{tty: tty, logFiles: 2, log: w, warn: func(msg string) { t.Errorf("warning: %s", msg) }}
}

func TestOutputPathAllocatesNothing(t *testing.T) {
	k := newTestSink(t, false)
	s := newStream(k, protocol.Stdout)
	chunk := []byte("one line\nanother line\npartial")
	if n := testing.AllocsPerRun(200, func() {
		n := copy(s.lines.Free(), chunk)
		s.commit(n)
	}); n != 0 {
		t.Errorf("committing output allocates %v times per read, want 0", n)
	}
}

// pipeClient returns a client whose connection is one end of a pipe.
func pipeClient(t *testing.T, hello protocol.Hello) (*client, *os.File) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return &client{conn: w, fd: p[1], hello: hello, wake: make(chan struct{}, 1), done: make(chan struct{})}, r
}

func TestSlowClientIsDroppedNotTheOutput(t *testing.T) {
	k := newTestSink(t, false)
	c, _ := pipeClient(t, protocol.Hello{Stdout: true})
	k.clients = append(k.clients, c) // no writer: it never reads
	s := newStream(k, protocol.Stdout)
	line := []byte(strings.Repeat("x", 1023) + "\n")
	total := 0
	// What the pipe takes goes at once; past that, MaxClientBacklog waits.
	for total <= 2*protocol.MaxClientBacklog {
		n := copy(s.lines.Free(), line)
		s.commit(n)
		total += n
	}
	c.mu.Lock()
	dead := c.dead
	c.mu.Unlock()
	if !dead {
		t.Errorf("a client %d bytes behind is still attached, want it dropped past %d", total, protocol.MaxClientBacklog)
	}
	if size := k.log.Size(); size < int64(total) {
		t.Errorf("log has %d bytes for %d bytes of output: output was lost", size, total)
	}
}

func TestClientGetsFramesOfItsStreams(t *testing.T) {
	k := newTestSink(t, false)
	c, r := pipeClient(t, protocol.Hello{Stderr: true})
	k.add(c)
	go c.writeLoop(k)
	out, errs := newStream(k, protocol.Stdout), newStream(k, protocol.Stderr)
	for _, w := range []struct {
		s *stream
		p string
	}{{out, "to stdout\n"}, {errs, "to stderr\n"}} {
		n := copy(w.s.lines.Free(), w.p)
		w.s.commit(n)
	}
	k.closeClients()
	c.conn.Close()
	got := make([]byte, 100)
	n, _ := r.Read(got)
	want := string(protocol.AppendFrame(nil, protocol.Stderr, []byte("to stderr\n")))
	if string(got[:n]) != want {
		t.Errorf("client received %q, want only the stderr frame %q", got[:n], want)
	}
	if len(k.clients) != 0 {
		t.Errorf("%d clients left after closeClients", len(k.clients))
	}
}

func TestReplayEndsWhereLiveOutputStarts(t *testing.T) {
	k := newTestSink(t, true) // a terminal: raw bytes
	s := newStream(k, protocol.Stdout)
	write := func(p string) {
		n := copy(s.lines.Free(), p)
		s.commit(n)
	}
	write("before 1\nbefore 2\n")
	c, r := pipeClient(t, protocol.Hello{Stdout: true, Logs: true})
	k.add(c)
	write("after\n") // logged and queued while the replay is pending
	go c.writeLoop(k)
	k.closeClients()
	got := make([]byte, 200)
	n, _ := r.Read(got)
	if string(got[:n]) != "before 1\nbefore 2\nafter\n" {
		t.Errorf("client received %q, want the log then the live output, each once", got[:n])
	}
}

func TestMountBelow(t *testing.T) {
	mountinfo := []byte(`21 26 0:20 / /proc rw,relatime - proc proc rw
30 26 0:40 / /run/berth/containers/abc/rootfs rw - overlay overlay rw
31 26 0:41 / /run/berth/containers/abcd rw - tmpfs tmpfs rw
32 26 0:42 / /run/berth/containers/with\040space/x rw - tmpfs tmpfs rw
`)
	tests := []struct {
		dir  string
		want string
	}{
		{"/run/berth/containers/abc", "/run/berth/containers/abc/rootfs"},
		{"/run/berth/containers/abcd", "/run/berth/containers/abcd"},
		{"/run/berth/containers/ab", ""}, // a prefix of a name is not a parent
		{"/run/berth/containers/with space", "/run/berth/containers/with space/x"},
		{"/run/berth/containers/xyz", ""},
	}
	for _, tt := range tests {
		got, ok := mountBelow(mountinfo, tt.dir)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("mountBelow(%q) = %q, %v; want %q", tt.dir, got, ok, tt.want)
		}
	}
}
