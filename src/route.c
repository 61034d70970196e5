/* route.c - parent proxy URLs, route rules, and the per-worker record of failed parents.
 *
 * Parents are kept once per distinct URL, so that a parent named by several rules is skipped
 * by all of them after it fails. Matching is a walk over the rules in order: configs have a
 * handful of rules, and the walk happens once per request that needs a new connection. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "route.h"
#include "status.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* %-decode s[0..n) into a new string; NULL on a bad escape, a NUL byte, or out of memory. */
static char *pct_decode(const char *s, size_t n, int *bad)
{
	char *o = malloc(n + 1);
	size_t k = 0;
	*bad = 0;
	if (o == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int a = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
			int b = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
			if (a < 0 || b < 0 || (a == 0 && b == 0)) {
				*bad = 1;
				free(o);
				return NULL;
			}
			o[k++] = (char)(a * 16 + b);
			i += 2;
		} else {
			o[k++] = s[i];
		}
	}
	o[k] = '\0';
	return o;
}

static size_t base64(const unsigned char *in, size_t n, char *out)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

static int valid_host_char(int c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_';
}

void route_parent_free(struct route_parent *p)
{
	if (p == NULL)
		return;
	free(p->user);
	free(p->pass);
	free(p->auth_header);
	p->user = p->pass = p->auth_header = NULL;
}

/* Is s[0..n) a scheme someone might write for a parent by mistake? Only such a scheme is
 * repeated in a message: any other text before "://" may be a piece of a password (a blank
 * or a comma in one splits the value into words). */
static int known_scheme(const char *s, size_t n)
{
	static const char *const known[] = { "https", "socks", "socks4", "socks4a", "socks5h", "ftp" };
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strlen(known[i]) == n && strncasecmp(s, known[i], n) == 0)
			return 1;
	return 0;
}

