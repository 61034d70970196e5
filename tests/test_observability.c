/* test_observability.c - the access log, the shared counters and the admin endpoint.
 *
 * Unit tests: the access log line's format (a long target cut and marked), writes towards a
 * pipe or socket that each end a line, a line cut by a full disk never continued, the admin
 * thread pausing (not spinning) while accept4 fails with EMFILE; the counter region (slots
 * handed out and taken back, counters that never go backwards), the metrics page. End to
 * end (the real binary):
 * the access log line of an ok request, a 403, a 407, a 502 and a tunnel, field by field;
 * lines flushed within a second and SIGUSR1 reopening the file; a /metrics scrape parsed by
 * a strict Prometheus text parser, its counters moving with the traffic of two processes;
 * the admin endpoint's 400/403/404/405/431; /status 200, then 503 during a graceful stop
 * while a tunnel is still open; start-up failures naming file, line and key. */
#include <arpa/inet.h>
#include <check.h>
#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "admin.h"
#include "harness.h"
#include "log.h"
#include "stats.h"
#include "status.h"

static const char *const muxes[] = { "poll", "epoll" };
static struct harness_origin origin;
static struct harness_ferry ferry;
static struct harness_conf conf;
static char dir[64];

static void teardown(void)
{
	harness_cleanup();
	if (dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
		dir[0] = '\0';
	}
}

static void make_dir(void)
{
	strcpy(dir, "/tmp/ferry-obs-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static char *in_dir(const char *name)
{
	static char p[4][128];
	static int k;
	char *o = p[k++ % 4];
	snprintf(o, sizeof(p[0]), "%s/%s", dir, name);
	return o;
}

/* The whole file, NUL-terminated (empty when it does not exist). */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t len = 0, cap = 4096;
	char *s = malloc(cap);
	ck_assert_ptr_nonnull(s);
	if (f) {
		size_t n;
		while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
			len += n;
			if (cap - len < 2) {
				cap *= 2;
				s = realloc(s, cap);
				ck_assert_ptr_nonnull(s);
			}
		}
		fclose(f);
	}
	s[len] = '\0';
	return s;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Wait (hang guard: 5 s) until path holds at least n lines; returns its text. */
static char *wait_lines(const char *path, int n)
{
	long long end = harness_now_ms() + 5000;
	for (;;) {
		char *s = read_file(path);
		if (count_lines(s) >= n || harness_now_ms() > end)
			return s;
		free(s);
		harness_sleep_ms(20);
	}
}

/* ---- one access log line, split into its fields ---- */

struct line {
	char buf[2048];
	char *f[16];
	int n;
};

/* Find the line whose field `field` equals value; split it. */
static int find_line(const char *log, int field, const char *value, struct line *out)
{
	const char *p = log;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len < sizeof(out->buf)) {
			memcpy(out->buf, p, len);
			out->buf[len] = '\0';
			out->n = 0;
			char *save = NULL;
			for (char *t = strtok_r(out->buf, " ", &save); t && out->n < 16; t = strtok_r(NULL, " ", &save))
				out->f[out->n++] = t;
			if (out->n > field && strcmp(out->f[field], value) == 0)
				return 1;
		}
		p += len + (nl != NULL);
	}
	return 0;
}

enum { F_TIME, F_CLIENT, F_USER, F_METHOD, F_TARGET, F_STATUS, F_IN, F_OUT, F_MS, F_UP, F_REUSED };

static int is_number(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

/* 2026-11-27T19:30:00.123Z */
static void check_time(const char *t)
{
	ck_assert_msg(strlen(t) == 24, "time %s", t);
	for (int i = 0; i < 24; i++) {
		char want = "dddd-dd-ddTdd:dd:dd.dddZ"[i];
		if (want == 'd')
			ck_assert_msg(isdigit((unsigned char)t[i]), "time %s", t);
		else
			ck_assert_msg(t[i] == want, "time %s", t);
	}
}

static void check_line(const struct line *l, const char *user, const char *method, const char *target,
		       int status, size_t in, size_t out, const char *up, const char *reused)
{
	char num[32];
	ck_assert_int_eq(l->n, 11);
	check_time(l->f[F_TIME]);
	ck_assert_str_eq(l->f[F_CLIENT], "127.0.0.1");
	ck_assert_str_eq(l->f[F_USER], user);
	ck_assert_str_eq(l->f[F_METHOD], method);
	ck_assert_str_eq(l->f[F_TARGET], target);
	snprintf(num, sizeof(num), "%03d", status);
	ck_assert_str_eq(l->f[F_STATUS], num);
	snprintf(num, sizeof(num), "%zu", in);
	ck_assert_msg(strcmp(l->f[F_IN], num) == 0, "%s: bytes in %s, want %s", target, l->f[F_IN], num);
	snprintf(num, sizeof(num), "%zu", out);
	ck_assert_msg(strcmp(l->f[F_OUT], num) == 0, "%s: bytes out %s, want %s", target, l->f[F_OUT], num);
	ck_assert_msg(is_number(l->f[F_MS]), "duration %s", l->f[F_MS]);
	ck_assert_str_eq(l->f[F_UP], up);
	ck_assert_str_eq(l->f[F_REUSED], reused);
}

/* Every line of log is whole: 11 fields, a valid time, a 3-digit status (no line was cut
 * or interleaved with another). Returns the number of lines. */
static int check_all_lines(const char *log)
{
	int n = 0;
	const char *p = log;
	while (*p) {
		const char *nl = strchr(p, '\n');
		ck_assert_msg(nl != NULL, "a line without its newline: %s", p);
		struct line l;
		size_t len = (size_t)(nl - p);
		ck_assert_uint_lt(len, sizeof(l.buf));
		memcpy(l.buf, p, len);
		l.buf[len] = '\0';
		l.n = 0;
		char *save = NULL;
		for (char *t = strtok_r(l.buf, " ", &save); t && l.n < 16; t = strtok_r(NULL, " ", &save))
			l.f[l.n++] = t;
		ck_assert_msg(l.n == 11, "line %d has %d fields", n + 1, l.n);
		check_time(l.f[F_TIME]);
		ck_assert(strlen(l.f[F_STATUS]) == 3 && is_number(l.f[F_STATUS]));
		n++;
		p = nl + 1;
	}
	return n;
}

/* ---- unit: the line format ---- */

START_TEST(access_line_format)
{
	struct accesslog_buf b;
	memset(&b, 0, sizeof(b));
	struct sockaddr_in cl = { .sin_family = AF_INET, .sin_port = htons(5555) };
	inet_pton(AF_INET, "192.0.2.7", &cl.sin_addr);
	struct sockaddr_in6 up = { .sin6_family = AF_INET6, .sin6_port = htons(8080) };
	inet_pton(AF_INET6, "2001:db8::1", &up.sin6_addr);
	struct accesslog_entry e = {
		.client = (struct sockaddr *)&cl, .user = "al ice", .request = "GET http://x/a\x01" "b",
		.status = 200, .bytes_in = 12, .bytes_out = 3456, .ms = 7,
		.upstream = (struct sockaddr *)&up, .reused = 1,
	};
	char out[8192];
	size_t n = accesslog_format(&b, &e, out, sizeof(out));
	ck_assert_uint_eq(n, strlen(out));
	ck_assert(out[n - 1] == '\n');
	out[n - 1] = '\0';
	ck_assert_str_eq(out + 25, "192.0.2.7 al%20ice GET http://x/a%01b 200 12 3456 7 [2001:db8::1]:8080 reused");
	check_time(strtok(out, " "));

	/* nothing parsed, no answer, no upstream */
	struct accesslog_entry e2 = { .client = (struct sockaddr *)&cl };
	n = accesslog_format(&b, &e2, out, sizeof(out));
	out[n - 1] = '\0';
	ck_assert_str_eq(out + 25, "192.0.2.7 - - - 000 0 0 0 - -");

	/* a huge target is cut after 2048 bytes and marked, the line stays one line, shorter than
	 * PIPE_BUF (so a pipe takes it in one piece), even with every byte escaped */
	char *big = malloc(20000);
	for (int esc = 0; esc < 2; esc++) {
		memset(big, esc ? '\x01' : 'a', 19999);
		memcpy(big, "GET ", 4);
		big[19999] = '\0';
		e.request = big;
		n = accesslog_format(&b, &e, out, sizeof(out));
		ck_assert_uint_lt(n, PIPE_BUF);
		ck_assert_ptr_eq(strchr(out, '\n'), out + n - 1);
		out[n - 1] = '\0';
		char *save = NULL, *f[16];
		int nf = 0;
		for (char *t = strtok_r(out, " ", &save); t && nf < 16; t = strtok_r(NULL, " ", &save))
			f[nf++] = t;
		ck_assert_int_eq(nf, 11);
		size_t tl = strlen(f[F_TARGET]);
		ck_assert_uint_le(tl, 2048 + 3);
		ck_assert_uint_ge(tl, 2046 + 3);
		ck_assert_str_eq(f[F_TARGET] + tl - 3, "...");
		ck_assert_str_eq(f[F_STATUS], "200");
	}
	free(big);

	/* a target of exactly 2048 bytes is whole, without the marker */
	char t2048[2100] = "GET ";
	memset(t2048 + 4, 'b', 2048);
	t2048[4 + 2048] = '\0';
	e.request = t2048;
	n = accesslog_format(&b, &e, out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, " bbb"));
	ck_assert_ptr_null(strstr(out, "..."));
}
END_TEST

