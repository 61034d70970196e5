/* master.c - the master process: binds the listeners, daemonizes, writes the pidfile, drops
 * privileges, forks `processes` children and supervises them.
 *
 * Signals are taken in one place: the master blocks them and waits with sigtimedwait, so
 * there is no handler and no async-signal-safety to get wrong. SIGTERM/SIGINT stop the
 * children gracefully (a second one stops them at once, like SIGQUIT); SIGHUP reloads
 * proxy.ini; SIGCHLD restarts a child that died, with growing back-off when it keeps dying.
 * The master keeps every listening socket open for the whole run, so a child's death never
 * closes a port: new clients wait in the backlog until the replacement accepts them. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acceptor.h"
#include "admin.h"
#include "listeners.h"
#include "log.h"
#include "master.h"
#include "stats.h"
#include "status.h"

#define MAX_BACKOFF_MS 30000
#define STABLE_MS 10000 /* a child that lived this long is not "crashing" */
#define READY_WAIT_MS 10000 /* reload: longest wait for the new children to accept */

struct child {
	pid_t pid;        /* 0: not running */
	int retiring;     /* from an older configuration: finishing, not restarted */
	uint64_t kill_at; /* retiring: SIGKILL after this (the shutdown timeout, plus a margin) */
	uint64_t started;
	uint64_t restart_at; /* when pid == 0 and not stopping: when to start it again */
	int crashes;      /* consecutive short lives */
	int stat_slot;    /* its process slot in the shared counters, -1: none */
};

struct master {
	struct config *cfg;
	const struct master_opts *opts;
	struct listeners lis; /* child i of nslots serves socket sets i, i+nslots... */
	int nslots;
	struct child *slots;
	struct child *retiring; /* children of older configurations */
	int nretiring, capretiring;
	int stopping;
	int unclean;      /* a child did not finish cleanly while stopping: exit 1 */
	uint64_t kill_at;
	char *pidfile;    /* as written at start (a reload may name another): removed at exit */
	struct stats *stats;     /* shared counters (stats.h), mapped before any fork */
	struct admin *admin;     /* [admin] listen, or NULL */
	uint64_t generation;     /* configuration generation: 1, +1 per reload */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void master_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_warn("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_info("file descriptor limit: %llu", (unsigned long long)rl.rlim_cur);
}

static int master_drop_privileges(const struct config *cfg, char *err, size_t errlen);

/* ready_fd: the write end of a pipe the new child reports on when it accepts (or -1);
 * stat_slot: its process slot in the shared counters (-1: none). */
static pid_t master_spawn(struct master *m, int slot, int ready_fd, int stat_slot)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0)
		return pid;
	stats_attach(m->stats, stat_slot);
	admin_close_in_child(m->admin);
	/* child: stop when the master dies, whatever the reason */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	int fds[LISTENERS_CHILD_MAX];
	size_t nfds = listeners_for_child(&m->lis, slot, m->nslots, fds, LISTENERS_CHILD_MAX);
	listeners_close_others(&m->lis, slot, m->nslots);
	/* Children serve, so they drop privileges for good before touching a client. The master
	 * keeps them: it must remove the pidfile it wrote as root, reopen logs and rebind on
	 * reload, and it never reads a byte from the network. */
	char err[256];
	if (master_drop_privileges(m->cfg, err, sizeof(err)) != FERRY_OK) {
		log_error("%s", err);
		_exit(3);
	}
	/* exit(), not _exit(): LeakSanitizer checks the child at exit in sanitizer builds (stdio
	 * was flushed before the fork, so nothing of the master's is written twice) */
	exit(acceptor_run(m->cfg, fds, nfds, ready_fd));
}

static void master_start_slot(struct master *m, int slot, int ready_fd)
{
	struct child *c = &m->slots[slot];
	int ss = stats_claim(m->stats, m->generation);
	if (ss < 0 && m->stats)
		log_warn("child %d: every counter slot is taken (children still finishing): its counters are not shared", slot);
	pid_t pid = master_spawn(m, slot, ready_fd, ss);
	if (pid < 0) {
		stats_release(m->stats, ss);
		c->restart_at = now_ms() + 1000;
		return;
	}
	c->stat_slot = ss;
	c->pid = pid;
	c->started = now_ms();
	c->restart_at = 0;
}

