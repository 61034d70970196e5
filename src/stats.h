/* stats.h - counters and gauges shared by every process of an instance, without locks.
 *
 * The master maps one anonymous MAP_SHARED region before it forks. It holds process slots;
 * each running child owns one (the master hands it out at fork and takes it back when the
 * child is reaped), and inside it each worker owns one worker slot. Every field has exactly
 * one writer (its worker, its child's acceptor thread, or the master while no child owns the
 * slot), so an increment is a relaxed load and store: no lock, no locked instruction, no
 * system call. Readers (the admin thread in the master) sum the slots with relaxed loads.
 *
 * Counters live on in their slot when its child dies: the next child given the slot keeps
 * counting from there, so a sum never goes backwards. Gauges (connections open) of a dead
 * child are zeroed by the master when it reaps the child. doc/observability.md has more. */
#ifndef FERRY_STATS_H
#define FERRY_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Monotonic counters of one worker. The names in admin.c follow this order. */
enum stats_counter {
	STATS_ACCEPTED,        /* client connections taken over by the worker */
	STATS_REQ_1XX,         /* requests and tunnels ended, by the class of their status */
	STATS_REQ_2XX,
	STATS_REQ_3XX,
	STATS_REQ_4XX,
	STATS_REQ_5XX,
	STATS_REQ_NONE,        /* ended before any answer (the client left, or a reset) */
	STATS_TUNNELS,         /* CONNECT tunnels and upgrades established */
	STATS_BYTES_IN,        /* bytes from clients, counted when their request ends */
	STATS_BYTES_OUT,       /* bytes to clients, likewise */
	STATS_POOL_HITS,       /* a request reused an idle upstream connection */
	STATS_POOL_MISSES,
	STATS_DNS_HITS,        /* names answered from the worker's cache */
	STATS_DNS_MISSES,
	STATS_DNS_FAILURES,
	/* errors, by kind (what ferry answered, or how the exchange broke) */
	STATS_ERR_BAD_REQUEST, /* 400, 431: the client sent something ferry refuses */
	STATS_ERR_DENIED,      /* 403: ACL, domain filter, port or destination */
	STATS_ERR_AUTH,        /* 407 */
	STATS_ERR_CLIENT_TIMEOUT, /* 408 */
	STATS_ERR_CLIENT_LIMIT,   /* 429: [limits] per_client */
	STATS_ERR_UPSTREAM,       /* 502: cannot resolve, connect or parse the origin */
	STATS_ERR_UPSTREAM_TIMEOUT, /* 504 */
	STATS_ERR_LOOP,           /* 508 */
	STATS_ERR_INTERNAL,       /* 500, 503: out of memory, credential checks busy */
	STATS_ERR_CLIENT_ABORT,   /* the client left before it was answered */
	STATS_ERR_ABORTED,        /* an answer was cut short with a reset (the origin broke off,
				     a timeout, the client stopped reading) */
	STATS_NCOUNTERS
};
#define STATS_ERR_FIRST STATS_ERR_BAD_REQUEST

/* Gauges of one worker: what is open now. */
enum stats_gauge {
	STATS_G_CLIENT,    /* client connections */
	STATS_G_UPSTREAM,  /* upstream connections in use by a client connection */
	STATS_G_TUNNELS,   /* tunnels (CONNECT, upgrades) */
	STATS_G_POOL_IDLE, /* idle upstream connections in the pool */
	STATS_NGAUGES
};

/* Counters of a child's acceptor thread. */
enum stats_accept {
	STATS_A_WAKEUPS,       /* a listener was reported readable */
	STATS_A_EMPTY_WAKEUPS, /* ... and accept found nothing (thundering herd) */
	STATS_A_ACCEPTED,
	STATS_A_DENIED,        /* refused by [access] allow/deny */
	STATS_A_ERRORS,        /* accept4 failed (EMFILE, ENFILE, ENOBUFS, ...) */
	STATS_NACCEPT
};

#define STATS_MAX_WORKERS 256 /* [server] threads is at most 256 */

/* Sizes are multiples of 64 bytes and the region is page-aligned, so no two workers share a
 * cache line (a worker embeds a fallback slot too, hence padding rather than an aligned
 * attribute that malloc'd memory would not honour). */
struct stats_worker {
	_Atomic uint64_t c[STATS_NCOUNTERS];
	_Atomic int64_t g[STATS_NGAUGES];
	uint64_t pad[(64 - (STATS_NCOUNTERS + STATS_NGAUGES) * 8 % 64) % 64 / 8];
};

struct stats_proc {
	_Atomic int in_use;      /* owned by a running child (written by the master) */
	_Atomic int pid;         /* written by the child at start, zeroed by the master */
	_Atomic int nworkers;    /* worker slots this child uses */
	int pad0;
	_Atomic uint64_t generation; /* configuration generation the child runs */
	_Atomic uint64_t a[STATS_NACCEPT];
	uint64_t pad1[8 - 1 - STATS_NACCEPT - 2];
	struct stats_worker w[STATS_MAX_WORKERS];
};

struct stats {
	size_t size;   /* of the mapping */
	int nproc;     /* process slots */
	char pad[64 - sizeof(size_t) - sizeof(int)];
	struct stats_proc p[];
};

/* The region for up to nproc running children (current and retiring). NULL with errno. */
struct stats *stats_create(int nproc);
void stats_destroy(struct stats *s);
/* Master: a free process slot for a child about to be forked, or -1 when every slot is
 * taken (the child then counts privately; see doc/observability.md). */
int stats_claim(struct stats *s, uint64_t generation);
/* Master: the child owning slot is gone: zero its gauges, free the slot, keep counters. */
void stats_release(struct stats *s, int slot);

/* Child, right after fork: this process writes into slot (may be -1: nowhere). */
void stats_attach(struct stats *s, int slot);
/* This process's slot, or NULL. */
struct stats_proc *stats_self(void);
/* The slot worker id of this process writes, or fallback when there is none. */
struct stats_worker *stats_worker_slot(int id, struct stats_worker *fallback);

/* Single-writer updates: a relaxed load and store, which compiles to a plain add. */
static inline void stats_add(struct stats_worker *s, enum stats_counter k, uint64_t n)
{
	atomic_store_explicit(&s->c[k], atomic_load_explicit(&s->c[k], memory_order_relaxed) + n,
			      memory_order_relaxed);
}
static inline void stats_inc(struct stats_worker *s, enum stats_counter k)
{
	stats_add(s, k, 1);
}
static inline void stats_gauge_add(struct stats_worker *s, enum stats_gauge g, int64_t d)
{
	atomic_store_explicit(&s->g[g], atomic_load_explicit(&s->g[g], memory_order_relaxed) + d,
			      memory_order_relaxed);
}
static inline void stats_gauge_set(struct stats_worker *s, enum stats_gauge g, int64_t v)
{
	atomic_store_explicit(&s->g[g], v, memory_order_relaxed);
}
/* The acceptor thread's counters of this process (no-op without a slot). */
void stats_accept_inc(enum stats_accept k);

/* A reader's sum over every slot. */
struct stats_sum {
	uint64_t c[STATS_NCOUNTERS];
	int64_t g[STATS_NGAUGES];
	uint64_t a[STATS_NACCEPT];
	int children; /* process slots in use */
};
void stats_read(const struct stats *s, struct stats_sum *out);
/* The counter class of an HTTP status (0: no answer). */
enum stats_counter stats_class(int status);
/* The error kind of an answer ferry made itself, or STATS_NCOUNTERS for none. */
enum stats_counter stats_error_kind(int status);

#endif
