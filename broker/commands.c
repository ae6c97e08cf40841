#include "config.h"

#include "commands.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "cmdline.h"
#include "dispatch.h"
#include "identity.h"
#include "sbxio.h"
#include "text.h"
#include "timeutil.h"
#include "user_limits.h"

/* Most supplementary groups a process can hold (NGROUPS_MAX is 65536;
 * more than this many are not looked at, and the check then refuses). */
#define GROUPS_MAX 1024

/* A command that ran and has not been seen to end. */
struct running {
	uint64_t seq;        /* its command.run record; 0: free slot */
	uid_t uid;
	uint32_t grant;
	char role[SBX_NAME_MAX + 1];
	char via[16];
};

/* A command recently run under a grant, for STATUS. */
struct recent {
	uint64_t seq;        /* its command.run; 0: free slot */
	uint32_t grant;
	int64_t at;
	char *command;
	char runas[SBX_NAME_MAX + 1];
	bool ended, signalled;
	int64_t status;      /* exit status or signal */
};

/* A one-command request: what it was asked for (request.created with
 * command), and whether its approval was used. */
struct asked {
	uint32_t id;         /* 0: free slot */
	char user[SBX_NAME_MAX + 1];
	char runas[SBX_NAME_MAX + 1];
	char *command, *cwd;
	bool used;
};

struct sbx_commands {
	struct sbx_limits *limits;
	struct asked asked[SBX_COMMANDS_ASKED_MAX];
	size_t next_asked;
	struct running run[SBX_COMMANDS_RUNNING_MAX];
	size_t next;         /* ring: the oldest is forgotten first */
	struct recent recent[SBX_COMMANDS_RECENT_MAX];
	size_t next_recent;
};

void sbx_commands_free(struct sbx_commands *t)
{
	if (!t)
		return;
	sbx_limits_free(t->limits);
	for (size_t i = 0; i < SBX_COMMANDS_RECENT_MAX; i++)
		free(t->recent[i].command);
	for (size_t i = 0; i < SBX_COMMANDS_ASKED_MAX; i++) {
		free(t->asked[i].command);
		free(t->asked[i].cwd);
	}
	free(t);
}

static struct sbx_commands *table(struct sbx_broker *b);

