/* conn.c - the client connection state machine.
 *
 * A connection reads a request head (CS_HEAD), resolves and connects to the origin
 * (CS_RESOLVE, CS_CONNECT), then relays the request body and the response (CS_HTTP) or
 * bytes both ways (CS_TUNNEL, for CONNECT and upgrades). Errors before any response byte
 * reached the client become a short error response followed by a lingering close (CS_CLOSING);
 * errors after that abort the client connection with a reset, so a truncated body is never
 * mistaken for a complete one.
 *
 * I/O is driven by conn_run(), a pump that makes every step it can (read what is readable,
 * write what is pending, parse what arrived) and then registers exactly the events it still
 * needs, so level-triggered backends never spin. Body bytes are never copied: they are
 * written from the buffer they were read into (request: cin -> origin, response:
 * uin -> client), after the rewritten head that waits in uout / cout. Buffers are borrowed
 * from the worker's pool only while bytes are in flight. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "acceptor.h"
#include "accesslog.h"
#include "acl.h"
#include "auth.h"
#include "clients.h"
#include "conn.h"
#include "dns.h"
#include "domains.h"
#include "forward.h"
#include "http_parse.h"
#include "log.h"
#include "proxyproto.h"
#include "route.h"
#include "socks5.h"
#include "stats.h"
#include "status.h"
#include "upstream.h"

/* CS_CLOSING: ferry's last answer (an error, or its own reply) is written, then writing is
 * shut down and what the client still sends is read and dropped until it closes or LINGER_MS
 * pass: closing with unread input would send a reset that can destroy the answer before the
 * client reads it. Every close after a normal HTTP exchange goes through it too. */
enum conn_state { CS_HEAD, CS_AUTH, CS_RESOLVE, CS_CONNECT, CS_HTTP, CS_TUNNEL, CS_CLOSING,
	CS_PROXY /* [server] proxy_protocol: waiting for the PROXY header */,
	CS_PARENT /* the handshake with a parent proxy (CONNECT, SOCKS5) */ };

/* where the response is */
enum resp_state { RS_HEAD, RS_BODY, RS_DONE };

struct conn_connect {
	struct dns_query *query;
	struct dns_result res;
	int next; /* index of the next address to try */
	int last_errno;
	int blocked; /* addresses skipped because block_destinations holds them */
};

/* A destination routed through parent proxies ([upstream], route.c): which parent is being
 * tried, why the ones before failed, and the handshake with it. */
struct conn_parent {
	const struct route_target *target;
	const struct route_parent *p; /* being tried */
	int pos;                      /* its position in target */
	char why[300];                /* the last failure, for the 502 */
	struct forward_abs abs;       /* absolute-form edits in uout (HTTP parents) */
	unsigned applied : 1;
	struct socks5_client socks;
};

struct conn {
	struct worker *w;
	struct conn *prev, *next; /* the worker's list */
	struct timer timer;       /* one deadline at a time; which list depends on the state */
	int fd, ufd;
	uint8_t state;
	uint8_t cev, uev;         /* events registered for fd / ufd */

	/* readiness known from the loop, cleared when a call would block */
	uint8_t crd, cwr, urd, uwr;
	uint8_t c_eof, u_eof;              /* a FIN was read */
	uint8_t c_shut, u_shut;            /* ferry shut down writing toward that side */
	unsigned close_after : 1;          /* close the client once this response is sent */
	unsigned got_bytes : 1;            /* a byte of the current request head arrived */
	unsigned is_connect : 1, is_head : 1, upgrade : 1, idempotent : 1, is_trace : 1;
	unsigned client10 : 1, keepalive10 : 1;
	unsigned reused : 1, retried : 1;
	unsigned req_scanned : 1;          /* every byte of the request body has been seen */
	unsigned resp_started : 1;         /* a byte of the response arrived from the origin */
	unsigned resp_head_sent : 1;       /* the final response head is queued for the client */
	unsigned resp_wrote : 1;           /* a byte of this request's answer reached the client */
	unsigned resp_close : 1;           /* the response body ends at the origin's FIN */
	unsigned resp_dechunk : 1;         /* decode chunked for an HTTP/1.0 client */
	unsigned up_reusable : 1;          /* the origin keeps the connection open */
	unsigned up_wr_failed : 1;
	unsigned counted : 1;              /* in the per-client table (w->clients) */
	unsigned client_close : 1;         /* the client sent Connection: close */
	unsigned expect_continue : 1;      /* the request has Expect: 100-continue */
	unsigned req_body_seen : 1;        /* a byte of the request body arrived */
	unsigned auth_done : 1;            /* this request's credentials were checked: auth_status */
	uint8_t auth_status;               /* enum auth_status, when auth_done */
	struct auth_query *authq;          /* a check running off the loop (CS_AUTH) */
	const char *user;                  /* the authenticated user (owned by the config) */

	struct buf *cin, *cout, *uin, *uout;
	struct pipe_buf *cpipe, *upipe;    /* tunnels: client -> origin, origin -> client */
	size_t scanned, uscanned;          /* head parsing progress in cin / uin */
	uint32_t nreq;
	uint32_t interim_len;              /* bytes of 1xx heads the origin sent for this request */

	/* request body, in cin after the head: req_ready bytes are validated and may be sent */
	uint8_t req_body;
	uint64_t req_left;
	uint32_t req_ready;
	struct http_chunked req_ck;

	/* response body, in uin: resp_ready bytes may be sent; resp_raw bytes have been looked
	 * at (they differ only while dechunking, which compacts data in place) */
	uint8_t resp_state, resp_body;
	uint64_t resp_left;
	uint32_t resp_ready, resp_raw;
	struct http_chunked resp_ck;

	struct conn_connect *cx;
	struct conn_parent *par;           /* through a parent proxy, or NULL (direct) */
	union upstream_addr uaddr;         /* where ufd goes (the pool's key, with host and port) */
	uint16_t port;
	char host[UPSTREAM_HOST_MAX];
	union upstream_addr peer;          /* the client (TCP only: IPv4 or IPv6) */

	/* the request being logged (conn_log_*): its access log line and counters */
	char *lg_req;                      /* "METHOD TARGET" when the access log is on */
	uint64_t lg_start, lg_in, lg_out;  /* loop_now() ms; bytes from / to the client */
	uint16_t lg_status;                /* the final status sent, 0: none yet */
	unsigned lg_active : 1, lg_up : 1, lg_tunnel : 1;
};

#define LINGER_MS 2000

static void conn_run(struct conn *c);
static void conn_on_client(struct loop *loop, int fd, int events, void *arg);
static void conn_on_upstream(struct loop *loop, int fd, int events, void *arg);
static void conn_start_connect(struct conn *c);
static void conn_error(struct conn *c, int status, const char *msg);
static void conn_error_with(struct conn *c, int status, const char *msg, const char *extra);

/* ---- small helpers ---- */

static void conn_set_timer(struct conn *c, struct timer_list *tl)
{
	timer_arm(c->w->loop, &c->timer, tl);
}

static struct buf *conn_buf(struct conn *c, struct buf **b)
{
	if (*b == NULL)
		*b = buf_get(&c->w->bufs);
	return *b;
}

/* Bodies are relayed through BUF_BIG buffers: a 64 KiB object and its head take one read and
 * one writev instead of four of each. Only while bytes are in flight, like every buffer. */
static struct buf *conn_buf_big(struct conn *c, struct buf **b)
{
	if (*b == NULL)
		*b = buf_get_big(&c->w->bufs);
	return *b;
}

/* Return an empty buffer to the pool, so an idle connection holds none. */
static void conn_release_if_empty(struct conn *c, struct buf **b)
{
	if (*b != NULL && buf_len(*b) == 0) {
		buf_put(&c->w->bufs, *b);
		*b = NULL;
	}
}

static void conn_close_upstream(struct conn *c)
{
	if (c->ufd >= 0) {
		loop_del_closing(c->w->loop, c->ufd);
		close(c->ufd);
		c->ufd = -1;
		stats_gauge_add(c->w->st, STATS_G_UPSTREAM, -1);
	}
	c->uev = 0;
	pipe_put(&c->w->pipes, c->cpipe); /* request body bytes for that origin, if any */
	c->cpipe = NULL;
	buf_put(&c->w->bufs, c->uin);
	buf_put(&c->w->bufs, c->uout);
	c->uin = c->uout = NULL;
	c->urd = c->uwr = 0;
	c->u_eof = c->u_shut = 0;
}

/* Every request that is not a tunnel passes through the connect step, pooled or not, and its
 * state holds the resolved addresses (over 1 KiB): a worker keeps a few for the next
 * requests, so a keep-alive request costs no malloc. Bounded like the conn free list. */
#define CONNECT_FREE_MAX 64

static void conn_free_connect(struct conn *c)
{
	struct worker *w = c->w;
	struct conn_connect *cx = c->cx;
	if (cx == NULL)
		return;
	if (cx->query)
		dns_cancel(cx->query);
	c->cx = NULL;
	freelist_put(&w->free_connects, cx, w->stopping ? 0 : CONNECT_FREE_MAX);
}

/* A worker keeps closed connection structs for the next clients, so that connection churn
 * (Connection: close) costs no malloc; bounded, so a burst does not pin memory. */
#define CONN_FREE_MAX 256

static struct conn *conn_alloc(struct worker *w)
{
	return freelist_get(&w->free_conns, sizeof(struct conn));
}

static void conn_free(struct worker *w, struct conn *c)
{
	freelist_put(&w->free_conns, c, w->stopping ? 0 : CONN_FREE_MAX);
}

/* Keep the client's address in 28 bytes rather than a sockaddr_storage's 128: ferry listens
 * on TCP only, and a PROXY header carries IPv4 or IPv6 or nothing (proxyproto.h). */
static void conn_set_peer(struct conn *c, const struct sockaddr_storage *ss)
{
	memset(&c->peer, 0, sizeof(c->peer));
	if (ss->ss_family == AF_INET)
		memcpy(&c->peer.in4, ss, sizeof(c->peer.in4));
	else if (ss->ss_family == AF_INET6)
		memcpy(&c->peer.in6, ss, sizeof(c->peer.in6));
}

/* A system call on one of c's sockets failed: say which side and which call (log_syscall
 * keeps resets and broken pipes at debug). errno is preserved. */
static void conn_syscall_failed(struct conn *c, int fd, const char *call)
{
	int e = errno;
	if (fd == c->fd) {
		char ip[INET6_ADDRSTRLEN] = "?";
		const struct sockaddr *sa = &c->peer.sa;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
		log_syscall(call, e, "client %s", ip);
	} else {
		log_syscall(call, e, "origin %s port %u", c->host[0] ? c->host : "-", (unsigned)c->port);
	}
	errno = e;
}

/* ---- observability: the counters and the access log line of each request ---- */

/* A request begins (its first byte, or an answer ferry gives before one). */
static void conn_log_begin(struct conn *c)
{
	if (c->lg_active)
		return;
	c->lg_active = 1;
	c->lg_start = loop_now(c->w->loop);
	c->lg_status = 0;
	c->lg_up = 0;
}

/* Keep "METHOD TARGET" for the line (only when there is a log to write it to). */
static void conn_log_request(struct conn *c, const struct http_head *h)
{
	conn_log_begin(c);
	if (c->lg_req != NULL || !accesslog_enabled())
		return;
	c->lg_req = malloc(h->method.len + h->target.len + 2);
	if (c->lg_req == NULL)
		return; /* the line says "-" */
	memcpy(c->lg_req, h->method.p, h->method.len);
	c->lg_req[h->method.len] = ' ';
	memcpy(c->lg_req + h->method.len + 1, h->target.p, h->target.len);
	c->lg_req[h->method.len + 1 + h->target.len] = '\0';
}

/* The request or tunnel ended: count it and write its line. */
static void conn_log_end(struct conn *c)
{
	struct worker *w = c->w;
	if (!c->lg_active)
		return;
	stats_inc(w->st, stats_class(c->lg_status));
	stats_add(w->st, STATS_BYTES_IN, c->lg_in);
	stats_add(w->st, STATS_BYTES_OUT, c->lg_out);
	if (accesslog_enabled()) {
		struct accesslog_entry e = {
			.client = &c->peer.sa,
			.user = c->user,
			.request = c->lg_req,
			.status = c->lg_status,
			.bytes_in = c->lg_in,
			.bytes_out = c->lg_out,
			.ms = loop_now(w->loop) - c->lg_start,
			.upstream = c->lg_up ? &c->uaddr.sa : NULL,
			.reused = c->reused,
		};
		accesslog_add(&w->alog, &e);
	}
	free(c->lg_req);
	c->lg_req = NULL;
	c->lg_active = c->lg_up = 0;
	c->lg_in = c->lg_out = 0;
	c->user = NULL; /* the next request authenticates itself */
}

