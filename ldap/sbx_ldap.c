/*
 * Reading users and groups from an LDAP directory with libldap.
 *
 * Every exchange has a deadline (the directory's timeout): the connect
 * (LDAP_OPT_NETWORK_TIMEOUT), StartTLS (LDAP_OPT_TIMEOUT, which bounds
 * libldap's synchronous calls), and the bind and each page of a search
 * (asynchronous calls waited for with ldap_result and a timeout).  A
 * server that accepts the connection and then never answers (a hung
 * slapd) costs at most one timeout per step, never a hang.
 *
 * Searches use the paged-results control, so a directory with more
 * entries than the server's size limit is read whole.
 */
#include "config.h"

#include "sbx_ldap.h"

#include "namemap.h"
#include "sbx_proto.h"
#include "secret.h"
#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h> /* ldap.h uses struct timeval without declaring it */
#include <unistd.h>

#include <ldap.h>

#define PAGE_SIZE 500

struct sbx_ldap {
	struct sbx_directory_conf c;
	LDAP *ld;
	char uri[256]; /* the server ld speaks to, or the last one tried */
};

/* ---------------------------------------------------------------------- */
/* Messages */

/* "Invalid credentials" or "Invalid credentials (the server's words)". */
static void ldap_reason(LDAP *ld, int rc, const char *diag, char *buf, size_t len)
{
	char *opt = NULL;

	if (!diag && ld && ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &opt) == LDAP_OPT_SUCCESS)
		diag = opt;
	if (diag && *diag)
		snprintf(buf, len, "%s (%s)", ldap_err2string(rc), diag);
	else
		snprintf(buf, len, "%s", ldap_err2string(rc));
	ldap_memfree(opt);
}

static enum sbx_directory_error classify(int rc)
{
	switch (rc) {
	case LDAP_INVALID_CREDENTIALS:
	case LDAP_INAPPROPRIATE_AUTH:
	case LDAP_STRONG_AUTH_REQUIRED:
	case LDAP_CONFIDENTIALITY_REQUIRED:
	case LDAP_INSUFFICIENT_ACCESS:
	case LDAP_UNWILLING_TO_PERFORM:
		return SBX_DIR_AUTH;
	case LDAP_NO_SUCH_OBJECT:
	case LDAP_INVALID_DN_SYNTAX:
	case LDAP_FILTER_ERROR:
	case LDAP_PROTOCOL_ERROR:
	case LDAP_SIZELIMIT_EXCEEDED:
	case LDAP_ADMINLIMIT_EXCEEDED:
	case LDAP_UNDEFINED_TYPE:
	case LDAP_INAPPROPRIATE_MATCHING:
		return SBX_DIR_CONFIG;
	case LDAP_NO_MEMORY:
		return SBX_DIR_NOMEM;
	default:
		return SBX_DIR_DOWN;
	}
}

/* ---------------------------------------------------------------------- */
/* Sessions */

struct sbx_ldap *sbx_ldap_new(const struct sbx_directory_conf *conf)
{
	struct sbx_ldap *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->c = *conf;
	if (s->c.n_uri)
		snprintf(s->uri, sizeof(s->uri), "%s", s->c.uri[0]);
	return s;
}

static void disconnect(struct sbx_ldap *s)
{
	if (s->ld)
		ldap_unbind_ext_s(s->ld, NULL, NULL);
	s->ld = NULL;
}

void sbx_ldap_free(struct sbx_ldap *s)
{
	if (!s)
		return;
	disconnect(s);
	free(s);
}

const char *sbx_ldap_uri(const struct sbx_ldap *s)
{
	return s ? s->uri : "";
}

/* Wait for the answer to msgid, at most the directory's timeout. */
static int wait_answer(struct sbx_ldap *s, int msgid, LDAPMessage **res)
{
	struct timeval tv = { (time_t)s->c.timeout, 0 };
	int rc, code = LDAP_SERVER_DOWN;

	*res = NULL;
	rc = ldap_result(s->ld, msgid, LDAP_MSG_ALL, &tv, res);
	if (rc == 0) {
		(void)ldap_abandon_ext(s->ld, msgid, NULL, NULL);
		return LDAP_TIMEOUT;
	}
	if (rc < 0) {
		(void)ldap_get_option(s->ld, LDAP_OPT_RESULT_CODE, &code);
		return code ? code : LDAP_SERVER_DOWN;
	}
	return LDAP_SUCCESS;
}

