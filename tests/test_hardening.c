/* test_hardening.c - issue 4 end to end: hostile input, abuse and origin faults against the
 * real src/ferry, with tests/origin or a listener in this process standing in as the origin.
 *
 * What each test proves is in the comment above it. Every looped test runs once per
 * multiplexer (iteration 0: poll, 1: epoll); FERRY_E2E_MUX=poll|epoll runs only one.
 * FERRY_SLOWLORIS_N sets the number of slow clients (default 200; the issue asks for 1,000,
 * which takes the same time but more file descriptors).
 *
 * Time: every wait is bounded by a generous hang guard. The only timing assertions are
 * "not before" (a deadline did not fire early; a load only makes things later) and the
 * promptness of a normal request next to abusive clients, with a bound (1 s) hundreds of
 * times what it needs. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "status.h"

static const char *const muxes[] = { "poll", "epoll" };

static struct harness_origin origin;
static struct harness_ferry ferry;
static struct harness_conf conf;

/* ---- common helpers (the same shape as test_e2e.c) ---- */

static void teardown(void)
{
	harness_cleanup();
}

#define EXPECT(cond, ...) HARNESS_EXPECT(&ferry, cond, __VA_ARGS__)

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

/* Stop ferry and the origin. ferry must exit 0 on SIGTERM and its log must hold no
 * sanitizer report (with --enable-sanitizers, a report in ferry would otherwise pass
 * unnoticed: the master restarts a child that dies). */
static void end(void)
{
	char *log = NULL;
	int code = harness_ferry_stop_log(&ferry, &log);
	const char *san = harness_sanitizer_report(log);
	harness_origin_stop(&origin);
	if (san)
		fprintf(stderr, "---- sanitizer report in ferry's log ----\n%s\n----\n",
			san - log > 2000 ? san - 2000 : log);
	ck_assert_msg(san == NULL, "ferry's log holds a sanitizer report: %.300s", san);
	ck_assert_msg(code == 0, "ferry exited with %d after SIGTERM, want 0", code);
	free(log);
}

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

/* Ask the origin directly which connection serial it is at. */
static unsigned long origin_serial(void)
{
	struct harness_resp r;
	unsigned long serial = 0;

	ck_assert_int_eq(harness_request(origin.port,
					 "GET /conn HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
					 &r, 0), FERRY_OK);
	ck_assert_int_eq(sscanf(r.body, "%lu", &serial), 1);
	harness_resp_free(&r);
	return serial;
}

/* A normal request through ferry still works (ferry survived what came before). */
static void expect_alive(const char *after)
{
	struct harness_resp r;
	char *q = req("GET", "/len/100", "Connection: close\r\n");

	EXPECT(harness_request(ferry.port, q, &r, 0) == FERRY_OK && r.status == 200 &&
	       r.complete && r.body_len == 100 && is_pattern(r.body, 100),
	       "after %s: a normal request failed (status %d)", after, r.status);
	harness_resp_free(&r);
	free(q);
}

/* Printable excerpt of bytes for messages: at most 80 bytes, escapes for the rest. */
static const char *show(const char *p, size_t n)
{
	static char out[4][400];
	static int k;
	char *o = out[k++ % 4];
	size_t j = 0;

	for (size_t i = 0; i < n && i < 80 && j + 5 < sizeof(out[0]); i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == '\r')
			j += (size_t)snprintf(o + j, sizeof(out[0]) - j, "\\r");
		else if (ch == '\n')
			j += (size_t)snprintf(o + j, sizeof(out[0]) - j, "\\n");
		else if (ch < 0x20 || ch >= 0x7f)
			j += (size_t)snprintf(o + j, sizeof(out[0]) - j, "\\x%02x", ch);
		else
			o[j++] = (char)ch;
	}
	if (n > 80)
		j += (size_t)snprintf(o + j, sizeof(out[0]) - j, "...");
	o[j] = '\0';
	return o;
}

/* Replace every "@P" in text (which may hold NULs) by port. malloc'd, *outlen its size. */
static char *with_port(const char *text, size_t len, int port, size_t *outlen)
{
	char num[16];
	int nl = snprintf(num, sizeof(num), "%d", port);
	char *o = malloc(len * 3 + 1);
	size_t j = 0;

	ck_assert_ptr_nonnull(o);
	for (size_t i = 0; i < len; i++) {
		if (text[i] == '@' && i + 1 < len && text[i + 1] == 'P') {
			memcpy(o + j, num, (size_t)nl);
			j += (size_t)nl;
			i++;
		} else {
			o[j++] = text[i];
		}
	}
	o[j] = '\0';
	*outlen = j;
	return o;
}

/* ---- a listener in this process as the origin: sees exactly what ferry sends ---- */


/* Does a head (as text) hold a field line "name: value" (name case-insensitive, value exact
 * once trimmed)? */
static int head_has_field(const char *head, size_t n, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	const char *p = head, *end = head + n;

	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);

		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1, *ve = eol;

			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			if ((size_t)(ve - v) == vl && memcmp(v, value, vl) == 0)
				return 1;
		}
		p = eol + 2;
	}
	return 0;
}

/* How many field lines of a head carry this name. */
static int head_count_field(const char *head, size_t n, const char *name)
{
	size_t nl = strlen(name);
	const char *p = head, *end = head + n;
	int count = 0;

	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);

		if (!eol)
			eol = end;
		count += (size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':';
		p = eol + 2;
	}
	return count;
}

/* ==== request shapes that must be refused before anything reaches the origin ==== */

struct shape {
	int status;           /* what the client must get */
	int alt;              /* another acceptable status, or 0 */
	const char *name;
	const char *text;     /* "@P" stands for the origin's port; may hold NULs */
	size_t len;
};

#define SHAPE(st, alt, name, lit) { st, alt, name, lit, sizeof(lit) - 1 }
#define RL(m, path) m " http://127.0.0.1:@P" path " HTTP/1.1\r\nHost: 127.0.0.1:@P\r\n"
#define POST RL("POST", "/echo")
#define GET RL("GET", "/len/1")
#define CHUNKED_BODY "5\r\nhello\r\n0\r\n\r\n"

/* The TLS ClientHello a browser sends first when it talks TLS to the plain port (sizes and
 * random bytes abridged; the shape of the first bytes is what matters). No LF in it: a parser
 * that waits for the end of a line would wait for ever. */
#define CLIENT_HELLO                                                                        \
	"\x16\x03\x01\x00\xc4\x01\x00\x00\xc0\x03\x03\x5a\x1f\x88\x03\x97\x3e\xd1\x22\x4f\x00" \
	"\x8c\x11\x20\x9b\xe4\x33\x71\x02\xbb\x90\x2d\x6e\x44\x18\x7c\xa5\x3f\x77\x0c\x91\x20" \
	"\x41\x42\x43\x44\x45\x46\x47\x48\x49\x4b\x4c\x4d\x4e\x4f\x50\x51\x52\x53\x54\x55\x56" \
	"\x57\x58\x59\x5b\x5c\x5d\x5e\x5f\x60\x61\x62\x00\x20\x13\x01\x13\x02\x13\x03\xc0\x2b" \
	"\xc0\x2f\xc0\x2c\xc0\x30\xcc\xa9\xcc\xa8\xc0\x13\xc0\x14\x00\x9c\x00\x9d\x00\x2f\x00" \
	"\x35\x01\x00\x00\x57\x00\x00\x00\x0e\x00\x0c\x00\x00\x09\x6c\x6f\x63\x61\x6c\x68\x6f" \
	"\x73\x74\x00\x17\x00\x00\xff\x01\x00\x01\x00"

