package fastjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// Unmarshal decodes the JSON document b into v (a pointer) as
// encoding/json.Unmarshal does.
//
// encoding/json prepares a type the first time it meets it, and preparing
// a struct (for decoding too, in Go 1.26) prepares the encoders of every
// type reachable from it: the first decode of a container record took
// 1.8-2.4 ms, of a runtime-spec Spec ~4 ms, against tens of microseconds for
// the decoding itself. Unmarshal decodes with reflection and prepares only
// the struct types the document contains. Where it meets something it does
// not handle (see Decode), and on any error, the document is decoded again
// by encoding/json, so the result and the errors are encoding/json's. A v
// that is not zero (which encoding/json would merge into) goes to
// encoding/json at once.
func Unmarshal(b []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || !rv.Elem().IsZero() {
		return json.Unmarshal(b, v)
	}
	if Decode(b, v) == nil {
		return nil
	}
	rv.Elem().SetZero()
	return json.Unmarshal(b, v)
}

// Decode decodes the JSON document b into v (a pointer) with the
// semantics of encoding/json.Unmarshal for the kinds of values it handles,
// and returns an error (v then partly written) for anything else: it
// handles structs (one level of embedding), pointers, slices, arrays, maps
// with string or TextUnmarshaler keys, strings, booleans, numbers, and
// types with an UnmarshalJSON or UnmarshalText method; not interfaces,
// []byte, ",string" options, non-ASCII or look-alike field names, or a key
// given twice (encoding/json merges).
func Decode(b []byte, v any) error {
	d := &decoder{Decoder: json.NewDecoder(bytes.NewReader(b)), b: b}
	d.UseNumber()
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errFallback
	}
	if err := decodeValue(d, rv.Elem()); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errFallback // trailing data
	}
	return nil
}

// decoder is a json.Decoder over b, whose bytes UnmarshalJSON methods get.
type decoder struct {
	*json.Decoder
	b []byte
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeValue decodes the next value of d into v (settable).
func decodeValue(d *decoder, v reflect.Value) error {
	base := v.Type()
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	if p := reflect.PointerTo(base); p.Implements(unmarshalerType) {
		return decodeUnmarshaler(d, v)
	} else if p.Implements(textUnmarshalerType) {
		return decodeTextUnmarshaler(d, v)
	}
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
func decodeAfter(d *decoder, tok json.Token, v reflect.Value) error {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decodeAfter(d, tok, v.Elem())
	}
	switch t := tok.(type) {
	case json.Delim:
		switch {
		case t == '{' && v.Kind() == reflect.Struct:
			return decodeStruct(d, v)
		case t == '{' && v.Kind() == reflect.Map:
			return decodeMap(d, v)
		case t == '[' && v.Kind() == reflect.Slice && v.Type().Elem().Kind() != reflect.Uint8:
			return decodeSlice(d, v)
		case t == '[' && v.Kind() == reflect.Array:
			return decodeArray(d, v)
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
				return errFallback
			}
			v.SetInt(n)
			return nil
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			n, err := strconv.ParseUint(string(t), 10, 64)
			if err != nil || v.OverflowUint(n) {
				return errFallback
			}
			v.SetUint(n)
			return nil
		case reflect.Float32, reflect.Float64:
			n, err := strconv.ParseFloat(string(t), v.Type().Bits())
			if err != nil || v.OverflowFloat(n) {
				return errFallback
			}
			v.SetFloat(n)
			return nil
		}
	}
	return errFallback
}