static int64_t jint(const json_t *rec, const char *key)
{
	const json_t *v = json_object_get(rec, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static struct asked *find_asked(struct sbx_commands *t, uint32_t id)
{
	for (size_t i = 0; t && id && i < SBX_COMMANDS_ASKED_MAX; i++)
		if (t->asked[i].id == id)
			return &t->asked[i];
	return NULL;
}

static const char *jstr_or(const json_t *rec, const char *key)
{
	const char *s = json_string_value(json_object_get(rec, key));

	return s ? s : "";
}

/* A slot for a new one-command request: a free one, or one whose
 * request is over (its grant, if any, is no longer live), never one still
 * open, which must stay known so that it is never taken for a grant
 * covering other commands.  NULL when all are in use. */
static struct asked *free_asked(struct sbx_broker *b, struct sbx_commands *t)
{
	for (size_t k = 0; k < SBX_COMMANDS_ASKED_MAX; k++) {
		size_t i = (t->next_asked + k) % SBX_COMMANDS_ASKED_MAX;
		const struct sbx_req *r = t->asked[i].id ? sbx_state_get(b->state, t->asked[i].id)
							 : NULL;

		if (!t->asked[i].id || !r ||
		    (r->state != SBX_REQ_PENDING && r->state != SBX_REQ_ACTIVE)) {
			t->next_asked = (i + 1) % SBX_COMMANDS_ASKED_MAX;
			return &t->asked[i];
		}
	}
	return NULL;
}

/* request.created with command: a one-command request, remembered;
 * command.run with approved_request: its approval is used. */
static void note_asked(struct sbx_broker *b, const json_t *rec, const char *event)
{
	struct sbx_commands *t;
	struct asked *a;

	if (strcmp(event, "request.created") == 0 && json_object_get(rec, "command") &&
	    (t = table(b))) {
		/* ask_once made sure of a slot; a replay of more open ones
		 * than fit (a smaller build) overwrites the oldest. */
		a = free_asked(b, t);
		if (!a) {
			a = &t->asked[t->next_asked];
			t->next_asked = (t->next_asked + 1) % SBX_COMMANDS_ASKED_MAX;
		}
		free(a->command);
		free(a->cwd);
		memset(a, 0, sizeof(*a));
		a->id = (uint32_t)jint(rec, "id");
		snprintf(a->user, sizeof(a->user), "%s", jstr_or(rec, "user"));
		snprintf(a->runas, sizeof(a->runas), "%s", jstr_or(rec, "runas"));
		a->command = strdup(jstr_or(rec, "command"));
		a->cwd = strdup(jstr_or(rec, "cwd"));
		if (!a->command || !a->cwd)
			a->id = 0; /* unusable: its approval is refused, never guessed */
	} else if (strcmp(event, "command.run") == 0 && json_object_get(rec, "approved_request")) {
		a = find_asked(b->commands, (uint32_t)jint(rec, "approved_request"));
		if (a)
			a->used = true;
	}
}

void sbx_commands_note(struct sbx_broker *b, const json_t *rec)
{
	const char *event = json_string_value(json_object_get(rec, "event"));
	struct sbx_commands *t;
	struct recent *r;
	int64_t grant = jint(rec, "id");

	if (event)
		note_asked(b, rec, event);

	if (!event || strncmp(event, "command.", 8) != 0 || grant <= 0 || !(t = table(b)))
		return;
	if (strcmp(event, "command.run") == 0) {
		const char *cmd = json_string_value(json_object_get(rec, "command"));
		const char *runas = json_string_value(json_object_get(rec, "runas"));
		const char *time = json_string_value(json_object_get(rec, "time"));
		int64_t us = 0;

		r = &t->recent[t->next_recent];
		t->next_recent = (t->next_recent + 1) % SBX_COMMANDS_RECENT_MAX;
		free(r->command);
		memset(r, 0, sizeof(*r));
		r->seq = (uint64_t)jint(rec, "seq");
		r->grant = (uint32_t)grant;
		if (time && sbx_parse_rfc3339_us(time, &us) == 0)
			r->at = us / 1000000;
		r->command = strdup(cmd ? cmd : "");
		snprintf(r->runas, sizeof(r->runas), "%s", runas ? runas : "");
		return;
	}
	if (strcmp(event, "command.exited") != 0)
		return;
	for (size_t i = 0; i < SBX_COMMANDS_RECENT_MAX; i++) {
		r = &t->recent[i];
		if (!r->seq || r->seq != (uint64_t)jint(rec, "run"))
			continue;
		r->ended = true;
		r->signalled = json_object_get(rec, "signal") != NULL;
		r->status = jint(rec, r->signalled ? "signal" : "exit_status");
		if (!r->signalled && !json_object_get(rec, "exit_status"))
			r->ended = false;
		return;
	}
}

void sbx_commands_put(struct sbx_broker *b, sbx_msg *m, uint32_t id)
{
	struct sbx_commands *t = b->commands;
	size_t start, n = 0;

	if (!t)
		return;
	for (size_t i = 0; i < SBX_COMMANDS_RECENT_MAX; i++)
		if (t->recent[i].seq && t->recent[i].grant == id)
			n++;
	/* oldest first, the latest SBX_COMMANDS_PER_STATUS of them */
	start = t->next_recent;
	for (size_t k = 0; k < SBX_COMMANDS_RECENT_MAX; k++) {
		const struct recent *r = &t->recent[(start + k) % SBX_COMMANDS_RECENT_MAX];
		sbx_msg_mark mark;

		if (!r->seq || r->grant != id || n-- > SBX_COMMANDS_PER_STATUS)
			continue;
		mark = sbx_msg_here(m);
		sbx_msg_begin_rec(m, SBX_F_COMMANDINFO);
		sbx_msg_put_str(m, SBX_F_COMMAND, r->command ? r->command : "");
		sbx_msg_put_str_opt(m, SBX_F_RUNAS, r->runas);
		sbx_msg_put_i64(m, SBX_F_CREATED_AT, r->at);
		if (r->ended)
			sbx_msg_put_u32(m, r->signalled ? SBX_F_SIGNAL : SBX_F_EXIT_STATUS,
					(uint32_t)r->status);
		sbx_msg_end_rec(m);
		if (sbx_msg_undo_if_failed(m, mark))
			break;
	}
}

/* The broker's table, made on first use; its budget follows the policy. */
static struct sbx_commands *table(struct sbx_broker *b)
{
	const struct sbx_policy *p = b->policy;
	struct sbx_limits_conf lc = {
		.max_conns = 1,
		.max_conns_per_uid = 1,
		.root_reserve = 0,
		.changes_per_minute = (int)(p->broker.max_changes_per_minute *
					    SBX_COMMANDS_BUDGET_FACTOR),
	};

	if (!b->commands) {
		b->commands = calloc(1, sizeof(*b->commands));
		if (!b->commands)
			return NULL;
		b->commands->limits = sbx_limits_new(&lc);
		if (!b->commands->limits) {
			free(b->commands);
			b->commands = NULL;
			return NULL;
		}
	}
	sbx_limits_set(b->commands->limits, &lc);
	return b->commands;
}

/* ---- who ran it ---------------------------------------------------------------- */

struct person {
	uid_t uid, euid;
	char name[SBX_NAME_MAX + 1];
	gid_t groups[GROUPS_MAX + 1];  /* the primary gid, then the supplementary */
	size_t n_groups;
	bool too_many;
};

/* The real and effective uid and the groups of pid, from
 * /proc/PID/status.  0 or -1.  A status too long for the buffer counts as
 * too many groups (the Groups line may be cut): never as fewer. */
static int read_person(pid_t pid, struct person *who)
{
	char path[64], buf[16384], *line, *save = NULL;
	bool have_uid = false;
	ssize_t n;
	int fd, ret = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		goto out;
	buf[n] = '\0';
	if ((size_t)n == sizeof(buf) - 1)
		who->too_many = true;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *p, *end;

		if (strncmp(line, "Uid:", 4) == 0) {
			unsigned long v = strtoul(line + 4, &end, 10);

			if (end == line + 4)
				goto out;
			who->uid = (uid_t)v;
			who->euid = (uid_t)strtoul(end, NULL, 10);
			have_uid = true;
		} else if (strncmp(line, "Gid:", 4) == 0) {
			who->groups[who->n_groups++] = (gid_t)strtoul(line + 4, NULL, 10);
		} else if (strncmp(line, "Groups:", 7) == 0) {
			for (p = line + 7;; p = end) {
				unsigned long v = strtoul(p, &end, 10);

				if (end == p)
					break;
				if (who->n_groups > GROUPS_MAX) {
					who->too_many = true;
					break;
				}
				who->groups[who->n_groups++] = (gid_t)v;
			}
		}
	}
	ret = have_uid && who->n_groups ? 0 : -1;
out:
	close(fd);
	return ret;
}

/* The person at the other end: sudo's real uid.  0, or -1 with the reply
 * filled. */
static int find_person(struct sbx_broker *b, struct sbx_call *c, struct person *who)
{
	struct sbx_caller real = { 0 };

	memset(who, 0, sizeof(*who));
	if (c->caller->pid <= 0 || read_person(c->caller->pid, who) < 0) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "cannot read the credentials of process %d",
			       (int)c->caller->pid);
		return -1;
	}
	/* The process must still be the one that connected (euid 0, as the
	 * socket saw it), not another that got its pid after it ended. */
	if (who->euid != c->caller->uid) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "process %d is no longer the caller",
			       (int)c->caller->pid);
		return -1;
	}
	real.uid = who->uid;
	real.gid = who->groups[0];
	sbx_caller_resolve(&real, b->policy->broker.admin_group);
	snprintf(who->name, sizeof(who->name), "%s", real.name);
	return 0;
}

