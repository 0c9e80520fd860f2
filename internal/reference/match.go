package reference

import "strings"

// The grammar of the package comment, matched by hand. Compiling the
// regular expressions took ~1 ms of every berth command that names an
// image (a short-lived process pays it each time); they stay the
// definition (match_test.go checks the two agree) and produce the error
// messages.

// matchReference splits s like referenceRegex's submatches; ok only when
// s matches the whole grammar.
func matchReference(s string) (name, tag, dgst string, ok bool) {
	rest := s
	if i := strings.IndexByte(s, '@'); i >= 0 {
		rest, dgst = s[:i], s[i+1:]
		if !validDigestPattern(dgst) {
			return "", "", "", false
		}
	}
	name = rest
	// A tag is after the last ':' that follows the last '/' (a port's ':'
	// comes before a '/'; nothing else in a name has one).
	if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
		name, tag = rest[:i], rest[i+1:]
		if !validTag(tag) {
			return "", "", "", false
		}
	}
	if !validName(name) {
		return "", "", "", false
	}
	return name, tag, dgst, true
}

// validName: [domain '/'] remote-name.
func validName(s string) bool {
	if i := strings.IndexByte(s, '/'); i >= 0 && validDomain(s[:i]) && validRemote(s[i+1:]) {
		return true
	}
	return validRemote(s)
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isAlnum(c byte) bool { return isLowerAlnum(c) || 'A' <= c && c <= 'Z' }

func isWord(c byte) bool { return isAlnum(c) || c == '_' }

// validRemote: path-component ['/' path-component]*.
func validRemote(s string) bool {
	for {
		i := strings.IndexByte(s, '/')
		if i < 0 {
			return validPathComponent(s)
		}
		if !validPathComponent(s[:i]) {
			return false
		}
		s = s[i+1:]
	}
}

// validPathComponent: alpha-numeric [separator alpha-numeric]*, where a
// separator is '.', '_', "__" or one or more '-'.
func validPathComponent(s string) bool {
	i := 0
	for {
		start := i
		for i < len(s) && isLowerAlnum(s[i]) {
			i++
		}
		if i == start {
			return false
		}
		if i == len(s) {
			return true
		}
		switch s[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(s) && s[i] == '_' {
				i++
			}
		case '-':
			for i < len(s) && s[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

// validDomain: host [':' port-number], host a domain name or '[' IPv6 ']'.
func validDomain(s string) bool {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		i := strings.IndexByte(s, ']')
		if i < 0 {
			return false
		}
		host, port = s[:i+1], s[i+1:]
		if len(host) == 2 || strings.Trim(host[1:len(host)-1], "0123456789abcdefABCDEF:") != "" {
			return false
		}
	} else {
		if i := strings.IndexByte(s, ':'); i >= 0 {
			host, port = s[:i], s[i:]
		}
		for c := range strings.SplitSeq(host, ".") {
			if !validDomainComponent(c) {
				return false
			}
		}
	}
	if port != "" {
		if port[0] != ':' || len(port) == 1 || strings.Trim(port[1:], "0123456789") != "" {
			return false
		}
	}
	return true
}

// validDomainComponent: [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9].
func validDomainComponent(s string) bool {
	if s == "" || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if !isAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// validTag: [\w][\w.-]{0,127}.
func validTag(s string) bool {
	if s == "" || len(s) > 128 || !isWord(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isWord(s[i]) && s[i] != '.' && s[i] != '-' {
			return false
		}
	}
	return true
}

// validDigestPattern: algorithm ':' at least 32 hex digits, the algorithm
// [A-Za-z][A-Za-z0-9]* joined by [-_+.].
func validDigestPattern(s string) bool {
	alg, hex, ok := strings.Cut(s, ":")
	if !ok || len(hex) < 32 || strings.Trim(hex, "0123456789abcdefABCDEF") != "" {
		return false
	}
	for {
		if alg == "" || !('a' <= alg[0] && alg[0] <= 'z' || 'A' <= alg[0] && alg[0] <= 'Z') {
			return false
		}
		i := 1
		for i < len(alg) && isAlnum(alg[i]) {
			i++
		}
		if i == len(alg) {
			return true
		}
		if !strings.ContainsRune("-_+.", rune(alg[i])) {
			return false
		}
		alg = alg[i+1:]
	}
}
