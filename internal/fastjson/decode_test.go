package fastjson

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestDecodeSpecFixtures: the configs berth's engine writes (its golden
// files) decode on the fast path to what encoding/json makes of them.
func TestDecodeSpecFixtures(t *testing.T) {
	files, err := filepath.Glob("../containerspec/testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var want, got specs.Spec
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := Decode(b, &got); err != nil {
			t.Errorf("Decode(%s) = %v, want the fast path", filepath.Base(f), err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(%s) differs from encoding/json:\n got %+v\nwant %+v", filepath.Base(f), got, want)
		}
	}
}

// TestDecodeSpecLikeEncodingJSON: where Decode succeeds, it agrees with
// encoding/json; what it declines (fast = false) encoding/json decides.
func TestDecodeSpecLikeEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		fast bool
	}{
		{"runc spec", `{"ociVersion":"1.0.2-dev","process":{"terminal":true,"user":{"uid":0,"gid":0},"args":["sh"],"env":["PATH=/bin","TERM=xterm"],"cwd":"/","capabilities":{"bounding":["CAP_AUDIT_WRITE","CAP_KILL"]},"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true},"root":{"path":"rootfs","readonly":true},"hostname":"runc","mounts":[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]}],"linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}]},"namespaces":[{"type":"pid"},{"type":"network"},{"type":"mount"}],"maskedPaths":["/proc/acpi"],"readonlyPaths":["/proc/bus"]}}`, true},
		{"unknown fields skipped", `{"ociVersion":"1","x":{"a":[1,{"b":null}]},"hostname":"h","y":[[]]}`, true},
		{"case-insensitive keys", `{"HOSTNAME":"h","Process":{"ARGS":["a"],"User":{"UID":5}}}`, true},
		{"nulls", `{"hostname":null,"process":null,"mounts":null,"annotations":null,"linux":{"resources":null,"sysctl":null}}`, true},
		{"empty array and map", `{"mounts":[],"annotations":{},"linux":{"namespaces":[]}}`, true},
		{"escapes", `{"hostname":"a\u00e9\"\\\n","annotations":{"k\u0041":"v\/"}}`, true},
		{"numbers", `{"process":{"user":{"uid":4294967295,"umask":18},"oomScoreAdj":-1000},"linux":{"resources":{"memory":{"limit":-1,"swappiness":60},"cpu":{"quota":-1,"period":100000,"shares":1024}}}}`, true},
		{"device file mode", `{"linux":{"devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":438,"uid":0}]}}`, true},
		{"embedded struct fields", `{"linux":{"resources":{"blockIO":{"weight":10,"weightDevice":[{"major":8,"minor":0,"weight":500}],"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]}}}}`, true},
		{"trailing whitespace", "{\"hostname\":\"h\"}\n\t ", true},
		// Left to encoding/json:
		{"duplicate key", `{"hostname":"a","hostname":"b"}`, false},
		{"duplicate struct key merges", `{"process":{"cwd":"/a"},"process":{"args":["x"]}}`, false},
		{"non-ASCII key", `{"hoſtname":"h"}`, false},
		{"interface field", `{"windows":{"credentialSpec":{"a":1}}}`, false},
		{"overflow", `{"process":{"user":{"uid":4294967296}}}`, false},
		{"float into int", `{"process":{"user":{"uid":1.5}}}`, false},
		{"negative into uint", `{"process":{"user":{"uid":-1}}}`, false},
		{"string into int", `{"process":{"user":{"uid":"1"}}}`, false},
		{"wrong type", `{"mounts":{"a":1}}`, false},
		{"syntax error", `{"hostname":"h"`, false},
		{"trailing data", `{"hostname":"h"} {}`, false},
		{"not an object", `[1]`, false},
	}
	for _, tt := range tests {
		var want, got specs.Spec
		wantErr := json.Unmarshal([]byte(tt.in), &want)
		err := Decode([]byte(tt.in), &got)
		if (err == nil) != tt.fast {
			t.Errorf("%s: Decode(%s) = %v, want fast path %v", tt.name, tt.in, err, tt.fast)
		}
		if err != nil {
			continue
		}
		if wantErr != nil {
			t.Errorf("%s: Decode(%s) succeeded where encoding/json fails: %v", tt.name, tt.in, wantErr)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Decode(%s) = %+v, want %+v", tt.name, tt.in, got, want)
		}
	}
}

