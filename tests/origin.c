/* origin.c - the test origin server for ferry's end-to-end suites.
 *
 *   origin [-p PORT] [-e ECHOPORT]
 *
 * Listens on 127.0.0.1:PORT (HTTP/1.1) and on 127.0.0.1:ECHOPORT (raw TCP echo, the target
 * of CONNECT tunnel tests); port 0, the default, picks a free one. Prints "PORT ECHOPORT\n"
 * on stdout once both listen, then serves until killed. One thread per connection and
 * blocking sockets: simple and obviously right matters more here than speed.
 *   /headers      200, body = the request head exactly as received (also for the target "*")
 * The request path chooses the behaviour:
 *   /len/N        200, Content-Length N, body byte i = 'a' + i % 26
 *   /big/N        the same, written in large blocks (GiB streaming tests)
 *   /chunked/N    200, chunked, same body, chunks of varying sizes
 *   /close/N      200, no length, body then close
 *   /status/CODE  that status, Content-Length 0 (no body and no length for 1xx/204/304)
 *   /headers      200, body = the request head exactly as received
 *   /echo         200, body = the request body (decoded if chunked)
 *   /sink         200, body = "LEN OK FNV": body length, 1 if it is the pattern, FNV-1a 64
 *   /conn         200, body = "SERIAL NREQ": connection serial (1-based), requests on it
 *   /sleep/MS     sleep MS milliseconds, then 200 "ok"
 *   /raw/NAME     a canned, often broken, response (see raws[] below), then close
 *   /stall        read the request, never answer, close when the client does
 *   /stall_body   200 with Content-Length 1000, 100 bytes of it, then as /stall
 *   /cut/N        200 with Content-Length 2N, N bytes of it, then close; /cut_rst/N: reset
 *   /dropsecond   200 "first" on the first request of a connection; on any later request
 *                 of the same connection: close without answering (a pooled connection
 *                 that dies just as it is reused); /dropsecond_rst: the same with a reset
 *   /idleclose/MS 200 "idle", then close the connection if no request follows within MS
 * Anything else gets 404. A request with "Expect: 100-continue" gets "100 Continue" before
 * its body is read. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX (1024 * 1024)
#define ECHO_MAX (256u * 1024 * 1024)
#define PATTERN_BLOCK (26 * 10082) /* a multiple of 26, so every block starts at 'a' */

static atomic_ulong conn_serial;
static char pattern[PATTERN_BLOCK];

struct rbuf {
	int fd;
	char *data;
	size_t len, cap;
};

struct request {
	char method[32];
	char path[4096];
	int minor;            /* HTTP/1.x */
	int keep_alive;
	int chunked;
	long long clen;       /* -1: none */
	int expect_continue;
	size_t head_len;      /* bytes of the head, in rbuf->data */
};

struct body_sink {
	char *data;           /* /echo collects, the rest only count */
	size_t len, cap;
	int collect;
	int too_big;
	unsigned long long total;
	unsigned long long fnv;
	int is_pattern;
};

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int write_str(int fd, const char *s)
{
	return write_all(fd, s, strlen(s));
}

/* The pattern from offset 0 for n bytes; blocks are multiples of 26 so this stays simple. */
static int write_pattern(int fd, unsigned long long n)
{
	while (n > 0) {
		size_t k = n < sizeof(pattern) ? (size_t)n : sizeof(pattern);

		if (write_all(fd, pattern, k) < 0)
			return -1;
		n -= k;
	}
	return 0;
}

