/* test_config.c - proxy.ini parsing: defaults, every key, every kind of error with its line,
 * and the shipped etc/proxy.ini.in giving exactly the defaults. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Spelled with its directory, so that no other config.h on the include path (autoconf's, if
 * the build ever makes one) can stand in for it. */
#include "../src/config.h"
#include "auth.h"
#include "log.h"
#include "status.h"

#define MAX_ERRS 64

struct errs {
	int n;
	char msg[MAX_ERRS][512];
};

static void collect(void *arg, const char *msg)
{
	struct errs *e = arg;

	if (e->n < MAX_ERRS)
		snprintf(e->msg[e->n], sizeof(e->msg[0]), "%s", msg);
	e->n++;
}

static const char *all_errs(const struct errs *e)
{
	static char buf[MAX_ERRS * 128];
	size_t len = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < e->n && i < MAX_ERRS && len < sizeof(buf) - 1; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "\n  %s", e->msg[i]);
	return buf;
}

/* Loads text that must be valid. */
static struct config *load_ok(const char *text)
{
	struct errs e = { 0 };
	struct config *cfg = config_load_string(text, "t", collect, &e);

	ck_assert_msg(cfg != NULL && e.n == 0, "unexpected errors for:\n%.600s\nerrors:%.2000s",
		      text, all_errs(&e));
	return cfg;
}

/* Loads text that must be refused; the errors land in e. */
static void load_bad(const char *text, struct errs *e)
{
	struct config *cfg;

	memset(e, 0, sizeof(*e));
	cfg = config_load_string(text, "t", collect, e);
	ck_assert_msg(cfg == NULL, "accepted:\n%s", text);
	ck_assert_msg(e->n > 0, "refused without an error:\n%s", text);
}

/* text must be refused with exactly the one error msg. */
static void expect_error(const char *text, const char *msg)
{
	struct errs e;

	load_bad(text, &e);
	ck_assert_msg(e.n == 1 && strcmp(e.msg[0], msg) == 0,
		      "for:\n%.600s\nexpected:\n  %s\ngot:%.2000s", text, msg, all_errs(&e));
}

/* The loaded value of a single key, given as "[section]\nkey = value". */
static struct config *load_key(const char *section, const char *key, const char *value)
{
	char text[512];

	snprintf(text, sizeof(text), "[%s]\n%s = %s\n", section, key, value);
	return load_ok(text);
}

static void expect_key_error(const char *section, const char *key, const char *value,
			     const char *message)
{
	char text[512], msg[1024];

	snprintf(text, sizeof(text), "[%s]\n%s = %s\n", section, key, value);
	snprintf(msg, sizeof(msg), "t: line 2: [%s] %s: %s", section, key, message);
	expect_error(text, msg);
}

static unsigned timeout_of(const char *key, const char *value)
{
	struct config *cfg = load_key("timeouts", key, value);
	unsigned ms = key[0] == 'c' ? cfg->connect_ms : cfg->pool_idle_ms;

	config_free(cfg);
	return ms;
}

static int ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

static const char *hostname(void)
{
	static char host[HOST_NAME_MAX + 1];

	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	return host;
}

static void assert_listen(const struct config_listen *l, int family, const char *ip,
			  unsigned port, const char *text)
{
	char buf[INET6_ADDRSTRLEN];

	ck_assert_int_eq(l->addr.ss_family, family);
	if (family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&l->addr;
		ck_assert_uint_eq(l->addrlen, sizeof(*sin));
		ck_assert_ptr_nonnull(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
		ck_assert_uint_eq(ntohs(sin->sin_port), port);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&l->addr;
		ck_assert_uint_eq(l->addrlen, sizeof(*sin6));
		ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
		ck_assert_uint_eq(ntohs(sin6->sin6_port), port);
	}
	ck_assert_str_eq(buf, ip);
	ck_assert_str_eq(l->text, text);
}

/* "10.0.0.0/8" for an entry, to compare lists as text. */
static const char *cidr_text(const struct cidr *c)
{
	static char buf[INET6_ADDRSTRLEN + 8];
	char ip[INET6_ADDRSTRLEN];

	ck_assert_ptr_nonnull(inet_ntop(c->family, c->addr, ip, sizeof(ip)));
	snprintf(buf, sizeof(buf), "%s/%u", ip, c->prefix);
	return buf;
}

static void assert_cidrs(const struct cidr_list *l, const char *const *want, size_t n)
{
	size_t i;

	ck_assert_uint_eq(l->n, n);
	for (i = 0; i < n; i++)
		ck_assert_str_eq(cidr_text(&l->v[i]), want[i]);
}

static void assert_str_or_null(const char *a, const char *b, const char *what)
{
	if (a == NULL || b == NULL)
		ck_assert_msg(a == b, "%s: %s vs %s", what, a ? a : "NULL", b ? b : "NULL");
	else
		ck_assert_msg(strcmp(a, b) == 0, "%s: '%s' vs '%s'", what, a, b);
}

static void assert_listen_same(const struct config_listen *a, const struct config_listen *b)
{
	ck_assert_uint_eq(a->addrlen, b->addrlen);
	ck_assert_int_eq(memcmp(&a->addr, &b->addr, a->addrlen), 0);
	ck_assert_str_eq(a->text, b->text);
}

static void assert_cidrs_same(const struct cidr_list *a, const struct cidr_list *b)
{
	size_t i;

	ck_assert_uint_eq(a->n, b->n);
	for (i = 0; i < a->n; i++) {
		ck_assert_int_eq(a->v[i].family, b->v[i].family);
		ck_assert_uint_eq(a->v[i].prefix, b->v[i].prefix);
		ck_assert_mem_eq(a->v[i].addr, b->v[i].addr, 16);
	}
}

/* Every setting equal (where it came from, path and lines, may differ). */
static void assert_same_config(const struct config *a, const struct config *b)
{
	size_t i;

	ck_assert_uint_eq(a->nlisten, b->nlisten);
	for (i = 0; i < a->nlisten; i++)
		assert_listen_same(&a->listen[i], &b->listen[i]);
	ck_assert_int_eq(a->processes, b->processes);
	ck_assert_int_eq(a->threads, b->threads);
	ck_assert_int_eq(a->max_connections, b->max_connections);
	ck_assert_int_eq(a->multiplexer, b->multiplexer);
	ck_assert_int_eq(a->backlog, b->backlog);
	ck_assert_int_eq(a->daemon, b->daemon);
	assert_str_or_null(a->pidfile, b->pidfile, "pidfile");
	assert_str_or_null(a->user, b->user, "user");
	assert_str_or_null(a->group, b->group, "group");
	assert_str_or_null(a->via_name, b->via_name, "via_name");

	ck_assert_uint_eq(a->request_header_ms, b->request_header_ms);
	ck_assert_uint_eq(a->client_idle_ms, b->client_idle_ms);
	ck_assert_uint_eq(a->connect_ms, b->connect_ms);
	ck_assert_uint_eq(a->upstream_idle_ms, b->upstream_idle_ms);
	ck_assert_uint_eq(a->tunnel_idle_ms, b->tunnel_idle_ms);
	ck_assert_uint_eq(a->pool_idle_ms, b->pool_idle_ms);
	ck_assert_uint_eq(a->shutdown_ms, b->shutdown_ms);
	ck_assert_uint_eq(a->dns_ms, b->dns_ms);

	ck_assert_uint_eq(a->request_line, b->request_line);
	ck_assert_uint_eq(a->request_header_size, b->request_header_size);
	ck_assert_uint_eq(a->header_fields, b->header_fields);
	ck_assert_uint_eq(a->per_client, b->per_client);

	assert_cidrs_same(&a->allow, &b->allow);
	assert_cidrs_same(&a->deny, &b->deny);
	assert_cidrs_same(&a->block_destinations, &b->block_destinations);
	ck_assert_uint_eq(a->connect_ports.n, b->connect_ports.n);
	for (i = 0; i < a->connect_ports.n; i++) {
		ck_assert_uint_eq(a->connect_ports.v[i].lo, b->connect_ports.v[i].lo);
		ck_assert_uint_eq(a->connect_ports.v[i].hi, b->connect_ports.v[i].hi);
	}

	ck_assert_uint_eq(a->domains.n, b->domains.n);
	ck_assert_uint_eq(a->domains.nallow, b->domains.nallow);
	for (i = 0; i < a->domains.n; i++)
		ck_assert_str_eq(a->domains.v[i].pattern, b->domains.v[i].pattern);
	assert_str_or_null(a->domains_file, b->domains_file, "domains_file");

	assert_str_or_null(a->htpasswd, b->htpasswd, "htpasswd");
	ck_assert_uint_eq(auth_db_count(a->auth), auth_db_count(b->auth));
	assert_str_or_null(a->realm, b->realm, "realm");
	assert_str_or_null(a->access_log, b->access_log, "access_log");
	assert_str_or_null(a->error_log, b->error_log, "error_log");
	ck_assert_int_eq(a->log_level, b->log_level);
	ck_assert_int_eq(a->admin_listen == NULL, b->admin_listen == NULL);
	if (a->admin_listen)
		assert_listen_same(a->admin_listen, b->admin_listen);

	assert_str_or_null(a->dns_servers, b->dns_servers, "dns_servers");
	ck_assert_uint_eq(a->dns_cache_size, b->dns_cache_size);
}

/* ---- defaults ---- */

START_TEST(defaults)
{
	struct errs e = { 0 };
	struct config *cfg = config_default(collect, &e);
	const char *allow[] = { "127.0.0.0/8", "::1/128" };
	const char *block[] = { "127.0.0.0/8", "::1/128", "0.0.0.0/8", "169.254.0.0/16",
				"fe80::/10", "::/128" };
	char via[300];

	ck_assert_msg(cfg != NULL && e.n == 0, "errors:%s", all_errs(&e));
	ck_assert_str_eq(cfg->path, "(built-in)");
	ck_assert_uint_eq(cfg->nlisten, 1);
	assert_listen(&cfg->listen[0], AF_INET, "127.0.0.1", 3128, "127.0.0.1:3128");
	ck_assert_int_eq(cfg->listen[0].line, 0);
	ck_assert_int_eq(cfg->processes, ncpus());
	ck_assert_int_eq(cfg->threads, 1);
	ck_assert_int_eq(cfg->max_connections, 10000);
	ck_assert_int_eq(cfg->multiplexer, CONFIG_MUX_AUTO);
	ck_assert_int_eq(cfg->backlog, 1024);
	ck_assert_int_eq(cfg->daemon, 0);
	ck_assert_ptr_null(cfg->pidfile);
	ck_assert_ptr_null(cfg->user);
	ck_assert_ptr_null(cfg->group);
	snprintf(via, sizeof(via), "%s:3128", hostname());
	ck_assert_str_eq(cfg->via_name, via);

	ck_assert_uint_eq(cfg->request_header_ms, 30000);
	ck_assert_uint_eq(cfg->client_idle_ms, 60000);
	ck_assert_uint_eq(cfg->connect_ms, 10000);
	ck_assert_uint_eq(cfg->upstream_idle_ms, 60000);
	ck_assert_uint_eq(cfg->tunnel_idle_ms, 300000);
	ck_assert_uint_eq(cfg->pool_idle_ms, 30000);
	ck_assert_uint_eq(cfg->shutdown_ms, 30000);
	ck_assert_uint_eq(cfg->dns_ms, 5000);

	ck_assert_uint_eq(cfg->request_line, 8192);
	ck_assert_uint_eq(cfg->request_header_size, 65536);
	ck_assert_uint_eq(cfg->header_fields, 100);
	ck_assert_uint_eq(cfg->per_client, 0);

	assert_cidrs(&cfg->allow, allow, 2);
	ck_assert_uint_eq(cfg->deny.n, 0);
	ck_assert_uint_eq(cfg->connect_ports.n, 1);
	ck_assert_uint_eq(cfg->connect_ports.v[0].lo, 443);
	ck_assert_uint_eq(cfg->connect_ports.v[0].hi, 443);
	assert_cidrs(&cfg->block_destinations, block, 6);
	ck_assert_uint_eq(cfg->domains.n, 0);
	ck_assert_ptr_null(cfg->domains_file);

	ck_assert_ptr_null(cfg->htpasswd);
	ck_assert_ptr_null(cfg->auth);
	ck_assert_str_eq(cfg->realm, "ferry");
	ck_assert_str_eq(cfg->access_log, "off");
	ck_assert_str_eq(cfg->error_log, "stderr");
	ck_assert_int_eq(cfg->log_level, LOG_LVL_INFO);
	ck_assert_ptr_null(cfg->admin_listen);

	ck_assert_ptr_null(cfg->dns_servers);
	ck_assert_uint_eq(cfg->dns_cache_size, 4096);
	config_free(cfg);
}
END_TEST

START_TEST(default_is_empty_file)
{
	struct config *def = config_default(NULL, NULL);
	struct config *empty = load_ok("");
	struct config *blank = load_ok("\n\n  \n; nothing\n# here either\n[server]\n[log]\n");

	ck_assert_ptr_nonnull(def);
	ck_assert_str_eq(empty->path, "t");
	assert_same_config(def, empty);
	assert_same_config(def, blank);
	config_free(def);
	config_free(empty);
	config_free(blank);
}
END_TEST

/* ---- the shipped etc/proxy.ini.in ---- */

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text;
	long len;

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	ck_assert_int_ge(len, 0);
	rewind(f);
	text = malloc((size_t)len + 1);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(fread(text, 1, (size_t)len, f), (size_t)len);
	text[len] = '\0';
	fclose(f);
	return text;
}

