package storage

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fastjson"
)

// The snapshot table encodes as encoding/json writes it, and decodes on fastjson's fast path, to what
// encoding/json makes of it.
func TestTableDecodesFast(t *testing.T) {
	tab := Table{Version: schemaVersion, NextID: 7, Snapshots: map[string]*Record{
		"a": {ID: "1", Kind: "committed", Created: time.Now(), Labels: map[string]string{"x": "y"}},
		"b": {ID: "2", Kind: "active", Parent: "a", Created: time.Unix(5, 6).UTC(), Transient: true},
	}}
	raw, err := json.MarshalIndent(tab, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if enc, err := encodeTable(&tab); err != nil || string(enc) != string(raw) {
		t.Fatalf("encodeTable = %s, %v; want encoding/json's\n%s", enc, err, raw)
	}
	var want, got Table
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if err := fastjson.Decode(raw, &got); err != nil {
		t.Fatalf("fastjson.Decode = %v, want the fast path", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fast decode differs:\n got %+v\nwant %+v", got, want)
	}
}