/* Read more bytes into rb; 1 on data, 0 on EOF, -1 on error. */
static int rbuf_fill(struct rbuf *rb)
{
	ssize_t r;

	if (rb->len == rb->cap) {
		size_t ncap = rb->cap ? rb->cap * 2 : 16384;
		char *n = realloc(rb->data, ncap);

		if (!n)
			return -1;
		rb->data = n;
		rb->cap = ncap;
	}
	do
		r = recv(rb->fd, rb->data + rb->len, rb->cap - rb->len, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	if (r == 0)
		return 0;
	rb->len += (size_t)r;
	return 1;
}

static void rbuf_consume(struct rbuf *rb, size_t n)
{
	memmove(rb->data, rb->data + n, rb->len - n);
	rb->len -= n;
}

/* Ensure at least n bytes are buffered; 1 ok, 0 EOF first, -1 error. */
static int rbuf_need(struct rbuf *rb, size_t n)
{
	while (rb->len < n) {
		int r = rbuf_fill(rb);

		if (r <= 0)
			return r;
	}
	return 1;
}

/* Length of the line at the start of rb including its CRLF, reading as needed; 0 on EOF. */
static size_t rbuf_line(struct rbuf *rb)
{
	size_t scanned = 0;

	for (;;) {
		char *nl = memchr(rb->data + scanned, '\n', rb->len - scanned);

		if (nl)
			return (size_t)(nl - rb->data) + 1;
		scanned = rb->len;
		if (rb->len > HEAD_MAX || rbuf_fill(rb) <= 0)
			return 0;
	}
}

static const char *find_head_end(const char *p, size_t n)
{
	for (size_t i = 0; i + 3 < n; i++)
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
			return p + i + 4;
	return NULL;
}

static int token_in_list(const char *v, size_t vlen, const char *tok)
{
	size_t tl = strlen(tok);
	size_t i = 0;

	while (i < vlen) {
		while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;

		while (i < vlen && v[i] != ',')
			i++;
		size_t e = i;

		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
			return 1;
	}
	return 0;
}

/* Read and parse one request head. 1 ok, 0 clean EOF before any byte, -1 error. */
static int read_request(struct rbuf *rb, struct request *rq)
{
	const char *end;
	size_t scanned = 0;

	memset(rq, 0, sizeof(*rq));
	while (!(end = find_head_end(rb->data ? rb->data : "", rb->len))) {
		if (rb->len > HEAD_MAX)
			return -1;
		scanned = rb->len;
		int r = rbuf_fill(rb);

		if (r == 0 && scanned == 0)
			return 0;
		if (r <= 0)
			return -1;
	}
	rq->head_len = (size_t)(end - rb->data);

	/* request line */
	const char *p = rb->data, *lim = end;
	const char *eol = memchr(p, '\n', (size_t)(lim - p));
	const char *sp1 = memchr(p, ' ', (size_t)(eol - p));

	if (!sp1 || (size_t)(sp1 - p) >= sizeof(rq->method))
		return -1;
	memcpy(rq->method, p, (size_t)(sp1 - p));
	const char *tgt = sp1 + 1;
	const char *sp2 = memchr(tgt, ' ', (size_t)(eol - tgt));

	if (!sp2 || (size_t)(sp2 - tgt) >= sizeof(rq->path))
		return -1;
	/* An absolute-form target reaching us means the proxy did not rewrite it: serve it
	 * anyway, by path, and let /headers show what arrived. */
	if (sp2 - tgt > 7 && strncasecmp(tgt, "http://", 7) == 0) {
		const char *slash = memchr(tgt + 7, '/', (size_t)(sp2 - tgt - 7));

		tgt = slash ? slash : sp2;
	}
	memcpy(rq->path, tgt, (size_t)(sp2 - tgt));
	if (strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
		return -1;
	rq->minor = sp2[8] == '0' ? 0 : 1;
	rq->keep_alive = rq->minor >= 1;
	rq->clen = -1;

	/* fields */
	for (p = eol + 1; p < lim - 2; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(lim - p));
		const char *colon = memchr(p, ':', (size_t)(eol - p));

		if (!colon)
			return -1;
		size_t nlen = (size_t)(colon - p);
		const char *v = colon + 1;
		const char *ve = eol;

		while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		if (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0)
			rq->clen = strtoll(v, NULL, 10);
		else if (nlen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0)
			rq->chunked = token_in_list(v, (size_t)(ve - v), "chunked");
		else if (nlen == 10 && strncasecmp(p, "Connection", 10) == 0) {
			if (token_in_list(v, (size_t)(ve - v), "close"))
				rq->keep_alive = 0;
			if (token_in_list(v, (size_t)(ve - v), "keep-alive"))
				rq->keep_alive = 1;
		} else if (nlen == 6 && strncasecmp(p, "Expect", 6) == 0)
			rq->expect_continue = token_in_list(v, (size_t)(ve - v), "100-continue");
	}
	return 1;
}

static void sink_put(struct body_sink *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)p[i] != (unsigned char)('a' + (s->total + i) % 26))
			s->is_pattern = 0;
		s->fnv ^= (unsigned char)p[i];
		s->fnv *= 1099511628211ULL;
	}
	s->total += n;
	if (!s->collect)
		return;
	if (s->len + n > ECHO_MAX) {
		s->too_big = 1;
		return;
	}
	if (s->len + n > s->cap) {
		size_t ncap = s->cap ? s->cap : 16384;

		while (ncap < s->len + n)
			ncap *= 2;
		char *d = realloc(s->data, ncap);

		if (!d) {
			s->too_big = 1;
			return;
		}
		s->data = d;
		s->cap = ncap;
	}
	memcpy(s->data + s->len, p, n);
	s->len += n;
}

