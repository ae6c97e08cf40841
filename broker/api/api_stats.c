/*
 * GET /v1/stats?days=N: per UTC day of the last N (1..31, default 7),
 * the grants activated per role and the refused logins, counted by the
 * broker from its journal (docs/api.md, "Statistics").  The dashboard's
 * chart draws from it, so a page opened now shows the past days too, not
 * only what its event stream delivered since.
 *
 * What counts: grant.activated records (by their role) and access.checked
 * records whose outcome is "refused" (a login pam_sbx turned away;
 * docs/audit.md, "Outcomes").  Who sees what: the rule of /v1/events and
 * TAIL: an admin or a token with the audit scope counts every record;
 * anyone else only the records they are user or actor of.  Only durable
 * records count, as for /v1/audit.
 *
 * The scan is the one `sbxctl audit query` makes (sbx_journal_lines): the
 * journal's text a buffer at a time, parsing only the lines that hold one
 * of the two events, so memory stays one read buffer plus the counts
 * (at most STATS_ROLES_MAX roles a day), whatever the journal's size.  It
 * runs on a thread of its own, like GET /v1/audit's streams: the
 * response's reader sleeps (the connection suspended) until the thread has
 * the answer; the thread then writes to an eventfd in the API's epoll set,
 * and the loop (sbx_api_stats_ready) resumes the connection: every MHD
 * call stays on the loop thread.
 * The cost is bounded: a scan always counts STATS_DAYS_MAX days and its
 * answer is reused, cut down to the N days asked for, for STATS_FRESH_MS
 * per viewer (so asking for N = 1, 2, 3 ... in turn starts no new scans);
 * at most STATS_JOBS scans run at once, one per person, and people who
 * see only their own records share all but one of them (an auditor's
 * view always finds one free).
 */
#include "config.h"

#include "api.h"
#include "api_int.h"
#include "web.h"

#include "broker.h"
#include "httpguard.h"
#include "journal.h"
#include "journal_read.h"
#include "log.h"
#include "record_filter.h"
#include "sbxio.h"
#include "timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define STATS_DAYS_MAX 31
#define STATS_DAYS_DEFAULT 7
#define STATS_JOBS 2
#define STATS_FRESH_MS 5000
#define STATS_CACHE 32
#define STATS_ROLES_MAX 256
#define STATS_OTHER_ROLE "(other)"

struct role_count {
	char role[SBX_NAME_MAX + 1];
	uint64_t n;
};

struct day {
	struct role_count *roles;
	size_t nroles;
	uint64_t refused;
};

/* One scan: the thread fills it, the loop answers with it. */
struct job {
	pthread_mutex_t mu;
	int refs;                      /* the thread's and the response's */
	bool done;                     /* text (or failed) is final */
	bool suspended;                /* the connection sleeps until done */
	atomic_bool abandoned;         /* the response was freed (the broker stops, or the
					* client went and MHD noticed): the thread may stop.
					* A client leaving a suspended connection is seen
					* only when the count ends, so a count runs to its end */
	struct MHD_Connection *conn;   /* NULL once the response is freed */
	/* what to count */
	char *state_dir;
	char viewer[SBX_NAME_MAX + 1]; /* "" with all */
	bool all;
	int days;                      /* counted: STATS_DAYS_MAX */
	int want;                      /* asked for: the answer's last days */
	int64_t day0;                  /* Unix seconds of the first day's 00:00 UTC */
	uint64_t max_seq;
	/* the answer */
	char *text;
	size_t len, off;
	bool failed;
	bool cached;                   /* the loop put text into the cache, and cut it */
	struct job *prev, *next;       /* the loop's list of live responses */
};

/* Loop thread only. */
static struct job *jobs;
static atomic_int running;
/* The threads' wake-up: an eventfd in the API's epoll set (data.ptr
 * &wake_tag).  It stays open for the process's life, so that a thread
 * that ends after the API stopped never writes to a reused fd number. */
static int wake_fd = -1;
static int wake_ep = -1;
static char wake_tag;

struct cached {
	char viewer[SBX_NAME_MAX + 1];  /* "" for the all-records view */
	int days;
	int64_t day0;
	int64_t at_ms;
	char *text;
};

/* Loop thread only. */
static struct cached cache[STATS_CACHE];

