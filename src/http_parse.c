/* http_parse.c - strict, incremental HTTP/1.x parsing (RFC 9110, RFC 9112).
 *
 * The head parsers work in two steps. A cheap scan finds the end of the head (the first
 * CRLFCRLF), rescanning only new bytes on each call and enforcing the size limits while the
 * head is still incomplete. Once the blank line is there, one pass over the head validates
 * and slices it. Because the scan has proven that the head ends in CRLFCRLF, the inner loops
 * of the second pass stop at a CR or LF without bounds checks.
 *
 * Strictness is the point: a proxy that reads a message differently from the origin behind
 * it (or the client in front of it) is a request-smuggling hole, so every shape the RFC does
 * not allow is refused rather than guessed at. */
#include "http_parse.h"

#include <arpa/inet.h>
#include <string.h>

#include "status.h"

/* Character classes, computed at compile time into one table. */
#define C_TCHAR 0x01  /* RFC 9110 tchar */
#define C_VALUE 0x02  /* field-value byte: HTAB, SP, VCHAR, obs-text */
#define C_TARGET 0x04 /* request-target byte: VCHAR (0x21..0x7e) */
#define C_HEX 0x08    /* HEXDIG */
#define C_REG 0x10    /* reg-name byte other than '%': ALPHA DIGIT - . _ ~ */
#define C_QDTEXT 0x20 /* qdtext: HTAB SP 0x21 0x23-0x5b 0x5d-0x7e obs-text */
#define C_DIGIT 0x40

