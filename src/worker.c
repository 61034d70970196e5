/* worker.c - one worker thread: owns a loop, its connections, timers, DNS channel, upstream
 * pool and buffer pool. The only shared state is the inbox (a mutex-protected array the
 * acceptor appends to) and two atomics (the stop request and the connection count). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "auth.h"
#include "conn.h"
#include "dns.h"
#include "log.h"
#include "status.h"
#include "worker.h"

#define POOL_MAX 1024

static void worker_on_wake(struct loop *loop, int fd, int events, void *arg);

#define TICK_MS 1000 /* the access log is flushed at least this often */

void worker_publish(struct worker *w)
{
	static const enum stats_counter keys[5] = { STATS_POOL_HITS, STATS_POOL_MISSES, STATS_DNS_HITS,
						    STATS_DNS_MISSES, STATS_DNS_FAILURES };
	struct dns_stats d = { 0, 0, 0 };
	if (w->dns)
		dns_get_stats(w->dns, &d);
	uint64_t now[5] = { w->pool.hits, w->pool.misses, d.cache_hits, d.cache_misses, d.failures };
	for (int i = 0; i < 5; i++) {
		if (now[i] != w->published[i]) {
			stats_add(w->st, keys[i], now[i] - w->published[i]);
			w->published[i] = now[i];
		}
	}
	stats_gauge_set(w->st, STATS_G_POOL_IDLE, (int64_t)w->pool.count);
}

static void worker_on_tick(struct loop *loop, struct timer *t)
{
	struct worker *w = (struct worker *)((char *)t - offsetof(struct worker, tick));
	accesslog_flush(&w->alog);
	worker_publish(w);
	struct timer_list *tl = loop_timer_list(loop, TICK_MS); /* exists: made by worker_init */
	if (tl)
		timer_arm(loop, t, tl);
}

static void worker_on_stop_timer(struct loop *loop, struct timer *t)
{
	struct worker *w = (struct worker *)((char *)t - offsetof(struct worker, stop_timer));
	log_info("worker %d: shutdown timeout, closing %d connections", w->id, atomic_load(&w->nconns));
	conn_close_all(w);
}

