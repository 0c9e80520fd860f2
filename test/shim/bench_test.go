package shimtest

import (
	"os/exec"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/shim"
)

// BenchmarkRunTrue runs `true` in a container through the monitor, from
// Start to the monitor's exit (exit recorded, container deleted), and as
// reference the runtime's own `run` of the same bundle (no monitor, no
// log). Compare the two in one invocation:
//
//	go test -run XXX -bench RunTrue ./test/shim/
func BenchmarkRunTrue(b *testing.B) {
	b.Run("shim", func(b *testing.B) {
		benchRun(b, func(c *ctr) {
			if _, err := shim.Start(c.opts); err != nil {
				b.Fatal(err)
			}
			for shim.Alive(c.sdir) {
				time.Sleep(200 * time.Microsecond)
			}
		})
	})
	b.Run("runtime-run", func(b *testing.B) {
		benchRun(b, func(c *ctr) {
			if out, err := exec.Command(runtimeBin, "--root", c.root, "run", "--bundle", c.bundle, c.id).CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		})
	})
}

// benchRun times run on fresh containers (their setup untimed).
func benchRun(b *testing.B, run func(*ctr)) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := newCtr(b, []string{"true"})
		c.writeSpec()
		b.StartTimer()
		run(c)
		b.StopTimer()
		c.cleanup()
		b.StartTimer()
	}
}
