package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/cli"
	"github.com/berthproject/berth/internal/console"
	"github.com/berthproject/berth/internal/engine"
	"github.com/berthproject/berth/internal/reference"
)

// containerCommands are the container verbs, at the top level and in the
// `container` group, as Docker has them.
func containerCommands(g *globals) []*cli.Command {
	verbs := func() []*cli.Command {
		return []*cli.Command{
			runCommand(g), createCommand(g), startCommand(g), stopCommand(g), killCommand(g), restartCommand(g),
			pauseCommand(g), unpauseCommand(g), waitCommand(g), rmCommand(g), renameCommand(g),
			logsCommand(g), execCommand(g), attachCommand(g), topCommand(g), portCommand(g),
			commitCommand(g), diffCommand(g), exportCommand(g), cpCommand(g), updateCommand(g), statsCommand(g),
		}
	}
	group := append(verbs(), psCommand(g, "ls"), psCommand(g, "list"), containerPruneCommand(g),
		inspectContainerCommand(g), cleanupCommand(g))
	return append(verbs(), psCommand(g, "ps"), inspectCommand(g), volumeCommand(g), eventsCommand(g),
		&cli.Command{Use: "container", Short: "manage containers", Sub: group},
		&cli.Command{Use: "system", Short: "manage berth", Sub: []*cli.Command{eventsCommand(g)}})
}

// statusFor maps engine errors to Docker's exit status of run/create/start:
// 125 for the engine's own errors.
func engineFailure(err error) error {
	if err == nil {
		return nil
	}
	var se statusError
	if errors.As(err, &se) {
		return err
	}
	return statusError{code: 125, err: err}
}

func runCommand(g *globals) *cli.Command {
	var f runFlags
	c := &cli.Command{
		Use: "run [flags] IMAGE [COMMAND] [ARG...]", Short: "create and start a container",
		RunE: func(cmd *cli.Command, args []string) error {
			ctx, cancel := commandContext()
			defer cancel()
			// run refuses a host port in use before anything is made;
			// create, like Docker's, leaves that to start.
			e, ctr, err := f.create(ctx, g, cmd, args, true)
			if err != nil {
				return engineFailure(err)
			}
			if f.detach {
				if err := e.Start(ctx, ctr.ID, engine.StartOptions{}); err != nil {
					return startFailure(err)
				}
				fmt.Println(ctr.ID)
				return nil
			}
			code, err := runAttached(ctx, e, ctr, f.detachKeys)
			if err != nil {
				return err
			}
			if code != 0 {
				return statusError{code: code}
			}
			return nil
		},
	}
	c.Setup = func(c *cli.Command) { f.register(c.Flags(), true) }
	return c
}

// startFailure maps a start error to Docker's run exit codes: 127 when the
// command does not exist, 126 when it cannot be run, else 125.
func startFailure(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory") && strings.Contains(msg, "exec:"):
		return statusError{code: 127, err: err}
	case strings.Contains(msg, "permission denied") && strings.Contains(msg, "exec"), strings.Contains(msg, "is a directory"):
		return statusError{code: 126, err: err}
	}
	return statusError{code: 125, err: err}
}

// runAttached starts the container with this terminal attached to it and
// returns its exit code once it stops (docker run without -d).
func runAttached(ctx context.Context, e *engine.Engine, ctr *engine.Container, detachKeys string) (int, error) {
	var stream *engine.AttachStream
	err := e.Start(ctx, ctr.ID, engine.StartOptions{Attach: func(dir string) error {
		// Exit: this process records the exit (FinishRun below), not the
		// monitor's exit command.
		s, err := e.AttachDir(dir, engine.AttachOptions{Stdin: ctr.Config.OpenStdin, Stdout: true, Stderr: true, Exit: true})
		stream = s
		return err
	}})
	if err != nil {
		if stream != nil {
			stream.Close()
		}
		return -1, startFailure(err)
	}
	detached, err := relay(ctx, e, ctr, stream, detachKeys)
	if err != nil {
		return -1, err
	}
	if detached {
		return 0, nil
	}
	if code, ok := e.FinishRun(ctx, ctr.ID); ok {
		return code, nil
	}
	code, err := e.Wait(ctx, ctr.ID)
	if err != nil {
		return -1, engineFailure(err)
	}
	return code, nil
}

