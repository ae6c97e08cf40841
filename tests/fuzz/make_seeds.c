/*
 * Writes the seed corpora that come from sbx itself: request frames built
 * with the frame builder, the broker's real replies to them, the journal
 * and snapshot a short broker run leaves, the groups.table it writes, and
 * Slack callbacks signed as Slack signs them.  Usage:
 *
 *   make tests/fuzz/make_seeds && tests/fuzz/make_seeds SRCDIR/tests/fuzz/corpus
 *
 * It overwrites the files it names (the journal's times change with
 * every run) and touches no other file.  The hand-written seeds (policies,
 * durations, DNs, text) live in the corpus directly.
 */
#include "config.h"

#include "broker.h"
#include "dispatch.h"
#include "frame.h"
#include "identity.h"
#include "sbx_table.h"
#include "slack_int.h"
#include "timeutil.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SBX_TEST_SRCDIR
#define SBX_TEST_SRCDIR "."
#endif

static const char *out_dir;
static char rig_dir[PATH_MAX];
static struct sbx_broker B;

static void die(const char *what)
{
	fprintf(stderr, "make_seeds: %s\n", what);
	exit(1);
}

static void write_seed(const char *target, const char *name, const void *a, size_t alen,
		       const void *b, size_t blen)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out_dir, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
	f = fopen(path, "wb");
	if (!f || (alen && fwrite(a, 1, alen, f) != alen) || (blen && fwrite(b, 1, blen, f) != blen) ||
	    fclose(f) != 0)
		die(path);
}

static void write_text(const char *target, const char *name, const char *text)
{
	write_seed(target, name, text, strlen(text), NULL, 0);
}

/* ---- frames ------------------------------------------------------------------ */

struct req {
	const char *name;
	sbx_msg m;
};

static sbx_msg start(uint16_t op, const char *as)
{
	sbx_msg m;

	sbx_msg_init(&m, op);
	if (as)
		sbx_msg_put_str(&m, SBX_F_AS_USER, as);
	return m;
}

static void finish(sbx_msg *m)
{
	if (sbx_msg_finish(m) || sbx_frame_validate(m->buf, m->len, 0, NULL, 0))
		die("a seed frame does not validate");
}