#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_TCHAR(c)                                                                       \
	(IS_ALPHA(c) || IS_DIGIT(c) || (c) == '!' || (c) == '#' || (c) == '$' ||           \
	 (c) == '%' || (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || \
	 (c) == '.' || (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define IS_VCHAR(c) ((c) >= 0x21 && (c) <= 0x7e)
#define IS_VALUE(c) ((c) == '\t' || (c) == ' ' || IS_VCHAR(c) || (c) >= 0x80)
#define IS_HEX(c) (IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define IS_REG(c) (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~')
#define IS_QDTEXT(c) (IS_VALUE(c) && (c) != '"' && (c) != '\\')

#define CLS(c)                                                                            \
	((IS_TCHAR(c) ? C_TCHAR : 0) | (IS_VALUE(c) ? C_VALUE : 0) |                      \
	 (IS_VCHAR(c) ? C_TARGET : 0) | (IS_HEX(c) ? C_HEX : 0) | (IS_REG(c) ? C_REG : 0) | \
	 (IS_QDTEXT(c) ? C_QDTEXT : 0) | (IS_DIGIT(c) ? C_DIGIT : 0))
#define R4(b) CLS(b), CLS((b) + 1), CLS((b) + 2), CLS((b) + 3)
#define R16(b) R4(b), R4((b) + 4), R4((b) + 8), R4((b) + 12)
#define R64(b) R16(b), R16((b) + 16), R16((b) + 32), R16((b) + 48)

static const unsigned char cls[256] = { R64(0), R64(64), R64(128), R64(192) };

#define HAS(c, k) (cls[(unsigned char)(c)] & (k))
#define OWS(c) ((c) == ' ' || (c) == '\t')

int http_is_tchar(unsigned char c)
{
	return HAS(c, C_TCHAR) != 0;
}

static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

int http_slice_eq(struct http_slice s, const char *lw)
{
	size_t i;

	for (i = 0; i < s.len; i++)
		if (lw[i] == '\0' || lower((unsigned char)s.p[i]) != (unsigned char)lw[i])
			return 0;
	return lw[i] == '\0';
}

int http_method_is(struct http_slice method, const char *name)
{
	size_t n = strlen(name);

	return method.len == n && memcmp(method.p, name, n) == 0;
}

/* By length, then the first letter: at most one string comparison per field. */
enum http_field_id http_field_id(struct http_slice n)
{
	const char *name;
	enum http_field_id id;
	int c = n.len ? lower((unsigned char)n.p[0]) : 0;

#define IS(s, i) (name = (s), id = (i))
	switch (n.len) {
	case 2: IS("te", HF_TE); break;
	case 3: IS("via", HF_VIA); break;
	case 4: IS("host", HF_HOST); break;
	case 6: c == 'c' ? IS("cookie", HF_COOKIE) : IS("expect", HF_EXPECT); break;
	case 7: c == 't' ? IS("trailer", HF_TRAILER) : IS("upgrade", HF_UPGRADE); break;
	case 10: c == 'c' ? IS("connection", HF_CONNECTION) : IS("keep-alive", HF_KEEP_ALIVE); break;
	case 12: IS("max-forwards", HF_MAX_FORWARDS); break;
	case 13: IS("authorization", HF_AUTHORIZATION); break;
	case 14: IS("content-length", HF_CONTENT_LENGTH); break;
	case 16: IS("proxy-connection", HF_PROXY_CONNECTION); break;
	case 17: IS("transfer-encoding", HF_TRANSFER_ENCODING); break;
	case 18: IS("proxy-authenticate", HF_PROXY_AUTHENTICATE); break;
	case 19: IS("proxy-authorization", HF_PROXY_AUTHORIZATION); break;
	default: return HF_OTHER;
	}
#undef IS
	return c == name[0] && http_slice_eq(n, name) ? id : HF_OTHER;
}

/* Calls fn on each element of a comma-separated list, OWS trimmed, empty elements skipped
 * (RFC 9110 section 5.6.1 says recipients accept them). Stops early when fn returns non-zero
 * and passes that on. */
typedef int (*list_fn)(struct http_slice elem, void *arg);

static int list_each(struct http_slice v, list_fn fn, void *arg)
{
	const char *p = v.p, *end = v.p + v.len;

	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma ? comma : end;
		int rc;

		while (p < e && OWS(*p))
			p++;
		while (e > p && OWS(e[-1]))
			e--;
		if (e > p && (rc = fn((struct http_slice){ p, (size_t)(e - p) }, arg)) != 0)
			return rc;
		p = comma ? comma + 1 : end;
	}
	return 0;
}

static int list_has_cb(struct http_slice elem, void *arg)
{
	return http_slice_eq(elem, arg);
}

int http_list_has(struct http_slice value, const char *lower_token)
{
	return list_each(value, list_has_cb, (void *)lower_token);
}

static int is_token(struct http_slice s)
{
	size_t i;

	for (i = 0; i < s.len; i++)
		if (!HAS(s.p[i], C_TCHAR))
			return 0;
	return s.len > 0;
}

/* ---- heads ------------------------------------------------------------------------------ */

static int fail(struct http_head *h, int status, const char *why)
{
	h->error_status = status;
	h->error = why;
	return FERRY_ERR;
}

/* Cheap checks on the first bytes, so that binary garbage (a TLS ClientHello sent to the
 * plain port, say) is refused at once instead of waiting for a line end that never comes.
 * Looks at 16 bytes at most, so trickled input stays linear. */
static int head_prefix(const char *buf, size_t len, int response, struct http_head *h)
{
	size_t i, n = len < 16 ? len : 16;

	if (response) {
		if (memcmp(buf, "HTTP/", n < 5 ? n : 5) != 0)
			return fail(h, 502, "malformed status line");
		return FERRY_OK;
	}
	if (n > 0 && buf[0] == ' ')
		return fail(h, 400, "missing method");
	for (i = 0; i < n && buf[i] != ' '; i++)
		if (!HAS(buf[i], C_TCHAR))
			return fail(h, 400, "malformed request line");
	return FERRY_OK;
}

static int parse_version(const unsigned char *p, size_t n, int *version);

/* The request line buf[0..lf], lf pointing at its LF. Called as soon as the line is complete
 * (from head_find) and again on the whole head: a line that can never start a valid head
 * ("GET /" of HTTP/0.9, "GET http://h/ HTTP/3") is refused at once, not after the client gave
 * up waiting for an answer or the request_header deadline. */
static int parse_request_line(const char *buf, const unsigned char *lf,
			      const struct http_limits *lim, struct http_head *h)
{
	const unsigned char *p = (const unsigned char *)buf, *t;
	size_t line;
	int rc;

	line = (size_t)(lf - p) - 1;
	if (line > lim->request_line)
		return fail(h, 414, "request line too long");

	while (HAS(*p, C_TCHAR))
		p++;
	if (p == (const unsigned char *)buf)
		return fail(h, 400, *p == ' ' ? "missing method" : "malformed request line");
	if (*p != ' ')
		return fail(h, 400, "malformed request line");
	h->method = (struct http_slice){ buf, (size_t)((const char *)p - buf) };
	t = ++p;
	while (HAS(*p, C_TARGET))
		p++;
	if (p == t || *p != ' ')
		return fail(h, 400, "malformed request line");
	h->target = (struct http_slice){ (const char *)t, (size_t)(p - t) };
	p++;
	rc = parse_version(p, (size_t)(lf - 1 - p), &h->version);
	if (rc != 0)
		return fail(h, rc, rc == 505 ? "unsupported HTTP version" : "malformed request line");
	if (lf[-1] != '\r')
		return fail(h, 400, "bare LF");
	return FERRY_OK;
}

/* Finds the end of the head. Every LF must follow a CR (a bare LF is refused as soon as it
 * is seen); looking back from each LF means no overlap with the previous call is needed. */
static int head_find(const char *buf, size_t len, size_t *scanned, const struct http_limits *lim,
		     int response, struct http_head *h, size_t *head_len)
{
	size_t end = len < lim->head_size ? len : lim->head_size;
	size_t i = *scanned < end ? *scanned : end;

	if (head_prefix(buf, len, response, h) != FERRY_OK)
		return FERRY_ERR;
	/* True on exactly one call of a growing buffer, so this memchr runs once. When
	 * head_size is the smaller limit, a growing buffer meets it first: 431 below. */
	if (*scanned < lim->request_line + 2 && len >= lim->request_line + 2 &&
	    lim->request_line + 2 <= lim->head_size && !memchr(buf, '\n', lim->request_line + 2))
		return fail(h, response ? 502 : 414,
			    response ? "status line too long" : "request line too long");

	/* Has an earlier call seen the request line's LF? Past request_line + 1 bytes it must
	 * have (or the 414 above would have fired), so this memchr is short and stops early. */
	int line_seen = response || (i > 0 && (i > lim->request_line + 1 || memchr(buf, '\n', i)));

	while (i < end) {
		const char *lf = memchr(buf + i, '\n', end - i);
		size_t k;

		if (!lf) {
			i = end;
			break;
		}
		k = (size_t)(lf - buf);
		if (k == 0 || buf[k - 1] != '\r')
			return fail(h, 400, "bare LF");
		if (!line_seen) {
			line_seen = 1;
			if (parse_request_line(buf, (const unsigned char *)lf, lim, h) != FERRY_OK)
				return FERRY_ERR;
		}
		if (k >= 3 && buf[k - 2] == '\n' && buf[k - 3] == '\r') {
			*head_len = k + 1;
			*scanned = k + 1;
			return FERRY_OK;
		}
		i = k + 1;
	}
	*scanned = i;
	/* A head of head_size bytes without its end can only grow past the limit; refusing it
	 * now also spares a caller whose buffer holds exactly head_size bytes. */
	if (len >= lim->head_size)
		return fail(h, 431, "head too large");
	return FERRY_AGAIN;
}

/* What the field pass learns about framing. */
struct framing {
	unsigned ncl, nte, nhost;
	unsigned conn_tokens; /* in all Connection and Proxy-Connection fields */
	int te_chunked;     /* chunked seen (it must stay the last coding) */
	int response;
};

/* 1*DIGIT, at most 19 digits and at most 2^63-1 (what a next hop reading a signed 64-bit
 * length, as nginx's off_t does, reads the same), as a list whose elements must agree. */
static int parse_content_length(struct http_slice v, uint64_t *out)
{
	const char *p = v.p, *end = v.p + v.len;
	uint64_t first = 0;
	int have = 0;

	for (;;) {
		const char *start = p;
		uint64_t x = 0;

		while (p < end && IS_DIGIT(*p)) {
			if (p - start == 19)
				return -1;
			x = x * 10 + (uint64_t)(*p - '0');
			p++;
		}
		if (p == start || x > (uint64_t)INT64_MAX || (have && x != first))
			return -1;
		first = x;
		have = 1;
		while (p < end && OWS(*p))
			p++;
		if (p == end) {
			*out = first;
			return 0;
		}
		if (*p++ != ',')
			return -1;
		while (p < end && OWS(*p))
			p++;
	}
}

/* One Transfer-Encoding field value; repeated fields continue the same list. Unlike other
 * lists, empty elements are refused: nothing about framing is left to interpretation. */
static int parse_transfer_encoding(struct http_slice v, struct framing *fr, struct http_head *h)
{
	static const char *const known[] = { "gzip", "x-gzip", "deflate", "compress", "x-compress" };
	const char *p = v.p, *end = v.p + v.len;

	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma ? comma : end;
		struct http_slice c;
		size_t i;

		while (p < e && OWS(*p))
			p++;
		while (e > p && OWS(e[-1]))
			e--;
		c = (struct http_slice){ p, (size_t)(e - p) };
		if (!is_token(c))
			return fail(h, 400, "malformed Transfer-Encoding");
		if (fr->te_chunked)
			return fail(h, 400, "chunked is not the last transfer coding");
		if (http_slice_eq(c, "chunked")) {
			fr->te_chunked = 1;
		} else {
			for (i = 0; i < sizeof known / sizeof known[0]; i++)
				if (http_slice_eq(c, known[i]))
					break;
			if (i == sizeof known / sizeof known[0])
				return fail(h, 501, "unknown transfer coding");
		}
		if (!comma)
			return FERRY_OK;
		p = comma + 1;
	}
}

/* Each Connection token may name a field to drop, so forwarding a head compares every field
 * with every token: tens of thousands of tokens in one head cost milliseconds of CPU for a
 * single request. Clients send one to three. */
#define HTTP_CONNECTION_TOKENS_MAX 64

struct conn_arg {
	unsigned flags;
	int proxy;  /* Proxy-Connection: "upgrade" there means nothing */
	int bad;
	unsigned *tokens; /* counted across the head's fields */
};

static int connection_cb(struct http_slice e, void *arg)
{
	struct conn_arg *a = arg;

	if (!is_token(e)) {
		a->bad = 1;
		return 1;
	}
	if (++*a->tokens > HTTP_CONNECTION_TOKENS_MAX) {
		a->bad = 2;
		return 1;
	}
	if (http_slice_eq(e, "close"))
		a->flags |= HTTP_F_CONN_CLOSE;
	else if (http_slice_eq(e, "keep-alive"))
		a->flags |= HTTP_F_CONN_KEEPALIVE;
	else if (!a->proxy && http_slice_eq(e, "upgrade"))
		a->flags |= HTTP_F_CONN_UPGRADE;
	return 0;
}

/* The fields that matter to framing and connection handling, found by length first. */
static int field_semantics(const struct http_field *f, struct framing *fr, struct http_head *h)
{
	struct conn_arg ca = { 0, 0, 0, &fr->conn_tokens };
	uint64_t cl;

	switch (f->id) {
	case HF_HOST:
		if (!fr->response) {
			if (++fr->nhost > 1)
				return fail(h, 400, "duplicate Host");
			h->flags |= HTTP_F_HAS_HOST;
		}
		break;
	case HF_EXPECT:
		if (http_list_has(f->value, "100-continue"))
			h->flags |= HTTP_F_EXPECT_CONTINUE;
		break;
	case HF_UPGRADE:
		h->flags |= HTTP_F_HAS_UPGRADE;
		break;
	case HF_CONNECTION:
	case HF_PROXY_CONNECTION:
		ca.proxy = f->id == HF_PROXY_CONNECTION;
		list_each(f->value, connection_cb, &ca);
		if (ca.bad == 2)
			return fail(h, 400, "too many Connection options");
		if (ca.bad)
			return fail(h, 400, "malformed Connection");
		h->flags |= ca.flags;
		break;
	case HF_CONTENT_LENGTH:
		if (parse_content_length(f->value, &cl) != 0)
			return fail(h, 400, "malformed Content-Length");
		if (fr->ncl++ > 0 && cl != h->content_length)
			return fail(h, 400, "conflicting Content-Length");
		h->content_length = cl;
		break;
	case HF_TRANSFER_ENCODING:
		fr->nte++;
		return parse_transfer_encoding(f->value, fr, h);
	default:
		break;
	}
	return FERRY_OK;
}

/* Field lines from p up to and including the blank line that ends the head. */
/* Eight bytes at a time while all are plain value bytes (SP to '~', or obs-text), as nearly
 * every byte of a field value is; the byte loop after it judges the rest. Never reads at or
 * past end. */
static const unsigned char *skip_plain_value(const unsigned char *p, const unsigned char *end)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;

	while (end - p >= 8) {
		uint64_t x, del;

		memcpy(&x, p, 8);
		del = x ^ (0x7f * ones);
		/* any byte below 0x20 (bytes >= 0x80 never set their bit), or equal to 0x7f */
		if ((((x - 0x20 * ones) & ~x) | ((del - ones) & ~del)) & highs)
			break;
		p += 8;
	}
	return p;
}

