package nsenter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
)

// records splits an encoded bootstrap back into (type, payload) pairs.
func records(t *testing.T, b []byte) (types []uint32, payloads []string) {
	t.Helper()
	r := bytes.NewReader(b)
	for {
		typ, p, err := ReadRecord(r)
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("read record: %v", err)
		}
		types, payloads = append(types, typ), append(payloads, string(p))
	}
}

// The C stage reads the user namespace first, the joins in order, then the
// flags, offsets and fork, and stops at REC_END.
func TestEncodeOrder(t *testing.T) {
	b := (&Bootstrap{
		UserNS: "/proc/1/ns/user", Join: []string{"/proc/1/ns/net", "/proc/1/ns/ipc"},
		Unshare: 0x20000, TimeOffsets: "monotonic 1 0\n", Fork: true,
	}).Encode()
	types, payloads := records(t, b)
	want := []uint32{recJoinUser, recJoin, recJoin, recCloneFlags, recTimeOffsets, recFork, recEnd}
	if len(types) != len(want) {
		t.Fatalf("records %v, want types %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Errorf("record %d has type %d, want %d", i, types[i], want[i])
		}
	}
	if payloads[0] != "/proc/1/ns/user" || payloads[1] != "/proc/1/ns/net" || payloads[2] != "/proc/1/ns/ipc" {
		t.Errorf("paths %q", payloads[:3])
	}
	if got := binary.NativeEndian.Uint32([]byte(payloads[3])); got != 0x20000 {
		t.Errorf("clone flags %#x", got)
	}
	if types, _ := records(t, (&Bootstrap{}).Encode()); len(types) != 1 || types[0] != recEnd {
		t.Errorf("an empty bootstrap encodes as %v, want only REC_END", types)
	}
}

// peer plays the C stage on the other end of a socket pair.
func peer(t *testing.T, script func(c net.Conn)) net.Conn {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		defer b.Close()
		// Read the bootstrap up to REC_END first, as the C stage does.
		for {
			typ, _, err := ReadRecord(b)
			if err != nil || typ == recEnd {
				break
			}
		}
		script(b)
	}()
	t.Cleanup(func() { a.Close() })
	return a
}

func TestDrive(t *testing.T) {
	pid := func(p int32) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(p)) }

	t.Run("pid", func(t *testing.T) {
		conn := peer(t, func(c net.Conn) { WriteRecord(c, msgPid, pid(4242)) })
		got, err := Drive(conn, 7, &Bootstrap{}, nil)
		if err != nil || got != 4242 {
			t.Errorf("Drive = %d, %v; want 4242", got, err)
		}
	})
	t.Run("user map asked, written, acknowledged", func(t *testing.T) {
		acked := make(chan bool, 1)
		conn := peer(t, func(c net.Conn) {
			WriteRecord(c, msgUsermap, nil)
			typ, _, err := ReadRecord(c)
			acked <- err == nil && typ == msgUsermapAck
			WriteRecord(c, msgPid, pid(9))
		})
		mapped := 0
		got, err := Drive(conn, 7, &Bootstrap{}, func(p int) error { mapped = p; return nil })
		if err != nil || got != 9 || mapped != 7 || !<-acked {
			t.Errorf("Drive = %d, %v; maps written for pid %d; want 9, the stage0 pid 7 mapped and acknowledged", got, err, mapped)
		}
	})
	t.Run("user map not expected", func(t *testing.T) {
		conn := peer(t, func(c net.Conn) { WriteRecord(c, msgUsermap, nil) })
		if _, err := Drive(conn, 7, &Bootstrap{}, nil); !errors.Is(err, ErrStage0) {
			t.Errorf("Drive = %v, want ErrStage0", err)
		}
	})
	t.Run("error text", func(t *testing.T) {
		conn := peer(t, func(c net.Conn) {
			WriteRecord(c, msgError, []byte("nsenter: join namespace /x: No such file or directory"))
		})
		_, err := Drive(conn, 7, &Bootstrap{}, nil)
		if !errors.Is(err, ErrStage0) || !strings.HasSuffix(err.Error(), ": join namespace /x: No such file or directory") {
			t.Errorf("Drive = %v, want the stage's message without its prefix", err)
		}
	})
	t.Run("exit without a pid", func(t *testing.T) {
		conn := peer(t, func(c net.Conn) {})
		if _, err := Drive(conn, 7, &Bootstrap{}, nil); !errors.Is(err, ErrStage0) || !strings.Contains(err.Error(), "exited before") {
			t.Errorf("Drive = %v, want an early-exit error", err)
		}
	})
	t.Run("bad pid record", func(t *testing.T) {
		conn := peer(t, func(c net.Conn) { WriteRecord(c, msgPid, []byte{1}) })
		if _, err := Drive(conn, 7, &Bootstrap{}, nil); !errors.Is(err, ErrStage0) {
			t.Errorf("Drive = %v, want ErrStage0", err)
		}
	})
}

