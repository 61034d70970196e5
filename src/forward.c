/* forward.c - head rewriting (RFC 9110 section 7.6: hop-by-hop fields, Via). */
#include <stdio.h>
#include <string.h>

#include "forward.h"
#include "status.h"

static int is_connection(const struct http_field *f)
{
	return f->id == HF_CONNECTION || f->id == HF_PROXY_CONNECTION;
}

/* Is n one of the tokens listed in the Connection (or Proxy-Connection) fields of h? */
static int named_in_connection(const struct http_head *h, struct http_slice n)
{
	/* "Connection: content-length" must not strip the framing ferry relays the body by:
	 * the next hop would read the body as another message (request smuggling). Host is
	 * regenerated anyway. */
	enum http_field_id id = http_field_id(n);
	if (n.len == 0 || id == HF_CONTENT_LENGTH || id == HF_TRANSFER_ENCODING || id == HF_HOST)
		return 0;
	for (unsigned i = 0; i < h->nfields; i++) {
		const struct http_field *f = &h->fields[i];
		if (!is_connection(f))
			continue;
		const char *p = f->value.p, *end = p + f->value.len;
		while (p < end) {
			while (p < end && (*p == ',' || *p == ' ' || *p == '\t'))
				p++;
			const char *st = p;
			while (p < end && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			if ((size_t)(p - st) == n.len && strncasecmp(st, n.p, n.len) == 0)
				return 1;
		}
	}
	return 0;
}

/* Do the Connection fields name anything beyond close, keep-alive and upgrade (which are
 * dropped anyway)? Almost never: then no field needs the token scan. */
static int connection_names_fields(const struct http_head *h)
{
	for (unsigned i = 0; i < h->nfields; i++) {
		const struct http_field *f = &h->fields[i];
		if (!is_connection(f))
			continue;
		const char *p = f->value.p, *end = p + f->value.len;
		while (p < end) {
			while (p < end && (*p == ',' || *p == ' ' || *p == '\t'))
				p++;
			const char *st = p;
			while (p < end && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			struct http_slice t = { st, (size_t)(p - st) };
			if (t.len && !http_slice_eq(t, "close") && !http_slice_eq(t, "keep-alive") &&
			    !http_slice_eq(t, "upgrade"))
				return 1;
		}
	}
	return 0;
}

int forward_is_hop_field(const struct http_head *h, struct http_slice n)
{
	return http_field_is_hop(http_field_id(n)) || named_in_connection(h, n);
}

/* The per-message form: scan Connection tokens only when they name fields. */
static int is_hop(const struct http_head *h, int named, const struct http_field *f)
{
	return http_field_is_hop(f->id) || (named && named_in_connection(h, f->name));
}

struct out {
	char *p, *end;
	int overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->overflow || (size_t)(o->end - o->p) < n) {
		o->overflow = 1;
		return;
	}
	memcpy(o->p, s, n);
	o->p += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_slice(struct out *o, struct http_slice s)
{
	put(o, s.p, s.len);
}

/* Decimal by hand: snprintf cost a tenth of the instructions spent per request. */
static void put_uint(struct out *o, unsigned long long v)
{
	char d[20], *e = d + sizeof(d), *q = e;

	do
		*--q = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	put(o, q, (size_t)(e - q));
}

static void put_field(struct out *o, const struct http_field *f)
{
	put_slice(o, f->name);
	put(o, ": ", 2);
	put_slice(o, f->value);
	put(o, "\r\n", 2);
}

/* Content-Length, once: "5, 5" or two equal fields (valid, the parser checked they agree)
 * become one plain value, so the next hop cannot read the length differently. */
static void put_content_length(struct out *o, const struct http_head *h, int *done)
{
	if (*done)
		return;
	puts_(o, "Content-Length: ");
	put_uint(o, h->content_length);
	put(o, "\r\n", 2);
	*done = 1;
}

/* version: of the message as ferry received it (10 or 11): Via's received-protocol (RFC 9110
 * section 7.6.3), so that the next hop knows an HTTP/1.0 party is on the way */
static void put_via(struct out *o, int version, const char *via_name)
{
	puts_(o, version == 10 ? "Via: 1.0 " : "Via: 1.1 ");
	puts_(o, via_name);
	put(o, "\r\n", 2);
}

ssize_t forward_request_head(const struct http_head *h, const struct http_target *t,
			     const char *via_name, int upgrade, long long max_forwards, char *out,
			     size_t cap)
{
	struct out o = { out, out + cap, 0 };

	put_slice(&o, h->method);
	put(&o, " ", 1);
	/* "OPTIONS http://h HTTP/1.1" asks about the server, not its "/": the last proxy sends the
	 * asterisk-form (RFC 9112 section 3.2.4); to a parent it becomes "http://h" again */
	if (t->path_absent && http_method_is(h->method, "OPTIONS")) {
		put(&o, "*", 1);
	} else {
		if (t->path_slash) /* "http://h?q" */
			put(&o, "/", 1);
		put_slice(&o, t->path);
	}
	puts_(&o, " HTTP/1.1\r\nHost: ");
	if (t->host_is_ip6)
		put(&o, "[", 1);
	put_slice(&o, t->host);
	if (t->host_is_ip6)
		put(&o, "]", 1);
	if (t->port != 80) {
		put(&o, ":", 1);
		put_uint(&o, t->port);
	}
	put(&o, "\r\n", 2);
	int cl_done = 0;
	int named = connection_names_fields(h);
	for (unsigned i = 0; i < h->nfields; i++) {
		const struct http_field *f = &h->fields[i];
		if (f->id == HF_HOST)
			continue;
		if (f->id == HF_CONTENT_LENGTH) {
			put_content_length(&o, h, &cl_done);
			continue;
		}
		if (upgrade && f->id == HF_UPGRADE) {
			put_field(&o, f);
			continue;
		}
		if (is_hop(h, named, f))
			continue;
		if (max_forwards >= 0 && f->id == HF_MAX_FORWARDS) {
			puts_(&o, "Max-Forwards: ");
			put_uint(&o, (unsigned long long)max_forwards);
			put(&o, "\r\n", 2);
			continue;
		}
		put_field(&o, f);
	}
	if (upgrade)
		puts_(&o, "Connection: upgrade\r\n");
	put_via(&o, h->version, via_name);
	put(&o, "\r\n", 2);
	return o.overflow ? -1 : (ssize_t)(o.p - out);
}

/* The Host value on the second line of a head forward_request_head wrote. */
static int head_host(const char *head, size_t len, const char **v, size_t *vl, size_t *line_end)
{
	const char *eol = memchr(head, '\r', len);
	if (eol == NULL || (size_t)(eol - head) + 8 > len || memcmp(eol, "\r\nHost: ", 8) != 0)
		return FERRY_ERR;
	const char *hv = eol + 8;
	const char *he = memchr(hv, '\r', len - (size_t)(hv - head));
	if (he == NULL)
		return FERRY_ERR;
	*v = hv;
	*vl = (size_t)(he - hv);
	*line_end = (size_t)(eol - head);
	return FERRY_OK;
}

size_t forward_absolute_growth(const char *head, size_t len, const char *extra)
{
	const char *v;
	size_t vl, le;
	if (head_host(head, len, &v, &vl, &le) != FERRY_OK)
		return 0;
	return 7 + vl + (extra ? strlen(extra) : 0);
}

int forward_head_to_absolute(char *head, size_t *len, size_t cap, const char *extra,
			     struct forward_abs *undo)
{
	const char *v;
	size_t vl, le, n = *len;
	memset(undo, 0, sizeof(*undo));
	if (head_host(head, n, &v, &vl, &le) != FERRY_OK)
		return FERRY_ERR;
	const char *sp = memchr(head, ' ', le);
	if (sp == NULL)
		return FERRY_ERR;
	size_t el = extra ? strlen(extra) : 0;
	if (n + 7 + vl + el > cap)
		return FERRY_ERR;
	char host[300];
	if (vl >= sizeof(host))
		return FERRY_ERR;
	memcpy(host, v, vl);
	size_t at = (size_t)(sp - head) + 1;
	/* "*" (an OPTIONS about the server) becomes "http://HOST" with no path, as the client
	 * sent it; any other target is a path that "http://HOST" goes in front of */
	undo->star = at + 1 < n && head[at] == '*' && head[at + 1] == ' ';
	memmove(head + at + 7 + vl, head + at + undo->star, n - at - undo->star);
	memcpy(head + at, "http://", 7);
	memcpy(head + at + 7, host, vl);
	n += 7 + vl - undo->star;
	undo->target_at = at;
	undo->target_len = 7 + vl;
	if (el > 0) {
		size_t x = le + 7 + vl - undo->star + 2; /* after the request line's CRLF */
		memmove(head + x + el, head + x, n - x);
		memcpy(head + x, extra, el);
		n += el;
		undo->extra_at = x;
		undo->extra_len = el;
	}
	*len = n;
	return FERRY_OK;
}

void forward_head_from_absolute(char *head, size_t *len, const struct forward_abs *undo)
{
	size_t n = *len;
	if (undo->extra_len > 0) {
		memmove(head + undo->extra_at, head + undo->extra_at + undo->extra_len,
			n - undo->extra_at - undo->extra_len);
		n -= undo->extra_len;
	}
	if (undo->target_len > 0) {
		memmove(head + undo->target_at + undo->star, head + undo->target_at + undo->target_len,
			n - undo->target_at - undo->target_len);
		if (undo->star)
			head[undo->target_at] = '*';
		n -= undo->target_len - undo->star;
	}
	*len = n;
}

ssize_t forward_connect_head(const char *host, int ip6, unsigned port, const char *extra,
			     const char *via_name, char *out, size_t cap)
{
	char hp[300];
	int k = snprintf(hp, sizeof(hp), ip6 ? "[%s]:%u" : "%s:%u", host, port);
	if (k < 0 || (size_t)k >= sizeof(hp))
		return -1;
	struct out o = { out, out + cap, 0 };
	puts_(&o, "CONNECT ");
	puts_(&o, hp);
	puts_(&o, " HTTP/1.1\r\nHost: ");
	puts_(&o, hp);
	puts_(&o, "\r\n");
	if (extra)
		puts_(&o, extra);
	put_via(&o, 11, via_name);
	put(&o, "\r\n", 2);
	return o.overflow ? -1 : (ssize_t)(o.p - out);
}

long long forward_max_forwards(const struct http_head *h)
{
	int trace = http_method_is(h->method, "TRACE");
	int options = http_method_is(h->method, "OPTIONS");
	if (!trace && !options)
		return -1;
	for (unsigned i = 0; i < h->nfields; i++) {
		const struct http_field *f = &h->fields[i];
		if (f->id != HF_MAX_FORWARDS)
			continue;
		if (f->value.len == 0)
			return -2;
		long long v = 0;
		for (size_t k = 0; k < f->value.len; k++) {
			char ch = f->value.p[k];
			if (ch < '0' || ch > '9')
				return -2;
			if (v < 1000000000LL)
				v = v * 10 + (ch - '0');
		}
		return v;
	}
	return -1;
}

ssize_t forward_trace_body(const struct http_head *h, char *out, size_t cap)
{
	struct out o = { out, out + cap, 0 };
	put_slice(&o, h->method);
	put(&o, " ", 1);
	put_slice(&o, h->target);
	puts_(&o, h->version == 10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
	for (unsigned i = 0; i < h->nfields; i++) {
		const struct http_field *f = &h->fields[i];
		/* a reflected credential could be read by a script that sent the TRACE */
		if (f->id == HF_AUTHORIZATION || f->id == HF_PROXY_AUTHORIZATION ||
		    f->id == HF_COOKIE)
			continue;
		put_field(&o, f);
	}
	put(&o, "\r\n", 2);
	return o.overflow ? -1 : (ssize_t)(o.p - out);
}

ssize_t forward_response_head(const struct http_head *h, enum forward_resp_mode mode,
			      int client_close, int keepalive_10, int upgrade,
			      const char *via_name, char *out, size_t cap)
{
	struct out o = { out, out + cap, 0 };
	/* the parser guarantees three digits */
	char status[13] = "HTTP/1.1 000 ";
	status[9] = (char)('0' + h->status / 100 % 10);
	status[10] = (char)('0' + h->status / 10 % 10);
	status[11] = (char)('0' + h->status % 10);
	put(&o, status, sizeof(status));
	put_slice(&o, h->reason);
	put(&o, "\r\n", 2);
	int cl_done = 0;
	int named = connection_names_fields(h);
	/* 1xx and 204 have no body whatever their fields say, and a server must not send
	 * Content-Length or Transfer-Encoding with them (RFC 9110 section 8.6, RFC 9112 section
	 * 6.1): relayed, they could make a client look for a body and take the next response
	 * for it. They are dropped, as nginx does for 204. */
	int bodiless = h->status < 200 || h->status == 204;
	for (unsigned i = 0; i < h->nfields; i++) {
		const struct http_field *f = &h->fields[i];
		if (upgrade && f->id == HF_UPGRADE) {
			put_field(&o, f);
			continue;
		}
		if (bodiless && (f->id == HF_CONTENT_LENGTH || f->id == HF_TRANSFER_ENCODING))
			continue;
		if (f->id == HF_CONTENT_LENGTH) {
			put_content_length(&o, h, &cl_done);
			continue;
		}
		if (is_hop(h, named, f))
			continue;
		if (mode == FORWARD_RESP_DECHUNK && f->id == HF_TRANSFER_ENCODING)
			continue;
		put_field(&o, f);
	}
	if (upgrade)
		puts_(&o, "Connection: upgrade\r\n");
	else if (client_close)
		puts_(&o, "Connection: close\r\n");
	else if (keepalive_10)
		puts_(&o, "Connection: keep-alive\r\n");
	put_via(&o, h->version, via_name);
	put(&o, "\r\n", 2);
	return o.overflow ? -1 : (ssize_t)(o.p - out);
}

const char *forward_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 405: return "Method Not Allowed";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 508: return "Loop Detected";
	default: return "Error";
	}
}

size_t forward_local_response(int status, const char *content_type, const char *extra_headers,
			      const char *body, size_t blen, char *out, size_t cap)
{
	int n = snprintf(out, cap,
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: %s\r\n"
			 "Content-Length: %zu\r\n"
			 "Connection: close\r\n"
			 "%s"
			 "\r\n",
			 status, forward_reason(status), content_type, blen,
			 extra_headers ? extra_headers : "");
	if (n < 0 || (size_t)n + blen > cap)
		return 0;
	memcpy(out + n, body, blen);
	return (size_t)n + blen;
}

size_t forward_error_response(int status, const char *msg, const char *extra_headers, char *out,
			      size_t cap)
{
	char body[512];
	int blen = snprintf(body, sizeof(body), "ferry: %s\n", msg);
	if (blen < 0)
		blen = 0;
	if ((size_t)blen >= sizeof(body)) {
		blen = sizeof(body) - 1;
		body[blen - 1] = '\n';
	}
	return forward_local_response(status, "text/plain", extra_headers, body, (size_t)blen, out, cap);
}
