// Package shimtest runs berth-shim end to end, as root: a busybox
// container through the OCI runtime (bin/berth-runtime, or
// BERTH_TEST_RUNTIME=runc|PATH), its exit status, logs, attach, terminal,
// restart policy, OOM report, exit command, the independence of the
// container from the CLI and from the monitor, and the memory of 50 idle
// monitors.
//
// Each test has its own bundle, runtime root, monitor directory and cgroup
// under /berth-shim-test-PID, all removed at the end even on failure. The
// tests build berth-shim themselves; the runtime must be built (`make`).
package shimtest
