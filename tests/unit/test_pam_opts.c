/*
 * pam_sbx without PAM: its option parser, and how its client sorts the
 * broker's answers (yes / no / unreachable / unusable) -- against a fake
 * broker thread that replies with canned frames.
 */
#include "config.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "pam_sbx_client.h"
#include "pam_sbx_opts.h"
#include "sbxio.h"

/* ---- options ---------------------------------------------------------------- */

struct complaints {
	int n;
	char last[256];
};

static void note(void *ctx, const char *arg, const char *why)
{
	struct complaints *c = ctx;

	c->n++;
	snprintf(c->last, sizeof(c->last), "%s: %s", arg, why);
}

static void parse(struct psbx_opts *o, struct complaints *c, int argc, const char **argv)
{
	memset(c, 0, sizeof(*c));
	psbx_parse_opts(argc, argv, "/run/sbx/broker.sock", o, note, c);
}

Test(pam_opts, defaults)
{
	struct psbx_opts o;
	struct complaints c;

	parse(&o, &c, 0, NULL);
	cr_assert_str_eq(o.socket, "/run/sbx/broker.sock");
	cr_assert_eq(o.timeout_ms, 2000);
	cr_assert_not(o.fail_open, "failmode is secure unless asked");
	cr_assert_not(o.debug);
	cr_assert_not(o.prompt);
	cr_assert_not(o.insecure_socket, "the socket owner is checked unless asked");
	cr_assert_eq(o.wait_s, PSBX_DEFAULT_WAIT_S);
	cr_assert_eq(c.n, 0);
}

Test(pam_opts, every_option)
{
	const char *argv[] = { "socket=/tmp/x.sock", "timeout=750", "failmode=open", "debug",
			       "prompt", "wait=30", "exempt=root,admin", "insecure_test_socket" };
	struct psbx_opts o;
	struct complaints c;

	parse(&o, &c, 8, argv);
	cr_assert_str_eq(o.socket, "/tmp/x.sock");
	cr_assert_eq(o.timeout_ms, 750);
	cr_assert(o.fail_open);
	cr_assert(o.debug);
	cr_assert(o.prompt);
	cr_assert_eq(o.wait_s, 30);
	cr_assert(o.insecure_socket);
	cr_assert_eq(c.n, 0, "complained: %s", c.last);
	cr_assert(psbx_is_exempt(&o, "root"));
	cr_assert(psbx_is_exempt(&o, "admin"));
}

Test(pam_opts, failmode_secure_after_open)
{
	const char *argv[] = { "failmode=open", "failmode=secure" };
	struct psbx_opts o;
	struct complaints c;

	parse(&o, &c, 2, argv);
	cr_assert_not(o.fail_open, "the last failmode= wins");
}

Test(pam_opts, bad_values_keep_defaults_and_are_reported)
{
	const char *bad[] = { "timeout=", "timeout=abc", "timeout=0", "timeout=-5",
			      "timeout=60001", "timeout=12x", "wait=0", "wait=601",
			      "failmode=maybe", "failmode=", "socket=relative.sock" };
	struct psbx_opts o;
	struct complaints c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parse(&o, &c, 1, &bad[i]);
		cr_assert_eq(c.n, 1, "'%s' is not reported", bad[i]);
		cr_assert_eq(o.timeout_ms, 2000, "'%s' changed the timeout", bad[i]);
		cr_assert_eq(o.wait_s, PSBX_DEFAULT_WAIT_S);
		cr_assert_not(o.fail_open, "'%s' opened the fail mode", bad[i]);
		cr_assert_str_eq(o.socket, "/run/sbx/broker.sock");
	}
}

Test(pam_opts, unknown_options_are_reported_not_fatal)
{
	const char *argv[] = { "frobnicate", "debug", "Debug", "socketx=/a", "timeout=900" };
	struct psbx_opts o;
	struct complaints c;

	parse(&o, &c, 5, argv);
	cr_assert_eq(c.n, 3);
	cr_assert(o.debug, "known options after an unknown one still count");
	cr_assert_eq(o.timeout_ms, 900);
	cr_assert(strstr(c.last, "socketx=/a: unknown option"), "%s", c.last);
}

