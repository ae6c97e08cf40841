/*
 * The protections every HTTP endpoint of the broker shares (httpguard.h).
 */
#include "config.h"

#include "httpguard.h"

#include "log.h"
#include "sbxio.h"
#include "timeutil.h"
#include "text.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOTE_EVERY_MS (60 * 1000)    /* one log line per address (message) per minute */
#define NOTE_ADDRS 16                /* addresses counted apart; the rest share a slot */
#define NOTE_MHD 8                   /* MHD messages counted apart */

/* One TCP connection, from accept to close (MHD's socket context). */
struct conn_ctx {
	int fd;                   /* MHD's: shut down at the deadline, never closed here */
	int64_t deadline_ms;      /* monotonic; INT64_MAX while held */
	bool cut;                 /* shut down; MHD closes it on its next run */
	bool idle;                /* between requests: a cut is not trouble */
	char addr[INET6_ADDRSTRLEN];
	struct sbx_httpguard *g;
	struct conn_ctx *next;
};

/* Trouble with one address: the first of an interval is logged, the
 * rest counted and logged together when the interval ends. */
struct addr_note {
	char addr[INET6_ADDRSTRLEN]; /* "" when the slot is free */
	int64_t since_ms;
	unsigned refused, cut;
};

/* The same for MHD's messages, told apart by their format string (each
 * is a literal at one place in MHD). */
struct mhd_note {
	const char *fmt;             /* NULL when the slot is free */
	int64_t since_ms;
	unsigned more;
	char text[160];
};

struct sbx_httpguard {
	char label[16];
	int64_t timeout_s;
	unsigned per_address;
	struct conn_ctx *conns;
	struct addr_note addrs[NOTE_ADDRS + 1]; /* the last: every other address */
	struct mhd_note mhd[NOTE_MHD];
};

enum trouble { REFUSED, CUT };

struct sbx_httpguard *sbx_httpguard_new(const char *label, int64_t timeout_s,
					unsigned per_address)
{
	struct sbx_httpguard *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	snprintf(g->label, sizeof(g->label), "%s", label);
	g->timeout_s = timeout_s;
	g->per_address = per_address;
	return g;
}

static void say_mhd_more(const struct sbx_httpguard *g, const struct mhd_note *n, int64_t now)
{
	sbx_warn("%s: http: %u more like \"%s\" in the last %llds", g->label, n->more, n->text,
		 (long long)((now - n->since_ms + 999) / 1000));
}

void sbx_httpguard_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct sbx_httpguard *g = cls;
	struct mhd_note *n = NULL;
	int64_t now = sbx_mono_ms();
	char msg[512], clean[512];

	for (size_t i = 0; i < NOTE_MHD && !n; i++)
		if (g->mhd[i].fmt == fmt)
			n = &g->mhd[i];
	if (n && now - n->since_ms < NOTE_EVERY_MS) {
		n->more++;
		return;
	}
	/* A new message takes a free slot or the one said longest ago. */
	for (size_t i = 0; i < NOTE_MHD && !n; i++)
		if (!g->mhd[i].fmt)
			n = &g->mhd[i];
	if (!n) {
		n = &g->mhd[0];
		for (size_t i = 1; i < NOTE_MHD; i++)
			if (g->mhd[i].since_ms < n->since_ms)
				n = &g->mhd[i];
	}
	if (n->more)
		say_mhd_more(g, n, now);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	sbx_sanitize(msg, clean, sizeof(clean));
	sbx_warn("%s: http: %s", g->label, clean);
	n->fmt = fmt;
	n->since_ms = now;
	n->more = 0;
	sbx_sanitize(msg, n->text, sizeof(n->text));
}

const char *sbx_http_addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	snprintf(buf, len, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
			  (socklen_t)len);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
			  buf, (socklen_t)len);
	return buf;
}

const char *sbx_http_peer(struct MHD_Connection *conn, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	return sbx_http_addr_text(ci ? ci->client_addr : NULL, buf, len);
}

/* A refusal or a connection cut at its deadline: said at once the first
 * time in an interval (per address), counted after that. */
static void note_trouble(struct sbx_httpguard *g, const char *addr, enum trouble what)
{
	struct addr_note *n = NULL;

	for (size_t i = 0; i < NOTE_ADDRS && !n; i++)
		if (strcmp(g->addrs[i].addr, addr) == 0)
			n = &g->addrs[i];
	for (size_t i = 0; i < NOTE_ADDRS && !n; i++)
		if (!g->addrs[i].addr[0])
			n = &g->addrs[i];
	/* Many addresses at once (a local user can use all of 127/8): they
	 * share one slot, so the log stays bounded whatever they do. */
	if (!n) {
		n = &g->addrs[NOTE_ADDRS];
		addr = "other addresses";
	}
	if (n->addr[0]) {
		if (what == REFUSED)
			n->refused++;
		else
			n->cut++;
		return;
	}
	snprintf(n->addr, sizeof(n->addr), "%s", addr);
	n->since_ms = sbx_mono_ms();
	n->refused = n->cut = 0;
	if (what == REFUSED)
		sbx_warn("%s: refusing connections from %s: %u are open from there already (at "
			 "most %u per address); further refusals are counted and logged once a "
			 "minute", g->label, addr, g->per_address, g->per_address);
	else
		sbx_warn("%s: closed a connection from %s that was not done %llds after it was "
			 "accepted; further ones are counted and logged once a minute", g->label,
			 addr, (long long)g->timeout_s);
}