/* The one place a connection ends. reset: abort with RST so the client sees a failure. */
static void conn_close(struct conn *c, int reset)
{
	struct worker *w = c->w;
	if (c->lg_active && !c->lg_tunnel && (c->lg_status == 0 || reset))
		stats_inc(w->st, c->lg_status == 0 ? STATS_ERR_CLIENT_ABORT : STATS_ERR_ABORTED);
	conn_log_end(c);
	if (c->lg_tunnel)
		stats_gauge_add(w->st, STATS_G_TUNNELS, -1);
	stats_gauge_add(w->st, STATS_G_CLIENT, -1);
	if (c->authq) {
		auth_cancel(c->authq);
		c->authq = NULL;
	}
	conn_free_connect(c);
	conn_close_upstream(c);
	free(c->par);
	timer_disarm(&c->timer);
	loop_del_closing(w->loop, c->fd);
	if (reset) {
		struct linger lg = { 1, 0 };
		if (setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
			conn_syscall_failed(c, c->fd, "setsockopt(SO_LINGER)");
	}
	close(c->fd);
	buf_put(&w->bufs, c->cin);
	buf_put(&w->bufs, c->cout);
	pipe_put(&w->pipes, c->cpipe);
	pipe_put(&w->pipes, c->upipe);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->counted)
		clients_release(w->clients, &c->peer.sa);
	conn_free(w, c);
	worker_conn_closed(w);
}

static void conn_set_events(struct conn *c, int ufd_side, int ev)
{
	struct loop *loop = c->w->loop;
	if (ufd_side) {
		if (c->ufd < 0 || c->uev == ev)
			return;
		if (loop_mod(loop, c->ufd, ev) != FERRY_OK)
			conn_syscall_failed(c, c->ufd, "loop_mod");
		c->uev = (uint8_t)ev;
	} else {
		if (c->cev == ev)
			return;
		if (loop_mod(loop, c->fd, ev) != FERRY_OK)
			conn_syscall_failed(c, c->fd, "loop_mod");
		c->cev = (uint8_t)ev;
	}
}

/* Write [a pending bytes][first blen bytes of b] with one writev; returns bytes written,
 * 0 when the socket would block, -1 on error. A short write means the socket buffer is
 * full: *wr is cleared then too, so the loop is asked to say when it drains. */
static ssize_t conn_writev(int fd, struct buf *a, struct buf *b, uint32_t blen, uint8_t *wr)
{
	struct iovec iov[2];
	int n = 0;
	if (a && buf_len(a) > 0) {
		iov[n].iov_base = buf_pos(a);
		iov[n].iov_len = buf_len(a);
		n++;
	}
	if (b && blen > 0) {
		iov[n].iov_base = buf_pos(b);
		iov[n].iov_len = blen;
		n++;
	}
	if (n == 0)
		return 0;
	size_t want = iov[0].iov_len + (n > 1 ? iov[1].iov_len : 0);
	ssize_t r;
	do
		r = writev(fd, iov, n);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			*wr = 0;
			return 0;
		}
		return -1;
	}
	if ((size_t)r < want)
		*wr = 0;
	return r;
}

/* Consume n written bytes: first from a, then from b (whose ready count shrinks). */
static void conn_consume(struct buf *a, struct buf *b, uint32_t *bready, uint32_t *braw, size_t n)
{
	if (a && buf_len(a) > 0) {
		size_t k = n < buf_len(a) ? n : buf_len(a);
		a->start += (uint32_t)k;
		n -= k;
		if (buf_len(a) == 0)
			a->start = a->end = 0;
	}
	if (n > 0) {
		b->start += (uint32_t)n;
		*bready -= (uint32_t)n;
		if (braw)
			*braw -= (uint32_t)n;
		if (buf_len(b) == 0)
			b->start = b->end = 0;
	}
}

/* Read into *b (borrowing one when needed). Returns bytes read, 0 on EOF, FERRY_AGAIN when
 * there is nothing (or no room), FERRY_ERR on error. Clears *ready when drained. */
static ssize_t conn_read(struct conn *c, int fd, struct buf **b, uint8_t *ready_bit, int big)
{
	if ((big ? conn_buf_big(c, b) : conn_buf(c, b)) == NULL) {
		*ready_bit = 0; /* out of memory: wait for a timer rather than spin */
		return FERRY_AGAIN;
	}
	struct buf *bb = *b;
	if (buf_room(bb) == 0) {
		if (bb->start == 0)
			return FERRY_AGAIN;
		buf_compact(bb);
	}
	size_t want = buf_room(bb);
	ssize_t r;
	do
		r = read(fd, bb->data + bb->end, want);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			*ready_bit = 0;
			return FERRY_AGAIN;
		}
		conn_syscall_failed(c, fd, "read");
		return FERRY_ERR;
	}
	if (r == 0)
		return 0;
	bb->end += (uint32_t)r;
	if (fd == c->fd)
		c->lg_in += (uint64_t)r;
	/* a short read drained the socket; the loop will say when more arrives */
	if ((size_t)r < want)
		*ready_bit = 0;
	return r;
}

/* An incomplete head fills *b: make room for more of it, compacting first, then doubling up
 * to one byte past request_header_size (the parser answers the limit itself). FERRY_ERR when
 * it cannot grow further or memory ran out. */
static int conn_head_room(struct conn *c, struct buf **b)
{
	if (buf_room(*b) > 0)
		return FERRY_OK;
	if ((*b)->start > 0) {
		buf_compact(*b);
		return FERRY_OK;
	}
	uint32_t lim = c->w->cfg->request_header_size + 1;
	uint32_t cap = (*b)->cap * 2 > lim ? lim : (*b)->cap * 2;
	if (cap <= (*b)->cap)
		return FERRY_ERR;
	return buf_grow(&c->w->bufs, b, cap);
}

/* ---- request side ---- */

static void conn_reset_request(struct conn *c)
{
	c->scanned = c->uscanned = 0;
	c->got_bytes = 0;
	c->is_connect = c->is_head = c->upgrade = c->idempotent = c->is_trace = 0;
	c->client10 = c->keepalive10 = 0;
	c->reused = c->retried = 0;
	c->auth_done = 0;
	c->client_close = 0;
	c->expect_continue = c->req_body_seen = 0;
	c->req_scanned = 0;
	c->resp_started = c->resp_head_sent = c->resp_close = c->resp_dechunk = 0;
	c->resp_wrote = 0;
	c->up_reusable = c->up_wr_failed = 0;
	c->req_body = HTTP_BODY_NONE;
	c->req_left = 0;
	c->req_ready = 0;
	c->resp_state = RS_HEAD;
	c->resp_body = HTTP_BODY_NONE;
	c->resp_left = 0;
	c->resp_ready = c->resp_raw = 0;
	c->interim_len = 0;
}

static int method_idempotent(struct http_slice m)
{
	static const char *const idem[] = { "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", NULL };
	for (int i = 0; idem[i]; i++)
		if (http_method_is(m, idem[i]))
			return 1;
	return 0;
}

/* Does a Via field already carry this instance's name? Then the request has come around. */
static int conn_via_loop(const struct http_head *h, const char *name)
{
	size_t nl = strlen(name);
	for (unsigned i = 0; i < h->nfields; i++) {
		const struct http_field *f = &h->fields[i];
		if (f->id != HF_VIA)
			continue;
		const char *p = f->value.p, *end = p + f->value.len;
		for (; (size_t)(end - p) >= nl; p++) {
			if (memcmp(p, name, nl) != 0)
				continue;
			/* whole received-by token: preceded by a space, followed by end, SP, ',' */
			int before_ok = p > f->value.p && (p[-1] == ' ' || p[-1] == '\t');
			const char *a = p + nl;
			int after_ok = a == end || *a == ' ' || *a == ',' || *a == '\t';
			if (before_ok && after_ok)
				return 1;
		}
	}
	return 0;
}

/* Scan request body bytes that arrived after the validated prefix. */
static int conn_scan_request_body(struct conn *c)
{
	if (c->req_scanned || c->cin == NULL)
		return FERRY_OK;
	uint32_t avail = buf_len(c->cin) - c->req_ready;
	if (avail == 0)
		return FERRY_OK;
	c->req_body_seen = 1;
	if (c->req_body == HTTP_BODY_LENGTH) {
		uint32_t take = c->req_left < avail ? (uint32_t)c->req_left : avail;
		c->req_ready += take;
		c->req_left -= take;
		if (c->req_left == 0)
			c->req_scanned = 1;
		return FERRY_OK;
	}
	/* chunked: validated and forwarded as it is */
	while (avail > 0 && !c->req_scanned) {
		size_t consumed = 0, doff, dlen;
		int r = http_chunked_parse(&c->req_ck, buf_pos(c->cin) + c->req_ready, avail,
					   &consumed, &doff, &dlen);
		c->req_ready += (uint32_t)consumed;
		avail -= (uint32_t)consumed;
		if (r == FERRY_ERR)
			return FERRY_ERR;
		if (r == FERRY_OK)
			c->req_scanned = 1;
		else if (consumed == 0)
			break;
	}
	return FERRY_OK;
}

/* Answer a request ferry handles itself (no origin). */
static void conn_parse_failed(struct conn *c, const struct http_head *h)
{
	conn_error(c, h->error_status ? h->error_status : 400, h->error ? h->error : "bad request");
}

/* Max-Forwards: 0 on TRACE or OPTIONS: ferry is the final recipient (RFC 9110 section 7.6.2). */
static void conn_answer_max_forwards(struct conn *c, const struct http_head *h)
{
	struct worker *w = c->w;
	int trace = h->method.p[0] == 'T';
	struct buf *body = buf_get(&w->bufs);
	if (body == NULL || buf_grow(&w->bufs, &body, w->cfg->request_header_size + 1024) != FERRY_OK) {
		buf_put(&w->bufs, body);
		conn_error(c, 500, "out of memory");
		return;
	}
	ssize_t blen = trace ? forward_trace_body(h, body->data, body->cap) : 0;
	if (blen < 0 || conn_buf(c, &c->cout) == NULL ||
	    buf_grow(&w->bufs, &c->cout, (uint32_t)blen + 1024) != FERRY_OK) {
		buf_put(&w->bufs, body);
		conn_error(c, 500, "out of memory");
		return;
	}
	c->cout->start = 0;
	c->cout->end = (uint32_t)forward_local_response(200, trace ? "message/http" : "text/plain",
							 trace ? NULL : "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT\r\n",
							 body->data, (size_t)blen, c->cout->data, c->cout->cap);
	buf_put(&w->bufs, body);
	w->stats.status_class[2]++;
	c->lg_status = 200;
	c->resp_head_sent = 1;
	c->close_after = 1;
	c->state = CS_CLOSING; /* answer, then the same lingering close as an error */
	c->cwr = 1;
	if (c->cin)
		c->cin->start = c->cin->end = 0;
	conn_set_timer(c, w->tl_linger);
}

/* The check of a request's credentials finished off the loop: parse the head again (it is
 * still at the start of cin) and go on with the answer remembered. */
static void conn_on_auth(void *arg, const struct auth_result *r)
{
	struct conn *c = arg;
	c->authq = NULL;
	c->auth_done = 1;
	c->auth_status = (uint8_t)r->status;
	c->user = r->user;
	c->state = CS_HEAD;
	c->scanned = 0;
	c->crd = 1;
	conn_run(c);
}

/* [auth] htpasswd: every request and CONNECT needs good Basic credentials. FERRY_OK to go on;
 * otherwise the request was answered (407, 503) or waits in CS_AUTH. */
static int conn_authorize(struct conn *c, const struct http_head *h)
{
	struct worker *w = c->w;
	if (!c->auth_done) {
		const char *value = NULL;
		size_t len = 0;
		int n = 0;
		for (unsigned i = 0; i < h->nfields; i++) {
			if (h->fields[i].id == HF_PROXY_AUTHORIZATION) {
				value = h->fields[i].value.p;
				len = h->fields[i].value.len;
				n++;
			}
		}
		struct auth_result now;
		memset(&now, 0, sizeof(now));
		if (n > 1) {
			now.status = AUTH_MALFORMED;
		} else {
			int rc = auth_check(w->auth, w->cfg->auth, value, len, conn_on_auth, c, &c->authq, &now);
			if (rc == FERRY_AGAIN) {
				/* a slow hash runs on the verifier's thread; the head stays in cin */
				c->state = CS_AUTH;
				return FERRY_AGAIN;
			}
		}
		c->auth_done = 1;
		c->auth_status = (uint8_t)now.status;
		c->user = now.user;
	}
	if (c->auth_status == AUTH_OK)
		return FERRY_OK;
	if (c->auth_status == AUTH_BUSY) {
		conn_error(c, 503, "too many credential checks waiting; try again");
		return FERRY_ERR;
	}
	char extra[300];
	snprintf(extra, sizeof(extra), "Proxy-Authenticate: Basic realm=\"%s\"\r\n", w->cfg->realm);
	conn_error_with(c, 407, "proxy authentication required", extra);
	return FERRY_ERR;
}

