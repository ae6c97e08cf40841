/*
 * What the policy file says besides the RBAC rules: how to reach the LDAP
 * directory (directory:), where Slack's callbacks come in (slack:) and
 * where the fleet's shared log is (fleet:) and how the journal is sealed
 * (audit:).
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

/* audit: (docs/audit.md, "Sealing") */
struct sbx_audit_conf {
	int64_t seal_every;             /* seconds per sealing epoch (default 60) */
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
	struct sbx_sudo_conf sudo;
};

#endif
