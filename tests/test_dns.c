/* test_dns.c - dns: literals, /etc/hosts names through c-ares on the real loop, answers from
 * a DNS server with their TTL, the cache (positive, negative, expiry, eviction), cancellation,
 * destruction with queries pending, failures and the per-query deadline.
 *
 * No query ever leaves the machine: every channel is given a DNS server on loopback, the
 * fake one of fake_dns.c (or a closed loopback port), never the system's resolv.conf. Names
 * also come from /etc/hosts ("localhost") or from a private hosts file named by CARES_HOSTS.
 * Tests that touch the loop run once per backend (the loop index is the backend). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "fake_dns.h"
#include "loop.h"
#include "status.h"

#define HANG_GUARD_MS 10000 /* only so that a bug fails the test instead of hanging it */

static const char test_hosts[] =
	"192.0.2.1 dual.test\n"
	"2001:db8::1 dual.test\n"
	"192.0.2.2 dual.test\n"
	"2001:db8::2 dual.test\n"
	"192.0.2.3 dual.test\n"
	"192.0.2.1 dual.test\n" /* a duplicate, to be dropped */
	"10.0.0.1 many.test\n10.0.0.2 many.test\n10.0.0.3 many.test\n10.0.0.4 many.test\n"
	"10.0.0.5 many.test\n10.0.0.6 many.test\n10.0.0.7 many.test\n10.0.0.8 many.test\n"
	"10.0.0.9 many.test\n10.0.0.10 many.test\n"
	"198.51.100.1 a.test\n198.51.100.2 b.test\n198.51.100.3 c.test\n";

static struct loop *lp;
static struct dns *dn;
static struct fake_dns *fdns;
static char hosts_path[64];

struct rec {
	int calls;
	int status;
	struct dns_result res;
};

static void rec_cb(void *arg, int status, const struct dns_result *res)
{
	struct rec *r = arg;

	r->calls++;
	r->status = status;
	r->res = *res;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* What a worker does: bound the wait by c-ares' timers, poll, then let c-ares time out. */
static void spin_once(int process_timeouts)
{
	int t = dns_next_timeout(dn);

	if (t < 0 || t > 20)
		t = 20;
	ck_assert_int_ge(loop_run_once(lp, t), 0);
	if (process_timeouts)
		dns_process_timeouts(dn);
}

static void spin_until_called(const struct rec *r, int process_timeouts)
{
	uint64_t start = now_ms();

	while (!r->calls) {
		spin_once(process_timeouts);
		ck_assert_msg(now_ms() - start < HANG_GUARD_MS, "callback never came");
	}
}

/* Until c-ares holds nothing any more. */
static void spin_until_idle(void)
{
	uint64_t start = now_ms();

	while (dns_next_timeout(dn) >= 0) {
		spin_once(1);
		ck_assert_msg(now_ms() - start < HANG_GUARD_MS, "c-ares never finished");
	}
}

static void spin_rounds(int n)
{
	for (int i = 0; i < n; i++)
		spin_once(1);
}

enum server { FAKE_SERVER, CLOSED_PORT };

/* The channel asks the fake server, or a loopback port where nothing listens. The fake
 * server runs either way (it can tell that it was not asked). */
static void env_up_with(int backend, unsigned timeout_ms, size_t cache_size, int maxfds,
			int private_hosts, enum server server)
{
	char err[256] = "", closed[32];
	const char *servers;
	int fd, port;

	fdns = fake_dns_start();
	ck_assert_ptr_nonnull(fdns);
	servers = fake_dns_server(fdns);
	if (server == CLOSED_PORT) {
		/* picked after the fake server bound its port, so it cannot be that one */
		port = fake_dns_closed_port();
		ck_assert_int_gt(port, 0);
		snprintf(closed, sizeof(closed), "127.0.0.1:%d", port);
		servers = closed;
	}
	unsetenv("CARES_HOSTS");
	hosts_path[0] = '\0';
	if (private_hosts) {
		strcpy(hosts_path, "/tmp/test_dns_hosts.XXXXXX");
		fd = mkstemp(hosts_path);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, test_hosts, sizeof(test_hosts) - 1),
				 (ssize_t)(sizeof(test_hosts) - 1));
		close(fd);
		setenv("CARES_HOSTS", hosts_path, 1);
	}
	lp = loop_create((enum loop_backend)backend, maxfds, err, sizeof(err));
	ck_assert_msg(lp != NULL, "loop_create: %s", err);
	dn = dns_create(lp, timeout_ms, cache_size, servers, err, sizeof(err));
	ck_assert_msg(dn != NULL, "dns_create: %s", err);
}

