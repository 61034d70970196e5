/* dns.h - non-blocking name resolution for one worker: c-ares on the worker's loop, with a
 * bounded cache of answers kept for their TTL.
 *
 * IP literals and cache hits are answered at once; other names go to c-ares
 * (ares_getaddrinfo, which also reads /etc/hosts) and the callback runs later from the loop.
 * One struct dns per worker thread; not thread-safe. */
#ifndef FERRY_DNS_H
#define FERRY_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "loop.h"

#define DNS_MAX_ADDRS 8

/* One resolved address, sized for IPv6 rather than for every family: a sockaddr_storage is
 * 128 bytes, and eight of them made each connect in flight (conn.c keeps a result while it
 * tries the addresses) hold over 1 KiB. */
union dns_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

struct dns_result {
	int naddrs;                       /* 1..DNS_MAX_ADDRS on success */
	union dns_sockaddr addrs[DNS_MAX_ADDRS]; /* ports set to the requested port; the
					     order alternates families (AAAA first when the
					     resolver answered both), as happy eyeballs wants */
	socklen_t addrlens[DNS_MAX_ADDRS];
	const char *error;                /* on failure: "unknown host", "DNS timeout", ... */
};

struct dns;
struct dns_query;

/* status: FERRY_OK (res has addresses) or FERRY_ERR (res->error says why). res is only valid
 * during the call. */
typedef void dns_cb(void *arg, int status, const struct dns_result *res);

/* timeout_ms bounds each query; cache_size the number of names kept (0: no cache). servers
 * is a c-ares list ("192.0.2.53:53,[2001:db8::53]:53") of the DNS servers to ask, or NULL or
 * "" for those of /etc/resolv.conf. NULL on failure with a reason in err. */
struct dns *dns_create(struct loop *loop, unsigned timeout_ms, size_t cache_size,
		       const char *servers, char *err, size_t errlen);
/* Cancels pending queries (their callbacks are not called) and frees everything. */
void dns_destroy(struct dns *dns);

/* Resolve host (NUL-terminated, no brackets) for port.
 *  FERRY_OK:    answered at once (literal or cache hit); *now holds the result.
 *  FERRY_AGAIN: *q is a pending query; cb(arg, ...) will run exactly once from the loop
 *               unless dns_cancel(*q) is called first.
 *  FERRY_ERR:   answered at once with a failure (now->error), e.g. a cached negative answer. */
int dns_resolve(struct dns *dns, const char *host, uint16_t port, dns_cb *cb, void *arg,
		struct dns_result *now, struct dns_query **q);
/* Forget a pending query: its callback will not run. */
void dns_cancel(struct dns_query *q);

/* Milliseconds until c-ares needs dns_process_timeouts (-1: nothing pending). */
int dns_next_timeout(struct dns *dns);
void dns_process_timeouts(struct dns *dns);

/* Counters for stats. */
struct dns_stats {
	uint64_t cache_hits, cache_misses, failures;
};
void dns_get_stats(const struct dns *dns, struct dns_stats *out);

#endif
