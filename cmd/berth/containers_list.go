package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"

	"github.com/berthproject/berth/internal/cli"
	"github.com/berthproject/berth/internal/engine"
	"github.com/berthproject/berth/internal/image/progress"
)

func newTabWriter(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 10, 1, 3, ' ', 0) }

// pullProgress renders pull progress of run/create on w (bars on a
// terminal, nothing otherwise, like Docker's run).
func pullProgress(w *os.File) progress.Func {
	if !progress.IsTerminal(w) {
		return nil
	}
	return progress.NewRenderer(w, progress.Auto).Func()
}

// psRow is one line of `ps`, with the fields Docker's --format knows.
type psRow struct {
	ID, Image, Command, CreatedAt, RunningFor, Ports, State, Status, Size, Names, Labels, Mounts, Networks string
	c                                                                                                      *engine.Container
}

// Label returns the value of one label (Docker's {{.Label "k"}}).
func (r psRow) Label(k string) string { return r.c.Config.Labels[k] }

func psCommand(g *globals, name string) *cli.Command {
	var all, quiet, noTrunc, latest, size bool
	var last int
	var format string
	var filters []string
	c := &cli.Command{
		Use: name + " [flags]", Short: "list containers",
		Args: exactArgs(0),
		RunE: func(cmd *cli.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			byKey, err := parsePsFilters(filters)
			if err != nil {
				return err
			}
			if len(byKey["status"]) > 0 {
				all = true // as Docker: a status filter looks at every container
			}
			cs, err := e.List(ctx)
			if err != nil {
				return err
			}
			if latest {
				last = 1
			}
			if last > 0 {
				all = true
			}
			var rows []any
			now := time.Now()
			for _, c := range cs {
				if !all && c.State.Status != engine.StatusRunning && c.State.Status != engine.StatusPaused && c.State.Status != engine.StatusRestarting {
					continue
				}
				if !psMatch(c, byKey) {
					continue
				}
				if last > 0 && len(rows) == last {
					break
				}
				id, command := c.ID, strings.Join(append(append([]string{}, c.Config.Entrypoint...), c.Config.Cmd...), " ")
				if !noTrunc {
					id = id[:12]
					command = ellipsis(command, 20)
				}
				var labels []string
				for k, v := range c.Config.Labels {
					labels = append(labels, k+"="+v)
				}
				sort.Strings(labels)
				rows = append(rows, psRow{
					ID: id, Image: c.ImageName, Command: fmt.Sprintf("%q", command),
					CreatedAt:  c.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
					RunningFor: humanDuration(now.Sub(c.Created)) + " ago", Ports: portsColumn(ctx, e, c),
					State: c.State.Status, Status: c.Status(now), Names: c.Name, Labels: strings.Join(labels, ","),
					Networks: networkColumn(c), c: c,
				})
			}
			if quiet {
				for _, r := range rows {
					fmt.Println(r.(psRow).ID)
				}
				return nil
			}
			def := "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
			return formatter{Format: format, Default: def, Header: map[string]string{
				"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
				"RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES", "State": "STATE",
				"Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "Size": "SIZE",
			}}.Write(os.Stdout, rows)
		},
	}
	f := c.Flags()
	f.BoolVarP(&all, "all", "a", false, "show every container (default: running ones)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only ids")
	f.BoolVar(&noTrunc, "no-trunc", false, "do not shorten ids and commands")
	f.BoolVarP(&latest, "latest", "l", false, "show the latest created container")
	f.IntVarP(&last, "last", "n", -1, "show the n last created containers")
	f.BoolVarP(&size, "size", "s", false, "accepted for docker compatibility")
	f.StringVar(&format, "format", "", "Go template, table or json")
	stringArrayVarP(f, &filters, "filter", "f", "filter (id, name, label, status, exited, ancestor)")
	return c
}

// psStatuses are the values of ps --filter status=, as Docker's.
var psStatuses = []string{
	engine.StatusCreated, engine.StatusRestarting, engine.StatusRunning, engine.StatusRemoving,
	engine.StatusPaused, engine.StatusExited, engine.StatusDead,
}

