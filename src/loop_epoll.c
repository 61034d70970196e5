/* loop_epoll.c - epoll(7) backend, level-triggered (Linux only).
 *
 * Level-triggered keeps the semantics identical to poll(): a callback that reads only part
 * of what is pending is called again next round. */
#ifdef __linux__

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop.h"
#include "loop_internal.h"
#include "status.h"

/* Level-triggered epoll puts what it reported back at the tail of its ready list, so a
 * bounded batch per wait cannot starve an fd; no need for an array as large as maxfds. */
#define EPOLL_BATCH 1024

struct epoll_state {
	int epfd;
	int nevents;
	struct epoll_event *events;
};

static uint32_t epoll_mask(int events)
{
	uint32_t ev = 0;

	if (events & LOOP_READ)
		ev |= EPOLLIN;
	if (events & LOOP_WRITE)
		ev |= EPOLLOUT;
	return ev;
}

static void *epoll_create_state(int maxfds, char *err, size_t errlen)
{
	struct epoll_state *s = calloc(1, sizeof(*s));

	if (!s) {
		loop_set_err(err, errlen, "epoll backend: allocation", ENOMEM);
		return NULL;
	}
	s->epfd = -1;
	s->nevents = maxfds < EPOLL_BATCH ? maxfds : EPOLL_BATCH;
	s->events = calloc((size_t)s->nevents, sizeof(*s->events));
	if (!s->events) {
		loop_set_err(err, errlen, "epoll backend: allocation", ENOMEM);
		goto fail;
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		loop_set_err(err, errlen, "epoll_create1", errno);
		goto fail;
	}
	return s;
fail:
	free(s->events);
	free(s);
	return NULL;
}

static void epoll_destroy(void *state)
{
	struct epoll_state *s = state;

	close(s->epfd);
	free(s->events);
	free(s);
}

static int epoll_ctl_fd(struct epoll_state *s, int op, int fd, int events)
{
	struct epoll_event ee = { .events = epoll_mask(events), .data.fd = fd };

	return epoll_ctl(s->epfd, op, fd, &ee) < 0 ? FERRY_ERR : FERRY_OK;
}

/* An fd watched for nothing is kept out of the epoll set: EPOLLHUP and EPOLLERR are
 * reported even with an empty mask, and level-triggered they would wake every wait. */
static int epoll_add(void *state, int fd, int events)
{
	return events ? epoll_ctl_fd(state, EPOLL_CTL_ADD, fd, events) : FERRY_OK;
}

static int epoll_mod(void *state, int fd, int old, int events)
{
	if (!old)
		return epoll_ctl_fd(state, EPOLL_CTL_ADD, fd, events);
	if (!events)
		return epoll_ctl_fd(state, EPOLL_CTL_DEL, fd, 0);
	return epoll_ctl_fd(state, EPOLL_CTL_MOD, fd, events);
}

static void epoll_del(void *state, int fd, int old)
{
	int saved = errno;

	/* Fails harmlessly when the fd was closed first: the kernel already dropped it. */
	if (old)
		epoll_ctl_fd(state, EPOLL_CTL_DEL, fd, 0);
	errno = saved;
}

static int epoll_poll(void *state, struct loop_fired *fired, int max, int timeout_ms)
{
	struct epoll_state *s = state;
	int n;

	n = epoll_wait(s->epfd, s->events, s->nevents < max ? s->nevents : max, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : FERRY_ERR;
	for (int i = 0; i < n; i++) {
		uint32_t re = s->events[i].events;
		int ev = 0;

		if (re & EPOLLIN)
			ev |= LOOP_READ;
		if (re & EPOLLOUT)
			ev |= LOOP_WRITE;
		if (re & (EPOLLERR | EPOLLHUP))
			ev |= LOOP_HUP;
		fired[i].fd = s->events[i].data.fd;
		fired[i].events = ev;
	}
	return n;
}

const struct loop_backend_ops loop_epoll_ops = {
	.name = "epoll",
	.create = epoll_create_state,
	.destroy = epoll_destroy,
	.add = epoll_add,
	.mod = epoll_mod,
	.del = epoll_del,
	.poll = epoll_poll,
	.forgets_on_close = 1,
};

#endif /* __linux__ */
