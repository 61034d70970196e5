/* listeners.c - the master's listening sockets, kept across reloads (see listeners.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"
#include "listeners.h"
#include "status.h"

static int **listeners_table(int nsets, size_t nlisten)
{
	int **t = calloc((size_t)nsets, sizeof(*t));
	if (t == NULL)
		return NULL;
	for (int s = 0; s < nsets; s++) {
		t[s] = malloc((nlisten ? nlisten : 1) * sizeof(int));
		if (t[s] == NULL) {
			while (s-- > 0)
				free(t[s]);
			free(t);
			return NULL;
		}
		for (size_t i = 0; i < nlisten; i++)
			t[s][i] = -1;
	}
	return t;
}

static void listeners_free_table(int **t, int nsets)
{
	if (t == NULL)
		return;
	for (int s = 0; s < nsets; s++)
		free(t[s]);
	free(t);
}

/* One address of cfg alone, so that the acceptor's probe and bind work on it. */
static struct config listeners_one(const struct config *cfg, size_t i)
{
	struct config one = *cfg;
	one.listen = &cfg->listen[i];
	one.nlisten = 1;
	return one;
}

static int same_addr(const struct config_listen *a, const struct config_listen *b)
{
	return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

static int per_child_ok(int nsets, int nchildren, size_t nlisten, char *err, size_t errlen)
{
	size_t sets = (size_t)((nsets + nchildren - 1) / nchildren);
	if (sets * nlisten > LISTENERS_CHILD_MAX) {
		snprintf(err, errlen, "%zu listen addresses x %zu socket sets per process exceed %d "
			 "sockets per process", nlisten, sets, LISTENERS_CHILD_MAX);
		return FERRY_ERR;
	}
	return FERRY_OK;
}

int listeners_open(struct listeners *l, const struct config *cfg, char *err, size_t errlen)
{
	memset(l, 0, sizeof(*l));
	if (per_child_ok(cfg->processes, cfg->processes, cfg->nlisten, err, errlen) != FERRY_OK)
		return FERRY_ERR;
	int **t = listeners_table(cfg->processes, cfg->nlisten);
	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return FERRY_ERR;
	}
	for (int s = 0; s < cfg->processes; s++) {
		if (acceptor_bind(cfg, t[s], err, errlen) != FERRY_OK) {
			for (int r = s + 1; r < cfg->processes; r++)
				free(t[r]);
			free(t[s]); /* acceptor_bind closed what it had opened of this set */
			l->fds = t;
			l->nsets = s;
			l->nlisten = cfg->nlisten;
			listeners_close(l);
			return FERRY_ERR;
		}
	}
	l->fds = t;
	l->nsets = cfg->processes;
	l->nlisten = cfg->nlisten;
	return FERRY_OK;
}

int listeners_update(struct listeners *l, const struct config *old, const struct config *cfg,
		     char *err, size_t errlen)
{
	int nsets = l->nsets > cfg->processes ? l->nsets : cfg->processes;
	if (per_child_ok(nsets, cfg->processes, cfg->nlisten, err, errlen) != FERRY_OK)
		return FERRY_ERR;
	int **t = listeners_table(nsets, cfg->nlisten);
	int *from = calloc(cfg->nlisten ? cfg->nlisten : 1, sizeof(int)); /* old index or -1 */
	int *kept = calloc(old->nlisten ? old->nlisten : 1, sizeof(int));
	if (t == NULL || from == NULL || kept == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t j = 0; j < cfg->nlisten; j++) {
		from[j] = -1;
		for (size_t i = 0; i < old->nlisten; i++)
			if (same_addr(&cfg->listen[j], &old->listen[i]))
				from[j] = (int)i;
		struct config one = listeners_one(cfg, j);
		/* an added address must be free, like at start: never join another's group */
		if (from[j] < 0 && acceptor_probe(&one, err, errlen) != FERRY_OK)
			goto fail;
		for (int s = 0; s < nsets; s++) {
			if (from[j] >= 0 && s < l->nsets) {
				t[s][j] = l->fds[s][from[j]];
				/* a new backlog applies to a kept socket too (listen(2) may be
				 * called again on a listening socket) */
				if (cfg->backlog != old->backlog)
					listen(t[s][j], cfg->backlog);
			} else if (acceptor_bind(&one, &t[s][j], err, errlen) != FERRY_OK) {
				goto fail;
			}
		}
	}
	/* committed: close the sockets of removed addresses (the old children hold their own
	 * descriptors until they are gone) */
	for (size_t j = 0; j < cfg->nlisten; j++)
		if (from[j] >= 0)
			kept[from[j]] = 1;
	for (size_t i = 0; i < old->nlisten; i++)
		if (!kept[i])
			for (int s = 0; s < l->nsets; s++)
				close(l->fds[s][i]);
	listeners_free_table(l->fds, l->nsets);
	l->fds = t;
	l->nsets = nsets;
	l->nlisten = cfg->nlisten;
	free(from);
	free(kept);
	return FERRY_OK;
fail:
	if (t && from) {
		for (size_t j = 0; j < cfg->nlisten; j++)
			for (int s = 0; s < nsets; s++)
				if (t[s][j] >= 0 && !(from[j] >= 0 && s < l->nsets))
					close(t[s][j]);
	}
	listeners_free_table(t, t ? nsets : 0);
	free(from);
	free(kept);
	return FERRY_ERR;
}

size_t listeners_for_child(const struct listeners *l, int k, int n, int *out, size_t max)
{
	size_t got = 0;
	for (int s = k; s < l->nsets; s += n)
		for (size_t i = 0; i < l->nlisten && got < max; i++)
			out[got++] = l->fds[s][i];
	return got;
}

void listeners_close_others(const struct listeners *l, int k, int n)
{
	for (int s = 0; s < l->nsets; s++)
		if (s % n != k)
			for (size_t i = 0; i < l->nlisten; i++)
				close(l->fds[s][i]);
}

void listeners_close(struct listeners *l)
{
	for (int s = 0; s < l->nsets; s++)
		for (size_t i = 0; i < l->nlisten; i++)
			if (l->fds[s][i] >= 0)
				close(l->fds[s][i]);
	listeners_free_table(l->fds, l->nsets);
	memset(l, 0, sizeof(*l));
}