/* A complete request head sits at the start of cin: decide what to do with it. */
static void conn_start_request(struct conn *c, struct http_head *h)
{
	struct worker *w = c->w;
	const struct config *cfg = w->cfg;
	struct http_target t;

	conn_log_request(c, h);
	if (w->auth && conn_authorize(c, h) != FERRY_OK)
		return; /* answered, or waiting for the check (CS_AUTH) */
	c->nreq++;
	w->stats.requests++;
	/* methods are case-sensitive (RFC 9110 section 9.1) */
	c->is_connect = http_method_is(h->method, "CONNECT");
	c->is_head = http_method_is(h->method, "HEAD");
	c->is_trace = http_method_is(h->method, "TRACE");
	c->idempotent = method_idempotent(h->method);
	c->client10 = h->version == 10;
	if (c->client10)
		c->keepalive10 = (h->flags & HTTP_F_CONN_KEEPALIVE) && !(h->flags & HTTP_F_CONN_CLOSE);
	if ((h->flags & HTTP_F_CONN_CLOSE) || (c->client10 && !c->keepalive10) || w->stopping)
		c->close_after = 1;
	c->client_close = (h->flags & HTTP_F_CONN_CLOSE) || (c->client10 && !c->keepalive10);

	if (http_parse_target(h->target.p, h->target.len, c->is_connect, &t) != FERRY_OK) {
		conn_error(c, t.error_status ? t.error_status : 400, t.error ? t.error : "bad request target");
		return;
	}
	if (t.host.len >= sizeof(c->host)) {
		conn_error(c, 400, "host name too long");
		return;
	}
	if (conn_via_loop(h, cfg->via_name)) {
		conn_error(c, 508, "request loop detected (Via names this proxy)");
		return;
	}
	memcpy(c->host, t.host.p, t.host.len);
	c->host[t.host.len] = '\0';
	c->port = t.port;
	if (domains_active(&cfg->domains)) {
		int allowed = 1;
		const struct domain_rule *rule = domains_check(&cfg->domains, c->host, t.host.len, &allowed);
		if (!allowed) {
			char why[300], msg[700];
			if (rule != NULL) {
				domains_describe(rule, why, sizeof(why));
				snprintf(msg, sizeof(msg), "destination %s is refused by the rule %s", c->host, why);
			} else {
				snprintf(msg, sizeof(msg), "destination %s is not in allow_domains", c->host);
			}
			conn_error(c, 403, msg);
			return;
		}
	}

	if (c->is_connect) {
		if (!port_list_match(&cfg->connect_ports, t.port)) {
			conn_error(c, 403, "CONNECT to this port is not allowed");
			return;
		}
		if (h->body != HTTP_BODY_NONE) {
			conn_error(c, 400, "CONNECT with a body");
			return;
		}
		c->close_after = 1;
		c->cin->start += (uint32_t)h->head_len;
		w->stats.tunnels++;
		conn_start_connect(c);
		return;
	}

	/* Upgrade only when the client asked for it hop-by-hop; h2c is ours to drop. An HTTP/1.0
	 * request's Upgrade is ignored (RFC 9110 section 7.8), and no 1xx, 101 included, may go
	 * to an HTTP/1.0 client (section 15.2): it is dropped like any hop-by-hop field. */
	if (h->version == 11 && (h->flags & HTTP_F_CONN_UPGRADE) && (h->flags & HTTP_F_HAS_UPGRADE)) {
		int h2c = 0;
		for (unsigned i = 0; i < h->nfields; i++)
			if (h->fields[i].id == HF_UPGRADE && http_list_has(h->fields[i].value, "h2c"))
				h2c = 1;
		c->upgrade = !h2c;
	}

	long long mf = forward_max_forwards(h);
	if (mf == -2) {
		conn_error(c, 400, "malformed Max-Forwards");
		return;
	}
	if (mf == 0) {
		conn_answer_max_forwards(c, h);
		return;
	}
	if (mf > 0)
		mf--;
	if (conn_buf(c, &c->uout) == NULL) {
		conn_error(c, 500, "out of memory");
		return;
	}
	ssize_t n = forward_request_head(h, &t, cfg->via_name, c->upgrade, mf, c->uout->data, c->uout->cap);
	if (n < 0) {
		if (buf_grow(&w->bufs, &c->uout, cfg->request_header_size + 4096) != FERRY_OK) {
			conn_error(c, 500, "out of memory");
			return;
		}
		n = forward_request_head(h, &t, cfg->via_name, c->upgrade, mf, c->uout->data, c->uout->cap);
		if (n < 0) {
			conn_error(c, 431, "request head too large");
			return;
		}
	}
	c->uout->start = 0;
	c->uout->end = (uint32_t)n;

	c->req_body = (uint8_t)h->body;
	c->expect_continue = (h->flags & HTTP_F_EXPECT_CONTINUE) != 0;
	c->req_left = h->content_length;
	c->req_scanned = h->body == HTTP_BODY_NONE;
	if (h->body == HTTP_BODY_CHUNKED)
		http_chunked_init(&c->req_ck);
	c->cin->start += (uint32_t)h->head_len;
	if (conn_scan_request_body(c) != FERRY_OK) {
		conn_error(c, 400, c->req_ck.error ? c->req_ck.error : "malformed chunked body");
		return;
	}

	conn_start_connect(c);
}

static int conn_step_head(struct conn *c)
{
	struct worker *w = c->w;
	int progress = 0;

	for (;;) {
		/* RFC 9112 section 2.2: ignore empty lines before a request line (some clients
		 * send a CRLF after a body) */
		while (c->scanned == 0 && c->cin && buf_len(c->cin) >= 2 && buf_pos(c->cin)[0] == '\r' &&
		       buf_pos(c->cin)[1] == '\n')
			c->cin->start += 2;
		if (c->cin && buf_len(c->cin) == 1 && buf_pos(c->cin)[0] == '\r' && c->crd == 0)
			return progress; /* wait for the LF */
		if (c->cin && buf_len(c->cin) > 0) {
			struct http_head h;
			memset(&h, 0, sizeof(h));
			h.fields = w->fields;
			if (!c->got_bytes) {
				c->got_bytes = 1;
				conn_set_timer(c, w->tl_request_header);
			}
			conn_log_begin(c);
			int r = http_parse_request(buf_pos(c->cin), buf_len(c->cin), &c->scanned, &w->limits, &h);
			if (r == FERRY_OK) {
				conn_start_request(c, &h);
				return 1;
			}
			if (r == FERRY_ERR) {
				conn_parse_failed(c, &h);
				return 1;
			}
			/* incomplete: make room for more of the head (up to the limit, which the
			 * parser enforces) */
			if (conn_head_room(c, &c->cin) != FERRY_OK) {
				conn_error(c, 431, "request head too large");
				return 1;
			}
		}
		if (!c->crd)
			return progress;
		ssize_t r = conn_read(c, c->fd, &c->cin, &c->crd, 0);
		if (r == FERRY_AGAIN) {
			conn_release_if_empty(c, &c->cin);
			return progress;
		}
		if (r == 0 || r == FERRY_ERR) {
			/* the client went away between or during heads: nobody to answer */
			conn_close(c, 0);
			return -1;
		}
		progress = 1;
	}
}

/* ---- PROXY protocol ---- */

/* CS_PROXY: the connection came from a trusted balancer (the acceptor checked
 * proxy_protocol_from); read its PROXY header, take the client address from it, then run the
 * client check the acceptor skipped (ACL, per_client) with that address. A bad or truncated
 * header closes the connection: there is nobody to answer in HTTP. */
static int conn_step_proxy(struct conn *c)
{
	struct worker *w = c->w;
	for (;;) {
		if (c->cin && buf_len(c->cin) > 0) {
			struct proxyproto_result pr;
			int r = proxyproto_parse(buf_pos(c->cin), buf_len(c->cin), &pr);
			if (r == FERRY_ERR) {
				log_debug("closing a connection from the balancer: %s", pr.error);
				conn_close(c, 0);
				return -1;
			}
			if (r > 0) {
				c->cin->start += (uint32_t)r;
				if (!pr.local)
					conn_set_peer(c, &pr.src);
				int counted = 0;
				int deny = acceptor_client_check(w->cfg, w->clients, &c->peer.sa,
								 &counted);
				c->counted = counted != 0;
				c->state = CS_HEAD;
				c->got_bytes = 0;
				conn_set_timer(c, w->tl_request_header);
				if (deny == 403)
					stats_accept_inc(STATS_A_DENIED);
				if (deny)
					conn_error(c, deny, deny == 429 ? "too many connections from this address"
									: "client address not allowed");
				return 1;
			}
		}
		if (!c->crd)
			return 0;
		ssize_t n = conn_read(c, c->fd, &c->cin, &c->crd, 0);
		if (n == FERRY_AGAIN)
			return 0;
		if (n == 0 || n == FERRY_ERR) {
			conn_close(c, 0);
			return -1;
		}
	}
}

/* ---- DNS and connect ---- */

static void conn_connect_next(struct conn *c);
static void conn_use_addresses(struct conn *c);
static void conn_upstream_ready(struct conn *c);
static const char *conn_pool_key(const struct conn *c, uint16_t *port);
static int conn_parent_apply(struct conn *c);
static void conn_parent_failed(struct conn *c, const char *why);
static void conn_parent_resolve(struct conn *c);
static int conn_route(struct conn *c);
static int conn_parent_begin(struct conn *c);
static size_t conn_parent_pending(const struct conn *c);
static int conn_step_parent(struct conn *c);
static void conn_parent_broken(struct conn *c, const char *why);
static int conn_parent_refuses(struct conn *c);

/* The name is resolved (answers are cached per worker, so this is usually immediate): reuse
 * a warm connection to one of its addresses, or connect. A retry always connects afresh, and
 * CONNECT tunnels never take pooled connections. */
static void conn_use_addresses(struct conn *c)
{
	struct worker *w = c->w;
	uint16_t kport;
	const char *key = conn_pool_key(c, &kport);
	if (!c->is_connect && !c->retried && key != NULL) {
		int fd = upstream_pool_get(&w->pool, key, strlen(key), kport, c->cx->res.addrs,
					   c->cx->res.naddrs, &c->uaddr);
		if (fd >= 0 && c->par != NULL && c->par->p != NULL && conn_parent_refuses(c)) {
			upstream_pool_put(&w->pool, fd, key, strlen(key), kport, &c->uaddr);
			return;
		}
		if (fd >= 0 && c->par != NULL && conn_parent_apply(c) != FERRY_OK) {
			upstream_pool_put(&w->pool, fd, key, strlen(key), kport, &c->uaddr);
			conn_error(c, 500, "out of memory");
			return;
		}
		if (fd >= 0) {
			/* still registered for LOOP_READ: only its handler changes (no system call),
			 * and the request is written at once rather than after a writability event */
			conn_free_connect(c);
			c->ufd = fd;
			c->reused = 1;
			c->lg_up = 1;
			stats_gauge_add(w->st, STATS_G_UPSTREAM, 1);
			loop_set_handler(w->loop, fd, conn_on_upstream, c);
			c->uev = (uint8_t)loop_events(w->loop, fd);
			c->uwr = 1;
			c->urd = 0;
			c->state = CS_HTTP;
			conn_set_timer(c, w->tl_upstream_idle);
			return;
		}
	}
	conn_connect_next(c);
}

static void conn_on_resolved(void *arg, int status, const struct dns_result *res)
{
	struct conn *c = arg;
	c->cx->query = NULL;
	if (status != FERRY_OK && c->par != NULL) {
		char why[200];
		snprintf(why, sizeof(why), "cannot resolve it: %s", res->error ? res->error : "error");
		conn_parent_failed(c, why);
		conn_parent_resolve(c);
		conn_run(c);
		return;
	}
	if (status != FERRY_OK) {
		char msg[320];
		snprintf(msg, sizeof(msg), "%s %s", res->error ? res->error : "cannot resolve", c->host);
		/* a resolver that did not answer in time is a timeout, like a connect that did not */
		conn_error(c, res->error && strstr(res->error, "timeout") ? 504 : 502, msg);
		conn_run(c);
		return;
	}
	c->cx->res = *res;
	c->cx->next = 0;
	conn_use_addresses(c);
	conn_run(c);
}