// A record longer than the limit is refused before anything is allocated.
func TestReadRecordLimit(t *testing.T) {
	hdr := binary.NativeEndian.AppendUint32(binary.NativeEndian.AppendUint32(nil, 1), maxRecord+1)
	if _, _, err := ReadRecord(bytes.NewReader(hdr)); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("ReadRecord of an oversized record = %v", err)
	}
}

// A process for the C stage to finish comes after the namespace records, in
// the layout nsenter.c reads: NUL-terminated strings, native-endian
// integers, optional records only when set.
func TestEncodeProcess(t *testing.T) {
	umask := uint32(0o027)
	p := &Process{
		Args: []string{"sh", "-c", "id"}, Env: []string{"PATH=/bin", "A="}, Cwd: "/tmp",
		UID: 1000, GID: 1001, Umask: &umask, AdditionalGids: []uint32{5, 6},
		Rlimits:    []Rlimit{{Resource: 7, Index: 2, Soft: 256, Hard: 1 << 40}},
		Caps:       &CapSets{LastCap: 40, Bounding: 1, Effective: 2, Permitted: 3, Inheritable: 4, Ambient: 5},
		NoNewPrivs: true, Seccomp: []byte("12345678"), SeccompFlags: 9, PreserveFds: 2,
	}
	types, payloads := records(t, (&Bootstrap{Join: []string{"/proc/1/ns/mnt"}, Fork: true, Exec: p}).Encode())
	want := []uint32{recJoin, recFork, recExecArgv, recExecEnv, recExecCwd, recExecUser, recExecRlimit,
		recExecCaps, recExecNNP, recExecSeccomp, recExecPreserve, recEnd}
	if !slices.Equal(types, want) {
		t.Fatalf("record types %v, want %v", types, want)
	}
	u := func(b string, i int) uint32 { return binary.NativeEndian.Uint32([]byte(b)[4*i:]) }
	u64 := func(b string, off int) uint64 { return binary.NativeEndian.Uint64([]byte(b)[off:]) }
	if payloads[2] != "sh\x00-c\x00id\x00" || payloads[3] != "PATH=/bin\x00A=\x00" || payloads[4] != "/tmp" {
		t.Errorf("argv %q env %q cwd %q", payloads[2], payloads[3], payloads[4])
	}
	if user := payloads[5]; len(user) != 24 || u(user, 0) != 1000 || u(user, 1) != 1001 || u(user, 2) != 0o027 ||
		u(user, 3) != 2 || u(user, 4) != 5 || u(user, 5) != 6 {
		t.Errorf("user record %x", user)
	}
	if rl := payloads[6]; len(rl) != 24 || u(rl, 0) != 7 || u(rl, 1) != 2 || u64(rl, 8) != 256 || u64(rl, 16) != 1<<40 {
		t.Errorf("rlimit record %x", rl)
	}
	if c := payloads[7]; len(c) != 48 || u(c, 0) != 40 || u64(c, 8) != 1 || u64(c, 16) != 2 || u64(c, 24) != 3 ||
		u64(c, 32) != 4 || u64(c, 40) != 5 {
		t.Errorf("capabilities record %x", c)
	}
	if s := payloads[9]; u(s, 0) != 9 || s[8:] != "12345678" {
		t.Errorf("seccomp record %x", s)
	}
	if u(payloads[10], 0) != 2 {
		t.Errorf("preserve record %x", payloads[10])
	}

	// The optional records are left out; a missing umask is "keep".
	types, payloads = records(t, (&Bootstrap{Exec: &Process{Args: []string{"true"}, Cwd: "/"}}).Encode())
	if want := []uint32{recExecArgv, recExecEnv, recExecCwd, recExecUser, recEnd}; !slices.Equal(types, want) {
		t.Errorf("minimal process: record types %v, want %v", types, want)
	}
	if got := u(payloads[3], 2); got != umaskKeep {
		t.Errorf("umask without one = %#x, want %#x (keep)", got, uint32(umaskKeep))
	}
}
