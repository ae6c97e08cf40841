#include "config.h"

#include "sessions.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "broker.h"
#include "dispatch.h"
#include "sbxio.h"
#include "timeutil.h"
#include "text.h"

/* Processes remembered per ended session (the leader and what is below). */
#define MAX_PROCS 512
/* Processes looked at in one /proc scan. */
#define MAX_SCAN 65536

enum sess_state { SESS_OPEN = 0, SESS_ENDING };

struct proc_id {
	pid_t pid;
	uint64_t start; /* clock ticks since boot: tells a recycled pid apart */
};

struct session {
	uint32_t id;
	enum sess_state state;
	char *user;
	char *service;   /* NULL when not given */
	char *tty;
	char *rhost;
	char *role;      /* role the login rested on, NULL if none */
	char *via;       /* "standing" or "grant" */
	uint32_t grant;  /* 0: not a grant */
	struct proc_id leader;
	int64_t opened_at;   /* seconds */
	/* ENDING: SIGHUP went to procs; whatever of them is left at kill_at_us
	 * gets SIGKILL. */
	int64_t kill_at_us;
	bool killed;
	struct proc_id *procs;
	size_t n_procs;
};

struct sbx_sessions {
	struct session **v; /* pointers stay put while the array grows */
	size_t n, cap;
	uint32_t next_id;
	int64_t last_sweep_ms;
};

static void session_free(struct session *s)
{
	if (!s)
		return;
	free(s->user);
	free(s->service);
	free(s->tty);
	free(s->rhost);
	free(s->role);
	free(s->via);
	free(s->procs);
	free(s);
}

static struct session *find_id(const struct sbx_sessions *t, uint32_t id, size_t *at)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->v[i]->id == id) {
			if (at)
				*at = i;
			return t->v[i];
		}
	}
	return NULL;
}

static void remove_id(struct sbx_sessions *t, uint32_t id)
{
	size_t i;

	if (!find_id(t, id, &i))
		return;
	session_free(t->v[i]);
	t->v[i] = t->v[--t->n];
}

/* ---- processes ------------------------------------------------------------ */

/* Fields of /proc/PID/stat after the command name, which may itself hold
 * spaces and parentheses: everything after the last ')'. */
static int read_stat(pid_t pid, char *state, pid_t *ppid, uint64_t *start)
{
	char path[64], buf[1024], *p, *save = NULL;
	unsigned long long st = 0;
	long pp = 0;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	/* field 3 is the state, 4 the parent, 22 the start time */
	field = 3;
	for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
		if (field == 3)
			*state = tok[0];
		else if (field == 4)
			pp = strtol(tok, NULL, 10);
		else if (field == 22) {
			st = strtoull(tok, NULL, 10);
			break;
		}
	}
	if (field != 22)
		return -1;
	*ppid = (pid_t)pp;
	*start = st;
	return 0;
}

int sbx_proc_start_time(pid_t pid, uint64_t *start)
{
	char state = 0;
	pid_t ppid;

	if (pid <= 0 || read_stat(pid, &state, &ppid, start) < 0)
		return -1;
	/* A zombie has ended; only its parent's wait is missing. */
	if (state == 'Z' || state == 'X')
		return -1;
	return 0;
}

static bool proc_alive(const struct proc_id *p)
{
	uint64_t start;

	return sbx_proc_start_time(p->pid, &start) == 0 && start == p->start;
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

/* Signal p only if it is still the process we mean: a pidfd pins the
 * process, then the start time says it is the one we recorded. */
static int signal_proc(const struct proc_id *p, int sig)
{
	int fd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	int ret = -1;

	if (fd < 0) {
		if (errno != ENOSYS)
			return -1;
		/* Old kernel: the start-time check just before kill() is the
		 * best we can do. */
		if (!proc_alive(p))
			return -1;
		return kill(p->pid, sig);
	}
	if (proc_alive(p))
		ret = (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
	close(fd);
	return ret;
}

struct scan_entry {
	pid_t pid, ppid;
	uint64_t start;
};

/* Every live process's pid, parent and start time. */
static size_t scan_procs(struct scan_entry **out)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	struct scan_entry *v = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL && n < MAX_SCAN) {
		char *end = NULL, state = 0;
		long pid = strtol(de->d_name, &end, 10);
		struct scan_entry e;

		if (!end || *end || pid <= 0)
			continue;
		if (read_stat((pid_t)pid, &state, &e.ppid, &e.start) < 0 || state == 'Z')
			continue;
		e.pid = (pid_t)pid;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 512;
			struct scan_entry *nv = realloc(v, ncap * sizeof(*nv));

			if (!nv)
				break;
			v = nv;
			cap = ncap;
		}
		v[n++] = e;
	}
	closedir(d);
	*out = v;
	return n;
}

static bool have_pid(const struct proc_id *v, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].pid == pid)
			return true;
	return false;
}

/* roots[0..n_roots) and every process below them, breadth first: parents
 * come before their children.  Only roots still alive are included. */