/* The requests, one per op, as the CLIs and the modules send them. */
static size_t build_requests(struct req *r)
{
	size_t n = 0;
	sbx_msg m;

#define ADD(label)                      \
	do {                            \
		finish(&m);             \
		r[n].name = label;      \
		r[n++].m = m;           \
	} while (0)

	m = start(SBX_OP_CHECK, NULL);
	sbx_msg_put_str(&m, SBX_F_USER, "alice");
	sbx_msg_put_str(&m, SBX_F_SERVICE, "sshd");
	sbx_msg_put_str(&m, SBX_F_RHOST, "192.0.2.10");
	sbx_msg_put_str(&m, SBX_F_TTY, "ssh");
	sbx_msg_put_u32(&m, SBX_F_FLAGS, SBX_CHECK_RECORD);
	ADD("check-alice-pam");
	m = start(SBX_OP_CHECK, NULL);
	sbx_msg_put_str(&m, SBX_F_USER, "erin");
	ADD("check-erin");
	m = start(SBX_OP_EXPLAIN, NULL);
	sbx_msg_put_str(&m, SBX_F_USER, "erin");
	ADD("explain-erin");
	m = start(SBX_OP_PING, NULL);
	ADD("ping");
	m = start(SBX_OP_REQUEST, "erin");
	sbx_msg_put_str(&m, SBX_F_ROLE, "sandbox-admin");
	sbx_msg_put_i64(&m, SBX_F_DURATION, 3600);
	sbx_msg_put_str(&m, SBX_F_REASON, "debugging the payment service outage");
	ADD("request-erin-sandbox-admin");
	m = start(SBX_OP_REQUEST, "alice");
	sbx_msg_put_str(&m, SBX_F_ROLE, "prod-data");
	sbx_msg_put_str(&m, SBX_F_REASON, "incident review for the clinical data feed");
	sbx_msg_put_str(&m, SBX_F_TICKET, "INC-1234");
	ADD("request-alice-prod-data-ticket");
	m = start(SBX_OP_REQUEST, "alice");
	sbx_msg_put_str(&m, SBX_F_ROLE, "sandbox-readonly");
	sbx_msg_put_i64(&m, SBX_F_DURATION, 900);
	ADD("request-alice-readonly-auto");
	m = start(SBX_OP_REQUEST, "erin");
	sbx_msg_put_u32(&m, SBX_F_EXTENDS, 1);
	sbx_msg_put_i64(&m, SBX_F_DURATION, 1800);
	sbx_msg_put_str(&m, SBX_F_REASON, "the outage is not over yet, need more time");
	ADD("request-erin-extends-1");
	m = start(SBX_OP_LIST, "erin");
	sbx_msg_put_u32(&m, SBX_F_FLAGS, SBX_LIST_ALL);
	ADD("list-erin-all");
	m = start(SBX_OP_STATUS, "erin");
	sbx_msg_put_u32(&m, SBX_F_ID, 1);
	ADD("status-1");
	m = start(SBX_OP_CANCEL, "erin");
	sbx_msg_put_u32(&m, SBX_F_ID, 1);
	sbx_msg_put_str(&m, SBX_F_REASON, "fixed it without");
	ADD("cancel-1");
	m = start(SBX_OP_DROP, "erin");
	sbx_msg_put_u32(&m, SBX_F_ID, 1);
	ADD("drop-1");
	m = start(SBX_OP_ROLES, "dave");
	ADD("roles-dave");
	m = start(SBX_OP_PENDING, "frank");
	ADD("pending-frank");
	m = start(SBX_OP_APPROVE, "frank");
	sbx_msg_put_u32(&m, SBX_F_ID, 1);
	sbx_msg_put_str(&m, SBX_F_COMMENT, "ok for the outage");
	ADD("approve-1-frank");
	m = start(SBX_OP_APPROVE, "grace");
	sbx_msg_put_u32(&m, SBX_F_ID, 2);
	sbx_msg_put_i64(&m, SBX_F_DURATION, 1200);
	ADD("approve-2-grace-shorter");
	m = start(SBX_OP_DENY, "grace");
	sbx_msg_put_u32(&m, SBX_F_ID, 1);
	sbx_msg_put_str(&m, SBX_F_REASON, "use the read-only role");
	ADD("deny-1-grace");
	m = start(SBX_OP_REVOKE, NULL);
	sbx_msg_put_u32(&m, SBX_F_ID, 1);
	sbx_msg_put_str(&m, SBX_F_REASON, "incident closed");
	ADD("revoke-1-root");
	m = start(SBX_OP_GRANTS, NULL);
	sbx_msg_put_u32(&m, SBX_F_FLAGS, SBX_LIST_ALL);
	ADD("grants-all");
	m = start(SBX_OP_SESSION_OPEN, NULL);
	sbx_msg_put_str(&m, SBX_F_USER, "erin");
	sbx_msg_put_str(&m, SBX_F_SERVICE, "sshd");
	sbx_msg_put_str(&m, SBX_F_RHOST, "192.0.2.10");
	sbx_msg_put_str(&m, SBX_F_TTY, "/dev/pts/3");
	sbx_msg_put_u32(&m, SBX_F_ID, 1);
	sbx_msg_put_u32(&m, SBX_F_PID, 1);
	ADD("session-open-erin");
	m = start(SBX_OP_SESSION_CLOSE, NULL);
	sbx_msg_put_u32(&m, SBX_F_SESSION, 1);
	ADD("session-close-1");
	m = start(SBX_OP_SESSIONS, NULL);
	ADD("sessions");
	m = start(SBX_OP_GROUP_BYNAME, NULL);
	sbx_msg_put_str(&m, SBX_F_UNIX_GROUP, "sbx-admin");
	ADD("group-byname-sbx-admin");
	m = start(SBX_OP_GROUP_BYGID, NULL);
	sbx_msg_put_u32(&m, SBX_F_GID, 60002);
	ADD("group-bygid-60002");
	m = start(SBX_OP_GROUP_LIST, NULL);
	ADD("group-list");
	m = start(SBX_OP_GROUP_MEMBERSHIPS, NULL);
	sbx_msg_put_str(&m, SBX_F_USER, "erin");
	ADD("group-memberships-erin");
#undef ADD
	return n;
}