static bool wants_tls(const struct sbx_ldap *s, const char *uri)
{
	return strncmp(uri, "ldaps://", 8) == 0 ||
	       (strncmp(uri, "ldap://", 7) == 0 && s->c.start_tls);
}

static int set_options(struct sbx_ldap *s, LDAP *ld, const char *uri)
{
	struct timeval tv = { (time_t)s->c.timeout, 0 };
	int v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND, client = 0;

	if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS)
		return -1;
	if (!wants_tls(s, uri))
		return 0;
	if (s->c.tls_ca_file[0] &&
	    ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, s->c.tls_ca_file) != LDAP_OPT_SUCCESS)
		return -1;
	/* A directory that decides who gets root is never spoken to without
	 * checking its certificate, whatever ldap.conf says. */
	if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &client) != LDAP_OPT_SUCCESS)
		return -1;
	return 0;
}

static enum sbx_directory_error do_bind(struct sbx_ldap *s, const char *uri, char *err,
					size_t errlen)
{
	char pw[SBX_SECRET_MAX + 1], why[512], *diag = NULL;
	struct berval cred = { 0, pw };
	size_t pwlen = 0;
	LDAPMessage *res = NULL;
	enum sbx_directory_error ret = SBX_DIR_DOWN;
	int msgid, rc, code = LDAP_OTHER;

	pw[0] = '\0';
	if (s->c.bind_dn[0]) {
		if (sbx_secret_read("bind_password_file", s->c.bind_password_file, pw, sizeof(pw),
				    &pwlen, why, sizeof(why)) < 0) {
			(void)sbx_whyf(err, errlen, 0, "%s: cannot bind as %s: %s", uri, s->c.bind_dn, why);
			return SBX_DIR_AUTH;
		}
		cred.bv_len = pwlen;
	}
	rc = ldap_sasl_bind(s->ld, s->c.bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, &msgid);
	if (rc == LDAP_SUCCESS)
		rc = wait_answer(s, msgid, &res);
	if (rc == LDAP_SUCCESS)
		rc = ldap_parse_result(s->ld, res, &code, NULL, &diag, NULL, NULL, 0);
	if (rc == LDAP_SUCCESS)
		rc = code;
	if (rc == LDAP_SUCCESS) {
		ret = SBX_DIR_OK;
		goto out;
	}
	ldap_reason(s->ld, rc, diag, why, sizeof(why));
	ret = classify(rc);
	if (rc == LDAP_TIMEOUT)
		(void)sbx_whyf(err, errlen, 0, "%s: no answer to the bind within %llds", uri,
		    (long long)s->c.timeout);
	else if (ret == SBX_DIR_AUTH && s->c.bind_dn[0])
		(void)sbx_whyf(err, errlen, 0, "%s: bind as %s refused: %s (check bind_dn and the password in %s)",
		    uri, s->c.bind_dn, why, s->c.bind_password_file);
	else if (ret == SBX_DIR_AUTH)
		(void)sbx_whyf(err, errlen, 0, "%s: anonymous bind refused: %s (set bind_dn and "
		    "bind_password_file)", uri, why);
	else
		(void)sbx_whyf(err, errlen, 0, "%s: cannot reach the server: %s", uri, why);
out:
	explicit_bzero(pw, sizeof(pw));
	ldap_memfree(diag);
	ldap_msgfree(res);
	return ret;
}

static enum sbx_directory_error connect_one(struct sbx_ldap *s, const char *uri, char *err,
					    size_t errlen)
{
	char why[512];
	int rc;

	snprintf(s->uri, sizeof(s->uri), "%s", uri);
	rc = ldap_initialize(&s->ld, uri);
	if (rc != LDAP_SUCCESS) {
		(void)sbx_whyf(err, errlen, 0, "%s: %s", uri, ldap_err2string(rc));
		s->ld = NULL;
		return SBX_DIR_CONFIG;
	}
	if (set_options(s, s->ld, uri) < 0) {
		(void)sbx_whyf(err, errlen, 0, "%s: cannot set the connection's options (TLS CA file %s?)", uri,
		    s->c.tls_ca_file[0] ? s->c.tls_ca_file : "none");
		disconnect(s);
		return SBX_DIR_CONFIG;
	}
	if (strncmp(uri, "ldap://", 7) == 0 && s->c.start_tls) {
		rc = ldap_start_tls_s(s->ld, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			ldap_reason(s->ld, rc, NULL, why, sizeof(why));
			(void)sbx_whyf(err, errlen, 0, "%s: StartTLS failed: %s", uri, why);
			disconnect(s);
			return rc == LDAP_TIMEOUT || rc == LDAP_SERVER_DOWN ||
			       rc == LDAP_CONNECT_ERROR ? SBX_DIR_DOWN : classify(rc);
		}
	}
	return SBX_DIR_OK;
}

