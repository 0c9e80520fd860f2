package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/cli"
	"github.com/berthproject/berth/internal/runtime"
)

func createFlags(cmd *cli.Command, o *runtime.CreateOpts) {
	f := cmd.Flags()
	f.StringVarP(&o.Bundle, "bundle", "b", ".", "path to the root of the bundle directory")
	f.StringVar(&o.PidFile, "pid-file", "", "write the container's init pid to this file")
	f.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket that receives the pty master (process.terminal)")
	f.BoolVar(&o.NoPivot, "no-pivot", false, "do not use pivot_root (for a rootfs on a ramdisk); chroot instead")
	f.BoolVar(&o.NoNewKeyring, "no-new-keyring", false, "do not create a session keyring for the container")
	f.IntVar(&o.PreserveFds, "preserve-fds", 0, "pass this many additional fds (from 3) to the container")
}

func createCmd(g *globals) *cli.Command {
	var o runtime.CreateOpts
	cmd := &cli.Command{
		Use:   "create [flags] CONTAINER_ID",
		Short: "create a container from a bundle (the process waits for start)",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cli.Command, args []string) error {
			r, err := g.runtime()
			if err != nil {
				return err
			}
			return r.Create(args[0], o)
		},
	}
	createFlags(cmd, &o)
	return cmd
}

func runCmd(g *globals) *cli.Command {
	var o runtime.CreateOpts
	var detach bool
	cmd := &cli.Command{
		Use:   "run [flags] CONTAINER_ID",
		Short: "create and start a container; wait for it unless --detach",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cli.Command, args []string) error {
			r, err := g.runtime()
			if err != nil {
				return err
			}
			code, err := r.Run(args[0], o, detach)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	createFlags(cmd, &o)
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "detach from the container's process")
	cmd.Flags().Bool("keep", false, "accepted for runc compatibility")
	return cmd
}

func startCmd(g *globals) *cli.Command {
	return &cli.Command{
		Use:   "start CONTAINER_ID",
		Short: "start the user process of a created container",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cli.Command, args []string) error {
			r, err := g.runtime()
			if err != nil {
				return err
			}
			return r.Start(args[0])
		},
	}
}

func stateCmd(g *globals) *cli.Command {
	return &cli.Command{
		Use:   "state CONTAINER_ID",
		Short: "print the state of a container as JSON",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cli.Command, args []string) error {
			r, err := g.runtime()
			if err != nil {
				return err
			}
			info, err := r.State(args[0])
			if err != nil {
				return err
			}
			return printJSON(info)
		},
	}
}

