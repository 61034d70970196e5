/* harness.h - helpers for the end-to-end suites: start the test origin and the real ferry
 * binary on loopback ports chosen at run time, talk HTTP to them, stop them.
 *
 * Every wait is bounded. Only processes the harness started are ever signalled, by pid.
 * Started processes get PR_SET_PDEATHSIG, so when a Check test dies (failed assertion in a
 * forked test, timeout) they die with it instead of lingering.
 *
 * Environment: FERRY_BIN (path of src/ferry) and FERRY_ORIGIN (path of tests/origin);
 * FERRY_E2E_KEEP=1 keeps each ferry's temporary directory (config, stderr log). */
#ifndef FERRY_TEST_HARNESS_H
#define FERRY_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#define HARNESS_TIMEOUT_MS 10000 /* hang guard for a single read or exchange */

/* ---- processes ---- */

struct harness_origin {
	pid_t pid;
	int port;             /* HTTP */
	int echo_port;        /* raw TCP echo, for CONNECT */
};

/* Start tests/origin and read its ports. FERRY_OK or FERRY_ERR (reason on stderr). */
int harness_origin_start(struct harness_origin *o);
void harness_origin_stop(struct harness_origin *o);

/* A config under construction: (section, key, value) entries, rendered grouped by section
 * in order of first appearance. */
#define HARNESS_CONF_MAX 64
struct harness_conf {
	struct {
		char section[32];
		char key[64];
		char value[512];
	} items[HARNESS_CONF_MAX];
	size_t n;
};

/* The base every e2e test starts from: listen on the port ferry_start picks (the value
 * "@PORT" is replaced), processes 1, threads 2, the given multiplexer, shutdown 1 s,
 * block_destinations empty (the origin is on loopback), connect_ports = the origin's echo
 * port, error_log stderr. o may be NULL (no connect_ports line). */
void harness_conf_base(struct harness_conf *c, const char *mux, const struct harness_origin *o);
/* Replace every entry of section.key by one with this value (or add it). */
void harness_conf_set(struct harness_conf *c, const char *section, const char *key,
		      const char *value);
/* Add one more entry (repeatable keys: listen, allow, deny...). */
void harness_conf_add(struct harness_conf *c, const char *section, const char *key,
		      const char *value);
void harness_conf_del(struct harness_conf *c, const char *section, const char *key);
/* Render to path, with "@PORT" in values replaced by port. FERRY_OK or FERRY_ERR. */
int harness_conf_write(const struct harness_conf *c, int port, const char *path);

struct harness_ferry {
	pid_t pid;
	int port;             /* the listener ferry was given */
	char dir[128];        /* temporary directory, removed by stop unless FERRY_E2E_KEEP */
	char conf[192];       /* the config file in dir */
	char log[192];        /* ferry's stderr (and stdout) */
};

/* Pick a port, write the config into a new temporary directory, start `ferry -f -c conf`
 * and wait (at most 5 s) until the port accepts connections. Retries with another port if
 * the picked one was taken in between. FERRY_OK, or FERRY_ERR with ferry's log on stderr. */
int harness_ferry_start(struct harness_ferry *f, const struct harness_conf *c);
/* The same, with RLIMIT_NOFILE set to nofile (soft and hard) for ferry before exec (0: keep
 * the limit this process has). */
int harness_ferry_start_nofile(struct harness_ferry *f, const struct harness_conf *c,
			       unsigned long nofile);
/* SIGTERM, wait at most 5 s, then SIGKILL. Returns the exit code, or -1 when it did not
 * exit by itself (killed, or by a signal). */
int harness_ferry_stop(struct harness_ferry *f);
/* The same, and *log gets ferry's whole log as it was after it exited (sanitizer reports
 * come at exit), malloc'd. */
int harness_ferry_stop_log(struct harness_ferry *f, char **log);
/* Where a sanitizer report (ASan, LSan, UBSan's "runtime error:") starts in log, or NULL. */
const char *harness_sanitizer_report(const char *log);
/* ferry's log so far, NUL-terminated, malloc'd (never NULL). */
char *harness_ferry_log(const struct harness_ferry *f);

/* On a failed check, the end of ferry's log next to Check's message (nothing when f never
 * started). HARNESS_EXPECT is ck_assert_msg that shows it first. */
void harness_show_log(const struct harness_ferry *f);
#define HARNESS_EXPECT(f, cond, ...)                                                   \
	do {                                                                           \
		if (!(cond)) {                                                         \
			harness_show_log(f);                                           \
			ck_abort_msg(__VA_ARGS__);                                     \
		}                                                                      \
	} while (0)

/* printf into a new string (abort when memory ran out); free it. */
char *harness_fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
/* CLOCK_MONOTONIC in ms, and a sleep that resumes after signals. */
long long harness_now_ms(void);
void harness_sleep_ms(int ms);

/* Stop whatever this process started and has not stopped yet (Check teardown). */
void harness_cleanup(void);

/* Run ferry with args (argv[1..], NULL-terminated) to completion, capturing stdout and
 * stderr; killed after timeout_ms. */
struct harness_run {
	int status;           /* exit code; -1 killed by a signal or the timeout */
	char *out, *err;      /* NUL-terminated, malloc'd */
};
int harness_run_ferry(struct harness_run *r, const char *const args[], int timeout_ms);
void harness_run_free(struct harness_run *r);

/* ---- ports, files ---- */

