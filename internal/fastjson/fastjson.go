// Package fastjson encodes and decodes berth's JSON records exactly as
// encoding/json does, without its first-use cost.
//
// encoding/json prepares a type the first time it meets it, and preparing a
// struct (to encode or, in Go 1.26, to decode) prepares the encoders of
// every type reachable from its fields, used or not. The OCI spec a
// container start writes reaches the whole runtime-spec (Windows, VM, z/OS,
// every resource and seccomp type): its first Marshal took 3.2 ms of a
// short-lived berth command, against 10 us for the encoding itself; the
// first decode of a container record 1.8 ms. Marshal and Decode walk the
// value with reflection and look at a type only when a value of it is
// there.
//
// Marshal handles what berth's records are made of: structs with json tags
// (omitempty included) and embedded structs, pointers, interfaces, slices,
// arrays, maps with string or TextMarshaler keys, strings, booleans,
// integers, and types with a MarshalJSON or MarshalText method (time.Time,
// netip.Addr). Anything else (floats, []byte, integer map keys, methods on
// the pointer only, ",string" or "omitzero" options, two fields of one
// name) is left to encoding/json for the whole value, so the result, and
// every error, is always encoding/json's. Decode and Unmarshal (decode.go)
// do the same the other way.
package fastjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Marshal returns the JSON encoding of v: what encoding/json.Marshal(v)
// returns.
func Marshal(v any) ([]byte, error) {
	b, err := appendValue(make([]byte, 0, 512), reflect.ValueOf(v))
	if err != nil {
		return json.Marshal(v)
	}
	return b, nil
}

// errFallback says a value needs encoding/json.
var errFallback = errors.New("fastjson: left to encoding/json")

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// typeInfo is what Marshal needs to know of a type, worked out once.
type typeInfo struct {
	fallback      bool // encoding/json's business
	marshaler     bool // has MarshalJSON
	textMarshaler bool // has MarshalText (and not MarshalJSON)
	fields        []field
}

// field is an encoded struct field.
type field struct {
	index     []int  // the path of field indexes (embedded structs first)
	key       []byte // `"name":`, escaped
	omitEmpty bool
}

var infos sync.Map // reflect.Type -> *typeInfo

func infoOf(t reflect.Type) *typeInfo {
	if ti, ok := infos.Load(t); ok {
		return ti.(*typeInfo)
	}
	ti := &typeInfo{}
	// encoding/json's order of precedence; a method on the pointer only
	// (used when the value is addressable) is left to it.
	addr := func(m reflect.Type) bool { return addrOnly(t, m) }
	switch {
	case t.Kind() == reflect.Interface:
		ti.fallback = t.Implements(marshalerType) || t.Implements(textMarshalerType)
	case addr(marshalerType):
		ti.fallback = true
	case t.Implements(marshalerType):
		ti.marshaler = true
	case addr(textMarshalerType):
		ti.fallback = true
	case t.Implements(textMarshalerType):
		ti.textMarshaler = true
	}
	custom := ti.marshaler || ti.textMarshaler
	switch t.Kind() {
	case reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128,
		reflect.Chan, reflect.Func, reflect.UnsafePointer:
		ti.fallback = ti.fallback || !custom
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			ti.fallback = ti.fallback || !custom // base64
		}
	case reflect.Map:
		if k := t.Key(); k.Kind() != reflect.String && !(k.Implements(textMarshalerType) && !addrOnly(k, textMarshalerType)) {
			ti.fallback = ti.fallback || !custom
		}
	case reflect.Struct:
		if !custom && !ti.fallback {
			ti.fields, ti.fallback = structFields(t)
		}
	}
	actual, _ := infos.LoadOrStore(t, ti)
	return actual.(*typeInfo)
}

// addrOnly reports whether only *t, not t, has the methods of m.
func addrOnly(t, m reflect.Type) bool {
	return t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(m) && !t.Implements(m)
}

