/* freelist.h - bounded free lists of same-sized objects.
 *
 * Connection structs, connect states and pool entries come and go with every connection or
 * request; a worker keeps a few of each it freed, so that steady churn costs no malloc, and a
 * bound, so that a burst does not pin its peak in memory. The list threads through the first
 * bytes of the kept objects, which are free memory while kept. One list per worker (or per
 * pool): no locking. */
#ifndef FERRY_FREELIST_H
#define FERRY_FREELIST_H

#include <stddef.h>

struct freelist { /* all zero: empty */
	void *head;
	size_t n;
};

/* A zeroed object of size bytes (the same size at every call on one list): a kept one, or a
 * new one. NULL when memory ran out. */
void *freelist_get(struct freelist *fl, size_t size);
/* Keep p for the next get, or free it when max are kept already (max 0: a stopping worker
 * keeps nothing). p may be NULL. */
void freelist_put(struct freelist *fl, void *p, size_t max);
/* Free every kept object. */
void freelist_destroy(struct freelist *fl);

#endif
