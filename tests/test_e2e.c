/* test_e2e.c - end-to-end suites: the real src/ferry against tests/origin on loopback.
 *
 * Every looped test runs twice, once per multiplexer (iteration 0: poll, 1: epoll; Check
 * prints the iteration after the test name). FERRY_E2E_MUX=poll|epoll runs only one. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "harness.h"
#include "status.h"

static const char *const muxes[] = { "poll", "epoll" };

static struct harness_origin origin;
static struct harness_ferry ferry;
static struct harness_conf conf;

static void teardown(void)
{
	harness_cleanup();
}

#define EXPECT(cond, ...) HARNESS_EXPECT(&ferry, cond, __VA_ARGS__)

/* Start the origin and prepare the base config for multiplexer i. */
static void begin(int i)
{
	memset(&ferry, 0, sizeof(ferry));
	ck_assert_msg(harness_origin_start(&origin) == FERRY_OK, "test origin did not start");
	harness_conf_base(&conf, muxes[i], &origin);
}

static void go(void)
{
	ck_assert_msg(harness_ferry_start(&ferry, &conf) == FERRY_OK,
		      "ferry did not start (its log is on stderr)");
}

static void end(void)
{
	harness_ferry_stop(&ferry);
	harness_origin_stop(&origin);
}

/* "METHOD http://127.0.0.1:ORIGIN/path HTTP/1.1" plus Host, extra fields, empty line. */
static char *req(const char *method, const char *path, const char *extra)
{
	return harness_fmt("%s http://127.0.0.1:%d%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n", method,
		           origin.port, path, origin.port, extra ? extra : "");
}

static int is_pattern(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (char)('a' + i % 26))
			return 0;
	return 1;
}

/* Ask the origin directly which connection serial it is at: "SERIAL NREQ". */
static unsigned long origin_serial(void)
{
	struct harness_resp r;
	char *q = harness_fmt("GET /conn HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	unsigned long serial = 0;

	ck_assert_int_eq(harness_request(origin.port, q, &r, 0), FERRY_OK);
	ck_assert_int_eq(sscanf(r.body, "%lu", &serial), 1);
	harness_resp_free(&r);
	free(q);
	return serial;
}

/* One request on a fresh connection, one response. */
static void one(const char *request, struct harness_resp *r, int flags)
{
	EXPECT(harness_request(ferry.port, request, r, flags) == FERRY_OK,
	       "no valid response to: %.200s", request);
}

/* After an error answer: it says Connection: close, and the connection then ends. */
static void expect_closing_error(struct harness_conn *c, struct harness_resp *r, int status,
				 const char *what)
{
	EXPECT(r->status == status, "%.600s: status %d, want %d", what, r->status, status);
	EXPECT(harness_resp_has_token(r, "Connection", "close"),
	       "%.600s: %d without Connection: close", what, status);
	size_t n;
	char *rest = harness_read_to_close(c, &n, HARNESS_TIMEOUT_MS);

	EXPECT(c->eof || c->err == ECONNRESET, "%.600s: connection not closed after %d (err %d)",
	       what, status, c->err);
	EXPECT(n == 0, "%.600s: %zu unexpected bytes after the %d response", what, n, status);
	free(rest);
}

/* ==== command line (no multiplexer involved: run once) ==== */

static char tdir[128];

static const char *tfile(const char *name)
{
	static char path[256];

	if (!tdir[0]) {
		snprintf(tdir, sizeof(tdir), "%s/ferry-e2e-cli-XXXXXX",
			 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
		ck_assert_ptr_nonnull(mkdtemp(tdir));
	}
	snprintf(path, sizeof(path), "%s/%s", tdir, name);
	return path;
}

static void tfile_rm(const char *name)
{
	unlink(tfile(name));
	rmdir(tdir);
	tdir[0] = '\0';
}

START_TEST(cli_version)
{
	const char *args[] = { "-v", NULL };
	struct harness_run r;

	ck_assert_int_eq(harness_run_ferry(&r, args, 5000), FERRY_OK);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strstr(r.out, "ferry") || strstr(r.err, "ferry"),
		      "-v does not name ferry: out \"%.600s\" err \"%.600s\"", r.out, r.err);
	harness_run_free(&r);
}
END_TEST

START_TEST(cli_help)
{
	const char *args[] = { "-h", NULL };
	struct harness_run r;

	ck_assert_int_eq(harness_run_ferry(&r, args, 5000), FERRY_OK);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg((strcasestr(r.out, "usage") || strcasestr(r.err, "usage")) &&
		      (strstr(r.out, "-c") || strstr(r.err, "-c")),
		      "-h prints no usage naming -c: out \"%.600s\" err \"%.600s\"", r.out, r.err);
	harness_run_free(&r);
}
END_TEST

START_TEST(cli_bad_option)
{
	const char *args[] = { "-Z", NULL };
	const char *args2[] = { "-c", NULL };
	struct harness_run r;

	ck_assert_int_eq(harness_run_ferry(&r, args, 5000), FERRY_OK);
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(r.err[0] != '\0', "a bad option says nothing on stderr");
	harness_run_free(&r);
	/* -c without its argument is a usage error too */
	ck_assert_int_eq(harness_run_ferry(&r, args2, 5000), FERRY_OK);
	ck_assert_int_eq(r.status, 2);
	harness_run_free(&r);
}
END_TEST

/* the long spellings users type out of habit: --help, --version, --test, --config */
START_TEST(cli_long_options)
{
	const char *help[] = { "--help", NULL };
	const char *version[] = { "--version", NULL };
	const char *bogus[] = { "--bogus", NULL };
	const char *noarg[] = { "--config", NULL };
	const char *check[] = { "--test", "--config", "/nonexistent/ferry/proxy.ini", NULL };
	struct harness_run r;

	ck_assert_int_eq(harness_run_ferry(&r, help, 5000), FERRY_OK);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strstr(r.out, "usage") && strstr(r.out, "--config"), "--help: \"%.600s\"", r.out);
	harness_run_free(&r);
	ck_assert_int_eq(harness_run_ferry(&r, version, 5000), FERRY_OK);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strncmp(r.out, "ferry ", 6) == 0, "--version: \"%.600s\"", r.out);
	harness_run_free(&r);
	ck_assert_int_eq(harness_run_ferry(&r, bogus, 5000), FERRY_OK);
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strstr(r.err, "unknown option --bogus"), "--bogus: \"%.600s\"", r.err);
	harness_run_free(&r);
	ck_assert_int_eq(harness_run_ferry(&r, noarg, 5000), FERRY_OK);
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strstr(r.err, "--config needs an argument"), "--config: \"%.600s\"", r.err);
	harness_run_free(&r);
	/* --test reads the file --config names: a missing one is a configuration error */
	ck_assert_int_eq(harness_run_ferry(&r, check, 5000), FERRY_OK);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, "/nonexistent/ferry/proxy.ini"), "--test --config: \"%.600s\"", r.err);
	harness_run_free(&r);
}
END_TEST