Test(pam_opts, exempt_matches_whole_names_only)
{
	const char *argv[] = { "exempt=alice,,bob", "exempt=carol" };
	struct psbx_opts o;
	struct complaints c;

	parse(&o, &c, 2, argv);
	cr_assert(psbx_is_exempt(&o, "alice"));
	cr_assert(psbx_is_exempt(&o, "bob"));
	cr_assert(psbx_is_exempt(&o, "carol"));
	cr_assert_not(psbx_is_exempt(&o, "ali"));
	cr_assert_not(psbx_is_exempt(&o, "alicex"));
	cr_assert_not(psbx_is_exempt(&o, "alice,bob"));
	cr_assert_not(psbx_is_exempt(&o, ""));
	cr_assert_not(psbx_is_exempt(&o, NULL));
}

Test(pam_opts, too_many_exempt_lists)
{
	const char *argv[PSBX_MAX_EXEMPT + 1];
	char names[PSBX_MAX_EXEMPT + 1][16];
	struct psbx_opts o;
	struct complaints c;

	for (int i = 0; i <= PSBX_MAX_EXEMPT; i++) {
		snprintf(names[i], sizeof(names[i]), "exempt=u%d", i);
		argv[i] = names[i];
	}
	parse(&o, &c, PSBX_MAX_EXEMPT + 1, argv);
	cr_assert_eq(c.n, 1);
	cr_assert(psbx_is_exempt(&o, "u0"));
	cr_assert_not(psbx_is_exempt(&o, "u8"), "the list beyond the limit is ignored, and said so");
}

/* ---- the client against a fake broker -------------------------------------- */

enum reply_kind {
	R_ALLOWED, R_DENIED, R_NO_ALLOWED, R_ALLOWED_7, R_GARBAGE, R_WRONG_OP, R_ERROR_FRAME,
	R_SILENT, R_REFUSED_STATUS, R_UNAVAILABLE, R_SESSION_OK, R_SESSION_NO_ID,
};

struct fake {
	char dir[64];
	char path[108];
	int lfd;
	enum reply_kind kind;
	pthread_t thread;
	bool accepted;
	uint16_t got_op;
	char got_user[64];
	char got_rhost[300];
	char got_tty[300];
	char got_service[300];
	char got_reason[300];
	uint32_t got_flags;
};

static void fake_reply(int fd, struct fake *f)
{
	sbx_msg m;
	uint8_t junk[32];

	switch (f->kind) {
	case R_GARBAGE:
		memset(junk, 0xee, sizeof(junk));
		(void)send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
		return;
	case R_SILENT:
		(void)poll(NULL, 0, 1500);
		return;
	case R_WRONG_OP:
		sbx_msg_init_reply(&m, SBX_OP_PING | SBX_OP_REPLY, SBX_ST_OK, "pong");
		break;
	case R_ERROR_FRAME:
		sbx_msg_init_reply(&m, SBX_OP_ERROR, SBX_ST_PROTO, "malformed request: x");
		break;
	case R_REFUSED_STATUS:
		sbx_msg_init_reply(&m, f->got_op | SBX_OP_REPLY, SBX_ST_REFUSED, "no, you don't");
		break;
	case R_UNAVAILABLE:
		sbx_msg_init_reply(&m, f->got_op | SBX_OP_REPLY, SBX_ST_UNAVAILABLE, "disk full");
		break;
	case R_SESSION_OK:
		sbx_msg_init_reply(&m, f->got_op | SBX_OP_REPLY, SBX_ST_OK, "session 9");
		sbx_msg_put_u32(&m, SBX_F_SESSION, 9);
		sbx_msg_put_u32(&m, SBX_F_ID, 4);
		break;
	case R_SESSION_NO_ID:
		sbx_msg_init_reply(&m, f->got_op | SBX_OP_REPLY, SBX_ST_OK, "session ?");
		break;
	default:
		sbx_msg_init_reply(&m, f->got_op | SBX_OP_REPLY, SBX_ST_OK, "because");
		if (f->kind == R_ALLOWED || f->kind == R_DENIED)
			sbx_msg_put_u32(&m, SBX_F_ALLOWED, f->kind == R_ALLOWED);
		if (f->kind == R_ALLOWED_7)
			sbx_msg_put_u32(&m, SBX_F_ALLOWED, 7);
		if (f->kind == R_ALLOWED) {
			sbx_msg_put_u32(&m, SBX_F_ID, 42);
			sbx_msg_put_str(&m, SBX_F_ROLE, "sandbox-admin");
			sbx_msg_put_str(&m, SBX_F_VIA, "grant");
		}
		break;
	}
	if (sbx_msg_finish(&m) == 0)
		(void)send(fd, m.buf, m.len, MSG_NOSIGNAL);
	sbx_msg_free(&m);
}

