package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/shim/jsonlog"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// writeLog writes n records "line-i" at t0+i seconds, odd ones on stderr,
// through the rotating writer.
func writeLog(t *testing.T, path string, maxSize int64, n int) {
	t.Helper()
	w, err := jsonlog.Open(path, maxSize, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < n; i++ {
		stream := jsonlog.Stdout
		if i%2 == 1 {
			stream = jsonlog.Stderr
		}
		if err := w.Write(stream, []byte(fmt.Sprintf("line-%d\n", i)), t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
}

func collect(t *testing.T, path string, o LogOptions) []string {
	t.Helper()
	var got []string
	err := ReadLogs(context.Background(), path, o, func(r *jsonlog.Record) error {
		got = append(got, strings.TrimSuffix(string(r.Log), "\n"))
		return nil
	})
	if err != nil {
		t.Fatalf("ReadLogs(%+v): %v", o, err)
	}
	return got
}

func lines(idx ...int) []string {
	out := make([]string, len(idx))
	for i, n := range idx {
		out[i] = fmt.Sprintf("line-%d", n)
	}
	return out
}

func TestReadLogsSelects(t *testing.T) {
	for _, rotate := range []int64{0, 300} { // one file; rotated every few records
		path := filepath.Join(t.TempDir(), "c.log")
		writeLog(t, path, rotate, 10)
		tests := []struct {
			name string
			o    LogOptions
			want []string
		}{
			{"all", LogOptions{Tail: TailAll, Stdout: true, Stderr: true}, lines(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
			{"stdout", LogOptions{Tail: TailAll, Stdout: true}, lines(0, 2, 4, 6, 8)},
			{"stderr", LogOptions{Tail: TailAll, Stderr: true}, lines(1, 3, 5, 7, 9)},
			{"tail 3", LogOptions{Tail: 3, Stdout: true, Stderr: true}, lines(7, 8, 9)},
			{"tail 0", LogOptions{Tail: 0, Stdout: true, Stderr: true}, lines()},
			{"tail more than all", LogOptions{Tail: 50, Stdout: true, Stderr: true}, lines(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
			{"tail then stream filter", LogOptions{Tail: 4, Stdout: true}, lines(6, 8)},
			{"since", LogOptions{Tail: TailAll, Stdout: true, Stderr: true, Since: t0.Add(7 * time.Second)}, lines(7, 8, 9)},
			{"until", LogOptions{Tail: TailAll, Stdout: true, Stderr: true, Until: t0.Add(2 * time.Second)}, lines(0, 1)},
			{"since and until", LogOptions{Tail: TailAll, Stdout: true, Stderr: true, Since: t0.Add(3 * time.Second), Until: t0.Add(5 * time.Second)}, lines(3, 4)},
			{"tail then since", LogOptions{Tail: 2, Stdout: true, Stderr: true, Since: t0.Add(9 * time.Second)}, lines(9)},
		}
		for _, tt := range tests {
			got := collect(t, path, tt.o)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("rotate at %d, %s: got %v, want %v", rotate, tt.name, got, tt.want)
			}
		}
		if rotate > 0 {
			if m, _ := filepath.Glob(path + ".*"); len(m) < 2 {
				t.Fatalf("rotated files = %v, the test needs several", m)
			}
		}
	}
}

func TestReadLogsOfAMissingLogIsEmpty(t *testing.T) {
	if got := collect(t, filepath.Join(t.TempDir(), "none.log"), LogOptions{Tail: TailAll, Stdout: true}); len(got) != 0 {
		t.Errorf("records of a missing log = %v", got)
	}
}

func TestReadLogsSkipsTornLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	writeLog(t, path, 0, 2)
	w, err := jsonlog.Open(path, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	appendRaw(t, path, "not json\n{\"log\":\"torn")
	if got := collect(t, path, LogOptions{Tail: TailAll, Stdout: true, Stderr: true}); fmt.Sprint(got) != fmt.Sprint(lines(0, 1)) {
		t.Errorf("records = %v, want the two good ones", got)
	}
}

func appendRaw(t *testing.T, path, s string) {
	t.Helper()
	f, err := openAppend(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestReadLogsStopsOnCallbackError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	writeLog(t, path, 0, 5)
	stop := errors.New("client gone")
	n := 0
	err := ReadLogs(context.Background(), path, LogOptions{Tail: TailAll, Stdout: true, Stderr: true}, func(*jsonlog.Record) error {
		n++
		return stop
	})
	if err != stop || n != 1 {
		t.Errorf("ReadLogs = %v after %d records, want the callback's error after 1", err, n)
	}
}

func TestFollowAcrossRotationsUntilDone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	writeLog(t, path, 0, 2) // lines 0, 1 before following starts
	w, err := jsonlog.Open(path, 200, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var finished atomic.Bool
	var got []string
	done := make(chan error, 1)
	seen := make(chan struct{}, 100)
	go func() {
		done <- ReadLogs(context.Background(), path, LogOptions{Tail: TailAll, Stdout: true, Stderr: true, Follow: true,
			Done: finished.Load}, func(r *jsonlog.Record) error {
			got = append(got, strings.TrimSuffix(string(r.Log), "\n"))
			seen <- struct{}{}
			return nil
		})
	}()
	<-seen
	<-seen
	// Written while following: about two records per file, many rotations.
	for i := 2; i < 40; i++ {
		if err := w.Write(jsonlog.Stdout, []byte(fmt.Sprintf("line-%d\n", i)), t0); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			<-seen // let the follower catch up now and then, not always
		}
	}
	w.Close()
	finished.Store(true)
	if err := <-done; err != nil {
		t.Fatalf("ReadLogs: %v", err)
	}
	var want []int
	for i := 0; i < 40; i++ {
		want = append(want, i)
	}
	if fmt.Sprint(got) != fmt.Sprint(lines(want...)) {
		t.Errorf("followed %v\nwant %v", got, lines(want...))
	}
}

func TestFollowStopsWithTheContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	writeLog(t, path, 0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ReadLogs(ctx, path, LogOptions{Tail: TailAll, Stdout: true, Follow: true}, func(*jsonlog.Record) error {
			cancel()
			return nil
		})
	}()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("ReadLogs after cancel = %v, want context.Canceled", err)
	}
}

func TestFollowWaitsForALogNotYetCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	var finished atomic.Bool
	var got []string
	done := make(chan error, 1)
	go func() {
		done <- ReadLogs(context.Background(), path, LogOptions{Tail: TailAll, Stdout: true, Stderr: true, Follow: true, Done: finished.Load},
			func(r *jsonlog.Record) error {
				got = append(got, strings.TrimSuffix(string(r.Log), "\n"))
				finished.Store(true)
				return nil
			})
	}()
	writeLog(t, path, 0, 1)
	if err := <-done; err != nil || fmt.Sprint(got) != fmt.Sprint(lines(0)) {
		t.Errorf("ReadLogs = %v, %v; want line-0", got, err)
	}
}

func openAppend(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
}
