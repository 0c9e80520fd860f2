package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/berthproject/berth/internal/cli"
	"github.com/berthproject/berth/internal/image"
)

// imageCommands are the image verbs: pull, push, login, logout, images,
// tag, rmi, history, import, save, load, the `image` group (ls, inspect, rm,
// prune and the same verbs again) and `system df`. Each command fills an
// options struct from its flags; a function of images_*.go does the work.
func imageCommands(g *globals) []*cli.Command {
	return []*cli.Command{
		pullCommand(g), pushCommand(g), loginCommand(g), logoutCommand(g),
		imagesCommand(g, "images"), tagCommand(g), rmiCommand(g, "rmi"), historyCommand(g),
		importCommand(g), saveCommand(g), loadCommand(g),
		{
			Use: "image", Short: "manage images",
			Sub: []*cli.Command{
				imagesCommand(g, "ls"), inspectImageCommand(g), rmiCommand(g, "rm"), pruneCommand(g),
				pullCommand(g), pushCommand(g), tagCommand(g), historyCommand(g),
				importCommand(g), saveCommand(g), loadCommand(g),
			},
		},
		{
			Use: "system", Short: "manage berth",
			Sub: []*cli.Command{dfCommand(g)},
		},
	}
}

func pullCommand(g *globals) *cli.Command {
	var o pullOptions
	c := &cli.Command{
		Use: "pull [flags] NAME[:TAG|@DIGEST]", Short: "download an image from a registry",
		Args: exactArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return withImages(g, func(ctx context.Context, s *image.Store) error {
				return pullImage(ctx, s, args[0], o, os.Stdout)
			})
		},
	}
	c.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "print only the image reference")
	c.Flags().StringVar(&o.platform, "platform", "", "os/arch[/variant] to pick from a multi-platform image")
	return c
}

func pushCommand(g *globals) *cli.Command {
	var o pushOptions
	c := &cli.Command{
		Use: "push [flags] NAME[:TAG]", Short: "upload an image to a registry",
		Args: exactArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return withImages(g, func(ctx context.Context, s *image.Store) error {
				return pushImage(ctx, s, args[0], o, os.Stdout)
			})
		},
	}
	c.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "print only the image reference")
	return c
}

func loginCommand(g *globals) *cli.Command {
	var o loginOptions
	c := &cli.Command{
		Use: "login [flags] [SERVER]", Short: "store credentials for a registry (Docker's config.json)",
		Args: maxArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			if len(args) == 1 {
				o.server = args[0]
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			ctx, stop := commandContext()
			defer stop()
			return login(ctx, e.Registry, o, os.Stdin, os.Stdout, os.Stderr)
		},
	}
	c.Flags().StringVarP(&o.username, "username", "u", "", "user name")
	c.Flags().StringVarP(&o.password, "password", "p", "", "password (prefer --password-stdin)")
	c.Flags().BoolVar(&o.passwordStdin, "password-stdin", false, "read the password from stdin")
	return c
}

func logoutCommand(g *globals) *cli.Command {
	return &cli.Command{
		Use: "logout [SERVER]", Short: "remove the stored credentials of a registry",
		Args: maxArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			e, err := g.engine()
			if err != nil {
				return err
			}
			return logout(e.Registry, server, os.Stdout)
		},
	}
}

func imagesCommand(g *globals, name string) *cli.Command {
	var o listOptions
	c := &cli.Command{
		Use: name + " [flags] [REPOSITORY[:TAG]]", Short: "list images",
		Args: maxArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			if len(args) == 1 {
				o.match = args[0]
			}
			return withImages(g, func(ctx context.Context, s *image.Store) error {
				return listImages(ctx, s, o, os.Stdout)
			})
		},
	}
	if name == "ls" {
		c.Aliases = []string{"list"}
	}
	f := c.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "show all images (default hides intermediate images)")
	f.BoolVar(&o.digests, "digests", false, "show digests")
	stringArrayVarP(f, &o.filters, "filter", "f", "filter: dangling=true|false, reference=PATTERN, label=KEY[=VALUE], before=IMAGE, since=IMAGE")
	f.StringVar(&o.format, "format", "", "'table', 'table TEMPLATE', 'json' or a Go template")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "do not truncate output")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "only show image IDs")
	return c
}

