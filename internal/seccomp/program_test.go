package seccomp

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenSpec uses every feature once: several ABIs, 64- and 32-bit
// argument tests, an equality run, the ENOSYS stub.
func goldenSpec() *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86, specs.ArchX32},
		ListenerPath:  "/run/agent.sock",
		Flags:         []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "close", "exit_group"}, Action: specs.ActAllow},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: 0}}},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: 8}}},
			{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpMaskedEqual, Value: unix.CLONE_NEWUSER, ValueTwo: 0}}},
			{Names: []string{"mmap"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 2, Op: specs.OpLessEqual, Value: 7}, {Index: 3, Op: specs.OpNotEqual, Value: 1}}},
			{Names: []string{"mkdirat"}, Action: specs.ActNotify},
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(unix.ENOSYS))},
		},
	}
}

// TestGolden pins the compiled form of goldenSpec; run with -update after a
// deliberate change of the compiler (and bump compilerVersion).
func TestGolden(t *testing.T) {
	p := mustCompile(t, goldenSpec(), specs.ArchX86_64)
	got := p.String()
	path := filepath.Join("testdata", "golden_x86_64.txt")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update): %v", err)
	}
	if got != string(want) {
		t.Errorf("compiled program differs from %s (go test -update rewrites it):\n%s", path, lineDiff(string(want), got))
	}
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("- " + wl + "\n+ " + gl + "\n")
		}
	}
	return b.String()
}

func TestBinaryRoundTrip(t *testing.T) {
	for name, s := range map[string]*specs.LinuxSeccomp{
		"golden": goldenSpec(),
		"docker": dockerProfile(t, "amd64", dockerCaps),
		"tiny":   {DefaultAction: specs.ActAllow},
	} {
		t.Run(name, func(t *testing.T) {
			p := mustCompile(t, s, specs.ArchX86_64)
			data, err := p.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			var q Program
			if err := q.UnmarshalBinary(data); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if !reflect.DeepEqual(*p, q) {
				t.Errorf("round trip changed the program:\n got %+v\nwant %+v", q, *p)
			}
		})
	}
}

func TestUnmarshalRejects(t *testing.T) {
	p := mustCompile(t, goldenSpec(), specs.ArchX86_64)
	good, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	// resum re-seals a modified body, to reach the checks after the checksum.
	resum := func(body []byte) []byte {
		sum := sha256.Sum256(body)
		return append(bytes.Clone(body), sum[:]...)
	}
	body := good[:len(good)-32]
	jumpPastEnd := bytes.Clone(body)
	// the first instruction (ld [4]) becomes `ja 4095`
	off := len(body) - 8*len(p.Filter)
	copy(jumpPastEnd[off:], []byte{0x05, 0x00, 0, 0, 0xff, 0x0f, 0, 0})
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "bad magic"},
		{"other magic", append([]byte("XSECCOMP"), good[8:]...), "bad magic"},
		{"flipped instruction bit", flip(len(good) - 40), "checksum mismatch"},
		{"flipped checksum bit", flip(len(good) - 1), "checksum mismatch"},
		{"truncated", good[:len(good)-9], "checksum mismatch"},
		{"other version", resum(append(append([]byte(binaryMagic), 9, 0, 0, 0), body[12:]...)), "version 9, want 1"},
		{"truncated body", resum(body[:len(body)-4]), "instruction count does not match the length"},
		{"jump past the end", resum(jumpPastEnd), "instruction 0: jump past the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q Program
			err := q.UnmarshalBinary(tt.data)
			if err == nil {
				t.Fatalf("UnmarshalBinary accepted %d bytes", len(tt.data))
			}
			if !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("UnmarshalBinary error = %v, want errCorrupt mentioning %q", err, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	ret := unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: retAllow}
	tests := []struct {
		name string
		ins  []unix.SockFilter
		want string
	}{
		{"empty", nil, "seccomp program has 0 instructions, want 1 to 4096"},
		{"too long", make([]unix.SockFilter, MaxInstructions+1), "seccomp program has 4097 instructions, want 1 to 4096"},
		{"no return at the end", []unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS}}, "seccomp program does not end with a return"},
		{"load outside seccomp_data", []unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 64}, ret}, "instruction 0: load at offset 64 outside seccomp_data"},
		{"unaligned load", []unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 2}, ret}, "instruction 0: load at offset 2 outside seccomp_data"},
		{"conditional past the end", []unix.SockFilter{{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jf: 1}, ret}, "instruction 0: jump past the end"},
		{"other opcode", []unix.SockFilter{{Code: unix.BPF_LDX | unix.BPF_W | unix.BPF_MEM}, ret}, "instruction 0: opcode 0x61 not used by seccomp filters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Program{Filter: tt.ins}).check()
			if err == nil || err.Error() != tt.want {
				t.Errorf("check() = %v, want %q", err, tt.want)
			}
		})
	}
}
