package protocol

import (
	"strconv"
	"time"
)

// Hello is the first line an attach client sends.
type Hello struct {
	Stdin  bool // the client's bytes go to the container's stdin
	Stdout bool // the client receives the container's stdout
	Stderr bool // the client receives the container's stderr
	Logs   bool // the log file's content is sent before the live output
	// Exit: the client will record the container's final exit itself,
	// in place of the exit command (see "Exit hand-over" in the package
	// doc). Only the first such client of a monitor is taken at its word.
	Exit bool
}

// Append appends h as one JSON line.
func (h Hello) Append(dst []byte) []byte {
	dst = append(dst, `{"stdin":`...)
	dst = AppendBool(dst, h.Stdin)
	dst = append(dst, `,"stdout":`...)
	dst = AppendBool(dst, h.Stdout)
	dst = append(dst, `,"stderr":`...)
	dst = AppendBool(dst, h.Stderr)
	dst = append(dst, `,"logs":`...)
	dst = AppendBool(dst, h.Logs)
	if h.Exit {
		dst = append(dst, `,"exit":true`...)
	}
	return append(dst, "}\n"...)
}

// ParseHello parses a hello line (with or without its newline). Members
// other than the four are ignored, as are absent ones (false).
func ParseHello(line []byte) (Hello, error) {
	var h Hello
	err := DecodeObject(line, func(name, v []byte) error {
		var p *bool
		switch string(name) {
		case "stdin":
			p = &h.Stdin
		case "stdout":
			p = &h.Stdout
		case "stderr":
			p = &h.Stderr
		case "logs":
			p = &h.Logs
		case "exit":
			p = &h.Exit
		default:
			return nil
		}
		b, err := Bool(v)
		if err != nil {
			return &FieldError{Field: string(name), Err: err}
		}
		*p = b
		return nil
	})
	return h, err
}

// WindowSize is a terminal size in characters.
type WindowSize struct {
	Height, Width uint16
}

// Request is one control request. Exactly one of its fields is set.
type Request struct {
	Resize     *WindowSize
	CloseStdin bool
	// TakeExit: the client that said "exit" in its hello takes the final
	// exit over; ExitHandled: it has recorded it (see "Exit hand-over").
	TakeExit    bool
	ExitHandled bool
	// ExitRemoved is ExitHandled for a container the client removed
	// (--rm): the monitor removes its run directory once the runtime's
	// delete is done, and the client need not wait for that.
	ExitRemoved bool
	// WaitDeleted: the client that took the exit waits until the runtime
	// has deleted the container (see "Exit hand-over").
	WaitDeleted bool
	// KillAfter: kill every process of the container if the current run
	// still runs after this long (the deadline of a stop; whole
	// milliseconds, at least one). The monitor creates the stopped file
	// when it takes the request.
	KillAfter time.Duration
}

// count is how many requests r holds.
func (r Request) count() int {
	n := 0
	for _, on := range []bool{r.Resize != nil, r.CloseStdin, r.TakeExit, r.ExitHandled, r.ExitRemoved, r.WaitDeleted, r.KillAfter > 0} {
		if on {
			n++
		}
	}
	return n
}

// Append appends r as one JSON line.
func (r Request) Append(dst []byte) []byte {
	switch {
	case r.Resize != nil:
		dst = append(dst, `{"resize":{"height":`...)
		dst = strconv.AppendUint(dst, uint64(r.Resize.Height), 10)
		dst = append(dst, `,"width":`...)
		dst = strconv.AppendUint(dst, uint64(r.Resize.Width), 10)
		return append(dst, "}}\n"...)
	case r.CloseStdin:
		return append(dst, `{"close-stdin":true}`+"\n"...)
	case r.TakeExit:
		return append(dst, `{"take-exit":true}`+"\n"...)
	case r.ExitHandled:
		return append(dst, `{"exit-handled":true}`+"\n"...)
	case r.ExitRemoved:
		return append(dst, `{"exit-removed":true}`+"\n"...)
	case r.WaitDeleted:
		return append(dst, `{"wait-deleted":true}`+"\n"...)
	case r.KillAfter > 0:
		dst = append(dst, `{"kill-after-ms":`...)
		dst = strconv.AppendInt(dst, max(r.KillAfter.Milliseconds(), 1), 10)
		return append(dst, "}\n"...)
	}
	return append(dst, "{}\n"...)
}

