#include "config.h"

#include "sbx_table.h"
#include "text.h"
#include "sbx_proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Header field offsets (docs/nss.md). */
enum {
	OFF_MAGIC = 0,
	OFF_VERSION = 8,
	OFF_HDR_LEN = 12,
	OFF_FILE_LEN = 16,
	OFF_GENERATION = 24,
	OFF_WRITTEN_AT = 32,
	OFF_N_GROUPS = 40,
	OFF_N_MEMBERS = 44,
	OFF_CHECKSUM = 48,
	OFF_STRINGS_OFF = 56,
	OFF_STRINGS_LEN = 60,
};

/* ---- little-endian access (no alignment assumed) ------------------------ */

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
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

/* ---- checksum --------------------------------------------------------------- */

#define CK_BASIS 0xcbf29ce484222325ull
#define CK_MULT 0x9e3779b97f4a7c15ull

static uint64_t rotl64(uint64_t v, unsigned r)
{
	return v << r | v >> (64 - r);
}

/* Word-at-a-time so that validating a large table once per process stays
 * cheap.  Rotation and an odd multiplier are both bijections, so a change
 * confined to one word always changes the result; this is a corruption
 * check, not a signature (file ownership is what makes a table trusted). */
uint64_t sbx_tbl_checksum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = CK_BASIS;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		uint64_t w = i == OFF_CHECKSUM ? 0 : get_le64(b + i);

		h = rotl64(h ^ w, 31) * CK_MULT;
	}
	if (i < n) {
		uint8_t tail[8] = { 0 };

		memcpy(tail, b + i, n - i);
		h = rotl64(h ^ get_le64(tail), 31) * CK_MULT;
	}
	h ^= (uint64_t)n;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

/* ---- reading --------------------------------------------------------------- */

/* A name at off/len inside the string pool, NUL right after it. */
static const char *pool_name(const struct sbx_tbl *t, uint32_t off, uint32_t len)
{
	const uint8_t *s;

	if (len == 0 || len > SBX_NAME_MAX || off >= t->strings_len ||
	    (uint64_t)off + len >= t->strings_len)
		return NULL;
	s = t->p + t->strings_off + off;
	if (s[len] != '\0')
		return NULL;
	return (const char *)s;
}

int sbx_tbl_group_at(const struct sbx_tbl *t, uint32_t i, struct sbx_tbl_group *g)
{
	const uint8_t *r;
	uint32_t name_off, name_len;

	if (i >= t->n_groups)
		return -EBADMSG;
	r = t->p + SBX_TBL_HDR_LEN + (size_t)i * SBX_TBL_GROUP_LEN;
	g->gid = get_le32(r);
	name_off = get_le32(r + 4);
	name_len = get_le32(r + 8);
	g->first = get_le32(r + 12);
	g->count = get_le32(r + 16);
	g->member_bytes = get_le32(r + 20);
	g->name = pool_name(t, name_off, name_len);
	g->name_len = name_len;
	if (!g->name || (uint64_t)g->first + g->count > t->n_members)
		return -EBADMSG;
	return 0;
}

int sbx_tbl_member_at(const struct sbx_tbl *t, const struct sbx_tbl_group *g, uint32_t j,
		      struct sbx_tbl_member *m)
{
	const uint8_t *r;
	uint64_t idx = (uint64_t)g->first + j;
	uint32_t name_off, name_len;

	if (j >= g->count || idx >= t->n_members)
		return -EBADMSG;
	r = t->p + SBX_TBL_HDR_LEN + (size_t)t->n_groups * SBX_TBL_GROUP_LEN +
	    (size_t)idx * SBX_TBL_MEMBER_LEN;
	name_off = get_le32(r);
	name_len = get_le32(r + 4);
	m->expires_at = (int64_t)get_le64(r + 8);
	m->name = pool_name(t, name_off, name_len);
	m->name_len = name_len;
	return m->name ? 0 : -EBADMSG;
}

