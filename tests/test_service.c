/* test_service.c - ferry as a service: one connection wakes one process (no thundering
 * herd), a killed child is replaced while the listeners stay open, graceful stop finishes
 * requests in flight, SIGHUP reloads (and keeps running on a bad file), daemon mode with a
 * pidfile. Runs the real binary; every wait is bounded. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "status.h"

static const char *const muxes[] = { "poll", "epoll" };

static void teardown(void)
{
	harness_cleanup();
}

/* pids of the direct children of pid, from /proc */
static int children_of(pid_t pid, pid_t *out, int max)
{
	int n = 0;
	DIR *d = opendir("/proc");
	if (d == NULL)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < max) {
		char path[300], buf[512];
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = '\0';
		char *rp = strrchr(buf, ')');
		int ppid = 0;
		char state;
		if (rp && sscanf(rp + 2, "%c %d", &state, &ppid) == 2 && ppid == pid && state != 'Z')
			out[n++] = atoi(e->d_name);
	}
	closedir(d);
	return n;
}

/* Wait up to ms for pid to exit (bounded: a hang guard). Returns pid when it did, 0 when it
 * is still running; *st gets its status. */
static pid_t wait_exit(pid_t pid, int ms, int *st)
{
	pid_t w = 0;
	*st = 0;
	for (int i = 0; i < ms / 10 && w == 0; i++) {
		w = waitpid(pid, st, WNOHANG);
		if (w == 0)
			harness_sleep_ms(10);
	}
	return w;
}

/* SIGTERM the master, wait for it, return its log (malloc'd) and exit status; then let the
 * harness clean up (it removes the directory holding the log). */
static char *stop_and_log(struct harness_ferry *f, int *status)
{
	*status = -1;
	if (kill(f->pid, SIGTERM) == 0) {
		int st;
		pid_t w = wait_exit(f->pid, 10000, &st);
		if (w == f->pid && WIFEXITED(st))
			*status = WEXITSTATUS(st);
		if (w == f->pid)
			f->pid = 0;
	}
	char *log = harness_ferry_log(f);
	harness_ferry_stop(f);
	return log;
}

/* Wait (bounded) until the master has n children; returns how many it has. */
static int wait_children(pid_t master, pid_t *kids, int n)
{
	int got = 0;
	for (int i = 0; i < 300; i++) {
		got = children_of(master, kids, 8);
		if (got == n)
			break;
		harness_sleep_ms(10);
	}
	return got;
}

/* A request ferry answers itself (origin-form -> 400): exercises accept and hand-off only. */
static int quick_request(int port)
{
	struct harness_resp r;
	int ok = harness_request(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0) == FERRY_OK &&
		 r.status == 400;
	if (ok || r.head)
		harness_resp_free(&r);
	return ok;
}

/* With four processes, each new connection must wake exactly one acceptor: every child
 * reports at exit how many wake-ups found nothing to accept, and the sum must be zero
 * while the accepted connections add up. */
START_TEST(one_connection_wakes_one_process)
{
	struct harness_conf c;
	harness_conf_base(&c, muxes[_i], NULL);
	harness_conf_set(&c, "server", "processes", "4");
	harness_conf_set(&c, "server", "threads", "1");
	harness_conf_set(&c, "log", "level", "info");
	struct harness_ferry f;
	ck_assert_int_eq(harness_ferry_start(&f, &c), FERRY_OK);
	const int N = 200;
	for (int i = 0; i < N; i++)
		ck_assert_msg(quick_request(f.port), "request %d not answered", i);
	/* the harness probed the port once when starting: that connection counts too */
	int st;
	char *log = stop_and_log(&f, &st);
	ck_assert_int_eq(st, 0);
	unsigned long long accepted = 0, empty = 0;
	int children = 0;
	for (char *p = log; (p = strstr(p, "child exiting: ")) != NULL; p++) {
		unsigned long long w, a, d, e;
		ck_assert_int_eq(sscanf(p, "child exiting: %llu wake-ups, %llu accepted, %llu denied, %llu wake-ups found nothing",
					&w, &a, &d, &e), 4);
		accepted += a;
		empty += e;
		children++;
	}
	ck_assert_int_eq(children, 4);
	ck_assert_msg(accepted >= (unsigned long long)N && accepted <= (unsigned long long)N + 4,
		      "accepted %llu, expected %d (+ the harness's probes)", accepted, N);
	ck_assert_msg(empty == 0, "%llu wake-ups found nothing: a thundering herd", empty);
	free(log);
}
END_TEST

