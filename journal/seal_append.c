/*
 * Appending a seal (seal.h): the one place that turns the current epoch
 * into its journal.sealed record, for the broker and the tests alike.
 */
#include "config.h"

#include "seal.h"

#include "journal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int sbx_seal_append(struct sbx_journal *j, const struct sbx_seal_state *st, const char *actor,
		    const char *why, uint64_t *seq, char until[SBX_RFC3339_LEN], char *err,
		    size_t errlen)
{
	int64_t now_us = sbx_now_us();
	char head[65], mac[65];
	struct sbx_seal_fields f = { .key_id = st->key_id, .epoch = st->epoch,
				     .first_seq = st->first_seq,
				     .last_seq = sbx_journal_last_seq(j), .from = st->from,
				     .until = until, .head = head, .why = why };
	json_t *fields = NULL;
	int ret = -1;

	/* The seal's time is its until: chosen here so that the MAC covers
	 * exactly the text the record carries. */
	sbx_journal_last_hash(j, head);
	sbx_format_rfc3339_us(now_us, until);
	if (sbx_seal_mac(st->key, &f, mac) < 0) {
		snprintf(err, errlen, "a seal field is too long");
		goto out;
	}
	fields = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s}", "key_id", f.key_id,
			   "epoch", (json_int_t)f.epoch, "first_seq", (json_int_t)f.first_seq,
			   "last_seq", (json_int_t)f.last_seq, "from", f.from, "head", head,
			   "why", why, "mac", mac);
	if (!fields) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (sbx_journal_append_at(j, now_us, SBX_SEAL_EVENT, actor, fields, seq, NULL) < 0) {
		snprintf(err, errlen, "cannot append the seal of epoch %" PRIu64 ": %s", f.epoch,
			 strerror(errno));
		goto out;
	}
	if (sbx_journal_flush(j) < 0) {
		snprintf(err, errlen, "the seal of epoch %" PRIu64 " did not reach the disk",
			 f.epoch);
		goto out;
	}
	ret = 0;
out:
	json_decref(fields);
	return ret;
}
