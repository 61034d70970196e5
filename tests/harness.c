/* harness.c - process, config and HTTP client helpers for the end-to-end suites. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "status.h"

#define START_MS 5000
#define STOP_MS 5000
#define HEAD_LIMIT (1024 * 1024)

/* ---- time ---- */

long long harness_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(long long deadline)
{
	long long l = deadline - harness_now_ms();

	return l < 0 ? 0 : (int)l;
}

void harness_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- the processes we started ---- */

#define TRACKED_MAX 64
static pid_t tracked[TRACKED_MAX];

static void track(pid_t pid)
{
	for (int i = 0; i < TRACKED_MAX; i++)
		if (tracked[i] == 0) {
			tracked[i] = pid;
			return;
		}
}

static void untrack(pid_t pid)
{
	for (int i = 0; i < TRACKED_MAX; i++)
		if (tracked[i] == pid)
			tracked[i] = 0;
}

/* Wait at most ms for pid; its wait status, or -1 if it is still running. */
static int wait_bounded(pid_t pid, int ms)
{
	long long deadline = harness_now_ms() + ms;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return st;
		if (r < 0 && errno != EINTR)
			return 0; /* not our child any more: nothing to wait for */
		if (harness_now_ms() >= deadline)
			return -1;
		harness_sleep_ms(5);
	}
}

/* SIGTERM, bounded wait, SIGKILL. Returns the exit code, or -1. */
static int stop_pid(pid_t pid)
{
	int st;

	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	st = wait_bounded(pid, STOP_MS);
	if (st == -1) {
		fprintf(stderr, "harness: pid %d ignored SIGTERM for %d ms, killing it\n",
			(int)pid, STOP_MS);
		kill(pid, SIGKILL);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		untrack(pid);
		return -1;
	}
	untrack(pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void harness_cleanup(void)
{
	for (int i = 0; i < TRACKED_MAX; i++)
		if (tracked[i] > 0)
			stop_pid(tracked[i]);
}

/* Fork and exec argv with the given stdout and stderr fds (-1: /dev/null). The child dies
 * with us, whatever way we die. nofile > 0: RLIMIT_NOFILE (soft and hard) for the child. */
static pid_t spawn_limited(const char *const argv[], int out, int err, unsigned long nofile)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid < 0) {
		perror("harness: fork");
		return -1;
	}
	if (pid > 0) {
		track(pid);
		return pid;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	int devnull = open("/dev/null", O_RDWR);

	dup2(devnull, 0);
	dup2(out >= 0 ? out : devnull, 1);
	dup2(err >= 0 ? err : devnull, 2);
	/* Check may have blocked or ignored signals; the child starts clean. */
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (nofile > 0) {
		struct rlimit rl = { .rlim_cur = nofile, .rlim_max = nofile };

		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			dprintf(2, "harness: setrlimit(RLIMIT_NOFILE, %lu): %s\n", nofile,
				strerror(errno));
			_exit(127);
		}
	}
	execv(argv[0], (char *const *)argv);
	dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static pid_t spawn(const char *const argv[], int out, int err)
{
	return spawn_limited(argv, out, err, 0);
}

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

static const char *ferry_bin(void)
{
	return env_or("FERRY_BIN", "../src/ferry");
}

static const char *origin_bin(void)
{
	return env_or("FERRY_ORIGIN", "./origin");
}

int harness_origin_start(struct harness_origin *o)
{
	const char *argv[] = { origin_bin(), NULL };
	int pfd[2];
	char line[64];
	size_t n = 0;
	long long deadline = harness_now_ms() + START_MS;

	memset(o, 0, sizeof(*o));
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return FERRY_ERR;
	o->pid = spawn(argv, pfd[1], 2);
	close(pfd[1]);
	if (o->pid < 0) {
		close(pfd[0]);
		return FERRY_ERR;
	}
	while (n < sizeof(line) - 1 && !memchr(line, '\n', n)) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int ms = left_ms(deadline);

		if (ms == 0 || poll(&p, 1, ms) <= 0)
			break;
		ssize_t r = read(pfd[0], line + n, sizeof(line) - 1 - n);

		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(pfd[0]);
	line[n] = '\0';
	if (sscanf(line, "%d %d", &o->port, &o->echo_port) != 2 || o->port <= 0 ||
	    o->echo_port <= 0) {
		fprintf(stderr, "harness: origin %s did not report its ports (got \"%s\")\n",
			argv[0], line);
		harness_origin_stop(o);
		return FERRY_ERR;
	}
	return FERRY_OK;
}

void harness_origin_stop(struct harness_origin *o)
{
	if (o->pid > 0)
		stop_pid(o->pid);
	o->pid = 0;
}

/* ---- config ---- */

static void copy(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src);
}