/* ---- counting (the thread) ---------------------------------------------------- */

struct scan {
	struct job *j;
	struct day *days;
	char needle[SBX_NAME_MAX + 3];  /* "\"viewer\"": lines without it are not theirs */
	size_t needle_len;              /* 0: no such text (every candidate line parsed) */
	unsigned long lines;
};

static int add_grant(struct day *d, const char *role)
{
	struct role_count *nr;

	for (size_t i = 0; i < d->nroles; i++) {
		if (strcmp(d->roles[i].role, role) == 0) {
			d->roles[i].n++;
			return 0;
		}
	}
	/* A journal naming ever more roles costs no more than this. */
	if (d->nroles >= STATS_ROLES_MAX)
		role = STATS_OTHER_ROLE;
	for (size_t i = 0; i < d->nroles; i++) {
		if (strcmp(d->roles[i].role, role) == 0) {
			d->roles[i].n++;
			return 0;
		}
	}
	nr = realloc(d->roles, (d->nroles + 1) * sizeof(*nr));
	if (!nr)
		return -1;
	d->roles = nr;
	snprintf(d->roles[d->nroles].role, sizeof(d->roles[d->nroles].role), "%s", role);
	d->roles[d->nroles].n = 1;
	d->nroles++;
	return 0;
}

static bool str_is(const json_t *rec, const char *key, const char *want)
{
	const char *v = json_string_value(json_object_get(rec, key));

	return v && strcmp(v, want) == 0;
}

static int on_line(const char *line, size_t len, void *ctx, char *err, size_t errlen)
{
	struct scan *s = ctx;
	struct job *j = s->j;
	bool grant, check;
	const char *t, *role;
	char perr[128];
	int64_t us, day;
	json_t *rec;
	int ret = 0;

	if ((++s->lines & 4095) == 0 && atomic_load(&j->abandoned))
		return 1;
	if (j->max_seq && sbx_journal_line_seq(line, len) > j->max_seq)
		return 1;
	/* Most lines are neither event: no parsing for them. */
	grant = memmem(line, len, "\"grant.activated\"", 17) != NULL;
	check = !grant && memmem(line, len, "\"access.checked\"", 16) != NULL;
	if (!grant && !check)
		return 0;
	if (!j->all && s->needle_len && !memmem(line, len, s->needle, s->needle_len))
		return 0;
	rec = sbx_journal_line_parse(line, len, perr, sizeof(perr));
	if (!rec)
		return 0;  /* the reader's business (audit verify), not a count */
	if (!str_is(rec, "event", grant ? "grant.activated" : "access.checked"))
		goto out;
	/* The broker's own records (actor "sbx": logins checked, grants
	 * activated) are not a person's called sbx (as in tail.c). */
	if (!j->all && !str_is(rec, "user", j->viewer) &&
	    (strcmp(j->viewer, SBX_SYSTEM_ACTOR) == 0 || !str_is(rec, "actor", j->viewer)))
		goto out;
	t = json_string_value(json_object_get(rec, "time"));
	if (!t || sbx_parse_rfc3339_us(t, &us) < 0)
		goto out;
	day = us / 1000000 - j->day0;
	if (day < 0)
		goto out;
	day /= 86400;
	if (day >= j->days)
		goto out;
	if (grant) {
		role = json_string_value(json_object_get(rec, "role"));
		if (add_grant(&s->days[day], role ? role : "?") < 0) {
			snprintf(err, errlen, "out of memory");
			ret = -1;
		}
	} else {
		const char *o = sbx_rec_outcome(rec);

		if (o && strcmp(o, "refused") == 0)
			s->days[day].refused++;
	}
out:
	json_decref(rec);
	return ret;
}

static void day_name(int64_t secs, char buf[11])
{
	time_t tt = (time_t)secs;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, 11, "%Y-%m-%d", &tm);
}

