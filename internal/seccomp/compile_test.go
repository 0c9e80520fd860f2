package seccomp

import (
	"errors"
	"fmt"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func ptr[T any](v T) *T { return &v }

// nr is the number of a system call in the tables, failing the test when
// the name is unknown there.
func nr(t *testing.T, a specs.Arch, name string) uint32 {
	t.Helper()
	n, ok := SyscallNumber(a, name)
	if !ok {
		t.Fatalf("no system call %q on %s", name, a)
	}
	return n
}

const (
	allow   = retAllow
	eperm   = retErrno | uint32(unix.EPERM)
	enosys  = retErrno | uint32(unix.ENOSYS)
	killThr = retKillThread
)

func errno(e unix.Errno) uint32 { return retErrno | uint32(e) }

type expect struct {
	what string
	c    call
	want uint32
}

func checkAll(t *testing.T, v *vm, p *Program, cases []expect) {
	t.Helper()
	for _, e := range cases {
		if got := v.run(e.c); got != e.want {
			t.Errorf("%s: filter returns %s, want %s\n(call %+v)", e.what, actionName(got), actionName(e.want), e.c)
		}
	}
	if t.Failed() {
		t.Logf("program:\n%s", p)
	}
}

func mustCompile(t *testing.T, s *specs.LinuxSeccomp, native specs.Arch) *Program {
	t.Helper()
	p, err := compile(s, native)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p
}

func TestActions(t *testing.T) {
	read := nr(t, specs.ArchX86_64, "read")
	tests := []struct {
		action   specs.LinuxSeccompAction
		errnoRet *uint
		want     uint32
	}{
		{specs.ActKill, nil, retKillThread},
		{specs.ActKillThread, nil, retKillThread},
		{specs.ActKillProcess, nil, retKillProcess},
		{specs.ActTrap, nil, retTrap},
		{specs.ActErrno, nil, eperm},
		{specs.ActErrno, ptr(uint(unix.EACCES)), errno(unix.EACCES)},
		{specs.ActErrno, ptr(uint(0)), retErrno},
		{specs.ActTrace, nil, retTrace | uint32(unix.EPERM)},
		{specs.ActTrace, ptr(uint(7)), retTrace | 7},
		{specs.ActAllow, nil, retAllow},
		{specs.ActLog, nil, retLog},
		{specs.ActNotify, nil, retUserNotif},
	}
	for _, tt := range tests {
		name := string(tt.action)
		if tt.errnoRet != nil {
			name += fmt.Sprintf("(%d)", *tt.errnoRet)
		}
		t.Run("rule "+name, func(t *testing.T) {
			def := specs.ActAllow
			if tt.action == specs.ActAllow {
				def = specs.ActKill
			}
			p := mustCompile(t, &specs.LinuxSeccomp{
				DefaultAction: def,
				ListenerPath:  "/run/agent.sock",
				Syscalls:      []specs.LinuxSyscall{{Names: []string{"read"}, Action: tt.action, ErrnoRet: tt.errnoRet}},
			}, specs.ArchX86_64)
			if got := newVM(t, p, false).run(x86_64(read)); got != tt.want {
				t.Errorf("read returns %s, want %s", actionName(got), actionName(tt.want))
			}
			if wantNotify := tt.action == specs.ActNotify; p.Notify != wantNotify {
				t.Errorf("Program.Notify = %v, want %v", p.Notify, wantNotify)
			}
		})
		if tt.action == specs.ActNotify {
			continue // not allowed as the default
		}
		t.Run("default "+name, func(t *testing.T) {
			p := mustCompile(t, &specs.LinuxSeccomp{
				DefaultAction:   tt.action,
				DefaultErrnoRet: tt.errnoRet,
				Syscalls:        []specs.LinuxSyscall{{Names: []string{"write"}, Action: specs.ActTrap}},
			}, specs.ArchX86_64)
			if got := newVM(t, p, false).run(x86_64(read)); got != tt.want {
				t.Errorf("read (no rule) returns %s, want %s", actionName(got), actionName(tt.want))
			}
		})
	}
}

func TestAllowList(t *testing.T) {
	a := specs.ArchX86_64
	p := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "exit_group", "openat"}, Action: specs.ActAllow},
			{Names: []string{"mkdirat"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(unix.EROFS))},
			{Names: []string{"ptrace"}, Action: specs.ActKillProcess},
		},
	}, a)
	checkAll(t, newVM(t, p, false), p, []expect{
		{"read", x86_64(nr(t, a, "read")), allow},
		{"write", x86_64(nr(t, a, "write")), allow},
		{"exit_group", x86_64(nr(t, a, "exit_group")), allow},
		{"openat", x86_64(nr(t, a, "openat")), allow},
		{"mkdirat", x86_64(nr(t, a, "mkdirat")), errno(unix.EROFS)},
		{"ptrace", x86_64(nr(t, a, "ptrace")), retKillProcess},
		{"close (not listed)", x86_64(nr(t, a, "close")), eperm},
		{"getpid (not listed)", x86_64(nr(t, a, "getpid")), eperm},
		{"number 0xffffffff", x86_64(0xffffffff), killThr}, // x32 half, x32 not listed
	})
}