void sbx_httpguard_flush(struct sbx_httpguard *g, bool all)
{
	int64_t now = sbx_mono_ms();

	for (size_t i = 0; i <= NOTE_ADDRS; i++) {
		struct addr_note *n = &g->addrs[i];
		char refused[96] = "", cut[96] = "";

		if (!n->addr[0] || (!all && now - n->since_ms < NOTE_EVERY_MS))
			continue;
		if (!n->refused && !n->cut) {
			n->addr[0] = '\0';
			continue;
		}
		if (n->refused)
			snprintf(refused, sizeof(refused), "refused %u more connection%s (at most %u "
				 "open per address)", n->refused, n->refused == 1 ? "" : "s",
				 g->per_address);
		if (n->cut)
			snprintf(cut, sizeof(cut), "closed %u more not done %llds after they were "
				 "accepted", n->cut, (long long)g->timeout_s);
		sbx_warn("%s: from %s in the last %llds: %s%s%s", g->label, n->addr,
			 (long long)((now - n->since_ms + 999) / 1000), refused,
			 refused[0] && cut[0] ? "; " : "", cut);
		n->since_ms = now;
		n->refused = n->cut = 0;
		if (all)
			n->addr[0] = '\0';
	}
	for (size_t i = 0; i < NOTE_MHD; i++) {
		struct mhd_note *n = &g->mhd[i];

		if (!n->fmt || (!all && now - n->since_ms < NOTE_EVERY_MS))
			continue;
		if (n->more)
			say_mhd_more(g, n, now);
		n->fmt = NULL;
	}
}

enum MHD_Result sbx_httpguard_on_accept(void *cls, const struct sockaddr *sa, socklen_t salen)
{
	struct sbx_httpguard *g = cls;
	char addr[INET6_ADDRSTRLEN];
	unsigned open = 0;

	(void)salen;
	sbx_http_addr_text(sa, addr, sizeof(addr));
	for (const struct conn_ctx *c = g->conns; c; c = c->next)
		open += strcmp(c->addr, addr) == 0;
	if (open < g->per_address)
		return MHD_YES;
	note_trouble(g, addr, REFUSED);
	return MHD_NO;
}

static void conn_forget(struct sbx_httpguard *g, struct conn_ctx *c)
{
	for (struct conn_ctx **p = &g->conns; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	free(c);
}

void sbx_httpguard_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
				 enum MHD_ConnectionNotificationCode toe)
{
	struct sbx_httpguard *g = cls;
	const union MHD_ConnectionInfo *fd_info, *addr_info;
	struct conn_ctx *c = NULL;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (*socket_context)
			conn_forget(g, *socket_context);
		*socket_context = NULL;
		goto out;
	}
	fd_info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	addr_info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	c = calloc(1, sizeof(*c));
	if (!c || !fd_info) {
		/* A connection without a deadline is one a peer could keep:
		 * have MHD close it at once instead. */
		sbx_warn("%s: closing a connection it cannot watch (%s)", g->label,
			 c ? "no socket" : "out of memory");
		if (fd_info)
			(void)shutdown(fd_info->connect_fd, SHUT_RDWR);
		goto out;
	}
	c->fd = fd_info->connect_fd;
	c->g = g;
	c->deadline_ms = sbx_mono_ms() + g->timeout_s * 1000;
	sbx_http_addr_text(addr_info ? addr_info->client_addr : NULL, c->addr, sizeof(c->addr));
	c->next = g->conns;
	g->conns = c;
	*socket_context = c;
	c = NULL;
out:
	free(c);
}

void sbx_httpguard_rearm(struct MHD_Connection *conn, enum sbx_guard_state st)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn_ctx *c = ci ? ci->socket_context : NULL;

	if (!c)
		return;
	c->idle = st == SBX_GUARD_IDLE;
	c->deadline_ms = st == SBX_GUARD_HELD ? INT64_MAX : sbx_mono_ms() + c->g->timeout_s * 1000;
}

unsigned sbx_httpguard_cut_overdue(struct sbx_httpguard *g)
{
	int64_t now = sbx_mono_ms();
	unsigned n = 0;

	for (struct conn_ctx *c = g->conns; c; c = c->next) {
		if (c->cut || now < c->deadline_ms)
			continue;
		(void)shutdown(c->fd, SHUT_RDWR);
		c->cut = true;
		/* A kept-alive connection nobody uses any more is closed as
		 * HTTP allows; only one that was sending slowly is trouble. */
		if (!c->idle)
			note_trouble(g, c->addr, CUT);
		n++;
	}
	return n;
}

int64_t sbx_httpguard_deadline(const struct sbx_httpguard *g)
{
	int64_t at = INT64_MAX;

	for (const struct conn_ctx *c = g->conns; c; c = c->next)
		if (!c->cut && c->deadline_ms < at)
			at = c->deadline_ms;
	return at;
}

void sbx_httpguard_free(struct sbx_httpguard *g)
{
	if (!g)
		return;
	sbx_httpguard_flush(g, true);
	/* MHD calls on_connection(CLOSED) for each before it stops: by now
	 * the list is empty; anything left is freed anyway. */
	while (g->conns) {
		struct conn_ctx *c = g->conns;

		g->conns = c->next;
		free(c);
	}
	free(g);
}

bool sbx_http_length_over(struct MHD_Connection *conn, size_t max)
{
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long v = 0;

	if (!cl)
		return false;
	for (const char *c = cl; *c; c++) {
		if (*c < '0' || *c > '9' || v > max)
			return true;
		v = v * 10 + (unsigned long long)(*c - '0');
	}
	return v > max;
}

void sbx_http_body_add(struct sbx_http_body *b, const char *data, size_t n, size_t max)
{
	char *nb;

	if (b->too_big || b->len + n > max) {
		b->too_big = true;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;

		while (cap < b->len + n + 1)
			cap *= 2;
		nb = realloc(b->buf, cap);
		if (!nb) {
			b->too_big = true;
			return;
		}
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, data, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

void sbx_http_body_free(struct sbx_http_body *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}
