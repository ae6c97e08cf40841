/* The grant table: its format (builder and reader, nss_module/sbx_table.c)
 * and how the broker fills it from the policy and the state
 * (broker/grouptable.c). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "grouptable.h"
#include "sbx_table.h"
#include "policy.h"
#include "state.h"
#include "timeutil.h"

#define NOW 1800000000 /* 2027-01-15 */

/* ---- helpers --------------------------------------------------------------------- */

/* A small table: two groups, members added out of order, one twice. */
static uint8_t *small_table(size_t *len)
{
	struct sbx_tbl_builder *b = sbx_tbl_builder_new();
	uint8_t *out = NULL;
	int g1, g2;

	cr_assert_not_null(b);
	g1 = sbx_tbl_add_group(b, "sbx-admin", 60001);
	g2 = sbx_tbl_add_group(b, "sbx-phi", 60002);
	cr_assert_geq(g1, 0);
	cr_assert_geq(g2, 0);
	cr_assert_eq(sbx_tbl_add_member(b, g1, "erin", NOW + 3600), 0);
	cr_assert_eq(sbx_tbl_add_member(b, g1, "alice", SBX_TBL_FOREVER), 0);
	cr_assert_eq(sbx_tbl_add_member(b, g1, "dave", NOW - 1), 0);
	cr_assert_eq(sbx_tbl_add_member(b, g1, "erin", NOW + 7200), 0);
	cr_assert_eq(sbx_tbl_add_member(b, g1, "erin", NOW + 60), 0);
	cr_assert_eq(sbx_tbl_finish(b, 42, NOW, &out, len), 0);
	sbx_tbl_builder_free(b);
	return out;
}

/* A heap copy of exactly n bytes, so ASan sees any read past the end. */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);

	cr_assert_not_null(c);
	memcpy(c, p, n);
	return c;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Walk everything a reader can reach; must never crash or read outside. */
static void touch_everything(const struct sbx_tbl *t)
{
	for (uint32_t i = 0; i < t->n_groups && i < 1000; i++) {
		struct sbx_tbl_group g;

		if (sbx_tbl_group_at(t, i, &g) < 0)
			continue;
		(void)sbx_tbl_is_member(t, &g, "erin", NOW);
		if (g.count < 1000 && g.member_bytes < 100000) {
			char **mem = malloc((g.count + 1) * sizeof(*mem));
			char *dst = malloc(g.member_bytes + 1);
			size_t c, bytes;
			long n;

			(void)sbx_tbl_count_live(t, &g, NOW, &c, &bytes);
			n = sbx_tbl_copy_live(t, &g, NOW, mem, g.count, dst, g.member_bytes);
			for (long k = 0; k < n; k++)
				cr_assert(mem[k] >= dst && mem[k] < dst + g.member_bytes);
			free(mem);
			free(dst);
		}
		for (uint32_t j = 0; j < g.count && j < 1000; j++) {
			struct sbx_tbl_member m;

			if (sbx_tbl_member_at(t, &g, j, &m) == 0)
				cr_assert_eq(strlen(m.name), m.name_len);
		}
	}
	{
		struct sbx_tbl_group g;

		(void)sbx_tbl_find_name(t, "sbx-admin", &g);
		(void)sbx_tbl_find_gid(t, 60001, &g);
	}
}

/* ---- the format ------------------------------------------------------------------ */

