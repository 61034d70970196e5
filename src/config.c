/* config.c - proxy.ini -> struct config.
 *
 * inih does the key = value splitting, but it is driven through our own line reader
 * (ini_parse_stream) because inih alone cannot give what users need from a config checker:
 *  - every error with its line: inih 55 does not tell the handler the line number and
 *    reports only the first bad line. Lines are fed to inih one per reader call and the
 *    handler runs before the next call, so the reader's count is the handler's line.
 *  - long lines: inih cuts a line at INI_MAX_LINE and reports the rest on a wrong line, so
 *    the reader refuses such lines itself and feeds inih an empty line instead.
 *  - syntax errors (a line with no '=', a broken [section]) are found by the reader, which
 *    also keeps track of the current section, so inih only ever sees "key = value" lines.
 *  - continuation lines: inih would glue an indented line to the previous key (so an
 *    indented "threads = 4" would become part of the value above it). The reader strips
 *    leading whitespace, which turns continuation off: indentation is free, and a list is
 *    split over repeated keys instead.
 * The handler never fails towards inih; it reports through the caller's callback and counts. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <ifaddrs.h>
#include <ini.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "status.h"

#define CONFIG_AUTO (-1)       /* processes/threads = auto, until resolved */
#define CONFIG_MAX_AUTO 256
#define TIMEOUT_MAX_MS 86400000u
#define VIA_NAME_MAX 255
#define REALM_MAX 128

enum section {
	SEC_NONE = -2, /* before the first [section] */
	SEC_BAD = -1,  /* inside an unknown or broken [section]: its keys were reported with it */
	SEC_SERVER = 0,
	SEC_TIMEOUTS,
	SEC_LIMITS,
	SEC_ACCESS,
	SEC_AUTH,
	SEC_LOG,
	SEC_ADMIN,
	SEC_DNS,
	SEC_UPSTREAM,
	SEC_COUNT
};

static const char *const section_names[SEC_COUNT] = {
	"server", "timeouts", "limits", "access", "auth", "log", "admin", "dns", "upstream",
};

enum kind {
	K_LISTEN,       /* [server] listen: list of addresses */
	K_ADMIN_LISTEN, /* [admin] listen: one address */
	K_COUNT,        /* int, a number or "auto" */
	K_INT,
	K_UINT,
	K_MUX,
	K_BOOL,
	K_VIA,
	K_PATH,
	K_USER,
	K_GROUP,
	K_REALM,
	K_TIMEOUT,
	K_CIDRS,
	K_PORTS,
	K_LOG_TARGET,
	K_LEVEL,
	K_DNS_SERVERS,  /* [dns] servers: list of IP[:PORT], kept as one c-ares CSV string */
	K_DOMAINS_ALLOW, /* [access] allow_domains: list of domain patterns */
	K_DOMAINS_DENY,  /* [access] deny_domains */
	K_PARENT,        /* [upstream] parent: parent proxy URLs (route.c) */
	K_ROUTE,         /* [upstream] route: one rule per line, parsed whole (route.c) */
};

#define F_LIST 1u       /* repeatable: the first occurrence replaces the default, later append */
#define F_ZERO 2u       /* timeout: 0 is allowed */
#define F_OPTIONAL 4u   /* the default is "none", and an empty value says so */
#define F_EMPTY_LIST 8u /* an empty first occurrence means an empty list */

struct key {
	enum section sec;
	const char *name;
	enum kind kind;
	size_t off;
	unsigned long min, max;
	unsigned flags;
};

#define OFF(field) offsetof(struct config, field)

