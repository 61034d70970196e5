/* test_acl.c - CIDR parsing and matching (IPv4, IPv6, IPv4-mapped), port ranges. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "status.h"

/* A sockaddr for an address literal: AF_INET6 when it contains ':'. */
static const struct sockaddr *sa_of(const char *ip, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return (const struct sockaddr *)ss;
}

/* A list built from a NULL-terminated array of CIDR strings. */
static void list_of(struct cidr_list *l, const char *const *v)
{
	struct cidr c;
	char err[128];

	memset(l, 0, sizeof(*l));
	for (; *v; v++) {
		ck_assert_msg(cidr_parse(*v, &c, err, sizeof(err)) == FERRY_OK, "%s: %s", *v, err);
		ck_assert_int_eq(cidr_list_add(l, &c), FERRY_OK);
	}
}

static int matches(const struct cidr_list *l, const char *ip)
{
	struct sockaddr_storage ss;
	return cidr_list_match(l, sa_of(ip, &ss));
}

static int matches_one(const char *cidr, const char *ip)
{
	const char *v[] = { cidr, NULL };
	struct cidr_list l;
	int r;

	list_of(&l, v);
	r = matches(&l, ip);
	cidr_list_free(&l);
	return r;
}

START_TEST(parse_ipv4)
{
	struct cidr c;
	char err[128];
	const uint8_t ten[4] = { 10, 0, 0, 0 }, host[4] = { 192, 0, 2, 1 };

	ck_assert_int_eq(cidr_parse("10.0.0.0/8", &c, err, sizeof(err)), FERRY_OK);
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_uint_eq(c.prefix, 8);
	ck_assert_mem_eq(c.addr, ten, 4);

	ck_assert_int_eq(cidr_parse("192.0.2.1", &c, err, sizeof(err)), FERRY_OK);
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_uint_eq(c.prefix, 32);
	ck_assert_mem_eq(c.addr, host, 4);

	ck_assert_int_eq(cidr_parse("0.0.0.0/0", &c, err, sizeof(err)), FERRY_OK);
	ck_assert_uint_eq(c.prefix, 0);
	ck_assert_int_eq(cidr_parse("192.0.2.1/32", &c, err, sizeof(err)), FERRY_OK);
	ck_assert_uint_eq(c.prefix, 32);
}
END_TEST

START_TEST(parse_ipv6)
{
	struct cidr c;
	char err[128];
	uint8_t fe80[16] = { 0xfe, 0x80 }, one[16] = { 0 };

	one[15] = 1;
	ck_assert_int_eq(cidr_parse("fe80::/10", &c, err, sizeof(err)), FERRY_OK);
	ck_assert_int_eq(c.family, AF_INET6);
	ck_assert_uint_eq(c.prefix, 10);
	ck_assert_mem_eq(c.addr, fe80, 16);

	ck_assert_int_eq(cidr_parse("::1", &c, err, sizeof(err)), FERRY_OK);
	ck_assert_int_eq(c.family, AF_INET6);
	ck_assert_uint_eq(c.prefix, 128);
	ck_assert_mem_eq(c.addr, one, 16);

	ck_assert_int_eq(cidr_parse("::/0", &c, err, sizeof(err)), FERRY_OK);
	ck_assert_uint_eq(c.prefix, 0);
}
END_TEST

/* A mapped network is stored as the IPv4 network, so that it matches unwrapped clients. */
START_TEST(parse_mapped_is_ipv4)
{
	struct cidr c;
	char err[128];
	const uint8_t net[4] = { 10, 1, 0, 0 };

	ck_assert_int_eq(cidr_parse("::ffff:10.1.0.0/112", &c, err, sizeof(err)), FERRY_OK);
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_uint_eq(c.prefix, 16);
	ck_assert_mem_eq(c.addr, net, 4);
	ck_assert_int_eq(matches_one("::ffff:10.1.0.0/112", "10.1.2.3"), 1);
	ck_assert_int_eq(matches_one("::ffff:10.1.0.0/112", "::ffff:10.1.2.3"), 1);
	ck_assert_int_eq(matches_one("::ffff:10.1.0.0/112", "10.2.0.0"), 0);
}
END_TEST

static void expect_parse_error(const char *s, const char *fragment)
{
	struct cidr c;
	char err[128] = "";

	ck_assert_msg(cidr_parse(s, &c, err, sizeof(err)) == FERRY_ERR, "'%s' was accepted", s);
	ck_assert_msg(strstr(err, fragment) != NULL, "'%s': error '%s' lacks '%s'", s, err,
		      fragment);
}