void harness_conf_add(struct harness_conf *c, const char *section, const char *key,
		      const char *value)
{
	if (c->n >= HARNESS_CONF_MAX) {
		fprintf(stderr, "harness: config has too many entries\n");
		abort();
	}
	copy(c->items[c->n].section, sizeof(c->items[0].section), section);
	copy(c->items[c->n].key, sizeof(c->items[0].key), key);
	copy(c->items[c->n].value, sizeof(c->items[0].value), value);
	c->n++;
}

void harness_conf_del(struct harness_conf *c, const char *section, const char *key)
{
	size_t j = 0;

	for (size_t i = 0; i < c->n; i++) {
		if (strcmp(c->items[i].section, section) == 0 && strcmp(c->items[i].key, key) == 0)
			continue;
		if (i != j)
			c->items[j] = c->items[i];
		j++;
	}
	c->n = j;
}

void harness_conf_set(struct harness_conf *c, const char *section, const char *key,
		      const char *value)
{
	for (size_t i = 0; i < c->n; i++) {
		if (strcmp(c->items[i].section, section) == 0 &&
		    strcmp(c->items[i].key, key) == 0) {
			/* keep the position of the first one, drop the others */
			copy(c->items[i].value, sizeof(c->items[0].value), value);
			for (size_t k = i + 1; k < c->n;) {
				if (strcmp(c->items[k].section, section) == 0 &&
				    strcmp(c->items[k].key, key) == 0) {
					memmove(&c->items[k], &c->items[k + 1],
						(c->n - k - 1) * sizeof(c->items[0]));
					c->n--;
				} else {
					k++;
				}
			}
			return;
		}
	}
	harness_conf_add(c, section, key, value);
}

void harness_conf_base(struct harness_conf *c, const char *mux, const struct harness_origin *o)
{
	char ports[16];

	memset(c, 0, sizeof(*c));
	harness_conf_add(c, "server", "listen", "127.0.0.1:@PORT");
	harness_conf_add(c, "server", "processes", "1");
	harness_conf_add(c, "server", "threads", "2");
	harness_conf_add(c, "server", "multiplexer", mux);
	harness_conf_add(c, "timeouts", "shutdown", "1");
	harness_conf_add(c, "access", "block_destinations", "");
	if (o) {
		snprintf(ports, sizeof(ports), "%d", o->echo_port);
		harness_conf_add(c, "access", "connect_ports", ports);
	}
	harness_conf_add(c, "log", "error_log", "stderr");
	harness_conf_add(c, "log", "level", "info");
}

int harness_conf_write(const struct harness_conf *c, int port, const char *path)
{
	FILE *f = fopen(path, "w");
	const char *done[HARNESS_CONF_MAX];
	size_t ndone = 0;

	if (!f) {
		fprintf(stderr, "harness: %s: %s\n", path, strerror(errno));
		return FERRY_ERR;
	}
	fprintf(f, "; written by the ferry e2e harness\n");
	for (size_t i = 0; i < c->n; i++) {
		const char *sec = c->items[i].section;
		size_t d;

		for (d = 0; d < ndone; d++)
			if (strcmp(done[d], sec) == 0)
				break;
		if (d < ndone)
			continue;
		done[ndone++] = sec;
		fprintf(f, "[%s]\n", sec);
		for (size_t k = i; k < c->n; k++) {
			if (strcmp(c->items[k].section, sec) != 0)
				continue;
			const char *v = c->items[k].value;
			const char *at = strstr(v, "@PORT");

			fprintf(f, "%s = ", c->items[k].key);
			if (at)
				fprintf(f, "%.*s%d%s\n", (int)(at - v), v, port, at + 5);
			else
				fprintf(f, "%s\n", v);
		}
	}
	return fclose(f) == 0 ? FERRY_OK : FERRY_ERR;
}

