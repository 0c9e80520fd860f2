package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The bpf(2) commands, each taking its part of union bpf_attr
// (include/uapi/linux/bpf.h). The structs copy the kernel's layout for the
// fields we set or read, up to the last one we use; the kernel treats the
// fields after the size we pass as zero. Offsets are checked in sys_test.go.

// pointer is an __aligned_u64 holding a user-space address, made of
// unsafe.Pointers so that the garbage collector keeps what it points at
// alive until the call (see cgroups' bpfPointer).
type pointer [8 / unsafe.Sizeof(uintptr(0))]unsafe.Pointer

func ptr(p unsafe.Pointer) pointer {
	var b pointer
	if BigEndian {
		b[len(b)-1] = p
	} else {
		b[0] = p
	}
	return b
}

// mapCreateAttr: __u32 map_type, key_size, value_size, max_entries,
// map_flags, inner_map_fd, numa_node; char map_name[BPF_OBJ_NAME_LEN].
type mapCreateAttr struct {
	mapType    uint32
	keySize    uint32
	valueSize  uint32
	maxEntries uint32
	mapFlags   uint32
	innerMapFD uint32
	numaNode   uint32
	name       [unix.BPF_OBJ_NAME_LEN]byte
}

// mapElemAttr: __u32 map_fd; __aligned_u64 key; __aligned_u64 value (or
// next_key); __u64 flags.
type mapElemAttr struct {
	mapFD uint32
	_     uint32
	key   pointer
	value pointer
	flags uint64
}

// progLoadAttr: the BPF_PROG_LOAD part up to expected_attach_type.
type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              pointer
	license            pointer
	logLevel           uint32
	logSize            uint32
	logBuf             pointer
	kernVersion        uint32
	progFlags          uint32
	progName           [unix.BPF_OBJ_NAME_LEN]byte
	progIfindex        uint32
	expectedAttachType uint32
}

// objAttr: BPF_OBJ_PIN and BPF_OBJ_GET: __aligned_u64 pathname; __u32
// bpf_fd; __u32 file_flags.
type objAttr struct {
	pathname  pointer
	bpfFD     uint32
	fileFlags uint32
}

// attachAttr: BPF_PROG_ATTACH / BPF_PROG_DETACH: __u32 target_fd,
// attach_bpf_fd, attach_type, attach_flags.
type attachAttr struct {
	targetFD    uint32
	attachBPFFD uint32
	attachType  uint32
	attachFlags uint32
}

// queryAttr: BPF_PROG_QUERY: __u32 target_fd, attach_type, query_flags,
// attach_flags; __aligned_u64 prog_ids; __u32 prog_cnt.
type queryAttr struct {
	targetFD    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     pointer
	progCnt     uint32
}

// getFDByIDAttr: BPF_PROG_GET_FD_BY_ID: __u32 prog_id, next_id, open_flags.
type getFDByIDAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

// infoAttr: BPF_OBJ_GET_INFO_BY_FD: __u32 bpf_fd, info_len; __aligned_u64 info.
type infoAttr struct {
	bpfFD   uint32
	infoLen uint32
	info    pointer
}

// progInfo is struct bpf_prog_info up to the program's name.
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