/* The answer's text, or NULL when out of memory. */
static char *answer_text(const struct job *j, const struct day *days)
{
	char date[11], from[11], to[11], now[SBX_RFC3339_LEN];
	json_t *o, *list;
	char *text = NULL;

	day_name(j->day0, from);
	day_name(j->day0 + (int64_t)(j->days - 1) * 86400, to);
	sbx_format_rfc3339(sbx_now(), now);
	list = json_array();
	o = json_pack("{s:i, s:s, s:s, s:s, s:I, s:s, s:o}", "days", j->days, "from", from,
		      "to", to, "scope", j->all ? "all" : "own", "through_seq",
		      (json_int_t)j->max_seq, "generated_at", now, "per_day", list);
	if (!o || !list)
		goto out;
	for (int i = 0; i < j->days; i++) {
		json_t *g = json_object(), *d;
		uint64_t total = 0;

		day_name(j->day0 + (int64_t)i * 86400, date);
		for (size_t k = 0; g && k < days[i].nroles; k++) {
			json_object_set_new(g, days[i].roles[k].role,
					    json_integer((json_int_t)days[i].roles[k].n));
			total += days[i].roles[k].n;
		}
		d = json_pack("{s:s, s:o, s:I, s:I}", "date", date, "grants", g, "grants_total",
			      (json_int_t)total, "refused_logins", (json_int_t)days[i].refused);
		if (!g || !d || json_array_append_new(list, d) < 0)
			goto out;
	}
	text = json_dumps(o, JSON_COMPACT);
out:
	json_decref(o);
	return text;
}

static void job_unref(struct job *j)
{
	bool last;

	pthread_mutex_lock(&j->mu);
	last = --j->refs == 0;
	pthread_mutex_unlock(&j->mu);
	if (!last)
		return;
	pthread_mutex_destroy(&j->mu);
	free(j->state_dir);
	free(j->text);
	free(j);
}

static bool has_control(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return true;
	}
	return false;
}

static void *job_main(void *arg)
{
	struct job *j = arg;
	struct scan s = { .j = j };
	char err[256] = "";
	char *text = NULL;

	s.days = calloc((size_t)j->days, sizeof(*s.days));
	/* A name JSON writes as it is can rule lines out by their text. */
	if (!strpbrk(j->viewer, "\"\\") && !has_control(j->viewer))
		s.needle_len = (size_t)snprintf(s.needle, sizeof(s.needle), "\"%s\"", j->viewer);
	if (!s.days)
		snprintf(err, sizeof(err), "out of memory");
	else if (sbx_journal_lines(j->state_dir, 0, on_line, &s, err, sizeof(err)) >= 0)
		text = answer_text(j, s.days);
	else if (atomic_load(&j->abandoned))
		err[0] = '\0';
	if (!text && !atomic_load(&j->abandoned))
		sbx_warn("api: /v1/stats could not count: %s", err[0] ? err : "out of memory");
	for (int i = 0; s.days && i < j->days; i++)
		free(s.days[i].roles);
	free(s.days);
	pthread_mutex_lock(&j->mu);
	j->text = text;
	j->len = text ? strlen(text) : 0;
	j->failed = !text;
	j->done = true;
	pthread_mutex_unlock(&j->mu);
	{
		uint64_t one = 1;

		/* Only fails when the counter is full: the loop wakes anyway. */
		(void)!write(wake_fd, &one, sizeof(one));
	}
	atomic_fetch_sub(&running, 1);
	job_unref(j);
	return NULL;
}

/* ---- the cache (the loop) ---------------------------------------------------------- */

static struct cached *cache_find(const char *viewer, int64_t day0)
{
	int64_t now = sbx_mono_ms();

	for (size_t i = 0; i < STATS_CACHE; i++) {
		struct cached *c = &cache[i];

		if (c->text && c->day0 == day0 && now - c->at_ms < STATS_FRESH_MS &&
		    strcmp(c->viewer, viewer) == 0)
			return c;
	}
	return NULL;
}

/* A full answer (STATS_DAYS_MAX days) cut down to its last want days;
 * NULL when out of memory. */
static char *answer_cut(const char *full, int want)
{
	json_t *o = json_loads(full, 0, NULL), *list = json_object_get(o, "per_day"), *first;
	char *text = NULL;

	if (!json_is_array(list))
		goto out;
	while (json_array_size(list) > (size_t)want)
		if (json_array_remove(list, 0) < 0)
			goto out;
	first = json_array_get(list, 0);
	if (json_object_set_new(o, "days", json_integer(want)) < 0 ||
	    (first && json_object_set(o, "from", json_object_get(first, "date")) < 0))
		goto out;
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
	json_decref(o);
	return text;
}

