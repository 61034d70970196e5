/* pipes.h - pipes lent to tunnels for splice(2): bytes move socket -> pipe -> socket inside
 * the kernel, never copied to user space. Like buffers, a pipe is borrowed only while bytes
 * are in flight and goes back to the worker's pool when drained, so idle tunnels hold none. */
#ifndef FERRY_PIPES_H
#define FERRY_PIPES_H

#include <stddef.h>
#include <stdint.h>

#define PIPE_SIZE (256 * 1024) /* asked for; the kernel may give less (pipe-user-pages-soft) */

struct pipe_buf {
	struct pipe_buf *next_free;
	int rfd, wfd;
	uint32_t bytes; /* in the pipe now */
	uint32_t cap;   /* what the kernel granted */
};

struct pipe_pool {
	struct pipe_buf *free;
	size_t nfree, max_free;
	int failed; /* pipes could not be made (EMFILE...): tunnels use buffers for a while */
};

void pipe_pool_init(struct pipe_pool *p, size_t max_free);
void pipe_pool_destroy(struct pipe_pool *p);
/* An empty pipe, or NULL (then use the read/write path). */
struct pipe_buf *pipe_get(struct pipe_pool *p);
/* Give back a pipe; one still holding bytes (an aborted tunnel) is closed, not pooled. */
void pipe_put(struct pipe_pool *p, struct pipe_buf *b);

#endif
