/* test_domains.c - the destination domain filter: pattern forms, matching, deny over allow,
 * the allow list's default, where each rule came from, domains files, and many rules. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "domains.h"
#include "status.h"

static void add_ok(struct domain_rules *r, int allow, const char *pattern, const char *source,
		   int line)
{
	char err[256] = "";

	ck_assert_msg(domains_add(r, allow, pattern, source, line, err, sizeof(err)) == FERRY_OK,
		      "'%s' refused: %s", pattern, err);
}

static void add_bad(const char *pattern, const char *want)
{
	struct domain_rules r = { 0 };
	char err[256] = "";

	ck_assert_msg(domains_add(&r, 0, pattern, "t", 1, err, sizeof(err)) == FERRY_ERR,
		      "'%s' accepted", pattern);
	ck_assert_msg(strstr(err, want) != NULL, "'%s': error '%s' does not say '%s'", pattern,
		      err, want);
	ck_assert_uint_eq(r.n, 0);
	domains_free(&r);
}

/* The rule deciding host, checking *allowed against want_allowed. */
static const struct domain_rule *check(const struct domain_rules *r, const char *host,
				       int want_allowed)
{
	int allowed = -1;
	const struct domain_rule *rule = domains_check(r, host, strlen(host), &allowed);

	ck_assert_msg(allowed == want_allowed, "%s: allowed %d, expected %d", host, allowed,
		      want_allowed);
	return rule;
}

/* host must be decided by the rule with this pattern. */
static void decided_by(const struct domain_rules *r, const char *host, int want_allowed,
		       const char *pattern)
{
	const struct domain_rule *rule = check(r, host, want_allowed);

	ck_assert_msg(rule != NULL, "%s: no rule decided, expected '%s'", host, pattern);
	ck_assert_msg(strcmp(rule->pattern, pattern) == 0, "%s: decided by '%s', expected '%s'",
		      host, rule->pattern, pattern);
	ck_assert_int_eq(rule->allow, want_allowed);
}

static void undecided(const struct domain_rules *r, const char *host, int want_allowed)
{
	const struct domain_rule *rule = check(r, host, want_allowed);

	ck_assert_msg(rule == NULL, "%s: decided by '%s', expected no rule", host,
		      rule ? rule->pattern : "");
}

START_TEST(no_rules_allow_everything)
{
	struct domain_rules r = { 0 };

	ck_assert_int_eq(domains_active(&r), 0);
	undecided(&r, "example.com", 1);
	undecided(&r, "192.0.2.1", 1);
	undecided(&r, "", 1);
	domains_free(&r);
}
END_TEST

START_TEST(exact)
{
	struct domain_rules r = { 0 };

	add_ok(&r, 0, "example.com", "t", 1);
	ck_assert_int_eq(domains_active(&r), 1);
	decided_by(&r, "example.com", 0, "example.com");
	undecided(&r, "www.example.com", 1);
	undecided(&r, "notexample.com", 1);
	undecided(&r, "example.com.evil.org", 1);
	undecided(&r, "example.co", 1);
	undecided(&r, "com", 1);
	domains_free(&r);
}
END_TEST

START_TEST(suffix_matches_domain_and_subdomains)
{
	struct domain_rules r = { 0 };

	add_ok(&r, 0, ".example.com", "t", 1);
	/* Squid's dstdomain: the bare domain matches too. */
	decided_by(&r, "example.com", 0, ".example.com");
	decided_by(&r, "www.example.com", 0, ".example.com");
	decided_by(&r, "a.b.c.example.com", 0, ".example.com");
	undecided(&r, "notexample.com", 1);
	undecided(&r, "wwwexample.com", 1);
	undecided(&r, "example.com.evil.org", 1);
	undecided(&r, "example.org", 1);
	undecided(&r, "com", 1);
	domains_free(&r);
}
END_TEST

