/*
 * What the policy file says besides the RBAC rules: how to reach the LDAP
 * directory (directory:), where Slack's callbacks come in (slack:) and
 * where the fleet's shared log is (fleet:) and how the journal is sealed
 * (audit:), and where the drift scan looks (drift:).
 * The loader fills these beside struct sbx_policy; the parts that use
 * them (ldap/, the broker's directory source and Slack) get their own
 * copy, so a policy that changes with every directory refresh never
 * carries connection settings.  Fixed-size buffers: nothing to free.
 * docs/policy.md and docs/slack.md describe every key.
 */
#ifndef SBX_SETTINGS_H
#define SBX_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alerts_conf.h"

/* The longest path of a file holding a secret, with its NUL. */
#define SBX_SETTINGS_PATH_MAX 1024

/* directory: */
struct sbx_directory_conf {
	bool enabled;                   /* the file has the section */
	char uri[4][256];               /* tried in order; n_uri of them */
	size_t n_uri;
	bool start_tls;                 /* for ldap:// URIs (default true) */
	char base[512];
	char bind_dn[512];              /* empty: anonymous */
	char bind_password_file[512];   /* absolute path, with bind_dn */
	char tls_ca_file[512];          /* absolute path, or empty */
	char user_base[512], user_filter[512];
	char group_base[512], group_filter[512];
	char attr_uid[64], attr_mail[64], attr_manager[64], attr_slack_id[64];
	char attr_group_name[64], attr_member[64], attr_member_uid[64];
	int64_t timeout, cache_ttl, max_stale; /* seconds */
};

/* slack: */
struct sbx_slack_conf {
	bool enabled;                   /* the file has the section */
	char webhook_url_file[SBX_SETTINGS_PATH_MAX];    /* absolute path of a 0600 file */
	char signing_secret_file[SBX_SETTINGS_PATH_MAX]; /* absolute path of a 0600 file */
	char listen_host[64];           /* numeric IPv4 or IPv6 address */
	uint16_t listen_port;           /* 0: any free port (tests) */
	char request_path[256];         /* where Slack POSTs, e.g. /slack/interactive */
	int64_t timeout;                /* seconds, one HTTP exchange either way */
};

/* fleet: (docs/fleet.md) */
struct sbx_fleet_conf {
	bool enabled;                   /* the file has the section */
	char postgres[1024];            /* a libpq conninfo or URI, without a password */
	char password_file[SBX_SETTINGS_PATH_MAX]; /* absolute path of a 0600 file, or empty */
	int64_t timeout;                /* seconds, one database call (default 5) */
	int64_t max_stale;              /* seconds without the log before saying so (60) */
	int64_t verify_every;           /* seconds between full checks of the log (3600);
	                                 * 0: never */
};

/* audit: (docs/audit.md, "Sealing" and "Evidence off the host") */
struct sbx_audit_conf {
	int64_t seal_every;             /* seconds per sealing epoch (default 60) */
	int64_t retention;              /* for roles whose profile sets none; 0: forever */
	bool syslog;                    /* every record to syslog (default true) */
	char checkpoint_url[2048];      /* https:// collector of seals, or empty */
	char checkpoint_ca_file[SBX_SETTINGS_PATH_MAX]; /* PEM CAs for it, or empty: the system's */
	int64_t checkpoint_timeout;     /* seconds, one post (default 10) */
};

/* drift: (docs/policy.md, "drift"): where the scan for access that does
 * not come from sbx looks, how often, and what it does about it. */
#define SBX_DRIFT_MAX_GROUPS 32
#define SBX_DRIFT_MAX_PATHS 16
/* The kinds of finding (broker/drift_scan.h names them). */
enum sbx_drift_kind {
	SBX_DRIFT_GROUP = 0,            /* a member of a watched group */
	SBX_DRIFT_SUDOERS,              /* a sudoers rule, or a line that does not parse */
	SBX_DRIFT_KEYS,                 /* an authorized_keys file */
	SBX_DRIFT_SESSION,              /* a live session without a grant */
	SBX_DRIFT_GRANT,                /* a grant the policy no longer supports */
	SBX_DRIFT_FILE,                 /* a file the scan could not trust or read */
	SBX_DRIFT_N_KINDS,
};
enum sbx_drift_action { SBX_DRIFT_REPORT = 0, SBX_DRIFT_REMOVE };
struct sbx_drift_conf {
	bool enabled;                   /* the file has the section */
	int64_t interval;               /* seconds (default 15m) */
	char watch_groups[SBX_DRIFT_MAX_GROUPS][65];
	size_t n_watch_groups;
	char group_file[SBX_SETTINGS_PATH_MAX];  /* gshadow is read beside it */
	char passwd_file[SBX_SETTINGS_PATH_MAX]; /* accounts and their homes */
	char sshd_config[SBX_SETTINGS_PATH_MAX]; /* for AuthorizedKeysFile */
	char utmp_file[SBX_SETTINGS_PATH_MAX];   /* who is logged in; "": none */
	char sudoers[SBX_DRIFT_MAX_PATHS][SBX_SETTINGS_PATH_MAX]; /* files or dirs */
	size_t n_sudoers;
	/* patterns with %h (home), %u (user), %%; "sshd": sshd's own */
	char authorized_keys[SBX_DRIFT_MAX_PATHS][SBX_SETTINGS_PATH_MAX];
	size_t n_authorized_keys;
	enum sbx_drift_action remediate[SBX_DRIFT_N_KINDS];
};

/* review: (docs/review.md) */
struct sbx_review_conf {
	int64_t unused_after;           /* seconds without use that flag standing access (30d) */
};

/* api: (docs/api.md) */
struct sbx_api_conf {
	bool enabled;                   /* the file has the section */
	char listen_host[64];           /* numeric IPv4 or IPv6 address */
	uint16_t listen_port;           /* 0: any free port (tests) */
	char tls_cert_file[SBX_SETTINGS_PATH_MAX]; /* PEM; empty: plain HTTP (loopback only) */
	char tls_key_file[SBX_SETTINGS_PATH_MAX];  /* PEM, a 0600 file */
	char public_url[256];           /* the dashboard as people reach it; "": none */
	char web_dir[SBX_SETTINGS_PATH_MAX]; /* the dashboard's files; "": compiled in */
	unsigned events_max;            /* GET /v1/events streams in all; 0: default */
	unsigned events_per_person;     /* ... per person; 0: default */
};

/* sudo: (docs/sudo.md) */
struct sbx_sudo_conf {
	int64_t wait;                   /* seconds a one-command request waits (default 120) */
};

struct sbx_settings {
	struct sbx_directory_conf directory;
	struct sbx_slack_conf slack;
	struct sbx_fleet_conf fleet;
	struct sbx_audit_conf audit;
	struct sbx_alerts_conf alerts;  /* alerts: (alerts_conf.h) */
	struct sbx_drift_conf drift;
	struct sbx_review_conf review;
	struct sbx_api_conf api;
	struct sbx_sudo_conf sudo;
};

struct sbx_policy;
/* How long the journal keeps records, in seconds (policy_retention.c):
 * the longest retention of any role's profile; a role whose profile sets
 * none counts as audit.retention, and without that as forever.  0:
 * forever (docs/policy.md). */
int64_t sbx_retention_of(const struct sbx_policy *p, const struct sbx_settings *s);

#endif