// TestENOSYSStub checks runc's rule: on the ABIs the spec lists, numbers
// above the largest one the profile names answer ENOSYS unless the default
// lets calls through.
func TestENOSYSStub(t *testing.T) {
	a := specs.ArchX86_64
	openat := nr(t, a, "openat") // 257
	tests := []struct {
		name    string
		def     specs.LinuxSeccompAction
		errno   *uint
		belowNr uint32 // not listed, below openat
		want    uint32 // for a number above openat
		below   uint32
	}{
		{"errno default", specs.ActErrno, nil, nr(t, a, "close"), enosys, eperm},
		{"kill default", specs.ActKill, nil, nr(t, a, "close"), enosys, killThr},
		{"trap default", specs.ActTrap, nil, nr(t, a, "close"), enosys, retTrap},
		{"allow default: no stub", specs.ActAllow, nil, nr(t, a, "close"), allow, allow},
		{"log default: no stub", specs.ActLog, nil, nr(t, a, "close"), retLog, retLog},
		{"trace default: no stub", specs.ActTrace, nil, nr(t, a, "close"), retTrace | 1, retTrace | 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := specs.ActAllow
			if tt.def == specs.ActAllow {
				rule = specs.ActErrno
			}
			p := mustCompile(t, &specs.LinuxSeccomp{
				DefaultAction:   tt.def,
				DefaultErrnoRet: tt.errno,
				Architectures:   []specs.Arch{a},
				Syscalls:        []specs.LinuxSyscall{{Names: []string{"read", "openat"}, Action: rule}},
			}, a)
			v := newVM(t, p, false)
			checkAll(t, v, p, []expect{
				{"close", x86_64(tt.belowNr), tt.below},
				{"openat+1", x86_64(openat + 1), tt.want},
				{"450", x86_64(450), tt.want},
				{"0x3fffffff", x86_64(0x3fffffff), tt.want},
			})
		})
	}
}

func TestENOSYSStubOnlyForListedABIs(t *testing.T) {
	// runc builds its stub from linux.seccomp.architectures alone: the
	// native ABI, when not listed, keeps the default action.
	a := specs.ArchX86_64
	p := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow}},
	}, a)
	checkAll(t, newVM(t, p, false), p, []expect{
		{"x86_64 above read", x86_64(nr(t, a, "read") + 500), eperm},
		{"x86 above read", i386(nr(t, specs.ArchX86, "read") + 500), enosys},
	})
}

