/*
 * The grant table (common/sbx_table.c) as libnss_sbx maps it: any bytes
 * through sbx_tbl_open, header-only (what the module trusts between
 * checks) and full, and every accessor on whatever opened, with small
 * buffers; no accessor may read outside the bytes.  A table that opens
 * fully answers consistently (a group found by name or gid is that
 * group; a member found by is_member was listed).  With flag byte bit 1
 * the checksum is fixed first, so mutations reach the record checks.
 *
 * Then the writer: names derived from the input become groups and members
 * through the sbx_tbl_builder_* API; the finished table must open fully
 * and every member added must be found, live until its expiry.
 */
#include "fuzz.h"

#include "sbx_proto.h"
#include "sbx_table.h"
#include "text.h"

#include <errno.h>

#define NOW 1795000000LL
#define MAX_GROUPS_WALKED 64u
#define MAX_MEMBERS_WALKED 256u

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void walk(const struct sbx_tbl *t, int full)
{
	char *mem[5], dst[48];

	for (uint32_t i = 0; i < t->n_groups && i < MAX_GROUPS_WALKED; i++) {
		struct sbx_tbl_group g, h;
		size_t count = 0, bytes = 0;
		long copied;
		int rc;

		if (sbx_tbl_group_at(t, i, &g) < 0) {
			FUZZ_CHECK(!full, "group %u unreadable in a fully checked table", i);
			continue;
		}
		/* Unchecked, a name may hold a NUL (it then reads shorter):
		 * harmless; only a checked table promises clean names. */
		FUZZ_CHECK(!full || strlen(g.name) == g.name_len, "group name length");
		rc = sbx_tbl_find_name(t, g.name, &h);
		FUZZ_CHECK(rc != 0 || !full, "group %s not found by its name", g.name);
		if (rc == 1)
			FUZZ_CHECK(strcmp(h.name, g.name) == 0, "find_name %s gave %s", g.name, h.name);
		rc = sbx_tbl_find_gid(t, g.gid, &h);
		FUZZ_CHECK(rc != 0, "group %s not found by its gid", g.name);
		if (rc == 1)
			FUZZ_CHECK(h.gid == g.gid, "find_gid");
		for (uint32_t j = 0; j < g.count && j < MAX_MEMBERS_WALKED; j++) {
			struct sbx_tbl_member m;

			if (sbx_tbl_member_at(t, &g, j, &m) < 0) {
				FUZZ_CHECK(!full, "member %u of %s unreadable", j, g.name);
				continue;
			}
			FUZZ_CHECK(!full || strlen(m.name) == m.name_len, "member name length");
			rc = sbx_tbl_is_member(t, &g, m.name, NOW);
			if (full)
				FUZZ_CHECK(rc == (m.expires_at > NOW), "is_member(%s, %s) = %d", g.name,
					   m.name, rc);
		}
		if (sbx_tbl_count_live(t, &g, NOW, &count, &bytes) == 0)
			FUZZ_CHECK(count <= g.count, "more live members than members");
		/* Small buffers: the module's ERANGE path (glibc retries with
		 * a bigger one). */
		for (size_t room = 0; room <= sizeof(dst); room += 12) {
			for (size_t max = 0; max < 5; max += 2) {
				copied = sbx_tbl_copy_live(t, &g, NOW, mem, max, dst, room);
				FUZZ_CHECK(copied == -ERANGE || copied == -EBADMSG ||
					   (copied >= 0 && (size_t)copied <= max && !mem[copied]),
					   "copy_live gave %ld with %zu slots", copied, max);
				for (long k = 0; k < copied; k++)
					FUZZ_CHECK(mem[k] >= dst && mem[k] < dst + room &&
						   strnlen(mem[k], (size_t)(dst + room - mem[k])) <
						   (size_t)(dst + room - mem[k]), "copied name outside dst");
				if (full && copied >= 0)
					FUZZ_CHECK((size_t)copied == count, "copied %ld of %zu live", copied,
						   count);
			}
		}
		sbx_tbl_is_member(t, &g, "alice", NOW);
	}
	sbx_tbl_find_name(t, "sbx-admin", &(struct sbx_tbl_group){ 0 });
	sbx_tbl_find_gid(t, 60001, &(struct sbx_tbl_group){ 0 });
}

