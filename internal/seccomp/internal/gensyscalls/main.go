// Command gensyscalls writes the system call tables of package seccomp
// (zsyscalls.go): for every architecture the filter compiler supports, the
// number of every system call name.
//
// Sources, all generated from the kernel's own headers:
//
//   - golang.org/x/sys/unix zsysnum_linux_<goarch>.go, the module version named
//     in go.mod. x/sys produces these by running each architecture's C
//     preprocessor over a recent kernel's asm/unistd.h, so they are the
//     kernel's numbers for x86, x86_64, arm, arm64, mips, ppc, s390x, riscv64
//     and loongarch64, and newer than the headers installed on a build host.
//   - /usr/include/x86_64-linux-gnu/asm/unistd_x32.h (Debian's linux-libc-dev)
//     for x32, which x/sys does not cover. System calls added to x86_64 after
//     those headers were made are added to x32 too, at X32_SYSCALL_BIT plus
//     the x86_64 number: every system call added since the 512-547 x32 block
//     is "common" in arch/x86/entry/syscalls/syscall_64.tbl.
//   - The ARM private system calls (__ARM_NR_BASE 0x0f0000 + n, from
//     arch/arm/include/uapi/asm/unistd.h), which x/sys leaves out because they
//     are not __NR_ names; libseccomp and Docker's profile name them.
//
// As a cross-check the tool compares the x/sys tables for x86_64 and x86 with
// the installed unistd_64.h and unistd_32.h and fails on any disagreement.
//
// Run it with `go generate ./internal/seccomp` from the module root.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// x32SyscallBit is __X32_SYSCALL_BIT from asm/unistd.h.
const x32SyscallBit = 0x40000000

// table is one architecture's source: the Go variable that holds it in the
// generated file, the OCI architectures that use it and where it comes from.
type table struct {
	variable string
	arches   []string // specs.Arch constant names
	goarch   string   // x/sys zsysnum file suffix; empty for x32
	numbers  map[string]int64
}

func tables() []*table {
	return []*table{
		{variable: "sysX86_64", arches: []string{"ArchX86_64"}, goarch: "amd64"},
		{variable: "sysX86", arches: []string{"ArchX86"}, goarch: "386"},
		{variable: "sysX32", arches: []string{"ArchX32"}},
		{variable: "sysARM", arches: []string{"ArchARM"}, goarch: "arm"},
		{variable: "sysAARCH64", arches: []string{"ArchAARCH64"}, goarch: "arm64"},
		{variable: "sysMIPS", arches: []string{"ArchMIPS", "ArchMIPSEL"}, goarch: "mips"},
		{variable: "sysMIPS64", arches: []string{"ArchMIPS64", "ArchMIPSEL64"}, goarch: "mips64"},
		{variable: "sysPPC", arches: []string{"ArchPPC"}, goarch: "ppc"},
		{variable: "sysPPC64", arches: []string{"ArchPPC64", "ArchPPC64LE"}, goarch: "ppc64le"},
		{variable: "sysS390X", arches: []string{"ArchS390X"}, goarch: "s390x"},
		{variable: "sysRISCV64", arches: []string{"ArchRISCV64"}, goarch: "riscv64"},
		{variable: "sysLOONGARCH64", arches: []string{"ArchLOONGARCH64"}, goarch: "loong64"},
	}
}

// armPrivate are the ARM-specific calls numbered from __ARM_NR_BASE.
var armPrivate = map[string]int64{
	"breakpoint": 0x0f0001,
	"cacheflush": 0x0f0002,
	"usr26":      0x0f0003,
	"usr32":      0x0f0004,
	"set_tls":    0x0f0005,
	"get_tls":    0x0f0006,
}

// notSyscall matches x/sys constants that are __NR_ macros but no system
// call: bases and masks, and placeholders for retired table slots.
var notSyscall = regexp.MustCompile(`^(syscall_mask|arch_specific_syscall|reserved[0-9]+|unused[0-9]+)$`)

func main() {
	out := flag.String("o", "zsyscalls.go", "output file")
	include := flag.String("include", "/usr/include/x86_64-linux-gnu/asm", "directory holding unistd_{32,64,x32}.h")
	flag.Parse()

	xsys, version, err := xsysDir()
	if err != nil {
		log.Fatal(err)
	}
	all := tables()
	byGoarch := map[string]*table{}
	for _, t := range all {
		if t.goarch == "" {
			continue
		}
		path := filepath.Join(xsys, "unix", "zsysnum_linux_"+t.goarch+".go")
		t.numbers, err = parseXsys(path)
		if err != nil {
			log.Fatal(err)
		}
		byGoarch[t.goarch] = t
	}
	for name, nr := range armPrivate {
		byGoarch["arm"].numbers[name] = nr
	}

	h64, err := parseHeader(filepath.Join(*include, "unistd_64.h"), false)
	if err != nil {
		log.Fatal(err)
	}
	h32, err := parseHeader(filepath.Join(*include, "unistd_32.h"), false)
	if err != nil {
		log.Fatal(err)
	}
	hx32, err := parseHeader(filepath.Join(*include, "unistd_x32.h"), true)
	if err != nil {
		log.Fatal(err)
	}
	if err := agree("unistd_64.h", h64, byGoarch["amd64"].numbers); err != nil {
		log.Fatal(err)
	}
	if err := agree("unistd_32.h", h32, byGoarch["386"].numbers); err != nil {
		log.Fatal(err)
	}
	x32 := map[string]int64{}
	for name, nr := range hx32 {
		x32[name] = nr
	}
	for name, nr := range byGoarch["amd64"].numbers {
		if _, old := h64[name]; old {
			continue // known to the headers: x32 has it exactly when unistd_x32.h does
		}
		if _, ok := x32[name]; !ok {
			x32[name] = x32SyscallBit | nr
		}
	}
	for _, t := range all {
		if t.goarch == "" {
			t.numbers = x32
		}
	}

	src, err := render(all, version)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
}