START_TEST(case_and_trailing_dot)
{
	struct domain_rules r = { 0 };

	add_ok(&r, 0, "Example.COM.", "t", 1);
	add_ok(&r, 0, ".Corp.Example", "t", 2);
	ck_assert_str_eq(r.v[0].pattern, "example.com");
	ck_assert_str_eq(r.v[1].pattern, ".corp.example");
	decided_by(&r, "EXAMPLE.com", 0, "example.com");
	decided_by(&r, "example.com.", 0, "example.com");
	decided_by(&r, "eXample.Com.", 0, "example.com");
	decided_by(&r, "WWW.CORP.EXAMPLE.", 0, ".corp.example");
	/* More trailing dots are no different name: they must not slip past a deny. */
	decided_by(&r, "example.com..", 0, "example.com");
	/* %-escapes (allowed in a reg-name) are decoded before matching. */
	decided_by(&r, "ex%61mple.com", 0, "example.com");
	decided_by(&r, "www%2Ecorp.example", 0, ".corp.example");
	undecided(&r, "example.com%", 1);
	domains_free(&r);
}
END_TEST

START_TEST(ip_literals_never_match)
{
	struct domain_rules r = { 0 };

	add_bad("192.0.2.1", "is an IP address");
	add_bad(".0.2.1", "is an IP address");
	add_bad("10.1", "is an IP address");
	add_bad("0x7f.1", "is an IP address");
	add_bad("::1", "is an IP address");
	add_bad("[::1]", "is an IP address");
	add_bad("2001:db8::1", "is an IP address");

	/* A numeric label inside a name is fine, only the last one makes an address. */
	add_ok(&r, 1, ".1.example", "t", 1);
	add_ok(&r, 0, ".com", "t", 2);
	decided_by(&r, "2.1.example", 1, ".1.example");
	/* With an allow list, an address matches no allow rule: refused by default. */
	undecided(&r, "192.0.2.1", 0);
	undecided(&r, "127.1", 0);
	undecided(&r, "2130706433", 0);
	undecided(&r, "0x7f000001", 0);
	undecided(&r, "0x7f.0.0.1", 0);
	undecided(&r, "::1", 0);
	undecided(&r, "::ffff:192.0.2.1", 0);
	undecided(&r, "1.2.3.4.", 0);
	domains_free(&r);

	/* Without one, deny rules do not match addresses: block_destinations is for those. */
	memset(&r, 0, sizeof(r));
	add_ok(&r, 0, ".com", "t", 1);
	undecided(&r, "192.0.2.1", 1);
	undecided(&r, "::1", 1);
	decided_by(&r, "a.com", 0, ".com");
	domains_free(&r);
}
END_TEST

START_TEST(deny_wins)
{
	struct domain_rules r = { 0 };

	add_ok(&r, 1, ".example.com", "t", 1);
	add_ok(&r, 0, "bad.example.com", "t", 2);
	add_ok(&r, 1, "www.example.org", "t", 3);
	add_ok(&r, 0, ".example.org", "t", 4);
	decided_by(&r, "www.example.com", 1, ".example.com");
	decided_by(&r, "example.com", 1, ".example.com");
	decided_by(&r, "bad.example.com", 0, "bad.example.com");
	decided_by(&r, "x.bad.example.com", 1, ".example.com");
	/* The more specific allow does not beat a deny. */
	decided_by(&r, "www.example.org", 0, ".example.org");
	/* The same pattern in both lists: deny. */
	add_ok(&r, 1, "both.test", "t", 5);
	add_ok(&r, 0, "both.test", "t", 6);
	decided_by(&r, "both.test", 0, "both.test");
	domains_free(&r);
}
END_TEST

START_TEST(allow_list_refuses_the_rest)
{
	struct domain_rules r = { 0 };

	add_ok(&r, 1, "a.example", "t", 1);
	add_ok(&r, 1, ".b.example", "t", 2);
	decided_by(&r, "a.example", 1, "a.example");
	decided_by(&r, "x.b.example", 1, ".b.example");
	undecided(&r, "x.a.example", 0);
	undecided(&r, "c.example", 0);
	undecided(&r, "example", 0);
	undecided(&r, "", 0);
	undecided(&r, ".", 0);
	domains_free(&r);
}
END_TEST

