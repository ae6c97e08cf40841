/*
 * Loading the policy: read the file safely, parse it with libyaml's
 * document API (so every node keeps its position), check every key
 * against a table, resolve references, fold each role's profile in, and
 * report every problem found as FILE:LINE:COL: message.
 *
 * The sections are processed in dependency order (broker, profiles, users,
 * groups, roles), whatever order the file has them in, so a reference can
 * be checked the moment it is read.
 */
#include "config.h"

#include "policy_internal.h"
#include "policy_alerts.h"
#include "policy_drift.h"

#include "duration.h"
#include "readfile.h"
#include "sbx_proto.h"
#include "text.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <yaml.h>

#ifndef SBX_DEFAULT_SOCKET
#define SBX_DEFAULT_SOCKET "/run/sbx/broker.sock"
#endif
#ifndef SBX_DEFAULT_STATE_DIR
#define SBX_DEFAULT_STATE_DIR "/var/lib/sbx"
#endif

/* A directory of 500,000 users written out is about 37 MB; the limit is
 * there so that a wrong path (a log, a disk image) is refused at once. */
#define POLICY_MAX_MIB 64
#define POLICY_MAX_BYTES ((off_t)POLICY_MAX_MIB * 1024 * 1024)
#define DEFAULT_MAX_DURATION (8 * 3600)
#define DEFAULT_DEFAULT_DURATION 3600
#define DEFAULT_APPROVALS 1u
#define COUNT_MAX 1000u                  /* approvals, reason_min_length */
#define GID_MAX_ALLOWED 2147483646LL     /* (gid_t)-1 and above mean "none" */
#define DEFAULT_REVIEW_GRACE (7 * 86400) /* review_grace (docs/review.md) */
#define REVIEW_NEVER (-1)                /* review_every: never */
#define MAX_FIELDS 32

/* ---------------------------------------------------------------------- */
/* Loader state */

/* A role as the file states it.  r holds everything that needs no
 * folding; the rest is what the role says before its profile is folded
 * in.  r moves into the policy once all roles are read. */
struct role_src {
	struct sbx_role r;
	yaml_mark_t mark;            /* of the role's name: rule errors point here */
	int require_reason;          /* -1 = not given */
	char *require_ticket;        /* the role's own pattern */
	yaml_node_t *unix_group;     /* for duplicate gid/name positions */
};

struct loader {
	yaml_document_t doc;
	bool have_doc;
	struct sbx_policy *p;
	struct sbx_settings *settings;
	/* Roles that set revoke_on_ineligible (names borrowed from doc). */
	struct sbx_namemap revoke_on_ineligible;
	struct sbx_policy_index *ix;
	struct sbx_policy_errors *errs;
	size_t n_errors; /* counted even when storing one failed */
	struct role_src *roles;
};

/* One key: value of a mapping, after duplicate keys were dropped. */
struct entry {
	const char *key;
	yaml_node_t *knode, *vnode;
};

/* ---------------------------------------------------------------------- */
/* Errors */

static int errors_append(struct sbx_policy_errors *e, const char *file, int line, int col,
			 const char *msg)
{
	struct sbx_policy_error *v;
	char *m = NULL;

	if (!e->file) {
		e->file = strdup(file ? file : "(policy)");
		if (!e->file)
			return -ENOMEM;
	}
	/* Capacity is implicit: grow at 0, 8, 16, 32, ... */
	if (e->n == 0 || (e->n >= 8 && (e->n & (e->n - 1)) == 0)) {
		size_t cap = e->n ? e->n * 2 : 8;

		v = realloc(e->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		e->v = v;
	}
	m = strdup(msg);
	if (!m)
		return -ENOMEM;
	e->v[e->n].line = line;
	e->v[e->n].col = col;
	e->v[e->n].msg = m;
	e->n++;
	return 0;
}

int sbx_policy_errors_add(struct sbx_policy_errors *e, const char *file, const char *msg)
{
	return errors_append(e, file, 0, 0, msg);
}

static void error_add(struct loader *L, int line, int col, const char *msg)
{
	L->n_errors++;
	/* Out of memory here still fails the load: n_errors counts it. */
	(void)errors_append(L->errs, L->p ? L->p->path : NULL, line, col, msg);
}

/* Messages quote what the file says, so they are sanitized: a policy
 * check must not let a file write escape sequences to a terminal. */
__attribute__((format(printf, 3, 4)))
static void error_at(struct loader *L, yaml_mark_t m, const char *fmt, ...)
{
	char raw[512], msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	sbx_sanitize(raw, msg, sizeof(msg));
	error_add(L, (int)m.line + 1, (int)m.column + 1, msg);
}

static void error_oom(struct loader *L)
{
	error_add(L, 0, 0, "out of memory");
}

struct sorted_error {
	struct sbx_policy_error e;
	size_t seq;
};

static int cmp_error(const void *a, const void *b)
{
	const struct sorted_error *x = a, *y = b;

	if (x->e.line != y->e.line)
		return x->e.line < y->e.line ? -1 : 1;
	if (x->e.col != y->e.col)
		return x->e.col < y->e.col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sections are read in dependency order; people read errors in file
 * order.  Stable, and only the errors this load added. */
static void errors_sort(struct sbx_policy_errors *e, size_t from)
{
	size_t n = e->n - from;
	struct sorted_error *tmp;

	if (n < 2)
		return;
	tmp = calloc(n, sizeof(*tmp));
	if (!tmp)
		return;
	for (size_t i = 0; i < n; i++) {
		tmp[i].e = e->v[from + i];
		tmp[i].seq = i;
	}
	qsort(tmp, n, sizeof(*tmp), cmp_error);
	for (size_t i = 0; i < n; i++)
		e->v[from + i] = tmp[i].e;
	free(tmp);
}

void sbx_policy_errors_print(FILE *out, const struct sbx_policy_errors *e)
{
	if (!out || !e)
		return;
	for (size_t i = 0; i < e->n; i++)
		fprintf(out, "%s:%d:%d: %s\n", e->file ? e->file : "(policy)", e->v[i].line,
			e->v[i].col, e->v[i].msg);
}

void sbx_policy_errors_free(struct sbx_policy_errors *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i].msg);
	free(e->v);
	free(e->file);
	e->v = NULL;
	e->n = 0;
	e->file = NULL;
}

/* ---------------------------------------------------------------------- */
/* Freeing */

static void strlist_free(struct sbx_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void role_free(struct sbx_role *r)
{
	free(r->name);
	free(r->description);
	free(r->profile);
	strlist_free(&r->hosts);
	free(r->unix_group);
	strlist_free(&r->standing_groups);
	strlist_free(&r->standing_users);
	strlist_free(&r->eligible_groups);
	strlist_free(&r->eligible_users);
	strlist_free(&r->approver_groups);
	strlist_free(&r->approver_users);
	strlist_free(&r->sudo_allow);
	strlist_free(&r->sudo_approve_each);
	for (size_t i = 0; i < r->n_ticket_re; i++)
		regfree(&r->ticket_re[i]);
	free(r->ticket_pattern[0]);
	free(r->ticket_pattern[1]);
}

void sbx_policy_free(struct sbx_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_profiles; i++) {
		struct sbx_profile *pf = &p->profiles[i];

		free(pf->name);
		/* Invariant: require_ticket is set only once it compiled. */
		if (pf->require_ticket)
			regfree(&pf->ticket_re);
		free(pf->require_ticket);
	}
	for (size_t i = 0; i < p->n_groups; i++) {
		free(p->groups[i].name);
		strlist_free(&p->groups[i].members);
	}
	for (size_t i = 0; i < p->n_users; i++) {
		free(p->users[i].name);
		free(p->users[i].manager);
		free(p->users[i].email);
		free(p->users[i].slack_id);
	}
	for (size_t i = 0; i < p->n_roles; i++)
		role_free(&p->roles[i]);
	free(p->profiles);
	free(p->groups);
	free(p->users);
	free(p->roles);
	free(p->broker.host);
	free(p->broker.socket);
	free(p->broker.state_dir);
	free(p->broker.admin_group);
	free(p->path);
	sbx_policy_index_free(p->index);
	free(p);
}

/* ---------------------------------------------------------------------- */
/* Nodes */

static yaml_node_t *node_at(struct loader *L, yaml_node_item_t i)
{
	return yaml_document_get_node(&L->doc, i);
}