/* ---- files and ports ---- */

int harness_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return FERRY_ERR;
	fputs(text, f);
	return fclose(f) == 0 ? FERRY_OK : FERRY_ERR;
}

char *harness_pattern(size_t n)
{
	char *p = malloc(n + 1);

	if (!p)
		abort();
	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + i % 26);
	p[n] = '\0';
	return p;
}

int harness_listen(int port, int backlog, int *bound)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, backlog) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		close(fd);
		return -1;
	}
	if (bound)
		*bound = ntohs(sa.sin_port);
	return fd;
}

int harness_free_port(void)
{
	int port = -1;
	int fd = harness_listen(0, 1, &port);

	if (fd >= 0)
		close(fd);
	return port;
}

char *harness_fd_collect(int fd, const char *stop, int timeout_ms, size_t *n, int *how)
{
	long long deadline = harness_now_ms() + timeout_ms;
	size_t cap = 4096, len = 0;
	char *b = malloc(cap + 1);

	*how = 0;
	if (b == NULL)
		return NULL;
	for (;;) {
		if (stop && len && memmem(b, len, stop, strlen(stop)))
			break;
		long long left = deadline - harness_now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if (cap - len < 4096) {
			char *nb = realloc(b, cap * 2 + 1);

			if (nb == NULL) {
				free(b);
				return NULL;
			}
			b = nb;
			cap *= 2;
		}
		ssize_t r = recv(fd, b + len, cap - len, MSG_DONTWAIT);

		if (r > 0) {
			len += (size_t)r;
		} else if (r == 0) {
			*how = 1;
			break;
		} else if (errno != EAGAIN && errno != EINTR) {
			*how = 2;
			break;
		}
	}
	b[len] = '\0';
	*n = len;
	return b;
}

int harness_closed_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		close(fd);
		return -1;
	}
	return ntohs(a.sin_port); /* fd deliberately kept: see harness.h */
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = NULL;
	size_t n = 0, cap = 0;

	if (f) {
		char tmp[4096];
		size_t r;

		while ((r = fread(tmp, 1, sizeof(tmp), f)) > 0) {
			if (n + r + 1 > cap) {
				cap = (n + r + 1) * 2;
				s = realloc(s, cap);
				if (!s)
					abort();
			}
			memcpy(s + n, tmp, r);
			n += r;
		}
		fclose(f);
	}
	if (!s)
		s = calloc(1, 1);
	else
		s[n] = '\0';
	return s;
}

/* ---- ferry ---- */

static int can_connect(int port)
{
	struct harness_conn c;
	int ok = harness_connect(&c, port) == FERRY_OK;

	if (ok)
		harness_close(&c);
	return ok;
}

/* Does process pid hold the socket listening on 127.0.0.1:port? Parallel test suites pick
 * ports at run time, so between harness_free_port() and ferry's bind another suite may take
 * the port: a connect that succeeds then reached someone else, and ferry exits 3 a moment
 * later. /proc/net/tcp gives the listener's inode; the fds of pid must include it. */
static int owns_listener(pid_t pid, int port)
{
	FILE *f = fopen("/proc/net/tcp", "r");
	char line[512], want[64];
	unsigned long inode = 0;

	if (f == NULL)
		return 1; /* no procfs: cannot tell, trust the connect */
	while (fgets(line, sizeof(line), f)) {
		unsigned la, lp, st;
		unsigned long ino;

		/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
		if (sscanf(line, " %*d: %8X:%4X %*8X:%*4X %2X %*s %*s %*s %*u %*u %lu", &la, &lp, &st,
			   &ino) == 4 && (int)lp == port && st == 0x0A) {
			inode = ino;
			break;
		}
	}
	fclose(f);
	if (inode == 0)
		return 0;
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	struct dirent *de;
	int found = 0;
	while (!found && (de = readdir(d)) != NULL) {
		char path[320], target[64];
		ssize_t n;

		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			found = strcmp(target, want) == 0;
		}
	}
	closedir(d);
	return found;
}