func decodeStruct(d *decoder, v reflect.Value) error {
	fields, err := decodeFields(v.Type())
	if err != nil {
		return err
	}
	// The fields set so far: a second value for one is left to
	// encoding/json (it merges).
	var seen0 [2]uint64
	seen := seen0[:]
	if n := len(fields.names); n > 128 {
		seen = make([]uint64, (n+63)/64)
	}
	for d.More() {
		key, err := nextKey(d)
		if err != nil {
			return err
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
		if seen[idx/64]&(1<<(idx%64)) != 0 {
			return errFallback
		}
		seen[idx/64] |= 1 << (idx % 64)
		if err := decodeValue(d, v.FieldByIndex(fields.paths[idx])); err != nil {
			return err
		}
	}
	_, err = d.Token() // '}'
	return err
}

func decodeMap(d *decoder, v reflect.Value) error {
	kt := v.Type().Key()
	textKey := reflect.PointerTo(kt).Implements(textUnmarshalerType)
	if !textKey && kt.Kind() != reflect.String {
		return errFallback // integer keys
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	elem := v.Type().Elem()
	for d.More() {
		key, err := nextKey(d)
		if err != nil {
			return err
		}
		var k reflect.Value
		if textKey { // encoding/json's order: the method first
			k = reflect.New(kt)
			if err := k.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(key)); err != nil {
				return err
			}
			k = k.Elem()
		} else {
			k = reflect.ValueOf(key).Convert(kt)
		}
		e := reflect.New(elem).Elem()
		if err := decodeValue(d, e); err != nil {
			return err
		}
		v.SetMapIndex(k, e)
	}
	_, err := d.Token() // '}'
	return err
}

func decodeSlice(d *decoder, v reflect.Value) error {
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

func decodeArray(d *decoder, v reflect.Value) error {
	i := 0
	for ; d.More(); i++ {
		if i >= v.Len() { // encoding/json drops the extra elements
			if err := skipValue(d); err != nil {
				return err
			}
			continue
		}
		if err := decodeValue(d, v.Index(i)); err != nil {
			return err
		}
	}
	for ; i < v.Len(); i++ {
		v.Index(i).SetZero()
	}
	_, err := d.Token() // ']'
	return err
}

// decodeUnmarshaler gives the next value's bytes to v's UnmarshalJSON
// (after allocating v's pointers), as encoding/json does; null sets a
// pointer to nil (anything else with null is left to encoding/json).
func decodeUnmarshaler(d *decoder, v reflect.Value) error {
	start := d.InputOffset()
	tok, err := d.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		if v.Kind() == reflect.Pointer {
			v.SetZero()
			return nil
		}
		return errFallback
	}
	if delim, ok := tok.(json.Delim); ok && (delim == '{' || delim == '[') {
		if err := skipRest(d); err != nil {
			return err
		}
	}
	// From after the previous token: the separator and spaces go.
	raw := bytes.TrimLeft(d.b[start:d.InputOffset()], " \t\r\n:,")
	return target(v).Addr().Interface().(json.Unmarshaler).UnmarshalJSON(raw)
}

// decodeTextUnmarshaler gives the next value, a string, to v's
// UnmarshalText; null sets a pointer to nil.
func decodeTextUnmarshaler(d *decoder, v reflect.Value) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	if tok == nil && v.Kind() == reflect.Pointer {
		v.SetZero()
		return nil
	}
	s, ok := tok.(string)
	if !ok {
		return errFallback
	}
	return target(v).Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s))
}

// target allocates v's nil pointers, as encoding/json does before it
// calls a method, and returns the value they lead to.
func target(v reflect.Value) reflect.Value {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	return v
}

// nextKey reads an object's next key.
func nextKey(d *decoder) (string, error) {
	tok, err := d.Token()
	if err != nil {
		return "", err
	}
	key, ok := tok.(string)
	if !ok {
		return "", errFallback
	}
	return key, nil
}

// skipRest skips what is left of an object or array whose opening token
// was just read.
func skipRest(d *decoder) error {
	for depth := 1; depth > 0; {
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
	}
	return nil
}

// skipValue skips the next value of d (an unknown field).
func skipValue(d *decoder) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	if delim, ok := tok.(json.Delim); ok && (delim == '{' || delim == '[') {
		return skipRest(d)
	}
	return nil
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
			return 0, false, errFallback
		}
	}
	for i, n := range f.names {
		if strings.EqualFold(n, key) {
			return i, true, nil
		}
	}
	return 0, false, nil
}

var decodeFieldCache sync.Map // reflect.Type -> *fieldSet

// decodeFields lists the JSON fields of t. The fields of an untagged
// embedded struct are promoted unless a field of t has the name (the
// shallower field wins, as in encoding/json); deeper embedding, interface
// and array fields, ",string" and non-ASCII names are left to
// encoding/json.
func decodeFields(t reflect.Type) (*fieldSet, error) {
	if f, ok := decodeFieldCache.Load(t); ok {
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
		if sf.Type.Kind() == reflect.Interface {
			return -1, errFallback
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			return -1, nil
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",string,") {
			return -1, errFallback
		}
		if name == "" {
			name = sf.Name
		}
		for _, c := range name {
			if c >= 0x80 || c == '"' || c == '\\' {
				return -1, errFallback
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
				return nil, errFallback
			}
			promoted = append(promoted, sf)
			continue
		}
		if dup, err := add(sf, []int{i}); err != nil || dup >= 0 {
			return nil, errFallback
		}
	}
	depth0 := len(fs.names)
	for _, emb := range promoted {
		for j := 0; j < emb.Type.NumField(); j++ {
			sf := emb.Type.Field(j)
			if sf.Anonymous {
				return nil, errFallback
			}
			dup, err := add(sf, []int{emb.Index[0], j})
			if err != nil {
				return nil, err
			}
			if dup >= depth0 {
				return nil, errFallback // two promoted fields of one name
			}
		}
	}
	// The case-insensitive match takes the first field in encoding/json's
	// order, where promoted fields sit at their embedded struct's place:
	// rather than reproduce that, leave such look-alike names to it.
	for i, n := range fs.names[depth0:] {
		for j, m := range fs.names {
			if j != depth0+i && strings.EqualFold(n, m) {
				return nil, errFallback
			}
		}
	}
	decodeFieldCache.Store(t, fs)
	return fs, nil
}
