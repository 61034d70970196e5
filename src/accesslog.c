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
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "log.h"
#include "status.h"

enum al_kind { AL_OFF, AL_STDERR, AL_SYSLOG, AL_FILE };

/* Set by accesslog_open only, before the worker threads start (master, then each child at
 * its start). Afterwards (accesslog_reopen, in the acceptor thread while workers write) only
 * the file behind al_fd changes, through dup2, and the atomics below: al_kind, al_fd and
 * al_path are never written again while workers read them. */
static enum al_kind al_kind = AL_OFF;
static int al_fd = -1;
static atomic_int al_regular; /* a regular file: one write of any size is never interleaved */
static atomic_int al_torn;    /* a short write left this process's last line without '\n' */
static char al_path[4096];
static atomic_llong al_last_error; /* CLOCK_MONOTONIC second of the last write error logged */

#define AL_BUF_CAP 65536
/* Bytes of the target kept (as written, an escaped byte counts 3); a longer one is cut there
 * and AL_CUT appended. With the other fields bounded as well, a line stays below PIPE_BUF, so
 * towards a pipe each line goes out in one piece. */
#define AL_TARGET_MAX 2048
#define AL_CUT "..."
#define AL_LINE_MAX (AL_TARGET_MAX + 1024)

static int al_is_regular(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* A regular file (or one not there yet) is opened for reading too, so that a flush can look
 * at its last byte (al_tail_torn); anything else write-only (a FIFO opened read-write would
 * never see its reader leave). Where reading is not permitted, write-only. */
static int al_open_path(const char *path)
{
	struct stat st;
	int fd = -1;
	if (stat(path, &st) == 0 ? S_ISREG(st.st_mode) : errno == ENOENT) {
		fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd >= 0 || (errno != EACCES && errno != EPERM))
			return fd;
	}
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
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
		atomic_store(&al_torn, 0);
		return FERRY_OK;
	}
	if (strlen(target) >= sizeof(al_path)) {
		snprintf(err, errlen, "cannot open access log %.64s...: path too long", target);
		return FERRY_ERR;
	}
	int fd = al_open_path(target);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open access log %s: %s", target, strerror(errno));
		return FERRY_ERR;
	}
	if (al_kind == AL_FILE && al_fd >= 0) {
		/* keep the number: a child's workers never hold a stale or closed descriptor */
		if (dup2(fd, al_fd) < 0) {
			snprintf(err, errlen, "access log %s: dup2: %s", target, strerror(errno));
			close(fd);
			return FERRY_ERR;
		}
		close(fd);
	} else {
		al_fd = fd;
	}
	atomic_store(&al_regular, al_is_regular(al_fd));
	atomic_store(&al_torn, 0);
	if (target != al_path)
		memmove(al_path, target, strlen(target) + 1);
	al_kind = AL_FILE;
	return FERRY_OK;
}

/* Runs in the acceptor thread while workers write: touches the file behind al_fd and the
 * atomics, nothing a worker reads plainly. */
