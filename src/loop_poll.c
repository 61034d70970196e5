/* loop_poll.c - poll(2) backend: the portable reference.
 *
 * The fds live in shards of at most LOOP_POLLSHARD_FDS (loop_pollshard.[ch]): each a dense
 * pollfd array, plus slot[fd] = where the fd is, so add, modify and remove are O(1): remove
 * moves the last entry of the shard into the hole. A new fd goes into the first shard with
 * room, so up to LOOP_POLLSHARD_FDS fds everything is in shard 0 and a round is one plain
 * poll() by the worker, as if there were no shards.
 *
 * Beyond that, every shard, shard 0 included, has a helper thread that waits on it. A round
 * then blocks in poll() on wake_fd alone, which the helpers write when their shard has an
 * event, and polls only the fds the helpers saw fire: one ready fd among thousands of idle
 * ones costs its helper two passes over one shard (the wait, and the next wait), not a
 * poll of all fds, and the worker almost nothing. Every shard with events is served in the
 * round that notices them, so none starves another. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "loop_internal.h"
#include "loop_pollshard.h"
#include "status.h"

struct poll_state {
	struct loop_pollshard **shards; /* nshards made so far, of maxshards */
	int nshards, maxshards;
	int nfds;    /* registered, in all shards */
	int *slot;   /* by fd: shard * LOOP_POLLSHARD_FDS + index; -1 when not registered */
	int maxfds;
	int wake_fd; /* eventfd the helpers write; -1 until the first helper */
};

static void poll_destroy(void *state)
{
	struct poll_state *s = state;

	for (int k = 0; k < s->nshards; k++)
		loop_pollshard_destroy(s->shards[k]);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	free(s->shards);
	free(s->slot);
	free(s);
}

static void *poll_create(int maxfds, char *err, size_t errlen)
{
	struct poll_state *s = calloc(1, sizeof(*s));

	if (!s) {
		loop_set_err(err, errlen, "poll backend: allocation", ENOMEM);
		return NULL;
	}
	s->wake_fd = -1;
	s->maxfds = maxfds;
	s->maxshards = (maxfds + LOOP_POLLSHARD_FDS - 1) / LOOP_POLLSHARD_FDS;
	s->shards = calloc((size_t)s->maxshards, sizeof(*s->shards));
	s->slot = malloc((size_t)maxfds * sizeof(*s->slot));
	if (!s->shards || !s->slot || !(s->shards[0] = loop_pollshard_create(-1))) {
		loop_set_err(err, errlen, "poll backend: allocation", ENOMEM);
		poll_destroy(s);
		return NULL;
	}
	s->nshards = 1;
	for (int i = 0; i < maxfds; i++)
		s->slot[i] = -1;
	return s;
}

/* A shard with room for one more fd, made (with its helper) when all are full. */
static int poll_shard_with_room(struct poll_state *s)
{
	struct loop_pollshard *sh;

	for (int k = 0; k < s->nshards; k++)
		if (loop_pollshard_count(s->shards[k]) < LOOP_POLLSHARD_FDS)
			return k;
	/* Never more than maxshards: at most maxfds fds are registered. The second shard
	 * gives shard 0 its helper too, so that the worker waits on wake_fd alone. */
	if (s->wake_fd < 0) {
		s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (s->wake_fd < 0)
			return FERRY_ERR;
		if (loop_pollshard_help(s->shards[0], s->wake_fd) != FERRY_OK) {
			int e = errno;

			close(s->wake_fd);
			s->wake_fd = -1;
			errno = e;
			return FERRY_ERR;
		}
	}
	sh = loop_pollshard_create(s->wake_fd);
	if (!sh)
		return FERRY_ERR;
	s->shards[s->nshards] = sh;
	return s->nshards++;
}

/* After a burst of connections, give back the helpers it started: the last shard once it is
 * empty and the shards before it are no more than half a shard short of full, so a count
 * that hovers at a shard's edge does not start and stop a thread per connection; and the
 * helper of shard 0 when it is the only one left, which the worker then polls itself again.
 * A shard in the middle that empties keeps its place (the slots of the fds above it are
 * numbered by shard): its helper sleeps until the shards above it empty too. */
