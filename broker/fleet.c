/*
 * The fleet (fleet.h, docs/fleet.md): the batches of changes, the two
 * workers and what the loop does with what they bring.
 */
#include "config.h"

#include "fleet.h"

#include "broker.h"
#include "chain.h"
#include "journal.h"
#include "log.h"
#include "pgstore.h"
#include "sbxio.h"
#include "secret.h"
#include "state.h"
#include "timeutil.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* While others keep getting to the log first, a change is tried again
 * for as long as one database call may take (fleet.timeout), and at most
 * this many times: its client waits a bounded time, never forever. */
#define MAX_TRIES 256
/* A batch holds at most this many changes, and a change may start only
 * while this many records still fit (the most one change makes: an
 * approval, its activation, and cancelled extensions). */
#define BATCH_CHANGES 256
#define CHANGE_ROOM 64
/* How often the listener polls without a notification, and how long it
 * waits at a time (so that it notices a stop quickly). */
#define POLL_MS 1000
#define WAIT_SLICE_MS 200
#define REPORT_MS 5000
/* How many records the full check reads at a time. */
#define VERIFY_CHUNK 2000
/* Recent (seq, hash) pairs, to compare records that arrive twice. */
#define RING 4096

/* ---- what travels between the threads ---------------------------------------- */

/* loop -> appender */
struct job {
	struct sbx_pgrec *recs;
	size_t n;
	struct sbx_chain_pos at;        /* the batch follows this */
};

enum outcome {
	OUT_OK,                         /* the log took the batch */
	OUT_CONFLICT,                   /* others were first: their records are in fetched */
	OUT_DOWN,                       /* not recorded: the database is away */
	OUT_UNKNOWN,                    /* it went away after COMMIT: maybe recorded */
	OUT_BLOCKED,                    /* the log is damaged or behind this host */
};

/* appender -> loop */
struct result {
	enum outcome outcome;
	struct sbx_pgrec *fetched;
	size_t n_fetched;
	char why[600];
};

/* The internal changes, owned by the fleet itself. */
enum own_kind { OWN_EXPIRE, OWN_POLICY, OWN_PUSH };

struct own_change {
	struct sbx_change ch;
	struct sbx_fleet *F;
	enum own_kind kind;
};

struct sbx_fleet {
	struct sbx_broker *b;
	char conninfo[1024];
	char password[SBX_SECRET_MAX];
	bool has_password;
	char host[256];
	int timeout_ms;
	int64_t max_stale_ms, verify_every_ms;
	int efd;

	pthread_t appender, listener;
	bool appender_up, listener_up;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* ---- under mu ---- */
	bool stopping;
	struct job *job;
	struct result *result;
	struct sbx_pgrec *in;           /* checked records from the listener, in order */
	size_t n_in;
	bool connected;
	char down_why[700];             /* why not connected */
	char server[128];
	int64_t contact_ms;             /* monotonic: the listener last read the log */
	char broken_why[700];           /* the log is damaged / behind: sticky */
	uint64_t broken_seq;
	uint64_t published_seq;         /* for the listener's report */
	char policy_sha[65];
	struct sbx_pgstore *first_store;/* connected at start-up, for the listener */
	struct sbx_chain_pos listen_at; /* set once before the listener starts */
	/* ---- the loop's ---- */
	struct sbx_change *queue, *queue_tail;
	struct sbx_change *batch;       /* the changes of the batch in flight */
	bool trial;                     /* a change is running in a trial */
	bool trial_broken;              /* a proposal failed: the batch is void */
	struct sbx_chain_pos trial_at;  /* where the next proposal goes */
	struct sbx_pgrec *recs;         /* the batch's records */
	size_t n_recs, cap_recs;
	bool in_flight;
	bool outcome_unknown;
	bool writable_cache;
	char blocked[700];              /* sticky copy of broken_why, recorded once */
	bool stale;
	bool expire_busy, policy_busy, push_busy, policy_pending;
	int64_t expire_retry_ms;
	uint32_t *revoked_here;         /* grants revoked here, to push */
	size_t n_revoked_here, cap_revoked_here;
	struct { uint64_t seq; char hash[65]; } ring[RING];
	/* other hosts' policies seen differ from ours (host:sha), to say it
	 * once each */
	char (*mismatch)[340];
	size_t n_mismatch;
};