START_TEST(cli_check_valid)
{
	struct harness_run r;
	const char *path = tfile("ok.ini");
	char *p = strdup(path);
	const char *args[] = { "-t", "-c", p, NULL };

	harness_conf_base(&conf, "epoll", NULL);
	harness_conf_set(&conf, "access", "connect_ports", "443, 8000-8100");
	ck_assert_int_eq(harness_conf_write(&conf, 3128, p), FERRY_OK);
	ck_assert_int_eq(harness_run_ferry(&r, args, 5000), FERRY_OK);
	ck_assert_msg(r.status == 0, "-t on a valid file: exit %d, out \"%.600s\" err \"%.600s\"", r.status,
		      r.out, r.err);
	harness_run_free(&r);
	tfile_rm("ok.ini");
	free(p);
}
END_TEST

START_TEST(cli_check_invalid)
{
	struct harness_run r;
	char *p = strdup(tfile("bad.ini"));
	const char *args[] = { "-t", "-c", p, NULL };
	char *want3 = harness_fmt("ferry: %s: line 3: ", p);
	char *want6 = harness_fmt("ferry: %s: line 6: ", p);

	ck_assert_int_eq(harness_write_file(p, "[server]\n"
					       "listen = 127.0.0.1:3128\n"
					       "processes = banana\n"
					       "threads = 1\n"
					       "[access]\n"
					       "no_such_key = 1\n"), FERRY_OK);
	ck_assert_int_eq(harness_run_ferry(&r, args, 5000), FERRY_OK);
	ck_assert_msg(r.status == 1, "-t on an invalid file: exit %d", r.status);
	/* every error is reported, each with its line */
	ck_assert_msg((strstr(r.err, want3) || strstr(r.out, want3)) &&
		      (strstr(r.err, want6) || strstr(r.out, want6)),
		      "want \"%.600s...\" and \"%.600s...\"; got out \"%.600s\" err \"%.600s\"", want3, want6,
		      r.out, r.err);
	harness_run_free(&r);
	tfile_rm("bad.ini");
	free(want3);
	free(want6);
	free(p);
}
END_TEST

START_TEST(cli_check_out_of_range)
{
	struct harness_run r;
	char *p = strdup(tfile("range.ini"));
	const char *args[] = { "-t", "-c", p, NULL };
	char *want = harness_fmt("ferry: %s: line 4: ", p);

	ck_assert_int_eq(harness_write_file(p, "; comment\n"
					       "[server]\n"
					       "processes = 1\n"
					       "threads = 0\n"), FERRY_OK);
	ck_assert_int_eq(harness_run_ferry(&r, args, 5000), FERRY_OK);
	ck_assert_msg(r.status == 1, "threads = 0 accepted by -t (exit %d)", r.status);
	ck_assert_msg(strstr(r.err, want) || strstr(r.out, want), "want \"%.600s...\"; got \"%.600s\"",
		      want, r.err);
	harness_run_free(&r);
	tfile_rm("range.ini");
	free(want);
	free(p);
}
END_TEST

START_TEST(cli_missing_config)
{
	struct harness_run r;
	const char *args[] = { "-t", "-c", "/nonexistent/ferry/proxy.ini", NULL };

	ck_assert_int_eq(harness_run_ferry(&r, args, 5000), FERRY_OK);
	ck_assert_msg(r.status == 1, "-t on a missing file: exit %d", r.status);
	ck_assert_msg(strstr(r.err, "/nonexistent/ferry/proxy.ini") != NULL,
		      "the error does not name the file: \"%.600s\"", r.err);
	harness_run_free(&r);
}
END_TEST

START_TEST(cli_port_in_use)
{
	int port;
	int lfd = harness_listen(0, 16, &port);
	struct harness_run r;
	char *p = strdup(tfile("busy.ini"));
	const char *args[] = { "-f", "-c", p, NULL };
	int lines = 0;

	ck_assert_int_ge(lfd, 0);
	harness_conf_base(&conf, "poll", NULL);
	ck_assert_int_eq(harness_conf_write(&conf, port, p), FERRY_OK);
	ck_assert_int_eq(harness_run_ferry(&r, args, 10000), FERRY_OK);
	ck_assert_msg(r.status == 3, "port in use: exit %d, want 3; err \"%.600s\"", r.status, r.err);
	for (const char *s = r.err; *s; s++)
		lines += *s == '\n';
	ck_assert_msg(lines == 1, "port in use: want one line on stderr, got %d: \"%.600s\"", lines,
		      r.err);
	harness_run_free(&r);
	close(lfd);
	tfile_rm("busy.ini");
	free(p);
}
END_TEST

/* ==== start and stop ==== */

START_TEST(sigterm_exits_zero)
{
	begin(_i);
	harness_conf_set(&conf, "server", "processes", "2");
	go();
	int code = harness_ferry_stop(&ferry);

	ck_assert_msg(code == 0, "SIGTERM: ferry exit code %d, want 0", code);
	harness_origin_stop(&origin);
}
END_TEST

/* ==== forwarding (issue 2 slice) ==== */

START_TEST(get_rewritten_to_origin_form)
{
	struct harness_resp r;
	char *q;
	char *host;

	begin(_i);
	go();
	q = harness_fmt("GET http://127.0.0.1:%d/headers HTTP/1.1\r\nHost: wrong.example\r\n"
		"Proxy-Connection: keep-alive\r\nX-Custom: kept\r\nConnection: close\r\n\r\n",
		origin.port);
	host = harness_fmt("\r\nHost: 127.0.0.1:%d\r\n", origin.port);
	one(q, &r, 0);
	EXPECT(r.status == 200, "status %d", r.status);
	EXPECT(strncmp(r.body, "GET /headers HTTP/1.1\r\n", 23) == 0,
	       "origin saw request line \"%.60s\"", r.body);
	EXPECT(strstr(r.body, host) != NULL, "Host not regenerated from the target: \"%.600s\"", r.body);
	EXPECT(strstr(r.body, "wrong.example") == NULL, "client's Host forwarded: \"%.600s\"", r.body);
	EXPECT(strcasestr(r.body, "Proxy-Connection") == NULL, "Proxy-Connection forwarded: \"%.600s\"",
	       r.body);
	EXPECT(strstr(r.body, "\r\nX-Custom: kept\r\n") != NULL, "end-to-end field lost: \"%.600s\"",
	       r.body);
	harness_resp_free(&r);
	free(q);

	/* the query survives the rewrite */
	q = req("GET", "/headers?a=1&b=%2F", "Connection: close\r\n");
	one(q, &r, 0);
	EXPECT(r.status == 200 && strncmp(r.body, "GET /headers?a=1&b=%2F HTTP/1.1\r\n", 33) == 0,
	       "query: status %d, request line \"%.60s\"", r.status, r.body);
	harness_resp_free(&r);
	free(q);

	/* "http://h:p?q" (no "/" before the query) is valid absolute-form: it reaches the origin
	 * as "/?q" (the origin has no "/": its 404, with ferry's Via, not ferry's 400) */
	q = harness_fmt("GET http://127.0.0.1:%d?a=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			origin.port);
	one(q, &r, 0);
	EXPECT(r.status == 404 && harness_resp_header(&r, "Via") != NULL,
	       "empty path before a query: status %d\n%.400s%.200s", r.status, r.head, r.body);
	harness_resp_free(&r);
	free(q);
	free(host);
	end();
}
END_TEST

START_TEST(head_has_no_body)
{
	struct harness_resp r;
	struct harness_conn c;
	char *q;
	size_t n;
	char *rest;

	begin(_i);
	go();
	q = req("HEAD", "/len/1000", "Connection: close\r\n");
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "HEAD: no response");
	EXPECT(r.status == 200, "HEAD: status %d", r.status);
	EXPECT(harness_resp_header(&r, "Content-Length") &&
	       strcmp(harness_resp_header(&r, "Content-Length"), "1000") == 0,
	       "HEAD: Content-Length not relayed");
	rest = harness_read_to_close(&c, &n, HARNESS_TIMEOUT_MS);
	EXPECT(n == 0, "HEAD: %zu body bytes followed the head", n);
	free(rest);
	harness_resp_free(&r);
	harness_close(&c);

	/* HEAD of a chunked resource: no chunks either */
	free(q);
	q = req("HEAD", "/chunked/1000", "Connection: close\r\n");
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS) == FERRY_OK &&
	       r.status == 200, "HEAD chunked: status %d", r.status);
	rest = harness_read_to_close(&c, &n, HARNESS_TIMEOUT_MS);
	EXPECT(n == 0, "HEAD chunked: %zu body bytes followed the head", n);
	free(rest);
	harness_resp_free(&r);
	harness_close(&c);
	free(q);
	end();
}
END_TEST

