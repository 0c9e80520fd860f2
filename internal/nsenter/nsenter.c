// The namespace bootstrap of berth-runtime. See doc.go for the protocol.
//
// This runs as an ELF constructor, before the Go runtime starts any thread,
// because joining a user namespace (setns CLONE_NEWUSER) and a mount
// namespace is refused for a multithreaded process. It does nothing unless
// the _BERTH_INIT environment variable names the bootstrap socket.

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

// Keep in sync with protocol.go.
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

static void send_msg(uint32_t type, const void *data, uint32_t len)
{
	uint32_t hdr[2] = {type, len};
	const char *p = (const char *)hdr;
	size_t left = sizeof(hdr);
	while (left > 0) {
		ssize_t n = write(sync_fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(1);
		p += n;
		left -= n;
	}
	p = data;
	left = len;
	while (left > 0) {
		ssize_t n = write(sync_fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(1);
		p += n;
		left -= n;
	}
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

__attribute__((constructor)) static void berth_nsenter(void)
{
	const char *env = getenv("_BERTH_INIT");
	if (env == NULL || *env == '\0')
		return;
	sync_fd = atoi(env);
	if (sync_fd < 3)
		return;
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
		// there, which the Go side reports when it sets the real user.
		if (setresgid(0, 0, 0) < 0 && errno != EINVAL)
			bail("nsenter: setresgid(0)");
		if (setresuid(0, 0, 0) < 0 && errno != EINVAL)
			bail("nsenter: setresuid(0)");
	}
	if (offsets != NULL)
		write_file("/proc/self/timens_offsets", offsets, strlen(offsets));

	pid_t pid = getpid();
	if (do_fork) {
		// CLONE_PARENT: the init becomes a child of the runtime process,
		// which can wait for it (run, exec) or leave it to its subreaper.
		pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
		if (pid < 0)
			bail("nsenter: clone the init process");
		if (pid > 0) {
			int32_t p = pid;
			send_msg(MSG_PID, &p, sizeof(p));
			_exit(0);
		}
		// The child carries on into the Go runtime; name it for ps (it
		// was exec'd as /proc/self/fd/N).
		prctl(PR_SET_NAME, "berth:init", 0, 0, 0);
		return;
	}
	prctl(PR_SET_NAME, "berth:init", 0, 0, 0);
	int32_t p = pid;
	send_msg(MSG_PID, &p, sizeof(p));
}