/* Remember what the client asked, for the assertions. */
static void fake_note_request(struct fake *f, const uint8_t *frame, size_t n)
{
	sbx_reader r;
	sbx_field fl;

	f->got_op = (uint16_t)(frame[6] << 8 | frame[7]);
	sbx_reader_init_frame(&r, frame, n);
	while (sbx_reader_next(&r, &fl) == 1) {
		if (fl.tag == SBX_F_USER)
			(void)sbx_field_str(&fl, f->got_user, sizeof(f->got_user));
		else if (fl.tag == SBX_F_RHOST)
			(void)sbx_field_str(&fl, f->got_rhost, sizeof(f->got_rhost));
		else if (fl.tag == SBX_F_TTY)
			(void)sbx_field_str(&fl, f->got_tty, sizeof(f->got_tty));
		else if (fl.tag == SBX_F_SERVICE)
			(void)sbx_field_str(&fl, f->got_service, sizeof(f->got_service));
		else if (fl.tag == SBX_F_REASON)
			(void)sbx_field_str(&fl, f->got_reason, sizeof(f->got_reason));
		else if (fl.tag == SBX_F_FLAGS)
			f->got_flags = sbx_field_u32(&fl);
	}
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	uint8_t *frame = NULL;
	size_t n = 0;

	if (fd < 0)
		return NULL; /* fake_stop shut the socket: nobody came */
	f->accepted = true;
	if (sbx_recv_frame(fd, &frame, &n, sbx_mono_ms() + 2000) == 0) {
		fake_note_request(f, frame, n);
		fake_reply(fd, f);
	}
	free(frame);
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, enum reply_kind kind)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(f, 0, sizeof(*f));
	f->kind = kind;
	snprintf(f->dir, sizeof(f->dir), "/tmp/sbx-pamopt-XXXXXX");
	cr_assert_not_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/sock", f->dir);
	memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(f->lfd, 0);
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(f->lfd, 4), 0);
	cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
	/* Wakes an accept() still waiting for a client that never came. */
	(void)shutdown(f->lfd, SHUT_RDWR);
	pthread_join(f->thread, NULL);
	close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
}

static const struct psbx_login alice = { "alice", "sshd", "192.0.2.1", "pts/0" };

static void check_with(enum reply_kind kind, int timeout_ms, struct psbx_answer *a, struct fake *f)
{
	struct psbx_conn c = { .timeout_ms = timeout_ms, .require_root = false };

	fake_start(f, kind);
	c.socket = f->path;
	psbx_check(&c, &alice, a);
	fake_stop(f);
}

Test(pam_client, allowed_with_grant)
{
	struct psbx_answer a;
	struct fake f;

	check_with(R_ALLOWED, 2000, &a, &f);
	cr_assert_eq(a.outcome, PSBX_YES);
	cr_assert_eq(a.grant, 42);
	cr_assert_str_eq(a.role, "sandbox-admin");
	cr_assert_str_eq(a.message, "because");
	cr_assert_eq(f.got_op, SBX_OP_CHECK);
	cr_assert_str_eq(f.got_user, "alice");
	cr_assert_eq(f.got_flags, SBX_CHECK_RECORD, "the check asks to be recorded");
}

Test(pam_client, denied)
{
	struct psbx_answer a;
	struct fake f;

	check_with(R_DENIED, 2000, &a, &f);
	cr_assert_eq(a.outcome, PSBX_NO);
	cr_assert_eq(a.grant, 0);
}

Test(pam_client, refused_status_is_no)
{
	struct psbx_answer a;
	struct fake f;

	check_with(R_REFUSED_STATUS, 2000, &a, &f);
	cr_assert_eq(a.outcome, PSBX_NO);
	cr_assert_str_eq(a.message, "no, you don't");
}

Test(pam_client, unusable_answers_are_bad)
{
	enum reply_kind kinds[] = { R_NO_ALLOWED, R_ALLOWED_7, R_GARBAGE, R_WRONG_OP,
				    R_ERROR_FRAME };

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		struct psbx_answer a;
		struct fake f;

		check_with(kinds[i], 2000, &a, &f);
		cr_assert_eq(a.outcome, PSBX_BAD, "reply kind %zu gave %s", i,
			     psbx_outcome_name(a.outcome));
	}
}

