// Package registry speaks the OCI distribution protocol for berth's image
// store: it resolves manifests, streams (and resumes) blobs, pushes images,
// and keeps credentials the way Docker does in config.json.
//
// The wire protocol, authentication challenges (basic and bearer tokens) and
// pushing are go-containerregistry's (transport, remote); this package adds
// Docker's conventions: plain http for registries on loopback addresses and
// for those the user marks insecure, credentials from
// $DOCKER_CONFIG/config.json or ~/.docker/config.json (and credential helpers),
// and errors that name the image and the blob at fault.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/berthproject/berth/internal/reference"
)

// Media types of manifests a pull understands.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeOCIManifest        = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex           = "application/vnd.oci.image.index.v1+json"
	mediaTypeSchema1            = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeSchema1Signed      = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// maxManifestSize bounds what is read of a manifest (the distribution spec's 4 MiB).
const maxManifestSize = 4 << 20

// ErrUnauthorized is wrapped when the registry refuses the credentials.
var ErrUnauthorized = errors.New("unauthorized")

// Options configure a Client.
type Options struct {
	// Insecure lists registries ("host" or "host:port") reached over plain
	// http. Loopback registries (localhost, 127.0.0.0/8, ::1) always are.
	Insecure []string
	// ConfigDir holds config.json; "" means $DOCKER_CONFIG, else ~/.docker.
	ConfigDir string
	// Transport is the base HTTP transport (nil: http.DefaultTransport).
	Transport http.RoundTripper
	// UserAgent is sent with every request.
	UserAgent string
}

// Client talks to registries. It is safe for concurrent use.
type Client struct {
	opts     Options
	keychain *Keychain
}

// New makes a client.
func New(opts Options) *Client {
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "berth"
	}
	return &Client{opts: opts, keychain: NewKeychain(opts.ConfigDir)}
}

// Keychain is the client's credential source.
func (c *Client) Keychain() *Keychain { return c.keychain }

// IsInsecure tells whether the registry domain is spoken to over http.
func (c *Client) IsInsecure(domain string) bool {
	return reference.IsLoopbackHost(domain) || slices.Contains(c.opts.Insecure, domain)
}

// nameRepo converts to go-containerregistry's repository name.
func (c *Client) nameRepo(ref reference.Reference) (name.Repository, error) {
	var nopts []name.Option
	if c.IsInsecure(ref.Domain) {
		nopts = append(nopts, name.Insecure)
	}
	repo, err := name.NewRepository(ref.Name(), nopts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("repository %s: %w", ref.Name(), err)
	}
	return repo, nil
}

// NameReference converts ref to go-containerregistry's reference type (used
// for pushes).
func (c *Client) NameReference(ref reference.Reference) (name.Reference, error) {
	var nopts []name.Option
	if c.IsInsecure(ref.Domain) {
		nopts = append(nopts, name.Insecure)
	}
	var r name.Reference
	var err error
	if ref.Digest != "" {
		r, err = name.NewDigest(ref.Name()+"@"+ref.Digest, nopts...)
	} else {
		r, err = name.NewTag(ref.WithDefaultTag().String(), nopts...)
	}
	if err != nil {
		return nil, fmt.Errorf("reference %s: %w", ref, err)
	}
	return r, nil
}

// Repo is an authenticated connection to one repository.
type Repo struct {
	ref    reference.Reference
	repo   name.Repository
	client *http.Client
}

// Open authenticates to ref's repository for pulling (push adds push scope).
func (c *Client) Open(ctx context.Context, ref reference.Reference, push bool) (*Repo, error) {
	repo, err := c.nameRepo(ref)
	if err != nil {
		return nil, err
	}
	auth, err := c.keychain.Resolve(repo.Registry)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", ref.Domain, err)
	}
	scope := repo.Scope(transport.PullScope)
	if push {
		scope = repo.Scope(transport.PushScope)
	}
	base := transport.NewUserAgent(c.opts.Transport, c.opts.UserAgent)
	tr, err := transport.NewWithContext(ctx, repo.Registry, auth, base, []string{scope})
	if err != nil {
		return nil, fmt.Errorf("connect to registry %s for %s: %w", ref.Domain, ref.Name(), classify(err))
	}
	return &Repo{ref: ref, repo: repo, client: &http.Client{Transport: tr}}, nil
}

