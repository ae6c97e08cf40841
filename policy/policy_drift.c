/*
 * drift: and a role's sudo: (policy_drift.h).  The values go into fixed
 * buffers of struct sbx_drift_conf (nothing to free) and the role's
 * sudo_allow list.  Every problem is reported at its node, as the rest
 * of the loader does, and reading goes on.
 */
#include "config.h"

#include "policy_drift.h"

#include "duration.h"
#include "sbx_proto.h"
#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DRIFT_DEFAULT_INTERVAL (15 * 60)
/* A scan every minute at most: each reads every account's keys. */
#define DRIFT_MIN_INTERVAL 60
#define SUDO_ALLOW_MAX 256

static const char *const kind_names[SBX_DRIFT_N_KINDS] = {
	[SBX_DRIFT_GROUP] = "group",
	[SBX_DRIFT_SUDOERS] = "sudoers",
	[SBX_DRIFT_KEYS] = "authorized_keys",
	[SBX_DRIFT_SESSION] = "session",
	[SBX_DRIFT_GRANT] = "grant",
	[SBX_DRIFT_FILE] = "file",
};

const char *sbx_drift_kind_name(enum sbx_drift_kind k)
{
	return (unsigned)k < SBX_DRIFT_N_KINDS ? kind_names[k] : "?";
}

int sbx_drift_kind_of(const char *name)
{
	for (int k = 0; k < SBX_DRIFT_N_KINDS; k++)
		if (strcmp(kind_names[k], name) == 0)
			return k;
	return -1;
}

struct rd {
	yaml_document_t *doc;
	sbx_yaml_err_fn *err;
	void *ctx;
};

__attribute__((format(printf, 3, 4)))
static void fail(struct rd *R, const yaml_node_t *n, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	R->err(R->ctx, n->start_mark, msg);
}

static yaml_node_t *node(struct rd *R, yaml_node_item_t i)
{
	return yaml_document_get_node(R->doc, i);
}

/* The text of a non-empty scalar without a NUL, or NULL after saying so. */
static const char *text(struct rd *R, const yaml_node_t *n, const char *key, const char *want)
{
	const char *s;

	if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.length == 0) {
		fail(R, n, "%s must be %s", key, want);
		return NULL;
	}
	s = (const char *)n->data.scalar.value;
	if (strlen(s) != n->data.scalar.length) {
		fail(R, n, "%s contains a NUL character", key);
		return NULL;
	}
	return s;
}

static bool is_seq(struct rd *R, const yaml_node_t *n, const char *key, const char *want)
{
	if (n && n->type == YAML_SEQUENCE_NODE)
		return true;
	fail(R, n, "%s must be a list of %s", key, want);
	return false;
}

static bool store(struct rd *R, const yaml_node_t *n, const char *key, char *dst, size_t cap,
		  const char *s)
{
	if (strlen(s) >= cap) {
		fail(R, n, "%s is too long (at most %zu bytes)", key, cap - 1);
		return false;
	}
	memcpy(dst, s, strlen(s) + 1);
	return true;
}

static void abs_path(struct rd *R, const yaml_node_t *n, const char *key, char *dst)
{
	const char *s = text(R, n, key, "an absolute path");

	if (!s)
		return;
	if (s[0] != '/') {
		fail(R, n, "%s must be an absolute path, not '%s'", key, s);
		return;
	}
	(void)store(R, n, key, dst, SBX_SETTINGS_PATH_MAX, s);
}

static void interval(struct rd *R, const yaml_node_t *n, struct sbx_drift_conf *c)
{
	const char *s = text(R, n, "interval", "a duration (e.g. 15m)");
	char why[160];
	int64_t d;

	if (!s)
		return;
	if (sbx_duration_parse(s, &d, why, sizeof(why)) < 0) {
		fail(R, n, "interval: %s", why);
		return;
	}
	if (d < DRIFT_MIN_INTERVAL) {
		fail(R, n, "interval must be at least 1m");
		return;
	}
	c->interval = d;
}

