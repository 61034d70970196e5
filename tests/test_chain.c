/* test_chain.c - chaining and fleets end to end.
 *
 * PROXY protocol: v1 and v2 headers give the client address that the ACL and per_client see;
 * v2 LOCAL uses the connection's own; truncated, malformed, late headers and headers from an
 * address outside proxy_protocol_from close the connection without a response. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
