/* test_install.c - `make install` and `make uninstall` of the build directory, into a
 * DESTDIR: the tree is complete, an edited proxy.ini survives a second install, uninstall
 * leaves nothing of ferry's but an edited proxy.ini.
 *
 * Environment (set by Makefile.am): FERRY_BUILDDIR, and the configured FERRY_SBINDIR,
 * FERRY_SYSCONFDIR, FERRY_MANDIR, FERRY_UNITDIR ("no": no unit). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char destdir[64];

static const char *env(const char *name)
{
	const char *v = getenv(name);
	ck_assert_msg(v != NULL && *v, "%s is not set (run through make check)", name);
	return v;
}

static void setup(void)
{
	snprintf(destdir, sizeof(destdir), "/tmp/ferry-install-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(destdir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", destdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", destdir);
}

/* make TARGET DESTDIR=destdir in the build directory, quietly; its exit status. Its output
 * goes to out (a file in destdir's parent, read by the caller). */
static int run_make(const char *target, char *out, size_t outlen)
{
	char log[96], cmd[1024];
	snprintf(log, sizeof(log), "%s.log", destdir);
	/* a make of our own: not the jobserver or the variables of the make running the tests */
	snprintf(cmd, sizeof(cmd), "unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES; "
		 "make -s -C '%s' %s DESTDIR='%s' > '%s' 2>&1", env("FERRY_BUILDDIR"), target,
		 destdir, log);
	int st = system(cmd);
	out[0] = '\0';
	FILE *f = fopen(log, "r");
	if (f) {
		size_t n = fread(out, 1, outlen - 1, f);
		out[n] = '\0';
		fclose(f);
	}
	unlink(log);
	if (st != 0)
		fprintf(stderr, "make %s failed:\n%s\n", target, out);
	return st;
}

static void path_of(char *buf, size_t len, const char *dir, const char *file)
{
	int n = snprintf(buf, len, "%s%s/%s", destdir, dir, file);
	ck_assert_msg(n >= 0 && (size_t)n < len, "path too long: %s%s/%s", destdir, dir, file);
}

static int is_file(const char *path, mode_t *mode)
{
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	if (mode)
		*mode = st.st_mode;
	return 1;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Files left under destdir (regular files and links), counted with find(1). */
static int files_left(void)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "find '%s' ! -type d | wc -l", destdir);
	FILE *p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	int n = -1;
	if (fscanf(p, "%d", &n) != 1)
		n = -1;
	pclose(p);
	return n;
}

/* Every file in place, with the configured paths substituted. */
static void check_tree(void)
{
	char p[512];
	mode_t mode;
	const char *sbindir = env("FERRY_SBINDIR"), *etc = env("FERRY_SYSCONFDIR");
	const char *man = env("FERRY_MANDIR"), *unitdir = env("FERRY_UNITDIR");

	path_of(p, sizeof(p), sbindir, "ferry");
	ck_assert_msg(is_file(p, &mode) && (mode & S_IXUSR), "%s missing or not executable", p);
	char confdir[512];
	snprintf(confdir, sizeof(confdir), "%s/ferry", etc);
	path_of(p, sizeof(p), confdir, "proxy.ini");
	ck_assert_msg(is_file(p, NULL), "%s missing", p);
	ck_assert_ptr_nonnull(strstr(slurp(p), "[server]"));
	char mandir[512];
	snprintf(mandir, sizeof(mandir), "%s/man8", man);
	path_of(p, sizeof(p), mandir, "ferry.8");
	ck_assert_msg(is_file(p, NULL), "%s missing", p);
	snprintf(mandir, sizeof(mandir), "%s/man5", man);
	path_of(p, sizeof(p), mandir, "proxy.ini.5");
	ck_assert_msg(is_file(p, NULL), "%s missing", p);

	char lr[512];
	snprintf(lr, sizeof(lr), "%s/logrotate.d", etc);
	path_of(p, sizeof(p), lr, "ferry");
	ck_assert_msg(is_file(p, NULL), "%s missing", p);
	const char *text = slurp(p);
	ck_assert_ptr_nonnull(strstr(text, "postrotate"));
	ck_assert_ptr_nonnull(strstr(text, "-USR1"));
	ck_assert_ptr_null(strstr(text, "@localstatedir@"));

	if (strcmp(unitdir, "no") != 0) {
		path_of(p, sizeof(p), unitdir, "ferry.service");
		ck_assert_msg(is_file(p, NULL), "%s missing", p);
		text = slurp(p);
		char want[600];
		snprintf(want, sizeof(want), "ExecStart=%s/ferry -f -c %s/ferry/proxy.ini", sbindir, etc);
		ck_assert_msg(strstr(text, want) != NULL, "no \"%s\" in the unit", want);
		ck_assert_ptr_nonnull(strstr(text, "ExecReload=/bin/kill -HUP $MAINPID"));
		ck_assert_ptr_nonnull(strstr(text, "NoNewPrivileges=yes"));
		ck_assert_ptr_null(strchr(text, '@'));
	}
}

START_TEST(install_edit_reinstall_uninstall)
{
	char out[8192], conf[512], confdir[512];
	snprintf(confdir, sizeof(confdir), "%s/ferry", env("FERRY_SYSCONFDIR"));
	path_of(conf, sizeof(conf), confdir, "proxy.ini");

	/* a fresh install, and an uninstall that leaves nothing */
	ck_assert_int_eq(run_make("install", out, sizeof(out)), 0);
	check_tree();
	ck_assert_int_eq(run_make("uninstall", out, sizeof(out)), 0);
	ck_assert_msg(files_left() == 0, "uninstall left %d files in %s", files_left(), destdir);

	/* install, edit proxy.ini, install again: the edit survives, the defaults go beside it */
	ck_assert_int_eq(run_make("install", out, sizeof(out)), 0);
	FILE *f = fopen(conf, "a");
	ck_assert_ptr_nonnull(f);
	fputs("\n[server]\nprocesses = 3 ; edited\n", f);
	fclose(f);
	ck_assert_int_eq(run_make("install", out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "kept") != NULL, "the second install did not say it kept the file: %s", out);
	check_tree();
	ck_assert_ptr_nonnull(strstr(slurp(conf), "processes = 3 ; edited"));
	char def[600];
	snprintf(def, sizeof(def), "%s.default", conf);
	ck_assert(is_file(def, NULL));
	ck_assert_ptr_null(strstr(slurp(def), "; edited"));

	/* a third install changes nothing */
	ck_assert_int_eq(run_make("install", out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(slurp(conf), "processes = 3 ; edited"));

	/* uninstall: everything goes but the edited proxy.ini */
	ck_assert_int_eq(run_make("uninstall", out, sizeof(out)), 0);
	ck_assert_int_eq(files_left(), 1);
	ck_assert(is_file(conf, NULL));
	ck_assert_ptr_nonnull(strstr(slurp(conf), "; edited"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("install");
	TCase *tc = tcase_create("install");
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, install_edit_reinstall_uninstall);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