static int master_write_pidfile(const char *path)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return FERRY_ERR;
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		return FERRY_ERR;
	}
	close(fd);
	/* rename is atomic: a reader sees the old file or the whole new one */
	if (rename(tmp, path) != 0) {
		unlink(tmp);
		return FERRY_ERR;
	}
	return FERRY_OK;
}

/* Is the pidfile held by a live ferry? A pid that is gone, or that now belongs to another
 * program (pids are reused after a crash or a reboot), is a stale file: ferry replaces it. */
static int master_pidfile_live(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	int pid = 0;
	int ok = fscanf(f, "%d", &pid) == 1;
	fclose(f);
	if (!ok || pid <= 0 || pid == getpid() || (kill(pid, 0) != 0 && errno != EPERM))
		return 0;
	char comm[64], name[32] = "";
	snprintf(comm, sizeof(comm), "/proc/%d/comm", pid);
	f = fopen(comm, "r");
	if (f == NULL)
		return 1; /* no /proc: trust the pid */
	ok = fgets(name, sizeof(name), f) != NULL;
	fclose(f);
	return !ok || strncmp(name, "ferry", 5) == 0;
}

/* The pidfile tells root's init scripts and logrotate whom to signal, so nobody but root may
 * be able to replace it: when ferry runs as root, its directory must belong to root and be
 * writable by nobody else (like /run). The master writes it as root and keeps root (the
 * children drop privileges), so it can also remove it at exit. */
static int master_pidfile_dir_safe(const char *path, char *err, size_t errlen)
{
	if (geteuid() != 0)
		return FERRY_OK;
	char dir[4096];
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	struct stat st;
	if (stat(dir, &st) != 0) {
		snprintf(err, errlen, "pidfile directory %.300s: %s", dir, strerror(errno));
		return FERRY_ERR;
	}
	if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(err, errlen, "pidfile directory %.300s must belong to root and be writable "
			 "by root only (another user could redirect a kill sent by root)", dir);
		return FERRY_ERR;
	}
	return FERRY_OK;
}

/* Detach. The launching process waits until the daemon reports on ready_fd whether it
 * started (one byte: its exit status), so `ferry` run from a shell or an init script still
 * fails with status 3 and a message on its stderr when the daemon cannot start. Returns the
 * write end of that pipe in the daemon, or -1. */
static int master_daemonize(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		close(p[1]);
		unsigned char st = 3;
		ssize_t r;
		do
			r = read(p[0], &st, 1);
		while (r < 0 && errno == EINTR);
		_exit(r == 1 ? st : 3); /* no byte: the daemon died before it could say */
	}
	close(p[0]);
	if (setsid() < 0)
		return -1;
	pid = fork(); /* not a session leader: can never take a controlling terminal again */
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (chdir("/") != 0)
		return -1;
	int fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return -1;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	/* stderr stays with the launcher until the daemon is ready (master_detached) */
	if (fd > STDERR_FILENO)
		close(fd);
	return p[1];
}

