package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/berthproject/berth/internal/snapshot"
	"golang.org/x/sys/unix"
)

// ContentDir is the directory, inside every snapshot directory, that holds
// the snapshot's own content; drivers may keep more next to it (overlay's
// work/).
const ContentDir = "fs"

// Hooks are what a driver adds to Base.
type Hooks struct {
	// Populate fills dir, the directory of a new snapshot of kind, stacked on
	// parents (their snapshot directories, nearest first). It must create
	// dir/fs. It runs without the store lock and may take long (a copy).
	Populate func(ctx context.Context, dir string, kind snapshot.Kind, parents []string) error
	// Mounts describes how to mount the snapshot in dir.
	Mounts func(dir string, kind snapshot.Kind, parents []string) []snapshot.Mount
	// Rebase allows Commit WithParent of a snapshot prepared with no parent.
	Rebase bool
}

// Base implements the driver-independent methods of snapshot.Snapshotter
// on a Store. Drivers embed it.
type Base struct {
	store *Store
	hooks Hooks

	// mu guards leases: the flock'd lease files of the transient snapshots
	// this instance prepared, by key.
	mu     sync.Mutex
	leases map[string]*os.File
}

// New opens the driver root dir with the driver's hooks.
func New(root string, hooks Hooks) (*Base, error) {
	s, err := OpenStore(root)
	if err != nil {
		return nil, err
	}
	return &Base{store: s, hooks: hooks, leases: map[string]*os.File{}}, nil
}

// Store is the underlying table and directories.
func (b *Base) Store() *Store { return b.store }

// Resolved is a snapshot with the directories a driver needs.
type Resolved struct {
	Record  Record
	Dir     string   // the snapshot's directory
	Parents []string // its parents' directories, nearest first
}

// Resolve looks key up.
func (b *Base) Resolve(key string) (Resolved, error) {
	t, err := b.store.Read()
	if err != nil {
		return Resolved{}, err
	}
	rec, ok := t.Snapshots[key]
	if !ok {
		return Resolved{}, fmt.Errorf("%w: %s", snapshot.ErrNotFound, key)
	}
	ids, err := chain(t, rec.Parent)
	if err != nil {
		return Resolved{}, fmt.Errorf("snapshot %s: %w", key, err)
	}
	return Resolved{Record: *rec, Dir: b.store.Dir(rec.ID), Parents: b.dirs(ids)}, nil
}

// chain returns the ids of parent and its ancestors, nearest first,
// checking that parent is committed.
func chain(t *Table, parent string) ([]string, error) {
	var ids []string
	for p := parent; p != ""; {
		rec, ok := t.Snapshots[p]
		if !ok {
			return nil, fmt.Errorf("%w: parent %s", snapshot.ErrNotFound, p)
		}
		if rec.Kind != snapshot.KindCommitted.String() {
			return nil, fmt.Errorf("%w: parent %s is %s, not committed", snapshot.ErrInvalid, p, rec.Kind)
		}
		ids = append(ids, rec.ID)
		if len(ids) > len(t.Snapshots) {
			return nil, fmt.Errorf("%w: parent chain of %s loops", snapshot.ErrInvalid, parent)
		}
		p = rec.Parent
	}
	return ids, nil
}

func (b *Base) dirs(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = b.store.Dir(id)
	}
	return out
}

func options(opts []snapshot.Opt) snapshot.Options {
	var o snapshot.Options
	for _, fn := range opts {
		fn(&o)
	}
	return o
}

// Prepare implements snapshot.Snapshotter.
func (b *Base) Prepare(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	m, err := b.create(ctx, snapshot.KindActive, key, parent, options(opts))
	if err != nil {
		return nil, fmt.Errorf("prepare snapshot %s on %q: %w", key, parent, err)
	}
	return m, nil
}

