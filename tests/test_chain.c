/* test_chain.c - chaining and fleets end to end.
 *
 * PROXY protocol: v1 and v2 headers give the client address that the ACL and per_client see;
 * v2 LOCAL uses the connection's own; truncated, malformed, late headers and headers from an
 * address outside proxy_protocol_from close the connection without a response.
 *
 * Parent proxies: two ferry instances in a chain (GET and CONNECT through both, with the
 * parent's credentials, the client's never forwarded, one pooled connection to the parent for
 * several destinations); a SOCKS5 parent (tests/socks5_parent.c) with and without
 * credentials; parents tried in order and a failed one skipped; routes by suffix and CIDR,
 * direct; parent errors as 502s naming the parent. Unit checks of route.c and of the
 * absolute-form rewrite come first. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <crypt.h>
#include <poll.h>
#include <unistd.h>

#include "config.h"
#include "forward.h"
#include "harness.h"
#include "route.h"
#include "status.h"

static const char *const muxes[] = { "poll", "epoll" };
static struct harness_origin origin;
static struct harness_ferry ferry;
static struct harness_conf conf;

/* ---- the SOCKS5 parent ---- */

static pid_t socks_pid;
static char tmpdir[64];

static void socks_stop(void)
{
	if (socks_pid > 0) {
		kill(socks_pid, SIGKILL);
		waitpid(socks_pid, NULL, 0);
	}
	socks_pid = 0;
}

static void teardown(void)
{
	harness_cleanup();
	socks_stop();
	if (tmpdir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
		tmpdir[0] = '\0';
	}
}

/* Start tests/socks5_parent (next to FERRY_ORIGIN), with credentials when user is set; its
 * port. */
static int socks_start(const char *user, const char *pass)
{
	char bin[512];
	const char *o = getenv("FERRY_ORIGIN");
	ck_assert_ptr_nonnull(o);
	const char *slash = strrchr(o, '/');
	snprintf(bin, sizeof(bin), "%.*ssocks5_parent", slash ? (int)(slash - o + 1) : 0, o);
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	pid_t parent = getpid();
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(pfd[1], 1);
		close(pfd[0]);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (user)
			execl(bin, bin, "-u", user, "-p", pass, (char *)NULL);
		else
			execl(bin, bin, (char *)NULL);
		_exit(127);
	}
	socks_pid = pid;
	close(pfd[1]);
	char line[32];
	size_t n = 0;
	struct pollfd p = { .fd = pfd[0], .events = POLLIN };
	while (n < sizeof(line) - 1 && !memchr(line, '\n', n) && poll(&p, 1, 5000) > 0) {
		ssize_t r = read(pfd[0], line + n, sizeof(line) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(pfd[0]);
	line[n] = '\0';
	int port = atoi(line);
	ck_assert_msg(port > 0, "socks5_parent %s did not report its port", bin);
	return port;
}

/* The SOCKS5 parent's connection count and last CONNECT ("ATYP HOST PORT"). */
static unsigned long socks_count(int port, char *last, size_t lastlen)
{
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, "COUNT\n"), FERRY_OK);
	size_t n = 0;
	char *all = harness_read_to_close(&c, &n, HARNESS_TIMEOUT_MS);
	unsigned long k = 0;
	char a[32] = "", h[300] = "", pt[16] = "";
	ck_assert_msg(sscanf(all, "CONNS %lu LAST %31s %299s %15s", &k, a, h, pt) == 4, "COUNT: %s", all);
	if (last)
		snprintf(last, lastlen, "%s %s %s", a, h, pt);
	free(all);
	harness_close(&c);
	return k;
}

static void begin(int mux)
{
	ck_assert_int_eq(harness_origin_start(&origin), FERRY_OK);
	harness_conf_base(&conf, muxes[mux], &origin);
}

static void go(void)
{
	ck_assert_int_eq(harness_ferry_start(&ferry, &conf), FERRY_OK);
}

static void end(void)
{
	ck_assert_int_eq(harness_ferry_stop(&ferry), 0);
	harness_origin_stop(&origin);
}

/* ---- PROXY protocol ---- */

static const unsigned char v2sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
					 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* A v2 PROXY TCP4 header from ip:port to 127.0.0.1:3128 with one TLV; returns its length. */
static size_t v2_header(unsigned char *out, const char *ip, int port, int local)
{
	memcpy(out, v2sig, 12);
	out[12] = local ? 0x20 : 0x21;
	out[13] = 0x11;
	out[14] = 0;
	out[15] = 12 + 5;
	inet_pton(AF_INET, ip, out + 16);
	inet_pton(AF_INET, "127.0.0.1", out + 20);
	out[24] = (unsigned char)(port >> 8), out[25] = (unsigned char)port;
	out[26] = 3128 >> 8, out[27] = 3128 & 0xff;
	out[28] = 0x01, out[29] = 0, out[30] = 2, out[31] = 'h', out[32] = '2'; /* ALPN */
	return 33;
}

/* Connect to ferry, send pre (a header) then an HTTP request for /len/5, read a response.
 * FERRY_OK with r filled, FERRY_ERR when the connection ended without one. */
static int pp_request(const void *pre, size_t prelen, struct harness_resp *r)
{
	struct harness_conn c;
	char req[256];
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/len/5 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	char buf[512];
	memcpy(buf, pre, prelen);
	memcpy(buf + prelen, req, strlen(req));
	ck_assert_int_eq(harness_send(&c, buf, prelen + strlen(req)), FERRY_OK);
	int rc = harness_read_response(&c, r, 0, HARNESS_TIMEOUT_MS);
	harness_close(&c);
	return rc;
}

/* Send bytes, optionally shut down writing, and expect the connection to close with nothing
 * written back. */
static void pp_expect_silent_close(const void *p, size_t n, int shut)
{
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	if (n > 0)
		ck_assert_int_eq(harness_send(&c, p, n), FERRY_OK);
	if (shut)
		harness_shutdown_write(&c);
	size_t got = 0;
	char *all = harness_read_to_close(&c, &got, HARNESS_TIMEOUT_MS);
	ck_assert_msg(got == 0, "expected a silent close, got %zu bytes: %.*s", got, (int)got, all);
	ck_assert_msg(c.eof || c.err == ECONNRESET, "the connection was not closed (err %d)", c.err);
	free(all);
	harness_close(&c);
}

static void pp_conf(const char *from)
{
	harness_conf_set(&conf, "server", "proxy_protocol", "yes");
	harness_conf_set(&conf, "server", "proxy_protocol_from", from);
	/* only the addresses the headers carry are clients; loopback (the balancer) is not */
	harness_conf_set(&conf, "access", "allow", "192.0.2.0/24, 2001:db8::/32");
}