/* The daemon started (status 0) or failed (3): tell the launcher, let go of its stderr. */
static void master_detached(int ready_fd, unsigned char status)
{
	if (ready_fd < 0)
		return;
	if (write(ready_fd, &status, 1) != 1)
		log_error("telling the launcher: %s", strerror(errno));
	close(ready_fd);
	int fd = open("/dev/null", O_WRONLY);
	if (fd >= 0) {
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
}

/* Can this process become cfg's user and group? Checked in the master, so a mistake stops
 * the start (exit 3) instead of making every child fail. */
static int master_check_privileges(const struct config *cfg, char *err, size_t errlen)
{
	if ((cfg->user || cfg->group) && geteuid() != 0) {
		struct passwd *pw = cfg->user ? getpwnam(cfg->user) : NULL;
		struct group *gr = cfg->group ? getgrnam(cfg->group) : NULL;
		if ((cfg->user && (pw == NULL || pw->pw_uid != geteuid())) ||
		    (cfg->group && (gr == NULL || gr->gr_gid != getegid()))) {
			snprintf(err, errlen, "user/group set but ferry is not started as root");
			return FERRY_ERR;
		}
	}
	return FERRY_OK;
}

static int master_drop_privileges(const struct config *cfg, char *err, size_t errlen)
{
	if (cfg->user == NULL && cfg->group == NULL)
		return FERRY_OK;
	gid_t gid = getgid();
	uid_t uid = getuid();
	const char *uname = NULL;
	if (cfg->user) {
		struct passwd *pw = getpwnam(cfg->user);
		if (pw == NULL) {
			snprintf(err, errlen, "user %s: no such user", cfg->user);
			return FERRY_ERR;
		}
		uid = pw->pw_uid;
		gid = pw->pw_gid;
		uname = pw->pw_name;
	}
	if (cfg->group) {
		struct group *gr = getgrnam(cfg->group);
		if (gr == NULL) {
			snprintf(err, errlen, "group %s: no such group", cfg->group);
			return FERRY_ERR;
		}
		gid = gr->gr_gid;
	}
	if (geteuid() != 0) {
		if (uid == geteuid() && gid == getegid())
			return FERRY_OK;
		snprintf(err, errlen, "user/group set but ferry is not started as root");
		return FERRY_ERR;
	}
	if ((uname ? initgroups(uname, gid) : setgroups(0, NULL)) != 0 || setgid(gid) != 0 ||
	    setuid(uid) != 0) {
		snprintf(err, errlen, "dropping privileges: %s", strerror(errno));
		return FERRY_ERR;
	}
	/* for good: getting root back must fail */
	if (uid != 0 && setuid(0) == 0) {
		snprintf(err, errlen, "dropping privileges: root could be regained");
		return FERRY_ERR;
	}
	return FERRY_OK;
}

static struct child *master_find(struct master *m, pid_t pid, int *slot)
{
	for (int i = 0; i < m->nslots; i++)
		if (m->slots[i].pid == pid) {
			*slot = i;
			return &m->slots[i];
		}
	for (int i = 0; i < m->nretiring; i++)
		if (m->retiring[i].pid == pid) {
			*slot = -1;
			return &m->retiring[i];
		}
	return NULL;
}

static void master_reap(struct master *m)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		int slot;
		struct child *c = master_find(m, pid, &slot);
		if (c == NULL)
			continue;
		c->pid = 0;
		stats_release(m->stats, c->stat_slot);
		c->stat_slot = -1;
		int failed = WIFSIGNALED(st) || WEXITSTATUS(st) != 0;
		if (slot < 0 || m->stopping) {
			/* a child that was told to finish: it must finish cleanly (a sanitizer
			 * report, a crash or a kill after the shutdown timeout is not clean) */
			if (failed) {
				m->unclean = 1;
				if (WIFSIGNALED(st))
					log_error("child pid %d killed by signal %d while stopping", (int)pid, WTERMSIG(st));
				else
					log_error("child pid %d exited with status %d while stopping", (int)pid, WEXITSTATUS(st));
			}
			if (slot < 0)
				*c = m->retiring[--m->nretiring];
			continue;
		}
		uint64_t now = now_ms();
		if (now - c->started >= STABLE_MS)
			c->crashes = 0;
		uint64_t delay = 0;
		if (c->crashes > 0) {
			delay = 100ULL << (c->crashes > 9 ? 9 : c->crashes - 1);
			if (delay > MAX_BACKOFF_MS)
				delay = MAX_BACKOFF_MS;
		}
		c->crashes++;
		if (WIFSIGNALED(st))
			log_error("child %d (pid %d) killed by signal %d; restarting in %llu ms", slot, (int)pid,
				  WTERMSIG(st), (unsigned long long)delay);
		else
			log_error("child %d (pid %d) exited with status %d; restarting in %llu ms", slot, (int)pid,
				  WEXITSTATUS(st), (unsigned long long)delay);
		c->restart_at = now + delay;
	}
}

static void master_signal_all(struct master *m, int sig)
{
	for (int i = 0; i < m->nslots; i++)
		if (m->slots[i].pid > 0)
			kill(m->slots[i].pid, sig);
	for (int i = 0; i < m->nretiring; i++)
		if (m->retiring[i].pid > 0)
			kill(m->retiring[i].pid, sig);
}

