package image

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/berthproject/berth/internal/fastjson"
)

// Image configs decode on fastjson's fast path (no encoding/json type
// preparation in every command), to what encoding/json makes of them.
func TestParseConfigFast(t *testing.T) {
	h, _ := v1.NewHash("sha256:7173b809ca12ec5dee4506cd86be934c4596dd234ee82c0662eac04a8c2c71dc")
	cfg := imageConfig{Comment: "c", ConfigFile: v1.ConfigFile{
		Architecture: "amd64", OS: "linux", Variant: "v8", Author: "me", Created: v1.Time{Time: time.Now().UTC()},
		History: []v1.History{{Created: v1.Time{Time: time.Unix(1, 0).UTC()}, CreatedBy: "/bin/sh -c #(nop) ADD", EmptyLayer: true}},
		RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{h, h}},
		Config: v1.Config{
			Cmd: []string{"sh"}, Entrypoint: []string{"/init"}, Env: []string{"PATH=/bin"}, User: "1:2", WorkingDir: "/w",
			ExposedPorts: map[string]struct{}{"80/tcp": {}}, Volumes: map[string]struct{}{"/data": {}}, Labels: map[string]string{"a": "b"},
			Healthcheck: &v1.HealthConfig{Test: []string{"CMD", "true"}, Interval: time.Second, Retries: 3},
			StopSignal:  "SIGTERM", Shell: []string{"/bin/sh", "-c"}, OnBuild: []string{"RUN x"},
		},
	}}
	for _, c := range []imageConfig{cfg, {}} {
		raw, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var want, got imageConfig
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if err := fastjson.Decode(raw, &got); err != nil {
			t.Fatalf("fastjson.Decode(%s) = %v, want the fast path", raw, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fast decode differs:\n got %+v\nwant %+v", got, want)
		}
		if p, err := parseConfig(raw); err != nil || !reflect.DeepEqual(*p, want) {
			t.Fatalf("parseConfig = %+v, %v", p, err)
		}
	}
}