START_TEST(parse_errors)
{
	struct cidr c;

	expect_parse_error("", "empty");
	expect_parse_error("/8", "missing");
	expect_parse_error("10.0.0.0/", "prefix");
	expect_parse_error("10.0.0.0/x", "prefix");
	expect_parse_error("10.0.0.0/-1", "prefix");
	expect_parse_error("10.0.0.0/ 8", "prefix");
	expect_parse_error("10.0.0.0/8/8", "prefix");
	expect_parse_error("10.0.0.0/1000", "prefix");
	expect_parse_error("10.0.0.0/33", "larger than 32");
	expect_parse_error("::/129", "larger than 128");
	expect_parse_error("10.1.2.3/8", "did you mean 10.0.0.0/8");
	expect_parse_error("192.168.1.1/31", "did you mean 192.168.1.0/31");
	expect_parse_error("fe80::1/10", "did you mean fe80::/10");
	expect_parse_error("10.0.0", "not an IPv4 address");
	expect_parse_error("256.0.0.0", "not an IPv4 address");
	expect_parse_error("localhost", "host names");
	expect_parse_error("1:2:3", "not an IPv6 address");
	expect_parse_error("fe80::1%eth0", "not an IPv6 address");
	expect_parse_error("10.0.0.0 /8", "not an IPv4 address");
	expect_parse_error("0123456789012345678901234567890123456789012345678/1", "not an IP");
	/* A NULL err buffer is allowed. */
	ck_assert_int_eq(cidr_parse("nonsense", &c, NULL, 0), FERRY_ERR);
}
END_TEST

START_TEST(match_ipv4)
{
	const char *v[] = { "10.0.0.0/8", "192.168.1.0/24", "172.16.0.0/12", "203.0.113.7", NULL };
	struct cidr_list l;

	list_of(&l, v);
	ck_assert_uint_eq(l.n, 4);
	ck_assert_int_eq(matches(&l, "10.0.0.0"), 1);
	ck_assert_int_eq(matches(&l, "10.255.255.255"), 1);
	ck_assert_int_eq(matches(&l, "11.0.0.0"), 0);
	ck_assert_int_eq(matches(&l, "9.255.255.255"), 0);
	ck_assert_int_eq(matches(&l, "192.168.1.77"), 1);
	ck_assert_int_eq(matches(&l, "192.168.2.77"), 0);
	/* /12: not byte aligned. */
	ck_assert_int_eq(matches(&l, "172.31.255.255"), 1);
	ck_assert_int_eq(matches(&l, "172.32.0.0"), 0);
	ck_assert_int_eq(matches(&l, "172.15.255.255"), 0);
	ck_assert_int_eq(matches(&l, "203.0.113.7"), 1);
	ck_assert_int_eq(matches(&l, "203.0.113.8"), 0);
	/* Families do not mix: an IPv6 client never matches an IPv4 entry. */
	ck_assert_int_eq(matches(&l, "::a00:1"), 0);
	cidr_list_free(&l);
	ck_assert_ptr_null(l.v);
	ck_assert_uint_eq(l.n, 0);
}
END_TEST

START_TEST(match_ipv6)
{
	const char *v[] = { "2001:db8::/32", "fe80::/10", "::1", NULL };
	struct cidr_list l;

	list_of(&l, v);
	ck_assert_int_eq(matches(&l, "2001:db8::1"), 1);
	ck_assert_int_eq(matches(&l, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), 1);
	ck_assert_int_eq(matches(&l, "2001:db9::"), 0);
	ck_assert_int_eq(matches(&l, "fe80::1"), 1);
	ck_assert_int_eq(matches(&l, "febf:ffff::1"), 1);
	ck_assert_int_eq(matches(&l, "fec0::1"), 0);
	ck_assert_int_eq(matches(&l, "::1"), 1);
	ck_assert_int_eq(matches(&l, "::2"), 0);
	ck_assert_int_eq(matches(&l, "127.0.0.1"), 0);
	cidr_list_free(&l);
}
END_TEST

