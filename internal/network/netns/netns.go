// Package netns is the only place of berth's networking that changes a
// thread's namespaces. It creates network namespaces kept alive by a bind
// mount (so the network can be set up before the container's process
// exists) and runs short functions inside a namespace, to open netlink
// sockets there.
//
// Namespaces are per thread, and a Go program moves goroutines between
// threads. So every change happens on a fresh goroutine locked to its thread
// that never unlocks it: when the goroutine returns, the runtime ends the
// tainted thread instead of reusing it (the model of moby's
// internal/unshare). A socket opened in the namespace stays in it for its
// whole life and can be used from any thread afterwards.
package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on a thread that has joined the network namespace at path (a
// bind-mounted namespace file or /proc/PID/ns/net). fn must do its work on
// the calling goroutine: goroutines it starts run elsewhere.
func Do(path string, fn func() error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("join network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Create makes a new network namespace and bind-mounts it on path (a file
// created here; its directory must exist). fn, if not nil, runs inside the
// new namespace before Create returns.
func Create(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		errc <- create(path, fn)
	}()
	return <-errc
}

func create(path string, fn func() error) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create network namespace file: %w", err)
	}
	f.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		os.Remove(path)
		return fmt.Errorf("create network namespace %s: %w", path, err)
	}
	if err := unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, ""); err != nil {
		os.Remove(path)
		return fmt.Errorf("bind-mount network namespace on %s: %w", path, err)
	}
	if fn != nil {
		if err := fn(); err != nil {
			Remove(path)
			return err
		}
	}
	return nil
}

// Remove unmounts a namespace made by Create and removes its file; the
// namespace itself goes when its last user does. A missing file is not an
// error.
func Remove(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace file %s: %w", path, err)
	}
	return nil
}

// Same reports whether two paths name the same network namespace.
func Same(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, fmt.Errorf("stat network namespace %s: %w", a, err)
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, fmt.Errorf("stat network namespace %s: %w", b, err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// Alive reports whether path still names a network namespace (a
// bind-mounted file whose mount is gone, or a /proc path of a dead process,
// does not).
func Alive(path string) bool {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return false
	}
	return fs.Type == unix.NSFS_MAGIC
}