static void env_up(int backend, unsigned timeout_ms, size_t cache_size, int maxfds,
		   int private_hosts)
{
	env_up_with(backend, timeout_ms, cache_size, maxfds, private_hosts, FAKE_SERVER);
}

static void env_down(void)
{
	dns_destroy(dn);
	loop_destroy(lp);
	fake_dns_stop(fdns);
	dn = NULL;
	lp = NULL;
	fdns = NULL;
	if (hosts_path[0])
		unlink(hosts_path);
	unsetenv("CARES_HOSTS");
}

static int is_loopback(const union dns_sockaddr *ss)
{
	if (ss->sa.sa_family == AF_INET)
		return (ntohl(ss->in4.sin_addr.s_addr) >> 24) == 127;
	if (ss->sa.sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&ss->in6.sin6_addr);
	return 0;
}

static uint16_t port_of(const union dns_sockaddr *ss)
{
	if (ss->sa.sa_family == AF_INET6)
		return ntohs(ss->in6.sin6_port);
	return ntohs(ss->in4.sin_port);
}

static const char *addr_str(const union dns_sockaddr *ss, char *buf, size_t len)
{
	const void *a = ss->sa.sa_family == AF_INET6 ? (const void *)&ss->in6.sin6_addr
						    : (const void *)&ss->in4.sin_addr;

	return inet_ntop(ss->sa.sa_family, a, buf, (socklen_t)len);
}

