/* dns.c - c-ares on the worker's loop, plus a bounded per-worker cache of answers.
 *
 * c-ares tells us which sockets to watch through its socket-state callback; we mirror them
 * into the loop and hand readiness back with ares_process_fd. Its retransmission timers are
 * driven by the worker (dns_next_timeout / dns_process_timeouts). Each query also carries a
 * timer on the loop at timeout_ms, because c-ares' own retries (doubling per round, several
 * servers, search domains) can add up to far more than the caller agreed to wait.
 *
 * c-ares cannot cancel one query, so a query the caller no longer wants (cancelled, or
 * already answered "DNS timeout") stays allocated until c-ares calls back, and is freed then
 * without calling the caller. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>

#include "dns.h"
#include "status.h"

#define DNS_NAME_MAX 255           /* longest name we take (RFC 1035 allows 253 + dot) */
#define DNS_TTL_MIN_MS 1000        /* even a TTL of 0 is kept this long: one page load */
#define DNS_TTL_MAX_MS 3600000     /* re-check at least hourly, whatever the TTL says */
/* /etc/hosts answers carry no TTL (c-ares reports 0). The file rarely changes and reading it
 * again costs a file parse, so keep them a minute: an edit is seen within 60 s. */
#define DNS_HOSTS_TTL_MS 60000
#define DNS_NEGATIVE_TTL_MS 5000   /* NXDOMAIN / no data: short, a typo may be fixed soon */

static const char DNS_ERR_UNKNOWN[] = "unknown host";
static const char DNS_ERR_TIMEOUT[] = "DNS timeout";
static const char DNS_ERR_FAILURE[] = "DNS failure";

/* An address without a port: what the cache keeps. */
struct dns_addr {
	sa_family_t family;
	uint32_t scope_id;
	uint8_t bytes[16];
};

struct dns_entry {
	char *name;          /* lower-cased; NULL when the slot is free */
	uint32_t hash;
	int32_t hnext;       /* next in the hash chain */
	int32_t prev, next;  /* LRU list (head = least recently used); free list uses next */
	uint64_t expires;    /* loop_now() ms */
	int naddrs;          /* 0: negative answer */
	struct dns_addr addrs[DNS_MAX_ADDRS];
};

struct dns_query {
	struct dns *dns;
	struct dns_query *prev, *next; /* dns->queries: every live query, for dns_destroy */
	struct timer timer;  /* the caller's deadline; then, for an answer c-ares gave inside
				ares_getaddrinfo, the deferred delivery */
	dns_cb *cb;
	void *arg;
	uint16_t port;
	bool in_ares;        /* c-ares still holds it and will call dns_ares_cb */
	bool waiting;        /* the caller still expects its callback */
	bool in_call;        /* inside ares_getaddrinfo: an answer now must be deferred */
	int status;          /* a deferred answer */
	struct dns_result res;
	char name[];         /* lower-cased, the cache key */
};

struct dns {
	struct loop *loop;
	ares_channel ch;
	bool have_ch;
	bool destroying;
	struct timer_list *deadlines; /* timeout_ms */
	struct timer_list *soon;      /* 0 ms: "on the next loop iteration" */
	struct dns_query *queries;
	struct dns_stats stats;

	size_t cache_size;
	struct dns_entry *entries;
	int32_t *buckets;
	uint32_t bucket_mask;
	int32_t lru_head, lru_tail, free_head;
};

static pthread_once_t dns_lib_once = PTHREAD_ONCE_INIT;
static int dns_lib_status;

static void dns_lib_init(void)
{
	dns_lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

static void dns_set_err(char *err, size_t errlen, const char *what, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", what, why);
}

/* ---- results ---- */

static void dns_addr_to_sockaddr(const struct dns_addr *a, uint16_t port,
				 union dns_sockaddr *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *s6 = &ss->in6;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		s6->sin6_scope_id = a->scope_id;
		memcpy(&s6->sin6_addr, a->bytes, 16);
		*len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = &ss->in4;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, a->bytes, 4);
		*len = sizeof(*s4);
	}
}