static const struct key keys[] = {
	{ SEC_SERVER, "listen", K_LISTEN, OFF(listen), 0, 0, F_LIST },
	{ SEC_SERVER, "processes", K_COUNT, OFF(processes), 1, 256, 0 },
	{ SEC_SERVER, "threads", K_COUNT, OFF(threads), 1, 256, 0 },
	{ SEC_SERVER, "max_connections", K_INT, OFF(max_connections), 1, 1000000, 0 },
	{ SEC_SERVER, "multiplexer", K_MUX, OFF(multiplexer), 0, 0, 0 },
	{ SEC_SERVER, "backlog", K_INT, OFF(backlog), 1, 65535, 0 },
	{ SEC_SERVER, "daemon", K_BOOL, OFF(daemon), 0, 0, 0 },
	{ SEC_SERVER, "pidfile", K_PATH, OFF(pidfile), 0, 0, F_OPTIONAL },
	{ SEC_SERVER, "user", K_USER, OFF(user), 0, 0, F_OPTIONAL },
	{ SEC_SERVER, "group", K_GROUP, OFF(group), 0, 0, F_OPTIONAL },
	{ SEC_SERVER, "via_name", K_VIA, OFF(via_name), 0, 0, 0 },
	{ SEC_SERVER, "proxy_protocol", K_BOOL, OFF(proxy_protocol), 0, 0, 0 },
	{ SEC_SERVER, "proxy_protocol_from", K_CIDRS, OFF(proxy_protocol_from), 0, 0,
	  F_LIST | F_EMPTY_LIST },

	{ SEC_TIMEOUTS, "request_header", K_TIMEOUT, OFF(request_header_ms), 0, 0, 0 },
	{ SEC_TIMEOUTS, "client_idle", K_TIMEOUT, OFF(client_idle_ms), 0, 0, 0 },
	{ SEC_TIMEOUTS, "connect", K_TIMEOUT, OFF(connect_ms), 0, 0, 0 },
	{ SEC_TIMEOUTS, "upstream_idle", K_TIMEOUT, OFF(upstream_idle_ms), 0, 0, 0 },
	{ SEC_TIMEOUTS, "tunnel_idle", K_TIMEOUT, OFF(tunnel_idle_ms), 0, 0, 0 },
	{ SEC_TIMEOUTS, "pool_idle", K_TIMEOUT, OFF(pool_idle_ms), 0, 0, F_ZERO },
	{ SEC_TIMEOUTS, "shutdown", K_TIMEOUT, OFF(shutdown_ms), 0, 0, F_ZERO },
	{ SEC_TIMEOUTS, "dns", K_TIMEOUT, OFF(dns_ms), 0, 0, 0 },

	{ SEC_LIMITS, "request_line", K_UINT, OFF(request_line), 64, 1048576, 0 },
	{ SEC_LIMITS, "request_header_size", K_UINT, OFF(request_header_size), 1024, 1048576, 0 },
	{ SEC_LIMITS, "header_fields", K_UINT, OFF(header_fields), 1, 10000, 0 },
	{ SEC_LIMITS, "per_client", K_UINT, OFF(per_client), 0, 1000000, 0 },

	{ SEC_ACCESS, "allow", K_CIDRS, OFF(allow), 0, 0, F_LIST },
	{ SEC_ACCESS, "deny", K_CIDRS, OFF(deny), 0, 0, F_LIST | F_EMPTY_LIST },
	{ SEC_ACCESS, "connect_ports", K_PORTS, OFF(connect_ports), 0, 0, F_LIST },
	{ SEC_ACCESS, "block_destinations", K_CIDRS, OFF(block_destinations), 0, 0,
	  F_LIST | F_EMPTY_LIST },
	{ SEC_ACCESS, "allow_domains", K_DOMAINS_ALLOW, OFF(domains), 0, 0, F_LIST | F_EMPTY_LIST },
	{ SEC_ACCESS, "deny_domains", K_DOMAINS_DENY, OFF(domains), 0, 0, F_LIST | F_EMPTY_LIST },
	{ SEC_ACCESS, "domains_file", K_PATH, OFF(domains_file), 0, 0, F_OPTIONAL },

	{ SEC_AUTH, "htpasswd", K_PATH, OFF(htpasswd), 0, 0, F_OPTIONAL },
	{ SEC_AUTH, "realm", K_REALM, OFF(realm), 0, 0, 0 },

	{ SEC_LOG, "access_log", K_LOG_TARGET, OFF(access_log), 0, 0, 0 },
	{ SEC_LOG, "error_log", K_LOG_TARGET, OFF(error_log), 0, 0, 0 },
	{ SEC_LOG, "level", K_LEVEL, OFF(log_level), 0, 0, 0 },

	{ SEC_ADMIN, "listen", K_ADMIN_LISTEN, OFF(admin_listen), 0, 0, F_OPTIONAL },
	{ SEC_ADMIN, "allow", K_CIDRS, OFF(admin_allow), 0, 0, F_LIST },

	{ SEC_DNS, "servers", K_DNS_SERVERS, OFF(dns_servers), 0, 0, F_LIST | F_EMPTY_LIST },
	{ SEC_DNS, "cache_size", K_UINT, OFF(dns_cache_size), 0, 1000000, 0 },

	{ SEC_UPSTREAM, "parent", K_PARENT, OFF(routes), 0, 0, F_LIST | F_EMPTY_LIST },
	{ SEC_UPSTREAM, "route", K_ROUTE, OFF(routes), 0, 0, F_LIST | F_EMPTY_LIST },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))
_Static_assert(NKEYS <= sizeof(((struct config *)0)->key_lines) / sizeof(int),
	       "struct config: key_lines too small");

static const char *const default_allow[] = { "127.0.0.0/8", "::1" };
static const char *const default_block[] = {
	"127.0.0.0/8", "::1", "0.0.0.0/8", "169.254.0.0/16", "fe80::/10", "::/128",
};

struct parse {
	struct config *cfg;
	const char *name;       /* for messages */
	config_error_fn *errfn;
	void *arg;
	int nerrors;
	int oom;

	const char *text;       /* the whole input */
	size_t len, pos;
	int line;               /* of the line last handed to inih */
	enum section sec;
	int seen[NKEYS];        /* line of the first occurrence, 0 if none */
};

static void vreport(struct parse *p, const char *file, int line, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

/* An error in file (the config itself, or a file it names) at line (0: none applies). */
static void vreport(struct parse *p, const char *file, int line, const char *fmt, va_list ap)
{
	char msg[1024];
	size_t n;
	int r;

	if (line > 0)
		r = snprintf(msg, sizeof(msg), "%s: line %d: ", file, line);
	else
		r = snprintf(msg, sizeof(msg), "%s: ", file);
	n = r < 0 ? 0 : (size_t)r < sizeof(msg) ? (size_t)r : sizeof(msg) - 1;
	vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
	/* Values are echoed back: keep a stray escape sequence off the operator's terminal. */
	for (n = 0; msg[n]; n++)
		if ((unsigned char)msg[n] < 0x20 || msg[n] == 0x7f)
			msg[n] = '?';

	p->nerrors++;
	if (p->errfn)
		p->errfn(p->arg, msg);
	else
		fprintf(stderr, "%s\n", msg);
}

static void report(struct parse *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct parse *p, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(p, p->name, line, fmt, ap);
	va_end(ap);
}

static void report_in(struct parse *p, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void report_in(struct parse *p, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(p, file, line, fmt, ap);
	va_end(ap);
}

static void key_error(struct parse *p, const struct key *k, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void key_error(struct parse *p, const struct key *k, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	report(p, p->line, "[%s] %s: %s", section_names[k->sec], k->name, msg);
}

static void *field(struct config *cfg, const struct key *k)
{
	return (char *)cfg + k->off;
}

static int is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\f' || c == '\v' || c == '\r';
}

/* ---- values ---- */

/* A whole number written in decimal digits only; values too large to matter saturate. */
static int parse_number(const char *s, unsigned long long *out)
{
	unsigned long long v = 0;

	if (*s == '\0')
		return FERRY_ERR;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return FERRY_ERR;
		if (v < 1000000000000ull)
			v = v * 10 + (unsigned long long)(*s - '0');
	}
	*out = v;
	return FERRY_OK;
}

/* Seconds with up to three decimals ("30", "0.5", "1.25") into milliseconds. */
static int parse_seconds(const char *s, unsigned long long *ms, int *too_precise)
{
	unsigned long long whole = 0, frac = 0;
	int ndigits = 0, nfrac = 0;

	*too_precise = 0;
	for (; *s >= '0' && *s <= '9'; s++, ndigits++)
		if (whole < 1000000000ull)
			whole = whole * 10 + (unsigned long long)(*s - '0');
	if (ndigits == 0)
		return FERRY_ERR;
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, nfrac++) {
			if (nfrac < 3)
				frac = frac * 10 + (unsigned long long)(*s - '0');
			else if (*s != '0')
				*too_precise = 1;
		}
		if (nfrac == 0)
			return FERRY_ERR;
	}
	if (*s != '\0')
		return FERRY_ERR;
	for (; nfrac < 3; nfrac++)
		frac *= 10;
	*ms = whole * 1000 + frac;
	return FERRY_OK;
}