func sys(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// MapSpec describes a map to create.
type MapSpec struct {
	Type       uint32 // unix.BPF_MAP_TYPE_HASH, ...
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	Name       string // at most 15 bytes
}

// CreateMap creates a map and returns its fd.
func CreateMap(s MapSpec) (int, error) {
	attr := mapCreateAttr{mapType: s.Type, keySize: s.KeySize, valueSize: s.ValueSize, maxEntries: s.MaxEntries}
	copy(attr.name[:unix.BPF_OBJ_NAME_LEN-1], s.Name)
	fd, err := sys(unix.BPF_MAP_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return -1, fmt.Errorf("create map %s: %w", s.Name, err)
	}
	return fd, nil
}

// UpdateElem sets key to value in the map at fd (BPF_ANY).
func UpdateElem(fd int, key, value []byte) error {
	attr := mapElemAttr{mapFD: uint32(fd), key: ptr(unsafe.Pointer(&key[0])), value: ptr(unsafe.Pointer(&value[0]))}
	_, err := sys(unix.BPF_MAP_UPDATE_ELEM, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// LookupElem reads key's value into value; ENOENT if there is none.
func LookupElem(fd int, key, value []byte) error {
	attr := mapElemAttr{mapFD: uint32(fd), key: ptr(unsafe.Pointer(&key[0])), value: ptr(unsafe.Pointer(&value[0]))}
	_, err := sys(unix.BPF_MAP_LOOKUP_ELEM, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// DeleteElem removes key; ENOENT if it is not there.
func DeleteElem(fd int, key []byte) error {
	attr := mapElemAttr{mapFD: uint32(fd), key: ptr(unsafe.Pointer(&key[0]))}
	_, err := sys(unix.BPF_MAP_DELETE_ELEM, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// Keys lists the keys of the map at fd, each keySize bytes.
func Keys(fd int, keySize int) ([][]byte, error) {
	var out [][]byte
	var prev []byte // nil: the first key
	for {
		next := make([]byte, keySize)
		attr := mapElemAttr{mapFD: uint32(fd), value: ptr(unsafe.Pointer(&next[0]))}
		if prev != nil {
			attr.key = ptr(unsafe.Pointer(&prev[0]))
		}
		_, err := sys(unix.BPF_MAP_GET_NEXT_KEY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		if errors.Is(err, unix.ENOENT) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, next)
		prev = next
	}
}

// ProgSpec describes a program to load.
type ProgSpec struct {
	Type       uint32 // unix.BPF_PROG_TYPE_...
	AttachType uint32 // expected_attach_type
	Name       string // at most 15 bytes
	Insns      []Insn
	License    string
}

// verifierLogSize bounds the verifier's log kept for a load error.
const verifierLogSize = 64 << 10

// LoadProg loads a program and returns its fd. When the verifier refuses
// it, it loads it again with a log, so that the error carries the log.
func LoadProg(s ProgSpec) (int, error) {
	if len(s.Insns) == 0 {
		return -1, fmt.Errorf("load program %s: no instructions", s.Name)
	}
	license := append([]byte(s.License), 0)
	attr := progLoadAttr{
		progType:           s.Type,
		insnCnt:            uint32(len(s.Insns)),
		insns:              ptr(unsafe.Pointer(&s.Insns[0])),
		license:            ptr(unsafe.Pointer(&license[0])),
		expectedAttachType: s.AttachType,
	}
	copy(attr.progName[:unix.BPF_OBJ_NAME_LEN-1], s.Name)
	fd, err := progLoad(&attr)
	if err == nil {
		return fd, nil
	}
	log := make([]byte, verifierLogSize)
	attr.logLevel = 1
	attr.logSize = uint32(len(log))
	attr.logBuf = ptr(unsafe.Pointer(&log[0]))
	if fd, err := progLoad(&attr); err == nil {
		return fd, nil
	}
	if n := bytes.IndexByte(log, 0); n >= 0 {
		log = log[:n]
	}
	return -1, fmt.Errorf("load program %s (%d instructions): %w; verifier log:\n%s", s.Name, len(s.Insns), err, bytes.TrimSpace(log))
}

func progLoad(attr *progLoadAttr) (int, error) {
	for {
		fd, err := sys(unix.BPF_PROG_LOAD, unsafe.Pointer(attr), unsafe.Sizeof(*attr))
		if !errors.Is(err, unix.EAGAIN) {
			return fd, err
		}
	}
}

// Pin pins the program or map at fd at path, in a bpf file system.
func Pin(fd int, path string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	attr := objAttr{pathname: ptr(unsafe.Pointer(p)), bpfFD: uint32(fd)}
	if _, err := sys(unix.BPF_OBJ_PIN, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return fmt.Errorf("pin %s: %w", path, err)
	}
	return nil
}

// Get opens the object pinned at path.
func Get(path string) (int, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	attr := objAttr{pathname: ptr(unsafe.Pointer(p))}
	fd, err := sys(unix.BPF_OBJ_GET, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return -1, fmt.Errorf("open pinned %s: %w", path, err)
	}
	return fd, nil
}

// Attach attaches the program at prog to the cgroup open at cgroup with
// BPF_F_ALLOW_MULTI: beside the programs others attached there.
func Attach(cgroup, prog int, attachType uint32) error {
	attr := attachAttr{targetFD: uint32(cgroup), attachBPFFD: uint32(prog), attachType: attachType, attachFlags: unix.BPF_F_ALLOW_MULTI}
	_, err := sys(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// Detach detaches that program; ENOENT if it is not attached.
func Detach(cgroup, prog int, attachType uint32) error {
	attr := attachAttr{targetFD: uint32(cgroup), attachBPFFD: uint32(prog), attachType: attachType}
	_, err := sys(unix.BPF_PROG_DETACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// Query returns the ids of the programs attached directly to the cgroup
// open at cgroup for attachType.
func Query(cgroup int, attachType uint32) ([]uint32, error) {
	ids := make([]uint32, 64) // BPF_CGROUP_MAX_PROGS
	for {
		q := queryAttr{targetFD: uint32(cgroup), attachType: attachType, progIDs: ptr(unsafe.Pointer(&ids[0])), progCnt: uint32(len(ids))}
		_, err := sys(unix.BPF_PROG_QUERY, unsafe.Pointer(&q), unsafe.Sizeof(q))
		if errors.Is(err, unix.ENOSPC) && int(q.progCnt) > len(ids) {
			ids = make([]uint32, q.progCnt)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("query programs: %w", err)
		}
		return ids[:q.progCnt], nil
	}
}

// ProgFDByID opens the program with that id.
func ProgFDByID(id uint32) (int, error) {
	attr := getFDByIDAttr{id: id}
	return sys(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}

// ProgInfo returns the id and name of the program open at fd.
func ProgInfo(fd int) (id uint32, name string, err error) {
	var info progInfo
	attr := infoAttr{bpfFD: uint32(fd), infoLen: uint32(unsafe.Sizeof(info)), info: ptr(unsafe.Pointer(&info))}
	if _, err := sys(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return 0, "", err
	}
	n := info.name[:]
	if i := bytes.IndexByte(n, 0); i >= 0 {
		n = n[:i]
	}
	return info.id, string(n), nil
}
