package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Options select where the cgroup filesystems are.
type Options struct {
	// Root is where the hierarchies are mounted; default /sys/fs/cgroup.
	// Only mounts at or under Root count.
	Root string
	// Layout, when set, is used instead of reading /proc/self/mountinfo
	// (unit tests point it at a fake tree).
	Layout *Layout
}

func (o Options) root() string {
	if o.Root == "" {
		return DefaultRoot
	}
	return o.Root
}

// Manager acts on one cgroup, named by its absolute path, in every hierarchy
// of the host.
type Manager interface {
	// Apply creates the cgroup in every hierarchy (like mkdir -p; on v2 it
	// enables the parent's available controllers in each ancestor's
	// cgroup.subtree_control; on v1 it fills cpuset.cpus and cpuset.mems
	// of new levels from their parent) and moves pid in. pid <= 0 only
	// creates.
	Apply(pid int) error
	// Set writes the limits in r; nil fields are left as they are. Errors
	// name the OCI field and the file.
	Set(r *specs.LinuxResources) error
	// Stats reads usage counters, in runc's `events --stats` shape.
	Stats() (*Stats, error)
	// Freeze pauses (true) or resumes (false) every process and waits
	// until the kernel reports the new state.
	Freeze(frozen bool) error
	// Frozen reports whether the cgroup is frozen.
	Frozen() (bool, error)
	// Pids lists every process of the cgroup and its descendants.
	Pids() ([]int, error)
	// Kill signals every process: cgroup.kill for SIGKILL where the kernel
	// has it, else freeze, signal each, thaw.
	Kill(sig unix.Signal) error
	// Destroy removes the cgroup's directories (and any child cgroups) in
	// every hierarchy, retrying briefly while busy. A missing directory is
	// not an error, so Destroy is idempotent.
	Destroy() error
	// Path returns the host directory of a controller ("memory",
	// "name=systemd"; "" for the cgroup2 directory), "" if there is none.
	Path(controller string) string
	// SelfJoin says how a single-threaded process can join the cgroup,
	// once Apply(0) made it, without the kernel's global
	// cgroup_threadgroup_rwsem, whose writer (any cgroup.procs write)
	// waits for an RCU grace period after a quiet while (5-20 ms on an
	// idle VM): it writes "0" to each v1 tasks file (moving the calling
	// thread alone skips that lock), and is cloned into the cgroup2
	// directory v2dir with CLONE_INTO_CGROUP ("" when there is none).
	SelfJoin() (tasks []string, v2dir string)
}

// New returns the manager for the cgroup at path (absolute, e.g. from
// Resolve) on the host's layout. It creates nothing.
func New(path string, opts Options) (Manager, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("cgroup path %q: not absolute", path)
	}
	if err := checkComponents(path); err != nil {
		return nil, fmt.Errorf("cgroup path %q: %w", path, err)
	}
	path = filepath.Clean(path)
	l, err := DetectLayout(opts)
	if err != nil {
		return nil, err
	}
	switch l.Mode() {
	case ModeV1:
		return newV1(path, l), nil
	case ModeV2:
		return newV2(path, l), nil
	default:
		return &hybrid{layout: l, v1: newV1(path, l), v2: newV2(path, l)}, nil
	}
}

// A write is one value for one cgroup file: Set's plan, executed in order.
type write struct {
	ctrl  string // v1 controller whose directory holds file; "" for cgroup2
	file  string // e.g. "memory.limit_in_bytes"
	value string
	field string // the OCI field it comes from, for errors
	// mayFail marks a write the kernel may refuse with EINVAL because of
	// the current value of another file; the plan repeats it later.
	mayFail bool
}

// prober answers the questions a plan asks about the current cgroup: which
// files exist and what they hold. Planning stays a function of its inputs.
type prober interface {
	exists(ctrl, file string) bool
	read(ctrl, file string) (string, error)
}

// dirProber probes the files under the directories dir returns.
type dirProber func(ctrl string) string

func (d dirProber) exists(ctrl, file string) bool {
	dir := d(ctrl)
	if dir == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, file))
	return err == nil
}

func (d dirProber) read(ctrl, file string) (string, error) {
	dir := d(ctrl)
	if dir == "" {
		return "", fmt.Errorf("cgroup v1 controller %s is not mounted", ctrl)
	}
	return readFile(filepath.Join(dir, file))
}