static void relay_sizes(const char *kind, const size_t *sizes, size_t nsizes)
{
	for (size_t k = 0; k < nsizes; k++) {
		struct harness_resp r;
		char *path = harness_fmt("/%s/%zu", kind, sizes[k]);
		char *q = req("GET", path, "Connection: close\r\n");

		one(q, &r, 0);
		EXPECT(r.status == 200, "%.600s: status %d", path, r.status);
		EXPECT(r.complete, "%.600s: body incomplete (%zu bytes)", path, r.body_len);
		EXPECT(r.body_len == sizes[k], "%.600s: %zu bytes relayed", path, r.body_len);
		EXPECT(is_pattern(r.body, r.body_len), "%.600s: body bytes differ", path);
		if (strcmp(kind, "len") == 0) {
			const char *cl = harness_resp_header(&r, "Content-Length");

			EXPECT(cl && strtoull(cl, NULL, 10) == sizes[k],
			       "%.600s: Content-Length %.600s", path, cl ? cl : "(none)");
		}
		harness_resp_free(&r);
		free(q);
		free(path);
	}
}

START_TEST(relay_content_length)
{
	static const size_t sizes[] = { 0, 1, 26, 100000, 3000000 };

	begin(_i);
	go();
	relay_sizes("len", sizes, sizeof(sizes) / sizeof(sizes[0]));
	end();
}
END_TEST

START_TEST(relay_chunked)
{
	static const size_t sizes[] = { 0, 1, 100000, 1000000 };

	begin(_i);
	go();
	relay_sizes("chunked", sizes, sizeof(sizes) / sizeof(sizes[0]));
	end();
}
END_TEST

START_TEST(relay_close_delimited)
{
	static const size_t sizes[] = { 0, 1, 100000, 1000000 };

	begin(_i);
	go();
	relay_sizes("close", sizes, sizeof(sizes) / sizeof(sizes[0]));
	end();
}
END_TEST

START_TEST(relay_status_codes)
{
	static const int codes[] = { 201, 204, 301, 304, 404, 500, 503 };

	begin(_i);
	go();
	for (size_t k = 0; k < sizeof(codes) / sizeof(codes[0]); k++) {
		struct harness_resp r;
		char *path = harness_fmt("/status/%d", codes[k]);
		char *q = req("GET", path, "Connection: close\r\n");

		one(q, &r, 0);
		EXPECT(r.status == codes[k], "%.600s: status %d", path, r.status);
		EXPECT(r.body_len == 0, "%.600s: %zu body bytes", path, r.body_len);
		harness_resp_free(&r);
		free(q);
		free(path);
	}
	end();
}
END_TEST

/* ==== CONNECT ==== */