// parsePsFilters checks ps --filter KEY=VALUE arguments and groups their
// values by key. Errors read as Docker's ("invalid filter 'status=x'").
func parsePsFilters(filters []string) (map[string][]string, error) {
	byKey := map[string][]string{}
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("bad format of filter (expected name=value): %s", f)
		}
		switch k {
		case "id", "name", "label", "ancestor":
		case "status":
			if !slices.Contains(psStatuses, v) {
				return nil, fmt.Errorf("invalid filter '%s=%s'", k, v)
			}
		case "exited":
			if _, err := strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("invalid filter '%s=%s'", k, v)
			}
		default:
			return nil, fmt.Errorf("invalid filter '%s'", k)
		}
		byKey[k] = append(byKey[k], v)
	}
	return byKey, nil
}

// psMatch applies ps --filter: values of one key are ORed, keys ANDed.
func psMatch(c *engine.Container, byKey map[string][]string) bool {
	for k, vs := range byKey {
		match := false
		for _, v := range vs {
			switch k {
			case "id":
				match = match || strings.HasPrefix(c.ID, v)
			case "name":
				match = match || strings.Contains(c.Name, strings.TrimPrefix(v, "/"))
			case "label":
				lk, lv, hasValue := strings.Cut(v, "=")
				got, ok := c.Config.Labels[lk]
				match = match || (ok && (!hasValue || got == lv))
			case "status":
				match = match || c.State.Status == v
			case "exited":
				match = match || (c.State.Status == engine.StatusExited && strconv.Itoa(c.State.ExitCode) == v)
			case "ancestor":
				match = match || c.ImageName == v || strings.HasPrefix(c.Image.String(), v) || strings.HasPrefix(c.Image.Encoded(), v)
			}
		}
		if !match {
			return false
		}
	}
	return true
}

func networkColumn(c *engine.Container) string {
	switch m := string(c.HostConfig.NetworkMode); m {
	case "", "default":
		return "bridge"
	default:
		return m
	}
}

func inspectContainerCommand(g *globals) *cli.Command {
	return inspectFor(g, "inspect", false)
}

// inspectCommand is the generic `inspect`: containers first, then images.
func inspectCommand(g *globals) *cli.Command {
	return inspectFor(g, "inspect", true)
}

func inspectFor(g *globals, name string, images bool) *cli.Command {
	var format, kind string
	c := &cli.Command{
		Use: name + " [flags] NAME|ID...", Short: "show low-level information as JSON",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			var out []any
			var errs []error
			for _, ref := range args {
				if kind == "" || kind == "container" {
					r, err := e.Inspect(ctx, ref)
					if err == nil {
						out = append(out, r)
						continue
					}
					if !errors.Is(err, engine.ErrNotFound) || !images || kind == "container" {
						errs = append(errs, err)
						continue
					}
				}
				if images && (kind == "" || kind == "image") {
					r, err := e.Images.Inspect(ctx, ref)
					if err == nil {
						out = append(out, r)
						continue
					}
					errs = append(errs, fmt.Errorf("No such object: %s", ref))
					continue
				}
				errs = append(errs, fmt.Errorf("%w: No such object: %s", engine.ErrNotFound, ref))
			}
			if err := writeInspect(os.Stdout, out, format); err != nil {
				return err
			}
			return reportAll(os.Stderr, errs)
		},
	}
	c.Flags().StringVarP(&format, "format", "f", "", "Go template over each object")
	if images {
		c.Flags().StringVar(&kind, "type", "", "container or image")
	}
	return c
}

// writeInspect prints objects as Docker's inspect: a JSON array, or a
// template per object.
// inspectEach prints what inspect returns for every ref that it finds, as
// one JSON array or template output, then reports the refs it did not.
func inspectEach(refs []string, format string, inspect func(ref string) (any, error)) error {
	var out []any
	var errs []error
	for _, ref := range refs {
		v, err := inspect(ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, v)
	}
	if err := writeInspect(os.Stdout, out, format); err != nil {
		return err
	}
	return reportAll(os.Stderr, errs)
}

