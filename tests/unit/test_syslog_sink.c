/* Records as syslog lines, and sending them without waiting
 * (broker/syslog_sink.c). */
#include <criterion/criterion.h>

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "syslog_sink.h"

#define HASH "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static const char *fmt(const char *json, size_t outlen)
{
	static char out[4096];
	json_error_t err;
	json_t *rec = json_loads(json, 0, &err);
	size_t n;

	cr_assert_not_null(rec, "bad test JSON: %s", err.text);
	cr_assert_leq(outlen, sizeof(out));
	memset(out, 'X', sizeof(out));
	n = sbx_syslog_format(rec, NULL, out, outlen);
	json_decref(rec);
	cr_assert_eq(n, strlen(out), "the length returned is the line's");
	cr_assert_lt(n, outlen, "longer than the buffer allows");
	return out;
}

Test(syslog_sink, fields_in_a_fixed_order_whatever_the_record_has)
{
	cr_assert_str_eq(fmt("{\"id\":7,\"role\":\"db-admin\",\"user\":\"erin\",\"actor\":\"bob\","
			     "\"event\":\"request.approval\",\"hash\":\"" HASH "\",\"seq\":12,"
			     "\"time\":\"2026-12-07T01:00:00.000001Z\",\"prev\":\"" HASH "\","
			     "\"ground\":\"manager\",\"through\":\"root\"}", 1024),
			 "seq=12 hash=" HASH " event=request.approval actor=bob through=root "
			 "user=erin role=db-admin id=7");
	/* Absent, null, boolean, array and object values are left out. */
	cr_assert_str_eq(fmt("{\"seq\":1,\"hash\":\"" HASH "\",\"event\":\"broker.started\","
			     "\"actor\":\"sbx\",\"user\":null,\"role\":true,\"id\":[1],"
			     "\"outcome\":{}}", 1024),
			 "seq=1 hash=" HASH " event=broker.started actor=sbx");
	cr_assert_str_eq(fmt("{\"seq\":9,\"hash\":\"" HASH "\",\"event\":\"journal.sealed\","
			     "\"epoch\":3,\"key_id\":\"1a036ab0a8c6c411\",\"first_seq\":5,"
			     "\"last_seq\":8,\"why\":\"timer\",\"syslog_dropped\":0}", 1024),
			 "seq=9 hash=" HASH " event=journal.sealed epoch=3 key_id=1a036ab0a8c6c411 "
			 "first_seq=5 last_seq=8 why=timer syslog_dropped=0");
}

Test(syslog_sink, values_that_are_not_plain_words_are_quoted_and_escaped)
{
	cr_assert_str_eq(fmt("{\"seq\":1,\"user\":\"a b\"}", 256), "seq=1 user=\"a b\"");
	cr_assert_str_eq(fmt("{\"seq\":1,\"user\":\"\"}", 256), "seq=1 user=\"\"");
	cr_assert_str_eq(fmt("{\"seq\":1,\"user\":\"x=y\"}", 256), "seq=1 user=\"x=y\"");
	cr_assert_str_eq(fmt("{\"seq\":1,\"user\":\"say \\\"hi\\\" \\\\o/\"}", 256),
			 "seq=1 user=\"say \\\"hi\\\" \\\\o/\"");
	/* A value can neither start a line nor fake a key of its own. */
	cr_assert_str_eq(fmt("{\"seq\":1,\"user\":\"x\\nseq=2 hash=0\"}", 256),
			 "seq=1 user=\"x\\x0aseq=2 hash=0\"");
	cr_assert_str_eq(fmt("{\"seq\":1,\"user\":\"a\\tb\\r\\u007f\"}", 256),
			 "seq=1 user=\"a\\x09b\\x0d\\x7f\"");
	/* Bytes past ASCII (here U+202E, which turns text around on screen). */
	cr_assert_str_eq(fmt("{\"seq\":1,\"user\":\"caf\\u00e9\\u202e\"}", 256),
			 "seq=1 user=\"caf\\xc3\\xa9\\xe2\\x80\\xae\"");
	cr_assert_str_eq(fmt("{\"seq\":1,\"actor\":\"svc-deploy@corp.example:x/y+z_1.2\"}", 256),
			 "seq=1 actor=svc-deploy@corp.example:x/y+z_1.2");
	cr_assert_str_eq(fmt("{\"seq\":1,\"id\":-5}", 256), "seq=1 id=-5");
}