static void dns_result_fill(struct dns_result *res, const struct dns_addr *addrs, int n,
			    uint16_t port)
{
	res->naddrs = n;
	res->error = NULL;
	for (int i = 0; i < n; i++)
		dns_addr_to_sockaddr(&addrs[i], port, &res->addrs[i], &res->addrlens[i]);
}

static int dns_result_fail(struct dns_result *res, const char *why)
{
	res->naddrs = 0;
	res->error = why;
	return FERRY_ERR;
}

/* IPv4 dotted quad or IPv6 (optionally with a %zone). 1 if host is one, 0 otherwise. */
static int dns_parse_literal(const char *host, struct dns_addr *a)
{
	char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
	const char *zone;

	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, host, a->bytes) == 1) {
		a->family = AF_INET;
		return 1;
	}
	if (inet_pton(AF_INET6, host, a->bytes) == 1) {
		a->family = AF_INET6;
		return 1;
	}
	zone = strchr(host, '%');
	if (!zone || (size_t)(zone - host) >= INET6_ADDRSTRLEN || strlen(zone + 1) >= IF_NAMESIZE ||
	    !zone[1])
		return 0;
	memcpy(buf, host, (size_t)(zone - host));
	buf[zone - host] = '\0';
	if (inet_pton(AF_INET6, buf, a->bytes) != 1)
		return 0;
	a->family = AF_INET6;
	a->scope_id = if_nametoindex(zone + 1);
	if (!a->scope_id) {
		char *end;
		unsigned long v;

		errno = 0;
		v = strtoul(zone + 1, &end, 10);
		if (errno || *end || v > UINT32_MAX)
			return 0;
		a->scope_id = (uint32_t)v;
	}
	return 1;
}

static bool dns_addr_in(const struct dns_addr *list, int n, const struct dns_addr *a)
{
	for (int i = 0; i < n; i++)
		if (list[i].family == a->family && list[i].scope_id == a->scope_id &&
		    !memcmp(list[i].bytes, a->bytes, 16))
			return true;
	return false;
}

/* Interleave the families, AAAA first, for happy eyeballs; within a family keep c-ares'
 * (RFC 6724) order. Duplicates (hosts file + DNS, or repeated lines) are dropped. Returns the
 * count and the smallest TTL in seconds (<= 0 when c-ares gave none). */
static int dns_collect(const struct ares_addrinfo *ai, struct dns_addr *out, int *min_ttl)
{
	struct dns_addr v6[DNS_MAX_ADDRS], v4[DNS_MAX_ADDRS];
	int n6 = 0, n4 = 0, n = 0;

	*min_ttl = INT_MAX;
	for (const struct ares_addrinfo_node *nd = ai ? ai->nodes : NULL; nd; nd = nd->ai_next) {
		struct dns_addr a;

		memset(&a, 0, sizeof(a));
		if (nd->ai_family == AF_INET6 && nd->ai_addrlen >= sizeof(struct sockaddr_in6)) {
			const struct sockaddr_in6 *s6 = (const void *)nd->ai_addr;

			a.family = AF_INET6;
			a.scope_id = s6->sin6_scope_id;
			memcpy(a.bytes, &s6->sin6_addr, 16);
			if (n6 < DNS_MAX_ADDRS && !dns_addr_in(v6, n6, &a))
				v6[n6++] = a;
		} else if (nd->ai_family == AF_INET &&
			   nd->ai_addrlen >= sizeof(struct sockaddr_in)) {
			const struct sockaddr_in *s4 = (const void *)nd->ai_addr;

			a.family = AF_INET;
			memcpy(a.bytes, &s4->sin_addr, 4);
			if (n4 < DNS_MAX_ADDRS && !dns_addr_in(v4, n4, &a))
				v4[n4++] = a;
		} else {
			continue;
		}
		if (nd->ai_ttl < *min_ttl)
			*min_ttl = nd->ai_ttl;
	}
	for (int i = 0; n < DNS_MAX_ADDRS && (i < n6 || i < n4); i++) {
		if (i < n6)
			out[n++] = v6[i];
		if (i < n4 && n < DNS_MAX_ADDRS)
			out[n++] = v4[i];
	}
	return n;
}