static void connect_tunnel(struct harness_conn *c, int port)
{
	struct harness_resp r;
	char *q = harness_fmt("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port, port);

	ck_assert_int_eq(harness_connect(c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(c, q), FERRY_OK);
	EXPECT(harness_read_response(c, &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "CONNECT: no response");
	EXPECT(r.status == 200, "CONNECT: status %d", r.status);
	EXPECT(strncmp(r.head, "HTTP/1.1 200 Connection established\r\n", 37) == 0,
	       "CONNECT: status line \"%.50s\"", r.head);
	harness_resp_free(&r);
	free(q);
}

START_TEST(connect_tunnel_echo)
{
	struct harness_conn c;
	char *in;
	size_t inlen;
	size_t big = 1 << 20;
	char *data = harness_pattern(big);

	begin(_i);
	go();
	connect_tunnel(&c, origin.echo_port);
	ck_assert_int_eq(harness_send_str(&c, "ping\n"), FERRY_OK);
	EXPECT(harness_read_atleast(&c, 5, HARNESS_TIMEOUT_MS) == 5, "tunnel: no echo");
	in = harness_take(&c, 5);
	EXPECT(strcmp(in, "ping\n") == 0, "tunnel echoed \"%.600s\"", in);
	free(in);
	/* 1 MiB both ways at once: only a real two-way relay gets through */
	EXPECT(harness_pump(&c, data, big, 0, big, &in, &inlen, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "tunnel: 1 MiB exchange stopped at %zu bytes back (err %d)", inlen, c.err);
	EXPECT(inlen == big && memcmp(in, data, big) == 0, "tunnel: 1 MiB echo differs");
	free(in);
	harness_close(&c);
	free(data);
	end();
}
END_TEST

START_TEST(connect_half_close)
{
	struct harness_conn c;
	char *in;
	size_t inlen;
	size_t n = 200000;
	char *data = harness_pattern(n);

	begin(_i);
	go();
	connect_tunnel(&c, origin.echo_port);
	/* send, shut down writing; the echo of all of it must still come back, then EOF */
	EXPECT(harness_pump(&c, data, n, 1, (size_t)-1, &in, &inlen, HARNESS_TIMEOUT_MS) ==
	       FERRY_OK, "half-close: got %zu of %zu bytes back, eof %d err %d", inlen, n, c.eof,
	       c.err);
	EXPECT(inlen == n && memcmp(in, data, n) == 0, "half-close: echo differs (%zu bytes)",
	       inlen);
	EXPECT(c.eof, "half-close: no clean EOF after the echo");
	free(in);
	harness_close(&c);
	free(data);
	end();
}
END_TEST

START_TEST(connect_port_not_allowed)
{
	struct harness_conn c;
	struct harness_resp r;
	/* the origin's HTTP port listens, but only the echo port is in connect_ports */
	char *q = NULL;

	begin(_i);
	go();
	q = harness_fmt("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", origin.port,
		origin.port);
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "CONNECT to a port not allowed: no response");
	EXPECT(r.status == 403, "CONNECT to a port not allowed: status %d", r.status);
	harness_resp_free(&r);
	harness_close(&c);
	EXPECT(origin_serial() == 1, "the origin was contacted for a denied CONNECT");
	free(q);
	end();
}
END_TEST

START_TEST(connect_refused_502)
{
	struct harness_resp r;
	int closed = harness_closed_port();
	char *ports;
	char *q;

	begin(_i);
	ports = harness_fmt("%d, %d", origin.echo_port, closed);
	harness_conf_set(&conf, "access", "connect_ports", ports);
	go();
	q = harness_fmt("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", closed, closed);
	one(q, &r, 0);
	EXPECT(r.status == 502, "CONNECT to a closed port: status %d, want 502", r.status);
	harness_resp_free(&r);
	free(q);
	free(ports);
	end();
}
END_TEST

/* ==== access and errors ==== */

START_TEST(client_not_allowed_403)
{
	struct harness_resp r;
	char *q;

	begin(_i);
	harness_conf_set(&conf, "access", "allow", "10.0.0.0/8");
	go();
	q = req("GET", "/conn", "");
	one(q, &r, 0);
	EXPECT(r.status == 403, "client outside allow: status %d, want 403", r.status);
	harness_resp_free(&r);
	/* "before anything else": the origin never heard of it (its first connection is ours) */
	EXPECT(origin_serial() == 1, "the origin was contacted for a client outside allow");
	free(q);
	end();
}
END_TEST

START_TEST(client_denied_403)
{
	struct harness_resp r;
	char *q;

	begin(_i);
	harness_conf_set(&conf, "access", "deny", "127.0.0.1/32");
	go();
	q = req("GET", "/conn", "");
	one(q, &r, 0);
	EXPECT(r.status == 403, "client in deny: status %d, want 403", r.status);
	harness_resp_free(&r);
	EXPECT(origin_serial() == 1, "the origin was contacted for a denied client");
	free(q);
	end();
}
END_TEST

static void expect_400s(const char *const *bad, size_t n, int status)
{
	for (size_t k = 0; k < n; k++) {
		struct harness_conn c;
		struct harness_resp r;
		char *q = harness_fmt(bad[k], origin.port, origin.port);
		char *what = harness_fmt("request #%zu \"%.60s\"", k, q);

		ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
		EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
		       "%.600s: no response (eof %d err %d)", what, c.eof, c.err);
		expect_closing_error(&c, &r, status, what);
		harness_resp_free(&r);
		harness_close(&c);
		free(what);
		free(q);
	}
}

START_TEST(malformed_request_400)
{
	/* each is formatted with the origin port twice (unused conversions are fine) */
	static const char *const bad[] = {
		"GARBAGE\r\n\r\n%d%d",
		"GET http://127.0.0.1:%d/len/1\r\nHost: 127.0.0.1:%d\r\n\r\n",
		"GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nNoColon\r\n\r\n",
		"GET http://127.0.0.1:%d/len/1 XTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
		"GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		"X-Ctl: a\001b\r\n\r\n",
	};

	begin(_i);
	go();
	expect_400s(bad, sizeof(bad) / sizeof(bad[0]), 400);
	EXPECT(origin_serial() == 1, "a malformed request reached the origin");
	end();
}
END_TEST

START_TEST(unreachable_origin_502)
{
	struct harness_conn c;
	struct harness_resp r;
	int closed = harness_closed_port();
	char *q;

	begin(_i);
	go();
	q = harness_fmt("GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", closed, closed);
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "unreachable origin: no response");
	expect_closing_error(&c, &r, 502, "unreachable origin");
	harness_resp_free(&r);
	harness_close(&c);
	free(q);
	end();
}
END_TEST

/* A connect that never completes, on loopback only: a listener with backlog 0 whose one
 * accept-queue slot we fill ourselves. Linux drops further SYNs while the queue is full, so
 * ferry's connect hangs until its connect timeout. */
START_TEST(connect_timeout_504)
{
	struct harness_conn filler, c;
	struct harness_resp r;
	int port;
	int lfd = harness_listen(0, 0, &port);
	char *q;

	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(harness_connect(&filler, port), FERRY_OK);
	begin(_i);
	harness_conf_set(&conf, "timeouts", "connect", "0.5");
	go();
	q = harness_fmt("GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port, port);
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "connect timeout: no response (err %d)", c.err);
	expect_closing_error(&c, &r, 504, "connect timeout");
	harness_resp_free(&r);
	harness_close(&c);
	harness_close(&filler);
	close(lfd);
	free(q);
	end();
}
END_TEST

/* ==== concurrency ==== */

START_TEST(processes_and_threads_concurrent)
{
	enum { N = 48 };
	struct harness_conn c[N];
	char *paths[N];

	begin(_i);
	harness_conf_set(&conf, "server", "processes", "2");
	harness_conf_set(&conf, "server", "threads", "2");
	go();
	/* all requests in flight at once, then all answers collected */
	for (int k = 0; k < N; k++) {
		paths[k] = k % 3 == 0 ? harness_fmt("/len/%d", 50000 + k)
			   : k % 3 == 1 ? harness_fmt("/chunked/%d", 30000 + k)
					: harness_fmt("/sleep/%d", 50);
		char *q = req("GET", paths[k], "Connection: close\r\n");

		EXPECT(harness_connect(&c[k], ferry.port) == FERRY_OK, "connect #%d", k);
		EXPECT(harness_send_str(&c[k], q) == FERRY_OK, "send #%d", k);
		free(q);
	}
	for (int k = 0; k < N; k++) {
		struct harness_resp r;

		EXPECT(harness_read_response(&c[k], &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
		       "%.600s: no response (err %d)", paths[k], c[k].err);
		EXPECT(r.status == 200 && r.complete, "%.600s: status %d complete %d", paths[k],
		       r.status, r.complete);
		if (k % 3 == 2)
			EXPECT(strcmp(r.body, "ok") == 0, "%.600s: body \"%.600s\"", paths[k], r.body);
		else
			EXPECT(r.body_len == (size_t)(k % 3 == 0 ? 50000 + k : 30000 + k) &&
			       is_pattern(r.body, r.body_len), "%.600s: body wrong (%zu bytes)",
			       paths[k], r.body_len);
		harness_resp_free(&r);
		harness_close(&c[k]);
		free(paths[k]);
	}
	end();
}
END_TEST

/* ==== issue 3 basics: keep-alive, pipelining, bodies, upstream pool, Via ==== */

START_TEST(client_keep_alive)
{
	struct harness_conn c;
	struct harness_resp r;
	char *q1, *q2;

	begin(_i);
	go();
	q1 = req("GET", "/len/10", "");
	q2 = req("GET", "/chunked/20", "Connection: close\r\n");
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q1), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
	       r.status == 200 && r.body_len == 10, "first request: status %d, %zu bytes",
	       r.status, r.body_len);
	EXPECT(!harness_resp_has_token(&r, "Connection", "close"),
	       "HTTP/1.1 client connection closed after one request");
	harness_resp_free(&r);
	ck_assert_int_eq(harness_send_str(&c, q2), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "second request on the same connection: no response (eof %d err %d)", c.eof,
	       c.err);
	EXPECT(r.status == 200 && r.body_len == 20 && is_pattern(r.body, 20),
	       "second request: status %d, %zu bytes", r.status, r.body_len);
	harness_resp_free(&r);
	harness_close(&c);
	free(q1);
	free(q2);
	end();
}
END_TEST