/* Read from fd until stop appears (NULL: until EOF), EOF, an error or timeout_ms. *how: 1
 * EOF, 2 error (a reset), 0 stop found or timeout. malloc'd, NUL-terminated, *n bytes (NULL
 * only when out of memory). */
char *harness_fd_collect(int fd, const char *stop, int timeout_ms, size_t *n, int *how);

/* A loopback port that was free a moment ago. */
int harness_free_port(void);
/* A port on 127.0.0.1 that refuses connections for the rest of the test process: bound, never
 * listening, and held (the socket stays open until the process exits), so neither another
 * suite's listener nor a connect's ephemeral source port can take it, as they can a port
 * harness_free_port() only found free. */
int harness_closed_port(void);
/* A listening socket on 127.0.0.1 (port 0: any) with this backlog; *port gets the port. */
int harness_listen(int port, int backlog, int *bound);
int harness_write_file(const char *path, const char *text);
/* n bytes of the origin's pattern: byte i = 'a' + i % 26. malloc'd. */
char *harness_pattern(size_t n);

/* ---- /proc: watching the processes ferry runs as ---- */

/* A live child process of ferry's master (the process that serves), waiting at most
 * timeout_ms for one to appear; -1 if none. */
pid_t harness_ferry_child(const struct harness_ferry *f, int timeout_ms);
/* A "Name:  N kB" field of /proc/PID/status (VmRSS, VmHWM...) in kB, or -1. */
long harness_proc_status_kb(pid_t pid, const char *field);
/* CPU time (user + system, all threads) of pid in milliseconds, or -1. */
long long harness_proc_cpu_ms(pid_t pid);
/* Open file descriptors of pid, or -1. */
int harness_proc_nfds(pid_t pid);
/* Wait at most timeout_ms for a connection on the listening socket lfd; the accepted fd
 * (non-blocking, close-on-exec) or -1. */
int harness_accept(int lfd, int timeout_ms);

/* ---- client connections ---- */

struct harness_conn {
	int fd;
	char *buf;            /* bytes read but not consumed yet */
	size_t len, cap;
	int eof;              /* peer closed its side cleanly */
	int err;              /* errno of a failed read (ECONNRESET...), ETIMEDOUT on timeout */
};

/* Connect to 127.0.0.1:port (bounded). FERRY_OK or FERRY_ERR. */
int harness_connect(struct harness_conn *c, int port);
int harness_send(struct harness_conn *c, const void *p, size_t n);
int harness_send_str(struct harness_conn *c, const char *s);
void harness_shutdown_write(struct harness_conn *c);
void harness_close(struct harness_conn *c);

/* Read until at least n bytes are buffered, EOF, error or the timeout. Returns buffered. */
size_t harness_read_atleast(struct harness_conn *c, size_t n, int timeout_ms);
/* Take n buffered bytes (n <= c->len) into a malloc'd, NUL-terminated copy. */
char *harness_take(struct harness_conn *c, size_t n);
/* Read until EOF (or error/timeout); everything read is returned, malloc'd; *n its size.
 * c->eof says whether the end was a clean close. */
char *harness_read_to_close(struct harness_conn *c, size_t *n, int timeout_ms);

/* Send out (shutting down writing afterwards if shut) while reading, until want bytes were
 * received (want = (size_t)-1: until EOF). *in gets what was received, malloc'd, *inlen its
 * size. FERRY_OK when everything was sent and the reading goal met, else FERRY_ERR. */
int harness_pump(struct harness_conn *c, const void *out, size_t outlen, int shut, size_t want,
		 char **in, size_t *inlen, int timeout_ms);

enum harness_framing { HARNESS_NONE, HARNESS_LENGTH, HARNESS_CHUNKED, HARNESS_CLOSE };

#define HARNESS_FIELDS_MAX 128
struct harness_resp {
	int status;
	int minor;            /* HTTP/1.x */
	char *head;           /* the head as received, status line to the empty line */
	size_t head_len;
	char *body;           /* decoded payload, NUL-terminated */
	size_t body_len;
	enum harness_framing framing;
	int complete;         /* the body ended as its framing says (close: by a clean EOF) */
	size_t nfields;
	struct {
		char *name, *value; /* NUL-terminated copies, value trimmed */
	} fields[HARNESS_FIELDS_MAX];
};

#define HARNESS_NOBODY 1  /* response to HEAD or CONNECT: no body whatever the head says */

/* Read one response (1xx included: call again for the final one). FERRY_OK when a head was
 * read and parsed (r->complete says if the body was read whole), FERRY_ERR when no valid
 * head arrived (EOF, reset, garbage or timeout; c->err, c->eof say which). */
int harness_read_response(struct harness_conn *c, struct harness_resp *r, int flags,
			  int timeout_ms);
/* The value of the first field with this name (case-insensitive), or NULL. */
const char *harness_resp_header(const struct harness_resp *r, const char *name);
/* How many fields carry this name. */
int harness_resp_count(const struct harness_resp *r, const char *name);
/* Does a comma-separated field with this name hold token (case-insensitive)? */
int harness_resp_has_token(const struct harness_resp *r, const char *name, const char *token);
void harness_resp_free(struct harness_resp *r);

/* One-shot: connect, send req, read one response (flags as above), close. FERRY_OK when a
 * head was read. */
int harness_request(int port, const char *req, struct harness_resp *r, int flags);

#endif