static void assert_ports(const struct dns_result *res, uint16_t port)
{
	for (int i = 0; i < res->naddrs; i++) {
		ck_assert_int_eq(port_of(&res->addrs[i]), port);
		ck_assert_uint_eq(res->addrlens[i], res->addrs[i].sa.sa_family == AF_INET6 ?
				  sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	}
}

/* Resolve a name that must go to c-ares, wait for the answer, check it succeeded. */
static void resolve_async_ok(const char *host, uint16_t port, struct dns_result *out)
{
	struct dns_result now;
	struct dns_query *q = NULL;
	struct rec r = { 0 };

	ck_assert_int_eq(dns_resolve(dn, host, port, rec_cb, &r, &now, &q), FERRY_AGAIN);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(r.calls, 0); /* never from inside dns_resolve */
	spin_until_called(&r, 1);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_msg(r.status == FERRY_OK, "%s: %s", host, r.res.error ? r.res.error : "?");
	ck_assert_int_ge(r.res.naddrs, 1);
	ck_assert_int_le(r.res.naddrs, DNS_MAX_ADDRS);
	assert_ports(&r.res, port);
	if (out)
		*out = r.res;
}

/* Resolve a name that must go to c-ares, wait for the answer, check it failed with why. */
static void resolve_async_fail(const char *host, const char *why)
{
	struct dns_result now;
	struct dns_query *q = NULL;
	struct rec r = { 0 };

	ck_assert_int_eq(dns_resolve(dn, host, 80, rec_cb, &r, &now, &q), FERRY_AGAIN);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(r.calls, 0);
	spin_until_called(&r, 1);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.status, FERRY_ERR);
	ck_assert_int_eq(r.res.naddrs, 0);
	ck_assert_msg(r.res.error && !strcmp(r.res.error, why), "%s: error \"%s\", want \"%s\"",
		      host, r.res.error ? r.res.error : "(null)", why);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- literals ---- */

START_TEST(literal_v4)
{
	struct dns_result res;
	static char not_null;
	struct dns_query *q = (struct dns_query *)&not_null; /* must be cleared */
	struct rec r = { 0 };
	struct dns_stats st;
	char buf[64];

	env_up(_i, 1000, 16, 1024, 0);
	ck_assert_int_eq(dns_resolve(dn, "127.0.0.1", 8080, rec_cb, &r, &res, &q), FERRY_OK);
	ck_assert_ptr_null(q);
	ck_assert_int_eq(res.naddrs, 1);
	ck_assert_int_eq(res.addrs[0].sa.sa_family, AF_INET);
	ck_assert_str_eq(addr_str(&res.addrs[0], buf, sizeof(buf)), "127.0.0.1");
	assert_ports(&res, 8080);
	ck_assert_int_eq(dns_next_timeout(dn), -1); /* c-ares never saw it */
	spin_rounds(3);
	ck_assert_int_eq(r.calls, 0);
	dns_get_stats(dn, &st);
	ck_assert_uint_eq(st.cache_hits + st.cache_misses + st.failures, 0);
	env_down();
}
END_TEST

START_TEST(literal_v6)
{
	struct dns_result res;
	struct dns_query *q;
	struct rec r = { 0 };
	char buf[64];

	env_up(_i, 1000, 16, 1024, 0);
	ck_assert_int_eq(dns_resolve(dn, "::1", 443, rec_cb, &r, &res, &q), FERRY_OK);
	ck_assert_ptr_null(q);
	ck_assert_int_eq(res.naddrs, 1);
	ck_assert_int_eq(res.addrs[0].sa.sa_family, AF_INET6);
	ck_assert_str_eq(addr_str(&res.addrs[0], buf, sizeof(buf)), "::1");
	assert_ports(&res, 443);

	ck_assert_int_eq(dns_resolve(dn, "fe80::1%7", 80, rec_cb, &r, &res, &q), FERRY_OK);
	ck_assert_int_eq(res.naddrs, 1);
	ck_assert_int_eq(res.addrs[0].sa.sa_family, AF_INET6);
	ck_assert_uint_eq(res.addrs[0].in6.sin6_scope_id, 7);
	assert_ports(&res, 80);
	ck_assert_int_eq(dns_next_timeout(dn), -1);
	spin_rounds(3);
	ck_assert_int_eq(r.calls, 0);
	env_down();
}
END_TEST

START_TEST(bad_names)
{
	char longname[300];
	struct dns_result res;
	struct dns_query *q;
	struct rec r = { 0 };
	struct dns_stats st;

	env_up(_i, 1000, 16, 1024, 0);
	ck_assert_int_eq(dns_resolve(dn, "", 80, rec_cb, &r, &res, &q), FERRY_ERR);
	ck_assert_ptr_null(q);
	ck_assert_str_eq(res.error, "unknown host");
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert_int_eq(dns_resolve(dn, longname, 80, rec_cb, &r, &res, &q), FERRY_ERR);
	ck_assert_str_eq(res.error, "unknown host");
	dns_get_stats(dn, &st);
	ck_assert_uint_eq(st.failures, 2);
	spin_rounds(3);
	ck_assert_int_eq(r.calls, 0);
	env_down();
}
END_TEST

/* ---- names through c-ares ---- */

START_TEST(localhost_then_cache_hit)
{
	struct dns_result first, now;
	struct dns_query *q;
	struct rec r = { 0 };
	struct dns_stats st;

	env_up(_i, 2000, 16, 1024, 0); /* the machine's /etc/hosts */
	resolve_async_ok("localhost", 8080, &first);
	for (int i = 0; i < first.naddrs; i++)
		ck_assert_msg(is_loopback(&first.addrs[i]), "localhost gave a non-loopback address");
	spin_rounds(5);
	dns_get_stats(dn, &st);
	ck_assert_uint_eq(st.cache_misses, 1);
	ck_assert_uint_eq(st.cache_hits, 0);

	ck_assert_int_eq(dns_resolve(dn, "localhost", 3128, rec_cb, &r, &now, &q), FERRY_OK);
	ck_assert_ptr_null(q);
	ck_assert_int_eq(now.naddrs, first.naddrs);
	for (int i = 0; i < now.naddrs; i++)
		ck_assert_int_eq(now.addrs[i].sa.sa_family, first.addrs[i].sa.sa_family);
	assert_ports(&now, 3128);
	dns_get_stats(dn, &st);
	ck_assert_uint_eq(st.cache_hits, 1);
	ck_assert_uint_eq(st.cache_misses, 1);
	ck_assert_uint_eq(st.failures, 0);
	spin_rounds(3);
	ck_assert_int_eq(r.calls, 0);
	env_down();
}
END_TEST

START_TEST(cache_key_ignores_case)
{
	struct dns_result now;
	struct dns_query *q;
	struct rec r = { 0 };
	struct dns_stats st;

	env_up(_i, 2000, 16, 1024, 0);
	resolve_async_ok("LocalHost", 80, NULL);
	ck_assert_int_eq(dns_resolve(dn, "localhost", 80, rec_cb, &r, &now, &q), FERRY_OK);
	ck_assert_int_eq(dns_resolve(dn, "LOCALHOST", 80, rec_cb, &r, &now, &q), FERRY_OK);
	dns_get_stats(dn, &st);
	ck_assert_uint_eq(st.cache_hits, 2);
	ck_assert_uint_eq(st.cache_misses, 1);
	env_down();
}
END_TEST

START_TEST(families_alternate_aaaa_first)
{
	static const char *const want[] = { "2001:db8::1", "192.0.2.1", "2001:db8::2",
					     "192.0.2.2", "192.0.2.3" };
	struct dns_result res;
	char buf[64];

	env_up(_i, 2000, 16, 1024, 1);
	resolve_async_ok("dual.test", 443, &res);
	ck_assert_int_eq(res.naddrs, 5); /* the duplicate 192.0.2.1 is dropped */
	for (int i = 0; i < res.naddrs; i++)
		ck_assert_str_eq(addr_str(&res.addrs[i], buf, sizeof(buf)), want[i]);

	resolve_async_ok("many.test", 80, &res); /* ten addresses in the file */
	ck_assert_int_eq(res.naddrs, DNS_MAX_ADDRS);
	for (int i = 0; i < res.naddrs; i++)
		ck_assert_int_eq(res.addrs[i].sa.sa_family, AF_INET);
	env_down();
}
END_TEST

START_TEST(cache_evicts_least_recently_used)
{
	struct dns_result now;
	struct dns_query *q;
	struct rec r = { 0 };
	struct dns_stats st;

	env_up(_i, 2000, 2, 1024, 1);
	resolve_async_ok("a.test", 80, NULL);
	resolve_async_ok("b.test", 80, NULL);
	ck_assert_int_eq(dns_resolve(dn, "a.test", 80, rec_cb, &r, &now, &q), FERRY_OK);
	resolve_async_ok("c.test", 80, NULL); /* full: b.test, least recently used, goes */
	ck_assert_int_eq(dns_resolve(dn, "a.test", 80, rec_cb, &r, &now, &q), FERRY_OK);
	ck_assert_int_eq(dns_resolve(dn, "c.test", 80, rec_cb, &r, &now, &q), FERRY_OK);
	dns_get_stats(dn, &st);
	ck_assert_uint_eq(st.cache_hits, 3);
	ck_assert_uint_eq(st.cache_misses, 3);
	resolve_async_ok("b.test", 80, NULL);
	dns_get_stats(dn, &st);
	ck_assert_uint_eq(st.cache_misses, 4);
	env_down();
}
END_TEST

START_TEST(no_cache_when_size_zero)
{
	struct dns_stats st;

	env_up(_i, 2000, 0, 1024, 1);
	resolve_async_ok("a.test", 80, NULL);
	resolve_async_ok("a.test", 80, NULL);
	dns_get_stats(dn, &st);
	ck_assert_uint_eq(st.cache_misses, 2);
	ck_assert_uint_eq(st.cache_hits, 0);
	env_down();
}
END_TEST

/* The server says NXDOMAIN: "unknown host", remembered for a while (negative caching). */
START_TEST(nonexistent_fails)
{
	struct dns_result now;
	struct dns_query *q;
	struct rec r = { 0 };
	struct dns_stats st;
	int asked;

	env_up(_i, 2000, 16, 1024, 0);
	resolve_async_fail("nonexistent.invalid", "unknown host");
	asked = fake_dns_queries(fdns, "nonexistent.invalid");
	ck_assert_int_ge(asked, 1); /* the answer came from our server */
	dns_get_stats(dn, &st);
	ck_assert_uint_eq(st.failures, 1);
	ck_assert_uint_eq(st.cache_misses, 1);

	ck_assert_int_eq(dns_resolve(dn, "Nonexistent.Invalid", 80, rec_cb, &r, &now, &q),
			 FERRY_ERR);
	ck_assert_ptr_null(q);
	ck_assert_int_eq(now.naddrs, 0);
	ck_assert_str_eq(now.error, "unknown host");
	ck_assert_int_eq(fake_dns_queries(fdns, "nonexistent.invalid"), asked);
	dns_get_stats(dn, &st);
	ck_assert_uint_eq(st.cache_hits, 1);
	ck_assert_uint_eq(st.failures, 2);
	spin_until_idle();
	ck_assert_int_eq(r.calls, 0);
	env_down();
}
END_TEST

/* ---- answers from a DNS server ---- */

START_TEST(server_answers_in_order)
{
	static const char *const mixed[] = { "2001:db8::1", "192.0.2.1", "2001:db8::2" };
	struct dns_result res;
	char buf[64];

	env_up(_i, 2000, 16, 1024, 0);
	fake_dns_add(fdns, "two.test", "127.0.0.2", 300);
	fake_dns_add(fdns, "two.test", "127.0.0.1", 300);
	fake_dns_add(fdns, "mixed.test", "192.0.2.1", 300);
	fake_dns_add(fdns, "mixed.test", "2001:db8::1", 300);
	fake_dns_add(fdns, "mixed.test", "2001:db8::2", 300);

	/* The server's order is kept, so the first address is the first tried (the
	 * end-to-end fallback test counts on 127.0.0.2 before 127.0.0.1). */
	resolve_async_ok("two.test", 8080, &res);
	ck_assert_int_eq(res.naddrs, 2);
	ck_assert_str_eq(addr_str(&res.addrs[0], buf, sizeof(buf)), "127.0.0.2");
	ck_assert_str_eq(addr_str(&res.addrs[1], buf, sizeof(buf)), "127.0.0.1");
	/* Both families asked for; they alternate, AAAA first. */
	ck_assert_int_ge(fake_dns_queries(fdns, "two.test"), 2);
	resolve_async_ok("MIXED.test", 443, &res);
	ck_assert_int_eq(res.naddrs, 3);
	for (int i = 0; i < res.naddrs; i++)
		ck_assert_str_eq(addr_str(&res.addrs[i], buf, sizeof(buf)), mixed[i]);
	env_down();
}
END_TEST

/* An answer is kept for its TTL: asked again only once the TTL has passed. */
START_TEST(server_answer_cached_for_ttl)
{
	struct dns_result now;
	struct dns_query *q;
	struct rec r = { 0 };
	struct dns_stats st;
	char buf[64];
	int nlong, nshort;

	env_up(_i, 2000, 16, 1024, 0);
	fake_dns_add(fdns, "long.test", "192.0.2.1", 300);
	fake_dns_add(fdns, "short.test", "192.0.2.2", 1);
	resolve_async_ok("long.test", 80, NULL);
	resolve_async_ok("short.test", 80, NULL);
	nlong = fake_dns_queries(fdns, "long.test");
	nshort = fake_dns_queries(fdns, "short.test");
	ck_assert_int_ge(nlong, 1);
	ck_assert_int_ge(nshort, 1);

	ck_assert_int_eq(dns_resolve(dn, "long.test", 81, rec_cb, &r, &now, &q), FERRY_OK);
	ck_assert_int_eq(now.naddrs, 1);
	ck_assert_str_eq(addr_str(&now.addrs[0], buf, sizeof(buf)), "192.0.2.1");
	assert_ports(&now, 81);

	/* Past short.test's TTL of 1 s (not the minute of hosts-file names): asked again.
	 * long.test, 300 s, is still answered from the cache. */
	sleep_ms(1200);
	loop_update_time(lp);
	ck_assert_int_eq(dns_resolve(dn, "long.test", 80, rec_cb, &r, &now, &q), FERRY_OK);
	resolve_async_ok("short.test", 80, &now);
	ck_assert_str_eq(addr_str(&now.addrs[0], buf, sizeof(buf)), "192.0.2.2");
	ck_assert_int_gt(fake_dns_queries(fdns, "short.test"), nshort);
	ck_assert_int_eq(fake_dns_queries(fdns, "long.test"), nlong);
	dns_get_stats(dn, &st);
	ck_assert_uint_eq(st.cache_hits, 2);
	ck_assert_uint_eq(st.cache_misses, 3);
	ck_assert_int_eq(r.calls, 0);
	env_down();
}
END_TEST

/* A server failure or a timeout may be transient: the next request asks again. */
START_TEST(failures_not_cached)
{
	struct dns_stats st;
	int n;

	env_up(_i, 300, 16, 1024, 0);
	fake_dns_servfail(fdns, "broken.test");
	fake_dns_silent(fdns, "silent.test");

	resolve_async_fail("broken.test", "DNS failure");
	n = fake_dns_queries(fdns, "broken.test");
	ck_assert_int_ge(n, 1);
	resolve_async_fail("broken.test", "DNS failure");
	ck_assert_int_gt(fake_dns_queries(fdns, "broken.test"), n);

	resolve_async_fail("silent.test", "DNS timeout");
	n = fake_dns_queries(fdns, "silent.test");
	ck_assert_int_ge(n, 1);
	resolve_async_fail("silent.test", "DNS timeout");
	ck_assert_int_gt(fake_dns_queries(fdns, "silent.test"), n);
	spin_until_idle();
	dns_get_stats(dn, &st);
	ck_assert_uint_eq(st.cache_hits, 0);
	ck_assert_uint_eq(st.cache_misses, 4);
	ck_assert_uint_eq(st.failures, 4);
	env_down();
}
END_TEST

/* Nothing listens at the server's port: a failure at once, not a wait for the deadline
 * (which would say "DNS timeout"). */
START_TEST(closed_server_port_fails_fast)
{
	env_up_with(_i, HANG_GUARD_MS, 16, 1024, 0, CLOSED_PORT);
	resolve_async_fail("nonexistent.invalid", "DNS failure");
	resolve_async_fail("nonexistent.invalid", "DNS failure"); /* not cached */
	spin_until_idle();
	ck_assert_int_eq(fake_dns_queries(fdns, NULL), 0);
	env_down();
}
END_TEST

/* A name in the hosts file is answered from it, without asking the server (the order of
 * /etc/nsswitch.conf, "files dns" on Debian). */
START_TEST(hosts_file_before_server)
{
	struct dns_result res;
	char buf[64];

	env_up(_i, 2000, 16, 1024, 1);
	fake_dns_add(fdns, "a.test", "192.0.2.99", 300); /* the file says 198.51.100.1 */
	resolve_async_ok("a.test", 80, &res);
	ck_assert_int_eq(res.naddrs, 1);
	ck_assert_str_eq(addr_str(&res.addrs[0], buf, sizeof(buf)), "198.51.100.1");
	ck_assert_int_eq(fake_dns_queries(fdns, NULL), 0);
	env_down();
}
END_TEST

START_TEST(create_with_servers)
{
	struct dns *d;
	char err[256] = "";

	lp = loop_create((enum loop_backend)_i, 1024, err, sizeof(err));
	ck_assert_msg(lp != NULL, "loop_create: %s", err);
	d = dns_create(lp, 1000, 16, "not-an-address", err, sizeof(err));
	ck_assert_ptr_null(d);
	ck_assert_msg(strncmp(err, "dns servers: ", 13) == 0, "err \"%s\"", err);
	/* Every form config.c writes. */
	d = dns_create(lp, 1000, 16, "127.0.0.1:53,[::1]:5353", err, sizeof(err));
	ck_assert_msg(d != NULL, "dns_create: %s", err);
	dns_destroy(d);
	/* NULL and "" leave the system's servers (not asked here). */
	d = dns_create(lp, 1000, 16, "", err, sizeof(err));
	ck_assert_msg(d != NULL, "dns_create: %s", err);
	dns_destroy(d);
	d = dns_create(lp, 1000, 0, NULL, err, sizeof(err));
	ck_assert_msg(d != NULL, "dns_create: %s", err);
	dns_destroy(d);
	loop_destroy(lp);
	lp = NULL;
}
END_TEST

/* c-ares' socket lands above maxfds, so the loop refuses it and the answer is never read:
 * only our own deadline can end the query, and must. */
START_TEST(deadline_bounds_a_query)
{
	struct dns_result now;
	struct dns_query *q;
	struct rec r = { 0 };
	int fds[64], nfds = 0, fd;

	env_up(_i, 200, 16, 32, 0);
	while ((fd = open("/dev/null", O_RDONLY)) >= 0 && fd < 32) {
		ck_assert_int_lt(nfds, 64);
		fds[nfds++] = fd;
	}
	ck_assert_int_ge(fd, 32);
	close(fd); /* the lowest free fd, for c-ares, is now out of the loop's range */

	ck_assert_int_eq(dns_resolve(dn, "deadline.invalid", 80, rec_cb, &r, &now, &q),
			 FERRY_AGAIN);
	spin_until_called(&r, 0); /* c-ares' own timeouts never run */
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.status, FERRY_ERR);
	ck_assert_str_eq(r.res.error, "DNS timeout");
	ck_assert_int_ge(dns_next_timeout(dn), 0); /* c-ares still holds it */
	spin_until_idle(); /* now c-ares gives up too, and the query is freed silently */
	ck_assert_int_eq(r.calls, 1);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	env_down();
}
END_TEST