static int parse_fields(const unsigned char *p, const unsigned char *end,
			const struct http_limits *lim, struct framing *fr, struct http_head *h)
{
	for (;;) {
		const unsigned char *name, *v, *ve;
		struct http_field f;

		if (*p == '\r') {
			if (p[1] != '\n')
				return fail(h, 400, "bare CR");
			return FERRY_OK; /* the scan guarantees this is the final CRLF */
		}
		if (OWS(*p))
			return fail(h, 400, "obs-fold not allowed");
		name = p;
		while (HAS(*p, C_TCHAR))
			p++;
		if (*p != ':') {
			if (OWS(*p))
				return fail(h, 400, "whitespace before colon");
			if (*p == '\r' && p[1] != '\n')
				return fail(h, 400, "bare CR");
			if (*p == '\0')
				return fail(h, 400, "NUL in field");
			return fail(h, 400, p == name ? "empty field name" : "invalid field name");
		}
		if (p == name)
			return fail(h, 400, "empty field name");
		f.name = (struct http_slice){ (const char *)name, (size_t)(p - name) };
		p++;
		while (OWS(*p))
			p++;
		v = p;
		p = skip_plain_value(p, end);
		while (HAS(*p, C_VALUE))
			p++;
		if (*p != '\r')
			return fail(h, 400, *p == '\n' ? "bare LF" : *p == '\0' ? "NUL in field" :
				    "invalid field value");
		if (p[1] != '\n')
			return fail(h, 400, "bare CR");
		for (ve = p; ve > v && OWS(ve[-1]); ve--)
			;
		f.value = (struct http_slice){ (const char *)v, (size_t)(ve - v) };
		f.id = http_field_id(f.name);
		p += 2;

		if (h->nfields >= lim->max_fields || !h->fields)
			return fail(h, 431, "too many fields");
		h->fields[h->nfields++] = f;
		if (field_semantics(&f, fr, h) != FERRY_OK)
			return FERRY_ERR;
	}
}

