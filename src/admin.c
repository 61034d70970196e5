/* admin.c - the admin endpoint: a small HTTP/1.1 server on its own thread of the master.
 *
 * One request per connection (Connection: close), GET or HEAD, heads up to 4 KiB, 5 s per
 * connection, at most ADMIN_MAX_CLIENTS at once (more wait in the backlog). Everything is
 * non-blocking and multiplexed with poll(2), so a slow or silent client holds up nobody. A
 * scrape reads the shared counters with relaxed loads: it costs the workers nothing.
 *
 * Fork safety: the master forks children while this thread runs. A child inherits every lock
 * as it was, so a fork taken while this thread is inside malloc (or localtime, syslog, a
 * sanitizer's allocator) would leave the child deadlocked on its first use. The thread
 * therefore does all its work holding a->work and holds nothing else while it waits in
 * poll(2); a pthread_atfork handler takes a->work around every fork of the process. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "acl.h"
#include "admin.h"
#include "log.h"
#include "status.h"

#define ADMIN_MAX_CLIENTS 32
#define ADMIN_HEAD_MAX 4096
#define ADMIN_TIMEOUT_MS 5000
#define ADMIN_LINGER_MS 1000
#define ADMIN_ACCEPT_PAUSE_MS 100 /* after accept4 failed (EMFILE...): the listener rests */

enum admin_phase { AP_READ, AP_WRITE, AP_LINGER };

struct admin_client {
	int fd;
	enum admin_phase phase;
	uint64_t deadline;
	char in[ADMIN_HEAD_MAX];
	size_t inlen;
	int line_ok; /* the request line ended and admin_line_ok passed it */
	char *out;
	size_t outlen, outpos;
};

struct admin {
	int lfd;
	int wake[2];           /* pipe: the master tells the thread to stop */
	pthread_t thread;
	int started;
	struct stats *stats;
	char where[600];       /* "FILE: line N: [admin] listen = ADDR", for messages */

	pthread_mutex_t work;  /* held by the thread while it works (not in poll); by fork */
	pthread_cond_t up;     /* the thread has started (admin_start waits for it) */
	int running;
	pthread_mutex_t lock;  /* guards allow (swapped on reload) */
	struct cidr_list allow;
	atomic_ullong generation;
	atomic_int draining;
	uint64_t start_mono;   /* ms */
	time_t start_wall;

	struct admin_client *clients[ADMIN_MAX_CLIENTS];
	int nclients;
	/* accept4 failed (EMFILE, ENFILE...): the connection stays queued and the listener
	 * readable, so it is not polled until accept_pause_until; the failure is logged once
	 * until an accept succeeds again */
	uint64_t accept_pause_until;
	int accept_failing;
};

static uint64_t admin_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- a growing string ---- */

