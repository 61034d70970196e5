/* pipes.c - the per-worker pool of pipes for splice(2). */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "pipes.h"

void pipe_pool_init(struct pipe_pool *p, size_t max_free)
{
	*p = (struct pipe_pool){ .max_free = max_free };
}

static void pipe_free(struct pipe_buf *b)
{
	close(b->rfd);
	close(b->wfd);
	free(b);
}

void pipe_pool_destroy(struct pipe_pool *p)
{
	struct pipe_buf *b;
	while ((b = p->free) != NULL) {
		p->free = b->next_free;
		pipe_free(b);
	}
	p->nfree = 0;
}

struct pipe_buf *pipe_get(struct pipe_pool *p)
{
	struct pipe_buf *b = p->free;
	if (b != NULL) {
		p->free = b->next_free;
		p->nfree--;
		return b;
	}
	if (p->failed > 0) {
		p->failed--; /* try again after a while, counted in requests for pipes */
		return NULL;
	}
	b = malloc(sizeof(*b));
	if (b == NULL)
		return NULL;
	int fds[2];
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
		free(b);
		p->failed = 1000;
		return NULL;
	}
	b->rfd = fds[0];
	b->wfd = fds[1];
	b->bytes = 0;
	/* a larger pipe moves more per splice call; keep the default when refused */
	int got = fcntl(b->wfd, F_SETPIPE_SZ, PIPE_SIZE);
	if (got < 0)
		got = fcntl(b->wfd, F_GETPIPE_SZ);
	b->cap = got > 0 ? (uint32_t)got : 65536;
	return b;
}

void pipe_put(struct pipe_pool *p, struct pipe_buf *b)
{
	if (b == NULL)
		return;
	if (b->bytes != 0 || p->nfree >= p->max_free) {
		pipe_free(b);
		return;
	}
	b->next_free = p->free;
	p->free = b;
	p->nfree++;
}
