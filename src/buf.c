/* buf.c - the per-worker buffer pool.
 *
 * Every buffer is one allocation: the struct followed by its bytes (data == (char *)(b + 1)).
 * A buffer of one of the two standard sizes (BUF_CHUNK, BUF_BIG) goes back to its free list;
 * any other (only ever made by buf_grow) is freed when returned, so one large request head
 * does not pin an odd-sized block in the pool. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "status.h"

void buf_pool_init(struct buf_pool *pool, size_t max_free)
{
	*pool = (struct buf_pool){ .max_free = max_free };
}

static void buf_free_list(struct buf **list, size_t *n)
{
	struct buf *b;

	while ((b = *list)) {
		*list = b->next_free;
		free(b);
	}
	*n = 0;
}

void buf_pool_destroy(struct buf_pool *pool)
{
	buf_free_list(&pool->free, &pool->nfree);
	buf_free_list(&pool->free_big, &pool->nfree_big);
}

static struct buf *buf_alloc(uint32_t cap)
{
	struct buf *b = malloc(sizeof(*b) + cap);

	if (!b)
		return NULL;
	*b = (struct buf){ .cap = cap, .data = (char *)(b + 1) };
	return b;
}

static struct buf *buf_take(struct buf_pool *pool, struct buf **list, size_t *n, uint32_t cap)
{
	struct buf *b = *list;

	if (b) {
		*list = b->next_free;
		(*n)--;
		b->next_free = NULL;
		b->start = b->end = 0;
	} else if (!(b = buf_alloc(cap))) {
		return NULL;
	}
	pool->out++;
	return b;
}

struct buf *buf_get(struct buf_pool *pool)
{
	return buf_take(pool, &pool->free, &pool->nfree, BUF_CHUNK);
}

struct buf *buf_get_big(struct buf_pool *pool)
{
	return buf_take(pool, &pool->free_big, &pool->nfree_big, BUF_BIG);
}

void buf_put(struct buf_pool *pool, struct buf *b)
{
	struct buf **list;
	size_t *n;

	if (!b)
		return;
	pool->out--;
	if (b->cap == BUF_CHUNK) {
		list = &pool->free;
		n = &pool->nfree;
	} else if (b->cap == BUF_BIG) {
		list = &pool->free_big;
		n = &pool->nfree_big;
	} else {
		free(b);
		return;
	}
	if (*n >= pool->max_free) {
		free(b);
		return;
	}
	b->next_free = *list;
	*list = b;
	(*n)++;
}

/* A buffer that already has cap bytes of capacity is left alone (not even compacted), so
 * pointers into it stay valid; the caller compacts when it wants the room. */
int buf_grow(struct buf_pool *pool, struct buf **b, uint32_t cap)
{
	struct buf *old = *b, *nb;

	if (cap <= old->cap)
		return FERRY_OK;
	nb = buf_alloc(cap);
	if (!nb)
		return FERRY_ERR;
	nb->end = buf_len(old);
	memcpy(nb->data, buf_pos(old), nb->end);
	pool->out++;
	buf_put(pool, old);
	*b = nb;
	return FERRY_OK;
}

void buf_compact(struct buf *b)
{
	uint32_t len = buf_len(b);

	if (!b->start)
		return;
	memmove(b->data, buf_pos(b), len);
	b->start = 0;
	b->end = len;
}
