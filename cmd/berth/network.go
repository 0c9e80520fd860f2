package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	mnetwork "github.com/moby/moby/api/types/network"

	"github.com/berthproject/berth/internal/cli"
	"github.com/berthproject/berth/internal/engine"
	"github.com/berthproject/berth/internal/network"
)

// networkCommands is `network` and its verbs, with Docker's flags.
func networkCommands(g *globals) []*cli.Command {
	return []*cli.Command{{Use: "network", Short: "manage networks", Sub: []*cli.Command{
		networkCreateCommand(g), networkLsCommand(g), networkInspectCommand(g), networkRmCommand(g),
		networkPruneCommand(g), networkConnectCommand(g), networkDisconnectCommand(g),
	}}}
}

// withEngine runs f with the engine and a command context.
func withEngine(g *globals, f func(ctx context.Context, e *engine.Engine) error) error {
	e, err := g.engine()
	if err != nil {
		return err
	}
	ctx, cancel := commandContext()
	defer cancel()
	return f(ctx, e)
}

func networkCreateCommand(g *globals) *cli.Command {
	var driver, ipamDriver, scope string
	var subnets, gateways, ranges, labels, opts, aux []string
	var internal, ipv6, attachable, ipv4 bool
	c := &cli.Command{
		Use: "create [flags] NETWORK", Short: "create a network",
		Args: exactArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			o := network.CreateOptions{Name: args[0], Internal: internal, IPv6: ipv6}
			switch {
			case driver != "bridge":
				return fmt.Errorf("--driver %s: only the bridge driver is supported", driver)
			case ipamDriver != "" && ipamDriver != "default":
				return fmt.Errorf("--ipam-driver %s: only the default IPAM driver is supported", ipamDriver)
			case scope != "" && scope != "local":
				return fmt.Errorf("--scope %s: only local networks are supported", scope)
			case len(aux) > 0:
				return fmt.Errorf("--aux-address: not supported")
			case !ipv4:
				return fmt.Errorf("--ipv4=false: bridge networks have IPv4")
			}
			_ = attachable // every berth network is attachable
			for _, s := range subnets {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return fmt.Errorf("--subnet: invalid subnet %s: want an address/prefix length (CIDR)", s)
				}
				o.Subnets = append(o.Subnets, p)
			}
			for _, s := range gateways {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return fmt.Errorf("--gateway: invalid address %s", s)
				}
				o.Gateways = append(o.Gateways, a)
			}
			for _, s := range ranges {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return fmt.Errorf("--ip-range: invalid range %s: want an address/prefix length (CIDR)", s)
				}
				o.IPRanges = append(o.IPRanges, p)
			}
			var err error
			if o.Labels, err = keyValues("--label", labels, true); err != nil {
				return err
			}
			if o.Options, err = keyValues("--opt", opts, false); err != nil {
				return err
			}
			return withEngine(g, func(ctx context.Context, e *engine.Engine) error {
				nw, err := e.NetworkCreate(ctx, o)
				if err != nil {
					return err
				}
				fmt.Println(nw.ID)
				return nil
			})
		},
	}
	fs := c.Flags()
	fs.StringVarP(&driver, "driver", "d", "bridge", "driver of the network (bridge)")
	stringArrayVarP(fs, &subnets, "subnet", "", "subnet in CIDR form (one per address family)")
	stringArrayVarP(fs, &gateways, "gateway", "", "gateway of a subnet")
	stringArrayVarP(fs, &ranges, "ip-range", "", "allocate container addresses from a sub-range")
	fs.BoolVar(&internal, "internal", false, "no access from or to outside the network")
	fs.BoolVar(&ipv6, "ipv6", false, "enable IPv6")
	fs.BoolVar(&ipv4, "ipv4", true, "enable IPv4")
	fs.BoolVar(&attachable, "attachable", false, "accepted for compatibility (berth networks always are)")
	stringArrayVarP(fs, &labels, "label", "l", "set a label (KEY=value)")
	stringArrayVarP(fs, &opts, "opt", "o", "driver option (com.docker.network.driver.mtu, ...)")
	fs.StringVar(&ipamDriver, "ipam-driver", "default", "IPAM driver (default)")
	fs.StringVar(&scope, "scope", "", "scope of the network (local)")
	stringArrayVarP(fs, &aux, "aux-address", "", "not supported")
	return c
}

