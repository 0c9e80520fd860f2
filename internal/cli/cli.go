// Package cli is a small command dispatcher on pflag for berth's command
// line tools: global flags, then a verb with its own flags. The tools are
// exec'd often (the runtime several times per container), so a few lines
// here instead of a CLI framework keep every start about a millisecond
// shorter.
package cli

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// Command is one verb of the command line.
type Command struct {
	Use     string // "name [flags] ARGS"
	Short   string
	Aliases []string
	Args    func(cmd *Command, args []string) error
	RunE    func(cmd *Command, args []string) error
	// Sub makes this command a group ("image ls", "system df"): the next
	// argument names one of these.
	Sub []*Command
	// Setup, when set, defines the command's flags; it runs only for the
	// command that is run (a command with many flags costs nothing to the
	// others).
	Setup func(c *Command)

	flags *pflag.FlagSet
	app   string
	help  *bool
}

func (c *Command) Name() string { return strings.Fields(c.Use)[0] }

// Flags returns the command's flag set.
func (c *Command) Flags() *pflag.FlagSet {
	if c.flags == nil {
		c.flags = pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
		c.flags.SortFlags = false
	}
	return c.flags
}

// CommandPath names the command in messages.
func (c *Command) CommandPath() string { return c.app + " " + c.Name() }

// UsageError is a command line the parser refused: an unknown flag, a
// flag without its value, a value of the wrong type. Its message is
// Docker's: the parser's complaint, then where to find the usage
// ("See 'berth run --help'."). Docker exits 125 on these.
type UsageError struct {
	Command string // "berth run", or "berth" for the global flags
	Err     error
}

func (e *UsageError) Error() string {
	return fmt.Sprintf("%v\nSee '%s --help'.", e.Err, e.Command)
}

func (e *UsageError) Unwrap() error { return e.Err }

// App is a whole command line: global flags, then a verb.
type App struct {
	Name     string // program name, in messages and help
	Summary  string // one line for the help
	Version  string // printed by --version
	Global   *pflag.FlagSet
	Commands []*Command
	Before   func() error // after flag parsing, before the verb runs

	showVersion, help *bool
}

// run parses args (without the program name) and runs the verb.
func (a *App) Run(args []string, stdout io.Writer) error {
	a.Global.SetInterspersed(false)
	a.Global.SetOutput(io.Discard)
	if a.showVersion == nil {
		a.showVersion = a.Global.BoolP("version", "v", false, "print the version")
		a.help = a.Global.BoolP("help", "h", false, "show help")
	}
	showVersion, help := a.showVersion, a.help
	*showVersion, *help = false, false
	if err := a.Global.Parse(args); err != nil {
		return &UsageError{Command: a.Name, Err: err}
	}
	if *showVersion {
		fmt.Fprint(stdout, a.Version)
		return nil
	}
	rest := a.Global.Args()
	if *help || len(rest) == 0 || rest[0] == "help" {
		a.usage(stdout)
		if len(rest) == 0 && !*help {
			return errors.New("no command given")
		}
		return nil
	}
	cmd := find(a.Commands, rest[0])
	if cmd == nil {
		return fmt.Errorf("unknown command %q (see %s --help)", rest[0], a.Name)
	}
	cmd.app = a.Name
	for len(cmd.Sub) > 0 {
		group := cmd
		if len(rest) < 2 || rest[1] == "--help" || rest[1] == "-h" || rest[1] == "help" {
			groupUsage(stdout, a.Name, group)
			if len(rest) < 2 {
				return fmt.Errorf("%s: which one? (see %s %s --help)", group.CommandPath(), a.Name, group.Name())
			}
			return nil
		}
		cmd = find(group.Sub, rest[1])
		if cmd == nil {
			return fmt.Errorf("unknown command %q for %q (see %s %s --help)", rest[1], group.CommandPath(), a.Name, group.Name())
		}
		cmd.app = group.CommandPath()
		rest = rest[1:]
	}
	if cmd.Setup != nil {
		cmd.Setup(cmd)
		cmd.Setup = nil
	}
	fs := cmd.Flags()
	fs.SetOutput(io.Discard)
	if cmd.help == nil {
		short := "h"
		if fs.ShorthandLookup("h") != nil { // docker run -h is --hostname
			short = ""
		}
		cmd.help = fs.BoolP("help", short, false, "show help")
	}
	cmdHelp := cmd.help
	*cmdHelp = false
	if err := fs.Parse(rest[1:]); err != nil {
		return &UsageError{Command: cmd.CommandPath(), Err: err}
	}
	if *cmdHelp {
		fmt.Fprintf(stdout, "Usage: %s %s\n\n%s\n\nFlags:\n%s", cmd.app, cmd.Use, cmd.Short, fs.FlagUsages())
		return nil
	}
	if cmd.Args != nil {
		if err := cmd.Args(cmd, fs.Args()); err != nil {
			return err
		}
	}
	if a.Before != nil {
		if err := a.Before(); err != nil {
			return err
		}
	}
	return cmd.RunE(cmd, fs.Args())
}

func find(cmds []*Command, name string) *Command {
	for _, c := range cmds {
		if c.Name() == name {
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

func groupUsage(w io.Writer, app string, g *Command) {
	fmt.Fprintf(w, "Usage: %s %s COMMAND\n\n%s\n\nCommands:\n", app, g.Name(), g.Short)
	for _, c := range g.Sub {
		fmt.Fprintf(w, "  %-10s %s\n", c.Name(), c.Short)
	}
}

func (a *App) usage(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n\n", a.Name, a.Summary)
	fmt.Fprintf(w, "Usage: %s [global flags] COMMAND [flags] ARGS\n\nCommands:\n", a.Name)
	cmds := append([]*Command{}, a.Commands...)
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-10s %s\n", c.Name(), c.Short)
	}
	fmt.Fprintf(w, "\nGlobal flags:\n%s\nRun '%s COMMAND --help' for a command's flags.\n", a.Global.FlagUsages(), a.Name)
}