/* Move up to n body bytes from rb into the sink, reading as needed. 0 ok, -1 EOF/error. */
static int body_take(struct rbuf *rb, struct body_sink *s, unsigned long long n)
{
	while (n > 0) {
		if (rb->len == 0 && rbuf_fill(rb) <= 0)
			return -1;
		size_t k = rb->len < n ? rb->len : (size_t)n;

		sink_put(s, rb->data, k);
		rbuf_consume(rb, k);
		n -= k;
	}
	return 0;
}

static int read_body(struct rbuf *rb, const struct request *rq, struct body_sink *s)
{
	if (rq->chunked) {
		for (;;) {
			size_t ll = rbuf_line(rb);

			if (ll == 0)
				return -1;
			char *endp;
			unsigned long long sz = strtoull(rb->data, &endp, 16);

			if (endp == rb->data)
				return -1;
			rbuf_consume(rb, ll);
			if (sz == 0)
				break;
			if (body_take(rb, s, sz) < 0 || rbuf_need(rb, 2) <= 0)
				return -1;
			if (rb->data[0] != '\r' || rb->data[1] != '\n')
				return -1;
			rbuf_consume(rb, 2);
		}
		/* trailer section, up to the empty line */
		for (;;) {
			size_t ll = rbuf_line(rb);

			if (ll == 0)
				return -1;
			int empty = ll <= 2;

			rbuf_consume(rb, ll);
			if (empty)
				return 0;
		}
	}
	if (rq->clen > 0)
		return body_take(rb, s, (unsigned long long)rq->clen);
	return 0;
}

/* Close politely: stop writing, then drain what the peer still sends for a moment, so that
 * unread bytes do not turn our FIN into a RST that could eat the response. */
static void linger_close(int fd)
{
	struct timeval tv = { .tv_sec = 1 };
	char junk[4096];

	shutdown(fd, SHUT_WR);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (recv(fd, junk, sizeof(junk), 0) > 0)
		;
	close(fd);
}

static void reset_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	/* Give the bytes already written time to leave before the RST discards the rest. */
	usleep(100 * 1000);
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static const char *reason(int code)
{
	switch (code) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Whatever";
	}
}

static int send_head(int fd, const struct request *rq, int code, const char *extra,
		     long long clen)
{
	char h[512];
	int n = snprintf(h, sizeof(h), "HTTP/1.1 %d %s\r\nServer: ferry-test-origin\r\n%s",
			 code, reason(code), extra ? extra : "");

	if (clen >= 0)
		n += snprintf(h + n, sizeof(h) - (size_t)n, "Content-Length: %lld\r\n", clen);
	if (!rq->keep_alive)
		n += snprintf(h + n, sizeof(h) - (size_t)n, "Connection: close\r\n");
	n += snprintf(h + n, sizeof(h) - (size_t)n, "\r\n");
	return write_all(fd, h, (size_t)n);
}

static int send_simple(int fd, const struct request *rq, int code, const char *body, size_t n)
{
	if (send_head(fd, rq, code, "Content-Type: text/plain\r\n", (long long)n) < 0)
		return -1;
	if (strcmp(rq->method, "HEAD") == 0)
		return 0;
	return write_all(fd, body, n);
}

