package main

import (
	"reflect"
	"strings"
	"testing"
)

// TestConfigArgvRoundTrip: the command line berth-shim-idle executes again
// reads back as the same configuration.
func TestConfigArgvRoundTrip(t *testing.T) {
	for _, args := range []string{
		"--id c1 --bundle /b --runtime /bin/true --dir /d",
		"--id c1 --bundle /b --runtime /bin/true --dir /d --runtime-root /r --log /d/l --log-max-size 100 --log-max-files 2" +
			" --tty --stdin --stdin-once --wait-attach --restart on-failure:4 --oom-file /cg/f --exit-command /bin/true --exit-arg a --exit-arg b",
		"--id c1 --bundle /b --runtime /bin/true --dir /d --restart unless-stopped --attach-fd 5",
	} {
		c, err := parseArgs(strings.Fields(args))
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseArgs(c.argv())
		if err != nil {
			t.Fatalf("parseArgs(%q): %v", c.argv(), err)
		}
		c.attachFd = 0 // not handed back: the listener is in the resume state
		if !reflect.DeepEqual(c, back) {
			t.Errorf("%s:\nargv %q\nreads back as %+v\nwant %+v", args, c.argv(), back, c)
		}
	}
}

func TestResumeState(t *testing.T) {
	st := resumeState{pid: 42, restarts: 3, startedAt: 1764400000123456789, oomBase: -1, backoff: 400e6,
		ctl: 12, att: 11, in: -2, inPipe: false, inOnceDone: true, winH: 40, winW: 120, idleFd: 9, shimFd: 10}
	got, err := parseResumeState(st.String())
	if err != nil || got != st {
		t.Fatalf("parseResumeState(%q) = %+v, %v; want %+v", st.String(), got, err, st)
	}
	for _, bad := range []string{"", "pid=1", st.String() + ",extra=1", strings.Replace(st.String(), "ctl=12", "ctl=x", 1),
		strings.Replace(st.String(), "pid=42", "pid=0", 1), strings.Replace(st.String(), "shimfd=10", "shimfd=-1", 1)} {
		if _, err := parseResumeState(bad); err == nil {
			t.Errorf("parseResumeState(%q): no error", bad)
		}
	}
	c, err := parseArgs([]string{"--id", "c", "--bundle", "/b", "--runtime", "/bin/true", "--dir", "/d",
		"--resume=" + st.String(), "--resume-out=13", "--resume-err=-1", "--resume-partial-out=61620a"})
	if err != nil {
		t.Fatal(err)
	}
	if c.resume == nil || *c.resume != st || c.resumeOut != [2]int{13, -1} || string(c.resumePartial[0]) != "ab\n" || c.resumePartial[1] != nil {
		t.Errorf("resume flags read as %+v %v %q", c.resume, c.resumeOut, c.resumePartial)
	}
	if _, err := parseArgs([]string{"--id", "c", "--bundle", "/b", "--runtime", "/bin/true", "--dir", "/d", "--resume-partial-err=zz"}); err == nil {
		t.Errorf("--resume-partial-err=zz: no error")
	}
}
