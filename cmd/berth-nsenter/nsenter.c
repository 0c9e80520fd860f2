// berth-nsenter is the namespace stage of berth-runtime: the one part of the
// runtime in C, a small static program that the runtime starts (from a sealed,
// read-only view of this file) for every container init and exec process. It
// joins and creates the process's namespaces while it is still a single
// thread, which a Go program never is (the kernel refuses setns(CLONE_NEWUSER)
// and setns to a mount namespace to a multithreaded process), and then
// executes the runtime binary, passed as a descriptor, as the Go side of the
// init. The protocol is described in internal/nsenter/doc.go.
//
// Usage (by berth-runtime only): berth-nsenter EXE_FD, with _BERTH_INIT=SYNC_FD
// in the environment. EXE_FD is the sealed runtime binary; SYNC_FD the
// bootstrap socket, which the runtime binary inherits under the same name.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

// Keep in sync with internal/nsenter/nsenter.go.
enum {
	REC_CLONE_FLAGS = 1,  // u32: namespaces to unshare after the joins
	REC_JOIN = 2,         // string: path of a namespace to join, in order
	REC_TIME_OFFSETS = 3, // string: written to /proc/self/timens_offsets
	REC_FORK = 4,         // u32: 1 = fork so that the child enters pid/time namespaces
	REC_END = 5,          // end of the bootstrap
	REC_JOIN_USER = 6,    // string: path of the user namespace to join, before any other
};
enum {
	MSG_USERMAP = 101, // stage0 -> parent: write my uid/gid maps
	MSG_USERMAP_ACK = 102,
	MSG_PID = 103,   // stage0 -> parent: i32 pid of the init (host view)
	MSG_ERROR = 104, // stage0 -> parent: string
};

#define MAX_JOINS 16
#define MAX_REC 4096

static int sync_fd = -1;

// write_full writes all of buf to the parent, or ends the process: with
// the parent gone there is no one to report to.
static void write_full(const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(sync_fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(1);
		p += n;
		len -= n;
	}
}

static void send_msg(uint32_t type, const void *data, uint32_t len)
{
	uint32_t hdr[2] = {type, len};
	write_full(hdr, sizeof(hdr));
	write_full(data, len);
}

__attribute__((noreturn, format(printf, 1, 2))) static void bail(const char *fmt, ...)
{
	char buf[512];
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 64, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof(buf) - 64)
		n = sizeof(buf) - 64;
	if (saved != 0)
		n += snprintf(buf + n, 64, ": %s", strerror(saved));
	if (sync_fd >= 0)
		send_msg(MSG_ERROR, buf, n);
	_exit(1);
}

static int read_full(void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(sync_fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		bail("nsenter: open %s", path);
	if (write(fd, data, len) != (ssize_t)len)
		bail("nsenter: write %s", path);
	close(fd);
}

// keep_caps_across_exec raises every capability we hold into the ambient set,
// so that a process whose uid is not 0 in its user namespace keeps them over
// execve (the Go side sets the container's own sets before its execve).
static void keep_caps_across_exec(void)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	if (syscall(SYS_capget, &hdr, data) < 0)
		bail("nsenter: capget");
	data[0].inheritable = data[0].permitted;
	data[1].inheritable = data[1].permitted;
	if (syscall(SYS_capset, &hdr, data) < 0)
		bail("nsenter: capset");
	for (int cap = 0; cap < 64; cap++) {
		uint32_t bit = 1u << (cap % 32);
		if (!(data[cap / 32].permitted & bit))
			continue;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0 && errno != EINVAL)
			bail("nsenter: raise ambient capability %d", cap);
	}
}

// exec_runtime becomes the Go side of the init: the sealed runtime binary,
// with the bootstrap socket named in its environment. The init is one
// sequential thread of work: one P spares the Go runtime the set-up of the
// others (~1 ms of its start on a 2-CPU VM). The container's process gets
// its own environment from the config, not this one.
__attribute__((noreturn)) static void exec_runtime(int exe_fd, char **envp)
{
	char *argv[] = {"berth-runtime", "init", NULL};
	char *env[3] = {NULL, "GOMAXPROCS=1", NULL};
	for (char **e = envp; *e != NULL; e++) {
		if (strncmp(*e, "_BERTH_INIT=", 12) == 0)
			env[0] = *e;
	}
	if (env[0] == NULL)
		_exit(1);
	syscall(SYS_execveat, exe_fd, "", argv, env, AT_EMPTY_PATH);
	bail("nsenter: execute the runtime binary");
}

