package runtime

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/ocispec"
)

// loadSpec reads a bundle's config.json like ocispec.LoadRaw, faster.
//
// encoding/json prepares a type the first time it meets it, and preparing a
// struct prepares the encoders of every type reachable from it: the first
// Unmarshal into a specs.Spec walks the whole runtime-spec (Windows, VM,
// z/OS, every resource and seccomp type) and took ~4 ms of `create`, a
// tenth of a `run`. decodeSpec decodes into the same types but prepares only
// the struct types the document contains. It handles what config files are
// made of; on anything else, and on every error, it gives up and the file
// is decoded again by encoding/json, so the result and the error messages
// are encoding/json's.
func loadSpec(bundle string) (*specs.Spec, []byte, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err == nil {
		var s specs.Spec
		if decodeSpec(b, &s) == nil {
			return &s, b, nil
		}
	}
	return ocispec.LoadRaw(bundle)
}

// errSpecFallback says decodeSpec met something it leaves to encoding/json.
var errSpecFallback = errors.New("not handled by the fast decoder")

// decodeSpec decodes the JSON document b into v (a pointer) with the
// semantics of encoding/json.Unmarshal for the kinds of values it handles,
// and returns an error (v then partly written) for anything else.
func decodeSpec(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errSpecFallback
	}
	if err := decodeValue(d, rv.Elem()); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errSpecFallback // trailing data
	}
	return nil
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeValue decodes the next value of d into v (settable).
func decodeValue(d *json.Decoder, v reflect.Value) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	if tok == nil { // null: nil for pointers, slices, maps; else nothing
		switch v.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			v.SetZero()
		}
		return nil
	}
	return decodeAfter(d, tok, v)
}

// decodeAfter decodes the value that starts with tok into v.
func decodeAfter(d *json.Decoder, tok json.Token, v reflect.Value) error {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decodeAfter(d, tok, v.Elem())
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) || reflect.PointerTo(v.Type()).Implements(textUnmarshalerType) {
		return errSpecFallback
	}
	switch t := tok.(type) {
	case json.Delim:
		switch {
		case t == '{' && v.Kind() == reflect.Struct:
			return decodeStruct(d, v)
		case t == '{' && v.Kind() == reflect.Map && v.Type().Key().Kind() == reflect.String:
			return decodeMap(d, v)
		case t == '[' && v.Kind() == reflect.Slice && v.Type().Elem().Kind() != reflect.Uint8:
			return decodeSlice(d, v)
		}
	case string:
		if v.Kind() == reflect.String {
			v.SetString(t)
			return nil
		}
	case bool:
		if v.Kind() == reflect.Bool {
			v.SetBool(t)
			return nil
		}
	case json.Number:
		switch v.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			n, err := strconv.ParseInt(string(t), 10, 64)
			if err != nil || v.OverflowInt(n) {
				return errSpecFallback
			}
			v.SetInt(n)
			return nil
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			n, err := strconv.ParseUint(string(t), 10, 64)
			if err != nil || v.OverflowUint(n) {
				return errSpecFallback
			}
			v.SetUint(n)
			return nil
		case reflect.Float32, reflect.Float64:
			n, err := strconv.ParseFloat(string(t), v.Type().Bits())
			if err != nil || v.OverflowFloat(n) {
				return errSpecFallback
			}
			v.SetFloat(n)
			return nil
		}
	}
	return errSpecFallback
}

func decodeStruct(d *json.Decoder, v reflect.Value) error {
	fields, err := structFields(v.Type())
	if err != nil {
		return err
	}
	var seen uint64 // fields set so far; a second value for one is left to encoding/json (it merges)
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return errSpecFallback
		}
		idx, ok, err := fields.lookup(key)
		if err != nil {
			return err
		}
		if !ok {
			if err := skipValue(d); err != nil {
				return err
			}
			continue
		}
		if idx >= 64 || seen&(1<<idx) != 0 {
			return errSpecFallback
		}
		seen |= 1 << idx
		if err := decodeValue(d, v.FieldByIndex(fields.paths[idx])); err != nil {
			return err
		}
	}
	_, err = d.Token() // '}'
	return err
}