func TestArguments64(t *testing.T) {
	a := specs.ArchX86_64
	const big = 0x1_0000_0005 // differs from 5 only in the high half
	rules := []struct {
		syscall string
		arg     specs.LinuxSeccompArg
	}{
		{"read", specs.LinuxSeccompArg{Index: 0, Op: specs.OpEqualTo, Value: big}},
		{"write", specs.LinuxSeccompArg{Index: 1, Op: specs.OpNotEqual, Value: big}},
		{"close", specs.LinuxSeccompArg{Index: 2, Op: specs.OpGreaterThan, Value: big}},
		{"fstat", specs.LinuxSeccompArg{Index: 3, Op: specs.OpGreaterEqual, Value: big}},
		{"lseek", specs.LinuxSeccompArg{Index: 4, Op: specs.OpLessThan, Value: big}},
		{"mmap", specs.LinuxSeccompArg{Index: 5, Op: specs.OpLessEqual, Value: big}},
		// clone(flags) with none of CLONE_NEWUSER|CLONE_NEWNS, as Docker writes it
		{"clone", specs.LinuxSeccompArg{Index: 0, Op: specs.OpMaskedEqual, Value: unix.CLONE_NEWUSER | unix.CLONE_NEWNS, ValueTwo: 0}},
		// a mask reaching into the high half: bit 33 set, bit 1 clear
		{"ioctl", specs.LinuxSeccompArg{Index: 1, Op: specs.OpMaskedEqual, Value: 1<<33 | 1<<1, ValueTwo: 1 << 33}},
	}
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno}
	for _, r := range rules {
		s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: []string{r.syscall}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{r.arg}})
	}
	p := mustCompile(t, s, a)
	at := func(name string, idx int, v uint64) call {
		var args [6]uint64
		args[idx] = v
		return x86_64(nr(t, a, name), args[:]...)
	}
	checkAll(t, newVM(t, p, false), p, []expect{
		{"EQ equal", at("read", 0, big), allow},
		{"EQ low half only", at("read", 0, 5), eperm},
		{"EQ high half only", at("read", 0, 0x1_0000_0000), eperm},
		{"NE equal", at("write", 1, big), eperm},
		{"NE low half differs", at("write", 1, 0x1_0000_0006), allow},
		{"NE high half differs", at("write", 1, 5), allow},
		{"GT equal", at("close", 2, big), eperm},
		{"GT low+1", at("close", 2, big+1), allow},
		{"GT high bigger, low smaller", at("close", 2, 0x2_0000_0000), allow},
		{"GT high smaller, low bigger", at("close", 2, 0xffff_ffff), eperm},
		{"GE equal", at("fstat", 3, big), allow},
		{"GE below", at("fstat", 3, big-1), eperm},
		{"GE high bigger", at("fstat", 3, 0x2_0000_0000), allow},
		{"LT equal", at("lseek", 4, big), eperm},
		{"LT below", at("lseek", 4, big-1), allow},
		{"LT high smaller, low bigger", at("lseek", 4, 0xffff_ffff), allow},
		{"LT high bigger", at("lseek", 4, 0x2_0000_0000), eperm},
		{"LE equal", at("mmap", 5, big), allow},
		{"LE above", at("mmap", 5, big+1), eperm},
		{"LE far below", at("mmap", 5, 0), allow},
		{"MASKED_EQ no flag", at("clone", 0, uint64(unix.SIGCHLD)|unix.CLONE_VM), allow},
		{"MASKED_EQ CLONE_NEWUSER", at("clone", 0, unix.CLONE_NEWUSER|uint64(unix.SIGCHLD)), eperm},
		{"MASKED_EQ CLONE_NEWNS", at("clone", 0, unix.CLONE_NEWNS), eperm},
		{"MASKED_EQ high bit set, low bit clear", at("ioctl", 1, 1<<33|1<<2), allow},
		{"MASKED_EQ high bit clear", at("ioctl", 1, 1<<2), eperm},
		{"MASKED_EQ low bit set", at("ioctl", 1, 1<<33|1<<1), eperm},
		{"unrelated syscall", at("getpid", 0, 0), eperm},
	})
}

func TestArguments32(t *testing.T) {
	// On x86 only the low 32 bits exist: the rule's value is truncated and
	// the high word of seccomp_data is never looked at.
	s := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: 0x1_0000_0005}}},
			{Names: []string{"write"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 2, Op: specs.OpGreaterThan, Value: 100}}},
			{Names: []string{"close"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpMaskedEqual, Value: 0xf0, ValueTwo: 0x30}}},
		},
	}
	p := mustCompile(t, s, specs.ArchX86_64)
	x := specs.ArchX86
	checkAll(t, newVM(t, p, false), p, []expect{
		{"EQ truncated value matches", i386(nr(t, x, "read"), 5), allow},
		{"EQ high word ignored", i386(nr(t, x, "read"), 0x7_0000_0005), allow},
		{"EQ differs", i386(nr(t, x, "read"), 6), eperm},
		{"GT", i386(nr(t, x, "write"), 0, 0, 101), allow},
		{"GT high word ignored", i386(nr(t, x, "write"), 0, 0, 0x1_0000_0001), eperm},
		{"MASKED_EQ", i386(nr(t, x, "close"), 0x3f), allow},
		{"MASKED_EQ differs", i386(nr(t, x, "close"), 0x4f), eperm},
		// and x86_64 still compares both halves
		{"x86_64 EQ low half only", x86_64(nr(t, specs.ArchX86_64, "read"), 5), eperm},
		{"x86_64 EQ", x86_64(nr(t, specs.ArchX86_64, "read"), 0x1_0000_0005), allow},
	})
}