static void sample_path(char *buf, size_t len)
{
	const char *srcdir = getenv("FERRY_SRCDIR");
	const char *slash;

	if (srcdir && *srcdir) {
		snprintf(buf, len, "%s/etc/proxy.ini.in", srcdir);
		return;
	}
	/* Run by hand: the file sits next to the tests' source directory. */
	slash = strrchr(__FILE__, '/');
	if (slash)
		snprintf(buf, len, "%.*s/../etc/proxy.ini.in", (int)(slash - __FILE__), __FILE__);
	else
		snprintf(buf, len, "../etc/proxy.ini.in");
}

/* Replace every occurrence of from with to; frees text, returns a new string. */
static char *replace_all(char *text, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0;
	const char *p, *hit;
	char *out, *o;

	for (p = strstr(text, from); p; p = strstr(p + fl, from))
		n++;
	out = malloc(strlen(text) + n * tl + 1);
	ck_assert_ptr_nonnull(out);
	o = out;
	for (p = text; (hit = strstr(p, from)) != NULL; p = hit + fl) {
		memcpy(o, p, (size_t)(hit - p));
		o += hit - p;
		memcpy(o, to, tl);
		o += tl;
	}
	strcpy(o, p);
	free(text);
	return out;
}

/* Turn every ";key = default" line into "key = default" (explanations start "; "). */
static char *uncomment_defaults(char *text)
{
	char *line = text, *w = text;

	while (*line) {
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
		if (line[0] == ';' && line[1] >= 'a' && line[1] <= 'z') {
			memmove(w, line + 1, len - 1);
			w += len - 1;
		} else {
			memmove(w, line, len);
			w += len;
		}
		line += len;
	}
	*w = '\0';
	return text;
}

START_TEST(sample_is_default)
{
	struct config *def = config_default(NULL, NULL), *sample;
	struct errs e = { 0 };
	char path[PATH_MAX];

	sample_path(path, sizeof(path));
	sample = config_load(path, collect, &e);
	ck_assert_msg(sample != NULL && e.n == 0, "%s:%s", path, all_errs(&e));
	ck_assert_str_eq(sample->path, path);
	assert_same_config(def, sample);
	config_free(sample);
	config_free(def);
}
END_TEST

/* The commented values are the real defaults: uncommented, they change nothing. */
START_TEST(sample_defaults_are_true)
{
	struct config *def = config_default(NULL, NULL), *sample;
	char path[PATH_MAX];
	char *text;

	sample_path(path, sizeof(path));
	text = read_text(path);
	/* What the Makefile substitutes. */
	text = replace_all(text, "@sysconfdir@", "/usr/local/etc");
	text = replace_all(text, "@localstatedir@", "/usr/local/var");
	text = replace_all(text, "@runstatedir@", "/usr/local/var/run");
	text = replace_all(text, "@sbindir@", "/usr/local/sbin");
	ck_assert_ptr_null(strchr(text, '@'));
	text = uncomment_defaults(text);
	text = replace_all(text, "<hostname>", hostname());
	sample = load_ok(text);
	assert_same_config(def, sample);
	ck_assert_int_ne(sample->listen[0].line, 0);
	config_free(sample);
	config_free(def);
	free(text);
}
END_TEST

/* Every key has its commented default line, in its section. */
START_TEST(sample_shows_every_key)
{
	static const char *const want[] = {
		"server listen", "server processes", "server threads", "server max_connections",
		"server multiplexer", "server backlog", "server daemon", "server pidfile",
		"server user", "server group", "server via_name",
		"timeouts request_header", "timeouts client_idle", "timeouts connect",
		"timeouts upstream_idle", "timeouts tunnel_idle", "timeouts pool_idle",
		"timeouts shutdown", "timeouts dns",
		"limits request_line", "limits request_header_size", "limits header_fields",
		"limits per_client",
		"access allow", "access deny", "access connect_ports", "access block_destinations",
		"access allow_domains", "access deny_domains", "access domains_file",
		"auth htpasswd", "auth realm",
		"log access_log", "log error_log", "log level",
		"admin listen",
		"dns servers", "dns cache_size",
	};
	char path[PATH_MAX], section[32] = "", found[4096] = " ";
	char *text, *line, *save = NULL;
	size_t i;

	sample_path(path, sizeof(path));
	text = read_text(path);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char key[64];
		if (sscanf(line, "[%31[a-z]]", section) == 1)
			continue;
		if (sscanf(line, ";%63[a-z_] =", key) == 1 && line[1] != ' ') {
			size_t n = strlen(found);
			snprintf(found + n, sizeof(found) - n, " %s %s,", section, key);
		}
	}
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char needle[80];
		snprintf(needle, sizeof(needle), " %s,", want[i]);
		ck_assert_msg(strstr(found, needle) != NULL, "%s: no default line for %s", path,
			      want[i]);
	}
	free(text);
}
END_TEST

/* ---- every key ---- */

/* A bcrypt hash (of "secret"); loading checks its form, never a password. */
#define BCRYPT_HASH "$2y$05$CN0OYXMaTrC4WKupi/Dp3e5cXBy5Sy3lZf0HVrZi7NzPQ1RbdyIeq"

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
}

/* A directory for the files a config names; tmp_path gives a path in it. */
static char tmp_dir[64];

