package unixsock

import (
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxPath is the longest path a sockaddr_un holds (108 bytes with its NUL).
const maxPath = len(unix.RawSockaddrUnix{}.Path) - 1

// Addr returns an address for the socket at path. A path too long for a
// sockaddr_un (deep state directories: 64-hex container ids make them long
// quickly) is reached through its directory opened as /proc/self/fd/N; call
// release once the bind or connect is done.
func Addr(path string) (sa *unix.SockaddrUnix, release func(), err error) {
	if len(path) <= maxPath {
		return &unix.SockaddrUnix{Name: path}, func() {}, nil
	}
	dir, name := filepath.Split(path)
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	short := "/proc/self/fd/" + strconv.Itoa(fd) + "/" + name
	if len(short) > maxPath {
		unix.Close(fd)
		return nil, nil, unix.ENAMETOOLONG
	}
	return &unix.SockaddrUnix{Name: short}, func() { unix.Close(fd) }, nil
}