static int parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return FERRY_OK;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return FERRY_OK;
		}
	}
	return FERRY_ERR;
}

/* "127.0.0.1:3128", "[::1]:3128", ":3128" or "*:3128" (all IPv4 addresses). */
static int listen_parse(const char *s, struct config_listen *out, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port, *colon;
	size_t hostlen;
	unsigned long long portnum;
	int family;

	memset(out, 0, sizeof(*out));
	if (strlen(s) >= sizeof(out->text)) {
		snprintf(err, errlen, "'%s' is not an address:port", s);
		return FERRY_ERR;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':') {
			snprintf(err, errlen, "'%s': expected [IPv6]:PORT, e.g. [::1]:3128", s);
			return FERRY_ERR;
		}
		hostlen = (size_t)(close - s - 1);
		if (hostlen >= sizeof(host))
			hostlen = sizeof(host) - 1;
		memcpy(host, s + 1, hostlen);
		host[hostlen] = '\0';
		port = close + 2;
		family = AF_INET6;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			snprintf(err, errlen,
				 "'%s': missing port (127.0.0.1:3128, [::1]:3128, or :3128 for all "
				 "addresses)", s);
			return FERRY_ERR;
		}
		if (memchr(s, ':', (size_t)(colon - s))) {
			snprintf(err, errlen, "'%s': an IPv6 address needs brackets, e.g. [::1]:3128",
				 s);
			return FERRY_ERR;
		}
		hostlen = (size_t)(colon - s);
		if (hostlen >= sizeof(host))
			hostlen = sizeof(host) - 1;
		memcpy(host, s, hostlen);
		host[hostlen] = '\0';
		if (host[0] == '\0' || strcmp(host, "*") == 0)
			strcpy(host, "0.0.0.0");
		port = colon + 1;
		family = AF_INET;
	}
	if (parse_number(port, &portnum) != FERRY_OK || portnum < 1 || portnum > 65535) {
		snprintf(err, errlen, "'%s': port must be a number 1..65535", s);
		return FERRY_ERR;
	}
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			snprintf(err, errlen, "'%s': '%s' is not an IPv4 address (host names are not "
				 "allowed here)", s, host);
			return FERRY_ERR;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)portnum);
		out->addrlen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			snprintf(err, errlen, "'%s': '%s' is not an IPv6 address", s, host);
			return FERRY_ERR;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)portnum);
		out->addrlen = sizeof(*sin6);
	}
	strcpy(out->text, s);
	return FERRY_OK;
}

static int listen_same(const struct config_listen *a, const struct config_listen *b)
{
	if (a->addr.ss_family != b->addr.ss_family)
		return 0;
	if (a->addr.ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)&a->addr;
		const struct sockaddr_in *y = (const struct sockaddr_in *)&b->addr;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	} else {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->addr;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->addr;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
}

static uint16_t listen_port(const struct config_listen *l)
{
	if (l->addr.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&l->addr)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&l->addr)->sin6_port);
}

static int listen_add(struct config *cfg, const struct config_listen *l)
{
	struct config_listen *v = realloc(cfg->listen, (cfg->nlisten + 1) * sizeof(*v));

	if (v == NULL)
		return FERRY_ERR;
	v[cfg->nlisten++] = *l;
	cfg->listen = v;
	return FERRY_OK;
}

/* A DNS server: "192.0.2.53", "192.0.2.53:5353", "[2001:db8::53]" or "[2001:db8::53]:5353".
 * out gets it as c-ares takes it, always with the port and the address in its usual spelling
 * ("192.0.2.53:53", "[2001:db8::53]:53"), so that equal servers compare equal as text. */
static int dns_server_parse(const char *s, char *out, size_t outlen, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1], text[INET6_ADDRSTRLEN];
	unsigned char addr[16];
	const char *start, *end, *port = NULL;
	unsigned long long portnum = 53;
	int family;

	if (s[0] == '[') {
		end = strchr(s, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':')) {
			snprintf(err, errlen, "'%s': expected [IPv6] or [IPv6]:PORT, e.g. [::1]:53",
				 s);
			return FERRY_ERR;
		}
		start = s + 1;
		if (end[1] == ':')
			port = end + 2;
		family = AF_INET6;
	} else {
		end = strchr(s, ':');
		if (end && strchr(end + 1, ':')) {
			snprintf(err, errlen, "'%s': an IPv6 address needs brackets, e.g. [::1]:53",
				 s);
			return FERRY_ERR;
		}
		if (end)
			port = end + 1;
		else
			end = s + strlen(s);
		start = s;
		family = AF_INET;
	}
	if (end == start) {
		snprintf(err, errlen, "'%s': missing address", s);
		return FERRY_ERR;
	}
	if ((size_t)(end - start) >= sizeof(host)) {
		snprintf(err, errlen, "'%s' is not an address", s);
		return FERRY_ERR;
	}
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	if (port && (parse_number(port, &portnum) != FERRY_OK || portnum < 1 || portnum > 65535)) {
		snprintf(err, errlen, "'%s': port must be a number 1..65535", s);
		return FERRY_ERR;
	}
	if (inet_pton(family, host, addr) != 1) {
		if (family == AF_INET)
			snprintf(err, errlen, "'%s': '%s' is not an IPv4 address (host names are "
				 "not allowed here)", s, host);
		else
			snprintf(err, errlen, "'%s': '%s' is not an IPv6 address", s, host);
		return FERRY_ERR;
	}
	inet_ntop(family, addr, text, sizeof(text));
	snprintf(out, outlen, family == AF_INET6 ? "[%s]:%llu" : "%s:%llu", text, portnum);
	return FERRY_OK;
}