static int send_chunked(int fd, const struct request *rq, unsigned long long n)
{
	static const size_t sizes[] = { 1, 10, 100, 1000, 4096, 7, 16384, 3, 65536, 333 };
	unsigned long long off = 0;
	unsigned i = 0;
	char line[64];

	if (send_head(fd, rq, 200, "Transfer-Encoding: chunked\r\n", -1) < 0)
		return -1;
	if (strcmp(rq->method, "HEAD") == 0)
		return 0;
	while (off < n) {
		size_t k = sizes[i++ % (sizeof(sizes) / sizeof(sizes[0]))];

		if (k > n - off)
			k = (size_t)(n - off);
		/* Alternate hex case: both are valid and the proxy must accept both. */
		snprintf(line, sizeof(line), i % 2 ? "%zx\r\n" : "%zX\r\n", k);
		if (write_str(fd, line) < 0)
			return -1;
		while (k > 0) {
			size_t s = (size_t)(off % 26);
			size_t m = k < sizeof(pattern) - s ? k : sizeof(pattern) - s;

			if (write_all(fd, pattern + s, m) < 0)
				return -1;
			off += m;
			k -= m;
		}
		if (write_str(fd, "\r\n") < 0)
			return -1;
	}
	return write_str(fd, "0\r\n\r\n");
}

struct raw {
	const char *name;
	const char *text;
	size_t len;           /* 0: strlen(text) */
	int reset;            /* close with RST after writing */
};

#define RAW(n, t) { n, t, sizeof(t) - 1, 0 }
#define RAW_RST(n, t) { n, t, sizeof(t) - 1, 1 }

