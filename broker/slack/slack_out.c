/*
 * Slack approvals: outgoing posts with a curl multi handle driven by the
 * broker's event loop (curl's sockets sit in the feature's epoll set, its
 * timer in the feature's timerfd), so a slow or dead Slack never blocks
 * the broker.  This file knows nothing of notifications: it posts a body
 * and reports what happened.
 */
#include "config.h"

#include "slack_out.h"

#include "sbxio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <curl/curl.h>

#define ANSWER_MAX 200 /* bytes of Slack's answer kept for the logs */

struct xfer {
	CURL *easy;
	struct curl_slist *hdrs;
	char answer[ANSWER_MAX + 1];
	size_t answer_len;
	char errbuf[CURL_ERROR_SIZE];
	slack_done_fn fn;
	void *arg;
	struct xfer *prev, *next;
};

struct slack_out {
	CURLM *multi;
	int ep;
	int64_t deadline;
	struct xfer *xfers;
	size_t n;
	char *ca_file;        /* NULL: the system's CAs */
};

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct slack_out *o = userp;
	struct epoll_event ev = { .data.u64 = SLACK_TAG(SLACK_TAG_CURL, fd) };

	(void)easy;
	(void)socketp;
	if (what == CURL_POLL_REMOVE) {
		(void)epoll_ctl(o->ep, EPOLL_CTL_DEL, fd, NULL);
		return 0;
	}
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
	if (epoll_ctl(o->ep, EPOLL_CTL_MOD, fd, &ev) < 0 &&
	    (errno != ENOENT || epoll_ctl(o->ep, EPOLL_CTL_ADD, fd, &ev) < 0))
		return -1;
	return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct slack_out *o = userp;

	(void)multi;
	o->deadline = timeout_ms < 0 ? INT64_MAX : sbx_mono_ms() + timeout_ms;
	return 0;
}

struct slack_out *slack_out_new(int ep, char *err, size_t errlen)
{
	struct slack_out *o = calloc(1, sizeof(*o));

	if (!o || !(o->multi = curl_multi_init())) {
		snprintf(err, errlen, "cannot set up libcurl");
		free(o);
		return NULL;
	}
	o->ep = ep;
	o->deadline = INT64_MAX;
	if (curl_multi_setopt(o->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(o->multi, CURLMOPT_SOCKETDATA, o) != CURLM_OK ||
	    curl_multi_setopt(o->multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
	    curl_multi_setopt(o->multi, CURLMOPT_TIMERDATA, o) != CURLM_OK ||
	    curl_multi_setopt(o->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 4L) != CURLM_OK) {
		snprintf(err, errlen, "cannot set up libcurl");
		slack_out_free(o);
		return NULL;
	}
	return o;
}

static size_t on_answer(char *data, size_t size, size_t nmemb, void *userp)
{
	struct xfer *x = userp;
	size_t n = size * nmemb, room = ANSWER_MAX - x->answer_len;

	memcpy(x->answer + x->answer_len, data, n < room ? n : room);
	x->answer_len += n < room ? n : room;
	x->answer[x->answer_len] = '\0';
	return n;
}

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->hdrs);
	free(x);
}

static int xfer_setup(struct xfer *x, const char *url, const char *body, int64_t timeout_s,
		      const char *ca_file)
{
	long total_ms = (long)timeout_s * 1000;
	long connect_ms = total_ms < 10000 ? total_ms : 10000;
	struct curl_slist *h;
	CURL *e = x->easy;

	x->hdrs = curl_slist_append(NULL, "Content-Type: application/json; charset=utf-8");
	if (!x->hdrs)
		return -1;
	/* No "Expect: 100-continue" round trip before a small body. */
	h = curl_slist_append(x->hdrs, "Expect:");
	if (!h)
		return -1;
	x->hdrs = h;
	if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
#else
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) !=
		    CURLE_OK ||
#endif
	    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total_ms) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, "sbx-brokerd/" PACKAGE_VERSION) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, x) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, x) != CURLE_OK)
		return -1;
	if (ca_file && curl_easy_setopt(e, CURLOPT_CAINFO, ca_file) != CURLE_OK)
		return -1;
	return 0;
}

int slack_out_set_ca(struct slack_out *o, const char *ca_file)
{
	char *copy = strdup(ca_file);

	if (!copy)
		return -1;
	free(o->ca_file);
	o->ca_file = copy;
	return 0;
}

int slack_out_post(struct slack_out *o, const char *url, const char *body, int64_t timeout_s,
		   slack_done_fn fn, void *arg)
{
	struct xfer *x = calloc(1, sizeof(*x));

	if (!x || !(x->easy = curl_easy_init()) || xfer_setup(x, url, body, timeout_s, o->ca_file) < 0 ||
	    curl_multi_add_handle(o->multi, x->easy) != CURLM_OK) {
		xfer_free(x);
		return -1;
	}
	x->fn = fn;
	x->arg = arg;
	x->next = o->xfers;
	if (o->xfers)
		o->xfers->prev = x;
	o->xfers = x;
	o->n++;
	return 0;
}

void slack_out_socket(struct slack_out *o, int fd, uint32_t events)
{
	int running = 0, flags = 0;

	if (events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	(void)curl_multi_socket_action(o->multi, fd, flags, &running);
}

void slack_out_timeout(struct slack_out *o)
{
	int running = 0;

	o->deadline = INT64_MAX;
	(void)curl_multi_socket_action(o->multi, CURL_SOCKET_TIMEOUT, 0, &running);
}

int64_t slack_out_deadline(const struct slack_out *o)
{
	return o->deadline;
}

size_t slack_out_active(const struct slack_out *o)
{
	return o->n;
}

static void unlink_xfer(struct slack_out *o, struct xfer *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		o->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	o->n--;
}

static void result_of(struct xfer *x, CURLcode rc, struct slack_result *res)
{
	curl_off_t retry = 0;

	memset(res, 0, sizeof(*res));
	(void)curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &res->status);
	if (curl_easy_getinfo(x->easy, CURLINFO_RETRY_AFTER, &retry) == CURLE_OK && retry > 0)
		res->retry_after = (int64_t)retry;
	if (rc != CURLE_OK) {
		res->status = 0;
		snprintf(res->error, sizeof(res->error), "%s",
			 x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
	} else {
		snprintf(res->error, sizeof(res->error), "HTTP %ld %s", res->status, x->answer);
	}
}

void slack_out_process(struct slack_out *o)
{
	CURLMsg *m;
	int left = 0;

	while ((m = curl_multi_info_read(o->multi, &left))) {
		struct xfer *x;
		struct slack_result res;
		char *priv = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		(void)curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		x = (struct xfer *)(void *)priv;
		if (!x)
			continue;
		result_of(x, m->data.result, &res);
		(void)curl_multi_remove_handle(o->multi, x->easy);
		unlink_xfer(o, x);
		/* The handle is gone from the multi before the callback, which
		 * may well start the next post. */
		x->fn(x->arg, &res);
		xfer_free(x);
	}
}

void slack_out_free(struct slack_out *o)
{
	if (!o)
		return;
	while (o->xfers) {
		struct xfer *x = o->xfers;

		(void)curl_multi_remove_handle(o->multi, x->easy);
		unlink_xfer(o, x);
		xfer_free(x);
	}
	curl_multi_cleanup(o->multi);
	free(o->ca_file);
	free(o);
}
