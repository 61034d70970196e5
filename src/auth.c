/* auth.c - htpasswd loading, Basic credentials, and verification off the event loop.
 *
 * A good password hash is slow on purpose (bcrypt at cost 10 takes ~50 ms): computed on the
 * worker's loop, one request would stall every connection of the worker. So each verifier has
 * one thread that runs crypt_r, fed through a mutex-protected queue; it posts results back
 * through an eventfd the worker's loop watches, and the loop thread alone touches queries,
 * callbacks and the cache. A credential checked once is remembered (per worker, keyed by an
 * HMAC of the whole header value under a random per-verifier key, so the cache holds nothing
 * a memory dump could turn back into a password), for a bounded time and in bounded number;
 * after that, a request costs one HMAC. */
#include "auth.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loop.h"
#include "status.h"

#define FILE_MAX (64u << 20)
#define LINE_MAX_LEN 4096
#define CACHE_WAYS 4
#define CACHE_SETS 256            /* a power of two */
#define MAX_JOBS 256              /* hash computations queued per verifier */
#define OK_TTL_MS 300000u
#define FAIL_TTL_MS 30000u
#define THREAD_STACK (256u << 10)

/* ---- SHA-256 (FIPS 180-4) and HMAC (RFC 2104) ---- */

struct sha256 {
	uint32_t h[8];
	uint64_t bytes;
	uint8_t buf[64];
	size_t n;
};

static const uint32_t sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2,
};

static uint32_t ror(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static void sha256_block(struct sha256 *s, const uint8_t *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, h, t1, t2;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
	for (; i < 64; i++)
		w[i] = (ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10)) + w[i - 7] +
		       (ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3)) + w[i - 16];
	a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
	e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
	for (i = 0; i < 64; i++) {
		t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) +
		     sha256_k[i] + w[i];
		t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
	}
	s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
	s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_init(struct sha256 *s)
{
	static const uint32_t iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
					0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };

	memcpy(s->h, iv, sizeof(iv));
	s->bytes = 0;
	s->n = 0;
}

static void sha256_update(struct sha256 *s, const void *data, size_t len)
{
	const uint8_t *p = data;

	s->bytes += len;
	while (len > 0) {
		size_t take = 64 - s->n < len ? 64 - s->n : len;
		if (s->n == 0 && len >= 64) {
			sha256_block(s, p);
			p += 64;
			len -= 64;
			continue;
		}
		memcpy(s->buf + s->n, p, take);
		s->n += take;
		p += take;
		len -= take;
		if (s->n == 64) {
			sha256_block(s, s->buf);
			s->n = 0;
		}
	}
}

static void sha256_final(struct sha256 *s, uint8_t out[AUTH_SHA256_LEN])
{
	uint64_t bits = s->bytes * 8;
	int i;

	s->buf[s->n++] = 0x80;
	if (s->n > 56) {
		memset(s->buf + s->n, 0, 64 - s->n);
		sha256_block(s, s->buf);
		s->n = 0;
	}
	memset(s->buf + s->n, 0, 56 - s->n);
	for (i = 0; i < 8; i++)
		s->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha256_block(s, s->buf);
	for (i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(s->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)s->h[i];
	}
	explicit_bzero(s, sizeof(*s));
}

void auth_sha256(const void *data, size_t len, uint8_t out[AUTH_SHA256_LEN])
{
	struct sha256 s;

	sha256_init(&s);
	sha256_update(&s, data, len);
	sha256_final(&s, out);
}