// View implements snapshot.Snapshotter.
func (b *Base) View(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	o := options(opts)
	if o.Transient {
		return nil, fmt.Errorf("view %s: %w: a view cannot be transient", key, snapshot.ErrInvalid)
	}
	m, err := b.create(ctx, snapshot.KindView, key, parent, o)
	if err != nil {
		return nil, fmt.Errorf("view snapshot %s of %q: %w", key, parent, err)
	}
	return m, nil
}

func (b *Base) create(ctx context.Context, kind snapshot.Kind, key, parent string, o snapshot.Options) ([]snapshot.Mount, error) {
	if key == "" {
		return nil, fmt.Errorf("%w: empty key", snapshot.ErrInvalid)
	}
	t, err := b.store.Read()
	if err != nil {
		return nil, err
	}
	if _, ok := t.Snapshots[key]; ok {
		return nil, snapshot.ErrAlreadyExists
	}
	ids, err := chain(t, parent)
	if err != nil {
		return nil, err
	}
	parents := b.dirs(ids)

	tmp, release, err := b.newTemp()
	if err != nil {
		return nil, err
	}
	defer release()
	var lease *os.File
	if o.Transient {
		if lease, err = takeLease(filepath.Join(tmp, leaseFile)); err != nil {
			return nil, err
		}
	}
	keepLease := false
	defer func() {
		if lease != nil && !keepLease {
			lease.Close()
		}
	}()
	if err := b.hooks.Populate(ctx, tmp, kind, parents); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	var dir string
	err = b.store.Update(func(t *Table) error {
		if _, ok := t.Snapshots[key]; ok {
			return snapshot.ErrAlreadyExists
		}
		now, err := chain(t, parent)
		if err != nil {
			return err
		}
		if !slices.Equal(now, ids) {
			return fmt.Errorf("%w: parent %s was replaced while %s was prepared", snapshot.ErrNotFound, parent, key)
		}
		id := strconv.FormatUint(t.NextID, 10)
		t.NextID++
		dir = b.store.Dir(id)
		// A directory under a fresh id is a crash's leftover (renamed in, the
		// table not written): out of the way with it.
		if _, err := os.Lstat(dir); err == nil {
			if err := os.Rename(dir, filepath.Join(b.store.root, trashDir, id+"-"+randomName())); err != nil {
				return fmt.Errorf("move leftover %s to trash: %w", dir, err)
			}
		}
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("install snapshot directory: %w", err)
		}
		t.Snapshots[key] = &Record{
			ID: id, Kind: kind.String(), Parent: parent, Created: time.Now().UTC(),
			Labels: o.Labels, Transient: o.Transient,
		}
		return nil
	})
	if err != nil {
		if dir != "" {
			os.Rename(dir, tmp) // the table was not written: back to tmp/, removed by release
		}
		return nil, err
	}
	if lease != nil {
		keepLease = true
		b.mu.Lock()
		b.leases[key] = lease
		b.mu.Unlock()
	}
	return b.hooks.Mounts(dir, kind, parents), nil
}

// newTemp makes a directory under tmp/ and flocks it, so Cleanup leaves it
// alone while this process fills it. release unlocks it and removes it if it
// is still there (not installed).
func (b *Base) newTemp() (string, func(), error) {
	dir := filepath.Join(b.store.root, tmpDir, randomName())
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("create snapshot directory: %w", err)
	}
	f, err := os.Open(dir)
	if err == nil {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("lock snapshot directory %s: %w", dir, err)
	}
	return dir, func() {
		os.RemoveAll(dir) // ENOENT once installed
		f.Close()
	}, nil
}

// takeLease creates and flocks a lease file.
func takeLease(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create lease: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock lease %s: %w", p, err)
	}
	return f, nil
}

// leaseFree reports whether nobody holds the lease file p (or it is gone).
func leaseFree(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return true
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	return err == nil
}

func (b *Base) releaseLease(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.leases[key]; ok {
		f.Close()
		delete(b.leases, key)
	}
}

func (b *Base) holdsLease(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.leases[key]
	return ok
}