static size_t proc_tree(const struct proc_id *roots, size_t n_roots, struct proc_id *out,
			size_t max)
{
	struct scan_entry *all = NULL;
	size_t n_all = scan_procs(&all), n = 0;

	for (size_t i = 0; i < n_roots && n < max; i++)
		if (proc_alive(&roots[i]) && !have_pid(out, n, roots[i].pid))
			out[n++] = roots[i];
	for (size_t head = 0; head < n && n < max; head++) {
		for (size_t i = 0; i < n_all && n < max; i++) {
			if (all[i].ppid != out[head].pid || have_pid(out, n, all[i].pid))
				continue;
			out[n++] = (struct proc_id){ .pid = all[i].pid, .start = all[i].start };
		}
	}
	free(all);
	return n;
}

/* Does the process run as uid (real or effective) with gid among its
 * groups?  /proc/PID/status, read whole: a Groups line can be long. */
static bool holds_group(pid_t pid, uid_t uid, gid_t gid)
{
	char path[64], *buf = NULL, *line, *save = NULL;
	bool uid_ok = false, gid_ok = false;
	size_t cap = 16384, n = 0;
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	buf = malloc(cap);
	while (buf && (r = read(fd, buf + n, cap - n - 1)) > 0) {
		n += (size_t)r;
		if (n + 1 == cap && cap < (1u << 20)) {
			char *nb = realloc(buf, cap * 2);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
	}
	close(fd);
	if (!buf)
		return false;
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long real = 0, eff = 0;

		if (sscanf(line, "Uid: %lu %lu", &real, &eff) == 2) {
			uid_ok = real == uid || eff == uid;
		} else if (strncmp(line, "Groups:", 7) == 0) {
			for (char *g = line + 7, *end; *g; g = end) {
				unsigned long v = strtoul(g, &end, 10);

				if (end == g)
					break;
				if (v == gid)
					gid_ok = true;
			}
		}
	}
	free(buf);
	return uid_ok && gid_ok;
}

/* Live processes of uid whose credentials hold gid. */
static size_t group_holders(uid_t uid, gid_t gid, struct proc_id *out, size_t max)
{
	struct scan_entry *all = NULL;
	size_t n_all = scan_procs(&all), n = 0;

	for (size_t i = 0; i < n_all && n < max; i++)
		if (holds_group(all[i].pid, uid, gid))
			out[n++] = (struct proc_id){ .pid = all[i].pid, .start = all[i].start };
	free(all);
	return n;
}

/* Children first, so that a shell hears the hangup before the sshd
 * above it notices and tears the connection down. */
static size_t signal_all(const struct proc_id *v, size_t n, int sig)
{
	size_t sent = 0;

	for (size_t i = n; i-- > 0;)
		if (signal_proc(&v[i], sig) == 0)
			sent++;
	return sent;
}

/* ---- records and the table ---------------------------------------------- */

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static char *jdup(const json_t *o, const char *key)
{
	const char *v = jstr(o, key);

	return v ? strdup(v) : NULL;
}

static uint32_t ju32(const json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));

	return v > 0 && v <= UINT32_MAX ? (uint32_t)v : 0;
}

/* The record's time in microseconds; now for fields that were never
 * journaled (the broker could not record them). */
static int64_t rec_time_us(const json_t *rec)
{
	const char *t = jstr(rec, "time");
	int64_t us;

	if (t && sbx_parse_rfc3339_us(t, &us) == 0)
		return us;
	return sbx_now_us();
}

static json_t *procs_json(const struct proc_id *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("[I,I]", (json_int_t)v[i].pid,
						   (json_int_t)v[i].start));
	return a;
}

static size_t procs_from_json(const json_t *a, struct proc_id **out)
{
	size_t n = json_array_size(a), k = 0, i;
	json_t *e;

	*out = NULL;
	if (!n)
		return 0;
	if (n > MAX_PROCS)
		n = MAX_PROCS;
	*out = calloc(n, sizeof(**out));
	if (!*out)
		return 0;
	json_array_foreach(a, i, e) {
		json_int_t pid = json_integer_value(json_array_get(e, 0));
		json_int_t start = json_integer_value(json_array_get(e, 1));

		if (k >= n)
			break;
		if (pid <= 1 || start < 0)
			continue;
		(*out)[k++] = (struct proc_id){ .pid = (pid_t)pid, .start = (uint64_t)start };
	}
	return k;
}

static int table_add(struct sbx_sessions *t, struct session *s)
{
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 16;
		struct session **nv = realloc(t->v, ncap * sizeof(*nv));

		if (!nv)
			return -1;
		t->v = nv;
		t->cap = ncap;
	}
	t->v[t->n++] = s;
	if (s->id >= t->next_id)
		t->next_id = s->id + 1;
	return 0;
}

