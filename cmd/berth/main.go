// Command berth is berth's docker-compatible command line: images,
// containers, volumes and networks without a daemon. Each command opens the
// store (internal/engine) directly; containers outlive the command through
// their monitor (berth-shim).
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/cli"
	"github.com/berthproject/berth/internal/engine"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// globals are the flags every command shares.
type globals struct {
	root, state, runtime, driver string
	bridgeSubnet                 string
	insecure                     []string
	logLevel                     string
	debug                        bool

	eng *engine.Engine
	log *slog.Logger
}

// statusError carries a command's exit status (a container's exit code,
// or Docker's 125/126/127) to main.
type statusError struct {
	code int
	err  error
}

func (e statusError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e statusError) Unwrap() error { return e.err }

func main() {
	g := &globals{}
	err := newApp(g).Run(os.Args[1:], os.Stdout)
	if g.eng != nil {
		g.eng.Close()
	}
	if err == nil {
		os.Exit(0)
	}
	code := 1
	var se statusError
	var ue *cli.UsageError
	if errors.As(err, &ue) {
		code = 125 // Docker's status for a command line it cannot parse
	} else if errors.As(err, &se) {
		code = se.code
		if se.err == nil {
			os.Exit(code)
		}
	}
	fmt.Fprintln(os.Stderr, "Error:", userMessage(err))
	os.Exit(code)
}

// userMessage is err's message without the engine's kind in front ("not
// found: No such container: x" reads "No such container: x", as Docker
// says it): the kinds choose exit codes and API statuses, the words are
// the message's own.
func userMessage(err error) string {
	msg := err.Error()
	for _, kind := range []error{engine.ErrNotFound, engine.ErrConflict, engine.ErrInvalid} {
		if errors.Is(err, kind) {
			msg = strings.TrimPrefix(msg, kind.Error()+": ")
		}
	}
	return msg
}

func newApp(g *globals) *cli.App {
	f := pflag.NewFlagSet("berth", pflag.ContinueOnError)
	f.StringVar(&g.root, "root", envOr("BERTH_ROOT", engine.DefaultRoot), "persistent store: images, containers, volumes")
	f.StringVar(&g.state, "state", envOr("BERTH_STATE", engine.DefaultState), "runtime state (on tmpfs, gone at reboot)")
	f.StringVar(&g.runtime, "runtime", os.Getenv("BERTH_RUNTIME"), "OCI runtime binary (default: berth-runtime next to berth, else in $PATH)")
	f.StringVar(&g.driver, "storage-driver", "", "snapshot driver for a new store: overlay or native")
	f.StringVar(&g.bridgeSubnet, "bridge-subnet", os.Getenv("BERTH_BRIDGE_SUBNET"), "subnet of the default bridge network (default 172.30.0.0/16)")
	stringArrayVarP(f, &g.insecure, "insecure-registry", "", "registry to reach over plain HTTP (localhost and 127.0.0.1 always are)")
	f.StringVarP(&g.logLevel, "log-level", "l", "warn", "debug, info, warn or error")
	f.BoolVarP(&g.debug, "debug", "D", false, "same as --log-level debug")
	return &cli.App{
		Name:     "berth",
		Summary:  "containers from layered images, without a daemon (docker-compatible)",
		Version:  fmt.Sprintf("berth version %s\n", version),
		Global:   f,
		Commands: commands(g),
		Before:   g.setup,
	}
}

func (g *globals) setup() error {
	level := slog.LevelWarn
	if g.debug {
		g.logLevel = "debug"
	}
	if err := level.UnmarshalText([]byte(strings.ToUpper(g.logLevel))); err != nil {
		return fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", g.logLevel)
	}
	g.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return nil
}

// engine opens the store on first use: `berth --help` and `--version` need none.
func (g *globals) engine() (*engine.Engine, error) {
	if g.eng != nil {
		return g.eng, nil
	}
	var subnet netip.Prefix
	if g.bridgeSubnet != "" {
		p, err := netip.ParsePrefix(g.bridgeSubnet)
		if err != nil || !p.Addr().Is4() || p != p.Masked() {
			return nil, fmt.Errorf("--bridge-subnet %s: want an IPv4 subnet such as 172.30.0.0/16", g.bridgeSubnet)
		}
		subnet = p
	}
	e, err := engine.Open(engine.Options{
		Root: g.root, State: g.state, Runtime: g.runtime, Driver: g.driver,
		InsecureRegistries: g.insecure, Log: g.log, BridgeSubnet: subnet,
	})
	if err != nil {
		return nil, err
	}
	g.eng = e
	return e, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// commands lists every verb; each file of this package builds its own.
// Groups of the same name from several files ("system") are merged.
func commands(g *globals) []*cli.Command {
	var cmds []*cli.Command
	byName := map[string]*cli.Command{}
	for _, list := range [][]*cli.Command{imageCommands(g), containerCommands(g), networkCommands(g)} {
		for _, c := range list {
			if prev, ok := byName[c.Name()]; ok && len(prev.Sub) > 0 && len(c.Sub) > 0 {
				prev.Sub = append(prev.Sub, c.Sub...)
				continue
			}
			byName[c.Name()] = c
			cmds = append(cmds, c)
		}
	}
	return cmds
}