int route_parent_parse(const char *url, struct route_parent *out, char *err, size_t errlen)
{
	const char *s;
	memset(out, 0, sizeof(*out));
	if (strncasecmp(url, "http://", 7) == 0) {
		out->kind = ROUTE_HTTP;
		s = url + 7;
	} else if (strncasecmp(url, "socks5://", 9) == 0) {
		out->kind = ROUTE_SOCKS5;
		s = url + 9;
	} else {
		/* Never repeat the text: "ferry:s3cret@proxy:3128" (no scheme) or the second half of
		 * a password cut at a comma would show the password. With credentials, only what
		 * follows the last '@' (the host and port) is shown. */
		const char *c = strstr(url, "://");
		const char *at = strrchr(url, '@');
		if (at != NULL)
			snprintf(err, errlen, "parent '***@%.64s' does not begin with http:// or socks5:// "
				 "(a blank or a comma in a password must be %%-encoded: %%20, %%2C)", at + 1);
		else if (c != NULL && known_scheme(url, (size_t)(c - url)))
			snprintf(err, errlen, "parent scheme '%.*s' is not http or socks5", (int)(c - url), url);
		else
			snprintf(err, errlen, "a parent is not http://[user:pass@]host:port or "
				 "socks5://[user:pass@]host:port (the word is not shown: it may be part of a "
				 "password)");
		return FERRY_ERR;
	}
	const char *scheme = out->kind == ROUTE_HTTP ? "http" : "socks5";
	/* userinfo: up to the last '@' (a password may hold '@' only %-encoded, but be kind) */
	const char *at = strrchr(s, '@');
	const char *hostpart = s;
	/* how the URL is named in messages: the credentials masked */
	char shown[16];
	snprintf(shown, sizeof(shown), "%s://%s", scheme, at != NULL ? "***@" : "");
	if (at != NULL) {
		const char *colon = memchr(s, ':', (size_t)(at - s));
		if (colon == NULL) {
			snprintf(err, errlen, "parent %s...: credentials must be user:password", shown);
			return FERRY_ERR;
		}
		int bad = 0;
		out->user = pct_decode(s, (size_t)(colon - s), &bad);
		if (out->user != NULL)
			out->pass = pct_decode(colon + 1, (size_t)(at - colon - 1), &bad);
		if (out->user == NULL || out->pass == NULL) {
			route_parent_free(out);
			if (bad)
				snprintf(err, errlen, "parent %s...: bad %%-escape in the credentials", shown);
			else
				snprintf(err, errlen, "out of memory");
			return FERRY_ERR;
		}
		const char *why = NULL;
		size_t ul = strlen(out->user), pl = strlen(out->pass);
		if (ul == 0 || ul > ROUTE_CRED_MAX)
			why = "the user name must be 1 to 255 bytes";
		else if (out->kind == ROUTE_HTTP && strchr(out->user, ':') != NULL)
			why = "an HTTP parent's user name cannot hold ':' (Basic authentication)";
		else if (pl > ROUTE_CRED_MAX)
			why = "the password must be at most 255 bytes";
		else if (out->kind == ROUTE_SOCKS5 && pl == 0)
			/* RFC 1929: PLEN is 1 to 255; an empty one is refused by conforming servers */
			why = "a SOCKS5 password must be 1 to 255 bytes (RFC 1929)";
		if (why != NULL) {
			route_parent_free(out);
			snprintf(err, errlen, "parent %s...: %s", shown, why);
			return FERRY_ERR;
		}
		for (const char *q = out->user; *q; q++)
			if ((unsigned char)*q < 0x20 || *q == 0x7f)
				goto badcred;
		for (const char *q = out->pass; *q; q++)
			if ((unsigned char)*q < 0x20 || *q == 0x7f)
				goto badcred;
		hostpart = at + 1;
	}
	/* host:port, IPv6 in brackets, an optional trailing '/' */
	const char *hs, *he, *p;
	int ip6 = 0;
	if (*hostpart == '[') {
		hs = hostpart + 1;
		he = strchr(hs, ']');
		if (he == NULL) {
			snprintf(err, errlen, "parent %s[...: missing ']'", shown);
			goto fail;
		}
		p = he + 1;
		ip6 = 1;
	} else {
		hs = hostpart;
		he = hs;
		while (*he && *he != ':' && *he != '/')
			he++;
		p = he;
	}
	size_t hl = (size_t)(he - hs);
	if (hl == 0 || hl >= ROUTE_HOST_MAX) {
		snprintf(err, errlen, "parent %s: missing or too long host", shown);
		goto fail;
	}
	memcpy(out->host, hs, hl);
	out->host[hl] = '\0';
	if (ip6) {
		struct in6_addr a6;
		if (inet_pton(AF_INET6, out->host, &a6) != 1) {
			snprintf(err, errlen, "parent %s[%.64s]: not an IPv6 address", shown, out->host);
			goto fail;
		}
	} else {
		for (size_t i = 0; i < hl; i++)
			if (!valid_host_char((unsigned char)out->host[i])) {
				snprintf(err, errlen, "parent %s%.64s: bad character in the host name", shown,
					 out->host);
				goto fail;
			}
	}
	if (*p != ':') {
		snprintf(err, errlen, "parent %s%.64s: the port is required (host:port)", shown, out->host);
		goto fail;
	}
	p++;
	unsigned long port = 0;
	int nd = 0;
	for (; *p >= '0' && *p <= '9' && nd < 6; p++, nd++)
		port = port * 10 + (unsigned long)(*p - '0');
	if (nd == 0 || nd > 5 || port == 0 || port > 65535 || (*p != '\0' && strcmp(p, "/") != 0)) {
		snprintf(err, errlen, "parent %s%.64s: bad port (1 to 65535, nothing after it)", shown,
			 out->host);
		goto fail;
	}
	out->port = (uint16_t)port;
	for (char *q = out->host; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	snprintf(out->label, sizeof(out->label), ip6 ? "%s://[%s]:%u" : "%s://%s:%u", scheme, out->host,
		 (unsigned)out->port);
	if (out->kind == ROUTE_HTTP && out->user != NULL) {
		size_t ul = strlen(out->user), pl = strlen(out->pass);
		unsigned char raw[2 * ROUTE_CRED_MAX + 2];
		memcpy(raw, out->user, ul);
		raw[ul] = ':';
		memcpy(raw + ul + 1, out->pass, pl);
		size_t need = 34 + ((ul + pl + 1 + 2) / 3) * 4 + 3;
		out->auth_header = malloc(need);
		if (out->auth_header == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		strcpy(out->auth_header, "Proxy-Authorization: Basic ");
		size_t o = strlen(out->auth_header);
		o += base64(raw, ul + 1 + pl, out->auth_header + o);
		strcpy(out->auth_header + o, "\r\n");
	}
	return FERRY_OK;
badcred:
	snprintf(err, errlen, "parent %s...: control characters in the credentials", shown);
fail:
	route_parent_free(out);
	return FERRY_ERR;
}

/* Find or add the parent for url; its id in *id. */
static int table_parent(struct route_table *t, const char *url, unsigned *id, char *err, size_t errlen)
{
	struct route_parent np;
	if (route_parent_parse(url, &np, err, errlen) != FERRY_OK)
		return FERRY_ERR;
	for (size_t i = 0; i < t->nparents; i++) {
		struct route_parent *q = t->parents[i];
		int same_cred = (q->user == NULL && np.user == NULL) ||
				(q->user && np.user && strcmp(q->user, np.user) == 0 && strcmp(q->pass, np.pass) == 0);
		if (q->kind == np.kind && q->port == np.port && strcmp(q->host, np.host) == 0 && same_cred) {
			route_parent_free(&np);
			*id = (unsigned)i;
			return FERRY_OK;
		}
	}
	struct route_parent **v = realloc(t->parents, (t->nparents + 1) * sizeof(*v));
	struct route_parent *p = malloc(sizeof(*p));
	if (v != NULL)
		t->parents = v;
	if (v == NULL || p == NULL) {
		free(p);
		route_parent_free(&np);
		snprintf(err, errlen, "out of memory");
		return FERRY_ERR;
	}
	*p = np;
	p->id = (unsigned)t->nparents;
	t->parents[t->nparents++] = p;
	*id = p->id;
	return FERRY_OK;
}

static int target_add(struct route_target *tg, unsigned id, char *err, size_t errlen)
{
	if (tg->n >= ROUTE_TARGET_MAX) {
		/* route_next keeps the parents tried by a request as bits of an int */
		snprintf(err, errlen, "at most %d parents for one destination", ROUTE_TARGET_MAX);
		return FERRY_ERR;
	}
	for (size_t i = 0; i < tg->n; i++)
		if (tg->parents[i] == id) {
			snprintf(err, errlen, "the same parent is listed twice");
			return FERRY_ERR;
		}
	unsigned *v = realloc(tg->parents, (tg->n + 1) * sizeof(*v));
	if (v == NULL) {
		snprintf(err, errlen, "out of memory");
		return FERRY_ERR;
	}
	tg->parents = v;
	tg->parents[tg->n++] = id;
	return FERRY_OK;
}

/* Split value on blanks and commas; call fn for each word. */
static int each_word(const char *value, int (*fn)(void *, const char *, char *, size_t), void *arg,
		     char *err, size_t errlen)
{
	char word[1024];
	const char *s = value;
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (*s == '\0')
			return FERRY_OK;
		const char *b = s;
		while (*s && *s != ' ' && *s != '\t' && *s != ',')
			s++;
		size_t n = (size_t)(s - b);
		if (n >= sizeof(word)) {
			/* not shown: it may hold a password */
			snprintf(err, errlen, "a word of more than %zu characters", sizeof(word) - 1);
			return FERRY_ERR;
		}
		memcpy(word, b, n);
		word[n] = '\0';
		if (fn(arg, word, err, errlen) != FERRY_OK)
			return FERRY_ERR;
	}
}

struct target_ctx {
	struct route_table *t;
	struct route_target *tg;
	int words;
};

static int target_word(void *arg, const char *w, char *err, size_t errlen)
{
	struct target_ctx *x = arg;
	x->words++;
	if (strcasecmp(w, "direct") == 0) {
		if (x->tg->n > 0 || x->tg->direct || x->words > 1) {
			snprintf(err, errlen, "'direct' cannot be combined with parents");
			return FERRY_ERR;
		}
		x->tg->direct = 1;
		return FERRY_OK;
	}
	if (x->tg->direct) {
		snprintf(err, errlen, "'direct' cannot be combined with parents");
		return FERRY_ERR;
	}
	unsigned id;
	if (table_parent(x->t, w, &id, err, errlen) != FERRY_OK)
		return FERRY_ERR;
	return target_add(x->tg, id, err, errlen);
}

int route_table_add_parent(struct route_table *t, const char *value, char *err, size_t errlen)
{
	struct target_ctx x = { t, &t->deflt, 0 };
	t->deflt.direct = 0;
	if (strcasecmp(value, "direct") == 0) {
		snprintf(err, errlen, "'direct' is the default without parent; use route = * direct");
		return FERRY_ERR;
	}
	return each_word(value, target_word, &x, err, errlen);
}

int route_table_add_rule(struct route_table *t, const char *value, int line, char *err,
			 size_t errlen)
{
	char match[ROUTE_HOST_MAX + 8];
	const char *s = value;
	while (*s == ' ' || *s == '\t')
		s++;
	const char *b = s;
	while (*s && *s != ' ' && *s != '\t')
		s++;
	size_t n = (size_t)(s - b);
	if (n == 0 || *s == '\0') {
		snprintf(err, errlen, "expected 'SUFFIX-OR-CIDR direct' or 'SUFFIX-OR-CIDR PARENT-URL...'");
		return FERRY_ERR;
	}
	/* a parent URL where the match belongs (forgotten): not repeated, it may hold a password */
	int url = memchr(b, '@', n) != NULL;
	for (size_t i = 0; i + 3 <= n && !url; i++)
		url = memcmp(b + i, "://", 3) == 0;
	if (url) {
		snprintf(err, errlen, "the first word must be a domain suffix or a CIDR, not a URL "
			 "(route = SUFFIX-OR-CIDR TARGET...)");
		return FERRY_ERR;
	}
	if (n >= sizeof(match)) {
		snprintf(err, errlen, "'%.32s...' is too long", b);
		return FERRY_ERR;
	}
	memcpy(match, b, n);
	match[n] = '\0';

	struct route_rule r;
	memset(&r, 0, sizeof(r));
	r.line = line;
	char cerr[128];
	int looks_ip = strchr(match, '/') != NULL || strchr(match, ':') != NULL;
	if (!looks_ip) {
		struct in_addr a4;
		looks_ip = inet_pton(AF_INET, match, &a4) == 1;
	}
	if (looks_ip) {
		if (cidr_parse(match, &r.cidr, cerr, sizeof(cerr)) != FERRY_OK) {
			snprintf(err, errlen, "'%s': %s", match, cerr);
			return FERRY_ERR;
		}
		r.is_cidr = 1;
	} else {
		const char *m = match;
		if (m[0] == '*' && m[1] == '.')
			m += 2;
		else if (m[0] == '.')
			m++;
		if (strcmp(match, "*") != 0) {
			if (*m == '\0') {
				snprintf(err, errlen, "'%s' is not a domain suffix or a CIDR", match);
				return FERRY_ERR;
			}
			for (const char *q = m; *q; q++)
				if (!valid_host_char((unsigned char)*q)) {
					snprintf(err, errlen, "'%s' is not a domain suffix or a CIDR", match);
					return FERRY_ERR;
				}
		} else {
			m = "*";
		}
		r.suffix = strdup(m);
		if (r.suffix == NULL) {
			snprintf(err, errlen, "out of memory");
			return FERRY_ERR;
		}
		size_t sl = strlen(r.suffix);
		while (sl > 1 && r.suffix[sl - 1] == '.')
			r.suffix[--sl] = '\0';
		for (char *q = r.suffix; *q; q++)
			*q = (char)tolower((unsigned char)*q);
	}
	struct target_ctx x = { t, &r.target, 0 };
	if (each_word(s, target_word, &x, err, errlen) != FERRY_OK)
		goto fail;
	if (!r.target.direct && r.target.n == 0) {
		snprintf(err, errlen, "no target: 'direct' or parent URLs");
		goto fail;
	}
	struct route_rule *v = realloc(t->rules, (t->nrules + 1) * sizeof(*v));
	if (v == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	t->rules = v;
	t->rules[t->nrules++] = r;
	return FERRY_OK;
fail:
	free(r.suffix);
	free(r.target.parents);
	return FERRY_ERR;
}

int route_table_active(const struct route_table *t)
{
	return t != NULL && t->nparents > 0;
}

int route_table_prepare(struct route_table *t, int nworkers)
{
	free(t->down_until);
	t->down_until = NULL;
	t->nworkers = nworkers;
	if (t->nparents == 0 || nworkers <= 0)
		return FERRY_OK;
	t->down_until = calloc((size_t)nworkers * t->nparents, sizeof(*t->down_until));
	return t->down_until ? FERRY_OK : FERRY_ERR;
}

void route_table_free(struct route_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nparents; i++) {
		route_parent_free(t->parents[i]);
		free(t->parents[i]);
	}
	free(t->parents);
	for (size_t i = 0; i < t->nrules; i++) {
		free(t->rules[i].suffix);
		free(t->rules[i].target.parents);
	}
	free(t->rules);
	free(t->deflt.parents);
	free(t->down_until);
	memset(t, 0, sizeof(*t));
}

static int suffix_match(const char *suffix, const char *host)
{
	if (strcmp(suffix, "*") == 0)
		return 1;
	size_t hl = strlen(host), sl = strlen(suffix);
	while (hl > 0 && host[hl - 1] == '.')
		hl--;
	if (hl < sl || strncasecmp(host + hl - sl, suffix, sl) != 0)
		return 0;
	return hl == sl || host[hl - sl - 1] == '.';
}

const struct route_target *route_match(const struct route_table *t, const char *host)
{
	static const struct route_target direct = { 1, 0, NULL };
	if (t == NULL)
		return &direct;
	struct sockaddr_storage ss;
	int is_ip = 0;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		is_ip = 1;
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		is_ip = 1;
	}
	for (size_t i = 0; i < t->nrules; i++) {
		const struct route_rule *r = &t->rules[i];
		if (r->is_cidr) {
			if (!is_ip)
				continue;
			struct cidr_list one = { (struct cidr *)&r->cidr, 1 };
			if (cidr_list_match(&one, (const struct sockaddr *)&ss))
				return &r->target;
		} else if (strcmp(r->suffix, "*") == 0 || (!is_ip && suffix_match(r->suffix, host))) {
			return &r->target;
		}
	}
	if (t->deflt.n > 0)
		return &t->deflt;
	return &direct;
}

