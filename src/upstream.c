/* upstream.c - non-blocking connects and the idle keep-alive pool.
 *
 * The pool is per worker (no locks): a small chained hash table keyed by (host, port), plus a
 * list in age order so the oldest connection is evicted when the pool is full. An idle
 * connection is watched for readability: an origin that closes it, or sends bytes nobody
 * asked for, makes it unusable, and it is dropped at once rather than handed to a request. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "status.h"
#include "upstream.h"

struct upstream_idle {
	struct timer timer;          /* first: the timer callback casts back */
	struct upstream_pool *pool;
	struct upstream_idle *hnext;  /* bucket chain, newest first */
	struct upstream_idle **hpprev; /* what points at it: unlinked in O(1) */
	struct upstream_idle *older, *newer; /* age list */
	int fd;
	uint16_t port;
	uint16_t hostlen;
	uint64_t put_round;           /* the loop round it came into the pool */
	union upstream_addr addr;
	char host[UPSTREAM_HOST_MAX]; /* fixed size, so entries are reused whatever the name */
};

/* Entries of idle connections are kept for reuse: every keep-alive request puts its upstream
 * connection back, and that should not cost a malloc. */
#define POOL_SPARE_MAX 64

static struct upstream_idle *pool_entry_alloc(struct upstream_pool *p)
{
	return freelist_get(&p->spare, sizeof(struct upstream_idle));
}

static void pool_entry_free(struct upstream_pool *p, struct upstream_idle *e)
{
	freelist_put(&p->spare, e, POOL_SPARE_MAX);
}

int upstream_addr_eq(const union upstream_addr *a, const struct sockaddr *b)
{
	if (a->sa.sa_family != b->sa_family)
		return 0;
	if (b->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)b;
		return a->in4.sin_port == x->sin_port && a->in4.sin_addr.s_addr == x->sin_addr.s_addr;
	}
	if (b->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)b;
		return a->in6.sin6_port == x->sin6_port &&
		       memcmp(&a->in6.sin6_addr, &x->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return 0;
}

int upstream_connect(const struct sockaddr *addr, socklen_t addrlen)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	/* requests and responses are written whole; Nagle would only add latency */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, addr, addrlen) < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int upstream_connect_result(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return FERRY_ERR;
	if (err != 0) {
		errno = err;
		return FERRY_ERR;
	}
	/* the event may be stale (meant for an earlier socket with the same number): only a
	 * socket with a peer is connected */
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return errno == ENOTCONN ? FERRY_AGAIN : FERRY_ERR;
	return FERRY_OK;
}

static size_t pool_hash(const char *host, size_t hostlen, uint16_t port, size_t nbuckets)
{
	uint64_t h = 1469598103934665603ULL ^ port; /* FNV-1a */
	for (size_t i = 0; i < hostlen; i++) {
		unsigned char c = (unsigned char)host[i];
		if (c >= 'A' && c <= 'Z')
			c += 32;
		h = (h ^ c) * 1099511628211ULL;
	}
	return (size_t)(h % nbuckets);
}

static int host_eq(const char *a, const char *b, size_t len)
{
	return strncasecmp(a, b, len) == 0;
}

/* Take e out of the bucket chain, the age list and the loop; the caller closes or reuses fd. */
static void pool_unlink(struct upstream_pool *p, struct upstream_idle *e)
{
	*e->hpprev = e->hnext;
	if (e->hnext)
		e->hnext->hpprev = e->hpprev;
	if (e->older)
		e->older->newer = e->newer;
	else
		p->lru_head = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		p->lru_tail = e->older;
	timer_disarm(&e->timer);
	p->count--;
}

static void pool_drop(struct upstream_pool *p, struct upstream_idle *e)
{
	pool_unlink(p, e);
	loop_del_closing(p->loop, e->fd);
	close(e->fd);
	pool_entry_free(p, e);
}

static void pool_on_timer(struct loop *loop, struct timer *t)
{
	struct upstream_idle *e = (struct upstream_idle *)t;
	pool_drop(e->pool, e);
}

static void pool_on_io(struct loop *loop, int fd, int events, void *arg)
{
	/* an idle connection has nothing to say: EOF, an error or stray bytes all end it */
	struct upstream_idle *e = arg;
	pool_drop(e->pool, e);
}

int upstream_pool_init(struct upstream_pool *p, struct loop *loop, unsigned pool_idle_ms, size_t max)
{
	memset(p, 0, sizeof(*p));
	p->loop = loop;
	p->max = max;
	p->nbuckets = 256;
	p->buckets = calloc(p->nbuckets, sizeof(*p->buckets));
	if (p->buckets == NULL)
		return FERRY_ERR;
	p->timers = loop_timer_list(loop, pool_idle_ms);
	if (p->timers == NULL) {
		free(p->buckets);
		return FERRY_ERR;
	}
	return FERRY_OK;
}

