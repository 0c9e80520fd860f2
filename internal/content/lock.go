package content

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// fileLock is an flock'd lock file. The lock is on the inode: a lock file
// that was unlinked by its previous owner is detected and re-created, so the
// owner may remove the file when it is done.
type fileLock struct {
	f    *os.File
	path string
}

// lock takes the lock file at path, waiting (polling, so ctx can cancel) while
// another process or goroutine holds it.
func lock(ctx context.Context, path string) (*fileLock, error) {
	delay := time.Millisecond
	for {
		l, err := tryLock(path)
		if err != nil {
			return nil, err
		}
		if l != nil {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for lock %s: %w", path, ctx.Err())
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// tryLock takes the lock if it is free; (nil, nil) when another holds it.
func tryLock(path string) (*fileLock, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open lock file %s: %w", path, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, nil
			}
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		// The previous owner may have unlinked the file after we opened it.
		var held, onDisk unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &held); err != nil {
			f.Close()
			return nil, fmt.Errorf("stat lock file %s: %w", path, err)
		}
		if err := unix.Stat(path, &onDisk); err != nil || held.Ino != onDisk.Ino || held.Dev != onDisk.Dev {
			f.Close()
			continue
		}
		return &fileLock{f: f, path: path}, nil
	}
}

func (l *fileLock) release() {
	if l != nil && l.f != nil {
		l.f.Close() // closing the last fd drops the flock
		l.f = nil
	}
}

// unlinkAndRelease removes the lock file, then releases the lock; waiters
// notice the unlinked inode and retry on a fresh file.
func (l *fileLock) unlinkAndRelease() {
	if l != nil && l.f != nil {
		os.Remove(l.path)
		l.release()
	}
}
