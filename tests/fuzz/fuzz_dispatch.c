/*
 * The broker's real request path: a whole broker (the reference policy, a
 * journal in a temp dir, every feature started as sbx-brokerd starts
 * them, as tests/unit/broker_rig.h does) and each input's frames handed
 * to sbx_broker_handle, as the event loop hands them over, once as root
 * and once as an unprivileged caller (uid 65534).  Every reply must be a
 * valid frame (sbx_msg_finish + sbx_frame_validate) that starts with
 * STATUS and MESSAGE and answers the request's op; anything else aborts.
 * Frames that do not validate get sbx_broker_malformed's reply instead,
 * as on the socket.
 *
 * The input is a run of frames, each as long as its header says (the
 * last takes what is left).  To let inputs build on what they did
 * (request, then approve), an ID or EXTENDS value of 1..16 means the
 * request this input filed first, second, ... (the broker's next id when
 * the input began, plus the value minus one); larger ids are sent as
 * they are.
 *
 * Sessions: the broker signals a session's processes when its grant ends
 * (on_expiry: terminate).  So that no input can make it signal a real
 * process, every PID field, and the caller's own pid, is replaced by a
 * child this target keeps for the purpose (a process that only waits).
 *
 * The broker is started afresh in a new dir every RESTART_EVERY inputs,
 * which keeps its journal and state small during long runs; its timers
 * run after every input, with the wall clock, as the loop runs them.
 */
#include "fuzz.h"

#include "broker.h"
#include "dispatch.h"
#include "frame.h"
#include "identity.h"
#include "sbxio.h"
#include "timeutil.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SBX_TEST_SRCDIR
#define SBX_TEST_SRCDIR "."
#endif
#define RESTART_EVERY 4000u
#define RELATIVE_IDS 16u

static struct {
	char policy[PATH_MAX];
	char dir[PATH_MAX];
	struct sbx_broker b;
	bool up;
	unsigned inputs;
	pid_t victim;
} F;

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A process for sessions to lead: it waits, and dies with us. */
static void keep_victim(void)
{
	pid_t pid;

	if (F.victim > 0 && waitpid(F.victim, NULL, WNOHANG) == 0)
		return;
	pid = fork();
	FUZZ_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	F.victim = pid;
}

static void broker_stop(void)
{
	char cmd[PATH_MAX + 16];

	if (!F.up)
		return;
	sbx_journal_flush(F.b.journal);
	sbx_broker_free(&F.b);
	memset(&F.b, 0, sizeof(F.b));
	F.up = false;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", F.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz: could not remove %s\n", F.dir);
}

/* rig_open of tests/unit/broker_rig.h, in a new temp dir. */
static void broker_start(void)
{
	const char *base = fuzz_tmp_base();
	struct sbx_policy_errors errs = { 0 };
	char path[PATH_MAX + 32], why[1024];

	snprintf(F.dir, sizeof(F.dir), "%s/sbx-fuzz-dispatch-XXXXXX", base);
	FUZZ_CHECK(mkdtemp(F.dir) != NULL, "mkdtemp: %s", strerror(errno));
	memset(&F.b, 0, sizeof(F.b));
	FUZZ_CHECK(sbx_policy_load_file(F.policy, &F.b.policy, &F.b.settings, &errs) == 0,
		   "cannot load %s", F.policy);
	sbx_policy_errors_free(&errs);
	free(F.b.policy->broker.socket);
	free(F.b.policy->broker.state_dir);
	snprintf(path, sizeof(path), "%s/run/broker.sock", F.dir);
	F.b.policy->broker.socket = strdup(path);
	snprintf(path, sizeof(path), "%s/state", F.dir);
	F.b.policy->broker.state_dir = strdup(path);
	F.b.config_path = strdup(F.policy);
	FUZZ_CHECK(F.b.policy->broker.socket && F.b.policy->broker.state_dir && F.b.config_path,
		   "out of memory");
	FUZZ_CHECK(sbx_broker_start(&F.b, why, sizeof(why)) == 0, "broker start: %s", why);
	F.up = true;
	F.inputs = 0;
}

