package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/berthproject/berth/internal/bpf"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The device program goes through bpf(2) directly: five commands, each
// taking its part of union bpf_attr (include/uapi/linux/bpf.h). The structs
// below copy the kernel's field layout for the fields we set or read, up to
// the last one we use; the kernel reads the size we pass and treats the
// fields after it as zero. The offsets are checked in devices_bpf_test.go.

// bpfPointer is an __aligned_u64 holding a user-space address. It is made
// of unsafe.Pointers, not integers, so that the garbage collector keeps
// what it points at alive (and updates it if a stack moves) until the call.
// On 64-bit machines it is one pointer; on 32-bit ones two, the address in
// the low half and nil in the other.
type bpfPointer [8 / unsafe.Sizeof(uintptr(0))]unsafe.Pointer

func pointerTo(p unsafe.Pointer) bpfPointer {
	var b bpfPointer
	if bpf.BigEndian {
		b[len(b)-1] = p
	} else {
		b[0] = p
	}
	return b
}

// progLoadAttr is the BPF_PROG_LOAD part of union bpf_attr:
//
//	__u32 prog_type; __u32 insn_cnt; __aligned_u64 insns; __aligned_u64 license;
//	__u32 log_level; __u32 log_size; __aligned_u64 log_buf;
//	__u32 kern_version; __u32 prog_flags; char prog_name[BPF_OBJ_NAME_LEN];
type progLoadAttr struct {
	progType    uint32
	insnCnt     uint32
	insns       bpfPointer
	license     bpfPointer
	logLevel    uint32
	logSize     uint32
	logBuf      bpfPointer
	kernVersion uint32
	progFlags   uint32
	progName    [unix.BPF_OBJ_NAME_LEN]byte
}

// progAttachAttr is the BPF_PROG_ATTACH / BPF_PROG_DETACH part:
//
//	__u32 target_fd; __u32 attach_bpf_fd; __u32 attach_type; __u32 attach_flags;
type progAttachAttr struct {
	targetFD    uint32
	attachBPFFD uint32
	attachType  uint32
	attachFlags uint32
}

// progQueryAttr is the BPF_PROG_QUERY part:
//
//	__u32 target_fd; __u32 attach_type; __u32 query_flags; __u32 attach_flags;
//	__aligned_u64 prog_ids; __u32 prog_cnt;
type progQueryAttr struct {
	targetFD    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     bpfPointer
	progCnt     uint32
}

// getFDByIDAttr is the BPF_PROG_GET_FD_BY_ID part:
//
//	__u32 prog_id; __u32 next_id; __u32 open_flags;
type getFDByIDAttr struct {
	progID    uint32
	nextID    uint32
	openFlags uint32
}

// objInfoAttr is the BPF_OBJ_GET_INFO_BY_FD part:
//
//	__u32 bpf_fd; __u32 info_len; __aligned_u64 info;
type objInfoAttr struct {
	bpfFD   uint32
	infoLen uint32
	info    bpfPointer
}

// progInfo is struct bpf_prog_info up to the program's name:
//
//	__u32 type; __u32 id; __u8 tag[BPF_TAG_SIZE];
//	__u32 jited_prog_len; __u32 xlated_prog_len;
//	__aligned_u64 jited_prog_insns; __aligned_u64 xlated_prog_insns;
//	__u64 load_time; __u32 created_by_uid; __u32 nr_map_ids;
//	__aligned_u64 map_ids; char name[BPF_OBJ_NAME_LEN];
type progInfo struct {
	typ             uint32
	id              uint32
	tag             [unix.BPF_TAG_SIZE]byte
	jitedProgLen    uint32
	xlatedProgLen   uint32
	jitedProgInsns  uint64
	xlatedProgInsns uint64
	loadTime        uint64
	createdByUID    uint32
	nrMapIDs        uint32
	mapIDs          uint64
	name            [unix.BPF_OBJ_NAME_LEN]byte
}

// bpfSyscall calls bpf(2) with cmd and the attr struct at attr, of size bytes.
func bpfSyscall(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// verifierLogSize bounds the verifier's log kept for a load error; the
// device program is small, so is its log.
const verifierLogSize = 64 << 10

// loadDeviceProgram loads prog as a BPF_PROG_TYPE_CGROUP_DEVICE program
// named deviceProgramName and returns its fd. When the verifier refuses
// it, the program is loaded again with a log buffer, so the error carries
// the verifier's message.
func loadDeviceProgram(prog []bpf.Insn) (int, error) {
	if len(prog) == 0 {
		return -1, errors.New("load device program: no instructions")
	}
	license := []byte("Apache-2.0\x00") // a C string
	attr := progLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(prog)),
		insns:    pointerTo(unsafe.Pointer(&prog[0])),
		license:  pointerTo(unsafe.Pointer(&license[0])),
	}
	copy(attr.progName[:unix.BPF_OBJ_NAME_LEN-1], deviceProgramName)
	fd, err := progLoad(&attr)
	if err == nil {
		return fd, nil
	}
	log := make([]byte, verifierLogSize)
	attr.logLevel = 1
	attr.logSize = uint32(len(log))
	attr.logBuf = pointerTo(unsafe.Pointer(&log[0]))
	if fd, err := progLoad(&attr); err == nil {
		return fd, nil // did not fail this time
	}
	if n := bytes.IndexByte(log, 0); n >= 0 {
		log = log[:n]
	}
	if log = bytes.TrimSpace(log); len(log) == 0 {
		return -1, fmt.Errorf("load device program (%d instructions): %w", len(prog), err)
	}
	return -1, fmt.Errorf("load device program (%d instructions): %w; verifier log:\n%s", len(prog), err, log)
}

