package cgroups

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fixtureV1(ctrl string) string {
	dir := filepath.Join("testdata", "stats", "v1", ctrl)
	if _, err := os.Stat(dir); err != nil {
		return ""
	}
	return dir
}

func TestStatsFromFixtures(t *testing.T) {
	for _, tc := range []struct {
		name string
		read func() (*Stats, error)
	}{
		{"v1", func() (*Stats, error) { return statsV1(fixtureV1) }},
		{"v2", func() (*Stats, error) { return statsV2(filepath.Join("testdata", "stats", "v2")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.read()
			if err != nil {
				t.Fatal(err)
			}
			// The counters both versions report the same way.
			for _, c := range []struct {
				what      string
				got, want uint64
			}{
				{"cpu total ns", s.CPU.Usage.Total, 15e9},
				{"cpu user ns", s.CPU.Usage.User, 12e9},
				{"cpu kernel ns", s.CPU.Usage.Kernel, 3e9},
				{"throttled periods", s.CPU.Throttling.ThrottledPeriods, 7},
				{"throttled ns", s.CPU.Throttling.ThrottledTime, 350e6},
				{"memory usage", s.Memory.Usage.Usage, 24576000},
				{"memory limit", s.Memory.Usage.Limit, 32 << 20},
				{"memory peak", s.Memory.Usage.Max, 32 << 20},
				{"memory failcnt", s.Memory.Usage.Failcnt, 12},
				{"memory cache", s.Memory.Cache, 4096000},
				{"memory+swap usage", s.Memory.Swap.Usage, 24576000},
				{"memory+swap limit", s.Memory.Swap.Limit, 32 << 20},
				{"oom kills", s.Memory.EventCount.OOMKill, 1},
				{"pids", s.Pids.Current, 3},
				{"hugetlb 2MB usage", s.Hugetlb["2MB"].Usage, 2 << 20},
				{"hugetlb 2MB failcnt", s.Hugetlb["2MB"].Failcnt, 2},
			} {
				if c.got != c.want {
					t.Errorf("%s = %d, want %d", c.what, c.got, c.want)
				}
			}
			if n := len(s.Hugetlb); n != 1 {
				t.Errorf("hugetlb sizes = %v, want only 2MB (rsvd files are not sizes)", s.Hugetlb)
			}
			got, err := json.MarshalIndent(s, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "stats-"+tc.name+".golden.json", string(got)+"\n")
		})
	}
}

// The JSON names are runc's, which containerd decodes.
func TestStatsJSONNames(t *testing.T) {
	s := &Stats{CPU: CPU{Usage: CPUUsage{Total: 1, PercpuKernel: []uint64{1}}, Throttling: Throttling{ThrottledPeriods: 1}}}
	s.Memory.Usage.Failcnt = 1
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"cpu":{"usage":{"total":1,"percpu_kernel":[1]`, `"throttling":{"throttledPeriods":1}`, `"memory":{"usage":{"limit":0,"failcnt":1}`, `"pids":{}`, `"hugetlb":null`} {
		if !strings.Contains(string(data), name) {
			t.Errorf("json %s does not contain %s", data, name)
		}
	}
}

func TestStatsErrors(t *testing.T) {
	if _, err := statsV2(filepath.Join(t.TempDir(), "gone")); err == nil {
		t.Error("statsV2 of a missing cgroup succeeded, want an error")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "memory.current"), []byte("lots\n"), 0o644)
	if _, err := statsV2(dir); err == nil || !strings.Contains(err.Error(), "memory.current") {
		t.Errorf("statsV2 with a garbled memory.current = %v, want an error naming the file", err)
	}
}

func TestParseKeyValues(t *testing.T) {
	kv, err := parseKeyValues("populated 1\nfrozen 0\nmax max\n")
	if err != nil || kv["populated"] != 1 || kv["frozen"] != 0 || kv["max"] != 1<<64-1 {
		t.Errorf("parseKeyValues = %v, %v", kv, err)
	}
	if _, err := parseKeyValues("a b c\n"); err == nil {
		t.Error("parseKeyValues(\"a b c\") succeeded, want an error")
	}
}