Test(table, round_trip)
{
	size_t len;
	uint8_t *buf = small_table(&len);
	struct sbx_tbl t;
	struct sbx_tbl_group g;
	struct sbx_tbl_member m;
	char why[128];

	cr_assert_eq(sbx_tbl_open(&t, buf, len, 1, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(t.n_groups, 2);
	cr_assert_eq(t.generation, 42);
	cr_assert_eq(t.written_at, NOW);
	cr_assert_eq(sbx_tbl_find_name(&t, "sbx-admin", &g), 1);
	cr_assert_eq(g.gid, 60001);
	cr_assert_eq(g.count, 3, "erin added three times is one member");
	cr_assert_eq(g.member_bytes, strlen("alice") + strlen("dave") + strlen("erin") + 3);
	cr_assert_eq(sbx_tbl_member_at(&t, &g, 0, &m), 0);
	cr_assert_str_eq(m.name, "alice");
	cr_assert_eq(m.expires_at, SBX_TBL_FOREVER);
	cr_assert_eq(sbx_tbl_member_at(&t, &g, 2, &m), 0);
	cr_assert_str_eq(m.name, "erin");
	cr_assert_eq(m.expires_at, NOW + 7200, "the latest expiry wins");
	cr_assert_eq(sbx_tbl_member_at(&t, &g, 3, &m), -EBADMSG);
	cr_assert_eq(sbx_tbl_find_gid(&t, 60002, &g), 1);
	cr_assert_str_eq(g.name, "sbx-phi");
	cr_assert_eq(g.count, 0);
	cr_assert_eq(sbx_tbl_find_name(&t, "wheel", &g), 0);
	cr_assert_eq(sbx_tbl_find_gid(&t, 0, &g), 0);
	free(buf);
}

Test(table, membership_follows_the_clock)
{
	size_t len;
	uint8_t *buf = small_table(&len);
	struct sbx_tbl t;
	struct sbx_tbl_group g;

	cr_assert_eq(sbx_tbl_open(&t, buf, len, 1, NULL, 0), 0);
	cr_assert_eq(sbx_tbl_find_name(&t, "sbx-admin", &g), 1);
	cr_assert_eq(sbx_tbl_is_member(&t, &g, "erin", NOW), 1);
	cr_assert_eq(sbx_tbl_is_member(&t, &g, "erin", NOW + 7199), 1);
	cr_assert_eq(sbx_tbl_is_member(&t, &g, "erin", NOW + 7200), 0, "gone at expires_at");
	cr_assert_eq(sbx_tbl_is_member(&t, &g, "dave", NOW), 0, "expired before now");
	cr_assert_eq(sbx_tbl_is_member(&t, &g, "alice", INT64_MAX - 1), 1, "standing");
	cr_assert_eq(sbx_tbl_is_member(&t, &g, "bob", NOW), 0);
	cr_assert_eq(sbx_tbl_is_member(&t, &g, "aaa", NOW), 0);
	cr_assert_eq(sbx_tbl_is_member(&t, &g, "zzz", NOW), 0);
	free(buf);
}

Test(table, binary_search_over_many_members)
{
	struct sbx_tbl_builder *b = sbx_tbl_builder_new();
	uint8_t *buf = NULL;
	size_t len;
	struct sbx_tbl t;
	struct sbx_tbl_group g;
	char name[16];
	int gi = sbx_tbl_add_group(b, "big", 70000);

	/* Added in reverse; odd users only. */
	for (int i = 9999; i >= 1; i -= 2) {
		snprintf(name, sizeof(name), "u%05d", i);
		cr_assert_eq(sbx_tbl_add_member(b, gi, name, NOW + i), 0);
	}
	cr_assert_eq(sbx_tbl_finish(b, 1, NOW, &buf, &len), 0);
	sbx_tbl_builder_free(b);
	cr_assert_eq(sbx_tbl_open(&t, buf, len, 1, NULL, 0), 0);
	cr_assert_eq(sbx_tbl_find_name(&t, "big", &g), 1);
	cr_assert_eq(g.count, 5000);
	for (int i = 1; i <= 10000; i++) {
		snprintf(name, sizeof(name), "u%05d", i);
		cr_assert_eq(sbx_tbl_is_member(&t, &g, name, NOW), i % 2, "%s", name);
	}
	free(buf);
}

/* Copy the live names of group name into exactly-sized buffers. */
static long copy_names(const struct sbx_tbl *t, const char *name, int64_t now, char *joined,
		       size_t jlen)
{
	struct sbx_tbl_group g;
	size_t count, bytes, off = 0;
	char **mem, *dst;
	long n;

	cr_assert_eq(sbx_tbl_find_name(t, name, &g), 1);
	cr_assert_eq(sbx_tbl_count_live(t, &g, now, &count, &bytes), 0);
	mem = malloc((count + 1) * sizeof(*mem));
	dst = malloc(bytes ? bytes : 1);
	n = sbx_tbl_copy_live(t, &g, now, mem, count, dst, bytes);
	cr_assert_eq(n, (long)count);
	cr_assert_null(mem[n]);
	joined[0] = '\0';
	for (long k = 0; k < n; k++)
		off += (size_t)snprintf(joined + off, jlen - off, "%s%s", k ? "," : "", mem[k]);
	if (count > 0) {
		/* One byte or one slot less is not enough. */
		cr_assert_eq(sbx_tbl_copy_live(t, &g, now, mem, count - 1, dst, bytes), -ERANGE);
		cr_assert_eq(sbx_tbl_copy_live(t, &g, now, mem, count, dst, bytes - 1), -ERANGE);
	}
	free(mem);
	free(dst);
	return n;
}

Test(table, copying_live_members)
{
	size_t len;
	uint8_t *buf = small_table(&len);
	struct sbx_tbl t;
	char joined[256];

	cr_assert_eq(sbx_tbl_open(&t, buf, len, 1, NULL, 0), 0);
	/* dave has expired: member by member. */
	cr_assert_eq(copy_names(&t, "sbx-admin", NOW, joined, sizeof(joined)), 2);
	cr_assert_str_eq(joined, "alice,erin");
	/* Before dave's expiry everyone is live: the one-block copy. */
	cr_assert_eq(copy_names(&t, "sbx-admin", NOW - 10, joined, sizeof(joined)), 3);
	cr_assert_str_eq(joined, "alice,dave,erin");
	cr_assert_eq(copy_names(&t, "sbx-admin", NOW + 7200, joined, sizeof(joined)), 1);
	cr_assert_str_eq(joined, "alice");
	cr_assert_eq(copy_names(&t, "sbx-phi", NOW, joined, sizeof(joined)), 0);
	cr_assert_str_eq(joined, "");
	free(buf);
}

Test(table, builder_refuses_bad_names)
{
	struct sbx_tbl_builder *b = sbx_tbl_builder_new();
	int gi;

	cr_assert_eq(sbx_tbl_add_group(b, "a:b", 1), -EINVAL);
	cr_assert_eq(sbx_tbl_add_group(b, "", 1), -EINVAL);
	gi = sbx_tbl_add_group(b, "ok", 1);
	cr_assert_geq(gi, 0);
	cr_assert_eq(sbx_tbl_add_member(b, gi, "a,b", 0), -EINVAL);
	cr_assert_eq(sbx_tbl_add_member(b, gi, "x y", 0), -EINVAL);
	cr_assert_eq(sbx_tbl_add_member(b, gi + 1, "erin", 0), -EINVAL);
	sbx_tbl_builder_free(b);
}

Test(table, empty_table_is_valid)
{
	struct sbx_tbl_builder *b = sbx_tbl_builder_new();
	uint8_t *buf = NULL;
	size_t len;
	struct sbx_tbl t;
	struct sbx_tbl_group g;

	cr_assert_eq(sbx_tbl_finish(b, 7, NOW, &buf, &len), 0);
	sbx_tbl_builder_free(b);
	cr_assert_eq(len, SBX_TBL_HDR_LEN);
	cr_assert_eq(sbx_tbl_open(&t, buf, len, 1, NULL, 0), 0);
	cr_assert_eq(t.n_groups, 0);
	cr_assert_eq(sbx_tbl_find_name(&t, "sbx-admin", &g), 0);
	free(buf);
}

Test(table, truncated_at_every_offset_is_refused)
{
	size_t len;
	uint8_t *buf = small_table(&len);

	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *c = exact_copy(buf, cut);
		struct sbx_tbl t;
		char why[128] = "";

		cr_assert_eq(sbx_tbl_open(&t, c, cut, 1, why, sizeof(why)), -EBADMSG,
			     "cut at %zu accepted", cut);
		cr_assert_neq(why[0], '\0');
		cr_assert_eq(sbx_tbl_open(&t, c, cut, 0, NULL, 0), -EBADMSG,
			     "header check: cut at %zu accepted", cut);
		free(c);
	}
	free(buf);
}

Test(table, every_bit_flip_is_caught)
{
	size_t len;
	uint8_t *buf = small_table(&len);

	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			uint8_t *c = exact_copy(buf, len);
			struct sbx_tbl t;

			c[i] ^= (uint8_t)(1u << bit);
			cr_assert_eq(sbx_tbl_open(&t, c, len, 1, NULL, 0), -EBADMSG,
				     "flip of bit %d at %zu accepted", bit, i);
			free(c);
		}
	}
	free(buf);
}

