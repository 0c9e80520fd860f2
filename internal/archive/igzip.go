package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// GzipDecoder is the path of the igzip program (ISA-L's gzip, Debian package
// "isal") that Decompress runs for gzip layers, or "" when Go's decoder is
// used: igzip is not in PATH, or BERTH_GZIP=go is set. igzip inflates two to
// three times as fast as the Go decoder and runs in its own process, the way
// Docker uses unpigz. It is looked up once.
//
// igzip reads untrusted bytes, so it runs with nothing to lose: as nobody
// when this process is root, with an empty environment, killed if this
// process dies. Its output is trusted no more than the Go decoder's: the
// caller checks the diff id of the uncompressed stream.
func GzipDecoder() string { return gzipDecoder() }

var gzipDecoder = sync.OnceValue(func() string {
	if os.Getenv("BERTH_GZIP") == "go" {
		return ""
	}
	p, err := exec.LookPath("igzip")
	if err != nil {
		return ""
	}
	return p
})

// pipeSize is the buffer of the pipes to and from igzip (Linux's default
// pipe-max-size): fewer, larger reads and writes.
const pipeSize = 1 << 20

// igzipReader reads the output of an igzip process fed from src by a
// goroutine.
type igzipReader struct {
	cmd    *exec.Cmd
	out    *os.File // read end of igzip's stdout
	stderr *bytes.Buffer
	fed    chan error // the feeding goroutine's end: src's read error, or nil
	err    error      // what Read returns once the stream ended
	done   bool       // cmd waited for
}

func startIgzip(path string, src io.Reader) (*igzipReader, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	for _, f := range []*os.File{inW, outR} {
		// Best effort: a smaller pipe only costs more system calls.
		unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, pipeSize)
	}
	stderr := &bytes.Buffer{}
	cmd := &exec.Cmd{
		Path:   path,
		Args:   []string{"igzip", "-d", "-c", "-q"},
		Env:    []string{},
		Dir:    "/",
		Stdin:  inR,
		Stdout: outW,
		Stderr: &limitedWriter{w: stderr, n: 4096},
		SysProcAttr: &syscall.SysProcAttr{
			Pdeathsig: syscall.SIGKILL,
		},
	}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
	}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	z := &igzipReader{cmd: cmd, out: outR, stderr: stderr, fed: make(chan error, 1)}
	go func() {
		z.fed <- feed(inW, src)
	}()
	return z, nil
}

// feed copies src into w, then closes w. It returns src's read error; a
// write error means igzip stopped reading (it ended or failed, as its exit
// status tells).
func feed(w *os.File, src io.Reader) error {
	defer w.Close()
	buf := make([]byte, 256<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (z *igzipReader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	n, err := z.out.Read(p)
	if err == nil {
		return n, nil
	}
	if err != io.EOF {
		err = fmt.Errorf("read igzip output: %w", err)
	} else {
		err = z.wait()
	}
	z.err = err
	return n, err
}

// wait reaps igzip and the feeding goroutine, and tells how the stream
// ended: io.EOF when it was whole.
func (z *igzipReader) wait() error {
	werr := z.cmd.Wait()
	z.done = true
	if ferr := <-z.fed; ferr != nil {
		return ferr // the compressed stream broke off: the cause
	}
	if werr != nil {
		msg := bytes.TrimSpace(z.stderr.Bytes())
		var ee *exec.ExitError
		if errors.As(werr, &ee) && len(msg) > 0 {
			return fmt.Errorf("gzip stream: %s", msg)
		}
		return fmt.Errorf("gzip stream: igzip: %w", werr)
	}
	return io.EOF
}

// Close stops igzip if it still runs and waits for it and for the feeding
// goroutine, which may be in a read of the source.
func (z *igzipReader) Close() error {
	z.out.Close()
	if !z.done {
		z.cmd.Process.Kill()
		z.cmd.Wait()
		z.done = true
		<-z.fed
	}
	if z.err == nil {
		z.err = errors.New("read after close")
	}
	return nil
}

// limitedWriter keeps the first n bytes written to it and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
