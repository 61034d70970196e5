/* proxyproto.c - the PROXY protocol header, versions 1 (text) and 2 (binary).
 *
 * Strict on purpose: the header comes from a trusted balancer, so anything that deviates from
 * the spec is a misconfiguration or an attack, and the connection is refused rather than
 * guessed at. v1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" with single spaces, addresses in
 * their family's notation, ports 0..65535 in decimal without leading zeros; "PROXY UNKNOWN"
 * followed by anything up to the CRLF. v2: the 12-byte signature, version 2, command LOCAL or
 * PROXY, then the addresses and TLVs, whose lengths must add up. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxyproto.h"
#include "status.h"

static const uint8_t v2_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
static const char v1_sig[6] = "PROXY ";

static int fail(struct proxyproto_result *r, const char *why)
{
	r->error = why;
	return FERRY_ERR;
}

/* ---- version 1 ---- */

/* One space-delimited token of line[*pos..end): [start, *pos) after the call. */
static int v1_token(const char *line, size_t end, size_t *pos, const char **tok, size_t *toklen,
		    int last)
{
	size_t s = *pos, i = s;
	while (i < end && line[i] != ' ')
		i++;
	if (i == s)
		return FERRY_ERR; /* empty: two spaces in a row, or a space at the end */
	*tok = line + s;
	*toklen = i - s;
	if (last) {
		if (i != end)
			return FERRY_ERR;
		*pos = i;
	} else {
		if (i == end)
			return FERRY_ERR;
		*pos = i + 1;
	}
	return FERRY_OK;
}

static int v1_port(const char *p, size_t n, uint16_t *out)
{
	unsigned v = 0;
	if (n == 0 || n > 5 || (n > 1 && p[0] == '0'))
		return FERRY_ERR;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return FERRY_ERR;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v > 65535)
		return FERRY_ERR;
	*out = (uint16_t)v;
	return FERRY_OK;
}

static int v1_addr(int family, const char *p, size_t n, struct sockaddr_storage *ss, uint16_t port)
{
	char tmp[INET6_ADDRSTRLEN + 1];
	if (n >= sizeof(tmp))
		return FERRY_ERR;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		/* inet_pton takes dotted quads only: no octal, hex or short forms */
		if (inet_pton(AF_INET, tmp, &in->sin_addr) != 1)
			return FERRY_ERR;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, tmp, &in6->sin6_addr) != 1)
			return FERRY_ERR;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
	}
	return FERRY_OK;
}

static int v1_parse(const char *b, size_t len, struct proxyproto_result *r)
{
	size_t lim = len < PROXYPROTO_V1_MAX ? len : PROXYPROTO_V1_MAX;
	size_t crlf = 0;
	int found = 0;
	for (size_t i = 0; i < lim; i++) {
		if (b[i] == '\r') {
			if (i + 1 >= len)
				break; /* the LF may come */
			if (b[i + 1] != '\n')
				return fail(r, "PROXY v1: CR without LF");
			if (i + 2 > PROXYPROTO_V1_MAX)
				break;
			crlf = i;
			found = 1;
			break;
		}
		if (b[i] == '\n')
			return fail(r, "PROXY v1: LF without CR");
		if ((unsigned char)b[i] < 0x20 || (unsigned char)b[i] > 0x7e)
			return fail(r, "PROXY v1: control or non-ASCII byte in the header");
	}
	if (!found) {
		if (len >= PROXYPROTO_V1_MAX)
			return fail(r, "PROXY v1: header longer than 107 bytes");
		return FERRY_AGAIN;
	}
	r->version = 1;
	size_t pos = sizeof(v1_sig);
	const char *tok;
	size_t tl;
	if (crlf - pos >= 7 && memcmp(b + pos, "UNKNOWN", 7) == 0 &&
	    (crlf - pos == 7 || b[pos + 7] == ' ')) {
		/* the sender could not tell: the rest of the line is to be ignored */
		r->local = 1;
		return (int)(crlf + 2);
	}
	if (v1_token(b, crlf, &pos, &tok, &tl, 0) != FERRY_OK)
		return fail(r, "PROXY v1: missing protocol");
	int family;
	if (tl == 4 && memcmp(tok, "TCP4", 4) == 0)
		family = AF_INET;
	else if (tl == 4 && memcmp(tok, "TCP6", 4) == 0)
		family = AF_INET6;
	else
		return fail(r, "PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN");
	const char *src, *dst, *sp, *dp;
	size_t srcl, dstl, spl, dpl;
	uint16_t sport, dport;
	if (v1_token(b, crlf, &pos, &src, &srcl, 0) != FERRY_OK ||
	    v1_token(b, crlf, &pos, &dst, &dstl, 0) != FERRY_OK ||
	    v1_token(b, crlf, &pos, &sp, &spl, 0) != FERRY_OK ||
	    v1_token(b, crlf, &pos, &dp, &dpl, 1) != FERRY_OK)
		return fail(r, "PROXY v1: expected 'PROXY TCP4|TCP6 SRC DST SPORT DPORT'");
	if (v1_port(sp, spl, &sport) != FERRY_OK || v1_port(dp, dpl, &dport) != FERRY_OK)
		return fail(r, "PROXY v1: bad port");
	if (v1_addr(family, src, srcl, &r->src, sport) != FERRY_OK ||
	    v1_addr(family, dst, dstl, &r->dst, dport) != FERRY_OK)
		return fail(r, family == AF_INET ? "PROXY v1: bad IPv4 address" : "PROXY v1: bad IPv6 address");
	return (int)(crlf + 2);
}

