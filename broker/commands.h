/*
 * sudo commands (sbx_sudo.so, docs/sudo.md): what a person ran with sudo,
 * under which grant, and the approval plugin's question.  The ops are
 * root's (sudo's front end runs as root); the person is the real uid of
 * the process at the other end of the socket (SO_PEERCRED's pid), and the
 * groups its credentials hold are read from the same process, never from
 * the request.
 *
 * Records: command.run (before the command runs), command.refused,
 * command.exited.  Each names the grant the command ran under (id, role,
 * reason, ticket, approvers), or via "standing" or "none".
 *
 * Threads: the event-loop thread only.
 */
#ifndef SBX_COMMANDS_H
#define SBX_COMMANDS_H

struct sbx_commands;

#include <jansson.h>
#include <stdint.h>

#include "frame.h"

struct sbx_broker;

/* Free the table of running commands (NULL is fine). */
void sbx_commands_free(struct sbx_commands *t);

/* Put COMMANDINFO records for the latest commands run under grant id
 * (at most SBX_COMMANDS_PER_STATUS, oldest first), as room allows. */
void sbx_commands_put(struct sbx_broker *b, sbx_msg *m, uint32_t id);

/* Every record, live and in the start-up replay: command.run and
 * command.exited keep the list of recent commands. */
void sbx_commands_note(struct sbx_broker *b, const json_t *rec);

/* Commands one person may have recorded a minute: this many times
 * broker.max_changes_per_minute (a script's sudo loop is normal use). */
#define SBX_COMMANDS_BUDGET_FACTOR 10u
/* Running commands remembered for their command.exited. */
#define SBX_COMMANDS_RUNNING_MAX 4096u
/* Recent commands kept for STATUS (all grants together), and how many of
 * one grant's a STATUS reply shows. */
#define SBX_COMMANDS_RECENT_MAX 4096u
#define SBX_COMMANDS_PER_STATUS 20u
/* One-command requests (approve_each) remembered with their command. */
#define SBX_COMMANDS_ASKED_MAX 256u
/* How long an approved one-command request stays usable: the plugin
 * comes back for it at once. */
#define SBX_COMMANDS_APPROVAL_TTL 60

#endif