START_TEST(match_mapped)
{
	const char *v[] = { "127.0.0.0/8", "192.0.2.1", NULL };
	struct cidr_list l;

	list_of(&l, v);
	ck_assert_int_eq(matches(&l, "::ffff:127.0.0.1"), 1);
	ck_assert_int_eq(matches(&l, "::ffff:127.255.0.9"), 1);
	ck_assert_int_eq(matches(&l, "::ffff:192.0.2.1"), 1);
	ck_assert_int_eq(matches(&l, "::ffff:192.0.2.2"), 0);
	ck_assert_int_eq(matches(&l, "::ffff:128.0.0.1"), 0);
	/* IPv4-compatible (deprecated) and NAT64 forms are not unwrapped. */
	ck_assert_int_eq(matches(&l, "::127.0.0.1"), 0);
	ck_assert_int_eq(matches(&l, "64:ff9b::127.0.0.1"), 0);
	cidr_list_free(&l);

	/* An IPv6 catch-all does not catch mapped clients: they are IPv4 clients. */
	ck_assert_int_eq(matches_one("::/0", "::ffff:10.0.0.1"), 0);
	ck_assert_int_eq(matches_one("0.0.0.0/0", "::ffff:10.0.0.1"), 1);
}
END_TEST

START_TEST(match_prefix_edges)
{
	ck_assert_int_eq(matches_one("0.0.0.0/0", "0.0.0.0"), 1);
	ck_assert_int_eq(matches_one("0.0.0.0/0", "255.255.255.255"), 1);
	ck_assert_int_eq(matches_one("0.0.0.0/0", "::1"), 0);
	ck_assert_int_eq(matches_one("::/0", "::"), 1);
	ck_assert_int_eq(matches_one("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 1);
	ck_assert_int_eq(matches_one("::/0", "10.0.0.1"), 0);

	ck_assert_int_eq(matches_one("198.51.100.10/32", "198.51.100.10"), 1);
	ck_assert_int_eq(matches_one("198.51.100.10/32", "198.51.100.11"), 0);
	ck_assert_int_eq(matches_one("198.51.100.10/32", "198.51.100.138"), 0);
	ck_assert_int_eq(matches_one("255.255.255.255/32", "255.255.255.255"), 1);
	ck_assert_int_eq(matches_one("255.255.255.255/32", "255.255.255.254"), 0);

	ck_assert_int_eq(matches_one("2001:db8::5/128", "2001:db8::5"), 1);
	ck_assert_int_eq(matches_one("2001:db8::5/128", "2001:db8::4"), 0);
	ck_assert_int_eq(matches_one("2001:db8::5/128", "2001:db8::4:5"), 0);
	ck_assert_int_eq(matches_one("2001:db8::5/128", "2001:db8::8005"), 0);

	/* Odd prefixes: the last bit of the network counts, the first host bit does not. */
	ck_assert_int_eq(matches_one("192.168.0.0/23", "192.168.1.255"), 1);
	ck_assert_int_eq(matches_one("192.168.0.0/23", "192.168.2.0"), 0);
	ck_assert_int_eq(matches_one("2001:db8::/127", "2001:db8::1"), 1);
	ck_assert_int_eq(matches_one("2001:db8::/127", "2001:db8::2"), 0);
	ck_assert_int_eq(matches_one("128.0.0.0/1", "200.1.1.1"), 1);
	ck_assert_int_eq(matches_one("128.0.0.0/1", "127.255.255.255"), 0);
}
END_TEST

START_TEST(match_odd_inputs)
{
	struct cidr_list empty = { NULL, 0 };
	struct sockaddr_storage ss;
	struct sockaddr sa;

	ck_assert_int_eq(cidr_list_match(&empty, sa_of("127.0.0.1", &ss)), 0);
	ck_assert_int_eq(cidr_list_match(NULL, sa_of("127.0.0.1", &ss)), 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	ck_assert_int_eq(matches_one("0.0.0.0/0", "1.2.3.4"), 1);
	{
		const char *v[] = { "0.0.0.0/0", "::/0", NULL };
		struct cidr_list l;
		list_of(&l, v);
		ck_assert_int_eq(cidr_list_match(&l, &sa), 0);
		ck_assert_int_eq(cidr_list_match(&l, NULL), 0);
		cidr_list_free(&l);
	}
	cidr_list_free(NULL);
}
END_TEST

START_TEST(list_grows)
{
	struct cidr_list l = { NULL, 0 };
	struct cidr c;
	char buf[32];
	int i;

	for (i = 0; i < 200; i++) {
		snprintf(buf, sizeof(buf), "10.%d.0.0/16", i);
		ck_assert_int_eq(cidr_parse(buf, &c, NULL, 0), FERRY_OK);
		ck_assert_int_eq(cidr_list_add(&l, &c), FERRY_OK);
	}
	ck_assert_uint_eq(l.n, 200);
	ck_assert_int_eq(matches(&l, "10.199.3.4"), 1);
	ck_assert_int_eq(matches(&l, "10.200.3.4"), 0);
	cidr_list_free(&l);
}
END_TEST

START_TEST(ports_parse)
{
	struct port_range r;
	char err[128];

	ck_assert_int_eq(port_range_parse("443", &r, err, sizeof(err)), FERRY_OK);
	ck_assert_uint_eq(r.lo, 443);
	ck_assert_uint_eq(r.hi, 443);
	ck_assert_int_eq(port_range_parse("8000-8100", &r, err, sizeof(err)), FERRY_OK);
	ck_assert_uint_eq(r.lo, 8000);
	ck_assert_uint_eq(r.hi, 8100);
	ck_assert_int_eq(port_range_parse("1-65535", &r, err, sizeof(err)), FERRY_OK);
	ck_assert_uint_eq(r.lo, 1);
	ck_assert_uint_eq(r.hi, 65535);
	ck_assert_int_eq(port_range_parse("80-80", &r, err, sizeof(err)), FERRY_OK);
	ck_assert_uint_eq(r.lo, 80);
	ck_assert_uint_eq(r.hi, 80);
}
END_TEST

static void expect_port_error(const char *s, const char *fragment)
{
	struct port_range r;
	char err[128] = "";

	ck_assert_msg(port_range_parse(s, &r, err, sizeof(err)) == FERRY_ERR, "'%s' accepted", s);
	ck_assert_msg(strstr(err, fragment) != NULL, "'%s': error '%s' lacks '%s'", s, err,
		      fragment);
}

START_TEST(ports_errors)
{
	expect_port_error("", "empty");
	expect_port_error("0", "1..65535");
	expect_port_error("65536", "1..65535");
	expect_port_error("100000", "not a port");
	expect_port_error("0-10", "1..65535");
	expect_port_error("10-65536", "1..65535");
	expect_port_error("8100-8000", "reversed");
	expect_port_error("http", "not a port");
	expect_port_error("-80", "not a port");
	expect_port_error("80-", "not a port");
	expect_port_error("80-90-100", "not a port");
	expect_port_error("+80", "not a port");
	expect_port_error(" 80", "not a port");
	expect_port_error("80 ", "not a port");
}
END_TEST

START_TEST(ports_match)
{
	struct port_list l = { NULL, 0 };
	struct port_range r;

	ck_assert_int_eq(port_list_match(&l, 443), 0);
	ck_assert_int_eq(port_range_parse("443", &r, NULL, 0), FERRY_OK);
	ck_assert_int_eq(port_list_add(&l, &r), FERRY_OK);
	ck_assert_int_eq(port_range_parse("8000-8100", &r, NULL, 0), FERRY_OK);
	ck_assert_int_eq(port_list_add(&l, &r), FERRY_OK);
	ck_assert_int_eq(port_range_parse("65535", &r, NULL, 0), FERRY_OK);
	ck_assert_int_eq(port_list_add(&l, &r), FERRY_OK);
	ck_assert_uint_eq(l.n, 3);

	ck_assert_int_eq(port_list_match(&l, 443), 1);
	ck_assert_int_eq(port_list_match(&l, 442), 0);
	ck_assert_int_eq(port_list_match(&l, 444), 0);
	ck_assert_int_eq(port_list_match(&l, 7999), 0);
	ck_assert_int_eq(port_list_match(&l, 8000), 1);
	ck_assert_int_eq(port_list_match(&l, 8050), 1);
	ck_assert_int_eq(port_list_match(&l, 8100), 1);
	ck_assert_int_eq(port_list_match(&l, 8101), 0);
	ck_assert_int_eq(port_list_match(&l, 65535), 1);
	ck_assert_int_eq(port_list_match(&l, 0), 0);
	ck_assert_int_eq(port_list_match(NULL, 443), 0);
	port_list_free(&l);
	ck_assert_ptr_null(l.v);
	ck_assert_uint_eq(l.n, 0);
	port_list_free(NULL);
}
END_TEST

static Suite *acl_suite(void)
{
	Suite *s = suite_create("acl");
	TCase *tc = tcase_create("cidr");

	tcase_add_test(tc, parse_ipv4);
	tcase_add_test(tc, parse_ipv6);
	tcase_add_test(tc, parse_mapped_is_ipv4);
	tcase_add_test(tc, parse_errors);
	tcase_add_test(tc, match_ipv4);
	tcase_add_test(tc, match_ipv6);
	tcase_add_test(tc, match_mapped);
	tcase_add_test(tc, match_prefix_edges);
	tcase_add_test(tc, match_odd_inputs);
	tcase_add_test(tc, list_grows);
	suite_add_tcase(s, tc);

	tc = tcase_create("ports");
	tcase_add_test(tc, ports_parse);
	tcase_add_test(tc, ports_errors);
	tcase_add_test(tc, ports_match);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(acl_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