// relay copies this terminal to and from an attached container until its
// output ends, or the user types the detach keys (reported as detached).
func relay(ctx context.Context, e *engine.Engine, ctr *engine.Container, s *engine.AttachStream, detachKeys string) (bool, error) {
	defer s.Close()
	tty := ctr.Config.Tty
	restore := func() {}
	defer func() { restore() }()
	if tty {
		if r, err := console.RawMode(os.Stdin); err == nil {
			var once sync.Once
			restore = func() { once.Do(r) }
		}
		resize := func() {
			if ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ); err == nil {
				_ = e.ResizeTTY(ctr.ID, ws.Row, ws.Col)
			}
		}
		resize()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				resize()
			}
		}()
	}
	detached := make(chan struct{})
	if ctr.Config.OpenStdin {
		keys, err := parseDetachKeys(detachKeys)
		if err != nil {
			return false, err
		}
		go func() {
			var in io.Reader = os.Stdin
			if tty {
				in = &detachReader{r: os.Stdin, keys: keys, detached: detached}
			}
			_, _ = io.Copy(s, in)
			s.CloseWrite()
		}()
	}
	out := make(chan error, 1)
	go func() {
		if tty {
			_, err := io.Copy(os.Stdout, s)
			out <- err
			return
		}
		out <- engine.Demux(s, os.Stdout, os.Stderr)
	}()
	select {
	case err := <-out:
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
			return false, err
		}
		return false, nil
	case <-detached:
		// Docker's CLI shows the detach as its EscapeError's text.
		restore()
		fmt.Fprintln(os.Stderr, "read escape sequence")
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// detachReader passes input through until the detach key sequence. The
// start of the sequence is held back until it is broken (then passed on)
// or complete (then dropped, and the reader ends after what came before
// it), as Docker's escape proxy holds it; unlike that proxy, keys that
// come in one read (a paste, a fast terminal) are seen too.
type detachReader struct {
	r        io.Reader
	keys     []byte
	held     int    // how many bytes of keys were read and held back
	out      []byte // read and due to the caller
	err      error  // the end: errDetach, or r's error; given after out
	detached chan struct{}
}

var errDetach = errors.New("read escape sequence")

func (d *detachReader) Read(p []byte) (int, error) {
	for len(d.out) == 0 && d.err == nil {
		n, err := d.r.Read(p)
		d.scan(p[:n])
		if err != nil && d.err == nil {
			d.out = append(d.out, d.keys[:d.held]...)
			d.held, d.err = 0, err
		}
	}
	if len(d.out) > 0 {
		n := copy(p, d.out)
		d.out = d.out[n:]
		return n, nil
	}
	if d.err == errDetach {
		d.err = io.EOF
		close(d.detached)
	}
	return 0, d.err
}

// scan moves the bytes of b to out, holding back a start of the key
// sequence; the whole sequence ends the input.
func (d *detachReader) scan(b []byte) {
	for _, c := range b {
		if d.err != nil {
			return
		}
		if c != d.keys[d.held] {
			d.out = append(d.out, d.keys[:d.held]...)
			d.held = 0
			if c != d.keys[0] {
				d.out = append(d.out, c)
				continue
			}
		}
		d.held++
		if d.held == len(d.keys) {
			d.held, d.err = 0, errDetach
		}
	}
}

// parseDetachKeys reads Docker's key sequence syntax: "ctrl-p,ctrl-q".
func parseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		s = "ctrl-p,ctrl-q"
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		switch {
		case len(k) == 1:
			out = append(out, k[0])
		case strings.HasPrefix(k, "ctrl-") && len(k) == 6:
			c := k[5]
			switch {
			case c >= 'a' && c <= 'z':
				out = append(out, c-'a'+1)
			case c == '@':
				out = append(out, 0)
			case c >= '[' && c <= '_':
				out = append(out, c-'['+27)
			default:
				return nil, fmt.Errorf("--detach-keys: unknown key %q", k)
			}
		default:
			return nil, fmt.Errorf("--detach-keys: unknown key %q", k)
		}
	}
	return out, nil
}

