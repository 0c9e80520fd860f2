package reference

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const dgst = "sha256:7173b809ca12ec5dee4506cd86be934c4596dd234ee82c0662eac04a8c2c71dc"
	tests := []struct {
		in                string
		full, familiar    string
		domain, path, tag string
		digest            string
	}{
		{"busybox", "docker.io/library/busybox", "busybox", "docker.io", "library/busybox", "", ""},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", "docker.io", "library/busybox", "1.36", ""},
		{"library/busybox", "docker.io/library/busybox", "busybox", "docker.io", "library/busybox", "", ""},
		{"docker.io/busybox", "docker.io/library/busybox", "busybox", "docker.io", "library/busybox", "", ""},
		{"index.docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "busybox:latest", "docker.io", "library/busybox", "latest", ""},
		{"someone/app:v1", "docker.io/someone/app:v1", "someone/app:v1", "docker.io", "someone/app", "v1", ""},
		{"localhost/app", "localhost/app", "localhost/app", "localhost", "app", "", ""},
		{"localhost:5000/x/y:t", "localhost:5000/x/y:t", "localhost:5000/x/y:t", "localhost:5000", "x/y", "t", ""},
		{"127.0.0.1:5000/a/b/c", "127.0.0.1:5000/a/b/c", "127.0.0.1:5000/a/b/c", "127.0.0.1:5000", "a/b/c", "", ""},
		{"[::1]:5000/x", "[::1]:5000/x", "[::1]:5000/x", "[::1]:5000", "x", "", ""},
		{"quay.io/org/img", "quay.io/org/img", "quay.io/org/img", "quay.io", "org/img", "", ""},
		{"busybox@" + dgst, "docker.io/library/busybox@" + dgst, "busybox@" + dgst, "docker.io", "library/busybox", "", dgst},
		{"busybox:1.36@" + dgst, "docker.io/library/busybox:1.36@" + dgst, "busybox:1.36@" + dgst, "docker.io", "library/busybox", "1.36", dgst},
		{"a_b__c-d---e/f.g", "docker.io/a_b__c-d---e/f.g", "a_b__c-d---e/f.g", "docker.io", "a_b__c-d---e/f.g", "", ""},
		{"localhost:5000/x/y@" + dgst, "localhost:5000/x/y@" + dgst, "localhost:5000/x/y@" + dgst, "localhost:5000", "x/y", "", dgst},
	}
	for _, tt := range tests {
		r, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q) error: %v", tt.in, err)
			continue
		}
		if got := r.String(); got != tt.full {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.full)
		}
		if got := r.Familiar(); got != tt.familiar {
			t.Errorf("Parse(%q).Familiar() = %q, want %q", tt.in, got, tt.familiar)
		}
		if r.Domain != tt.domain || r.Path != tt.path || r.Tag != tt.tag || r.Digest != tt.digest {
			t.Errorf("Parse(%q) = %+v, want domain %q path %q tag %q digest %q", tt.in, r, tt.domain, tt.path, tt.tag, tt.digest)
		}
		// The full form parses back to itself.
		back, err := ParseFull(r.String())
		if err != nil || back != r {
			t.Errorf("ParseFull(%q) = %+v, %v; want %+v", r.String(), back, err, r)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in      string
		wantMsg string
	}{
		{"", "reference is empty"},
		{"Busybox", "repository name (library/Busybox) must be lowercase"},
		{"someone/App:v1", "repository name (someone/App) must be lowercase"},
		{"busybox:", "invalid tag"},
		{"busybox:-bad", "invalid tag \"-bad\""},
		{"busybox@sha256:abc", "sha256 needs 64 lower-case hex digits"},
		{"busybox@", "digest is empty"},
		{"busy box", "invalid repository name"},
		{"localhost:5000/", "invalid repository name"},
		{"a//b", "invalid repository name"},
		{"-x", "invalid repository name"},
		{"a_b.c/d", "invalid registry domain \"a_b.c\""},
		{"7173b809ca12ec5dee4506cd86be934c4596dd234ee82c0662eac04a8c2c71dc", "cannot specify 64-byte hexadecimal strings"},
		{"x/" + strings.Repeat("a", 256), "must not be more than 255 characters"},
	}
	for _, tt := range tests {
		r, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) = %+v, want error containing %q", tt.in, r, tt.wantMsg)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) error %v is not ErrInvalid", tt.in, err)
		}
		if !strings.HasPrefix(err.Error(), "invalid reference format") || !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("Parse(%q) error = %q, want it to contain %q", tt.in, err, tt.wantMsg)
		}
	}
}

func TestWithDefaultTag(t *testing.T) {
	tests := []struct{ in, want string }{
		{"busybox", "busybox:latest"},
		{"busybox:1", "busybox:1"},
		{"busybox@sha256:7173b809ca12ec5dee4506cd86be934c4596dd234ee82c0662eac04a8c2c71dc", "busybox@sha256:7173b809ca12ec5dee4506cd86be934c4596dd234ee82c0662eac04a8c2c71dc"},
	}
	for _, tt := range tests {
		r, err := Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.WithDefaultTag().Familiar(); got != tt.want {
			t.Errorf("Parse(%q).WithDefaultTag() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIsLoopbackHost(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"localhost", true}, {"localhost:5000", true}, {"127.0.0.1:5000", true}, {"127.1.2.3", true},
		{"[::1]:5000", true}, {"registry.localhost:80", true},
		{"docker.io", false}, {"10.0.0.1:5000", false}, {"localhostx:1", false},
	}
	for _, tt := range tests {
		if got := IsLoopbackHost(tt.in); got != tt.want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