/* Connect to the first server that lets us bind.  With several servers,
 * err names every one that failed. */
static enum sbx_directory_error connect_any(struct sbx_ldap *s, char *err, size_t errlen)
{
	enum sbx_directory_error worst = SBX_DIR_DOWN, e;
	char one[512];
	size_t off = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!s->c.n_uri) {
		(void)sbx_whyf(err, errlen, 0, "no directory uri");
		return SBX_DIR_CONFIG;
	}
	for (size_t i = 0; i < s->c.n_uri; i++) {
		e = connect_one(s, s->c.uri[i], one, sizeof(one));
		if (e == SBX_DIR_OK) {
			e = do_bind(s, s->c.uri[i], one, sizeof(one));
			if (e == SBX_DIR_OK)
				return SBX_DIR_OK;
			disconnect(s);
		}
		/* A refusal says more than an unreachable server. */
		if (e == SBX_DIR_AUTH || (e == SBX_DIR_CONFIG && worst != SBX_DIR_AUTH))
			worst = e;
		if (err && off < errlen) {
			int w = snprintf(err + off, errlen - off, "%s%s", off ? "; " : "", one);

			off += w > 0 ? (size_t)w : 0;
		}
	}
	if (s->c.n_uri > 1)
		snprintf(s->uri, sizeof(s->uri), "%s", s->c.uri[0]);
	return worst;
}

/* ---------------------------------------------------------------------- */
/* Searching */

typedef int (*entry_fn)(struct sbx_ldap *s, LDAPMessage *e, void *ctx);

static enum sbx_directory_error search_page(struct sbx_ldap *s, const char *base,
					    const char *filter, char **attrs,
					    struct berval *cookie, entry_fn fn, void *ctx,
					    char *why, size_t whylen, int *ldap_rc)
{
	struct timeval limit = { (time_t)s->c.timeout, 0 };
	LDAPControl *page = NULL, *ctrls[2] = { NULL, NULL }, **rctrls = NULL, *pr;
	LDAPMessage *res = NULL;
	char *diag = NULL;
	enum sbx_directory_error ret = SBX_DIR_DOWN;
	int msgid, rc, code = LDAP_OTHER;
	ber_int_t count;

	rc = ldap_create_page_control(s->ld, PAGE_SIZE, cookie, 0, &page);
	if (rc == LDAP_SUCCESS) {
		ctrls[0] = page;
		rc = ldap_search_ext(s->ld, base, LDAP_SCOPE_SUBTREE, filter, attrs, 0, ctrls,
				     NULL, &limit, 0, &msgid);
	}
	ldap_control_free(page);
	if (rc == LDAP_SUCCESS)
		rc = wait_answer(s, msgid, &res);
	for (LDAPMessage *e = rc == LDAP_SUCCESS ? ldap_first_entry(s->ld, res) : NULL; e;
	     e = ldap_next_entry(s->ld, e)) {
		if (fn(s, e, ctx) < 0) {
			rc = LDAP_NO_MEMORY;
			break;
		}
	}
	if (rc == LDAP_SUCCESS)
		rc = ldap_parse_result(s->ld, res, &code, NULL, &diag, NULL, &rctrls, 0);
	if (rc == LDAP_SUCCESS)
		rc = code;
	*ldap_rc = rc;
	if (rc != LDAP_SUCCESS) {
		ldap_reason(s->ld, rc, diag, why, whylen);
		ret = classify(rc);
		goto out;
	}
	ber_memfree(cookie->bv_val);
	cookie->bv_val = NULL;
	cookie->bv_len = 0;
	pr = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls, NULL);
	if (pr && ldap_parse_pageresponse_control(s->ld, pr, &count, cookie) != LDAP_SUCCESS) {
		snprintf(why, whylen, "bad paged-results answer");
		ret = SBX_DIR_DOWN;
		goto out;
	}
	ret = SBX_DIR_OK;
