package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loadFlags are the flags Load passes to seccomp(2).
func (p *Program) loadFlags() uint32 {
	f := p.Flags
	if p.Notify {
		f |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
		if f&unix.SECCOMP_FILTER_FLAG_TSYNC != 0 {
			// TSYNC alone reports a failing thread by its id in the return
			// value, which is the listener fd here; TSYNC_ESRCH (5.7)
			// makes that an ESRCH error so both can be asked for.
			f |= unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
		}
	} else {
		// Waiting killably only concerns notifications; the kernel refuses
		// the flag without NEW_LISTENER.
		f &^= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
	}
	return f
}

func flagNames(f uint32) string {
	names := []struct {
		v uint32
		n string
	}{
		{unix.SECCOMP_FILTER_FLAG_TSYNC, "TSYNC"},
		{unix.SECCOMP_FILTER_FLAG_LOG, "LOG"},
		{unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW, "SPEC_ALLOW"},
		{unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, "NEW_LISTENER"},
		{unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH, "TSYNC_ESRCH"},
		{unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, "WAIT_KILLABLE_RECV"},
	}
	var out []string
	for _, n := range names {
		if f&n.v != 0 {
			out = append(out, n.n)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "|")
}

// Raw returns what Load would pass to seccomp(2), after the checks Load
// makes: the flags and the filter in the kernel's layout (struct
// sock_filter, native byte order), for a process that loads it without Go
// (berth-nsenter finishing an exec'd process). A program with a notify
// rule is refused: its listener needs Load.
func (p *Program) Raw() (flags uint32, filter []byte, err error) {
	if p.Notify {
		return 0, nil, errors.New("load seccomp filter: a notify filter needs its listener: use Load")
	}
	if err := p.check(); err != nil {
		return 0, nil, fmt.Errorf("load seccomp filter: %w", err)
	}
	if err := p.CheckKernel(); err != nil {
		return 0, nil, fmt.Errorf("load seccomp filter: %w", err)
	}
	filter = make([]byte, 0, 8*len(p.Filter))
	for _, f := range p.Filter {
		filter = binary.NativeEndian.AppendUint16(filter, f.Code)
		filter = append(filter, f.Jt, f.Jf)
		filter = binary.NativeEndian.AppendUint32(filter, f.K)
	}
	return p.loadFlags(), filter, nil
}

// CheckKernel asks the running kernel (SECCOMP_GET_ACTION_AVAIL) whether it
// implements every action p can return, so that `create` fails early and
// clearly, e.g. for SCMP_ACT_NOTIFY before Linux 5.0.
func (p *Program) CheckKernel() error {
	for _, a := range p.Actions {
		v := a
		_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&v)))
		switch {
		case errno == 0:
		case errno == unix.EOPNOTSUPP:
			return fmt.Errorf("seccomp action %s is not supported by this kernel: %w", actionName(a), errno)
		case errno == unix.EINVAL || errno == unix.ENOSYS:
			// Before 4.14 there is no GET_ACTION_AVAIL, and no seccomp(2)
			// before 3.17: only the actions that existed then are usable.
			switch a {
			case retKillThread, retTrap, retErrno, retTrace, retAllow:
			default:
				return fmt.Errorf("seccomp action %s is not supported by this kernel: %w", actionName(a), errno)
			}
		default:
			return fmt.Errorf("seccomp(SECCOMP_GET_ACTION_AVAIL, %s): %w", actionName(a), errno)
		}
	}
	return nil
}

// Load installs p on the calling thread with seccomp(2)
// SECCOMP_SET_MODE_FILTER and returns the notification listener fd, or -1
// when p has no SCMP_ACT_NOTIFY rule.
//
// The caller has locked the goroutine to its OS thread (the filter binds
// that thread, and the threads it creates, unless TSYNC was asked for) and
// has set no_new_privs or holds CAP_SYS_ADMIN.
func Load(p *Program) (listenerFd int, err error) {
	if err := p.check(); err != nil {
		return -1, fmt.Errorf("load seccomp filter: %w", err)
	}
	if err := p.CheckKernel(); err != nil {
		return -1, fmt.Errorf("load seccomp filter: %w", err)
	}
	flags := p.loadFlags()
	prog := unix.SockFprog{Len: uint16(len(p.Filter)), Filter: &p.Filter[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(p)
	if errno != 0 {
		err := fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER, flags %s): %w", flagNames(flags), errno)
		switch {
		case errors.Is(errno, unix.EACCES):
			err = fmt.Errorf("%w (no_new_privs is not set and the caller lacks CAP_SYS_ADMIN)", err)
		case errors.Is(errno, unix.EINVAL) && flags != 0:
			err = fmt.Errorf("%w (the kernel may not support one of the flags)", err)
		case errors.Is(errno, unix.ESRCH):
			err = fmt.Errorf("%w (another thread could not be synchronized)", err)
		}
		return -1, err
	}
	if p.Notify {
		return int(r), nil
	}
	if flags&unix.SECCOMP_FILTER_FLAG_TSYNC != 0 && r != 0 {
		return -1, fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER, flags %s): thread %d could not be synchronized", flagNames(flags), r)
	}
	return -1, nil
}
