/*
 * The access review report in Markdown, CSV, JSON and HTML (docs/review.md
 * lists the columns).  Every format carries the same numbers: the text
 * formats are rendered from the rows, JSON and HTML too.  Text that came
 * from outside (reasons, tickets, comments, names) is sanitized for md
 * and csv and HTML-escaped for html; JSON keeps it as recorded.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "output.h"
#include "review.h"
#include "text.h"
#include "timeutil.h"

#define US 1000000LL

int sbx_review_parse_format(const char *s, enum sbx_review_format *f)
{
	static const char *const names[] = { "md", "csv", "json", "html" };

	for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*f = (enum sbx_review_format)i;
			return 0;
		}
	}
	return -EINVAL;
}

static const char *access_name(enum sbx_review_access a)
{
	return a == SBX_RA_STANDING ? "standing" : a == SBX_RA_ELIGIBLE ? "eligible" : "none";
}

static void fmt_time(int64_t us, char *buf, size_t len)
{
	char t[SBX_RFC3339_LEN];

	if (!us) {
		snprintf(buf, len, "never");
		return;
	}
	sbx_format_rfc3339(us / US, t);
	snprintf(buf, len, "%s", t);
}

static void fmt_hours(int64_t secs, char *buf, size_t len)
{
	snprintf(buf, len, "%lld.%lld", (long long)(secs / 3600),
		 (long long)((secs % 3600) * 10 / 3600));
}

static void fmt_dur(int64_t secs, char *buf, size_t len)
{
	if (secs <= 0)
		snprintf(buf, len, "0s");
	else
		sbx_duration_format(secs, buf, len);
}

/* "a (2); b (1)" with "; +N more" when some were not kept. */
static void fmt_texts(const struct sbx_review_text *v, size_t n, unsigned more, char *buf,
		      size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s (%u)", i ? "; " : "", v[i].s, v[i].n);
	if (more && o < len)
		snprintf(buf + o, len - o, "%s+%u more", n ? "; " : "", more);
}

static void fmt_flags(unsigned flags, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (unsigned b = 0; b < SBX_REVIEW_N_FLAGS && o < len; b++)
		if (flags & (1u << b))
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? " " : "",
					      sbx_review_flag_name(b));
}

/* One row as the text columns (md, csv, html share them). */
enum col {
	C_ROLE, C_USER, C_ACCESS, C_SOURCE, C_GRANTS, C_HOURS, C_AT_MAX, C_AUTO, C_APPROVERS,
	C_WAIT_AVG, C_WAIT_MAX, C_REASONS, C_TICKETS, C_LOGINS, C_LAST_LOGIN, C_SESSIONS,
	C_LAST_SESSION, C_COMMANDS, C_DRIFT, C_DECISION, C_FLAGS, N_COLS,
};
static const char *const col_names[N_COLS] = {
	"role", "user", "access", "source", "grants", "hours", "at_max", "auto_approved",
	"approvers", "wait_avg", "wait_max", "reasons", "tickets", "logins", "last_login",
	"sessions", "last_session", "sudo_commands", "drift_open", "last_decision", "flags",
};

#define CELL 1024

