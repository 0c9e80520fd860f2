package archive

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// ChangeKind is what happened to a path: added, changed or deleted.
type ChangeKind int

const (
	ChangeAdd ChangeKind = iota + 1
	ChangeModify
	ChangeDelete
)

// String is the letter `docker diff` prints: A, C or D.
func (k ChangeKind) String() string {
	switch k {
	case ChangeAdd:
		return "A"
	case ChangeModify:
		return "C"
	case ChangeDelete:
		return "D"
	}
	return fmt.Sprintf("ChangeKind(%d)", int(k))
}

// Change is one line of `docker diff`.
type Change struct {
	Kind ChangeKind
	// Path is absolute, as seen inside the container: "/etc/hosts".
	Path string
}

func (c Change) String() string { return c.Kind.String() + " " + c.Path }

// change is a Change as the walkers produce it: for additions and
// modifications, the node of the new entry.
type change struct {
	kind ChangeKind
	path string
	node *node
}

// Changes lists the changes an overlay upper directory makes to its lower
// layers (nearest first), sorted by path: whiteouts are deletions, entries
// that exist below are changes (directories holding a change are there
// because overlayfs copied them up, and are reported changed, as Docker
// does), the rest additions; an opaque directory also deletes every lower
// entry it hides.
func Changes(ctx context.Context, upper string, lowers []string) ([]Change, error) {
	stack, err := openLayerStack(lowers)
	if err != nil {
		return nil, err
	}
	defer stack.close()
	var out []Change
	err = walkTree(ctx, upper, func(n *node) error {
		if isWhiteout(&n.st) {
			out = append(out, Change{Kind: ChangeDelete, Path: "/" + n.path})
			return nil
		}
		exists, err := stack.exists(n.path)
		if err != nil {
			return err
		}
		kind := ChangeAdd
		if exists {
			kind = ChangeModify
		}
		out = append(out, Change{Kind: kind, Path: "/" + n.path})
		if !n.isDir() || !exists {
			return nil
		}
		opaque, err := isOpaque(n.dirfd, n.name)
		if err != nil || !opaque {
			return err
		}
		hidden, err := stack.names(n.path)
		if err != nil {
			return err
		}
		sub, err := openSameDir(n.dirfd, n)
		if err != nil {
			return err
		}
		present, err := readNames(sub)
		unix.Close(sub)
		if err != nil {
			return fmt.Errorf("list %s: %w", n.path, err)
		}
		for _, h := range hidden {
			if _, ok := slices.BinarySearch(present, h); !ok {
				out = append(out, Change{Kind: ChangeDelete, Path: "/" + n.path + "/" + h})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("changes of %s: %w", upper, err)
	}
	sortChanges(out)
	return out, nil
}

// ChangesDirs lists the changes that turn tree lower into tree upper, sorted
// by path, compared as DiffDirs does; a directory holding a change is
// reported changed.
func ChangesDirs(ctx context.Context, lower, upper string) ([]Change, error) {
	var out []Change
	err := comparePair(ctx, lower, upper, func(c change) error {
		out = append(out, Change{Kind: c.kind, Path: "/" + c.path})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("changes of %s against %s: %w", upper, lower, err)
	}
	sortChanges(out)
	return out, nil
}

func sortChanges(c []Change) {
	slices.SortFunc(c, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
}

// pairWalker compares two trees. Directories present on both sides and
// unchanged are reported only when something below them changed, just before
// that change (so a layer carries the directories of what it changes).
type pairWalker struct {
	ctx   context.Context
	fn    func(change) error
	stack []*pendingDir
}

type pendingDir struct {
	n       node
	emitted bool
}

func comparePair(ctx context.Context, lower, upper string, fn func(change) error) error {
	lfd, err := openRoot(lower)
	if err != nil {
		return err
	}
	defer unix.Close(lfd)
	ufd, err := openRoot(upper)
	if err != nil {
		return err
	}
	defer unix.Close(ufd)
	w := &pairWalker{ctx: ctx, fn: fn}
	return w.walk(lfd, ufd, "")
}

func (w *pairWalker) emit(kind ChangeKind, p string, n *node) error {
	for _, d := range w.stack {
		if !d.emitted {
			d.emitted = true
			if err := w.fn(change{kind: ChangeModify, path: d.n.path, node: &d.n}); err != nil {
				return err
			}
		}
	}
	return w.fn(change{kind: kind, path: p, node: n})
}

// walk compares directory ufd with lfd (-1: no such directory below, all is
// added).
func (w *pairWalker) walk(lfd, ufd int, rel string) error {
	unames, err := readNames(ufd)
	if err != nil {
		return fmt.Errorf("list %s: %w", displayRel(rel), err)
	}
	var lnames []string
	if lfd >= 0 {
		if lnames, err = readNames(lfd); err != nil {
			return fmt.Errorf("list lower %s: %w", displayRel(rel), err)
		}
	}
	i, j := 0, 0
	for i < len(lnames) || j < len(unames) {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		var name string
		inLower, inUpper := false, false
		switch {
		case j >= len(unames) || (i < len(lnames) && lnames[i] < unames[j]):
			name, inLower = lnames[i], true
			i++
		case i >= len(lnames) || unames[j] < lnames[i]:
			name, inUpper = unames[j], true
			j++
		default:
			name, inLower, inUpper = unames[j], true, true
			i++
			j++
		}
		p := joinRel(rel, name)
		if !inUpper {
			if err := w.emit(ChangeDelete, p, nil); err != nil {
				return err
			}
			continue
		}
		un := node{path: p, dirfd: ufd, name: name}
		if err := unix.Fstatat(ufd, name, &un.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if !inLower {
			if err := w.emit(ChangeAdd, p, &un); err != nil {
				return err
			}
			if un.isDir() {
				if err := w.descend(-1, &un, true); err != nil {
					return err
				}
			}
			continue
		}
		var lst unix.Stat_t
		if err := unix.Fstatat(lfd, name, &lst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat lower %s: %w", p, err)
		}
		changed, err := differs(lfd, &lst, &un)
		if err != nil {
			return err
		}
		if changed {
			if err := w.emit(ChangeModify, p, &un); err != nil {
				return err
			}
		}
		if !un.isDir() {
			continue
		}
		sameType := lst.Mode&unix.S_IFMT == unix.S_IFDIR
		if !sameType {
			// A directory replaced a file: all it holds is new.
			if err := w.descend(-1, &un, true); err != nil {
				return err
			}
			continue
		}
		lsub, err := openDirAt(lfd, name)
		if err != nil {
			return fmt.Errorf("open lower %s: %w", p, err)
		}
		err = w.descend(lsub, &un, changed)
		unix.Close(lsub)
		if err != nil {
			return err
		}
	}
	return nil
}

// descend walks into upper directory n with lower counterpart lfd, n
// pending on the stack until something below it is reported.
func (w *pairWalker) descend(lfd int, n *node, emitted bool) error {
	usub, err := openSameDir(n.dirfd, n)
	if err != nil {
		return err
	}
	defer unix.Close(usub)
	w.stack = append(w.stack, &pendingDir{n: *n, emitted: emitted})
	err = w.walk(lfd, usub, n.path)
	w.stack = w.stack[:len(w.stack)-1]
	return err
}

func joinRel(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// differs compares lower entry lst (in lfd) with upper node un.
func differs(lfd int, lst *unix.Stat_t, un *node) (bool, error) {
	ust := &un.st
	if lst.Mode != ust.Mode || lst.Uid != ust.Uid || lst.Gid != ust.Gid {
		return true, nil
	}
	isDir := ust.Mode&unix.S_IFMT == unix.S_IFDIR
	if !isDir {
		if lst.Size != ust.Size || lst.Mtim != ust.Mtim || lst.Rdev != ust.Rdev {
			return true, nil
		}
	}
	if ust.Mode&unix.S_IFMT == unix.S_IFLNK {
		lt, err := readlinkAt(lfd, un.name)
		if err != nil {
			return false, fmt.Errorf("lower %s: %w", un.path, err)
		}
		ut, err := readlinkAt(un.dirfd, un.name)
		if err != nil {
			return false, fmt.Errorf("%s: %w", un.path, err)
		}
		if lt != ut {
			return true, nil
		}
	}
	lx, err := xattrsAt(lfd, un.name)
	if err != nil {
		return false, fmt.Errorf("lower %s: %w", un.path, err)
	}
	ux, err := xattrsAt(un.dirfd, un.name)
	if err != nil {
		return false, fmt.Errorf("%s: %w", un.path, err)
	}
	return !maps.Equal(lx, ux), nil
}

// layerStack reads the union of overlay layer directories (nearest first)
// the way overlayfs shows it: whiteouts delete, opaque directories hide what
// is below them, a non-directory hides a lower directory of the same name.
type layerStack struct {
	roots []int
}

func openLayerStack(dirs []string) (*layerStack, error) {
	s := &layerStack{}
	for _, d := range dirs {
		fd, err := openRoot(d)
		if err != nil {
			s.close()
			return nil, err
		}
		s.roots = append(s.roots, fd)
	}
	return s, nil
}

func (s *layerStack) close() {
	for _, fd := range s.roots {
		unix.Close(fd)
	}
}

type lookupResult int

const (
	absent  lookupResult = iota // not in this layer: look below
	hidden                      // not in this layer and nothing below shows (opaque parent)
	deleted                     // a whiteout or a non-directory on the way
	found
)

// lookup says what layer i holds at p. For a directory found, it returns it
// open (the caller closes it) and whether it, or a directory above it in
// this layer, is opaque (then nothing below this layer shows there).
func (s *layerStack) lookup(i int, p string) (res lookupResult, dirfd int, opaque bool, err error) {
	fd, err := unix.Dup(s.roots[i])
	if err != nil {
		return 0, -1, false, err
	}
	defer func() {
		if dirfd != fd {
			unix.Close(fd)
		}
	}()
	parts := strings.Split(p, "/")
	parentOpaque := false
	for k, c := range parts {
		var st unix.Stat_t
		err := unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) {
			if parentOpaque {
				return hidden, -1, false, nil
			}
			return absent, -1, false, nil
		}
		if err != nil {
			return 0, -1, false, fmt.Errorf("stat %s in layer %d: %w", p, i, err)
		}
		if isWhiteout(&st) {
			return deleted, -1, false, nil
		}
		last := k == len(parts)-1
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if !isDir {
			if last {
				return found, -1, false, nil
			}
			return deleted, -1, false, nil
		}
		op, err := isOpaque(fd, c)
		if err != nil {
			return 0, -1, false, err
		}
		sub, err := openDirAt(fd, c)
		if err != nil {
			return 0, -1, false, fmt.Errorf("open %s in layer %d: %w", p, i, err)
		}
		unix.Close(fd)
		fd = sub
		if last {
			return found, fd, op || parentOpaque, nil
		}
		parentOpaque = parentOpaque || op
	}
	return found, fd, false, nil // p was the root
}

// exists reports whether p shows through the stack.
func (s *layerStack) exists(p string) (bool, error) {
	for i := range s.roots {
		res, fd, _, err := s.lookup(i, p)
		if fd >= 0 {
			unix.Close(fd)
		}
		if err != nil {
			return false, err
		}
		switch res {
		case found:
			return true, nil
		case deleted, hidden:
			return false, nil
		}
	}
	return false, nil
}

// names lists the entries directory p shows through the stack, sorted.
func (s *layerStack) names(p string) ([]string, error) {
	seen := map[string]bool{} // name -> shows (false: whited out above)
	for i := range s.roots {
		res, fd, opaque, err := s.lookup(i, p)
		if err != nil {
			return nil, err
		}
		if res == absent {
			continue
		}
		if res != found || fd < 0 {
			break
		}
		names, err := readNames(fd)
		if err == nil {
			for _, n := range names {
				if _, ok := seen[n]; ok {
					continue
				}
				var st unix.Stat_t
				if err = unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					break
				}
				seen[n] = !isWhiteout(&st)
			}
		}
		unix.Close(fd)
		if err != nil {
			return nil, fmt.Errorf("list %s in layer %d: %w", p, i, err)
		}
		if opaque {
			break
		}
	}
	var out []string
	for n, shows := range seen {
		if shows {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}