Test(syslog_sink, a_hash_given_stands_for_the_records_own)
{
	char out[512];
	json_t *rec = json_pack("{s:i, s:s, s:s}", "seq", 3, "hash", "00", "event", "x.y");

	cr_assert_not_null(rec);
	sbx_syslog_format(rec, HASH, out, sizeof(out));
	cr_assert_str_eq(out, "seq=3 hash=" HASH " event=x.y");
	sbx_syslog_format(rec, "", out, sizeof(out));
	cr_assert_str_eq(out, "seq=3 event=x.y", "\"\" leaves the hash out");
	sbx_syslog_format(rec, NULL, out, sizeof(out));
	cr_assert_str_eq(out, "seq=3 hash=00 event=x.y");
	json_decref(rec);
}

Test(syslog_sink, long_values_are_cut_and_say_so)
{
	char json[1024], want[512];
	const char *got;

	snprintf(json, sizeof(json), "{\"seq\":1,\"role\":\"%0*d\"}", SBX_SYSLOG_VALUE_MAX + 50, 0);
	got = fmt(json, 1024);
	snprintf(want, sizeof(want), "seq=1 role=\"%0*d...\"", SBX_SYSLOG_VALUE_MAX, 0);
	cr_assert_str_eq(got, want);
	snprintf(json, sizeof(json), "{\"seq\":1,\"role\":\"%0*d\"}", SBX_SYSLOG_VALUE_MAX, 0);
	snprintf(want, sizeof(want), "seq=1 role=%0*d", SBX_SYSLOG_VALUE_MAX, 0);
	cr_assert_str_eq(fmt(json, 1024), want, "a value of exactly the limit is whole");
}

Test(syslog_sink, a_line_that_does_not_fit_ends_after_a_whole_field)
{
	const char *rec = "{\"seq\":12,\"hash\":\"" HASH "\",\"event\":\"request.created\","
			  "\"actor\":\"erin\",\"user\":\"erin\",\"role\":\"sandbox-admin\"}";
	const char *got = fmt(rec, 120);

	cr_assert_str_eq(got, "seq=12 hash=" HASH " event=request.created truncated=1");
	cr_assert_str_eq(fmt(rec, 200), "seq=12 hash=" HASH " event=request.created actor=erin "
			 "user=erin role=sandbox-admin", "with room, nothing is cut");
}

Test(syslog_sink, the_datagram_is_what_syslog3_writes)
{
	char out[256];
	regex_t re;
	size_t n = sbx_syslog_datagram(SBX_SYSLOG_PRI_RECORD, 1796605200, 4711, "seq=1", out,
				       sizeof(out));

	cr_assert_eq(n, strlen(out));
	cr_assert_eq(regcomp(&re, "^<86>[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} "
			     "sbx-brokerd\\[4711\\]: seq=1$", REG_EXTENDED | REG_NOSUB), 0);
	cr_assert_eq(regexec(&re, out, 0, NULL, 0), 0, "got %s", out);
	regfree(&re);
	cr_assert_eq(SBX_SYSLOG_PRI_SEAL, 85, "authpriv.notice");
	n = sbx_syslog_datagram(SBX_SYSLOG_PRI_SEAL, 0, 1, "0123456789abcdef0123456789", out, 32);
	cr_assert_eq(n, 31, "cut to the buffer");
}

/* ---- sending ---- */

static char dir[] = "/tmp/sbx-syslog-XXXXXX";
static char path[64];

static void mkdir_tmp(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/log", dir);
}

static void rm_tmp(void)
{
	unlink(path);
	rmdir(dir);
}

static int bind_receiver(int rcvbuf)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	if (rcvbuf)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind: %s", strerror(errno));
	return fd;
}

static json_t *record(int seq)
{
	return json_pack("{s:i, s:s, s:s, s:s}", "seq", seq, "hash", HASH, "event",
			 "access.checked", "actor", "sbx");
}

Test(syslog_sink, one_record_one_datagram, .init = mkdir_tmp, .fini = rm_tmp)
{
	int fd = bind_receiver(0);
	struct sbx_syslog_sink *s = sbx_syslog_sink_new(path);
	json_t *rec = record(42);
	char buf[2048];
	ssize_t n;

	cr_assert_not_null(s);
	cr_assert_eq(sbx_syslog_sink_send(s, SBX_SYSLOG_PRI_RECORD, rec), 0);
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	cr_assert(strncmp(buf, "<86>", 4) == 0, "got %s", buf);
	cr_assert_not_null(strstr(buf, "]: seq=42 hash=" HASH " event=access.checked actor=sbx"),
			   "got %s", buf);
	cr_assert_null(strchr(buf, '\n'));
	cr_assert_eq(sbx_syslog_sink_sent(s), 1);
	cr_assert_eq(sbx_syslog_sink_dropped(s), 0);
	json_decref(rec);
	sbx_syslog_sink_free(s);
	close(fd);
}

