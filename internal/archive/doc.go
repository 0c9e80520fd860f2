// Package archive turns layer tars into directories and directories back into
// layer tars, the two directions of an image layer.
//
// A layer is an uncompressed tar (the OCI image spec's "layer changeset"):
// additions and changes are ordinary entries, deletions are whiteouts.
//
//	tar entry                  overlay upper dir (WhiteoutOverlay)     copy of the parent (WhiteoutApply)
//	dir/.wh.NAME               NAME: char device 0/0                   NAME removed (with its content)
//	dir/.wh..wh..opq           dir: xattr trusted.overlay.opaque=y     dir's entries not in this layer removed
//	anything else              created as described                    created, replacing what was there
//
// Apply goes from tar to directory, Diff and DiffDirs from directory to tar,
// Changes and ChangesDirs list the same changes as `docker diff` does.
//
// Safety of Apply: a layer comes from a registry and is untrusted. Entry names
// are cleaned and refused when absolute or containing "..". The directory that
// holds an entry is resolved inside the target directory (openat2
// RESOLVE_IN_ROOT, through internal/fsroot), a symlink created by the layer
// itself is never followed (an entry below it is refused), the final component
// is created with *at calls relative to that directory, never following a
// symlink, and hard links resolve their target the same way. Nothing is ever
// written outside the target directory.
//
// Both directions keep what a filesystem tree can hold: owners (optionally
// remapped for user namespaces), modes with setuid/setgid/sticky, modification
// times (directories set after their content), extended attributes (PAX
// SCHILY.xattr.*, including security.capability file capabilities), hard links,
// symlinks, device nodes and fifos, sparse files (PAX 1.0 GNU sparse entries;
// holes are written as holes) and long names.
package archive
