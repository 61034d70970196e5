/* log.h - the error log: levels, one write(2) per line, to stderr, syslog or a file. */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* target: "stderr", "syslog", "off" or a path. FERRY_OK or FERRY_ERR (reason in err). */
int log_open(const char *target, enum log_level level, char *err, unsigned errlen);
/* Reopen a file target (SIGUSR1, log rotation). */
void log_reopen(void);
void log_set_level(enum log_level level);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A failed system call, logged once by the code that knows what it meant:
 * "CONTEXT: CALL: strerror(err)". What peers cause in the ordinary course (a reset, a broken
 * pipe, a refused or timed-out connection, an unreachable network) is logged at debug only:
 * it is counted in the metrics and shows in the access log, it is not news for the operator.
 * Anything else (EBADF, ENOMEM, EINVAL...) is an error. errno is preserved. */
void log_syscall(const char *call, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Is err one of those ordinary peer errors? */
int log_errno_ordinary(int err);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) do { if (log_enabled(LOG_LVL_INFO)) log_msg(LOG_LVL_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_enabled(LOG_LVL_DEBUG)) log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
