/* domains.h - destination domain filter: [access] allow_domains, deny_domains, domains_file.
 *
 * Patterns follow Squid's dstdomain: "example.com" matches that host only; ".example.com"
 * matches example.com itself and every name under it. Matching is case-insensitive, a
 * trailing dot of the host is ignored, and IP literals never match (addresses are the job of
 * block_destinations). A deny rule wins over any allow rule; when there is at least one allow
 * rule, a host no allow rule matches is refused. Rules are built once at config load, then
 * only read: any number of workers may check at once. */
#ifndef FERRY_DOMAINS_H
#define FERRY_DOMAINS_H

#include <stddef.h>
#include <stdint.h>

#define DOMAINS_NAME_MAX 253

struct domain_rule {
	char *pattern;      /* normalized: lower case, no trailing dot, ".example.com" for a
			       suffix rule */
	const char *source; /* file it was written in (owned by the rules) */
	int line;
	int allow;          /* 1: an allow rule, 0: a deny rule */
};

/* Private: an open-addressing table of rule indexes. */
struct domains_table {
	uint32_t *slots;    /* rule index + 1; 0 is an empty slot */
	size_t mask;        /* size - 1 (size a power of two), 0 when there are no slots */
	size_t n;
};

struct domain_rules {
	struct domain_rule *v;
	size_t n, cap;
	size_t nallow;      /* allow rules among v */
	char **sources;     /* file names the rules point at */
	size_t nsources;
	struct domains_table exact[2], suffix[2]; /* [allow] */
};

/* Called for each error found in a domains file: line > 0 names the line; line 0 is about
 * the file as a whole ("cannot open: ..."). msg has no file name and no newline. */
typedef void domains_error_fn(void *arg, int line, const char *msg);

/* Add one pattern written on line of source. A pattern that is already there (same kind,
 * same text) keeps its first place and source. FERRY_OK, or FERRY_ERR with the reason in err
 * (a bad pattern, or out of memory). */
int domains_add(struct domain_rules *r, int allow, const char *pattern, const char *source,
		int line, char *err, size_t errlen);
/* Read a file of "allow PATTERN" / "deny PATTERN" lines ('#' starts a comment; blank lines
 * are skipped). Reports every error through errfn; FERRY_OK when there was none. Rules of the
 * good lines are added even when some line was bad. */
int domains_load_file(struct domain_rules *r, const char *path, domains_error_fn *errfn,
		      void *arg);
void domains_free(struct domain_rules *r);

/* Decide for host[0..len) (as it appears in the request: %-escapes are decoded before
 * matching). Returns the deciding rule and sets *allowed from it; or returns NULL when no rule
 * decided, with *allowed = 0 when allow rules exist (the host is not in the allow list) and
 * 1 otherwise. */
const struct domain_rule *domains_check(const struct domain_rules *r, const char *host, size_t len,
					int *allowed);
/* "'.example.com' (/etc/ferry/domains line 3)", for the 403 body and the log. Returns what
 * snprintf returns. */
int domains_describe(const struct domain_rule *rule, char *buf, size_t len);
/* Is any rule set? (When not, domains_check always allows.) */
static inline int domains_active(const struct domain_rules *r) { return r->n > 0; }

#endif