struct sb {
	char *p;
	size_t len, cap;
	int oom;
};

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sb *b, const char *fmt, ...)
{
	if (b->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if (b->p && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

static char *sb_done(struct sb *b)
{
	if (b->oom || b->p == NULL) {
		free(b->p);
		return NULL;
	}
	return b->p;
}

/* ---- the pages ---- */

static const char *const class_names[] = { "1xx", "2xx", "3xx", "4xx", "5xx", "none" };
static const char *const error_names[] = {
	"bad_request", "denied", "auth_required", "client_timeout", "client_limit", "upstream",
	"upstream_timeout", "loop", "internal", "client_abort", "aborted",
};
_Static_assert(sizeof(error_names) / sizeof(error_names[0]) == STATS_NCOUNTERS - STATS_ERR_FIRST,
	       "one name per error kind");

static void metric_head(struct sb *b, const char *name, const char *type, const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric_u(struct sb *b, const char *name, const char *type, const char *help, uint64_t v)
{
	metric_head(b, name, type, help);
	sb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

char *admin_metrics_text(const struct stats *s, uint64_t generation, double uptime, int draining)
{
	struct stats_sum t;
	struct sb b = { 0 };
	stats_read(s, &t);

	metric_head(&b, "ferry_uptime_seconds", "gauge", "Seconds since the master started.");
	sb_printf(&b, "ferry_uptime_seconds %.3f\n", uptime);
	metric_u(&b, "ferry_config_generation", "gauge",
		 "Configuration generation: 1 at start, one more per successful reload.", generation);
	metric_u(&b, "ferry_draining", "gauge", "1 while the instance stops gracefully.",
		 (uint64_t)(draining != 0));
	metric_u(&b, "ferry_children", "gauge", "Child processes running.", (uint64_t)t.children);

	metric_head(&b, "ferry_connections_open", "gauge", "Connections open now, by kind.");
	sb_printf(&b, "ferry_connections_open{kind=\"client\"} %lld\n", (long long)t.g[STATS_G_CLIENT]);
	sb_printf(&b, "ferry_connections_open{kind=\"upstream\"} %lld\n", (long long)t.g[STATS_G_UPSTREAM]);
	sb_printf(&b, "ferry_connections_open{kind=\"tunnel\"} %lld\n", (long long)t.g[STATS_G_TUNNELS]);
	sb_printf(&b, "ferry_connections_open{kind=\"upstream_idle\"} %lld\n",
		  (long long)t.g[STATS_G_POOL_IDLE]);
	metric_u(&b, "ferry_connections_accepted_total", "counter",
		 "Client connections taken over by workers.", t.c[STATS_ACCEPTED]);

	metric_head(&b, "ferry_requests_total", "counter",
		    "Requests and tunnels ended, by the class of their status (none: no answer).");
	for (int i = 0; i < 6; i++)
		sb_printf(&b, "ferry_requests_total{class=\"%s\"} %llu\n", class_names[i],
			  (unsigned long long)t.c[STATS_REQ_1XX + i]);
	metric_u(&b, "ferry_tunnels_total", "counter", "CONNECT tunnels and upgrades established.",
		 t.c[STATS_TUNNELS]);
	metric_u(&b, "ferry_received_bytes_total", "counter",
		 "Bytes received from clients (counted when their request ends).", t.c[STATS_BYTES_IN]);
	metric_u(&b, "ferry_sent_bytes_total", "counter",
		 "Bytes sent to clients (counted when their request ends).", t.c[STATS_BYTES_OUT]);
	metric_u(&b, "ferry_upstream_pool_hits_total", "counter",
		 "Requests that reused an idle upstream connection.", t.c[STATS_POOL_HITS]);
	metric_u(&b, "ferry_upstream_pool_misses_total", "counter",
		 "Requests that found no idle upstream connection.", t.c[STATS_POOL_MISSES]);
	metric_u(&b, "ferry_dns_cache_hits_total", "counter", "Names answered from the cache.",
		 t.c[STATS_DNS_HITS]);
	metric_u(&b, "ferry_dns_cache_misses_total", "counter", "Names sent to the resolver.",
		 t.c[STATS_DNS_MISSES]);
	metric_u(&b, "ferry_dns_failures_total", "counter", "Names that could not be resolved.",
		 t.c[STATS_DNS_FAILURES]);
	metric_u(&b, "ferry_accept_wakeups_total", "counter", "Times a listener was reported ready.",
		 t.a[STATS_A_WAKEUPS]);
	metric_u(&b, "ferry_accept_empty_wakeups_total", "counter",
		 "Wake-ups that found no connection to accept (thundering herd).",
		 t.a[STATS_A_EMPTY_WAKEUPS]);
	metric_u(&b, "ferry_accept_denied_total", "counter",
		 "Connections refused by [access] allow/deny.", t.a[STATS_A_DENIED]);
	metric_u(&b, "ferry_accept_errors_total", "counter", "accept4 failures (EMFILE...).",
		 t.a[STATS_A_ERRORS]);

	metric_head(&b, "ferry_errors_total", "counter", "Errors, by kind.");
	for (int i = STATS_ERR_FIRST; i < STATS_NCOUNTERS; i++)
		sb_printf(&b, "ferry_errors_total{kind=\"%s\"} %llu\n", error_names[i - STATS_ERR_FIRST],
			  (unsigned long long)t.c[i]);

	metric_head(&b, "ferry_worker_connections", "gauge",
		    "Client connections open, per worker of each running child.");
	for (int i = 0; s && i < s->nproc; i++) {
		const struct stats_proc *p = &s->p[i];
		if (!atomic_load_explicit(&p->in_use, memory_order_acquire))
			continue;
		int pid = atomic_load_explicit(&p->pid, memory_order_relaxed);
		int n = atomic_load_explicit(&p->nworkers, memory_order_relaxed);
		for (int w = 0; w < n && w < STATS_MAX_WORKERS; w++)
			sb_printf(&b, "ferry_worker_connections{slot=\"%d\",pid=\"%d\",worker=\"%d\"} %lld\n", i,
				  pid, w, (long long)atomic_load_explicit(&p->w[w].g[STATS_G_CLIENT],
									  memory_order_relaxed));
	}
	return sb_done(&b);
}

char *admin_status_text(const struct stats *s, uint64_t generation, double uptime, int draining)
{
	struct stats_sum t;
	struct sb b = { 0 };
	stats_read(s, &t);
	sb_printf(&b, "ferry %s: %s\n", PACKAGE_VERSION, draining ? "draining (graceful stop)" : "accepting");
	sb_printf(&b, "uptime %.0f s, configuration generation %llu, %d children\n", uptime,
		  (unsigned long long)generation, t.children);
	sb_printf(&b, "connections open: client %lld, upstream %lld, tunnels %lld, idle upstream %lld\n",
		  (long long)t.g[STATS_G_CLIENT], (long long)t.g[STATS_G_UPSTREAM],
		  (long long)t.g[STATS_G_TUNNELS], (long long)t.g[STATS_G_POOL_IDLE]);
	sb_printf(&b, "requests:");
	for (int i = 0; i < 6; i++)
		sb_printf(&b, "%s %s %llu", i ? "," : "", class_names[i],
			  (unsigned long long)t.c[STATS_REQ_1XX + i]);
	sb_printf(&b, "; tunnels %llu\n", (unsigned long long)t.c[STATS_TUNNELS]);
	sb_printf(&b, "bytes: from clients %llu, to clients %llu\n", (unsigned long long)t.c[STATS_BYTES_IN],
		  (unsigned long long)t.c[STATS_BYTES_OUT]);
	sb_printf(&b, "upstream pool: hits %llu, misses %llu\n", (unsigned long long)t.c[STATS_POOL_HITS],
		  (unsigned long long)t.c[STATS_POOL_MISSES]);
	sb_printf(&b, "dns cache: hits %llu, misses %llu, failures %llu\n",
		  (unsigned long long)t.c[STATS_DNS_HITS], (unsigned long long)t.c[STATS_DNS_MISSES],
		  (unsigned long long)t.c[STATS_DNS_FAILURES]);
	sb_printf(&b, "accept: wake-ups %llu, found nothing %llu, denied %llu, errors %llu\n",
		  (unsigned long long)t.a[STATS_A_WAKEUPS], (unsigned long long)t.a[STATS_A_EMPTY_WAKEUPS],
		  (unsigned long long)t.a[STATS_A_DENIED], (unsigned long long)t.a[STATS_A_ERRORS]);
	sb_printf(&b, "errors:");
	for (int i = STATS_ERR_FIRST; i < STATS_NCOUNTERS; i++)
		sb_printf(&b, "%s %s %llu", i > STATS_ERR_FIRST ? "," : "", error_names[i - STATS_ERR_FIRST],
			  (unsigned long long)t.c[i]);
	sb_printf(&b, "\n");
	for (int i = 0; s && i < s->nproc; i++) {
		const struct stats_proc *p = &s->p[i];
		if (!atomic_load_explicit(&p->in_use, memory_order_acquire))
			continue;
		int n = atomic_load_explicit(&p->nworkers, memory_order_relaxed);
		sb_printf(&b, "child pid %d (generation %llu): connections per worker",
			  atomic_load_explicit(&p->pid, memory_order_relaxed),
			  (unsigned long long)atomic_load_explicit(&p->generation, memory_order_relaxed));
		for (int w = 0; w < n && w < STATS_MAX_WORKERS; w++)
			sb_printf(&b, " %lld", (long long)atomic_load_explicit(&p->w[w].g[STATS_G_CLIENT],
									       memory_order_relaxed));
		sb_printf(&b, "\n");
	}
	return sb_done(&b);
}

/* ---- the server ---- */

static void admin_answer(struct admin_client *c, int status, const char *reason, const char *type,
			 const char *extra, const char *body, int head_only)
{
	struct sb b = { 0 };
	size_t blen = body ? strlen(body) : 0;
	sb_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		  "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n%s", status, reason, type, blen,
		  extra ? extra : "", head_only || body == NULL ? "" : body);
	free(c->out);
	c->out = sb_done(&b);
	c->outlen = c->out ? strlen(c->out) : 0;
	c->outpos = 0;
	c->phase = AP_WRITE;
}

static void admin_error(struct admin_client *c, int status, const char *reason, const char *msg,
			const char *extra)
{
	char body[300];
	snprintf(body, sizeof(body), "%d %s: %s\n", status, reason, msg);
	admin_answer(c, status, reason, "text/plain; charset=utf-8", extra, body, 0);
}

static int is_tchar(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* The request line (the first ll bytes of c->in, without its line end): METHOD SP TARGET SP
 * HTTP/1.x, nothing else. 1 if so, with the method's and the target's lengths; else 0 with
 * the 400 queued. Checked as soon as the line ends, so a client that sends anything else
 * hears why at once rather than being dropped when the head times out. */
static int admin_line_ok(struct admin_client *c, size_t ll, size_t *mlen_out, size_t *tlen_out)
{
	const char *line = c->in;
	const char *sp1 = memchr(line, ' ', ll);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - line)) : NULL;
	if (sp1 == NULL || sp2 == NULL || sp1 == line || sp2 == sp1 + 1) {
		admin_error(c, 400, "Bad Request", "malformed request line", NULL);
		return 0;
	}
	size_t mlen = (size_t)(sp1 - line), tlen = (size_t)(sp2 - sp1 - 1), vlen = ll - (size_t)(sp2 + 1 - line);
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar(line[i])) {
			admin_error(c, 400, "Bad Request", "malformed method", NULL);
			return 0;
		}
	if (vlen != 8 || (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 && memcmp(sp2 + 1, "HTTP/1.0", 8) != 0)) {
		admin_error(c, 400, "Bad Request", "expected HTTP/1.0 or HTTP/1.1", NULL);
		return 0;
	}
	const char *target = sp1 + 1;
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)target[i] <= 0x20 || (unsigned char)target[i] >= 0x7f) {
			admin_error(c, 400, "Bad Request", "malformed target", NULL);
			return 0;
		}
	*mlen_out = mlen;
	*tlen_out = tlen;
	return 1;
}

