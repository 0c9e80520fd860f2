// Package reference parses and normalizes image references the way Docker
// does: "busybox" is docker.io/library/busybox:latest, "localhost:5000/x/y:t"
// keeps its registry, and a reference may carry a tag, a digest or both.
//
// The grammar (Docker's distribution/reference):
//
//	reference       := name [ ":" tag ] [ "@" digest ]
//	name            := [domain '/'] remote-name
//	domain          := host [':' port-number]
//	host            := domain-name | IPv4address | '[' IPv6address ']'
//	domain-name     := domain-component ['.' domain-component]*
//	domain-component:= /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//	remote-name     := path-component ['/' path-component]*
//	path-component  := alpha-numeric [separator alpha-numeric]*
//	alpha-numeric   := /[a-z0-9]+/
//	separator       := /[_.]|__|[-]+/
//	tag             := /[\w][\w.-]{0,127}/
//	digest          := algorithm ":" hex   (sha256: 64 lower-case hex digits)
//
// Normalization: a first path component without '.' or ':' that is not
// "localhost" (and is lower case) is not a registry, so the domain becomes
// docker.io; a single-component name on docker.io gets "library/";
// index.docker.io is docker.io. Familiar strips both again for display.
package reference

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// DefaultDomain is the registry of names that do not name one.
const DefaultDomain = "docker.io"

// DefaultTag is the tag of references that have neither tag nor digest.
const DefaultTag = "latest"

const (
	legacyDomain  = "index.docker.io"
	officialRepo  = "library"
	maxNameLength = 255
)

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("invalid reference format")

