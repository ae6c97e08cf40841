/*
 * broker/tail.c, the TAIL op, in process (tests/unit/broker_rig.h): the
 * backlog and what each caller sees, a follower's frames through a real
 * socket, the per-uid cap, and a follower that does not read being
 * dropped with a last frame that names the seq to read from again; the
 * same for text followers (GET /v1/events), also sent by the writer
 * thread through a real socket.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_rig.h"
#include "tail.h"

static struct rig R;

static void setup(void)
{
	rig_setup(&R);
}

static void teardown(void)
{
	rig_teardown(&R);
}

TestSuite(tail, .init = setup, .fini = teardown);

static struct sbx_caller nobody = { .uid = 65534, .gid = 65534 };

/* Everything appended so far is durable, and the stream knows it. */
static void settle(void)
{
	cr_assert_eq(sbx_journal_flush(R.b.journal), 0);
	sbx_tail_pump(R.b.tail, sbx_journal_durable_seq(R.b.journal), sbx_mono_ms());
}

static void request_as(const char *who, const char *reason)
{
	sbx_msg m = { 0 };
	char why[512] = "";

	sbx_msg_init(&m, SBX_OP_REQUEST);
	sbx_msg_put_str(&m, SBX_F_AS_USER, who);
	sbx_msg_put_str(&m, SBX_F_ROLE, "sandbox-admin");
	sbx_msg_put_str(&m, SBX_F_REASON, reason);
	cr_assert_eq(rig_call(&R, &R.root, &m, why, sizeof(why), NULL), SBX_ST_OK,
		     "%s's request: %s", who, why);
}

static void recorded_check(const char *tty)
{
	sbx_msg m = { 0 };

	sbx_msg_init(&m, SBX_OP_CHECK);
	sbx_msg_put_str(&m, SBX_F_USER, "alice");
	sbx_msg_put_str(&m, SBX_F_TTY, tty);
	sbx_msg_put_u32(&m, SBX_F_FLAGS, SBX_CHECK_RECORD);
	cr_assert_eq(rig_call(&R, &R.root, &m, NULL, 0, NULL), SBX_ST_OK);
}

/* TAIL as c; the reply's RECORDs joined by '\n' into out. */
static uint32_t tail(struct sbx_caller *c, const char *as, uint32_t count, uint32_t flags,
		     const char *user, char *out, size_t outlen, char *msg, size_t msglen)
{
	sbx_msg m = { 0 }, reply = { 0 };
	sbx_reader rd;
	sbx_field f;
	uint32_t st;
	size_t used = 0;

	sbx_msg_init(&m, SBX_OP_TAIL);
	if (as)
		sbx_msg_put_str(&m, SBX_F_AS_USER, as);
	sbx_msg_put_u32(&m, SBX_F_COUNT, count);
	if (flags)
		sbx_msg_put_u32(&m, SBX_F_FLAGS, flags);
	if (user)
		sbx_msg_put_str(&m, SBX_F_USER, user);
	st = rig_call(&R, c, &m, msg, msglen, &reply);
	out[0] = '\0';
	sbx_reader_init_frame(&rd, reply.buf, reply.len);
	while (sbx_reader_next(&rd, &f) == 1) {
		if (f.tag != SBX_F_RECORD)
			continue;
		cr_assert_lt(used + f.len + 2, outlen);
		memcpy(out + used, f.val, f.len);
		used += f.len;
		out[used++] = '\n';
		out[used] = '\0';
	}
	sbx_msg_free(&reply);
	return st;
}