// netRow is one line of `network ls`, with the fields Docker's --format knows.
type netRow struct {
	ID, Name, Driver, Scope, IPv6, IPv4, Internal, Labels, CreatedAt string
	n                                                                mnetwork.Inspect
}

// Label returns the value of one label (Docker's {{.Label "k"}}).
func (r netRow) Label(k string) string { return r.n.Labels[k] }

func networkLsCommand(g *globals) *cli.Command {
	var quiet, noTrunc bool
	var format string
	var filters []string
	c := &cli.Command{
		Use: "ls [flags]", Short: "list networks", Aliases: []string{"list"},
		Args: exactArgs(0),
		RunE: func(cmd *cli.Command, args []string) error {
			match, err := networkFilter(filters)
			if err != nil {
				return err
			}
			return withEngine(g, func(ctx context.Context, e *engine.Engine) error {
				nws, err := e.NetworkList(ctx)
				if err != nil {
					return err
				}
				var rows []any
				for _, n := range nws {
					if !match(n) {
						continue
					}
					id := n.ID
					if !noTrunc {
						id = id[:12]
					}
					if quiet {
						fmt.Println(id)
						continue
					}
					var labels []string
					for k, v := range n.Labels {
						labels = append(labels, k+"="+v)
					}
					sort.Strings(labels)
					rows = append(rows, netRow{
						ID: id, Name: n.Name, Driver: n.Driver, Scope: n.Scope, IPv6: strconv.FormatBool(n.EnableIPv6),
						IPv4: strconv.FormatBool(n.EnableIPv4), Internal: strconv.FormatBool(n.Internal),
						Labels: strings.Join(labels, ","), CreatedAt: n.Created.Local().Format("2006-01-02 15:04:05.999999999 -0700 MST"), n: n,
					})
				}
				if quiet {
					return nil
				}
				return formatter{Format: format, Default: "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
					Header: map[string]string{"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
						"IPv6": "IPV6", "IPv4": "IPV4", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}}.Write(os.Stdout, rows)
			})
		},
	}
	fs := c.Flags()
	fs.BoolVarP(&quiet, "quiet", "q", false, "print only network IDs")
	fs.BoolVar(&noTrunc, "no-trunc", false, "do not shorten IDs")
	fs.StringVar(&format, "format", "", "Go template, table or json")
	stringArrayVarP(fs, &filters, "filter", "f", "filter (driver, id, label, name, scope, type=custom|builtin, dangling)")
	return c
}

// networkFilter reads `network ls --filter` as Docker does: values of one
// key are alternatives, different keys must all match.
func networkFilter(filters []string) (func(mnetwork.Inspect) bool, error) {
	byKey := map[string][]string{}
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("--filter: %q is not KEY=VALUE", f)
		}
		switch k {
		case "driver", "id", "label", "name", "scope", "type", "dangling":
		default:
			return nil, fmt.Errorf("--filter: invalid filter %q", k)
		}
		if k == "type" && v != "custom" && v != "builtin" {
			return nil, fmt.Errorf("--filter: invalid filter 'type=%s'", v)
		}
		if k == "dangling" && v != "true" && v != "false" && v != "1" && v != "0" {
			return nil, fmt.Errorf("--filter: invalid filter 'dangling=%s'", v)
		}
		byKey[k] = append(byKey[k], v)
	}
	return func(n mnetwork.Inspect) bool {
		builtin := n.Name == network.NameBridge || n.Name == network.NameHost || n.Name == network.NameNone
		for k, vs := range byKey {
			ok := false
			for _, v := range vs {
				switch k {
				case "driver":
					ok = ok || n.Driver == v
				case "id":
					ok = ok || strings.HasPrefix(n.ID, v)
				case "name":
					// Docker matches names as a regular expression.
					if re, err := regexp.Compile(v); err == nil {
						ok = ok || re.MatchString(n.Name)
					}
				case "scope":
					ok = ok || n.Scope == v
				case "type":
					ok = ok || (v == "builtin") == builtin
				case "dangling":
					want := v == "true" || v == "1"
					ok = ok || (!builtin && len(n.Containers) == 0) == want
				case "label":
					lk, lv, hasValue := strings.Cut(v, "=")
					have, exists := n.Labels[lk]
					ok = ok || (exists && (!hasValue || have == lv))
				}
			}
			if !ok {
				return false
			}
		}
		return true
	}, nil
}

