/* fake_dns.h - a tiny DNS server on 127.0.0.1 for the tests, so that no lookup ever leaves
 * the machine: it answers A and AAAA from a table, with the TTL given, NXDOMAIN for names it
 * does not know, SERVFAIL or nothing at all for names marked so, and counts what it is asked.
 *
 * UDP only (answers are far below 512 bytes, so c-ares never falls back to TCP), served by
 * one thread of the calling process. Start it inside the test (after Check's fork). */
#ifndef FERRY_TEST_FAKE_DNS_H
#define FERRY_TEST_FAKE_DNS_H

struct fake_dns;

/* Bind 127.0.0.1 (port chosen by the kernel) and start serving. NULL on failure (reason on
 * stderr). */
struct fake_dns *fake_dns_start(void);
/* Stop the thread, close the socket, free. NULL is harmless. */
void fake_dns_stop(struct fake_dns *d);
int fake_dns_port(const struct fake_dns *d);
/* "127.0.0.1:PORT", the value for dns_create and [dns] servers. */
const char *fake_dns_server(const struct fake_dns *d);

/* Answer name (case-insensitive) with addr, an IPv4 or IPv6 literal that makes it an A or an
 * AAAA record, with this TTL. Records of one name are answered in the order added. A name
 * with records of only one family gets an empty NOERROR answer for the other. */
void fake_dns_add(struct fake_dns *d, const char *name, const char *addr, unsigned ttl);
/* Queries for name are never answered. */
void fake_dns_silent(struct fake_dns *d, const char *name);
/* Queries for name are answered SERVFAIL. */
void fake_dns_servfail(struct fake_dns *d, const char *name);

/* Queries received for name (any type); NULL: all queries received. */
int fake_dns_queries(struct fake_dns *d, const char *name);

/* A loopback UDP port where nothing listens, a moment ago (queries there fail at once). */
int fake_dns_closed_port(void);

#endif
