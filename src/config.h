/* config.h - proxy.ini, parsed with inih into one immutable, validated struct config.
 *
 * Every error names its line: "FILE: line N: message". A config is built once (at start
 * or reload), then only read; connections keep a pointer to the config they started with. */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "acl.h"
#include "domains.h"
#include "route.h"

struct auth_db;

struct config_listen {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char text[64];        /* as written: "127.0.0.1:3128", "[::1]:3128", ":3128" */
	int line;             /* where it was written (0 for the built-in default) */
};

enum config_mux { CONFIG_MUX_AUTO = 0, CONFIG_MUX_POLL, CONFIG_MUX_EPOLL };

struct config {
	char *path;           /* file it came from, or "(built-in)" */

	/* [server] */
	struct config_listen *listen; /* default: 127.0.0.1:3128 */
	size_t nlisten;
	int processes;        /* resolved: "auto" -> number of online CPUs; 1..256 */
	int threads;          /* per process, resolved like processes; 1..256 */
	int max_connections;  /* per process; default 10000; 1..1000000 */
	enum config_mux multiplexer;
	int backlog;          /* default 1024; 1..65535 */
	int daemon;           /* default no */
	char *pidfile;        /* default NULL: none */
	char *user, *group;   /* default NULL: keep */
	char *via_name;       /* default: "HOSTNAME:PORT" of the first listener */
	int proxy_protocol;   /* default no: listeners expect a PROXY v1/v2 header first */
	struct cidr_list proxy_protocol_from; /* who may send it; default empty (required
						 with proxy_protocol = yes) */

	/* [timeouts], stored in milliseconds; written in seconds (decimals allowed: 0.5) */
	unsigned request_header_ms; /* default 30 s */
	unsigned client_idle_ms;    /* default 60 s */
	unsigned connect_ms;        /* default 10 s */
	unsigned upstream_idle_ms;  /* default 60 s */
	unsigned tunnel_idle_ms;    /* default 300 s */
	unsigned pool_idle_ms;      /* default 30 s */
	unsigned shutdown_ms;       /* default 30 s */
	unsigned dns_ms;            /* [timeouts] dns, default 5 s */

	/* [limits] */
	unsigned request_line;        /* default 8192 */
	unsigned request_header_size; /* default 65536 */
	unsigned header_fields;       /* default 100 */
	unsigned per_client;          /* default 0: no cap */

	/* [access] */
	struct cidr_list allow;        /* default 127.0.0.0/8, ::1 */
	struct cidr_list deny;         /* default empty */
	struct port_list connect_ports; /* default 443 */
	struct cidr_list block_destinations; /* default: loopback, 0.0.0.0/8, 169.254.0.0/16,
						fe80::/10, ::/128, and the addresses of the
						[server] and [admin] listen lines (every local
						address for a wildcard); set: as written, empty =
						none */
	struct domain_rules domains;   /* allow_domains, deny_domains and the rules of
					  domains_file; default none */
	char *domains_file;            /* default NULL */

	/* [auth] */
	char *htpasswd;       /* default NULL */
	struct auth_db *auth; /* htpasswd as loaded with the config; NULL when not set */
	char *realm;          /* default "ferry" */

	/* [log] */
	char *access_log;     /* default "off" */
	char *error_log;      /* default "stderr" */
	int log_level;        /* enum log_level, default info */

	/* [admin] */
	struct config_listen *admin_listen; /* default NULL: off */
	struct cidr_list admin_allow;       /* who may ask it; default 127.0.0.0/8, ::1 */

	/* [dns] */
	char *dns_servers;    /* "IP:PORT,[IPv6]:PORT" for ares_set_servers_ports_csv; default
				 NULL: the servers of /etc/resolv.conf */
	unsigned dns_cache_size; /* names kept per worker; default 4096, 0: no cache */

	/* [upstream] */
	struct route_table routes; /* parent = URL... (the default target), route = MATCH
				      TARGET... rules; default: everything direct */

	int key_lines[64];    /* line of each key's first occurrence (config_where) */
};

/* Receives each error line, already formatted without a trailing newline:
 * "FILE: line N: message" (or "FILE: message" when no line applies). */
typedef void config_error_fn(void *arg, const char *msg);

/* Load and validate path. Reports every error found (not only the first) through errfn and
 * returns NULL when there was any; otherwise a new config. */
struct config *config_load(const char *path, config_error_fn *errfn, void *arg);
/* The built-in default config (what an empty proxy.ini gives). */
struct config *config_default(config_error_fn *errfn, void *arg);
/* Parse from a string (tests, the built-in default); name is used in error messages. */
struct config *config_load_string(const char *text, const char *name, config_error_fn *errfn,
				  void *arg);
void config_free(struct config *cfg);
/* Where section.key was set, for messages about it: "FILE: line N: [section] key", or
 * "FILE: [section] key (default)" when the file does not set it. Returns buf. */
const char *config_where(const struct config *cfg, const char *section, const char *key, char *buf,
			 size_t len);

#endif