// applyWrites performs a plan.
func applyWrites(ws []write, dir func(ctrl string) string) error {
	for _, w := range ws {
		d := dir(w.ctrl)
		if d == "" {
			return fmt.Errorf("set %s: cgroup v1 controller %s is not mounted", w.field, w.ctrl)
		}
		err := writeFile(filepath.Join(d, w.file), w.value)
		if err != nil && !(w.mayFail && errors.Is(err, unix.EINVAL)) {
			return fmt.Errorf("set %s: %w", w.field, err)
		}
	}
	return nil
}

// writeFile writes one value to an existing cgroup file with one write(2),
// which is how the kernel wants it.
func writeFile(path, value string) error {
	// Plain system calls: os.OpenFile would try (and fail) to register the
	// file with the poller, five extra calls per file, and a container's
	// set-up writes dozens of cgroup files.
	fd, err := retryEINTR(func() (int, error) { return unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0) })
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	b := []byte(value)
	for len(b) > 0 && err == nil {
		var n int
		if n, err = retryEINTR(func() (int, error) { return unix.Write(fd, b) }); err == nil {
			if n == 0 {
				err = io.ErrShortWrite
			}
			b = b[n:]
		}
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	return nil
}

// retryEINTR calls f again while it fails with EINTR (the Go runtime's
// preemption signals interrupt slow cgroup writes), as package os does.
func retryEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}

// unwrapPathError drops *fs.PathError's repetition of the path (the
// message already names it) but keeps the errno for errors.Is.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readFile returns a cgroup file's content without the trailing newline.
// Errors are *fs.PathError, as from os.ReadFile (which it replaces for the
// reason writeFile gives).
func readFile(path string) (string, error) {
	fd, err := retryEINTR(func() (int, error) { return unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0) })
	if err != nil {
		return "", &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := retryEINTR(func() (int, error) { return unix.Read(fd, buf[len(buf):cap(buf)]) })
		if err != nil {
			return "", &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return strings.TrimSpace(string(buf)), nil
		}
		buf = buf[:len(buf)+n]
	}
}

// createDir makes every missing level of dir below base, calling created
// for each level it made, top down.
func createDir(base, dir string, created func(level string) error) error {
	rel, err := filepath.Rel(base, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("create cgroup %s: not under %s", dir, base)
	}
	cur := base
	if rel == "." {
		return nil
	}
	for _, part := range strings.Split(rel, "/") {
		cur = filepath.Join(cur, part)
		err := os.Mkdir(cur, 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("create cgroup %s: %w", cur, unwrapPathError(err))
		}
		if created != nil {
			if err := created(cur); err != nil {
				return err
			}
		}
	}
	return nil
}

// joinPid writes pid to dir/cgroup.procs.
func joinPid(dir string, pid int) error {
	if pid <= 0 {
		return nil
	}
	if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("move pid %d into cgroup: %w", pid, err)
	}
	return nil
}

// readPids lists the processes in dir and every cgroup below it.
func readPids(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // a child cgroup went away while we walked
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		f, err := os.Open(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
			if err != nil {
				return fmt.Errorf("parse %s: %w", f.Name(), err)
			}
			pids = append(pids, pid)
		}
		return sc.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list processes of cgroup %s: %w", dir, err)
	}
	slices.Sort(pids)
	return slices.Compact(pids), nil
}

// signalAll sends sig to every pid, ignoring processes that already exited.
func signalAll(pids []int, sig unix.Signal) error {
	var errs []error
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("signal %d to pid %d: %w", sig, pid, err))
		}
	}
	return errors.Join(errs...)
}

// removeDir removes dir and the cgroups below it, deepest first. cgroupfs
// refuses rmdir with EBUSY for a moment after its last process exits, so
// busy directories are retried for a few seconds. A missing dir is fine.
func removeDir(dir string) error {
	// The common case is an empty leaf: remove it without listing its
	// control files (reading a cgroup directory is not free). EBUSY means
	// child cgroups or processes: walk, and retry on the way.
	if err := unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := rmdirRetry(dirs[i]); err != nil {
			return fmt.Errorf("remove cgroup %s: %w", dirs[i], err)
		}
	}
	return nil
}

func rmdirRetry(dir string) error {
	delay := 5 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || attempt == 30 {
			return err
		}
		time.Sleep(delay)
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// waitFor polls cond with growing sleeps until it returns true or an error,
// or until the bound passes (about ten seconds).
func waitFor(cond func() (bool, error)) (bool, error) {
	delay := time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := cond()
		if ok || err != nil {
			return ok, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}