void accesslog_reopen(void)
{
	if (al_kind != AL_FILE || al_fd < 0)
		return;
	int fd = al_open_path(al_path);
	if (fd < 0) {
		log_error("cannot reopen access log %s: %s (still writing to the old file)", al_path,
			  strerror(errno));
		return;
	}
	if (dup2(fd, al_fd) < 0) {
		log_error("cannot reopen access log %s: dup2: %s (still writing to the old file)",
			  al_path, strerror(errno));
		close(fd);
		return;
	}
	close(fd);
	atomic_store(&al_regular, al_is_regular(al_fd));
	atomic_store(&al_torn, 0); /* a new file: nothing of it is torn */
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

/* Does the file end inside a line (a write of any process cut short by a full disk)? -1 when
 * the descriptor cannot be read (stderr redirected write-only): then only this process's own
 * short writes are known (al_torn). */
static int al_tail_torn(int fd)
{
	struct stat st;
	char c;
	if (fstat(fd, &st) != 0)
		return -1;
	if (st.st_size == 0)
		return 0;
	ssize_t r = pread(fd, &c, 1, st.st_size - 1);
	if (r < 0)
		return -1;
	return r == 1 && c != '\n'; /* 0 bytes: truncated meanwhile (copytruncate) */
}

/* A regular file: the batch in one write, which O_APPEND keeps in one piece. A write cut
 * short (ENOSPC, EFBIG) leaves a line without its end; it is not continued (another writer
 * may append in between, and the rest would only fail too): the rest of that line is dropped
 * and the next write that succeeds, of whichever process, first ends the torn line with "\n",
 * so a line is never glued to a fragment. */
static void al_emit_file(const char *p, size_t n)
{
	while (n > 0) {
		int torn = al_tail_torn(al_fd);
		if (torn < 0)
			torn = atomic_load(&al_torn);
		struct iovec iov[2] = { { (void *)"\n", 1 }, { (void *)p, n } };
		ssize_t w = writev(al_fd, iov + !torn, 2 - !torn);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			al_write_failed(w < 0 ? errno : EIO);
			return;
		}
		size_t done = (size_t)w - (size_t)torn;
		if (done == n) {
			atomic_store(&al_torn, 0);
			return;
		}
		/* cut short: the file now ends with p[done - 1] (or the "\n" alone) */
		torn = done > 0 && p[done - 1] != '\n';
		atomic_store(&al_torn, torn);
		p += done;
		n -= done;
		if (torn) {
			const char *nl = memchr(p, '\n', n);
			size_t skip = nl ? (size_t)(nl - p) + 1 : n;
			p += skip;
			n -= skip;
		}
	}
}

/* Write whole lines. Towards a pipe, terminal or socket only a write up to PIPE_BUF is taken
 * in one piece, so there the batch goes out in pieces of whole lines no larger than that, and
 * every write ends on a line boundary (a line longer than PIPE_BUF, which the format does not
 * produce, would be written alone). */
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
		al_emit_file(p, n);
		return;
	}
	while (n > 0) {
		size_t take = n;
		if (take > PIPE_BUF) {
			take = 0;
			for (size_t i = 0; i < PIPE_BUF; i++)
				if (p[i] == '\n')
					take = i + 1;
			if (take == 0) { /* one long line: exactly that line */
				const char *nl = memchr(p, '\n', n);
				take = nl ? (size_t)(nl - p) + 1 : n;
			}
		}
		if (al_write(p, take) != FERRY_OK)
			return;
		p += take;
		n -= take;
	}
}

/* Copy s (n bytes) with bytes that would break the line's fields (controls, space, DEL, 8-bit)
 * as %XX; "-" when empty. Returns bytes written, at most max; *cut (when not NULL) tells
 * whether s did not fit whole. */
static size_t al_escape(char *out, size_t max, const char *s, size_t n, int *cut)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0, i;
	if (cut)
		*cut = 0;
	if (n == 0) {
		if (max > 0)
			out[o++] = '-';
		return o;
	}
	for (i = 0; i < n; i++) {
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
	if (cut)
		*cut = i < n;
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
	o += al_escape(out + o, 256, e->user, e->user ? strlen(e->user) : 0, NULL);
	out[o++] = ' ';
	if (e->request) {
		const char *sp = strchr(e->request, ' ');
		size_t mlen = sp ? (size_t)(sp - e->request) : strlen(e->request);
		o += al_escape(out + o, 64, e->request, mlen, NULL);
		out[o++] = ' ';
		const char *t = sp ? sp + 1 : "";
		int cut;
		o += al_escape(out + o, AL_TARGET_MAX, t, strlen(t), &cut);
		if (cut) {
			memcpy(out + o, AL_CUT, sizeof(AL_CUT) - 1);
			o += sizeof(AL_CUT) - 1;
		}
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
