/* test_buf.c - the buffer pool: reuse, the free-list bound, grow and compact. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "freelist.h"
#include "status.h"

START_TEST(test_get_put_reuse)
{
	struct buf_pool pool;
	struct buf *a, *b;

	buf_pool_init(&pool, 4);
	a = buf_get(&pool);
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_eq(a->cap, BUF_CHUNK);
	ck_assert_uint_eq(buf_len(a), 0);
	ck_assert_uint_eq(buf_room(a), BUF_CHUNK);
	ck_assert_uint_eq(pool.out, 1);
	/* Dirty it: a reused buffer must come back empty. */
	memset(a->data, 'x', 100);
	a->start = 10;
	a->end = 100;
	buf_put(&pool, a);
	ck_assert_uint_eq(pool.out, 0);
	ck_assert_uint_eq(pool.nfree, 1);
	b = buf_get(&pool);
	ck_assert_ptr_eq(b, a);
	ck_assert_uint_eq(pool.nfree, 0);
	ck_assert_uint_eq(b->start, 0);
	ck_assert_uint_eq(b->end, 0);
	ck_assert_uint_eq(b->cap, BUF_CHUNK);
	/* The whole chunk is writable (ASan checks the bound). */
	memset(b->data, 'y', BUF_CHUNK);
	buf_put(&pool, b);
	buf_put(&pool, NULL);
	ck_assert_uint_eq(pool.out, 0);
	buf_pool_destroy(&pool);
	ck_assert_uint_eq(pool.nfree, 0);
	ck_assert_ptr_null(pool.free);
}
END_TEST

START_TEST(test_max_free_bound)
{
	struct buf_pool pool;
	struct buf *bs[10], *again[3];

	buf_pool_init(&pool, 3);
	for (int i = 0; i < 10; i++) {
		bs[i] = buf_get(&pool);
		ck_assert_ptr_nonnull(bs[i]);
	}
	ck_assert_uint_eq(pool.out, 10);
	for (int i = 0; i < 10; i++) {
		buf_put(&pool, bs[i]);
		ck_assert_uint_eq(pool.nfree, i < 3 ? (size_t)i + 1 : 3);
	}
	ck_assert_uint_eq(pool.out, 0);
	/* The kept ones are the ones handed out next. */
	for (int i = 0; i < 3; i++) {
		struct buf *b = buf_get(&pool);
		int kept = 0;

		for (int j = 0; j < 3; j++)
			kept |= b == bs[j];
		ck_assert(kept);
		again[i] = b;
	}
	ck_assert_uint_eq(pool.nfree, 0);
	for (int i = 0; i < 3; i++)
		buf_put(&pool, again[i]);
	buf_pool_destroy(&pool);

	/* max_free 0: nothing kept. */
	buf_pool_init(&pool, 0);
	buf_put(&pool, buf_get(&pool));
	ck_assert_uint_eq(pool.nfree, 0);
	ck_assert_uint_eq(pool.out, 0);
	buf_pool_destroy(&pool);
}
END_TEST

START_TEST(test_grow_keeps_bytes)
{
	struct buf_pool pool;
	struct buf *b, *orig;
	uint32_t big = 65536;

	buf_pool_init(&pool, 4);
	b = orig = buf_get(&pool);
	for (uint32_t i = 0; i < BUF_CHUNK; i++)
		b->data[i] = (char)(i * 7);
	b->start = 100;
	b->end = BUF_CHUNK;

	/* Already large enough: untouched. */
	ck_assert_int_eq(buf_grow(&pool, &b, BUF_CHUNK), FERRY_OK);
	ck_assert_ptr_eq(b, orig);
	ck_assert_uint_eq(b->start, 100);

	ck_assert_int_eq(buf_grow(&pool, &b, big), FERRY_OK);
	ck_assert_uint_eq(b->cap, big);
	ck_assert_uint_eq(buf_len(b), BUF_CHUNK - 100);
	ck_assert_uint_eq(b->start, 0);
	for (uint32_t i = 0; i < buf_len(b); i++)
		ck_assert_int_eq(buf_pos(b)[i], (char)((i + 100) * 7));
	ck_assert_uint_eq(buf_room(b), big - (BUF_CHUNK - 100));
	/* The standard chunk went back to the pool; still one buffer lent. */
	ck_assert_uint_eq(pool.out, 1);
	ck_assert_uint_eq(pool.nfree, 1);
	memset(b->data + b->end, 'z', buf_room(b));
	b->end = b->cap;

	/* Grow again, past the first growth. */
	ck_assert_int_eq(buf_grow(&pool, &b, 2 * big), FERRY_OK);
	ck_assert_uint_eq(b->cap, 2 * big);
	ck_assert_uint_eq(buf_len(b), big);
	for (uint32_t i = 0; i < BUF_CHUNK - 100; i++)
		ck_assert_int_eq(buf_pos(b)[i], (char)((i + 100) * 7));
	for (uint32_t i = BUF_CHUNK - 100; i < buf_len(b); i++)
		ck_assert_int_eq(buf_pos(b)[i], 'z');
	ck_assert_uint_eq(pool.out, 1);
	ck_assert_uint_eq(pool.nfree, 1);

	/* A grown buffer is freed, not pooled (ASan would report a leak otherwise). */
	buf_put(&pool, b);
	ck_assert_uint_eq(pool.out, 0);
	ck_assert_uint_eq(pool.nfree, 1);
	b = buf_get(&pool);
	ck_assert_uint_eq(b->cap, BUF_CHUNK);
	buf_put(&pool, b);
	buf_pool_destroy(&pool);
}
END_TEST