/* ---- the broker run ---------------------------------------------------------- */

static void broker_open(void)
{
	struct sbx_policy_errors errs = { 0 };
	char path[PATH_MAX + 32], why[1024];
	const char *policy = SBX_TEST_SRCDIR "/packaging/examples/policy.yaml";

	memset(&B, 0, sizeof(B));
	if (sbx_policy_load_file(policy, &B.policy, &B.settings, &errs))
		die("cannot load the reference policy");
	free(B.policy->broker.socket);
	free(B.policy->broker.state_dir);
	snprintf(path, sizeof(path), "%s/run/broker.sock", rig_dir);
	B.policy->broker.socket = strdup(path);
	snprintf(path, sizeof(path), "%s/state", rig_dir);
	B.policy->broker.state_dir = strdup(path);
	B.config_path = strdup(policy);
	if (sbx_broker_start(&B, why, sizeof(why)))
		die(why);
}

/* Hand a request to the broker as root (pid: ours, a live process for
 * sessions); keep the reply as a frame seed. */
static void ask(const char *name, sbx_msg *req, int save_reply)
{
	struct sbx_caller c = { .uid = 0, .gid = 0, .pid = getppid() };
	sbx_msg reply = { 0 };
	uint64_t wait_seq = 0;
	char label[128];

	sbx_broker_handle(&B, &c, req->buf, req->len, &reply, &wait_seq);
	if (sbx_msg_finish(&reply) || sbx_frame_validate(reply.buf, reply.len, 1, NULL, 0))
		die("a reply does not validate");
	if (save_reply) {
		snprintf(label, sizeof(label), "reply-%s", name);
		write_seed("frame", label, reply.buf, reply.len, NULL, 0);
	}
	sbx_msg_free(&reply);
	sbx_journal_flush(B.journal);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
		die(path);
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		die(path);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static struct req *find(struct req *r, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(r[i].name, name) == 0)
			return &r[i];
	die(name);
	return NULL;
}

/* Several requests in one dispatch input: a story the broker follows. */
static void write_story(const char *name, struct req *r, size_t n, const char **steps)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	for (; *steps; steps++) {
		struct req *q = find(r, n, *steps);

		buf = realloc(buf, len + q->m.len);
		if (!buf)
			die("out of memory");
		memcpy(buf + len, q->m.buf, q->m.len);
		len += q->m.len;
	}
	write_seed("dispatch", name, buf, len, NULL, 0);
	free(buf);
}