static bool holds_gid(const struct person *who, uint32_t gid)
{
	for (size_t i = 0; i < who->n_groups; i++)
		if (who->groups[i] == (gid_t)gid)
			return true;
	return false;
}

static struct asked *find_asked(struct sbx_commands *t, uint32_t id);

/* ---- what it rests on ----------------------------------------------------------- */

struct basis {
	bool managed;               /* the credentials hold a group of an sbx role */
	char held[256];             /* those groups, for messages */
	const char *held_role;      /* the first role of them, for messages */
	const struct sbx_role *role;
	const struct sbx_req *grant; /* NULL: standing, or nothing */
	const char *via;            /* "grant", "standing", "none" */
};

/* What a command of who rests on now: a live grant of a role whose group
 * the process holds, else a standing membership of one, else nothing
 * (managed says whether sbx had a say at all). */
static void find_basis(struct sbx_broker *b, const struct person *who, int64_t now,
		       struct basis *bs)
{
	const struct sbx_policy *p = b->policy;
	struct sbx_req *open[SBX_OPEN_MAX];
	size_t n_open = sbx_state_user_open(b->state, who->name, open, SBX_OPEN_MAX);
	size_t off = 0;

	memset(bs, 0, sizeof(*bs));
	bs->via = "none";
	for (size_t i = 0; i < p->n_roles; i++) {
		const struct sbx_role *r = &p->roles[i];

		if (!r->unix_group || !holds_gid(who, r->gid))
			continue;
		bs->managed = true;
		if (!bs->held_role)
			bs->held_role = r->name;
		if (off < sizeof(bs->held)) {
			int w = snprintf(bs->held + off, sizeof(bs->held) - off, "%s%s",
					 off ? ", " : "", r->unix_group);

			off += w > 0 ? (size_t)w : 0;
		}
		for (size_t j = 0; j < n_open; j++) {
			if (!sbx_req_live(open[j], now) || strcmp(open[j]->role, r->name) != 0)
				continue;
			/* A one-command approval covers its one command, never
			 * others. */
			if (find_asked(b->commands, open[j]->id))
				continue;
			if (!bs->grant || open[j]->expires_at > bs->grant->expires_at) {
				bs->grant = open[j];
				bs->role = r;
				bs->via = "grant";
			}
		}
		if (!bs->grant && !bs->role && r->matches_host &&
		    sbx_policy_membership(p, r, who->name, NULL) == SBX_MEMBER_STANDING) {
			bs->role = r;
			bs->via = "standing";
		}
	}
}

