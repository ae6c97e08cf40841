#include "config.h"

#include "chain.h"

#include "journal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void sbx_chain_pos_init(struct sbx_chain_pos *p)
{
	p->seq = 0;
	memcpy(p->hash, SBX_RECORD_GENESIS, sizeof(p->hash));
}

/* One record after pos; 0 or -1 with what. */
static int check_one(const struct sbx_chain_pos *pos, const struct sbx_pgrec *r,
		     char hash[65], char *what, size_t whatlen)
{
	char err[300];

	if (r->seq != pos->seq + 1) {
		snprintf(what, whatlen, "expected seq %" PRIu64 " next, found seq %" PRIu64
			 " (a record is missing)", pos->seq + 1, r->seq);
		return -1;
	}
	if (memcmp(r->prev, pos->hash, 64) != 0) {
		snprintf(what, whatlen, "its prev column is not the hash of seq %" PRIu64
			 " (chain broken)", pos->seq);
		return -1;
	}
	if (!r->line || sbx_record_check(r->line, strlen(r->line), r->seq, pos->hash, hash, NULL,
					 err, sizeof(err)) < 0) {
		snprintf(what, whatlen, "%s", r->line ? err : "no line");
		return -1;
	}
	if (memcmp(r->hash, hash, 64) != 0) {
		snprintf(what, whatlen, "its hash column is not the hash of its line");
		return -1;
	}
	return 0;
}

int sbx_chain_check(struct sbx_chain_pos *pos, const struct sbx_pgrec *recs, size_t n,
		    size_t *n_ok, uint64_t *bad_seq, char *why, size_t whylen)
{
	char hash[65], what[400];

	*n_ok = 0;
	for (size_t i = 0; i < n; i++) {
		if (check_one(pos, &recs[i], hash, what, sizeof(what)) < 0) {
			*bad_seq = pos->seq + 1;
			/* sbx_record_check already says "record seq N: ..." */
			if (strncmp(what, "record seq ", 11) == 0)
				snprintf(why, whylen, "fleet log: %s", what);
			else
				snprintf(why, whylen, "fleet log: record seq %" PRIu64 ": %s",
					 pos->seq + 1, what);
			return -1;
		}
		pos->seq = recs[i].seq;
		memcpy(pos->hash, hash, sizeof(pos->hash));
		(*n_ok)++;
	}
	return 0;
}
