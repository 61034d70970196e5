/* test_interop.c - ferry next to the proxies users already run, in both directions, driven
 * by curl on loopback:
 *   ferry -> Squid (HTTP parent, with and without Basic auth through basic_ncsa_auth),
 *   ferry -> tinyproxy, ferry -> Privoxy (HTTP parents), ferry -> Dante (SOCKS5 parent),
 *   Squid -> ferry (cache_peer parent, never_direct), Privoxy -> ferry (forward /),
 *   ferry -> Squid -> ferry (a loop, ended by Via), HAProxy in front of two ferries in
 *   HTTP mode and in plain TCP mode.
 * Origins: tests/origin (HTTP, raw echo) and `openssl s_server -WWW` (HTTPS, serving a file of
 * random bytes made here, verified against the test's own certificate).
 *
 * Every peer runs in its own process group with its files in the test's temporary directory,
 * on a loopback port picked at run time (another port is tried if it was taken in between),
 * and is stopped by its group id at the end of its test (and killed with us: PDEATHSIG on
 * the leader). Every wait is bounded; no assertion depends on speed. A scenario whose programs
 * are not installed is not registered: main() prints "SKIPPED: <what>: <program> not
 * installed" instead (tests/run counts those lines). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "status.h"

#define RUN_MS 60000   /* hang guard for one curl */
#define START_MS 20000 /* a peer must listen within this */

static struct harness_origin origin;
static char ncsa[256];   /* Squid's basic_ncsa_auth helper, not on PATH */
static int next_port;    /* peer_start: the port to try first (0: any) */
static struct harness_conf conf;
static char dir[64];

/* ---- programs ---- */

/* Full path of prog on PATH or in the sbin directories (squid, haproxy, danted and privoxy
 * live in /usr/sbin, which a user's PATH may lack), or NULL. */
static const char *find_prog(const char *prog)
{
	static char found[8][512];
	static int k;
	const char *path = getenv("PATH");
	char all[2048];

	snprintf(all, sizeof(all), "%s:/usr/sbin:/usr/local/sbin:/sbin:/usr/bin:/bin",
		 path ? path : "");
	for (const char *p = all; *p;) {
		size_t n = strcspn(p, ":");
		char *o = found[k % 8];

		snprintf(o, sizeof(found[0]), "%.*s/%s", (int)n, n ? p : ".", prog);
		if (access(o, X_OK) == 0) {
			k++;
			return o;
		}
		p += n + (p[n] == ':');
	}
	return NULL;
}

static char *in_dir(const char *name)
{
	static char p[16][192];
	static int k;
	char *o = p[k++ % 16];

	snprintf(o, sizeof(p[0]), "%s/%s", dir, name);
	return o;
}

static const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static const char *fmt(const char *f, ...)
{
	static char s[16][4096];
	static int k;
	char *o = s[k++ % 16];
	va_list ap;

	va_start(ap, f);
	vsnprintf(o, sizeof(s[0]), f, ap);
	va_end(ap);
	return o;
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *b = NULL;
	size_t len = 0, cap = 0;
	char tmp[65536];
	size_t r;

	if (f) {
		while ((r = fread(tmp, 1, sizeof(tmp), f)) > 0) {
			if (len + r + 1 > cap) {
				cap = (len + r + 1) * 2;
				b = realloc(b, cap);
				ck_assert_ptr_nonnull(b);
			}
			memcpy(b + len, tmp, r);
			len += r;
		}
		fclose(f);
	}
	if (!b) {
		b = malloc(1);
		ck_assert_ptr_nonnull(b);
	}
	b[len] = '\0';
	if (n)
		*n = len;
	return b;
}

/* Fork and exec argv in a new process group, stdin /dev/null, stdout and stderr appended to
 * log; dies with us. The peers drop privileges when started as root (Squid becomes "proxy",
 * tinyproxy and Dante "nobody"), and that clears PR_SET_PDEATHSIG; a failed check ends the
 * test process at once, without its teardown. So a small keeper process that keeps our
 * credentials stands between us and the peer, as leader of the group: when we die (the
 * kernel sends it SIGTERM) or stop it, and when the peer exits, it kills the whole group.
 * Returns the keeper's pid, which is the group's id. */
static pid_t spawn(const char *const argv[], const char *log)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		sigset_t wait_for, none;

		setpgid(0, 0);
		sigemptyset(&wait_for);
		sigaddset(&wait_for, SIGTERM);
		sigaddset(&wait_for, SIGCHLD);
		sigprocmask(SIG_BLOCK, &wait_for, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		pid_t peer = fork();

		if (peer < 0)
			_exit(127);
		if (peer == 0) {
			int in = open("/dev/null", O_RDONLY);
			int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

			if (in < 0 || out < 0)
				_exit(127);
			dup2(in, 0);
			dup2(out, 1);
			dup2(out, 2);
			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
			signal(SIGPIPE, SIG_DFL);
			execv(argv[0], (char *const *)argv);
			dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
			_exit(127);
		}
		for (;;) {
			int sig = 0, st;

			sigwait(&wait_for, &sig);
			if (sig == SIGTERM || waitpid(peer, &st, WNOHANG) == peer)
				break;
		}
		kill(0, SIGKILL); /* the group: the peer, its children, and this keeper */
		_exit(1);
	}
	setpgid(pid, pid);
	return pid;
}

/* Stop a group we started: SIGTERM, at most 3 s for its leader, then SIGKILL for all. */
static void stop_group(pid_t *pid)
{
	int st;

	if (*pid <= 0)
		return;
	kill(-*pid, SIGTERM);
	for (int i = 0; i < 60; i++) {
		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			kill(-*pid, SIGKILL); /* helpers the leader left behind */
			*pid = 0;
			return;
		}
		harness_sleep_ms(50);
	}
	kill(-*pid, SIGKILL);
	while (waitpid(*pid, &st, 0) < 0 && errno == EINTR)
		;
	*pid = 0;
}

struct prog {
	int status; /* exit code; -1 killed (hang guard) or by a signal */
	char *out, *err;
	size_t out_len;
};

static void prog_free(struct prog *p)
{
	free(p->out);
	free(p->err);
	memset(p, 0, sizeof(*p));
}

/* Run argv (argv[0] found with find_prog) to completion, output captured through files;
 * its group is killed after timeout_ms. No proxy variables from our environment. */
static int run(struct prog *p, const char *const argv[], int timeout_ms)
{
	static int seq;
	char out[192], err[192];
	const char *args[64];
	int st = 0, done = 0;

	memset(p, 0, sizeof(*p));
	snprintf(out, sizeof(out), "%s/run%d.out", dir, seq);
	snprintf(err, sizeof(err), "%s/run%d.err", dir, seq++);
	args[0] = find_prog(argv[0]);
	ck_assert_msg(args[0] != NULL, "%s not found", argv[0]);
	for (int i = 1; i < 63 && (args[i] = argv[i]) != NULL; i++)
		;
	args[63] = NULL;
	pid_t parent = getpid();
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		static const char *const vars[] = { "http_proxy", "https_proxy", "HTTP_PROXY",
			"HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY", NULL };
		int in = open("/dev/null", O_RDONLY);
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		sigset_t none;

		if (in < 0 || o < 0 || e < 0)
			_exit(127);
		dup2(in, 0);
		dup2(o, 1);
		dup2(e, 2);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		for (int i = 0; vars[i]; i++)
			unsetenv(vars[i]);
		execv(args[0], (char *const *)args);
		_exit(127);
	}
	setpgid(pid, pid);
	long long deadline = harness_now_ms() + timeout_ms;

	while (!done && harness_now_ms() < deadline) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			done = 1;
		else
			harness_sleep_ms(10);
	}
	kill(-pid, SIGKILL);
	if (!done)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	p->status = done && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	p->out = slurp(out, &p->out_len);
	p->err = slurp(err, NULL);
	return p->status;
}

