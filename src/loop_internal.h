/* loop_internal.h - what a readiness backend gives the loop core. Seen only by loop.c,
 * loop_poll.c (with loop_pollshard.c) and loop_epoll.c.
 *
 * A backend only mirrors the interest set the core asks for and reports readiness; the core
 * owns the callbacks. poll() fills an array of fired events and returns; the core dispatches
 * them afterwards, so callbacks never run while a backend is iterating its own state. */
#ifndef FERRY_LOOP_INTERNAL_H
#define FERRY_LOOP_INTERNAL_H

#include <stddef.h>

struct loop_fired {
	int fd;
	int events; /* LOOP_READ|LOOP_WRITE|LOOP_HUP as seen by the kernel, before masking */
};

struct loop_backend_ops {
	const char *name;
	/* New backend state for fds 0..maxfds-1, or NULL with a reason in err. */
	void *(*create)(int maxfds, char *err, size_t errlen);
	void (*destroy)(void *state);
	/* fd is not yet registered; events may be 0. FERRY_OK or FERRY_ERR (errno set). */
	int (*add)(void *state, int fd, int events);
	/* fd is registered with old; watch events instead (old != events). */
	int (*mod)(void *state, int fd, int old, int events);
	/* fd is registered with old; forget it. Cannot fail: the fd may already be closed. */
	void (*del)(void *state, int fd, int old);
	/* Closing an fd is enough for the kernel to forget it (epoll, for fds that are never
	 * duplicated): loop_del_closing may skip del. */
	int forgets_on_close;
	/* Wait up to timeout_ms (-1: forever), write at most max entries to fired. Returns the
	 * count (0 on timeout or EINTR) or FERRY_ERR with errno set. */
	int (*poll)(void *state, struct loop_fired *fired, int max, int timeout_ms);
};

extern const struct loop_backend_ops loop_poll_ops;
#ifdef __linux__
extern const struct loop_backend_ops loop_epoll_ops;
#endif

/* Backend errors go into the caller's buffer, never to the log (err may be NULL). */
void loop_set_err(char *err, size_t errlen, const char *what, int errnum);

#endif
