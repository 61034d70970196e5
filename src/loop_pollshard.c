/* loop_pollshard.c - one shard of the poll backend and its helper thread (loop_pollshard.h).
 *
 * The helper's round: under the lock, copy the shard into its private snapshot; poll the
 * snapshot and its control eventfd without a timeout; if fds of the shard fired, note their
 * indices ("hits"), set "ready", add 1 to the worker's wake eventfd and sleep until the
 * worker has collected (loop_pollshard_collect polls the fds now at those indices and clears
 * "ready"). Then take a fresh snapshot and start again: whatever became ready meanwhile, or
 * moved within the shard, is found by that next poll (level-triggered), so collecting only
 * the hits loses nothing.
 *
 * The worker writes the control eventfd ("pokes") when a change could make the snapshot the
 * helper is blocked on miss something or hold something too long:
 *   - an fd added, or watching more than before: the snapshot does not watch for it yet;
 *   - an fd removed: a blocked poll() holds a reference to every file it waits on, so a
 *     socket the worker closes would stay open (no FIN, no EOF for the peer) until the
 *     helper woke up for some other reason.
 * Watching less needs no poke: at worst the helper wakes once for an event the worker no
 * longer wants, and its next snapshot is current. At most one poke per snapshot. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_setname_np; the fuzz harnesses build without configure's flags */
#endif
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "loop_pollshard.h"
#include "status.h"

/* The helper only calls poll() and waits on a condition variable. */
#define POLLSHARD_STACK (64u << 10)

struct loop_pollshard {
	struct pollfd *pfds; /* LOOP_POLLSHARD_FDS */
	int n;
	int helped; /* has a helper: the fields below are used, and pfds and n change only
		     * under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled when ready is cleared or stop is set */
	pthread_t thread;
	int ctl_fd;          /* eventfd: the worker pokes the helper through it */
	int wake_fd;         /* the worker's eventfd (not ours to close) */
	struct pollfd *snap; /* the helper's private copy of pfds, plus ctl_fd */
	int *hits;           /* indices of the snapshot's fds that fired, nhits of them */
	/* Under lock: */
	int armed; /* the helper polls a snapshot: a widening change needs a poke */
	int poked; /* ctl_fd was written since that snapshot was taken */
	int ready; /* the helper saw an event and waits for the worker to collect it */
	int nhits; /* hits while ready */
	int stop;
};

/* An fd watched for nothing is stored as ~fd: poll() skips negative fds entirely, so a
 * paused fd that hangs up cannot make every poll() return at once (POLLHUP is reported
 * even when events is 0). ~fd keeps the number recoverable for the swap in del. */
static int pollshard_fd(const struct pollfd *p) { return p->fd >= 0 ? p->fd : ~p->fd; }

static void pollshard_set(struct pollfd *p, int fd, int events)
{
	p->fd = events ? fd : ~fd;
	p->events = (short)((events & LOOP_READ ? POLLIN : 0) | (events & LOOP_WRITE ? POLLOUT : 0));
	p->revents = 0;
}

/* Append the fds of p[0..n-1] that fired to fired; ready is poll()'s count, so the scan
 * stops at the last one. */
static int pollshard_report(const struct pollfd *p, int n, int ready, struct loop_fired *fired,
			    int max)
{
	int nfired = 0;

	for (int i = 0; i < n && ready > 0 && nfired < max; i++) {
		short re = p[i].revents;
		int ev = 0;

		if (!re)
			continue;
		ready--;
		if (re & POLLIN)
			ev |= LOOP_READ;
		if (re & POLLOUT)
			ev |= LOOP_WRITE;
		if (re & (POLLERR | POLLHUP | POLLNVAL))
			ev |= LOOP_HUP;
		fired[nfired].fd = p[i].fd;
		fired[nfired++].events = ev;
	}
	return nfired;
}

static void pollshard_lock(struct loop_pollshard *sh)
{
	if (sh->helped)
		pthread_mutex_lock(&sh->lock);
}

static void pollshard_unlock(struct loop_pollshard *sh)
{
	if (sh->helped)
		pthread_mutex_unlock(&sh->lock);
}

/* Under lock: make the helper take a fresh snapshot if the one it polls may be stale. */
static void pollshard_poke(struct loop_pollshard *sh)
{
	uint64_t one = 1;

	if (!sh->helped || !sh->armed || sh->poked)
		return;
	sh->poked = 1;
	/* Fails only when the counter would overflow, and then the helper is awake anyway. */
	(void)!write(sh->ctl_fd, &one, sizeof(one));
}

