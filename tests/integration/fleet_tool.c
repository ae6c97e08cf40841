/*
 * What the fleet's integration tests need from the log in PostgreSQL,
 * independently of the brokers under test:
 *
 *   fleet_tool init CONNINFO PWFILE
 *       create the schema (prints "schema N")
 *   fleet_tool dump CONNINFO PWFILE
 *       check the whole chain (fleet/chain.h) and print one line per
 *       record, "seq<TAB>event<TAB>id<TAB>user<TAB>role<TAB>host", then
 *       "chain intact N" or "chain broken at SEQ: why" (exit 1)
 *   fleet_tool fill CONNINFO PWFILE N
 *       append N well-formed request.created records (users f000001...,
 *       role filler, host "filler") at the end of the log, in batches
 *
 * The password is the first line of PWFILE.
 */
#include "config.h"

#include "chain.h"
#include "journal.h"
#include "pgstore.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static int read_password(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");

	if (!f || !fgets(buf, (int)cap, f)) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

static struct sbx_pgstore *connect_store(const char *conninfo, const char *pwfile)
{
	char pw[256], why[600];
	struct sbx_pgstore_opts o = { .conninfo = conninfo, .password = pw, .host = "fleet_tool",
				      .timeout_ms = 10000 };
	struct sbx_pgstore *s = NULL;

	if (read_password(pwfile, pw, sizeof(pw)) < 0) {
		fprintf(stderr, "fleet_tool: cannot read %s\n", pwfile);
		return NULL;
	}
	if (sbx_pgstore_open(&o, &s, why, sizeof(why)) < 0) {
		fprintf(stderr, "fleet_tool: %s\n", why);
		return NULL;
	}
	return s;
}

static int cmd_init(struct sbx_pgstore *s)
{
	char why[600];
	int version = 0;

	if (sbx_pgstore_init_schema(s, &version, why, sizeof(why)) < 0) {
		fprintf(stderr, "fleet_tool: %s\n", why);
		return 1;
	}
	printf("schema %d\n", version);
	return 0;
}

static void print_rec(const struct sbx_pgrec *r)
{
	json_t *rec = json_loads(r->line, 0, NULL);
	const char *event = json_string_value(json_object_get(rec, "event"));
	const char *user = json_string_value(json_object_get(rec, "user"));
	const char *host = json_string_value(json_object_get(rec, "host"));
	const char *role = json_string_value(json_object_get(rec, "role"));

	printf("%" PRIu64 "\t%s\t%lld\t%s\t%s\t%s\n", r->seq, event ? event : "-",
	       (long long)json_integer_value(json_object_get(rec, "id")), user ? user : "-",
	       role ? role : "-", host ? host : "-");
	json_decref(rec);
}

/* Walk the whole log: with print, every record; returns the position
 * reached and the number of request.created records seen. */
static int walk(struct sbx_pgstore *s, bool print, struct sbx_chain_pos *pos, uint64_t *created)
{
	char why[700];

	sbx_chain_pos_init(pos);
	*created = 0;
	for (;;) {
		struct sbx_pgrec *recs = NULL;
		size_t n = 0, n_ok = 0;
		uint64_t bad = 0;
		int rc;

		if (sbx_pgstore_fetch(s, pos->seq, SBX_PGSTORE_FETCH_MAX, &recs, &n, why,
				      sizeof(why)) < 0) {
			fprintf(stderr, "fleet_tool: %s\n", why);
			return -1;
		}
		rc = sbx_chain_check(pos, recs, n, &n_ok, &bad, why, sizeof(why));
		for (size_t i = 0; i < n_ok; i++) {
			if (print)
				print_rec(&recs[i]);
			if (strstr(recs[i].line, "\"event\":\"request.created\""))
				(*created)++;
		}
		sbx_pgrecs_free(recs, n);
		if (rc < 0) {
			printf("chain broken at %" PRIu64 ": %s\n", bad, why);
			return -1;
		}
		if (n < SBX_PGSTORE_FETCH_MAX)
			return 0;
	}
}

static int cmd_dump(struct sbx_pgstore *s)
{
	struct sbx_chain_pos pos;
	uint64_t created;

	if (walk(s, true, &pos, &created) < 0)
		return 1;
	printf("chain intact %" PRIu64 "\n", pos.seq);
	return 0;
}

static int64_t now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static int cmd_fill(struct sbx_pgstore *s, long count)
{
	struct sbx_chain_pos pos;
	uint64_t created;
	long done = 0;
	char why[600], lapses[32];
	time_t later = time(NULL) + 86400;

	strftime(lapses, sizeof(lapses), "%Y-%m-%dT%H:%M:%SZ", gmtime(&later));
	if (walk(s, false, &pos, &created) < 0)
		return 1;
	while (done < count) {
		size_t n = (size_t)(count - done > 1000 ? 1000 : count - done);
		struct sbx_pgrec *recs = calloc(n, sizeof(*recs));
		struct sbx_chain_pos at = pos;

		for (size_t i = 0; i < n; i++) {
			char user[32];
			json_t *f;
			size_t len;

			snprintf(user, sizeof(user), "f%06ld", done + (long)i + 1);
			f = json_pack("{s:I, s:s, s:s, s:i, s:i, s:s, s:s}", "id",
				      (json_int_t)(created + 1), "user", user, "role", "filler",
				      "duration", 3600, "approvals_needed", 1, "lapses_at", lapses,
				      "host", "filler");
			if (sbx_record_make(at.seq + 1, now_us(), "request.created", user, f, at.hash,
					    &recs[i].line, &len, recs[i].hash) < 0) {
				fprintf(stderr, "fleet_tool: cannot make a record\n");
				return 1;
			}
			json_decref(f);
			recs[i].seq = at.seq + 1;
			memcpy(recs[i].prev, at.hash, 65);
			at.seq++;
			memcpy(at.hash, recs[i].hash, 65);
			created++;
		}
		if (sbx_pgstore_append(s, recs, n, why, sizeof(why)) < 0) {
			fprintf(stderr, "fleet_tool: %s\n", why);
			return 1;
		}
		sbx_pgrecs_free(recs, n);
		pos = at;
		done += (long)n;
	}
	printf("filled %ld, log ends at seq %" PRIu64 "\n", done, pos.seq);
	return 0;
}

int main(int argc, char **argv)
{
	struct sbx_pgstore *s;
	int rc = 2;

	if (argc < 4) {
		fprintf(stderr, "usage: fleet_tool init|dump|fill CONNINFO PWFILE [N]\n");
		return 2;
	}
	s = connect_store(argv[2], argv[3]);
	if (!s)
		return 1;
	if (strcmp(argv[1], "init") == 0)
		rc = cmd_init(s);
	else if (strcmp(argv[1], "dump") == 0)
		rc = cmd_dump(s);
	else if (strcmp(argv[1], "fill") == 0 && argc == 5)
		rc = cmd_fill(s, strtol(argv[4], NULL, 10));
	else
		fprintf(stderr, "fleet_tool: unknown command\n");
	sbx_pgstore_close(s);
	return rc;
}