func writeInspect(w io.Writer, objs []any, format string) error {
	if format == "" || format == "json" {
		if objs == nil {
			objs = []any{}
		}
		b, err := json.MarshalIndent(objs, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	tmpl, err := template.New("").Funcs(templateFuncs).Parse(strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format))
	if err != nil {
		return fmt.Errorf("--format: template parsing error: %w", err)
	}
	for _, o := range objs {
		if err := executeInspect(w, tmpl, o); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		fmt.Fprintln(w)
	}
	return nil
}

func portCommand(g *globals) *cli.Command {
	return &cli.Command{
		Use: "port CONTAINER [PRIVATE_PORT[/PROTO]]", Short: "list a container's published ports",
		Args: rangeArgs(1, 2),
		RunE: func(cmd *cli.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			c, err := e.Lookup(ctx, args[0])
			if err != nil {
				return err
			}
			published, err := e.PublishedPorts(ctx, c)
			if err != nil {
				return err
			}
			want := ""
			if len(args) == 2 {
				want = args[1]
				if !strings.Contains(want, "/") {
					want += "/tcp"
				}
			}
			var lines []string
			for port, bs := range published {
				if len(args) == 2 {
					if port.String() != want {
						continue
					}
				}
				for _, b := range bs {
					hp := net.JoinHostPort(b.HostIP.String(), b.HostPort)
					if len(args) == 2 {
						lines = append(lines, hp)
					} else {
						lines = append(lines, fmt.Sprintf("%s -> %s", port, hp))
					}
				}
			}
			if len(args) == 2 && len(lines) == 0 {
				// Docker's words, naming the container as it was given.
				return fmt.Errorf("No public port '%s' published for %s", want, args[0])
			}
			sort.Strings(lines)
			for _, l := range lines {
				fmt.Println(l)
			}
			return nil
		},
	}
}

func updateCommand(g *globals) *cli.Command {
	f := runFlags{memorySwappiness: -1}
	var restart string
	c := &cli.Command{
		Use: "update [flags] CONTAINER...", Short: "change the resource limits of containers",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			var r container.Resources
			if err := f.resources(cmd.Flags(), &r); err != nil {
				return err
			}
			var rp *container.RestartPolicy
			if cmd.Flags().Changed("restart") {
				p, err := parseRestart(restart)
				if err != nil {
					return err
				}
				rp = &p
			}
			// As Docker's: the warnings of all, after the names.
			var warnings []string
			err := each(g, args, true, func(ctx context.Context, e *engine.Engine, ref string) error {
				w, err := e.Update(ctx, ref, r, rp)
				warnings = append(warnings, w...)
				return err
			})
			if len(warnings) > 0 {
				fmt.Fprintln(os.Stderr, strings.Join(warnings, "\n"))
			}
			return err
		},
	}
	fs := c.Flags()
	fs.StringVarP(&f.memory, "memory", "m", "", "memory limit")
	fs.StringVar(&f.memorySwap, "memory-swap", "", "memory plus swap limit (-1: unlimited)")
	fs.StringVar(&f.memoryReservation, "memory-reservation", "", "memory soft limit")
	fs.StringVar(&f.cpus, "cpus", "", "number of CPUs")
	fs.Int64VarP(&f.cpuShares, "cpu-shares", "c", 0, "CPU shares")
	fs.Int64Var(&f.cpuQuota, "cpu-quota", 0, "CPU CFS quota")
	fs.Int64Var(&f.cpuPeriod, "cpu-period", 0, "CPU CFS period")
	fs.StringVar(&f.cpusetCpus, "cpuset-cpus", "", "CPUs allowed")
	fs.StringVar(&f.cpusetMems, "cpuset-mems", "", "memory nodes allowed")
	fs.Int64Var(&f.pidsLimit, "pids-limit", 0, "maximum number of processes")
	fs.Uint16Var(&f.blkioWeight, "blkio-weight", 0, "block IO weight")
	fs.StringVar(&restart, "restart", "", "restart policy")
	return c
}

