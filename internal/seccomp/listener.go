package seccomp

import (
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/unixsock"
)

// SendListener sends the notify fd over conn, an already connected unix
// stream socket, as the runtime-spec asks: one SCM_RIGHTS message whose
// payload is the JSON specs.ContainerProcessState with fds ["seccompFd"].
func SendListener(conn int, state specs.ContainerProcessState, listenerFd int) error {
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
	if err := unixsock.SendFds(conn, payload, listenerFd); err != nil {
		return fmt.Errorf("send seccomp listener: %w", err)
	}
	return nil
}

// SendListenerTo connects to the seccomp agent listening at path and sends
// the notify fd with SendListener.
func SendListenerTo(path string, state specs.ContainerProcessState, listenerFd int) error {
	conn, err := unixsock.Dial(path)
	if err != nil {
		return fmt.Errorf("seccomp agent: %w", err)
	}
	defer conn.Close()
	return SendListener(int(conn.Fd()), state, listenerFd)
}