/* "HTTP/1.0" or "HTTP/1.1" -> 0; another "HTTP/x.y" -> 505; anything else -> 400. */
static int parse_version(const unsigned char *p, size_t n, int *version)
{
	if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || !IS_DIGIT(p[5]) || p[6] != '.' ||
	    !IS_DIGIT(p[7]))
		return 400;
	if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
		return 505;
	*version = p[7] == '1' ? 11 : 10;
	return 0;
}

/* Common framing checks once every field is known (RFC 9112 section 6). */
static int check_framing(const struct framing *fr, struct http_head *h)
{
	if (fr->ncl && fr->nte)
		return fail(h, 400, "Content-Length with Transfer-Encoding");
	if (fr->nte && !fr->te_chunked)
		return fail(h, 400, "chunked is not the last transfer coding");
	/* RFC 9112 section 6.1: such framing is faulty, part of it may be a smuggled message. */
	if (fr->nte && h->version == 10)
		return fail(h, 400, "Transfer-Encoding in HTTP/1.0");
	if (fr->nte)
		h->flags |= HTTP_F_HAS_TE;
	if (fr->ncl)
		h->flags |= HTTP_F_HAS_CL;
	return FERRY_OK;
}

static void head_reset(struct http_head *h)
{
	struct http_field *fields = h->fields;

	memset(h, 0, sizeof *h);
	h->fields = fields;
}

