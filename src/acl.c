/* acl.c - CIDR lists and port ranges.
 *
 * Lists are plain arrays scanned linearly: they hold a handful of entries, are built once at
 * config load and then only read, and a scan of a few cache lines beats anything clever at
 * this size. Matching allocates nothing and takes no locks, so every worker may use the
 * same lists at once. */
#include "acl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static int acl_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int acl_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return FERRY_ERR;
}

/* Parse a decimal number of at most maxdigits digits, nothing else (no sign, no space). */
static int parse_decimal(const char *s, size_t len, unsigned maxdigits, unsigned long *out)
{
	unsigned long v = 0;
	size_t i;

	if (len == 0 || len > maxdigits)
		return FERRY_ERR;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return FERRY_ERR;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	*out = v;
	return FERRY_OK;
}

/* Do the first prefix bits of a and b agree? */
static int prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned bytes = prefix / 8, bits = prefix % 8;
	uint8_t mask;

	if (bytes && memcmp(a, b, bytes) != 0)
		return 0;
	if (bits == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - bits));
	return ((a[bytes] ^ b[bytes]) & mask) == 0;
}

/* Clear every bit beyond prefix in an address of len bytes. */
static void mask_host_bits(uint8_t *addr, size_t len, unsigned prefix)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned first = (unsigned)i * 8;
		if (first >= prefix)
			addr[i] = 0;
		else if (prefix - first < 8)
			addr[i] &= (uint8_t)(0xff << (8 - (prefix - first)));
	}
}

int cidr_parse(const char *s, struct cidr *out, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1], netbuf[INET6_ADDRSTRLEN];
	const char *slash;
	size_t hostlen, alen;
	unsigned maxprefix;
	unsigned long prefix;
	struct cidr c;

	if (s == NULL || *s == '\0')
		return acl_fail(err, errlen, "empty address");
	slash = strchr(s, '/');
	hostlen = slash ? (size_t)(slash - s) : strlen(s);
	if (hostlen == 0)
		return acl_fail(err, errlen, "'%s': address missing before '/'", s);
	if (hostlen >= sizeof(host))
		return acl_fail(err, errlen, "'%s' is not an IP address", s);
	memcpy(host, s, hostlen);
	host[hostlen] = '\0';

	memset(&c, 0, sizeof(c));
	if (strchr(host, ':')) {
		c.family = AF_INET6;
		alen = 16;
	} else {
		c.family = AF_INET;
		alen = 4;
	}
	if (inet_pton(c.family, host, c.addr) != 1)
		return acl_fail(err, errlen, "'%s' is not an IP%s address%s", host,
				c.family == AF_INET6 ? "v6" : "v4",
				c.family == AF_INET ? " (host names are not allowed)" : "");
	maxprefix = (unsigned)alen * 8;

	if (slash) {
		const char *p = slash + 1;
		if (parse_decimal(p, strlen(p), 3, &prefix) != FERRY_OK)
			return acl_fail(err, errlen, "'%s': prefix length must be a number 0..%u",
					s, maxprefix);
		if (prefix > maxprefix)
			return acl_fail(err, errlen, "'%s': prefix length %lu is larger than %u", s,
					prefix, maxprefix);
	} else {
		prefix = maxprefix;
	}
	c.prefix = (unsigned)prefix;

	/* A network written with host bits is usually a typo for a different network; say
	 * which one was probably meant rather than guess. */
	{
		uint8_t net[16];
		memcpy(net, c.addr, sizeof(net));
		mask_host_bits(net, alen, c.prefix);
		if (memcmp(net, c.addr, alen) != 0) {
			if (!inet_ntop(c.family, net, netbuf, sizeof(netbuf)))
				netbuf[0] = '\0';
			return acl_fail(err, errlen,
					"'%s': host bits set beyond the /%u prefix (did you mean %s/%u?)",
					s, c.prefix, netbuf, c.prefix);
		}
	}

	/* Clients are matched with IPv4-mapped addresses unwrapped to IPv4, so a mapped network
	 * is stored as the IPv4 network it denotes; otherwise it could never match. */
	if (c.family == AF_INET6 && c.prefix >= 96 &&
	    memcmp(c.addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
		uint8_t v4[4];
		memcpy(v4, c.addr + 12, 4);
		memset(c.addr, 0, sizeof(c.addr));
		memcpy(c.addr, v4, 4);
		c.family = AF_INET;
		c.prefix -= 96;
	}

	*out = c;
	return FERRY_OK;
}

int cidr_list_add(struct cidr_list *l, const struct cidr *c)
{
	/* Grown one entry at a time: lists are short and built once, at config load. */
	struct cidr *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (v == NULL)
		return FERRY_ERR;
	v[l->n] = *c;
	l->v = v;
	l->n++;
	return FERRY_OK;
}

void cidr_list_free(struct cidr_list *l)
{
	if (l == NULL)
		return;
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	const uint8_t *addr;
	int family;
	size_t i;

	if (l == NULL || sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		family = AF_INET;
		addr = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		addr = sin6->sin6_addr.s6_addr;
		family = AF_INET6;
		/* A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d. */
		if (memcmp(addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
			addr += 12;
			family = AF_INET;
		}
	} else {
		return 0;
	}

	for (i = 0; i < l->n; i++) {
		const struct cidr *c = &l->v[i];
		if (c->family == family && prefix_equal(c->addr, addr, c->prefix))
			return 1;
	}
	return 0;
}

int port_range_parse(const char *s, struct port_range *out, char *err, size_t errlen)
{
	const char *dash;
	unsigned long lo, hi;
	size_t lolen;

	if (s == NULL || *s == '\0')
		return acl_fail(err, errlen, "empty port");
	dash = strchr(s, '-');
	lolen = dash ? (size_t)(dash - s) : strlen(s);
	if (parse_decimal(s, lolen, 5, &lo) != FERRY_OK ||
	    (dash && parse_decimal(dash + 1, strlen(dash + 1), 5, &hi) != FERRY_OK))
		return acl_fail(err, errlen, "'%s' is not a port or a port range (443, 8000-8100)",
				s);
	if (!dash)
		hi = lo;
	if (lo < 1 || lo > 65535 || hi < 1 || hi > 65535)
		return acl_fail(err, errlen, "'%s': ports are 1..65535", s);
	if (lo > hi)
		return acl_fail(err, errlen, "'%s': range is reversed (%lu-%lu?)", s, hi, lo);
	out->lo = (uint16_t)lo;
	out->hi = (uint16_t)hi;
	return FERRY_OK;
}

int port_list_add(struct port_list *l, const struct port_range *r)
{
	struct port_range *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (v == NULL)
		return FERRY_ERR;
	v[l->n] = *r;
	l->v = v;
	l->n++;
	return FERRY_OK;
}

void port_list_free(struct port_list *l)
{
	if (l == NULL)
		return;
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int port_list_match(const struct port_list *l, uint16_t port)
{
	size_t i;

	if (l == NULL)
		return 0;
	for (i = 0; i < l->n; i++)
		if (port >= l->v[i].lo && port <= l->v[i].hi)
			return 1;
	return 0;
}
