/* worker.h - one worker thread: an event loop and everything it owns (connections, timers,
 * the upstream pool, a DNS channel, a buffer pool). The acceptor hands it client sockets
 * through its inbox and wake-up eventfd; nothing on the request path is locked. */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "accesslog.h"
#include "buf.h"
#include "config.h"
#include "freelist.h"
#include "http_parse.h"
#include "loop.h"
#include "pipes.h"
#include "stats.h"
#include "upstream.h"

struct dns;
struct conn;
struct clients;
struct auth_verifier;

struct worker_handoff {
	int fd;
	int deny_status; /* 0, or the acceptor refused this client: 403 (ACL) or 429
			    (per_client): answer that and close */
	int counted;     /* counted in the per-client table: count it out when it closes */
	struct sockaddr_storage peer;
};

struct worker_stats {
	uint64_t accepted, requests, tunnels, errors;
	uint64_t status_class[6]; /* 1xx..5xx by index 1..5 */
};

struct worker {
	int id;
	pthread_t thread;
	const struct config *cfg;
	struct loop *loop;
	struct dns *dns;
	struct auth_verifier *auth; /* when [auth] htpasswd is set: checks off the loop */
	struct buf_pool bufs;
	struct pipe_pool pipes;
	struct upstream_pool pool;

	/* timer lists, one per kind of deadline */
	struct timer_list *tl_request_header, *tl_client_idle, *tl_connect, *tl_upstream_idle,
		*tl_tunnel_idle, *tl_linger;

	/* hand-off from the acceptor */
	int wake_fd; /* eventfd */
	pthread_mutex_t lock;
	struct worker_handoff *inbox;
	size_t inbox_len, inbox_cap;
	struct worker_handoff *spare; /* the worker's side of the double buffer */
	size_t spare_cap;
	atomic_int stop;     /* 1: graceful stop requested, 2: stop now */
	atomic_int nconns;   /* read by the acceptor to pick the least loaded worker */
	atomic_int exited;   /* the thread has left its loop */
	atomic_int *paused;  /* the acceptor's backpressure flag (shared) */
	struct clients *clients; /* per-client connection counts (shared, locked), or NULL */
	int accept_wake_fd;  /* written when a slot frees while the acceptor is paused */

	struct conn *conns;  /* every client connection of this worker (for shutdown) */
	struct freelist free_conns;    /* closed ones kept for reuse (conn.c), CONN_FREE_MAX */
	struct freelist free_connects; /* likewise for connect state, CONNECT_FREE_MAX */
	struct http_field *fields; /* scratch for head parsing: cfg->header_fields entries */
	struct http_limits limits;
	int stopping;
	struct timer stop_timer;
	struct worker_stats stats;

	/* observability: the shared counters this worker writes (stats.h; st_local when there
	 * is no shared region), its access log buffer, and a 1 s tick that flushes the buffer and
	 * publishes the pool's and the resolver's own counters */
	struct stats_worker *st;
	struct stats_worker st_local;
	struct accesslog_buf alog;
	struct timer tick;
	uint64_t published[5];
};

/* Create the worker's loop and resources (not the thread). FERRY_OK or FERRY_ERR with err. */
int worker_init(struct worker *w, int id, const struct config *cfg, int maxfds, char *err, size_t errlen);
int worker_start(struct worker *w);
/* Queue a client for the worker; wakes it when its inbox was empty. FERRY_ERR when out of memory
 * (the caller closes the fd). */
int worker_handoff(struct worker *w, const struct worker_handoff *h);
/* Ask the worker to stop: graceful (finish what is in flight, up to cfg->shutdown_ms) or now. */
void worker_request_stop(struct worker *w, int now);
void worker_join(struct worker *w);
void worker_destroy(struct worker *w);
/* Copy the upstream pool's and the resolver's counters into the shared slot: every second
 * (the tick) and when the worker exits, not per request (the request path stays lean; a
 * scrape sees them at most a second late). */
void worker_publish(struct worker *w);
/* Called by a connection when it ends (keeps nconns and backpressure right). */
void worker_conn_closed(struct worker *w);

#endif
