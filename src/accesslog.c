/* accesslog.c - the access log (format and batching: see accesslog.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "log.h"
#include "status.h"

enum al_kind { AL_OFF, AL_STDERR, AL_SYSLOG, AL_FILE };

/* Set before the worker threads start (master, then each child at its start); afterwards
 * only the file behind al_fd changes, through dup2 (accesslog_reopen writes nothing else
 * but al_regular, which workers read atomically). */
static enum al_kind al_kind = AL_OFF;
static int al_fd = -1;
static atomic_int al_regular; /* a regular file: one write of any size is never interleaved */
static char al_path[4096];
static atomic_llong al_last_error; /* CLOCK_MONOTONIC second of the last write error logged */

#define AL_BUF_CAP 65536
#define AL_REQUEST_MAX 4096 /* bytes of method and target kept (escaped bytes count 3) */
#define AL_LINE_MAX (AL_REQUEST_MAX + 1024)

static int al_is_regular(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

static void al_set_file(int fd, const char *path)
{
	if (al_kind == AL_FILE && al_fd >= 0 && fd != al_fd) {
		/* keep the number: a child's workers never hold a stale or closed descriptor */
		if (dup2(fd, al_fd) < 0) {
			log_error("access log %s: dup2: %s", path, strerror(errno));
			close(fd);
			return;
		}
		close(fd);
	} else {
		al_fd = fd;
	}
	atomic_store(&al_regular, al_is_regular(al_fd));
	if (path != al_path)
		snprintf(al_path, sizeof(al_path), "%s", path);
	if (al_kind != AL_FILE)
		al_kind = AL_FILE;
}

int accesslog_open(const char *target, char *err, size_t errlen)
{
	if (target == NULL || strcmp(target, "off") == 0) {
		if (al_kind == AL_FILE && al_fd >= 0)
			close(al_fd);
		al_fd = -1;
		al_kind = AL_OFF;
		return FERRY_OK;
	}
	if (strcmp(target, "stderr") == 0 || strcmp(target, "syslog") == 0) {
		if (al_kind == AL_FILE && al_fd >= 0)
			close(al_fd);
		if (target[1] == 't') {
			al_kind = AL_STDERR;
			al_fd = STDERR_FILENO;
			atomic_store(&al_regular, al_is_regular(al_fd));
		} else {
			al_kind = AL_SYSLOG;
			al_fd = -1;
			openlog("ferry", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		}
		return FERRY_OK;
	}
	int fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open access log %s: %s", target, strerror(errno));
		return FERRY_ERR;
	}
	al_set_file(fd, target);
	return FERRY_OK;
}

void accesslog_reopen(void)
{
	if (al_kind != AL_FILE)
		return;
	int fd = open(al_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_error("cannot reopen access log %s: %s (still writing to the old file)", al_path,
			  strerror(errno));
		return;
	}
	al_set_file(fd, al_path);
}

void accesslog_close(void)
{
	if (al_kind == AL_FILE && al_fd >= 0)
		close(al_fd);
	al_fd = -1;
	al_kind = AL_OFF;
}

int accesslog_enabled(void)
{
	return al_kind != AL_OFF;
}

/* A failed write is logged at most once a minute: the log must not flood the error log. */
static void al_write_failed(int e)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long long last = atomic_load(&al_last_error);
	if (last != 0 && ts.tv_sec - last < 60)
		return;
	atomic_store(&al_last_error, (long long)ts.tv_sec ? (long long)ts.tv_sec : 1);
	log_error("access log %s: write: %s (lines lost)", al_kind == AL_FILE ? al_path : "stderr",
		  strerror(e));
}

static int al_write(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(al_fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			al_write_failed(errno);
			return FERRY_ERR;
		}
		p += w;
		n -= (size_t)w;
	}
	return FERRY_OK;
}

/* Write whole lines. A regular file opened O_APPEND takes one write of any size in one
 * piece; a pipe or terminal only up to PIPE_BUF, so there the batch goes out in pieces of
 * whole lines no larger than that. */
