/* http_parse.h - strict, incremental HTTP/1.x parsing (RFC 9110, RFC 9112).
 *
 * Pure functions over a byte buffer: no I/O, no allocation, no global state. Results are
 * slices into the caller's buffer. Each function returns FERRY_OK / FERRY_ERR / FERRY_AGAIN
 * (src/status.h); on FERRY_ERR the output struct holds the HTTP status a client should get
 * (400, 414, 431, 501, 505 for requests; responses use 502 whatever the cause) and a short
 * static reason string (no user bytes in it). */
#ifndef FERRY_HTTP_PARSE_H
#define FERRY_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

struct http_slice {
	const char *p;
	size_t len;
};

/* The field names ferry acts on, recognised once by the parser so that the forwarding code
 * compares integers, not strings, for every field of every message (as h2o's tokens do). */
enum http_field_id {
	HF_OTHER = 0,
	HF_AUTHORIZATION,
	HF_CONNECTION,
	HF_CONTENT_LENGTH,
	HF_COOKIE,
	HF_EXPECT,
	HF_HOST,
	HF_KEEP_ALIVE,
	HF_MAX_FORWARDS,
	HF_PROXY_AUTHENTICATE,
	HF_PROXY_AUTHORIZATION,
	HF_PROXY_CONNECTION,
	HF_TE,
	HF_TRAILER,
	HF_TRANSFER_ENCODING,
	HF_UPGRADE,
	HF_VIA
};

struct http_field {
	struct http_slice name;  /* as sent, never empty */
	struct http_slice value; /* leading/trailing SP/HTAB trimmed */
	enum http_field_id id;   /* which known name, case-insensitively; HF_OTHER for the rest */
};

struct http_limits {
	size_t request_line;  /* longest request line (without CRLF) -> 414 beyond it */
	size_t head_size;     /* longest head, CRLFCRLF included -> 431 beyond it */
	unsigned max_fields;  /* most fields -> 431 beyond it (responses: 502) */
};

enum http_body {
	HTTP_BODY_NONE = 0, /* no body bytes follow the head */
	HTTP_BODY_LENGTH,   /* content_length bytes follow */
	HTTP_BODY_CHUNKED,  /* chunked coding follows (Transfer-Encoding's last coding) */
	HTTP_BODY_CLOSE     /* response only: the body ends when the origin closes */
};

/* flags derived from the fields while parsing */
#define HTTP_F_CONN_CLOSE 0x01      /* Connection (or Proxy-Connection) lists "close" */
#define HTTP_F_CONN_KEEPALIVE 0x02  /* Connection (or Proxy-Connection) lists "keep-alive" */
#define HTTP_F_CONN_UPGRADE 0x04    /* Connection lists "upgrade" */
#define HTTP_F_HAS_UPGRADE 0x08     /* an Upgrade field is present */
#define HTTP_F_EXPECT_CONTINUE 0x10 /* Expect: 100-continue (case-insensitive) */
#define HTTP_F_HAS_CL 0x20          /* a valid Content-Length was present */
#define HTTP_F_HAS_TE 0x40          /* a valid Transfer-Encoding was present */
#define HTTP_F_HAS_HOST 0x80        /* a Host field is present (requests) */

struct http_head {
	/* request line */
	struct http_slice method;
	struct http_slice target;
	/* status line */
	int status;                /* 100..999 as sent: three digits */
	struct http_slice reason;  /* may be empty */
	int version;               /* 10 for HTTP/1.0, 11 for HTTP/1.1 */

	/* fields: the caller points fields at an array of max_fields entries */
	struct http_field *fields;
	unsigned nfields;

	size_t head_len;           /* bytes of the head, final CRLF included */
	enum http_body body;
	uint64_t content_length;   /* when body == HTTP_BODY_LENGTH */
	unsigned flags;            /* HTTP_F_* */

	/* on FERRY_ERR */
	int error_status;
	const char *error;         /* static, e.g. "malformed Content-Length" */
};