func TestArgumentGrouping(t *testing.T) {
	a := specs.ArchX86_64
	p := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{
			// distinct indexes: AND
			{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Op: specs.OpEqualTo, Value: 3},
				{Index: 2, Op: specs.OpLessEqual, Value: 4096},
			}},
			// index 0 twice: runc turns every comparison into its own rule (OR)
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
				{Index: 0, Op: specs.OpEqualTo, Value: 0},
				{Index: 0, Op: specs.OpEqualTo, Value: 8},
				{Index: 1, Op: specs.OpEqualTo, Value: 77},
			}},
		},
	}, a)
	read, pers := nr(t, a, "read"), nr(t, a, "personality")
	checkAll(t, newVM(t, p, false), p, []expect{
		{"AND both hold", x86_64(read, 3, 0, 100), allow},
		{"AND first fails", x86_64(read, 4, 0, 100), eperm},
		{"AND second fails", x86_64(read, 3, 0, 5000), eperm},
		{"OR first", x86_64(pers, 0), allow},
		{"OR second", x86_64(pers, 8), allow},
		{"OR third alone", x86_64(pers, 9, 77), allow},
		{"OR none", x86_64(pers, 9, 1), eperm},
	})
}

func TestRuleOrder(t *testing.T) {
	a := specs.ArchX86_64
	arg0 := func(v uint64) []specs.LinuxSeccompArg {
		return []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: v}}
	}
	p := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{
			// conditional rules: first match in spec order
			{Names: []string{"read"}, Action: specs.ActTrap, Args: arg0(1)},
			{Names: []string{"read"}, Action: specs.ActLog, Args: arg0(1)},
			{Names: []string{"read"}, Action: specs.ActLog, Args: arg0(2)},
			// an argument-less rule replaces conditional ones, before or after
			{Names: []string{"write"}, Action: specs.ActTrap, Args: arg0(1)},
			{Names: []string{"write"}, Action: specs.ActAllow},
			{Names: []string{"close"}, Action: specs.ActAllow},
			{Names: []string{"close"}, Action: specs.ActTrap, Args: arg0(1)},
			// the first argument-less rule wins
			{Names: []string{"fstat"}, Action: specs.ActLog},
			{Names: []string{"fstat"}, Action: specs.ActAllow},
			// a rule with the default action is dropped (runc), so it does not
			// shadow the conditional allow after it
			{Names: []string{"lseek"}, Action: specs.ActErrno},
			{Names: []string{"lseek"}, Action: specs.ActAllow, Args: arg0(0)},
			// an ERRNO with another errno is not the default
			{Names: []string{"mmap"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(unix.EIO))},
			{Names: []string{"mmap"}, Action: specs.ActAllow},
		},
	}, a)
	checkAll(t, newVM(t, p, false), p, []expect{
		{"read arg 1: first rule", x86_64(nr(t, a, "read"), 1), retTrap},
		{"read arg 2", x86_64(nr(t, a, "read"), 2), retLog},
		{"read arg 3: default", x86_64(nr(t, a, "read"), 3), eperm},
		{"write arg 1: unconditional replaces", x86_64(nr(t, a, "write"), 1), allow},
		{"close arg 1: unconditional kept", x86_64(nr(t, a, "close"), 1), allow},
		{"fstat: first unconditional", x86_64(nr(t, a, "fstat")), retLog},
		{"lseek arg 0", x86_64(nr(t, a, "lseek"), 0), allow},
		{"lseek arg 1", x86_64(nr(t, a, "lseek"), 1), eperm},
		{"mmap", x86_64(nr(t, a, "mmap")), errno(unix.EIO)},
	})
}

