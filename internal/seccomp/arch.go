package seccomp

//go:generate go run ./internal/gensyscalls -o zsyscalls.go

import (
	"runtime"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// x32SyscallBit marks an x32 system call on AUDIT_ARCH_X86_64
// (__X32_SYSCALL_BIT); x32 numbers in the tables include it.
const x32SyscallBit = 0x40000000

// arch describes one system call ABI the filter can match.
type arch struct {
	name      specs.Arch
	audit     uint32 // seccomp_data.arch value (AUDIT_ARCH_*)
	bits      int    // 32: only the low half of each argument is compared
	bigEndian bool
	table     *syscallTable
}

// archInfo is the fixed part of arch for every architecture berth knows.
// Architectures of the runtime-spec without an entry (MIPS n32, s390,
// PA-RISC, m68k, SuperH) have no system call table here and are refused.
var archInfo = map[specs.Arch]struct {
	audit     uint32
	bits      int
	bigEndian bool
}{
	specs.ArchX86:         {unix.AUDIT_ARCH_I386, 32, false},
	specs.ArchX86_64:      {unix.AUDIT_ARCH_X86_64, 64, false},
	specs.ArchX32:         {unix.AUDIT_ARCH_X86_64, 32, false},
	specs.ArchARM:         {unix.AUDIT_ARCH_ARM, 32, false},
	specs.ArchAARCH64:     {unix.AUDIT_ARCH_AARCH64, 64, false},
	specs.ArchMIPS:        {unix.AUDIT_ARCH_MIPS, 32, true},
	specs.ArchMIPSEL:      {unix.AUDIT_ARCH_MIPSEL, 32, false},
	specs.ArchMIPS64:      {unix.AUDIT_ARCH_MIPS64, 64, true},
	specs.ArchMIPSEL64:    {unix.AUDIT_ARCH_MIPSEL64, 64, false},
	specs.ArchPPC:         {unix.AUDIT_ARCH_PPC, 32, true},
	specs.ArchPPC64:       {unix.AUDIT_ARCH_PPC64, 64, true},
	specs.ArchPPC64LE:     {unix.AUDIT_ARCH_PPC64LE, 64, false},
	specs.ArchS390X:       {unix.AUDIT_ARCH_S390X, 64, true},
	specs.ArchRISCV64:     {unix.AUDIT_ARCH_RISCV64, 64, false},
	specs.ArchLOONGARCH64: {unix.AUDIT_ARCH_LOONGARCH64, 64, false},
}

// lookupArch returns the description of a, or false when berth cannot
// filter for it.
func lookupArch(a specs.Arch) (arch, bool) {
	info, ok := archInfo[a]
	table := syscallTables[a]
	if !ok || table == nil {
		return arch{}, false
	}
	return arch{name: a, audit: info.audit, bits: info.bits, bigEndian: info.bigEndian, table: table}, true
}

// goarchToSpec maps the Go architectures berth can run on to their ABI.
var goarchToSpec = map[string]specs.Arch{
	"386":      specs.ArchX86,
	"amd64":    specs.ArchX86_64,
	"arm":      specs.ArchARM,
	"arm64":    specs.ArchAARCH64,
	"mips":     specs.ArchMIPS,
	"mipsle":   specs.ArchMIPSEL,
	"mips64":   specs.ArchMIPS64,
	"mips64le": specs.ArchMIPSEL64,
	"ppc64":    specs.ArchPPC64,
	"ppc64le":  specs.ArchPPC64LE,
	"s390x":    specs.ArchS390X,
	"riscv64":  specs.ArchRISCV64,
	"loong64":  specs.ArchLOONGARCH64,
}

// NativeArch returns the OCI name of the architecture this binary runs on,
// which every compiled filter matches in addition to the spec's list.
func NativeArch() specs.Arch {
	return goarchToSpec[runtime.GOARCH]
}

// number returns the number of syscall name on a, or false when a has no
// such system call.
func (a arch) number(name string) (uint32, bool) {
	i, ok := syscallIndex(name)
	if !ok || a.table[i] < 0 {
		return 0, false
	}
	return uint32(a.table[i]), true
}

// syscallIndex finds name in syscallNames.
func syscallIndex(name string) (int, bool) {
	i := sort.SearchStrings(syscallNames[:], name)
	return i, i < len(syscallNames) && syscallNames[i] == name
}

// knownAnywhere reports whether any architecture berth has a table for has
// a system call called name.
func knownAnywhere(name string) bool {
	_, ok := syscallIndex(name)
	return ok
}

// SyscallNumber returns the number of the system call name on architecture
// a, or false when a has no such call or berth has no table for a.
func SyscallNumber(a specs.Arch, name string) (uint32, bool) {
	ar, ok := lookupArch(a)
	if !ok {
		return 0, false
	}
	return ar.number(name)
}