/* Is item one of the entries of the comma-separated list csv? */
static int csv_has(const char *csv, const char *item)
{
	size_t n = strlen(item);

	while (csv) {
		if (strncmp(csv, item, n) == 0 && (csv[n] == ',' || csv[n] == '\0'))
			return 1;
		csv = strchr(csv, ',');
		if (csv)
			csv++;
	}
	return 0;
}

static int csv_add(char **csv, const char *item)
{
	size_t len = *csv ? strlen(*csv) : 0, n = strlen(item);
	char *s = realloc(*csv, len + n + 2);

	if (s == NULL)
		return FERRY_ERR;
	if (len)
		s[len++] = ',';
	memcpy(s + len, item, n + 1);
	*csv = s;
	return FERRY_OK;
}

static int set_string(char **dst, const char *value)
{
	char *s = NULL;

	if (value && (s = strdup(value)) == NULL)
		return FERRY_ERR;
	free(*dst);
	*dst = s;
	return FERRY_OK;
}

/* ---- one list item ---- */

static void list_item(struct parse *p, const struct key *k, const char *item)
{
	char err[256];

	switch (k->kind) {
	case K_LISTEN: {
		struct config_listen l;
		if (listen_parse(item, &l, err, sizeof(err)) != FERRY_OK) {
			key_error(p, k, "%s", err);
			return;
		}
		l.line = p->line;
		if (listen_add(p->cfg, &l) != FERRY_OK)
			p->oom = 1;
		return;
	}
	case K_CIDRS: {
		struct cidr c;
		if (cidr_parse(item, &c, err, sizeof(err)) != FERRY_OK) {
			key_error(p, k, "%s", err);
			return;
		}
		if (cidr_list_add(field(p->cfg, k), &c) != FERRY_OK)
			p->oom = 1;
		return;
	}
	case K_PORTS: {
		struct port_range r;
		if (port_range_parse(item, &r, err, sizeof(err)) != FERRY_OK) {
			key_error(p, k, "%s", err);
			return;
		}
		if (port_list_add(field(p->cfg, k), &r) != FERRY_OK)
			p->oom = 1;
		return;
	}
	case K_DNS_SERVERS: {
		char server[INET6_ADDRSTRLEN + 16];
		if (dns_server_parse(item, server, sizeof(server), err, sizeof(err)) != FERRY_OK) {
			key_error(p, k, "%s", err);
			return;
		}
		/* c-ares would ask it twice as often as the others: surely a slip. */
		if (csv_has(p->cfg->dns_servers, server)) {
			key_error(p, k, "%s is listed twice", server);
			return;
		}
		if (csv_add(&p->cfg->dns_servers, server) != FERRY_OK)
			p->oom = 1;
		return;
	}
	case K_PARENT:
		if (route_table_add_parent(&p->cfg->routes, item, err, sizeof(err)) != FERRY_OK)
			key_error(p, k, "%s", err);
		return;
	case K_DOMAINS_ALLOW:
	case K_DOMAINS_DENY:
		if (domains_add(&p->cfg->domains, k->kind == K_DOMAINS_ALLOW, item, p->name,
				p->line, err, sizeof(err)) != FERRY_OK)
			key_error(p, k, "%s", err);
		return;
	default:
		return;
	}
}

/* Items are separated by commas and/or whitespace; an empty item (",,") is an error. */
static void list_value(struct parse *p, const struct key *k, const char *value)
{
	char item[512];
	const char *s = value, *start;
	int after_comma = 0;
	size_t n;

	for (;;) {
		while (is_blank(*s))
			s++;
		if (*s == '\0') {
			if (after_comma)
				key_error(p, k, "empty item at the end of the list");
			return;
		}
		if (*s == ',') {
			key_error(p, k, "empty item in the list");
			s++;
			after_comma = 0;
			continue;
		}
		start = s;
		while (*s && *s != ',' && !is_blank(*s))
			s++;
		n = (size_t)(s - start);
		if (n >= sizeof(item))
			n = sizeof(item) - 1;
		memcpy(item, start, n);
		item[n] = '\0';
		list_item(p, k, item);
		while (is_blank(*s))
			s++;
		after_comma = *s == ',';
		if (after_comma)
			s++;
	}
}

static void list_clear(struct config *cfg, const struct key *k)
{
	switch (k->kind) {
	case K_LISTEN:
		free(cfg->listen);
		cfg->listen = NULL;
		cfg->nlisten = 0;
		break;
	case K_CIDRS:
		cidr_list_free(field(cfg, k));
		break;
	case K_PORTS:
		port_list_free(field(cfg, k));
		break;
	case K_DNS_SERVERS:
		free(cfg->dns_servers);
		cfg->dns_servers = NULL;
		break;
	default:
		break;
	}
}

/* ---- single values ---- */

static int valid_via(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && !strchr("-._:[]", s[n]))
			return 0;
	return n <= VIA_NAME_MAX;
}

static int valid_realm(const char *s)
{
	size_t n = 0;

	/* It goes into Proxy-Authenticate: Basic realm="..." as a quoted-string. */
	for (; s[n]; n++)
		if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] >= 0x7f || s[n] == '"' ||
		    s[n] == '\\')
			return 0;
	return n <= REALM_MAX;
}