void upstream_pool_destroy(struct upstream_pool *p)
{
	while (p->lru_head != NULL)
		pool_drop(p, p->lru_head);
	freelist_destroy(&p->spare);
	free(p->buckets);
	p->buckets = NULL;
}

int upstream_pool_get(struct upstream_pool *p, const char *host, size_t hostlen, uint16_t port,
		      const union dns_sockaddr *addrs, int naddrs, union upstream_addr *addr)
{
	struct upstream_idle *best;
	int vouched;
	uint64_t round = loop_round(p->loop);
again:
	best = NULL;
	vouched = 0;
	/* the newest match the loop vouches for (below), else the newest match; those that came
	 * back in this round (at the head: the chain is newest first) cannot be vouched for, and
	 * once one is the fallback the others are passed over unexamined */
	for (struct upstream_idle *e = p->buckets[pool_hash(host, hostlen, port, p->nbuckets)];
	     e && !vouched; e = e->hnext) {
		int fresh = e->put_round >= round;
		if (fresh && best)
			continue;
		if (e->port != port || e->hostlen != hostlen || !host_eq(e->host, host, hostlen))
			continue;
		/* only to an address the name still resolves to: a changed DNS answer is not
		 * sidestepped by a warm connection */
		for (int i = 0; i < naddrs; i++)
			if (upstream_addr_eq(&e->addr, &addrs[i].sa)) {
				vouched = !fresh && loop_quiet_since(p->loop, e->fd, e->put_round);
				if (best == NULL || vouched)
					best = e;
				break;
			}
	}
	if (best == NULL) {
		p->misses++;
		return -1;
	}
	/* Bytes may wait on it that the loop has not reported yet: the rest of what the origin
	 * sent after a response whose body was spliced to its exact length, or bytes that came
	 * in the round this request is handled in. Sent a request, ferry would read them as its
	 * answer (another client's request may be the one that takes the connection). When a
	 * poll since it came into the pool found nothing on it (and the pool's handler drops it
	 * on anything), the loop already vouches for it; otherwise one recv looks, and its FIN
	 * is caught too, which spares a retry. */
	if (!vouched) {
		char byte;
		ssize_t n = recv(best->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			pool_drop(p, best);
			goto again;
		}
		p->peeks++;
	}
	p->hits++;
	*addr = best->addr;
	int fd = best->fd;
	pool_unlink(p, best);
	pool_entry_free(p, best);
	return fd;
}

void upstream_pool_put(struct upstream_pool *p, int fd, const char *host, size_t hostlen, uint16_t port,
		       const union upstream_addr *addr)
{
	if (p->max == 0 || hostlen >= UPSTREAM_HOST_MAX) {
		loop_del(p->loop, fd);
		close(fd);
		return;
	}
	if (p->count >= p->max)
		pool_drop(p, p->lru_head);
	struct upstream_idle *e = pool_entry_alloc(p);
	if (e == NULL) {
		loop_del(p->loop, fd);
		close(fd);
		return;
	}
	timer_init(&e->timer, pool_on_timer);
	e->pool = p;
	e->fd = fd;
	e->put_round = loop_round(p->loop);
	e->port = port;
	e->addr = *addr;
	e->hostlen = (uint16_t)hostlen;
	memcpy(e->host, host, hostlen);
	/* already registered (from the connection that used it): take it over without a system
	 * call unless the events differ */
	int ok = loop_events(p->loop, fd) >= 0
			 ? loop_set_handler(p->loop, fd, pool_on_io, e) == FERRY_OK &&
				   loop_mod(p->loop, fd, LOOP_READ) == FERRY_OK
			 : loop_add(p->loop, fd, LOOP_READ, pool_on_io, e) == FERRY_OK;
	if (!ok) {
		loop_del(p->loop, fd);
		close(fd);
		pool_entry_free(p, e);
		return;
	}
	size_t b = pool_hash(host, hostlen, port, p->nbuckets);
	e->hnext = p->buckets[b];
	e->hpprev = &p->buckets[b];
	if (e->hnext)
		e->hnext->hpprev = &e->hnext;
	p->buckets[b] = e;
	/* append as newest */
	e->older = p->lru_tail;
	if (p->lru_tail)
		p->lru_tail->newer = e;
	else
		p->lru_head = e;
	p->lru_tail = e;
	p->count++;
	timer_arm(p->loop, &e->timer, p->timers);
}
