/* loop.c - the loop core: per-fd handler table, dispatch of fired events, timers.
 *
 * The backend (loop_poll.c, loop_epoll.c) fills loop->fired and returns; only then are
 * callbacks run, so a callback may add, modify or delete any fd without disturbing the
 * backend's iteration. A fired fd whose entry was deleted earlier in the same round is
 * skipped; if a new fd took the same number meanwhile it may see one spurious event, which
 * non-blocking I/O absorbs. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loop.h"
#include "loop_internal.h"
#include "status.h"

struct loop_fd {
	int events; /* watched LOOP_READ|LOOP_WRITE; -1 when not registered */
	loop_io_fn *fn;
	void *arg;
	uint64_t fired_round; /* the last round whose poll reported it (loop_quiet_since) */
};

struct loop {
	const struct loop_backend_ops *ops;
	void *state;
	int maxfds;
	struct loop_fd *fds;       /* by fd */
	struct loop_fired *fired;  /* maxfds entries, filled by the backend */
	uint64_t now;
	uint64_t round;            /* loop_run_once calls so far */
	int nlists;
	struct timer_list lists[LOOP_MAX_TIMER_LISTS];
};

void loop_set_err(char *err, size_t errlen, const char *what, int errnum)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", what, strerror(errnum));
}

struct loop *loop_create(enum loop_backend backend, int maxfds, char *err, size_t errlen)
{
	struct loop *loop = NULL;

	if (maxfds <= 0) {
		loop_set_err(err, errlen, "loop_create: maxfds", EINVAL);
		return NULL;
	}
	loop = calloc(1, sizeof(*loop));
	if (!loop) {
		loop_set_err(err, errlen, "loop_create", ENOMEM);
		return NULL;
	}
	switch (backend) {
	case LOOP_BACKEND_POLL:
		loop->ops = &loop_poll_ops;
		break;
	case LOOP_BACKEND_AUTO:
	case LOOP_BACKEND_EPOLL:
#ifdef __linux__
		loop->ops = &loop_epoll_ops;
#else
		if (backend == LOOP_BACKEND_AUTO) {
			loop->ops = &loop_poll_ops;
			break;
		}
		loop_set_err(err, errlen, "epoll backend", ENOSYS);
		goto fail;
#endif
		break;
	default:
		loop_set_err(err, errlen, "loop_create: backend", EINVAL);
		goto fail;
	}
	loop->maxfds = maxfds;
	loop->fds = malloc((size_t)maxfds * sizeof(*loop->fds));
	loop->fired = malloc((size_t)maxfds * sizeof(*loop->fired));
	if (!loop->fds || !loop->fired) {
		loop_set_err(err, errlen, "loop_create", ENOMEM);
		goto fail;
	}
	for (int i = 0; i < maxfds; i++)
		loop->fds[i] = (struct loop_fd){ .events = -1 };
	loop->state = loop->ops->create(maxfds, err, errlen);
	if (!loop->state)
		goto fail;
	loop_update_time(loop);
	return loop;
fail:
	free(loop->fds);
	free(loop->fired);
	free(loop);
	return NULL;
}

void loop_destroy(struct loop *loop)
{
	if (!loop)
		return;
	/* Timers still armed point at our lists: detach them so a later timer_disarm by
	 * their owner is harmless instead of a write into freed memory. */
	for (int i = 0; i < loop->nlists; i++) {
		struct timer *head = &loop->lists[i].head;

		while (head->next != head)
			timer_disarm(head->next);
	}
	loop->ops->destroy(loop->state);
	free(loop->fds);
	free(loop->fired);
	free(loop);
}

const char *loop_backend_name(const struct loop *loop)
{
	return loop->ops->name;
}

static int loop_valid(const struct loop *loop, int fd, int events)
{
	if (fd < 0 || (events & ~(LOOP_READ | LOOP_WRITE))) {
		errno = EINVAL;
		return 0;
	}
	if (fd >= loop->maxfds) {
		errno = ERANGE;
		return 0;
	}
	return 1;
}

int loop_add(struct loop *loop, int fd, int events, loop_io_fn *fn, void *arg)
{
	if (!fn) {
		errno = EINVAL;
		return FERRY_ERR;
	}
	if (!loop_valid(loop, fd, events))
		return FERRY_ERR;
	if (loop->fds[fd].events >= 0) {
		errno = EEXIST;
		return FERRY_ERR;
	}
	if (loop->ops->add(loop->state, fd, events) != FERRY_OK)
		return FERRY_ERR;
	loop->fds[fd] = (struct loop_fd){ .events = events, .fn = fn, .arg = arg };
	return FERRY_OK;
}

int loop_mod(struct loop *loop, int fd, int events)
{
	int old;

	if (!loop_valid(loop, fd, events))
		return FERRY_ERR;
	old = loop->fds[fd].events;
	if (old < 0) {
		errno = ENOENT;
		return FERRY_ERR;
	}
	if (old == events)
		return FERRY_OK;
	if (loop->ops->mod(loop->state, fd, old, events) != FERRY_OK)
		return FERRY_ERR;
	loop->fds[fd].events = events;
	return FERRY_OK;
}

int loop_set_handler(struct loop *loop, int fd, loop_io_fn *fn, void *arg)
{
	if (fn == NULL || fd < 0 || fd >= loop->maxfds || loop->fds[fd].events < 0) {
		errno = fn == NULL ? EINVAL : ENOENT;
		return FERRY_ERR;
	}
	loop->fds[fd].fn = fn;
	loop->fds[fd].arg = arg;
	return FERRY_OK;
}