static const struct shape request_shapes[] = {
	/* Content-Length */
	SHAPE(400, 0, "CL list of different values", POST "Content-Length: 5, 6\r\n\r\nhello!"),
	SHAPE(400, 0, "CL list with an empty element", POST "Content-Length: 5,\r\n\r\nhello"),
	SHAPE(400, 0, "CL list starting empty", POST "Content-Length: , 5\r\n\r\nhello"),
	SHAPE(400, 0, "CL signed +", POST "Content-Length: +5\r\n\r\nhello"),
	SHAPE(400, 0, "CL signed -", POST "Content-Length: -5\r\n\r\nhello"),
	SHAPE(400, 0, "CL hex", POST "Content-Length: 0x5\r\n\r\nhello"),
	SHAPE(400, 0, "CL empty", POST "Content-Length: \r\n\r\nhello"),
	SHAPE(400, 0, "CL empty, no space", POST "Content-Length:\r\n\r\nhello"),
	SHAPE(400, 0, "CL with _", POST "Content-Length: 0_5\r\n\r\nhello"),
	SHAPE(400, 0, "CL 20 digits (leading zeros)",
	      POST "Content-Length: 00000000000000000005\r\n\r\nhello"),
	SHAPE(400, 0, "CL 20 digits (2^64 + 5 wraps to 5)",
	      POST "Content-Length: 18446744073709551621\r\n\r\nhello"),
	SHAPE(400, 0, "CL 25 digits", POST "Content-Length: 1000000000000000000000005\r\n\r\nhello"),
	SHAPE(400, 0, "CL vertical tab after", POST "Content-Length: 5\v\r\n\r\nhello"),
	SHAPE(400, 0, "CL vertical tab before", POST "Content-Length: \v5\r\n\r\nhello"),
	SHAPE(400, 0, "CL decimal point", POST "Content-Length: 5.0\r\n\r\nhello"),
	SHAPE(400, 0, "CL two numbers", POST "Content-Length: 5 5\r\n\r\nhello"),
	SHAPE(400, 0, "CL in two lines, one a list",
	      POST "Content-Length: 5\r\nContent-Length: 5, 6\r\n\r\nhello!"),
	/* Transfer-Encoding */
	SHAPE(501, 400, "TE xchunked", POST "Transfer-Encoding: xchunked\r\n\r\n" CHUNKED_BODY),
	SHAPE(400, 0, "TE chunked, chunked",
	      POST "Transfer-Encoding: chunked, chunked\r\n\r\n" CHUNKED_BODY),
	SHAPE(400, 0, "TE quoted", POST "Transfer-Encoding: \"chunked\"\r\n\r\n" CHUNKED_BODY),
	SHAPE(400, 0, "TE with a control byte",
	      POST "Transfer-Encoding: chunked\x01\r\n\r\n" CHUNKED_BODY),
	SHAPE(400, 0, "TE with a vertical tab",
	      POST "Transfer-Encoding: \vchunked\r\n\r\n" CHUNKED_BODY),
	SHAPE(400, 0, "TE with NUL", POST "Transfer-Encoding: chunked\0\r\n\r\n" CHUNKED_BODY),
	SHAPE(400, 0, "TE chunked;param", POST "Transfer-Encoding: chunked;q=1\r\n\r\n" CHUNKED_BODY),
	SHAPE(400, 0, "TE empty element", POST "Transfer-Encoding: , chunked\r\n\r\n" CHUNKED_BODY),
	SHAPE(400, 0, "TE empty", POST "Transfer-Encoding: \r\n\r\n" CHUNKED_BODY),
	SHAPE(400, 0, "TE two lines: chunked, chunked",
	      POST "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" CHUNKED_BODY),
	SHAPE(400, 0, "TE two lines: chunked, gzip",
	      POST "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n" CHUNKED_BODY),
	SHAPE(400, 501, "TE two lines: chunked, identity",
	      POST "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" CHUNKED_BODY),
	SHAPE(400, 0, "TE in an HTTP/1.0 request",
	      "POST http://127.0.0.1:@P/echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
	      CHUNKED_BODY),
	/* field syntax */
	SHAPE(400, 0, "first field line starts with whitespace",
	      "GET http://127.0.0.1:@P/len/1 HTTP/1.1\r\n X-First: a\r\nHost: 127.0.0.1:@P\r\n\r\n"),
	SHAPE(400, 0, "obs-fold with a tab", GET "X-Fold: a\r\n\tb\r\n\r\n"),
	SHAPE(400, 0, "tab before the colon", GET "X-Tab\t: a\r\n\r\n"),
	SHAPE(400, 0, "NUL in a value", GET "X-Nul: a\0b\r\n\r\n"),
	SHAPE(400, 0, "NUL in a name", GET "X-\0Nul: a\r\n\r\n"),
	SHAPE(400, 0, "empty field name", GET ": a\r\n\r\n"),
	SHAPE(400, 0, "non-ASCII in a name", GET "X-\xc3\xa4: a\r\n\r\n"),
	SHAPE(400, 0, "DEL in a value", GET "X-Del: a\x7f\r\n\r\n"),
	SHAPE(400, 0, "bare CR before CRLF", GET "X-Cr: a\r\r\n\r\n"),
	SHAPE(400, 0, "bare LF line ends throughout",
	      "GET http://127.0.0.1:@P/len/1 HTTP/1.1\nHost: 127.0.0.1:@P\n\n"),
	SHAPE(400, 0, "bare LF after the request line",
	      "GET http://127.0.0.1:@P/len/1 HTTP/1.1\nHost: 127.0.0.1:@P\r\n\r\n"),
	SHAPE(400, 0, "bare LF ending one field", GET "X-A: a\nX-B: b\r\n\r\n"),
	SHAPE(400, 0, "bare LF ending the head", GET "X-A: a\r\n\n"),
	/* request line */
	SHAPE(400, 0, "no method (leading space)",
	      " http://127.0.0.1:@P/len/1 HTTP/1.1\r\nHost: 127.0.0.1:@P\r\n\r\n"),
	SHAPE(400, 0, "no method (two parts)",
	      "http://127.0.0.1:@P/len/1 HTTP/1.1\r\nHost: 127.0.0.1:@P\r\n\r\n"),
	SHAPE(400, 0, "two spaces after the method",
	      "GET  http://127.0.0.1:@P/len/1 HTTP/1.1\r\nHost: 127.0.0.1:@P\r\n\r\n"),
	SHAPE(400, 0, "tab as separator",
	      "GET\thttp://127.0.0.1:@P/len/1 HTTP/1.1\r\nHost: 127.0.0.1:@P\r\n\r\n"),
	SHAPE(400, 0, "method with a non-token byte",
	      "G(ET http://127.0.0.1:@P/len/1 HTTP/1.1\r\nHost: 127.0.0.1:@P\r\n\r\n"),
	SHAPE(400, 0, "TLS ClientHello on the plain port", CLIENT_HELLO),
	SHAPE(400, 0, "binary garbage with NULs", "\0\0\0\0\xff\xfe\x01\x02\r\n\r\n"),
	SHAPE(505, 0, "HTTP/2.0", "GET http://127.0.0.1:@P/len/1 HTTP/2.0\r\nHost: 127.0.0.1:@P\r\n\r\n"),
	SHAPE(505, 0, "HTTP/1.2", "GET http://127.0.0.1:@P/len/1 HTTP/1.2\r\nHost: 127.0.0.1:@P\r\n\r\n"),
	SHAPE(505, 400, "HTTP/0.9 version", "GET http://127.0.0.1:@P/len/1 HTTP/0.9\r\nHost: 127.0.0.1:@P\r\n\r\n"),
	SHAPE(400, 0, "HTTP/1.10", "GET http://127.0.0.1:@P/len/1 HTTP/1.10\r\nHost: 127.0.0.1:@P\r\n\r\n"),
	SHAPE(400, 0, "lower-case http/1.1",
	      "GET http://127.0.0.1:@P/len/1 http/1.1\r\nHost: 127.0.0.1:@P\r\n\r\n"),
	SHAPE(400, 0, "HTTP/0.9 simple request", "GET http://127.0.0.1:@P/len/1\r\n\r\n"),
	SHAPE(505, 400, "HTTP/2 connection preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
	/* a bad request line alone, no blank line after it: refused at once, not at the
	 * request_header deadline (30 s here, beyond the 5 s this test waits) */
	SHAPE(400, 0, "HTTP/0.9 request line alone", "GET http://127.0.0.1:@P/len/1\r\n"),
	SHAPE(400, 0, "HTTP/3 request line alone", "GET http://127.0.0.1:@P/len/1 HTTP/3\r\n"),
	SHAPE(505, 0, "HTTP/2.0 request line alone", "GET http://127.0.0.1:@P/len/1 HTTP/2.0\r\n"),
	SHAPE(400, 0, "request line alone with a bad target", "GET http://h/a\x01 HTTP/1.1\r\n"),
};

/* Send one shape to ferry while the listener lfd (the origin the shape names) watches. On a
 * failure, appends a line to *fails and returns 0. */
static int shape_refused(const struct shape *s, int lfd, int oport, char **fails)
{
	struct harness_conn c;
	struct harness_resp r;
	size_t qlen, seen_len = 0, rest_len = 0;
	char *q = with_port(s->text, s->len, oport, &qlen);
	char *seen = NULL, *rest = NULL, *why = NULL;
	int how, ufd;

	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send(&c, q, qlen), FERRY_OK);
	/* whatever reached the origin, ferry did before it answered */
	if (harness_read_response(&c, &r, 0, 5000) != FERRY_OK) {
		why = harness_fmt("no response (eof %d err %d)", c.eof, c.err);
	} else if (r.status != s->status && (s->alt == 0 || r.status != s->alt)) {
		why = harness_fmt("status %d, want %d", r.status, s->status);
	} else if (!harness_resp_has_token(&r, "Connection", "close")) {
		why = harness_fmt("%d without Connection: close", r.status);
	} else {
		rest = harness_read_to_close(&c, &rest_len, 5000);
		if (!(c.eof || c.err == ECONNRESET))
			why = harness_fmt("connection not closed after the %d (err %d)", r.status, c.err);
		else if (rest_len)
			why = harness_fmt("%zu bytes after the %d: \"%s\"", rest_len, r.status,
				          show(rest, rest_len));
	}
	ufd = harness_accept(lfd, why ? 0 : 50);
	if (ufd >= 0) {
		seen = harness_fd_collect(ufd, NULL, 300, &seen_len, &how);
		close(ufd);
		free(why);
		why = harness_fmt("reached the origin (%zu bytes: \"%s\")", seen_len, show(seen, seen_len));
	}
	if (why) {
		char *f = harness_fmt("%s  [%s] %s\n", *fails, s->name, why);

		free(*fails);
		*fails = f;
	}
	free(why);
	free(seen);
	free(rest);
	harness_resp_free(&r);
	harness_close(&c);
	free(q);
	return why == NULL;
}

/* Every smuggling and syntax shape of the issue that test_e2e.c does not already send gets
 * its 4xx/5xx with Connection: close, the connection ends, and the origin never hears of it. */
START_TEST(request_shapes_refused)
{
	int oport, lfd = harness_listen(0, 64, &oport);
	char *fails = harness_fmt("%s", "");
	size_t n = sizeof(request_shapes) / sizeof(request_shapes[0]), bad = 0;

	ck_assert_int_ge(lfd, 0);
	begin(_i);
	go();
	for (size_t k = 0; k < n; k++)
		bad += !shape_refused(&request_shapes[k], lfd, oport, &fails);
	if (bad)
		fprintf(stderr, "request shapes not refused (%s):\n%s", muxes[_i], fails);
	EXPECT(bad == 0, "%zu of %zu request shapes not refused cleanly:\n%.3000s", bad, n, fails);
	expect_alive("the refused shapes");
	free(fails);
	close(lfd);
	end();
}
END_TEST

