/*
 * sbxctl fleet init / status / verify (fleet_cmd.h, docs/cli.md).
 */
#include "config.h"

#include "fleet_cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "chain.h"
#include "journal.h"
#include "output.h"
#include "secret.h"
#include "text.h"

#define WHY_MAX 1024
/* How much of a sha256 the status table shows: enough to tell policies
 * apart at a glance (the JSON and the summary lines carry all of it). */
#define SHA_SHORT 12
/* How much of the log's last hash the verify line shows. */
#define HASH_SHORT 16

/* ------------------------------------------------------------------ */
/* The pure parts                                                      */

static bool str_same(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

int sbx_fleet_exit_for_store(int rc)
{
	switch (rc) {
	case 0:
		return SBX_EXIT_OK;
	case -ENOTCONN:
	case -ETIMEDOUT:
		return SBX_EXIT_UNREACHABLE;
	case -EINVAL:
		return SBX_EXIT_USAGE;
	default:
		return SBX_EXIT_REFUSED;
	}
}

const char *sbx_fleet_majority_sha(const struct sbx_pghost *hosts, size_t n)
{
	const char *best = NULL;
	size_t best_count = 0;
	int64_t best_contact = 0;

	for (size_t i = 0; i < n; i++) {
		const char *sha = hosts[i].policy_sha256;
		size_t count = 0;
		int64_t contact = INT64_MIN;

		if (!sha[0])
			continue;
		/* O(n^2), but a fleet is tens of hosts, not thousands. */
		for (size_t j = 0; j < n; j++) {
			if (strcmp(hosts[j].policy_sha256, sha) != 0)
				continue;
			count++;
			if (hosts[j].last_contact_ms > contact)
				contact = hosts[j].last_contact_ms;
		}
		if (!best || count > best_count ||
		    (count == best_count && contact > best_contact) ||
		    (count == best_count && contact == best_contact && strcmp(sha, best) < 0)) {
			best = sha;
			best_count = count;
			best_contact = contact;
		}
	}
	return best;
}

bool sbx_fleet_assess(const struct sbx_pghost *hosts, size_t n, uint64_t last_seq,
		      int64_t max_stale_s, struct sbx_fleet_host_view *views,
		      const char **majority)
{
	const char *maj = sbx_fleet_majority_sha(hosts, n);
	bool healthy = true;

	for (size_t i = 0; i < n; i++) {
		const struct sbx_pghost *h = &hosts[i];
		struct sbx_fleet_host_view *v = &views[i];

		v->ahead = h->applied_seq > last_seq;
		v->lag = v->ahead ? -(int64_t)(h->applied_seq - last_seq)
				  : (int64_t)(last_seq - h->applied_seq);
		v->stale = h->age_ms > max_stale_s * 1000;
		v->mismatch = maj && h->policy_sha256[0] && strcmp(h->policy_sha256, maj) != 0;
		if (v->ahead || v->stale || v->mismatch)
			healthy = false;
	}
	if (majority)
		*majority = maj;
	return healthy;
}

static bool is_hex64(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == 64;
}

/* Count a difference; keep the words of the first. */
static void differ(struct sbx_fleet_copies *cc, uint64_t seq, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void differ(struct sbx_fleet_copies *cc, uint64_t seq, const char *fmt, ...)
{
	va_list ap;

	cc->differ++;
	if (cc->first[0])
		return;
	cc->first_seq = seq;
	va_start(ap, fmt);
	vsnprintf(cc->first, sizeof(cc->first), fmt, ap);
	va_end(ap);
}

int sbx_fleet_copy_check(struct sbx_fleet_copies *cc, const json_t *rec,
			 sbx_fleet_hash_at_fn hash_at, void *ctx)
{
	const json_t *jseq = json_object_get(rec, "fleet_seq");
	const json_t *jhash = json_object_get(rec, "fleet_hash");
	const char *hash = json_string_value(jhash), *log_hash = NULL;
	json_int_t local = json_integer_value(json_object_get(rec, "seq"));
	uint64_t seq, end = 0;
	int rc;

	/* fleet_seq alone: a record this host made itself, which only says
	 * how far it had applied the log when it made it. */
	if (!jhash)
		return 0;
	if (!json_is_integer(jseq) || json_integer_value(jseq) <= 0 || !hash || !is_hex64(hash)) {
		differ(cc, 0, "local record seq %lld in %s has a malformed fleet_seq or fleet_hash",
		       (long long)local, cc->state_dir);
		return 0;
	}
	seq = (uint64_t)json_integer_value(jseq);
	/* The broker applies the log in order, once: anything else is not a
	 * copy of it. */
	if (seq <= cc->last_seq) {
		differ(cc, seq, "local copy of seq %" PRIu64 " in %s comes after the copy of seq %"
		       PRIu64 " (out of order)", seq, cc->state_dir, cc->last_seq);
		return 0;
	}
	cc->last_seq = seq;
	rc = hash_at(ctx, seq, &log_hash, &end);
	if (rc < 0)
		return -1;
	if (rc == 2) {
		cc->unchecked++;
		return 0;
	}
	cc->compared++;
	if (rc == 1)
		differ(cc, seq, "local copy of seq %" PRIu64 " in %s is not in the log, which ends "
		       "at seq %" PRIu64 " (the database lost records this host applied)", seq,
		       cc->state_dir, end);
	else if (memcmp(hash, log_hash, 64) != 0)
		differ(cc, seq, "local copy of seq %" PRIu64 " in %s has hash %s, the log %.64s", seq,
		       cc->state_dir, hash, log_hash);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Connecting                                                          */

/* Text from the database (its error messages) is outside text. */
static void store_error(const struct sbx_cli *c, const char *why)
{
	char san[WHY_MAX];

	sbx_cli_error(c, "fleet: %s", sbx_sanitize(why, san, sizeof(san)));
}

/* A string for JSON: jansson refuses invalid UTF-8, so fall back to a
 * sanitized copy; NULL or "" become null. */
static json_t *jstr(const char *s)
{
	char san[WHY_MAX];
	json_t *j;

	if (!s || !*s)
		return json_null();
	j = json_string(s);
	return j ? j : json_string(sbx_sanitize(s, san, sizeof(san)));
}

static int read_password(const struct sbx_cli *c, const struct sbx_fleet_conf *conf,
			 char *buf, size_t cap)
{
	char why[WHY_MAX];
	size_t len;

	if (sbx_secret_read("fleet.password_file", conf->password_file, buf, cap, &len, why,
			    sizeof(why)) == 0)
		return SBX_EXIT_OK;
	sbx_cli_error(c, "fleet: %s", why);
	return SBX_EXIT_USAGE;
}

/* Connect as the policy says.  The exit code; on success *s and the
 * server's host:port in server. */
static int fleet_connect(const struct sbx_cli *c, const struct sbx_fleet_target *t,
			 struct sbx_pgstore **s, char *server, size_t serverlen)
{
	const struct sbx_fleet_conf *conf = t->conf;
	char password[SBX_SECRET_MAX] = "", why[WHY_MAX], host[256] = "";
	struct sbx_pgstore_opts o = {
		.conninfo = conf->postgres,
		.timeout_ms = (int)conf->timeout * 1000,
		.host = t->host,
	};
	int rc = SBX_EXIT_OK, err;

	if (!conf->enabled) {
		sbx_cli_error(c, "%s has no fleet: section, so this host is in no fleet (give the "
			      "policy that has one with --config)", t->config);
		return SBX_EXIT_USAGE;
	}
	if (conf->password_file[0]) {
		rc = read_password(c, conf, password, sizeof(password));
		if (rc)
			goto out;
		o.password = password;
	}
	/* The host name is only stored with appends, which these commands
	 * never make; the store still wants one. */
	if (!o.host || !*o.host) {
		if (gethostname(host, sizeof(host) - 1) < 0)
			snprintf(host, sizeof(host), "sbxctl");
		o.host = host;
	}
	err = sbx_pgstore_open(&o, s, why, sizeof(why));
	if (err < 0) {
		store_error(c, why);
		rc = sbx_fleet_exit_for_store(err);
		goto out;
	}
	snprintf(server, serverlen, "%s", sbx_pgstore_server(*s));
out:
	explicit_bzero(password, sizeof(password));
	return rc;
}

/* status and verify read a schema this sbx knows, and change nothing. */
static int schema_ready(const struct sbx_cli *c, struct sbx_pgstore *s)
{
	char why[WHY_MAX], san[WHY_MAX];
	int err = sbx_pgstore_check_schema(s, why, sizeof(why));

	if (err == 0)
		return SBX_EXIT_OK;
	if (err == -ENOENT || err == -EPROTO) {
		sbx_cli_error(c, "fleet: %s (`sbxctl fleet init` creates the schema or migrates "
			      "an older one)", sbx_sanitize(why, san, sizeof(san)));
		return SBX_EXIT_REFUSED;
	}
	store_error(c, why);
	return sbx_fleet_exit_for_store(err);
}

static int print_or_fail(const struct sbx_cli *c, json_t *j)
{
	if (j)
		return sbx_cli_print_json(c, j);
	sbx_cli_error(c, "out of memory");
	return SBX_EXIT_REFUSED;
}

/* ------------------------------------------------------------------ */
/* init                                                                */

/* What init did, from what the check before it said. */
static const char *init_action(int check_rc)
{
	switch (check_rc) {
	case 0:
		return "present";
	case -ENOENT:
		return "created";
	case -EPROTO:
		/* init refuses a newer version, so this was an older one */
		return "migrated";
	default:
		return "ready";
	}
}

static void print_init(const json_t *j)
{
	const char *action = sbx_out_str(j, "action");
	const char *words = !strcmp(action, "present") ? " (already there)"
			    : !strcmp(action, "created") ? " (created)"
			    : !strcmp(action, "migrated") ? " (migrated from an older version)"
			    : "";

	printf("fleet: schema version %lld in database %s%s\n",
	       (long long)json_integer_value(json_object_get(j, "schema_version")),
	       sbx_out_str(j, "database") ?: "?", words);
}

int sbx_fleet_cmd_init(const struct sbx_cli *c, const struct sbx_fleet_target *t)
{
	struct sbx_pgstore *s = NULL;
	char server[128], why[WHY_MAX];
	int before, version = 0, err, rc;
	json_t *j = NULL;

	rc = fleet_connect(c, t, &s, server, sizeof(server));
	if (rc)
		goto out;
	/* Only to say what init did: init itself is idempotent. */
	before = sbx_pgstore_check_schema(s, why, sizeof(why));
	err = sbx_pgstore_init_schema(s, &version, why, sizeof(why));
	if (err < 0) {
		store_error(c, why);
		rc = sbx_fleet_exit_for_store(err);
		goto out;
	}
	j = json_pack("{s:o, s:i, s:s}", "database", jstr(server), "schema_version", version,
		      "action", init_action(before));
	if (!j || c->json) {
		rc = print_or_fail(c, j);
		goto out;
	}
	print_init(j);
out:
	json_decref(j);
	sbx_pgstore_close(s);
	return rc;
}

/* ------------------------------------------------------------------ */
/* status                                                              */

static json_t *host_json(const struct sbx_pghost *h, const struct sbx_fleet_host_view *v)
{
	return json_pack("{s:o, s:I, s:I, s:o, s:o, s:I, s:b, s:b, s:b}",
			 "host", jstr(h->host),
			 "applied_seq", (json_int_t)h->applied_seq,
			 "lag", (json_int_t)v->lag,
			 "policy_sha256", jstr(h->policy_sha256),
			 "version", jstr(h->version),
			 "last_contact_age_s", (json_int_t)(h->age_ms > 0 ? h->age_ms / 1000 : 0),
			 "stale", v->stale,
			 "policy_mismatch", v->mismatch,
			 "ahead_of_log", v->ahead);
}

static json_t *status_json(const char *server, uint64_t last_seq, int64_t max_stale_s,
			   const struct sbx_pghost *hosts, size_t n)
{
	struct sbx_fleet_host_view *views = calloc(n ? n : 1, sizeof(*views));
	json_t *j = NULL, *arr = json_array(), *mism = json_array();
	const char *majority = NULL;
	bool healthy;

	if (!views || !arr || !mism)
		goto out;
	healthy = sbx_fleet_assess(hosts, n, last_seq, max_stale_s, views, &majority);
	for (size_t i = 0; i < n; i++) {
		if (json_array_append_new(arr, host_json(&hosts[i], &views[i])) < 0)
			goto out;
		if (views[i].mismatch && json_array_append_new(mism, jstr(hosts[i].host)) < 0)
			goto out;
	}
	j = json_pack("{s:o, s:I, s:o, s:I, s:O, s:O, s:b}", "database", jstr(server),
		      "last_seq", (json_int_t)last_seq, "policy_sha256", jstr(majority),
		      "max_stale_s", (json_int_t)max_stale_s, "hosts", arr, "policy_mismatch",
		      mism, "healthy", healthy);
out:
	json_decref(arr);
	json_decref(mism);
	free(views);
	return j;
}

static const char *flags_text(const json_t *h, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	if (json_is_true(json_object_get(h, "stale")))
		off += (size_t)snprintf(buf + off, len - off, "STALE");
	if (json_is_true(json_object_get(h, "policy_mismatch")) && off < len)
		off += (size_t)snprintf(buf + off, len - off, "%sPOLICY MISMATCH", off ? ", " : "");
	if (json_is_true(json_object_get(h, "ahead_of_log")) && off < len)
		snprintf(buf + off, len - off, "%sAHEAD OF LOG", off ? ", " : "");
	return buf[0] ? buf : NULL;
}

static int print_hosts_table(const json_t *hosts)
{
	static const char *const head[] = { "HOST", "APPLIED", "LAG", "POLICY", "VERSION",
					    "CONTACT", "FLAGS" };
	struct sbx_out_table tab;
	int ret = -1;

	if (sbx_out_table_init(&tab, head, 7) < 0)
		goto out;
	for (size_t i = 0; i < json_array_size(hosts); i++) {
		const json_t *h = json_array_get(hosts, i);
		char applied[24], lag[24], sha[SHA_SHORT + 1], age[32], flags[64];
		const char *full = sbx_out_str(h, "policy_sha256");
		const char *cells[7];

		snprintf(applied, sizeof(applied), "%lld",
			 (long long)json_integer_value(json_object_get(h, "applied_seq")));
		snprintf(lag, sizeof(lag), "%lld",
			 (long long)json_integer_value(json_object_get(h, "lag")));
		snprintf(sha, sizeof(sha), "%s", full ? full : "");
		snprintf(age, sizeof(age), "%llds ago",
			 (long long)json_integer_value(json_object_get(h, "last_contact_age_s")));
		cells[0] = sbx_out_str(h, "host");
		cells[1] = applied;
		cells[2] = lag;
		cells[3] = full ? sha : NULL;
		cells[4] = sbx_out_str(h, "version");
		cells[5] = age;
		cells[6] = flags_text(h, flags, sizeof(flags));
		if (sbx_out_table_add(&tab, cells) < 0)
			goto out;
	}
	sbx_out_table_print(stdout, &tab);
	ret = 0;
out:
	sbx_out_table_free(&tab);
	return ret;
}

/* One line per problem, named as the broker's own journal names them
 * (fleet.policy_mismatch), so that a grep finds both. */
static void print_problems(const json_t *j)
{
	const char *majority = sbx_out_str(j, "policy_sha256");
	const json_t *hosts = json_object_get(j, "hosts");
	char name[256], sha[65], maj[65];

	sbx_sanitize(majority ? majority : "-", maj, sizeof(maj));
	for (size_t i = 0; i < json_array_size(hosts); i++) {
		const json_t *h = json_array_get(hosts, i);
		long long applied = (long long)json_integer_value(json_object_get(h, "applied_seq"));

		sbx_sanitize(sbx_out_str(h, "host") ?: "?", name, sizeof(name));
		sbx_sanitize(sbx_out_str(h, "policy_sha256") ?: "-", sha, sizeof(sha));
		if (json_is_true(json_object_get(h, "policy_mismatch")))
			printf("fleet.policy_mismatch: %s (sha256 %s) differs from the other hosts "
			       "(sha256 %s)\n", name, sha, maj);
		if (json_is_true(json_object_get(h, "stale")))
			printf("fleet.stale: %s last reported %llds ago (fleet.max_stale is %llds)\n",
			       name,
			       (long long)json_integer_value(json_object_get(h, "last_contact_age_s")),
			       (long long)json_integer_value(json_object_get(j, "max_stale_s")));
		if (json_is_true(json_object_get(h, "ahead_of_log")))
			printf("fleet.log_behind: %s has applied up to seq %lld, but the log ends at "
			       "seq %lld (the database lost records it had acknowledged: restored "
			       "from an old backup?)\n", name, applied,
			       (long long)json_integer_value(json_object_get(j, "last_seq")));
	}
}

static int print_status(const json_t *j)
{
	const json_t *hosts = json_object_get(j, "hosts");
	const char *majority = sbx_out_str(j, "policy_sha256");
	char sha[65];
	size_t same = 0;

	printf("%-9s %s\n", "database:", sbx_out_str(j, "database") ?: "?");
	printf("%-9s last seq %lld\n", "log:",
	       (long long)json_integer_value(json_object_get(j, "last_seq")));
	if (json_array_size(hosts) == 0) {
		printf("%-9s none has reported yet\n", "hosts:");
		return 0;
	}
	for (size_t i = 0; i < json_array_size(hosts); i++)
		same += majority && str_same(sbx_out_str(json_array_get(hosts, i), "policy_sha256"),
					     majority);
	if (majority)
		printf("%-9s sha256 %s on %zu of %zu hosts\n", "policy:",
		       sbx_sanitize(majority, sha, sizeof(sha)), same, json_array_size(hosts));
	if (print_hosts_table(hosts) < 0)
		return -1;
	print_problems(j);
	return 0;
}

int sbx_fleet_cmd_status(const struct sbx_cli *c, const struct sbx_fleet_target *t)
{
	struct sbx_pgstore *s = NULL;
	struct sbx_pghost *hosts = NULL;
	char server[128], why[WHY_MAX];
	uint64_t last = 0;
	size_t n = 0;
	json_t *j = NULL;
	int err, rc;

	rc = fleet_connect(c, t, &s, server, sizeof(server));
	if (rc)
		goto out;
	rc = schema_ready(c, s);
	if (rc)
		goto out;
	/* Hosts first: each reported a seq the log held then, and the log
	 * only grows, so a host past the end read after them really is
	 * ahead of the log, not just quicker than this command. */
	err = sbx_pgstore_hosts(s, &hosts, &n, why, sizeof(why));
	if (!err)
		err = sbx_pgstore_last_seq(s, &last, why, sizeof(why));
	if (err < 0) {
		store_error(c, why);
		rc = sbx_fleet_exit_for_store(err);
		goto out;
	}
	j = status_json(server, last, t->conf->max_stale, hosts, n);
	if (!j || c->json)
		rc = print_or_fail(c, j);
	else if (print_status(j) < 0)
		rc = print_or_fail(c, NULL);
	if (rc == SBX_EXIT_OK && !json_is_true(json_object_get(j, "healthy")))
		rc = SBX_EXIT_REFUSED;
out:
	json_decref(j);
	sbx_pghosts_free(hosts, n);
	sbx_pgstore_close(s);
	return rc;
}

/* ------------------------------------------------------------------ */
/* verify                                                              */

/* The log, read from seq 1 a chunk at a time and checked as it is read
 * (sbx_chain_check), so that memory stays bounded however long the log
 * is, and a local copy is only ever compared with a checked record. */
struct log_reader {
	struct sbx_pgstore *s;
	struct sbx_chain_pos pos;       /* the last record that passed */
	struct sbx_pgrec *chunk;        /* the current chunk as fetched */
	size_t n_fetched;
	size_t n;                       /* its first n passed: seqs chunk[0].seq + i */
	bool end;                       /* nothing more to read */
	bool broken;                    /* a record failed the check: end too */
	uint64_t bad_seq;
	char broken_why[WHY_MAX];
	int db_err;                     /* a database error: end too */
	char db_why[700];
};

static void reader_drop_chunk(struct log_reader *r)
{
	sbx_pgrecs_free(r->chunk, r->n_fetched);
	r->chunk = NULL;
	r->n_fetched = 0;
	r->n = 0;
}

/* The next chunk after pos, checked.  0, or the database's error. */
static int reader_next(struct log_reader *r)
{
	int err;

	reader_drop_chunk(r);
	err = sbx_pgstore_fetch(r->s, r->pos.seq, SBX_PGSTORE_FETCH_MAX, &r->chunk, &r->n_fetched,
				r->db_why, sizeof(r->db_why));
	if (err == -EBADMSG) {
		/* A row the schema's checks should have kept out: damage, not
		 * an outage (the fetch does not say which row). */
		r->broken = r->end = true;
		r->bad_seq = r->pos.seq + 1;
		snprintf(r->broken_why, sizeof(r->broken_why), "fleet log: a row after seq %" PRIu64
			 " is not what sbx writes (%s)", r->pos.seq, r->db_why);
		return 0;
	}
	if (err < 0) {
		r->db_err = err;
		r->end = true;
		return err;
	}
	if (r->n_fetched == 0) {
		r->end = true;
		return 0;
	}
	if (sbx_chain_check(&r->pos, r->chunk, r->n_fetched, &r->n, &r->bad_seq, r->broken_why,
			    sizeof(r->broken_why)) < 0)
		r->broken = r->end = true;
	return 0;
}

static int reader_hash_at(void *ctx, uint64_t seq, const char **hash, uint64_t *end)
{
	struct log_reader *r = ctx;

	for (;;) {
		if (r->n && seq >= r->chunk[0].seq && seq <= r->chunk[r->n - 1].seq) {
			*hash = r->chunk[seq - r->chunk[0].seq].hash;
			return 0;
		}
		/* Behind the chunk: copy_check only asks in rising order, so
		 * this cannot be compared (and does not happen). */
		if (r->n && seq < r->chunk[0].seq)
			return 2;
		if (r->end) {
			*end = r->pos.seq;
			return r->db_err ? -1 : r->broken ? 2 : 1;
		}
		if (reader_next(r) < 0)
			return -1;
	}
}

/* Read to the end of the log (or its first bad record). */
static int reader_drain(struct log_reader *r)
{
	while (!r->end)
		if (reader_next(r) < 0)
			return r->db_err;
	return r->db_err;
}

struct local_walk {
	struct sbx_fleet_copies cc;
	struct log_reader *r;
};

static int on_local(const json_t *rec, const char *line, size_t linelen, void *ctx)
{
	struct local_walk *w = ctx;

	(void)line;
	(void)linelen;
	return sbx_fleet_copy_check(&w->cc, rec, reader_hash_at, w->r);
}

static json_t *log_json(const char *server, const struct log_reader *r)
{
	bool empty = r->pos.seq == 0;

	return json_pack("{s:o, s:b, s:I, s:I, s:o, s:o, s:o}", "database", jstr(server),
			 "intact", !r->broken, "records", (json_int_t)r->pos.seq,
			 "last_seq", (json_int_t)r->pos.seq,
			 "last_hash", empty ? json_null() : json_string(r->pos.hash),
			 "bad_seq", r->broken ? json_integer((json_int_t)r->bad_seq) : json_null(),
			 "error", r->broken ? jstr(r->broken_why) : json_null());
}

/* The local half: every copy compared, then the journal's own chain. */
static json_t *local_json(const char *state_dir, const struct sbx_fleet_copies *cc,
			  const char *read_err)
{
	char err[WHY_MAX] = "";
	uint64_t count = 0, bad = 0;
	bool intact = sbx_journal_verify(state_dir, &count, &bad, err, sizeof(err)) == 0;

	return json_pack("{s:o, s:I, s:I, s:I, s:o, s:o, s:o, s:b, s:o, s:o, s:o}",
			 "state_dir", jstr(state_dir),
			 "compared", (json_int_t)cc->compared,
			 "differ", (json_int_t)cc->differ,
			 "unchecked", (json_int_t)cc->unchecked,
			 "first_difference", jstr(cc->first),
			 "first_difference_seq",
			 cc->first[0] && cc->first_seq ? json_integer((json_int_t)cc->first_seq)
						       : json_null(),
			 "read_error", jstr(read_err),
			 "journal_intact", intact,
			 "journal_records", intact ? json_integer((json_int_t)count) : json_null(),
			 "journal_bad_seq", intact ? json_null() : json_integer((json_int_t)bad),
			 "journal_error", intact ? json_null() : jstr(err));
}

static bool verify_ok(const json_t *j)
{
	const json_t *local = json_object_get(j, "local");

	if (!json_is_true(json_object_get(j, "intact")))
		return false;
	if (json_is_null(local) || !local)
		return true;
	return json_integer_value(json_object_get(local, "differ")) == 0 &&
	       json_is_null(json_object_get(local, "read_error")) &&
	       json_is_true(json_object_get(local, "journal_intact"));
}

static long long int_of(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

/* The chain check's words say "fleet log: record seq N: " first; the
 * line already says both. */
static const char *what_is_wrong(const char *error, long long seq)
{
	char prefix[64];
	size_t n = (size_t)snprintf(prefix, sizeof(prefix), "fleet log: record seq %lld: ", seq);

	return strncmp(error, prefix, n) == 0 ? error + n : error;
}

static void print_log_line(const json_t *j)
{
	char san[WHY_MAX];

	if (!json_is_true(json_object_get(j, "intact")))
		printf("fleet log BROKEN at seq %lld: %s (the %lld records before it are intact)\n",
		       int_of(j, "bad_seq"),
		       sbx_sanitize(what_is_wrong(sbx_out_str(j, "error"), int_of(j, "bad_seq")), san,
				    sizeof(san)),
		       int_of(j, "records"));
	else if (int_of(j, "records") == 0)
		printf("fleet log intact: empty, no records yet\n");
	else
		printf("fleet log intact: %lld records, last seq %lld (hash %.*s...)\n",
		       int_of(j, "records"), int_of(j, "last_seq"), HASH_SHORT,
		       sbx_out_str(j, "last_hash"));
}

static void print_local_lines(const json_t *l, long long intact_to)
{
	char dir[WHY_MAX], san[WHY_MAX];

	sbx_sanitize(sbx_out_str(l, "state_dir"), dir, sizeof(dir));
	if (sbx_out_str(l, "read_error"))
		printf("local copy in %s: reading its journal failed: %s\n", dir,
		       sbx_sanitize(sbx_out_str(l, "read_error"), san, sizeof(san)));
	if (int_of(l, "differ"))
		printf("local copy in %s DIFFERS from the log: %lld of %lld records; the first: "
		       "%s\n", dir, int_of(l, "differ"), int_of(l, "compared"),
		       sbx_sanitize(sbx_out_str(l, "first_difference"), san, sizeof(san)));
	else if (int_of(l, "compared"))
		printf("local copy in %s: %lld records compared with the log, all the same\n", dir,
		       int_of(l, "compared"));
	else if (!int_of(l, "unchecked"))
		printf("local copy in %s: no records copied from the fleet's log\n", dir);
	if (int_of(l, "unchecked"))
		printf("local copy in %s: %lld records past seq %lld not compared (the log is "
		       "broken there)\n", dir, int_of(l, "unchecked"), intact_to);
	if (json_is_true(json_object_get(l, "journal_intact")))
		printf("journal in %s intact: %lld records, last seq %lld\n", dir,
		       int_of(l, "journal_records"), int_of(l, "journal_records"));
	else
		printf("journal in %s BROKEN at seq %lld: %s\n", dir, int_of(l, "journal_bad_seq"),
		       sbx_sanitize(sbx_out_str(l, "journal_error"), san, sizeof(san)));
}

/* Walk the local journal (when there is one to compare) and the log
 * together, then the rest of the log.  0, or the database's error. */
static int walk(struct log_reader *r, const char *state_dir, struct local_walk *w,
		char *read_err, size_t errlen)
{
	if (state_dir) {
		w->cc.state_dir = state_dir;
		w->r = r;
		if (sbx_journal_foreach(state_dir, on_local, w, read_err, errlen) < 0 && !r->db_err &&
		    !read_err[0])
			snprintf(read_err, errlen, "unknown error");
		if (r->db_err)
			return r->db_err;
	}
	return reader_drain(r);
}

int sbx_fleet_cmd_verify(const struct sbx_cli *c, const struct sbx_fleet_target *t,
			 const char *state_dir)
{
	struct log_reader r = { 0 };
	struct local_walk w = { 0 };
	char server[128], read_err[WHY_MAX] = "";
	json_t *j = NULL, *local = NULL;
	int err, rc;

	sbx_chain_pos_init(&r.pos);
	if (state_dir) {
		rc = sbx_audit_check_dir(c, state_dir);
		if (rc)
			return rc;
	}
	rc = fleet_connect(c, t, &r.s, server, sizeof(server));
	if (rc)
		goto out;
	rc = schema_ready(c, r.s);
	if (rc)
		goto out;
	err = walk(&r, state_dir, &w, read_err, sizeof(read_err));
	if (err < 0) {
		store_error(c, r.db_why);
		rc = sbx_fleet_exit_for_store(err);
		goto out;
	}
	j = log_json(server, &r);
	if (j && state_dir) {
		local = local_json(state_dir, &w.cc, read_err[0] ? read_err : NULL);
		if (!local || json_object_set(j, "local", local) < 0) {
			json_decref(j);
			j = NULL;
		}
	} else if (j) {
		json_object_set_new(j, "local", json_null());
	}
	if (!j || c->json) {
		rc = print_or_fail(c, j);
	} else {
		print_log_line(j);
		if (local)
			print_local_lines(local, int_of(j, "last_seq"));
	}
	if (rc == SBX_EXIT_OK && !verify_ok(j))
		rc = SBX_EXIT_REFUSED;
out:
	json_decref(local);
	json_decref(j);
	reader_drop_chunk(&r);
	sbx_pgstore_close(r.s);
	return rc;
}