static void value_user(struct parse *p, const struct key *k, const char *value)
{
	char buf[16384];
	int rc;

	if (k->kind == K_USER) {
		struct passwd pw, *res = NULL;
		rc = getpwnam_r(value, &pw, buf, sizeof(buf), &res);
		if (res == NULL) {
			if (rc != 0 && rc != ENOENT && rc != ESRCH)
				key_error(p, k, "cannot look up user '%s': %s", value, strerror(rc));
			else
				key_error(p, k, "no such user '%s'", value);
			return;
		}
	} else {
		struct group gr, *res = NULL;
		rc = getgrnam_r(value, &gr, buf, sizeof(buf), &res);
		if (res == NULL) {
			if (rc != 0 && rc != ENOENT && rc != ESRCH)
				key_error(p, k, "cannot look up group '%s': %s", value, strerror(rc));
			else
				key_error(p, k, "no such group '%s'", value);
			return;
		}
	}
	if (set_string(field(p->cfg, k), value) != FERRY_OK)
		p->oom = 1;
}

static void value_single(struct parse *p, const struct key *k, const char *value)
{
	struct config *cfg = p->cfg;
	unsigned long long n;
	char err[256];

	if (k->kind == K_COUNT && strcasecmp(value, "auto") == 0) {
		*(int *)field(cfg, k) = CONFIG_AUTO;
		return;
	}
	switch (k->kind) {
	case K_COUNT:
	case K_INT:
	case K_UINT:
		if (parse_number(value, &n) != FERRY_OK) {
			key_error(p, k, "'%s' is not a whole number%s", value,
				  k->kind == K_COUNT ? " or auto" : "");
			return;
		}
		if (n < k->min || n > k->max) {
			key_error(p, k, "%s is out of range (%lu..%lu)", value, k->min, k->max);
			return;
		}
		if (k->kind == K_UINT)
			*(unsigned *)field(cfg, k) = (unsigned)n;
		else
			*(int *)field(cfg, k) = (int)n;
		return;

	case K_MUX:
		if (strcasecmp(value, "auto") == 0) {
			cfg->multiplexer = CONFIG_MUX_AUTO;
		} else if (strcasecmp(value, "poll") == 0) {
			cfg->multiplexer = CONFIG_MUX_POLL;
		} else if (strcasecmp(value, "epoll") == 0) {
#ifdef __linux__
			cfg->multiplexer = CONFIG_MUX_EPOLL;
#else
			key_error(p, k, "epoll is not available on this system");
#endif
		} else {
			key_error(p, k, "'%s' is not one of auto, poll, epoll", value);
		}
		return;

	case K_BOOL:
		if (parse_bool(value, field(cfg, k)) != FERRY_OK)
			key_error(p, k, "'%s' is not a boolean (yes/no, true/false, on/off, 1/0)",
				  value);
		return;

	case K_TIMEOUT: {
		int too_precise;
		unsigned long long min = (k->flags & F_ZERO) ? 0 : 1;
		if (parse_seconds(value, &n, &too_precise) != FERRY_OK) {
			key_error(p, k, "'%s' is not a number of seconds (e.g. 30 or 0.5)", value);
			return;
		}
		if (too_precise) {
			key_error(p, k, "'%s': at most 3 decimals (timeouts count milliseconds)",
				  value);
			return;
		}
		if (n < min || n > TIMEOUT_MAX_MS) {
			key_error(p, k, "%s is out of range (%s..86400 seconds)", value,
				  min ? "0.001" : "0");
			return;
		}
		*(unsigned *)field(cfg, k) = (unsigned)n;
		return;
	}

	case K_VIA:
		if (!valid_via(value)) {
			key_error(p, k, "'%s': use letters, digits and - . _ : [ ] only (at most %d)",
				  value, VIA_NAME_MAX);
			return;
		}
		if (set_string(&cfg->via_name, value) != FERRY_OK)
			p->oom = 1;
		return;

	case K_REALM:
		if (!valid_realm(value)) {
			key_error(p, k, "'%s': printable ASCII without '\"' or '\\' only (at most %d)",
				  value, REALM_MAX);
			return;
		}
		if (set_string(&cfg->realm, value) != FERRY_OK)
			p->oom = 1;
		return;

	case K_PATH:
		if (value[0] != '/') {
			key_error(p, k, "'%s' must be an absolute path", value);
			return;
		}
		if (set_string(field(cfg, k), value) != FERRY_OK)
			p->oom = 1;
		return;

	case K_USER:
	case K_GROUP:
		value_user(p, k, value);
		return;

	case K_LOG_TARGET: {
		static const char *const words[] = { "stderr", "syslog", "off" };
		const char *v = value;
		size_t i;
		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (strcasecmp(value, words[i]) == 0)
				v = words[i];
		if (v == value && value[0] != '/') {
			key_error(p, k, "'%s': expected stderr, syslog, off or an absolute path",
				  value);
			return;
		}
		if (set_string(field(cfg, k), v) != FERRY_OK)
			p->oom = 1;
		return;
	}

	case K_LEVEL:
		if (strcasecmp(value, "error") == 0)
			cfg->log_level = LOG_LVL_ERROR;
		else if (strcasecmp(value, "warn") == 0 || strcasecmp(value, "warning") == 0)
			cfg->log_level = LOG_LVL_WARN;
		else if (strcasecmp(value, "info") == 0)
			cfg->log_level = LOG_LVL_INFO;
		else if (strcasecmp(value, "debug") == 0)
			cfg->log_level = LOG_LVL_DEBUG;
		else
			key_error(p, k, "'%s' is not one of error, warn, info, debug", value);
		return;

	case K_ADMIN_LISTEN: {
		struct config_listen l, *copy;
		if (listen_parse(value, &l, err, sizeof(err)) != FERRY_OK) {
			key_error(p, k, "%s", err);
			return;
		}
		l.line = p->line;
		if ((copy = malloc(sizeof(*copy))) == NULL) {
			p->oom = 1;
			return;
		}
		*copy = l;
		free(cfg->admin_listen);
		cfg->admin_listen = copy;
		return;
	}

	default:
		return;
	}
}

/* ---- inih callbacks ---- */

