package unixsock

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDialAndSendFds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 1); err != nil {
		t.Fatal(err)
	}
	conn, err := Dial(path)
	if err != nil {
		t.Fatalf("Dial(%s): %v", path, err)
	}
	defer conn.Close()
	if flags, _ := unix.FcntlInt(conn.Fd(), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC == 0 {
		t.Error("the connection is not close-on-exec")
	}
	afd, _, err := unix.Accept(lfd)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(afd)

	f, err := os.CreateTemp(t.TempDir(), "payload")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := SendFds(int(conn.Fd()), []byte("hello"), int(f.Fd())); err != nil {
		t.Fatalf("SendFds: %v", err)
	}
	buf, oob := make([]byte, 16), make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(afd, buf, oob, 0)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v, %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights %v, %v", fds, err)
	}
	defer unix.Close(fds[0])
	var a, b unix.Stat_t
	_ = unix.Fstat(fds[0], &a)
	_ = unix.Fstat(int(f.Fd()), &b)
	if string(buf[:n]) != "hello" || a.Ino != b.Ino {
		t.Errorf("received %q and inode %d, want %q and %d", buf[:n], a.Ino, "hello", b.Ino)
	}

	if _, err := Dial(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Dial of a missing socket succeeded")
	}
}