static bool name_ok(const char *s, size_t len)
{
	return strnlen(s, len + 1) == len && sbx_name_valid(s);
}

/* Every record, name and order: what a reader relies on for the life of
 * a mapping. */
static int check_records(const struct sbx_tbl *t, char *why, size_t whylen)
{
	uint64_t covered = 0;

	for (uint32_t i = 0; i < t->n_groups; i++) {
		struct sbx_tbl_group g;
		uint64_t bytes = 0;
		const char *prev = NULL;

		if (sbx_tbl_group_at(t, i, &g) < 0)
			return sbx_whyf(why, whylen, -EBADMSG, "group %u points outside the table", i);
		if (!name_ok(g.name, g.name_len))
			return sbx_whyf(why, whylen, -EBADMSG, "group %u has an invalid name", i);
		if (g.first != covered)
			return sbx_whyf(why, whylen, -EBADMSG, "group %u: members are not contiguous", i);
		covered += g.count;
		for (uint32_t j = 0; j < g.count; j++) {
			struct sbx_tbl_member m;

			if (sbx_tbl_member_at(t, &g, j, &m) < 0)
				return sbx_whyf(why, whylen, -EBADMSG, "group %s: member %u points outside the table",
					   g.name, j);
			if (!name_ok(m.name, m.name_len))
				return sbx_whyf(why, whylen, -EBADMSG, "group %s: member %u has an invalid name",
					   g.name, j);
			if (prev && strcmp(prev, m.name) >= 0)
				return sbx_whyf(why, whylen, -EBADMSG, "group %s: members are not sorted", g.name);
			prev = m.name;
			bytes += m.name_len + 1;
		}
		if (bytes != g.member_bytes)
			return sbx_whyf(why, whylen, -EBADMSG, "group %s: member_bytes is wrong", g.name);
	}
	if (covered != t->n_members)
		return sbx_whyf(why, whylen, -EBADMSG, "member records not owned by any group");
	return 0;
}

int sbx_tbl_open(struct sbx_tbl *t, const void *p, size_t n, int full, char *why,
		 size_t whylen)
{
	const uint8_t *b = p;
	uint64_t file_len, expect_strings;

	memset(t, 0, sizeof(*t));
	if (!p || n < SBX_TBL_HDR_LEN)
		return sbx_whyf(why, whylen, -EBADMSG, "shorter than its header (%zu bytes)", n);
	if (memcmp(b + OFF_MAGIC, SBX_TBL_MAGIC, SBX_TBL_MAGIC_LEN) != 0)
		return sbx_whyf(why, whylen, -EBADMSG, "not an sbx group table (bad magic)");
	if (get_le32(b + OFF_VERSION) != SBX_TBL_VERSION)
		return sbx_whyf(why, whylen, -EBADMSG, "version %u, want %u", get_le32(b + OFF_VERSION),
			   SBX_TBL_VERSION);
	if (get_le32(b + OFF_HDR_LEN) != SBX_TBL_HDR_LEN)
		return sbx_whyf(why, whylen, -EBADMSG, "header length %u, want %u", get_le32(b + OFF_HDR_LEN),
			   SBX_TBL_HDR_LEN);
	file_len = get_le64(b + OFF_FILE_LEN);
	if (file_len != n || n > SBX_TBL_MAX_SIZE)
		return sbx_whyf(why, whylen, -EBADMSG, "says %llu bytes, has %zu", (unsigned long long)file_len, n);
	t->p = b;
	t->n = n;
	t->generation = get_le64(b + OFF_GENERATION);
	t->written_at = (int64_t)get_le64(b + OFF_WRITTEN_AT);
	t->n_groups = get_le32(b + OFF_N_GROUPS);
	t->n_members = get_le32(b + OFF_N_MEMBERS);
	t->strings_off = get_le32(b + OFF_STRINGS_OFF);
	t->strings_len = get_le32(b + OFF_STRINGS_LEN);
	expect_strings = SBX_TBL_HDR_LEN + (uint64_t)t->n_groups * SBX_TBL_GROUP_LEN +
			 (uint64_t)t->n_members * SBX_TBL_MEMBER_LEN;
	if (t->n_groups > SBX_TBL_MAX_GROUPS || t->strings_off != expect_strings ||
	    (uint64_t)t->strings_off + t->strings_len != n) {
		memset(t, 0, sizeof(*t));
		return sbx_whyf(why, whylen, -EBADMSG, "record counts do not match the file's size");
	}
	if (!full)
		return 0;
	if (sbx_tbl_checksum(b, n) != get_le64(b + OFF_CHECKSUM)) {
		memset(t, 0, sizeof(*t));
		return sbx_whyf(why, whylen, -EBADMSG, "checksum mismatch");
	}
	if (check_records(t, why, whylen) < 0) {
		memset(t, 0, sizeof(*t));
		return -EBADMSG;
	}
	return 0;
}

