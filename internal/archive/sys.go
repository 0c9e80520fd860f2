package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

func itoa(i int) string { return strconv.Itoa(i) }

// futimes sets the times of the open file fd (not an O_PATH descriptor) to the
// entry's: utimensat with a NULL path, the kernel's futimens.
func futimes(fd int, hdr *tar.Header) error {
	ts := timespecs(hdr)
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("set times: %w", errno)
	}
	return nil
}

var umaskOnce = sync.OnceValue(readUmask)

// processUmask is the umask new files get, read once from /proc/self/status
// (setting and restoring it would race with other goroutines creating files).
// When it cannot be read, 0o777 makes Apply chmod every entry.
func processUmask() uint32 { return umaskOnce() }

func readUmask() uint32 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0o777
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("Umask:")); ok {
			m, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 32)
			if err != nil {
				return 0o777
			}
			return uint32(m)
		}
	}
	return 0o777
}

// syncfs flushes the filesystem holding dir.
func syncfs(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s to sync it: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}
