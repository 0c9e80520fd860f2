package cgroups

import (
	"fmt"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/bpf"
)

func rule(allow bool, typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	r := specs.LinuxDeviceCgroup{Allow: allow, Type: typ, Access: access}
	if major != -1 {
		r.Major = &major
	}
	if minor != -1 {
		r.Minor = &minor
	}
	return r
}

func TestV1DeviceLines(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []specs.LinuxDeviceCgroup
		want  []string
	}{
		{"deny all then allow", []specs.LinuxDeviceCgroup{
			rule(false, "a", -1, -1, "rwm"), rule(true, "c", 1, 3, "rwm"), rule(true, "b", 8, -1, "r"),
		}, []string{"devices.deny a", "devices.allow c 1:3 rwm", "devices.allow b 8:* r"}},
		{"empty type and access mean all", []specs.LinuxDeviceCgroup{{Allow: false}}, []string{"devices.deny a"}},
		{"narrow rule for all types is written per type", []specs.LinuxDeviceCgroup{
			rule(true, "a", 136, -1, "rw"),
		}, []string{"devices.allow b 136:* rw", "devices.allow c 136:* rw"}},
		{"access letters are put in kernel order", []specs.LinuxDeviceCgroup{
			rule(false, "c", 5, 1, "wr"),
		}, []string{"devices.deny c 5:1 rw"}},
		{"allow all", []specs.LinuxDeviceCgroup{rule(true, "", -1, -1, "")}, []string{"devices.allow a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := parseDeviceRules(tc.rules)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range v1DeviceWrites(rules) {
				got = append(got, w.file+" "+w.value)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("v1DeviceWrites(%v) =\n%s\nwant\n%s", tc.rules, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// runDeviceProgram interprets the handful of eBPF instructions that
// deviceProgram emits, for one request, the way the kernel runs them, and
// returns R0.
func runDeviceProgram(t *testing.T, prog []bpf.Insn, devType, access, major, minor uint32) uint64 {
	t.Helper()
	ctx := []uint32{access<<16 | devType, major, minor}
	var reg [11]uint64
	for pc, steps := 0, 0; ; steps++ {
		if steps > 1000 {
			t.Fatal("program loops")
		}
		if pc < 0 || pc >= len(prog) {
			t.Fatalf("pc %d is outside the program (%d instructions)", pc, len(prog))
		}
		ins := prog[pc]
		pc++
		if ins.Dst() > 10 || ins.Src() > 10 {
			t.Fatalf("instruction %d: bad register in %+v", pc-1, ins)
		}
		class, op := ins.Code&0x07, ins.Code&0xf0
		src := uint64(int64(ins.Imm)) // an immediate is sign-extended
		if ins.Code&unix.BPF_X != 0 {
			src = reg[ins.Src()]
		}
		switch class {
		case unix.BPF_LDX:
			if ins.Code != unix.BPF_LDX|unix.BPF_MEM|unix.BPF_W || ins.Src() != unix.BPF_REG_1 ||
				ins.Off < 0 || ins.Off%4 != 0 || int(ins.Off/4) >= len(ctx) {
				t.Fatalf("instruction %d: unexpected load %+v", pc-1, ins)
			}
			reg[ins.Dst()] = uint64(ctx[ins.Off/4])
		case unix.BPF_ALU:
			a, b := uint32(reg[ins.Dst()]), uint32(src)
			switch op {
			case unix.BPF_MOV:
				a = b
			case unix.BPF_AND:
				a &= b
			case unix.BPF_RSH:
				a >>= b
			default:
				t.Fatalf("instruction %d: unexpected ALU op %+v", pc-1, ins)
			}
			reg[ins.Dst()] = uint64(a) // a 32-bit operation zeroes the upper half
		case unix.BPF_JMP:
			if ins.Code == unix.BPF_JMP|unix.BPF_EXIT {
				return reg[unix.BPF_REG_0]
			}
			var take bool
			switch op {
			case unix.BPF_JEQ:
				take = reg[ins.Dst()] == src
			case unix.BPF_JNE:
				take = reg[ins.Dst()] != src
			default:
				t.Fatalf("instruction %d: unexpected jump %+v", pc-1, ins)
			}
			if take {
				pc += int(ins.Off)
			}
		default:
			t.Fatalf("instruction %d: unexpected instruction %+v", pc-1, ins)
		}
	}
}

// disassemble lists the program the way the kernel's verifier log and
// bpftool print instructions, a blank line after each exit.
func disassemble(t *testing.T, prog []bpf.Insn) string {
	t.Helper()
	alu := map[uint8]string{unix.BPF_MOV: "=", unix.BPF_AND: "&=", unix.BPF_RSH: ">>="}
	jmp := map[uint8]string{unix.BPF_JEQ: "==", unix.BPF_JNE: "!="}
	var b strings.Builder
	for pc, ins := range prog {
		fmt.Fprintf(&b, "%2d: (%02x) ", pc, ins.Code)
		op := ins.Code & 0xf0
		switch {
		case ins.Code == unix.BPF_LDX|unix.BPF_MEM|unix.BPF_W:
			fmt.Fprintf(&b, "r%d = *(u32 *)(r%d %+d)\n", ins.Dst(), ins.Src(), ins.Off)
		case ins.Code == unix.BPF_ALU|op|unix.BPF_K && alu[op] != "":
			fmt.Fprintf(&b, "w%d %s %d\n", ins.Dst(), alu[op], ins.Imm)
		case ins.Code == unix.BPF_ALU|op|unix.BPF_X && alu[op] != "":
			fmt.Fprintf(&b, "w%d %s w%d\n", ins.Dst(), alu[op], ins.Src())
		case ins.Code == unix.BPF_JMP|op|unix.BPF_K && jmp[op] != "":
			fmt.Fprintf(&b, "if r%d %s %#x goto pc%+d\n", ins.Dst(), jmp[op], ins.Imm, ins.Off)
		case ins.Code == unix.BPF_JMP|unix.BPF_EXIT:
			b.WriteString("exit\n")
			if pc < len(prog)-1 {
				b.WriteString("\n")
			}
		default:
			t.Fatalf("disassemble: unexpected instruction %d: %+v", pc, ins)
		}
	}
	return b.String()
}

const (
	devChar  = unix.BPF_DEVCG_DEV_CHAR
	devBlock = unix.BPF_DEVCG_DEV_BLOCK
	accR     = unix.BPF_DEVCG_ACC_READ
	accW     = unix.BPF_DEVCG_ACC_WRITE
	accM     = unix.BPF_DEVCG_ACC_MKNOD
)

// The eBPF program gives the verdicts the v1 kernel would give for the same
// rules.
func TestDeviceProgramVerdicts(t *testing.T) {
	containerRules := []specs.LinuxDeviceCgroup{
		rule(false, "a", -1, -1, "rwm"),
		rule(true, "c", 1, 3, "rwm"),   // /dev/null
		rule(true, "c", 1, 5, "rw"),    // /dev/zero, no mknod
		rule(true, "c", 136, -1, "rw"), // ptys
		rule(true, "a", -1, -1, "m"),   // mknod anything
		rule(false, "c", 1, 3, "w"),    // but not writing /dev/null
	}
	type req struct {
		name                      string
		typ, access, major, minor uint32
		allow                     bool
	}
	for _, tc := range []struct {
		name  string
		rules []specs.LinuxDeviceCgroup
		reqs  []req
	}{
		{"container allow list", containerRules, []req{
			{"read /dev/null", devChar, accR, 1, 3, true},
			{"write /dev/null (denied by the last rule)", devChar, accW, 1, 3, false},
			{"read+write /dev/null", devChar, accR | accW, 1, 3, false},
			{"read+write /dev/zero", devChar, accR | accW, 1, 5, true},
			{"mknod /dev/zero (the m-for-all rule)", devChar, accM, 1, 5, true},
			{"read /dev/sda", devBlock, accR, 8, 0, false},
			{"mknod /dev/sda", devBlock, accM, 8, 0, true},
			{"read a pty", devChar, accR, 136, 7, true},
			{"read a block device with a pty's numbers", devBlock, accR, 136, 7, false},
			{"read /dev/random", devChar, accR, 1, 8, false},
		}},
		{"no rules: everything the parent allows", nil, []req{
			{"read /dev/sda", devBlock, accR, 8, 0, true},
		}},
		{"deny list", []specs.LinuxDeviceCgroup{rule(false, "b", 8, -1, "rw")}, []req{
			{"write sda", devBlock, accW, 8, 0, false},
			{"read sda (a deny matches any access it names)", devBlock, accR, 8, 0, false},
			{"mknod sda", devBlock, accM, 8, 0, true},
			{"write /dev/null", devChar, accW, 1, 3, true},
		}},
		{"a later allow-all cancels earlier denies", []specs.LinuxDeviceCgroup{
			rule(false, "a", -1, -1, "rwm"), rule(true, "a", -1, -1, "rwm"),
		}, []req{
			{"read sda", devBlock, accR, 8, 0, true},
		}},
		{"a later deny-all cancels earlier allows", []specs.LinuxDeviceCgroup{
			rule(true, "c", 1, 3, "rwm"), rule(false, "a", -1, -1, "rwm"),
		}, []req{
			{"read /dev/null", devChar, accR, 1, 3, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := parseDeviceRules(tc.rules)
			if err != nil {
				t.Fatal(err)
			}
			prog := deviceProgram(rules)
			for _, r := range tc.reqs {
				got := runDeviceProgram(t, prog, r.typ, r.access, r.major, r.minor) == 1
				if got != r.allow {
					t.Errorf("%s: allowed = %v, want %v\nprogram:\n%s", r.name, got, r.allow, disassemble(t, prog))
				}
			}
		})
	}
}

// The instructions themselves, for the usual container rules.
func TestDeviceProgramGolden(t *testing.T) {
	rules, err := parseDeviceRules(fullResources().Devices)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "devices-program.golden", disassemble(t, deviceProgram(rules)))
}