/* ==== framing fields named in Connection ==== */

struct hop_case {
	const char *name;
	const char *text;     /* "@P": the origin's port */
	const char *body;     /* the body the client sent after the head */
};

static const struct hop_case hop_cases[] = {
	{ "Connection: Content-Length",
	  RL("POST", "/x") "Connection: Content-Length\r\nContent-Length: 5\r\n\r\nhello", "hello" },
	{ "Connection: close, Content-Length",
	  RL("POST", "/x") "Connection: close, Content-Length\r\nContent-Length: 5\r\n\r\nhello",
	  "hello" },
	{ "Connection: Transfer-Encoding",
	  RL("POST", "/x") "Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
	  CHUNKED_BODY, CHUNKED_BODY },
	{ "Proxy-Connection: Content-Length",
	  RL("POST", "/x") "Proxy-Connection: Content-Length\r\nContent-Length: 5\r\n\r\nhello",
	  "hello" },
};

/* A client may name any field in Connection, Content-Length and Transfer-Encoding included.
 * If ferry removed those as hop-by-hop while still forwarding the body, the origin would read
 * the body as the start of the next request on that (pooled!) connection: request smuggling.
 * ferry must refuse such a request (400) or forward it with its framing intact. The origin
 * here is a listener in this process, so the exact bytes are seen. */
START_TEST(connection_names_framing_field)
{
	int oport, lfd = harness_listen(0, 64, &oport);
	char *fails = harness_fmt("%s", "");
	size_t bad = 0, n = sizeof(hop_cases) / sizeof(hop_cases[0]);

	ck_assert_int_ge(lfd, 0);
	begin(_i);
	go();
	for (size_t k = 0; k < n; k++) {
		const struct hop_case *h = &hop_cases[k];
		struct harness_conn c;
		struct harness_resp r;
		size_t qlen, got = 0;
		char *q = with_port(h->text, strlen(h->text), oport, &qlen);
		char *why = NULL, *seen = NULL;
		int how, ufd;

		ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
		ck_assert_int_eq(harness_send(&c, q, qlen), FERRY_OK);
		/* either ferry refuses at once, or the request arrives at the origin */
		ufd = harness_accept(lfd, 5000);
		if (ufd < 0) {
			if (harness_read_response(&c, &r, 0, 5000) != FERRY_OK ||
			    r.status != 400 || !harness_resp_has_token(&r, "Connection", "close"))
				why = harness_fmt("neither forwarded nor refused with 400 (status %d)",
					          r.status);
			harness_resp_free(&r);
		} else {
			/* the head, then whatever follows within a moment */
			seen = harness_fd_collect(ufd, "\r\n\r\n", 5000, &got, &how);
			char *more = harness_fd_collect(ufd, NULL, 300, &got, &how);
			char *hend = memmem(seen, strlen(seen), "\r\n\r\n", 4);
			size_t hl = hend ? (size_t)(hend - seen) + 4 : strlen(seen);
			size_t blen = strlen(seen) - hl + got;
			int cl = head_has_field(seen, hl, "Content-Length", "5");
			int te = head_has_field(seen, hl, "Transfer-Encoding", "chunked");

			if (!hend)
				why = harness_fmt("no complete head reached the origin");
			else if (blen > 0 && !cl && !te)
				why = harness_fmt("origin got %zu body bytes with no framing field: head \"%s\"",
					          blen, show(seen, hl));
			else if (blen != strlen(h->body) && (cl || te))
				why = harness_fmt("origin got %zu body bytes, want %zu", blen,
					          strlen(h->body));
			/* answer, so that the client's exchange ends */
			send(ufd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
			     57, MSG_NOSIGNAL);
			close(ufd);
			free(more);
		}
		if (why) {
			char *f = harness_fmt("%s  [%s] %s\n", fails, h->name, why);

			free(fails);
			fails = f;
			bad++;
		}
		free(why);
		free(seen);
		harness_close(&c);
		free(q);
	}
	if (bad)
		fprintf(stderr, "framing fields in Connection (%s):\n%s", muxes[_i], fails);
	EXPECT(bad == 0, "%zu of %zu requests naming a framing field in Connection were unsafe:\n%.3000s",
	       bad, n, fails);
	free(fails);
	close(lfd);
	end();
}
END_TEST

/* Content-Length repeated with one value (in two lines or as a list) may be accepted, but then
 * the origin must get it once: RFC 9110 section 8.6 lets a recipient replace such a value with
 * a single one, and RFC 9112 section 6.3 forbids forwarding what a next hop might read
 * differently (some reject "5, 5", some add, some take the first line). */
START_TEST(content_length_repeated_normalised)
{
	static const char *const shapes[] = {
		"Content-Length: 5, 5\r\n",
		"Content-Length: 5\r\nContent-Length: 5\r\n",
		"Content-Length: 5,5\r\nContent-Length: 5\r\n",
	};
	char *fails = harness_fmt("%s", "");
	size_t bad = 0, n = sizeof(shapes) / sizeof(shapes[0]);

	begin(_i);
	go();
	for (size_t k = 0; k < n; k++) {
		struct harness_conn c;
		struct harness_resp r;
		char *q = req("POST", "/headers", shapes[k]);
		char *why = NULL;

		ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c, "hello"), FERRY_OK);
		if (harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) != FERRY_OK)
			why = harness_fmt("no response (eof %d err %d)", c.eof, c.err);
		else if (r.status != 400 && r.status != 200)
			why = harness_fmt("status %d", r.status);
		else if (r.status == 200 &&
			 (head_count_field(r.body, r.body_len, "Content-Length") != 1 ||
			  !head_has_field(r.body, r.body_len, "Content-Length", "5")))
			why = harness_fmt("reached the origin as \"%s\"", show(r.body, r.body_len));
		if (why) {
			char *f = harness_fmt("%s  [%s] %s\n", fails, show(shapes[k], strlen(shapes[k])), why);

			free(fails);
			fails = f;
			bad++;
		}
		free(why);
		harness_resp_free(&r);
		harness_close(&c);
		free(q);
	}
	EXPECT(bad == 0, "%zu of %zu repeated Content-Length values not refused and not reduced to "
	       "one \"Content-Length: 5\":\n%.3000s", bad, n, fails);
	free(fails);
	end();
}
END_TEST

/* Connection: Connection and Proxy-Connection: Proxy-Connection are odd but legal; they must
 * not confuse the hop-by-hop removal (which iterates the fields it is removing): the request
 * is forwarded without either field, and the client connection stays usable. */
START_TEST(connection_lists_itself)
{
	static const char *const shapes[] = {
		"Connection: Connection\r\n",
		"Proxy-Connection: Proxy-Connection\r\n",
		"Connection: Connection, Proxy-Connection, Keep-Alive\r\nProxy-Connection: Connection\r\n"
		"Keep-Alive: 5\r\n",
	};

	begin(_i);
	go();
	for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
		struct harness_conn c;
		struct harness_resp r;
		char *q = req("GET", "/headers", shapes[k]);

		ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
		for (int round = 0; round < 2; round++) {
			ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
			EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
			       "\"%s\" round %d: no response (eof %d err %d)",
			       show(shapes[k], strlen(shapes[k])), round, c.eof, c.err);
			if (r.status == 400 && round == 0) {
				/* refusing is a clear answer too */
				harness_resp_free(&r);
				break;
			}
			EXPECT(r.status == 200, "\"%s\": status %d", show(shapes[k], strlen(shapes[k])),
			       r.status);
			EXPECT(head_count_field(r.body, r.body_len, "Connection") == 0 &&
			       head_count_field(r.body, r.body_len, "Proxy-Connection") == 0 &&
			       head_count_field(r.body, r.body_len, "Keep-Alive") == 0,
			       "\"%s\": hop-by-hop field forwarded: \"%s\"",
			       show(shapes[k], strlen(shapes[k])), show(r.body, r.body_len));
			EXPECT(head_count_field(r.body, r.body_len, "Host") == 1,
			       "\"%s\": forwarded without one Host: \"%s\"",
			       show(shapes[k], strlen(shapes[k])), show(r.body, r.body_len));
			harness_resp_free(&r);
		}
		harness_close(&c);
		free(q);
	}
	expect_alive("Connection naming itself");
	end();
}
END_TEST

/* ==== malformed chunked request bodies ==== */

struct chunk_case {
	const char *name;
	const char *tail;     /* sent after a valid first chunk; may hold a NUL */
	size_t len;
	size_t safe;          /* bytes of tail that are valid so far and may be forwarded */
};

#define CHUNK(name, lit, safe) { name, lit, sizeof(lit) - 1, safe }

static const struct chunk_case chunk_cases[] = {
	CHUNK("size Z", "Z\r\nhello\r\n0\r\n\r\n", 0),
	CHUNK("size -0", "-0\r\n\r\n", 0),
	CHUNK("size 0x5", "0x5\r\nhello\r\n0\r\n\r\n", 1),
	CHUNK("size 1junk", "1junk\r\nh\r\n0\r\n\r\n", 1),
	CHUNK("size of 17 hex digits", "10000000000000005\r\nhello\r\n0\r\n\r\n", 16),
	CHUNK("size with leading space", " 5\r\nhello\r\n0\r\n\r\n", 0),
	CHUNK("size ended by bare LF", "5\nhello\r\n0\r\n\r\n", 1),
	CHUNK("no CRLF after chunk data", "5\r\nhello0\r\n\r\n", 8),
	CHUNK("bare LF after chunk data", "5\r\nhello\n0\r\n\r\n", 8),
	CHUNK("bare CR in a chunk extension", "5;ext=a\rb\r\nhello\r\n0\r\n\r\n", 7),
	CHUNK("NUL in a chunk extension", "5;e\0x\r\nhello\r\n0\r\n\r\n", 3),
	CHUNK("bare LF ending the last chunk", "0\n\r\n", 1),
};

