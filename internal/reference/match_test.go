package reference

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// pieces are fragments of references, good and bad, that random strings
// are made of.
var pieces = []string{
	"a", "b", "z", "0", "9", "A", "Z", "ab", "a0", ".", "_", "__", "___", "-", "--", ":", "::", "/", "//", "@",
	"[", "]", "[::1]", "localhost", "docker.io", "5000", ":5000", "sha256", "sha256:",
	"7173b809ca12ec5dee4506cd86be934c4596dd234ee82c0662eac04a8c2c71dc", "0123456789abcdef0123456789ABCDEF",
	"v1.2-rc_3", "+", "é", " ", strings.Repeat("t", 127), strings.Repeat("t", 128),
}

func randomString(r *rand.Rand) string {
	var b strings.Builder
	for range 1 + r.IntN(9) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// The hand matchers agree with the grammar's regular expressions, on what
// matches and on how a reference splits, for 300 000 mostly nasty
// strings and the test table's references.
func TestMatchersAgreeWithGrammar(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	check := func(s string) {
		m := referenceRegex().FindStringSubmatch(s)
		name, tag, dgst, ok := matchReference(s)
		if ok != (m != nil) || ok && (name != m[1] || tag != m[2] || dgst != m[3]) {
			t.Fatalf("matchReference(%q) = %q %q %q %v; the grammar says %q", s, name, tag, dgst, ok, m)
		}
		if got, want := validDomain(s), domainRegex().MatchString(s); got != want {
			t.Fatalf("validDomain(%q) = %v, want %v", s, got, want)
		}
		if got, want := validRemote(s), remoteRegex().MatchString(s); got != want {
			t.Fatalf("validRemote(%q) = %v, want %v", s, got, want)
		}
		if got, want := validTag(s), tagRegex().MatchString(s); got != want {
			t.Fatalf("validTag(%q) = %v, want %v", s, got, want)
		}
	}
	for _, s := range []string{"", "docker.io/library/busybox:latest", "localhost:5000/x/y:t", "[::1]:5000/x@sha256:" + strings.Repeat("a", 64),
		"a/b:c:d", "host:5000", "a__b/c", "a___b/c", "a-.b/c", "A/b", "a/B", "[]:1/a", "[::1]/a", "a:/b", "a:1x/b", "x/y@sha256:abc"} {
		check(s)
	}
	matched := 0
	for range 300_000 {
		s := randomString(r)
		check(s)
		if referenceRegex().MatchString(s) {
			matched++
		}
	}
	if matched < 3_000 {
		t.Fatalf("only %d of the random strings are references: the test proves little", matched)
	}
}
