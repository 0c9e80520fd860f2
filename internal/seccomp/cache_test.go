package seccomp

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func cacheEntries(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCacheCompilesOnce(t *testing.T) {
	c := &Cache{Dir: filepath.Join(t.TempDir(), "seccomp")}
	s := dockerProfile(t, "amd64", dockerCaps)

	p1, err := c.Program(s)
	if err != nil {
		t.Fatalf("first Program: %v", err)
	}
	if n := c.compiles.Load(); n != 1 {
		t.Fatalf("first call compiled %d times, want 1", n)
	}
	entries := cacheEntries(t, c.Dir)
	if len(entries) != 1 {
		t.Fatalf("cache holds %v, want one entry and no temporary files", entries)
	}

	// A second Cache on the same directory stands for the next
	// `berth-runtime create` process.
	c2 := &Cache{Dir: c.Dir}
	p2, err := c2.Program(s)
	if err != nil {
		t.Fatalf("second Program: %v", err)
	}
	if n := c2.compiles.Load(); n != 0 {
		t.Errorf("second call compiled %d times, want 0 (cache hit)", n)
	}
	if !reflect.DeepEqual(p1, p2) {
		t.Errorf("cached program differs from the compiled one")
	}
	want, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(want, p2) {
		t.Errorf("cached program differs from Compile's")
	}
}

func TestCacheKey(t *testing.T) {
	base := func() *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			ListenerPath:  "/run/a.sock",
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdirat"}, Action: specs.ActNotify}},
		}
	}
	key := func(s *specs.LinuxSeccomp) string {
		k, err := cacheKey(s, specs.ArchX86_64)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k := key(base())
	otherPath := base()
	otherPath.ListenerPath, otherPath.ListenerMetadata = "/run/b.sock", "meta"
	if key(otherPath) != k {
		t.Errorf("listener path and metadata change the key; they do not change the program")
	}
	otherRule := base()
	otherRule.Syscalls[0].Names = []string{"mknodat"}
	if key(otherRule) == k {
		t.Errorf("a different rule gives the same key")
	}
	otherArch, err := cacheKey(base(), specs.ArchAARCH64)
	if err != nil {
		t.Fatal(err)
	}
	if otherArch == k {
		t.Errorf("a different native architecture gives the same key")
	}
}

func TestCacheRecompilesCorruptEntry(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	s := goldenSpec()
	want, err := c.Program(s)
	if err != nil {
		t.Fatal(err)
	}
	entries := cacheEntries(t, c.Dir)
	if len(entries) != 1 {
		t.Fatalf("cache holds %v, want one entry", entries)
	}
	for name, damage := range map[string]func([]byte) []byte{
		"bit flip":  func(b []byte) []byte { b[len(b)/2] ^= 1; return b },
		"truncated": func(b []byte) []byte { return b[:len(b)/2] },
		"empty":     func([]byte) []byte { return nil },
	} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(entries[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(entries[0], damage(data), 0o600); err != nil {
				t.Fatal(err)
			}
			before := c.compiles.Load()
			got, err := c.Program(s)
			if err != nil {
				t.Fatalf("Program over a damaged entry: %v", err)
			}
			if c.compiles.Load() != before+1 {
				t.Errorf("damaged entry was not recompiled")
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("recompiled program differs")
			}
			// and the entry was repaired
			c.compiles.Store(0)
			if _, err := c.Program(s); err != nil || c.compiles.Load() != 0 {
				t.Errorf("after repair: err %v, compiles %d; want a cache hit", err, c.compiles.Load())
			}
		})
	}
}

func TestCacheInvalidSpec(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	_, err := c.Program(&specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_NOPE"})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Program = %v, want an ErrInvalid error", err)
	}
	if e := cacheEntries(t, c.Dir); len(e) != 0 {
		t.Errorf("an invalid filter left cache entries %v", e)
	}
}