out:
	ldap_controls_free(rctrls);
	ldap_memfree(diag);
	ldap_msgfree(res);
	return ret;
}

static enum sbx_directory_error search_all(struct sbx_ldap *s, const char *what,
					   const char *base, const char *filter, char **attrs,
					   entry_fn fn, void *ctx, char *err, size_t errlen)
{
	struct berval cookie = { 0, NULL };
	enum sbx_directory_error ret;
	char why[512];
	int rc = LDAP_SUCCESS;

	do
		ret = search_page(s, base, filter, attrs, &cookie, fn, ctx, why, sizeof(why), &rc);
	while (ret == SBX_DIR_OK && cookie.bv_len > 0);
	ber_memfree(cookie.bv_val);
	if (ret == SBX_DIR_OK)
		return ret;
	if (rc == LDAP_TIMEOUT)
		(void)sbx_whyf(err, errlen, 0, "%s: no answer when searching %s within %llds", s->uri, what,
		    (long long)s->c.timeout);
	else if (ret == SBX_DIR_DOWN)
		(void)sbx_whyf(err, errlen, 0, "%s: lost the server when searching %s: %s", s->uri, what, why);
	else if ((rc == LDAP_SIZELIMIT_EXCEEDED || rc == LDAP_ADMINLIMIT_EXCEEDED) &&
		 s->c.bind_dn[0])
		(void)sbx_whyf(err, errlen, 0, "%s: searching %s under %s with %s failed: %s: the server lets %s "
		    "read fewer entries than there are (OpenLDAP: limits dn.exact=\"%s\" "
		    "size=unlimited)", s->uri, what, base, filter, why, s->c.bind_dn, s->c.bind_dn);
	else if (rc == LDAP_SIZELIMIT_EXCEEDED || rc == LDAP_ADMINLIMIT_EXCEEDED)
		(void)sbx_whyf(err, errlen, 0, "%s: searching %s under %s with %s failed: %s: the server lets "
		    "anonymous clients read fewer entries than there are (bind as an account "
		    "allowed more: bind_dn)", s->uri, what, base, filter, why);
	else
		(void)sbx_whyf(err, errlen, 0, "%s: searching %s under %s with %s failed: %s", s->uri, what, base,
		    filter, why);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Entries into users and groups */

/* What a read collects before it becomes a struct sbx_directory_data. */
struct fetch {
	const struct sbx_directory_conf *c;
	struct sbx_directory_data *d;
	size_t cap_users, cap_groups;
	char **user_dn;      /* normalized DN of users[i] */
	char **manager_dn;   /* normalized manager DN of users[i], or NULL */
	struct sbx_namemap by_name;   /* user name -> index + 1 */
	struct sbx_namemap by_dn;     /* normalized DN -> index + 1 */
	struct sbx_namemap groups;    /* group name -> index + 1 */
	struct sbx_namemap members;   /* (group index + 1, member) */
};

/* The first value of attr as a C string, or NULL (none, or not text). */
static char *first_value(LDAP *ld, LDAPMessage *e, const char *attr, bool *oom)
{
	struct berval **v;
	char *s = NULL;

	if (!attr || !attr[0])
		return NULL;
	v = ldap_get_values_len(ld, e, attr);
	if (v && v[0] && v[0]->bv_len < 4096 && !memchr(v[0]->bv_val, '\0', v[0]->bv_len)) {
		s = strndup(v[0]->bv_val, v[0]->bv_len);
		if (!s)
			*oom = true;
	}
	ldap_value_free_len(v);
	return s;
}

/* DNs are compared in one spelling: LDAPv3 form, ASCII lower case (the
 * attributes sbx sees in DNs, uid and cn, match case-insensitively). */
static char *norm_dn(const char *dn)
{
	char *out = NULL, *copy;

	if (ldap_dn_normalize(dn, LDAP_DN_FORMAT_LDAP, &out, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS &&
	    out)
		copy = strdup(out);
	else
		copy = strdup(dn);
	ldap_memfree(out);
	for (char *c = copy; c && *c; c++)
		*c = (char)tolower((unsigned char)*c);
	return copy;
}

char *sbx_ldap_uid_of_dn(const char *attr_uid, const char *dn)
{
	LDAPDN parsed = NULL;
	char *uid = NULL;

	if (ldap_str2dn(dn, &parsed, LDAP_DN_FORMAT_LDAP) != LDAP_SUCCESS || !parsed ||
	    !parsed[0] || !parsed[0][0]) {
		ldap_dnfree(parsed);
		return NULL;
	}
	/* An empty value ("uid=") comes back as a NULL bv_val, which memchr
	 * and strndup must not be given (found by tests/fuzz/fuzz_ldap.c);
	 * it names nobody anyway. */
	if (parsed[0][0]->la_attr.bv_len == strlen(attr_uid) &&
	    strncasecmp(parsed[0][0]->la_attr.bv_val, attr_uid, strlen(attr_uid)) == 0 &&
	    parsed[0][0]->la_value.bv_val && parsed[0][0]->la_value.bv_len > 0 &&
	    !memchr(parsed[0][0]->la_value.bv_val, '\0', parsed[0][0]->la_value.bv_len))
		uid = strndup(parsed[0][0]->la_value.bv_val, parsed[0][0]->la_value.bv_len);
	ldap_dnfree(parsed);
	if (uid && !sbx_name_valid(uid)) {
		free(uid);
		uid = NULL;
	}
	return uid;
}

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	size_t want = *cap ? *cap * 2 : 64;
	void *v;

	if (n < *cap)
		return 0;
	v = realloc(*arr, want * elem);
	if (!v)
		return -ENOMEM;
	memset((char *)v + *cap * elem, 0, (want - *cap) * elem);
	*arr = v;
	*cap = want;
	return 0;
}

static int grow_users(struct fetch *f)
{
	size_t cap = f->cap_users;

	if (grow((void **)&f->d->users, &cap, f->d->n_users, sizeof(*f->d->users)) < 0)
		return -ENOMEM;
	cap = f->cap_users;
	if (grow((void **)&f->user_dn, &cap, f->d->n_users, sizeof(*f->user_dn)) < 0)
		return -ENOMEM;
	cap = f->cap_users;
	if (grow((void **)&f->manager_dn, &cap, f->d->n_users, sizeof(*f->manager_dn)) < 0)
		return -ENOMEM;
	f->cap_users = cap;
	return 0;
}

static int user_entry(struct sbx_ldap *s, LDAPMessage *e, void *ctx)
{
	struct fetch *f = ctx;
	struct sbx_user u = { 0 };
	char *dn = NULL, *manager = NULL, *ndn = NULL, *nmanager = NULL;
	size_t i = f->d->n_users;
	bool oom = false;
	int ret = -ENOMEM;

	u.name = first_value(s->ld, e, f->c->attr_uid, &oom);
	if (!oom && (!u.name || !sbx_name_valid(u.name) ||
		     sbx_namemap_has(&f->by_name, NULL, u.name))) {
		f->d->skipped_users++;
		ret = 0;
		goto out;
	}
	u.email = first_value(s->ld, e, f->c->attr_mail, &oom);
	u.slack_id = first_value(s->ld, e, f->c->attr_slack_id, &oom);
	manager = first_value(s->ld, e, f->c->attr_manager, &oom);
	dn = ldap_get_dn(s->ld, e);
	ndn = dn ? norm_dn(dn) : NULL;
	nmanager = manager ? norm_dn(manager) : NULL;
	if (oom || !ndn || (manager && !nmanager) || grow_users(f) < 0)
		goto out;
	f->d->users[i] = u;
	f->user_dn[i] = ndn;
	f->manager_dn[i] = nmanager;
	f->d->n_users++;
	memset(&u, 0, sizeof(u));
	ndn = nmanager = NULL;
	if (sbx_namemap_put(&f->by_name, NULL, f->d->users[i].name, (void *)(i + 1), NULL) < 0 ||
	    sbx_namemap_put(&f->by_dn, NULL, f->user_dn[i], (void *)(i + 1), NULL) < 0)
		goto out;
	ret = 0;
out:
	free(u.name);
	free(u.email);
	free(u.slack_id);
	free(manager);
	free(ndn);
	free(nmanager);
	ldap_memfree(dn);
	return ret;
}

static int add_member(struct fetch *f, size_t gi, char *name)
{
	struct sbx_group *g = &f->d->groups[gi];
	const void *ns = (const void *)(uintptr_t)(gi + 1);
	char **v;

	if (!name)
		return 0;
	if (!sbx_name_valid(name) || sbx_namemap_has(&f->members, ns, name)) {
		free(name);
		return 0;
	}
	v = realloc(g->members.v, (g->members.n + 1) * sizeof(*v));
	if (!v) {
		free(name);
		return -ENOMEM;
	}
	g->members.v = v;
	v[g->members.n++] = name;
	return sbx_namemap_put(&f->members, ns, name, NULL, NULL) < 0 ? -ENOMEM : 0;
}

/* A member DN as a user name: a user the search found, else the uid in
 * the DN itself. */
static char *member_name(struct fetch *f, const char *dn, bool *oom)
{
	char *ndn = norm_dn(dn), *name;
	void *idx;

	if (!ndn) {
		*oom = true;
		return NULL;
	}
	idx = sbx_namemap_get(&f->by_dn, NULL, ndn);
	free(ndn);
	if (idx) {
		name = strdup(f->d->users[(uintptr_t)idx - 1].name);
		if (!name)
			*oom = true;
		return name;
	}
	return sbx_ldap_uid_of_dn(f->c->attr_uid, dn);
}

static int group_members(struct sbx_ldap *s, LDAPMessage *e, struct fetch *f, size_t gi)
{
	struct berval **dns = ldap_get_values_len(s->ld, e, f->c->attr_member);
	struct berval **uids = ldap_get_values_len(s->ld, e, f->c->attr_member_uid);
	bool oom = false;
	int ret = -ENOMEM;

	for (size_t i = 0; dns && dns[i]; i++) {
		char *dn = memchr(dns[i]->bv_val, '\0', dns[i]->bv_len) ? NULL
				: strndup(dns[i]->bv_val, dns[i]->bv_len);
		char *name = dn ? member_name(f, dn, &oom) : NULL;

		free(dn);
		if (oom || add_member(f, gi, name) < 0)
			goto out;
	}
	for (size_t i = 0; uids && uids[i]; i++) {
		char *name = memchr(uids[i]->bv_val, '\0', uids[i]->bv_len) ? NULL
				: strndup(uids[i]->bv_val, uids[i]->bv_len);

		if (add_member(f, gi, name) < 0)
			goto out;
	}
	ret = 0;
out:
	ldap_value_free_len(dns);
	ldap_value_free_len(uids);
	return ret;
}

/* Two entries with one name (a groupOfNames and a posixGroup, which the
 * standard schema cannot put in one entry) make one group. */
static int group_entry(struct sbx_ldap *s, LDAPMessage *e, void *ctx)
{
	struct fetch *f = ctx;
	bool oom = false;
	char *name = first_value(s->ld, e, f->c->attr_group_name, &oom);
	void *idx;
	size_t gi;

	if (oom)
		return -ENOMEM;
	if (!name || !sbx_name_valid(name)) {
		f->d->skipped_groups++;
		free(name);
		return 0;
	}
	idx = sbx_namemap_get(&f->groups, NULL, name);
	if (idx) {
		free(name);
		gi = (uintptr_t)idx - 1;
	} else {
		if (grow((void **)&f->d->groups, &f->cap_groups, f->d->n_groups,
			 sizeof(*f->d->groups)) < 0) {
			free(name);
			return -ENOMEM;
		}
		gi = f->d->n_groups++;
		f->d->groups[gi].name = name;
		if (sbx_namemap_put(&f->groups, NULL, name, (void *)(gi + 1), NULL) < 0)
			return -ENOMEM;
	}
	return group_members(s, e, f, gi);
}

/* Managers are DNs: turn each into the manager's user name. */
static int resolve_managers(struct fetch *f)
{
	for (size_t i = 0; i < f->d->n_users; i++) {
		struct sbx_user *u = &f->d->users[i];
		void *idx;

		if (!f->manager_dn[i])
			continue;
		idx = sbx_namemap_get(&f->by_dn, NULL, f->manager_dn[i]);
		if (idx) {
			u->manager = strdup(f->d->users[(uintptr_t)idx - 1].name);
			if (!u->manager)
				return -ENOMEM;
		} else {
			u->manager = sbx_ldap_uid_of_dn(f->c->attr_uid, f->manager_dn[i]);
		}
		if (u->manager && strcmp(u->manager, u->name) == 0) {
			free(u->manager);
			u->manager = NULL;
		}
	}
	return 0;
}

static void fetch_done(struct fetch *f)
{
	for (size_t i = 0; i < f->d->n_users; i++) {
		free(f->user_dn[i]);
		free(f->manager_dn[i]);
	}
	free(f->user_dn);
	free(f->manager_dn);
	sbx_namemap_free(&f->by_name);
	sbx_namemap_free(&f->by_dn);
	sbx_namemap_free(&f->groups);
	sbx_namemap_free(&f->members);
}

static enum sbx_directory_error fetch_once(struct sbx_ldap *s, struct sbx_directory_data *d,
					   char *err, size_t errlen)
{
	struct fetch f = { .c = &s->c, .d = d };
	char *user_attrs[] = { s->c.attr_uid, s->c.attr_mail, s->c.attr_manager,
			       s->c.attr_slack_id[0] ? s->c.attr_slack_id : NULL, NULL };
	char *group_attrs[] = { s->c.attr_group_name, s->c.attr_member, s->c.attr_member_uid,
				NULL };
	enum sbx_directory_error ret;

	ret = search_all(s, "users", s->c.user_base, s->c.user_filter, user_attrs, user_entry, &f,
			 err, errlen);
	if (ret == SBX_DIR_OK)
		ret = search_all(s, "groups", s->c.group_base, s->c.group_filter, group_attrs,
				 group_entry, &f, err, errlen);
	if (ret == SBX_DIR_OK && resolve_managers(&f) < 0)
		ret = SBX_DIR_NOMEM;
	if (ret == SBX_DIR_NOMEM)
		(void)sbx_whyf(err, errlen, 0, "out of memory reading the directory");
	fetch_done(&f);
	return ret;
}

enum sbx_directory_error sbx_ldap_fetch(struct sbx_ldap *s, struct sbx_directory_data **out,
					char *err, size_t errlen)
{
	struct sbx_directory_data *d = NULL;
	enum sbx_directory_error ret;
	bool reused = s->ld != NULL;

	*out = NULL;
	for (;;) {
		if (!s->ld) {
			ret = connect_any(s, err, errlen);
			if (ret != SBX_DIR_OK)
				return ret;
		}
		d = calloc(1, sizeof(*d));
		if (!d) {
			(void)sbx_whyf(err, errlen, 0, "out of memory reading the directory");
			return SBX_DIR_NOMEM;
		}
		ret = fetch_once(s, d, err, errlen);
		if (ret == SBX_DIR_OK)
			break;
		sbx_directory_data_free(d);
		d = NULL;
		disconnect(s);
		/* A kept connection may have been closed by the server while
		 * idle: one fresh try before calling the directory down. */
		if (ret != SBX_DIR_DOWN || !reused)
			return ret;
		reused = false;
	}
	d->fingerprint = sbx_directory_data_fingerprint(d);
	*out = d;
	return SBX_DIR_OK;
}

static int count_entry(struct sbx_ldap *s, LDAPMessage *e, void *ctx)
{
	(void)s;
	(void)e;
	*(bool *)ctx = true;
	return 0;
}

enum sbx_directory_error sbx_ldap_user_exists(struct sbx_ldap *s, const char *name, bool *found,
					      char *err, size_t errlen)
{
	struct berval in = { strlen(name), (char *)name }, esc = { 0, NULL };
	char filter[sizeof(s->c.user_filter) + 3 * SBX_NAME_MAX + 96];
	char *attrs[] = { LDAP_NO_ATTRS, NULL };
	enum sbx_directory_error ret;
	bool reused = s->ld != NULL;

	*found = false;
	if (ldap_bv2escaped_filter_value(&in, &esc) != 0) {
		(void)sbx_whyf(err, errlen, 0, "out of memory");
		return SBX_DIR_NOMEM;
	}
	snprintf(filter, sizeof(filter), "(&%s(%s=%s))", s->c.user_filter, s->c.attr_uid,
		 esc.bv_val);
	ber_memfree(esc.bv_val);
	for (;;) {
		if (!s->ld) {
			ret = connect_any(s, err, errlen);
			if (ret != SBX_DIR_OK)
				return ret;
		}
		ret = search_all(s, "a user", s->c.user_base, filter, attrs, count_entry, found,
				 err, errlen);
		if (ret == SBX_DIR_OK)
			return ret;
		disconnect(s);
		if (ret != SBX_DIR_DOWN || !reused)
			return ret;
		reused = false;
	}
}