/* ---- records ------------------------------------------------------------------------ */

/* Text the plugin sends must already be in the escaped form: refused,
 * never changed on the way in. */
static int check_text(struct sbx_call *c, const char *what, const char *s, bool required)
{
	if (required && !s[0]) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "a sudo command needs its %s", what);
		return -1;
	}
	if (!sbx_cmdline_valid(s)) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "the %s holds control characters "
			       "(sbx_sudo escapes them)", what);
		return -1;
	}
	return 0;
}

static int check_command(struct sbx_call *c)
{
	if (check_text(c, "command", c->a.command, true) < 0 ||
	    check_text(c, "cwd", c->a.cwd, false) < 0 ||
	    check_text(c, "tty", c->a.tty, false) < 0 ||
	    check_text(c, "runas user", c->a.runas, false) < 0 ||
	    check_text(c, "plugin", c->a.plugin, false) < 0)
		return -1;
	return 0;
}

static void set_opt(json_t *f, const char *key, const char *s)
{
	if (s && s[0])
		sbx_rec_str(f, key, s);
}

static json_t *command_fields(const struct sbx_call *c, const struct person *who,
			      const struct basis *bs)
{
	json_t *f = json_object();

	sbx_rec_str(f, "user", who->name);
	json_object_set_new(f, "uid", json_integer(who->uid));
	set_opt(f, "runas", c->a.runas);
	sbx_rec_str(f, "command", c->a.command);
	set_opt(f, "cwd", c->a.cwd);
	set_opt(f, "tty", c->a.tty);
	sbx_rec_str(f, "via", bs->via);
	if (bs->held[0])
		sbx_rec_str(f, "groups", bs->held);
	if (bs->role)
		sbx_rec_str(f, "role", bs->role->name);
	if (bs->grant) {
		const struct sbx_req *g = bs->grant;
		json_t *approvers = json_array();

		json_object_set_new(f, "id", json_integer(g->id));
		set_opt(f, "reason", g->reason);
		set_opt(f, "ticket", g->ticket);
		for (size_t i = 0; i < g->n_approvals; i++)
			json_array_append_new(approvers, json_string(g->approvals[i].who));
		json_object_set_new(f, "approvers", approvers);
	}
	return f;
}

/* One command recorded for who, spending their budget (charge: the end
 * of a run already counted is not charged again, so it is never lost to
 * the budget).  0, or -1 with the reply filled. */
static int record(struct sbx_broker *b, struct sbx_call *c, const struct person *who,
		  const char *event, json_t *f, uint64_t *seq, bool charge)
{
	struct sbx_commands *t = table(b);
	int64_t retry_ms = 0;

	if (!t) {
		json_decref(f);
		sbx_reply_fail(c, SBX_ST_INTERNAL, "out of memory");
		return -1;
	}
	if (charge && who->uid != 0 &&
	    sbx_limits_change(t->limits, who->uid, sbx_mono_ms(), &retry_ms) < 0) {
		json_decref(f);
		sbx_reply_fail(c, SBX_ST_REFUSED, "slow down: %s may run at most %u sudo commands "
			       "a minute (%u x broker.max_changes_per_minute); try again in %lld s",
			       who->name,
			       b->policy->broker.max_changes_per_minute * SBX_COMMANDS_BUDGET_FACTOR,
			       SBX_COMMANDS_BUDGET_FACTOR, (long long)((retry_ms + 999) / 1000));
		return -1;
	}
	if (sbx_broker_record(b, event, who->name, f, seq) < 0) {
		if (!sbx_reply_if_degraded(b, c))
			sbx_reply_fail(c, SBX_ST_UNAVAILABLE, "the command could not be recorded");
		return -1;
	}
	c->wait_seq = *seq;
	return 0;
}

