/*
 * The drift scan's pure part: read the host's group and gshadow files,
 * its sudoers (with its includes), its passwd file and every account's
 * authorized_keys, and set them against what the policy says, given as a
 * struct sbx_drift_input the broker builds on its loop.  Nothing here
 * touches the broker: the scan runs on a thread of its own (drift.c) and
 * in the tests and bench directly.
 *
 * Files from outside are read as untrusted input: never through a
 * symbolic link, never when owned by someone else or writable by others,
 * never more than a cap, never when binary.  Each such file, and each
 * line that does not parse, is itself a finding; the scan goes on.
 */
#ifndef SBX_DRIFT_SCAN_H
#define SBX_DRIFT_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "namemap.h"
#include "settings.h"

/* Caps on what one file may hold. */
#define SBX_DRIFT_ACCOUNTS_MAX (16u << 20) /* passwd, group, gshadow */
#define SBX_DRIFT_SUDOERS_MAX (1u << 20)   /* one sudoers file */
#define SBX_DRIFT_KEYS_MAX (1u << 20)      /* one authorized_keys file */
/* Sudoers files read through includes, and include depth (sudo's own is
 * 128 files deep; a loop stops here). */
#define SBX_DRIFT_SUDOERS_FILES_MAX 4096
#define SBX_DRIFT_INCLUDE_DEPTH 32

/* Interned strings the input's maps borrow. */
struct sbx_strpool {
	char **v;
	size_t n, cap;
};
/* A copy of s kept in the pool, or NULL. */
const char *sbx_strpool_add(struct sbx_strpool *p, const char *s);
void sbx_strpool_free(struct sbx_strpool *p);

/* A role as the scan needs it. */
struct sbx_drift_role {
	const char *name, *unix_group;
	bool sudo_set;               /* the role has sudo: */
	const char **allow;          /* sudo.allow */
	size_t n_allow;
	/* who may be in the unix group: standing members and holders of a
	 * live grant (value: "standing" or "grant") */
	struct sbx_namemap justified;
	/* who is eligible (for the words of a finding) */
	struct sbx_namemap eligible;
};

/* What the scan checks against.  Everything is owned by the input. */
struct sbx_drift_input {
	struct sbx_drift_conf conf;
	char host[256];
	struct sbx_drift_role *roles;
	size_t n_roles;
	struct sbx_namemap users;    /* names the policy knows (file and directory) */
	struct sbx_namemap groups;   /* the policy's groups */
	struct sbx_namemap logins;   /* users the policy gives a login here */
	/* The owners a file may have besides root (the broker's own uid when
	 * it is not root, so that tests can run without root); (uid_t)-1: none. */
	uid_t also_trusted;
	struct sbx_strpool pool;
};

void sbx_drift_input_init(struct sbx_drift_input *in);
void sbx_drift_input_free(struct sbx_drift_input *in);
/* Add a role (names are copied).  The returned role's maps are filled by
 * the caller with sbx_drift_input_name().  NULL when out of memory. */
struct sbx_drift_role *sbx_drift_input_role(struct sbx_drift_input *in, const char *name,
					    const char *unix_group, bool sudo_set,
					    char *const *allow, size_t n_allow);
/* Put name (copied) into map m of in with value val.  0 or -ENOMEM. */
int sbx_drift_input_name(struct sbx_drift_input *in, struct sbx_namemap *m, const char *name,
			 const char *val);

struct sbx_drift_finding {
	enum sbx_drift_kind kind;
	char id[17];                 /* stable while it lasts: hash of what, not where */
	char *subject;               /* a user, "%group", or the file */
	char *file;                  /* where (NULL: not in a file) */
	unsigned line;               /* 0: the whole file */
	char *found;                 /* what is there */
	char *policy;                /* what the policy says */
	/* a membership in a role's unix group (remediable), else NULL */
	char *user, *group;
};

/* What a remove did to one membership. */
struct sbx_drift_act {
	char *user, *group, *file, *backup;
	char *error;                 /* NULL when done */
	char id[17];                 /* the finding */
};

/* A login record (utmp) whose process is alive. */
struct sbx_drift_login {
	char user[33], line[33];
	pid_t pid;
	int64_t at;
};

struct sbx_drift_result {
	struct sbx_drift_finding *v;
	size_t n, cap;
	/* files that could not be read this time: findings from them stay
	 * open rather than being called resolved */
	char **failed;
	size_t n_failed;
	struct sbx_drift_act *acts;
	size_t n_acts;
	struct sbx_drift_login *logins;
	size_t n_logins;
	/* what was read */
	size_t accounts, sudoers_files, key_files;
	bool oom;
};

void sbx_drift_result_free(struct sbx_drift_result *r);

/* The whole scan: members of watched groups, sudoers, authorized_keys;
 * then (remediate group: remove) the removals.  Never fails: what cannot
 * be read is a finding.  r is zeroed first. */
void sbx_drift_scan(const struct sbx_drift_input *in, struct sbx_drift_result *r);

/* ---- sudoers, for the scan and its tests ---------------------------------- */

enum sbx_sudo_who {
	SBX_SUDO_USER,        /* name */
	SBX_SUDO_UID,         /* #uid */
	SBX_SUDO_GROUP,       /* %group */
	SBX_SUDO_GID,         /* %#gid */
	SBX_SUDO_NETGROUP,    /* +netgroup */
	SBX_SUDO_NONUNIX,     /* %:group, %:#gid */
	SBX_SUDO_ALL,         /* ALL */
};

struct sbx_sudo_principal {
	enum sbx_sudo_who who;
	char *name;           /* without its sigil */
	bool negated;
};

struct sbx_sudoers_rule {
	char *file;
	unsigned line;
	char *text;           /* the rule as written, one line */
	struct sbx_sudo_principal *users;  /* aliases expanded */
	size_t n_users;
	char **cmds;          /* aliases expanded, normalised; negated ones dropped */
	size_t n_cmds;
};

struct sbx_sudo_problem {
	char *file;
	unsigned line;        /* 0: the whole file */
	char *why;
};

struct sbx_sudoers {
	struct sbx_sudoers_rule *rules;
	size_t n_rules;
	struct sbx_sudo_problem *problems;
	size_t n_problems;
	char **read;          /* files read */
	size_t n_read;
	bool oom;
};

/* Read path (a file, or a directory read as @includedir reads one) and
 * everything it includes.  host replaces %h in include paths.  A missing
 * path is nothing; anything else wrong is a problem.  also_trusted as in
 * the input. */
void sbx_sudoers_read(struct sbx_sudoers *s, const char *path, const char *host,
		      uid_t also_trusted);
void sbx_sudoers_free(struct sbx_sudoers *s);

/* Does a command the policy allows (ALL, a path, a path with arguments, a
 * directory ending in /, or a glob) cover the command a rule gives? */
bool sbx_sudo_cmd_covers(const char *allowed, const char *cmd);

#endif
