package runtime

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/cgroups"
	"github.com/berthproject/berth/internal/hooks"
)

func hooksOf(s *specs.Spec) *specs.Hooks {
	if s == nil || s.Hooks == nil {
		return &specs.Hooks{}
	}
	return s.Hooks
}

// Start runs the user process of a created container.
func (r *Runtime) Start(id string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	dir := r.dir(id)
	lk, err := lock(dir, id)
	if err != nil {
		return err
	}
	defer lk.Close()
	st, err := readState(dir, id)
	if err != nil {
		return err
	}
	if s := r.status(st); s != "created" {
		return fmt.Errorf("%w: cannot start a container that is %s", ErrState, s)
	}
	return r.start(st)
}

// start opens the exec fifo: the init, blocked opening its write end, goes
// on to run the startContainer hooks and execve. The write end is
// close-on-exec, so EOF after the "0" byte means the user process runs.
func (r *Runtime) start(st *State) (err error) {
	dir := r.dir(st.ID)
	// The init is watched from before the fifo opens: opening it lets the
	// init exec, and a short-lived process can exit and be reaped by its
	// parent (containerd's shim is a subreaper) before a pidfd opened
	// afterwards would find it.
	pidfd, err := unix.PidfdOpen(st.Pid, 0)
	if err != nil {
		return fmt.Errorf("start container %s: container init %d: %w", st.ID, st.Pid, err)
	}
	defer unix.Close(pidfd)
	fifo, err := os.OpenFile(fifoPath(dir), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer fifo.Close()
	out, err := readFifo(fifo, pidfd)
	os.Remove(fifoPath(dir))
	if err == nil && !strings.HasPrefix(out, "0") {
		err = errors.New("container init did not start the process")
	}
	if err == nil && len(out) > 1 {
		err = errors.New(strings.TrimSpace(out[1:]))
	}
	if err != nil {
		// startContainer hooks or execve failed: stop the container and
		// continue the lifecycle with its destruction (runtime-spec).
		r.teardown(st)
		return fmt.Errorf("start container %s: %w", st.ID, err)
	}
	var herr error
	if st.Poststart {
		spec, err := readConfig(dir, st.ID)
		if err != nil {
			return err
		}
		herr = hooks.Run("poststart", hooksOf(spec).Poststart, r.specState(st, "running"))
	}
	if herr != nil {
		r.teardown(st)
		return fmt.Errorf("%w: %v", errHook, herr)
	}
	return nil
}

// teardown kills and destroys a container whose start failed, then runs
// its poststop hooks.
func (r *Runtime) teardown(st *State) {
	spec := r.configForPoststop(st)
	r.kill(st)
	if cg, err := r.cgroup(st); err == nil {
		_ = r.destroy(st, cg)
	}
	r.poststop(st, spec)
}

// readFifo reads the fifo until EOF while watching the init: if the init
// died before it opened the fifo, a plain read would wait forever.
func readFifo(fifo *os.File, pidfd int) (string, error) {
	var out []byte
	buf := make([]byte, 4096)
	for {
		fds := []unix.PollFd{{Fd: int32(fifo.Fd()), Events: unix.POLLIN}, {Fd: int32(pidfd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			return "", err
		}
		if fds[0].Revents != 0 {
			n, err := unix.Read(int(fifo.Fd()), buf)
			switch {
			case n > 0:
				out = append(out, buf[:n]...)
				continue
			case n == 0:
				return string(out), nil // the write end closed: execve or exit
			case err == unix.EAGAIN || err == unix.EINTR:
				continue
			default:
				return "", fmt.Errorf("read exec fifo: %w", err)
			}
		}
		if fds[1].Revents != 0 {
			if len(out) == 0 {
				return "", errors.New("container init exited before start")
			}
			return string(out), nil
		}
	}
}

// Kill sends sig to the container's init, or with all to every process of
// its cgroup.
func (r *Runtime) Kill(id string, sig unix.Signal, all bool) error {
	if err := CheckID(id); err != nil {
		return err
	}
	st, err := readState(r.dir(id), id)
	if err != nil {
		return err
	}
	switch r.status(st) {
	case "stopped":
		if !all {
			// containerd's shim recognises "container not running".
			return fmt.Errorf("%w: container not running: %s", ErrState, id)
		}
	case "creating":
		return fmt.Errorf("%w: container %s is still being created", ErrState, id)
	}
	if all {
		cg, err := r.cgroup(st)
		if err != nil {
			return err
		}
		return cg.Kill(sig)
	}
	if err := unix.Kill(st.Pid, sig); err != nil {
		return fmt.Errorf("signal container %s (pid %d): %w", id, st.Pid, err)
	}
	return nil
}

// Delete removes a stopped container; with force it kills a running one
// first.
func (r *Runtime) Delete(id string, force bool) error {
	if err := CheckID(id); err != nil {
		return err
	}
	dir := r.dir(id)
	lk, err := lock(dir, id)
	if err != nil {
		return err
	}
	defer lk.Close()
	st, err := readState(dir, id)
	if err != nil {
		return err
	}
	if s := r.status(st); s != "stopped" {
		if !force {
			return fmt.Errorf("%w: cannot delete container %s that is %s (stop it first, or use --force)", ErrState, id, s)
		}
		r.kill(st)
	}
	var cg cgroups.Manager
	if st.CgroupPath != "" {
		if cg, err = r.cgroup(st); err != nil {
			return err
		}
	}
	spec := r.configForPoststop(st)
	if err := r.destroy(st, cg); err != nil {
		return err
	}
	r.poststop(st, spec)
	return nil
}

// kill stops every process of a container and waits for them to be gone.
func (r *Runtime) kill(st *State) {
	cg, _ := r.cgroup(st)
	if cg != nil {
		_ = cg.Freeze(false)
		_ = cg.Kill(unix.SIGKILL)
	}
	if st.alive() {
		_ = unix.Kill(st.Pid, unix.SIGKILL)
	}
	// The processes are not our children: wait until the kernel is done
	// with them (zombies count as gone; their parent reaps them).
	for i := 0; i < 1000; i++ {
		busy := st.alive()
		if !busy && cg != nil {
			if pids, err := cg.Pids(); err == nil {
				for _, p := range pids {
					if _, zombie, err := procStart(p); err == nil && !zombie {
						busy = true
						break
					}
				}
			}
		}
		if !busy {
			return
		}
		time.Sleep(time.Millisecond * time.Duration(1+i/100))
	}
	r.Log.Warn("processes of the container survived SIGKILL", "id", st.ID)
}

// destroy undoes create: the cgroup and the state directory.
func (r *Runtime) destroy(st *State, cg cgroups.Manager) error {
	if cg != nil {
		if err := cg.Destroy(); err != nil {
			return fmt.Errorf("remove cgroup of %s: %w", st.ID, err)
		}
	}
	if err := os.RemoveAll(r.dir(st.ID)); err != nil {
		return fmt.Errorf("remove state of %s: %w", st.ID, err)
	}
	return nil
}

// poststop runs the poststop hooks; their failures are only warnings. The
// config must have been read before the state directory went away.
func (r *Runtime) poststop(st *State, spec *specs.Spec) {
	if !st.Poststop {
		return
	}
	r.runPoststop(st, spec)
}

func (r *Runtime) runPoststop(st *State, spec *specs.Spec) {
	if spec == nil {
		r.Log.Warn("poststop hooks not run: the container's config could not be read", "id", st.ID)
		return
	}
	if err := hooks.Run("poststop", hooksOf(spec).Poststop, r.specState(st, "stopped")); err != nil {
		r.Log.Warn(err.Error())
	}
}

// configForPoststop reads the config when delete will need its poststop
// hooks (before the state directory is removed).
func (r *Runtime) configForPoststop(st *State) *specs.Spec {
	if !st.Poststop {
		return nil
	}
	spec, err := readConfig(r.dir(st.ID), st.ID)
	if err != nil {
		r.Log.Warn(err.Error())
		return nil
	}
	return spec
}