char *harness_fmt(const char *f, ...)
{
	va_list ap;
	char *s;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

void harness_show_log(const struct harness_ferry *f)
{
	if (!f->log[0])
		return;
	char *log = harness_ferry_log(f);
	size_t n = strlen(log);

	fprintf(stderr, "---- ferry log (%s), last bytes ----\n%s\n----\n", f->log,
		n > 3000 ? log + n - 3000 : log);
	free(log);
}

char *harness_ferry_log(const struct harness_ferry *f)
{
	return slurp(f->log);
}

static void dump_log(const struct harness_ferry *f, const char *why)
{
	char *log = harness_ferry_log(f);

	fprintf(stderr, "harness: ferry %s (%s); its log:\n%s\n-- end of log --\n", why, f->dir,
		log);
	free(log);
}

int harness_ferry_start(struct harness_ferry *f, const struct harness_conf *c)
{
	return harness_ferry_start_nofile(f, c, 0);
}

int harness_ferry_start_nofile(struct harness_ferry *f, const struct harness_conf *c,
			       unsigned long nofile)
{
	const char *tmp = env_or("TMPDIR", "/tmp");

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "%s/ferry-e2e-XXXXXX", tmp);
	if (!mkdtemp(f->dir)) {
		fprintf(stderr, "harness: mkdtemp %s: %s\n", f->dir, strerror(errno));
		return FERRY_ERR;
	}
	snprintf(f->conf, sizeof(f->conf), "%s/proxy.ini", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/ferry.log", f->dir);

	for (int attempt = 0; attempt < 3; attempt++) {
		const char *argv[] = { ferry_bin(), "-f", "-c", f->conf, NULL };
		long long deadline = harness_now_ms() + START_MS;
		int logfd, st;

		f->port = harness_free_port();
		if (f->port < 0 || harness_conf_write(c, f->port, f->conf) != FERRY_OK)
			return FERRY_ERR;
		logfd = open(f->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
		if (logfd < 0)
			return FERRY_ERR;
		f->pid = spawn_limited(argv, logfd, logfd, nofile);
		close(logfd);
		if (f->pid < 0)
			return FERRY_ERR;
		for (;;) {
			pid_t r = waitpid(f->pid, &st, WNOHANG);

			if (r == f->pid) {
				untrack(f->pid);
				f->pid = 0;
				break;
			}
			if (can_connect(f->port) && owns_listener(f->pid, f->port))
				return FERRY_OK;
			if (harness_now_ms() >= deadline) {
				dump_log(f, "did not accept connections within 5 s");
				harness_ferry_stop(f);
				return FERRY_ERR;
			}
			harness_sleep_ms(10);
		}
		/* Exit 3 is a start failure such as the port taken since we picked it. */
		if (!(WIFEXITED(st) && WEXITSTATUS(st) == 3)) {
			dump_log(f, "exited during start");
			return FERRY_ERR;
		}
	}
	dump_log(f, "could not start (exit 3) on three different ports");
	return FERRY_ERR;
}

int harness_ferry_stop(struct harness_ferry *f)
{
	return harness_ferry_stop_log(f, NULL);
}

int harness_ferry_stop_log(struct harness_ferry *f, char **log)
{
	int code = -1;

	if (f->pid > 0)
		code = stop_pid(f->pid);
	f->pid = 0;
	if (log)
		*log = f->dir[0] ? harness_ferry_log(f) : calloc(1, 1);
	if (f->dir[0] && !getenv("FERRY_E2E_KEEP")) {
		unlink(f->conf);
		unlink(f->log);
		rmdir(f->dir);
		f->dir[0] = '\0';
	}
	return code;
}

int harness_run_ferry(struct harness_run *r, const char *const args[], int timeout_ms)
{
	const char *argv[32];
	int po[2], pe[2];
	size_t na = 0, cap[2] = { 0, 0 }, len[2] = { 0, 0 };
	char *bufs[2] = { NULL, NULL };
	long long deadline = harness_now_ms() + timeout_ms;
	int st;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	argv[na++] = ferry_bin();
	for (size_t i = 0; args[i] && na < 31; i++)
		argv[na++] = args[i];
	argv[na] = NULL;
	if (pipe2(po, O_CLOEXEC) < 0)
		return FERRY_ERR;
	if (pipe2(pe, O_CLOEXEC) < 0) {
		close(po[0]);
		close(po[1]);
		return FERRY_ERR;
	}
	pid_t pid = spawn(argv, po[1], pe[1]);

	close(po[1]);
	close(pe[1]);
	struct pollfd p[2] = { { .fd = po[0], .events = POLLIN }, { .fd = pe[0], .events = POLLIN } };

	while ((p[0].fd >= 0 || p[1].fd >= 0) && pid > 0) {
		int ms = left_ms(deadline);

		if (ms == 0 || poll(p, 2, ms) == 0)
			break;
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			if (len[i] + 4096 + 1 > cap[i]) {
				cap[i] = (len[i] + 4096 + 1) * 2;
				bufs[i] = realloc(bufs[i], cap[i]);
				if (!bufs[i])
					abort();
			}
			ssize_t n = read(p[i].fd, bufs[i] + len[i], 4096);

			if (n <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
			} else {
				len[i] += (size_t)n;
			}
		}
	}
	for (int i = 0; i < 2; i++) {
		if (p[i].fd >= 0)
			close(p[i].fd);
		if (!bufs[i])
			bufs[i] = malloc(1);
		bufs[i][len[i]] = '\0';
	}
	r->out = bufs[0];
	r->err = bufs[1];
	if (pid <= 0)
		return FERRY_ERR;
	st = wait_bounded(pid, left_ms(deadline));
	if (st == -1) {
		fprintf(stderr, "harness: %s did not finish within %d ms, killing it\n", argv[0],
			timeout_ms);
		kill(pid, SIGKILL);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		untrack(pid);
		return FERRY_ERR;
	}
	untrack(pid);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return FERRY_OK;
}

void harness_run_free(struct harness_run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* ---- client connections ---- */

int harness_connect(struct harness_conn *c, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, err = 0;
	socklen_t el = sizeof(err);

	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return FERRY_ERR;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };

		if (errno != EINPROGRESS || poll(&p, 1, START_MS) != 1 ||
		    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
			close(c->fd);
			c->fd = -1;
			return FERRY_ERR;
		}
	}
	return FERRY_OK;
}