// create makes the container run and create describe: the flags are
// checked before the store is opened.
func (f *runFlags) create(ctx context.Context, g *globals, cmd *cli.Command, args []string, checkPorts bool) (*engine.Engine, *engine.Container, error) {
	cfg, host, err := f.config(cmd.Flags(), args)
	if err != nil {
		return nil, nil, err
	}
	nc, err := f.networking()
	if err != nil {
		return nil, nil, err
	}
	e, err := g.engine()
	if err != nil {
		return nil, nil, err
	}
	pf := pullProgress(os.Stderr)
	if f.quiet {
		pf = nil
	}
	o := engine.CreateOptions{
		Name: f.name, Config: cfg, HostConfig: host, Pull: f.pull, Platform: f.platform,
		Progress: pf, NetworkingConfig: nc, CheckPorts: checkPorts,
		Warn: func(msg string) { fmt.Fprintf(os.Stderr, "WARNING: %s\n", msg) },
	}
	// As docker-cli: the pull of an image that is not here (announced) or
	// of --pull always prints pull's output on stderr, then the create is
	// made with the image at hand.
	pull := func(announce bool) error {
		r, err := reference.Parse(cfg.Image)
		if err != nil {
			return err
		}
		r = r.WithDefaultTag()
		if announce && !f.quiet {
			fmt.Fprintf(os.Stderr, "Unable to find image '%s' locally\n", r.Familiar())
		}
		po := pullOptions{platform: f.platform, forRun: true, quiet: f.quiet}
		return pullImage(ctx, e.Images, r.String(), po, os.Stderr)
	}
	switch f.pull {
	case engine.PullAlways:
		if err := pull(false); err != nil {
			return e, nil, err
		}
	case engine.PullMissing:
		o.Pull = engine.PullNever
		ctr, err := e.Create(ctx, o)
		if !errors.Is(err, engine.ErrNoSuchImage) {
			return e, ctr, err
		}
		if err := pull(true); err != nil {
			return e, nil, err
		}
	default: // never, or a policy Create refuses with its message
		ctr, err := e.Create(ctx, o)
		return e, ctr, err
	}
	o.Pull = engine.PullNever
	ctr, err := e.Create(ctx, o)
	return e, ctr, err
}

func createCommand(g *globals) *cli.Command {
	var f runFlags
	c := &cli.Command{
		Use: "create [flags] IMAGE [COMMAND] [ARG...]", Short: "create a container (without starting it)",
		RunE: func(cmd *cli.Command, args []string) error {
			ctx, cancel := commandContext()
			defer cancel()
			_, ctr, err := f.create(ctx, g, cmd, args, false)
			if err != nil {
				return engineFailure(err)
			}
			fmt.Println(ctr.ID)
			return nil
		},
	}
	c.Setup = func(c *cli.Command) { f.register(c.Flags(), false) }
	return c
}

// each runs fn on every named container, printing each name that worked
// (Docker's stop/kill/rm/... output) and reporting every failure.
func each(g *globals, refs []string, print bool, fn func(ctx context.Context, e *engine.Engine, ref string) error) error {
	e, err := g.engine()
	if err != nil {
		return err
	}
	ctx, cancel := commandContext()
	defer cancel()
	var errs []error
	for _, ref := range refs {
		if err := fn(ctx, e, ref); err != nil {
			errs = append(errs, err)
			continue
		}
		if print {
			fmt.Println(ref)
		}
	}
	return reportAll(os.Stderr, errs)
}

