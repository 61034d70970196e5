/* stats.c - the shared counter region (see stats.h for who writes what). */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stats.h"

static struct stats_proc *self_proc; /* this child's slot, set once before threads start */

struct stats *stats_create(int nproc)
{
	if (nproc < 1) {
		errno = EINVAL;
		return NULL;
	}
	size_t size = sizeof(struct stats) + (size_t)nproc * sizeof(struct stats_proc);
	/* MAP_NORESERVE: only the pages of slots in use are ever touched (readers look at
	 * nworkers first), so the region costs what is used, not its virtual size */
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	struct stats *s = p;
	s->size = size;
	s->nproc = nproc;
	return s;
}

void stats_destroy(struct stats *s)
{
	if (s)
		munmap(s, s->size);
}

int stats_claim(struct stats *s, uint64_t generation)
{
	if (s == NULL)
		return -1;
	for (int i = 0; i < s->nproc; i++) {
		struct stats_proc *p = &s->p[i];
		if (atomic_load_explicit(&p->in_use, memory_order_relaxed))
			continue;
		atomic_store_explicit(&p->generation, generation, memory_order_relaxed);
		atomic_store_explicit(&p->in_use, 1, memory_order_release);
		return i;
	}
	return -1;
}

void stats_release(struct stats *s, int slot)
{
	if (s == NULL || slot < 0 || slot >= s->nproc)
		return;
	struct stats_proc *p = &s->p[slot];
	/* the child is dead: the master is the only writer now */
	int n = atomic_load_explicit(&p->nworkers, memory_order_relaxed);
	for (int i = 0; i < n && i < STATS_MAX_WORKERS; i++)
		for (int g = 0; g < STATS_NGAUGES; g++)
			atomic_store_explicit(&p->w[i].g[g], 0, memory_order_relaxed);
	atomic_store_explicit(&p->pid, 0, memory_order_relaxed);
	atomic_store_explicit(&p->in_use, 0, memory_order_release);
}

_Static_assert(sizeof(struct stats_worker) % 64 == 0, "stats_worker: whole cache lines");
_Static_assert(offsetof(struct stats_proc, w) % 64 == 0, "stats_proc: header of whole lines");
_Static_assert(offsetof(struct stats, p) % 64 == 0, "stats: header of whole lines");

void stats_attach(struct stats *s, int slot)
{
	self_proc = s && slot >= 0 && slot < s->nproc ? &s->p[slot] : NULL;
	if (self_proc)
		atomic_store_explicit(&self_proc->pid, (int)getpid(), memory_order_relaxed);
}

struct stats_proc *stats_self(void)
{
	return self_proc;
}

struct stats_worker *stats_worker_slot(int id, struct stats_worker *fallback)
{
	struct stats_proc *p = self_proc;
	if (p == NULL || id < 0 || id >= STATS_MAX_WORKERS)
		return fallback;
	/* a slot that served more workers before keeps its larger count: their counters
	 * still belong in the sums */
	if (atomic_load_explicit(&p->nworkers, memory_order_relaxed) <= id)
		atomic_store_explicit(&p->nworkers, id + 1, memory_order_relaxed);
	return &p->w[id];
}

void stats_accept_inc(enum stats_accept k)
{
	struct stats_proc *p = self_proc;
	if (p)
		atomic_store_explicit(&p->a[k], atomic_load_explicit(&p->a[k], memory_order_relaxed) + 1,
				      memory_order_relaxed);
}

void stats_read(const struct stats *s, struct stats_sum *out)
{
	memset(out, 0, sizeof(*out));
	if (s == NULL)
		return;
	for (int i = 0; i < s->nproc; i++) {
		const struct stats_proc *p = &s->p[i];
		int live = atomic_load_explicit(&p->in_use, memory_order_acquire);
		int n = atomic_load_explicit(&p->nworkers, memory_order_relaxed);
		out->children += live;
		for (int k = 0; k < STATS_NACCEPT; k++)
			out->a[k] += atomic_load_explicit(&p->a[k], memory_order_relaxed);
		for (int w = 0; w < n && w < STATS_MAX_WORKERS; w++) {
			for (int k = 0; k < STATS_NCOUNTERS; k++)
				out->c[k] += atomic_load_explicit(&p->w[w].c[k], memory_order_relaxed);
			if (live)
				for (int g = 0; g < STATS_NGAUGES; g++)
					out->g[g] += atomic_load_explicit(&p->w[w].g[g], memory_order_relaxed);
		}
	}
}

enum stats_counter stats_class(int status)
{
	switch (status / 100) {
	case 1: return STATS_REQ_1XX;
	case 2: return STATS_REQ_2XX;
	case 3: return STATS_REQ_3XX;
	case 4: return STATS_REQ_4XX;
	case 5: return STATS_REQ_5XX;
	default: return STATS_REQ_NONE;
	}
}

enum stats_counter stats_error_kind(int status)
{
	switch (status) {
	case 400: case 414: case 417: case 431: case 501: case 505:
		return STATS_ERR_BAD_REQUEST;
	case 403: return STATS_ERR_DENIED;
	case 407: return STATS_ERR_AUTH;
	case 408: return STATS_ERR_CLIENT_TIMEOUT;
	case 429: return STATS_ERR_CLIENT_LIMIT;
	case 502: return STATS_ERR_UPSTREAM;
	case 504: return STATS_ERR_UPSTREAM_TIMEOUT;
	case 508: return STATS_ERR_LOOP;
	case 500: case 503: return STATS_ERR_INTERNAL;
	default:
		return status >= 400 && status < 500 ? STATS_ERR_BAD_REQUEST
		       : status >= 500 ? STATS_ERR_INTERNAL : STATS_NCOUNTERS;
	}
}