func TestArchitectures(t *testing.T) {
	s := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "socketcall", "arch_prctl", "_llseek"}, Action: specs.ActAllow},
			{Names: []string{"rt_sigaction"}, Action: specs.ActTrap},
		},
	}
	p := mustCompile(t, s, specs.ArchX86_64)
	x64, x86, x32 := specs.ArchX86_64, specs.ArchX86, specs.ArchX32
	x32call := func(name string) call { return x86_64(nr(t, x32, name)) }
	checkAll(t, newVM(t, p, false), p, []expect{
		{"x86_64 read", x86_64(nr(t, x64, "read")), allow},
		{"x86_64 arch_prctl", x86_64(nr(t, x64, "arch_prctl")), allow},
		{"x86_64 write", x86_64(nr(t, x64, "write")), eperm},
		{"x86 read", i386(nr(t, x86, "read")), allow},
		{"x86 socketcall (x86 only)", i386(nr(t, x86, "socketcall")), allow},
		{"x86 _llseek", i386(nr(t, x86, "_llseek")), allow},
		{"x86 close", i386(nr(t, x86, "close")), eperm},
		{"x32 read", x32call("read"), allow},
		{"x32 rt_sigaction (512+)", x32call("rt_sigaction"), retTrap},
		{"x32 write", x32call("write"), eperm},
		{"x32 number past the profile", x86_64(x32SyscallBit | 1000), enosys},
		{"arm64 (not listed)", mk(unix.AUDIT_ARCH_AARCH64, 63, nil), killThr},
		{"arm (not listed)", mk(unix.AUDIT_ARCH_ARM, 3, nil), killThr},
	})
	if want, got := x32SyscallBit|uint32(0), nr(t, x32, "read"); got != want {
		t.Errorf("x32 read = %#x, want %#x", got, want)
	}
}

func TestX32NotListed(t *testing.T) {
	// Only x86_64: numbers with X32_SYSCALL_BIT are a foreign ABI.
	p := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActErrno}},
	}, specs.ArchX86_64)
	mkdirat := nr(t, specs.ArchX86_64, "mkdirat")
	checkAll(t, newVM(t, p, false), p, []expect{
		{"x86_64 mkdirat", x86_64(mkdirat), eperm},
		{"x86_64 getpid", x86_64(nr(t, specs.ArchX86_64, "getpid")), allow},
		{"x32 mkdirat", x86_64(x32SyscallBit | mkdirat), killThr},
		{"x32 read", x86_64(x32SyscallBit), killThr},
		{"i386 (not listed)", i386(3), killThr},
	})
}

func TestOnlyX32(t *testing.T) {
	// An x86_64 runtime must always admit its own ABI, so a filter listing
	// x32 covers both halves.
	p := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX32},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActErrno}},
	}, specs.ArchX86_64)
	checkAll(t, newVM(t, p, false), p, []expect{
		{"x86_64 mkdirat", x86_64(nr(t, specs.ArchX86_64, "mkdirat")), eperm},
		{"x32 mkdirat", x86_64(nr(t, specs.ArchX32, "mkdirat")), eperm},
		{"x32 read", x86_64(nr(t, specs.ArchX32, "read")), allow},
	})
}

func TestOtherNativeArchitectures(t *testing.T) {
	tests := []struct {
		native    specs.Arch
		audit     uint32
		bigEndian bool
	}{
		{specs.ArchAARCH64, unix.AUDIT_ARCH_AARCH64, false},
		{specs.ArchRISCV64, unix.AUDIT_ARCH_RISCV64, false},
		{specs.ArchPPC64LE, unix.AUDIT_ARCH_PPC64LE, false},
		{specs.ArchLOONGARCH64, unix.AUDIT_ARCH_LOONGARCH64, false},
		{specs.ArchS390X, unix.AUDIT_ARCH_S390X, true},
		{specs.ArchMIPS64, unix.AUDIT_ARCH_MIPS64, true},
		{specs.ArchPPC64, unix.AUDIT_ARCH_PPC64, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.native), func(t *testing.T) {
			p := mustCompile(t, &specs.LinuxSeccomp{
				DefaultAction: specs.ActErrno,
				Syscalls: []specs.LinuxSyscall{
					{Names: []string{"read"}, Action: specs.ActAllow},
					{Names: []string{"write"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpEqualTo, Value: 0x1_0000_0002}}},
				},
			}, tt.native)
			read, write := nr(t, tt.native, "read"), nr(t, tt.native, "write")
			checkAll(t, newVM(t, p, tt.bigEndian), p, []expect{
				{"read", mk(tt.audit, read, nil), allow},
				{"write arg matches", mk(tt.audit, write, []uint64{0, 0x1_0000_0002}), allow},
				{"write low half only", mk(tt.audit, write, []uint64{0, 2}), eperm},
				{"x86_64 (not listed)", x86_64(0), killThr},
			})
		})
	}
}

