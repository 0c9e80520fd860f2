package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthproject/berth/internal/image"
	"github.com/berthproject/berth/internal/image/progress"
)

// importOptions are the flags and arguments of `import`.
type importOptions struct {
	source   string // FILE, URL or "-"
	ref      string // REPOSITORY[:TAG] or ""
	changes  []string
	message  string
	platform string
}

// importImage makes an image from a root filesystem tarball and prints its ID.
func importImage(ctx context.Context, s *image.Store, o importOptions, stdin io.Reader, out io.Writer) error {
	var r io.Reader
	switch {
	case o.source == "-":
		r = stdin
	case strings.HasPrefix(o.source, "http://") || strings.HasPrefix(o.source, "https://"):
		return fmt.Errorf("import %s: importing from a URL is not supported; download the file and import it", o.source)
	default:
		f, err := os.Open(o.source)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		r = f
	}
	img, err := s.Import(ctx, r, image.ImportOptions{Ref: o.ref, Changes: o.changes, Message: o.message, Platform: o.platform, Source: o.source})
	if err != nil {
		return fmt.Errorf("%s: %w", o.source, err)
	}
	fmt.Fprintln(out, img.ID)
	return nil
}

// saveOptions are the flags of `save`.
type saveOptions struct {
	output string // file; "" = stdout
	format string // image.FormatDocker or image.FormatOCI
}

// saveImages writes the images as one archive to a file or stdout. A file is
// written under a temporary name and renamed, so a failed save leaves no
// partial archive behind.
func saveImages(ctx context.Context, s *image.Store, names []string, o saveOptions, stdout *os.File) error {
	for _, n := range names {
		if _, err := s.Resolve(ctx, n); err != nil {
			return noSuchImage(n, err)
		}
	}
	opts := image.SaveOptions{Format: o.format}
	if o.output == "" || o.output == "-" {
		if isTerminal(stdout) {
			return errors.New("cowardly refusing to save to a terminal. Use the -o flag or redirect")
		}
		return s.Save(ctx, stdout, names, opts)
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.output), "."+filepath.Base(o.output)+"-*")
	if err != nil {
		return fmt.Errorf("save to %s: %w", o.output, err)
	}
	defer os.Remove(tmp.Name())
	if err := s.Save(ctx, tmp, names, opts); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("save to %s: %w", o.output, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save to %s: %w", o.output, err)
	}
	if err := os.Rename(tmp.Name(), o.output); err != nil {
		return fmt.Errorf("save to %s: %w", o.output, err)
	}
	return nil
}

// loadOptions are the flags of `load`.
type loadOptions struct {
	input    string // file; "" = stdin
	quiet    bool
	platform string
}

// loadImages stores the images of an archive and prints "Loaded image:"
// lines. Layer progress is drawn only on a terminal, as Docker does.
func loadImages(ctx context.Context, s *image.Store, o loadOptions, stdin *os.File, out io.Writer) error {
	var r io.Reader = stdin
	if o.input != "" && o.input != "-" {
		f, err := os.Open(o.input)
		if err != nil {
			return fmt.Errorf("load: %w", err)
		}
		defer f.Close()
		r = f
	} else if isTerminal(stdin) {
		return errors.New("requested load from stdin, but stdin is empty (use -i FILE or redirect)")
	}
	mode := progress.Quiet
	if !o.quiet && progress.IsTerminal(out) {
		mode = progress.Terminal
	}
	loaded, err := s.Load(ctx, r, image.LoadOptions{Progress: progress.NewRenderer(out, mode).Func(), Platform: o.platform})
	if err != nil {
		if o.input != "" && o.input != "-" {
			return fmt.Errorf("%s: %w", o.input, err)
		}
		return err
	}
	for _, l := range loaded {
		if len(l.Refs) == 0 {
			fmt.Fprintln(out, "Loaded image ID:", l.ID)
		}
		for _, r := range l.Refs {
			fmt.Fprintln(out, "Loaded image:", r)
		}
	}
	return nil
}
