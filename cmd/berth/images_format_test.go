package main

import (
	"strings"
	"testing"
	"time"
)

func TestFormatterWrite(t *testing.T) {
	header := map[string]string{"ID": "IMAGE ID", "Name": "NAME"}
	rows := []any{
		map[string]string{"ID": "abc", "Name": "busybox"},
		map[string]string{"ID": "defdefdefdef", "Name": "x"},
	}
	tests := []struct {
		name, format, want, errSub string
	}{
		{name: "default table", format: "", want: "IMAGE ID       NAME\nabc            busybox\ndefdefdefdef   x\n"},
		{name: "table keyword", format: "table", want: "IMAGE ID       NAME\nabc            busybox\ndefdefdefdef   x\n"},
		{name: "table template with typed \\t", format: `table {{.Name}}\t{{.ID}}`, want: "NAME      IMAGE ID\nbusybox   abc\nx         defdefdefdef\n"},
		{name: "plain template, no header", format: "{{.Name}}:{{.ID}}", want: "busybox:abc\nx:defdefdefdef\n"},
		{name: "json rows", format: "json", want: `{"ID":"abc","Name":"busybox"}` + "\n" + `{"ID":"defdefdefdef","Name":"x"}` + "\n"},
		{name: "functions", format: `{{upper .Name}} {{truncate .ID 2}} {{json .Name}} {{pad .ID 1 1}}|`, want: "BUSYBOX ab \"busybox\"  abc |\nX de \"x\"  defdefdefdef |\n"},
		{name: "header keeps titles through functions", format: `table {{lower .Name}}`, want: "NAME\nbusybox\nx\n"},
		{name: "unknown field is an error", format: "{{.Nope}}", errSub: `map has no entry for key "Nope"`},
		{name: "bad template", format: "{{.ID", errSub: "template parsing error"},
	}
	for _, tt := range tests {
		var b strings.Builder
		err := formatter{Format: tt.format, Default: "table {{.ID}}\t{{.Name}}", Header: header}.Write(&b, rows)
		if tt.errSub != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("%s: Write(%q) = %v, want an error containing %q", tt.name, tt.format, err, tt.errSub)
			}
			continue
		}
		if err != nil || b.String() != tt.want {
			t.Errorf("%s: Write(%q) = %v,\n%q\nwant\n%q", tt.name, tt.format, err, b.String(), tt.want)
		}
	}
}

func TestFormatterEmptyTableHasHeader(t *testing.T) {
	var b strings.Builder
	if err := (formatter{Default: "table {{.ID}}", Header: map[string]string{"ID": "IMAGE ID"}}).Write(&b, nil); err != nil {
		t.Fatal(err)
	}
	if b.String() != "IMAGE ID\n" {
		t.Errorf("empty table = %q, want just the header", b.String())
	}
}

func TestHumanSize(t *testing.T) {
	tests := []struct {
		n         int64
		precision int
		want      string
	}{
		{0, 3, "0B"},
		{999, 3, "999B"},
		{1000, 3, "1kB"},
		{1234567, 3, "1.23MB"},
		{1234567, 4, "1.235MB"},
		{4_260_000, 3, "4.26MB"},
		{150_000_000_000, 3, "150GB"},
	}
	for _, tt := range tests {
		if got := humanSize(tt.n, tt.precision); got != tt.want {
			t.Errorf("humanSize(%d, %d) = %q, want %q", tt.n, tt.precision, got, tt.want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{500 * time.Millisecond, "Less than a second"},
		{time.Second, "1 second"},
		{45 * time.Second, "45 seconds"},
		{90 * time.Second, "About a minute"},
		{30 * time.Minute, "30 minutes"},
		{time.Hour, "About an hour"},
		{5 * time.Hour, "5 hours"},
		{72 * time.Hour, "3 days"},
		{21 * 24 * time.Hour, "3 weeks"},
		{90 * 24 * time.Hour, "3 months"},
		{3 * 365 * 24 * time.Hour, "3 years"},
	}
	for _, tt := range tests {
		if got := humanDuration(tt.d); got != tt.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	if got := createdSince(now.Add(-2*time.Hour), now); got != "2 hours ago" {
		t.Errorf("createdSince(2h before) = %q, want %q", got, "2 hours ago")
	}
	if got := createdSince(time.Time{}, now); got != "N/A" {
		t.Errorf("createdSince(zero) = %q, want N/A", got)
	}
}

func TestEllipsis(t *testing.T) {
	tests := []struct {
		s    string
		max  int
		want string
	}{
		{"short", 45, "short"},
		{"abcdef", 6, "abcdef"},
		{"abcdefg", 6, "abcde…"},
		{"ééééééé", 3, "éé…"},
	}
	for _, tt := range tests {
		if got := ellipsis(tt.s, tt.max); got != tt.want {
			t.Errorf("ellipsis(%q, %d) = %q, want %q", tt.s, tt.max, got, tt.want)
		}
	}
}
