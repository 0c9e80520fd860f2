package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/spf13/pflag"
)

func parseRun(t *testing.T, args ...string) (*container.Config, *container.HostConfig, error) {
	t.Helper()
	var f runFlags
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	f.register(fs, true)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	return f.config(fs, fs.Args())
}

func TestRunFlags(t *testing.T) {
	t.Setenv("FROM_HOST", "yes")
	cfg, host, err := parseRun(t, "-it", "--rm", "--name", "web", "-e", "A=1", "-e", "FROM_HOST", "-e", "UNSET_VAR",
		"-w", "/srv", "-u", "nobody:nogroup", "--entrypoint", "", "-m", "256m", "--memory-swap", "512m", "--cpus", "1.5",
		"--pids-limit", "64", "-p", "127.0.0.1:8080:80", "-p", "9000-9001:9000-9001/udp", "--restart", "no",
		"--ulimit", "nofile=1024:2048", "--tmpfs", "/run:size=64m", "-v", "/srv/site:/www:ro", "--cap-add", "NET_ADMIN",
		"-l", "tier=front", "--init", "--read-only", "busybox", "sh", "-c", "echo hi")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Image != "busybox" || strings.Join(cfg.Cmd, " ") != "sh -c echo hi" || cfg.Entrypoint == nil || len(cfg.Entrypoint) != 0 {
		t.Errorf("image/cmd/entrypoint = %q %q %#v", cfg.Image, cfg.Cmd, cfg.Entrypoint)
	}
	if strings.Join(cfg.Env, ",") != "A=1,FROM_HOST=yes" {
		t.Errorf("env = %q (an unset KEY is dropped, a set one copied)", cfg.Env)
	}
	if !cfg.Tty || !cfg.OpenStdin || cfg.WorkingDir != "/srv" || cfg.User != "nobody:nogroup" || cfg.Labels["tier"] != "front" {
		t.Errorf("config = %+v", cfg)
	}
	r := host.Resources
	if r.Memory != 256<<20 || r.MemorySwap != 512<<20 || r.NanoCPUs != 1_500_000_000 || *r.PidsLimit != 64 || r.Ulimits[0].Hard != 2048 {
		t.Errorf("resources = %+v", r)
	}
	if !host.AutoRemove || !host.ReadonlyRootfs || host.Init == nil || !*host.Init || host.Tmpfs["/run"] != "size=64m" || host.Binds[0] != "/srv/site:/www:ro" {
		t.Errorf("host = %+v", host)
	}
	if len(host.PortBindings) != 3 || len(cfg.ExposedPorts) != 3 {
		t.Fatalf("ports: exposed %v bindings %v", cfg.ExposedPorts, host.PortBindings)
	}
	for p, b := range host.PortBindings {
		switch p.String() {
		case "80/tcp":
			if b[0].HostIP.String() != "127.0.0.1" || b[0].HostPort != "8080" {
				t.Errorf("80/tcp -> %+v", b)
			}
		case "9001/udp":
			if b[0].HostPort != "9001" {
				t.Errorf("9001/udp -> %+v", b)
			}
		}
	}
}

func TestRunFlagErrors(t *testing.T) {
	tests := []struct {
		args   []string
		errSub string
	}{
		{[]string{"-m", "lots", "busybox"}, "--memory: invalid size"},
		{[]string{"-m", "1k", "busybox"}, "--memory: minimum memory limit allowed is 6MB"},
		{[]string{"-m", "64m", "--memory-swap", "32m", "busybox"}, "--memory-swap: must be at least --memory"},
		{[]string{"--cpus", "-1", "busybox"}, "--cpus"},
		{[]string{"-p", "80:80:80:80", "busybox"}, "--publish"},
		{[]string{"-p", "70000", "busybox"}, "invalid port"},
		{[]string{"-v", "/a:relative", "busybox"}, "--volume: invalid volume specification"},
		{[]string{"-v", "/a:/b:xx", "busybox"}, `unknown option "xx"`},
		{[]string{"--restart", "sometimes", "busybox"}, "--restart: invalid restart policy"},
		{[]string{"--restart", "always", "--rm", "busybox"}, "cannot specify both --restart and --rm"},
		{[]string{"--mount", "type=bind,target=/x", "busybox"}, "a bind mount needs an absolute source"},
		{[]string{"--mount", "type=nfs,target=/x", "busybox"}, `type "nfs" is not supported`},
		{[]string{"-w", "rel", "busybox"}, "--workdir"},
		{[]string{"--ulimit", "nofile", "busybox"}, "--ulimit"},
		{[]string{"--dns", "not-an-ip", "busybox"}, "--dns"},
		{[]string{}, "requires at least 1 argument"},
	}
	for _, tt := range tests {
		_, _, err := parseRun(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.errSub) {
			t.Errorf("run %q: err = %v, want it to mention %q", tt.args, err, tt.errSub)
		}
	}
}

// TestPublishBindings checks -p against the bindings docker-cli 28 sends
// (HostConfig.PortBindings of its create request).
func TestPublishBindings(t *testing.T) {
	tests := []struct {
		spec, want, errSub string
	}{
		{spec: "80", want: "80/tcp=:"},
		{spec: "0:80", want: "80/tcp=:0"}, // any free host port, like "80"
		{spec: "127.0.0.1:0:81/udp", want: "81/udp=127.0.0.1:0"},
		{spec: "8080:80", want: "80/tcp=:8080"},
		{spec: "8000-8010:80", want: "80/tcp=:8000-8010"},
		{spec: "8000-8001:80-81", want: "80/tcp=:8000 81/tcp=:8001"},
		{spec: "0:80-81", errSub: "ranges differ in size"},
		{spec: "0-5:80", errSub: "invalid port"},
		{spec: "8080:0", errSub: "invalid port"},
	}
	for _, tt := range tests {
		_, bindings, err := parsePorts([]string{tt.spec}, nil)
		if tt.errSub != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errSub) || !strings.Contains(err.Error(), "--publish") {
				t.Errorf("-p %s: err = %v, want --publish ... %q", tt.spec, err, tt.errSub)
			}
			continue
		}
		if err != nil {
			t.Errorf("-p %s: %v", tt.spec, err)
			continue
		}
		var got []string
		for p, bs := range bindings {
			for _, b := range bs {
				ip := ""
				if b.HostIP.IsValid() {
					ip = b.HostIP.String()
				}
				got = append(got, p.String()+"="+ip+":"+b.HostPort)
			}
		}
		slices.Sort(got)
		if strings.Join(got, " ") != tt.want {
			t.Errorf("-p %s: bindings %q, want %q", tt.spec, got, tt.want)
		}
	}
}
