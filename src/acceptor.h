/* acceptor.h - listening sockets and a child process's acceptor thread: accept, check the
 * client ACL, hand the socket to the least-loaded worker, stop accepting at max_connections. */
#ifndef FERRY_ACCEPTOR_H
#define FERRY_ACCEPTOR_H

#include <stddef.h>

#include "config.h"

/* Is every listen address of cfg free? (Bound without SO_REUSEPORT and closed again, so
 * that another process holding the port is reported instead of joining its group.)
 * FERRY_OK, or FERRY_ERR with a one-line reason in err. */
int acceptor_probe(const struct config *cfg, char *err, size_t errlen);

/* Bind and listen on every listen address of cfg, with SO_REUSEPORT so that each child
 * process gets its own queue (one connection wakes one process). fds receives
 * cfg->nlisten descriptors. FERRY_OK or FERRY_ERR with err. */
int acceptor_bind(const struct config *cfg, int *fds, char *err, size_t errlen);

struct clients;

/* The client check: may sa use ferry ([access] allow/deny), and is it under [limits]
 * per_client (clients may be NULL: no cap)? Returns 0 and sets *counted when sa was counted
 * in clients (the caller counts it out when the connection ends), or the status to answer
 * with: 403 (ACL) or 429 (per_client). Called by the acceptor before the hand-off, and, for
 * [server] proxy_protocol connections, by the worker once the header said who the client
 * is. */
int acceptor_client_check(const struct config *cfg, struct clients *clients,
			  const struct sockaddr *sa, int *counted);

/* Run a child process: workers plus the accept loop in the calling thread, until SIGTERM /
 * SIGINT (graceful) or SIGQUIT (at once). Once the workers run and the acceptor is about to
 * wait for connections, one byte is written to ready_fd and it is closed (-1: none), so the
 * master can stop an old child only when its replacement accepts. Returns the process exit
 * status. */
int acceptor_run(const struct config *cfg, const int *fds, size_t nfds, int ready_fd);

#endif