void auth_hmac_sha256(const uint8_t *key, size_t keylen, const void *data, size_t len,
		      uint8_t out[AUTH_SHA256_LEN])
{
	uint8_t k[64], pad[64], inner[AUTH_SHA256_LEN];
	struct sha256 s;
	size_t i;

	memset(k, 0, sizeof(k));
	if (keylen > sizeof(k))
		auth_sha256(key, keylen, k);
	else
		memcpy(k, key, keylen);
	for (i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x36;
	sha256_init(&s);
	sha256_update(&s, pad, 64);
	sha256_update(&s, data, len);
	sha256_final(&s, inner);
	for (i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x5c;
	sha256_init(&s);
	sha256_update(&s, pad, 64);
	sha256_update(&s, inner, sizeof(inner));
	sha256_final(&s, out);
	explicit_bzero(k, sizeof(k));
	explicit_bzero(pad, sizeof(pad));
	explicit_bzero(inner, sizeof(inner));
}

/* Equal without an early exit: the time does not depend on where a and b differ. */
static int ct_equal(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

/* ---- the htpasswd file ---- */

struct auth_user {
	char *name;
	char *hash;
	int line;
};

struct auth_db {
	struct auth_user *users;
	size_t n, cap;
	uint32_t *slots;   /* user index + 1, open addressing; 0 is empty */
	size_t mask;
	const char *decoy; /* a hash to spend time on for unknown users */
};

static uint32_t hash_bytes(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static const struct auth_user *db_find(const struct auth_db *db, const char *name, size_t len)
{
	size_t i;

	if (db->slots == NULL)
		return NULL;
	for (i = hash_bytes(name, len) & db->mask; db->slots[i]; i = (i + 1) & db->mask) {
		const struct auth_user *u = &db->users[db->slots[i] - 1];
		if (strlen(u->name) == len && memcmp(u->name, name, len) == 0)
			return u;
	}
	return NULL;
}

/* File user index j in the table, growing it to keep the load at most one half. */
static int db_insert(struct auth_db *db, size_t j)
{
	const char *name;
	size_t i, k;

	if (db->slots == NULL || (db->n + 1) * 2 > db->mask + 1) {
		size_t size = db->slots ? (db->mask + 1) * 2 : 64;
		uint32_t *slots = calloc(size, sizeof(*slots));
		if (slots == NULL)
			return FERRY_ERR;
		for (k = 0; db->slots && k <= db->mask; k++) {
			if (db->slots[k] == 0)
				continue;
			name = db->users[db->slots[k] - 1].name;
			for (i = hash_bytes(name, strlen(name)) & (size - 1); slots[i];
			     i = (i + 1) & (size - 1))
				;
			slots[i] = db->slots[k];
		}
		free(db->slots);
		db->slots = slots;
		db->mask = size - 1;
	}
	name = db->users[j].name;
	for (i = hash_bytes(name, strlen(name)) & db->mask; db->slots[i]; i = (i + 1) & db->mask)
		;
	db->slots[i] = (uint32_t)j + 1;
	return FERRY_OK;
}

void auth_db_free(struct auth_db *db)
{
	size_t i;

	if (db == NULL)
		return;
	for (i = 0; i < db->n; i++) {
		free(db->users[i].name);
		explicit_bzero(db->users[i].hash, strlen(db->users[i].hash));
		free(db->users[i].hash);
	}
	free(db->users);
	free(db->slots);
	free(db);
}

size_t auth_db_count(const struct auth_db *db)
{
	return db ? db->n : 0;
}

/* The alphabet of crypt's salts and hashes. */
static int is_crypt64(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '/';
}

static size_t span_crypt64(const char *s)
{
	size_t n = 0;

	while (is_crypt64((unsigned char)s[n]))
		n++;
	return n;
}

static int starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* NULL when h is a hash ferry accepts, else why not. */
static const char *hash_problem(const char *h)
{
	size_t n;
	const char *p;

	if (*h == '\0')
		return "no password hash";
	if (starts(h, "$2y$") || starts(h, "$2b$") || starts(h, "$2a$")) {
		if (strlen(h) != 60 || h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9' ||
		    h[6] != '$' || span_crypt64(h + 7) != 53)
			return "malformed bcrypt hash";
		n = (size_t)(h[4] - '0') * 10 + (size_t)(h[5] - '0');
		if (n < 4 || n > 31)
			return "bcrypt cost out of range (04..31)";
	} else if (starts(h, "$5$") || starts(h, "$6$")) {
		p = h + 3;
		if (starts(p, "rounds=")) {
			p += 7;
			if (*p < '1' || *p > '9')
				return "malformed SHA-crypt rounds";
			while (*p >= '0' && *p <= '9')
				p++;
			if (*p++ != '$')
				return "malformed SHA-crypt rounds";
		}
		n = span_crypt64(p);
		if (n > 16 || p[n] != '$')
			return "malformed SHA-crypt salt";
		p += n + 1;
		if (span_crypt64(p) != (h[1] == '6' ? 86u : 43u) || p[h[1] == '6' ? 86 : 43])
			return h[1] == '6' ? "malformed SHA-512 crypt hash" :
					     "malformed SHA-256 crypt hash";
	} else if (starts(h, "$y$")) {
		p = h + 3;
		n = span_crypt64(p);
		if (n == 0 || p[n] != '$')
			return "malformed yescrypt hash";
		p += n + 1;
		n = span_crypt64(p);
		if (p[n] != '$' || span_crypt64(p + n + 1) != 43 || p[n + 1 + 43])
			return "malformed yescrypt hash";
	} else if (starts(h, "{SHA}")) {
		return "SHA-1 ({SHA}) hashes are too weak";
	} else if (starts(h, "$apr1$")) {
		return "Apache MD5 ($apr1$) hashes are too weak";
	} else if (starts(h, "$1$")) {
		return "MD5 crypt ($1$) hashes are too weak";
	} else if (strlen(h) == 13 && span_crypt64(h) == 13) {
		return "DES crypt hashes are too weak (or this is a plain-text password)";
	} else if (h[0] == '$') {
		return "unsupported hash type";
	} else {
		return "plain-text passwords are refused";
	}
	switch (crypt_checksalt(h)) {
	case CRYPT_SALT_OK:
	case CRYPT_SALT_METHOD_LEGACY: /* libxcrypt says so of $5$, which we still accept */
	case CRYPT_SALT_TOO_CHEAP:
		return NULL;
	case CRYPT_SALT_METHOD_DISABLED:
		return "hash type not supported by this system's libcrypt";
	default:
		return "malformed hash";
	}
}

static void db_error(auth_error_fn *errfn, void *arg, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void db_error(auth_error_fn *errfn, void *arg, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (errfn)
		errfn(arg, line, msg);
}

static int is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* One line (NUL-terminated, no newline). FERRY_ERR after reporting, or on out-of-memory. */
static int db_line(struct auth_db *db, int lineno, char *s, size_t len, auth_error_fn *errfn,
		   void *arg)
{
	const struct auth_user *dup;
	char *colon, *hash, *name;
	const char *why;
	size_t i, namelen;

	if (len > LINE_MAX_LEN) {
		db_error(errfn, arg, lineno, "line too long (max %d characters)", LINE_MAX_LEN);
		return FERRY_ERR;
	}
	if (memchr(s, '\0', len)) {
		db_error(errfn, arg, lineno, "line contains a NUL byte");
		return FERRY_ERR;
	}
	while (len > 0 && is_blank(s[len - 1]))
		s[--len] = '\0';
	if (len == 0 || s[0] == '#')
		return FERRY_OK;
	if ((colon = strchr(s, ':')) == NULL) {
		db_error(errfn, arg, lineno, "expected user:hash");
		return FERRY_ERR;
	}
	*colon = '\0';
	name = s;
	hash = colon + 1;
	namelen = (size_t)(colon - s);
	if (namelen == 0) {
		db_error(errfn, arg, lineno, "empty user name");
		return FERRY_ERR;
	}
	if (namelen > AUTH_USER_MAX) {
		db_error(errfn, arg, lineno, "user name longer than %d bytes", AUTH_USER_MAX);
		return FERRY_ERR;
	}
	for (i = 0; i < namelen; i++) {
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) {
			db_error(errfn, arg, lineno, "control character in user name");
			return FERRY_ERR;
		}
	}
	if (is_blank(name[0]) || is_blank(name[namelen - 1])) {
		db_error(errfn, arg, lineno, "user '%s': name starts or ends with a blank", name);
		return FERRY_ERR;
	}
	if ((why = hash_problem(hash)) != NULL) {
		db_error(errfn, arg, lineno, "user '%s': %s; make entries with 'htpasswd -B' "
			 "(bcrypt)", name, why);
		return FERRY_ERR;
	}
	if ((dup = db_find(db, name, namelen)) != NULL) {
		db_error(errfn, arg, lineno, "user '%s' is listed twice (also on line %d)", name,
			 dup->line);
		return FERRY_ERR;
	}
	if (db->n == db->cap) {
		size_t cap = db->cap ? db->cap * 2 : 16;
		struct auth_user *v = realloc(db->users, cap * sizeof(*v));
		if (v == NULL)
			goto oom;
		db->users = v;
		db->cap = cap;
	}
	db->users[db->n].name = strdup(name);
	db->users[db->n].hash = strdup(hash);
	db->users[db->n].line = lineno;
	if (db->users[db->n].name == NULL || db->users[db->n].hash == NULL) {
		free(db->users[db->n].name);
		free(db->users[db->n].hash);
		goto oom;
	}
	if (db_insert(db, db->n) != FERRY_OK) {
		free(db->users[db->n].name);
		explicit_bzero(db->users[db->n].hash, strlen(db->users[db->n].hash));
		free(db->users[db->n].hash);
		goto oom;
	}
	db->n++;
	return FERRY_OK;
oom:
	db_error(errfn, arg, lineno, "out of memory");
	return FERRY_ERR;
}

struct auth_db *auth_db_load(const char *path, auth_error_fn *errfn, void *arg)
{
	struct auth_db *db = NULL;
	char *text = NULL, *s, *nl;
	size_t len = 0, cap = 0, n;
	int fd, lineno = 0, nerrors = 0;
	struct stat st;
	ssize_t r;

	/* Not blocking on a FIFO, and no endless read of a device: regular files only. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
		db_error(errfn, arg, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		db_error(errfn, arg, 0, "not a regular file");
		goto fail;
	}
	for (;;) {
		if (cap - len < 4096) {
			char *t;
			if (cap >= FILE_MAX) {
				db_error(errfn, arg, 0, "larger than %u MiB", FILE_MAX >> 20);
				goto fail;
			}
			cap = cap ? cap * 2 : 16384;
			if ((t = realloc(text, cap + 1)) == NULL) {
				db_error(errfn, arg, 0, "out of memory");
				goto fail;
			}
			text = t;
		}
		r = read(fd, text + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			db_error(errfn, arg, 0, "cannot read: %s", strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (text == NULL && (text = malloc(1)) == NULL) {
		db_error(errfn, arg, 0, "out of memory");
		goto fail;
	}
	text[len] = '\0';
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		db_error(errfn, arg, 0, "out of memory");
		goto fail;
	}
	for (s = text; s < text + len; s = nl + 1) {
		nl = memchr(s, '\n', (size_t)(text + len - s));
		if (nl == NULL)
			nl = text + len;
		*nl = '\0';
		n = (size_t)(nl - s);
		lineno++;
		if (db_line(db, lineno, s, n, errfn, arg) != FERRY_OK)
			nerrors++;
	}
	if (nerrors == 0 && db->n == 0) {
		db_error(errfn, arg, 0, "no users (every request would be refused)");
		nerrors++;
	}
	if (nerrors > 0)
		goto fail;
	/* Unknown users are hashed against this, so that they cost what a real user costs:
	 * bcrypt if the file has any, since it is what most entries are. */
	db->decoy = db->users[0].hash;
	for (n = 0; n < db->n; n++) {
		if (starts(db->users[n].hash, "$2")) {
			db->decoy = db->users[n].hash;
			break;
		}
	}
	explicit_bzero(text, len);
	free(text);
	close(fd);
	return db;
fail:
	if (text) {
		explicit_bzero(text, len);
		free(text);
	}
	auth_db_free(db);
	close(fd);
	return NULL;
}

/* ---- Proxy-Authorization: Basic ---- */

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* RFC 4648 section 4, strictly: length a multiple of 4, '=' only as final padding, and the
 * bits the padding leaves unused are zero (so each credential has one spelling). */
static int b64_decode(const char *in, size_t len, char *out, size_t cap, size_t *outlen)
{
	size_t i, o = 0;

	if (len == 0 || len % 4 != 0)
		return FERRY_ERR;
	for (i = 0; i < len; i += 4) {
		int a = b64val((unsigned char)in[i]), b = b64val((unsigned char)in[i + 1]);
		int c = b64val((unsigned char)in[i + 2]), d = b64val((unsigned char)in[i + 3]);
		int last = i + 4 == len;
		if (a < 0 || b < 0)
			return FERRY_ERR;
		if (c < 0 || d < 0) {
			if (!last || d >= 0 || in[i + 3] != '=')
				return FERRY_ERR;
			if (c < 0) {
				/* xx== */
				if (in[i + 2] != '=' || (b & 0x0f) != 0)
					return FERRY_ERR;
				if (o + 1 > cap)
					return FERRY_ERR;
				out[o++] = (char)(a << 2 | b >> 4);
			} else {
				/* xxx= */
				if ((c & 0x03) != 0 || o + 2 > cap)
					return FERRY_ERR;
				out[o++] = (char)(a << 2 | b >> 4);
				out[o++] = (char)((b & 0x0f) << 4 | c >> 2);
			}
			break;
		}
		if (o + 3 > cap)
			return FERRY_ERR;
		out[o++] = (char)(a << 2 | b >> 4);
		out[o++] = (char)((b & 0x0f) << 4 | c >> 2);
		out[o++] = (char)((c & 0x03) << 6 | d);
	}
	*outlen = o;
	return FERRY_OK;
}

static int is_ows(int c)
{
	return c == ' ' || c == '\t';
}

static int is_tchar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* value without the OWS around it. */
static void trim_ows(const char **value, size_t *len)
{
	while (*len > 0 && is_ows((unsigned char)(*value)[0]))
		(*value)++, (*len)--;
	while (*len > 0 && is_ows((unsigned char)(*value)[*len - 1]))
		(*len)--;
}

enum auth_status auth_parse_basic(const char *value, size_t len, char *out, size_t *outlen,
				  size_t *userlen, const char **reason)
{
	const char *colon;
	size_t n = 0, tlen;

	*outlen = 0;
	*userlen = 0;
	if (value == NULL) {
		*reason = "no Proxy-Authorization";
		return AUTH_MISSING;
	}
	trim_ows(&value, &len);
	while (n < len && is_tchar((unsigned char)value[n]))
		n++;
	if (n != 5 || strncasecmp(value, "basic", 5) != 0) {
		*reason = len == 0 ? "empty Proxy-Authorization" : "not the Basic scheme";
		return AUTH_MISSING;
	}
	if (n == len) {
		*reason = "Basic without credentials";
		return AUTH_MALFORMED;
	}
	/* credentials = auth-scheme [ 1*SP token68 ] (RFC 9110 section 11.4): spaces, not tabs */
	if (value[n] != ' ') {
		*reason = "Basic must be followed by a space";
		return AUTH_MALFORMED;
	}
	while (n < len && value[n] == ' ')
		n++;
	if (n < len && is_ows((unsigned char)value[n])) {
		*reason = "Basic must be followed by spaces only";
		return AUTH_MALFORMED;
	}
	value += n;
	tlen = len - n;
	if (b64_decode(value, tlen, out, AUTH_CREDENTIALS_MAX, outlen) != FERRY_OK) {
		explicit_bzero(out, AUTH_CREDENTIALS_MAX);
		*outlen = 0;
		*reason = tlen / 4 * 3 > AUTH_CREDENTIALS_MAX ? "credentials too long" :
							       "bad base64 in credentials";
		return AUTH_MALFORMED;
	}
	out[*outlen] = '\0';
	if (memchr(out, '\0', *outlen)) {
		*reason = "NUL byte in credentials";
		goto bad;
	}
	if ((colon = memchr(out, ':', *outlen)) == NULL) {
		*reason = "no ':' between user and password";
		goto bad;
	}
	if (colon == out) {
		*reason = "empty user name";
		goto bad;
	}
	*userlen = (size_t)(colon - out);
	*reason = NULL;
	return AUTH_OK;
bad:
	explicit_bzero(out, *outlen);
	*outlen = 0;
	return AUTH_MALFORMED;
}

/* ---- the verifier ---- */

struct auth_query {
	struct auth_query *next, **pprev; /* in a job's waiters, or the verifier's dispatch */
	auth_cb *cb;
	void *arg;
};

struct auth_job {
	struct auth_job *next;     /* in todo or done (under the lock) */
	struct auth_job *inflight; /* every job not yet answered (loop thread only) */
	uint8_t key[AUTH_SHA256_LEN];
	const struct auth_db *db;
	const struct auth_user *user; /* NULL: unknown user, hashed against db->decoy */
	char *password;            /* wiped and freed by the thread once hashed */
	int ok;                    /* written by the thread */
	struct auth_query *waiters;
};

struct cache_entry {
	uint8_t key[AUTH_SHA256_LEN];
	const struct auth_db *db;
	const char *user;          /* NULL: the credential was refused */
	const char *reason;
	uint64_t expires;          /* 0: empty */
};

struct auth_verifier {
	struct loop *loop;
	int efd;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct auth_job *todo, **todo_tail, *done, **done_tail; /* under lock */
	int stop;                                                /* under lock */
	struct crypt_data *cd;     /* the thread's */

	/* loop thread only */
	struct auth_job *inflight;
	size_t njobs;
	struct auth_query *dispatch;
	uint8_t secret[32];
	unsigned ok_ttl, fail_ttl;
	struct cache_entry cache[CACHE_SETS * CACHE_WAYS];
};

static struct cache_entry *cache_set(struct auth_verifier *v, const uint8_t *key)
{
	uint32_t i = (uint32_t)key[0] | (uint32_t)key[1] << 8;

	return &v->cache[(i & (CACHE_SETS - 1)) * CACHE_WAYS];
}

static const struct cache_entry *cache_get(struct auth_verifier *v, const struct auth_db *db,
					   const uint8_t *key)
{
	struct cache_entry *set = cache_set(v, key);
	uint64_t now = loop_now(v->loop);
	int i;

	for (i = 0; i < CACHE_WAYS; i++)
		if (set[i].expires > now && set[i].db == db &&
		    ct_equal(set[i].key, key, AUTH_SHA256_LEN))
			return &set[i];
	return NULL;
}

static void cache_put(struct auth_verifier *v, const struct auth_job *j, const char *reason)
{
	struct cache_entry *set = cache_set(v, j->key), *e = &set[0];
	uint64_t now = loop_now(v->loop);
	int i;

	/* Replace an expired entry, else the one closest to expiry. */
	for (i = 0; i < CACHE_WAYS; i++) {
		if (set[i].expires <= now) {
			e = &set[i];
			break;
		}
		if (set[i].expires < e->expires)
			e = &set[i];
	}
	memcpy(e->key, j->key, AUTH_SHA256_LEN);
	e->db = j->db;
	e->user = j->ok ? j->user->name : NULL;
	e->reason = reason;
	e->expires = now + (j->ok ? v->ok_ttl : v->fail_ttl);
	if (e->expires <= now) /* a TTL of 0: do not remember */
		e->expires = 0;
}

static void *verifier_main(void *arg)
{
	struct auth_verifier *v = arg;
	struct auth_job *j;
	uint64_t one = 1;

	for (;;) {
		pthread_mutex_lock(&v->lock);
		while (v->todo == NULL && !v->stop)
			pthread_cond_wait(&v->cond, &v->lock);
		if (v->stop) {
			pthread_mutex_unlock(&v->lock);
			return NULL;
		}
		j = v->todo;
		v->todo = j->next;
		if (v->todo == NULL)
			v->todo_tail = &v->todo;
		pthread_mutex_unlock(&v->lock);

		{
			const char *hash = j->user ? j->user->hash : j->db->decoy;
			const char *out = crypt_r(j->password, hash, v->cd);
			size_t n = strlen(hash);
			/* crypt_r answers "*0"/"*1" (or NULL) on error: never equal to a hash. */
			j->ok = j->user != NULL && out != NULL && strlen(out) == n &&
				ct_equal(out, hash, n);
			explicit_bzero(v->cd, sizeof(*v->cd));
			explicit_bzero(j->password, strlen(j->password));
			free(j->password);
			j->password = NULL;
		}

		pthread_mutex_lock(&v->lock);
		j->next = NULL;
		*v->done_tail = j;
		v->done_tail = &j->next;
		pthread_mutex_unlock(&v->lock);
		/* An eventfd write fails only when the counter would overflow: then it is not
		 * zero, and the loop will wake anyway. */
		if (write(v->efd, &one, sizeof(one)) < 0) {
			/* nothing to do */
		}
	}
}

static void query_unlink(struct auth_query *q)
{
	*q->pprev = q->next;
	if (q->next)
		q->next->pprev = q->pprev;
}

static void query_push(struct auth_query **head, struct auth_query *q)
{
	q->next = *head;
	q->pprev = head;
	if (*head)
		(*head)->pprev = &q->next;
	*head = q;
}

static void job_free(struct auth_job *j)
{
	struct auth_query *q;

	while ((q = j->waiters) != NULL) {
		query_unlink(q);
		free(q);
	}
	if (j->password) {
		explicit_bzero(j->password, strlen(j->password));
		free(j->password);
	}
	free(j);
}

static void inflight_remove(struct auth_verifier *v, struct auth_job *j)
{
	struct auth_job **p;

	for (p = &v->inflight; *p; p = &(*p)->inflight) {
		if (*p == j) {
			*p = j->inflight;
			v->njobs--;
			return;
		}
	}
}

static void verifier_on_wake(struct loop *loop, int fd, int events, void *arg)
{
	struct auth_verifier *v = arg;
	struct auth_job *done, *j;
	struct auth_result r;
	uint64_t count;

	if (read(fd, &count, sizeof(count)) < 0) {
		/* EAGAIN: a wake-up already consumed; the done list says what is there */
	}
	pthread_mutex_lock(&v->lock);
	done = v->done;
	v->done = NULL;
	v->done_tail = &v->done;
	pthread_mutex_unlock(&v->lock);

	while ((j = done) != NULL) {
		struct auth_query *q;
		done = j->next;
		inflight_remove(v, j);
		r.status = j->ok ? AUTH_OK : AUTH_BAD_CREDENTIALS;
		r.user = j->ok ? j->user->name : NULL;
		r.reason = j->ok ? NULL : j->user ? "wrong password" : "unknown user";
		cache_put(v, j, r.reason);
		/* Callbacks may cancel other queries of this job, or start new checks: take
		 * the waiters out of the job first, and pop them one at a time. */
		if (j->waiters) {
			v->dispatch = j->waiters;
			v->dispatch->pprev = &v->dispatch;
			j->waiters = NULL;
		}
		while ((q = v->dispatch) != NULL) {
			query_unlink(q);
			q->cb(q->arg, &r);
			free(q);
		}
		job_free(j);
	}
}

struct auth_verifier *auth_verifier_create(struct loop *loop, char *err, size_t errlen)
{
	struct auth_verifier *v = calloc(1, sizeof(*v));
	pthread_attr_t attr;
	sigset_t all, old;
	int rc;

	if (v == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	v->loop = loop;
	v->efd = -1;
	v->todo_tail = &v->todo;
	v->done_tail = &v->done;
	v->ok_ttl = OK_TTL_MS;
	v->fail_ttl = FAIL_TTL_MS;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	if ((v->cd = calloc(1, sizeof(*v->cd))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (getrandom(v->secret, sizeof(v->secret), 0) != (ssize_t)sizeof(v->secret)) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		goto fail;
	}
	if ((v->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (loop_add(loop, v->efd, LOOP_READ, verifier_on_wake, v) != FERRY_OK) {
		snprintf(err, errlen, "loop_add: %s", strerror(errno));
		goto fail;
	}
	/* The thread takes no signals: the process has one place that does. */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&v->thread, &attr, verifier_main, v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		snprintf(err, errlen, "pthread_create: %s", strerror(rc));
		goto fail;
	}
	v->started = 1;
	return v;
fail:
	auth_verifier_destroy(v);
	return NULL;
}

void auth_verifier_destroy(struct auth_verifier *v)
{
	struct auth_job *j;

	if (v == NULL)
		return;
	if (v->started) {
		pthread_mutex_lock(&v->lock);
		v->stop = 1;
		pthread_cond_signal(&v->cond);
		pthread_mutex_unlock(&v->lock);
		pthread_join(v->thread, NULL);
	}
	/* Every job is on the inflight list, whichever queue it was on. */
	while ((j = v->inflight) != NULL) {
		v->inflight = j->inflight;
		job_free(j);
	}
	if (v->efd >= 0) {
		loop_del(v->loop, v->efd);
		close(v->efd);
	}
	pthread_mutex_destroy(&v->lock);
	pthread_cond_destroy(&v->cond);
	if (v->cd) {
		explicit_bzero(v->cd, sizeof(*v->cd));
		free(v->cd);
	}
	explicit_bzero(v->secret, sizeof(v->secret));
	free(v);
}

void auth_verifier_set_ttl(struct auth_verifier *v, unsigned ok_ms, unsigned fail_ms)
{
	v->ok_ttl = ok_ms;
	v->fail_ttl = fail_ms;
}

size_t auth_verifier_pending(const struct auth_verifier *v)
{
	return v->njobs;
}

static int answer(struct auth_result *now, enum auth_status status, const char *user,
		  const char *reason)
{
	now->status = status;
	now->user = user;
	now->reason = reason;
	return FERRY_OK;
}

int auth_check(struct auth_verifier *v, const struct auth_db *db, const char *value, size_t len,
	       auth_cb *cb, void *arg, struct auth_query **qp, struct auth_result *now)
{
	char cred[AUTH_CREDENTIALS_MAX + 1];
	uint8_t key[AUTH_SHA256_LEN];
	const struct cache_entry *e;
	struct auth_query *q;
	struct auth_job *j;
	enum auth_status st;
	const char *reason;
	size_t credlen, userlen;

	*qp = NULL;
	if (value == NULL)
		return answer(now, AUTH_MISSING, NULL, "no Proxy-Authorization");
	trim_ows(&value, &len);
	auth_hmac_sha256(v->secret, sizeof(v->secret), value, len, key);
	if ((e = cache_get(v, db, key)) != NULL)
		return answer(now, e->user ? AUTH_OK : AUTH_BAD_CREDENTIALS, e->user,
			      e->user ? NULL : e->reason);

	st = auth_parse_basic(value, len, cred, &credlen, &userlen, &reason);
	if (st != AUTH_OK)
		return answer(now, st, NULL, reason);

	for (j = v->inflight; j; j = j->inflight)
		if (j->db == db && ct_equal(j->key, key, AUTH_SHA256_LEN))
			break;
	if (j == NULL && v->njobs >= MAX_JOBS) {
		explicit_bzero(cred, credlen);
		return answer(now, AUTH_BUSY, NULL, "too many password checks waiting");
	}
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		explicit_bzero(cred, credlen);
		return answer(now, AUTH_BUSY, NULL, "out of memory");
	}
	q->cb = cb;
	q->arg = arg;
	if (j) {
		explicit_bzero(cred, credlen);
		query_push(&j->waiters, q);
		*qp = q;
		return FERRY_AGAIN;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->password = strdup(cred + userlen + 1)) == NULL) {
		explicit_bzero(cred, credlen);
		free(j);
		free(q);
		return answer(now, AUTH_BUSY, NULL, "out of memory");
	}
	memcpy(j->key, key, sizeof(key));
	j->db = db;
	j->user = db_find(db, cred, userlen);
	explicit_bzero(cred, credlen);
	query_push(&j->waiters, q);
	j->inflight = v->inflight;
	v->inflight = j;
	v->njobs++;

	pthread_mutex_lock(&v->lock);
	j->next = NULL;
	*v->todo_tail = j;
	v->todo_tail = &j->next;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
	*qp = q;
	return FERRY_AGAIN;
}

void auth_cancel(struct auth_query *q)
{
	if (q == NULL)
		return;
	query_unlink(q);
	free(q);
}
