/* test_stream.c - HTTP relay under volume and over time: 1 GiB streamed both ways with flat
 * memory, upgrades becoming tunnels, the upstream pool's idle expiry, and the retry of a safe
 * request whose pooled connection the origin closed as it was reused. */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "status.h"

static const char *const muxes[] = { "poll", "epoll" };
static struct harness_origin origin;
static struct harness_ferry ferry;

static void teardown(void)
{
	harness_cleanup();
}

static void start(int mux, const char *extra_section, const char *key, const char *value)
{
	ck_assert_int_eq(harness_origin_start(&origin), FERRY_OK);
	struct harness_conf c;
	harness_conf_base(&c, muxes[mux], &origin);
	harness_conf_set(&c, "server", "processes", "1");
	harness_conf_set(&c, "server", "threads", "1");
	if (extra_section)
		harness_conf_set(&c, extra_section, key, value);
	ck_assert_int_eq(harness_ferry_start(&ferry, &c), FERRY_OK);
	/* the port answers once the master listens; the child may still be on its way */
	ck_assert_int_gt(harness_ferry_child(&ferry, 5000), 0);
}

static void stop(void)
{
	ck_assert_int_eq(harness_ferry_stop(&ferry), 0);
	harness_origin_stop(&origin);
}

/* Resident KiB of ferry's (only) child process. */
static long child_rss_kib(void)
{
	return harness_proc_status_kb(harness_ferry_child(&ferry, 5000), "VmRSS");
}

#define GIB (1024ULL * 1024 * 1024)

/* 1 GiB download: every byte arrives, the pattern holds, ferry's memory stays flat. */
START_TEST(download_1gib_flat_memory)
{
	start(_i, NULL, NULL, NULL);
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	char req[256];
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/big/%llu HTTP/1.1\r\nHost: x\r\n\r\n",
		 origin.port, GIB);
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	/* skip the head */
	ck_assert_uint_gt(harness_read_atleast(&c, 4, HARNESS_TIMEOUT_MS), 0);
	char *end = NULL;
	while ((end = memmem(c.buf, c.len, "\r\n\r\n", 4)) == NULL && !c.eof && !c.err)
		harness_read_atleast(&c, c.len + 1, HARNESS_TIMEOUT_MS);
	ck_assert_ptr_nonnull(end);
	ck_assert_msg(strncmp(c.buf, "HTTP/1.1 200", 12) == 0, "%.40s", c.buf);
	size_t head = (size_t)(end + 4 - c.buf);
	unsigned long long got = c.len - head;
	for (size_t i = head; i < c.len; i++)
		ck_assert_int_eq(c.buf[i], 'a' + (int)((i - head) % 26));
	long rss0 = child_rss_kib(), rss_max = rss0;
	char buf[1 << 16];
	int checks = 0;
	while (got < GIB) {
		struct pollfd p = { c.fd, POLLIN, 0 };
		ck_assert_int_gt(poll(&p, 1, HARNESS_TIMEOUT_MS), 0);
		ssize_t r = read(c.fd, buf, sizeof(buf));
		ck_assert_int_gt(r, 0);
		/* spot-check the pattern: the first byte of every read */
		ck_assert_int_eq(buf[0], 'a' + (int)(got % 26));
		got += (unsigned long long)r;
		if (++checks % 2048 == 0) {
			long rss = child_rss_kib();
			if (rss > rss_max)
				rss_max = rss;
		}
	}
	ck_assert_uint_eq(got, GIB);
	ck_assert_msg(rss_max - rss0 < 8192, "ferry grew from %ld to %ld KiB while relaying", rss0, rss_max);
	harness_close(&c);
	stop();
}
END_TEST