int main(int argc, char **argv, char **envp)
{
	const char *env = getenv("_BERTH_INIT");
	if (env == NULL || *env == '\0' || argc != 2) {
		fprintf(stderr, "berth-nsenter is started by berth-runtime only\n");
		return 2;
	}
	sync_fd = atoi(env);
	int exe_fd = atoi(argv[1]);
	if (sync_fd < 3 || exe_fd < 3) {
		fprintf(stderr, "berth-nsenter: bad descriptors\n");
		return 2;
	}
	// The runtime binary must not stay open in the process it becomes.
	if (fcntl(exe_fd, F_SETFD, FD_CLOEXEC) < 0)
		bail("nsenter: runtime binary descriptor %d", exe_fd);
	prctl(PR_SET_NAME, "berth:nsenter", 0, 0, 0);

	uint32_t flags = 0, do_fork = 0;
	char *joins[MAX_JOINS];
	int njoins = 0;
	char *offsets = NULL;
	char *userns = NULL;

	for (;;) {
		uint32_t hdr[2];
		if (read_full(hdr, sizeof(hdr)) < 0)
			_exit(1); // the parent went away: nothing to report to
		if (hdr[0] == REC_END)
			break;
		if (hdr[1] > MAX_REC)
			bail("nsenter: bootstrap record %u too long (%u bytes)", hdr[0], hdr[1]);
		char *data = calloc(1, hdr[1] + 1);
		if (data == NULL || read_full(data, hdr[1]) < 0)
			_exit(1);
		switch (hdr[0]) {
		case REC_CLONE_FLAGS:
			memcpy(&flags, data, sizeof(flags));
			free(data);
			break;
		case REC_FORK:
			memcpy(&do_fork, data, sizeof(do_fork));
			free(data);
			break;
		case REC_JOIN:
			if (njoins == MAX_JOINS)
				bail("nsenter: too many namespaces to join");
			joins[njoins++] = data;
			break;
		case REC_JOIN_USER:
			userns = data;
			break;
		case REC_TIME_OFFSETS:
			offsets = data;
			break;
		default:
			errno = 0;
			bail("nsenter: unknown bootstrap record %u", hdr[0]);
		}
	}

	// Open every namespace first: once we are in the container's mount
	// namespace, host paths like /proc/1234/ns/net or /var/run/netns/x
	// would no longer resolve.
	int fds[MAX_JOINS];
	for (int i = 0; i < njoins; i++) {
		fds[i] = open(joins[i], O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0)
			bail("nsenter: open namespace %s", joins[i]);
	}
	int userfd = -1;
	if (userns != NULL) {
		userfd = open(userns, O_RDONLY | O_CLOEXEC);
		if (userfd < 0)
			bail("nsenter: open user namespace %s", userns);
		// A namespace owned by an ancestor of the container's user
		// namespace (the network namespace the engine made before the
		// container, as Docker's daemon does) can only be joined from
		// outside it: join what we can first, the rest once inside.
		for (int i = 0; i < njoins; i++) {
			if (setns(fds[i], 0) == 0) {
				close(fds[i]);
				fds[i] = -1;
			}
		}
		// The user namespace before the others left, so that we hold
		// capabilities over the namespaces it owns.
		if (setns(userfd, CLONE_NEWUSER) < 0)
			bail("nsenter: join user namespace %s", userns);
		close(userfd);
	}
	for (int i = 0; i < njoins; i++) {
		if (fds[i] < 0)
			continue;
		if (setns(fds[i], 0) < 0)
			bail("nsenter: join namespace %s", joins[i]);
		close(fds[i]);
	}

	if (flags != 0) {
		if (unshare(flags) < 0)
			bail("nsenter: unshare namespaces (flags %#x)", flags);
		if (flags & CLONE_NEWUSER) {
			uint32_t hdr[2];
			send_msg(MSG_USERMAP, NULL, 0);
			if (read_full(hdr, sizeof(hdr)) < 0 || hdr[0] != MSG_USERMAP_ACK || hdr[1] != 0)
				_exit(1);
		}
	}
	if ((flags & CLONE_NEWUSER) || userns != NULL) {
		// Become root of the (possibly new) user namespace; the Go side
		// switches to the process user. EINVAL means uid 0 is not mapped
		// there, which the Go side reports when it sets the real user;
		// until then the capabilities we hold in the namespace must
		// survive the execve of the runtime, as ambient capabilities.
		int unmapped = 0;
		if (setresgid(0, 0, 0) < 0) {
			if (errno != EINVAL)
				bail("nsenter: setresgid(0)");
			unmapped = 1;
		}
		if (setresuid(0, 0, 0) < 0) {
			if (errno != EINVAL)
				bail("nsenter: setresuid(0)");
			unmapped = 1;
		}
		if (unmapped)
			keep_caps_across_exec();
	}
	if (offsets != NULL)
		write_file("/proc/self/timens_offsets", offsets, strlen(offsets));

	if (do_fork) {
		// CLONE_PARENT: the init becomes a child of the runtime process,
		// which can wait for it (run, exec) or leave it to its subreaper.
		pid_t pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
		if (pid < 0)
			bail("nsenter: clone the init process");
		if (pid > 0) {
			int32_t p = pid;
			send_msg(MSG_PID, &p, sizeof(p));
			_exit(0);
		}
	} else {
		int32_t p = getpid();
		send_msg(MSG_PID, &p, sizeof(p));
	}
	exec_runtime(exe_fd, envp);
}
