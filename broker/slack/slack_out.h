/*
 * Outgoing HTTP(S) posts from the broker's event loop, with a curl multi
 * handle whose sockets sit in the caller's private epoll set (tagged
 * SLACK_TAG_CURL): a slow or dead server never blocks the broker.  It
 * posts a JSON body and reports what happened; what is worth posting,
 * and the durable outbox around it (queued record, durable, retried with
 * slack_backoff_ms, delivered record), belongs to the caller.
 *
 * Two callers: Slack (slack.c) and the audit checkpoint collector
 * (broker/checkpoint.c).  Threads: the event loop's only.
 */
#ifndef SBX_SLACK_OUT_H
#define SBX_SLACK_OUT_H

#include <stddef.h>
#include <stdint.h>

/* Private epoll tags: kind in the high half, fd in the low half. */
enum { SLACK_TAG_TIMER = 1, SLACK_TAG_MHD = 2, SLACK_TAG_CURL = 3 };
#define SLACK_TAG(kind, fd) (((uint64_t)(kind) << 32) | (uint32_t)(fd))

struct slack_result {
	long status;          /* HTTP status, 0 when none came */
	int64_t retry_after;  /* seconds from Retry-After, 0 when none */
	char error[256];      /* transport error or the server's answer, for logs */
};
typedef void (*slack_done_fn)(void *arg, const struct slack_result *res);

struct slack_out;
/* Curl's sockets go into ep (tagged SLACK_TAG_CURL). */
struct slack_out *slack_out_new(int ep, char *err, size_t errlen);
/* Trust only the CA certificates in this PEM file (absolute path; copied)
 * instead of the system's, for every later post.  0 or -1. */
int slack_out_set_ca(struct slack_out *o, const char *ca_file);
/* POST a JSON body; fn(arg) is called from slack_out_process once it is
 * done, one way or the other (never from inside this call). */
int slack_out_post(struct slack_out *o, const char *url, const char *body, int64_t timeout_s,
		   slack_done_fn fn, void *arg);
void slack_out_socket(struct slack_out *o, int fd, uint32_t events);
void slack_out_timeout(struct slack_out *o);
void slack_out_process(struct slack_out *o);
/* Monotonic ms at which curl wants slack_out_timeout, or INT64_MAX. */
int64_t slack_out_deadline(const struct slack_out *o);
size_t slack_out_active(const struct slack_out *o);
/* Abandons what is in flight (no callbacks). */
void slack_out_free(struct slack_out *o);

/* A URL the broker may post to: https://, or http:// to a loopback
 * address (a local relay, the tests). (slack_util.c) */
int slack_url_ok(const char *url, char *why, size_t whylen);

/* Delay before retry number attempt (1 = after the first failure):
 * 1 s, 2 s, 4 s, ... at most 5 minutes. (slack_util.c) */
int64_t slack_backoff_ms(unsigned attempt);

#endif