Test(syslog_sink, a_full_receiver_drops_and_counts_never_waits, .init = mkdir_tmp, .fini = rm_tmp)
{
	int fd = bind_receiver(4096);
	struct sbx_syslog_sink *s = sbx_syslog_sink_new(path);
	json_t *rec = record(1);
	char buf[2048];
	unsigned long i, queued;
	int64_t until;

	cr_assert_not_null(s);
	/* Nobody reads: the socket's queue fills (net.unix.max_dgram_qlen),
	 * the thread waits for room, the sink's queue fills (4096 records),
	 * and then every line is dropped at once. */
	for (i = 0; i < 100000 && sbx_syslog_sink_dropped(s) == 0; i++) {
		sbx_syslog_sink_queue(s, SBX_SYSLOG_PRI_RECORD, rec);
		sbx_syslog_sink_flush(s);
	}
	queued = i;
	cr_assert_gt(sbx_syslog_sink_dropped(s), 0, "a line was dropped rather than waited for");
	cr_assert_lt(queued, 4096 + 64 + 4096, "... once the sink's queue was full");
	/* The receiver reads again: every line queued goes, or is counted. */
	until = (int64_t)time(NULL) + 20;
	while (sbx_syslog_sink_sent(s) + sbx_syslog_sink_dropped(s) < queued &&
	       (int64_t)time(NULL) < until)
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0)
			usleep(1000);
	sbx_syslog_sink_wait(s);
	cr_assert_eq(sbx_syslog_sink_sent(s) + sbx_syslog_sink_dropped(s), queued,
		     "sent %lu + dropped %lu", (unsigned long)sbx_syslog_sink_sent(s),
		     (unsigned long)sbx_syslog_sink_dropped(s));
	cr_assert_geq(sbx_syslog_sink_sent(s), 4096, "what waited went once there was room");
	json_decref(rec);
	sbx_syslog_sink_free(s);
	close(fd);
}

Test(syslog_sink, no_receiver_yet_then_one, .init = mkdir_tmp, .fini = rm_tmp)
{
	struct sbx_syslog_sink *s = sbx_syslog_sink_new(path);
	json_t *rec = record(5);
	char buf[2048];
	int fd;

	cr_assert_not_null(s, "a sink is made whether or not syslog is there");
	cr_assert_eq(sbx_syslog_sink_send(s, SBX_SYSLOG_PRI_RECORD, rec), 1,
		     "no receiver: dropped, not kept");
	cr_assert_eq(sbx_syslog_sink_dropped(s), 1);
	fd = bind_receiver(0);
	/* Connecting again is tried at most once a second. */
	usleep(1100 * 1000);
	cr_assert_eq(sbx_syslog_sink_send(s, SBX_SYSLOG_PRI_RECORD, rec), 0);
	cr_assert_gt(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), 0);
	/* The receiver goes and comes back (a syslog daemon restarted). */
	close(fd);
	unlink(path);
	fd = bind_receiver(0);
	cr_assert_eq(sbx_syslog_sink_send(s, SBX_SYSLOG_PRI_RECORD, rec), 0,
		     "a refused send connects again at once and retries");
	cr_assert_gt(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), 0);
	json_decref(rec);
	sbx_syslog_sink_free(s);
	close(fd);
}

Test(syslog_sink, queued_lines_leave_together_in_order, .init = mkdir_tmp, .fini = rm_tmp)
{
	int fd = bind_receiver(0);
	struct sbx_syslog_sink *s = sbx_syslog_sink_new(path);
	char buf[2048], want[64];
	ssize_t n;

	cr_assert_not_null(s);
	/* Fewer than the kernel's default queue of 10 datagrams. */
	for (int i = 1; i <= 8; i++) {
		json_t *rec = record(i);

		sbx_syslog_sink_queue(s, i == 8 ? SBX_SYSLOG_PRI_SEAL : SBX_SYSLOG_PRI_RECORD, rec);
		json_decref(rec);
	}
	sbx_syslog_sink_wait(s);
	cr_assert_eq(sbx_syslog_sink_sent(s), 8);
	for (int i = 1; i <= 8; i++) {
		n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
		cr_assert_gt(n, 0, "datagram %d", i);
		buf[n] = '\0';
		snprintf(want, sizeof(want), "]: seq=%d hash=", i);
		cr_assert_not_null(strstr(buf, want), "in order: %s", buf);
		cr_assert(strncmp(buf, i == 8 ? "<85>" : "<86>", 4) == 0);
	}
	cr_assert_lt(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), 0);
	sbx_syslog_sink_free(s);
	close(fd);
}