Test(pam_client, silence_is_unreachable_within_the_timeout)
{
	struct psbx_answer a;
	struct fake f;
	int64_t t0 = sbx_mono_ms(), took;

	check_with(R_SILENT, 300, &a, &f);
	took = sbx_mono_ms() - t0;
	cr_assert_eq(a.outcome, PSBX_UNREACHABLE);
	cr_assert_eq(a.err, -ETIMEDOUT);
	/* fake_stop waits for the fake's 1.5 s nap: only the client's part
	 * is bounded, and it must have given up long before that. */
	cr_assert_geq(took, 300);
}

Test(pam_client, no_socket_is_unreachable)
{
	struct psbx_conn c = { .socket = "/nonexistent/sbx.sock", .timeout_ms = 500 };
	struct psbx_answer a;

	psbx_check(&c, &alice, &a);
	cr_assert_eq(a.outcome, PSBX_UNREACHABLE);
	cr_assert_eq(a.err, -ENOENT);
}

Test(pam_client, unavailable_is_unreachable)
{
	struct psbx_conn c = { .timeout_ms = 2000 };
	struct psbx_answer a;
	struct fake f;

	fake_start(&f, R_UNAVAILABLE);
	c.socket = f.path;
	psbx_session_open(&c, &alice, 0, &a);
	fake_stop(&f);
	cr_assert_eq(a.outcome, PSBX_UNREACHABLE, "a broker that cannot record: failmode decides");
}

Test(pam_client, session_open_reply)
{
	struct psbx_conn c = { .timeout_ms = 2000 };
	struct psbx_answer a;
	struct fake f;

	fake_start(&f, R_SESSION_OK);
	c.socket = f.path;
	psbx_session_open(&c, &alice, 4, &a);
	fake_stop(&f);
	cr_assert_eq(f.got_op, SBX_OP_SESSION_OPEN);
	cr_assert_eq(a.outcome, PSBX_YES);
	cr_assert_eq(a.session, 9);
	cr_assert_eq(a.grant, 4);

	fake_start(&f, R_SESSION_NO_ID);
	c.socket = f.path;
	psbx_session_open(&c, &alice, 0, &a);
	fake_stop(&f);
	cr_assert_eq(a.outcome, PSBX_BAD, "an OK without a session id is not an answer");
}

Test(pam_client, long_rhost_is_cut_not_refused)
{
	struct psbx_login l = alice;
	struct psbx_answer a;
	struct psbx_conn c = { .timeout_ms = 2000 };
	struct fake f;
	char rhost[400];

	/* 3-byte UTF-8 characters, so that the cut must not split one */
	for (size_t i = 0; i + 3 < sizeof(rhost); i += 3)
		memcpy(rhost + i, "\xe2\x82\xac", 3);
	rhost[sizeof(rhost) - 1 - (sizeof(rhost) - 1) % 3] = '\0';
	l.rhost = rhost;
	fake_start(&f, R_ALLOWED);
	c.socket = f.path;
	psbx_check(&c, &l, &a);
	fake_stop(&f);
	cr_assert_eq(a.outcome, PSBX_YES);
	cr_assert_leq(strlen(f.got_rhost), 255);
	cr_assert_gt(strlen(f.got_rhost), 240);
	cr_assert_eq(strlen(f.got_rhost) % 3, 0, "cut inside a UTF-8 character");
}

/* ---- what failmode may open for, and what it never may ---------------------- */

/* The only errors that mean "no broker / no answer in time". */
static const int unreachable_errnos[] = {
	ENOENT, ECONNREFUSED, ETIMEDOUT, ECONNRESET, EPIPE, ENOTCONN, EAGAIN,
};

/* A few of the many that do not: a request that cannot be framed, a bad
 * socket path, an untrusted socket or peer, a malformed answer, this
 * process out of fds or memory, a socket of the wrong kind. */
static const int bad_errnos[] = {
	EINVAL, EMSGSIZE, ENAMETOOLONG, EILSEQ, EPERM, EACCES, EBADMSG, EPROTO, ENOMEM,
	EMFILE, ENFILE, ENOBUFS, ENOTDIR, ELOOP, EPROTOTYPE, ENOTSOCK, EIO, EINTR, E2BIG, 0,
};

