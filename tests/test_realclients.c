/* test_realclients.c - ferry driven by the real programs users point at a proxy: curl, Python's
 * urllib, ApacheBench, wrk and headless Chromium, on loopback, against tests/origin (plain
 * HTTP, raw echo) and tests/clients/origin.py (HTTP, HTTPS with a self-signed certificate
 * made here with openssl, WebSocket, a page with 100 images).
 *
 * Each program runs as a child in its own process group, with a hang guard: the group is
 * killed (by its id) when the guard expires. A test whose programs are not installed is not
 * registered: main() prints "SKIPPED: <what>: <program> not installed" instead, so a skip
 * never counts as a pass (tests/run sums those lines up). Under the sanitizer build the
 * downloads are smaller (ferry is several times slower there); the checks are the same.
 *
 * Chromium bypasses the proxy for loopback by default (hence --proxy-bypass-list=<-loopback>),
 * and to prove its requests went through ferry the pages use a name, www.ferry.test, that
 * only ferry can resolve (through tests/fake_dns, its [dns] server): Chromium going direct
 * would fail to load anything. Plain-HTTP image requests are also counted at the origin by
 * the Via field ferry adds. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake_dns.h"
#include "harness.h"
#include "status.h"

#define HOSTNAME "www.ferry.test" /* resolved by fake_dns for ferry only */
#define RUN_MS 90000              /* hang guard for one client program */

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static struct harness_origin origin;
static struct harness_ferry ferry;
static struct harness_conf conf;
static struct fake_dns *fdns;
static char dir[64];
static pid_t py_pid;             /* tests/clients/origin.py, its own process group */
static int py_http, py_https;    /* its ports */
static int pace_ms;              /* run(): pause after each read of the child's stdout */
static const char *stdin_path;   /* run(): the child's stdin (NULL: /dev/null) */
static pid_t files_pid[2];       /* tests/clients/files.py servers, their own process groups */
static int files_port[2];        /* their ports: added to connect_ports by go() */

static int sanitized(void)
{
	const char *e = getenv("FERRY_SAN");

	return SANITIZED || (e && *e && strcmp(e, "0") != 0);
}

static const char *srcdir(void)
{
	const char *s = getenv("FERRY_SRCDIR");

	return s && *s ? s : "..";
}

static char *in_dir(const char *name)
{
	static char p[8][160];
	static int k;
	char *o = p[k++ % 8];

	snprintf(o, sizeof(p[0]), "%s/%s", dir, name);
	return o;
}

static char *script(const char *name)
{
	static char p[4][512];
	static int k;
	char *o = p[k++ % 4];

	snprintf(o, sizeof(p[0]), "%s/tests/clients/%s", srcdir(), name);
	return o;
}

/* ---- running client programs ---- */

struct prog {
	int status;           /* exit code; -1 killed by a signal or the hang guard */
	char *out, *err;      /* NUL-terminated, malloc'd */
	size_t out_len, err_len;
	long long ms;         /* how long it ran */
};

static void prog_free(struct prog *p)
{
	free(p->out);
	free(p->err);
	memset(p, 0, sizeof(*p));
}

static void append(char **b, size_t *len, const char *p, size_t n)
{
	char *nb = realloc(*b, *len + n + 1);

	if (!nb)
		abort();
	memcpy(nb + *len, p, n);
	*len += n;
	nb[*len] = '\0';
	*b = nb;
}

/* Every proxy variable a client might pick up from our environment, removed for each child:
 * each test sets the ones it means. */
static const char *const proxy_vars[] = { "http_proxy", "https_proxy", "HTTP_PROXY",
	"HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY", NULL };

/* fork + execvp argv in a new process group, stdin from /dev/null, with env ("NAME=VALUE"
 * entries, NULL-terminated, may be NULL) added; stdout and stderr captured. The group dies
 * with us (PDEATHSIG on the leader) and is killed when the hang guard of timeout_ms expires
 * or when its leader has exited and stragglers keep the pipes open. Returns p->status. */