static void journal_seeds(void)
{
	char path[PATH_MAX + 64];
	const uint8_t flags0 = 0, rechain = 1, snapshot = 2, threaded = 4, open = 8;
	char *seg, *snap, *nl;
	size_t seglen, snaplen;
	json_t *doc;

	snprintf(path, sizeof(path), "%s/state/journal/000000000001.jsonl", rig_dir);
	seg = slurp(path, &seglen);
	write_seed("journal", "segment", &flags0, 1, seg, seglen);
	write_seed("journal", "segment-rechained", &rechain, 1, seg, seglen);
	write_seed("journal", "segment-threaded", &threaded, 1, seg, seglen);
	/* A torn tail: the last line without its newline, half of it. */
	write_seed("journal", "segment-torn-tail", &flags0, 1, seg, seglen - 40);
	write_seed("journal", "segment-torn-tail-open", &open, 1, seg, seglen - 40);
	/* One record of each kind, alone (seq 1 only for the first). */
	nl = memchr(seg, '\n', seglen);
	write_seed("journal", "record-first", &flags0, 1, seg, (size_t)(nl - seg) + 1);
	snprintf(path, sizeof(path), "%s/state/snapshot.json", rig_dir);
	snap = slurp(path, &snaplen);
	doc = json_loads(snap, 0, NULL);
	if (!doc)
		die("snapshot.json does not parse");
	free(snap);
	snap = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	{
		size_t l = strlen(snap);
		char *both = malloc(l + 1 + seglen);

		memcpy(both, snap, l);
		both[l] = '\n';
		memcpy(both + l + 1, seg, seglen);
		write_seed("journal", "snapshot-and-segment", &snapshot, 1, both, l + 1 + seglen);
		both[l + 1 + seglen - 1] = ' ';
		write_seed("journal", "snapshot-and-segment-torn-open", &(uint8_t){ snapshot | open },
			   1, both, l + 1 + seglen);
		free(both);
	}
	free(snap);
	free(seg);
}

static void table_seeds(void)
{
	char path[PATH_MAX + 64];
	const uint8_t flags0 = 0, fix = 1;
	struct sbx_tbl_builder *tb = sbx_tbl_builder_new();
	uint8_t *out = NULL;
	size_t len;
	char *tbl;
	int g;

	snprintf(path, sizeof(path), "%s/run/groups.table", rig_dir);
	tbl = slurp(path, &len);
	write_seed("table", "groups-table-broker", &flags0, 1, tbl, len);
	write_seed("table", "groups-table-broker-fixsum", &fix, 1, tbl, len);
	free(tbl);
	/* A bigger one, with expired members and an empty group. */
	g = sbx_tbl_add_group(tb, "sbx-admin", 60001);
	sbx_tbl_add_member(tb, g, "erin", SBX_TBL_FOREVER);
	sbx_tbl_add_member(tb, g, "dave", 1795000000LL + 3600);
	sbx_tbl_add_member(tb, g, "alice", 1000);
	g = sbx_tbl_add_group(tb, "sbx-phi", 60002);
	sbx_tbl_add_member(tb, g, "alice", SBX_TBL_FOREVER);
	sbx_tbl_add_group(tb, "sbx-empty", 60003);
	if (sbx_tbl_finish(tb, 42, 1795000000LL, &out, &len))
		die("table");
	write_seed("table", "groups-table-three-groups", &flags0, 1, out, len);
	write_seed("table", "groups-table-three-groups-fixsum", &fix, 1, out, len);
	free(out);
	sbx_tbl_builder_free(tb);
	/* Names for the writer's round trip. */
	write_text("table", "names-for-builder", "\001gsbx-admin erin dave alice gsbx-phi alice bob gempty");
}