static void cache_put(const char *viewer, int days, int64_t day0, const char *text)
{
	struct cached *slot = &cache[0];
	char *copy = strdup(text);

	if (!copy)
		return;
	for (size_t i = 0; i < STATS_CACHE; i++) {
		struct cached *c = &cache[i];

		if (!c->text || (c->days == days && strcmp(c->viewer, viewer) == 0)) {
			slot = c;
			break;
		}
		if (c->at_ms < slot->at_ms)
			slot = c;
	}
	free(slot->text);
	snprintf(slot->viewer, sizeof(slot->viewer), "%s", viewer);
	slot->days = days;
	slot->day0 = day0;
	slot->at_ms = sbx_mono_ms();
	slot->text = copy;
}

/* ---- the response (the loop) ------------------------------------------------------- */

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct job *j = cls;
	ssize_t n;

	(void)pos;
	pthread_mutex_lock(&j->mu);
	if (!j->done) {
		if (!j->conn) {
			pthread_mutex_unlock(&j->mu);
			return MHD_CONTENT_READER_END_WITH_ERROR;  /* the broker stops */
		}
		/* The thread resumes it when it is done (job_main). */
		j->suspended = true;
		MHD_suspend_connection(j->conn);
		pthread_mutex_unlock(&j->mu);
		return 0;
	}
	pthread_mutex_unlock(&j->mu);
	/* done: the thread no longer touches text. */
	if (j->failed)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (!j->cached) {
		char *cut;

		j->cached = true;
		cache_put(j->viewer, j->days, j->day0, j->text);
		cut = answer_cut(j->text, j->want);
		if (!cut)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		free(j->text);
		j->text = cut;
		j->len = strlen(cut);
	}
	if (j->off == j->len)
		return MHD_CONTENT_READER_END_OF_STREAM;
	n = (ssize_t)(j->len - j->off < max ? j->len - j->off : max);
	memcpy(buf, j->text + j->off, (size_t)n);
	j->off += (size_t)n;
	return n;
}

static void reader_free(void *cls)
{
	struct job *j = cls;

	if (j->prev)
		j->prev->next = j->next;
	else
		jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	pthread_mutex_lock(&j->mu);
	j->conn = NULL;
	pthread_mutex_unlock(&j->mu);
	atomic_store(&j->abandoned, true);
	job_unref(j);
}

void *sbx_api_stats_tag(void)
{
	return &wake_tag;
}

void sbx_api_stats_ready(void)
{
	uint64_t n;

	(void)!read(wake_fd, &n, sizeof(n));
	for (struct job *j = jobs; j; j = j->next) {
		bool wake;

		pthread_mutex_lock(&j->mu);
		wake = j->done && j->suspended && j->conn;
		if (wake)
			j->suspended = false;
		pthread_mutex_unlock(&j->mu);
		if (wake)
			MHD_resume_connection(j->conn);
	}
}

/* The eventfd, in ep.  0, or -1. */
static int wake_setup(int ep)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &wake_tag };

	if (wake_fd < 0)
		wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wake_fd < 0)
		return -1;
	if (wake_ep == ep)
		return 0;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, wake_fd, &ev) < 0)
		return -1;
	wake_ep = ep;
	return 0;
}

void sbx_api_stats_stop(void)
{
	for (struct job *j = jobs; j; j = j->next) {
		pthread_mutex_lock(&j->mu);
		if (j->suspended && j->conn) {
			j->suspended = false;
			MHD_resume_connection(j->conn);
		}
		/* The reader ends the response instead of waiting again. */
		j->conn = NULL;
		pthread_mutex_unlock(&j->mu);
		atomic_store(&j->abandoned, true);
	}
	for (size_t i = 0; i < STATS_CACHE; i++) {
		free(cache[i].text);
		cache[i].text = NULL;
	}
	if (wake_ep >= 0)
		(void)epoll_ctl(wake_ep, EPOLL_CTL_DEL, wake_fd, NULL);
	wake_ep = -1;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, struct MHD_Response *r,
				 enum sbx_guard_state st)
{
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(conn, 200, r);
	MHD_destroy_response(r);
	sbx_httpguard_rearm(conn, st);
	return ret;
}

