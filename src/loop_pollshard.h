/* loop_pollshard.h - one shard of the poll backend: a dense pollfd array of at most
 * LOOP_POLLSHARD_FDS fds, and, once the backend has more than one shard, a helper thread
 * that waits on it. Seen only by loop_poll.c (and test_loop.c, for the size).
 *
 * poll(2) costs time in proportion to the fds it is given, ready or not: 18,000 idle sockets
 * cost milliseconds per call, so a loop round among thousands of idle connections did too.
 * The poll backend therefore splits its interest set into shards. While there is one, the
 * worker polls it itself. Beyond that each shard has a helper thread that blocks in poll()
 * on a private copy of the shard and, when something in it is ready, wakes the worker,
 * which then polls just the fds the helper saw fire. Finding one ready fd costs a helper
 * O(shard) and the worker O(1), not O(all fds). (The JDK's WindowsSelectorImpl does the
 * same, one helper thread per 1,024 channels.)
 *
 * Only the worker changes a shard. A helper reads it under the shard's lock, and the events
 * the worker reports come from its own poll() of the current array, never from the helper's
 * copy: a stale copy can only cause a spurious check or a one-round delay, never a wrong or
 * a lost event. */
#ifndef FERRY_LOOP_POLLSHARD_H
#define FERRY_LOOP_POLLSHARD_H

#include "loop_internal.h"

/* fds per shard: the cost of one poll() of a shard against the number of helper threads
 * (doc/performance.md has the measurement). A compile-time constant, -D may change it. */
#ifndef LOOP_POLLSHARD_FDS
#define LOOP_POLLSHARD_FDS 512
#endif

/* The helper threads' name (/proc/self/task/TID/comm). */
#define POLLSHARD_THREAD_NAME "ferry-pollshard"

struct loop_pollshard;

/* A shard the caller polls itself with loop_pollshard_wait (wake_fd -1), or one watched by
 * a helper thread that adds 1 to the eventfd wake_fd when it sees an event. NULL with errno
 * set on failure. */
struct loop_pollshard *loop_pollshard_create(int wake_fd);
/* Give a shard made without a helper one, writing wake_fd (its fds stay). FERRY_OK, or
 * FERRY_ERR with errno set and the shard still without a helper. */
int loop_pollshard_help(struct loop_pollshard *sh, int wake_fd);
/* Stops and joins the helper, if any; the shard keeps its fds and is polled by the caller
 * again (loop_pollshard_wait). */
void loop_pollshard_unhelp(struct loop_pollshard *sh);
/* Stops and joins the helper, if any, and frees the shard. */
void loop_pollshard_destroy(struct loop_pollshard *sh);
/* How many fds the shard holds: they are at indices 0..count-1. */
int loop_pollshard_count(const struct loop_pollshard *sh);
/* Append fd (the shard holds fewer than LOOP_POLLSHARD_FDS) watching events
 * (LOOP_READ|LOOP_WRITE, may be 0); returns its index. */
int loop_pollshard_add(struct loop_pollshard *sh, int fd, int events);
/* The fd at index i watches events instead of old. */
void loop_pollshard_mod(struct loop_pollshard *sh, int i, int old, int events);
/* Forget the fd at index i; the last fd moves into its place: returns that fd, or -1 when
 * i was the last. */
int loop_pollshard_del(struct loop_pollshard *sh, int i);
/* A shard without a helper: wait up to timeout_ms for its fds, append at most max events
 * to fired. Returns the count (0 on timeout or EINTR) or FERRY_ERR with errno set. */
int loop_pollshard_wait(struct loop_pollshard *sh, int timeout_ms, struct loop_fired *fired,
			int max);
/* A shard with a helper: when the helper has reported readiness, poll the fds it saw fire,
 * as registered now, without waiting (with all: poll every fd of the shard, reported or
 * not); append at most max events to fired, and let the helper wait again. Returns the
 * count or FERRY_ERR with errno set. */
int loop_pollshard_collect(struct loop_pollshard *sh, struct loop_fired *fired, int max,
			   int all);

#endif
