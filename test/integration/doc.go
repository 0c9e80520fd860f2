// Package integration is the OCI runtime conformance suite: it drives an OCI
// runtime binary through runc's command line on real bundles, as root, and
// observes each feature from inside the container (busybox in the rootfs)
// and from the host.
//
// The runtime under test is chosen with BERTH_TEST_RUNTIME, a path or one of
// the names runc and crun; by default it is <repo>/bin/berth-runtime (built
// by `make`). Without root every test skips. See README.md for the feature
// table and for which reference runtime passes what.
//
// crun 1.8 refuses this project's hybrid cgroup hosts ("cgroups in hybrid
// mode not supported"), so every crun invocation runs in its own mount
// namespace where /sys/fs/cgroup/unified is unmounted:
//
//	unshare --mount --propagation unchanged sh -c \
//	  'mount --make-rprivate /sys/fs/cgroup && umount /sys/fs/cgroup/unified && exec "$0" "$@"' crun ARGS...
//
// The propagation of the other mounts is left unchanged so that mount
// propagation tests see crun as it runs on a host; /sys/fs/cgroup is made
// private first so that the umount cannot reach the host. unshare and sh
// exec in place, so the pid the suite sees is crun's.
package integration
