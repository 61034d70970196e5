/* domains.c - destination domain filter.
 *
 * Four hash tables of rule indexes: exact names and suffixes, for allow and for deny. A host
 * is looked up whole in the exact table, then in the suffix table once per label boundary,
 * longest first ("a.b.example.com", "b.example.com", "example.com", "com"), so a check costs
 * a few lookups whatever the number of rules. A suffix rule ".example.com" is stored under
 * "example.com", which is why it also matches the bare domain, as Squid's dstdomain does.
 * Patterns and hosts are compared in one normal form: lower case, no trailing dot. */
#include "domains.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "status.h"

#define LINE_MAX_LEN 1024
#define FILE_MAX (64 << 20)
#define LABEL_MAX 63

static int domains_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int domains_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return FERRY_ERR;
}

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* FNV-1a: the keys are the operator's patterns, so nobody can choose them to collide; the
 * hosts a client sends only probe. */
static uint32_t hash_name(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

/* The name a rule is filed under: the pattern without its leading dot. */
static const char *rule_key(const struct domain_rule *rule)
{
	return rule->pattern[0] == '.' ? rule->pattern + 1 : rule->pattern;
}

static const struct domain_rule *table_find(const struct domain_rules *r,
					    const struct domains_table *t, const char *name,
					    size_t len)
{
	size_t i;

	if (t->n == 0)
		return NULL;
	for (i = hash_name(name, len) & t->mask; t->slots[i]; i = (i + 1) & t->mask) {
		const struct domain_rule *rule = &r->v[t->slots[i] - 1];
		const char *key = rule_key(rule);
		if (strlen(key) == len && memcmp(key, name, len) == 0)
			return rule;
	}
	return NULL;
}

static int table_insert(struct domain_rules *r, struct domains_table *t, uint32_t index)
{
	const char *key;
	size_t i;

	/* Keep the load at most one half, so probe runs stay short. */
	if ((t->n + 1) * 2 > t->mask + 1 || t->slots == NULL) {
		size_t size = t->slots ? (t->mask + 1) * 2 : 64, j;
		uint32_t *slots = calloc(size, sizeof(*slots));
		if (slots == NULL)
			return FERRY_ERR;
		for (j = 0; t->slots && j <= t->mask; j++) {
			if (t->slots[j] == 0)
				continue;
			key = rule_key(&r->v[t->slots[j] - 1]);
			for (i = hash_name(key, strlen(key)) & (size - 1); slots[i];
			     i = (i + 1) & (size - 1))
				;
			slots[i] = t->slots[j];
		}
		free(t->slots);
		t->slots = slots;
		t->mask = size - 1;
	}
	key = rule_key(&r->v[index]);
	for (i = hash_name(key, strlen(key)) & t->mask; t->slots[i]; i = (i + 1) & t->mask)
		;
	t->slots[i] = index + 1;
	t->n++;
	return FERRY_OK;
}

/* Does the name (normal form, no leading dot) end in a label that makes it an IPv4 address as
 * inet_aton and resolvers read it ("10.1.2.3", "127.1", "2130706433", "0x7f.1")? Such a label
 * is never a top-level domain. */
static int numeric_last_label(const char *s, size_t len)
{
	const char *end = s + len, *p = end;
	size_t n;

	while (p > s && p[-1] != '.')
		p--;
	n = (size_t)(end - p);
	if (n == 0)
		return 0;
	if (n > 2 && p[0] == '0' && p[1] == 'x') {
		for (p += 2; p < end; p++)
			if (hexval(*p) < 0)
				return 0;
		return 1;
	}
	for (; p < end; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return 1;
}

/* Pattern into out (normal form); *suffix says whether it had a leading dot. */
static int pattern_normalize(const char *pattern, char *out, int *suffix, char *err,
			     size_t errlen)
{
	const char *s = pattern;
	size_t len = strlen(pattern), n = 0, label = 0;

	*suffix = 0;
	if (strchr(pattern, ':') || pattern[0] == '[')
		return domains_fail(err, errlen, "'%s' is an IP address; domain patterns never "
				    "match addresses (use block_destinations)", pattern);
	if (pattern[0] == '*')
		return domains_fail(err, errlen, "'%s': no wildcards; write '.example.com' to "
				    "match example.com and every name under it", pattern);
	*suffix = s[0] == '.';
	if (*suffix) {
		s++;
		len--;
	}
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0)
		return domains_fail(err, errlen, "'%s' is not a domain name", pattern);
	if (len > DOMAINS_NAME_MAX)
		return domains_fail(err, errlen, "'%.40s...' is longer than %d characters", pattern,
				    DOMAINS_NAME_MAX);
	if (*suffix)
		out[n++] = '.';
	for (size_t i = 0; i < len; i++) {
		int c = lower((unsigned char)s[i]);
		if (c == '.') {
			if (label == 0)
				return domains_fail(err, errlen, "'%s': empty label (\"..\")",
						    pattern);
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			   c == '_') {
			if (++label > LABEL_MAX)
				return domains_fail(err, errlen, "'%s': a label is longer than %d "
						    "characters", pattern, LABEL_MAX);
		} else {
			return domains_fail(err, errlen, "'%s': only letters, digits, '-', '_' and "
					    "'.' may appear in a domain name", pattern);
		}
		out[n++] = (char)c;
	}
	out[n] = '\0';
	if (numeric_last_label(out + *suffix, n - (size_t)*suffix))
		return domains_fail(err, errlen, "'%s' is an IP address; domain patterns never "
				    "match addresses (use block_destinations)", pattern);
	return FERRY_OK;
}

static const char *source_intern(struct domain_rules *r, const char *source)
{
	char **v, *s;
	size_t i;

	for (i = 0; i < r->nsources; i++)
		if (strcmp(r->sources[i], source) == 0)
			return r->sources[i];
	if ((s = strdup(source)) == NULL)
		return NULL;
	if ((v = realloc(r->sources, (r->nsources + 1) * sizeof(*v))) == NULL) {
		free(s);
		return NULL;
	}
	v[r->nsources++] = s;
	r->sources = v;
	return s;
}

int domains_add(struct domain_rules *r, int allow, const char *pattern, const char *source,
		int line, char *err, size_t errlen)
{
	char norm[DOMAINS_NAME_MAX + 2];
	struct domain_rule *rule;
	struct domains_table *t;
	const char *src;
	int suffix;

	allow = allow != 0;
	if (pattern_normalize(pattern, norm, &suffix, err, errlen) != FERRY_OK)
		return FERRY_ERR;
	t = suffix ? &r->suffix[allow] : &r->exact[allow];
	if (table_find(r, t, norm + suffix, strlen(norm + suffix)))
		return FERRY_OK;
	if (r->n >= UINT32_MAX - 1)
		return domains_fail(err, errlen, "too many domain rules");
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct domain_rule *v = realloc(r->v, cap * sizeof(*v));
		if (v == NULL)
			return domains_fail(err, errlen, "out of memory");
		r->v = v;
		r->cap = cap;
	}
	if ((src = source_intern(r, source ? source : "(unknown)")) == NULL)
		return domains_fail(err, errlen, "out of memory");
	rule = &r->v[r->n];
	if ((rule->pattern = strdup(norm)) == NULL)
		return domains_fail(err, errlen, "out of memory");
	rule->source = src;
	rule->line = line;
	rule->allow = allow;
	if (table_insert(r, t, (uint32_t)r->n) != FERRY_OK) {
		free(rule->pattern);
		return domains_fail(err, errlen, "out of memory");
	}
	r->n++;
	if (allow)
		r->nallow++;
	return FERRY_OK;
}