static void *pollshard_main(void *arg)
{
	struct loop_pollshard *sh = arg;
	uint64_t v;

	pthread_mutex_lock(&sh->lock);
	while (!sh->stop) {
		int n = sh->n, rc, seen;

		memcpy(sh->snap, sh->pfds, (size_t)n * sizeof(*sh->snap));
		sh->snap[n] = (struct pollfd){ .fd = sh->ctl_fd, .events = POLLIN };
		sh->armed = 1;
		pthread_mutex_unlock(&sh->lock);

		rc = poll(sh->snap, (nfds_t)n + 1, -1);
		seen = 0;
		for (int i = 0; i < n && rc > 0; i++)
			if (sh->snap[i].revents)
				sh->hits[seen++] = i;
		if (rc > 0 && sh->snap[n].revents)
			(void)!read(sh->ctl_fd, &v, sizeof(v));
		if (rc < 0 && errno != EINTR) {
			/* ENOMEM: the kernel could not allocate its wait tables. Try again
			 * shortly rather than spin; the shard's events wait meanwhile. */
			struct timespec ts = { 0, 10 * 1000000 };

			nanosleep(&ts, NULL);
		}

		pthread_mutex_lock(&sh->lock);
		sh->armed = sh->poked = 0;
		if (seen > 0 && !sh->stop) {
			sh->ready = 1;
			sh->nhits = seen;
			v = 1;
			(void)!write(sh->wake_fd, &v, sizeof(v));
			while (sh->ready && !sh->stop)
				pthread_cond_wait(&sh->cond, &sh->lock);
		}
	}
	pthread_mutex_unlock(&sh->lock);
	return NULL;
}

/* Start the helper: signals blocked (the process takes them in one place) and a small
 * stack. Returns 0 or an error number. */
static int pollshard_start(struct loop_pollshard *sh)
{
	pthread_attr_t attr;
	sigset_t all, old;
	size_t stack = POLLSHARD_STACK;
	int rc;

	if (stack < (size_t)PTHREAD_STACK_MIN)
		stack = (size_t)PTHREAD_STACK_MIN;
	rc = pthread_attr_init(&attr);
	if (rc)
		return rc;
	pthread_attr_setstacksize(&attr, stack);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&sh->thread, &attr, pollshard_main, sh);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	/* Named, so that top -H and the tests can tell helpers from workers. */
	if (rc == 0)
		pthread_setname_np(sh->thread, POLLSHARD_THREAD_NAME);
	return rc;
}

struct loop_pollshard *loop_pollshard_create(int wake_fd)
{
	struct loop_pollshard *sh = calloc(1, sizeof(*sh));
	int rc;

	if (!sh)
		return NULL;
	sh->ctl_fd = -1;
	sh->pfds = calloc(LOOP_POLLSHARD_FDS, sizeof(*sh->pfds));
	if (sh->pfds && (wake_fd < 0 || loop_pollshard_help(sh, wake_fd) == FERRY_OK))
		return sh;
	rc = errno;
	free(sh->pfds);
	free(sh);
	errno = rc;
	return NULL;
}

int loop_pollshard_help(struct loop_pollshard *sh, int wake_fd)
{
	int rc;

	sh->wake_fd = wake_fd;
	sh->snap = calloc(LOOP_POLLSHARD_FDS + 1, sizeof(*sh->snap));
	sh->hits = calloc(LOOP_POLLSHARD_FDS, sizeof(*sh->hits));
	if (!sh->snap || !sh->hits)
		goto fail;
	sh->ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (sh->ctl_fd < 0)
		goto fail;
	if ((rc = pthread_mutex_init(&sh->lock, NULL)) != 0) {
		errno = rc;
		goto fail;
	}
	if ((rc = pthread_cond_init(&sh->cond, NULL)) != 0) {
		pthread_mutex_destroy(&sh->lock);
		errno = rc;
		goto fail;
	}
	/* Set before the thread exists: from now on every change is made under lock. */
	sh->helped = 1;
	if ((rc = pollshard_start(sh)) != 0) {
		sh->helped = 0;
		pthread_cond_destroy(&sh->cond);
		pthread_mutex_destroy(&sh->lock);
		errno = rc;
		goto fail;
	}
	return FERRY_OK;
fail:
	rc = errno;
	if (sh->ctl_fd >= 0)
		close(sh->ctl_fd);
	sh->ctl_fd = -1;
	free(sh->snap);
	free(sh->hits);
	sh->snap = NULL;
	sh->hits = NULL;
	errno = rc;
	return FERRY_ERR;
}