int harness_send(struct harness_conn *c, const void *p, size_t n)
{
	const char *s = p;
	long long deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;

	while (n > 0) {
		ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);

		if (w < 0) {
			struct pollfd pf = { .fd = c->fd, .events = POLLOUT };

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN || left_ms(deadline) == 0 ||
			    poll(&pf, 1, left_ms(deadline)) < 0)
				return FERRY_ERR;
			continue;
		}
		s += w;
		n -= (size_t)w;
	}
	return FERRY_OK;
}

int harness_send_str(struct harness_conn *c, const char *s)
{
	return harness_send(c, s, strlen(s));
}

void harness_shutdown_write(struct harness_conn *c)
{
	shutdown(c->fd, SHUT_WR);
}

void harness_close(struct harness_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

/* One read into the buffer: >0 bytes, 0 EOF, -1 error or deadline (c->err). */
static int conn_fill(struct harness_conn *c, long long deadline)
{
	if (c->eof)
		return 0;
	if (c->err)
		return -1;
	if (c->cap - c->len < 16384) {
		size_t ncap = c->cap ? c->cap * 2 : 65536;

		while (ncap - c->len < 16384)
			ncap *= 2;
		char *n = realloc(c->buf, ncap + 1);

		if (!n)
			abort();
		c->buf = n;
		c->cap = ncap;
	}
	for (;;) {
		ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);

		if (r > 0) {
			c->len += (size_t)r;
			c->buf[c->len] = '\0';
			return (int)r;
		}
		if (r == 0) {
			c->eof = 1;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			c->err = errno;
			return -1;
		}
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int ms = left_ms(deadline);

		if (ms == 0 || poll(&p, 1, ms) == 0) {
			c->err = ETIMEDOUT;
			return -1;
		}
	}
}

