package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

func TestChainIDs(t *testing.T) {
	a := digest.Digest("sha256:" + strings.Repeat("a", 64))
	b := digest.Digest("sha256:" + strings.Repeat("b", 64))
	got := ChainIDs([]digest.Digest{a, b})
	// sha256("sha256:aaa... sha256:bbb..."), as the image spec defines it.
	want := digest.FromString(string(a) + " " + string(b))
	if got[0] != a || got[1] != want {
		t.Errorf("ChainIDs = %v, want [%s %s]", got, a, want)
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		in    []string
		flags uintptr
		data  []string
	}{
		{[]string{"rbind", "ro"}, unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY, nil},
		{[]string{"ro", "rw", "nosuid"}, unix.MS_NOSUID, nil},
		{[]string{"lowerdir=/a:/b", "upperdir=/u", "workdir=/w", "nodev"}, unix.MS_NODEV, []string{"lowerdir=/a:/b", "upperdir=/u", "workdir=/w"}},
	}
	for _, tt := range tests {
		flags, data := parseOptions(tt.in)
		if flags != tt.flags || !slices.Equal(data, tt.data) {
			t.Errorf("parseOptions(%q) = %#x, %q; want %#x, %q", tt.in, flags, data, tt.flags, tt.data)
		}
	}
}

func TestKindRoundTrip(t *testing.T) {
	for _, k := range []Kind{KindActive, KindView, KindCommitted} {
		if got, err := ParseKind(k.String()); got != k || err != nil {
			t.Errorf("ParseKind(%q) = %v, %v", k.String(), got, err)
		}
	}
	if _, err := ParseKind("bogus"); err == nil {
		t.Error("ParseKind(bogus) succeeded")
	}
}

// TestLongOverlayStrategies mounts a 150-layer overlay (its options are
// about three pages long) with each way MountAll has to do it.
func TestLongOverlayStrategies(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts overlays: needs root")
	}
	base := t.TempDir()
	// Long directory names, as a deep berth root gives.
	layerRoot := filepath.Join(base, strings.Repeat("r", 60))
	const n = 150
	var lower []string
	for i := range n {
		d := filepath.Join(layerRoot, fmt.Sprintf("%04d", i), "fs")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		lower = append(lower, d)
	}
	for _, s := range []struct {
		name string
		st   overlayStrategy
	}{{"fsconfig lowerdir+", strategyFsconfig}, {"fd paths", strategyFdLowerdirs}, {"auto", strategyAuto}} {
		t.Run(s.name, func(t *testing.T) {
			forceStrategy = s.st
			defer func() { forceStrategy = strategyAuto }()
			upper, work, target := t.TempDir(), t.TempDir(), t.TempDir()
			m := []Mount{{Type: "overlay", Source: "overlay", Options: []string{
				"lowerdir=" + strings.Join(lower, ":"), "upperdir=" + upper, "workdir=" + work,
			}}}
			if len(strings.Join(m[0].Options, ",")) < 2*pageSize {
				t.Fatalf("the test's options are too short to need a strategy")
			}
			if err := MountAll(m, target); err != nil {
				t.Fatalf("MountAll: %v", err)
			}
			t.Cleanup(func() {
				if err := Unmount(target); err != nil {
					t.Errorf("Unmount: %v", err)
				}
			})
			entries, err := os.ReadDir(target)
			if err != nil || len(entries) != n {
				t.Fatalf("the mount shows %d entries (%v), want %d", len(entries), err, n)
			}
			if err := os.WriteFile(filepath.Join(target, "new"), []byte("x"), 0o644); err != nil {
				t.Errorf("write through the overlay: %v", err)
			}
			if _, err := os.Stat(filepath.Join(upper, "new")); err != nil {
				t.Errorf("the write did not land in the upper dir: %v", err)
			}
		})
	}
}

func TestMountReadOnlyBindAndUnmount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts: needs root")
	}
	src, target := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MountAll([]Mount{{Type: "bind", Source: src, Options: []string{"rbind", "ro"}}}, target); err != nil {
		t.Fatalf("MountAll: %v", err)
	}
	t.Cleanup(func() { Unmount(target) })
	if err := os.WriteFile(filepath.Join(target, "g"), nil, 0o644); err == nil {
		t.Error("writing into a read-only bind succeeded")
	}
	if err := Unmount(target); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if err := Unmount(target); err != nil {
		t.Errorf("Unmount of something not mounted = %v, want nil", err)
	}
	if _, err := os.Stat(filepath.Join(target, "f")); err == nil {
		t.Error("the source still shows after Unmount")
	}
}
