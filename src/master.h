/* master.h - the master process: listeners, daemon, pidfile, privileges, children. */
#ifndef FERRY_MASTER_H
#define FERRY_MASTER_H

#include "config.h"

struct master_opts {
	const char *config_path; /* what SIGHUP re-reads */
	int foreground;          /* -f: never detach, log to stderr */
	int builtin;             /* running on the built-in default config */
};

/* Run until stopped. Takes ownership of cfg (a reload replaces it; the last one is freed).
 * Returns the process exit status: 0 after a clean stop, 1 when a child did not finish
 * cleanly while stopping, 3 when it could not start. */
int master_run(struct config *cfg, const struct master_opts *opts);

#endif