static const char *scalar_value(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool plain_in(const yaml_node_t *n, const char *const *words)
{
	const char *s = scalar_value(n);

	if (!s || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (; *words; words++)
		if (strcmp(s, *words) == 0)
			return true;
	return false;
}

static const char *const null_words[] = { "", "~", "null", "Null", "NULL", NULL };
static const char *const true_words[] = { "true", "True", "TRUE", "yes", "Yes", "YES",
					  "on", "On", "ON", NULL };
static const char *const false_words[] = { "false", "False", "FALSE", "no", "No", "NO",
					   "off", "Off", "OFF", NULL };

/* An absent value ("key:" with nothing after it) */
static bool is_null(const yaml_node_t *n)
{
	return !n || plain_in(n, null_words);
}

static bool is_bool(const yaml_node_t *n)
{
	return plain_in(n, true_words) || plain_in(n, false_words);
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* What a node is, for "must be X, not Y". */
static const char *node_kind(const yaml_node_t *n, char *buf, size_t len)
{
	const char *s = scalar_value(n);

	if (!n)
		return "empty";
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (is_null(n))
		return "empty";
	if (is_bool(n))
		snprintf(buf, len, "a boolean (%s)", s);
	else if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && all_digits(s))
		snprintf(buf, len, "a number (%.20s)", s);
	else
		snprintf(buf, len, "'%.60s'", s);
	return buf;
}

static void type_error(struct loader *L, const yaml_node_t *n, const char *key,
		       const char *expected)
{
	char kind[96];

	error_at(L, n->start_mark, "%s must be %s, not %s", key, expected,
		 node_kind(n, kind, sizeof(kind)));
}

/* The text of a scalar that is present and has no NUL inside, or NULL
 * after reporting why not. */
static const char *text_of(struct loader *L, const yaml_node_t *n, const char *key,
			   const char *expected)
{
	const char *s = scalar_value(n);

	if (!s || is_null(n)) {
		type_error(L, n, key, expected);
		return NULL;
	}
	if (strlen(s) != n->data.scalar.length) {
		error_at(L, n->start_mark, "%s contains a NUL character", key);
		return NULL;
	}
	return s;
}

static yaml_node_t *map_get(struct loader *L, const yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
	     pr < map->data.mapping.pairs.top; pr++) {
		const char *k = scalar_value(node_at(L, pr->key));

		if (k && strcmp(k, key) == 0)
			return node_at(L, pr->value);
	}
	return NULL;
}

/* The entries of a mapping with unique scalar keys; reports other keys.
 * A missing or empty node is an empty mapping.  Returns the count, or -1
 * when n is not a mapping (reported) or memory ran out. */
static ssize_t entries_of(struct loader *L, yaml_node_t *n, const char *what,
			  struct entry **out)
{
	struct sbx_namemap seen = { 0 };
	struct entry *v = NULL;
	size_t cap, k = 0;
	ssize_t ret = -1;

	*out = NULL;
	if (is_null(n))
		return 0;
	if (n->type != YAML_MAPPING_NODE) {
		type_error(L, n, what, "a mapping");
		return -1;
	}
	cap = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	v = calloc(cap ? cap : 1, sizeof(*v));
	if (!v)
		goto oom;
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
	     pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *kn = node_at(L, pr->key);
		const char *key = scalar_value(kn);
		void *first = NULL;
		int rc;

		if (!key || is_null(kn)) {
			type_error(L, kn, "a key", "a name");
			continue;
		}
		rc = sbx_namemap_put(&seen, NULL, key, kn, &first);
		if (rc < 0)
			goto oom;
		if (rc > 0) {
			error_at(L, kn->start_mark, "duplicate key '%s' (first at line %d)", key,
				 (int)((yaml_node_t *)first)->start_mark.line + 1);
			continue;
		}
		v[k].key = key;
		v[k].knode = kn;
		v[k].vnode = node_at(L, pr->value);
		k++;
	}
	*out = v;
	v = NULL;
	ret = (ssize_t)k;
	goto out;
oom:
	error_oom(L);
out:
	free(v);
	sbx_namemap_free(&seen);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Fields: one table per kind of mapping, one parser per kind of value */

struct field;
typedef void field_parser(struct loader *L, const struct field *f, yaml_node_t *n, void *obj);

struct field {
	const char *key;
	field_parser *parse;
	size_t off;                /* where in obj the value goes */
	const char *required;      /* when set, the key must be there: a hint */
	const struct field *sub;   /* a nested mapping's fields (same obj) */
};

#define AT(obj, f, type) ((type *)(void *)((char *)(obj) + (f)->off))

static void walk_map(struct loader *L, yaml_node_t *n, const struct field *fields, void *obj,
		     const char *what, yaml_mark_t at)
{
	bool seen[MAX_FIELDS] = { false };
	struct entry *e = NULL;
	ssize_t n_e = entries_of(L, n, what, &e);

	for (ssize_t i = 0; i < n_e; i++) {
		size_t k = 0;

		while (fields[k].key && strcmp(fields[k].key, e[i].key) != 0)
			k++;
		if (!fields[k].key) {
			error_at(L, e[i].knode->start_mark, "unknown key '%s' in %s", e[i].key, what);
			continue;
		}
		seen[k] = true;
		fields[k].parse(L, &fields[k], e[i].vnode, obj);
	}
	if (n_e >= 0)
		for (size_t k = 0; fields[k].key; k++)
			if (fields[k].required && !seen[k])
				error_at(L, at, "%s needs %s (%s)", what, fields[k].key,
					 fields[k].required);
	free(e);
}

static char *dup_or_oom(struct loader *L, const char *s)
{
	char *d = strdup(s);

	if (!d)
		error_oom(L);
	return d;
}

static void parse_map(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	walk_map(L, n, f->sub, obj, f->key, n->start_mark);
}

static void parse_text(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "text");

	if (s)
		*AT(obj, f, char *) = dup_or_oom(L, s);
}

/* Checked for its type and then dropped: documentation in the file. */
static void parse_comment(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	(void)text_of(L, n, f->key, "text");
}

static bool name_ok(struct loader *L, const yaml_node_t *n, const char *s, const char *what)
{
	if (sbx_name_valid(s))
		return true;
	error_at(L, n->start_mark,
		 "'%s' is not a valid %s name: use at most %u letters, digits, '.', '_' or '-', "
		 "not starting with '.' or '-'", s, what, SBX_NAME_MAX);
	return false;
}

static void parse_name(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "a name");

	if (s && name_ok(L, n, s, f->key))
		*AT(obj, f, char *) = dup_or_oom(L, s);
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

static bool host_valid(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!host_char(s[n]))
			return false;
	return n > 0 && n <= 253;
}

static void parse_host(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "a host name");

	if (!s)
		return;
	if (!host_valid(s)) {
		error_at(L, n->start_mark, "'%s' is not a valid host name", s);
		return;
	}
	*AT(obj, f, char *) = dup_or_oom(L, s);
}

static void parse_path(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "an absolute path");

	if (!s)
		return;
	if (s[0] != '/') {
		error_at(L, n->start_mark, "%s must be an absolute path, not '%s'", f->key, s);
		return;
	}
	*AT(obj, f, char *) = dup_or_oom(L, s);
}

static bool duration_of(struct loader *L, const struct field *f, yaml_node_t *n, int64_t *out)
{
	char why[160];
	const char *s;

	if (is_bool(n)) {
		type_error(L, n, f->key, "a duration (e.g. 2h)");
		return false;
	}
	s = text_of(L, n, f->key, "a duration (e.g. 2h)");
	if (!s)
		return false;
	if (sbx_duration_parse(s, out, why, sizeof(why)) < 0) {
		error_at(L, n->start_mark, "%s: %s", f->key, why);
		return false;
	}
	return true;
}

static void parse_duration(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	int64_t d;

	if (duration_of(L, f, n, &d))
		*AT(obj, f, int64_t) = d;
}

/* review_every also takes "never", so a role can say it drops the
 * review (which its profile then forbids). */
static void parse_review(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = scalar_value(n);

	if (s && strcmp(s, "never") == 0) {
		*AT(obj, f, int64_t) = REVIEW_NEVER;
		return;
	}
	parse_duration(L, f, n, obj);
}

static bool bool_of(struct loader *L, const struct field *f, yaml_node_t *n, bool *out)
{
	if (plain_in(n, true_words)) {
		*out = true;
		return true;
	}
	if (plain_in(n, false_words)) {
		*out = false;
		return true;
	}
	type_error(L, n, f->key, "true or false");
	return false;
}

static void parse_bool(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	bool b;

	if (bool_of(L, f, n, &b))
		*AT(obj, f, bool) = b;
}

/* A bool whose absence matters: -1 not given, 0, 1. */
static void parse_tribool(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	bool b;

	if (bool_of(L, f, n, &b))
		*AT(obj, f, int) = b;
}

static bool number_of(struct loader *L, const struct field *f, yaml_node_t *n, long long lo,
		      long long hi, long long *out)
{
	const char *s = scalar_value(n);
	char expected[96];
	long long v;

	snprintf(expected, sizeof(expected), "a whole number from %lld to %lld", lo, hi);
	/* At most 12 digits: no overflow, and anything longer is out of range. */
	if (!s || is_null(n) || !all_digits(s) || strlen(s) > 12) {
		type_error(L, n, f->key, expected);
		return false;
	}
	v = strtoll(s, NULL, 10);
	if (v < lo || v > hi) {
		type_error(L, n, f->key, expected);
		return false;
	}
	*out = v;
	return true;
}

static void parse_count(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	long long v;

	if (number_of(L, f, n, 1, COUNT_MAX, &v))
		*AT(obj, f, unsigned) = (unsigned)v;
}

/* A limit of the broker's (docs/security.md): 1 .. 1,000,000. */
static void parse_limit(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	long long v;

	if (number_of(L, f, n, 1, 1000000, &v))
		*AT(obj, f, unsigned) = (unsigned)v;
}

static void parse_gid(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	long long v;

	if (number_of(L, f, n, 1, GID_MAX_ALLOWED, &v))
		*AT(obj, f, uint32_t) = (uint32_t)v;
}

/* glibc's regcomp copies a repeated part once per repetition, so a
 * quantifier on a quantifier ("a++{1,6}") grows without bound (a fuzzed
 * policy took 24 GB): such a pattern is refused before it is compiled,
 * and so is one longer than a ticket pattern needs. */
#define REGEX_MAX_LEN 256

static const char *regex_untamed(const char *p)
{
	bool after_quantifier = false;

	if (strlen(p) > REGEX_MAX_LEN)
		return "longer than 256 characters";
	for (; *p; p++) {
		bool quant = *p == '*' || *p == '+' || *p == '?' || *p == '{';

		if (*p == '\\' && p[1]) {
			p++;
			after_quantifier = false;
			continue;
		}
		if (quant && after_quantifier)
			return "a quantifier applied to a quantifier (as in a++ or a*{2})";
		if (*p == '{') {
			p = strchr(p, '}');
			if (!p)
				return NULL; /* regcomp says what is wrong */
		}
		after_quantifier = quant;
	}
	return NULL;
}

static bool regex_ok(struct loader *L, const yaml_node_t *n, const char *pattern)
{
	regex_t re;
	char why[160];
	const char *untamed = regex_untamed(pattern);
	int rc;

	if (untamed) {
		error_at(L, n->start_mark, "bad regular expression '%.80s': %s", pattern, untamed);
		return false;
	}
	rc = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB);

	if (rc == 0) {
		regfree(&re);
		return true;
	}
	regerror(rc, &re, why, sizeof(why));
	error_at(L, n->start_mark, "bad regular expression '%s': %s", pattern, why);
	return false;
}

/* Only checked here: the pattern is compiled where it finally lives. */
static void parse_regex(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "a regular expression");

	if (s && regex_ok(L, n, s))
		*AT(obj, f, char *) = dup_or_oom(L, s);
}

static void parse_on_expiry(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "keep or terminate");

	if (!s)
		return;
	if (strcmp(s, "keep") == 0)
		*AT(obj, f, enum sbx_on_expiry) = SBX_ON_EXPIRY_KEEP;
	else if (strcmp(s, "terminate") == 0)
		*AT(obj, f, enum sbx_on_expiry) = SBX_ON_EXPIRY_TERMINATE;
	else
		type_error(L, n, f->key, "keep or terminate");
}

static void parse_on_missed(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "notify or suspend");

	if (!s)
		return;
	if (strcmp(s, "notify") == 0)
		*AT(obj, f, enum sbx_on_missed_review) = SBX_MISSED_NOTIFY;
	else if (strcmp(s, "suspend") == 0)
		*AT(obj, f, enum sbx_on_missed_review) = SBX_MISSED_SUSPEND;
	else
		type_error(L, n, f->key, "notify or suspend");
}

/* A list of strings, each checked by item_ok; duplicates are reported.
 * A missing value is an empty list. */
