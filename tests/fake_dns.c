/* fake_dns.c - the tests' DNS server on 127.0.0.1 (see fake_dns.h).
 *
 * It copies the question into the answer byte for byte, so the answer always matches what
 * c-ares asked (name case, type, class), and points each record's owner at it (0xc00c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fake_dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define FAKE_NAMES_MAX 64
#define FAKE_RRS_MAX 10
#define FAKE_NAME_MAX 255

#define DNS_TYPE_A 1
#define DNS_TYPE_AAAA 28
#define DNS_CLASS_IN 1
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_NOTIMP 4

enum fake_mode { FAKE_ANSWER, FAKE_SILENT, FAKE_SERVFAIL };

struct fake_rr {
	int family;
	uint8_t addr[16];
	unsigned ttl;
};

struct fake_name {
	char name[FAKE_NAME_MAX + 1]; /* lower-cased, no trailing dot */
	enum fake_mode mode;
	int nrr;
	struct fake_rr rr[FAKE_RRS_MAX];
	int queries;
};

struct fake_dns {
	int fd;
	int wake[2];          /* written once, by fake_dns_stop */
	int port;
	char server[32];
	pthread_t thread;
	pthread_mutex_t mu;   /* names, nnames, total */
	struct fake_name names[FAKE_NAMES_MAX];
	int nnames;
	int total;
};

static void fake_dns_die(const char *what)
{
	fprintf(stderr, "fake_dns: %s\n", what);
	abort();
}

static void fake_lower(char *dst, const char *src)
{
	size_t n = strlen(src);

	if (n && src[n - 1] == '.')
		n--;
	if (n > FAKE_NAME_MAX)
		fake_dns_die("name too long");
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)((src[i] >= 'A' && src[i] <= 'Z') ? src[i] - 'A' + 'a' : src[i]);
	dst[n] = '\0';
}

/* The entry for a lower-cased name, or NULL. Called with mu held. */
static struct fake_name *fake_find(struct fake_dns *d, const char *name)
{
	for (int i = 0; i < d->nnames; i++)
		if (strcmp(d->names[i].name, name) == 0)
			return &d->names[i];
	return NULL;
}

/* The entry for name, created when missing. Called with mu held. */
static struct fake_name *fake_entry(struct fake_dns *d, const char *name)
{
	char key[FAKE_NAME_MAX + 1];
	struct fake_name *n;

	fake_lower(key, name);
	n = fake_find(d, key);
	if (n)
		return n;
	if (d->nnames == FAKE_NAMES_MAX)
		fake_dns_die("too many names");
	n = &d->names[d->nnames++];
	memset(n, 0, sizeof(*n));
	strcpy(n->name, key);
	return n;
}

void fake_dns_add(struct fake_dns *d, const char *name, const char *addr, unsigned ttl)
{
	struct fake_rr rr = { .ttl = ttl };
	struct fake_name *n;

	if (inet_pton(AF_INET, addr, rr.addr) == 1)
		rr.family = AF_INET;
	else if (inet_pton(AF_INET6, addr, rr.addr) == 1)
		rr.family = AF_INET6;
	else
		fake_dns_die("not an address literal");
	pthread_mutex_lock(&d->mu);
	n = fake_entry(d, name);
	if (n->nrr == FAKE_RRS_MAX)
		fake_dns_die("too many records for one name");
	n->mode = FAKE_ANSWER;
	n->rr[n->nrr++] = rr;
	pthread_mutex_unlock(&d->mu);
}

static void fake_set_mode(struct fake_dns *d, const char *name, enum fake_mode mode)
{
	pthread_mutex_lock(&d->mu);
	fake_entry(d, name)->mode = mode;
	pthread_mutex_unlock(&d->mu);
}

void fake_dns_silent(struct fake_dns *d, const char *name)
{
	fake_set_mode(d, name, FAKE_SILENT);
}

void fake_dns_servfail(struct fake_dns *d, const char *name)
{
	fake_set_mode(d, name, FAKE_SERVFAIL);
}

int fake_dns_queries(struct fake_dns *d, const char *name)
{
	char key[FAKE_NAME_MAX + 1];
	struct fake_name *n;
	int count;

	pthread_mutex_lock(&d->mu);
	if (name) {
		fake_lower(key, name);
		n = fake_find(d, key);
		count = n ? n->queries : 0;
	} else {
		count = d->total;
	}
	pthread_mutex_unlock(&d->mu);
	return count;
}

int fake_dns_port(const struct fake_dns *d)
{
	return d->port;
}