/* ---- version 2 ---- */

static int v2_parse(const uint8_t *b, size_t len, struct proxyproto_result *r)
{
	if (len < 16)
		return FERRY_AGAIN;
	uint8_t ver = b[12] >> 4, cmd = b[12] & 0x0f;
	uint8_t fam = b[13] >> 4, proto = b[13] & 0x0f;
	size_t dlen = ((size_t)b[14] << 8) | b[15];
	if (ver != 2)
		return fail(r, "PROXY v2: unsupported version");
	if (cmd > 1)
		return fail(r, "PROXY v2: unknown command");
	if (fam > 3 || proto > 2)
		return fail(r, "PROXY v2: unknown address family or protocol");
	if (dlen > PROXYPROTO_V2_MAX_DATA)
		return fail(r, "PROXY v2: header too large");
	if (len < 16 + dlen)
		return FERRY_AGAIN;
	r->version = 2;
	const uint8_t *d = b + 16;
	size_t alen;
	if (fam == 1)
		alen = 12;
	else if (fam == 2)
		alen = 36;
	else if (fam == 3)
		alen = 216;
	else
		alen = 0;
	if (dlen < alen)
		return fail(r, "PROXY v2: address block shorter than its family needs");
	/* TLVs fill the rest exactly */
	size_t off = alen;
	r->ntlvs = 0;
	while (off < dlen) {
		if (dlen - off < 3)
			return fail(r, "PROXY v2: truncated TLV");
		size_t tlen = ((size_t)d[off + 1] << 8) | d[off + 2];
		if (dlen - off - 3 < tlen)
			return fail(r, "PROXY v2: TLV longer than the header");
		off += 3 + tlen;
		r->ntlvs++;
	}
	if (cmd == 0) {
		/* LOCAL: the balancer's own connection (health checks): addresses are ignored */
		r->local = 1;
		return (int)(16 + dlen);
	}
	if (fam == 0 || fam == 3) {
		/* UNSPEC or UNIX: nothing ferry can use as a client address; the spec says to use
		 * the connection's own */
		r->local = 1;
		return (int)(16 + dlen);
	}
	if (proto != 1)
		return fail(r, "PROXY v2: not a stream (TCP) connection");
	memset(&r->src, 0, sizeof(r->src));
	memset(&r->dst, 0, sizeof(r->dst));
	if (fam == 1) {
		struct sockaddr_in *s = (struct sockaddr_in *)&r->src, *t = (struct sockaddr_in *)&r->dst;
		s->sin_family = t->sin_family = AF_INET;
		memcpy(&s->sin_addr, d, 4);
		memcpy(&t->sin_addr, d + 4, 4);
		memcpy(&s->sin_port, d + 8, 2);
		memcpy(&t->sin_port, d + 10, 2);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&r->src, *t = (struct sockaddr_in6 *)&r->dst;
		s->sin6_family = t->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, d, 16);
		memcpy(&t->sin6_addr, d + 16, 16);
		memcpy(&s->sin6_port, d + 32, 2);
		memcpy(&t->sin6_port, d + 34, 2);
	}
	return (int)(16 + dlen);
}

int proxyproto_parse(const void *buf, size_t len, struct proxyproto_result *r)
{
	const uint8_t *b = buf;
	memset(r, 0, sizeof(*r));
	if (len == 0)
		return FERRY_AGAIN;
	/* the first byte tells the versions apart: 'P' or CR */
	if (b[0] == v1_sig[0]) {
		size_t n = len < sizeof(v1_sig) ? len : sizeof(v1_sig);
		if (memcmp(b, v1_sig, n) != 0)
			return fail(r, "no PROXY protocol header");
		if (len < sizeof(v1_sig))
			return FERRY_AGAIN;
		return v1_parse((const char *)b, len, r);
	}
	size_t n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
	if (memcmp(b, v2_sig, n) != 0)
		return fail(r, "no PROXY protocol header");
	if (len < sizeof(v2_sig))
		return FERRY_AGAIN;
	return v2_parse(b, len, r);
}
