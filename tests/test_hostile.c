/* test_hostile.c - a second campaign of crafted bad input against the real src/ferry: the
 * cases tests/test_hardening.c does not cover, each found by sending raw bytes from either
 * side. The origin is a listener in this process, so every test sees exactly the bytes ferry
 * sends upstream and decides exactly what the origin answers.
 *
 * Every test runs once per multiplexer (iteration 0: poll, 1: epoll); FERRY_E2E_MUX=poll|epoll
 * runs only one. Timing assertions are "not before" only; every wait has a hang guard. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "status.h"

static const char *const muxes[] = { "poll", "epoll" };

static struct harness_ferry ferry;
static struct harness_conf conf;
static int lfd = -1, oport; /* the origin: a listener in this process */

#define EXPECT(cond, ...) HARNESS_EXPECT(&ferry, cond, __VA_ARGS__)

static void teardown(void)
{
	harness_cleanup();
	if (lfd >= 0)
		close(lfd);
	lfd = -1;
}

static void begin(int i)
{
	memset(&ferry, 0, sizeof(ferry));
	lfd = harness_listen(0, 64, &oport);
	ck_assert_int_ge(lfd, 0);
	harness_conf_base(&conf, muxes[i], NULL);
}

static void go(void)
{
	ck_assert_msg(harness_ferry_start(&ferry, &conf) == FERRY_OK,
		      "ferry did not start (its log is on stderr)");
}

/* ferry must exit 0 on SIGTERM with no sanitizer report in its log. */
static void end(void)
{
	char *log = NULL;
	int code = harness_ferry_stop_log(&ferry, &log);
	const char *san = harness_sanitizer_report(log);
	ck_assert_msg(san == NULL, "ferry's log holds a sanitizer report: %.300s", san);
	ck_assert_msg(code == 0, "ferry exited with %d after SIGTERM, want 0", code);
	free(log);
	close(lfd);
	lfd = -1;
}

/* Write all of p to a (blocking or not) socket, within a hang guard. */
static int fd_send(int fd, const void *p, size_t n)
{
	long long deadline = harness_now_ms() + HARNESS_TIMEOUT_MS;
	const char *q = p;

	while (n > 0) {
		ssize_t r = send(fd, q, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (r > 0) {
			q += r;
			n -= (size_t)r;
			continue;
		}
		if (r < 0 && errno != EAGAIN && errno != EINTR)
			return FERRY_ERR;
		struct pollfd pf = { .fd = fd, .events = POLLOUT };
		long long left = deadline - harness_now_ms();

		if (left <= 0 || poll(&pf, 1, (int)left) < 0)
			return FERRY_ERR;
	}
	return FERRY_OK;
}

static char *req_head(const char *method, const char *path, const char *extra)
{
	return harness_fmt("%s http://127.0.0.1:%d%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n",
			   method, oport, path, oport, extra ? extra : "");
}

/* ==== a client that stalls in its request body ==== */

/* The client sends a head and part of its body (Content-Length or chunked), then nothing. The
 * origin has everything the client sent and waits for the rest. At upstream_idle the fault is
 * the client's: 408 with Connection: close (nginx's client_body_timeout), not a 504 blaming
 * the origin; and the origin connection ends, so the origin never sees the request complete. */
START_TEST(client_stalls_in_body_408)
{
	/* the fields, the part of the body sent, and whether the origin says 100 Continue */
	static const struct {
		const char *fields, *part;
		int cont;
	} shapes[] = {
		{ "Content-Length: 100\r\n", "0123456789", 0 },
		{ "Transfer-Encoding: chunked\r\n", "5\r\nab", 0 },
		{ "Transfer-Encoding: chunked\r\n", "5\r\nabcde\r\n", 0 },
		{ "Expect: 100-continue\r\nContent-Length: 100\r\n", "0123456789", 1 },
	};

	begin(_i);
	harness_conf_set(&conf, "timeouts", "upstream_idle", "1");
	go();
	for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
		struct harness_conn c;
		struct harness_resp r;
		char *q = req_head("POST", "/upload", shapes[k].fields);
		char *seen;
		size_t n;
		int how, ufd;
		long long t0;

		ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
		t0 = harness_now_ms();
		ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c, shapes[k].part), FERRY_OK);
		ufd = harness_accept(lfd, 5000);
		EXPECT(ufd >= 0, "[%zu] the request never reached the origin", k);
		seen = harness_fd_collect(ufd, shapes[k].part, 5000, &n, &how);
		EXPECT(memmem(seen, n, shapes[k].part, strlen(shapes[k].part)) != NULL,
		       "[%zu] the origin did not get the body so far (%zu bytes)", k, n);
		free(seen);
		if (shapes[k].cont) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

			ck_assert_int_eq(fd_send(ufd, cont, sizeof(cont) - 1), FERRY_OK);
			EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK &&
			       r.status == 100, "[%zu] the 100 Continue was not relayed", k);
			harness_resp_free(&r);
		}
		EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
		       "[%zu] no response (eof %d err %d)", k, c.eof, c.err);
		EXPECT(r.status == 408, "[%zu] a client stalled in its body: status %d, want 408",
		       k, r.status);
		EXPECT(harness_now_ms() - t0 >= 800, "[%zu] 408 after %lld ms, before upstream_idle",
		       k, harness_now_ms() - t0);
		EXPECT(harness_resp_has_token(&r, "Connection", "close"), "[%zu] 408 without close", k);
		EXPECT(r.body && strstr(r.body, "request body"), "[%zu] 408 without its reason", k);
		harness_resp_free(&r);
		/* the origin connection is closed: the request never completes there */
		seen = harness_fd_collect(ufd, NULL, 5000, &n, &how);
		EXPECT(how != 0, "[%zu] the origin connection stayed open", k);
		free(seen);
		close(ufd);
		harness_close(&c);
		free(q);
	}

	/* the origin stalls, not the client: after the whole body, or when the client asked for
	 * a 100 Continue that never came (it may wait for it): still 504 */
	static const char *const origin_stalls[][2] = {
		{ "Content-Length: 10\r\n", "0123456789" },
		{ "Expect: 100-continue\r\nContent-Length: 10\r\n", "" },
	};
	for (size_t k = 0; k < 2; k++) {
		struct harness_conn c;
		struct harness_resp r;
		char *q = req_head("POST", "/upload", origin_stalls[k][0]);
		char *seen;
		size_t n;
		int how, ufd;

		ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
		if (*origin_stalls[k][1])
			ck_assert_int_eq(harness_send_str(&c, origin_stalls[k][1]), FERRY_OK);
		ufd = harness_accept(lfd, 5000);
		EXPECT(ufd >= 0, "[origin %zu] the request never reached the origin", k);
		seen = harness_fd_collect(ufd, *origin_stalls[k][1] ? origin_stalls[k][1] : "\r\n\r\n", 5000,
				  &n, &how);
		free(seen);
		EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
		       "[origin %zu] stalled origin: no response (eof %d err %d)", k, c.eof, c.err);
		EXPECT(r.status == 504, "[origin %zu] stalled origin: status %d, want 504", k,
		       r.status);
		harness_resp_free(&r);
		close(ufd);
		harness_close(&c);
		free(q);
	}
	end();
}
END_TEST