START_TEST(pipelined_in_order)
{
	static const char *const paths[] = { "/len/3", "/chunked/7", "/status/204", "/len/11",
					     "/close/5" };
	static const int lens[] = { 3, 7, 0, 11, 5 };
	const size_t n = sizeof(paths) / sizeof(paths[0]);
	struct harness_conn c;
	char *all = harness_fmt("%s", "");

	begin(_i);
	go();
	for (size_t k = 0; k < n; k++) {
		char *q = req("GET", paths[k], "");
		char *a = harness_fmt("%s%s", all, q);

		free(all);
		free(q);
		all = a;
	}
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, all), FERRY_OK); /* one write, all requests */
	for (size_t k = 0; k < n; k++) {
		struct harness_resp r;

		EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
		       "pipelined #%zu %.600s: no response (eof %d err %d)", k, paths[k], c.eof, c.err);
		EXPECT(r.status == (lens[k] ? 200 : 204) && r.body_len == (size_t)lens[k] &&
		       is_pattern(r.body, r.body_len),
		       "pipelined #%zu %.600s: status %d, %zu bytes (out of order?)", k, paths[k],
		       r.status, r.body_len);
		harness_resp_free(&r);
	}
	harness_close(&c);
	free(all);
	end();
}
END_TEST

static char *binary_body(size_t n)
{
	char *b = malloc(n + 1);

	for (size_t i = 0; i < n; i++)
		b[i] = (char)((i * 7919 + i / 251) & 0xff);
	b[n] = '\0';
	return b;
}

START_TEST(post_content_length_echo)
{
	struct harness_conn c;
	struct harness_resp r;
	size_t n = 300000;
	char *body = binary_body(n);
	char *extra = harness_fmt("Content-Length: %zu\r\nContent-Type: application/octet-stream\r\n"
			          "Connection: close\r\n", n);
	char *q;

	begin(_i);
	go();
	q = req("POST", "/echo", extra);
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	ck_assert_int_eq(harness_send(&c, body, n), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "POST: no response (eof %d err %d)", c.eof, c.err);
	EXPECT(r.status == 200 && r.complete, "POST: status %d", r.status);
	EXPECT(r.body_len == n && memcmp(r.body, body, n) == 0, "POST: echo differs (%zu bytes)",
	       r.body_len);
	harness_resp_free(&r);
	harness_close(&c);
	free(q);
	free(extra);
	free(body);
	end();
}
END_TEST

START_TEST(post_chunked_echo)
{
	struct harness_conn c;
	struct harness_resp r;
	static const size_t sizes[] = { 1, 100, 16384, 5, 70000 };
	char *body = binary_body(100000);
	size_t total = 0;
	char *q;

	begin(_i);
	go();
	q = req("POST", "/echo", "Transfer-Encoding: chunked\r\nConnection: close\r\n");
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		char *line = harness_fmt(k % 2 ? "%zX;ext=1\r\n" : "%zx\r\n", sizes[k]);

		ck_assert_int_eq(harness_send_str(&c, line), FERRY_OK);
		ck_assert_int_eq(harness_send(&c, body + total, sizes[k]), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c, "\r\n"), FERRY_OK);
		total += sizes[k];
		free(line);
	}
	ck_assert_int_eq(harness_send_str(&c, "0\r\n\r\n"), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "chunked POST: no response (eof %d err %d)", c.eof, c.err);
	EXPECT(r.status == 200 && r.complete, "chunked POST: status %d", r.status);
	EXPECT(r.body_len == total && memcmp(r.body, body, total) == 0,
	       "chunked POST: echo differs (%zu of %zu bytes)", r.body_len, total);
	harness_resp_free(&r);
	harness_close(&c);
	free(q);
	free(body);
	end();
}
END_TEST

START_TEST(upstream_connection_reused)
{
	struct harness_conn c;
	struct harness_resp r;
	unsigned long s1 = 0, n1 = 0, s2 = 0, n2 = 0;
	char *q;

	begin(_i);
	go();
	q = req("GET", "/conn", "");
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
	       sscanf(r.body, "%lu %lu", &s1, &n1) == 2, "first /conn failed (status %d)",
	       r.status);
	harness_resp_free(&r);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
	       sscanf(r.body, "%lu %lu", &s2, &n2) == 2, "second /conn failed (status %d)",
	       r.status);
	harness_resp_free(&r);
	EXPECT(s1 == s2 && n1 == 1 && n2 == 2,
	       "origin connection not reused: \"%lu %lu\" then \"%lu %lu\"", s1, n1, s2, n2);
	harness_close(&c);
	free(q);
	end();
}
END_TEST

/* A long body goes origin -> pipe -> client with splice(2), exactly Content-Length bytes: the
 * body arrives whole and the origin connection is reused for the next request. */
START_TEST(long_body_then_reuse)
{
	static const size_t sizes[] = { 65536 + 4096, 300000, 2000000 };
	struct harness_conn c;
	struct harness_resp r;
	unsigned long s1 = 0, n1 = 0, s2 = 0, n2 = 0;
	char *qc;

	begin(_i);
	harness_conf_set(&conf, "server", "threads", "1");
	go();
	qc = req("GET", "/conn", "");
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, qc), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
	       sscanf(r.body, "%lu %lu", &s1, &n1) == 2, "first /conn failed (status %d)", r.status);
	harness_resp_free(&r);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		char *path = harness_fmt("/len/%zu", sizes[k]);
		char *q = req("GET", path, "");

		ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
		EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
		       r.status == 200 && r.complete && r.body_len == sizes[k] &&
		       is_pattern(r.body, r.body_len),
		       "%s: status %d complete %d, %zu bytes", path, r.status, r.complete, r.body_len);
		harness_resp_free(&r);
		free(q);
		free(path);
	}
	ck_assert_int_eq(harness_send_str(&c, qc), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
	       sscanf(r.body, "%lu %lu", &s2, &n2) == 2, "last /conn failed (status %d)", r.status);
	harness_resp_free(&r);
	EXPECT(s1 == s2 && n1 == 1 && n2 == 5,
	       "origin connection not reused across long bodies: \"%lu %lu\" then \"%lu %lu\"", s1,
	       n1, s2, n2);
	harness_close(&c);
	free(qc);
	end();
}
END_TEST

START_TEST(upstream_pool_across_clients)
{
	struct harness_resp r;
	unsigned long s1 = 0, n1 = 0, s2 = 0, n2 = 0;
	char *q;

	begin(_i);
	harness_conf_set(&conf, "server", "threads", "1"); /* one worker, one pool */
	go();
	q = req("GET", "/conn", "Connection: close\r\n");
	one(q, &r, 0);
	EXPECT(sscanf(r.body, "%lu %lu", &s1, &n1) == 2, "first /conn: status %d", r.status);
	harness_resp_free(&r);
	one(q, &r, 0);
	EXPECT(sscanf(r.body, "%lu %lu", &s2, &n2) == 2, "second /conn: status %d", r.status);
	harness_resp_free(&r);
	EXPECT(s1 == s2 && n2 == n1 + 1,
	       "idle origin connection not pooled across clients: \"%lu %lu\" then \"%lu %lu\"",
	       s1, n1, s2, n2);
	free(q);
	end();
}
END_TEST

