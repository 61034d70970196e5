/* buf.h - I/O buffers borrowed from a per-worker pool while bytes are in flight.
 *
 * A buffer is (data, start, end, cap): bytes [start, end) are pending. Standard buffers are
 * BUF_CHUNK bytes and come from the pool's free list; a buffer grown past that (a large
 * request head) is malloc'd and freed when returned. */
#ifndef FERRY_BUF_H
#define FERRY_BUF_H

#include <stddef.h>
#include <stdint.h>

#define BUF_CHUNK 16384

struct buf {
	struct buf *next_free;
	uint32_t start, end, cap;
	char *data;
};

struct buf_pool {
	struct buf *free;
	size_t nfree, max_free;
	size_t out; /* buffers currently lent */
};

void buf_pool_init(struct buf_pool *pool, size_t max_free);
void buf_pool_destroy(struct buf_pool *pool);
/* A BUF_CHUNK buffer, empty. NULL when out of memory. */
struct buf *buf_get(struct buf_pool *pool);
/* Give a buffer back; NULL is allowed. */
void buf_put(struct buf_pool *pool, struct buf *b);
/* Grow b (keeping its pending bytes) so that it can hold cap bytes; FERRY_OK/FERRY_ERR. */
int buf_grow(struct buf_pool *pool, struct buf **b, uint32_t cap);

static inline uint32_t buf_len(const struct buf *b) { return b->end - b->start; }
static inline uint32_t buf_room(const struct buf *b) { return b->cap - b->end; }
static inline char *buf_pos(const struct buf *b) { return b->data + b->start; }
/* Move pending bytes to the front so the room at the end is as large as it can be. */
void buf_compact(struct buf *b);

#endif
