package nsenter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// EnvInit names the bootstrap socket's file descriptor in a re-executed
// runtime process. It is the only bootstrap environment variable.
const EnvInit = "_BERTH_INIT"

// Record types; keep in sync with cmd/berth-nsenter/nsenter.c.
const (
	recCloneFlags   = 1
	recJoin         = 2
	recTimeOffsets  = 3
	recFork         = 4
	recEnd          = 5
	recJoinUser     = 6
	recExecArgv     = 7
	recExecEnv      = 8
	recExecCwd      = 9
	recExecUser     = 10
	recExecRlimit   = 11
	recExecCaps     = 12
	recExecNNP      = 13
	recExecSeccomp  = 14
	recExecPreserve = 15
	recCreate       = 16
	recRootfsDone   = 17
	recCgroupTasks  = 18
	recExecConsole  = 19

	msgUsermap    = 101
	msgUsermapAck = 102
	msgPid        = 103
	msgError      = 104
	msgProcFS     = 105
)

// MsgError is the record type of an error reported by the C stage. It can
// also arrive after the pid, when executing the runtime binary fails.
const MsgError = msgError

// maxRecord bounds what ReadRecord accepts, so that a confused peer cannot
// make us allocate without limit.
const maxRecord = 16 << 20

func init() {
	// In the runtime binary started as an init the main goroutine stays on
	// the main thread for good: credentials, capabilities, seccomp and
	// no_new_privs are per-thread and are set on it right before execve.
	if os.Getenv(EnvInit) != "" {
		runtime.LockOSThread()
	}
}

// IsInit reports whether this process was started as a container init or
// exec process by the C stage.
func IsInit() bool { return os.Getenv(EnvInit) != "" }

// Bootstrap says which namespaces the C stage joins and creates.
type Bootstrap struct {
	UserNS      string   // user namespace to join first ("" for none)
	Join        []string // other namespaces to join, in this order
	Unshare     uintptr  // CLONE_NEW* flags to create after the joins
	TimeOffsets string   // content for /proc/self/timens_offsets
	Fork        bool     // fork once more so the init enters pid and time namespaces
	// Exec, when set, is a process the C stage finishes and executes
	// itself, instead of executing the runtime binary as its Go init.
	Exec *Process
	// CgroupTasks are v1 cgroup "tasks" files the C stage moves itself
	// into (writing "0") before anything else (cgroups.Manager.SelfJoin).
	CgroupTasks []string
	// Create, with Exec, makes the C stage a container's init: started
	// by clone(2) in its new namespaces (no Fork), it waits for the
	// runtime to build its root filesystem (see Create).
	Create *Create
}

// Create is what the C stage needs to be a container's init rather than an
// exec'd process. After MSG_PID it joins the session keyring, calls
// setsid, makes ProcFS procfs contexts (fsopen) in its pid namespace and
// sends them (RecvProcFS): a procfs shows the pid namespace of the process
// that creates it, and the runtime builds the rootfs from a thread of its
// own, which is not in that namespace. Then it waits for RootfsDone, makes
// the process (Process, up to no_new_privs), reports ready (record 204, the
// Go init's), and blocks opening the exec fifo for writing; once start opens
// it, it writes "0", then either executes the program or writes the error
// there, as the Go init does.
type Create struct {
	FifoFd  int    // the exec fifo (O_PATH) in the child
	ProcFS  int    // procfs contexts to make: one per "proc" mount
	Keyring string // session keyring to join ("" for none)
}

// maxProcFS is the C stage's bound on Create.ProcFS.
const maxProcFS = 8

// Process is an exec'd process as the C stage makes it: in the order of
// the Go init (limits, umask, program lookup along the container's PATH,
// working directory inside the root, early seccomp, bounding set, user,
// capabilities, no_new_privs, late seccomp, descriptors), then execve. The
// parent reads EOF on the bootstrap socket once execve succeeded, an error
// record otherwise.
type Process struct {
	Args, Env      []string
	Cwd            string
	UID, GID       uint32
	Umask          *uint32 // nil: keep
	AdditionalGids []uint32
	Rlimits        []Rlimit
	Caps           *CapSets // nil: leave the capabilities as they are
	NoNewPrivs     bool
	Seccomp        []byte // the filter in the kernel's layout (seccomp.Program.Raw); nil: none
	SeccompFlags   uint32
	PreserveFds    int

	// Terminal: make a pty, send its master over the console socket
	// (ConsoleFd, the child's descriptor: the runtime fills it in at
	// spawn), and make it the process's stdio and controlling terminal,
	// of ConsoleRows x ConsoleCols (0: leave).
	Terminal                 bool
	ConsoleFd                int
	ConsoleRows, ConsoleCols uint16
}