func decodeMap(d *json.Decoder, v reflect.Value) error {
	if v.Type().Key() != reflect.TypeFor[string]() {
		return errSpecFallback // a named key type: leave it to encoding/json
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	elem := v.Type().Elem()
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return errSpecFallback
		}
		e := reflect.New(elem).Elem()
		if err := decodeValue(d, e); err != nil {
			return err
		}
		v.SetMapIndex(reflect.ValueOf(key), e)
	}
	_, err := d.Token() // '}'
	return err
}

func decodeSlice(d *json.Decoder, v reflect.Value) error {
	s := reflect.MakeSlice(v.Type(), 0, 0)
	for d.More() {
		e := reflect.New(v.Type().Elem()).Elem()
		if err := decodeValue(d, e); err != nil {
			return err
		}
		s = reflect.Append(s, e)
	}
	v.Set(s)
	_, err := d.Token() // ']'
	return err
}

// skipValue skips the next value of d (an unknown field).
func skipValue(d *json.Decoder) error {
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		if delim, ok := tok.(json.Delim); ok {
			if delim == '{' || delim == '[' {
				depth++
			} else {
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

// fieldSet is the JSON view of one struct type: its fields by name, in
// field order, each with its index path (two long for a field promoted from
// an embedded struct).
type fieldSet struct {
	names []string
	paths [][]int
	exact map[string]int // name -> position in names
}

// lookup finds the position of key's field as encoding/json does: the
// exact name, else the first name equal under case folding. Only ASCII keys
// are folded here; a key that needs more is left to encoding/json.
func (f *fieldSet) lookup(key string) (int, bool, error) {
	if i, ok := f.exact[key]; ok {
		return i, true, nil
	}
	for i := 0; i < len(key); i++ {
		if key[i] >= 0x80 {
			return 0, false, errSpecFallback
		}
	}
	for i, n := range f.names {
		if strings.EqualFold(n, key) {
			return i, true, nil
		}
	}
	return 0, false, nil
}

var fieldCache sync.Map // reflect.Type -> *fieldSet

// structFields lists the JSON fields of t. The fields of an untagged
// embedded struct are promoted unless a field of t has the name (the
// shallower field wins, as in encoding/json); deeper embedding, interface
// and array fields, ",string" and non-ASCII names are left to
// encoding/json.
func structFields(t reflect.Type) (*fieldSet, error) {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*fieldSet), nil
	}
	fs := &fieldSet{exact: map[string]int{}}
	var promoted []reflect.StructField
	// add adds sf unless a field of its name is there already; it returns
	// that field's position then, else -1.
	add := func(sf reflect.StructField, path []int) (int, error) {
		if !sf.IsExported() {
			return -1, nil
		}
		if k := sf.Type.Kind(); k == reflect.Interface || k == reflect.Array {
			return -1, errSpecFallback
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			return -1, nil
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",string,") {
			return -1, errSpecFallback
		}
		if name == "" {
			name = sf.Name
		}
		for _, c := range name {
			if c >= 0x80 || c == '"' || c == '\\' {
				return -1, errSpecFallback
			}
		}
		if i, dup := fs.exact[name]; dup {
			return i, nil
		}
		fs.exact[name] = len(fs.names)
		fs.names = append(fs.names, name)
		fs.paths = append(fs.paths, path)
		return -1, nil
	}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous {
			if sf.Tag.Get("json") != "" || sf.Type.Kind() != reflect.Struct {
				return nil, errSpecFallback
			}
			promoted = append(promoted, sf)
			continue
		}
		if dup, err := add(sf, []int{i}); err != nil || dup >= 0 {
			return nil, errSpecFallback
		}
	}
	depth0 := len(fs.names)
	for _, emb := range promoted {
		for j := 0; j < emb.Type.NumField(); j++ {
			sf := emb.Type.Field(j)
			if sf.Anonymous {
				return nil, errSpecFallback
			}
			dup, err := add(sf, []int{emb.Index[0], j})
			if err != nil {
				return nil, err
			}
			if dup >= depth0 {
				return nil, errSpecFallback // two promoted fields of one name
			}
		}
	}
	// The case-insensitive match takes the first field in encoding/json's
	// order, where promoted fields sit at their embedded struct's place:
	// rather than reproduce that, leave such look-alike names to it.
	for i, n := range fs.names[depth0:] {
		for j, m := range fs.names {
			if j != depth0+i && strings.EqualFold(n, m) {
				return nil, errSpecFallback
			}
		}
	}
	fieldCache.Store(t, fs)
	return fs, nil
}
