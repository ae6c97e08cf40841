/*
 * The alerts: section's loader, called by policy_load.c (not a public
 * API: the broker and the CLI see struct sbx_alerts_conf in settings.h).
 * Kept apart from policy_load.c because it is a feature of its own; the
 * loader hands it the YAML document and a way to report FILE:LINE:COL
 * errors.
 */
#ifndef SBX_POLICY_ALERTS_H
#define SBX_POLICY_ALERTS_H

#include <yaml.h>

#include "alerts_conf.h"
#include "policy.h"

typedef void sbx_alerts_error_fn(void *ctx, yaml_mark_t at, const char *msg);

/* n: the alerts: node, or NULL when the file has none.  Role and group
 * names are checked against p (its roles and groups are loaded).  Every
 * problem goes to err; out holds the rules that were valid. */
void sbx_policy_alerts_load(yaml_document_t *doc, yaml_node_t *n, const struct sbx_policy *p,
			    struct sbx_alerts_conf *out, sbx_alerts_error_fn *err, void *ctx);

#endif