static size_t count_of(const char *s, const char *what)
{
	size_t n = 0;

	for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

Test(tail, backlog_is_the_newest_oldest_first)
{
	char out[16384], msg[512];

	request_as("erin", "tail unit: erin");
	request_as("dave", "tail unit: dave");
	settle();
	cr_assert_eq(tail(&R.root, NULL, 2, 0, NULL, out, sizeof(out), msg, sizeof(msg)), SBX_ST_OK,
		     "%s", msg);
	cr_assert_eq(count_of(out, "\"seq\":"), 2, "%s", out);
	cr_assert(strstr(out, "tail unit: erin") < strstr(out, "tail unit: dave"), "%s", out);
	cr_assert_null(strstr(out, "\"hash\":"), "no hash on the wire: %s", out);
	cr_assert_null(strstr(out, "\"prev\":"), "%s", out);
	cr_assert_eq(tail(&R.root, NULL, 100, 0, "dave", out, sizeof(out), msg, sizeof(msg)),
		     SBX_ST_OK);
	cr_assert_eq(count_of(out, "\"seq\":"), 1, "only dave's: %s", out);
	cr_assert_eq(tail(&R.root, NULL, 5000, 0, NULL, out, sizeof(out), msg, sizeof(msg)),
		     SBX_ST_BADINPUT);
}

Test(tail, a_person_sees_their_own_records_only)
{
	char out[16384], msg[512];

	request_as("erin", "tail unit: erin");
	request_as("dave", "tail unit: dave");
	settle();
	cr_assert_eq(tail(&R.root, "erin", 100, 0, NULL, out, sizeof(out), msg, sizeof(msg)),
		     SBX_ST_OK, "%s", msg);
	cr_assert_eq(count_of(out, "\"seq\":"), 1, "%s", out);
	cr_assert_not_null(strstr(out, "tail unit: erin"));
	cr_assert_eq(tail(&R.root, "erin", 100, 0, "dave", out, sizeof(out), msg, sizeof(msg)),
		     SBX_ST_OK);
	cr_assert_str_eq(out, "", "a filter never widens what one may see");
	cr_assert_eq(tail(&nobody, NULL, 100, 0, NULL, out, sizeof(out), msg, sizeof(msg)),
		     SBX_ST_OK, "%s", msg);
	cr_assert_str_eq(out, "", "uid 65534 has no records: %s", out);
}

/* An account named like the broker's own actor is not the actor of
 * everything the broker records (grants activated, expired, policy). */
Test(tail, an_account_named_sbx_sees_nothing_of_the_brokers)
{
	char out[16384], msg[512];

	request_as("erin", "tail unit: erin");
	settle();
	cr_assert_eq(tail(&R.root, NULL, 100, 0, "sbx", out, sizeof(out), msg, sizeof(msg)),
		     SBX_ST_OK, "%s", msg);
	cr_assert_gt(count_of(out, "\"actor\":\"sbx\""), 0, "the broker recorded: %s", out);
	cr_assert_eq(tail(&R.root, SBX_SYSTEM_ACTOR, 100, 0, NULL, out, sizeof(out), msg,
			  sizeof(msg)), SBX_ST_OK, "%s", msg);
	cr_assert_str_eq(out, "", "\"sbx\" has no records of its own: %s", out);
}

/* Read one frame from fd (blocking), into buf. */
static size_t read_frame(int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0, want = SBX_HDR_LEN;
	struct sbx_hdr h;

	while (got < want) {
		ssize_t n = read(fd, buf + got, want - got);

		cr_assert_gt(n, 0, "the stream ended early");
		got += (size_t)n;
		if (got == SBX_HDR_LEN) {
			cr_assert_eq(sbx_hdr_decode(buf, got, &h), 0);
			cr_assert_leq(h.length, cap);
			want = h.length;
		}
	}
	cr_assert_eq(sbx_frame_validate(buf, got, 1, NULL, 0), 0);
	return got;
}

Test(tail, a_follower_gets_each_durable_record_through_its_socket)
{
	static uint8_t frame[SBX_FRAME_MAX];
	struct sbx_tail_sub *s;
	char out[64], msg[512];
	int sv[2];
	size_t n;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(tail(&R.root, NULL, 0, SBX_TAIL_FOLLOW, "dave", out, sizeof(out), msg,
			  sizeof(msg)), SBX_ST_OK, "%s", msg);
	s = sbx_tail_claim(R.b.tail);
	cr_assert_not_null(s);
	cr_assert_null(sbx_tail_claim(R.b.tail), "claimed once");
	request_as("erin", "tail unit: erin");
	request_as("dave", "tail unit: dave");
	cr_assert_eq(sbx_tail_sub_send(s, sv[0], sbx_mono_ms()), 0, "nothing before it is durable");
	settle();
	cr_assert_eq(sbx_tail_sub_send(s, sv[0], sbx_mono_ms()), 0);
	n = read_frame(sv[1], frame, sizeof(frame));
	cr_assert_eq(frame[6] << 8 | frame[7], SBX_OP_TAIL | SBX_OP_REPLY);
	cr_assert_not_null(memmem(frame, n, "tail unit: dave", 15));
	cr_assert_null(memmem(frame, n, "tail unit: erin", 15), "the filter holds");
	sbx_tail_sub_close(R.b.tail, s);
	close(sv[0]);
	close(sv[1]);
}

Test(tail, four_followers_per_uid)
{
	struct sbx_tail_sub *s[4];
	char out[64], msg[512];

	for (int i = 0; i < 4; i++) {
		cr_assert_eq(tail(&nobody, NULL, 0, SBX_TAIL_FOLLOW, NULL, out, sizeof(out), msg,
				  sizeof(msg)), SBX_ST_OK, "%s", msg);
		s[i] = sbx_tail_claim(R.b.tail);
		cr_assert_not_null(s[i]);
	}
	cr_assert_eq(tail(&nobody, NULL, 0, SBX_TAIL_FOLLOW, NULL, out, sizeof(out), msg,
			  sizeof(msg)), SBX_ST_REFUSED);
	cr_assert_not_null(strstr(msg, "at most 4 per user"), "%s", msg);
	cr_assert_eq(tail(&R.root, NULL, 0, SBX_TAIL_FOLLOW, NULL, out, sizeof(out), msg,
			  sizeof(msg)), SBX_ST_OK, "another uid may");
	sbx_tail_sub_close(R.b.tail, sbx_tail_claim(R.b.tail));
	sbx_tail_sub_close(R.b.tail, s[0]);
	cr_assert_eq(tail(&nobody, NULL, 0, SBX_TAIL_FOLLOW, NULL, out, sizeof(out), msg,
			  sizeof(msg)), SBX_ST_OK, "one closed, one more may come");
	s[0] = sbx_tail_claim(R.b.tail);
	for (int i = 0; i < 4; i++)
		sbx_tail_sub_close(R.b.tail, s[i]);
}

Test(tail, a_follower_that_does_not_read_is_dropped)
{
	static uint8_t frame[SBX_FRAME_MAX];
	struct sbx_tail_sub *s;
	char out[64], msg[512], tty[32], *p;
	uint64_t first = 0;
	int sv[2], rc;
	size_t n;
	bool dropped = false;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(tail(&R.root, NULL, 0, SBX_TAIL_FOLLOW, NULL, out, sizeof(out), msg,
			  sizeof(msg)), SBX_ST_OK, "%s", msg);
	s = sbx_tail_claim(R.b.tail);
	first = sbx_journal_last_seq(R.b.journal) + 1;
	/* About 180 bytes each: twice 1 MiB, sent to nobody. */
	for (int i = 0; i < 12000; i++) {
		snprintf(tty, sizeof(tty), "pts/%d", i);
		recorded_check(tty);
		if (i % 500 == 499)
			settle();
	}
	settle();
	/* What it is sent now is the last frame only: refused, with the seq
	 * to read from again; then the follower is done (-1: close). */
	rc = sbx_tail_sub_send(s, sv[0], sbx_mono_ms());
	cr_assert_eq(rc, -1, "a dropped follower is closed once its last frame is out (rc %d, seq %llu)", rc, (unsigned long long)sbx_journal_last_seq(R.b.journal));
	sbx_tail_sub_close(R.b.tail, s);
	close(sv[0]);
	for (;;) {
		uint32_t status = 0;
		char text[512] = "";

		n = read_frame(sv[1], frame, sizeof(frame));
		cr_assert_eq(sbx_reply_status(frame, n, &status, text, sizeof(text)), 0);
		if (status == SBX_ST_OK)
			continue;
		cr_assert_eq(status, SBX_ST_REFUSED);
		cr_assert_not_null(strstr(text, "dropped"), "%s", text);
		p = strstr(text, "from seq ");
		cr_assert_not_null(p, "%s", text);
		cr_assert_gt(strtoull(p + 9, NULL, 10), first, "some records were sent first");
		dropped = true;
		break;
	}
	cr_assert(dropped);
	close(sv[1]);
}

/* ---- text followers (GET /v1/events) ------------------------------------------ */

static int woken;

static void count_wake(void *arg)
{
	(void)arg;
	woken++;
}

/* Everything a text follower has queued, as a string. */
static char *read_text(struct sbx_tail_sub *s)
{
	static char buf[4 * 1024 * 1024];
	size_t got = 0, n;

	while ((n = sbx_tail_sub_read(s, buf + got, 4096)) > 0) {
		got += n;
		cr_assert_lt(got, sizeof(buf) - 4096);
	}
	buf[got] = '\0';
	return buf;
}

Test(tail, a_text_follower_gets_server_sent_events_it_may_see)
{
	struct sbx_tail_spec erin = { .person = "erin", .uid = (uid_t)-1 };
	struct sbx_tail_spec admin = { .person = "root", .admin = true, .uid = 0 };
	struct sbx_tail_sub *e, *a;
	char *text;

	woken = 0;
	e = sbx_tail_follow_text(&R.b, &erin, 0, 0, count_wake, NULL);
	a = sbx_tail_follow_text(&R.b, &admin, 0, 0, count_wake, NULL);
	cr_assert_not_null(e);
	cr_assert_not_null(a);
	request_as("erin", "text unit: erin");
	request_as("dave", "text unit: dave");
	cr_assert_str_eq(read_text(e), "", "nothing before it is durable");
	settle();
	cr_assert_eq(woken, 2, "each follower was woken once");
	text = read_text(e);
	cr_assert(strncmp(text, "id: ", 4) == 0, "%s", text);
	cr_assert_not_null(strstr(text, "\ndata: {"), "%s", text);
	cr_assert_not_null(strstr(text, "text unit: erin"), "%s", text);
	cr_assert_null(strstr(text, "text unit: dave"), "erin sees her own only: %s", text);
	cr_assert_eq(count_of(text, "\n\n"), count_of(text, "id: "), "one event per record");
	text = read_text(a);
	cr_assert_not_null(strstr(text, "text unit: dave"), "an admin sees all: %s", text);
	cr_assert_eq(sbx_tail_sub_note(a, "keep-alive"), 0);
	cr_assert_str_eq(read_text(a), ": keep-alive\n\n");
	sbx_tail_sub_close(R.b.tail, e);
	sbx_tail_sub_close(R.b.tail, a);
}

Test(tail, a_text_follower_resumes_after_the_last_event_id)
{
	struct sbx_tail_spec admin = { .person = "root", .admin = true, .uid = 0 };
	struct sbx_tail_sub *s;
	uint64_t mid;
	char *text;

	request_as("erin", "resume unit: one");
	settle();
	mid = sbx_journal_durable_seq(R.b.journal);
	request_as("dave", "resume unit: two");
	settle();
	s = sbx_tail_follow_text(&R.b, &admin, mid, 0, count_wake, NULL);
	text = read_text(s);
	cr_assert_null(strstr(text, "resume unit: one"), "%s", text);
	cr_assert_not_null(strstr(text, "resume unit: two"), "%s", text);
	sbx_tail_sub_close(R.b.tail, s);
	s = sbx_tail_follow_text(&R.b, &admin, 0, 1, count_wake, NULL);
	text = read_text(s);
	cr_assert_eq(count_of(text, "id: "), 1, "count=1: the last one: %s", text);
	sbx_tail_sub_close(R.b.tail, s);
}

Test(tail, a_text_follower_that_does_not_read_is_dropped)
{
	struct sbx_tail_spec admin = { .person = "root", .admin = true, .uid = 0 };
	struct sbx_tail_sub *s = sbx_tail_follow_text(&R.b, &admin, 0, 0, count_wake, NULL);
	char tty[32], *text;

	for (int i = 0; i < 12000 && !sbx_tail_sub_dropped(s); i++) {
		snprintf(tty, sizeof(tty), "pts/%d", i);
		recorded_check(tty);
		if (i % 500 == 499)
			settle();
	}
	settle();
	cr_assert(sbx_tail_sub_dropped(s), "more than 1 MiB behind: dropped");
	cr_assert_not(sbx_tail_sub_done(s), "its last event is still to be read");
	text = read_text(s);
	cr_assert_lt(strlen(text), SBX_TAIL_BUF_MAX + 4096, "the queue stayed bounded");
	cr_assert_not_null(strstr(text, "event: dropped\ndata: {"), "%.200s", text);
	cr_assert(sbx_tail_sub_done(s));
	sbx_tail_sub_close(R.b.tail, s);
}

/* ---- text followers sent by the writer thread ---------------------------------- */

/* Read fd (non-blocking) into buf until it holds want or 10 s pass; the
 * text read (NUL-terminated, in buf). */
static char *read_until(int fd, char *buf, size_t size, size_t *got, const char *want)
{
	for (int i = 0; i < 1000 && !strstr(buf, want); i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 10) <= 0)
			continue;
		n = read(fd, buf + *got, size - 1 - *got);
		if (n <= 0)
			break;
		*got += (size_t)n;
		buf[*got] = '\0';
	}
	return buf;
}

