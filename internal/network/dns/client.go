package dns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	gonet "net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Client starts the server of a run directory and tells it to reload.
type Client struct {
	Records string // the records directory, passed to the server
	Run     string // the run directory
	// Command starts a server: its argv, to which Sync appends
	// --records RECORDS --run RUN (cmd/berth-dns takes those flags).
	Command []string
	// StartTimeout bounds how long Sync waits for a new server (default 10s).
	StartTimeout time.Duration
}

// Sync tells the server to serve the current records, starting one if none
// runs, and returns when it does.
func (c *Client) Sync(ctx context.Context) error {
	err := c.sync(ctx)
	if err == nil || !errors.Is(err, errNotRunning) {
		return err
	}
	if len(c.Command) == 0 {
		return fmt.Errorf("no command to start the embedded DNS server")
	}
	// One starter at a time: whoever gets the lock second finds the first
	// one's server.
	if err := os.MkdirAll(c.Run, 0o700); err != nil {
		return fmt.Errorf("create DNS run directory: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(c.Run, StartFile), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open DNS start lock: %w", err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock DNS start lock: %w", err)
	}
	if err := c.sync(ctx); !errors.Is(err, errNotRunning) {
		return err
	}
	if err := c.start(); err != nil {
		return err
	}
	timeout := c.StartTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err := c.sync(ctx)
		if !errors.Is(err, errNotRunning) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("embedded DNS server did not start in %s (see %s)", timeout, filepath.Join(c.Run, LogFile))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

var errNotRunning = errors.New("embedded DNS server is not running")

// SyncIfRunning tells a running server to reload; no server, nothing to do.
func (c *Client) SyncIfRunning(ctx context.Context) error {
	if err := c.sync(ctx); !errors.Is(err, errNotRunning) {
		return err
	}
	return nil
}

// Reload tells a running server to reload, and fails if none runs (it does
// not start one).
func (c *Client) Reload(ctx context.Context) error { return c.sync(ctx) }

// sync tells a running server to reload; it returns an error wrapping
// errNotRunning if none runs.
func (c *Client) sync(ctx context.Context) error {
	var d gonet.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(c.Run, SockFile))
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return fmt.Errorf("%w: %v", errNotRunning, err)
		}
		return fmt.Errorf("connect to the embedded DNS server: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	if _, err := conn.Write([]byte("sync\n")); err != nil {
		return fmt.Errorf("%w: write: %v", errNotRunning, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		// A server that was stopping closed the connection.
		return fmt.Errorf("%w: read: %v", errNotRunning, err)
	}
	line = strings.TrimSpace(line)
	if line != "ok" {
		return fmt.Errorf("embedded DNS server: %s", strings.TrimPrefix(line, "error: "))
	}
	return nil
}

// start starts a server in a session of its own, so that it outlives the
// command that started it.
func (c *Client) start() error {
	logf, err := os.OpenFile(filepath.Join(c.Run, LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open DNS server log: %w", err)
	}
	defer logf.Close()
	args := append(append([]string{}, c.Command[1:]...), "--records", c.Records, "--run", c.Run)
	cmd := exec.Command(c.Command[0], args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the embedded DNS server %s: %w", c.Command[0], err)
	}
	// Reap it if it dies while this process lives (berth serve).
	go cmd.Wait()
	return nil
}

// PID returns the running server's process ID (0 if none runs): for tests
// and diagnostics.
func PID(run string) int {
	b, err := os.ReadFile(filepath.Join(run, PIDFile))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	lf, err := os.Open(filepath.Join(run, LockFile))
	if err != nil {
		return 0
	}
	defer lf.Close()
	if unix.Flock(int(lf.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
		return 0 // nobody holds the lock: the pid is stale
	}
	return pid
}