START_TEST(most_specific_rule_is_named)
{
	struct domain_rules r = { 0 };

	add_ok(&r, 0, ".com", "t", 1);
	add_ok(&r, 0, ".example.com", "t", 2);
	add_ok(&r, 0, "www.example.com", "t", 3);
	decided_by(&r, "www.example.com", 0, "www.example.com");
	decided_by(&r, "a.www.example.com", 0, ".example.com");
	decided_by(&r, "example.com", 0, ".example.com");
	decided_by(&r, "other.com", 0, ".com");
	domains_free(&r);
}
END_TEST

START_TEST(pattern_errors)
{
	char long_label[80], long_name[300];
	size_t i;

	add_bad("*.example.com", "no wildcards");
	add_bad("", "not a domain name");
	add_bad(".", "not a domain name");
	add_bad("..", "not a domain name");
	add_bad("a..example", "empty label");
	add_bad("..example", "empty label");
	add_bad("exa mple.com", "only letters, digits");
	add_bad("exa%6dple.com", "only letters, digits");
	add_bad("ex/ample.com", "only letters, digits");
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".example");
	add_bad(long_label, "label is longer than 63");
	for (i = 0; i + 10 < 270; i += 10)
		memcpy(long_name + i, "abcdefghi.", 10);
	strcpy(long_name + i, "com");
	add_bad(long_name, "longer than 253");
}
END_TEST

START_TEST(duplicates_keep_the_first)
{
	struct domain_rules r = { 0 };
	const struct domain_rule *rule;
	int allowed;

	add_ok(&r, 0, "example.com", "/etc/ferry/proxy.ini", 12);
	add_ok(&r, 0, "EXAMPLE.com.", "/etc/ferry/domains", 3);
	ck_assert_uint_eq(r.n, 1);
	rule = domains_check(&r, "example.com", 11, &allowed);
	ck_assert_ptr_nonnull(rule);
	ck_assert_int_eq(rule->line, 12);
	ck_assert_str_eq(rule->source, "/etc/ferry/proxy.ini");
	domains_free(&r);
}
END_TEST

START_TEST(sources_and_lines)
{
	struct domain_rules r = { 0 };
	const struct domain_rule *rule;
	char text[256];
	int allowed;

	add_ok(&r, 0, ".ads.example", "/etc/ferry/proxy.ini", 12);
	add_ok(&r, 0, "tracker.example", "/etc/ferry/domains", 3);
	add_ok(&r, 1, ".example", "/etc/ferry/proxy.ini", 13);
	/* Sources are kept once each. */
	ck_assert_uint_eq(r.nsources, 2);

	rule = domains_check(&r, "x.ads.example", 13, &allowed);
	ck_assert_ptr_nonnull(rule);
	ck_assert_int_eq(allowed, 0);
	domains_describe(rule, text, sizeof(text));
	ck_assert_str_eq(text, "'.ads.example' (/etc/ferry/proxy.ini line 12)");

	rule = domains_check(&r, "tracker.example", 15, &allowed);
	ck_assert_ptr_nonnull(rule);
	domains_describe(rule, text, sizeof(text));
	ck_assert_str_eq(text, "'tracker.example' (/etc/ferry/domains line 3)");

	rule = domains_check(&r, "www.example", 11, &allowed);
	ck_assert_ptr_nonnull(rule);
	ck_assert_int_eq(allowed, 1);
	domains_describe(rule, text, sizeof(text));
	ck_assert_str_eq(text, "'.example' (/etc/ferry/proxy.ini line 13)");

	/* The host is given as a slice: bytes after len are not part of it. */
	rule = domains_check(&r, "tracker.examplezzz", 15, &allowed);
	ck_assert_ptr_nonnull(rule);
	ck_assert_str_eq(rule->pattern, "tracker.example");
	domains_free(&r);
}
END_TEST

/* ---- files ---- */

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

static char tmpdir[64];

