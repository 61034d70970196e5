/* test_dns_e2e.c - end-to-end: the real src/ferry resolving names, against tests/origin, with
 * its [dns] servers set to the fake DNS server of fake_dns.c (a thread of this test) or to a
 * loopback port where nothing listens, so that no query ever leaves the machine.
 *
 * Covered: unknown host -> 502 naming it (GET and CONNECT), a dead DNS server, fallback to
 * the next address when one refuses (from DNS and from a hosts file), hosts-file names that
 * never reach the server, the per-worker cache, and the DNS timeout.
 *
 * Every test runs twice, once per multiplexer (iteration 0: poll, 1: epoll).
 * FERRY_E2E_MUX=poll|epoll runs only one. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "fake_dns.h"
#include "harness.h"
#include "status.h"

static const char *const muxes[] = { "poll", "epoll" };

static struct harness_origin origin;
static struct harness_ferry ferry;
static struct harness_conf conf;
static struct fake_dns *fdns;
static char hosts_path[64];

static void teardown(void)
{
	harness_cleanup();
	fake_dns_stop(fdns);
	fdns = NULL;
	if (hosts_path[0])
		unlink(hosts_path);
	hosts_path[0] = '\0';
	unsetenv("CARES_HOSTS");
}

#define EXPECT(cond, ...) HARNESS_EXPECT(&ferry, cond, __VA_ARGS__)

/* Start the origin and the fake DNS server; the base config for multiplexer i, asking
 * only the fake server. */