func startCommand(g *globals) *cli.Command {
	var attach, interactive bool
	var detachKeys string
	c := &cli.Command{
		Use: "start [flags] CONTAINER...", Short: "start stopped containers",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			if attach || interactive {
				if len(args) != 1 {
					return fmt.Errorf("you cannot start and attach multiple containers at once")
				}
				e, err := g.engine()
				if err != nil {
					return err
				}
				ctx, cancel := commandContext()
				defer cancel()
				ctr, err := e.Lookup(ctx, args[0])
				if err != nil {
					return err
				}
				code, err := runAttached(ctx, e, ctr, detachKeys)
				var se statusError
				if errors.As(err, &se) && se.err != nil {
					// Docker's start -a exits 1 when the container cannot
					// be started: 125/126/127 are run's.
					return se.err
				}
				if err != nil {
					return err
				}
				if code != 0 {
					return statusError{code: code}
				}
				return nil
			}
			return each(g, args, true, func(ctx context.Context, e *engine.Engine, ref string) error {
				return e.Start(ctx, ref, engine.StartOptions{})
			})
		},
	}
	c.Flags().BoolVarP(&attach, "attach", "a", false, "attach to the container's output")
	c.Flags().BoolVarP(&interactive, "interactive", "i", false, "attach stdin too")
	c.Flags().StringVar(&detachKeys, "detach-keys", "", "key sequence for detaching")
	return c
}

func timeoutFlag(c *cli.Command) *int {
	t := -1
	c.Flags().IntVarP(&t, "time", "t", -1, "seconds to wait before killing the container")
	c.Flags().IntVar(&t, "timeout", -1, "same as --time")
	return &t
}

func optTimeout(t *int) *int {
	if *t < 0 {
		return nil
	}
	return t
}

func stopCommand(g *globals) *cli.Command {
	var t *int
	c := &cli.Command{
		Use: "stop [flags] CONTAINER...", Short: "stop running containers (stop signal, then SIGKILL)",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return each(g, args, true, func(ctx context.Context, e *engine.Engine, ref string) error {
				return e.Stop(ctx, ref, optTimeout(t))
			})
		},
	}
	t = timeoutFlag(c)
	return c
}

func restartCommand(g *globals) *cli.Command {
	var t *int
	c := &cli.Command{
		Use: "restart [flags] CONTAINER...", Short: "restart containers",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return each(g, args, true, func(ctx context.Context, e *engine.Engine, ref string) error {
				return e.Restart(ctx, ref, optTimeout(t))
			})
		},
	}
	t = timeoutFlag(c)
	return c
}

func killCommand(g *globals) *cli.Command {
	var sig string
	c := &cli.Command{
		Use: "kill [flags] CONTAINER...", Short: "send a signal (default SIGKILL) to containers",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			s, err := engine.ParseSignal(strings.ToUpper(sig))
			if err != nil {
				return fmt.Errorf("--signal: %w", err)
			}
			return each(g, args, true, func(ctx context.Context, e *engine.Engine, ref string) error {
				return e.Kill(ctx, ref, s)
			})
		},
	}
	c.Flags().StringVarP(&sig, "signal", "s", "KILL", "signal to send")
	return c
}

func pauseCommand(g *globals) *cli.Command {
	return &cli.Command{
		Use: "pause CONTAINER...", Short: "freeze every process of containers",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return each(g, args, true, func(ctx context.Context, e *engine.Engine, ref string) error { return e.Pause(ctx, ref) })
		},
	}
}

func unpauseCommand(g *globals) *cli.Command {
	return &cli.Command{
		Use: "unpause CONTAINER...", Short: "thaw paused containers",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return each(g, args, true, func(ctx context.Context, e *engine.Engine, ref string) error { return e.Unpause(ctx, ref) })
		},
	}
}

func waitCommand(g *globals) *cli.Command {
	return &cli.Command{
		Use: "wait CONTAINER...", Short: "wait for containers to stop and print their exit codes",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return each(g, args, false, func(ctx context.Context, e *engine.Engine, ref string) error {
				code, err := e.Wait(ctx, ref)
				if err != nil {
					return err
				}
				fmt.Println(code)
				return nil
			})
		},
	}
}

