package seccomp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// compilerVersion is part of every cache key; change it whenever the
// compiler would emit a different program for the same spec.
const compilerVersion = "berth-seccomp-2"

// Cache keeps compiled programs on disk so that a filter is compiled once,
// not at every container start. Entries are named by the sha256 of the
// compiler version, the native architecture and the filter's JSON; they are
// written to a temporary file and renamed into place, and an entry that
// does not decode (torn, damaged, older format) is compiled and written
// again. Several processes may share Dir.
type Cache struct {
	// Dir holds the entries, e.g. <state root>/seccomp. It is created on
	// first use.
	Dir string

	compiles atomic.Int64 // how many times Program compiled, for tests
}

// Program returns the compiled program for s, from the cache when present.
// Invalid filters are not cached: their error comes back every time.
func (c *Cache) Program(s *specs.LinuxSeccomp) (*Program, error) {
	key, err := cacheKey(s, NativeArch())
	if err != nil {
		return nil, err
	}
	path := filepath.Join(c.Dir, key+".bpf")
	if data, err := os.ReadFile(path); err == nil {
		var p Program
		if p.UnmarshalBinary(data) == nil {
			return &p, nil
		}
		// Corrupt: fall through, compile and replace it.
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read seccomp cache entry: %w", err)
	}

	c.compiles.Add(1)
	p, err := Compile(s)
	if err != nil {
		return nil, err
	}
	data, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(c.Dir, path, data); err != nil {
		return nil, err
	}
	return p, nil
}

// cacheKey hashes what the program depends on. The listener path only
// matters as "is there one" and the metadata not at all, so containers that
// differ only there share an entry.
func cacheKey(s *specs.LinuxSeccomp, native specs.Arch) (string, error) {
	if s == nil {
		return "", invalid("linux.seccomp", "no filter given")
	}
	canon := *s
	switch {
	case canon.ListenerPath != "":
		canon.ListenerPath, canon.ListenerMetadata = "set", ""
	case canon.ListenerMetadata != "":
		canon.ListenerMetadata = "set" // invalid without a path; keep it so
	}
	b, err := json.Marshal(&canon)
	if err != nil {
		return "", fmt.Errorf("encode seccomp filter for the cache key: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", compilerVersion, native, runtime.GOARCH)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeAtomic(dir, path string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create seccomp cache %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("write seccomp cache entry: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename seccomp cache entry into %s: %w", path, err)
	}
	return nil
}
