package seccomp

import (
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Raw gives the filter in the kernel's struct sock_filter layout and the
// flags Load would pass, and refuses what only Load can do.
func TestRaw(t *testing.T) {
	p := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}}}, specs.ArchX86_64)
	flags, filter, err := p.Raw()
	if err != nil {
		t.Fatalf("Raw: %v", err)
	}
	if flags != unix.SECCOMP_FILTER_FLAG_LOG {
		t.Errorf("flags %#x, want LOG", flags)
	}
	if len(filter) != len(p.Filter)*int(unsafe.Sizeof(unix.SockFilter{})) {
		t.Fatalf("filter of %d bytes for %d instructions", len(filter), len(p.Filter))
	}
	for i, f := range p.Filter {
		if got := *(*unix.SockFilter)(unsafe.Pointer(&filter[8*i])); got != f {
			t.Errorf("instruction %d = %+v, want %+v", i, got, f)
		}
	}
	p.Notify = true
	if _, _, err := p.Raw(); err == nil {
		t.Errorf("Raw of a notify filter succeeded, want it left to Load")
	}
	if _, _, err := (&Program{}).Raw(); err == nil {
		t.Errorf("Raw of an empty program succeeded")
	}
}
