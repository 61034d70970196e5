/* loop.h - one event loop per worker thread: fd readiness and timers.
 *
 * Two backends implement the same few static functions (loop_poll.c, loop_epoll.c);
 * the core (loop.c) owns the per-fd handler table, the fired-event list and the timers.
 * A loop is used by exactly one thread; nothing here is locked (the poll backend's helper
 * threads, loop_pollshard.c, are its own business and never run callbacks). */
#ifndef FERRY_LOOP_H
#define FERRY_LOOP_H

#include <stddef.h>
#include <stdint.h>

#define LOOP_READ 1
#define LOOP_WRITE 2
#define LOOP_HUP 4 /* reported only: error or hang-up on the fd */

enum loop_backend { LOOP_BACKEND_AUTO = 0, LOOP_BACKEND_POLL, LOOP_BACKEND_EPOLL };

struct loop;

/* Called when fd is ready; events is a mask of LOOP_READ|LOOP_WRITE|LOOP_HUP.
 * The callback may add, modify or delete any fd, including its own. */
typedef void loop_io_fn(struct loop *loop, int fd, int events, void *arg);

/* A timer lives in one timer_list: every timer in a list has the same timeout, so appending
 * at the tail keeps the list ordered by expiry and (re)arming is O(1). */
struct timer;
typedef void timer_fn(struct loop *loop, struct timer *t);

struct timer {
	struct timer *prev, *next;
	struct timer_list *list; /* NULL when not armed */
	uint64_t expires;        /* loop_now() ms */
	timer_fn *fn;
};

struct timer_list {
	struct timer head; /* sentinel of a circular list */
	uint64_t timeout_ms;
};

/* Create a loop able to watch fds 0..maxfds-1. backend AUTO picks epoll where available.
 * On failure returns NULL and writes a reason into err. */
struct loop *loop_create(enum loop_backend backend, int maxfds, char *err, size_t errlen);
void loop_destroy(struct loop *loop);
/* The backend in use: "poll" or "epoll". */
const char *loop_backend_name(const struct loop *loop);

/* Watch fd for events (LOOP_READ|LOOP_WRITE, may be 0). FERRY_OK or FERRY_ERR (errno set). */
int loop_add(struct loop *loop, int fd, int events, loop_io_fn *fn, void *arg);
/* Change the watched events of a registered fd. */
int loop_mod(struct loop *loop, int fd, int events);
/* Give a registered fd another callback and argument, keeping its events: no system call.
 * (An idle upstream connection moves between the pool and a connection this way.) An event
 * already fired for fd in this round goes to the new callback. FERRY_ERR (ENOENT) when fd is
 * not registered. */
int loop_set_handler(struct loop *loop, int fd, loop_io_fn *fn, void *arg);
/* Stop watching fd (before closing it). Harmless for an fd that is not registered. */
void loop_del(struct loop *loop, int fd);
/* The same for an fd the caller closes right after and never duplicated (dup, fork): the
 * epoll backend then leaves the forgetting to close(2) and saves a system call. */
void loop_del_closing(struct loop *loop, int fd);
/* The events currently watched for fd, or -1 when it is not registered. */
int loop_events(const struct loop *loop, int fd);
/* Rounds: each loop_run_once is one, counted from 0. loop_quiet_since says whether fd (watched
 * for LOOP_READ) has been polled since round `round` ended, with nothing reported for it in
 * this round, so a callback that would have consumed its readiness never missed any: then
 * nothing was waiting on it when this round's poll ran. The sharded poll backend learns of
 * readiness from its helper threads a little late, so there this is a strong hint only. */
uint64_t loop_round(const struct loop *loop);
int loop_quiet_since(const struct loop *loop, int fd, uint64_t round);

/* Wait at most timeout_ms (-1: until an event or the nearest timer) for events, dispatch
 * them, then run expired timers. Returns the number of fd events dispatched, or FERRY_ERR. */
int loop_run_once(struct loop *loop, int timeout_ms);
/* Milliseconds on a monotonic clock, cached at the last wake-up. */
uint64_t loop_now(const struct loop *loop);
/* Refresh the cached clock. */
void loop_update_time(struct loop *loop);

/* Timer lists: a loop keeps up to LOOP_MAX_TIMER_LISTS of them. */
#define LOOP_MAX_TIMER_LISTS 16
struct timer_list *loop_timer_list(struct loop *loop, uint64_t timeout_ms);
void timer_init(struct timer *t, timer_fn *fn);
/* (Re)arm t to fire at now + list->timeout_ms; moves it to the tail of list. */
void timer_arm(struct loop *loop, struct timer *t, struct timer_list *list);
void timer_disarm(struct timer *t);
static inline int timer_armed(const struct timer *t) { return t->list != NULL; }

#endif