static void tmp_dir_make(void)
{
	strcpy(tmp_dir, "/tmp/ferry-test-config-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
}

static const char *tmp_path(const char *name)
{
	static char path[4][128];
	static int next;
	char *p = path[next++ % 4];

	snprintf(p, sizeof(path[0]), "%s/%s", tmp_dir, name);
	return p;
}

static void tmp_dir_remove(void)
{
	unlink(tmp_path("htpasswd"));
	unlink(tmp_path("domains"));
	ck_assert_int_eq(rmdir(tmp_dir), 0);
}

START_TEST(every_key)
{
	static const char format[] =
		"[server]\n"
		"listen = 192.0.2.1:8080\n"
		"listen = [2001:db8::1]:8081, :8082\n"
		"processes = 3\n"
		"threads = 2\n"
		"max_connections = 500\n"
		"multiplexer = poll\n"
		"backlog = 128\n"
		"daemon = yes\n"
		"pidfile = /run/ferry.pid\n"
		"user = root\n"
		"group = root\n"
		"via_name = proxy.example:8080\n"
		"[timeouts]\n"
		"request_header = 1.5\n"
		"client_idle = 2\n"
		"connect = 0.25\n"
		"upstream_idle = 4\n"
		"tunnel_idle = 5.125\n"
		"pool_idle = 0\n"
		"shutdown = 0.001\n"
		"dns = 86400\n"
		"[limits]\n"
		"request_line = 1000\n"
		"request_header_size = 2000\n"
		"header_fields = 7\n"
		"per_client = 9\n"
		"[access]\n"
		"allow = 10.0.0.0/8, 2001:db8::/32\n"
		"deny = 10.1.0.0/16\n"
		"connect_ports = 443, 8000-8100\n"
		"connect_ports = 563\n"
		"block_destinations = 192.0.2.0/24\n"
		"allow_domains = .example.com, example.org\n"
		"deny_domains = bad.example.com\n"
		"domains_file = %s\n"
		"[auth]\n"
		"htpasswd = %s\n"
		"realm = Ferry Proxy\n"
		"[log]\n"
		"access_log = /var/log/ferry/access.log\n"
		"error_log = syslog\n"
		"level = debug\n"
		"[admin]\n"
		"listen = 127.0.0.1:3129\n"
		"[dns]\n"
		"servers = 192.0.2.53, [2001:db8::53]:5353\n"
		"servers = 198.51.100.53:53\n"
		"cache_size = 0\n";
	char text[sizeof(format) + 256], htpasswd[128], domains[128];
	struct config *cfg;
	const char *allow[] = { "10.0.0.0/8", "2001:db8::/32" };
	const char *deny[] = { "10.1.0.0/16" };
	const char *block[] = { "192.0.2.0/24" };
	int allowed;

	tmp_dir_make();
	snprintf(htpasswd, sizeof(htpasswd), "%s", tmp_path("htpasswd"));
	snprintf(domains, sizeof(domains), "%s", tmp_path("domains"));
	write_text(htpasswd, "alice:" BCRYPT_HASH "\n");
	write_text(domains, "# more\ndeny .ads.example\n");
	snprintf(text, sizeof(text), format, domains, htpasswd);
	cfg = load_ok(text);
	tmp_dir_remove();

	ck_assert_uint_eq(cfg->nlisten, 3);
	assert_listen(&cfg->listen[0], AF_INET, "192.0.2.1", 8080, "192.0.2.1:8080");
	assert_listen(&cfg->listen[1], AF_INET6, "2001:db8::1", 8081, "[2001:db8::1]:8081");
	assert_listen(&cfg->listen[2], AF_INET, "0.0.0.0", 8082, ":8082");
	ck_assert_int_eq(cfg->listen[0].line, 2);
	ck_assert_int_eq(cfg->listen[1].line, 3);
	ck_assert_int_eq(cfg->listen[2].line, 3);
	ck_assert_int_eq(cfg->processes, 3);
	ck_assert_int_eq(cfg->threads, 2);
	ck_assert_int_eq(cfg->max_connections, 500);
	ck_assert_int_eq(cfg->multiplexer, CONFIG_MUX_POLL);
	ck_assert_int_eq(cfg->backlog, 128);
	ck_assert_int_eq(cfg->daemon, 1);
	ck_assert_str_eq(cfg->pidfile, "/run/ferry.pid");
	ck_assert_str_eq(cfg->user, "root");
	ck_assert_str_eq(cfg->group, "root");
	ck_assert_str_eq(cfg->via_name, "proxy.example:8080");

	ck_assert_uint_eq(cfg->request_header_ms, 1500);
	ck_assert_uint_eq(cfg->client_idle_ms, 2000);
	ck_assert_uint_eq(cfg->connect_ms, 250);
	ck_assert_uint_eq(cfg->upstream_idle_ms, 4000);
	ck_assert_uint_eq(cfg->tunnel_idle_ms, 5125);
	ck_assert_uint_eq(cfg->pool_idle_ms, 0);
	ck_assert_uint_eq(cfg->shutdown_ms, 1);
	ck_assert_uint_eq(cfg->dns_ms, 86400000);

	ck_assert_uint_eq(cfg->request_line, 1000);
	ck_assert_uint_eq(cfg->request_header_size, 2000);
	ck_assert_uint_eq(cfg->header_fields, 7);
	ck_assert_uint_eq(cfg->per_client, 9);

	assert_cidrs(&cfg->allow, allow, 2);
	assert_cidrs(&cfg->deny, deny, 1);
	/* Set: as written, without the listen addresses. */
	assert_cidrs(&cfg->block_destinations, block, 1);
	ck_assert_uint_eq(cfg->domains.n, 4);
	ck_assert_uint_eq(cfg->domains.nallow, 2);
	ck_assert_str_eq(cfg->domains_file, domains);
	ck_assert_ptr_nonnull(domains_check(&cfg->domains, "bad.example.com", 15, &allowed));
	ck_assert_int_eq(allowed, 0);
	ck_assert_ptr_nonnull(domains_check(&cfg->domains, "x.ads.example", 13, &allowed));
	ck_assert_int_eq(allowed, 0);
	ck_assert_ptr_nonnull(domains_check(&cfg->domains, "www.example.com", 15, &allowed));
	ck_assert_int_eq(allowed, 1);
	ck_assert_uint_eq(cfg->connect_ports.n, 3);
	ck_assert_uint_eq(cfg->connect_ports.v[0].lo, 443);
	ck_assert_uint_eq(cfg->connect_ports.v[1].lo, 8000);
	ck_assert_uint_eq(cfg->connect_ports.v[1].hi, 8100);
	ck_assert_uint_eq(cfg->connect_ports.v[2].lo, 563);
	ck_assert_uint_eq(cfg->connect_ports.v[2].hi, 563);

	ck_assert_str_eq(cfg->htpasswd, htpasswd);
	ck_assert_uint_eq(auth_db_count(cfg->auth), 1);
	ck_assert_str_eq(cfg->realm, "Ferry Proxy");
	ck_assert_str_eq(cfg->access_log, "/var/log/ferry/access.log");
	ck_assert_str_eq(cfg->error_log, "syslog");
	ck_assert_int_eq(cfg->log_level, LOG_LVL_DEBUG);
	ck_assert_ptr_nonnull(cfg->admin_listen);
	assert_listen(cfg->admin_listen, AF_INET, "127.0.0.1", 3129, "127.0.0.1:3129");
	ck_assert_int_eq(cfg->admin_listen->line, 45);

	ck_assert_str_eq(cfg->dns_servers, "192.0.2.53:53,[2001:db8::53]:5353,198.51.100.53:53");
	ck_assert_uint_eq(cfg->dns_cache_size, 0);
	config_free(cfg);
}
END_TEST

START_TEST(listen_forms)
{
	struct config *cfg = load_ok("[server]\nlisten = [::1]:8080\nlisten = *:81 [::]:82\n"
				     "listen=10.0.0.1:65535\n");
	char via[300];

	ck_assert_uint_eq(cfg->nlisten, 4);
	assert_listen(&cfg->listen[0], AF_INET6, "::1", 8080, "[::1]:8080");
	assert_listen(&cfg->listen[1], AF_INET, "0.0.0.0", 81, "*:81");
	assert_listen(&cfg->listen[2], AF_INET6, "::", 82, "[::]:82");
	assert_listen(&cfg->listen[3], AF_INET, "10.0.0.1", 65535, "10.0.0.1:65535");
	/* The default Via name takes the port of the first listen address. */
	snprintf(via, sizeof(via), "%s:8080", hostname());
	ck_assert_str_eq(cfg->via_name, via);
	config_free(cfg);
}
END_TEST

START_TEST(listen_errors)
{
	expect_key_error("server", "listen", "3128",
			 "'3128': missing port (127.0.0.1:3128, [::1]:3128, or :3128 for all "
			 "addresses)");
	expect_key_error("server", "listen", "127.0.0.1:0",
			 "'127.0.0.1:0': port must be a number 1..65535");
	expect_key_error("server", "listen", "127.0.0.1:65536",
			 "'127.0.0.1:65536': port must be a number 1..65535");
	expect_key_error("server", "listen", "127.0.0.1:",
			 "'127.0.0.1:': port must be a number 1..65535");
	expect_key_error("server", "listen", "127.0.0.1:http",
			 "'127.0.0.1:http': port must be a number 1..65535");
	expect_key_error("server", "listen", "localhost:3128",
			 "'localhost:3128': 'localhost' is not an IPv4 address (host names are "
			 "not allowed here)");
	expect_key_error("server", "listen", "::1:3128",
			 "'::1:3128': an IPv6 address needs brackets, e.g. [::1]:3128");
	expect_key_error("server", "listen", "[::1]3128",
			 "'[::1]3128': expected [IPv6]:PORT, e.g. [::1]:3128");
	expect_key_error("server", "listen", "[::g]:3128", "'[::g]:3128': '::g' is not an IPv6 "
			 "address");
	expect_key_error("server", "listen", "[::1]:3128x",
			 "'[::1]:3128x': port must be a number 1..65535");
	expect_key_error("server", "listen",
			 "1234567890123456789012345678901234567890123456789012345678901234:1",
			 "'1234567890123456789012345678901234567890123456789012345678901234:1' "
			 "is not an address:port");
	expect_key_error("admin", "listen", "nowhere",
			 "'nowhere': missing port (127.0.0.1:3128, [::1]:3128, or :3128 for all "
			 "addresses)");
}
END_TEST

/* ---- repeatable keys ---- */

START_TEST(repeatable_lists)
{
	const char *text =
		"[access]\n"
		"allow = 10.0.0.0/8\n"          /* replaces the default (127.0.0.0/8, ::1) */
		"allow = 192.168.0.0/16,172.16.0.0/12 ,  fd00::/8\n"
		"allow = 100.64.0.0/10 198.18.0.0/15\n"
		"[server]\n"
		"listen = 127.0.0.1:1\n"
		"[access]\n"                    /* a section may come back */
		"allow = ::ffff:203.0.113.0/120\n";
	const char *want[] = { "10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12", "fd00::/8",
			       "100.64.0.0/10", "198.18.0.0/15", "203.0.113.0/24" };
	struct config *cfg = load_ok(text);

	assert_cidrs(&cfg->allow, want, 7);
	ck_assert_uint_eq(cfg->nlisten, 1);
	assert_listen(&cfg->listen[0], AF_INET, "127.0.0.1", 1, "127.0.0.1:1");
	/* Untouched lists keep their defaults. */
	ck_assert_uint_eq(cfg->block_destinations.n, 6);
	ck_assert_uint_eq(cfg->connect_ports.n, 1);
	config_free(cfg);
}
END_TEST

START_TEST(empty_lists)
{
	struct config *cfg = load_ok("[access]\nblock_destinations =\ndeny =\n");
	ck_assert_uint_eq(cfg->block_destinations.n, 0);
	ck_assert_ptr_null(cfg->block_destinations.v);
	ck_assert_uint_eq(cfg->deny.n, 0);
	config_free(cfg);

	/* Empty first, then entries: the entries. */
	cfg = load_ok("[access]\nblock_destinations =\nblock_destinations = 10.0.0.0/8\n");
	ck_assert_uint_eq(cfg->block_destinations.n, 1);
	config_free(cfg);

	expect_error("[access]\nblock_destinations = 10.0.0.0/8\nblock_destinations =\n",
		     "t: line 3: [access] block_destinations: an empty value (meaning none) is "
		     "only allowed on the first block_destinations line");
	expect_key_error("access", "allow", "", "empty value");
	expect_key_error("access", "connect_ports", "", "empty value");
	expect_key_error("server", "listen", "", "empty value");
	expect_key_error("access", "allow", "10.0.0.0/8,,10.1.0.0/16", "empty item in the list");
	expect_key_error("access", "allow", ",10.0.0.0/8", "empty item in the list");
	expect_key_error("access", "allow", "10.0.0.0/8,", "empty item at the end of the list");
}
END_TEST

START_TEST(list_item_errors)
{
	struct errs e;

	/* Every bad item is reported, the good ones do not hide them. */
	load_bad("[access]\nallow = 10.0.0.0/8, 10.1.2.3/8, bogus\nconnect_ports = 443, 0, 9-1\n",
		 &e);
	ck_assert_int_eq(e.n, 4);
	ck_assert_str_eq(e.msg[0], "t: line 2: [access] allow: '10.1.2.3/8': host bits set beyond "
			 "the /8 prefix (did you mean 10.0.0.0/8?)");
	ck_assert_str_eq(e.msg[1], "t: line 2: [access] allow: 'bogus' is not an IPv4 address "
			 "(host names are not allowed)");
	ck_assert_str_eq(e.msg[2], "t: line 3: [access] connect_ports: '0': ports are 1..65535");
	ck_assert_str_eq(e.msg[3], "t: line 3: [access] connect_ports: '9-1': range is reversed "
			 "(1-9?)");
	expect_key_error("access", "deny", "::1/200", "'::1/200': prefix length 200 is larger than "
			 "128");
	expect_key_error("access", "block_destinations", "10.0.0.0/33",
			 "'10.0.0.0/33': prefix length 33 is larger than 32");
}
END_TEST

START_TEST(duplicate_listen)
{
	struct errs e;

	load_bad("[server]\nlisten = 127.0.0.1:3128\nlisten = 10.0.0.1:1, 127.0.0.1:3128\n", &e);
	ck_assert_msg(e.n == 1, "%s", all_errs(&e));
	ck_assert_str_eq(e.msg[0], "t: line 3: [server] listen: 127.0.0.1:3128 is listed twice "
			 "(also on line 2)");
	/* Same address written differently. */
	load_bad("[server]\nlisten = :80\nlisten = 0.0.0.0:80\n", &e);
	ck_assert_msg(e.n == 1, "%s", all_errs(&e));
	ck_assert_str_eq(e.msg[0], "t: line 3: [server] listen: 0.0.0.0:80 is listed twice "
			 "(also on line 2)");
	/* The admin endpoint cannot share a proxy address, even the default one. */
	expect_error("[admin]\nlisten = 127.0.0.1:3128\n",
		     "t: line 2: [admin] listen: 127.0.0.1:3128 is also a [server] listen address "
		     "(the default)");
	expect_error("[server]\nlisten = [::1]:80\n[admin]\nlisten = [::1]:80\n",
		     "t: line 4: [admin] listen: [::1]:80 is also a [server] listen address");
	/* Different families or ports do not clash. */
	config_free(load_ok("[server]\nlisten = 127.0.0.1:80, [::1]:80, 127.0.0.1:81\n"
			    "[admin]\nlisten = [::1]:81\n"));
}
END_TEST

/* ---- values ---- */

START_TEST(booleans)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "YES", "True" };
	static const char *const no[] = { "no", "false", "off", "0", "No", "OFF" };
	struct config *cfg;
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		cfg = load_key("server", "daemon", yes[i]);
		ck_assert_msg(cfg->daemon == 1, "%s", yes[i]);
		config_free(cfg);
		cfg = load_key("server", "daemon", no[i]);
		ck_assert_msg(cfg->daemon == 0, "%s", no[i]);
		config_free(cfg);
	}
	expect_key_error("server", "daemon", "maybe",
			 "'maybe' is not a boolean (yes/no, true/false, on/off, 1/0)");
	expect_key_error("server", "daemon", "2",
			 "'2' is not a boolean (yes/no, true/false, on/off, 1/0)");
	expect_key_error("server", "daemon", "", "empty value");
}
END_TEST