/* ---- cache: entries in one array, chained hash by index, LRU list for eviction ---- */

static uint32_t dns_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static void dns_lru_unlink(struct dns *dns, int32_t i)
{
	struct dns_entry *e = &dns->entries[i];

	if (e->prev >= 0)
		dns->entries[e->prev].next = e->next;
	else
		dns->lru_head = e->next;
	if (e->next >= 0)
		dns->entries[e->next].prev = e->prev;
	else
		dns->lru_tail = e->prev;
	e->prev = e->next = -1;
}

static void dns_lru_append(struct dns *dns, int32_t i)
{
	struct dns_entry *e = &dns->entries[i];

	e->next = -1;
	e->prev = dns->lru_tail;
	if (dns->lru_tail >= 0)
		dns->entries[dns->lru_tail].next = i;
	else
		dns->lru_head = i;
	dns->lru_tail = i;
}

static int32_t dns_cache_find(struct dns *dns, const char *key, uint32_t h)
{
	for (int32_t i = dns->buckets[h & dns->bucket_mask]; i >= 0; i = dns->entries[i].hnext)
		if (dns->entries[i].hash == h && !strcmp(dns->entries[i].name, key))
			return i;
	return -1;
}

static void dns_cache_remove(struct dns *dns, int32_t i)
{
	struct dns_entry *e = &dns->entries[i];
	int32_t *link = &dns->buckets[e->hash & dns->bucket_mask];

	while (*link != i)
		link = &dns->entries[*link].hnext;
	*link = e->hnext;
	dns_lru_unlink(dns, i);
	free(e->name);
	e->name = NULL;
	e->next = dns->free_head;
	dns->free_head = i;
}

/* A live entry for key (moved to most recently used), or NULL. */
static const struct dns_entry *dns_cache_get(struct dns *dns, const char *key)
{
	uint32_t h;
	int32_t i;

	if (!dns->cache_size)
		return NULL;
	h = dns_hash(key);
	i = dns_cache_find(dns, key, h);
	if (i < 0)
		return NULL;
	if (dns->entries[i].expires <= loop_now(dns->loop)) {
		dns_cache_remove(dns, i);
		return NULL;
	}
	dns_lru_unlink(dns, i);
	dns_lru_append(dns, i);
	return &dns->entries[i];
}

static void dns_cache_put(struct dns *dns, const char *key, const struct dns_addr *addrs,
			  int n, uint64_t ttl_ms)
{
	struct dns_entry *e;
	uint32_t h;
	int32_t i;

	if (!dns->cache_size)
		return;
	h = dns_hash(key);
	i = dns_cache_find(dns, key, h);
	if (i < 0) {
		char *name = strdup(key);

		if (!name)
			return; /* not caching is always correct */
		/* Full: the least recently used entry goes. Expired entries are not hunted for;
		 * they are dropped when looked up, or reach the LRU head like any other. */
		if (dns->free_head < 0)
			dns_cache_remove(dns, dns->lru_head);
		i = dns->free_head;
		e = &dns->entries[i];
		dns->free_head = e->next;
		e->name = name;
		e->hash = h;
		e->hnext = dns->buckets[h & dns->bucket_mask];
		dns->buckets[h & dns->bucket_mask] = i;
	} else {
		dns_lru_unlink(dns, i);
	}
	e = &dns->entries[i];
	dns_lru_append(dns, i);
	e->expires = loop_now(dns->loop) + ttl_ms;
	e->naddrs = n;
	if (n)
		memcpy(e->addrs, addrs, (size_t)n * sizeof(*addrs));
}

static int dns_cache_init(struct dns *dns, size_t cache_size)
{
	size_t nb = 1;

	dns->cache_size = cache_size;
	dns->lru_head = dns->lru_tail = dns->free_head = -1;
	if (!cache_size)
		return FERRY_OK;
	if (cache_size > (1u << 24))
		return FERRY_ERR;
	while (nb < cache_size)
		nb <<= 1;
	dns->entries = calloc(cache_size, sizeof(*dns->entries));
	dns->buckets = malloc(nb * sizeof(*dns->buckets));
	if (!dns->entries || !dns->buckets)
		return FERRY_ERR;
	dns->bucket_mask = (uint32_t)(nb - 1);
	for (size_t i = 0; i < nb; i++)
		dns->buckets[i] = -1;
	for (size_t i = 0; i < cache_size; i++) {
		dns->entries[i].prev = -1;
		dns->entries[i].next = i + 1 < cache_size ? (int32_t)(i + 1) : -1;
	}
	dns->free_head = 0;
	return FERRY_OK;
}