int http_parse_request(const char *buf, size_t len, size_t *scanned,
		       const struct http_limits *lim, struct http_head *h)
{
	const unsigned char *p = (const unsigned char *)buf, *lf;
	struct framing fr = { .response = 0 };
	size_t head_len;
	int rc;

	head_reset(h);
	if ((rc = head_find(buf, len, scanned, lim, 0, h, &head_len)) != FERRY_OK)
		return rc;
	h->head_len = head_len;

	lf = memchr(p, '\n', head_len); /* found: the head ends in CRLFCRLF */
	if (parse_request_line(buf, lf, lim, h) != FERRY_OK)
		return FERRY_ERR;

	if (parse_fields(lf + 1, (const unsigned char *)buf + head_len, lim, &fr, h) != FERRY_OK ||
	    check_framing(&fr, h) != FERRY_OK)
		return FERRY_ERR;
	if (h->version == 11 && fr.nhost == 0)
		return fail(h, 400, "missing Host");

	if (fr.nte)
		h->body = HTTP_BODY_CHUNKED;
	else if (fr.ncl && h->content_length > 0)
		h->body = HTTP_BODY_LENGTH;
	else
		h->body = HTTP_BODY_NONE;
	return FERRY_OK;
}

static int parse_response(const char *buf, size_t len, size_t *scanned,
			  const struct http_limits *lim, int request_method_head,
			  int request_was_connect, struct http_head *h)
{
	const unsigned char *p = (const unsigned char *)buf, *lf, *r;
	struct framing fr = { .response = 1 };
	size_t head_len, line;
	int rc;

	head_reset(h);
	if ((rc = head_find(buf, len, scanned, lim, 1, h, &head_len)) != FERRY_OK)
		return rc;
	h->head_len = head_len;

	lf = memchr(p, '\n', head_len);
	line = (size_t)(lf - p) - 1;
	if (line > lim->request_line)
		return fail(h, 502, "status line too long");
	if (line < 12)
		return fail(h, 502, "malformed status line");
	rc = parse_version(p, 8, &h->version);
	if (rc != 0)
		return fail(h, 502, rc == 505 ? "unsupported HTTP version" : "malformed status line");
	if (p[8] != ' ' || !IS_DIGIT(p[9]) || p[9] == '0' || !IS_DIGIT(p[10]) || !IS_DIGIT(p[11]))
		return fail(h, 502, "malformed status line");
	h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	r = p + 12;
	if (*r == ' ')
		r++;
	else if (*r != '\r')
		return fail(h, 502, "malformed status line");
	p = r;
	while (HAS(*p, C_VALUE))
		p++;
	if (p != lf - 1 || *p != '\r')
		return fail(h, 502, *p == '\r' ? "bare CR" : "malformed status line");
	h->reason = (struct http_slice){ (const char *)r, (size_t)(p - r) };

	if (parse_fields(lf + 1, (const unsigned char *)buf + head_len, lim, &fr, h) != FERRY_OK ||
	    check_framing(&fr, h) != FERRY_OK)
		return FERRY_ERR;

	/* RFC 9112 section 6.3, in its order. */
	if (request_method_head || h->status < 200 || h->status == 204 || h->status == 304 ||
	    (request_was_connect && h->status < 300))
		h->body = HTTP_BODY_NONE;
	else if (fr.nte)
		h->body = HTTP_BODY_CHUNKED;
	else if (fr.ncl)
		h->body = h->content_length > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
	else
		h->body = HTTP_BODY_CLOSE;
	return FERRY_OK;
}

int http_parse_response(const char *buf, size_t len, size_t *scanned,
			const struct http_limits *lim, int request_method_head,
			int request_was_connect, struct http_head *h)
{
	int rc = parse_response(buf, len, scanned, lim, request_method_head, request_was_connect, h);

	/* Whatever went wrong upstream, the client is told the gateway failed. */
	if (rc == FERRY_ERR)
		h->error_status = 502;
	return rc;
}

/* ---- request targets -------------------------------------------------------------------- */

static int target_fail(struct http_target *t, int status, const char *why)
{
	t->error_status = status;
	t->error = why;
	return FERRY_ERR;
}

/* Does the host end in a numeric label ("1", "0x7f"; a trailing dot ignored)? Such a host is
 * read as an IPv4 address by browsers (WHATWG URL) and inet_aton, each in its own way: "0177.0.0.1"
 * is 127.0.0.1 to them and 177.0.0.1 to c-ares, "127.1" and "2130706433" are loopback to them
 * and unknown names to c-ares. */
static int host_ends_numeric(const char *p, size_t n)
{
	const char *end = p + n, *l;

	if (n && end[-1] == '.')
		end--;
	for (l = end; l > p && l[-1] != '.'; l--)
		;
	if (l == end)
		return 0;
	if (end - l >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X')) {
		for (l += 2; l < end; l++)
			if (!IS_HEX(*l))
				return 0;
		return 1;
	}
	for (; l < end; l++)
		if (!IS_DIGIT(*l))
			return 0;
	return 1;
}

