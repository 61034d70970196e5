/* test_handoff.c - the acceptor -> worker hand-off: sockets queued in a worker's inbox from
 * other threads are all served, connection counts rise and fall back to zero, and a worker
 * stops gracefully. Runs with both event-loop backends. Also a ThreadSanitizer target. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "acceptor.h"
#include "config.h"
#include "status.h"
#include "worker.h"

static const char *const backends[] = { "poll", "epoll" };

static void ignore_error(void *arg, const char *msg)
{
	fprintf(stderr, "config: %s\n", msg);
}

static struct config *make_config(int i)
{
	char text[256];
	snprintf(text, sizeof(text), "[server]\nmultiplexer = %s\n[access]\nblock_destinations =\n", backends[i]);
	struct config *cfg = config_load_string(text, "test", ignore_error, NULL);
	ck_assert_ptr_nonnull(cfg);
	return cfg;
}

/* Read until EOF (bounded) and return what came. */
static size_t read_all(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 5000) <= 0)
			break;
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == cap - 1)
			break;
	}
	buf[n] = '\0';
	return n;
}

static void wait_conns_zero(struct worker *w)
{
	for (int i = 0; i < 500 && atomic_load(&w->nconns) != 0; i++)
		usleep(10000);
	ck_assert_int_eq(atomic_load(&w->nconns), 0);
}

START_TEST(test_handoff_serves_client)
{
	struct config *cfg = make_config(_i);
	struct worker w;
	char err[256];
	ck_assert_int_eq(worker_init(&w, 0, cfg, 1024, err, sizeof(err)), FERRY_OK);
	ck_assert_int_eq(worker_start(&w), FERRY_OK);

	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	struct worker_handoff h;
	memset(&h, 0, sizeof(h));
	h.fd = sv[1];
	ck_assert_int_eq(worker_handoff(&w, &h), FERRY_OK);
	ck_assert_int_eq(atomic_load(&w.nconns), 1);

	/* origin-form is not for a proxy: the worker must answer 400 and close */
	const char req[] = "GET / HTTP/1.1\r\nHost: example.org\r\n\r\n";
	ck_assert_int_eq(write(sv[0], req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	char resp[4096];
	read_all(sv[0], resp, sizeof(resp));
	ck_assert_msg(strncmp(resp, "HTTP/1.1 400 ", 13) == 0, "got: %s", resp);
	ck_assert_ptr_nonnull(strstr(resp, "Connection: close\r\n"));
	close(sv[0]);
	wait_conns_zero(&w);

	worker_request_stop(&w, 0);
	worker_join(&w);
	ck_assert_int_eq(atomic_load(&w.exited), 1);
	worker_destroy(&w);
	config_free(cfg);
}
END_TEST

START_TEST(test_handoff_denied_gets_403)
{
	struct config *cfg = make_config(_i);
	struct worker w;
	char err[256];
	ck_assert_int_eq(worker_init(&w, 0, cfg, 1024, err, sizeof(err)), FERRY_OK);
	ck_assert_int_eq(worker_start(&w), FERRY_OK);
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	struct worker_handoff h;
	memset(&h, 0, sizeof(h));
	h.fd = sv[1];
	h.deny_status = 403;
	ck_assert_int_eq(worker_handoff(&w, &h), FERRY_OK);
	char resp[4096];
	read_all(sv[0], resp, sizeof(resp));
	ck_assert_msg(strncmp(resp, "HTTP/1.1 403 ", 13) == 0, "got: %s", resp);
	close(sv[0]);
	wait_conns_zero(&w);
	worker_request_stop(&w, 0);
	worker_join(&w);
	worker_destroy(&w);
	config_free(cfg);
}
END_TEST

#define PRODUCERS 4
#define PER_PRODUCER 100

struct producer {
	struct worker *workers;
	int nworkers;
	int client_fds[PER_PRODUCER];
	int index;
};

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	for (int i = 0; i < PER_PRODUCER; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) {
			p->client_fds[i] = -1;
			continue;
		}
		p->client_fds[i] = sv[0];
		struct worker_handoff h;
		memset(&h, 0, sizeof(h));
		h.fd = sv[1];
		worker_handoff(&p->workers[(p->index + i) % p->nworkers], &h);
	}
	return NULL;
}

