/* test_loop.c - the event loop: fd readiness and timers, every test on every backend. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "loop_pollshard.h" /* LOOP_POLLSHARD_FDS: how many fds fill a shard */
#include "status.h"

static const enum loop_backend backends[] = {
	LOOP_BACKEND_POLL,
#ifdef __linux__
	LOOP_BACKEND_EPOLL,
#endif
};
static const char *const backend_names[] = { "poll", "epoll" };
#define NBACKENDS ((int)(sizeof(backends) / sizeof(backends[0])))

#define MAXFDS 4096
/* Hang guard for waits that should end at once: far longer than any scheduling delay. */
#define GUARD_MS 5000

static struct loop *new_loop(int i)
{
	char err[128] = "";
	struct loop *loop = loop_create(backends[i], MAXFDS, err, sizeof(err));

	ck_assert_msg(loop != NULL, "loop_create: %s", err);
	ck_assert_str_eq(loop_backend_name(loop), backend_names[i]);
	return loop;
}

static void make_pipe(int p[2])
{
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	ck_assert_int_lt(p[1], MAXFDS);
}

static void put_byte(int fd)
{
	ck_assert_int_eq(write(fd, "x", 1), 1);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- fd callbacks record what they saw, by fd ---- */

static int calls[MAXFDS];
static int seen[MAXFDS];
static int total_calls;

static void reset_rec(void)
{
	memset(calls, 0, sizeof(calls));
	memset(seen, 0, sizeof(seen));
	total_calls = 0;
}

static void rec_cb(struct loop *loop, int fd, int events, void *arg)
{
	calls[fd]++;
	seen[fd] |= events;
	total_calls++;
}

/* ---- readiness ---- */

START_TEST(test_pipe_readiness)
{
	struct loop *loop = new_loop(_i);
	int p[2];

	reset_rec();
	make_pipe(p);
	ck_assert_int_eq(loop_add(loop, p[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_add(loop, p[1], LOOP_WRITE, rec_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_events(loop, p[0]), LOOP_READ);
	ck_assert_int_eq(loop_events(loop, p[1]), LOOP_WRITE);

	/* Empty pipe: only the write end is ready. */
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(calls[p[1]], 1);
	ck_assert_int_eq(seen[p[1]], LOOP_WRITE);
	ck_assert_int_eq(calls[p[0]], 0);

	/* Data: the read end becomes ready, and stays so (level-triggered) until drained. */
	put_byte(p[1]);
	ck_assert_int_eq(loop_mod(loop, p[1], 0), FERRY_OK);
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(calls[p[0]], 1);
	ck_assert_int_eq(seen[p[0]], LOOP_READ);
	ck_assert_int_eq(loop_run_once(loop, 0), 1);
	ck_assert_int_eq(calls[p[0]], 2);
	ck_assert_int_eq(calls[p[1]], 1);

	char c;
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	ck_assert_int_eq(loop_run_once(loop, 0), 0);
	ck_assert_int_eq(calls[p[0]], 2);

	loop_del(loop, p[0]);
	loop_del(loop, p[1]);
	close(p[0]);
	close(p[1]);
	loop_destroy(loop);
}
END_TEST

/* loop_set_handler: the events stay, the next event goes to the new callback and argument. */
static int handler_hits[2];
static void *handler_arg;

static void handler_a(struct loop *loop, int fd, int events, void *arg)
{
	handler_hits[0]++;
	handler_arg = arg;
}

static void handler_b(struct loop *loop, int fd, int events, void *arg)
{
	handler_hits[1]++;
	handler_arg = arg;
}

START_TEST(test_set_handler)
{
	struct loop *loop = new_loop(_i);
	int p[2], tag_a = 1, tag_b = 2;
	make_pipe(p);
	handler_hits[0] = handler_hits[1] = 0;
	ck_assert_int_eq(loop_set_handler(loop, p[0], handler_b, &tag_b), FERRY_ERR);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(loop_add(loop, p[0], LOOP_READ, handler_a, &tag_a), FERRY_OK);
	put_byte(p[1]);
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(handler_hits[0], 1);
	ck_assert_ptr_eq(handler_arg, &tag_a);
	ck_assert_int_eq(loop_set_handler(loop, p[0], handler_b, &tag_b), FERRY_OK);
	ck_assert_int_eq(loop_events(loop, p[0]), LOOP_READ);
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(handler_hits[0], 1);
	ck_assert_int_eq(handler_hits[1], 1);
	ck_assert_ptr_eq(handler_arg, &tag_b);
	loop_del(loop, p[0]);
	close(p[0]);
	close(p[1]);
	loop_destroy(loop);
}
END_TEST

START_TEST(test_mod_del)
{
	struct loop *loop = new_loop(_i);
	int p[2];

	reset_rec();
	make_pipe(p);
	put_byte(p[1]);
	ck_assert_int_eq(loop_add(loop, p[0], 0, rec_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_events(loop, p[0]), 0);
	ck_assert_int_eq(loop_run_once(loop, 0), 0);

	ck_assert_int_eq(loop_mod(loop, p[0], LOOP_READ), FERRY_OK);
	ck_assert_int_eq(loop_run_once(loop, 0), 1);
	ck_assert_int_eq(calls[p[0]], 1);

	/* A read end is never writable: watching only WRITE reports nothing. */
	ck_assert_int_eq(loop_mod(loop, p[0], LOOP_WRITE), FERRY_OK);
	ck_assert_int_eq(loop_events(loop, p[0]), LOOP_WRITE);
	ck_assert_int_eq(loop_run_once(loop, 0), 0);
	ck_assert_int_eq(loop_mod(loop, p[0], LOOP_READ | LOOP_WRITE), FERRY_OK);
	ck_assert_int_eq(loop_run_once(loop, 0), 1);
	ck_assert_int_eq(seen[p[0]], LOOP_READ);
	ck_assert_int_eq(loop_mod(loop, p[0], LOOP_READ | LOOP_WRITE), FERRY_OK);

	/* Paused (events 0) on a hung-up fd: no event, so a paused fd cannot spin the loop. */
	close(p[1]);
	ck_assert_int_eq(loop_mod(loop, p[0], 0), FERRY_OK);
	ck_assert_int_eq(loop_run_once(loop, 0), 0);
	ck_assert_int_eq(calls[p[0]], 2);
	/* ... and it does not cut a wait short (a wait is never shorter than asked). */
	uint64_t t0 = mono_ms();
	ck_assert_int_eq(loop_run_once(loop, 30), 0);
	ck_assert_uint_ge(mono_ms(), t0 + 30);

	loop_del(loop, p[0]);
	ck_assert_int_eq(loop_events(loop, p[0]), -1);
	loop_del(loop, p[0]); /* harmless twice */
	loop_del(loop, -1);
	loop_del(loop, MAXFDS + 5);
	ck_assert_int_eq(loop_run_once(loop, 0), 0);
	ck_assert_int_eq(calls[p[0]], 2);

	errno = 0;
	ck_assert_int_eq(loop_mod(loop, p[0], LOOP_READ), FERRY_ERR);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(loop_add(loop, p[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	errno = 0;
	ck_assert_int_eq(loop_add(loop, p[0], LOOP_READ, rec_cb, NULL), FERRY_ERR);
	ck_assert_int_eq(errno, EEXIST);
	errno = 0;
	ck_assert_int_eq(loop_add(loop, MAXFDS, LOOP_READ, rec_cb, NULL), FERRY_ERR);
	ck_assert_int_eq(errno, ERANGE);
	ck_assert_int_eq(loop_add(loop, -1, LOOP_READ, rec_cb, NULL), FERRY_ERR);
	ck_assert_int_eq(loop_add(loop, p[0], LOOP_HUP, rec_cb, NULL), FERRY_ERR);
	ck_assert_int_eq(loop_events(loop, -3), -1);
	ck_assert_int_eq(loop_events(loop, MAXFDS), -1);

	/* Re-registered after del: delivered again (EOF now: HUP too, see test_hup). */
	ck_assert_int_eq(loop_run_once(loop, 0), 1);
	ck_assert_int_eq(calls[p[0]], 3);
	loop_del(loop, p[0]);
	close(p[0]);
	loop_destroy(loop);
}
END_TEST

/* Two readable pipes; whichever callback runs first deletes (and closes) the other. */
static int del_pair[2];

static void del_other_cb(struct loop *loop, int fd, int events, void *arg)
{
	int other = fd == del_pair[0] ? del_pair[1] : del_pair[0];

	rec_cb(loop, fd, events, arg);
	loop_del(loop, other);
	close(other);
}

START_TEST(test_delete_other_in_callback)
{
	struct loop *loop = new_loop(_i);
	int a[2], b[2];

	reset_rec();
	make_pipe(a);
	make_pipe(b);
	put_byte(a[1]);
	put_byte(b[1]);
	del_pair[0] = a[0];
	del_pair[1] = b[0];
	ck_assert_int_eq(loop_add(loop, a[0], LOOP_READ, del_other_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_add(loop, b[0], LOOP_READ, del_other_cb, NULL), FERRY_OK);
	/* Both are ready in this one round; the second must be skipped. */
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(total_calls, 1);
	ck_assert_int_eq(calls[a[0]] + calls[b[0]], 1);
	int survivor = calls[a[0]] ? a[0] : b[0];
	ck_assert_int_eq(loop_events(loop, survivor == a[0] ? b[0] : a[0]), -1);
	loop_del(loop, survivor);
	close(survivor);
	close(a[1]);
	close(b[1]);
	loop_destroy(loop);
}
END_TEST

/* loop_quiet_since: an fd is vouched for only after a poll that reported nothing for it. In
 * a round where two fds are ready, each callback sees the other as not quiet, whichever runs
 * first (the stamps are set before any callback). */
static uint64_t quiet_round0;
static int quiet_seen_other;

static void quiet_other_cb(struct loop *loop, int fd, int events, void *arg)
{
	int other = fd == del_pair[0] ? del_pair[1] : del_pair[0];
	char c;

	rec_cb(loop, fd, events, arg);
	ck_assert_int_eq(read(fd, &c, 1), 1);
	quiet_seen_other += loop_quiet_since(loop, other, quiet_round0);
}

START_TEST(test_quiet_since)
{
	struct loop *loop = new_loop(_i);
	int a[2], b[2];

	reset_rec();
	make_pipe(a);
	make_pipe(b);
	del_pair[0] = a[0];
	del_pair[1] = b[0];
	ck_assert_int_eq(loop_add(loop, a[0], LOOP_READ, quiet_other_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_add(loop, b[0], LOOP_READ, quiet_other_cb, NULL), FERRY_OK);
	quiet_round0 = loop_round(loop);
	ck_assert_int_eq(loop_quiet_since(loop, a[0], quiet_round0), 0); /* not polled since */
	ck_assert_int_eq(loop_run_once(loop, 0), 0);
	ck_assert_int_eq(loop_round(loop), quiet_round0 + 1);
	ck_assert_int_eq(loop_quiet_since(loop, a[0], quiet_round0), 1);
	ck_assert_int_eq(loop_quiet_since(loop, a[0], loop_round(loop)), 0);
	ck_assert_int_eq(loop_quiet_since(loop, a[1], quiet_round0), 0); /* not registered */
	put_byte(a[1]);
	put_byte(b[1]);
	quiet_seen_other = 0;
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 2);
	ck_assert_int_eq(quiet_seen_other, 0);
	ck_assert_int_eq(loop_quiet_since(loop, a[0], quiet_round0), 0); /* fired this round */
	ck_assert_int_eq(loop_run_once(loop, 0), 0);
	ck_assert_int_eq(loop_quiet_since(loop, a[0], quiet_round0), 1); /* drained, polled again */
	loop_del(loop, a[0]);
	loop_del(loop, b[0]);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	loop_destroy(loop);
}
END_TEST

/* Whichever runs first sets the other's interest to mod_to. */
static int mod_to;

static void mod_other_cb(struct loop *loop, int fd, int events, void *arg)
{
	int other = fd == del_pair[0] ? del_pair[1] : del_pair[0];

	rec_cb(loop, fd, events, arg);
	ck_assert_int_eq(loop_mod(loop, other, mod_to), FERRY_OK);
}

START_TEST(test_mod_other_in_callback)
{
	struct loop *loop = new_loop(_i);
	int a[2], b[2];

	/* Two writable ends; the other loses WRITE interest before its turn. */
	reset_rec();
	make_pipe(a);
	make_pipe(b);
	del_pair[0] = a[1];
	del_pair[1] = b[1];
	mod_to = LOOP_READ;
	ck_assert_int_eq(loop_add(loop, a[1], LOOP_WRITE, mod_other_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_add(loop, b[1], LOOP_WRITE, mod_other_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(total_calls, 1);
	loop_del(loop, a[1]);
	loop_del(loop, b[1]);

	/* Two hung-up read ends; the other is paused before its turn: not even HUP. */
	reset_rec();
	close(a[1]);
	close(b[1]);
	del_pair[0] = a[0];
	del_pair[1] = b[0];
	mod_to = 0;
	ck_assert_int_eq(loop_add(loop, a[0], LOOP_READ, mod_other_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_add(loop, b[0], LOOP_READ, mod_other_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(total_calls, 1);
	loop_del(loop, a[0]);
	loop_del(loop, b[0]);
	close(a[0]);
	close(b[0]);
	loop_destroy(loop);
}
END_TEST

/* Pauses itself, so it is reported once. */
static void self_mod_cb(struct loop *loop, int fd, int events, void *arg)
{
	rec_cb(loop, fd, events, arg);
	ck_assert_int_eq(loop_mod(loop, fd, 0), FERRY_OK);
}

static int add_target = -1;

static void adder_cb(struct loop *loop, int fd, int events, void *arg)
{
	rec_cb(loop, fd, events, arg);
	if (add_target >= 0) {
		ck_assert_int_eq(loop_add(loop, add_target, LOOP_READ, self_mod_cb, NULL),
				 FERRY_OK);
		add_target = -1;
	}
	loop_del(loop, fd);
}

START_TEST(test_add_from_callback)
{
	struct loop *loop = new_loop(_i);
	int a[2], b[2];

	reset_rec();
	make_pipe(a);
	make_pipe(b);
	put_byte(a[1]);
	put_byte(b[1]);
	add_target = b[0];
	ck_assert_int_eq(loop_add(loop, a[0], LOOP_READ, adder_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(calls[a[0]], 1);
	ck_assert_int_eq(loop_events(loop, a[0]), -1);
	ck_assert_int_eq(loop_events(loop, b[0]), LOOP_READ);
	/* The added fd is ready and reported next round; it pauses itself. */
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(calls[b[0]], 1);
	ck_assert_int_eq(calls[a[0]], 1);
	ck_assert_int_eq(loop_run_once(loop, 0), 0);
	loop_del(loop, b[0]);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	loop_destroy(loop);
}
END_TEST

START_TEST(test_hup)
{
	struct loop *loop = new_loop(_i);
	int s[2], w[2], p[2];

	reset_rec();
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, w), 0);
	make_pipe(p);
	ck_assert_int_eq(loop_add(loop, s[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_add(loop, w[0], LOOP_WRITE, rec_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_add(loop, p[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_mod(loop, w[0], 0), FERRY_OK);
	ck_assert_int_eq(loop_run_once(loop, 0), 0);

	close(s[1]);
	close(w[1]);
	close(p[1]);
	ck_assert_int_eq(loop_mod(loop, w[0], LOOP_WRITE), FERRY_OK);
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 3);
	/* A reader sees the hang-up as readable too, so its read() finds the EOF. */
	ck_assert_int_eq(seen[s[0]], LOOP_HUP | LOOP_READ);
	ck_assert_int_eq(seen[p[0]], LOOP_HUP | LOOP_READ);
	/* A writer-only watcher is told of the hang-up, not of readability it did not ask. */
	ck_assert(seen[w[0]] & LOOP_HUP);
	ck_assert(!(seen[w[0]] & LOOP_READ));

	char c;
	ck_assert_int_eq(read(s[0], &c, 1), 0);
	loop_del(loop, s[0]);
	loop_del(loop, w[0]);
	loop_del(loop, p[0]);
	close(s[0]);
	close(w[0]);
	close(p[0]);
	loop_destroy(loop);
}
END_TEST

/* ---- many fds, random order: the poll slot index must stay consistent ---- */

#define NPIPES 700 /* 1400 fds */

static unsigned rnd_state = 12345;

static unsigned rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

static void shuffle(int *v, int n)
{
	for (int i = n - 1; i > 0; i--) {
		int j = (int)(rnd() % (unsigned)(i + 1)), t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
}

static void raise_nofile(rlim_t need)
{
	struct rlimit rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < need) {
		ck_assert_msg(rl.rlim_max >= need, "RLIMIT_NOFILE hard limit %lu < %lu",
			      (unsigned long)rl.rlim_max, (unsigned long)need);
		rl.rlim_cur = need;
		ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
}

struct many {
	int rd[NPIPES], wr[NPIPES];
	int has_data[MAXFDS]; /* by read fd */
	int is_read[MAXFDS];
	int want[MAXFDS];     /* expected loop_events(), -1 when not registered */
};

/* One round must report exactly the registered fds that are ready: write ends watched for
 * WRITE, read ends watched for READ whose pipe holds a byte; each once, nothing else. */
static void many_verify(struct loop *loop, struct many *m)
{
	int expect = 0, n;

	reset_rec();
	n = loop_run_once(loop, 0);
	/* Plain ifs in the loop: every ck_assert records its location, which is slow. */
	for (int fd = 0; fd < MAXFDS; fd++) {
		int ready = 0, ev = 0;

		if (loop_events(loop, fd) != m->want[fd])
			ck_abort_msg("fd %d: loop_events %d, expected %d", fd,
				     loop_events(loop, fd), m->want[fd]);
		if (m->want[fd] >= 0) {
			ready = m->is_read[fd] ? (m->want[fd] & LOOP_READ) && m->has_data[fd]
					       : (m->want[fd] & LOOP_WRITE) != 0;
			ev = ready ? (m->is_read[fd] ? LOOP_READ : LOOP_WRITE) : 0;
		}
		if (calls[fd] != ready || seen[fd] != ev)
			ck_abort_msg("fd %d: calls %d events %d, expected %d and %d", fd,
				     calls[fd], seen[fd], ready, ev);
		expect += ready;
	}
	ck_assert_int_eq(n, expect);
	ck_assert_int_eq(total_calls, expect);
}

static int random_events(int is_read)
{
	switch (rnd() % 3) {
	case 0:
		return 0;
	case 1:
		return is_read ? LOOP_READ : LOOP_WRITE;
	default:
		return LOOP_READ | LOOP_WRITE;
	}
}

START_TEST(test_many_fds_random)
{
	struct loop *loop = new_loop(_i);
	struct many *m = calloc(1, sizeof(*m));
	int order[2 * NPIPES], nfds = 2 * NPIPES;

	raise_nofile(2 * NPIPES + 64);
	rnd_state = 12345u + (unsigned)_i;
	for (int fd = 0; fd < MAXFDS; fd++)
		m->want[fd] = -1;
	for (int i = 0; i < NPIPES; i++) {
		int p[2];

		make_pipe(p);
		m->rd[i] = p[0];
		m->wr[i] = p[1];
		m->is_read[p[0]] = 1;
		/* Every third pipe holds a byte, so at most 700 + 234 fds are ready at once,
		 * within one epoll batch. */
		if (i % 3 == 0) {
			put_byte(p[1]);
			m->has_data[p[0]] = 1;
		}
		order[2 * i] = p[0];
		order[2 * i + 1] = p[1];
	}

	/* Register all in random order with random interest. */
	shuffle(order, nfds);
	for (int i = 0; i < nfds; i++) {
		int fd = order[i], ev = random_events(m->is_read[fd]);

		ck_assert_int_eq(loop_add(loop, fd, ev, rec_cb, NULL), FERRY_OK);
		m->want[fd] = ev;
	}
	many_verify(loop, m);

	/* Churn: remove, re-add and modify at random, verifying readiness every 100 steps. */
	for (int step = 0; step < 6000; step++) {
		int fd = order[rnd() % (unsigned)nfds];

		if (m->want[fd] < 0) {
			int ev = random_events(m->is_read[fd]);

			ck_assert_int_eq(loop_add(loop, fd, ev, rec_cb, NULL), FERRY_OK);
			m->want[fd] = ev;
		} else if (rnd() % 2) {
			loop_del(loop, fd);
			m->want[fd] = -1;
		} else {
			int ev = random_events(m->is_read[fd]);

			ck_assert_int_eq(loop_mod(loop, fd, ev), FERRY_OK);
			m->want[fd] = ev;
		}
		if (step % 100 == 99)
			many_verify(loop, m);
	}

	/* Remove everything in a fresh random order. */
	shuffle(order, nfds);
	for (int i = 0; i < nfds; i++) {
		loop_del(loop, order[i]);
		m->want[order[i]] = -1;
		if (i % 97 == 0)
			many_verify(loop, m);
	}
	many_verify(loop, m);
	for (int i = 0; i < NPIPES; i++) {
		close(m->rd[i]);
		close(m->wr[i]);
	}
	free(m);
	loop_destroy(loop);
}
END_TEST

/* ---- shards of the poll backend (loop_pollshard.c), on both backends alike ----
 *
 * With no deletions the k-th fd registered lands in poll shard k / LOOP_POLLSHARD_FDS, and
 * once there are two shards every shard has a helper thread: counted in /proc/self/task.
 * Epoll has no shards and no threads, and must behave the same. */

#define SHARD LOOP_POLLSHARD_FDS

static int is_poll(int i)
{
	return backends[i] == LOOP_BACKEND_POLL;
}

/* The helper threads, told from others (a sanitizer's own, say) by their name. */
static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		char path[300], name[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		if (!(f = fopen(path, "r")))
			continue; /* exited meanwhile */
		if (fgets(name, sizeof(name), f))
			name[strcspn(name, "\n")] = 0;
		fclose(f);
		n += strcmp(name, POLLSHARD_THREAD_NAME) == 0;
	}
	closedir(d);
	return n;
}

/* A joined thread may linger in /proc for a moment while the kernel finishes its exit. */
static void wait_threads(int want)
{
	uint64_t start = mono_ms();
	int n;

	while ((n = count_threads()) != want) {
		ck_assert_msg(mono_ms() - start < GUARD_MS, "%d threads, expected %d", n, want);
		sleep_ms(1);
	}
}

/* The helpers a poll loop holding nfds fds has: one per shard once there are two (none
 * for epoll). */
static int helpers_for(int i, int nfds)
{
	return is_poll(i) && nfds > SHARD ? (nfds + SHARD - 1) / SHARD : 0;
}

/* Filler pipes, both ends registered: the read end watched for READ (empty, never ready),
 * the write end paused (always writable, so a paused fd that leaked into a poll set would
 * show up). */
static int filler[MAXFDS];
static int nfiller;

static void fill(struct loop *loop, int nfds)
{
	ck_assert_int_eq(nfds % 2, 0);
	for (int k = 0; k < nfds; k += 2) {
		int p[2];

		make_pipe(p);
		ck_assert_int_eq(loop_add(loop, p[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
		ck_assert_int_eq(loop_add(loop, p[1], 0, rec_cb, NULL), FERRY_OK);
		filler[nfiller++] = p[0];
		filler[nfiller++] = p[1];
	}
}

static void fill_close(struct loop *loop)
{
	for (int k = 0; k < nfiller; k++) {
		loop_del(loop, filler[k]);
		close(filler[k]);
	}
	nfiller = 0;
}

/* Run blocking rounds until cond holds, GUARD_MS at most. */
#define RUN_UNTIL(loop, cond)                                                               \
	do {                                                                                \
		uint64_t start_ = mono_ms();                                                \
		while (!(cond)) {                                                           \
			ck_assert_int_ge(loop_run_once(loop, GUARD_MS), 0);                 \
			ck_assert_msg(mono_ms() - start_ < GUARD_MS, "not reported: " #cond); \
		}                                                                           \
	} while (0)

static void setup_shards(void)
{
	raise_nofile(MAXFDS);
	nfiller = 0;
	reset_rec();
}

START_TEST(test_shard_far_fd)
{
	int base = count_threads();
	struct loop *loop = new_loop(_i);
	int t[2], s[2], late[2];
	char c;

	setup_shards();
	fill(loop, 3 * SHARD);
	ck_assert_int_eq(count_threads(), base + helpers_for(_i, 3 * SHARD));
	/* The next fd opens shard 3, and its helper. */
	make_pipe(t);
	ck_assert_int_eq(loop_add(loop, t[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	ck_assert_int_eq(count_threads(), base + helpers_for(_i, 3 * SHARD + 1));
	ck_assert_int_eq(loop_run_once(loop, 0), 0);

	/* Readable: reported while the worker blocks, and again while not drained. */
	put_byte(t[1]);
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(calls[t[0]], 1);
	ck_assert_int_eq(seen[t[0]], LOOP_READ);
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(calls[t[0]], 2);
	/* Drained: never again, and a wait is not cut short by the helper's old news. */
	ck_assert_int_eq(read(t[0], &c, 1), 1);
	ck_assert_int_eq(loop_run_once(loop, 0), 0);
	uint64_t t0 = mono_ms();
	ck_assert_int_eq(loop_run_once(loop, 50), 0);
	ck_assert_uint_ge(mono_ms(), t0 + 50);
	ck_assert_int_eq(total_calls, 2);

	/* Widened while the helper waits: a socket watched for READ only is idle; asked for
	 * WRITE too, it must be reported writable. The helper's snapshot does not watch for
	 * WRITE, so only the worker's poke makes this work. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
	ck_assert_int_eq(loop_add(loop, s[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_run_once(loop, 20), 0);
	ck_assert_int_eq(loop_mod(loop, s[0], LOOP_READ | LOOP_WRITE), FERRY_OK);
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(calls[s[0]], 1);
	ck_assert_int_eq(seen[s[0]], LOOP_WRITE);
	ck_assert_int_eq(loop_mod(loop, s[0], LOOP_READ), FERRY_OK);

	/* Added while the helper waits, already readable. */
	make_pipe(late);
	put_byte(late[1]);
	ck_assert_int_eq(loop_run_once(loop, 20), 0);
	ck_assert_int_eq(loop_add(loop, late[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	ck_assert_int_eq(count_threads(), base + helpers_for(_i, 3 * SHARD + 3));
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(calls[late[0]], 1);
	ck_assert_int_eq(total_calls, 4);

	loop_del(loop, late[0]);
	loop_del(loop, s[0]);
	loop_del(loop, t[0]);
	fill_close(loop);
	close(late[0]);
	close(late[1]);
	close(s[0]);
	close(s[1]);
	close(t[0]);
	close(t[1]);
	loop_destroy(loop);
	wait_threads(base);
}
END_TEST

START_TEST(test_shard_del_reuse)
{
	struct loop *loop = new_loop(_i);
	int a[2], b[2], x[2], spare;
	struct pollfd pf;

	setup_shards();
	fill(loop, SHARD);
	/* a[0] in shard 1, blocked on by its helper. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
	ck_assert_int_eq(loop_add(loop, a[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_run_once(loop, 20), 0);

	/* Deleted and closed: the peer sees the close now, not when the helper next wakes (a
	 * blocked poll() holds a reference to each file it waits on). */
	loop_del(loop, a[0]);
	close(a[0]);
	pf = (struct pollfd){ .fd = a[1], .events = POLLIN };
	ck_assert_int_eq(poll(&pf, 1, GUARD_MS), 1);
	ck_assert(pf.revents & POLLHUP);
	close(a[1]);

	/* b[0] in shard 1 becomes readable while the worker is not looking, so its helper
	 * reports it; then it is deleted and closed, and its number goes to an empty pipe
	 * registered in shard 0 (a filler's place freed). The old readiness must not reach
	 * the new registration. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
	ck_assert_int_eq(loop_add(loop, b[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_run_once(loop, 20), 0);
	ck_assert_int_eq(write(b[1], "xy", 2), 2);
	sleep_ms(20);
	spare = filler[0];
	loop_del(loop, spare);
	loop_del(loop, b[0]);
	close(b[0]);
	make_pipe(x);
	ck_assert_int_eq(x[0], b[0]); /* the lowest free number */
	ck_assert_int_eq(loop_add(loop, x[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	uint64_t t0 = mono_ms();
	ck_assert_int_eq(loop_run_once(loop, 50), 0);
	ck_assert_uint_ge(mono_ms(), t0 + 50);
	ck_assert_int_eq(total_calls, 0);
	/* The new registration works. */
	put_byte(x[1]);
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(calls[x[0]], 1);
	ck_assert_int_eq(seen[x[0]], LOOP_READ);

	loop_del(loop, x[0]);
	close(x[0]);
	close(x[1]);
	close(b[1]);
	fill_close(loop); /* spare included: deleting it again is harmless */
	loop_destroy(loop);
}
END_TEST

static uint64_t cpu_ms(void)
{
	struct rusage ru;

	ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

#define NHUP 8

/* How many of the watched (odd) sockets have been reported. */
static int hups_seen(int s[NHUP][2])
{
	int n = 0;

	for (int k = 1; k < NHUP; k += 2)
		n += calls[s[k][0]] > 0;
	return n;
}

START_TEST(test_shard_paused_hup)
{
	struct loop *loop = new_loop(_i);
	int s[NHUP][2];

	setup_shards();
	fill(loop, SHARD);
	for (int k = 0; k < NHUP; k++) {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s[k]), 0);
		/* Half watched, half paused from the start. */
		ck_assert_int_eq(loop_add(loop, s[k][0], k % 2 ? LOOP_READ : 0, rec_cb, NULL),
				 FERRY_OK);
	}
	ck_assert_int_eq(loop_run_once(loop, 20), 0);
	for (int k = 0; k < NHUP; k++)
		close(s[k][1]);
	/* The watched ones report the hang-up, the paused ones nothing. */
	RUN_UNTIL(loop, hups_seen(s) == NHUP / 2);
	for (int k = 0; k < NHUP; k++) {
		ck_assert_int_eq(seen[s[k][0]], k % 2 ? LOOP_HUP | LOOP_READ : 0);
		ck_assert_int_eq(loop_mod(loop, s[k][0], 0), FERRY_OK);
	}

	/* Now all paused: a wait lasts as long as asked, and nobody spins meanwhile (a helper
	 * polling hung-up fds would keep itself and the worker busy the whole time). */
	reset_rec();
	ck_assert_int_eq(loop_run_once(loop, 0), 0);
	uint64_t t0 = mono_ms(), c0 = cpu_ms();
	ck_assert_int_eq(loop_run_once(loop, 300), 0);
	ck_assert_uint_ge(mono_ms(), t0 + 300);
	ck_assert_uint_lt(cpu_ms() - c0, 150);
	ck_assert_int_eq(total_calls, 0);

	for (int k = 0; k < NHUP; k++) {
		loop_del(loop, s[k][0]);
		close(s[k][0]);
	}
	fill_close(loop);
	loop_destroy(loop);
}
END_TEST

/* Reads the byte that made it ready, so an fd is reported exactly once. */
static void drain_cb(struct loop *loop, int fd, int events, void *arg)
{
	char c;

	rec_cb(loop, fd, events, arg);
	ck_assert_int_eq(read(fd, &c, 1), 1);
}

#define NSHARDS_MANY 4

START_TEST(test_shard_many_fire)
{
	int base = count_threads();
	struct loop *loop = new_loop(_i);
	static int rd[NSHARDS_MANY * SHARD / 2], wr[NSHARDS_MANY * SHARD / 2];
	int np = NSHARDS_MANY * SHARD / 2, want = 0, got;

	setup_shards();
	/* 4 full shards of pipes: read ends watched, write ends paused. */
	for (int k = 0; k < np; k++) {
		int p[2];

		make_pipe(p);
		rd[k] = p[0];
		wr[k] = p[1];
		ck_assert_int_eq(loop_add(loop, p[0], LOOP_READ, drain_cb, NULL), FERRY_OK);
		ck_assert_int_eq(loop_add(loop, p[1], 0, drain_cb, NULL), FERRY_OK);
	}
	ck_assert_int_eq(count_threads(), base + helpers_for(_i, 2 * np));

	/* Every 5th pipe, across all shards, at once: a timeout of 0 sees them all in one
	 * round. */
	for (int k = 0; k < np; k += 5) {
		put_byte(wr[k]);
		want++;
	}
	ck_assert_int_eq(loop_run_once(loop, 0), want);
	for (int k = 0; k < np; k++)
		if (calls[rd[k]] != (k % 5 == 0) || calls[wr[k]])
			ck_abort_msg("pipe %d: %d and %d calls", k, calls[rd[k]], calls[wr[k]]);

	/* Again, the worker blocking: the helpers may report in several rounds, but each fd
	 * exactly once and nothing else. */
	reset_rec();
	for (int k = 2; k < np; k += 7)
		put_byte(wr[k]);
	want = (np - 2 + 6) / 7;
	RUN_UNTIL(loop, total_calls >= want);
	ck_assert_int_eq(loop_run_once(loop, 0), 0);
	got = 0;
	for (int k = 0; k < np; k++) {
		if (calls[rd[k]] != (k % 7 == 2) || calls[wr[k]])
			ck_abort_msg("pipe %d: %d and %d calls", k, calls[rd[k]], calls[wr[k]]);
		got += calls[rd[k]];
	}
	ck_assert_int_eq(got, want);
	ck_assert_int_eq(total_calls, want);

	for (int k = 0; k < np; k++) {
		loop_del(loop, rd[k]);
		loop_del(loop, wr[k]);
		close(rd[k]);
		close(wr[k]);
	}
	loop_destroy(loop);
	wait_threads(base);
}
END_TEST

START_TEST(test_shard_fairness)
{
	struct loop *loop = new_loop(_i);
	int busy0[2], busy3[2], far[2], near[2];

	setup_shards();
	/* shard 0: an always-writable fd and an idle pipe; shards 1-2 fillers; shard 3: an
	 * always-writable fd and an idle pipe. */
	make_pipe(busy0);
	make_pipe(near);
	ck_assert_int_eq(loop_add(loop, busy0[1], LOOP_WRITE, rec_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_add(loop, near[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	fill(loop, 3 * SHARD - 2);
	make_pipe(busy3);
	make_pipe(far);
	ck_assert_int_eq(loop_add(loop, busy3[1], LOOP_WRITE, rec_cb, NULL), FERRY_OK);
	ck_assert_int_eq(loop_add(loop, far[0], LOOP_READ, rec_cb, NULL), FERRY_OK);

	/* Shard 0 busy every round: the far shard's busy fd and its newly readable pipe are
	 * still served. */
	RUN_UNTIL(loop, calls[busy3[1]] > 0);
	put_byte(far[1]);
	RUN_UNTIL(loop, calls[far[0]] > 0);
	ck_assert_int_gt(calls[busy0[1]], 0);

	/* The far shard busy every round: shard 0's newly readable pipe is still served, and
	 * the busy fd goes on being served too. Which helper's report a round collects first
	 * depends on scheduling, so the pipe may well come first: both are only required to be
	 * served within the guard. */
	ck_assert_int_eq(loop_mod(loop, busy0[1], 0), FERRY_OK);
	ck_assert_int_eq(loop_mod(loop, far[0], 0), FERRY_OK);
	RUN_UNTIL(loop, calls[busy3[1]] > 1);
	put_byte(near[1]);
	reset_rec();
	RUN_UNTIL(loop, calls[near[0]] > 0);
	RUN_UNTIL(loop, calls[busy3[1]] > 0);
	ck_assert_int_eq(calls[far[0]], 0);

	loop_del(loop, busy0[1]);
	loop_del(loop, near[0]);
	loop_del(loop, busy3[1]);
	loop_del(loop, far[0]);
	fill_close(loop);
	close(busy0[0]);
	close(busy0[1]);
	close(near[0]);
	close(near[1]);
	close(busy3[0]);
	close(busy3[1]);
	close(far[0]);
	close(far[1]);
	loop_destroy(loop);
}
END_TEST

START_TEST(test_shard_destroy_joins)
{
	int base = count_threads();
	struct loop *loop = new_loop(_i);
	int p[2];

	setup_shards();
	/* Helpers blocked in poll(), and one (shard 2's) waiting for the worker to collect an
	 * event it reported: destroying the loop stops and joins them all. */
	fill(loop, 2 * SHARD);
	make_pipe(p);
	ck_assert_int_eq(loop_add(loop, p[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	ck_assert_int_eq(count_threads(), base + helpers_for(_i, 2 * SHARD + 1));
	ck_assert_int_eq(loop_run_once(loop, 20), 0);
	put_byte(p[1]);
	sleep_ms(20);
	loop_destroy(loop);
	wait_threads(base);
	/* The fds were never deleted: the loop just forgot them. */
	for (int k = 0; k < nfiller; k++)
		close(filler[k]);
	nfiller = 0;
	close(p[0]);
	close(p[1]);
}
END_TEST

/* After a burst the helpers go away again, and come back with the next one; at a shard's
 * edge a connection more or less does not start or stop a thread each time. */
START_TEST(test_shard_helpers_retire)
{
	int base = count_threads();
	struct loop *loop = new_loop(_i);
	int p[2];

	setup_shards();
	fill(loop, 3 * SHARD);
	ck_assert_int_eq(count_threads(), base + helpers_for(_i, 3 * SHARD));
	fill_close(loop);
	wait_threads(base);

	/* the loop still reports, now without helpers */
	make_pipe(p);
	ck_assert_int_eq(loop_add(loop, p[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	put_byte(p[1]);
	ck_assert_int_eq(loop_run_once(loop, GUARD_MS), 1);
	ck_assert_int_eq(calls[p[0]], 1);

	/* a second burst: helpers again, and p[0], now in shard 0 under a helper, still
	 * reported */
	fill(loop, SHARD);
	ck_assert_int_eq(count_threads(), base + helpers_for(_i, SHARD + 1));
	put_byte(p[1]);
	RUN_UNTIL(loop, calls[p[0]] == 2);
	/* at the edge: the last filler pair out and in again, twice; the helpers stay */
	for (int round = 0; round < 2; round++) {
		int q[2];

		loop_del(loop, filler[--nfiller]);
		close(filler[nfiller]);
		loop_del(loop, filler[--nfiller]);
		close(filler[nfiller]);
		ck_assert_int_eq(count_threads(), base + helpers_for(_i, SHARD + 1));
		make_pipe(q);
		ck_assert_int_eq(loop_add(loop, q[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
		ck_assert_int_eq(loop_add(loop, q[1], 0, rec_cb, NULL), FERRY_OK);
		filler[nfiller++] = q[0];
		filler[nfiller++] = q[1];
		ck_assert_int_eq(count_threads(), base + helpers_for(_i, SHARD + 1));
	}
	fill_close(loop);
	wait_threads(base);
	put_byte(p[1]);
	RUN_UNTIL(loop, calls[p[0]] == 3);
	loop_del(loop, p[0]);
	close(p[0]);
	close(p[1]);
	loop_destroy(loop);
}
END_TEST

/* ---- EINTR ---- */

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	alarms++;
}

START_TEST(test_eintr)
{
	struct loop *loop = new_loop(_i);
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval it = { { 0, 20000 }, { 0, 20000 } }, off = { { 0, 0 }, { 0, 0 } };
	int p[2];

	make_pipe(p);
	ck_assert_int_eq(loop_add(loop, p[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	alarms = 0;
	/* The alarm repeats every 20 ms, so it interrupts the 3 s wait for certain. */
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
	ck_assert_int_eq(loop_run_once(loop, 3000), 0);
	ck_assert_int_eq(setitimer(ITIMER_REAL, &off, NULL), 0);
	ck_assert_int_gt(alarms, 0);
	loop_del(loop, p[0]);
	close(p[0]);
	close(p[1]);
	loop_destroy(loop);
}
END_TEST

/* ---- timers ---- */

struct tobj {
	struct timer t;
	int id;
	uint64_t armed_at;  /* loop_now() when armed */
	uint64_t armed_real; /* mono_ms() when armed */
	uint64_t timeout;
	uint64_t fired_now; /* loop_now() in the callback */
	uint64_t fired_real;
	int fired;
};

static int fire_order[16];
static int nfired;

#define TOBJ(tp) ((struct tobj *)((char *)(tp) - offsetof(struct tobj, t)))

static void tobj_fn(struct loop *loop, struct timer *t)
{
	struct tobj *o = TOBJ(t);

	ck_assert(!timer_armed(t));
	o->fired++;
	o->fired_now = loop_now(loop);
	o->fired_real = mono_ms();
	if (nfired < 16)
		fire_order[nfired] = o->id;
	nfired++;
}

static void tobj_arm(struct loop *loop, struct tobj *o, struct timer_list *list)
{
	/* Real clock first: the loop's clock, read after it, cannot be behind it. */
	o->armed_real = mono_ms();
	loop_update_time(loop);
	o->armed_at = loop_now(loop);
	o->timeout = list->timeout_ms;
	timer_arm(loop, &o->t, list);
	ck_assert(timer_armed(&o->t));
	ck_assert_uint_eq(o->t.expires, o->armed_at + list->timeout_ms);
}

/* Not early: at least timeout after arming, by the loop's clock and by the real one. */
static void check_not_early(const struct tobj *o)
{
	ck_assert_int_eq(o->fired, 1);
	ck_assert_uint_ge(o->fired_now, o->armed_at + o->timeout);
	ck_assert_uint_ge(o->fired_real, o->armed_real + o->timeout);
}

static void run_until_fired(struct loop *loop, int n)
{
	uint64_t start = mono_ms();

	while (nfired < n) {
		ck_assert_int_ge(loop_run_once(loop, -1), 0);
		ck_assert_msg(mono_ms() - start < GUARD_MS, "timers did not fire");
	}
}

/* Let the loop's clock move on by at least ms without running the loop. */
static void advance(struct loop *loop, int ms)
{
	uint64_t t0 = loop_now(loop);

	do {
		sleep_ms(1);
		loop_update_time(loop);
	} while (loop_now(loop) < t0 + (uint64_t)ms);
}

START_TEST(test_timer_list_get)
{
	struct loop *loop = new_loop(_i);
	struct timer_list *a = loop_timer_list(loop, 100), *b = loop_timer_list(loop, 200);

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_ne(a, b);
	ck_assert_ptr_eq(loop_timer_list(loop, 100), a);
	ck_assert_uint_eq(a->timeout_ms, 100);
	for (int i = 2; i < LOOP_MAX_TIMER_LISTS; i++)
		ck_assert_ptr_nonnull(loop_timer_list(loop, 1000 + (uint64_t)i));
	ck_assert_ptr_null(loop_timer_list(loop, 5));
	ck_assert_ptr_eq(loop_timer_list(loop, 200), b);
	loop_destroy(loop);
}
END_TEST

START_TEST(test_timers_in_order)
{
	struct loop *loop = new_loop(_i);
	struct timer_list *list = loop_timer_list(loop, 30);
	struct tobj o[3] = { { .id = 0 }, { .id = 1 }, { .id = 2 } };

	nfired = 0;
	for (int i = 0; i < 3; i++) {
		timer_init(&o[i].t, tobj_fn);
		ck_assert(!timer_armed(&o[i].t));
		if (i)
			advance(loop, 3);
		tobj_arm(loop, &o[i], list);
	}
	run_until_fired(loop, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(fire_order[i], i);
		check_not_early(&o[i]);
	}
	/* Nothing armed any more: a bounded wait just times out. */
	ck_assert_int_eq(loop_run_once(loop, 0), 0);
	ck_assert_int_eq(nfired, 3);
	loop_destroy(loop);
}
END_TEST

START_TEST(test_timer_lists_merge)
{
	struct loop *loop = new_loop(_i);
	struct tobj o[4] = { { .id = 0 }, { .id = 1 }, { .id = 2 }, { .id = 3 } };
	uint64_t to[4] = { 40, 30, 20, 10 };

	nfired = 0;
	/* Armed longest first, in the same millisecond: they must fire shortest first,
	 * even when a slow machine finds them all expired in the same round. */
	for (int i = 0; i < 4; i++) {
		timer_init(&o[i].t, tobj_fn);
		tobj_arm(loop, &o[i], loop_timer_list(loop, to[i]));
	}
	run_until_fired(loop, 4);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(fire_order[i], 3 - i);
		check_not_early(&o[i]);
	}
	loop_destroy(loop);
}
END_TEST

START_TEST(test_timer_rearm_postpones)
{
	struct loop *loop = new_loop(_i);
	struct timer_list *list = loop_timer_list(loop, 30);
	struct tobj o = { .id = 0 };
	uint64_t first_expiry;

	nfired = 0;
	timer_init(&o.t, tobj_fn);
	tobj_arm(loop, &o, list);
	first_expiry = o.t.expires;
	advance(loop, 20);
	tobj_arm(loop, &o, list); /* re-arm while armed */
	ck_assert_uint_ge(o.t.expires, first_expiry + 20);
	run_until_fired(loop, 1);
	check_not_early(&o);
	ck_assert_uint_ge(o.fired_now, first_expiry + 20);
	loop_destroy(loop);
}
END_TEST

static struct timer *victim;

static void disarm_other_fn(struct loop *loop, struct timer *t)
{
	tobj_fn(loop, t);
	timer_disarm(victim);
}

START_TEST(test_timer_disarm)
{
	struct loop *loop = new_loop(_i);
	struct timer_list *l10 = loop_timer_list(loop, 10), *l40 = loop_timer_list(loop, 40);
	struct tobj a = { .id = 0 }, b = { .id = 1 }, c = { .id = 2 }, g = { .id = 3 };

	nfired = 0;
	timer_init(&a.t, tobj_fn);
	timer_init(&b.t, disarm_other_fn);
	timer_init(&c.t, tobj_fn);
	timer_init(&g.t, tobj_fn);
	tobj_arm(loop, &a, l10);
	timer_disarm(&a.t);
	ck_assert(!timer_armed(&a.t));
	timer_disarm(&a.t); /* harmless twice */
	/* b and c expire at the same moment, so in the same round; b disarms c. */
	victim = &c.t;
	tobj_arm(loop, &b, l10);
	tobj_arm(loop, &c, l10);
	tobj_arm(loop, &g, l40);
	run_until_fired(loop, 2);
	ck_assert_int_eq(a.fired, 0);
	ck_assert_int_eq(b.fired, 1);
	ck_assert_int_eq(c.fired, 0);
	ck_assert_int_eq(g.fired, 1);
	ck_assert_int_eq(fire_order[0], 1);
	ck_assert_int_eq(fire_order[1], 3);
	ck_assert(!timer_armed(&c.t));
	loop_destroy(loop);
}
END_TEST

START_TEST(test_poll_timeout_honours_timer)
{
	struct loop *loop = new_loop(_i);
	struct timer_list *list = loop_timer_list(loop, 50);
	struct tobj o = { .id = 0 };
	int p[2];

	/* An fd that never becomes ready, so only the timer can end the wait. */
	make_pipe(p);
	ck_assert_int_eq(loop_add(loop, p[0], LOOP_READ, rec_cb, NULL), FERRY_OK);
	nfired = 0;
	timer_init(&o.t, tobj_fn);
	tobj_arm(loop, &o, list);
	/* One call, no timeout of our own: it must return because, and after, the timer
	 * expired. */
	ck_assert_int_eq(loop_run_once(loop, -1), 0);
	ck_assert_int_eq(nfired, 1);
	check_not_early(&o);

	/* A requested timeout shorter than the nearest timer wins. */
	timer_init(&o.t, tobj_fn);
	o.fired = 0;
	tobj_arm(loop, &o, loop_timer_list(loop, 60000));
	ck_assert_int_eq(loop_run_once(loop, 20), 0);
	ck_assert_int_eq(o.fired, 0);
	ck_assert(timer_armed(&o.t));
	ck_assert_uint_ge(loop_now(loop), o.armed_at + 20);
	timer_disarm(&o.t);
	loop_del(loop, p[0]);
	close(p[0]);
	close(p[1]);
	loop_destroy(loop);
}
END_TEST

/* The callback frees the struct that holds the timer; ASan catches any later touch. */
struct owner {
	int *freed;
	struct timer t;
	char payload[64];
};

static void owner_free_fn(struct loop *loop, struct timer *t)
{
	struct owner *ow = (struct owner *)((char *)t - offsetof(struct owner, t));

	(*ow->freed)++;
	memset(ow, 0xa5, sizeof(*ow));
	free(ow);
}

static int rearm_count;

static void rearm_zero_fn(struct loop *loop, struct timer *t)
{
	rearm_count++;
	timer_arm(loop, t, loop_timer_list(loop, 0));
}

START_TEST(test_timer_frees_owner)
{
	struct loop *loop = new_loop(_i);
	struct timer_list *list = loop_timer_list(loop, 5);
	int freed = 0;

	for (int i = 0; i < 3; i++) {
		struct owner *ow = calloc(1, sizeof(*ow));

		ow->freed = &freed;
		timer_init(&ow->t, owner_free_fn);
		timer_arm(loop, &ow->t, list);
	}
	uint64_t start = mono_ms();
	while (freed < 3) {
		ck_assert_int_ge(loop_run_once(loop, -1), 0);
		ck_assert_msg(mono_ms() - start < GUARD_MS, "timers did not fire");
	}
	ck_assert_int_eq(freed, 3);

	/* A callback re-arming itself with 0 ms runs once per round, not forever. */
	struct timer z;

	rearm_count = 0;
	timer_init(&z, rearm_zero_fn);
	timer_arm(loop, &z, loop_timer_list(loop, 0));
	ck_assert_int_eq(loop_run_once(loop, -1), 0);
	ck_assert_int_eq(rearm_count, 1);
	ck_assert_int_eq(loop_run_once(loop, -1), 0);
	ck_assert_int_eq(rearm_count, 2);
	ck_assert(timer_armed(&z));
	/* Destroying the loop detaches timers still armed. */
	loop_destroy(loop);
	ck_assert(!timer_armed(&z));
	timer_disarm(&z);
}
END_TEST

static Suite *loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *io = tcase_create("io"), *tm = tcase_create("timers");
	TCase *shards = tcase_create("shards");

	tcase_set_timeout(io, 30);
	tcase_set_timeout(tm, 30);
	tcase_set_timeout(shards, 60);
	tcase_add_loop_test(io, test_pipe_readiness, 0, NBACKENDS);
	tcase_add_loop_test(io, test_mod_del, 0, NBACKENDS);
	tcase_add_loop_test(io, test_set_handler, 0, NBACKENDS);
	tcase_add_loop_test(io, test_delete_other_in_callback, 0, NBACKENDS);
	tcase_add_loop_test(io, test_quiet_since, 0, NBACKENDS);
	tcase_add_loop_test(io, test_mod_other_in_callback, 0, NBACKENDS);
	tcase_add_loop_test(io, test_add_from_callback, 0, NBACKENDS);
	tcase_add_loop_test(io, test_hup, 0, NBACKENDS);
	tcase_add_loop_test(io, test_many_fds_random, 0, NBACKENDS);
	tcase_add_loop_test(io, test_eintr, 0, NBACKENDS);
	tcase_add_loop_test(shards, test_shard_far_fd, 0, NBACKENDS);
	tcase_add_loop_test(shards, test_shard_del_reuse, 0, NBACKENDS);
	tcase_add_loop_test(shards, test_shard_paused_hup, 0, NBACKENDS);
	tcase_add_loop_test(shards, test_shard_many_fire, 0, NBACKENDS);
	tcase_add_loop_test(shards, test_shard_fairness, 0, NBACKENDS);
	tcase_add_loop_test(shards, test_shard_destroy_joins, 0, NBACKENDS);
	tcase_add_loop_test(shards, test_shard_helpers_retire, 0, NBACKENDS);
	tcase_add_loop_test(tm, test_timer_list_get, 0, NBACKENDS);
	tcase_add_loop_test(tm, test_timers_in_order, 0, NBACKENDS);
	tcase_add_loop_test(tm, test_timer_lists_merge, 0, NBACKENDS);
	tcase_add_loop_test(tm, test_timer_rearm_postpones, 0, NBACKENDS);
	tcase_add_loop_test(tm, test_timer_disarm, 0, NBACKENDS);
	tcase_add_loop_test(tm, test_poll_timeout_honours_timer, 0, NBACKENDS);
	tcase_add_loop_test(tm, test_timer_frees_owner, 0, NBACKENDS);
	suite_add_tcase(s, io);
	suite_add_tcase(s, shards);
	suite_add_tcase(s, tm);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(loop_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