Test(tail, a_handed_text_follower_is_sent_by_the_writer_thread)
{
	struct sbx_tail_spec erin = { .person = "erin", .uid = (uid_t)-1 };
	struct sbx_tail_spec admin = { .person = "root", .admin = true, .uid = 0 };
	struct sbx_tail_sub *e, *a;
	static char eb[65536], ab[65536];
	size_t eg = 0, ag = 0;
	int es[2], as[2];
	char c;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, es), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, as), 0);
	e = sbx_tail_follow_text(&R.b, &erin, 0, 0, count_wake, NULL);
	a = sbx_tail_follow_text(&R.b, &admin, 0, 0, count_wake, NULL);
	cr_assert_eq(sbx_tail_sub_hand_over(R.b.tail, e, es[0]), 0);
	cr_assert_eq(sbx_tail_sub_hand_over(R.b.tail, a, as[0]), 0);
	cr_assert_eq(sbx_tail_sub_handed(R.b.tail, e, sbx_mono_ms()), 1);
	woken = 0;
	request_as("erin", "writer unit: erin");
	request_as("dave", "writer unit: dave");
	settle();
	cr_assert_eq(woken, 0, "a handed follower is the thread's: nothing for the transport");
	read_until(as[1], ab, sizeof(ab), &ag, "writer unit: dave");
	cr_assert_not_null(strstr(ab, "writer unit: erin"), "%s", ab);
	cr_assert_not_null(strstr(ab, "writer unit: dave"), "an admin sees all: %s", ab);
	cr_assert(strncmp(ab, "id: ", 4) == 0, "%s", ab);
	cr_assert_eq(count_of(ab, "\n\n"), count_of(ab, "id: "), "whole events: %s", ab);
	read_until(es[1], eb, sizeof(eb), &eg, "writer unit: erin");
	cr_assert_not_null(strstr(eb, "writer unit: erin"), "%s", eb);
	/* A keep-alive goes after whatever was queued for erin: once it is
	 * here, dave's record would be too, had she been given it. */
	cr_assert_eq(sbx_tail_sub_note(e, "keep-alive"), 0);
	read_until(es[1], eb, sizeof(eb), &eg, ": keep-alive\n\n");
	cr_assert_not_null(strstr(eb, ": keep-alive\n\n"), "%s", eb);
	cr_assert_null(strstr(eb, "writer unit: dave"), "erin sees her own only: %s", eb);

	/* Taken back and closed: the thread's own copy of the socket is
	 * closed too, so once ours is the reader sees the end. */
	sbx_tail_sub_close(R.b.tail, e);
	close(es[0]);
	cr_assert_eq(read(es[1], &c, 1), 0, "no descriptor of the socket left open");
	close(es[1]);
	/* a stays handed over: the tail's end stops the thread and closes
	 * its socket (teardown, under the sanitizers). */
	close(as[0]);
	close(as[1]);
}

