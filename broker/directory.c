/*
 * The directory source: a worker thread reads LDAP, the event loop merges.
 *
 * Threads: the worker owns the LDAP session and touches nothing of the
 * broker's; the loop owns the policy, the journal and everything else in
 * struct sbx_directory marked "loop only".  They share the few fields marked
 * "under mu": the job the worker should do next, the configuration, and
 * the finished results, which the worker announces by writing to an
 * eventfd the loop watches.
 *
 * Times: cache_ttl, max_stale and the retry delay run on the monotonic
 * clock; what is recorded (last success, cached until) is wall clock.
 */
#include "config.h"

#include "directory.h"

#include "fleet.h"

#include "broker.h"

#include "duration.h"
#include "log.h"
#include "policy_directory.h"
#include "sbx_ldap.h"
#include "sbxio.h"
#include "timeutil.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define LOOKUP_QUEUE 32      /* never-seen names waiting for the worker */
#define NAMES_MAX 256        /* never-seen names remembered (asked, or not found) */
#define RETRY_MAX_SECS 30    /* an unreachable directory is retried at least this often */
#define TICK_MS 250

enum job { JOB_REFRESH, JOB_LOOKUP };

/* What the worker hands to the loop. */
struct result {
	enum job job;
	uint64_t generation;              /* of the configuration it used */
	enum sbx_directory_error e;
	struct sbx_directory_data *data;  /* JOB_REFRESH, on success */
	char name[SBX_NAME_MAX + 1];      /* JOB_LOOKUP */
	bool found;
	int64_t took_ms;
	char uri[256];
	char err[1024];
	struct result *next;
};

/* A name the policy does not know that someone asked about. */
struct asked {
	char name[SBX_NAME_MAX + 1];
	int64_t until_ms;  /* the entry means something until then */
	bool pending;      /* true: the worker is looking; false: not in the directory */
};

struct revocation {
	char *user, *role, *group;
	struct revocation *next;
};

struct sbx_directory {
	struct sbx_broker *b;
	int efd;
	pthread_t thread;
	bool thread_running;

	/* under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	bool refresh_now;
	bool conf_changed;
	struct sbx_directory_conf conf;
	uint64_t generation;
	int64_t next_refresh_ms;
	char queue[LOOKUP_QUEUE][SBX_NAME_MAX + 1];
	size_t n_queue;
	struct result *results, *results_last;

	/* worker only */
	struct sbx_ldap *session;

	/* loop only */
	int64_t last_tick_ms;
	bool enabled;                       /* the policy has a directory: section */
	struct sbx_directory_conf lconf;    /* the loop's copy of conf */
	uint64_t lgeneration;
	struct sbx_directory_data *data;    /* the last good read */
	bool merged;                        /* data is in b->policy */
	bool stale;                         /* data was dropped: older than max_stale */
	bool down;                          /* directory.unavailable recorded */
	int64_t last_ok_us, last_ok_ms;     /* wall / monotonic time of the last good read */
	char last_error[1024];
	char last_uri[256];
	struct asked asked[NAMES_MAX];
	char **conflicts;                   /* names already reported as in both */
	size_t n_conflicts;
	struct revocation *revocations;
	char reason[1024];                  /* what sbx_directory_unknown_user returns */
	/* Structs of replaced policies, freed a tick later (see retire()). */
	struct sbx_policy **retired, **retired_before;
	size_t n_retired, n_retired_before;
};

/* ---------------------------------------------------------------------- */
/* Recording */

static json_t *rfc3339_or_null(int64_t us)
{
	char buf[SBX_RFC3339_LEN];

	if (!us)
		return json_null();
	sbx_format_rfc3339(us / 1000000, buf);
	return json_string(buf);
}

static void record(struct sbx_directory *d, const char *event, json_t *f)
{
	uint64_t seq;

	(void)sbx_broker_record(d->b, event, SBX_SYSTEM_ACTOR, f, &seq);
}

static const char *how_name(enum sbx_membership m)
{
	switch (m) {
	case SBX_MEMBER_STANDING: return "standing";
	case SBX_MEMBER_ELIGIBLE: return "eligible";
	case SBX_MEMBER_NONE: break;
	}
	return "none";
}

/* ---------------------------------------------------------------------- */
/* The worker */

