package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// command is one verb of the command line. The runtime is exec'd many times
// per container (create, start, the init, delete...), so its start-up cost
// matters: a few lines here instead of a CLI framework keep every exec
// about a millisecond shorter.
type command struct {
	Use     string // "name [flags] ARGS"
	Short   string
	Aliases []string
	Args    func(cmd *command, args []string) error
	RunE    func(cmd *command, args []string) error

	flags *pflag.FlagSet
}

func (c *command) name() string { return strings.Fields(c.Use)[0] }

// Flags returns the command's flag set.
func (c *command) Flags() *pflag.FlagSet {
	if c.flags == nil {
		c.flags = pflag.NewFlagSet(c.name(), pflag.ContinueOnError)
		c.flags.SortFlags = false
	}
	return c.flags
}

// CommandPath names the command in messages.
func (c *command) CommandPath() string { return "berth-runtime " + c.name() }

// app is the whole command line: global flags, then a verb.
type app struct {
	global   *pflag.FlagSet
	commands []*command
	before   func() error // after flag parsing, before the verb runs
}

var errHelp = errors.New("help requested")

// run parses args (without the program name) and runs the verb.
func (a *app) run(args []string, stdout io.Writer) error {
	a.global.SetInterspersed(false)
	a.global.SetOutput(io.Discard)
	showVersion := a.global.BoolP("version", "v", false, "print the version")
	help := a.global.BoolP("help", "h", false, "show help")
	if err := a.global.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintf(stdout, "berth-runtime version %s\nspec: %s\n", version, specVersion())
		return nil
	}
	rest := a.global.Args()
	if *help || len(rest) == 0 || rest[0] == "help" {
		a.usage(stdout)
		if len(rest) == 0 && !*help {
			return errors.New("no command given")
		}
		return nil
	}
	cmd := a.find(rest[0])
	if cmd == nil {
		return fmt.Errorf("unknown command %q (see berth-runtime --help)", rest[0])
	}
	fs := cmd.Flags()
	fs.SetOutput(io.Discard)
	cmdHelp := fs.BoolP("help", "h", false, "show help")
	if err := fs.Parse(rest[1:]); err != nil {
		return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	if *cmdHelp {
		fmt.Fprintf(stdout, "Usage: berth-runtime %s\n\n%s\n\nFlags:\n%s", cmd.Use, cmd.Short, fs.FlagUsages())
		return nil
	}
	if cmd.Args != nil {
		if err := cmd.Args(cmd, fs.Args()); err != nil {
			return err
		}
	}
	if a.before != nil {
		if err := a.before(); err != nil {
			return err
		}
	}
	return cmd.RunE(cmd, fs.Args())
}

func (a *app) find(name string) *command {
	for _, c := range a.commands {
		if c.name() == name {
			return c
		}
		for _, al := range c.Aliases {
			if al == name {
				return c
			}
		}
	}
	return nil
}

func (a *app) usage(w io.Writer) {
	fmt.Fprintf(w, "berth-runtime: berth's OCI container runtime (runc-compatible command line)\n\n")
	fmt.Fprintf(w, "Usage: berth-runtime [global flags] COMMAND [flags] ARGS\n\nCommands:\n")
	cmds := append([]*command{}, a.commands...)
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name() < cmds[j].name() })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-10s %s\n", c.name(), c.Short)
	}
	fmt.Fprintf(w, "\nGlobal flags:\n%s\nRun 'berth-runtime COMMAND --help' for a command's flags.\n", a.global.FlagUsages())
}
