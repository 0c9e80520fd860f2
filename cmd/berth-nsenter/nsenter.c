// berth-nsenter is the namespace stage of berth-runtime: the one part of the
// runtime in C, a small static program that the runtime starts (from a sealed,
// read-only view of this file) for every container init and exec process. It
// joins and creates the process's namespaces while it is still a single
// thread, which a Go program never is (the kernel refuses setns(CLONE_NEWUSER)
// and setns to a mount namespace to a multithreaded process), and then
// executes the runtime binary, passed as a descriptor, as the Go side of the
// init. For an exec'd process that needs nothing the Go side alone does (a
// terminal, a seccomp agent, scheduling, labels), it finishes the process
// itself and executes the user's program directly (finish_exec): the Go
// start-up of the runtime binary was most of an exec's time. The protocol is
// described in internal/nsenter/doc.go.
//
// Usage (by berth-runtime only): berth-nsenter EXE_FD, with _BERTH_INIT=SYNC_FD
// in the environment. EXE_FD is the sealed runtime binary ("-" when the
// bootstrap carries the process to exec); SYNC_FD the bootstrap socket, which
// the runtime binary inherits under the same name.

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
#include <linux/keyctl.h>
#include <linux/mount.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
	// The process to exec (finish_exec); REC_EXEC_ARGV makes it one.
	REC_EXEC_ARGV = 7,     // NUL-terminated strings: the arguments
	REC_EXEC_ENV = 8,      // NUL-terminated strings: the environment
	REC_EXEC_CWD = 9,      // string: the working directory, inside the root
	REC_EXEC_USER = 10,    // u32 uid, gid, umask (UMASK_KEEP: keep), count, then the additional gids
	REC_EXEC_RLIMIT = 11,  // u32 resource, u32 index in process.rlimits, u64 soft, u64 hard
	REC_EXEC_CAPS = 12,    // u32 last cap, u32 0, u64 bounding, effective, permitted, inheritable, ambient
	REC_EXEC_NNP = 13,     // (empty) set no_new_privs
	REC_EXEC_SECCOMP = 14, // u32 filter flags, u32 0, then the BPF program
	REC_EXEC_PRESERVE = 15, // u32 descriptors from 3 on that the process keeps
	// A container init (finish_create): u32 exec fifo descriptor (O_PATH),
	// u32 number of procfs contexts to make, then the session keyring's
	// name ("" for none).
	REC_CREATE = 16,
	REC_ROOTFS_DONE = 17, // parent -> init: the rootfs is in place, "/" pivoted
	// string: a v1 cgroup "tasks" file to move ourselves into (writing "0"),
	// first of all: a single thread's own move skips the kernel's global
	// cgroup_threadgroup_rwsem, which a cgroup.procs write takes.
	REC_CGROUP_TASKS = 18,
	// process.terminal: u32 the console socket's descriptor, u16 rows,
	// u16 columns (process.consoleSize; 0: leave)
	REC_EXEC_CONSOLE = 19,
};
#define UMASK_KEEP 0xffffffffu
enum {
	MSG_USERMAP = 101, // stage0 -> parent: write my uid/gid maps
	MSG_USERMAP_ACK = 102,
	MSG_PID = 103,   // stage0 -> parent: i32 pid of the init (host view)
	MSG_ERROR = 104, // stage0 -> parent: string
	MSG_PROCFS = 105, // init -> parent: u32 count, the fsopen("proc") descriptors attached
	MSG_READY = 204,  // init -> parent: the process is made, waiting for start (the Go side's msgReady)
};

#define MAX_JOINS 16
#define MAX_REC (1 << 20)
#define MAX_RLIMITS 32
#define MAX_PROCFS 8
#define MAX_TASKS 32

static int sync_fd = -1;
// fifo_fd, once set, is the exec fifo opened by start: errors go there as
// plain text, as the Go init writes them.
static int fifo_fd = -1;

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

