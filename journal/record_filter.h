/*
 * Choosing journal records: the filters of `sbxctl audit query`, `audit
 * tail` and the broker's TAIL op, and what a record's outcome is
 * (docs/audit.md, "Outcomes").  Pure functions over parsed records; the
 * broker and sbxctl share them so that a filter means the same live and
 * offline.
 */
#ifndef SBX_RECORD_FILTER_H
#define SBX_RECORD_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sbx_rec_filter {
	const char *user;      /* record's "user" or "actor" equals it */
	const char *actor;     /* record's "actor" equals it */
	const char *role;      /* record's "role" equals it */
	const char *event;     /* exact, or a prefix ending in '.' or ".*" */
	const char *host;      /* the record's host (sbx_rec_host) equals it */
	const char *outcome;   /* sbx_rec_outcome equals it */
	bool has_id;
	uint32_t id;           /* record's "id" (request or grant) equals it */
	bool has_since;
	int64_t since_us;      /* time >= since */
	bool has_until;
	int64_t until_us;      /* time < until */
};

/* The outcome of a record, one word, or NULL for records that have none
 * (broker.started, seals, ...).  The table is in docs/audit.md. */
const char *sbx_rec_outcome(const json_t *rec);

/* Is outcome one of the words sbx_rec_outcome can give? */
bool sbx_rec_outcome_known(const char *outcome);
/* The known words, comma-separated, for messages. */
const char *sbx_rec_outcome_list(void);

/* Event pattern: exact, or a prefix when it ends in '.' or ".*". */
bool sbx_rec_event_match(const char *pattern, const char *event);

/* Where a record happened: its "host" member (fleet records, and
 * broker.started / policy.loaded), else current_host: the host the last
 * broker.started before it named (a single host's records carry no host
 * of their own).  Readers keep current_host with sbx_rec_track_host. */
const char *sbx_rec_host(const json_t *rec, const char *current_host);

/* Follow broker.started records: copies their host into buf (len bytes).
 * True when rec was one. */
bool sbx_rec_track_host(const json_t *rec, char *buf, size_t len);

/* Does rec pass every filter of f?  current_host as for sbx_rec_host. */
bool sbx_rec_filter_match(const json_t *rec, const struct sbx_rec_filter *f,
			  const char *current_host);

/* The text a matching record's line must contain, when f allows telling
 * from the text alone that a line cannot match (a name that needs no JSON
 * escaping, quoted: "\"erin\"").  Lines without it need no parsing.
 * Writes into buf (len bytes) and returns it, or NULL when no such text
 * is known. */
const char *sbx_rec_filter_needle(const struct sbx_rec_filter *f, char *buf, size_t len);

#endif
