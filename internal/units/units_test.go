package units

import "testing"

func TestRAMInBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1024", 1024, true},
		{"64m", 64 << 20, true},
		{"64M", 64 << 20, true},
		{"1.5g", 3 << 29, true},
		{"512KiB", 512 << 10, true},
		{"2gb", 2 << 30, true},
		{"10b", 10, true},
		{"-1", -1, true},
		{"", 0, false},
		{"m", 0, false},
		{"12x", 0, false},
		{"-5m", 0, false},
		{"1..2m", 0, false},
	}
	for _, tt := range tests {
		got, err := RAMInBytes(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("RAMInBytes(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
