/* buf.h - I/O buffers borrowed from a per-worker pool while bytes are in flight.
 *
 * A buffer is (data, start, end, cap): bytes [start, end) are pending. Two sizes come from
 * free lists of the pool: BUF_CHUNK for heads and tunnels, BUF_BIG for relaying bodies (a
 * 64 KiB read, with room for the head before it, per system call instead of four). A buffer
 * grown to any other size (a large request head) is malloc'd and freed when returned. */
#ifndef FERRY_BUF_H
#define FERRY_BUF_H

#include <stddef.h>
#include <stdint.h>

#define BUF_CHUNK 16384
#define BUF_BIG (65536 + 4096)

struct buf {
	struct buf *next_free;
	uint32_t start, end, cap;
	char *data;
};

struct buf_pool {
	struct buf *free;             /* BUF_CHUNK buffers */
	size_t nfree, max_free;
	struct buf *free_big;         /* BUF_BIG buffers */
	size_t nfree_big;
	size_t out; /* buffers currently lent */
};

/* Keep at most max_free idle buffers of each size. */
void buf_pool_init(struct buf_pool *pool, size_t max_free);
void buf_pool_destroy(struct buf_pool *pool);
/* A BUF_CHUNK buffer, empty. NULL when out of memory. */
struct buf *buf_get(struct buf_pool *pool);
/* A BUF_BIG buffer, empty. NULL when out of memory. */
struct buf *buf_get_big(struct buf_pool *pool);
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