func rmCommand(g *globals) *cli.Command {
	var force, volumes bool
	c := &cli.Command{
		Use: "rm [flags] CONTAINER...", Short: "remove containers",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return each(g, args, true, func(ctx context.Context, e *engine.Engine, ref string) error {
				return e.Remove(ctx, ref, force, volumes)
			})
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	c.Flags().BoolVarP(&volumes, "volumes", "v", false, "remove the container's anonymous volumes")
	return c
}

func renameCommand(g *globals) *cli.Command {
	return &cli.Command{
		Use: "rename CONTAINER NEW_NAME", Short: "rename a container",
		Args: exactArgs(2),
		RunE: func(cmd *cli.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			return e.Rename(ctx, args[0], args[1])
		},
	}
}

func containerPruneCommand(g *globals) *cli.Command {
	var force bool
	c := &cli.Command{
		Use: "prune [flags]", Short: "remove all stopped containers",
		Args: exactArgs(0),
		RunE: func(cmd *cli.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			ids, err := e.Prune(ctx)
			if err != nil {
				return err
			}
			if len(ids) > 0 {
				fmt.Println("Deleted Containers:")
				for _, id := range ids {
					fmt.Println(id)
				}
				fmt.Println()
			}
			fmt.Println("Total reclaimed space: 0B")
			return nil
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	return c
}

// cleanupCommand is the monitor's exit command (hidden from the help by
// its name only being useful to berth-shim).
func cleanupCommand(g *globals) *cli.Command {
	var startID string
	c := &cli.Command{
		Use: "cleanup [--start-id ID] CONTAINER_ID", Short: "record a container's exit (run by its monitor)",
		Args: exactArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			return e.CleanupStart(context.Background(), args[0], startID)
		},
	}
	c.Flags().StringVar(&startID, "start-id", "", "the start whose monitor runs this (its runs only are recorded)")
	return c
}

func logsCommand(g *globals) *cli.Command {
	var o engine.LogsOptions
	var tail, since, until string
	c := &cli.Command{
		Use: "logs [flags] CONTAINER", Short: "print a container's output",
		Args: exactArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			var err error
			if o.Tail, err = parseTail(tail); err != nil {
				return err
			}
			if o.Since, err = parseTimeArg("--since", since); err != nil {
				return err
			}
			if o.Until, err = parseTimeArg("--until", until); err != nil {
				return err
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			return e.Logs(ctx, args[0], o, os.Stdout, os.Stderr)
		},
	}
	c.Flags().BoolVarP(&o.Follow, "follow", "f", false, "follow the output")
	c.Flags().BoolVarP(&o.Timestamps, "timestamps", "t", false, "show timestamps")
	c.Flags().StringVarP(&tail, "tail", "n", "all", "number of lines from the end")
	c.Flags().StringVar(&since, "since", "", "only after this time (RFC 3339, a Unix time, or a duration like 10m)")
	c.Flags().StringVar(&until, "until", "", "only before this time")
	return c
}

func parseTail(s string) (int, error) {
	if s == "" || s == "all" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("--tail: %q is not a number of lines (or \"all\")", s)
	}
	return n, nil
}

// parseTimeArg reads Docker's --since/--until: RFC 3339, a Unix timestamp,
// or a duration before now.
func parseTimeArg(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%s: %q is not a time (RFC 3339, Unix time or duration)", flag, s)
}

func execCommand(g *globals) *cli.Command {
	var o engine.ExecOptions
	var env []string
	c := &cli.Command{
		Use: "exec [flags] CONTAINER COMMAND [ARG...]", Short: "run a command in a running container",
		Args: minArgs(2),
		RunE: func(cmd *cli.Command, args []string) error {
			o.Cmd = args[1:]
			o.Env = env
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			code, err := e.Exec(ctx, args[0], o)
			if errors.Is(err, engine.ErrNotFound) || errors.Is(err, engine.ErrConflict) {
				// Docker's daemon refuses these (no such container, not
				// running, paused) before the exec exists: its CLI exits 1.
				return err
			}
			if err != nil {
				return statusError{code: 126, err: err}
			}
			if code != 0 {
				return statusError{code: code}
			}
			return nil
		},
	}
	f := c.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&o.Interactive, "interactive", "i", false, "keep stdin open")
	f.BoolVarP(&o.Tty, "tty", "t", false, "allocate a pseudo-terminal")
	f.BoolVarP(&o.Detach, "detach", "d", false, "run the command in the background")
	stringArrayVarP(f, &env, "env", "e", "set an environment variable")
	f.StringVarP(&o.WorkingDir, "workdir", "w", "", "working directory inside the container")
	f.StringVarP(&o.User, "user", "u", "", "user[:group]")
	f.BoolVar(&o.Privileged, "privileged", false, "give extended privileges to the command")
	return c
}

