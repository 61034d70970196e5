/* test_proxyproto.c - the PROXY protocol parser (src/proxyproto.c): v1 TCP4/TCP6/UNKNOWN,
 * v2 PROXY/LOCAL with TLVs, every truncation point of valid headers, oversized headers and
 * bad signatures. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"
#include "status.h"

static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* Parse a copy of exactly n bytes (so ASan sees reads past the end). */
static int parse(const void *p, size_t n, struct proxyproto_result *r)
{
	void *b = malloc(n ? n : 1);
	memcpy(b, p, n);
	int rc = proxyproto_parse(b, n, r);
	free(b);
	return rc;
}

/* Every proper prefix of a valid header is incomplete, never an error. */
static void assert_prefixes_again(const void *p, size_t n)
{
	struct proxyproto_result r;
	for (size_t i = 0; i < n; i++) {
		int rc = parse(p, i, &r);
		ck_assert_msg(rc == FERRY_AGAIN, "prefix of %zu/%zu bytes: %d (%s)", i, n, rc,
			      r.error ? r.error : "");
	}
}

static void assert_v4(const struct sockaddr_storage *ss, const char *ip, int port)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
	char buf[64];
	ck_assert_int_eq(in->sin_family, AF_INET);
	inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
	ck_assert_str_eq(buf, ip);
	ck_assert_int_eq(ntohs(in->sin_port), port);
}

static void assert_v6(const struct sockaddr_storage *ss, const char *ip, int port)
{
	const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)ss;
	char buf[64];
	ck_assert_int_eq(in->sin6_family, AF_INET6);
	inet_ntop(AF_INET6, &in->sin6_addr, buf, sizeof(buf));
	ck_assert_str_eq(buf, ip);
	ck_assert_int_eq(ntohs(in->sin6_port), port);
}

START_TEST(v1_tcp4)
{
	const char *h = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 3128\r\nGET / HTTP/1.1\r\n";
	struct proxyproto_result r;
	size_t hl = strlen("PROXY TCP4 192.0.2.7 198.51.100.1 56324 3128\r\n");
	ck_assert_int_eq(parse(h, strlen(h), &r), (int)hl);
	ck_assert_int_eq(r.version, 1);
	ck_assert_int_eq(r.local, 0);
	assert_v4(&r.src, "192.0.2.7", 56324);
	assert_v4(&r.dst, "198.51.100.1", 3128);
	assert_prefixes_again(h, hl);
}
END_TEST

START_TEST(v1_tcp6)
{
	const char *h = "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n";
	struct proxyproto_result r;
	ck_assert_int_eq(parse(h, strlen(h), &r), (int)strlen(h));
	assert_v6(&r.src, "2001:db8::1", 1);
	assert_v6(&r.dst, "2001:db8::2", 65535);
	assert_prefixes_again(h, strlen(h));
}
END_TEST

START_TEST(v1_unknown)
{
	struct proxyproto_result r;
	const char *a = "PROXY UNKNOWN\r\n";
	ck_assert_int_eq(parse(a, strlen(a), &r), (int)strlen(a));
	ck_assert_int_eq(r.local, 1);
	const char *b = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\nX";
	ck_assert_int_eq(parse(b, strlen(b), &r), (int)strlen(b) - 1);
	ck_assert_int_eq(r.local, 1);
	assert_prefixes_again(b, strlen(b) - 1);
}
END_TEST