/* days: absent, or a whole number from 1 to STATS_DAYS_MAX; -1 else. */
static int days_of(struct MHD_Connection *conn)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "days");
	int n = 0;

	if (!v)
		return STATS_DAYS_DEFAULT;
	if (!*v || strlen(v) > 2)
		return -1;
	for (const char *c = v; *c; c++) {
		if (*c < '0' || *c > '9')
			return -1;
		n = n * 10 + (*c - '0');
	}
	return n >= 1 && n <= STATS_DAYS_MAX ? n : -1;
}

static bool person_running(const char *viewer)
{
	for (struct job *j = jobs; j; j = j->next) {
		bool done;

		pthread_mutex_lock(&j->mu);
		done = j->done;
		pthread_mutex_unlock(&j->mu);
		if (!done && strcmp(j->viewer, viewer) == 0)
			return true;
	}
	return false;
}

enum MHD_Result sbx_api_stats_serve(struct sbx_broker *b, int ep, struct MHD_Connection *conn,
				    const char *owner, bool see_all)
{
	const char *viewer = see_all ? "" : owner;
	int days = days_of(conn);
	int64_t today, day0;
	struct cached *c;
	struct job *j = NULL;
	struct MHD_Response *r;
	pthread_attr_t attr;
	pthread_t th;

	if (days < 0)
		return sbx_web_fail(conn, 400, "bad_request", "days is a whole number from 1 to %d",
				    STATS_DAYS_MAX);
	today = sbx_now() / 86400 * 86400;
	day0 = today - (int64_t)(STATS_DAYS_MAX - 1) * 86400;
	c = cache_find(viewer, day0);
	if (c) {
		char *cut = answer_cut(c->text, days);

		if (!cut)
			return sbx_web_fail(conn, 503, "unavailable", "out of memory");
		return send_text(conn, MHD_create_response_from_buffer(strlen(cut), cut,
								       MHD_RESPMEM_MUST_FREE),
				 SBX_GUARD_IDLE);
	}
	if (person_running(see_all ? "" : owner))
		return sbx_web_fail(conn, 429, "rate_limited", "a count for %s is running already: "
				    "try again in a moment", see_all ? "this view" : owner);
	if (wake_setup(ep) < 0)
		return sbx_web_fail(conn, 503, "unavailable", "cannot count now: %s",
				    strerror(errno));
	/* One scan is always left for an auditor's view. */
	if (atomic_fetch_add(&running, 1) >= (see_all ? STATS_JOBS : STATS_JOBS - 1)) {
		atomic_fetch_sub(&running, 1);
		return sbx_web_fail(conn, 503, "unavailable", "%d counts are running already: try "
				    "again in a moment", STATS_JOBS);
	}
	j = calloc(1, sizeof(*j));
	if (!j || !(j->state_dir = strdup(b->policy->broker.state_dir)))
		goto fail;
	pthread_mutex_init(&j->mu, NULL);
	j->refs = 2;
	j->conn = conn;
	snprintf(j->viewer, sizeof(j->viewer), "%s", viewer);
	j->all = see_all;
	j->days = STATS_DAYS_MAX;
	j->want = days;
	j->day0 = day0;
	/* Only what is on disk: nothing that could still be lost. */
	j->max_seq = sbx_journal_durable_seq(b->journal);
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 8 * 1024, reader, j, reader_free);
	if (!r) {
		pthread_mutex_destroy(&j->mu);
		goto fail;
	}
	j->next = jobs;
	if (jobs)
		jobs->prev = j;
	jobs = j;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, job_main, j) != 0) {
		pthread_attr_destroy(&attr);
		/* The response's free drops one reference; this is the other. */
		pthread_mutex_lock(&j->mu);
		j->done = j->failed = true;
		j->refs--;
		pthread_mutex_unlock(&j->mu);
		atomic_fetch_sub(&running, 1);
		MHD_destroy_response(r);
		return sbx_web_fail(conn, 503, "unavailable", "cannot start a count now");
	}
	pthread_attr_destroy(&attr);
	/* The broker, not the client, makes it wait: no deadline until the
	 * answer is there (MHD's idle timeout bounds a client that stops
	 * reading it). */
	return send_text(conn, r, SBX_GUARD_HELD);
fail:
	if (j)
		free(j->state_dir);
	free(j);
	atomic_fetch_sub(&running, 1);
	return sbx_web_fail(conn, 503, "unavailable", "out of memory");
}
