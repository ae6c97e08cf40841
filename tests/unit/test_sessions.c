/*
 * The broker's session table (broker/sessions.c) driven through the real
 * op handlers, journal and policy, with forked children as session
 * leaders: registration rules, ending sessions when their grant ends,
 * what survives a restart, and leaders that vanish.  Runs without root:
 * the caller's uid 0 is simulated; signals only go to our own children.
 */
#include "config.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker_rig.h"
#include "sessions.h"

/* One request through the broker's dispatcher.  Returns the STATUS and
 * keeps the reply frame's SESSION (if any) in *session. */
static uint32_t call(struct rig *r, struct sbx_caller *c, sbx_msg *req, uint32_t *session,
		     char *msg, size_t msglen)
{
	sbx_msg reply = { 0 };
	uint32_t status = rig_call(r, c, req, msg, msglen, &reply);
	sbx_reader rd;
	sbx_field f;

	if (session) {
		*session = 0;
		sbx_reader_init_frame(&rd, reply.buf, reply.len);
		if (sbx_reader_find(&rd, SBX_F_SESSION, &f) == 1)
			*session = sbx_field_u32(&f);
	}
	sbx_msg_free(&reply);
	return status;
}

static uint32_t open_session(struct rig *r, struct sbx_caller *c, const char *user, pid_t pid,
			     uint32_t *session, char *msg, size_t msglen)
{
	sbx_msg m;

	sbx_msg_init(&m, SBX_OP_SESSION_OPEN);
	sbx_msg_put_str(&m, SBX_F_USER, user);
	sbx_msg_put_str(&m, SBX_F_TTY, "pts/1");
	sbx_msg_put_str(&m, SBX_F_RHOST, "192.0.2.3");
	if (pid)
		sbx_msg_put_u32(&m, SBX_F_PID, (uint32_t)pid);
	return call(r, c, &m, session, msg, msglen);
}

/* erin's sandbox-admin grant, approved by frank; returns its id. */
static uint32_t erin_grant(struct rig *r)
{
	sbx_msg m;

	sbx_msg_init(&m, SBX_OP_REQUEST);
	sbx_msg_put_str(&m, SBX_F_AS_USER, "erin");
	sbx_msg_put_str(&m, SBX_F_ROLE, "sandbox-admin");
	sbx_msg_put_str(&m, SBX_F_REASON, "unit test of sessions");
	cr_assert_eq(call(r, &r->root, &m, NULL, NULL, 0), SBX_ST_OK);
	sbx_msg_init(&m, SBX_OP_APPROVE);
	sbx_msg_put_str(&m, SBX_F_AS_USER, "frank");
	sbx_msg_put_u32(&m, SBX_F_ID, sbx_state_next_id(r->b.state) - 1);
	cr_assert_eq(call(r, &r->root, &m, NULL, NULL, 0), SBX_ST_OK);
	return sbx_state_next_id(r->b.state) - 1;
}

static void revoke_grant(struct rig *r, uint32_t id)
{
	sbx_msg m;

	sbx_msg_init(&m, SBX_OP_REVOKE);
	sbx_msg_put_str(&m, SBX_F_AS_USER, "frank");
	sbx_msg_put_u32(&m, SBX_F_ID, id);
	sbx_msg_put_str(&m, SBX_F_REASON, "unit test");
	cr_assert_eq(call(r, &r->root, &m, NULL, NULL, 0), SBX_ST_OK);
}

/* A session leader: waits for a signal.  With a grandchild, writes its
 * pid to *grandchild first. */
static pid_t spawn_leader(pid_t *grandchild)
{
	int fds[2];
	pid_t pid;

	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		pid_t g = 0;

		/* Die with the test, and let go of its fds (the journal's
		 * lock among them, which a restart must take again). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (int fd = 3; fd < 1024; fd++)
			if (fd != fds[1])
				close(fd);
		signal(SIGHUP, SIG_DFL);
		if (grandchild) {
			g = fork();
			if (g == 0) {
				for (;;)
					pause();
			}
		}
		if (write(fds[1], &g, sizeof(g)) != sizeof(g))
			_exit(1);
		for (;;)
			pause();
	}
	close(fds[1]);
	{
		pid_t g = 0;

		cr_assert_eq(read(fds[0], &g, sizeof(g)), (ssize_t)sizeof(g));
		if (grandchild)
			*grandchild = g;
	}
	close(fds[0]);
	return pid;
}

/* Wait for our child to end; its wait status, or -1 after timeout_ms. */
static int reap(pid_t pid, int timeout_ms)
{
	int64_t end = sbx_mono_ms() + timeout_ms;
	int st;

	while (sbx_mono_ms() < end) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			return st;
		(void)poll(NULL, 0, 20);
	}
	return -1;
}