/* Slack's button presses, signed for the target's clock and secret. */
static void slack_seeds(void)
{
	static const char *secret = "8f742231b10e8888abcd99yyyzzz85a5";
	static const char *payloads[][2] = {
		{ "approve", "{\"type\":\"block_actions\",\"user\":{\"id\":\"U0FRANK\",\"username\":\"frank\",\"team_id\":\"T0TEST\"},\"team\":{\"id\":\"T0TEST\",\"domain\":\"test\"},\"api_app_id\":\"A0TEST\",\"token\":\"unused\",\"container\":{\"type\":\"message\",\"message_ts\":\"1.2\",\"channel_id\":\"C0TEST\"},\"channel\":{\"id\":\"C0TEST\",\"name\":\"access\"},\"response_url\":\"https://hooks.slack.com/actions/T0TEST/1/responsesecretpart\",\"actions\":[{\"type\":\"button\",\"action_id\":\"sbx_approve\",\"block_id\":\"sbx-request-1\",\"value\":\"v1.1.0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\",\"action_ts\":\"1795000000.123456\",\"text\":{\"type\":\"plain_text\",\"text\":\"Approve\"}}]}" },
		{ "deny", "{\"type\":\"block_actions\",\"user\":{\"id\":\"U0GRACE\"},\"response_url\":\"http://127.0.0.1:8089/actions/T0TEST/1/x\",\"actions\":[{\"type\":\"button\",\"action_id\":\"sbx_deny\",\"value\":\"v1.42.abc\"}]}" },
		{ "view-submission", "{\"type\":\"view_submission\",\"user\":{\"id\":\"U0BOB\"}}" },
		{ "other-button", "{\"type\":\"block_actions\",\"user\":{\"id\":\"U0BOB\"},\"actions\":[{\"action_id\":\"other\",\"value\":\"v1.1.x\"}]}" },
	};
	const char *ts = "1795000000";

	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
		char body[8200], enc[8192], sig[SLACK_SIG_LEN + 1], head[128], name[64];
		size_t k = 0;

		/* application/x-www-form-urlencoded, as jq's @uri does it. */
		for (const char *p = payloads[i][1]; *p && k + 4 < sizeof(enc); p++) {
			if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			    (*p >= '0' && *p <= '9') || strchr("-_.~", *p))
				enc[k++] = *p;
			else
				k += (size_t)snprintf(enc + k, 4, "%%%02X", (unsigned char)*p);
		}
		enc[k] = '\0';
		snprintf(body, sizeof(body), "payload=%s", enc);
		if (slack_sign(secret, strlen(secret), ts, body, strlen(body), sig))
			die("slack_sign");
		snprintf(head, sizeof(head), "%s\n%s\n", ts, sig);
		snprintf(name, sizeof(name), "signed-click-%s", payloads[i][0]);
		write_seed("slack", name, head, strlen(head), body, strlen(body));
	}
	write_text("slack", "stale-timestamp", "1694000000\nv0=00\npayload=%7B%7D");
	write_text("slack", "escape-text", "v1.7.abc\n\nreason: <@U0BOB> & <https://x|link>\n\tcut here");
}

