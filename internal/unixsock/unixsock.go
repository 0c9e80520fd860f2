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