static void kill_and_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	(void)reap(pid, 2000);
}

Test(sessions, open_and_close)
{
	struct rig r;
	uint32_t s = 0, closed = 0;
	pid_t leader;
	sbx_msg m;

	rig_setup(&r);
	leader = spawn_leader(NULL);
	cr_assert_eq(open_session(&r, &r.root, "alice", leader, &s, NULL, 0), SBX_ST_OK);
	cr_assert_eq(s, 1);
	cr_assert_eq(sbx_sessions_count(&r.b), 1);
	sbx_msg_init(&m, SBX_OP_SESSION_CLOSE);
	sbx_msg_put_u32(&m, SBX_F_SESSION, s);
	sbx_msg_put_str(&m, SBX_F_USER, "alice");
	cr_assert_eq(call(&r, &r.root, &m, &closed, NULL, 0), SBX_ST_OK);
	cr_assert_eq(closed, s);
	cr_assert_eq(sbx_sessions_count(&r.b), 0);
	sbx_msg_init(&m, SBX_OP_SESSION_CLOSE);
	sbx_msg_put_u32(&m, SBX_F_SESSION, s);
	cr_assert_eq(call(&r, &r.root, &m, NULL, NULL, 0), SBX_ST_NOTFOUND,
		     "a session closes once");
	kill_and_reap(leader);
	rig_teardown(&r);
}

Test(sessions, close_by_leader_pid)
{
	struct rig r;
	uint32_t s = 0, closed = 0;
	sbx_msg m;

	rig_setup(&r);
	/* No PID field: the caller's own pid (SO_PEERCRED) leads it. */
	cr_assert_eq(open_session(&r, &r.root, "alice", 0, &s, NULL, 0), SBX_ST_OK);
	sbx_msg_init(&m, SBX_OP_SESSION_CLOSE);
	sbx_msg_put_str(&m, SBX_F_USER, "alice");
	cr_assert_eq(call(&r, &r.root, &m, &closed, NULL, 0), SBX_ST_OK);
	cr_assert_eq(closed, s);
	rig_teardown(&r);
}

Test(sessions, only_root_and_only_who_may_log_in)
{
	struct rig r;
	struct sbx_caller user = { .uid = 1000, .gid = 1000, .pid = getpid() };
	char msg[512];

	rig_setup(&r);
	cr_assert_eq(open_session(&r, &user, "alice", 0, NULL, msg, sizeof(msg)), SBX_ST_REFUSED);
	cr_assert(strstr(msg, "only root"), "%s", msg);
	cr_assert_eq(open_session(&r, &r.root, "bob", 0, NULL, msg, sizeof(msg)), SBX_ST_REFUSED);
	cr_assert(strstr(msg, "bob has no role"), "%s", msg);
	cr_assert_eq(open_session(&r, &r.root, "erin", 0, NULL, msg, sizeof(msg)), SBX_ST_REFUSED,
		     "erin without a grant may not log in");
	cr_assert_eq(open_session(&r, &r.root, "alice", 999999999, NULL, msg, sizeof(msg)),
		     SBX_ST_BADINPUT, "no such process");
	cr_assert_eq(open_session(&r, &r.root, "al ice", 0, NULL, msg, sizeof(msg)), SBX_ST_BADINPUT);
	cr_assert_eq(sbx_sessions_count(&r.b), 0);
	rig_teardown(&r);
}

