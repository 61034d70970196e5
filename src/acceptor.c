/* acceptor.c - listeners and the accept loop of one child process.
 *
 * Thundering herd: every child process has its own SO_REUSEPORT socket per listen address
 * (the master binds them and keeps them open), and only that child's acceptor thread waits on
 * it, so the kernel wakes exactly one process per new connection. Wake-ups that found nothing
 * to accept are counted and logged at exit so this can be checked.
 *
 * Backpressure: at max_connections the acceptor stops watching the listeners (connections
 * wait in the kernel's backlog) until a worker frees a slot and writes the acceptor's eventfd.
 * EMFILE/ENFILE: stop accepting for a short while instead of spinning (nginx does the same). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "acceptor.h"
#include "accesslog.h"
#include "acl.h"
#include "clients.h"
#include "log.h"
#include "stats.h"
#include "status.h"
#include "worker.h"

#define EMFILE_PAUSE_MS 100

/* backlog < 0: bind only (a probe). */
static int listen_socket(const struct config_listen *l, int reuseport, int backlog, char *err,
			 size_t errlen)
{
	int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "listen %s: socket: %s", l->text, strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* accepted sockets inherit it: responses go out in pieces (head, body chunks) and Nagle
	 * plus the client's delayed ACK would hold the last piece back for 40 ms */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
#ifdef TCP_DEFER_ACCEPT
	/* A client speaks first: the kernel hands over a connection once its first bytes are
	 * there (or, with nothing sent, after a second), so the worker reads the request in the
	 * wake-up that brings the connection instead of sleeping until it comes. A connection per
	 * request cost a quarter less CPU (doc/performance.md); HAProxy does the same. */
	int defer_s = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof(defer_s));
#endif
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
		snprintf(err, errlen, "listen %s: SO_REUSEPORT: %s", l->text, strerror(errno));
		close(fd);
		return -1;
	}
	if (l->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0) {
		snprintf(err, errlen, "listen %s: bind: %s%s", l->text, strerror(errno),
			 errno == EADDRINUSE ? " (another process holds this port)"
			 : errno == EACCES ? " (ports below 1024 need root)" : "");
		close(fd);
		return -1;
	}
	if (backlog >= 0 && listen(fd, backlog) < 0) {
		snprintf(err, errlen, "listen %s: listen: %s", l->text, strerror(errno));
		close(fd);
		return -1;
	}
#ifdef TCP_QUICKACK
	/* Set on the listening socket once it listens, the connections it accepts start out
	 * delaying their ACKs: the request's ACK then rides on the response instead of going
	 * alone (one packet less per connection; HAProxy does the same). */
	if (backlog >= 0) {
		int zero = 0;
		setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof(zero));
	}
#endif
	return fd;
}

/* Put the file, line and key in front of a listen error (start-up failures name them). */
static void listen_where(const struct config *cfg, const struct config_listen *l, char *err,
			 size_t errlen)
{
	char tmp[512];
	snprintf(tmp, sizeof(tmp), "%s", err);
	if (l->line > 0)
		snprintf(err, errlen, "%s: line %d: [server] %s", cfg->path, l->line, tmp);
	else
		snprintf(err, errlen, "%s: [server] %s (the default)", cfg->path, tmp);
}

/* A bind without SO_REUSEPORT fails while anyone listens on the address, where the
 * SO_REUSEPORT sockets would quietly join them (another ferry of the same user). It must not
 * listen: a client that connects in that moment would be queued on a socket about to be
 * closed, and reset. */
int acceptor_probe(const struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->nlisten; i++) {
		int fd = listen_socket(&cfg->listen[i], 0, -1, err, errlen);
		if (fd < 0) {
			listen_where(cfg, &cfg->listen[i], err, errlen);
			return FERRY_ERR;
		}
		close(fd);
	}
	return FERRY_OK;
}

int acceptor_bind(const struct config *cfg, int *fds, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->nlisten; i++) {
		fds[i] = listen_socket(&cfg->listen[i], 1, cfg->backlog, err, errlen);
		if (fds[i] < 0) {
			listen_where(cfg, &cfg->listen[i], err, errlen);
			while (i-- > 0)
				close(fds[i]);
			return FERRY_ERR;
		}
	}
	return FERRY_OK;
}

struct acceptor {
	const struct config *cfg;
	struct worker *workers;
	int nworkers;
	atomic_int paused;
	struct clients clients; /* per_client counts, when the limit is set */
	int wake_fd;  /* eventfd: a worker freed a slot */
	int sig_fd;   /* signalfd */
	uint64_t wakeups, empty_wakeups, accepted, denied;
	int stopping;
	const int *fds;  /* the listeners, drained once on a graceful stop */
	size_t nfds;
};

static int acceptor_total(struct acceptor *a)
{
	int n = 0;
	for (int i = 0; i < a->nworkers; i++)
		n += atomic_load(&a->workers[i].nconns);
	return n;
}