static int master_children_left(struct master *m)
{
	int n = m->nretiring;
	for (int i = 0; i < m->nslots; i++)
		n += m->slots[i].pid > 0;
	return n;
}

static void reload_error(void *arg, const char *msg)
{
	log_error("reload: %s", msg);
}

/* Start every slot, and wait (bounded) until each new child accepts or has died, so that
 * the old children, which accept on the same sockets, are stopped only then. */
static void master_start_ready(struct master *m)
{
	struct pollfd *p = calloc((size_t)m->nslots, sizeof(*p));
	for (int i = 0; i < m->nslots; i++) {
		int fds[2] = { -1, -1 };
		if (p == NULL || pipe2(fds, O_CLOEXEC) != 0)
			fds[0] = fds[1] = -1;
		master_start_slot(m, i, fds[1]);
		if (fds[1] >= 0)
			close(fds[1]); /* the child's now: EOF when it dies before it is ready */
		if (p) {
			p[i].fd = m->slots[i].pid > 0 ? fds[0] : -1;
			p[i].events = POLLIN;
			if (p[i].fd < 0 && fds[0] >= 0)
				close(fds[0]);
		}
	}
	if (p == NULL)
		return;
	uint64_t deadline = now_ms() + READY_WAIT_MS;
	for (;;) {
		int waiting = 0;
		for (int i = 0; i < m->nslots; i++)
			waiting += p[i].fd >= 0;
		uint64_t now = now_ms();
		if (waiting == 0 || now >= deadline)
			break;
		if (poll(p, (nfds_t)m->nslots, (int)(deadline - now)) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < m->nslots; i++)
			if (p[i].fd >= 0 && p[i].revents) {
				close(p[i].fd);
				p[i].fd = -1;
			}
	}
	for (int i = 0; i < m->nslots; i++)
		if (p[i].fd >= 0) {
			log_warn("reload: new child %d not ready after %d ms; stopping the old ones anyway",
				 i, READY_WAIT_MS);
			close(p[i].fd);
		}
	free(p);
}

/* SIGHUP. The new configuration is checked first (file, added listen addresses); on any
 * error the old one keeps running untouched. Then new children start on the kept sockets
 * (listeners.c) before the old ones are told to stop, so every socket always has a child
 * waiting on it or about to: a connection queued on a socket is accepted by whichever child
 * of its set takes it first, and the old child hands nothing back because the queue belongs
 * to the socket, not to the process. The old children stop accepting and finish their
 * connections within [timeouts] shutdown (doc/design.md, "Reload"). */
static void master_reload(struct master *m)
{
	if (m->opts->builtin) {
		log_warn("reload: running on the built-in config; nothing to re-read");
		return;
	}
	struct config *cfg = config_load(m->opts->config_path, reload_error, NULL);
	if (cfg == NULL) {
		log_error("reload: %s is invalid; still running on the previous configuration",
			  m->opts->config_path);
		return;
	}
	/* everything that can fail comes before the first change */
	struct child *slots = calloc((size_t)cfg->processes, sizeof(*slots));
	int need = m->nretiring + m->nslots;
	if (slots != NULL && need > m->capretiring) {
		struct child *r = realloc(m->retiring, (size_t)need * sizeof(*r));
		if (r == NULL) {
			free(slots);
			slots = NULL;
		} else {
			m->retiring = r;
			m->capretiring = need;
		}
	}
	char err[512];
	if (master_check_privileges(cfg, err, sizeof(err)) != FERRY_OK) {
		log_error("reload: %s; still running on the previous configuration", err);
		free(slots);
		config_free(cfg);
		return;
	}
	if (slots == NULL) {
		log_error("reload: out of memory; still running on the previous configuration");
		config_free(cfg);
		return;
	}
	if (listeners_update(&m->lis, m->cfg, cfg, err, sizeof(err)) != FERRY_OK) {
		log_error("reload: %s; still running on the previous configuration", err);
		free(slots);
		config_free(cfg);
		return;
	}
	uint64_t kill_at = now_ms() + m->cfg->shutdown_ms + 2000;
	int first_old = m->nretiring;
	for (int i = 0; i < m->nslots; i++) {
		if (m->slots[i].pid <= 0)
			continue;
		m->retiring[m->nretiring] = m->slots[i];
		m->retiring[m->nretiring].retiring = 1;
		m->retiring[m->nretiring].kill_at = kill_at;
		m->nretiring++;
	}
	free(m->slots);
	m->slots = slots;
	m->nslots = cfg->processes;
	config_free(m->cfg);
	m->cfg = cfg;
	m->generation++;
	admin_set_config(m->admin, cfg, m->generation);
	log_set_level((enum log_level)cfg->log_level);
	master_start_ready(m);
	for (int i = first_old; i < m->nretiring; i++)
		kill(m->retiring[i].pid, SIGTERM);
	log_info("reloaded %s: %d processes on %zu listen addresses; %d old processes finishing",
		 m->opts->config_path, m->nslots, cfg->nlisten, m->nretiring - first_old);
}