Test(table, random_garbage_never_crashes)
{
	unsigned seed = 12345;

	for (int round = 0; round < 3000; round++) {
		size_t n = (size_t)(rand_r(&seed) % 600);
		uint8_t *g = malloc(n ? n : 1);
		struct sbx_tbl t;

		for (size_t i = 0; i < n; i++)
			g[i] = (uint8_t)rand_r(&seed);
		cr_assert_eq(sbx_tbl_open(&t, g, n, 1, NULL, 0), -EBADMSG);
		free(g);
	}
}

/* A header that passes the cheap check over a random body, with or
 * without a matching checksum: the records must still be refused or
 * walked safely. */
Test(table, plausible_headers_over_garbage)
{
	unsigned seed = 777;

	for (int round = 0; round < 3000; round++) {
		uint32_t ng = (uint32_t)(rand_r(&seed) % 4), nm = (uint32_t)(rand_r(&seed) % 6);
		uint32_t strings = (uint32_t)(rand_r(&seed) % 64);
		size_t soff = SBX_TBL_HDR_LEN + ng * SBX_TBL_GROUP_LEN + nm * SBX_TBL_MEMBER_LEN;
		size_t n = soff + strings;
		uint8_t *g = malloc(n);
		struct sbx_tbl t;

		for (size_t i = 0; i < n; i++)
			g[i] = (uint8_t)rand_r(&seed);
		/* Small numbers in the records make them point inside more often. */
		for (size_t i = SBX_TBL_HDR_LEN; i + 4 <= soff; i += 4)
			if (rand_r(&seed) % 2)
				put_le32(g + i, (uint32_t)(rand_r(&seed) % 40));
		memcpy(g, SBX_TBL_MAGIC, SBX_TBL_MAGIC_LEN);
		put_le32(g + 8, SBX_TBL_VERSION);
		put_le32(g + 12, SBX_TBL_HDR_LEN);
		put_le64(g + 16, n);
		put_le32(g + 40, ng);
		put_le32(g + 44, nm);
		put_le32(g + 56, (uint32_t)soff);
		put_le32(g + 60, strings);
		cr_assert_eq(sbx_tbl_open(&t, g, n, 0, NULL, 0), 0, "the header is plausible");
		touch_everything(&t);
		put_le64(g + 48, sbx_tbl_checksum(g, n));
		if (sbx_tbl_open(&t, g, n, 1, NULL, 0) == 0)
			touch_everything(&t);
		free(g);
	}
}

