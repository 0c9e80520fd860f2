package registry

import "testing"

// TestIsInsecure: loopback registries are spoken to over http, others only
// when listed (--insecure-registry), by the exact host[:port].
func TestIsInsecure(t *testing.T) {
	c := New(Options{Insecure: []string{"myreg.test:5000", "plain.test"}, ConfigDir: t.TempDir()})
	for domain, want := range map[string]bool{
		"localhost":       true,
		"localhost:5000":  true,
		"127.0.0.1:5000":  true,
		"127.1.2.3":       true,
		"[::1]:5000":      true,
		"myreg.test:5000": true,
		"plain.test":      true,
		"myreg.test":      false, // another port
		"myreg.test:5001": false,
		"plain.test:443":  false,
		"docker.io":       false,
		"10.0.0.1:5000":   false,
	} {
		if got := c.IsInsecure(domain); got != want {
			t.Errorf("IsInsecure(%q) = %v, want %v", domain, got, want)
		}
	}
}
