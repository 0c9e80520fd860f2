package cgroups

import "testing"

func TestCheckPagesize(t *testing.T) {
	for s, ok := range map[string]bool{
		"2MB": true, "1GB": true, "64KB": true, "16GB": true,
		"": false, "MB": false, "2mb": false, "02MB": false, "2TB": false, "2M": false, "1.5GB": false, "2 MB": false,
	} {
		if err := checkPagesize(s); (err == nil) != ok {
			t.Errorf("checkPagesize(%q) = %v, want ok=%v", s, err, ok)
		}
	}
}
