/* clients.c - per-address connection counts: an open-addressing hash table with
 * tombstone-free deletion (backward shift), keyed by the 16-byte IPv6 form of the address
 * (IPv4 as IPv4-mapped, so a dual-stack listener counts a client once). */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "clients.h"
#include "status.h"

struct clients_entry {
	uint8_t addr[16];
	uint32_t count; /* 0: free slot */
};

static void clients_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
	/* other families (unix sockets in tests) share the all-zero key */
}

static size_t clients_hash(const uint8_t key[16], size_t mask)
{
	uint64_t h = 1469598103934665603ULL;
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 1099511628211ULL;
	return (size_t)(h ^ (h >> 29)) & mask;
}

int clients_init(struct clients *t, unsigned cap)
{
	memset(t, 0, sizeof(*t));
	t->cap = cap;
	t->nslots = 1024;
	t->slots = calloc(t->nslots, sizeof(*t->slots));
	if (t->slots == NULL)
		return FERRY_ERR;
	pthread_mutex_init(&t->lock, NULL);
	return FERRY_OK;
}

void clients_destroy(struct clients *t)
{
	if (t->slots == NULL)
		return;
	free(t->slots);
	t->slots = NULL;
	pthread_mutex_destroy(&t->lock);
}

/* The slot holding key, or the free slot where it would go. */
static struct clients_entry *clients_find(struct clients_entry *slots, size_t nslots, const uint8_t key[16])
{
	size_t mask = nslots - 1;
	for (size_t i = clients_hash(key, mask);; i = (i + 1) & mask)
		if (slots[i].count == 0 || memcmp(slots[i].addr, key, 16) == 0)
			return &slots[i];
}

static int clients_grow(struct clients *t)
{
	size_t n = t->nslots * 2;
	struct clients_entry *s = calloc(n, sizeof(*s));
	if (s == NULL)
		return FERRY_ERR;
	for (size_t i = 0; i < t->nslots; i++)
		if (t->slots[i].count)
			*clients_find(s, n, t->slots[i].addr) = t->slots[i];
	free(t->slots);
	t->slots = s;
	t->nslots = n;
	return FERRY_OK;
}

int clients_acquire(struct clients *t, const struct sockaddr *sa)
{
	uint8_t key[16];
	clients_key(sa, key);
	int rc = FERRY_OK;
	pthread_mutex_lock(&t->lock);
	if (t->used * 2 >= t->nslots && clients_grow(t) != FERRY_OK) {
		rc = FERRY_ERR;
		goto out;
	}
	struct clients_entry *e = clients_find(t->slots, t->nslots, key);
	if (e->count >= t->cap) {
		rc = FERRY_ERR;
		goto out;
	}
	if (e->count == 0) {
		memcpy(e->addr, key, 16);
		t->used++;
	}
	e->count++;
out:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void clients_release(struct clients *t, const struct sockaddr *sa)
{
	uint8_t key[16];
	clients_key(sa, key);
	pthread_mutex_lock(&t->lock);
	struct clients_entry *e = clients_find(t->slots, t->nslots, key);
	if (e->count > 1) {
		e->count--;
	} else if (e->count == 1) {
		/* delete by shifting later members of the probe run back (no tombstones) */
		size_t mask = t->nslots - 1;
		size_t i = (size_t)(e - t->slots);
		size_t j = i;
		t->slots[i].count = 0;
		t->used--;
		for (;;) {
			j = (j + 1) & mask;
			if (t->slots[j].count == 0)
				break;
			size_t home = clients_hash(t->slots[j].addr, mask);
			/* move j into the hole at i unless its home lies cyclically in (i, j] */
			int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
			if (!stays) {
				t->slots[i] = t->slots[j];
				t->slots[j].count = 0;
				i = j;
			}
		}
	}
	pthread_mutex_unlock(&t->lock);
}

unsigned clients_count(struct clients *t, const struct sockaddr *sa)
{
	uint8_t key[16];
	clients_key(sa, key);
	pthread_mutex_lock(&t->lock);
	unsigned n = clients_find(t->slots, t->nslots, key)->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}
