/*
 * Sealing (journal/seal.h): key evolution and the MAC against OpenSSL
 * computed here from the documented formulas, the key files, and the
 * checker on real journals written through the journal API and then
 * tampered with: every case names its first bad seq and why.  One test
 * flips every bit of a small sealed journal.
 */
#include "config.h"

#include "journal.h"
#include "seal.h"
#include "timeutil.h"
#include "verify.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

static char tmpdir[256];
static char sdir[300];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/sbx-stest-XXXXXX", base && *base ? base : "/tmp");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(sdir, sizeof(sdir), "%s/state", tmpdir);
	cr_assert_eq(mkdir(sdir, 0700), 0);
}

static void teardown(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(seal, .init = setup, .fini = teardown, .timeout = 300);

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* ------------------------------------------------------------ keys and MAC */

Test(seal, evolve_is_the_documented_hmac)
{
	uint8_t k0[32], k[32], want[32], msg[15 + 8];
	unsigned int len = 32;

	for (int i = 0; i < 32; i++)
		k0[i] = (uint8_t)i;
	/* K(1) = HMAC-SHA-256(K(0), "sbx-seal-evolve" || 0 as 8 bytes BE) */
	memcpy(msg, "sbx-seal-evolve", 15);
	memset(msg + 15, 0, 8);
	HMAC(EVP_sha256(), k0, 32, msg, sizeof(msg), want, &len);
	memcpy(k, k0, 32);
	sbx_seal_evolve(k, 0);
	cr_assert_arr_eq(k, want, 32);
	/* K(2) uses i = 1 */
	msg[22] = 1;
	HMAC(EVP_sha256(), want, 32, msg, sizeof(msg), want, &len);
	sbx_seal_evolve(k, 1);
	cr_assert_arr_eq(k, want, 32);
}

Test(seal, derive_is_repeated_evolution_and_every_key_differs)
{
	uint8_t k0[32] = { 7 }, k[32], d[32], seen[16][32];

	memcpy(k, k0, 32);
	for (uint64_t e = 0; e < 16; e++) {
		sbx_seal_derive(k0, e, d);
		cr_assert_arr_eq(d, k, 32, "derive(%" PRIu64 ") is not evolve applied that often", e);
		for (uint64_t o = 0; o < e; o++)
			cr_assert(memcmp(seen[o], k, 32) != 0, "K(%" PRIu64 ") == K(%" PRIu64 ")", o, e);
		memcpy(seen[e], k, 32);
		sbx_seal_evolve(k, e);
	}
}

Test(seal, mac_is_the_documented_hmac_and_covers_every_field)
{
	uint8_t key[32] = { 1, 2, 3 }, out[32];
	struct sbx_seal_fields f = { .key_id = "0123456789abcdef", .epoch = 4, .first_seq = 10,
				     .last_seq = 12, .from = "2026-12-06T00:00:00.000000Z",
				     .until = "2026-12-06T00:01:00.000000Z",
				     .head = "ab00000000000000000000000000000000000000000000000000000000000000",
				     .why = "timer" };
	const char *msg = "sbx-seal-v1\nkey_id=0123456789abcdef\nepoch=4\nfirst_seq=10\n"
			  "last_seq=12\nfrom=2026-12-06T00:00:00.000000Z\n"
			  "until=2026-12-06T00:01:00.000000Z\n"
			  "head=ab00000000000000000000000000000000000000000000000000000000000000\n"
			  "why=timer\n";
	char mac[65], want[65], other[65];
	unsigned int len = 32;

	HMAC(EVP_sha256(), key, 32, (const uint8_t *)msg, strlen(msg), out, &len);
	hex(out, 32, want);
	cr_assert_eq(sbx_seal_mac(key, &f, mac), 0);
	cr_assert_str_eq(mac, want);
	f.epoch = 5;
	sbx_seal_mac(key, &f, other);
	cr_assert_str_neq(other, mac, "the epoch is not covered");
	f.epoch = 4;
	f.last_seq = 13;
	sbx_seal_mac(key, &f, other);
	cr_assert_str_neq(other, mac, "last_seq is not covered");
	f.last_seq = 12;
	f.head = "ac00000000000000000000000000000000000000000000000000000000000000";
	sbx_seal_mac(key, &f, other);
	cr_assert_str_neq(other, mac, "the head is not covered");
	f.head = NULL;
	cr_assert_eq(sbx_seal_mac(key, &f, other), -1, "a missing field is refused");
}

Test(seal, key_files_round_trip_and_are_private)
{
	struct sbx_seal_vkey vk, back;
	struct sbx_seal_state st, rd;
	char path[400], text[256], why[512];
	struct stat sb;
	FILE *f;

	cr_assert_eq(sbx_seal_vkey_new(&vk, why, sizeof(why)), 0);
	sbx_seal_vkey_format(&vk, text, sizeof(text));
	snprintf(path, sizeof(path), "%s/vk", tmpdir);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	chmod(path, 0600);
	cr_assert_eq(sbx_seal_vkey_read(path, &back, why, sizeof(why)), 0, "%s", why);
	cr_assert_arr_eq(back.k0, vk.k0, 32);
	cr_assert_str_eq(back.key_id, vk.key_id);
	cr_assert_str_eq(back.created, vk.created);
	chmod(path, 0644);
	cr_assert_eq(sbx_seal_vkey_read(path, &back, why, sizeof(why)), -EINVAL);
	cr_assert(strstr(why, "chmod 600"), "%s", why);

	sbx_seal_state_init(&st, &vk);
	cr_assert_eq(sbx_seal_state_read(sdir, &rd, why, sizeof(why)), -ENOENT);
	cr_assert_eq(sbx_seal_state_write(sdir, &st, why, sizeof(why)), 0, "%s", why);
	snprintf(path, sizeof(path), "%s/seal.key", sdir);
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600);
	sbx_seal_state_advance(&st, "2026-12-06T00:00:01.000000Z", 5);
	cr_assert_eq(sbx_seal_state_write(sdir, &st, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(sbx_seal_state_read(sdir, &rd, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(rd.epoch, 1);
	cr_assert_eq(rd.first_seq, 5);
	cr_assert_str_eq(rd.from, "2026-12-06T00:00:01.000000Z");
	cr_assert_arr_eq(rd.key, st.key, 32);
	/* The old key is gone from the file: it now holds K(1), not K(0). */
	cr_assert(memcmp(rd.key, vk.k0, 32) != 0);
}

/* ------------------------------------------------------------ journals */

static struct sbx_seal_vkey VK;
static struct sbx_seal_state ST;
static struct sbx_journal *J;

static void jopen(size_t segment_max)
{
	struct sbx_journal_opts o = { .state_dir = sdir, .segment_max = segment_max };
	struct sbx_replay_info info;
	char err[512];

	cr_assert_eq(sbx_journal_open(&o, NULL, NULL, NULL, &info, &J, err, sizeof(err)), 0,
		     "%s", err);
}

static void jrec(const char *what)
{
	json_t *f = json_pack("{s:s}", "what", what);
	uint64_t seq;

	cr_assert_eq(sbx_journal_append(J, "test.event", "tester", f, &seq, NULL), 0);
	json_decref(f);
}

static void jseal(const char *why)
{
	char until[SBX_RFC3339_LEN], err[512];
	uint64_t seq;

	cr_assert_eq(sbx_seal_append(J, &ST, "sbx", why, &seq, until, err, sizeof(err)), 0,
		     "%s", err);
	sbx_seal_state_advance(&ST, until, seq + 1);
	cr_assert_eq(sbx_seal_state_write(sdir, &ST, err, sizeof(err)), 0, "%s", err);
}

/* A journal of epochs: n[i] records then the seal of epoch i (0 records:
 * an empty epoch), then tail unsealed records.  Returns the last seq. */
static uint64_t build(const int *n, int epochs, int tail, size_t segment_max)
{
	char why[256];
	uint64_t last;
	int k = 0;

	cr_assert_eq(sbx_seal_vkey_new(&VK, why, sizeof(why)), 0);
	sbx_seal_state_init(&ST, &VK);
	cr_assert_eq(sbx_seal_state_write(sdir, &ST, why, sizeof(why)), 0);
	jopen(segment_max);
	for (int e = 0; e < epochs; e++) {
		for (int i = 0; i < n[e]; i++) {
			char w[32];

			snprintf(w, sizeof(w), "record %d", k++);
			jrec(w);
		}
		jseal("timer");
	}
	for (int i = 0; i < tail; i++)
		jrec("unsealed");
	cr_assert_eq(sbx_journal_flush(J), 0);
	last = sbx_journal_last_seq(J);
	sbx_journal_close(J);
	J = NULL;
	return last;
}

struct verdict {
	int rc;
	uint64_t bad;
	char err[1024];
	struct sbx_seal_summary sum;
};

static struct verdict verify(bool no_host_key)
{
	struct verdict v = { 0 };

	v.rc = sbx_seal_verify_dir(sdir, &VK, no_host_key, &v.sum, &v.bad, v.err, sizeof(v.err));
	return v;
}

#define assert_fails(v, seq, text)                                                         \
	do {                                                                               \
		cr_assert_eq((v).rc, -1, "verify passed: it should fail at seq %d (%s)",   \
			     (int)(seq), text);                                            \
		cr_assert_eq((v).bad, (uint64_t)(seq), "bad seq %" PRIu64 ", not %d: %s", \
			     (v).bad, (int)(seq), (v).err);                                \
		cr_assert(strstr((v).err, text), "expected \"%s\" in: %s", text, (v).err); \
	} while (0)

/* ---- the journal as lines, to tamper with ---- */

#define MAXL 256
static char *L[MAXL];
static int NL;
static char SEG[400];

static void load(void)
{
	char line[65536];
	FILE *f;

	snprintf(SEG, sizeof(SEG), "%s/journal/000000000001.jsonl", sdir);
	f = fopen(SEG, "r");
	cr_assert_not_null(f);
	NL = 0;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		cr_assert_lt(NL, MAXL);
		L[NL++] = strdup(line);
	}
	fclose(f);
}

static void store(void)
{
	FILE *f = fopen(SEG, "w");

	for (int i = 0; i < NL; i++) {
		fprintf(f, "%s\n", L[i]);
		free(L[i]);
	}
	fclose(f);
	NL = 0;
}

/* Replace the first occurrence of a in line i by b. */
static void edit(int i, const char *a, const char *b)
{
	char *p = strstr(L[i], a), *n;

	cr_assert_not_null(p, "no \"%s\" in line %d", a, i);
	n = malloc(strlen(L[i]) - strlen(a) + strlen(b) + 1);
	sprintf(n, "%.*s%s%s", (int)(p - L[i]), L[i], b, p + strlen(a));
	free(L[i]);
	L[i] = n;
}

static void del(int i)
{
	free(L[i]);
	memmove(&L[i], &L[i + 1], (size_t)(NL - i - 1) * sizeof(L[0]));
	NL--;
}

static void dup_at(int i)
{
	memmove(&L[i + 1], &L[i], (size_t)(NL - i) * sizeof(L[0]));
	L[i] = strdup(L[i + 1]);
	NL++;
}

static void swap(int a, int b)
{
	char *t = L[a];

	L[a] = L[b];
	L[b] = t;
}

static const char *field(const char *line, const char *key, char *buf, size_t len)
{
	json_t *r = json_loads(line, 0, NULL);
	json_t *v = json_object_get(r, key);

	if (json_is_integer(v))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else
		snprintf(buf, len, "%s", json_string_value(v) ? json_string_value(v) : "");
	json_decref(r);
	return buf;
}

/* What root without the key does after an edit: renumber from 1 and
 * recompute every prev and hash.  With stolen (not NULL), also re-make
 * the head and MAC of every seal from line resealed_from on with that key. */
static void rehash(const uint8_t *stolen, int reseal_from)
{
	char prev[65] = SBX_RECORD_GENESIS;

	for (int i = 0; i < NL; i++) {
		char *s = L[i], *tail = strstr(s, ",\"prev\":\""), num[32], body[65536], h[65];
		char *rest = strchr(s, ',');
		uint8_t d[32];

		cr_assert_not_null(tail);
		snprintf(num, sizeof(num), "%d", i + 1);
		snprintf(body, sizeof(body), "{\"seq\":%s%.*s", num, (int)(tail - rest), rest);
		if (stolen && i >= reseal_from && strstr(body, "\"event\":\"journal.sealed\"")) {
			char b[8][80], mac[65], *p;
			struct sbx_seal_fields f = { .key_id = field(s, "key_id", b[0], 80),
						     .from = field(s, "from", b[1], 80),
						     .until = field(s, "time", b[2], 80),
						     .head = prev, .why = field(s, "why", b[3], 80) };

			f.epoch = strtoull(field(s, "epoch", b[4], 80), NULL, 10);
			f.first_seq = strtoull(field(s, "first_seq", b[5], 80), NULL, 10);
			f.last_seq = strtoull(field(s, "last_seq", b[6], 80), NULL, 10);
			cr_assert_eq(sbx_seal_mac(stolen, &f, mac), 0);
			p = strstr(body, "\"head\":\"") + 8;
			memcpy(p, prev, 64);
			p = strstr(body, "\"mac\":\"") + 7;
			memcpy(p, mac, 64);
		}
		snprintf(body + strlen(body), sizeof(body) - strlen(body), ",\"prev\":\"%s\"}", prev);
		SHA256((const uint8_t *)body, strlen(body), d);
		hex(d, 32, h);
		body[strlen(body) - 1] = '\0';
		free(L[i]);
		cr_assert_geq(asprintf(&L[i], "%s,\"hash\":\"%s\"}", body, h), 0);
		memcpy(prev, h, 65);
	}
}

/* Line index (0-based) of the seal of epoch e. */
static int seal_line(int e)
{
	char want[64];

	snprintf(want, sizeof(want), "\"event\":\"journal.sealed\"");
	for (int i = 0, k = 0; i < NL; i++)
		if (strstr(L[i], want) && k++ == e)
			return i;
	cr_assert_fail("no seal for epoch %d", e);
	return -1;
}

/* Three epochs of 3 records, an empty one, one of 2: seqs
 * 1-3 seal 4 | 5-7 seal 8 | 9-11 seal 12 | seal 13 (empty) | 14-15 seal 16 */
static const int SHAPE[] = { 3, 3, 3, 0, 2 };

Test(seal, an_intact_sealed_journal_passes_with_an_empty_epoch)
{
	uint64_t last = build(SHAPE, 5, 0, 0);
	struct verdict v = verify(false);

	cr_assert_eq(last, 16);
	cr_assert_eq(v.rc, 0, "%s", v.err);
	cr_assert_eq(v.sum.seals, 5);
	cr_assert_eq(v.sum.last_epoch, 4);
	cr_assert_eq(v.sum.sealed_through, 16);
	cr_assert_eq(v.sum.unsealed, 0);
	cr_assert(v.sum.host_checked);
	load();
	/* The empty epoch: first_seq is one past last_seq. */
	cr_assert(strstr(L[12], "\"first_seq\":13,\"last_seq\":12"), "%s", L[12]);
	store();
}

Test(seal, a_changed_byte_names_its_record)
{
	build(SHAPE, 5, 0, 0);
	load();
	edit(5, "record 4", "record X");
	store();
	assert_fails(verify(false), 6, "hash mismatch");
}

Test(seal, a_rewritten_and_rehashed_chain_fails_with_the_key)
{
	build(SHAPE, 5, 0, 0);
	load();
	edit(5, "record 4", "record X"); /* seq 6, in epoch 1 (seqs 5-7) */
	rehash(NULL, 0);
	store();
	/* The chain alone cannot tell. */
	{
		uint64_t n, bad;
		char err[512];

		cr_assert_eq(sbx_journal_verify(sdir, &n, &bad, err, sizeof(err)), 0, "%s", err);
	}
	assert_fails(verify(false), 5, "rewritten");
}

Test(seal, a_rehashed_seal_that_vouches_for_the_new_head_fails_on_its_mac)
{
	build(SHAPE, 5, 0, 0);
	load();
	edit(9, "record 7", "record X"); /* seq 10, epoch 2 (seqs 9-11) */
	/* re-make the heads but not the MACs: a forger without any key */
	{
		static const uint8_t zero[32];

		rehash(zero, seal_line(2));
	}
	store();
	assert_fails(verify(false), 9, "wrong MAC");
}

Test(seal, a_deleted_record_fails)
{
	build(SHAPE, 5, 0, 0);
	load();
	del(5);
	store();
	assert_fails(verify(false), 6, "");
	load();
	rehash(NULL, 0);
	store();
	assert_fails(verify(false), 5, "inserted, deleted or moved");
}

Test(seal, an_inserted_record_fails)
{
	build(SHAPE, 5, 0, 0);
	load();
	dup_at(9);
	edit(9, "record 7", "record N");
	rehash(NULL, 0);
	store();
	assert_fails(verify(false), 9, "inserted, deleted or moved");
}

Test(seal, a_duplicated_record_fails)
{
	build(SHAPE, 5, 0, 0);
	load();
	dup_at(1);
	rehash(NULL, 0);
	store();
	assert_fails(verify(false), 1, "inserted, deleted or moved");
}

Test(seal, reordered_records_fail)
{
	build(SHAPE, 5, 0, 0);
	load();
	swap(4, 6); /* seqs 5 and 7, both epoch 1 */
	store();
	assert_fails(verify(false), 5, "");
	load();
	rehash(NULL, 0);
	store();
	assert_fails(verify(false), 5, "rewritten");
}

Test(seal, a_missing_seal_fails)
{
	build(SHAPE, 5, 0, 0);
	load();
	del(seal_line(1)); /* epoch 1's seal, seq 8 */
	rehash(NULL, 0);
	store();
	assert_fails(verify(false), 5, "the seal of epoch 1 is missing");
}

Test(seal, a_duplicated_seal_fails)
{
	build(SHAPE, 5, 0, 0);
	load();
	dup_at(seal_line(1));
	rehash(NULL, 0);
	store();
	assert_fails(verify(false), 9, "a second seal for epoch 1");
}

Test(seal, a_record_forged_with_the_current_key_in_an_earlier_epoch_fails)
{
	build(SHAPE, 5, 0, 0);
	/* The thief has what is on the host now: K(5). */
	load();
	edit(9, "record 7", "record X"); /* seq 10, epoch 2 */
	rehash(ST.key, seal_line(2));
	store();
	assert_fails(verify(false), 9, "made with the key of epoch 5, a later one");
}

Test(seal, a_seal_made_with_a_later_epochs_key_fails)
{
	uint8_t k3[32];

	build(SHAPE, 5, 0, 0);
	sbx_seal_derive(VK.k0, 3, k3);
	load();
	edit(1, "record 1", "record Y"); /* seq 2, epoch 0 */
	rehash(k3, seal_line(0));
	store();
	assert_fails(verify(false), 1, "made with the key of epoch 3");
}

Test(seal, truncation_before_the_last_seal_fails)
{
	build(SHAPE, 5, 0, 0);
	load();
	del(NL - 1); /* the last seal (seq 16); the chain stays whole */
	store();
	assert_fails(verify(false), 14, "the journal was cut");
	/* Cut deeper, whole epochs with their seals. */
	load();
	while (NL > 8)
		del(NL - 1);
	store();
	assert_fails(verify(false), 9, "the journal was cut");
}

Test(seal, a_host_key_file_rolled_back_or_forged_fails)
{
	struct sbx_seal_state old;
	char why[256];

	build(SHAPE, 5, 0, 0);
	sbx_seal_state_init(&old, &VK); /* epoch 0's key file */
	cr_assert_eq(sbx_seal_state_write(sdir, &old, why, sizeof(why)), 0);
	assert_fails(verify(false), 17, "old copy");
	ST.key[0] ^= 1;
	cr_assert_eq(sbx_seal_state_write(sdir, &ST, why, sizeof(why)), 0);
	assert_fails(verify(false), 17, "does not hold the key");
}

Test(seal, a_missing_segment_fails)
{
	const int shape[] = { 6, 6, 6 };
	char path[400];

	/* Tiny segments: every record its own file. */
	build(shape, 3, 0, 1);
	snprintf(path, sizeof(path), "%s/journal/000000000010.jsonl", sdir);
	cr_assert_eq(unlink(path), 0);
	assert_fails(verify(false), 10, "");
}

Test(seal, a_crash_tail_is_unsealed_not_tampered_and_the_next_start_seals_it)
{
	struct verdict v;
	char err[256];

	build(SHAPE, 5, 3, 0);
	v = verify(false);
	cr_assert_eq(v.rc, 0, "%s", v.err);
	cr_assert_eq(v.sum.unsealed, 3);
	cr_assert_eq(v.sum.sealed_through, 16);
	/* The next start seals what the crash left (broker/sealing.c). */
	cr_assert_eq(sbx_seal_state_read(sdir, &ST, err, sizeof(err)), 0, "%s", err);
	jopen(0);
	jseal("startup");
	sbx_journal_close(J);
	J = NULL;
	v = verify(false);
	cr_assert_eq(v.rc, 0, "%s", v.err);
	cr_assert_eq(v.sum.unsealed, 0);
	cr_assert_eq(v.sum.seals, 6);
}

Test(seal, without_the_host_key_file_the_end_is_not_checked_and_says_so)
{
	char path[400];
	struct verdict v;

	build(SHAPE, 5, 0, 0);
	snprintf(path, sizeof(path), "%s/seal.key", sdir);
	cr_assert_eq(unlink(path), 0);
	v = verify(false);
	assert_fails(v, 17, "--no-host-key");
	v = verify(true);
	cr_assert_eq(v.rc, 0, "%s", v.err);
	cr_assert_not(v.sum.host_checked);
}

Test(seal, a_back_dated_record_fails)
{
	build(SHAPE, 5, 0, 0);
	load();
	/* seq 10 (epoch 2) claims a time before epoch 2 began */
	{
		char t[64];

		field(L[9], "time", t, sizeof(t));
		edit(9, t, "2000-01-01T00:00:00.000000Z");
	}
	rehash(NULL, 0);
	store();
	/* The time check comes at the record, before its epoch's seal. */
	assert_fails(verify(false), 10, "back-dated");
}

/* A thief with the current key appends a record given an old time and
 * the fields of a fleet's copy: such copies keep the fleet's time, so
 * verify counts it as not checked for back-dating; for a host known never
 * to have been in a fleet (--standalone) it fails as back-dated. */
Test(seal, a_back_dated_record_claiming_a_fleet_copy_fails_standalone)
{
	struct sbx_verify_opts o = { .state_dir = sdir, .vk = &VK, .standalone = true };
	struct sbx_verify_result r;
	struct verdict v;
	char t[64], err[512];
	int last;

	build(SHAPE, 5, 0, 0);
	load();
	last = NL;
	L[NL++] = strdup(L[9]);
	field(L[last], "time", t, sizeof(t));
	edit(last, t, "2000-01-01T00:00:00.000000Z");
	edit(last, ",\"event\":", ",\"fleet_seq\":1,\"fleet_hash\":\"\",\"event\":");
	rehash(NULL, 0);
	store();
	v = verify(false);
	cr_assert_eq(v.rc, 0, "without --standalone it is exempt: %s", v.err);
	cr_assert_eq(v.sum.fleet_exempt, 1, "and counted as not checked");
	cr_assert_eq(v.sum.fleet_first, (uint64_t)last + 1);
	memset(&r, 0, sizeof(r));
	cr_assert_eq(sbx_journal_audit(&o, &r, err, sizeof(err)), -1, "--standalone passed it");
	cr_assert_eq(r.bad_seq, (uint64_t)last + 1, "bad seq %" PRIu64 ": %s", r.bad_seq, err);
	cr_assert(strstr(err, "back-dated"), "%s", err);
}

/* Every bit of a small sealed journal, one at a time: verify --key must
 * catch each. */
/* The suite's timeout covers it: criterion 2.4.1 leaks a test's own
 * .timeout that overrides its suite's (LeakSanitizer reports it). */
Test(seal, every_bit_flip_is_caught)
{
	const int shape[] = { 2, 0, 1 };
	char *orig = NULL;
	size_t len = 0;
	FILE *f;

	build(shape, 3, 0, 0);
	snprintf(SEG, sizeof(SEG), "%s/journal/000000000001.jsonl", sdir);
	f = fopen(SEG, "r");
	cr_assert_not_null(f);
	orig = malloc(1 << 16);
	len = fread(orig, 1, 1 << 16, f);
	fclose(f);
	cr_assert_gt(len, 500);
	cr_assert_eq(verify(false).rc, 0);
	for (size_t i = 0; i < len; i++) {
		for (int b = 0; b < 8; b++) {
			struct verdict v;

			orig[i] ^= (char)(1 << b);
			f = fopen(SEG, "w");
			fwrite(orig, 1, len, f);
			fclose(f);
			v = verify(false);
			orig[i] ^= (char)(1 << b);
			cr_assert_eq(v.rc, -1, "flipping bit %d of byte %zu went unnoticed", b, i);
			cr_assert_gt(v.bad, 0);
		}
	}
	free(orig);
}

/* ------------------------------------------------------------ checkpoints */

static struct sbx_verify_result audit(bool key, const struct sbx_checkpoint *cps, size_t n,
				      int *rc, char *err, size_t errlen)
{
	struct sbx_verify_opts o = { .state_dir = sdir, .vk = key ? &VK : NULL, .cps = cps,
				     .ncps = n };
	struct sbx_verify_result r;

	*rc = sbx_journal_audit(&o, &r, err, errlen);
	return r;
}

/* The seq and hash of line i (0-based) of the loaded segment. */
static struct sbx_checkpoint cp_of(int i)
{
	struct sbx_checkpoint cp = { .seq = (uint64_t)i + 1 };
	const char *h = L[i] + strlen(L[i]) - 66;

	memcpy(cp.hash, h, 64);
	cp.hash[64] = '\0';
	return cp;
}

Test(seal, checkpoints_prove_the_journal_up_to_them_and_name_the_first_that_fails)
{
	struct sbx_checkpoint cps[3];
	struct sbx_verify_result r;
	char err[1024];
	int rc;

	build(SHAPE, 5, 0, 0);
	load();
	cps[0] = cp_of(seal_line(1));  /* seq 8 */
	cps[1] = cp_of(seal_line(3));  /* seq 13 */
	for (int i = 0; i < NL; i++)
		free(L[i]);
	NL = 0;
	r = audit(true, cps, 2, &rc, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(r.checkpoints_ok, 2);
	r = audit(false, cps, 2, &rc, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(r.checkpoints_ok, 2);

	/* A wrong hash is named, with its index and seq. */
	cps[2] = cps[1];
	cps[2].hash[0] = cps[2].hash[0] == 'a' ? 'b' : 'a';
	r = audit(false, cps, 3, &rc, err, sizeof(err));
	cr_assert_eq(rc, -1);
	cr_assert_eq(r.bad_seq, 13, "%s", err);
	cr_assert_eq(r.bad_checkpoint, 3);
	cr_assert(strstr(err, "checkpoint 3 (13:") && strstr(err, "rewritten"), "%s", err);

	/* Rewritten up to a checkpoint and re-hashed: the chain passes, the
	 * checkpoint does not (without the key too). */
	load();
	edit(5, "record 4", "record X"); /* seq 6 */
	rehash(NULL, 0);
	store();
	r = audit(false, cps, 2, &rc, err, sizeof(err));
	cr_assert_eq(rc, -1, "a rewrite before checkpoint 8 passed");
	cr_assert_eq(r.bad_seq, 8, "%s", err);
	cr_assert(strstr(err, "checkpoint 1 (8:"), "%s", err);

	/* Cut before a checkpoint: named too. */
	load();
	for (int i = 12; i < NL; i++)
		free(L[i]);
	NL = 12;
	store();
	r = audit(false, &cps[1], 1, &rc, err, sizeof(err));
	cr_assert_eq(rc, -1);
	cr_assert_eq(r.bad_seq, 13, "%s", err);
	cr_assert(strstr(err, "checkpoint 1 (13:") && strstr(err, "cut"), "%s", err);
}

Test(seal, a_checkpoint_file_takes_seq_hash_lines_and_collector_json_lines)
{
	struct sbx_checkpoint *cps = NULL, cp;
	char path[400], why[512];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cps", tmpdir);
	f = fopen(path, "w");
	fprintf(f, "# kept by the collector\n\n12:%064d\n"
		"{\"seq\":40,\"hash\":\"%064d\",\"epoch\":3,\"host\":\"sbx-01\"}\n", 0, 1);
	fclose(f);
	cr_assert_eq(sbx_checkpoint_read_file(path, &cps, &n, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(n, 2);
	cr_assert_eq(cps[0].seq, 12);
	cr_assert_eq(cps[1].seq, 40);
	cr_assert_eq(cps[1].hash[63], '1');
	free(cps);
	cps = NULL;
	n = 0;
	f = fopen(path, "w");
	fprintf(f, "12:%064d\n12:XYZ\n", 0);
	fclose(f);
	cr_assert_eq(sbx_checkpoint_read_file(path, &cps, &n, why, sizeof(why)), -1);
	cr_assert(strstr(why, "/cps:2: "), "%s", why);
	free(cps);
	/* Many, after some given one by one (a year of seals in one file). */
	cps = NULL;
	n = 0;
	cp.seq = 1;
	memset(cp.hash, 'a', 64);
	cp.hash[64] = '\0';
	for (int i = 0; i < 3; i++)
		cr_assert_eq(sbx_checkpoint_add(&cps, &n, &cp), 0);
	f = fopen(path, "w");
	for (int i = 1; i <= 5000; i++)
		fprintf(f, "%d:%064d\n", i, i);
	fclose(f);
	cr_assert_eq(sbx_checkpoint_read_file(path, &cps, &n, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(n, 5003);
	cr_assert_eq(cps[5002].seq, 5000);
	cr_assert_eq(cps[2].hash[0], 'a');
	free(cps);
	cr_assert_eq(sbx_checkpoint_parse("0:abc", &cp, why, sizeof(why)), -1);
	cr_assert_eq(sbx_checkpoint_parse("7:ABCDEF", &cp, why, sizeof(why)), -1);
}

/* ------------------------------------------------------------ retention */

static int snap_state(struct sbx_snapshot_out *out, void *ctx)
{
	json_t *e = json_pack("{s:i}", "state", 1);
	int rc = sbx_snapshot_put(out, e);

	(void)ctx;
	json_decref(e);
	return rc;
}

/* Six epochs of 3 records in small segments, a snapshot after the last
 * seal, two more records; then the pruning the broker does: plan,
 * journal.pruned, a seal, the files removed.  Returns the plan and the
 * pruned record's seq. */
static struct sbx_prune_plan build_pruned(uint64_t *pruned_seq)
{
	struct sbx_prune_plan plan;
	char why[512];
	json_t *f;

	cr_assert_eq(sbx_seal_vkey_new(&VK, why, sizeof(why)), 0);
	sbx_seal_state_init(&ST, &VK);
	cr_assert_eq(sbx_seal_state_write(sdir, &ST, why, sizeof(why)), 0);
	jopen(700);
	for (int e = 0; e < 6; e++) {
		for (int i = 0; i < 3; i++)
			jrec("an old record");
		jseal("timer");
	}
	cr_assert_eq(sbx_journal_maybe_snapshot(J, snap_state, NULL, true), 0);
	jrec("after the snapshot");
	jrec("after the snapshot");
	cr_assert_eq(sbx_journal_prune_plan(J, sbx_now_us() + 1000000, &plan, why, sizeof(why)), 1,
		     "%s", why);
	cr_assert_gt(plan.nfiles, 1);
	cr_assert_eq(plan.first_seq, 1);
	f = sbx_prune_fields(&plan, sbx_now_us());
	cr_assert_eq(sbx_journal_append(J, SBX_PRUNED_EVENT, "sbx", f, pruned_seq, NULL), 0);
	json_decref(f);
	jseal("retention");
	cr_assert_eq(sbx_journal_prune_apply(J, &plan, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(sbx_journal_flush(J), 0);
	sbx_journal_close(J);
	J = NULL;
	return plan;
}

static bool seg_exists(const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/journal/%s", sdir, name);
	return access(path, F_OK) == 0;
}

Test(seal, a_pruned_journal_verifies_from_its_anchor_with_and_without_the_key)
{
	uint64_t pruned;
	struct sbx_prune_plan plan = build_pruned(&pruned);
	struct sbx_verify_result r;
	struct sbx_checkpoint cp = { .seq = plan.last_seq };
	char err[1024];
	int rc;

	for (size_t i = 0; i < plan.nfiles; i++)
		cr_assert_not(seg_exists(plan.files[i]), "%s is still there", plan.files[i]);
	r = audit(false, NULL, 0, &rc, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(r.anchor_seq, pruned);
	cr_assert_eq(r.first_seq, plan.last_seq + 1);
	r = audit(true, NULL, 0, &rc, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(r.anchor_seq, pruned);
	cr_assert_geq(r.seal.seals, 2);
	cr_assert_eq(r.seal.sealed_through, r.last_seq);
	cr_assert(r.seal.host_checked);
	/* The anchor is a checkpoint too; one before it cannot be checked. */
	memcpy(cp.hash, plan.last_hash, sizeof(cp.hash));
	r = audit(true, &cp, 1, &rc, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(r.checkpoints_ok, 1);
	cp.seq = 1;
	r = audit(true, &cp, 1, &rc, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(r.checkpoints_pruned, 1);
}

/* The broker recorded and sealed a pruning, then stopped after removing
 * only the first of its files: the journal now starts inside the pruned
 * range.  That is no broken journal: verify anchors at the record. */
Test(seal, a_pruning_interrupted_between_two_removals_still_verifies)
{
	struct sbx_prune_plan plan;
	struct sbx_verify_result r;
	char why[512], err[1024], path[512];
	uint64_t pruned;
	json_t *f;
	int rc;

	cr_assert_eq(sbx_seal_vkey_new(&VK, why, sizeof(why)), 0);
	sbx_seal_state_init(&ST, &VK);
	cr_assert_eq(sbx_seal_state_write(sdir, &ST, why, sizeof(why)), 0);
	jopen(700);
	for (int e = 0; e < 6; e++) {
		for (int i = 0; i < 3; i++)
			jrec("an old record");
		jseal("timer");
	}
	cr_assert_eq(sbx_journal_maybe_snapshot(J, snap_state, NULL, true), 0);
	jrec("after the snapshot");
	cr_assert_eq(sbx_journal_prune_plan(J, sbx_now_us() + 1000000, &plan, why, sizeof(why)), 1,
		     "%s", why);
	cr_assert_gt(plan.nfiles, 1);
	f = sbx_prune_fields(&plan, sbx_now_us());
	cr_assert_eq(sbx_journal_append(J, SBX_PRUNED_EVENT, "sbx", f, &pruned, NULL), 0);
	json_decref(f);
	jseal("retention");
	cr_assert_eq(sbx_journal_flush(J), 0);
	sbx_journal_close(J);
	J = NULL;
	/* Only the first file went. */
	snprintf(path, sizeof(path), "%s/journal/%s", sdir, plan.files[0]);
	cr_assert_eq(unlink(path), 0);
	cr_assert(seg_exists(plan.files[1]));
	r = audit(false, NULL, 0, &rc, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(r.anchor_seq, pruned);
	cr_assert_gt(r.first_seq, 1);
	r = audit(true, NULL, 0, &rc, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(r.anchor_seq, pruned);
}

Test(seal, a_start_up_after_pruning_begins_at_the_snapshots_seal)
{
	struct sbx_journal_opts o = { .state_dir = sdir };
	struct sbx_replay_info info;
	struct sbx_journal *j = NULL;
	uint64_t pruned;
	char err[1024], path[400];

	build_pruned(&pruned);
	cr_assert_eq(sbx_journal_open(&o, NULL, NULL, NULL, &info, &j, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert(info.used_snapshot, "%s", info.snapshot_note);
	cr_assert_gt(info.checked_from, 1);
	cr_assert_eq(info.last_seq, pruned + 1);
	sbx_journal_close(j);
	/* Without a snapshot nothing can rebuild the pruned state: a clear
	 * refusal, not a replay of half a history. */
	snprintf(path, sizeof(path), "%s/snapshot.json", sdir);
	cr_assert_eq(unlink(path), 0);
	j = NULL;
	cr_assert_eq(sbx_journal_open(&o, NULL, NULL, NULL, &info, &j, err, sizeof(err)), -1);
	cr_assert(strstr(err, "were pruned") && strstr(err, "no usable snapshot"), "%s", err);
}

/* Every segment's lines, in order, for rewriting across files. */
static int seg_names(char names[][64], int max)
{
	char path[400];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/journal", sdir);
	d = opendir(path);
	while (d && (de = readdir(d)) && n < max)
		if (strstr(de->d_name, ".jsonl"))
			snprintf(names[n++], 64, "%.63s", de->d_name);
	closedir(d);
	qsort(names, (size_t)n, 64, (int (*)(const void *, const void *))strcmp);
	return n;
}

/* Recompute prev and hash of every record from seq on, in every segment:
 * what root without the key can do. */
static void rehash_files(uint64_t from)
{
	char names[64][64], prev[65] = "", path[512], line[65536];
	int n = seg_names(names, 64);

	for (int k = 0; k < n; k++) {
		char *out = NULL;
		size_t outlen = 0;
		FILE *o = open_memstream(&out, &outlen), *f;

		snprintf(path, sizeof(path), "%s/journal/%.63s", sdir, names[k]);
		f = fopen(path, "r");
		while (fgets(line, sizeof(line), f)) {
			size_t len = strcspn(line, "\n");
			uint64_t seq = strtoull(line + 7, NULL, 10);
			char body[65536], h[65];
			uint8_t d[32];

			line[len] = '\0';
			if (seq >= from) {
				snprintf(body, sizeof(body), "%.*s,\"prev\":\"%s\"}", (int)(len - 149),
					 line, prev);
				SHA256((const uint8_t *)body, strlen(body), d);
				hex(d, 32, h);
				body[strlen(body) - 1] = '\0';
				fprintf(o, "%s,\"hash\":\"%s\"}\n", body, h);
				memcpy(prev, h, 65);
			} else {
				fprintf(o, "%s\n", line);
				memcpy(prev, line + len - 66, 64);
				prev[64] = '\0';
			}
		}
		fclose(f);
		fclose(o);
		f = fopen(path, "w");
		fwrite(out, 1, outlen, f);
		fclose(f);
		free(out);
	}
}

Test(seal, a_forged_pruning_anchor_passes_the_chain_and_fails_with_the_key)
{
	char names[64][64], path[512], line[65536], *data = NULL, lasthash[65], *p;
	uint64_t pruned, lastseq = 0;
	struct sbx_verify_result r;
	size_t len = 0;
	char err[1024];
	FILE *f;
	int rc;

	build_pruned(&pruned);
	/* One more segment goes without a record: a gap, even without the key. */
	cr_assert_geq(seg_names(names, 64), 2);
	snprintf(path, sizeof(path), "%s/journal/%.63s", sdir, names[0]);
	f = fopen(path, "r");
	while (fgets(line, sizeof(line), f)) {
		lastseq = strtoull(line + 7, NULL, 10);
		memcpy(lasthash, line + strcspn(line, "\n") - 66, 64);
		lasthash[64] = '\0';
	}
	fclose(f);
	cr_assert_eq(unlink(path), 0);
	r = audit(false, NULL, 0, &rc, err, sizeof(err));
	cr_assert_eq(rc, -1, "a segment removed without a record passed");
	cr_assert_eq(r.bad_seq, 1, "%s", err);
	cr_assert(strstr(err, "no journal.pruned record names"), "%s", err);

	/* Now the pruned record is rewritten to cover it, and the chain
	 * re-hashed from there: the chain passes, the seals do not. */
	seg_names(names, 64);
	for (int k = 0; k < 64 && names[k][0]; k++) {
		snprintf(path, sizeof(path), "%s/journal/%.63s", sdir, names[k]);
		free(data);
		data = NULL;
		f = fopen(path, "r");
		len = 0;
		{
			char buf[65536];
			size_t m;
			FILE *o = open_memstream(&data, &len);

			while ((m = fread(buf, 1, sizeof(buf), f)) > 0)
				fwrite(buf, 1, m, o);
			fclose(o);
		}
		fclose(f);
		if ((p = strstr(data, "\"event\":\"journal.pruned\"")))
			break;
	}
	cr_assert_not_null(p);
	p = strstr(p, "\"last_seq\":") + 11;
	{
		char num[32], *q = p;
		size_t oldlen;

		while (*q >= '0' && *q <= '9')
			q++;
		oldlen = (size_t)(q - p);
		snprintf(num, sizeof(num), "%" PRIu64, lastseq);
		cr_assert_eq(strlen(num), oldlen, "keep the line's length for the test");
		memcpy(p, num, oldlen);
	}
	p = strstr(p, "\"last_hash\":\"") + 13;
	memcpy(p, lasthash, 64);
	f = fopen(path, "w");
	fwrite(data, 1, len, f);
	fclose(f);
	free(data);
	rehash_files(pruned);
	r = audit(false, NULL, 0, &rc, err, sizeof(err));
	cr_assert_eq(rc, 0, "the re-hashed chain should pass without the key: %s", err);
	cr_assert_eq(r.anchor_seq, pruned);
	r = audit(true, NULL, 0, &rc, err, sizeof(err));
	cr_assert_eq(rc, -1, "a forged anchor passed with the key");
	cr_assert(strstr(err, "rewritten"), "%s", err);
}
