/* listeners.h - the master's listening sockets, kept across reloads.
 *
 * The master holds S "sets" of sockets; a set has one SO_REUSEPORT socket per listen
 * address. Child k of P serves sets k, k+P, k+2P... (only it waits on them, so one new
 * connection still wakes one process). A reload keeps every socket whose address is still
 * listed (its accept queue with it), binds sockets for added addresses, and closes the
 * sockets of removed ones; sets are added when processes grows and never closed while
 * ferry runs, because closing a SO_REUSEPORT socket resets the connections queued on it. */
#ifndef FERRY_LISTENERS_H
#define FERRY_LISTENERS_H

#include <stddef.h>

#include "config.h"

#define LISTENERS_CHILD_MAX 64 /* sockets one child can wait on (its acceptor's limit) */

struct listeners {
	int **fds;     /* [set][listen index of the current config] */
	int nsets;
	size_t nlisten;
};

/* Bind cfg->processes sets for cfg. FERRY_OK, or FERRY_ERR with a one-line reason. */
int listeners_open(struct listeners *l, const struct config *cfg, char *err, size_t errlen);

/* Move from old's listen addresses to cfg's (see above). On FERRY_ERR (an added address
 * cannot be bound, or a child would get too many sockets) nothing changed. */
int listeners_update(struct listeners *l, const struct config *old, const struct config *cfg,
		     char *err, size_t errlen);

/* The sockets child k of n serves, into out (at most max); returns how many. */
size_t listeners_for_child(const struct listeners *l, int k, int n, int *out, size_t max);

/* In child k of n after fork: close every socket that is not its own. */
void listeners_close_others(const struct listeners *l, int k, int n);

void listeners_close(struct listeners *l);

#endif