func networkInspectCommand(g *globals) *cli.Command {
	var format string
	var verbose bool
	c := &cli.Command{
		Use: "inspect [flags] NETWORK...", Short: "show networks as JSON",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return withEngine(g, func(ctx context.Context, e *engine.Engine) error {
				return inspectEach(args, format, func(ref string) (any, error) { return e.NetworkInspect(ctx, ref) })
			})
		},
	}
	c.Flags().StringVarP(&format, "format", "f", "", "Go template")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "accepted for compatibility")
	return c
}

func networkRmCommand(g *globals) *cli.Command {
	var force bool
	c := &cli.Command{
		Use: "rm [flags] NETWORK...", Short: "remove networks", Aliases: []string{"remove"},
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return withEngine(g, func(ctx context.Context, e *engine.Engine) error {
				var errs []error
				for _, ref := range args {
					if err := e.NetworkRemove(ctx, ref); err != nil {
						if force && isNotFound(err) {
							continue
						}
						errs = append(errs, err)
						continue
					}
					fmt.Println(ref)
				}
				return reportAll(os.Stderr, errs)
			})
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "no error if the network does not exist")
	return c
}

func isNotFound(err error) bool {
	return err != nil && strings.Contains(err.Error(), "not found")
}

func networkPruneCommand(g *globals) *cli.Command {
	var force bool
	var filters []string
	c := &cli.Command{
		Use: "prune [flags]", Short: "remove the networks no container uses",
		Args: exactArgs(0),
		RunE: func(cmd *cli.Command, args []string) error {
			match, err := pruneFilter(filters)
			if err != nil {
				return err
			}
			return withEngine(g, func(ctx context.Context, e *engine.Engine) error {
				names, err := e.NetworkPrune(ctx, match)
				if len(names) > 0 {
					fmt.Println("Deleted Networks:")
					for _, n := range names {
						fmt.Println(n)
					}
					fmt.Println()
				}
				return err
			})
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "do not ask for confirmation")
	stringArrayVarP(c.Flags(), &filters, "filter", "", "filter (until=DURATION|TIME, label=KEY[=VALUE], label!=KEY[=VALUE])")
	return c
}

// pruneFilter reads `network prune --filter`: until, label and label!.
func pruneFilter(filters []string) (func(mnetwork.Inspect) bool, error) {
	var tests []func(mnetwork.Inspect) bool
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("--filter: %q is not KEY=VALUE", f)
		}
		switch k {
		case "until":
			t, err := parseTimeArg("--filter until", v)
			if err != nil {
				return nil, err
			}
			tests = append(tests, func(n mnetwork.Inspect) bool { return n.Created.Before(t) })
		case "label", "label!":
			lk, lv, hasValue := strings.Cut(v, "=")
			neg := k == "label!"
			tests = append(tests, func(n mnetwork.Inspect) bool {
				have, exists := n.Labels[lk]
				return (exists && (!hasValue || have == lv)) != neg
			})
		default:
			return nil, fmt.Errorf("--filter: invalid filter %q", k)
		}
	}
	return func(n mnetwork.Inspect) bool {
		for _, t := range tests {
			if !t(n) {
				return false
			}
		}
		return true
	}, nil
}

func networkConnectCommand(g *globals) *cli.Command {
	var aliases, links, driverOpts, linkLocal []string
	var ip, ip6 string
	c := &cli.Command{
		Use: "connect [flags] NETWORK CONTAINER", Short: "connect a container to a network",
		Args: exactArgs(2),
		RunE: func(cmd *cli.Command, args []string) error {
			if len(linkLocal) > 0 || len(driverOpts) > 0 {
				return fmt.Errorf("--link-local-ip and --driver-opt are not supported")
			}
			s := &mnetwork.EndpointSettings{Aliases: aliases, Links: links}
			for _, a := range []struct{ flag, v string }{{"--ip", ip}, {"--ip6", ip6}} {
				if a.v == "" {
					continue
				}
				addr, err := netip.ParseAddr(a.v)
				if err != nil || (a.flag == "--ip") != addr.Is4() {
					return fmt.Errorf("%s: invalid address %s", a.flag, a.v)
				}
				if s.IPAMConfig == nil {
					s.IPAMConfig = &mnetwork.EndpointIPAMConfig{}
				}
				if a.flag == "--ip" {
					s.IPAMConfig.IPv4Address = addr
				} else {
					s.IPAMConfig.IPv6Address = addr
				}
			}
			return withEngine(g, func(ctx context.Context, e *engine.Engine) error {
				return e.NetworkConnect(ctx, args[0], args[1], s)
			})
		},
	}
	fs := c.Flags()
	stringArrayVarP(fs, &aliases, "alias", "", "network-scoped alias of the container")
	fs.StringVar(&ip, "ip", "", "IPv4 address")
	fs.StringVar(&ip6, "ip6", "", "IPv6 address")
	stringArrayVarP(fs, &links, "link", "", "legacy link (NAME[:ALIAS]): an alias for this container only (user-defined networks)")
	stringArrayVarP(fs, &linkLocal, "link-local-ip", "", "not supported")
	stringArrayVarP(fs, &driverOpts, "driver-opt", "", "not supported")
	return c
}

