package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"
)

// formatter prints rows the way Docker's --format does:
//
//	""              the command's default table
//	"table"         the same
//	"table TMPL"    a header line (TMPL run on Header), then TMPL per row, in
//	                columns aligned by tabs
//	"json"          one JSON object per row (every field)
//	"TMPL"          TMPL per row, no header
//
// Literal `\t` and `\n` in a format are tab and newline, as in Docker.
// Templates get Docker's functions: json, join, split, lower, upper, title,
// pad, truncate.
//
// A row is a map of field name to value (a field a template names that the
// map lacks is an error, like a missing field of Docker's structs), or any
// value whose methods and fields the template uses.
type formatter struct {
	// Format is the user's --format.
	Format string
	// Default is the "table ..." format used for "" and "table".
	Default string
	// Header titles the columns of a table, by field name ("ID": "IMAGE ID").
	Header map[string]string
}

// Write renders rows to w.
func (f formatter) Write(w io.Writer, rows []any) error {
	format := f.Format
	if format == "" || format == "table" {
		format = f.Default
	}
	table := strings.HasPrefix(format, "table")
	switch {
	case format == "json":
		format = "{{json .}}"
	case table:
		format = strings.TrimPrefix(format, "table")
	}
	format = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(strings.Trim(format, " "))
	tmpl, err := template.New("").Funcs(templateFuncs).Option("missingkey=error").Parse(format)
	if err != nil {
		return fmt.Errorf("--format %q: template parsing error: %w", f.Format, err)
	}
	var body bytes.Buffer
	for _, r := range rows {
		if err := tmpl.Execute(&body, r); err != nil {
			return fmt.Errorf("--format %q: %w", f.Format, err)
		}
		body.WriteByte('\n')
	}
	if !table {
		_, err := body.WriteTo(w)
		return err
	}
	// Headers render with functions that leave the title as it is.
	var head bytes.Buffer
	if htmpl, err := template.New("").Funcs(headerFuncs).Option("missingkey=zero").Parse(format); err == nil {
		htmpl.Execute(&head, f.Header)
	}
	tw := tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
	head.WriteByte('\n')
	head.WriteTo(tw)
	body.WriteTo(tw)
	return tw.Flush()
}

// templateFuncs are Docker's template functions.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSpace(b.String()), nil
	},
	"split": strings.Split,
	"join":  strings.Join,
	"title": func(s string) string {
		// ASCII title case, like Docker's use of strings.Title.
		b := []byte(s)
		for i := range b {
			if (i == 0 || b[i-1] == ' ') && b[i] >= 'a' && b[i] <= 'z' {
				b[i] -= 'a' - 'A'
			}
		}
		return string(b)
	},
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"pad": func(s string, prefix, suffix int) string {
		if s == "" {
			return s
		}
		return strings.Repeat(" ", prefix) + s + strings.Repeat(" ", suffix)
	},
	"truncate": func(s string, n int) string {
		if len(s) < n {
			return s
		}
		return s[:n]
	},
}

// headerFuncs keep a column title intact where a row's value would be changed.
var headerFuncs = template.FuncMap{
	"json":     func(v any) string { return fmt.Sprint(v) },
	"split":    func(v, _ string) string { return v },
	"join":     func(v, _ string) string { return v },
	"title":    func(v string) string { return v },
	"lower":    func(v string) string { return v },
	"upper":    func(v string) string { return v },
	"truncate": func(v string, _ int) string { return v },
	"pad":      templateFuncs["pad"],
}

// humanSize is Docker's decimal size with the given significant digits
// (go-units HumanSizeWithPrecision): "4.26MB", "512B". Docker lists image
// sizes with 3 digits and totals with 4.
func humanSize(n int64, precision int) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.*g%s", precision, f, units[i])
}

// humanDuration is Docker's rough duration (go-units HumanDuration): "2
// hours", "About a minute", "3 weeks".
func humanDuration(d time.Duration) string {
	seconds := int(d.Seconds())
	minutes := int(d.Minutes())
	hours := int(d.Hours() + 0.5)
	switch {
	case seconds < 1:
		return "Less than a second"
	case seconds == 1:
		return "1 second"
	case seconds < 60:
		return fmt.Sprintf("%d seconds", seconds)
	case minutes == 1:
		return "About a minute"
	case minutes < 60:
		return fmt.Sprintf("%d minutes", minutes)
	case hours == 1:
		return "About an hour"
	case hours < 48:
		return fmt.Sprintf("%d hours", hours)
	case hours < 24*7*2:
		return fmt.Sprintf("%d days", hours/24)
	case hours < 24*30*2:
		return fmt.Sprintf("%d weeks", hours/24/7)
	case hours < 24*365*2:
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}

// createdSince is "<duration> ago" relative to now ("N/A" for an unknown time).
func createdSince(t, now time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	return humanDuration(now.Sub(t)) + " ago"
}

// ellipsis cuts s to max runes, ending in "…" when it was longer (Docker's
// truncation of CREATED BY).
func ellipsis(s string, max int) string {
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	if max < 1 {
		return ""
	}
	return string(r[:max-1]) + "…"
}