static void dns_cache_free(struct dns *dns)
{
	for (size_t i = 0; dns->entries && i < dns->cache_size; i++)
		free(dns->entries[i].name);
	free(dns->entries);
	free(dns->buckets);
}

/* ---- queries ---- */

static void dns_query_free(struct dns_query *q)
{
	struct dns *dns = q->dns;

	if (timer_armed(&q->timer))
		timer_disarm(&q->timer);
	if (q->prev)
		q->prev->next = q->next;
	else
		dns->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	free(q);
}

/* Hand the answer to the caller. q is freed first, so the callback may do anything with dns
 * (resolve again, cancel other queries) without finding this query half-finished. */
static void dns_query_deliver(struct dns_query *q, int status, const struct dns_result *res)
{
	struct dns_result copy = *res;
	dns_cb *cb = q->cb;
	void *arg = q->arg;
	struct dns *dns = q->dns;

	if (status != FERRY_OK)
		dns->stats.failures++;
	dns_query_free(q);
	cb(arg, status, &copy);
}

static void dns_deadline_fired(struct loop *loop, struct timer *t)
{
	struct dns_query *q = (struct dns_query *)((char *)t - offsetof(struct dns_query, timer));
	struct dns_result res;
	dns_cb *cb = q->cb;
	void *arg = q->arg;

	/* c-ares still owns the query: it stays until dns_ares_cb, which caches a late answer
	 * and frees it silently. */
	q->waiting = false;
	q->dns->stats.failures++;
	dns_result_fail(&res, DNS_ERR_TIMEOUT);
	cb(arg, FERRY_ERR, &res);
}

static void dns_soon_fired(struct loop *loop, struct timer *t)
{
	struct dns_query *q = (struct dns_query *)((char *)t - offsetof(struct dns_query, timer));

	dns_query_deliver(q, q->status, &q->res);
}

/* Turn c-ares' answer into a result for port and remember it. */
static int dns_answer(struct dns *dns, const char *key, int status, bool from_hosts,
		      const struct ares_addrinfo *ai, uint16_t port, struct dns_result *res)
{
	struct dns_addr addrs[DNS_MAX_ADDRS];
	uint64_t ttl_ms;
	int n, ttl;

	switch (status) {
	case ARES_SUCCESS:
		n = dns_collect(ai, addrs, &ttl);
		if (!n)
			break; /* only families we cannot use: as good as no data */
		/* An answer inside ares_getaddrinfo came from /etc/hosts (lookups are
		 * "files, then DNS" and DNS always takes a round trip); those have no TTL. A DNS
		 * answer with TTL 0 still gets the floor, never the hosts-file minute. */
		if (from_hosts)
			ttl_ms = DNS_HOSTS_TTL_MS;
		else if (ttl <= 0)
			ttl_ms = DNS_TTL_MIN_MS;
		else
			ttl_ms = (uint64_t)ttl * 1000;
		if (ttl_ms < DNS_TTL_MIN_MS)
			ttl_ms = DNS_TTL_MIN_MS;
		if (ttl_ms > DNS_TTL_MAX_MS)
			ttl_ms = DNS_TTL_MAX_MS;
		dns_cache_put(dns, key, addrs, n, ttl_ms);
		dns_result_fill(res, addrs, n, port);
		return FERRY_OK;
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
		break;
	case ARES_EBADNAME:
		return dns_result_fail(res, DNS_ERR_UNKNOWN); /* not worth a cache slot */
	case ARES_ETIMEOUT:
		return dns_result_fail(res, DNS_ERR_TIMEOUT); /* may be transient: not cached */
	default:
		return dns_result_fail(res, DNS_ERR_FAILURE);
	}
	dns_cache_put(dns, key, NULL, 0, DNS_NEGATIVE_TTL_MS);
	return dns_result_fail(res, DNS_ERR_UNKNOWN);
}