static int on_value(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	const struct key *k = NULL;
	size_t i;
	int first;

	(void)section; /* the reader tracks sections itself, with line numbers */
	if (p->sec == SEC_BAD)
		return 1;
	if (p->sec == SEC_NONE) {
		report(p, p->line, "%s: key outside any section (start with [server], [access], ...)",
		       name);
		return 1;
	}
	for (i = 0; i < NKEYS; i++) {
		if (keys[i].sec == p->sec && strcasecmp(keys[i].name, name) == 0) {
			k = &keys[i];
			break;
		}
	}
	if (k == NULL) {
		report(p, p->line, "[%s] %s: unknown key", section_names[p->sec], name);
		return 1;
	}
	first = p->seen[i] == 0;
	if (!first && !(k->flags & F_LIST)) {
		key_error(p, k, "set twice (first on line %d)", p->seen[i]);
		return 1;
	}
	if (first)
		p->seen[i] = p->line;

	if (k->flags & F_LIST) {
		if (first)
			list_clear(p->cfg, k);
		if (*value == '\0') {
			if (!(k->flags & F_EMPTY_LIST))
				key_error(p, k, "empty value");
			else if (!first)
				key_error(p, k, "an empty value (meaning none) is only allowed on the "
					  "first %s line", k->name);
			return 1;
		}
		if (k->kind == K_ROUTE) {
			/* "MATCH TARGET..." is one rule, not a list of items */
			char err[256];
			if (route_table_add_rule(&p->cfg->routes, value, p->line, err, sizeof(err)) != FERRY_OK)
				key_error(p, k, "%s", err);
			return 1;
		}
		list_value(p, k, value);
		return 1;
	}
	if (*value == '\0') {
		if (!(k->flags & F_OPTIONAL)) {
			key_error(p, k, "empty value");
		} else if (k->kind == K_ADMIN_LISTEN) {
			free(p->cfg->admin_listen);
			p->cfg->admin_listen = NULL;
		} else {
			set_string(field(p->cfg, k), NULL);
		}
		return 1;
	}
	value_single(p, k, value);
	return 1;
}

/* Validates a "[name]" line and makes it the current section. */
static void section_line(struct parse *p, const char *s, size_t len)
{
	const char *close = memchr(s, ']', len);
	const char *name, *end, *rest;
	size_t i;

	p->sec = SEC_BAD;
	if (close == NULL) {
		report(p, p->line, "missing ']' in section header");
		return;
	}
	for (rest = close + 1; rest < s + len && is_blank(*rest); rest++)
		;
	if (rest < s + len && *rest != ';' && *rest != '#') {
		report(p, p->line, "unexpected text after ']' in section header");
		return;
	}
	for (name = s + 1; name < close && is_blank(*name); name++)
		;
	for (end = close; end > name && is_blank(end[-1]); end--)
		;
	for (i = 0; i < SEC_COUNT; i++) {
		if ((size_t)(end - name) == strlen(section_names[i]) &&
		    strncasecmp(name, section_names[i], (size_t)(end - name)) == 0) {
			p->sec = (enum section)i;
			return;
		}
	}
	report(p, p->line, "unknown section [%.*s] (known: [server] [timeouts] [limits] "
	       "[access] [auth] [log] [admin] [dns] [upstream])", (int)(end - name), name);
}

/* Where a "key = value" line has its first '=', ':' or inline comment (';' after a blank),
 * as inih looks for them. */
static const char *find_separator(const char *s, const char *end)
{
	int was_blank = 0;

	for (; s < end; s++) {
		if (*s == '=' || *s == ':' || (was_blank && *s == ';'))
			return s;
		was_blank = is_blank(*s);
	}
	return end;
}

/* inih's reader: hands over the next line, reduced to a clean "key = value" line or to an
 * empty line once the reader has dealt with it (comment, section, error). */
static char *read_line(char *buf, int num, void *stream)
{
	struct parse *p = stream;
	const char *s, *nl, *end, *sep;
	size_t len, max = num > 1 ? (size_t)num - 1 : 0;
	int indented;

	if (p->pos >= p->len)
		return NULL;
	s = p->text + p->pos;
	nl = memchr(s, '\n', p->len - p->pos);
	len = nl ? (size_t)(nl - s) : p->len - p->pos;
	p->pos += len + (nl ? 1 : 0);
	p->line++;
	buf[0] = '\0';

	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (p->line == 1 && len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;
		len -= 3;
	}
	end = s + len;
	indented = len > 0 && is_blank(*s);
	while (s < end && is_blank(*s))
		s++;
	while (end > s && is_blank(end[-1]))
		end--;

	if (len > max) {
		report(p, p->line, "line too long (max %zu characters); split a list over "
		       "repeated keys", max);
		/* Keys that follow a cut section header must not land in the section before. */
		if (s < end && *s == '[')
			p->sec = SEC_BAD;
		return buf;
	}
	if (memchr(s, '\0', (size_t)(end - s))) {
		report(p, p->line, "line contains a NUL byte");
		return buf;
	}
	if (s == end || *s == ';' || *s == '#')
		return buf;
	if (*s == '[') {
		section_line(p, s, (size_t)(end - s));
		return buf;
	}

	sep = find_separator(s, end);
	if (sep == end || *sep != '=') {
		if (sep < end && *sep == ':')
			report(p, p->line, "expected 'key = value' (ferry uses '=', not ':')");
		else if (indented)
			report(p, p->line, "expected 'key = value' (continuation lines are not "
			       "supported: repeat the key on a line of its own)");
		else
			report(p, p->line, "expected 'key = value', '[section]' or a comment");
		return buf;
	}
	if (sep == s) {
		report(p, p->line, "missing key name before '='");
		return buf;
	}
	memcpy(buf, s, (size_t)(end - s));
	buf[end - s] = '\0';
	return buf;
}

/* ---- building a config ---- */

static int add_default_cidrs(struct cidr_list *l, const char *const *v, size_t n)
{
	struct cidr c;
	size_t i;

	for (i = 0; i < n; i++)
		if (cidr_parse(v[i], &c, NULL, 0) != FERRY_OK || cidr_list_add(l, &c) != FERRY_OK)
			return FERRY_ERR;
	return FERRY_OK;
}

