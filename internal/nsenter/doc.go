// Package nsenter is the Go side of berth-runtime's namespace stage: the
// bootstrap protocol with the C program cmd/berth-nsenter, which puts a
// freshly started process into its container's namespaces before any Go
// code runs, and the pinning of the Go init to its main thread. It is the
// only place of berth that changes the namespaces of a process.
//
// A Go program is multithreaded before main runs, and the kernel refuses
// setns(CLONE_NEWUSER) and setns to a mount namespace to a multithreaded
// process. So the namespace work is done by berth-nsenter, a small static C
// program: the runtime starts it (from a sealed, read-only view, like its own
// binary) with the bootstrap socket named in the single environment variable
// _BERTH_INIT and a descriptor of the sealed runtime binary as its argument;
// once in the namespaces it executes that binary (execveat), which sees
// _BERTH_INIT and becomes the init. berth-runtime itself is pure Go (no cgo):
// cgo's static C start-up and thread creation cost every runtime command a
// few milliseconds, which one exec of a small C program per init does not.
//
// The ladder, over one SOCK_STREAM socketpair (every message is a record:
// u32 type, u32 length, payload, native endian):
//
//	runtime (parent)                    berth-nsenter (C)                 init (Go)
//	make the cgroup; start it (clone3
//	CLONE_INTO_CGROUP for cgroup2)
//	bootstrap records, REC_END -------> write "0" to each REC_CGROUP_TASKS
//	                                    (v1 tasks files: moving one's own
//	                                    only thread skips the kernel's
//	                                    global cgroup_threadgroup_rwsem,
//	                                    whose writer waits for an RCU
//	                                    grace period, 5-20 ms when idle)
//	                                    setns each REC_JOIN it can (all
//	                                    opened first), REC_JOIN_USER, then
//	                                    the REC_JOINs left
//	                                    unshare(REC_CLONE_FLAGS)
//	                          <-------- MSG_USERMAP          (new user ns only)
//	write /proc/PID/{uid,gid}_map
//	MSG_USERMAP_ACK ------------------>
//	                                    setresuid/gid(0) in a user ns (where 0
//	                                    is not mapped: its capabilities made
//	                                    ambient to survive the execve)
//	                                    write REC_TIME_OFFSETS
//	                                    REC_FORK: clone(CLONE_PARENT), the
//	                                    child goes on once the parent, which
//	                                    sends this, has exited (a pipe):
//	                          <-------- MSG_PID (host pid of the init)
//	                                    execveat(runtime binary) --------> Init
//	                          <-------- MSG_ERROR text, at any step, then exit(1)
//
// From then on the same socket carries the Go-side protocol of package
// runtime (the init configuration, hook requests, ready and error messages).
//
// An exec'd process that needs nothing only the Go init does (a terminal, a
// seccomp agent, scheduling or I/O priority, a personality, AppArmor or
// SELinux labels) is finished by berth-nsenter itself: the bootstrap then
// carries it as REC_EXEC_* records (Process: argv, environment, working
// directory, user and groups, umask, rlimits, capability sets,
// no_new_privs, the seccomp filter compiled by the runtime, preserved
// descriptors), the runtime binary is not passed ("-" in its place), and
// after MSG_PID the child makes the process in the Go init's order and
// executes the user's program; the parent reads EOF once execve succeeded
// (every descriptor but stdio and the preserved ones is close-on-exec by
// then) or MSG_ERROR, worded as the Go init words it. The Go start-up of the
// runtime binary was most of an exec's time (38.8 -> 28 ms here).
//
// berth-nsenter can be a container's init too (Bootstrap.Create, the
// REC_CREATE record): clone(2) starts it in the container's new namespaces
// (no fork), and the ladder goes on after MSG_PID:
//
//	runtime (parent)                    berth-nsenter as the init (C)
//	                                    keyctl(join "_ses.ID"), setsid,
//	                                    fsopen("proc") per proc mount
//	                          <-------- MSG_PROCFS, the contexts attached
//	a thread of its own: unshare(CLONE_FS), setns into the init's cgroup,
//	IPC, UTS, net and mount namespaces; lo, mounts (proc from the
//	contexts), devices, hostname, sysctls, cwd, masked and read-only
//	paths, pivot_root (the init's root moves too)
//	REC_ROOTFS_DONE ------------------>
//	                                    make the process (as for exec, up to
//	                                    no_new_privs)
//	                          <-------- 204 (the Go init's msgReady), or
//	                                    MSG_ERROR
//	                                    open the exec fifo (blocks until
//	                                    start), write "0", late seccomp,
//	                                    execve; an error goes to the fifo
package nsenter