func networkDisconnectCommand(g *globals) *cli.Command {
	var force bool
	c := &cli.Command{
		Use: "disconnect [flags] NETWORK CONTAINER", Short: "disconnect a container from a network",
		Args: exactArgs(2),
		RunE: func(cmd *cli.Command, args []string) error {
			return withEngine(g, func(ctx context.Context, e *engine.Engine) error {
				return e.NetworkDisconnect(ctx, args[0], args[1], force)
			})
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "force the container to disconnect")
	return c
}

// portsColumn is ps's PORTS: the published ports of a running container
// (and its exposed ones), grouped into ranges as Docker's CLI prints them.
func portsColumn(ctx context.Context, e *engine.Engine, c *engine.Container) string {
	pm, err := e.PublishedPorts(ctx, c)
	if err != nil {
		return ""
	}
	if c.State.Status == engine.StatusRunning || c.State.Status == engine.StatusPaused {
		for p := range c.Config.ExposedPorts {
			if _, ok := pm[p]; !ok {
				pm[p] = nil
			}
		}
	}
	return displayPorts(pm)
}

// displayPorts renders ports like Docker's CLI (DisplayablePorts): ports
// mapped to the same port number are grouped into ranges per address and
// protocol; other mappings follow one by one.
func displayPorts(pm mnetwork.PortMap) string {
	type entry struct {
		ip         string
		priv, pub  int
		proto      string
		hasBinding bool
	}
	var es []entry
	for p, bs := range pm {
		if len(bs) == 0 {
			es = append(es, entry{priv: int(p.Num()), proto: string(p.Proto())})
		}
		for _, b := range bs {
			pub, _ := strconv.Atoi(b.HostPort)
			ip := "0.0.0.0"
			if b.HostIP.IsValid() {
				ip = b.HostIP.String()
			}
			es = append(es, entry{ip: ip, priv: int(p.Num()), pub: pub, proto: string(p.Proto()), hasBinding: true})
		}
	}
	sort.Slice(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.priv != b.priv {
			return a.priv < b.priv
		}
		if a.ip != b.ip {
			return a.ip < b.ip
		}
		if a.pub != b.pub {
			return a.pub < b.pub
		}
		return a.proto < b.proto
	})
	type group struct{ first, last int }
	groups := map[string]*group{}
	var keys, result, mappings []string
	form := func(key string, g *group) string {
		ip, proto, hasIP := strings.Cut(key, "|")
		if !hasIP {
			proto, ip = ip, ""
		}
		s := strconv.Itoa(g.first)
		if g.last != g.first {
			s += "-" + strconv.Itoa(g.last)
		}
		if ip != "" {
			s = net.JoinHostPort(ip, s) + "->" + s
		}
		return s + "/" + proto
	}
	for _, p := range es {
		key := p.proto
		if p.hasBinding {
			if p.pub != p.priv {
				mappings = append(mappings, fmt.Sprintf("%s->%d/%s", net.JoinHostPort(p.ip, strconv.Itoa(p.pub)), p.priv, p.proto))
				continue
			}
			key = p.ip + "|" + p.proto
		}
		g := groups[key]
		switch {
		case g == nil:
			groups[key] = &group{p.priv, p.priv}
			keys = append(keys, key)
		case p.priv == g.last+1:
			g.last = p.priv
		default:
			result = append(result, form(key, g))
			groups[key] = &group{p.priv, p.priv}
		}
	}
	for _, k := range keys {
		result = append(result, form(k, groups[k]))
	}
	return strings.Join(append(result, mappings...), ", ")
}