static void conn_start_connect(struct conn *c)
{
	struct worker *w = c->w;
	conn_release_if_empty(c, &c->cin); /* thousands of CONNECTs may wait here */
	c->cx = freelist_get(&w->free_connects, sizeof(struct conn_connect));
	if (c->cx == NULL) {
		conn_error(c, 500, "out of memory");
		return;
	}
	c->state = CS_RESOLVE;
	conn_set_timer(c, w->tl_connect);
	if (conn_route(c))
		return; /* through a parent: resolving the parent instead, or answered */
	int r = dns_resolve(w->dns, c->host, c->port, conn_on_resolved, c, &c->cx->res, &c->cx->query);
	if (r == FERRY_AGAIN)
		return;
	if (r == FERRY_ERR) {
		char msg[320];
		snprintf(msg, sizeof(msg), "%s %s", c->cx->res.error ? c->cx->res.error : "cannot resolve", c->host);
		conn_error(c, 502, msg);
		return;
	}
	c->cx->next = 0;
	conn_use_addresses(c);
}

/* Try the next resolved address; on running out, answer with what went wrong. */
static void conn_connect_next(struct conn *c)
{
	struct worker *w = c->w;
	struct conn_connect *cx = c->cx;
	if (c->ufd >= 0) {
		loop_del(w->loop, c->ufd);
		close(c->ufd);
		c->ufd = -1;
		stats_gauge_add(w->st, STATS_G_UPSTREAM, -1);
	}
	while (cx->next < cx->res.naddrs) {
		int i = cx->next++;
		const struct sockaddr *sa = &cx->res.addrs[i].sa;
		/* a parent's addresses are the operator's choice, not a destination */
		if (c->par == NULL && cidr_list_match(&w->cfg->block_destinations, sa)) {
			cx->blocked++;
			continue;
		}
		int fd = upstream_connect(sa, cx->res.addrlens[i]);
		if (fd < 0) {
			cx->last_errno = errno;
			conn_syscall_failed(c, -1, "connect");
			continue;
		}
		if (loop_add(w->loop, fd, LOOP_WRITE, conn_on_upstream, c) != FERRY_OK) {
			cx->last_errno = errno;
			conn_syscall_failed(c, -1, "loop_add");
			close(fd);
			continue;
		}
		c->ufd = fd;
		c->uev = LOOP_WRITE;
		memcpy(&c->uaddr, sa, cx->res.addrlens[i] < sizeof(c->uaddr) ? cx->res.addrlens[i] : sizeof(c->uaddr));
		c->lg_up = 1;
		stats_gauge_add(w->st, STATS_G_UPSTREAM, 1);
		c->state = CS_CONNECT;
		conn_set_timer(c, w->tl_connect);
		return;
	}
	if (c->par != NULL) {
		conn_parent_failed(c, strerror(cx->last_errno ? cx->last_errno : ECONNREFUSED));
		conn_parent_resolve(c);
		return;
	}
	char msg[400];
	int status = 502;
	if (cx->blocked == cx->res.naddrs) {
		status = 403;
		snprintf(msg, sizeof(msg), "destination %s is blocked by block_destinations", c->host);
	} else if (cx->last_errno == ETIMEDOUT) {
		status = 504;
		snprintf(msg, sizeof(msg), "connection to %s timed out", c->host);
	} else {
		snprintf(msg, sizeof(msg), "cannot connect to %s port %u: %s", c->host, (unsigned)c->port,
			 strerror(cx->last_errno ? cx->last_errno : ECONNREFUSED));
	}
	conn_error(c, status, msg);
}

/* The non-blocking connect finished (or failed). */
static void conn_connected(struct conn *c)
{
	int r = upstream_connect_result(c->ufd);
	if (r == FERRY_AGAIN)
		return; /* a stale event for an earlier fd with this number */
	if (r != FERRY_OK) {
		c->cx->last_errno = errno;
		conn_syscall_failed(c, c->ufd, "connect");
		conn_connect_next(c);
		return;
	}
	conn_free_connect(c);
	if (c->par != NULL && conn_parent_begin(c))
		return; /* a handshake first (CS_PARENT) */
	conn_upstream_ready(c);
}

/* Connected to the origin (or through a parent): relay. */
static void conn_upstream_ready(struct conn *c)
{
	struct worker *w = c->w;
	c->uwr = 1;
	if (c->is_connect) {
		static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
		if (conn_buf(c, &c->cout) == NULL) {
			conn_error(c, 500, "out of memory");
			return;
		}
		memcpy(c->cout->data + c->cout->end, ok, sizeof(ok) - 1);
		c->cout->end += sizeof(ok) - 1;
		c->resp_head_sent = 1;
		c->lg_status = 200;
		c->lg_tunnel = 1;
		stats_inc(w->st, STATS_TUNNELS);
		stats_gauge_add(w->st, STATS_G_TUNNELS, 1);
		c->state = CS_TUNNEL;
		conn_set_events(c, 1, LOOP_READ);
		c->urd = 0;
		conn_set_timer(c, w->tl_tunnel_idle);
		return;
	}
	c->state = CS_HTTP;
	conn_set_timer(c, w->tl_upstream_idle);
}

/* ---- parent proxies ([upstream], doc/chaining.md) ---- */

/* The upstream pool's key for this connection: the destination when direct, the parent for
 * an HTTP parent (whose connections carry requests for any destination), NULL when it must not
 * be pooled (a SOCKS5 tunnel is bound to one destination). */
static const char *conn_pool_key(const struct conn *c, uint16_t *port)
{
	if (c->par == NULL) {
		*port = c->port;
		return c->host;
	}
	if (c->par->p == NULL || c->par->p->kind != ROUTE_HTTP)
		return NULL;
	*port = c->par->p->port;
	return c->par->p->label;
}

/* Take the absolute-form edits out of uout again (another parent, a retry). */
static void conn_parent_unapply(struct conn *c)
{
	if (c->par != NULL && c->par->applied && c->uout != NULL) {
		size_t len = c->uout->end;
		forward_head_from_absolute(c->uout->data, &len, &c->par->abs);
		c->uout->end = (uint32_t)len;
	}
	if (c->par != NULL)
		c->par->applied = 0;
}

/* A request (not CONNECT) through an HTTP parent goes in absolute-form, with the parent's
 * credentials (the client's Proxy-Authorization was never forwarded: hop-by-hop). */
static int conn_parent_apply(struct conn *c)
{
	struct conn_parent *cp = c->par;
	conn_parent_unapply(c);
	if (c->is_connect || cp->p->kind != ROUTE_HTTP || c->uout == NULL)
		return FERRY_OK;
	size_t len = buf_len(c->uout); /* the head starts at 0: nothing was sent yet */
	size_t need = len + forward_absolute_growth(c->uout->data, len, cp->p->auth_header);
	if (need > c->uout->cap && buf_grow(&c->w->bufs, &c->uout, (uint32_t)need) != FERRY_OK)
		return FERRY_ERR;
	if (forward_head_to_absolute(c->uout->data, &len, c->uout->cap, cp->p->auth_header, &cp->abs) !=
	    FERRY_OK)
		return FERRY_ERR;
	c->uout->end = (uint32_t)len;
	cp->applied = 1;
	return FERRY_OK;
}

/* The parent being tried failed (resolving, connecting, or in the handshake): remember why
 * for the 502, and have this worker skip it for ROUTE_SKIP_MS. */
static void conn_parent_failed(struct conn *c, const char *why)
{
	struct worker *w = c->w;
	struct conn_parent *cp = c->par;
	snprintf(cp->why, sizeof(cp->why), "parent %s: %s", cp->p->label, why);
	route_parent_failed(&w->cfg->routes, cp->p, w->id, loop_now(w->loop));
	log_warn("%s (skipped for %d s)", cp->why, ROUTE_SKIP_MS / 1000);
}

/* Resolve the next parent to try (the parent's name, never the destination's), or answer
 * 502 when none is left. */
static void conn_parent_resolve(struct conn *c)
{
	struct worker *w = c->w;
	struct conn_parent *cp = c->par;
	for (;;) {
		const struct route_parent *p = route_next(&w->cfg->routes, cp->target, w->id, loop_now(w->loop),
							  &cp->pos);
		if (p == NULL) {
			char msg[400];
			if (cp->target->n > 1)
				snprintf(msg, sizeof(msg), "no parent proxy could be reached (last: %s)", cp->why);
			else
				snprintf(msg, sizeof(msg), "%s", cp->why);
			conn_error(c, 502, msg);
			return;
		}
		cp->p = p;
		if (c->cx == NULL)
			c->cx = freelist_get(&w->free_connects, sizeof(struct conn_connect));
		if (c->cx == NULL) {
			conn_error(c, 500, "out of memory");
			return;
		}
		if (c->cx->query)
			dns_cancel(c->cx->query);
		memset(c->cx, 0, sizeof(*c->cx));
		c->state = CS_RESOLVE;
		conn_set_timer(c, w->tl_connect);
		int r = dns_resolve(w->dns, p->host, p->port, conn_on_resolved, c, &c->cx->res, &c->cx->query);
		if (r == FERRY_AGAIN)
			return;
		if (r == FERRY_ERR) {
			char why[200];
			snprintf(why, sizeof(why), "cannot resolve it: %s", c->cx->res.error ? c->cx->res.error : "error");
			conn_parent_failed(c, why);
			continue;
		}
		c->cx->next = 0;
		conn_use_addresses(c);
		return;
	}
}

/* Before resolving: does a route send this destination through parents? Returns 0 for
 * direct (the caller resolves the destination), 1 when a parent is being resolved or the
 * request was answered. */
static int conn_route(struct conn *c)
{
	struct worker *w = c->w;
	const struct route_table *t = &w->cfg->routes;
	/* left by the previous request, or this one's before a retry: start over (a retry's head
	 * goes back to origin-form first; a new request's head never had the edits). Its memory
	 * serves the next parent request of this connection. */
	struct conn_parent *old = c->par;
	if (old != NULL && c->retried)
		conn_parent_unapply(c);
	c->par = NULL;
	const struct route_target *tg =
		t->nrules == 0 && !route_table_active(t) ? NULL : route_match(t, c->host);
	if (tg == NULL || tg->direct) {
		free(old);
		return 0;
	}
	/* ferry does not resolve the destination when a parent does: block_destinations can only
	 * judge a destination written as an address (doc/chaining.md) */
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if ((inet_pton(AF_INET, c->host, &in4->sin_addr) == 1 && (in4->sin_family = AF_INET)) ||
	    (inet_pton(AF_INET6, c->host, &in6->sin6_addr) == 1 && (in6->sin6_family = AF_INET6))) {
		if (cidr_list_match(&w->cfg->block_destinations, (const struct sockaddr *)&ss)) {
			char msg[400];
			snprintf(msg, sizeof(msg), "destination %s is blocked by block_destinations", c->host);
			free(old);
			conn_error(c, 403, msg);
			return 1;
		}
	}
	c->par = old ? memset(old, 0, sizeof(*old)) : calloc(1, sizeof(*c->par));
	if (c->par == NULL) {
		conn_error(c, 500, "out of memory");
		return 1;
	}
	c->par->target = tg;
	c->par->pos = -1;
	conn_parent_resolve(c);
	return 1;
}

/* A request that must not go to the chosen parent, answered here (1), whether the connection
 * to the parent is new or pooled. */
static int conn_parent_refuses(struct conn *c)
{
	const struct conn_parent *cp = c->par;
	if (cp->p->kind == ROUTE_HTTP && !c->is_connect && c->is_trace && cp->p->auth_header != NULL) {
		/* the final recipient of a TRACE echoes the request, and this one would carry ferry's
		 * credentials for the parent */
		conn_error(c, 403, "TRACE is not forwarded through a parent ferry logs in to (its answer "
				   "would echo ferry's credentials)");
		return 1;
	}
	return 0;
}

/* Connected to a parent. Returns 0 when the request can go at once (an HTTP parent takes it
 * in absolute-form), 1 when a handshake comes first (CS_PARENT) or the request was answered. */