func TestARMPrivateSyscalls(t *testing.T) {
	p := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchARM},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"set_tls", "cacheflush", "arm_fadvise64_64"}, Action: specs.ActAllow}},
	}, specs.ArchAARCH64)
	arm := func(n uint32) call { return mk(unix.AUDIT_ARCH_ARM, n, nil) }
	checkAll(t, newVM(t, p, false), p, []expect{
		{"set_tls", arm(0x0f0005), allow},
		{"cacheflush", arm(0x0f0002), allow},
		{"arm_fadvise64_64", arm(nr(t, specs.ArchARM, "arm_fadvise64_64")), allow},
		{"breakpoint", arm(0x0f0001), eperm},
		{"aarch64 names none of them: no ENOSYS stub (runc)", mk(unix.AUDIT_ARCH_AARCH64, 0x0f0005, nil), eperm},
	})
}

// TestLongJumps makes bodies and trees far bigger than a conditional jump
// reaches (255 instructions), so the assembler must add trampolines.
func TestLongJumps(t *testing.T) {
	a := specs.ArchX86_64
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno}
	// read: 200 alternatives on arg 0 (repeated index: ORed)
	var args []specs.LinuxSeccompArg
	for v := range 200 {
		args = append(args, specs.LinuxSeccompArg{Index: 0, Op: specs.OpEqualTo, Value: uint64(v)*3 + 1<<40})
	}
	s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActAllow, Args: args})
	// every other system call gets its own conditional rule
	var names []string
	for i, n := range syscallNames {
		if sysX86_64[i] >= 0 && n != "read" && sysX86_64[i]%2 == 0 {
			names = append(names, n)
			s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: []string{n}, Action: specs.ActAllow,
				Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpEqualTo, Value: uint64(sysX86_64[i])}}})
		}
	}
	p := mustCompile(t, s, a)
	if len(p.Filter) < 1000 {
		t.Fatalf("program has %d instructions; the test wants one large enough for long jumps", len(p.Filter))
	}
	long := 0
	for _, in := range p.Filter {
		if in.Code == unix.BPF_JMP|unix.BPF_JA && in.K > 255 {
			long++
		}
	}
	if long == 0 {
		t.Errorf("no jump longer than 255 instructions in a %d-instruction program", len(p.Filter))
	}
	read := nr(t, a, "read")
	cases := []expect{
		{"read first value", x86_64(read, 1<<40), allow},
		{"read last value", x86_64(read, 199*3+1<<40), allow},
		{"read between values", x86_64(read, 1+1<<40), eperm},
	}
	for _, n := range names {
		num := nr(t, a, n)
		cases = append(cases,
			expect{n + " match", x86_64(num, 0, uint64(num)), allow},
			expect{n + " no match", x86_64(num, 0, uint64(num)+1), eperm})
	}
	checkAll(t, newVM(t, p, false), p, cases)
}

