/* test_socks5.c - the client side of the SOCKS5 handshake (src/socks5.c): the bytes ferry
 * sends (greeting, RFC 1929 authentication, CONNECT with a name, an IPv4 or an IPv6 address)
 * and how it reads the parent's answers, whole, cut anywhere, refused or malformed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "socks5.h"
#include "status.h"

static void expect_out(struct socks5_client *sc, const void *want, size_t n)
{
	ck_assert_uint_eq(socks5_pending(sc), n);
	ck_assert_msg(memcmp(sc->out, want, n) == 0, "pending message differs");
	socks5_sent(sc, n);
	ck_assert_uint_eq(socks5_pending(sc), 0);
}

/* Feed msg (n bytes): every proper prefix is incomplete and consumes nothing. */
static int feed(struct socks5_client *sc, const void *msg, size_t n, size_t *used)
{
	for (size_t i = 0; i < n; i++) {
		struct socks5_client copy = *sc;
		size_t u = 99;
		int r = socks5_input(&copy, msg, i, &u);
		ck_assert_msg(r == FERRY_AGAIN && u == 0, "prefix %zu/%zu: %d, used %zu", i, n, r, u);
	}
	return socks5_input(sc, msg, n, used);
}

START_TEST(no_auth_name)
{
	struct socks5_client sc;
	size_t used;
	ck_assert_int_eq(socks5_start(&sc, NULL, NULL, "example.com", 443), FERRY_OK);
	expect_out(&sc, "\x05\x01\x00", 3);
	ck_assert_int_eq(feed(&sc, "\x05\x00", 2, &used), FERRY_AGAIN);
	ck_assert_uint_eq(used, 2);
	expect_out(&sc, "\x05\x01\x00\x03\x0b" "example.com" "\x01\xbb", 18);
	/* the reply, then the first tunnel bytes: those are not the handshake's */
	const unsigned char rep[] = { 5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90, 'h', 'i' };
	ck_assert_int_eq(feed(&sc, rep, 10, &used), FERRY_OK);
	ck_assert_int_eq(socks5_input(&sc, rep, sizeof(rep), &used), FERRY_OK);
}
END_TEST

START_TEST(reply_lengths)
{
	struct socks5_client sc;
	size_t used;
	/* bound address as IPv6 and as a name: the reply's length follows its type */
	const unsigned char r6[22] = { 5, 0, 0, 4 };
	const unsigned char rn[] = { 5, 0, 0, 3, 4, 'h', 'o', 's', 't', 0, 80, 'x' };
	ck_assert_int_eq(socks5_start(&sc, NULL, NULL, "a.b", 80), FERRY_OK);
	socks5_sent(&sc, 3);
	ck_assert_int_eq(socks5_input(&sc, (const uint8_t *)"\x05\x00", 2, &used), FERRY_AGAIN);
	socks5_sent(&sc, socks5_pending(&sc));
	struct socks5_client again = sc;
	ck_assert_int_eq(feed(&sc, r6, sizeof(r6), &used), FERRY_OK);
	ck_assert_uint_eq(used, 22);
	ck_assert_int_eq(feed(&again, rn, sizeof(rn) - 1, &used), FERRY_OK);
	ck_assert_uint_eq(used, 11);
}
END_TEST

START_TEST(addresses_as_addresses)
{
	struct socks5_client sc;
	size_t used;
	ck_assert_int_eq(socks5_start(&sc, NULL, NULL, "192.0.2.1", 80), FERRY_OK);
	socks5_sent(&sc, 3);
	ck_assert_int_eq(socks5_input(&sc, (const uint8_t *)"\x05\x00", 2, &used), FERRY_AGAIN);
	expect_out(&sc, "\x05\x01\x00\x01\xc0\x00\x02\x01\x00\x50", 10);
	ck_assert_int_eq(socks5_start(&sc, NULL, NULL, "2001:db8::1", 443), FERRY_OK);
	socks5_sent(&sc, 3);
	ck_assert_int_eq(socks5_input(&sc, (const uint8_t *)"\x05\x00", 2, &used), FERRY_AGAIN);
	const unsigned char want[] = { 5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x01, 0xbb };
	expect_out(&sc, want, sizeof(want));
}
END_TEST

START_TEST(user_password)
{
	struct socks5_client sc;
	size_t used;
	ck_assert_int_eq(socks5_start(&sc, "user", "secret", "example.com", 80), FERRY_OK);
	expect_out(&sc, "\x05\x02\x00\x02", 4);
	ck_assert_int_eq(feed(&sc, "\x05\x02", 2, &used), FERRY_AGAIN);
	expect_out(&sc, "\x01\x04user\x06secret", 13);
	ck_assert_int_eq(feed(&sc, "\x01\x00", 2, &used), FERRY_AGAIN);
	expect_out(&sc, "\x05\x01\x00\x03\x0b" "example.com" "\x00\x50", 18);
	ck_assert_int_eq(feed(&sc, "\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00", 10, &used), FERRY_OK);
	/* a parent that needs no authentication may still pick "none" */
	ck_assert_int_eq(socks5_start(&sc, "user", "secret", "example.com", 80), FERRY_OK);
	socks5_sent(&sc, 4);
	ck_assert_int_eq(socks5_input(&sc, (const uint8_t *)"\x05\x00", 2, &used), FERRY_AGAIN);
	ck_assert_uint_eq(socks5_pending(&sc), 18);
}
END_TEST