static void begin(int i)
{
	memset(&ferry, 0, sizeof(ferry));
	ck_assert_msg(harness_origin_start(&origin) == FERRY_OK, "test origin did not start");
	fdns = fake_dns_start();
	ck_assert_msg(fdns != NULL, "fake DNS server did not start");
	harness_conf_base(&conf, muxes[i], &origin);
	harness_conf_set(&conf, "dns", "servers", fake_dns_server(fdns));
	harness_conf_set(&conf, "log", "level", "debug");
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

/* A hosts file for ferry (c-ares reads the file CARES_HOSTS names instead of /etc/hosts);
 * ferry inherits the environment, so call before go(). */
static void hosts_file(const char *text)
{
	int fd;

	strcpy(hosts_path, "/tmp/test_dns_e2e_hosts.XXXXXX");
	fd = mkstemp(hosts_path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(harness_write_file(hosts_path, text), FERRY_OK);
	ck_assert_int_eq(setenv("CARES_HOSTS", hosts_path, 1), 0);
}

/* GET http://host:ORIGIN/headers through ferry; one response in r. */
static void get_host(const char *host, struct harness_resp *r)
{
	char *q = harness_fmt("GET http://%s:%d/headers HTTP/1.1\r\nHost: %s:%d\r\n"
		              "Connection: close\r\n\r\n", host, origin.port, host, origin.port);

	EXPECT(harness_request(ferry.port, q, r, 0) == FERRY_OK, "no valid response to: %s", q);
	free(q);
}

/* The origin saw the request for host: 200, and it echoes the Host ferry generated. */
static void expect_reached_origin(const char *host)
{
	struct harness_resp r;
	char *want = harness_fmt("\r\nHost: %s:%d\r\n", host, origin.port);

	get_host(host, &r);
	EXPECT(r.status == 200, "http://%s: status %d, body \"%.300s\"", host, r.status,
	       r.body ? r.body : "");
	EXPECT(strstr(r.body, want) != NULL, "http://%s: origin saw \"%.600s\"", host, r.body);
	harness_resp_free(&r);
	free(want);
}

/* An error from ferry itself: the status, a text/plain body that holds each of the words. */
static void expect_error_body(const struct harness_resp *r, int status, const char *what,
			      const char *word1, const char *word2)
{
	const char *ct = harness_resp_header(r, "Content-Type");

	EXPECT(r->status == status, "%s: status %d, want %d (body \"%.300s\")", what, r->status,
	       status, r->body ? r->body : "");
	EXPECT(ct && strncasecmp(ct, "text/plain", 10) == 0, "%s: Content-Type %s", what,
	       ct ? ct : "(none)");
	EXPECT(r->complete, "%s: error body incomplete", what);
	EXPECT(strncmp(r->body, "ferry: ", 7) == 0, "%s: body \"%s\"", what, r->body);
	EXPECT(strstr(r->body, word1) != NULL, "%s: body \"%s\" lacks \"%s\"", what, r->body,
	       word1);
	EXPECT(!word2 || strstr(r->body, word2) != NULL, "%s: body \"%s\" lacks \"%s\"", what,
	       r->body, word2);
}

/* ==== tests ==== */

/* The server says NXDOMAIN: 502, and the body names the host, for GET and CONNECT. */
START_TEST(unknown_host_502)
{
	struct harness_resp r;
	char *q;

	begin(_i);
	go();
	get_host("foo.invalid", &r);
	expect_error_body(&r, 502, "GET http://foo.invalid", "unknown host foo.invalid", NULL);
	harness_resp_free(&r);
	EXPECT(fake_dns_queries(fdns, "foo.invalid") >= 1, "ferry did not ask the [dns] server");

	/* A failed CONNECT is an ordinary response, body included (only a 2xx has none). */
	q = harness_fmt("CONNECT bar.invalid:%d HTTP/1.1\r\nHost: bar.invalid:%d\r\n\r\n",
		origin.echo_port, origin.echo_port);
	EXPECT(harness_request(ferry.port, q, &r, 0) == FERRY_OK,
	       "no response to CONNECT bar.invalid");
	expect_error_body(&r, 502, "CONNECT bar.invalid", "unknown host bar.invalid", NULL);
	harness_resp_free(&r);
	free(q);
	end();
}
END_TEST

/* Nothing answers at the configured server's port: 502 at once, naming the host. */
START_TEST(dns_server_down_502)
{
	struct harness_resp r;
	char server[32];
	int port = fake_dns_closed_port();

	begin(_i);
	ck_assert_int_gt(port, 0);
	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	harness_conf_set(&conf, "dns", "servers", server);
	go();
	get_host("foo.test", &r);
	expect_error_body(&r, 502, "server down", "foo.test", NULL);
	harness_resp_free(&r);
	end();
}
END_TEST

/* A name with two addresses, the first refusing: ferry falls back to the second. */
START_TEST(fallback_to_next_address)
{
	struct harness_resp r;
	char *port;

	begin(_i);
	fake_dns_add(fdns, "refuse.test", "127.0.0.2", 300); /* nothing listens there */
	fake_dns_add(fdns, "two.test", "127.0.0.2", 300);
	fake_dns_add(fdns, "two.test", "127.0.0.1", 300);
	/* AAAA is tried first: [::1] refuses too (the origin is on 127.0.0.1 only), or has no
	 * route when this host has no IPv6; either way the next address must be tried. */
	fake_dns_add(fdns, "v6first.test", "::1", 300);
	fake_dns_add(fdns, "v6first.test", "127.0.0.1", 300);
	go();

	/* 127.0.0.2 alone refuses, so the 200 below did come from the fallback. */
	get_host("refuse.test", &r);
	port = harness_fmt("port %d", origin.port);
	expect_error_body(&r, 502, "refuse.test", "refuse.test", port);
	harness_resp_free(&r);
	free(port);

	expect_reached_origin("two.test");
	expect_reached_origin("v6first.test");
	end();
}
END_TEST

/* Names from the hosts file work, never reach the DNS server, and fall back the same way. */
/* A listener on 127.0.0.2:port that answers one request with "other". */
struct other_origin {
	int fd;
};

static void *other_main(void *arg)
{
	struct other_origin *o = arg;
	int c = accept(o->fd, NULL, NULL);
	if (c < 0)
		return NULL;
	char buf[4096];
	ssize_t n = read(c, buf, sizeof(buf));
	static const char ans[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nother";
	if (n > 0 && write(c, ans, sizeof(ans) - 1) < 0)
		n = -1;
	close(c);
	return NULL;
}

/* The upstream pool is keyed by the resolved address too: when the name moves to another
 * address, a warm connection to the old one is not reused for it. */
START_TEST(pool_follows_dns_changes)
{
	struct harness_resp r;
	begin(_i);
	harness_conf_set(&conf, "dns", "cache_size", "0"); /* every request reads the hosts file */
	harness_conf_set(&conf, "server", "threads", "1");  /* one worker, one pool */
	hosts_file("127.0.0.1 moved.test\n");
	go();
	get_host("moved.test", &r);
	EXPECT(r.status == 200, "first request: %d", r.status);
	harness_resp_free(&r);
	/* pooled now; the name moves to 127.0.0.2, where another server answers */
	struct other_origin oo;
	oo.fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(oo.fd, 0);
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)origin.port);
	inet_pton(AF_INET, "127.0.0.2", &sin.sin_addr);
	ck_assert_int_eq(bind(oo.fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(oo.fd, 4), 0);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, other_main, &oo), 0);
	ck_assert_int_eq(harness_write_file(hosts_path, "127.0.0.2 moved.test\n"), FERRY_OK);
	get_host("moved.test", &r);
	EXPECT(r.status == 200 && strcmp(r.body, "other") == 0,
	       "after the move: %d \"%.20s\" (a pooled connection to the old address was reused?)",
	       r.status, r.body);
	harness_resp_free(&r);
	pthread_join(t, NULL);
	close(oo.fd);
	end();
}
END_TEST