static int conn_parent_begin(struct conn *c)
{
	struct worker *w = c->w;
	struct conn_parent *cp = c->par;
	if (conn_parent_refuses(c))
		return 1;
	if (cp->p->kind == ROUTE_HTTP && !c->is_connect) {
		route_parent_ok(&w->cfg->routes, cp->p, w->id);
		if (conn_parent_apply(c) != FERRY_OK) {
			conn_error(c, 500, "out of memory");
			return 1;
		}
		return 0;
	}
	if (cp->p->kind == ROUTE_HTTP) {
		if (conn_buf(c, &c->uout) == NULL) {
			conn_error(c, 500, "out of memory");
			return 1;
		}
		ssize_t n = forward_connect_head(c->host, strchr(c->host, ':') != NULL, c->port,
						 cp->p->auth_header, w->cfg->via_name, c->uout->data, c->uout->cap);
		if (n < 0) {
			conn_error(c, 500, "CONNECT request for the parent too large");
			return 1;
		}
		c->uout->start = 0;
		c->uout->end = (uint32_t)n;
	} else if (socks5_start(&cp->socks, cp->p->user, cp->p->pass, c->host, c->port) != FERRY_OK) {
		char msg[400];
		snprintf(msg, sizeof(msg), "parent %s: %s", cp->p->label, cp->socks.error);
		conn_error(c, 502, msg);
		return 1;
	}
	c->uscanned = 0;
	c->state = CS_PARENT;
	c->uwr = 1;
	c->urd = 0;
	conn_set_timer(c, w->tl_connect);
	return 1;
}

static size_t conn_parent_pending(const struct conn *c)
{
	if (c->par->p->kind == ROUTE_SOCKS5)
		return socks5_pending(&c->par->socks);
	return c->uout ? buf_len(c->uout) : 0;
}

/* The parent went away or stalled in the handshake: try the next one. The request head
 * (plain HTTP over SOCKS5) is kept for it. */
static void conn_parent_broken(struct conn *c, const char *why)
{
	conn_parent_failed(c, why);
	struct buf *keep = NULL;
	if (!c->is_connect) {
		keep = c->uout;
		c->uout = NULL;
	}
	conn_close_upstream(c);
	c->uout = keep;
	c->uscanned = 0;
	conn_parent_resolve(c);
}

/* The parent answered, but not with a tunnel: that is its answer about this destination (no
 * other parent is tried), as a 502 naming it. */
static int conn_parent_refused(struct conn *c, const char *what)
{
	char msg[700];
	snprintf(msg, sizeof(msg), "parent %s %s", c->par->p->label, what);
	conn_error(c, 502, msg);
	return 1;
}

/* CS_PARENT: send the handshake (CONNECT to an HTTP parent, or SOCKS5), read the answer. */
static int conn_step_parent(struct conn *c)
{
	struct worker *w = c->w;
	struct conn_parent *cp = c->par;
	int socks = cp->p->kind == ROUTE_SOCKS5;
	int progress = 0;

	size_t n = conn_parent_pending(c);
	if (c->uwr && n > 0) {
		const void *p = socks ? (const void *)cp->socks.out : (const void *)buf_pos(c->uout);
		ssize_t k = send(c->ufd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			conn_parent_broken(c, strerror(errno));
			return 1;
		}
		if (k < 0 || (size_t)k < n)
			c->uwr = 0;
		if (k > 0) {
			if (socks)
				socks5_sent(&cp->socks, (size_t)k);
			else
				c->uout->start += (uint32_t)k;
			progress = 1;
		}
	}
	if (c->urd) {
		ssize_t r = conn_read(c, c->ufd, &c->uin, &c->urd, 0);
		if (r == 0 || r == FERRY_ERR) {
			conn_parent_broken(c, r == 0 ? "closed the connection in the handshake"
						     : "reset the connection in the handshake");
			return 1;
		}
		if (r > 0)
			progress = 1;
	}
	if (c->uin == NULL || buf_len(c->uin) == 0)
		return progress;
	if (socks) {
		if (socks5_pending(&cp->socks) > 0)
			return progress;
		size_t used = 0;
		int r = socks5_input(&cp->socks, (const uint8_t *)buf_pos(c->uin), buf_len(c->uin), &used);
		c->uin->start += (uint32_t)used;
		if (r == FERRY_ERR) {
			char what[400];
			snprintf(what, sizeof(what), "refused the connection to %s port %u: %s", c->host,
				 (unsigned)c->port, cp->socks.error);
			return conn_parent_refused(c, what);
		}
		if (r == FERRY_AGAIN)
			return progress || used > 0;
	} else {
		struct http_head h;
		memset(&h, 0, sizeof(h));
		h.fields = w->fields;
		int r = http_parse_response(buf_pos(c->uin), buf_len(c->uin), &c->uscanned, &w->limits, 0, 1, &h);
		if (r == FERRY_AGAIN) {
			if (conn_head_room(c, &c->uin) != FERRY_OK)
				return conn_parent_refused(c, "sent a CONNECT reply too large");
			return progress;
		}
		if (r == FERRY_ERR)
			return conn_parent_refused(c, "sent an invalid reply to CONNECT");
		c->uscanned = 0;
		if (h.status == 407)
			return conn_parent_refused(c, "requires proxy authentication (407): check the "
						      "credentials in its URL");
		if (h.status / 100 != 2) {
			char what[400];
			snprintf(what, sizeof(what), "refused CONNECT to %s port %u: %d %s", c->host,
				 (unsigned)c->port, h.status, forward_reason(h.status));
			return conn_parent_refused(c, what);
		}
		c->uin->start += (uint32_t)h.head_len; /* what follows is the tunnel's */
		conn_release_if_empty(c, &c->uout);
	}
	route_parent_ok(&w->cfg->routes, cp->p, w->id);
	conn_upstream_ready(c);
	return 1;
}

/* ---- errors ---- */

/* Answer the client with an error, unless a response is already on its way (then abort). */
static void conn_error(struct conn *c, int status, const char *msg)
{
	conn_error_with(c, status, msg, NULL);
}

/* The same with extra header lines (CRLF-terminated), e.g. Proxy-Authenticate. */
static void conn_error_with(struct conn *c, int status, const char *msg, const char *extra)
{
	struct worker *w = c->w;
	if (c->authq) {
		auth_cancel(c->authq);
		c->authq = NULL;
	}
	if (status >= 500)
		log_debug("request to %s failed: %d %s", c->host[0] ? c->host : "-", status, msg);
	w->stats.errors++;
	conn_log_begin(c);
	if (stats_error_kind(status) != STATS_NCOUNTERS)
		stats_inc(w->st, stats_error_kind(status));
	conn_free_connect(c);
	conn_close_upstream(c);
	/* a head that is only queued (the origin's head and a bad first chunk came in one read)
	 * is dropped and replaced by the error: the client has seen nothing yet. But queued
	 * interim (1xx) heads of which a part was written must be finished first, or the client
	 * would read a torn head: the error goes after them. */
	int after_interim = !c->resp_head_sent && c->resp_wrote && c->cout && buf_len(c->cout) > 0;
	if (after_interim) {
		buf_compact(c->cout);
		if (buf_room(c->cout) < 2048 &&
		    buf_grow(&w->bufs, &c->cout, buf_len(c->cout) + 2048) != FERRY_OK)
			c->resp_head_sent = 1; /* no room for the answer: the reset below */
	}
	if (c->resp_head_sent && c->resp_wrote) {
		c->state = CS_CLOSING;
		c->close_after = 1;
		/* the client has part of a response: a reset is the only honest signal */
		struct linger lg = { 1, 0 };
		if (setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
			conn_syscall_failed(c, c->fd, "setsockopt(SO_LINGER)");
		if (shutdown(c->fd, SHUT_RDWR) < 0)
			conn_syscall_failed(c, c->fd, "shutdown");
		buf_put(&w->bufs, c->cout);
		c->cout = NULL;
		c->c_shut = 1;
		conn_set_timer(c, w->tl_linger);
		return;
	}
	if (conn_buf(c, &c->cout) == NULL) {
		/* no memory for an answer: close without one (never free here: callers go on
		 * using c) */
		c->state = CS_CLOSING;
		c->close_after = 1;
		conn_set_timer(c, w->tl_linger);
		return;
	}
	if (after_interim) {
		c->cout->end += (uint32_t)forward_error_response(status, msg, extra, c->cout->data + c->cout->end,
								 buf_room(c->cout));
	} else {
		c->cout->start = 0;
		c->cout->end = (uint32_t)forward_error_response(status, msg, extra, c->cout->data, c->cout->cap);
	}
	w->stats.status_class[status / 100]++;
	c->lg_status = (uint16_t)status;
	c->resp_head_sent = 1;
	c->close_after = 1;
	c->state = CS_CLOSING;
	c->cwr = 1;
	/* the rest of the request is no longer interesting */
	if (c->cin)
		c->cin->start = c->cin->end = 0;
	conn_set_timer(c, w->tl_linger);
}

/* CS_CLOSING: write the answer, shut down writing, read and drop what the client still sends
 * (closing with unread input would reset the connection and could destroy the answer before
 * the client reads it), close at EOF or after LINGER_MS. */
static int conn_step_error(struct conn *c)
{
	int progress = 0;
	if (c->cout && buf_len(c->cout) > 0 && c->cwr) {
		ssize_t n = conn_writev(c->fd, c->cout, NULL, 0, &c->cwr);
		if (n < 0) {
			conn_syscall_failed(c, c->fd, "writev");
			conn_close(c, 0);
			return -1;
		}
		if (n == 0)
			c->cwr = 0;
		else
			conn_consume(c->cout, NULL, NULL, NULL, (size_t)n), progress = 1, c->lg_out += (uint64_t)n;
	}
	if (c->cout && buf_len(c->cout) > 0)
		return progress;
	conn_log_end(c); /* the answer is out: the request ends here, not after the linger */
	if (!c->c_shut) {
		if (shutdown(c->fd, SHUT_WR) < 0)
			conn_syscall_failed(c, c->fd, "shutdown");
		c->c_shut = 1;
	}
	/* at most 64 KiB per call: a client that blasts data must not hold up the worker */
	for (int i = 0; i < 16 && c->crd; i++) {
		char drop[4096];
		ssize_t r = read(c->fd, drop, sizeof(drop));
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
			if (r < 0)
				conn_syscall_failed(c, c->fd, "read");
			conn_close(c, 0);
			return -1;
		}
		if (r < 0 && errno == EAGAIN)
			c->crd = 0;
	}
	return progress;
}

/* ---- response side ---- */

/* Does Transfer-Encoding name a coding besides chunked (gzip, chunked)? Decoding chunked for
 * an HTTP/1.0 client would then hand it coded bytes with nothing saying so. */
static int conn_te_beyond_chunked(const struct http_head *h)
{
	for (unsigned i = 0; i < h->nfields; i++) {
		const struct http_field *f = &h->fields[i];
		if (f->id == HF_TRANSFER_ENCODING && !http_slice_eq(f->value, "chunked"))
			return 1;
	}
	return 0;
}

/* A final response head was parsed: choose how it travels and write its head for the
 * client. Returns NULL, or why it cannot be relayed. */
static const char *conn_begin_response(struct conn *c, struct http_head *h)
{
	struct worker *w = c->w;
	const struct config *cfg = w->cfg;

	c->resp_body = (uint8_t)h->body;
	c->resp_left = h->content_length;
	c->up_reusable = (h->version == 11 && !(h->flags & HTTP_F_CONN_CLOSE)) ||
			 (h->version == 10 && (h->flags & HTTP_F_CONN_KEEPALIVE));
	if (h->body == HTTP_BODY_CLOSE) {
		c->resp_close = 1;
		c->up_reusable = 0;
		c->close_after = 1;
	}
	enum forward_resp_mode mode = FORWARD_RESP_AS_IS;
	if (h->body == HTTP_BODY_CHUNKED) {
		http_chunked_init(&c->resp_ck);
		if (c->client10 && conn_te_beyond_chunked(h))
			return "the origin used a transfer coding an HTTP/1.0 client cannot receive";
		if (c->client10) {
			mode = FORWARD_RESP_DECHUNK;
			c->resp_dechunk = 1;
			c->close_after = 1;
		}
	}
	/* RFC 9112 section 6.1: no Transfer-Encoding to an HTTP/1.0 client, even on a response
	 * without a body (HEAD, 304), where there is nothing to decode: the field goes */
	if (c->client10 && (h->flags & HTTP_F_HAS_TE))
		mode = FORWARD_RESP_DECHUNK;
	if (!c->req_scanned)
		c->close_after = 1; /* the origin answered before the body ended: we cannot resync */

	if (conn_buf(c, &c->cout) == NULL)
		return "out of memory";
	int keepalive10 = c->client10 && c->keepalive10 && !c->close_after;
	ssize_t n = forward_response_head(h, mode, c->close_after, keepalive10, 0, cfg->via_name,
					  c->cout->data + c->cout->end, buf_room(c->cout));
	if (n < 0) {
		if (buf_grow(&w->bufs, &c->cout, buf_len(c->cout) + (uint32_t)h->head_len + 1024) != FERRY_OK)
			return "out of memory";
		buf_compact(c->cout);
		n = forward_response_head(h, mode, c->close_after, keepalive10, 0, cfg->via_name,
					  c->cout->data + c->cout->end, buf_room(c->cout));
		if (n < 0)
			return "response head too large";
	}
	c->cout->end += (uint32_t)n;
	c->resp_head_sent = 1;
	c->resp_state = h->body == HTTP_BODY_NONE ? RS_DONE : RS_BODY;
	c->lg_status = (uint16_t)h->status;
	if (h->status / 100 < 6)
		w->stats.status_class[h->status / 100]++;
	return NULL;
}