static void wake_loop(struct sbx_fleet *F)
{
	uint64_t one = 1;

	if (write(F->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		sbx_debug("fleet: eventfd: %s", strerror(errno));
}

static int64_t mono_ms(void)
{
	return sbx_mono_ms();
}

/* ---- the events ---------------------------------------------------------------- */

bool sbx_fleet_event(const char *event)
{
	if (strcmp(event, "grant.revoked_here") == 0)
		return false;
	return strncmp(event, "request.", 8) == 0 || strncmp(event, "grant.", 6) == 0 ||
	       strcmp(event, "policy.loaded") == 0;
}

/* ---- the workers' database calls ------------------------------------------------- */

static int open_store(struct sbx_fleet *F, struct sbx_pgstore **out, char *why, size_t whylen)
{
	struct sbx_pgstore_opts o = {
		.conninfo = F->conninfo,
		.password = F->has_password ? F->password : NULL,
		.timeout_ms = F->timeout_ms,
		.host = F->host,
	};

	return sbx_pgstore_open(&o, out, why, whylen);
}

static void set_connected(struct sbx_fleet *F, struct sbx_pgstore *s)
{
	pthread_mutex_lock(&F->mu);
	F->connected = true;
	F->down_why[0] = '\0';
	snprintf(F->server, sizeof(F->server), "%s", s ? sbx_pgstore_server(s) : "");
	pthread_mutex_unlock(&F->mu);
}

static void set_down(struct sbx_fleet *F, const char *why)
{
	pthread_mutex_lock(&F->mu);
	F->connected = false;
	snprintf(F->down_why, sizeof(F->down_why), "%s", why);
	pthread_mutex_unlock(&F->mu);
	wake_loop(F);
}

static void set_broken(struct sbx_fleet *F, uint64_t seq, const char *why)
{
	pthread_mutex_lock(&F->mu);
	if (!F->broken_why[0]) {
		F->broken_seq = seq;
		snprintf(F->broken_why, sizeof(F->broken_why), "%s", why);
	}
	pthread_mutex_unlock(&F->mu);
	wake_loop(F);
}

static bool stopping(struct sbx_fleet *F)
{
	bool s;

	pthread_mutex_lock(&F->mu);
	s = F->stopping;
	pthread_mutex_unlock(&F->mu);
	return s;
}

/* Sleep ms unless the fleet stops first. */
static void nap(struct sbx_fleet *F, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&F->mu);
	if (!F->stopping)
		pthread_cond_timedwait(&F->cv, &F->mu, &ts);
	pthread_mutex_unlock(&F->mu);
}

/* ---- the appender ------------------------------------------------------------ */

static bool ours(const struct job *j, const struct sbx_pgrec *got, size_t n)
{
	if (n < j->n)
		return false;
	for (size_t i = 0; i < j->n; i++)
		if (got[i].seq != j->recs[i].seq || memcmp(got[i].hash, j->recs[i].hash, 64) != 0)
			return false;
	return true;
}

/* After a refusal or a lost connection: what does the log hold after the
 * batch's place? */
static void settle(struct sbx_pgstore *s, const struct job *j, int append_rc,
		   struct result *r)
{
	struct sbx_chain_pos at = j->at;
	struct sbx_pgrec *got = NULL;
	size_t n = 0, n_ok = 0;
	uint64_t bad = 0;
	char why[600];
	int rc = sbx_pgstore_fetch(s, j->at.seq, SBX_PGSTORE_FETCH_MAX, &got, &n, why, sizeof(why));

	if (rc < 0) {
		r->outcome = append_rc == -EEXIST ? OUT_DOWN : OUT_UNKNOWN;
		snprintf(r->why, sizeof(r->why), "%s", why);
		return;
	}
	if (sbx_chain_check(&at, got, n, &n_ok, &bad, why, sizeof(why)) < 0 && n_ok == 0) {
		r->outcome = OUT_BLOCKED;
		snprintf(r->why, sizeof(r->why), "%s", why);
		sbx_pgrecs_free(got, n);
		return;
	}
	if (ours(j, got, n_ok)) {
		r->outcome = OUT_OK;
		sbx_pgrecs_free(got, n);
		return;
	}
	if (n_ok == 0) {
		/* Nothing after our place: the batch was not committed. */
		r->outcome = OUT_DOWN;
		snprintf(r->why, sizeof(r->why), "the database went away while recording");
		sbx_pgrecs_free(got, n);
		return;
	}
	r->outcome = OUT_CONFLICT;
	r->fetched = got;
	r->n_fetched = n_ok;
	for (size_t i = n_ok; i < n; i++) {
		free(got[i].line);
		free(got[i].host);
	}
}

static void append_job(struct sbx_fleet *F, struct sbx_pgstore **s, const struct job *j,
		       struct result *r)
{
	char why[600];
	int rc;

	if (!*s && (rc = open_store(F, s, why, sizeof(why))) < 0) {
		r->outcome = OUT_DOWN;
		snprintf(r->why, sizeof(r->why), "%s", why);
		set_down(F, why);
		return;
	}
	rc = sbx_pgstore_append(*s, j->recs, j->n, why, sizeof(why));
	switch (rc) {
	case 0:
		r->outcome = OUT_OK;
		break;
	case -EEXIST:
	case -ENOTCONN:
	case -ETIMEDOUT:
		snprintf(r->why, sizeof(r->why), "%s", why);
		settle(*s, j, rc, r);
		break;
	case -ERANGE:
		r->outcome = OUT_BLOCKED;
		snprintf(r->why, sizeof(r->why), "the fleet's log ends before seq %" PRIu64
			 ", which this host has applied: the database lost records it had "
			 "acknowledged (restored from an old backup?)", j->at.seq);
		break;
	default:
		r->outcome = OUT_DOWN;
		snprintf(r->why, sizeof(r->why), "%s", why);
		break;
	}
	if (r->outcome == OUT_DOWN || r->outcome == OUT_UNKNOWN)
		set_down(F, r->why);
	else if (r->outcome == OUT_OK || r->outcome == OUT_CONFLICT)
		set_connected(F, *s);
}

static void *appender_main(void *arg)
{
	struct sbx_fleet *F = arg;
	struct sbx_pgstore *s = NULL;

	for (;;) {
		struct job *j;
		struct result *r;

		pthread_mutex_lock(&F->mu);
		while (!F->stopping && !F->job)
			pthread_cond_wait(&F->cv, &F->mu);
		if (F->stopping) {
			pthread_mutex_unlock(&F->mu);
			break;
		}
		j = F->job;
		F->job = NULL;
		pthread_mutex_unlock(&F->mu);

		r = calloc(1, sizeof(*r));
		if (r)
			append_job(F, &s, j, r);
		pthread_mutex_lock(&F->mu);
		F->result = r;
		pthread_mutex_unlock(&F->mu);
		sbx_pgrecs_free(j->recs, j->n);
		free(j);
		wake_loop(F);
	}
	sbx_pgstore_close(s);
	return NULL;
}

/* ---- the listener ------------------------------------------------------------- */

struct listener {
	struct sbx_fleet *F;
	struct sbx_pgstore *s;
	struct sbx_chain_pos at;        /* the last record handed to the loop */
	bool listening;
	int64_t next_poll_ms, next_report_ms, next_verify_ms;
	struct sbx_chain_pos verify_at; /* the full check's place; seq 0: not running */
	bool verifying;
};

/* Hand checked records to the loop, once it took the last ones. */
static bool hand_over(struct listener *L, struct sbx_pgrec *recs, size_t n)
{
	struct sbx_fleet *F = L->F;

	pthread_mutex_lock(&F->mu);
	while (F->n_in && !F->stopping)
		pthread_cond_wait(&F->cv, &F->mu);
	if (F->stopping) {
		pthread_mutex_unlock(&F->mu);
		sbx_pgrecs_free(recs, n);
		return false;
	}
	F->in = recs;
	F->n_in = n;
	pthread_mutex_unlock(&F->mu);
	wake_loop(F);
	return true;
}

/* Read what is new, check it, hand it over; again while there is more. */
static int catch_up(struct listener *L)
{
	struct sbx_fleet *F = L->F;
	char why[700];

	for (;;) {
		struct sbx_pgrec *recs = NULL;
		size_t n = 0, n_ok = 0;
		uint64_t bad = 0, last = 0;
		int rc = sbx_pgstore_fetch(L->s, L->at.seq, SBX_PGSTORE_FETCH_MAX, &recs, &n, why,
					   sizeof(why));

		if (rc < 0) {
			set_down(F, why);
			return rc;
		}
		set_connected(F, L->s);
		pthread_mutex_lock(&F->mu);
		F->contact_ms = mono_ms();
		pthread_mutex_unlock(&F->mu);
		if (n == 0) {
			/* Nothing new, or a log that lost what this host has. */
			if (sbx_pgstore_last_seq(L->s, &last, why, sizeof(why)) == 0 && last < L->at.seq) {
				snprintf(why, sizeof(why), "the fleet's log ends at seq %" PRIu64 ", but "
					 "this host has applied up to seq %" PRIu64 ": the database lost "
					 "records it had acknowledged (restored from an old backup?)", last,
					 L->at.seq);
				set_broken(F, last + 1, why);
			}
			return 0;
		}
		if (sbx_chain_check(&L->at, recs, n, &n_ok, &bad, why, sizeof(why)) < 0)
			set_broken(F, bad, why);
		for (size_t i = n_ok; i < n; i++) {
			free(recs[i].line);
			free(recs[i].host);
		}
		if (n_ok && !hand_over(L, recs, n_ok))
			return -ECANCELED;
		if (!n_ok)
			free(recs);
		if (n_ok < n || n < SBX_PGSTORE_FETCH_MAX)
			return 0;
	}
}

/* The periodic full check: the whole log again from seq 1, a chunk at a
 * time, against the chain; where it meets this host's place, the hash
 * must be the one this host applied.  An edited, deleted or inserted row
 * shows here even when it is older than anything still read. */
static void verify_some(struct listener *L)
{
	struct sbx_fleet *F = L->F;
	struct sbx_pgrec *recs = NULL;
	size_t n = 0, n_ok = 0, want;
	uint64_t bad = 0;
	char why[700];

	if (!L->verifying) {
		if (!F->verify_every_ms || mono_ms() < L->next_verify_ms || !L->at.seq)
			return;
		sbx_chain_pos_init(&L->verify_at);
		L->verifying = true;
	}
	want = L->at.seq - L->verify_at.seq;
	if (want > VERIFY_CHUNK)
		want = VERIFY_CHUNK;
	if (sbx_pgstore_fetch(L->s, L->verify_at.seq, want, &recs, &n, why, sizeof(why)) < 0)
		return;
	if (sbx_chain_check(&L->verify_at, recs, n, &n_ok, &bad, why, sizeof(why)) < 0) {
		set_broken(F, bad, why);
		L->verifying = false;
	} else if (n < want) {
		snprintf(why, sizeof(why), "fleet log: record seq %" PRIu64 " is missing (the log "
			 "ends at seq %" PRIu64 ")", L->verify_at.seq + 1, L->verify_at.seq);
		set_broken(F, L->verify_at.seq + 1, why);
		L->verifying = false;
	} else if (L->verify_at.seq == L->at.seq) {
		if (memcmp(L->verify_at.hash, L->at.hash, 64) != 0) {
			snprintf(why, sizeof(why), "fleet log: the records up to seq %" PRIu64 " were "
				 "rewritten (the chain no longer ends in the hash this host applied)",
				 L->at.seq);
			set_broken(F, L->at.seq, why);
		}
		L->verifying = false;
		L->next_verify_ms = mono_ms() + F->verify_every_ms;
	}
	sbx_pgrecs_free(recs, n);
}

static void report(struct listener *L)
{
	struct sbx_fleet *F = L->F;
	char why[600], sha[65];
	uint64_t seq;

	if (mono_ms() < L->next_report_ms)
		return;
	pthread_mutex_lock(&F->mu);
	seq = F->published_seq;
	memcpy(sha, F->policy_sha, sizeof(sha));
	pthread_mutex_unlock(&F->mu);
	if (sbx_pgstore_report_host(L->s, seq, sha[0] ? sha : NULL, PACKAGE_VERSION, why,
				    sizeof(why)) < 0)
		sbx_debug("fleet: report: %s", why);
	L->next_report_ms = mono_ms() + REPORT_MS;
}

/* A fresh connection: the schema must be the one this code knows. */
static int connect_listener(struct listener *L)
{
	struct sbx_fleet *F = L->F;
	char why[600];
	int rc;

	if (!L->s && (rc = open_store(F, &L->s, why, sizeof(why))) < 0) {
		set_down(F, why);
		return rc;
	}
	if (!L->listening) {
		rc = sbx_pgstore_check_schema(L->s, why, sizeof(why));
		if (rc == -ENOENT || rc == -EPROTO) {
			set_broken(F, 0, why);
			return rc;
		}
		if (rc == 0)
			rc = sbx_pgstore_listen(L->s, why, sizeof(why));
		if (rc < 0) {
			set_down(F, why);
			return rc;
		}
		L->listening = true;
	}
	return 0;
}

static void *listener_main(void *arg)
{
	struct listener L = { .F = arg };
	struct sbx_fleet *F = L.F;

	pthread_mutex_lock(&F->mu);
	L.s = F->first_store;
	F->first_store = NULL;
	L.at = F->listen_at;
	pthread_mutex_unlock(&F->mu);
	L.next_verify_ms = mono_ms() + (F->verify_every_ms ? 2000 : 0);
	while (!stopping(F)) {
		uint64_t notified = 0;
		int rc;

		if (connect_listener(&L) < 0) {
			nap(F, POLL_MS);
			continue;
		}
		if (mono_ms() >= L.next_poll_ms) {
			if (catch_up(&L) == -ECANCELED)
				break;
			report(&L);
			verify_some(&L);
			L.next_poll_ms = mono_ms() + POLL_MS;
		}
		rc = sbx_pgstore_wait(L.s, WAIT_SLICE_MS, &notified);
		if (rc == 1)
			L.next_poll_ms = 0;   /* something new (or a reconnect): read now */
		else if (rc < 0 && rc != -ETIMEDOUT) {
			char why[300], server[128];

			pthread_mutex_lock(&F->mu);
			snprintf(server, sizeof(server), "%s", F->server);
			pthread_mutex_unlock(&F->mu);
			snprintf(why, sizeof(why), "database %s: the connection broke (%s)",
				 sbx_pgstore_server(L.s)[0] ? sbx_pgstore_server(L.s) : server,
				 strerror(-rc));
			set_down(F, why);
			L.listening = false;
			nap(F, WAIT_SLICE_MS);
		}
	}
	sbx_pgstore_close(L.s);
	return NULL;
}

/* ---- the loop: applying the log ----------------------------------------------- */

static const char *ring_hash(const struct sbx_fleet *F, uint64_t seq)
{
	const struct { uint64_t seq; char hash[65]; } *e = (const void *)&F->ring[seq % RING];

	return e->seq == seq ? e->hash : NULL;
}

static void ring_put(struct sbx_fleet *F, uint64_t seq, const char *hash)
{
	F->ring[seq % RING].seq = seq;
	memcpy(F->ring[seq % RING].hash, hash, 65);
}

static void block(struct sbx_fleet *F, uint64_t seq, const char *why)
{
	struct sbx_broker *b = F->b;
	json_t *f;
	uint64_t local;

	if (F->blocked[0])
		return;
	snprintf(F->blocked, sizeof(F->blocked), "%s", why);
	sbx_err("fleet: %s; this host applies nothing past seq %llu, refuses changes, and "
		"decides from its copy", why, (unsigned long long)b->fleet_seq);
	f = json_object();
	json_object_set_new(f, "bad_seq", json_integer((json_int_t)seq));
	sbx_rec_str(f, "what", why);
	json_object_set_new(f, "applied_seq", json_integer((json_int_t)b->fleet_seq));
	(void)sbx_broker_record(b, "fleet.chain_broken", SBX_SYSTEM_ACTOR, f, &local);
}

/* Another host's policy differs from ours: say so once per host and
 * policy. */
static void note_policy(struct sbx_fleet *F, const json_t *rec)
{
	struct sbx_broker *b = F->b;
	const char *host = json_string_value(json_object_get(rec, "host"));
	const char *sha = json_string_value(json_object_get(rec, "sha256"));
	char key[340];
	json_t *f;
	uint64_t local;
	void *grown;

	if (!host || !sha || strcmp(host, F->host) == 0 || strcmp(sha, b->policy->sha256_hex) == 0)
		return;
	snprintf(key, sizeof(key), "%s %s", host, sha);
	for (size_t i = 0; i < F->n_mismatch; i++)
		if (strcmp(F->mismatch[i], key) == 0)
			return;
	grown = realloc(F->mismatch, (F->n_mismatch + 1) * sizeof(*F->mismatch));
	if (!grown)
		return;
	F->mismatch = grown;
	memcpy(F->mismatch[F->n_mismatch++], key, sizeof(key));
	sbx_warn("fleet: %s runs policy sha256 %.12s, this host %.12s", host, sha,
		 b->policy->sha256_hex);
	f = json_object();
	sbx_rec_str(f, "other_host", host);
	json_object_set_new(f, "other_sha256", json_string(sha));
	json_object_set_new(f, "sha256", json_string(b->policy->sha256_hex));
	(void)sbx_broker_record(b, "fleet.policy_mismatch", SBX_SYSTEM_ACTOR, f, &local);
}

static bool ours_policy(const struct sbx_fleet *F, const json_t *rec)
{
	const char *host = json_string_value(json_object_get(rec, "host"));
	const char *sha = json_string_value(json_object_get(rec, "sha256"));

	return host && sha && strcmp(host, F->host) == 0 &&
	       strcmp(sha, F->b->policy->sha256_hex) == 0;
}

static void forget_revoked_here(struct sbx_fleet *F, uint32_t id)
{
	for (size_t i = 0; i < F->n_revoked_here; i++) {
		if (F->revoked_here[i] == id) {
			F->revoked_here[i] = F->revoked_here[--F->n_revoked_here];
			return;
		}
	}
}

/* Apply records from the log in order; those this host has already are
 * compared, not applied twice.  0, or -1 once the log contradicts this
 * host (blocked). */
static int apply_records(struct sbx_fleet *F, const struct sbx_pgrec *recs, size_t n)
{
	struct sbx_broker *b = F->b;
	char why[700];

	for (size_t i = 0; i < n && !F->blocked[0] && !b->degraded[0]; i++) {
		const struct sbx_pgrec *r = &recs[i];
		const char *had;
		json_t *rec;
		const char *event;

		if (r->seq <= b->fleet_seq) {
			had = r->seq == b->fleet_seq ? b->fleet_hash : ring_hash(F, r->seq);
			if (had && memcmp(had, r->hash, 64) != 0) {
				snprintf(why, sizeof(why), "fleet log: record seq %" PRIu64 " is not the "
					 "one this host applied (the log was rewritten)", r->seq);
				block(F, r->seq, why);
				return -1;
			}
			continue;
		}
		if (r->seq != b->fleet_seq + 1) {
			/* a later batch than the one applied: the other source
			 * brings what is between */
			return 0;
		}
		rec = json_loads(r->line, 0, NULL);
		if (!rec) {
			snprintf(why, sizeof(why), "fleet log: record seq %" PRIu64 " does not parse",
				 r->seq);
			block(F, r->seq, why);
			return -1;
		}
		if (sbx_broker_apply_fleet(b, rec, r->seq, r->hash, why, sizeof(why)) < 0) {
			if (!b->degraded[0])
				block(F, r->seq, why);
			json_decref(rec);
			return -1;
		}
		ring_put(F, r->seq, r->hash);
		event = json_string_value(json_object_get(rec, "event"));
		if (event && strcmp(event, "policy.loaded") == 0) {
			note_policy(F, rec);
			if (ours_policy(F, rec))
				F->policy_pending = false;
		}
		if (event && (strcmp(event, "grant.revoked") == 0 ||
			      strcmp(event, "grant.expired") == 0))
			forget_revoked_here(F, (uint32_t)json_integer_value(json_object_get(rec, "id")));
		json_decref(rec);
	}
	pthread_mutex_lock(&F->mu);
	F->published_seq = b->fleet_seq;
	pthread_mutex_unlock(&F->mu);
	return 0;
}

/* ---- the loop: changes --------------------------------------------------------- */

static void change_done(struct sbx_change *ch, uint64_t wait_seq)
{
	ch->state = SBX_CHANGE_DONE;
	ch->wait_seq = wait_seq;
	if (ch->abandoned)
		ch->free(ch);
}

void sbx_change_abandon(struct sbx_change *ch)
{
	if (!ch)
		return;
	if (ch->state == SBX_CHANGE_DONE)
		ch->free(ch);
	else
		ch->abandoned = true;
}

void sbx_fleet_submit(struct sbx_broker *b, struct sbx_change *ch)
{
	struct sbx_fleet *F = b->fleet;

	ch->state = SBX_CHANGE_QUEUED;
	ch->next = NULL;
	if (F->queue_tail)
		F->queue_tail->next = ch;
	else
		F->queue = ch;
	F->queue_tail = ch;
}

/* The database is away: run the change once, here, outside a trial. */
static void run_down(struct sbx_fleet *F, struct sbx_change *ch)
{
	uint64_t local = 0;

	ch->run(F->b, ch, &local);
	change_done(ch, local);
}

static void refuse(struct sbx_fleet *F, struct sbx_change *ch, const char *why)
{
	if (ch->refuse)
		ch->refuse(F->b, ch, why);
	change_done(ch, 0);
}

bool sbx_fleet_writable(const struct sbx_broker *b, char *why, size_t whylen)
{
	struct sbx_fleet *F = b->fleet;
	bool ok;

	if (!F)
		return true;
	if (F->blocked[0]) {
		if (why)
			snprintf(why, whylen, "the fleet's log cannot be used: %s", F->blocked);
		return false;
	}
	pthread_mutex_lock(&F->mu);
	ok = F->connected;
	if (!ok && why)
		snprintf(why, whylen, "the fleet's database is unreachable (%s)",
			 F->down_why[0] ? F->down_why : "not connected yet");
	pthread_mutex_unlock(&F->mu);
	return ok;
}

bool sbx_fleet_blocked(const struct sbx_broker *b)
{
	return b->fleet && b->fleet->blocked[0];
}

bool sbx_fleet_outcome_unknown(const struct sbx_broker *b)
{
	return b->fleet && b->fleet->outcome_unknown;
}

size_t sbx_fleet_room(const struct sbx_broker *b)
{
	const struct sbx_fleet *F = b->fleet;

	if (!F || !F->trial)
		return SIZE_MAX;
	return F->n_recs >= SBX_PGSTORE_APPEND_MAX - 8 ? 0
						       : SBX_PGSTORE_APPEND_MAX - 8 - F->n_recs;
}

int sbx_fleet_propose(struct sbx_broker *b, const char *event, const char *actor,
		      const json_t *fields, json_t **rec)
{
	struct sbx_fleet *F = b->fleet;
	struct sbx_pgrec *r;
	json_t *f = NULL, *made = NULL;
	char *line = NULL, err[300];
	size_t len = 0;
	int ret = -EROFS;

	*rec = NULL;
	if (!F || !F->trial)
		goto out;
	ret = -E2BIG;
	if (F->n_recs >= SBX_PGSTORE_APPEND_MAX)
		goto fail;
	ret = -ENOMEM;
	f = fields ? json_deep_copy(fields) : json_object();
	if (!f)
		goto fail;
	/* Every fleet record says which host made it. */
	if (!json_object_get(f, "host"))
		json_object_set_new(f, "host", json_string(F->host));
	if (F->n_recs == F->cap_recs) {
		size_t cap = F->cap_recs ? F->cap_recs * 2 : 16;
		void *grown = realloc(F->recs, cap * sizeof(*F->recs));

		if (!grown)
			goto fail;
		F->recs = grown;
		F->cap_recs = cap;
	}
	r = &F->recs[F->n_recs];
	memset(r, 0, sizeof(*r));
	ret = -EINVAL;
	if (sbx_record_make(F->trial_at.seq + 1, sbx_now_us(), event, actor, f, F->trial_at.hash,
			    &line, &len, r->hash) < 0 ||
	    sbx_record_check(line, len, F->trial_at.seq + 1, F->trial_at.hash, r->hash, &made, err,
			     sizeof(err)) < 0) {
		sbx_err("fleet: cannot make %s: %s", event, strerror(errno));
		goto fail;
	}
	if (sbx_state_apply(b->state, made, err, sizeof(err)) < 0) {
		sbx_err("fleet: internal error: %s refused in its trial: %s", event, err);
		goto fail;
	}
	r->seq = F->trial_at.seq + 1;
	memcpy(r->prev, F->trial_at.hash, 65);
	r->line = line;
	line = NULL;
	F->trial_at.seq = r->seq;
	memcpy(F->trial_at.hash, r->hash, 65);
	F->n_recs++;
	*rec = made;
	made = NULL;
	ret = 0;
	goto out;
fail:
	F->trial_broken = true;
out:
	free(line);
	json_decref(f);
	json_decref(made);
	return ret;
}

static void drop_recs(struct sbx_fleet *F)
{
	for (size_t i = 0; i < F->n_recs; i++)
		free(F->recs[i].line);
	F->n_recs = 0;
}

/* Take the batch's changes back to the head of the queue, in order. */
static void requeue(struct sbx_fleet *F)
{
	struct sbx_change *last = F->batch;

	if (!last)
		return;
	while (last->next)
		last = last->next;
	last->next = F->queue;
	if (!F->queue)
		F->queue_tail = last;
	F->queue = F->batch;
	F->batch = NULL;
}

/* After a conflict: refuse the changes of the batch that have tried for
 * too long (only those: the others go again). */
static void give_up_on_old(struct sbx_fleet *F)
{
	struct sbx_change **p = &F->batch;
	int64_t now = mono_ms();
	char why[200];

	while (*p) {
		struct sbx_change *ch = *p;

		if (ch->tries < MAX_TRIES && now - ch->first_try_ms < F->timeout_ms) {
			p = &ch->next;
			continue;
		}
		*p = ch->next;
		ch->next = NULL;
		snprintf(why, sizeof(why), "other hosts kept recording first for %lld ms (%u tries); "
			 "nothing was changed: try again", (long long)(now - ch->first_try_ms),
			 ch->tries);
		sbx_warn("fleet: gave up on a change: %s", why);
		refuse(F, ch, why);
	}
}

/* Finish every change of the batch in flight. */
static void batch_finish(struct sbx_fleet *F, void (*how)(struct sbx_fleet *, struct sbx_change *,
							  uint64_t), uint64_t wait_seq)
{
	struct sbx_change *ch = F->batch;

	F->batch = NULL;
	while (ch) {
		struct sbx_change *next = ch->next;

		ch->next = NULL;
		how(F, ch, wait_seq);
		ch = next;
	}
}

static void finish_done(struct sbx_fleet *F, struct sbx_change *ch, uint64_t wait_seq)
{
	(void)F;
	change_done(ch, wait_seq);
}

static void finish_down(struct sbx_fleet *F, struct sbx_change *ch, uint64_t wait_seq)
{
	(void)wait_seq;
	run_down(F, ch);
}

static void finish_broken(struct sbx_fleet *F, struct sbx_change *ch, uint64_t wait_seq)
{
	(void)wait_seq;
	refuse(F, ch, "the broker could not make this change's records (out of memory?); "
	       "nothing was changed");
}

/* Run the queued changes in one trial and send their records to the log. */
static void start_batch(struct sbx_fleet *F)
{
	struct sbx_broker *b = F->b;
	struct sbx_change **tail = &F->batch;
	size_t n = 0;
	struct job *j;

	if (sbx_state_trial_begin(b->state) < 0)
		return;
	F->trial = true;
	F->trial_broken = false;
	F->trial_at.seq = b->fleet_seq;
	memcpy(F->trial_at.hash, b->fleet_hash, 65);
	drop_recs(F);
	while (F->queue && n < BATCH_CHANGES && sbx_fleet_room(b) >= CHANGE_ROOM &&
	       !F->trial_broken) {
		struct sbx_change *ch = F->queue;
		uint64_t unused = 0;

		F->queue = ch->next;
		if (!F->queue)
			F->queue_tail = NULL;
		ch->next = NULL;
		*tail = ch;
		tail = &ch->next;
		ch->state = SBX_CHANGE_TRYING;
		if (!ch->tries++)
			ch->first_try_ms = mono_ms();
		ch->run(b, ch, &unused);
		n++;
	}
	sbx_state_trial_undo(b->state);
	F->trial = false;
	if (F->trial_broken) {
		drop_recs(F);
		batch_finish(F, finish_broken, 0);
		return;
	}
	if (!F->n_recs) {
		/* Nothing to record: what they said rests on the state as it is. */
		batch_finish(F, finish_done, 0);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		drop_recs(F);
		batch_finish(F, finish_broken, 0);
		return;
	}
	j->recs = F->recs;
	j->n = F->n_recs;
	j->at.seq = b->fleet_seq;
	memcpy(j->at.hash, b->fleet_hash, 65);
	/* The job owns the records now; the batch keeps copies to apply. */
	F->recs = calloc(F->cap_recs, sizeof(*F->recs));
	if (!F->recs) {
		F->recs = j->recs;
		free(j);
		drop_recs(F);
		batch_finish(F, finish_broken, 0);
		return;
	}
	for (size_t i = 0; i < j->n; i++) {
		F->recs[i] = j->recs[i];
		F->recs[i].line = strdup(j->recs[i].line);
		F->recs[i].host = NULL;
	}
	F->n_recs = j->n;
	F->in_flight = true;
	pthread_mutex_lock(&F->mu);
	F->job = j;
	pthread_cond_broadcast(&F->cv);
	pthread_mutex_unlock(&F->mu);
}

static void take_result(struct sbx_fleet *F, struct result *r)
{
	struct sbx_broker *b = F->b;

	F->in_flight = false;
	F->outcome_unknown = false;
	switch (r->outcome) {
	case OUT_OK:
		for (size_t i = 0; i < F->n_recs; i++)
			if (!F->recs[i].line)
				goto broken;
		if (apply_records(F, F->recs, F->n_recs) < 0 ||
		    b->fleet_seq < F->recs[F->n_recs - 1].seq) {
			/* the log has them; this host could not take them */
			batch_finish(F, finish_down, 0);
			break;
		}
		batch_finish(F, finish_done, sbx_journal_last_seq(b->journal));
		break;
	case OUT_CONFLICT:
		(void)apply_records(F, r->fetched, r->n_fetched);
		give_up_on_old(F);
		requeue(F);
		break;
	case OUT_UNKNOWN:
		F->outcome_unknown = true;
		/* fall through */
	case OUT_DOWN:
		batch_finish(F, finish_down, 0);
		F->outcome_unknown = false;
		break;
	case OUT_BLOCKED:
		block(F, b->fleet_seq + 1, r->why);
		batch_finish(F, finish_down, 0);
		break;
	}
	drop_recs(F);
	return;
broken:
	drop_recs(F);
	batch_finish(F, finish_broken, 0);
}

/* ---- the internal changes ------------------------------------------------------ */

static void own_run(struct sbx_broker *b, struct sbx_change *ch, uint64_t *local_seq)
{
	struct own_change *o = (struct own_change *)ch;
	struct sbx_fleet *F = o->F;
	uint64_t seq = 0;

	*local_seq = 0;
	switch (o->kind) {
	case OWN_EXPIRE:
		(void)sbx_broker_end_due(b, sbx_now(), SIZE_MAX);
		break;
	case OWN_POLICY:
		/* pending until the log's copy comes back (apply_records) */
		(void)sbx_broker_record(b, "policy.loaded", SBX_SYSTEM_ACTOR,
					sbx_broker_policy_fields(b), &seq);
		break;
	case OWN_PUSH:
		(void)sbx_broker_push_revoked_here(b, F->revoked_here, F->n_revoked_here);
		break;
	}
}

static void own_free(struct sbx_change *ch)
{
	struct own_change *o = (struct own_change *)ch;

	switch (o->kind) {
	case OWN_EXPIRE:
		o->F->expire_busy = false;
		/* what is still due (the database away, a full batch) is tried
		 * again shortly, not on every pass */
		o->F->expire_retry_ms = mono_ms() + 100;
		break;
	case OWN_POLICY:
		o->F->policy_busy = false;
		break;
	case OWN_PUSH:
		o->F->push_busy = false;
		break;
	}
	free(o);
}

static void own_submit(struct sbx_fleet *F, enum own_kind kind, bool *busy)
{
	struct own_change *o = calloc(1, sizeof(*o));

	if (!o)
		return;
	o->ch.run = own_run;
	o->ch.free = own_free;
	o->ch.abandoned = true;
	o->F = F;
	o->kind = kind;
	*busy = true;
	sbx_fleet_submit(F->b, &o->ch);
}

void sbx_fleet_policy_changed(struct sbx_broker *b)
{
	struct sbx_fleet *F = b->fleet;

	if (!F)
		return;
	F->policy_pending = true;
	pthread_mutex_lock(&F->mu);
	memcpy(F->policy_sha, b->policy->sha256_hex, sizeof(F->policy_sha));
	pthread_mutex_unlock(&F->mu);
}

void sbx_fleet_note_revoked_here(struct sbx_broker *b, uint32_t id)
{
	struct sbx_fleet *F = b->fleet;

	if (!F)
		return;
	for (size_t i = 0; i < F->n_revoked_here; i++)
		if (F->revoked_here[i] == id)
			return;
	if (F->n_revoked_here == F->cap_revoked_here) {
		size_t cap = F->cap_revoked_here ? F->cap_revoked_here * 2 : 8;
		uint32_t *v = realloc(F->revoked_here, cap * sizeof(*v));

		if (!v)
			return;
		F->revoked_here = v;
		F->cap_revoked_here = cap;
	}
	F->revoked_here[F->n_revoked_here++] = id;
}

bool sbx_fleet_hold_deadlines(const struct sbx_broker *b)
{
	const struct sbx_fleet *F = b->fleet;

	return F && (F->expire_busy || mono_ms() < F->expire_retry_ms ||
		     !sbx_fleet_writable(b, NULL, 0));
}

static void notice_stale(struct sbx_fleet *F)
{
	struct sbx_broker *b = F->b;
	int64_t contact, now = mono_ms();
	char down[700];
	json_t *f;
	uint64_t local;

	pthread_mutex_lock(&F->mu);
	contact = F->contact_ms;
	snprintf(down, sizeof(down), "%s", F->down_why[0] ? F->down_why : "no answer");
	pthread_mutex_unlock(&F->mu);
	if (!F->stale && now - contact > F->max_stale_ms) {
		F->stale = true;
		sbx_warn("fleet: this host's copy of the log is stale: no contact for %lld s (%s)",
			 (long long)((now - contact) / 1000), down);
		f = json_object();
		json_object_set_new(f, "silent_s", json_integer((now - contact) / 1000));
		sbx_rec_str(f, "because", down);
		(void)sbx_broker_record(b, "fleet.stale", SBX_SYSTEM_ACTOR, f, &local);
	} else if (F->stale && now - contact <= F->max_stale_ms) {
		F->stale = false;
		sbx_info("fleet: in contact with the log again (seq %llu)",
			 (unsigned long long)b->fleet_seq);
		f = json_object();
		(void)sbx_broker_record(b, "fleet.current", SBX_SYSTEM_ACTOR, f, &local);
	}
}

void sbx_fleet_tick(struct sbx_broker *b)
{
	struct sbx_fleet *F = b->fleet;

	if (!F)
		return;
	notice_stale(F);
	if (!b->degraded[0] && sbx_fleet_writable(b, NULL, 0)) {
		if (F->policy_pending && !F->policy_busy)
			own_submit(F, OWN_POLICY, &F->policy_busy);
		if (F->n_revoked_here && !F->push_busy)
			own_submit(F, OWN_PUSH, &F->push_busy);
		/* Every host ends what is due; the first to reach the log
		 * does it, the others find it done when they try again. */
		if (!F->expire_busy && mono_ms() >= F->expire_retry_ms &&
		    sbx_state_next_deadline(b->state) <= sbx_now())
			own_submit(F, OWN_EXPIRE, &F->expire_busy);
	}
	if (F->in_flight || !F->queue)
		return;
	if (b->degraded[0] || !sbx_fleet_writable(b, NULL, 0)) {
		while (F->queue) {
			struct sbx_change *ch = F->queue;

			F->queue = ch->next;
			ch->next = NULL;
			run_down(F, ch);
		}
		F->queue_tail = NULL;
		return;
	}
	start_batch(F);
}

void sbx_fleet_on_ready(struct sbx_broker *b)
{
	struct sbx_fleet *F = b->fleet;
	struct sbx_pgrec *in;
	struct result *r;
	uint64_t v;
	size_t n;
	char broken[700];
	uint64_t broken_seq;

	if (!F)
		return;
	while (read(F->efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
	pthread_mutex_lock(&F->mu);
	in = F->in;
	n = F->n_in;
	F->in = NULL;
	F->n_in = 0;
	r = F->result;
	F->result = NULL;
	snprintf(broken, sizeof(broken), "%s", F->broken_why);
	broken_seq = F->broken_seq;
	pthread_cond_broadcast(&F->cv);
	pthread_mutex_unlock(&F->mu);
	if (broken[0])
		block(F, broken_seq, broken);
	if (n)
		(void)apply_records(F, in, n);
	sbx_pgrecs_free(in, n);
	if (r) {
		take_result(F, r);
		sbx_pgrecs_free(r->fetched, r->n_fetched);
		free(r);
	}
	/* The next batch need not wait for the next pass. */
	sbx_fleet_tick(b);
}

int sbx_fleet_fd(const struct sbx_broker *b)
{
	return b->fleet ? b->fleet->efd : -1;
}

/* ---- life ------------------------------------------------------------------------ */

void sbx_fleet_status(const struct sbx_broker *b, struct sbx_fleet_status *st)
{
	const struct sbx_fleet *F = b->fleet;
	char why[700] = "";

	memset(st, 0, sizeof(*st));
	if (!F)
		return;
	st->on = true;
	st->writable = sbx_fleet_writable(b, why, sizeof(why));
	st->stale = F->stale;
	st->applied_seq = b->fleet_seq;
	pthread_mutex_lock((pthread_mutex_t *)&F->mu);
	if (st->writable)
		snprintf(st->text, sizeof(st->text), "database %s, applied seq %llu%s", F->server,
			 (unsigned long long)b->fleet_seq, F->stale ? " (STALE)" : "");
	else
		snprintf(st->text, sizeof(st->text), "applied seq %llu%s; %s",
			 (unsigned long long)b->fleet_seq, F->stale ? " (STALE)" : "", why);
	pthread_mutex_unlock((pthread_mutex_t *)&F->mu);
}

/* The revocations made here that the log has not had yet. */
static void find_revoked_here(struct sbx_broker *b)
{
	size_t n = sbx_state_count(b->state);

	for (size_t i = 0; i < n; i++) {
		const struct sbx_req *r = sbx_state_at(b->state, i);

		if (r && r->revoked_here && r->state == SBX_REQ_ACTIVE)
			sbx_fleet_note_revoked_here(b, r->id);
	}
}

/* The first connection, at start-up: a wrong conninfo or schema is the
 * admin's to fix now; a database that does not answer is not fatal. */
static int first_connection(struct sbx_fleet *F, char *why, size_t whylen)
{
	struct sbx_pgstore *s = NULL;
	char err[600];
	int rc = open_store(F, &s, err, sizeof(err));

	if (rc == -EINVAL) {
		snprintf(why, whylen, "fleet: postgres: %s", err);
		return -1;
	}
	if (rc < 0) {
		sbx_warn("fleet: %s; starting from this host's copy (seq %llu), changes are refused "
			 "until the database answers", err, (unsigned long long)F->b->fleet_seq);
		set_down(F, err);
		return 0;
	}
	rc = sbx_pgstore_check_schema(s, err, sizeof(err));
	if (rc == -ENOENT || rc == -EPROTO) {
		snprintf(why, whylen, "fleet: %s", err);
		sbx_pgstore_close(s);
		return -1;
	}
	if (rc < 0)
		set_down(F, err);
	else
		set_connected(F, s);
	F->first_store = s;
	return 0;
}

static int read_password(struct sbx_fleet *F, const struct sbx_fleet_conf *c, char *why,
			 size_t whylen)
{
	char err[512];
	size_t len;

	if (!c->password_file[0])
		return 0;
	if (sbx_secret_read("fleet.password_file", c->password_file, F->password,
			    sizeof(F->password), &len, err, sizeof(err)) < 0) {
		snprintf(why, whylen, "fleet: %s", err);
		return -1;
	}
	F->has_password = true;
	return 0;
}

int sbx_fleet_start(struct sbx_broker *b, char *why, size_t whylen)
{
	const struct sbx_fleet_conf *c = &b->settings.fleet;
	struct sbx_fleet *F;

	if (b->local_changes) {
		snprintf(why, whylen, "fleet: the journal under %s holds %llu request and grant "
			 "records made without the fleet; a host joins a fleet with an empty state "
			 "directory (move it aside: it stays verifiable with sbxctl audit verify "
			 "--state-dir)", b->policy->broker.state_dir,
			 (unsigned long long)b->local_changes);
		return -1;
	}
	F = calloc(1, sizeof(*F));
	if (!F) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	F->b = b;
	F->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&F->mu, NULL);
	pthread_cond_init(&F->cv, NULL);
	b->fleet = F;
	snprintf(F->conninfo, sizeof(F->conninfo), "%s", c->postgres);
	snprintf(F->host, sizeof(F->host), "%s", b->policy->broker.host);
	F->timeout_ms = (int)c->timeout * 1000;
	F->max_stale_ms = c->max_stale * 1000;
	F->verify_every_ms = c->verify_every * 1000;
	F->contact_ms = mono_ms();
	snprintf(F->down_why, sizeof(F->down_why), "not connected yet");
	if (F->efd < 0) {
		snprintf(why, whylen, "fleet: eventfd: %s", strerror(errno));
		return -1;
	}
	if (read_password(F, c, why, whylen) < 0 || first_connection(F, why, whylen) < 0)
		return -1;
	F->listen_at.seq = b->fleet_seq;
	memcpy(F->listen_at.hash, b->fleet_hash, 65);
	F->published_seq = b->fleet_seq;
	find_revoked_here(b);
	sbx_fleet_policy_changed(b);
	if (pthread_create(&F->appender, NULL, appender_main, F) != 0 ||
	    !(F->appender_up = true) ||
	    pthread_create(&F->listener, NULL, listener_main, F) != 0) {
		snprintf(why, whylen, "fleet: cannot start its threads");
		return -1;
	}
	F->listener_up = true;
	sbx_info("fleet: host %s, log applied up to seq %llu", F->host,
		 (unsigned long long)b->fleet_seq);
	return 0;
}

void sbx_fleet_free(struct sbx_broker *b)
{
	struct sbx_fleet *F = b->fleet;

	if (!F)
		return;
	pthread_mutex_lock(&F->mu);
	F->stopping = true;
	pthread_cond_broadcast(&F->cv);
	pthread_mutex_unlock(&F->mu);
	if (F->appender_up)
		pthread_join(F->appender, NULL);
	if (F->listener_up)
		pthread_join(F->listener, NULL);
	b->fleet = NULL;
	/* What never got its turn is refused. */
	for (struct sbx_change *ch = F->queue, *next; ch; ch = next) {
		next = ch->next;
		if (ch->refuse)
			ch->refuse(b, ch, "the broker is stopping; nothing was changed");
		ch->state = SBX_CHANGE_DONE;
		if (ch->abandoned)
			ch->free(ch);
	}
	for (struct sbx_change *ch = F->batch, *next; ch; ch = next) {
		next = ch->next;
		if (ch->refuse)
			ch->refuse(b, ch, "the broker stopped while recording it: it may have been "
				   "recorded");
		ch->state = SBX_CHANGE_DONE;
		if (ch->abandoned)
			ch->free(ch);
	}
	sbx_pgstore_close(F->first_store);
	if (F->job) {
		sbx_pgrecs_free(F->job->recs, F->job->n);
		free(F->job);
	}
	if (F->result) {
		sbx_pgrecs_free(F->result->fetched, F->result->n_fetched);
		free(F->result);
	}
	sbx_pgrecs_free(F->in, F->n_in);
	drop_recs(F);
	free(F->recs);
	free(F->revoked_here);
	free(F->mismatch);
	if (F->efd >= 0)
		close(F->efd);
	pthread_mutex_destroy(&F->mu);
	pthread_cond_destroy(&F->cv);
	explicit_bzero(F->password, sizeof(F->password));
	free(F);
}
