package seccomp

import (
	"slices"
	"testing"

	dockerseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// dockerCaps is Docker's default capability set (no CAP_SYS_ADMIN).
var dockerCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// libseccompArch is the architecture name Docker's profile uses in
// includes/excludes for each Go architecture.
var libseccompArch = map[string]string{
	"amd64": "amd64", "arm64": "arm64", "riscv64": "riscv64", "ppc64le": "ppc64le", "loong64": "loongarch64",
}

// dockerProfile resolves Docker's default profile for goarch and the given
// bounding capabilities the way moby's setupSeccomp does for the native
// architecture, assuming a kernel new enough for every minKernel.
func dockerProfile(t testing.TB, goarch string, caps []string) *specs.LinuxSeccomp {
	t.Helper()
	prof := dockerseccomp.DefaultProfile()
	out := prof.LinuxSeccomp
	arch := libseccompArch[goarch]
	native := goarchToSpec[goarch]
	for _, m := range prof.ArchMap {
		if m.Arch == native {
			out.Architectures = append(append(out.Architectures, m.Arch), m.SubArches...)
		}
	}
	has := func(list []string, c string) bool { return slices.Contains(list, c) }
next:
	for _, sc := range prof.Syscalls {
		if ex := sc.Excludes; ex != nil {
			if has(ex.Arches, arch) || ex.MinKernel != nil {
				continue
			}
			for _, c := range ex.Caps {
				if has(caps, c) {
					continue next
				}
			}
		}
		if in := sc.Includes; in != nil {
			if len(in.Arches) > 0 && !has(in.Arches, arch) {
				continue
			}
			for _, c := range in.Caps {
				if !has(caps, c) {
					continue next
				}
			}
		}
		call := sc.LinuxSyscall
		if sc.Name != "" {
			call.Names = []string{sc.Name}
		}
		out.Syscalls = append(out.Syscalls, call)
	}
	return &out
}

// TestDockerProfileNames: every system call Docker's default profile names
// is in the tables, and on amd64 all but three resolve on one of the ABIs the
// profile lists there (x86_64, x86, x32); those three exist only elsewhere
// and are skipped, as libseccomp skips its pseudo-syscalls.
func TestDockerProfileNames(t *testing.T) {
	prof := dockerseccomp.DefaultProfile()
	for _, sc := range prof.Syscalls {
		for _, n := range append(sc.Names, sc.Name) {
			if n != "" && !knownAnywhere(n) {
				t.Errorf("Docker's profile names %q; berth's tables do not know it", n)
			}
		}
	}
	allCaps := []string{"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_CHROOT", "CAP_SYS_MODULE", "CAP_SYS_PACCT",
		"CAP_SYS_PTRACE", "CAP_SYS_RAWIO", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_SYS_NICE", "CAP_SYSLOG",
		"CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH"}
	s := dockerProfile(t, "amd64", allCaps)
	var skipped []string
	for _, sc := range s.Syscalls {
		for _, n := range sc.Names {
			found := false
			for _, a := range []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32} {
				_, ok := SyscallNumber(a, n)
				found = found || ok
			}
			if !found {
				skipped = append(skipped, n)
			}
		}
	}
	slices.Sort(skipped)
	if want := []string{"recv", "riscv_hwprobe", "send"}; !slices.Equal(skipped, want) {
		t.Errorf("names of Docker's amd64 profile on none of x86_64, x86, x32: %q, want %q", skipped, want)
	}
}