static void watch_groups(struct rd *R, yaml_node_t *n, struct sbx_drift_conf *c)
{
	c->n_watch_groups = 0;
	if (!is_seq(R, n, "watch_groups", "unix group names"))
		return;
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
	     it++) {
		yaml_node_t *item = node(R, *it);
		const char *s = text(R, item, "a watch_groups item", "a group name");

		if (!s)
			continue;
		if (!sbx_name_valid(s)) {
			fail(R, item, "'%s' is not a valid group name", s);
			continue;
		}
		if (c->n_watch_groups == SBX_DRIFT_MAX_GROUPS) {
			fail(R, item, "watch_groups has more than %d groups", SBX_DRIFT_MAX_GROUPS);
			return;
		}
		(void)store(R, item, "watch_groups", c->watch_groups[c->n_watch_groups++], 65, s);
	}
}

/* sudoers and authorized_keys: lists of paths (or patterns). */
static size_t paths(struct rd *R, yaml_node_t *n, const char *key,
		    char (*dst)[SBX_SETTINGS_PATH_MAX], bool patterns)
{
	size_t k = 0;

	if (!is_seq(R, n, key, patterns ? "path patterns" : "absolute paths"))
		return 0;
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
	     it++) {
		yaml_node_t *item = node(R, *it);
		const char *s = text(R, item, key, "a path");

		if (!s)
			continue;
		if (patterns && strcmp(s, "sshd") != 0 && strncmp(s, "%h/", 3) != 0 && s[0] != '/') {
			fail(R, item, "%s: '%s' must start with / or %%h/, or be sshd", key, s);
			continue;
		}
		if (!patterns && s[0] != '/') {
			fail(R, item, "%s: '%s' is not an absolute path", key, s);
			continue;
		}
		if (k == SBX_DRIFT_MAX_PATHS) {
			fail(R, item, "%s has more than %d entries", key, SBX_DRIFT_MAX_PATHS);
			break;
		}
		if (store(R, item, key, dst[k], SBX_SETTINGS_PATH_MAX, s))
			k++;
	}
	return k;
}

static bool action_of(struct rd *R, const yaml_node_t *n, const char *key,
		      enum sbx_drift_action *a)
{
	const char *s = text(R, n, key, "report or remove");

	if (!s)
		return false;
	if (strcmp(s, "report") == 0)
		*a = SBX_DRIFT_REPORT;
	else if (strcmp(s, "remove") == 0)
		*a = SBX_DRIFT_REMOVE;
	else {
		fail(R, n, "%s must be report or remove, not '%s'", key, s);
		return false;
	}
	return true;
}

/* remediate: ACTION (for every kind), or { KIND: ACTION, ... }.  Only
 * group membership can be removed: nothing else is sbx's to change. */
static void remediate(struct rd *R, yaml_node_t *n, struct sbx_drift_conf *c)
{
	enum sbx_drift_action a;

	if (n->type == YAML_SCALAR_NODE) {
		if (!action_of(R, n, "remediate", &a))
			return;
		c->remediate[SBX_DRIFT_GROUP] = a;
		return;
	}
	if (n->type != YAML_MAPPING_NODE) {
		fail(R, n, "remediate must be report, remove, or a mapping of kinds to them");
		return;
	}
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = node(R, p->key), *v = node(R, p->value);
		const char *key = text(R, k, "a remediate key", "a kind of finding");
		int kind;

		if (!key)
			continue;
		kind = sbx_drift_kind_of(key);
		if (kind < 0) {
			fail(R, k, "unknown kind '%s' in remediate (the kinds are group, sudoers, "
			     "authorized_keys, session, grant and file)", key);
			continue;
		}
		if (!action_of(R, v, key, &a))
			continue;
		if (a == SBX_DRIFT_REMOVE && kind != SBX_DRIFT_GROUP) {
			fail(R, v, "remediate: %s can only be reported; remove takes a user out of "
			     "a role's unix group (kind group) and nothing else", key);
			continue;
		}
		c->remediate[kind] = a;
	}
}

