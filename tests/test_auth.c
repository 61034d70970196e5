/* test_auth.c - htpasswd loading (every refused kind of entry, with its line), Basic
 * credentials parsing, and the verifier: hashes made at test time with libcrypt, answers that
 * come back through the loop, the cache, shared computations, cancel, and the queue bound. */
#include <check.h>
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "loop.h"
#include "status.h"

#define HANG_GUARD_MS 60000 /* only against a hang: a loaded machine may be slow */

/* ---- helpers ---- */

static char tmpdir[64];
static char files[16][160];
static int nfiles;

static void make_tmpdir(void)
{
	strcpy(tmpdir, "/tmp/ferry-auth-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	nfiles = 0;
}

static void remove_tmpdir(void)
{
	int i;

	for (i = 0; i < nfiles; i++)
		unlink(files[i]);
	rmdir(tmpdir);
}

static const char *write_file(const char *text, size_t len)
{
	char *path;
	FILE *f;

	ck_assert_int_lt(nfiles, 16);
	path = files[nfiles];
	snprintf(path, sizeof(files[0]), "%s/htpasswd%d", tmpdir, nfiles);
	nfiles++;
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

/* A hash of password made now with a fresh salt: prefix "$2y$", "$6$", "$5$" or "$y$". */
static char *make_hash(const char *prefix, const char *password)
{
	static char out[8][CRYPT_OUTPUT_SIZE];
	static int next;
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	/* The cheapest costs: these tests check behaviour, not strength. */
	unsigned long count = prefix[1] == '2' ? 4 : prefix[1] == 'y' ? 0 : 1000;
	char *h;

	ck_assert_ptr_nonnull(cd);
	ck_assert_ptr_nonnull(crypt_gensalt_rn(prefix, count, NULL, 0, salt, sizeof(salt)));
	h = crypt_r(password, salt, cd);
	ck_assert_ptr_nonnull(h);
	ck_assert_msg(h[0] == '$', "crypt_r failed for %s: %s", prefix, h);
	h = strcpy(out[next++ % 8], h);
	free(cd);
	return h;
}

#define MAX_ERRS 32

struct errs {
	int n;
	int line[MAX_ERRS];
	char msg[MAX_ERRS][512];
};

static void collect(void *arg, int line, const char *msg)
{
	struct errs *e = arg;

	if (e->n < MAX_ERRS) {
		e->line[e->n] = line;
		snprintf(e->msg[e->n], sizeof(e->msg[0]), "%s", msg);
	}
	e->n++;
}

static const char *all_errs(const struct errs *e)
{
	static char buf[MAX_ERRS * 160];
	size_t len = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < e->n && i < MAX_ERRS && len < sizeof(buf) - 1; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "\n  %d: %s", e->line[i],
					e->msg[i]);
	return buf;
}

static struct auth_db *load_text(const char *text, struct errs *e)
{
	memset(e, 0, sizeof(*e));
	return auth_db_load(write_file(text, strlen(text)), collect, e);
}

/* "Basic base64(user:password)" */
static const char *basic(const char *credentials)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static char out[4][2048];
	static int next;
	const unsigned char *s = (const unsigned char *)credentials;
	size_t len = strlen(credentials), i;
	char *o = out[next++ % 4], *p;

	p = o + sprintf(o, "Basic ");
	for (i = 0; i + 2 < len; i += 3) {
		*p++ = alphabet[s[i] >> 2];
		*p++ = alphabet[(s[i] & 3) << 4 | s[i + 1] >> 4];
		*p++ = alphabet[(s[i + 1] & 15) << 2 | s[i + 2] >> 6];
		*p++ = alphabet[s[i + 2] & 63];
	}
	if (len - i == 1) {
		*p++ = alphabet[s[i] >> 2];
		*p++ = alphabet[(s[i] & 3) << 4];
		*p++ = '=';
		*p++ = '=';
	} else if (len - i == 2) {
		*p++ = alphabet[s[i] >> 2];
		*p++ = alphabet[(s[i] & 3) << 4 | s[i + 1] >> 4];
		*p++ = alphabet[(s[i + 1] & 15) << 2];
		*p++ = '=';
	}
	*p = '\0';
	return o;
}

/* ---- SHA-256 and HMAC ---- */

static void assert_hex(const uint8_t *d, const char *hex)
{
	char got[2 * AUTH_SHA256_LEN + 1];
	int i;

	for (i = 0; i < AUTH_SHA256_LEN; i++)
		sprintf(got + 2 * i, "%02x", d[i]);
	ck_assert_str_eq(got, hex);
}