static void parse_list(struct loader *L, const struct field *f, yaml_node_t *n,
		       struct sbx_strlist *out, const char *expected,
		       bool (*item_ok)(struct loader *L, const yaml_node_t *item, const char *s))
{
	struct sbx_namemap seen = { 0 };
	size_t cap;

	if (is_null(n))
		return;
	if (n->type != YAML_SEQUENCE_NODE) {
		type_error(L, n, f->key, expected);
		return;
	}
	cap = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	out->v = calloc(cap ? cap : 1, sizeof(*out->v));
	if (!out->v) {
		error_oom(L);
		return;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start;
	     it < n->data.sequence.items.top; it++) {
		yaml_node_t *item = node_at(L, *it);
		const char *s = text_of(L, item, "a list item", "a name");
		int rc;

		if (!s || !item_ok(L, item, s))
			continue;
		rc = sbx_namemap_put(&seen, NULL, s, NULL, NULL);
		if (rc < 0) {
			error_oom(L);
			break;
		}
		if (rc > 0) {
			error_at(L, item->start_mark, "'%s' is listed twice in %s", s, f->key);
			continue;
		}
		out->v[out->n] = dup_or_oom(L, s);
		if (out->v[out->n])
			out->n++;
	}
	sbx_namemap_free(&seen);
}

static bool known_user(struct loader *L, const yaml_node_t *n, const char *s)
{
	if (!name_ok(L, n, s, "user"))
		return false;
	/* With a directory, the name may be one only the directory defines
	 * (`sbxctl policy check --online` checks that it does). */
	if (sbx_namemap_has(&L->ix->users, NULL, s) || L->p->names_from_directory)
		return true;
	error_at(L, n->start_mark, "unknown user '%s': add it under users:", s);
	return false;
}

static bool known_group(struct loader *L, const yaml_node_t *n, const char *s)
{
	if (!name_ok(L, n, s, "group"))
		return false;
	if (sbx_namemap_has(&L->ix->groups, NULL, s) || L->p->names_from_directory)
		return true;
	error_at(L, n->start_mark, "unknown group '%s': add it under groups:", s);
	return false;
}

static bool host_glob_ok(struct loader *L, const yaml_node_t *n, const char *s)
{
	for (const char *c = s; *c; c++) {
		if ((unsigned char)*c <= ' ' || *c == 0x7f || *c == '/') {
			error_at(L, n->start_mark, "'%s' is not a host name pattern", s);
			return false;
		}
	}
	return true;
}

static bool sudo_pattern_ok(struct loader *L, const yaml_node_t *n, const char *s)
{
	if (sbx_policy_sudo_pattern_ok(s))
		return true;
	error_at(L, n->start_mark, "'%s' is not a command pattern (1 to 1024 characters, "
		 "no control characters)", s);
	return false;
}

static void parse_sudo_patterns(struct loader *L, const struct field *f, yaml_node_t *n,
				void *obj)
{
	parse_list(L, f, n, AT(obj, f, struct sbx_strlist),
		   "a list of command patterns (e.g. [\"/usr/bin/systemctl restart *\"])",
		   sudo_pattern_ok);
}

static void parse_users(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	parse_list(L, f, n, AT(obj, f, struct sbx_strlist), "a list of user names", known_user);
}

static void parse_groups(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	parse_list(L, f, n, AT(obj, f, struct sbx_strlist), "a list of group names", known_group);
}

static void parse_hosts(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	struct sbx_strlist *l = AT(obj, f, struct sbx_strlist);

	if (is_null(n) || (n->type == YAML_SEQUENCE_NODE &&
			   n->data.sequence.items.top == n->data.sequence.items.start)) {
		error_at(L, n ? n->start_mark : (yaml_mark_t){ 0 },
			 "hosts must list at least one host name pattern, e.g. [\"sbx-*\"]");
		return;
	}
	parse_list(L, f, n, l, "a list of host name patterns (e.g. [\"sbx-*\"])", host_glob_ok);
}

static void parse_user(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "a user name");

	if (s && known_user(L, n, s))
		*AT(obj, f, char *) = dup_or_oom(L, s);
}

static void parse_profile(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "a profile name");

	if (!s || !name_ok(L, n, s, "profile"))
		return;
	if (!sbx_namemap_has(&L->ix->profiles, NULL, s)) {
		error_at(L, n->start_mark, "unknown profile '%s': add it under profiles:", s);
		return;
	}
	*AT(obj, f, char *) = dup_or_oom(L, s);
}

/* The unix_group mapping, remembered so duplicates across roles can
 * point at the right line later. */
static void parse_unix_group(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	*AT(obj, f, yaml_node_t *) = n;
	walk_map(L, n, f->sub, obj, f->key, n->start_mark);
}

/* Errors of the sections parsed in files of their own (policy_drift.c,
 * policy_alerts.c). */
static void yaml_err(void *ctx, yaml_mark_t at, const char *msg)
{
	error_at(ctx, at, "%s", msg);
}

static void load_drift(struct loader *L, yaml_node_t *n)
{
	sbx_policy_drift_load(&L->doc, n, &L->settings->drift, yaml_err, L);
}

/* ---------------------------------------------------------------------- */
/* The tables: docs/policy.md describes every key listed here. */

#define ROLE(m) offsetof(struct role_src, r.m)