func statsCommand(g *globals) *cli.Command {
	var noStream, all, noTrunc bool
	var format string
	c := &cli.Command{
		Use: "stats [flags] [CONTAINER...]", Short: "show containers' resource usage (read from their cgroups)",
		RunE: func(cmd *cli.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			refs := args
			if len(refs) == 0 {
				cs, err := e.List(ctx)
				if err != nil {
					return err
				}
				for _, c := range cs {
					if all || c.State.Status == engine.StatusRunning || c.State.Status == engine.StatusPaused {
						refs = append(refs, c.ID)
					}
				}
			}
			prev := map[string]*engine.Sample{}
			sample := func() ([]any, error) {
				var rows []any
				for _, ref := range refs {
					c, s, err := e.Stats(ctx, ref)
					if err != nil {
						return nil, err
					}
					cpu := engine.CPUPercent(prev[c.ID], s)
					prev[c.ID] = s
					id := c.ID
					if !noTrunc {
						id = id[:12]
					}
					memPct := 0.0
					if s.MemoryLimit > 0 {
						memPct = float64(s.MemoryUsage) / float64(s.MemoryLimit) * 100
					}
					rows = append(rows, map[string]any{
						"ID": id, "Container": id, "Name": c.Name,
						"CPUPerc":  fmt.Sprintf("%.2f%%", cpu),
						"MemUsage": units.BytesSize(float64(s.MemoryUsage)) + " / " + units.BytesSize(float64(s.MemoryLimit)), // binary, as Docker
						"MemPerc":  fmt.Sprintf("%.2f%%", memPct),
						"NetIO":    "0B / 0B",
						"BlockIO":  humanSize(int64(s.BlockRead), 3) + " / " + humanSize(int64(s.BlockWrite), 3),
						"PIDs":     fmt.Sprint(s.Pids),
					})
				}
				return rows, nil
			}
			if _, err := sample(); err != nil {
				return err
			}
			def := "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
			head := map[string]string{"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
				"MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
			for {
				time.Sleep(500 * time.Millisecond)
				rows, err := sample()
				if err != nil {
					return err
				}
				if !noStream && isTerminal(os.Stdout) {
					fmt.Print("\033[2J\033[H")
				}
				if err := (formatter{Format: format, Default: def, Header: head}).Write(os.Stdout, rows); err != nil {
					return err
				}
				if noStream {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				default:
				}
			}
		},
	}
	c.Flags().BoolVar(&noStream, "no-stream", false, "print one reading and exit")
	c.Flags().BoolVarP(&all, "all", "a", false, "include stopped containers")
	c.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not shorten ids")
	c.Flags().StringVar(&format, "format", "", "Go template, table or json")
	return c
}

func cpCommand(g *globals) *cli.Command {
	var o engine.CopyOptions
	var archive, quiet bool
	c := &cli.Command{
		Use: "cp CONTAINER:SRC_PATH DEST_PATH | SRC_PATH CONTAINER:DEST_PATH", Short: "copy files between a container and the host",
		Args: exactArgs(2),
		RunE: func(cmd *cli.Command, args []string) error {
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := commandContext()
			defer cancel()
			srcCtr, srcPath, srcIn := strings.Cut(args[0], ":")
			dstCtr, dstPath, dstIn := strings.Cut(args[1], ":")
			switch {
			case args[0] == "-" && args[1] == "-":
				return fmt.Errorf("%w: cp: \"-\" can be the source or the destination, not both", engine.ErrInvalid)
			case srcIn && args[1] == "-":
				// A tar archive to stdout, as Docker writes it.
				return e.CopyFromArchive(ctx, srcCtr, srcPath, os.Stdout, o)
			case args[0] == "-" && dstIn:
				// A tar archive from stdin, unpacked into a directory.
				return e.CopyToArchive(ctx, dstCtr, os.Stdin, dstPath)
			case args[0] == "-" || args[1] == "-":
				return fmt.Errorf("must specify at least one container source (CONTAINER:PATH)")
			case srcIn && !dstIn:
				return e.CopyFrom(ctx, srcCtr, srcPath, args[1], o)
			case dstIn && !srcIn:
				return e.CopyTo(ctx, dstCtr, args[0], dstPath)
			case srcIn && dstIn:
				return fmt.Errorf("copying between containers is not supported")
			default:
				return fmt.Errorf("must specify at least one container source (CONTAINER:PATH)")
			}
		},
	}
	f := c.Flags()
	f.BoolVarP(&o.FollowLink, "follow-link", "L", false, "always follow a symbolic link in SRC_PATH (inside the container)")
	f.BoolVarP(&archive, "archive", "a", false, "accepted for docker compatibility (owners are kept)")
	f.BoolVarP(&quiet, "quiet", "q", false, "accepted for docker compatibility")
	return c
}

func volumeCommand(g *globals) *cli.Command {
	withEngine := func(f func(ctx context.Context, e *engine.Engine) error) error {
		e, err := g.engine()
		if err != nil {
			return err
		}
		ctx, cancel := commandContext()
		defer cancel()
		return f(ctx, e)
	}
	var labels []string
	create := &cli.Command{
		Use: "create [flags] [VOLUME]", Short: "create a volume",
		Args: maxArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			l, err := keyValues("--label", labels, true)
			if err != nil {
				return err
			}
			return withEngine(func(ctx context.Context, e *engine.Engine) error {
				v, err := e.VolumeCreate(ctx, name, l, nil)
				if err == nil {
					fmt.Println(v.Name)
				}
				return err
			})
		},
	}
	stringArrayVarP(create.Flags(), &labels, "label", "l", "set a label")
	var quiet bool
	var format string
	var volumeFilters []string
	ls := &cli.Command{
		Use: "ls [flags]", Short: "list volumes", Aliases: []string{"list"},
		Args: exactArgs(0),
		RunE: func(cmd *cli.Command, args []string) error {
			return withEngine(func(ctx context.Context, e *engine.Engine) error {
				vols, err := e.VolumeListFiltered(ctx, volumeFilters)
				if err != nil {
					return err
				}
				if quiet {
					for _, v := range vols {
						fmt.Println(v.Name)
					}
					return nil
				}
				var rows []any
				for _, v := range vols {
					rows = append(rows, map[string]any{"Driver": v.Driver, "Name": v.Name, "Mountpoint": v.Mountpoint, "Scope": v.Scope})
				}
				return formatter{Format: format, Default: "table {{.Driver}}\t{{.Name}}",
					Header: map[string]string{"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE"}}.Write(os.Stdout, rows)
			})
		},
	}
	ls.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only names")
	stringArrayVarP(ls.Flags(), &volumeFilters, "filter", "f", "dangling=true|false, driver=, label=KEY[=VALUE], name=")
	ls.Flags().StringVar(&format, "format", "", "Go template, table or json")
	var inspectFormat string
	inspect := &cli.Command{
		Use: "inspect [flags] VOLUME...", Short: "show volumes as JSON",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return withEngine(func(ctx context.Context, e *engine.Engine) error {
				return inspectEach(args, inspectFormat, func(n string) (any, error) { return e.VolumeInspect(ctx, n) })
			})
		},
	}
	inspect.Flags().StringVarP(&inspectFormat, "format", "f", "", "Go template")
	var force bool
	rm := &cli.Command{
		Use: "rm [flags] VOLUME...", Short: "remove volumes", Aliases: []string{"remove"},
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return withEngine(func(ctx context.Context, e *engine.Engine) error {
				var errs []error
				for _, n := range args {
					if err := e.VolumeRemove(ctx, n, force); err != nil {
						errs = append(errs, err)
						continue
					}
					fmt.Println(n)
				}
				return reportAll(os.Stderr, errs)
			})
		},
	}
	rm.Flags().BoolVarP(&force, "force", "f", false, "no error if the volume does not exist")
	var pruneAll, pruneForce bool
	prune := &cli.Command{
		Use: "prune [flags]", Short: "remove unused volumes (anonymous ones; all with -a)",
		Args: exactArgs(0),
		RunE: func(cmd *cli.Command, args []string) error {
			return withEngine(func(ctx context.Context, e *engine.Engine) error {
				names, space, err := e.VolumePrune(ctx, pruneAll)
				if err != nil {
					return err
				}
				if len(names) > 0 {
					fmt.Println("Deleted Volumes:")
					for _, n := range names {
						fmt.Println(n)
					}
					fmt.Println()
				}
				fmt.Println("Total reclaimed space: " + humanSize(space, 3))
				return nil
			})
		},
	}
	prune.Flags().BoolVarP(&pruneAll, "all", "a", false, "remove named volumes too")
	prune.Flags().BoolVarP(&pruneForce, "force", "f", false, "do not ask for confirmation")
	return &cli.Command{Use: "volume", Short: "manage volumes", Sub: []*cli.Command{create, ls, inspect, rm, prune}}
}