// Mounts implements snapshot.Snapshotter.
func (b *Base) Mounts(ctx context.Context, key string) ([]snapshot.Mount, error) {
	r, err := b.Resolve(key)
	if err != nil {
		return nil, fmt.Errorf("mounts of %s: %w", key, err)
	}
	kind, _ := snapshot.ParseKind(r.Record.Kind)
	if kind == snapshot.KindCommitted {
		return nil, fmt.Errorf("mounts of %s: %w: committed snapshots are mounted through a view or an active snapshot", key, snapshot.ErrInvalid)
	}
	return b.hooks.Mounts(r.Dir, kind, r.Parents), nil
}

// Commit implements snapshot.Snapshotter.
func (b *Base) Commit(ctx context.Context, name, key string, opts ...snapshot.Opt) error {
	o := options(opts)
	if name == "" {
		return fmt.Errorf("commit %s: %w: empty name", key, snapshot.ErrInvalid)
	}
	err := b.store.Update(func(t *Table) error {
		rec, ok := t.Snapshots[key]
		if !ok {
			return snapshot.ErrNotFound
		}
		if rec.Kind != snapshot.KindActive.String() {
			return fmt.Errorf("%w: %s is %s, not active", snapshot.ErrInvalid, key, rec.Kind)
		}
		if _, ok := t.Snapshots[name]; ok {
			return snapshot.ErrAlreadyExists
		}
		parent := rec.Parent
		if o.Parent != "" && o.Parent != rec.Parent {
			if rec.Parent != "" || !b.hooks.Rebase {
				return fmt.Errorf("%w: %s was prepared on %q and this driver cannot commit it on %s", snapshot.ErrInvalid, key, rec.Parent, o.Parent)
			}
			if _, err := chain(t, o.Parent); err != nil {
				return err
			}
			parent = o.Parent
		}
		labels := maps.Clone(rec.Labels)
		if len(o.Labels) > 0 && labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, o.Labels)
		delete(t.Snapshots, key)
		t.Snapshots[name] = &Record{ID: rec.ID, Kind: snapshot.KindCommitted.String(), Parent: parent, Created: time.Now().UTC(), Labels: labels}
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit snapshot %s as %s: %w", key, name, err)
	}
	b.releaseLease(key)
	return nil
}

// Remove implements snapshot.Snapshotter.
func (b *Base) Remove(ctx context.Context, key string) error {
	var trash string
	err := b.remove(key, &trash)
	if err != nil && trash != "" {
		// The directory went to trash but the table could not be written:
		// a full disk, maybe filled by this very snapshot (a layer too big
		// for it). Free the space, then drop the record.
		if rerr := os.RemoveAll(trash); rerr == nil {
			trash = ""
			err = b.remove(key, &trash)
		}
	}
	if err != nil {
		return fmt.Errorf("remove snapshot %s: %w", key, err)
	}
	b.releaseLease(key)
	if trash != "" {
		if err := os.RemoveAll(trash); err != nil {
			return fmt.Errorf("remove snapshot %s: the record is gone, its directory %s stays: %w", key, trash, err)
		}
	}
	return nil
}

// remove moves the directory of key to trash (*trash: where) and deletes its
// record, under the lock.
func (b *Base) remove(key string, trash *string) error {
	return b.store.Update(func(t *Table) error {
		rec, ok := t.Snapshots[key]
		if !ok {
			return snapshot.ErrNotFound
		}
		for _, k := range slices.Sorted(maps.Keys(t.Snapshots)) {
			if t.Snapshots[k].Parent == key {
				return fmt.Errorf("%w: %s is the parent of %s", snapshot.ErrInUse, key, k)
			}
		}
		var err error
		if *trash, err = b.toTrash(rec.ID); err != nil {
			return err
		}
		delete(t.Snapshots, key)
		return nil
	})
}

// toTrash moves the directory of id into trash/ (under the lock); "" if it
// was not there.
func (b *Base) toTrash(id string) (string, error) {
	trash := filepath.Join(b.store.root, trashDir, id+"-"+randomName())
	if err := os.Rename(b.store.Dir(id), trash); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("move snapshot directory to trash: %w", err)
	}
	return trash, nil
}