func TestFlagsAndNotify(t *testing.T) {
	p := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Flags:         []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow, specs.LinuxSeccompFlagWaitKillableRecv},
		ListenerPath:  "/run/agent.sock",
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActNotify}},
	}, specs.ArchX86_64)
	want := uint32(unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_LOG | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW | unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
	if p.Flags != want || !p.Notify {
		t.Errorf("Flags = %s, Notify = %v; want %s, true", flagNames(p.Flags), p.Notify, flagNames(want))
	}
	if got, want := flagNames(p.loadFlags()), "TSYNC|LOG|SPEC_ALLOW|NEW_LISTENER|TSYNC_ESRCH|WAIT_KILLABLE_RECV"; got != want {
		t.Errorf("load flags = %s, want %s", got, want)
	}
	q := &Program{Flags: unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV | unix.SECCOMP_FILTER_FLAG_LOG}
	if got, want := flagNames(q.loadFlags()), "LOG"; got != want {
		t.Errorf("load flags without a listener = %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(actionNames(p.Actions)), "[SCMP_ACT_KILL_THREAD SCMP_ACT_NOTIFY SCMP_ACT_ALLOW]"; got != want {
		t.Errorf("Actions = %s, want %s", got, want)
	}
}

func actionNames(as []uint32) []string {
	var out []string
	for _, a := range as {
		out = append(out, actionName(a))
	}
	return out
}

func TestValidation(t *testing.T) {
	ok := func(f func(s *specs.LinuxSeccomp)) *specs.LinuxSeccomp {
		s := &specs.LinuxSeccomp{
			DefaultAction: specs.ActErrno,
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"read", "write"}, Action: specs.ActAllow},
				{Names: []string{"close"}, Action: specs.ActAllow},
				{Names: []string{"openat"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpEqualTo}}},
			},
		}
		f(s)
		return s
	}
	tests := []struct {
		name string
		spec *specs.LinuxSeccomp
		want string
	}{
		{"nil", nil, "linux.seccomp: no filter given"},
		{"no default", ok(func(s *specs.LinuxSeccomp) { s.DefaultAction = "" }), "linux.seccomp.defaultAction: missing"},
		{"unknown default", ok(func(s *specs.LinuxSeccomp) { s.DefaultAction = "X" }), `linux.seccomp.defaultAction: unknown action "X"`},
		{"notify default", ok(func(s *specs.LinuxSeccomp) { s.DefaultAction = specs.ActNotify; s.ListenerPath = "/a" }), "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"},
		{"defaultErrnoRet on allow", ok(func(s *specs.LinuxSeccomp) { s.DefaultAction = specs.ActAllow; s.DefaultErrnoRet = ptr(uint(1)) }), "linux.seccomp.defaultErrnoRet: set, but SCMP_ACT_ALLOW returns no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"},
		{"defaultErrnoRet too big", ok(func(s *specs.LinuxSeccomp) { s.DefaultErrnoRet = ptr(uint(70000)) }), "linux.seccomp.defaultErrnoRet: 70000 does not fit in the 16-bit SECCOMP_RET_DATA field"},
		{"unknown arch", ok(func(s *specs.LinuxSeccomp) { s.Architectures = []specs.Arch{specs.ArchX86, "SCMP_ARCH_Z80"} }), `linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_Z80"`},
		{"arch without table", ok(func(s *specs.LinuxSeccomp) { s.Architectures = []specs.Arch{specs.ArchPARISC} }), "linux.seccomp.architectures[0]: unsupported architecture SCMP_ARCH_PARISC: berth has no system call table for it"},
		{"other byte order", ok(func(s *specs.LinuxSeccomp) { s.Architectures = []specs.Arch{specs.ArchX86, specs.ArchS390X} }), "linux.seccomp.architectures[1]: SCMP_ARCH_S390X has big-endian byte order but the native architecture SCMP_ARCH_X86_64 has little-endian"},
		{"unknown flag", ok(func(s *specs.LinuxSeccomp) {
			s.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, "SECCOMP_FILTER_FLAG_NEW_LISTENER"}
		}), `linux.seccomp.flags[1]: unknown flag "SECCOMP_FILTER_FLAG_NEW_LISTENER"`},
		{"metadata without path", ok(func(s *specs.LinuxSeccomp) { s.ListenerMetadata = "x" }), "linux.seccomp.listenerMetadata: set without linux.seccomp.listenerPath"},
		{"notify without path", ok(func(s *specs.LinuxSeccomp) { s.Syscalls[1].Action = specs.ActNotify }), "linux.seccomp.syscalls[1].action: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath for the agent"},
		{"unknown action", ok(func(s *specs.LinuxSeccomp) { s.Syscalls[2].Action = "SCMP_ACT_FOO" }), `linux.seccomp.syscalls[2].action: unknown action "SCMP_ACT_FOO"`},
		{"missing action", ok(func(s *specs.LinuxSeccomp) { s.Syscalls[0].Action = "" }), "linux.seccomp.syscalls[0].action: missing"},
		{"errnoRet on allow", ok(func(s *specs.LinuxSeccomp) { s.Syscalls[1].ErrnoRet = ptr(uint(5)) }), "linux.seccomp.syscalls[1].errnoRet: set, but SCMP_ACT_ALLOW returns no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"},
		{"no names", ok(func(s *specs.LinuxSeccomp) { s.Syscalls[1].Names = nil }), "linux.seccomp.syscalls[1].names: empty: name at least one system call"},
		{"unknown syscall", ok(func(s *specs.LinuxSeccomp) { s.Syscalls[0].Names = []string{"read", "foo"} }), `linux.seccomp.syscalls[0].names[1]: unknown syscall "foo"`},
		{"empty syscall name", ok(func(s *specs.LinuxSeccomp) { s.Syscalls[2].Names = []string{""} }), `linux.seccomp.syscalls[2].names[0]: unknown syscall ""`},
		{"arg index", ok(func(s *specs.LinuxSeccomp) { s.Syscalls[2].Args[0].Index = 6 }), "linux.seccomp.syscalls[2].args[0].index: 6 is out of range: system calls have arguments 0 to 5"},
		{"arg op", ok(func(s *specs.LinuxSeccomp) { s.Syscalls[2].Args[0].Op = "SCMP_CMP_LIKE" }), `linux.seccomp.syscalls[2].args[0].op: unknown operator "SCMP_CMP_LIKE"`},
		{"arg op missing", ok(func(s *specs.LinuxSeccomp) { s.Syscalls[2].Args[0].Op = "" }), "linux.seccomp.syscalls[2].args[0].op: missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compile(tt.spec, specs.ArchX86_64)
			if err == nil {
				t.Fatalf("compile succeeded, want error %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("compile error\n got: %s\nwant: %s", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
		})
	}
}