static void file_error(domains_error_fn *errfn, void *arg, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void file_error(domains_error_fn *errfn, void *arg, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (errfn)
		errfn(arg, line, msg);
}

static int is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* One line of a domains file, without its newline. FERRY_ERR after reporting. */
static int file_line(struct domain_rules *r, const char *path, int lineno, char *s, size_t len,
		     domains_error_fn *errfn, void *arg)
{
	char err[384], *end = s + len, *word, *pattern, *p;
	int allow;

	if (len > LINE_MAX_LEN) {
		file_error(errfn, arg, lineno, "line too long (max %d characters)", LINE_MAX_LEN);
		return FERRY_ERR;
	}
	if (memchr(s, '\0', len)) {
		file_error(errfn, arg, lineno, "line contains a NUL byte");
		return FERRY_ERR;
	}
	*end = '\0';
	/* A comment starts a line or follows a blank. */
	for (p = s; *p; p++) {
		if (*p == '#' && (p == s || is_space(p[-1]))) {
			*p = '\0';
			break;
		}
	}
	for (p = s; is_space(*p); p++)
		;
	if (*p == '\0')
		return FERRY_OK;
	word = p;
	while (*p && !is_space(*p))
		p++;
	if (*p)
		*p++ = '\0';
	while (is_space(*p))
		p++;
	pattern = p;
	while (*p && !is_space(*p))
		p++;
	if (*p)
		*p++ = '\0';
	while (is_space(*p))
		p++;
	if (strcasecmp(word, "allow") == 0) {
		allow = 1;
	} else if (strcasecmp(word, "deny") == 0) {
		allow = 0;
	} else {
		file_error(errfn, arg, lineno, "expected 'allow PATTERN' or 'deny PATTERN', not "
			   "'%.60s'", word);
		return FERRY_ERR;
	}
	if (*pattern == '\0') {
		file_error(errfn, arg, lineno, "%s: missing pattern", word);
		return FERRY_ERR;
	}
	if (*p != '\0') {
		file_error(errfn, arg, lineno, "one pattern per line ('%.60s' follows)", p);
		return FERRY_ERR;
	}
	if (domains_add(r, allow, pattern, path, lineno, err, sizeof(err)) != FERRY_OK) {
		file_error(errfn, arg, lineno, "%s", err);
		return FERRY_ERR;
	}
	return FERRY_OK;
}

int domains_load_file(struct domain_rules *r, const char *path, domains_error_fn *errfn,
		      void *arg)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int fd, lineno = 0, rc = FERRY_OK;
	struct stat st;
	FILE *f;

	/* Not blocking on a FIFO, and no endless read of a device: regular files only. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
		file_error(errfn, arg, 0, "cannot open: %s", strerror(errno));
		return FERRY_ERR;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		file_error(errfn, arg, 0, "not a regular file");
		close(fd);
		return FERRY_ERR;
	}
	if (st.st_size > FILE_MAX) {
		file_error(errfn, arg, 0, "larger than %d MiB", FILE_MAX >> 20);
		close(fd);
		return FERRY_ERR;
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		file_error(errfn, arg, 0, "cannot read: %s", strerror(errno));
		close(fd);
		return FERRY_ERR;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		size_t len = (size_t)n;
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (file_line(r, path, lineno, line, len, errfn, arg) != FERRY_OK)
			rc = FERRY_ERR;
	}
	if (ferror(f)) {
		file_error(errfn, arg, 0, "cannot read: %s", strerror(errno));
		rc = FERRY_ERR;
	}
	free(line);
	fclose(f);
	return rc;
}

void domains_free(struct domain_rules *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		free(r->v[i].pattern);
	free(r->v);
	for (i = 0; i < r->nsources; i++)
		free(r->sources[i]);
	free(r->sources);
	for (i = 0; i < 2; i++) {
		free(r->exact[i].slots);
		free(r->suffix[i].slots);
	}
	memset(r, 0, sizeof(*r));
}

/* The host in normal form into out (DOMAINS_NAME_MAX + 1 bytes); its length, or -1 when it
 * cannot be a domain name (too long, empty, an IP literal). */
static long host_normalize(const char *host, size_t len, char *out)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		int c = (unsigned char)host[i];
		if (c == '%' && i + 2 < len && hexval(host[i + 1]) >= 0 &&
		    hexval(host[i + 2]) >= 0) {
			c = hexval(host[i + 1]) * 16 + hexval(host[i + 2]);
			i += 2;
		}
		if (c == ':' || c == '[')
			return -1;
		if (n == DOMAINS_NAME_MAX + 1)
			return -1;
		out[n++] = (char)lower(c);
	}
	/* "example.com." is the same name in absolute form; more dots are no different name. */
	while (n > 0 && out[n - 1] == '.')
		n--;
	if (n == 0 || n > DOMAINS_NAME_MAX || numeric_last_label(out, n))
		return -1;
	out[n] = '\0';
	return (long)n;
}