static void remember(struct sbx_broker *b, uint64_t seq, const struct person *who,
		     const struct basis *bs)
{
	struct sbx_commands *t = b->commands;
	struct running *r;

	if (!t)
		return;
	r = &t->run[t->next];
	t->next = (t->next + 1) % SBX_COMMANDS_RUNNING_MAX;
	memset(r, 0, sizeof(*r));
	r->seq = seq;
	r->uid = who->uid;
	r->grant = bs->grant ? bs->grant->id : 0;
	snprintf(r->role, sizeof(r->role), "%s", bs->role ? bs->role->name : "");
	snprintf(r->via, sizeof(r->via), "%s", bs->via);
}

static void reply_basis(struct sbx_call *c, const struct basis *bs, uint64_t seq)
{
	sbx_msg_put_u32(c->reply, SBX_F_ALLOWED, 1);
	if (bs->grant)
		sbx_msg_put_u32(c->reply, SBX_F_ID, bs->grant->id);
	if (bs->role)
		sbx_msg_put_str(c->reply, SBX_F_ROLE, bs->role->name);
	sbx_msg_put_str(c->reply, SBX_F_VIA, bs->via);
	sbx_msg_put_i64(c->reply, SBX_F_SEQ, (int64_t)seq);
}

/* What the role the command rests on says about it (its sudo: rules): 0
 * when it may run, or -1 with the refusal's words in msg. */
static int role_rule(const struct basis *bs, const char *command, char *msg, size_t len,
		     const char **pattern)
{
	switch (sbx_policy_sudo_rule(bs->role, command, pattern)) {
	case SBX_SUDO_FREE:
	case SBX_SUDO_ALLOWED:
		return 0;
	case SBX_SUDO_NOT_ALLOWED:
		snprintf(msg, len, "%s is not among the commands %s covers (its sudo.allow)",
			 command, bs->role->name);
		return -1;
	case SBX_SUDO_APPROVE_EACH:
		return 1;
	}
	return -1;
}

/* approve_each, the first time: file a one-command request (a request of
 * the role, request.created with command, cwd and runas) and answer
 * ALLOWED=0 with its id, who was asked and how long sbx_sudo may wait.
 * The reply is filled either way. */
static void ask_once(struct sbx_broker *b, struct sbx_call *c, const struct person *who,
		     const struct basis *bs, const char *pattern, int64_t now)
{
	struct sbx_req *open[SBX_OPEN_MAX];
	const struct sbx_role *role = bs->role;
	int64_t wait = b->settings.sudo.wait > 0 ? b->settings.sudo.wait : 120;
	char reason[SBX_COMMAND_MAX + SBX_NAME_MAX + 32], lapses[SBX_RFC3339_LEN], approvers[512];
	size_t cut;
	uint64_t seq = 0;
	uint32_t id;
	json_t *f;

	if (b->fleet) {
		/* Its id would have to come from the fleet's log. */
		sbx_reply_fail(c, SBX_ST_REFUSED, "%s needs a one-off approval (%s: approve_each "
			       "\"%s\"), which a fleet host cannot ask for yet", c->a.command,
			       role->name, pattern);
		return;
	}
	if (!table(b) || !free_asked(b, b->commands)) {
		sbx_reply_fail(c, SBX_ST_UNAVAILABLE, "too many one-command requests are open on "
			       "%s (at most %u); try again later", b->policy->broker.host,
			       SBX_COMMANDS_ASKED_MAX);
		return;
	}
	if (sbx_state_user_open(b->state, who->name, open, SBX_OPEN_MAX) >= SBX_OPEN_MAX / 2) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "%s has too many open requests and grants "
			       "(at most %d)", who->name, SBX_OPEN_MAX / 2);
		return;
	}
	id = sbx_state_next_id(b->state);
	snprintf(reason, sizeof(reason), "run once as %s: %s", c->a.runas[0] ? c->a.runas : "root",
		 c->a.command);
	/* A reason is free text of at most SBX_TEXT_MAX bytes: cut on a
	 * character boundary (the request's own command field is whole). */
	if (strlen(reason) > SBX_TEXT_MAX) {
		cut = SBX_TEXT_MAX - 3;
		while (cut > 0 && ((unsigned char)reason[cut] & 0xc0) == 0x80)
			cut--;
		memcpy(reason + cut, "...", 4);
	}
	sbx_format_rfc3339(now + wait, lapses);
	f = json_object();
	json_object_set_new(f, "id", json_integer(id));
	sbx_rec_str(f, "user", who->name);
	sbx_rec_str(f, "role", role->name);
	json_object_set_new(f, "duration", json_integer(SBX_COMMANDS_APPROVAL_TTL));
	sbx_rec_str(f, "reason", reason);
	/* Someone approves each run, even of a role that approves itself. */
	json_object_set_new(f, "approvals_needed",
			    json_integer(role->auto_approve || !role->approvals ? 1 : role->approvals));
	sbx_rec_str(f, "lapses_at", lapses);
	sbx_rec_str(f, "command", c->a.command);
	sbx_rec_str(f, "cwd", c->a.cwd);
	sbx_rec_str(f, "runas", c->a.runas);
	sbx_rec_str(f, "rule", pattern);
	if (bs->grant)
		json_object_set_new(f, "under", json_integer(bs->grant->id));
	if (record(b, c, who, "request.created", f, &seq, true) < 0)
		return;
	sbx_policy_approvers_text(b->policy, role, who->name, approvers, sizeof(approvers));
	sbx_reply_okf(c, "%s needs a one-off approval (%s: approve_each \"%s\"): request %u",
		      c->a.command, role->name, pattern, id);
	sbx_msg_put_u32(c->reply, SBX_F_ALLOWED, 0);
	sbx_msg_put_u32(c->reply, SBX_F_ID, id);
	sbx_msg_put_str_opt(c->reply, SBX_F_APPROVERS, approvers);
	sbx_msg_put_i64(c->reply, SBX_F_DURATION, wait);
}