int sbx_tbl_find_name(const struct sbx_tbl *t, const char *name, struct sbx_tbl_group *g)
{
	size_t len = strlen(name);

	for (uint32_t i = 0; i < t->n_groups; i++) {
		if (sbx_tbl_group_at(t, i, g) < 0)
			return -EBADMSG;
		if (g->name_len == len && memcmp(g->name, name, len) == 0)
			return 1;
	}
	return 0;
}

int sbx_tbl_find_gid(const struct sbx_tbl *t, uint32_t gid, struct sbx_tbl_group *g)
{
	for (uint32_t i = 0; i < t->n_groups; i++) {
		if (sbx_tbl_group_at(t, i, g) < 0)
			return -EBADMSG;
		if (g->gid == gid)
			return 1;
	}
	return 0;
}

int sbx_tbl_is_member(const struct sbx_tbl *t, const struct sbx_tbl_group *g, const char *user,
		      int64_t now)
{
	uint32_t lo = 0, hi = g->count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		struct sbx_tbl_member m;
		int c;

		if (sbx_tbl_member_at(t, g, mid, &m) < 0)
			return -EBADMSG;
		c = strcmp(user, m.name);
		if (c == 0)
			return m.expires_at > now;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return 0;
}

static const uint8_t *member_rec(const struct sbx_tbl *t, uint32_t idx)
{
	return t->p + SBX_TBL_HDR_LEN + (size_t)t->n_groups * SBX_TBL_GROUP_LEN +
	       (size_t)idx * SBX_TBL_MEMBER_LEN;
}

int sbx_tbl_count_live(const struct sbx_tbl *t, const struct sbx_tbl_group *g, int64_t now,
		       size_t *count, size_t *bytes)
{
	const uint8_t *r;
	size_t n = 0, b = 0;

	if ((uint64_t)g->first + g->count > t->n_members)
		return -EBADMSG;
	r = member_rec(t, g->first);
	for (uint32_t j = 0; j < g->count; j++, r += SBX_TBL_MEMBER_LEN) {
		if ((int64_t)get_le64(r + 8) > now) {
			n++;
			b += (size_t)get_le32(r + 4) + 1;
		}
	}
	*count = n;
	*bytes = b;
	return 0;
}

/* Every member live and every name inside one block of the pool: copy the
 * block once and point into the copy.  Returns the count, or -1 to say
 * "take the slow path". */
static long copy_block(const struct sbx_tbl *t, const struct sbx_tbl_group *g, int64_t now,
		       char **mem, char *dst)
{
	const uint8_t *r = member_rec(t, g->first), *pool = t->p + t->strings_off;
	uint32_t base = get_le32(r), span = g->member_bytes;

	if (base >= t->strings_len || (uint64_t)base + span > t->strings_len)
		return -1;
	memcpy(dst, pool + base, span);
	for (uint32_t j = 0; j < g->count; j++, r += SBX_TBL_MEMBER_LEN) {
		uint32_t off = get_le32(r), len = get_le32(r + 4);

		if ((int64_t)get_le64(r + 8) <= now || off < base || len == 0 ||
		    (uint64_t)off - base + len >= span || dst[off - base + len] != '\0')
			return -1;
		mem[j] = dst + (off - base);
	}
	return g->count;
}