START_TEST(hosts_file_names)
{
	begin(_i);
	hosts_file("127.0.0.1 hostsonly.test\n"
		   "127.0.0.2 hosts-two.test\n"
		   "127.0.0.1 hosts-two.test\n");
	fake_dns_add(fdns, "hostsonly.test", "127.0.0.2", 300); /* would refuse */
	go();
	expect_reached_origin("hostsonly.test");
	expect_reached_origin("hosts-two.test");
	EXPECT(fake_dns_queries(fdns, "hostsonly.test") == 0, "hosts-file name sent to DNS");
	EXPECT(fake_dns_queries(fdns, "hosts-two.test") == 0, "hosts-file name sent to DNS");
	end();
}
END_TEST

/* One worker, no upstream pool (it would skip resolving): the second request for a name is
 * answered from the worker's cache, within the TTL. */
START_TEST(answers_cached)
{
	int asked;

	begin(_i);
	harness_conf_set(&conf, "server", "threads", "1");
	harness_conf_set(&conf, "timeouts", "pool_idle", "0");
	fake_dns_add(fdns, "cached.test", "127.0.0.1", 300);
	go();
	expect_reached_origin("cached.test");
	asked = fake_dns_queries(fdns, "cached.test");
	EXPECT(asked >= 1, "cached.test was not asked for");
	expect_reached_origin("cached.test");
	expect_reached_origin("CACHED.test");
	EXPECT(fake_dns_queries(fdns, "cached.test") == asked,
	       "asked %d times, then %d: the answer was not cached", asked,
	       fake_dns_queries(fdns, "cached.test"));
	end();
}
END_TEST

/* cache_size = 0: every request asks the server. */
START_TEST(cache_disabled)
{
	int asked;

	begin(_i);
	harness_conf_set(&conf, "server", "threads", "1");
	harness_conf_set(&conf, "timeouts", "pool_idle", "0");
	harness_conf_set(&conf, "dns", "cache_size", "0");
	fake_dns_add(fdns, "uncached.test", "127.0.0.1", 300);
	go();
	expect_reached_origin("uncached.test");
	asked = fake_dns_queries(fdns, "uncached.test");
	EXPECT(asked >= 1, "uncached.test was not asked for");
	expect_reached_origin("uncached.test");
	EXPECT(fake_dns_queries(fdns, "uncached.test") > asked,
	       "asked %d times after two requests with the cache off", asked);
	end();
}
END_TEST

/* The server never answers: [timeouts] dns bounds the wait, and the body says why. */
START_TEST(dns_timeout)
{
	struct harness_resp r;
	long long start, took;

	begin(_i);
	harness_conf_set(&conf, "timeouts", "dns", "0.5");
	fake_dns_silent(fdns, "slow.test");
	go();
	start = harness_now_ms();
	get_host("slow.test", &r);
	took = harness_now_ms() - start;
	EXPECT(r.status == 502 || r.status == 504, "slow.test: status %d", r.status);
	EXPECT(strcasestr(r.body, "timeout") || strcasestr(r.body, "timed out"),
	       "slow.test: body \"%s\" does not say timeout", r.body);
	EXPECT(fake_dns_queries(fdns, "slow.test") >= 1, "slow.test was not asked for");
	/* Not at once (the server was waited for), and well before the 5 s default. */
	EXPECT(took >= 250, "answered after %lld ms: the server was not waited for", took);
	EXPECT(took < 4000, "answered after %lld ms with [timeouts] dns = 0.5", took);
	harness_resp_free(&r);
	end();
}
END_TEST

/* ==== suite ==== */

static Suite *dns_e2e_suite(void)
{
	Suite *s = suite_create("dns_e2e");
	TCase *tc = tcase_create("dns");
	const char *only = getenv("FERRY_E2E_MUX");
	int lo = 0, hi = 2;

	if (only && strcmp(only, "poll") == 0)
		hi = 1;
	else if (only && strcmp(only, "epoll") == 0)
		lo = 1;
	tcase_add_checked_fixture(tc, NULL, teardown);
	/* a hang guard only: each test takes a second or less */
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, unknown_host_502, lo, hi);
	tcase_add_loop_test(tc, dns_server_down_502, lo, hi);
	tcase_add_loop_test(tc, fallback_to_next_address, lo, hi);
	tcase_add_loop_test(tc, pool_follows_dns_changes, lo, hi);
	tcase_add_loop_test(tc, hosts_file_names, lo, hi);
	tcase_add_loop_test(tc, answers_cached, lo, hi);
	tcase_add_loop_test(tc, cache_disabled, lo, hi);
	tcase_add_loop_test(tc, dns_timeout, lo, hi);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dns_e2e_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
