package image

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestFilter(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, true)
	base, err := ts.Import(ctx, bytes.NewReader(rootfsTar()), ImportOptions{Ref: "localhost/base:1", Changes: []string{"LABEL tier=base"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Commit(ctx, CommitOptions{Base: base.ID, Layer: bytes.NewReader(changesTar()), Ref: "localhost/app:1", Changes: []string{"LABEL tier=app"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Commit(ctx, CommitOptions{Base: base.ID, Layer: bytes.NewReader(testLayers()[2])}); err != nil {
		t.Fatal(err)
	}
	all, err := ts.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := func(imgs []Summary) string {
		var out []string
		for _, i := range imgs {
			if len(i.RepoTags) == 0 {
				out = append(out, "<none>")
			} else {
				out = append(out, strings.Join(i.RepoTags, "+"))
			}
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		filters []string
		want    string
	}{
		{nil, "<none>,localhost/app:1,localhost/base:1"},
		{[]string{"dangling=true"}, "<none>"},
		{[]string{"dangling=false"}, "localhost/app:1,localhost/base:1"},
		{[]string{"reference=localhost/app"}, "localhost/app:1"},
		{[]string{"reference=localhost/*:1"}, "localhost/app:1,localhost/base:1"},
		{[]string{"reference=localhost/app", "reference=localhost/base"}, "localhost/app:1,localhost/base:1"},
		{[]string{"label=tier=app"}, "localhost/app:1"},
		{[]string{"label=tier"}, "<none>,localhost/app:1,localhost/base:1"},
		{[]string{"label=tier", "dangling=false", "reference=*/base"}, "localhost/base:1"},
		{[]string{"since=localhost/base:1", "dangling=false"}, "localhost/app:1"},
		{[]string{"before=localhost/app:1"}, "localhost/base:1"},
	}
	for _, tt := range tests {
		got, err := ts.Filter(ctx, all, tt.filters)
		if err != nil {
			t.Errorf("Filter(%q) error: %v", tt.filters, err)
			continue
		}
		if names(got) != tt.want {
			t.Errorf("Filter(%q) = %s, want %s", tt.filters, names(got), tt.want)
		}
	}
	for _, bad := range []string{"dangling=maybe", "color=red", "since=nothing", "reference"} {
		if _, err := ts.Filter(ctx, all, []string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("Filter(%q) = %v, want an error naming it", bad, err)
		} else if bad != "since=nothing" && !errors.Is(err, ErrInvalid) {
			t.Errorf("Filter(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}