Test(table, checksum_ignores_its_own_field)
{
	size_t len;
	uint8_t *buf = small_table(&len);
	uint64_t a = sbx_tbl_checksum(buf, len);

	buf[50] ^= 0xff;
	cr_assert_eq(sbx_tbl_checksum(buf, len), a);
	buf[70] ^= 0x01;
	cr_assert_neq(sbx_tbl_checksum(buf, len), a);
	free(buf);
}

/* ---- the broker's table ----------------------------------------------------------- */

static const char policy_text[] =
	"broker:\n"
	"  host: sbx-01\n"
	"groups:\n"
	"  sre: [alice, erin]\n"
	"  ops: [olga, pete]\n"
	"users:\n"
	"  alice: {}\n"
	"  erin: { manager: frank }\n"
	"  dave: { manager: frank }\n"
	"  frank: {}\n"
	"  olga: {}\n"
	"  pete: {}\n"
	"  zed: {}\n"
	"roles:\n"
	"  sandbox-admin:\n"
	"    hosts: [\"sbx-*\"]\n"
	"    unix_group: { name: sbx-admin, gid: 60001 }\n"
	"    standing: { groups: [ops], users: [zed] }\n"
	"    eligible: { groups: [sre], users: [dave] }\n"
	"    approvers: { manager: true }\n"
	"    max_duration: 2h\n"
	"  prod-data:\n"
	"    hosts: [\"sbx-clinical-*\"]\n"
	"    unix_group: { name: sbx-phi, gid: 60002 }\n"
	"    standing: { users: [olga] }\n"
	"    eligible: { users: [alice] }\n"
	"    approvers: { manager: true }\n"
	"  readonly:\n"
	"    hosts: [\"sbx-*\"]\n"
	"    eligible: { groups: [sre] }\n"
	"    auto_approve: true\n"
	"    max_duration: 30m\n";