int worker_init(struct worker *w, int id, const struct config *cfg, int maxfds, char *err, size_t errlen)
{
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->cfg = cfg;
	w->wake_fd = -1;
	w->accept_wake_fd = -1;
	pthread_mutex_init(&w->lock, NULL);
	w->st = stats_worker_slot(id, &w->st_local);
	atomic_init(&w->stop, 0);
	atomic_init(&w->nconns, 0);

	enum loop_backend be = cfg->multiplexer == CONFIG_MUX_POLL ? LOOP_BACKEND_POLL
			       : cfg->multiplexer == CONFIG_MUX_EPOLL ? LOOP_BACKEND_EPOLL
			       : LOOP_BACKEND_AUTO;
	w->loop = loop_create(be, maxfds, err, errlen);
	if (w->loop == NULL)
		goto fail;
	w->tl_request_header = loop_timer_list(w->loop, cfg->request_header_ms);
	w->tl_client_idle = loop_timer_list(w->loop, cfg->client_idle_ms);
	w->tl_connect = loop_timer_list(w->loop, cfg->connect_ms);
	w->tl_upstream_idle = loop_timer_list(w->loop, cfg->upstream_idle_ms);
	w->tl_tunnel_idle = loop_timer_list(w->loop, cfg->tunnel_idle_ms);
	w->tl_linger = loop_timer_list(w->loop, 2000);
	if (!w->tl_request_header || !w->tl_client_idle || !w->tl_connect || !w->tl_upstream_idle ||
	    !w->tl_tunnel_idle || !w->tl_linger) {
		snprintf(err, errlen, "too many timer lists");
		goto fail;
	}
	timer_init(&w->stop_timer, worker_on_stop_timer);
	timer_init(&w->tick, worker_on_tick);
	struct timer_list *tick = loop_timer_list(w->loop, TICK_MS);
	if (tick == NULL) {
		snprintf(err, errlen, "too many timer lists");
		goto fail;
	}
	timer_arm(w->loop, &w->tick, tick);
	buf_pool_init(&w->bufs, 256);
	pipe_pool_init(&w->pipes, 32);
	if (upstream_pool_init(&w->pool, w->loop, cfg->pool_idle_ms, POOL_MAX) != FERRY_OK) {
		snprintf(err, errlen, "upstream pool: out of memory");
		goto fail;
	}
	w->dns = dns_create(w->loop, cfg->dns_ms, cfg->dns_cache_size, cfg->dns_servers, err,
			    errlen);
	if (w->dns == NULL)
		goto fail;
	if (cfg->auth) {
		w->auth = auth_verifier_create(w->loop, err, errlen);
		if (w->auth == NULL)
			goto fail;
	}
	w->fields = calloc(cfg->header_fields, sizeof(*w->fields));
	if (w->fields == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	w->limits.request_line = cfg->request_line;
	w->limits.head_size = cfg->request_header_size;
	w->limits.max_fields = cfg->header_fields;
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->wake_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (loop_add(w->loop, w->wake_fd, LOOP_READ, worker_on_wake, w) != FERRY_OK) {
		snprintf(err, errlen, "loop_add: %s", strerror(errno));
		goto fail;
	}
	return FERRY_OK;
fail:
	worker_destroy(w);
	return FERRY_ERR;
}

/* Take every queued client: swap the inbox out under the lock, then work without it. */
static void worker_on_wake(struct loop *loop, int fd, int events, void *arg)
{
	struct worker *w = arg;
	uint64_t v;
	if (read(w->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_error("worker %d: read eventfd: %s", w->id, strerror(errno));

	/* swap the inbox with the (empty) spare array under the lock, so the acceptor is held
	 * up for two pointer swaps, not for the accepting of the whole batch */
	pthread_mutex_lock(&w->lock);
	struct worker_handoff *batch = w->inbox;
	size_t n = w->inbox_len, cap = w->inbox_cap;
	w->inbox = w->spare;
	w->inbox_cap = w->spare_cap;
	w->inbox_len = 0;
	pthread_mutex_unlock(&w->lock);
	for (size_t i = 0; i < n; i++)
		conn_accept(w, &batch[i]);
	w->spare = batch;
	w->spare_cap = cap;

	int stop = atomic_load(&w->stop);
	if (stop == 2) {
		conn_close_all(w);
		w->stopping = 1;
	} else if (stop == 1 && !w->stopping) {
		w->stopping = 1;
		conn_drain_idle(w);
		if (atomic_load(&w->nconns) > 0) {
			struct timer_list *tl = loop_timer_list(w->loop, w->cfg->shutdown_ms);
			if (tl)
				timer_arm(w->loop, &w->stop_timer, tl);
			else
				conn_close_all(w);
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	while (!(w->stopping && atomic_load(&w->nconns) == 0)) {
		int timeout = dns_next_timeout(w->dns);
		if (loop_run_once(w->loop, timeout) == FERRY_ERR) {
			log_error("worker %d: event loop: %s", w->id, strerror(errno));
			break;
		}
		dns_process_timeouts(w->dns);
	}
	conn_close_all(w);
	accesslog_flush(&w->alog); /* the lines of the connections just closed, too */
	worker_publish(w);
	atomic_store(&w->exited, 1);
	return NULL;
}

int worker_start(struct worker *w)
{
	int e = pthread_create(&w->thread, NULL, worker_main, w);
	if (e != 0) {
		errno = e;
		return FERRY_ERR;
	}
	return FERRY_OK;
}

int worker_handoff(struct worker *w, const struct worker_handoff *h)
{
	pthread_mutex_lock(&w->lock);
	if (w->inbox_len == w->inbox_cap) {
		size_t cap = w->inbox_cap ? w->inbox_cap * 2 : 64;
		struct worker_handoff *n = realloc(w->inbox, cap * sizeof(*n));
		if (n == NULL) {
			pthread_mutex_unlock(&w->lock);
			return FERRY_ERR;
		}
		w->inbox = n;
		w->inbox_cap = cap;
	}
	int was_empty = w->inbox_len == 0;
	w->inbox[w->inbox_len++] = *h;
	pthread_mutex_unlock(&w->lock);
	atomic_fetch_add(&w->nconns, 1);
	/* one wake-up per batch: a worker that has not drained its inbox yet will see this one */
	if (was_empty) {
		uint64_t one = 1;
		if (write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_error("worker %d: write eventfd: %s", w->id, strerror(errno));
	}
	return FERRY_OK;
}

void worker_request_stop(struct worker *w, int now)
{
	atomic_store(&w->stop, now ? 2 : 1);
	uint64_t one = 1;
	if (write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("worker %d: write eventfd: %s", w->id, strerror(errno));
}

void worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
}

void worker_conn_closed(struct worker *w)
{
	atomic_fetch_sub(&w->nconns, 1);
	if (w->paused && atomic_load(w->paused) && w->accept_wake_fd >= 0) {
		uint64_t one = 1;
		if (write(w->accept_wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_error("worker %d: write eventfd: %s", w->id, strerror(errno));
	}
}

void worker_destroy(struct worker *w)
{
	if (w->loop) {
		conn_close_all(w);
		timer_disarm(&w->tick);
		accesslog_buf_free(&w->alog);
		if (w->auth)
			auth_verifier_destroy(w->auth);
		if (w->dns)
			dns_destroy(w->dns);
		upstream_pool_destroy(&w->pool);
		if (w->st)
			stats_gauge_set(w->st, STATS_G_POOL_IDLE, 0);
		buf_pool_destroy(&w->bufs);
		pipe_pool_destroy(&w->pipes);
		if (w->wake_fd >= 0)
			loop_del(w->loop, w->wake_fd);
		loop_destroy(w->loop);
	}
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	/* clients still queued were never served */
	for (size_t i = 0; i < w->inbox_len; i++)
		close(w->inbox[i].fd);
	free(w->inbox);
	free(w->spare);
	free(w->fields);
	pthread_mutex_destroy(&w->lock);
	memset(w, 0, sizeof(*w));
	w->wake_fd = -1;
}
