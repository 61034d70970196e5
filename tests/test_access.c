/* test_access.c - access control end to end: destinations blocked on the resolved address
 * (a name resolving to loopback, an IPv4-mapped IPv6 literal), the domain filter naming its
 * rule, and proxy authentication (missing, wrong, malformed, a password with a colon, slow
 * bcrypt hashes, CONNECT, credentials never forwarded). Both multiplexers. */
#include <check.h>
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "status.h"

static const char *const muxes[] = { "poll", "epoll" };
static struct harness_origin origin;
static struct harness_ferry ferry;
static struct harness_conf conf;
static char dir[64];

static void teardown(void)
{
	harness_cleanup();
	unsetenv("CARES_HOSTS");
	if (dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
		dir[0] = '\0';
	}
}

static void begin(int mux)
{
	ck_assert_int_eq(harness_origin_start(&origin), FERRY_OK);
	harness_conf_base(&conf, muxes[mux], &origin);
	strcpy(dir, "/tmp/ferry-access-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void go(void)
{
	ck_assert_int_eq(harness_ferry_start(&ferry, &conf), FERRY_OK);
}

static void end(void)
{
	ck_assert_int_eq(harness_ferry_stop(&ferry), 0);
	harness_origin_stop(&origin);
}

static char *path_in_dir(const char *name)
{
	static char p[4][128];
	static int k;
	char *o = p[k++ % 4];
	snprintf(o, sizeof(p[0]), "%s/%s", dir, name);
	return o;
}

/* Send req (with @P replaced by the origin's port) and read one response. */
static void ask(const char *fmt_req, struct harness_resp *r)
{
	char req[1024];
	char *at = strstr(fmt_req, "@P");
	if (at)
		snprintf(req, sizeof(req), "%.*s%d%s", (int)(at - fmt_req), fmt_req, origin.port, at + 2);
	else
		snprintf(req, sizeof(req), "%s", fmt_req);
	ck_assert_msg(harness_request(ferry.port, req, r, 0) == FERRY_OK, "no response to %s", req);
}

/* ---- destinations ---- */

/* With the default block_destinations, a name that resolves to 127.0.0.1 is refused on the
 * resolved address, and so are loopback literals, IPv4-mapped included. */
START_TEST(loopback_destinations_blocked_by_default)
{
	begin(_i);
	harness_conf_del(&conf, "access", "block_destinations");
	char hosts[128];
	snprintf(hosts, sizeof(hosts), "%s", path_in_dir("hosts"));
	ck_assert_int_eq(harness_write_file(hosts, "127.0.0.1 sneaky.test\n"), FERRY_OK);
	ck_assert_int_eq(setenv("CARES_HOSTS", hosts, 1), 0);
	go();
	struct harness_resp r;
	const char *targets[] = { "sneaky.test", "127.0.0.1", "[::ffff:127.0.0.1]", "[::1]", "127.0.0.2" };
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		char req[256];
		snprintf(req, sizeof(req), "GET http://%s:@P/conn HTTP/1.1\r\nHost: x\r\n\r\n", targets[i]);
		ask(req, &r);
		ck_assert_msg(r.status == 403, "%s: status %d", targets[i], r.status);
		ck_assert_ptr_nonnull(strstr(r.body, "block"));
		harness_resp_free(&r);
	}
	/* CONNECT too */
	char req[256];
	snprintf(req, sizeof(req), "CONNECT sneaky.test:%d HTTP/1.1\r\nHost: x\r\n\r\n", origin.echo_port);
	ck_assert_int_eq(harness_request(ferry.port, req, &r, HARNESS_NOBODY), FERRY_OK);
	ck_assert_int_eq(r.status, 403);
	harness_resp_free(&r);
	end();
}
END_TEST

/* allow_domains / deny_domains and a domains file: 403 names the rule and where it is. */
START_TEST(domain_filter_names_its_rule)
{
	begin(_i);
	char hosts[128], dfile[128];
	snprintf(hosts, sizeof(hosts), "%s", path_in_dir("hosts"));
	snprintf(dfile, sizeof(dfile), "%s", path_in_dir("domains"));
	ck_assert_int_eq(harness_write_file(hosts, "127.0.0.1 ok.test www.bad.test fromfile.test other.test\n"),
			 FERRY_OK);
	ck_assert_int_eq(harness_write_file(dfile, "# deny list\ndeny fromfile.test\n"), FERRY_OK);
	ck_assert_int_eq(setenv("CARES_HOSTS", hosts, 1), 0);
	harness_conf_set(&conf, "access", "deny_domains", ".bad.test");
	harness_conf_set(&conf, "access", "domains_file", dfile);
	go();
	struct harness_resp r;
	ask("GET http://ok.test:@P/conn HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	ask("GET http://www.bad.test:@P/conn HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	ck_assert_int_eq(r.status, 403);
	ck_assert_msg(strstr(r.body, ".bad.test") && strstr(r.body, "line"), "body: %s", r.body);
	harness_resp_free(&r);
	ask("GET http://FromFile.test.:@P/conn HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	ck_assert_int_eq(r.status, 403);
	ck_assert_msg(strstr(r.body, dfile) && strstr(r.body, "line 2"), "body: %s", r.body);
	harness_resp_free(&r);
	harness_ferry_stop(&ferry);

	/* an allow list refuses everything else */
	harness_conf_del(&conf, "access", "deny_domains");
	harness_conf_del(&conf, "access", "domains_file");
	harness_conf_set(&conf, "access", "allow_domains", "ok.test");
	go();
	ask("GET http://ok.test:@P/conn HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	ask("GET http://other.test:@P/conn HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	ck_assert_int_eq(r.status, 403);
	ck_assert_ptr_nonnull(strstr(r.body, "allow_domains"));
	harness_resp_free(&r);
	end();
}
END_TEST

/* ---- authentication ---- */

static void hash_password(const char *prefix, unsigned long rounds, const char *pw, char *out, size_t cap)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	ck_assert_ptr_nonnull(crypt_gensalt_rn(prefix, rounds, NULL, 0, salt, sizeof(salt)));
	struct crypt_data cd;
	memset(&cd, 0, sizeof(cd));
	char *h = crypt_r(pw, salt, &cd);
	ck_assert_ptr_nonnull(h);
	ck_assert(h[0] == '$');
	snprintf(out, cap, "%s", h);
}

static const char *b64(const char *in)
{
	static char out[4][256];
	static int k;
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *o = out[k++ % 4];
	size_t n = strlen(in), j = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)(unsigned char)in[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)(unsigned char)in[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)in[i + 2];
		o[j++] = tbl[(v >> 18) & 63];
		o[j++] = tbl[(v >> 12) & 63];
		o[j++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		o[j++] = i + 2 < n ? tbl[v & 63] : '=';
	}
	o[j] = '\0';
	return o;
}

static void auth_setup(int mux)
{
	begin(mux);
	char h1[256], h2[256], text[700];
	hash_password("$6$", 0, "s3cret", h1, sizeof(h1));
	hash_password("$2b$", 8, "a:b:c", h2, sizeof(h2)); /* bcrypt: slow, checked off the loop */
	snprintf(text, sizeof(text), "alice:%s\nbob:%s\n", h1, h2);
	char *pw = path_in_dir("htpasswd");
	ck_assert_int_eq(harness_write_file(pw, text), FERRY_OK);
	harness_conf_set(&conf, "auth", "htpasswd", pw);
	harness_conf_set(&conf, "auth", "realm", "ferry test");
	go();
}

static void expect_407(struct harness_resp *r)
{
	ck_assert_int_eq(r->status, 407);
	const char *pa = harness_resp_header(r, "Proxy-Authenticate");
	ck_assert_ptr_nonnull(pa);
	ck_assert_str_eq(pa, "Basic realm=\"ferry test\"");
	harness_resp_free(r);
}

START_TEST(auth_required_and_checked)
{
	auth_setup(_i);
	struct harness_resp r;
	char req[512];
	/* missing */
	ask("GET http://127.0.0.1:@P/conn HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	expect_407(&r);
	/* wrong password */
	snprintf(req, sizeof(req), "GET http://127.0.0.1:@P/conn HTTP/1.1\r\nHost: x\r\n"
		 "Proxy-Authorization: Basic %s\r\n\r\n", b64("alice:wrong"));
	ask(req, &r);
	expect_407(&r);
	/* unknown user */
	snprintf(req, sizeof(req), "GET http://127.0.0.1:@P/conn HTTP/1.1\r\nHost: x\r\n"
		 "Proxy-Authorization: Basic %s\r\n\r\n", b64("mallory:s3cret"));
	ask(req, &r);
	expect_407(&r);
	/* malformed base64 */
	ask("GET http://127.0.0.1:@P/conn HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic a$b=c\r\n\r\n", &r);
	expect_407(&r);
	/* right, and never forwarded to the origin */
	snprintf(req, sizeof(req), "GET http://127.0.0.1:@P/headers HTTP/1.1\r\nHost: x\r\n"
		 "Proxy-Authorization: Basic %s\r\n\r\n", b64("alice:s3cret"));
	ask(req, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_null(strcasestr(r.body, "Proxy-Authorization"));
	harness_resp_free(&r);
	/* a password with colons, bcrypt-hashed (the first check runs off the loop; the second
	 * is answered from the cache) */
	for (int i = 0; i < 2; i++) {
		snprintf(req, sizeof(req), "GET http://127.0.0.1:@P/conn HTTP/1.1\r\nHost: x\r\n"
			 "Proxy-Authorization: basic %s\r\n\r\n", b64("bob:a:b:c"));
		ask(req, &r);
		ck_assert_msg(r.status == 200, "bob, try %d: %d", i, r.status);
		harness_resp_free(&r);
	}
	/* CONNECT needs it too */
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", origin.echo_port);
	ck_assert_int_eq(harness_request(ferry.port, req, &r, HARNESS_NOBODY), FERRY_OK);
	expect_407(&r);
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic %s\r\n\r\n",
		 origin.echo_port, b64("alice:s3cret"));
	ck_assert_int_eq(harness_request(ferry.port, req, &r, HARNESS_NOBODY), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	end();
}
END_TEST

/* On a keep-alive connection every request is checked, and a slow check does not hold up
 * the requests of other clients. */
START_TEST(auth_per_request_on_keepalive)
{
	auth_setup(_i);
	struct harness_conn c;
	ck_assert_int_eq(harness_connect(&c, ferry.port), FERRY_OK);
	char req[512];
	struct harness_resp r;
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/conn HTTP/1.1\r\nHost: x\r\n"
		 "Proxy-Authorization: Basic %s\r\n\r\n", origin.port, b64("alice:s3cret"));
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	ck_assert_int_eq(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/conn HTTP/1.1\r\nHost: x\r\n\r\n", origin.port);
	ck_assert_int_eq(harness_send_str(&c, req), FERRY_OK);
	ck_assert_int_eq(harness_read_response(&c, &r, 0, HARNESS_TIMEOUT_MS), FERRY_OK);
	expect_407(&r);
	harness_close(&c);
	end();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("access");
	TCase *tc = tcase_create("access");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_loop_test(tc, loopback_destinations_blocked_by_default, 0, 2);
	tcase_add_loop_test(tc, domain_filter_names_its_rule, 0, 2);
	tcase_add_loop_test(tc, auth_required_and_checked, 0, 2);
	tcase_add_loop_test(tc, auth_per_request_on_keepalive, 0, 2);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
