package cgroups

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/bpf"
)

// Device rules mean the same on v1 and v2: start from the parent's rules
// (allow everything, at a host's root), then apply the OCI list in order,
// a later rule overriding an earlier one for the accesses it names. A
// leading deny-all rule ("a *:* rwm", allow false) turns this into an allow
// list, which is what every container config starts with.
//
// On v1 the kernel does this with devices.deny/devices.allow. On v2 the
// rules become an eBPF program that checks them last to first and returns
// the first match's verdict, or allow when none matches. An allow rule
// matches a request when it grants every requested access; a deny rule
// matches when it names any of them.

// deviceRule is one validated OCI device rule.
type deviceRule struct {
	allow        bool
	typ          byte  // 'a' (all), 'b' or 'c'
	major, minor int64 // -1 for any
	access       string
}

func (d deviceRule) wildcard() bool {
	return d.typ == 'a' && d.major == -1 && d.minor == -1 && d.access == "rwm"
}

// parseDeviceRules validates the OCI rules, naming the entry at fault.
func parseDeviceRules(rules []specs.LinuxDeviceCgroup) ([]deviceRule, error) {
	out := make([]deviceRule, 0, len(rules))
	for i, r := range rules {
		field := fmt.Sprintf("linux.resources.devices[%d]", i)
		d := deviceRule{allow: r.Allow, major: -1, minor: -1}
		switch r.Type {
		case "", "a":
			d.typ = 'a'
		case "b", "c":
			d.typ = r.Type[0]
		default:
			return nil, fmt.Errorf("%s.type %q: want a, b or c", field, r.Type)
		}
		if r.Major != nil {
			if *r.Major < -1 || *r.Major > math.MaxInt32 {
				return nil, fmt.Errorf("%s.major %d: out of range", field, *r.Major)
			}
			d.major = *r.Major
		}
		if r.Minor != nil {
			if *r.Minor < -1 || *r.Minor > math.MaxInt32 {
				return nil, fmt.Errorf("%s.minor %d: out of range", field, *r.Minor)
			}
			d.minor = *r.Minor
		}
		acc := r.Access
		if acc == "" {
			acc = "rwm"
		}
		var b strings.Builder
		for _, c := range "rwm" {
			if strings.ContainsRune(acc, c) {
				b.WriteRune(c)
			}
		}
		if strings.Trim(acc, "rwm") != "" || b.Len() != len(acc) {
			return nil, fmt.Errorf("%s.access %q: want letters from \"rwm\", each once", field, r.Access)
		}
		d.access = b.String()
		out = append(out, d)
	}
	return out, nil
}

// v1DeviceWrites turns the rules into devices.deny/devices.allow writes.
func v1DeviceWrites(rules []deviceRule) []write {
	var ws []write
	for i, d := range rules {
		field := fmt.Sprintf("linux.resources.devices[%d]", i)
		file := "devices.deny"
		if d.allow {
			file = "devices.allow"
		}
		if d.wildcard() {
			// The kernel reads "a" as all types, all numbers, all accesses.
			ws = append(ws, write{ctrl: "devices", file: file, value: "a", field: field})
			continue
		}
		types := []byte{d.typ}
		if d.typ == 'a' {
			// The kernel would read any "a ..." line as everything, so a
			// narrower rule for all types is written for each type.
			types = []byte{'b', 'c'}
		}
		for _, t := range types {
			line := fmt.Sprintf("%c %s:%s %s", t, devNum(d.major), devNum(d.minor), d.access)
			ws = append(ws, write{ctrl: "devices", file: file, value: line, field: field})
		}
	}
	return ws
}

func devNum(n int64) string {
	if n < 0 {
		return "*"
	}
	return strconv.FormatInt(n, 10)
}

// deviceProgramName names our program so an update can find and replace it
// among other programs attached to the cgroup.
const deviceProgramName = "berth_devices"

// deviceProgram builds the BPF_PROG_TYPE_CGROUP_DEVICE program for the
// rules. The context is struct bpf_cgroup_dev_ctx { u32 access_type (access
// << 16 | type); u32 major; u32 minor; }; the program returns 1 to allow.
func deviceProgram(rules []deviceRule) []bpf.Insn {
	const r0, r1, r2, r3, r4, r5 = unix.BPF_REG_0, unix.BPF_REG_1, unix.BPF_REG_2, unix.BPF_REG_3, unix.BPF_REG_4, unix.BPF_REG_5
	prog := []bpf.Insn{
		bpf.LdxMemW(r2, r1, 0), // R2 = device type
		bpf.Alu32Imm(unix.BPF_AND, r2, 0xFFFF),
		bpf.LdxMemW(r3, r1, 0), // R3 = requested access
		bpf.Alu32Imm(unix.BPF_RSH, r3, 16),
		bpf.LdxMemW(r4, r1, 4), // R4 = major
		bpf.LdxMemW(r5, r1, 8), // R5 = minor
	}
	verdict := func(allow bool) []bpf.Insn {
		v := int32(0)
		if allow {
			v = 1
		}
		return []bpf.Insn{bpf.Alu32Imm(unix.BPF_MOV, r0, v), bpf.ExitInsn()}
	}
	// Last rule first: the first that matches decides. Each rule is a block
	// of tests ending in its verdict; a failed test jumps to the next block,
	// a distance known once the block is complete.
	const toNextRule = -1
	for i := len(rules) - 1; i >= 0; i-- {
		d := rules[i]
		if d.wildcard() {
			// Matches everything: earlier rules can never be reached.
			return append(prog, verdict(d.allow)...)
		}
		var b []bpf.Insn
		if d.typ != 'a' {
			t := int32(unix.BPF_DEVCG_DEV_CHAR)
			if d.typ == 'b' {
				t = unix.BPF_DEVCG_DEV_BLOCK
			}
			b = append(b, bpf.JmpImm(unix.BPF_JNE, r2, t, toNextRule))
		}
		if acc := bpfAccess(d.access); acc != bpfAccess("rwm") {
			b = append(b, bpf.Mov32Reg(r1, r3))
			if d.allow {
				// Allow only if no requested access is outside the rule.
				b = append(b, bpf.Alu32Imm(unix.BPF_AND, r1, ^acc&0xFFFF), bpf.JmpImm(unix.BPF_JNE, r1, 0, toNextRule))
			} else {
				// Deny if any requested access is in the rule.
				b = append(b, bpf.Alu32Imm(unix.BPF_AND, r1, acc), bpf.JmpImm(unix.BPF_JEQ, r1, 0, toNextRule))
			}
		}
		if d.major >= 0 {
			b = append(b, bpf.JmpImm(unix.BPF_JNE, r4, int32(d.major), toNextRule))
		}
		if d.minor >= 0 {
			b = append(b, bpf.JmpImm(unix.BPF_JNE, r5, int32(d.minor), toNextRule))
		}
		b = append(b, verdict(d.allow)...)
		for j := range b {
			if b[j].Off == toNextRule {
				b[j].Off = int16(len(b) - 1 - j) // skip the rest of the block
			}
		}
		prog = append(prog, b...)
	}
	return append(prog, verdict(true)...)
}

// bpfAccess converts "rwm" letters to BPF_DEVCG_ACC_* bits.
func bpfAccess(access string) int32 {
	var acc int32
	for _, c := range access {
		switch c {
		case 'r':
			acc |= unix.BPF_DEVCG_ACC_READ
		case 'w':
			acc |= unix.BPF_DEVCG_ACC_WRITE
		case 'm':
			acc |= unix.BPF_DEVCG_ACC_MKNOD
		}
	}
	return acc
}