static void row_cells(const struct sbx_review_row *r, char cells[N_COLS][CELL])
{
	char t[SBX_RFC3339_LEN + 8];

	snprintf(cells[C_ROLE], CELL, "%s", r->role);
	snprintf(cells[C_USER], CELL, "%s", r->user);
	snprintf(cells[C_ACCESS], CELL, "%s", access_name(r->access));
	snprintf(cells[C_SOURCE], CELL, "%s", r->source ? r->source : "journal only");
	snprintf(cells[C_GRANTS], CELL, "%u", r->grants);
	fmt_hours(r->grant_secs, cells[C_HOURS], CELL);
	snprintf(cells[C_AT_MAX], CELL, "%u", r->at_max);
	snprintf(cells[C_AUTO], CELL, "%u", r->auto_approved);
	fmt_texts(r->approvers, r->n_approvers, r->more_approvers, cells[C_APPROVERS], CELL);
	if (r->approved) {
		fmt_dur(r->wait_secs_sum / r->approved, cells[C_WAIT_AVG], CELL);
		fmt_dur(r->wait_secs_max, cells[C_WAIT_MAX], CELL);
	} else {
		snprintf(cells[C_WAIT_AVG], CELL, "-");
		snprintf(cells[C_WAIT_MAX], CELL, "-");
	}
	fmt_texts(r->reasons, r->n_reasons, r->more_reasons, cells[C_REASONS], CELL);
	fmt_texts(r->tickets, r->n_tickets, r->more_tickets, cells[C_TICKETS], CELL);
	snprintf(cells[C_LOGINS], CELL, "%u", r->logins);
	fmt_time(r->last_login_us, cells[C_LAST_LOGIN], CELL);
	snprintf(cells[C_SESSIONS], CELL, "%u", r->sessions);
	fmt_time(r->last_session_us, cells[C_LAST_SESSION], CELL);
	snprintf(cells[C_COMMANDS], CELL, "%u", r->commands);
	snprintf(cells[C_DRIFT], CELL, "%u", r->drift_open);
	if (r->decided_us) {
		fmt_time(r->decided_us, t, sizeof(t));
		snprintf(cells[C_DECISION], CELL, "%s by %s at %s%s%s",
			 r->revoked ? "revoked" : "certified", r->decided_by ? r->decided_by : "?",
			 t, r->decision_comment ? ": " : "",
			 r->decision_comment ? r->decision_comment : "");
	} else {
		snprintf(cells[C_DECISION], CELL, "-");
	}
	fmt_flags(r->flags, cells[C_FLAGS], CELL);
}

/* ---- JSON ---- */

static json_t *texts_json(const struct sbx_review_text *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_pack("{s:s, s:i}", "text", v[i].s, "count", v[i].n));
	return a;
}

static json_t *time_json(int64_t us)
{
	char t[SBX_RFC3339_LEN];

	if (!us)
		return json_null();
	sbx_format_rfc3339(us / US, t);
	return json_string(t);
}

static json_t *flags_json(unsigned flags)
{
	json_t *a = json_array();

	for (unsigned b = 0; a && b < SBX_REVIEW_N_FLAGS; b++)
		if (flags & (1u << b))
			json_array_append_new(a, json_string(sbx_review_flag_name(b)));
	return a;
}

static json_t *row_json(const struct sbx_review_row *r)
{
	json_t *o = json_object(), *d = json_null();

	if (!o)
		return NULL;
	if (r->decided_us)
		d = json_pack("{s:s, s:o, s:s?, s:s?}", "decision", r->revoked ? "revoked" : "certified",
			      "at", time_json(r->decided_us), "by", r->decided_by, "comment",
			      r->decision_comment);
	json_object_set_new(o, "role", json_string(r->role));
	json_object_set_new(o, "user", json_string(r->user));
	json_object_set_new(o, "access", json_string(access_name(r->access)));
	json_object_set_new(o, "source", r->source ? json_string(r->source) : json_null());
	json_object_set_new(o, "grants", json_integer(r->grants));
	json_object_set_new(o, "grant_seconds", json_integer(r->grant_secs));
	json_object_set_new(o, "at_max_duration", json_integer(r->at_max));
	json_object_set_new(o, "auto_approved", json_integer(r->auto_approved));
	json_object_set_new(o, "approved", json_integer(r->approved));
	json_object_set_new(o, "approvers", texts_json(r->approvers, r->n_approvers));
	json_object_set_new(o, "wait_avg_seconds",
			    r->approved ? json_integer(r->wait_secs_sum / r->approved) : json_null());
	json_object_set_new(o, "wait_max_seconds",
			    r->approved ? json_integer(r->wait_secs_max) : json_null());
	json_object_set_new(o, "reasons", texts_json(r->reasons, r->n_reasons));
	json_object_set_new(o, "more_reasons", json_integer(r->more_reasons));
	json_object_set_new(o, "tickets", texts_json(r->tickets, r->n_tickets));
	json_object_set_new(o, "more_tickets", json_integer(r->more_tickets));
	json_object_set_new(o, "logins", json_integer(r->logins));
	json_object_set_new(o, "last_login", time_json(r->last_login_us));
	json_object_set_new(o, "sessions", json_integer(r->sessions));
	json_object_set_new(o, "last_session", time_json(r->last_session_us));
	json_object_set_new(o, "sudo_commands", json_integer(r->commands));
	json_object_set_new(o, "drift_open", json_integer(r->drift_open));
	json_object_set_new(o, "last_decision", d ? d : json_null());
	json_object_set_new(o, "flags", flags_json(r->flags));
	return o;
}