START_TEST(auto_counts)
{
	struct config *cfg = load_ok("[server]\nprocesses = auto\nthreads = AUTO\n");

	ck_assert_int_eq(cfg->processes, ncpus());
	ck_assert_int_eq(cfg->threads, ncpus());
	ck_assert_int_ge(cfg->processes, 1);
	config_free(cfg);
	cfg = load_ok("[server]\nprocesses = 1\nthreads = 256\n");
	ck_assert_int_eq(cfg->processes, 1);
	ck_assert_int_eq(cfg->threads, 256);
	config_free(cfg);
	expect_key_error("server", "processes", "0", "0 is out of range (1..256)");
	expect_key_error("server", "threads", "257", "257 is out of range (1..256)");
	expect_key_error("server", "threads", "many", "'many' is not a whole number or auto");
}
END_TEST

START_TEST(numbers)
{
	struct config *cfg = load_ok("[server]\nbacklog = 65535\nmax_connections = 1000000\n"
				     "[limits]\nper_client = 0\nrequest_line = 64\n"
				     "request_header_size = 1048576\nheader_fields = 10000\n");

	ck_assert_int_eq(cfg->backlog, 65535);
	ck_assert_int_eq(cfg->max_connections, 1000000);
	ck_assert_uint_eq(cfg->per_client, 0);
	ck_assert_uint_eq(cfg->request_line, 64);
	ck_assert_uint_eq(cfg->request_header_size, 1048576);
	ck_assert_uint_eq(cfg->header_fields, 10000);
	config_free(cfg);

	expect_key_error("server", "backlog", "0", "0 is out of range (1..65535)");
	expect_key_error("server", "backlog", "65536", "65536 is out of range (1..65535)");
	expect_key_error("server", "backlog", "abc", "'abc' is not a whole number");
	expect_key_error("server", "backlog", "-1", "'-1' is not a whole number");
	expect_key_error("server", "backlog", "+5", "'+5' is not a whole number");
	expect_key_error("server", "backlog", "1.5", "'1.5' is not a whole number");
	expect_key_error("server", "backlog", "12 34", "'12 34' is not a whole number");
	expect_key_error("server", "max_connections", "99999999999999999999999",
			 "99999999999999999999999 is out of range (1..1000000)");
	expect_key_error("limits", "header_fields", "0", "0 is out of range (1..10000)");
	expect_key_error("limits", "request_line", "63", "63 is out of range (64..1048576)");
	expect_key_error("limits", "request_header_size", "1023",
			 "1023 is out of range (1024..1048576)");
	expect_key_error("limits", "per_client", "1000001", "1000001 is out of range (0..1000000)");
}
END_TEST

START_TEST(timeouts_decimals)
{
	ck_assert_uint_eq(timeout_of("connect", "0.5"), 500);
	ck_assert_uint_eq(timeout_of("connect", "1.25"), 1250);
	ck_assert_uint_eq(timeout_of("connect", "0.001"), 1);
	ck_assert_uint_eq(timeout_of("connect", "2.000"), 2000);
	ck_assert_uint_eq(timeout_of("connect", "2.0000"), 2000); /* zeros add no precision */
	ck_assert_uint_eq(timeout_of("connect", "030"), 30000);
	ck_assert_uint_eq(timeout_of("connect", "86400"), 86400000);
	ck_assert_uint_eq(timeout_of("connect", "86400.000"), 86400000);
	ck_assert_uint_eq(timeout_of("pool_idle", "0"), 0);
	ck_assert_uint_eq(timeout_of("pool_idle", "0.0"), 0);
	config_free(load_key("timeouts", "shutdown", "0"));

	expect_key_error("timeouts", "connect", "0", "0 is out of range (0.001..86400 seconds)");
	expect_key_error("timeouts", "connect", "0.000", "0.000 is out of range (0.001..86400 "
			 "seconds)");
	expect_key_error("timeouts", "request_header", "86400.001",
			 "86400.001 is out of range (0.001..86400 seconds)");
	expect_key_error("timeouts", "pool_idle", "86401", "86401 is out of range (0..86400 "
			 "seconds)");
	expect_key_error("timeouts", "dns", "99999999999999999999",
			 "99999999999999999999 is out of range (0.001..86400 seconds)");
	expect_key_error("timeouts", "connect", "0.0005",
			 "'0.0005': at most 3 decimals (timeouts count milliseconds)");
	expect_key_error("timeouts", "connect", "-1",
			 "'-1' is not a number of seconds (e.g. 30 or 0.5)");
	expect_key_error("timeouts", "connect", ".5",
			 "'.5' is not a number of seconds (e.g. 30 or 0.5)");
	expect_key_error("timeouts", "connect", "5.",
			 "'5.' is not a number of seconds (e.g. 30 or 0.5)");
	expect_key_error("timeouts", "connect", "1e3",
			 "'1e3' is not a number of seconds (e.g. 30 or 0.5)");
	expect_key_error("timeouts", "connect", "5s",
			 "'5s' is not a number of seconds (e.g. 30 or 0.5)");
	expect_key_error("timeouts", "tunnel_idle", "", "empty value");
}
END_TEST