// Rlimit is one process.rlimits entry; Index is its place there, for
// messages.
type Rlimit struct {
	Resource, Index uint32
	Soft, Hard      uint64
}

// CapSets are the five capability sets as masks; LastCap is the kernel's
// highest capability.
type CapSets struct {
	LastCap                                              uint32
	Bounding, Effective, Permitted, Inheritable, Ambient uint64
}

// umaskKeep is the C stage's "no umask".
const umaskKeep = 0xffffffff

func nulStrings(v []string) []byte {
	var b []byte
	for _, s := range v {
		b = append(append(b, s...), 0)
	}
	return b
}

func u64(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }

// encode renders p as REC_EXEC_* records.
func (p *Process) encode(put func(uint32, []byte)) {
	put(recExecArgv, nulStrings(p.Args))
	put(recExecEnv, nulStrings(p.Env))
	put(recExecCwd, []byte(p.Cwd))
	umask := uint32(umaskKeep)
	if p.Umask != nil {
		umask = *p.Umask
	}
	user := append(append(append(u32(p.UID), u32(p.GID)...), u32(umask)...), u32(uint32(len(p.AdditionalGids)))...)
	for _, g := range p.AdditionalGids {
		user = append(user, u32(g)...)
	}
	put(recExecUser, user)
	for _, r := range p.Rlimits {
		put(recExecRlimit, append(append(append(u32(r.Resource), u32(r.Index)...), u64(r.Soft)...), u64(r.Hard)...))
	}
	if c := p.Caps; c != nil {
		b := append(u32(c.LastCap), u32(0)...)
		for _, m := range []uint64{c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
			b = append(b, u64(m)...)
		}
		put(recExecCaps, b)
	}
	if p.NoNewPrivs {
		put(recExecNNP, nil)
	}
	if p.Seccomp != nil {
		put(recExecSeccomp, append(append(u32(p.SeccompFlags), u32(0)...), p.Seccomp...))
	}
	if p.PreserveFds > 0 {
		put(recExecPreserve, u32(uint32(p.PreserveFds)))
	}
	if p.Terminal {
		b := u32(uint32(p.ConsoleFd))
		b = binary.NativeEndian.AppendUint16(b, p.ConsoleRows)
		put(recExecConsole, binary.NativeEndian.AppendUint16(b, p.ConsoleCols))
	}
}

// WriteRecord writes one protocol record.
func WriteRecord(w io.Writer, typ uint32, payload []byte) error {
	buf := make([]byte, 8+len(payload))
	binary.NativeEndian.PutUint32(buf[0:], typ)
	binary.NativeEndian.PutUint32(buf[4:], uint32(len(payload)))
	copy(buf[8:], payload)
	_, err := w.Write(buf)
	return err
}