#define FIRST_CHUNK "3\r\nabc\r\n"

/* One bad chunked body. staged: the head and first chunk go first and reach the origin before
 * the bad bytes are sent (so ferry has committed to the origin); otherwise all at once. The
 * client gets 400 with Connection: close; the origin gets at most the head and the valid
 * prefix of the body, then the connection ends, never a complete message. */
static char *chunk_case_run(const struct chunk_case *cc, int lfd, int oport, int staged)
{
	struct harness_conn c;
	struct harness_resp r;
	char *head = harness_fmt("POST http://127.0.0.1:%d/x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			         "Transfer-Encoding: chunked\r\n\r\n", oport, oport);
	size_t tl = cc->len, seen_len = 0, more_len = 0;
	char *seen = NULL, *more = NULL, *why = NULL, *allowed;
	int ufd = -1, how = 0, how2 = 0;

	allowed = harness_fmt("%s%.*s", FIRST_CHUNK, (int)cc->safe, cc->tail);
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, head), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, FIRST_CHUNK), FERRY_OK);
	if (staged) {
		ufd = harness_accept(lfd, 5000);
		if (ufd < 0) {
			why = harness_fmt("staged: the head never reached the origin");
			goto out;
		}
		seen = harness_fd_collect(ufd, FIRST_CHUNK, 5000, &seen_len, &how);
		if (!memmem(seen, seen_len, FIRST_CHUNK, strlen(FIRST_CHUNK))) {
			why = harness_fmt("staged: the first chunk never reached the origin (\"%s\")",
				          show(seen, seen_len));
			goto out;
		}
	}
	ck_assert_int_eq(harness_send(&c, cc->tail, tl), FERRY_OK);
	if (harness_read_response(&c, &r, 0, 5000) != FERRY_OK) {
		why = harness_fmt("no response (eof %d err %d)", c.eof, c.err);
		goto out;
	}
	if (r.status != 400 || !harness_resp_has_token(&r, "Connection", "close"))
		why = harness_fmt("status %d%s, want 400 with Connection: close", r.status,
			          harness_resp_has_token(&r, "Connection", "close") ? "" : " (no close)");
	harness_resp_free(&r);
	if (why)
		goto out;
	if (ufd < 0)
		ufd = harness_accept(lfd, 50);
	if (ufd < 0)
		goto out; /* refused before ferry connected: nothing reached the origin */
	/* everything the origin got, to the end: ferry must close the connection */
	more = harness_fd_collect(ufd, NULL, 5000, &more_len, &how2);
	if (how2 == 0) {
		why = harness_fmt("ferry did not close the origin connection after the bad chunk");
		goto out;
	}
	{
		size_t tot = seen_len + more_len;
		char *all = malloc(tot + 1);
		char *hend;

		ck_assert_ptr_nonnull(all);
		if (seen_len)
			memcpy(all, seen, seen_len);
		if (more_len)
			memcpy(all + seen_len, more, more_len);
		all[tot] = '\0';
		hend = memmem(all, tot, "\r\n\r\n", 4);
		if (!hend) {
			if (tot)
				why = harness_fmt("origin got a partial head \"%s\"", show(all, tot));
		} else {
			size_t hl = (size_t)(hend - all) + 4;
			size_t bl = tot - hl;

			if (bl > strlen(allowed) || memcmp(all + hl, allowed, bl) != 0)
				why = harness_fmt("origin got body bytes beyond the valid prefix: \"%s\"",
					          show(all + hl, bl));
		}
		free(all);
	}
out:
	if (ufd >= 0)
		close(ufd);
	harness_close(&c);
	free(seen);
	free(more);
	free(allowed);
	free(head);
	return why;
}

START_TEST(chunked_request_body_malformed)
{
	int oport, lfd = harness_listen(0, 64, &oport);
	char *fails = harness_fmt("%s", "");
	size_t n = sizeof(chunk_cases) / sizeof(chunk_cases[0]), bad = 0;

	ck_assert_int_ge(lfd, 0);
	begin(_i);
	go();
	for (int staged = 0; staged < 2; staged++)
		for (size_t k = 0; k < n; k++) {
			char *why = chunk_case_run(&chunk_cases[k], lfd, oport, staged);

			if (why) {
				char *f = harness_fmt("%s  [%s, %s] %s\n", fails, chunk_cases[k].name,
					              staged ? "after the head was forwarded" : "at once", why);

				free(fails);
				fails = f;
				bad++;
			}
			free(why);
		}
	if (bad)
		fprintf(stderr, "bad chunked bodies (%s):\n%s", muxes[_i], fails);
	EXPECT(bad == 0, "%zu of %zu bad chunked bodies mishandled:\n%.3000s", bad, 2 * n, fails);
	expect_alive("bad chunked bodies");
	free(fails);
	close(lfd);
	end();
}
END_TEST

/* ==== broken responses ==== */

/* Each of these response heads is broken or ambiguous: the client gets 502 with Connection:
 * close (test_e2e.c has cl_te, double_cl, cl_bad, obs_fold, bad_status, not_http, huge_head
 * and more; these are the rest). */
/* GET each /raw/NAME of the test origin on its own connection: every one must be answered
 * 502 with Connection: close (and with reason in the body, when given). Returns the list of
 * those that were not, one line each (malloc'd, empty when all were), and their count. */
static char *raws_answered_502(const char *const *raws, size_t n, const char *reason, size_t *bad)
{
	char *fails = harness_fmt("%s", "");

	*bad = 0;
	for (size_t k = 0; k < n; k++) {
		struct harness_conn c;
		struct harness_resp r;
		char *path = harness_fmt("/raw/%s", raws[k]);
		char *q = req("GET", path, "");
		char *why = NULL;

		ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
		if (harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) != FERRY_OK)
			why = harness_fmt("no response (eof %d err %d)", c.eof, c.err);
		else if (r.status != 502)
			why = harness_fmt("status %d, want 502", r.status);
		else if (!harness_resp_has_token(&r, "Connection", "close"))
			why = harness_fmt("502 without Connection: close");
		else if (reason && (!r.body || !strstr(r.body, reason)))
			why = harness_fmt("502 without the reason: \"%s\"", show(r.body, r.body_len));
		if (why) {
			char *f = harness_fmt("%s  [%s] %s\n", fails, path, why);

			free(fails);
			fails = f;
			(*bad)++;
		}
		free(why);
		harness_resp_free(&r);
		harness_close(&c);
		free(q);
		free(path);
	}
	return fails;
}

START_TEST(response_shapes_502)
{
	static const char *const raws[] = { "status_4digit", "status_alpha", "status_none",
					    "http2", "icy", "bare_lf", "cl_list", "cl_signed",
					    "cl_vt", "te_xchunked", "te_twice", "bad_name",
					    "fold_first", "empty", "many_fields" };
	size_t bad, n = sizeof(raws) / sizeof(raws[0]);

	begin(_i);
	go();
	char *fails = raws_answered_502(raws, n, NULL, &bad);
	EXPECT(bad == 0, "%zu of %zu broken responses not answered 502:\n%.3000s", bad, n, fails);
	expect_alive("broken responses");
	free(fails);
	end();
}
END_TEST

/* A 101 to a client that asked for websocket, without an Upgrade field saying what the
 * connection now speaks: 502, not a tunnel of unknown bytes. */
START_TEST(switch_without_upgrade_502)
{
	struct harness_resp r;

	begin(_i);
	go();
	char *q = req("GET", "/raw/switch_unnamed", "Connection: upgrade\r\nUpgrade: websocket\r\n");
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK && r.status == 502 &&
	       r.body && strstr(r.body, "Upgrade"), "101 without Upgrade: status %d (eof %d err %d)",
	       r.status, c.eof, c.err);
	harness_resp_free(&r);
	harness_close(&c);
	free(q);
	end();
}
END_TEST

/* The origin sends its head and a malformed first chunk in one write: nothing has reached the
 * client yet, so it must get a 502 with a reason (it used to get an empty close: the queued
 * head was dropped and the connection shut down as if part of a response had gone out). */
START_TEST(response_bad_first_chunk_502)
{
	static const char *const raws[] = { "bad_chunk", "chunk_overflow" };
	size_t bad, n = sizeof(raws) / sizeof(raws[0]);

	begin(_i);
	go();
	char *fails = raws_answered_502(raws, n, "malformed chunked body", &bad);
	EXPECT(bad == 0, "%zu of %zu bad first chunks not answered 502:\n%.3000s", bad, n, fails);
	expect_alive("bad first chunks");
	free(fails);
	end();
}
END_TEST

/* 1xx and 204 responses carrying Content-Length or Transfer-Encoding reach the client without
 * them: a client that honoured them would look for a body and read the next response as one. */