START_TEST(cancel_prevents_callback)
{
	struct dns_result now;
	struct dns_query *q1, *q2;
	struct rec r1 = { 0 }, r2 = { 0 };

	env_up(_i, 300, 16, 1024, 1);
	/* a.test is answered from the hosts file (delivery pending on the loop), the other
	 * is still with c-ares: both kinds of pending query. */
	ck_assert_int_eq(dns_resolve(dn, "a.test", 80, rec_cb, &r1, &now, &q1), FERRY_AGAIN);
	ck_assert_int_eq(dns_resolve(dn, "nonexistent.invalid", 80, rec_cb, &r2, &now, &q2),
			 FERRY_AGAIN);
	dns_cancel(q1);
	dns_cancel(q2);
	spin_rounds(3);
	spin_until_idle();
	spin_rounds(3);
	ck_assert_int_eq(r1.calls, 0);
	ck_assert_int_eq(r2.calls, 0);
	env_down();
}
END_TEST

START_TEST(destroy_with_pending_queries)
{
	struct dns_result now;
	struct dns_query *q;
	struct rec r1 = { 0 }, r2 = { 0 }, r3 = { 0 };

	env_up(_i, 300, 16, 1024, 1);
	ck_assert_int_eq(dns_resolve(dn, "a.test", 80, rec_cb, &r1, &now, &q), FERRY_AGAIN);
	ck_assert_int_eq(dns_resolve(dn, "nonexistent.invalid", 80, rec_cb, &r2, &now, &q),
			 FERRY_AGAIN);
	ck_assert_int_eq(dns_resolve(dn, "other.invalid", 80, rec_cb, &r3, &now, &q),
			 FERRY_AGAIN);
	dns_cancel(q); /* cancelled and pending at once */
	dns_destroy(dn);
	dn = NULL;
	/* The loop must hold nothing of dns any more: no timer, no fd. */
	for (int i = 0; i < 3; i++)
		ck_assert_int_ge(loop_run_once(lp, 10), 0);
	ck_assert_int_eq(r1.calls + r2.calls + r3.calls, 0);
	loop_destroy(lp);
	lp = NULL;
	fake_dns_stop(fdns);
	fdns = NULL;
	if (hosts_path[0])
		unlink(hosts_path);
}
END_TEST