long sbx_tbl_copy_live(const struct sbx_tbl *t, const struct sbx_tbl_group *g, int64_t now,
		       char **mem, size_t max, char *dst, size_t room)
{
	size_t k = 0, used = 0;
	long n;

	if ((uint64_t)g->first + g->count > t->n_members)
		return -EBADMSG;
	if (g->count > 0 && g->count <= max && g->member_bytes <= room) {
		n = copy_block(t, g, now, mem, dst);
		if (n >= 0) {
			mem[n] = NULL;
			return n;
		}
	}
	for (uint32_t j = 0; j < g->count; j++) {
		struct sbx_tbl_member m;

		if (sbx_tbl_member_at(t, g, j, &m) < 0)
			return -EBADMSG;
		if (m.expires_at <= now)
			continue;
		if (k >= max || room - used < m.name_len + 1)
			return -ERANGE;
		memcpy(dst + used, m.name, m.name_len + 1);
		mem[k++] = dst + used;
		used += m.name_len + 1;
	}
	mem[k] = NULL;
	return (long)k;
}

/* ---- writing --------------------------------------------------------------- */

struct bmember {
	char *name;
	int64_t expires_at;
};

struct bgroup {
	char *name;
	uint32_t gid;
	struct bmember *m;
	size_t n, cap;
};

struct sbx_tbl_builder {
	struct bgroup *g;
	size_t n, cap;
};

struct sbx_tbl_builder *sbx_tbl_builder_new(void)
{
	return calloc(1, sizeof(struct sbx_tbl_builder));
}

void sbx_tbl_builder_free(struct sbx_tbl_builder *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++) {
		for (size_t j = 0; j < b->g[i].n; j++)
			free(b->g[i].m[j].name);
		free(b->g[i].m);
		free(b->g[i].name);
	}
	free(b->g);
	free(b);
}

static int grow(void **v, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 8;
	void *nv;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	nv = realloc(*v, ncap * elem);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = ncap;
	return 0;
}

int sbx_tbl_add_group(struct sbx_tbl_builder *b, const char *name, uint32_t gid)
{
	struct bgroup *g;

	if (!sbx_name_valid(name) || b->n >= SBX_TBL_MAX_GROUPS)
		return -EINVAL;
	if (grow((void **)&b->g, &b->cap, b->n + 1, sizeof(*b->g)) < 0)
		return -ENOMEM;
	g = &b->g[b->n];
	memset(g, 0, sizeof(*g));
	g->name = strdup(name);
	if (!g->name)
		return -ENOMEM;
	g->gid = gid;
	return (int)b->n++;
}

int sbx_tbl_add_member(struct sbx_tbl_builder *b, int gi, const char *user, int64_t expires_at)
{
	struct bgroup *g;
	char *copy;

	if (gi < 0 || (size_t)gi >= b->n || !sbx_name_valid(user))
		return -EINVAL;
	g = &b->g[gi];
	if (grow((void **)&g->m, &g->cap, g->n + 1, sizeof(*g->m)) < 0)
		return -ENOMEM;
	copy = strdup(user);
	if (!copy)
		return -ENOMEM;
	g->m[g->n].name = copy;
	g->m[g->n].expires_at = expires_at;
	g->n++;
	return 0;
}

static int cmp_member(const void *a, const void *b)
{
	return strcmp(((const struct bmember *)a)->name, ((const struct bmember *)b)->name);
}