static struct worker *acceptor_pick(struct acceptor *a)
{
	struct worker *best = &a->workers[0];
	int min = atomic_load(&best->nconns);
	for (int i = 1; i < a->nworkers; i++) {
		int n = atomic_load(&a->workers[i].nconns);
		if (n < min) {
			min = n;
			best = &a->workers[i];
		}
	}
	return best;
}

static int client_allowed(const struct config *cfg, const struct sockaddr *sa)
{
	if (cidr_list_match(&cfg->deny, sa))
		return 0;
	return cidr_list_match(&cfg->allow, sa);
}

int acceptor_client_check(const struct config *cfg, struct clients *clients,
			  const struct sockaddr *sa, int *counted)
{
	*counted = 0;
	if (!client_allowed(cfg, sa))
		return 403;
	if (clients != NULL) {
		if (clients_acquire(clients, sa) != FERRY_OK)
			return 429;
		*counted = 1;
	}
	return 0;
}

/* Accept everything queued on fd. Returns FERRY_AGAIN normally, FERRY_ERR on EMFILE-like
 * exhaustion (the caller pauses). */
static int acceptor_drain(struct acceptor *a, int lfd)
{
	int first = 1;
	for (;;) {
		if (acceptor_total(a) >= a->cfg->max_connections)
			return FERRY_AGAIN;
		struct worker_handoff h;
		memset(&h, 0, sizeof(h));
		socklen_t len = sizeof(h.peer);
		int fd = accept4(lfd, (struct sockaddr *)&h.peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (first) {
					a->empty_wakeups++;
					stats_accept_inc(STATS_A_EMPTY_WAKEUPS);
				}
				return FERRY_AGAIN;
			}
			stats_accept_inc(STATS_A_ERRORS);
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				static uint64_t last_log;
				if (a->accepted != last_log) {
					log_warn("accept4: %s: pausing accepts for %d ms", strerror(errno), EMFILE_PAUSE_MS);
					last_log = a->accepted;
				}
				return FERRY_ERR;
			}
			log_error("accept4: %s", strerror(errno));
			return FERRY_AGAIN;
		}
		first = 0;
		a->accepted++;
		stats_accept_inc(STATS_A_ACCEPTED);
		h.fd = fd;
		if (a->cfg->proxy_protocol) {
			/* the address here is the balancer's: only the PROXY header says who the
			 * client is, so the ACL and per_client wait for it (conn.c, CS_PROXY); a
			 * connection from anywhere else is closed without a word */
			if (!cidr_list_match(&a->cfg->proxy_protocol_from, (const struct sockaddr *)&h.peer)) {
				a->denied++;
				stats_accept_inc(STATS_A_DENIED);
				close(fd);
				continue;
			}
		} else {
			h.deny_status = acceptor_client_check(a->cfg, a->cfg->per_client > 0 ? &a->clients : NULL,
							      (const struct sockaddr *)&h.peer, &h.counted);
			if (h.deny_status == 403) {
				a->denied++;
				stats_accept_inc(STATS_A_DENIED);
			}
		}
		if (worker_handoff(acceptor_pick(a), &h) != FERRY_OK) {
			if (h.counted)
				clients_release(&a->clients, (const struct sockaddr *)&h.peer);
			close(fd);
		}
	}
}

/* Returns 1 when the process should stop at once, 0 otherwise. */
static int acceptor_signal(struct acceptor *a)
{
	struct signalfd_siginfo si;
	int now = 0;
	while (read(a->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (a->stopping) {
				now = 1; /* a second request: stop at once */
			} else {
				/* clients the kernel queued for this process before the stop are
				 * served, not reset when the last descriptor of the socket closes */
				uint64_t empty = a->empty_wakeups; /* not wake-ups: not counted */
				for (size_t i = 0; i < a->nfds; i++)
					acceptor_drain(a, a->fds[i]);
				a->empty_wakeups = empty;
				a->stopping = 1;
				for (int i = 0; i < a->nworkers; i++)
					worker_request_stop(&a->workers[i], 0);
			}
			break;
		case SIGQUIT:
			now = 1;
			break;
		case SIGUSR1:
			log_reopen();
			accesslog_reopen(); /* every worker of this process writes through it */
			break;
		default:
			break;
		}
	}
	if (now) {
		a->stopping = 1;
		for (int i = 0; i < a->nworkers; i++)
			worker_request_stop(&a->workers[i], 1);
	}
	return now;
}

static int workers_exited(struct acceptor *a)
{
	for (int i = 0; i < a->nworkers; i++)
		if (!atomic_load(&a->workers[i].exited))
			return 0;
	return 1;
}