static json_t *role_json(const struct sbx_review_role *r, unsigned weeks)
{
	json_t *o = json_object(), *w = json_array();

	for (unsigned i = 0; w && i < weeks; i++)
		json_array_append_new(w, json_integer(r->week[i]));
	json_object_set_new(o, "role", json_string(r->name));
	json_object_set_new(o, "in_policy", json_boolean(r->in_policy));
	json_object_set_new(o, "sensitive", json_boolean(r->sensitive));
	json_object_set_new(o, "review_every_seconds",
			    r->review_every ? json_integer(r->review_every) : json_null());
	json_object_set_new(o, "last_review", time_json(r->last_review_us));
	json_object_set_new(o, "next_due", time_json(r->next_due_us));
	json_object_set_new(o, "overdue", json_boolean(r->overdue));
	json_object_set_new(o, "grants", json_integer(r->grants));
	json_object_set_new(o, "grants_per_week", w);
	return o;
}

/* Everything but the rows. */
static json_t *head_json(const struct sbx_review *rv)
{
	const struct sbx_review_opts *o = sbx_review_opts_of(rv);
	struct sbx_review_summary s;
	json_t *j, *roles = json_array(), *fc = json_object();

	sbx_review_summary(rv, &s);
	for (size_t i = 0; roles && i < sbx_review_n_roles(rv); i++)
		json_array_append_new(roles, role_json(sbx_review_role_at(rv, i), s.weeks));
	for (unsigned b = 0; fc && b < SBX_REVIEW_N_FLAGS; b++)
		json_object_set_new(fc, sbx_review_flag_name(b), json_integer(s.flag_count[b]));
	j = json_pack("{s:{s:o, s:o}, s:o, s:s?, s:s?, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, "
		      "s:I, s:o, s:o}, s:o}",
		      "period", "since", time_json(o->since_us), "until", time_json(o->until_us),
		      "as_of", time_json(o->now_us), "role", o->role, "user", o->user,
		      "unused_after_seconds", (json_int_t)o->unused_after,
		      "summary", "rows", (json_int_t)s.rows, "flagged", (json_int_t)s.flagged,
		      "roles", (json_int_t)s.roles, "grants", (json_int_t)s.grants,
		      "grant_seconds", (json_int_t)s.grant_secs, "logins", (json_int_t)s.logins,
		      "drift_open", (json_int_t)s.drift_open, "flags", fc,
		      "week_starts", time_json(s.week0_us),
		      "roles", roles);
	return j;
}

