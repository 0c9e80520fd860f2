// Package nsenter puts a freshly started runtime process into its container's
// namespaces before the Go runtime starts, and is the only place of berth that
// changes the namespaces or the thread state of a process.
//
// A Go program is multithreaded before main runs, and the kernel refuses
// setns(CLONE_NEWUSER) and setns(CLONE_NEWNS) to a multithreaded process. So
// the namespace work is done by a small C constructor (nsenter.c) that runs
// before the Go runtime, in a child the runtime started by re-executing its
// own binary with the bootstrap socket named in the single environment
// variable _BERTH_INIT. Importing this package links the constructor in; it
// does nothing in a process without that variable.
//
// The ladder, over one SOCK_STREAM socketpair (every message is a record:
// u32 type, u32 length, payload, native endian):
//
//	runtime (parent)                    stage0 (C constructor)            init (Go)
//	start child, add it to the cgroup
//	bootstrap records, REC_END -------> setns each REC_JOIN it can (all
//	                                    opened first), REC_JOIN_USER, then
//	                                    the REC_JOINs left
//	                                    unshare(REC_CLONE_FLAGS)
//	                          <-------- MSG_USERMAP          (new user ns only)
//	write /proc/PID/{uid,gid}_map
//	MSG_USERMAP_ACK ------------------>
//	                                    setresuid/gid(0) in a user ns
//	                                    write REC_TIME_OFFSETS
//	                                    REC_FORK: clone(CLONE_PARENT) ---> (carries on into Go)
//	                          <-------- MSG_PID (host pid of the init); stage0 exits
//	                                    without REC_FORK stage0 itself carries on into Go
//	                          <-------- MSG_ERROR text, at any step, then exit(1)
//
// From then on the same socket carries the Go-side protocol of package
// runtime (the init configuration, hook requests, ready and error messages).
package nsenter
