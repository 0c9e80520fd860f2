package protocol

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// The shim's messages are flat JSON objects. This file holds the little
// JSON the shim needs, written by hand so that the monitor does not link
// encoding/json (reflection, and its memory at start, in every container's
// monitor).

// ErrSyntax is wrapped by every decoding error of this package.
var ErrSyntax = errors.New("invalid JSON")

func syntaxError(what string) error {
	return &SyntaxError{Msg: what}
}

// SyntaxError describes malformed input; errors.Is(err, ErrSyntax) holds.
type SyntaxError struct{ Msg string }

func (e *SyntaxError) Error() string { return "invalid JSON: " + e.Msg }

// Is reports whether target is ErrSyntax.
func (e *SyntaxError) Is(target error) bool { return target == ErrSyntax }

const hex = "0123456789abcdef"

// AppendString appends s to dst as a JSON string, escaped as encoding/json
// escapes it (and as Docker's json-file driver does): quote, backslash and
// control characters, '<', '>' and '&' as \u escapes, U+2028 and U+2029,
// and each byte of invalid UTF-8 as U+FFFD.
func AppendString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
			}
			i++
			start = i
			continue
		}
		// A rune is at most 4 bytes: the conversion stays on the stack.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendBool appends the JSON literal of v.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, "true"...)
	}
	return append(dst, "false"...)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// DecodeObject calls fn for every member of the JSON object b, in order,
// with the member's name (unescaped) and its raw value (any JSON value,
// nested objects and arrays included, without surrounding space). Names
// may repeat; fn sees each. The name slice is only valid during the call.
func DecodeObject(b []byte, fn func(name, value []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return syntaxError("expected an object")
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		if skipSpace(b, i+1) != len(b) {
			return syntaxError("data after the object")
		}
		return nil
	}
	var scratch []byte
	for {
		if i >= len(b) || b[i] != '"' {
			return syntaxError("expected a member name")
		}
		end, err := scanString(b, i)
		if err != nil {
			return err
		}
		name := b[i+1 : end-1]
		for _, c := range name {
			if c == '\\' {
				if scratch, err = AppendUnquote(scratch[:0], b[i:end]); err != nil {
					return err
				}
				name = scratch
				break
			}
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return syntaxError("expected ':' after a member name")
		}
		i = skipSpace(b, i+1)
		vend, err := scanValue(b, i, 0)
		if err != nil {
			return err
		}
		if err := fn(name, b[i:vend]); err != nil {
			return err
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			return syntaxError("unterminated object")
		}
		if b[i] == '}' {
			if skipSpace(b, i+1) != len(b) {
				return syntaxError("data after the object")
			}
			return nil
		}
		if b[i] != ',' {
			return syntaxError("expected ',' or '}' in an object")
		}
		i = skipSpace(b, i+1)
	}
}

// maxDepth bounds the nesting of values the scanner follows.
const maxDepth = 32

// scanValue returns the index just past the JSON value starting at b[i].
func scanValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, syntaxError("expected a value")
	}
	if depth > maxDepth {
		return 0, syntaxError("values nested too deep")
	}
	switch c := b[i]; {
	case c == '"':
		return scanString(b, i)
	case c == '{' || c == '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == closing {
			return i + 1, nil
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return 0, syntaxError("expected a member name")
				}
				end, err := scanString(b, i)
				if err != nil {
					return 0, err
				}
				i = skipSpace(b, end)
				if i >= len(b) || b[i] != ':' {
					return 0, syntaxError("expected ':' after a member name")
				}
				i = skipSpace(b, i+1)
			}
			end, err := scanValue(b, i, depth+1)
			if err != nil {
				return 0, err
			}
			i = skipSpace(b, end)
			if i >= len(b) {
				return 0, syntaxError("unterminated object or array")
			}
			if b[i] == closing {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, syntaxError("expected ',' in an object or array")
			}
			i = skipSpace(b, i+1)
		}
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		j := i + 1
		for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
			j++
		}
		return j, nil
	default:
		return 0, syntaxError("unexpected character " + strconv.QuoteRune(rune(c)))
	}
}

func scanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, syntaxError("invalid literal")
	}
	return i + len(lit), nil
}

// scanString returns the index just past the JSON string starting at b[i].
func scanString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		default:
			if b[j] < 0x20 {
				return 0, syntaxError("control character in a string")
			}
		}
	}
	return 0, syntaxError("unterminated string")
}

// AppendUnquote appends the content of the JSON string literal s (with its
// quotes) to dst, escapes resolved.
func AppendUnquote(dst, s []byte) ([]byte, error) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return dst, syntaxError("expected a string")
	}
	s = s[1 : len(s)-1]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		if i >= len(s) {
			return dst, syntaxError("unterminated escape")
		}
		switch s[i] {
		case '"', '\\', '/':
			dst = append(dst, s[i])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(s[i+1:])
			if !ok {
				return dst, syntaxError("invalid \\u escape")
			}
			i += 4
			if r >= 0xd800 && r < 0xdc00 && i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
				if r2, ok := hex4(s[i+3:]); ok && r2 >= 0xdc00 && r2 < 0xe000 {
					r = (r-0xd800)<<10 | (r2 - 0xdc00) + 0x10000
					i += 6
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, syntaxError("invalid escape")
		}
	}
	return dst, nil
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// String returns the JSON string value v unescaped.
func String(v []byte) (string, error) {
	b, err := AppendUnquote(nil, v)
	return string(b), err
}

// Bool returns the JSON boolean v.
func Bool(v []byte) (bool, error) {
	switch string(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, syntaxError("expected true or false")
}

// Int returns the JSON number v, which must be an integer.
func Int(v []byte) (int, error) {
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, syntaxError("expected an integer")
	}
	return n, nil
}
