package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/image"
	"github.com/berthproject/berth/internal/image/progress"
	"github.com/berthproject/berth/internal/image/registry"
	"github.com/berthproject/berth/internal/reference"
)

// pullOptions are the flags of `pull`.
type pullOptions struct {
	quiet    bool
	platform string
	forRun   bool // the pull of run and create: no final reference line
}

// pullImage pulls name and prints what Docker prints: the layers' progress
// (bars on a terminal, a line per change otherwise), the digest, the status
// and the full reference; with quiet, only the reference.
func pullImage(ctx context.Context, s *image.Store, name string, o pullOptions, out io.Writer) error {
	ref, err := reference.Parse(name)
	if err != nil {
		return err
	}
	if o.platform != "" {
		if _, err := image.ParsePlatform(o.platform); err != nil {
			return fmt.Errorf("--platform: %w", err)
		}
	}
	if !o.quiet {
		if ref.Tag == "" && ref.Digest == "" {
			fmt.Fprintf(out, "Using default tag: %s\n", reference.DefaultTag)
		}
	}
	ref = ref.WithDefaultTag()
	before, _ := s.Resolve(ctx, ref.String())
	mode := progress.Auto
	if o.quiet {
		mode = progress.Quiet
	} else {
		fmt.Fprintf(out, "%s: Pulling from %s\n", ref.Identifier(), ref.Path)
	}
	img, err := s.Pull(ctx, ref.String(), image.PullOptions{Platform: o.platform, Progress: progress.NewRenderer(out, mode).Func()})
	if err != nil {
		return err
	}
	if !o.quiet {
		repoDigest := img.Manifest.Digest
		if img.Index != nil {
			repoDigest = img.Index.Digest
		}
		fmt.Fprintf(out, "Digest: %s\n", repoDigest)
		if before == img.ID {
			fmt.Fprintf(out, "Status: Image is up to date for %s\n", ref.Familiar())
		} else {
			fmt.Fprintf(out, "Status: Downloaded newer image for %s\n", ref.Familiar())
		}
	}
	if !o.forRun {
		fmt.Fprintln(out, ref.String())
	}
	return nil
}

// pushOptions are the flags of `push`.
type pushOptions struct {
	quiet bool
}

// pushImage pushes NAME[:TAG] and prints Docker's lines: the repository,
// each layer's progress, and "TAG: digest: sha256:... size: N".
func pushImage(ctx context.Context, s *image.Store, name string, o pushOptions, out io.Writer) error {
	ref, err := reference.Parse(name)
	if err != nil {
		return err
	}
	if ref.Digest != "" {
		return fmt.Errorf("push %s: push a tag, not a digest", name)
	}
	if ref.Tag == "" && !o.quiet {
		fmt.Fprintf(out, "Using default tag: %s\n", reference.DefaultTag)
	}
	ref = ref.WithDefaultTag()
	id, err := s.Resolve(ctx, ref.String())
	if errors.Is(err, image.ErrNotFound) {
		return fmt.Errorf("An image does not exist locally with the tag: %s", ref.FamiliarName())
	}
	if err != nil {
		return err
	}
	mode := progress.Auto
	if o.quiet {
		mode = progress.Quiet
	} else {
		fmt.Fprintf(out, "The push refers to repository [%s]\n", ref.Name())
	}
	d, err := s.Push(ctx, ref.String(), image.PushOptions{Progress: progress.NewRenderer(out, mode).Func()})
	if err != nil {
		return err
	}
	if o.quiet {
		fmt.Fprintln(out, ref.String())
		return nil
	}
	var size int64
	if img, err := s.Image(ctx, id); err == nil {
		size = img.Manifest.Size
	}
	fmt.Fprintf(out, "%s: digest: %s size: %d\n", ref.Tag, d, size)
	return nil
}

// loginOptions are the flags of `login`.
type loginOptions struct {
	server, username, password string
	passwordStdin              bool
}

// login checks credentials against a registry and stores them in Docker's
// config.json. Missing username or password are asked for on a terminal.
func login(ctx context.Context, c *registry.Client, o loginOptions, in *os.File, out, errOut io.Writer) error {
	server := registryHost(o.server)
	if o.password != "" {
		if o.passwordStdin {
			return errors.New("--password and --password-stdin are mutually exclusive")
		}
		fmt.Fprintln(errOut, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
	}
	user, pass := o.username, o.password
	if o.passwordStdin {
		if user == "" {
			return errors.New("must provide --username with --password-stdin")
		}
		b, err := io.ReadAll(in)
		if err != nil {
			return fmt.Errorf("read password from stdin: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	if user == "" || pass == "" {
		if !isTerminal(in) {
			return fmt.Errorf("login to %s: cannot ask for credentials: stdin is not a terminal (use --username and --password-stdin)", server)
		}
		r := bufio.NewReader(in)
		if user == "" {
			fmt.Fprint(out, "Username: ")
			line, err := r.ReadString('\n')
			if err != nil && line == "" {
				return fmt.Errorf("read username: %w", err)
			}
			user = strings.TrimSpace(line)
		}
		if pass == "" {
			fmt.Fprint(out, "Password: ")
			p, err := readPassword(in)
			fmt.Fprintln(out)
			if err != nil {
				return fmt.Errorf("read password: %w", err)
			}
			pass = p
		}
	}
	if pass == "" {
		return fmt.Errorf("login to %s: password is empty", server)
	}
	if err := c.Login(ctx, server, user, pass); err != nil {
		return err
	}
	fmt.Fprintln(out, "Login Succeeded")
	return nil
}

// logout forgets the credentials of a registry.
func logout(c *registry.Client, server string, out io.Writer) error {
	host := registryHost(server)
	ac, err := c.Keychain().Lookup(host)
	if err != nil {
		return err
	}
	if ac.Username == "" && ac.Password == "" && ac.Auth == "" && ac.IdentityToken == "" {
		fmt.Fprintf(out, "Not logged in to %s\n", host)
		return nil
	}
	fmt.Fprintf(out, "Removing login credentials for %s\n", host)
	return c.Logout(host)
}

// registryHost reduces a server as users type it ("https://host:5000/v1/",
// "host:5000", "" for Docker Hub) to its host.
func registryHost(server string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
	s, _, _ = strings.Cut(s, "/")
	switch s {
	case "", "index.docker.io", "registry-1.docker.io":
		return reference.DefaultDomain
	}
	return s
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// readPassword reads a line from the terminal f with echo off.
func readPassword(f *os.File) (string, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", err
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	var b []byte
	var c [1]byte
	for {
		n, err := f.Read(c[:])
		if n == 1 && c[0] != '\n' && c[0] != '\r' {
			b = append(b, c[0])
			continue
		}
		if n == 1 || err == io.EOF {
			return string(b), nil
		}
		if err != nil {
			return "", err
		}
	}
}