/* A session from a session.opened record (or a snapshot entry). */
static struct session *session_from_json(const json_t *o, int64_t opened_at)
{
	struct session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->id = ju32(o, "session");
	s->user = jdup(o, "user");
	s->service = jdup(o, "service");
	s->tty = jdup(o, "tty");
	s->rhost = jdup(o, "rhost");
	s->role = jdup(o, "role");
	s->via = jdup(o, "via");
	s->grant = ju32(o, "id");
	s->leader.pid = (pid_t)ju32(o, "pid");
	s->leader.start = (uint64_t)json_integer_value(json_object_get(o, "pid_start"));
	s->opened_at = opened_at;
	if (!s->id || !s->user || !s->leader.pid) {
		session_free(s);
		return NULL;
	}
	return s;
}

static void apply_terminated(struct sbx_sessions *t, const json_t *rec, int64_t at_us)
{
	struct session *s = find_id(t, ju32(rec, "session"), NULL);
	json_int_t grace = json_integer_value(json_object_get(rec, "grace_ms"));

	/* Processes that were in no registered session (they held a grant's
	 * group) are tracked from here on like an ending session. */
	if (!s && json_is_true(json_object_get(rec, "unregistered")) && t->n < SBX_SESSION_MAX) {
		s = session_from_json(rec, at_us / 1000000);
		if (s && table_add(t, s) < 0) {
			session_free(s);
			s = NULL;
		}
	}
	if (!s)
		return;
	s->state = SESS_ENDING;
	s->kill_at_us = at_us + (grace > 0 ? grace : SBX_SESSION_GRACE_MS) * 1000;
	free(s->procs);
	s->n_procs = procs_from_json(json_object_get(rec, "pids"), &s->procs);
}

static void apply_rebased(struct sbx_sessions *t, const json_t *rec)
{
	struct session *s = find_id(t, ju32(rec, "session"), NULL);
	char *role, *via;

	if (!s)
		return;
	role = jdup(rec, "role");
	via = jdup(rec, "via");
	free(s->role);
	free(s->via);
	s->role = role;
	s->via = via;
	s->grant = ju32(rec, "id");
}

/* One session.* record (journaled, replayed, or fields that could not be
 * journaled) applied to the table: the same code for all three. */
static void apply(struct sbx_sessions *t, const char *event, const json_t *rec)
{
	if (strcmp(event, "session.opened") == 0) {
		struct session *s;

		if (find_id(t, ju32(rec, "session"), NULL) || t->n >= SBX_SESSION_MAX)
			return;
		s = session_from_json(rec, rec_time_us(rec) / 1000000);
		if (s && table_add(t, s) < 0)
			session_free(s);
	} else if (strcmp(event, "session.closed") == 0) {
		remove_id(t, ju32(rec, "session"));
	} else if (strcmp(event, "session.terminated") == 0) {
		apply_terminated(t, rec, rec_time_us(rec));
	} else if (strcmp(event, "session.killed") == 0) {
		struct session *s = find_id(t, ju32(rec, "session"), NULL);

		if (s)
			s->killed = true;
	} else if (strcmp(event, "session.rebased") == 0) {
		apply_rebased(t, rec);
	}
}

/* Journal a session event (fields is stolen); memory follows through the
 * record observer.  A broker that cannot write still acts on what it
 * knows: the change is applied to memory directly (and is lost at
 * restart, where the sweep sorts it out again). */
static int emit(struct sbx_broker *b, const char *event, const char *actor, json_t *fields)
{
	uint64_t seq = 0;
	int rc;

	json_incref(fields);
	rc = sbx_broker_record(b, event, actor, fields, &seq);
	if (rc < 0)
		apply(b->sessions, event, fields);
	json_decref(fields);
	return rc;
}

static void set_opt(json_t *o, const char *key, const char *v)
{
	if (v && *v)
		sbx_rec_str(o, key, v);
}

/* ---- ending sessions ---------------------------------------------------- */

static void end_session(struct sbx_broker *b, struct session *s, const char *reason)
{
	struct proc_id *procs = calloc(MAX_PROCS, sizeof(*procs));
	size_t n = 0, sent = 0;
	uint32_t id = s->id;
	char user[SBX_NAME_MAX + 1], clean[SBX_TEXT_MAX + 128];
	json_t *f;

	if (procs)
		n = proc_tree(&s->leader, 1, procs, MAX_PROCS);
	snprintf(user, sizeof(user), "%s", s->user);
	f = json_object();
	json_object_set_new(f, "session", json_integer(id));
	sbx_rec_str(f, "user", s->user);
	json_object_set_new(f, "pid", json_integer(s->leader.pid));
	if (s->grant)
		json_object_set_new(f, "id", json_integer(s->grant));
	set_opt(f, "role", s->role);
	set_opt(f, "tty", s->tty);
	set_opt(f, "rhost", s->rhost);
	sbx_rec_str(f, "reason", reason);
	sbx_rec_str(f, "signal", "SIGHUP");
	json_object_set_new(f, "grace_ms", json_integer(SBX_SESSION_GRACE_MS));
	json_object_set_new(f, "pids", procs_json(procs, n));
	/* Journal first: after a crash here, replay finds the session ending
	 * and the tick sends SIGKILL to what is left. */
	(void)emit(b, "session.terminated", SBX_SYSTEM_ACTOR, f);
	if (n)
		sent = signal_all(procs, n, SIGHUP);
	sbx_info("session %u of %s: %s: SIGHUP to %zu of %zu processes, SIGKILL for what is "
		 "left in %d ms", id, user, sbx_sanitize(reason, clean, sizeof(clean)), sent, n,
		 SBX_SESSION_GRACE_MS);
	free(procs);
}

