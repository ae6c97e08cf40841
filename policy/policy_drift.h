/*
 * The policy's drift: section and a role's sudo: key, read from the
 * loader's YAML document (policy_load.c calls these; not a public API).
 * docs/policy.md describes every key.
 */
#ifndef SBX_POLICY_DRIFT_H
#define SBX_POLICY_DRIFT_H

#include <yaml.h>

#include "policy.h"

/* Report one problem at a node's position (the loader's error_at). */
typedef void sbx_yaml_err_fn(void *ctx, yaml_mark_t at, const char *msg);

/* drift: into c (its defaults first; n NULL: the section is absent and
 * the scan is off).  Problems go to err. */
void sbx_policy_drift_load(yaml_document_t *doc, yaml_node_t *n, struct sbx_drift_conf *c,
			   sbx_yaml_err_fn *err, void *ctx);

/* The text of a drift kind ("group", "sudoers", ...), and back (-1). */
const char *sbx_drift_kind_name(enum sbx_drift_kind k);
int sbx_drift_kind_of(const char *name);

#endif