/* Exactly four decimal parts 0..255 without leading zeros: the one IPv4 notation every
 * parser reads the same way. */
static int host_is_dotted_quad(const char *p, size_t n)
{
	const char *end = p + n, *part;
	unsigned parts = 0, v;

	while (p < end) {
		for (v = 0, part = p; p < end && IS_DIGIT(*p) && p - part < 4; p++)
			v = v * 10 + (unsigned)(*p - '0');
		if (p == part || p - part > 3 || v > 255 || (p - part > 1 && *part == '0'))
			return 0;
		if (++parts > 4)
			return 0;
		if (p < end && (*p++ != '.' || p == end))
			return 0;
	}
	return parts == 4;
}

/* host [":" port] filling the end of [p, end). need_port: authority-form (CONNECT). */
static int parse_authority(const char *p, const char *end, int need_port, struct http_target *t)
{
	const char *q;
	unsigned port = 0;
	int colons = 0;

	if (memchr(p, '@', (size_t)(end - p)))
		return target_fail(t, 400, "userinfo not allowed in target");
	if (p < end && *p == '[') {
		for (q = p + 1; q < end && (HAS(*q, C_HEX) || *q == ':' || *q == '.'); q++)
			colons += *q == ':';
		if (q == end || *q != ']' || colons == 0)
			return target_fail(t, 400, "malformed IPv6 literal");
		/* hex digits and colons in any order are not an address yet ("[:::::1]"): refuse
		 * them here rather than hand them to the resolver as a name (a 502) */
		{
			char lit[INET6_ADDRSTRLEN];
			unsigned char a6[16];
			size_t n = (size_t)(q - p - 1);

			if (n >= sizeof lit)
				return target_fail(t, 400, "malformed IPv6 literal");
			memcpy(lit, p + 1, n);
			lit[n] = '\0';
			if (inet_pton(AF_INET6, lit, a6) != 1)
				return target_fail(t, 400, "malformed IPv6 literal");
		}
		t->host = (struct http_slice){ p + 1, (size_t)(q - p - 1) };
		t->host_is_ip6 = 1;
		p = q + 1;
	} else {
		/* "CONNECT ::1:443" (openssl s_client -proxy writes IPv6 so): two colons outside
		 * brackets are an IPv6 address RFC 3986 wants as "[::1]:443"; say so rather than
		 * "empty host" or "invalid port" */
		const char *colon = memchr(p, ':', (size_t)(end - p));

		if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1)))
			return target_fail(t, 400, "IPv6 address without brackets ([addr]:port)");
		for (q = p; q < end && *q != ':'; q++) {
			if (HAS(*q, C_REG))
				continue;
			if (*q != '%' || end - q < 3 || !HAS(q[1], C_HEX) || !HAS(q[2], C_HEX))
				return target_fail(t, 400, "invalid host");
			q += 2;
		}
		t->host = (struct http_slice){ p, (size_t)(q - p) };
		if (host_ends_numeric(t->host.p, t->host.len) &&
		    !host_is_dotted_quad(t->host.p, t->host.len))
			return target_fail(t, 400, "ambiguous IPv4 address");
		p = q;
	}
	if (t->host.len == 0)
		return target_fail(t, 400, "empty host");
	t->port = 80;
	if (p == end || (*p == ':' && p + 1 == end)) {
		/* RFC 3986 allows an empty port: it means the default */
		if (need_port)
			return target_fail(t, 400, "missing port");
		return FERRY_OK;
	}
	if (*p != ':')
		return target_fail(t, 400, "invalid host");
	for (p++; p < end; p++) {
		if (!IS_DIGIT(*p))
			return target_fail(t, 400, "invalid port");
		port = port * 10 + (unsigned)(*p - '0');
		if (port > 65535)
			return target_fail(t, 400, "invalid port");
	}
	if (port == 0)
		return target_fail(t, 400, "invalid port");
	t->port = (uint16_t)port;
	t->port_given = 1;
	return FERRY_OK;
}