/* approve_each, coming back with request c->a.id: may this run use it?
 * It must be who's one-command request for exactly this command, cwd and
 * runas, approved, live and not used.  0, or -1 with why. */
static int use_once(struct sbx_broker *b, struct sbx_call *c, const struct person *who,
		    const struct basis *bs, int64_t now, json_t *f, char *why, size_t len)
{
	const struct sbx_req *r = sbx_state_get(b->state, c->a.id);
	const struct asked *a = find_asked(b->commands, c->a.id);
	json_t *by;

	if (!r || !a || strcmp(r->user, who->name) != 0 || strcmp(a->user, who->name) != 0 ||
	    strcmp(r->role, bs->role->name) != 0 || strcmp(a->command, c->a.command) != 0 ||
	    strcmp(a->cwd, c->a.cwd) != 0 || strcmp(a->runas, c->a.runas) != 0) {
		snprintf(why, len, "request %u is not a one-command request of %s for this "
			 "command, directory and user", c->a.id, who->name);
		return -1;
	}
	if (a->used || r->state != SBX_REQ_ACTIVE || !sbx_req_live(r, now)) {
		snprintf(why, len, "request %u %s", c->a.id, a->used ? "was used already"
			 : r->state == SBX_REQ_PENDING ? "is not approved yet" : "is over");
		return -1;
	}
	by = json_array();
	for (size_t i = 0; i < r->n_approvals; i++)
		json_array_append_new(by, json_string(r->approvals[i].who));
	json_object_set_new(f, "approved_request", json_integer(r->id));
	json_object_set_new(f, "approved_by", by);
	return 0;
}