/* Read the origin's answer to a POST /sink: it must have counted len bytes of the pattern. */
static void expect_sink(struct harness_conn *c, unsigned long long len)
{
	struct harness_resp r;
	ck_assert_int_eq(harness_read_response(c, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	unsigned long long total = 0;
	int pattern = 0;
	ck_assert_int_eq(sscanf(r.body, "%llu %d", &total, &pattern), 2);
	ck_assert_uint_eq(total, len);
	ck_assert_int_eq(pattern, 1);
	harness_resp_free(&r);
}

/* 1 GiB upload with Content-Length: the origin counts every byte and checks the pattern. */
START_TEST(upload_1gib_flat_memory)
{
	start(_i, NULL, NULL, NULL);
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	char req[256];
	snprintf(req, sizeof(req),
		 "POST http://127.0.0.1:%d/sink HTTP/1.1\r\nHost: x\r\nContent-Length: %llu\r\n\r\n",
		 origin.port, GIB);
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	char *block = harness_pattern(26 * 2521); /* a multiple of 26: the pattern continues */
	size_t blen = 26 * 2521;
	unsigned long long sent = 0;
	long rss0 = child_rss_kib(), rss_max = rss0;
	int n = 0;
	while (sent < GIB) {
		size_t k = GIB - sent < blen ? (size_t)(GIB - sent) : blen;
		ck_assert_int_eq(harness_send(&c, block, k), FERRY_OK);
		sent += k;
		if (++n % 1024 == 0) {
			long rss = child_rss_kib();
			if (rss > rss_max)
				rss_max = rss;
		}
	}
	free(block);
	expect_sink(&c, GIB);
	ck_assert_msg(rss_max - rss0 < 8192, "ferry grew from %ld to %ld KiB while relaying", rss0, rss_max);
	harness_close(&c);
	stop();
}
END_TEST

/* Long uploads of known length go through a pipe, exactly their length: two of them and a
 * GET, all in one write on one keep-alive connection, arrive whole and in order, and the
 * requests behind each body are read as requests, not as more body. */
START_TEST(uploads_spliced_then_pipelined_request)
{
	start(_i, NULL, NULL, NULL);
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	static const size_t lens[2] = { 3u << 20, 200000 + 7 };
	char *body = harness_pattern(lens[0]);
	char *out = malloc(lens[0] + lens[1] + 1024);
	ck_assert_ptr_nonnull(out);
	size_t n = 0;
	for (int i = 0; i < 2; i++) {
		n += (size_t)sprintf(out + n, "POST http://127.0.0.1:%d/sink HTTP/1.1\r\nHost: x\r\n"
				     "Content-Length: %zu\r\n\r\n", origin.port, lens[i]);
		memcpy(out + n, body, lens[i]);
		n += lens[i];
	}
	n += (size_t)sprintf(out + n, "GET http://127.0.0.1:%d/len/30 HTTP/1.1\r\nHost: x\r\n\r\n",
			     origin.port);
	char *in = NULL;
	size_t inlen = 0;
	harness_pump(&c, out, n, 0, 0, &in, &inlen, 30000);
	free(in);
	for (int i = 0; i < 2; i++)
		expect_sink(&c, lens[i]);
	struct harness_resp r;
	ck_assert_int_eq(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.body_len, 30);
	harness_resp_free(&r);
	free(out);
	free(body);
	harness_close(&c);
	stop();
}
END_TEST

/* A chunked upload is relayed as it comes and arrives whole. */
START_TEST(upload_chunked_64mib)
{
	start(_i, NULL, NULL, NULL);
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	char req[256];
	snprintf(req, sizeof(req),
		 "POST http://127.0.0.1:%d/sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		 origin.port);
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	size_t blen = 26 * 1000;
	char *block = harness_pattern(blen);
	unsigned long long sent = 0, want = 64ULL << 20;
	while (sent < want) {
		size_t k = want - sent < blen ? (size_t)(want - sent) : blen;
		char size[32];
		snprintf(size, sizeof(size), "%zx\r\n", k);
		ck_assert_int_eq(harness_send_str(&c, size), FERRY_OK);
		ck_assert_int_eq(harness_send(&c, block, k), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c, "\r\n"), FERRY_OK);
		sent += k;
	}
	ck_assert_int_eq(harness_send_str(&c, "0\r\n\r\n"), FERRY_OK);
	free(block);
	expect_sink(&c, want);
	harness_close(&c);
	stop();
}
END_TEST

/* Connection: upgrade + Upgrade: websocket -> 101, then the connection is a tunnel. */
START_TEST(websocket_upgrade_tunnel)
{
	start(_i, NULL, NULL, NULL);
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	char req[300];
	snprintf(req, sizeof(req),
		 "GET http://127.0.0.1:%d/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
		 "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n", origin.port);
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	struct harness_resp r;
	ck_assert_int_eq(harness_read_response(&c, &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 101);
	ck_assert(harness_resp_has_token(&r, "Connection", "upgrade"));
	ck_assert_str_eq(harness_resp_header(&r, "Upgrade"), "websocket");
	harness_resp_free(&r);
	char *in = NULL;
	size_t inlen = 0;
	const char frames[] = "\x81\x04ping and more bytes both ways";
	ck_assert_int_eq(harness_pump(&c, frames, sizeof(frames) - 1, 1, (size_t)-1, &in, &inlen,
				      HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_uint_eq(inlen, sizeof(frames) - 1);
	ck_assert(memcmp(in, frames, inlen) == 0);
	free(in);
	harness_close(&c);
	stop();
}
END_TEST

/* Upgrade not listed in Connection, or h2c: the origin never sees an Upgrade field. */
START_TEST(upgrade_without_connection_token_dropped)
{
	start(_i, NULL, NULL, NULL);
	struct harness_resp r;
	char req[300];
	snprintf(req, sizeof(req),
		 "GET http://127.0.0.1:%d/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", origin.port);
	ck_assert_int_eq(harness_request(ferry.port, req, &r, 0), FERRY_OK);
	ck_assert_int_eq(r.status, 426);
	harness_resp_free(&r);
	snprintf(req, sizeof(req),
		 "GET http://127.0.0.1:%d/headers HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
		 "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", origin.port);
	ck_assert_int_eq(harness_request(ferry.port, req, &r, 0), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_null(strcasestr(r.body, "\nUpgrade:"));
	ck_assert_ptr_null(strcasestr(r.body, "\nHTTP2-Settings:"));
	harness_resp_free(&r);
	stop();
}
END_TEST

static unsigned long conn_serial(void)
{
	struct harness_resp r;
	char req[200];
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/conn HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ck_assert_int_eq(harness_request(ferry.port, req, &r, 0), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	unsigned long s = strtoul(r.body, NULL, 10);
	harness_resp_free(&r);
	return s;
}

/* Idle pooled connections are reused across clients, and dropped after pool_idle. */
START_TEST(pool_idle_expiry)
{
	start(_i, "timeouts", "pool_idle", "0.3");
	unsigned long a = conn_serial();
	unsigned long b = conn_serial();
	ck_assert_uint_eq(a, b); /* reused from the pool by the next client */
	struct timespec ts = { 0, 800 * 1000000L };
	nanosleep(&ts, NULL);
	unsigned long c = conn_serial();
	ck_assert_uint_ne(c, b); /* expired: a fresh connection */
	stop();
}
END_TEST

/* A fake origin that answers the first request on its first connection with keep-alive,
 * then closes that connection when the second request arrives on it (the race of an origin
 * closing an idle connection just as it is reused), and answers on a new connection. */
struct racer {
	int lfd;
	int port;
	int connections;
};

static void read_head(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
	while (n < cap - 1 && strstr(buf, "\r\n\r\n") == NULL) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 5000) <= 0)
			return;
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			return;
		n += (size_t)r;
		buf[n] = '\0';
	}
}

static void *racer_main(void *arg)
{
	struct racer *rc = arg;
	char buf[4096];
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst";
	static const char ok2[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond";
	int fd = accept(rc->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	rc->connections++;
	read_head(fd, buf, sizeof(buf));
	if (write(fd, ok, sizeof(ok) - 1) < 0)
		return NULL;
	read_head(fd, buf, sizeof(buf)); /* the reuse arrives... */
	close(fd);                      /* ...and the origin closes without answering */
	fd = accept(rc->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	rc->connections++;
	read_head(fd, buf, sizeof(buf));
	if (write(fd, ok2, sizeof(ok2) - 1) < 0)
		return NULL;
	read_head(fd, buf, sizeof(buf));
	close(fd);
	return NULL;
}

START_TEST(retry_idempotent_on_reused_connection)
{
	struct racer rc = { 0 };
	rc.lfd = harness_listen(0, 16, &rc.port);
	ck_assert_int_ge(rc.lfd, 0);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, racer_main, &rc), 0);
	struct harness_conf c;
	harness_conf_base(&c, muxes[_i], NULL);
	harness_conf_set(&c, "server", "threads", "1");
	ck_assert_int_eq(harness_ferry_start(&ferry, &c), FERRY_OK);
	struct harness_conn k;
	ck_assert_int_eq(harness_connect(&k, ferry.port), FERRY_OK);
	char req[200];
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/a HTTP/1.1\r\nHost: x\r\n\r\n", rc.port);
	struct harness_resp r;
	ck_assert_int_eq(harness_send_str(&k, req), FERRY_OK);
	ck_assert_int_eq(harness_read_response(&k, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_str_eq(r.body, "first");
	harness_resp_free(&r);
	ck_assert_int_eq(harness_send_str(&k, req), FERRY_OK);
	ck_assert_int_eq(harness_read_response(&k, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "second");
	harness_resp_free(&r);
	harness_close(&k);
	pthread_join(t, NULL);
	ck_assert_int_eq(rc.connections, 2);
	close(rc.lfd);
	ck_assert_int_eq(harness_ferry_stop(&ferry), 0);
}
END_TEST


/* "Connection: content-length" (or transfer-encoding) must not strip the framing ferry relays
 * the body by: the origin would read the body as a second request. */
START_TEST(connection_cannot_strip_framing)
{
	start(_i, NULL, NULL, NULL);
	struct harness_resp r;
	char req[400];
	const char body[] = "GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n";
	snprintf(req, sizeof(req),
		 "POST http://127.0.0.1:%d/headers HTTP/1.1\r\nHost: x\r\nConnection: content-length\r\n"
		 "Content-Length: %zu\r\n\r\n%s", origin.port, sizeof(body) - 1, body);
	ck_assert_int_eq(harness_request(ferry.port, req, &r, 0), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	char want[64];
	snprintf(want, sizeof(want), "\r\nContent-Length: %zu\r\n", sizeof(body) - 1);
	ck_assert_msg(strcasestr(r.body, want) != NULL, "origin saw: %s", r.body);
	harness_resp_free(&r);
	snprintf(req, sizeof(req),
		 "POST http://127.0.0.1:%d/echo HTTP/1.1\r\nHost: x\r\nConnection: transfer-encoding\r\n"
		 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", origin.port);
	ck_assert_int_eq(harness_request(ferry.port, req, &r, 0), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "hello");
	harness_resp_free(&r);
	/* the same from the origin's side */
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/raw/conn_te HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ck_assert_int_eq(harness_request(ferry.port, req, &r, 0), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert(r.complete);
	ck_assert_str_eq(harness_resp_header(&r, "Transfer-Encoding"), "chunked");
	ck_assert_str_eq(r.body, "hello");
	harness_resp_free(&r);
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/raw/conn_cl HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ck_assert_int_eq(harness_request(ferry.port, req, &r, 0), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert(r.complete);
	ck_assert_str_eq(harness_resp_header(&r, "Content-Length"), "5");
	ck_assert_str_eq(r.body, "hello");
	harness_resp_free(&r);
	stop();
}
END_TEST

/* 128 MiB through a CONNECT tunnel to the echo server, both ways at once: nothing stalls. */
START_TEST(tunnel_bulk_both_ways)
{
	start(_i, NULL, NULL, NULL);
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	char req[200];
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", origin.echo_port);
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	struct harness_resp r;
	ck_assert_int_eq(harness_read_response(&c, &r, HARNESS_NOBODY, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	size_t n = 128u << 20;
	char *out = harness_pattern(n);
	char *in = NULL;
	size_t inlen = 0;
	ck_assert_int_eq(harness_pump(&c, out, n, 1, (size_t)-1, &in, &inlen, 60000), FERRY_OK);
	ck_assert_uint_eq(inlen, n);
	ck_assert(memcmp(in, out, n) == 0);
	ck_assert(c.eof);
	free(in);
	free(out);
	harness_close(&c);
	stop();
}
END_TEST

/* The origin answers (413, 1.5 MB) before reading an upload: the client gets the whole
 * answer, not a reset that destroys it. */
START_TEST(early_response_during_upload_arrives_whole)
{
	start(_i, NULL, NULL, NULL);
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	size_t blen = 5u << 20, want = 1500000;
	char req[256];
	snprintf(req, sizeof(req),
		 "POST http://127.0.0.1:%d/early/%zu HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
		 origin.port, want, blen);
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	char *out = harness_pattern(blen);
	char *in = NULL;
	size_t inlen = 0;
	harness_pump(&c, out, blen, 0, (size_t)-1, &in, &inlen, 30000);
	char *end = memmem(in, inlen, "\r\n\r\n", 4);
	ck_assert_ptr_nonnull(end);
	ck_assert_msg(strncmp(in, "HTTP/1.1 413", 12) == 0, "%.30s", in);
	size_t got = inlen - (size_t)(end + 4 - in);
	ck_assert_msg(got == want, "got %zu of the %zu-byte answer (err %d)", got, want, c.err);
	free(in);
	free(out);
	harness_close(&c);
	stop();
}
END_TEST

/* A close-delimited answer followed by many pipelined requests the client already sent: the
 * answer arrives whole and ends with a clean close, not a reset. */
START_TEST(close_delimited_with_pipelined_requests)
{
	start(_i, NULL, NULL, NULL);
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	size_t want = 1500000;
	char one[200];
	snprintf(one, sizeof(one), "GET http://127.0.0.1:%d/close/%zu HTTP/1.1\r\nHost: x\r\n\r\n",
		 origin.port, want);
	char more[200];
	int ml = snprintf(more, sizeof(more), "GET http://127.0.0.1:%d/len/1 HTTP/1.1\r\nHost: x\r\n\r\n",
			  origin.port);
	size_t total = strlen(one) + 1000 * (size_t)ml;
	char *out = malloc(total);
	ck_assert_ptr_nonnull(out);
	memcpy(out, one, strlen(one));
	for (int i = 0; i < 1000; i++)
		memcpy(out + strlen(one) + (size_t)i * (size_t)ml, more, (size_t)ml);
	char *in = NULL;
	size_t inlen = 0;
	harness_pump(&c, out, total, 0, (size_t)-1, &in, &inlen, 30000);
	char *end = memmem(in, inlen, "\r\n\r\n", 4);
	ck_assert_ptr_nonnull(end);
	size_t got = inlen - (size_t)(end + 4 - in);
	ck_assert_msg(got == want, "got %zu of %zu bytes (err %d)", got, want, c.err);
	ck_assert_msg(c.eof && c.err == 0, "not a clean close: err %d", c.err);
	free(in);
	free(out);
	harness_close(&c);
	stop();
}
END_TEST

/* Threads of pid named name (/proc/PID/task/TID/comm). */
static int count_named_threads(pid_t pid, const char *name)
{
	char path[300], comm[32];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if (!(d = opendir(path)))
		return -1;
	while ((e = readdir(d))) {
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (fgets(comm, sizeof(comm), f) && strncmp(comm, name, strlen(name)) == 0 &&
		    (comm[strlen(name)] == '\n' || comm[strlen(name)] == 0))
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

/* 400 CONNECT tunnels held open at once, then used one at a time (as bench's tunnels.py
 * does): 800 descriptors in ferry's one worker, so with poll several shards and their
 * helper threads (doc/design.md, "Event loop"). Every tunnel echoes its own bytes and ends
 * with a clean half-close both ways. */
#define NTUN 400
START_TEST(many_tunnels_one_at_a_time)
{
	static struct harness_conn c[NTUN];
	char req[200], msg[64];

	start(_i, NULL, NULL, NULL);
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n",
		 origin.echo_port);
	for (int i = 0; i < NTUN; i++) {
		ck_assert_int_eq(harness_connect(&c[i], ferry.port), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&c[i], req), FERRY_OK);
	}
	for (int i = 0; i < NTUN; i++) {
		struct harness_resp r;

		ck_assert_int_eq(harness_read_response(&c[i], &r, HARNESS_NOBODY,
						       HARNESS_TIMEOUT_MS), FERRY_OK);
		ck_assert_int_eq(r.status, 200);
		harness_resp_free(&r);
	}
	int helpers = count_named_threads(harness_ferry_child(&ferry, 5000), "ferry-pollshard");
	if (strcmp(muxes[_i], "poll") == 0)
		ck_assert_int_gt(helpers, 0);
	else
		ck_assert_int_eq(helpers, 0);
	for (int i = 0; i < NTUN; i++) {
		int len = snprintf(msg, sizeof(msg), "tunnel %d of %d\n", i, NTUN);
		char *got;

		ck_assert_int_eq(harness_send_str(&c[i], msg), FERRY_OK);
		ck_assert_uint_ge(harness_read_atleast(&c[i], (size_t)len, HARNESS_TIMEOUT_MS),
				  (size_t)len);
		got = harness_take(&c[i], (size_t)len);
		ck_assert_str_eq(got, msg);
		free(got);
	}
	for (int i = 0; i < NTUN; i++) {
		size_t n;
		char *rest;

		harness_shutdown_write(&c[i]);
		rest = harness_read_to_close(&c[i], &n, HARNESS_TIMEOUT_MS);
		ck_assert_uint_eq(n, 0);
		ck_assert_msg(c[i].eof, "tunnel %d: no clean close (err %d)", i, c[i].err);
		free(rest);
		harness_close(&c[i]);
	}
	stop();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stream");
	TCase *tc = tcase_create("stream");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_loop_test(tc, download_1gib_flat_memory, 0, 2);
	tcase_add_loop_test(tc, upload_1gib_flat_memory, 0, 2);
	tcase_add_loop_test(tc, uploads_spliced_then_pipelined_request, 0, 2);
	tcase_add_loop_test(tc, upload_chunked_64mib, 0, 2);
	tcase_add_loop_test(tc, websocket_upgrade_tunnel, 0, 2);
	tcase_add_loop_test(tc, upgrade_without_connection_token_dropped, 0, 2);
	tcase_add_loop_test(tc, pool_idle_expiry, 0, 2);
	tcase_add_loop_test(tc, retry_idempotent_on_reused_connection, 0, 2);
	tcase_add_loop_test(tc, connection_cannot_strip_framing, 0, 2);
	tcase_add_loop_test(tc, tunnel_bulk_both_ways, 0, 2);
	tcase_add_loop_test(tc, early_response_during_upload_arrives_whole, 0, 2);
	tcase_add_loop_test(tc, close_delimited_with_pipelined_requests, 0, 2);
	tcase_add_loop_test(tc, many_tunnels_one_at_a_time, 0, 2);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
