// Command berth-runtime is berth's OCI runtime. Its command line follows
// runc's, so that containerd's runc shim (io.containerd.runc.v2 with its
// BinaryName option) and other runc callers can drive it unchanged.

// Every command is a short-lived process started on a container's critical
// path, and so is the container init (the same binary): no periodic
// re-reading of the CPU quota for GOMAXPROCS, and no prctl naming each
// memory mapping of the Go runtime.
//
//go:debug updatemaxprocs=0
//go:debug decoratemappings=0
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/cli"
	"github.com/berthproject/berth/internal/nsenter"
	"github.com/berthproject/berth/internal/runtime"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// globals are the flags every command shares.
type globals struct {
	root      string
	logPath   string
	logFormat string
	systemd   bool
	debug     bool
	rootless  string

	logFile *os.File
	log     *slog.Logger
}

// exitError carries an exit code without an error message (the container's
// own exit code of run and exec).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	if nsenter.IsInit() {
		runtime.Init() // does not return
	}
	g := &globals{}
	err := newApp(g).Run(os.Args[1:], os.Stdout)
	if err == nil {
		os.Exit(0)
	}
	var ee exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	if g.log != nil && g.logFile != nil {
		g.log.Error(err.Error())
	}
	fmt.Fprintln(os.Stderr, "berth-runtime:", err)
	os.Exit(1)
}

func newApp(g *globals) *cli.App {
	f := pflag.NewFlagSet("berth-runtime", pflag.ContinueOnError)
	f.StringVar(&g.root, "root", runtime.DefaultRoot, "root directory for storage of container state")
	f.StringVar(&g.logPath, "log", "", "write log messages to this file (default: stderr)")
	f.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&g.systemd, "systemd-cgroup", false, "cgroupsPath is in systemd's slice:prefix:name form (managed through cgroupfs)")
	f.BoolVar(&g.debug, "debug", false, "log debug messages")
	f.StringVar(&g.rootless, "rootless", "auto", "accepted for runc compatibility")
	f.String("criu", "criu", "accepted for runc compatibility (checkpoint/restore is not supported)")
	_ = f.MarkHidden("criu")
	return &cli.App{
		Name:    "berth-runtime",
		Summary: "berth's OCI container runtime (runc-compatible command line)",
		Version: fmt.Sprintf("berth-runtime version %s\nspec: %s\n", version, specVersion()),
		Global:  f,
		Commands: []*cli.Command{
			createCmd(g), startCmd(g), runCmd(g), stateCmd(g), killCmd(g), deleteCmd(g),
			execCmd(g), pauseCmd(g), resumeCmd(g), psCmd(g), listCmd(g), eventsCmd(g),
			updateCmd(g), featuresCmd(), specCmd(),
		},
		Before: g.setup,
	}
}

func (g *globals) setup() error {
	var w io.Writer = os.Stderr
	if g.logPath != "" {
		f, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
		if err != nil {
			return fmt.Errorf("--log: %w", err)
		}
		g.logFile, w = f, f
	}
	level := slog.LevelWarn
	if g.debug {
		level = slog.LevelDebug
	}
	// Levels in lower case, as logrus writes them: containerd's shim picks
	// the runtime's error out of --log by "level":"error".
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.LevelKey && len(groups) == 0 {
			a.Value = slog.StringValue(strings.ToLower(a.Value.String()))
		}
		return a
	}}
	switch g.logFormat {
	case "json":
		g.log = slog.New(slog.NewJSONHandler(w, opts))
	case "text":
		g.log = slog.New(slog.NewTextHandler(w, opts))
	default:
		return fmt.Errorf("--log-format: unknown format %q (want text or json)", g.logFormat)
	}
	return nil
}

func (g *globals) runtime() (*runtime.Runtime, error) {
	r, err := runtime.New(g.root, g.log)
	if err != nil {
		return nil, err
	}
	r.Systemd = g.systemd
	return r, nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func fmtTime(t time.Time) string { return t.Format(time.RFC3339Nano) }