// ReadRecord reads one protocol record.
func ReadRecord(r io.Reader) (typ uint32, payload []byte, err error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	typ = binary.NativeEndian.Uint32(hdr[0:])
	n := binary.NativeEndian.Uint32(hdr[4:])
	if n > maxRecord {
		return 0, nil, fmt.Errorf("record %d of %d bytes is too long", typ, n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	return typ, payload, nil
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// Encode renders the bootstrap as the records the C stage reads.
func (b *Bootstrap) Encode() []byte {
	var sb strings.Builder
	put := func(typ uint32, p []byte) { _ = WriteRecord(&sb, typ, p) }
	for _, t := range b.CgroupTasks {
		put(recCgroupTasks, []byte(t))
	}
	if b.UserNS != "" {
		put(recJoinUser, []byte(b.UserNS))
	}
	for _, p := range b.Join {
		put(recJoin, []byte(p))
	}
	if b.Unshare != 0 {
		put(recCloneFlags, u32(uint32(b.Unshare)))
	}
	if b.TimeOffsets != "" {
		put(recTimeOffsets, []byte(b.TimeOffsets))
	}
	if b.Fork {
		put(recFork, u32(1))
	}
	if b.Exec != nil {
		b.Exec.encode(put)
	}
	if c := b.Create; c != nil {
		put(recCreate, append(append(u32(uint32(c.FifoFd)), u32(uint32(c.ProcFS))...), c.Keyring...))
	}
	put(recEnd, nil)
	return []byte(sb.String())
}

// ErrStage0 marks an error reported by the C stage.
var ErrStage0 = errors.New("namespace setup")

// Drive runs the parent's side of the bootstrap with the child whose pid is
// stage0Pid: it sends b, writes the user namespace maps when asked (mapUser),
// and returns the host pid of the process that carries on as the init.
func Drive(conn io.ReadWriter, stage0Pid int, b *Bootstrap, mapUser func(pid int) error) (int, error) {
	if _, err := conn.Write(b.Encode()); err != nil {
		return 0, fmt.Errorf("send namespace bootstrap: %w", err)
	}
	for {
		typ, payload, err := ReadRecord(conn)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return 0, fmt.Errorf("%w: the child exited before reporting its pid", ErrStage0)
			}
			return 0, fmt.Errorf("%w: read: %v", ErrStage0, err)
		}
		switch typ {
		case msgUsermap:
			if mapUser == nil {
				return 0, fmt.Errorf("%w: unexpected user map request", ErrStage0)
			}
			if err := mapUser(stage0Pid); err != nil {
				return 0, err
			}
			if err := WriteRecord(conn, msgUsermapAck, nil); err != nil {
				return 0, fmt.Errorf("%w: ack user map: %v", ErrStage0, err)
			}
		case msgPid:
			if len(payload) != 4 {
				return 0, fmt.Errorf("%w: bad pid message", ErrStage0)
			}
			return int(int32(binary.NativeEndian.Uint32(payload))), nil
		case msgError:
			return 0, fmt.Errorf("%w: %s", ErrStage0, strings.TrimPrefix(string(payload), "nsenter: "))
		default:
			return 0, fmt.Errorf("%w: unexpected message %d", ErrStage0, typ)
		}
	}
}

// RecvProcFS receives the procfs contexts a container init sends after its
// pid (Create.ProcFS of them), or its error.
func RecvProcFS(conn *os.File, n int) ([]*os.File, error) {
	if n > maxProcFS {
		return nil, fmt.Errorf("%d proc mounts: at most %d are supported", n, maxProcFS)
	}
	var hdr [12]byte
	oob := make([]byte, unix.CmsgSpace(4*maxProcFS))
	got, oobn, _, _, err := unix.Recvmsg(int(conn.Fd()), hdr[:8], oob, unix.MSG_CMSG_CLOEXEC)
	for err == unix.EINTR {
		got, oobn, _, _, err = unix.Recvmsg(int(conn.Fd()), hdr[:8], oob, unix.MSG_CMSG_CLOEXEC)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read: %v", ErrStage0, err)
	}
	var files []*os.File
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, fmt.Errorf("%w: procfs descriptors: %v", ErrStage0, err)
		}
		for _, m := range msgs {
			fds, err := unix.ParseUnixRights(&m)
			if err != nil {
				continue
			}
			for _, fd := range fds {
				files = append(files, os.NewFile(uintptr(fd), "procfs context"))
			}
		}
	}
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	if got < 8 {
		if _, err := io.ReadFull(conn, hdr[got:8]); err != nil {
			closeAll()
			return nil, fmt.Errorf("%w: the init exited before it sent its procfs contexts", ErrStage0)
		}
	}
	typ := binary.NativeEndian.Uint32(hdr[0:])
	size := binary.NativeEndian.Uint32(hdr[4:])
	if size > maxRecord {
		closeAll()
		return nil, fmt.Errorf("%w: record %d of %d bytes is too long", ErrStage0, typ, size)
	}
	payload := make([]byte, size)
	if _, err := io.ReadFull(conn, payload); err != nil {
		closeAll()
		return nil, fmt.Errorf("%w: read: %v", ErrStage0, err)
	}
	switch {
	case typ == msgError:
		closeAll()
		return nil, errors.New(strings.TrimPrefix(string(payload), "nsenter: "))
	case typ != msgProcFS || size != 4 || int(binary.NativeEndian.Uint32(payload)) != n || len(files) != n:
		closeAll()
		return nil, fmt.Errorf("%w: expected %d procfs contexts, got message %d with %d descriptors", ErrStage0, n, typ, len(files))
	}
	return files, nil
}

// RootfsDone tells a container init (Create) that its root filesystem is
// in place.
func RootfsDone(conn io.Writer) error {
	return WriteRecord(conn, recRootfsDone, nil)
}
