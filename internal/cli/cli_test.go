package cli

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func testApp(got *[]string, root *string, force *bool) *App {
	g := pflag.NewFlagSet("t", pflag.ContinueOnError)
	g.StringVar(root, "root", "/default", "")
	del := &Command{
		Use: "delete [flags] ID",
		Args: func(cmd *Command, args []string) error {
			if len(args) != 1 {
				return errors.New("want one id")
			}
			return nil
		},
		RunE: func(cmd *Command, args []string) error { *got = args; return nil },
	}
	del.Flags().BoolVarP(force, "force", "f", false, "")
	exec := &Command{Use: "exec ID CMD...", RunE: func(cmd *Command, args []string) error { *got = args; return nil }}
	exec.Flags().SetInterspersed(false)
	return &App{Name: "t", Version: "t 1\n", Global: g, Commands: []*Command{del, exec}}
}

func TestRun(t *testing.T) {
	tests := []struct {
		args      []string
		wantArgs  []string
		wantRoot  string
		wantForce bool
		errSub    string
	}{
		{args: []string{"delete", "c1"}, wantArgs: []string{"c1"}, wantRoot: "/default"},
		{args: []string{"--root", "/r", "delete", "-f", "c1"}, wantArgs: []string{"c1"}, wantRoot: "/r", wantForce: true},
		{args: []string{"delete", "c1", "--force"}, wantArgs: []string{"c1"}, wantRoot: "/default", wantForce: true},
		{args: []string{"exec", "c1", "sh", "-c", "x"}, wantArgs: []string{"c1", "sh", "-c", "x"}, wantRoot: "/default"},
		{args: []string{"delete"}, errSub: "want one id"},
		{args: []string{"nope"}, errSub: `unknown command "nope"`},
		{args: []string{"delete", "--bogus", "c1"}, errSub: "unknown flag: --bogus"},
		{args: []string{}, errSub: "no command given"},
	}
	for _, tt := range tests {
		var got []string
		var root string
		var force bool
		var out strings.Builder
		err := testApp(&got, &root, &force).Run(tt.args, &out)
		if tt.errSub != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("Run(%q) = %v, want an error containing %q", tt.args, err, tt.errSub)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != strings.Join(tt.wantArgs, " ") || root != tt.wantRoot || force != tt.wantForce {
			t.Errorf("Run(%q) = %v: args %q root %q force %v; want %q %q %v", tt.args, err, got, root, force, tt.wantArgs, tt.wantRoot, tt.wantForce)
		}
	}
}

// TestUsageError: a flag the parser refuses is a *UsageError with
// Docker's message, for the verb's flags and the global ones alike.
func TestUsageError(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"delete", "--bogus", "c1"}, "unknown flag: --bogus\nSee 't delete --help'."},
		{[]string{"--bogus", "delete", "c1"}, "unknown flag: --bogus\nSee 't --help'."},
		{[]string{"--root"}, "flag needs an argument: --root\nSee 't --help'."},
	} {
		var got []string
		var root string
		var force bool
		err := testApp(&got, &root, &force).Run(tt.args, io.Discard)
		var ue *UsageError
		if !errors.As(err, &ue) || err.Error() != tt.want {
			t.Errorf("Run(%q) = %v (%T), want a *UsageError %q", tt.args, err, err, tt.want)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	var got []string
	var root string
	var force bool
	var out strings.Builder
	if err := testApp(&got, &root, &force).Run([]string{"--version"}, &out); err != nil || out.String() != "t 1\n" {
		t.Errorf("--version: %v, %q", err, out.String())
	}
	out.Reset()
	if err := testApp(&got, &root, &force).Run([]string{"delete", "--help"}, &out); err != nil || !strings.Contains(out.String(), "Usage: t delete [flags] ID") || !strings.Contains(out.String(), "--force") {
		t.Errorf("delete --help: %v, %q", err, out.String())
	}
	if got != nil {
		t.Errorf("--help ran the command")
	}
}

func TestGroups(t *testing.T) {
	var got []string
	var ran string
	ls := &Command{Use: "ls", Aliases: []string{"list"}, RunE: func(cmd *Command, args []string) error { ran = cmd.CommandPath(); got = args; return nil }}
	all := ls.Flags().BoolP("all", "a", false, "")
	app := &App{Name: "b", Global: pflag.NewFlagSet("b", pflag.ContinueOnError),
		Commands: []*Command{{Use: "image", Short: "images", Sub: []*Command{ls}}}}
	if err := app.Run([]string{"image", "list", "-a", "x"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if ran != "b image ls" || !*all || strings.Join(got, ",") != "x" {
		t.Errorf("ran %q all=%v args=%q", ran, *all, got)
	}
	if err := app.Run([]string{"image", "nope"}, io.Discard); err == nil || !strings.Contains(err.Error(), `unknown command "nope" for "b image"`) {
		t.Errorf("unknown sub-command: %v", err)
	}
	var out strings.Builder
	if err := app.Run([]string{"image", "--help"}, &out); err != nil || !strings.Contains(out.String(), "ls ") {
		t.Errorf("group help: %v %q", err, out.String())
	}
}
