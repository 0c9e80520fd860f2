package runtime

import (
	"reflect"
	"testing"
)

// fill sets every field reachable from v to a non-zero value, so that a
// field the codec forgets shows up as a difference after a round trip.
func fill(v reflect.Value, seed *int) {
	*seed++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), seed)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), seed)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte{byte(*seed), 0, 255})
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(v.Index(0), seed)
		fill(v.Index(1), seed)
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for i := 0; i < 2; i++ {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, seed)
			fill(e, seed)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		v.SetString("s" + string(rune('a'+*seed%26)) + "é")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-int64(*seed))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*seed) + 1<<20)
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

func TestWireRoundTrip(t *testing.T) {
	var full initConfig
	seed := 0
	fill(reflect.ValueOf(&full).Elem(), &seed)
	b, err := full.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got initConfig
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatalf("UnmarshalBinary: %v", err)
	}
	if !reflect.DeepEqual(got, full) {
		t.Errorf("round trip lost something (a field of the runtime-spec types not carried by wire.go?)\ngot  %+v\nwant %+v", got, full)
	}

	// Nil and empty stay apart (a nil capabilities list means "keep all").
	var sparse initConfig
	sparse.Process = full.Process
	sparse.Process.Capabilities.Ambient = []string{}
	sparse.Process.Rlimits = nil
	b, _ = sparse.MarshalBinary()
	var got2 initConfig
	if err := got2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got2.Process.Capabilities.Ambient == nil || got2.Process.Rlimits != nil || got2.Rootfs.Mounts != nil {
		t.Errorf("nil/empty not preserved: ambient %#v rlimits %#v mounts %#v", got2.Process.Capabilities.Ambient, got2.Process.Rlimits, got2.Rootfs.Mounts)
	}
}

func TestWireRejectsDamage(t *testing.T) {
	var full initConfig
	seed := 0
	fill(reflect.ValueOf(&full).Elem(), &seed)
	b, _ := full.MarshalBinary()
	for n := 0; n < len(b); n += 7 {
		var c initConfig
		if err := c.UnmarshalBinary(b[:n]); err == nil {
			t.Fatalf("UnmarshalBinary accepted the first %d of %d bytes", n, len(b))
		}
	}
	var c initConfig
	if err := c.UnmarshalBinary(append(b, 0)); err == nil {
		t.Error("UnmarshalBinary accepted trailing bytes")
	}
}

func FuzzWire(f *testing.F) {
	var full initConfig
	seed := 0
	fill(reflect.ValueOf(&full).Elem(), &seed)
	b, _ := full.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var c initConfig
		_ = c.UnmarshalBinary(data) // must not panic or allocate without bound
	})
}