START_TEST(enums_and_strings)
{
	struct config *cfg;

	cfg = load_key("server", "multiplexer", "epoll");
	ck_assert_int_eq(cfg->multiplexer, CONFIG_MUX_EPOLL);
	config_free(cfg);
	cfg = load_key("server", "multiplexer", "Auto");
	ck_assert_int_eq(cfg->multiplexer, CONFIG_MUX_AUTO);
	config_free(cfg);
	expect_key_error("server", "multiplexer", "select",
			 "'select' is not one of auto, poll, epoll");

	cfg = load_key("log", "level", "error");
	ck_assert_int_eq(cfg->log_level, LOG_LVL_ERROR);
	config_free(cfg);
	cfg = load_key("log", "level", "warn");
	ck_assert_int_eq(cfg->log_level, LOG_LVL_WARN);
	config_free(cfg);
	cfg = load_key("log", "level", "warning");
	ck_assert_int_eq(cfg->log_level, LOG_LVL_WARN);
	config_free(cfg);
	cfg = load_key("log", "level", "INFO");
	ck_assert_int_eq(cfg->log_level, LOG_LVL_INFO);
	config_free(cfg);
	expect_key_error("log", "level", "verbose",
			 "'verbose' is not one of error, warn, info, debug");

	cfg = load_ok("[log]\naccess_log = STDERR\nerror_log = off\n");
	ck_assert_str_eq(cfg->access_log, "stderr");
	ck_assert_str_eq(cfg->error_log, "off");
	config_free(cfg);
	cfg = load_key("log", "error_log", "/var/log/ferry.log");
	ck_assert_str_eq(cfg->error_log, "/var/log/ferry.log");
	config_free(cfg);
	expect_key_error("log", "error_log", "ferry.log",
			 "'ferry.log': expected stderr, syslog, off or an absolute path");
	expect_key_error("log", "access_log", "", "empty value");

	cfg = load_key("server", "via_name", "[2001:db8::1]:3128");
	ck_assert_str_eq(cfg->via_name, "[2001:db8::1]:3128");
	config_free(cfg);
	expect_key_error("server", "via_name", "my proxy",
			 "'my proxy': use letters, digits and - . _ : [ ] only (at most 255)");
	expect_key_error("server", "via_name", "a,b",
			 "'a,b': use letters, digits and - . _ : [ ] only (at most 255)");

	cfg = load_key("auth", "realm", "Staff only (ask IT)");
	ck_assert_str_eq(cfg->realm, "Staff only (ask IT)");
	config_free(cfg);
	expect_key_error("auth", "realm", "say \"hi\"",
			 "'say \"hi\"': printable ASCII without '\"' or '\\' only (at most 128)");
	expect_key_error("auth", "realm", "", "empty value");
}
END_TEST

START_TEST(paths_and_optional)
{
	struct config *cfg;

	expect_key_error("server", "pidfile", "ferry.pid", "'ferry.pid' must be an absolute path");
	expect_key_error("auth", "htpasswd", "./htpasswd", "'./htpasswd' must be an absolute path");
	/* An empty value says "none", the default, for keys whose default is none. */
	cfg = load_ok("[server]\npidfile =\nuser =\ngroup =\n[auth]\nhtpasswd =\n[admin]\n"
		      "listen =\n");
	ck_assert_ptr_null(cfg->pidfile);
	ck_assert_ptr_null(cfg->user);
	ck_assert_ptr_null(cfg->group);
	ck_assert_ptr_null(cfg->htpasswd);
	ck_assert_ptr_null(cfg->admin_listen);
	config_free(cfg);
	/* ...and is still a setting: giving it twice is an error. */
	expect_error("[server]\npidfile =\npidfile = /run/x.pid\n",
		     "t: line 3: [server] pidfile: set twice (first on line 2)");
}
END_TEST

/* ---- domains, htpasswd, and the default block_destinations ---- */

START_TEST(domain_keys)
{
	struct config *cfg = load_ok("[access]\n"
				     "allow_domains = .example.com\n"
				     "allow_domains = Example.ORG., www.example.net  intra\n"
				     "deny_domains = ads.example.com\n");
	const struct domain_rule *rule;
	char text[256];
	int allowed;

	ck_assert_uint_eq(cfg->domains.n, 5);
	ck_assert_uint_eq(cfg->domains.nallow, 4);
	rule = domains_check(&cfg->domains, "ads.example.com", 15, &allowed);
	ck_assert_ptr_nonnull(rule);
	ck_assert_int_eq(allowed, 0);
	domains_describe(rule, text, sizeof(text));
	ck_assert_str_eq(text, "'ads.example.com' (t line 4)");
	rule = domains_check(&cfg->domains, "example.org", 11, &allowed);
	ck_assert_ptr_nonnull(rule);
	ck_assert_int_eq(allowed, 1);
	ck_assert_int_eq(rule->line, 3);
	rule = domains_check(&cfg->domains, "intra", 5, &allowed);
	ck_assert_ptr_nonnull(rule);
	ck_assert_int_eq(allowed, 1);
	ck_assert_ptr_null(domains_check(&cfg->domains, "example.com.evil", 16, &allowed));
	ck_assert_int_eq(allowed, 0);
	config_free(cfg);

	/* Empty means none, the default. */
	cfg = load_ok("[access]\nallow_domains =\ndeny_domains =\n");
	ck_assert_uint_eq(cfg->domains.n, 0);
	config_free(cfg);

	expect_key_error("access", "allow_domains", "*.example.com",
			 "'*.example.com': no wildcards; write '.example.com' to match example.com "
			 "and every name under it");
	expect_key_error("access", "deny_domains", "192.0.2.1",
			 "'192.0.2.1' is an IP address; domain patterns never match addresses (use "
			 "block_destinations)");
	expect_key_error("access", "deny_domains", "a..b", "'a..b': empty label (\"..\")");
	expect_key_error("access", "deny_domains", "a.com,,b.com", "empty item in the list");
}
END_TEST

START_TEST(domains_file_key)
{
	char path[128], text[256], want[512];
	const struct domain_rule *rule;
	struct config *cfg;
	struct errs e;
	int allowed;

	tmp_dir_make();
	snprintf(path, sizeof(path), "%s", tmp_path("domains"));
	snprintf(text, sizeof(text), "[access]\ndomains_file = %s\n", path);
	write_text(path, "allow .example.com\nbogus line\ndeny 10.0.0.1\n");
	load_bad(text, &e);
	ck_assert_msg(e.n == 2, "%s", all_errs(&e));
	snprintf(want, sizeof(want), "%s: line 2: expected 'allow PATTERN' or 'deny PATTERN', not "
		 "'bogus'", path);
	ck_assert_str_eq(e.msg[0], want);
	snprintf(want, sizeof(want), "%s: line 3: '10.0.0.1' is an IP address; domain patterns "
		 "never match addresses (use block_destinations)", path);
	ck_assert_str_eq(e.msg[1], want);

	write_text(path, "allow .example.com\n# the web site only\ndeny www.example.com\n");
	cfg = load_ok(text);
	rule = domains_check(&cfg->domains, "www.example.com", 15, &allowed);
	ck_assert_ptr_nonnull(rule);
	ck_assert_int_eq(allowed, 0);
	ck_assert_str_eq(rule->source, path);
	ck_assert_int_eq(rule->line, 3);
	ck_assert_int_eq(domains_check(&cfg->domains, "example.com", 11, &allowed) != NULL, 1);
	ck_assert_int_eq(allowed, 1);
	config_free(cfg);

	/* Loading the config again (a reload) reads the file again. */
	write_text(path, "deny .example.com\n");
	cfg = load_ok(text);
	ck_assert_ptr_nonnull(domains_check(&cfg->domains, "example.com", 11, &allowed));
	ck_assert_int_eq(allowed, 0);
	config_free(cfg);

	tmp_dir_remove();
	snprintf(want, sizeof(want), "t: line 2: [access] domains_file: %s: cannot open: No such "
		 "file or directory", path);
	expect_error(text, want);
	expect_key_error("access", "domains_file", "domains", "'domains' must be an absolute path");
}
END_TEST

START_TEST(htpasswd_key)
{
	char path[128], text[256], want[512];
	struct config *cfg;
	struct errs e;

	tmp_dir_make();
	snprintf(path, sizeof(path), "%s", tmp_path("htpasswd"));
	snprintf(text, sizeof(text), "[auth]\nrealm = staff\nhtpasswd = %s\n", path);
	write_text(path, "alice:" BCRYPT_HASH "\nbob:plain\ncarol:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n");
	load_bad(text, &e);
	ck_assert_msg(e.n == 2, "%s", all_errs(&e));
	snprintf(want, sizeof(want), "%s: line 2: user 'bob': plain-text passwords are refused; "
		 "make entries with 'htpasswd -B' (bcrypt)", path);
	ck_assert_str_eq(e.msg[0], want);
	snprintf(want, sizeof(want), "%s: line 3: user 'carol': SHA-1 ({SHA}) hashes are too "
		 "weak; make entries with 'htpasswd -B' (bcrypt)", path);
	ck_assert_str_eq(e.msg[1], want);

	write_text(path, "alice:" BCRYPT_HASH "\n");
	cfg = load_ok(text);
	ck_assert_ptr_nonnull(cfg->auth);
	ck_assert_uint_eq(auth_db_count(cfg->auth), 1);
	config_free(cfg);

	tmp_dir_remove();
	snprintf(want, sizeof(want), "t: line 3: [auth] htpasswd: %s: cannot open: No such file or "
		 "directory", path);
	expect_error(text, want);
}
END_TEST

/* Entries past the built-in six must all be /32 (or /128) addresses of family, each one an
 * address of this host; every such address of the host must be blocked. */
