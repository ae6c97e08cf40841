/*
 * The seal checker (seal.h): walks a journal's records in order and
 * proves that every record is covered by the seal of its own epoch, made
 * with that epoch's key.  The chain itself is checked before (journal
 * scan); what the chain cannot show (a journal rewritten and re-hashed, a
 * cut end) is what this adds.  docs/audit.md, "Verifying the seals", is
 * the algorithm in prose.
 */
#include "config.h"

#include "seal.h"

#include "journal.h"
#include "verify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

struct sbx_seal_check {
	struct sbx_seal_vkey vk;
	uint8_t key[SBX_SEAL_KEY_LEN]; /* K(next_epoch) */
	uint64_t next_epoch;           /* the epoch the next seal must be for */
	uint64_t expect_first;         /* the first record that seal must cover */
	char from[SBX_RFC3339_LEN];    /* when that epoch began */
	uint64_t last_seq;
	struct sbx_seal_summary sum;
	/* A pruned journal (docs/audit.md, "Retention"): it starts at
	 * last_seq + 1 inside some epoch; the first seal of this key says
	 * which, and its MAC proves it.  Until then the earliest time seen
	 * waits for that epoch's start. */
	bool adopt;
	char min_time[SBX_RFC3339_LEN + 8];
	uint64_t min_time_seq;
	bool standalone;               /* no record is a fleet's copy */
};

struct sbx_seal_check *sbx_seal_check_new(const struct sbx_seal_vkey *vk)
{
	struct sbx_seal_check *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->vk = *vk;
	memcpy(c->key, vk->k0, sizeof(c->key));
	c->expect_first = 1;
	memcpy(c->from, vk->created, sizeof(c->from));
	return c;
}

void sbx_seal_check_standalone(struct sbx_seal_check *c)
{
	c->standalone = true;
}

