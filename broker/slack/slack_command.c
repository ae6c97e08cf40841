/*
 * The /sbx slash command: asking for access, and seeing one's requests,
 * from Slack, for people who cannot reach the host's shell yet.  Slack's
 * signature and replay window are checked before (slack_http.c); the
 * Slack user is mapped to a person of the policy through slack_id, as
 * for the buttons; the request itself is sbx_broker_request, as from
 * sbx-request, and its records say "via": "slack" and the Slack user.
 *
 *   /sbx request ROLE [for] DUR REASON...
 *   /sbx status
 *   /sbx help
 */
#include "config.h"

#include "slack_int.h"

#include "duration.h"
#include "log.h"
#include "text.h"
#include "timeutil.h"

#include <stdio.h>
#include <string.h>

#define USAGE "Usage: /sbx request ROLE for DURATION REASON (e.g. /sbx request sandbox-admin " \
	      "for 1h restart the stuck import), /sbx status, /sbx help."

/* The next word of *p into w (at most len - 1 bytes); *p moves past it. */
static const char *word(const char **p, char *w, size_t len)
{
	size_t n;

	*p += strspn(*p, " \t");
	n = strcspn(*p, " \t");
	if (n >= len)
		n = len - 1;
	memcpy(w, *p, n);
	w[n] = '\0';
	*p += strcspn(*p, " \t");
	*p += strspn(*p, " \t");
	return w;
}

static void status_of(struct sbx_broker *b, const char *person, char *msg, size_t msglen)
{
	size_t n = sbx_state_count(b->state), off;
	int shown = 0;

	off = (size_t)snprintf(msg, msglen, "%s on %s:", person, b->policy->broker.host);
	for (size_t i = 0; i < n && off < msglen; i++) {
		const struct sbx_req *r = sbx_state_at(b->state, i);
		char when[SBX_RFC3339_LEN];

		if (!r || strcmp(r->user, person) != 0 ||
		    (r->state != SBX_REQ_PENDING && r->state != SBX_REQ_ACTIVE))
			continue;
		sbx_format_rfc3339(r->state == SBX_REQ_PENDING ? r->lapses_at : r->expires_at, when);
		off += (size_t)snprintf(msg + off, msglen - off, "\n#%u %s: %s (%s %s)", r->id,
					r->role, r->state == SBX_REQ_PENDING ? "pending" : "active",
					r->state == SBX_REQ_PENDING ? "lapses" : "until", when);
		shown++;
	}
	if (!shown)
		snprintf(msg + off, off < msglen ? msglen - off : 0,
			 " no pending requests and no active grants.");
}

int slack_command(struct sbx_slack *s, const char *user_id, const char *text,
		  uint64_t *wait_seq, char *msg, size_t msglen)
{
	struct sbx_broker *b = s->b;
	char verb[16], role[SBX_NAME_MAX + 1], dur[32], why[512], names[160];
	struct sbx_request q = { 0 };
	const char *p = text ? text : "", *person = NULL;
	int64_t secs = 0;
	uint32_t id = 0;
	int n, rc;

	*wait_seq = 0;
	n = slack_person_of(b->policy, user_id, &person, names, sizeof(names));
	if (n != 1) {
		snprintf(msg, msglen, n == 0 ?
			 "Your Slack account (%s) is not linked to anyone in sbx's policy: an admin "
			 "can add slack_id: %s to your entry under users:." :
			 "Your Slack account (%s) is linked to more than one sbx user: an admin "
			 "must fix that.", user_id, user_id);
		return 0;
	}
	word(&p, verb, sizeof(verb));
	if (strcmp(verb, "status") == 0) {
		status_of(b, person, msg, msglen);
		return 0;
	}
	if (strcmp(verb, "request") != 0) {
		snprintf(msg, msglen, "%s", USAGE);
		return 0;
	}
	word(&p, role, sizeof(role));
	word(&p, dur, sizeof(dur));
	if (strcmp(dur, "for") == 0)
		word(&p, dur, sizeof(dur));
	if (!role[0] || !dur[0] || sbx_duration_parse(dur, &secs, why, sizeof(why)) < 0) {
		snprintf(msg, msglen, "%s%s%s", dur[0] && role[0] ? why : "", dur[0] && role[0] ?
			 ". " : "", USAGE);
		return 0;
	}
	if (!sbx_utf8_valid(p, strlen(p)) || strlen(p) > SBX_TEXT_MAX) {
		snprintf(msg, msglen, "The reason must be UTF-8 text of at most %u bytes.",
			 SBX_TEXT_MAX);
		return 0;
	}
	if (b->fleet) {
		snprintf(msg, msglen, "Requests from Slack are not available in a fleet yet: use "
			 "sbx-request.");
		return 0;
	}
	q.person = person;
	q.role = role;
	q.duration = secs;
	q.reason = p[0] ? p : NULL;
	b->record_extra = json_pack("{s:s, s:s}", "via", "slack", "slack_user", user_id);
	sbx_broker_op_begin(b);
	rc = sbx_broker_request(b, &q, &id, wait_seq, why, sizeof(why));
	sbx_broker_op_end(b);
	json_decref(b->record_extra);
	b->record_extra = NULL;
	if (rc < 0) {
		sbx_info("slack: %s (%s) asked for %s: refused: %s", person, user_id, role, why);
		snprintf(msg, msglen, "Not filed: %s.", why);
		return 0;
	}
	sbx_info("slack: %s (%s) asked for %s: request %u, %s", person, user_id, role, id, why);
	snprintf(msg, msglen, "Request #%u: %s asks for %s for %s on %s: %s.", id, person, role, dur,
		 b->policy->broker.host, why);
	return 1;
}
