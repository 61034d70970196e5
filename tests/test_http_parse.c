/* test_http_parse.c - the strict HTTP/1.x parser: request and response heads, framing rules,
 * request targets, the chunked decoder, incremental parsing and limits. Every input is
 * copied into a buffer of exactly its size, so that ASan catches a read past the end. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"
#include "status.h"

#define MAXF 16

static const struct http_limits lim = { 256, 2048, MAXF };
static struct http_field fields[MAXF];
static char *held; /* the exact-size copy the last result points into */

static const char *hold(const char *s, size_t n)
{
	free(held);
	held = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(held);
	memcpy(held, s, n);
	return held;
}

static void release(void)
{
	free(held);
	held = NULL;
}

static int req_n(const char *s, size_t n, struct http_head *h)
{
	size_t scanned = 0;
	const char *b = hold(s, n);

	memset(h, 0xa5, sizeof *h); /* stale garbage must not leak into results */
	h->fields = fields;
	return http_parse_request(b, n, &scanned, &lim, h);
}

static int req(const char *s, struct http_head *h)
{
	return req_n(s, strlen(s), h);
}

static int resp_n(const char *s, size_t n, int head, int connect, struct http_head *h)
{
	size_t scanned = 0;
	const char *b = hold(s, n);

	memset(h, 0xa5, sizeof *h);
	h->fields = fields;
	return http_parse_response(b, n, &scanned, &lim, head, connect, h);
}

static int resp(const char *s, int head, int connect, struct http_head *h)
{
	return resp_n(s, strlen(s), head, connect, h);
}

/* The status a client would get for this request: 0 when it parses, -2 when incomplete. */
static int req_status(const char *s)
{
	struct http_head h;
	int rc = req(s, &h);

	if (rc == FERRY_ERR) {
		ck_assert_ptr_nonnull(h.error);
		ck_assert_uint_gt(strlen(h.error), 0);
		return h.error_status;
	}
	return rc;
}

static int resp_status(const char *s)
{
	struct http_head h;
	int rc = resp(s, 0, 0, &h);

	if (rc == FERRY_ERR) {
		ck_assert_ptr_nonnull(h.error);
		return h.error_status;
	}
	return rc;
}

/* A head with one extra field block, Host included. */
static int req_fields_status(const char *f)
{
	char b[1024];

	snprintf(b, sizeof b, "POST http://h/ HTTP/1.1\r\nHost: h\r\n%s\r\n", f);
	return req_status(b);
}

static int resp_fields_status(const char *f)
{
	char b[1024];

	snprintf(b, sizeof b, "HTTP/1.1 200 OK\r\n%s\r\n", f);
	return resp_status(b);
}

static int slice_is(struct http_slice s, const char *want)
{
	return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

#define ck_slice(s, want) ck_assert_msg(slice_is((s), (want)), "slice \"%.*s\" != \"%s\"", \
					 (int)(s).len, (s).p, (want))

/* ---- helpers ---------------------------------------------------------------------------- */

START_TEST(test_helpers)
{
	struct http_slice s = { "Chunked", 7 };

	ck_assert(http_slice_eq(s, "chunked"));
	ck_assert(!http_slice_eq(s, "chunke"));
	ck_assert(!http_slice_eq(s, "chunkedx"));
	ck_assert(!http_slice_eq((struct http_slice){ "chunk", 5 }, "chunked"));
	ck_assert(http_slice_eq((struct http_slice){ "", 0 }, ""));
	s = (struct http_slice){ "foo, Keep-Alive ,,\tbar", 22 };
	ck_assert(http_list_has(s, "keep-alive"));
	ck_assert(http_list_has(s, "foo"));
	ck_assert(http_list_has(s, "bar"));
	ck_assert(!http_list_has(s, "close"));
	ck_assert(!http_list_has(s, "keep"));
	ck_assert(http_is_tchar('a') && http_is_tchar('~') && http_is_tchar('!'));
	ck_assert(!http_is_tchar(':') && !http_is_tchar(' ') && !http_is_tchar('"') &&
		  !http_is_tchar(0x80) && !http_is_tchar(0));
}
END_TEST

/* ---- request heads ---------------------------------------------------------------------- */

START_TEST(test_req_simple)
{
	struct http_head h;
	const char *s = "GET http://example.com/a?b=c HTTP/1.1\r\n"
			"Host: example.com\r\n"
			"User-Agent:  curl/8  \r\n"
			"X-Empty:\r\n"
			"\r\n"
			"GET /next"; /* a pipelined request is not part of the head */

	ck_assert_int_eq(req(s, &h), FERRY_OK);
	ck_slice(h.method, "GET");
	ck_slice(h.target, "http://example.com/a?b=c");
	ck_assert_int_eq(h.version, 11);
	ck_assert_uint_eq(h.head_len, strlen(s) - strlen("GET /next"));
	ck_assert_ptr_eq(h.fields, fields);
	ck_assert_uint_eq(h.nfields, 3);
	ck_slice(h.fields[0].name, "Host");
	ck_slice(h.fields[0].value, "example.com");
	ck_slice(h.fields[1].name, "User-Agent");
	ck_slice(h.fields[1].value, "curl/8");
	ck_slice(h.fields[2].name, "X-Empty");
	ck_assert_uint_eq(h.fields[2].value.len, 0);
	ck_assert_int_eq(h.body, HTTP_BODY_NONE);
	ck_assert_uint_eq(h.flags, HTTP_F_HAS_HOST);
	/* slices point into the caller's buffer */
	ck_assert_ptr_eq(h.method.p, held);
	release();
}
END_TEST

START_TEST(test_req_http10_and_connect)
{
	struct http_head h;

	ck_assert_int_eq(req("GET http://h/ HTTP/1.0\r\n\r\n", &h), FERRY_OK);
	ck_assert_int_eq(h.version, 10);
	ck_assert_uint_eq(h.nfields, 0);
	ck_assert_uint_eq(h.flags, 0);
	ck_assert_int_eq(req("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", &h), FERRY_OK);
	ck_slice(h.method, "CONNECT");
	ck_slice(h.target, "h:443");
	ck_assert_int_eq(h.body, HTTP_BODY_NONE);
	/* any token is a method; the proxy decides what it supports */
	ck_assert_int_eq(req("M-SEARCH! * HTTP/1.1\r\nHost: h\r\n\r\n", &h), FERRY_OK);
	ck_slice(h.method, "M-SEARCH!");
	ck_slice(h.target, "*");
	release();
}
END_TEST

START_TEST(test_req_content_length)
{
	struct http_head h;

	ck_assert_int_eq(req("POST http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n", &h),
			 FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_LENGTH);
	ck_assert_uint_eq(h.content_length, 42);
	ck_assert_uint_eq(h.flags, HTTP_F_HAS_HOST | HTTP_F_HAS_CL);

	ck_assert_int_eq(req("POST http://h/ HTTP/1.1\r\nHost: h\r\ncontent-length: 0\r\n\r\n", &h),
			 FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_NONE);
	ck_assert_uint_eq(h.content_length, 0);
	ck_assert(h.flags & HTTP_F_HAS_CL);

	/* a list of identical values, and repeated identical fields, are one value */
	ck_assert_int_eq(req("POST http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", &h),
			 FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_LENGTH);
	ck_assert_uint_eq(h.content_length, 5);
	ck_assert_int_eq(req("POST http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n"
			     "CONTENT-LENGTH: 7\r\n\r\n", &h), FERRY_OK);
	ck_assert_uint_eq(h.content_length, 7);

	/* 2^63-1 is the most: a next hop reading a signed 64-bit length reads it the same */
	ck_assert_int_eq(req("POST http://h/ HTTP/1.1\r\nHost: h\r\n"
			     "Content-Length: 9223372036854775807\r\n\r\n", &h), FERRY_OK);
	ck_assert_uint_eq(h.content_length, UINT64_C(9223372036854775807));
	ck_assert_int_eq(req("POST http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n", &h),
			 FERRY_OK);
	ck_assert_uint_eq(h.content_length, 7);
	release();
}
END_TEST

START_TEST(test_req_content_length_rejects)
{
	static const char *const bad[] = {
		"Content-Length: 1\r\nContent-Length: 2\r\n",
		"Content-Length: 1, 2\r\n",
		"Content-Length: 5,\r\n",
		"Content-Length: ,5\r\n",
		"Content-Length: +5\r\n",
		"Content-Length: -5\r\n",
		"Content-Length: 0x5\r\n",
		"Content-Length:\r\n",
		"Content-Length:   \r\n",
		"Content-Length: 1_0\r\n",
		"Content-Length: 1 0\r\n",
		"Content-Length: 12345678901234567890\r\n",
		"Content-Length: 9223372036854775808\r\n",  /* 2^63 */
		"Content-Length: 9999999999999999999\r\n",
		"Content-Length: 99999999999999999999999\r\n",
		"Content-Length: 5\x0b\r\n",
		"Content-Length: \0135\r\n",
		"Content-Length: 5e2\r\n",
		"Content-Length: \"5\"\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(req_fields_status(bad[i]) == 400, "accepted: %s", bad[i]);
		ck_assert_msg(resp_fields_status(bad[i]) == 502, "response accepted: %s", bad[i]);
	}
	release();
}
END_TEST