static void rebase(struct sbx_broker *b, struct session *s, const struct sbx_decision *d)
{
	json_t *f = json_object();

	json_object_set_new(f, "session", json_integer(s->id));
	sbx_rec_str(f, "user", s->user);
	if (s->grant)
		json_object_set_new(f, "from", json_integer(s->grant));
	if (d->grant)
		json_object_set_new(f, "id", json_integer(d->grant));
	set_opt(f, "role", d->role);
	set_opt(f, "via", d->via);
	(void)emit(b, "session.rebased", SBX_SYSTEM_ACTOR, f);
}

static bool role_terminates(const struct sbx_broker *b, const char *role)
{
	const struct sbx_role *r = role ? sbx_policy_role(b->policy, role) : NULL;

	return r && r->on_expiry == SBX_ON_EXPIRY_TERMINATE;
}

/* The grant session id rests on is no longer live.  If the user may still
 * log in (standing, or another grant), the session rests on that from now
 * on; else a terminate-role ends it, a keep-role leaves it alone. */
static void grant_gone(struct sbx_broker *b, uint32_t id, const char *reason)
{
	struct sbx_sessions *t = b->sessions;
	struct session *s = find_id(t, id, NULL);
	const struct sbx_req *g;
	struct sbx_decision d;

	if (!s || s->state != SESS_OPEN || !s->grant)
		return;
	g = sbx_state_get(b->state, s->grant);
	sbx_broker_decide(b, s->user, sbx_now(), &d);
	if (d.allowed) {
		rebase(b, s, &d);
		return;
	}
	if (role_terminates(b, g ? g->role : s->role))
		end_session(b, s, reason);
}

/* ids of the open sessions resting on grant (0: every open session) */
static size_t open_ids(const struct sbx_sessions *t, uint32_t grant, uint32_t **out)
{
	size_t n = 0;

	*out = t->n ? calloc(t->n, sizeof(**out)) : NULL;
	if (!*out)
		return 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i]->state == SESS_OPEN && (!grant || t->v[i]->grant == grant))
			(*out)[n++] = t->v[i]->id;
	return n;
}

/* May user still hold gid: standing in a role of this host with that
 * group, or another live grant that brings it? */
static bool still_entitled(struct sbx_broker *b, const char *user, uint32_t gid)
{
	struct sbx_req *open[SBX_OPEN_MAX];
	size_t n = sbx_state_user_open(b->state, user, open, SBX_OPEN_MAX);
	int64_t now = sbx_now();

	for (size_t i = 0; i < b->policy->n_roles; i++) {
		const struct sbx_role *r = &b->policy->roles[i];

		if (r->unix_group && r->gid == gid && r->matches_host &&
		    sbx_policy_membership(b->policy, r, user, NULL) == SBX_MEMBER_STANDING)
			return true;
	}
	for (size_t i = 0; i < n; i++)
		if (sbx_req_live(open[i], now) && open[i]->unix_group && open[i]->gid == gid)
			return true;
	return false;
}

static bool local_uid(const char *user, uid_t *uid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) != 0 || !res)
		return false;
	*uid = pw.pw_uid;
	return true;
}

/* Processes of the grant's holder whose credentials still hold its group
 * (a session opened under a standing role, a process started before the
 * grant ended, what sudo runs below them) are ended as the role says,
 * whether or not pam_sbx registered them: a group in the credentials
 * outlives the grant, and sudo rules follow it. */