/* The run of a command, recorded before it starts. */
static void run(struct sbx_broker *b, struct sbx_call *c, bool decide)
{
	struct person who;
	struct basis bs;
	uint64_t seq = 0;
	int64_t now = sbx_now();
	json_int_t once;
	json_t *f;

	if (check_command(c) < 0 || sbx_reply_if_degraded(b, c) || find_person(b, c, &who) < 0)
		return;
	find_basis(b, &who, now, &bs);
	f = command_fields(c, &who, &bs);
	if (decide && (c->a.flags & SBX_SUDO_RUNAS_ROOT) && bs.managed && !bs.role) {
		char msg[700];

		/* A group kept in the credentials after its grant ended (or a
		 * standing membership since taken away) is not enough. */
		snprintf(msg, sizeof(msg), "%s's sudo rests on group %s, but %s holds no live "
			 "grant or standing role of it on %s now; ask again: sbx-request %s "
			 "--reason \"...\"", who.name, bs.held, who.name, b->policy->broker.host,
			 bs.held_role);
		sbx_rec_str(f, "verdict", "refused");
		sbx_rec_str(f, "plugin", "sbx_approval");
		sbx_rec_str(f, "message", msg);
		if (record(b, c, &who, "command.refused", f, &seq, true) < 0)
			return;
		sbx_reply_fail(c, SBX_ST_REFUSED, "%s", msg);
		return;
	}
	if (decide && (c->a.flags & SBX_SUDO_RUNAS_ROOT) && bs.role) {
		const char *pattern = NULL;
		char msg[SBX_COMMAND_MAX + 400];

		int rule = role_rule(&bs, c->a.command, msg, sizeof(msg), &pattern);

		if (rule > 0 && !c->a.has_id) {
			json_decref(f);
			ask_once(b, c, &who, &bs, pattern, now);
			return;
		}
		if (rule > 0 && use_once(b, c, &who, &bs, now, f, msg, sizeof(msg)) < 0)
			rule = -1;
		if (rule < 0) {
			sbx_rec_str(f, "verdict", "refused");
			sbx_rec_str(f, "plugin", "sbx_approval");
			sbx_rec_str(f, "message", msg);
			if (pattern)
				sbx_rec_str(f, "rule", pattern);
			if (record(b, c, &who, "command.refused", f, &seq, true) < 0)
				return;
			sbx_reply_fail(c, SBX_ST_REFUSED, "%s", msg);
			return;
		}
		if (pattern)
			sbx_rec_str(f, "rule", pattern);
	}
	if (who.too_many && decide && (c->a.flags & SBX_SUDO_RUNAS_ROOT)) {
		json_decref(f);
		sbx_reply_fail(c, SBX_ST_REFUSED, "%s holds more than %d groups", who.name,
			       GROUPS_MAX);
		return;
	}
	sbx_rec_str(f, "verdict", "accepted");
	once = json_integer_value(json_object_get(f, "approved_request"));
	if (record(b, c, &who, "command.run", f, &seq, true) < 0)
		return;
	remember(b, seq, &who, &bs);
	if (once) {
		/* Used: the approval ends with its one run. */
		uint64_t end_seq = 0;
		char why[300];

		if (sbx_broker_end(b, (uint32_t)once, false, SBX_SYSTEM_ACTOR, NULL, true,
				   "used for its one command", NULL, &end_seq, why, sizeof(why)) == 0 &&
		    end_seq > c->wait_seq)
			c->wait_seq = end_seq;
	}
	sbx_reply_okf(c, "command recorded (%s)", bs.via);
	reply_basis(c, &bs, seq);
}

void sbx_op_sudo_check(struct sbx_broker *b, struct sbx_call *c)
{
	run(b, c, true);
}

void sbx_op_sudo_run(struct sbx_broker *b, struct sbx_call *c)
{
	run(b, c, false);
}

void sbx_op_sudo_refused(struct sbx_broker *b, struct sbx_call *c)
{
	struct person who;
	struct basis bs;
	uint64_t seq = 0;
	char reason[SBX_TEXT_MAX + 1];
	json_t *f;

	if (check_command(c) < 0 || sbx_reply_if_degraded(b, c) || find_person(b, c, &who) < 0)
		return;
	if (strcmp(c->a.verdict, "rejected") != 0 && strcmp(c->a.verdict, "error") != 0) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "verdict must be rejected or error");
		return;
	}
	find_basis(b, &who, sbx_now(), &bs);
	f = command_fields(c, &who, &bs);
	sbx_rec_str(f, "verdict", c->a.verdict);
	sbx_rec_str(f, "plugin", c->a.plugin[0] ? c->a.plugin : "sudo");
	if (c->a.reason[0])
		sbx_rec_str(f, "message", sbx_sanitize(c->a.reason, reason, sizeof(reason)));
	if (record(b, c, &who, "command.refused", f, &seq, true) < 0)
		return;
	sbx_reply_ok(c, "refusal recorded");
}