// Stat implements snapshot.Snapshotter.
func (b *Base) Stat(ctx context.Context, key string) (snapshot.Info, error) {
	t, err := b.store.Read()
	if err != nil {
		return snapshot.Info{}, err
	}
	rec, ok := t.Snapshots[key]
	if !ok {
		return snapshot.Info{}, fmt.Errorf("stat snapshot %s: %w", key, snapshot.ErrNotFound)
	}
	return rec.Info(key), nil
}

// Walk implements snapshot.Snapshotter.
func (b *Base) Walk(ctx context.Context, fn func(snapshot.Info) error) error {
	t, err := b.store.Read()
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(t.Snapshots)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(t.Snapshots[k].Info(k)); err != nil {
			return err
		}
	}
	return nil
}

// Usage implements snapshot.Snapshotter: the allocated size and inode count
// of the snapshot's fs/ directory, each inode counted once.
func (b *Base) Usage(ctx context.Context, key string) (snapshot.Usage, error) {
	r, err := b.Resolve(key)
	if err != nil {
		return snapshot.Usage{}, fmt.Errorf("usage of %s: %w", key, err)
	}
	var u snapshot.Usage
	seen := map[[2]uint64]bool{}
	err = filepath.WalkDir(filepath.Join(r.Dir, ContentDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		id := [2]uint64{st.Dev, st.Ino}
		if !seen[id] {
			seen[id] = true
			u.Inodes++
			u.Size += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		return snapshot.Usage{}, fmt.Errorf("usage of %s: %w", key, err)
	}
	return u, nil
}

// Cleanup implements snapshot.Snapshotter.
func (b *Base) Cleanup(ctx context.Context) error {
	var trash []string
	err := b.store.Update(func(t *Table) error {
		for _, key := range slices.Sorted(maps.Keys(t.Snapshots)) {
			rec := t.Snapshots[key]
			if !rec.Transient || b.holdsLease(key) || !leaseFree(filepath.Join(b.store.Dir(rec.ID), leaseFile)) {
				continue
			}
			hasChild := false
			for _, r := range t.Snapshots {
				hasChild = hasChild || r.Parent == key
			}
			if hasChild {
				continue
			}
			p, err := b.toTrash(rec.ID)
			if err != nil {
				return err
			}
			delete(t.Snapshots, key)
			if p != "" {
				trash = append(trash, p)
			}
		}
		referenced := map[string]bool{}
		for _, rec := range t.Snapshots {
			referenced[rec.ID] = true
		}
		entries, err := os.ReadDir(b.store.root)
		if err != nil {
			return fmt.Errorf("list snapshot root: %w", err)
		}
		for _, e := range entries {
			if _, err := strconv.ParseUint(e.Name(), 10, 64); err != nil || referenced[e.Name()] {
				continue
			}
			p, err := b.toTrash(e.Name())
			if err != nil {
				return err
			}
			if p != "" {
				trash = append(trash, p)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("clean up snapshots: %w", err)
	}
	var errs []error
	// Half-prepared directories whose preparer is gone.
	tmps, _ := os.ReadDir(filepath.Join(b.store.root, tmpDir))
	for _, e := range tmps {
		p := filepath.Join(b.store.root, tmpDir, e.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
			}
		}
		f.Close()
	}
	// Trash: this pass's and what earlier removals could not delete.
	olds, _ := os.ReadDir(filepath.Join(b.store.root, trashDir))
	for _, e := range olds {
		trash = append(trash, filepath.Join(b.store.root, trashDir, e.Name()))
	}
	for _, p := range slices.Compact(slices.Sorted(slices.Values(trash))) {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up snapshots: %w", err)
	}
	return nil
}

// Close implements snapshot.Snapshotter: transient snapshots not committed
// by now are left to Cleanup.
func (b *Base) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, f := range b.leases {
		f.Close()
		delete(b.leases, k)
	}
	return nil
}