static void end_group_holders(struct sbx_broker *b, const struct sbx_req *g, const char *reason)
{
	const struct sbx_role *role = sbx_policy_role(b->policy, g->role);
	struct proc_id *roots = NULL, *procs = NULL;
	size_t n_roots, n = 0;
	uint32_t id;
	uid_t uid;
	json_t *f;

	if (!g->unix_group || !g->gid || !role || role->on_expiry != SBX_ON_EXPIRY_TERMINATE ||
	    still_entitled(b, g->user, g->gid) || !local_uid(g->user, &uid))
		return;
	roots = calloc(MAX_PROCS, sizeof(*roots));
	procs = calloc(MAX_PROCS, sizeof(*procs));
	if (!roots || !procs)
		goto out;
	n_roots = group_holders(uid, g->gid, roots, MAX_PROCS);
	if (!n_roots)
		goto out;
	n = proc_tree(roots, n_roots, procs, MAX_PROCS);
	id = b->sessions->next_id ? b->sessions->next_id : 1;
	f = json_object();
	json_object_set_new(f, "session", json_integer(id));
	sbx_rec_str(f, "user", g->user);
	json_object_set_new(f, "pid", json_integer(roots[0].pid));
	json_object_set_new(f, "pid_start", json_integer((json_int_t)roots[0].start));
	json_object_set_new(f, "unregistered", json_true());
	json_object_set_new(f, "id", json_integer(g->id));
	sbx_rec_str(f, "role", g->role);
	sbx_rec_str(f, "unix_group", g->unix_group);
	json_object_set_new(f, "gid", json_integer(g->gid));
	sbx_rec_str(f, "reason", reason);
	sbx_rec_str(f, "signal", "SIGHUP");
	json_object_set_new(f, "grace_ms", json_integer(SBX_SESSION_GRACE_MS));
	json_object_set_new(f, "pids", procs_json(procs, n));
	(void)emit(b, "session.terminated", SBX_SYSTEM_ACTOR, f);
	sbx_info("grant %u of %s ended: SIGHUP to %zu of %zu processes that hold group %s, "
		 "SIGKILL for what is left in %d ms", g->id, g->user, signal_all(procs, n, SIGHUP), n,
		 g->unix_group, SBX_SESSION_GRACE_MS);
out:
	free(roots);
	free(procs);
}

static void grant_ended(struct sbx_broker *b, const json_t *rec, const char *event)
{
	uint32_t grant = ju32(rec, "id"), *ids = NULL;
	const char *role = jstr(rec, "role"), *why = jstr(rec, "reason");
	const char *actor = jstr(rec, "actor");
	char reason[SBX_TEXT_MAX + 128];
	const struct sbx_req *g;
	size_t n;

	if (!grant)
		return;
	if (strcmp(event, "grant.expired") == 0)
		snprintf(reason, sizeof(reason), "grant %u (%s) expired", grant, role ? role : "?");
	else if (strcmp(event, "grant.revoked_here") == 0)
		snprintf(reason, sizeof(reason), "grant %u (%s) revoked on this host by %s%s%s",
			 grant, role ? role : "?", actor ? actor : "?", why ? ": " : "",
			 why ? why : "");
	else
		snprintf(reason, sizeof(reason), "grant %u (%s) revoked by %s%s%s", grant,
			 role ? role : "?", actor ? actor : "?", why ? ": " : "", why ? why : "");
	/* The table changes while sessions are ended: work from their ids. */
	n = open_ids(b->sessions, grant, &ids);
	for (size_t i = 0; i < n; i++)
		grant_gone(b, ids[i], reason);
	free(ids);
	g = sbx_state_get(b->state, grant);
	if (g)
		end_group_holders(b, g, reason);
}

void sbx_sessions_on_record(struct sbx_broker *b, const json_t *rec)
{
	const char *event = jstr(rec, "event");

	if (!event || !b->sessions)
		return;
	if (strncmp(event, "session.", 8) == 0)
		apply(b->sessions, event, rec);
	else if (strcmp(event, "grant.expired") == 0 || strcmp(event, "grant.revoked") == 0 ||
		 strcmp(event, "grant.revoked_here") == 0)
		grant_ended(b, rec, event);
}

void sbx_sessions_replay(struct sbx_sessions *t, const json_t *rec)
{
	const char *event = jstr(rec, "event");

	if (t && event && strncmp(event, "session.", 8) == 0)
		apply(t, event, rec);
}

/* ---- the timer -------------------------------------------------------------- */

/* An ended session: SIGKILL for what is left once the grace is over, and
 * out of the table once nothing is left.  Returns true when it is gone. */
static bool tend_ending(struct sbx_broker *b, struct session *s, int64_t now_us)
{
	struct proc_id *left;
	size_t n = 0, sent;
	json_t *f;
	bool any = false;

	for (size_t i = 0; i < s->n_procs && !any; i++)
		any = proc_alive(&s->procs[i]);
	if (!any)
		return true;
	if (now_us < s->kill_at_us)
		return false;
	left = calloc(MAX_PROCS, sizeof(*left));
	if (!left)
		return false;
	/* What survived, and anything they started since the hangup. */
	n = proc_tree(s->procs, s->n_procs, left, MAX_PROCS);
	sent = signal_all(left, n, SIGKILL);
	if (!s->killed && sent) {
		f = json_object();
		json_object_set_new(f, "session", json_integer(s->id));
		sbx_rec_str(f, "user", s->user);
		sbx_rec_str(f, "signal", "SIGKILL");
		json_object_set_new(f, "pids", procs_json(left, n));
		sbx_warn("session %u of %s: %zu processes outlived SIGHUP by %d ms: SIGKILL", s->id,
			 s->user, sent, SBX_SESSION_GRACE_MS);
		(void)emit(b, "session.killed", SBX_SYSTEM_ACTOR, f);
	}
	s->killed = true;
	free(left);
	return false;
}