START_TEST(response_bodiless_framing_dropped)
{
	static const char *const raws[] = { "no_content_cl", "no_content_te" };
	struct harness_conn c;
	struct harness_resp r;

	begin(_i);
	go();
	for (size_t k = 0; k < sizeof(raws) / sizeof(raws[0]); k++) {
		char *path = harness_fmt("/raw/%s", raws[k]);
		char *q = req("GET", path, "");

		EXPECT(harness_request(ferry.port, q, &r, 0) == FERRY_OK && r.status == 204,
		       "%s: status %d, want 204", path, r.status);
		EXPECT(harness_resp_count(&r, "Content-Length") == 0 &&
		       harness_resp_count(&r, "Transfer-Encoding") == 0,
		       "%s: relayed with framing fields: \"%s\"", path, show(r.head, r.head_len));
		harness_resp_free(&r);
		free(q);
		free(path);
	}

	char *q = req("GET", "/raw/continue_framed", "");
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	for (int want = 100; want <= 103; want += 3) {
		EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
		       r.status == want, "interim: status %d, want %d", r.status, want);
		EXPECT(harness_resp_count(&r, "Content-Length") == 0 &&
		       harness_resp_count(&r, "Transfer-Encoding") == 0,
		       "%d relayed with framing fields: \"%s\"", want, show(r.head, r.head_len));
		harness_resp_free(&r);
	}
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
	       r.status == 200 && r.complete && strcmp(r.body, "ok") == 0,
	       "final response after the interim ones: status %d", r.status);
	harness_resp_free(&r);
	harness_close(&c);
	free(q);
	expect_alive("bodiless responses");
	end();
}
END_TEST

/* A response with one Content-Length value repeated: 502, or relayed with a single
 * Content-Length (never "2, 2" or two lines, which the client might read differently). */
START_TEST(response_content_length_repeated)
{
	static const char *const raws[] = { "cl_same_list", "cl_dup_same" };
	char *fails = harness_fmt("%s", "");
	size_t bad = 0, n = sizeof(raws) / sizeof(raws[0]);

	begin(_i);
	go();
	for (size_t k = 0; k < n; k++) {
		struct harness_resp r;
		char *path = harness_fmt("/raw/%s", raws[k]);
		char *q = req("GET", path, "");
		char *why = NULL;
		const char *cl;

		if (harness_request(ferry.port, q, &r, 0) != FERRY_OK)
			why = harness_fmt("no response");
		else if (r.status != 502 && r.status != 200)
			why = harness_fmt("status %d", r.status);
		else if (r.status == 200 &&
			 (harness_resp_count(&r, "Content-Length") != 1 ||
			  strcmp((cl = harness_resp_header(&r, "Content-Length")), "2") != 0))
			why = harness_fmt("relayed with %d Content-Length field(s): \"%s\"",
				          harness_resp_count(&r, "Content-Length"), show(r.head, r.head_len));
		else if (r.status == 200 && !(r.complete && strcmp(r.body, "ok") == 0))
			why = harness_fmt("body \"%s\"", show(r.body, r.body_len));
		if (why) {
			char *f = harness_fmt("%s  [%s] %s\n", fails, path, why);

			free(fails);
			fails = f;
			bad++;
		}
		free(why);
		harness_resp_free(&r);
		free(q);
		free(path);
	}
	EXPECT(bad == 0, "%zu of %zu responses with a repeated Content-Length neither refused (502) "
	       "nor relayed with one:\n%.3000s", bad, n, fails);
	free(fails);
	end();
}
END_TEST

/* ==== limits ==== */

/* Send all of out (ferry may answer and close before it has read everything), collect what
 * comes back until EOF or a reset, and parse it as a response. */
static int send_big_get_response(const char *out, size_t outlen, struct harness_resp *r,
				 size_t *tail)
{
	struct harness_conn c, parsed;
	char *in;
	size_t inlen;

	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	harness_pump(&c, out, outlen, 0, (size_t)-1, &in, &inlen, HARNESS_TIMEOUT_MS);
	harness_close(&c);
	memset(&parsed, 0, sizeof(parsed));
	parsed.fd = -1;
	parsed.buf = in;
	parsed.len = inlen;
	parsed.cap = inlen;
	parsed.eof = 1;
	int rc = harness_read_response(&parsed, r, 0, 0);

	*tail = parsed.len;
	harness_close(&parsed);
	return rc;
}

/* How much a sanitizer runtime in pid inflates its resident memory: the bounds below are for
 * a plain build and are multiplied by this (TSan shadows every byte touched several times). */
static long sanitizer_factor(pid_t pid)
{
	char path[64], line[512];
	long f = 1;
	FILE *m;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	m = fopen(path, "r");
	if (!m)
		return 1;
	while (fgets(line, sizeof(line), m)) {
		if (strstr(line, "libtsan"))
			f = 8;
		else if (strstr(line, "libasan") && f < 2)
			f = 2;
	}
	fclose(m);
	return f;
}

static long child_kb(pid_t pid, const char *field)
{
	long kb = harness_proc_status_kb(pid, field);

	ck_assert_msg(kb >= 0, "cannot read %s of ferry's child %d", field, (int)pid);
	return kb;
}

/* A 200 KB request target gets 414, a 200 KB field and 5,000 small fields get 431 (default
 * limits), each with Connection: close, none reaches the origin, and ferry's memory stays
 * bounded while it happens ten times over. */
START_TEST(oversized_requests)
{
	enum { BIG = 200 * 1024, REPEAT = 10 };
	char *pat = harness_pattern(BIG);
	char *long_target, *long_field, *many;
	size_t ml = 0;
	pid_t child;
	long rss0, hwm;

	begin(_i);
	go();
	child = harness_ferry_child(&ferry, 5000);
	ck_assert_msg(child > 0, "ferry's child process not found");
	rss0 = child_kb(child, "VmRSS");

	long_target = harness_fmt("GET http://127.0.0.1:%d/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
			          origin.port, pat, origin.port);
	long_field = harness_fmt("GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			         "Cookie: %s\r\n\r\n", origin.port, origin.port, pat);
	many = malloc(5000 * 24 + 256);
	ck_assert_ptr_nonnull(many);
	ml = (size_t)sprintf(many, "GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n",
			     origin.port, origin.port);
	for (int i = 0; i < 5000; i++)
		ml += (size_t)sprintf(many + ml, "X-%d: %d\r\n", i, i);
	ml += (size_t)sprintf(many + ml, "\r\n");

	struct {
		const char *name;
		const char *text;
		size_t len;
		int status;
	} cases[] = {
		{ "200 KB target", long_target, strlen(long_target), 414 },
		{ "200 KB field", long_field, strlen(long_field), 431 },
		{ "5,000 small fields", many, ml, 431 },
	};
	for (int rep = 0; rep < REPEAT; rep++)
		for (size_t k = 0; k < 3; k++) {
			struct harness_resp r;
			size_t tail;

			EXPECT(send_big_get_response(cases[k].text, cases[k].len, &r, &tail) ==
			       FERRY_OK, "%s: no response", cases[k].name);
			EXPECT(r.status == cases[k].status, "%s: status %d, want %d", cases[k].name,
			       r.status, cases[k].status);
			EXPECT(harness_resp_has_token(&r, "Connection", "close"),
			       "%s: %d without Connection: close", cases[k].name, r.status);
			EXPECT(tail == 0, "%s: %zu bytes after the answer", cases[k].name, tail);
			harness_resp_free(&r);
		}
	hwm = child_kb(child, "VmHWM");
	fprintf(stderr, "oversized_requests (%s): child VmRSS at start %ld kB, peak %ld kB\n",
		muxes[_i], rss0, hwm);
	/* a head is held up to request_header_size (64 KiB) per connection: a few MB would
	 * already be a lot; the bound is generous for sanitizer builds */
	EXPECT(hwm - rss0 < 16 * 1024 * sanitizer_factor(child),
	       "ferry's peak RSS grew by %ld kB over %d oversized requests", hwm - rss0, 3 * REPEAT);
	EXPECT(origin_serial() == 1, "an oversized request reached the origin");
	expect_alive("oversized requests");
	free(many);
	free(long_field);
	free(long_target);
	free(pat);
	end();
}
END_TEST

/* ==== slowloris ==== */

struct slow {
	int fd;
	size_t sent;          /* bytes of the head sent so far */
	long long first_ms;   /* when the first byte went */
	long long done_ms;    /* when the connection ended (0: not yet) */
	char resp[512];
	size_t rlen;
	int reset;
};

/* Descriptors this process may still open for clients (main() raised the soft limit to the
 * hard one), keeping some for the harness. */
static int fd_budget(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1000;
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000)
		return 1000000;
	return (int)rl.rlim_cur - 64;
}

static int slowloris_n(void)
{
	const char *e = getenv("FERRY_SLOWLORIS_N");
	int n = e && *e ? atoi(e) : 200;

	n = n < 1 ? 1 : n > 5000 ? 5000 : n;
	if (n > fd_budget()) {
		fprintf(stderr, "slowloris: only %d slow clients (ulimit -n)\n", fd_budget());
		n = fd_budget();
	}
	return n;
}

/* One timed request on a fresh connection; returns its duration in ms, or -1 on failure. */
static long long timed_request(void)
{
	struct harness_resp r;
	char *q = req("GET", "/len/1000", "Connection: close\r\n");
	long long t0 = harness_now_ms();
	int ok = harness_request(ferry.port, q, &r, 0) == FERRY_OK && r.status == 200 &&
		 r.complete && r.body_len == 1000;
	long long t = harness_now_ms() - t0;

	harness_resp_free(&r);
	free(q);
	return ok ? t : -1;
}

/* N clients each trickle a request head at one byte a second (request_header = 2). A normal
 * client's requests meanwhile complete promptly; each slow client gets 408 with Connection:
 * close, not before request_header, and its connection ends. */
