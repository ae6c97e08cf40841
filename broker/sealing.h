/*
 * The broker's side of forward-secure sealing (journal/seal.h has the
 * cryptography, docs/audit.md "Sealing" the format): at the end of every
 * epoch (audit.seal_every), at start-up and at a clean stop, append a
 * journal.sealed record made with the current epoch's key, make it
 * durable, then evolve the key and overwrite the key file.
 *
 * Sealing is on when <state_dir>/seal.key exists (sbxctl audit init).
 * Threads: the event loop's only.
 */
#ifndef SBX_BROKER_SEALING_H
#define SBX_BROKER_SEALING_H

#include <jansson.h>
#include <stddef.h>

struct sbx_broker;
struct sbx_sealing;

/* Before the journal is opened, so the replay can report seals to it. */
struct sbx_sealing *sbx_sealing_new(void);
void sbx_sealing_free(struct sbx_sealing *s);
/* Each replayed record: remembers the last seal. */
void sbx_sealing_replay(struct sbx_sealing *s, const json_t *rec);
/* After the replay, before anything else is recorded: read the key file,
 * record a key replaced by `audit init --force`, and seal the epoch that
 * was open when the broker last stopped (the tail a crash left unsealed,
 * or nothing; either way the downtime ends that epoch).  0, or -1 with
 * why (the broker does not start). */
int sbx_sealing_start(struct sbx_broker *b, char *why, size_t whylen);
/* Every loop pass: seal the epoch once audit.seal_every has passed. */
void sbx_sealing_tick(struct sbx_broker *b);
/* A clean stop, after the last record: seal what is open. */
void sbx_sealing_stop(struct sbx_broker *b);

#endif
