/* test_upstream.c - the idle connection pool (src/upstream.c): what it hands back for reuse.
 *
 * Connections are socketpairs: the pool only needs a stream socket, and a pair lets the test
 * play the origin deterministically (no timing, no network). The loop mostly never runs, which
 * is the point: bytes or a FIN the loop has not reported yet must still keep a connection out
 * of reuse. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "loop.h"
#include "status.h"
#include "upstream.h"

static struct loop *loop;
static struct upstream_pool pool;
static union upstream_addr addr;
static union dns_sockaddr addrs[1];

static void setup(void)
{
	char err[128];

	loop = loop_create(LOOP_BACKEND_POLL, 64, err, sizeof(err));
	ck_assert_msg(loop != NULL, "loop_create: %s", err);
	ck_assert_int_eq(upstream_pool_init(&pool, loop, 30000, 16), FERRY_OK);
	memset(&addr, 0, sizeof(addr));
	addr.in4.sin_family = AF_INET;
	addr.in4.sin_port = htons(80);
	addr.in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(addrs, 0, sizeof(addrs));
	addrs[0].in4 = addr.in4;
}

static void teardown(void)
{
	upstream_pool_destroy(&pool);
	loop_destroy(loop);
}

/* A connection pair: *ours goes into the pool, the returned fd plays the origin. */
static int pair(int *ours)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	*ours = sv[0];
	return sv[1];
}

static int get(void)
{
	union upstream_addr got;

	return upstream_pool_get(&pool, "origin", 6, 80, addrs, 1, &got);
}

static void put(int fd)
{
	upstream_pool_put(&pool, fd, "origin", 6, 80, &addr);
}

/* Has the pool closed our end? The origin's side then reads EOF, or a reset when bytes it
 * sent were left unread (AF_UNIX); EAGAIN means the connection is still open. */
static int closed_by_pool(int origin)
{
	char b;
	ssize_t n = recv(origin, &b, 1, MSG_DONTWAIT);

	return n == 0 || (n < 0 && errno == ECONNRESET);
}

START_TEST(quiet_connection_reused)
{
	int fd, origin = pair(&fd);

	put(fd);
	ck_assert_int_eq(get(), fd);
	ck_assert_int_eq(get(), -1); /* taken: the pool holds no other */
	close(fd);
	close(origin);
}
END_TEST

/* The origin sent more after its response (ferry spliced the body to its exact length, so
 * the rest stayed in the socket): reused, those bytes would be read as the answer to the next
 * request, maybe another client's. */
START_TEST(stray_bytes_never_reused)
{
	int fd, origin = pair(&fd);
	static const char extra[] = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nSMUGGLE";

	put(fd);
	ck_assert_int_eq(write(origin, extra, sizeof(extra) - 1), (ssize_t)sizeof(extra) - 1);
	ck_assert_int_eq(get(), -1);
	ck_assert_msg(closed_by_pool(origin), "the connection with stray bytes was not closed");
	close(origin);
}
END_TEST

START_TEST(closed_by_origin_never_reused)
{
	int fd, origin = pair(&fd);

	put(fd);
	close(origin);
	ck_assert_int_eq(get(), -1);
}
END_TEST

/* The newest idle connection has stray bytes: it is dropped and the older, quiet one is
 * handed out instead of a miss. */
START_TEST(next_connection_after_a_dropped_one)
{
	int quiet, noisy;
	int quiet_origin = pair(&quiet), noisy_origin = pair(&noisy);

	put(quiet);
	put(noisy);
	ck_assert_int_eq(write(noisy_origin, "x", 1), 1);
	ck_assert_int_eq(get(), quiet);
	ck_assert_msg(closed_by_pool(noisy_origin), "the noisy connection was not closed");
	ck_assert_int_eq(get(), -1);
	close(quiet);
	close(quiet_origin);
	close(noisy_origin);
}
END_TEST

/* A poll of the pooled connection since it came in that found nothing vouches for it: reused
 * without a recv, and preferred. Put and taken in the same round, or with the poll reporting it, it is
 * looked at (and a noisy one dropped, even when its turn in the round has not come yet). */
START_TEST(loop_vouches_for_polled_connections)
{
	int fd, origin = pair(&fd);

	put(fd);
	ck_assert_int_ge(loop_run_once(loop, 0), 0); /* a round: nothing on it */
	ck_assert_int_eq(get(), fd);
	ck_assert_uint_eq(pool.peeks, 0);
	put(fd);
	ck_assert_int_eq(get(), fd); /* the same round: not polled since the put */
	ck_assert_uint_eq(pool.peeks, 1);
	close(fd);
	close(origin);

	/* bytes arrive, a round's poll reports them, and the connection is asked for by a
	 * callback that runs before the pool's own in that round: the stamp of the round keeps
	 * it from being vouched for, and the recv finds the bytes */
	int fd2, origin2 = pair(&fd2);
	put(fd2);
	ck_assert_int_ge(loop_run_once(loop, 0), 0);
	ck_assert_int_eq(write(origin2, "x", 1), 1);
	ck_assert_int_eq(loop_quiet_since(loop, fd2, loop_round(loop) - 1), 1); /* not polled yet */
	ck_assert_int_eq(loop_run_once(loop, 0), 1);  /* the pool's handler drops it */
	ck_assert_msg(closed_by_pool(origin2), "the noisy connection was not closed");
	ck_assert_int_eq(get(), -1);
	close(origin2);

	/* of two idle connections, the one a poll vouches for goes first, even when older:
	 * no recv for it */
	int old, young, old_origin = pair(&old), young_origin = pair(&young);
	put(old);
	ck_assert_int_ge(loop_run_once(loop, 0), 0);
	put(young);
	uint64_t peeks = pool.peeks;
	ck_assert_int_eq(get(), old);
	ck_assert_uint_eq(pool.peeks, peeks);
	ck_assert_int_eq(get(), young); /* then the other, looked at */
	ck_assert_uint_eq(pool.peeks, peeks + 1);
	close(old);
	close(young);
	close(old_origin);
	close(young_origin);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("upstream");
	TCase *tc = tcase_create("pool");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, quiet_connection_reused);
	tcase_add_test(tc, stray_bytes_never_reused);
	tcase_add_test(tc, closed_by_origin_never_reused);
	tcase_add_test(tc, next_connection_after_a_dropped_one);
	tcase_add_test(tc, loop_vouches_for_polled_connections);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
