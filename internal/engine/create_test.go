package engine

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
)

func TestParseList(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		ok   bool
	}{
		{"0", []int{0}, true},
		{"0-3,6", []int{0, 1, 2, 3, 6}, true},
		{"1,1", []int{1}, true},
		{"3-1", nil, false},
		{"a", nil, false},
		{"-1", nil, false},
		{"", nil, false},
		{"0-99999999", nil, false},
	}
	for _, tt := range tests {
		got, err := parseList(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("parseList(%q) error %v, want ok %v", tt.in, err, tt.ok)
			continue
		}
		if keys := slices.Sorted(maps.Keys(got)); tt.ok && !slices.Equal(keys, tt.want) {
			t.Errorf("parseList(%q) = %v, want %v", tt.in, keys, tt.want)
		}
	}
}

func TestValidateCreate(t *testing.T) {
	tests := []struct {
		cfg  container.Config
		host container.HostConfig
		kind error  // nil: valid
		want string // in the message
	}{
		{container.Config{}, container.HostConfig{}, nil, ""},
		{container.Config{StopSignal: "SIGUSR1"}, container.HostConfig{}, nil, ""},
		{container.Config{StopSignal: "9"}, container.HostConfig{}, nil, ""},
		{container.Config{StopSignal: "SIGNOPE"}, container.HostConfig{}, ErrInvalid, "--stop-signal: Invalid signal: SIGNOPE"},
		{container.Config{}, container.HostConfig{Resources: container.Resources{NanoCPUs: 1e13}}, ErrInvalid, "--cpus: Range of CPUs is from 0.01 to"},
		{container.Config{}, container.HostConfig{Resources: container.Resources{CpusetCpus: "0"}}, nil, ""},
		{container.Config{}, container.HostConfig{Resources: container.Resources{CpusetCpus: "9999"}}, ErrInvalid, "--cpuset-cpus: Requested CPUs are not available - requested 9999, available: "},
		{container.Config{}, container.HostConfig{Resources: container.Resources{CpusetCpus: "x"}}, ErrInvalid, "--cpuset-cpus: Invalid value x for cpuset cpus"},
		{container.Config{}, container.HostConfig{Resources: container.Resources{CpusetMems: "9999"}}, ErrInvalid, "--cpuset-mems: Requested memory nodes are not available"},
		{container.Config{}, container.HostConfig{NetworkMode: "host"}, nil, ""},
		{container.Config{}, container.HostConfig{NetworkMode: "container:other"}, nil, ""},
		{container.Config{}, container.HostConfig{NetworkMode: "container:"}, ErrInvalid, "--network container:"},
		// A user-defined network's name: whether it exists is checked
		// against the network records (prepareNetworking; test/e2e).
		{container.Config{}, container.HostConfig{NetworkMode: "bridge-of-sighs"}, nil, ""},
	}
	for _, tt := range tests {
		err := validateCreate(&tt.cfg, &tt.host)
		switch {
		case tt.kind == nil && err != nil:
			t.Errorf("validateCreate(%+v, %+v) = %v, want nil", tt.cfg, tt.host, err)
		case tt.kind != nil && (!errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("validateCreate(%+v, %+v) = %v, want %v with %q", tt.cfg, tt.host, err, tt.kind, tt.want)
		}
	}
}

func TestBindMode(t *testing.T) {
	tests := []struct{ bind, mode, want string }{
		{"vf:/data", "", "vf:/data"},
		{"vf:/data", "rw", "vf:/data"},
		{"/h:/h:ro", "rw", "/h:/h:ro"}, // read-only stays read-only
		{"vf:/data", "ro", "vf:/data:ro"},
		{"/h:/h:rw,rslave", "ro", "/h:/h:rslave,ro"},
		{"/h:/h:ro", "ro", "/h:/h:ro"},
	}
	for _, tt := range tests {
		if got := bindMode(tt.bind, tt.mode); got != tt.want {
			t.Errorf("bindMode(%q, %q) = %q, want %q", tt.bind, tt.mode, got, tt.want)
		}
	}
}

func TestStartExitCode(t *testing.T) {
	tests := []struct {
		msg  string
		want int
	}{
		{`OCI runtime create failed: exec: "nosuchcmd": executable file not found in $PATH`, 127},
		{`OCI runtime create failed: exec /no/such/path: no such file or directory`, 127},
		{`OCI runtime create failed: exec /etc/passwd: permission denied`, 126},
		{`mount the container's root filesystem: invalid argument`, 128},
	}
	for _, tt := range tests {
		if got := startExitCode(tt.msg); got != tt.want {
			t.Errorf("startExitCode(%q) = %d, want %d", tt.msg, got, tt.want)
		}
	}
}

func TestVolumeMatches(t *testing.T) {
	v := &Volume{Name: "data-1", Driver: "local", Labels: map[string]string{"k": "v", "team": "a"}}
	tests := []struct {
		filters map[string][]string
		used    bool
		want    bool
	}{
		{nil, false, true},
		{map[string][]string{"label": {"k=v"}}, false, true},
		{map[string][]string{"label": {"k"}}, false, true},
		{map[string][]string{"label": {"k=w"}}, false, false},
		{map[string][]string{"label": {"k=v", "team=b"}}, false, false}, // all labels must match
		{map[string][]string{"label!": {"team=a"}}, false, false},
		{map[string][]string{"label!": {"team=b"}}, false, true},
		{map[string][]string{"name": {"ata"}}, false, true},
		{map[string][]string{"name": {"^x", "-1$"}}, false, true}, // any name
		{map[string][]string{"name": {"^x"}}, false, false},
		{map[string][]string{"driver": {"local"}}, false, true},
		{map[string][]string{"driver": {"nfs"}}, false, false},
		{map[string][]string{"dangling": {"true"}}, false, true},
		{map[string][]string{"dangling": {"true"}}, true, false},
		{map[string][]string{"dangling": {"0"}}, true, true},
	}
	for _, tt := range tests {
		if got := volumeMatches(v, tt.filters, map[string]bool{v.Name: tt.used}); got != tt.want {
			t.Errorf("volumeMatches(%v, used %v) = %v, want %v", tt.filters, tt.used, got, tt.want)
		}
	}
}
