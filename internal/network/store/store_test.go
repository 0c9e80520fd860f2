package store

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
