/*
 * Internals shared by broker/journal*.c and tests/unit/test_journal.c.
 * Not a contract for anyone else: use broker/journal.h.
 */
#ifndef SBX_JOURNAL_INT_H
#define SBX_JOURNAL_INT_H

#include "journal.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBX_JR_HEX 64
/* Every record line ends with exactly this shape (docs/audit.md):
 *   ,"prev":"<64 hex>","hash":"<64 hex>"}
 * HASH_TAIL is the `,"hash":"<64 hex>"}` part that the hash leaves out. */
#define SBX_JR_HASH_TAIL (9 + SBX_JR_HEX + 2)
#define SBX_JR_TAIL (9 + SBX_JR_HEX + 1 + SBX_JR_HASH_TAIL)
#define SBX_JR_SEG_NAME_MAX 32
/* snapshot.json (docs/audit.md, "Snapshots"): the format its header
 * names, and the longest entry line a writer puts and a reader takes. */
#define SBX_JR_SNAP_FORMAT 2
#define SBX_JR_SNAP_LINE_MAX (64u << 20)

/* One reusable SHA-256 context (EVP; fetched once, not per record). */
struct sbx_jr_sha {
	EVP_MD_CTX *ctx;
	EVP_MD *md;             /* owned when fetched (OpenSSL 3) */
	const EVP_MD *use;
};

int sbx_jr_sha_init(struct sbx_jr_sha *s);
void sbx_jr_sha_free(struct sbx_jr_sha *s);
/* The record hash of a line (without its '\n') that ends in the tail
 * above: SHA-256 over everything before `,"hash":...` followed by "}".
 * The line must be at least SBX_JR_HASH_TAIL + 1 bytes long. */
int sbx_jr_line_hash(struct sbx_jr_sha *s, const char *line, size_t len,
		     char hex[SBX_JR_HEX + 1]);
/* SHA-256 of any bytes, hex. */
int sbx_jr_sha_hex(struct sbx_jr_sha *s, const void *p, size_t n, char hex[SBX_JR_HEX + 1]);

/* JSON text -> jansson value, identical to json_loadb(s, n, 0, ...) but
 * several times faster on the shapes the journal writes.  The fast path
 * declines (returns NULL) anything it does not handle (reals, \u escapes,
 * raw non-ASCII, deep nesting, errors); sbx_jr_parse then falls back to
 * json_loadb, so results and error messages are jansson's. */
json_t *sbx_jr_parse_fast(const char *s, size_t n);
json_t *sbx_jr_parse(const char *s, size_t n, char *err, size_t errlen);

/* One record's text: 64 lowercase hex digits; the `{"seq":N,` it starts
 * with (N, or 0 when it does not); the `,"prev":..,"hash":..}` it ends
 * with.  sbx_jr_check_parsed parses it and checks that the parsed record
 * agrees with the text (with chain: seq, time, event, actor, prev, hash);
 * NULL with what is wrong in what. */
bool sbx_jr_is_hex64(const char *p);
uint64_t sbx_jr_leading_seq(const char *line, size_t len);
bool sbx_jr_tail_ok(const char *line, size_t len);
json_t *sbx_jr_check_parsed(const char *line, size_t len, uint64_t seq, bool chain,
			    char *what, size_t whatlen);

/* `"event":..,"actor":..,<fields>` as compact ASCII JSON without the
 * braces, DEL escaped (malloc'd; NULL for a reserved field name or text
 * jansson cannot encode, errno EINVAL). */
char *sbx_jr_serialize_middle(const char *event, const char *actor, const json_t *fields,
			      size_t *len);
/* The length of the line (without '\n') that sbx_jr_build_line makes
 * from a middle of midlen bytes, for this seq and time text. */
size_t sbx_jr_line_len(uint64_t seq, const char *ts, size_t midlen);
/* Write that line into out (room for sbx_jr_line_len() bytes; no '\n',
 * no NUL) with prev, and its hash into hash.  0 or -1 (SHA-256 failed). */
int sbx_jr_build_line(struct sbx_jr_sha *s, uint64_t seq, const char *ts, const char *mid,
		      size_t midlen, const char prev[SBX_JR_HEX + 1], char *out,
		      char hash[SBX_JR_HEX + 1]);

/* A record by seq, hash and place: the last seal, which a snapshot names
 * and start-up checks the chain from (docs/audit.md, "Snapshots"). */
#define SBX_JR_SEAL_EVENT "journal.sealed"
struct sbx_jr_anchor {
	uint64_t seq;           /* 0: none */
	char hash[SBX_JR_HEX + 1];
	char segment[SBX_JR_SEG_NAME_MAX];
	uint64_t off;           /* where its line starts in segment */
};
/* Is the line's event (its third member, after seq and time) this one?
 * A look at the text, no parse. */
bool sbx_jr_line_event_is(const char *line, size_t len, const char *event);

/* Segments: <first seq as at least 12 digits>.jsonl. */
struct sbx_jr_seg {
	uint64_t first;
	char name[SBX_JR_SEG_NAME_MAX];
};
void sbx_jr_seg_name(uint64_t first, char name[SBX_JR_SEG_NAME_MAX]);
/* Sorted by first seq; other names are ignored.  *segs is malloc'ed. */
int sbx_jr_list_segments(int jdirfd, struct sbx_jr_seg **segs, size_t *nsegs, char *err,
			 size_t errlen);