/* The length of the request line in c->in without its line end, or -1 while it has not
 * ended. */
static ssize_t admin_line_len(const struct admin_client *c)
{
	const char *eol = memchr(c->in, '\n', c->inlen);
	if (eol == NULL)
		return -1;
	size_t ll = (size_t)(eol - c->in);
	return (ssize_t)(ll > 0 && c->in[ll - 1] == '\r' ? ll - 1 : ll);
}

/* A complete head is in c->in (up to and with the empty line): answer it. */
static void admin_handle(struct admin *a, struct admin_client *c)
{
	const char *line = c->in;
	size_t mlen, tlen;
	if (!admin_line_ok(c, (size_t)admin_line_len(c), &mlen, &tlen))
		return;
	const char *target = line + mlen + 1;
	if (target[0] != '/') {
		admin_error(c, 400, "Bad Request", "the target must be a path (/metrics, /status)", NULL);
		return;
	}
	int head = mlen == 4 && memcmp(line, "HEAD", 4) == 0;
	if (!head && !(mlen == 3 && memcmp(line, "GET", 3) == 0)) {
		admin_error(c, 405, "Method Not Allowed", "only GET and HEAD", "Allow: GET, HEAD\r\n");
		return;
	}
	size_t plen = 0;
	while (plen < tlen && target[plen] != '?')
		plen++;
	double uptime = (double)(admin_now() - a->start_mono) / 1000.0;
	uint64_t gen = atomic_load(&a->generation);
	int draining = atomic_load(&a->draining);
	char *body = NULL;
	if (plen == 8 && memcmp(target, "/metrics", 8) == 0) {
		body = admin_metrics_text(a->stats, gen, uptime, draining);
		if (body) {
			admin_answer(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, body, head);
			free(body);
			return;
		}
	} else if (plen == 7 && memcmp(target, "/status", 7) == 0) {
		body = admin_status_text(a->stats, gen, uptime, draining);
		if (body) {
			if (draining)
				admin_answer(c, 503, "Service Unavailable", "text/plain; charset=utf-8",
					     "Retry-After: 5\r\n", body, head);
			else
				admin_answer(c, 200, "OK", "text/plain; charset=utf-8", NULL, body, head);
			free(body);
			return;
		}
	} else {
		admin_error(c, 404, "Not Found", "the admin endpoint serves /metrics and /status", NULL);
		return;
	}
	admin_error(c, 500, "Internal Server Error", "out of memory", NULL);
}