START_TEST(via_added)
{
	struct harness_resp r;
	char *q;

	begin(_i);
	go();
	q = req("GET", "/headers", "Connection: close\r\n");
	one(q, &r, 0);
	EXPECT(r.status == 200 && strcasestr(r.body, "\r\nVia: 1.1 ") != NULL,
	       "no \"Via: 1.1 NAME\" in the forwarded request: \"%.600s\"", r.body);
	harness_resp_free(&r);
	free(q);

	/* a Via from another hop is kept and ours appended */
	q = req("GET", "/headers", "Via: 1.0 upstream-proxy\r\nConnection: close\r\n");
	one(q, &r, 0);
	EXPECT(r.status == 200 && strstr(r.body, "1.0 upstream-proxy") != NULL &&
	       strcasestr(r.body, "1.1 ") != NULL, "existing Via not kept and extended: \"%.600s\"",
	       r.body);
	harness_resp_free(&r);
	free(q);

	/* Via names the version of the message ferry received (RFC 9110 section 7.6.3), as Squid
	 * does: an HTTP/1.0 request goes on as 1.1 with "Via: 1.0 NAME", and an HTTP/1.0
	 * response gets "Via: 1.0 NAME" too */
	q = harness_fmt("GET http://127.0.0.1:%d/headers HTTP/1.0\r\n\r\n", origin.port);
	one(q, &r, 0);
	EXPECT(r.status == 200 && strstr(r.body, "\r\nVia: 1.0 ") != NULL &&
	       strstr(r.body, "\r\nVia: 1.1 ") == NULL, "HTTP/1.0 request: \"%.600s\"", r.body);
	harness_resp_free(&r);
	free(q);
	q = req("GET", "/raw/http10", "Connection: close\r\n");
	one(q, &r, 0);
	const char *via = harness_resp_header(&r, "Via");
	EXPECT(r.status == 200 && via != NULL && strncmp(via, "1.0 ", 4) == 0,
	       "HTTP/1.0 response: \"%.600s\"", r.head);
	harness_resp_free(&r);
	free(q);
	end();
}
END_TEST

START_TEST(via_loop_508)
{
	struct harness_resp r;
	char *q;

	begin(_i);
	harness_conf_set(&conf, "server", "via_name", "ferry-e2e-loop");
	go();
	q = req("GET", "/conn", "Via: 1.1 ferry-e2e-loop\r\n");
	one(q, &r, 0);
	EXPECT(r.status == 508, "request already through this instance: status %d, want 508",
	       r.status);
	harness_resp_free(&r);
	EXPECT(origin_serial() == 1, "a looping request reached the origin");
	free(q);
	end();
}
END_TEST

START_TEST(hop_by_hop_removed)
{
	struct harness_resp r;
	char *q;
	static const char *const gone[] = { "\r\nX-Hop:", "\r\nKeep-Alive:", "\r\nTE:",
					    "\r\nTrailer:", "\r\nUpgrade:", "\r\nProxy-Connection:",
					    "\r\nProxy-Authorization:" };

	begin(_i);
	go();
	q = req("GET", "/headers", "Connection: X-Hop, close\r\nX-Hop: 1\r\nKeep-Alive: 300\r\n"
		"TE: trailers\r\nTrailer: X-T\r\nUpgrade: foo/1\r\nProxy-Connection: close\r\n"
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\nX-End: kept\r\n");
	one(q, &r, 0);
	EXPECT(r.status == 200, "status %d", r.status);
	for (size_t k = 0; k < sizeof(gone) / sizeof(gone[0]); k++)
		EXPECT(strcasestr(r.body, gone[k]) == NULL, "hop-by-hop \"%.600s\" forwarded: \"%.600s\"",
		       gone[k] + 2, r.body);
	EXPECT(strstr(r.body, "\r\nX-End: kept\r\n") != NULL, "end-to-end field lost: \"%.600s\"",
	       r.body);
	harness_resp_free(&r);
	free(q);
	end();
}
END_TEST

START_TEST(all_methods_forwarded)
{
	static const char *const methods[] = { "PUT", "PATCH", "DELETE", "OPTIONS", "BREW" };

	begin(_i);
	go();
	for (size_t k = 0; k < sizeof(methods) / sizeof(methods[0]); k++) {
		struct harness_resp r;
		char *q = req(methods[k], "/headers", "Content-Length: 0\r\nConnection: close\r\n");
		char *line = harness_fmt("%s /headers HTTP/1.1\r\n", methods[k]);

		one(q, &r, 0);
		EXPECT(r.status == 200 && strncmp(r.body, line, strlen(line)) == 0,
		       "%.600s: status %d, origin saw \"%.40s\"", methods[k], r.status, r.body);
		harness_resp_free(&r);
		free(line);
		free(q);
	}
	end();
}
END_TEST

START_TEST(origin_form_and_userinfo_400)
{
	static const char *const bad[] = {
		"GET /len/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n%d",
		"GET http://user:pw@127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
	};

	begin(_i);
	go();
	expect_400s(bad, sizeof(bad) / sizeof(bad[0]), 400);
	EXPECT(origin_serial() == 1, "a rejected request reached the origin");
	end();
}
END_TEST

START_TEST(request_framing_400)
{
	static const char *const bad[] = {
		"POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		"Content-Length: 5x\r\n\r\nhello",
		"POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		"Transfer-Encoding: gzip\r\n\r\nhello",
		"POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		"Transfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		"X-Fold: a\r\n b\r\n\r\n",
		"GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		"X-Space : a\r\n\r\n",
		"GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		"X-Cr: a\rb\r\n\r\n",
		"GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		"Bad Name: a\r\n\r\n",
		"POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
		"POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		"Transfer-Encoding: chunked\r\n\r\n10000000000000000001\r\nhello\r\n0\r\n\r\n",
	};

	begin(_i);
	go();
	/* Chunk errors are found after the head was forwarded; the client must still get a
	 * 400 or at least never a 200 that pretends the request went through whole. The head
	 * errors above them must be 400. */
	expect_400s(bad, 9, 400);
	for (size_t k = 9; k < sizeof(bad) / sizeof(bad[0]); k++) {
		struct harness_resp r;
		char *q = harness_fmt(bad[k], origin.port, origin.port);

		if (harness_request(ferry.port, q, &r, 0) == FERRY_OK)
			EXPECT(r.status == 400 || r.status == 502,
			       "bad chunk #%zu: status %d, want 400", k, r.status);
		harness_resp_free(&r);
		free(q);
	}
	end();
}
END_TEST

START_TEST(response_framing_502)
{
	/* each of these heads is ambiguous or broken: the client must get a 502, never it */
	static const char *const raws[] = { "cl_te", "double_cl", "cl_bad", "obs_fold",
					    "space_colon", "nul_field", "bare_cr", "te_gzip",
					    "te_chunked_gzip", "bad_status", "not_http",
					    "reset_head", "huge_head" };

	begin(_i);
	go();
	for (size_t k = 0; k < sizeof(raws) / sizeof(raws[0]); k++) {
		struct harness_resp r;
		char *path = harness_fmt("/raw/%s", raws[k]);
		char *q = req("GET", path, "Connection: close\r\n");

		one(q, &r, 0);
		EXPECT(r.status == 502, "%.600s: status %d, want 502", path, r.status);
		harness_resp_free(&r);
		free(q);
		free(path);
	}
	end();
}
END_TEST

START_TEST(response_truncated_never_clean)
{
	static const char *const raws[] = { "reset_body", "bad_chunk", "chunk_overflow" };

	begin(_i);
	go();
	for (size_t k = 0; k < sizeof(raws) / sizeof(raws[0]); k++) {
		struct harness_resp r;
		char *path = harness_fmt("/raw/%s", raws[k]);
		char *q = req("GET", path, "");

		/* keep-alive asked for: a clean end would have to be a complete body */
		if (harness_request(ferry.port, q, &r, 0) == FERRY_OK)
			EXPECT(r.status == 502 || (r.status == 200 && !r.complete),
			       "%.600s: status %d, complete %d: a broken body looked whole", path,
			       r.status, r.complete);
		harness_resp_free(&r);
		free(q);
		free(path);
	}
	end();
}
END_TEST

START_TEST(http10_client_gets_close_delimited)
{
	struct harness_resp r;
	char *q;

	begin(_i);
	go();
	q = harness_fmt("GET http://127.0.0.1:%d/chunked/5000 HTTP/1.0\r\n\r\n", origin.port);
	one(q, &r, 0);
	EXPECT(r.status == 200, "status %d", r.status);
	EXPECT(!harness_resp_has_token(&r, "Transfer-Encoding", "chunked"),
	       "chunked sent to an HTTP/1.0 client");
	EXPECT(r.complete && r.body_len == 5000 && is_pattern(r.body, 5000),
	       "HTTP/1.0 client: body wrong (%zu bytes, complete %d)", r.body_len, r.complete);
	harness_resp_free(&r);
	free(q);
	end();
}
END_TEST

START_TEST(informational_relayed)
{
	struct harness_conn c;
	struct harness_resp r;
	char *q;

	begin(_i);
	go();
	q = req("GET", "/raw/continue", "");
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "1xx: no response");
	EXPECT(r.status == 100, "1xx not relayed: first status %d", r.status);
	harness_resp_free(&r);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
	       r.status == 200 && strcmp(r.body, "ok") == 0,
	       "final response after 1xx: status %d body \"%.600s\"", r.status, r.body);
	harness_resp_free(&r);
	harness_close(&c);
	free(q);
	end();
}
END_TEST