START_TEST(slowloris)
{
	int n = slowloris_n();
	struct slow *s = calloc((size_t)n, sizeof(*s));
	struct pollfd *pfd = calloc((size_t)n, sizeof(*pfd));
	char *head;
	size_t hlen;
	long long start, next_tick, next_probe, worst = 0;
	int open_left, probes = 0, failed_probes = 0;

	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_nonnull(pfd);
	begin(_i);
	harness_conf_set(&conf, "timeouts", "request_header", "2");
	go();
	head = harness_fmt("GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		           "User-Agent: slowloris\r\n", origin.port, origin.port);
	hlen = strlen(head);
	for (int i = 0; i < n; i++) {
		struct harness_conn c;

		EXPECT(harness_connect(&c, ferry.port) == FERRY_OK, "slow client %d: connect", i);
		s[i].fd = c.fd;
	}
	start = harness_now_ms();
	next_tick = start;
	next_probe = start + 300;
	open_left = n;
	while (open_left > 0 && harness_now_ms() - start < 20000) {
		long long now = harness_now_ms();

		if (now >= next_tick) {
			/* one more byte for every slow client that has no answer yet */
			for (int i = 0; i < n; i++) {
				if (s[i].done_ms || s[i].rlen || s[i].sent >= hlen)
					continue;
				if (send(s[i].fd, head + s[i].sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) {
					if (s[i].sent++ == 0)
						s[i].first_ms = harness_now_ms();
				}
			}
			next_tick += 1000;
		}
		/* a normal client in the middle of it, every 200 ms until the slow ones are cut */
		if (now >= next_probe && now - start < 1800) {
			long long t = timed_request();

			probes++;
			if (t < 0)
				failed_probes++;
			else if (t > worst)
				worst = t;
			next_probe += 200;
		}
		int np = 0;

		for (int i = 0; i < n; i++)
			if (!s[i].done_ms) {
				pfd[np].fd = s[i].fd;
				pfd[np].events = POLLIN;
				np++;
			}
		long long wait = (next_probe < next_tick && now - start < 1800 ? next_probe : next_tick) -
				 harness_now_ms();

		if (poll(pfd, (nfds_t)np, wait < 0 ? 0 : (int)wait) <= 0)
			continue;
		for (int i = 0, j = 0; i < n; i++) {
			if (s[i].done_ms)
				continue;
			if (pfd[j++].revents == 0)
				continue;
			char buf[1024];
			ssize_t r = recv(s[i].fd, buf, sizeof(buf), MSG_DONTWAIT);

			if (r > 0) {
				size_t k = (size_t)r < sizeof(s[i].resp) - 1 - s[i].rlen ?
					   (size_t)r : sizeof(s[i].resp) - 1 - s[i].rlen;

				memcpy(s[i].resp + s[i].rlen, buf, k);
				s[i].rlen += k;
				s[i].resp[s[i].rlen] = '\0';
			} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
				s[i].reset = r < 0;
				s[i].done_ms = harness_now_ms();
				close(s[i].fd);
				s[i].fd = -1;
				open_left--;
			}
		}
	}
	fprintf(stderr, "slowloris (%s): %d slow clients, %d normal requests, slowest %lld ms\n",
		muxes[_i], n, probes, worst);
	EXPECT(probes > 0 && failed_probes == 0, "%d of %d normal requests failed beside %d slow "
	       "clients", failed_probes, probes, n);
	EXPECT(worst < 1000, "a normal request took %lld ms beside %d slow clients", worst, n);
	int no408 = 0, early = 0, open_ = 0, first_bad = -1;

	for (int i = 0; i < n; i++) {
		if (!s[i].done_ms) {
			open_++;
			close(s[i].fd);
		}
		if (strncmp(s[i].resp, "HTTP/1.1 408 ", 13) != 0 ||
		    !strcasestr(s[i].resp, "\r\nConnection: close\r\n")) {
			no408++;
			if (first_bad < 0)
				first_bad = i;
		} else if (s[i].done_ms - s[i].first_ms < 1500) {
			early++;
		}
	}
	EXPECT(open_ == 0, "%d slow clients still open after 20 s (request_header = 2)", open_);
	EXPECT(no408 == 0, "%d of %d slow clients got no 408 with Connection: close; #%d got "
	       "\"%s\" (%s)", no408, n, first_bad, first_bad >= 0 ? show(s[first_bad].resp,
	       s[first_bad].rlen) : "", first_bad >= 0 && s[first_bad].reset ? "reset" : "eof");
	EXPECT(early == 0, "%d slow clients were cut before request_header (2 s)", early);
	expect_alive("slowloris");
	free(head);
	free(pfd);
	free(s);
	end();
}
END_TEST

/* ==== slow reader ==== */

/* A client asks for 100 MB and reads nothing. The origin (this process) writes until it is
 * blocked: ferry stops reading the origin instead of buffering, its memory stays bounded, and
 * at upstream_idle (2 s) it closes both sides; the client never sees a clean end. */
START_TEST(slow_reader)
{
	enum { TOTAL = 100000000 };
	int oport, lfd = harness_listen(0, 8, &oport);
	struct harness_conn c;
	char *q, *reqhead, *pat = harness_pattern(26 * 10000);
	size_t got;
	long long sent = 0, last_progress, paused_at;
	pid_t child;
	long rss0, rss1;
	int how, ufd;

	ck_assert_int_ge(lfd, 0);
	begin(_i);
	harness_conf_set(&conf, "timeouts", "upstream_idle", "2");
	go();
	child = harness_ferry_child(&ferry, 5000);
	ck_assert_msg(child > 0, "ferry's child process not found");
	rss0 = child_kb(child, "VmRSS");
	q = harness_fmt("GET http://127.0.0.1:%d/big HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", oport, oport);
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	ufd = harness_accept(lfd, 5000);
	EXPECT(ufd >= 0, "the request never reached the origin");
	reqhead = harness_fd_collect(ufd, "\r\n\r\n", 5000, &got, &how);
	EXPECT(strstr(reqhead, "\r\n\r\n") != NULL, "no complete request head at the origin");
	static const char rh[] = "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n";

	EXPECT(send(ufd, rh, sizeof(rh) - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof(rh) - 1),
	       "origin: cannot send the head");
	/* write until ferry stops taking bytes for a whole second */
	last_progress = harness_now_ms();
	while (sent < TOTAL && harness_now_ms() - last_progress < 1000) {
		struct pollfd p = { .fd = ufd, .events = POLLOUT };
		size_t off = (size_t)(sent % 26);
		size_t want = 26 * 10000 - off;

		if (want > (size_t)(TOTAL - sent))
			want = (size_t)(TOTAL - sent);
		if (poll(&p, 1, 200) <= 0)
			continue;
		ssize_t w = send(ufd, pat + off, want, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w > 0) {
			sent += w;
			last_progress = harness_now_ms();
		} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
			break;
		}
	}
	paused_at = harness_now_ms();
	rss1 = child_kb(child, "VmRSS");
	fprintf(stderr, "slow_reader (%s): origin wrote %lld bytes before blocking; child VmRSS "
		"%ld -> %ld kB\n", muxes[_i], sent, rss0, rss1);
	EXPECT(sent < TOTAL / 2, "ferry read %lld bytes from the origin for a client that reads "
	       "nothing", sent);
	EXPECT(rss1 - rss0 < 8 * 1024 * sanitizer_factor(child),
	       "ferry's RSS grew by %ld kB for one slow reader", rss1 - rss0);

	/* now ferry must give up at upstream_idle and close the origin side */
	char *rest = harness_fd_collect(ufd, NULL, 15000, &got, &how);
	long long closed_after = harness_now_ms() - paused_at;

	free(rest);
	EXPECT(how != 0, "ferry kept the origin connection open %lld ms after the client stopped "
	       "reading (upstream_idle = 2 s)", closed_after);
	/* the client: whatever it gets, never the whole body ended cleanly */
	{
		size_t n;
		char *all = harness_read_to_close(&c, &n, 15000);

		EXPECT(c.eof || c.err == ECONNRESET, "client side not closed (err %d)", c.err);
		EXPECT(n < (size_t)TOTAL, "the client got all %zu bytes although ferry gave up", n);
		free(all);
	}
	harness_close(&c);
	close(ufd);
	close(lfd);
	free(reqhead);
	free(pat);
	free(q);
	expect_alive("a slow reader");
	end();
}
END_TEST

/* ==== file descriptor exhaustion ==== */

/* ferry runs with RLIMIT_NOFILE 256 (soft and hard). It serves a few keep-alive clients and
 * tunnels, then 2,000 connection attempts arrive in bursts and exhaust its descriptors. While
 * at the limit: the established connections are still served, and ferry's child uses (almost)
 * no CPU (no accept spinning). When the attempts go away, new clients are served again and
 * the descriptors come back. */