/* ---- unit: how lines reach the target ---- */

static void fill_entry(struct accesslog_entry *e, struct sockaddr_in *cl, const char *user,
		       const char *request)
{
	memset(cl, 0, sizeof(*cl));
	cl->sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.7", &cl->sin_addr);
	memset(e, 0, sizeof(*e));
	e->client = (struct sockaddr *)cl;
	e->user = user;
	e->request = request;
	e->status = 200;
	e->bytes_in = 10;
	e->bytes_out = 20;
}

/* s (n bytes) is whole lines: each with 11 fields and a valid time. Returns how many. */
static int whole_lines(const char *s, size_t n)
{
	int lines = 0;
	ck_assert_msg(n > 0 && s[n - 1] == '\n', "a write that does not end a line (%zu bytes)", n);
	for (const char *p = s; p < s + n;) {
		const char *nl = memchr(p, '\n', (size_t)(s + n - p));
		char t[25];
		ck_assert_int_ge(nl - p, 24);
		memcpy(t, p, 24);
		t[24] = '\0';
		check_time(t);
		int spaces = 0;
		for (const char *q = p; q < nl; q++)
			spaces += *q == ' ';
		ck_assert_int_eq(spaces, 10);
		lines++;
		p = nl + 1;
	}
	return lines;
}

/* stderr is a pipe or socket (journald, docker): every write(2) is whole lines of at most
 * PIPE_BUF bytes. A datagram socket shows each write(2) as one message. Lines with targets of
 * 2 to 5 KiB (cut at 2 KiB) between short ones, so a batch is cut into several writes. */
START_TEST(access_log_pipe_writes_whole_lines)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	int saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(sv[0], STDERR_FILENO), STDERR_FILENO);
	char err[256];
	ck_assert_int_eq(accesslog_open("stderr", err, sizeof(err)), FERRY_OK);

	struct accesslog_buf b;
	memset(&b, 0, sizeof(b));
	struct sockaddr_in cl;
	struct accesslog_entry e;
	static char req[6000];
	int want = 0;
	for (int i = 0; i < 24; i++) {
		size_t len = i % 3 == 0 ? 10 : 2000 + (size_t)i * 130;
		memcpy(req, "GET ", 4);
		memset(req + 4, 'a' + i % 26, len);
		req[4 + len] = '\0';
		fill_entry(&e, &cl, "u", req);
		accesslog_add(&b, &e);
		want++;
	}
	accesslog_flush(&b);
	accesslog_close();
	ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(sv[0]);

	int got = 0, writes = 0;
	static char msg[65536];
	ssize_t k;
	while ((k = recv(sv[1], msg, sizeof(msg), MSG_DONTWAIT)) > 0) {
		ck_assert_int_le(k, PIPE_BUF);
		got += whole_lines(msg, (size_t)k);
		writes++;
	}
	ck_assert_int_eq(got, want);
	ck_assert_int_gt(writes, 1);
	close(sv[1]);
	accesslog_buf_free(&b);
}
END_TEST

/* Disk full: a write cut short leaves a line without its end. The next write that succeeds
 * must not continue it. RLIMIT_FSIZE (SIGXFSZ ignored) cuts a write short exactly like
 * ENOSPC and fails the next one (EFBIG); raising it plays the disk getting space again. In a
 * child process (the limit and stderr are the process's). Loop 0: a file target, reopened
 * after the cut (so that only the file itself can tell: as another process writing next);
 * 1: stderr redirected to a file write-only (the process remembers its own cut). */
START_TEST(access_log_torn_line_not_continued)
{
	make_dir();
	const char *path = in_dir("access.log");
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char err[256];
		signal(SIGXFSZ, SIG_IGN);
		log_open("off", LOG_LVL_ERROR, err, sizeof(err)); /* the expected "File too large" */
		if (_i == 0) {
			if (accesslog_open(path, err, sizeof(err)) != FERRY_OK)
				_exit(10);
		} else {
			int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
			if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
				_exit(11);
			close(fd);
			if (accesslog_open("stderr", err, sizeof(err)) != FERRY_OK)
				_exit(12);
		}
		struct accesslog_buf b;
		memset(&b, 0, sizeof(b));
		struct sockaddr_in cl;
		struct accesslog_entry e;
		for (int i = 0; i < 3; i++) {
			fill_entry(&e, &cl, "first", "GET http://example.org/one");
			accesslog_add(&b, &e);
		}
		accesslog_flush(&b);
		struct stat st;
		if (stat(path, &st) != 0)
			_exit(13);
		struct rlimit old, rl;
		if (getrlimit(RLIMIT_FSIZE, &old) != 0)
			_exit(14);
		rl = old;
		rl.rlim_cur = (rlim_t)st.st_size + 40; /* inside the first "second" line */
		if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
			_exit(15);
		for (int i = 0; i < 3; i++) {
			fill_entry(&e, &cl, "second", "GET http://example.org/two");
			accesslog_add(&b, &e);
		}
		accesslog_flush(&b);
		if (setrlimit(RLIMIT_FSIZE, &old) != 0)
			_exit(16);
		if (_i == 0 && accesslog_open(path, err, sizeof(err)) != FERRY_OK)
			_exit(17);
		for (int i = 0; i < 2; i++) {
			fill_entry(&e, &cl, "third", "GET http://example.org/three");
			accesslog_add(&b, &e);
		}
		accesslog_buf_free(&b);
		accesslog_close();
		_exit(0);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);

	char *log = read_file(path);
	/* the cut happened: 3 whole lines, then a fragment of the first "second" line */
	const char *frag = log;
	for (int i = 0; i < 3; i++) {
		frag = strchr(frag, '\n');
		ck_assert_ptr_nonnull(frag);
		frag++;
	}
	ck_assert_int_eq(whole_lines(log, (size_t)(frag - log)), 3);
	const char *nl = strchr(frag, '\n');
	ck_assert_ptr_nonnull(nl);
	ck_assert_int_eq(nl - frag, 40);
	ck_assert_ptr_null(memchr(frag, ' ', 24)); /* the fragment's own time, nothing glued */
	/* ... and what came after the space returned is whole lines on their own */
	ck_assert_int_eq(whole_lines(nl + 1, strlen(nl + 1)), 2);
	ck_assert_ptr_nonnull(strstr(nl + 1, " third GET http://example.org/three 200 "));
	ck_assert_ptr_null(strstr(nl + 1, "second"));
	free(log);
}
END_TEST