static void post(struct sbx_directory *d, struct result *r)
{
	uint64_t one = 1;

	/* under mu */
	if (d->results_last)
		d->results_last->next = r;
	else
		d->results = r;
	d->results_last = r;
	if (write(d->efd, &one, sizeof(one)) != sizeof(one) && errno != EAGAIN)
		sbx_err("directory: cannot wake the event loop: %s", strerror(errno));
}

static void wait_until_ms(struct sbx_directory *d, int64_t until_ms)
{
	struct timespec ts;
	int64_t now = sbx_mono_ms(), delta = until_ms - now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(delta / 1000);
	ts.tv_nsec += (long)(delta % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	(void)pthread_cond_timedwait(&d->cv, &d->mu, &ts);
}

static struct result *do_job(struct sbx_directory *d, enum job job, const char *name, uint64_t gen)
{
	struct result *r = calloc(1, sizeof(*r));
	int64_t t0 = sbx_mono_ms();

	if (!r)
		return NULL;
	r->job = job;
	r->generation = gen;
	if (!d->session) {
		r->e = SBX_DIR_NOMEM;
		snprintf(r->err, sizeof(r->err), "out of memory");
		return r;
	}
	if (job == JOB_REFRESH) {
		r->e = sbx_ldap_fetch(d->session, &r->data, r->err, sizeof(r->err));
	} else {
		snprintf(r->name, sizeof(r->name), "%s", name);
		r->e = sbx_ldap_user_exists(d->session, name, &r->found, r->err, sizeof(r->err));
	}
	r->took_ms = sbx_mono_ms() - t0;
	snprintf(r->uri, sizeof(r->uri), "%s", sbx_ldap_uri(d->session));
	return r;
}

static int64_t retry_secs(const struct sbx_directory_conf *c, bool ok)
{
	if (ok || c->cache_ttl <= RETRY_MAX_SECS)
		return c->cache_ttl;
	return RETRY_MAX_SECS;
}

static void *worker_main(void *arg)
{
	struct sbx_directory *d = arg;

	pthread_mutex_lock(&d->mu);
	while (!d->stop) {
		struct sbx_directory_conf conf;
		char name[SBX_NAME_MAX + 1] = "";
		bool renew, refresh;
		uint64_t gen;
		struct result *r;

		if (!d->refresh_now && !d->n_queue && sbx_mono_ms() < d->next_refresh_ms) {
			wait_until_ms(d, d->next_refresh_ms);
			continue;
		}
		refresh = d->refresh_now || sbx_mono_ms() >= d->next_refresh_ms;
		if (refresh) {
			d->refresh_now = false;
		} else {
			memcpy(name, d->queue[0], sizeof(name));
			memmove(d->queue[0], d->queue[1], (d->n_queue - 1) * sizeof(d->queue[0]));
			d->n_queue--;
		}
		renew = d->conf_changed;
		d->conf_changed = false;
		conf = d->conf;
		gen = d->generation;
		pthread_mutex_unlock(&d->mu);

		if (renew) {
			sbx_ldap_free(d->session);
			d->session = sbx_ldap_new(&conf);
		}
		r = do_job(d, refresh ? JOB_REFRESH : JOB_LOOKUP, name, gen);

		pthread_mutex_lock(&d->mu);
		if (refresh)
			d->next_refresh_ms = sbx_mono_ms() +
					     1000 * retry_secs(&d->conf, r && r->e == SBX_DIR_OK);
		/* A name the directory has: read everything now, so the new
		 * user arrives with their groups and manager. */
		if (r && r->job == JOB_LOOKUP && r->found)
			d->refresh_now = true;
		/* Unreachable: the other names would each wait a timeout too,
		 * and the broker now counts the directory as down, so the
		 * next read (which can say it is back) comes soon. */
		if (r && r->job == JOB_LOOKUP && r->e == SBX_DIR_DOWN) {
			int64_t soon = sbx_mono_ms() + 1000 * retry_secs(&d->conf, false);

			d->n_queue = 0;
			if (d->next_refresh_ms > soon)
				d->next_refresh_ms = soon;
		}
		if (r)
			post(d, r);
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

static int worker_start(struct sbx_directory *d, const struct sbx_directory_conf *c,
			struct sbx_ldap *session, int64_t first_refresh_ms)
{
	pthread_mutex_lock(&d->mu);
	d->stop = false;
	d->conf = *c;
	d->generation++;
	d->conf_changed = session == NULL;
	d->refresh_now = false;
	d->next_refresh_ms = first_refresh_ms;
	d->n_queue = 0;
	d->lgeneration = d->generation;
	pthread_mutex_unlock(&d->mu);
	d->session = session;
	/* The broker blocked its signals before starting any thread: the
	 * worker inherits that mask, so signals keep going to the loop's
	 * signalfd. */
	if (pthread_create(&d->thread, NULL, worker_main, d) != 0) {
		sbx_err("directory: cannot start the worker thread");
		sbx_ldap_free(d->session);
		d->session = NULL;
		return -1;
	}
	d->thread_running = true;
	return 0;
}

static void free_results(struct result *r)
{
	while (r) {
		struct result *next = r->next;

		sbx_directory_data_free(r->data);
		free(r);
		r = next;
	}
}

/* Waits for the job in hand, which the timeout bounds. */
static void worker_stop(struct sbx_directory *d)
{
	struct result *left;

	if (!d->thread_running)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop = true;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thread, NULL);
	d->thread_running = false;
	sbx_ldap_free(d->session);
	d->session = NULL;
	pthread_mutex_lock(&d->mu);
	left = d->results;
	d->results = d->results_last = NULL;
	d->n_queue = 0;
	pthread_mutex_unlock(&d->mu);
	free_results(left);
}

/* ---------------------------------------------------------------------- */
/* Merging on the loop */

/* Other features notice a new policy by its address (the group table
 * rebuilds when b->policy differs from the one it saw last pass).  A
 * replaced policy's struct therefore stays allocated until a later pass,
 * so the policy that replaces it within a pass never gets its address. */
static void retire(struct sbx_policy *shell, void *ctx)
{
	struct sbx_directory *d = ctx;
	struct sbx_policy **v = realloc(d->retired, (d->n_retired + 1) * sizeof(*v));

	if (!v) {
		free(shell); /* at worst a missed rebuild, never a leak */
		return;
	}
	d->retired = v;
	v[d->n_retired++] = shell;
}

static void bury(struct sbx_directory *d)
{
	for (size_t i = 0; i < d->n_retired_before; i++)
		free(d->retired_before[i]);
	free(d->retired_before);
	d->retired_before = d->retired;
	d->n_retired_before = d->n_retired;
	d->retired = NULL;
	d->n_retired = 0;
}

static void on_conflict(const char *kind, const char *name, void *ctx)
{
	struct sbx_directory *d = ctx;
	char **v;
	json_t *f;

	for (size_t i = 0; i < d->n_conflicts; i++)
		if (strcmp(d->conflicts[i], name) == 0)
			return;
	v = realloc(d->conflicts, (d->n_conflicts + 1) * sizeof(*v));
	if (v) {
		d->conflicts = v;
		v[d->n_conflicts] = strdup(name);
		if (v[d->n_conflicts])
			d->n_conflicts++;
	}
	sbx_err("directory: %s '%s' is defined both in %s and in the directory; using the "
		"policy file's and ignoring the directory's (remove one of them)", kind, name,
		d->b->config_path ? d->b->config_path : "the policy file");
	f = json_object();
	sbx_rec_str(f, "kind", kind);
	sbx_rec_str(f, "name", name);
	sbx_rec_str(f, "kept", "policy file");
	record(d, "directory.conflict", f);
}

static void clear_conflicts(struct sbx_directory *d)
{
	for (size_t i = 0; i < d->n_conflicts; i++)
		free(d->conflicts[i]);
	free(d->conflicts);
	d->conflicts = NULL;
	d->n_conflicts = 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void on_drift(const char *user, const struct sbx_role *r, enum sbx_membership before,
		     enum sbx_membership after, const char *group, void *ctx)
{
	struct sbx_directory *d = ctx;
	json_t *f = json_object();

	sbx_rec_str(f, "user", user);
	sbx_rec_str(f, "role", r->name);
	json_object_set_new(f, "group", group ? json_string(group) : json_null());
	sbx_rec_str(f, "before", how_name(before));
	sbx_rec_str(f, "after", how_name(after));
	sbx_rec_str(f, "source", "directory");
	record(d, "drift.membership", f);
	sbx_info("directory: %s is now %s on %s (was %s%s%s)", user, how_name(after), r->name,
		 how_name(before), group ? ", group " : "", group ? group : "");
	if (after == SBX_MEMBER_NONE &&
	    r->revoke_on_ineligible) {
		struct revocation *rv = calloc(1, sizeof(*rv));

		if (!rv)
			return;
		rv->user = strdup(user);
		rv->role = strdup(r->name);
		rv->group = dup_or_null(group);
		if (!rv->user || !rv->role || (group && !rv->group)) {
			free(rv->user);
			free(rv->role);
			free(rv->group);
			free(rv);
			return;
		}
		rv->next = d->revocations;
		d->revocations = rv;
	}
}

static void free_revocations(struct revocation *rv)
{
	while (rv) {
		struct revocation *next = rv->next;

		free(rv->user);
		free(rv->role);
		free(rv->group);
		free(rv);
		rv = next;
	}
}

/* End the grants (and pending requests) of the people in rv. */
static void end_ineligible(struct sbx_broker *b, const struct revocation *rv)
{
	for (; rv; rv = rv->next) {
		struct sbx_req *open[SBX_OPEN_MAX];
		size_t n = sbx_state_user_open(b->state, rv->user, open, SBX_OPEN_MAX);
		char reason[512], why[512];
		uint64_t seq;

		snprintf(reason, sizeof(reason),
			 "%s is no longer eligible for %s%s%s (revoke_on_ineligible)", rv->user,
			 rv->role, rv->group ? ": removed from directory group " : "",
			 rv->group ? rv->group : "");
		for (size_t i = 0; i < n; i++) {
			const struct sbx_req *r = open[i];
			bool deny = r->state == SBX_REQ_PENDING;
			json_t *extra;

			if (strcmp(r->role, rv->role) != 0 || (!deny && !sbx_req_live(r, sbx_now())))
				continue;
			extra = json_object();
			sbx_rec_str(extra, "cause", "revoke_on_ineligible");
			if (rv->group)
				sbx_rec_str(extra, "group", rv->group);
			if (sbx_broker_end(b, r->id, deny, SBX_SYSTEM_ACTOR, NULL, true, reason, extra, &seq,
					   why, sizeof(why)) < 0)
				sbx_err("directory: could not end request %u of %s: %s", r->id,
					rv->user, why);
			else if (!b->fleet)
				sbx_info("directory: %s request %u: %s", deny ? "denied" : "revoked",
					 r->id, reason);
		}
	}
}

/* In a fleet the revocations are a change like any other (fleet.h). */
struct ineligible_change {
	struct sbx_change ch;
	struct revocation *list;
};

static void ineligible_run(struct sbx_broker *b, struct sbx_change *ch, uint64_t *local_seq)
{
	*local_seq = 0;
	end_ineligible(b, ((struct ineligible_change *)ch)->list);
}

static void ineligible_free(struct sbx_change *ch)
{
	free_revocations(((struct ineligible_change *)ch)->list);
	free(ch);
}

/* revoke_on_ineligible: end the grants (and pending requests) of people
 * the last refresh took out of the role. */
static void run_revocations(struct sbx_directory *d)
{
	struct sbx_broker *b = d->b;
	struct revocation *rv = d->revocations;
	struct ineligible_change *ic;

	d->revocations = NULL;
	if (!rv)
		return;
	if (!b->fleet) {
		end_ineligible(b, rv);
		free_revocations(rv);
		return;
	}
	ic = calloc(1, sizeof(*ic));
	if (!ic) {
		sbx_err("directory: out of memory: revoke_on_ineligible waits for the next refresh");
		free_revocations(rv);
		return;
	}
	ic->ch.run = ineligible_run;
	ic->ch.free = ineligible_free;
	ic->ch.abandoned = true;
	ic->list = rv;
	sbx_fleet_submit(b, &ic->ch);
}

static void record_loaded(struct sbx_directory *d, const struct sbx_directory_data *data, int64_t took_ms)
{
	const struct sbx_policy *p = d->b->policy;
	char fp[17];
	json_t *f = json_object();

	snprintf(fp, sizeof(fp), "%016" PRIx64, data->fingerprint);
	sbx_rec_str(f, "uri", d->last_uri);
	json_object_set_new(f, "users", json_integer((json_int_t)p->n_dir_users));
	json_object_set_new(f, "groups", json_integer((json_int_t)p->n_dir_groups));
	if (data->skipped_users || data->skipped_groups) {
		json_object_set_new(f, "skipped_users", json_integer((json_int_t)data->skipped_users));
		json_object_set_new(f, "skipped_groups",
				    json_integer((json_int_t)data->skipped_groups));
	}
	sbx_rec_str(f, "fingerprint", fp);
	json_object_set_new(f, "took_ms", json_integer(took_ms));
	record(d, "directory.loaded", f);
}

/* Put fresh into the policy (owning it from now on).  Drift is reported
 * against the last good read, also when that was dropped as stale. */
static void apply(struct sbx_directory *d, struct sbx_directory_data *fresh, int64_t took_ms)
{
	struct sbx_broker *b = d->b;
	struct sbx_dir_merge_cb cb = { on_conflict, NULL, d, retire };
	const struct sbx_dir_merge_cb quiet = { NULL, NULL, d, retire };
	int64_t t0 = sbx_mono_ms();

	if (d->data && !d->merged && sbx_policy_merge_directory(&b->policy, d->data, &quiet) == 0)
		d->merged = true;
	if (d->data && d->merged)
		cb.drift = on_drift;
	if (sbx_policy_merge_directory(&b->policy, fresh, &cb) < 0) {
		sbx_err("directory: out of memory merging %zu users and %zu groups; keeping the "
			"previous answers", fresh->n_users, fresh->n_groups);
		sbx_directory_data_free(fresh);
		return;
	}
	sbx_directory_data_free(d->data);
	d->data = fresh;
	d->merged = true;
	d->stale = false;
	sbx_debug("directory: merged %zu users and %zu groups in %lld ms", fresh->n_users,
		  fresh->n_groups, (long long)(sbx_mono_ms() - t0));
	record_loaded(d, fresh, took_ms);
	run_revocations(d);
}

/* The directory part of the policy goes: every directory user is unknown
 * from now on, until the directory answers again. */
static void drop(struct sbx_directory *d)
{
	const struct sbx_dir_merge_cb quiet = { NULL, NULL, d, retire };

	if (!d->merged)
		return;
	if (sbx_policy_merge_directory(&d->b->policy, NULL, &quiet) < 0) {
		sbx_err("directory: out of memory dropping stale answers");
		return;
	}
	d->merged = false;
}

/* warn: log it (not when the caller logs a fatal error instead). */
static void note_failure(struct sbx_directory *d, const struct result *r, bool warn)
{
	char until[SBX_RFC3339_LEN];
	json_t *f;

	snprintf(d->last_error, sizeof(d->last_error), "%s", r->err);
	snprintf(d->last_uri, sizeof(d->last_uri), "%s", r->uri);
	if (d->down) {
		sbx_debug("directory: still unavailable: %s", r->err);
		return;
	}
	d->down = true;
	f = json_object();
	sbx_rec_str(f, "uri", r->uri);
	sbx_rec_str(f, "error", r->err);
	json_object_set_new(f, "last_success", rfc3339_or_null(d->last_ok_us));
	json_object_set_new(f, "cached_until",
			    d->merged ? rfc3339_or_null(d->last_ok_us +
							d->lconf.max_stale * 1000000)
				  : json_null());
	record(d, "directory.unavailable", f);
	if (!warn)
		return;
	if (d->merged) {
		sbx_format_rfc3339(d->last_ok_us / 1000000 + d->lconf.max_stale, until);
		sbx_warn("directory unavailable: %s; deciding with the answers of %zu directory "
			 "users until %s (max_stale)", r->err, d->data ? d->data->n_users : 0,
			 until);
	} else {
		sbx_warn("directory unavailable: %s; users only the directory knows are refused "
			 "until it answers", r->err);
	}
}

static void note_success(struct sbx_directory *d, const struct result *r)
{
	json_t *f;
	int64_t now_us = sbx_now_us();

	snprintf(d->last_uri, sizeof(d->last_uri), "%s", r->uri);
	if (d->down) {
		f = json_object();
		sbx_rec_str(f, "uri", r->uri);
		json_object_set_new(f, "down_for_s",
				    json_integer(d->last_ok_us ? (now_us - d->last_ok_us) / 1000000 : 0));
		sbx_rec_str(f, "last_error", d->last_error);
		record(d, "directory.recovered", f);
		sbx_info("directory recovered: %s answers again", r->uri);
		d->down = false;
	}
	d->last_error[0] = '\0';
	d->last_ok_us = now_us;
	d->last_ok_ms = sbx_mono_ms();
}

static struct asked *find_asked(struct sbx_directory *d, const char *name)
{
	for (size_t i = 0; i < NAMES_MAX; i++)
		if (d->asked[i].name[0] && strcmp(d->asked[i].name, name) == 0)
			return &d->asked[i];
	return NULL;
}

static void on_result(struct sbx_directory *d, struct result *r)
{
	struct asked *a;

	if (r->generation != d->lgeneration)
		return; /* read with a configuration that is gone */
	if (r->job == JOB_LOOKUP) {
		a = find_asked(d, r->name);
		if (r->e != SBX_DIR_OK) {
			if (a)
				a->name[0] = '\0';
			note_failure(d, r, true);
			return;
		}
		/* Found: the worker reads everything next; until that lands,
		 * the name stays "being looked up". */
		if (a) {
			a->pending = r->found;
			a->until_ms = sbx_mono_ms() +
				      1000 * (r->found ? 2 * d->lconf.timeout * (int64_t)d->lconf.n_uri + 1
						       : d->lconf.cache_ttl);
		}
		sbx_debug("directory: looked up %s: %s", r->name, r->found ? "found" : "not there");
		return;
	}
	if (r->e != SBX_DIR_OK) {
		note_failure(d, r, true);
		return;
	}
	note_success(d, r);
	sbx_debug("directory: read %zu users and %zu groups from %s in %lld ms%s",
		  r->data->n_users, r->data->n_groups, r->uri, (long long)r->took_ms,
		  d->merged && d->data && d->data->fingerprint == r->data->fingerprint
			  ? " (unchanged)" : "");
	if (d->merged && d->data && d->data->fingerprint == r->data->fingerprint)
		return;
	apply(d, r->data, r->took_ms);
	r->data = NULL;
}

int sbx_directory_fd(const struct sbx_broker *b)
{
	return b->directory ? b->directory->efd : -1;
}

void sbx_directory_on_ready(struct sbx_broker *b)
{
	struct sbx_directory *d = b->directory;
	struct result *list;
	uint64_t n;

	if (!d)
		return;
	if (read(d->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		sbx_debug("directory: eventfd: %s", strerror(errno));
	pthread_mutex_lock(&d->mu);
	list = d->results;
	d->results = d->results_last = NULL;
	pthread_mutex_unlock(&d->mu);
	for (struct result *r = list; r; r = r->next)
		on_result(d, r);
	free_results(list);
}

/* max_stale: cached answers do not outlive it. */
void sbx_directory_tick(struct sbx_broker *b)
{
	struct sbx_directory *d = b->directory;
	char last[SBX_RFC3339_LEN], max[32];
	json_t *f;

	if (!d || sbx_mono_ms() - d->last_tick_ms < TICK_MS)
		return;
	d->last_tick_ms = sbx_mono_ms();
	bury(d);
	if (!d->enabled || !d->merged || !d->last_ok_ms ||
	    sbx_mono_ms() - d->last_ok_ms <= 1000 * d->lconf.max_stale)
		return;
	drop(d);
	if (d->merged)
		return;
	d->stale = true;
	sbx_format_rfc3339(d->last_ok_us / 1000000, last);
	sbx_duration_format(d->lconf.max_stale, max, sizeof(max));
	sbx_warn("directory: no good answer since %s (max_stale %s): dropping the cached directory "
		 "users; they are refused until the directory answers", last, max);
	f = json_object();
	sbx_rec_str(f, "last_success", last);
	sbx_rec_str(f, "max_stale", max);
	json_object_set_new(f, "users_dropped",
			    json_integer(d->data ? (json_int_t)d->data->n_users : 0));
	record(d, "directory.stale", f);
}

/* ---------------------------------------------------------------------- */
/* Names nobody has asked about before */

static void ask_worker(struct sbx_directory *d, const char *name)
{
	struct asked *a = find_asked(d, name), *oldest = &d->asked[0];
	int64_t now = sbx_mono_ms();
	bool queued = false;

	if (!a) {
		for (size_t i = 0; i < NAMES_MAX && !a; i++)
			if (!d->asked[i].name[0] || d->asked[i].until_ms < now)
				a = &d->asked[i];
		for (size_t i = 1; i < NAMES_MAX && !a; i++)
			if (d->asked[i].until_ms < oldest->until_ms)
				oldest = &d->asked[i];
		if (!a)
			a = oldest;
	}
	pthread_mutex_lock(&d->mu);
	if (d->n_queue < LOOKUP_QUEUE) {
		snprintf(d->queue[d->n_queue++], sizeof(d->queue[0]), "%s", name);
		pthread_cond_signal(&d->cv);
		queued = true;
	}
	pthread_mutex_unlock(&d->mu);
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->pending = true;
	/* Long enough for the lookup to come back; if it is lost (the queue
	 * was full), the next question asks again. */
	a->until_ms = now + (queued ? 1000 * (2 * d->lconf.timeout * (int64_t)d->lconf.n_uri + 1)
				    : 0);
}

const char *sbx_directory_unknown_user(struct sbx_broker *b, const char *user)
{
	struct sbx_directory *d = b ? b->directory : NULL;
	const char *host;
	struct asked *a;

	if (!d || !d->enabled || !user)
		return NULL;
	host = b->policy->broker.host;
	if (d->down || d->stale) {
		snprintf(d->reason, sizeof(d->reason),
			 "%s is not known to sbx on %s, and the directory is unreachable, so sbx "
			 "cannot look them up (%.500s); try again once it is back", user, host,
			 d->last_error[0] ? d->last_error : "no answer");
		return d->reason;
	}
	if (!d->last_ok_us) {
		snprintf(d->reason, sizeof(d->reason),
			 "%s is not known to sbx on %s: the directory has not answered yet; try "
			 "again in a moment", user, host);
		return d->reason;
	}
	a = find_asked(d, user);
	if (a && a->until_ms >= sbx_mono_ms() && !a->pending) {
		snprintf(d->reason, sizeof(d->reason),
			 "%s is not known to sbx on %s (not in the policy file nor in the directory)",
			 user, host);
		return d->reason;
	}
	if (!a || a->until_ms < sbx_mono_ms())
		ask_worker(d, user);
	snprintf(d->reason, sizeof(d->reason),
		 "%s is not known to sbx on %s yet: looking them up in the directory now; try "
		 "again in a moment", user, host);
	return d->reason;
}

enum sbx_directory_state sbx_directory_status(struct sbx_broker *b, char *why, size_t whylen)
{
	struct sbx_directory *d = b ? b->directory : NULL;

	if (why && whylen)
		why[0] = '\0';
	if (!d || !d->enabled)
		return SBX_DIRECTORY_NONE;
	if (why && whylen)
		snprintf(why, whylen, "%s", d->last_error);
	if (d->stale)
		return SBX_DIRECTORY_STALE;
	if (d->down || !d->last_ok_us)
		return SBX_DIRECTORY_DOWN;
	return SBX_DIRECTORY_UP;
}

/* ---------------------------------------------------------------------- */
/* Set-up, reloads, teardown */

static bool conf_equal(const struct sbx_directory_conf *a, const struct sbx_directory_conf *b)
{
	if (a->n_uri != b->n_uri || a->start_tls != b->start_tls || a->timeout != b->timeout ||
	    a->cache_ttl != b->cache_ttl || a->max_stale != b->max_stale)
		return false;
	for (size_t i = 0; i < a->n_uri; i++)
		if (strcmp(a->uri[i], b->uri[i]) != 0)
			return false;
#define SAME(f) (strcmp(a->f, b->f) == 0)
	return SAME(base) && SAME(bind_dn) && SAME(bind_password_file) && SAME(tls_ca_file) &&
	       SAME(user_base) && SAME(user_filter) && SAME(group_base) && SAME(group_filter) &&
	       SAME(attr_uid) && SAME(attr_mail) && SAME(attr_manager) && SAME(attr_slack_id) &&
	       SAME(attr_group_name) && SAME(attr_member) && SAME(attr_member_uid);
#undef SAME
}

static void forget(struct sbx_directory *d)
{
	sbx_directory_data_free(d->data);
	d->data = NULL;
	d->merged = d->stale = d->down = false;
	d->last_ok_us = d->last_ok_ms = 0;
	d->last_error[0] = '\0';
	memset(d->asked, 0, sizeof(d->asked));
	clear_conflicts(d);
}

/* SIGHUP: the policy is the file's again.  Put the directory's users and
 * groups back at once, and follow a changed directory: section. */
void sbx_directory_on_reload(struct sbx_broker *b)
{
	struct sbx_directory *d = b->directory;
	const struct sbx_directory_conf *c = &b->settings.directory;
	const struct sbx_dir_merge_cb cb = { on_conflict, NULL, d, retire };

	if (!d)
		return;
	clear_conflicts(d);
	if (!c->enabled) {
		if (d->enabled)
			sbx_info("directory: the policy has no directory: section any more");
		worker_stop(d);
		forget(d);
		d->enabled = false;
		return;
	}
	d->merged = false;
	if (!d->enabled) {
		d->enabled = true;
		d->lconf = *c;
		(void)worker_start(d, c, NULL, sbx_mono_ms());
		return;
	}
	if (!conf_equal(&d->lconf, c)) {
		sbx_info("directory: the directory: section changed; reading the directory again");
		pthread_mutex_lock(&d->mu);
		d->conf = *c;
		d->generation++;
		d->lgeneration = d->generation;
		d->conf_changed = true;
		d->refresh_now = true;
		d->n_queue = 0;
		pthread_cond_signal(&d->cv);
		pthread_mutex_unlock(&d->mu);
		memset(d->asked, 0, sizeof(d->asked));
	}
	d->lconf = *c;
	if (d->data && !d->stale) {
		if (sbx_policy_merge_directory(&b->policy, d->data, &cb) == 0)
			d->merged = true;
		else
			sbx_err("directory: out of memory merging the directory into the new policy");
	}
}

static struct sbx_directory *dir_new(struct sbx_broker *b)
{
	struct sbx_directory *d = calloc(1, sizeof(*d));
	pthread_condattr_t ca;

	if (!d)
		return NULL;
	d->b = b;
	d->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->efd < 0) {
		free(d);
		return NULL;
	}
	pthread_mutex_init(&d->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cv, &ca);
	pthread_condattr_destroy(&ca);
	return d;
}

static void dir_delete(struct sbx_directory *d)
{
	worker_stop(d);
	forget(d);
	bury(d);
	bury(d);
	while (d->revocations) {
		struct revocation *next = d->revocations->next;

		free(d->revocations->user);
		free(d->revocations->role);
		free(d->revocations->group);
		free(d->revocations);
		d->revocations = next;
	}
	close(d->efd);
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

/* The first read, before the loop runs: the broker starts with the
 * directory's users, and a refusal stops it with a clear message.  (The
 * loop's copy of the configuration: merging replaces b->policy.) */
static int first_read(struct sbx_directory *d)
{
	const struct sbx_directory_conf *c = &d->lconf;
	struct sbx_ldap *s = sbx_ldap_new(c);
	struct result r = { .job = JOB_REFRESH };
	int64_t t0 = sbx_mono_ms();

	if (!s) {
		sbx_err("directory: out of memory");
		return -1;
	}
	r.e = sbx_ldap_fetch(s, &r.data, r.err, sizeof(r.err));
	r.took_ms = sbx_mono_ms() - t0;
	snprintf(r.uri, sizeof(r.uri), "%s", sbx_ldap_uri(s));
	if (r.e == SBX_DIR_AUTH || r.e == SBX_DIR_CONFIG) {
		note_failure(d, &r, false);
		sbx_err("directory: %s", r.err);
		sbx_err("not starting: the directory refused sbx (fix the directory: section of %s; "
			"`sbxctl policy check --online %s` tries it)", d->b->config_path,
			d->b->config_path);
		sbx_ldap_free(s);
		return -1;
	}
	if (r.e == SBX_DIR_OK) {
		note_success(d, &r);
		sbx_info("directory: read %zu users and %zu groups from %s in %lld ms",
			 r.data->n_users, r.data->n_groups, r.uri, (long long)r.took_ms);
		apply(d, r.data, r.took_ms);
	} else {
		note_failure(d, &r, true);
	}
	return worker_start(d, c, s, sbx_mono_ms() + 1000 * retry_secs(c, r.e == SBX_DIR_OK));
}

int sbx_directory_start(struct sbx_broker *b)
{
	const struct sbx_directory_conf *c = &b->settings.directory;
	struct sbx_directory *d = dir_new(b);

	if (!d) {
		sbx_err("directory: cannot set up: %s", strerror(errno));
		return -ENOMEM;
	}
	/* Set up even without a directory: section, so that a reload can
	 * add one. */
	b->directory = d;
	if (!c->enabled)
		return 0;
	d->enabled = true;
	d->lconf = *c;
	return first_read(d);
}

void sbx_directory_free(struct sbx_broker *b)
{
	struct sbx_directory *d = b->directory;

	if (!d)
		return;
	b->directory = NULL;
	dir_delete(d);
}