START_TEST(fd_exhaustion)
{
	enum { NOFILE = 256, BURST = 200, KEEP = 6, TUNNELS = 2 };
	struct harness_conn keep[KEEP], tun[TUNNELS];
	/* 2,000 as the issue asks, fewer if this process may not open that many */
	const int ATTEMPTS = fd_budget() < 2000 ? fd_budget() / BURST * BURST : 2000;
	int *att = malloc(sizeof(int) * 2000);
	pid_t child;
	int nfds = 0, base_fds, peak = 0;
	long long cpu0, cpu1;
	char *q;

	ck_assert_ptr_nonnull(att);
	ck_assert_msg(ATTEMPTS >= 2 * NOFILE, "ulimit -n allows only %d connection attempts: too "
		      "few to exhaust ferry's %d descriptors", ATTEMPTS, NOFILE);
	begin(_i);
	q = req("GET", "/len/100", "");
	harness_conf_set(&conf, "timeouts", "request_header", "60");
	harness_conf_set(&conf, "timeouts", "client_idle", "60");
	ck_assert_msg(harness_ferry_start_nofile(&ferry, &conf, NOFILE) == FERRY_OK,
		      "ferry did not start with RLIMIT_NOFILE %d", NOFILE);
	child = harness_ferry_child(&ferry, 5000);
	ck_assert_msg(child > 0, "ferry's child process not found");

	for (int k = 0; k < KEEP; k++) {
		struct harness_resp r;

		ck_assert_int_eq(harness_connect(&keep[k], ferry.port), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&keep[k], q), FERRY_OK);
		EXPECT(harness_read_response(&keep[k], &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
		       r.status == 200 && r.complete, "keep-alive client %d: status %d", k, r.status);
		harness_resp_free(&r);
	}
	for (int k = 0; k < TUNNELS; k++) {
		struct harness_resp r;
		char *cq = harness_fmt("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
			               origin.echo_port, origin.echo_port);

		ck_assert_int_eq(harness_connect(&tun[k], ferry.port), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&tun[k], cq), FERRY_OK);
		EXPECT(harness_read_response(&tun[k], &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS) ==
		       FERRY_OK && r.status == 200, "tunnel %d: status %d", k, r.status);
		harness_resp_free(&r);
		free(cq);
	}
	base_fds = harness_proc_nfds(child);

	/* the attempts: a third send part of a head, the rest nothing */
	for (int k = 0; k < ATTEMPTS; k++) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_port = htons((uint16_t)ferry.port),
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		att[k] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		EXPECT(att[k] >= 0, "attempt %d: socket: %s (raise ulimit -n for the tests)", k,
		       strerror(errno));
		connect(att[k], (struct sockaddr *)&sa, sizeof(sa));
		if ((k + 1) % BURST == 0) {
			harness_sleep_ms(20);
			for (int j = k + 1 - BURST; j <= k; j += 3)
				send(att[j], "GET http://", 11, MSG_NOSIGNAL | MSG_DONTWAIT);
		}
	}
	/* wait until ferry's child holds (almost) all its descriptors */
	for (long long t0 = harness_now_ms(); harness_now_ms() - t0 < 10000; harness_sleep_ms(50)) {
		nfds = harness_proc_nfds(child);
		if (nfds > peak)
			peak = nfds;
		if (nfds >= NOFILE - 8)
			break;
	}
	EXPECT(peak >= NOFILE - 8, "ferry's child never reached its descriptor limit (peak %d of "
	       "%d): this test proves nothing", peak, NOFILE);
	harness_sleep_ms(300); /* let the acceptor meet EMFILE */

	/* idle at the limit: no spinning */
	cpu0 = harness_proc_cpu_ms(child);
	harness_sleep_ms(1000);
	cpu1 = harness_proc_cpu_ms(child);
	fprintf(stderr, "fd_exhaustion (%s): %d fds before the attempts, %d at the limit, %lld ms "
		"CPU in 1 s at the limit\n", muxes[_i], base_fds, peak, cpu1 - cpu0);
	EXPECT(cpu0 >= 0 && cpu1 >= 0, "cannot read ferry's CPU time");
	EXPECT(cpu1 - cpu0 < 200, "ferry's child used %lld ms of CPU in 1 s while waiting at its "
	       "descriptor limit", cpu1 - cpu0);

	/* established connections still served (pooled origin connections; tunnels) */
	for (int k = 0; k < KEEP; k++) {
		struct harness_resp r;

		EXPECT(harness_send_str(&keep[k], q) == FERRY_OK, "keep-alive client %d: send", k);
		EXPECT(harness_read_response(&keep[k], &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
		       "keep-alive client %d at the fd limit: no response (eof %d err %d)", k,
		       keep[k].eof, keep[k].err);
		EXPECT(r.status == 200 && r.complete && r.body_len == 100,
		       "keep-alive client %d at the fd limit: status %d", k, r.status);
		harness_resp_free(&r);
	}
	for (int k = 0; k < TUNNELS; k++) {
		EXPECT(harness_send_str(&tun[k], "ping") == FERRY_OK, "tunnel %d: send", k);
		EXPECT(harness_read_atleast(&tun[k], 4, HARNESS_TIMEOUT_MS) >= 4 &&
		       memcmp(tun[k].buf, "ping", 4) == 0,
		       "tunnel %d at the fd limit: no echo (err %d)", k, tun[k].err);
		free(harness_take(&tun[k], 4));
	}

	/* the attempts go away: ferry recovers */
	for (int k = 0; k < ATTEMPTS; k++)
		close(att[k]);
	{
		int ok = 0;
		long long t0 = harness_now_ms();

		while (!ok && harness_now_ms() - t0 < 20000) {
			struct harness_resp r;
			char *cq = req("GET", "/len/100", "Connection: close\r\n");

			ok = harness_request(ferry.port, cq, &r, 0) == FERRY_OK && r.status == 200 &&
			     r.complete;
			harness_resp_free(&r);
			free(cq);
			if (!ok)
				harness_sleep_ms(200);
		}
		EXPECT(ok, "no new request succeeded within 20 s after the attempts closed");
		for (int k = 0; k < 5; k++)
			expect_alive("fd exhaustion");
	}
	for (long long t0 = harness_now_ms(); harness_now_ms() - t0 < 10000; harness_sleep_ms(50)) {
		nfds = harness_proc_nfds(child);
		if (nfds <= base_fds + 4)
			break;
	}
	EXPECT(nfds <= base_fds + 4, "ferry's child holds %d descriptors after recovery, %d before "
	       "the attempts (leak?)", nfds, base_fds);
	for (int k = 0; k < KEEP; k++)
		harness_close(&keep[k]);
	for (int k = 0; k < TUNNELS; k++)
		harness_close(&tun[k]);
	free(att);
	free(q);
	end();
}
END_TEST

/* ==== origin faults ==== */

/* The origin reads the request and never answers: 504 after upstream_idle, not before. */
START_TEST(origin_stalls_504)
{
	struct harness_conn c;
	struct harness_resp r;
	char *q;
	long long t0;

	begin(_i);
	harness_conf_set(&conf, "timeouts", "upstream_idle", "1");
	go();
	q = req("GET", "/stall", "");
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	t0 = harness_now_ms();
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "stalled origin: no response (err %d)", c.err);
	EXPECT(r.status == 504, "stalled origin: status %d, want 504", r.status);
	EXPECT(harness_now_ms() - t0 >= 800, "504 after %lld ms, before upstream_idle (1 s)",
	       harness_now_ms() - t0);
	EXPECT(harness_resp_has_token(&r, "Connection", "close"), "504 without Connection: close");
	harness_resp_free(&r);
	harness_close(&c);
	free(q);
	expect_alive("a stalled origin");
	end();
}
END_TEST

/* The origin sends a head and part of the body, then stalls: at upstream_idle the client sees
 * the truncation (never a complete body). */
START_TEST(origin_stalls_mid_body)
{
	struct harness_conn c;
	struct harness_resp r;
	char *q;

	begin(_i);
	harness_conf_set(&conf, "timeouts", "upstream_idle", "1");
	go();
	q = req("GET", "/stall_body", "");
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "no response head (err %d)", c.err);
	EXPECT(r.status == 200 && !r.complete && r.body_len <= 100,
	       "stall mid-body: status %d, complete %d, %zu bytes", r.status, r.complete, r.body_len);
	EXPECT(c.err != ETIMEDOUT, "stall mid-body: ferry did not end the response within %d ms",
	       HARNESS_TIMEOUT_MS);
	harness_resp_free(&r);
	harness_close(&c);
	free(q);
	end();
}
END_TEST

/* A long body with a length that the origin cuts short (FIN or reset), past the first read,
 * where ferry relays it with splice(2): the client never sees a complete response. */
START_TEST(origin_cuts_long_body)
{
	static const char *const paths[] = { "/cut/500000", "/cut_rst/500000", "/cut/70000" };

	begin(_i);
	go();
	for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
		struct harness_conn c;
		struct harness_resp r;
		char *q = req("GET", paths[k], "");

		ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
		int rc = harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS);
		EXPECT(c.err != ETIMEDOUT, "%s: ferry did not end the response", paths[k]);
		if (rc == FERRY_OK)
			EXPECT(r.status == 200 && !r.complete && is_pattern(r.body, r.body_len),
			       "%s: status %d, complete %d, %zu bytes: a cut body looked whole or wrong",
			       paths[k], r.status, r.complete, r.body_len);
		harness_resp_free(&r);
		harness_close(&c);
		free(q);
	}
	expect_alive("origin cuts long bodies");
	end();
}
END_TEST

/* The origin resets in the middle of a chunked body and of a close-delimited body. For the
 * latter only the reset tells truncation from the end: ferry must pass it on as a reset
 * rather than ending the client's response with a clean close. */
START_TEST(origin_resets_mid_body)
{
	static const char *const raws[] = { "reset_chunked", "reset_close" };

	begin(_i);
	go();
	for (size_t k = 0; k < sizeof(raws) / sizeof(raws[0]); k++) {
		struct harness_resp r;
		char *path = harness_fmt("/raw/%s", raws[k]);
		char *q = req("GET", path, "");

		if (harness_request(ferry.port, q, &r, 0) == FERRY_OK)
			EXPECT(r.status == 502 || (r.status == 200 && !r.complete),
			       "%s: status %d, complete %d (%zu bytes): a reset body looked whole",
			       path, r.status, r.complete, r.body_len);
		harness_resp_free(&r);
		free(q);
		free(path);
	}
	expect_alive("origin resets");
	end();
}
END_TEST

/* A pooled origin connection that the origin drops just as ferry reuses it (it reads the
 * request, then closes or resets without a byte of answer): a GET is retried once on a fresh
 * connection and the client gets the right answer. */
START_TEST(pooled_connection_dropped_retried)
{
	static const char *const paths[] = { "/dropsecond", "/dropsecond_rst" };

	begin(_i);
	harness_conf_set(&conf, "server", "threads", "1");
	go();
	for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
		struct harness_conn c;
		struct harness_resp r;
		char *q = req("GET", paths[k], "");

		ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
		for (int round = 0; round < 3; round++) {
			ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
			EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
			       "%s round %d: no response (eof %d err %d)", paths[k], round, c.eof,
			       c.err);
			EXPECT(r.status == 200 && r.complete && strcmp(r.body, "first") == 0,
			       "%s round %d: status %d body \"%s\" (not retried?)", paths[k], round,
			       r.status, r.body);
			harness_resp_free(&r);
		}
		harness_close(&c);
		free(q);
	}
	end();
}
END_TEST