// report sends fmt's message, then ": " and err's text unless err is 0, as
// MSG_ERROR and ends the process. go_words words err as Go does (lower
// case: "no such file or directory"), for messages that stand where the Go
// init's would.
__attribute__((noreturn, format(printf, 3, 0))) static void report(int err, int go_words, const char *fmt, va_list ap)
{
	char buf[1024];
	int n = vsnprintf(buf, sizeof(buf) - 128, fmt, ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof(buf) - 128)
		n = sizeof(buf) - 128;
	if (err != 0) {
		int m = snprintf(buf + n, 128, ": %s", strerror(err));
		if (go_words && m > 2 && buf[n + 2] >= 'A' && buf[n + 2] <= 'Z')
			buf[n + 2] += 'a' - 'A';
		n += m < 128 ? m : 127;
	}
	if (fifo_fd >= 0) {
		if (write(fifo_fd, buf, n) < 0) {
			// start sees the bare "0" and says the process did not start
		}
	} else if (sync_fd >= 0) {
		send_msg(MSG_ERROR, buf, n);
	}
	_exit(1);
}

// bail reports a failure of the namespace stage, with errno's text.
__attribute__((noreturn, format(printf, 1, 2))) static void bail(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	report(saved, 0, fmt, ap);
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

// The process finish_exec makes, from the REC_EXEC_* records.
struct exec_proc {
	char **argv, **envp;
	char *cwd;
	uint32_t uid, gid, umask, ngroups;
	gid_t *groups;
	int nrlimits;
	struct {
		uint32_t resource, index;
		struct rlimit lim;
	} rlimits[MAX_RLIMITS];
	int have_caps;
	uint32_t last_cap;
	uint64_t bounding, effective, permitted, inheritable, ambient;
	int nnp;
	int have_seccomp;
	uint32_t seccomp_flags;
	struct sock_fprog seccomp;
	uint32_t preserve;
	int console; // the console socket with process.terminal, else -1
	uint16_t rows, cols;
};

// fail reports a failure to make the exec'd process, worded as the Go init
// words it ("...: no such file or directory").
__attribute__((noreturn, format(printf, 2, 3))) static void fail(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(err, 1, fmt, ap);
}

// strings splits NUL-terminated strings into a NULL-terminated vector.
static char **strings(char *data, uint32_t len)
{
	size_t n = 0;
	for (uint32_t i = 0; i < len; i++)
		n += data[i] == '\0';
	char **v = calloc(n + 1, sizeof(char *));
	if (v == NULL)
		_exit(1);
	size_t k = 0;
	for (uint32_t i = 0; i < len && k < n; k++) {
		v[k] = data + i;
		i += strlen(data + i) + 1;
	}
	return v;
}

static uint32_t get32(const char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t get64(const char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

// exec_record takes one REC_EXEC_* record into x; it reports whether typ was
// one. data stays referenced.
static int exec_record(struct exec_proc *x, uint32_t typ, char *data, uint32_t len)
{
	switch (typ) {
	case REC_EXEC_ARGV:
		x->argv = strings(data, len);
		return 1;
	case REC_EXEC_ENV:
		x->envp = strings(data, len);
		return 1;
	case REC_EXEC_CWD:
		x->cwd = data;
		return 1;
	case REC_EXEC_USER:
		if (len < 16 || (len - 16) / 4 != get32(data + 12) || (len - 16) % 4 != 0)
			bail("nsenter: bad user record");
		x->uid = get32(data), x->gid = get32(data + 4), x->umask = get32(data + 8);
		x->ngroups = get32(data + 12);
		x->groups = calloc(x->ngroups + 1, sizeof(gid_t));
		if (x->groups == NULL)
			_exit(1);
		for (uint32_t i = 0; i < x->ngroups; i++)
			x->groups[i] = get32(data + 16 + 4 * i);
		return 1;
	case REC_EXEC_RLIMIT:
		if (len != 24 || x->nrlimits == MAX_RLIMITS)
			bail("nsenter: bad rlimit record");
		x->rlimits[x->nrlimits].resource = get32(data);
		x->rlimits[x->nrlimits].index = get32(data + 4);
		x->rlimits[x->nrlimits].lim.rlim_cur = get64(data + 8);
		x->rlimits[x->nrlimits].lim.rlim_max = get64(data + 16);
		x->nrlimits++;
		return 1;
	case REC_EXEC_CAPS:
		if (len != 48)
			bail("nsenter: bad capabilities record");
		x->have_caps = 1;
		x->last_cap = get32(data);
		x->bounding = get64(data + 8), x->effective = get64(data + 16), x->permitted = get64(data + 24);
		x->inheritable = get64(data + 32), x->ambient = get64(data + 40);
		return 1;
	case REC_EXEC_NNP:
		x->nnp = 1;
		return 1;
	case REC_EXEC_SECCOMP:
		if (len < 8 + sizeof(struct sock_filter) || (len - 8) % sizeof(struct sock_filter) != 0 ||
		    (len - 8) / sizeof(struct sock_filter) > BPF_MAXINSNS)
			bail("nsenter: bad seccomp record");
		x->have_seccomp = 1;
		x->seccomp_flags = get32(data);
		x->seccomp.len = (len - 8) / sizeof(struct sock_filter);
		x->seccomp.filter = (struct sock_filter *)(data + 8); // calloc'd: aligned
		return 1;
	case REC_EXEC_PRESERVE:
		if (len != 4)
			bail("nsenter: bad preserve record");
		x->preserve = get32(data);
		return 1;
	case REC_EXEC_CONSOLE:
		if (len != 8)
			bail("nsenter: bad console record");
		x->console = (int)get32(data);
		memcpy(&x->rows, data + 4, 2);
		memcpy(&x->cols, data + 6, 2);
		return 1;
	}
	return 0;
}

// executable is Go's check of a candidate program: it exists (following
// links), is not a directory and has an execute bit.
static int executable(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return errno;
	if (S_ISDIR(st.st_mode))
		return EISDIR;
	if ((st.st_mode & 0111) == 0)
		return EACCES;
	return 0;
}

// look_path finds the program to run the way the Go side's lookPath does:
// a name with a slash as it is, else the first executable match along the
// container's PATH.
static char *look_path(const char *name, char **envp)
{
	if (strchr(name, '/') != NULL) {
		int err = executable(name);
		if (err == ENOENT || err == ENOTDIR)
			fail(err, "exec: \"%s\": stat %s", name, name);
		if (err == EISDIR)
			fail(0, "exec: \"%s\": is a directory", name);
		if (err != 0)
			fail(err, "exec: \"%s\"", name);
		return (char *)name;
	}
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (char **e = envp; *e != NULL; e++) {
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	}
	for (const char *p = path;; p++) {
		const char *end = strchr(p, ':');
		size_t dlen = end != NULL ? (size_t)(end - p) : strlen(p);
		char *cand = malloc(dlen + strlen(name) + 3);
		if (cand == NULL)
			_exit(1);
		if (dlen == 0)
			sprintf(cand, "%s", name); // an empty entry is the working directory
		else
			sprintf(cand, "%.*s/%s", (int)dlen, p, name);
		if (executable(cand) == 0)
			return cand;
		free(cand);
		if (end == NULL)
			break;
		p = end;
	}
	fail(0, "exec: \"%s\": executable file not found in $PATH", name);
}

// chdir_in_root changes to cwd resolved inside the container's root (we are
// in its mount namespace): no symlink or magic link such as /proc/self/fd/N
// leads out of it (the leaked-fd escape, CVE-2024-21626).
static void chdir_in_root(const char *cwd)
{
	int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		fail(errno, "process.cwd \"%s\"", cwd);
	struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
	int fd;
	do
		fd = syscall(SYS_openat2, root, cwd, &how, sizeof(how));
	while (fd < 0 && (errno == EAGAIN || errno == EINTR));
	if (fd < 0 && errno == ENOSYS) {
		// Before Linux 5.6. No host directory of the runtime is open
		// here (stdio, the preserved descriptors and ours only), so the
		// magic links of /proc/self/fd lead nowhere the process could
		// not go anyway; the getcwd check below still catches a cwd
		// outside the root.
		if (chdir(cwd) < 0)
			fail(errno, "process.cwd \"%s\"", cwd);
	} else {
		if (fd < 0)
			fail(errno, "process.cwd \"%s\": openat2 %s", cwd, cwd);
		if (fchdir(fd) < 0)
			fail(errno, "process.cwd \"%s\"", cwd);
		close(fd);
	}
	close(root);
	char wd[2];
	if (getcwd(wd, sizeof(wd)) == NULL && errno != ERANGE)
		fail(0, "process.cwd \"%s\": resolves outside the container", cwd);
}

static void load_seccomp(struct exec_proc *x)
{
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, x->seccomp_flags, &x->seccomp) != 0)
		fail(errno, "linux.seccomp: seccomp(SECCOMP_SET_MODE_FILTER, flags %#x)", x->seccomp_flags);
}

// set_caps sets the effective, permitted and inheritable sets, then the
// ambient one (only what is permitted and inheritable, as runc does).
static void set_caps(struct exec_proc *x)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2] = {
		{(uint32_t)x->effective, (uint32_t)x->permitted, (uint32_t)x->inheritable},
		{(uint32_t)(x->effective >> 32), (uint32_t)(x->permitted >> 32), (uint32_t)(x->inheritable >> 32)},
	};
	if (syscall(SYS_capset, &hdr, data) < 0)
		fail(errno, "process.capabilities: set capabilities");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		fail(errno, "process.capabilities: clear ambient capabilities");
	for (uint32_t c = 0; c <= x->last_cap && c < 64; c++) {
		uint64_t bit = 1ull << c;
		if (!(x->ambient & bit) || !(x->permitted & bit) || !(x->inheritable & bit))
			continue;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
			fail(errno, "process.capabilities: raise ambient capability %u (it must be permitted and inheritable)", c);
	}
}