static void conn_consume(struct harness_conn *c, size_t n)
{
	if (n == 0)
		return;
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
	if (c->buf)
		c->buf[c->len] = '\0';
}

size_t harness_read_atleast(struct harness_conn *c, size_t n, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;

	while (c->len < n && conn_fill(c, deadline) > 0)
		;
	return c->len;
}

char *harness_take(struct harness_conn *c, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		abort();
	if (n > c->len)
		n = c->len;
	if (n)
		memcpy(s, c->buf, n);
	s[n] = '\0';
	conn_consume(c, n);
	return s;
}

char *harness_read_to_close(struct harness_conn *c, size_t *n, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;

	while (conn_fill(c, deadline) > 0)
		;
	*n = c->len;
	return harness_take(c, c->len);
}

int harness_pump(struct harness_conn *c, const void *out, size_t outlen, int shut, size_t want,
		 char **in, size_t *inlen, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;
	const char *o = out;
	size_t sent = 0;
	int shut_done = !shut;
	int rc = FERRY_ERR;

	for (;;) {
		if (sent == outlen && !shut_done) {
			shutdown(c->fd, SHUT_WR);
			shut_done = 1;
		}
		int reading_done = want == (size_t)-1 ? c->eof : c->len >= want;

		if (sent == outlen && reading_done) {
			rc = FERRY_OK;
			break;
		}
		if (c->err || (c->eof && !reading_done))
			break;

		struct pollfd p = { .fd = c->fd, .events = 0 };
		int ms = left_ms(deadline);

		if (!reading_done && !c->eof)
			p.events |= POLLIN;
		if (sent < outlen)
			p.events |= POLLOUT;
		if (ms == 0 || poll(&p, 1, ms) == 0) {
			c->err = ETIMEDOUT;
			break;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			if (conn_fill(c, harness_now_ms()) < 0 && c->err == ETIMEDOUT)
				c->err = 0; /* nothing there after all */
		}
		if (sent < outlen && (p.revents & POLLOUT)) {
			ssize_t w = send(c->fd, o + sent, outlen - sent, MSG_NOSIGNAL | MSG_DONTWAIT);

			if (w > 0)
				sent += (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				c->err = errno;
				break;
			}
		}
	}
	*inlen = c->len;
	*in = harness_take(c, c->len);
	return rc;
}

/* ---- responses ---- */

static const char *find_crlfcrlf(const char *p, size_t n)
{
	for (size_t i = 0; i + 3 < n; i++)
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
			return p + i + 4;
	return NULL;
}

static char *dup_range(const char *s, const char *e)
{
	char *d = malloc((size_t)(e - s) + 1);

	if (!d)
		abort();
	memcpy(d, s, (size_t)(e - s));
	d[e - s] = '\0';
	return d;
}