/* Incremental scan for the end of a head: *scanned counts bytes already searched from an
 * earlier call on the same (growing) buffer (start at 0), so bytes trickled one at a time cost
 * linear time. Request heads: parse buf[0..len) when the blank line has arrived.
 *
 * Returns FERRY_AGAIN while the head is incomplete (and still within limits), FERRY_OK with
 * h filled in, or FERRY_ERR. Strictness, by RFC 9112:
 *  - request line: method is a token; exactly one SP between parts; target is visible ASCII
 *    (no CTL, SP, or bytes >= 0x7f); version "HTTP/1.0" or "HTTP/1.1" (other "HTTP/x.y"
 *    -> 505, anything else -> 400); line longer than lim->request_line -> 414.
 *  - lines end with CRLF; a bare LF or bare CR anywhere -> 400 (the answer is never to guess).
 *  - field name is a token (non-empty); no whitespace before the colon; a line starting with
 *    SP/HTAB (obs-fold, including before the first field) -> 400; value may hold VCHAR,
 *    obs-text, SP and HTAB only (NUL, CR, other CTL -> 400).
 *  - more than lim->max_fields fields, or a head longer than lim->head_size -> 431.
 *  - Content-Length: 1*DIGIT, at most 19 digits; repeated fields or comma lists must all be
 *    the same value (else 400); empty, signed, hex, or any other byte -> 400.
 *  - Transfer-Encoding: comma list of codings (repeated fields join the list); each coding
 *    is one of chunked, gzip, x-gzip, deflate, compress, x-compress (case-insensitive, no
 *    parameters, no quotes); chunked must appear exactly once, as the last coding; else 400
 *    (501 for a well-formed but unknown coding). With Transfer-Encoding in an HTTP/1.0
 *    request -> 400.
 *  - Content-Length and Transfer-Encoding together -> 400.
 *  - body: CHUNKED with TE, LENGTH with CL (NONE when it is 0), else NONE.
 *  - HTTP/1.1 without Host -> 400; more than one Host field -> 400.
 *  - Connection, Proxy-Connection: comma-separated tokens, case-insensitive; sets flags. */
int http_parse_request(const char *buf, size_t len, size_t *scanned,
		       const struct http_limits *lim, struct http_head *h);

/* The same for a response head. request_method_head: the request was HEAD;
 * request_was_connect: the request was CONNECT. Status line: "HTTP/1.x" SP 3DIGIT SP reason
 * (reason may be empty; the SP before it is required by RFC 9112 but its absence is tolerated).
 * Framing, by RFC 9112 section 6.3: NONE for HEAD, 1xx, 204, 304 (and 2xx to CONNECT);
 * otherwise CHUNKED with a valid TE, LENGTH with CL, else CLOSE. Every error is reported with
 * error_status 502. Limits as for requests (the request_line limit bounds the status line). */
int http_parse_response(const char *buf, size_t len, size_t *scanned,
			const struct http_limits *lim, int request_method_head,
			int request_was_connect, struct http_head *h);

/* Case-insensitive comparison of a slice with a NUL-terminated lower-case literal. */
int http_slice_eq(struct http_slice s, const char *lower);
/* Is the method exactly name? Methods are case-sensitive (RFC 9110 section 9.1). */
int http_method_is(struct http_slice method, const char *name);

/* Which of the names in enum http_field_id n is, case-insensitively (HF_OTHER: none). */
enum http_field_id http_field_id(struct http_slice n);
/* Is a field of this name hop-by-hop whatever Connection says: TE, Trailer, Upgrade,
 * Connection, Keep-Alive, Proxy-Connection and the proxy credentials (RFC 9110 section 7.6.1)? */
int http_field_is_hop(enum http_field_id id);
/* Does the comma-separated token list in value contain token (case-insensitive)? */
int http_list_has(struct http_slice value, const char *lower_token);
/* Is c a tchar (RFC 9110 token character)? */
int http_is_tchar(unsigned char c);