START_TEST(test_req_chunked)
{
	struct http_head h;

	ck_assert_int_eq(req("POST http://h/ HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
			     &h), FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_CHUNKED);
	ck_assert_uint_eq(h.flags, HTTP_F_HAS_HOST | HTTP_F_HAS_TE);

	ck_assert_int_eq(req("POST http://h/ HTTP/1.1\r\nHost: h\r\n"
			     "Transfer-Encoding: gzip ,\tChunked\r\n\r\n", &h), FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_CHUNKED);
	/* repeated fields join into one list: gzip, chunked */
	ck_assert_int_eq(req("POST http://h/ HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n"
			     "transfer-encoding: CHUNKED\r\n\r\n", &h), FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_CHUNKED);
	ck_assert_int_eq(req_fields_status("Transfer-Encoding: x-gzip, deflate, compress, "
					   "x-compress, chunked\r\n"), FERRY_OK);
	release();
}
END_TEST

START_TEST(test_req_transfer_encoding_rejects)
{
	static const char *const bad[] = {
		"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
		"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
		"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
		"Transfer-Encoding: chunked, gzip\r\n",
		"Transfer-Encoding: chunked, chunked\r\n",
		"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
		"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
		"Transfer-Encoding: \"chunked\"\r\n",
		"Transfer-Encoding: chunked\x01\r\n",
		"Transfer-Encoding: \001chunked\r\n",
		"Transfer-Encoding: chu\x7fnked\r\n",
		"Transfer-Encoding: chunked;q=1\r\n",
		"Transfer-Encoding: chunked,\r\n",
		"Transfer-Encoding: , chunked\r\n",
		"Transfer-Encoding: gzip,,chunked\r\n",
		"Transfer-Encoding:\r\n",
		"Transfer-Encoding: gzip\r\n",
		"Transfer-Encoding: gzip, \xff\r\n",
		"Transfer-Encoding: chunked, xyz\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(req_fields_status(bad[i]) == 400, "accepted: %s", bad[i]);
		ck_assert_msg(resp_fields_status(bad[i]) == 502, "response accepted: %s", bad[i]);
	}
	/* well-formed but unknown codings are not implemented */
	ck_assert_int_eq(req_fields_status("Transfer-Encoding: xchunked\r\n"), 501);
	ck_assert_int_eq(req_fields_status("Transfer-Encoding: identity\r\n"), 501);
	ck_assert_int_eq(req_fields_status("Transfer-Encoding: br, chunked\r\n"), 501);
	ck_assert_int_eq(resp_fields_status("Transfer-Encoding: xchunked\r\n"), 502);
	/* HTTP/1.0 with Transfer-Encoding: the framing is faulty (RFC 9112 section 6.1) */
	ck_assert_int_eq(req_status("POST http://h/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
			 400);
	release();
}
END_TEST

START_TEST(test_req_error_strings)
{
	struct http_head h;

	ck_assert_int_eq(req("POST http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
			     "Transfer-Encoding: chunked\r\n\r\n", &h), FERRY_ERR);
	ck_assert_str_eq(h.error, "Content-Length with Transfer-Encoding");
	ck_assert_int_eq(req("POST http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", &h),
			 FERRY_ERR);
	ck_assert_str_eq(h.error, "malformed Content-Length");
	ck_assert_int_eq(req("GET http://h/ HTTP/1.1\r\nHost : h\r\n\r\n", &h), FERRY_ERR);
	ck_assert_str_eq(h.error, "whitespace before colon");
	ck_assert_int_eq(req("GET http://h/ HTTP/1.1\r\nHost: h\r\n x\r\n\r\n", &h), FERRY_ERR);
	ck_assert_str_eq(h.error, "obs-fold not allowed");
	ck_assert_int_eq(req("GET http://h/ HTTP/1.1\nHost: h\r\n\r\n", &h), FERRY_ERR);
	ck_assert_str_eq(h.error, "bare LF");
	ck_assert_int_eq(req("GET http://h/ HTTP/2.0\r\nHost: h\r\n\r\n", &h), FERRY_ERR);
	ck_assert_str_eq(h.error, "unsupported HTTP version");
	ck_assert_int_eq(req("GET http://h/ HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: foo\r\n\r\n",
			     &h), FERRY_ERR);
	ck_assert_str_eq(h.error, "unknown transfer coding");
	ck_assert_int_eq(req("GET http://h/ HTTP/1.1\r\nHo(st: h\r\n\r\n", &h), FERRY_ERR);
	ck_assert_str_eq(h.error, "invalid field name");
	release();
}
END_TEST

START_TEST(test_req_field_syntax_rejects)
{
	static const char *const bad[] = {
		"Host : h\r\n",           /* whitespace before colon */
		"Host\t: h\r\n",
		"X: a\r\n folded\r\n",     /* obs-fold */
		"X: a\r\n\tfolded\r\n",
		"X: a\rb\r\n",             /* bare CR in a value */
		"X\r: a\r\n",              /* bare CR in a name */
		"X: a\r\r\n",
		"X: a\x01\r\n",            /* other CTL */
		"X: a\x7f\r\n",            /* DEL */
		"X(y): a\r\n",             /* invalid name characters */
		"X y: a\r\n",
		"X\"y: a\r\n",
		"X/y: a\r\n",
		"\xc3\xa9: a\r\n",
		": a\r\n",                 /* empty name */
		"NoColon\r\n",
		"X: a\n",                  /* bare LF line end */
		"Connection: close, @x\r\n",
		"Connection: \"close\"\r\n",
		"Host: second\r\n",        /* more than one Host */
	};
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(req_fields_status(bad[i]) == 400, "accepted: %s", bad[i]);
	/* NUL shapes (not C strings) */
	{
		static const char nul_value[] = "GET http://h/ HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
		static const char nul_name[] = "GET http://h/ HTTP/1.1\r\nHost: h\r\nX\0Y: a\r\n\r\n";
		static const char nul_line[] = "GET http://h/\0 HTTP/1.1\r\nHost: h\r\n\r\n";
		static const char nul_resp[] = "HTTP/1.1 200 OK\r\nX: \0\r\n\r\n";
		struct http_head h;

		ck_assert_int_eq(req_n(nul_value, sizeof nul_value - 1, &h), FERRY_ERR);
		ck_assert_int_eq(h.error_status, 400);
		ck_assert_int_eq(req_n(nul_name, sizeof nul_name - 1, &h), FERRY_ERR);
		ck_assert_int_eq(h.error_status, 400);
		ck_assert_int_eq(req_n(nul_line, sizeof nul_line - 1, &h), FERRY_ERR);
		ck_assert_int_eq(h.error_status, 400);
		ck_assert_int_eq(resp_n(nul_resp, sizeof nul_resp - 1, 0, 0, &h), FERRY_ERR);
		ck_assert_int_eq(h.error_status, 502);
	}
	/* obs-fold before the first field, and bare LF shapes */
	ck_assert_int_eq(req_status("GET http://h/ HTTP/1.1\r\n Host: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET http://h/ HTTP/1.1\r\n\tHost: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET http://h/ HTTP/1.1\nHost: h\n\n"), 400);
	ck_assert_int_eq(req_status("GET http://h/ HTTP/1.1\r\nHost: h\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET http://h/ HTTP/1.1\r\nHost: h\r\n\n"), 400);
	/* a bare LF is refused as soon as it arrives, not when the head is complete */
	ck_assert_int_eq(req_status("GET http://h/ HTTP/1.1\n"), 400);
	/* bare CR in the request line */
	ck_assert_int_eq(req_status("GET http://h/ HTTP/1.1\r\r\nHost: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET http://h/\r HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
	/* values may hold obs-text, HTAB and inner spaces */
	ck_assert_int_eq(req_fields_status("X: caf\xc3\xa9\tand  more\r\n"), FERRY_OK);
	ck_assert_int_eq(req_fields_status("X-Odd_Name!#$%&'*+.^`|~: 1\r\n"), FERRY_OK);
	release();
}
END_TEST

START_TEST(test_req_line_rejects)
{
	/* TLS ClientHello sent to the plain port: refused at the first byte */
	static const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x8a\x1b";
	struct http_head h;

	ck_assert_int_eq(req_n(hello, sizeof hello - 1, &h), FERRY_ERR);
	ck_assert_int_eq(h.error_status, 400);
	ck_assert_int_eq(req_n(hello, 1, &h), FERRY_ERR);
	ck_assert_int_eq(h.error_status, 400);
	ck_assert_int_eq(req_status("\x80\x81\x82\r\n\r\n"), 400);

	ck_assert_int_eq(req_status(" / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);        /* no method */
	ck_assert_int_eq(req_status(" "), 400);                                      /* early */
	ck_assert_int_eq(req_status("GET  /x HTTP/1.1\r\nHost: h\r\n\r\n"), 400);   /* two SP */
	ck_assert_int_eq(req_status("GET /x  HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET\t/x HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET /x HTTP/1.1 \r\nHost: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET HTTP/1.1\r\nHost: h\r\n\r\n"), 400);     /* no target */
	ck_assert_int_eq(req_status("GET /x\r\n\r\n"), 400);                       /* HTTP/0.9 */
	ck_assert_int_eq(req_status("GET /x\x7f HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("G(T / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
	/* past the first 16 bytes, found when the head is complete */
	ck_assert_int_eq(req_status("ABCDEFGHIJKLMNOPQRSTU\x01 / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("ABCDEFGHIJKLMNOPQRSTU/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\nHost: h\r\n\r\n"), FERRY_OK);
	ck_assert_int_eq(req_status("\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);

	ck_assert_int_eq(req_status("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
	ck_assert_int_eq(req_status("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 505);
	ck_assert_int_eq(req_status("GET / HTTP/0.9\r\nHost: h\r\n\r\n"), 505);
	ck_assert_int_eq(req_status("GET / http/1.1\r\nHost: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET / HTTP/1.10\r\nHost: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET / HTTP/11\r\nHost: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET / HTTP/1,1\r\nHost: h\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET / HTTPS/1.1\r\nHost: h\r\n\r\n"), 400);

	/* Host: required in HTTP/1.1, at most once */
	ck_assert_int_eq(req_status("GET http://h/ HTTP/1.1\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET http://h/ HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), 400);
	ck_assert_int_eq(req_status("GET http://h/ HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n"), 400);
	release();
}
END_TEST

/* A request line that can never start a valid head is refused as soon as its CRLF is there,
 * whether it arrives at once or a byte at a time; a good line waits for the rest. */
START_TEST(test_req_line_refused_early)
{
	static const struct { const char *line; int status; } bad[] = {
		{ "GET http://h/\r\n", 400 },           /* HTTP/0.9 */
		{ "GET /\r\n", 400 },
		{ "GET http://h/ HTTP/3\r\n", 400 },
		{ "GET http://h/ HTTP/2.0\r\nHost: h\r\n", 505 },
		{ "GET http://h/ HTTP/1.1 \r\n", 400 },
		{ "GET  http://h/ HTTP/1.1\r\n", 400 },
	};
	struct http_head h;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *s = bad[i].line;
		size_t n = strlen(s), scanned = 0, k;
		const char *b = hold(s, n);
		int r = FERRY_AGAIN;

		h.fields = fields;
		ck_assert_msg(http_parse_request(b, n, &scanned, &lim, &h) == FERRY_ERR &&
			      h.error_status == bad[i].status, "not refused at once: %s", s);
		/* byte by byte: AGAIN until the LF of the line, then the same error */
		scanned = 0;
		for (k = 1; k <= n && r == FERRY_AGAIN; k++)
			r = http_parse_request(b, k, &scanned, &lim, &h);
		ck_assert_msg(r == FERRY_ERR && h.error_status == bad[i].status,
			      "byte by byte: %d/%d for %s", r, h.error_status, s);
		ck_assert_msg(b[k - 2] == '\n', "refused before the LF of: %s", s);
	}
	/* a good line, and a good line trickled, wait for the fields */
	{
		const char *s = "GET http://h/ HTTP/1.1\r\nHost: h\r\n";
		size_t n = strlen(s), scanned = 0;
		const char *b = hold(s, n);

		h.fields = fields;
		for (size_t k = 1; k <= n; k++)
			ck_assert_int_eq(http_parse_request(b, k, &scanned, &lim, &h), FERRY_AGAIN);
	}
	release();
}
END_TEST

START_TEST(test_req_flags)
{
	struct http_head h;

	ck_assert_int_eq(req("GET http://h/ HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, Upgrade\r\n"
			     "Upgrade: websocket\r\n\r\n", &h), FERRY_OK);
	ck_assert_uint_eq(h.flags, HTTP_F_HAS_HOST | HTTP_F_CONN_KEEPALIVE | HTTP_F_CONN_UPGRADE |
					   HTTP_F_HAS_UPGRADE);
	ck_assert_int_eq(req("GET http://h/ HTTP/1.1\r\nHost: h\r\nconnection: foo,, CLOSE \r\n\r\n",
			     &h), FERRY_OK);
	ck_assert_uint_eq(h.flags, HTTP_F_HAS_HOST | HTTP_F_CONN_CLOSE);
	ck_assert_int_eq(req("GET http://h/ HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\n", &h),
			 FERRY_OK);
	ck_assert_uint_eq(h.flags, HTTP_F_CONN_KEEPALIVE);
	ck_assert_int_eq(req("GET http://h/ HTTP/1.0\r\nProxy-Connection: close\r\n\r\n", &h),
			 FERRY_OK);
	ck_assert_uint_eq(h.flags, HTTP_F_CONN_CLOSE);
	/* a token that merely contains "close" is not close */
	ck_assert_int_eq(req("GET http://h/ HTTP/1.0\r\nConnection: closed, xclose\r\n\r\n", &h),
			 FERRY_OK);
	ck_assert_uint_eq(h.flags, 0);
	ck_assert_int_eq(req("PUT http://h/ HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n"
			     "Content-Length: 3\r\n\r\n", &h), FERRY_OK);
	ck_assert_uint_eq(h.flags, HTTP_F_HAS_HOST | HTTP_F_EXPECT_CONTINUE | HTTP_F_HAS_CL);
	ck_assert_int_eq(req("PUT http://h/ HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", &h),
			 FERRY_OK);
	ck_assert_uint_eq(h.flags, HTTP_F_HAS_HOST);
	/* names of the same lengths as the ones that matter change nothing */
	ck_assert_int_eq(req("GET http://h/ HTTP/1.1\r\nDate: 1\r\nHost: h\r\nKeep-Alive: close\r\n"
			     "Accept: 100-continue\r\nReferer: x\r\nContent-Lengtx: x\r\n"
			     "Transfer-Encodinx: x\r\nProxy-Connectiox: close\r\n\r\n", &h),
			 FERRY_OK);
	ck_assert_uint_eq(h.flags, HTTP_F_HAS_HOST);
	ck_assert_int_eq(h.body, HTTP_BODY_NONE);
	ck_assert_uint_eq(h.nfields, 8);
	release();
}
END_TEST

/* Connection options are counted across the Connection and Proxy-Connection fields of a head:
 * each may name a field to drop, and forwarding compares every field with every one. */
START_TEST(test_connection_options_bounded)
{
	char head[4096], a[1024], b[1024];
	struct http_head h;

	for (int total = 64; total <= 65; total++) {
		size_t na = 0, nb = 0;

		for (int k = 0; k < 40; k++)
			na += (size_t)snprintf(a + na, sizeof a - na, "%so%d", k ? ", " : "", k);
		for (int k = 40; k < total; k++)
			nb += (size_t)snprintf(b + nb, sizeof b - nb, "%so%d", k > 40 ? "," : "", k);
		snprintf(head, sizeof head,
			 "GET http://h/ HTTP/1.1\r\nHost: h\r\nConnection: %s\r\nProxy-Connection: %s\r\n\r\n",
			 a, b);
		if (total == 64) {
			ck_assert_int_eq(req(head, &h), FERRY_OK);
			continue;
		}
		ck_assert_int_eq(req(head, &h), FERRY_ERR);
		ck_assert_int_eq(h.error_status, 400);
		ck_assert_str_eq(h.error, "too many Connection options");
		snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nConnection: %s\r\nConnection: %s\r\n\r\n", a, b);
		ck_assert_int_eq(resp(head, 0, 0, &h), FERRY_ERR);
		ck_assert_str_eq(h.error, "too many Connection options");
	}
	release();
}
END_TEST

/* ---- response heads --------------------------------------------------------------------- */

START_TEST(test_resp_simple)
{
	struct http_head h;

	ck_assert_int_eq(resp("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x\r\n\r\nbody", 0, 0,
			      &h), FERRY_OK);
	ck_assert_int_eq(h.version, 11);
	ck_assert_int_eq(h.status, 200);
	ck_slice(h.reason, "OK");
	ck_assert_uint_eq(h.nfields, 2);
	ck_slice(h.fields[1].name, "Server");
	ck_assert_int_eq(h.body, HTTP_BODY_LENGTH);
	ck_assert_uint_eq(h.content_length, 12);
	ck_assert_uint_eq(h.head_len, strlen("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n"
					    "Server: x\r\n\r\n"));
	ck_assert_uint_eq(h.flags, HTTP_F_HAS_CL);

	ck_assert_int_eq(resp("HTTP/1.0 404 Not  Found \r\n\r\n", 0, 0, &h), FERRY_OK);
	ck_assert_int_eq(h.version, 10);
	ck_assert_int_eq(h.status, 404);
	ck_slice(h.reason, "Not  Found ");
	ck_assert_int_eq(h.body, HTTP_BODY_CLOSE);
	/* empty reason, with and without its SP */
	ck_assert_int_eq(resp("HTTP/1.1 999 \r\n\r\n", 0, 0, &h), FERRY_OK);
	ck_assert_int_eq(h.status, 999);
	ck_assert_uint_eq(h.reason.len, 0);
	ck_assert_int_eq(resp("HTTP/1.1 500\r\n\r\n", 0, 0, &h), FERRY_OK);
	ck_assert_int_eq(h.status, 500);
	ck_assert_uint_eq(h.reason.len, 0);
	/* a Host field means nothing in a response */
	ck_assert_int_eq(resp("HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\n\r\n", 0, 0, &h), FERRY_OK);
	ck_assert_uint_eq(h.flags, 0);
	ck_assert_int_eq(resp("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", 0, 0, &h), FERRY_OK);
	ck_assert_uint_eq(h.flags, HTTP_F_CONN_CLOSE);
	release();
}
END_TEST

START_TEST(test_resp_framing)
{
	struct http_head h;
	const char *cl = "HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n";
	char b[128];
	static const int none[] = { 100, 101, 103, 199, 204, 304 };
	size_t i;

	ck_assert_int_eq(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0, 0,
			      &h), FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_CHUNKED);
	ck_assert_uint_eq(h.flags, HTTP_F_HAS_TE);
	ck_assert_int_eq(resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, 0, &h), FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_NONE);
	ck_assert_int_eq(resp("HTTP/1.1 200 OK\r\nX: y\r\n\r\n", 0, 0, &h), FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_CLOSE);

	for (i = 0; i < sizeof none / sizeof none[0]; i++) {
		snprintf(b, sizeof b, cl, none[i]);
		ck_assert_int_eq(resp(b, 0, 0, &h), FERRY_OK);
		ck_assert_int_eq(h.status, none[i]);
		ck_assert_msg(h.body == HTTP_BODY_NONE, "status %d has a body", none[i]);
	}
	/* HEAD: never a body, whatever the fields say */
	ck_assert_int_eq(resp("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 1, 0, &h), FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_NONE);
	ck_assert_uint_eq(h.content_length, 10);
	ck_assert_int_eq(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 0, &h),
			 FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_NONE);
	ck_assert_int_eq(resp("HTTP/1.1 200 OK\r\n\r\n", 1, 0, &h), FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_NONE);
	/* CONNECT: a 2xx starts the tunnel; other answers are framed as usual */
	ck_assert_int_eq(resp("HTTP/1.1 200 Connection Established\r\n\r\n", 0, 1, &h), FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_NONE);
	ck_assert_int_eq(resp("HTTP/1.1 299 X\r\nContent-Length: 4\r\n\r\n", 0, 1, &h), FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_NONE);
	ck_assert_int_eq(resp("HTTP/1.1 407 Auth\r\nContent-Length: 4\r\n\r\n", 0, 1, &h), FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_LENGTH);
	ck_assert_int_eq(resp("HTTP/1.1 502 Bad\r\n\r\n", 0, 1, &h), FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_CLOSE);
	/* 205 and 200 are not special */
	ck_assert_int_eq(resp("HTTP/1.1 205 Reset\r\nContent-Length: 4\r\n\r\n", 0, 0, &h), FERRY_OK);
	ck_assert_int_eq(h.body, HTTP_BODY_LENGTH);
	release();
}
END_TEST

START_TEST(test_resp_rejects)
{
	static const char *const bad[] = {
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 099 OK\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1  200 OK\r\n\r\n",
		"HTTP/1.1\t200 OK\r\n\r\n",
		"HTTP/1.1 200\tOK\r\n\r\n",
		"HTTP/1.1\r\n\r\n",
		"HTTP/2.0 200 OK\r\n\r\n",
		"HTTP/1.2 200 OK\r\n\r\n",
		"HTTP/2 200 OK\r\n\r\n",
		"http/1.1 200 OK\r\n\r\n",
		"ICY 200 OK\r\n\r\n",
		"HTTP/1.1 200 O\rK\r\n\r\n",
		"HTTP/1.1 200 O\x01K\r\n\r\n",
		"HTTP/1.1 200 OK\n\r\n",
		"HTTP/1.1 200 OK\r\nX: y\n\r\n",
		"HTTP/1.1 200 OK\r\n X: y\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX : y\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 204 OK\r\nContent-Length: x\r\n\r\n",
		"\x16\x03\x01",
		"HTTP/1.1 200 OK\r\nConnection: a b\r\n\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(resp_status(bad[i]) == 502, "accepted: %s", bad[i]);
	release();
}
END_TEST

/* ---- request targets -------------------------------------------------------------------- */

static int target(const char *s, int connect, struct http_target *t)
{
	const char *b = hold(s, strlen(s));

	memset(t, 0xa5, sizeof *t);
	return http_parse_target(b, strlen(s), connect, t);
}

static int target_status(const char *s, int connect)
{
	struct http_target t;

	if (target(s, connect, &t) == FERRY_OK)
		return 0;
	ck_assert_ptr_nonnull(t.error);
	return t.error_status;
}

START_TEST(test_target_absolute)
{
	struct http_target t;

	ck_assert_int_eq(target("http://example.com/a/b?c=d&e", 0, &t), FERRY_OK);
	ck_assert_int_eq(t.form, HTTP_TARGET_ABSOLUTE);
	ck_slice(t.host, "example.com");
	ck_assert_uint_eq(t.port, 80);
	ck_assert_int_eq(t.port_given, 0);
	ck_assert_int_eq(t.host_is_ip6, 0);
	ck_slice(t.path, "/a/b?c=d&e");
	ck_assert_ptr_eq(t.path.p, held + 18);

	ck_assert_int_eq(target("HTTP://Example.COM:8080/x", 0, &t), FERRY_OK);
	ck_slice(t.host, "Example.COM");
	ck_assert_uint_eq(t.port, 8080);
	ck_assert_int_eq(t.port_given, 1);
	ck_slice(t.path, "/x");

	ck_assert_int_eq(target("http://host", 0, &t), FERRY_OK);
	ck_slice(t.host, "host");
	ck_slice(t.path, "/");
	/* the static "/", not a byte of the caller's buffer */
	ck_assert((uintptr_t)t.path.p < (uintptr_t)held || (uintptr_t)t.path.p >= (uintptr_t)held + 11);

	ck_assert_int_eq(target("http://host:/", 0, &t), FERRY_OK);
	ck_assert_uint_eq(t.port, 80);
	ck_assert_int_eq(t.port_given, 0);
	ck_slice(t.path, "/");
	ck_assert_int_eq(target("http://host:", 0, &t), FERRY_OK);
	ck_assert_uint_eq(t.port, 80);

	ck_assert_int_eq(target("http://[::1]:8080/p", 0, &t), FERRY_OK);
	ck_slice(t.host, "::1");
	ck_assert_int_eq(t.host_is_ip6, 1);
	ck_assert_uint_eq(t.port, 8080);
	ck_slice(t.path, "/p");
	ck_assert_int_eq(target("http://[2001:db8::x.y]", 0, &t), FERRY_ERR);
	ck_assert_int_eq(target("http://[2001:DB8::1.2.3.4]", 0, &t), FERRY_OK);
	ck_slice(t.host, "2001:DB8::1.2.3.4");
	ck_assert_uint_eq(t.port, 80);
	ck_slice(t.path, "/");

	ck_assert_int_eq(target("http://127.0.0.1:65535/", 0, &t), FERRY_OK);
	ck_slice(t.host, "127.0.0.1");
	ck_assert_uint_eq(t.port, 65535);
	ck_assert_int_eq(target("http://a-b.c_d~e%41:1/", 0, &t), FERRY_OK);
	ck_slice(t.host, "a-b.c_d~e%41");
	ck_assert_uint_eq(t.port, 1);
	ck_assert_int_eq(target("http://h/?", 0, &t), FERRY_OK);
	ck_slice(t.path, "/?");
	ck_assert_int_eq(t.path_slash, 0);
	/* an empty path before a query (Python's urllib sends these): "/" is added on the way */
	ck_assert_int_eq(target("http://host?x=1", 0, &t), FERRY_OK);
	ck_slice(t.host, "host");
	ck_slice(t.path, "?x=1");
	ck_assert_int_eq(t.path_slash, 1);
	ck_assert_int_eq(t.path_absent, 0);
	ck_assert_int_eq(target("http://host:8080?", 0, &t), FERRY_OK);
	ck_assert_uint_eq(t.port, 8080);
	ck_slice(t.path, "?");
	ck_assert_int_eq(t.path_slash, 1);
	ck_assert_int_eq(target("http://host:?x", 0, &t), FERRY_OK);
	ck_assert_uint_eq(t.port, 80);
	ck_slice(t.path, "?x");
	release();
}
END_TEST

START_TEST(test_target_rejects)
{
	static const char *const bad400[] = {
		"http://host:0/",
		"http://host:65536/",
		"http://host:99999999999999999999/",
		"http://host:8x/",
		"http://host:-1/",
		"http://host:+80/",
		"http://host: 80/",
		"/path",
		"*",
		"",
		"http://user@host/",
		"http://user:pw@host/",
		"http:///path",
		"http://",
		"http://:80/",
		"http://host/#frag",
		"http://host#frag",
		"http://ho!st/",
		"http://ho,st/",
		"http://h%4/",
		"http://h%zz/",
		"http://h%",
		"http:/host/",
		"http:host",
		"http//host/",
		"://host/",
		"1http://host/",
		"http://[::1/",
		"http://[]/",
		"http://[zz::1]/",
		"http://[1.2.3.4]/",
		"http://[fe80::1%25eth0]/",
		"http://[::1]x/",
		"http://host/a b",
		"http://host/\x7f",
		"http://host/\xc3\xa9",
		"http://ho\x01st/",
	};
	size_t i;

	for (i = 0; i < sizeof bad400 / sizeof bad400[0]; i++)
		ck_assert_msg(target_status(bad400[i], 0) == 400, "accepted: %s", bad400[i]);
	/* the last one is fine: an empty port and a path holding ':' */
	ck_assert_int_eq(target_status("http://[::1]:/x:", 0), 0);
	ck_assert_int_eq(target_status("https://host/", 0), 501);
	ck_assert_int_eq(target_status("HTTPS://host:443/", 0), 501);
	ck_assert_int_eq(target_status("ftp://host/", 0), 501);
	ck_assert_int_eq(target_status("ws://host/", 0), 501);
	ck_assert_int_eq(target_status("httpx://host/", 0), 501);
	release();
}
END_TEST

START_TEST(test_target_connect)
{
	struct http_target t;
	static const char *const bad[] = {
		"host", "host:0", "host:", ":443", "", "host:443/x", "host:65536", "user@host:443",
		"[::1]", "[::1]:", "[::1]:0", "::1:443", "http://host:443", "ho st:443", "host:44 3",
		"[::1]443", "host:443#x",
	};
	size_t i;

	ck_assert_int_eq(target("example.com:443", 1, &t), FERRY_OK);
	ck_assert_int_eq(t.form, HTTP_TARGET_AUTHORITY);
	ck_slice(t.host, "example.com");
	ck_assert_uint_eq(t.port, 443);
	ck_assert_int_eq(t.port_given, 1);
	ck_assert_int_eq(t.host_is_ip6, 0);
	ck_assert_int_eq(target("[::1]:8443", 1, &t), FERRY_OK);
	ck_slice(t.host, "::1");
	ck_assert_int_eq(t.host_is_ip6, 1);
	ck_assert_uint_eq(t.port, 8443);
	ck_assert_int_eq(target("10.0.0.1:65535", 1, &t), FERRY_OK);
	ck_assert_uint_eq(t.port, 65535);

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(target_status(bad[i], 1) == 400, "accepted: %s", bad[i]);
	/* an authority is not an absolute-form target */
	ck_assert_int_eq(target_status("host:443", 0), 501);
	/* IPv6 without brackets, as openssl s_client -proxy sends it: a reason that says so */
	ck_assert_int_eq(target("::1:443", 1, &t), FERRY_ERR);
	ck_assert_str_eq(t.error, "IPv6 address without brackets ([addr]:port)");
	ck_assert_int_eq(target("2001:db8::1:443", 1, &t), FERRY_ERR);
	ck_assert_str_eq(t.error, "IPv6 address without brackets ([addr]:port)");
	ck_assert_int_eq(target("http://::1:80/", 0, &t), FERRY_ERR);
	ck_assert_str_eq(t.error, "IPv6 address without brackets ([addr]:port)");
	ck_assert_int_eq(target_status("http://::1/", 0), 400);
	release();
}
END_TEST

/* Hosts that parsers read as different addresses, or as an address and a name, are refused:
 * c-ares reads "0177.0.0.1" as 177.0.0.1 where browsers and inet_aton read 127.0.0.1, and
 * takes "127.1" for a name. Hex and colons in brackets must be a real IPv6 address. */
START_TEST(test_target_ambiguous_hosts)
{
	static const char *const bad[] = {
		"http://0177.0.0.1/", "http://010.0.0.1:8080/", "http://127.1/", "http://2130706433/",
		"http://0x7f.0.0.1/", "http://127.0.0.0x1/", "http://127.0.0.1./", "http://1.2.3.4.5/",
		"http://256.0.0.1/", "http://1..2.3/", "http://%31%32%37.0.0.1/", "http://a.0x10/",
		"http://example.1/", "http://[:::::::::::::1]/", "http://[1::2::3]/",
		"http://[12345::1]/", "http://[::1.2.3]/",
	};
	static const char *const bad_connect[] = { "0177.0.0.1:443", "127.1:443", "[1::2::3]:443" };
	static const char *const good[] = {
		"http://0.0.0.0/", "http://255.255.255.255/", "http://10.0.0.1/", "http://1.2.3.4x/",
		"http://0x7g/", "http://example.com./", "http://1e3/", "http://[::ffff:1.2.3.4]/",
		"http://[fe80::1]/",
	};
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(target_status(bad[i], 0) == 400, "accepted: %s", bad[i]);
	for (i = 0; i < sizeof bad_connect / sizeof bad_connect[0]; i++)
		ck_assert_msg(target_status(bad_connect[i], 1) == 400, "accepted: %s", bad_connect[i]);
	for (i = 0; i < sizeof good / sizeof good[0]; i++)
		ck_assert_msg(target_status(good[i], 0) == 0, "refused: %s", good[i]);
	release();
}
END_TEST

/* ---- chunked decoder -------------------------------------------------------------------- */

/* Decodes s handing it over in pieces of step bytes (0: all at once), appending the data to
 * out (room for cap bytes). Each round the unconsumed bytes are copied into a buffer of
 * exactly their size. Returns the final status; *used counts bytes consumed in all. */
static int dechunk(const char *s, size_t n, size_t step, char *out, size_t cap, size_t *out_len,
		   size_t *used, const char **err)
{
	struct http_chunked c;
	size_t have = 0, pos = 0; /* bytes handed over so far; bytes consumed */
	int rc;

	http_chunked_init(&c);
	*out_len = 0;
	for (;;) {
		size_t base = pos, consumed, off, dlen;
		char *b;

		have = step == 0 || have + step > n ? n : have + step;
		b = malloc(have - base ? have - base : 1);
		ck_assert_ptr_nonnull(b);
		memcpy(b, s + base, have - base);
		do {
			const char *at = b + (pos - base);

			rc = http_chunked_parse(&c, at, have - pos, &consumed, &off, &dlen);
			ck_assert_uint_le(consumed, have - pos);
			if (dlen) {
				ck_assert_uint_le(off + dlen, consumed);
				ck_assert_uint_le(*out_len + dlen, cap);
				memcpy(out + *out_len, at + off, dlen);
				*out_len += dlen;
			}
			pos += consumed;
		} while (rc == FERRY_AGAIN && consumed > 0);
		free(b);
		if (rc != FERRY_AGAIN || have == n)
			break;
	}
	*used = pos;
	*err = c.error;
	ck_assert_int_eq(http_chunked_done(&c), rc == FERRY_OK);
	return rc;
}

static int chunked_status(const char *s)
{
	char out[1024];
	size_t out_len, used;
	const char *err;
	int rc = dechunk(s, strlen(s), 0, out, sizeof out, &out_len, &used, &err);
	int rc1 = dechunk(s, strlen(s), 1, out, sizeof out, &out_len, &used, &err);

	ck_assert_int_eq(rc, rc1); /* the same verdict byte by byte */
	if (rc == FERRY_ERR)
		ck_assert_ptr_nonnull(err);
	return rc;
}

START_TEST(test_chunked_simple)
{
	const char *s = "5\r\nhello\r\nA;name=val\r\n0123456789\r\n0\r\n\r\nNEXT";
	char out[64];
	size_t out_len, used;
	const char *err;
	size_t step;

	for (step = 0; step < 20; step++) {
		ck_assert_int_eq(dechunk(s, strlen(s), step, out, sizeof out, &out_len, &used, &err), FERRY_OK);
		ck_assert_uint_eq(out_len, 15);
		ck_assert(memcmp(out, "hello0123456789", 15) == 0);
		ck_assert_uint_eq(used, strlen(s) - 4); /* stops right after the final CRLF */
	}
}
END_TEST

START_TEST(test_chunked_spans)
{
	struct http_chunked c;
	/* lengths are tracked by hand: GCC 12.2 -O2 miscomputes strlen(literal + a + b) when a
	 * and b are read from the same out-parameter around a call */
	const char *s = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
	size_t n = 20, consumed, off, len;

	http_chunked_init(&c);
	ck_assert(!http_chunked_done(&c));
	ck_assert_int_eq(http_chunked_parse(&c, s, n, &consumed, &off, &len), FERRY_AGAIN);
	ck_assert_uint_eq(off, 3);
	ck_assert_uint_eq(len, 3);
	ck_assert_uint_eq(consumed, 6);
	s += consumed;
	n -= consumed;
	ck_assert_int_eq(http_chunked_parse(&c, s, n, &consumed, &off, &len), FERRY_AGAIN);
	ck_assert_uint_eq(off, 5);
	ck_assert_uint_eq(len, 2);
	ck_assert_uint_eq(consumed, 7);
	ck_assert(memcmp(s + off, "de", 2) == 0);
	s += consumed;
	n -= consumed;
	ck_assert_int_eq(http_chunked_parse(&c, s, n, &consumed, &off, &len), FERRY_OK);
	ck_assert_uint_eq(len, 0);
	ck_assert_uint_eq(consumed, n);
	ck_assert(http_chunked_done(&c));
	/* done stays done */
	ck_assert_int_eq(http_chunked_parse(&c, "x", 1, &consumed, &off, &len), FERRY_OK);
	ck_assert_uint_eq(consumed, 0);
	/* partial data: one span of what is there, the rest later */
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_parse(&c, "10\r\nabc", 7, &consumed, &off, &len), FERRY_AGAIN);
	ck_assert_uint_eq(consumed, 7);
	ck_assert_uint_eq(off, 4);
	ck_assert_uint_eq(len, 3);
	ck_assert_uint_eq(c.remaining, 13);
	ck_assert_int_eq(http_chunked_parse(&c, "", 0, &consumed, &off, &len), FERRY_AGAIN);
	ck_assert_uint_eq(consumed, 0);
	/* the largest size taken, 2^63-1 (16 hex digits; a signed 64-bit reader agrees) */
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_parse(&c, "7fffFFFFffffFFFF\r\nab", 20, &consumed, &off, &len),
			 FERRY_AGAIN);
	ck_assert_uint_eq(len, 2);
	ck_assert_uint_eq(c.remaining, UINT64_C(9223372036854775805));
}
END_TEST

START_TEST(test_chunked_byte_by_byte)
{
	/* data of every byte value, chunked in uneven sizes with extensions and a trailer */
	static char data[5000], enc[12000], out[5000];
	size_t n = 0, e = 0, i, out_len, used, step;
	const char *err;
	static const size_t sizes[] = { 1, 2, 15, 16, 255, 256, 1000, 3, 4095 };
	size_t k = 0;

	for (i = 0; i < sizeof data; i++)
		data[i] = (char)(i * 7 + (i >> 8));
	while (n < sizeof data) {
		size_t sz = sizes[k++ % (sizeof sizes / sizeof sizes[0])];

		if (sz > sizeof data - n)
			sz = sizeof data - n;
		e += (size_t)sprintf(enc + e, k % 2 ? "%zX" : "%zx", sz);
		if (k % 3 == 0)
			e += (size_t)sprintf(enc + e, " ;ext ; q = \"a\\\"b;c\"\t;t=v");
		e += (size_t)sprintf(enc + e, "\r\n");
		memcpy(enc + e, data + n, sz);
		e += sz;
		n += sz;
		e += (size_t)sprintf(enc + e, "\r\n");
	}
	e += (size_t)sprintf(enc + e, "000;last\r\nTrailer-A: 1\r\nB:\r\nC: x y\t\xff\r\n\r\n");

	for (step = 0; step < 5; step++) {
		size_t st = step == 0 ? 0 : step == 1 ? 1 : step * 37;

		memset(out, 0, sizeof out);
		ck_assert_int_eq(dechunk(enc, e, st, out, sizeof out, &out_len, &used, &err), FERRY_OK);
		ck_assert_uint_eq(out_len, sizeof data);
		ck_assert(memcmp(out, data, sizeof data) == 0);
		ck_assert_uint_eq(used, e);
	}
}
END_TEST

START_TEST(test_chunked_valid_shapes)
{
	ck_assert_int_eq(chunked_status("0\r\n\r\n"), FERRY_OK);
	ck_assert_int_eq(chunked_status("0000000000000001\r\nx\r\n0\r\n\r\n"), FERRY_OK);
	ck_assert_int_eq(chunked_status("1;a\r\nx\r\n0\r\n\r\n"), FERRY_OK);
	ck_assert_int_eq(chunked_status("1 ; a = b\r\nx\r\n0\r\n\r\n"), FERRY_OK);
	ck_assert_int_eq(chunked_status("1;a=\"\"\r\nx\r\n0\r\n\r\n"), FERRY_OK);
	ck_assert_int_eq(chunked_status("1;a=\"x y\\\\\"\r\nx\r\n0\r\n\r\n"), FERRY_OK);
	ck_assert_int_eq(chunked_status("1;a;b;c=d\r\nx\r\n0\r\n\r\n"), FERRY_OK);
	ck_assert_int_eq(chunked_status("0\r\nExpires: never\r\n\r\n"), FERRY_OK);
	ck_assert_int_eq(chunked_status("0\r\nX:\r\n\r\n"), FERRY_OK);
	/* names that only look like framing or routing fields */
	ck_assert_int_eq(chunked_status("0\r\nContent-Lengths: 5\r\nX-Host: a\r\nTEE: 1\r\n\r\n"), FERRY_OK);
	ck_assert_int_eq(chunked_status("0\r\nProxy-Authorizations: x\r\nTrailers: y\r\n\r\n"), FERRY_OK);
	ck_assert_int_eq(chunked_status("0\r\nServer-Timing: a;dur=1\r\nGrpc-Status: 0\r\n\r\n"), FERRY_OK);
	/* incomplete is not an error */
	ck_assert_int_eq(chunked_status("5\r\nhel"), FERRY_AGAIN);
	ck_assert_int_eq(chunked_status("0\r\nX: y\r\n"), FERRY_AGAIN);
	ck_assert_int_eq(chunked_status(""), FERRY_AGAIN);
}
END_TEST

START_TEST(test_chunked_rejects)
{
	static const char *const bad[] = {
		"Z\r\n",
		"-0\r\n",
		"+1\r\n",
		"0x5\r\n",
		"1junk\r\n",
		"00000000000000001\r\n",      /* 17 hex digits */
		"10000000000000000\r\n",
		"8000000000000000\r\n",       /* 2^63: more than a signed 64-bit length */
		"ffffffffffffffff\r\n",
		" 1\r\n",
		"\r\n",
		"1 \r\n",                     /* BWS only before ';' */
		"1;\r\n",                     /* ';' needs a name */
		"1;a=\r\n",
		"1;a=b c\r\n",
		"1;a b\r\n",
		"1;=b\r\n",
		"1;a=\"b\r\n",                /* CR inside a quoted-string */
		"1;a=\"b\"c\r\n",
		"1;a=\"\x01\"\r\n",
		"1;a=\"\\\x01\"\r\n",        /* quoted-pair of a CTL */
		"1;a=b\x7f\r\n",
		"1;a\rb\r\n",                 /* bare CR in an extension */
		"1\rx\n",
		"1\n",                        /* bare LF */
		"1\r\r\n",
		"5\r\nhelloXX\r\n",           /* data not followed by CRLF */
		"5\r\nhello\n0\r\n\r\n",
		"5\r\nhello\rX",
		"5\r\nhello\r\n\r\n",         /* no size after the data */
		"0\r\n X: y\r\n\r\n",         /* obs-fold in the trailer */
		"0\r\n\tX: y\r\n\r\n",
		"0\r\nX : y\r\n\r\n",
		"0\r\n: y\r\n\r\n",
		"0\r\nX y\r\n\r\n",
		"0\r\nX: a\rb\r\n\r\n",
		"0\r\nX: a\x01\r\n\r\n",
		"0\r\nX: a\n\r\n",
		"0\r\n\rX",
		"0\r\n\n",
		/* framing, routing and connection fields in the trailer section (RFC 9110 6.5.1) */
		"0\r\nContent-Length: 5\r\n\r\n",
		"0\r\nX: y\r\ntransfer-encoding: chunked\r\n\r\n",
		"0\r\nHOST: evil\r\n\r\n",
		"0\r\nConnection: close\r\n\r\n",
		"0\r\nKeep-Alive: 5\r\n\r\n",
		"0\r\nProxy-Connection: close\r\n\r\n",
		"0\r\nTE: trailers\r\n\r\n",
		"0\r\nTrailer: X\r\n\r\n",
		"0\r\nUpgrade: h2c\r\n\r\n",
		"0\r\nProxy-Authorization: Basic eDp5\r\n\r\n",
		"0\r\nProxy-Authenticate: Basic\r\n\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(chunked_status(bad[i]) == FERRY_ERR, "accepted: %s", bad[i]);
}
END_TEST

START_TEST(test_chunked_limits_and_errors)
{
	static char b[40000];
	struct http_chunked c;
	size_t consumed, off, len, n;

	/* a chunk-size line of 4096 bytes passes, one more does not */
	n = (size_t)sprintf(b, "1;x=");
	memset(b + n, 'a', 4096 - n);
	memcpy(b + 4096, "\r\nx\r\n0\r\n\r\n", 11);
	ck_assert_int_eq(chunked_status(b), FERRY_OK);
	memset(b + n, 'a', 4097 - n);
	memcpy(b + 4097, "\r\nx\r\n0\r\n\r\n", 11);
	ck_assert_int_eq(chunked_status(b), FERRY_ERR);

	/* trailers: 16384 bytes in all */
	n = (size_t)sprintf(b, "0\r\n");
	while (n < 16000)
		n += (size_t)sprintf(b + n, "X-Trailer: %0100d\r\n", 0);
	sprintf(b + n, "\r\n");
	ck_assert_int_eq(chunked_status(b), FERRY_OK);
	while (n < 17000)
		n += (size_t)sprintf(b + n, "X-Trailer: %0100d\r\n", 0);
	sprintf(b + n, "\r\n");
	ck_assert_int_eq(chunked_status(b), FERRY_ERR);

	/* an error says why, stops where it happened, and sticks */
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_parse(&c, "12g\r\n", 5, &consumed, &off, &len), FERRY_ERR);
	ck_assert_uint_eq(consumed, 2);
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(c.error, "malformed chunk size");
	ck_assert_int_eq(http_chunked_parse(&c, "0\r\n\r\n", 5, &consumed, &off, &len), FERRY_ERR);
	ck_assert(!http_chunked_done(&c));
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_parse(&c, "1\r\nxy", 5, &consumed, &off, &len), FERRY_AGAIN);
	ck_assert_int_eq(http_chunked_parse(&c, "y", 1, &consumed, &off, &len), FERRY_ERR);
	ck_assert_str_eq(c.error, "missing CRLF after chunk data");
}
END_TEST

/* ---- incremental parsing ---------------------------------------------------------------- */

/* Feeds s one more byte per call, each time in a fresh exact-size buffer, carrying scanned. */
static int trickle(const char *s, size_t n, int response, struct http_head *h)
{
	size_t k, scanned = 0, last = 0;
	int rc = FERRY_AGAIN;

	for (k = 0; k <= n; k++) {
		const char *b = hold(s, k);

		memset(h, 0x5a, sizeof *h);
		h->fields = fields;
		rc = response ? http_parse_response(b, k, &scanned, &lim, 0, 0, h)
			      : http_parse_request(b, k, &scanned, &lim, h);
		if (rc != FERRY_AGAIN)
			break;
		ck_assert_uint_ge(scanned, last);
		ck_assert_uint_le(scanned, k);
		last = scanned;
	}
	return rc;
}

/* One call on an exact-size copy; *base tells where the copy lives. */
static int once(const char *s, size_t n, int response, struct http_head *h,
		struct http_field *fa, char **base)
{
	size_t scanned = 0;

	*base = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(*base);
	memcpy(*base, s, n);
	memset(h, 0x5a, sizeof *h);
	h->fields = fa;
	return response ? http_parse_response(*base, n, &scanned, &lim, 0, 0, h)
			: http_parse_request(*base, n, &scanned, &lim, h);
}

#define OFF(sl, base) ((sl).len ? (size_t)((sl).p - (base)) : 0)

static void same_heads(const struct http_head *a, const char *ba, const struct http_head *b,
		       const char *bb)
{
	unsigned i;

	ck_assert_int_eq(a->version, b->version);
	ck_assert_uint_eq(a->head_len, b->head_len);
	ck_assert_int_eq(a->body, b->body);
	ck_assert_uint_eq(a->content_length, b->content_length);
	ck_assert_uint_eq(a->flags, b->flags);
	ck_assert_int_eq(a->status, b->status);
	ck_assert_uint_eq(a->method.len, b->method.len);
	ck_assert_uint_eq(a->target.len, b->target.len);
	ck_assert_uint_eq(OFF(a->target, ba), OFF(b->target, bb));
	ck_assert_uint_eq(a->reason.len, b->reason.len);
	ck_assert_uint_eq(OFF(a->reason, ba), OFF(b->reason, bb));
	ck_assert_uint_eq(a->nfields, b->nfields);
	for (i = 0; i < a->nfields; i++) {
		ck_assert_uint_eq(a->fields[i].name.len, b->fields[i].name.len);
		ck_assert_uint_eq(OFF(a->fields[i].name, ba), OFF(b->fields[i].name, bb));
		ck_assert_uint_eq(a->fields[i].value.len, b->fields[i].value.len);
		ck_assert_uint_eq(OFF(a->fields[i].value, ba), OFF(b->fields[i].value, bb));
	}
}

START_TEST(test_incremental_same_result)
{
	static const char *const heads[] = {
		"GET http://h/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
		"POST http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
		"POST http://h/ HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET http://h/ HTTP/1.0\r\n\r\n",
		"GET http://h/ HTTP/1.1\r\nHost : h\r\n\r\n",
		"GET http://h/ HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
		"GET http://h/ HTTP/1.1\r\nHost:  h \r\nA: b\r\nC:\r\n\r\nGET",
		"GET http://h/ HTTP/2.0\r\nHost: h\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
		"GET http://h/ HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"GET http://h/ HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
	};
	static const char *const resps[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 200\r\nX: y\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: y\r\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: y\n\r\n",
		"HTTP/2.0 200 OK\r\n\r\n",
		"HTTX/1.1 200 OK\r\n\r\n",
	};
	const size_t nh = sizeof heads / sizeof heads[0], nr = sizeof resps / sizeof resps[0];
	size_t i;

	for (i = 0; i < nh + nr; i++) {
		int response = i >= nh;
		const char *s = response ? resps[i - nh] : heads[i];
		struct http_head one, by;
		struct http_field f1[MAXF];
		char *b1;
		int rc1, rc2;

		rc1 = once(s, strlen(s), response, &one, f1, &b1);
		rc2 = trickle(s, strlen(s), response, &by);
		ck_assert_msg(rc1 == rc2, "differs: %s", s);
		if (rc1 == FERRY_OK)
			same_heads(&one, b1, &by, held);
		else
			ck_assert_int_eq(one.error_status, by.error_status);
		free(b1);
	}
	release();
}
END_TEST

START_TEST(test_incremental_again)
{
	struct http_head h;
	const char *s = "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n";
	size_t scanned = 0, n = strlen(s);
	char *b = malloc(n);

	memcpy(b, s, n);
	h.fields = fields;
	ck_assert_int_eq(http_parse_request(b, 0, &scanned, &lim, &h), FERRY_AGAIN);
	ck_assert_int_eq(http_parse_request(b, 10, &scanned, &lim, &h), FERRY_AGAIN);
	ck_assert_uint_eq(scanned, 10);
	ck_assert_int_eq(http_parse_request(b, n - 1, &scanned, &lim, &h), FERRY_AGAIN);
	ck_assert_uint_eq(scanned, n - 1);
	ck_assert_int_eq(http_parse_request(b, n, &scanned, &lim, &h), FERRY_OK);
	ck_assert_uint_eq(h.head_len, n);
	free(b);

	ck_assert_int_eq(req_status("GET http://h/ HTTP/1.1\r\nHost: h\r\n\r"), FERRY_AGAIN);
	ck_assert_int_eq(req_status("GET"), FERRY_AGAIN);
	ck_assert_int_eq(resp_status("HTTP/1.1 200 OK\r\n"), FERRY_AGAIN);
	ck_assert_int_eq(resp_status("HTT"), FERRY_AGAIN);
	ck_assert_int_eq(resp_status("HTX"), 502);
	release();
}
END_TEST

/* ---- limits ----------------------------------------------------------------------------- */

START_TEST(test_limits_request_line)
{
	char b[4096];
	size_t n;
	struct http_head h;

	/* a request line of exactly lim.request_line bytes is fine */
	n = (size_t)sprintf(b, "GET http://h/");
	memset(b + n, 'a', lim.request_line - n - 9);
	n = lim.request_line - 9;
	n += (size_t)sprintf(b + n, " HTTP/1.1");
	ck_assert_uint_eq(n, lim.request_line);
	sprintf(b + n, "\r\nHost: h\r\n\r\n");
	ck_assert_int_eq(req(b, &h), FERRY_OK);
	ck_assert_uint_eq(h.target.len, lim.request_line - 13);

	/* one byte more: 414 */
	n = (size_t)sprintf(b, "GET http://h/");
	memset(b + n, 'a', lim.request_line - n - 8);
	n = lim.request_line - 8;
	n += (size_t)sprintf(b + n, " HTTP/1.1\r\nHost: h\r\n\r\n");
	ck_assert_int_eq(req(b, &h), FERRY_ERR);
	ck_assert_int_eq(h.error_status, 414);
	ck_assert_str_eq(h.error, "request line too long");

	/* the head not complete: 414 as soon as request_line + 2 bytes hold no LF */
	memset(b, 'a', sizeof b);
	memcpy(b, "GET /", 5);
	ck_assert_int_eq(req_n(b, lim.request_line + 1, &h), FERRY_AGAIN);
	ck_assert_int_eq(req_n(b, lim.request_line + 2, &h), FERRY_ERR);
	ck_assert_int_eq(h.error_status, 414);
	ck_assert_int_eq(trickle(b, 3000, 0, &h), FERRY_ERR);
	ck_assert_int_eq(h.error_status, 414);
	/* a status line too long: 502 */
	memcpy(b, "HTTP/1.1 200 ", 13);
	ck_assert_int_eq(resp_n(b, lim.request_line + 2, 0, 0, &h), FERRY_ERR);
	ck_assert_int_eq(h.error_status, 502);
	sprintf(b + lim.request_line + 1, "\r\n\r\n");
	ck_assert_int_eq(resp(b, 0, 0, &h), FERRY_ERR);
	ck_assert_int_eq(h.error_status, 502);
	release();
}
END_TEST

START_TEST(test_limits_head_size)
{
	static char b[8192];
	size_t n;
	struct http_head h;

	/* a head of exactly lim.head_size bytes is fine */
	n = (size_t)sprintf(b, "GET http://h/ HTTP/1.1\r\nHost: h\r\nX: ");
	memset(b + n, 'v', lim.head_size - n - 4);
	memcpy(b + lim.head_size - 4, "\r\n\r\nextra bytes", 15);
	ck_assert_int_eq(req_n(b, lim.head_size + 11, &h), FERRY_OK);
	ck_assert_uint_eq(h.head_len, lim.head_size);
	ck_assert_uint_eq(h.fields[1].value.len, lim.head_size - n - 4);
	/* one byte more: 431, complete or not */
	n = (size_t)sprintf(b, "GET http://h/ HTTP/1.1\r\nHost: h\r\nX: ");
	memset(b + n, 'v', lim.head_size - n - 3);
	memcpy(b + lim.head_size - 3, "\r\n\r\n", 4);
	ck_assert_int_eq(req_n(b, lim.head_size + 1, &h), FERRY_ERR);
	ck_assert_int_eq(h.error_status, 431);
	ck_assert_int_eq(req_n(b, lim.head_size - 1, &h), FERRY_AGAIN);
	ck_assert_int_eq(req_n(b, lim.head_size, &h), FERRY_ERR);
	ck_assert_int_eq(h.error_status, 431);
	ck_assert_int_eq(trickle(b, lim.head_size + 1, 0, &h), FERRY_ERR);
	ck_assert_int_eq(h.error_status, 431);
	/* responses: 502 */
	memcpy(b, "HTTP/1.1 200 OK\r\n", 17);
	ck_assert_int_eq(resp_n(b, lim.head_size + 1, 0, 0, &h), FERRY_ERR);
	ck_assert_int_eq(h.error_status, 502);
	ck_assert_int_eq(resp_n(b, lim.head_size, 0, 0, &h), FERRY_ERR);
	ck_assert_int_eq(h.error_status, 502);
	release();
}
END_TEST

START_TEST(test_limits_fields)
{
	char b[2048];
	size_t n;
	unsigned i;
	struct http_head h;
	struct http_field few[3 + 1];
	struct http_limits small = { 256, 2048, 3 };
	size_t scanned = 0;

	/* MAXF fields pass, one more is 431 */
	n = (size_t)sprintf(b, "GET http://h/ HTTP/1.1\r\nHost: h\r\n");
	for (i = 1; i < MAXF; i++)
		n += (size_t)sprintf(b + n, "X-%u: %u\r\n", i, i);
	sprintf(b + n, "\r\n");
	ck_assert_int_eq(req(b, &h), FERRY_OK);
	ck_assert_uint_eq(h.nfields, MAXF);
	ck_slice(h.fields[MAXF - 1].name, "X-15");
	n += (size_t)sprintf(b + n, "X-last: 1\r\n\r\n");
	ck_assert_int_eq(req(b, &h), FERRY_ERR);
	ck_assert_int_eq(h.error_status, 431);
	ck_assert_str_eq(h.error, "too many fields");

	/* the caller's array is never written past its end */
	memset(few, 0, sizeof few);
	few[3].name.p = "sentinel";
	h.fields = few;
	ck_assert_int_eq(http_parse_request(b, strlen(b), &scanned, &small, &h), FERRY_ERR);
	ck_assert_int_eq(h.error_status, 431);
	ck_assert_ptr_eq(few[3].name.p, "sentinel");
	ck_assert_uint_eq(few[3].name.len, 0);
	/* responses: 502 */
	{
		const char *r = "HTTP/1.1 200 OK\r\nX: y\r\nX: y\r\nX: y\r\nX: y\r\n\r\n";

		scanned = 0;
		memcpy(b, r, strlen(r));
		ck_assert_int_eq(http_parse_response(b, strlen(r), &scanned, &small, 0, 0, &h),
				 FERRY_ERR);
		ck_assert_int_eq(h.error_status, 502);
		ck_assert_ptr_eq(few[3].name.p, "sentinel");
		/* three fields fit */
		scanned = 0;
		memcpy(b + 35, "\r\n", 2);
		ck_assert_int_eq(http_parse_response(b, 37, &scanned, &small, 0, 0, &h), FERRY_OK);
		ck_assert_uint_eq(h.nfields, 3);
		ck_assert_int_eq(h.body, HTTP_BODY_CLOSE);
	}
}
END_TEST

/* Every known name, in any case, is recognised; a name of the same length and first letter
 * that differs later, or one letter longer or shorter, is not. */
START_TEST(test_field_ids)
{
	static const struct {
		const char *name;
		enum http_field_id id;
	} known[] = {
		{ "Authorization", HF_AUTHORIZATION }, { "CONNECTION", HF_CONNECTION },
		{ "content-Length", HF_CONTENT_LENGTH }, { "Cookie", HF_COOKIE },
		{ "Expect", HF_EXPECT }, { "hOST", HF_HOST }, { "Keep-Alive", HF_KEEP_ALIVE },
		{ "Max-Forwards", HF_MAX_FORWARDS }, { "Proxy-Authenticate", HF_PROXY_AUTHENTICATE },
		{ "Proxy-Authorization", HF_PROXY_AUTHORIZATION },
		{ "Proxy-Connection", HF_PROXY_CONNECTION }, { "TE", HF_TE }, { "Trailer", HF_TRAILER },
		{ "Transfer-Encoding", HF_TRANSFER_ENCODING }, { "Upgrade", HF_UPGRADE }, { "Via", HF_VIA },
	};
	char near[32];

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		const char *n = known[i].name;
		size_t len = strlen(n);

		ck_assert_int_eq(http_field_id((struct http_slice){ n, len }), known[i].id);
		ck_assert_int_eq(http_field_id((struct http_slice){ n, len - 1 }), HF_OTHER);
		memcpy(near, n, len);
		near[len] = 's';
		ck_assert_int_eq(http_field_id((struct http_slice){ near, len + 1 }), HF_OTHER);
		near[len - 1] = near[len - 1] == 'x' ? 'y' : 'x';
		ck_assert_int_eq(http_field_id((struct http_slice){ near, len }), HF_OTHER);
	}
	ck_assert_int_eq(http_field_id((struct http_slice){ "X-Forwarded-For", 15 }), HF_OTHER);
	ck_assert_int_eq(http_field_id((struct http_slice){ "", 0 }), HF_OTHER);

	/* the parser tags every field */
	struct http_head h;
	ck_assert_int_eq(req("GET http://a/ HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n"
			     "cOnNeCtIoN: close\r\nVia: 1.1 p\r\n\r\n", &h), FERRY_OK);
	ck_assert_uint_eq(h.nfields, 4);
	ck_assert_int_eq(h.fields[0].id, HF_HOST);
	ck_assert_int_eq(h.fields[1].id, HF_OTHER);
	ck_assert_int_eq(h.fields[2].id, HF_CONNECTION);
	ck_assert_int_eq(h.fields[3].id, HF_VIA);
	release();
}
END_TEST

/* "GET ... X: v<value>v ..." into out (no snprintf: the value may hold NUL) */
static size_t value_request(char *out, const char *value, size_t len)
{
	static const char pre[] = "GET http://a/ HTTP/1.1\r\nHost: a\r\nX: v", post[] = "v\r\n\r\n";

	memcpy(out, pre, sizeof(pre) - 1);
	memcpy(out + sizeof(pre) - 1, value, len);
	memcpy(out + sizeof(pre) - 1 + len, post, sizeof(post) - 1);
	return sizeof(pre) - 1 + len + sizeof(post) - 1;
}

/* A field value is read eight bytes at a time while all are plain: a forbidden byte must be
 * caught at every offset within and across those words, and the bytes that are allowed
 * (HTAB, SP, obs-text) must pass at every offset too. */
START_TEST(test_value_bytes_every_offset)
{
	static const unsigned char bad[] = { 0x00, 0x01, 0x0b, 0x1f, 0x7f, '\n' };
	static const unsigned char good[] = { '\t', ' ', '~', 0x80, 0xff };
	char msg[128];
	struct http_head h;

	for (size_t len = 1; len <= 24; len++) {
		for (size_t at = 0; at < len; at++) {
			char value[32];

			memset(value, 'v', len);
			for (size_t b = 0; b < sizeof(bad); b++) {
				value[at] = (char)bad[b];
				size_t n = value_request(msg, value, len);
				ck_assert_msg(req_n(msg, n, &h) == FERRY_ERR && h.error_status == 400,
					      "byte 0x%02x at %zu of %zu was accepted", bad[b], at, len);
			}
			for (size_t g = 0; g < sizeof(good); g++) {
				value[at] = (char)good[g];
				size_t n = value_request(msg, value, len);
				ck_assert_msg(req_n(msg, n, &h) == FERRY_OK,
					      "byte 0x%02x at %zu of %zu was refused", good[g], at, len);
				ck_assert_uint_eq(h.fields[1].value.len, len + 2);
			}
		}
	}
	release();
}
END_TEST

static Suite *http_parse_suite(void)
{
	Suite *s = suite_create("http_parse");
	TCase *tc;

	tc = tcase_create("helpers");
	tcase_add_test(tc, test_helpers);
	tcase_add_test(tc, test_field_ids);
	tcase_add_test(tc, test_value_bytes_every_offset);
	suite_add_tcase(s, tc);

	tc = tcase_create("request");
	tcase_add_test(tc, test_req_simple);
	tcase_add_test(tc, test_req_http10_and_connect);
	tcase_add_test(tc, test_req_content_length);
	tcase_add_test(tc, test_req_content_length_rejects);
	tcase_add_test(tc, test_req_chunked);
	tcase_add_test(tc, test_req_transfer_encoding_rejects);
	tcase_add_test(tc, test_req_error_strings);
	tcase_add_test(tc, test_req_field_syntax_rejects);
	tcase_add_test(tc, test_req_line_rejects);
	tcase_add_test(tc, test_req_flags);
	tcase_add_test(tc, test_connection_options_bounded);
	tcase_add_test(tc, test_req_line_refused_early);
	suite_add_tcase(s, tc);

	tc = tcase_create("response");
	tcase_add_test(tc, test_resp_simple);
	tcase_add_test(tc, test_resp_framing);
	tcase_add_test(tc, test_resp_rejects);
	suite_add_tcase(s, tc);

	tc = tcase_create("target");
	tcase_add_test(tc, test_target_absolute);
	tcase_add_test(tc, test_target_rejects);
	tcase_add_test(tc, test_target_connect);
	tcase_add_test(tc, test_target_ambiguous_hosts);
	suite_add_tcase(s, tc);

	tc = tcase_create("chunked");
	tcase_add_test(tc, test_chunked_simple);
	tcase_add_test(tc, test_chunked_spans);
	tcase_add_test(tc, test_chunked_byte_by_byte);
	tcase_add_test(tc, test_chunked_valid_shapes);
	tcase_add_test(tc, test_chunked_rejects);
	tcase_add_test(tc, test_chunked_limits_and_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("incremental");
	tcase_add_test(tc, test_incremental_same_result);
	tcase_add_test(tc, test_incremental_again);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, test_limits_request_line);
	tcase_add_test(tc, test_limits_head_size);
	tcase_add_test(tc, test_limits_fields);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(http_parse_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
