package containerspec

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestExecProcess(t *testing.T) {
	spec := &specs.Spec{Process: &specs.Process{
		Args: []string{"sleep", "100"}, Env: []string{"PATH=/bin", "A=1"}, Cwd: "/srv",
		User:         specs.User{UID: 0, GID: 0},
		Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"}},
		Rlimits:      []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 10}},
	}}
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n")
	group := []byte("root:x:0:\nbob:x:1000:\nwheel:x:10:bob\n")
	p, err := ExecProcess(spec, ExecInput{Cmd: []string{"id"}, Env: []string{"A=2", "B=3"}, User: "bob", Tty: true, Passwd: passwd, Group: group})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Args, " ") != "id" || !p.Terminal || p.Cwd != "/srv" {
		t.Errorf("process = %+v", p)
	}
	if got := strings.Join(p.Env, ","); got != "PATH=/bin,A=2,B=3,TERM=xterm,HOME=/home/bob" {
		t.Errorf("env = %s", got)
	}
	if p.User.UID != 1000 || p.User.GID != 1000 || len(p.User.AdditionalGids) != 1 || p.User.AdditionalGids[0] != 10 {
		t.Errorf("user = %+v", p.User)
	}
	if p.Rlimits[0].Soft != 10 || p.Capabilities.Bounding[0] != "CAP_KILL" {
		t.Errorf("rlimits/caps not kept: %+v %+v", p.Rlimits, p.Capabilities)
	}
	if spec.Process.Env[1] != "A=1" || spec.Process.Args[0] != "sleep" {
		t.Errorf("ExecProcess changed the container's spec: %+v", spec.Process)
	}
	for _, bad := range []ExecInput{{}, {Cmd: []string{"x"}, User: "nobody"}, {Cmd: []string{"x"}, WorkingDir: "rel"}} {
		if _, err := ExecProcess(spec, ExecInput{Cmd: bad.Cmd, User: bad.User, WorkingDir: bad.WorkingDir, Passwd: passwd, Group: group}); err == nil {
			t.Errorf("ExecProcess(%+v) succeeded", bad)
		}
	}
	priv, _ := ExecProcess(spec, ExecInput{Cmd: []string{"x"}, Privileged: true})
	if len(priv.Capabilities.Effective) < 30 {
		t.Errorf("--privileged exec has %d capabilities", len(priv.Capabilities.Effective))
	}
}