func killCmd(g *globals) *cli.Command {
	var all bool
	cmd := &cli.Command{
		Use:   "kill [flags] CONTAINER_ID [SIGNAL]",
		Short: "send a signal (default SIGTERM) to the container's init",
		Args:  rangeArgs(1, 2, "CONTAINER_ID [SIGNAL]"),
		RunE: func(cmd *cli.Command, args []string) error {
			sig := unix.SIGTERM
			if len(args) == 2 {
				var err error
				if sig, err = parseSignal(args[1]); err != nil {
					return err
				}
			}
			r, err := g.runtime()
			if err != nil {
				return err
			}
			return r.Kill(args[0], sig, all)
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "send the signal to every process of the container")
	return cmd
}

// parseSignal accepts "KILL", "SIGKILL", "sigkill" and "9".
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func deleteCmd(g *globals) *cli.Command {
	var force bool
	cmd := &cli.Command{
		Use:   "delete [flags] CONTAINER_ID",
		Short: "delete a stopped container (--force: kill it first)",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cli.Command, args []string) error {
			r, err := g.runtime()
			if err != nil {
				return err
			}
			return r.Delete(args[0], force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill the container if it is still running")
	return cmd
}

func pauseCmd(g *globals) *cli.Command {
	return &cli.Command{
		Use:   "pause CONTAINER_ID",
		Short: "freeze every process of a container",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cli.Command, args []string) error {
			r, err := g.runtime()
			if err != nil {
				return err
			}
			return r.Pause(args[0])
		},
	}
}

func resumeCmd(g *globals) *cli.Command {
	return &cli.Command{
		Use:   "resume CONTAINER_ID",
		Short: "thaw a paused container",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cli.Command, args []string) error {
			r, err := g.runtime()
			if err != nil {
				return err
			}
			return r.Resume(args[0])
		},
	}
}

func psCmd(g *globals) *cli.Command {
	var format string
	cmd := &cli.Command{
		Use:   "ps [flags] CONTAINER_ID [ps options]",
		Short: "list the processes of a container",
		Args:  minArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cli.Command, args []string) error {
			r, err := g.runtime()
			if err != nil {
				return err
			}
			pids, err := r.Pids(args[0])
			if err != nil {
				return err
			}
			switch format {
			case "json":
				if pids == nil {
					pids = []int{}
				}
				return json.NewEncoder(os.Stdout).Encode(pids)
			case "table":
			default:
				return fmt.Errorf("--format: unknown format %q (want table or json)", format)
			}
			psArgs := args[1:]
			if len(psArgs) == 0 {
				psArgs = []string{"-ef"}
			}
			return psTable(pids, psArgs)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// psTable runs ps(1) and keeps the header and the container's processes.
func psTable(pids []int, psArgs []string) error {
	out, err := exec.Command("ps", psArgs...).Output()
	if err != nil {
		return fmt.Errorf("ps %s: %w", strings.Join(psArgs, " "), err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	col := -1
	for i, h := range strings.Fields(lines[0]) {
		if h == "PID" {
			col = i
		}
	}
	if col < 0 {
		return fmt.Errorf("ps %s: no PID column in the output", strings.Join(psArgs, " "))
	}
	in := map[string]bool{}
	for _, p := range pids {
		in[strconv.Itoa(p)] = true
	}
	fmt.Println(lines[0])
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if col < len(f) && in[f[col]] {
			fmt.Println(l)
		}
	}
	return nil
}

func listCmd(g *globals) *cli.Command {
	var format string
	var quiet bool
	cmd := &cli.Command{
		Use:     "list [flags]",
		Aliases: []string{"ls"},
		Short:   "list the containers",
		Args:    exactArgs(0, ""),
		RunE: func(cmd *cli.Command, args []string) error {
			r, err := g.runtime()
			if err != nil {
				return err
			}
			list, err := r.List()
			if err != nil {
				return err
			}
			if quiet {
				for _, c := range list {
					fmt.Println(c.ID)
				}
				return nil
			}
			switch format {
			case "json":
				if list == nil {
					list = []*runtime.Info{}
				}
				return json.NewEncoder(os.Stdout).Encode(list)
			case "table":
				w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
				fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
				for _, c := range list {
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", c.ID, c.Pid, c.Status, c.Bundle, fmtTime(c.Created), c.Owner)
				}
				return w.Flush()
			default:
				return fmt.Errorf("--format: unknown format %q (want table or json)", format)
			}
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "table", "table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only container ids")
	return cmd
}

// event is one record of `events`, shaped like runc's.
type event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data,omitempty"`
}

func eventsCmd(g *globals) *cli.Command {
	var stats bool
	var interval time.Duration
	cmd := &cli.Command{
		Use:   "events [flags] CONTAINER_ID",
		Short: "print container statistics (--stats: once) as JSON records",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cli.Command, args []string) error {
			if interval <= 0 {
				return fmt.Errorf("--interval: must be positive")
			}
			r, err := g.runtime()
			if err != nil {
				return err
			}
			enc := json.NewEncoder(os.Stdout)
			for {
				s, err := r.Stats(args[0])
				if err != nil {
					return err
				}
				if err := enc.Encode(event{Type: "stats", ID: args[0], Data: s}); err != nil {
					return err
				}
				if stats {
					return nil
				}
				time.Sleep(interval)
			}
		},
	}
	cmd.Flags().BoolVar(&stats, "stats", false, "print the statistics once and exit")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "time between statistics records")
	return cmd
}

func featuresCmd() *cli.Command {
	return &cli.Command{
		Use:   "features",
		Short: "print what this runtime supports (runtime-spec features.md) as JSON",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cli.Command, args []string) error {
			return printJSON(runtimeFeatures())
		},
	}
}

func exactArgs(n int, usage string) func(cmd *cli.Command, args []string) error {
	return func(cmd *cli.Command, args []string) error {
		if len(args) != n {
			if n == 0 {
				return fmt.Errorf("%q takes no arguments", cmd.CommandPath())
			}
			return fmt.Errorf("%q requires exactly %d argument(s): %s", cmd.CommandPath(), n, usage)
		}
		return nil
	}
}

func minArgs(n int, usage string) func(cmd *cli.Command, args []string) error {
	return func(cmd *cli.Command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("%q requires at least %d argument(s): %s", cmd.CommandPath(), n, usage)
		}
		return nil
	}
}

func rangeArgs(lo, hi int, usage string) func(cmd *cli.Command, args []string) error {
	return func(cmd *cli.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return fmt.Errorf("%q requires %d to %d arguments: %s", cmd.CommandPath(), lo, hi, usage)
		}
		return nil
	}
}

func specVersion() string { return specs.Version }
