/* log.c - the error log. Each line is formatted into one buffer and written with one write(2)
 * on an O_APPEND descriptor, so lines from all threads and processes never interleave. */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "status.h"

enum log_target { TARGET_STDERR, TARGET_SYSLOG, TARGET_OFF, TARGET_FILE };

static enum log_target log_target_kind = TARGET_STDERR;
static int log_fd = STDERR_FILENO;
static char log_path[4096];
static volatile int log_level_now = LOG_LVL_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_open(const char *target, enum log_level level, char *err, unsigned errlen)
{
	log_level_now = level;
	if (strcmp(target, "stderr") == 0) {
		log_target_kind = TARGET_STDERR;
		log_fd = STDERR_FILENO;
	} else if (strcmp(target, "syslog") == 0) {
		log_target_kind = TARGET_SYSLOG;
		openlog("ferry", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	} else if (strcmp(target, "off") == 0) {
		log_target_kind = TARGET_OFF;
	} else {
		int fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0) {
			snprintf(err, errlen, "cannot open error log %s: %s", target, strerror(errno));
			return FERRY_ERR;
		}
		snprintf(log_path, sizeof(log_path), "%s", target);
		if (log_target_kind == TARGET_FILE && log_fd > STDERR_FILENO)
			close(log_fd);
		log_target_kind = TARGET_FILE;
		log_fd = fd;
	}
	return FERRY_OK;
}

void log_reopen(void)
{
	if (log_target_kind != TARGET_FILE)
		return;
	int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_error("cannot reopen error log %s: %s", log_path, strerror(errno));
		return;
	}
	/* dup2 keeps the descriptor number, so threads writing concurrently never see a closed fd */
	if (dup2(fd, log_fd) < 0)
		log_error("cannot reopen error log %s: dup2: %s", log_path, strerror(errno));
	close(fd);
}

int log_errno_ordinary(int err)
{
	switch (err) {
	case ECONNRESET: case EPIPE: case ECONNREFUSED: case ETIMEDOUT: case EHOSTUNREACH:
	case ENETUNREACH: case ECONNABORTED: case ENOTCONN: case EHOSTDOWN: case ENETDOWN:
		return 1;
	default:
		return 0;
	}
}

void log_syscall(const char *call, int err, const char *fmt, ...)
{
	int saved = errno;
	enum log_level level = log_errno_ordinary(err) ? LOG_LVL_DEBUG : LOG_LVL_ERROR;
	if (log_enabled(level)) {
		char ctx[512];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(ctx, sizeof(ctx), fmt, ap);
		va_end(ap);
		log_msg(level, "%s: %s: %s", ctx, call, strerror(err));
	}
	errno = saved;
}

void log_set_level(enum log_level level)
{
	log_level_now = level;
}

int log_enabled(enum log_level level)
{
	return (int)level <= log_level_now && log_target_kind != TARGET_OFF;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	char line[1024];
	size_t n = 0;
	va_list ap;

	if (log_target_kind == TARGET_SYSLOG) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		va_start(ap, fmt);
		vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		syslog(prio[level], "%s", line);
		return;
	}
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ld ferry[%d] %s: ",
			      ts.tv_nsec / 1000000, (int)getpid(), level_names[level]);
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(log_fd, line, n);
	(void)w; /* nowhere left to report a failed log write */
}
