/* buf.c - the per-worker buffer pool.
 *
 * Every buffer is one allocation: the struct followed by its bytes (data == (char *)(b + 1)).
 * A standard buffer has cap == BUF_CHUNK and goes back to the free list; a grown one
 * (cap > BUF_CHUNK, only ever made by buf_grow) is freed when returned, so one large request
 * head does not pin a large block in the pool. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "status.h"

void buf_pool_init(struct buf_pool *pool, size_t max_free)
{
	*pool = (struct buf_pool){ .max_free = max_free };
}

void buf_pool_destroy(struct buf_pool *pool)
{
	struct buf *b;

	while ((b = pool->free)) {
		pool->free = b->next_free;
		free(b);
	}
	pool->nfree = 0;
}

static struct buf *buf_alloc(uint32_t cap)
{
	struct buf *b = malloc(sizeof(*b) + cap);

	if (!b)
		return NULL;
	*b = (struct buf){ .cap = cap, .data = (char *)(b + 1) };
	return b;
}

struct buf *buf_get(struct buf_pool *pool)
{
	struct buf *b = pool->free;

	if (b) {
		pool->free = b->next_free;
		pool->nfree--;
		b->next_free = NULL;
		b->start = b->end = 0;
	} else if (!(b = buf_alloc(BUF_CHUNK))) {
		return NULL;
	}
	pool->out++;
	return b;
}

void buf_put(struct buf_pool *pool, struct buf *b)
{
	if (!b)
		return;
	pool->out--;
	if (b->cap != BUF_CHUNK || pool->nfree >= pool->max_free) {
		free(b);
		return;
	}
	b->next_free = pool->free;
	pool->free = b;
	pool->nfree++;
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
