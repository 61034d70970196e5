/* admin.h - the admin endpoint ([admin] listen): /metrics (Prometheus text format) and
 * /status (a short page, 200 while accepting, 503 while draining), served by one thread of
 * the master from the shared counters (stats.h). The thread outlives child restarts and
 * reloads; it never touches the master's signal loop, and the master only flips atomics
 * and swaps the allow list under a mutex the request path of the workers never sees. */
#ifndef FERRY_ADMIN_H
#define FERRY_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "stats.h"

struct admin;

/* Bind cfg->admin_listen (NULL result without error when it is not set). Done before the
 * master daemonizes, so a port in use fails the start with a message naming the line. NULL
 * with err on failure. */
struct admin *admin_create(const struct config *cfg, struct stats *stats, char *err, size_t errlen,
			   int *failed);
/* Start serving (after daemonizing: threads do not survive fork). FERRY_OK or FERRY_ERR. */
int admin_start(struct admin *a, char *err, size_t errlen);
/* A reload: the new allow list and generation. */
void admin_set_config(struct admin *a, const struct config *cfg, uint64_t generation);
/* Graceful stop began: /status answers 503 from now on. */
void admin_set_draining(struct admin *a);
/* In a forked child: close the listening socket (touches nothing else). */
void admin_close_in_child(struct admin *a);
/* Stop the thread, close everything. */
void admin_destroy(struct admin *a);

/* The pages, for the tests and the thread. Each returns a malloc'd NUL-terminated text. */
char *admin_metrics_text(const struct stats *s, uint64_t generation, double uptime, int draining);
char *admin_status_text(const struct stats *s, uint64_t generation, double uptime, int draining);

#endif
