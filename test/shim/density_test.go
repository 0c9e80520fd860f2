package shimtest

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/shim"
)

// idleShims is how many idle monitors the density test runs at once.
const idleShims = 50

// maxIdlePSS is the per-monitor PSS the density test accepts (the target
// is 1 MiB; a regression past this bound fails).
const maxIdlePSS = 1024 // KiB

// TestIdleMonitorMemory starts 50 containers that sleep, each with its
// monitor, and measures the monitors' proportional set size (PSS: the
// binary's pages shared among the 50 count once in all).
func TestIdleMonitorMemory(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("starts 50 containers")
	}
	var pids []int
	var ctrs []*ctr
	for i := 0; i < idleShims; i++ {
		c := newCtr(t, []string{"sleep", "100000"})
		c.start()
		pid, err := shim.Pid(c.sdir)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
		ctrs = append(ctrs, c)
	}
	var total, rss, anon, threads int
	for _, pid := range pids {
		m := smapsRollup(t, pid)
		total += m["Pss"]
		rss += m["Rss"]
		anon += m["Pss_Anon"]
		threads += threadCount(t, pid)
	}
	n := len(pids)
	avg := total / n
	t.Logf("%d idle monitors: PSS %d KiB each (anon %d KiB, file %d KiB), RSS %d KiB each, %.1f threads each, total PSS %d KiB",
		n, avg, anon/n, (total-anon)/n, rss/n, float64(threads)/float64(n), total)
	if avg > maxIdlePSS {
		t.Errorf("idle monitor PSS = %d KiB, want at most %d KiB", avg, maxIdlePSS)
	}
	for _, c := range ctrs {
		if out, err := c.rt("kill", c.id, "KILL"); err != nil {
			t.Errorf("runtime kill %s: %v: %s", c.id, err, out)
		}
	}
	for _, c := range ctrs {
		if e := c.waitGone(); e.ExitCode != 137 {
			t.Errorf("%s exit code = %d, want 137", c.id, e.ExitCode)
		}
	}
}

// smapsRollup reads /proc/PID/smaps_rollup in KiB by field.
func smapsRollup(t *testing.T, pid int) map[string]int {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[2] == "kB" {
			n, _ := strconv.Atoi(fields[1])
			m[strings.TrimSuffix(fields[0], ":")] = n
		}
	}
	return m
}

func threadCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