int acceptor_run(const struct config *cfg, const int *fds, size_t nfds, int ready_fd)
{
	struct acceptor a;
	char err[256];
	int status = 3;
	int started = 0, initialized = 0;
	memset(&a, 0, sizeof(a));
	a.cfg = cfg;
	a.fds = fds;
	a.nfds = nfds < 64 ? nfds : 64;
	a.wake_fd = -1;
	a.sig_fd = -1;
	atomic_init(&a.paused, 0);

	/* all threads inherit this mask; the signalfd below is the one place signals are taken */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	a.sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	a.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a.sig_fd < 0 || a.wake_fd < 0) {
		log_error("signalfd/eventfd: %s", strerror(errno));
		goto out;
	}

	/* the master opened the access log before forking; open it again by its path, so that a
	 * rotation or a reload since then is followed (on failure: keep the inherited one) */
	if (accesslog_open(cfg->access_log, err, sizeof(err)) != FERRY_OK)
		log_error("%s: [log] access_log: %s (keeping the previous target)", cfg->path, err);

	struct rlimit rl;
	int maxfds = 65536;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		maxfds = (int)rl.rlim_cur;

	if (cfg->per_client > 0 && clients_init(&a.clients, cfg->per_client) != FERRY_OK) {
		log_error("out of memory");
		goto out;
	}
	a.nworkers = cfg->threads;
	a.workers = calloc((size_t)a.nworkers, sizeof(*a.workers));
	if (a.workers == NULL) {
		log_error("out of memory");
		goto out;
	}
	for (int i = 0; i < a.nworkers; i++) {
		if (worker_init(&a.workers[i], i, cfg, maxfds, err, sizeof(err)) != FERRY_OK) {
			log_error("worker %d: %s", i, err);
			goto out;
		}
		initialized++;
		a.workers[i].paused = &a.paused;
		a.workers[i].clients = cfg->per_client > 0 ? &a.clients : NULL;
		a.workers[i].accept_wake_fd = a.wake_fd;
	}
	for (; started < a.nworkers; started++) {
		if (worker_start(&a.workers[started]) != FERRY_OK) {
			log_error("pthread_create: %s", strerror(errno));
			goto out;
		}
	}
	log_debug("child ready: %d workers, %s", a.nworkers, loop_backend_name(a.workers[0].loop));
	if (ready_fd >= 0) {
		char one = 1;
		if (write(ready_fd, &one, 1) != 1)
			log_warn("telling the master this process is ready: %s", strerror(errno));
		close(ready_fd);
		ready_fd = -1;
	}

	struct pollfd pfd[2 + 64];
	size_t nl = nfds < 64 ? nfds : 64;
	uint64_t pause_until = 0;
	for (;;) {
		int n = 0;
		pfd[n].fd = a.sig_fd, pfd[n].events = POLLIN, n++;
		pfd[n].fd = a.wake_fd, pfd[n].events = POLLIN, n++;
		int timeout = -1;
		int at_limit = acceptor_total(&a) >= cfg->max_connections;
		if (at_limit) {
			/* publish the flag, then look again: a worker that freed a slot before it saw
			 * the flag has already lowered the count */
			atomic_store(&a.paused, 1);
			at_limit = acceptor_total(&a) >= cfg->max_connections;
		}
		if (!at_limit)
			atomic_store(&a.paused, 0);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
		if (a.stopping) {
			if (workers_exited(&a))
				break;
			timeout = 50;
		} else if (pause_until > now) {
			timeout = (int)(pause_until - now);
		} else if (!at_limit) {
			for (size_t i = 0; i < nl; i++)
				pfd[n].fd = fds[i], pfd[n].events = POLLIN, n++;
		}
		int r = poll(pfd, (nfds_t)n, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_error("acceptor poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents & POLLIN) {
			if (acceptor_signal(&a))
				break;
		}
		if (pfd[1].revents & POLLIN) {
			uint64_t v;
			if (read(a.wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				log_error("read eventfd: %s", strerror(errno));
		}
		for (int i = 2; i < n && !a.stopping; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			a.wakeups++;
			stats_accept_inc(STATS_A_WAKEUPS);
			if (acceptor_drain(&a, pfd[i].fd) == FERRY_ERR)
				pause_until = now + EMFILE_PAUSE_MS;
		}
	}
	for (int i = 0; i < a.nworkers; i++)
		if (!atomic_load(&a.workers[i].exited))
			worker_request_stop(&a.workers[i], 1);
	status = 0;
out:
	if (ready_fd >= 0)
		close(ready_fd); /* never ready: the master sees EOF */
	for (int i = 0; i < started; i++)
		worker_join(&a.workers[i]);
	log_info("child exiting: %llu wake-ups, %llu accepted, %llu denied, %llu wake-ups found nothing",
		 (unsigned long long)a.wakeups, (unsigned long long)a.accepted,
		 (unsigned long long)a.denied, (unsigned long long)a.empty_wakeups);
	for (int i = 0; i < initialized; i++)
		worker_destroy(&a.workers[i]);
	free(a.workers);
	clients_destroy(&a.clients);
	if (a.sig_fd >= 0)
		close(a.sig_fd);
	if (a.wake_fd >= 0)
		close(a.wake_fd);
	return status;
}