Test(pam_client, only_a_short_list_of_errors_is_unreachable)
{
	for (size_t i = 0; i < sizeof(unreachable_errnos) / sizeof(unreachable_errnos[0]); i++)
		cr_assert_eq(psbx_outcome_of_errno(-unreachable_errnos[i]), PSBX_UNREACHABLE,
			     "-%s should let failmode decide", strerror(unreachable_errnos[i]));
	for (size_t i = 0; i < sizeof(bad_errnos) / sizeof(bad_errnos[0]); i++)
		cr_assert_eq(psbx_outcome_of_errno(-bad_errnos[i]), PSBX_BAD,
			     "-%s (%d) must always refuse", strerror(bad_errnos[i]), bad_errnos[i]);
	/* Out of range, or the wrong sign: never a reason to let anyone in. */
	cr_assert_eq(psbx_outcome_of_errno(ENOENT), PSBX_BAD);
	cr_assert_eq(psbx_outcome_of_errno(-100000), PSBX_BAD);
	cr_assert_eq(psbx_outcome_of_errno(INT_MIN), PSBX_BAD);
}

/* A string of n bytes of c. */
static char *filled(size_t n, char c)
{
	char *s = malloc(n + 1);

	cr_assert_not_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* The account check of l against a fake broker that would allow anyone,
 * and against no broker at all: an unframeable request is refused (BAD,
 * never UNREACHABLE, which failmode=open would admit) and never sent. */
static void assert_unsent(const struct psbx_login *l, const char *why)
{
	struct psbx_conn none = { .socket = "/nonexistent/sbx.sock", .timeout_ms = 500 };
	struct psbx_conn c = { .timeout_ms = 2000 };
	struct psbx_answer a;
	struct fake f;

	fake_start(&f, R_ALLOWED);
	c.socket = f.path;
	psbx_check(&c, l, &a);
	fake_stop(&f);
	cr_assert_eq(a.outcome, PSBX_BAD, "broker running: %s, not refused", psbx_outcome_name(a.outcome));
	cr_assert(a.unsent, "said it was sent");
	cr_assert_not(f.accepted, "an unframeable request reached the broker");
	cr_assert(strstr(a.message, why), "why: '%s', want '%s'", a.message, why);

	psbx_check(&none, l, &a);
	cr_assert_eq(a.outcome, PSBX_BAD, "broker down: %s, not refused", psbx_outcome_name(a.outcome));
	cr_assert(a.unsent);
	cr_assert(strstr(a.message, why), "why: '%s', want '%s'", a.message, why);
}

Test(pam_client, a_user_name_too_long_to_frame_is_refused_not_unreachable)
{
	struct psbx_login l = alice;
	char *name = filled(5000, 'a');

	l.user = name;
	assert_unsent(&l, "the user name is 5000 bytes, more than 4096");
	name[SBX_STR_MAX + 1] = '\0';
	assert_unsent(&l, "is 4097 bytes");
	free(name);
}

Test(pam_client, a_user_name_that_is_not_utf8_is_refused_not_unreachable)
{
	const char *bad[] = { "al\xffice", "\xc3", "\xc0\xaf" /* overlong '/' */,
			      "\xed\xa0\x80" /* a surrogate */, "\xf4\x90\x80\x80" /* > U+10FFFF */ };
	struct psbx_login l = alice;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		l.user = bad[i];
		assert_unsent(&l, "the user name is not valid UTF-8");
	}
}

Test(pam_client, session_calls_with_an_unframeable_user_are_refused_not_unreachable)
{
	struct psbx_conn none = { .socket = "/nonexistent/sbx.sock", .timeout_ms = 500 };
	struct psbx_login l = alice;
	struct psbx_answer a;
	char *name = filled(5000, 'u');

	l.user = name;
	psbx_session_open(&none, &l, 0, &a);
	cr_assert_eq(a.outcome, PSBX_BAD, "session open: %s", psbx_outcome_name(a.outcome));
	cr_assert(a.unsent);
	psbx_session_close(&none, &l, 7, &a);
	cr_assert_eq(a.outcome, PSBX_BAD, "session close: %s", psbx_outcome_name(a.outcome));
	l.user = "bad\xfe";
	psbx_session_open(&none, &l, 0, &a);
	cr_assert_eq(a.outcome, PSBX_BAD);
	free(name);
}

