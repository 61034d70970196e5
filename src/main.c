/* main.c - command line and wiring: load proxy.ini, open the log, hand over to the master. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accesslog.h"
#include "config.h"
#include "log.h"
#include "master.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/usr/local/etc"
#endif
#define DEFAULT_CONFIG SYSCONFDIR "/ferry/proxy.ini"

/* exit statuses, as documented in ferry(8) */
enum { EXIT_OK = 0, EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_RUNTIME = 3 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ferry [-c FILE] [-f] [-t] [-v] [-h]\n"
		"  -c, --config FILE  configuration file (default %s;\n"
		"                     when it does not exist, the built-in defaults are used)\n"
		"  -f, --foreground   stay in the foreground and log to stderr\n"
		"  -t, --test         check the configuration and exit (0 valid, 1 invalid)\n"
		"  -v, --version      print the version and exit\n"
		"  -h, --help         print this help and exit\n",
		DEFAULT_CONFIG);
}

static void print_error(void *arg, const char *msg)
{
	int *count = arg;
	(*count)++;
	fprintf(stderr, "ferry: %s\n", msg);
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	int foreground = 0, test = 0;
	int opt;
	/* the long names users type out of habit from other daemons */
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "test", no_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:ftvh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		case 't':
			test = 1;
			break;
		case 'v':
			printf("ferry %s\n", PACKAGE_VERSION);
			return EXIT_OK;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case ':':
			if (strncmp(argv[optind - 1], "--", 2) == 0)
				fprintf(stderr, "ferry: option %s needs an argument (see ferry -h)\n", argv[optind - 1]);
			else
				fprintf(stderr, "ferry: option -%c needs an argument (see ferry -h)\n", optopt);
			return EXIT_USAGE;
		default:
			if (optopt)
				fprintf(stderr, "ferry: unknown option -%c (see ferry -h)\n", optopt);
			else
				fprintf(stderr, "ferry: unknown option %s (see ferry -h)\n", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ferry: unexpected argument '%s' (see ferry -h)\n", argv[optind]);
		return EXIT_USAGE;
	}

	int errors = 0;
	int builtin = 0;
	struct config *cfg;
	if (path == NULL && access(DEFAULT_CONFIG, F_OK) != 0 && errno == ENOENT) {
		/* no file installed yet: the embedded defaults (loopback only, port 3128) */
		builtin = 1;
		path = DEFAULT_CONFIG;
		cfg = config_default(print_error, &errors);
	} else {
		if (path == NULL)
			path = DEFAULT_CONFIG;
		cfg = config_load(path, print_error, &errors);
	}
	if (cfg == NULL) {
		if (errors == 0)
			fprintf(stderr, "ferry: %s: invalid configuration\n", path);
		return EXIT_CONFIG;
	}
	if (test) {
		printf("ferry: %s: configuration is valid\n", builtin ? "(built-in)" : path);
		config_free(cfg);
		return EXIT_OK;
	}

	char err[512], where[600];
	const char *target = foreground ? "stderr" : cfg->error_log;
	if (log_open(target, (enum log_level)cfg->log_level, err, sizeof(err)) != 0) {
		fprintf(stderr, "ferry: %s: %s\n", config_where(cfg, "log", "error_log", where, sizeof(where)), err);
		config_free(cfg);
		return EXIT_RUNTIME;
	}
	/* opened here, with the privileges ferry starts with; the children inherit it */
	if (accesslog_open(cfg->access_log, err, sizeof(err)) != 0) {
		fprintf(stderr, "ferry: %s: %s\n", config_where(cfg, "log", "access_log", where, sizeof(where)), err);
		config_free(cfg);
		return EXIT_RUNTIME;
	}
	if (builtin)
		log_info("%s not found: running on the built-in default configuration", DEFAULT_CONFIG);

	struct master_opts mo = { path, foreground, builtin };
	return master_run(cfg, &mo);
}
