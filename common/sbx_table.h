/*
 * The grant table: the broker's on-disk list of unix groups and their
 * members, which libnss_sbx reads without a socket round trip.
 *
 * One file, <directory of broker.socket>/groups.table, written by the
 * broker to a temp file and renamed into place on every change, read by
 * the module through a read-only mmap.  docs/nss.md describes the format
 * byte by byte; in short (all integers little-endian):
 *
 *   header   64 bytes: magic, version, sizes, generation, checksum
 *   groups   n_groups records of 24 bytes: gid, name, member range
 *   members  n_members records of 16 bytes: name, expires_at
 *   strings  every name, each followed by a NUL
 *
 * Members of a group are sorted by name (bytewise) so a reader finds a
 * user by binary search.  A member counts while expires_at > now (Unix
 * seconds); standing members carry SBX_TBL_FOREVER.
 *
 * The reader side never trusts the bytes: sbx_tbl_open() checks the
 * header (and, with full, every record, every name and the checksum), and
 * every accessor checks bounds again, so even an unchecked or garbage
 * buffer cannot make it read outside [p, p + n).  Libc only: this file is
 * compiled into both the broker and the NSS module.
 */
#ifndef SBX_TABLE_H
#define SBX_TABLE_H

#include <stddef.h>
#include <stdint.h>

#define SBX_TBL_MAGIC "SBXGRPS\n"
#define SBX_TBL_MAGIC_LEN 8u
#define SBX_TBL_VERSION 1u
#define SBX_TBL_HDR_LEN 64u
#define SBX_TBL_GROUP_LEN 24u
#define SBX_TBL_MEMBER_LEN 16u
/* Limits a reader enforces before it believes anything else. */
#define SBX_TBL_MAX_SIZE (64u << 20)
#define SBX_TBL_MAX_GROUPS 65536u
#define SBX_TBL_FOREVER INT64_MAX
/* The file's name inside the socket's directory. */
#define SBX_TBL_FILE "groups.table"
/* Exported by sbx-brokerd; libnss_sbx looks it up with dlsym() to know it
 * is running inside the broker and must never ask the broker's socket
 * (the broker would be waiting for its own answer). */
#define SBX_BROKER_GUARD_SYMBOL "sbx_brokerd_nss_guard"

/* ---- reading ------------------------------------------------------------ */

struct sbx_tbl {
	const uint8_t *p;
	size_t n;
	uint64_t generation;
	int64_t written_at;
	uint32_t n_groups;
	uint32_t n_members;
	uint32_t strings_off;
	uint32_t strings_len;
};

struct sbx_tbl_group {
	const char *name;       /* NUL-terminated inside the table */
	size_t name_len;
	uint32_t gid;
	uint32_t first;         /* index of its first member record */
	uint32_t count;         /* members, live or not */
	uint32_t member_bytes;  /* sum of (name length + 1) over them */
};

struct sbx_tbl_member {
	const char *name;
	size_t name_len;
	int64_t expires_at;
};

/* Check the header of the n bytes at p (and with full != 0 every record,
 * every name, member order and the checksum) and fill t.  Returns 0, or
 * -EBADMSG with a reason in why (may be NULL). */
int sbx_tbl_open(struct sbx_tbl *t, const void *p, size_t n, int full, char *why,
		 size_t whylen);

/* Group i (0 <= i < n_groups).  0, or -EBADMSG when the record points
 * outside the table. */
int sbx_tbl_group_at(const struct sbx_tbl *t, uint32_t i, struct sbx_tbl_group *g);

/* Member j (0 <= j < g->count) of g.  0 or -EBADMSG. */
int sbx_tbl_member_at(const struct sbx_tbl *t, const struct sbx_tbl_group *g, uint32_t j,
		      struct sbx_tbl_member *m);

/* The group named name / with this gid: 1 found (g filled), 0 not there,
 * -EBADMSG on a broken record. */
int sbx_tbl_find_name(const struct sbx_tbl *t, const char *name, struct sbx_tbl_group *g);
int sbx_tbl_find_gid(const struct sbx_tbl *t, uint32_t gid, struct sbx_tbl_group *g);

/* Is user a member of g whose membership is live at now?  1, 0 or
 * -EBADMSG.  Binary search: relies on the order sbx_tbl_open(full)
 * checks; on an unchecked table it can only miss, never read out of
 * bounds. */
int sbx_tbl_is_member(const struct sbx_tbl *t, const struct sbx_tbl_group *g, const char *user,
		      int64_t now);

/* How many of g's members are live at now, and their names' bytes
 * (length + 1 each).  0 or -EBADMSG. */
int sbx_tbl_count_live(const struct sbx_tbl *t, const struct sbx_tbl_group *g, int64_t now,
		       size_t *count, size_t *bytes);

/* Copy the names of g's members live at now into dst (room bytes), each
 * NUL-terminated, with a pointer to each in mem[0..] (max slots, not
 * counting the NULL put after the last).  Returns how many, -ERANGE when
 * mem or dst is too small, -EBADMSG on a broken record.  When every member
 * is live (the usual case) the names are copied as one block. */
long sbx_tbl_copy_live(const struct sbx_tbl *t, const struct sbx_tbl_group *g, int64_t now,
		       char **mem, size_t max, char *dst, size_t room);

/* The checksum stored in the header: computed over the whole file with
 * the checksum field taken as zero. */
uint64_t sbx_tbl_checksum(const void *p, size_t n);

/* ---- writing ------------------------------------------------------------ */

struct sbx_tbl_builder;

struct sbx_tbl_builder *sbx_tbl_builder_new(void);
void sbx_tbl_builder_free(struct sbx_tbl_builder *b);

/* Add a group; returns its index (>= 0) or -ENOMEM / -EINVAL (bad name,
 * too many groups). */
int sbx_tbl_add_group(struct sbx_tbl_builder *b, const char *name, uint32_t gid);

/* Add user to group index gi until expires_at (SBX_TBL_FOREVER for a
 * standing member).  A user added twice keeps the later expiry.  0,
 * -ENOMEM or -EINVAL. */
int sbx_tbl_add_member(struct sbx_tbl_builder *b, int gi, const char *user, int64_t expires_at);

/* Lay the table out: *out (malloc'd, caller frees) and *len.  The builder
 * can be freed afterwards.  0, -ENOMEM or -EFBIG. */
int sbx_tbl_finish(struct sbx_tbl_builder *b, uint64_t generation, int64_t written_at,
		   uint8_t **out, size_t *len);

#endif