/* Relay a 101 head and turn the connection into a tunnel. */
static int conn_begin_upgrade(struct conn *c, struct http_head *h)
{
	if (conn_buf(c, &c->cout) == NULL)
		return FERRY_ERR;
	ssize_t n = forward_response_head(h, FORWARD_RESP_AS_IS, 0, 0, 1, c->w->cfg->via_name,
					  c->cout->data + c->cout->end, buf_room(c->cout));
	if (n < 0)
		return FERRY_ERR;
	c->cout->end += (uint32_t)n;
	c->resp_head_sent = 1;
	c->close_after = 1;
	c->lg_status = 101;
	c->lg_tunnel = 1;
	stats_inc(c->w->st, STATS_TUNNELS);
	stats_gauge_add(c->w->st, STATS_G_TUNNELS, 1);
	c->state = CS_TUNNEL;
	conn_set_timer(c, c->w->tl_tunnel_idle);
	return FERRY_OK;
}

/* Parse response heads in uin (1xx first, then the final one). */
static int conn_parse_response(struct conn *c)
{
	struct worker *w = c->w;
	while (c->resp_state == RS_HEAD && c->uin && buf_len(c->uin) > 0) {
		struct http_head h;
		memset(&h, 0, sizeof(h));
		h.fields = w->fields;
		int r = http_parse_response(buf_pos(c->uin), buf_len(c->uin), &c->uscanned, &w->limits,
					    c->is_head, 0, &h);
		if (r == FERRY_AGAIN) {
			if (conn_head_room(c, &c->uin) != FERRY_OK) {
				conn_error(c, 502, "response head from the origin too large");
				return FERRY_ERR;
			}
			return FERRY_OK;
		}
		if (r == FERRY_ERR) {
			char msg[200];
			snprintf(msg, sizeof(msg), "invalid response from the origin: %s", h.error ? h.error : "malformed");
			conn_error(c, 502, msg);
			return FERRY_ERR;
		}
		c->uscanned = 0;
		if (h.status == 101) {
			if (!c->upgrade) {
				conn_error(c, 502, "origin switched protocols without being asked");
				return FERRY_ERR;
			}
			if (!(h.flags & HTTP_F_HAS_UPGRADE)) {
				/* RFC 9110 section 15.2.2: a 101 names the protocol it switches to; a
				 * client cannot know what the bytes after this one are */
				conn_error(c, 502, "origin switched protocols without naming one (no Upgrade)");
				return FERRY_ERR;
			}
			if (conn_begin_upgrade(c, &h) != FERRY_OK) {
				conn_error(c, 502, "response head too large");
				return FERRY_ERR;
			}
			c->uin->start += (uint32_t)h.head_len;
			return FERRY_OK;
		}
		if (h.status < 200) {
			/* Each interim head resets upstream_idle, so an origin sending 1xx for ever
			 * would hold the client for ever: together they get the budget of one head
			 * (as Go's client counts them against its header limit). */
			c->interim_len += (uint32_t)h.head_len;
			if (c->interim_len > w->cfg->request_header_size) {
				conn_error(c, 502, "too many interim (1xx) responses from the origin");
				return FERRY_ERR;
			}
			/* interim responses go to HTTP/1.1 clients as they are (minus hop fields), all
			 * of them (RFC 9110 section 15.2): cout grows for one that does not fit, within
			 * that budget */
			if (!c->client10) {
				if (conn_buf(c, &c->cout) == NULL) {
					conn_error(c, 500, "out of memory");
					return FERRY_ERR;
				}
				ssize_t n = forward_response_head(&h, FORWARD_RESP_AS_IS, 0, 0, 0, w->cfg->via_name,
								  c->cout->data + c->cout->end, buf_room(c->cout));
				if (n < 0) {
					if (buf_grow(&w->bufs, &c->cout, buf_len(c->cout) + (uint32_t)h.head_len + 1024) != FERRY_OK) {
						conn_error(c, 500, "out of memory");
						return FERRY_ERR;
					}
					buf_compact(c->cout);
					n = forward_response_head(&h, FORWARD_RESP_AS_IS, 0, 0, 0, w->cfg->via_name,
								  c->cout->data + c->cout->end, buf_room(c->cout));
					if (n < 0) {
						conn_error(c, 502, "interim response head too large");
						return FERRY_ERR;
					}
				}
				c->cout->end += (uint32_t)n;
			}
			c->uin->start += (uint32_t)h.head_len;
			continue;
		}
		if (h.status == 407 && c->par != NULL && c->par->p != NULL && c->par->p->kind == ROUTE_HTTP) {
			/* the parent's challenge is about ferry's credentials, not the client's */
			char msg[400];
			snprintf(msg, sizeof(msg), "parent %s requires proxy authentication (407): check the "
				 "credentials in its URL", c->par->p->label);
			conn_error(c, 502, msg);
			return FERRY_ERR;
		}
		const char *why = conn_begin_response(c, &h);
		if (why != NULL) {
			conn_error(c, 502, why);
			return FERRY_ERR;
		}
		c->uin->start += (uint32_t)h.head_len;
	}
	return FERRY_OK;
}

/* Find response body bytes that may go to the client. */
static int conn_scan_response_body(struct conn *c)
{
	if (c->resp_state != RS_BODY || c->uin == NULL)
		return FERRY_OK;
	uint32_t len = buf_len(c->uin);
	if (c->resp_ready == 0 && c->resp_raw > 0) {
		/* dechunking left framing bytes behind the data already sent: drop them */
		c->uin->start += c->resp_raw;
		len -= c->resp_raw;
		c->resp_raw = 0;
	}
	uint32_t avail = len - c->resp_raw;
	if (avail == 0)
		return FERRY_OK;
	switch (c->resp_body) {
	case HTTP_BODY_CLOSE:
		c->resp_ready += avail;
		c->resp_raw += avail;
		break;
	case HTTP_BODY_LENGTH: {
		uint32_t take = c->resp_left < avail ? (uint32_t)c->resp_left : avail;
		c->resp_ready += take;
		c->resp_raw += take;
		c->resp_left -= take;
		if (c->resp_left == 0)
			c->resp_state = RS_DONE;
		break;
	}
	case HTTP_BODY_CHUNKED:
		while (avail > 0 && c->resp_state == RS_BODY) {
			size_t consumed = 0, doff = 0, dlen = 0;
			char *base = buf_pos(c->uin) + c->resp_raw;
			int r = http_chunked_parse(&c->resp_ck, base, avail, &consumed, &doff, &dlen);
			if (r == FERRY_ERR)
				return FERRY_ERR;
			if (c->resp_dechunk) {
				if (dlen > 0)
					memmove(buf_pos(c->uin) + c->resp_ready, base + doff, dlen);
				c->resp_ready += (uint32_t)dlen;
			} else {
				c->resp_ready += (uint32_t)consumed;
			}
			c->resp_raw += (uint32_t)consumed;
			avail -= (uint32_t)consumed;
			if (r == FERRY_OK)
				c->resp_state = RS_DONE;
			else if (consumed == 0)
				break;
		}
		break;
	}
	return FERRY_OK;
}

/* Close after the answer, gently (see CS_CLOSING). */
static int conn_close_lingering(struct conn *c)
{
	conn_free_connect(c);
	conn_close_upstream(c);
	c->state = CS_CLOSING;
	c->close_after = 1;
	if (c->cin)
		c->cin->start = c->cin->end = 0;
	conn_set_timer(c, c->w->tl_linger);
	return 1;
}

/* The response has been sent in full: pool the origin connection, and either wait for the
 * next request or close. */
static int conn_finish_response(struct conn *c)
{
	struct worker *w = c->w;
	int extra = c->uin && buf_len(c->uin) > c->resp_raw;
	int body_unsent = c->req_ready > 0 || c->cpipe != NULL; /* the origin answered early */
	conn_log_end(c);
	uint16_t kport;
	const char *key = conn_pool_key(c, &kport);
	if (key != NULL && c->up_reusable && c->req_scanned && !body_unsent && !extra && !c->u_eof &&
	    !c->up_wr_failed && c->ufd >= 0 && !w->stopping && (!c->uout || buf_len(c->uout) == 0)) {
		upstream_pool_put(&w->pool, c->ufd, key, strlen(key), kport, &c->uaddr);
		c->ufd = -1;
		stats_gauge_add(w->st, STATS_G_UPSTREAM, -1);
	}
	conn_close_upstream(c);
	/* a client that said close and sent nothing after its request can be closed at once
	 * (RFC 9112 section 9.6: it sends nothing more); otherwise linger */
	if (c->client_close && c->req_scanned && (!c->cin || buf_len(c->cin) == 0) && !c->crd) {
		conn_close(c, 0);
		return -1;
	}
	/* an origin that answered before the whole request body went out cannot be resynced */
	if (c->close_after || !c->req_scanned || body_unsent)
		return conn_close_lingering(c);
	conn_reset_request(c);
	c->state = CS_HEAD;
	conn_release_if_empty(c, &c->cin);
	conn_release_if_empty(c, &c->cout);
	if (c->cin && buf_len(c->cin) > 0) {
		c->got_bytes = 1;
		conn_log_begin(c);
		conn_set_timer(c, w->tl_request_header);
	} else {
		conn_set_timer(c, w->tl_client_idle);
	}
	return 1;
}

/* The origin went away before a response: retry a safe request once on a fresh connection. */
static int conn_upstream_lost(struct conn *c, const char *why)
{
	if (c->resp_state == RS_HEAD && !c->resp_started && c->reused && !c->retried &&
	    c->idempotent && c->req_body == HTTP_BODY_NONE && c->uout) {
		struct buf *uout = c->uout;
		c->uout = NULL;
		conn_close_upstream(c);
		c->uout = uout;
		c->uout->start = 0; /* the head was built at offset 0: send it again */
		c->retried = 1;
		c->reused = 0;
		conn_start_connect(c);
		return 1;
	}
	if (c->resp_state == RS_HEAD) {
		conn_error(c, 502, why);
		return 1;
	}
	/* mid-body: the client must see the truncation */
	conn_close(c, 1);
	return -1;
}

/* conn_splice_dir: FERRY_OK, FERRY_AGAIN (no pipe to be had), FERRY_ERR (reading src failed)
 * or SPLICE_DST_FAILED (writing dst failed). */
#define SPLICE_DST_FAILED (-3)
static int conn_splice_dir(struct conn *c, int src, int dst, struct pipe_buf **pp, uint8_t *rd,
			   uint8_t *wr, uint8_t *eof, uint64_t limit, uint64_t *moved, int *progress);

/* Below this much body left, read + writev cost the same system calls as splice and no pipe is
 * worth borrowing. */
#define SPLICE_BODY_MIN (64 * 1024)

/* The rest of a long response body goes origin -> pipe -> client with splice(2), never copied
 * through ferry: once the head and every buffered byte are out, for a body of known length
 * (exactly that many bytes, so a reusable connection is not read past the response) or one that
 * ends at the origin's FIN. Chunked bodies are parsed, so they stay in buffers. FERRY_OK,
 * FERRY_AGAIN (not now: use the buffers), or -1 when the connection was closed. */
