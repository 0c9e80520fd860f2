package seccomp

import (
	"encoding/json"
	"fmt"
	"net"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// SendListener hands the notification listener fd to a seccomp agent over
// conn, an AF_UNIX SOCK_STREAM connection to linux.seccomp.listenerPath, as
// the runtime-spec asks: one message whose payload is state as JSON and
// whose SCM_RIGHTS control message carries listenerFd, named "seccompFd" in
// state.Fds. The caller fills state (state.Metadata is
// linux.seccomp.listenerMetadata) and closes conn afterwards: one state per
// connection.
func SendListener(conn *net.UnixConn, state specs.ContainerProcessState, listenerFd int) error {
	if listenerFd < 0 {
		return fmt.Errorf("send seccomp listener: invalid fd %d", listenerFd)
	}
	state.Fds = []string{specs.SeccompFdName}
	if state.Version == "" {
		state.Version = specs.Version
	}
	payload, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("send seccomp listener: encode state: %w", err)
	}
	oob := unix.UnixRights(listenerFd)
	n, oobn, err := conn.WriteMsgUnix(payload, oob, nil)
	if err != nil {
		return fmt.Errorf("send seccomp listener to %s: %w", conn.RemoteAddr(), err)
	}
	if oobn != len(oob) {
		return fmt.Errorf("send seccomp listener to %s: control message truncated", conn.RemoteAddr())
	}
	// A stream socket may take the payload in parts; the fd went with the
	// first.
	for n < len(payload) {
		m, err := conn.Write(payload[n:])
		if err != nil {
			return fmt.Errorf("send seccomp listener to %s: %w", conn.RemoteAddr(), err)
		}
		n += m
	}
	return nil
}

// SendListenerTo connects to the agent at path (linux.seccomp.listenerPath),
// sends the state and listener fd with SendListener and closes the
// connection.
func SendListenerTo(path string, state specs.ContainerProcessState, listenerFd int) error {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("connect to seccomp agent at %s: %w", path, err)
	}
	defer conn.Close()
	if err := SendListener(conn, state, listenerFd); err != nil {
		return err
	}
	return conn.Close()
}
