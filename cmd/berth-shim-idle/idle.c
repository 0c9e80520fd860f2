/*
 * berth-shim-idle: the idle state of berth's container monitor.
 *
 * berth-shim (Go) is the parent of one container for its whole life. Most of
 * that life nothing happens: the container runs, nobody is attached, and the
 * monitor only copies the container's output into its json-file log. A Go
 * process keeps ~620 kB of memory doing nothing, and one runs per container:
 * so when the container runs and nobody talks to it, berth-shim executes this
 * program in its own process (same pid, still the container's parent and a
 * child subreaper, the same descriptors), and this program does the idle
 * part:
 *
 *   - copies the container's stdout/stderr (or the pty) into the log, cut
 *     into records and rotated by size exactly as package jsonlog does;
 *   - reaps orphans adopted from a container sharing the host's pid
 *     namespace, but never the container's init;
 *   - executes berth-shim again, handing everything back, as soon as
 *     something needs the Go side: a connection on control.sock or
 *     attach.sock (left pending in the listen queue for berth-shim to
 *     accept), or the init's exit (left unreaped for berth-shim to wait).
 *
 * Command line (written by berth-shim, see cmd/berth-shim/idle.go):
 *
 *   berth-shim-idle --dir DIR --pid PID --control FD --attach FD
 *       [--out FD] [--err FD] [--log PATH --log-max-size N
 *       --log-max-files N] [--partial-out HEX] [--partial-err HEX]
 *       --resume STATE [--shim-fd FD] -- SHIM ARGS...
 *
 * and back, by --shim-fd (berth-shim's binary as it was when the container
 * started, pinned by an open descriptor; SHIM ARGS' first is its path, for
 * ps) or else by the path:
 *
 *   SHIM ARGS... --resume=STATE --resume-out=FD --resume-err=FD
 *       [--resume-partial-out=HEX] [--resume-partial-err=HEX]
 *
 * where FD is -1 for an output that reached its end here, and HEX is the
 * incomplete last line of an output (not yet a log record). STATE is the Go
 * side's and is passed back as is.
 *
 * The program is static, allocates nothing after start and keeps its one
 * line buffer per output and one record buffer in .bss: an idle monitor is a
 * few pages.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* MaxLine of package jsonlog: the longest piece of output one record holds. */
#define MAX_LINE (16 << 10)

struct output {
	int fd;               /* -1: none, or ended */
	const char *stream;   /* "stdout" or "stderr" */
	unsigned char buf[MAX_LINE];
	size_t n;             /* buf[:n] is an incomplete line */
};

static struct output outs[2] = {
	{ .fd = -1, .stream = "stdout" },
	{ .fd = -1, .stream = "stderr" },
};

static const char *dir;
static const char *log_path;
static long long log_max_size;
static int log_max_files = 1;
static int log_fd = -1;
static long long log_size;
static int log_failed; /* a log write failed: warned once */

static pid_t init_pid;
static int control_fd = -1, attach_fd = -1;
static const char *resume_state;
static int shim_fd = -1;
static char **shim_argv; /* SHIM ARGS... */
static int shim_argc;

/* A record is at most {"log":"<6 bytes per byte>","stream":"stderr","time":"<35>"}\n. */
static char record[MAX_LINE * 6 + 128];

static void format_time(char *dst, size_t size, const struct timespec *ts);