int http_parse_target(const char *p, size_t len, int connect, struct http_target *t)
{
	const char *end = p + len, *s, *a;
	struct http_slice scheme;
	size_t i;

	memset(t, 0, sizeof *t);
	for (i = 0; i < len; i++) {
		if (!HAS(p[i], C_TARGET))
			return target_fail(t, 400, "invalid byte in target");
		if (p[i] == '#')
			return target_fail(t, 400, "fragment in target");
	}
	if (connect) {
		t->form = HTTP_TARGET_AUTHORITY;
		return parse_authority(p, end, 1, t);
	}

	t->form = HTTP_TARGET_ABSOLUTE;
	if (len == 0)
		return target_fail(t, 400, "empty target");
	if (*p == '/')
		return target_fail(t, 400, "origin-form target sent to a proxy");
	if (len == 1 && *p == '*')
		return target_fail(t, 400, "asterisk-form target sent to a proxy");
	if (!IS_ALPHA(*p))
		return target_fail(t, 400, "malformed target");
	for (s = p + 1; s < end && (IS_ALPHA(*s) || IS_DIGIT(*s) || *s == '+' || *s == '-' ||
				    *s == '.'); s++)
		;
	if (s == end || *s != ':')
		return target_fail(t, 400, "malformed target");
	scheme = (struct http_slice){ p, (size_t)(s - p) };
	if (http_slice_eq(scheme, "https"))
		return target_fail(t, 501, "ferry does not originate TLS");
	if (!http_slice_eq(scheme, "http"))
		return target_fail(t, 501, "unsupported scheme");
	if (end - s < 3 || s[1] != '/' || s[2] != '/')
		return target_fail(t, 400, "malformed target");

	a = s + 3;
	for (s = a; s < end && *s != '/' && *s != '?'; s++)
		;
	if (parse_authority(a, s, 0, t) != FERRY_OK)
		return FERRY_ERR;
	if (s == end) {
		t->path = (struct http_slice){ "/", 1 };
		t->path_absent = 1;
	} else if (*s == '?') {
		/* "http://host?q": an empty path and a query, valid absolute-form (RFC 9112
		 * section 3.2.2; Python's urllib sends it). The origin gets "/?q": the slice is
		 * "?q" and forward_request_head writes the "/" */
		t->path = (struct http_slice){ s, (size_t)(end - s) };
		t->path_slash = 1;
	} else {
		t->path = (struct http_slice){ s, (size_t)(end - s) };
	}
	return FERRY_OK;
}

/* ---- chunked transfer coding ------------------------------------------------------------ */

enum {
	CH_ERROR = -2,
	CH_DONE = -1,
	CH_SIZE = 0,    /* hex digits of chunk-size */
	CH_BWS,         /* whitespace after size or ext: only more of it or ';' may follow */
	CH_NAME0,       /* after ';': BWS, then an ext name */
	CH_NAME,        /* in ext name */
	CH_NAME_BWS,    /* whitespace after ext name: '=' or ';' must follow */
	CH_VAL0,        /* after '=': BWS, then token or quoted-string */
	CH_VAL,         /* in token value */
	CH_QS,          /* in quoted-string */
	CH_QP,          /* after a backslash in quoted-string */
	CH_QEND,        /* after the closing quote */
	CH_SIZE_LF,     /* CR of the size line seen */
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TR0,         /* start of a trailer line */
	CH_TR_NAME,
	CH_TR_VALUE,
	CH_TR_LF,
	CH_END_LF       /* CR of the final blank line seen */
};

#define CH_MAX_LINE 4096
#define CH_MAX_TRAILER 16384

void http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof *c);
	c->state = CH_SIZE;
}

/* Is the trailer field name just read one that must not be in a trailer section? Framing
 * (Content-Length, Transfer-Encoding) or routing (Host) read there by a next hop that merges
 * trailers into the header would reframe or reroute the message after ferry checked it, and
 * hop-by-hop fields there would pass the hop they belong to (RFC 9110 sections 6.5.1, 7.6.1). */
static int trailer_forbidden(const struct http_chunked *c)
{
	if (c->tr_name_len > sizeof c->tr_name)
		return 0; /* longer than every such name */
	enum http_field_id id = http_field_id((struct http_slice){ c->tr_name, c->tr_name_len });
	return id == HF_CONTENT_LENGTH || id == HF_TRANSFER_ENCODING || id == HF_HOST ||
	       http_field_is_hop(id);
}

int http_field_is_hop(enum http_field_id id)
{
	switch (id) {
	case HF_TE:
	case HF_TRAILER:
	case HF_UPGRADE:
	case HF_CONNECTION:
	case HF_KEEP_ALIVE:
	case HF_PROXY_CONNECTION:
	case HF_PROXY_AUTHENTICATE:
	case HF_PROXY_AUTHORIZATION:
		return 1;
	default:
		return 0;
	}
}