int master_run(struct config *cfg, const struct master_opts *opts)
{
	struct master m;
	char err[512], where[600];
	int rc = 3;
	int ready_fd = -1; /* daemon: the pipe to the waiting launcher */
	memset(&m, 0, sizeof(m));
	m.cfg = cfg;
	m.opts = opts;

	signal(SIGPIPE, SIG_IGN); /* writes to closed sockets fail with EPIPE instead */
	/* Blocked from the start: a SIGTERM that arrives once the port accepts connections but
	 * before the children run is still a graceful stop, not a kill by the default action. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);

	if (cfg->pidfile && master_pidfile_live(cfg->pidfile)) {
		fprintf(stderr, "ferry: %s: %s: another ferry is running (pidfile held by a live process)\n",
			config_where(cfg, "server", "pidfile", where, sizeof(where)), cfg->pidfile);
		log_error("%s: another ferry is running", cfg->pidfile);
		goto out;
	}
	if (cfg->pidfile && master_pidfile_dir_safe(cfg->pidfile, err, sizeof(err)) != FERRY_OK) {
		fprintf(stderr, "ferry: %s: %s\n",
			config_where(cfg, "server", "pidfile", where, sizeof(where)), err);
		log_error("%s", err);
		goto out;
	}
	/* the counters every child writes; slots for the children of two generations and more,
	 * since retiring children keep theirs until they exit. The admin socket is bound before
	 * the listeners are probed and bound: once the proxy port answers, so does /status. */
	m.generation = 1;
	m.stats = stats_create(4 * cfg->processes + 4);
	if (m.stats == NULL) {
		fprintf(stderr, "ferry: mmap (shared counters): %s\n", strerror(errno));
		goto out;
	}
	{
		int failed = 0;
		m.admin = admin_create(cfg, m.stats, err, sizeof(err), &failed);
		if (failed) {
			fprintf(stderr, "ferry: %s\n", err);
			goto out;
		}
	}
	if (acceptor_probe(cfg, err, sizeof(err)) != FERRY_OK) {
		fprintf(stderr, "ferry: %s\n", err);
		goto out;
	}
	m.nslots = cfg->processes;
	m.slots = calloc((size_t)m.nslots, sizeof(*m.slots));
	if (m.slots == NULL) {
		fprintf(stderr, "ferry: out of memory\n");
		goto out;
	}
	if (listeners_open(&m.lis, cfg, err, sizeof(err)) != FERRY_OK) {
		fprintf(stderr, "ferry: %s\n", err);
		goto out;
	}
	if (master_check_privileges(cfg, err, sizeof(err)) != FERRY_OK) {
		fprintf(stderr, "ferry: %s: %s\n",
			config_where(cfg, "server", cfg->user ? "user" : "group", where, sizeof(where)), err);
		goto out;
	}
	if (cfg->daemon && !opts->foreground) {
		ready_fd = master_daemonize();
		if (ready_fd < 0) {
			fprintf(stderr, "ferry: cannot become a daemon: %s\n", strerror(errno));
			goto out;
		}
	}
	if (cfg->pidfile) {
		if (master_write_pidfile(cfg->pidfile) != FERRY_OK) {
			int e = errno;
			fprintf(stderr, "ferry: %s: cannot write pidfile %s: %s\n",
				config_where(cfg, "server", "pidfile", where, sizeof(where)), cfg->pidfile, strerror(e));
			errno = e;
			log_error("cannot write pidfile %s: %s", cfg->pidfile, strerror(errno));
			goto out;
		}
		m.pidfile = strdup(cfg->pidfile);
		if (m.pidfile == NULL) {
			unlink(cfg->pidfile);
			fprintf(stderr, "ferry: out of memory\n");
			goto out;
		}
	}

	master_raise_nofile();
	if (admin_start(m.admin, err, sizeof(err)) != FERRY_OK) {
		fprintf(stderr, "ferry: %s\n", err);
		log_error("%s", err);
		rc = 3;
		goto out;
	}
	for (int s = 0; s < m.nslots; s++)
		master_start_slot(&m, s, -1);
	{
		char addrs[512] = "";
		size_t off = 0;
		for (size_t i = 0; i < cfg->nlisten && off < sizeof(addrs) - 1; i++)
			off += (size_t)snprintf(addrs + off, sizeof(addrs) - off, "%s%s", i ? " " : "",
						cfg->listen[i].text);
		log_info("ferry %s listening on %s: %d processes x %d threads", PACKAGE_VERSION, addrs,
			 cfg->processes, cfg->threads);
	}

	master_detached(ready_fd, 0);
	ready_fd = -1;
	rc = 0;
	for (;;) {
		uint64_t now = now_ms();
		if (m.stopping && master_children_left(&m) == 0)
			break;
		if (m.stopping && m.kill_at && now >= m.kill_at) {
			log_warn("children still running after the shutdown timeout: killing them");
			master_signal_all(&m, SIGKILL);
			m.kill_at = 0;
		}
		uint64_t wait = 1000;
		for (int i = 0; i < m.nretiring; i++) {
			struct child *c = &m.retiring[i];
			if (c->pid > 0 && c->kill_at && now >= c->kill_at) {
				log_warn("old child pid %d still running after the shutdown timeout: killing it",
					 (int)c->pid);
				kill(c->pid, SIGKILL);
				c->kill_at = 0;
			}
		}
		for (int s = 0; s < m.nslots && !m.stopping; s++) {
			struct child *c = &m.slots[s];
			if (c->pid == 0) {
				if (c->restart_at <= now)
					master_start_slot(&m, s, -1);
				else if (c->restart_at - now < wait)
					wait = c->restart_at - now;
			}
		}
		struct timespec ts = { (time_t)(wait / 1000), (long)(wait % 1000) * 1000000L };
		siginfo_t si;
		int sig = sigtimedwait(&set, &si, &ts);
		if (sig < 0)
			continue;
		switch (sig) {
		case SIGCHLD:
			master_reap(&m);
			break;
		case SIGTERM:
		case SIGINT:
			if (m.stopping) {
				master_signal_all(&m, SIGQUIT);
			} else {
				log_info("stopping: finishing connections (up to %u ms)", m.cfg->shutdown_ms);
				admin_set_draining(m.admin);
				m.stopping = 1;
				m.kill_at = now_ms() + m.cfg->shutdown_ms + 2000;
				master_signal_all(&m, SIGTERM);
			}
			break;
		case SIGQUIT:
			admin_set_draining(m.admin);
			m.stopping = 1;
			m.kill_at = now_ms() + 2000;
			master_signal_all(&m, SIGQUIT);
			break;
		case SIGHUP:
			if (!m.stopping)
				master_reload(&m);
			break;
		case SIGUSR1:
			/* rotation: the master's own log here, the children's logs in their own
			 * processes (they hold their own descriptors) */
			log_reopen();
			log_info("SIGUSR1: log files reopened");
			master_signal_all(&m, SIGUSR1);
			break;
		default:
			break;
		}
	}
	log_info("stopped");
	if (m.unclean)
		rc = 1;
out:
	master_detached(ready_fd, 3);
	if (m.pidfile)
		unlink(m.pidfile);
	free(m.pidfile);
	listeners_close(&m.lis);
	free(m.slots);
	free(m.retiring);
	admin_destroy(m.admin);
	stats_destroy(m.stats);
	config_free(m.cfg);
	return rc;
}