int main(int argc, char **argv)
{
	struct req r[64];
	size_t n;
	char cmd[PATH_MAX + 16];

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	n = build_requests(r);
	for (size_t i = 0; i < n; i++) {
		write_seed("frame", r[i].name, r[i].m.buf, r[i].m.len, NULL, 0);
		write_seed("dispatch", r[i].name, r[i].m.buf, r[i].m.len, NULL, 0);
	}
	{
		static const char *grant[] = { "request-erin-sandbox-admin", "approve-1-frank",
					       "check-erin", "session-open-erin", "group-memberships-erin",
					       "revoke-1-root", NULL };
		static const char *extend[] = { "request-erin-sandbox-admin", "approve-1-frank",
						"request-erin-extends-1", "pending-frank", NULL };
		static const char *cancel[] = { "request-erin-sandbox-admin", "status-1", "cancel-1",
						"list-erin-all", NULL };
		static const char *deny[] = { "request-erin-sandbox-admin", "deny-1-grace", NULL };
		static const char *two[] = { "request-alice-readonly-auto",
					     "request-alice-prod-data-ticket", "approve-1-frank",
					     "approve-2-grace-shorter", "grants-all", "drop-1", NULL };
		static const char *session[] = { "request-alice-readonly-auto", "session-open-erin",
						 "sessions", "session-close-1", NULL };

		write_story("story-request-approve-login-revoke", r, n, grant);
		write_story("story-extend", r, n, extend);
		write_story("story-cancel", r, n, cancel);
		write_story("story-deny", r, n, deny);
		write_story("story-two-roles", r, n, two);
		write_story("story-session", r, n, session);
	}

	/* A short broker run: its replies, journal, snapshot and table. */
	snprintf(rig_dir, sizeof(rig_dir), "/tmp/sbx-seeds-XXXXXX");
	if (!mkdtemp(rig_dir))
		die("mkdtemp");
	broker_open();
	ask("request-erin-sandbox-admin", &find(r, n, "request-erin-sandbox-admin")->m, 1);
	ask("pending-frank", &find(r, n, "pending-frank")->m, 1);
	ask("approve-1-frank", &find(r, n, "approve-1-frank")->m, 1);
	ask("request-alice-readonly-auto", &find(r, n, "request-alice-readonly-auto")->m, 1);
	{
		sbx_msg m = start(SBX_OP_REQUEST, "dave");

		sbx_msg_put_str(&m, SBX_F_ROLE, "sandbox-admin");
		sbx_msg_put_str(&m, SBX_F_REASON, "rotate the sandbox host keys");
		finish(&m);
		ask("request-dave-pending", &m, 1);
		sbx_msg_free(&m);
	}
	ask("check-erin", &find(r, n, "check-erin")->m, 1);
	ask("check-alice-pam", &find(r, n, "check-alice-pam")->m, 0);
	ask("explain-erin", &find(r, n, "explain-erin")->m, 1);
	ask("roles-dave", &find(r, n, "roles-dave")->m, 1);
	ask("list-erin-all", &find(r, n, "list-erin-all")->m, 1);
	ask("grants-all", &find(r, n, "grants-all")->m, 1);
	ask("ping", &find(r, n, "ping")->m, 1);
	{
		/* A session led by a child of ours (the broker signals a
		 * session's processes when its grant ends), then the grant
		 * revoked, the session ended, a pending request denied. */
		sbx_msg m = start(SBX_OP_SESSION_OPEN, NULL);
		pid_t victim = fork();

		if (victim < 0)
			die("fork");
		if (victim == 0) {
			for (;;)
				pause();
		}
		sbx_msg_put_str(&m, SBX_F_USER, "erin");
		sbx_msg_put_str(&m, SBX_F_SERVICE, "sshd");
		sbx_msg_put_str(&m, SBX_F_TTY, "/dev/pts/3");
		sbx_msg_put_u32(&m, SBX_F_ID, 1);
		sbx_msg_put_u32(&m, SBX_F_PID, (uint32_t)victim);
		finish(&m);
		ask("session-open-erin", &m, 1);
		sbx_msg_free(&m);
		ask("sessions", &find(r, n, "sessions")->m, 1);
		ask("group-byname-sbx-admin", &find(r, n, "group-byname-sbx-admin")->m, 1);
		ask("group-list", &find(r, n, "group-list")->m, 1);
		ask("group-memberships-erin", &find(r, n, "group-memberships-erin")->m, 1);
		sbx_broker_timers(&B, sbx_now());
		table_seeds();
		ask("revoke-1-root", &find(r, n, "revoke-1-root")->m, 1);
		sbx_broker_timers(&B, sbx_now());
		m = start(SBX_OP_DENY, "grace");
		sbx_msg_put_u32(&m, SBX_F_ID, 3);
		sbx_msg_put_str(&m, SBX_F_REASON, "use the read-only role");
		finish(&m);
		ask("deny-3-grace", &m, 1);
		sbx_msg_free(&m);
		ask("session-close-1", &find(r, n, "session-close-1")->m, 0);
		kill(victim, SIGKILL);
		waitpid(victim, NULL, 0);
	}
	sbx_broker_timers(&B, sbx_now());
	{
		sbx_msg err = { 0 };

		sbx_broker_malformed(&err, "field 0x0201 has length 3, want 4");
		sbx_msg_finish(&err);
		write_seed("frame", "reply-malformed", err.buf, err.len, NULL, 0);
		sbx_msg_free(&err);
	}
	sbx_broker_shutdown(&B);
	sbx_broker_free(&B);
	journal_seeds();
	slack_seeds();

	for (size_t i = 0; i < n; i++)
		sbx_msg_free(&r[i].m);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rig_dir);
	return system(cmd) == 0 ? 0 : 1;
}