START_TEST(next_timeout_idle)
{
	struct dns_result now;
	struct dns_query *q;
	struct rec r = { 0 };

	env_up(_i, 300, 16, 1024, 1);
	ck_assert_int_eq(dns_next_timeout(dn), -1);
	ck_assert_int_eq(dns_resolve(dn, "nonexistent.invalid", 80, rec_cb, &r, &now, &q),
			 FERRY_AGAIN);
	ck_assert_int_ge(dns_next_timeout(dn), 0);
	spin_until_called(&r, 1);
	spin_until_idle();
	ck_assert_int_eq(dns_next_timeout(dn), -1);
	dns_process_timeouts(dn); /* harmless when idle */
	ck_assert_int_eq(dns_next_timeout(dn), -1);
	env_down();
}
END_TEST

/* A callback may start the next resolution (conn.c does, for a redirect to another host). */
struct chain {
	struct rec first, second;
	struct dns_query *q;
	int rc;
};

static void chain_cb(void *arg, int status, const struct dns_result *res)
{
	struct chain *c = arg;
	struct dns_result now;

	rec_cb(&c->first, status, res);
	c->rc = dns_resolve(dn, "b.test", 81, rec_cb, &c->second, &now, &c->q);
}

START_TEST(resolve_from_callback)
{
	struct dns_result now;
	struct dns_query *q;
	struct chain c = { 0 };
	char buf[64];

	env_up(_i, 2000, 16, 1024, 1);
	ck_assert_int_eq(dns_resolve(dn, "a.test", 80, chain_cb, &c, &now, &q), FERRY_AGAIN);
	spin_until_called(&c.first, 1);
	ck_assert_int_eq(c.first.status, FERRY_OK);
	ck_assert_int_eq(c.rc, FERRY_AGAIN);
	ck_assert_int_eq(c.second.calls, 0);
	spin_until_called(&c.second, 1);
	ck_assert_int_eq(c.second.calls, 1);
	ck_assert_int_eq(c.second.status, FERRY_OK);
	ck_assert_str_eq(addr_str(&c.second.res.addrs[0], buf, sizeof(buf)), "198.51.100.2");
	assert_ports(&c.second.res, 81);
	env_down();
}
END_TEST