/* The origin closes an idle pooled connection a moment after answering: the next request
 * gets a correct answer (the pool noticed, or the request was retried). */
START_TEST(pooled_connection_closed_while_idle)
{
	struct harness_conn c;
	struct harness_resp r;
	char *q1, *q2;

	begin(_i);
	harness_conf_set(&conf, "server", "threads", "1");
	go();
	q1 = req("GET", "/idleclose/200", "");
	q2 = req("GET", "/len/10", "");
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	for (int round = 0; round < 3; round++) {
		ck_assert_int_eq(harness_send_str(&c, q1), FERRY_OK);
		EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
		       r.status == 200 && strcmp(r.body, "idle") == 0, "round %d: /idleclose: "
		       "status %d", round, r.status);
		harness_resp_free(&r);
		harness_sleep_ms(500); /* the origin closes its side after 200 ms of silence */
		ck_assert_int_eq(harness_send_str(&c, q2), FERRY_OK);
		EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
		       "round %d: request after the origin closed the pooled connection: no "
		       "response (eof %d err %d)", round, c.eof, c.err);
		EXPECT(r.status == 200 && r.complete && r.body_len == 10 && is_pattern(r.body, 10),
		       "round %d: request after the origin closed the pooled connection: status %d",
		       round, r.status);
		harness_resp_free(&r);
	}
	harness_close(&c);
	free(q1);
	free(q2);
	end();
}
END_TEST

/* The same drop for a POST: not idempotent, so never retried (RFC 9110 section 9.2.2): the
 * client gets 502, and the origin saw the request on one connection only. */
START_TEST(pooled_connection_dropped_post_not_retried)
{
	struct harness_conn c;
	struct harness_resp r;
	unsigned long s0, s1;
	char *q;

	begin(_i);
	harness_conf_set(&conf, "server", "threads", "1");
	go();
	q = req("POST", "/dropsecond", "Content-Length: 0\r\n");
	s0 = origin_serial();
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK && r.status == 200,
	       "first POST: status %d", r.status);
	harness_resp_free(&r);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
	       "second POST: no response (eof %d err %d)", c.eof, c.err);
	EXPECT(r.status == 502, "POST on a dropped pooled connection: status %d, want 502 (a "
	       "POST must not be retried)", r.status);
	harness_resp_free(&r);
	harness_close(&c);
	s1 = origin_serial();
	EXPECT(s1 == s0 + 2, "origin connections: %lu before, %lu after: the POST was sent on "
	       "%lu connections, want 1", s0, s1, s1 - s0 - 1);
	free(q);
	end();
}
END_TEST

/* A client that half-closes (shutdown(SHUT_WR), as `printf ... | nc -N` does) after whole
 * requests gets every answer, then a clean close; one that half-closes in the middle of a
 * body gets a 400 saying so. It used to get a reset and no answer at all. */
START_TEST(client_half_close)
{
	struct harness_conn c;
	struct harness_resp r;
	char *q1, *q2, *q3, *both, *cut, *cutb;

	begin(_i); /* starts the origin: req() needs its port */
	go();
	q1 = req("GET", "/len/5", "");
	q2 = req("GET", "/sleep/200", "");
	q3 = req("POST", "/echo", "Content-Length: 2\r\n");
	both = harness_fmt("%s%s%shi", q1, q2, q3);
	cut = req("POST", "/echo", "Content-Length: 10\r\n");
	cutb = harness_fmt("%shello", cut);
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q1), FERRY_OK);
	harness_shutdown_write(&c);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK && r.status == 200 &&
	       r.complete && r.body_len == 5, "GET then half-close: status %d, complete %d "
	       "(eof %d err %d)", r.status, r.complete, c.eof, c.err);
	harness_resp_free(&r);
	free(harness_read_to_close(&c, &(size_t){ 0 }, HARNESS_TIMEOUT_MS));
	EXPECT(c.eof && !c.err, "GET then half-close: no clean close after the answer (err %d)",
	       c.err);
	harness_close(&c);

	/* three pipelined requests, the second one slow, then the FIN: all three answered */
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, both), FERRY_OK);
	harness_shutdown_write(&c);
	for (int k = 0; k < 3; k++) {
		EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
		       r.status == 200 && r.complete, "pipelined request %d before the FIN: "
		       "status %d (eof %d err %d)", k + 1, r.status, c.eof, c.err);
		if (k == 2)
			EXPECT(r.body && strcmp(r.body, "hi") == 0, "third answer: \"%s\"",
			       r.body ? show(r.body, r.body_len) : "");
		harness_resp_free(&r);
	}
	harness_close(&c);

	/* the FIN in the middle of the body */
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, cutb), FERRY_OK);
	harness_shutdown_write(&c);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK && r.status == 400 &&
	       harness_resp_has_token(&r, "Connection", "close") && r.body &&
	       strstr(r.body, "cut short"), "half-close mid body: status %d (eof %d err %d)",
	       r.status, c.eof, c.err);
	harness_resp_free(&r);
	harness_close(&c);

	/* the same in a long body, which goes through a pipe (spliced) once it is under way */
	char *big = req("POST", "/sink", "Content-Length: 4000000\r\n");
	char *part = harness_pattern(300000);
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, big), FERRY_OK);
	ck_assert_int_eq(harness_send(&c, part, 300000), FERRY_OK);
	harness_shutdown_write(&c);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK && r.status == 400 &&
	       r.body && strstr(r.body, "cut short"), "half-close mid long body: status %d (eof %d err %d)",
	       r.status, c.eof, c.err);
	harness_resp_free(&r);
	harness_close(&c);
	free(big);
	free(part);
	expect_alive("half-closing clients");
	free(q1), free(q2), free(q3), free(both), free(cut), free(cutb);
	end();
}
END_TEST

/* An HTTP/1.0 request's Upgrade is ignored (RFC 9110 section 7.8): the origin gets no
 * Upgrade (the test origin answers /ws with 426 then), and the client never gets a 101, which
 * as a 1xx must not go to an HTTP/1.0 client. The same request in HTTP/1.1 is upgraded. */
START_TEST(upgrade_from_http10_ignored)
{
	struct harness_conn c;
	struct harness_resp r;
	char *q10, *q11;

	begin(_i);
	go();
	q10 = harness_fmt("GET http://127.0.0.1:%d/ws HTTP/1.0\r\nUpgrade: websocket\r\n"
		          "Connection: Upgrade\r\n\r\n", origin.port);
	q11 = req("GET", "/ws", "Upgrade: websocket\r\nConnection: Upgrade\r\n");
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q10), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK && r.status == 426,
	       "HTTP/1.0 upgrade request: status %d, want the origin's 426 (no Upgrade forwarded)",
	       r.status);
	harness_resp_free(&r);
	harness_close(&c);

	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q11), FERRY_OK);
	EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK && r.status == 101,
	       "HTTP/1.1 upgrade request: status %d, want 101", r.status);
	harness_resp_free(&r);
	harness_close(&c);
	free(q10);
	free(q11);
	expect_alive("upgrade requests");
	end();
}
END_TEST

/* ==== suite ==== */

struct test_entry {
	const char *tcase;
	const TTest *const *fn;
	int timeout;          /* hang guard, seconds */
};

#define T(tc, name, to) { tc, &name, to }
static const struct test_entry tests[] = {
	T("requests", request_shapes_refused, 120),
	T("requests", connection_names_framing_field, 60),
	T("requests", content_length_repeated_normalised, 60),
	T("requests", connection_lists_itself, 60),
	T("requests", chunked_request_body_malformed, 120),
	T("responses", response_shapes_502, 60),
	T("responses", response_content_length_repeated, 60),
	T("responses", response_bad_first_chunk_502, 60),
	T("responses", switch_without_upgrade_502, 60),
	T("requests", upgrade_from_http10_ignored, 60),
	T("responses", response_bodiless_framing_dropped, 60),
	T("limits", oversized_requests, 120),
	T("abuse", slowloris, 90),
	T("abuse", slow_reader, 90),
	T("abuse", fd_exhaustion, 120),
	T("faults", client_half_close, 60),
	T("faults", origin_stalls_504, 60),
	T("faults", origin_stalls_mid_body, 60),
	T("faults", origin_resets_mid_body, 60),
	T("faults", origin_cuts_long_body, 60),
	T("faults", pooled_connection_dropped_retried, 60),
	T("faults", pooled_connection_closed_while_idle, 60),
	T("faults", pooled_connection_dropped_post_not_retried, 60),
};

static Suite *hardening_suite(void)
{
	Suite *s = suite_create("hardening");
	const char *only = getenv("FERRY_E2E_MUX");
	int lo = 0, hi = 2;

	if (only && strcmp(only, "poll") == 0)
		hi = 1;
	else if (only && strcmp(only, "epoll") == 0)
		lo = 1;
	for (size_t k = 0; k < sizeof(tests) / sizeof(tests[0]); k++) {
		/* one TCase per test, so each has its own hang guard */
		TCase *tc = tcase_create(tests[k].tcase);

		tcase_add_checked_fixture(tc, NULL, teardown);
		tcase_set_timeout(tc, tests[k].timeout);
		tcase_add_loop_test(tc, *tests[k].fn, lo, hi);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hardening_suite());
	struct rlimit rl;
	int failed;

	/* the slowloris and fd tests hold a few thousand sockets on this side */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
