package image

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// lease protects the blobs and layers an operation in progress creates from
// GC until the image record that names them is written. Its lock file is
// flock'd for the lease's life; a lease whose lock is free belongs to a dead
// process and is ignored (and removed) by GC.
type lease struct {
	s     *Store
	id    string
	lockf *os.File
	// Blobs and Layers are what the operation may create.
	Blobs  []digest.Digest `json:"blobs"`
	Layers []digest.Digest `json:"layers"`
}

func (s *Store) newLease() (*lease, error) {
	var b [8]byte
	rand.Read(b[:])
	l := &lease{s: s, id: hex.EncodeToString(b[:])}
	p := filepath.Join(s.dir, "leases", l.id+".lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create lease %s: %w", p, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock lease %s: %w", p, err)
	}
	l.lockf = f
	return l, nil
}

// add records more blobs and layers, under the store lock so that a GC
// running now either sees them or runs before they exist.
func (l *lease) add(blobs, layers []digest.Digest) error {
	unlock, err := l.s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	l.Blobs = append(l.Blobs, blobs...)
	l.Layers = append(l.Layers, layers...)
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(l.s.dir, "leases", l.id+".json"), b)
}

func (l *lease) release() {
	os.Remove(filepath.Join(l.s.dir, "leases", l.id+".json"))
	os.Remove(filepath.Join(l.s.dir, "leases", l.id+".lock"))
	l.lockf.Close()
}

// liveLeases reads the leases of live operations and removes dead ones.
// Called with the store lock held.
func (s *Store) liveLeases() (blobs, layers map[digest.Digest]bool, err error) {
	blobs, layers = map[digest.Digest]bool{}, map[digest.Digest]bool{}
	dir := filepath.Join(s.dir, "leases")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("list leases: %w", err)
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, e.Name()), os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
			// nobody holds it: the operation died
			os.Remove(filepath.Join(dir, id+".json"))
			os.Remove(filepath.Join(dir, e.Name()))
			f.Close()
			continue
		}
		f.Close()
		b, err := os.ReadFile(filepath.Join(dir, id+".json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read lease %s: %w", id, err)
		}
		var l lease
		if err := json.Unmarshal(b, &l); err != nil {
			continue
		}
		for _, d := range l.Blobs {
			blobs[d] = true
		}
		for _, d := range l.Layers {
			layers[d] = true
		}
	}
	return blobs, layers, nil
}
