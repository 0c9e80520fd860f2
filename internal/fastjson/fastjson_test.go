package fastjson

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// same checks that Marshal(v) is json.Marshal(v) byte for byte and, when
// fast is set, that it got there without encoding/json.
func same(t *testing.T, name string, v any, fast bool) {
	t.Helper()
	want, werr := json.Marshal(v)
	got, gerr := Marshal(v)
	if (werr == nil) != (gerr == nil) || !bytes.Equal(got, want) {
		t.Fatalf("%s: Marshal = %s, %v\nencoding/json: %s, %v", name, got, gerr, want, werr)
	}
	_, err := appendValue(nil, reflect.ValueOf(v))
	if fast && err != nil {
		t.Fatalf("%s: left to encoding/json (%v); want the fast path", name, err)
	}
}

// The OCI specs the engine renders (its golden files) and the runtime's
// default spec, encoded without encoding/json.
func TestSpecs(t *testing.T) {
	files, _ := filepath.Glob("../containerspec/testdata/*.json")
	if len(files) < 5 {
		t.Fatalf("found %d golden specs", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var s specs.Spec
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		same(t, filepath.Base(f), &s, true)
	}
	same(t, "empty spec", &specs.Spec{}, true)
}

// A container record as the engine writes it: Docker's Config and
// HostConfig (embedded Resources), times, addresses, port maps.
func TestContainerRecord(t *testing.T) {
	type state struct {
		Status     string    `json:"status"`
		Pid        int       `json:"pid,omitempty"`
		StartedAt  time.Time `json:"startedAt,omitempty"`
		FinishedAt time.Time `json:"finishedAt,omitempty"`
		Stopped    bool      `json:"stopped,omitempty"`
	}
	type record struct {
		Version    int                                  `json:"version"`
		ID         string                               `json:"id"`
		Created    time.Time                            `json:"created"`
		Config     *container.Config                    `json:"config"`
		HostConfig *container.HostConfig                `json:"hostConfig"`
		State      state                                `json:"state"`
		Anon       map[string]string                    `json:"anonVolumes,omitempty"`
		Networks   map[string]*network.EndpointSettings `json:"networks,omitempty"`
	}
	mem := int64(256 << 20)
	pids := int64(100)
	r := &record{
		Version: 3, ID: strings.Repeat("ab", 32),
		Created: time.Date(2026, 11, 28, 10, 0, 0, 123456789, time.UTC),
		Config: &container.Config{
			Hostname: "web", Image: "busybox", Cmd: []string{"sh", "-c", "echo <hi> & bye"},
			Env: []string{"A=1", "PATH=/bin"}, Labels: map[string]string{"z": "1", "a": "2"},
			Tty: true, OpenStdin: true,
		},
		HostConfig: &container.HostConfig{
			Binds:         []string{"/tmp/x:/x:ro"},
			NetworkMode:   "bridge",
			RestartPolicy: container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3},
			AutoRemove:    true,
			CapAdd:        []string{"NET_ADMIN"},
			Resources:     container.Resources{Memory: 256 << 20, CPUShares: 512, PidsLimit: &pids, MemorySwap: mem},
			Tmpfs:         map[string]string{"/run": "size=1m"},
			LogConfig:     container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m"}},
		},
		State: state{Status: "running", Pid: 42, StartedAt: time.Now()},
		Anon:  map[string]string{"/data": "f00"},
		Networks: map[string]*network.EndpointSettings{
			"bridge": {NetworkID: "n1", IPAddress: netip.MustParseAddr("172.30.0.2"), IPPrefixLen: 16, Aliases: []string{"web"}},
			"other":  nil,
		},
	}
	same(t, "record", r, true)
	same(t, "record without networks", &record{ID: "x", Config: r.Config, HostConfig: r.HostConfig, State: r.State}, true)
}

// Strings: every byte below 0x80, HTML characters, U+2028/9, invalid
// UTF-8, multi-byte runes.
func TestStrings(t *testing.T) {
	var all []byte
	for c := range 0x80 {
		all = append(all, byte(c))
	}
	for _, s := range []string{"", "plain", string(all), "<a href=\"x\">&amp;</a>", "line\u2028sep\u2029", "bad\xff\xfe utf8 \xe2\x80", "日本語 ✓ 😀", "\x00\x1f\x7f"} {
		same(t, "string "+s, s, true)
		same(t, "map key "+s, map[string]string{s: s}, true)
	}
	for r := rune(0); r < 0x3000; r += 7 {
		if utf8.ValidRune(r) {
			same(t, "rune", string(r)+"x", true)
		}
	}
}

type textKey string

type ptrMarshaler struct{ A int }

func (*ptrMarshaler) MarshalJSON() ([]byte, error) { return []byte(`"p"`), nil }

type inner struct {
	X int    `json:"x"`
	Y string `json:"y,omitempty"`
}

type Outer struct {
	inner
	*Other
	Z bool `json:"z"`
}

type Other struct {
	W []int `json:"w"`
}

// Kinds, omitempty, nil values and embedding as encoding/json has them;
// what this package leaves to encoding/json still comes out the same.
func TestKinds(t *testing.T) {
	var nilMap map[string]int
	var nilSlice []string
	var nilPtr *int
	n := 7
	fast := []any{
		nil, true, false, 0, -12, uint8(200), uint64(1 << 63), "s",
		nilMap, map[string]int{}, nilSlice, []string{}, [3]int{1, 2, 3}, nilPtr, &n,
		[]any{1, "a", nil, []int{1}},
		map[textKey]int{"b": 1, "a": 2},
		struct {
			A  int               `json:"a,omitempty"`
			B  string            `json:",omitempty"`
			C  *int              `json:"c,omitempty"`
			D  map[string]string `json:"d,omitempty"`
			E  []int             `json:"e,omitempty"`
			F  bool              `json:"f,omitempty"`
			G  any               `json:"g,omitempty"`
			H  int               `json:"-"`
			I  int               `json:"-,"`
			h  int
			Tm time.Time `json:"tm,omitempty"`
		}{},
		Outer{inner: inner{X: 1}, Z: true},
		Outer{inner: inner{X: 1, Y: "y"}, Other: &Other{W: []int{1}}},
		netip.MustParseAddr("::1"), map[netip.Addr]int{netip.MustParseAddr("10.0.0.1"): 1},
		time.Unix(0, 0).UTC(),
	}
	for i, v := range fast {
		same(t, "fast "+string(rune('a'+i)), v, true)
	}
	slow := []any{
		1.5, float32(2), []byte("bytes"), map[int]string{2: "b", 1: "a"},
		struct {
			A int `json:"a,string"`
		}{3},
		struct {
			A int
			B int `json:"A"`
		}{1, 2},
		ptrMarshaler{1}, &ptrMarshaler{1}, []ptrMarshaler{{1}},
		make(chan int),
	}
	for i, v := range slow {
		same(t, "slow "+string(rune('a'+i)), v, false)
	}
}
