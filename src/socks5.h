/* socks5.h - the client side of a SOCKS5 handshake (RFC 1928), with username/password
 * authentication (RFC 1929), as ferry speaks it to a SOCKS5 parent: a pure encoder/decoder
 * with no I/O. The destination goes to the parent as a name (ATYP domain), so the parent
 * resolves it; IP literals go as addresses.
 *
 *   struct socks5_client sc;
 *   socks5_start(&sc, user, pass, host, port);       // queues the greeting
 *   loop: send socks5_pending(&sc) bytes from sc.out, then socks5_sent(); feed what arrives to
 *         socks5_input() until it returns FERRY_OK (tunnel open) or FERRY_ERR (sc.error). */
#ifndef FERRY_SOCKS5_H
#define FERRY_SOCKS5_H

#include <stddef.h>
#include <stdint.h>

enum socks5_state { SOCKS5_METHOD, SOCKS5_AUTH, SOCKS5_CONNECT, SOCKS5_DONE, SOCKS5_FAILED };

struct socks5_client {
	uint8_t state;
	uint8_t out[600];     /* the next message to send (the longest: auth, 3 + 2 * 255) */
	size_t outlen;
	uint8_t reply;        /* the parent's CONNECT reply code, once known */
	const char *error;    /* on FERRY_ERR: why, one line */
	/* kept for the messages after the greeting */
	char user[256], pass[256];
	int has_auth;
	char host[256];
	uint16_t port;
};

/* Begin: queue the greeting (methods: no authentication, and username/password when user is
 * not NULL). FERRY_ERR when the host name is empty or too long, or the user name or password
 * is not 1 to 255 bytes as RFC 1929 requires (sc->error). */
int socks5_start(struct socks5_client *sc, const char *user, const char *pass, const char *host,
		 uint16_t port);
/* The bytes to send now (sc->outlen of them at sc->out); 0 when waiting for the parent. */
static inline size_t socks5_pending(const struct socks5_client *sc) { return sc->outlen; }
/* n bytes of the pending message were sent. */
void socks5_sent(struct socks5_client *sc, size_t n);
/* Feed bytes from the parent: in[0..len). *consumed gets how many were used (the rest, after
 * the CONNECT reply, belong to the tunnel). Returns FERRY_OK when the tunnel is open,
 * FERRY_AGAIN when more bytes are needed (and maybe a message to send: socks5_pending),
 * FERRY_ERR when the parent refused or spoke nonsense (sc->error). Call only when
 * socks5_pending is 0. */
int socks5_input(struct socks5_client *sc, const uint8_t *in, size_t len, size_t *consumed);
/* The RFC 1928 meaning of a reply code. */
const char *socks5_reply_str(uint8_t rep);

#endif