static void check_bytes(const uint8_t *p, size_t n)
{
	struct sbx_tbl t;
	char why[256];

	if (sbx_tbl_open(&t, p, n, 0, why, sizeof(why)) == 0)
		walk(&t, 0);
	if (sbx_tbl_open(&t, p, n, 1, why, sizeof(why)) == 0)
		walk(&t, 1);
	else
		FUZZ_CHECK(why[0] != '\0', "refused without a reason");
}

/* Names from the input: runs of name characters; each starts a group when
 * it begins with 'g' (or no group exists yet), else is a member of the
 * last group, live or expired by its length. */
static void round_trip(const uint8_t *data, size_t size)
{
	struct sbx_tbl_builder *b = sbx_tbl_builder_new();
	struct { int gi; char name[SBX_NAME_MAX + 1]; int64_t exp; } added[64];
	size_t n_added = 0, i = 0;
	int gi = -1, groups = 0;
	uint8_t *out = NULL;
	size_t len = 0;
	struct sbx_tbl t;
	char why[256];

	FUZZ_CHECK(b != NULL, "out of memory");
	while (i < size && n_added < 64) {
		char name[SBX_NAME_MAX + 2];
		size_t k = 0;

		while (i < size && k <= SBX_NAME_MAX && data[i] > ' ' && data[i] < 0x7f)
			name[k++] = (char)data[i++];
		while (i < size && !(data[i] > ' ' && data[i] < 0x7f))
			i++;
		name[k] = '\0';
		if (!k)
			continue;
		if (name[0] == 'g' || gi < 0) {
			int rc = sbx_tbl_add_group(b, name, (uint32_t)(60000 + groups));

			FUZZ_CHECK(rc >= 0 || !sbx_name_valid(name), "add_group(%s) = %d", name, rc);
			if (rc >= 0) {
				gi = rc;
				groups++;
			}
			continue;
		}
		if (sbx_tbl_add_member(b, gi, name, k % 2 ? SBX_TBL_FOREVER : NOW - 1) == 0) {
			FUZZ_CHECK(sbx_name_valid(name), "add_member took %s", name);
			added[n_added].gi = gi;
			memcpy(added[n_added].name, name, k + 1);
			added[n_added].exp = k % 2 ? SBX_TBL_FOREVER : NOW - 1;
			n_added++;
		}
	}
	FUZZ_CHECK(sbx_tbl_finish(b, 7, NOW, &out, &len) == 0, "finish");
	FUZZ_CHECK(sbx_tbl_open(&t, out, len, 1, why, sizeof(why)) == 0, "our own table: %s", why);
	FUZZ_CHECK(t.n_groups == (uint32_t)groups, "%u groups, added %d", t.n_groups, groups);
	for (size_t a = 0; a < n_added; a++) {
		struct sbx_tbl_group g;
		int live = 0;

		FUZZ_CHECK(sbx_tbl_group_at(&t, (uint32_t)added[a].gi, &g) == 0, "group_at");
		/* A name added twice keeps the later expiry: live if any was. */
		for (size_t c = 0; c < n_added; c++)
			if (added[c].gi == added[a].gi && strcmp(added[c].name, added[a].name) == 0)
				live |= added[c].exp > NOW;
		FUZZ_CHECK(sbx_tbl_is_member(&t, &g, added[a].name, NOW) == live,
			   "%s in %s: want %d", added[a].name, g.name, live);
		FUZZ_CHECK(sbx_tbl_is_member(&t, &g, added[a].name, NOW - 10) == 1,
			   "%s not in %s before it expired", added[a].name, g.name);
	}
	walk(&t, 1);
	free(out);
	sbx_tbl_builder_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	if (size < 1)
		return 0;
	copy = malloc(size - 1 ? size - 1 : 1);
	FUZZ_CHECK(copy != NULL, "out of memory");
	memcpy(copy, data + 1, size - 1);
	if ((data[0] & 1) && size - 1 >= SBX_TBL_HDR_LEN)
		put_le64(copy + 48, sbx_tbl_checksum(copy, size - 1));
	check_bytes(copy, size - 1);
	free(copy);
	round_trip(data + 1, size - 1);
	return 0;
}