/* The most specific rule of one kind (allow or deny) matching name. */
static const struct domain_rule *match_kind(const struct domain_rules *r, int allow,
					    const char *name, size_t len)
{
	const struct domain_rule *rule;
	const char *p = name, *end = name + len, *dot;

	if ((rule = table_find(r, &r->exact[allow], name, len)) != NULL)
		return rule;
	if (r->suffix[allow].n == 0)
		return NULL;
	for (;;) {
		if ((rule = table_find(r, &r->suffix[allow], p, (size_t)(end - p))) != NULL)
			return rule;
		dot = memchr(p, '.', (size_t)(end - p));
		if (dot == NULL)
			return NULL;
		p = dot + 1;
	}
}

const struct domain_rule *domains_check(const struct domain_rules *r, const char *host, size_t len,
					int *allowed)
{
	char name[DOMAINS_NAME_MAX + 2];
	const struct domain_rule *rule;
	long n;

	*allowed = r->nallow == 0;
	if (r->n == 0)
		return NULL;
	n = host_normalize(host, len, name);
	if (n < 0)
		return NULL;
	if ((rule = match_kind(r, 0, name, (size_t)n)) != NULL) {
		*allowed = 0;
		return rule;
	}
	if (r->nallow == 0)
		return NULL;
	if ((rule = match_kind(r, 1, name, (size_t)n)) != NULL)
		*allowed = 1;
	return rule;
}

int domains_describe(const struct domain_rule *rule, char *buf, size_t len)
{
	return snprintf(buf, len, "'%s' (%s line %d)", rule->pattern, rule->source, rule->line);
}
