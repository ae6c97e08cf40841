/*
 * Checking records fetched from the fleet's log against the chain a
 * reader already trusts: the journal's own checks (journal.h
 * sbx_record_check) plus what the database adds, so that a row someone
 * edited, deleted or inserted behind the brokers' backs is named by its
 * seq.  Used by the broker (as it applies the log, and in its periodic
 * full check) and by sbxctl fleet verify.
 */
#ifndef SBX_FLEET_CHAIN_H
#define SBX_FLEET_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "pgstore.h"

/* Where a reader stands: the seq and hash of the last record it trusts
 * (seq 0 and SBX_RECORD_GENESIS before the first). */
struct sbx_chain_pos {
	uint64_t seq;
	char hash[65];
};

void sbx_chain_pos_init(struct sbx_chain_pos *p);

/* Check recs[0..n) in order as the records that follow pos: each must be
 * seq pos.seq + 1, + 2, ... with no gap, its prev column and its line's
 * prev the hash before it, its line well-formed and hashing to the hash
 * it claims, and its hash column that same hash.  pos moves past every
 * record that passes; *n_ok says how many did.  0 when all did, else -1
 * with why ("fleet log: record seq N: what is wrong") and *bad_seq = N. */
int sbx_chain_check(struct sbx_chain_pos *pos, const struct sbx_pgrec *recs, size_t n,
		    size_t *n_ok, uint64_t *bad_seq, char *why, size_t whylen);

#endif