// progLoad runs BPF_PROG_LOAD, again when the verifier was interrupted by
// a signal (it then fails with EAGAIN).
func progLoad(attr *progLoadAttr) (int, error) {
	for {
		fd, err := bpfSyscall(unix.BPF_PROG_LOAD, unsafe.Pointer(attr), unsafe.Sizeof(*attr))
		if !errors.Is(err, unix.EAGAIN) {
			return fd, err
		}
	}
}

// attachDeviceProgram loads prog as a cgroup device program and attaches
// it to the cgroup2 directory dir with BPF_F_ALLOW_MULTI, then detaches the
// programs of ours attached before. The new program goes in before the old
// ones go out, so the cgroup is never without a filter. Programs attached by
// others (systemd, say) are left alone; they can only restrict further.
func attachDeviceProgram(dir string, prog []bpf.Insn) error {
	cgroup, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	defer unix.Close(cgroup)

	old, err := ourDevicePrograms(cgroup)
	if err != nil {
		return fmt.Errorf("list device programs of %s: %w", dir, err)
	}
	defer closeFDs(old)

	fd, err := loadDeviceProgram(prog)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	attach := progAttachAttr{
		targetFD:    uint32(cgroup),
		attachBPFFD: uint32(fd),
		attachType:  unix.BPF_CGROUP_DEVICE,
		attachFlags: unix.BPF_F_ALLOW_MULTI,
	}
	if _, err := bpfSyscall(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attach), unsafe.Sizeof(attach)); err != nil {
		return fmt.Errorf("attach device program to %s: %w", dir, err)
	}
	for _, p := range old {
		detach := progAttachAttr{
			targetFD:    uint32(cgroup),
			attachBPFFD: uint32(p),
			attachType:  unix.BPF_CGROUP_DEVICE,
		}
		_, err := bpfSyscall(unix.BPF_PROG_DETACH, unsafe.Pointer(&detach), unsafe.Sizeof(detach))
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("detach old device program from %s: %w", dir, err)
		}
	}
	return nil
}

// ourDevicePrograms returns fds of the device programs named
// deviceProgramName attached directly to the cgroup open at cgroup. The
// caller closes them.
func ourDevicePrograms(cgroup int) ([]int, error) {
	ids, err := devicePrograms(cgroup)
	if err != nil {
		return nil, err
	}
	var ours []int
	for _, id := range ids {
		get := getFDByIDAttr{progID: id}
		fd, err := bpfSyscall(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&get), unsafe.Sizeof(get))
		if errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist) {
			continue // not ours to see (LSM), or gone meanwhile
		}
		if err != nil {
			closeFDs(ours)
			return nil, fmt.Errorf("open program %d: %w", id, err)
		}
		if name, err := programName(fd); err == nil && name == deviceProgramName {
			ours = append(ours, fd)
			continue
		}
		unix.Close(fd)
	}
	return ours, nil
}

// devicePrograms returns the ids of the device programs attached directly
// to the cgroup open at cgroup.
func devicePrograms(cgroup int) ([]uint32, error) {
	ids := make([]uint32, 64) // the kernel's limit per cgroup and attach type (BPF_CGROUP_MAX_PROGS)
	for {
		query := progQueryAttr{
			targetFD:   uint32(cgroup),
			attachType: unix.BPF_CGROUP_DEVICE,
			progIDs:    pointerTo(unsafe.Pointer(&ids[0])),
			progCnt:    uint32(len(ids)),
		}
		_, err := bpfSyscall(unix.BPF_PROG_QUERY, unsafe.Pointer(&query), unsafe.Sizeof(query))
		if errors.Is(err, unix.ENOSPC) && int(query.progCnt) > len(ids) {
			ids = make([]uint32, query.progCnt) // more than we asked for: ask again
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("query programs: %w", err)
		}
		return ids[:query.progCnt], nil
	}
}

// programName returns the name the program open at fd was loaded with.
func programName(fd int) (string, error) {
	var info progInfo
	attr := objInfoAttr{
		bpfFD:   uint32(fd),
		infoLen: uint32(unsafe.Sizeof(info)),
		info:    pointerTo(unsafe.Pointer(&info)),
	}
	if _, err := bpfSyscall(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return "", err
	}
	name := info.name[:]
	if n := bytes.IndexByte(name, 0); n >= 0 {
		name = name[:n]
	}
	return string(name), nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