void loop_del(struct loop *loop, int fd)
{
	if (fd < 0 || fd >= loop->maxfds || loop->fds[fd].events < 0)
		return;
	loop->ops->del(loop->state, fd, loop->fds[fd].events);
	loop->fds[fd] = (struct loop_fd){ .events = -1 };
}

void loop_del_closing(struct loop *loop, int fd)
{
	if (fd < 0 || fd >= loop->maxfds || loop->fds[fd].events < 0)
		return;
	if (!loop->ops->forgets_on_close)
		loop->ops->del(loop->state, fd, loop->fds[fd].events);
	loop->fds[fd] = (struct loop_fd){ .events = -1 };
}

uint64_t loop_round(const struct loop *loop)
{
	return loop->round;
}

int loop_quiet_since(const struct loop *loop, int fd, uint64_t round)
{
	if (fd < 0 || fd >= loop->maxfds || loop->fds[fd].events < 0)
		return 0;
	return round < loop->round && loop->fds[fd].fired_round != loop->round;
}

int loop_events(const struct loop *loop, int fd)
{
	if (fd < 0 || fd >= loop->maxfds)
		return -1;
	return loop->fds[fd].events;
}

uint64_t loop_now(const struct loop *loop)
{
	return loop->now;
}

void loop_update_time(struct loop *loop)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	loop->now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- timers ---- */

static void timer_list_init(struct timer_list *list, uint64_t timeout_ms)
{
	memset(list, 0, sizeof(*list));
	list->head.prev = list->head.next = &list->head;
	list->timeout_ms = timeout_ms;
}

static void timer_append(struct timer_list *list, struct timer *t)
{
	t->prev = list->head.prev;
	t->next = &list->head;
	list->head.prev->next = t;
	list->head.prev = t;
	t->list = list;
}

struct timer_list *loop_timer_list(struct loop *loop, uint64_t timeout_ms)
{
	for (int i = 0; i < loop->nlists; i++)
		if (loop->lists[i].timeout_ms == timeout_ms)
			return &loop->lists[i];
	if (loop->nlists == LOOP_MAX_TIMER_LISTS)
		return NULL;
	timer_list_init(&loop->lists[loop->nlists], timeout_ms);
	return &loop->lists[loop->nlists++];
}

void timer_init(struct timer *t, timer_fn *fn)
{
	*t = (struct timer){ .fn = fn };
}

void timer_arm(struct loop *loop, struct timer *t, struct timer_list *list)
{
	timer_disarm(t);
	t->expires = loop->now + list->timeout_ms;
	timer_append(list, t);
}

void timer_disarm(struct timer *t)
{
	if (!t->list)
		return;
	t->prev->next = t->next;
	t->next->prev = t->prev;
	t->prev = t->next = NULL;
	t->list = NULL;
}

/* The earliest head among the lists, or NULL when no timer is armed. */
static struct timer *loop_next_timer(struct loop *loop)
{
	struct timer *best = NULL;

	for (int i = 0; i < loop->nlists; i++) {
		struct timer *head = &loop->lists[i].head;

		if (head->next != head && (!best || head->next->expires < best->expires))
			best = head->next;
	}
	return best;
}

static int loop_poll_timeout(struct loop *loop, int timeout_ms)
{
	struct timer *t = loop_next_timer(loop);
	uint64_t wait;

	if (!t)
		return timeout_ms < 0 ? -1 : timeout_ms;
	wait = t->expires > loop->now ? t->expires - loop->now : 0;
	if (timeout_ms >= 0 && (uint64_t)timeout_ms < wait)
		wait = (uint64_t)timeout_ms;
	return wait > INT_MAX ? INT_MAX : (int)wait;
}

/* Expired timers are first moved, in expiry order, to a private list and only then run.
 * A callback that re-arms with a 0 ms timeout therefore waits for the next round instead
 * of looping here forever, and one that disarms or re-arms another pending timer simply
 * unlinks it from the private list. */
static void loop_run_timers(struct loop *loop)
{
	struct timer_list due;
	struct timer *t;

	timer_list_init(&due, 0);
	while ((t = loop_next_timer(loop)) && t->expires <= loop->now) {
		timer_disarm(t);
		timer_append(&due, t);
	}
	while (due.head.next != &due.head) {
		t = due.head.next;
		timer_disarm(t);
		/* t may be re-armed or freed by its callback: not touched after this. */
		t->fn(loop, t);
	}
}

/* ---- one round ---- */

int loop_run_once(struct loop *loop, int timeout_ms)
{
	int n, dispatched = 0;

	loop_update_time(loop);
	n = loop->ops->poll(loop->state, loop->fired, loop->maxfds,
			    loop_poll_timeout(loop, timeout_ms));
	if (n < 0)
		return FERRY_ERR;
	loop_update_time(loop);
	/* stamped before any callback runs: one may ask about an fd whose turn comes later */
	loop->round++;
	for (int i = 0; i < n; i++)
		loop->fds[loop->fired[i].fd].fired_round = loop->round;
	for (int i = 0; i < n; i++) {
		int fd = loop->fired[i].fd, raw = loop->fired[i].events;
		struct loop_fd *e = &loop->fds[fd];
		int ev;

		/* Deleted, or paused, by an earlier callback of this round. */
		if (e->events <= 0)
			continue;
		ev = raw & e->events;
		/* A reader must see EOF or the error, so hang-up also means readable. */
		if (raw & LOOP_HUP)
			ev |= LOOP_HUP | (e->events & LOOP_READ);
		if (!ev)
			continue;
		e->fn(loop, fd, ev, e->arg);
		dispatched++;
	}
	loop_update_time(loop);
	loop_run_timers(loop);
	return dispatched;
}
