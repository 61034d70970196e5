/* freelist.c - bounded free lists of same-sized objects. */
#include <stdlib.h>
#include <string.h>

#include "freelist.h"

void *freelist_get(struct freelist *fl, size_t size)
{
	void *p = fl->head;
	if (p == NULL)
		return calloc(1, size < sizeof(void *) ? sizeof(void *) : size);
	fl->head = *(void **)p;
	fl->n--;
	return memset(p, 0, size);
}

void freelist_put(struct freelist *fl, void *p, size_t max)
{
	if (p == NULL)
		return;
	if (fl->n >= max) {
		free(p);
		return;
	}
	*(void **)p = fl->head;
	fl->head = p;
	fl->n++;
}

void freelist_destroy(struct freelist *fl)
{
	while (fl->head != NULL) {
		void *p = fl->head;
		fl->head = *(void **)p;
		free(p);
	}
	fl->n = 0;
}