// rlimit_name is a resource's name in process.rlimits, for messages.
static const char *rlimit_name(uint32_t res)
{
	static const char *names[] = {
		[RLIMIT_CPU] = "RLIMIT_CPU", [RLIMIT_FSIZE] = "RLIMIT_FSIZE", [RLIMIT_DATA] = "RLIMIT_DATA",
		[RLIMIT_STACK] = "RLIMIT_STACK", [RLIMIT_CORE] = "RLIMIT_CORE", [RLIMIT_RSS] = "RLIMIT_RSS",
		[RLIMIT_NPROC] = "RLIMIT_NPROC", [RLIMIT_NOFILE] = "RLIMIT_NOFILE", [RLIMIT_MEMLOCK] = "RLIMIT_MEMLOCK",
		[RLIMIT_AS] = "RLIMIT_AS", [RLIMIT_LOCKS] = "RLIMIT_LOCKS", [RLIMIT_SIGPENDING] = "RLIMIT_SIGPENDING",
		[RLIMIT_MSGQUEUE] = "RLIMIT_MSGQUEUE", [RLIMIT_NICE] = "RLIMIT_NICE", [RLIMIT_RTPRIO] = "RLIMIT_RTPRIO",
		[RLIMIT_RTTIME] = "RLIMIT_RTTIME",
	};
	if (res < sizeof(names) / sizeof(names[0]) && names[res] != NULL)
		return names[res];
	return "?";
}

