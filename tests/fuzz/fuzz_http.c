/* fuzz_http.c - libFuzzer harness for src/http_parse.c.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I src \
 *         -o fuzz_http tests/fuzz/fuzz_http.c src/http_parse.c
 *   ./fuzz_http -max_len=2048 tests/fuzz/corpus/http
 *
 * The first input byte picks the function (low two bits: request head, response head,
 * request target, chunked decoder) and its flags and limits; the rest is the input, copied
 * into a buffer of exactly its size so ASan sees any read past the end. Beyond crashes, the
 * harness checks the promises of http_parse.h: slices stay inside the buffer, error statuses
 * are the documented ones, and a head or a chunked body gives the same result whether it
 * arrives at once or in pieces. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"
#include "status.h"

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                    \
			abort();                                                     \
		}                                                                    \
	} while (0)

#define MAXF 64

static int inside(struct http_slice s, const char *b, size_t n)
{
	return s.len == 0 || (s.p >= b && s.len <= n && s.p - b <= (ptrdiff_t)(n - s.len));
}

static char *copy(const uint8_t *d, size_t n)
{
	char *b = malloc(n ? n : 1);

	CHECK(b != NULL);
	memcpy(b, d, n);
	return b;
}

static int parse_head(int response, int flags, const char *b, size_t n, size_t *scanned,
		      const struct http_limits *lim, struct http_head *h, struct http_field *f)
{
	h->fields = f;
	if (response)
		return http_parse_response(b, n, scanned, lim, flags & 1, flags & 2, h);
	return http_parse_request(b, n, scanned, lim, h);
}

static void check_head(int response, int rc, const struct http_head *h, const char *b, size_t n,
		       const struct http_limits *lim)
{
	unsigned i;

	CHECK(rc == FERRY_OK || rc == FERRY_ERR || rc == FERRY_AGAIN);
	if (rc == FERRY_ERR) {
		CHECK(h->error != NULL);
		if (response)
			CHECK(h->error_status == 502);
		else
			CHECK(h->error_status == 400 || h->error_status == 414 ||
			      h->error_status == 431 || h->error_status == 501 ||
			      h->error_status == 505);
		return;
	}
	if (rc != FERRY_OK)
		return;
	CHECK(h->head_len >= 4 && h->head_len <= n && h->head_len <= lim->head_size);
	CHECK(memcmp(b + h->head_len - 4, "\r\n\r\n", 4) == 0);
	CHECK(h->version == 10 || h->version == 11);
	CHECK(h->nfields <= lim->max_fields);
	CHECK(h->body >= HTTP_BODY_NONE && h->body <= HTTP_BODY_CLOSE);
	CHECK(h->body != HTTP_BODY_LENGTH || h->content_length > 0);
	CHECK(!((h->flags & HTTP_F_HAS_CL) && (h->flags & HTTP_F_HAS_TE)));
	CHECK(inside(h->method, b, h->head_len) && inside(h->target, b, h->head_len));
	CHECK(inside(h->reason, b, h->head_len));
	if (response) {
		CHECK(h->status >= 100 && h->status <= 999);
	} else {
		CHECK(h->method.len > 0 && h->target.len > 0);
		CHECK(h->body != HTTP_BODY_CLOSE);
	}
	for (i = 0; i < h->nfields; i++) {
		const struct http_field *f = &h->fields[i];

		CHECK(f->name.len > 0);
		CHECK(inside(f->name, b, h->head_len) && inside(f->value, b, h->head_len));
		CHECK(f->value.len == 0 ||
		      (f->value.p[0] != ' ' && f->value.p[0] != '\t' &&
		       f->value.p[f->value.len - 1] != ' ' && f->value.p[f->value.len - 1] != '\t'));
		CHECK(memchr(f->value.p, '\r', f->value.len) == NULL);
		CHECK(memchr(f->value.p, '\n', f->value.len) == NULL);
	}
}

#define OFF(s, b) ((s).len ? (s).p - (b) : 0)

static void fuzz_head(int response, unsigned sel, const uint8_t *d, size_t n)
{
	struct http_limits lim = { sel & 0x10 ? 24 : 1024, sel & 0x20 ? 200 : 8192,
				   sel & 0x40 ? 3 : MAXF };
	struct http_field f1[MAXF], f2[MAXF];
	struct http_head one, by;
	size_t scanned = 0, k, step;
	char *b = copy(d, n), *bk = NULL;
	int rc1, rc2 = FERRY_AGAIN;
	unsigned i;

	rc1 = parse_head(response, (int)(sel >> 2), b, n, &scanned, &lim, &one, f1);
	check_head(response, rc1, &one, b, n, &lim);

	/* Again in growing prefixes, each in an exact-size buffer: byte by byte for small
	 * inputs, larger steps otherwise to keep the copying cheap. */
	step = n <= 512 ? 1 : n / 64;
	scanned = 0;
	for (k = 0;; k = k + step > n ? n : k + step) {
		size_t before = scanned;

		free(bk);
		bk = copy(d, k);
		rc2 = parse_head(response, (int)(sel >> 2), bk, k, &scanned, &lim, &by, f2);
		check_head(response, rc2, &by, bk, k, &lim);
		if (rc2 != FERRY_AGAIN || k == n)
			break;
		CHECK(scanned >= before && scanned <= k);
	}
	CHECK(rc1 == rc2);
	if (rc1 == FERRY_ERR)
		CHECK(one.error_status == by.error_status);
	if (rc1 == FERRY_OK) {
		CHECK(one.head_len == by.head_len && one.nfields == by.nfields);
		CHECK(one.body == by.body && one.flags == by.flags);
		CHECK(one.content_length == by.content_length && one.status == by.status);
		CHECK(OFF(one.target, b) == OFF(by.target, bk));
		for (i = 0; i < one.nfields; i++) {
			CHECK(OFF(f1[i].name, b) == OFF(f2[i].name, bk));
			CHECK(OFF(f1[i].value, b) == OFF(f2[i].value, bk));
			CHECK(f1[i].value.len == f2[i].value.len);
		}
	}
	free(bk);
	free(b);
}