func TestDockerProfileAMD64(t *testing.T) {
	s := dockerProfile(t, "amd64", dockerCaps)
	p := mustCompile(t, s, specs.ArchX86_64)
	t.Logf("Docker's default profile for amd64 (x86_64, x86, x32): %d rules, %d instructions", len(s.Syscalls), len(p.Filter))
	if len(p.Filter) > MaxInstructions/2 {
		t.Errorf("%d instructions; want it to fit the kernel's %d comfortably", len(p.Filter), MaxInstructions)
	}
	x64, x86, x32 := specs.ArchX86_64, specs.ArchX86, specs.ArchX32
	sys := func(a specs.Arch, name string, args ...uint64) call {
		audit := uint32(unix.AUDIT_ARCH_X86_64)
		if a == x86 {
			audit = unix.AUDIT_ARCH_I386
		}
		return mk(audit, nr(t, a, name), args)
	}
	checkAll(t, newVM(t, p, false), p, []expect{
		{"read", sys(x64, "read"), allow},
		{"openat", sys(x64, "openat"), allow},
		{"x86 read", sys(x86, "read"), allow},
		{"x86 socketcall", sys(x86, "socketcall"), allow},
		{"x32 read", sys(x32, "read"), allow},
		{"arch_prctl", sys(x64, "arch_prctl"), allow},
		{"mount (CAP_SYS_ADMIN only)", sys(x64, "mount"), eperm},
		{"kexec_load", sys(x64, "kexec_load"), eperm},
		{"clone for a thread", sys(x64, "clone", unix.CLONE_VM|unix.CLONE_THREAD|unix.CLONE_SIGHAND), allow},
		{"clone with CLONE_NEWUSER", sys(x64, "clone", unix.CLONE_NEWUSER), eperm},
		{"clone with CLONE_NEWNET", sys(x64, "clone", unix.CLONE_NEWNET|uint64(unix.SIGCHLD)), eperm},
		{"clone3 (ENOSYS: use clone)", sys(x64, "clone3"), enosys},
		{"personality(0)", sys(x64, "personality", 0), allow},
		{"personality(0xffffffff)", sys(x64, "personality", 0xffffffff), allow},
		{"personality(PER_BSD)", sys(x64, "personality", 6), eperm},
		{"socket(AF_UNIX)", sys(x64, "socket", unix.AF_UNIX), allow},
		{"socket(AF_INET)", sys(x64, "socket", unix.AF_INET), allow},
		{"socket(AF_NETLINK)", sys(x64, "socket", unix.AF_NETLINK), allow},
		{"socket(AF_VSOCK)", sys(x64, "socket", unix.AF_VSOCK), eperm},
		{"socket(AF_ALG)", sys(x64, "socket", unix.AF_ALG), eperm},
		{"x86_64 number 1000 (newer than the profile)", x86_64(1000), enosys},
		{"x32 number 1000", x86_64(x32SyscallBit | 1000), enosys},
		{"x86 number 1000", i386(1000), enosys},
		{"aarch64 caller", mk(unix.AUDIT_ARCH_AARCH64, 63, nil), killThr},
	})
}

func TestDockerProfileOtherArches(t *testing.T) {
	for goarch := range libseccompArch {
		if goarch == "amd64" {
			continue
		}
		t.Run(goarch, func(t *testing.T) {
			native := goarchToSpec[goarch]
			s := dockerProfile(t, goarch, dockerCaps)
			p := mustCompile(t, s, native)
			t.Logf("%s: %d instructions", goarch, len(p.Filter))
			audit := archInfo[native].audit
			checkAll(t, newVM(t, p, archInfo[native].bigEndian), p, []expect{
				{"read", mk(audit, nr(t, native, "read"), nil), allow},
				{"mount", mk(audit, nr(t, native, "mount"), nil), eperm},
				{"clone3", mk(audit, nr(t, native, "clone3"), nil), enosys},
			})
		})
	}
}

// BenchmarkCompileDockerDefault measures compiling Docker's default profile
// for amd64 and reports the program's size.
func BenchmarkCompileDockerDefault(b *testing.B) {
	s := dockerProfile(b, "amd64", dockerCaps)
	var p *Program
	for b.Loop() {
		var err error
		if p, err = compile(s, specs.ArchX86_64); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(p.Filter)), "instructions")
}

// BenchmarkCacheHitDockerDefault measures a start that finds the program in
// the cache: hash the spec, read and check the entry.
func BenchmarkCacheHitDockerDefault(b *testing.B) {
	s := dockerProfile(b, "amd64", dockerCaps)
	c := &Cache{Dir: b.TempDir()}
	if _, err := c.Program(s); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := c.Program(s); err != nil {
			b.Fatal(err)
		}
	}
}