START_TEST(expect_100_continue)
{
	struct harness_conn c;
	struct harness_resp r;
	char *q;

	begin(_i);
	go();
	q = req("POST", "/echo", "Content-Length: 5\r\nExpect: 100-continue\r\n");
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	/* the body is held back until the interim answer arrives */
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
	       r.status == 100, "Expect: 100-continue: first answer %d, want 100", r.status);
	harness_resp_free(&r);
	ck_assert_int_eq(harness_send_str(&c, "hello"), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
	       r.status == 200 && strcmp(r.body, "hello") == 0,
	       "after 100-continue: status %d body \"%.600s\"", r.status, r.body);
	harness_resp_free(&r);
	harness_close(&c);
	free(q);
	end();
}
END_TEST

START_TEST(tunnel_idle_closes)
{
	struct harness_conn c;
	size_t n;
	char *rest;

	begin(_i);
	harness_conf_set(&conf, "timeouts", "tunnel_idle", "0.5");
	go();
	connect_tunnel(&c, origin.echo_port);
	ck_assert_int_eq(harness_send_str(&c, "x"), FERRY_OK);
	EXPECT(harness_read_atleast(&c, 1, HARNESS_TIMEOUT_MS) == 1, "tunnel: no echo");
	free(harness_take(&c, 1));
	/* then silence: ferry must end the tunnel (the read below only guards a hang) */
	rest = harness_read_to_close(&c, &n, HARNESS_TIMEOUT_MS);
	EXPECT(c.eof || c.err == ECONNRESET, "idle tunnel not closed at tunnel_idle (err %d)",
	       c.err);
	EXPECT(n == 0, "idle tunnel: %zu unexpected bytes", n);
	free(rest);
	harness_close(&c);
	end();
}
END_TEST

START_TEST(request_header_deadline)
{
	struct harness_conn c;
	size_t n;
	char *rest;
	char *q;

	begin(_i);
	harness_conf_set(&conf, "timeouts", "request_header", "0.5");
	go();
	/* a head that never ends (slowloris) */
	q = harness_fmt("GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", origin.port,
		origin.port);
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	rest = harness_read_to_close(&c, &n, HARNESS_TIMEOUT_MS);
	EXPECT(c.eof || c.err == ECONNRESET, "unfinished head not cut at request_header (err %d)",
	       c.err);
	EXPECT(n == 0 || strncmp(rest, "HTTP/1.1 408 ", 13) == 0,
	       "unfinished head: answered \"%.40s\", want nothing or 408", rest);
	free(rest);
	harness_close(&c);
	EXPECT(origin_serial() == 1, "an unfinished head reached the origin");
	free(q);
	end();
}
END_TEST

/* localhost comes from /etc/hosts (no DNS server is needed or used) */
START_TEST(hostname_from_hosts_file)
{
	struct harness_resp r;
	char *q;

	begin(_i);
	harness_conf_set(&conf, "timeouts", "dns", "2");
	go();
	q = harness_fmt("GET http://localhost:%d/headers HTTP/1.1\r\nHost: localhost:%d\r\n"
		"Connection: close\r\n\r\n", origin.port, origin.port);
	one(q, &r, 0);
	EXPECT(r.status == 200, "http://localhost: status %d", r.status);
	free(q);
	q = harness_fmt("\r\nHost: localhost:%d\r\n", origin.port);
	EXPECT(strstr(r.body, q) != NULL, "Host for a name target: \"%.600s\"", r.body);
	harness_resp_free(&r);
	free(q);
	end();
}
END_TEST

START_TEST(error_bodies_text_plain)
{
	struct harness_resp r;
	int closed = harness_closed_port();
	char *q;

	begin(_i);
	go();
	q = harness_fmt("GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", closed, closed);
	one(q, &r, 0);
	EXPECT(r.status == 502, "status %d", r.status);
	EXPECT(harness_resp_header(&r, "Content-Type") &&
	       strncasecmp(harness_resp_header(&r, "Content-Type"), "text/plain", 10) == 0,
	       "error without Content-Type: text/plain");
	EXPECT(r.body_len > 0, "error without a body naming the problem");
	for (size_t k = 0; k < r.body_len; k++)
		EXPECT((r.body[k] >= 0x20 && r.body[k] < 0x7f) || r.body[k] == '\n' ||
		       r.body[k] == '\r' || r.body[k] == '\t',
		       "error body holds byte 0x%02x at %zu", (unsigned char)r.body[k], k);
	harness_resp_free(&r);
	free(q);
	end();
}
END_TEST

START_TEST(limits_414_431)
{
	struct harness_conn c;
	struct harness_resp r;
	char *longpath = harness_pattern(300);
	char *q, *fields = harness_fmt("%s", ""), *big = harness_pattern(3000);

	begin(_i);
	harness_conf_set(&conf, "limits", "request_line", "128");
	harness_conf_set(&conf, "limits", "header_fields", "10");
	harness_conf_set(&conf, "limits", "request_header_size", "2048");
	go();
	longpath[0] = '/';
	q = req("GET", longpath, "");
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "long request line: no response");
	expect_closing_error(&c, &r, 414, "request line over request_line");
	harness_resp_free(&r);
	harness_close(&c);
	free(q);

	for (int k = 0; k < 20; k++) {
		char *f = harness_fmt("%sX-F%d: %d\r\n", fields, k, k);

		free(fields);
		fields = f;
	}
	q = req("GET", "/len/1", fields);
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "too many fields: no response");
	expect_closing_error(&c, &r, 431, "fields over header_fields");
	harness_resp_free(&r);
	harness_close(&c);
	free(q);

	free(fields);
	fields = harness_fmt("Cookie: %s\r\n", big);
	q = req("GET", "/len/1", fields);
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "head too large: no response");
	expect_closing_error(&c, &r, 431, "head over request_header_size");
	harness_resp_free(&r);
	harness_close(&c);
	free(q);
	EXPECT(origin_serial() == 1, "an oversized request reached the origin");
	free(fields);
	free(big);
	free(longpath);
	end();
}
END_TEST