static struct sbx_policy *load_policy(void)
{
	struct sbx_policy_errors errs = { 0 };
	struct sbx_policy *p = NULL;

	if (sbx_policy_load_buffer(policy_text, sizeof(policy_text) - 1, "test.yaml", &p, NULL,
				   &errs) < 0) {
		sbx_policy_errors_print(stderr, &errs);
		cr_assert_fail("policy does not load");
	}
	sbx_policy_errors_free(&errs);
	return p;
}

static const char *at(int64_t secs)
{
	static char buf[4][SBX_RFC3339_LEN];
	static int i;

	i = (i + 1) % 4;
	sbx_format_rfc3339(secs, buf[i]);
	return buf[i];
}

static void apply(struct sbx_state *s, json_t *rec)
{
	char err[256];

	cr_assert_not_null(rec);
	cr_assert_eq(sbx_state_apply(s, rec, err, sizeof(err)), 0, "%s", err);
	json_decref(rec);
}

/* Grant id to user for role from t for dur seconds (created + activated). */
static void grant(struct sbx_state *s, uint32_t id, const char *user, const char *role,
		  int64_t t, int64_t dur)
{
	apply(s, json_pack("{s:i, s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:i, s:s}", "seq", id,
			   "time", at(t), "event", "request.created", "actor", user, "id", id,
			   "user", user, "role", role, "duration", (json_int_t)dur,
			   "approvals_needed", 0, "lapses_at", at(t + 86400)));
	apply(s, json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", "time", at(t), "event",
			   "grant.activated", "actor", "sbx", "id", id, "activated_at", at(t),
			   "expires_at", at(t + dur)));
}

struct built {
	uint8_t *buf;
	size_t len;
	struct sbx_tbl t;
};

static void build(const struct sbx_policy *p, const struct sbx_state *s, int64_t now,
		  struct built *out)
{
	char why[128];

	cr_assert_eq(sbx_grouptable_build(p, s, now, 9, &out->buf, &out->len), 0);
	cr_assert_eq(sbx_tbl_open(&out->t, out->buf, out->len, 1, why, sizeof(why)), 0, "%s", why);
}

/* The members of group name live at now, comma-separated. */
static void members(const struct built *b, const char *name, int64_t now, char *dst, size_t len)
{
	struct sbx_tbl_group g;
	size_t off = 0;

	dst[0] = '\0';
	cr_assert_eq(sbx_tbl_find_name(&b->t, name, &g), 1, "group %s", name);
	for (uint32_t j = 0; j < g.count; j++) {
		struct sbx_tbl_member m;

		cr_assert_eq(sbx_tbl_member_at(&b->t, &g, j, &m), 0);
		if (m.expires_at > now)
			off += (size_t)snprintf(dst + off, len - off, "%s%s", off ? "," : "", m.name);
	}
}