func tagCommand(g *globals) *cli.Command {
	return &cli.Command{
		Use: "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", Short: "give an image another name",
		Args: exactArgs(2),
		RunE: func(cmd *cli.Command, args []string) error {
			return withImages(g, func(ctx context.Context, s *image.Store) error {
				if _, err := s.Resolve(ctx, args[0]); err != nil {
					return noSuchImage(args[0], err)
				}
				return s.Tag(ctx, args[0], args[1])
			})
		},
	}
}

func rmiCommand(g *globals, name string) *cli.Command {
	var o removeOptions
	c := &cli.Command{
		Use: name + " [flags] IMAGE...", Short: "remove images",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return withImages(g, func(ctx context.Context, s *image.Store) error {
				return removeImages(ctx, s, args, o, os.Stdout, os.Stderr)
			})
		},
	}
	if name == "rm" {
		c.Aliases = []string{"remove", "rmi"}
	}
	c.Flags().BoolVarP(&o.force, "force", "f", false, "remove images used by containers or named by several tags")
	c.Flags().BoolVar(&o.noPrune, "no-prune", false, "keep the layers and blobs nothing else uses")
	return c
}

func historyCommand(g *globals) *cli.Command {
	var o historyOptions
	c := &cli.Command{
		Use: "history [flags] IMAGE", Short: "show the history of an image",
		Args: exactArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return withImages(g, func(ctx context.Context, s *image.Store) error {
				return showHistory(ctx, s, args[0], o, os.Stdout)
			})
		},
	}
	f := c.Flags()
	f.StringVar(&o.format, "format", "", "'table', 'table TEMPLATE', 'json' or a Go template")
	f.BoolVarP(&o.human, "human", "H", true, "print sizes and dates in human readable form")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "do not truncate output")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "only show image IDs")
	return c
}

func inspectImageCommand(g *globals) *cli.Command {
	var o inspectOptions
	c := &cli.Command{
		Use: "inspect [flags] IMAGE...", Short: "show images in detail (Docker's JSON)",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return withImages(g, func(ctx context.Context, s *image.Store) error {
				return inspectImages(ctx, s, args, o, os.Stdout, os.Stderr)
			})
		},
	}
	c.Flags().StringVarP(&o.format, "format", "f", "", "Go template over each image's JSON")
	return c
}

func pruneCommand(g *globals) *cli.Command {
	var o pruneOptions
	c := &cli.Command{
		Use: "prune [flags]", Short: "remove unused images",
		Args: exactArgs(0),
		RunE: func(cmd *cli.Command, args []string) error {
			return withImages(g, func(ctx context.Context, s *image.Store) error {
				return pruneImages(ctx, s, o, os.Stdin, os.Stdout)
			})
		},
	}
	c.Flags().BoolVarP(&o.all, "all", "a", false, "remove every image no container uses, not only dangling ones")
	c.Flags().BoolVarP(&o.force, "force", "f", false, "do not ask for confirmation")
	return c
}

func dfCommand(g *globals) *cli.Command {
	var o dfOptions
	c := &cli.Command{
		Use: "df [flags]", Short: "show disk usage",
		Args: exactArgs(0),
		RunE: func(cmd *cli.Command, args []string) error {
			return withImages(g, func(ctx context.Context, s *image.Store) error {
				return diskUsage(ctx, s, o, os.Stdout)
			})
		},
	}
	c.Flags().BoolVarP(&o.verbose, "verbose", "v", false, "show usage per image")
	c.Flags().StringVar(&o.format, "format", "", "'table', 'table TEMPLATE', 'json' or a Go template")
	return c
}

func importCommand(g *globals) *cli.Command {
	var o importOptions
	c := &cli.Command{
		Use: "import [flags] FILE|URL|- [REPOSITORY[:TAG]]", Short: "make an image from a root filesystem tarball",
		Args: rangeArgs(1, 2),
		RunE: func(cmd *cli.Command, args []string) error {
			o.source = args[0]
			if len(args) == 2 {
				o.ref = args[1]
			}
			return withImages(g, func(ctx context.Context, s *image.Store) error {
				return importImage(ctx, s, o, os.Stdin, os.Stdout)
			})
		},
	}
	f := c.Flags()
	stringArrayVarP(f, &o.changes, "change", "c", "Dockerfile instruction to apply (CMD, ENV, LABEL, ...)")
	f.StringVarP(&o.message, "message", "m", "", "commit message of the imported image")
	f.StringVar(&o.platform, "platform", "", "os/arch[/variant] of the image")
	return c
}