// classify marks authentication failures with ErrUnauthorized.
func classify(err error) error {
	if t, ok := err.(*transport.Error); ok && len(t.Errors) > 0 {
		err = responseError{err: err, t: t}
	}
	var terr *transport.Error
	if errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden) {
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	if strings.Contains(err.Error(), "UNAUTHORIZED") || strings.Contains(err.Error(), "401 Unauthorized") {
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	return err
}

// responseError is a registry's error response told as "METHOD URL: CODE:
// message", without the free-form detail go-containerregistry appends (a Go
// map print such as "; map[Tag:v1]").
type responseError struct {
	err error // wraps t
	t   *transport.Error
}

func (e responseError) Error() string {
	var b strings.Builder
	if e.t.Request != nil {
		u := *e.t.Request.URL
		u.User = nil
		if q := u.Query(); len(q) > 0 { // signed blob URLs carry tokens
			for k := range q {
				q.Set(k, "REDACTED")
			}
			u.RawQuery = q.Encode()
		}
		fmt.Fprintf(&b, "%s %s: ", e.t.Request.Method, u.String())
	}
	for i, d := range e.t.Errors {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", d.Code, d.Message)
	}
	return b.String()
}

func (e responseError) Unwrap() error { return e.err }

func (r *Repo) url(kind, id string) string {
	return fmt.Sprintf("%s://%s/v2/%s/%s/%s", r.repo.Scheme(), r.repo.RegistryStr(), r.repo.RepositoryStr(), kind, id)
}

// Manifest fetches the manifest (or index) named by identifier (a tag or a
// digest) and returns its bytes, media type and digest. A manifest asked for
// by digest is verified against it.
func (r *Repo) Manifest(ctx context.Context, identifier string) ([]byte, string, digest.Digest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url("manifests", identifier), nil)
	if err != nil {
		return nil, "", "", err
	}
	req.Header.Set("Accept", strings.Join([]string{MediaTypeOCIIndex, MediaTypeDockerManifestList, MediaTypeOCIManifest, MediaTypeDockerManifest, mediaTypeSchema1Signed, mediaTypeSchema1}, ", "))
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, "", "", fmt.Errorf("fetch manifest %s:%s: %w", r.ref.Name(), identifier, err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, "", "", fmt.Errorf("fetch manifest %s:%s: %w", r.ref.Name(), identifier, classify(err))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	if err != nil {
		return nil, "", "", fmt.Errorf("read manifest %s:%s: %w", r.ref.Name(), identifier, err)
	}
	if len(body) > maxManifestSize {
		return nil, "", "", fmt.Errorf("manifest %s:%s is larger than %d bytes", r.ref.Name(), identifier, maxManifestSize)
	}
	dgst := digest.FromBytes(body)
	if want := digest.Digest(identifier); want.Validate() == nil && want != dgst {
		return nil, "", "", fmt.Errorf("manifest %s@%s: registry sent content with digest %s", r.ref.Name(), identifier, dgst)
	}
	mt, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	return body, strings.TrimSpace(mt), dgst, nil
}

// Blob opens the blob dgst (of size bytes, -1 if unknown) from byte offset
// on. resumed is false when the registry ignored or refused the range and
// sends the whole blob (the caller then restarts from 0).
func (r *Repo) Blob(ctx context.Context, dgst digest.Digest, offset, size int64) (body io.ReadCloser, length int64, resumed bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url("blobs", dgst.String()), nil)
	if err != nil {
		return nil, 0, false, err
	}
	if offset > 0 {
		if size > offset {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", offset, size-1))
		} else {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		}
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, 0, false, fmt.Errorf("fetch blob %s from %s: %w", dgst, r.ref.Name(), err)
	}
	if offset > 0 && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		resp.Body.Close()
		return r.Blob(ctx, dgst, 0, size)
	}
	if err := transport.CheckError(resp, http.StatusOK, http.StatusPartialContent); err != nil {
		resp.Body.Close()
		return nil, 0, false, fmt.Errorf("fetch blob %s from %s: %w", dgst, r.ref.Name(), classify(err))
	}
	return resp.Body, resp.ContentLength, resp.StatusCode == http.StatusPartialContent, nil
}

// IsManifestList tells whether a media type is an index / manifest list.
func IsManifestList(mt string) bool {
	return mt == MediaTypeOCIIndex || mt == MediaTypeDockerManifestList
}

// IsSchema1 tells whether a media type is Docker's retired schema 1.
func IsSchema1(mt string) bool { return mt == mediaTypeSchema1 || mt == mediaTypeSchema1Signed }

// Login checks the credentials against the registry (a GET of /v2/ with them,
// after the token exchange for bearer registries) and, when they work, stores
// them in config.json. domain is a registry host ("localhost:5000"; "" or
// "docker.io" for Docker Hub).
func (c *Client) Login(ctx context.Context, domain, username, password string) error {
	if domain == "" {
		domain = reference.DefaultDomain
	}
	if username == "" {
		return fmt.Errorf("login to %s: username is empty", domain)
	}
	var nopts []name.Option
	if c.IsInsecure(domain) {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(domain, nopts...)
	if err != nil {
		return fmt.Errorf("login: registry %q: %w", domain, err)
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: username, Password: password})
	base := transport.NewUserAgent(c.opts.Transport, c.opts.UserAgent)
	tr, err := transport.NewWithContext(ctx, reg, auth, base, []string{reg.Scope("")})
	if err != nil {
		return fmt.Errorf("login to %s: %w", domain, classify(err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr()), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("login to %s: %w", domain, err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return fmt.Errorf("login to %s as %s: %w", domain, username, classify(err))
	}
	return c.keychain.Store(domain, username, password)
}

// Logout removes the stored credentials of domain ("" = Docker Hub).
func (c *Client) Logout(domain string) error {
	if domain == "" {
		domain = reference.DefaultDomain
	}
	return c.keychain.Erase(domain)
}