Test(tail, a_handed_text_follower_that_does_not_read_is_dropped)
{
	struct sbx_tail_spec admin = { .person = "root", .admin = true, .uid = 0 };
	struct sbx_tail_sub *s = sbx_tail_follow_text(&R.b, &admin, 0, 0, count_wake, NULL);
	static char buf[4 * 1024 * 1024];
	size_t got = 0;
	char tty[32];
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(sbx_tail_sub_hand_over(R.b.tail, s, sv[0]), 0);
	for (int i = 0; i < 20000 && !sbx_tail_sub_dropped(s); i++) {
		snprintf(tty, sizeof(tty), "pts/%d", i);
		recorded_check(tty);
		if (i % 500 == 499)
			settle();
	}
	settle();
	cr_assert(sbx_tail_sub_dropped(s), "more than 1 MiB behind its socket: dropped");
	cr_assert_eq(sbx_tail_sub_handed(R.b.tail, s, sbx_mono_ms()), 1,
		     "its last event waits for the reader");
	cr_assert_eq(sbx_tail_sub_handed(R.b.tail, s, sbx_mono_ms() + 60000), -1,
		     "or for no longer than the grace");
	/* The reader reads at last: the queue drains through the thread,
	 * whole events, the last one saying why it ends. */
	read_until(sv[1], buf, sizeof(buf), &got, "event: dropped\ndata: {");
	cr_assert_not_null(strstr(buf, "event: dropped\ndata: {"), "%.200s", buf);
	cr_assert_lt(got, SBX_TAIL_BUF_MAX + 512 * 1024, "bounded: %zu bytes", got);
	for (int i = 0; i < 1000 && sbx_tail_sub_handed(R.b.tail, s, sbx_mono_ms()) != -1; i++)
		usleep(10000);
	cr_assert_eq(sbx_tail_sub_handed(R.b.tail, s, sbx_mono_ms()), -1, "all sent: over");
	sbx_tail_sub_close(R.b.tail, s);
	close(sv[0]);
	close(sv[1]);
}