// prepare_proc makes this process the one to execute, in the order the Go
// init uses (internal/runtime/process.go, prepareProcess): limits, umask,
// program lookup, working directory, early seccomp, bounding set, user,
// capabilities, no_new_privs. It returns the program's path; exec_proc
// does the rest.
// setup_console makes a new pty in the container's devpts (our root is
// the container's by now), sends its master over the console socket as
// the Go init does (internal/console: SCM_RIGHTS, the name as payload), and
// makes its slave our stdio and controlling terminal (we lead a session).
static void setup_console(struct exec_proc *x)
{
	int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		fail(errno, "process.terminal: open /dev/ptmx");
	int unlock = 0;
	if (ioctl(m, TIOCSPTLCK, &unlock) < 0)
		fail(errno, "process.terminal: unlock pty");
	// TIOCGPTPEER opens the slave through the master: no path in the
	// container's /dev/pts can be swapped under us.
	int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0)
		fail(errno, "process.terminal: open pty slave");
	if (x->rows != 0 || x->cols != 0) {
		struct winsize ws = {.ws_row = x->rows, .ws_col = x->cols};
		if (ioctl(s, TIOCSWINSZ, &ws) < 0)
			fail(errno, "process.consoleSize");
	}
	char name[] = "/dev/ptmx";
	struct iovec iov = {name, sizeof(name) - 1};
	char cbuf[CMSG_SPACE(sizeof(int))];
	memset(cbuf, 0, sizeof(cbuf));
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &m, sizeof(int));
	ssize_t r;
	do
		r = sendmsg(x->console, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		fail(errno, "send /dev/ptmx over the console socket");
	close(m);
	close(x->console);
	for (int fd = 0; fd < 3; fd++)
		if (dup3(s, fd, 0) < 0)
			fail(errno, "process.terminal: dup pty");
	if (s > 2)
		close(s);
	if (ioctl(0, TIOCSCTTY, 0) < 0)
		fail(errno, "process.terminal: set controlling terminal");
}

