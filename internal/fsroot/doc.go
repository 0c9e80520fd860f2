// Package fsroot resolves paths that a container controls without ever leaving
// the container's root directory.
//
// A container image decides what its own files are, including symlinks such as
// "etc -> /../../../host/etc" or "x -> /proc/self/root". Every path the runtime
// touches inside a rootfs (mount destinations, device nodes, masked paths, the
// working directory) must therefore be resolved as if the rootfs were "/": ".."
// stops at the root, absolute symlinks restart at the root, and procfs "magic
// links" (which jump to arbitrary kernel objects) are refused. The functions here
// do that relative to an open directory (the root) and return file descriptors,
// never strings, so the checked object is the object used.
//
// Two resolvers implement the same rules:
//
//   - openat2(2) with RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS (Linux 5.6+), where the
//     kernel does the walk atomically;
//   - a userspace walk, used when openat2 reports ENOSYS: one component at a time
//     with O_PATH|O_NOFOLLOW, symlinks read and resolved against the root, ".."
//     clamped at the root by keeping the walked directories on a stack, and at
//     most 40 symlinks followed.
//
// Mounting onto a resolved target goes through the target's descriptor
// (/proc/self/fd/N), as runc does, so nothing can swap the path between the check
// and the mount; Mount then re-resolves the target's path and checks that a new
// mount really sits there.
package fsroot