/* Open sessions whose leader has gone away without a close (a crashed
 * sshd, a lost close) are closed quietly. */
static void sweep_open(struct sbx_broker *b)
{
	struct sbx_sessions *t = b->sessions;
	uint32_t *ids = NULL;
	size_t n = open_ids(t, 0, &ids);
	int64_t now = sbx_now();

	for (size_t i = 0; i < n; i++) {
		struct session *s = find_id(t, ids[i], NULL);
		const struct sbx_req *g;
		json_t *f;

		if (!s || s->state != SESS_OPEN)
			continue;
		if (proc_alive(&s->leader)) {
			/* Normally the grant's end event has done this; a broker
			 * that cannot record (its journal failed, or the fleet's
			 * log is away) never gets that event. */
			g = s->grant ? sbx_state_get(b->state, s->grant) : NULL;
			if (((g && !sbx_req_live(g, now)) || sbx_state_forgotten(b->state, s->grant)) &&
			    !sbx_broker_can_change(b, NULL, 0))
				grant_gone(b, s->id, "its grant ended (the broker cannot record)");
			continue;
		}
		f = json_object();
		json_object_set_new(f, "session", json_integer(s->id));
		sbx_rec_str(f, "user", s->user);
		json_object_set_new(f, "pid", json_integer(s->leader.pid));
		sbx_rec_str(f, "reason", "its process is gone");
		(void)emit(b, "session.closed", SBX_SYSTEM_ACTOR, f);
	}
	free(ids);
}

void sbx_sessions_tick(struct sbx_broker *b, int64_t now_us)
{
	struct sbx_sessions *t = b->sessions;
	int64_t now_ms = sbx_mono_ms();

	if (!t)
		return;
	for (size_t i = t->n; i-- > 0;) {
		struct session *s = t->v[i];

		if (s->state == SESS_ENDING && tend_ending(b, s, now_us)) {
			/* Only memory: replay brings it back as ending, and the
			 * first tick drops it again, its processes being gone. */
			remove_id(t, s->id);
		}
	}
	if (now_ms - t->last_sweep_ms >= SBX_SESSION_SWEEP_MS) {
		t->last_sweep_ms = now_ms;
		sweep_open(b);
	}
}

/* ---- snapshots ------------------------------------------------------------ */

static json_t *session_to_json(const struct session *s)
{
	json_t *o = json_object();
	char at[SBX_RFC3339_LEN];

	json_object_set_new(o, "session", json_integer(s->id));
	sbx_rec_str(o, "user", s->user);
	json_object_set_new(o, "pid", json_integer(s->leader.pid));
	json_object_set_new(o, "pid_start", json_integer((json_int_t)s->leader.start));
	set_opt(o, "service", s->service);
	set_opt(o, "tty", s->tty);
	set_opt(o, "rhost", s->rhost);
	set_opt(o, "role", s->role);
	set_opt(o, "via", s->via);
	if (s->grant)
		json_object_set_new(o, "id", json_integer(s->grant));
	sbx_format_rfc3339(s->opened_at, at);
	sbx_rec_str(o, "opened_at", at);
	if (s->state == SESS_ENDING) {
		sbx_rec_str(o, "state", "ending");
		json_object_set_new(o, "kill_at_us", json_integer(s->kill_at_us));
		json_object_set_new(o, "killed", json_boolean(s->killed));
		json_object_set_new(o, "pids", procs_json(s->procs, s->n_procs));
	}
	return o;
}

json_t *sbx_sessions_save(const struct sbx_sessions *t)
{
	json_t *o, *a;

	if (!t)
		return NULL;
	o = json_object();
	a = json_array();
	for (size_t i = 0; i < t->n; i++)
		json_array_append_new(a, session_to_json(t->v[i]));
	json_object_set_new(o, "next_id", json_integer(t->next_id));
	json_object_set_new(o, "sessions", a);
	return o;
}

int sbx_sessions_load(struct sbx_sessions *t, const json_t *saved)
{
	json_t *a = json_object_get(saved, "sessions"), *e;
	size_t i;

	if (!t || !json_is_array(a))
		return -1;
	json_array_foreach(a, i, e) {
		const char *at = jstr(e, "opened_at");
		int64_t us = 0;
		struct session *s;

		if (at)
			(void)sbx_parse_rfc3339_us(at, &us);
		s = session_from_json(e, us / 1000000);
		if (!s)
			return -1;
		if (json_is_string(json_object_get(e, "state"))) {
			s->state = SESS_ENDING;
			s->kill_at_us = json_integer_value(json_object_get(e, "kill_at_us"));
			s->killed = json_is_true(json_object_get(e, "killed"));
			s->n_procs = procs_from_json(json_object_get(e, "pids"), &s->procs);
		}
		if (table_add(t, s) < 0) {
			session_free(s);
			return -1;
		}
	}
	if (ju32(saved, "next_id") > t->next_id)
		t->next_id = ju32(saved, "next_id");
	return 0;
}