/* Request targets. */
enum http_target_form { HTTP_TARGET_ABSOLUTE = 1, HTTP_TARGET_AUTHORITY };

struct http_target {
	enum http_target_form form;
	struct http_slice host;  /* without brackets for IPv6 literals */
	uint16_t port;           /* 80 when absent in absolute-form */
	int host_is_ip6;         /* host was a [bracketed] IPv6 literal */
	int port_given;          /* the target named a port */
	struct http_slice path;  /* absolute-form: path and query, never empty ("/" when absent;
				    the slice then points at a static "/"); "?query" when
				    path_slash is set */
	int path_absent;         /* absolute-form without a path ("http://h"): an OPTIONS to the
				    origin then says "*" (RFC 9112 section 3.2.4) */
	int path_slash;          /* "http://h?q": path is "?q", and "/" goes before it */
	int error_status;
	const char *error;
};

/* Parse a request target. connect: the method was CONNECT, so authority-form (host:port, port
 * required, 1..65535, IPv6 in brackets) is the only form accepted. Otherwise absolute-form:
 * scheme "http" (case-insensitive) -> OK; "https" -> 501 ("ferry does not originate TLS");
 * any other scheme -> 501; origin-form ("/..."), asterisk-form ("*") -> 400; userinfo ("@" in
 * the authority) -> 400; empty host, bad port, bad host characters, a fragment ("#") -> 400.
 * Host: reg-name (ALPHA DIGIT - . _ ~ and %-escapes; no other bytes), IPv4, or [IPv6] with
 * hex digits, ':' and '.' only. Returns FERRY_OK or FERRY_ERR. */
int http_parse_target(const char *p, size_t len, int connect, struct http_target *t);

/* The chunked transfer coding (RFC 9112 section 7.1), decoded incrementally. */
struct http_chunked {
	uint64_t remaining;   /* data bytes left in the current chunk */
	size_t line_len;      /* private: length of the current ext/trailer line */
	size_t trailer_len;   /* private: total trailer bytes */
	const char *error;    /* on FERRY_ERR */
	int state;            /* private */
	unsigned digits;      /* private */
	char tr_name[20];     /* private: the trailer field name being read (its first bytes) */
	uint8_t tr_name_len;  /* private: its length so far, up to sizeof tr_name + 1 (longer) */
};

void http_chunked_init(struct http_chunked *c);
/* Consume a prefix of buf[0..len). Processes framing bytes (sizes, extensions, CRLFs,
 * trailer fields) up to the next chunk data, then at most the data available:
 *   *consumed   bytes of buf used (framing and data), always <= len
 *   *data_off   offset in buf of the data bytes this call consumed
 *   *data_len   how many (0 when this call saw no data)
 * Returns FERRY_OK when the last chunk and trailer section are complete (*consumed stops
 * right after the final CRLF), FERRY_AGAIN when more bytes are needed (call again with the
 * unconsumed rest plus new bytes; each call returns at most one data span, so callers loop
 * while *consumed > 0), FERRY_ERR on malformed input (c->error says why).
 * Strict: chunk-size is 1..16 HEXDIG (17 or more -> error; no "0x", sign or space); after it
 * only BWS ';' chunk-ext or CRLF; chunk-ext names/values are tokens or quoted-strings, at most
 * 4096 bytes per line; CR must be followed by LF; data must be followed by CRLF; trailer
 * fields follow field syntax, at most 16384 bytes in all, and none may be a field about
 * framing, routing or the connection (Content-Length, Transfer-Encoding, Host, Connection,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, Proxy-Authorization,
 * Proxy-Authenticate): RFC 9110 section 6.5.1 forbids sending them there, and the trailer
 * section is relayed as it is, to a next hop that might merge it into the header. */
int http_chunked_parse(struct http_chunked *c, const char *buf, size_t len, size_t *consumed,
		       size_t *data_off, size_t *data_len);
static inline int http_chunked_done(const struct http_chunked *c) { return c->state == -1; }

#endif