static int conn_splice_response(struct conn *c, int *progress)
{
	if (c->upipe == NULL) {
		if (c->resp_state != RS_BODY || c->resp_dechunk ||
		    (c->resp_body != HTTP_BODY_LENGTH && c->resp_body != HTTP_BODY_CLOSE) ||
		    (c->cout && buf_len(c->cout) > 0) || (c->uin && buf_len(c->uin) > 0) ||
		    (c->resp_body == HTTP_BODY_LENGTH && c->resp_left < SPLICE_BODY_MIN))
			return FERRY_AGAIN;
	}
	uint64_t limit = c->resp_state != RS_BODY ? 0
			 : c->resp_body == HTTP_BODY_LENGTH ? c->resp_left : UINT64_MAX;
	uint64_t moved = 0;
	int moved_now = 0;
	int r = conn_splice_dir(c, c->ufd, c->fd, &c->upipe, &c->urd, &c->cwr, &c->u_eof, limit,
				&moved, &moved_now);
	if (r == FERRY_ERR || r == SPLICE_DST_FAILED) {
		/* a reset is not the end of any body, and a client that went away gets nothing */
		conn_close(c, 1);
		return -1;
	}
	if (moved_now) {
		conn_set_timer(c, c->w->tl_upstream_idle);
		*progress = 1;
	}
	if (r == FERRY_AGAIN)
		return FERRY_AGAIN;
	if (c->resp_body == HTTP_BODY_LENGTH) {
		c->resp_left -= moved;
		if (c->resp_left == 0)
			c->resp_state = RS_DONE;
	} else if (c->u_eof) {
		c->resp_state = RS_DONE;
	}
	return FERRY_OK;
}

/* The client's side ended while its request is under way: a FIN (fin) or a reset. Answers
 * what the buffered and the spliced paths both must: 0 to go on, 1 when the request was
 * answered with an error, -1 when the connection was closed. */
static int conn_client_ended(struct conn *c, int fin)
{
	c->c_eof = 1;
	if (fin && c->req_scanned) {
		/* a FIN after a whole request is a half-close (printf ... | nc -N, simple HTTP/1.0
		 * tools): the request stands, as with HAProxy's default. It and the requests
		 * pipelined before the FIN are answered; reading the FIN again in CS_HEAD then
		 * closes the connection. */
		return 0;
	}
	if (fin && !c->resp_head_sent) {
		/* a FIN in the middle of the body: the request can never be complete; the origin
		 * connection is dropped, so it never sees it complete either */
		conn_error(c, 400, "request body cut short by the client");
		return 1;
	}
	if (!c->resp_head_sent) {
		/* a reset before any answer: like nginx, stop the origin's work rather than finish
		 * it for nobody */
		conn_close(c, 1);
		return -1;
	}
	c->close_after = 1; /* finish this response, then close */
	return 0;
}

/* Likewise the rest of a long request body (an upload of known length) goes client -> pipe ->
 * origin, once the head and every buffered body byte are out; exactly req_left bytes, so a
 * pipelined request behind it stays in the socket for cin. A request with a body is never
 * retried, so nothing needs to keep it. FERRY_OK (splicing: the buffered path must not touch
 * the client's bytes meanwhile, or they would pass the pipe's), FERRY_AGAIN (not splicing), 1
 * when the request was answered with an error, or -1 when the connection was closed. */
static int conn_splice_request(struct conn *c, int *progress)
{
	if (c->cpipe == NULL) {
		if (c->req_body != HTTP_BODY_LENGTH || c->req_scanned || c->req_left < SPLICE_BODY_MIN ||
		    c->up_wr_failed || c->req_ready > 0 || (c->cin && buf_len(c->cin) > 0) ||
		    (c->uout && buf_len(c->uout) > 0) || c->c_eof)
			return FERRY_AGAIN;
	}
	uint64_t moved = 0;
	int moved_now = 0, was_eof = c->c_eof;
	int r = conn_splice_dir(c, c->fd, c->ufd, &c->cpipe, &c->crd, &c->uwr, &c->c_eof, c->req_left,
				&moved, &moved_now);
	c->req_left -= moved;
	if (c->req_left == 0)
		c->req_scanned = 1;
	if (moved_now) {
		c->req_body_seen = 1;
		conn_set_timer(c, c->w->tl_upstream_idle);
		*progress = 1;
	}
	if (r == FERRY_ERR || (c->c_eof && !was_eof)) {
		int k = conn_client_ended(c, r != FERRY_ERR);
		if (k != 0)
			return k;
	}
	if (r == SPLICE_DST_FAILED) {
		/* maybe the origin answered early and closed: read what it said; the rest of the
		 * body is dropped, and the connection closes after the response */
		pipe_put(&c->w->pipes, c->cpipe);
		c->cpipe = NULL;
		c->up_wr_failed = 1;
		c->urd = 1;
		*progress = 1;
		return FERRY_AGAIN;
	}
	if (r == FERRY_AGAIN)
		return FERRY_AGAIN; /* no pipe to be had: the buffers carry the body */
	return c->cpipe || !c->req_scanned ? FERRY_OK : FERRY_AGAIN;
}

static int conn_step_http(struct conn *c)
{
	struct worker *w = c->w;
	int progress = 0;

	/* client -> origin inside the kernel, for the rest of a long request body */
	int req_spliced = conn_splice_request(c, &progress);
	if (req_spliced == -1 || req_spliced == 1)
		return req_spliced;

	/* client -> ferry: more request body, or pipelined requests (kept in cin for later), or
	 * the client going away while it waits */
	if (req_spliced == FERRY_AGAIN && c->crd && !c->c_eof) {
		ssize_t r = conn_read(c, c->fd, &c->cin, &c->crd, !c->req_scanned);
		if (r > 0) {
			progress = 1;
			if (conn_scan_request_body(c) != FERRY_OK) {
				conn_error(c, 400, c->req_ck.error ? c->req_ck.error : "malformed chunked body");
				return 1;
			}
		} else if (r == 0 || r == FERRY_ERR) {
			int k = conn_client_ended(c, r == 0);
			if (k != 0)
				return k;
		} else if (c->cin && buf_len(c->cin) == 0) {
			conn_release_if_empty(c, &c->cin);
		}
	}

	/* ferry -> origin: the head, then the body bytes ready in cin */
	if (c->uwr && !c->up_wr_failed &&
	    ((c->uout && buf_len(c->uout) > 0) || c->req_ready > 0)) {
		ssize_t n = conn_writev(c->ufd, c->uout, c->cin, c->req_ready, &c->uwr);
		if (n < 0) {
			/* maybe the origin answered early and closed: read what it said */
			conn_syscall_failed(c, c->ufd, "writev");
			c->up_wr_failed = 1;
			c->urd = 1;
			progress = 1;
		} else if (n == 0) {
			c->uwr = 0;
		} else {
			/* keep the head (uout) until the response starts: a retry resends it */
			size_t head_left = c->uout ? buf_len(c->uout) : 0;
			if (head_left > 0) {
				size_t k = (size_t)n < head_left ? (size_t)n : head_left;
				c->uout->start += (uint32_t)k;
				n -= (ssize_t)k;
			}
			if (n > 0)
				conn_consume(NULL, c->cin, &c->req_ready, NULL, (size_t)n);
			progress = 1;
			conn_set_timer(c, w->tl_upstream_idle);
		}
	}

	/* origin -> client inside the kernel, for the rest of a long body */
	int spliced = conn_splice_response(c, &progress);
	if (spliced < 0 && spliced != FERRY_AGAIN)
		return -1;

	/* origin -> ferry */
	if (spliced == FERRY_AGAIN && c->urd && !c->u_eof && c->resp_state != RS_DONE) {
		ssize_t r = conn_read(c, c->ufd, &c->uin, &c->urd, 1);
		if (r > 0) {
			progress = 1;
			c->resp_started = 1;
			conn_set_timer(c, w->tl_upstream_idle);
		} else if (r == 0 || r == FERRY_ERR) {
			c->u_eof = 1;
			progress = 1;
			if (c->resp_state == RS_BODY && c->resp_body == HTTP_BODY_CLOSE) {
				if (r == FERRY_ERR) {
					/* a reset is not the end of a close-delimited body */
					conn_close(c, 1);
					return -1;
				}
				c->resp_state = RS_DONE;
			} else if (c->resp_state == RS_HEAD && c->uin && buf_len(c->uin) > 0) {
				/* a partial head, then nothing */
				return conn_upstream_lost(c, "the origin closed the connection in the middle of the response head");
			} else if (c->resp_state != RS_DONE) {
				return conn_upstream_lost(c, r == 0 ? "the origin closed the connection without answering"
								   : "the origin reset the connection");
			}
		}
	}
	if (c->resp_state == RS_HEAD) {
		if (conn_parse_response(c) != FERRY_OK)
			return 1;
		if (c->state == CS_TUNNEL)
			return 1;
	}
	if (conn_scan_response_body(c) != FERRY_OK) {
		/* a broken body from the origin: the client already has the head */
		conn_error(c, 502, "malformed chunked body from the origin");
		return 1;
	}
	if (c->resp_state == RS_BODY && c->u_eof && c->resp_body != HTTP_BODY_CLOSE) {
		conn_close(c, 1); /* truncated: never end it cleanly */
		return -1;
	}

	/* ferry -> client: the head, then body bytes ready in uin */
	if (c->cwr && ((c->cout && buf_len(c->cout) > 0) || c->resp_ready > 0)) {
		ssize_t n = conn_writev(c->fd, c->cout, c->uin, c->resp_ready, &c->cwr);
		if (n < 0) {
			conn_syscall_failed(c, c->fd, "writev");
			conn_close(c, 1);
			return -1;
		}
		if (n == 0) {
			c->cwr = 0;
		} else {
			conn_consume(c->cout, c->uin, &c->resp_ready, &c->resp_raw, (size_t)n);
			c->lg_out += (uint64_t)n;
			c->resp_wrote = 1;
			progress = 1;
			conn_set_timer(c, w->tl_upstream_idle);
		}
	}

	if (c->resp_state == RS_DONE && (!c->cout || buf_len(c->cout) == 0) && c->resp_ready == 0 &&
	    c->upipe == NULL)
		return conn_finish_response(c);
	conn_release_if_empty(c, &c->uin);
	return progress;
}

/* ---- tunnels ---- */

/* Move bytes one way inside the kernel: src -> pipe -> dst with splice(2). Used once the
 * buffers of that direction (a head ferry wrote, bytes read before the tunnel began) are
 * empty. FERRY_OK, FERRY_AGAIN (no pipe to be had: use the buffers), FERRY_ERR. */
static int conn_splice_dir(struct conn *c, int src, int dst, struct pipe_buf **pp, uint8_t *rd,
			   uint8_t *wr, uint8_t *eof, uint64_t limit, uint64_t *moved, int *progress)
{
	struct pipe_buf *p = *pp;
	if (p == NULL) {
		if (!*rd || *eof || limit == 0)
			return FERRY_OK;
		p = *pp = pipe_get(&c->w->pipes);
		if (p == NULL)
			return FERRY_AGAIN;
	}
	if (*rd && !*eof && p->bytes < p->cap && limit > 0) {
		size_t room = p->cap - p->bytes;
		if (room > limit)
			room = (size_t)limit;
		ssize_t n = splice(src, NULL, p->wfd, NULL, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			p->bytes += (uint32_t)n;
			if (moved)
				*moved += (uint64_t)n;
			if (src == c->fd)
				c->lg_in += (uint64_t)n;
			*progress = 1;
			if ((size_t)n < room)
				*rd = 0; /* the socket had less than the pipe could take: drained */
		} else if (n == 0) {
			*eof = 1;
			*progress = 1;
		} else if (errno == EAGAIN) {
			if (p->bytes == 0)
				*rd = 0; /* an empty pipe cannot be full: the socket is */
		} else if (errno != EINTR) {
			conn_syscall_failed(c, src, "splice");
			return FERRY_ERR;
		}
	}
	if (*wr && p->bytes > 0) {
		ssize_t n = splice(p->rfd, NULL, dst, NULL, p->bytes, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			if (dst == c->fd)
				c->lg_out += (uint64_t)n, c->resp_wrote = 1;
			if ((uint32_t)n < p->bytes)
				*wr = 0;
			p->bytes -= (uint32_t)n;
			*progress = 1;
		} else if (n < 0 && errno == EAGAIN) {
			*wr = 0;
		} else if (n < 0 && errno != EINTR) {
			conn_syscall_failed(c, dst, "splice");
			return SPLICE_DST_FAILED;
		}
	}
	if (p->bytes == 0) {
		pipe_put(&c->w->pipes, p); /* an idle tunnel holds no pipe */
		*pp = NULL;
	}
	return FERRY_OK;
}

/* Move bytes one way: read src into *b, write *b (after an optional head in pre) to dst;
 * once those are empty, splice through a pipe instead. */