START_TEST(https_target_501)
{
	struct harness_resp r;
	char *q;

	begin(_i);
	go();
	q = harness_fmt("GET https://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", origin.port,
		origin.port);
	one(q, &r, 0);
	EXPECT(r.status == 501, "https:// target: status %d, want 501", r.status);
	harness_resp_free(&r);
	free(q);
	end();
}
END_TEST

START_TEST(max_forwards)
{
	struct harness_resp r;
	char *q;

	begin(_i);
	go();
	q = req("OPTIONS", "/headers", "Max-Forwards: 0\r\nConnection: close\r\n");
	one(q, &r, 0);
	EXPECT(r.status == 200, "OPTIONS Max-Forwards 0: status %d, want ferry's own 200",
	       r.status);
	harness_resp_free(&r);
	free(q);
	q = req("TRACE", "/headers", "Max-Forwards: 0\r\nConnection: close\r\n");
	one(q, &r, 0);
	EXPECT(r.status == 200 && strncmp(r.body, "TRACE ", 6) == 0,
	       "TRACE Max-Forwards 0: status %d body \"%.40s\"", r.status, r.body);
	harness_resp_free(&r);
	free(q);
	EXPECT(origin_serial() == 1, "Max-Forwards: 0 reached the origin");
	q = req("OPTIONS", "/headers", "Max-Forwards: 3\r\nConnection: close\r\n");
	one(q, &r, 0);
	EXPECT(r.status == 200 && strcasestr(r.body, "\r\nMax-Forwards: 2\r\n") != NULL,
	       "OPTIONS Max-Forwards 3: not forwarded with 2: \"%.600s\"", r.body);
	harness_resp_free(&r);
	free(q);
	end();
}
END_TEST

/* "OPTIONS http://host:port" (no path) asks about the server: the origin gets the
 * asterisk-form; with a path it gets the path (RFC 9112 section 3.2.4). */
START_TEST(options_asterisk_form)
{
	struct harness_resp r;
	char q[256];

	begin(_i);
	go();
	snprintf(q, sizeof(q), "OPTIONS http://127.0.0.1:%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		 origin.port);
	one(q, &r, 0);
	EXPECT(r.status == 200 && r.body && strncmp(r.body, "OPTIONS * HTTP/1.1\r\n", 20) == 0,
	       "OPTIONS without a path: status %d, the origin got \"%.60s\"", r.status,
	       r.body ? r.body : "");
	harness_resp_free(&r);
	snprintf(q, sizeof(q), "OPTIONS http://127.0.0.1:%d/headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		 origin.port);
	one(q, &r, 0);
	EXPECT(r.status == 200 && r.body && strncmp(r.body, "OPTIONS /headers HTTP/1.1\r\n", 27) == 0,
	       "OPTIONS with a path: status %d, the origin got \"%.60s\"", r.status, r.body ? r.body : "");
	harness_resp_free(&r);
	snprintf(q, sizeof(q), "GET http://127.0.0.1:%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		 origin.port);
	one(q, &r, 0);
	EXPECT(r.status == 404, "GET without a path went to \"/\" (the origin has no \"/\"): status %d",
	       r.status);
	harness_resp_free(&r);
	end();
}
END_TEST

/* ==== suite ==== */

struct test_entry {
	const char *tcase;
	const TTest *const *fn;
	int looped;           /* once per multiplexer */
};

#define T(tc, name, looped) { tc, &name, looped }
static const struct test_entry tests[] = {
	T("cli", cli_version, 0),
	T("cli", cli_help, 0),
	T("cli", cli_long_options, 0),
	T("cli", cli_bad_option, 0),
	T("cli", cli_check_valid, 0),
	T("cli", cli_check_invalid, 0),
	T("cli", cli_check_out_of_range, 0),
	T("cli", cli_missing_config, 0),
	T("cli", cli_port_in_use, 0),
	T("lifecycle", sigterm_exits_zero, 1),
	T("forward", get_rewritten_to_origin_form, 1),
	T("forward", head_has_no_body, 1),
	T("forward", relay_content_length, 1),
	T("forward", relay_chunked, 1),
	T("forward", relay_close_delimited, 1),
	T("forward", relay_status_codes, 1),
	T("forward", options_asterisk_form, 1),
	T("tunnel", connect_tunnel_echo, 1),
	T("tunnel", connect_half_close, 1),
	T("tunnel", connect_port_not_allowed, 1),
	T("tunnel", connect_refused_502, 1),
	T("tunnel", tunnel_idle_closes, 1),
	T("errors", client_not_allowed_403, 1),
	T("errors", client_denied_403, 1),
	T("errors", malformed_request_400, 1),
	T("errors", unreachable_origin_502, 1),
	T("errors", connect_timeout_504, 1),
	T("errors", request_header_deadline, 1),
	T("concurrency", processes_and_threads_concurrent, 1),
	T("http11", client_keep_alive, 1),
	T("http11", pipelined_in_order, 1),
	T("http11", post_content_length_echo, 1),
	T("http11", post_chunked_echo, 1),
	T("http11", upstream_connection_reused, 1),
	T("http11", long_body_then_reuse, 1),
	T("http11", upstream_pool_across_clients, 1),
	T("http11", via_added, 1),
	T("http11", via_loop_508, 1),
	T("http11", hop_by_hop_removed, 1),
	T("http11", all_methods_forwarded, 1),
	T("http11", origin_form_and_userinfo_400, 1),
	T("http11", request_framing_400, 1),
	T("http11", response_framing_502, 1),
	T("http11", response_truncated_never_clean, 1),
	T("http11", http10_client_gets_close_delimited, 1),
	T("http11", informational_relayed, 1),
	T("http11", expect_100_continue, 1),
	T("http11", hostname_from_hosts_file, 1),
	T("http11", error_bodies_text_plain, 1),
	T("http11", limits_414_431, 1),
	T("http11", https_target_501, 1),
	T("http11", max_forwards, 1),
};

static Suite *e2e_suite(void)
{
	Suite *s = suite_create("e2e");
	const char *only = getenv("FERRY_E2E_MUX");
	int lo = 0, hi = 2;
	TCase *tc = NULL;
	const char *cur = "";

	if (only && strcmp(only, "poll") == 0)
		hi = 1;
	else if (only && strcmp(only, "epoll") == 0)
		lo = 1;
	for (size_t k = 0; k < sizeof(tests) / sizeof(tests[0]); k++) {
		if (strcmp(cur, tests[k].tcase) != 0) {
			cur = tests[k].tcase;
			tc = tcase_create(cur);
			tcase_add_checked_fixture(tc, NULL, teardown);
			/* a hang guard only: each test takes well under a second */
			tcase_set_timeout(tc, 60);
			suite_add_tcase(s, tc);
		}
		if (tests[k].looped)
			tcase_add_loop_test(tc, *tests[k].fn, lo, hi);
		else
			tcase_add_test(tc, *tests[k].fn);
	}
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(e2e_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