/* ---- peers ---- */

enum { SQUID, TINYPROXY, PRIVOXY, DANTE, HAPROXY, SSERVER, NPEERS };
static const char *const peer_names[NPEERS] = { "squid", "tinyproxy", "privoxy",
	"danted", "haproxy", "s_server" };

struct peer {
	pid_t pid;
	int port;
	char log[192];
};
static struct peer peers[NPEERS];

/* Does 127.0.0.1:port accept connections (within ms)? Gives up early when pid has exited. */
static int wait_listen(int port, pid_t pid, int ms)
{
	long long deadline = harness_now_ms() + ms;

	while (harness_now_ms() < deadline) {
		struct harness_conn c;

		if (harness_connect(&c, port) == FERRY_OK) {
			harness_close(&c);
			return 1;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return 0;
		harness_sleep_ms(50);
	}
	return 0;
}

/* Start peer k: write_conf(port) writes its configuration for a port picked now and returns
 * its command line; three tries (the port may be taken by someone else in between). */
typedef const char *const *(*conf_fn)(int port, void *arg);
static void peer_start(int k, conf_fn write_conf, void *arg)
{
	struct peer *p = &peers[k];

	snprintf(p->log, sizeof(p->log), "%s/%s.log", dir, peer_names[k]);
	/* a port fixed in advance (next_port) cannot change: one try */
	int tries = next_port > 0 ? 1 : 3;

	for (int attempt = 0; attempt < tries; attempt++) {
		p->port = attempt == 0 && next_port > 0 ? next_port : harness_free_port();
		const char *const *argv = write_conf(p->port, arg);

		p->pid = spawn(argv, p->log);
		if (wait_listen(p->port, p->pid, START_MS)) {
			next_port = 0;
			return;
		}
		stop_group(&p->pid);
	}
	char *log = slurp(p->log, NULL);

	ck_abort_msg("%s did not start; its log:\n%.3000s", peer_names[k], log);
}

/* A file in dir, as text. */
static void put_file(const char *name, const char *text)
{
	ck_assert_int_eq(harness_write_file(in_dir(name), text), FERRY_OK);
	chmod(in_dir(name), 0644);
}

/* The hash of password for an htpasswd line, made now with `openssl passwd -6`. */
static void htpasswd_file(const char *name, const char *user, const char *password)
{
	struct prog p;
	const char *pw[] = { "openssl", "passwd", "-6", password, NULL };

	run(&p, pw, RUN_MS);
	ck_assert_msg(p.status == 0 && strncmp(p.out, "$6$", 3) == 0, "openssl passwd: %s", p.out);
	p.out[strcspn(p.out, "\r\n")] = '\0';
	put_file(name, fmt("%s:%s\n", user, p.out));
	prog_free(&p);
}

/* ---- Squid ---- */

struct squid_opts {
	const char *name;       /* visible_hostname, file prefix */
	const char *extra;      /* more configuration lines */
};

static const char *const *squid_conf(int port, void *arg)
{
	const struct squid_opts *o = arg;
	static char path[192];
	static const char *argv[6];

	snprintf(path, sizeof(path), "%s/%s.conf", dir, o->name);
	put_file(fmt("%s.conf", o->name),
		 fmt("http_port 127.0.0.1:%d\n"
		     "visible_hostname %s\n"
		     "pid_filename none\n"
		     "cache_log %s/%s-cache.log\n"
		     "logformat interop %%>a:%%>p %%rm %%ru %%>Hs %%un %%Sh\n"
		     "access_log stdio:%s/%s-access.log interop\n"
		     "cache_store_log none\ncache deny all\ncache_mem 4 MB\n"
		     "coredump_dir %s\nshutdown_lifetime 0 seconds\nnetdb_filename none\n"
		     "icp_port 0\nhtcp_port 0\npinger_enable off\n%s\n",
		     port, o->name, dir, o->name, dir, o->name, dir, o->extra));
	argv[0] = find_prog("squid");
	argv[1] = "-N";
	argv[2] = "-f";
	argv[3] = path;
	argv[4] = NULL;
	return argv;
}

/* Squid's access log line for which (a substring), waiting at most 5 s for Squid to write it. */
static char *squid_log_line(const char *name, const char *which_)
{
	long long deadline = harness_now_ms() + 5000;
	char which[512], path[192];

	/* copies: fmt() and in_dir() reuse their buffers */
	snprintf(which, sizeof(which), "%s", which_);
	snprintf(path, sizeof(path), "%s", in_dir(fmt("%s-access.log", name)));

	for (;;) {
		char *log = slurp(path, NULL);
		char *l = strstr(log, which);

		if (l) {
			while (l > log && l[-1] != '\n')
				l--;
			char *line = strndup(l, strcspn(l, "\n"));

			free(log);
			return line;
		}
		if (harness_now_ms() >= deadline) {
			ck_abort_msg("no \"%s\" in Squid's access log:\n%.3000s", which, log);
		}
		free(log);
		harness_sleep_ms(100);
	}
}

/* ---- ferry ---- */

static void begin(void)
{
	ck_assert_int_eq(harness_origin_start(&origin), FERRY_OK);
	harness_conf_base(&conf, "epoll", &origin);
	strcpy(dir, "/tmp/ferry-io-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	/* peers that drop root (Squid runs as "proxy") write their logs here */
	chmod(dir, 0777);
}

static void teardown(void)
{
	for (int k = 0; k < NPEERS; k++)
		stop_group(&peers[k].pid);
	harness_cleanup();
	if (dir[0] && !getenv("FERRY_E2E_KEEP")) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	dir[0] = '\0';
}

/* connect_ports: the origin's ports and the HTTPS origin's. */
static void ferry_start(struct harness_ferry *f, const char *via)
{
	harness_conf_set(&conf, "access", "connect_ports",
			 fmt("%d, %d, %d", origin.port, origin.echo_port, peers[SSERVER].port));
	harness_conf_set(&conf, "server", "via_name", via);
	harness_conf_set(&conf, "log", "access_log", in_dir(fmt("%s-access.log", via)));
	ck_assert_int_eq(harness_ferry_start(f, &conf), FERRY_OK);
}

static void ferry_end(struct harness_ferry *f)
{
	char *log = NULL;
	int rc = harness_ferry_stop_log(f, &log);

	ck_assert_msg(rc == 0, "ferry exited %d; log:\n%.4000s", rc, log ? log : "");
	free(log);
}

/* ferry's access log (via = its via_name) holds a line with all of these substrings. */
static void ferry_logged(const char *via, const char *a_, const char *b_)
{
	long long deadline = harness_now_ms() + 5000;
	char a[512], bb[512], path[192];
	const char *b = b_ ? bb : NULL;

	/* copies: fmt() and in_dir() reuse their buffers */
	snprintf(a, sizeof(a), "%s", a_);
	snprintf(bb, sizeof(bb), "%s", b_ ? b_ : "");
	snprintf(path, sizeof(path), "%s", in_dir(fmt("%s-access.log", via)));

	for (;;) {
		char *log = slurp(path, NULL);

		for (char *l = log; *l;) {
			size_t n = strcspn(l, "\n");
			char save = l[n];

			l[n] = '\0';
			int hit = strstr(l, a) && (!b || strstr(l, b));

			l[n] = save;
			if (hit) {
				free(log);
				return;
			}
			l += n + (save != '\0');
		}
		if (harness_now_ms() >= deadline)
			ck_abort_msg("no line with \"%s\" and \"%s\" in ferry %s's access log:\n%.3000s",
				     a, b ? b : "", via, log);
		free(log);
		harness_sleep_ms(100);
	}
}

/* ---- the HTTPS origin: openssl s_server -WWW serving dir ---- */

#define TLS_FILE_SIZE 300000

static const char *const *sserver_conf(int port, void *arg)
{
	static const char *argv[16];
	static char accept_[32];

	(void)arg;
	snprintf(accept_, sizeof(accept_), "127.0.0.1:%d", port);
	argv[0] = find_prog("openssl");
	argv[1] = "s_server";
	argv[2] = "-accept";
	argv[3] = accept_;
	argv[4] = "-cert";
	argv[5] = in_dir("cert.pem");
	argv[6] = "-key";
	argv[7] = in_dir("key.pem");
	argv[8] = "-WWW";
	argv[9] = "-quiet";
	argv[10] = NULL;
	return argv;
}

static char *tls_body; /* what s_server serves as /tls.bin */

/* A certificate for 127.0.0.1, a file of random bytes, and s_server serving it from dir. */
static void https_origin_start(void)
{
	struct prog p;
	const char *req[] = { "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
		"-keyout", in_dir("key.pem"), "-out", in_dir("cert.pem"), "-days", "2",
		"-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", NULL };

	run(&p, req, RUN_MS);
	ck_assert_msg(p.status == 0, "openssl req: %s", p.err);
	prog_free(&p);
	tls_body = malloc(TLS_FILE_SIZE);
	ck_assert_ptr_nonnull(tls_body);
	unsigned long long x = 0x9E3779B97F4A7C15ULL ^ (unsigned long long)getpid();
	for (size_t i = 0; i < TLS_FILE_SIZE; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		tls_body[i] = (char)(x >> 24);
	}
	FILE *f = fopen(in_dir("tls.bin"), "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(tls_body, 1, TLS_FILE_SIZE, f), TLS_FILE_SIZE);
	fclose(f);
	/* -WWW serves paths relative to its working directory: start it from dir */
	char cwd[512];

	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	ck_assert_int_eq(chdir(dir), 0);
	peer_start(SSERVER, sserver_conf, NULL);
	ck_assert_int_eq(chdir(cwd), 0);
}

/* ---- curl through a proxy ---- */

static const char *proxy_of(int port)
{
	return fmt("127.0.0.1:%d", port);
}

/* GET url through proxy: the status of the last head, the body in *body (malloc'd). extra:
 * more curl arguments (NULL-terminated, may be NULL). */
static int curl_get(int proxy, const char *url, const char *const extra[], char **body,
		    size_t *blen, char **heads)
{
	struct prog p;
	const char *argv[40];
	int k = 0;

	argv[k++] = "curl";
	argv[k++] = "-sS";
	argv[k++] = "-x";
	argv[k++] = proxy_of(proxy);
	argv[k++] = "-D";
	argv[k++] = in_dir("curl.h");
	argv[k++] = "-o";
	argv[k++] = in_dir("curl.b");
	for (int i = 0; extra && extra[i]; i++)
		argv[k++] = extra[i];
	argv[k++] = url;
	argv[k] = NULL;
	unlink(in_dir("curl.h"));
	unlink(in_dir("curl.b"));
	run(&p, argv, RUN_MS);
	ck_assert_msg(p.status >= 0, "curl %s: hung (killed after %d ms)", url, RUN_MS);
	char *h = slurp(in_dir("curl.h"), NULL);
	/* the status of the last head (after 1xx and CONNECT's 200) */
	int status = -1;

	for (const char *s = h; (s = strstr(s, "HTTP/1.")) != NULL; s++)
		if (s == h || s[-1] == '\n')
			status = atoi(s + 9);
	if (body)
		*body = slurp(in_dir("curl.b"), blen);
	if (heads)
		*heads = h;
	else
		free(h);
	if (status < 0 && p.status != 0)
		fprintf(stderr, "curl %s: exit %d: %s\n", url, p.status, p.err);
	prog_free(&p);
	return status;
}

static void expect_pattern(const char *what, const char *got, size_t n, size_t want)
{
	char *pat = harness_pattern(want);

	ck_assert_msg(n == want, "%s: %zu bytes, want %zu", what, n, want);
	ck_assert_msg(memcmp(got, pat, want) == 0, "%s: body differs from the origin's", what);
	free(pat);
}

/* The common checks of a chain that ends at the origin, through the proxy on port `proxy`:
 * GET (length and chunked), POST of a binary body (and chunked), HEAD, CONNECT (-p) to the
 * origin, https to s_server, all byte for byte. */
static void exercise(int proxy, const char *what)
{
	char *b, *h;
	size_t n;
	char o[64]; /* not fmt(): its buffers are reused */

	snprintf(o, sizeof(o), "http://127.0.0.1:%d", origin.port);
	int st;

	st = curl_get(proxy, fmt("%s/len/100000", o), NULL, &b, &n, NULL);
	ck_assert_msg(st == 200, "%s: GET /len: %d", what, st);
	expect_pattern(fmt("%s: GET /len", what), b, n, 100000);
	free(b);
	st = curl_get(proxy, fmt("%s/chunked/70000", o), NULL, &b, &n, NULL);
	ck_assert_msg(st == 200, "%s: GET /chunked: %d", what, st);
	expect_pattern(fmt("%s: GET /chunked", what), b, n, 70000);
	free(b);
	/* no length: the body ends when the origin closes */
	st = curl_get(proxy, fmt("%s/close/60000", o), NULL, &b, &n, NULL);
	ck_assert_msg(st == 200, "%s: GET /close: %d", what, st);
	expect_pattern(fmt("%s: GET /close", what), b, n, 60000);
	free(b);
	st = curl_get(proxy, fmt("%s/status/204", o), NULL, &b, &n, NULL);
	ck_assert_msg(st == 204 && n == 0, "%s: GET /status/204: %d, %zu bytes", what, st, n);
	free(b);

	/* a binary body: the s_server file, every byte value */
	const char *post[] = { "--data-binary", fmt("@%s", in_dir("tls.bin")), NULL };
	st = curl_get(proxy, fmt("%s/echo", o), post, &b, &n, NULL);
	ck_assert_msg(st == 200, "%s: POST: %d", what, st);
	ck_assert_msg(n == TLS_FILE_SIZE && memcmp(b, tls_body, n) == 0,
		      "%s: POST: %zu bytes came back changed", what, n);
	free(b);
	const char *chunked[] = { "-H", "Transfer-Encoding: chunked", "--data-binary",
		fmt("@%s", in_dir("tls.bin")), NULL };
	st = curl_get(proxy, fmt("%s/echo", o), chunked, &b, &n, NULL);
	ck_assert_msg(st == 200, "%s: chunked POST: %d", what, st);
	ck_assert_msg(n == TLS_FILE_SIZE && memcmp(b, tls_body, n) == 0,
		      "%s: chunked POST: %zu bytes came back changed", what, n);
	free(b);

	const char *head[] = { "-I", NULL };
	st = curl_get(proxy, fmt("%s/len/12345", o), head, &b, &n, &h);
	ck_assert_msg(st == 200, "%s: HEAD: %d", what, st);
	ck_assert_msg(strcasestr(h, "\nContent-Length: 12345\r\n") != NULL, "%s: HEAD:\n%s", what, h);
	free(h);
	free(b);

	const char *tunnel[] = { "-p", NULL };
	st = curl_get(proxy, fmt("%s/len/50000", o), tunnel, &b, &n, &h);
	ck_assert_msg(st == 200, "%s: GET in a CONNECT tunnel: %d\n%s", what, st, h);
	expect_pattern(fmt("%s: GET in a CONNECT tunnel", what), b, n, 50000);
	free(h);
	free(b);

	const char *tls[] = { "--cacert", in_dir("cert.pem"), NULL };
	st = curl_get(proxy, fmt("https://127.0.0.1:%d/tls.bin", peers[SSERVER].port), tls, &b, &n,
		      &h);
	ck_assert_msg(st == 200, "%s: https: %d\n%s%.300s", what, st, h, b);
	ck_assert_msg(n == TLS_FILE_SIZE && memcmp(b, tls_body, n) == 0,
		      "%s: https: %zu bytes, not the file", what, n);
	free(h);
	free(b);
}

/* One curl, three requests on one connection to the proxy (GET, GET chunked, POST): all 200,
 * curl reused its connection. Returns curl's stderr (-v), malloc'd. */
static char *keepalive_three(int proxy)
{
	struct prog p;
	char o[64]; /* not fmt(): its buffers are reused */

	snprintf(o, sizeof(o), "http://127.0.0.1:%d", origin.port);
	/* --next: the POST's body is for the third URL only; curl keeps its connection */
	const char *argv[] = { "curl", "-sS", "-v", "-x", proxy_of(proxy), "-o", "/dev/null",
		fmt("%s/len/1000", o), "-o", "/dev/null", fmt("%s/chunked/2000", o), "--next",
		"-sS", "-v", "-x", proxy_of(proxy), "-o", "/dev/null", "--data-binary", "abc",
		fmt("%s/echo", o), NULL };

	run(&p, argv, RUN_MS);
	ck_assert_msg(p.status == 0, "curl exited %d: %.3000s", p.status, p.err);
	int ok = 0, reused = 0;

	for (const char *s = p.err; (s = strstr(s, "< HTTP/1.1 200 ")) != NULL; s++)
		ok++;
	for (const char *s = p.err; (s = strstr(s, "Re-using existing connection")) != NULL; s++)
		reused++;
	ck_assert_msg(ok == 3 && reused == 2, "keep-alive: %d answers, %d reuses:\n%.3000s", ok,
		      reused, p.err);
	char *err = p.err;

	p.err = NULL;
	prog_free(&p);
	return err;
}

/* The body ferry writes for a CONNECT refused by its parent. */
static char *connect_refusal(int port, const char *hostport)
{
	struct harness_conn c;
	struct harness_resp r;

	ck_assert_int_eq(harness_connect(&c, port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, fmt("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n",
						  hostport, hostport)), FERRY_OK);
	ck_assert_int_eq(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_msg(r.status == 502, "CONNECT %s: %d", hostport, r.status);
	char *body = strdup(r.body);

	harness_resp_free(&r);
	harness_close(&c);
	return body;
}

/* ---- ferry -> Squid ---- */

/* Squid as ferry's parent, no authentication. Everything arrives whole; ferry's connection to
 * Squid is kept alive across requests (Squid sees them from one client port); Squid's 403 to
 * a GET is relayed as Squid wrote it, its 403 to a CONNECT becomes a 502 naming it. */
START_TEST(squid_parent)
{
	struct harness_ferry f;
	struct squid_opts so = { "squid", "acl forbidden dstdomain 127.0.0.9\n"
				 "http_access deny forbidden\nhttp_access allow all" };
	char *b, *h;

	begin();
	https_origin_start();
	peer_start(SQUID, squid_conf, &so);
	harness_conf_set(&conf, "upstream", "parent", fmt("http://127.0.0.1:%d", peers[SQUID].port));
	ferry_start(&f, "ferry-a");
	exercise(f.port, "ferry -> squid");
	char *l = squid_log_line("squid", fmt("CONNECT 127.0.0.1:%d 200", peers[SSERVER].port));

	ck_assert_msg(strstr(l, "HIER_DIRECT") != NULL, "squid: %s", l);
	free(l);
	ferry_logged("ferry-a", fmt("GET http://127.0.0.1:%d/len/100000 200", origin.port),
		     fmt("127.0.0.1:%d", peers[SQUID].port));

	/* keep-alive on both sides: three requests, one connection from ferry to Squid */
	free(keepalive_three(f.port));
	char *a = squid_log_line("squid", fmt("/len/1000 200"));
	char *c = squid_log_line("squid", fmt("/echo 200"));

	ck_assert_msg(strncmp(a, c, strcspn(a, " ")) == 0 && strcspn(a, " ") == strcspn(c, " "),
		      "ferry did not reuse its connection to Squid:\n%s\n%s", a, c);
	free(a);
	free(c);
	ferry_logged("ferry-a", fmt("POST http://127.0.0.1:%d/echo 200", origin.port), "reused");

	/* an HTTP/1.0 client: ferry records the version it received in Via, as Squid does */
	const char *http10[] = { "--http1.0", NULL };
	int st = curl_get(f.port, fmt("http://127.0.0.1:%d/headers", origin.port), http10, &b, NULL,
			  NULL);
	ck_assert_msg(st == 200 && strstr(b, "\r\nVia: 1.0 ferry-a, 1.1 squid (squid/") != NULL,
		      "origin saw:\n%s", b);
	free(b);

	/* an empty path before a query goes to Squid with its "/" (Squid logs the query as "?") */
	struct harness_resp r;
	ck_assert_int_eq(harness_request(f.port, fmt("GET http://127.0.0.1:%d?x=1 HTTP/1.1\r\n"
						     "Host: x\r\nConnection: close\r\n\r\n", origin.port),
				     &r, 0), FERRY_OK);
	ck_assert_msg(r.status == 404, "http://h:p?x=1 through Squid: %d\n%s", r.status, r.head);
	harness_resp_free(&r);
	free(squid_log_line("squid", fmt("GET http://127.0.0.1:%d/? 404", origin.port)));

	/* refusals */
	st = curl_get(f.port, fmt("http://127.0.0.9:%d/len/10", origin.port), NULL, &b, NULL, &h);
	ck_assert_msg(st == 403 && strcasestr(h, "X-Squid-Error: ERR_ACCESS_DENIED") != NULL,
		      "GET denied by Squid: %d\n%s", st, h);
	free(b);
	free(h);
	const char *tunnel[] = { "-p", NULL };
	st = curl_get(f.port, fmt("http://127.0.0.9:%d/len/10", origin.port), tunnel, &b, NULL, &h);
	ck_assert_msg(st == 502, "CONNECT denied by Squid: %d\n%s", st, h);
	free(b);
	free(h);
	b = connect_refusal(f.port, fmt("127.0.0.9:%d", origin.port));
	ck_assert_msg(strstr(b, fmt("refused CONNECT to 127.0.0.9 port %d: 403 Forbidden",
				    origin.port)) != NULL, "%s", b);
	free(b);
	ferry_end(&f);
}
END_TEST

/* Squid with Basic auth (basic_ncsa_auth, a SHA-512 crypt htpasswd made with openssl):
 * ferry without credentials, or wrong ones, gets Squid's 407 and tells the client it is the
 * parent that wants them (502, never a 407 the client would answer); with them in its URL
 * (%20 for the blank in the password) GET, POST, CONNECT and https go through, as alice. */
START_TEST(squid_parent_auth)
{
	struct harness_ferry f;
	char *b, *h;
	int st;

	begin();
	https_origin_start();
	htpasswd_file("squid.htpasswd", "alice", "open sesame");
	struct squid_opts so = { "squid", fmt("auth_param basic program %s %s\n"
		"auth_param basic realm interop\nacl users proxy_auth REQUIRED\n"
		"http_access allow users\nhttp_access deny all",
		ncsa, in_dir("squid.htpasswd")) };
	peer_start(SQUID, squid_conf, &so);

	/* no credentials, then wrong ones */
	const char *urls[] = { fmt("http://127.0.0.1:%d", peers[SQUID].port),
		fmt("http://alice:sesame@127.0.0.1:%d", peers[SQUID].port) };
	for (int i = 0; i < 2; i++) {
		harness_conf_set(&conf, "upstream", "parent", urls[i]);
		ferry_start(&f, "ferry-a");
		st = curl_get(f.port, fmt("http://127.0.0.1:%d/len/10", origin.port), NULL, &b, NULL, &h);
		ck_assert_msg(st == 502 && strstr(b, "requires proxy authentication (407)") != NULL,
			      "GET, Squid wants credentials: %d\n%s%s", st, h, b);
		ck_assert_msg(strcasestr(h, "Proxy-Authenticate") == NULL, "challenge passed on:\n%s", h);
		free(b);
		free(h);
		b = connect_refusal(f.port, fmt("127.0.0.1:%d", origin.echo_port));
		ck_assert_msg(strstr(b, "requires proxy authentication (407)") != NULL, "CONNECT: %s", b);
		free(b);
		ferry_end(&f);
	}

	harness_conf_set(&conf, "upstream", "parent",
			 fmt("http://alice:open%%20sesame@127.0.0.1:%d", peers[SQUID].port));
	ferry_start(&f, "ferry-a");
	exercise(f.port, "ferry -> squid with Basic auth");
	char *l = squid_log_line("squid", fmt("CONNECT 127.0.0.1:%d 200", peers[SSERVER].port));

	ck_assert_msg(strstr(l, " alice ") != NULL, "not as alice: %s", l);
	free(l);
	l = squid_log_line("squid", "/echo 200");
	ck_assert_msg(strstr(l, " alice ") != NULL, "not as alice: %s", l);
	free(l);
	free(keepalive_three(f.port));
	ferry_end(&f);
}
END_TEST

/* ---- ferry -> tinyproxy ---- */

struct tiny_opts {
	const char *extra;
};

static const char *const *tiny_conf(int port, void *arg)
{
	const struct tiny_opts *o = arg;
	static const char *argv[5];
	static char path[192];

	snprintf(path, sizeof(path), "%s/tinyproxy.conf", dir);
	put_file("tinyproxy.conf", fmt("%sPort %d\nListen 127.0.0.1\nTimeout 60\nLogLevel Info\n"
				       "MaxClients 20\nAllow 127.0.0.1\nViaProxyName \"tiny-interop\"\n%s",
				       getuid() == 0 ? "User nobody\nGroup nogroup\n" : "", port,
				       o->extra));
	argv[0] = find_prog("tinyproxy");
	argv[1] = "-d";
	argv[2] = "-c";
	argv[3] = path;
	argv[4] = NULL;
	return argv;
}

/* tinyproxy as parent (pool_idle = 0): it closes its client connection after every response
 * without saying so (no "Connection: close"), answers CONNECT in HTTP/1.0; all of it
 * arrives whole. With
 * BasicAuth and ConnectPort: no credentials -> 502 naming the 407, with them -> through; a
 * CONNECT port it does not allow -> 502 naming its 403. */
START_TEST(tinyproxy_parent)
{
	struct harness_ferry f;
	char *b;

	begin();
	https_origin_start();
	/* tinyproxy closes after each response without saying so: a POST that meets such a
	 * close on a pooled connection cannot be retried (RFC 9112 section 9.3.1) and gets a
	 * 502, so with tinyproxy as parent ferry keeps no idle connections (doc/chaining.md) */
	harness_conf_set(&conf, "timeouts", "pool_idle", "0");
	struct tiny_opts to = { "" };
	peer_start(TINYPROXY, tiny_conf, &to);
	harness_conf_set(&conf, "upstream", "parent",
			 fmt("http://127.0.0.1:%d", peers[TINYPROXY].port));
	ferry_start(&f, "ferry-a");
	exercise(f.port, "ferry -> tinyproxy");
	free(keepalive_three(f.port));
	ferry_end(&f);
	stop_group(&peers[TINYPROXY].pid);

	to.extra = fmt("BasicAuth alice sesame\nConnectPort %d\nConnectPort %d\n", origin.port,
		       origin.echo_port);
	peer_start(TINYPROXY, tiny_conf, &to);
	harness_conf_set(&conf, "upstream", "parent",
			 fmt("http://127.0.0.1:%d", peers[TINYPROXY].port));
	ferry_start(&f, "ferry-a");
	int st = curl_get(f.port, fmt("http://127.0.0.1:%d/len/10", origin.port), NULL, &b, NULL, NULL);
	ck_assert_msg(st == 502 && strstr(b, "requires proxy authentication (407)"), "%d %s", st, b);
	free(b);
	ferry_end(&f);
	harness_conf_set(&conf, "upstream", "parent",
			 fmt("http://alice:sesame@127.0.0.1:%d", peers[TINYPROXY].port));
	ferry_start(&f, "ferry-a");
	st = curl_get(f.port, fmt("http://127.0.0.1:%d/len/10", origin.port), NULL, &b, NULL, NULL);
	ck_assert_msg(st == 200 && strcmp(b, "abcdefghij") == 0, "%d %s", st, b);
	free(b);
	const char *tunnel[] = { "-p", NULL };
	st = curl_get(f.port, fmt("http://127.0.0.1:%d/len/10", origin.port), tunnel, &b, NULL, NULL);
	ck_assert_msg(st == 200 && strcmp(b, "abcdefghij") == 0, "%d %s", st, b);
	free(b);
	b = connect_refusal(f.port, fmt("127.0.0.1:%d", peers[SSERVER].port));
	ck_assert_msg(strstr(b, "refused CONNECT to 127.0.0.1 port") && strstr(b, ": 403 "), "%s", b);
	free(b);
	ferry_end(&f);
}
END_TEST

/* tinyproxy in front of ferry (Upstream http 127.0.0.1:ferry): its GETs, POSTs, CONNECTs. */
START_TEST(tinyproxy_child)
{
	struct harness_ferry f;
	char *b;
	size_t n;

	begin();
	https_origin_start();
	ferry_start(&f, "ferry-a");
	struct tiny_opts to = { fmt("Upstream http 127.0.0.1:%d\n", f.port) };
	peer_start(TINYPROXY, tiny_conf, &to);
	exercise(peers[TINYPROXY].port, "tinyproxy -> ferry");
	ferry_logged("ferry-a", fmt("CONNECT 127.0.0.1:%d 200", peers[SSERVER].port), NULL);
	ferry_logged("ferry-a", fmt("POST http://127.0.0.1:%d/echo 200", origin.port), NULL);
	int st = curl_get(peers[TINYPROXY].port, fmt("http://127.0.0.1:%d/headers", origin.port),
			  NULL, &b, &n, NULL);
	ck_assert_int_eq(st, 200);
	ck_assert_msg(strstr(b, "(tinyproxy/") != NULL && strstr(b, "\r\nVia: 1.1 ferry-a\r\n") != NULL,
		      "origin saw:\n%s", b);
	free(b);
	ferry_end(&f);
}
END_TEST

/* ---- Privoxy ---- */

static const char *const *privoxy_conf(int port, void *arg)
{
	const char *extra = arg;
	static const char *argv[4];
	static char path[192];

	mkdir(in_dir("privoxy"), 0777);
	snprintf(path, sizeof(path), "%s/privoxy/config", dir);
	put_file("privoxy/config", fmt("confdir %s/privoxy\nlogdir %s/privoxy\n"
				       "listen-address 127.0.0.1:%d\ntoggle 0\nenable-remote-toggle 0\n"
				       "enable-edit-actions 0\ndebug 1\ndebug 8192\n%s\n", dir, dir,
				       port, extra));
	argv[0] = find_prog("privoxy");
	argv[1] = "--no-daemon";
	argv[2] = path;
	argv[3] = NULL;
	return argv;
}

/* Privoxy as parent: its answers carry "Connection: close" with "Proxy-Connection:
 * keep-alive"; ferry must take the first, and pass neither on. Privoxy runs without
 * keep-alive-timeout (its default; see doc/chaining.md for why). */
START_TEST(privoxy_parent)
{
	struct harness_ferry f;
	char *b, *h;

	begin();
	https_origin_start();
	peer_start(PRIVOXY, privoxy_conf, (void *)"");
	harness_conf_set(&conf, "upstream", "parent",
			 fmt("http://127.0.0.1:%d", peers[PRIVOXY].port));
	ferry_start(&f, "ferry-a");
	exercise(f.port, "ferry -> privoxy");
	int st = curl_get(f.port, fmt("http://127.0.0.1:%d/len/10", origin.port), NULL, &b, NULL, &h);
	ck_assert_int_eq(st, 200);
	ck_assert_msg(strcasestr(h, "Proxy-Connection") == NULL, "passed on:\n%s", h);
	free(b);
	free(h);
	free(keepalive_three(f.port));
	ferry_end(&f);
}
END_TEST

/* Privoxy in front of ferry (forward / 127.0.0.1:ferry): its GETs, POSTs and CONNECTs. */
START_TEST(privoxy_child)
{
	struct harness_ferry f;
	char *b;
	size_t n;

	begin();
	https_origin_start();
	ferry_start(&f, "ferry-a");
	peer_start(PRIVOXY, privoxy_conf, (void *)fmt("forward / 127.0.0.1:%d", f.port));
	exercise(peers[PRIVOXY].port, "privoxy -> ferry");
	ferry_logged("ferry-a", fmt("CONNECT 127.0.0.1:%d 200", peers[SSERVER].port), NULL);
	ferry_logged("ferry-a", fmt("POST http://127.0.0.1:%d/echo 200", origin.port), NULL);
	int st = curl_get(peers[PRIVOXY].port, fmt("http://127.0.0.1:%d/headers", origin.port),
			  NULL, &b, &n, NULL);
	ck_assert_int_eq(st, 200);
	ck_assert_msg(strstr(b, "\r\nVia: 1.1 ferry-a\r\n") != NULL, "origin saw:\n%s", b);
	free(b);
	ferry_end(&f);
}
END_TEST

/* Privoxy in front of ferry with [auth]: Privoxy drops the client's Proxy-Authorization (and
 * ferry's challenge) unless enable-proxy-authentication-forwarding is on; with it, the
 * client's credentials reach ferry, for GET and CONNECT. */
START_TEST(privoxy_child_auth)
{
	struct harness_ferry f;
	char *b, *h;
	const char *user[] = { "--proxy-user", "alice:sesame42", NULL };
	const char *tun[] = { "-p", "--proxy-user", "alice:sesame42", NULL };

	begin();
	https_origin_start();
	htpasswd_file("ferry.htpasswd", "alice", "sesame42");
	harness_conf_set(&conf, "auth", "htpasswd", in_dir("ferry.htpasswd"));
	ferry_start(&f, "ferry-a");
	peer_start(PRIVOXY, privoxy_conf, (void *)fmt("forward / 127.0.0.1:%d", f.port));
	int st = curl_get(peers[PRIVOXY].port, fmt("http://127.0.0.1:%d/len/10", origin.port), user,
			  &b, NULL, &h);
	ck_assert_msg(st == 407, "credentials dropped by Privoxy: %d\n%s", st, h);
	free(b);
	free(h);
	stop_group(&peers[PRIVOXY].pid);
	peer_start(PRIVOXY, privoxy_conf, (void *)fmt("forward / 127.0.0.1:%d\n"
		"enable-proxy-authentication-forwarding 1", f.port));
	st = curl_get(peers[PRIVOXY].port, fmt("http://127.0.0.1:%d/len/10", origin.port), user, &b,
		      NULL, &h);
	ck_assert_msg(st == 200 && strcmp(b, "abcdefghij") == 0, "forwarding on: %d\n%s", st, h);
	free(b);
	free(h);
	st = curl_get(peers[PRIVOXY].port, fmt("http://127.0.0.1:%d/len/10", origin.port), tun, &b,
		      NULL, &h);
	ck_assert_msg(st == 200 && strcmp(b, "abcdefghij") == 0, "CONNECT: %d\n%s", st, h);
	free(b);
	free(h);
	ferry_logged("ferry-a", " alice GET ", NULL);
	ferry_logged("ferry-a", " alice CONNECT ", NULL);
	ferry_end(&f);
}
END_TEST

/* ---- Squid -> ferry ---- */

/* Squid with ferry as its only parent (cache_peer ... default, never_direct): what Squid sends
 * (Via, X-Forwarded-For, Cache-Control, "Connection: keep-alive", CONNECT) goes through
 * ferry; ferry closing an idle connection of Squid's (client_idle = 1) costs the next
 * request nothing (Squid opens another). */
START_TEST(squid_child)
{
	struct harness_ferry f;
	char *b;
	size_t n;

	begin();
	https_origin_start();
	harness_conf_set(&conf, "timeouts", "client_idle", "1");
	ferry_start(&f, "ferry-a");
	struct squid_opts so = { "squid", fmt("cache_peer 127.0.0.1 parent %d 0 no-query no-digest "
		"default name=ferry\nnever_direct allow all\nhttp_access allow all", f.port) };
	peer_start(SQUID, squid_conf, &so);
	exercise(peers[SQUID].port, "squid -> ferry");
	char *l = squid_log_line("squid", fmt("CONNECT 127.0.0.1:%d 200", peers[SSERVER].port));
	ck_assert_msg(strstr(l, "FIRSTUP_PARENT") != NULL, "not through ferry: %s", l);
	free(l);
	ferry_logged("ferry-a", fmt("CONNECT 127.0.0.1:%d 200", peers[SSERVER].port), NULL);
	ferry_logged("ferry-a", fmt("POST http://127.0.0.1:%d/echo 200", origin.port), NULL);

	int st = curl_get(peers[SQUID].port, fmt("http://127.0.0.1:%d/headers", origin.port),
			  NULL, &b, &n, NULL);
	ck_assert_int_eq(st, 200);
	/* Squid's fields reach the origin; ferry's Via follows Squid's; no Connection leaks */
	ck_assert_msg(strstr(b, "\r\nVia: 1.1 squid (squid/") != NULL &&
		      strstr(b, "\r\nX-Forwarded-For: 127.0.0.1\r\n") != NULL &&
		      strstr(b, "\r\nCache-Control: ") != NULL &&
		      strstr(b, "\r\nVia: 1.1 ferry-a\r\n") > strstr(b, "\r\nVia: 1.1 squid"),
		      "origin saw:\n%s", b);
	ck_assert_msg(strcasestr(b, "\r\nConnection:") == NULL, "origin saw:\n%s", b);
	free(b);
	free(keepalive_three(peers[SQUID].port));

	/* ferry closes Squid's idle connection after 1 s; Squid must notice and reconnect */
	for (int i = 0; i < 2; i++) {
		harness_sleep_ms(2500);
		const char *post[] = { "--data-binary", "after idle", NULL };
		st = curl_get(peers[SQUID].port, fmt("http://127.0.0.1:%d/echo", origin.port), post,
			      &b, &n, NULL);
		ck_assert_msg(st == 200 && strcmp(b, "after idle") == 0, "after idle: %d %s", st, b);
		free(b);
	}
	ferry_end(&f);
}
END_TEST

/* Squid -> ferry with [auth]: Squid without login= gets ferry's 407 (and passes it on);
 * login=alice:PASS is accepted; login=PASSTHRU hands over the client's own credentials. */
START_TEST(squid_child_auth)
{
	struct harness_ferry f;
	char *b, *h;
	int st;

	begin();
	https_origin_start();
	htpasswd_file("ferry.htpasswd", "alice", "sesame42");
	harness_conf_set(&conf, "auth", "htpasswd", in_dir("ferry.htpasswd"));
	ferry_start(&f, "ferry-a");
	const char *logins[] = { "", "login=alice:sesame42", "login=PASSTHRU" };

	for (int i = 0; i < 3; i++) {
		struct squid_opts so = { "squid", fmt("cache_peer 127.0.0.1 parent %d 0 no-query "
			"no-digest default name=ferry %s\nnever_direct allow all\nhttp_access allow all",
			f.port, logins[i]) };
		peer_start(SQUID, squid_conf, &so);
		const char *user[] = { "--proxy-user", "alice:sesame42", NULL };
		const char *const *extra = i == 2 ? user : NULL;
		st = curl_get(peers[SQUID].port, fmt("http://127.0.0.1:%d/len/10", origin.port), extra,
			      &b, NULL, &h);
		if (i == 0) {
			ck_assert_msg(st == 407, "no login=: %d\n%s", st, h);
		} else {
			ck_assert_msg(st == 200 && strcmp(b, "abcdefghij") == 0, "%s: %d\n%s%s",
				      logins[i], st, h, b);
			ferry_logged("ferry-a", " alice GET ", NULL);
		}
		free(b);
		free(h);
		if (i == 2) {
			const char *tun[] = { "-p", "--proxy-user", "alice:sesame42", NULL };
			st = curl_get(peers[SQUID].port, fmt("http://127.0.0.1:%d/len/10", origin.port),
				      tun, &b, NULL, &h);
			ck_assert_msg(st == 200 && strcmp(b, "abcdefghij") == 0, "PASSTHRU CONNECT: %d\n%s",
				      st, h);
			free(b);
			free(h);
			ferry_logged("ferry-a", " alice CONNECT ", NULL);
		}
		stop_group(&peers[SQUID].pid);
	}
	ferry_end(&f);
}
END_TEST

/* ferry -> Squid -> the same ferry: the request comes back with ferry's name in Via and is
 * answered 508, in bounded time, instead of going round until something runs out. */
START_TEST(squid_loop)
{
	struct harness_ferry f;
	char *b, *h;

	begin();
	https_origin_start();
	/* Squid needs ferry's port and ferry Squid's: Squid's is fixed first */
	int sport = harness_free_port();

	harness_conf_set(&conf, "upstream", "parent", fmt("http://127.0.0.1:%d", sport));
	ferry_start(&f, "ferry-a");
	struct squid_opts so = { "squid", fmt("cache_peer 127.0.0.1 parent %d 0 no-query no-digest "
		"default name=ferry\nnever_direct allow all\nhttp_access allow all", f.port) };
	next_port = sport;
	peer_start(SQUID, squid_conf, &so);
	int st = curl_get(f.port, fmt("http://127.0.0.1:%d/len/10", origin.port), NULL, &b, NULL, &h);
	ck_assert_msg(st == 508 && strstr(b, "loop") != NULL, "%d\n%s%s", st, h, b);
	free(b);
	free(h);
	b = connect_refusal(f.port, fmt("127.0.0.1:%d", origin.echo_port));
	ck_assert_msg(strstr(b, "508") != NULL, "CONNECT round the loop: %s", b);
	free(b);
	ferry_end(&f);
}
END_TEST

/* ---- ferry -> Dante ---- */

static const char *const *dante_conf(int port, void *arg)
{
	static const char *argv[8];
	static char path[192], pid[192];

	(void)arg;
	snprintf(path, sizeof(path), "%s/danted.conf", dir);
	snprintf(pid, sizeof(pid), "%s/danted.pid", dir);
	put_file("danted.conf", fmt("logoutput: stderr\ninternal: 127.0.0.1 port = %d\n"
				    "external: 127.0.0.1\nclientmethod: none\nsocksmethod: none\n%s"
				    "client pass {\n from: 127.0.0.0/8 to: 0.0.0.0/0\n}\n"
				    "socks pass {\n from: 127.0.0.0/8 to: 0.0.0.0/0\n command: connect\n}\n",
				    port, getuid() == 0 ? "user.privileged: root\n"
				    "user.unprivileged: nobody\n" : ""));
	argv[0] = find_prog("danted");
	argv[1] = "-f";
	argv[2] = path;
	argv[3] = "-p";
	argv[4] = pid;
	argv[5] = "-N";
	argv[6] = "1";
	argv[7] = NULL;
	return argv;
}

/* Dante as a SOCKS5 parent, no authentication: everything arrives whole; a name is resolved
 * by Dante (localhost, from its /etc/hosts); a closed port is its "connection refused" in a
 * 502. */
START_TEST(dante_parent)
{
	struct harness_ferry f;
	char *b, *h;
	size_t n;

	begin();
	https_origin_start();
	peer_start(DANTE, dante_conf, NULL);
	harness_conf_set(&conf, "upstream", "parent", fmt("socks5://127.0.0.1:%d", peers[DANTE].port));
	ferry_start(&f, "ferry-a");
	exercise(f.port, "ferry -> dante");
	int st = curl_get(f.port, fmt("http://localhost:%d/len/26", origin.port), NULL, &b, &n, &h);
	ck_assert_msg(st == 200 && strcmp(b, "abcdefghijklmnopqrstuvwxyz") == 0, "%d\n%s", st, h);
	free(b);
	free(h);
	int closed = harness_closed_port();
	st = curl_get(f.port, fmt("http://127.0.0.1:%d/", closed), NULL, &b, &n, &h);
	ck_assert_msg(st == 502 && strstr(b, "refused the connection") != NULL, "%d %s", st, b);
	free(b);
	free(h);
	ferry_end(&f);
}
END_TEST

/* ---- HAProxy in front of two ferries ---- */

static const char *const *haproxy_conf(int port, void *arg)
{
	const char *backend = arg;
	static const char *argv[5];
	static char path[192];

	snprintf(path, sizeof(path), "%s/haproxy.cfg", dir);
	put_file("haproxy.cfg", fmt("global\n    maxconn 100\n"
				    "frontend proxy_in\n    bind 127.0.0.1:%d\n%s",
				    port, backend));
	argv[0] = find_prog("haproxy");
	argv[1] = "-db";
	argv[2] = "-f";
	argv[3] = path;
	argv[4] = NULL;
	return argv;
}

/* Which of the two ferries answered: the via_name in the response's Via. */
static void count_via(const char *h, int *a, int *b)
{
	if (strstr(h, " fleet-a"))
		(*a)++;
	if (strstr(h, " fleet-b"))
		(*b)++;
}

/* HAProxy in HTTP mode (option http-use-proxy-header, forwardfor, round robin) in front of
 * two ferries with [auth]: absolute-form GETs, POSTs, HEAD and CONNECT (HAProxy switches to a
 * tunnel after the 200) pass; both ferries serve; ferry's 407 and its challenge reach the
 * client through HAProxy. */
START_TEST(haproxy_http_mode)
{
	struct harness_ferry f1, f2;
	char *b, *h;
	int a = 0, bb = 0;

	begin();
	https_origin_start();
	htpasswd_file("ferry.htpasswd", "alice", "sesame42");
	harness_conf_set(&conf, "auth", "htpasswd", in_dir("ferry.htpasswd"));
	ferry_start(&f1, "fleet-a");
	ferry_start(&f2, "fleet-b");
	peer_start(HAPROXY, haproxy_conf, (void *)fmt(
		"    mode http\n    timeout connect 5s\n    timeout client 30s\n"
		"    timeout server 30s\n    option http-use-proxy-header\n    option forwardfor\n"
		"    default_backend ferry\nbackend ferry\n    mode http\n    timeout connect 5s\n"
		"    timeout server 30s\n    balance roundrobin\n"
		"    server a 127.0.0.1:%d\n    server b 127.0.0.1:%d\n", f1.port, f2.port));
	int hp = peers[HAPROXY].port;

	int st = curl_get(hp, fmt("http://127.0.0.1:%d/len/10", origin.port), NULL, &b, NULL, &h);
	ck_assert_msg(st == 407 && strcasestr(h, "\nProxy-Authenticate: Basic realm=") != NULL,
		      "without credentials: %d\n%s", st, h);
	free(b);
	free(h);
	/* curl sends the credentials with each request and CONNECT */
	const char *user[] = { "--proxy-user", "alice:sesame42", NULL };
	for (int i = 0; i < 4; i++) {
		st = curl_get(hp, fmt("http://127.0.0.1:%d/headers", origin.port), user, &b, NULL, &h);
		ck_assert_msg(st == 200, "GET: %d\n%s", st, h);
		ck_assert_msg(strcasestr(b, "\nx-forwarded-for: 127.0.0.1\r\n") != NULL &&
			      strcasestr(b, "Proxy-Authorization") == NULL, "origin saw:\n%s", b);
		count_via(h, &a, &bb);
		free(b);
		free(h);
	}
	ck_assert_msg(a >= 1 && bb >= 1, "round robin: fleet-a %d, fleet-b %d", a, bb);
	char o[64]; /* not fmt(): its buffers are reused */

	snprintf(o, sizeof(o), "http://127.0.0.1:%d", origin.port);
	const char *post[] = { "--proxy-user", "alice:sesame42", "--data-binary",
		fmt("@%s", in_dir("tls.bin")), NULL };
	size_t n;
	st = curl_get(hp, fmt("%s/echo", o), post, &b, &n, NULL);
	ck_assert_msg(st == 200 && n == TLS_FILE_SIZE && memcmp(b, tls_body, n) == 0,
		      "POST: %d, %zu bytes", st, n);
	free(b);
	const char *head[] = { "--proxy-user", "alice:sesame42", "-I", NULL };
	st = curl_get(hp, fmt("%s/len/777", o), head, &b, NULL, &h);
	ck_assert_msg(st == 200 && strcasestr(h, "\ncontent-length: 777\r\n"), "HEAD: %d\n%s", st, h);
	free(b);
	free(h);
	const char *tls[] = { "--proxy-user", "alice:sesame42", "--cacert", in_dir("cert.pem"), NULL };
	for (int i = 0; i < 2; i++) {
		st = curl_get(hp, fmt("https://127.0.0.1:%d/tls.bin", peers[SSERVER].port), tls, &b,
			      &n, &h);
		ck_assert_msg(st == 200 && n == TLS_FILE_SIZE && memcmp(b, tls_body, n) == 0,
			      "https through HAProxy (http mode): %d, %zu bytes\n%s", st, n, h);
		free(b);
		free(h);
	}
	ferry_logged("fleet-a", fmt("CONNECT 127.0.0.1:%d 200", peers[SSERVER].port), " alice ");
	ferry_logged("fleet-b", fmt("CONNECT 127.0.0.1:%d 200", peers[SSERVER].port), " alice ");
	ferry_end(&f1);
	ferry_end(&f2);
}
END_TEST

/* HAProxy in plain TCP mode (no PROXY protocol; test_chain has send-proxy-v2): https and the
 * C origin's raw echo through CONNECT, keep-alive of a client connection pinned to one ferry. */
START_TEST(haproxy_tcp_mode)
{
	struct harness_ferry f1, f2;
	char *b, *h;
	size_t n;

	begin();
	https_origin_start();
	ferry_start(&f1, "fleet-a");
	ferry_start(&f2, "fleet-b");
	peer_start(HAPROXY, haproxy_conf, (void *)fmt(
		"    mode tcp\n    timeout client 30s\n    default_backend ferry\n"
		"backend ferry\n    mode tcp\n    timeout connect 5s\n    timeout server 30s\n"
		"    balance roundrobin\n    server a 127.0.0.1:%d\n    server b 127.0.0.1:%d\n",
		f1.port, f2.port));
	int hp = peers[HAPROXY].port;

	exercise(hp, "haproxy (tcp) -> ferry");
	const char *tls[] = { "--cacert", in_dir("cert.pem"), NULL };
	for (int i = 0; i < 2; i++) {
		int st = curl_get(hp, fmt("https://127.0.0.1:%d/tls.bin", peers[SSERVER].port), tls,
				  &b, &n, &h);
		ck_assert_msg(st == 200 && n == TLS_FILE_SIZE && memcmp(b, tls_body, n) == 0,
			      "https: %d, %zu bytes", st, n);
		free(b);
		free(h);
	}
	free(keepalive_three(hp));
	ferry_logged("fleet-a", fmt("CONNECT 127.0.0.1:%d 200", peers[SSERVER].port), NULL);
	ferry_logged("fleet-b", fmt("CONNECT 127.0.0.1:%d 200", peers[SSERVER].port), NULL);

	/* the raw echo through a tunnel, half-close included */
	struct harness_conn c;
	struct harness_resp r;
	ck_assert_int_eq(harness_connect(&c, hp), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, fmt("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n",
						  origin.echo_port)), FERRY_OK);
	ck_assert_int_eq(harness_read_response(&c, &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	char *in = NULL;
	size_t inlen = 0;
	ck_assert_int_eq(harness_pump(&c, tls_body, TLS_FILE_SIZE, 1, (size_t)-1, &in, &inlen,
				      HARNESS_TIMEOUT_MS * 3), FERRY_OK);
	ck_assert_msg(inlen == TLS_FILE_SIZE && memcmp(in, tls_body, inlen) == 0,
		      "echo through HAProxy and a tunnel: %zu bytes", inlen);
	free(in);
	harness_close(&c);
	ferry_end(&f1);
	ferry_end(&f2);
}
END_TEST

/* ---- registration: only what can run here ---- */

struct scenario {
	const char *what;
	const TTest *test;
	const char *needs[4]; /* programs (curl and openssl are needed by all) */
};

int main(void)
{
	const struct scenario all[] = {
		{ "ferry -> squid", squid_parent, { "squid" } },
		{ "ferry -> squid with Basic auth", squid_parent_auth, { "squid", "basic_ncsa_auth" } },
		{ "ferry -> tinyproxy", tinyproxy_parent, { "tinyproxy" } },
		{ "tinyproxy -> ferry", tinyproxy_child, { "tinyproxy" } },
		{ "ferry -> privoxy", privoxy_parent, { "privoxy" } },
		{ "privoxy -> ferry", privoxy_child, { "privoxy" } },
		{ "privoxy -> ferry with [auth]", privoxy_child_auth, { "privoxy" } },
		{ "squid -> ferry", squid_child, { "squid" } },
		{ "squid -> ferry with [auth]", squid_child_auth, { "squid" } },
		{ "ferry -> squid -> ferry loop", squid_loop, { "squid" } },
		{ "ferry -> dante (SOCKS5)", dante_parent, { "danted" } },
		{ "haproxy http mode -> two ferries", haproxy_http_mode, { "haproxy" } },
		{ "haproxy tcp mode -> two ferries", haproxy_tcp_mode, { "haproxy" } },
	};
	Suite *s = suite_create("interop");
	TCase *tc = tcase_create("interop");
	const char *only = getenv("FERRY_IO_ONLY"); /* by hand: scenarios whose name has this */

	/* basic_ncsa_auth is a Squid helper, not on PATH */
	const char *helpers[] = { "/usr/lib/squid/basic_ncsa_auth", "/usr/lib64/squid/basic_ncsa_auth",
		"/usr/libexec/squid/basic_ncsa_auth", NULL };
	for (int i = 0; helpers[i]; i++)
		if (access(helpers[i], X_OK) == 0) {
			snprintf(ncsa, sizeof(ncsa), "%s", helpers[i]);
			break;
		}
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, NULL, teardown);
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		const char *missing = NULL;

		if (only && *only && !strstr(all[i].what, only))
			continue;
		if (!find_prog("curl"))
			missing = "curl";
		else if (!find_prog("openssl"))
			missing = "openssl";
		for (int k = 0; k < 4 && all[i].needs[k] && !missing; k++) {
			if (strcmp(all[i].needs[k], "basic_ncsa_auth") == 0) {
				if (!ncsa[0])
					missing = "basic_ncsa_auth (squid)";
			} else if (!find_prog(all[i].needs[k])) {
				missing = all[i].needs[k];
			}
		}
		if (missing) {
			printf("SKIPPED: %s: %s not installed\n", all[i].what, missing);
			continue;
		}
		tcase_add_test(tc, all[i].test);
	}
	/* Dante checks user names and passwords against the system's accounts (or PAM) only: a
	 * test would have to add a user to the machine, which it must not do */
	printf("SKIPPED: ferry -> dante with username auth: needs a system account\n");
	fflush(stdout);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
