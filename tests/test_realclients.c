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
#include <sys/prctl.h>
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
		int devnull = open("/dev/null", O_RDONLY);
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

/* tests/clients/origin.py with that certificate; reads its two ports. */
static void start_py_origin(void)
{
	int pfd[2];
	pid_t parent = getpid();
	char line[64];
	size_t n = 0;
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
	while (n < sizeof(line) - 1 && !memchr(line, '\n', n) && harness_now_ms() < deadline) {
		struct pollfd pf = { .fd = pfd[0], .events = POLLIN };

		if (poll(&pf, 1, 200) <= 0)
			continue;
		ssize_t r = read(pfd[0], line + n, sizeof(line) - 1 - n);

		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(pfd[0]);
	line[n] = '\0';
	ck_assert_msg(sscanf(line, "%d %d", &py_http, &py_https) == 2,
		      "origin.py did not report its ports (got \"%s\")", line);
}

/* Start ferry: CONNECT allowed to every origin port in use. */
static void go(void)
{
	char ports[64];

	if (py_pid > 0)
		snprintf(ports, sizeof(ports), "%d, %d, %d, %d", origin.port, origin.echo_port,
			 py_http, py_https);
	else
		snprintf(ports, sizeof(ports), "%d, %d", origin.port, origin.echo_port);
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

struct scenario {
	const char *what;
	const TTest *test;
	int loop;                /* run for both multiplexers */
	const char *needs[4];    /* programs on PATH */
	int browser;
};

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