/* SIGKILL a child: the master restarts it within a second, and a client connecting in the
 * meantime is served (delayed, never refused: the listening socket stayed open). */
START_TEST(killed_child_is_replaced)
{
	struct harness_conf c;
	harness_conf_base(&c, muxes[_i], NULL);
	harness_conf_set(&c, "server", "processes", "1");
	struct harness_ferry f;
	ck_assert_int_eq(harness_ferry_start(&f, &c), FERRY_OK);
	pid_t kids[8];
	ck_assert_int_eq(wait_children(f.pid, kids, 1), 1);
	pid_t old = kids[0];
	ck_assert_int_eq(kill(old, SIGKILL), 0);
	/* at once, while no child may be running */
	ck_assert_msg(quick_request(f.port), "client refused while the child was being replaced");
	int n = 0;
	for (int i = 0; i < 100; i++) {
		n = children_of(f.pid, kids, 8);
		if (n == 1 && kids[0] != old)
			break;
		harness_sleep_ms(10);
	}
	ck_assert_int_eq(n, 1);
	ck_assert_int_ne(kids[0], old);
	ck_assert(quick_request(f.port));
	ck_assert_int_eq(harness_ferry_stop(&f), 0);
}
END_TEST

/* SIGTERM while a request is in flight: the response still arrives whole, then ferry exits 0. */
START_TEST(graceful_stop_finishes_request)
{
	struct harness_origin o;
	ck_assert_int_eq(harness_origin_start(&o), FERRY_OK);
	struct harness_conf c;
	harness_conf_base(&c, muxes[_i], &o);
	harness_conf_set(&c, "timeouts", "shutdown", "5");
	struct harness_ferry f;
	ck_assert_int_eq(harness_ferry_start(&f, &c), FERRY_OK);
	struct harness_conn conn;
	ck_assert_int_eq(harness_connect(&conn, f.port), FERRY_OK);
	char req[256];
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/sleep/700 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", o.port);
	ck_assert_int_eq(harness_send_str(&conn, req), FERRY_OK);
	harness_sleep_ms(200);
	ck_assert_int_eq(kill(f.pid, SIGTERM), 0);
	struct harness_resp r;
	ck_assert_int_eq(harness_read_response(&conn, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert(r.complete);
	ck_assert_str_eq(r.body, "ok");
	/* the response said the connection ends */
	ck_assert(harness_resp_has_token(&r, "Connection", "close"));
	harness_resp_free(&r);
	harness_close(&conn);
	int st;
	pid_t w = wait_exit(f.pid, 5000, &st);
	ck_assert_int_eq(w, f.pid);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	f.pid = 0;
	harness_ferry_stop(&f);
	harness_origin_stop(&o);
}
END_TEST

/* A client the kernel queued before SIGTERM (the child was not accepting at that moment:
 * here it is SIGSTOPped) is still served, not reset when the sockets close. */
START_TEST(graceful_stop_serves_queued_client)
{
	struct harness_conf c;
	harness_conf_base(&c, muxes[_i], NULL);
	struct harness_ferry f;
	ck_assert_int_eq(harness_ferry_start(&f, &c), FERRY_OK);
	ck_assert(quick_request(f.port));
	pid_t child = harness_ferry_child(&f, 5000);
	ck_assert_int_gt(child, 0);
	ck_assert_int_eq(kill(child, SIGSTOP), 0);
	struct harness_conn conn;
	ck_assert_int_eq(harness_connect(&conn, f.port), FERRY_OK); /* in the backlog */
	ck_assert_int_eq(harness_send_str(&conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), FERRY_OK);
	ck_assert_int_eq(kill(f.pid, SIGTERM), 0);
	harness_sleep_ms(200); /* the master has passed SIGTERM on: it waits in the stopped child */
	ck_assert_int_eq(kill(child, SIGCONT), 0);
	struct harness_resp r;
	ck_assert_msg(harness_read_response(&conn, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK,
		      "queued client not served (err %d, eof %d)", conn.err, conn.eof);
	ck_assert_int_eq(r.status, 400);
	harness_resp_free(&r);
	harness_close(&conn);
	int st;
	pid_t w = wait_exit(f.pid, 5000, &st);
	ck_assert_int_eq(w, f.pid);
	f.pid = 0;
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	harness_ferry_stop(&f);
}
END_TEST

/* SIGHUP with a valid file: new children, still serving; with a broken file: logged, the old
 * configuration keeps serving. */
START_TEST(reload_valid_and_invalid)
{
	struct harness_conf c;
	harness_conf_base(&c, muxes[_i], NULL);
	harness_conf_set(&c, "log", "level", "info");
	struct harness_ferry f;
	ck_assert_int_eq(harness_ferry_start(&f, &c), FERRY_OK);
	pid_t before[8], after[8];
	ck_assert_int_eq(wait_children(f.pid, before, 1), 1);

	ck_assert_int_eq(kill(f.pid, SIGHUP), 0);
	int n = 0;
	for (int i = 0; i < 200; i++) {
		n = children_of(f.pid, after, 8);
		if (n == 1 && after[0] != before[0])
			break;
		harness_sleep_ms(10);
	}
	ck_assert_msg(n == 1 && after[0] != before[0], "no new child after SIGHUP");
	ck_assert(quick_request(f.port));

	/* break the file: one bad key */
	FILE *fp = fopen(f.conf, "a");
	ck_assert_ptr_nonnull(fp);
	fputs("[server]\nno_such_key = 1\n", fp);
	fclose(fp);
	ck_assert_int_eq(kill(f.pid, SIGHUP), 0);
	char *log = NULL;
	for (int i = 0; i < 200; i++) {
		free(log);
		log = harness_ferry_log(&f);
		if (strstr(log, "still running on the previous configuration"))
			break;
		harness_sleep_ms(10);
	}
	ck_assert_ptr_nonnull(strstr(log, "no_such_key"));
	ck_assert_ptr_nonnull(strstr(log, "still running on the previous configuration"));
	free(log);
	ck_assert(quick_request(f.port));
	ck_assert_int_eq(children_of(f.pid, before, 8), 1);
	ck_assert_int_eq(before[0], after[0]);
	ck_assert_int_eq(harness_ferry_stop(&f), 0);
}
END_TEST

/* Does the file at path hold s (waiting at most 3 s for it)? */
static int file_has(const char *path, const char *s)
{
	for (int i = 0; i < 300; i++) {
		FILE *fp = fopen(path, "r");
		if (fp) {
			char line[1024];
			int found = 0;
			while (!found && fgets(line, sizeof(line), fp))
				found = strstr(line, s) != NULL;
			fclose(fp);
			if (found)
				return 1;
		}
		harness_sleep_ms(10);
	}
	return 0;
}

/* daemon = yes: the command returns, the pidfile names a live master that serves; SIGHUP
 * reloads it in place; SIGUSR1 reopens its log; a second start while it runs is refused
 * (exit 3); SIGTERM stops it and removes the pidfile. */
START_TEST(daemon_and_pidfile)
{
	char dir[] = "/tmp/ferry-daemon-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char conf[256], pidfile[256], val[300];
	snprintf(conf, sizeof(conf), "%s/proxy.ini", dir);
	snprintf(pidfile, sizeof(pidfile), "%s/ferry.pid", dir);
	int port = harness_free_port();
	struct harness_conf c;
	harness_conf_base(&c, muxes[_i], NULL);
	harness_conf_set(&c, "server", "daemon", "yes");
	harness_conf_set(&c, "server", "pidfile", pidfile);
	snprintf(val, sizeof(val), "%s/error.log", dir);
	harness_conf_set(&c, "log", "error_log", val);
	ck_assert_int_eq(harness_conf_write(&c, port, conf), FERRY_OK);

	/* a stale pidfile (its process is gone) does not stop the start */
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	ck_assert_int_gt(dead, 0);
	waitpid(dead, NULL, 0);
	char stale[32];
	snprintf(stale, sizeof(stale), "%d\n", (int)dead);
	ck_assert_int_eq(harness_write_file(pidfile, stale), FERRY_OK);

	const char *args[] = { "-c", conf, NULL };
	struct harness_run r;
	harness_run_ferry(&r, args, 5000);
	ck_assert_msg(r.status == 0, "daemon start: status %d, stderr %s", r.status, r.err);
	harness_run_free(&r);

	int pid = 0;
	for (int i = 0; i < 200 && pid == 0; i++) {
		FILE *fp = fopen(pidfile, "r");
		if (fp) {
			if (fscanf(fp, "%d", &pid) != 1 || pid == dead)
				pid = 0;
			fclose(fp);
		}
		if (pid == 0)
			harness_sleep_ms(10);
	}
	ck_assert_int_gt(pid, 1);
	ck_assert_int_eq(kill(pid, 0), 0);
	int served = 0;
	for (int i = 0; i < 100 && !served; i++) {
		served = quick_request(port);
		if (!served)
			harness_sleep_ms(20);
	}
	ck_assert(served);

	/* SIGHUP: the same master (the pidfile is unchanged) on the new configuration */
	harness_conf_set(&c, "log", "level", "info");
	ck_assert_int_eq(harness_conf_write(&c, port, conf), FERRY_OK);
	ck_assert_int_eq(kill(pid, SIGHUP), 0);
	ck_assert(file_has(val, "reloaded "));
	ck_assert(quick_request(port));
	FILE *pf = fopen(pidfile, "r");
	int pid2 = 0;
	ck_assert_ptr_nonnull(pf);
	ck_assert_int_eq(fscanf(pf, "%d", &pid2), 1);
	fclose(pf);
	ck_assert_int_eq(pid2, pid);

	/* SIGUSR1 after the log was renamed (what logrotate does): a new file at the path */
	char rotated[320];
	snprintf(rotated, sizeof(rotated), "%s.1", val);
	ck_assert_int_eq(rename(val, rotated), 0);
	ck_assert_int_eq(kill(pid, SIGUSR1), 0);
	ck_assert_msg(file_has(val, "log files reopened"), "no new %s after SIGUSR1", val);

	/* a second instance with the same pidfile is refused */
	harness_conf_set(&c, "server", "daemon", "no");
	char conf2[300];
	snprintf(conf2, sizeof(conf2), "%s/second.ini", dir);
	ck_assert_int_eq(harness_conf_write(&c, harness_free_port(), conf2), FERRY_OK);
	const char *args2[] = { "-f", "-c", conf2, NULL };
	harness_run_ferry(&r, args2, 5000);
	ck_assert_int_eq(r.status, 3);
	ck_assert_ptr_nonnull(strstr(r.err, "pidfile"));
	harness_run_free(&r);

	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	int gone = 0;
	for (int i = 0; i < 500 && !gone; i++) {
		gone = kill(pid, 0) != 0 && access(pidfile, F_OK) != 0;
		if (!gone)
			harness_sleep_ms(10);
	}
	ck_assert_msg(gone, "daemon still running or pidfile left behind");
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* As root, a pidfile in a directory another user can write to is refused (exit 3): that
 * user could replace it and make root's `kill $(cat pidfile)` hit any process. */
START_TEST(pidfile_directory_must_be_root_only)
{
	if (geteuid() != 0)
		return; /* the check applies to root only */
	char dir[] = "/tmp/ferry-piddir-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, _i ? 01777 : 0775), 0);
	char conf[256], pidfile[256];
	snprintf(conf, sizeof(conf), "%s/proxy.ini", dir);
	snprintf(pidfile, sizeof(pidfile), "%s/ferry.pid", dir);
	struct harness_conf c;
	harness_conf_base(&c, muxes[_i], NULL);
	harness_conf_set(&c, "server", "pidfile", pidfile);
	ck_assert_int_eq(harness_conf_write(&c, harness_free_port(), conf), FERRY_OK);
	const char *args[] = { "-f", "-c", conf, NULL };
	struct harness_run r;
	harness_run_ferry(&r, args, 5000);
	ck_assert_int_eq(r.status, 3);
	ck_assert_ptr_nonnull(strstr(r.err, "writable by root only"));
	harness_run_free(&r);
	ck_assert_int_ne(access(pidfile, F_OK), 0);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* [limits] per_client: the connection over the cap gets 429 and is closed; a slot freed by
 * a client that leaves is given to the next one. */
START_TEST(per_client_cap)
{
	struct harness_conf c;
	harness_conf_base(&c, muxes[_i], NULL);
	harness_conf_set(&c, "limits", "per_client", "2");
	struct harness_ferry f;
	ck_assert_int_eq(harness_ferry_start(&f, &c), FERRY_OK);
	/* the harness's start-up probe has come and gone once a request round-trips */
	ck_assert(quick_request(f.port));
	harness_sleep_ms(100);
	struct harness_conn a, b, x;
	ck_assert_int_eq(harness_connect(&a, f.port), FERRY_OK);
	ck_assert_int_eq(harness_connect(&b, f.port), FERRY_OK);
	harness_sleep_ms(100); /* both counted in before the third arrives */
	ck_assert_int_eq(harness_connect(&x, f.port), FERRY_OK);
	struct harness_resp r;
	ck_assert_int_eq(harness_read_response(&x, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 429);
	ck_assert(harness_resp_has_token(&r, "Connection", "close"));
	harness_resp_free(&r);
	harness_close(&x);
	/* the two counted connections still work */
	ck_assert_int_eq(harness_send_str(&a, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), FERRY_OK);
	ck_assert_int_eq(harness_read_response(&a, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 400);
	harness_resp_free(&r);
	harness_close(&a);
	/* a's slot frees once ferry has seen it go */
	int served = 0;
	for (int i = 0; i < 100 && !served; i++) {
		served = quick_request(f.port);
		if (!served)
			harness_sleep_ms(20);
	}
	ck_assert(served);
	harness_close(&b);
	ck_assert_int_eq(harness_ferry_stop(&f), 0);
}
END_TEST

/* max_connections: at the limit the acceptor stops accepting (the kernel queues new
 * clients), spends no CPU, and serves the queued client as soon as a slot frees. */
START_TEST(max_connections_backpressure)
{
	struct harness_conf c;
	harness_conf_base(&c, muxes[_i], NULL);
	harness_conf_set(&c, "server", "max_connections", "3");
	harness_conf_set(&c, "server", "threads", "1");
	struct harness_ferry f;
	ck_assert_int_eq(harness_ferry_start(&f, &c), FERRY_OK);
	ck_assert(quick_request(f.port));
	struct harness_conn held[3], late;
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(harness_connect(&held[i], f.port), FERRY_OK);
		ck_assert_int_eq(harness_send_str(&held[i], "GET "), FERRY_OK); /* a head begun */
	}
	harness_sleep_ms(200);
	pid_t child = harness_ferry_child(&f, 5000);
	ck_assert_int_gt(child, 0);
	ck_assert_int_eq(harness_connect(&late, f.port), FERRY_OK); /* queued by the kernel */
	ck_assert_int_eq(harness_send_str(&late, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), FERRY_OK);
	long cpu0 = harness_proc_cpu_ms(child);
	harness_sleep_ms(1000);
	long cpu1 = harness_proc_cpu_ms(child);
	ck_assert_msg(cpu1 - cpu0 < 200, "%ld ms of CPU in 1 s at the limit", cpu1 - cpu0);
	/* not served while the limit holds */
	ck_assert_uint_eq(harness_read_atleast(&late, 1, 300), 0);
	ck_assert_int_eq(late.err, ETIMEDOUT);
	late.err = 0; /* that wait was meant to time out */
	harness_close(&held[0]);
	struct harness_resp r;
	ck_assert_int_eq(harness_read_response(&late, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 400);
	harness_resp_free(&r);
	harness_close(&late);
	harness_close(&held[1]);
	harness_close(&held[2]);
	ck_assert_int_eq(harness_ferry_stop(&f), 0);
}
END_TEST

/* How many times s occurs in the log of f. */
static int log_count(const struct harness_ferry *f, const char *s)
{
	char *log = harness_ferry_log(f);
	int n = 0;
	for (char *p = log; (p = strstr(p, s)) != NULL; p += strlen(s))
		n++;
	free(log);
	return n;
}

/* Wait (bounded) until the log holds s at least n times. */
static int wait_log(const struct harness_ferry *f, const char *s, int n)
{
	for (int i = 0; i < 1000; i++) {
		if (log_count(f, s) >= n)
			return 1;
		harness_sleep_ms(10);
	}
	return 0;
}

/* ---- reload under load ---- */

struct load {
	int port, oport;
	int keepalive;          /* 1: one connection for many requests; 0: one per request */
	const char *path;       /* on the origin */
	size_t body_len;        /* what a good response carries */
	atomic_int *stop;
	long ok, failed, retried;
	char why[200];          /* the first failure */
};

static void load_fail(struct load *l, const char *what, const struct harness_conn *c)
{
	if (l->failed++ == 0)
		snprintf(l->why, sizeof(l->why), "%s (%s connection, err %d, eof %d)", what,
			 l->keepalive ? "kept-alive" : "new", c->err, c->eof);
}

/* A client that counts every request that does not come back whole as a failure. The one
 * exception is what every HTTP client retries (RFC 9112 section 9.3.1): a kept-alive
 * connection closed by the server, between requests, before a byte of the answer came. */
static void *load_client(void *arg)
{
	struct load *l = arg;
	struct harness_conn c;
	int open = 0, reused = 0;
	char req[256];
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n",
		 l->oport, l->path, l->oport, l->keepalive ? "" : "Connection: close\r\n");
	while (!atomic_load(l->stop)) {
		if (!open) {
			if (harness_connect(&c, l->port) != FERRY_OK) {
				memset(&c, 0, sizeof(c));
				load_fail(l, "connect failed", &c);
				continue;
			}
			open = 1;
			reused = 0;
		}
		struct harness_resp r;
		int sent = harness_send_str(&c, req) == FERRY_OK;
		int got = sent && harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK;
		if (!got) {
			if (reused && c.len == 0 && c.err != ETIMEDOUT) {
				l->retried++;
			} else {
				load_fail(l, sent ? "no response" : "send failed", &c);
			}
			harness_close(&c);
			open = 0;
			continue;
		}
		if (r.status == 200 && r.complete && r.body_len == l->body_len)
			l->ok++;
		else
			load_fail(l, "bad response", &c);
		int closing = harness_resp_has_token(&r, "Connection", "close") || !l->keepalive;
		harness_resp_free(&r);
		if (closing) {
			harness_close(&c);
			open = 0;
		} else {
			reused = 1;
		}
	}
	if (open)
		harness_close(&c);
	return NULL;
}

/* Ten reloads under continuous load, with the processes count changing between them: six
 * client threads (kept-alive and new connections, quick requests and ones that are in flight
 * across a reload) see no failed request. */
START_TEST(reload_under_load)
{
	struct harness_origin o;
	ck_assert_int_eq(harness_origin_start(&o), FERRY_OK);
	struct harness_conf c;
	harness_conf_base(&c, muxes[_i], &o);
	harness_conf_set(&c, "server", "processes", "2");
	harness_conf_set(&c, "timeouts", "shutdown", "10");
	harness_conf_set(&c, "log", "level", "info");
	struct harness_ferry f;
	ck_assert_int_eq(harness_ferry_start(&f, &c), FERRY_OK);

	enum { NCLIENTS = 6 };
	atomic_int stop;
	atomic_init(&stop, 0);
	struct load loads[NCLIENTS];
	pthread_t th[NCLIENTS];
	for (int i = 0; i < NCLIENTS; i++) {
		memset(&loads[i], 0, sizeof(loads[i]));
		loads[i].port = f.port;
		loads[i].oport = o.port;
		loads[i].keepalive = i % 2;
		loads[i].path = i < 4 ? "/len/1000" : "/sleep/150";
		loads[i].body_len = i < 4 ? 1000 : 2;
		loads[i].stop = &stop;
		ck_assert_int_eq(pthread_create(&th[i], NULL, load_client, &loads[i]), 0);
	}
	static const char *const procs[] = { "3", "1", "2", "2", "4", "1", "2", "3", "1", "2" };
	harness_sleep_ms(300);
	for (int i = 0; i < 10; i++) {
		harness_conf_set(&c, "server", "processes", procs[i]);
		ck_assert_int_eq(harness_conf_write(&c, f.port, f.conf), FERRY_OK);
		ck_assert_int_eq(kill(f.pid, SIGHUP), 0);
		ck_assert_msg(wait_log(&f, "reloaded ", i + 1), "reload %d not logged", i + 1);
		harness_sleep_ms(300);
	}
	atomic_store(&stop, 1);
	long ok = 0, failed = 0, retried = 0;
	for (int i = 0; i < NCLIENTS; i++) {
		pthread_join(th[i], NULL);
		ok += loads[i].ok;
		failed += loads[i].failed;
		retried += loads[i].retried;
		fprintf(stderr, "client %d (%s, %s): %ld ok, %ld failed%s%s\n", i,
			loads[i].keepalive ? "kept-alive" : "new connections", loads[i].path, loads[i].ok,
			loads[i].failed, loads[i].failed ? ", first: " : "", loads[i].why);
	}
	fprintf(stderr, "reload_under_load (%s): %ld ok, %ld failed, %ld kept-alive retries\n",
		muxes[_i], ok, failed, retried);
	ck_assert_int_eq(failed, 0);
	ck_assert_int_gt(ok, 100);
	/* each client thread got answers throughout */
	for (int i = 0; i < NCLIENTS; i++)
		ck_assert_int_gt(loads[i].ok, 5);
	pid_t kids[8];
	ck_assert_int_eq(wait_children(f.pid, kids, 2), 2);
	int st;
	char *log = stop_and_log(&f, &st);
	ck_assert_int_eq(st, 0);
	ck_assert_ptr_null(strstr(log, "still running after the shutdown timeout"));
	free(log);
	harness_origin_stop(&o);
}
END_TEST

/* A reload that adds a listen address serves on it; one that removes it stops serving there
 * and keeps the other; an added address that is taken makes the reload fail as a whole. */
START_TEST(reload_changes_listeners)
{
	struct harness_conf c;
	harness_conf_base(&c, muxes[_i], NULL);
	harness_conf_set(&c, "log", "level", "info");
	struct harness_ferry f;
	ck_assert_int_eq(harness_ferry_start(&f, &c), FERRY_OK);
	int p2 = harness_free_port();
	char val[64];
	snprintf(val, sizeof(val), "127.0.0.1:%d", p2);
	harness_conf_add(&c, "server", "listen", val);
	ck_assert_int_eq(harness_conf_write(&c, f.port, f.conf), FERRY_OK);
	ck_assert_int_eq(kill(f.pid, SIGHUP), 0);
	ck_assert(wait_log(&f, "reloaded ", 1));
	ck_assert_msg(quick_request(p2), "the added listener does not serve");
	ck_assert(quick_request(f.port));

	/* taken: a socket of ours listens there already */
	int bound = 0;
	int busy = harness_listen(0, 8, &bound);
	ck_assert_int_ge(busy, 0);
	snprintf(val, sizeof(val), "127.0.0.1:%d", bound);
	harness_conf_add(&c, "server", "listen", val);
	ck_assert_int_eq(harness_conf_write(&c, f.port, f.conf), FERRY_OK);
	ck_assert_int_eq(kill(f.pid, SIGHUP), 0);
	ck_assert(wait_log(&f, "still running on the previous configuration", 1));
	close(busy);
	ck_assert(quick_request(p2));
	ck_assert(quick_request(f.port));

	/* removed again */
	harness_conf_del(&c, "server", "listen");
	harness_conf_add(&c, "server", "listen", "127.0.0.1:@PORT");
	ck_assert_int_eq(harness_conf_write(&c, f.port, f.conf), FERRY_OK);
	ck_assert_int_eq(kill(f.pid, SIGHUP), 0);
	ck_assert(wait_log(&f, "reloaded ", 2));
	pid_t kids[8];
	ck_assert_int_eq(wait_children(f.pid, kids, 1), 1); /* the old child is gone */
	struct harness_conn conn;
	ck_assert_int_eq(harness_connect(&conn, p2), FERRY_ERR);
	ck_assert(quick_request(f.port));
	ck_assert_int_eq(harness_ferry_stop(&f), 0);
}
END_TEST

/* A child that keeps dying is restarted with growing delays: at once, 100 ms, 200 ms... */
START_TEST(crash_backoff_grows)
{
	struct harness_conf c;
	harness_conf_base(&c, muxes[_i], NULL);
	struct harness_ferry f;
	ck_assert_int_eq(harness_ferry_start(&f, &c), FERRY_OK);
	for (int round = 0; round < 4; round++) {
		pid_t kids[8];
		ck_assert_int_eq(wait_children(f.pid, kids, 1), 1);
		ck_assert_int_eq(kill(kids[0], SIGKILL), 0);
		char want[64];
		snprintf(want, sizeof(want), "restarting in %d ms", round ? 100 << (round - 1) : 0);
		ck_assert_msg(wait_log(&f, want, 1), "no \"%s\" in the log", want);
		/* wait for the replacement before killing again */
		pid_t now[8];
		int n = 0;
		for (int i = 0; i < 300; i++) {
			n = children_of(f.pid, now, 8);
			if (n == 1 && now[0] != kids[0])
				break;
			harness_sleep_ms(10);
		}
		ck_assert(n == 1 && now[0] != kids[0]);
	}
	ck_assert(quick_request(f.port));
	ck_assert_int_eq(harness_ferry_stop(&f), 0);
}
END_TEST

/* A second SIGTERM (or SIGQUIT) does not wait for a request in flight. */
START_TEST(second_sigterm_stops_at_once)
{
	struct harness_origin o;
	ck_assert_int_eq(harness_origin_start(&o), FERRY_OK);
	struct harness_conf c;
	harness_conf_base(&c, muxes[_i], &o);
	harness_conf_set(&c, "timeouts", "shutdown", "60");
	struct harness_ferry f;
	ck_assert_int_eq(harness_ferry_start(&f, &c), FERRY_OK);
	struct harness_conn conn;
	ck_assert_int_eq(harness_connect(&conn, f.port), FERRY_OK);
	char req[256];
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/sleep/30000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", o.port);
	ck_assert_int_eq(harness_send_str(&conn, req), FERRY_OK);
	harness_sleep_ms(200);
	ck_assert_int_eq(kill(f.pid, _i ? SIGQUIT : SIGTERM), 0);
	harness_sleep_ms(300);
	if (!_i) {
		ck_assert_int_eq(waitpid(f.pid, NULL, WNOHANG), 0); /* graceful: still waiting */
		ck_assert_int_eq(kill(f.pid, SIGTERM), 0);
	}
	int st;
	pid_t w = wait_exit(f.pid, 3000, &st);
	ck_assert_msg(w == f.pid, "still running 3 s after the second signal");
	f.pid = 0;
	ck_assert(WIFEXITED(st));
	harness_close(&conn);
	harness_ferry_stop(&f);
	harness_origin_stop(&o);
}
END_TEST

/* While ferry starts, a client connects again and again: every connection the kernel accepts
 * must get an answer. (The check for a port already in use once listened on a socket it then
 * closed: a client queued on it in that moment was reset.) Several starts, since the window is
 * short. */
START_TEST(start_resets_no_client)
{
	const char *bin = getenv("FERRY_BIN");
	ck_assert_ptr_nonnull(bin);
	int answered = 0, refused = 0;
	for (int round = 0; round < 8; round++) {
		struct harness_conf c;
		harness_conf_base(&c, muxes[_i], NULL);
		harness_conf_set(&c, "server", "threads", "1");
		char dir[] = "/tmp/ferry-start-XXXXXX", path[64];
		ck_assert_ptr_nonnull(mkdtemp(dir));
		snprintf(path, sizeof(path), "%s/proxy.ini", dir);
		int port = harness_free_port();
		ck_assert_int_gt(port, 0);
		ck_assert_int_eq(harness_conf_write(&c, port, path), FERRY_OK);
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			int devnull = open("/dev/null", O_WRONLY);
			dup2(devnull, 1);
			dup2(devnull, 2);
			execl(bin, "ferry", "-f", "-c", path, (char *)NULL);
			_exit(127);
		}
		/* from before the first bind until a few answers came: each accepted connection
		 * carries a request ferry answers itself (origin-form: 400) */
		int got = 0;
		for (int i = 0; i < 5000 && got < 5; i++) {
			struct harness_conn hc;
			if (harness_connect(&hc, port) != FERRY_OK) {
				refused++;
				harness_sleep_ms(1);
				continue;
			}
			struct harness_resp r;
			int ok = harness_send_str(&hc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") == FERRY_OK &&
				 harness_read_response(&hc, &r, 0, HARNESS_TIMEOUT_MS) == FERRY_OK;
			int status = ok ? r.status : 0;
			if (ok)
				harness_resp_free(&r);
			ck_assert_msg(ok && status == 400,
				      "round %d: a connection accepted during start-up got no answer "
				      "(status %d, eof %d, err %d)", round, status, hc.eof, hc.err);
			harness_close(&hc);
			got++;
			answered++;
		}
		ck_assert_int_eq(kill(pid, SIGTERM), 0);
		int st;
		pid_t w = wait_exit(pid, 10000, &st);
		if (w == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
		}
		unlink(path);
		rmdir(dir);
		ck_assert_int_eq(got, 5);
	}
	ck_assert_int_eq(answered, 40);
	(void)refused;
}
END_TEST

static Suite *service_suite(void)
{
	Suite *s = suite_create("service");
	TCase *tc = tcase_create("service");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_loop_test(tc, one_connection_wakes_one_process, 0, 2);
	tcase_add_loop_test(tc, killed_child_is_replaced, 0, 2);
	tcase_add_loop_test(tc, graceful_stop_finishes_request, 0, 2);
	tcase_add_loop_test(tc, graceful_stop_serves_queued_client, 0, 2);
	tcase_add_loop_test(tc, reload_valid_and_invalid, 0, 2);
	tcase_add_loop_test(tc, daemon_and_pidfile, 0, 2);
	tcase_add_loop_test(tc, pidfile_directory_must_be_root_only, 0, 2);
	tcase_add_loop_test(tc, per_client_cap, 0, 2);
	tcase_add_loop_test(tc, max_connections_backpressure, 0, 2);
	tcase_add_loop_test(tc, reload_under_load, 0, 2);
	tcase_add_loop_test(tc, reload_changes_listeners, 0, 2);
	tcase_add_loop_test(tc, crash_backoff_grows, 0, 2);
	tcase_add_loop_test(tc, second_sigterm_stops_at_once, 0, 2);
	tcase_add_loop_test(tc, start_resets_no_client, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(service_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
