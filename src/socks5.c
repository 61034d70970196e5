/* socks5.c - client side of SOCKS5 (RFC 1928) with username/password (RFC 1929).
 *
 * Messages are parsed whole or not at all (FERRY_AGAIN until complete), so the caller can
 * feed whatever arrived so far; the replies are short and fixed in shape, except the CONNECT
 * reply whose bound address has a variable length. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "socks5.h"
#include "status.h"

static int fail(struct socks5_client *sc, const char *why)
{
	sc->state = SOCKS5_FAILED;
	sc->error = why;
	return FERRY_ERR;
}

int socks5_start(struct socks5_client *sc, const char *user, const char *pass, const char *host,
		 uint16_t port)
{
	memset(sc, 0, sizeof(*sc));
	size_t hl = strlen(host);
	if (hl == 0 || hl > 255)
		return fail(sc, "host name too long for SOCKS5");
	memcpy(sc->host, host, hl + 1);
	sc->port = port;
	if (user != NULL) {
		size_t ul = strlen(user), pl = pass ? strlen(pass) : 0;
		/* RFC 1929: ULEN and PLEN are 1 to 255 (route.c refuses the rest at config time) */
		if (ul == 0 || ul > 255 || pl == 0 || pl > 255)
			return fail(sc, "SOCKS5 user name and password must be 1 to 255 bytes each");
		memcpy(sc->user, user, ul + 1);
		if (pass)
			memcpy(sc->pass, pass, pl + 1);
		sc->has_auth = 1;
	}
	sc->out[0] = 5;
	if (sc->has_auth) {
		sc->out[1] = 2;
		sc->out[2] = 0x00;
		sc->out[3] = 0x02;
		sc->outlen = 4;
	} else {
		sc->out[1] = 1;
		sc->out[2] = 0x00;
		sc->outlen = 3;
	}
	sc->state = SOCKS5_METHOD;
	return FERRY_OK;
}

static void queue_connect(struct socks5_client *sc)
{
	uint8_t *o = sc->out;
	size_t n = 0;
	struct in_addr a4;
	struct in6_addr a6;
	o[n++] = 5;
	o[n++] = 1; /* CONNECT */
	o[n++] = 0;
	if (inet_pton(AF_INET, sc->host, &a4) == 1) {
		o[n++] = 1;
		memcpy(o + n, &a4, 4);
		n += 4;
	} else if (inet_pton(AF_INET6, sc->host, &a6) == 1) {
		o[n++] = 4;
		memcpy(o + n, &a6, 16);
		n += 16;
	} else {
		/* a name: the parent resolves it (ferry does not, see doc/chaining.md) */
		size_t hl = strlen(sc->host);
		o[n++] = 3;
		o[n++] = (uint8_t)hl;
		memcpy(o + n, sc->host, hl);
		n += hl;
	}
	o[n++] = (uint8_t)(sc->port >> 8);
	o[n++] = (uint8_t)sc->port;
	sc->outlen = n;
	sc->state = SOCKS5_CONNECT;
}

int socks5_input(struct socks5_client *sc, const uint8_t *in, size_t len, size_t *consumed)
{
	*consumed = 0;
	switch (sc->state) {
	case SOCKS5_METHOD:
		if (len < 2)
			return FERRY_AGAIN;
		if (in[0] != 5)
			return fail(sc, "not a SOCKS5 server (bad version in its method choice)");
		*consumed = 2;
		if (in[1] == 0x00) {
			queue_connect(sc);
			return FERRY_AGAIN;
		}
		if (in[1] == 0x02 && sc->has_auth) {
			size_t ul = strlen(sc->user), pl = strlen(sc->pass), n = 0;
			sc->out[n++] = 1;
			sc->out[n++] = (uint8_t)ul;
			memcpy(sc->out + n, sc->user, ul);
			n += ul;
			sc->out[n++] = (uint8_t)pl;
			memcpy(sc->out + n, sc->pass, pl);
			n += pl;
			sc->outlen = n;
			sc->state = SOCKS5_AUTH;
			return FERRY_AGAIN;
		}
		if (in[1] == 0x02)
			return fail(sc, "the SOCKS5 parent requires a user name and password");
		return fail(sc, "the SOCKS5 parent accepts none of the offered authentication methods");
	case SOCKS5_AUTH:
		if (len < 2)
			return FERRY_AGAIN;
		*consumed = 2;
		if (in[0] != 1)
			return fail(sc, "bad SOCKS5 authentication reply");
		if (in[1] != 0)
			return fail(sc, "the SOCKS5 parent refused the user name and password");
		queue_connect(sc);
		return FERRY_AGAIN;
	case SOCKS5_CONNECT: {
		if (len < 5)
			return FERRY_AGAIN;
		if (in[0] != 5 || in[2] != 0)
			return fail(sc, "bad SOCKS5 CONNECT reply");
		size_t need;
		switch (in[3]) {
		case 1:
			need = 4 + 4 + 2;
			break;
		case 4:
			need = 4 + 16 + 2;
			break;
		case 3:
			need = 4 + 1 + (size_t)in[4] + 2;
			break;
		default:
			return fail(sc, "bad address type in the SOCKS5 CONNECT reply");
		}
		sc->reply = in[1];
		if (in[1] != 0) {
			sc->state = SOCKS5_FAILED;
			sc->error = socks5_reply_str(in[1]);
			return FERRY_ERR;
		}
		if (len < need)
			return FERRY_AGAIN;
		*consumed = need;
		sc->state = SOCKS5_DONE;
		return FERRY_OK;
	}
	case SOCKS5_DONE:
		return FERRY_OK;
	default:
		return FERRY_ERR;
	}
}

void socks5_sent(struct socks5_client *sc, size_t n)
{
	if (n >= sc->outlen) {
		sc->outlen = 0;
		return;
	}
	memmove(sc->out, sc->out + n, sc->outlen - n);
	sc->outlen -= n;
}

const char *socks5_reply_str(uint8_t rep)
{
	switch (rep) {
	case 0:
		return "succeeded";
	case 1:
		return "general SOCKS server failure";
	case 2:
		return "connection not allowed by ruleset";
	case 3:
		return "network unreachable";
	case 4:
		return "host unreachable";
	case 5:
		return "connection refused";
	case 6:
		return "TTL expired";
	case 7:
		return "command not supported";
	case 8:
		return "address type not supported";
	default:
		return "unknown SOCKS5 error";
	}
}