static void make_tmpdir(void)
{
	strcpy(tmpdir, "/tmp/ferry-domains-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
	rmdir(tmpdir);
}

static char *write_file(const char *name, const char *text, size_t len)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

START_TEST(file_good)
{
	static const char text[] =
		"# ferry domains\n"
		"\n"
		"allow .example.com\n"
		"  deny   ads.example.com   # no ads\n"
		"ALLOW\twww.example.org\r\n";
	struct domain_rules r = { 0 };
	struct errs e = { 0 };
	const struct domain_rule *rule;
	char *path;
	int allowed;

	make_tmpdir();
	path = write_file("domains", text, strlen(text));
	ck_assert_int_eq(domains_load_file(&r, path, collect, &e), FERRY_OK);
	ck_assert_int_eq(e.n, 0);
	ck_assert_uint_eq(r.n, 3);
	rule = domains_check(&r, "ads.example.com", 15, &allowed);
	ck_assert_ptr_nonnull(rule);
	ck_assert_int_eq(allowed, 0);
	ck_assert_int_eq(rule->line, 4);
	ck_assert_str_eq(rule->source, path);
	rule = domains_check(&r, "www.example.org", 15, &allowed);
	ck_assert_ptr_nonnull(rule);
	ck_assert_int_eq(allowed, 1);
	ck_assert_int_eq(rule->line, 5);
	undecided(&r, "example.org", 0);
	domains_free(&r);
	unlink(path);
	remove_tmpdir();
}
END_TEST

START_TEST(file_errors)
{
	static const char text[] =
		"allow good.example\n"              /* 1 */
		"permit bad.example\n"              /* 2 */
		"deny\n"                            /* 3 */
		"deny a.example b.example\n"        /* 4 */
		"deny *.example\n"                  /* 5 */
		"deny 10.0.0.1\n"                   /* 6 */
		"deny .also-good.example\n"         /* 7 */
		"deny x.example#glued\n"            /* 8: '#' glued to a word is part of it */
		"deny nul\0.example\n";             /* 9 */
	struct domain_rules r = { 0 };
	struct errs e = { 0 };
	char *path;
	int allowed;

	make_tmpdir();
	path = write_file("domains", text, sizeof(text) - 1);
	ck_assert_int_eq(domains_load_file(&r, path, collect, &e), FERRY_ERR);
	ck_assert_int_eq(e.n, 7);
	ck_assert_int_eq(e.line[0], 2);
	ck_assert_str_eq(e.msg[0], "expected 'allow PATTERN' or 'deny PATTERN', not 'permit'");
	ck_assert_int_eq(e.line[1], 3);
	ck_assert_str_eq(e.msg[1], "deny: missing pattern");
	ck_assert_int_eq(e.line[2], 4);
	ck_assert_str_eq(e.msg[2], "one pattern per line ('b.example' follows)");
	ck_assert_int_eq(e.line[3], 5);
	ck_assert_ptr_nonnull(strstr(e.msg[3], "no wildcards"));
	ck_assert_int_eq(e.line[4], 6);
	ck_assert_ptr_nonnull(strstr(e.msg[4], "is an IP address"));
	ck_assert_int_eq(e.line[5], 8);
	ck_assert_ptr_nonnull(strstr(e.msg[5], "only letters, digits"));
	ck_assert_int_eq(e.line[6], 9);
	ck_assert_str_eq(e.msg[6], "line contains a NUL byte");
	/* The good lines are in. */
	ck_assert_uint_eq(r.n, 2);
	ck_assert_ptr_nonnull(domains_check(&r, "good.example", 12, &allowed));
	ck_assert_ptr_nonnull(domains_check(&r, "x.also-good.example", 19, &allowed));
	ck_assert_int_eq(allowed, 0);
	domains_free(&r);

	/* A missing file is an error about the file (line 0). */
	memset(&e, 0, sizeof(e));
	unlink(path);
	ck_assert_int_eq(domains_load_file(&r, path, collect, &e), FERRY_ERR);
	ck_assert_int_eq(e.n, 1);
	ck_assert_int_eq(e.line[0], 0);
	ck_assert_str_eq(e.msg[0], "cannot open: No such file or directory");
	/* Nor a directory, a device or a FIFO (which would block the load). */
	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(domains_load_file(&r, tmpdir, collect, &e), FERRY_ERR);
	ck_assert_int_eq(e.n, 1);
	ck_assert_str_eq(e.msg[0], "not a regular file");
	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(domains_load_file(&r, "/dev/zero", collect, &e), FERRY_ERR);
	ck_assert_int_eq(e.n, 1);
	ck_assert_str_eq(e.msg[0], "not a regular file");
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(domains_load_file(&r, path, collect, &e), FERRY_ERR);
	ck_assert_int_eq(e.n, 1);
	ck_assert_str_eq(e.msg[0], "not a regular file");
	unlink(path);
	domains_free(&r);
	remove_tmpdir();
}
END_TEST

START_TEST(file_long_line)
{
	struct domain_rules r = { 0 };
	struct errs e = { 0 };
	char text[2100], *path;

	memset(text, ' ', sizeof(text));
	memcpy(text, "deny a.example", 14);
	text[2000] = '\n';
	memcpy(text + 2001, "deny b.example\n", 15);
	make_tmpdir();
	path = write_file("domains", text, 2016);
	ck_assert_int_eq(domains_load_file(&r, path, collect, &e), FERRY_ERR);
	ck_assert_int_eq(e.n, 1);
	ck_assert_int_eq(e.line[0], 1);
	ck_assert_str_eq(e.msg[0], "line too long (max 1024 characters)");
	ck_assert_uint_eq(r.n, 1);
	ck_assert_str_eq(r.v[0].pattern, "b.example");
	domains_free(&r);
	unlink(path);
	remove_tmpdir();
}
END_TEST

/* ---- many rules ---- */

START_TEST(ten_thousand_rules)
{
	struct domain_rules r = { 0 };
	char name[64];
	int i, allowed;

	for (i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "host%d.example", i);
		add_ok(&r, 0, name, "big", i + 1);
		snprintf(name, sizeof(name), ".zone%d.test", i);
		add_ok(&r, 0, name, "big", 5001 + i);
	}
	ck_assert_uint_eq(r.n, 10000);
	for (i = 0; i < 5000; i++) {
		const struct domain_rule *rule;
		snprintf(name, sizeof(name), "host%d.example", i);
		rule = domains_check(&r, name, strlen(name), &allowed);
		ck_assert_ptr_nonnull(rule);
		ck_assert_int_eq(rule->line, i + 1);
		ck_assert_int_eq(allowed, 0);
		snprintf(name, sizeof(name), "www.a.zone%d.test", i);
		rule = domains_check(&r, name, strlen(name), &allowed);
		ck_assert_ptr_nonnull(rule);
		ck_assert_int_eq(rule->line, 5001 + i);
		/* Near misses. */
		snprintf(name, sizeof(name), "host%d.example", i + 5000);
		ck_assert_ptr_null(domains_check(&r, name, strlen(name), &allowed));
		ck_assert_int_eq(allowed, 1);
		snprintf(name, sizeof(name), "www.host%d.example", i);
		ck_assert_ptr_null(domains_check(&r, name, strlen(name), &allowed));
		snprintf(name, sizeof(name), "zone%d.test.org", i);
		ck_assert_ptr_null(domains_check(&r, name, strlen(name), &allowed));
	}
	domains_free(&r);
}
END_TEST

static Suite *domains_suite(void)
{
	Suite *s = suite_create("domains");
	TCase *tc = tcase_create("match");

	tcase_add_test(tc, no_rules_allow_everything);
	tcase_add_test(tc, exact);
	tcase_add_test(tc, suffix_matches_domain_and_subdomains);
	tcase_add_test(tc, case_and_trailing_dot);
	tcase_add_test(tc, ip_literals_never_match);
	tcase_add_test(tc, deny_wins);
	tcase_add_test(tc, allow_list_refuses_the_rest);
	tcase_add_test(tc, most_specific_rule_is_named);
	tcase_add_test(tc, pattern_errors);
	tcase_add_test(tc, duplicates_keep_the_first);
	tcase_add_test(tc, sources_and_lines);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_add_test(tc, file_good);
	tcase_add_test(tc, file_errors);
	tcase_add_test(tc, file_long_line);
	suite_add_tcase(s, tc);

	tc = tcase_create("scale");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, ten_thousand_rules);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(domains_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