/* Read what arrived; answer once the head is complete. */
static void admin_read(struct admin *a, struct admin_client *c)
{
	for (;;) {
		if (c->inlen == sizeof(c->in)) {
			admin_error(c, 431, "Request Header Fields Too Large", "the head exceeds 4 KiB", NULL);
			return;
		}
		ssize_t r = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			c->phase = AP_LINGER; /* gone (or reset): nothing to answer */
			c->deadline = 0;
			return;
		}
		size_t from = c->inlen >= 3 ? c->inlen - 3 : 0;
		c->inlen += (size_t)r;
		if (!c->line_ok) {
			ssize_t ll = admin_line_len(c);
			size_t mlen, tlen;
			if (ll >= 0 && !admin_line_ok(c, (size_t)ll, &mlen, &tlen))
				return;
			if (ll >= 0) {
				c->line_ok = 1;
			} else {
				/* a byte no request line holds: no need to wait for the rest */
				for (size_t i = c->inlen - (size_t)r; i < c->inlen; i++) {
					unsigned char ch = (unsigned char)c->in[i];
					if ((ch < 0x20 && ch != '\r') || ch >= 0x7f) {
						admin_error(c, 400, "Bad Request", "malformed request line", NULL);
						return;
					}
				}
			}
		}
		for (size_t i = from; i + 1 < c->inlen; i++) {
			if (c->in[i] == '\n' && (c->in[i + 1] == '\n' ||
			    (c->in[i + 1] == '\r' && i + 2 < c->inlen && c->in[i + 2] == '\n'))) {
				admin_handle(a, c);
				return;
			}
		}
	}
}