START_TEST(sha256_vectors)
{
	static const char two_blocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	uint8_t d[AUTH_SHA256_LEN], key[131];
	char *million = malloc(1000000);

	auth_sha256("", 0, d);
	assert_hex(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	auth_sha256("abc", 3, d);
	assert_hex(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	auth_sha256(two_blocks, strlen(two_blocks), d);
	assert_hex(d, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	ck_assert_ptr_nonnull(million);
	memset(million, 'a', 1000000);
	auth_sha256(million, 1000000, d);
	assert_hex(d, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(million);

	/* RFC 4231 test cases 2 and 6 (a key longer than a block). */
	auth_hmac_sha256((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, d);
	assert_hex(d, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	memset(key, 0xaa, sizeof(key));
	auth_hmac_sha256(key, sizeof(key), "Test Using Larger Than Block-Size Key - Hash Key First",
			 54, d);
	assert_hex(d, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}
END_TEST

/* ---- loading ---- */

START_TEST(load_good)
{
	char text[2048];
	struct auth_db *db;
	struct errs e;

	make_tmpdir();
	snprintf(text, sizeof(text),
		 "# ferry users\n"
		 "\n"
		 "alice:%s\n"
		 "bob:%s\r\n"
		 "carol:%s   \n"
		 "dave smith:%s\n"
		 "erin:%s",
		 make_hash("$2y$", "a"), make_hash("$6$", "b"), make_hash("$5$", "c"),
		 make_hash("$y$", "d"), make_hash("$2b$", "e"));
	db = load_text(text, &e);
	ck_assert_msg(db != NULL && e.n == 0, "errors:%s", all_errs(&e));
	ck_assert_uint_eq(auth_db_count(db), 5);
	ck_assert_uint_eq(auth_db_count(NULL), 0);
	auth_db_free(db);
	remove_tmpdir();
}
END_TEST

/* One line in a file must be refused with exactly this message on line 2. */
static void refused(const char *line, const char *want)
{
	char text[1024];
	struct auth_db *db;
	struct errs e;

	snprintf(text, sizeof(text), "ok:%s\n%s\n", make_hash("$2y$", "x"), line);
	db = load_text(text, &e);
	ck_assert_msg(db == NULL, "accepted: %s", line);
	ck_assert_msg(e.n == 1 && e.line[0] == 2 && strcmp(e.msg[0], want) == 0,
		      "for '%s'\nexpected: 2: %s\ngot:%s", line, want, all_errs(&e));
}

#define HINT "; make entries with 'htpasswd -B' (bcrypt)"

START_TEST(load_refuses_weak_and_plain)
{
	make_tmpdir();
	refused("bob:secret", "user 'bob': plain-text passwords are refused" HINT);
	refused("bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",
		"user 'bob': SHA-1 ({SHA}) hashes are too weak" HINT);
	refused("bob:$apr1$7Lx5ZbB9$2ZlUQgjlm2E9KyzXOUh6p/",
		"user 'bob': Apache MD5 ($apr1$) hashes are too weak" HINT);
	refused("bob:$1$2jWUypxV$SHx6.OGYapYkiBminwPtT/",
		"user 'bob': MD5 crypt ($1$) hashes are too weak" HINT);
	refused("bob:abJnggxhB/yWI",
		"user 'bob': DES crypt hashes are too weak (or this is a plain-text password)"
		HINT);
	refused("bob:", "user 'bob': no password hash" HINT);
	refused("bob:$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		"user 'bob': unsupported hash type" HINT);
	refused("bob:$2y$05$short", "user 'bob': malformed bcrypt hash" HINT);
	refused("bob:$2y$99$CN0OYXMaTrC4WKupi/Dp3e5cXBy5Sy3lZf0HVrZi7NzPQ1RbdyIeq",
		"user 'bob': bcrypt cost out of range (04..31)" HINT);
	refused("bob:$6$salt$tooshort", "user 'bob': malformed SHA-512 crypt hash" HINT);
	refused("bob:$5$salt$tooshort", "user 'bob': malformed SHA-256 crypt hash" HINT);
	refused("bob:$6$saltsaltsaltsaltsalt$x", "user 'bob': malformed SHA-crypt salt" HINT);
	remove_tmpdir();
}
END_TEST

START_TEST(load_refuses_bad_lines)
{
	char dup[256], dupmsg[128];
	static char longname[300];

	make_tmpdir();
	refused("no colon here", "expected user:hash");
	refused(":$2y$05$CN0OYXMaTrC4WKupi/Dp3e5cXBy5Sy3lZf0HVrZi7NzPQ1RbdyIeq",
		"empty user name");
	refused(" bob:$2y$05$CN0OYXMaTrC4WKupi/Dp3e5cXBy5Sy3lZf0HVrZi7NzPQ1RbdyIeq",
		"user ' bob': name starts or ends with a blank");
	refused("b\tob:$2y$05$CN0OYXMaTrC4WKupi/Dp3e5cXBy5Sy3lZf0HVrZi7NzPQ1RbdyIeq",
		"control character in user name");
	memset(longname, 'u', 256);
	strcpy(longname + 256, ":x");
	refused(longname, "user name longer than 255 bytes");
	/* Apache's user:realm:hash (htdigest) is not an htpasswd line: the "hash" has a ':'. */
	refused("bob:realm:5d41402abc4b2a76b9719d911017c592",
		"user 'bob': plain-text passwords are refused" HINT);
	snprintf(dup, sizeof(dup), "ok:%s", make_hash("$6$", "y"));
	snprintf(dupmsg, sizeof(dupmsg), "user 'ok' is listed twice (also on line 1)");
	refused(dup, dupmsg);
	remove_tmpdir();
}
END_TEST

START_TEST(load_reports_every_line)
{
	char text[1024];
	struct auth_db *db;
	struct errs e;

	make_tmpdir();
	snprintf(text, sizeof(text), "a:plain\nb:%s\nc:{SHA}x\n#d:plain\ne:$apr1$x$y\n",
		 make_hash("$5$", "b"));
	db = load_text(text, &e);
	ck_assert_ptr_null(db);
	ck_assert_msg(e.n == 3, "errors:%s", all_errs(&e));
	ck_assert_int_eq(e.line[0], 1);
	ck_assert_int_eq(e.line[1], 3);
	ck_assert_int_eq(e.line[2], 5);

	/* Whole-file errors have line 0. */
	db = load_text("# nobody\n\n", &e);
	ck_assert_ptr_null(db);
	ck_assert_int_eq(e.n, 1);
	ck_assert_int_eq(e.line[0], 0);
	ck_assert_str_eq(e.msg[0], "no users (every request would be refused)");

	memset(&e, 0, sizeof(e));
	snprintf(text, sizeof(text), "%s/absent", tmpdir);
	ck_assert_ptr_null(auth_db_load(text, collect, &e));
	ck_assert_int_eq(e.n, 1);
	ck_assert_int_eq(e.line[0], 0);
	ck_assert_str_eq(e.msg[0], "cannot open: No such file or directory");

	memset(&e, 0, sizeof(e));
	ck_assert_ptr_null(auth_db_load("/dev/zero", collect, &e));
	ck_assert_int_eq(e.n, 1);
	ck_assert_int_eq(e.line[0], 0);
	ck_assert_str_eq(e.msg[0], "not a regular file");

	memset(&e, 0, sizeof(e));
	db = auth_db_load(write_file("x:y\0z\n", 6), collect, &e);
	ck_assert_ptr_null(db);
	ck_assert_int_eq(e.n, 1);
	ck_assert_str_eq(e.msg[0], "line contains a NUL byte");
	remove_tmpdir();
}
END_TEST

/* Errors never echo a hash (nor, so, anything derived from a password). */
START_TEST(load_errors_do_not_echo_hashes)
{
	char text[512];
	struct auth_db *db;
	struct errs e;
	int i;

	make_tmpdir();
	snprintf(text, sizeof(text), "a:S3cretPlain\nb:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n"
		 "c:$apr1$7Lx5ZbB9$2ZlUQgjlm2E9KyzXOUh6p/\n");
	db = load_text(text, &e);
	ck_assert_ptr_null(db);
	ck_assert_int_eq(e.n, 3);
	for (i = 0; i < e.n; i++) {
		ck_assert_ptr_null(strstr(e.msg[i], "S3cret"));
		ck_assert_ptr_null(strstr(e.msg[i], "5en6G6"));
		ck_assert_ptr_null(strstr(e.msg[i], "7Lx5ZbB9"));
	}
	remove_tmpdir();
}
END_TEST

/* ---- parsing Proxy-Authorization ---- */

static enum auth_status parse(const char *value, char *out, size_t *userlen)
{
	size_t outlen;
	const char *reason = NULL;
	enum auth_status st = auth_parse_basic(value, value ? strlen(value) : 0, out, &outlen,
					       userlen, &reason);

	if (st == AUTH_OK) {
		ck_assert_ptr_null(reason);
		ck_assert_uint_eq(outlen, strlen(out));
	} else {
		ck_assert_ptr_nonnull(reason);
	}
	return st;
}

static void parse_is(const char *value, enum auth_status want)
{
	char out[AUTH_CREDENTIALS_MAX + 1];
	size_t userlen;

	ck_assert_msg(parse(value, out, &userlen) == want, "'%s': expected %d", value ? value :
		      "(null)", want);
}

START_TEST(parse_basic)
{
	char out[AUTH_CREDENTIALS_MAX + 1], big[3000], creds[1100];
	size_t userlen;

	ck_assert_int_eq(parse("Basic dXNlcjpwYXNzd29yZA==", out, &userlen), AUTH_OK);
	ck_assert_str_eq(out, "user:password");
	ck_assert_uint_eq(userlen, 4);
	/* The scheme is case-insensitive; OWS around the value is not part of it. */
	ck_assert_int_eq(parse("bAsIc dXNlcjpwYXNzd29yZA==", out, &userlen), AUTH_OK);
	ck_assert_int_eq(parse(" \tBASIC dXNlcjpwYXNzd29yZA== \t", out, &userlen), AUTH_OK);
	/* A password may hold ':'; the user ends at the first one. */
	ck_assert_int_eq(parse(basic("alice:pa:ss:"), out, &userlen), AUTH_OK);
	ck_assert_str_eq(out, "alice:pa:ss:");
	ck_assert_uint_eq(userlen, 5);
	/* An empty password is a password. */
	ck_assert_int_eq(parse(basic("alice:"), out, &userlen), AUTH_OK);
	ck_assert_uint_eq(userlen, 5);
	/* Each padding length. */
	ck_assert_int_eq(parse(basic("a:b"), out, &userlen), AUTH_OK);
	ck_assert_int_eq(parse(basic("a:bc"), out, &userlen), AUTH_OK);
	ck_assert_int_eq(parse(basic("a:bcd"), out, &userlen), AUTH_OK);
	ck_assert_str_eq(out, "a:bcd");

	parse_is(NULL, AUTH_MISSING);
	parse_is("", AUTH_MISSING);
	parse_is("   ", AUTH_MISSING);
	parse_is("Digest username=\"a\"", AUTH_MISSING);
	parse_is("Bearer abc", AUTH_MISSING);
	parse_is("Basicx dXNlcjpwYXNzd29yZA==", AUTH_MISSING);

	parse_is("Basic", AUTH_MALFORMED);
	parse_is("Basic ", AUTH_MALFORMED);
	parse_is("Basic  dXNlcjpwYXNzd29yZA==", AUTH_OK);           /* 1*SP (RFC 9110 11.4) */
	parse_is("Basic\tdXNlcjpwYXNzd29yZA==", AUTH_MALFORMED);    /* HTAB */
	parse_is("Basic \tdXNlcjpwYXNzd29yZA==", AUTH_MALFORMED);   /* SP HTAB */
	parse_is("Basic dXNlcjpwYXNzd29yZA", AUTH_MALFORMED);       /* no padding */
	parse_is("Basic dXNlcjpwYXNzd29yZA=", AUTH_MALFORMED);      /* short padding */
	parse_is("Basic dXNlcjpwYXNzd29yZA===", AUTH_MALFORMED);
	parse_is("Basic dXNlcjpw=YXNzd29yZA=", AUTH_MALFORMED);     /* '=' inside */
	parse_is("Basic dXNl=jpwYXNzd29yZA==", AUTH_MALFORMED);
	parse_is("Basic dXNlcjpwYXNzd29yZB==", AUTH_MALFORMED);     /* unused bits set */
	parse_is("Basic YTpiYx==", AUTH_MALFORMED);                 /* "a:bc", bits set */
	parse_is("Basic dXNlcjpw YXNzd29yZA==", AUTH_MALFORMED);    /* SP inside */
	parse_is("Basic dXNlcjpwYXNzd29yZA==,", AUTH_MALFORMED);
	parse_is("Basic dXNlcjpwYXNz-29yZA==", AUTH_MALFORMED);     /* base64url */
	parse_is("Basic dXNlcjpwYXNz_29yZA==", AUTH_MALFORMED);
	parse_is("Basic dXNlcnBhc3N3b3Jk", AUTH_MALFORMED);         /* "userpassword" */
	parse_is(basic(":password"), AUTH_MALFORMED);              /* empty user */
	parse_is("Basic YQBiOmM=", AUTH_MALFORMED);                 /* "a\0b:c" */
	parse_is("Basic realm=\"x\"", AUTH_MALFORMED);

	/* At most AUTH_CREDENTIALS_MAX decoded bytes. */
	memset(creds, 'p', sizeof(creds));
	memcpy(creds, "u:", 2);
	creds[AUTH_CREDENTIALS_MAX] = '\0';
	ck_assert_int_eq(parse(basic(creds), out, &userlen), AUTH_OK);
	creds[AUTH_CREDENTIALS_MAX] = 'p';
	creds[AUTH_CREDENTIALS_MAX + 1] = '\0';
	parse_is(basic(creds), AUTH_MALFORMED);
	memset(big, 'A', sizeof(big));
	memcpy(big, "Basic ", 6);
	big[sizeof(big) - 1] = '\0';
	parse_is(big, AUTH_MALFORMED);
}
END_TEST

/* ---- the verifier ---- */

struct answer {
	int calls;
	struct auth_result r;
	struct auth_query **cancel_other; /* cancel this query from the callback */
	struct auth_query **self;        /* cleared when called, as a connection would */
};

static void on_answer(void *arg, const struct auth_result *r)
{
	struct answer *a = arg;

	a->calls++;
	a->r = *r;
	if (a->self)
		*a->self = NULL;
	if (a->cancel_other && *a->cancel_other) {
		auth_cancel(*a->cancel_other);
		*a->cancel_other = NULL;
	}
}

struct fixture {
	struct loop *loop;
	struct auth_verifier *v;
	struct auth_db *db;
};

static struct fixture fx;

static void fixture_up(void)
{
	char err[256], text[2048];
	struct errs e;

	make_tmpdir();
	fx.loop = loop_create(LOOP_BACKEND_AUTO, 1024, err, sizeof(err));
	ck_assert_msg(fx.loop != NULL, "%s", err);
	fx.v = auth_verifier_create(fx.loop, err, sizeof(err));
	ck_assert_msg(fx.v != NULL, "%s", err);
	snprintf(text, sizeof(text), "bcrypt:%s\nsha512:%s\nsha256:%s\nyes:%s\ncolon:%s\n",
		 make_hash("$2y$", "bcrypt pw"), make_hash("$6$", "sha512 pw"),
		 make_hash("$5$", "sha256 pw"), make_hash("$y$", "yescrypt pw"),
		 make_hash("$2b$", "a:b::c:"));
	fx.db = load_text(text, &e);
	ck_assert_msg(fx.db != NULL, "errors:%s", all_errs(&e));
}

static void fixture_down(void)
{
	auth_verifier_destroy(fx.v);
	auth_db_free(fx.db);
	loop_destroy(fx.loop);
	remove_tmpdir();
	memset(&fx, 0, sizeof(fx));
}

/* Run the loop until *calls reaches n (hang guard only). */
static void run_until(const int *calls, int n)
{
	struct timespec t0, t;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (*calls < n) {
		ck_assert_int_ge(loop_run_once(fx.loop, 100), 0);
		clock_gettime(CLOCK_MONOTONIC, &t);
		ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		ck_assert_msg(ms < HANG_GUARD_MS, "no answer from the verifier");
	}
}

/* Run the loop until the verifier has nothing in flight. */
static void run_until_idle(void)
{
	int guard = 0;

	while (auth_verifier_pending(fx.v) > 0) {
		ck_assert_int_ge(loop_run_once(fx.loop, 100), 0);
		ck_assert_msg(++guard < HANG_GUARD_MS / 100, "verifier never became idle");
	}
}

/* Start a check of value against the fixture's db; the immediate answer is dropped. */
static int start(const char *value, auth_cb *cb, void *arg, struct auth_query **q)
{
	struct auth_result now;

	return auth_check(fx.v, fx.db, value, strlen(value), cb, arg, q, &now);
}

/* A full check that must go through the thread; returns the result. */
static struct auth_result check_async(const char *value)
{
	struct answer a = { 0 };
	struct auth_query *q = NULL;
	struct auth_result now;
	int rc;

	memset(&now, 0xff, sizeof(now));
	rc = auth_check(fx.v, fx.db, value, strlen(value), on_answer, &a, &q, &now);
	ck_assert_msg(rc == FERRY_AGAIN, "'%s' answered at once (%d)", value, (int)now.status);
	ck_assert_ptr_nonnull(q);
	/* The answer comes only from the loop. */
	ck_assert_int_eq(a.calls, 0);
	run_until(&a.calls, 1);
	ck_assert_int_eq(a.calls, 1);
	return a.r;
}

/* A check that must be answered now. */
static struct auth_result check_now(const char *value)
{
	struct answer a = { 0 };
	struct auth_query *q = (struct auth_query *)&a;
	struct auth_result now;
	int rc;

	rc = auth_check(fx.v, fx.db, value, value ? strlen(value) : 0, on_answer, &a, &q, &now);
	ck_assert_msg(rc == FERRY_OK, "'%s' not answered at once", value ? value : "(null)");
	ck_assert_ptr_null(q);
	ck_assert_int_eq(a.calls, 0);
	return now;
}

START_TEST(verify_each_hash_kind)
{
	static const char *const creds[][2] = {
		{ "bcrypt:bcrypt pw", "bcrypt" },
		{ "sha512:sha512 pw", "sha512" },
		{ "sha256:sha256 pw", "sha256" },
		{ "yes:yescrypt pw", "yes" },
	};
	struct auth_result r;
	size_t i;

	for (i = 0; i < sizeof(creds) / sizeof(creds[0]); i++) {
		r = check_async(basic(creds[i][0]));
		ck_assert_msg(r.status == AUTH_OK, "%s: status %d (%s)", creds[i][0], r.status,
			      r.reason ? r.reason : "");
		ck_assert_str_eq(r.user, creds[i][1]);
		/* The second time, from the cache: answered at once. */
		r = check_now(basic(creds[i][0]));
		ck_assert_int_eq(r.status, AUTH_OK);
		ck_assert_str_eq(r.user, creds[i][1]);
	}
}
END_TEST

START_TEST(wrong_password_and_unknown_user)
{
	struct auth_result r;

	r = check_async(basic("bcrypt:bcrypt PW"));
	ck_assert_int_eq(r.status, AUTH_BAD_CREDENTIALS);
	ck_assert_ptr_null(r.user);
	ck_assert_str_eq(r.reason, "wrong password");
	/* Remembered for a while: answered at once, still refused. */
	r = check_now(basic("bcrypt:bcrypt PW"));
	ck_assert_int_eq(r.status, AUTH_BAD_CREDENTIALS);
	ck_assert_str_eq(r.reason, "wrong password");

	r = check_async(basic("sha512:"));
	ck_assert_int_eq(r.status, AUTH_BAD_CREDENTIALS);
	/* A prefix of the password is not the password. */
	r = check_async(basic("sha256:sha256 p"));
	ck_assert_int_eq(r.status, AUTH_BAD_CREDENTIALS);
	r = check_async(basic("sha256:sha256 pw "));
	ck_assert_int_eq(r.status, AUTH_BAD_CREDENTIALS);

	/* Unknown users take the same road (through the thread, against a decoy hash). */
	r = check_async(basic("mallory:bcrypt pw"));
	ck_assert_int_eq(r.status, AUTH_BAD_CREDENTIALS);
	ck_assert_ptr_null(r.user);
	ck_assert_str_eq(r.reason, "unknown user");
	r = check_async(basic("BCRYPT:bcrypt pw")); /* user names are case-sensitive */
	ck_assert_int_eq(r.status, AUTH_BAD_CREDENTIALS);
	r = check_async(basic("bcryp:bcrypt pw"));
	ck_assert_int_eq(r.status, AUTH_BAD_CREDENTIALS);
}
END_TEST

START_TEST(password_with_colons)
{
	struct auth_result r;

	r = check_async(basic("colon:a:b::c:"));
	ck_assert_int_eq(r.status, AUTH_OK);
	ck_assert_str_eq(r.user, "colon");
	r = check_async(basic("colon:a:b::c"));
	ck_assert_int_eq(r.status, AUTH_BAD_CREDENTIALS);
	r = check_async(basic("colon:a"));
	ck_assert_int_eq(r.status, AUTH_BAD_CREDENTIALS);
}
END_TEST

START_TEST(missing_and_malformed_answered_now)
{
	struct auth_result r;

	r = check_now(NULL);
	ck_assert_int_eq(r.status, AUTH_MISSING);
	r = check_now("");
	ck_assert_int_eq(r.status, AUTH_MISSING);
	r = check_now("Negotiate abc");
	ck_assert_int_eq(r.status, AUTH_MISSING);
	r = check_now("Basic !!!!");
	ck_assert_int_eq(r.status, AUTH_MALFORMED);
	ck_assert_str_eq(r.reason, "bad base64 in credentials");
	r = check_now("Basic YWJj"); /* "abc": no ':' */
	ck_assert_int_eq(r.status, AUTH_MALFORMED);
	ck_assert_str_eq(r.reason, "no ':' between user and password");
	r = check_now("Basic\tYTpi"); /* HTAB */
	ck_assert_int_eq(r.status, AUTH_MALFORMED);
	ck_assert_str_eq(r.reason, "Basic must be followed by a space");
	ck_assert_uint_eq(auth_verifier_pending(fx.v), 0);
}
END_TEST

START_TEST(cache_is_keyed_by_the_whole_value_and_db)
{
	char text[512];
	struct auth_result r;
	struct auth_db *other;
	struct auth_query *q;
	struct answer a = { 0 };
	struct errs e;
	const char *v = basic("sha256:sha256 pw");

	r = check_async(v);
	ck_assert_int_eq(r.status, AUTH_OK);
	r = check_now(v);
	ck_assert_int_eq(r.status, AUTH_OK);
	/* Another spelling of the scheme is another value: checked afresh. */
	snprintf(text, sizeof(text), "basic%s", v + 5);
	r = check_async(text);
	ck_assert_int_eq(r.status, AUTH_OK);
	/* Surrounding OWS is not part of the value. */
	snprintf(text, sizeof(text), "  %s\t", v);
	r = check_now(text);
	ck_assert_int_eq(r.status, AUTH_OK);

	/* Another db (a reloaded file) does not share the cache. */
	snprintf(text, sizeof(text), "sha256:%s\n", make_hash("$5$", "new pw"));
	other = load_text(text, &e);
	ck_assert_ptr_nonnull(other);
	ck_assert_int_eq(auth_check(fx.v, other, v, strlen(v), on_answer, &a, &q, &r),
			 FERRY_AGAIN);
	run_until(&a.calls, 1);
	ck_assert_int_eq(a.r.status, AUTH_BAD_CREDENTIALS);
	auth_db_free(other);
}
END_TEST

START_TEST(cache_expires)
{
	struct auth_result r;
	const char *v = basic("sha512:sha512 pw");
	const char *w = basic("sha512:wrong");

	auth_verifier_set_ttl(fx.v, 50, 50);
	r = check_async(v);
	ck_assert_int_eq(r.status, AUTH_OK);
	r = check_async(w);
	ck_assert_int_eq(r.status, AUTH_BAD_CREDENTIALS);
	loop_update_time(fx.loop);
	usleep(120 * 1000);
	loop_update_time(fx.loop);
	r = check_async(v);
	ck_assert_int_eq(r.status, AUTH_OK);
	r = check_async(w);
	ck_assert_int_eq(r.status, AUTH_BAD_CREDENTIALS);

	/* A TTL of 0 remembers nothing. */
	auth_verifier_set_ttl(fx.v, 0, 0);
	v = basic("sha256:sha256 pw");
	r = check_async(v);
	ck_assert_int_eq(r.status, AUTH_OK);
	r = check_async(v);
	ck_assert_int_eq(r.status, AUTH_OK);
}
END_TEST

START_TEST(concurrent_checks_share_one_computation)
{
	struct answer a = { 0 }, b = { 0 }, c = { 0 };
	struct auth_query *qa, *qb, *qc;
	const char *v = basic("bcrypt:bcrypt pw");

	ck_assert_int_eq(start(v, on_answer, &a, &qa), FERRY_AGAIN);
	ck_assert_int_eq(start(v, on_answer, &b, &qb), FERRY_AGAIN);
	ck_assert_int_eq(start(v, on_answer, &c, &qc), FERRY_AGAIN);
	ck_assert_ptr_ne(qa, qb);
	ck_assert_uint_eq(auth_verifier_pending(fx.v), 1);
	/* One of them leaves (its connection closed): the others still get their answer. */
	auth_cancel(qb);
	run_until(&c.calls, 1);
	run_until(&a.calls, 1);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 0);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(a.r.status, AUTH_OK);
	ck_assert_int_eq(c.r.status, AUTH_OK);
	ck_assert_str_eq(c.r.user, "bcrypt");
	ck_assert_uint_eq(auth_verifier_pending(fx.v), 0);
}
END_TEST

START_TEST(cancel)
{
	struct answer a = { 0 };
	struct auth_query *q;
	struct auth_result now;
	const char *v = basic("yes:yescrypt pw");
	int i;

	ck_assert_int_eq(start(v, on_answer, &a, &q), FERRY_AGAIN);
	auth_cancel(q);
	run_until_idle();
	for (i = 0; i < 3; i++)
		loop_run_once(fx.loop, 10);
	ck_assert_int_eq(a.calls, 0);
	/* The work was not wasted: the next check is answered from the cache. */
	now = check_now(v);
	ck_assert_int_eq(now.status, AUTH_OK);
	ck_assert_str_eq(now.user, "yes");
	auth_cancel(NULL);
}
END_TEST

/* A callback that cancels another query waiting for the same answer (its connection went
 * away because of the first), and one that starts a new check from inside. */
START_TEST(cancel_from_a_callback)
{
	struct answer a = { 0 }, b = { 0 };
	struct auth_query *qa, *qb;
	const char *v = basic("sha256:sha256 pw");

	ck_assert_int_eq(start(v, on_answer, &a, &qa), FERRY_AGAIN);
	ck_assert_int_eq(start(v, on_answer, &b, &qb), FERRY_AGAIN);
	/* Whichever runs first cancels the other. */
	a.self = &qa;
	a.cancel_other = &qb;
	b.self = &qb;
	b.cancel_other = &qa;
	run_until_idle();
	ck_assert_int_eq(a.calls + b.calls, 1);
	ck_assert_ptr_null(qa);
	ck_assert_ptr_null(qb);
}
END_TEST

static void check_again(void *arg, const struct auth_result *r)
{
	struct answer *a = arg;
	struct auth_query *q;
	struct auth_result now;
	const char *v = basic("sha512:sha512 pw");

	a->calls++;
	a->r = *r;
	/* The answer is in the cache before the callbacks run. */
	ck_assert_int_eq(auth_check(fx.v, fx.db, v, strlen(v), on_answer, NULL, &q, &now),
			 FERRY_OK);
	ck_assert_int_eq(now.status, AUTH_OK);
}

START_TEST(check_from_a_callback)
{
	struct answer a = { 0 };
	struct auth_query *q;
	const char *v = basic("sha512:sha512 pw");

	ck_assert_int_eq(start(v, check_again, &a, &q), FERRY_AGAIN);
	run_until(&a.calls, 1);
	ck_assert_int_eq(a.r.status, AUTH_OK);
}
END_TEST

START_TEST(queue_is_bounded)
{
	static struct answer answers[300];
	struct auth_query *q;
	struct auth_result now;
	char creds[64];
	int i, again = 0, busy = 0, rc, total = 0;

	memset(answers, 0, sizeof(answers));
	/* Distinct wrong passwords (the attacker's pattern): the loop does not run in between,
	 * so no answer is taken back and the queue only grows. */
	for (i = 0; i < 300; i++) {
		snprintf(creds, sizeof(creds), "bcrypt:guess %d", i);
		rc = auth_check(fx.v, fx.db, basic(creds), strlen(basic(creds)), on_answer,
				&answers[i], &q, &now);
		if (rc == FERRY_AGAIN) {
			again++;
		} else {
			ck_assert_int_eq(rc, FERRY_OK);
			ck_assert_int_eq(now.status, AUTH_BUSY);
			busy++;
		}
	}
	ck_assert_int_eq(again, 256);
	ck_assert_int_eq(busy, 44);
	/* A credential already being checked joins its computation, even now. */
	ck_assert_int_eq(auth_check(fx.v, fx.db, basic("bcrypt:guess 7"),
				    strlen(basic("bcrypt:guess 7")), on_answer, &answers[299], &q,
				    &now), FERRY_AGAIN);
	ck_assert_uint_eq(auth_verifier_pending(fx.v), 256);
	run_until_idle();
	for (i = 0; i < 300; i++)
		total += answers[i].calls;
	ck_assert_int_eq(total, 257);
	for (i = 0; i < 256; i++)
		ck_assert_int_eq(answers[i].r.status, AUTH_BAD_CREDENTIALS);
	ck_assert_int_eq(answers[299].r.status, AUTH_BAD_CREDENTIALS);
	/* Room again once answered. */
	now = check_async(basic("bcrypt:bcrypt pw"));
	ck_assert_int_eq(now.status, AUTH_OK);
}
END_TEST

/* Destroying a verifier with checks in flight frees them without calling anyone. */
START_TEST(destroy_with_checks_in_flight)
{
	struct answer a = { 0 };
	struct auth_query *q;
	struct auth_result now;
	char creds[64];
	int i;

	for (i = 0; i < 10; i++) {
		snprintf(creds, sizeof(creds), "bcrypt:try %d", i);
		ck_assert_int_eq(auth_check(fx.v, fx.db, basic(creds), strlen(basic(creds)),
					    on_answer, &a, &q, &now), FERRY_AGAIN);
	}
	auth_verifier_destroy(fx.v);
	fx.v = NULL;
	for (i = 0; i < 3; i++)
		loop_run_once(fx.loop, 10);
	ck_assert_int_eq(a.calls, 0);
}
END_TEST

static Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("load");

	tcase_add_test(tc, sha256_vectors);
	tcase_add_test(tc, load_good);
	tcase_add_test(tc, load_refuses_weak_and_plain);
	tcase_add_test(tc, load_refuses_bad_lines);
	tcase_add_test(tc, load_reports_every_line);
	tcase_add_test(tc, load_errors_do_not_echo_hashes);
	tcase_add_test(tc, parse_basic);
	suite_add_tcase(s, tc);

	tc = tcase_create("verifier");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, fixture_up, fixture_down);
	tcase_add_test(tc, verify_each_hash_kind);
	tcase_add_test(tc, wrong_password_and_unknown_user);
	tcase_add_test(tc, password_with_colons);
	tcase_add_test(tc, missing_and_malformed_answered_now);
	tcase_add_test(tc, cache_is_keyed_by_the_whole_value_and_db);
	tcase_add_test(tc, cache_expires);
	tcase_add_test(tc, concurrent_checks_share_one_computation);
	tcase_add_test(tc, cancel);
	tcase_add_test(tc, cancel_from_a_callback);
	tcase_add_test(tc, check_from_a_callback);
	tcase_add_test(tc, queue_is_bounded);
	tcase_add_test(tc, destroy_with_checks_in_flight);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(auth_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