// xsysDir returns the directory and version of the golang.org/x/sys module
// that the enclosing module builds with.
func xsysDir() (dir, version string, err error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", "golang.org/x/sys")
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("locate golang.org/x/sys: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || f[0] == "" {
		return "", "", fmt.Errorf("locate golang.org/x/sys: unexpected go list output %q (run `go mod download golang.org/x/sys`)", b)
	}
	return f[0], f[1], nil
}

var xsysLine = regexp.MustCompile(`^\s*SYS_([A-Z0-9_]+)\s*=\s*([0-9]+)\s*$`)

func parseXsys(path string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read syscall table: %w", err)
	}
	defer f.Close()
	m := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		g := xsysLine.FindStringSubmatch(sc.Text())
		if g == nil {
			continue
		}
		name := strings.ToLower(g[1])
		if notSyscall.MatchString(name) {
			continue
		}
		nr, err := strconv.ParseInt(g[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, sc.Text(), err)
		}
		m[name] = nr
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(m) < 200 {
		return nil, fmt.Errorf("%s: only %d system calls found; not a syscall table?", path, len(m))
	}
	return m, nil
}

var (
	headerLine    = regexp.MustCompile(`^#define __NR_([a-z0-9_]+)\s+([0-9]+)\s*$`)
	headerX32Line = regexp.MustCompile(`^#define __NR_([a-z0-9_]+)\s+\(__X32_SYSCALL_BIT \+ ([0-9]+)\)\s*$`)
)

func parseHeader(path string, x32 bool) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read header (install linux-libc-dev): %w", err)
	}
	re := headerLine
	if x32 {
		re = headerX32Line
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		g := re.FindStringSubmatch(line)
		if g == nil {
			continue
		}
		nr, err := strconv.ParseInt(g[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, line, err)
		}
		if x32 {
			nr |= x32SyscallBit
		}
		m[g[1]] = nr
	}
	if len(m) < 200 {
		return nil, fmt.Errorf("%s: only %d system calls found", path, len(m))
	}
	return m, nil
}

// agree reports a header entry that x/sys numbers differently or lacks.
func agree(header string, h, xsys map[string]int64) error {
	for name, nr := range h {
		if got, ok := xsys[name]; !ok || got != nr {
			return fmt.Errorf("%s says %s = %d, x/sys says %d (present %v)", header, name, nr, got, ok)
		}
	}
	return nil
}

func render(all []*table, version string) ([]byte, error) {
	names := map[string]bool{}
	for _, t := range all {
		for n := range t.numbers {
			names[n] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)

	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by internal/gensyscalls from golang.org/x/sys %s and the\n", version)
	fmt.Fprintf(&b, "// installed asm/unistd_x32.h; DO NOT EDIT.\n\n")
	fmt.Fprintf(&b, "package seccomp\n\n")
	fmt.Fprintf(&b, "import specs \"github.com/opencontainers/runtime-spec/specs-go\"\n\n")
	fmt.Fprintf(&b, "// syscallNames holds every system call name known on at least one\n")
	fmt.Fprintf(&b, "// architecture, sorted; the tables below are indexed like it.\n")
	fmt.Fprintf(&b, "var syscallNames = [...]string{\n")
	for _, n := range sorted {
		fmt.Fprintf(&b, "\t%q,\n", n)
	}
	fmt.Fprintf(&b, "}\n\n")
	fmt.Fprintf(&b, "// syscallTable maps an index of syscallNames to the system call number on\n")
	fmt.Fprintf(&b, "// one architecture, or -1 where that architecture has no such call.\n")
	fmt.Fprintf(&b, "type syscallTable [len(syscallNames)]int32\n\n")
	for _, t := range all {
		fmt.Fprintf(&b, "var %s = syscallTable{", t.variable)
		for i, n := range sorted {
			if i%12 == 0 {
				b.WriteString("\n\t")
			} else {
				b.WriteString(" ")
			}
			nr, ok := t.numbers[n]
			if !ok {
				nr = -1
			}
			if nr > 1<<31-1 {
				return nil, fmt.Errorf("%s: %s = %d does not fit int32", t.variable, n, nr)
			}
			fmt.Fprintf(&b, "%d,", nr)
		}
		fmt.Fprintf(&b, "\n}\n\n")
	}
	fmt.Fprintf(&b, "// syscallTables maps each architecture with a table to it.\n")
	fmt.Fprintf(&b, "var syscallTables = map[specs.Arch]*syscallTable{\n")
	for _, t := range all {
		for _, a := range t.arches {
			fmt.Fprintf(&b, "\tspecs.%s: &%s,\n", a, t.variable)
		}
	}
	fmt.Fprintf(&b, "}\n")
	return format.Source(b.Bytes())
}