func TestValidEdgeCases(t *testing.T) {
	tests := []struct {
		name string
		spec *specs.LinuxSeccomp
	}{
		{"no syscalls", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}},
		{"native listed again", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86_64}}},
		{"name of another architecture only", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"s390_pci_mmio_read", "riscv_flush_icache"}, Action: specs.ActAllow}}}},
		{"errnoRet on trace", &specs.LinuxSeccomp{DefaultAction: specs.ActTrace, DefaultErrnoRet: ptr(uint(3))}},
		{"listener path without notify is ignored", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/x", ListenerMetadata: "m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := compile(tt.spec, specs.ArchX86_64); err != nil {
				t.Errorf("compile: %v", err)
			}
		})
	}
}

// TestEqualityRuns covers the shortcut for consecutive single equality
// tests with one action (load once, compare many), and where a run ends.
func TestEqualityRuns(t *testing.T) {
	eq := func(idx uint, v uint64) []specs.LinuxSeccompArg {
		return []specs.LinuxSeccompArg{{Index: idx, Op: specs.OpEqualTo, Value: v}}
	}
	s := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: eq(0, 1)},
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: eq(0, 2)},
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: eq(0, 0x1_0000_0003)}, // other high half
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: eq(0, 0x1_0000_0004)},
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: eq(1, 5)}, // other argument
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: eq(1, 6)},
			{Names: []string{"socket"}, Action: specs.ActLog, Args: eq(0, 7)}, // other action
			{Names: []string{"socket"}, Action: specs.ActLog, Args: eq(0, 8)},
		},
	}
	p := mustCompile(t, s, specs.ArchX86_64)
	sock64 := func(args ...uint64) call { return x86_64(nr(t, specs.ArchX86_64, "socket"), args...) }
	sock32 := func(args ...uint64) call { return i386(nr(t, specs.ArchX86, "socket"), args...) }
	checkAll(t, newVM(t, p, false), p, []expect{
		{"1", sock64(1), allow},
		{"2", sock64(2), allow},
		{"3 without the high half", sock64(3), eperm},
		{"0x1_0000_0003", sock64(0x1_0000_0003), allow},
		{"0x1_0000_0004", sock64(0x1_0000_0004), allow},
		{"0x1_0000_0001", sock64(0x1_0000_0001), eperm},
		{"arg1 5", sock64(0, 5), allow},
		{"arg1 6", sock64(9, 6), allow},
		{"arg1 7", sock64(9, 7), eperm},
		{"7 logs", sock64(7), retLog},
		{"8 logs", sock64(8), retLog},
		{"9", sock64(9), eperm},
		{"x86: 3 (truncated 0x1_0000_0003)", sock32(3), allow},
		{"x86: 2", sock32(2), allow},
		{"x86: arg1 6", sock32(0, 6), allow},
		{"x86: 8", sock32(8), retLog},
		{"x86: 9", sock32(9), eperm},
	})
}
