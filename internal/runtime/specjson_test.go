package runtime

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

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
		if err := decodeSpec(b, &got); err != nil {
			t.Errorf("decodeSpec(%s) = %v, want the fast path", filepath.Base(f), err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decodeSpec(%s) differs from encoding/json:\n got %+v\nwant %+v", filepath.Base(f), got, want)
		}
	}
}

// TestDecodeSpecLikeEncodingJSON: where decodeSpec succeeds, it agrees with
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
		err := decodeSpec([]byte(tt.in), &got)
		if (err == nil) != tt.fast {
			t.Errorf("%s: decodeSpec(%s) = %v, want fast path %v", tt.name, tt.in, err, tt.fast)
		}
		if err != nil {
			continue
		}
		if wantErr != nil {
			t.Errorf("%s: decodeSpec(%s) succeeded where encoding/json fails: %v", tt.name, tt.in, wantErr)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decodeSpec(%s) = %+v, want %+v", tt.name, tt.in, got, want)
		}
	}
}

// TestLoadSpecErrors: a bad config gets encoding/json's error, as before.
func TestLoadSpecErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"process":{"user":{"uid":"x"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := loadSpec(dir)
	if err == nil || !strings.Contains(err.Error(), "process.user.uid") {
		t.Errorf("loadSpec(bad uid) = %v, want an error naming process.user.uid", err)
	}
}