// Container records as the engine writes them (Docker's Config and
// HostConfig, times, addresses, port maps, arrays) decode on the fast path
// to what encoding/json makes of them, through Unmarshal too.
func TestDecodeRecords(t *testing.T) {
	type record struct {
		Version    int                                  `json:"version"`
		ID         string                               `json:"id"`
		Created    time.Time                            `json:"created"`
		Config     *container.Config                    `json:"config"`
		HostConfig *container.HostConfig                `json:"hostConfig"`
		State      map[string]any                       `json:"-"`
		Networks   map[string]*network.EndpointSettings `json:"networks,omitempty"`
	}
	files, _ := filepath.Glob("testdata/container-*.json")
	if len(files) < 2 {
		t.Fatalf("found %d records", len(files))
	}
	running := &network.EndpointSettings{NetworkID: "n", IPAddress: netip.MustParseAddr("172.30.0.2"), Gateway: netip.MustParseAddr("172.30.0.1"), IPPrefixLen: 16}
	withAddr, err := json.Marshal(map[string]any{"networks": map[string]any{"b": running, "n": nil}, "created": time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	docs := [][]byte{withAddr}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	for i, b := range docs {
		var want, got, viaUnmarshal record
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("doc %d: %v", i, err)
		}
		if err := Decode(b, &got); err != nil {
			t.Fatalf("doc %d: Decode = %v, want the fast path", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("doc %d: Decode differs from encoding/json:\n got %+v\nwant %+v", i, got, want)
		}
		if err := Unmarshal(b, &viaUnmarshal); err != nil || !reflect.DeepEqual(viaUnmarshal, want) {
			t.Fatalf("doc %d: Unmarshal = %v, %+v", i, err, viaUnmarshal)
		}
	}
}

type textKey2 string

func (k *textKey2) UnmarshalText(b []byte) error { *k = textKey2("k:" + string(b)); return nil }

// Arrays, method values and keys, and Unmarshal's fall back (errors and
// merging are encoding/json's).
func TestDecodeMethodsAndArrays(t *testing.T) {
	type doc struct {
		A  [2]int              `json:"a"`
		T  time.Time           `json:"t"`
		PT *time.Time          `json:"pt"`
		IP netip.Addr          `json:"ip"`
		PI *netip.Addr         `json:"pi"`
		M  map[textKey2]int    `json:"m"`
		N  map[netip.Addr]bool `json:"n"`
		S  []time.Time         `json:"s"`
	}
	for _, in := range []string{
		`{"a":[1,2,3],"t":"2026-11-28T10:00:00.5Z","pt":null,"ip":"10.0.0.1","pi":"::1","m":{"x":1},"n":{"1.2.3.4":true},"s":["2026-01-01T00:00:00Z"]}`,
		`{"a":[7],"pt":"2026-11-28T10:00:00Z","pi":null,"m":{}}`,
		`{"a":[] , "t" : "2026-11-28T10:00:00+01:00" }`,
	} {
		var want, got doc
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		if err := Decode([]byte(in), &got); err != nil {
			t.Fatalf("Decode(%s) = %v, want the fast path", in, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%s):\n got %+v\nwant %+v", in, got, want)
		}
	}
	var d doc
	err := Unmarshal([]byte(`{"ip":"not an address"}`), &d)
	if err == nil || err.Error() != json.Unmarshal([]byte(`{"ip":"not an address"}`), &doc{}).Error() {
		t.Fatalf("Unmarshal(bad address) = %v, want encoding/json's error", err)
	}
	merged := doc{A: [2]int{5, 6}}
	if err := Unmarshal([]byte(`{"ip":"10.0.0.1"}`), &merged); err != nil || merged.A != [2]int{5, 6} || merged.IP.String() != "10.0.0.1" {
		t.Fatalf("Unmarshal into a filled value = %v, %+v; want encoding/json's merge", err, merged)
	}
}
