package jsonlog

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var at = time.Date(2026, 11, 27, 21, 3, 41, 123456789, time.UTC)

func TestAppendRecordIsDockersFormat(t *testing.T) {
	tests := []struct {
		stream string
		log    string
		t      time.Time
		want   string
	}{
		{Stdout, "hello\n", at, `{"log":"hello\n","stream":"stdout","time":"2026-11-27T21:03:41.123456789Z"}`},
		{Stderr, "no newline", at.Truncate(time.Second), `{"log":"no newline","stream":"stderr","time":"2026-11-27T21:03:41Z"}`},
		{Stdout, "<b>\t\"q\"\r\n", at.In(time.FixedZone("X", 3600)), `{"log":"\u003cb\u003e\t\"q\"\r\n","stream":"stdout","time":"2026-11-27T21:03:41.123456789Z"}`},
		{Stdout, "", at.Truncate(time.Millisecond), `{"log":"","stream":"stdout","time":"2026-11-27T21:03:41.123Z"}`},
	}
	for _, tt := range tests {
		got := string(AppendRecord(nil, tt.stream, []byte(tt.log), tt.t))
		if got != tt.want+"\n" {
			t.Errorf("AppendRecord(%s, %q) =\n%s\nwant\n%s", tt.stream, tt.log, got, tt.want)
		}
		// Docker's reader decodes it with encoding/json into this shape.
		var d struct {
			Log    string    `json:"log"`
			Stream string    `json:"stream"`
			Time   time.Time `json:"time"`
		}
		if err := json.Unmarshal([]byte(got), &d); err != nil || d.Log != tt.log || d.Stream != tt.stream || !d.Time.Equal(tt.t) {
			t.Errorf("encoding/json reads %s as %+v, %v", got, d, err)
		}
		var r Record
		if err := ParseRecord([]byte(got), &r); err != nil || string(r.Log) != tt.log || r.Stream != tt.stream || !r.Time.Equal(tt.t) {
			t.Errorf("ParseRecord(%s) = %+v, %v", got, r, err)
		}
	}
}

func TestParseRecordRejectsGarbage(t *testing.T) {
	var r Record
	for _, bad := range []string{``, `{"log":"x"`, `{"log":1}`, `{"time":"yesterday"}`, `["log"]`} {
		if err := ParseRecord([]byte(bad), &r); err == nil {
			t.Errorf("ParseRecord(%q) succeeded, want an error", bad)
		}
	}
}

func TestLinesCutsAtNewlinesAndMaxLine(t *testing.T) {
	long := strings.Repeat("x", MaxLine)
	tests := []struct {
		name   string
		chunks []string
		flush  bool
		want   []string
	}{
		{"one line", []string{"a\n"}, false, []string{"a\n"}},
		{"two lines in one read", []string{"a\nb\n"}, false, []string{"a\n", "b\n"}},
		{"line across reads", []string{"he", "llo\nwor", "ld\n"}, false, []string{"hello\n", "world\n"}},
		{"pending kept until flush", []string{"a\npartial"}, false, []string{"a\n"}},
		{"flush emits the partial line", []string{"a\npartial"}, true, []string{"a\n", "partial"}},
		{"empty lines", []string{"\n\n"}, false, []string{"\n", "\n"}},
		{"exactly MaxLine without newline", []string{long}, false, []string{long}},
		{"MaxLine then newline", []string{long, "\n"}, false, []string{long, "\n"}},
		{"long line cut", []string{long + "abc\n"}, false, []string{long, "abc\n"}},
		{"nothing to flush", []string{"a\n"}, true, []string{"a\n"}},
	}
	for _, tt := range tests {
		var l Lines
		var got []string
		emit := func(b []byte) { got = append(got, string(b)) }
		for _, c := range tt.chunks {
			for len(c) > 0 {
				n := copy(l.Free(), c)
				c = c[n:]
				l.Commit(n, emit)
			}
		}
		if tt.flush {
			l.Flush(emit)
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: lines = %q, want %q", tt.name, short(got), short(tt.want))
		}
	}
}

func short(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		if len(x) > 20 {
			x = fmt.Sprintf("%s...(%d bytes)", x[:10], len(x))
		}
		out[i] = x
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriterRotatesBySize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	rec := AppendRecord(nil, Stdout, []byte("line 0\n"), at)
	// Room for exactly three records per file.
	w, err := Open(path, int64(3*len(rec)), 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := w.Write(Stdout, []byte(fmt.Sprintf("line %d\n", i)), at); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// 10 records: [0 1 2] [3 4 5] [6 7 8] [9]; three files kept.
	want := map[string][]int{"c.log": {9}, "c.log.1": {6, 7, 8}, "c.log.2": {3, 4, 5}}
	for name, lines := range want {
		var exp string
		for _, i := range lines {
			exp += string(AppendRecord(nil, Stdout, []byte(fmt.Sprintf("line %d\n", i)), at))
		}
		if got := readFile(t, filepath.Join(dir, name)); got != exp {
			t.Errorf("%s =\n%s\nwant\n%s", name, got, exp)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "c.log.3")); !os.IsNotExist(err) {
		t.Errorf("c.log.3 exists (%v), want at most 3 files", err)
	}
}

func TestWriterWithOneFileTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	rec := AppendRecord(nil, Stderr, []byte("x\n"), at)
	w, err := Open(path, int64(2*len(rec)), 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := w.Write(Stderr, []byte("x\n"), at); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if got := readFile(t, path); got != string(rec) {
		t.Errorf("log = %q, want the last record only", got)
	}
	if m, _ := filepath.Glob(path + ".*"); len(m) != 0 {
		t.Errorf("rotated files %v with max-files 1", m)
	}
}

func TestWriterAppendsToAnExistingLogAndCountsItsSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	old := AppendRecord(nil, Stdout, []byte("before restart\n"), at)
	if err := os.WriteFile(path, old, 0o640); err != nil {
		t.Fatal(err)
	}
	w, err := Open(path, int64(len(old)+10), 2)
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != int64(len(old)) {
		t.Errorf("Size = %d, want %d", w.Size(), len(old))
	}
	if err := w.Write(Stdout, []byte("after\n"), at); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got := readFile(t, path+".1"); got != string(old) {
		t.Errorf("rotated file = %q, want the old content", got)
	}
}

func TestWriterDisabledRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := Open(path, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := w.Write(Stdout, []byte("0123456789\n"), at); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if m, _ := filepath.Glob(path + ".*"); len(m) != 0 {
		t.Errorf("rotated files %v with rotation off", m)
	}
}

func TestWriterAllocatesNothingPerRecord(t *testing.T) {
	w, err := Open(filepath.Join(t.TempDir(), "c.log"), 1<<30, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	line := []byte("a line of output with <escapes> and ✓\n")
	now := time.Now()
	if n := testing.AllocsPerRun(200, func() { _ = w.Write(Stdout, line, now) }); n != 0 {
		t.Errorf("Writer.Write allocates %v times per record, want 0", n)
	}
}

// TestLinesPendingRestore: the incomplete line carried to another process
// completes there as it would have here.
func TestLinesPendingRestore(t *testing.T) {
	var a, b Lines
	var got []string
	emit := func(l []byte) { got = append(got, string(l)) }
	n := copy(a.Free(), "one\ntw")
	a.Commit(n, emit)
	b.Restore(a.Pending())
	n = copy(b.Free(), "o\n")
	b.Commit(n, emit)
	if want := []string{"one\n", "two\n"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
	if len(b.Pending()) != 0 {
		t.Errorf("pending %q after a complete line", b.Pending())
	}
}