/* Many threads hand off at once to two workers; every client gets its answer. */
START_TEST(test_handoff_concurrent)
{
	struct config *cfg = make_config(_i);
	struct worker w[2];
	char err[256];
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(worker_init(&w[i], i, cfg, 4096, err, sizeof(err)), FERRY_OK);
		ck_assert_int_eq(worker_start(&w[i]), FERRY_OK);
	}
	struct producer p[PRODUCERS];
	pthread_t t[PRODUCERS];
	for (int i = 0; i < PRODUCERS; i++) {
		p[i].workers = w;
		p[i].nworkers = 2;
		p[i].index = i;
		ck_assert_int_eq(pthread_create(&t[i], NULL, producer_main, &p[i]), 0);
	}
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(t[i], NULL);

	int answered = 0;
	const char req[] = "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n";
	for (int i = 0; i < PRODUCERS; i++)
		for (int j = 0; j < PER_PRODUCER; j++)
			if (p[i].client_fds[j] >= 0)
				ck_assert_int_eq(write(p[i].client_fds[j], req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	for (int i = 0; i < PRODUCERS; i++) {
		for (int j = 0; j < PER_PRODUCER; j++) {
			if (p[i].client_fds[j] < 0)
				continue;
			char resp[2048];
			read_all(p[i].client_fds[j], resp, sizeof(resp));
			if (strncmp(resp, "HTTP/1.1 400 ", 13) == 0)
				answered++;
			close(p[i].client_fds[j]);
		}
	}
	ck_assert_int_eq(answered, PRODUCERS * PER_PRODUCER);
	for (int i = 0; i < 2; i++) {
		wait_conns_zero(&w[i]);
		worker_request_stop(&w[i], 0);
		worker_join(&w[i]);
		worker_destroy(&w[i]);
	}
	config_free(cfg);
}
END_TEST

/* A graceful stop waits for a connection in the middle of a request, and closes idle ones. */
START_TEST(test_worker_graceful_stop)
{
	struct config *cfg = make_config(_i);
	struct worker w;
	char err[256];
	ck_assert_int_eq(worker_init(&w, 0, cfg, 1024, err, sizeof(err)), FERRY_OK);
	ck_assert_int_eq(worker_start(&w), FERRY_OK);
	int idle[2], busy[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, idle), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, busy), 0);
	struct worker_handoff h;
	memset(&h, 0, sizeof(h));
	h.fd = idle[1];
	worker_handoff(&w, &h);
	h.fd = busy[1];
	worker_handoff(&w, &h);
	/* half a request head on the busy one */
	ck_assert_int_eq(write(busy[0], "GET ", 4), 4);
	for (int i = 0; i < 100 && atomic_load(&w.nconns) != 2; i++)
		usleep(10000);
	usleep(50000);
	worker_request_stop(&w, 0);
	/* the idle connection is closed at once */
	char resp[256];
	ck_assert_uint_eq(read_all(idle[0], resp, sizeof(resp)), 0);
	ck_assert_int_eq(atomic_load(&w.exited), 0);
	/* the busy one finishes its request (an error here, so it closes after the answer) */
	const char rest[] = "/ HTTP/1.1\r\nHost: x\r\n\r\n";
	ck_assert_int_eq(write(busy[0], rest, sizeof(rest) - 1), (ssize_t)sizeof(rest) - 1);
	read_all(busy[0], resp, sizeof(resp));
	ck_assert_msg(strncmp(resp, "HTTP/1.1 400 ", 13) == 0, "got: %s", resp);
	close(busy[0]);
	close(idle[0]);
	worker_join(&w);
	ck_assert_int_eq(atomic_load(&w.exited), 1);
	worker_destroy(&w);
	config_free(cfg);
}
END_TEST

/* The listening socket hands a connection over only once the client has sent something
 * (TCP_DEFER_ACCEPT): the worker then reads the request in the wake-up that brings the
 * connection. On loopback connect() returns once the kernel has processed the final ACK, so
 * without the option the connection would already be waiting in the accept queue. */
START_TEST(test_listener_defers_accept)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int probe = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(probe, 0);
	ck_assert_int_eq(bind(probe, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(probe, (struct sockaddr *)&a, &alen), 0);
	close(probe);

	char text[128], err[256];
	snprintf(text, sizeof(text), "[server]\nlisten = 127.0.0.1:%d\n", ntohs(a.sin_port));
	struct config *cfg = config_load_string(text, "test", ignore_error, NULL);
	ck_assert_ptr_nonnull(cfg);
	int lfd = -1;
	ck_assert_msg(acceptor_bind(cfg, &lfd, err, sizeof(err)) == FERRY_OK, "%s", err);
	int secs = 0;
	socklen_t slen = sizeof(secs);
	ck_assert_int_eq(getsockopt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, &slen), 0);
	ck_assert_int_gt(secs, 0);
	/* and accepted connections delay their ACKs (the response carries the request's) */
	int quickack = 1;
	slen = sizeof(quickack);
	ck_assert_int_eq(getsockopt(lfd, IPPROTO_TCP, TCP_QUICKACK, &quickack, &slen), 0);
	ck_assert_int_eq(quickack, 0);

	int c = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(accept4(lfd, NULL, NULL, SOCK_NONBLOCK), -1);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_int_eq(write(c, "G", 1), 1);
	struct pollfd p = { lfd, POLLIN, 0 };
	ck_assert_int_eq(poll(&p, 1, 5000), 1); /* hang guard */
	int s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
	ck_assert_int_ge(s, 0);
	char ch;
	ck_assert_int_eq(read(s, &ch, 1), 1); /* the byte came with the connection */
	close(s);
	close(c);
	close(lfd);
	config_free(cfg);
}
END_TEST

static Suite *handoff_suite(void)
{
	Suite *s = suite_create("handoff");
	TCase *tc = tcase_create("handoff");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_handoff_serves_client, 0, 2);
	tcase_add_loop_test(tc, test_handoff_denied_gets_403, 0, 2);
	tcase_add_loop_test(tc, test_handoff_concurrent, 0, 2);
	tcase_add_loop_test(tc, test_worker_graceful_stop, 0, 2);
	tcase_add_test(tc, test_listener_defers_accept);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(handoff_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