/* ---- ops ---------------------------------------------------------------------- */

/* The grant a new session rests on: the one the account check named if it
 * still counts, else what the broker decides now. */
static uint32_t session_grant(struct sbx_broker *b, const struct sbx_args *a,
			      const struct sbx_decision *d, int64_t now, const char **role)
{
	const struct sbx_req *g = a->id ? sbx_state_get(b->state, a->id) : NULL;
	const struct sbx_role *r = g ? sbx_policy_role(b->policy, g->role) : NULL;

	*role = d->role;
	if (d->grant == 0)
		return 0; /* standing: no grant can take this session away */
	if (g && r && r->matches_host && strcmp(g->user, a->user) == 0 && sbx_req_live(g, now)) {
		*role = g->role;
		return g->id;
	}
	return d->grant;
}

/* The leader of a new session: the pid pam_sbx names, else the caller.
 * 0, or -1 with the refusal in the reply. */
static int session_leader(struct sbx_call *c, pid_t *pid, uint64_t *start)
{
	*pid = c->a.pid ? (pid_t)c->a.pid : c->caller->pid;
	if (*pid > 1 && sbx_proc_start_time(*pid, start) == 0)
		return 0;
	sbx_reply_fail(c, SBX_ST_BADINPUT, "no process %d to lead the session", (int)*pid);
	return -1;
}

static json_t *opened_fields(const struct sbx_args *a, uint32_t id, pid_t pid, uint64_t start,
			     uint32_t grant, const char *role, const char *via)
{
	json_t *f = json_object();

	json_object_set_new(f, "session", json_integer(id));
	sbx_rec_str(f, "user", a->user);
	json_object_set_new(f, "pid", json_integer(pid));
	json_object_set_new(f, "pid_start", json_integer((json_int_t)start));
	set_opt(f, "service", a->service);
	set_opt(f, "tty", a->tty);
	set_opt(f, "rhost", a->rhost);
	if (grant)
		json_object_set_new(f, "id", json_integer(grant));
	set_opt(f, "role", role);
	set_opt(f, "via", via);
	return f;
}

void sbx_op_session_open(struct sbx_broker *b, struct sbx_call *c)
{
	struct sbx_sessions *t = b->sessions;
	struct sbx_decision d;
	const char *role = NULL;
	uint64_t start = 0;
	pid_t pid;
	uint32_t id, grant;
	int64_t now = sbx_now();

	if (!sbx_name_valid(c->a.user)) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "a session needs a valid user name");
		return;
	}
	if (sbx_reply_if_degraded(b, c) || session_leader(c, &pid, &start) < 0)
		return;
	if (t->n >= SBX_SESSION_MAX) {
		sbx_reply_fail(c, SBX_ST_UNAVAILABLE, "the broker already tracks %d sessions",
			       SBX_SESSION_MAX);
		return;
	}
	sbx_broker_decide(b, c->a.user, now, &d);
	if (!d.allowed) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "%s", d.message);
		return;
	}
	grant = session_grant(b, &c->a, &d, now, &role);
	id = t->next_id ? t->next_id : 1;
	if (sbx_broker_record(b, "session.opened", c->a.user,
			      opened_fields(&c->a, id, pid, start, grant, role, d.via),
			      &c->wait_seq) < 0) {
		sbx_reply_if_degraded(b, c);
		return;
	}
	if (!find_id(t, id, NULL)) {
		sbx_reply_fail(c, SBX_ST_INTERNAL, "session %u was not kept", id);
		return;
	}
	sbx_reply_okf(c, "session %u of %s registered", id, c->a.user);
	sbx_msg_put_u32(c->reply, SBX_F_SESSION, id);
	if (grant)
		sbx_msg_put_u32(c->reply, SBX_F_ID, grant);
	if (role)
		sbx_msg_put_str(c->reply, SBX_F_ROLE, role);
	if (d.via)
		sbx_msg_put_str(c->reply, SBX_F_VIA, d.via);
}

/* The session a close means: by id; else the caller's (pid) session of
 * this user, else this user's newest on this tty. */
static struct session *close_target(const struct sbx_sessions *t, const struct sbx_args *a,
				    pid_t pid)
{
	struct session *best = NULL;

	if (a->session)
		return find_id(t, a->session, NULL);
	for (size_t i = 0; i < t->n; i++) {
		struct session *s = t->v[i];

		if (strcmp(s->user, a->user) != 0)
			continue;
		if (s->leader.pid == pid)
			return s;
		if (a->tty[0] && s->tty && strcmp(s->tty, a->tty) == 0 &&
		    (!best || s->id > best->id))
			best = s;
	}
	return best;
}

