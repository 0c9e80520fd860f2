package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/caps"
	"github.com/berthproject/berth/internal/cli"
	"github.com/berthproject/berth/internal/ocispec"
	"github.com/berthproject/berth/internal/runtime"
)

// execFlags fill the process of `exec` when no --process file is given.
type execFlags struct {
	process      string
	tty          bool
	cwd          string
	env          []string
	user         string
	addGids      []string
	caps         []string
	noNewPrivs   bool
	apparmor     string
	processLabel string
	o            runtime.ExecOpts
}

func execCmd(g *globals) *cli.Command {
	var x execFlags
	cmd := &cli.Command{
		Use:   "exec [flags] CONTAINER_ID [COMMAND [ARG...]]",
		Short: "run a new process inside a running container",
		Args:  minArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cli.Command, args []string) error {
			r, err := g.runtime()
			if err != nil {
				return err
			}
			p, err := x.build(cmd, r, args[0], args[1:])
			if err != nil {
				return err
			}
			code, err := r.Exec(args[0], p, x.o)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.StringVarP(&x.process, "process", "p", "", "path to a process.json (runtime-spec process); other process flags are ignored")
	f.BoolVarP(&x.tty, "tty", "t", false, "allocate a pseudo-TTY")
	f.StringVar(&x.cwd, "cwd", "", "working directory in the container")
	f.StringArrayVarP(&x.env, "env", "e", nil, "set an environment variable (KEY=value)")
	f.StringVarP(&x.user, "user", "u", "", "UID[:GID] to run as")
	f.StringArrayVarP(&x.addGids, "additional-gids", "g", nil, "additional group id")
	f.StringArrayVarP(&x.caps, "cap", "c", nil, "add a capability (CAP_X)")
	f.BoolVar(&x.noNewPrivs, "no-new-privs", false, "set no_new_privs for the process")
	f.StringVar(&x.apparmor, "apparmor", "", "AppArmor profile for the process")
	f.StringVar(&x.processLabel, "process-label", "", "SELinux label for the process")
	f.BoolVarP(&x.o.Detach, "detach", "d", false, "detach from the process")
	f.StringVar(&x.o.PidFile, "pid-file", "", "write the process's pid to this file")
	f.StringVar(&x.o.ConsoleSocket, "console-socket", "", "unix socket that receives the pty master")
	f.IntVar(&x.o.PreserveFds, "preserve-fds", 0, "pass this many additional fds (from 3) to the process")
	return cmd
}

// build returns the process to exec: the --process file, or the
// container's own process with the flags applied (runc's rules).
func (x *execFlags) build(cmd *cli.Command, r *runtime.Runtime, id string, args []string) (*specs.Process, error) {
	if x.process != "" {
		b, err := os.ReadFile(x.process)
		if err != nil {
			return nil, fmt.Errorf("--process: %w", err)
		}
		var p specs.Process
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("--process %s: %w", x.process, err)
		}
		return &p, nil
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("exec: give a command to run, or --process")
	}
	spec, err := r.Config(id)
	if err != nil {
		return nil, err
	}
	p := *spec.Process
	p.Args = args
	p.Terminal = x.tty
	p.ConsoleSize = nil
	p.Env = append(append([]string{}, p.Env...), x.env...)
	if x.cwd != "" {
		p.Cwd = x.cwd
	}
	if x.user != "" {
		uid, gid, hasGid, err := parseUser(x.user)
		if err != nil {
			return nil, err
		}
		p.User.UID = uid
		if hasGid {
			p.User.GID = gid
		}
	}
	for _, s := range x.addGids {
		g, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--additional-gids: %q is not a number", s)
		}
		p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(g))
	}
	if len(x.caps) > 0 {
		c := specs.LinuxCapabilities{}
		if p.Capabilities != nil {
			c = *p.Capabilities
		}
		for _, name := range x.caps {
			if !caps.Known(name) {
				return nil, fmt.Errorf("--cap: unknown capability %q", name)
			}
			c.Bounding = append(c.Bounding, name)
			c.Effective = append(c.Effective, name)
			c.Permitted = append(c.Permitted, name)
			c.Inheritable = append(c.Inheritable, name)
			c.Ambient = append(c.Ambient, name)
		}
		p.Capabilities = &c
	}
	if cmd.Flags().Changed("no-new-privs") {
		p.NoNewPrivileges = x.noNewPrivs
	}
	if x.apparmor != "" {
		p.ApparmorProfile = x.apparmor
	}
	if x.processLabel != "" {
		p.SelinuxLabel = x.processLabel
	}
	return &p, nil
}

func parseUser(s string) (uid, gid uint32, hasGid bool, err error) {
	u, g, hasGid := strings.Cut(s, ":")
	n, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, 0, false, fmt.Errorf("--user: %q: the user must be a numeric UID", s)
	}
	uid = uint32(n)
	if hasGid {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return 0, 0, false, fmt.Errorf("--user: %q: the group must be a numeric GID", s)
		}
		gid = uint32(n)
	}
	return uid, gid, hasGid, nil
}

func specCmd() *cli.Command {
	var bundle string
	var rootless bool
	cmd := &cli.Command{
		Use:   "spec [flags]",
		Short: "write a starter config.json into the bundle directory",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cli.Command, args []string) error {
			path := filepath.Join(bundle, "config.json")
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s already exists; remove it first", path)
			}
			s := ocispec.Default()
			if rootless {
				ocispec.MakeRootless(s, os.Getuid(), os.Getgid())
			}
			b, err := json.MarshalIndent(s, "", "\t")
			if err != nil {
				return err
			}
			return os.WriteFile(path, append(b, '\n'), 0o666)
		},
	}
	cmd.Flags().StringVarP(&bundle, "bundle", "b", ".", "bundle directory to write config.json into")
	cmd.Flags().BoolVar(&rootless, "rootless", false, "a config for a user namespace mapping the caller to root")
	return cmd
}