func attachCommand(g *globals) *cli.Command {
	var noStdin bool
	var detachKeys string
	c := &cli.Command{
		Use: "attach [flags] CONTAINER", Short: "attach this terminal to a running container",
		Args: exactArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			ctr, err := e.Lookup(ctx, args[0])
			if err != nil {
				return err
			}
			if ctr.State.Status != engine.StatusRunning {
				return fmt.Errorf("you cannot attach to a stopped container, start it first")
			}
			stdin := ctr.Config.OpenStdin && !noStdin
			s, err := e.Attach(ctx, ctr.ID, engine.AttachOptions{Stdin: stdin, Stdout: true, Stderr: true})
			if err != nil {
				return err
			}
			if !stdin {
				ctr.Config.OpenStdin = false
			}
			detached, err := relay(ctx, e, ctr, s, detachKeys)
			if err != nil || detached {
				return err
			}
			code, err := e.Wait(ctx, ctr.ID)
			if err != nil {
				return err
			}
			if code != 0 {
				return statusError{code: code}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&noStdin, "no-stdin", false, "do not attach stdin")
	c.Flags().StringVar(&detachKeys, "detach-keys", "", "key sequence for detaching")
	c.Flags().Bool("sig-proxy", true, "accepted for docker compatibility")
	return c
}

func topCommand(g *globals) *cli.Command {
	return &cli.Command{
		Use: "top CONTAINER [ps OPTIONS]", Short: "show the processes of a container",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			titles, rows, err := e.Top(ctx, args[0], args[1:])
			if err != nil {
				return err
			}
			tw := newTabWriter(os.Stdout)
			fmt.Fprintln(tw, strings.Join(titles, "\t"))
			for _, r := range rows {
				fmt.Fprintln(tw, strings.Join(r, "\t"))
			}
			return tw.Flush()
		},
	}
}

func diffCommand(g *globals) *cli.Command {
	return &cli.Command{
		Use: "diff CONTAINER", Short: "list the changes of a container's filesystem (A added, C changed, D deleted)",
		Args: exactArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			changes, err := e.Diff(ctx, args[0])
			if err != nil {
				return err
			}
			for _, ch := range changes {
				fmt.Println(ch.String())
			}
			return nil
		},
	}
}

func commitCommand(g *globals) *cli.Command {
	var o engine.CommitOptions
	c := &cli.Command{
		Use: "commit [flags] CONTAINER [REPOSITORY[:TAG]]", Short: "make an image of a container's changes",
		Args: rangeArgs(1, 2),
		RunE: func(cmd *cli.Command, args []string) error {
			if len(args) == 2 {
				o.Ref = args[1]
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			img, err := e.Commit(ctx, args[0], o)
			if err != nil {
				return err
			}
			fmt.Println(img.ID)
			return nil
		},
	}
	c.Flags().StringVarP(&o.Author, "author", "a", "", "author")
	c.Flags().StringVarP(&o.Comment, "message", "m", "", "commit message")
	stringArrayVarP(c.Flags(), &o.Changes, "change", "c", "apply a Dockerfile instruction")
	c.Flags().BoolVarP(&o.Pause, "pause", "p", true, "pause the container during the commit")
	return c
}

func exportCommand(g *globals) *cli.Command {
	var output string
	c := &cli.Command{
		Use: "export [flags] CONTAINER", Short: "write a container's filesystem as a tar archive",
		Args: exactArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			w := io.Writer(os.Stdout)
			if output != "" {
				f, err := os.Create(output)
				if err != nil {
					return fmt.Errorf("--output: %w", err)
				}
				defer f.Close()
				w = f
			} else if isTerminal(os.Stdout) {
				return fmt.Errorf("cowardly refusing to save to a terminal. Use the -o flag or redirect")
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			return e.Export(ctx, args[0], w)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "write to a file instead of stdout")
	return c
}
