package shim

import (
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/berthproject/berth/internal/shim/protocol"
)

// AttachOptions say which streams an attach client takes.
type AttachOptions struct {
	Stdin  bool // write to the container's stdin
	Stdout bool
	Stderr bool
	Logs   bool // first receive what the log holds
	// Exit: this client will record the container's final exit itself
	// (TakeExit once the output ended), in place of the monitor's exit
	// command.
	Exit bool
}

// Attachment is a connection to a container's stdio. Read returns its
// output: the raw bytes of the terminal for a container with one, else
// Docker's stdcopy frames (see Demux). Write goes to its stdin.
type Attachment struct {
	conn *net.UnixConn
}

// Attach connects to the monitor of dir. The output ends (EOF) when the
// container is gone for good; a container that restarts keeps its clients.
func Attach(dir string, o AttachOptions) (*Attachment, error) {
	c, err := dial(dir, "attach.sock")
	if err != nil {
		return nil, err
	}
	hello := protocol.Hello{Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Logs: o.Logs, Exit: o.Exit}
	if _, err := c.Write(hello.Append(nil)); err != nil {
		c.Close()
		return nil, fmt.Errorf("attach: send hello: %w", err)
	}
	return &Attachment{conn: c}, nil
}

// Read reads the container's output.
func (a *Attachment) Read(p []byte) (int, error) { return a.conn.Read(p) }

// Write writes to the container's stdin.
func (a *Attachment) Write(p []byte) (int, error) { return a.conn.Write(p) }

// CloseWrite ends this client's stdin; the output goes on. With
// StdinOnce, the container's stdin is closed too.
func (a *Attachment) CloseWrite() error { return a.conn.CloseWrite() }

// Close closes the connection (detach).
func (a *Attachment) Close() error { return a.conn.Close() }

// Demux copies the stdcopy stream of the attachment to stdout and stderr
// until the container is gone.
func (a *Attachment) Demux(stdout, stderr io.Writer) error { return Demux(a, stdout, stderr) }

// ErrFrame reports a malformed stdcopy stream.
var ErrFrame = errors.New("malformed stdcopy stream")

// Demux copies Docker's stdcopy stream r to stdout and stderr (either may
// be nil to drop that stream) until r ends; it returns nil at EOF.
func Demux(r io.Reader, stdout, stderr io.Writer) error {
	var hdr [protocol.FrameHeaderLen]byte
	buf := make([]byte, 32<<10)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			if err == io.ErrUnexpectedEOF {
				return fmt.Errorf("%w: truncated header", ErrFrame)
			}
			return err
		}
		stream, n := protocol.ParseFrameHeader(hdr[:])
		var w io.Writer
		switch stream {
		case protocol.Stdout:
			w = stdout
		case protocol.Stderr:
			w = stderr
		case protocol.Stdin:
			w = stdout // Docker's stdcopy sends stdin frames to stdout too
		default:
			return fmt.Errorf("%w: stream %d", ErrFrame, stream)
		}
		if w == nil {
			w = io.Discard
		}
		for n > 0 {
			m, err := io.ReadFull(r, buf[:min(n, len(buf))])
			if m > 0 {
				if _, werr := w.Write(buf[:m]); werr != nil {
					return werr
				}
			}
			if err != nil {
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					return fmt.Errorf("%w: truncated payload", ErrFrame)
				}
				return err
			}
			n -= m
		}
	}
}

// StdWriter writes each Write to w as one stdcopy frame of its stream.
type StdWriter struct {
	w      io.Writer
	stream byte
	buf    []byte
}

// NewStdWriter returns a writer framing its writes as stream
// (protocol.Stdout or protocol.Stderr) on w.
func NewStdWriter(w io.Writer, stream byte) *StdWriter {
	return &StdWriter{w: w, stream: stream}
}

// Write writes p as one frame; it returns len(p) when the frame was
// written whole.
func (s *StdWriter) Write(p []byte) (int, error) {
	s.buf = protocol.AppendFrame(s.buf[:0], s.stream, p)
	n, err := s.w.Write(s.buf)
	n -= protocol.FrameHeaderLen
	if n < 0 {
		n = 0
	}
	return n, err
}