static void admin_write(struct admin_client *c)
{
	while (c->out && c->outpos < c->outlen) {
		ssize_t w = write(c->fd, c->out + c->outpos, c->outlen - c->outpos);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (w < 0) {
			c->phase = AP_LINGER;
			c->deadline = 0;
			return;
		}
		c->outpos += (size_t)w;
	}
	/* all out: stop writing, drop what the client still sends until it closes, so closing
	 * does not reset the answer away */
	shutdown(c->fd, SHUT_WR);
	c->phase = AP_LINGER;
	c->deadline = admin_now() + ADMIN_LINGER_MS;
}

static void admin_drop(struct admin *a, int i)
{
	struct admin_client *c = a->clients[i];
	close(c->fd);
	free(c->out);
	free(c);
	a->clients[i] = a->clients[--a->nclients];
}

static void admin_accept(struct admin *a)
{
	while (a->nclients < ADMIN_MAX_CLIENTS) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(a->lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (!a->accept_failing)
				log_warn("admin: accept4: %s (not accepting for %d ms at a time until it "
					 "succeeds again)", strerror(errno), ADMIN_ACCEPT_PAUSE_MS);
			a->accept_failing = 1;
			a->accept_pause_until = admin_now() + ADMIN_ACCEPT_PAUSE_MS;
			return;
		}
		if (a->accept_failing) {
			a->accept_failing = 0;
			log_info("admin: accept4 succeeds again");
		}
		struct admin_client *c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			return;
		}
		c->fd = fd;
		c->phase = AP_READ;
		c->deadline = admin_now() + ADMIN_TIMEOUT_MS;
		a->clients[a->nclients++] = c;
		pthread_mutex_lock(&a->lock);
		int ok = cidr_list_match(&a->allow, (const struct sockaddr *)&peer);
		pthread_mutex_unlock(&a->lock);
		if (!ok)
			admin_error(c, 403, "Forbidden", "client address not in [admin] allow", NULL);
	}
}

