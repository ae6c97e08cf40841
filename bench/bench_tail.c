/*
 * bench_tail: how soon a follower of the journal (sbxctl audit tail -f,
 * the TAIL op) sees a record.  Starts its own sbx-brokerd on the
 * reference policy, follows with TAIL + SBX_TAIL_FOLLOW, then N times:
 *
 *   request  REQUEST (as erin, AS_USER) and its CANCEL: from sending the
 *            request to the follower holding its request.created (the
 *            reply waits for the record to be durable; the push follows
 *            in the same loop pass);
 *   check    CHECK with SBX_CHECK_RECORD (pam_sbx's): from sending it to
 *            the follower holding its access.checked (such records may
 *            wait up to 50 ms for a group commit before they are durable).
 *
 * Target (issue 12): a request is seen within 100 ms.  Run as root.
 *
 *   bench_tail [--count N] [--broker PATH]
 */
#include "config.h"

#include "benchlib.h"
#include "frame.h"
#include "sbxio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Wait for a frame on the follower holding a RECORD whose text has want. */
static int wait_record(int fd, const char *want, char *err, size_t errlen)
{
	for (;;) {
		uint8_t *frame = NULL;
		size_t n = 0;
		sbx_reader rd;
		sbx_field f;
		bool found = false;
		int rc = sbx_recv_frame(fd, &frame, &n, sbx_mono_ms() + 5000);

		if (rc < 0) {
			snprintf(err, errlen, "follower: %s", strerror(-rc));
			return -1;
		}
		sbx_reader_init_frame(&rd, frame, n);
		while (sbx_reader_next(&rd, &f) == 1)
			if (f.tag == SBX_F_RECORD && memmem(f.val, f.len, want, strlen(want)))
				found = true;
		free(frame);
		if (found)
			return 0;
	}
}

static int call(const char *socket, sbx_msg *m, uint32_t *id)
{
	struct sbx_conn_opts o = { .path = socket, .timeout_ms = BENCH_TIMEOUT_MS };
	uint8_t *frame = NULL;
	size_t n = 0;
	uint32_t status = 1;
	int rc = sbx_call(&o, m, &frame, &n);

	if (rc == 0) {
		sbx_reader rd;
		sbx_field f, r;

		sbx_reply_status(frame, n, &status, NULL, 0);
		sbx_reader_init_frame(&rd, frame, n);
		if (id && sbx_reader_find(&rd, SBX_F_REQUEST, &f) == 1) {
			sbx_reader_init_rec(&rd, &f);
			if (sbx_reader_find(&rd, SBX_F_ID, &r) == 1)
				*id = sbx_field_u32(&r);
		}
	}
	free(frame);
	sbx_msg_free(m);
	return rc < 0 ? rc : status == SBX_ST_OK ? 0 : -EPERM;
}