/* ---- unit: the shared counters ---- */

START_TEST(stats_slots_and_sums)
{
	struct stats *s = stats_create(2);
	ck_assert_ptr_nonnull(s);
	int a = stats_claim(s, 1), b = stats_claim(s, 1);
	ck_assert_int_eq(a, 0);
	ck_assert_int_eq(b, 1);
	ck_assert_int_eq(stats_claim(s, 1), -1); /* full */

	/* what a child does after fork */
	stats_attach(s, a);
	struct stats_worker local;
	memset(&local, 0, sizeof(local));
	struct stats_worker *w0 = stats_worker_slot(0, &local), *w1 = stats_worker_slot(1, &local);
	ck_assert_ptr_eq(w0, &s->p[a].w[0]);
	ck_assert_ptr_eq(w1, &s->p[a].w[1]);
	stats_inc(w0, STATS_REQ_2XX);
	stats_add(w1, STATS_REQ_2XX, 2);
	stats_add(w1, STATS_BYTES_OUT, 100);
	stats_gauge_add(w0, STATS_G_CLIENT, 3);
	stats_gauge_add(w0, STATS_G_CLIENT, -1);
	stats_accept_inc(STATS_A_EMPTY_WAKEUPS);
	stats_attach(s, b);
	stats_inc(stats_worker_slot(0, &local), STATS_REQ_4XX);
	stats_gauge_add(stats_worker_slot(0, &local), STATS_G_CLIENT, 1);

	struct stats_sum t;
	stats_read(s, &t);
	ck_assert_uint_eq(t.c[STATS_REQ_2XX], 3);
	ck_assert_uint_eq(t.c[STATS_REQ_4XX], 1);
	ck_assert_uint_eq(t.c[STATS_BYTES_OUT], 100);
	ck_assert_int_eq(t.g[STATS_G_CLIENT], 3);
	ck_assert_uint_eq(t.a[STATS_A_EMPTY_WAKEUPS], 1);
	ck_assert_int_eq(t.children, 2);

	/* child a dies: its gauges go, its counters stay; its slot is handed out again and the
	 * next child counts on from there */
	stats_release(s, a);
	stats_read(s, &t);
	ck_assert_int_eq(t.g[STATS_G_CLIENT], 1);
	ck_assert_uint_eq(t.c[STATS_REQ_2XX], 3);
	ck_assert_int_eq(t.children, 1);
	ck_assert_int_eq(stats_claim(s, 2), a);
	stats_attach(s, a);
	stats_inc(stats_worker_slot(0, &local), STATS_REQ_2XX);
	stats_read(s, &t);
	ck_assert_uint_eq(t.c[STATS_REQ_2XX], 4);

	/* without a slot, a worker counts into its own fallback */
	stats_attach(NULL, -1);
	ck_assert_ptr_eq(stats_worker_slot(0, &local), &local);
	stats_accept_inc(STATS_A_WAKEUPS); /* harmless */

	ck_assert_int_eq(stats_class(204), STATS_REQ_2XX);
	ck_assert_int_eq(stats_class(0), STATS_REQ_NONE);
	ck_assert_int_eq(stats_error_kind(407), STATS_ERR_AUTH);
	ck_assert_int_eq(stats_error_kind(200), STATS_NCOUNTERS);
	stats_destroy(s);
}
END_TEST

/* ---- a strict parser of the Prometheus text format (version 0.0.4) ---- */

#define PROM_MAX 256
struct prom {
	int n;
	struct {
		char series[256]; /* name{labels} exactly as written */
		double v;
	} s[PROM_MAX];
	char error[256];
};

static int prom_name_start(char ch)
{
	return isalpha((unsigned char)ch) || ch == '_' || ch == ':';
}

static int prom_name_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == ':';
}

/* Parse text; FERRY_OK or FERRY_ERR with p->error naming the line. Rules checked: every line
 * is a comment (# HELP name text, # TYPE name counter|gauge|untyped|summary|histogram) or a
 * sample name[{label="value",...}] value; names and label names well formed, label values
 * with only \\ \" \n escapes; TYPE at most once per family and before its samples; a
 * family's samples contiguous; counters end in _total; no series twice; values are numbers;
 * the text ends with a newline and holds no empty line. */
