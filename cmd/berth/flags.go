package main

import (
	"bytes"
	"encoding/csv"
	"strings"

	"github.com/spf13/pflag"
)

// stringArrayVarP is pflag's StringArrayVarP (default nil): a flag that may
// be repeated, each value taken whole. pflag's own value formats its
// default with a csv.Writer when the flag is defined, for every flag of
// the command: 4% of a `berth create`.
func stringArrayVarP(fs *pflag.FlagSet, p *[]string, name, short, usage string) {
	*p = nil
	fs.VarP(&stringArray{p: p}, name, short, usage)
}

// stringArray behaves as pflag's stringArray value (its help, its
// SliceValue methods, first Set replacing the default).
type stringArray struct {
	p       *[]string
	changed bool
}

func (s *stringArray) Set(v string) error {
	if !s.changed {
		*s.p = []string{v}
		s.changed = true
	} else {
		*s.p = append(*s.p, v)
	}
	return nil
}

func (s *stringArray) Type() string { return "stringArray" }

// String is pflag's "[a,b]" (a CSV record); "" when empty, so that help
// shows no default, as pflag does for its own empty arrays.
func (s *stringArray) String() string {
	if len(*s.p) == 0 {
		return ""
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write(*s.p)
	w.Flush()
	return "[" + strings.TrimSuffix(b.String(), "\n") + "]"
}

func (s *stringArray) Append(v string) error {
	*s.p = append(*s.p, v)
	return nil
}

func (s *stringArray) Replace(v []string) error {
	*s.p = append([]string(nil), v...)
	return nil
}

func (s *stringArray) GetSlice() []string { return *s.p }
