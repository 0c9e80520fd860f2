package cgroups

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
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
// deviceProgram emits, for one request, and returns R0.
func runDeviceProgram(t *testing.T, insns asm.Instructions, devType, access, major, minor uint32) uint64 {
	t.Helper()
	labels, err := insns.SymbolOffsets()
	if err != nil {
		t.Fatal(err)
	}
	ctx := []uint32{access<<16 | devType, major, minor}
	var reg [11]uint64
	for pc, steps := 0, 0; pc < len(insns); steps++ {
		if steps > 1000 {
			t.Fatal("program loops")
		}
		ins := insns[pc]
		op := ins.OpCode
		pc++
		switch {
		case op.Class() == asm.LdXClass:
			if ins.Src != asm.R1 || op.Size() != asm.Word || ins.Offset%4 != 0 {
				t.Fatalf("unexpected load %v", ins)
			}
			reg[ins.Dst] = uint64(ctx[ins.Offset/4])
		case op.Class() == asm.ALU64Class || op.Class() == asm.ALUClass:
			src := uint64(ins.Constant)
			if op.Source() == asm.RegSource {
				src = reg[ins.Src]
			}
			var v uint64
			switch op.ALUOp() {
			case asm.Mov:
				v = src
			case asm.And:
				v = reg[ins.Dst] & src
			case asm.RSh:
				v = reg[ins.Dst] >> src
			default:
				t.Fatalf("unexpected ALU op %v", ins)
			}
			if op.Class() == asm.ALUClass {
				v = uint64(uint32(v))
			}
			reg[ins.Dst] = v
		case op.Class() == asm.JumpClass:
			if op.JumpOp() == asm.Exit {
				return reg[asm.R0]
			}
			src := uint64(ins.Constant)
			if op.Source() == asm.RegSource {
				src = reg[ins.Src]
			}
			var take bool
			switch op.JumpOp() {
			case asm.JEq:
				take = reg[ins.Dst] == src
			case asm.JNE:
				take = reg[ins.Dst] != src
			default:
				t.Fatalf("unexpected jump %v", ins)
			}
			if take {
				target, ok := labels[ins.Reference()]
				if !ok {
					t.Fatalf("jump to unknown label %q", ins.Reference())
				}
				pc = target
			}
		default:
			t.Fatalf("unexpected instruction %v", ins)
		}
	}
	t.Fatal("program ran off its end")
	return 0
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
			insns := deviceProgram(rules)
			for _, r := range tc.reqs {
				got := runDeviceProgram(t, insns, r.typ, r.access, r.major, r.minor) == 1
				if got != r.allow {
					t.Errorf("%s: allowed = %v, want %v\nprogram:\n%v", r.name, got, r.allow, insns)
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
	checkGolden(t, "devices-program.golden", fmt.Sprintf("%v", deviceProgram(rules)))
}
