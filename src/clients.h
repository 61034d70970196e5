/* clients.h - connections per client address, for [limits] per_client. Shared by the acceptor
 * (which counts a connection in) and the workers (which count it out), so it is locked; it is
 * touched once when a connection opens and once when it closes, never on the request path. */
#ifndef FERRY_CLIENTS_H
#define FERRY_CLIENTS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct clients_entry;

struct clients {
	pthread_mutex_t lock;
	unsigned cap;                /* connections allowed per address */
	struct clients_entry *slots; /* open addressing, power-of-two size */
	size_t nslots, used;
};

/* cap: connections allowed per address (> 0). FERRY_OK or FERRY_ERR. */
int clients_init(struct clients *t, unsigned cap);
void clients_destroy(struct clients *t);
/* Count a connection from sa in: FERRY_OK, or FERRY_ERR when sa already has cap connections
 * (or memory ran out: then the connection is refused too, which fails safe). */
int clients_acquire(struct clients *t, const struct sockaddr *sa);
/* Count a connection from sa out (one that clients_acquire let in). */
void clients_release(struct clients *t, const struct sockaddr *sa);
/* Connections counted for sa now (tests). */
unsigned clients_count(struct clients *t, const struct sockaddr *sa);

#endif
