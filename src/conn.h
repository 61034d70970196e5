/* conn.h - one client connection and the upstream side it drives: the request/response relay
 * state machine, CONNECT tunnels, keep-alive. Every state change goes through one place, and a
 * connection is freed in one place (conn_close). */
#ifndef FERRY_CONN_H
#define FERRY_CONN_H

#include "worker.h"

/* Take ownership of a handed-off client socket and start reading its first request. */
void conn_accept(struct worker *w, const struct worker_handoff *h);
/* Graceful stop: close connections idle between requests; the rest finish and then close. */
void conn_drain_idle(struct worker *w);
/* Close every connection at once (and free the structs kept for reuse). */
void conn_close_all(struct worker *w);

#endif
