// Package runtime turns an OCI bundle into an isolated, limited process and
// manages it through its lifecycle: create, start, state, kill, exec, pause,
// resume, update, delete. It is the library behind cmd/berth-runtime.
//
// # Processes
//
// Every command is a short-lived process. `create` starts the C stage
// berth-nsenter (installed next to the runtime binary) from a sealed,
// read-only view of it (see sealedBinary); it joins and creates the
// namespaces while it is a single thread and executes the runtime binary,
// from a sealed view of that too, as the container's init (package nsenter).
// Where no step needs a single-threaded process, create starts the init
// directly instead (see directPlan). The Go side (Init) builds the root
// filesystem, reports ready and blocks on the exec fifo until `start` opens
// it. `exec` goes the same way into the
// running container's namespaces and cgroup and execs the new process.
//
// # The parent <-> init protocol
//
// After the namespace bootstrap (package nsenter), the same socket carries
// records (u32 type, u32 length, payload):
//
//	parent (create)                              init (Go, in the container's namespaces)
//	msgConfig {initConfig JSON} --------------->
//	                                             mounts (rootfs.Prepare)
//	                            <--------------- msgHooks        (only if prestart/createRuntime hooks)
//	run prestart, createRuntime hooks
//	msgHooksDone | msgError ------------------->
//	                                             createContainer hooks, pivot_root,
//	                                             sysctls, hostname, masked paths,
//	                                             console, user, capabilities, ...
//	                            <--------------- msgReady | msgError
//	record "created", exit
//
//	start                                        init, blocked opening exec.fifo for writing
//	open exec.fifo for reading ----------------> open returns
//	                            <--------------- "0"  (then startContainer hooks, seccomp)
//	                            <--------------- EOF on successful execve (the fifo is
//	                                             close-on-exec), or an error text
//	poststart hooks, return
//
// For exec the parent sends msgConfig with Kind "exec" and then reads until
// EOF (the socket is close-on-exec: EOF means execve succeeded) or msgError.
//
// # State on disk
//
// One directory per container under the root (--root, default
// /run/berth-runtime), mode 0711:
//
//	<root>/<id>/state.json   State, written atomically (temp file + rename)
//	<root>/<id>/config.json  the bundle's config.json as create read it
//	<root>/<id>/seccomp.bpf  the compiled seccomp filter (if any), for exec
//	<root>/<id>/exec.fifo    exists from create until start
//
// Commands that change a container hold an exclusive flock on its
// directory; readers need no lock. The status is not stored: it is derived
// from the kernel each time (is the init alive, with the same start time;
// does the exec fifo still exist; is the cgroup frozen).
package runtime
