package main

import (
	"bytes"
	"strings"
	"testing"
	"text/template"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/types/container"

	"github.com/berthproject/berth/internal/image"
)

// TestExecuteInspect: inspect --format runs as Docker's CLI does: on the
// typed object first (numbers as integers, an absent list as []), then on
// its JSON (Docker's field names, .Id), where a missing key is an error.
func TestExecuteInspect(t *testing.T) {
	img := &image.Inspect{ID: "sha256:abc", Size: 1996800, Config: &v1.Config{Cmd: []string{"sh"}}}
	ctr := &container.InspectResponse{HostConfig: &container.HostConfig{Resources: container.Resources{Memory: 268435456}}}
	tests := []struct {
		v       any
		format  string
		want    string
		wantErr bool
	}{
		{img, "{{.Size}}", "1996800", false},
		{img, "{{.Config.Entrypoint}} {{.Config.Cmd}}", "[] [sh]", false},
		{img, "{{.Id}} {{.Size}}", "sha256:abc 1996800", false},
		{img, "{{json .Config.Cmd}}", `["sh"]`, false},
		{img, "{{.Nope}}", "", true},
		{ctr, "{{.HostConfig.Memory}}", "268435456", false},
	}
	for _, tt := range tests {
		tmpl := template.Must(template.New("").Funcs(templateFuncs).Parse(tt.format))
		var out bytes.Buffer
		err := executeInspect(&out, tmpl, tt.v)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: error %v, want error %v", tt.format, err, tt.wantErr)
		}
		if got := strings.TrimSpace(out.String()); !tt.wantErr && got != tt.want {
			t.Errorf("%s = %q, want %q", tt.format, got, tt.want)
		}
	}
}