/* One framing byte. Returns 0 to go on, 1 when the message is complete, -1 on error. */
static int chunk_byte(struct http_chunked *c, unsigned char ch)
{
	int s = c->state;

	if (s >= CH_TR0) {
		if (++c->trailer_len > CH_MAX_TRAILER)
			goto err_trailer_long;
	} else if (s <= CH_QEND && ch != '\r') { /* the line's length, CRLF excluded */
		if (++c->line_len > CH_MAX_LINE)
			goto err_ext_long;
	}

	switch (s) {
	case CH_SIZE:
		if (HAS(ch, C_HEX)) {
			/* at most 2^63-1, as for Content-Length */
			if (++c->digits > 16 || (c->remaining >> 59) != 0)
				goto err_size;
			c->remaining = c->remaining << 4 |
				       (uint64_t)(IS_DIGIT(ch) ? ch - '0' : (ch | 0x20) - 'a' + 10);
			return 0;
		}
		if (c->digits == 0)
			goto err_size;
		if (ch == ';')
			c->state = CH_NAME0;
		else if (OWS(ch))
			c->state = CH_BWS;
		else if (ch == '\r')
			c->state = CH_SIZE_LF;
		else
			goto err_size;
		return 0;
	case CH_BWS:
		if (ch == ';')
			c->state = CH_NAME0;
		else if (!OWS(ch))
			goto err_ext;
		return 0;
	case CH_NAME0:
		if (HAS(ch, C_TCHAR))
			c->state = CH_NAME;
		else if (!OWS(ch))
			goto err_ext;
		return 0;
	case CH_NAME:
	case CH_VAL:
	case CH_QEND:
		if (s != CH_QEND && HAS(ch, C_TCHAR))
			return 0;
		if (ch == '=' && s == CH_NAME)
			c->state = CH_VAL0;
		else if (ch == ';')
			c->state = CH_NAME0;
		else if (OWS(ch))
			c->state = s == CH_NAME ? CH_NAME_BWS : CH_BWS;
		else if (ch == '\r')
			c->state = CH_SIZE_LF;
		else
			goto err_ext;
		return 0;
	case CH_NAME_BWS:
		if (ch == '=')
			c->state = CH_VAL0;
		else if (ch == ';')
			c->state = CH_NAME0;
		else if (!OWS(ch))
			goto err_ext;
		return 0;
	case CH_VAL0:
		if (ch == '"')
			c->state = CH_QS;
		else if (HAS(ch, C_TCHAR))
			c->state = CH_VAL;
		else if (!OWS(ch))
			goto err_ext;
		return 0;
	case CH_QS:
		if (ch == '"')
			c->state = CH_QEND;
		else if (ch == '\\')
			c->state = CH_QP;
		else if (!HAS(ch, C_QDTEXT))
			goto err_ext;
		return 0;
	case CH_QP:
		if (!HAS(ch, C_VALUE))
			goto err_ext;
		c->state = CH_QS;
		return 0;
	case CH_SIZE_LF:
		if (ch != '\n')
			goto err_cr;
		c->state = c->remaining ? CH_DATA : CH_TR0;
		return 0;
	case CH_DATA_CR:
		if (ch != '\r')
			goto err_data_crlf;
		c->state = CH_DATA_LF;
		return 0;
	case CH_DATA_LF:
		if (ch != '\n')
			goto err_data_crlf;
		c->state = CH_SIZE;
		c->digits = 0;
		c->line_len = 0;
		return 0;
	case CH_TR0:
		if (ch == '\r') {
			c->state = CH_END_LF;
		} else if (HAS(ch, C_TCHAR)) {
			c->state = CH_TR_NAME;
			c->tr_name[0] = (char)ch;
			c->tr_name_len = 1;
		} else {
			c->error = OWS(ch) ? "obs-fold in trailer" : "malformed trailer field";
			return -1;
		}
		return 0;
	case CH_TR_NAME:
		if (ch == ':') {
			if (trailer_forbidden(c))
				goto err_trailer_forbidden;
			c->state = CH_TR_VALUE;
		} else if (!HAS(ch, C_TCHAR)) {
			goto err_trailer;
		} else {
			if (c->tr_name_len < sizeof c->tr_name)
				c->tr_name[c->tr_name_len] = (char)ch;
			if (c->tr_name_len <= sizeof c->tr_name)
				c->tr_name_len++;
		}
		return 0;
	case CH_TR_VALUE:
		if (ch == '\r')
			c->state = CH_TR_LF;
		else if (!HAS(ch, C_VALUE))
			goto err_trailer;
		return 0;
	case CH_TR_LF:
		if (ch != '\n')
			goto err_cr;
		c->state = CH_TR0;
		return 0;
	case CH_END_LF:
		if (ch != '\n')
			goto err_cr;
		c->state = CH_DONE;
		return 1;
	}
	c->error = "chunked decoder misused";
	return -1;

err_size:
	c->error = "malformed chunk size";
	return -1;
err_ext:
	c->error = "malformed chunk extension";
	return -1;
err_ext_long:
	c->error = "chunk size line too long";
	return -1;
err_cr:
	c->error = "bare CR in chunked framing";
	return -1;
err_data_crlf:
	c->error = "missing CRLF after chunk data";
	return -1;
err_trailer:
	c->error = "malformed trailer field";
	return -1;
err_trailer_long:
	c->error = "trailer section too long";
	return -1;
err_trailer_forbidden:
	c->error = "framing, routing or connection field in trailer";
	return -1;
}

int http_chunked_parse(struct http_chunked *c, const char *buf, size_t len, size_t *consumed,
		       size_t *data_off, size_t *data_len)
{
	size_t i = 0;

	*consumed = 0;
	*data_off = 0;
	*data_len = 0;
	if (c->state == CH_DONE)
		return FERRY_OK;
	if (c->state == CH_ERROR)
		return FERRY_ERR;

	while (i < len) {
		int rc;

		if (c->state == CH_DATA) {
			size_t n = len - i;

			if (n > c->remaining)
				n = (size_t)c->remaining;
			*data_off = i;
			*data_len = n;
			c->remaining -= n;
			if (c->remaining == 0)
				c->state = CH_DATA_CR;
			*consumed = i + n;
			return FERRY_AGAIN;
		}
		rc = chunk_byte(c, (unsigned char)buf[i]);
		if (rc < 0) {
			c->state = CH_ERROR;
			*consumed = i;
			return FERRY_ERR;
		}
		i++;
		if (rc > 0) {
			*consumed = i;
			return FERRY_OK;
		}
	}
	*consumed = i;
	return FERRY_AGAIN;
}