void sbx_op_session_close(struct sbx_broker *b, struct sbx_call *c)
{
	struct session *s;
	uint32_t id;
	json_t *f;

	s = close_target(b->sessions, &c->a, c->a.pid ? (pid_t)c->a.pid : c->caller->pid);
	if (!s || (c->a.user[0] && strcmp(s->user, c->a.user) != 0)) {
		sbx_reply_fail(c, SBX_ST_NOTFOUND, "no such session of %s",
			       c->a.user[0] ? c->a.user : "this user");
		return;
	}
	id = s->id;
	if (s->state == SESS_ENDING) {
		/* Already being ended: it leaves the table once its processes
		 * are gone, not before (SIGKILL may still be due). */
		sbx_reply_okf(c, "session %u is being ended", id);
		sbx_msg_put_u32(c->reply, SBX_F_SESSION, id);
		return;
	}
	f = json_object();
	json_object_set_new(f, "session", json_integer(id));
	sbx_rec_str(f, "user", s->user);
	json_object_set_new(f, "pid", json_integer(s->leader.pid));
	sbx_rec_str(f, "reason", "logout");
	if (sbx_broker_record(b, "session.closed", s->user, f, &c->wait_seq) < 0) {
		sbx_reply_if_degraded(b, c);
		return;
	}
	sbx_reply_okf(c, "session %u closed", id);
	sbx_msg_put_u32(c->reply, SBX_F_SESSION, id);
}

static void put_session(sbx_msg *m, const struct session *s)
{
	sbx_msg_begin_rec(m, SBX_F_SESSIONINFO);
	sbx_msg_put_u32(m, SBX_F_SESSION, s->id);
	sbx_msg_put_str(m, SBX_F_USER, s->user);
	sbx_msg_put_u32(m, SBX_F_PID, (uint32_t)s->leader.pid);
	sbx_msg_put_str_opt(m, SBX_F_SERVICE, s->service);
	sbx_msg_put_str_opt(m, SBX_F_TTY, s->tty);
	sbx_msg_put_str_opt(m, SBX_F_RHOST, s->rhost);
	if (s->grant)
		sbx_msg_put_u32(m, SBX_F_ID, s->grant);
	sbx_msg_put_str_opt(m, SBX_F_ROLE, s->role);
	sbx_msg_put_str_opt(m, SBX_F_VIA, s->via);
	sbx_msg_put_i64(m, SBX_F_OPENED_AT, s->opened_at);
	sbx_msg_put_str(m, SBX_F_STATE, s->state == SESS_OPEN ? "open" : "ending");
	sbx_msg_end_rec(m);
}

void sbx_op_sessions(struct sbx_broker *b, struct sbx_call *c)
{
	const struct sbx_sessions *t = b->sessions;

	sbx_reply_okf(c, "%zu sessions", t->n);
	for (size_t i = 0; i < t->n; i++) {
		sbx_msg_mark mark = sbx_msg_here(c->reply);

		if (c->a.user[0] && strcmp(t->v[i]->user, c->a.user) != 0)
			continue;
		put_session(c->reply, t->v[i]);
		if (sbx_msg_undo_if_failed(c->reply, mark))
			break;
	}
}

/* ---- set-up ---------------------------------------------------------------- */

struct sbx_sessions *sbx_sessions_new(void)
{
	struct sbx_sessions *t = calloc(1, sizeof(*t));

	if (t)
		t->next_id = 1;
	return t;
}

int sbx_sessions_start(struct sbx_broker *b)
{
	uint32_t *ids = NULL;
	size_t n;

	/* A crash between a grant's end and the end of its sessions leaves
	 * them open on a dead grant: finish the job. */
	n = open_ids(b->sessions, 0, &ids);
	for (size_t i = 0; i < n; i++) {
		struct session *s = find_id(b->sessions, ids[i], NULL);
		const struct sbx_req *g = s && s->grant ? sbx_state_get(b->state, s->grant) : NULL;

		if (g && (g->state == SBX_REQ_EXPIRED || g->state == SBX_REQ_REVOKED))
			grant_gone(b, ids[i], g->state == SBX_REQ_EXPIRED
					      ? "its grant expired while the broker was down"
					      : "its grant was revoked while the broker was down");
		else if (s && s->grant && sbx_state_forgotten(b->state, s->grant))
			grant_gone(b, ids[i], "its grant ended while the broker was down");
	}
	free(ids);
	if (b->sessions->n)
		sbx_info("sessions: %zu known from the journal", b->sessions->n);
	return 0;
}

void sbx_sessions_free(struct sbx_sessions *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		session_free(t->v[i]);
	free(t->v);
	free(t);
}

size_t sbx_sessions_count(const struct sbx_broker *b)
{
	return b && b->sessions ? b->sessions->n : 0;
}

void sbx_sessions_each_open(const struct sbx_broker *b, sbx_session_fn *fn, void *ctx)
{
	const struct sbx_sessions *t = b ? b->sessions : NULL;

	for (size_t i = 0; t && i < t->n; i++)
		if (t->v[i]->state == SESS_OPEN)
			fn(t->v[i]->id, t->v[i]->user, t->v[i]->leader.pid, t->v[i]->opened_at, ctx);
}
