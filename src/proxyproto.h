/* proxyproto.h - the PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2)
 * that a load balancer sends first on a connection to say who the real client is.
 *
 * A pure, incremental parser: no I/O, no allocation. Call it with every byte received so far
 * (from the start of the connection) until it stops answering FERRY_AGAIN. */
#ifndef FERRY_PROXYPROTO_H
#define FERRY_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A v1 header is at most 107 bytes with its CRLF (the spec's limit). */
#define PROXYPROTO_V1_MAX 107
/* v2: the 16-byte fixed part plus at most this much address and TLV data. The spec allows
 * 65535; a balancer that sends more than a few TLVs is not what ferry expects, and a bound
 * keeps what a connection may make ferry buffer small. */
#define PROXYPROTO_V2_MAX_DATA 2048

struct proxyproto_result {
	int version;          /* 1 or 2 */
	int local;            /* no address carried (v2 LOCAL, v1 UNKNOWN, v2 UNSPEC/UNIX):
				 use the connection's own addresses */
	struct sockaddr_storage src, dst; /* when !local: AF_INET or AF_INET6, with ports */
	unsigned ntlvs;       /* v2: TLVs found after the addresses (validated, ignored) */
	const char *error;    /* on FERRY_ERR: why, one line */
};

/* Parse the header at the start of buf[0..len). Returns the header's length in bytes (> 0)
 * when it is complete and valid (the bytes after it are the client's), FERRY_AGAIN when buf
 * is a valid but incomplete prefix, or FERRY_ERR (r->error says why) for anything else: a
 * connection that does not start with a PROXY signature, a malformed or oversized header. */
int proxyproto_parse(const void *buf, size_t len, struct proxyproto_result *r);

#endif