static void cleanup(void)
{
	broker_stop();
	if (F.victim > 0) {
		kill(F.victim, SIGKILL);
		waitpid(F.victim, NULL, 0);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *src = getenv("SBX_SRCDIR");

	(void)argc;
	(void)argv;
	snprintf(F.policy, sizeof(F.policy), "%s/packaging/examples/policy.yaml",
		 src && *src ? src : SBX_TEST_SRCDIR);
	/* Before the broker's threads exist. */
	keep_victim();
	broker_start();
	atexit(cleanup);
	return 0;
}

/* Point PID fields at the victim and relative ids at this input's
 * requests (top-level fields of a validated frame: that is all the
 * dispatcher reads). */
static void rewrite(uint8_t *f, size_t n, uint32_t base_id)
{
	size_t off = SBX_HDR_LEN;

	while (off + SBX_FIELD_HDR_LEN <= n) {
		uint16_t tag = be16(f + off), len = be16(f + off + 2);
		uint8_t *v = f + off + SBX_FIELD_HDR_LEN;

		if (tag == SBX_F_PID && len == 4)
			put_be32(v, (uint32_t)F.victim);
		if ((tag == SBX_F_ID || tag == SBX_F_EXTENDS) && len == 4 && be32(v) >= 1 &&
		    be32(v) <= RELATIVE_IDS)
			put_be32(v, base_id + be32(v) - 1);
		off += SBX_FIELD_HDR_LEN + len;
	}
}

/* A reply as a client reads it: a valid frame for this op (or ERROR)
 * that starts with STATUS and MESSAGE. */
static void check_reply(sbx_msg *reply, uint16_t op)
{
	char why[256];
	struct sbx_hdr h;
	sbx_reader r;
	sbx_field f;
	uint32_t status;
	int rc;

	rc = sbx_msg_finish(reply);
	FUZZ_CHECK(rc == 0, "reply to op 0x%04x cannot be finished: %d", op, rc);
	rc = sbx_frame_validate(reply->buf, reply->len, 1, why, sizeof(why));
	FUZZ_CHECK(rc == 0, "reply to op 0x%04x is malformed: %s", op, why);
	FUZZ_CHECK(sbx_hdr_decode(reply->buf, reply->len, &h) == 0, "reply header");
	FUZZ_CHECK(h.op == (op | SBX_OP_REPLY) || h.op == SBX_OP_ERROR,
		   "reply op 0x%04x to op 0x%04x", h.op, op);
	sbx_reader_init_frame(&r, reply->buf, reply->len);
	FUZZ_CHECK(sbx_reader_next(&r, &f) == 1 && f.tag == SBX_F_STATUS, "reply starts without STATUS");
	status = sbx_field_u32(&f);
	FUZZ_CHECK(status <= SBX_ST_INTERNAL, "status %u", status);
	FUZZ_CHECK(sbx_reader_next(&r, &f) == 1 && f.tag == SBX_F_MESSAGE,
		   "reply has no MESSAGE after STATUS");
}

static void call(const uint8_t *frame, size_t n, uid_t uid)
{
	struct sbx_caller c = { .uid = uid, .gid = uid, .pid = F.victim };
	sbx_msg reply = { 0 };
	uint64_t wait_seq = 0;

	sbx_broker_handle(&F.b, &c, frame, n, &reply, &wait_seq);
	check_reply(&reply, be16(frame + 6));
	FUZZ_CHECK(wait_seq <= sbx_journal_last_seq(F.b.journal), "waits for seq %llu, last is %llu",
		   (unsigned long long)wait_seq,
		   (unsigned long long)sbx_journal_last_seq(F.b.journal));
	sbx_msg_free(&reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t base_id;
	size_t off = 0;

	if (F.inputs++ >= RESTART_EVERY) {
		broker_stop();
		broker_start();
	}
	keep_victim();
	base_id = sbx_state_next_id(F.b.state);
	while (off < size) {
		size_t left = size - off, n = left;
		char why[256];
		uint8_t *frame;

		if (left >= SBX_HDR_LEN && be32(data + off) >= SBX_HDR_LEN && be32(data + off) <= left)
			n = be32(data + off);
		frame = malloc(n);
		FUZZ_CHECK(frame != NULL, "out of memory");
		memcpy(frame, data + off, n);
		off += n;
		if (sbx_frame_validate(frame, n, 0, why, sizeof(why)) != 0) {
			sbx_msg reply = { 0 };

			sbx_broker_malformed(&reply, why);
			check_reply(&reply, SBX_OP_ERROR);
			sbx_msg_free(&reply);
			free(frame);
			continue;
		}
		rewrite(frame, n, base_id);
		call(frame, n, 0);
		call(frame, n, 65534);
		free(frame);
	}
	sbx_broker_timers(&F.b, sbx_now());
	return 0;
}
