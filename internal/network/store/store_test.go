package store

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/fastjson"
)

func TestUpdateAndRead(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Read()
	if err != nil || st.Version != Version || len(st.Networks) != 0 {
		t.Fatalf("Read of an empty store = %+v, %v", st, err)
	}
	id0, _ := s.Stat()
	err = s.Update(func(st *State) error {
		st.Networks["n1"] = &Network{ID: "n1", Name: "app", Driver: "bridge", Subnet: netip.MustParsePrefix("10.1.0.0/24")}
		st.Endpoints["e1"] = &Endpoint{ID: "e1", NetworkID: "n1", ContainerID: "c1", IPv4: netip.MustParseAddr("10.1.0.2"),
			Ports: []Port{{Proto: "tcp", HostPort: 80, ContainerPort: 8080}}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := s.Stat()
	if id1 == id0 {
		t.Errorf("Stat did not change with a write")
	}
	st, err = s.Read()
	if err != nil || st.Networks["n1"].Name != "app" || st.Endpoints["e1"].Ports[0].ContainerPort != 8080 {
		t.Fatalf("Read after Update = %+v, %v", st, err)
	}
	// A failing update writes nothing.
	boom := errors.New("boom")
	if err := s.Update(func(st *State) error { delete(st.Networks, "n1"); return boom }); err != boom {
		t.Fatalf("Update = %v, want boom", err)
	}
	if st, _ := s.Read(); st.Networks["n1"] == nil {
		t.Errorf("a failed update changed the records")
	}
	if id2, _ := s.Stat(); id2 != id1 {
		t.Errorf("a failed update rewrote the file")
	}
	// No temporary files are left.
	ents, _ := os.ReadDir(s.Dir())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".state-") {
			t.Errorf("temporary file %s left", e.Name())
		}
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		in  string
		err string
	}{
		{`{"version":1,"networks":{},"endpoints":{}}`, ""},
		{`{"version":1}`, ""},
		{`{"version":2,"networks":{}}`, "schema version 2 is newer"},
		{`{"networks":{}}`, "no schema version"},
		{`{"version":1,"networks":{"x":{"subnet":"nonsense"}}}`, "ParsePrefix"},
		{`not json`, "invalid character"},
	}
	for _, tt := range tests {
		st, err := Decode([]byte(tt.in), "state.json")
		if tt.err == "" {
			if err != nil || st.Networks == nil || st.Endpoints == nil {
				t.Errorf("Decode(%s) = %+v, %v", tt.in, st, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("Decode(%s) = %v, want an error with %q", tt.in, err, tt.err)
		}
	}
}

func TestReadRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "state.json"), []byte(`{"version":99}`), 0o600)
	s, _ := Open(dir)
	if _, err := s.Read(); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Read of a newer schema = %v", err)
	}
	if err := s.Update(func(*State) error { return nil }); err == nil {
		t.Errorf("Update over a newer schema succeeded (it would have downgraded the file)")
	}
}

// The records decode on fastjson's fast path, to what encoding/json makes
// of them.
func TestDecodeFast(t *testing.T) {
	st := New()
	st.Networks["n1"] = &Network{ID: "n1", Name: "net", Driver: "bridge", Created: time.Now(), Bridge: "br-n1",
		Subnet: netip.MustParsePrefix("172.31.0.0/16"), Gateway: netip.MustParseAddr("172.31.0.1"), IPv6: true,
		Subnet6: netip.MustParsePrefix("fd00::/64"), Last4: netip.MustParseAddr("172.31.0.9"), Labels: map[string]string{"a": "b"}}
	st.Endpoints["e1"] = &Endpoint{ID: "e1", NetworkID: "n1", ContainerID: "c1", Created: time.Now(), IPv4: netip.MustParseAddr("172.31.0.2"),
		IPv6: netip.MustParseAddr("fd00::2"), Gateway: true, Aliases: []string{"web"}, Links: map[string]string{"db": "x"},
		DNS: []netip.Addr{netip.MustParseAddr("1.1.1.1")}, Ports: []Port{{Proto: "tcp", HostPort: 8080, ContainerPort: 80}, {Proto: "udp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 53, ContainerPort: 53}}}
	b, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	var want, got State
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if err := fastjson.Decode(b, &got); err != nil {
		t.Fatalf("fastjson.Decode = %v, want the fast path", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fast decode differs:\n got %+v\nwant %+v", got, want)
	}
	dec, err := Decode(b, "state.json")
	if err != nil || !reflect.DeepEqual(*dec, want) {
		t.Fatalf("Decode = %+v, %v", dec, err)
	}
}
