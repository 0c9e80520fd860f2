// Package rootfs builds a container's filesystem view: the spec's mounts, /dev,
// the switch of root, and the masked and read-only paths.
//
// The parent (berth-runtime create) calls Validate before anything exists; it
// only reads the config and the host (does root.path exist, are the bind
// sources there) and names the spec field at fault. The container init, which
// starts in its own mount namespace (and whatever other namespaces the spec
// asks for), running as root of its user namespace, then calls, in order:
//
//	init                                   rootfs
//	 |  Prepare(c) ----------------------->  / rslave (or rootfsPropagation); rootfs's
//	 |                                       mount private if shared; rootfs bound onto
//	 |                                       itself; spec mounts in order; /dev devices,
//	 |                                       symlinks, ptmx
//	 |  createRuntime/createContainer hooks (host paths still visible)
//	 |  Enter(c) ------------------------->  pivot_root(".", ".") and detach the old
//	 |                                       root (or MS_MOVE + chroot with NoPivot)
//	 |  sysctls, hostname
//	 |  Finalize(c) ---------------------->  /dev ro if asked, maskedPaths,
//	 |                                       readonlyPaths, root.readonly
//	 |  process setup, execve
//
// Every path inside the rootfs is resolved with package fsroot, never with
// filepath.Join: the image controls its symlinks, and a destination such as
// /mnt -> ../../../etc must land inside the rootfs. Mounts go through the
// resolved descriptor (/proc/self/fd/N) and are checked afterwards. Mount
// destinations inside /proc and /sys are limited to the usual ones (procfs on
// /proc, the cgroup tree, files lxcfs emulates), checked both on the spec's
// path and on where it resolved to.
//
// A spec "cgroup" mount becomes the container's cgroup tree: on cgroup v1 and
// hybrid hosts a tmpfs with one mount per hierarchy (and symlinks such as
// cpu -> cpu,cpuacct), on v2 hosts one cgroup2 mount. With a private cgroup
// namespace these are fresh cgroup mounts; otherwise they are binds of the
// container's own cgroup directories, so no hierarchy root (and no v1
// release_agent) is reachable. "ro" applies to all of them.
package rootfs
