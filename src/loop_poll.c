/* loop_poll.c - poll(2) backend: the portable reference.
 *
 * One struct pollfd array, densely packed, plus slot[fd] = index into it, so add, modify and
 * remove are O(1): remove moves the last entry into the hole. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "loop.h"
#include "loop_internal.h"
#include "status.h"

struct poll_state {
	struct pollfd *pfds;
	int *slot; /* by fd; -1 when not registered */
	int n;
	int maxfds;
};

/* An fd watched for nothing is stored as ~fd: poll() skips negative fds entirely, so a
 * paused fd that hangs up cannot make every poll() return at once (POLLHUP is reported
 * even when events is 0). ~fd keeps the number recoverable for the swap in poll_del. */
static int poll_slot_fd(const struct pollfd *p) { return p->fd >= 0 ? p->fd : ~p->fd; }

static short poll_mask(int events)
{
	short ev = 0;

	if (events & LOOP_READ)
		ev |= POLLIN;
	if (events & LOOP_WRITE)
		ev |= POLLOUT;
	return ev;
}

static void poll_set(struct pollfd *p, int fd, int events)
{
	p->fd = events ? fd : ~fd;
	p->events = poll_mask(events);
	p->revents = 0;
}

static void *poll_create(int maxfds, char *err, size_t errlen)
{
	struct poll_state *s = calloc(1, sizeof(*s));

	if (!s)
		goto fail;
	s->maxfds = maxfds;
	s->pfds = calloc((size_t)maxfds, sizeof(*s->pfds));
	s->slot = malloc((size_t)maxfds * sizeof(*s->slot));
	if (!s->pfds || !s->slot)
		goto fail;
	for (int i = 0; i < maxfds; i++)
		s->slot[i] = -1;
	return s;
fail:
	loop_set_err(err, errlen, "poll backend: allocation", ENOMEM);
	if (s) {
		free(s->pfds);
		free(s->slot);
		free(s);
	}
	return NULL;
}

static void poll_destroy(void *state)
{
	struct poll_state *s = state;

	free(s->pfds);
	free(s->slot);
	free(s);
}

static int poll_add(void *state, int fd, int events)
{
	struct poll_state *s = state;

	s->slot[fd] = s->n;
	poll_set(&s->pfds[s->n++], fd, events);
	return FERRY_OK;
}

static int poll_mod(void *state, int fd, int old, int events)
{
	struct poll_state *s = state;

	poll_set(&s->pfds[s->slot[fd]], fd, events);
	return FERRY_OK;
}

static void poll_del(void *state, int fd, int old)
{
	struct poll_state *s = state;
	int i = s->slot[fd], last = --s->n;

	if (i != last) {
		s->pfds[i] = s->pfds[last];
		s->slot[poll_slot_fd(&s->pfds[i])] = i;
	}
	s->slot[fd] = -1;
}

static int poll_poll(void *state, struct loop_fired *fired, int max, int timeout_ms)
{
	struct poll_state *s = state;
	int n, nfired = 0;

	n = poll(s->pfds, (nfds_t)s->n, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : FERRY_ERR;
	for (int i = 0; i < s->n && nfired < n && nfired < max; i++) {
		short re = s->pfds[i].revents;
		int ev = 0;

		if (!re)
			continue;
		if (re & POLLIN)
			ev |= LOOP_READ;
		if (re & POLLOUT)
			ev |= LOOP_WRITE;
		if (re & (POLLERR | POLLHUP | POLLNVAL))
			ev |= LOOP_HUP;
		fired[nfired].fd = s->pfds[i].fd;
		fired[nfired++].events = ev;
	}
	return nfired;
}

const struct loop_backend_ops loop_poll_ops = {
	.name = "poll",
	.create = poll_create,
	.destroy = poll_destroy,
	.add = poll_add,
	.mod = poll_mod,
	.del = poll_del,
	.poll = poll_poll,
};