static char *prepare_proc(struct exec_proc *x)
{
	if (x->argv == NULL || x->argv[0] == NULL || x->cwd == NULL)
		bail("nsenter: incomplete process");
	if (x->console >= 0)
		setup_console(x);
	if (x->envp == NULL)
		x->envp = strings("", 0);
	for (int i = 0; i < x->nrlimits; i++) {
		if (prlimit(0, x->rlimits[i].resource, &x->rlimits[i].lim, NULL) < 0) {
			int err = errno;
			if (err == EPERM) {
				struct rlimit cur = {0, 0};
				prlimit(0, x->rlimits[i].resource, NULL, &cur);
				fail(err, "process.rlimits[%u] (%s): raising the hard limit from %llu to %llu needs CAP_SYS_RESOURCE",
				     x->rlimits[i].index, rlimit_name(x->rlimits[i].resource), (unsigned long long)cur.rlim_max,
				     (unsigned long long)x->rlimits[i].lim.rlim_max);
			}
			fail(err, "process.rlimits[%u] (%s)", x->rlimits[i].index, rlimit_name(x->rlimits[i].resource));
		}
	}
	if (x->umask != UMASK_KEEP)
		umask(x->umask);
	char *path = look_path(x->argv[0], x->envp);
	chdir_in_root(x->cwd);
	// Without no_new_privs a filter needs CAP_SYS_ADMIN: load it while we
	// have it; with it, as late as possible.
	if (x->have_seccomp && !x->nnp)
		load_seccomp(x);
	if (x->have_caps) {
		for (uint32_t c = 0; c <= x->last_cap && c < 64; c++) {
			if (x->bounding & (1ull << c))
				continue;
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
				fail(errno, "process.capabilities.bounding: drop capability %u from the bounding set", c);
		}
	}
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		fail(errno, "keep capabilities");
	if (syscall(SYS_setgroups, x->ngroups, x->groups) < 0 && !(errno == EPERM && x->ngroups == 0))
		fail(errno, "process.user.additionalGids");
	if (syscall(SYS_setresgid, x->gid, x->gid, x->gid) < 0)
		fail(errno, "process.user.gid %u", x->gid);
	if (syscall(SYS_setresuid, x->uid, x->uid, x->uid) < 0)
		fail(errno, "process.user.uid %u", x->uid);
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		fail(errno, "clear keep capabilities");
	if (x->have_caps)
		set_caps(x);
	if (x->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail(errno, "process.noNewPrivileges");
	return path;
}

// exec_proc is the end of the Go init's finish: the late seccomp filter,
// the descriptors, execve.
__attribute__((noreturn)) static void exec_proc(struct exec_proc *x, char *path)
{
	if (x->have_seccomp && x->nnp)
		load_seccomp(x);
	// Nothing of the runtime may leak into the container: every descriptor
	// above stdio and the preserved ones (the bootstrap socket too) is
	// closed by execve.
	if (syscall(SYS_close_range, 3 + x->preserve, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
		fail(errno, "close runtime file descriptors");
	execve(path, x->argv, x->envp);
	fail(errno, "exec %s", path);
}

// finish_exec makes this process the exec'd one and executes it. The
// parent reads EOF on the bootstrap socket once execve succeeded.
__attribute__((noreturn)) static void finish_exec(struct exec_proc *x)
{
	prctl(PR_SET_NAME, "berth:exec", 0, 0, 0);
	// A terminal is the controlling one of a session of its own (the
	// container's init made its own at create).
	if (x->console >= 0 && setsid() < 0)
		fail(errno, "setsid");
	exec_proc(x, prepare_proc(x));
}

// A container init that berth-nsenter finishes itself (REC_CREATE): the
// runtime builds the root filesystem from a thread of its own in our mount
// namespace and pivots into it, which moves our root too.
struct create {
	int on;
	int fifo;          // the exec fifo, O_PATH
	uint32_t nprocfs;  // procfs contexts to make for the runtime
	char *keyring;     // session keyring to join ("" for none)
};

// send_fds sends MSG_PROCFS with fds attached.
static void send_fds(int *fds, uint32_t n)
{
	uint32_t msg[3] = {MSG_PROCFS, 4, n};
	struct iovec iov = {msg, sizeof(msg)};
	char cbuf[CMSG_SPACE(sizeof(int) * MAX_PROCFS)];
	memset(cbuf, 0, sizeof(cbuf));
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (n > 0) {
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	}
	ssize_t r;
	do
		r = sendmsg(sync_fd, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r != (ssize_t)sizeof(msg))
		_exit(1);
}

// start_create does what the Go init does before its rootfs work that
// only the container's own process can: the session keyring, a new
// session, and procfs contexts of its pid namespace (a procfs shows the
// pid namespace of its mounter, and the runtime's thread is not in ours).
static void start_create(struct create *cr)
{
	if (cr->keyring[0] != '\0' && syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, cr->keyring) < 0 && errno != ENOSYS)
		fail(errno, "join session keyring");
	if (setsid() < 0)
		fail(errno, "setsid");
	int fds[MAX_PROCFS];
	for (uint32_t i = 0; i < cr->nprocfs; i++) {
		fds[i] = syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC);
		if (fds[i] < 0)
			bail("nsenter: fsopen proc");
	}
	send_fds(fds, cr->nprocfs);
	for (uint32_t i = 0; i < cr->nprocfs; i++)
		close(fds[i]);
}

// finish_create waits for the runtime's rootfs, makes the process, reports
// ready and waits on the exec fifo for start, as the Go init does
// (internal/runtime/init.go, initContainer).
__attribute__((noreturn)) static void finish_create(struct exec_proc *x, struct create *cr)
{
	prctl(PR_SET_NAME, "berth:init", 0, 0, 0);
	uint32_t hdr[2];
	if (read_full(hdr, sizeof(hdr)) < 0 || hdr[0] != REC_ROOTFS_DONE || hdr[1] != 0)
		_exit(1); // the runtime failed, and reports it, or went away
	char *path = prepare_proc(x);
	send_msg(MSG_READY, NULL, 0);
	close(sync_fd);
	sync_fd = -1;
	// Blocks until start opens the read end. The process user opens it:
	// the fifo is 0622.
	char name[32];
	snprintf(name, sizeof(name), "/proc/self/fd/%d", cr->fifo);
	int fd;
	do
		fd = open(name, O_WRONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		_exit(1);
	close(cr->fifo);
	if (write(fd, "0", 1) != 1)
		_exit(1);
	fifo_fd = fd;
	exec_proc(x, path);
}

int main(int argc, char **argv, char **envp)
{
	const char *env = getenv("_BERTH_INIT");
	if (env == NULL || *env == '\0' || argc != 2) {
		fprintf(stderr, "berth-nsenter is started by berth-runtime only\n");
		return 2;
	}
	sync_fd = atoi(env);
	int exe_fd = strcmp(argv[1], "-") == 0 ? -1 : atoi(argv[1]);
	if (sync_fd < 3 || (exe_fd < 3 && exe_fd != -1)) {
		fprintf(stderr, "berth-nsenter: bad descriptors\n");
		return 2;
	}
	// The runtime binary must not stay open in the process it becomes.
	if (exe_fd >= 0 && fcntl(exe_fd, F_SETFD, FD_CLOEXEC) < 0)
		bail("nsenter: runtime binary descriptor %d", exe_fd);
	prctl(PR_SET_NAME, "berth:nsenter", 0, 0, 0);

	uint32_t flags = 0, do_fork = 0;
	char *joins[MAX_JOINS];
	int njoins = 0;
	char *offsets = NULL;
	char *userns = NULL;
	struct exec_proc x = {.umask = UMASK_KEEP, .console = -1};
	struct create cr = {0};
	char *tasks[MAX_TASKS];
	int ntasks = 0;

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
		case REC_CGROUP_TASKS:
			if (ntasks == MAX_TASKS)
				bail("nsenter: too many cgroup hierarchies");
			tasks[ntasks++] = data;
			break;
		case REC_CREATE:
			if (hdr[1] < 8 || get32(data + 4) > MAX_PROCFS)
				bail("nsenter: bad create record");
			cr.on = 1;
			cr.fifo = get32(data);
			cr.nprocfs = get32(data + 4);
			cr.keyring = data + 8; // calloc'd one longer: NUL-terminated
			break;
		default:
			if (exec_record(&x, hdr[0], data, hdr[1]))
				break;
			errno = 0;
			bail("nsenter: unknown bootstrap record %u", hdr[0]);
		}
	}

	// Into the container's cgroups before anything else: before a user
	// namespace, in which the host's cgroup files may be out of reach,
	// and before a cgroup namespace, which is rooted where we are. "0"
	// moves the writing thread, our only one.
	for (int i = 0; i < ntasks; i++)
		write_file(tasks[i], "0", 1);

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
	if (x.argv == NULL && exe_fd < 0)
		bail("nsenter: neither a runtime binary nor a process to execute");
	if (cr.on && (x.argv == NULL || do_fork))
		bail("nsenter: a container init needs its process and its own pid namespace from clone");

	if (do_fork) {
		// CLONE_PARENT: the init becomes a child of the runtime process,
		// which can wait for it (run, exec) or leave it to its subreaper.
		// The child may write to the socket at once (an error of an exec
		// it finishes itself): it waits on this pipe, which our exit
		// closes, so that MSG_PID comes first and whole.
		int sent[2];
		if (pipe2(sent, O_CLOEXEC) < 0)
			bail("nsenter: pipe");
		pid_t pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
		if (pid < 0)
			bail("nsenter: clone the init process");
		if (pid > 0) {
			int32_t p = pid;
			send_msg(MSG_PID, &p, sizeof(p));
			_exit(0);
		}
		close(sent[1]);
		char c;
		while (read(sent[0], &c, 1) < 0 && errno == EINTR)
			;
		close(sent[0]);
	} else {
		int32_t p = getpid();
		send_msg(MSG_PID, &p, sizeof(p));
	}
	if (cr.on) {
		start_create(&cr);
		finish_create(&x, &cr);
	}
	if (x.argv != NULL)
		finish_exec(&x);
	exec_runtime(exe_fd, envp);
}
