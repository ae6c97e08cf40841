#include "config.h"

#include "benchjournal.h"
#include "benchlib.h"
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Users hold at most 8 live grants each, one per role, as the broker's
 * limits would let them. */
#define ROLES 8
#define FLUSH_EVERY 20000

static const char *const roles[ROLES] = {
	"sandbox-admin", "db-readonly", "deploy", "oncall",
	"logs-reader", "k8s-edit", "billing-view", "support",
};
static const char *const reasons[] = {
	"debugging the ingest pipeline", "rotating the staging TLS certificates",
	"investigating INC-4411 (slow queries on replica 2)", "release 4.2 rollout",
};

struct gen {
	struct bench_journal *o;
	struct sbx_journal *j;
	uint64_t users;
	uint64_t appended;
	int64_t now;
	char err[256];
};

static void user_of(const struct gen *g, uint64_t id, char out[24])
{
	snprintf(out, 24, "u%07llu", (unsigned long long)((id - 1) / ROLES % g->users + 1));
}

static json_t *at(int64_t secs)
{
	char buf[SBX_RFC3339_LEN];

	sbx_format_rfc3339(secs, buf);
	return json_string(buf);
}

static int append(struct gen *g, const char *event, const char *actor, json_t *f)
{
	json_t *rec = NULL;
	int rc = sbx_journal_append(g->j, event, actor, f, NULL, g->o->on_record ? &rec : NULL);

	json_decref(f);
	if (rc) {
		snprintf(g->err, sizeof(g->err), "append %s: %s", event, strerror(errno));
		return -1;
	}
	if (g->o->on_record && g->o->on_record(rec, g->o->ctx)) {
		snprintf(g->err, sizeof(g->err), "the caller refused record %llu (%s)",
			 (unsigned long long)g->appended + 1, event);
		json_decref(rec);
		return -1;
	}
	json_decref(rec);
	g->appended++;
	/* Keep the pending buffer bounded, as a broker's acks would. */
	if (g->appended % FLUSH_EVERY == 0 && sbx_journal_flush(g->j)) {
		snprintf(g->err, sizeof(g->err), "flush failed");
		return -1;
	}
	if (g->o->snapshot_at && g->appended == g->o->snapshot_at && g->o->write_state) {
		if (sbx_journal_maybe_snapshot(g->j, g->o->write_state, g->o->ctx, true)) {
			snprintf(g->err, sizeof(g->err), "the snapshot at record %llu failed",
				 (unsigned long long)g->appended);
			return -1;
		}
		sbx_journal_snapshot_last(g->j, &g->o->snap);
	}
	return 0;
}

static json_t *req_fields(const struct gen *g, uint64_t id)
{
	char user[24];

	user_of(g, id, user);
	return json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id, "user", user, "role",
			 roles[(id - 1) % ROLES]);
}

static int one_request(struct gen *g, uint64_t id, bool live)
{
	char user[24];
	json_t *f = req_fields(g, id);

	user_of(g, id, user);
	json_object_set_new(f, "duration", json_integer(30 * 86400));
	json_object_set_new(f, "reason", json_string(reasons[id % 4]));
	json_object_set_new(f, "ticket", json_string("OPS-1234"));
	json_object_set_new(f, "approvals_needed", json_integer(0));
	json_object_set_new(f, "lapses_at", at(g->now + 86400));
	if (append(g, "request.created", user, f))
		return -1;
	/* Every other ended request was denied; the rest were granted and
	 * have expired. */
	if (!live && id % 2) {
		f = req_fields(g, id);
		json_object_set_new(f, "reason", json_string("not now"));
		return append(g, "request.denied", "frank", f);
	}
	f = req_fields(g, id);
	json_object_set_new(f, "activated_at", at(g->now - 60));
	json_object_set_new(f, "expires_at", at(live ? g->now + 30 * 86400 : g->now - 30));
	json_object_set_new(f, "duration", json_integer(30 * 86400));
	if (append(g, "grant.activated", "sbx", f))
		return -1;
	if (live)
		return 0;
	f = req_fields(g, id);
	json_object_set_new(f, "expires_at", at(g->now - 30));
	return append(g, "grant.expired", "sbx", f);
}

static int one_check(struct gen *g, uint64_t n)
{
	char user[24];
	uint64_t id = n % (g->o->requests ? g->o->requests : 1) + 1;

	user_of(g, id, user);
	return append(g, "access.checked", "sbx",
		      json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", user, "service", "sshd",
				"rhost", "192.0.2.7", "outcome", "allowed", "role",
				roles[(id - 1) % ROLES]));
}

uint64_t bench_journal_needed(const struct bench_journal *o)
{
	uint64_t ended = o->requests - (o->live < o->requests ? o->live : o->requests);
	uint64_t denied = 0;

	/* Ended ids are 1..ended; the odd ones were denied. */
	denied = (ended + 1) / 2;
	return 2 * (o->requests - ended) + 2 * denied + 3 * (ended - denied);
}

int bench_journal_write(struct bench_journal *o, uint64_t *written, char *err, size_t errlen)
{
	struct sbx_journal_opts jo = { .state_dir = o->state_dir };
	struct sbx_replay_info info;
	struct gen g = { .o = o, .now = sbx_now() };
	uint64_t need = bench_journal_needed(o), total = o->records > need ? o->records : need;
	uint64_t ended = o->requests - (o->live < o->requests ? o->live : o->requests);
	uint64_t checks = total - need, done_checks = 0;
	int ret = -1;

	*written = 0;
	g.users = o->requests / ROLES + 1;
	if (sbx_journal_open(&jo, NULL, NULL, NULL, &info, &g.j, err, errlen))
		return -1;
	if (info.last_seq) {
		snprintf(err, errlen, "%s already holds a journal", o->state_dir);
		goto out;
	}
	for (uint64_t id = 1; id <= o->requests && !bench_interrupted; id++) {
		/* Checks spread evenly between the requests. */
		uint64_t due = o->requests ? checks * id / o->requests : checks;

		if (one_request(&g, id, id > ended))
			goto fail;
		for (; done_checks < due; done_checks++)
			if (one_check(&g, done_checks))
				goto fail;
	}
	for (; done_checks < checks && !bench_interrupted; done_checks++)
		if (one_check(&g, done_checks))
			goto fail;
	if (bench_interrupted) {
		snprintf(err, errlen, "interrupted");
		goto out;
	}
	if (sbx_journal_flush(g.j)) {
		snprintf(err, errlen, "flush failed");
		goto out;
	}
	*written = g.appended;
	ret = 0;
	goto out;
fail:
	snprintf(err, errlen, "%s", g.err);
out:
	sbx_journal_close(g.j);
	return ret;
}
