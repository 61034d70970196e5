/* forward.c - head rewriting (RFC 9110 section 7.6: hop-by-hop fields, Via). */
#include <stdio.h>
#include <string.h>

#include "forward.h"

/* Fields that only mean something on one hop; Connection may name more. */
static const char *const hop_fields[] = {
	"connection", "proxy-connection", "keep-alive", "te", "trailer", "upgrade",
	"proxy-authorization", "proxy-authenticate", NULL
};

int forward_is_hop_field(const struct http_head *h, struct http_slice n)
{
	for (int i = 0; hop_fields[i]; i++)
		if (http_slice_eq(n, hop_fields[i]))
			return 1;
	/* fields listed in Connection: compare against each token of each Connection field */
	for (unsigned i = 0; i < h->nfields; i++) {
		const struct http_field *f = &h->fields[i];
		if (!http_slice_eq(f->name, "connection") && !http_slice_eq(f->name, "proxy-connection"))
			continue;
		const char *p = f->value.p, *end = p + f->value.len;
		while (p < end) {
			while (p < end && (*p == ',' || *p == ' ' || *p == '\t'))
				p++;
			const char *s = p;
			while (p < end && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			if ((size_t)(p - s) == n.len && n.len > 0 && strncasecmp(s, n.p, n.len) == 0)
				return 1;
		}
	}
	return 0;
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

static void put_field(struct out *o, const struct http_field *f)
{
	put_slice(o, f->name);
	put(o, ": ", 2);
	put_slice(o, f->value);
	put(o, "\r\n", 2);
}

static void put_via(struct out *o, const char *via_name)
{
	puts_(o, "Via: 1.1 ");
	puts_(o, via_name);
	put(o, "\r\n", 2);
}

ssize_t forward_request_head(const struct http_head *h, const struct http_target *t,
			     const char *via_name, int upgrade, char *out, size_t cap)
{
	struct out o = { out, out + cap, 0 };
	char port[8];

	put_slice(&o, h->method);
	put(&o, " ", 1);
	put_slice(&o, t->path);
	puts_(&o, " HTTP/1.1\r\nHost: ");
	if (t->host_is_ip6)
		put(&o, "[", 1);
	put_slice(&o, t->host);
	if (t->host_is_ip6)
		put(&o, "]", 1);
	if (t->port != 80) {
		int n = snprintf(port, sizeof(port), ":%u", (unsigned)t->port);
		put(&o, port, (size_t)n);
	}
	put(&o, "\r\n", 2);
	for (unsigned i = 0; i < h->nfields; i++) {
		const struct http_field *f = &h->fields[i];
		if (http_slice_eq(f->name, "host"))
			continue;
		if (upgrade && http_slice_eq(f->name, "upgrade")) {
			put_field(&o, f);
			continue;
		}
		if (forward_is_hop_field(h, f->name))
			continue;
		put_field(&o, f);
	}
	if (upgrade)
		puts_(&o, "Connection: upgrade\r\n");
	put_via(&o, via_name);
	put(&o, "\r\n", 2);
	return o.overflow ? -1 : (ssize_t)(o.p - out);
}

ssize_t forward_response_head(const struct http_head *h, enum forward_resp_mode mode,
			      int client_close, int keepalive_10, int upgrade,
			      const char *via_name, char *out, size_t cap)
{
	struct out o = { out, out + cap, 0 };
	char status[16];
	int n = snprintf(status, sizeof(status), "HTTP/1.1 %03d ", h->status);
	put(&o, status, (size_t)n);
	put_slice(&o, h->reason);
	put(&o, "\r\n", 2);
	for (unsigned i = 0; i < h->nfields; i++) {
		const struct http_field *f = &h->fields[i];
		if (upgrade && http_slice_eq(f->name, "upgrade")) {
			put_field(&o, f);
			continue;
		}
		if (forward_is_hop_field(h, f->name))
			continue;
		if (mode == FORWARD_RESP_DECHUNK && http_slice_eq(f->name, "transfer-encoding"))
			continue;
		put_field(&o, f);
	}
	if (upgrade)
		puts_(&o, "Connection: upgrade\r\n");
	else if (client_close)
		puts_(&o, "Connection: close\r\n");
	else if (keepalive_10)
		puts_(&o, "Connection: keep-alive\r\n");
	put_via(&o, via_name);
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

size_t forward_error_response(int status, const char *msg, const char *extra_headers, char *out,
			      size_t cap)
{
	char body[512];
	int blen = snprintf(body, sizeof(body), "ferry: %s\n", msg);
	if (blen < 0)
		blen = 0;
	if ((size_t)blen >= sizeof(body))
		blen = sizeof(body) - 1;
	int n = snprintf(out, cap,
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: text/plain\r\n"
			 "Content-Length: %d\r\n"
			 "Connection: close\r\n"
			 "%s"
			 "\r\n%.*s",
			 status, forward_reason(status), blen, extra_headers ? extra_headers : "",
			 blen, body);
	if (n < 0)
		return 0;
	return (size_t)n < cap ? (size_t)n : cap - 1;
}