Test(sessions, revoking_the_grant_ends_the_session_and_below)
{
	struct rig r;
	uint32_t s = 0, g;
	pid_t leader, grandchild = 0;
	uint64_t start;
	int st;

	rig_setup(&r);
	g = erin_grant(&r);
	leader = spawn_leader(&grandchild);
	cr_assert_gt(grandchild, 0);
	cr_assert_eq(open_session(&r, &r.root, "erin", leader, &s, NULL, 0), SBX_ST_OK);
	revoke_grant(&r, g);
	st = reap(leader, 3000);
	cr_assert_neq(st, -1, "the leader was not ended");
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGHUP, "ended by %d, not SIGHUP", st);
	for (int i = 0; i < 100 && sbx_proc_start_time(grandchild, &start) == 0; i++)
		(void)poll(NULL, 0, 20);
	cr_assert_neq(sbx_proc_start_time(grandchild, &start), 0, "the process below it lives on");
	/* It stays in the table (ending) until its processes are gone. */
	rig_tick(&r);
	cr_assert_eq(sbx_sessions_count(&r.b), 0);
	rig_teardown(&r);
}

Test(sessions, standing_sessions_outlive_grants)
{
	struct rig r;
	uint32_t s = 0;
	pid_t leader;
	sbx_msg m;

	rig_setup(&r);
	/* dave: standing (developers) and eligible for sandbox-admin */
	sbx_msg_init(&m, SBX_OP_REQUEST);
	sbx_msg_put_str(&m, SBX_F_AS_USER, "dave");
	sbx_msg_put_str(&m, SBX_F_ROLE, "sandbox-admin");
	sbx_msg_put_str(&m, SBX_F_REASON, "unit test of sessions");
	cr_assert_eq(call(&r, &r.root, &m, NULL, NULL, 0), SBX_ST_OK);
	sbx_msg_init(&m, SBX_OP_APPROVE);
	sbx_msg_put_str(&m, SBX_F_AS_USER, "bob");
	sbx_msg_put_u32(&m, SBX_F_ID, 1);
	cr_assert_eq(call(&r, &r.root, &m, NULL, NULL, 0), SBX_ST_OK);
	leader = spawn_leader(NULL);
	cr_assert_eq(open_session(&r, &r.root, "dave", leader, &s, NULL, 0), SBX_ST_OK);
	revoke_grant(&r, 1);
	cr_assert_eq(reap(leader, 500), -1, "a standing session was ended with a grant");
	cr_assert_eq(sbx_sessions_count(&r.b), 1);
	kill_and_reap(leader);
	rig_teardown(&r);
}

Test(sessions, the_table_survives_a_restart)
{
	struct rig r;
	uint32_t s = 0, s2 = 0, g;
	pid_t leader;
	int st;

	rig_setup(&r);
	g = erin_grant(&r);
	leader = spawn_leader(NULL);
	cr_assert_eq(open_session(&r, &r.root, "erin", leader, &s, NULL, 0), SBX_ST_OK);
	/* restart from the journal alone */
	rig_close(&r);
	rig_open(&r);
	cr_assert_eq(sbx_sessions_count(&r.b), 1);
	/* and from a snapshot */
	cr_assert_eq(sbx_journal_maybe_snapshot(r.b.journal, sbx_broker_snapshot_state, &r.b, true), 0);
	rig_close(&r);
	rig_open(&r);
	cr_assert_eq(sbx_sessions_count(&r.b), 1);
	cr_assert_eq(open_session(&r, &r.root, "alice", 0, &s2, NULL, 0), SBX_ST_OK);
	cr_assert_gt(s2, s, "session ids are not reused after a restart");
	revoke_grant(&r, g);
	st = reap(leader, 3000);
	cr_assert(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGHUP,
		  "after the restarts the grant's end no longer ends the session");
	rig_teardown(&r);
}

Test(sessions, a_vanished_leader_is_closed_quietly)
{
	struct rig r;
	uint32_t s = 0;
	pid_t leader;

	rig_setup(&r);
	leader = spawn_leader(NULL);
	cr_assert_eq(open_session(&r, &r.root, "alice", leader, &s, NULL, 0), SBX_ST_OK);
	rig_tick(&r);
	cr_assert_eq(sbx_sessions_count(&r.b), 1, "a live leader's session was closed");
	kill_and_reap(leader);
	/* the sweep runs at most once a second */
	(void)poll(NULL, 0, SBX_SESSION_SWEEP_MS + 50);
	rig_tick(&r);
	cr_assert_eq(sbx_sessions_count(&r.b), 0);
	rig_teardown(&r);
}