/* Sort by name; a user added twice keeps one entry with the later expiry. */
static void sort_members(struct bgroup *g)
{
	size_t out = 0;

	if (g->n > 1)
		qsort(g->m, g->n, sizeof(*g->m), cmp_member);
	for (size_t i = 0; i < g->n; i++) {
		if (out > 0 && strcmp(g->m[out - 1].name, g->m[i].name) == 0) {
			if (g->m[i].expires_at > g->m[out - 1].expires_at)
				g->m[out - 1].expires_at = g->m[i].expires_at;
			free(g->m[i].name);
			continue;
		}
		g->m[out++] = g->m[i];
	}
	g->n = out;
}

/* Append a name and its NUL to the pool; its offset in *off. */
static void pool_put(uint8_t *pool, size_t *used, const char *s, uint32_t *off, uint32_t *len)
{
	size_t n = strlen(s);

	memcpy(pool + *used, s, n + 1);
	*off = (uint32_t)*used;
	*len = (uint32_t)n;
	*used += n + 1;
}

int sbx_tbl_finish(struct sbx_tbl_builder *b, uint64_t generation, int64_t written_at,
		   uint8_t **out, size_t *len)
{
	uint64_t n_members = 0, strings = 0, total;
	uint8_t *buf, *grec, *mrec, *pool;
	size_t used = 0;
	uint32_t first = 0;

	for (size_t i = 0; i < b->n; i++) {
		sort_members(&b->g[i]);
		n_members += b->g[i].n;
		strings += strlen(b->g[i].name) + 1;
		for (size_t j = 0; j < b->g[i].n; j++)
			strings += strlen(b->g[i].m[j].name) + 1;
	}
	total = SBX_TBL_HDR_LEN + b->n * (uint64_t)SBX_TBL_GROUP_LEN +
		n_members * SBX_TBL_MEMBER_LEN + strings;
	if (total > SBX_TBL_MAX_SIZE)
		return -EFBIG;
	buf = calloc(1, (size_t)total);
	if (!buf)
		return -ENOMEM;
	grec = buf + SBX_TBL_HDR_LEN;
	mrec = grec + b->n * SBX_TBL_GROUP_LEN;
	pool = mrec + n_members * SBX_TBL_MEMBER_LEN;
	for (size_t i = 0; i < b->n; i++, grec += SBX_TBL_GROUP_LEN) {
		const struct bgroup *g = &b->g[i];
		uint32_t off, nlen, bytes = 0;

		pool_put(pool, &used, g->name, &off, &nlen);
		put_le32(grec, g->gid);
		put_le32(grec + 4, off);
		put_le32(grec + 8, nlen);
		put_le32(grec + 12, first);
		put_le32(grec + 16, (uint32_t)g->n);
		for (size_t j = 0; j < g->n; j++, mrec += SBX_TBL_MEMBER_LEN) {
			pool_put(pool, &used, g->m[j].name, &off, &nlen);
			put_le32(mrec, off);
			put_le32(mrec + 4, nlen);
			put_le64(mrec + 8, (uint64_t)g->m[j].expires_at);
			bytes += nlen + 1;
		}
		put_le32(grec + 20, bytes);
		first += (uint32_t)g->n;
	}
	memcpy(buf + OFF_MAGIC, SBX_TBL_MAGIC, SBX_TBL_MAGIC_LEN);
	put_le32(buf + OFF_VERSION, SBX_TBL_VERSION);
	put_le32(buf + OFF_HDR_LEN, SBX_TBL_HDR_LEN);
	put_le64(buf + OFF_FILE_LEN, total);
	put_le64(buf + OFF_GENERATION, generation);
	put_le64(buf + OFF_WRITTEN_AT, (uint64_t)written_at);
	put_le32(buf + OFF_N_GROUPS, (uint32_t)b->n);
	put_le32(buf + OFF_N_MEMBERS, (uint32_t)n_members);
	put_le32(buf + OFF_STRINGS_OFF, (uint32_t)(pool - buf));
	put_le32(buf + OFF_STRINGS_LEN, (uint32_t)strings);
	put_le64(buf + OFF_CHECKSUM, sbx_tbl_checksum(buf, (size_t)total));
	*out = buf;
	*len = (size_t)total;
	return 0;
}