START_TEST(refusals)
{
	struct socks5_client sc;
	size_t used;
	/* wrong password */
	socks5_start(&sc, "user", "bad", "example.com", 80);
	socks5_sent(&sc, 4);
	socks5_input(&sc, (const uint8_t *)"\x05\x02", 2, &used);
	socks5_sent(&sc, socks5_pending(&sc));
	ck_assert_int_eq(socks5_input(&sc, (const uint8_t *)"\x01\x01", 2, &used), FERRY_ERR);
	ck_assert_ptr_nonnull(strstr(sc.error, "refused the user name and password"));
	/* the parent wants credentials ferry does not have */
	socks5_start(&sc, NULL, NULL, "example.com", 80);
	socks5_sent(&sc, 3);
	ck_assert_int_eq(socks5_input(&sc, (const uint8_t *)"\x05\x02", 2, &used), FERRY_ERR);
	ck_assert_ptr_nonnull(strstr(sc.error, "requires a user name"));
	/* no acceptable method, not SOCKS5 at all */
	socks5_start(&sc, NULL, NULL, "example.com", 80);
	socks5_sent(&sc, 3);
	ck_assert_int_eq(socks5_input(&sc, (const uint8_t *)"\x05\xff", 2, &used), FERRY_ERR);
	socks5_start(&sc, NULL, NULL, "example.com", 80);
	socks5_sent(&sc, 3);
	ck_assert_int_eq(socks5_input(&sc, (const uint8_t *)"HT", 2, &used), FERRY_ERR);
	ck_assert_ptr_nonnull(strstr(sc.error, "not a SOCKS5 server"));
	/* CONNECT refused: every reply code has its meaning; known as soon as 5 bytes are in */
	for (unsigned rep = 1; rep <= 9; rep++) {
		socks5_start(&sc, NULL, NULL, "example.com", 80);
		socks5_sent(&sc, 3);
		socks5_input(&sc, (const uint8_t *)"\x05\x00", 2, &used);
		socks5_sent(&sc, socks5_pending(&sc));
		unsigned char r[5] = { 5, (unsigned char)rep, 0, 1, 0 };
		ck_assert_int_eq(socks5_input(&sc, r, 5, &used), FERRY_ERR);
		ck_assert_uint_eq(sc.reply, rep);
		ck_assert_str_eq(sc.error, socks5_reply_str((uint8_t)rep));
	}
	ck_assert_str_eq(socks5_reply_str(5), "connection refused");
	/* malformed replies: bad version, reserved byte, address type */
	const unsigned char *bad[] = { (const unsigned char *)"\x04\x00\x00\x01\x00",
				       (const unsigned char *)"\x05\x00\x01\x01\x00",
				       (const unsigned char *)"\x05\x00\x00\x02\x00" };
	for (int i = 0; i < 3; i++) {
		socks5_start(&sc, NULL, NULL, "example.com", 80);
		socks5_sent(&sc, 3);
		socks5_input(&sc, (const uint8_t *)"\x05\x00", 2, &used);
		socks5_sent(&sc, socks5_pending(&sc));
		ck_assert_int_eq(socks5_input(&sc, bad[i], 5, &used), FERRY_ERR);
	}
}
END_TEST

START_TEST(limits)
{
	struct socks5_client sc;
	char host[300];
	memset(host, 'a', sizeof(host));
	host[256] = '\0';
	ck_assert_int_eq(socks5_start(&sc, NULL, NULL, host, 80), FERRY_ERR);
	host[255] = '\0';
	ck_assert_int_eq(socks5_start(&sc, NULL, NULL, host, 80), FERRY_OK);
	ck_assert_int_eq(socks5_start(&sc, host, "p", "h", 80), FERRY_OK);
	host[255] = 'a';
	ck_assert_int_eq(socks5_start(&sc, host, "p", "h", 80), FERRY_ERR);
	ck_assert_int_eq(socks5_start(&sc, "", "p", "h", 80), FERRY_ERR);
	/* RFC 1929: a password of 1 to 255 bytes, never an empty one (PLEN 0) */
	ck_assert_int_eq(socks5_start(&sc, "u", "", "h", 80), FERRY_ERR);
	ck_assert_ptr_nonnull(sc.error);
	ck_assert_int_eq(socks5_pending(&sc), 0);
	ck_assert_int_eq(socks5_start(&sc, "u", NULL, "h", 80), FERRY_ERR);
	ck_assert_int_eq(socks5_start(&sc, "u", host, "h", 80), FERRY_ERR);
	/* the longest authentication message fits */
	host[255] = '\0';
	size_t used;
	ck_assert_int_eq(socks5_start(&sc, host, host, "h", 80), FERRY_OK);
	socks5_sent(&sc, 4);
	ck_assert_int_eq(socks5_input(&sc, (const uint8_t *)"\x05\x02", 2, &used), FERRY_AGAIN);
	ck_assert_uint_eq(socks5_pending(&sc), 3 + 255 + 255);
	/* partial sends keep the rest */
	socks5_sent(&sc, 100);
	ck_assert_uint_eq(socks5_pending(&sc), 413);
	ck_assert_int_eq(sc.out[0], 'a');
}
END_TEST

int main(void)
{
	Suite *s = suite_create("socks5");
	TCase *tc = tcase_create("socks5");
	tcase_add_test(tc, no_auth_name);
	tcase_add_test(tc, reply_lengths);
	tcase_add_test(tc, addresses_as_addresses);
	tcase_add_test(tc, user_password);
	tcase_add_test(tc, refusals);
	tcase_add_test(tc, limits);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
