/* fuzz_config.c - libFuzzer harness for the proxy.ini loader (config_load_string).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I src \
 *         -o fuzz_config tests/fuzz/fuzz_config.c src/config.c src/acl.c \
 *         $(pkg-config --cflags --libs inih)
 *   ./fuzz_config -max_len=4096 -dict=tests/fuzz/config.dict tests/fuzz/corpus/config
 *
 * The input is the file's text (it ends at the first NUL, as a C string does). Beyond crashes
 * and leaks, the harness checks the loader's promises from config.h: a config is returned
 * exactly when no error was reported; every error is one line "fuzz: line N: message" (or
 * "fuzz: message") with no control bytes; a returned config is validated (every number inside
 * its documented range, at least one listener, request_line <= request_header_size); and the
 * same text gives the same answer twice (no hidden state between loads). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

/* Spelled with its directory, as in tests/test_config.c: no other config.h may stand in. */
#include "../../src/config.h"
#include "log.h"

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                    \
			abort();                                                     \
		}                                                                    \
	} while (0)

#define MS_MAX (86400u * 1000u)

struct errs {
	unsigned n;
	unsigned long hash; /* of every message, to compare two loads */
};

static void on_error(void *arg, const char *msg)
{
	struct errs *e = arg;
	size_t len = strlen(msg);

	e->n++;
	CHECK(strncmp(msg, "fuzz: ", 6) == 0);
	CHECK(len > 6 && len < 1024);
	for (size_t i = 0; i < len; i++) {
		CHECK((unsigned char)msg[i] >= 0x20 && msg[i] != 0x7f);
		e->hash = e->hash * 31 + (unsigned char)msg[i];
	}
	/* "line N:" when a line is named: N is a positive number */
	if (strncmp(msg + 6, "line ", 5) == 0)
		CHECK(msg[11] >= '1' && msg[11] <= '9');
}

static void check_listen(const struct config_listen *l)
{
	CHECK(l->text[0] != '\0' && memchr(l->text, '\0', sizeof(l->text)) != NULL);
	if (l->addr.ss_family == AF_INET) {
		CHECK(l->addrlen == sizeof(struct sockaddr_in));
		CHECK(((const struct sockaddr_in *)&l->addr)->sin_port != 0);
	} else {
		CHECK(l->addr.ss_family == AF_INET6);
		CHECK(l->addrlen == sizeof(struct sockaddr_in6));
		CHECK(((const struct sockaddr_in6 *)&l->addr)->sin6_port != 0);
	}
	CHECK(l->line >= 0);
}

static void check_timeout(unsigned ms, int zero_ok)
{
	CHECK(ms <= MS_MAX);
	CHECK(zero_ok || ms > 0);
}

static void check_config(const struct config *c)
{
	CHECK(c->path != NULL);
	CHECK(c->nlisten >= 1 && c->listen != NULL);
	for (size_t i = 0; i < c->nlisten; i++)
		check_listen(&c->listen[i]);
	if (c->admin_listen)
		check_listen(c->admin_listen);
	CHECK(c->processes >= 1 && c->processes <= 256);
	CHECK(c->threads >= 1 && c->threads <= 256);
	CHECK(c->max_connections >= 1 && c->max_connections <= 1000000);
	CHECK(c->backlog >= 1 && c->backlog <= 65535);
	CHECK(c->multiplexer == CONFIG_MUX_AUTO || c->multiplexer == CONFIG_MUX_POLL ||
	      c->multiplexer == CONFIG_MUX_EPOLL);
	CHECK(c->daemon == 0 || c->daemon == 1);
	CHECK(c->via_name != NULL && c->via_name[0] != '\0');

	check_timeout(c->request_header_ms, 0);
	check_timeout(c->client_idle_ms, 0);
	check_timeout(c->connect_ms, 0);
	check_timeout(c->upstream_idle_ms, 0);
	check_timeout(c->tunnel_idle_ms, 0);
	check_timeout(c->pool_idle_ms, 1);
	check_timeout(c->shutdown_ms, 1);
	check_timeout(c->dns_ms, 0);

	CHECK(c->request_line >= 64 && c->request_line <= 1048576);
	CHECK(c->request_header_size >= 1024 && c->request_header_size <= 1048576);
	CHECK(c->request_line <= c->request_header_size);
	CHECK(c->header_fields >= 1 && c->header_fields <= 10000);
	CHECK(c->per_client <= 1000000);

	CHECK(c->allow.n == 0 || c->allow.v != NULL);
	CHECK(c->deny.n == 0 || c->deny.v != NULL);
	CHECK(c->block_destinations.n == 0 || c->block_destinations.v != NULL);
	CHECK(c->connect_ports.n == 0 || c->connect_ports.v != NULL);
	for (size_t i = 0; i < c->connect_ports.n; i++)
		CHECK(c->connect_ports.v[i].lo >= 1 &&
		      c->connect_ports.v[i].lo <= c->connect_ports.v[i].hi);

	CHECK(c->log_level >= LOG_LVL_ERROR && c->log_level <= LOG_LVL_DEBUG);
	CHECK(c->realm != NULL);
	CHECK(c->access_log != NULL && c->error_log != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a C string of exactly the input, so ASan sees any read past its end */
	char *text = malloc(size + 1);
	struct errs e1 = { 0, 0 }, e2 = { 0, 0 };
	struct config *c1, *c2;

	CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';

	c1 = config_load_string(text, "fuzz", on_error, &e1);
	CHECK((c1 != NULL) == (e1.n == 0));
	if (c1)
		check_config(c1);

	c2 = config_load_string(text, "fuzz", on_error, &e2);
	CHECK((c1 != NULL) == (c2 != NULL));
	CHECK(e1.n == e2.n && e1.hash == e2.hash);
	if (c1 && c2) {
		CHECK(c1->nlisten == c2->nlisten && c1->processes == c2->processes);
		CHECK(c1->request_header_ms == c2->request_header_ms);
		CHECK(c1->allow.n == c2->allow.n && c1->connect_ports.n == c2->connect_ports.n);
	}
	config_free(c1);
	config_free(c2);
	free(text);
	return 0;
}