static int parse_head(struct harness_resp *r)
{
	const char *p = r->head, *end = r->head + r->head_len;
	const char *eol = memchr(p, '\n', (size_t)(end - p));
	char code[4];

	if (!eol || eol - p < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
		return FERRY_ERR;
	r->minor = p[7] - '0';
	memcpy(code, p + 9, 3);
	code[3] = '\0';
	for (int i = 0; i < 3; i++)
		if (code[i] < '0' || code[i] > '9')
			return FERRY_ERR;
	if (p[12] != ' ' && p[12] != '\r')
		return FERRY_ERR;
	r->status = atoi(code);
	for (p = eol + 1; p < end - 2; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		const char *colon = memchr(p, ':', (size_t)(eol - p));

		if (!colon)
			return FERRY_ERR;
		if (r->nfields == HARNESS_FIELDS_MAX)
			continue;
		const char *v = colon + 1, *ve = eol;

		while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		r->fields[r->nfields].name = dup_range(p, colon);
		r->fields[r->nfields].value = dup_range(v, ve);
		r->nfields++;
	}
	return FERRY_OK;
}

const char *harness_resp_header(const struct harness_resp *r, const char *name)
{
	for (size_t i = 0; i < r->nfields; i++)
		if (strcasecmp(r->fields[i].name, name) == 0)
			return r->fields[i].value;
	return NULL;
}

int harness_resp_count(const struct harness_resp *r, const char *name)
{
	int n = 0;

	for (size_t i = 0; i < r->nfields; i++)
		n += strcasecmp(r->fields[i].name, name) == 0;
	return n;
}

int harness_resp_has_token(const struct harness_resp *r, const char *name, const char *token)
{
	size_t tl = strlen(token);

	for (size_t i = 0; i < r->nfields; i++) {
		if (strcasecmp(r->fields[i].name, name) != 0)
			continue;
		const char *v = r->fields[i].value;

		while (*v) {
			while (*v == ' ' || *v == '\t' || *v == ',')
				v++;
			const char *s = v;

			while (*v && *v != ',')
				v++;
			const char *e = v;

			while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0)
				return 1;
		}
	}
	return 0;
}