static void assert_blocks_local(const struct config *cfg, int family)
{
	struct ifaddrs *ifs, *ifa;
	size_t i;
	int n = 0;

	ck_assert_int_eq(getifaddrs(&ifs), 0);
	for (ifa = ifs; ifa; ifa = ifa->ifa_next) {
		if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != family)
			continue;
		n++;
		ck_assert_msg(cidr_list_match(&cfg->block_destinations, ifa->ifa_addr),
			      "local address %s not blocked", ifa->ifa_name);
	}
	for (i = 6; i < cfg->block_destinations.n; i++) {
		const struct cidr *c = &cfg->block_destinations.v[i];
		struct sockaddr_storage ss;
		int found = 0;
		ck_assert_int_eq(c->family, family);
		ck_assert_uint_eq(c->prefix, family == AF_INET ? 32 : 128);
		memset(&ss, 0, sizeof(ss));
		for (ifa = ifs; ifa && !found; ifa = ifa->ifa_next) {
			if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != family)
				continue;
			if (family == AF_INET)
				found = memcmp(&((struct sockaddr_in *)ifa->ifa_addr)->sin_addr,
					       c->addr, 4) == 0;
			else
				found = memcmp(&((struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr,
					       c->addr, 16) == 0;
		}
		ck_assert_msg(found, "%s is not a local address", cidr_text(c));
	}
	freeifaddrs(ifs);
	/* Every host has a loopback address of each family it supports. */
	ck_assert_msg(family == AF_INET6 || n > 0, "no IPv4 address at all?");
}

START_TEST(block_destinations_default_has_own_addresses)
{
	const char *want[] = { "127.0.0.0/8", "::1/128", "0.0.0.0/8", "169.254.0.0/16",
			       "fe80::/10", "::/128", "192.0.2.1/32", "2001:db8::1/128",
			       "198.51.100.9/32", "203.0.113.5/32" };
	struct config *cfg;

	/* 127.0.0.2 is in 127.0.0.0/8 already; the IPv4-mapped address is blocked as IPv4. */
	cfg = load_ok("[server]\n"
		      "listen = 192.0.2.1:8080, [2001:db8::1]:8081, 127.0.0.2:3128\n"
		      "listen = [::ffff:198.51.100.9]:3128, 192.0.2.1:8081\n"
		      "[admin]\n"
		      "listen = 203.0.113.5:3129\n");
	assert_cidrs(&cfg->block_destinations, want, 10);
	config_free(cfg);

	/* Set, it is used as written. */
	cfg = load_ok("[server]\nlisten = 192.0.2.1:8080\n[access]\n"
		      "block_destinations = 10.0.0.0/8\n");
	assert_cidrs(&cfg->block_destinations, (const char *[]){ "10.0.0.0/8" }, 1);
	config_free(cfg);
	cfg = load_ok("[server]\nlisten = 192.0.2.1:8080\n[access]\nblock_destinations =\n");
	ck_assert_uint_eq(cfg->block_destinations.n, 0);
	config_free(cfg);

	/* A wildcard listens on every local address of its family. */
	cfg = load_ok("[server]\nlisten = :3128\n");
	assert_blocks_local(cfg, AF_INET);
	config_free(cfg);
	cfg = load_ok("[server]\nlisten = [::]:3128\n");
	assert_blocks_local(cfg, AF_INET6);
	config_free(cfg);
}
END_TEST

START_TEST(realm_is_a_safe_quoted_string)
{
	expect_key_error("auth", "realm", "back\\slash",
			 "'back\\slash': printable ASCII without '\"' or '\\' only (at most 128)");
	expect_key_error("auth", "realm", "tab\there",
			 "'tab?here': printable ASCII without '\"' or '\\' only (at most 128)");
	expect_key_error("auth", "realm", "caf\xc3\xa9",
			 "'caf\xc3\xa9': printable ASCII without '\"' or '\\' only (at most 128)");
}
END_TEST

START_TEST(user_and_group)
{
	struct config *cfg = load_ok("[server]\nuser = root\n");

	ck_assert_str_eq(cfg->user, "root");
	ck_assert_ptr_null(cfg->group);
	config_free(cfg);
	expect_key_error("server", "user", "ferry-no-such-user", "no such user "
			 "'ferry-no-such-user'");
	expect_key_error("server", "group", "ferry-no-such-group", "no such group "
			 "'ferry-no-such-group'");
}
END_TEST

/* ---- [dns] ---- */

static void expect_servers(const char *value, const char *csv)
{
	struct config *cfg = load_key("dns", "servers", value);

	ck_assert_msg(cfg->dns_servers != NULL && strcmp(cfg->dns_servers, csv) == 0,
		      "servers = %s: '%s', want '%s'", value,
		      cfg->dns_servers ? cfg->dns_servers : "NULL", csv);
	config_free(cfg);
}

START_TEST(dns_servers)
{
	struct config *cfg;
	struct errs e;

	/* The port defaults to 53; addresses come out in their usual spelling, with brackets
	 * for IPv6, which is the form ares_set_servers_ports_csv takes. */
	expect_servers("127.0.0.1", "127.0.0.1:53");
	expect_servers("127.0.0.1:5353", "127.0.0.1:5353");
	expect_servers("[::1]", "[::1]:53");
	expect_servers("[::1]:1", "[::1]:1");
	expect_servers("[2001:DB8:0::53]:65535", "[2001:db8::53]:65535");
	expect_servers("10.0.0.1:053, 10.0.0.2  [::ffff:10.0.0.3]",
		       "10.0.0.1:53,10.0.0.2:53,[::ffff:10.0.0.3]:53");

	/* Repeatable: later lines add, in order. */
	cfg = load_ok("[dns]\nservers = 192.0.2.1\nservers = 192.0.2.2:54, [2001:db8::1]\n");
	ck_assert_str_eq(cfg->dns_servers, "192.0.2.1:53,192.0.2.2:54,[2001:db8::1]:53");
	config_free(cfg);

	/* Empty means the system's resolv.conf, like no line at all. */
	cfg = load_ok("[dns]\nservers =\n");
	ck_assert_ptr_null(cfg->dns_servers);
	config_free(cfg);
	cfg = load_ok("[dns]\nservers =\nservers = 192.0.2.1\n");
	ck_assert_str_eq(cfg->dns_servers, "192.0.2.1:53");
	config_free(cfg);
	expect_error("[dns]\nservers = 192.0.2.1\nservers =\n",
		     "t: line 3: [dns] servers: an empty value (meaning none) is only allowed on "
		     "the first servers line");

	expect_key_error("dns", "servers", "dns.example",
			 "'dns.example': 'dns.example' is not an IPv4 address (host names are not "
			 "allowed here)");
	expect_key_error("dns", "servers", "dns.example:53",
			 "'dns.example:53': 'dns.example' is not an IPv4 address (host names are "
			 "not allowed here)");
	expect_key_error("dns", "servers", "10.0.0.256",
			 "'10.0.0.256': '10.0.0.256' is not an IPv4 address (host names are not "
			 "allowed here)");
	expect_key_error("dns", "servers", "::1",
			 "'::1': an IPv6 address needs brackets, e.g. [::1]:53");
	expect_key_error("dns", "servers", "2001:db8::1:53",
			 "'2001:db8::1:53': an IPv6 address needs brackets, e.g. [::1]:53");
	expect_key_error("dns", "servers", "[::1",
			 "'[::1': expected [IPv6] or [IPv6]:PORT, e.g. [::1]:53");
	expect_key_error("dns", "servers", "[::1]53",
			 "'[::1]53': expected [IPv6] or [IPv6]:PORT, e.g. [::1]:53");
	expect_key_error("dns", "servers", "[10.0.0.1]:53",
			 "'[10.0.0.1]:53': '10.0.0.1' is not an IPv6 address");
	expect_key_error("dns", "servers", "[fe80::1%eth0]:53",
			 "'[fe80::1%eth0]:53': 'fe80::1%eth0' is not an IPv6 address");
	expect_key_error("dns", "servers", "[]:53", "'[]:53': missing address");
	expect_key_error("dns", "servers", ":53", "':53': missing address");
	expect_key_error("dns", "servers", "10.0.0.1:0",
			 "'10.0.0.1:0': port must be a number 1..65535");
	expect_key_error("dns", "servers", "10.0.0.1:65536",
			 "'10.0.0.1:65536': port must be a number 1..65535");
	expect_key_error("dns", "servers", "10.0.0.1:",
			 "'10.0.0.1:': port must be a number 1..65535");
	expect_key_error("dns", "servers", "[::1]:",
			 "'[::1]:': port must be a number 1..65535");
	expect_key_error("dns", "servers", "[::1]:domain",
			 "'[::1]:domain': port must be a number 1..65535");
	expect_key_error("dns", "servers", "10.0.0.1,", "empty item at the end of the list");
	expect_key_error("dns", "servers",
			 "[1234:1234:1234:1234:1234:1234:1234:1234:1234:1234]:53",
			 "'[1234:1234:1234:1234:1234:1234:1234:1234:1234:1234]:53' is not an "
			 "address");

	/* The same server twice, however written, is a slip; each bad item is reported. */
	load_bad("[dns]\nservers = 10.0.0.1, bogus\nservers = 10.0.0.2, 10.0.0.1:53\n"
		 "servers = [::1], [0:0::1]:53\n", &e);
	ck_assert_msg(e.n == 3, "%s", all_errs(&e));
	ck_assert_str_eq(e.msg[0], "t: line 2: [dns] servers: 'bogus': 'bogus' is not an IPv4 "
			 "address (host names are not allowed here)");
	ck_assert_str_eq(e.msg[1], "t: line 3: [dns] servers: 10.0.0.1:53 is listed twice");
	ck_assert_str_eq(e.msg[2], "t: line 4: [dns] servers: [::1]:53 is listed twice");
	/* Same address on another port, or in another family, is another server. */
	expect_servers("10.0.0.1, 10.0.0.1:5353, [::ffff:10.0.0.1]",
		       "10.0.0.1:53,10.0.0.1:5353,[::ffff:10.0.0.1]:53");
	/* An entry that merely starts like another one is not the same. */
	expect_servers("10.0.0.10, 10.0.0.1, 10.0.0.1:5", "10.0.0.10:53,10.0.0.1:53,10.0.0.1:5");
}
END_TEST

START_TEST(dns_cache_size)
{
	struct config *cfg = load_key("dns", "cache_size", "0");

	ck_assert_uint_eq(cfg->dns_cache_size, 0);
	config_free(cfg);
	cfg = load_key("dns", "cache_size", "1000000");
	ck_assert_uint_eq(cfg->dns_cache_size, 1000000);
	config_free(cfg);
	expect_key_error("dns", "cache_size", "1000001", "1000001 is out of range (0..1000000)");
	expect_key_error("dns", "cache_size", "-1", "'-1' is not a whole number");
	expect_key_error("dns", "cache_size", "", "empty value");
	expect_error("[dns]\ncache_size = 1\ncache_size = 2\n",
		     "t: line 3: [dns] cache_size: set twice (first on line 2)");
	/* [dns] keys belong to [dns] only, and dns in [timeouts] stays where it was. */
	expect_error("[timeouts]\nservers = 10.0.0.1\n",
		     "t: line 2: [timeouts] servers: unknown key");
	expect_error("[dns]\ntimeout = 1\n", "t: line 2: [dns] timeout: unknown key");
}
END_TEST