// ParseRequest parses a control request line.
func ParseRequest(line []byte) (Request, error) {
	var r Request
	err := DecodeObject(line, func(name, v []byte) error {
		switch string(name) {
		case "resize":
			ws := WindowSize{}
			err := DecodeObject(v, func(name, v []byte) error {
				var p *uint16
				switch string(name) {
				case "height":
					p = &ws.Height
				case "width":
					p = &ws.Width
				default:
					return nil
				}
				n, err := Int(v)
				if err != nil || n < 0 || n > 65535 {
					return &FieldError{Field: "resize." + string(name), Err: syntaxError("expected an integer from 0 to 65535")}
				}
				*p = uint16(n)
				return nil
			})
			if err != nil {
				return err
			}
			r.Resize = &ws
		case "kill-after-ms":
			n, err := Int(v)
			if err != nil || n < 1 {
				return &FieldError{Field: string(name), Err: syntaxError("expected a positive integer")}
			}
			r.KillAfter = time.Duration(n) * time.Millisecond
		case "close-stdin", "take-exit", "exit-handled", "exit-removed", "wait-deleted":
			b, err := Bool(v)
			if err != nil {
				return &FieldError{Field: string(name), Err: err}
			}
			switch string(name) {
			case "close-stdin":
				r.CloseStdin = b
			case "take-exit":
				r.TakeExit = b
			case "exit-handled":
				r.ExitHandled = b
			case "exit-removed":
				r.ExitRemoved = b
			default:
				r.WaitDeleted = b
			}
		default:
			return &FieldError{Field: string(name), Err: errUnknownRequest}
		}
		return nil
	})
	if err != nil {
		return Request{}, err
	}
	switch r.count() {
	case 0:
		return Request{}, errEmptyRequest
	case 1:
		return r, nil
	}
	return Request{}, errTwoRequests
}

var (
	errUnknownRequest = &SyntaxError{Msg: "unknown request"}
	errEmptyRequest   = &SyntaxError{Msg: `empty request: want "resize", "close-stdin", "take-exit", "exit-handled", "exit-removed", "wait-deleted" or "kill-after-ms"`}
	errTwoRequests    = &SyntaxError{Msg: "one request per line"}
)

// FieldError names the member of a message at fault.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// AppendReply appends the reply to a control request: {"ok":true} when
// errMsg is empty, else {"error":errMsg}.
func AppendReply(dst []byte, errMsg string) []byte {
	if errMsg == "" {
		return append(dst, `{"ok":true}`+"\n"...)
	}
	dst = append(dst, `{"error":`...)
	dst = AppendString(dst, errMsg)
	return append(dst, "}\n"...)
}

// ParseReply parses a control reply: it returns the error message the
// monitor sent, "" for {"ok":true}.
func ParseReply(line []byte) (errMsg string, err error) {
	ok := false
	err = DecodeObject(line, func(name, v []byte) error {
		var err error
		switch string(name) {
		case "ok":
			ok, err = Bool(v)
		case "error":
			errMsg, err = String(v)
		}
		return err
	})
	if err == nil && !ok && errMsg == "" {
		err = syntaxError(`reply has neither "ok" nor "error"`)
	}
	return errMsg, err
}

// Ready is the line the monitor writes on the ready pipe: the container's
// init pid once it runs, or why it could not be started.
type Ready struct {
	Pid   int
	Error string
}

// Append appends r as one JSON line.
func (r Ready) Append(dst []byte) []byte {
	if r.Error != "" {
		dst = append(dst, `{"error":`...)
		dst = AppendString(dst, r.Error)
		return append(dst, "}\n"...)
	}
	dst = append(dst, `{"pid":`...)
	dst = strconv.AppendInt(dst, int64(r.Pid), 10)
	return append(dst, "}\n"...)
}