Test(pam_client, prompt_calls_with_unframeable_text_are_refused_not_unreachable)
{
	struct psbx_conn none = { .socket = "/nonexistent/sbx.sock", .timeout_ms = 500 };
	struct psbx_conn c = { .timeout_ms = 2000 };
	char roles[2][SBX_NAME_MAX + 1];
	struct psbx_answer a;
	struct fake f;
	int64_t def;
	char *text = filled(5000, 'r');

	/* A reason typed at the prompt, longer than a frame can carry. */
	psbx_request(&none, "erin", "sandbox-admin", 3600, text, &a);
	cr_assert_eq(a.outcome, PSBX_BAD, "long reason, no broker: %s", psbx_outcome_name(a.outcome));
	cr_assert(strstr(a.message, "the reason is 5000 bytes"), "%s", a.message);
	fake_start(&f, R_ALLOWED);
	c.socket = f.path;
	psbx_request(&c, "erin", "sandbox-admin", 3600, "fix \xff disk", &a);
	fake_stop(&f);
	cr_assert_eq(a.outcome, PSBX_BAD, "a reason that is not UTF-8: %s",
		     psbx_outcome_name(a.outcome));
	cr_assert_not(f.accepted);
	cr_assert(strstr(a.message, "the reason is not valid UTF-8"), "%s", a.message);

	psbx_request(&none, text, "sandbox-admin", 3600, "why", &a);
	cr_assert_eq(a.outcome, PSBX_BAD);
	psbx_status(&none, text, 12, &a);
	cr_assert_eq(a.outcome, PSBX_BAD, "status: %s", psbx_outcome_name(a.outcome));
	cr_assert_eq(psbx_eligible_roles(&none, text, roles, 2, &def, &a), 0);
	cr_assert_eq(a.outcome, PSBX_BAD, "roles: %s", psbx_outcome_name(a.outcome));
	free(text);
}

/* What is only recorded (service, rhost, tty) never fails a login: it is
 * cut to the broker's sizes and made valid UTF-8 before it is sent. */
Test(pam_client, recorded_items_that_are_not_utf8_are_cleaned_not_refused)
{
	struct psbx_login l = alice;
	struct psbx_conn c = { .timeout_ms = 2000 };
	struct psbx_answer a;
	struct fake f;
	char *service = filled(300, 's');

	l.rhost = "host\xff.example";
	l.tty = "pts/\xc3";
	l.service = service;
	fake_start(&f, R_ALLOWED);
	c.socket = f.path;
	psbx_check(&c, &l, &a);
	fake_stop(&f);
	cr_assert_eq(a.outcome, PSBX_YES, "%s: %s", psbx_outcome_name(a.outcome), a.message);
	cr_assert_str_eq(f.got_rhost, "host?.example");
	cr_assert_str_eq(f.got_tty, "pts/?");
	cr_assert_eq(strlen(f.got_service), SBX_NAME_MAX, "service cut to %u", SBX_NAME_MAX);
	free(service);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	cr_assert_not_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* The module lives in sshd: no call may leave an fd behind, whatever the
 * broker does (answers, refuses, garbage, hangs up, is not there) and
 * whether or not the request could be sent at all. */
Test(pam_client, no_fd_is_left_open_on_any_path)
{
	enum reply_kind kinds[] = { R_ALLOWED, R_DENIED, R_GARBAGE, R_WRONG_OP, R_ERROR_FRAME,
				    R_UNAVAILABLE, R_SESSION_OK };
	struct psbx_conn none = { .socket = "/nonexistent/sbx.sock", .timeout_ms = 500 };
	struct psbx_conn notsock = { .socket = "/dev/null", .timeout_ms = 500, .require_root = true };
	struct psbx_login l = alice;
	struct psbx_answer a;
	char *name = filled(5000, 'a');
	int fds = count_fds();

	for (int i = 0; i < 200; i++) {
		psbx_check(&none, &alice, &a);
		psbx_check(&notsock, &alice, &a);
		l.user = name;
		psbx_check(&none, &l, &a);
		psbx_session_open(&none, &l, 0, &a);
		psbx_request(&none, "erin", "sandbox-admin", 0, name, &a);
	}
	cr_assert_eq(count_fds(), fds, "no broker / unsent: fds left open");
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
			struct psbx_conn c = { .timeout_ms = 2000 };
			struct fake f;

			fake_start(&f, kinds[i]);
			c.socket = f.path;
			if (kinds[i] == R_SESSION_OK)
				psbx_session_open(&c, &alice, 0, &a);
			else
				psbx_check(&c, &alice, &a);
			fake_stop(&f);
		}
	}
	cr_assert_eq(count_fds(), fds, "answers of every kind: fds left open");
	free(name);
}
