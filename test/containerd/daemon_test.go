package containerdtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"golang.org/x/sys/unix"
)

// Guards against a hung daemon or ctr; they turn a hang into a failure and
// never judge behaviour.
const (
	commandGuard = 2 * time.Minute
	pollGuard    = time.Minute
)

// disabledPlugins are the containerd 1.6 plugins this test does not need:
// the CRI (it wants CNI and a network), the snapshotters that cannot work
// here or need setup (the v1 runtime stays: the 1.6 tasks service does not load without it).
var disabledPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.zfs",
	"io.containerd.internal.v1.restart",
	"io.containerd.tracing.processor.v1.otlp",
	"io.containerd.internal.v1.tracing",
}

var configTemplate = template.Must(template.New("config.toml").Parse(`# containerd config of the berth test daemon (containerd 1.6, schema 2).
version = 2
root = "{{.Dir}}/root"
state = "{{.Dir}}/state"
disabled_plugins = [{{range $i, $p := .Disabled}}{{if $i}}, {{end}}"{{$p}}"{{end}}]

[grpc]
  address = "{{.Dir}}/containerd.sock"

[ttrpc]
  address = "{{.Dir}}/containerd.sock.ttrpc"

[debug]
  address = "{{.Dir}}/debug.sock"
  level = "debug"

[metrics]
  address = ""
`))

// renderConfig is the config.toml of a daemon whose files all live in dir.
func renderConfig(dir string) (string, error) {
	var b bytes.Buffer
	err := configTemplate.Execute(&b, struct {
		Dir      string
		Disabled []string
	}{dir, disabledPlugins})
	if err != nil {
		return "", fmt.Errorf("render containerd config: %w", err)
	}
	return b.String(), nil
}

// daemon is a containerd of the test's own: every file it makes is under
// dir, and nothing else talks to it.
type daemon struct {
	dir     string // T: config, sockets, root, state, runc root, logs
	sock    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	// runcRoot is the --root the runc shim gives the runtime (ctr's
	// --runc-root option); the shim appends the namespace.
	runcRoot string
	// runDirs are the directories of runDirsUsed that did not exist before
	// the daemon, deepest first: cleanup removes them when empty.
	runDirs []string
}

// Paths the runc shim of containerd 1.6 uses whatever the daemon's state
// dir: its ttrpc socket in shimSocketDir (runtime/v2/shim.SocketAddress),
// and the runtime's default --root when ctr passes no runtime options.
const (
	shimSocketDir   = "/run/containerd/s"
	defaultRuncRoot = "/run/containerd/runc"
)

var runDirsUsed = []string{"/run/containerd", shimSocketDir, defaultRuncRoot, filepath.Join(defaultRuncRoot, namespace)}

// startDaemon writes the config and starts containerd, waiting until it
// answers on its socket. Its PATH starts with T/bin, where runc is the
// runtime under test: ctr 1.6 drops the runtime options (--runc-binary,
// --runc-root) when --uidmap is given, and the shim then runs "runc" from
// its PATH.
func startDaemon(dir, containerd, ctr, runtime string) (*daemon, error) {
	d := &daemon{
		dir:      dir,
		sock:     filepath.Join(dir, "containerd.sock"),
		logPath:  filepath.Join(dir, "containerd.log"),
		runcRoot: filepath.Join(dir, "runc"),
		exited:   make(chan struct{}),
	}
	for i := len(runDirsUsed) - 1; i >= 0; i-- {
		if _, err := os.Stat(runDirsUsed[i]); err != nil {
			d.runDirs = append(d.runDirs, runDirsUsed[i])
		}
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", bin, err)
	}
	if err := os.Symlink(runtime, filepath.Join(bin, "runc")); err != nil {
		return nil, fmt.Errorf("link %s/runc to %s: %w", bin, runtime, err)
	}
	cfg, err := renderConfig(dir)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", cfgPath, err)
	}
	logf, err := os.Create(d.logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", d.logPath, err)
	}
	defer logf.Close()
	d.cmd = exec.Command(containerd, "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"),
		"--address", d.sock, "--config", cfgPath)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	// Its own process group, so that a ^C of `go test` does not reach it
	// before cleanup; the shims it starts make their own sessions.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", containerd, err)
	}
	go func() {
		d.cmd.Wait()
		close(d.exited)
	}()
	deadline := time.Now().Add(pollGuard)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), commandGuard)
		err := exec.CommandContext(ctx, ctr, "-a", d.sock, "version").Run()
		cancel()
		if err == nil {
			return d, nil
		}
		select {
		case <-d.exited:
			return d, fmt.Errorf("containerd exited before it answered on %s: %v\n%s", d.sock, d.cmd.ProcessState, d.log())
		default:
		}
		if time.Now().After(deadline) {
			return d, fmt.Errorf("containerd did not answer on %s: %v\n%s", d.sock, err, d.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// log is the daemon's log so far.
func (d *daemon) log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// taskDir is the runc shim's bundle of a task: config.json, rootfs,
// init.pid and the runtime's log.json.
func (d *daemon) taskDir(ns, id string) string {
	return filepath.Join(d.dir, "state", "io.containerd.runtime.v2.task", ns, id)
}

// shimSocket is the path of the shim socket of a task, as containerd 1.6
// names it: /run/containerd/s/<sha256 of grpc address/ns/id>.
func (d *daemon) shimSocket(ns, id string) string {
	sum := sha256.Sum256([]byte(filepath.Join(d.sock, ns, id)))
	return fmt.Sprintf("%s/%x", shimSocketDir, sum)
}

// shimPids lists the shims started by this daemon (their -address is its
// socket).
func (d *daemon) shimPids() []int {
	var pids []int
	for _, pid := range allPids() {
		args := cmdline(pid)
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i, a := range args {
			if a == "-address" && i+1 < len(args) && args[i+1] == d.sock {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// stop kills the daemon and the shims it started, by pid, and waits for the
// daemon. Container processes are the caller's.
func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(pollGuard):
		d.cmd.Process.Kill()
		<-d.exited
	}
	for _, pid := range d.shimPids() {
		killProcess(pid)
	}
}

// removeRunDirs removes the directories under /run/containerd that the
// daemon's shims created, if they are empty.
func (d *daemon) removeRunDirs() {
	for _, dir := range d.runDirs {
		os.Remove(dir) // fails, as it should, when not empty
	}
}

// killProcess sends SIGKILL to pid and waits until it is gone (or a zombie
// of someone else's).
func killProcess(pid int) {
	unix.Kill(pid, unix.SIGKILL)
	deadline := time.Now().Add(pollGuard)
	for time.Now().Before(deadline) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if i := bytes.LastIndexByte(st, ')'); i > 0 && len(st) > i+2 && st[i+2] == 'Z' {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func allPids() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// unmount detaches the mount at path.
func unmount(path string) { unix.Unmount(path, unix.MNT_DETACH) }