/* ---- syntax ---- */

START_TEST(syntax_tolerated)
{
	const char *text =
		"\xef\xbb\xbf; a UTF-8 BOM is skipped\r\n"
		"# hash comments too\r\n"
		"[ Server ]   ; section names ignore case and blanks\r\n"
		"    Listen   =   127.0.0.1:1   ; indented, an inline comment\r\n"
		"\tbacklog=5\r\n"
		"[limits]\n"
		"per_client = 3;4\n"; /* ';' without a blank before it is no comment */
	struct errs e;
	struct config *cfg;

	load_bad(text, &e);
	ck_assert_msg(e.n == 1, "%s", all_errs(&e));
	ck_assert_str_eq(e.msg[0], "t: line 7: [limits] per_client: '3;4' is not a whole number");

	cfg = load_ok("\xef\xbb\xbf[server]\r\n  Listen   =   127.0.0.1:1   ; comment\r\n"
		      "\tbacklog=5\r\n[ LIMITS ] # trailing comment\nper_client = 3 ;4");
	ck_assert_uint_eq(cfg->nlisten, 1);
	assert_listen(&cfg->listen[0], AF_INET, "127.0.0.1", 1, "127.0.0.1:1");
	ck_assert_int_eq(cfg->backlog, 5);
	ck_assert_uint_eq(cfg->per_client, 3);
	config_free(cfg);
}
END_TEST

START_TEST(syntax_errors)
{
	struct errs e;

	expect_error("listen = 127.0.0.1:1\n",
		     "t: line 1: listen: key outside any section (start with [server], [access], "
		     "...)");
	expect_error("[server]\nlisten: 127.0.0.1:1\n",
		     "t: line 2: expected 'key = value' (ferry uses '=', not ':')");
	expect_error("[server]\njust words\n",
		     "t: line 2: expected 'key = value', '[section]' or a comment");
	load_bad("[access]\nallow = 10.0.0.0/8,\n   10.1.0.0/16\n", &e);
	ck_assert_msg(e.n == 2, "%s", all_errs(&e));
	ck_assert_str_eq(e.msg[0], "t: line 2: [access] allow: empty item at the end of the list");
	ck_assert_str_eq(e.msg[1], "t: line 3: expected 'key = value' (continuation lines are not "
			 "supported: repeat the key on a line of its own)");
	expect_error("[access]\nallow = 10.0.0.0/8\n   10.1.0.0/16\n",
		     "t: line 3: expected 'key = value' (continuation lines are not supported: "
		     "repeat the key on a line of its own)");
	expect_error("[server]\n= 5\n", "t: line 2: missing key name before '='");
	expect_error("[server\nbacklog = 5\n", "t: line 1: missing ']' in section header");
	expect_error("[server] backlog = 5\n",
		     "t: line 1: unexpected text after ']' in section header");
	expect_error("[server]\nbacklog ; = 5\n",
		     "t: line 2: expected 'key = value', '[section]' or a comment");
}
END_TEST

START_TEST(nul_byte)
{
	static const char text[] = "[server]\nbacklog = 5\0junk\nthreads = 2\n";
	struct errs e = { 0 };
	struct config *cfg;
	char path[] = "/tmp/ferry-test-config-XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	cfg = config_load(path, collect, &e);
	unlink(path);
	ck_assert_ptr_null(cfg);
	ck_assert_int_eq(e.n, 1);
	ck_assert_str_eq(strstr(e.msg[0], ": line "), ": line 2: line contains a NUL byte");
}
END_TEST

START_TEST(unknown_section_and_key)
{
	struct errs e;

	/* An unknown section is reported once, not once per key in it. */
	load_bad("[server]\nlisen = 127.0.0.1:1\n[proxy]\nfoo = 1\nbar = 2\n[log]\nlevel = debug\n"
		 "colour = blue\n[admin]\nport = 1\n",
		 &e);
	ck_assert_msg(e.n == 4, "%s", all_errs(&e));
	ck_assert_str_eq(e.msg[0], "t: line 2: [server] lisen: unknown key");
	ck_assert_str_eq(e.msg[1], "t: line 3: unknown section [proxy] (known: [server] "
			 "[timeouts] [limits] [access] [auth] [log] [admin] [dns] [upstream])");
	ck_assert_str_eq(e.msg[2], "t: line 8: [log] colour: unknown key");
	ck_assert_str_eq(e.msg[3], "t: line 10: [admin] port: unknown key");
	/* A key of one section in another is unknown there. */
	expect_error("[timeouts]\nbacklog = 5\n", "t: line 2: [timeouts] backlog: unknown key");
	/* An empty section name is unknown too. */
	expect_error("[]\n", "t: line 1: unknown section [] (known: [server] [timeouts] [limits] "
		     "[access] [auth] [log] [admin] [dns] [upstream])");
}
END_TEST

START_TEST(duplicate_keys)
{
	struct errs e;

	load_bad("[server]\nbacklog = 5\nthreads = 2\n[limits]\n[server]\nBacklog = 6\n"
		 "backlog = 7\n", &e);
	ck_assert_msg(e.n == 2, "%s", all_errs(&e));
	ck_assert_str_eq(e.msg[0], "t: line 6: [server] backlog: set twice (first on line 2)");
	ck_assert_str_eq(e.msg[1], "t: line 7: [server] backlog: set twice (first on line 2)");
	/* A bad first value still counts as set. */
	load_bad("[log]\nlevel = loud\nlevel = debug\n", &e);
	ck_assert_msg(e.n == 2, "%s", all_errs(&e));
	ck_assert_str_eq(e.msg[0], "t: line 2: [log] level: 'loud' is not one of error, warn, "
			 "info, debug");
	ck_assert_str_eq(e.msg[1], "t: line 3: [log] level: set twice (first on line 2)");
}
END_TEST

/* ---- long lines ---- */

START_TEST(long_lines)
{
	char text[2048], line199[256], line200[256];
	struct config *cfg;
	struct errs e;
	size_t n;

	/* "allow = " plus addresses, padded with blanks before the comment to exactly len. */
	snprintf(line199, sizeof(line199), "allow = 10.0.0.0/8 ;");
	n = strlen(line199);
	memset(line199 + n, 'x', 199 - n);
	line199[199] = '\0';
	memcpy(line200, line199, 200);
	line200[199] = 'x';
	line200[200] = '\0';
	ck_assert_uint_eq(strlen(line199), 199);
	ck_assert_uint_eq(strlen(line200), 200);

	/* 199 characters (and the line ending) are fine. */
	snprintf(text, sizeof(text), "[access]\n%s\r\n", line199);
	cfg = load_ok(text);
	ck_assert_uint_eq(cfg->allow.n, 1);
	config_free(cfg);

	/* 200 are not; the lines after it keep their numbers and are still checked. */
	snprintf(text, sizeof(text), "[access]\n%s\nallow = 10.1.0.0/16\n%s\nbogus = 1\n"
		 "[server]\nbacklog = 0\n", line200, line200);
	load_bad(text, &e);
	ck_assert_msg(e.n == 4, "%s", all_errs(&e));
	ck_assert_str_eq(e.msg[0], "t: line 2: line too long (max 199 characters); split a list "
			 "over repeated keys");
	ck_assert_str_eq(e.msg[1], "t: line 4: line too long (max 199 characters); split a list "
			 "over repeated keys");
	ck_assert_str_eq(e.msg[2], "t: line 5: [access] bogus: unknown key");
	ck_assert_str_eq(e.msg[3], "t: line 7: [server] backlog: 0 is out of range (1..65535)");

	/* A very long last line without a newline. */
	memset(text, 'y', 1500);
	memcpy(text, "[server]\nlisten = ", 18);
	text[1500] = '\0';
	expect_error(text, "t: line 2: line too long (max 199 characters); split a list over "
		     "repeated keys");

	/* A cut section header does not let its keys fall into the section before it. */
	memset(text, ' ', 300);
	memcpy(text, "[server]\n[limits", 16);
	memcpy(text + 290, "]\nbacklog=0", 11);
	text[301] = '\0';
	expect_error(text, "t: line 2: line too long (max 199 characters); split a list over "
		     "repeated keys");
}
END_TEST

/* ---- several errors, cross-checks, files ---- */

START_TEST(all_errors_reported)
{
	const char *text =
		"[server]\n"                        /* 1 */
		"backlog = lots\n"                  /* 2 */
		"threads = 0\n"                     /* 3 */
		"threads = 2\n"                     /* 4 */
		"\n"                                /* 5 */
		"[timeouts]\n"                      /* 6 */
		"connect = 0\n"                     /* 7 */
		"; a comment\n"                     /* 8 */
		"idle = 5\n"                        /* 9 */
		"[acess]\n"                         /* 10 */
		"allow = 10.0.0.0/8\n"              /* 11 */
		"[access]\n"                        /* 12 */
		"allow = 10.0.0.1/8\n"              /* 13 */
		"[limits]\n"                        /* 14 */
		"request_line = 70000\n";           /* 15: larger than request_header_size */
	struct errs e;

	load_bad(text, &e);
	ck_assert_msg(e.n == 8, "%s", all_errs(&e));
	ck_assert_str_eq(e.msg[0], "t: line 2: [server] backlog: 'lots' is not a whole number");
	ck_assert_str_eq(e.msg[1], "t: line 3: [server] threads: 0 is out of range (1..256)");
	ck_assert_str_eq(e.msg[2], "t: line 4: [server] threads: set twice (first on line 3)");
	ck_assert_str_eq(e.msg[3], "t: line 7: [timeouts] connect: 0 is out of range "
			 "(0.001..86400 seconds)");
	ck_assert_str_eq(e.msg[4], "t: line 9: [timeouts] idle: unknown key");
	ck_assert_str_eq(e.msg[5], "t: line 10: unknown section [acess] (known: [server] "
			 "[timeouts] [limits] [access] [auth] [log] [admin] [dns] [upstream])");
	ck_assert_str_eq(e.msg[6], "t: line 13: [access] allow: '10.0.0.1/8': host bits set "
			 "beyond the /8 prefix (did you mean 10.0.0.0/8?)");
	ck_assert_str_eq(e.msg[7], "t: line 15: [limits] request_line (70000) must not be larger "
			 "than request_header_size (65536)");
}
END_TEST

