package native

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/snapshot"
)

var update = flag.Bool("update", false, "rewrite testdata/mounts.golden")

// TestMountsGolden renders the mounts of each kind of snapshot: a pure
// description, checked without root.
func TestMountsGolden(t *testing.T) {
	const root = "/var/lib/berth/snapshots/native"
	dir := func(id string) string { return filepath.Join(root, id) }
	cases := []struct {
		name    string
		kind    snapshot.Kind
		parents []string
	}{
		{"active, no parent", snapshot.KindActive, nil},
		{"active on one layer", snapshot.KindActive, []string{dir("1")}},
		{"active on three layers", snapshot.KindActive, []string{dir("3"), dir("2"), dir("1")}},
		{"view, no parent", snapshot.KindView, nil},
		{"view of one layer", snapshot.KindView, []string{dir("1")}},
		{"view of three layers", snapshot.KindView, []string{dir("3"), dir("2"), dir("1")}},
	}
	var out strings.Builder
	for _, c := range cases {
		fmt.Fprintf(&out, "%s:\n", c.name)
		for _, m := range mounts(dir("9"), c.kind, c.parents) {
			fmt.Fprintf(&out, "  type=%s source=%s\n", m.Type, m.Source)
			for _, o := range m.Options {
				fmt.Fprintf(&out, "    %s\n", o)
			}
		}
	}
	p := filepath.Join("testdata", "mounts.golden")
	if *update {
		if err := os.WriteFile(p, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read golden file (go test -update writes it): %v", err)
	}
	if out.String() != string(want) {
		t.Errorf("mounts differ from %s (go test -update rewrites it):\n%s", p, out.String())
	}
}
