/*
 * A throwaway PostgreSQL server for bench_fleet, made the way
 * tests/integration/pg_lib.sh makes its servers: initdb into a new
 * directory under $TMPDIR (default /tmp), superuser `sbx` trusted over the
 * Unix socket and with a password (scram-sha-256) over TCP, listening on
 * 127.0.0.1 only at a free port, no system service and no file outside
 * that directory.  PostgreSQL refuses to run as root, so as root the
 * server's files and processes belong to the `postgres` system user.
 *
 * Unlike the test servers it runs with the settings that decide what a
 * commit costs left as in production: fsync on, synchronous_commit on.
 *
 * The postmaster is this program's child in a process group of its own (a
 * Ctrl-C at the terminal reaches only the bench, which then stops it), and
 * it gets SIGQUIT (immediate shutdown) should the bench die without
 * stopping it.
 */
#ifndef SBX_BENCHPG_H
#define SBX_BENCHPG_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#define BENCH_PG_USER "sbx"

struct bench_pg {
	char top[256];          /* mkdtemp'd; everything below, removed by stop */
	char dir[300];          /* top/pg: the server's (postgres-owned when root) */
	char data[320];
	char log[320];
	char pwfile[300];       /* top/pg.password: 0600, this user's: for the brokers */
	char password[40];
	int port;
	pid_t pid;              /* the postmaster; 0 when not running */
};

/* initdb and start a server with the binaries in bindir; 0, or -1 with
 * err (the end of the server's log is then on stderr). */
int bench_pg_start(struct bench_pg *pg, const char *bindir, const char *prog, char *err,
		   size_t errlen);
/* "host=127.0.0.1 port=P user=sbx dbname=postgres" (no password). */
void bench_pg_conninfo(const struct bench_pg *pg, char *buf, size_t len);
/* Fast shutdown (SIGINT; SIGQUIT, then SIGKILL, when it does not go), then
 * the directory is removed.  Safe to call twice, or after a failed start. */
void bench_pg_stop(struct bench_pg *pg);
/* The last lines of the server's log. */
void bench_pg_print_log(const struct bench_pg *pg, FILE *out);

#endif