static int prom_parse(const char *text, struct prom *p)
{
	char families[64][128], types[64][16];
	int nfam = 0, lineno = 0;
	char last_family[128] = "";
	memset(p, 0, sizeof(*p));
	size_t tl = strlen(text);
	if (tl == 0 || text[tl - 1] != '\n') {
		snprintf(p->error, sizeof(p->error), "does not end with a newline");
		return FERRY_ERR;
	}
	const char *s = text;
	while (*s) {
		const char *nl = strchr(s, '\n');
		char line[1024];
		size_t len = (size_t)(nl - s);
		lineno++;
		if (len == 0 || len >= sizeof(line)) {
			snprintf(p->error, sizeof(p->error), "line %d: empty or too long", lineno);
			return FERRY_ERR;
		}
		memcpy(line, s, len);
		line[len] = '\0';
		s = nl + 1;
		if (line[0] == '#') {
			char kw[8], name[128], rest[512];
			int k = sscanf(line, "# %7s %127s %511[^\n]", kw, name, rest);
			if (k < 3 || (strcmp(kw, "HELP") != 0 && strcmp(kw, "TYPE") != 0)) {
				snprintf(p->error, sizeof(p->error), "line %d: bad comment: %.100s", lineno, line);
				return FERRY_ERR;
			}
			if (strcmp(kw, "TYPE") == 0) {
				if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "untyped") &&
				    strcmp(rest, "summary") && strcmp(rest, "histogram")) {
					snprintf(p->error, sizeof(p->error), "line %d: bad type %.100s", lineno, rest);
					return FERRY_ERR;
				}
				for (int i = 0; i < nfam; i++)
					if (strcmp(families[i], name) == 0) {
						snprintf(p->error, sizeof(p->error), "line %d: TYPE of %s twice or after its samples",
							 lineno, name);
						return FERRY_ERR;
					}
				if (nfam == 64)
					return FERRY_ERR;
				snprintf(families[nfam], sizeof(families[0]), "%s", name);
				snprintf(types[nfam], sizeof(types[0]), "%.15s", rest);
				nfam++;
				if (strcmp(rest, "counter") == 0 &&
				    (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total") != 0)) {
					snprintf(p->error, sizeof(p->error), "line %d: counter %s without _total", lineno, name);
					return FERRY_ERR;
				}
			}
			continue;
		}
		/* a sample */
		const char *q = line;
		char name[128];
		size_t nlen = 0;
		if (!prom_name_start(*q)) {
			snprintf(p->error, sizeof(p->error), "line %d: bad metric name: %.100s", lineno, line);
			return FERRY_ERR;
		}
		while (prom_name_char(*q) && nlen < sizeof(name) - 1)
			name[nlen++] = *q++;
		name[nlen] = '\0';
		if (*q == '{') {
			q++;
			for (;;) {
				if (!prom_name_start(*q) || *q == ':') {
					snprintf(p->error, sizeof(p->error), "line %d: bad label name", lineno);
					return FERRY_ERR;
				}
				while (isalnum((unsigned char)*q) || *q == '_')
					q++;
				if (q[0] != '=' || q[1] != '"') {
					snprintf(p->error, sizeof(p->error), "line %d: expected =\"", lineno);
					return FERRY_ERR;
				}
				q += 2;
				while (*q && *q != '"') {
					if (*q == '\\') {
						if (q[1] != '\\' && q[1] != '"' && q[1] != 'n') {
							snprintf(p->error, sizeof(p->error), "line %d: bad escape", lineno);
							return FERRY_ERR;
						}
						q++;
					}
					q++;
				}
				if (*q != '"') {
					snprintf(p->error, sizeof(p->error), "line %d: unterminated label value", lineno);
					return FERRY_ERR;
				}
				q++;
				if (*q == ',') {
					q++;
					continue;
				}
				if (*q == '}') {
					q++;
					break;
				}
				snprintf(p->error, sizeof(p->error), "line %d: expected , or }", lineno);
				return FERRY_ERR;
			}
		}
		size_t slen = (size_t)(q - line);
		if (*q != ' ') {
			snprintf(p->error, sizeof(p->error), "line %d: expected a space before the value", lineno);
			return FERRY_ERR;
		}
		q++;
		char *end;
		double v;
		if (strcmp(q, "+Inf") == 0 || strcmp(q, "-Inf") == 0 || strcmp(q, "NaN") == 0) {
			v = strtod(q, &end);
			end = (char *)q + strlen(q);
		} else {
			errno = 0;
			v = strtod(q, &end);
			if (end == q || errno != 0 || isspace((unsigned char)*q)) {
				snprintf(p->error, sizeof(p->error), "line %d: bad value %.100s", lineno, q);
				return FERRY_ERR;
			}
			if (*end == ' ') { /* an optional integer timestamp */
				char *e2;
				strtoll(end + 1, &e2, 10);
				if (e2 == end + 1)
					end = e2 - 1;
				else
					end = e2;
			}
		}
		if (*end != '\0') {
			snprintf(p->error, sizeof(p->error), "line %d: junk after the value: %.100s", lineno, end);
			return FERRY_ERR;
		}
		/* its family: declared, and contiguous */
		int fam = -1;
		for (int i = 0; i < nfam; i++)
			if (strcmp(families[i], name) == 0)
				fam = i;
		if (fam < 0) {
			snprintf(p->error, sizeof(p->error), "line %d: sample of %s without TYPE", lineno, name);
			return FERRY_ERR;
		}
		if (strcmp(last_family, name) != 0) {
			for (int i = 0; i < p->n; i++) {
				if (strncmp(p->s[i].series, name, nlen) == 0 &&
				    (p->s[i].series[nlen] == '\0' || p->s[i].series[nlen] == '{')) {
					snprintf(p->error, sizeof(p->error), "line %d: samples of %s not together", lineno, name);
					return FERRY_ERR;
				}
			}
			snprintf(last_family, sizeof(last_family), "%s", name);
		}
		if (strcmp(types[fam], "counter") == 0 && v < 0) {
			snprintf(p->error, sizeof(p->error), "line %d: negative counter", lineno);
			return FERRY_ERR;
		}
		for (int i = 0; i < p->n; i++)
			if (strlen(p->s[i].series) == slen && memcmp(p->s[i].series, line, slen) == 0) {
				snprintf(p->error, sizeof(p->error), "line %d: series twice", lineno);
				return FERRY_ERR;
			}
		if (p->n == PROM_MAX || slen >= sizeof(p->s[0].series))
			return FERRY_ERR;
		memcpy(p->s[p->n].series, line, slen);
		p->s[p->n].series[slen] = '\0';
		p->s[p->n].v = v;
		p->n++;
	}
	return FERRY_OK;
}

static double prom_get(const struct prom *p, const char *series)
{
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->s[i].series, series) == 0)
			return p->s[i].v;
	ck_abort_msg("no series %s", series);
	return NAN;
}

START_TEST(prom_parser_is_strict)
{
	static struct prom p;
	ck_assert_int_eq(prom_parse("# TYPE a_total counter\na_total 1\n", &p), FERRY_OK);
	ck_assert_int_eq(prom_parse("# TYPE a_total counter\na_total{x=\"1\",y=\"a\\\"b\"} 1.5e3 123\n", &p), FERRY_OK);
	ck_assert(prom_get(&p, "a_total{x=\"1\",y=\"a\\\"b\"}") == 1500);
	const char *bad[] = {
		"a 1\n",                                           /* no TYPE */
		"# TYPE a_total counter\na_total 1",               /* no final newline */
		"# TYPE a counter\na 1\n",                         /* counter without _total */
		"# TYPE a gauge\na x\n",                           /* not a number */
		"# TYPE a gauge\na{x=1} 1\n",                      /* unquoted label */
		"# TYPE a gauge\na{x=\"1\",} 1\n",                 /* trailing comma */
		"# TYPE a gauge\na 1\na 2\n",                      /* series twice */
		"# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"1\"} 2\n", /* not together */
		"# TYPE a gauge\n\na 1\n",                         /* empty line */
		"# TYPE a gauge\na  1\n",                          /* two spaces */
		"# TYPE a_total counter\na_total -1\n",            /* negative counter */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(prom_parse(bad[i], &p) == FERRY_ERR, "accepted: %s", bad[i]);
}
END_TEST

/* the metrics page of a region with known values parses, and says them */
START_TEST(metrics_text_of_a_region)
{
	static struct prom p;
	struct stats *s = stats_create(3);
	ck_assert_ptr_nonnull(s);
	int a = stats_claim(s, 1);
	stats_attach(s, a);
	struct stats_worker local;
	stats_add(stats_worker_slot(1, &local), STATS_REQ_2XX, 5);
	stats_gauge_add(stats_worker_slot(1, &local), STATS_G_CLIENT, 2);
	stats_attach(NULL, -1);
	char *text = admin_metrics_text(s, 7, 1.5, 0);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(prom_parse(text, &p) == FERRY_OK, "%s\n%s", p.error, text);
	ck_assert(prom_get(&p, "ferry_requests_total{class=\"2xx\"}") == 5);
	ck_assert(prom_get(&p, "ferry_config_generation") == 7);
	ck_assert(prom_get(&p, "ferry_connections_open{kind=\"client\"}") == 2);
	char series[128];
	snprintf(series, sizeof(series), "ferry_worker_connections{slot=\"%d\",pid=\"%d\",worker=\"1\"}", a,
		 (int)getpid());
	ck_assert(prom_get(&p, series) == 2);
	free(text);
	text = admin_status_text(s, 7, 1.5, 1);
	ck_assert_ptr_nonnull(strstr(text, "draining"));
	ck_assert_ptr_nonnull(strstr(text, "2xx 5"));
	free(text);
	stats_destroy(s);
}
END_TEST

/* ---- end to end ---- */

static void hash_password(const char *pw, char *out, size_t cap)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	ck_assert_ptr_nonnull(crypt_gensalt_rn("$6$", 0, NULL, 0, salt, sizeof(salt)));
	struct crypt_data cd;
	memset(&cd, 0, sizeof(cd));
	char *h = crypt_r(pw, salt, &cd);
	ck_assert_ptr_nonnull(h);
	snprintf(out, cap, "%s", h);
}

/* "alice:s3cret" in base64 */
#define ALICE "YWxpY2U6czNjcmV0"