static struct config *config_new(const char *name)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	struct config_listen l;
	struct port_range https = { 443, 443 };
	char err[128];

	if (cfg == NULL)
		return NULL;
	cfg->processes = CONFIG_AUTO;
	cfg->threads = 1;
	cfg->max_connections = 10000;
	cfg->multiplexer = CONFIG_MUX_AUTO;
	cfg->backlog = 1024;
	cfg->daemon = 0;

	cfg->request_header_ms = 30000;
	cfg->client_idle_ms = 60000;
	cfg->connect_ms = 10000;
	cfg->upstream_idle_ms = 60000;
	cfg->tunnel_idle_ms = 300000;
	cfg->pool_idle_ms = 30000;
	cfg->shutdown_ms = 30000;
	cfg->dns_ms = 5000;

	cfg->request_line = 8192;
	cfg->request_header_size = 65536;
	cfg->header_fields = 100;
	cfg->per_client = 0;

	cfg->log_level = LOG_LVL_INFO;

	cfg->dns_cache_size = 4096;

	if ((cfg->path = strdup(name)) == NULL ||
	    listen_parse("127.0.0.1:3128", &l, err, sizeof(err)) != FERRY_OK ||
	    listen_add(cfg, &l) != FERRY_OK ||
	    add_default_cidrs(&cfg->allow, default_allow,
			      sizeof(default_allow) / sizeof(default_allow[0])) != FERRY_OK ||
	    add_default_cidrs(&cfg->admin_allow, default_allow,
			      sizeof(default_allow) / sizeof(default_allow[0])) != FERRY_OK ||
	    port_list_add(&cfg->connect_ports, &https) != FERRY_OK ||
	    add_default_cidrs(&cfg->block_destinations, default_block,
			      sizeof(default_block) / sizeof(default_block[0])) != FERRY_OK ||
	    (cfg->realm = strdup("ferry")) == NULL ||
	    (cfg->access_log = strdup("off")) == NULL ||
	    (cfg->error_log = strdup("stderr")) == NULL)
		goto fail;
	return cfg;

fail:
	config_free(cfg);
	return NULL;
}

static int seen_line(const struct parse *p, enum section sec, const char *name)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (keys[i].sec == sec && strcmp(keys[i].name, name) == 0)
			return p->seen[i];
	return 0;
}

static int resolve_auto(int v)
{
	long n;

	if (v != CONFIG_AUTO)
		return v;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	return n > CONFIG_MAX_AUTO ? CONFIG_MAX_AUTO : (int)n;
}

/* Errors of a file the config names: with that file's line, or with the config's line of
 * the key when they are about the file as a whole ("cannot open"). Serves as both a
 * domains_error_fn and an auth_error_fn. */
struct named_file {
	struct parse *p;
	const char *path;
	const char *key;       /* "[access] domains_file" */
	int line;              /* of the key */
};

static void named_file_error(void *arg, int line, const char *msg)
{
	struct named_file *f = arg;

	if (line > 0)
		report_in(f->p, f->path, line, "%s", msg);
	else
		report(f->p, f->line, "%s: %s: %s", f->key, f->path, msg);
}

/* Add addr (as a /32 or /128; IPv4-mapped IPv6 as IPv4) unless the list covers it already. */
static int block_add(struct cidr_list *l, const struct sockaddr *sa)
{
	struct cidr c;

	memset(&c, 0, sizeof(c));
	if (sa->sa_family == AF_INET) {
		c.family = AF_INET;
		memcpy(c.addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		c.prefix = 32;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			c.family = AF_INET;
			memcpy(c.addr, a->s6_addr + 12, 4);
			c.prefix = 32;
		} else {
			c.family = AF_INET6;
			memcpy(c.addr, a->s6_addr, 16);
			c.prefix = 128;
		}
	} else {
		return FERRY_OK;
	}
	if (cidr_list_match(l, sa))
		return FERRY_OK;
	return cidr_list_add(l, &c);
}

static int is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* The default block_destinations also holds the addresses ferry listens on, so that a client
 * cannot make ferry connect to itself (a loop) or to other services of its own host through
 * an address outside 127.0.0.0/8. A wildcard listener listens on every local address of its
 * family: those of the interfaces now (a later address is picked up at the next reload). */
static void block_own_addresses(struct parse *p)
{
	struct config *cfg = p->cfg;
	struct ifaddrs *ifs = NULL, *ifa;
	size_t i, n = cfg->nlisten + (cfg->admin_listen ? 1 : 0);
	int listed = 0;

	for (i = 0; i < n; i++) {
		const struct config_listen *l =
			i < cfg->nlisten ? &cfg->listen[i] : cfg->admin_listen;
		const struct sockaddr *sa = (const struct sockaddr *)&l->addr;
		if (!is_wildcard(&l->addr)) {
			if (block_add(&cfg->block_destinations, sa) != FERRY_OK)
				p->oom = 1;
			continue;
		}
		if (!listed) {
			if (getifaddrs(&ifs) != 0) {
				report(p, l->line, "cannot list this host's addresses (the default "
				       "block_destinations holds those ferry listens on): %s",
				       strerror(errno));
				return;
			}
			listed = 1;
		}
		for (ifa = ifs; ifa; ifa = ifa->ifa_next) {
			if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != l->addr.ss_family)
				continue;
			if (block_add(&cfg->block_destinations, ifa->ifa_addr) != FERRY_OK)
				p->oom = 1;
		}
	}
	if (ifs)
		freeifaddrs(ifs);
}

/* Files the config names are read with it, so a reload (SIGHUP) reads them again. */
static void load_named_files(struct parse *p)
{
	struct config *cfg = p->cfg;

	if (cfg->domains_file) {
		struct named_file f = { p, cfg->domains_file, "[access] domains_file",
					seen_line(p, SEC_ACCESS, "domains_file") };
		domains_load_file(&cfg->domains, cfg->domains_file, named_file_error, &f);
	}
	if (cfg->htpasswd) {
		struct named_file f = { p, cfg->htpasswd, "[auth] htpasswd",
					seen_line(p, SEC_AUTH, "htpasswd") };
		cfg->auth = auth_db_load(cfg->htpasswd, named_file_error, &f);
	}
}

