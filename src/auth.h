/* auth.h - proxy authentication: an htpasswd file, Proxy-Authorization: Basic, and a verifier
 * that keeps slow password hashes off the event loop.
 *
 * The db (the loaded file) is immutable and owned by the config; it must outlive every
 * verifier that checks against it. A verifier belongs to one event loop (one worker): it owns
 * a thread that runs crypt_r, a cache of verified credentials and the queries in flight.
 * Nothing here logs, and no result or message ever contains a password or a hash. */
#ifndef FERRY_AUTH_H
#define FERRY_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct auth_db;
struct auth_verifier;
struct auth_query;

#define AUTH_USER_MAX 255        /* bytes of a user name */
#define AUTH_CREDENTIALS_MAX 1024 /* bytes of a decoded "user:password" */

enum auth_status {
	AUTH_OK = 0,          /* user is set */
	AUTH_MISSING,         /* no Proxy-Authorization, or not the Basic scheme: 407 */
	AUTH_MALFORMED,       /* Basic, but not well-formed (base64, no ':', NUL...): 407 */
	AUTH_BAD_CREDENTIALS, /* unknown user or wrong password: 407 */
	AUTH_BUSY,            /* too many checks queued for this worker: 503, try later */
};

struct auth_result {
	enum auth_status status;
	const char *user;     /* AUTH_OK: the user name, owned by the db */
	const char *reason;   /* static text for the error log; never holds credentials */
};

/* Receives each error of an htpasswd file: line > 0 names the line; line 0 is about the file
 * as a whole. msg has no file name and no newline. */
typedef void auth_error_fn(void *arg, int line, const char *msg);
/* The answer to a query that auth_check left pending; runs from the loop, exactly once. */
typedef void auth_cb(void *arg, const struct auth_result *r);

/* Load an Apache-style htpasswd file: "user:hash" lines, '#' comment lines, blank lines.
 * Accepted hashes: bcrypt ($2y$, $2b$, $2a$), SHA-512 crypt ($6$), SHA-256 crypt ($5$) and
 * yescrypt ($y$). Plain text, {SHA}, $apr1$, $1$ and DES crypt are refused with their line.
 * Reports every error through errfn and returns NULL when there was any. */
struct auth_db *auth_db_load(const char *path, auth_error_fn *errfn, void *arg);
void auth_db_free(struct auth_db *db);
size_t auth_db_count(const struct auth_db *db);

/* Decode a Proxy-Authorization value: "Basic" (any case), one SP, strict base64 (padding
 * required, no stray characters, unused bits zero); surrounding OWS is ignored. On AUTH_OK,
 * out holds "user:password" with a NUL after it, and *userlen is the length of the user part.
 * out must hold AUTH_CREDENTIALS_MAX + 1 bytes. value NULL means no header. The caller wipes
 * out (explicit_bzero) when done. Pure: for tests and for the verifier. */
enum auth_status auth_parse_basic(const char *value, size_t len, char *out, size_t *outlen,
				  size_t *userlen, const char **reason);

/* A verifier on loop: starts its thread and registers its eventfd. NULL with err on failure. */
struct auth_verifier *auth_verifier_create(struct loop *loop, char *err, size_t errlen);
/* Stops the thread (waits for a hash in progress), frees every query still pending without
 * calling it. Not from inside an auth_cb. */
void auth_verifier_destroy(struct auth_verifier *v);
/* How long a verified (ok_ms) or refused (fail_ms) credential is remembered; defaults 300 s
 * and 30 s. For tests. */
void auth_verifier_set_ttl(struct auth_verifier *v, unsigned ok_ms, unsigned fail_ms);

/* Check a Proxy-Authorization value (NULL: the request had none) against db.
 *   FERRY_OK:    answered now in *now (a cached credential, or a definite failure: missing,
 *                malformed, busy, or a credential refused recently);
 *   FERRY_AGAIN: *q is set and cb(arg, result) runs later from the loop, exactly once,
 *                unless auth_cancel(*q) is called first. The query is freed after cb returns.
 * The first check of a credential always runs on the verifier's thread, unknown users
 * included (against a decoy hash, so the answer's timing does not tell which users exist).
 * Concurrent checks of the same credential share one hash computation. */
int auth_check(struct auth_verifier *v, const struct auth_db *db, const char *value, size_t len,
	       auth_cb *cb, void *arg, struct auth_query **q, struct auth_result *now);
/* Forget a pending query: its cb will not run. Only before its cb ran. */
void auth_cancel(struct auth_query *q);

/* Queries waiting for the thread (for stats and tests). */
size_t auth_verifier_pending(const struct auth_verifier *v);

/* SHA-256 and HMAC-SHA-256 (FIPS 180-4, RFC 2104), used for the cache key. */
#define AUTH_SHA256_LEN 32
void auth_sha256(const void *data, size_t len, uint8_t out[AUTH_SHA256_LEN]);
void auth_hmac_sha256(const uint8_t *key, size_t keylen, const void *data, size_t len,
		      uint8_t out[AUTH_SHA256_LEN]);

#endif
