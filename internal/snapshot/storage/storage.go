// Package storage keeps the records and directories of a snapshot driver,
// and implements the part of snapshot.Snapshotter that is the same for every
// driver (Base). A driver supplies how a new snapshot's directory is filled
// and how a snapshot is mounted (Hooks).
//
// On-disk schema of a driver root (e.g. <berth root>/snapshots/overlay):
//
//	metadata.json       the table: {"version":1,"next_id":N,"snapshots":{key: record}}
//	                    record = {"id","kind","parent","created","labels","transient"}
//	lock                flock'd (LOCK_EX) around every read-modify-write of metadata.json
//	<id>/               one directory per snapshot (id: decimal, from next_id, never reused);
//	                    its content belongs to the driver (overlay: fs/ and work/, native: fs/)
//	<id>/lease          flock'd by the process that prepared a transient snapshot, until it
//	                    commits or removes it
//	tmp/<random>/       a snapshot directory being filled, flock'd (on the directory) by its
//	                    preparer; renamed to <id>/ when the record is written
//	trash/<random>/     directories of removed snapshots, deleted outside the lock
//
// metadata.json is only ever replaced by rename(2) of a complete, fsync'd
// file, so readers need no lock. Every change takes the lock, re-reads the
// table, checks its preconditions again and writes it back: several
// processes can share a root. A crash leaves at worst: a tmp/ directory
// (nobody holds its flock), an <id>/ directory no record names (renamed in
// but the table not written), a transient record whose lease nobody holds,
// or a trash/ directory. Cleanup removes all four and nothing else.
package storage

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/berthproject/berth/internal/fastjson"
	"github.com/berthproject/berth/internal/snapshot"
	"golang.org/x/sys/unix"
)

const (
	schemaVersion = 1
	metadataFile  = "metadata.json"
	lockFile      = "lock"
	leaseFile     = "lease"
	tmpDir        = "tmp"
	trashDir      = "trash"
)

// Table is the content of metadata.json.
type Table struct {
	Version   int                `json:"version"`
	NextID    uint64             `json:"next_id"`
	Snapshots map[string]*Record `json:"snapshots"`
}

// Record is one snapshot.
type Record struct {
	ID        string            `json:"id"`
	Kind      string            `json:"kind"`
	Parent    string            `json:"parent,omitempty"`
	Created   time.Time         `json:"created"`
	Labels    map[string]string `json:"labels,omitempty"`
	Transient bool              `json:"transient,omitempty"`
}

// Info converts the record of key to the public description.
func (r *Record) Info(key string) snapshot.Info {
	kind, _ := snapshot.ParseKind(r.Kind)
	labels := map[string]string{}
	for k, v := range r.Labels {
		labels[k] = v
	}
	return snapshot.Info{Name: key, Parent: r.Parent, Kind: kind, Created: r.Created, Labels: labels}
}

// Store is the table and directories of one driver root.
type Store struct {
	root string
}

// OpenStore opens (creating if needed) the driver root dir.
func OpenStore(root string) (*Store, error) {
	for _, d := range []string{root, filepath.Join(root, tmpDir), filepath.Join(root, trashDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create snapshot root: %w", err)
		}
	}
	s := &Store{root: root}
	if _, err := s.Read(); err != nil {
		return nil, err
	}
	return s, nil
}

// Root is the driver root directory.
func (s *Store) Root() string { return s.root }

// Dir is the directory of snapshot id.
func (s *Store) Dir(id string) string { return filepath.Join(s.root, id) }

// Read returns the current table (a consistent copy; no lock needed).
func (s *Store) Read() (*Table, error) {
	p := filepath.Join(s.root, metadataFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return &Table{Version: schemaVersion, NextID: 1, Snapshots: map[string]*Record{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read snapshot table: %w", err)
	}
	var t Table
	if err := fastjson.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("parse snapshot table %s: %w", p, err)
	}
	if t.Version != schemaVersion {
		return nil, fmt.Errorf("snapshot table %s: schema version %d, this berth reads %d", p, t.Version, schemaVersion)
	}
	if t.Snapshots == nil {
		t.Snapshots = map[string]*Record{}
	}
	return &t, nil
}

// Update runs fn on the current table under the store's lock and writes the
// table back if fn succeeds. fn must be short: other processes wait.
func (s *Store) Update(fn func(*Table) error) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	t, err := s.Read()
	if err != nil {
		return err
	}
	if err := fn(t); err != nil {
		return err
	}
	return s.write(t)
}

func (s *Store) lock() (func(), error) {
	p := filepath.Join(s.root, lockFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open snapshot lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}

func (s *Store) write(t *Table) error {
	b, err := encodeTable(t)
	if err != nil {
		return fmt.Errorf("encode snapshot table: %w", err)
	}
	p := filepath.Join(s.root, metadataFile)
	tmp := p + ".tmp-" + randomName()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("write snapshot table: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write snapshot table %s: %w", p, err)
	}
	return nil
}

// encodeTable is json.MarshalIndent(t, "", "\t") without encoding/json's
// first-use type preparation (see package fastjson).
func encodeTable(t *Table) ([]byte, error) {
	b, err := fastjson.Marshal(t)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "\t"); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func randomName() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
