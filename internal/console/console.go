// Package console allocates a container's pseudo-terminal, hands its master
// over a unix socket (SCM_RIGHTS, the --console-socket protocol runc and
// containerd use), and relays a local terminal to a master it received.
package console

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// OpenPty opens a new pseudo-terminal on the ptmx device at ptmx (inside the
// container: "/dev/ptmx", which must belong to the container's devpts) and
// returns the master and the slave, both close-on-exec.
func OpenPty(ptmx string) (master, slave *os.File, err error) {
	mfd, err := unix.Open(ptmx, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", ptmx, err)
	}
	master = os.NewFile(uintptr(mfd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	// TIOCGPTPEER opens the slave through the master, so no path in the
	// container's /dev/pts can be swapped under us.
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), uintptr(unix.TIOCGPTPEER), uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if e != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("open pty slave: %w", e)
	}
	sfd := int(r)
	n, err := unix.IoctlGetUint32(mfd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		unix.Close(sfd)
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	return master, os.NewFile(uintptr(sfd), fmt.Sprintf("/dev/pts/%d", n)), nil
}

// SetSize sets the window size of the terminal f.
func SetSize(f *os.File, rows, cols uint16) error {
	return unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
}

// SendFd sends f over the unix socket sock with SCM_RIGHTS; the message
// payload is f's name, as runc does.
func SendFd(sock *os.File, f *os.File) error {
	oob := unix.UnixRights(int(f.Fd()))
	if err := unix.Sendmsg(int(sock.Fd()), []byte(f.Name()), oob, nil, 0); err != nil {
		return fmt.Errorf("send %s over the console socket: %w", f.Name(), err)
	}
	return nil
}

// RecvFd receives one file descriptor sent with SendFd.
func RecvFd(sock *os.File) (*os.File, error) {
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), name, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receive console fd: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, errors.New("receive console fd: no file descriptor in the message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, errors.New("receive console fd: expected exactly one file descriptor")
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}

// Relay copies the local terminal (stdin/stdout) to and from master until
// the master reports EOF or EIO (the container side closed). If stdin is a
// terminal it is put in raw mode for the duration and its size follows the
// local window (SIGWINCH).
func Relay(master *os.File, stdin, stdout *os.File) error {
	if restore, err := RawMode(stdin); err == nil {
		defer restore()
		resize := func() {
			if ws, err := unix.IoctlGetWinsize(int(stdin.Fd()), unix.TIOCGWINSZ); err == nil {
				_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
			}
		}
		resize()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, unix.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				resize()
			}
		}()
	}
	go func() { _, _ = io.Copy(master, stdin) }()
	_, err := io.Copy(stdout, master)
	if errors.Is(err, unix.EIO) { // the slave side was closed: normal end
		err = nil
	}
	return err
}

// RawMode puts the terminal f in raw mode (no echo, no line editing, no
// signals from keys) and returns the function that restores it.
func RawMode(f *os.File) (restore func(), err error) {
	st, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return nil, err
	}
	raw := *st
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, st) }, nil
}