static Suite *dns_suite(void)
{
	Suite *s = suite_create("dns");
	TCase *tc = tcase_create("core");
	int lo = LOOP_BACKEND_POLL, hi = LOOP_BACKEND_EPOLL + 1;

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, literal_v4, lo, hi);
	tcase_add_loop_test(tc, literal_v6, lo, lo + 1);
	tcase_add_loop_test(tc, bad_names, lo, lo + 1);
	tcase_add_loop_test(tc, localhost_then_cache_hit, lo, hi);
	tcase_add_loop_test(tc, cache_key_ignores_case, lo, hi);
	tcase_add_loop_test(tc, families_alternate_aaaa_first, lo, hi);
	tcase_add_loop_test(tc, cache_evicts_least_recently_used, lo, lo + 1);
	tcase_add_loop_test(tc, no_cache_when_size_zero, lo, lo + 1);
	tcase_add_loop_test(tc, nonexistent_fails, lo, hi);
	tcase_add_loop_test(tc, deadline_bounds_a_query, lo, hi);
	tcase_add_loop_test(tc, cancel_prevents_callback, lo, hi);
	tcase_add_loop_test(tc, destroy_with_pending_queries, lo, hi);
	tcase_add_loop_test(tc, next_timeout_idle, lo, lo + 1);
	tcase_add_loop_test(tc, resolve_from_callback, lo, hi);
	tcase_add_loop_test(tc, server_answers_in_order, lo, hi);
	tcase_add_loop_test(tc, server_answer_cached_for_ttl, lo, hi);
	tcase_add_loop_test(tc, failures_not_cached, lo, hi);
	tcase_add_loop_test(tc, closed_server_port_fails_fast, lo, hi);
	tcase_add_loop_test(tc, hosts_file_before_server, lo, hi);
	tcase_add_loop_test(tc, create_with_servers, lo, lo + 1);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dns_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
