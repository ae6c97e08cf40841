/*
 * prompt mode: when a login is refused, the user is eligible, and the
 * conversation can prompt (keyboard-interactive), offer to file the
 * request right there, then wait (wait=SECONDS) for the approval.
 */
#ifndef PAM_SBX_PROMPT_H
#define PAM_SBX_PROMPT_H

#include <security/pam_modules.h>

#include "pam_sbx_client.h"
#include "pam_sbx_opts.h"

/* a holds the refusal (outcome NO).  On return it holds the final answer:
 * still NO (declined, cannot prompt, denied, not approved in time), YES
 * (approved: the fresh check's answer), or UNREACHABLE/BAD from a broker
 * call on the way (failmode applies to it like to any other call). */
void psbx_prompt(pam_handle_t *pamh, int flags, const struct psbx_opts *o,
		 const struct psbx_conn *conn, const struct psbx_login *login,
		 struct psbx_answer *a);

#endif
