package unixsock

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A socket deeper than a sockaddr_un can name is bound and dialled through
// its directory.
func TestLongPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "attach.sock")
	if len(path) <= maxPath {
		t.Fatalf("path %d bytes is not long enough for the test", len(path))
	}
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	if err := unix.Bind(lfd, &unix.SockaddrUnix{Name: path}); err == nil {
		t.Fatal("the kernel bound a path longer than sockaddr_un: the test proves nothing")
	}
	sa, release, err := Addr(path)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Bind(lfd, sa)
	release()
	if err != nil {
		t.Fatalf("bind through the directory: %v", err)
	}
	if err := unix.Listen(lfd, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the socket is not at its long path: %v", err)
	}
	c, err := Dial(path)
	if err != nil {
		t.Fatalf("Dial(long path): %v", err)
	}
	defer c.Close()
	nfd, _, err := unix.Accept(lfd)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(nfd)
}