static void poll_retire(struct poll_state *s)
{
	while (s->nshards > 1 && loop_pollshard_count(s->shards[s->nshards - 1]) == 0 &&
	       s->nfds <= (s->nshards - 1) * LOOP_POLLSHARD_FDS - LOOP_POLLSHARD_FDS / 2) {
		loop_pollshard_destroy(s->shards[--s->nshards]);
		s->shards[s->nshards] = NULL;
	}
	if (s->nshards == 1 && s->wake_fd >= 0) {
		loop_pollshard_unhelp(s->shards[0]);
		close(s->wake_fd);
		s->wake_fd = -1;
	}
}

static int poll_add(void *state, int fd, int events)
{
	struct poll_state *s = state;
	int k = poll_shard_with_room(s);

	if (k < 0)
		return FERRY_ERR;
	s->slot[fd] = k * LOOP_POLLSHARD_FDS + loop_pollshard_add(s->shards[k], fd, events);
	s->nfds++;
	return FERRY_OK;
}

static int poll_mod(void *state, int fd, int old, int events)
{
	struct poll_state *s = state;
	int pos = s->slot[fd];

	loop_pollshard_mod(s->shards[pos / LOOP_POLLSHARD_FDS], pos % LOOP_POLLSHARD_FDS, old,
			   events);
	return FERRY_OK;
}

static void poll_del(void *state, int fd, int old)
{
	struct poll_state *s = state;
	int pos = s->slot[fd];
	int moved = loop_pollshard_del(s->shards[pos / LOOP_POLLSHARD_FDS],
				       pos % LOOP_POLLSHARD_FDS);

	if (moved >= 0)
		s->slot[moved] = pos;
	s->slot[fd] = -1;
	s->nfds--;
	poll_retire(s);
}

static uint64_t poll_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Take what the helpers reported since wake_fd was last drained; with all, poll every
 * shard whether reported or not. */
static int poll_collect(struct poll_state *s, struct loop_fired *fired, int max, int all)
{
	uint64_t v;
	int nfired = 0;

	/* Drained before the ready flags are read: a helper that reports after this also
	 * writes wake_fd after it, so the next round sees it. */
	(void)!read(s->wake_fd, &v, sizeof(v));
	for (int k = 0; k < s->nshards; k++) {
		int n = loop_pollshard_collect(s->shards[k], fired + nfired, max - nfired, all);

		if (n < 0)
			return FERRY_ERR;
		nfired += n;
	}
	return nfired;
}

static int poll_poll(void *state, struct loop_fired *fired, int max, int timeout_ms)
{
	struct poll_state *s = state;
	uint64_t deadline = 0;

	/* One shard: a plain poll() of it, no thread involved. */
	if (s->wake_fd < 0)
		return loop_pollshard_wait(s->shards[0], timeout_ms, fired, max);
	/* A timeout of 0 asks what is ready now, not what the helpers have noticed so far:
	 * every shard is polled, as a single poll() of all fds would. */
	if (timeout_ms == 0)
		return poll_collect(s, fired, max, 1);
	if (timeout_ms > 0)
		deadline = poll_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		struct pollfd wake = { .fd = s->wake_fd, .events = POLLIN };
		int n = poll(&wake, 1, timeout_ms);

		if (n < 0)
			return errno == EINTR ? 0 : FERRY_ERR;
		if (n == 0)
			return 0;
		n = poll_collect(s, fired, max, 0);
		if (n != 0)
			return n;
		/* Woken for an event the worker no longer watches (the helper polled an older
		 * snapshot): a wait is never cut short, so wait out the rest. */
		if (timeout_ms > 0) {
			uint64_t now = poll_now_ms();

			if (now >= deadline)
				return 0;
			timeout_ms = (int)(deadline - now);
		}
	}
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