START_TEST(v1_longest)
{
	/* the spec's worst case is exactly 107 bytes */
	char h[200];
	snprintf(h, sizeof(h), "PROXY TCP6 %s %s 65535 65535\r\n", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	ck_assert_int_eq(strlen(h), 104);
	struct proxyproto_result r;
	ck_assert_int_eq(parse(h, strlen(h), &r), 104);
	char u[200];
	memset(u, 'x', sizeof(u));
	memcpy(u, "PROXY UNKNOWN ", 14);
	u[105] = '\r';
	u[106] = '\n';
	ck_assert_int_eq(parse(u, 107, &r), 107);
	/* one more byte is too long, whether or not the CRLF came */
	u[105] = 'x';
	u[106] = '\r';
	u[107] = '\n';
	ck_assert_int_eq(parse(u, 108, &r), FERRY_ERR);
	ck_assert_int_eq(parse(u, 107, &r), FERRY_ERR);
	memset(u, 'x', sizeof(u));
	memcpy(u, "PROXY UNKNOWN ", 14);
	ck_assert_int_eq(parse(u, 107, &r), FERRY_ERR);
	ck_assert_ptr_nonnull(r.error);
	ck_assert_int_eq(parse(u, 106, &r), FERRY_AGAIN);
}
END_TEST

START_TEST(v1_malformed)
{
	static const char *const bad[] = {
		"PROXY TCP4 192.0.2.7 198.51.100.1 56324 3128\n",    /* LF only */
		"PROXY TCP4 192.0.2.7 198.51.100.1 56324 3128\rX",   /* CR without LF */
		"PROXY TCP4  192.0.2.7 198.51.100.1 56324 3128\r\n", /* two spaces */
		"PROXY TCP4 192.0.2.7 198.51.100.1 56324 3128 \r\n", /* trailing space */
		"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",       /* a field missing */
		"PROXY TCP4 192.0.2.7 198.51.100.1 56324 3128 9\r\n", /* one too many */
		"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",       /* IPv6 under TCP4 */
		"PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",          /* IPv4 under TCP6 */
		"PROXY TCP4 192.0.2.256 198.51.100.1 1 2\r\n",
		"PROXY TCP4 192.0.2.07 198.51.100.1 1 2\r\n",
		"PROXY TCP4 192.0.2.7 198.51.100.1 65536 2\r\n",
		"PROXY TCP4 192.0.2.7 198.51.100.1 01 2\r\n",       /* leading zero */
		"PROXY TCP4 192.0.2.7 198.51.100.1 -1 2\r\n",
		"PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n",
		"PROXY tcp4 192.0.2.7 198.51.100.1 1 2\r\n",
		"PROXY \r\n",
		"PROXY UNKNOWNX\r\n",
		"PROXY TCP4 192.0.2.7\t198.51.100.1 1 2\r\n",
		"proxy TCP4 192.0.2.7 198.51.100.1 1 2\r\n",
		"PROXYTCP4 192.0.2.7 198.51.100.1 1 2\r\n",
		"GET http://example.com/ HTTP/1.1\r\n\r\n",
		"\r\n\r\nX",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct proxyproto_result r;
		int rc = parse(bad[i], strlen(bad[i]), &r);
		ck_assert_msg(rc == FERRY_ERR, "'%s': %d", bad[i], rc);
		ck_assert_ptr_nonnull(r.error);
		ck_assert_ptr_null(strchr(r.error, '\n'));
	}
	struct proxyproto_result r;
	const char nul[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
	ck_assert_int_eq(parse(nul, sizeof(nul) - 1, &r), FERRY_ERR);
}
END_TEST

static size_t v2_build(uint8_t *out, uint8_t vercmd, uint8_t fam, const uint8_t *data, size_t dlen)
{
	memcpy(out, sig, 12);
	out[12] = vercmd;
	out[13] = fam;
	out[14] = (uint8_t)(dlen >> 8);
	out[15] = (uint8_t)dlen;
	if (dlen > 0)
		memcpy(out + 16, data, dlen);
	return 16 + dlen;
}

START_TEST(v2_tcp4_with_tlvs)
{
	uint8_t d[64], h[128];
	size_t n = 0;
	const uint8_t a[12] = { 192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0x0c, 0x38 };
	memcpy(d, a, 12);
	n = 12;
	/* PP2_TYPE_ALPN "h2", PP2_TYPE_AUTHORITY "example.com", a NOOP with no value */
	d[n++] = 0x01, d[n++] = 0, d[n++] = 2, d[n++] = 'h', d[n++] = '2';
	d[n++] = 0x02, d[n++] = 0, d[n++] = 11;
	memcpy(d + n, "example.com", 11), n += 11;
	d[n++] = 0x04, d[n++] = 0, d[n++] = 0;
	size_t hl = v2_build(h, 0x21, 0x11, d, n);
	h[hl] = 'G';
	struct proxyproto_result r;
	ck_assert_int_eq(parse(h, hl + 1, &r), (int)hl);
	ck_assert_int_eq(r.version, 2);
	ck_assert_int_eq(r.local, 0);
	ck_assert_uint_eq(r.ntlvs, 3);
	assert_v4(&r.src, "192.0.2.7", 56324);
	assert_v4(&r.dst, "198.51.100.1", 3128);
	assert_prefixes_again(h, hl);
}
END_TEST

START_TEST(v2_tcp6)
{
	uint8_t d[36], h[64];
	memset(d, 0, sizeof(d));
	inet_pton(AF_INET6, "2001:db8::1", d);
	inet_pton(AF_INET6, "2001:db8::2", d + 16);
	d[32] = 0x30, d[33] = 0x39, d[34] = 0x00, d[35] = 0x50;
	size_t hl = v2_build(h, 0x21, 0x21, d, 36);
	struct proxyproto_result r;
	ck_assert_int_eq(parse(h, hl, &r), (int)hl);
	assert_v6(&r.src, "2001:db8::1", 12345);
	assert_v6(&r.dst, "2001:db8::2", 80);
	ck_assert_uint_eq(r.ntlvs, 0);
	assert_prefixes_again(h, hl);
}
END_TEST

START_TEST(v2_local_and_unspec)
{
	uint8_t h[64];
	struct proxyproto_result r;
	/* LOCAL with no addresses (HAProxy's health checks) */
	size_t hl = v2_build(h, 0x20, 0x00, NULL, 0);
	ck_assert_int_eq(parse(h, hl, &r), 16);
	ck_assert_int_eq(r.local, 1);
	/* LOCAL that still carries an address block: ignored */
	uint8_t a[12] = { 10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2 };
	hl = v2_build(h, 0x20, 0x11, a, 12);
	ck_assert_int_eq(parse(h, hl, &r), 28);
	ck_assert_int_eq(r.local, 1);
	/* PROXY with UNSPEC: use the connection's addresses */
	hl = v2_build(h, 0x21, 0x00, NULL, 0);
	ck_assert_int_eq(parse(h, hl, &r), 16);
	ck_assert_int_eq(r.local, 1);
}
END_TEST

START_TEST(v2_unix)
{
	uint8_t d[216], h[260];
	memset(d, 0, sizeof(d));
	strcpy((char *)d, "/run/lb.sock");
	size_t hl = v2_build(h, 0x21, 0x31, d, sizeof(d));
	struct proxyproto_result r;
	ck_assert_int_eq(parse(h, hl, &r), (int)hl);
	ck_assert_int_eq(r.local, 1);
	ck_assert_int_eq(parse(h, hl - 216 + 100, &r), FERRY_AGAIN);
	h[15] = 100; /* shorter than a UNIX address block */
	ck_assert_int_eq(parse(h, 116, &r), FERRY_ERR);
}
END_TEST

START_TEST(v2_malformed)
{
	uint8_t h[4096], d[3000];
	memset(d, 0, sizeof(d));
	struct proxyproto_result r;
	size_t hl;
	/* version 1 in the binary header, version 3 */
	hl = v2_build(h, 0x11, 0x11, d, 12);
	ck_assert_int_eq(parse(h, hl, &r), FERRY_ERR);
	hl = v2_build(h, 0x31, 0x11, d, 12);
	ck_assert_int_eq(parse(h, hl, &r), FERRY_ERR);
	/* command 2 */
	hl = v2_build(h, 0x22, 0x11, d, 12);
	ck_assert_int_eq(parse(h, hl, &r), FERRY_ERR);
	/* family 4, protocol 3 */
	hl = v2_build(h, 0x21, 0x41, d, 12);
	ck_assert_int_eq(parse(h, hl, &r), FERRY_ERR);
	hl = v2_build(h, 0x21, 0x13, d, 12);
	ck_assert_int_eq(parse(h, hl, &r), FERRY_ERR);
	/* UDP over IPv4 */
	hl = v2_build(h, 0x21, 0x12, d, 12);
	ck_assert_int_eq(parse(h, hl, &r), FERRY_ERR);
	/* an IPv4 block shorter than 12, an IPv6 one shorter than 36 */
	hl = v2_build(h, 0x21, 0x11, d, 11);
	ck_assert_int_eq(parse(h, hl, &r), FERRY_ERR);
	hl = v2_build(h, 0x21, 0x21, d, 35);
	ck_assert_int_eq(parse(h, hl, &r), FERRY_ERR);
	/* TLV fragments: 1 and 2 bytes of a TLV head, a TLV longer than what is left */
	hl = v2_build(h, 0x21, 0x11, d, 13);
	ck_assert_int_eq(parse(h, hl, &r), FERRY_ERR);
	ck_assert_ptr_nonnull(r.error);
	hl = v2_build(h, 0x21, 0x11, d, 14);
	ck_assert_int_eq(parse(h, hl, &r), FERRY_ERR);
	d[12] = 1, d[13] = 0, d[14] = 5;
	hl = v2_build(h, 0x21, 0x11, d, 12 + 3 + 4);
	ck_assert_int_eq(parse(h, hl, &r), FERRY_ERR);
	d[14] = 4;
	hl = v2_build(h, 0x21, 0x11, d, 12 + 3 + 4);
	ck_assert_int_eq(parse(h, hl, &r), (int)hl);
	ck_assert_uint_eq(r.ntlvs, 1);
	/* oversized: refused as soon as the length is known, not after buffering it */
	memset(d, 0, sizeof(d));
	hl = v2_build(h, 0x21, 0x11, d, PROXYPROTO_V2_MAX_DATA + 1);
	ck_assert_int_eq(parse(h, 16, &r), FERRY_ERR);
	ck_assert_int_eq(parse(h, hl, &r), FERRY_ERR);
	hl = v2_build(h, 0x21, 0x11, d, PROXYPROTO_V2_MAX_DATA);
	d[12] = 0xee, d[13] = (uint8_t)((PROXYPROTO_V2_MAX_DATA - 15) >> 8), d[14] = (uint8_t)(PROXYPROTO_V2_MAX_DATA - 15);
	hl = v2_build(h, 0x21, 0x11, d, PROXYPROTO_V2_MAX_DATA);
	ck_assert_int_eq(parse(h, hl, &r), (int)hl);
	ck_assert_int_eq(parse(h, hl - 1, &r), FERRY_AGAIN);
	h[14] = 0xff, h[15] = 0xff;
	ck_assert_int_eq(parse(h, 16, &r), FERRY_ERR);
}
END_TEST

START_TEST(bad_signatures)
{
	struct proxyproto_result r;
	uint8_t h[32];
	memcpy(h, sig, 12);
	/* every single-byte corruption of the signature is refused as soon as it is seen */
	for (int i = 0; i < 12; i++) {
		uint8_t b[16];
		memcpy(b, sig, 12);
		b[12] = 0x21, b[13] = 0x00, b[14] = 0, b[15] = 0;
		b[i] ^= 0x20;
		for (size_t n = (size_t)i + 1; n <= 16; n++)
			ck_assert_msg(parse(b, n, &r) == FERRY_ERR, "byte %d, %zu bytes", i, n);
	}
	ck_assert_int_eq(parse("PROXZ", 5, &r), FERRY_ERR);
	ck_assert_int_eq(parse("PROX", 4, &r), FERRY_AGAIN);
	ck_assert_int_eq(parse("\r\n\r\n\0", 5, &r), FERRY_AGAIN);
	ck_assert_int_eq(parse("\x16\x03\x01", 3, &r), FERRY_ERR); /* TLS */
	ck_assert_int_eq(parse("CONNECT a:443 HTTP/1.1\r\n\r\n", 26, &r), FERRY_ERR);
	ck_assert_int_eq(parse("", 0, &r), FERRY_AGAIN);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("proxyproto");
	TCase *tc = tcase_create("proxyproto");
	tcase_add_test(tc, v1_tcp4);
	tcase_add_test(tc, v1_tcp6);
	tcase_add_test(tc, v1_unknown);
	tcase_add_test(tc, v1_longest);
	tcase_add_test(tc, v1_malformed);
	tcase_add_test(tc, v2_tcp4_with_tlvs);
	tcase_add_test(tc, v2_tcp6);
	tcase_add_test(tc, v2_local_and_unspec);
	tcase_add_test(tc, v2_unix);
	tcase_add_test(tc, v2_malformed);
	tcase_add_test(tc, bad_signatures);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