json_t *sbx_review_to_json(const struct sbx_review *rv)
{
	json_t *j = head_json(rv), *rows = json_array();

	for (size_t i = 0; j && rows && i < sbx_review_n_rows(rv); i++)
		json_array_append_new(rows, row_json(sbx_review_row_at(rv, i)));
	if (!j || !rows || json_object_set_new(j, "rows", rows) < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The same document as sbx_review_to_json, streamed a row at a time:
 * a report of 100,000 rows never sits in memory as one JSON tree. */
static int write_json(FILE *f, const struct sbx_review *rv)
{
	json_t *head = head_json(rv);
	char *text = head ? json_dumps(head, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	size_t len = text ? strlen(text) : 0;
	int ret = -1;

	json_decref(head);
	if (len < 2)
		goto out;
	text[len - 1] = '\0'; /* the closing brace: the rows follow */
	fprintf(f, "%s,\"rows\":[", text);
	for (size_t i = 0; i < sbx_review_n_rows(rv); i++) {
		json_t *r = row_json(sbx_review_row_at(rv, i));
		char *rt = r ? json_dumps(r, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

		json_decref(r);
		if (!rt)
			goto out;
		fprintf(f, "%s\n%s", i ? "," : "", rt);
		free(rt);
	}
	fputs("\n]}\n", f);
	ret = 0;
out:
	free(text);
	return ret;
}

/* ---- Markdown ---- */

/* Cell text for a Markdown table: sanitized, '|' escaped. */
static void md_cell(FILE *f, const char *s)
{
	char san[CELL * 2];

	sbx_sanitize(s, san, sizeof(san));
	fputc(' ', f);
	for (const char *p = san; *p; p++) {
		if (*p == '|' || *p == '\\' || *p == '`' || *p == '<' || *p == '>')
			fputc('\\', f);
		fputc(*p, f);
	}
	fputs(" |", f);
}

/* The cells of one row at a time: 20 KiB, kept off the stack. */
static char cells[N_COLS][CELL];

static void md_rows(FILE *f, const struct sbx_review *rv, bool flagged_only)
{

	fputs("|", f);
	for (int c = 0; c < N_COLS; c++)
		fprintf(f, " %s |", col_names[c]);
	fputs("\n|", f);
	for (int c = 0; c < N_COLS; c++)
		fputs("---|", f);
	fputs("\n", f);
	for (size_t i = 0; i < sbx_review_n_rows(rv); i++) {
		const struct sbx_review_row *r = sbx_review_row_at(rv, i);

		if (flagged_only && !r->flags)
			continue;
		row_cells(r, cells);
		fputs("|", f);
		for (int c = 0; c < N_COLS; c++)
			md_cell(f, cells[c]);
		fputs("\n", f);
	}
}

static void write_md(FILE *f, const struct sbx_review *rv)
{
	const struct sbx_review_opts *o = sbx_review_opts_of(rv);
	struct sbx_review_summary s;
	char a[SBX_RFC3339_LEN], b[SBX_RFC3339_LEN], h[32], d[64];

	sbx_review_summary(rv, &s);
	fmt_time(o->since_us, a, sizeof(a));
	fmt_time(o->until_us, b, sizeof(b));
	fmt_hours(s.grant_secs, h, sizeof(h));
	fprintf(f, "# sbx access review\n\nPeriod: %s to %s\n\n## Summary\n\n", a, b);
	fprintf(f, "- rows: %zu\n- flagged: %zu\n- roles: %zu\n- grants: %u\n- grant hours: %s\n"
		"- logins: %u\n- open drift findings: %u\n", s.rows, s.flagged, s.roles, s.grants,
		h, s.logins, s.drift_open);
	for (unsigned i = 0; i < SBX_REVIEW_N_FLAGS; i++)
		fprintf(f, "- flag %s: %u\n", sbx_review_flag_name(i), s.flag_count[i]);
	fputs("\n## Roles\n\n| role | review_every | last_review | next_due | state | grants |\n"
	      "|---|---|---|---|---|---|\n", f);
	for (size_t i = 0; i < sbx_review_n_roles(rv); i++) {
		const struct sbx_review_role *r = sbx_review_role_at(rv, i);

		if (r->review_every)
			fmt_dur(r->review_every, d, sizeof(d));
		else
			snprintf(d, sizeof(d), "-");
		fmt_time(r->last_review_us, a, sizeof(a));
		fmt_time(r->next_due_us, b, sizeof(b));
		fprintf(f, "| %s | %s | %s | %s | %s | %u |\n", r->name, d, a,
			r->next_due_us ? b : "-",
			!r->in_policy ? "not in policy" : r->overdue ? "overdue"
			: r->review_every ? "ok" : "no review", r->grants);
	}
	fputs("\n## Flagged\n\n", f);
	if (s.flagged)
		md_rows(f, rv, true);
	else
		fputs("Nothing flagged.\n", f);
	fputs("\n## All access\n\n", f);
	md_rows(f, rv, false);
}

/* ---- CSV (RFC 4180, CRLF) ---- */

/* A cell a spreadsheet would take for a formula (= + - @ first: a
 * requester's reason, say) gets a leading ' inside quotes, as in
 * audit export (OWASP's CSV injection advice). */
static void csv_cell(FILE *f, const char *s, bool last)
{
	char san[CELL * 2];
	bool guard;

	sbx_sanitize(s, san, sizeof(san));
	guard = (san[0] == '=' || san[0] == '+' || san[0] == '-' || san[0] == '@') &&
		strcmp(san, "-") != 0; /* the placeholder of an empty cell is no formula */
	if (guard || strpbrk(san, ",\"\r\n")) {
		fputc('"', f);
		if (guard)
			fputc('\'', f);
		for (const char *p = san; *p; p++) {
			if (*p == '"')
				fputc('"', f);
			fputc(*p, f);
		}
		fputc('"', f);
	} else {
		fputs(san, f);
	}
	fputs(last ? "\r\n" : ",", f);
}

static void write_csv(FILE *f, const struct sbx_review *rv)
{

	for (int c = 0; c < N_COLS; c++)
		csv_cell(f, col_names[c], c == N_COLS - 1);
	for (size_t i = 0; i < sbx_review_n_rows(rv); i++) {
		row_cells(sbx_review_row_at(rv, i), cells);
		for (int c = 0; c < N_COLS; c++)
			csv_cell(f, cells[c], c == N_COLS - 1);
	}
}

/* ---- HTML ---- */

static void h(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		switch (ch) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default:
			if (ch < 0x20 || ch == 0x7f)
				fputc('?', f);
			else
				fputc(ch, f);
		}
	}
}

static const char *const palette[] = {
	"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
	"#bcbd22", "#17becf",
};
#define N_PALETTE (sizeof(palette) / sizeof(palette[0]))

/* Stacked bars: one per week, one colour per role, a legend below. */
static void html_chart(FILE *f, const struct sbx_review *rv, const struct sbx_review_summary *s)
{
	unsigned max = 1, W = 760, H = 220, left = 40, bottom = 30, top = 10;
	size_t nroles = sbx_review_n_roles(rv);
	double bw;
	char t[SBX_RFC3339_LEN];

	for (unsigned w = 0; w < s->weeks; w++) {
		unsigned sum = 0;

		for (size_t i = 0; i < nroles; i++)
			sum += sbx_review_role_at(rv, i)->week[w];
		if (sum > max)
			max = sum;
	}
	bw = (double)(W - left - 10) / s->weeks;
	fprintf(f, "<svg id=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%u\" "
		"height=\"%zu\" role=\"img\" aria-label=\"grants per week per role\">\n", W,
		(size_t)H + 20 * ((nroles + 3) / 4) + 10);
	fprintf(f, "<line x1=\"%u\" y1=\"%u\" x2=\"%u\" y2=\"%u\" stroke=\"#333\"/>\n", left,
		H - bottom, W - 10, H - bottom);
	fprintf(f, "<text x=\"%u\" y=\"%u\" font-size=\"11\" text-anchor=\"end\">%u</text>\n",
		left - 4, top + 8, max);
	fprintf(f, "<text x=\"%u\" y=\"%u\" font-size=\"11\" text-anchor=\"end\">0</text>\n",
		left - 4, H - bottom);
	for (unsigned w = 0; w < s->weeks; w++) {
		double y = H - bottom;

		for (size_t i = 0; i < nroles; i++) {
			const struct sbx_review_role *r = sbx_review_role_at(rv, i);
			double hh = (double)r->week[w] * (H - bottom - top) / max;

			if (!r->week[w])
				continue;
			y -= hh;
			fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
				"fill=\"%s\"><title>", left + w * bw + 1, y, bw > 3 ? bw - 2 : bw,
				hh, palette[i % N_PALETTE]);
			h(f, r->name);
			fprintf(f, ": %u</title></rect>\n", r->week[w]);
		}
		if (w % 2 == 0 || s->weeks <= 14) {
			sbx_format_rfc3339((s->week0_us + (int64_t)w * 7 * 86400 * US) / US, t);
			t[10] = '\0';
			fprintf(f, "<text x=\"%.1f\" y=\"%u\" font-size=\"9\" text-anchor=\"middle\">"
				"%s</text>\n", left + w * bw + bw / 2, H - bottom + 14, t + 5);
		}
	}
	for (size_t i = 0; i < nroles; i++) {
		unsigned x = left + (unsigned)(i % 4) * 180, y = H + (unsigned)(i / 4) * 20;

		fprintf(f, "<rect x=\"%u\" y=\"%u\" width=\"12\" height=\"12\" fill=\"%s\"/>"
			"<text x=\"%u\" y=\"%u\" font-size=\"12\">", x, y, palette[i % N_PALETTE],
			x + 16, y + 11);
		h(f, sbx_review_role_at(rv, i)->name);
		fputs("</text>\n", f);
	}
	fputs("</svg>\n", f);
}

static void html_rows(FILE *f, const struct sbx_review *rv, bool flagged_only, const char *id)
{

	fprintf(f, "<table id=\"%s\">\n<thead><tr>", id);
	for (int c = 0; c < N_COLS; c++)
		fprintf(f, "<th>%s</th>", col_names[c]);
	fputs("</tr></thead>\n<tbody>\n", f);
	for (size_t i = 0; i < sbx_review_n_rows(rv); i++) {
		const struct sbx_review_row *r = sbx_review_row_at(rv, i);

		if (flagged_only && !r->flags)
			continue;
		row_cells(r, cells);
		fprintf(f, "<tr%s>", r->flags ? " class=\"flagged\"" : "");
		for (int c = 0; c < N_COLS; c++) {
			fputs("<td>", f);
			h(f, cells[c]);
			fputs("</td>", f);
		}
		fputs("</tr>\n", f);
	}
	fputs("</tbody>\n</table>\n", f);
}

static void write_html(FILE *f, const struct sbx_review *rv)
{
	const struct sbx_review_opts *o = sbx_review_opts_of(rv);
	struct sbx_review_summary s;
	char a[SBX_RFC3339_LEN], b[SBX_RFC3339_LEN], hours[32], d[64];

	sbx_review_summary(rv, &s);
	fmt_time(o->since_us, a, sizeof(a));
	fmt_time(o->until_us, b, sizeof(b));
	fmt_hours(s.grant_secs, hours, sizeof(hours));
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	      "style-src 'unsafe-inline'; img-src data:\">\n"
	      "<title>sbx access review</title>\n<style>\n"
	      "body{font-family:sans-serif;margin:1.5em;color:#111}\n"
	      "table{border-collapse:collapse;font-size:11px;margin-bottom:1.5em}\n"
	      "th,td{border:1px solid #999;padding:2px 4px;text-align:left;vertical-align:top}\n"
	      "th{background:#eee}\ntr.flagged td{background:#fff3cd}\n"
	      "dl.summary{display:grid;grid-template-columns:max-content auto;gap:2px 12px}\n"
	      "dl.summary dt{font-weight:bold}\ndl.summary dd{margin:0}\n"
	      "@media print{body{margin:0}h2{page-break-before:auto}"
	      "tr{page-break-inside:avoid}table{font-size:8px}}\n"
	      "</style>\n</head>\n<body>\n<h1>sbx access review</h1>\n", f);
	fprintf(f, "<p id=\"period\">Period: %s to %s</p>\n", a, b);
	fprintf(f, "<h2>Summary</h2>\n<dl class=\"summary\" id=\"summary\">\n"
		"<dt>rows</dt><dd id=\"s-rows\">%zu</dd>\n"
		"<dt>flagged</dt><dd id=\"s-flagged\">%zu</dd>\n"
		"<dt>roles</dt><dd id=\"s-roles\">%zu</dd>\n"
		"<dt>grants</dt><dd id=\"s-grants\">%u</dd>\n"
		"<dt>grant hours</dt><dd id=\"s-hours\">%s</dd>\n"
		"<dt>logins</dt><dd id=\"s-logins\">%u</dd>\n"
		"<dt>open drift findings</dt><dd id=\"s-drift\">%u</dd>\n", s.rows, s.flagged,
		s.roles, s.grants, hours, s.logins, s.drift_open);
	for (unsigned i = 0; i < SBX_REVIEW_N_FLAGS; i++)
		fprintf(f, "<dt>flag %s</dt><dd id=\"f-%s\">%u</dd>\n", sbx_review_flag_name(i),
			sbx_review_flag_name(i), s.flag_count[i]);
	fputs("</dl>\n<h2>Grants per week per role</h2>\n", f);
	html_chart(f, rv, &s);
	fputs("<h2>Roles</h2>\n<table id=\"roles\">\n<thead><tr><th>role</th><th>review_every"
	      "</th><th>last_review</th><th>next_due</th><th>state</th><th>grants</th></tr>"
	      "</thead>\n<tbody>\n", f);
	for (size_t i = 0; i < sbx_review_n_roles(rv); i++) {
		const struct sbx_review_role *r = sbx_review_role_at(rv, i);

		if (r->review_every)
			fmt_dur(r->review_every, d, sizeof(d));
		else
			snprintf(d, sizeof(d), "-");
		fmt_time(r->last_review_us, a, sizeof(a));
		fmt_time(r->next_due_us, b, sizeof(b));
		fputs("<tr><td>", f);
		h(f, r->name);
		fprintf(f, "</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%u</td></tr>\n",
			d, a, r->next_due_us ? b : "-",
			!r->in_policy ? "not in policy" : r->overdue ? "overdue"
			: r->review_every ? "ok" : "no review", r->grants);
	}
	fputs("</tbody>\n</table>\n<h2>Flagged</h2>\n", f);
	if (s.flagged)
		html_rows(f, rv, true, "flagged");
	else
		fputs("<p id=\"flagged\">Nothing flagged.</p>\n", f);
	fputs("<h2>All access</h2>\n", f);
	html_rows(f, rv, false, "all");
	fputs("<h2>Flags</h2>\n<ul>\n", f);
	for (unsigned i = 0; i < SBX_REVIEW_N_FLAGS; i++)
		fprintf(f, "<li><b>%s</b>: %s</li>\n", sbx_review_flag_name(i),
			sbx_review_flag_text(i));
	fputs("</ul>\n</body>\n</html>\n", f);
}

int sbx_review_write(FILE *f, const struct sbx_review *rv, enum sbx_review_format fmt)
{
	int rc = 0;

	switch (fmt) {
	case SBX_REVIEW_MD:
		write_md(f, rv);
		break;
	case SBX_REVIEW_CSV:
		write_csv(f, rv);
		break;
	case SBX_REVIEW_HTML:
		write_html(f, rv);
		break;
	case SBX_REVIEW_JSON:
		rc = write_json(f, rv);
		break;
	}
	return rc < 0 || ferror(f) ? -1 : 0;
}