static const struct field broker_fields[] = {
	{ "host", parse_host, offsetof(struct sbx_policy, broker.host), NULL, NULL },
	{ "socket", parse_path, offsetof(struct sbx_policy, broker.socket), NULL, NULL },
	{ "state_dir", parse_path, offsetof(struct sbx_policy, broker.state_dir), NULL, NULL },
	{ "admin_group", parse_name, offsetof(struct sbx_policy, broker.admin_group), NULL, NULL },
	{ "request_ttl", parse_duration, offsetof(struct sbx_policy, broker.request_ttl), NULL,
	  NULL },
	{ "max_connections", parse_limit, offsetof(struct sbx_policy, broker.max_connections),
	  NULL, NULL },
	{ "max_connections_per_user", parse_limit,
	  offsetof(struct sbx_policy, broker.max_connections_per_user), NULL, NULL },
	{ "max_changes_per_minute", parse_limit,
	  offsetof(struct sbx_policy, broker.max_changes_per_minute), NULL, NULL },
	{ "keep_ended", parse_limit, offsetof(struct sbx_policy, broker.keep_ended), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

/* retention (docs/audit.md, "Retention"): at least a day, so that a
 * typo ("400s") cannot prune the journal of the same morning. */
static void parse_retention(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	int64_t d;

	if (!duration_of(L, f, n, &d))
		return;
	if (d < 86400) {
		error_at(L, n->start_mark, "%s must be at least 1d", f->key);
		return;
	}
	*AT(obj, f, int64_t) = d;
}

static const struct field profile_fields[] = {
	{ "description", parse_comment, 0, NULL, NULL },
	{ "max_duration", parse_duration, offsetof(struct sbx_profile, max_duration), NULL, NULL },
	{ "api_token_max", parse_duration, offsetof(struct sbx_profile, api_token_max), NULL, NULL },
	{ "default_duration", parse_duration, offsetof(struct sbx_profile, default_duration), NULL,
	  NULL },
	{ "review_every", parse_review, offsetof(struct sbx_profile, review_every), NULL, NULL },
	{ "review_grace", parse_duration, offsetof(struct sbx_profile, review_grace), NULL, NULL },
	{ "on_missed_review", parse_on_missed, offsetof(struct sbx_profile, on_missed_review), NULL,
	  NULL },
	{ "require_reason", parse_bool, offsetof(struct sbx_profile, require_reason), NULL, NULL },
	{ "require_ticket", parse_regex, offsetof(struct sbx_profile, require_ticket), NULL, NULL },
	{ "approvals", parse_count, offsetof(struct sbx_profile, approvals), NULL, NULL },
	{ "reason_min_length", parse_count, offsetof(struct sbx_profile, reason_min_length), NULL,
	  NULL },
	{ "retention", parse_retention, offsetof(struct sbx_profile, retention), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static const struct field user_fields[] = {
	{ "manager", parse_user, offsetof(struct sbx_user, manager), NULL, NULL },
	{ "email", parse_text, offsetof(struct sbx_user, email), NULL, NULL },
	{ "slack_id", parse_text, offsetof(struct sbx_user, slack_id), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static const struct field unix_group_fields[] = {
	{ "name", parse_name, ROLE(unix_group), "the unix group's name", NULL },
	{ "gid", parse_gid, ROLE(gid), "its numeric gid", NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static const struct field standing_fields[] = {
	{ "groups", parse_groups, ROLE(standing_groups), NULL, NULL },
	{ "users", parse_users, ROLE(standing_users), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static const struct field eligible_fields[] = {
	{ "groups", parse_groups, ROLE(eligible_groups), NULL, NULL },
	{ "users", parse_users, ROLE(eligible_users), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static const struct field approver_fields[] = {
	{ "manager", parse_bool, ROLE(approver_manager), NULL, NULL },
	{ "groups", parse_groups, ROLE(approver_groups), NULL, NULL },
	{ "users", parse_users, ROLE(approver_users), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static const struct field sudo_fields[] = {
	{ "allow", parse_sudo_patterns, ROLE(sudo_allow), NULL, NULL },
	{ "approve_each", parse_sudo_patterns, ROLE(sudo_approve_each), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static const struct field role_fields[] = {
	{ "description", parse_text, ROLE(description), NULL, NULL },
	{ "profile", parse_profile, ROLE(profile), NULL, NULL },
	{ "hosts", parse_hosts, ROLE(hosts), "the hosts it applies to, e.g. hosts: [\"sbx-*\"]",
	  NULL },
	{ "unix_group", parse_unix_group, offsetof(struct role_src, unix_group), NULL,
	  unix_group_fields },
	{ "standing", parse_map, 0, NULL, standing_fields },
	{ "eligible", parse_map, 0, NULL, eligible_fields },
	{ "approvers", parse_map, 0, NULL, approver_fields },
	{ "approvals", parse_count, ROLE(approvals), NULL, NULL },
	{ "auto_approve", parse_bool, ROLE(auto_approve), NULL, NULL },
	{ "default_duration", parse_duration, ROLE(default_duration), NULL, NULL },
	{ "max_duration", parse_duration, ROLE(max_duration), NULL, NULL },
	{ "require_reason", parse_tribool, offsetof(struct role_src, require_reason), NULL, NULL },
	{ "require_ticket", parse_regex, offsetof(struct role_src, require_ticket), NULL, NULL },
	{ "reason_min_length", parse_count, ROLE(reason_min_length), NULL, NULL },
	{ "review_every", parse_review, ROLE(review_every), NULL, NULL },
	{ "on_expiry", parse_on_expiry, ROLE(on_expiry), NULL, NULL },
	{ "sudo", parse_map, 0, NULL, sudo_fields },
	{ NULL, NULL, 0, NULL, NULL },
};

/* ---------------------------------------------------------------------- */
/* Sections */

/* Entries of a section whose keys are names of things, with room for
 * all of them in *arr (elem bytes each, zeroed).  -1 when there is
 * nothing to do. */
static ssize_t section_entries(struct loader *L, yaml_node_t *n, const char *what,
			       struct entry **e, void **arr, size_t elem)
{
	ssize_t n_e = entries_of(L, n, what, e);

	if (n_e <= 0)
		return -1;
	*arr = calloc((size_t)n_e, elem);
	if (!*arr) {
		error_oom(L);
		free(*e);
		*e = NULL;
		return -1;
	}
	return n_e;
}

static char *declare(struct loader *L, struct sbx_namemap *m, const struct entry *e,
		     const char *kind, void *thing)
{
	char *name;

	(void)name_ok(L, e->knode, e->key, kind);
	name = dup_or_oom(L, e->key);
	if (name && sbx_namemap_put(m, NULL, name, thing, NULL) < 0)
		error_oom(L);
	return name;
}

static void load_broker(struct loader *L, yaml_node_t *n)
{
	struct sbx_policy *p = L->p;
	char host[HOST_NAME_MAX + 1];

	if (n)
		walk_map(L, n, broker_fields, p, "broker", n->start_mark);
	if (!p->broker.host) {
		if (gethostname(host, sizeof(host)) < 0) {
			error_add(L, 0, 0, "cannot find this host's name: set broker.host");
		} else {
			host[sizeof(host) - 1] = '\0';
			p->broker.host = dup_or_oom(L, host);
		}
	}
	if (!p->broker.socket)
		p->broker.socket = dup_or_oom(L, SBX_DEFAULT_SOCKET);
	if (!p->broker.state_dir)
		p->broker.state_dir = dup_or_oom(L, SBX_DEFAULT_STATE_DIR);
	if (!p->broker.request_ttl)
		p->broker.request_ttl = SBX_DEFAULT_REQUEST_TTL;
	if (!p->broker.max_connections)
		p->broker.max_connections = SBX_DEFAULT_MAX_CONNECTIONS;
	if (!p->broker.max_connections_per_user)
		p->broker.max_connections_per_user = SBX_DEFAULT_MAX_CONNECTIONS_PER_USER;
	if (!p->broker.max_changes_per_minute)
		p->broker.max_changes_per_minute = SBX_DEFAULT_MAX_CHANGES_PER_MINUTE;
	if (!p->broker.keep_ended)
		p->broker.keep_ended = SBX_DEFAULT_KEEP_ENDED;
	if (p->broker.max_connections < 64 && n)
		error_at(L, n->start_mark, "broker: max_connections must be at least 64 (%u)",
			 p->broker.max_connections);
}

static void finish_profile(struct loader *L, struct sbx_profile *pf, yaml_mark_t at)
{
	char a[32], b[32];

	if (pf->review_every == REVIEW_NEVER)
		pf->review_every = 0;
	if (pf->max_duration && pf->default_duration > pf->max_duration) {
		sbx_duration_format(pf->default_duration, a, sizeof(a));
		sbx_duration_format(pf->max_duration, b, sizeof(b));
		error_at(L, at, "profile '%s': default_duration %s is longer than its max_duration %s",
			 pf->name, a, b);
	}
	if (pf->require_ticket &&
	    regcomp(&pf->ticket_re, pf->require_ticket, REG_EXTENDED | REG_NOSUB) != 0) {
		/* It compiled once already: only memory can fail now. */
		free(pf->require_ticket);
		pf->require_ticket = NULL;
		error_oom(L);
	}
}

static void load_profiles(struct loader *L, yaml_node_t *n)
{
	struct sbx_policy *p = L->p;
	struct entry *e = NULL;
	ssize_t n_e = section_entries(L, n, "profiles", &e, (void **)&p->profiles,
				      sizeof(*p->profiles));
	char what[96];

	for (ssize_t i = 0; i < n_e; i++) {
		struct sbx_profile *pf = &p->profiles[p->n_profiles++];

		pf->name = declare(L, &L->ix->profiles, &e[i], "profile", pf);
		snprintf(what, sizeof(what), "profile '%s'", e[i].key);
		walk_map(L, e[i].vnode, profile_fields, pf, what, e[i].knode->start_mark);
		finish_profile(L, pf, e[i].knode->start_mark);
	}
	free(e);
}

/* All names first, then the bodies: a manager may be listed below the
 * people they manage. */
static void load_users(struct loader *L, yaml_node_t *n)
{
	struct sbx_policy *p = L->p;
	struct entry *e = NULL;
	ssize_t n_e = section_entries(L, n, "users", &e, (void **)&p->users, sizeof(*p->users));
	char what[96];

	for (ssize_t i = 0; i < n_e; i++) {
		struct sbx_user *u = &p->users[p->n_users++];

		u->name = declare(L, &L->ix->users, &e[i], "user", u);
	}
	for (ssize_t i = 0; i < n_e; i++) {
		struct sbx_user *u = &p->users[i];

		snprintf(what, sizeof(what), "user '%s'", e[i].key);
		walk_map(L, e[i].vnode, user_fields, u, what, e[i].knode->start_mark);
		if (u->manager && strcmp(u->manager, e[i].key) == 0)
			error_at(L, map_get(L, e[i].vnode, "manager")->start_mark,
				 "%s cannot be their own manager", e[i].key);
	}
	free(e);
}

static void load_groups(struct loader *L, yaml_node_t *n)
{
	struct sbx_policy *p = L->p;
	struct entry *e = NULL;
	ssize_t n_e = section_entries(L, n, "groups", &e, (void **)&p->groups, sizeof(*p->groups));
	char what[96];

	for (ssize_t i = 0; i < n_e; i++) {
		struct sbx_group *g = &p->groups[p->n_groups++];
		/* A group is just its list of members; messages name the group. */
		const struct field members = { what, NULL, 0, NULL, NULL };

		g->name = declare(L, &L->ix->groups, &e[i], "group", g);
		snprintf(what, sizeof(what), "group '%s'", e[i].key);
		parse_list(L, &members, e[i].vnode, &g->members, "a list of user names", known_user);
	}
	free(e);
}

/* A role's gid, and its place in the file, for finding duplicates by
 * sorting: a policy may have thousands of roles. */
struct gid_at {
	uint32_t gid;
	size_t role;
};

static int cmp_gid_at(const void *a, const void *b)
{
	const struct gid_at *x = a, *y = b;

	if (x->gid != y->gid)
		return x->gid < y->gid ? -1 : 1;
	return x->role < y->role ? -1 : x->role > y->role;
}

/* Each role after the first with a gid is told which role has it. */
static void check_gids(struct loader *L)
{
	const struct sbx_policy *p = L->p;
	struct gid_at *v = calloc(p->n_roles ? p->n_roles : 1, sizeof(*v));
	size_t n = 0;

	if (!v) {
		error_oom(L);
		return;
	}
	for (size_t i = 0; i < p->n_roles; i++)
		if (p->roles[i].gid && L->roles[i].unix_group)
			v[n++] = (struct gid_at){ p->roles[i].gid, i };
	qsort(v, n, sizeof(*v), cmp_gid_at);
	for (size_t k = 1, first = 0; k < n; k++) {
		if (v[k].gid != v[first].gid) {
			first = k;
			continue;
		}
		error_at(L, map_get(L, L->roles[v[k].role].unix_group, "gid")->start_mark,
			 "gid %u is already used by role '%s'", (unsigned)v[k].gid,
			 p->roles[v[first].role].name);
	}
	free(v);
}

static void check_unix_group_names(struct loader *L)
{
	const struct sbx_policy *p = L->p;
	struct sbx_namemap seen = { 0 };

	for (size_t i = 0; i < p->n_roles; i++) {
		const struct sbx_role *r = &p->roles[i];
		void *first = NULL;
		int rc;

		if (!r->unix_group || !L->roles[i].unix_group)
			continue;
		rc = sbx_namemap_put(&seen, NULL, r->unix_group, (void *)r, &first);
		if (rc < 0) {
			error_oom(L);
			break;
		}
		if (rc > 0)
			error_at(L, map_get(L, L->roles[i].unix_group, "name")->start_mark,
				 "unix group '%s' is already used by role '%s'", r->unix_group,
				 ((const struct sbx_role *)first)->name);
	}
	sbx_namemap_free(&seen);
}

/* Two roles must not hand out the same unix group or gid: the NSS module
 * would answer one of them wrongly.  Runs after the roles moved into the
 * policy; L->roles still knows where each unix_group was written. */
static void check_unix_groups(struct loader *L)
{
	check_gids(L);
	check_unix_group_names(L);
}

/* A role may tighten its profile, never loosen it.  r holds what the role
 * itself says (0 = not given). */
static void check_loosening(struct loader *L, const struct role_src *src,
			    const struct sbx_role *r, const struct sbx_profile *pf)
{
	char a[32], b[32];
	const char *name = r->name, *pname = pf->name;

#define LOOSENS(...) error_at(L, src->mark, "role '%s' loosens its profile '%s': " __VA_ARGS__)
	if (r->max_duration && pf->max_duration && r->max_duration > pf->max_duration) {
		sbx_duration_format(r->max_duration, a, sizeof(a));
		sbx_duration_format(pf->max_duration, b, sizeof(b));
		LOOSENS("max_duration %s is longer than the profile's %s", name, pname, a, b);
	}
	if (r->approvals && pf->approvals && r->approvals < pf->approvals)
		LOOSENS("approvals %u is fewer than the profile's %u", name, pname, r->approvals,
			pf->approvals);
	if (src->require_reason == 0 && pf->require_reason)
		LOOSENS("require_reason: false, but the profile requires a reason", name, pname);
	if (r->reason_min_length && pf->reason_min_length &&
	    r->reason_min_length < pf->reason_min_length)
		LOOSENS("reason_min_length %u is shorter than the profile's %u", name, pname,
			r->reason_min_length, pf->reason_min_length);
	if (pf->review_every && r->review_every == REVIEW_NEVER) {
		sbx_duration_format(pf->review_every, b, sizeof(b));
		LOOSENS("review_every: never, but the profile reviews every %s", name, pname, b);
	} else if (pf->review_every && r->review_every > pf->review_every) {
		sbx_duration_format(r->review_every, a, sizeof(a));
		sbx_duration_format(pf->review_every, b, sizeof(b));
		LOOSENS("review_every %s is longer than the profile's %s", name, pname, a, b);
	}
	if (r->auto_approve && pf->approvals)
		LOOSENS("auto_approve: true, but the profile requires %u approval%s", name, pname,
			pf->approvals, pf->approvals == 1 ? "" : "s");
#undef LOOSENS
}

static bool ticket_add(struct loader *L, struct sbx_role *r, char *pattern)
{
	size_t k = r->n_ticket_re;

	r->ticket_pattern[k] = pattern;
	if (!pattern)
		return false;
	if (regcomp(&r->ticket_re[k], pattern, REG_EXTENDED | REG_NOSUB) != 0) {
		error_oom(L); /* it compiled once already */
		return false;
	}
	r->n_ticket_re++;
	return true;
}

static bool host_matches(const struct sbx_strlist *globs, const char *host)
{
	for (size_t i = 0; i < globs->n; i++)
		if (host && fnmatch(globs->v[i], host, FNM_CASEFOLD) == 0)
			return true;
	return false;
}

int sbx_policy_set_host(struct sbx_policy *p, const char *host)
{
	char *copy = strdup(host);

	if (!copy)
		return -ENOMEM;
	free(p->broker.host);
	p->broker.host = copy;
	for (size_t i = 0; i < p->n_roles; i++)
		p->roles[i].matches_host = host_matches(&p->roles[i].hosts, host);
	return 0;
}

static int64_t first_set(int64_t a, int64_t b, int64_t dflt)
{
	return a ? a : b ? b : dflt;
}

/* Turn what the role says into the effective values the broker enforces.
 * src->r has already moved to r. */
static void fold_role(struct loader *L, struct role_src *src, struct sbx_role *r)
{
	const struct sbx_profile *pf = r->profile ? sbx_policy_profile(L->p, r->profile) : NULL;
	struct sbx_profile none = { 0 };
	char a[32], b[32];

	if (pf)
		check_loosening(L, src, r, pf);
	else
		pf = &none;
	if (r->auto_approve && r->approvals)
		error_at(L, src->mark,
			 "role '%s' sets both auto_approve and approvals: drop one of them", r->name);
	if (!r->auto_approve && !r->approver_manager && !r->approver_groups.n &&
	    !r->approver_users.n && (r->eligible_groups.n || r->eligible_users.n))
		error_at(L, src->mark,
			 "role '%s' has eligible members but nobody can approve it: set approvers "
			 "(manager, groups or users) or auto_approve: true", r->name);

	r->max_duration = first_set(r->max_duration, pf->max_duration, DEFAULT_MAX_DURATION);
	if (r->default_duration > r->max_duration) {
		sbx_duration_format(r->default_duration, a, sizeof(a));
		sbx_duration_format(r->max_duration, b, sizeof(b));
		error_at(L, src->mark, "role '%s': default_duration %s is longer than its max_duration %s",
			 r->name, a, b);
	}
	if (!r->default_duration) {
		int64_t d = pf->default_duration ? pf->default_duration : DEFAULT_DEFAULT_DURATION;

		r->default_duration = d < r->max_duration ? d : r->max_duration;
	}
	r->approvals = (unsigned)first_set(r->approvals, pf->approvals, DEFAULT_APPROVALS);
	r->require_reason = src->require_reason == 1 || pf->require_reason;
	r->reason_min_length = (unsigned)first_set(r->reason_min_length, pf->reason_min_length,
						   SBX_DEFAULT_REASON_MIN);
	r->review_every = r->review_every == REVIEW_NEVER ? 0 : first_set(r->review_every,
									pf->review_every, 0);
	r->review_grace = first_set(0, pf->review_grace, DEFAULT_REVIEW_GRACE);
	r->on_missed_review = pf->on_missed_review;
	if (pf->require_ticket)
		(void)ticket_add(L, r, dup_or_oom(L, pf->require_ticket));
	if (src->require_ticket) {
		(void)ticket_add(L, r, src->require_ticket);
		src->require_ticket = NULL;
	}
	r->matches_host = host_matches(&r->hosts, L->p->broker.host);
	/* A group in a process's credentials outlives the grant that put it
	 * there unless the processes end: keeping them is a choice the file
	 * must make in writing. */
	if (r->on_expiry == SBX_ON_EXPIRY_UNSET)
		r->on_expiry = r->unix_group ? SBX_ON_EXPIRY_TERMINATE : SBX_ON_EXPIRY_KEEP;
}

static void load_roles(struct loader *L, yaml_node_t *n)
{
	struct sbx_policy *p = L->p;
	struct entry *e = NULL;
	ssize_t n_e = section_entries(L, n, "roles", &e, (void **)&L->roles, sizeof(*L->roles));
	char what[96];

	if (n_e > 0) {
		p->roles = calloc((size_t)n_e, sizeof(*p->roles));
		if (!p->roles) {
			error_oom(L);
			n_e = 0;
		}
	}
	for (ssize_t i = 0; i < n_e; i++) {
		struct role_src *src = &L->roles[i];

		src->require_reason = -1;
		src->mark = e[i].knode->start_mark;
		src->r.name = declare(L, &L->ix->roles, &e[i], "role", &p->roles[i]);
		snprintf(what, sizeof(what), "role '%s'", e[i].key);
		walk_map(L, e[i].vnode, role_fields, src, what, src->mark);
		/* The role now belongs to the policy, whatever happens next. */
		p->roles[p->n_roles++] = src->r;
		memset(&src->r, 0, sizeof(src->r));
	}
	check_unix_groups(L);
	for (size_t i = 0; i < p->n_roles; i++)
		fold_role(L, &L->roles[i], &p->roles[i]);
	free(e);
}

/* directory: (docs/policy.md).  The values go into fixed buffers in the
 * settings (struct sbx_directory_conf): nothing to free.  The section is
 * read before users, groups and roles, so that they may refer to names
 * only the directory defines (see sbx_policy_names_from_directory). */

#define DIR_CONF(m) offsetof(struct sbx_settings, directory.m)
#define DIR_MAX_URIS (sizeof(((struct sbx_directory_conf *)0)->uri) / \
		      sizeof(((struct sbx_directory_conf *)0)->uri[0]))
#define DIR_DEFAULT_TIMEOUT 5
#define DIR_DEFAULT_CACHE_TTL (5 * 60)
#define DIR_DEFAULT_MAX_STALE 3600

static bool dir_store(struct loader *L, const struct field *f, yaml_node_t *n, void *obj,
		      const char *s, size_t cap)
{
	if (strlen(s) >= cap) {
		error_at(L, n->start_mark, "%s is too long (at most %zu bytes)", f->key, cap - 1);
		return false;
	}
	memcpy(AT(obj, f, char), s, strlen(s) + 1);
	return true;
}

/* Control characters have no place in a DN, a filter or a URI, and would
 * reach log lines. */
static bool dir_printable(struct loader *L, const struct field *f, yaml_node_t *n, const char *s)
{
	for (const char *c = s; *c; c++) {
		if ((unsigned char)*c < ' ' || *c == 0x7f) {
			error_at(L, n->start_mark, "%s contains a control character", f->key);
			return false;
		}
	}
	return true;
}

/* A distinguished name (base, bind_dn): the server judges its syntax;
 * here it must at least have an attribute=value part. */
static void parse_dir_dn(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "a distinguished name (e.g. dc=example,dc=org)");

	if (!s || !dir_printable(L, f, n, s))
		return;
	if (!strchr(s, '=')) {
		error_at(L, n->start_mark,
			 "%s must be a distinguished name such as dc=example,dc=org, not '%s'",
			 f->key, s);
		return;
	}
	(void)dir_store(L, f, n, obj, s, sizeof(((struct sbx_directory_conf *)0)->base));
}

/* An LDAP filter: parenthesized, with balanced parentheses. */
static void parse_dir_filter(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "an LDAP filter such as (objectClass=inetOrgPerson)");
	int depth = 0;
	bool ok;

	if (!s || !dir_printable(L, f, n, s))
		return;
	ok = s[0] == '(';
	for (const char *c = s; ok && *c; c++) {
		if (depth == 0 && c != s)
			ok = false; /* text after the outermost ")" */
		else if (*c == '(')
			depth++;
		else if (*c == ')')
			ok = --depth >= 0;
	}
	if (!ok || depth != 0) {
		error_at(L, n->start_mark,
			 "%s must be an LDAP filter in parentheses with balanced parentheses, "
			 "e.g. (objectClass=inetOrgPerson), not '%s'", f->key, s);
		return;
	}
	(void)dir_store(L, f, n, obj, s, sizeof(((struct sbx_directory_conf *)0)->user_filter));
}

static void parse_dir_path(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "an absolute path");

	if (!s || !dir_printable(L, f, n, s))
		return;
	if (s[0] != '/') {
		error_at(L, n->start_mark, "%s must be an absolute path, not '%s'", f->key, s);
		return;
	}
	(void)dir_store(L, f, n, obj, s, sizeof(((struct sbx_directory_conf *)0)->tls_ca_file));
}

/* An attribute description: a name (letters, digits, '-') or an OID. */
static void parse_dir_attr(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "an LDAP attribute name");
	bool ok;

	if (!s)
		return;
	ok = (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') ||
	     (s[0] >= '0' && s[0] <= '9');
	for (const char *c = s; ok && *c; c++)
		ok = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		     (*c >= '0' && *c <= '9') || *c == '-' || *c == '.';
	if (!ok) {
		error_at(L, n->start_mark, "%s: '%s' is not an LDAP attribute name", f->key, s);
		return;
	}
	(void)dir_store(L, f, n, obj, s, sizeof(((struct sbx_directory_conf *)0)->attr_uid));
}

static bool dir_uri_ok(struct loader *L, yaml_node_t *n, const char *s)
{
	static const char *const schemes[] = { "ldap://", "ldaps://", "ldapi://" };

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strncmp(s, schemes[i], strlen(schemes[i])) != 0)
			continue;
		for (const char *c = s; *c; c++) {
			if ((unsigned char)*c <= ' ' || *c == 0x7f) {
				error_at(L, n->start_mark, "uri '%s' contains a blank or control "
					 "character: give one URI per list item", s);
				return false;
			}
		}
		return true;
	}
	error_at(L, n->start_mark,
		 "uri '%s' must start with ldap:// (StartTLS), ldaps:// or ldapi://", s);
	return false;
}

static void dir_add_uri(struct loader *L, yaml_node_t *n, const char *s)
{
	struct sbx_directory_conf *c = &L->settings->directory;

	if (!dir_uri_ok(L, n, s))
		return;
	if (c->n_uri == DIR_MAX_URIS) {
		error_at(L, n->start_mark, "uri: at most %zu servers", DIR_MAX_URIS);
		return;
	}
	if (strlen(s) >= sizeof(c->uri[0])) {
		error_at(L, n->start_mark, "uri is too long (at most %zu bytes)", sizeof(c->uri[0]) - 1);
		return;
	}
	memcpy(c->uri[c->n_uri++], s, strlen(s) + 1);
}

/* One URI, or a list of them tried in order. */
static void parse_dir_uri(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *expected = "an ldap://, ldaps:// or ldapi:// URI, or a list of them";

	(void)obj;
	if (n && n->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top; it++) {
			yaml_node_t *item = node_at(L, *it);
			const char *s = text_of(L, item, "a uri list item", expected);

			if (s)
				dir_add_uri(L, item, s);
		}
		if (n->data.sequence.items.top == n->data.sequence.items.start)
			error_at(L, n->start_mark, "%s must list at least one server", f->key);
		return;
	}
	{
		const char *s = text_of(L, n, f->key, expected);

		if (s)
			dir_add_uri(L, n, s);
	}
}

static const struct field dir_user_search_fields[] = {
	{ "base", parse_dir_dn, DIR_CONF(user_base), NULL, NULL },
	{ "filter", parse_dir_filter, DIR_CONF(user_filter), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static const struct field dir_group_search_fields[] = {
	{ "base", parse_dir_dn, DIR_CONF(group_base), NULL, NULL },
	{ "filter", parse_dir_filter, DIR_CONF(group_filter), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static const struct field dir_attribute_fields[] = {
	{ "uid", parse_dir_attr, DIR_CONF(attr_uid), NULL, NULL },
	{ "mail", parse_dir_attr, DIR_CONF(attr_mail), NULL, NULL },
	{ "manager", parse_dir_attr, DIR_CONF(attr_manager), NULL, NULL },
	{ "slack_id", parse_dir_attr, DIR_CONF(attr_slack_id), NULL, NULL },
	{ "group_name", parse_dir_attr, DIR_CONF(attr_group_name), NULL, NULL },
	{ "member", parse_dir_attr, DIR_CONF(attr_member), NULL, NULL },
	{ "member_uid", parse_dir_attr, DIR_CONF(attr_member_uid), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static const struct field directory_fields[] = {
	{ "uri", parse_dir_uri, 0, "the servers to ask, e.g. uri: [ldaps://ldap.example.org]",
	  NULL },
	{ "start_tls", parse_bool, DIR_CONF(start_tls), NULL, NULL },
	{ "base", parse_dir_dn, DIR_CONF(base), "the search base, e.g. base: dc=example,dc=org",
	  NULL },
	{ "bind_dn", parse_dir_dn, DIR_CONF(bind_dn), NULL, NULL },
	{ "bind_password_file", parse_dir_path, DIR_CONF(bind_password_file), NULL, NULL },
	{ "tls_ca_file", parse_dir_path, DIR_CONF(tls_ca_file), NULL, NULL },
	{ "user_search", parse_map, 0, NULL, dir_user_search_fields },
	{ "group_search", parse_map, 0, NULL, dir_group_search_fields },
	{ "attributes", parse_map, 0, NULL, dir_attribute_fields },
	{ "timeout", parse_duration, DIR_CONF(timeout), NULL, NULL },
	{ "cache_ttl", parse_duration, DIR_CONF(cache_ttl), NULL, NULL },
	{ "max_stale", parse_duration, DIR_CONF(max_stale), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static void dir_default(char *dst, size_t cap, const char *value)
{
	if (!dst[0])
		snprintf(dst, cap, "%s", value);
}
#define DIR_DEFAULT(field, value) dir_default(c->field, sizeof(c->field), value)

static void finish_directory(struct loader *L, yaml_node_t *n)
{
	struct sbx_directory_conf *c = &L->settings->directory;
	char filter[sizeof(c->user_filter)], a[32], b[32];

	if (c->bind_dn[0] && !c->bind_password_file[0])
		error_at(L, n->start_mark, "directory: bind_dn needs bind_password_file (or drop "
			 "bind_dn to bind anonymously)");
	if (!c->bind_dn[0] && c->bind_password_file[0])
		error_at(L, n->start_mark, "directory: bind_password_file needs bind_dn");
	DIR_DEFAULT(user_base, c->base);
	DIR_DEFAULT(group_base, c->base);
	DIR_DEFAULT(attr_uid, "uid");
	DIR_DEFAULT(attr_mail, "mail");
	DIR_DEFAULT(attr_manager, "manager");
	DIR_DEFAULT(attr_group_name, "cn");
	DIR_DEFAULT(attr_member, "member");
	DIR_DEFAULT(attr_member_uid, "memberUid");
	snprintf(filter, sizeof(filter), "(%s=*)", c->attr_uid);
	DIR_DEFAULT(user_filter, filter);
	DIR_DEFAULT(group_filter, "(|(objectClass=groupOfNames)(objectClass=posixGroup))");
	if (!c->timeout)
		c->timeout = DIR_DEFAULT_TIMEOUT;
	if (!c->cache_ttl)
		c->cache_ttl = DIR_DEFAULT_CACHE_TTL;
	if (!c->max_stale)
		c->max_stale = c->cache_ttl > DIR_DEFAULT_MAX_STALE ? c->cache_ttl
								      : DIR_DEFAULT_MAX_STALE;
	if (c->max_stale < c->cache_ttl) {
		sbx_duration_format(c->max_stale, a, sizeof(a));
		sbx_duration_format(c->cache_ttl, b, sizeof(b));
		error_at(L, n->start_mark, "directory: max_stale %s is shorter than cache_ttl %s: "
			 "cached answers would be dropped before the next refresh", a, b);
	}
}

/* revoke_on_ineligible is a role key that belongs to this feature: it is
 * read here, before the roles are, and taken out of each role's mapping so
 * the role table never sees it; apply_revoke_keys() sets it on the roles
 * once they are loaded. */
static void take_revoke_keys(struct loader *L)
{
	static const struct field f = { "revoke_on_ineligible", NULL, 0, NULL, NULL };
	yaml_node_t *roles = map_get(L, yaml_document_get_root_node(&L->doc), "roles");

	if (!roles || roles->type != YAML_MAPPING_NODE)
		return;
	/* Read every role first: two roles may share one mapping (an alias). */
	for (yaml_node_pair_t *pr = roles->data.mapping.pairs.start;
	     pr < roles->data.mapping.pairs.top; pr++) {
		yaml_node_t *kn = node_at(L, pr->key), *v = node_at(L, pr->value);
		yaml_node_t *flag = map_get(L, v, f.key);
		const char *name = scalar_value(kn);
		bool b = false;

		if (!name || is_null(kn) || !flag || !bool_of(L, &f, flag, &b) || !b)
			continue;
		if (sbx_namemap_put(&L->revoke_on_ineligible, NULL, name, NULL, NULL) < 0) {
			error_oom(L);
			break;
		}
	}
	for (yaml_node_pair_t *pr = roles->data.mapping.pairs.start;
	     pr < roles->data.mapping.pairs.top; pr++) {
		yaml_node_t *v = node_at(L, pr->value);
		int taken = 0;

		if (!v || v->type != YAML_MAPPING_NODE)
			continue;
		for (yaml_node_pair_t *q = v->data.mapping.pairs.start;
		     q < v->data.mapping.pairs.top;) {
			yaml_node_t *kn = node_at(L, q->key);
			const char *key = scalar_value(kn);

			if (key && strcmp(key, f.key) == 0) {
				if (taken++)
					error_at(L, kn->start_mark, "duplicate key '%s'", key);
				memmove(q, q + 1, (size_t)(v->data.mapping.pairs.top - q - 1) *
							  sizeof(*q));
				v->data.mapping.pairs.top--;
			} else {
				q++;
			}
		}
	}
}

static void load_directory(struct loader *L, yaml_node_t *n)
{
	struct sbx_directory_conf *c = &L->settings->directory;

	take_revoke_keys(L);
	if (!n)
		return;
	c->start_tls = true;
	walk_map(L, n, directory_fields, L->settings, "directory", n->start_mark);
	c->enabled = true;
	L->p->names_from_directory = true;
	finish_directory(L, n);
}

static void apply_revoke_keys(struct loader *L)
{
	for (size_t i = 0; i < L->p->n_roles; i++)
		L->p->roles[i].revoke_on_ineligible =
			sbx_namemap_has(&L->revoke_on_ineligible, NULL, L->p->roles[i].name);
}

/* slack: (docs/slack.md).  The values go into fixed buffers in the
 * settings (struct sbx_slack_conf); the secrets themselves are never in
 * the policy, only the paths of the files that hold them. */

#define SLACK_CONF(m) offsetof(struct sbx_settings, slack.m)
#define SLACK_TIMEOUT_MAX 300

/* Copy s into the fixed buffer of field f, or report that it does not fit. */
static void slack_store(struct loader *L, const struct field *f, yaml_node_t *n, void *obj,
			const char *s, size_t cap)
{
	if (strlen(s) >= cap) {
		error_at(L, n->start_mark, "%s is too long (at most %zu bytes)", f->key, cap - 1);
		return;
	}
	memcpy(AT(obj, f, char), s, strlen(s) + 1);
}

/* A file holding a secret (slack:, fleet:): an absolute path into a
 * buffer of SBX_SETTINGS_PATH_MAX. */
static void parse_secret_file(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "an absolute path");

	if (!s)
		return;
	if (s[0] != '/') {
		error_at(L, n->start_mark, "%s must be an absolute path, not '%s'", f->key, s);
		return;
	}
	slack_store(L, f, n, obj, s, SBX_SETTINGS_PATH_MAX);
}

/* "ADDRESS:PORT" with a numeric address; IPv6 in brackets. */
static int slack_split_listen(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon, *h = s, *hend;
	unsigned char addr[16];
	unsigned long v = 0;
	size_t len;

	if (s[0] == '[') {
		h = s + 1;
		hend = strchr(h, ']');
		if (!hend || hend[1] != ':')
			return -1;
		colon = hend + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -1;
		hend = colon;
	}
	len = (size_t)(hend - h);
	if (len == 0 || len >= hostlen || !colon[1] || strlen(colon + 1) > 5)
		return -1;
	for (const char *c = colon + 1; *c; c++) {
		if (*c < '0' || *c > '9')
			return -1;
		v = v * 10 + (unsigned long)(*c - '0');
	}
	if (v > 65535)
		return -1;
	memcpy(host, h, len);
	host[len] = '\0';
	if (inet_pton(s[0] == '[' ? AF_INET6 : AF_INET, host, addr) != 1)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static void parse_slack_listen(struct loader *L, const struct field *f, yaml_node_t *n,
			       void *obj)
{
	struct sbx_slack_conf *c = &((struct sbx_settings *)obj)->slack;
	const char *s = text_of(L, n, f->key, "ADDRESS:PORT");

	if (s && slack_split_listen(s, c->listen_host, sizeof(c->listen_host),
				    &c->listen_port) < 0)
		error_at(L, n->start_mark,
			 "listen must be ADDRESS:PORT with a numeric address, e.g. 127.0.0.1:8089 "
			 "or [::1]:8089, not '%s'", s);
}

static void parse_slack_path(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	const char *s = text_of(L, n, f->key, "a URL path such as /slack/interactive");

	if (!s)
		return;
	for (const char *c = s; *c; c++) {
		if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f || *c == '?' ||
		    *c == '#' || *c == '%') {
			s = NULL;
			break;
		}
	}
	if (!s || s[0] != '/') {
		error_at(L, n->start_mark,
			 "%s must be a URL path starting with '/', without spaces, '?', '#' or '%%'",
			 f->key);
		return;
	}
	slack_store(L, f, n, obj, s, sizeof(((struct sbx_settings *)0)->slack.request_path));
}

static void parse_slack_timeout(struct loader *L, const struct field *f, yaml_node_t *n,
				void *obj)
{
	int64_t d;

	if (!duration_of(L, f, n, &d))
		return;
	if (d > SLACK_TIMEOUT_MAX) {
		error_at(L, n->start_mark, "%s must be at most 5m", f->key);
		return;
	}
	*AT(obj, f, int64_t) = d;
}

static const struct field slack_fields[] = {
	{ "webhook_url_file", parse_secret_file, SLACK_CONF(webhook_url_file),
	  "the file holding the incoming webhook's URL", NULL },
	{ "signing_secret_file", parse_secret_file, SLACK_CONF(signing_secret_file),
	  "the file holding the Slack app's signing secret", NULL },
	{ "listen", parse_slack_listen, 0, NULL, NULL },
	{ "request_path", parse_slack_path, SLACK_CONF(request_path), NULL, NULL },
	{ "timeout", parse_slack_timeout, SLACK_CONF(timeout), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static void load_slack(struct loader *L, yaml_node_t *n)
{
	struct sbx_slack_conf *c = &L->settings->slack;

	if (!n)
		return;
	c->enabled = true;
	snprintf(c->listen_host, sizeof(c->listen_host), "127.0.0.1");
	c->listen_port = 8089;
	snprintf(c->request_path, sizeof(c->request_path), "/slack/interactive");
	c->timeout = 10;
	walk_map(L, n, slack_fields, L->settings, "slack", n->start_mark);
}

/* fleet: (docs/fleet.md).  The conninfo is libpq's to parse; here it is
 * only kept from holding a password, which belongs in password_file. */

#define FLEET_CONF(m) offsetof(struct sbx_settings, fleet.m)
#define FLEET_DEFAULT_TIMEOUT 5
#define FLEET_TIMEOUT_MAX 60
#define FLEET_DEFAULT_MAX_STALE 60
#define FLEET_DEFAULT_VERIFY_EVERY 3600

static bool conninfo_has_password(const char *s)
{
	const char *at, *colon, *auth;

	if (strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0) {
		auth = strstr(s, "://") + 3;
		at = strchr(auth, '@');
		colon = strchr(auth, ':');
		if (at && colon && colon < at && !memchr(auth, '/', (size_t)(at - auth)))
			return true;
		return strstr(s, "password=") != NULL;
	}
	for (const char *p = s; (p = strstr(p, "password")); p += 8) {
		const char *q = p + 8;

		if (p != s && p[-1] != ' ' && p[-1] != '\t')
			continue;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q == '=')
			return true;
	}
	return false;
}

static void parse_fleet_postgres(struct loader *L, const struct field *f, yaml_node_t *n,
				 void *obj)
{
	const char *s = text_of(L, n, f->key,
				"a libpq connection string, e.g. \"host=db1,db2 dbname=sbx user=sbx "
				"target_session_attrs=read-write\"");

	if (!s || !dir_printable(L, f, n, s))
		return;
	if (!s[0]) {
		error_at(L, n->start_mark, "postgres must not be empty");
		return;
	}
	if (conninfo_has_password(s)) {
		error_at(L, n->start_mark, "postgres must not hold a password (the policy is "
			 "readable by everyone): put it in password_file");
		return;
	}
	(void)dir_store(L, f, n, obj, s, sizeof(((struct sbx_fleet_conf *)0)->postgres));
}

static void parse_fleet_timeout(struct loader *L, const struct field *f, yaml_node_t *n,
				void *obj)
{
	int64_t d;

	if (!duration_of(L, f, n, &d))
		return;
	if (d < 1 || d > FLEET_TIMEOUT_MAX) {
		error_at(L, n->start_mark, "%s must be from 1s to 1m", f->key);
		return;
	}
	*AT(obj, f, int64_t) = d;
}

/* verify_every also takes "never". */
static void parse_fleet_verify(struct loader *L, const struct field *f, yaml_node_t *n,
			       void *obj)
{
	const char *s = scalar_value(n);

	if (s && strcmp(s, "never") == 0) {
		*AT(obj, f, int64_t) = 0;
		return;
	}
	parse_duration(L, f, n, obj);
}

static const struct field fleet_fields[] = {
	{ "postgres", parse_fleet_postgres, FLEET_CONF(postgres),
	  "the libpq connection string of the database that holds the fleet's log", NULL },
	{ "password_file", parse_secret_file, FLEET_CONF(password_file), NULL, NULL },
	{ "timeout", parse_fleet_timeout, FLEET_CONF(timeout), NULL, NULL },
	{ "max_stale", parse_duration, FLEET_CONF(max_stale), NULL, NULL },
	{ "verify_every", parse_fleet_verify, FLEET_CONF(verify_every), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static void load_fleet(struct loader *L, yaml_node_t *n)
{
	struct sbx_fleet_conf *c = &L->settings->fleet;

	if (!n)
		return;
	c->enabled = true;
	L->p->fleet_wide = true;
	c->timeout = FLEET_DEFAULT_TIMEOUT;
	c->max_stale = FLEET_DEFAULT_MAX_STALE;
	c->verify_every = FLEET_DEFAULT_VERIFY_EVERY;
	walk_map(L, n, fleet_fields, L->settings, "fleet", n->start_mark);
	if (c->max_stale < c->timeout)
		error_at(L, n->start_mark, "fleet: max_stale must be at least timeout");
}

/* audit: (docs/audit.md, "Sealing").  Present or not, the defaults hold. */

#define AUDIT_CONF(m) offsetof(struct sbx_settings, audit.m)
#define AUDIT_DEFAULT_SEAL_EVERY 60
#define AUDIT_DEFAULT_CHECKPOINT_TIMEOUT 10
/* A day: longer epochs leave too much unsealed for too long. */
#define AUDIT_SEAL_EVERY_MAX 86400

static void parse_seal_every(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	int64_t d;

	if (!duration_of(L, f, n, &d))
		return;
	if (d > AUDIT_SEAL_EVERY_MAX) {
		error_at(L, n->start_mark, "%s must be at most 1d", f->key);
		return;
	}
	*AT(obj, f, int64_t) = d;
}

/* The collector of seals (docs/audit.md, "Evidence off the host"):
 * https://, or http:// to a loopback address only; the broker checks the
 * rest of the URL when it starts. */
static void parse_checkpoint_url(struct loader *L, const struct field *f, yaml_node_t *n,
				 void *obj)
{
	static const char *const loopback[] = { "http://127.0.0.1", "http://[::1]",
						"http://localhost" };
	const char *s = text_of(L, n, f->key, "an https:// URL");
	bool ok;

	if (!s)
		return;
	ok = strncasecmp(s, "https://", 8) == 0 && s[8];
	for (size_t i = 0; !ok && i < sizeof(loopback) / sizeof(loopback[0]); i++) {
		size_t len = strlen(loopback[i]);

		ok = strncasecmp(s, loopback[i], len) == 0 &&
		     (s[len] == ':' || s[len] == '/' || s[len] == '\0');
	}
	if (!ok) {
		error_at(L, n->start_mark, "%s must start with https:// (http:// only to a loopback "
			 "address)", f->key);
		return;
	}
	slack_store(L, f, n, obj, s, sizeof(((struct sbx_audit_conf *)0)->checkpoint_url));
}

static void parse_checkpoint_timeout(struct loader *L, const struct field *f, yaml_node_t *n,
				     void *obj)
{
	int64_t d;

	if (!duration_of(L, f, n, &d))
		return;
	if (d < 1 || d > SLACK_TIMEOUT_MAX) {
		error_at(L, n->start_mark, "%s must be between 1s and 5m", f->key);
		return;
	}
	*AT(obj, f, int64_t) = d;
}

static const struct field audit_fields[] = {
	{ "seal_every", parse_seal_every, AUDIT_CONF(seal_every), NULL, NULL },
	{ "retention", parse_retention, AUDIT_CONF(retention), NULL, NULL },
	{ "syslog", parse_bool, AUDIT_CONF(syslog), NULL, NULL },
	{ "checkpoint_url", parse_checkpoint_url, AUDIT_CONF(checkpoint_url), NULL, NULL },
	{ "checkpoint_ca_file", parse_secret_file, AUDIT_CONF(checkpoint_ca_file), NULL, NULL },
	{ "checkpoint_timeout", parse_checkpoint_timeout, AUDIT_CONF(checkpoint_timeout), NULL,
	  NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static void load_audit(struct loader *L, yaml_node_t *n)
{
	L->settings->audit.seal_every = AUDIT_DEFAULT_SEAL_EVERY;
	L->settings->audit.syslog = true;
	L->settings->audit.checkpoint_timeout = AUDIT_DEFAULT_CHECKPOINT_TIMEOUT;
	if (n)
		walk_map(L, n, audit_fields, L->settings, "audit", n->start_mark);
}

/* alerts: (policy_alerts.c) */
static void load_alerts(struct loader *L, yaml_node_t *n)
{
	sbx_policy_alerts_load(&L->doc, n, L->p, &L->settings->alerts, yaml_err, L);
}

/* review: (docs/review.md).  Present or not, the defaults hold. */

#define REVIEW_CONF(m) offsetof(struct sbx_settings, review.m)
#define REVIEW_DEFAULT_UNUSED_AFTER (30 * 86400)

static const struct field review_fields[] = {
	{ "unused_after", parse_duration, REVIEW_CONF(unused_after), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static void load_review(struct loader *L, yaml_node_t *n)
{
	L->settings->review.unused_after = REVIEW_DEFAULT_UNUSED_AFTER;
	if (n)
		walk_map(L, n, review_fields, L->settings, "review", n->start_mark);
}

/* api: (docs/api.md).  Plain HTTP carries tokens in the clear, so it is
 * allowed on a loopback address only; anywhere else TLS is required. */

#define API_CONF(m) offsetof(struct sbx_settings, api.m)

static void parse_api_listen(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	struct sbx_api_conf *c = &((struct sbx_settings *)obj)->api;
	const char *s = text_of(L, n, f->key, "ADDRESS:PORT");

	if (s && slack_split_listen(s, c->listen_host, sizeof(c->listen_host),
				    &c->listen_port) < 0)
		error_at(L, n->start_mark,
			 "listen must be ADDRESS:PORT with a numeric address, e.g. 127.0.0.1:8443 "
			 "or [::1]:8443, not '%s'", s);
}

/* public_url: http(s)://, printable, no quotes or spaces (it goes into
 * PAM's refusal text and the dashboard's Origin check). */
static void parse_api_url(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	struct sbx_api_conf *c = &((struct sbx_settings *)obj)->api;
	const char *s = text_of(L, n, f->key, "a URL");
	bool ok;

	if (!s)
		return;
	ok = (strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0) &&
	     strlen(s) < sizeof(c->public_url);
	for (const char *p = s; ok && *p; p++)
		ok = *p > ' ' && *p < 0x7f && *p != '"' && *p != '\'' && *p != '<' && *p != '>';
	if (!ok) {
		error_at(L, n->start_mark, "public_url must be an http:// or https:// URL of at most "
			 "%zu characters without spaces or quotes, not '%s'",
			 sizeof(c->public_url) - 1, s);
		return;
	}
	snprintf(c->public_url, sizeof(c->public_url), "%s", s);
}

static void parse_api_dir(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	struct sbx_api_conf *c = &((struct sbx_settings *)obj)->api;
	const char *s = text_of(L, n, f->key, "an absolute path");

	if (!s)
		return;
	if (s[0] != '/' || strlen(s) >= sizeof(c->web_dir)) {
		error_at(L, n->start_mark, "%s must be an absolute path, not '%s'", f->key, s);
		return;
	}
	snprintf(c->web_dir, sizeof(c->web_dir), "%s", s);
}

static const struct field api_fields[] = {
	{ "listen", parse_api_listen, 0, NULL, NULL },
	{ "tls_cert_file", parse_secret_file, API_CONF(tls_cert_file), NULL, NULL },
	{ "tls_key_file", parse_secret_file, API_CONF(tls_key_file), NULL, NULL },
	{ "public_url", parse_api_url, 0, NULL, NULL },
	{ "web_dir", parse_api_dir, 0, NULL, NULL },
	{ "events_max", parse_limit, API_CONF(events_max), NULL, NULL },
	{ "events_per_person", parse_limit, API_CONF(events_per_person), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static bool api_loopback(const char *host)
{
	return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}

static void load_api(struct loader *L, yaml_node_t *n)
{
	struct sbx_api_conf *c = &L->settings->api;

	if (!n)
		return;
	c->enabled = true;
	snprintf(c->listen_host, sizeof(c->listen_host), "127.0.0.1");
	c->listen_port = 8443;
	walk_map(L, n, api_fields, L->settings, "api", n->start_mark);
	if (!c->tls_cert_file[0] != !c->tls_key_file[0]) {
		error_at(L, n->start_mark, "api: tls_cert_file and tls_key_file go together");
		return;
	}
	if (!c->tls_cert_file[0] && !api_loopback(c->listen_host))
		error_at(L, n->start_mark, "api: listen %s is not a loopback address: set "
			 "tls_cert_file and tls_key_file (plain HTTP would carry tokens in the clear)",
			 c->listen_host);
}

#define SUDO_DEFAULT_WAIT 120
#define SUDO_WAIT_MAX 600

static void parse_sudo_wait(struct loader *L, const struct field *f, yaml_node_t *n, void *obj)
{
	int64_t d;

	if (!duration_of(L, f, n, &d))
		return;
	if (d < 1 || d > SUDO_WAIT_MAX) {
		error_at(L, n->start_mark, "sudo.wait must be from 1s to 10m");
		return;
	}
	*AT(obj, f, int64_t) = d;
}

static const struct field sudo_section_fields[] = {
	{ "wait", parse_sudo_wait, offsetof(struct sbx_settings, sudo.wait), NULL, NULL },
	{ NULL, NULL, 0, NULL, NULL },
};

static void load_sudo(struct loader *L, yaml_node_t *n)
{
	L->settings->sudo.wait = SUDO_DEFAULT_WAIT;
	if (n)
		walk_map(L, n, sudo_section_fields, L->settings, "sudo", n->start_mark);
}

/* ---------------------------------------------------------------------- */
/* The document */

/* In dependency order: each section may refer to those above it. */
static const struct section {
	const char *key;
	void (*load)(struct loader *L, yaml_node_t *n); /* n is NULL when absent */
} sections[] = {
	{ "broker", load_broker },
	{ "directory", load_directory },
	{ "slack", load_slack },
	{ "fleet", load_fleet },
	{ "audit", load_audit },
	{ "drift", load_drift },
	{ "review", load_review },
	{ "api", load_api },
	{ "sudo", load_sudo },
	{ "profiles", load_profiles },
	{ "users", load_users },
	{ "groups", load_groups },
	{ "roles", load_roles },
	{ "alerts", load_alerts },
};
#define N_SECTIONS (sizeof(sections) / sizeof(sections[0]))

static void load_root(struct loader *L, yaml_node_t *root)
{
	yaml_node_t *found[N_SECTIONS] = { NULL };
	struct entry *e = NULL;
	ssize_t n_e = entries_of(L, root, "the policy", &e);

	for (ssize_t i = 0; i < n_e; i++) {
		size_t k = 0;

		while (k < N_SECTIONS && strcmp(sections[k].key, e[i].key) != 0)
			k++;
		if (k == N_SECTIONS)
			error_at(L, e[i].knode->start_mark,
				 "unknown key '%s' (the policy has broker, directory, slack, fleet, audit, "
				 "drift, review, api, sudo, profiles, users, groups, roles and alerts)", e[i].key);
		else
			found[k] = e[i].vnode;
	}
	free(e);
	for (size_t k = 0; k < N_SECTIONS; k++)
		sections[k].load(L, found[k]);
	apply_revoke_keys(L);
}

/* libyaml's reader reports a byte offset, not a mark. */
static yaml_mark_t mark_of_offset(const char *buf, size_t len, size_t off)
{
	yaml_mark_t m = { 0 };

	for (size_t i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			m.line++;
			m.column = 0;
		} else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
			m.column++;
		}
	}
	return m;
}

static void syntax_error(struct loader *L, const yaml_parser_t *ps, const char *buf, size_t len)
{
	yaml_mark_t m = ps->problem_mark;

	if (ps->error == YAML_MEMORY_ERROR || !ps->problem) {
		error_oom(L);
		return;
	}
	if (ps->error == YAML_READER_ERROR)
		m = mark_of_offset(buf, len, ps->problem_offset);
	if (ps->context)
		error_at(L, m, "%s (%s at line %d column %d)", ps->problem, ps->context,
			 (int)ps->context_mark.line + 1, (int)ps->context_mark.column + 1);
	else
		error_at(L, m, "%s", ps->problem);
}

static int parse_yaml(struct loader *L, const char *buf, size_t len)
{
	yaml_parser_t ps;
	yaml_document_t extra;
	int ret = -1;

	if (!yaml_parser_initialize(&ps)) {
		error_oom(L);
		return -1;
	}
	yaml_parser_set_input_string(&ps, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&ps, &L->doc)) {
		syntax_error(L, &ps, buf, len);
		goto out;
	}
	L->have_doc = true;
	/* A second document would be silently ignored: say so instead. */
	if (!yaml_parser_load(&ps, &extra)) {
		syntax_error(L, &ps, buf, len);
		goto out;
	}
	if (yaml_document_get_root_node(&extra))
		error_at(L, yaml_document_get_root_node(&extra)->start_mark,
			 "a second YAML document: the policy is one document");
	yaml_document_delete(&extra);
	ret = 0;
out:
	yaml_parser_delete(&ps);
	return ret;
}

static void sha256_hex(const char *buf, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	out[0] = '\0';
	if (!EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL) || n != 32)
		return;
	for (unsigned int i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[64] = '\0';
}

static int load(const char *buf, size_t len, const char *name, struct sbx_policy **out,
		struct sbx_settings *settings, struct sbx_policy_errors *errs)
{
	struct sbx_policy_errors own = { 0 };
	struct sbx_settings own_settings;
	struct loader L = { 0 };
	size_t first_error;

	L.errs = errs ? errs : &own;
	L.settings = &own_settings;
	memset(L.settings, 0, sizeof(*L.settings));
	first_error = L.errs->n;
	L.p = calloc(1, sizeof(*L.p));
	L.ix = calloc(1, sizeof(*L.ix));
	if (!L.p || !L.ix) {
		error_oom(&L);
		sbx_policy_index_free(L.ix);
		goto out;
	}
	L.p->index = L.ix;
	L.p->path = dup_or_oom(&L, name ? name : "(policy)");
	sha256_hex(buf, len, L.p->sha256_hex);
	if (!L.p->sha256_hex[0])
		error_add(&L, 0, 0, "cannot compute the policy's SHA-256");
	if (parse_yaml(&L, buf, len) < 0)
		goto out;
	load_root(&L, yaml_document_get_root_node(&L.doc));
	if (!L.n_errors && sbx_policy_index_lists(L.p) < 0)
		error_oom(&L);
out:
	if (L.have_doc)
		yaml_document_delete(&L.doc);
	for (size_t i = 0; L.p && L.roles && i < L.p->n_roles; i++)
		free(L.roles[i].require_ticket);
	free(L.roles);
	sbx_namemap_free(&L.revoke_on_ineligible);
	errors_sort(L.errs, first_error);
	sbx_policy_errors_free(&own);
	if (L.n_errors) {
		sbx_policy_free(L.p);
		return -1;
	}
	*out = L.p;
	if (settings)
		*settings = own_settings;
	return 0;
}

int sbx_policy_load_buffer(const char *buf, size_t len, const char *name,
			   struct sbx_policy **out, struct sbx_settings *settings,
			   struct sbx_policy_errors *errs)
{
	if (!out || (!buf && len)) {
		if (errs)
			(void)errors_append(errs, name, 0, 0, "no policy given");
		return -1;
	}
	return load(buf ? buf : "", len, name, out, settings, errs);
}

/* ---------------------------------------------------------------------- */
/* The file */

/* The policy decides who becomes root: never follow a link to it, never
 * block on a FIFO, never read more than a policy can sensibly be. */
static int read_policy(const char *path, char **buf, size_t *len, char *why, size_t whylen)
{
	struct stat st;
	char *b = NULL;
	size_t n = 0;
	int fd, ret = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ELOOP)
			snprintf(why, whylen, "is a symbolic link: give the real file's path");
		else
			snprintf(why, whylen, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(why, whylen, "cannot stat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		goto out;
	}
	if (st.st_size > POLICY_MAX_BYTES) {
		snprintf(why, whylen, "too large (%lld bytes; a policy may have at most %d MiB, "
			 "%lld bytes)", (long long)st.st_size, POLICY_MAX_MIB,
			 (long long)POLICY_MAX_BYTES);
		goto out;
	}
	/* Read what fstat promised; a file that changes meanwhile is read
	 * as far as it goes and the hash describes exactly those bytes. */
	if (sbx_read_fd_whole(fd, (size_t)st.st_size, &b, &n, why, whylen) < 0)
		goto out;
	*buf = b;
	*len = n;
	b = NULL;
	ret = 0;
out:
	free(b);
	close(fd);
	return ret;
}

int sbx_policy_load_file(const char *path, struct sbx_policy **out,
			 struct sbx_settings *settings, struct sbx_policy_errors *errs)
{
	char why[256];
	char *buf = NULL;
	size_t len = 0;
	int ret;

	if (!path || !out) {
		if (errs)
			(void)errors_append(errs, path, 0, 0, "no policy file given");
		return -1;
	}
	if (read_policy(path, &buf, &len, why, sizeof(why)) < 0) {
		if (errs)
			(void)errors_append(errs, path, 0, 0, why);
		return -1;
	}
	ret = load(buf, len, path, out, settings, errs);
	free(buf);
	return ret;
}