Test(grouptable, groups_members_and_expiry)
{
	struct sbx_policy *p = load_policy();
	struct sbx_state *s = sbx_state_new();
	struct built b;
	struct sbx_tbl_group g;
	struct sbx_tbl_member m;
	char list[256];

	grant(s, 1, "erin", "sandbox-admin", NOW - 600, 3600);  /* live until NOW+3000 */
	grant(s, 2, "dave", "sandbox-admin", NOW - 7200, 3600); /* ended an hour ago */
	grant(s, 3, "alice", "readonly", NOW - 60, 1800);       /* a role without a group */
	build(p, s, NOW, &b);

	cr_assert_eq(b.t.n_groups, 2, "one group per role with a unix_group");
	members(&b, "sbx-admin", NOW, list, sizeof(list));
	cr_assert_str_eq(list, "erin,olga,pete,zed", "standing (via group and by name) + grant");
	cr_assert_eq(sbx_tbl_find_name(&b.t, "sbx-admin", &g), 1);
	cr_assert_eq(g.gid, 60001);
	cr_assert_eq(sbx_tbl_member_at(&b.t, &g, 0, &m), 0);
	cr_assert_str_eq(m.name, "erin");
	cr_assert_eq(m.expires_at, NOW + 3000, "the grant's expires_at");
	cr_assert_eq(sbx_tbl_member_at(&b.t, &g, 3, &m), 0);
	cr_assert_str_eq(m.name, "zed");
	cr_assert_eq(m.expires_at, SBX_TBL_FOREVER, "standing members do not expire");
	cr_assert_eq(sbx_tbl_is_member(&b.t, &g, "dave", NOW), 0);
	/* The table alone ends erin's membership at her expiry. */
	members(&b, "sbx-admin", NOW + 3000, list, sizeof(list));
	cr_assert_str_eq(list, "olga,pete,zed");

	/* prod-data does not apply to sbx-01: its group exists, empty. */
	members(&b, "sbx-phi", NOW, list, sizeof(list));
	cr_assert_str_eq(list, "");
	cr_assert_eq(sbx_tbl_find_gid(&b.t, 60002, &g), 1);
	free(b.buf);
	sbx_state_free(s);
	sbx_policy_free(p);
}

Test(grouptable, ended_grants_leave_the_group)
{
	struct sbx_policy *p = load_policy();
	struct sbx_state *s = sbx_state_new();
	struct built b;
	char list[256];

	grant(s, 1, "erin", "sandbox-admin", NOW - 60, 3600);
	grant(s, 2, "dave", "sandbox-admin", NOW - 60, 3600);
	apply(s, json_pack("{s:s, s:s, s:s, s:i, s:s}", "time", at(NOW - 1), "event",
			   "grant.revoked", "actor", "frank", "id", 2, "reason", "done"));
	build(p, s, NOW, &b);
	members(&b, "sbx-admin", NOW, list, sizeof(list));
	cr_assert_str_eq(list, "erin,olga,pete,zed", "dave's grant was revoked");
	free(b.buf);
	sbx_state_free(s);
	sbx_policy_free(p);
}

/* The table is built from the open requests alone: a long history of
 * ended ones and pending ones around the live grants changes nothing. */
