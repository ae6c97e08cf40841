/*
 * The token commands both tools have (docs/api.md): sbx-request token
 * create / list, sbxctl token list / revoke.
 */
#ifndef SBX_CLI_TOKEN_CMD_H
#define SBX_CLI_TOKEN_CMD_H

#include <stdbool.h>
#include <stdint.h>

#include "client.h"

/* Make a token called name living secs, with scopes (NULL: the
 * default); print it once.  Returns the exit code. */
int sbx_token_cmd_create(const struct sbx_cli *c, const char *name, int64_t secs,
			 const char *scopes);
/* List live tokens (all: everyone's, admins only).  Returns the exit code. */
int sbx_token_cmd_list(const struct sbx_cli *c, bool all);
/* Revoke a token by name (of user, or of the caller when NULL) or, when
 * which is 16 hex digits, by id.  Returns the exit code. */
int sbx_token_cmd_revoke(const struct sbx_cli *c, const char *which, const char *user,
			 const char *reason);

#endif