static void defaults(struct sbx_drift_conf *c)
{
	static const char *const watch[] = { "sudo", "wheel", "adm", "root" };

	memset(c, 0, sizeof(*c));
	c->interval = DRIFT_DEFAULT_INTERVAL;
	for (size_t i = 0; i < sizeof(watch) / sizeof(watch[0]); i++)
		snprintf(c->watch_groups[c->n_watch_groups++], 65, "%s", watch[i]);
	snprintf(c->group_file, sizeof(c->group_file), "/etc/group");
	snprintf(c->passwd_file, sizeof(c->passwd_file), "/etc/passwd");
	snprintf(c->sshd_config, sizeof(c->sshd_config), "/etc/ssh/sshd_config");
	snprintf(c->utmp_file, sizeof(c->utmp_file), "/var/run/utmp");
	snprintf(c->sudoers[c->n_sudoers++], SBX_SETTINGS_PATH_MAX, "/etc/sudoers");
	snprintf(c->sudoers[c->n_sudoers++], SBX_SETTINGS_PATH_MAX, "/etc/sudoers.d");
	snprintf(c->authorized_keys[c->n_authorized_keys++], SBX_SETTINGS_PATH_MAX,
		 "%%h/.ssh/authorized_keys");
	snprintf(c->authorized_keys[c->n_authorized_keys++], SBX_SETTINGS_PATH_MAX, "sshd");
}

/* A key given twice: the loader's other sections say so too. */
static bool seen_before(struct rd *R, const yaml_node_t *map, const yaml_node_pair_t *upto,
			const char *key)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < upto; p++) {
		yaml_node_t *k = node(R, p->key);

		if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
			return true;
	}
	return false;
}

void sbx_policy_drift_load(yaml_document_t *doc, yaml_node_t *n, struct sbx_drift_conf *c,
			   sbx_yaml_err_fn *err, void *ctx)
{
	struct rd R = { doc, err, ctx };

	defaults(c);
	if (!n)
		return;
	c->enabled = true;
	/* "drift:" alone, or "drift: {}": every default */
	if (n->type == YAML_SCALAR_NODE && n->data.scalar.length == 0)
		return;
	if (n->type != YAML_MAPPING_NODE) {
		fail(&R, n, "drift must be a mapping");
		return;
	}
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = node(&R, p->key), *v = node(&R, p->value);
		const char *key = text(&R, k, "a key", "a name");

		if (!key)
			continue;
		if (seen_before(&R, n, p, key)) {
			fail(&R, k, "duplicate key '%s'", key);
			continue;
		}
		if (strcmp(key, "interval") == 0)
			interval(&R, v, c);
		else if (strcmp(key, "watch_groups") == 0)
			watch_groups(&R, v, c);
		else if (strcmp(key, "group_file") == 0)
			abs_path(&R, v, key, c->group_file);
		else if (strcmp(key, "passwd_file") == 0)
			abs_path(&R, v, key, c->passwd_file);
		else if (strcmp(key, "sshd_config") == 0)
			abs_path(&R, v, key, c->sshd_config);
		else if (strcmp(key, "utmp_file") == 0)
			abs_path(&R, v, key, c->utmp_file);
		else if (strcmp(key, "sudoers") == 0)
			c->n_sudoers = paths(&R, v, key, c->sudoers, false);
		else if (strcmp(key, "authorized_keys") == 0)
			c->n_authorized_keys = paths(&R, v, key, c->authorized_keys, true);
		else if (strcmp(key, "remediate") == 0)
			remediate(&R, v, c);
		else
			fail(&R, k, "unknown key '%s' in drift (it has interval, watch_groups, "
			     "group_file, passwd_file, sshd_config, utmp_file, sudoers, authorized_keys "
			     "and remediate)", key);
	}
}

