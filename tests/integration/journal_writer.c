/*
 * journal_writer STATE_DIR < SCRIPT: append records to the journal in
 * STATE_DIR through the journal's own code (hash chain, group commit), with
 * the times the script gives.  For tests that need a journal of weeks or
 * months (tests/integration/review_report.sh): the broker only writes
 * "now".
 *
 * SCRIPT: one JSON object per line, {"time": RFC 3339, "event": E,
 * "actor": A, ...fields}; blank lines and lines starting with '#' are
 * skipped.  "continued": true joins a line to the next one in one
 * operation, as the broker groups them (docs/audit.md).  Exit 0, or 1 with
 * the line that failed.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "timeutil.h"

int main(int argc, char **argv)
{
	struct sbx_journal_opts jo = { 0 };
	struct sbx_replay_info info;
	struct sbx_journal *j = NULL;
	char err[1024], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0;
	bool in_op = false;
	int ret = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: %s STATE_DIR < SCRIPT\n", argv[0]);
		return 2;
	}
	jo.state_dir = argv[1];
	if (sbx_journal_open(&jo, NULL, NULL, NULL, &info, &j, err, sizeof(err)) < 0) {
		fprintf(stderr, "journal_writer: %s\n", err);
		return 1;
	}
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		json_error_t je;
		json_t *rec, *fields;
		const char *ev, *actor, *ts;
		int64_t t;
		int rc;

		lineno++;
		if (n == 0 || line[0] == '\n' || line[0] == '#')
			continue;
		rec = json_loads(line, 0, &je);
		ev = json_string_value(json_object_get(rec, "event"));
		actor = json_string_value(json_object_get(rec, "actor"));
		ts = json_string_value(json_object_get(rec, "time"));
		if (!rec || !ev || !actor || !ts || sbx_parse_rfc3339_us(ts, &t) < 0) {
			fprintf(stderr, "journal_writer: line %u: not {time, event, actor, ...}: %s\n",
				lineno, rec ? "missing member" : je.text);
			json_decref(rec);
			goto out;
		}
		fields = json_deep_copy(rec);
		json_object_del(fields, "time");
		json_object_del(fields, "event");
		json_object_del(fields, "actor");
		if (json_is_true(json_object_get(fields, "continued"))) {
			json_object_del(fields, "continued");
			if (!in_op)
				sbx_journal_op_begin(j);
			in_op = true;
		}
		rc = sbx_journal_append_at(j, t, ev, actor, fields, NULL, NULL);
		if (in_op && !json_object_get(rec, "continued")) {
			sbx_journal_op_end(j);
			in_op = false;
		}
		json_decref(fields);
		json_decref(rec);
		if (rc < 0) {
			fprintf(stderr, "journal_writer: line %u: append failed\n", lineno);
			goto out;
		}
	}
	if (sbx_journal_flush(j) < 0) {
		fprintf(stderr, "journal_writer: flush failed\n");
		goto out;
	}
	ret = 0;
out:
	free(line);
	sbx_journal_close(j);
	return ret;
}
