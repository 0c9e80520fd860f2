package overlay

import (
	"os"
	"testing"

	"github.com/berthproject/berth/internal/snapshot"
	"github.com/berthproject/berth/internal/snapshot/testsuite"
)

func TestSuite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the overlay driver writes trusted.overlay.* xattrs and mounts: needs root")
	}
	testsuite.Run(t, func(t *testing.T, root string) snapshot.Driver {
		d, err := New(root)
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}