// ParseReady parses the ready line.
func ParseReady(line []byte) (Ready, error) {
	var r Ready
	err := DecodeObject(line, func(name, v []byte) error {
		var err error
		switch string(name) {
		case "pid":
			r.Pid, err = Int(v)
		case "error":
			r.Error, err = String(v)
		}
		if err != nil {
			return &FieldError{Field: string(name), Err: err}
		}
		return nil
	})
	if err == nil && r.Pid <= 0 && r.Error == "" {
		err = syntaxError(`ready line has neither a "pid" nor an "error"`)
	}
	return r, err
}

// Exit is the content of exit.json: how the container's init ended.
type Exit struct {
	ExitCode     int       // as a shell reports it: 128+N when killed by signal N
	OOMKilled    bool      // the kernel's OOM killer killed a process of the container
	FinishedAt   time.Time // when the monitor reaped the init
	RestartCount int       // restarts done before this exit
	Restarting   bool      // the restart policy starts the container again
	Error        string    // why a restart failed
}

// Append appends e as one JSON line.
func (e Exit) Append(dst []byte) []byte {
	dst = append(dst, `{"exitCode":`...)
	dst = strconv.AppendInt(dst, int64(e.ExitCode), 10)
	dst = append(dst, `,"oomKilled":`...)
	dst = AppendBool(dst, e.OOMKilled)
	dst = append(dst, `,"finishedAt":"`...)
	dst = e.FinishedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","restartCount":`...)
	dst = strconv.AppendInt(dst, int64(e.RestartCount), 10)
	if e.Restarting {
		dst = append(dst, `,"restarting":true`...)
	}
	if e.Error != "" {
		dst = append(dst, `,"error":`...)
		dst = AppendString(dst, e.Error)
	}
	return append(dst, "}\n"...)
}

// ParseExit parses exit.json.
func ParseExit(b []byte) (Exit, error) {
	var e Exit
	err := DecodeObject(b, func(name, v []byte) error {
		var err error
		switch string(name) {
		case "exitCode":
			e.ExitCode, err = Int(v)
		case "oomKilled":
			e.OOMKilled, err = Bool(v)
		case "finishedAt":
			var s string
			if s, err = String(v); err == nil {
				e.FinishedAt, err = time.Parse(time.RFC3339Nano, s)
			}
		case "restartCount":
			e.RestartCount, err = Int(v)
		case "restarting":
			e.Restarting, err = Bool(v)
		case "error":
			e.Error, err = String(v)
		}
		if err != nil {
			return &FieldError{Field: string(name), Err: err}
		}
		return nil
	})
	return e, err
}

// Run is the content of run.json: the container's current run, written by
// the monitor after each start (the first and every restart).
type Run struct {
	Pid          int       // the init's pid
	StartedAt    time.Time // when the runtime's start returned
	RestartCount int       // restarts done before this run
}

// Append appends r as one JSON line.
func (r Run) Append(dst []byte) []byte {
	dst = append(dst, `{"pid":`...)
	dst = strconv.AppendInt(dst, int64(r.Pid), 10)
	dst = append(dst, `,"startedAt":"`...)
	dst = r.StartedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","restartCount":`...)
	dst = strconv.AppendInt(dst, int64(r.RestartCount), 10)
	return append(dst, "}\n"...)
}

// ParseRun parses run.json.
func ParseRun(b []byte) (Run, error) {
	var r Run
	err := DecodeObject(b, func(name, v []byte) error {
		var err error
		switch string(name) {
		case "pid":
			r.Pid, err = Int(v)
		case "startedAt":
			var s string
			if s, err = String(v); err == nil {
				r.StartedAt, err = time.Parse(time.RFC3339Nano, s)
			}
		case "restartCount":
			r.RestartCount, err = Int(v)
		}
		if err != nil {
			return &FieldError{Field: string(name), Err: err}
		}
		return nil
	})
	if err == nil && r.Pid <= 0 {
		err = &FieldError{Field: "pid", Err: syntaxError("expected a positive integer")}
	}
	return r, err
}

// Ended reports whether the run r has ended by the exit e: the exit is of
// this run (or a later one). e may be nil (no exit recorded).
func (r Run) Ended(e *Exit) bool {
	return e != nil && e.RestartCount >= r.RestartCount
}