void harness_resp_free(struct harness_resp *r)
{
	for (size_t i = 0; i < r->nfields; i++) {
		free(r->fields[i].name);
		free(r->fields[i].value);
	}
	free(r->head);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static void body_append(struct harness_resp *r, size_t *cap, const char *p, size_t n)
{
	if (r->body_len + n + 1 > *cap) {
		*cap = (r->body_len + n + 1) * 2;
		r->body = realloc(r->body, *cap);
		if (!r->body)
			abort();
	}
	memcpy(r->body + r->body_len, p, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
}

/* Length of the CRLF-terminated line at the start of the buffer, reading as needed. */
static size_t buffered_line(struct harness_conn *c, long long deadline)
{
	size_t scanned = 0;

	for (;;) {
		char *nl = c->len > scanned ? memchr(c->buf + scanned, '\n', c->len - scanned) : NULL;

		if (nl)
			return (size_t)(nl - c->buf) + 1;
		scanned = c->len;
		if (c->len > HEAD_LIMIT || conn_fill(c, deadline) <= 0)
			return 0;
	}
}

static void read_chunked(struct harness_conn *c, struct harness_resp *r, size_t *cap,
			 long long deadline)
{
	for (;;) {
		size_t ll = buffered_line(c, deadline);
		char *endp;

		if (ll == 0)
			return;
		unsigned long long sz = strtoull(c->buf, &endp, 16);

		if (endp == c->buf)
			return;
		conn_consume(c, ll);
		if (sz == 0)
			break;
		while (sz > 0) {
			if (c->len == 0 && conn_fill(c, deadline) <= 0)
				return;
			size_t k = c->len < sz ? c->len : (size_t)sz;

			body_append(r, cap, c->buf, k);
			conn_consume(c, k);
			sz -= k;
		}
		if (harness_read_atleast(c, 2, left_ms(deadline)) < 2 || c->buf[0] != '\r' ||
		    c->buf[1] != '\n')
			return;
		conn_consume(c, 2);
	}
	for (;;) {
		size_t ll = buffered_line(c, deadline);

		if (ll == 0)
			return;
		int empty = ll <= 2;

		conn_consume(c, ll);
		if (empty) {
			r->complete = 1;
			return;
		}
	}
}

int harness_read_response(struct harness_conn *c, struct harness_resp *r, int flags,
			  int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;
	const char *end;
	size_t cap = 0;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	while (!(end = find_crlfcrlf(c->buf ? c->buf : "", c->len))) {
		if (c->len > HEAD_LIMIT || conn_fill(c, deadline) <= 0)
			return FERRY_ERR;
	}
	r->head_len = (size_t)(end - c->buf);
	r->head = harness_take(c, r->head_len);
	if (parse_head(r) != FERRY_OK) {
		r->status = -1;
		return FERRY_ERR;
	}
	r->body = calloc(1, 1);
	if (!r->body)
		abort();
	cap = 1;

	const char *te = harness_resp_header(r, "Transfer-Encoding");
	const char *cl = harness_resp_header(r, "Content-Length");

	if ((flags & HARNESS_NOBODY) || r->status < 200 || r->status == 204 || r->status == 304) {
		r->framing = HARNESS_NONE;
		r->complete = 1;
	} else if (te && harness_resp_has_token(r, "Transfer-Encoding", "chunked")) {
		r->framing = HARNESS_CHUNKED;
		read_chunked(c, r, &cap, deadline);
	} else if (cl) {
		unsigned long long n = strtoull(cl, NULL, 10);

		r->framing = HARNESS_LENGTH;
		while (n > 0) {
			if (c->len == 0 && conn_fill(c, deadline) <= 0)
				break;
			size_t k = c->len < n ? c->len : (size_t)n;

			body_append(r, &cap, c->buf, k);
			conn_consume(c, k);
			n -= k;
		}
		r->complete = n == 0;
	} else {
		r->framing = HARNESS_CLOSE;
		while (conn_fill(c, deadline) > 0)
			;
		body_append(r, &cap, c->buf ? c->buf : "", c->len);
		conn_consume(c, c->len);
		r->complete = c->eof;
	}
	return FERRY_OK;
}

int harness_request(int port, const char *req, struct harness_resp *r, int flags)
{
	struct harness_conn c;
	int rc;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	if (harness_connect(&c, port) != FERRY_OK)
		return FERRY_ERR;
	if (harness_send_str(&c, req) != FERRY_OK) {
		/* The server may have answered and closed already (403 at accept): read it. */
		c.err = 0;
	}
	rc = harness_read_response(&c, r, flags, HARNESS_TIMEOUT_MS);
	harness_close(&c);
	return rc;
}

const char *harness_sanitizer_report(const char *log)
{
	const char *san = log ? strstr(log, "Sanitizer") : NULL;

	if (!san && log)
		san = strstr(log, "runtime error:");
	return san;
}

/* ---- /proc ---- */

/* The fields of /proc/PID/stat after the command name, NUL-terminated in buf; NULL if gone. */
static char *proc_stat_rest(pid_t pid, char *buf, size_t cap)
{
	char path[64];
	FILE *f;
	size_t n;
	char *rp;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	n = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[n] = '\0';
	rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' ? rp + 2 : NULL;
}

pid_t harness_ferry_child(const struct harness_ferry *f, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		DIR *d = opendir("/proc");
		struct dirent *e;
		pid_t found = -1;

		while (d && (e = readdir(d)) != NULL && found < 0) {
			char buf[512], *rest;
			char state;
			int ppid;

			if (e->d_name[0] < '1' || e->d_name[0] > '9')
				continue;
			rest = proc_stat_rest((pid_t)atoi(e->d_name), buf, sizeof(buf));
			if (rest && sscanf(rest, "%c %d", &state, &ppid) == 2 && ppid == f->pid &&
			    state != 'Z')
				found = (pid_t)atoi(e->d_name);
		}
		if (d)
			closedir(d);
		if (found > 0 || harness_now_ms() >= deadline)
			return found;
		harness_sleep_ms(10);
	}
}

long harness_proc_status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t fl = strlen(field);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			kb = strtol(line + fl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

long long harness_proc_cpu_ms(pid_t pid)
{
	char buf[1024], *rest = proc_stat_rest(pid, buf, sizeof(buf));
	unsigned long long ut, st;
	long hz = sysconf(_SC_CLK_TCK);

	/* after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime */
	if (!rest || hz <= 0 ||
	    sscanf(rest, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)((ut + st) * 1000 / (unsigned long long)hz);
}

int harness_proc_nfds(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

int harness_accept(int lfd, int timeout_ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	int fd;

	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	return fd;
}
