/*
 * The live record stream: the TAIL op (docs/protocol.md, "Audit: the live
 * record stream").  Every record the broker appends reaches sbx_tail_on_record
 * (broker.c: features_on_record); it is kept in a ring of the last records
 * and, once durable, pushed to every connection that follows (TAIL with
 * FLAGS SBX_TAIL_FOLLOW) and may see it.  Owned by the event-loop thread,
 * but for the queues of text followers handed to the writer thread
 * (sbx_tail_sub_hand_over), which it shares with that thread.
 *
 * Bounds: at most SBX_TAIL_SUBS_PER_UID followers per uid and
 * SBX_TAIL_SUBS_MAX in all; a follower more than SBX_TAIL_BUF_MAX bytes
 * behind (a reader that does not read) is dropped with a last frame that
 * says so.  The loop never blocks on a follower: everything is sent with
 * MSG_DONTWAIT, by the loop or by the writer thread.
 */
#ifndef SBX_TAIL_H
#define SBX_TAIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct sbx_broker;
struct sbx_call;

#define SBX_TAIL_RING 1024          /* records kept for TAIL's backlog (COUNT) */
#define SBX_TAIL_SUBS_PER_UID 4     /* followers per uid (root: 16) */
#define SBX_TAIL_SUBS_ROOT 16
#define SBX_TAIL_SUBS_MAX 64        /* followers in all */
#define SBX_TAIL_BUF_MAX (1u << 20) /* bytes queued for one follower */
#define SBX_TAIL_COUNT_DEFAULT 10

struct sbx_tail;
struct sbx_tail_sub;

/* A record was appended (journal first, then memory): keep it.  Creates
 * b->tail on first use. */
void sbx_tail_on_record(struct sbx_broker *b, const json_t *rec);

/* The op handler (dispatch.c's table). */
void sbx_op_tail(struct sbx_broker *b, struct sbx_call *c);

/* After a request was handled on a connection: the follower the TAIL op
 * just made for it, or NULL.  The server keeps it with the connection
 * and gives it back with sbx_tail_sub_close. */
struct sbx_tail_sub *sbx_tail_claim(struct sbx_tail *t);

/* Queue every record durable now for every follower that may see it
 * (dropping followers too far behind).  Once per loop pass. */
void sbx_tail_pump(struct sbx_tail *t, uint64_t durable_seq, int64_t now_ms);

/* Send what a follower has queued, without blocking.  0 all sent, 1 more
 * to send (watch for EPOLLOUT), -1 close the connection (dropped and its
 * last frame sent or timed out, or the peer is gone). */
int sbx_tail_sub_send(struct sbx_tail_sub *s, int fd, int64_t now_ms);

void sbx_tail_sub_close(struct sbx_tail *t, struct sbx_tail_sub *s);

void sbx_tail_free(struct sbx_tail *t);

/* ---- text followers: the same stream for another transport ---------------
 * The HTTP API's GET /v1/events (broker/api/events.c) follows the journal
 * with the same visibility rule, filters, ring, queue bound and drop as a
 * TAIL connection, but its queue holds Server-Sent Events text: one event
 * per record ("id: SEQ", "data: RECORD"), "event: gap" when a resume asks
 * for records that left the ring, "event: dropped" as the last one of a
 * reader that fell SBX_TAIL_BUF_MAX behind.  Text followers do not count
 * against the TAIL op's caps: their owner bounds them. */
struct sbx_tail_spec {
	const char *person;     /* who follows: sees records with them as user/actor */
	bool admin;             /* sees every record */
	uid_t uid;
	const char *user, *actor, *role, *event, *host, *outcome; /* NULL or "": any */
	bool has_id;
	uint32_t id;
};

/* A follower from after_seq on (resuming: from the ring), or, with
 * after_seq 0, the last count records it may see and then the new ones.
 * wake(arg) is called (from sbx_tail_pump) whenever text was queued.
 * NULL when out of memory.  Give it back with sbx_tail_sub_close. */
struct sbx_tail_sub *sbx_tail_follow_text(struct sbx_broker *b, const struct sbx_tail_spec *spec,
					  uint64_t after_seq, uint32_t count,
					  void (*wake)(void *arg), void *arg);
/* Take up to max queued bytes into buf; how many (0: nothing queued). */
size_t sbx_tail_sub_read(struct sbx_tail_sub *s, char *buf, size_t max);
/* Dropped, and its last event taken: the stream is over. */
bool sbx_tail_sub_done(const struct sbx_tail_sub *s);
bool sbx_tail_sub_dropped(const struct sbx_tail_sub *s);
/* Queue an SSE comment line (a keep-alive); 0, or -1 out of memory. */
int sbx_tail_sub_note(struct sbx_tail_sub *s, const char *comment);
/* Bytes taken by sbx_tail_sub_read so far. */
uint64_t sbx_tail_sub_taken(const struct sbx_tail_sub *s);

/* The writer thread.  A text follower whose transport is a plain socket
 * may be handed to it: from then on its queue goes to fd (the thread's
 * own dup of it) from a thread of its own, with non-blocking sends, and
 * the loop that answers checks spends no time on them; the loop still
 * decides what is queued and when the follower is dropped.  Hand it over
 * only at a point where the transport has written everything it had for
 * the socket (its headers and every byte taken with sbx_tail_sub_read),
 * and do not read it or write to fd meanwhile.  0, or -errno (then the
 * transport goes on sending it itself; -EMFILE also when the thread's
 * copy of fd would take the last quarter of RLIMIT_NOFILE). */
int sbx_tail_sub_hand_over(struct sbx_tail *t, struct sbx_tail_sub *s, int fd);
/* 0: not handed over; 1: handed over, streaming; -1: handed over and its
 * stream is over (the reader is gone, or it was dropped and its last
 * event is out or its grace has passed): take it back and end it. */
int sbx_tail_sub_handed(struct sbx_tail *t, struct sbx_tail_sub *s, int64_t now_ms);
/* The thread no longer touches s or its fd when this returns (also done
 * by sbx_tail_sub_close).  Bytes it had not sent stay queued. */
void sbx_tail_sub_take_back(struct sbx_tail *t, struct sbx_tail_sub *s);
/* fn(arg) after every sbx_tail_pump: the place to hand queued text to the
 * transport (not from inside wake, while the pump walks its followers). */
void sbx_tail_set_after_pump(struct sbx_broker *b, void (*fn)(void *arg), void *arg);

#endif
