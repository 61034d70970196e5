/* socks5_parent.c - a small SOCKS5 server (RFC 1928, username/password per RFC 1929) on
 * loopback, the parent proxy of ferry's chaining tests.
 *
 *   socks5_parent [-u USER -p PASS]
 *
 * Listens on 127.0.0.1 (a free port), prints "PORT\n" on stdout once it listens, then serves
 * until killed: one thread per connection, blocking sockets. CONNECT only; names (ATYP 3)
 * are resolved here with getaddrinfo, and every address is tried in order. A destination that
 * cannot be reached gets reply 5 (connection refused). With -u/-p, only username/password
 * authentication is accepted.
 *
 * A connection that starts with "COUNT\n" instead of a SOCKS5 greeting gets one line,
 * "CONNS N LAST ATYP HOST PORT\n": the SOCKS connections so far (COUNT ones excluded) and the
 * last CONNECT request's address type and destination as received. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *user, *pass;
static atomic_ulong nconns;
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static char last[400] = "- - -";

static int readn(int fd, void *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int writen(int fd, const void *p, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = send(fd, (const char *)p + done, n - done, MSG_NOSIGNAL);
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

static void relay(int a, int b)
{
	struct pollfd p[2] = { { a, POLLIN, 0 }, { b, POLLIN, 0 } };
	int open_a = 1, open_b = 1;
	char buf[16384];
	while (open_a || open_b) {
		p[0].fd = open_a ? a : -1;
		p[1].fd = open_b ? b : -1;
		if (poll(p, 2, -1) < 0)
			return;
		for (int i = 0; i < 2; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			int from = i == 0 ? a : b, to = i == 0 ? b : a;
			ssize_t r = read(from, buf, sizeof(buf));
			if (r <= 0) {
				shutdown(to, SHUT_WR);
				if (i == 0)
					open_a = 0;
				else
					open_b = 0;
				if (r < 0)
					return;
				continue;
			}
			if (writen(to, buf, (size_t)r) < 0)
				return;
		}
	}
}

static void reply(int fd, unsigned char rep)
{
	unsigned char r[10] = { 5, rep, 0, 1, 0, 0, 0, 0, 0, 0 };
	writen(fd, r, sizeof(r));
}

static void serve(int fd)
{
	unsigned char h[2];
	if (readn(fd, h, 2) < 0)
		return;
	if (h[0] == 'C') {
		char rest[4];
		if (readn(fd, rest, 4) < 0 || memcmp(rest, "UNT\n", 4) != 0)
			return;
		char line[512];
		pthread_mutex_lock(&last_lock);
		int n = snprintf(line, sizeof(line), "CONNS %lu LAST %s\n", atomic_load(&nconns), last);
		pthread_mutex_unlock(&last_lock);
		writen(fd, line, (size_t)n);
		return;
	}
	atomic_fetch_add(&nconns, 1);
	if (h[0] != 5 || h[1] == 0)
		return;
	unsigned char methods[255];
	if (readn(fd, methods, h[1]) < 0)
		return;
	unsigned char want = user ? 2 : 0, chosen = 0xff;
	for (int i = 0; i < h[1]; i++)
		if (methods[i] == want)
			chosen = want;
	unsigned char m[2] = { 5, chosen };
	if (writen(fd, m, 2) < 0 || chosen == 0xff)
		return;
	if (chosen == 2) {
		unsigned char v[2], ul, pl;
		char u[256], p[256];
		if (readn(fd, v, 2) < 0 || v[0] != 1)
			return;
		ul = v[1];
		if (readn(fd, u, ul) < 0 || readn(fd, &pl, 1) < 0 || readn(fd, p, pl) < 0)
			return;
		u[ul] = p[pl] = '\0';
		int ok = strcmp(u, user) == 0 && strcmp(p, pass) == 0;
		unsigned char r[2] = { 1, ok ? 0 : 1 };
		writen(fd, r, 2);
		if (!ok)
			return;
	}
	unsigned char req[4];
	if (readn(fd, req, 4) < 0 || req[0] != 5)
		return;
	if (req[1] != 1) {
		reply(fd, 7);
		return;
	}
	char host[300];
	unsigned char pb[2];
	if (req[3] == 1) {
		unsigned char a[4];
		if (readn(fd, a, 4) < 0)
			return;
		inet_ntop(AF_INET, a, host, sizeof(host));
	} else if (req[3] == 4) {
		unsigned char a[16];
		if (readn(fd, a, 16) < 0)
			return;
		inet_ntop(AF_INET6, a, host, sizeof(host));
	} else if (req[3] == 3) {
		unsigned char l;
		if (readn(fd, &l, 1) < 0 || readn(fd, host, l) < 0)
			return;
		host[l] = '\0';
	} else {
		reply(fd, 8);
		return;
	}
	if (readn(fd, pb, 2) < 0)
		return;
	unsigned port = (unsigned)pb[0] << 8 | pb[1];
	pthread_mutex_lock(&last_lock);
	snprintf(last, sizeof(last), "%u %s %u", req[3], host, port);
	pthread_mutex_unlock(&last_lock);

	char ps[8];
	snprintf(ps, sizeof(ps), "%u", port);
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, ps, &hints, &res) != 0) {
		reply(fd, 4);
		return;
	}
	int up = -1;
	for (struct addrinfo *ai = res; ai && up < 0; ai = ai->ai_next) {
		up = socket(ai->ai_family, SOCK_STREAM, 0);
		if (up >= 0 && connect(up, ai->ai_addr, ai->ai_addrlen) < 0) {
			close(up);
			up = -1;
		}
	}
	freeaddrinfo(res);
	if (up < 0) {
		reply(fd, 5);
		return;
	}
	reply(fd, 0);
	relay(fd, up);
	close(up);
}

static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	serve(fd);
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "u:p:")) != -1) {
		if (opt == 'u')
			user = optarg;
		else if (opt == 'p')
			pass = optarg;
		else {
			fprintf(stderr, "usage: socks5_parent [-u USER -p PASS]\n");
			return 2;
		}
	}
	if ((user == NULL) != (pass == NULL)) {
		fprintf(stderr, "socks5_parent: -u and -p go together\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sin);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 128) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &sl) < 0) {
		perror("socks5_parent: listen");
		return 1;
	}
	printf("%u\n", (unsigned)ntohs(sin.sin_port));
	fflush(stdout);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, conn_main, (void *)(intptr_t)fd) != 0)
			close(fd);
		pthread_attr_destroy(&at);
	}
}
