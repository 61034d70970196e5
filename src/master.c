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
#include "log.h"
#include "master.h"
#include "stats.h"
#include "status.h"

#define MAX_BACKOFF_MS 30000
#define STABLE_MS 10000 /* a child that lived this long is not "crashing" */

struct child {
	pid_t pid;        /* 0: not running */
	int retiring;     /* from an older configuration: finishing, not restarted */
	uint64_t started;
	uint64_t restart_at; /* when pid == 0 and not stopping: when to start it again */
	int crashes;      /* consecutive short lives */
	int stat_slot;    /* its process slot in the shared counters, -1: none */
};

struct master {
	struct config *cfg;
	const struct master_opts *opts;
	int **fds;        /* [process slot][listen index] */
	int nslots;
	struct child *slots;
	struct child *retiring; /* children of older configurations */
	int nretiring, capretiring;
	int stopping;
	int unclean;      /* a child did not finish cleanly while stopping: exit 1 */
	uint64_t kill_at;
	int pidfile_written;
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

static pid_t master_spawn(struct master *m, int slot, int stat_slot)
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
	for (int s = 0; s < m->nslots; s++)
		if (s != slot)
			for (size_t i = 0; i < m->cfg->nlisten; i++)
				close(m->fds[s][i]);
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
	exit(acceptor_run(m->cfg, m->fds[slot], m->cfg->nlisten));
}

static void master_start_slot(struct master *m, int slot)
{
	struct child *c = &m->slots[slot];
	int ss = stats_claim(m->stats, m->generation);
	if (ss < 0 && m->stats)
		log_warn("child %d: every counter slot is taken (children still finishing): its counters are not shared", slot);
	pid_t pid = master_spawn(m, slot, ss);
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

/* Is the pidfile held by a live process? */
static int master_pidfile_live(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	int pid = 0;
	int ok = fscanf(f, "%d", &pid) == 1;
	fclose(f);
	return ok && pid > 0 && pid != getpid() && (kill(pid, 0) == 0 || errno == EPERM);
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

static int same_listeners(const struct config *a, const struct config *b)
{
	if (a->nlisten != b->nlisten)
		return 0;
	for (size_t i = 0; i < a->nlisten; i++)
		if (a->listen[i].addrlen != b->listen[i].addrlen ||
		    memcmp(&a->listen[i].addr, &b->listen[i].addr, a->listen[i].addrlen) != 0)
			return 0;
	return 1;
}

/* SIGHUP: new children on the same sockets with the new config; the old ones finish. */
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
	if (!same_listeners(cfg, m->cfg) || cfg->processes != m->cfg->processes) {
		log_error("reload: changing listen or processes needs a restart; "
			  "still running on the previous configuration");
		config_free(cfg);
		return;
	}
	for (int i = 0; i < m->nslots; i++) {
		if (m->slots[i].pid <= 0)
			continue;
		if (m->nretiring == m->capretiring) {
			int cap = m->capretiring ? m->capretiring * 2 : 8;
			struct child *r = realloc(m->retiring, (size_t)cap * sizeof(*r));
			if (r == NULL) {
				log_error("reload: out of memory");
				config_free(cfg);
				return;
			}
			m->retiring = r;
			m->capretiring = cap;
		}
		m->retiring[m->nretiring] = m->slots[i];
		m->retiring[m->nretiring].retiring = 1;
		m->nretiring++;
		kill(m->slots[i].pid, SIGTERM);
		m->slots[i].pid = 0;
	}
	config_free(m->cfg);
	m->cfg = cfg;
	m->generation++;
	admin_set_config(m->admin, cfg, m->generation);
	log_set_level((enum log_level)cfg->log_level);
	for (int i = 0; i < m->nslots; i++) {
		m->slots[i].crashes = 0;
		master_start_slot(m, i);
	}
	log_info("reloaded %s", m->opts->config_path);
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
	m.fds = calloc((size_t)m.nslots, sizeof(*m.fds));
	m.slots = calloc((size_t)m.nslots, sizeof(*m.slots));
	if (m.fds == NULL || m.slots == NULL) {
		fprintf(stderr, "ferry: out of memory\n");
		goto out;
	}
	for (int s = 0; s < m.nslots; s++) {
		m.fds[s] = calloc(cfg->nlisten, sizeof(int));
		if (m.fds[s] == NULL || acceptor_bind(cfg, m.fds[s], err, sizeof(err)) != FERRY_OK) {
			fprintf(stderr, "ferry: %s\n", m.fds[s] ? err : "out of memory");
			free(m.fds[s]);
			m.fds[s] = NULL;
			goto out;
		}
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
		m.pidfile_written = 1;
	}

	master_raise_nofile();
	if (admin_start(m.admin, err, sizeof(err)) != FERRY_OK) {
		fprintf(stderr, "ferry: %s\n", err);
		log_error("%s", err);
		rc = 3;
		goto out;
	}
	for (int s = 0; s < m.nslots; s++)
		master_start_slot(&m, s);
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
		for (int s = 0; s < m.nslots && !m.stopping; s++) {
			struct child *c = &m.slots[s];
			if (c->pid == 0) {
				if (c->restart_at <= now)
					master_start_slot(&m, s);
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
			log_reopen();
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
	if (m.pidfile_written)
		unlink(m.cfg->pidfile);
	if (m.fds) {
		for (int s = 0; s < m.nslots; s++) {
			if (m.fds[s] == NULL)
				continue;
			for (size_t i = 0; i < m.cfg->nlisten; i++)
				close(m.fds[s][i]);
			free(m.fds[s]);
		}
	}
	free(m.fds);
	free(m.slots);
	free(m.retiring);
	admin_destroy(m.admin);
	stats_destroy(m.stats);
	config_free(m.cfg);
	return rc;
}