START_TEST(test_compact)
{
	struct buf_pool pool;
	struct buf *b;

	buf_pool_init(&pool, 1);
	b = buf_get(&pool);
	memcpy(b->data, "0123456789", 10);
	b->start = 4;
	b->end = 10;
	ck_assert_uint_eq(buf_room(b), BUF_CHUNK - 10);
	buf_compact(b);
	ck_assert_uint_eq(b->start, 0);
	ck_assert_uint_eq(b->end, 6);
	ck_assert_mem_eq(buf_pos(b), "456789", 6);
	ck_assert_uint_eq(buf_room(b), BUF_CHUNK - 6);
	/* Nothing pending: compacting empties it completely. */
	b->start = b->end = 6;
	buf_compact(b);
	ck_assert_uint_eq(b->start, 0);
	ck_assert_uint_eq(b->end, 0);
	ck_assert_uint_eq(buf_room(b), BUF_CHUNK);
	/* Overlapping move (pending longer than the gap). */
	for (int i = 0; i < 1000; i++)
		b->data[i] = (char)i;
	b->start = 1;
	b->end = 1000;
	buf_compact(b);
	for (int i = 0; i < 999; i++)
		ck_assert_int_eq(b->data[i], (char)(i + 1));
	buf_put(&pool, b);
	buf_pool_destroy(&pool);
}
END_TEST

START_TEST(test_big_class)
{
	struct buf_pool pool;
	struct buf *small, *big, *big2, *odd;

	buf_pool_init(&pool, 2);
	big = buf_get_big(&pool);
	ck_assert_ptr_nonnull(big);
	ck_assert_uint_eq(big->cap, BUF_BIG);
	ck_assert_uint_eq(buf_room(big), BUF_BIG);
	memset(big->data, 'b', BUF_BIG); /* ASan checks the bound */
	big->start = 5;
	big->end = 9;
	small = buf_get(&pool);
	ck_assert_uint_eq(pool.out, 2);

	/* each size goes back to its own list and comes back empty from it */
	buf_put(&pool, big);
	buf_put(&pool, small);
	ck_assert_uint_eq(pool.nfree, 1);
	ck_assert_uint_eq(pool.nfree_big, 1);
	ck_assert_uint_eq(pool.out, 0);
	big2 = buf_get_big(&pool);
	ck_assert_ptr_eq(big2, big);
	ck_assert_uint_eq(big2->start, 0);
	ck_assert_uint_eq(big2->end, 0);
	ck_assert_uint_eq(pool.nfree_big, 0);
	ck_assert_ptr_eq(buf_get(&pool), small);

	/* a small buffer grown to exactly BUF_BIG joins the big list; other sizes are freed */
	ck_assert_int_eq(buf_grow(&pool, &small, BUF_BIG), FERRY_OK);
	ck_assert_uint_eq(small->cap, BUF_BIG);
	odd = buf_get(&pool);
	ck_assert_int_eq(buf_grow(&pool, &odd, BUF_BIG + 1), FERRY_OK);
	buf_put(&pool, small);
	buf_put(&pool, odd);
	buf_put(&pool, big2);
	ck_assert_uint_eq(pool.nfree_big, 2);
	ck_assert_uint_eq(pool.out, 0);

	/* the bound applies to each list */
	struct buf *bs[4];
	for (int i = 0; i < 4; i++)
		bs[i] = buf_get_big(&pool);
	for (int i = 0; i < 4; i++)
		buf_put(&pool, bs[i]);
	ck_assert_uint_eq(pool.nfree_big, 2);
	buf_pool_destroy(&pool);
	ck_assert_uint_eq(pool.nfree_big, 0);
	ck_assert_ptr_null(pool.free_big);
}
END_TEST

/* The free lists of connection structs and the like: what was put comes back (last in, first
 * out), never more than max are kept, max 0 keeps nothing, and destroy empties the list. */
START_TEST(test_freelist)
{
	struct freelist fl = { 0 };
	char *a = freelist_get(&fl, 100), *b = freelist_get(&fl, 100), *c = freelist_get(&fl, 100);

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_nonnull(c);
	memset(a, 1, 100); /* the whole size is usable (ASan checks) */
	freelist_put(&fl, a, 2);
	freelist_put(&fl, b, 2);
	freelist_put(&fl, c, 2); /* over the bound: freed */
	ck_assert_uint_eq(fl.n, 2);
	ck_assert_ptr_eq(freelist_get(&fl, 100), b);
	ck_assert_ptr_eq(freelist_get(&fl, 100), a);
	for (int i = 0; i < 100; i++) /* zeroed again, the list's link included */
		ck_assert_int_eq(a[i], 0);
	ck_assert_uint_eq(fl.n, 0);
	freelist_put(&fl, a, 0); /* a stopping worker keeps nothing */
	ck_assert_uint_eq(fl.n, 0);
	ck_assert_ptr_null(fl.head);
	freelist_put(&fl, NULL, 2);
	ck_assert_uint_eq(fl.n, 0);
	freelist_put(&fl, b, 2);
	freelist_destroy(&fl); /* LeakSanitizer would see b otherwise */
	ck_assert_uint_eq(fl.n, 0);
	ck_assert_ptr_null(fl.head);
}
END_TEST

static Suite *buf_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_get_put_reuse);
	tcase_add_test(tc, test_max_free_bound);
	tcase_add_test(tc, test_grow_keeps_bytes);
	tcase_add_test(tc, test_compact);
	tcase_add_test(tc, test_big_class);
	tcase_add_test(tc, test_freelist);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(buf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