Test(grouptable, only_live_grants_among_much_history)
{
	struct sbx_policy *p = load_policy();
	struct sbx_state *s = sbx_state_new();
	struct sbx_tbl_group g;
	struct built b;
	char user[16];
	uint32_t id = 0, live = 0;

	for (unsigned i = 0; i < 3000; i++) {
		snprintf(user, sizeof(user), "h%04u", i);
		if (i % 4 == 3) {
			/* pending: never a member before its grant.activated */
			apply(s, json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:i, s:s}", "time",
					   at(NOW - 60), "event", "request.created", "actor", user,
					   "id", ++id, "user", user, "role", "sandbox-admin",
					   "duration", 3600, "approvals_needed", 1, "lapses_at",
					   at(NOW + 3600)));
			continue;
		}
		grant(s, ++id, user, "sandbox-admin", NOW - 600, i % 4 == 2 ? 60 : 3600);
		if (i % 4 == 1)
			apply(s, json_pack("{s:s, s:s, s:s, s:i}", "time", at(NOW - 10), "event",
					   "grant.revoked", "actor", "frank", "id", id));
		else if (i % 4 == 2)
			apply(s, json_pack("{s:s, s:s, s:s, s:i}", "time", at(NOW - 500), "event",
					   "grant.expired", "actor", "sbx", "id", id));
		else
			live++;
	}
	build(p, s, NOW, &b);
	cr_assert_eq(sbx_tbl_find_name(&b.t, "sbx-admin", &g), 1);
	cr_assert_eq(g.count, live + 3, "the live grants and olga, pete, zed");
	for (unsigned i = 0; i < 3000; i += 7) {
		snprintf(user, sizeof(user), "h%04u", i);
		cr_assert_eq(sbx_tbl_is_member(&b.t, &g, user, NOW), i % 4 == 0, "%s", user);
	}
	free(b.buf);
	sbx_state_free(s);
	sbx_policy_free(p);
}

Test(grouptable, standing_member_with_a_grant_stays_standing)
{
	struct sbx_policy *p = load_policy();
	struct sbx_state *s = sbx_state_new();
	struct built b;
	struct sbx_tbl_group g;
	struct sbx_tbl_member m;

	/* zed is standing; a grant of the same role must not shorten that. */
	grant(s, 1, "zed", "sandbox-admin", NOW - 60, 600);
	build(p, s, NOW, &b);
	cr_assert_eq(sbx_tbl_find_name(&b.t, "sbx-admin", &g), 1);
	cr_assert_eq(sbx_tbl_member_at(&b.t, &g, g.count - 1, &m), 0);
	cr_assert_str_eq(m.name, "zed");
	cr_assert_eq(m.expires_at, SBX_TBL_FOREVER);
	free(b.buf);
	sbx_state_free(s);
	sbx_policy_free(p);
}

Test(grouptable, path_beside_the_socket)
{
	char buf[64];

	cr_assert_eq(sbx_grouptable_path("/run/sbx/broker.sock", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/run/sbx/groups.table");
	cr_assert_eq(sbx_grouptable_path("/broker.sock", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/groups.table");
	cr_assert_eq(sbx_grouptable_path("relative.sock", buf, sizeof(buf)), -EINVAL);
	cr_assert_eq(sbx_grouptable_path("/a/very/long/directory/name/for/this/small/buffer/x.sock",
					 buf, 20), -ENAMETOOLONG);
}

Test(grouptable, write_replaces_atomically)
{
	char dir[] = "/tmp/sbx-gt-XXXXXX", path[160], sub[128], cmd[200];
	size_t len;
	uint8_t *buf = small_table(&len), back[4096];
	char err[256] = "";
	struct stat st;
	int fd;
	ssize_t r;

	cr_assert_not_null(mkdtemp(dir));
	/* The socket's directory need not exist yet. */
	snprintf(sub, sizeof(sub), "%s/run", dir);
	snprintf(path, sizeof(path), "%s/groups.table", sub);
	cr_assert_eq(sbx_grouptable_write(path, buf, len, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sbx_grouptable_write(path, buf, len, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0644, "readable by every user, mode %o", st.st_mode);
	cr_assert_eq((size_t)st.st_size, len);
	cr_assert_eq(stat(sub, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0755);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	r = read(fd, back, sizeof(back));
	close(fd);
	cr_assert_eq((size_t)r, len);
	cr_assert_eq(memcmp(back, buf, len), 0);
	/* No temp file is left behind. */
	snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 1", sub);
	cr_assert_eq(system(cmd), 0, "only groups.table in %s", sub);
	/* An unwritable place is an error with a message, not a crash. */
	cr_assert_eq(sbx_grouptable_write("/proc/sbx-no/groups.table", buf, len, err, sizeof(err)),
		     -1);
	cr_assert_neq(err[0], '\0');
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
	free(buf);
}