static void *admin_main(void *arg)
{
	struct admin *a = arg;
	struct pollfd pfd[2 + ADMIN_MAX_CLIENTS];
	pthread_mutex_lock(&a->work);
	a->running = 1; /* its start-up (which allocates) is over: forks are safe from now on */
	pthread_cond_signal(&a->up);
	for (;;) {
		int n = 0;
		pfd[n].fd = a->wake[0], pfd[n].events = POLLIN, n++;
		uint64_t now = admin_now();
		int timeout = -1;
		int listening = a->nclients < ADMIN_MAX_CLIENTS;
		if (listening && a->accept_pause_until > now) {
			listening = 0;
			timeout = (int)(a->accept_pause_until - now);
		}
		if (listening)
			pfd[n].fd = a->lfd, pfd[n].events = POLLIN, n++;
		int first = n;
		for (int i = 0; i < a->nclients; i++) {
			struct admin_client *c = a->clients[i];
			pfd[n].fd = c->fd;
			pfd[n].events = c->phase == AP_WRITE ? POLLOUT : POLLIN;
			n++;
			int left = c->deadline > now ? (int)(c->deadline - now) : 0;
			if (timeout < 0 || left < timeout)
				timeout = left;
		}
		pthread_mutex_unlock(&a->work);
		int r = poll(pfd, (nfds_t)n, timeout);
		int e = errno;
		pthread_mutex_lock(&a->work);
		if (r < 0 && e != EINTR) {
			log_error("admin: poll: %s", strerror(e));
			break;
		}
		if (r > 0 && (pfd[0].revents & POLLIN))
			break; /* admin_destroy */
		/* clients first (their indexes in pfd are stable until one is dropped) */
		now = admin_now();
		int nc = a->nclients;
		for (int i = nc - 1; i >= 0; i--) {
			struct admin_client *c = a->clients[i];
			short rev = r > 0 ? pfd[first + i].revents : 0;
			if (rev) {
				if (c->phase == AP_READ)
					admin_read(a, c);
				if (c->phase == AP_WRITE)
					admin_write(c);
				else if (c->phase == AP_LINGER && c->deadline != 0) {
					char drop[512];
					ssize_t k;
					while ((k = read(c->fd, drop, sizeof(drop))) > 0)
						;
					if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
						c->deadline = 0;
				}
			}
			if (c->phase == AP_READ && c->inlen > 0 && now >= c->deadline) {
				/* part of a head came, then nothing: say so, as the proxy port does */
				admin_error(c, 408, "Request Timeout", "timed out waiting for the request head", NULL);
				c->deadline = now + ADMIN_TIMEOUT_MS;
			} else if ((c->phase == AP_LINGER && c->deadline == 0) || now >= c->deadline) {
				admin_drop(a, i);
			}
		}
		if (r > 0 && listening && (pfd[1].revents & POLLIN))
			admin_accept(a);
	}
	while (a->nclients > 0)
		admin_drop(a, a->nclients - 1);
	pthread_mutex_unlock(&a->work);
	return NULL;
}

/* pthread_atfork: see the comment at the top. One admin per process, so a static pointer. */
static struct admin *fork_guard;
static int fork_handlers_set;

static void admin_before_fork(void)
{
	if (fork_guard)
		pthread_mutex_lock(&fork_guard->work);
}

static void admin_after_fork(void)
{
	if (fork_guard)
		pthread_mutex_unlock(&fork_guard->work);
}

static int admin_copy_allow(struct cidr_list *dst, const struct cidr_list *src)
{
	memset(dst, 0, sizeof(*dst));
	for (size_t i = 0; i < src->n; i++)
		if (cidr_list_add(dst, &src->v[i]) != FERRY_OK) {
			cidr_list_free(dst);
			return FERRY_ERR;
		}
	return FERRY_OK;
}

