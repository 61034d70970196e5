/* route.h - parent proxies and the rules that choose them ([upstream] parent, route).
 *
 * A destination (the host and port of a request or CONNECT) goes either direct or through a
 * list of parents tried in order. The table is built with the config and then only read; the
 * record of parents that failed recently (skipped for ROUTE_SKIP_MS) is kept per worker,
 * each worker writing only its own row. */
#ifndef FERRY_ROUTE_H
#define FERRY_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "acl.h"

/* A parent that failed to connect (or to answer the handshake) is skipped this long. */
#define ROUTE_SKIP_MS 30000
#define ROUTE_HOST_MAX 256
#define ROUTE_CRED_MAX 255
/* Parents in one target (a rule's, or the default's): route_next's cursor is a bit set. */
#define ROUTE_TARGET_MAX 31

enum route_kind { ROUTE_HTTP, ROUTE_SOCKS5 };

struct route_parent {
	enum route_kind kind;
	char host[ROUTE_HOST_MAX]; /* name or address (IPv6 without brackets) */
	uint16_t port;
	char *user, *pass;         /* NULL when the URL had none */
	char *auth_header;         /* HTTP parents with credentials: "Proxy-Authorization: Basic
				      ...\r\n" */
	char label[ROUTE_HOST_MAX + 32]; /* "http://host:port", never the password: for messages,
					    and the upstream pool's key for HTTP parents */
	unsigned id;               /* index in the table's parents */
};

struct route_target {
	int direct;
	size_t n;
	unsigned *parents;         /* ids, in the order to try */
};

struct route_rule {
	int is_cidr;
	struct cidr cidr;
	char *suffix;              /* lower case, without a leading '.'; "*" matches all */
	struct route_target target;
	int line;
};

struct route_table {
	struct route_parent **parents;   /* every distinct parent URL */
	size_t nparents;
	struct route_rule *rules;        /* [upstream] route, in order */
	size_t nrules;
	struct route_target deflt;       /* [upstream] parent; direct when there is none */
	uint64_t *down_until;            /* [worker * nparents + id]: loop time before which the
					    parent is skipped; see route_table_prepare */
	int nworkers;
};

/* Parse a parent URL: http://[user:pass@]host:port or socks5://[user:pass@]host:port (host a
 * name, an IPv4 address or a [bracketed] IPv6 one; the port is required; user and password
 * may be %-encoded). FERRY_OK, or FERRY_ERR with a one-line reason in err (which never shows
 * the password). The caller frees with route_parent_free. */
int route_parent_parse(const char *url, struct route_parent *out, char *err, size_t errlen);
void route_parent_free(struct route_parent *p);

/* [upstream] parent = URL...: append parents to the default target. */
int route_table_add_parent(struct route_table *t, const char *value, char *err, size_t errlen);
/* [upstream] route = SUFFIX-OR-CIDR TARGET...: TARGET is "direct" or parent URLs. */
int route_table_add_rule(struct route_table *t, const char *value, int line, char *err,
			 size_t errlen);
/* Is anything routed through a parent? */
int route_table_active(const struct route_table *t);
/* Allocate the per-worker record of failed parents. FERRY_OK or FERRY_ERR (out of memory). */
int route_table_prepare(struct route_table *t, int nworkers);
void route_table_free(struct route_table *t);

/* The target for a destination: the first rule that matches (a suffix rule matches the name
 * and its subdomains; a CIDR rule matches a destination written as an IP address), else the
 * default. host: as in the request (IPv6 without brackets). Never NULL. */
const struct route_target *route_match(const struct route_table *t, const char *host);

/* Which parent of target to try next in a request. *pos is the request's cursor: -1 before the
 * first call, then only passed back (it records the parents already tried). The first parent
 * not yet tried and not marked down by this worker, in order; when there is none, the first
 * not yet tried although down (so a parent skipped at first is still tried once the others
 * have failed). Returns the parent and updates *pos, or NULL when every parent was tried. */
const struct route_parent *route_next(const struct route_table *t, const struct route_target *target,
				      int worker, uint64_t now, int *pos);
/* Record that parent failed for this worker at now: skipped until now + ROUTE_SKIP_MS. */
void route_parent_failed(const struct route_table *t, const struct route_parent *p, int worker,
			 uint64_t now);
/* Record that it worked (it is not skipped any more). */
void route_parent_ok(const struct route_table *t, const struct route_parent *p, int worker);

#endif
