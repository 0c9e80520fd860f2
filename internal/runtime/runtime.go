package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/cgroups"
	"github.com/berthproject/berth/internal/seccomp"
)

// DefaultRoot is where container state lives unless --root says otherwise.
const DefaultRoot = "/run/berth-runtime"

// Runtime is the runtime on one state root.
type Runtime struct {
	Root    string          // state directory root
	Systemd bool            // cgroupsPath is in systemd's slice:prefix:name form
	Cgroups cgroups.Options // where the cgroup filesystems are
	Log     *slog.Logger    // warnings (failed poststop hooks, ...)
	// Binary is the berth-runtime binary to execute as the Go init, with
	// berth-nsenter next to it, for a program that uses this package
	// in-process (the engine's exec); "" is the running binary, the
	// runtime's own command.
	Binary string

	layoutMu sync.Mutex // guards the filling of Cgroups.Layout
}

// New returns a runtime on root, creating the root directory if needed.
func New(root string, log *slog.Logger) (*Runtime, error) {
	if root == "" {
		root = DefaultRoot
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("create state root: %w", err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return &Runtime{Root: root, Log: log}, nil
}

func (r *Runtime) cgroup(st *State) (cgroups.Manager, error) {
	return cgroups.New(st.CgroupPath, r.cgroupOptions())
}

// cgroupOptions returns r.Cgroups with the host's cgroup layout filled in,
// detected once per Runtime: a command makes several managers (run: create
// and delete), and each detection reads and parses /proc/self/mountinfo.
func (r *Runtime) cgroupOptions() cgroups.Options {
	r.layoutMu.Lock()
	defer r.layoutMu.Unlock()
	if r.Cgroups.Layout == nil {
		if l, err := cgroups.DetectLayout(r.Cgroups); err == nil {
			r.Cgroups.Layout = l
		}
	}
	return r.Cgroups
}

// SeccompCacheDir holds compiled seccomp filters, keyed by the hash of the
// filter they were compiled from. It is shared by every state root (the
// entries are content-addressed and checked when read) and lives on /run,
// so it is gone at reboot like the containers.
const SeccompCacheDir = "/run/berth-runtime-cache/seccomp"

func (r *Runtime) seccompCache() *seccomp.Cache {
	dir := SeccompCacheDir
	if d := os.Getenv("BERTH_RUNTIME_CACHE"); d != "" {
		dir = filepath.Join(d, "seccomp")
	}
	return &seccomp.Cache{Dir: dir}
}

// NsenterName is the file name of the C stage, looked up next to the
// runtime binary.
const NsenterName = "berth-nsenter"

// sealedExe returns a read-only view of the runtime binary (bin, "" for the
// running one) to execute as the init, and sealedNsenter one of the C stage
// next to it; both at a descriptor of at least floor (see sealedBinary).
func sealedExe(bin string, floor int) (*os.File, error) {
	if bin == "" {
		bin = "/proc/self/exe"
	}
	return sealedBinary(bin, "berth-runtime", floor)
}

func sealedNsenter(bin string, floor int) (*os.File, error) {
	path, err := nsenterPath(bin)
	if err != nil {
		return nil, err
	}
	f, err := sealedBinary(path, NsenterName, floor)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNoNsenter(path)
	}
	return f, err
}

// checkNsenter makes sure the C stage is installed, for a create that does
// not need it: exec into the container will.
func checkNsenter(bin string) error {
	path, err := nsenterPath(bin)
	if err != nil {
		return err
	}
	if err := unix.Access(path, unix.X_OK); err != nil {
		return errNoNsenter(path)
	}
	return nil
}

func nsenterPath(bin string) (string, error) {
	if bin != "" {
		return filepath.Join(filepath.Dir(bin), NsenterName), nil
	}
	self, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return "", fmt.Errorf("locate %s: %w", NsenterName, err)
	}
	return filepath.Join(filepath.Dir(self), NsenterName), nil
}

func errNoNsenter(path string) error {
	return fmt.Errorf("%s not found in %s (next to berth-runtime): install both (make builds them into bin/)", NsenterName, filepath.Dir(path))
}

// sealedBinary returns a read-only view of the binary at path.
//
// A process of the container can open /proc/PID/exe of a runtime process
// that has joined it (the C stage, the init before execve, an exec) and,
// once that process is gone, write through it to the binary on the host
// (CVE-2019-5736). We execute a detached, read-only bind mount of the
// binary (open_tree + mount_setattr): /proc/PID/exe then resolves to that
// mount and any open for writing fails with EROFS. The mount is attached to
// no mount namespace; it goes away with the last process using it, so
// nothing is left behind. Where the kernel lacks these calls we fall back to
// a sealed memfd copy.
//
// The returned fd is close-on-exec and at least floor, which the caller
// puts above the descriptors a child gets (and those the child's fork moves
// out of the way), so that /proc/self/fd/N still names it when the child
// execs. A floor below 64 keeps the process's first descriptor table: to
// grow it, a multi-threaded process waits for an RCU grace period in the
// kernel (expand_fdtable), 5-20 ms on an idle machine.
func sealedBinary(path, name string, floor int) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err == nil {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOSUID}
		if err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
			unix.Close(fd)
		}
	} else if err == unix.ENOENT {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err != nil {
		if fd, err = memfdCopy(path, name); err != nil {
			return nil, err
		}
	}
	if fd >= floor {
		return os.NewFile(uintptr(fd), name), nil
	}
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, floor)
	unix.Close(fd)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", name, err)
	}
	return os.NewFile(uintptr(high), name), nil
}

// memfdCopy copies the binary at path into a sealed memfd.
func memfdCopy(path, name string) (int, error) {
	src, err := os.Open(path)
	if err != nil {
		return -1, fmt.Errorf("seal %s: %w", name, err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("seal %s: %w", name, err)
	}
	dst := os.NewFile(uintptr(fd), "memfd")
	st, err := src.Stat()
	if err == nil {
		var n int
		for off := int64(0); off < st.Size() && err == nil; off += int64(n) {
			n, err = unix.Sendfile(fd, int(src.Fd()), nil, int(st.Size()-off))
			if n == 0 && err == nil {
				break
			}
		}
	}
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
	}
	if err != nil {
		dst.Close()
		return -1, fmt.Errorf("seal %s: %w", name, err)
	}
	nfd, err := unix.Dup(fd)
	dst.Close()
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(nfd)
	return nfd, nil
}
