package image

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestApplyChanges(t *testing.T) {
	tests := []struct {
		change string
		base   v1.Config
		want   v1.Config
	}{
		{`CMD ["/bin/sh", "-c", "echo hi"]`, v1.Config{}, v1.Config{Cmd: []string{"/bin/sh", "-c", "echo hi"}}},
		{`CMD echo hi`, v1.Config{}, v1.Config{Cmd: []string{"/bin/sh", "-c", "echo hi"}}},
		{`ENTRYPOINT ["/app"]`, v1.Config{Cmd: []string{"x"}}, v1.Config{Entrypoint: []string{"/app"}, Cmd: []string{"x"}}},
		{`ENTRYPOINT /app --serve`, v1.Config{Cmd: []string{"x"}}, v1.Config{Entrypoint: []string{"/bin/sh", "-c", "/app --serve"}}},
		{`ENV A=1 B="two words" C=three\ words`, v1.Config{Env: []string{"A=0", "PATH=/bin"}}, v1.Config{Env: []string{"A=1", "PATH=/bin", "B=two words", "C=three words"}}},
		{`ENV LEGACY value with spaces`, v1.Config{}, v1.Config{Env: []string{"LEGACY=value with spaces"}}},
		{`WORKDIR /srv`, v1.Config{}, v1.Config{WorkingDir: "/srv"}},
		{`WORKDIR data`, v1.Config{WorkingDir: "/srv"}, v1.Config{WorkingDir: "/srv/data"}},
		{`USER 1000:1000`, v1.Config{}, v1.Config{User: "1000:1000"}},
		{`LABEL a=b "c d"=e`, v1.Config{}, v1.Config{Labels: map[string]string{"a": "b", "c d": "e"}}},
		{`EXPOSE 80 53/udp 8000-8001`, v1.Config{}, v1.Config{ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}, "8000-8001/tcp": {}}}},
		{`VOLUME ["/data", "/logs"]`, v1.Config{}, v1.Config{Volumes: map[string]struct{}{"/data": {}, "/logs": {}}}},
		{`VOLUME /data`, v1.Config{}, v1.Config{Volumes: map[string]struct{}{"/data": {}}}},
		{`STOPSIGNAL SIGQUIT`, v1.Config{}, v1.Config{StopSignal: "SIGQUIT"}},
		{`onbuild RUN make`, v1.Config{}, v1.Config{OnBuild: []string{"RUN make"}}},
	}
	for _, tt := range tests {
		cfg := tt.base
		if err := ApplyChanges(&cfg, []string{tt.change}); err != nil {
			t.Errorf("ApplyChanges(%q) error: %v", tt.change, err)
			continue
		}
		if !reflect.DeepEqual(cfg, tt.want) {
			t.Errorf("ApplyChanges(%q) = %+v, want %+v", tt.change, cfg, tt.want)
		}
	}
}

func TestApplyChangesErrors(t *testing.T) {
	tests := []struct{ change, wantMsg string }{
		{`RUN make`, `unknown or unsupported instruction "RUN"`},
		{`EXPOSE http`, `invalid port "http"`},
		{`ENV A="unterminated`, `unterminated quote`},
		{`ENV =x`, `is not KEY=VALUE`},
		{`WORKDIR`, `WORKDIR needs a path`},
		{`CMD`, `needs a command`},
	}
	for _, tt := range tests {
		var cfg v1.Config
		err := ApplyChanges(&cfg, []string{tt.change})
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantMsg) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.change)) {
			t.Errorf("ApplyChanges(%q) = %v, want ErrInvalid naming the change and %q", tt.change, err, tt.wantMsg)
		}
	}
}