static void dns_ares_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct dns_query *q = arg;
	struct dns *dns = q->dns;
	int st;

	q->in_ares = false;
	if (dns->destroying || status == ARES_EDESTRUCTION) {
		if (ai)
			ares_freeaddrinfo(ai);
		dns_query_free(q);
		return;
	}
	st = dns_answer(dns, q->name, status, q->in_call, ai, q->port, &q->res);
	if (ai)
		ares_freeaddrinfo(ai);
	if (q->in_call) {
		q->status = st; /* dns_resolve schedules the delivery */
		return;
	}
	if (!q->waiting) {
		dns_query_free(q);
		return;
	}
	dns_query_deliver(q, st, &q->res);
}

/* ---- c-ares sockets on the loop ---- */

static void dns_io(struct loop *loop, int fd, int events, void *arg)
{
	struct dns *dns = arg;
	ares_socket_t r = events & (LOOP_READ | LOOP_HUP) ? fd : ARES_SOCKET_BAD;
	ares_socket_t w = events & LOOP_WRITE ? fd : ARES_SOCKET_BAD;

	ares_process_fd(dns->ch, r, w);
}

static void dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *dns = data;
	int ev = (readable ? LOOP_READ : 0) | (writable ? LOOP_WRITE : 0);

	if (!ev) {
		loop_del(dns->loop, fd);
		return;
	}
	/* If the loop refuses the fd (beyond maxfds), the query cannot be heard: it ends at
	 * c-ares' timeout or our deadline, which is the best that can be done here. */
	if (loop_events(dns->loop, fd) < 0)
		loop_add(dns->loop, fd, ev, dns_io, dns);
	else
		loop_mod(dns->loop, fd, ev);
}

/* ---- public ---- */

struct dns *dns_create(struct loop *loop, unsigned timeout_ms, size_t cache_size,
		       const char *servers, char *err, size_t errlen)
{
	struct dns *dns = NULL;
	struct ares_options opts;
	int rc;

	pthread_once(&dns_lib_once, dns_lib_init);
	if (dns_lib_status != ARES_SUCCESS) {
		dns_set_err(err, errlen, "ares_library_init", ares_strerror(dns_lib_status));
		goto fail;
	}
	if (!timeout_ms || timeout_ms > INT_MAX) {
		dns_set_err(err, errlen, "dns", "timeout out of range");
		goto fail;
	}
	dns = calloc(1, sizeof(*dns));
	if (!dns) {
		dns_set_err(err, errlen, "dns", strerror(errno));
		goto fail;
	}
	dns->loop = loop;
	dns->deadlines = loop_timer_list(loop, timeout_ms);
	dns->soon = loop_timer_list(loop, 0);
	if (!dns->deadlines || !dns->soon) {
		dns_set_err(err, errlen, "dns", "no free timer list in the loop");
		goto fail;
	}
	if (dns_cache_init(dns, cache_size) != FERRY_OK) {
		dns_set_err(err, errlen, "dns cache", cache_size > (1u << 24) ?
			    "cache_size too large" : strerror(ENOMEM));
		goto fail;
	}
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = dns;
	/* c-ares doubles the per-try timeout each round, so two tries take 3x the first: a
	 * third of timeout_ms lets both fit before our own deadline cuts the query off. */
	opts.timeout = timeout_ms / 3 ? (int)(timeout_ms / 3) : 1;
	opts.tries = 2;
	rc = ares_init_options(&dns->ch, &opts,
			       ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		dns_set_err(err, errlen, "ares_init_options", ares_strerror(rc));
		goto fail;
	}
	dns->have_ch = true;
	/* Only the servers are replaced: the rest of resolv.conf (search, ndots) still holds. */
	if (servers && *servers) {
		rc = ares_set_servers_ports_csv(dns->ch, servers);
		if (rc != ARES_SUCCESS) {
			dns_set_err(err, errlen, "dns servers", ares_strerror(rc));
			goto fail;
		}
	}
	return dns;
fail:
	if (dns) {
		if (dns->have_ch)
			ares_destroy(dns->ch); /* no query and no socket yet */
		dns_cache_free(dns);
	}
	free(dns);
	return NULL;
}