void sbx_op_sudo_exited(struct sbx_broker *b, struct sbx_call *c)
{
	struct sbx_commands *t = b->commands;
	const struct running *r = NULL;
	struct person who;
	uint64_t seq = 0;
	char reason[SBX_TEXT_MAX + 1];
	json_t *f;

	if (!c->a.has_seq || c->a.seq <= 0) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "command.exited needs the run's seq");
		return;
	}
	if (sbx_reply_if_degraded(b, c) || find_person(b, c, &who) < 0)
		return;
	for (size_t i = 0; t && i < SBX_COMMANDS_RUNNING_MAX; i++)
		if (t->run[i].seq == (uint64_t)c->a.seq)
			r = &t->run[i];
	/* Only the person who ran it says how it ended. */
	if (r && r->uid != who.uid) {
		sbx_reply_fail(c, SBX_ST_NOTFOUND, "no such command of %s", who.name);
		return;
	}
	f = json_object();
	sbx_rec_str(f, "user", who.name);
	json_object_set_new(f, "uid", json_integer(who.uid));
	json_object_set_new(f, "run", json_integer(c->a.seq));
	if (r) {
		if (r->grant)
			json_object_set_new(f, "id", json_integer(r->grant));
		set_opt(f, "role", r->role);
		sbx_rec_str(f, "via", r->via);
	}
	if (c->a.has_signal)
		json_object_set_new(f, "signal", json_integer(c->a.signal));
	else if (c->a.has_exit_status)
		json_object_set_new(f, "exit_status", json_integer(c->a.exit_status));
	if (c->a.elapsed_ms >= 0)
		json_object_set_new(f, "elapsed_ms", json_integer(c->a.elapsed_ms));
	if (c->a.reason[0])
		sbx_rec_str(f, "message", sbx_sanitize(c->a.reason, reason, sizeof(reason)));
	if (record(b, c, &who, "command.exited", f, &seq, !r) < 0)
		return;
	/* The command has ended and nothing waits on this record: sudo
	 * returns at once instead of after an fdatasync.  It is no change
	 * of access (those are answered only once durable); a crash in the
	 * next milliseconds leaves command.run without its end, which the
	 * journal shows as such. */
	c->wait_seq = 0;
	if (r)
		memset((struct running *)r, 0, sizeof(*r));
	sbx_reply_ok(c, "end queued");
}

/* A record failmode=open wrote down while the broker was away, brought by
 * a later sudo run.  The spool is root's (sudo wrote it, as root, before
 * the command ran), so its uid is taken as written; what the command ran
 * under then cannot be known now: via "unknown". */
void sbx_op_sudo_spooled(struct sbx_broker *b, struct sbx_call *c)
{
	static const char *const kinds[] = { "run", "refused", "exited" };
	struct sbx_caller who = { 0 };
	char event[32], reason[SBX_TEXT_MAX + 1], when[SBX_RFC3339_LEN];
	uint64_t seq = 0;
	bool known = false;
	json_t *f;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		known |= strcmp(c->a.state, kinds[i]) == 0;
	if (!known || !c->a.has_uid || c->a.created_at <= 0) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "a spooled command needs its kind "
			       "(run, refused, exited), uid and time");
		return;
	}
	if (check_command(c) < 0 || sbx_reply_if_degraded(b, c))
		return;
	who.uid = c->a.uid;
	who.gid = (gid_t)-1;
	sbx_caller_resolve(&who, b->policy->broker.admin_group);
	f = json_object();
	sbx_rec_str(f, "user", who.name);
	json_object_set_new(f, "uid", json_integer(who.uid));
	set_opt(f, "runas", c->a.runas);
	sbx_rec_str(f, "command", c->a.command);
	set_opt(f, "cwd", c->a.cwd);
	set_opt(f, "tty", c->a.tty);
	sbx_rec_str(f, "via", "unknown");
	json_object_set_new(f, "spooled", json_true());
	sbx_format_rfc3339(c->a.created_at, when);
	sbx_rec_str(f, "ran_at", when);
	if (strcmp(c->a.state, "run") == 0) {
		sbx_rec_str(f, "verdict", "accepted");
		sbx_rec_str(f, "message", "run while the broker was unreachable (failmode=open)");
	} else if (strcmp(c->a.state, "refused") == 0) {
		sbx_rec_str(f, "verdict", c->a.verdict[0] ? c->a.verdict : "rejected");
		sbx_rec_str(f, "plugin", c->a.plugin[0] ? c->a.plugin : "sudo");
	} else {
		if (c->a.has_signal)
			json_object_set_new(f, "signal", json_integer(c->a.signal));
		else if (c->a.has_exit_status)
			json_object_set_new(f, "exit_status", json_integer(c->a.exit_status));
		if (c->a.elapsed_ms >= 0)
			json_object_set_new(f, "elapsed_ms", json_integer(c->a.elapsed_ms));
	}
	if (c->a.reason[0])
		sbx_rec_str(f, "message", sbx_sanitize(c->a.reason, reason, sizeof(reason)));
	snprintf(event, sizeof(event), "command.%s", c->a.state);
	if (sbx_broker_record(b, event, who.name, f, &seq) < 0) {
		if (!sbx_reply_if_degraded(b, c))
			sbx_reply_fail(c, SBX_ST_UNAVAILABLE, "the command could not be recorded");
		return;
	}
	c->wait_seq = seq;
	sbx_reply_ok(c, "spooled command recorded");
}
