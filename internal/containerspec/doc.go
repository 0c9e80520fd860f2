// Package containerspec renders a container's OCI runtime spec from its
// image config and the user's options, the way Docker does: the same
// process (entrypoint and command rules, environment, user and groups,
// capabilities), the same default mounts, namespaces, resource limits,
// device rules, masked paths and seccomp profile. The engine writes the
// result to the bundle's config.json and runs it with berth-runtime.
//
// # Pure
//
// Generate reads nothing from the filesystem. Everything that depends on
// the host or on other containers is found by the engine and handed over in
// Input as data: the image's /etc/passwd and /etc/group, the host
// directories of volumes, the paths of namespaces to join, the /etc files to
// bind, the device nodes behind --device and the blkio flags, the
// capabilities the engine holds. Two host facts are read by the libraries it
// uses, once per process: the kernel's highest capability number (the set
// --privileged grants when Input.AvailableCaps is nil) and, for Docker's
// default seccomp profile, the kernel version (some system calls are allowed
// only from a given kernel on). Tests pin both with Input.AvailableCaps and
// Input.SeccompDefault.
//
// # Conventions the engine follows
//
//   - Volumes maps a named volume to its host directory. Anonymous volumes
//     (the image's VOLUMEs not covered by a user mount, `-v /dst`, and
//     `--mount type=volume` without a source) are keyed by their
//     destination, which cannot clash with a name since names do not start
//     with "/". A `--mount type=volume,volume-subpath=SUB` is looked up as
//     Volumes["NAME/SUB"]: the engine resolves the subpath inside the volume
//     (safely, not through symlinks the container controls) and passes the
//     resulting host directory.
//   - DeviceNodes holds, for every host path named by --device,
//     --device-read-bps/--device-write-bps/--device-read-iops/
//     --device-write-iops and --blkio-weight-device, the device nodes found
//     there (one for a node, every node below it for a directory).
//     HostDevices is every node under the host's /dev, used only with
//     --privileged.
//   - A `-v SRC:DST` whose SRC is an absolute path is a bind mount of SRC;
//     the engine creates a missing SRC directory, as Docker does, before it
//     calls Generate. A bind is to the inode: a write in place shows on both
//     sides, a file replaced by rename on the host (what most editors do) is
//     not seen by the container, which keeps the old inode.
//
// # What is rendered, in order
//
// Mounts are Docker's defaults (/proc, /dev, /dev/pts, /sys, /sys/fs/cgroup,
// /dev/mqueue, /dev/shm) followed by the engine's /etc files and the user's
// mounts (binds, volumes, tmpfs), the latter sorted by the depth of their
// destination so that a parent is mounted before what goes inside it. A user
// mount on a default destination replaces the default; one on /dev replaces
// everything under /dev as well. Read-only binds are recursively read-only
// ("rro") unless the user asked for a non-recursive one, as in Docker 25+.
//
// Namespaces: mount, network, uts, pid and ipc are new unless a mode says
// "host" (no namespace: the host's) or "container:X" (joined: the path comes
// from Input.Namespaces); cgroup is new unless --cgroupns host; user only
// with --userns. Input.Namespaces overrides any type it lists.
//
// # --userns
//
//	""  or "host"        no user namespace (Docker's only per-container values)
//	"auto"               a new user namespace mapped by Input.IDMap, the range the
//	                     engine allocated for this container (uids and gids alike)
//	"map=C:H:N[,C:H:N]"  a new user namespace with these ranges: container id C
//	                     is host id H, N ids long (uids and gids alike)
//	"container:X"        join X's user namespace (Input.Namespaces["user"])
//
// Like Docker with userns-remap, a user namespace cannot be combined with
// --privileged, --network host or --pid host, and the cgroup mount is left
// writable (a remount read-only is refused in a user namespace).
//
// # --security-opt
//
//	no-new-privileges[=true|false]   (also the legacy ":" separator)
//	seccomp=unconfined | builtin | <profile JSON>  (the CLI reads the file and
//	                                 passes its content, as the docker CLI does)
//	apparmor=PROFILE | unconfined
//	systempaths=unconfined           no masked or read-only /proc and /sys paths
//	label=disable                    accepted; other SELinux labels are refused
package containerspec