const char *fake_dns_server(const struct fake_dns *d)
{
	return d->server;
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static unsigned get16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* Build the answer to query q into out (at least 512 bytes). Its length, or 0 to send
 * nothing. Names that were never configured are counted too, in an entry of their own. */
static size_t fake_answer(struct fake_dns *d, const uint8_t *q, size_t qlen, uint8_t *out)
{
	char name[FAKE_NAME_MAX + 2];
	size_t off = 12, nlen = 0, len;
	unsigned qtype, qclass, rcode = 0, an = 0;
	struct fake_name *n;

	if (qlen < 12 || (q[2] & 0x80) || get16(q + 4) != 1)
		return 0; /* not a query with one question: not ours to answer */
	for (;;) {
		unsigned l;

		if (off >= qlen)
			return 0;
		l = q[off++];
		if (l == 0)
			break;
		if (l > 63 || off + l > qlen || nlen + l + 1 > FAKE_NAME_MAX)
			return 0;
		if (nlen)
			name[nlen++] = '.';
		memcpy(name + nlen, q + off, l);
		nlen += l;
		off += l;
	}
	name[nlen] = '\0';
	if (off + 4 > qlen)
		return 0;
	qtype = get16(q + off);
	qclass = get16(q + off + 2);
	off += 4;

	memcpy(out, q, 2);                           /* id */
	out[2] = (uint8_t)(0x80 | 0x04 | (q[2] & 0x79)); /* QR, AA, opcode and RD copied */
	memcpy(out + 12, q + 12, off - 12);          /* the question */
	len = off;

	pthread_mutex_lock(&d->mu);
	d->total++;
	n = fake_entry(d, name);
	n->queries++;
	if ((q[2] & 0x78) != 0) {
		rcode = DNS_RCODE_NOTIMP;
	} else if (n->mode == FAKE_SILENT) {
		pthread_mutex_unlock(&d->mu);
		return 0;
	} else if (n->mode == FAKE_SERVFAIL) {
		rcode = DNS_RCODE_SERVFAIL;
	} else if (n->nrr == 0) {
		rcode = DNS_RCODE_NXDOMAIN;
	} else if (qclass == DNS_CLASS_IN) {
		for (int i = 0; i < n->nrr; i++) {
			const struct fake_rr *rr = &n->rr[i];
			size_t alen = rr->family == AF_INET ? 4 : 16;

			if ((qtype == DNS_TYPE_A) != (rr->family == AF_INET) ||
			    (qtype != DNS_TYPE_A && qtype != DNS_TYPE_AAAA))
				continue;
			put16(out + len, 0xc00c);        /* owner: the name in the question */
			put16(out + len + 2, qtype);
			put16(out + len + 4, DNS_CLASS_IN);
			out[len + 6] = (uint8_t)(rr->ttl >> 24);
			out[len + 7] = (uint8_t)(rr->ttl >> 16);
			out[len + 8] = (uint8_t)(rr->ttl >> 8);
			out[len + 9] = (uint8_t)rr->ttl;
			put16(out + len + 10, (unsigned)alen);
			memcpy(out + len + 12, rr->addr, alen);
			len += 12 + alen;
			an++;
		}
	}
	pthread_mutex_unlock(&d->mu);
	out[3] = (uint8_t)(0x80 | rcode);            /* RA */
	put16(out + 4, 1);
	put16(out + 6, an);
	put16(out + 8, 0);
	put16(out + 10, 0);
	return len;
}

static void *fake_dns_main(void *arg)
{
	struct fake_dns *d = arg;
	uint8_t q[1500], a[512];

	for (;;) {
		struct pollfd p[2] = { { .fd = d->fd, .events = POLLIN },
				       { .fd = d->wake[0], .events = POLLIN } };
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof(from);
		ssize_t r;
		size_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		r = recvfrom(d->fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fromlen);
		if (r < 0)
			continue;
		n = fake_answer(d, q, (size_t)r, a);
		if (n)
			sendto(d->fd, a, n, 0, (struct sockaddr *)&from, fromlen);
	}
	return NULL;
}

static int fake_udp_socket(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

struct fake_dns *fake_dns_start(void)
{
	struct fake_dns *d = calloc(1, sizeof(*d));

	if (!d) {
		fprintf(stderr, "fake_dns: out of memory\n");
		return NULL;
	}
	d->wake[0] = d->wake[1] = -1;
	pthread_mutex_init(&d->mu, NULL);
	d->fd = fake_udp_socket(&d->port);
	if (d->fd < 0 || pipe2(d->wake, O_CLOEXEC) < 0) {
		fprintf(stderr, "fake_dns: socket: %s\n", strerror(errno));
		goto fail;
	}
	snprintf(d->server, sizeof(d->server), "127.0.0.1:%d", d->port);
	if (pthread_create(&d->thread, NULL, fake_dns_main, d) != 0) {
		fprintf(stderr, "fake_dns: pthread_create failed\n");
		goto fail;
	}
	return d;
fail:
	if (d->fd >= 0)
		close(d->fd);
	if (d->wake[0] >= 0) {
		close(d->wake[0]);
		close(d->wake[1]);
	}
	pthread_mutex_destroy(&d->mu);
	free(d);
	return NULL;
}

void fake_dns_stop(struct fake_dns *d)
{
	if (!d)
		return;
	while (write(d->wake[1], "x", 1) < 0 && errno == EINTR)
		;
	pthread_join(d->thread, NULL);
	close(d->fd);
	close(d->wake[0]);
	close(d->wake[1]);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

int fake_dns_closed_port(void)
{
	int port = -1;
	int fd = fake_udp_socket(&port);

	if (fd < 0)
		return -1;
	close(fd);
	return port;
}
