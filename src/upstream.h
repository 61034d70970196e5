/* upstream.h - connections to origins: non-blocking connect, and the per-worker pool of idle
 * keep-alive connections keyed by (host, port). */
#ifndef FERRY_UPSTREAM_H
#define FERRY_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include "dns.h"
#include "freelist.h"
#include "loop.h"

/* The address an upstream connection went to (IPv4 or IPv6). */
union upstream_addr {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

/* Start a non-blocking connect to addr. Returns the fd (connect in progress or done) or -1
 * with errno set. The fd is close-on-exec with TCP_NODELAY. */
int upstream_connect(const struct sockaddr *addr, socklen_t addrlen);
/* After the fd became writable: FERRY_OK when connected, FERRY_AGAIN when the connect is
 * still in progress (a stale event), else FERRY_ERR with errno set. */
int upstream_connect_result(int fd);

#define UPSTREAM_HOST_MAX 256

struct upstream_idle;

struct upstream_pool {
	struct loop *loop;
	struct timer_list *timers;  /* pool_idle */
	struct upstream_idle **buckets;
	size_t nbuckets;
	size_t count, max;          /* idle connections held, and the bound */
	struct upstream_idle *lru_head, *lru_tail; /* private: oldest first, for eviction */
	struct freelist spare;        /* private: entries kept for reuse */
	uint64_t hits, misses;
	uint64_t peeks;             /* reuses the loop could not vouch for, checked with recv */
};

/* max: idle connections kept per worker. FERRY_OK or FERRY_ERR. */
int upstream_pool_init(struct upstream_pool *p, struct loop *loop, unsigned pool_idle_ms, size_t max);
/* Closes every idle connection. */
void upstream_pool_destroy(struct upstream_pool *p);
/* An idle connection to (host, port) whose address is one of addrs[0..naddrs) (what the name
 * resolves to now), most recently used first, or -1; *addr gets its address. The caller owns it
 * from now on; it is still registered with the loop, watched for LOOP_READ, and the caller
 * gives it its own handler (loop_set_handler): moving a connection in and out of the pool
 * costs no loop system call. Nothing waits on it: one with bytes or a FIN is closed, never
 * handed out. A poll of it since it was put vouches for that (loop_quiet_since); without one,
 * a recv(MSG_PEEK) looks. */
int upstream_pool_get(struct upstream_pool *p, const char *host, size_t hostlen, uint16_t port,
		      const union dns_sockaddr *addrs, int naddrs, union upstream_addr *addr);
/* Hand an idle connection (response complete, nothing pending) to the pool; the pool watches
 * it and closes it when the origin closes or sends anything, at pool_idle, or to make room.
 * The fd may be registered with the loop (its handler and events are taken over) or not. */
void upstream_pool_put(struct upstream_pool *p, int fd, const char *host, size_t hostlen, uint16_t port,
		       const union upstream_addr *addr);
/* Is a the same address and port as the sockaddr b? */
int upstream_addr_eq(const union upstream_addr *a, const struct sockaddr *b);

#endif