var (
	alnum         = `[a-z0-9]+`
	separator     = `(?:[_.]|__|[-]+)`
	pathComponent = alnum + `(?:` + separator + alnum + `)*`
	domainComp    = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	domainName    = domainComp + `(?:\.` + domainComp + `)*`
	ipv6          = `\[(?:[a-fA-F0-9:]+)\]`
	host          = `(?:` + domainName + `|` + ipv6 + `)`
	domain        = host + `(?::[0-9]+)?`
	tagPat        = `[\w][\w.-]{0,127}`
	digestPat     = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`
	remoteName    = pathComponent + `(?:/` + pathComponent + `)*`
	namePat       = `(?:` + domain + `/)?` + remoteName
	// The expressions define the grammar; match.go matches it by hand. They
	// are compiled on first use (errors, tests): every berth command pays
	// its package initialisation, and compiling these takes milliseconds.
	referenceRegex = lazy(`^(` + namePat + `)(?::(` + tagPat + `))?(?:@(` + digestPat + `))?$`)
	domainRegex    = lazy(`^` + domain + `$`)
	remoteRegex    = lazy(`^` + remoteName + `$`)
	tagRegex       = lazy(`^` + tagPat + `$`)
)

func lazy(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// isHex64 reports whether s is 64 lower-case hex digits.
func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Reference is a parsed, normalized image reference. The zero value is not
// valid; make one with Parse.
type Reference struct {
	// Domain is the registry host (and port): "docker.io", "localhost:5000".
	Domain string
	// Path is the repository path inside the registry: "library/busybox".
	Path string
	// Tag is "" when the reference has none.
	Tag string
	// Digest is "" or "algorithm:hex".
	Digest string
}

// Parse parses s as Docker does for user input (ParseNormalizedNamed): short
// names are completed with docker.io and library/. It does not add a tag; use
// WithDefaultTag for that.
func Parse(s string) (Reference, error) {
	if s == "" {
		return Reference{}, fmt.Errorf("%w: reference is empty", ErrInvalid)
	}
	if isHex64(s) {
		return Reference{}, fmt.Errorf("%w: invalid repository name (%s), cannot specify 64-byte hexadecimal strings", ErrInvalid, s)
	}
	dom, rest := splitDomain(s)
	remote := rest
	if i := strings.IndexRune(rest, ':'); i >= 0 {
		remote = rest[:i]
	}
	if strings.ToLower(remote) != remote {
		return Reference{}, fmt.Errorf("%w: repository name (%s) must be lowercase", ErrInvalid, remote)
	}
	r, err := ParseFull(dom + "/" + rest)
	if err != nil {
		return Reference{}, err
	}
	return r, nil
}

// ParseFull parses a fully qualified reference (domain/path[:tag][@digest])
// without any normalization beyond index.docker.io -> docker.io.
func ParseFull(s string) (Reference, error) {
	name, tag, dgst, ok := matchReference(s)
	if !ok {
		// The grammar's definition decides (and explains).
		if m := referenceRegex().FindStringSubmatch(s); m != nil {
			name, tag, dgst, ok = m[1], m[2], m[3], true
		}
	}
	if !ok {
		if s == "" {
			return Reference{}, fmt.Errorf("%w: reference is empty", ErrInvalid)
		}
		if referenceRegex().MatchString(strings.ToLower(s)) {
			return Reference{}, fmt.Errorf("%w: repository name must be lowercase", ErrInvalid)
		}
		return Reference{}, fmt.Errorf("%w: %q: %s", ErrInvalid, s, explain(s))
	}
	if len(name) > maxNameLength {
		return Reference{}, fmt.Errorf("%w: repository name must not be more than %d characters", ErrInvalid, maxNameLength)
	}
	var r Reference
	i := strings.IndexRune(name, '/')
	if i < 0 || !validDomain(name[:i]) {
		return Reference{}, fmt.Errorf("%w: invalid registry domain %q in %q", ErrInvalid, name[:max(i, 0)], s)
	}
	r.Domain, r.Path = name[:i], name[i+1:]
	if r.Domain == legacyDomain {
		r.Domain = DefaultDomain
	}
	r.Tag = tag
	if dgst != "" {
		if err := ValidateDigest(dgst); err != nil {
			return Reference{}, err
		}
		r.Digest = dgst
	}
	return r, nil
}

// splitDomain separates the registry domain from the rest, Docker's way.
func splitDomain(name string) (dom, rest string) {
	i := strings.IndexRune(name, '/')
	if i == -1 || (!strings.ContainsAny(name[:i], ".:") && name[:i] != "localhost" && strings.ToLower(name[:i]) == name[:i]) {
		dom, rest = DefaultDomain, name
	} else {
		dom, rest = name[:i], name[i+1:]
	}
	if dom == legacyDomain {
		dom = DefaultDomain
	}
	if dom == DefaultDomain && !strings.ContainsRune(rest, '/') {
		rest = officialRepo + "/" + rest
	}
	return dom, rest
}

// explain names the part of a reference that does not match the grammar.
func explain(s string) string {
	name := s
	var tag, dgst string
	if i := strings.IndexRune(name, '@'); i >= 0 {
		name, dgst = name[:i], name[i+1:]
		if dgst == "" {
			return "digest is empty"
		}
		if err := ValidateDigest(dgst); err != nil {
			return err.Error()
		}
	}
	if i := strings.LastIndex(name, ":"); i >= 0 && !strings.Contains(name[i:], "/") {
		name, tag = name[:i], name[i+1:]
		if !tagRegex().MatchString(tag) {
			return fmt.Sprintf("invalid tag %q", tag)
		}
	}
	parts := strings.Split(name, "/")
	if len(parts) < 2 {
		return "repository name must have at least one component"
	}
	if !domainRegex().MatchString(parts[0]) {
		return fmt.Sprintf("invalid registry domain %q", parts[0])
	}
	if !remoteRegex().MatchString(strings.Join(parts[1:], "/")) {
		return fmt.Sprintf("invalid repository name %q", strings.Join(parts[1:], "/"))
	}
	return "does not match the reference grammar"
}

// ValidateDigest checks "algorithm:hex"; for sha256 the hex must be 64 lower-case digits.
func ValidateDigest(d string) error {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || alg == "" || hex == "" {
		return fmt.Errorf("%w: invalid digest %q: want algorithm:hex", ErrInvalid, d)
	}
	if alg == "sha256" && !isHex64(hex) {
		return fmt.Errorf("%w: invalid digest %q: sha256 needs 64 lower-case hex digits", ErrInvalid, d)
	}
	if alg != "sha256" && alg != "sha512" && alg != "sha384" {
		return fmt.Errorf("%w: invalid digest %q: unsupported algorithm %q", ErrInvalid, d, alg)
	}
	return nil
}

// Name is the full repository name: "docker.io/library/busybox".
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String is the fully qualified reference: "docker.io/library/busybox:latest".
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// FamiliarName is the repository name as Docker shows it: "busybox",
// "someone/app", "localhost:5000/x/y".
func (r Reference) FamiliarName() string {
	if r.Domain != DefaultDomain {
		return r.Name()
	}
	if p, ok := strings.CutPrefix(r.Path, officialRepo+"/"); ok && !strings.Contains(p, "/") {
		return p
	}
	return r.Path
}

// Familiar is the reference as Docker shows it: "busybox:latest",
// "localhost:5000/x/y:t", "busybox@sha256:...".
func (r Reference) Familiar() string {
	s := r.FamiliarName()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// WithDefaultTag adds ":latest" to a reference with neither tag nor digest.
func (r Reference) WithDefaultTag() Reference {
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	return r
}

// WithTag returns the repository with tag (and no digest).
func (r Reference) WithTag(tag string) (Reference, error) {
	if !validTag(tag) {
		return Reference{}, fmt.Errorf("%w: invalid tag %q", ErrInvalid, tag)
	}
	return Reference{Domain: r.Domain, Path: r.Path, Tag: tag}, nil
}

// WithDigest returns the repository with digest (and no tag).
func (r Reference) WithDigest(dgst string) (Reference, error) {
	if err := ValidateDigest(dgst); err != nil {
		return Reference{}, err
	}
	return Reference{Domain: r.Domain, Path: r.Path, Digest: dgst}, nil
}

// Repository is the reference without tag and digest.
func (r Reference) Repository() Reference { return Reference{Domain: r.Domain, Path: r.Path} }

// Identifier is the digest if any, else the tag (what a registry's manifests
// endpoint takes).
func (r Reference) Identifier() string {
	if r.Digest != "" {
		return r.Digest
	}
	return r.Tag
}

// IsLoopback tells whether the registry is on this host (localhost,
// 127.0.0.0/8 or ::1), where Docker speaks plain http.
func (r Reference) IsLoopback() bool { return IsLoopbackHost(r.Domain) }

// IsLoopbackHost is IsLoopback for a "host[:port]" string.
func IsLoopbackHost(domain string) bool {
	h := domain
	if strings.HasPrefix(h, "[") {
		if i := strings.Index(h, "]"); i > 0 {
			h = h[1:i]
		}
	} else if i := strings.LastIndex(h, ":"); i >= 0 {
		h = h[:i]
	}
	return h == "localhost" || strings.HasSuffix(h, ".localhost") || strings.HasPrefix(h, "127.") || h == "::1"
}