static int parent_down(const struct route_table *t, unsigned id, int worker, uint64_t now)
{
	if (t->down_until == NULL || worker < 0 || worker >= t->nworkers)
		return 0;
	return t->down_until[(size_t)worker * t->nparents + id] > now;
}

const struct route_parent *route_next(const struct route_table *t, const struct route_target *target,
				      int worker, uint64_t now, int *pos)
{
	/* *pos is the set of positions this request has tried, one bit each (-1: none yet). It
	 * is a set, not an index, so that the parents passed over for being down are still
	 * tried once the others have failed, rather than the list ending on them. */
	unsigned tried = *pos < 0 ? 0 : (unsigned)*pos;
	int pick = -1, first_down = -1;
	if (target->direct)
		return NULL;
	for (int i = 0; i < (int)target->n && i < ROUTE_TARGET_MAX; i++) {
		if (tried & (1u << i))
			continue;
		if (!parent_down(t, target->parents[i], worker, now)) {
			pick = i;
			break;
		}
		if (first_down < 0)
			first_down = i;
	}
	/* every parent not yet tried failed recently: better to try one than to refuse */
	if (pick < 0)
		pick = first_down;
	if (pick < 0)
		return NULL;
	*pos = (int)(tried | 1u << pick);
	return t->parents[target->parents[pick]];
}

void route_parent_failed(const struct route_table *t, const struct route_parent *p, int worker,
			 uint64_t now)
{
	if (t->down_until == NULL || worker < 0 || worker >= t->nworkers)
		return;
	t->down_until[(size_t)worker * t->nparents + p->id] = now + ROUTE_SKIP_MS;
}

void route_parent_ok(const struct route_table *t, const struct route_parent *p, int worker)
{
	if (t->down_until == NULL || worker < 0 || worker >= t->nworkers)
		return;
	t->down_until[(size_t)worker * t->nparents + p->id] = 0;
}