/* ==== interim (1xx) responses ==== */

/* Read responses until a final one (at most max interim ones before it). *ninterim counts
 * the interim ones; *first103_link gets the length of the first Link value of a 103. */
static int read_final(struct harness_conn *c, struct harness_resp *r, int max, int *ninterim,
		      size_t *first103_link)
{
	*ninterim = 0;
	for (;;) {
		if (harness_read_response(c, r, 0, HARNESS_TIMEOUT_MS) != FERRY_OK)
			return FERRY_ERR;
		if (r->status >= 200)
			return FERRY_OK;
		if (r->status == 103 && first103_link && *first103_link == 0 &&
		    harness_resp_header(r, "Link"))
			*first103_link = strlen(harness_resp_header(r, "Link"));
		harness_resp_free(r);
		if (++*ninterim > max)
			return FERRY_ERR;
	}
}

/* A 103 whose head is larger than a buffer's free room (30 KB of Link) is relayed whole
 * before the final response: interim responses are forwarded (RFC 9110 section 15.2), never
 * silently dropped for want of room. */
START_TEST(interim_response_relayed_whole)
{
	struct harness_conn c;
	struct harness_resp r;
	char *q, *link, *resp, *seen;
	size_t n, linklen = 0;
	int how, ufd, ninterim;

	begin(_i);
	go();
	link = malloc(30001);
	ck_assert_ptr_nonnull(link);
	memset(link, 'l', 30000);
	link[30000] = '\0';
	resp = harness_fmt("HTTP/1.1 103 Early Hints\r\nLink: </%s>\r\n\r\n"
			   "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", link);
	q = req_head("GET", "/hints", NULL);
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
	ufd = harness_accept(lfd, 5000);
	EXPECT(ufd >= 0, "the request never reached the origin");
	seen = harness_fd_collect(ufd, "\r\n\r\n", 5000, &n, &how);
	free(seen);
	ck_assert_int_eq(fd_send(ufd, resp, strlen(resp)), FERRY_OK);
	EXPECT(read_final(&c, &r, 5, &ninterim, &linklen) == FERRY_OK,
	       "no final response after the 103 (eof %d err %d)", c.eof, c.err);
	EXPECT(ninterim == 1 && linklen == 30003,
	       "the 103 with a 30 KB Link did not reach the client whole (%d interim, Link %zu bytes)",
	       ninterim, linklen);
	EXPECT(r.status == 200 && r.complete && r.body_len == 2 && memcmp(r.body, "ok", 2) == 0,
	       "final response after the big 103: status %d, %zu bytes", r.status, r.body_len);
	harness_resp_free(&r);
	close(ufd);
	harness_close(&c);
	free(q);
	free(resp);
	free(link);
	end();
}
END_TEST

