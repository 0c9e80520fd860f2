package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// dockerHubKey is the key Docker uses for Docker Hub in config.json.
const dockerHubKey = "https://index.docker.io/v1/"

// Keychain reads and writes registry credentials in Docker's config.json:
//
//	{"auths": {"localhost:5000": {"auth": "<base64 user:password>"}},
//	 "credHelpers": {"registry.example": "helper"},   // docker-credential-helper get
//	 "credsStore": "helper"}                            // for every registry
//
// Other keys of the file are kept as they are when it is rewritten.
type Keychain struct {
	dir string
}

// NewKeychain uses dir/config.json; dir "" means $DOCKER_CONFIG, else ~/.docker.
func NewKeychain(dir string) *Keychain {
	if dir == "" {
		dir = os.Getenv("DOCKER_CONFIG")
	}
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "/root"
		}
		dir = filepath.Join(home, ".docker")
	}
	return &Keychain{dir: dir}
}

// Path is the config file.
func (k *Keychain) Path() string { return filepath.Join(k.dir, "config.json") }

type configFile struct {
	raw         map[string]json.RawMessage
	auths       map[string]authn.AuthConfig
	credHelpers map[string]string
	credsStore  string
}

func (k *Keychain) load() (*configFile, error) {
	cf := &configFile{raw: map[string]json.RawMessage{}, auths: map[string]authn.AuthConfig{}}
	b, err := os.ReadFile(k.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return cf, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", k.Path(), err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return cf, nil
	}
	if err := json.Unmarshal(b, &cf.raw); err != nil {
		return nil, fmt.Errorf("parse %s: %w", k.Path(), err)
	}
	if a, ok := cf.raw["auths"]; ok {
		if err := json.Unmarshal(a, &cf.auths); err != nil {
			return nil, fmt.Errorf("parse %s: field auths: %w", k.Path(), err)
		}
	}
	if h, ok := cf.raw["credHelpers"]; ok {
		if err := json.Unmarshal(h, &cf.credHelpers); err != nil {
			return nil, fmt.Errorf("parse %s: field credHelpers: %w", k.Path(), err)
		}
	}
	if s, ok := cf.raw["credsStore"]; ok {
		if err := json.Unmarshal(s, &cf.credsStore); err != nil {
			return nil, fmt.Errorf("parse %s: field credsStore: %w", k.Path(), err)
		}
	}
	return cf, nil
}

// configKey is the auths key Docker writes for a registry.
func configKey(domain string) string {
	if domain == "docker.io" || domain == "index.docker.io" || domain == "registry-1.docker.io" {
		return dockerHubKey
	}
	return domain
}

// hostOf reduces an auths key ("https://host:port/v1/", "host:port") to its host.
func hostOf(key string) string {
	if key == dockerHubKey {
		return "docker.io"
	}
	key = strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	key, _, _ = strings.Cut(key, "/")
	return key
}

// Lookup returns the stored credentials of a registry domain (anonymous when none).
func (k *Keychain) Lookup(domain string) (authn.AuthConfig, error) {
	cf, err := k.load()
	if err != nil {
		return authn.AuthConfig{}, err
	}
	want := hostOf(configKey(domain))
	helper := cf.credHelpers[domain]
	if helper == "" {
		helper = cf.credsStore
	}
	if helper != "" {
		return runHelper(helper, configKey(domain))
	}
	for key, ac := range cf.auths {
		if hostOf(key) == want {
			return ac, nil
		}
	}
	return authn.AuthConfig{}, nil
}

// runHelper asks a docker-credential-<helper> for the credentials of server.
func runHelper(helper, server string) (authn.AuthConfig, error) {
	cmd := exec.Command("docker-credential-"+helper, "get")
	cmd.Stdin = strings.NewReader(server)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if strings.Contains(out.String()+errb.String(), "credentials not found") {
			return authn.AuthConfig{}, nil
		}
		return authn.AuthConfig{}, fmt.Errorf("credential helper docker-credential-%s for %s: %w: %s", helper, server, err, strings.TrimSpace(errb.String()))
	}
	var resp struct{ Username, Secret string }
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		return authn.AuthConfig{}, fmt.Errorf("credential helper docker-credential-%s: parse answer: %w", helper, err)
	}
	if resp.Username == "<token>" {
		return authn.AuthConfig{IdentityToken: resp.Secret}, nil
	}
	return authn.AuthConfig{Username: resp.Username, Password: resp.Secret}, nil
}

// Resolve implements authn.Keychain.
func (k *Keychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	ac, err := k.Lookup(res.RegistryStr())
	if err != nil {
		return nil, err
	}
	if ac == (authn.AuthConfig{}) {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(ac), nil
}

// Store saves credentials for domain as Docker does (base64 "auth"), writing
// the file atomically with mode 0600.
func (k *Keychain) Store(domain, username, password string) error {
	cf, err := k.load()
	if err != nil {
		return err
	}
	key := configKey(domain)
	for old := range cf.auths {
		if hostOf(old) == hostOf(key) {
			delete(cf.auths, old)
		}
	}
	cf.auths[key] = authn.AuthConfig{Username: username, Password: password}
	return k.save(cf)
}

// Erase removes the credentials of domain; "not logged in" is an error.
func (k *Keychain) Erase(domain string) error {
	cf, err := k.load()
	if err != nil {
		return err
	}
	found := false
	for key := range cf.auths {
		if hostOf(key) == hostOf(configKey(domain)) {
			delete(cf.auths, key)
			found = true
		}
	}
	if !found {
		return fmt.Errorf("not logged in to %s", domain)
	}
	return k.save(cf)
}

func (k *Keychain) save(cf *configFile) error {
	a, err := json.Marshal(cf.auths)
	if err != nil {
		return err
	}
	cf.raw["auths"] = a
	b, err := json.MarshalIndent(cf.raw, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(k.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", k.dir, err)
	}
	tmp, err := os.CreateTemp(k.dir, ".config.json-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", k.Path(), err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", k.Path(), err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", k.Path(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", k.Path(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", k.Path(), err)
	}
	if err := os.Rename(tmp.Name(), k.Path()); err != nil {
		return fmt.Errorf("write %s: %w", k.Path(), err)
	}
	return nil
}