void sbx_seal_check_free(struct sbx_seal_check *c)
{
	if (!c)
		return;
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

static const char *str(const json_t *rec, const char *key)
{
	return json_string_value(json_object_get(rec, key));
}

static bool uint_of(const json_t *rec, const char *key, uint64_t *out)
{
	const json_t *v = json_object_get(rec, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

static int fail(uint64_t *bad_seq, uint64_t seq, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int fail(uint64_t *bad_seq, uint64_t seq, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	*bad_seq = seq;
	n = snprintf(err, errlen, "seq %" PRIu64 ": ", seq);
	if (n < 0 || (size_t)n >= errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Compare in constant time: a MAC check must not say how much matched. */
static bool mac_equal(const char *a, const char *b)
{
	return strlen(a) == 64 && strlen(b) == 64 && CRYPTO_memcmp(a, b, 64) == 0;
}

/* Which later epoch's key made this MAC, if any: a seal forged with a key
 * stolen after its epoch. */
static bool made_with_later_key(const struct sbx_seal_check *c, struct sbx_seal_fields *f,
				const char *mac, uint64_t *which)
{
	uint8_t k[SBX_SEAL_KEY_LEN];
	char m[65];
	bool found = false;

	memcpy(k, c->key, sizeof(k));
	for (uint64_t e = f->epoch; e < f->epoch + SBX_SEAL_LATER_KEYS && !found; e++) {
		sbx_seal_evolve(k, e);
		if (sbx_seal_mac(k, f, m) == 0 && mac_equal(m, mac)) {
			*which = e + 1;
			found = true;
		}
	}
	OPENSSL_cleanse(k, sizeof(k));
	return found;
}

static int check_time_text(struct sbx_seal_check *c, const char *t, size_t tlen, bool fleet,
			   uint64_t seq, uint64_t *bad_seq, char *err, size_t errlen);

/* The first seal of this key after a pruned start: take its epoch, first
 * record and start as the checker's own (its MAC, checked next, proves
 * them), once the records before it are within that epoch. */
static int adopt_epoch(struct sbx_seal_check *c, const struct sbx_seal_fields *f, uint64_t seq,
		       uint64_t *bad_seq, char *err, size_t errlen)
{
	uint64_t start = c->expect_first;

	/* Every epoch ends in a seal record, so epoch e's seal is at least
	 * record e + 1: a larger number is forged (and deriving its key
	 * would take that many steps). */
	if (f->epoch >= seq)
		return fail(bad_seq, start, err, errlen, "the first seal after the pruned start "
			    "(at seq %" PRIu64 ") says epoch %" PRIu64 ", more epochs than records "
			    "before it: forged", seq, f->epoch);
	if (f->first_seq > start || f->last_seq + 1 != seq)
		return fail(bad_seq, start, err, errlen, "the first seal after the pruned start "
			    "(epoch %" PRIu64 " at seq %" PRIu64 ") covers seqs %" PRIu64 "..%" PRIu64
			    ", but the journal starts at seq %" PRIu64 ": records from seq %" PRIu64
			    " on are not covered by their own epoch's seal", f->epoch, seq,
			    f->first_seq, f->last_seq, start, start);
	c->adopt = false;
	c->next_epoch = f->epoch;
	sbx_seal_derive(c->vk.k0, f->epoch, c->key);
	c->expect_first = f->first_seq;
	snprintf(c->from, sizeof(c->from), "%s", f->from);
	if (c->min_time_seq && f->epoch > 0 && strcmp(c->min_time, c->from) < 0)
		return fail(bad_seq, c->min_time_seq, err, errlen, "its time %s is before its epoch %"
			    PRIu64 " began (%s): back-dated (written later with a stolen key) or the "
			    "clock was stepped back", c->min_time, f->epoch, c->from);
	return 0;
}

static int check_seal(struct sbx_seal_check *c, const json_t *rec, uint64_t seq,
		      uint64_t *bad_seq, char *err, size_t errlen)
{
	struct sbx_seal_fields f = { .key_id = str(rec, "key_id"), .from = str(rec, "from"),
				     .until = str(rec, "time"), .head = str(rec, "head"),
				     .why = str(rec, "why") };
	const char *mac = str(rec, "mac"), *prev = str(rec, "prev");
	uint64_t first = c->expect_first, later;
	char want[65];

	if (!uint_of(rec, "epoch", &f.epoch) || !uint_of(rec, "first_seq", &f.first_seq) ||
	    !uint_of(rec, "last_seq", &f.last_seq) || !f.from || !f.until || !f.head || !f.why ||
	    !mac || !prev)
		return fail(bad_seq, seq, err, errlen, "a seal lacks one of epoch, first_seq, "
			    "last_seq, from, head, why, mac");
	if (c->adopt) {
		if (adopt_epoch(c, &f, seq, bad_seq, err, errlen) < 0)
			return -1;
		first = c->expect_first;
	}
	if (f.epoch > c->next_epoch)
		return fail(bad_seq, first, err, errlen, "the seal of epoch %" PRIu64 " is missing "
			    "(the next seal, at seq %" PRIu64 ", is for epoch %" PRIu64 "): records "
			    "from seq %" PRIu64 " on are not covered by their own epoch's seal",
			    c->next_epoch, seq, f.epoch, first);
	if (f.epoch < c->next_epoch)
		return fail(bad_seq, seq, err, errlen, "a second seal for epoch %" PRIu64
			    " (a duplicated or replayed seal)", f.epoch);
	if (f.first_seq != first || f.last_seq + 1 != seq)
		return fail(bad_seq, first, err, errlen, "the seal of epoch %" PRIu64 " at seq %"
			    PRIu64 " covers seqs %" PRIu64 "..%" PRIu64 ", but its epoch holds seqs %"
			    PRIu64 "..%" PRIu64 ": records were inserted, deleted or moved",
			    f.epoch, seq, f.first_seq, f.last_seq, first, seq - 1);
	if (strcmp(f.from, c->from) != 0)
		return fail(bad_seq, seq, err, errlen, "the seal of epoch %" PRIu64 " says the epoch "
			    "began at %s, but the one before ended at %s", f.epoch, f.from, c->from);
	if (strcmp(f.head, prev) != 0)
		return fail(bad_seq, first, err, errlen, "the seal of epoch %" PRIu64 " at seq %"
			    PRIu64 " vouches for chain head %.12s..., but record %" PRIu64 " hashes "
			    "to %.12s...: records %" PRIu64 "..%" PRIu64 " were rewritten",
			    f.epoch, seq, f.head, seq - 1, prev, first, seq - 1);
	if (sbx_seal_mac(c->key, &f, want) < 0)
		return fail(bad_seq, seq, err, errlen, "a seal field is too long");
	if (!mac_equal(want, mac)) {
		if (made_with_later_key(c, &f, mac, &later))
			return fail(bad_seq, first, err, errlen, "the seal of epoch %" PRIu64
				    " at seq %" PRIu64 " was made with the key of epoch %" PRIu64
				    ", a later one: records %" PRIu64 "..%" PRIu64 " were forged "
				    "with a key stolen after their epoch", f.epoch, seq, later, first,
				    seq - 1);
		return fail(bad_seq, first, err, errlen, "the seal of epoch %" PRIu64 " at seq %"
			    PRIu64 " has a wrong MAC: records %" PRIu64 "..%" PRIu64 " or the seal "
			    "were changed and re-hashed", f.epoch, seq, first, seq - 1);
	}
	c->sum.seals++;
	c->sum.last_epoch = f.epoch;
	c->sum.sealed_through = seq;
	c->expect_first = seq + 1;
	snprintf(c->from, sizeof(c->from), "%s", f.until);
	sbx_seal_evolve(c->key, c->next_epoch);
	c->next_epoch++;
	return 0;
}

/* A record is written in the epoch its position puts it in; one whose
 * time is before that epoch began was back-dated, e.g. forged later with
 * a stolen key and given an old time.  Records copied from a fleet's log
 * keep the log's time and are exempt (docs/audit.md). */
static int check_time_text(struct sbx_seal_check *c, const char *t, size_t tlen, bool fleet,
			   uint64_t seq, uint64_t *bad_seq, char *err, size_t errlen)
{
	char buf[SBX_RFC3339_LEN + 8];

	/* Counted, so that verify says how many it did not check. */
	if (fleet && !c->standalone) {
		c->sum.fleet_exempt++;
		if (!c->sum.fleet_first)
			c->sum.fleet_first = seq;
		return 0;
	}
	if (t) {
		if (tlen >= sizeof(buf))
			tlen = sizeof(buf) - 1;
		memcpy(buf, t, tlen);
		buf[tlen] = '\0';
	}
	if (c->adopt) {
		/* The epoch is not known yet: keep the earliest time. */
		if (!c->min_time_seq || !t || strcmp(buf, c->min_time) < 0) {
			snprintf(c->min_time, sizeof(c->min_time), "%s", t ? buf : "");
			c->min_time_seq = seq;
		}
		return 0;
	}
	if (c->next_epoch == 0)
		return 0;
	if (!t || strcmp(buf, c->from) < 0)
		return fail(bad_seq, seq, err, errlen, "its time %s is before its epoch %" PRIu64
			    " began (%s): back-dated (written later with a stolen key) or the clock "
			    "was stepped back", t ? buf : "(none)", c->next_epoch, c->from);
	return 0;
}

static int check_time(struct sbx_seal_check *c, const json_t *rec, uint64_t seq,
		      uint64_t *bad_seq, char *err, size_t errlen)
{
	const char *t = str(rec, "time");

	return check_time_text(c, t, t ? strlen(t) : 0, json_object_get(rec, "fleet_hash") != NULL,
			       seq, bad_seq, err, errlen);
}

void sbx_seal_check_start_at(struct sbx_seal_check *c, uint64_t first_seq)
{
	if (first_seq <= 1)
		return;
	c->last_seq = first_seq - 1;
	c->expect_first = first_seq;
	c->adopt = true;
}

int sbx_seal_check_plain(struct sbx_seal_check *c, uint64_t seq, const char *time,
			 size_t time_len, bool fleet, uint64_t *bad_seq, char *err, size_t errlen)
{
	if (seq != c->last_seq + 1)
		return fail(bad_seq, c->last_seq + 1, err, errlen, "not the next record");
	c->last_seq = seq;
	c->sum.records++;
	return check_time_text(c, time, time_len, fleet, seq, bad_seq, err, errlen);
}

int sbx_seal_check_record(struct sbx_seal_check *c, const json_t *rec, uint64_t *bad_seq,
			  char *err, size_t errlen)
{
	const char *event = str(rec, "event"), *kid = str(rec, "key_id");
	uint64_t seq = 0;

	if (!uint_of(rec, "seq", &seq) || seq != c->last_seq + 1)
		return fail(bad_seq, c->last_seq + 1, err, errlen, "not the next record");
	c->last_seq = seq;
	c->sum.records++;
	if (event && strcmp(event, SBX_SEAL_EVENT) == 0) {
		if (kid && strcmp(kid, c->vk.key_id) == 0)
			return check_seal(c, rec, seq, bad_seq, err, errlen);
		c->sum.other_seals++;
		return 0;
	}
	if (event && strcmp(event, SBX_SEAL_REPLACED_EVENT) == 0 &&
	    (kid = str(rec, "old_key_id")) && strcmp(kid, c->vk.key_id) == 0)
		c->sum.replaced_at = seq;
	return check_time(c, rec, seq, bad_seq, err, errlen);
}

static int check_host(struct sbx_seal_check *c, const struct sbx_seal_state *host,
		      uint64_t *bad_seq, char *err, size_t errlen)
{
	uint64_t after = c->sum.sealed_through ? c->sum.sealed_through + 1 : c->expect_first;
	uint8_t k[SBX_SEAL_KEY_LEN];
	bool same;

	if (c->adopt)
		return fail(bad_seq, c->expect_first, err, errlen, "the journal starts at seq %" PRIu64
			    " (pruned before it) but no seal of key %s follows: nothing of it is "
			    "proven", c->expect_first, c->vk.key_id);

	if (strcmp(host->key_id, c->vk.key_id) != 0) {
		if (c->sum.replaced_at)
			return fail(bad_seq, c->sum.replaced_at, err, errlen, "the sealing key was "
				    "replaced here (audit init --force; the host now seals with key "
				    "%s): nothing after seq %" PRIu64 " is proven by this key",
				    host->key_id, c->sum.sealed_through);
		return fail(bad_seq, after, err, errlen, "the host's sealing key is another one "
			    "(id %s, this key is %s), and the journal does not record a "
			    "replacement: nothing after seq %" PRIu64 " is proven", host->key_id,
			    c->vk.key_id, c->sum.sealed_through);
	}
	/* The broker evolves its key only after the seal is on disk, so the
	 * host's epoch is the next one to seal, or (a crash in between) the
	 * one just sealed. */
	if (host->epoch > c->next_epoch)
		return fail(bad_seq, after, err, errlen, "the journal was cut: the host's key is "
			    "at epoch %" PRIu64 ", so epochs up to %" PRIu64 " were sealed, but "
			    "the journal's last seal is %s%" PRIu64 "%s",
			    host->epoch, host->epoch - 1,
			    c->sum.seals ? "for epoch " : "", c->sum.seals ? c->sum.last_epoch : 0,
			    c->sum.seals ? "" : " (none)");
	if (host->epoch + 1 < c->next_epoch)
		return fail(bad_seq, after, err, errlen, "the host's key file is at epoch %" PRIu64
			    ", older than the journal's last seal (epoch %" PRIu64 "): the key file "
			    "was replaced by an old copy", host->epoch, c->next_epoch - 1);
	sbx_seal_derive(c->vk.k0, host->epoch, k);
	same = CRYPTO_memcmp(k, host->key, sizeof(k)) == 0;
	OPENSSL_cleanse(k, sizeof(k));
	if (!same)
		return fail(bad_seq, after, err, errlen, "the host's key file does not hold the key "
			    "of epoch %" PRIu64 " (forged or damaged)", host->epoch);
	c->sum.host_checked = true;
	return 0;
}

int sbx_seal_check_end(struct sbx_seal_check *c, const struct sbx_seal_state *host,
		       struct sbx_seal_summary *sum, uint64_t *bad_seq, char *err, size_t errlen)
{
	int rc = 0;

	c->sum.unsealed = c->last_seq - c->sum.sealed_through;
	if (host)
		rc = check_host(c, host, bad_seq, err, errlen);
	if (sum)
		*sum = c->sum;
	return rc;
}

int sbx_seal_verify_dir(const char *state_dir, const struct sbx_seal_vkey *vk, bool no_host_key,
			struct sbx_seal_summary *sum, uint64_t *bad_seq, char *err,
			size_t errlen)
{
	struct sbx_verify_opts o = { .state_dir = state_dir, .vk = vk, .no_host_key = no_host_key };
	struct sbx_verify_result r;
	int rc = sbx_journal_audit(&o, &r, err, errlen);

	*sum = r.seal;
	*bad_seq = rc ? r.bad_seq : 0;
	return rc;
}