static void fuzz_target(unsigned sel, const uint8_t *d, size_t n)
{
	struct http_target t;
	char *b = copy(d, n);
	int connect = (sel >> 2) & 1;
	int rc = http_parse_target(b, n, connect, &t);

	CHECK(rc == FERRY_OK || rc == FERRY_ERR);
	if (rc == FERRY_ERR) {
		CHECK(t.error != NULL);
		CHECK(t.error_status == 400 || t.error_status == 501);
	} else {
		CHECK(t.host.len > 0 && inside(t.host, b, n));
		CHECK(t.port > 0);
		CHECK(t.form == (connect ? HTTP_TARGET_AUTHORITY : HTTP_TARGET_ABSOLUTE));
		if (connect) {
			CHECK(t.port_given);
		} else {
			CHECK(t.path.len > 0 && t.path.p[0] == (t.path_slash ? '?' : '/'));
			CHECK(t.path.len == 1 || inside(t.path, b, n));
		}
	}
	free(b);
}

/* Decodes d in pieces of step bytes (0: at once); returns the status, appends data. */
static int dechunk(const uint8_t *d, size_t n, size_t step, char *out, size_t *out_len,
		   size_t *used)
{
	struct http_chunked c;
	size_t have = 0, pos = 0;
	int rc;

	http_chunked_init(&c);
	*out_len = 0;
	for (;;) {
		size_t base = pos, consumed, off, dlen;
		char *b;

		have = step == 0 || have + step > n ? n : have + step;
		b = copy(d + base, have - base);
		do {
			const char *at = b + (pos - base);

			rc = http_chunked_parse(&c, at, have - pos, &consumed, &off, &dlen);
			CHECK(rc == FERRY_OK || rc == FERRY_ERR || rc == FERRY_AGAIN);
			CHECK(consumed <= have - pos);
			CHECK(dlen == 0 || off + dlen <= consumed);
			CHECK(*out_len + dlen <= n);
			memcpy(out + *out_len, at + off, dlen);
			*out_len += dlen;
			pos += consumed;
		} while (rc == FERRY_AGAIN && consumed > 0);
		free(b);
		if (rc != FERRY_AGAIN || have == n)
			break;
	}
	CHECK(http_chunked_done(&c) == (rc == FERRY_OK));
	CHECK(rc != FERRY_ERR || c.error != NULL);
	*used = pos;
	return rc;
}

static void fuzz_chunked(unsigned sel, const uint8_t *d, size_t n)
{
	char *o1 = malloc(n + 1), *o2 = malloc(n + 1);
	size_t l1, l2, u1, u2;
	size_t step = n <= 1024 ? 1 : 1 + (sel >> 2);
	int rc1, rc2;

	CHECK(o1 && o2);
	rc1 = dechunk(d, n, 0, o1, &l1, &u1);
	rc2 = dechunk(d, n, step, o2, &l2, &u2);
	CHECK(rc1 == rc2 && l1 == l2 && memcmp(o1, o2, l1) == 0);
	CHECK(rc1 == FERRY_ERR || u1 == u2);
	free(o1);
	free(o2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned sel;

	if (size < 1)
		return 0;
	sel = data[0];
	switch (sel & 3) {
	case 0:
		fuzz_head(0, sel, data + 1, size - 1);
		break;
	case 1:
		fuzz_head(1, sel, data + 1, size - 1);
		break;
	case 2:
		fuzz_target(sel, data + 1, size - 1);
		break;
	default:
		fuzz_chunked(sel, data + 1, size - 1);
		break;
	}
	return 0;
}