/* Send req, read to the close; returns what was received (malloc'd), *n its size. */
static char *exchange(const char *req, size_t *n)
{
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	char *got = harness_read_to_close(&c, n, HARNESS_TIMEOUT_MS);
	harness_close(&c);
	return got;
}

static void begin_e2e(int mux)
{
	make_dir();
	ck_assert_int_eq(harness_origin_start(&origin), FERRY_OK);
	harness_conf_base(&conf, muxes[mux], &origin);
	harness_conf_set(&conf, "log", "access_log", in_dir("access.log"));
}

/* Each kind of request leaves one line, checked field by field. */
START_TEST(access_log_line_per_kind)
{
	begin_e2e(_i);
	char h[256], text[400];
	hash_password("s3cret", h, sizeof(h));
	snprintf(text, sizeof(text), "alice:%s\n", h);
	ck_assert_int_eq(harness_write_file(in_dir("htpasswd"), text), FERRY_OK);
	harness_conf_set(&conf, "auth", "htpasswd", in_dir("htpasswd"));
	harness_conf_set(&conf, "server", "threads", "1");
	ck_assert_int_eq(harness_ferry_start(&ferry, &conf), FERRY_OK);

	char req[512], target[128], up[64];
	size_t n;
	char *got;

	/* ok: 200, then the same again on a kept-alive connection to the origin (reused) */
	snprintf(target, sizeof(target), "http://127.0.0.1:%d/len/10", origin.port);
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic " ALICE
		 "\r\nConnection: close\r\n\r\n", target);
	got = exchange(req, &n);
	ck_assert_msg(strncmp(got, "HTTP/1.1 200", 12) == 0, "%s", got);
	size_t ok_in = strlen(req), ok_out = n;
	free(got);
	char target2[128], req2[512];
	snprintf(target2, sizeof(target2), "http://127.0.0.1:%d/len/11", origin.port);
	snprintf(req2, sizeof(req2), "GET %s HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic " ALICE
		 "\r\nConnection: close\r\n\r\n", target2);
	got = exchange(req2, &n);
	ck_assert_msg(strncmp(got, "HTTP/1.1 200", 12) == 0, "%s", got);
	size_t ok2_in = strlen(req2), ok2_out = n;
	free(got);

	/* 407: no credentials */
	char target407[128], req407[512];
	snprintf(target407, sizeof(target407), "http://127.0.0.1:%d/len/407", origin.port);
	snprintf(req407, sizeof(req407), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target407);
	got = exchange(req407, &n);
	ck_assert_msg(strncmp(got, "HTTP/1.1 407", 12) == 0, "%s", got);
	size_t a_in = strlen(req407), a_out = n;
	free(got);

	/* 403: CONNECT to a port not in connect_ports */
	char req403[512];
	snprintf(req403, sizeof(req403), "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic "
		 ALICE "\r\n\r\n");
	got = exchange(req403, &n);
	ck_assert_msg(strncmp(got, "HTTP/1.1 403", 12) == 0, "%s", got);
	size_t d_in = strlen(req403), d_out = n;
	free(got);

	/* 502: nobody listens there */
	int dead = harness_closed_port();
	char target502[128], req502[512];
	snprintf(target502, sizeof(target502), "http://127.0.0.1:%d/x", dead);
	snprintf(req502, sizeof(req502), "GET %s HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic " ALICE
		 "\r\n\r\n", target502);
	got = exchange(req502, &n);
	ck_assert_msg(strncmp(got, "HTTP/1.1 502", 12) == 0, "%s", got);
	size_t u_in = strlen(req502), u_out = n;
	free(got);

	/* a tunnel: 5 bytes each way through the echo server */
	char ttarget[64], treq[512];
	snprintf(ttarget, sizeof(ttarget), "127.0.0.1:%d", origin.echo_port);
	snprintf(treq, sizeof(treq), "CONNECT %s HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic " ALICE
		 "\r\n\r\n", ttarget);
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, treq), FERRY_OK);
	struct harness_resp r;
	ck_assert_int_eq(harness_read_response(&c, &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	size_t t_out = sizeof(established) - 1;
	harness_resp_free(&r);
	ck_assert_int_eq(harness_send_str(&c, "hello"), FERRY_OK);
	harness_shutdown_write(&c);
	got = harness_read_to_close(&c, &n, HARNESS_TIMEOUT_MS);
	ck_assert_uint_eq(n, 5);
	ck_assert(memcmp(got, "hello", 5) == 0);
	free(got);
	harness_close(&c);
	size_t t_in = strlen(treq) + 5;
	t_out += 5;

	/* every line is written at the latest when ferry stops */
	ck_assert_int_eq(harness_ferry_stop(&ferry), 0);
	char *log = read_file(in_dir("access.log"));
	ck_assert_msg(count_lines(log) == 6, "%s", log);
	struct line l;
	snprintf(up, sizeof(up), "127.0.0.1:%d", origin.port);
	ck_assert_msg(find_line(log, F_TARGET, target, &l), "%s", log);
	check_line(&l, "alice", "GET", target, 200, ok_in, ok_out, up, "new");
	ck_assert_msg(find_line(log, F_TARGET, target2, &l), "%s", log);
	check_line(&l, "alice", "GET", target2, 200, ok2_in, ok2_out, up, "reused");
	ck_assert_msg(find_line(log, F_TARGET, target407, &l), "%s", log);
	check_line(&l, "-", "GET", target407, 407, a_in, a_out, "-", "-");
	ck_assert_msg(find_line(log, F_TARGET, "127.0.0.1:1", &l), "%s", log);
	check_line(&l, "alice", "CONNECT", "127.0.0.1:1", 403, d_in, d_out, "-", "-");
	char dead_up[64];
	snprintf(dead_up, sizeof(dead_up), "127.0.0.1:%d", dead);
	ck_assert_msg(find_line(log, F_TARGET, target502, &l), "%s", log);
	check_line(&l, "alice", "GET", target502, 502, u_in, u_out, dead_up, "new");
	ck_assert_msg(find_line(log, F_TARGET, ttarget, &l), "%s", log);
	check_line(&l, "alice", "CONNECT", ttarget, 200, t_in, t_out, ttarget, "new");
	free(log);
	harness_origin_stop(&origin);
}
END_TEST

/* Lines reach the file within about a second without a stop; SIGUSR1 reopens it. */
START_TEST(access_log_flushed_and_reopened)
{
	begin_e2e(_i);
	harness_conf_set(&conf, "server", "processes", "2");
	ck_assert_int_eq(harness_ferry_start(&ferry, &conf), FERRY_OK);
	char req[256];
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	struct harness_resp r;
	ck_assert_int_eq(harness_request(ferry.port, req, &r, 0), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	char *log = wait_lines(in_dir("access.log"), 1);
	ck_assert_msg(count_lines(log) == 1, "no line within 5 s: '%s'", log);
	free(log);

	/* logrotate: rename, then SIGUSR1 to the master (forwarded to every child) */
	ck_assert_int_eq(rename(in_dir("access.log"), in_dir("access.log.1")), 0);
	ck_assert_int_eq(kill(ferry.pid, SIGUSR1), 0);
	/* both children must have reopened: send until each process has taken a request, i.e.
	 * enough requests that the new file fills; every line after the signal lands there */
	long long end = harness_now_ms() + 5000;
	int sent = 0;
	char *fresh = NULL;
	harness_sleep_ms(200); /* the signal is asynchronous: let it arrive */
	do {
		for (int i = 0; i < 4; i++, sent++) {
			ck_assert_int_eq(harness_request(ferry.port, req, &r, 0), FERRY_OK);
			harness_resp_free(&r);
		}
		free(fresh);
		fresh = wait_lines(in_dir("access.log"), sent);
	} while (count_lines(fresh) < sent && harness_now_ms() < end);
	ck_assert_msg(count_lines(fresh) == sent, "new file has %d of %d lines", count_lines(fresh), sent);
	free(fresh);

	/* many clients at once over 2 processes x 2 workers: every line whole */
	enum { CONC = 40 };
	struct harness_conn cs[CONC];
	for (int i = 0; i < CONC; i++) {
		ck_assert_int_eq(harness_connect(&cs[i], ferry.port), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&cs[i], req), FERRY_OK);
	}
	for (int i = 0; i < CONC; i++) {
		ck_assert_int_eq(harness_read_response(&cs[i], &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
		ck_assert_int_eq(r.status, 200);
		harness_resp_free(&r);
		harness_close(&cs[i]);
	}
	fresh = wait_lines(in_dir("access.log"), sent + CONC);
	ck_assert_int_eq(check_all_lines(fresh), sent + CONC);
	free(fresh);
	char *old = read_file(in_dir("access.log.1"));
	ck_assert_int_eq(count_lines(old), 1);
	free(old);
	ck_assert_int_eq(harness_ferry_stop(&ferry), 0);
	harness_origin_stop(&origin);
}
END_TEST

static int admin_port;

static void begin_admin(int mux, int processes)
{
	begin_e2e(mux);
	char v[64], p[8];
	admin_port = harness_free_port();
	snprintf(v, sizeof(v), "127.0.0.1:%d", admin_port);
	harness_conf_set(&conf, "admin", "listen", v);
	snprintf(p, sizeof(p), "%d", processes);
	harness_conf_set(&conf, "server", "processes", p);
}

static void scrape(struct prom *p)
{
	struct harness_resp r;
	ck_assert_int_eq(harness_request(admin_port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(harness_resp_header(&r, "content-type"), "text/plain; version=0.0.4"));
	ck_assert_msg(prom_parse(r.body, p) == FERRY_OK, "%s\n%s", p->error, r.body);
	harness_resp_free(&r);
}

/* Wait (hang guard 5 s) until series reaches at least want. */
static double scrape_until(struct prom *p, const char *series, double want)
{
	long long end = harness_now_ms() + 5000;
	double v;
	for (;;) {
		scrape(p);
		v = prom_get(p, series);
		if (v >= want || harness_now_ms() > end)
			return v;
		harness_sleep_ms(20);
	}
}

START_TEST(metrics_parse_and_move)
{
	static struct prom p;
	begin_admin(_i, 2);
	ck_assert_int_eq(harness_ferry_start(&ferry, &conf), FERRY_OK);
	scrape(&p);
	ck_assert(prom_get(&p, "ferry_config_generation") == 1);
	ck_assert(prom_get(&p, "ferry_draining") == 0);
	/* both children have started and claimed their slots */
	long long end = harness_now_ms() + 5000;
	while (prom_get(&p, "ferry_children") < 2 && harness_now_ms() < end) {
		harness_sleep_ms(20);
		scrape(&p);
	}
	ck_assert(prom_get(&p, "ferry_children") == 2);
	double ok0 = prom_get(&p, "ferry_requests_total{class=\"2xx\"}");
	double c4 = prom_get(&p, "ferry_requests_total{class=\"4xx\"}");
	double acc0 = prom_get(&p, "ferry_connections_accepted_total");
	double out0 = prom_get(&p, "ferry_sent_bytes_total");
	double den0 = prom_get(&p, "ferry_errors_total{kind=\"denied\"}");
	double miss0 = prom_get(&p, "ferry_upstream_pool_misses_total");

	/* 10 requests on separate connections: they spread over both processes */
	char req[256];
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/len/100 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	for (int i = 0; i < 10; i++) {
		struct harness_resp r;
		ck_assert_int_eq(harness_request(ferry.port, req, &r, 0), FERRY_OK);
		ck_assert_int_eq(r.status, 200);
		harness_resp_free(&r);
	}
	struct harness_resp r;
	ck_assert_int_eq(harness_request(ferry.port, "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n", &r,
					 HARNESS_NOBODY), FERRY_OK);
	ck_assert_int_eq(r.status, 403);
	harness_resp_free(&r);

	ck_assert(scrape_until(&p, "ferry_requests_total{class=\"2xx\"}", ok0 + 10) == ok0 + 10);
	ck_assert(scrape_until(&p, "ferry_requests_total{class=\"4xx\"}", c4 + 1) == c4 + 1);
	ck_assert(prom_get(&p, "ferry_connections_accepted_total") >= acc0 + 11);
	ck_assert(prom_get(&p, "ferry_sent_bytes_total") > out0 + 10 * 100);
	ck_assert(prom_get(&p, "ferry_errors_total{kind=\"denied\"}") == den0 + 1);
	ck_assert(scrape_until(&p, "ferry_upstream_pool_misses_total", miss0 + 1) >= miss0 + 1);
	/* each child's workers are listed (once the children have started their workers) */
	int workers = 0;
	end = harness_now_ms() + 5000;
	for (;;) {
		workers = 0;
		for (int i = 0; i < p.n; i++)
			workers += strncmp(p.s[i].series, "ferry_worker_connections{", 25) == 0;
		if (workers >= 4 || harness_now_ms() > end)
			break;
		harness_sleep_ms(20);
		scrape(&p);
	}
	ck_assert_int_eq(workers, 4); /* 2 processes x 2 threads */

	/* an open tunnel shows as a gauge */
	char treq[128];
	snprintf(treq, sizeof(treq), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", origin.echo_port);
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, treq), FERRY_OK);
	ck_assert_int_eq(harness_read_response(&c, &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	ck_assert(scrape_until(&p, "ferry_connections_open{kind=\"tunnel\"}", 1) == 1);
	ck_assert(prom_get(&p, "ferry_connections_open{kind=\"client\"}") >= 1);
	harness_close(&c);
	end = harness_now_ms() + 5000;
	do {
		harness_sleep_ms(20);
		scrape(&p);
	} while (prom_get(&p, "ferry_connections_open{kind=\"tunnel\"}") != 0 && harness_now_ms() < end);
	ck_assert(prom_get(&p, "ferry_connections_open{kind=\"tunnel\"}") == 0);
	ck_assert(prom_get(&p, "ferry_tunnels_total") >= 1);

	/* counters survive a child's death: kill one, the sums do not go back */
	double before = prom_get(&p, "ferry_requests_total{class=\"2xx\"}");
	pid_t child = harness_ferry_child(&ferry, 2000);
	ck_assert_int_gt(child, 0);
	ck_assert_int_eq(kill(child, SIGKILL), 0);
	char dead_pid[32];
	snprintf(dead_pid, sizeof(dead_pid), "pid=\"%d\"", (int)child);
	end = harness_now_ms() + 8000;
	int gone = 0;
	do {
		harness_sleep_ms(20);
		scrape(&p);
		ck_assert(prom_get(&p, "ferry_requests_total{class=\"2xx\"}") >= before);
		gone = 1;
		for (int i = 0; i < p.n; i++)
			if (strstr(p.s[i].series, dead_pid))
				gone = 0;
	} while (!(gone && prom_get(&p, "ferry_children") == 2) && harness_now_ms() < end); /* reaped, replaced */
	ck_assert(gone);
	ck_assert(prom_get(&p, "ferry_children") == 2);
	ck_assert(prom_get(&p, "ferry_requests_total{class=\"2xx\"}") == before);

	/* a reload is a new configuration generation; counters go on */
	ck_assert_int_eq(kill(ferry.pid, SIGHUP), 0);
	ck_assert(scrape_until(&p, "ferry_config_generation", 2) == 2);
	ck_assert(prom_get(&p, "ferry_requests_total{class=\"2xx\"}") == before);
	ck_assert_int_eq(harness_ferry_stop(&ferry), 0);
	harness_origin_stop(&origin);
}
END_TEST

static void admin_expect(const char *req, int status, const char *body_has)
{
	struct harness_resp r;
	ck_assert_msg(harness_request(admin_port, req, &r, 0) == FERRY_OK, "no answer to %s", req);
	ck_assert_msg(r.status == status, "%s: %d", req, r.status);
	if (body_has)
		ck_assert_msg(strstr(r.body, body_has) != NULL, "%s: %s", req, r.body);
	ck_assert_str_eq(harness_resp_header(&r, "connection"), "close");
	harness_resp_free(&r);
}

static void print_error(void *arg, const char *msg)
{
	fprintf(stderr, "%s\n", msg);
}

static int count_of(const char *s, const char *what)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, what)) != NULL; p++)
		n++;
	return n;
}

/* accept4 fails with EMFILE: the admin thread must not spin on the listener that stays
 * readable (one warning per episode, not one per loop), and serves the waiting client once
 * descriptors are free again. In the test process: the admin module directly. */
START_TEST(admin_accept_emfile_pauses)
{
	make_dir();
	const char *logpath = in_dir("error.log");
	char err[512];
	ck_assert_int_eq(log_open(logpath, LOG_LVL_INFO, err, sizeof(err)), FERRY_OK);
	struct stats *st = stats_create(1);
	ck_assert_ptr_nonnull(st);
	struct config *cfg = NULL;
	struct admin *a = NULL;
	int port = -1;
	for (int tries = 0; a == NULL && tries < 5; tries++) { /* another suite may take the port */
		char text[128];
		port = harness_free_port();
		snprintf(text, sizeof(text), "[admin]\nlisten = 127.0.0.1:%d\n", port);
		config_free(cfg);
		cfg = config_load_string(text, "admin-test", print_error, NULL);
		ck_assert_ptr_nonnull(cfg);
		int failed;
		a = admin_create(cfg, st, err, sizeof(err), &failed);
	}
	ck_assert_msg(a != NULL, "%s", err);
	ck_assert_int_eq(admin_start(a, err, sizeof(err)), FERRY_OK);

	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(c, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);

	/* no descriptor left for accept4 */
	struct rlimit old, rl;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	rl = old;
	rl.rlim_cur = 64;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	int fill[64], nfill = 0;
	while (nfill < 64 && (fill[nfill] = dup(c)) >= 0)
		nfill++;
	int dup_errno = errno;
	int conn = connect(c, (struct sockaddr *)&sa, sizeof(sa)); /* queued by the kernel */
	harness_sleep_ms(500); /* a spinning thread logs thousands of warnings meanwhile */
	while (nfill > 0)
		close(fill[--nfill]);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	ck_assert_int_eq(dup_errno, EMFILE);
	ck_assert_int_eq(conn, 0);
	char *log = read_file(logpath);
	ck_assert_msg(count_of(log, "admin: accept4: ") == 1, "accept4 warnings: %d",
		      count_of(log, "admin: accept4: "));
	ck_assert_ptr_nonnull(strstr(log, "Too many open files"));
	free(log);

	/* descriptors are back: the waiting client is served (hang guard: 10 s) */
	const char req[] = "GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
	ck_assert_int_eq(send(c, req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(req) - 1);
	struct timeval tv = { 10, 0 };
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char resp[4096];
	size_t got = 0;
	ssize_t k;
	while (got < sizeof(resp) - 1 && (k = recv(c, resp + got, sizeof(resp) - 1 - got, 0)) > 0)
		got += (size_t)k;
	resp[got] = '\0';
	ck_assert_msg(strncmp(resp, "HTTP/1.1 200 ", 13) == 0, "answer: %s", resp);
	close(c);
	log = read_file(logpath);
	ck_assert_int_eq(count_of(log, "admin: accept4: "), 1);
	ck_assert_ptr_nonnull(strstr(log, "admin: accept4 succeeds again"));
	free(log);
	admin_destroy(a);
	config_free(cfg);
	stats_destroy(st);
}
END_TEST

START_TEST(admin_answers_bad_requests)
{
	begin_admin(_i, 1);
	ck_assert_int_eq(harness_ferry_start(&ferry, &conf), FERRY_OK);
	admin_expect("GET /status HTTP/1.1\r\nHost: x\r\n\r\n", 200, "accepting");
	admin_expect("GET /metrics?x=1 HTTP/1.0\r\n\r\n", 200, "ferry_requests_total{class=\"2xx\"}");
	admin_expect("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, "/metrics");
	admin_expect("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, "GET");
	admin_expect("DELETE /status HTTP/1.1\r\n\r\n", 405, NULL);
	admin_expect("GET /metrics HTTP/2.0\r\n\r\n", 400, "HTTP/1");
	admin_expect("garbage\r\n\r\n", 400, "request line");
	admin_expect("GET http://x/metrics HTTP/1.1\r\n\r\n", 400, "path");
	admin_expect("G(T /metrics HTTP/1.1\r\n\r\n", 400, "method");
	/* a bad request line is refused when it ends, or at its first impossible byte, without
	 * waiting for the rest of a head that will never come */
	admin_expect("GET /metrics HTTP/9\r\n", 400, "HTTP/1");
	admin_expect("\x16\x03\x01", 400, "request line");
	/* part of a head, then silence: a 408 that says so, not a silent close */
	admin_expect("GET /metrics HTTP/1.1\r\nHost: x\r\n", 408, "request head");
	/* HEAD: the head only */
	struct harness_resp r;
	ck_assert_int_eq(harness_request(admin_port, "HEAD /status HTTP/1.1\r\n\r\n", &r, HARNESS_NOBODY), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	/* a head too large */
	char *big = malloc(8000);
	strcpy(big, "GET /metrics HTTP/1.1\r\nX: ");
	memset(big + strlen(big), 'a', 6000);
	strcpy(big + 6026, "\r\n\r\n");
	admin_expect(big, 431, NULL);
	free(big);
	/* a silent client does not hold up the others */
	struct harness_conn idle;
	ck_assert_int_eq(harness_connect(&idle, admin_port), FERRY_OK);
	admin_expect("GET /status HTTP/1.1\r\n\r\n", 200, NULL);
	harness_close(&idle);
	ck_assert_int_eq(harness_ferry_stop(&ferry), 0);

	/* its own allow list: loopback not in it */
	harness_conf_set(&conf, "admin", "allow", "192.0.2.0/24");
	ck_assert_int_eq(harness_ferry_start(&ferry, &conf), FERRY_OK);
	admin_expect("GET /metrics HTTP/1.1\r\n\r\n", 403, "[admin] allow");
	ck_assert_int_eq(harness_ferry_stop(&ferry), 0);
	harness_origin_stop(&origin);
}
END_TEST

/* /status is 200 while accepting and 503 once a graceful stop began, while a connection is
 * still open (a load balancer stops sending new clients; the old ones finish). */
START_TEST(status_503_while_draining)
{
	begin_admin(_i, 1);
	harness_conf_set(&conf, "timeouts", "shutdown", "10");
	ck_assert_int_eq(harness_ferry_start(&ferry, &conf), FERRY_OK);
	admin_expect("GET /status HTTP/1.1\r\n\r\n", 200, "accepting");

	char treq[128];
	snprintf(treq, sizeof(treq), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", origin.echo_port);
	struct harness_conn c;
	struct harness_resp r;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, treq), FERRY_OK);
	ck_assert_int_eq(harness_read_response(&c, &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);

	ck_assert_int_eq(kill(ferry.pid, SIGTERM), 0);
	long long end = harness_now_ms() + 5000;
	int status = 0;
	do {
		ck_assert_int_eq(harness_request(admin_port, "GET /status HTTP/1.1\r\n\r\n", &r, 0), FERRY_OK);
		status = r.status;
		if (status == 503) {
			ck_assert_ptr_nonnull(strstr(r.body, "draining"));
			ck_assert_ptr_nonnull(strstr(r.body, "tunnels 1"));
		}
		harness_resp_free(&r);
		if (status != 503)
			harness_sleep_ms(20);
	} while (status != 503 && harness_now_ms() < end);
	ck_assert_int_eq(status, 503);
	/* the tunnel still works */
	ck_assert_int_eq(harness_send_str(&c, "ping"), FERRY_OK);
	ck_assert_uint_ge(harness_read_atleast(&c, 4, HARNESS_TIMEOUT_MS), 4);
	ck_assert(memcmp(c.buf, "ping", 4) == 0);
	static struct prom p;
	scrape(&p);
	ck_assert(prom_get(&p, "ferry_draining") == 1);
	harness_close(&c);
	/* then ferry finishes and exits cleanly */
	int st = 0;
	pid_t w = 0;
	end = harness_now_ms() + 8000;
	while ((w = waitpid(ferry.pid, &st, WNOHANG)) == 0 && harness_now_ms() < end)
		harness_sleep_ms(20);
	ck_assert_int_eq(w, ferry.pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ferry.pid = 0;
	harness_origin_stop(&origin);
}
END_TEST

/* Clients that leave (before a request, in the middle of a head, in the middle of a
 * response, with a reset) are ordinary: no error log line at info, but counted. */
START_TEST(ordinary_disconnects_not_logged)
{
	static struct prom p;
	begin_admin(_i, 1);
	ck_assert_int_eq(harness_ferry_start(&ferry, &conf), FERRY_OK);
	struct harness_conn c;
	struct linger lg = { 1, 0 };
	/* 1: connect, close */
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	harness_close(&c);
	/* 2: half a head, then a reset */
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, "GET http://127.0.0.1/ HTTP/1.1\r\nHo"), FERRY_OK);
	harness_sleep_ms(50);
	setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	harness_close(&c);
	/* 3: a large response, reset after its first bytes */
	char req[256];
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/len/50000000 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	ck_assert_uint_ge(harness_read_atleast(&c, 1000, HARNESS_TIMEOUT_MS), 1000);
	setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	harness_close(&c);
	/* counted: two requests that ended badly */
	ck_assert(scrape_until(&p, "ferry_errors_total{kind=\"client_abort\"}", 1) >= 1);
	ck_assert(scrape_until(&p, "ferry_errors_total{kind=\"aborted\"}", 1) >= 1);
	char *log = NULL;
	ck_assert_int_eq(harness_ferry_stop_log(&ferry, &log), 0);
	ck_assert_msg(strstr(log, " error: ") == NULL && strstr(log, " warn: ") == NULL, "%s", log);
	free(log);
	harness_origin_stop(&origin);
}
END_TEST

/* Start-up failures and ferry -t name the file, the line and the key. */
START_TEST(startup_failures_name_file_line_key)
{
	make_dir();
	char path[160], text[512];
	snprintf(path, sizeof(path), "%s", in_dir("p.ini"));
	int busy_port;
	int busy = harness_listen(0, 1, &busy_port);
	ck_assert_int_ge(busy, 0);

	/* [admin] listen on a port in use: exit 3 */
	snprintf(text, sizeof(text), "[server]\nlisten = 127.0.0.1:%d\n[access]\nblock_destinations =\n"
		 "[admin]\nlisten = 127.0.0.1:%d\n", harness_free_port(), busy_port);
	ck_assert_int_eq(harness_write_file(path, text), FERRY_OK);
	struct harness_run r;
	const char *args[] = { "-f", "-c", path, NULL };
	ck_assert_int_eq(harness_run_ferry(&r, args, 10000), FERRY_OK);
	ck_assert_int_eq(r.status, 3);
	char want[256];
	snprintf(want, sizeof(want), "%s: line 6: [admin] listen = 127.0.0.1:%d: bind:", path, busy_port);
	ck_assert_msg(strstr(r.err, want) != NULL, "%s", r.err);
	harness_run_free(&r);

	/* [server] listen likewise */
	snprintf(text, sizeof(text), "[server]\n\nlisten = 127.0.0.1:%d\n", busy_port);
	ck_assert_int_eq(harness_write_file(path, text), FERRY_OK);
	ck_assert_int_eq(harness_run_ferry(&r, args, 10000), FERRY_OK);
	ck_assert_int_eq(r.status, 3);
	snprintf(want, sizeof(want), "%s: line 3: [server] listen 127.0.0.1:%d", path, busy_port);
	ck_assert_msg(strstr(r.err, want) != NULL, "%s", r.err);
	harness_run_free(&r);

	/* an access log that cannot be opened */
	snprintf(text, sizeof(text), "[server]\nlisten = 127.0.0.1:%d\n[log]\naccess_log = %s/no/such/dir/a.log\n",
		 harness_free_port(), dir);
	ck_assert_int_eq(harness_write_file(path, text), FERRY_OK);
	ck_assert_int_eq(harness_run_ferry(&r, args, 10000), FERRY_OK);
	ck_assert_int_eq(r.status, 3);
	snprintf(want, sizeof(want), "%s: line 4: [log] access_log: cannot open access log", path);
	ck_assert_msg(strstr(r.err, want) != NULL, "%s", r.err);
	harness_run_free(&r);

	/* ferry -t: a bad [admin] allow */
	ck_assert_int_eq(harness_write_file(path, "[admin]\nlisten = 127.0.0.1:9\nallow = 10.0.0.0/33\n"), FERRY_OK);
	const char *targs[] = { "-t", "-c", path, NULL };
	ck_assert_int_eq(harness_run_ferry(&r, targs, 10000), FERRY_OK);
	ck_assert_int_eq(r.status, 1);
	snprintf(want, sizeof(want), "%s: line 3: [admin] allow:", path);
	ck_assert_msg(strstr(r.err, want) != NULL, "%s", r.err);
	harness_run_free(&r);
	close(busy);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("observability");
	TCase *unit = tcase_create("unit");
	tcase_add_test(unit, access_line_format);
	tcase_add_test(unit, access_log_pipe_writes_whole_lines);
	tcase_add_checked_fixture(unit, NULL, teardown);
	tcase_add_loop_test(unit, access_log_torn_line_not_continued, 0, 2);
	tcase_add_test(unit, admin_accept_emfile_pauses);
	tcase_add_test(unit, stats_slots_and_sums);
	tcase_add_test(unit, prom_parser_is_strict);
	tcase_add_test(unit, metrics_text_of_a_region);
	suite_add_tcase(s, unit);
	TCase *e2e = tcase_create("e2e");
	tcase_set_timeout(e2e, 90);
	tcase_add_checked_fixture(e2e, NULL, teardown);
	tcase_add_loop_test(e2e, access_log_line_per_kind, 0, 2);
	tcase_add_loop_test(e2e, access_log_flushed_and_reopened, 0, 2);
	tcase_add_loop_test(e2e, metrics_parse_and_move, 0, 2);
	tcase_add_test(e2e, admin_answers_bad_requests);
	tcase_add_loop_test(e2e, status_503_while_draining, 0, 2);
	tcase_add_loop_test(e2e, ordinary_disconnects_not_logged, 0, 2);
	tcase_add_test(e2e, startup_failures_name_file_line_key);
	suite_add_tcase(s, e2e);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