static int run(struct prog *p, const char *const argv[], const char *const env[], int timeout_ms)
{
	int po[2], pe[2];
	pid_t parent = getpid();
	long long start = harness_now_ms(), deadline = start + timeout_ms, exited_at = 0;
	int st = 0, reaped = 0;

	memset(p, 0, sizeof(*p));
	append(&p->out, &p->out_len, "", 0);
	append(&p->err, &p->err_len, "", 0);
	if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0)
		ck_abort_msg("pipe: %s", strerror(errno));
	pid_t pid = fork();

	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int devnull = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
		sigset_t none;

		dup2(devnull, 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		for (int i = 0; proxy_vars[i]; i++)
			unsetenv(proxy_vars[i]);
		for (int i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		execvp(argv[0], (char *const *)argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid); /* also here, so that the group exists before we may kill it */
	close(po[1]);
	close(pe[1]);
	struct pollfd fds[2] = { { .fd = po[0], .events = POLLIN }, { .fd = pe[0], .events = POLLIN } };
	int open_fds = 2, killed = 0;

	while (open_fds > 0) {
		if (!reaped && waitpid(pid, &st, WNOHANG) == pid) {
			reaped = 1;
			exited_at = harness_now_ms();
		}
		if (harness_now_ms() >= deadline || (reaped && harness_now_ms() - exited_at > 3000)) {
			if (!reaped)
				fprintf(stderr, "%s: still running after %d ms, killing its group\n",
					argv[0], timeout_ms);
			killed = !reaped;
			break;
		}
		if (poll(fds, 2, 100) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			char buf[65536];

			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t n = read(fds[i].fd, buf, i == 0 && pace_ms ? 16384 : sizeof(buf));

			if (i == 0 && pace_ms && n > 0) {
				struct timespec ts = { 0, (long)pace_ms * 1000000 };

				nanosleep(&ts, NULL);
			}

			if (n > 0) {
				if (i == 0)
					append(&p->out, &p->out_len, buf, (size_t)n);
				else
					append(&p->err, &p->err_len, buf, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(fds[i].fd);
				fds[i].fd = -1;
				open_fds--;
			}
		}
	}
	/* the group we made: its leader on a timeout, leftovers (browser helpers) otherwise */
	kill(-pid, SIGKILL);
	if (!reaped)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	for (int i = 0; i < 2; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	p->ms = harness_now_ms() - start;
	p->status = !killed && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return p->status;
}

/* Run and require exit status 0, showing the program's stderr otherwise. */
static void run_ok(struct prog *p, const char *const argv[], const char *const env[])
{
	run(p, argv, env, RUN_MS);
	ck_assert_msg(p->status == 0, "%s exited %d; stderr:\n%.3000s\nstdout:\n%.1000s", argv[0],
		      p->status, p->err, p->out);
}

/* ---- files ---- */

static char *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *b = NULL;
	size_t len = 0;
	char buf[65536];
	size_t k;

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	append(&b, &len, "", 0);
	while ((k = fread(buf, 1, sizeof(buf), f)) > 0)
		append(&b, &len, buf, k);
	fclose(f);
	*n = len;
	return b;
}

/* n bytes that are not the origin's pattern: every byte value, NULs and CRLFs included. */
static char *make_binary(const char *path, size_t n)
{
	char *b = malloc(n);
	unsigned long long x = 0x9E3779B97F4A7C15ULL;
	FILE *f;

	ck_assert_ptr_nonnull(b);
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (char)(x >> 24);
	}
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(b, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
	return b;
}

static void expect_pattern(const char *what, const char *got, size_t got_len, size_t want)
{
	char *pat = harness_pattern(want);

	ck_assert_msg(got_len == want, "%s: %zu bytes, want %zu", what, got_len, want);
	ck_assert_msg(memcmp(got, pat, want) == 0, "%s: body differs from the origin's", what);
	free(pat);
}

static void expect_file_pattern(const char *what, const char *path, size_t want)
{
	size_t n;
	char *b = read_file(path, &n);

	expect_pattern(what, b, n, want);
	free(b);
}

/* The status code of the last response head in a curl -D file (after 1xx and CONNECT's 200). */
static int last_status(const char *heads)
{
	const char *p = heads, *last = NULL;

	while ((p = strstr(p, "HTTP/1.")) != NULL) {
		if (p == heads || p[-1] == '\n')
			last = p;
		p++;
	}
	return last ? atoi(last + 9) : -1;
}

/* ---- fixtures ---- */

static void teardown(void)
{
	if (py_pid > 0) {
		int st;

		kill(-py_pid, SIGKILL);
		while (waitpid(py_pid, &st, 0) < 0 && errno == EINTR)
			;
		py_pid = 0;
	}
	for (int i = 0; i < 2; i++) {
		int st;

		if (files_pid[i] <= 0)
			continue;
		kill(-files_pid[i], SIGKILL);
		while (waitpid(files_pid[i], &st, 0) < 0 && errno == EINTR)
			;
		files_pid[i] = 0;
		files_port[i] = 0;
	}
	stdin_path = NULL;
	harness_cleanup();
	fake_dns_stop(fdns);
	fdns = NULL;
	if (dir[0] && !getenv("FERRY_E2E_KEEP")) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	dir[0] = '\0';
}

/* The C origin, a temporary directory, the base config; connect_ports gets every origin port
 * once the Python origin (if any) is up: see go(). */
static void begin(const char *mux)
{
	ck_assert_int_eq(harness_origin_start(&origin), FERRY_OK);
	harness_conf_base(&conf, mux, &origin);
	strcpy(dir, "/tmp/ferry-rc-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* A self-signed certificate for HOSTNAME and 127.0.0.1, made now with openssl. */
static void make_cert(void)
{
	struct prog p;
	const char *argv[] = { "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
		"-keyout", in_dir("key.pem"), "-out", in_dir("cert.pem"), "-days", "2",
		"-subj", "/CN=" HOSTNAME, "-addext",
		"subjectAltName=DNS:" HOSTNAME ",IP:127.0.0.1", NULL };

	run_ok(&p, argv, NULL);
	prog_free(&p);
}

/* The first line a helper script prints on fd (its ports), NUL-terminated in line, by the
 * deadline (harness_now_ms()); "" if none came. */
static void first_line(int fd, char *line, size_t cap, long long deadline)
{
	size_t n = 0;

	while (n < cap - 1 && !memchr(line, '\n', n) && harness_now_ms() < deadline) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };

		if (poll(&pf, 1, 200) <= 0)
			continue;
		ssize_t r = read(fd, line + n, cap - 1 - n);

		if (r <= 0)
			break;
		n += (size_t)r;
	}
	line[n] = '\0';
}
/* tests/clients/origin.py with that certificate; reads its two ports. */
static void start_py_origin(void)
{
	int pfd[2];
	pid_t parent = getpid();
	char line[64];
	long long deadline = harness_now_ms() + 15000;

	make_cert();
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	py_pid = fork();
	ck_assert_int_ge(py_pid, 0);
	if (py_pid == 0) {
		const char *argv[] = { "python3", script("origin.py"), in_dir("cert.pem"),
			in_dir("key.pem"), NULL };

		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(pfd[1], 1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	setpgid(py_pid, py_pid);
	close(pfd[1]);
	first_line(pfd[0], line, sizeof(line), deadline);
	close(pfd[0]);
	ck_assert_msg(sscanf(line, "%d %d", &py_http, &py_https) == 2,
		      "origin.py did not report its ports (got \"%s\")", line);
}

/* Start ferry: CONNECT allowed to every origin port in use. */
static void go(void)
{
	char ports[96];

	if (py_pid > 0)
		snprintf(ports, sizeof(ports), "%d, %d, %d, %d", origin.port, origin.echo_port,
			 py_http, py_https);
	else
		snprintf(ports, sizeof(ports), "%d, %d", origin.port, origin.echo_port);
	for (int i = 0; i < 2; i++)
		if (files_port[i] > 0)
			snprintf(ports + strlen(ports), sizeof(ports) - strlen(ports), ", %d",
				 files_port[i]);
	harness_conf_set(&conf, "access", "connect_ports", ports);
	ck_assert_int_eq(harness_ferry_start(&ferry, &conf), FERRY_OK);
}

/* Stop ferry; it must exit cleanly (a sanitizer report makes it fail). */
static void end(void)
{
	char *log = NULL;
	int rc = harness_ferry_stop_log(&ferry, &log);

	ck_assert_msg(rc == 0, "ferry exited %d; log:\n%.4000s", rc, log ? log : "");
	free(log);
}

static const char *proxy_addr(void)
{
	static char a[32];

	snprintf(a, sizeof(a), "127.0.0.1:%d", ferry.port);
	return a;
}

static const char *url(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *url(const char *fmt, ...)
{
	static char u[8][512];
	static int k;
	char *o = u[k++ % 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o, sizeof(u[0]), fmt, ap);
	va_end(ap);
	return o;
}

/* ---- curl ---- */

static const char *const muxes[] = { "poll", "epoll" };

/* GET through -x: Content-Length and chunked bodies byte for byte, 200, and the Via field
 * ferry adds to the response. Both multiplexers. */
START_TEST(curl_get)
{
	struct prog p;

	begin(muxes[_i]);
	go();
	const char *a1[] = { "curl", "-sS", "-x", proxy_addr(), "-D", in_dir("h1"), "-o",
		in_dir("b1"), url("http://127.0.0.1:%d/len/300000", origin.port), NULL };
	run_ok(&p, a1, NULL);
	prog_free(&p);
	size_t n;
	char *h = read_file(in_dir("h1"), &n);

	ck_assert_msg(strncmp(h, "HTTP/1.1 200 ", 13) == 0, "status line: %.80s", h);
	ck_assert_msg(strcasestr(h, "\nVia: 1.1 ") != NULL, "no Via from ferry:\n%s", h);
	ck_assert_msg(strcasestr(h, "\nContent-Length: 300000\r\n") != NULL, "length:\n%s", h);
	free(h);
	expect_file_pattern("curl GET /len", in_dir("b1"), 300000);

	const char *a2[] = { "curl", "-sS", "-x", proxy_addr(), "-o", in_dir("b2"),
		url("http://127.0.0.1:%d/chunked/250000", origin.port), NULL };
	run_ok(&p, a2, NULL);
	prog_free(&p);
	expect_file_pattern("curl GET /chunked", in_dir("b2"), 250000);
	end();
}
END_TEST

/* HEAD: 200 and the length of the body it would have, no body. */
START_TEST(curl_head)
{
	struct prog p;

	begin("epoll");
	go();
	const char *a[] = { "curl", "-sS", "-I", "-x", proxy_addr(),
		url("http://127.0.0.1:%d/len/12345", origin.port), NULL };
	run_ok(&p, a, NULL);
	ck_assert_msg(strncmp(p.out, "HTTP/1.1 200 ", 13) == 0, "status line: %.80s", p.out);
	ck_assert_msg(strcasestr(p.out, "\nContent-Length: 12345\r\n") != NULL, "head:\n%s", p.out);
	ck_assert_msg(strstr(p.out, "\r\n\r\n") + 4 == p.out + p.out_len, "bytes after the head");
	prog_free(&p);
	end();
}
END_TEST

/* Uploads of a binary file to /echo, which sends back what it got: POST (--data-binary),
 * PUT (-T), and POST with a chunked body. The answer must be the file, byte for byte. */
static void upload(const char *const extra[], const char *what)
{
	struct prog p;
	size_t size = 700000, n;
	char *want = make_binary(in_dir("up"), size);
	const char *argv[32];
	int k = 0;

	argv[k++] = "curl";
	argv[k++] = "-sS";
	argv[k++] = "-v";
	argv[k++] = "-x";
	argv[k++] = proxy_addr();
	argv[k++] = "-o";
	argv[k++] = in_dir("down");
	argv[k++] = "-w";
	argv[k++] = "%{http_code}";
	for (int i = 0; extra[i]; i++)
		argv[k++] = extra[i];
	argv[k++] = url("http://127.0.0.1:%d/echo", origin.port);
	argv[k] = NULL;
	run_ok(&p, argv, NULL);
	ck_assert_msg(strcmp(p.out, "200") == 0, "%s: status %s", what, p.out);
	if (strstr(what, "chunked"))
		ck_assert_msg(strcasestr(p.err, "> Transfer-Encoding: chunked") != NULL,
			      "%s: curl did not send a chunked body:\n%.2000s", what, p.err);
	prog_free(&p);
	char *got = read_file(in_dir("down"), &n);

	ck_assert_msg(n == size, "%s: %zu bytes came back, sent %zu", what, n, size);
	ck_assert_msg(memcmp(got, want, size) == 0, "%s: the body came back changed", what);
	free(got);
	free(want);
}

START_TEST(curl_post_file)
{
	const char *extra[] = { "--data-binary", "@/dev/null", NULL };

	begin("epoll");
	go();
	extra[1] = url("@%s", in_dir("up"));
	upload(extra, "POST --data-binary @file");
	end();
}
END_TEST

START_TEST(curl_put)
{
	const char *extra[] = { "-T", NULL, NULL };

	begin("epoll");
	go();
	extra[1] = in_dir("up");
	upload(extra, "PUT -T file");
	end();
}
END_TEST

START_TEST(curl_chunked_upload)
{
	const char *extra[] = { "-H", "Transfer-Encoding: chunked", "--data-binary", NULL, NULL };

	begin("poll");
	go();
	extra[3] = url("@%s", in_dir("up"));
	upload(extra, "POST chunked");
	end();
}
END_TEST

/* --proxy-user with [auth] on, the htpasswd made now with `openssl passwd -6` (SHA-512
 * crypt): none and wrong get 407 with a challenge, right gets the body, also through -p. */
START_TEST(curl_proxy_auth)
{
	struct prog p;
	char line[512];

	begin("epoll");
	const char *pa[] = { "openssl", "passwd", "-6", "open sesame", NULL };
	run_ok(&p, pa, NULL);
	ck_assert_msg(strncmp(p.out, "$6$", 3) == 0, "openssl passwd -6 printed %s", p.out);
	p.out[strcspn(p.out, "\r\n")] = '\0';
	snprintf(line, sizeof(line), "alice:%s\n", p.out);
	prog_free(&p);
	ck_assert_int_eq(harness_write_file(in_dir("htpasswd"), line), FERRY_OK);
	harness_conf_set(&conf, "auth", "htpasswd", in_dir("htpasswd"));
	go();
	const char *target = url("http://127.0.0.1:%d/len/5000", origin.port);

	const char *none[] = { "curl", "-sS", "-x", proxy_addr(), "-D", "-", "-o", "/dev/null",
		target, NULL };
	run_ok(&p, none, NULL);
	ck_assert_int_eq(last_status(p.out), 407);
	ck_assert_msg(strcasestr(p.out, "\nProxy-Authenticate: Basic realm=") != NULL,
		      "no challenge:\n%s", p.out);
	prog_free(&p);

	const char *wrong[] = { "curl", "-sS", "-x", proxy_addr(), "--proxy-user", "alice:open",
		"-D", "-", "-o", "/dev/null", target, NULL };
	run_ok(&p, wrong, NULL);
	ck_assert_int_eq(last_status(p.out), 407);
	prog_free(&p);

	const char *right[] = { "curl", "-sS", "-x", proxy_addr(), "--proxy-user",
		"alice:open sesame", "-D", "-", "-o", in_dir("b"), target, NULL };
	run_ok(&p, right, NULL);
	ck_assert_msg(last_status(p.out) == 200, "with credentials:\n%s", p.out);
	prog_free(&p);
	expect_file_pattern("GET with --proxy-user", in_dir("b"), 5000);

	const char *tunnel[] = { "curl", "-sS", "-p", "-x", proxy_addr(), "--proxy-user",
		"alice:open sesame", "-o", in_dir("t"), target, NULL };
	run_ok(&p, tunnel, NULL);
	prog_free(&p);
	expect_file_pattern("CONNECT with --proxy-user", in_dir("t"), 5000);

	const char *tunnel_none[] = { "curl", "-sS", "-p", "-x", proxy_addr(), "-o", "/dev/null",
		target, NULL };
	run(&p, tunnel_none, NULL, RUN_MS);
	ck_assert_msg(p.status != 0 && strstr(p.err, "407") != NULL,
		      "CONNECT without credentials: exit %d, %s", p.status, p.err);
	prog_free(&p);
	end();
}
END_TEST

/* -p: curl opens a CONNECT tunnel and speaks HTTP inside it. A port not in connect_ports is
 * refused with 403. */
START_TEST(curl_connect_tunnel)
{
	struct prog p;

	begin("epoll");
	go();
	const char *a[] = { "curl", "-sS", "-v", "-p", "-x", proxy_addr(), "-o", in_dir("b"),
		url("http://127.0.0.1:%d/chunked/400000", origin.port), NULL };
	run_ok(&p, a, NULL);
	ck_assert_msg(strstr(p.err, url("> CONNECT 127.0.0.1:%d HTTP/1.1", origin.port)) != NULL,
		      "curl did not CONNECT:\n%.2000s", p.err);
	prog_free(&p);
	expect_file_pattern("GET in a CONNECT tunnel", in_dir("b"), 400000);

	int closed = harness_closed_port();
	const char *refused[] = { "curl", "-sS", "-p", "-x", proxy_addr(), "-o", "/dev/null",
		url("http://127.0.0.1:%d/", closed), NULL };
	run(&p, refused, NULL, RUN_MS);
	ck_assert_msg(p.status != 0 && strstr(p.err, "403") != NULL,
		      "CONNECT to a port not in connect_ports: exit %d, %s", p.status, p.err);
	prog_free(&p);
	end();
}
END_TEST

/* https:// through CONNECT to origin.py's TLS port; the certificate is verified against the
 * one made for this test (--cacert, not -k). GET and a POST echo. */
START_TEST(curl_https)
{
	struct prog p;
	size_t n;

	begin("epoll");
	start_py_origin();
	go();
	const char *get[] = { "curl", "-sS", "--cacert", in_dir("cert.pem"), "-x", proxy_addr(),
		"-D", in_dir("h"), "-o", in_dir("b"),
		url("https://127.0.0.1:%d/len/500000", py_https), NULL };
	run_ok(&p, get, NULL);
	prog_free(&p);
	char *h = read_file(in_dir("h"), &n);

	/* two heads: ferry's 200 to the CONNECT, then the origin's, inside the tunnel */
	ck_assert_msg(strncmp(h, "HTTP/1.1 200 ", 13) == 0 && last_status(h) == 200 &&
		      strstr(h + 1, "\nHTTP/1.1 200 ") != NULL, "no tunnel:\n%s", h);
	ck_assert_msg(strstr(h, "ferry-test-origin-py") != NULL, "not the TLS origin:\n%s", h);
	free(h);
	expect_file_pattern("https GET", in_dir("b"), 500000);

	char *want = make_binary(in_dir("up"), 200000);
	const char *post[] = { "curl", "-sS", "--cacert", in_dir("cert.pem"), "-x", proxy_addr(),
		"--data-binary", url("@%s", in_dir("up")), "-o", in_dir("e"),
		url("https://127.0.0.1:%d/echo", py_https), NULL };
	run_ok(&p, post, NULL);
	prog_free(&p);
	char *got = read_file(in_dir("e"), &n);

	ck_assert_msg(n == 200000 && memcmp(got, want, n) == 0, "https POST echo: %zu bytes", n);
	free(got);
	free(want);
	end();
}
END_TEST

/* --limit-rate: a slow reader; ferry must hold the rest back (not buffer it all, not lose
 * any of it). curl's limiter averages over seconds and lets short loopback transfers through
 * at full speed now and then (curl 7.88), so the test also makes curl slow for certain: it
 * writes the body to stdout, which this test reads 16 kB every 20 ms. No assertion on time:
 * only that every byte arrives, in order. */
START_TEST(curl_limit_rate)
{
	struct prog p;
	size_t size = 1500000;

	begin("epoll");
	go();
	const char *a[] = { "curl", "-sS", "--limit-rate", "200k", "-x", proxy_addr(), "-o", "-",
		url("http://127.0.0.1:%d/len/%zu", origin.port, size), NULL };
	pace_ms = 20;
	run_ok(&p, a, NULL);
	pace_ms = 0;
	expect_pattern("--limit-rate download", p.out, p.out_len, size);
	prog_free(&p);
	end();
}
END_TEST

/* --http1.0: a 1.0 client gets a body it can read whatever the origin's framing, including a
 * chunked response (which a 1.0 client cannot parse). */
START_TEST(curl_http10)
{
	struct prog p;

	begin("epoll");
	go();
	const char *paths[] = { "/len/100000", "/chunked/100000" };

	for (int i = 0; i < 2; i++) {
		const char *a[] = { "curl", "-sS", "--http1.0", "-x", proxy_addr(), "-D", in_dir("h"),
			"-o", in_dir("b"), url("http://127.0.0.1:%d%s", origin.port, paths[i]), NULL };
		size_t n;

		run_ok(&p, a, NULL);
		prog_free(&p);
		char *h = read_file(in_dir("h"), &n);

		ck_assert_msg(last_status(h) == 200, "%s:\n%s", paths[i], h);
		ck_assert_msg(strcasestr(h, "Transfer-Encoding: chunked") == NULL,
			      "chunked response to a 1.0 client:\n%s", h);
		free(h);
		expect_file_pattern(paths[i], in_dir("b"), 100000);
	}
	end();
}
END_TEST

/* ---- Python urllib ---- */

static void urllib_fetch(const char *scheme, size_t size, unsigned seed)
{
	struct prog p;
	char proxy_env[64], size_s[32], seed_s[16];
	int tls = strcmp(scheme, "https") == 0;

	snprintf(proxy_env, sizeof(proxy_env), "%s_proxy=http://%s", scheme, proxy_addr());
	snprintf(size_s, sizeof(size_s), "%zu", size);
	snprintf(seed_s, sizeof(seed_s), "%u", seed);
	const char *env[] = { proxy_env, NULL };
	const char *argv[] = { "python3", script("fetch.py"),
		url("%s://127.0.0.1:%d/rand/%zu?seed=%u", scheme, tls ? py_https : py_http, size, seed),
		size_s, seed_s, tls ? in_dir("cert.pem") : NULL, NULL };

	run_ok(&p, argv, env);
	ck_assert_msg(strncmp(p.out, "ok ", 3) == 0, "fetch.py: %s", p.out);
	/* plain HTTP went through ferry's relay (it adds Via); https through its tunnel */
	if (!tls)
		ck_assert_msg(strstr(p.out, "via=1.1 ") != NULL, "no Via: not through ferry? %s", p.out);
	prog_free(&p);
}

/* http_proxy: 100 MB (20 MB under the sanitizers), sha256 of what arrived against the
 * stream origin.py sent. */
START_TEST(python_urllib_http)
{
	begin("epoll");
	start_py_origin();
	go();
	urllib_fetch("http", sanitized() ? 20u << 20 : 100u << 20, 7);
	end();
}
END_TEST

/* https_proxy: CONNECT, TLS verified against the test's certificate, 10 MB by hash. */
START_TEST(python_urllib_https)
{
	begin("epoll");
	start_py_origin();
	go();
	urllib_fetch("https", sanitized() ? 4u << 20 : 10u << 20, 11);
	end();
}
END_TEST

/* ---- load generators ---- */

/* The number after "label" in ab's report, or -1. */
static long ab_field(const char *out, const char *label)
{
	const char *p = strstr(out, label);

	return p ? strtol(p + strlen(label), NULL, 10) : -1;
}

/* ab -X with keep-alive: every request completes, none fails, all 2xx, all kept alive. */
START_TEST(ab_keepalive)
{
	struct prog p;
	const char *n = sanitized() ? "1000" : "4000";

	begin("epoll");
	go();
	const char *a[] = { "ab", "-q", "-X", proxy_addr(), "-k", "-n", n, "-c", "8",
		url("http://127.0.0.1:%d/len/1000", origin.port), NULL };
	run_ok(&p, a, NULL);
	long want = atol(n);

	ck_assert_msg(ab_field(p.out, "Complete requests:") == want, "ab:\n%s", p.out);
	ck_assert_msg(ab_field(p.out, "Failed requests:") == 0, "ab:\n%s", p.out);
	ck_assert_msg(strstr(p.out, "Non-2xx responses:") == NULL, "ab:\n%s", p.out);
	ck_assert_msg(ab_field(p.out, "Keep-Alive requests:") == want, "ab:\n%s", p.out);
	prog_free(&p);
	end();
}
END_TEST

/* wrk with absolute-form targets (tests/clients/absolute.lua): no socket errors, no status
 * >= 400, and it did make requests. */
START_TEST(wrk_absolute_form)
{
	struct prog p;
	char target[128];
	long req = -1, e[5] = { -1, -1, -1, -1, -1 };

	begin("epoll");
	go();
	snprintf(target, sizeof(target), "FERRY_WRK_TARGET=http://127.0.0.1:%d/len/1000",
		 origin.port);
	const char *env[] = { target, NULL };
	const char *a[] = { "wrk", "-t", "2", "-c", "8", "-d", "2s", "-s", script("absolute.lua"),
		url("http://%s/", proxy_addr()), NULL };
	run_ok(&p, a, env);
	const char *r = strstr(p.out, "wrk-result ");

	ck_assert_msg(r != NULL, "wrk printed no result line:\n%s\n%s", p.out, p.err);
	ck_assert_int_eq(sscanf(r, "wrk-result requests=%ld connect=%ld read=%ld write=%ld "
				"status=%ld timeout=%ld", &req, &e[0], &e[1], &e[2], &e[3], &e[4]), 6);
	ck_assert_msg(req > 0, "wrk made no request:\n%s", p.out);
	ck_assert_msg(e[0] == 0 && e[1] == 0 && e[2] == 0 && e[3] == 0 && e[4] == 0,
		      "wrk errors:\n%s", p.out);
	ck_assert_msg(strstr(p.out, "Non-2xx") == NULL, "wrk:\n%s", p.out);
	prog_free(&p);
	end();
}
END_TEST

/* ---- headless Chromium ---- */

/* Start everything a browser test needs: origin.py, the fake DNS that only ferry asks. */
static void browser_begin(void)
{
	begin("epoll");
	start_py_origin();
	fdns = fake_dns_start();
	ck_assert_ptr_nonnull(fdns);
	fake_dns_add(fdns, HOSTNAME, "127.0.0.1", 300);
	harness_conf_set(&conf, "dns", "servers", fake_dns_server(fdns));
	go();
}

/* Load page_url in headless Chromium through ferry; the text of <p id="result">. */
static char *browse(const char *page_url)
{
	struct prog p;
	const char *a[] = { "chromium", "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		url("--user-data-dir=%s", in_dir("profile")),
		url("--proxy-server=http://%s", proxy_addr()), "--proxy-bypass-list=<-loopback>",
		"--ignore-certificate-errors", "--virtual-time-budget=20000", "--dump-dom",
		page_url, NULL };

	run(&p, a, NULL, RUN_MS);
	ck_assert_msg(p.status == 0, "chromium exited %d on %s; stderr:\n%.3000s", p.status,
		      page_url, p.err);
	const char *r = strstr(p.out, "<p id=\"result\">");

	ck_assert_msg(r != NULL, "no result in the DOM of %s:\n%.2000s", page_url, p.out);
	r += strlen("<p id=\"result\">");
	char *text = strndup(r, strcspn(r, "<"));

	prog_free(&p);
	return text;
}

/* origin.py's counters, asked through ferry with curl. */
static void py_stats(long *res, long *via)
{
	struct prog p;
	const char *a[] = { "curl", "-sS", "-x", proxy_addr(),
		url("http://127.0.0.1:%d/stats", py_http), NULL };

	run_ok(&p, a, NULL);
	ck_assert_int_eq(sscanf(p.out, "res=%ld via=%ld", res, via), 2);
	prog_free(&p);
}

/* http:// page with 100 images: all load, all through ferry (Via at the origin, and the
 * host name only ferry resolves). */
START_TEST(chromium_http_page)
{
	long res, via;

	browser_begin();
	char *r = browse(url("http://" HOSTNAME ":%d/page?n=100", py_http));

	ck_assert_msg(strcmp(r, "loaded=100 failed=0") == 0, "page reports %s", r);
	free(r);
	py_stats(&res, &via);
	ck_assert_msg(res >= 100 && via == res, "origin served %ld images, %ld with Via", res, via);
	ck_assert_int_ge(fake_dns_queries(fdns, HOSTNAME), 1);
	end();
}
END_TEST

/* The same page over https:// (CONNECT per connection, the test's self-signed certificate). */
START_TEST(chromium_https_page)
{
	long res, via;

	browser_begin();
	char *r = browse(url("https://" HOSTNAME ":%d/page?n=100", py_https));

	ck_assert_msg(strcmp(r, "loaded=100 failed=0") == 0, "page reports %s", r);
	free(r);
	py_stats(&res, &via);
	ck_assert_msg(res >= 100 && via == 0, "origin served %ld images, %ld with Via", res, via);
	ck_assert_int_ge(fake_dns_queries(fdns, HOSTNAME), 1);
	end();
}
END_TEST

/* ws:// echo: Chromium opens the WebSocket through a CONNECT tunnel. */
START_TEST(chromium_websocket)
{
	browser_begin();
	char *r = browse(url("http://" HOSTNAME ":%d/wspage?key=%d&url=ws://" HOSTNAME ":%d/ws",
			     py_http, (int)getpid(), py_http));

	ck_assert_msg(strcmp(r, "ws=echoed") == 0, "page reports %s", r);
	free(r);
	end();
}
END_TEST

/* ---- more clients: wget, requests, git, node, openssl s_client, curl options ---- */

/* tests/clients/files.py serving root at bind ("127.0.0.1" or "::1"), slot 0 or 1; returns
 * its port (also in files_port[slot], which go() adds to connect_ports). */
static int start_files(int slot, const char *root, const char *bind)
{
	int pfd[2];
	pid_t parent = getpid();
	char line[32];
	long long deadline = harness_now_ms() + 15000;

	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	files_pid[slot] = fork();
	ck_assert_int_ge(files_pid[slot], 0);
	if (files_pid[slot] == 0) {
		const char *argv[] = { "python3", script("files.py"), root, bind, NULL };

		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(pfd[1], 1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	setpgid(files_pid[slot], files_pid[slot]);
	close(pfd[1]);
	first_line(pfd[0], line, sizeof(line), deadline);
	close(pfd[0]);
	files_port[slot] = atoi(line);
	ck_assert_msg(files_port[slot] > 0, "files.py did not report its port (got \"%s\")", line);
	return files_port[slot];
}

/* The fake DNS server that alone knows HOSTNAME, as ferry's [dns] server: a client that
 * went around ferry could not reach HOSTNAME at all. */
static void name_only_ferry_knows(void)
{
	fdns = fake_dns_start();
	ck_assert_ptr_nonnull(fdns);
	fake_dns_add(fdns, HOSTNAME, "127.0.0.1", 300);
	harness_conf_set(&conf, "dns", "servers", fake_dns_server(fdns));
}

static void write_text(const char *path, const char *text)
{
	ck_assert_int_eq(harness_write_file(path, text), FERRY_OK);
}

/* Are the files a and b the same bytes? */
static void expect_same_file(const char *what, const char *a, const char *b)
{
	size_t na, nb;
	char *pa = read_file(a, &na), *pb = read_file(b, &nb);

	ck_assert_msg(na == nb && memcmp(pa, pb, na) == 0, "%s: %s (%zu bytes) differs from %s "
		      "(%zu bytes)", what, a, na, b, nb);
	free(pa);
	free(pb);
}

/* How often needle occurs in hay. */
static int count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* A small site for wget -r: two levels of pages, binary files, a link back up. */
static void make_tree(void)
{
	const char *dirs[] = { "tree", "tree/sub", "tree/sub/deep", NULL };

	for (int i = 0; dirs[i]; i++)
		ck_assert_int_eq(mkdir(in_dir(dirs[i]), 0755), 0);
	write_text(in_dir("tree/index.html"), "<html><body><a href=\"sub/\">sub</a>\n"
		   "<a href=\"blob.bin\">blob</a> <img src=\"sub/pic.bin\"></body></html>\n");
	write_text(in_dir("tree/sub/index.html"), "<html><body><a href=\"deep/page.html\">deep</a>"
		   "\n<a href=\"../index.html\">up</a></body></html>\n");
	write_text(in_dir("tree/sub/deep/page.html"),
		   "<html><body><a href=\"x.bin\">x</a></body></html>\n");
	free(make_binary(in_dir("tree/blob.bin"), 400000));
	free(make_binary(in_dir("tree/sub/pic.bin"), 1234));
	free(make_binary(in_dir("tree/sub/deep/x.bin"), 70001));
}

/* wget through http_proxy / https_proxy and -e use_proxy=on: a download, -N (a 304 the
 * second time), -c resuming a partial file with a Range request (206, then 416 once it is
 * whole), --post-file, a recursive fetch of a small tree, https through CONNECT. The URLs
 * name HOSTNAME, which only ferry can resolve. */
START_TEST(wget_proxy)
{
	struct prog p;
	char env_http[64], env_https[64];

	begin("epoll");
	start_py_origin();
	make_tree();
	int fp = start_files(0, in_dir("tree"), "127.0.0.1");

	name_only_ferry_knows();
	go();
	snprintf(env_http, sizeof(env_http), "http_proxy=http://%s", proxy_addr());
	snprintf(env_https, sizeof(env_https), "https_proxy=http://%s", proxy_addr());
	const char *env[] = { env_http, env_https, NULL };
	const char *blob = url("http://" HOSTNAME ":%d/blob.bin", fp);

	const char *get[] = { "wget", "-q", "-O", in_dir("w1"), blob, NULL };
	run_ok(&p, get, env);
	prog_free(&p);
	expect_same_file("wget with http_proxy", in_dir("w1"), in_dir("tree/blob.bin"));

	/* -N: the second run asks If-Modified-Since and gets a 304 through ferry */
	const char *ts[] = { "wget", "-N", "-P", in_dir("ts"), blob, NULL };
	run_ok(&p, ts, env);
	ck_assert_msg(strstr(p.err, "200 OK") != NULL, "wget -N:\n%s", p.err);
	prog_free(&p);
	run_ok(&p, ts, env);
	ck_assert_msg(strstr(p.err, "304 Not Modified") != NULL, "wget -N again:\n%s", p.err);
	prog_free(&p);
	expect_same_file("wget -N", in_dir("ts/blob.bin"), in_dir("tree/blob.bin"));

	const char *e[] = { "wget", "-q", "-e", "use_proxy=on", "-e",
		url("http_proxy=%s", proxy_addr()), "-O", in_dir("w2"),
		url("http://" HOSTNAME ":%d/chunked/250000", origin.port), NULL };
	run_ok(&p, e, NULL);
	prog_free(&p);
	expect_file_pattern("wget -e use_proxy=on (chunked)", in_dir("w2"), 250000);

	/* -c: the first 123457 bytes are there; wget asks for the rest with Range */
	size_t n;
	char *whole = read_file(in_dir("tree/blob.bin"), &n);
	FILE *f = fopen(in_dir("part"), "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(whole, 1, 123457, f), 123457);
	ck_assert_int_eq(fclose(f), 0);
	free(whole);
	const char *resume[] = { "wget", "-c", "-O", in_dir("part"), blob, NULL };
	run_ok(&p, resume, env);
	ck_assert_msg(strstr(p.err, "206 Partial Content") != NULL, "no 206:\n%s", p.err);
	prog_free(&p);
	expect_same_file("wget -c", in_dir("part"), in_dir("tree/blob.bin"));
	run_ok(&p, resume, env);
	ck_assert_msg(strstr(p.err, "416 ") != NULL && strstr(p.err, "already fully retrieved"),
		      "wget -c of a whole file:\n%s", p.err);
	prog_free(&p);
	expect_same_file("wget -c again", in_dir("part"), in_dir("tree/blob.bin"));

	const char *post[] = { "wget", "-q", url("--post-file=%s", in_dir("tree/blob.bin")),
		"-O", in_dir("w3"), url("http://" HOSTNAME ":%d/echo", origin.port), NULL };
	run_ok(&p, post, env);
	prog_free(&p);
	expect_same_file("wget --post-file", in_dir("w3"), in_dir("tree/blob.bin"));

	const char *rec[] = { "wget", "-nv", "-r", "-np", "-nH", "-P", in_dir("mirror"),
		url("http://" HOSTNAME ":%d/", fp), NULL };
	run_ok(&p, rec, env);
	prog_free(&p);
	const char *files[] = { "index.html", "blob.bin", "sub/index.html", "sub/pic.bin",
		"sub/deep/page.html", "sub/deep/x.bin", NULL };
	for (int i = 0; files[i]; i++) {
		char a[96], b[96];

		snprintf(a, sizeof(a), "mirror/%s", files[i]);
		snprintf(b, sizeof(b), "tree/%s", files[i]);
		expect_same_file("wget -r", in_dir(a), in_dir(b));
	}

	const char *tls[] = { "wget", "-q", url("--ca-certificate=%s", in_dir("cert.pem")), "-O",
		in_dir("w4"), url("https://" HOSTNAME ":%d/len/300000", py_https), NULL };
	run_ok(&p, tls, env);
	prog_free(&p);
	expect_file_pattern("wget https through CONNECT", in_dir("w4"), 300000);
	ck_assert_int_ge(fake_dns_queries(fdns, HOSTNAME), 1);
	end();
}
END_TEST

/* python3-requests with proxies= (tests/clients/requests_check.py): http and https GETs,
 * a streamed download by sha256, chunked uploads from a generator, a large POST, and a
 * Session that keeps one connection to ferry for all its requests. */
START_TEST(python_requests)
{
	struct prog p;
	const char *size = sanitized() ? "4000000" : "20000000";

	begin("epoll");
	start_py_origin();
	name_only_ferry_knows();
	go();
	const char *a[] = { "python3", script("requests_check.py"), proxy_addr(),
		url("http://" HOSTNAME ":%d", py_http), url("https://" HOSTNAME ":%d", py_https),
		in_dir("cert.pem"), size, NULL };
	run_ok(&p, a, NULL);
	ck_assert_msg(strstr(p.out, "ok session") != NULL, "requests_check.py:\n%s", p.out);
	prog_free(&p);
	end();
}
END_TEST

/* git, with everything but the commands' output thrown away; exit status 0 required. */
static void git(const char *const args[], const char *const env[])
{
	struct prog p;
	const char *argv[24];
	int k = 0;

	argv[k++] = "git";
	for (int i = 0; args[i]; i++)
		argv[k++] = args[i];
	argv[k] = NULL;
	run_ok(&p, argv, env);
	prog_free(&p);
}

/* `git rev-parse rev` in repo. */
static char *git_rev(const char *repo, const char *rev)
{
	struct prog p;
	const char *argv[] = { "git", "-C", repo, "rev-parse", rev, NULL };
	static char out[4][48];
	static int k;
	char *o = out[k++ % 4];

	run_ok(&p, argv, NULL);
	snprintf(o, sizeof(out[0]), "%.40s", p.out);
	prog_free(&p);
	ck_assert_uint_eq(strlen(o), 40);
	return o;
}

/* git through http.proxy and http_proxy: a clone over the dumb protocol (files served as
 * they are, after update-server-info), a clone over smart HTTP (git http-backend behind
 * files.py), a push of a 3 MB commit over smart HTTP (git sends a pack this big chunked),
 * and a fetch of it into the dumb clone. */
START_TEST(git_http)
{
	char home[96], proxy_env[64];

	begin("epoll");
	snprintf(home, sizeof(home), "HOME=%s", dir);
	/* no user or system configuration; who commits */
	const char *env[] = { home, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=t",
		"GIT_AUTHOR_EMAIL=t@ferry.test", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@ferry.test", "GIT_TERMINAL_PROMPT=0", NULL };
	const char *penv[] = { home, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=t",
		"GIT_AUTHOR_EMAIL=t@ferry.test", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@ferry.test", "GIT_TERMINAL_PROMPT=0", proxy_env, NULL };

	ck_assert_int_eq(mkdir(in_dir("srv"), 0755), 0);
	git((const char *[]){ "init", "-q", "-b", "main", in_dir("work"), NULL }, env);
	for (int i = 0; i < 3; i++) {
		char name[32];

		snprintf(name, sizeof(name), "work/f%d", i);
		free(make_binary(in_dir(name), 100000 + 1000 * (size_t)i));
		git((const char *[]){ "-C", in_dir("work"), "add", ".", NULL }, env);
		git((const char *[]){ "-C", in_dir("work"), "commit", "-q", "-m", name, NULL }, env);
	}
	git((const char *[]){ "clone", "-q", "--bare", in_dir("work"), in_dir("srv/repo.git"),
		NULL }, env);
	git((const char *[]){ "-C", in_dir("srv/repo.git"), "update-server-info", NULL }, env);
	int fp = start_files(0, in_dir("srv"), "127.0.0.1");

	name_only_ferry_knows();
	go();
	snprintf(proxy_env, sizeof(proxy_env), "http_proxy=http://%s", proxy_addr());
	const char *head = git_rev(in_dir("work"), "HEAD");

	git((const char *[]){ "-c", url("http.proxy=http://%s", proxy_addr()), "clone", "-q",
		url("http://" HOSTNAME ":%d/repo.git", fp), in_dir("dumb"), NULL }, env);
	ck_assert_str_eq(git_rev(in_dir("dumb"), "HEAD"), head);
	expect_same_file("git dumb clone", in_dir("dumb/f2"), in_dir("work/f2"));

	const char *smart = url("http://" HOSTNAME ":%d/git/repo.git", fp);

	git((const char *[]){ "clone", "-q", smart, in_dir("smart"), NULL }, penv);
	ck_assert_str_eq(git_rev(in_dir("smart"), "HEAD"), head);

	free(make_binary(in_dir("smart/big"), 3000000));
	git((const char *[]){ "-C", in_dir("smart"), "add", "big", NULL }, env);
	git((const char *[]){ "-C", in_dir("smart"), "commit", "-q", "-m", "big", NULL }, env);
	git((const char *[]){ "-C", in_dir("smart"), "push", "-q", "origin", "main", NULL }, penv);
	const char *pushed = git_rev(in_dir("smart"), "HEAD");

	ck_assert_str_eq(git_rev(in_dir("srv/repo.git"), "main"), pushed);

	git((const char *[]){ "-C", in_dir("dumb"), "-c",
		url("http.proxy=http://%s", proxy_addr()), "fetch", "-q", smart, "main", NULL }, env);
	ck_assert_str_eq(git_rev(in_dir("dumb"), "FETCH_HEAD"), pushed);
	ck_assert_int_ge(fake_dns_queries(fdns, HOSTNAME), 1);
	end();
}
END_TEST

/* Node (tests/clients/node_proxy.js): http.request with absolute-form paths (GET, a chunked
 * POST with a trailer, Expect: 100-continue, a keep-alive Agent), and https through
 * http.request({method: 'CONNECT'}) and tls.connect({socket}). */
START_TEST(node_http)
{
	struct prog p;
	char port[16];

	begin("epoll");
	start_py_origin();
	name_only_ferry_knows();
	go();
	snprintf(port, sizeof(port), "%d", ferry.port);
	const char *a[] = { "node", script("node_proxy.js"), port,
		url("http://" HOSTNAME ":%d", origin.port), url(HOSTNAME ":%d", py_https),
		in_dir("cert.pem"), NULL };
	run_ok(&p, a, NULL);
	ck_assert_msg(strstr(p.out, "ok connect") != NULL, "node_proxy.js:\n%s", p.out);
	prog_free(&p);
	end();
}
END_TEST

/* openssl s_client -proxy: a CONNECT tunnel, TLS verified against the test's certificate,
 * one request inside. An IPv6 target goes out as "CONNECT ::1:443" (no brackets): a 400. */
START_TEST(openssl_s_client)
{
	struct prog p;

	begin("epoll");
	start_py_origin();
	name_only_ferry_knows();
	go();
	write_text(in_dir("req"), "GET /len/5000 HTTP/1.1\r\nHost: " HOSTNAME "\r\n"
		   "Connection: close\r\n\r\n");
	stdin_path = in_dir("req");
	/* -quiet implies -ign_eof: it waits for the origin to close; origin.py closes without
	 * a TLS close_notify, hence -ignore_unexpected_eof */
	const char *a[] = { "openssl", "s_client", "-quiet", "-ignore_unexpected_eof", "-proxy",
		proxy_addr(), "-connect", url(HOSTNAME ":%d", py_https), "-servername", HOSTNAME,
		"-CAfile", in_dir("cert.pem"), "-verify_return_error", NULL };
	run_ok(&p, a, NULL);
	const char *body = strstr(p.out, "\r\n\r\n");

	ck_assert_msg(strncmp(p.out, "HTTP/1.1 200 ", 13) == 0 && body, "s_client:\n%.500s", p.out);
	expect_pattern("s_client GET", body + 4, p.out_len - (size_t)(body + 4 - p.out), 5000);
	prog_free(&p);

	const char *v6[] = { "openssl", "s_client", "-quiet", "-proxy", proxy_addr(), "-connect",
		"[::1]:443", NULL };
	run(&p, v6, NULL, RUN_MS);
	ck_assert_msg(p.status != 0 && strstr(p.err, "400") != NULL, "s_client to [::1]: exit %d"
		      "\n%s", p.status, p.err);
	prog_free(&p);
	stdin_path = NULL;
	end();
}
END_TEST

/* A POST with Expect: 100-continue: curl adds it by itself to bodies over 1 MiB, and on
 * request (-H) to smaller ones. The origin's 100 reaches curl, then the body goes, whole. */
START_TEST(curl_expect_100)
{
	struct prog p;
	size_t sizes[] = { 3000000, 500000 };

	begin("epoll");
	go();
	for (int i = 0; i < 2; i++) {
		char *want = make_binary(in_dir("up"), sizes[i]);
		const char *a[] = { "curl", "-sS", "-v", "-x", proxy_addr(), "--data-binary",
			url("@%s", in_dir("up")), "-o", in_dir("down"),
			url("http://127.0.0.1:%d/echo", origin.port),
			i ? "-H" : NULL, "Expect: 100-continue", NULL }; /* -H for the small one */
		size_t n;

		run_ok(&p, a, NULL);
		ck_assert_msg(strstr(p.err, "> Expect: 100-continue") &&
			      strstr(p.err, "< HTTP/1.1 100 Continue") &&
			      strstr(p.err, "< HTTP/1.1 200 OK"), "%zu bytes:\n%.3000s", sizes[i], p.err);
		prog_free(&p);
		char *got = read_file(in_dir("down"), &n);

		ck_assert_msg(n == sizes[i] && memcmp(got, want, n) == 0,
			      "Expect POST of %zu bytes: %zu came back", sizes[i], n);
		free(got);
		free(want);
	}
	end();
}
END_TEST

/* --proxy1.0: the CONNECT goes as HTTP/1.0 (-p); a plain request is unchanged. */
START_TEST(curl_proxy10)
{
	struct prog p;

	begin("epoll");
	go();
	const char *a[] = { "curl", "-sS", "-v", "-p", "--proxy1.0", proxy_addr(), "-o",
		in_dir("b"), url("http://127.0.0.1:%d/chunked/200000", origin.port), NULL };
	run_ok(&p, a, NULL);
	ck_assert_msg(strstr(p.err, url("> CONNECT 127.0.0.1:%d HTTP/1.0", origin.port)) != NULL,
		      "no HTTP/1.0 CONNECT:\n%.2000s", p.err);
	prog_free(&p);
	expect_file_pattern("GET through a 1.0 CONNECT", in_dir("b"), 200000);

	const char *b[] = { "curl", "-sS", "--proxy1.0", proxy_addr(), "-o", in_dir("c"),
		url("http://127.0.0.1:%d/len/200000", origin.port), NULL };
	run_ok(&p, b, NULL);
	prog_free(&p);
	expect_file_pattern("GET with --proxy1.0", in_dir("c"), 200000);
	end();
}
END_TEST

/* The bytes [from, to] of file path into a new file. */
static void slice_file(const char *path, size_t from, size_t to, const char *out)
{
	size_t n;
	char *b = read_file(path, &n);
	FILE *f = fopen(out, "wb");

	ck_assert_msg(to < n && f != NULL, "slice of %s", path);
	ck_assert_uint_eq(fwrite(b + from, 1, to - from + 1, f), to - from + 1);
	ck_assert_int_eq(fclose(f), 0);
	free(b);
}

/* -r ranges (206, Content-Range; a suffix range) and -C - (resume a partial download) against
 * files.py, which honours Range. */
START_TEST(curl_ranges)
{
	struct prog p;
	size_t n;

	begin("epoll");
	ck_assert_int_eq(mkdir(in_dir("www"), 0755), 0);
	free(make_binary(in_dir("www/f.bin"), 300000));
	int fp = start_files(0, in_dir("www"), "127.0.0.1");

	go();
	const char *u = url("http://127.0.0.1:%d/f.bin", fp);
	const char *a[] = { "curl", "-sS", "-x", proxy_addr(), "-r", "1000-200999", "-D",
		in_dir("h"), "-o", in_dir("r1"), u, NULL };
	run_ok(&p, a, NULL);
	prog_free(&p);
	char *h = read_file(in_dir("h"), &n);

	ck_assert_msg(last_status(h) == 206 &&
		      strcasestr(h, "\nContent-Range: bytes 1000-200999/300000\r\n"), "-r:\n%s", h);
	free(h);
	slice_file(in_dir("www/f.bin"), 1000, 200999, in_dir("want1"));
	expect_same_file("curl -r 1000-200999", in_dir("r1"), in_dir("want1"));

	const char *b[] = { "curl", "-sS", "-x", proxy_addr(), "-r", "-777", "-o", in_dir("r2"),
		u, NULL };
	run_ok(&p, b, NULL);
	prog_free(&p);
	slice_file(in_dir("www/f.bin"), 300000 - 777, 299999, in_dir("want2"));
	expect_same_file("curl -r -777", in_dir("r2"), in_dir("want2"));

	slice_file(in_dir("www/f.bin"), 0, 99999, in_dir("part"));
	const char *c[] = { "curl", "-sS", "-x", proxy_addr(), "-C", "-", "-o", in_dir("part"),
		"-w", "%{http_code}", u, NULL };
	run_ok(&p, c, NULL);
	ck_assert_str_eq(p.out, "206");
	prog_free(&p);
	expect_same_file("curl -C -", in_dir("part"), in_dir("www/f.bin"));
	end();
}
END_TEST

/* Responses without a body (HEAD, 304, 204) in the middle of a kept-alive connection: one
 * curl with several URLs uses one connection to ferry, and the response after them is
 * whole. */
START_TEST(curl_nobody_reuse)
{
	struct prog p;

	begin("epoll");
	go();
	const char *s304 = url("http://127.0.0.1:%d/status/304", origin.port);
	const char *s204 = url("http://127.0.0.1:%d/status/204", origin.port);
	const char *len = url("http://127.0.0.1:%d/len/12345", origin.port);
	const char *head[] = { "curl", "-sS", "-v", "-I", "-x", proxy_addr(), "-w",
		"%{http_code} ", s304, s204, len, NULL };
	run_ok(&p, head, NULL);
	ck_assert_msg(strstr(p.out, "304 ") && strstr(p.out, "204 ") && strstr(p.out, "200 ") &&
		      strcasestr(p.out, "Content-Length: 12345"), "-I:\n%s", p.out);
	ck_assert_msg(count_of(p.err, "Re-using existing connection") == 2, "-I:\n%s", p.err);
	prog_free(&p);

	const char *get[] = { "curl", "-sS", "-v", "-x", proxy_addr(), "-w", "%{http_code} ",
		"-o", "/dev/null", s304, "-o", "/dev/null", s204, "-o", in_dir("b"), len, NULL };
	run_ok(&p, get, NULL);
	ck_assert_str_eq(p.out, "304 204 200 ");
	ck_assert_msg(count_of(p.err, "Re-using existing connection") == 2, "GET:\n%s", p.err);
	prog_free(&p);
	expect_file_pattern("GET after 304 and 204", in_dir("b"), 12345);
	end();
}
END_TEST

/* Several URLs in one invocation: kept alive across origins (--http1.1 --no-keepalive turns
 * off TCP keep-alive probes only); with "Connection: close" ferry closes after each answer
 * and curl opens a new connection for each. */
START_TEST(curl_reuse_close)
{
	struct prog p;

	begin("epoll");
	ck_assert_int_eq(mkdir(in_dir("www"), 0755), 0);
	free(make_binary(in_dir("www/f.bin"), 50000));
	int fp = start_files(0, in_dir("www"), "127.0.0.1");

	go();
	const char *a[] = { "curl", "-sS", "-v", "--http1.1", "--no-keepalive", "-x", proxy_addr(),
		"-o", in_dir("b1"), url("http://127.0.0.1:%d/len/1000", origin.port),
		"-o", in_dir("b2"), url("http://127.0.0.1:%d/f.bin", fp),
		"-o", in_dir("b3"), url("http://127.0.0.1:%d/chunked/3000", origin.port), NULL };
	run_ok(&p, a, NULL);
	ck_assert_msg(count_of(p.err, "Re-using existing connection") == 2, "%s", p.err);
	prog_free(&p);
	expect_file_pattern("first of three", in_dir("b1"), 1000);
	expect_same_file("second of three", in_dir("b2"), in_dir("www/f.bin"));
	expect_file_pattern("third of three", in_dir("b3"), 3000);

	const char *c[] = { "curl", "-sS", "-v", "-H", "Connection: close", "-x", proxy_addr(),
		"-o", in_dir("c1"), url("http://127.0.0.1:%d/len/1000", origin.port),
		"-o", in_dir("c2"), url("http://127.0.0.1:%d/len/2000", origin.port), NULL };
	run_ok(&p, c, NULL);
	ck_assert_msg(count_of(p.err, "Re-using existing connection") == 0 &&
		      count_of(p.err, "Connected to 127.0.0.1") == 2, "%s", p.err);
	prog_free(&p);
	expect_file_pattern("close 1", in_dir("c1"), 1000);
	expect_file_pattern("close 2", in_dir("c2"), 2000);
	end();
}
END_TEST

/* --proxy-anyauth (curl asks without credentials, gets 407 Basic, asks again with them),
 * also for CONNECT and for a 2 MB POST; --proxy-basic (credentials at once); --proxy-digest
 * (ferry offers Basic only: the answer stays 407). */
START_TEST(curl_proxy_anyauth)
{
	struct prog p;
	char line[512];

	begin("epoll");
	const char *pa[] = { "openssl", "passwd", "-6", "open sesame", NULL };
	run_ok(&p, pa, NULL);
	p.out[strcspn(p.out, "\r\n")] = '\0';
	snprintf(line, sizeof(line), "alice:%s\n", p.out);
	prog_free(&p);
	write_text(in_dir("htpasswd"), line);
	harness_conf_set(&conf, "auth", "htpasswd", in_dir("htpasswd"));
	go();
	const char *target = url("http://127.0.0.1:%d/len/5000", origin.port);

	const char *any[] = { "curl", "-sS", "-v", "--proxy-anyauth", "--proxy-user",
		"alice:open sesame", "-x", proxy_addr(), "-o", in_dir("a"), target, NULL };
	run_ok(&p, any, NULL);
	ck_assert_msg(strstr(p.err, "< HTTP/1.1 407 ") && strstr(p.err, "< HTTP/1.1 200 "),
		      "--proxy-anyauth:\n%s", p.err);
	prog_free(&p);
	expect_file_pattern("--proxy-anyauth", in_dir("a"), 5000);

	const char *tun[] = { "curl", "-sS", "-v", "-p", "--proxy-anyauth", "--proxy-user",
		"alice:open sesame", "-x", proxy_addr(), "-o", in_dir("t"), target, NULL };
	run_ok(&p, tun, NULL);
	ck_assert_msg(strstr(p.err, "< HTTP/1.1 407 ") &&
		      strstr(p.err, "< HTTP/1.1 200 Connection established"), "-p:\n%s", p.err);
	prog_free(&p);
	expect_file_pattern("--proxy-anyauth -p", in_dir("t"), 5000);

	char *want = make_binary(in_dir("up"), 2000000);
	const char *post[] = { "curl", "-sS", "--proxy-anyauth", "--proxy-user",
		"alice:open sesame", "-x", proxy_addr(), "--data-binary", url("@%s", in_dir("up")),
		"-o", in_dir("e"), url("http://127.0.0.1:%d/echo", origin.port), NULL };
	size_t n;

	run_ok(&p, post, NULL);
	prog_free(&p);
	char *got = read_file(in_dir("e"), &n);

	ck_assert_msg(n == 2000000 && memcmp(got, want, n) == 0, "anyauth POST: %zu bytes", n);
	free(got);
	free(want);

	const char *basic[] = { "curl", "-sS", "-v", "--proxy-basic", "--proxy-user",
		"alice:open sesame", "-x", proxy_addr(), "-o", in_dir("b"), target, NULL };
	run_ok(&p, basic, NULL);
	ck_assert_msg(!strstr(p.err, "< HTTP/1.1 407 ") && strstr(p.err, "< HTTP/1.1 200 "),
		      "--proxy-basic:\n%s", p.err);
	prog_free(&p);
	expect_file_pattern("--proxy-basic", in_dir("b"), 5000);

	const char *digest[] = { "curl", "-sS", "--proxy-digest", "--proxy-user",
		"alice:open sesame", "-x", proxy_addr(), "-o", "/dev/null", "-w", "%{http_code}",
		target, NULL };
	run_ok(&p, digest, NULL);
	ck_assert_str_eq(p.out, "407");
	prog_free(&p);
	end();
}
END_TEST

/* An IPv6 literal target, http://[::1]:port/: relayed with Host "[::1]:port", and through
 * -p as CONNECT [::1]:port. */
START_TEST(curl_ipv6_target)
{
	struct prog p;
	size_t n;

	begin("epoll");
	ck_assert_int_eq(mkdir(in_dir("www"), 0755), 0);
	free(make_binary(in_dir("www/f.bin"), 100000));
	int f6 = start_files(0, in_dir("www"), "::1");

	go();
	const char *a[] = { "curl", "-sS", "-x", proxy_addr(), "-o", in_dir("h"),
		url("http://[::1]:%d/headers", f6), NULL };
	run_ok(&p, a, NULL);
	prog_free(&p);
	char *h = read_file(in_dir("h"), &n);

	ck_assert_msg(strstr(h, url("\nHost: [::1]:%d\r\n", f6)) && strstr(h, "\nVia: 1.1 "),
		      "the origin got:\n%s", h);
	free(h);

	const char *b[] = { "curl", "-sS", "-v", "-p", "-x", proxy_addr(), "-o", in_dir("b"),
		url("http://[::1]:%d/f.bin", f6), NULL };
	run_ok(&p, b, NULL);
	ck_assert_msg(strstr(p.err, url("> CONNECT [::1]:%d HTTP/1.1", f6)) != NULL, "%s", p.err);
	prog_free(&p);
	expect_same_file("GET [::1] through CONNECT", in_dir("b"), in_dir("www/f.bin"));
	end();
}
END_TEST

/* Clients that do not speak HTTP to the proxy (curl -x socks5h://, socks4://, https://) get
 * an answer at once and fail cleanly: no hang until a timeout. */
START_TEST(curl_wrong_proxy_protocol)
{
	struct prog p;
	const char *schemes[] = { "socks5h", "socks4", "https" };

	begin("epoll");
	/* ferry waiting for a request line that never comes would be cut by this, not by curl:
	 * then the hang guard kills curl and the test fails */
	harness_conf_set(&conf, "timeouts", "request_header", "600");
	go();
	for (int i = 0; i < 3; i++) {
		const char *a[] = { "curl", "-sS", "--proxy-insecure", "-x",
			url("%s://%s", schemes[i], proxy_addr()), "-o", "/dev/null",
			url("http://127.0.0.1:%d/len/10", origin.port), NULL };

		run(&p, a, NULL, 60000);
		ck_assert_msg(p.status > 0, "curl -x %s://: exit %d\n%s", schemes[i], p.status, p.err);
		prog_free(&p);
	}
	end();
}
END_TEST

/* --http1.0 -I of a chunked resource: the HEAD answer has no body, and an HTTP/1.0 client
 * must not be sent Transfer-Encoding (RFC 9112 section 6.1); an HTTP/1.1 client gets the
 * field as the origin sent it. The connection stays usable for the next URL. */
START_TEST(curl_http10_head)
{
	struct prog p;

	begin("epoll");
	go();
	const char *chunked = url("http://127.0.0.1:%d/chunked/100000", origin.port);
	const char *a[] = { "curl", "-sS", "-v", "--http1.0", "-I", "-x", proxy_addr(), chunked,
		url("http://127.0.0.1:%d/len/777", origin.port), NULL };
	run_ok(&p, a, NULL);
	ck_assert_msg(strncmp(p.out, "HTTP/1.1 200 ", 13) == 0 &&
		      !strcasestr(p.out, "Transfer-Encoding") &&
		      strcasestr(p.out, "\nContent-Length: 777\r\n"), "HEAD as HTTP/1.0:\n%s", p.out);
	ck_assert_msg(count_of(p.err, "Re-using existing connection") == 1, "%s", p.err);
	prog_free(&p);

	const char *b[] = { "curl", "-sS", "-I", "-x", proxy_addr(), chunked, NULL };
	run_ok(&p, b, NULL);
	ck_assert_msg(strcasestr(p.out, "\nTransfer-Encoding: chunked\r\n") != NULL,
		      "HEAD as HTTP/1.1:\n%s", p.out);
	prog_free(&p);
	end();
}
END_TEST

/* An HTTP/1.0 origin, `python3 -m http.server` on a directory: curl gets every file whole
 * over one kept-alive connection to ferry (the origin closes after each answer, ferry does
 * not), and Via says who spoke HTTP/1.0 (RFC 9110 section 7.6.3): "1.0" on the response
 * from this origin, and "1.0" on the request of an HTTP/1.0 client (--http1.0 to
 * tests/origin's /headers). */
START_TEST(http_server_origin)
{
	struct prog p;
	size_t n;
	char *h;

	begin("epoll");
	ck_assert_int_eq(mkdir(in_dir("www"), 0755), 0);
	free(make_binary(in_dir("www/a.bin"), 200000));
	free(make_binary(in_dir("www/b.bin"), 3333));
	/* a port free a moment ago; curl --retry-connrefused below waits until it listens */
	int port = harness_free_port();
	const char *srv[] = { "sh", "-c", url("cd %s && exec python3 -m http.server --bind "
		"127.0.0.1 %d >/dev/null 2>&1", in_dir("www"), port), NULL };

	files_pid[1] = fork();
	ck_assert_int_ge(files_pid[1], 0);
	if (files_pid[1] == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execvp(srv[0], (char *const *)srv);
		_exit(127);
	}
	setpgid(files_pid[1], files_pid[1]);
	files_port[1] = port;
	go();
	const char *wait[] = { "curl", "-sS", "--retry", "50", "--retry-connrefused",
		"--retry-delay", "1", "-o", "/dev/null", url("http://127.0.0.1:%d/", port), NULL };
	run_ok(&p, wait, NULL);
	prog_free(&p);

	const char *a[] = { "curl", "-sS", "-v", "-x", proxy_addr(), "-D", in_dir("h"),
		"-o", in_dir("a"), url("http://127.0.0.1:%d/a.bin", port),
		"-o", in_dir("b"), url("http://127.0.0.1:%d/b.bin", port), NULL };
	run_ok(&p, a, NULL);
	ck_assert_msg(count_of(p.err, "Re-using existing connection") == 1, "%s", p.err);
	prog_free(&p);
	expect_same_file("a.bin from http.server", in_dir("a"), in_dir("www/a.bin"));
	expect_same_file("b.bin from http.server", in_dir("b"), in_dir("www/b.bin"));
	h = read_file(in_dir("h"), &n);
	ck_assert_msg(count_of(h, "\nVia: 1.0 ") == 2 && count_of(h, "HTTP/1.1 200 ") == 2,
		      "heads:\n%s", h);
	free(h);

	const char *b[] = { "curl", "-sS", "--http1.0", "-x", proxy_addr(), "-o", in_dir("r"),
		url("http://127.0.0.1:%d/headers", origin.port), NULL };
	run_ok(&p, b, NULL);
	prog_free(&p);
	h = read_file(in_dir("r"), &n);
	ck_assert_msg(strstr(h, "\r\nVia: 1.0 ") != NULL, "the origin got:\n%s", h);
	free(h);
	end();
}
END_TEST

/* Python's urllib sends "GET http://host:port?query" (an empty path before the query, valid
 * absolute-form, RFC 9112 section 3.2.2): the origin gets "GET /?query". */
START_TEST(urllib_empty_path)
{
	struct prog p;
	char env_http[64];

	begin("epoll");
	ck_assert_int_eq(mkdir(in_dir("www"), 0755), 0);
	write_text(in_dir("www/index.html"), "<html>ferry index</html>\n");
	int fp = start_files(0, in_dir("www"), "127.0.0.1");

	name_only_ferry_knows();
	go();
	snprintf(env_http, sizeof(env_http), "http_proxy=http://%s", proxy_addr());
	const char *env[] = { env_http, NULL };
	const char *a[] = { "python3", "-c", "import sys, urllib.request\n"
		"for u in sys.argv[1:]:\n"
		"    sys.stdout.write(urllib.request.urlopen(u, timeout=60).read().decode())\n",
		url("http://" HOSTNAME ":%d?headers", fp), url("http://" HOSTNAME ":%d?x=1", fp),
		NULL };
	run_ok(&p, a, env);
	ck_assert_msg(strncmp(p.out, "GET /?headers HTTP/1.1\r\n", 24) == 0 &&
		      strstr(p.out, "\nVia: 1.1 ") && strstr(p.out, "<html>ferry index</html>"),
		      "urllib got:\n%s", p.out);
	prog_free(&p);
	end();
}
END_TEST

/* apt's own HTTP client (every Debian machine has it): apt-helper download-file with
 * Acquire::http::Proxy and Acquire::https::Proxy, three files over http (Content-Length and
 * chunked) and one over https through CONNECT, verified against the test's certificate.
 * APT::Sandbox::User=root keeps it from dropping to the _apt user, who could not write the
 * test's directory. */
START_TEST(apt_download)
{
	struct prog p;
	char proxy[64];

	begin("epoll");
	start_py_origin();
	make_tree();
	int fp = start_files(0, in_dir("tree"), "127.0.0.1");

	name_only_ferry_knows();
	go();
	snprintf(proxy, sizeof(proxy), "http://%s", proxy_addr());
	const char *a[] = { "/usr/lib/apt/apt-helper", "-o", "APT::Sandbox::User=root",
		"-o", url("Acquire::http::Proxy=%s", proxy),
		"-o", url("Acquire::https::Proxy=%s", proxy),
		"-o", url("Acquire::https::CaInfo=%s", in_dir("cert.pem")),
		"download-file",
		url("http://" HOSTNAME ":%d/blob.bin", fp), in_dir("a"),
		url("http://" HOSTNAME ":%d/sub/pic.bin", fp), in_dir("b"),
		url("http://" HOSTNAME ":%d/chunked/200000", origin.port), in_dir("c"),
		url("https://" HOSTNAME ":%d/len/100000", py_https), in_dir("d"), NULL };
	run_ok(&p, a, NULL);
	prog_free(&p);
	expect_same_file("apt: blob.bin", in_dir("a"), in_dir("tree/blob.bin"));
	expect_same_file("apt: pic.bin", in_dir("b"), in_dir("tree/sub/pic.bin"));
	expect_file_pattern("apt: chunked", in_dir("c"), 200000);
	expect_file_pattern("apt: https", in_dir("d"), 100000);
	ck_assert_int_ge(fake_dns_queries(fdns, HOSTNAME), 1);
	end();
}
END_TEST

/* ---- registration: only what can run here ---- */

static int installed(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[1024];

	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, n ? path : ".", prog);
		if (access(buf, X_OK) == 0)
			return 1;
		path += n + (path[n] == ':');
	}
	return 0;
}

/* Can we listen on ::1 (some containers have no IPv6 loopback)? */
static int have_ipv6_loopback(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

struct scenario {
	const char *what;
	const TTest *test;
	int loop;                /* run for both multiplexers */
	const char *needs[4];    /* programs on PATH */
	int browser;
};

/* Scenarios that need more than programs: a shell command that must succeed ("ipv6": the
 * ::1 check above), and what is missing when it does not. */
static const struct {
	const char *what, *probe, *probe_what;
} probes[] = {
	{ "python requests", "python3 -c 'import requests' >/dev/null 2>&1", "python3 requests module" },
	{ "curl IPv6 target", "ipv6", "IPv6 loopback (::1)" },
	{ "apt-helper download-file", "test -x /usr/lib/apt/apt-helper", "apt-helper (apt)" },
};

static const char *probe_missing(const char *what)
{
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		if (strcmp(probes[i].what, what) != 0)
			continue;
		if (strcmp(probes[i].probe, "ipv6") == 0 ? !have_ipv6_loopback()
							  : system(probes[i].probe) != 0)
			return probes[i].probe_what;
	}
	return NULL;
}

int main(void)
{
	const struct scenario all[] = {
		{ "curl GET", curl_get, 1, { "curl" }, 0 },
		{ "curl HEAD", curl_head, 0, { "curl" }, 0 },
		{ "curl POST file", curl_post_file, 0, { "curl" }, 0 },
		{ "curl PUT", curl_put, 0, { "curl" }, 0 },
		{ "curl chunked upload", curl_chunked_upload, 0, { "curl" }, 0 },
		{ "curl --proxy-user", curl_proxy_auth, 0, { "curl", "openssl" }, 0 },
		{ "curl -p (CONNECT)", curl_connect_tunnel, 0, { "curl" }, 0 },
		{ "curl https", curl_https, 0, { "curl", "openssl", "python3" }, 0 },
		{ "curl --limit-rate", curl_limit_rate, 0, { "curl" }, 0 },
		{ "curl --http1.0", curl_http10, 0, { "curl" }, 0 },
		{ "python urllib http", python_urllib_http, 0, { "python3", "openssl" }, 0 },
		{ "python urllib https", python_urllib_https, 0, { "python3", "openssl" }, 0 },
		{ "ab -k", ab_keepalive, 0, { "ab" }, 0 },
		{ "wrk absolute-form", wrk_absolute_form, 0, { "wrk" }, 0 },
		{ "chromium http page", chromium_http_page, 0, { "chromium", "python3", "openssl", "curl" }, 1 },
		{ "chromium https page", chromium_https_page, 0, { "chromium", "python3", "openssl", "curl" }, 1 },
		{ "chromium websocket", chromium_websocket, 0, { "chromium", "python3", "openssl" }, 1 },
		{ "wget", wget_proxy, 0, { "wget", "python3", "openssl" }, 0 },
		{ "python requests", python_requests, 0, { "python3", "openssl" }, 0 },
		{ "git http", git_http, 0, { "git", "python3" }, 0 },
		{ "node http", node_http, 0, { "node", "python3", "openssl" }, 0 },
		{ "openssl s_client -proxy", openssl_s_client, 0, { "openssl", "python3" }, 0 },
		{ "curl Expect: 100-continue", curl_expect_100, 0, { "curl" }, 0 },
		{ "curl --proxy1.0", curl_proxy10, 0, { "curl" }, 0 },
		{ "curl -r / -C -", curl_ranges, 0, { "curl", "python3" }, 0 },
		{ "curl 304/204 then reuse", curl_nobody_reuse, 0, { "curl" }, 0 },
		{ "curl several URLs", curl_reuse_close, 0, { "curl", "python3" }, 0 },
		{ "curl --proxy-anyauth", curl_proxy_anyauth, 0, { "curl", "openssl" }, 0 },
		{ "curl IPv6 target", curl_ipv6_target, 0, { "curl", "python3" }, 0 },
		{ "curl -x socks5h:// etc.", curl_wrong_proxy_protocol, 0, { "curl" }, 0 },
		{ "curl --http1.0 -I", curl_http10_head, 0, { "curl" }, 0 },
		{ "python3 -m http.server origin", http_server_origin, 0, { "curl", "python3" }, 0 },
		{ "python urllib http://host?query", urllib_empty_path, 0, { "python3" }, 0 },
		{ "apt-helper download-file", apt_download, 0, { "python3", "openssl" }, 0 },
	};
	Suite *s = suite_create("realclients");
	TCase *tc = tcase_create("realclients");
	int skip_browser = getenv("FERRY_SKIP_BROWSER") && *getenv("FERRY_SKIP_BROWSER");
	const char *only = getenv("FERRY_RC_ONLY"); /* run by hand: scenarios whose name has this */

	tcase_set_timeout(tc, 240);
	tcase_add_checked_fixture(tc, NULL, teardown);
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		const char *missing = NULL;

		if (only && *only && !strstr(all[i].what, only))
			continue;
		for (int k = 0; k < 4 && all[i].needs[k]; k++)
			if (!missing && !installed(all[i].needs[k]))
				missing = all[i].needs[k];
		if (!missing)
			missing = probe_missing(all[i].what);
		if (missing) {
			printf("SKIPPED: %s: %s not installed\n", all[i].what, missing);
			continue;
		}
		if (all[i].browser && skip_browser) {
			printf("SKIPPED: %s: FERRY_SKIP_BROWSER is set\n", all[i].what);
			continue;
		}
		if (all[i].loop)
			tcase_add_loop_test(tc, all[i].test, 0, 2);
		else
			tcase_add_test(tc, all[i].test);
	}
	fflush(stdout);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
