/* fuzz_proxyproto.c - libFuzzer harness for src/proxyproto.c.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I src \
 *         -o fuzz_proxyproto tests/fuzz/fuzz_proxyproto.c src/proxyproto.c
 *   ./fuzz_proxyproto -max_len=4096 tests/fuzz/corpus/proxyproto
 *
 * The input is copied into a buffer of exactly its size so ASan sees any read past the end.
 * Beyond crashes, the harness checks the promises of proxyproto.h: a complete header is never
 * longer than the input or the limits; an error comes with a one-line reason; the answer for
 * a prefix is consistent with the answer for the whole (a prefix of a valid header is
 * incomplete, a prefix of an invalid one is incomplete or invalid, never valid), and the
 * result does not depend on bytes after the header. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"
#include "status.h"

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                    \
			abort();                                                     \
		}                                                                    \
	} while (0)

static int run(const uint8_t *d, size_t n, struct proxyproto_result *r)
{
	uint8_t *b = malloc(n ? n : 1);
	if (b == NULL)
		abort();
	memcpy(b, d, n);
	int rc = proxyproto_parse(b, n, r);
	free(b);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxyproto_result r, p;
	int rc = run(data, size, &r);
	CHECK(rc == FERRY_AGAIN || rc == FERRY_ERR || rc > 0);
	if (rc == FERRY_ERR) {
		CHECK(r.error != NULL && strchr(r.error, '\n') == NULL);
	}
	if (rc > 0) {
		CHECK((size_t)rc <= size);
		CHECK(r.version == 1 || r.version == 2);
		if (r.version == 1)
			CHECK(rc <= PROXYPROTO_V1_MAX);
		else
			CHECK(rc <= 16 + PROXYPROTO_V2_MAX_DATA);
		if (!r.local)
			CHECK(r.src.ss_family == r.dst.ss_family &&
			      (r.src.ss_family == 2 /* AF_INET */ || r.src.ss_family == 10 /* AF_INET6 */));
		/* the header alone gives the same answer */
		struct proxyproto_result h;
		CHECK(run(data, (size_t)rc, &h) == rc);
		CHECK(h.local == r.local && h.version == r.version && h.ntlvs == r.ntlvs);
		CHECK(memcmp(&h.src, &r.src, sizeof(h.src)) == 0);
	}
	/* prefixes: a few cut points, and every one for short inputs */
	size_t step = size > 256 ? size / 16 : 1;
	for (size_t i = 0; i < size; i += step) {
		int pr = run(data, i, &p);
		if (rc > 0 && i < (size_t)rc)
			CHECK(pr == FERRY_AGAIN);
		else if (rc > 0)
			CHECK(pr == rc);
		else if (rc == FERRY_AGAIN)
			CHECK(pr == FERRY_AGAIN);
		else
			CHECK(pr == FERRY_AGAIN || pr == FERRY_ERR);
	}
	return 0;
}