// structFields lists t's encoded fields in encoding/json's order (the
// fields of an untagged embedded struct in its place), or says t needs
// encoding/json: options or names this package does not handle, tagged or
// non-struct embedded fields, or two fields of one name (encoding/json's
// rules then pick one or none).
func structFields(t reflect.Type) ([]field, bool) {
	var fields []field
	seen := map[string]bool{}
	var walk func(t reflect.Type, path []int) bool
	walk = func(t reflect.Type, path []int) bool {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			index := append(path[:len(path):len(path)], i)
			if sf.Anonymous {
				ft := sf.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if !sf.IsExported() && ft.Kind() != reflect.Struct {
					continue
				}
				if tag != "" || ft.Kind() != reflect.Struct || len(index) > 8 {
					return true
				}
				if walk(ft, index) {
					return true
				}
				continue
			}
			if !sf.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if !validName(name) {
				return true
			}
			if name == "" {
				name = sf.Name
			}
			omitEmpty := false
			for opt := range strings.SplitSeq(opts, ",") {
				switch opt {
				case "":
				case "omitempty":
					omitEmpty = true
				default: // string, omitzero, ...
					return true
				}
			}
			if seen[name] {
				return true
			}
			seen[name] = true
			key := appendString(nil, name)
			fields = append(fields, field{index: index, key: append(key, ':'), omitEmpty: omitEmpty})
		}
		return false
	}
	if walk(t, nil) {
		return nil, true
	}
	return fields, false
}

// validName accepts the tag names encoding/json takes as they are (and "").
func validName(s string) bool {
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return true
}

func appendValue(b []byte, v reflect.Value) ([]byte, error) {
	if !v.IsValid() {
		return append(b, "null"...), nil
	}
	ti := infoOf(v.Type())
	if ti.fallback {
		return nil, errFallback
	}
	if ti.marshaler {
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return append(b, "null"...), nil
		}
		out, err := v.Interface().(json.Marshaler).MarshalJSON()
		if err != nil {
			return nil, err
		}
		var compact, escaped bytes.Buffer
		if err := json.Compact(&compact, out); err != nil {
			return nil, err
		}
		json.HTMLEscape(&escaped, compact.Bytes())
		return append(b, escaped.Bytes()...), nil
	}
	if ti.textMarshaler {
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return append(b, "null"...), nil
		}
		text, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return nil, err
		}
		return appendString(b, string(text)), nil
	}
	switch v.Kind() {
	case reflect.Bool:
		return strconv.AppendBool(b, v.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case reflect.String:
		return appendString(b, v.String()), nil
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		return appendValue(b, v.Elem())
	case reflect.Struct:
		b = append(b, '{')
		first := true
		for _, f := range ti.fields {
			fv, ok := fieldByIndex(v, f.index)
			if !ok || f.omitEmpty && isEmpty(fv) {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, f.key...)
			var err error
			if b, err = appendValue(b, fv); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case reflect.Map:
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		type entry struct {
			key string
			v   reflect.Value
		}
		entries := make([]entry, 0, v.Len())
		for it := v.MapRange(); it.Next(); {
			k, err := keyName(it.Key())
			if err != nil {
				return nil, err
			}
			entries = append(entries, entry{k, it.Value()})
		}
		slices.SortFunc(entries, func(x, y entry) int { return strings.Compare(x.key, y.key) })
		b = append(b, '{')
		for i, e := range entries {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendString(b, e.key), ':')
			var err error
			if b, err = appendValue(b, e.v); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case reflect.Slice:
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		fallthrough
	case reflect.Array:
		b = append(b, '[')
		for i := range v.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendValue(b, v.Index(i)); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	return nil, errFallback
}

// keyName is the JSON name of a map key, as encoding/json makes it.
func keyName(k reflect.Value) (string, error) {
	if k.Kind() == reflect.String {
		return k.String(), nil
	}
	if k.Kind() == reflect.Pointer && k.IsNil() {
		return "", nil
	}
	text, err := k.Interface().(encoding.TextMarshaler).MarshalText()
	return string(text), err
}

// fieldByIndex is v's field at the path index; not ok when the path goes
// through a nil embedded pointer (encoding/json then leaves the field out).
func fieldByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	for j, i := range index {
		if j > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(i)
	}
	return v, true
}

// isEmpty is encoding/json's test for omitempty.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64,
		reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json writes it:
// HTML characters, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