/* warn appends a line to DIR/shim.log, as berth-shim's warn does. */
static void warn(const char *what, int err)
{
	char path[4096], line[4600], t[64];
	struct timespec ts;
	int fd, n;

	if (snprintf(path, sizeof path, "%s/shim.log", dir) >= (int)sizeof path)
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	format_time(t, sizeof t, &ts);
	if (err)
		n = snprintf(line, sizeof line, "%s berth-shim-idle: %s: %s\n", t, what, strerror(err));
	else
		n = snprintf(line, sizeof line, "%s berth-shim-idle: %s\n", t, what);
	if (n > 0)
		(void)!write(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
	close(fd);
}

/*
 * format_time writes ts as Go's time.RFC3339Nano in UTC: the fraction with
 * its trailing zeros trimmed, none at all for a whole second.
 */
static void format_time(char *dst, size_t size, const struct timespec *ts)
{
	struct tm tm;
	time_t sec = ts->tv_sec;
	size_t n;

	gmtime_r(&sec, &tm);
	n = strftime(dst, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (ts->tv_nsec != 0 && n + 11 < size) {
		char frac[10];
		int k = 9;
		long ns = ts->tv_nsec;
		for (int i = 8; i >= 0; i--) {
			frac[i] = (char)('0' + ns % 10);
			ns /= 10;
		}
		while (k > 0 && frac[k - 1] == '0')
			k--;
		dst[n++] = '.';
		memcpy(dst + n, frac, (size_t)k);
		n += (size_t)k;
	}
	if (n + 2 <= size) {
		dst[n++] = 'Z';
		dst[n] = 0;
	}
}

/*
 * utf8_len returns the length of the valid UTF-8 sequence at p (of at most
 * left bytes), or 0 when it is not one: the rules of Go's utf8.DecodeRune
 * (no overlong forms, no surrogates, nothing above U+10FFFF).
 */
static int utf8_len(const unsigned char *p, size_t left)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xBF;
	int n;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else
		return 0;
	if (left < (size_t)n || p[1] < lo || p[1] > hi)
		return 0;
	for (int i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

static const char hexdigits[] = "0123456789abcdef";

/* append_string appends s as a JSON string, escaped as protocol.AppendString. */
static size_t append_string(char *dst, const unsigned char *s, size_t len)
{
	size_t o = 0;

	dst[o++] = '"';
	for (size_t i = 0; i < len;) {
		unsigned char b = s[i];
		if (b < 0x80) {
			if (b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&') {
				dst[o++] = (char)b;
			} else if (b == '"' || b == '\\') {
				dst[o++] = '\\';
				dst[o++] = (char)b;
			} else if (b == '\n') {
				dst[o++] = '\\';
				dst[o++] = 'n';
			} else if (b == '\r') {
				dst[o++] = '\\';
				dst[o++] = 'r';
			} else if (b == '\t') {
				dst[o++] = '\\';
				dst[o++] = 't';
			} else {
				memcpy(dst + o, "\\u00", 4);
				o += 4;
				dst[o++] = hexdigits[b >> 4];
				dst[o++] = hexdigits[b & 0xf];
			}
			i++;
			continue;
		}
		int n = utf8_len(s + i, len - i);
		if (n == 0) {
			memcpy(dst + o, "\\ufffd", 6);
			o += 6;
			i++;
			continue;
		}
		/* U+2028 and U+2029 (E2 80 A8/A9) are escaped. */
		if (n == 3 && b == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
			memcpy(dst + o, "\\u202", 5);
			o += 5;
			dst[o++] = s[i + 2] == 0xA8 ? '8' : '9';
			i += 3;
			continue;
		}
		memcpy(dst + o, s + i, (size_t)n);
		o += (size_t)n;
		i += (size_t)n;
	}
	dst[o++] = '"';
	return o;
}

/* rotate is jsonlog's Writer.rotate. */
static int rotate(void)
{
	char from[4200], to[4200];

	if (log_max_files > 1) {
		snprintf(to, sizeof to, "%s.%d", log_path, log_max_files - 1);
		if (unlink(to) < 0 && errno != ENOENT)
			return -1;
		for (int i = log_max_files - 2; i >= 1; i--) {
			snprintf(from, sizeof from, "%s.%d", log_path, i);
			snprintf(to, sizeof to, "%s.%d", log_path, i + 1);
			if (rename(from, to) < 0 && errno != ENOENT)
				return -1;
		}
		snprintf(to, sizeof to, "%s.1", log_path);
		if (rename(log_path, to) < 0)
			return -1;
		int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (fd < 0)
			return -1;
		close(log_fd);
		log_fd = fd;
		log_size = 0;
		return 0;
	}
	if (ftruncate(log_fd, 0) < 0)
		return -1;
	log_size = 0;
	return 0;
}

/* write_record writes one log record, rotating first when it would not fit. */
static void write_record(const char *stream, const unsigned char *line, size_t len, const char *when)
{
	size_t n = 0;

	if (log_fd < 0)
		return;
	memcpy(record, "{\"log\":", 7);
	n = 7;
	n += append_string(record + n, line, len);
	n += (size_t)sprintf(record + n, ",\"stream\":\"%s\",\"time\":\"%s\"}\n", stream, when);
	if (log_max_size > 0 && log_size > 0 && log_size + (long long)n > log_max_size) {
		if (rotate() < 0) {
			if (!log_failed) {
				log_failed = 1;
				warn("rotate the log", errno);
			}
			return;
		}
	}
	for (size_t off = 0; off < n;) {
		ssize_t w = write(log_fd, record + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (!log_failed) {
				log_failed = 1;
				warn("write the log", errno);
			}
			return;
		}
		off += (size_t)w;
		log_size += w;
	}
}

/*
 * commit takes k bytes just read into o->buf[o->n:] and writes a record for
 * each line they complete, and for the pending bytes when they fill
 * MAX_LINE: jsonlog.Lines.Commit.
 */
static void commit(struct output *o, size_t k, const char *when)
{
	size_t start = 0;

	for (size_t i = o->n; i < o->n + k; i++) {
		if (o->buf[i] == '\n') {
			write_record(o->stream, o->buf + start, i + 1 - start, when);
			start = i + 1;
		}
	}
	o->n += k;
	if (start > 0) {
		memmove(o->buf, o->buf + start, o->n - start);
		o->n -= start;
	}
	if (o->n == MAX_LINE) {
		write_record(o->stream, o->buf, o->n, when);
		o->n = 0;
	}
}

/*
 * drain reads what an output holds, a few reads at a time (epoll is level
 * triggered: a busy output does not keep the control socket waiting). At
 * its end (EOF; EIO for a pty whose other side is closed) the pending line
 * is written, as jsonlog.Lines.Flush, and the output is closed.
 */
static void drain(int ep, struct output *o)
{
	char when[64];

	for (int reads = 0; reads < 16; reads++) {
		ssize_t r = read(o->fd, o->buf + o->n, MAX_LINE - o->n);
		if (r > 0) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			format_time(when, sizeof when, &ts);
			commit(o, (size_t)r, when);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		goto end;
	}
	return;
end:
	if (o->n > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		format_time(when, sizeof when, &ts);
		write_record(o->stream, o->buf, o->n, when);
		o->n = 0;
	}
	epoll_ctl(ep, EPOLL_CTL_DEL, o->fd, NULL);
	close(o->fd);
	o->fd = -1;
}

/*
 * init_exited reaps every exited child but the container's init, and
 * reports whether the init has exited (it is left for berth-shim to reap).
 */
static int init_exited(void)
{
	for (;;) {
		siginfo_t si;
		memset(&si, 0, sizeof si);
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
			if (errno == EINTR)
				continue;
			return 0; /* ECHILD: no child at all */
		}
		if (si.si_pid == 0)
			return 0;
		if (si.si_pid == init_pid)
			return 1;
		pid_t orphan = si.si_pid;
		memset(&si, 0, sizeof si);
		if (waitid(P_PID, (id_t)orphan, &si, WEXITED | WNOHANG) < 0 && errno != EINTR)
			return 0; /* cannot happen: it was just seen exited */
	}
}

static char *hex_encode(const unsigned char *p, size_t n)
{
	char *s = malloc(n * 2 + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = hexdigits[p[i] >> 4];
		s[2 * i + 1] = hexdigits[p[i] & 0xf];
	}
	s[n * 2] = 0;
	return s;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* hex_decode fills o's pending line from HEX; -1 when it is not that. */
static int hex_decode(struct output *o, const char *s)
{
	size_t len = strlen(s);

	if (len % 2 || len / 2 >= MAX_LINE)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		int h = hexval(s[2 * i]), l = hexval(s[2 * i + 1]);
		if (h < 0 || l < 0)
			return -1;
		o->buf[i] = (unsigned char)(h << 4 | l);
	}
	o->n = len / 2;
	return 0;
}

/*
 * wake executes berth-shim with everything handed back. It returns only
 * when that failed; the caller keeps copying output and tries again.
 */
static void wake(sigset_t *blocked)
{
	char *argv[shim_argc + 6 + 1];
	char fds[2][40];
	char *partial[2] = { NULL, NULL };
	size_t state_len = strlen(resume_state) + sizeof "--resume=";
	char state[state_len];
	int n = 0;

	for (int i = 0; i < shim_argc; i++)
		argv[n++] = shim_argv[i];
	snprintf(state, state_len, "--resume=%s", resume_state);
	argv[n++] = state;
	snprintf(fds[0], sizeof fds[0], "--resume-out=%d", outs[0].fd);
	snprintf(fds[1], sizeof fds[1], "--resume-err=%d", outs[1].fd);
	argv[n++] = fds[0];
	argv[n++] = fds[1];
	for (int i = 0; i < 2; i++) {
		if (outs[i].n == 0)
			continue;
		const char *flag = i == 0 ? "--resume-partial-out=" : "--resume-partial-err=";
		char *h = hex_encode(outs[i].buf, outs[i].n);
		if (!h || !(partial[i] = malloc(strlen(flag) + strlen(h) + 1))) {
			warn("wake berth-shim", ENOMEM);
			free(h);
			free(partial[0]);
			return;
		}
		strcpy(partial[i], flag);
		strcat(partial[i], h);
		free(h);
		argv[n++] = partial[i];
	}
	argv[n] = NULL;
	static int failed;
	sigprocmask(SIG_UNBLOCK, blocked, NULL);
	if (shim_fd >= 0) {
		char self[40];
		snprintf(self, sizeof self, "/proc/self/fd/%d", shim_fd);
		execv(self, argv);
	} else {
		execv(shim_argv[0], argv);
	}
	if (!failed++) /* tried again every second: said once */
		warn("wake berth-shim: execute it (trying again every second)", errno);
	sigprocmask(SIG_BLOCK, blocked, NULL);
	free(partial[0]);
	free(partial[1]);
}

static int parse_fd(const char *s, int *fd)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < -1 || v > 1 << 20)
		return -1;
	*fd = (int)v;
	return 0;
}

