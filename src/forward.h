/* forward.h - rewriting heads on their way through: the request to the origin in
 * origin-form, the response back to the client, hop-by-hop fields removed, Via added.
 * One pass from the parsed head into the output buffer; no allocation. */
#ifndef FERRY_FORWARD_H
#define FERRY_FORWARD_H

#include <stddef.h>
#include <sys/types.h>

#include "http_parse.h"

/* Is field name n hop-by-hop for this message: one of the fixed hop-by-hop fields
 * (Connection, Proxy-Connection, Keep-Alive, TE, Trailer, Upgrade, Proxy-Authorization,
 * Proxy-Authenticate for requests only) or named in a Connection field of h? */
int forward_is_hop_field(const struct http_head *h, struct http_slice n);

/* Write the request head for the origin into out[0..cap): "METHOD PATH HTTP/1.1", Host from
 * the target, the client's end-to-end fields, "Via: 1.1 via_name" ("Via: 1.0" for an
 * HTTP/1.0 request). upgrade: keep Upgrade and send "Connection: upgrade". max_forwards >= 0:
 * send Max-Forwards with this value instead of the client's. Returns the length, or -1 when
 * cap is too small. */
ssize_t forward_request_head(const struct http_head *h, const struct http_target *t,
			     const char *via_name, int upgrade, long long max_forwards, char *out,
			     size_t cap);

/* What forward_head_to_absolute inserted, so that forward_head_from_absolute can take it out. */
struct forward_abs {
	size_t target_at, target_len; /* "http://HOST" before the path */
	size_t star;                  /* 1: it replaced the "*" of an OPTIONS */
	size_t extra_at, extra_len;   /* the extra field line after the request line */
};

/* Turn a head written by forward_request_head (origin-form, Host on the second line) into
 * the absolute form an HTTP parent proxy expects: "METHOD http://HOST/PATH HTTP/1.1", with
 * extra (a CRLF-terminated field line such as the parent's Proxy-Authorization; NULL for
 * none) right after the request line. Edits head[0..*len) in place within cap. FERRY_OK, or
 * FERRY_ERR when cap is too small or the head is not one forward_request_head wrote. */
int forward_head_to_absolute(char *head, size_t *len, size_t cap, const char *extra,
			     struct forward_abs *undo);
/* Bytes forward_head_to_absolute needs beyond the head (an upper bound). */
size_t forward_absolute_growth(const char *head, size_t len, const char *extra);
/* Undo forward_head_to_absolute (for another parent, or a direct retry). */
void forward_head_from_absolute(char *head, size_t *len, const struct forward_abs *undo);

/* Write "CONNECT host:port HTTP/1.1" for a parent proxy: Host, extra (NULL or a CRLF-terminated
 * field line), Via. host without brackets (ip6: add them). Returns the length, or -1 when cap
 * is too small. */
ssize_t forward_connect_head(const char *host, int ip6, unsigned port, const char *extra,
			     const char *via_name, char *out, size_t cap);

/* Max-Forwards of a TRACE or OPTIONS request (RFC 9110 section 7.6.2): -1 when absent or the
 * method is another one, -2 when malformed, else the value (capped). */
long long forward_max_forwards(const struct http_head *h);

/* The body of ferry's own answer to TRACE: the request head as received, minus credentials
 * (Authorization, Proxy-Authorization, Cookie). Returns the length, or -1 if cap is too small. */
ssize_t forward_trace_body(const struct http_head *h, char *out, size_t cap);

/* How the response body travels to the client. */
enum forward_resp_mode {
	FORWARD_RESP_AS_IS = 0, /* framing kept (Content-Length, chunked, none) */
	FORWARD_RESP_DECHUNK,   /* chunked decoded, close-delimited (HTTP/1.0 client) */
};

/* Write the response head for the client. client_close: ferry will close the client
 * connection after this response ("Connection: close"); keepalive_10: the client is HTTP/1.0
 * with keep-alive ("Connection: keep-alive"); upgrade: a 101 whose Upgrade and
 * "Connection: upgrade" are kept. Returns the length, or -1 when cap is too small. */
ssize_t forward_response_head(const struct http_head *h, enum forward_resp_mode mode,
			      int client_close, int keepalive_10, int upgrade,
			      const char *via_name, char *out, size_t cap);

/* A complete response ferry makes itself: status line, Content-Type, Content-Length,
 * Connection: close, extra_headers (CRLF-terminated lines, may be NULL), body. Returns the
 * length, or 0 when it does not fit cap. */
size_t forward_local_response(int status, const char *content_type, const char *extra_headers,
			      const char *body, size_t blen, char *out, size_t cap);
/* A complete error response: status, reason phrase, a text/plain body "ferry: MSG\n",
 * Connection: close. Returns the length (truncating msg to fit cap). */
size_t forward_error_response(int status, const char *msg, const char *extra_headers, char *out,
			      size_t cap);
/* The reason phrase ferry uses for status. */
const char *forward_reason(int status);

#endif
