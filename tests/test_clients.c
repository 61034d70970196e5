/* test_clients.c - per-client connection counts ([limits] per_client). */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients.h"
#include "status.h"

static struct sockaddr_storage v4(const char *ip, int port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	ck_assert_int_eq(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	sin6->sin6_family = AF_INET6;
	ck_assert_int_eq(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
	return ss;
}

#define SA(x) ((const struct sockaddr *)&(x))

START_TEST(cap_per_address)
{
	struct clients t;
	ck_assert_int_eq(clients_init(&t, 2), FERRY_OK);
	struct sockaddr_storage a = v4("192.0.2.1", 1000), a2 = v4("192.0.2.1", 2000), b = v4("192.0.2.2", 1);
	ck_assert_int_eq(clients_acquire(&t, SA(a)), FERRY_OK);
	ck_assert_int_eq(clients_acquire(&t, SA(a2)), FERRY_OK); /* ports do not matter */
	ck_assert_int_eq(clients_acquire(&t, SA(a)), FERRY_ERR);
	ck_assert_int_eq(clients_acquire(&t, SA(b)), FERRY_OK);
	ck_assert_uint_eq(clients_count(&t, SA(a)), 2);
	clients_release(&t, SA(a));
	ck_assert_uint_eq(clients_count(&t, SA(a)), 1);
	ck_assert_int_eq(clients_acquire(&t, SA(a)), FERRY_OK);
	clients_release(&t, SA(a));
	clients_release(&t, SA(a));
	ck_assert_uint_eq(clients_count(&t, SA(a)), 0);
	ck_assert_uint_eq(clients_count(&t, SA(b)), 1);
	clients_destroy(&t);
}
END_TEST

START_TEST(mapped_and_plain_v4_are_one_client)
{
	struct clients t;
	ck_assert_int_eq(clients_init(&t, 1), FERRY_OK);
	struct sockaddr_storage a = v4("198.51.100.7", 1), m = v6("::ffff:198.51.100.7");
	ck_assert_int_eq(clients_acquire(&t, SA(a)), FERRY_OK);
	ck_assert_int_eq(clients_acquire(&t, SA(m)), FERRY_ERR);
	clients_release(&t, SA(a));
	ck_assert_int_eq(clients_acquire(&t, SA(m)), FERRY_OK);
	clients_destroy(&t);
}
END_TEST

/* Many addresses: growth and backward-shift deletion keep every count right. */
START_TEST(many_addresses_grow_and_delete)
{
	struct clients t;
	ck_assert_int_eq(clients_init(&t, 3), FERRY_OK);
	enum { N = 5000 };
	char ip[32];
	for (int i = 0; i < N; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i / 65536, (i / 256) % 256, i % 256);
		struct sockaddr_storage s = v4(ip, 1);
		for (int k = 0; k <= i % 3; k++)
			ck_assert_int_eq(clients_acquire(&t, SA(s)), FERRY_OK);
	}
	/* remove every other address entirely */
	for (int i = 0; i < N; i += 2) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i / 65536, (i / 256) % 256, i % 256);
		struct sockaddr_storage s = v4(ip, 1);
		for (int k = 0; k <= i % 3; k++)
			clients_release(&t, SA(s));
	}
	for (int i = 0; i < N; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i / 65536, (i / 256) % 256, i % 256);
		struct sockaddr_storage s = v4(ip, 1);
		unsigned want = (i % 2) ? (unsigned)(i % 3) + 1 : 0;
		ck_assert_msg(clients_count(&t, SA(s)) == want, "%s: %u, want %u", ip, clients_count(&t, SA(s)), want);
	}
	ck_assert_uint_eq(t.used, N / 2);
	clients_destroy(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("clients");
	TCase *tc = tcase_create("clients");
	tcase_add_test(tc, cap_per_address);
	tcase_add_test(tc, mapped_and_plain_v4_are_one_client);
	tcase_add_test(tc, many_addresses_grow_and_delete);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
