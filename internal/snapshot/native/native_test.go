package native

import (
	"testing"

	"github.com/berthproject/berth/internal/snapshot"
	"github.com/berthproject/berth/internal/snapshot/testsuite"
)

func TestSuite(t *testing.T) {
	testsuite.Run(t, func(t *testing.T, root string) snapshot.Driver {
		d, err := New(root)
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}
