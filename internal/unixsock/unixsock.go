// Package unixsock connects to unix stream sockets and sends messages with
// file descriptors over them, with plain system calls. The runtime uses it
// instead of package net, whose initialisation every exec of the runtime
// would pay.
package unixsock

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Dial connects to the unix stream socket at path and returns the
// connection as a close-on-exec file.
func Dial(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", path, err)
	}
	sa, release, err := Addr(path)
	if err == nil {
		for {
			err = unix.Connect(fd, sa)
			if err != unix.EINTR {
				break
			}
		}
		release()
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect to %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// Listen makes a listening unix stream socket at path, mode 0600 (never
// connectable by others, even for an instant), non-blocking and
// close-on-exec. It binds PATH.new and renames it into place once
// listening, so that a client never finds a socket that refuses it. A
// stale socket at path is replaced.
func Listen(path string) (*os.File, error) {
	_ = os.Remove(path)
	tmp := path + ".new"
	_ = os.Remove(tmp)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, &os.SyscallError{Syscall: "socket", Err: err}
	}
	// The umask is the process's: nothing else may create files while
	// this runs (the monitor and the engine's start do not).
	sa, release, err := Addr(tmp)
	if err == nil {
		old := unix.Umask(0o177)
		err = unix.Bind(fd, sa)
		unix.Umask(old)
		release()
	}
	if err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "bind", Path: tmp, Err: err}
	}
	if err := unix.Listen(fd, 64); err != nil {
		unix.Close(fd)
		_ = os.Remove(tmp)
		return nil, &os.PathError{Op: "listen", Path: tmp, Err: err}
	}
	if err := os.Rename(tmp, path); err != nil {
		unix.Close(fd)
		_ = os.Remove(tmp)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// SendFds writes payload and the descriptors fds (SCM_RIGHTS) on the
// connected socket sock. The descriptors go with the first part of the
// payload; the rest follows if the socket took only part of it.
func SendFds(sock int, payload []byte, fds ...int) error {
	oob := unix.UnixRights(fds...)
	n, err := unix.SendmsgN(sock, payload, oob, nil, 0)
	for err == unix.EINTR {
		n, err = unix.SendmsgN(sock, payload, oob, nil, 0)
	}
	if err != nil {
		return err
	}
	for n < len(payload) {
		m, err := unix.Write(sock, payload[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		n += m
	}
	return nil
}
