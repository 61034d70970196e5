/* accesslog.h - the access log: one line per request or tunnel, written when it ends.
 *
 *   2026-11-27T19:30:00.123Z 192.0.2.7 alice GET http://example.org/ 200 81 1250 12 93.184.215.14:80 new
 *   time client user method target status bytes-in bytes-out ms upstream reused|new|-
 *
 * Each worker formats lines into its own buffer (no lock) and writes whole lines only, with
 * one write(2) per batch on an O_APPEND descriptor: when the buffer is full, from a 1 s
 * timer of the worker's loop, and when the worker exits. Towards a pipe every write ends
 * at a line's end; a write to a file cut short (disk full) is never continued by a later one.
 * doc/observability.md describes the fields (the target is cut at 2 KiB, so a line stays
 * below PIPE_BUF). The target (a path, stderr, syslog or off) is process-wide. */
#ifndef FERRY_ACCESSLOG_H
#define FERRY_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Open target ("off", "stderr", "syslog" or an absolute path). Called by the master before
 * it forks (as root: the children inherit the descriptor) and by each child at start: a
 * child reopens the path (a rotation in between is picked up, and a reload may have changed
 * it); when it cannot, it keeps what it inherited. FERRY_OK or FERRY_ERR with err. */
int accesslog_open(const char *target, char *err, size_t errlen);
/* SIGUSR1: reopen a file target by its path, keeping the descriptor number (dup2), so workers
 * writing at that moment never see a closed descriptor; it writes nothing else the workers
 * read but atomics. A failure is logged; the old file stays in use. */
void accesslog_reopen(void);
void accesslog_close(void);
/* Is a target other than off open? (Then requests keep what their line needs.) */
int accesslog_enabled(void);

struct accesslog_entry {
	const struct sockaddr *client;
	const char *user;       /* NULL: "-" */
	const char *request;    /* "METHOD TARGET" as received, or NULL when none was parsed */
	int status;             /* 0: no answer ("000") */
	uint64_t bytes_in, bytes_out, ms;
	const struct sockaddr *upstream; /* NULL: none */
	int reused;
};

/* A worker's buffer. */
struct accesslog_buf {
	char *data;
	size_t len, cap;
	int64_t sec;            /* the second whose text is cached in stamp */
	char stamp[24];
};

/* Append e's line (flushing first when it does not fit). */
void accesslog_add(struct accesslog_buf *b, const struct accesslog_entry *e);
/* Write what is buffered. */
void accesslog_flush(struct accesslog_buf *b);
/* Flush and free. */
void accesslog_buf_free(struct accesslog_buf *b);

/* Format e into out (at most outlen bytes, newline included); returns the length. Exposed
 * for the tests. */
size_t accesslog_format(struct accesslog_buf *b, const struct accesslog_entry *e, char *out,
			size_t outlen);

#endif
