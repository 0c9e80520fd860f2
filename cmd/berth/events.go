package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/moby/moby/api/types/events"

	"github.com/berthproject/berth/internal/cli"
	"github.com/berthproject/berth/internal/engine"
)

func eventsCommand(g *globals) *cli.Command {
	var filters []string
	var since, until, format string
	c := &cli.Command{
		Use: "events [flags]", Short: "show what happens to containers, images, volumes and networks",
		Args: exactArgs(0),
		RunE: func(cmd *cli.Command, args []string) error {
			o := engine.EventsOptions{Filters: map[string][]string{}}
			var err error
			if o.Since, err = parseTimeArg("--since", since); err != nil {
				return err
			}
			if o.Until, err = parseTimeArg("--until", until); err != nil {
				return err
			}
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok || k == "" {
					return fmt.Errorf("--filter: %q is not KEY=VALUE", f)
				}
				o.Filters[k] = append(o.Filters[k], v)
			}
			var tmpl *template.Template
			switch format {
			case "":
			case "json":
				format = "{{json .}}"
				fallthrough
			default:
				if tmpl, err = template.New("").Funcs(templateFuncs).Parse(format); err != nil {
					return fmt.Errorf("--format %q: template parsing error: %w", format, err)
				}
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			w := bufio.NewWriter(os.Stdout)
			defer w.Flush()
			return e.Events(ctx, o, func(m events.Message) error {
				if tmpl != nil {
					if err := tmpl.Execute(w, m); err != nil {
						return fmt.Errorf("--format: %w", err)
					}
					w.WriteByte('\n')
				} else {
					w.WriteString(formatEvent(m))
				}
				return w.Flush()
			})
		},
	}
	f := c.Flags()
	stringArrayVarP(f, &filters, "filter", "f", "filter (container, event, image, label, type, volume, network)")
	f.StringVar(&since, "since", "", "show events since this time (RFC 3339, Unix time or duration ago)")
	f.StringVar(&until, "until", "", "stop at this time")
	f.StringVar(&format, "format", "", "Go template, or json")
	return c
}

// formatEvent is Docker's default line: time, type, action, actor id and
// the sorted attributes.
func formatEvent(m events.Message) string {
	var b strings.Builder
	b.WriteString(time.Unix(0, m.TimeNano).Format("2006-01-02T15:04:05.000000000Z07:00"))
	fmt.Fprintf(&b, " %s %s %s", m.Type, m.Action, m.Actor.ID)
	if len(m.Actor.Attributes) > 0 {
		keys := make([]string, 0, len(m.Actor.Attributes))
		for k := range m.Actor.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(" (")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k + "=" + m.Actor.Attributes[k])
		}
		b.WriteString(")")
	}
	b.WriteByte('\n')
	return b.String()
}