START_TEST(pp_v1_v2_give_the_client_address)
{
	begin(_i);
	pp_conf("127.0.0.0/8");
	go();
	struct harness_resp r;
	const char *v1 = "PROXY TCP4 192.0.2.7 127.0.0.1 40000 3128\r\n";
	ck_assert_int_eq(pp_request(v1, strlen(v1), &r), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "abcde");
	harness_resp_free(&r);
	const char *v1b = "PROXY TCP6 2001:db8::7 ::1 40000 3128\r\n";
	ck_assert_int_eq(pp_request(v1b, strlen(v1b), &r), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	/* the ACL judges the carried address: one outside allow is refused */
	const char *v1c = "PROXY TCP4 198.51.100.9 127.0.0.1 40000 3128\r\n";
	ck_assert_int_eq(pp_request(v1c, strlen(v1c), &r), FERRY_OK);
	ck_assert_int_eq(r.status, 403);
	harness_resp_free(&r);
	/* UNKNOWN: the connection's own address (loopback), which allow does not hold */
	const char *v1u = "PROXY UNKNOWN\r\n";
	ck_assert_int_eq(pp_request(v1u, strlen(v1u), &r), FERRY_OK);
	ck_assert_int_eq(r.status, 403);
	harness_resp_free(&r);

	unsigned char h[64];
	size_t hl = v2_header(h, "192.0.2.8", 40001, 0);
	ck_assert_int_eq(pp_request(h, hl, &r), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "abcde");
	harness_resp_free(&r);
	hl = v2_header(h, "203.0.113.1", 40001, 0);
	ck_assert_int_eq(pp_request(h, hl, &r), FERRY_OK);
	ck_assert_int_eq(r.status, 403);
	harness_resp_free(&r);
	/* LOCAL (a health check): the connection's own address */
	hl = v2_header(h, "192.0.2.8", 40001, 1);
	ck_assert_int_eq(pp_request(h, hl, &r), FERRY_OK);
	ck_assert_int_eq(r.status, 403);
	harness_resp_free(&r);
	end();
}
END_TEST

START_TEST(pp_local_uses_connection_address)
{
	begin(_i);
	pp_conf("127.0.0.0/8");
	harness_conf_set(&conf, "access", "allow", "127.0.0.1");
	go();
	struct harness_resp r;
	unsigned char h[64];
	size_t hl = v2_header(h, "192.0.2.8", 40001, 1);
	ck_assert_int_eq(pp_request(h, hl, &r), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	hl = v2_header(h, "192.0.2.8", 40001, 0);
	ck_assert_int_eq(pp_request(h, hl, &r), FERRY_OK);
	ck_assert_int_eq(r.status, 403);
	harness_resp_free(&r);
	end();
}
END_TEST

START_TEST(pp_bad_headers_close)
{
	begin(_i);
	pp_conf("127.0.0.0/8");
	harness_conf_set(&conf, "timeouts", "request_header", "1");
	go();
	/* no header at all: a plain request */
	char req[256];
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/len/5 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	pp_expect_silent_close(req, strlen(req), 0);
	/* malformed v1, v1 with a bad address, v2 with a bad version */
	const char *bad = "PROXY TCP4 192.0.2.7 127.0.0.1 40000\r\n";
	pp_expect_silent_close(bad, strlen(bad), 0);
	bad = "PROXY TCP4 192.0.2.300 127.0.0.1 1 2\r\nGET / HTTP/1.1\r\n\r\n";
	pp_expect_silent_close(bad, strlen(bad), 0);
	unsigned char h[64];
	size_t hl = v2_header(h, "192.0.2.8", 40001, 0);
	h[12] = 0x31;
	pp_expect_silent_close(h, hl, 0);
	/* truncated: every cut of a v2 header, then the client stops sending */
	hl = v2_header(h, "192.0.2.8", 40001, 0);
	for (size_t cut = 1; cut < hl; cut += 4)
		pp_expect_silent_close(h, cut, 1);
	const char *v1 = "PROXY TCP4 192.0.2.7 127.0.0.1 40000 3128\r\n";
	pp_expect_silent_close(v1, 20, 1);
	/* truncated and left open: closed at request_header (1 s here; the read waits 10) */
	pp_expect_silent_close(v1, 20, 0);
	pp_expect_silent_close(NULL, 0, 0);
	/* the same ferry still serves a good header */
	struct harness_resp r;
	ck_assert_int_eq(pp_request(v1, strlen(v1), &r), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	end();
}
END_TEST

START_TEST(pp_untrusted_sender_closed)
{
	begin(_i);
	pp_conf("10.0.0.0/8, 2001:db8::/32");
	harness_conf_set(&conf, "access", "allow", "127.0.0.0/8, 192.0.2.0/24");
	go();
	const char *v1 = "PROXY TCP4 192.0.2.7 127.0.0.1 40000 3128\r\nGET / HTTP/1.1\r\n\r\n";
	pp_expect_silent_close(v1, strlen(v1), 0);
	unsigned char h[64];
	size_t hl = v2_header(h, "192.0.2.8", 40001, 0);
	pp_expect_silent_close(h, hl, 0);
	end();
}
END_TEST

START_TEST(pp_per_client_counts_the_carried_address)
{
	begin(_i);
	pp_conf("127.0.0.0/8");
	harness_conf_set(&conf, "limits", "per_client", "1");
	go();
	/* one connection held open from 192.0.2.1 */
	struct harness_conn held;
	const char *a = "PROXY TCP4 192.0.2.1 127.0.0.1 40000 3128\r\n";
	ck_assert_int_eq(harness_connect(&held, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send(&held, a, strlen(a)), FERRY_OK);
	char req[256];
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/len/3 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ck_assert_int_eq(harness_send_str(&held, req), FERRY_OK);
	struct harness_resp r;
	ck_assert_int_eq(harness_read_response(&held, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	/* a second from the same carried address is over the cap, though the balancer's address
	 * (loopback) is the same for both; another carried address is not */
	ck_assert_int_eq(pp_request(a, strlen(a), &r), FERRY_OK);
	ck_assert_int_eq(r.status, 429);
	harness_resp_free(&r);
	const char *b = "PROXY TCP4 192.0.2.2 127.0.0.1 40000 3128\r\n";
	ck_assert_int_eq(pp_request(b, strlen(b), &r), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	harness_close(&held);
	end();
}
END_TEST


/* ---- route.c and the absolute-form rewrite ---- */

START_TEST(route_parse_parents)
{
	struct route_parent p;
	char err[256];
	ck_assert_int_eq(route_parent_parse("http://proxy.example:8080", &p, err, sizeof(err)), FERRY_OK);
	ck_assert_int_eq(p.kind, ROUTE_HTTP);
	ck_assert_str_eq(p.host, "proxy.example");
	ck_assert_int_eq(p.port, 8080);
	ck_assert_ptr_null(p.user);
	ck_assert_ptr_null(p.auth_header);
	ck_assert_str_eq(p.label, "http://proxy.example:8080");
	route_parent_free(&p);
	ck_assert_int_eq(route_parent_parse("HTTP://Aladdin:open%20sesame@10.0.0.1:3128/", &p, err, sizeof(err)), FERRY_OK);
	ck_assert_str_eq(p.user, "Aladdin");
	ck_assert_str_eq(p.pass, "open sesame");
	ck_assert_str_eq(p.auth_header, "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n");
	ck_assert_str_eq(p.label, "http://10.0.0.1:3128");
	route_parent_free(&p);
	ck_assert_int_eq(route_parent_parse("socks5://u:p@[2001:db8::1]:1080", &p, err, sizeof(err)), FERRY_OK);
	ck_assert_int_eq(p.kind, ROUTE_SOCKS5);
	ck_assert_str_eq(p.host, "2001:db8::1");
	ck_assert_str_eq(p.label, "socks5://[2001:db8::1]:1080");
	ck_assert_ptr_null(p.auth_header);
	route_parent_free(&p);
	static const char *const bad[] = {
		"proxy:8080", "https://p:443", "socks4://p:1080", "http://p", "http://p:0", "http://p:65536",
		"http://p:80/x", "http://:80", "http://u@p:80", "http://:pw@p:80", "http://[::1:80",
		"http://[zz]:80", "http://p q:80", "http://u:%zz@p:80", "http://u:%00@p:80", "http://p:8x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(route_parent_parse(bad[i], &p, err, sizeof(err)) == FERRY_ERR, "%s accepted", bad[i]);
		ck_assert_msg(err[0] != '\0', "%s: no reason", bad[i]);
	}
	/* a reason never shows the password */
	ck_assert_int_eq(route_parent_parse("http://u:hunter2@p:99999", &p, err, sizeof(err)), FERRY_ERR);
	ck_assert_ptr_null(strstr(err, "hunter2"));
	ck_assert_msg(strstr(err, "http://***@p"), "%s", err);
	/* RFC 1929: a SOCKS5 password is 1 to 255 bytes; HTTP Basic takes an empty one */
	ck_assert_int_eq(route_parent_parse("socks5://u:@p:1080", &p, err, sizeof(err)), FERRY_ERR);
	ck_assert_msg(strstr(err, "RFC 1929"), "%s", err);
	ck_assert_int_eq(route_parent_parse("http://u:@p:3128", &p, err, sizeof(err)), FERRY_OK);
	ck_assert_str_eq(p.pass, "");
	ck_assert_str_eq(p.auth_header, "Proxy-Authorization: Basic dTo=\r\n");
	route_parent_free(&p);
	char longpw[300];
	memset(longpw, 'x', sizeof(longpw));
	memcpy(longpw, "socks5://u:", 11);
	strcpy(longpw + 11 + 255, "@p:1");
	ck_assert_int_eq(route_parent_parse(longpw, &p, err, sizeof(err)), FERRY_OK);
	ck_assert_uint_eq(strlen(p.pass), 255);
	route_parent_free(&p);
	strcpy(longpw + 11 + 256, "@p:1");
	ck_assert_int_eq(route_parent_parse(longpw, &p, err, sizeof(err)), FERRY_ERR);
	ck_assert_ptr_null(strstr(err, "xxx"));
}
END_TEST

/* Every way a URL with credentials can be wrong: no message shows the password, or a piece
 * of it (a blank or a comma in a password splits the value into words). */
START_TEST(route_errors_never_show_the_password)
{
	static const char *const parents[] = {
		"ferry:s3cretSECRET@proxy:3128",             /* the scheme forgotten */
		"http://ferry:pa,ssw0rdSECRET@h:3128",       /* a comma in the password */
		"http://ferry:pa ssw0rdSECRET@h:3128",       /* a blank */
		"socks5://ferry:pa ss SECRET x@h:1080",
		"http://ferry:ssw0rdSECRET@h",               /* no port */
		"http://ferry:ssw0rdSECRET@h:99999",
		"http://ferry:ssw0rdSECRET@h:80/path",
		"http://ferry:ssw0rdSECRET@[::1:80",
		"http://ferry:ssw0rdSECRET@[zz]:80",
		"http://ferry:ssw0rdSECRET@h$x:80",
		"http://ferry:ssw0rdSECRET@:80",
		"http://ferry:ssw0rdSECRET%zz@h:80",
		"http://ferry:ssw0rdSECRET%01@h:80",
		"ftp://ferry:ssw0rdSECRET@h:21",
		"ferry:ssw0rdSECRET@http://h:1",
		"http://fer%3Ary:ssw0rdSECRET@h:1",          /* ':' in an HTTP user */
		"socks5://:ssw0rdSECRET@h:1",                /* no user */
		"ssw0rdSECRET://h:1",
	};
	struct route_table t;
	char err[256];
	for (size_t i = 0; i < sizeof(parents) / sizeof(parents[0]); i++) {
		memset(&t, 0, sizeof(t));
		err[0] = '\0';
		ck_assert_msg(route_table_add_parent(&t, parents[i], err, sizeof(err)) == FERRY_ERR, "%s accepted",
			      parents[i]);
		ck_assert_msg(err[0] != '\0', "%s: no reason", parents[i]);
		ck_assert_msg(!strstr(err, "SECRET") && !strstr(err, "ssw0rd"), "%s: '%s'", parents[i], err);
		route_table_free(&t);
		char rule[256];
		snprintf(rule, sizeof(rule), "example.com %s", parents[i]);
		ck_assert_msg(route_table_add_rule(&t, rule, 1, err, sizeof(err)) == FERRY_ERR, "%s accepted", rule);
		ck_assert_msg(!strstr(err, "SECRET") && !strstr(err, "ssw0rd"), "%s: '%s'", rule, err);
		/* the MATCH forgotten: the URL stands where the suffix belongs */
		snprintf(rule, sizeof(rule), "%s direct", parents[i]);
		ck_assert_msg(route_table_add_rule(&t, rule, 1, err, sizeof(err)) == FERRY_ERR, "%s accepted", rule);
		ck_assert_msg(!strstr(err, "SECRET") && !strstr(err, "ssw0rd"), "%s: '%s'", rule, err);
		route_table_free(&t);
	}
	/* what is shown still names the parent */
	memset(&t, 0, sizeof(t));
	ck_assert_int_eq(route_table_add_parent(&t, "ferry:s3cretSECRET@proxy:3128", err, sizeof(err)), FERRY_ERR);
	ck_assert_msg(strstr(err, "'***@proxy:3128'") && strstr(err, "http://"), "%s", err);
	ck_assert_int_eq(route_table_add_parent(&t, "http://ferry:pw@h:3128x", err, sizeof(err)), FERRY_ERR);
	ck_assert_str_eq(err, "parent http://***@h: bad port (1 to 65535, nothing after it)");
	ck_assert_int_eq(route_table_add_parent(&t, "socks4://h:1080", err, sizeof(err)), FERRY_ERR);
	ck_assert_str_eq(err, "parent scheme 'socks4' is not http or socks5");
	route_table_free(&t);
}
END_TEST

START_TEST(route_rules_match)
{
	struct route_table t;
	char err[256];
	memset(&t, 0, sizeof(t));
	ck_assert_int_eq(route_table_add_parent(&t, "http://a:1 socks5://b:2", err, sizeof(err)), FERRY_OK);
	ck_assert_int_eq(route_table_add_rule(&t, "intra.example direct", 1, err, sizeof(err)), FERRY_OK);
	ck_assert_int_eq(route_table_add_rule(&t, "10.0.0.0/8 direct", 2, err, sizeof(err)), FERRY_OK);
	ck_assert_int_eq(route_table_add_rule(&t, ".partner.example socks5://b:2, http://c:3", 3, err, sizeof(err)), FERRY_OK);
	ck_assert_int_eq(route_table_add_rule(&t, "2001:db8::/32 http://c:3", 4, err, sizeof(err)), FERRY_OK);
	ck_assert_uint_eq(t.nparents, 3); /* b named twice is one parent */
	ck_assert_int_eq(route_table_prepare(&t, 2), FERRY_OK);

	const struct route_target *x;
	ck_assert_int_eq(route_match(&t, "intra.example")->direct, 1);
	ck_assert_int_eq(route_match(&t, "WWW.Intra.Example.")->direct, 1);
	ck_assert_int_eq(route_match(&t, "xintra.example")->direct, 0); /* not a label boundary */
	ck_assert_int_eq(route_match(&t, "10.1.2.3")->direct, 1);
	x = route_match(&t, "11.1.2.3");
	ck_assert_int_eq(x->direct, 0);
	ck_assert_ptr_eq(x, &t.deflt);
	x = route_match(&t, "a.partner.example");
	ck_assert_uint_eq(x->n, 2);
	ck_assert_str_eq(t.parents[x->parents[0]]->label, "socks5://b:2");
	ck_assert_str_eq(t.parents[x->parents[1]]->label, "http://c:3");
	ck_assert_uint_eq(route_match(&t, "2001:db8::5")->n, 1);
	/* a CIDR rule judges addresses only, never names */
	ck_assert_ptr_eq(route_match(&t, "10.example"), &t.deflt);

	/* order, and a failed parent skipped by the worker that saw it fail, for ROUTE_SKIP_MS */
	int pos = -1;
	const struct route_parent *p = route_next(&t, x, 0, 1000, &pos);
	ck_assert_str_eq(p->label, "socks5://b:2");
	route_parent_failed(&t, p, 0, 1000);
	pos = -1;
	ck_assert_str_eq(route_next(&t, x, 0, 2000, &pos)->label, "http://c:3");
	/* c failed too: b, skipped at first, is tried after all rather than a 502 */
	ck_assert_str_eq(route_next(&t, x, 0, 2000, &pos)->label, "socks5://b:2");
	ck_assert_ptr_null(route_next(&t, x, 0, 2000, &pos));
	pos = -1;
	ck_assert_str_eq(route_next(&t, x, 1, 2000, &pos)->label, "socks5://b:2"); /* other worker */
	pos = -1;
	ck_assert_str_eq(route_next(&t, x, 0, 1000 + ROUTE_SKIP_MS, &pos)->label, "socks5://b:2");
	/* every parent down: tried anyway, in order */
	route_parent_failed(&t, t.parents[x->parents[1]], 0, 1000);
	pos = -1;
	ck_assert_str_eq(route_next(&t, x, 0, 2000, &pos)->label, "socks5://b:2");
	ck_assert_str_eq(route_next(&t, x, 0, 2000, &pos)->label, "http://c:3");
	ck_assert_ptr_null(route_next(&t, x, 0, 2000, &pos));
	route_parent_ok(&t, p, 0);
	pos = -1;
	ck_assert_str_eq(route_next(&t, x, 0, 2000, &pos)->label, "socks5://b:2");

	/* three parents, the first down: b, c, then a; each once per request */
	ck_assert_int_eq(route_table_add_rule(&t, "three.example http://a:1 socks5://b:2 http://c:3", 5, err,
					      sizeof(err)), FERRY_OK);
	x = route_match(&t, "www.three.example");
	ck_assert_uint_eq(x->n, 3);
	route_parent_ok(&t, t.parents[x->parents[1]], 0);
	route_parent_ok(&t, t.parents[x->parents[2]], 0);
	route_parent_failed(&t, t.parents[x->parents[0]], 0, 1000);
	pos = -1;
	ck_assert_str_eq(route_next(&t, x, 0, 2000, &pos)->label, "socks5://b:2");
	route_parent_failed(&t, t.parents[x->parents[1]], 0, 2000);
	ck_assert_str_eq(route_next(&t, x, 0, 2000, &pos)->label, "http://c:3");
	route_parent_failed(&t, t.parents[x->parents[2]], 0, 2000);
	ck_assert_str_eq(route_next(&t, x, 0, 2000, &pos)->label, "http://a:1");
	ck_assert_ptr_null(route_next(&t, x, 0, 2000, &pos));
	ck_assert_ptr_null(route_next(&t, x, 0, 2000, &pos));
	/* all down: tried anyway, in order */
	pos = -1;
	ck_assert_str_eq(route_next(&t, x, 0, 2000, &pos)->label, "http://a:1");
	ck_assert_str_eq(route_next(&t, x, 0, 2000, &pos)->label, "socks5://b:2");
	/* c comes back meanwhile (another request got through): it is next, then none */
	route_parent_ok(&t, t.parents[x->parents[2]], 0);
	ck_assert_str_eq(route_next(&t, x, 0, 2000, &pos)->label, "http://c:3");
	ck_assert_ptr_null(route_next(&t, x, 0, 2000, &pos));
	/* a direct target has no parent */
	pos = -1;
	ck_assert_ptr_null(route_next(&t, route_match(&t, "intra.example"), 0, 2000, &pos));

	static const char *const bad[] = { "", "example.com", "direct", "example.com direct http://a:1",
					   "example.com http://a:1 direct", "10.0.0.1/8 direct",
					   "exa$mple.com direct", "example.com ftp://a:1",
					   "example.com http://a:1 http://a:1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(route_table_add_rule(&t, bad[i], 9, err, sizeof(err)) == FERRY_ERR, "'%s'", bad[i]);
	route_table_free(&t);

	/* "*" matches everything, names and addresses */
	memset(&t, 0, sizeof(t));
	ck_assert_int_eq(route_table_add_rule(&t, "* socks5://b:2", 1, err, sizeof(err)), FERRY_OK);
	ck_assert_uint_eq(route_match(&t, "192.0.2.1")->n, 1);
	ck_assert_uint_eq(route_match(&t, "example.com")->n, 1);
	route_table_free(&t);
	ck_assert_int_eq(route_match(NULL, "x")->direct, 1);

	/* ROUTE_TARGET_MAX parents in one target, all down: each is tried once, in order */
	memset(&t, 0, sizeof(t));
	for (int i = 1; i <= ROUTE_TARGET_MAX; i++) {
		char u[32];
		snprintf(u, sizeof(u), "http://p%d:%d", i, i);
		ck_assert_int_eq(route_table_add_parent(&t, u, err, sizeof(err)), FERRY_OK);
	}
	ck_assert_int_eq(route_table_add_parent(&t, "http://one-too-many:1", err, sizeof(err)), FERRY_ERR);
	ck_assert_msg(strstr(err, "at most 31 parents"), "%s", err);
	ck_assert_int_eq(route_table_prepare(&t, 1), FERRY_OK);
	x = route_match(&t, "example.com");
	ck_assert_uint_eq(x->n, ROUTE_TARGET_MAX);
	for (size_t i = 0; i < x->n; i++)
		route_parent_failed(&t, t.parents[x->parents[i]], 0, 1000);
	pos = -1;
	for (int i = 1; i <= ROUTE_TARGET_MAX; i++) {
		char u[32];
		snprintf(u, sizeof(u), "http://p%d:%d", i, i);
		p = route_next(&t, x, 0, 2000, &pos);
		ck_assert_ptr_nonnull(p);
		ck_assert_str_eq(p->label, u);
	}
	ck_assert_ptr_null(route_next(&t, x, 0, 2000, &pos));
	route_table_free(&t);
}
END_TEST

static int conf_errors;
static char conf_err[1024];
static void on_conf_error(void *arg, const char *msg)
{
	(void)arg;
	conf_errors++;
	snprintf(conf_err, sizeof(conf_err), "%s", msg);
}

START_TEST(config_keys)
{
	struct config *cfg = config_load_string("[upstream]\nparent = http://u:p@10.0.0.1:3128\n"
						"route = example.com direct\nroute = 192.0.2.0/24 socks5://10.0.0.2:1080\n",
						"t", on_conf_error, NULL);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_uint_eq(cfg->routes.nparents, 2);
	ck_assert_uint_eq(cfg->routes.nrules, 2);
	ck_assert_ptr_nonnull(cfg->routes.down_until);
	config_free(cfg);
	conf_errors = 0;
	cfg = config_load_string("[upstream]\nparent = ftp://x:1\nroute = bad\n", "t", on_conf_error, NULL);
	ck_assert_ptr_null(cfg);
	ck_assert_int_eq(conf_errors, 2);
	ck_assert_msg(strncmp(conf_err, "t: line 3: [upstream] route: ", 29) == 0, "%s", conf_err);
	conf_errors = 0;
	cfg = config_load_string("[server]\nproxy_protocol = yes\n", "t", on_conf_error, NULL);
	ck_assert_ptr_null(cfg);
	ck_assert_int_eq(conf_errors, 1);
	ck_assert_msg(strstr(conf_err, "line 2") && strstr(conf_err, "proxy_protocol_from"), "%s", conf_err);
	conf_errors = 0;
	cfg = config_load_string("[server]\nproxy_protocol = yes\nproxy_protocol_from = 10.0.0.0/8\n"
				 "proxy_protocol_from = 10.1.2.3/8\n", "t", on_conf_error, NULL);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(strstr(conf_err, "line 4"), "%s", conf_err);
}
END_TEST

START_TEST(absolute_form_rewrite)
{
	char head[512] = "GET /a?b HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n\r\n";
	const char *orig = "GET /a?b HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n\r\n";
	size_t len = strlen(head);
	struct forward_abs u;
	const char *extra = "Proxy-Authorization: Basic dTpw\r\n";
	size_t grow = forward_absolute_growth(head, len, extra);
	ck_assert_int_eq(forward_head_to_absolute(head, &len, len + grow - 1, extra, &u), FERRY_ERR);
	ck_assert_int_eq(forward_head_to_absolute(head, &len, sizeof(head), extra, &u), FERRY_OK);
	head[len] = '\0';
	ck_assert_str_eq(head, "GET http://example.com:8080/a?b HTTP/1.1\r\nProxy-Authorization: Basic dTpw\r\n"
			       "Host: example.com:8080\r\nAccept: */*\r\n\r\n");
	ck_assert_uint_eq(len, strlen(orig) + grow);
	forward_head_from_absolute(head, &len, &u);
	head[len] = '\0';
	ck_assert_str_eq(head, orig);
	ck_assert_int_eq(forward_head_to_absolute(head, &len, sizeof(head), NULL, &u), FERRY_OK);
	head[len] = '\0';
	ck_assert_str_eq(head, "GET http://example.com:8080/a?b HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n\r\n");
	forward_head_from_absolute(head, &len, &u);
	head[len] = '\0';
	ck_assert_str_eq(head, orig);
	/* an OPTIONS about the server: "*" to an origin, "http://HOST" (no path) to a parent */
	char star[512] = "OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n";
	const char *star0 = "OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n";
	len = strlen(star);
	ck_assert_int_eq(forward_head_to_absolute(star, &len, sizeof(star), extra, &u), FERRY_OK);
	star[len] = '\0';
	ck_assert_str_eq(star, "OPTIONS http://example.com HTTP/1.1\r\nProxy-Authorization: Basic dTpw\r\n"
			       "Host: example.com\r\n\r\n");
	forward_head_from_absolute(star, &len, &u);
	star[len] = '\0';
	ck_assert_str_eq(star, star0);
	char c[256];
	ssize_t n = forward_connect_head("2001:db8::1", 1, 443, extra, "me:1", c, sizeof(c));
	ck_assert_int_gt(n, 0);
	c[n] = '\0';
	ck_assert_str_eq(c, "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n"
			    "Proxy-Authorization: Basic dTpw\r\nVia: 1.1 me:1\r\n\r\n");
	ck_assert_int_eq(forward_connect_head("h", 0, 1, NULL, "me", c, 20), -1);
}
END_TEST

/* ---- parent proxies end to end ---- */

static struct harness_ferry parent;
static struct harness_conf pconf;

/* A parent ferry (B) requiring user "up" / "s3cret" through an htpasswd file. */
static void start_parent_ferry(int mux)
{
	strcpy(tmpdir, "/tmp/ferry-chain-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	char path[128], line[256];
	snprintf(path, sizeof(path), "%s/htpasswd", tmpdir);
	struct crypt_data cd;
	memset(&cd, 0, sizeof(cd));
	const char *h = crypt_r("s3cret", "$6$chainsalt$", &cd);
	ck_assert_ptr_nonnull(h);
	snprintf(line, sizeof(line), "up:%s\n", h);
	ck_assert_int_eq(harness_write_file(path, line), FERRY_OK);
	harness_conf_base(&pconf, muxes[mux], &origin);
	harness_conf_set(&pconf, "auth", "htpasswd", path);
	harness_conf_set(&pconf, "server", "via_name", "parent-b");
	ck_assert_int_eq(harness_ferry_start(&parent, &pconf), FERRY_OK);
}

static void ask(int port, const char *req, struct harness_resp *r)
{
	ck_assert_msg(harness_request(port, req, r, 0) == FERRY_OK, "no response to %s", req);
}

START_TEST(chain_two_ferries)
{
	begin(_i);
	start_parent_ferry(_i);
	char url[128];
	snprintf(url, sizeof(url), "http://up:s3cret@127.0.0.1:%d", parent.port);
	harness_conf_set(&conf, "upstream", "parent", url);
	harness_conf_set(&conf, "server", "via_name", "child-a");
	go();

	/* GET through both: the origin sees both Vias and no credentials (the client's went to
	 * nobody, the parent's were for the parent) */
	char req[512];
	struct harness_resp r;
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/headers HTTP/1.1\r\nHost: x\r\n"
		 "Proxy-Authorization: Basic Y2xpZW50OnB3\r\n\r\n", origin.port);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(strstr(r.body, "child-a") && strstr(r.body, "parent-b"), "%s", r.body);
	ck_assert_msg(strstr(r.body, "GET /headers HTTP/1.1\r\n") == r.body, "%s", r.body);
	ck_assert_ptr_null(strcasestr(r.body, "proxy-authorization"));
	harness_resp_free(&r);

	/* TRACE: the parent would be the final recipient and echo the request, which would carry
	 * ferry's credentials for it; Max-Forwards: 0 is answered by the first ferry. Refused on
	 * a new connection to the parent and on a pooled one alike: each GET before leaves one in
	 * the pool, which a TRACE once took without the check. */
	for (int round = 0; round < 5; round++) {
		char get[512];
		snprintf(get, sizeof(get), "GET http://127.0.0.1:%d/headers HTTP/1.1\r\nHost: x\r\n\r\n",
			 origin.port);
		ask(ferry.port, get, &r);
		ck_assert_int_eq(r.status, 200);
		harness_resp_free(&r);
		snprintf(req, sizeof(req), "TRACE http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n"
			 "Max-Forwards: 1\r\n\r\n", origin.port);
		ask(ferry.port, req, &r);
		ck_assert_msg(r.status == 403, "round %d: status %d body %s", round, r.status, r.body);
		ck_assert_msg(strstr(r.body, "TRACE") && !strstr(r.body, "dXA6czNjcmV0"), "%s", r.body);
		harness_resp_free(&r);
	}
	snprintf(req, sizeof(req), "TRACE http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\n\r\n",
		 origin.port);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_null(strstr(r.body, "dXA6czNjcmV0")); /* base64 of up:s3cret */
	harness_resp_free(&r);

	/* CONNECT through both */
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", origin.echo_port,
		 origin.echo_port);
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	ck_assert_int_eq(harness_read_response(&c, &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	ck_assert_int_eq(harness_send_str(&c, "ping through two proxies"), FERRY_OK);
	ck_assert_uint_ge(harness_read_atleast(&c, 24, HARNESS_TIMEOUT_MS), 24);
	ck_assert_int_eq(memcmp(c.buf, "ping through two proxies", 24), 0);
	harness_close(&c);

	/* keep-alive through both */
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	for (int i = 0; i < 3; i++) {
		snprintf(req, sizeof(req), "GET http://%s:%d/len/%d HTTP/1.1\r\nHost: x\r\n\r\n",
			 i == 1 ? "localhost" : "127.0.0.1", origin.port, i + 1);
		ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
		ck_assert_int_eq(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
		ck_assert_int_eq(r.status, 200);
		ck_assert_uint_eq(r.body_len, (size_t)i + 1);
		harness_resp_free(&r);
	}
	harness_close(&c);
	ck_assert_int_eq(harness_ferry_stop(&parent), 0);
	end();
}
END_TEST

/* Read one request head from a connection the test accepted as a fake parent. */
static char *read_head(struct harness_conn *pc)
{
	while (pc->len < 4 || !memmem(pc->buf, pc->len, "\r\n\r\n", 4)) {
		size_t before = pc->len;
		if (harness_read_atleast(pc, pc->len + 1, HARNESS_TIMEOUT_MS) <= before)
			return NULL;
	}
	size_t n = (size_t)((char *)memmem(pc->buf, pc->len, "\r\n\r\n", 4) - pc->buf) + 4;
	return harness_take(pc, n);
}

/* Exactly what an HTTP parent receives: absolute-form, the parent's credentials and not the
 * client's, and one kept-alive connection for requests to several destinations (the pool
 * keys parent connections on the parent). The parent here is the test itself. */
START_TEST(http_parent_sees_absolute_form_on_one_connection)
{
	begin(_i);
	int pport = 0;
	int lfd = harness_listen(0, 16, &pport);
	ck_assert_int_ge(lfd, 0);
	char v[128];
	snprintf(v, sizeof(v), "http://Aladdin:open%%20sesame@127.0.0.1:%d", pport);
	harness_conf_set(&conf, "upstream", "parent", v);
	harness_conf_set(&conf, "server", "threads", "1");
	go();
	struct harness_conn c, pc;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	memset(&pc, 0, sizeof(pc));
	pc.fd = -1;
	static const char *const dest[] = { "origin.example", "192.0.2.1:8080", "[2001:db8::1]", "origin.example" };
	for (int i = 0; i < 4; i++) {
		char req[256], want[256];
		snprintf(req, sizeof(req), "GET http://%s/p%d?q HTTP/1.1\r\nHost: x\r\n"
			 "Proxy-Authorization: Basic Y2xpZW50OnB3\r\n\r\n", dest[i], i);
		ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
		if (i == 0) {
			pc.fd = harness_accept(lfd, HARNESS_TIMEOUT_MS);
			ck_assert_int_ge(pc.fd, 0);
		}
		char *head = read_head(&pc);
		ck_assert_msg(head != NULL, "request %d did not come on the first connection", i);
		snprintf(want, sizeof(want), "GET http://%s/p%d?q HTTP/1.1\r\n"
			 "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\nHost: %s\r\n", dest[i], i, dest[i]);
		ck_assert_msg(strncmp(head, want, strlen(want)) == 0, "got:\n%s\nwant:\n%s", head, want);
		ck_assert_msg(strstr(head, "Y2xpZW50OnB3") == NULL, "the client's credentials were forwarded: %s", head);
		free(head);
		ck_assert_int_eq(harness_send_str(&pc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), FERRY_OK);
		struct harness_resp r;
		ck_assert_int_eq(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
		ck_assert_int_eq(r.status, 200);
		ck_assert_str_eq(r.body, "ok");
		harness_resp_free(&r);
	}
	ck_assert_int_lt(harness_accept(lfd, 200), 0); /* no second connection */
	/* the parent's 407 is about ferry's credentials: a 502 for the client, not a 407 */
	ck_assert_int_eq(harness_send_str(&c, "GET http://origin.example/ HTTP/1.1\r\nHost: x\r\n\r\n"), FERRY_OK);
	free(read_head(&pc));
	ck_assert_int_eq(harness_send_str(&pc, "HTTP/1.1 407 Proxy Authentication Required\r\n"
				"Proxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n"), FERRY_OK);
	struct harness_resp r;
	ck_assert_int_eq(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 502);
	ck_assert_ptr_null(harness_resp_header(&r, "proxy-authenticate"));
	snprintf(v, sizeof(v), "parent http://127.0.0.1:%d requires proxy authentication", pport);
	ck_assert_msg(strstr(r.body, v) && !strstr(r.body, "sesame"), "%s", r.body);
	harness_resp_free(&r);
	harness_close(&pc);
	harness_close(&c);
	close(lfd);
	end();
}
END_TEST

START_TEST(chain_parent_errors_are_502s)
{
	begin(_i);
	start_parent_ferry(_i);
	char url[128];
	snprintf(url, sizeof(url), "http://up:wrongpass@127.0.0.1:%d", parent.port);
	harness_conf_set(&conf, "upstream", "parent", url);
	go();
	char req[256], want[128];
	struct harness_resp r;
	snprintf(want, sizeof(want), "parent http://127.0.0.1:%d requires proxy authentication", parent.port);
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 502);
	/* one line, naming the parent without its password */
	ck_assert_msg(strstr(r.body, want) && !strstr(r.body, "wrongpass") &&
		      strchr(r.body, '\n') == r.body + r.body_len - 1, "%s", r.body);
	harness_resp_free(&r);
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", origin.echo_port);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 502);
	ck_assert_msg(strstr(r.body, want), "%s", r.body);
	harness_resp_free(&r);
	end();
	(void)harness_ferry_stop(&parent);

	begin(_i);
	start_parent_ferry(_i);
	snprintf(url, sizeof(url), "http://up:s3cret@127.0.0.1:%d", parent.port);
	harness_conf_set(&conf, "upstream", "parent", url);
	char ports[32];
	snprintf(ports, sizeof(ports), "%d", origin.port);
	harness_conf_set(&conf, "access", "connect_ports", ports); /* A allows it; B does not */
	go();
	/* the parent refuses the destination itself: its answer, as a 502 naming it */
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 502);
	snprintf(want, sizeof(want), "parent http://127.0.0.1:%d refused CONNECT to 127.0.0.1 port %d: 403",
		 parent.port, origin.port);
	ck_assert_msg(strstr(r.body, want), "%s", r.body);
	harness_resp_free(&r);
	/* a parent that is down */
	(void)harness_ferry_stop(&parent);
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 502);
	snprintf(want, sizeof(want), "parent http://127.0.0.1:%d: Connection refused", parent.port);
	ck_assert_msg(strstr(r.body, want), "%s", r.body);
	harness_resp_free(&r);
	end();
}
END_TEST

START_TEST(socks5_parent_with_and_without_credentials)
{
	begin(_i);
	int sp = socks_start("sockuser", "sockpass");
	char url[128], req[256], last[400];
	snprintf(url, sizeof(url), "socks5://sockuser:sockpass@127.0.0.1:%d", sp);
	harness_conf_set(&conf, "upstream", "parent", url);
	go();
	struct harness_resp r;
	/* a name goes to the parent unresolved (ATYP 3) */
	snprintf(req, sizeof(req), "GET http://localhost:%d/headers HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(strstr(r.body, "GET /headers HTTP/1.1\r\n") == r.body, "origin-form over SOCKS: %s", r.body);
	harness_resp_free(&r);
	ck_assert_uint_eq(socks_count(sp, last, sizeof(last)), 1);
	snprintf(req, sizeof(req), "3 localhost %d", origin.port);
	ck_assert_str_eq(last, req);
	/* CONNECT, with an address (ATYP 1) */
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", origin.echo_port);
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	ck_assert_int_eq(harness_read_response(&c, &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	ck_assert_int_eq(harness_send_str(&c, "socks tunnel"), FERRY_OK);
	ck_assert_uint_ge(harness_read_atleast(&c, 12, HARNESS_TIMEOUT_MS), 12);
	ck_assert_int_eq(memcmp(c.buf, "socks tunnel", 12), 0);
	harness_close(&c);
	ck_assert_uint_eq(socks_count(sp, last, sizeof(last)), 2);
	snprintf(req, sizeof(req), "1 127.0.0.1 %d", origin.echo_port);
	ck_assert_str_eq(last, req);
	/* the parent cannot reach the destination: its reply, as a 502 naming it */
	int dead = harness_closed_port();
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n", dead);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 502);
	char want[200];
	snprintf(want, sizeof(want), "parent socks5://127.0.0.1:%d refused the connection to 127.0.0.1 port %d: "
		 "connection refused", sp, dead);
	ck_assert_msg(strstr(r.body, want), "%s", r.body);
	harness_resp_free(&r);
	end();

	/* wrong credentials, and none */
	begin(_i);
	snprintf(url, sizeof(url), "socks5://sockuser:nope@127.0.0.1:%d", sp);
	harness_conf_set(&conf, "upstream", "parent", url);
	go();
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 502);
	ck_assert_msg(strstr(r.body, "refused the user name and password") && !strstr(r.body, "nope"), "%s", r.body);
	harness_resp_free(&r);
	end();
	begin(_i);
	snprintf(url, sizeof(url), "socks5://127.0.0.1:%d", sp);
	harness_conf_set(&conf, "upstream", "parent", url);
	go();
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 502);
	ck_assert_msg(strstr(r.body, "none of the offered authentication methods"), "%s", r.body);
	harness_resp_free(&r);
	end();
	socks_stop();
	/* no credentials on either side */
	begin(_i);
	sp = socks_start(NULL, NULL);
	snprintf(url, sizeof(url), "socks5://127.0.0.1:%d", sp);
	harness_conf_set(&conf, "upstream", "parent", url);
	go();
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ask(ferry.port, req, &r);
	ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
	harness_resp_free(&r);
	/* a 407 from the origin through a SOCKS5 parent is the origin's, not the parent's */
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/status/407 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ask(ferry.port, req, &r);
	ck_assert_msg(r.status == 407, "%d %s", r.status, r.body);
	harness_resp_free(&r);
	end();
}
END_TEST

START_TEST(parents_in_order_and_skipped)
{
	begin(_i);
	int sp = socks_start(NULL, NULL);
	/* parent 1: a listener this test controls, which closes what it accepts (a broken
	 * parent); parent 2: the SOCKS5 parent */
	int bport = 0;
	int lfd = harness_listen(0, 16, &bport);
	ck_assert_int_ge(lfd, 0);
	char v[256];
	snprintf(v, sizeof(v), "http://127.0.0.1:%d socks5://127.0.0.1:%d", bport, sp);
	harness_conf_set(&conf, "upstream", "parent", v);
	harness_conf_set(&conf, "server", "threads", "1"); /* the skip record is per worker */
	go();
	struct harness_conn c;
	struct harness_resp r;
	char req[256];
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", origin.echo_port);
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	int fd = harness_accept(lfd, HARNESS_TIMEOUT_MS);
	ck_assert_int_ge(fd, 0);
	close(fd); /* the first parent breaks in the handshake: the second is tried */
	ck_assert_int_eq(harness_read_response(&c, &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	ck_assert_int_eq(harness_send_str(&c, "second"), FERRY_OK);
	ck_assert_uint_ge(harness_read_atleast(&c, 6, HARNESS_TIMEOUT_MS), 6);
	harness_close(&c);
	ck_assert_uint_eq(socks_count(sp, NULL, 0), 1);
	/* now the broken parent is skipped: straight to the second */
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	ck_assert_int_eq(harness_read_response(&c, &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	harness_close(&c);
	ck_assert_uint_eq(socks_count(sp, NULL, 0), 2);
	ck_assert_int_lt(harness_accept(lfd, 200), 0);
	char *log = harness_ferry_log(&ferry);
	/* closed or reset: the test's close() sends a reset when ferry's CONNECT arrived first */
	snprintf(v, sizeof(v), "parent http://127.0.0.1:%d: ", bport);
	const char *at = strstr(log, v);
	ck_assert_msg(at && (strncmp(at + strlen(v), "closed the connection in the handshake (skipped for 30 s)", 57) == 0 ||
			     strncmp(at + strlen(v), "reset the connection in the handshake (skipped for 30 s)", 56) == 0),
		      "%s", log);
	free(log);
	/* the second parent fails too: the first, still in its skip window, is tried after all
	 * before the client gets a 502 */
	socks_stop();
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	fd = harness_accept(lfd, HARNESS_TIMEOUT_MS);
	ck_assert_msg(fd >= 0, "the skipped parent was not tried");
	close(fd);
	ck_assert_int_eq(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 502);
	snprintf(v, sizeof(v), "no parent proxy could be reached (last: parent http://127.0.0.1:%d: ", bport);
	ck_assert_msg(strstr(r.body, v), "%s", r.body);
	harness_resp_free(&r);
	harness_close(&c);
	ck_assert_int_lt(harness_accept(lfd, 200), 0); /* once per request, not again */
	end();
	close(lfd);

	/* a first parent that refuses connections; and all parents down: 502 naming the last
	 * tried, which is the first one, skipped at first and tried once the second failed */
	begin(_i);
	sp = socks_start(NULL, NULL);
	int dead = harness_closed_port();
	snprintf(v, sizeof(v), "http://127.0.0.1:%d, socks5://127.0.0.1:%d", dead, sp);
	harness_conf_set(&conf, "upstream", "parent", v);
	harness_conf_set(&conf, "server", "threads", "1");
	go();
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/len/4 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	socks_stop();
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 502);
	snprintf(v, sizeof(v), "no parent proxy could be reached (last: parent http://127.0.0.1:%d: Connection refused)",
		 dead);
	ck_assert_msg(strstr(r.body, v), "%s", r.body);
	harness_resp_free(&r);
	end();
}
END_TEST

START_TEST(routes_suffix_cidr_direct)
{
	begin(_i);
	int sp = socks_start(NULL, NULL);
	int dead = harness_closed_port();
	char v[256], req[256], last[400];
	snprintf(v, sizeof(v), "http://127.0.0.1:%d", dead);
	harness_conf_set(&conf, "upstream", "parent", v); /* the default: a dead parent */
	harness_conf_add(&conf, "upstream", "route", "127.0.0.1/32 direct");
	snprintf(v, sizeof(v), "localhost socks5://127.0.0.1:%d", sp);
	harness_conf_add(&conf, "upstream", "route", v);
	snprintf(v, sizeof(v), "127.0.0.3 socks5://127.0.0.1:%d", sp);
	harness_conf_add(&conf, "upstream", "route", v);
	harness_conf_set(&conf, "access", "block_destinations", "127.0.0.3/32");
	go();
	struct harness_resp r;
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/len/2 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 200); /* CIDR rule: direct */
	harness_resp_free(&r);
	ck_assert_uint_eq(socks_count(sp, NULL, 0), 0);
	snprintf(req, sizeof(req), "GET http://LocalHost:%d/len/2 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 200); /* suffix rule: through SOCKS5 */
	harness_resp_free(&r);
	ck_assert_uint_eq(socks_count(sp, last, sizeof(last)), 1);
	ck_assert_msg(strncmp(last, "3 LocalHost ", 12) == 0, "%s", last);
	snprintf(req, sizeof(req), "GET http://127.0.0.2:%d/len/2 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 502); /* no rule: the default parent, which is down */
	snprintf(v, sizeof(v), "parent http://127.0.0.1:%d: Connection refused", dead);
	ck_assert_msg(strstr(r.body, v), "%s", r.body);
	harness_resp_free(&r);
	/* a destination written as an address is still judged by block_destinations */
	snprintf(req, sizeof(req), "GET http://127.0.0.3:%d/len/2 HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ask(ferry.port, req, &r);
	ck_assert_int_eq(r.status, 403);
	harness_resp_free(&r);
	ck_assert_uint_eq(socks_count(sp, NULL, 0), 1);
	end();
}
END_TEST

/* ---- HAProxy in front of two ferry instances ---- */

static pid_t haproxy_pid;

static const char *haproxy_bin(void)
{
	static const char *const cand[] = { "/usr/sbin/haproxy", "/usr/local/sbin/haproxy", "/usr/bin/haproxy" };
	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
		if (access(cand[i], X_OK) == 0)
			return cand[i];
	return NULL;
}

static void haproxy_stop(void)
{
	if (haproxy_pid > 0) {
		kill(haproxy_pid, SIGKILL);
		waitpid(haproxy_pid, NULL, 0);
	}
	haproxy_pid = 0;
}

static void teardown_haproxy(void)
{
	haproxy_stop();
	teardown();
}

/* One GET from a client bound to src_ip, through the balancer; the status, or -1. */
static int get_from(const char *src_ip, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	inet_pton(AF_INET, src_ip, &a.sin_addr);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	struct timeval tv = { HARNESS_TIMEOUT_MS / 1000, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char req[256], buf[512];
	int n = snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/len/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			 origin.port);
	if (write(fd, req, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	size_t got = 0;
	ssize_t r;
	while (got < sizeof(buf) - 1 && (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)r;
	buf[got] = '\0';
	close(fd);
	int status = -1;
	if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
		return -1;
	return status;
}

/* HAProxy (mode tcp, send-proxy-v2) in front of two ferry instances that allow only
 * 127.0.0.2: a client bound to 127.0.0.2 is served by both (HAProxy itself connects from
 * 127.0.0.1, which is not allowed, so ferry must be using the address in the header), one
 * bound to 127.0.0.3 is refused by both. Skipped where haproxy is not installed. */
START_TEST(haproxy_send_proxy_v2_two_instances)
{
	const char *bin = haproxy_bin();
	if (bin == NULL) {
		fprintf(stderr, "test_chain: haproxy not installed: HAProxy end-to-end test skipped\n");
		return;
	}
	begin(_i);
	struct harness_ferry f2;
	pp_conf("127.0.0.1/32");
	harness_conf_set(&conf, "access", "allow", "127.0.0.2");
	harness_conf_set(&conf, "server", "via_name", "fleet-a");
	go();
	harness_conf_set(&conf, "server", "via_name", "fleet-b");
	ck_assert_int_eq(harness_ferry_start(&f2, &conf), FERRY_OK);

	strcpy(tmpdir, "/tmp/ferry-haproxy-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	char cfgpath[128], cfg[1024];
	snprintf(cfgpath, sizeof(cfgpath), "%s/haproxy.cfg", tmpdir);
	int hport = harness_free_port();
	snprintf(cfg, sizeof(cfg),
		 "global\n    maxconn 100\n\n"
		 "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n"
		 "frontend proxy_in\n    bind 127.0.0.1:%d\n    default_backend ferry\n\n"
		 "backend ferry\n    balance roundrobin\n"
		 "    server a 127.0.0.1:%d send-proxy-v2\n    server b 127.0.0.1:%d send-proxy-v2\n",
		 hport, ferry.port, f2.port);
	ck_assert_int_eq(harness_write_file(cfgpath, cfg), FERRY_OK);
	pid_t me = getpid();
	haproxy_pid = fork();
	ck_assert_int_ge(haproxy_pid, 0);
	if (haproxy_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != me)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execl(bin, bin, "-db", "-f", cfgpath, (char *)NULL);
		_exit(127);
	}
	/* wait until it listens */
	int up = 0;
	for (int i = 0; i < 100 && !up; i++) {
		struct harness_conn c;
		if (harness_connect(&c, hport) == FERRY_OK) {
			up = 1;
			harness_close(&c);
		} else {
			usleep(50000);
		}
	}
	ck_assert_msg(up, "haproxy did not start");
	/* round robin: four requests, so each instance serves at least one, and a 200 from
	 * either means it judged the address in the header, not HAProxy's own */
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(get_from("127.0.0.2", hport), 200);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(get_from("127.0.0.3", hport), 403);
	haproxy_stop();
	ck_assert_int_eq(harness_ferry_stop(&ferry), 0);
	ck_assert_int_eq(harness_ferry_stop(&f2), 0);
	harness_origin_stop(&origin);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("chain");
	TCase *pp = tcase_create("proxy_protocol");
	tcase_set_timeout(pp, 90);
	tcase_add_checked_fixture(pp, NULL, teardown);
	tcase_add_loop_test(pp, pp_v1_v2_give_the_client_address, 0, 2);
	tcase_add_loop_test(pp, pp_local_uses_connection_address, 0, 1);
	tcase_add_loop_test(pp, pp_bad_headers_close, 0, 2);
	tcase_add_loop_test(pp, pp_untrusted_sender_closed, 0, 1);
	tcase_add_loop_test(pp, pp_per_client_counts_the_carried_address, 1, 2);
	suite_add_tcase(s, pp);
	TCase *units = tcase_create("units");
	tcase_add_test(units, route_parse_parents);
	tcase_add_test(units, route_rules_match);
	tcase_add_test(units, route_errors_never_show_the_password);
	tcase_add_test(units, config_keys);
	tcase_add_test(units, absolute_form_rewrite);
	suite_add_tcase(s, units);
	TCase *ch = tcase_create("parents");
	tcase_set_timeout(ch, 90);
	tcase_add_checked_fixture(ch, NULL, teardown);
	tcase_add_loop_test(ch, chain_two_ferries, 0, 2);
	tcase_add_loop_test(ch, chain_parent_errors_are_502s, 1, 2);
	tcase_add_loop_test(ch, http_parent_sees_absolute_form_on_one_connection, 0, 2);
	tcase_add_loop_test(ch, socks5_parent_with_and_without_credentials, 0, 2);
	tcase_add_loop_test(ch, parents_in_order_and_skipped, 1, 2);
	tcase_add_loop_test(ch, routes_suffix_cidr_direct, 0, 1);
	suite_add_tcase(s, ch);
	TCase *hp = tcase_create("haproxy");
	tcase_set_timeout(hp, 60);
	tcase_add_checked_fixture(hp, NULL, teardown_haproxy);
	tcase_add_loop_test(hp, haproxy_send_proxy_v2_two_instances, 1, 2);
	suite_add_tcase(s, hp);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
