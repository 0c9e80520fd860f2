// Package testregistry starts OCI distribution registries inside a test
// process (go-containerregistry's in-memory registry behind httptest on
// 127.0.0.1), optionally behind basic or bearer-token authentication and with
// faults injected, and builds and pushes test images byte for byte.
package testregistry

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"io"
	"log"
)

// Auth selects the registry's authentication.
type Auth int

const (
	// Anonymous: no authentication.
	Anonymous Auth = iota
	// Basic: HTTP basic authentication on every request.
	Basic
	// Bearer: a token server; the registry wants "Authorization: Bearer <token>".
	Bearer
)

// Options configure a test registry.
type Options struct {
	Auth               Auth
	Username, Password string
}

// Server is a running test registry.
type Server struct {
	// Host is "127.0.0.1:<port>": use it as the registry domain of references.
	Host string
	URL  string
	opts Options

	mu sync.Mutex
	// fault is consulted before the registry sees a request; true means the
	// fault answered it.
	fault func(w http.ResponseWriter, r *http.Request) bool
	// requests counts requests by "METHOD path".
	requests map[string]int
	token    string
}

// Start runs a registry until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{opts: opts, requests: map[string]int{}, token: "tok-" + fmt.Sprint(len(t.Name()))}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[r.Method+" "+r.URL.Path]++
		fault := s.fault
		s.mu.Unlock()
		if r.URL.Path == "/token" {
			s.serveToken(w, r)
			return
		}
		if !s.authorized(w, r) {
			return
		}
		if fault != nil && fault(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	s.Host = strings.TrimPrefix(srv.URL, "http://")
	return s
}

// SetFault installs (nil: removes) a request interceptor.
func (s *Server) SetFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// Requests is the number of requests seen for "METHOD path".
func (s *Server) Requests(methodPath string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[methodPath]
}

// BlobRequests counts GETs of blob dgst in repository repo.
func (s *Server) BlobRequests(repo, dgst string) int {
	return s.Requests("GET /v2/" + repo + "/blobs/" + dgst)
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	switch s.opts.Auth {
	case Basic:
		u, p, ok := r.BasicAuth()
		if ok && u == s.opts.Username && p == s.opts.Password {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return false
	case Bearer:
		if r.Header.Get("Authorization") == "Bearer "+s.token {
			return true
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="testregistry"`, s.URL))
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return false
	}
	return true
}

// serveToken is a token server in the style of Docker's: credentials by basic auth.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	u, p, ok := r.BasicAuth()
	if !ok || u != s.opts.Username || p != s.opts.Password {
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "bad credentials")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"token": s.token, "access_token": s.token, "expires_in": 300})
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// BasicAuthHeader is "Basic base64(user:password)".
func BasicAuthHeader(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}