struct admin *admin_create(const struct config *cfg, struct stats *stats, char *err, size_t errlen,
			   int *failed)
{
	*failed = 0;
	if (cfg->admin_listen == NULL)
		return NULL;
	*failed = 1;
	const struct config_listen *l = cfg->admin_listen;
	struct admin *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->lfd = a->wake[0] = a->wake[1] = -1;
	a->stats = stats;
	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->work, NULL);
	pthread_cond_init(&a->up, NULL);
	if (!fork_handlers_set && pthread_atfork(admin_before_fork, admin_after_fork, admin_after_fork) == 0)
		fork_handlers_set = 1;
	fork_guard = a;
	atomic_init(&a->generation, 1);
	atomic_init(&a->draining, 0);
	a->start_mono = admin_now();
	a->start_wall = time(NULL);
	if (l->line > 0)
		snprintf(a->where, sizeof(a->where), "%s: line %d: [admin] listen = %s", cfg->path, l->line,
			 l->text);
	else
		snprintf(a->where, sizeof(a->where), "%s: [admin] listen = %s", cfg->path, l->text);
	if (admin_copy_allow(&a->allow, &cfg->admin_allow) != FERRY_OK) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	a->lfd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (a->lfd < 0) {
		snprintf(err, errlen, "%s: socket: %s", a->where, strerror(errno));
		goto fail;
	}
	int one = 1;
	if (setsockopt(a->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		log_warn("%s: SO_REUSEADDR: %s", a->where, strerror(errno));
	if (l->addr.ss_family == AF_INET6 &&
	    setsockopt(a->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		log_warn("%s: IPV6_V6ONLY: %s", a->where, strerror(errno));
	if (bind(a->lfd, (const struct sockaddr *)&l->addr, l->addrlen) < 0) {
		snprintf(err, errlen, "%s: bind: %s%s", a->where, strerror(errno),
			 errno == EADDRINUSE ? " (another process holds this port)"
			 : errno == EACCES ? " (ports below 1024 need root)" : "");
		goto fail;
	}
	if (listen(a->lfd, 64) < 0) {
		snprintf(err, errlen, "%s: listen: %s", a->where, strerror(errno));
		goto fail;
	}
	if (pipe2(a->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "admin: pipe2: %s", strerror(errno));
		goto fail;
	}
	*failed = 0;
	return a;
fail:
	admin_destroy(a);
	return NULL;
}

int admin_start(struct admin *a, char *err, size_t errlen)
{
	if (a == NULL)
		return FERRY_OK;
	int e = pthread_create(&a->thread, NULL, admin_main, a);
	if (e != 0) {
		snprintf(err, errlen, "admin: pthread_create: %s", strerror(e));
		return FERRY_ERR;
	}
	a->started = 1;
	/* the master forks children next: not while the new thread is still starting */
	pthread_mutex_lock(&a->work);
	while (!a->running)
		pthread_cond_wait(&a->up, &a->work);
	pthread_mutex_unlock(&a->work);
	log_info("admin endpoint on %s", strchr(a->where, '=') ? strchr(a->where, '=') + 2 : a->where);
	return FERRY_OK;
}

void admin_set_config(struct admin *a, const struct config *cfg, uint64_t generation)
{
	if (a == NULL)
		return;
	struct cidr_list allow, old;
	if (admin_copy_allow(&allow, &cfg->admin_allow) != FERRY_OK) {
		log_error("reload: [admin] allow: out of memory; keeping the previous list");
	} else {
		pthread_mutex_lock(&a->lock);
		old = a->allow;
		a->allow = allow;
		pthread_mutex_unlock(&a->lock);
		cidr_list_free(&old);
	}
	atomic_store(&a->generation, generation);
	const struct config_listen *l = cfg->admin_listen;
	if (l == NULL || strcmp(l->text, strchr(a->where, '=') ? strchr(a->where, '=') + 2 : "") != 0)
		log_warn("reload: changing [admin] listen needs a restart; still serving on the previous address");
}

void admin_set_draining(struct admin *a)
{
	if (a)
		atomic_store(&a->draining, 1);
}

void admin_close_in_child(struct admin *a)
{
	if (a == NULL)
		return;
	close(a->lfd);
	close(a->wake[0]);
	close(a->wake[1]);
}

void admin_destroy(struct admin *a)
{
	if (a == NULL)
		return;
	if (a->started) {
		char one = 1;
		if (write(a->wake[1], &one, 1) != 1)
			log_error("admin: write to the wake-up pipe: %s", strerror(errno));
		pthread_join(a->thread, NULL);
	}
	if (a->lfd >= 0)
		close(a->lfd);
	if (a->wake[0] >= 0)
		close(a->wake[0]);
	if (a->wake[1] >= 0)
		close(a->wake[1]);
	cidr_list_free(&a->allow);
	if (fork_guard == a)
		fork_guard = NULL;
	pthread_mutex_destroy(&a->lock);
	pthread_mutex_destroy(&a->work);
	pthread_cond_destroy(&a->up);
	free(a);
}
