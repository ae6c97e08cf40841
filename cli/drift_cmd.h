/*
 * sbxctl drift: the broker's open drift findings, and a scan on demand
 * (docs/cli.md; the broker's side is broker/drift.h).
 */
#ifndef SBX_CLI_DRIFT_CMD_H
#define SBX_CLI_DRIFT_CMD_H

#include "client.h"

/* sbxctl drift [--json] */
int sbx_cmd_drift(const struct sbx_cli *c, const struct sbx_cli_args *a);
/* sbxctl drift scan */
int sbx_cmd_drift_scan(const struct sbx_cli *c, const struct sbx_cli_args *a);

#endif