static const struct raw raws[] = {
	RAW("cl_te", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
	    "Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
	RAW("double_cl", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
	    "Connection: close\r\n\r\nhello!"),
	RAW("cl_bad", "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\nConnection: close\r\n\r\nhello"),
	RAW("obs_fold", "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n"
	    "Connection: close\r\n\r\nok"),
	RAW("space_colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\nConnection: close\r\n\r\nok"),
	RAW("nul_field", "HTTP/1.1 200 OK\r\nX-Nul: a\0b\r\nContent-Length: 2\r\n"
	    "Connection: close\r\n\r\nok"),
	RAW("bare_cr", "HTTP/1.1 200 OK\r\nX-Cr: a\rb\r\nContent-Length: 2\r\n"
	    "Connection: close\r\n\r\nok"),
	RAW("te_gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\nok"),
	RAW("te_chunked_gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n"
	    "Connection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
	RAW("bad_chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
	    "\r\nzz\r\nhello\r\n0\r\n\r\n"),
	RAW("chunk_overflow", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
	    "Connection: close\r\n\r\n10000000000000000001\r\nhello\r\n0\r\n\r\n"),
	RAW("bad_status", "HTTP/1.1 20 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
	RAW("not_http", "hello\r\n\r\n"),
	RAW("http10", "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited"),
	RAW("continue", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "Connection: close\r\n\r\nok"),
	RAW("status_4digit", "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
	RAW("status_alpha", "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
	RAW("status_none", "HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
	RAW("http2", "HTTP/2.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
	RAW("icy", "ICY 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
	RAW("bare_lf", "HTTP/1.1 200 OK\nContent-Length: 2\nConnection: close\n\nok"),
	RAW("cl_list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\nConnection: close\r\n\r\nok!"),
	RAW("cl_signed", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\nConnection: close\r\n\r\nok"),
	RAW("cl_vt", "HTTP/1.1 200 OK\r\nContent-Length: 2\v\r\nConnection: close\r\n\r\nok"),
	RAW("cl_same_list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nConnection: close\r\n\r\nok"),
	RAW("cl_dup_same", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n"
	    "Connection: close\r\n\r\nok"),
	RAW("te_xchunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\nConnection: close\r\n"
	    "\r\n2\r\nok\r\n0\r\n\r\n"),
	RAW("te_twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
	    "Connection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
	RAW("bad_name", "HTTP/1.1 200 OK\r\nX Bad: a\r\nContent-Length: 2\r\nConnection: close\r\n"
	    "\r\nok"),
	RAW("fold_first", "HTTP/1.1 200 OK\r\n X-First: a\r\nContent-Length: 2\r\n"
	    "Connection: close\r\n\r\nok"),
	RAW("empty", ""),
	RAW("switch_unnamed", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\nwhat is this"),
	RAW("no_content_cl", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"),
	RAW("no_content_te", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n"
	    "Connection: close\r\n\r\n"),
	RAW("continue_framed", "HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n"
	    "HTTP/1.1 103 Early Hints\r\nTransfer-Encoding: chunked\r\nLink: </a>\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
	RAW("conn_te", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
	    "Connection: transfer-encoding, close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
	RAW("conn_cl", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: content-length, close\r\n"
	    "\r\nhello"),
	RAW_RST("reset_head", "HTTP/1.1 200 OK\r\nContent-Le"),
	RAW_RST("reset_chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		"5\r\nhello\r\n5\r\nwor"),
	RAW_RST("reset_close", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
		"a close-delimited body cut by a reset"),
	RAW_RST("reset_body", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaa"),
};

/* A head of more than 70 KiB, in 1000-byte fields, with a valid body after it. */
static int send_huge_head(int fd)
{
	char field[1024];

	if (write_str(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n") < 0)
		return -1;
	memset(field, 'x', sizeof(field));
	for (int i = 0; i < 72; i++) {
		int n = snprintf(field, sizeof(field), "X-Fill-%02d: ", i);

		field[n] = 'x';
		memcpy(field + 998, "\r\n", 2);
		if (write_all(fd, field, 1000) < 0)
			return -1;
	}
	return write_str(fd, "\r\nok");
}

/* 200 small fields: more than any sane field limit, in a head of only a few KiB. */
static int send_many_fields(int fd)
{
	char field[64];

	if (write_str(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n") < 0)
		return -1;
	for (int i = 0; i < 200; i++) {
		snprintf(field, sizeof(field), "X-F%d: %d\r\n", i, i);
		if (write_str(fd, field) < 0)
			return -1;
	}
	return write_str(fd, "\r\nok");
}

/* Returns 1 to keep the connection, 0 to close it (already closed when it says so). */
static int serve_raw(int fd, const char *name)
{
	if (strcmp(name, "huge_head") == 0 || strcmp(name, "many_fields") == 0) {
		if (name[0] == 'h')
			send_huge_head(fd);
		else
			send_many_fields(fd);
		linger_close(fd);
		return 0;
	}
	for (size_t i = 0; i < sizeof(raws) / sizeof(raws[0]); i++) {
		if (strcmp(raws[i].name, name) != 0)
			continue;
		write_all(fd, raws[i].text, raws[i].len);
		if (raws[i].reset)
			reset_close(fd);
		else
			linger_close(fd);
		return 0;
	}
	return -1;
}

static int path_num(const char *path, const char *prefix, unsigned long long *n)
{
	size_t pl = strlen(prefix);
	char *end;

	if (strncmp(path, prefix, pl) != 0 || path[pl] < '0' || path[pl] > '9')
		return 0;
	*n = strtoull(path + pl, &end, 10);
	return *end == '\0';
}

static void *serve_http(void *arg)
{
	int fd = (int)(intptr_t)arg;
	unsigned long serial = atomic_fetch_add(&conn_serial, 1) + 1;
	unsigned long nreq = 0;
	struct rbuf rb = { .fd = fd };
	struct request rq;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (;;) {
		int r = read_request(&rb, &rq);

		if (r <= 0)
			break;
		nreq++;
		/* NUL-terminated: routes look into it with strcasestr */
		char *head = malloc(rq.head_len + 1);

		if (!head)
			break;
		memcpy(head, rb.data, rq.head_len);
		head[rq.head_len] = '\0';
		rbuf_consume(&rb, rq.head_len);

		char *q = strchr(rq.path, '?');

		if (q)
			*q = '\0';

		int has_body = rq.chunked || rq.clen > 0;

		if (has_body && rq.expect_continue && rq.minor >= 1 &&
		    write_str(fd, "HTTP/1.1 100 Continue\r\n\r\n") < 0) {
			free(head);
			break;
		}
		struct body_sink sink = {
			.collect = strcmp(rq.path, "/echo") == 0,
			.fnv = 14695981039346656037ULL,
			.is_pattern = 1,
		};

		unsigned long long early;
		if (path_num(rq.path, "/early/", &early)) {
			/* answer before reading the request body (a 413 during an upload), then
			 * read and drop the body while closing, as a careful server does */
			rq.keep_alive = 0;
			if (send_head(fd, &rq, 413, "Content-Type: text/plain\r\n", (long long)early) == 0)
				write_pattern(fd, early);
			free(head);
			linger_close(fd);
			goto closed;
		}
		if (read_body(&rb, &rq, &sink) < 0) {
			free(sink.data);
			free(head);
			break;
		}

		unsigned long long n;
		int ok = 0, keep = rq.keep_alive;
		int head_only = strcmp(rq.method, "HEAD") == 0;
		char small[128];

		if (path_num(rq.path, "/len/", &n) || path_num(rq.path, "/big/", &n)) {
			ok = send_head(fd, &rq, 200, "Content-Type: text/plain\r\n", (long long)n);
			if (ok == 0 && !head_only)
				ok = write_pattern(fd, n);
		} else if (path_num(rq.path, "/chunked/", &n)) {
			ok = send_chunked(fd, &rq, n);
		} else if (path_num(rq.path, "/close/", &n)) {
			rq.keep_alive = 0;
			ok = send_head(fd, &rq, 200, "Content-Type: text/plain\r\n", -1);
			if (ok == 0 && !head_only)
				ok = write_pattern(fd, n);
			keep = 0;
		} else if (path_num(rq.path, "/status/", &n)) {
			if (n < 100 || n > 999)
				ok = send_simple(fd, &rq, 400, "bad code\n", 9);
			else if (n < 200 || n == 204 || n == 304)
				ok = send_head(fd, &rq, (int)n, NULL, -1);
			else
				ok = send_head(fd, &rq, (int)n, NULL, 0);
		} else if (strcmp(rq.path, "/headers") == 0 || strcmp(rq.path, "*") == 0) {
			ok = send_simple(fd, &rq, 200, head, rq.head_len);
		} else if (strcmp(rq.path, "/echo") == 0) {
			if (sink.too_big)
				ok = send_simple(fd, &rq, 500, "too big\n", 8);
			else
				ok = send_simple(fd, &rq, 200, sink.data ? sink.data : "", sink.len);
		} else if (strcmp(rq.path, "/sink") == 0) {
			int k = snprintf(small, sizeof(small), "%llu %d %016llx", sink.total,
					 sink.is_pattern, sink.fnv);

			ok = send_simple(fd, &rq, 200, small, (size_t)k);
		} else if (strcmp(rq.path, "/conn") == 0) {
			int k = snprintf(small, sizeof(small), "%lu %lu", serial, nreq);

			ok = send_simple(fd, &rq, 200, small, (size_t)k);
		} else if (path_num(rq.path, "/sleep/", &n)) {
			struct timespec ts = { .tv_sec = (time_t)(n / 1000),
					       .tv_nsec = (long)(n % 1000) * 1000000 };

			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
			ok = send_simple(fd, &rq, 200, "ok", 2);
		} else if (strncmp(rq.path, "/raw/", 5) == 0) {
			free(sink.data);
			free(head);
			if (serve_raw(fd, rq.path + 5) == 0)
				goto closed;
			ok = send_simple(fd, &rq, 404, "no such raw\n", 12);
			head = NULL;
			sink.data = NULL;
		} else if (strcmp(rq.path, "/ws") == 0) {
			/* an upgrade to an echo protocol: 101, then every byte comes back */
			if (strcasestr(head, "\nupgrade: websocket\r\n") == NULL ||
			    strcasestr(head, "\nconnection: upgrade\r\n") == NULL) {
				ok = send_simple(fd, &rq, 426, "upgrade required\n", 17);
			} else if (write_str(fd, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
						 "Connection: Upgrade\r\n\r\n") == 0) {
				char buf[16384];
				ssize_t got;
				if (rb.len > 0 && write_all(fd, rb.data, rb.len) < 0)
					rb.len = 0;
				rb.len = 0;
				while ((got = recv(fd, buf, sizeof(buf), 0)) > 0)
					if (write_all(fd, buf, (size_t)got) < 0)
						break;
				shutdown(fd, SHUT_WR);
			}
			keep = 0;
		} else if (strcmp(rq.path, "/dropsecond") == 0 ||
			   strcmp(rq.path, "/dropsecond_rst") == 0) {
			if (nreq > 1) {
				free(sink.data);
				free(head);
				if (rq.path[11] == '_')
					reset_close(fd);
				else
					linger_close(fd);
				goto closed;
			}
			ok = send_simple(fd, &rq, 200, "first", 5);
		} else if (path_num(rq.path, "/idleclose/", &n)) {
			struct timeval tv = { .tv_sec = (time_t)(n / 1000),
					      .tv_usec = (suseconds_t)(n % 1000) * 1000 };

			/* the next read_request fails after n ms of silence: then we close */
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			ok = send_simple(fd, &rq, 200, "idle", 4);
		} else if (path_num(rq.path, "/cut/", &n) || path_num(rq.path, "/cut_rst/", &n)) {
			/* a long body that ends early: ferry must not let it look whole */
			ok = send_head(fd, &rq, 200, "Content-Type: text/plain\r\n", 2 * (long long)n);
			if (ok == 0)
				ok = write_pattern(fd, n);
			if (ok == 0 && strncmp(rq.path, "/cut_rst/", 9) == 0) {
				struct linger lg = { 1, 0 };
				setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			}
			keep = 0;
			ok = -1;
		} else if (strcmp(rq.path, "/stall_body") == 0) {
			char junk[4096];

			ok = send_head(fd, &rq, 200, "Content-Type: text/plain\r\n", 1000);
			if (ok == 0)
				ok = write_pattern(fd, 100);
			while (ok == 0 && recv(fd, junk, sizeof(junk), 0) > 0)
				;
			keep = 0;
			ok = -1;
		} else if (strcmp(rq.path, "/stall") == 0) {
			char junk[4096];

			while (recv(fd, junk, sizeof(junk), 0) > 0)
				;
			keep = 0;
			ok = -1;
		} else {
			ok = send_simple(fd, &rq, 404, "not found\n", 10);
		}
		free(sink.data);
		free(head);
		if (ok < 0 || !keep)
			break;
	}
	linger_close(fd);
closed:
	free(rb.data);
	return NULL;
}

static void *serve_echo(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[65536];
	ssize_t r;

	for (;;) {
		r = recv(fd, buf, sizeof(buf), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || write_all(fd, buf, (size_t)r) < 0)
			break;
	}
	/* EOF from the peer: echo the half-close back, after everything it sent. */
	if (r == 0)
		shutdown(fd, SHUT_WR);
	close(fd);
	return NULL;
}

struct listener {
	int fd;
	void *(*serve)(void *);
};

static void *accept_loop(void *arg)
{
	struct listener *l = arg;

	for (;;) {
		int c = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		pthread_t t;
		pthread_attr_t at;

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				usleep(10 * 1000);
				continue;
			}
			perror("origin: accept");
			exit(1);
		}
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 256 * 1024);
		if (pthread_create(&t, &at, l->serve, (void *)(intptr_t)c) != 0)
			close(c);
		pthread_attr_destroy(&at);
	}
	return NULL;
}

static int listen_on(int port, int *bound)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	socklen_t sl = sizeof(sa);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		close(fd);
		return -1;
	}
	*bound = ntohs(sa.sin_port);
	return fd;
}

static int parse_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return *s && !*end && v >= 0 && v <= 65535 ? (int)v : -1;
}

int main(int argc, char **argv)
{
	int port = 0, echo_port = 0, opt;
	static struct listener http, echo;
	pthread_t t;

	while ((opt = getopt(argc, argv, "p:e:")) != -1) {
		switch (opt) {
		case 'p':
			port = parse_port(optarg);
			break;
		case 'e':
			echo_port = parse_port(optarg);
			break;
		default:
			port = -1;
		}
		if (port < 0 || echo_port < 0) {
			fprintf(stderr, "usage: origin [-p PORT] [-e ECHOPORT]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (char)('a' + i % 26);

	http.serve = serve_http;
	echo.serve = serve_echo;
	http.fd = listen_on(port, &port);
	echo.fd = listen_on(echo_port, &echo_port);
	if (http.fd < 0 || echo.fd < 0) {
		perror("origin: listen");
		return 3;
	}
	if (pthread_create(&t, NULL, accept_loop, &echo) != 0) {
		perror("origin: pthread_create");
		return 3;
	}
	printf("%d %d\n", port, echo_port);
	fflush(stdout);
	accept_loop(&http);
	return 0;
}