void loop_pollshard_unhelp(struct loop_pollshard *sh)
{
	uint64_t one = 1;

	if (!sh->helped)
		return;
	pthread_mutex_lock(&sh->lock);
	sh->stop = 1;
	pthread_cond_signal(&sh->cond);
	(void)!write(sh->ctl_fd, &one, sizeof(one));
	pthread_mutex_unlock(&sh->lock);
	pthread_join(sh->thread, NULL);
	pthread_cond_destroy(&sh->cond);
	pthread_mutex_destroy(&sh->lock);
	close(sh->ctl_fd);
	sh->ctl_fd = -1;
	free(sh->snap);
	free(sh->hits);
	sh->snap = NULL;
	sh->hits = NULL;
	/* a report the worker had not collected is not lost: its next poll() of the shard is
	 * level-triggered */
	sh->helped = sh->armed = sh->poked = sh->ready = sh->nhits = sh->stop = 0;
}

void loop_pollshard_destroy(struct loop_pollshard *sh)
{
	if (!sh)
		return;
	loop_pollshard_unhelp(sh);
	free(sh->pfds);
	free(sh);
}

int loop_pollshard_count(const struct loop_pollshard *sh)
{
	/* Only the worker writes n, so its own read needs no lock. */
	return sh->n;
}

int loop_pollshard_add(struct loop_pollshard *sh, int fd, int events)
{
	int i;

	pollshard_lock(sh);
	i = sh->n++;
	pollshard_set(&sh->pfds[i], fd, events);
	if (events)
		pollshard_poke(sh);
	pollshard_unlock(sh);
	return i;
}

void loop_pollshard_mod(struct loop_pollshard *sh, int i, int old, int events)
{
	pollshard_lock(sh);
	pollshard_set(&sh->pfds[i], pollshard_fd(&sh->pfds[i]), events);
	if (events & ~old)
		pollshard_poke(sh);
	pollshard_unlock(sh);
}

int loop_pollshard_del(struct loop_pollshard *sh, int i)
{
	int last, moved = -1;

	pollshard_lock(sh);
	last = --sh->n;
	if (i != last) {
		sh->pfds[i] = sh->pfds[last];
		moved = pollshard_fd(&sh->pfds[i]);
	}
	pollshard_poke(sh);
	pollshard_unlock(sh);
	return moved;
}

int loop_pollshard_wait(struct loop_pollshard *sh, int timeout_ms, struct loop_fired *fired,
			int max)
{
	int rc = poll(sh->pfds, (nfds_t)sh->n, timeout_ms);

	if (rc < 0)
		return errno == EINTR ? 0 : FERRY_ERR;
	return pollshard_report(sh->pfds, sh->n, rc, fired, max);
}

int loop_pollshard_collect(struct loop_pollshard *sh, struct loop_fired *fired, int max,
			   int all)
{
	struct pollfd sub[LOOP_POLLSHARD_FDS];
	int rc = 0, nfired = 0, err = 0;

	pthread_mutex_lock(&sh->lock);
	if (all) {
		rc = poll(sh->pfds, (nfds_t)sh->n, 0);
		if (rc > 0)
			nfired = pollshard_report(sh->pfds, sh->n, rc, fired, max);
	} else if (sh->ready) {
		/* Only the fds the helper saw fire, as they are registered now: one deleted,
		 * moved, closed or reused since its snapshot is seen as it is now, and one that
		 * became ready meanwhile is found by the helper's next, current snapshot. */
		int m = 0;

		for (int k = 0; k < sh->nhits; k++)
			if (sh->hits[k] < sh->n)
				sub[m++] = sh->pfds[sh->hits[k]];
		rc = poll(sub, (nfds_t)m, 0);
		if (rc > 0)
			nfired = pollshard_report(sub, m, rc, fired, max);
	}
	if (rc < 0 && errno != EINTR)
		err = errno;
	if (sh->ready) {
		sh->ready = 0;
		pthread_cond_signal(&sh->cond);
	}
	pthread_mutex_unlock(&sh->lock);
	if (err) {
		errno = err;
		return FERRY_ERR;
	}
	return nfired;
}