Test(sessions, process_identity)
{
	uint64_t a = 0, b = 0;
	pid_t z;

	cr_assert_eq(sbx_proc_start_time(getpid(), &a), 0);
	cr_assert_eq(sbx_proc_start_time(getpid(), &b), 0);
	cr_assert_eq(a, b);
	cr_assert_neq(sbx_proc_start_time(999999999, &a), 0);
	cr_assert_neq(sbx_proc_start_time(0, &a), 0);
	z = fork();
	if (z == 0)
		_exit(0);
	(void)poll(NULL, 0, 100);
	cr_assert_neq(sbx_proc_start_time(z, &a), 0, "a zombie counts as gone");
	(void)reap(z, 1000);
}

Test(sessions, close_by_tty_when_the_id_is_lost)
{
	struct rig r;
	uint32_t s = 0, closed = 0;
	pid_t leader;
	sbx_msg m;

	rig_setup(&r);
	leader = spawn_leader(NULL);
	cr_assert_eq(open_session(&r, &r.root, "alice", leader, &s, NULL, 0), SBX_ST_OK);
	/* Another process (not the leader) closes it, knowing only user and tty. */
	sbx_msg_init(&m, SBX_OP_SESSION_CLOSE);
	sbx_msg_put_str(&m, SBX_F_USER, "bob");
	sbx_msg_put_str(&m, SBX_F_TTY, "pts/1");
	cr_assert_eq(call(&r, &r.root, &m, NULL, NULL, 0), SBX_ST_NOTFOUND,
		     "another user's session was closed");
	sbx_msg_init(&m, SBX_OP_SESSION_CLOSE);
	sbx_msg_put_str(&m, SBX_F_USER, "alice");
	sbx_msg_put_str(&m, SBX_F_TTY, "pts/1");
	cr_assert_eq(call(&r, &r.root, &m, &closed, NULL, 0), SBX_ST_OK);
	cr_assert_eq(closed, s);
	kill_and_reap(leader);
	rig_teardown(&r);
}

Test(sessions, listing_is_for_admins)
{
	struct rig r;
	struct sbx_caller user = { .uid = 4242424, .gid = 4242424, .pid = getpid() };
	sbx_msg m, reply = { 0 };
	uint64_t wait_seq = 0;
	sbx_reader rd, rec;
	sbx_field f, g;
	char name[64] = "", state[16] = "";
	uint32_t s = 0;

	rig_setup(&r);
	cr_assert_eq(open_session(&r, &r.root, "alice", 0, &s, NULL, 0), SBX_ST_OK);
	sbx_msg_init(&m, SBX_OP_SESSIONS);
	cr_assert_eq(call(&r, &user, &m, NULL, NULL, 0), SBX_ST_REFUSED);
	sbx_msg_init(&m, SBX_OP_SESSIONS);
	sbx_msg_put_str(&m, SBX_F_USER, "alice");
	cr_assert_eq(sbx_msg_finish(&m), 0);
	sbx_broker_handle(&r.b, &r.root, m.buf, m.len, &reply, &wait_seq);
	cr_assert_eq(sbx_msg_finish(&reply), 0);
	/* as a client checks a reply (a reply op is never a request op) */
	cr_assert_eq(sbx_frame_validate(reply.buf, reply.len, 1, NULL, 0), 0,
		     "the listing is a valid frame");
	sbx_reader_init_frame(&rd, reply.buf, reply.len);
	cr_assert_eq(sbx_reader_find(&rd, SBX_F_SESSIONINFO, &f), 1);
	sbx_reader_init_rec(&rec, &f);
	while (sbx_reader_next(&rec, &g) == 1) {
		if (g.tag == SBX_F_USER)
			(void)sbx_field_str(&g, name, sizeof(name));
		if (g.tag == SBX_F_STATE)
			(void)sbx_field_str(&g, state, sizeof(state));
	}
	cr_assert_str_eq(name, "alice");
	cr_assert_str_eq(state, "open");
	sbx_msg_free(&reply);
	sbx_msg_free(&m);
	rig_teardown(&r);
}