/* An origin that sends interim responses and never a final one: each resets upstream_idle,
 * so without a bound the client would wait for ever. Together they may take one head's
 * budget (request_header_size); beyond it the client gets 502 naming them, the origin
 * connection is closed. For an HTTP/1.0 client (to which 1xx are not relayed) as well. */
START_TEST(interim_flood_502)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	static const char *const versions[] = { "HTTP/1.1", "HTTP/1.0" };
	size_t total = 200 * 1024, k;
	char *flood = malloc(total);

	ck_assert_ptr_nonnull(flood);
	for (k = 0; k + sizeof(cont) - 1 <= total; k += sizeof(cont) - 1)
		memcpy(flood + k, cont, sizeof(cont) - 1);
	total = k;
	begin(_i);
	go();
	for (size_t v = 0; v < 2; v++) {
		struct harness_conn c;
		struct harness_resp r;
		char *q = harness_fmt("GET http://127.0.0.1:%d/flood %s\r\nHost: 127.0.0.1:%d\r\n\r\n",
				      oport, versions[v], oport);
		char *seen;
		size_t n;
		int how, ufd, ninterim;

		ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
		ufd = harness_accept(lfd, 5000);
		EXPECT(ufd >= 0, "[%s] the request never reached the origin", versions[v]);
		seen = harness_fd_collect(ufd, "\r\n\r\n", 5000, &n, &how);
		free(seen);
		/* ferry may close the connection before all of it is sent: that is the point */
		(void)fd_send(ufd, flood, total);
		EXPECT(read_final(&c, &r, 10000, &ninterim, NULL) == FERRY_OK,
		       "[%s] no final response after a flood of 100s (%d interim, eof %d err %d)",
		       versions[v], ninterim, c.eof, c.err);
		EXPECT(r.status == 502 && r.body && strstr(r.body, "interim"),
		       "[%s] endless 1xx: status %d \"%s\", want 502 naming them", versions[v],
		       r.status, r.body ? r.body : "");
		EXPECT(harness_resp_has_token(&r, "Connection", "close"), "[%s] 502 without close",
		       versions[v]);
		EXPECT(v == 0 || ninterim == 0, "[%s] %d interim responses went to an HTTP/1.0 client",
		       versions[v], ninterim);
		harness_resp_free(&r);
		seen = harness_fd_collect(ufd, NULL, 5000, &n, &how);
		EXPECT(how != 0, "[%s] the origin connection stayed open", versions[v]);
		free(seen);
		close(ufd);
		harness_close(&c);
		free(q);
	}
	free(flood);
	end();
}
END_TEST

/* ==== trailer sections ==== */

/* Framing, routing and hop-by-hop fields in a trailer section (RFC 9110 section 6.5.1 forbids
 * sending them there): ferry relays a trailer as it is, so a next hop that merges trailers
 * into the header would reframe or reroute the message after ferry checked it. A request with
 * one gets 400 and its origin connection ends before the trailer does; a response with one
 * (head, body and trailer in one write) gets 502. A harmless trailer still passes. */