START_TEST(cross_checks)
{
	expect_error("[limits]\nrequest_header_size = 4096\n",
		     "t: line 2: [limits] request_line (8192) must not be larger than "
		     "request_header_size (4096)");
	expect_error("[limits]\nrequest_header_size = 4096\nrequest_line = 5000\n",
		     "t: line 3: [limits] request_line (5000) must not be larger than "
		     "request_header_size (4096)");
	config_free(load_ok("[limits]\nrequest_header_size = 4096\nrequest_line = 4096\n"));
}
END_TEST

START_TEST(missing_file)
{
	struct errs e = { 0 };
	struct config *cfg = config_load("/nonexistent/ferry/proxy.ini", collect, &e);

	ck_assert_ptr_null(cfg);
	ck_assert_int_eq(e.n, 1);
	ck_assert_str_eq(e.msg[0], "/nonexistent/ferry/proxy.ini: cannot open: No such file or "
			 "directory");

	memset(&e, 0, sizeof(e));
	cfg = config_load("/", collect, &e);
	ck_assert_ptr_null(cfg);
	ck_assert_int_eq(e.n, 1);
	ck_assert_str_eq(e.msg[0], "/: cannot read: Is a directory");
}
END_TEST

START_TEST(file_errors_name_the_file)
{
	static const char text[] = "[server]\nthreads = 4\n[nope]\n";
	char path[] = "/tmp/ferry-test-config-XXXXXX", want[128];
	struct errs e = { 0 };
	struct config *cfg;
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	cfg = config_load(path, collect, &e);
	ck_assert_ptr_null(cfg);
	ck_assert_int_eq(e.n, 1);
	snprintf(want, sizeof(want), "%s: line 3: unknown section [nope] (known: ", path);
	ck_assert_msg(strncmp(e.msg[0], want, strlen(want)) == 0, "%s", e.msg[0]);

	/* Fixed, the same file loads, and remembers where it came from. */
	fd = open(path, O_WRONLY | O_TRUNC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, 21), 21);
	close(fd);
	memset(&e, 0, sizeof(e));
	cfg = config_load(path, collect, &e);
	unlink(path);
	ck_assert_msg(cfg != NULL, "%s", all_errs(&e));
	ck_assert_str_eq(cfg->path, path);
	ck_assert_int_eq(cfg->threads, 4);
	config_free(cfg);
	config_free(NULL);
}
END_TEST

START_TEST(control_characters_are_not_echoed)
{
	expect_key_error("server", "backlog", "\x1b[31mred",
			 "'?[31mred' is not a whole number");
}
END_TEST

/* doc/chaining.md: the password never appears in an error message. Values that are wrong
 * in every way a URL with credentials can be, including a password cut in pieces by a blank
 * or a comma (the list splitting): no message of any piece shows the password. */
START_TEST(upstream_errors_never_show_the_password)
{
	static const char *const lines[] = {
		"parent = ferry:s3cretSECRET@proxy:3128",
		"parent = http://ferry:pa,ssw0rdSECRET@h:3128",
		"parent = http://ferry:pa ssw0rdSECRET@h:3128",
		"parent = socks5://ferry:pa ss SECRET x@h:1080",
		"parent = http://ok.example:3128, socks5://ferry:ssw0rd,SECRET@h:1080",
		"parent = http://ferry:ssw0rdSECRET@h",
		"parent = http://ferry:ssw0rdSECRET@h:65536",
		"parent = http://ferry:ssw0rdSECRET@[::1:80",
		"parent = http://ferry:ssw0rdSECRET@h$x:80",
		"parent = http://ferry:ssw0rdSECRET%zz@h:80",
		"parent = ftp://ferry:ssw0rdSECRET@h:21",
		"parent = ferry:ssw0rdSECRET@http://h:1",
		"parent = ssw0rdSECRET://h:1",
		"route = example.com ferry:ssw0rdSECRET@h:1",
		"route = example.com http://ferry:ssw0rd SECRET@h:1",
		"route = http://ferry:ssw0rdSECRET@h:1 direct",
		"route = http://ferry:ssw0rdSECRET@h:1",
	};
	char text[512];
	struct errs e;

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		snprintf(text, sizeof(text), "[upstream]\n%s\n", lines[i]);
		load_bad(text, &e);
		for (int k = 0; k < e.n && k < MAX_ERRS; k++)
			ck_assert_msg(!strstr(e.msg[k], "SECRET") && !strstr(e.msg[k], "ssw0rd"),
				      "%s:%s", lines[i], all_errs(&e));
	}
	/* what is shown still points at the mistake */
	expect_key_error("upstream", "parent", "ferry:s3cretSECRET@proxy:3128",
			 "parent '***@proxy:3128' does not begin with http:// or socks5:// (a blank or a "
			 "comma in a password must be %-encoded: %20, %2C)");
	load_bad("[upstream]\nparent = http://ferry:pa,ssw0rdSECRET@h:3128\n", &e);
	ck_assert_msg(e.n == 2, "%s", all_errs(&e));
	ck_assert_str_eq(e.msg[1], "t: line 2: [upstream] parent: parent '***@h:3128' does not begin "
			 "with http:// or socks5:// (a blank or a comma in a password must be %-encoded: "
			 "%20, %2C)");
	/* and %-encoded, the same password is fine */
	struct config *cfg = load_ok("[upstream]\nparent = http://ferry:pa%2Cssw0rd%20SECRET@h:3128\n");
	ck_assert_str_eq(cfg->routes.parents[0]->pass, "pa,ssw0rd SECRET");
	config_free(cfg);
}
END_TEST

/* RFC 1929: a SOCKS5 user name and password are 1 to 255 bytes; an empty password is refused
 * when the config is read, not sent with length 0. HTTP Basic takes one. */
START_TEST(upstream_socks5_empty_password)
{
	struct config *cfg;

	expect_key_error("upstream", "parent", "socks5://ferry:@h:1080",
			 "parent socks5://***@...: a SOCKS5 password must be 1 to 255 bytes (RFC 1929)");
	expect_key_error("upstream", "route", "example.com socks5://ferry:@h:1080",
			 "parent socks5://***@...: a SOCKS5 password must be 1 to 255 bytes (RFC 1929)");
	cfg = load_key("upstream", "parent", "http://ferry:@h:3128");
	ck_assert_str_eq(cfg->routes.parents[0]->pass, "");
	config_free(cfg);
}
END_TEST

/* doc/chaining.md: a line holds 199 characters, so the longest password on the shortest
 * line ("parent = socks5://u:PASSWORD@h:1") has 175; the 255 of the URL syntax do not fit. */
START_TEST(upstream_password_line_limit)
{
	char pw[256], text[512];
	struct config *cfg;
	struct errs e;

	memset(pw, 'x', 175);
	pw[175] = '\0';
	snprintf(text, sizeof(text), "[upstream]\nparent = socks5://u:%s@h:1\n", pw);
	ck_assert_uint_eq(strlen(strchr(text, '\n') + 1), 199 + 1);
	cfg = load_ok(text);
	ck_assert_uint_eq(strlen(cfg->routes.parents[0]->pass), 175);
	config_free(cfg);
	strcat(pw, "x");
	snprintf(text, sizeof(text), "[upstream]\nparent = socks5://u:%s@h:1\n", pw);
	load_bad(text, &e);
	ck_assert_msg(e.n == 1 && strstr(e.msg[0], "line too long (max 199 characters)"), "%s", all_errs(&e));
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("defaults");
	tcase_add_test(tc, defaults);
	tcase_add_test(tc, default_is_empty_file);
	tcase_add_test(tc, sample_is_default);
	tcase_add_test(tc, sample_defaults_are_true);
	tcase_add_test(tc, sample_shows_every_key);
	suite_add_tcase(s, tc);

	tc = tcase_create("keys");
	tcase_add_test(tc, every_key);
	tcase_add_test(tc, listen_forms);
	tcase_add_test(tc, listen_errors);
	tcase_add_test(tc, repeatable_lists);
	tcase_add_test(tc, empty_lists);
	tcase_add_test(tc, list_item_errors);
	tcase_add_test(tc, duplicate_listen);
	tcase_add_test(tc, booleans);
	tcase_add_test(tc, auto_counts);
	tcase_add_test(tc, numbers);
	tcase_add_test(tc, timeouts_decimals);
	tcase_add_test(tc, enums_and_strings);
	tcase_add_test(tc, paths_and_optional);
	tcase_add_test(tc, user_and_group);
	tcase_add_test(tc, dns_servers);
	tcase_add_test(tc, dns_cache_size);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, syntax_tolerated);
	tcase_add_test(tc, syntax_errors);
	tcase_add_test(tc, nul_byte);
	tcase_add_test(tc, unknown_section_and_key);
	tcase_add_test(tc, duplicate_keys);
	tcase_add_test(tc, long_lines);
	tcase_add_test(tc, all_errors_reported);
	tcase_add_test(tc, cross_checks);
	tcase_add_test(tc, missing_file);
	tcase_add_test(tc, file_errors_name_the_file);
	tcase_add_test(tc, control_characters_are_not_echoed);
	tcase_add_test(tc, upstream_errors_never_show_the_password);
	tcase_add_test(tc, upstream_socks5_empty_password);
	tcase_add_test(tc, upstream_password_line_limit);
	tcase_add_test(tc, domain_keys);
	tcase_add_test(tc, domains_file_key);
	tcase_add_test(tc, htpasswd_key);
	tcase_add_test(tc, block_destinations_default_has_own_addresses);
	tcase_add_test(tc, realm_is_a_safe_quoted_string);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