static void al_emit(const char *p, size_t n)
{
	if (al_kind == AL_SYSLOG) {
		while (n > 0) {
			const char *nl = memchr(p, '\n', n);
			size_t len = nl ? (size_t)(nl - p) : n;
			syslog(LOG_INFO, "%.*s", (int)len, p);
			len += nl != NULL;
			p += len;
			n -= len;
		}
		return;
	}
	if (al_fd < 0)
		return;
	if (atomic_load_explicit(&al_regular, memory_order_relaxed)) {
		al_write(p, n);
		return;
	}
	while (n > 0) {
		size_t take = n;
		if (take > PIPE_BUF) {
			take = 0;
			for (size_t i = 0; i < PIPE_BUF; i++)
				if (p[i] == '\n')
					take = i + 1;
			if (take == 0)
				take = n < AL_LINE_MAX ? n : AL_LINE_MAX; /* one long line: as it is */
		}
		if (al_write(p, take) != FERRY_OK)
			return;
		p += take;
		n -= take;
	}
}

/* Copy s (n bytes) with bytes that would break the line's fields (controls, space, DEL, 8-bit)
 * as %XX; "-" when empty. Returns bytes written, at most max. */
static size_t al_escape(char *out, size_t max, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	if (n == 0) {
		if (max > 0)
			out[o++] = '-';
		return o;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch > 0x20 && ch < 0x7f && ch != '"') {
			if (o + 1 > max)
				break;
			out[o++] = (char)ch;
		} else {
			if (o + 3 > max)
				break;
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	return o;
}

static size_t al_addr(char *out, size_t max, const struct sockaddr *sa, int with_port)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned port = 0;
	int v6 = 0;
	if (sa == NULL)
		return (size_t)snprintf(out, max, "-");
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		port = ntohs(in6->sin6_port);
		v6 = 1;
	} else {
		return (size_t)snprintf(out, max, "-");
	}
	int r = with_port ? snprintf(out, max, v6 ? "[%s]:%u" : "%s:%u", ip, port)
			  : snprintf(out, max, "%s", ip);
	return r < 0 ? 0 : (size_t)r < max ? (size_t)r : max - 1;
}

size_t accesslog_format(struct accesslog_buf *b, const struct accesslog_entry *e, char *out,
			size_t outlen)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (b->sec != (int64_t)ts.tv_sec || b->stamp[0] == '\0') {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		strftime(b->stamp, sizeof(b->stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		b->sec = (int64_t)ts.tv_sec;
	}
	size_t o = 0;
	int r = snprintf(out, outlen, "%s.%03ldZ ", b->stamp, ts.tv_nsec / 1000000);
	o += (size_t)r;
	o += al_addr(out + o, outlen - o, e->client, 0);
	out[o++] = ' ';
	o += al_escape(out + o, 256, e->user, e->user ? strlen(e->user) : 0);
	out[o++] = ' ';
	if (e->request) {
		const char *sp = strchr(e->request, ' ');
		size_t mlen = sp ? (size_t)(sp - e->request) : strlen(e->request);
		o += al_escape(out + o, 64, e->request, mlen);
		out[o++] = ' ';
		const char *t = sp ? sp + 1 : "";
		o += al_escape(out + o, AL_REQUEST_MAX, t, strlen(t));
	} else {
		out[o++] = '-';
		out[o++] = ' ';
		out[o++] = '-';
	}
	r = snprintf(out + o, outlen - o, " %03d %llu %llu %llu ", e->status,
		     (unsigned long long)e->bytes_in, (unsigned long long)e->bytes_out,
		     (unsigned long long)e->ms);
	o += (size_t)r;
	o += al_addr(out + o, outlen - o, e->upstream, 1);
	r = snprintf(out + o, outlen - o, " %s\n", e->upstream == NULL ? "-" : e->reused ? "reused" : "new");
	o += (size_t)r;
	return o;
}

void accesslog_add(struct accesslog_buf *b, const struct accesslog_entry *e)
{
	if (al_kind == AL_OFF)
		return;
	if (b->data == NULL) {
		b->data = malloc(AL_BUF_CAP);
		if (b->data == NULL)
			return; /* out of memory: the line is lost, not the request */
		b->cap = AL_BUF_CAP;
		b->len = 0;
	}
	if (b->cap - b->len < AL_LINE_MAX)
		accesslog_flush(b);
	b->len += accesslog_format(b, e, b->data + b->len, b->cap - b->len);
}

void accesslog_flush(struct accesslog_buf *b)
{
	if (b->len == 0)
		return;
	al_emit(b->data, b->len);
	b->len = 0;
}

void accesslog_buf_free(struct accesslog_buf *b)
{
	accesslog_flush(b);
	free(b->data);
	b->data = NULL;
	b->cap = b->len = 0;
}