func saveCommand(g *globals) *cli.Command {
	var o saveOptions
	c := &cli.Command{
		Use: "save [flags] IMAGE...", Short: "write images to a tar archive (docker-archive or OCI layout)",
		Args: minArgs(1),
		RunE: func(cmd *cli.Command, args []string) error {
			return withImages(g, func(ctx context.Context, s *image.Store) error {
				return saveImages(ctx, s, args, o, os.Stdout)
			})
		},
	}
	c.Flags().StringVarP(&o.output, "output", "o", "", "write to a file instead of stdout")
	c.Flags().StringVar(&o.format, "format", image.FormatDocker, "archive format: docker (readable by docker load and OCI tools) or oci")
	return c
}

func loadCommand(g *globals) *cli.Command {
	var o loadOptions
	c := &cli.Command{
		Use: "load [flags]", Short: "load images from a tar archive (docker-archive or OCI layout)",
		Args: exactArgs(0),
		RunE: func(cmd *cli.Command, args []string) error {
			return withImages(g, func(ctx context.Context, s *image.Store) error {
				return loadImages(ctx, s, o, os.Stdin, os.Stdout)
			})
		},
	}
	c.Flags().StringVarP(&o.input, "input", "i", "", "read from a file instead of stdin")
	c.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "do not draw progress")
	c.Flags().StringVar(&o.platform, "platform", "", "os/arch[/variant] to pick from multi-platform images")
	return c
}

// withImages opens the store and runs f with a context that an interrupt
// (Ctrl-C) or SIGTERM cancels, so an interrupted pull cleans up after itself.
func withImages(g *globals, f func(ctx context.Context, s *image.Store) error) error {
	e, err := g.engine()
	if err != nil {
		return err
	}
	ctx, stop := commandContext()
	defer stop()
	return f(ctx, e.Images)
}

func commandContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// noSuchImageError is Docker's "No such image: NAME" for a name the store
// does not know; it keeps the store's error as its cause.
type noSuchImageError struct {
	name string
	err  error
}

func (e noSuchImageError) Error() string { return "No such image: " + e.name }
func (e noSuchImageError) Unwrap() error { return e.err }

// noSuchImage words a not-found error about the image the user named as
// Docker does; other errors pass unchanged.
func noSuchImage(name string, err error) error {
	if errors.Is(err, image.ErrNotFound) {
		return noSuchImageError{name: name, err: err}
	}
	return err
}

// reportAll returns the one error of a multi-image command, or prints each
// of several and returns a bare exit status 1.
func reportAll(errOut io.Writer, errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	for _, err := range errs {
		fmt.Fprintln(errOut, "Error:", err)
	}
	return statusError{code: 1}
}

func exactArgs(n int) func(*cli.Command, []string) error {
	return func(c *cli.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		if n == 0 {
			return fmt.Errorf("%q accepts no arguments (see '%s --help')", c.CommandPath(), c.CommandPath())
		}
		return fmt.Errorf("%q requires exactly %d %s (see '%s --help')", c.CommandPath(), n, plural(n, "argument"), c.CommandPath())
	}
}

func minArgs(n int) func(*cli.Command, []string) error {
	return func(c *cli.Command, args []string) error {
		if len(args) >= n {
			return nil
		}
		return fmt.Errorf("%q requires at least %d %s (see '%s --help')", c.CommandPath(), n, plural(n, "argument"), c.CommandPath())
	}
}

func maxArgs(n int) func(*cli.Command, []string) error {
	return func(c *cli.Command, args []string) error {
		if len(args) <= n {
			return nil
		}
		return fmt.Errorf("%q requires at most %d %s (see '%s --help')", c.CommandPath(), n, plural(n, "argument"), c.CommandPath())
	}
}

func rangeArgs(lo, hi int) func(*cli.Command, []string) error {
	return func(c *cli.Command, args []string) error {
		if len(args) >= lo && len(args) <= hi {
			return nil
		}
		return fmt.Errorf("%q requires at least %d and at most %d arguments (see '%s --help')", c.CommandPath(), lo, hi, c.CommandPath())
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
