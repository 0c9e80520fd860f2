package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/fsroot"
	"github.com/berthproject/berth/internal/hooks"
	"github.com/berthproject/berth/internal/nsenter"
	"github.com/berthproject/berth/internal/rootfs"
)

var initName = []byte("berth:init\x00")

// Init is the entry point of the runtime binary started as an init
// (nsenter.IsInit): the C stage berth-nsenter has put it in its namespaces;
// it reads its configuration from the parent and becomes the container's
// init or exec process. It does not return.
func Init() {
	// Named for ps: we were executed as /proc/self/fd/N.
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&initName[0])), 0, 0, 0)
	fd, err := strconv.Atoi(os.Getenv(nsenter.EnvInit))
	if err != nil || fd < 3 {
		fmt.Fprintln(os.Stderr, "berth-runtime init: bad bootstrap fd")
		os.Exit(1)
	}
	unix.CloseOnExec(fd)
	conn := os.NewFile(uintptr(fd), "sync")
	typ, payload, err := readMsg(conn)
	if err != nil || typ != msgConfig {
		os.Exit(1) // the parent went away
	}
	var cfg initConfig
	if err := cfg.UnmarshalBinary(payload); err != nil {
		fail(conn, fmt.Errorf("decode init config: %w", err))
	}
	if cfg.Kind == "exec" {
		err = initExec(conn, &cfg)
	} else {
		err = initContainer(conn, &cfg)
	}
	fail(conn, err)
}

func fail(conn *os.File, err error) {
	if err == nil {
		err = errors.New("init returned without exec")
	}
	_ = writeMsg(conn, msgError, []byte(err.Error()))
	os.Exit(1)
}

// initContainer sets up the container around the init, reports ready,
// waits for start and execs the user process.
func initContainer(conn *os.File, cfg *initConfig) error {
	if err := enterNamespaces(cfg); err != nil {
		return err
	}
	if cfg.NewNetNS {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	if err := rootfs.Prepare(&cfg.Rootfs); err != nil {
		return err
	}
	if cfg.HooksInParent {
		if err := writeMsg(conn, msgHooks, nil); err != nil {
			return err
		}
		typ, payload, err := readMsg(conn)
		if err != nil {
			return err
		}
		if typ == msgError {
			return errors.New(string(payload))
		}
	}
	state := &specs.State{Version: specs.Version, ID: cfg.ID, Status: "creating", Pid: os.Getpid(), Bundle: cfg.Bundle, Annotations: cfg.Annotations}
	if err := hooks.Run("createContainer", cfg.CreateContainer, state); err != nil {
		return err
	}
	if err := rootfs.Enter(&cfg.Rootfs); err != nil {
		return err
	}
	if err := setUTS(cfg); err != nil {
		return err
	}
	if err := writeSysctls(cfg); err != nil {
		return err
	}
	// runc creates a missing working directory; images rely on it.
	if err := mkdirInRoot(cfg.Process.Cwd); err != nil {
		return fmt.Errorf("process.cwd: %w", err)
	}
	if err := rootfs.Finalize(&cfg.Rootfs, nil); err != nil {
		return err
	}
	if !cfg.NoNewKeyring {
		if _, err := unix.KeyctlJoinSessionKeyring("_ses." + cfg.ID); err != nil && err != unix.ENOSYS {
			return fmt.Errorf("join session keyring: %w", err)
		}
	}
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	p, err := prepareProcess(cfg)
	if err != nil {
		return err
	}
	if err := writeMsg(conn, msgReady, nil); err != nil {
		return err
	}
	conn.Close()

	// Wait for start. The fifo's write end is close-on-exec: start sees
	// EOF once execve succeeded, or our error text.
	fifo, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(cfg.FifoFd), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Exit(1)
	}
	unix.Close(cfg.FifoFd)
	if _, err := fifo.Write([]byte("0")); err != nil {
		os.Exit(1)
	}
	state.Status = "created"
	err = p.finish(func() error { return hooks.Run("startContainer", cfg.StartContainer, state) })
	fmt.Fprintf(fifo, "%v", err)
	os.Exit(1)
	return nil
}

// initExec runs a new process in a running container: the C stage joined
// its namespaces and the parent put us in its cgroup.
func initExec(conn *os.File, cfg *initConfig) error {
	p, err := prepareProcess(cfg)
	if err != nil {
		return err
	}
	// conn is close-on-exec: the parent reads EOF once execve succeeded.
	return p.finish(nil)
}

// enterNamespaces does the namespace work left to an init started without
// the C stage (directPlan), on this thread, the one that executes the
// container's process: it is in its cgroup by now.
func enterNamespaces(cfg *initConfig) error {
	for _, j := range cfg.Setns {
		if err := unix.Setns(j.Fd, j.Flag); err != nil {
			return fmt.Errorf("join namespace %s: %w", j.Path, err)
		}
		unix.Close(j.Fd)
	}
	if cfg.NewCgroupNS {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("create the cgroup namespace: %w", err)
		}
	}
	return nil
}

// loopbackUp brings up "lo" in a new network namespace, as runc does.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	return nil
}

// lookPath finds the program to run the way execvp would, with the
// container's PATH, inside the container's root (we are already in it).
func lookPath(args0 string, env []string) (string, error) {
	if strings.Contains(args0, "/") {
		if err := executable(args0); err != nil {
			return "", fmt.Errorf("exec: %q: %w", args0, err)
		}
		return args0, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			path = e[5:]
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, args0)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", args0)
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return errors.New("is a directory")
	}
	if st.Mode()&0o111 == 0 {
		return os.ErrPermission
	}
	return nil
}

// mkdirInRoot creates dir (and its parents) inside the current root.
func mkdirInRoot(dir string) error {
	root, err := os.Open("/")
	if err != nil {
		return err
	}
	defer root.Close()
	d, err := fsroot.MkdirAll(root, dir, 0o755)
	if err != nil {
		return err
	}
	return d.Close()
}