static void usage(const char *msg, const char *arg)
{
	fprintf(stderr, "berth-shim-idle: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
}

int main(int argc, char **argv)
{
	const char *partial[2] = { NULL, NULL };
	long long pid = 0;
	int bad = 0;

	/* Executed by descriptor (/proc/self/fd/N), the process is named "N". */
	prctl(PR_SET_NAME, "berth-shim-idle");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			shim_argv = argv + i + 1;
			shim_argc = argc - i - 1;
			break;
		}
		if (i + 1 >= argc) {
			usage("a value is missing", a);
			bad = 1;
			break;
		}
		const char *v = argv[++i];
		if (strcmp(a, "--dir") == 0)
			dir = v;
		else if (strcmp(a, "--pid") == 0)
			pid = atoll(v);
		else if (strcmp(a, "--control") == 0)
			bad |= parse_fd(v, &control_fd);
		else if (strcmp(a, "--attach") == 0)
			bad |= parse_fd(v, &attach_fd);
		else if (strcmp(a, "--out") == 0)
			bad |= parse_fd(v, &outs[0].fd);
		else if (strcmp(a, "--err") == 0)
			bad |= parse_fd(v, &outs[1].fd);
		else if (strcmp(a, "--log") == 0)
			log_path = v;
		else if (strcmp(a, "--log-max-size") == 0)
			log_max_size = atoll(v);
		else if (strcmp(a, "--log-max-files") == 0)
			log_max_files = atoi(v) < 1 ? 1 : atoi(v);
		else if (strcmp(a, "--partial-out") == 0)
			partial[0] = v;
		else if (strcmp(a, "--partial-err") == 0)
			partial[1] = v;
		else if (strcmp(a, "--resume") == 0)
			resume_state = v;
		else if (strcmp(a, "--shim-fd") == 0)
			bad |= parse_fd(v, &shim_fd);
		else {
			usage("unknown flag", a);
			bad = 1;
		}
	}
	if (!shim_argv || shim_argc < 1 || !resume_state) {
		/* Nothing to hand back to: only berth-shim runs this program. */
		usage("run by berth-shim only: --resume STATE -- SHIM ARGS... is required", NULL);
		return 2;
	}
	if (!dir)
		dir = "/";
	sigset_t blocked;
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGCHLD);
	if (bad || pid <= 0 || control_fd < 0 || attach_fd < 0) {
		warn("bad command line from berth-shim; waking it", 0);
		wake(&blocked);
		return 1;
	}
	init_pid = (pid_t)pid;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);

	/* SIGCHLD is read from a signalfd; blocked before the first look, so
	 * that an exit between the two is not missed. */
	sigprocmask(SIG_BLOCK, &blocked, NULL);
	int sfd = signalfd(-1, &blocked, SFD_CLOEXEC | SFD_NONBLOCK);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || ep < 0) {
		warn("signalfd/epoll", errno);
		wake(&blocked);
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		if (partial[i] && hex_decode(&outs[i], partial[i]) < 0)
			warn("bad partial line from berth-shim; dropped", 0);
	}
	if (log_path) {
		log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		struct stat st;
		if (log_fd < 0 || fstat(log_fd, &st) < 0) {
			warn("open the log", errno);
			wake(&blocked);
			return 1;
		}
		log_size = st.st_size;
	}

	struct epoll_event ev = { .events = EPOLLIN };
	ev.data.u32 = 2;
	epoll_ctl(ep, EPOLL_CTL_ADD, control_fd, &ev);
	epoll_ctl(ep, EPOLL_CTL_ADD, attach_fd, &ev);
	ev.data.u32 = 3;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	for (int i = 0; i < 2; i++) {
		if (outs[i].fd < 0)
			continue;
		ev.data.u32 = (uint32_t)i;
		if (fcntl(outs[i].fd, F_SETFL, fcntl(outs[i].fd, F_GETFL) | O_NONBLOCK) < 0 ||
		    epoll_ctl(ep, EPOLL_CTL_ADD, outs[i].fd, &ev) < 0) {
			warn("watch an output", errno);
			wake(&blocked);
			return 1;
		}
		drain(ep, &outs[i]);
	}

	int waking = init_exited();
	for (;;) {
		if (waking)
			wake(&blocked);
		struct epoll_event evs[8];
		int n = epoll_wait(ep, evs, 8, waking ? 1000 : -1);
		if (n < 0 && errno != EINTR) {
			warn("epoll_wait", errno);
			waking = 1;
			continue;
		}
		for (int i = 0; i < n; i++) {
			uint32_t k = evs[i].data.u32;
			if (k < 2 && outs[k].fd >= 0)
				drain(ep, &outs[k]);
			else if (k == 2) {
				/* The connection waits for berth-shim: stop watching the
				 * sockets, so that a failed exec is tried again once a
				 * second, not in a loop. */
				epoll_ctl(ep, EPOLL_CTL_DEL, control_fd, NULL);
				epoll_ctl(ep, EPOLL_CTL_DEL, attach_fd, NULL);
				waking = 1;
			}
			else if (k == 3) {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof si) == sizeof si)
					;
				if (init_exited())
					waking = 1;
			}
		}
	}
}
