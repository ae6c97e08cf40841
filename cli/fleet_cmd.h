/*
 * sbxctl fleet: the fleet's shared log in PostgreSQL (fleet/pgstore.h),
 * seen from outside every broker.  `init` creates or migrates the schema,
 * `status` holds what each broker last reported (sbx_hosts) against the
 * log's end and against each other, `verify` checks the whole log's hash
 * chain and, given a broker's state directory, every copy that broker
 * keeps of a log record.  Only init writes.
 *
 * Each command is one connection with the policy's fleet: settings (the
 * password from fleet.password_file, never from argv); errors name the
 * database as host:port and never hold the password.  Exit codes are
 * client.h's: a database that cannot be reached is 3, like a broker.
 *
 * As with the other commands, the answer is built as JSON first and the
 * text is rendered from it, so --json and the text always agree.
 */
#ifndef SBX_CLI_FLEET_CMD_H
#define SBX_CLI_FLEET_CMD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "pgstore.h"
#include "settings.h"

/* Where the fleet is, from a loaded policy. */
struct sbx_fleet_target {
	const char *config;                 /* the policy file, for messages */
	const char *host;                   /* broker.host (NULL: gethostname) */
	const struct sbx_fleet_conf *conf;  /* the file's fleet: section */
};

/* The commands.  Each returns the exit code; state_dir may be NULL. */
int sbx_fleet_cmd_init(const struct sbx_cli *c, const struct sbx_fleet_target *t);
int sbx_fleet_cmd_status(const struct sbx_cli *c, const struct sbx_fleet_target *t);
int sbx_fleet_cmd_verify(const struct sbx_cli *c, const struct sbx_fleet_target *t,
			 const char *state_dir);

/* ---- the pure parts (tests/unit/test_fleet_cmd.c) ------------------------ */

/* The exit code for a negative errno from the store: unreachable or no
 * answer in time 3, a conninfo libpq cannot read 2, anything else 1. */
int sbx_fleet_exit_for_store(int rc);

/* The policy the fleet runs: the sha256 most hosts reported; a tie goes
 * to the policy of the host heard from last (then to the smaller sha, so
 * the answer never depends on the order).  Hosts that reported no policy
 * do not count.  NULL when none did; otherwise points into hosts. */
const char *sbx_fleet_majority_sha(const struct sbx_pghost *hosts, size_t n);

/* What status says about one host. */
struct sbx_fleet_host_view {
	int64_t lag;            /* the log's last seq minus the seq it applied */
	bool stale;             /* no report for more than fleet.max_stale */
	bool mismatch;          /* runs another policy than the majority */
	bool ahead;             /* applied past the log's end: the database
	                         * lost records it had acknowledged */
};

/* Judge every host (views[i] for hosts[i]) against the log's last seq,
 * fleet.max_stale (seconds) and the majority policy (*majority, may be
 * NULL).  true when no host is stale, mismatched or ahead. */
bool sbx_fleet_assess(const struct sbx_pghost *hosts, size_t n, uint64_t last_seq,
		      int64_t max_stale_s, struct sbx_fleet_host_view *views,
		      const char **majority);

/* The log's checked hash at seq, for comparing local copies: 0 with
 * *hash (valid until the next call), 1 when the log ends before seq
 * (*end = its last seq), 2 when the log is broken before seq (nothing
 * there can be trusted), -1 on a database error. */
typedef int (*sbx_fleet_hash_at_fn)(void *ctx, uint64_t seq, const char **hash, uint64_t *end);

/* Comparing a broker's local copies of fleet records with the log. */
struct sbx_fleet_copies {
	const char *state_dir;  /* for the words */
	uint64_t compared;      /* copies looked up in the log */
	uint64_t differ;        /* copies that are not what the log holds */
	uint64_t unchecked;     /* copies past a broken point of the log */
	uint64_t last_seq;      /* the last copy's fleet_seq (they only grow) */
	uint64_t first_seq;     /* the first difference's seq (0: none) */
	char first[512];        /* the first difference in words ("" none) */
};

/* One record of the local journal.  A copy of a fleet record carries
 * fleet_seq and fleet_hash (a record of the host's own carries fleet_seq
 * alone and is skipped); it must be the next in order and have the log's
 * hash at its seq.  0, or -1 when hash_at failed. */
int sbx_fleet_copy_check(struct sbx_fleet_copies *cc, const json_t *rec,
			 sbx_fleet_hash_at_fn hash_at, void *ctx);

#endif