/* Checks that need the whole file, and defaults that depend on other keys. */
static void finish(struct parse *p)
{
	struct config *cfg = p->cfg;
	size_t i, j;

	/* Only a bad listen line can empty the list, and that was reported already. */
	if (cfg->nlisten == 0 && p->nerrors == 0)
		report(p, seen_line(p, SEC_SERVER, "listen"),
		       "[server] listen: at least one address is required");
	for (i = 1; i < cfg->nlisten; i++) {
		for (j = 0; j < i; j++) {
			if (listen_same(&cfg->listen[i], &cfg->listen[j])) {
				report(p, cfg->listen[i].line,
				       "[server] listen: %s is listed twice (also on line %d)",
				       cfg->listen[i].text, cfg->listen[j].line);
				break;
			}
		}
	}
	if (cfg->admin_listen) {
		for (i = 0; i < cfg->nlisten; i++) {
			if (listen_same(cfg->admin_listen, &cfg->listen[i])) {
				report(p, cfg->admin_listen->line,
				       "[admin] listen: %s is also a [server] listen address%s",
				       cfg->admin_listen->text,
				       cfg->listen[i].line ? "" : " (the default)");
				break;
			}
		}
	}
	if (cfg->request_line > cfg->request_header_size) {
		int line = seen_line(p, SEC_LIMITS, "request_line");
		if (line == 0)
			line = seen_line(p, SEC_LIMITS, "request_header_size");
		report(p, line, "[limits] request_line (%u) must not be larger than "
		       "request_header_size (%u)", cfg->request_line, cfg->request_header_size);
	}

	cfg->processes = resolve_auto(cfg->processes);
	cfg->threads = resolve_auto(cfg->threads);
	if (route_table_prepare(&cfg->routes, cfg->threads) != FERRY_OK)
		p->oom = 1;

	if (cfg->via_name == NULL && cfg->nlisten > 0) {
		char host[HOST_NAME_MAX + 1], via[HOST_NAME_MAX + 16];
		if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(via, sizeof(via), "%s:%u", host, (unsigned)listen_port(&cfg->listen[0]));
		if ((cfg->via_name = strdup(via)) == NULL)
			p->oom = 1;
	}

	if (cfg->proxy_protocol && cfg->proxy_protocol_from.n == 0)
		report(p, seen_line(p, SEC_SERVER, "proxy_protocol"),
		       "[server] proxy_protocol = yes needs proxy_protocol_from (the addresses of "
		       "the load balancers allowed to send the header)");

	if (seen_line(p, SEC_ACCESS, "block_destinations") == 0)
		block_own_addresses(p);
	load_named_files(p);
}

static struct config *config_parse(const char *text, size_t len, const char *name,
				   config_error_fn *errfn, void *arg)
{
	struct parse p;
	int rc;

	memset(&p, 0, sizeof(p));
	p.name = name;
	p.errfn = errfn;
	p.arg = arg;
	p.text = text;
	p.len = len;
	p.sec = SEC_NONE;

	if ((p.cfg = config_new(name)) == NULL) {
		report(&p, 0, "out of memory");
		return NULL;
	}
	rc = ini_parse_stream(read_line, &p, on_value, &p);
	/* The reader hands inih only lines it accepts, so inih should find nothing; if some
	 * inih differs from the one we know, still say where. */
	if (rc > 0 && p.nerrors == 0)
		report(&p, rc, "syntax error");
	else if (rc == -2)
		p.oom = 1;
	if (!p.oom)
		finish(&p);
	if (p.oom)
		report(&p, 0, "out of memory");
	if (p.nerrors > 0) {
		config_free(p.cfg);
		return NULL;
	}
	memcpy(p.cfg->key_lines, p.seen, sizeof(p.seen));
	return p.cfg;
}

const char *config_where(const struct config *cfg, const char *section, const char *key, char *buf,
			 size_t len)
{
	int line = 0;
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(section_names[keys[i].sec], section) == 0 && strcmp(keys[i].name, key) == 0)
			line = cfg->key_lines[i];
	if (line > 0)
		snprintf(buf, len, "%s: line %d: [%s] %s", cfg->path, line, section, key);
	else
		snprintf(buf, len, "%s: [%s] %s (default)", cfg->path, section, key);
	return buf;
}

struct config *config_load_string(const char *text, const char *name, config_error_fn *errfn,
				  void *arg)
{
	if (text == NULL)
		text = "";
	return config_parse(text, strlen(text), name ? name : "(string)", errfn, arg);
}

struct config *config_default(config_error_fn *errfn, void *arg)
{
	return config_load_string("", "(built-in)", errfn, arg);
}

struct config *config_load(const char *path, config_error_fn *errfn, void *arg)
{
	struct parse p = { .name = path, .errfn = errfn, .arg = arg };
	struct config *cfg = NULL;
	char *text = NULL, *t;
	size_t len = 0, cap = 0, n;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		report(&p, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			if ((t = realloc(text, cap)) == NULL) {
				report(&p, 0, "out of memory");
				goto out;
			}
			text = t;
		}
		n = fread(text + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		report(&p, 0, "cannot read: %s", strerror(errno));
		goto out;
	}
	cfg = config_parse(text, len, path, errfn, arg);
out:
	free(text);
	fclose(f);
	return cfg;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->listen);
	free(cfg->pidfile);
	free(cfg->user);
	free(cfg->group);
	free(cfg->via_name);
	cidr_list_free(&cfg->allow);
	cidr_list_free(&cfg->deny);
	port_list_free(&cfg->connect_ports);
	cidr_list_free(&cfg->block_destinations);
	cidr_list_free(&cfg->proxy_protocol_from);
	route_table_free(&cfg->routes);
	free(cfg->htpasswd);
	free(cfg->realm);
	domains_free(&cfg->domains);
	free(cfg->domains_file);
	auth_db_free(cfg->auth);
	free(cfg->access_log);
	free(cfg->error_log);
	free(cfg->admin_listen);
	cidr_list_free(&cfg->admin_allow);
	free(cfg->dns_servers);
	free(cfg);
}