static int conn_tunnel_dir(struct conn *c, int src, int dst, struct buf **b, struct buf *pre,
			   struct pipe_buf **pp, uint8_t *rd, uint8_t *wr, uint8_t *eof, uint8_t *shut,
			   int *progress)
{
	int buffered = (pre && buf_len(pre) > 0) || (*b && buf_len(*b) > 0);
	int r = FERRY_AGAIN;
	if (!buffered) {
		r = conn_splice_dir(c, src, dst, pp, rd, wr, eof, UINT64_MAX, NULL, progress);
		if (r == FERRY_ERR || r == SPLICE_DST_FAILED)
			return FERRY_ERR;
	}
	if (r == FERRY_AGAIN) {
		if (*rd && !*eof) {
			ssize_t n = conn_read(c, src, b, rd, 0);
			if (n > 0) {
				*progress = 1;
			} else if (n == 0) {
				*eof = 1;
				*progress = 1;
			} else if (n == FERRY_ERR) {
				return FERRY_ERR;
			}
		}
		uint32_t blen = *b ? buf_len(*b) : 0;
		if (*wr && ((pre && buf_len(pre) > 0) || blen > 0)) {
			ssize_t n = conn_writev(dst, pre, *b, blen, wr);
			if (n < 0) {
				conn_syscall_failed(c, dst, "writev");
				return FERRY_ERR;
			}
			if (n > 0) {
				if (dst == c->fd)
					c->lg_out += (uint64_t)n, c->resp_wrote = 1;
				uint32_t ready = blen;
				conn_consume(pre, *b, &ready, NULL, (size_t)n);
				*progress = 1;
			}
		}
	}
	if ((pre == NULL || buf_len(pre) == 0) && (*b == NULL || buf_len(*b) == 0) && *pp == NULL) {
		conn_release_if_empty(c, b);
		if (*eof && !*shut) {
			/* half-close: pass the FIN on, keep relaying the other way */
			if (shutdown(dst, SHUT_WR) < 0)
				conn_syscall_failed(c, dst, "shutdown");
			*shut = 1;
		}
	}
	return FERRY_OK;
}

static int conn_step_tunnel(struct conn *c)
{
	int progress = 0;
	if (conn_tunnel_dir(c, c->fd, c->ufd, &c->cin, c->uout, &c->cpipe, &c->crd, &c->uwr, &c->c_eof,
			    &c->u_shut, &progress) != FERRY_OK ||
	    conn_tunnel_dir(c, c->ufd, c->fd, &c->uin, c->cout, &c->upipe, &c->urd, &c->cwr, &c->u_eof,
			    &c->c_shut, &progress) != FERRY_OK) {
		conn_close(c, 1);
		return -1;
	}
	conn_release_if_empty(c, &c->cout);
	conn_release_if_empty(c, &c->uout);
	if (c->u_shut && c->c_shut) {
		conn_close(c, 0);
		return -1;
	}
	if (progress)
		conn_set_timer(c, c->w->tl_tunnel_idle);
	return progress;
}

/* ---- the pump ---- */

/* Register the events this connection needs now and nothing more. */
static void conn_update_events(struct conn *c)
{
	int cev = 0, uev = 0;
	switch (c->state) {
	case CS_HEAD:
	case CS_PROXY:
		cev = LOOP_READ;
		break;
	case CS_RESOLVE:
		break;
	case CS_CONNECT:
		uev = LOOP_WRITE;
		break;
	case CS_PARENT:
		uev = LOOP_READ;
		if (conn_parent_pending(c) > 0)
			uev |= LOOP_WRITE;
		break;
	case CS_HTTP:
		if (!c->c_eof && (!c->cin || buf_room(c->cin) > 0 || c->cin->start > 0) &&
		    (!c->cpipe || c->cpipe->bytes < c->cpipe->cap))
			cev |= LOOP_READ;
		if ((c->cout && buf_len(c->cout) > 0) || c->resp_ready > 0 || c->upipe)
			cev |= LOOP_WRITE;
		if (c->resp_state != RS_DONE && !c->u_eof &&
		    (!c->uin || buf_room(c->uin) > 0 || c->uin->start > 0) &&
		    (!c->upipe || c->upipe->bytes < c->upipe->cap))
			uev |= LOOP_READ;
		if (!c->up_wr_failed && ((c->uout && buf_len(c->uout) > 0) || c->req_ready > 0 || c->cpipe))
			uev |= LOOP_WRITE;
		break;
	case CS_TUNNEL:
		/* read a side while its direction has room (buffer empty, pipe not full); write a
		 * side while its direction holds bytes */
		if (!c->c_eof && (!c->cin || buf_len(c->cin) == 0) && (!c->cpipe || c->cpipe->bytes < c->cpipe->cap))
			cev |= LOOP_READ;
		if ((c->cout && buf_len(c->cout) > 0) || (c->uin && buf_len(c->uin) > 0) || c->upipe)
			cev |= LOOP_WRITE;
		if (!c->u_eof && (!c->uin || buf_len(c->uin) == 0) && (!c->upipe || c->upipe->bytes < c->upipe->cap))
			uev |= LOOP_READ;
		if ((c->uout && buf_len(c->uout) > 0) || (c->cin && buf_len(c->cin) > 0) || c->cpipe)
			uev |= LOOP_WRITE;
		break;
	case CS_CLOSING:
		if (c->cout && buf_len(c->cout) > 0)
			cev = LOOP_WRITE;
		else
			cev = LOOP_READ;
		break;
	}
	/* a readiness bit still set means work is known to be pending: the pump handles it */
	if (c->cwr)
		cev &= ~LOOP_WRITE;
	if (c->uwr)
		uev &= ~LOOP_WRITE;
	conn_set_events(c, 0, cev);
	conn_set_events(c, 1, uev);
}

static void conn_run(struct conn *c)
{
	for (int round = 0; round < 64; round++) {
		int r = 0;
		switch (c->state) {
		case CS_HEAD:
			r = conn_step_head(c);
			break;
		case CS_HTTP:
			r = conn_step_http(c);
			break;
		case CS_TUNNEL:
			r = conn_step_tunnel(c);
			break;
		case CS_CLOSING:
			r = conn_step_error(c);
			break;
		case CS_PROXY:
			r = conn_step_proxy(c);
			break;
		case CS_PARENT:
			r = conn_step_parent(c);
			break;
		default:
			r = 0;
			break;
		}
		if (r < 0)
			return; /* freed */
		if (r == 0)
			break;
		if (round == 63) {
			/* enough for one callback (fairness): let the loop report readiness again
			 * rather than trust bits that nothing would come back to */
			c->cwr = c->uwr = 0;
		}
	}
	conn_update_events(c);
}

static void conn_on_client(struct loop *loop, int fd, int events, void *arg)
{
	struct conn *c = arg;
	if (events & (LOOP_READ | LOOP_HUP))
		c->crd = 1;
	if (events & (LOOP_WRITE | LOOP_HUP))
		c->cwr = 1;
	conn_run(c);
}

static void conn_on_upstream(struct loop *loop, int fd, int events, void *arg)
{
	struct conn *c = arg;
	if (c->state == CS_CONNECT) {
		conn_connected(c);
	} else {
		if (events & (LOOP_READ | LOOP_HUP))
			c->urd = 1;
		if (events & (LOOP_WRITE | LOOP_HUP))
			c->uwr = 1;
	}
	conn_run(c);
}

/* Is the request body unfinished with every byte of it already passed on, and no final
 * response begun (a 100 Continue may have come and gone)? Then a quiet connection is waiting
 * for the client, not for the origin. Not when the client asked for a 100 Continue, got none
 * and has sent nothing: it may wait for that answer (RFC 9110 section 10.1.1), which is the
 * origin's to give. */
static int conn_waits_for_request_body(const struct conn *c)
{
	if (c->expect_continue && c->interim_len == 0 && !c->req_body_seen)
		return 0;
	return !c->req_scanned && !c->resp_head_sent && (!c->uin || buf_len(c->uin) == 0) &&
	       c->req_ready == 0 && !c->up_wr_failed &&
	       (!c->uout || buf_len(c->uout) == 0) && (!c->cpipe || c->cpipe->bytes == 0);
}

static void conn_on_timer(struct loop *loop, struct timer *t)
{
	struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, timer));
	switch (c->state) {
	case CS_HEAD:
		if (c->got_bytes || (c->cin && buf_len(c->cin) > 0))
			conn_error(c, 408, "timed out waiting for the request head");
		else {
			conn_close(c, 0);
			return;
		}
		break;
	case CS_AUTH:
		conn_error(c, 503, "timed out checking credentials");
		break;
	case CS_RESOLVE: {
		char msg[320];
		if (c->par != NULL && c->par->p != NULL) {
			/* a parent that cannot be resolved in time is a failed parent: try the next */
			if (c->cx && c->cx->query) {
				dns_cancel(c->cx->query);
				c->cx->query = NULL;
			}
			conn_parent_failed(c, "timed out resolving it");
			conn_parent_resolve(c);
			break;
		}
		snprintf(msg, sizeof(msg), "timed out resolving %s", c->host);
		conn_error(c, 504, msg);
		break;
	}
	case CS_CONNECT:
		c->cx->last_errno = ETIMEDOUT;
		conn_connect_next(c);
		break;
	case CS_PARENT:
		conn_parent_broken(c, "timed out in the handshake");
		break;
	case CS_HTTP:
		if (c->resp_head_sent) {
			conn_close(c, 1);
			return;
		}
		if (conn_waits_for_request_body(c)) {
			/* the client stalled in its body: its fault, not the origin's (nginx's
			 * client_body_timeout); the origin connection is dropped with the rest */
			conn_error(c, 408, "timed out waiting for the request body");
			break;
		}
		conn_error(c, 504, "timed out waiting for the origin");
		break;
	case CS_TUNNEL:
	case CS_CLOSING:
	case CS_PROXY: /* no (whole) header within request_header: nobody to answer */
		conn_close(c, 0);
		return;
	}
	conn_run(c);
}

void conn_accept(struct worker *w, const struct worker_handoff *h)
{
	struct conn *c = conn_alloc(w);
	if (c == NULL) {
		if (h->counted && w->clients)
			clients_release(w->clients, (const struct sockaddr *)&h->peer);
		close(h->fd);
		worker_conn_closed(w);
		return;
	}
	c->w = w;
	c->fd = h->fd;
	c->ufd = -1;
	conn_set_peer(c, &h->peer);
	c->counted = h->counted && w->clients != NULL;
	timer_init(&c->timer, conn_on_timer);
	conn_reset_request(c);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->stats.accepted++;
	stats_inc(w->st, STATS_ACCEPTED);
	stats_gauge_add(w->st, STATS_G_CLIENT, 1);
	if (loop_add(w->loop, c->fd, LOOP_READ, conn_on_client, c) != FERRY_OK) {
		log_error("loop_add client fd %d: %s", c->fd, strerror(errno));
		conn_close(c, 1);
		return;
	}
	c->cev = LOOP_READ;
	c->cwr = 1;
	if (w->cfg->proxy_protocol) {
		/* the acceptor only checked that the balancer may connect: who the client is comes
		 * in the header (conn_step_proxy) */
		c->state = CS_PROXY;
		conn_set_timer(c, w->tl_request_header);
		c->crd = 1;
		conn_run(c);
		return;
	}
	if (h->deny_status) {
		conn_error(c, h->deny_status, h->deny_status == 429 ? "too many connections from this address"
								    : "client address not allowed");
		conn_run(c);
		return;
	}
	c->state = CS_HEAD;
	conn_set_timer(c, w->tl_request_header);
	c->got_bytes = 0;
	/* most clients send the request right after connecting: try at once */
	c->crd = 1;
	conn_run(c);
}

void conn_drain_idle(struct worker *w)
{
	struct conn *c = w->conns;
	while (c) {
		struct conn *next = c->next;
		char byte;
		/* idle: a kept-alive connection between requests with nothing sent. A fresh one's
		 * first request may be on its way (the client connected before the stop), and a
		 * request already in the socket but not read yet is in flight: both get answers */
		if (c->state == CS_HEAD && c->nreq > 0 && !c->got_bytes && (!c->cin || buf_len(c->cin) == 0) &&
		    recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
			conn_close(c, 0);
		else
			c->close_after = 1;
		c = next;
	}
}

void conn_close_all(struct worker *w)
{
	while (w->conns)
		conn_close(w->conns, 0);
	freelist_destroy(&w->free_conns);
	freelist_destroy(&w->free_connects);
}
