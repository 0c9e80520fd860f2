package registry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestKeychainStoreLookupErase(t *testing.T) {
	dir := t.TempDir()
	// A config with other settings, which must survive our writes.
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"psFormat": "table {{.ID}}", "auths": {"https://other.example/v1/": {"auth": "dTpw"}}}`), 0o644)
	k := NewKeychain(dir)
	tests := []struct{ domain, key string }{
		{"localhost:5000", "localhost:5000"},
		{"docker.io", "https://index.docker.io/v1/"},
	}
	for _, tt := range tests {
		if err := k.Store(tt.domain, "alice", "pw:with:colons"); err != nil {
			t.Fatal(err)
		}
		ac, err := k.Lookup(tt.domain)
		if err != nil || ac.Username != "alice" || ac.Password != "pw:with:colons" {
			t.Errorf("Lookup(%s) = %+v, %v", tt.domain, ac, err)
		}
		raw, _ := os.ReadFile(k.Path())
		var cf struct {
			PsFormat string                       `json:"psFormat"`
			Auths    map[string]map[string]string `json:"auths"`
		}
		if err := json.Unmarshal(raw, &cf); err != nil {
			t.Fatal(err)
		}
		if cf.PsFormat != "table {{.ID}}" || cf.Auths["https://other.example/v1/"]["auth"] != "dTpw" {
			t.Errorf("other settings lost: %s", raw)
		}
		if got := cf.Auths[tt.key]["auth"]; got != "YWxpY2U6cHc6d2l0aDpjb2xvbnM=" {
			t.Errorf("auths[%q].auth = %q, want base64 of alice:pw:with:colons", tt.key, got)
		}
		fi, _ := os.Stat(k.Path())
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("config.json mode %v, want 0600", fi.Mode().Perm())
		}
	}
	// Resolve through go-containerregistry's resource interface
	reg, _ := name.NewRegistry("other.example")
	a, err := k.Resolve(reg)
	if err != nil {
		t.Fatal(err)
	}
	ac, _ := a.Authorization()
	if ac.Username != "u" || ac.Password != "p" {
		t.Errorf("Resolve(other.example) = %+v, want u/p from an https://...v1/ key", ac)
	}
	reg, _ = name.NewRegistry("unknown.example")
	if a, _ := k.Resolve(reg); a != authn.Anonymous {
		t.Errorf("Resolve(unknown) = %v, want anonymous", a)
	}
	if err := k.Erase("localhost:5000"); err != nil {
		t.Fatal(err)
	}
	if ac, _ := k.Lookup("localhost:5000"); ac.Username != "" {
		t.Errorf("credentials still there after Erase: %+v", ac)
	}
	if err := k.Erase("localhost:5000"); err == nil || !strings.Contains(err.Error(), "not logged in to localhost:5000") {
		t.Errorf("second Erase = %v", err)
	}
}

func TestKeychainCredentialHelper(t *testing.T) {
	dir := t.TempDir()
	bin := t.TempDir()
	helper := "#!/bin/sh\nread server\nif [ \"$server\" = helped.example ]; then echo '{\"Username\":\"bob\",\"Secret\":\"tok\"}'; else echo 'credentials not found in native keychain'; exit 1; fi\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-fake"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"credHelpers": {"helped.example": "fake", "missing.example": "fake"}}`), 0o600)
	k := NewKeychain(dir)
	ac, err := k.Lookup("helped.example")
	if err != nil || ac.Username != "bob" || ac.Password != "tok" {
		t.Errorf("Lookup via helper = %+v, %v", ac, err)
	}
	ac, err = k.Lookup("missing.example")
	if err != nil || ac != (authn.AuthConfig{}) {
		t.Errorf("Lookup of a server the helper does not know = %+v, %v; want anonymous", ac, err)
	}
}