START_TEST(trailer_framing_fields_refused)
{
	static const char *const trailers[] = { "Content-Length: 5", "Transfer-Encoding: chunked",
						"Host: evil.example", "Connection: close" };
	size_t nt = sizeof(trailers) / sizeof(trailers[0]);

	begin(_i);
	go();
	for (size_t k = 0; k < nt; k++) {
		struct harness_conn c;
		struct harness_resp r;
		char *q = req_head("POST", "/t", "Transfer-Encoding: chunked\r\n");
		char *body = harness_fmt("5\r\nhello\r\n0\r\n%s\r\n\r\n", trailers[k]);
		char *seen;
		size_t n;
		int how, ufd;

		ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c, body), FERRY_OK);
		EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
		       "[request %s] no response (eof %d err %d)", trailers[k], c.eof, c.err);
		EXPECT(r.status == 400 && r.body && strstr(r.body, "trailer"),
		       "[request %s] status %d \"%s\", want 400 naming the trailer", trailers[k],
		       r.status, r.body ? r.body : "");
		EXPECT(harness_resp_has_token(&r, "Connection", "close"), "[request %s] no close",
		       trailers[k]);
		harness_resp_free(&r);
		ufd = harness_accept(lfd, 50);
		if (ufd >= 0) {
			seen = harness_fd_collect(ufd, NULL, 5000, &n, &how);
			EXPECT(how != 0, "[request %s] the origin connection stayed open", trailers[k]);
			const char *hend = memmem(seen, n, "\r\n\r\n", 4);
			size_t bl = hend ? n - (size_t)(hend + 4 - seen) : 0;

			EXPECT(!hend || memmem(hend + 4, bl, trailers[k], strlen(trailers[k])) == NULL,
			       "[request %s] the trailer reached the origin", trailers[k]);
			free(seen);
			close(ufd);
		}
		harness_close(&c);
		free(body);
		free(q);
	}
	for (size_t k = 0; k <= nt; k++) {
		struct harness_conn c;
		struct harness_resp r;
		const char *tr = k < nt ? trailers[k] : "Server-Timing: db;dur=5";
		char *q = req_head("GET", "/t", NULL);
		char *resp = harness_fmt("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
					 "5\r\nhello\r\n0\r\n%s\r\n\r\n", tr);
		char *seen;
		size_t n;
		int how, ufd;

		ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
		ufd = harness_accept(lfd, 5000);
		EXPECT(ufd >= 0, "[response %s] the request never reached the origin", tr);
		seen = harness_fd_collect(ufd, "\r\n\r\n", 5000, &n, &how);
		free(seen);
		ck_assert_int_eq(fd_send(ufd, resp, strlen(resp)), FERRY_OK);
		EXPECT(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
		       "[response %s] no response (eof %d err %d)", tr, c.eof, c.err);
		if (k < nt)
			EXPECT(r.status == 502 && harness_resp_has_token(&r, "Connection", "close"),
			       "[response %s] status %d, want 502 with close", tr, r.status);
		else
			EXPECT(r.status == 200 && r.complete && r.body_len == 5,
			       "[response %s] status %d complete %d: a harmless trailer was refused", tr,
			       r.status, r.complete);
		harness_resp_free(&r);
		close(ufd);
		harness_close(&c);
		free(resp);
		free(q);
	}
	end();
}
END_TEST

/* ==== HTTP/1.0 clients ==== */

/* RFC 9112 section 6.1: a response to an HTTP/1.0 request carries no Transfer-Encoding. For
 * a chunked body ferry decodes it (test_e2e); a HEAD or 304 answered with Transfer-Encoding
 * has no body, and its field must go as well. */
START_TEST(no_transfer_encoding_to_http10)
{
	static const struct {
		const char *method, *resp;
		int status;
	} cases[] = {
		{ "HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 200 },
		{ "HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 200 },
		{ "GET", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 304 },
	};

	begin(_i);
	go();
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct harness_conn c;
		struct harness_resp r;
		char *q = harness_fmt("%s http://127.0.0.1:%d/te HTTP/1.0\r\n\r\n", cases[k].method,
				      oport);
		char *seen;
		size_t n;
		int how, ufd;

		ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c, q), FERRY_OK);
		ufd = harness_accept(lfd, 5000);
		EXPECT(ufd >= 0, "[%zu] the request never reached the origin", k);
		seen = harness_fd_collect(ufd, "\r\n\r\n", 5000, &n, &how);
		free(seen);
		ck_assert_int_eq(fd_send(ufd, cases[k].resp, strlen(cases[k].resp)), FERRY_OK);
		EXPECT(harness_read_response(&c, &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS) == FERRY_OK,
		       "[%zu] no response (eof %d err %d)", k, c.eof, c.err);
		EXPECT(r.status == cases[k].status, "[%zu] status %d, want %d", k, r.status,
		       cases[k].status);
		EXPECT(harness_resp_header(&r, "Transfer-Encoding") == NULL,
		       "[%zu] %s answered to HTTP/1.0 with Transfer-Encoding: %s", k, cases[k].method,
		       harness_resp_header(&r, "Transfer-Encoding"));
		harness_resp_free(&r);
		close(ufd);
		harness_close(&c);
		free(q);
	}
	end();
}
END_TEST

struct test_entry {
	const char *tcase;
	const TTest *const *fn;
	int timeout;
};

#define T(tc, name, to) { tc, &name, to }
static const struct test_entry tests[] = {
	T("faults", client_stalls_in_body_408, 60),
	T("responses", interim_response_relayed_whole, 60),
	T("responses", interim_flood_502, 60),
	T("requests", trailer_framing_fields_refused, 60),
	T("responses", no_transfer_encoding_to_http10, 60),
};

static Suite *hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	const char *only = getenv("FERRY_E2E_MUX");
	int lo = 0, hi = 2;

	if (only && strcmp(only, "poll") == 0)
		hi = 1;
	else if (only && strcmp(only, "epoll") == 0)
		lo = 1;
	for (size_t k = 0; k < sizeof(tests) / sizeof(tests[0]); k++) {
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
	SRunner *sr = srunner_create(hostile_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