int main(int argc, char **argv)
{
	unsigned long count = 200;
	char brokerpath[512] = "", policy[512], err[512] = "", want[64];
	struct bench_broker b = { 0 };
	struct bench_samples req = { 0 }, chk = { 0 };
	struct bench_stats st;
	struct sbx_conn_opts o = { .timeout_ms = BENCH_TIMEOUT_MS };
	uint8_t *frame = NULL;
	size_t n;
	sbx_msg m = { 0 };
	int fd = -1, ret = 1;
	const struct bench_opt opts[] = {
		{ "count", BENCH_OPT_ULONG, &count, NULL, 0, 1, 100000, 0 },
		{ "broker", BENCH_OPT_PATH, brokerpath, NULL, sizeof(brokerpath), 0, 0, 0 },
	};

	if (bench_parse_args("bench_tail", "Usage: bench_tail [--count N] [--broker PATH]\n",
			     argc, argv, opts, sizeof(opts) / sizeof(opts[0])) < 0)
		return 2;
	if (bench_catch_signals() < 0 ||
	    (!brokerpath[0] && bench_default_broker(brokerpath, sizeof(brokerpath)) < 0) ||
	    bench_reference_policy(policy, sizeof(policy)) < 0 ||
	    bench_broker_prepare(&b, "bench_tail", err, sizeof(err)) < 0 ||
	    bench_broker_copy_config(&b, policy, err, sizeof(err)) < 0 ||
	    bench_broker_start(&b, brokerpath, 15000, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_tail: cannot start the broker: %s\n", err);
		goto out;
	}
	bench_print_machine(stdout, b.state_dir);
	printf("target:   a request seen by tail -f within 100 ms\n");
	o.path = b.socket;
	fd = sbx_connect(&o, sbx_mono_ms() + 5000);
	sbx_msg_init(&m, SBX_OP_TAIL);
	sbx_msg_put_u32(&m, SBX_F_FLAGS, SBX_TAIL_FOLLOW);
	sbx_msg_put_u32(&m, SBX_F_COUNT, 0);
	if (fd < 0 || sbx_msg_finish(&m) < 0 ||
	    sbx_send_all(fd, m.buf, m.len, sbx_mono_ms() + 5000) < 0 ||
	    sbx_recv_frame(fd, &frame, &n, sbx_mono_ms() + 5000) < 0) {
		fprintf(stderr, "bench_tail: cannot follow the journal\n");
		goto out;
	}
	free(frame);
	sbx_msg_free(&m);
	for (unsigned long i = 0; i < count && !bench_interrupted; i++) {
		uint32_t id = 0;
		int64_t t0;

		sbx_msg_init(&m, SBX_OP_REQUEST);
		sbx_msg_put_str(&m, SBX_F_AS_USER, "erin");
		sbx_msg_put_str(&m, SBX_F_ROLE, "sandbox-admin");
		snprintf(want, sizeof(want), "bench_tail %lu", i);
		sbx_msg_put_str(&m, SBX_F_REASON, want);
		t0 = bench_now_ns();
		if (call(b.socket, &m, &id) < 0 || wait_record(fd, want, err, sizeof(err)) < 0) {
			fprintf(stderr, "bench_tail: request %lu: %s\n", i, err[0] ? err : "refused");
			goto out;
		}
		bench_samples_add(&req, bench_now_ns() - t0);
		sbx_msg_init(&m, SBX_OP_CANCEL);
		sbx_msg_put_str(&m, SBX_F_AS_USER, "erin");
		sbx_msg_put_u32(&m, SBX_F_ID, id);
		if (call(b.socket, &m, NULL) < 0) {
			fprintf(stderr, "bench_tail: cannot cancel request %u\n", id);
			goto out;
		}
		sbx_msg_init(&m, SBX_OP_CHECK);
		snprintf(want, sizeof(want), "bt%lu", i);
		sbx_msg_put_str(&m, SBX_F_USER, "alice");
		sbx_msg_put_str(&m, SBX_F_TTY, want);
		sbx_msg_put_u32(&m, SBX_F_FLAGS, SBX_CHECK_RECORD);
		t0 = bench_now_ns();
		if (call(b.socket, &m, NULL) < 0 || wait_record(fd, want, err, sizeof(err)) < 0) {
			fprintf(stderr, "bench_tail: check %lu: %s\n", i, err[0] ? err : "refused");
			goto out;
		}
		bench_samples_add(&chk, bench_now_ns() - t0);
	}
	printf("== request sent -> its request.created at the follower (%zu) ==\n  ", req.n);
	bench_stats_compute(&req, &st);
	bench_stats_print(stdout, &st);
	printf("== recorded check sent -> its access.checked at the follower (%zu) ==\n  ", chk.n);
	bench_stats_compute(&chk, &st);
	bench_stats_print(stdout, &st);
	ret = 0;
out:
	sbx_msg_free(&m);
	if (fd >= 0)
		close(fd);
	bench_samples_free(&req);
	bench_samples_free(&chk);
	bench_broker_cleanup(&b, ret != 0);
	return ret;
}