enum sbx_jr_mode {
	SBX_JR_REPLAY,  /* chain checked; a torn tail is reported, not an error */
	SBX_JR_VERIFY,  /* chain checked; a torn tail is an error */
	SBX_JR_FOREACH, /* no chain check; a torn tail is skipped */
};

struct sbx_jr_scan_opts {
	enum sbx_jr_mode mode;
	int jdirfd;
	const struct sbx_jr_seg *segs;
	size_t nsegs;
	size_t start_seg;       /* index into segs */
	uint64_t start_off;     /* byte offset in segs[start_seg] */
	uint64_t expect_seq;    /* seq of the first record read */
	char prev[SBX_JR_HEX + 1]; /* hash that record's prev must be */
	uint64_t max_seq;       /* stop after this seq; UINT64_MAX = all */
	uint64_t parse_after;   /* records up to this seq are checked, not parsed */
	struct sbx_jr_anchor seal; /* the last seal before the scan's start, if known */
	/* Verify's fast path: fn gets rec NULL for a record the text check
	 * (sbx_jr_lite_check) vouches for, with what it found in
	 * res->lite; a record it declines is parsed as always. */
	bool lite;
};

/* What the text check of one record found (no JSON parse). */
struct sbx_jr_lite {
	uint64_t seq;
	const char *time, *event;   /* into the line; not NUL-terminated */
	size_t time_len, event_len;
	bool has_fleet_hash;
};

struct sbx_jr_scan_result {
	uint64_t bad_seq;       /* on error: the first bad record's seq */
	uint64_t last_seq;      /* last good record (0 if none read) */
	char last_hash[SBX_JR_HEX + 1];
	size_t last_seg;        /* where that record's line starts */
	uint64_t last_off;
	size_t end_seg;         /* end of the good data (after the last '\n') */
	uint64_t end_off;
	bool torn;              /* REPLAY: bytes after end_off are a torn tail */
	uint64_t torn_bytes;
	size_t torn_op;         /* REPLAY: records of an unfinished operation in it */
	/* While fn runs: where the record it is given starts. */
	size_t cur_seg;
	uint64_t cur_off;
	const struct sbx_jr_lite *lite; /* with rec NULL (opts.lite) */
	struct sbx_jr_anchor seal;      /* the last seal checked (or opts.seal) */
};

/* Does the line (whose shape, seq and hash the chain check passed) hold
 * valid JSON that jansson would parse to an object whose seq, time,
 * event, actor, prev and hash agree with the text?  true with what it
 * found; false when it cannot vouch for it (anything outside the plain
 * shapes the broker writes: escapes, non-ASCII, reals, duplicates of
 * those keys, deep nesting, errors): the caller then parses in full. */
bool sbx_jr_lite_check(const char *line, size_t len, uint64_t seq, struct sbx_jr_lite *out);

/* Called on the scanning caller's thread, in order.  rec is borrowed.
 * Return 0, 1 to stop early (not an error), -1 to abort with err set. */
typedef int (*sbx_jr_rec_fn)(json_t *rec, const char *line, size_t len, void *ctx, char *err,
			     size_t errlen);

/* Read, check and parse records.  With enough data a helper thread reads
 * and checks the text (seq, shape, hash, prev) while the caller's thread
 * parses each record, runs fn and frees it.  Returns 0 or -1 with err
 * ("journal: record seq N: what (journal/FILE:LINE)") and res->bad_seq. */
int sbx_jr_scan(const struct sbx_jr_scan_opts *o, sbx_jr_rec_fn fn, void *ctx,
		struct sbx_jr_scan_result *res, char *err, size_t errlen);

/* Scans of at least this many bytes use the helper thread.  Tests lower
 * it to cover the threaded path with small journals. */
extern uint64_t sbx_jr_thread_min_bytes;

/* The start-up replay without side effects: the chain is checked from
 * the seal the snapshot names (or from seq 1 without one); the snapshot's state is handed over if it matches (and its seq
 * <= max_seq) and only the records after it are parsed and handed over,
 * else all of them, up to max_seq.  No lock, nothing is truncated (res
 * says what open would cut).  sdirfd/jdirfd: the state dir and its
 * journal/. */
int sbx_jr_replay(int sdirfd, int jdirfd, uint64_t max_seq, sbx_snapshot_fn on_snapshot,
		  sbx_replay_fn on_record, void *ctx, struct sbx_replay_info *info,
		  struct sbx_jr_seg **segs, size_t *nsegs, struct sbx_jr_scan_result *res,
		  char *err, size_t errlen);

/* For journal_prune.c: the journal/ dir fd, the seal the snapshot on
 * disk names (0: none), the first seq of the segment being appended to
 * (0: none yet). */
int sbx_jr_jdirfd(const struct sbx_journal *j);
uint64_t sbx_jr_snap_seal_seq(const struct sbx_journal *j);
uint64_t sbx_jr_current_segment(struct sbx_journal *j);

/* Number of fdatasync batches the writer has done (group commit check). */
uint64_t sbx_jr_sync_count(const struct sbx_journal *j);

#endif