void dns_destroy(struct dns *dns)
{
	if (!dns)
		return;
	dns->destroying = true;
	/* Calls dns_ares_cb with ARES_EDESTRUCTION for every query c-ares holds (freed there,
	 * callers not called), and closes its sockets through dns_sock_state (loop_del). */
	if (dns->have_ch)
		ares_destroy(dns->ch);
	/* What is left waits on the loop: answers from /etc/hosts not yet delivered. */
	while (dns->queries)
		dns_query_free(dns->queries);
	dns_cache_free(dns);
	free(dns);
}

int dns_resolve(struct dns *dns, const char *host, uint16_t port, dns_cb *cb, void *arg,
		struct dns_result *now, struct dns_query **qp)
{
	struct ares_addrinfo_hints hints;
	const struct dns_entry *e;
	struct dns_query *q;
	struct dns_addr lit;
	char key[DNS_NAME_MAX + 1];
	size_t len = strlen(host);

	*qp = NULL;
	if (dns_parse_literal(host, &lit)) {
		dns_result_fill(now, &lit, 1, port);
		return FERRY_OK;
	}
	if (!len || len > DNS_NAME_MAX) {
		dns->stats.failures++;
		return dns_result_fail(now, DNS_ERR_UNKNOWN);
	}
	for (size_t i = 0; i <= len; i++)
		key[i] = (char)tolower((unsigned char)host[i]);

	e = dns_cache_get(dns, key);
	if (e) {
		dns->stats.cache_hits++;
		if (!e->naddrs) {
			dns->stats.failures++;
			return dns_result_fail(now, DNS_ERR_UNKNOWN);
		}
		dns_result_fill(now, e->addrs, e->naddrs, port);
		return FERRY_OK;
	}
	dns->stats.cache_misses++;

	q = calloc(1, sizeof(*q) + len + 1);
	if (!q) {
		dns->stats.failures++;
		return dns_result_fail(now, DNS_ERR_FAILURE);
	}
	q->dns = dns;
	q->cb = cb;
	q->arg = arg;
	q->port = port;
	memcpy(q->name, key, len + 1);
	q->next = dns->queries;
	if (q->next)
		q->next->prev = q;
	dns->queries = q;
	timer_init(&q->timer, dns_deadline_fired);
	timer_arm(dns->loop, &q->timer, dns->deadlines);
	q->in_ares = q->waiting = q->in_call = true;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	/* CARES_HOSTS in the environment names another hosts file (c-ares' own convention);
	 * the tests use it to have names with both families without touching /etc/hosts. */
	hints.ai_flags = ARES_AI_ENVHOSTS;
	ares_getaddrinfo(dns->ch, q->name, NULL, &hints, dns_ares_cb, q);
	q->in_call = false;

	if (!q->in_ares) {
		/* Answered inside the call (/etc/hosts, or an immediate error). The callback must
		 * not run before we return, so it runs from the loop's next iteration. */
		timer_disarm(&q->timer);
		timer_init(&q->timer, dns_soon_fired);
		timer_arm(dns->loop, &q->timer, dns->soon);
	}
	*qp = q;
	return FERRY_AGAIN;
}

void dns_cancel(struct dns_query *q)
{
	if (!q)
		return;
	q->waiting = false;
	if (timer_armed(&q->timer))
		timer_disarm(&q->timer);
	if (!q->in_ares)
		dns_query_free(q);
}

int dns_next_timeout(struct dns *dns)
{
	struct timeval tv, *tp = ares_timeout(dns->ch, NULL, &tv);
	long long ms;

	if (!tp)
		return -1;
	/* Round up: waking before c-ares' deadline would find nothing to do and spin. */
	ms = (long long)tp->tv_sec * 1000 + (tp->tv_usec + 999) / 1000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

void dns_process_timeouts(struct dns *dns)
{
	ares_process_fd(dns->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

void dns_get_stats(const struct dns *dns, struct dns_stats *out)
{
	*out = dns->stats;
}
