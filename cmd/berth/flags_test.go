package main

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/engine"
)

// stringArrayVarP behaves as pflag's StringArrayVarP: values taken whole
// (commas included), repeated flags append, the same help and String.
func TestStringArrayFlag(t *testing.T) {
	var mine, theirs []string
	a := pflag.NewFlagSet("a", pflag.ContinueOnError)
	stringArrayVarP(a, &mine, "env", "e", "set")
	b := pflag.NewFlagSet("b", pflag.ContinueOnError)
	b.StringArrayVarP(&theirs, "env", "e", nil, "set")
	args := []string{"-e", "A=1,2", "--env", `B="x"`, "-eC"}
	if err := a.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := b.Parse(args); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mine, theirs) || len(mine) != 3 {
		t.Fatalf("values %q, pflag's %q", mine, theirs)
	}
	fa, fb := a.Lookup("env"), b.Lookup("env")
	if fa.Value.String() != fb.Value.String() || fa.Value.Type() != fb.Value.Type() {
		t.Fatalf("String %q Type %q; pflag's %q %q", fa.Value.String(), fa.Value.Type(), fb.Value.String(), fb.Value.Type())
	}
	if got, err := a.GetStringArray("env"); err != nil || !slices.Equal(got, mine) {
		t.Fatalf("GetStringArray = %q, %v", got, err)
	}
	if a.FlagUsages() != b.FlagUsages() {
		t.Fatalf("help:\n%s\npflag's:\n%s", a.FlagUsages(), b.FlagUsages())
	}
}

func TestUserMessage(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: No such container: x", engine.ErrNotFound), "No such container: x"},
		{fmt.Errorf("%w: Conflict. The container name \"/x\" is already in use", engine.ErrConflict), `Conflict. The container name "/x" is already in use`},
		{fmt.Errorf("start container x: %w: bad", engine.ErrInvalid), "start container x: invalid argument: bad"}, // only in front
		{errors.New("not found: not one of ours"), "not found: not one of ours"},
	}
	for _, tt := range tests {
		if got := userMessage(tt.err); got != tt.want {
			t.Errorf("userMessage(%q) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
