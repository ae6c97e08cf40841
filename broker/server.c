#include "config.h"

#include "server.h"

#include "fleet.h"

#include "directory.h"
#include "dispatch.h"
#include "tail.h"
#include "user_limits.h"
#include "slack/slack.h"
#include "api/api.h"
#include "evidence.h"
#include "log.h"
#include "text.h"
#include "sbxio.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct conn {
	int fd;
	struct sbx_caller caller;
	uint8_t hdr[SBX_HDR_LEN];
	size_t hdr_len;
	uint8_t *in;          /* the frame being read, header included */
	size_t in_len, in_need;
	sbx_msg out;          /* the reply being held or sent */
	size_t out_off;
	bool replying;        /* out holds a reply: read nothing more until sent */
	bool close_after;
	uint64_t wait_seq;    /* out may go only once this seq is durable */
	struct sbx_change *change; /* a fleet change whose outcome is the reply */
	struct sbx_tail_sub *tail; /* it follows the journal (TAIL): frames are pushed */
	bool tail_out;        /* watching EPOLLOUT for the follower's frames */
	int64_t deadline_ms;
	bool dead;            /* closed; freed at the end of the loop iteration */
	struct conn *prev, *next;
};

struct server {
	struct sbx_broker *b;
	const struct sbx_server_opts *o;
	int ep, listen_fd, sig_fd, journal_fd;
	struct conn *conns; /* every open connection, for deadlines and waits */
	/* Closed connections wait here until the end of the loop iteration:
	 * a later event of the same epoll batch may still point at them. */
	struct conn *graveyard;
	int n_conns;
	/* Held open so that, out of fds, the loop can still take one
	 * connection off the listen queue and close it (the libev/nginx way)
	 * instead of spinning on a listener that stays readable. */
	int spare_fd;
	/* Out of fds even without the spare: the listener is not watched
	 * until then (monotonic ms; 0: it is watched). */
	int64_t listen_paused_until;
	bool stopping;
	/* Group commit: records appended during a loop pass are handed to the
	 * writer together at its end.  Records nobody waits for (login
	 * decisions, expiries) may wait up to COMMIT_DELAY_MS to share a
	 * sync with later ones. */
	uint64_t committed;
	int64_t uncommitted_since_ms;
	bool urgent;
	/* Snapshots: the seq the last one was tried at, and SIGUSR1's
	 * "now, whether due or not". */
	uint64_t snap_tried;
	bool snap_now;
};

#define COMMIT_DELAY_MS 50
/* A snapshot is due when the records since the last one reach the larger
 * of this and the number of requests in memory.  Writing one costs about
 * as much as replaying that many records (in a child process, off the
 * loop), so the work stays in proportion to the records written; and a
 * start-up loads the snapshot and replays at most that many records. */
#define SNAPSHOT_MIN_RECORDS 10000
/* A snapshot child still at work after the larger of this and ten times
 * what the last one took is stuck (a lock a thread of the broker held at
 * the fork, a disk that does not answer): it is killed, so that the next
 * one can start. */
#define SNAPSHOT_STUCK_MS (10 * 60 * 1000)

/* epoll tags for the fds that are not connections */
static int tag_listen, tag_signal, tag_journal, tag_directory, tag_slack, tag_fleet,
	tag_snapshot, tag_api, tag_evidence;

int sbx_server_socket_dir(const char *path, char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct stat st;
	char *slash;

	if (strlen(path) >= sizeof(dir))
		return sbx_whyf(err, errlen, -ENAMETOOLONG, "socket path %s is too long (at most "
				"%zu bytes)", path, sizeof(dir) - 1);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) == 0) {
		/* Clients of every uid must reach the socket; the umask is strict. */
		(void)chmod(dir, 0755);
		return 0;
	}
	if (errno != EEXIST)
		return sbx_whyf(err, errlen, -errno, "cannot create %s: %s", dir, strerror(errno));
	/* Someone else's directory, or one others may write to, lets them
	 * swap the socket or the group table for their own. */
	if (lstat(dir, &st) < 0)
		return sbx_whyf(err, errlen, -errno, "cannot stat %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return sbx_whyf(err, errlen, -ENOTDIR, "refusing socket directory %s: not a "
				"directory (a symbolic link?)", dir);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return sbx_whyf(err, errlen, -EPERM, "refusing socket directory %s: it belongs to "
				"uid %u, not to root or to the broker's user", dir,
				(unsigned)st.st_uid);
	if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))
		return sbx_whyf(err, errlen, -EPERM, "refusing socket directory %s: others may "
				"write to it (mode %04o without the sticky bit): chmod go-w %s", dir,
				(unsigned)(st.st_mode & 07777), dir);
	return 0;
}

int sbx_server_listen(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t umask_was;
	int fd = -1, rc;

	if (sbx_server_socket_dir(path, err, errlen) < 0)
		return -1;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket; refusing to replace it",
				 path);
			return -1;
		}
		unlink(path);
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* The socket is born with mode 0666 (who may do what is decided per
	 * peer): no chmod on the path afterwards, which another user could
	 * race in a directory they can write to. */
	umask_was = umask(0111);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(umask_was);
	if (rc < 0 || listen(fd, 512) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void conn_close(struct server *s, struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	sbx_limits_conn_close(s->b->limits, c->caller.uid);
	free(c->in);
	c->in = NULL;
	sbx_msg_free(&c->out);
	/* The change still happens (or fails); nobody is told. */
	sbx_change_abandon(c->change);
	c->change = NULL;
	sbx_tail_sub_close(s->b->tail, c->tail);
	c->tail = NULL;
	c->prev = NULL;
	c->next = s->graveyard;
	s->graveyard = c;
}

static void bury_dead(struct server *s)
{
	while (s->graveyard) {
		struct conn *c = s->graveyard;

		s->graveyard = c->next;
		free(c);
	}
}

static void conn_watch(struct server *s, struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_reset_input(struct server *s, struct conn *c)
{
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_need = 0;
	c->hdr_len = 0;
	c->replying = false;
	c->wait_seq = 0;
	c->out_off = 0;
	sbx_msg_free(&c->out);
	c->deadline_ms = sbx_mono_ms() + s->o->io_timeout_ms;
}

/* Send what can be sent now.  Returns -1 when the connection is gone. */
static int conn_flush(struct server *s, struct conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t w = send(c->fd, c->out.buf + c->out_off, c->out.len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			conn_watch(s, c, EPOLLOUT);
			return 0;
		}
		if (w <= 0) {
			conn_close(s, c);
			return -1;
		}
		c->out_off += (size_t)w;
	}
	if (c->close_after) {
		conn_close(s, c);
		return -1;
	}
	conn_reset_input(s, c);
	conn_watch(s, c, EPOLLIN);
	c->tail_out = false;
	return 0;
}

/* The reply is ready: send it now, or hold it until its record is durable. */
static int conn_reply(struct server *s, struct conn *c)
{
	c->replying = true;
	c->deadline_ms = sbx_mono_ms() + s->o->io_timeout_ms;
	if (sbx_msg_finish(&c->out) < 0) {
		sbx_msg_free(&c->out);
		sbx_msg_init_reply(&c->out, SBX_OP_ERROR, SBX_ST_INTERNAL, "reply too large");
		sbx_msg_finish(&c->out);
	}
	if (c->wait_seq && c->wait_seq > sbx_journal_durable_seq(s->b->journal)) {
		conn_watch(s, c, 0);
		s->urgent = true;
		return 0;
	}
	c->wait_seq = 0;
	return conn_flush(s, c);
}

static int conn_malformed(struct server *s, struct conn *c, const char *why)
{
	sbx_broker_malformed(&c->out, why);
	c->close_after = true;
	c->wait_seq = 0;
	return conn_reply(s, c);
}

static int conn_dispatch(struct server *s, struct conn *c)
{
	char why[256];

	if (sbx_frame_validate(c->in, c->in_len, 0, why, sizeof(why)) < 0)
		return conn_malformed(s, c, why);
	c->change = sbx_broker_handle(s->b, &c->caller, c->in, c->in_len, &c->out, &c->wait_seq);
	if (!c->tail)
		c->tail = sbx_tail_claim(s->b->tail);
	free(c->in);
	c->in = NULL;
	if (c->change) {
		/* The fleet's log decides first (fleet_progress replies). */
		c->replying = true;
		conn_watch(s, c, 0);
		return 0;
	}
	return conn_reply(s, c);
}

/* Changes the fleet has finished: their replies go out (or wait for the
 * journal like any other). */
static void fleet_progress(struct server *s)
{
	struct conn *c, *next;

	for (c = s->conns; c; c = next) {
		next = c->next;
		if (!c->change || c->change->state != SBX_CHANGE_DONE)
			continue;
		sbx_broker_take_reply(c->change, &c->out, &c->wait_seq);
		c->change = NULL;
		conn_reply(s, c);
	}
}

/* Read what is there; dispatch a frame once it is whole. */
static void conn_readable(struct server *s, struct conn *c)
{
	for (;;) {
		uint8_t *dst;
		size_t want;
		ssize_t r;

		if (c->replying)
			return;
		/* A follower sends nothing more: data or a hang-up ends it. */
		if (c->tail) {
			char byte;

			r = recv(c->fd, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
			if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			conn_close(s, c);
			return;
		}
		if (c->hdr_len < SBX_HDR_LEN) {
			dst = c->hdr + c->hdr_len;
			want = SBX_HDR_LEN - c->hdr_len;
		} else {
			dst = c->in + c->in_len;
			want = c->in_need - c->in_len;
		}
		r = recv(c->fd, dst, want, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			conn_close(s, c);
			return;
		}
		if (c->hdr_len < SBX_HDR_LEN) {
			struct sbx_hdr h;
			int rc;

			c->hdr_len += (size_t)r;
			if (c->hdr_len < SBX_HDR_LEN)
				continue;
			rc = sbx_hdr_decode(c->hdr, SBX_HDR_LEN, &h);
			if (rc < 0) {
				conn_malformed(s, c, rc == -EPROTO ? "unsupported protocol version"
								   : "frame length out of range");
				return;
			}
			c->in = malloc(h.length);
			if (!c->in) {
				conn_close(s, c);
				return;
			}
			memcpy(c->in, c->hdr, SBX_HDR_LEN);
			c->in_len = SBX_HDR_LEN;
			c->in_need = h.length;
		} else {
			c->in_len += (size_t)r;
		}
		if (c->in_len == c->in_need) {
			if (conn_dispatch(s, c) < 0)
				return;
		}
	}
}

/* The peer hung up while its reply waits for the journal: stop watching it
 * (epoll would report the hang-up again and again) and let the release
 * close it. */
static bool conn_held_and_gone(struct server *s, struct conn *c, uint32_t events)
{
	if (!(events & (EPOLLHUP | EPOLLERR)) || !c->replying || (!c->wait_seq && !c->change))
		return false;
	epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	c->close_after = true;
	return true;
}

#define LISTEN_PAUSE_MS 100

/* Out of fds: close the spare, take one connection off the queue and close
 * it, take the spare back.  The peer sees its connection closed; the loop
 * does not spin.  Without a spare (the limit fell below what is open),
 * stop watching the listener for a moment instead. */
static void shed_one(struct server *s)
{
	int fd = -1;

	if (s->spare_fd >= 0) {
		close(s->spare_fd);
		fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0)
			close(fd);
		s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0 || s->spare_fd < 0) {
		epoll_ctl(s->ep, EPOLL_CTL_DEL, s->listen_fd, NULL);
		s->listen_paused_until = sbx_mono_ms() + LISTEN_PAUSE_MS;
	}
	sbx_warn("accept: out of file descriptors (%d connections open): closing new "
		 "connections until some end", s->n_conns);
}

static void resume_listening(struct server *s)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &tag_listen };

	if (!s->listen_paused_until || sbx_mono_ms() < s->listen_paused_until)
		return;
	if (s->spare_fd < 0)
		s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->listen_fd, &ev) == 0 || errno == EEXIST)
		s->listen_paused_until = 0;
	else
		s->listen_paused_until = sbx_mono_ms() + LISTEN_PAUSE_MS;
}

/* A connection the limits refuse is closed at once: the peer gets EOF,
 * and the slot it wanted stays free. */
static bool admitted(struct server *s, const struct sbx_caller *who)
{
	int rc = sbx_limits_conn_open(s->b->limits, who->uid);

	if (rc == 0)
		return true;
	sbx_warn("accept: refused a connection of uid %u (%s)", (unsigned)who->uid,
		 rc == -EUSERS ? "it holds its share of connections"
		 : rc == -ENFILE ? "the slots left are root's" : "too many users at once");
	return false;
}

static void accept_all(struct server *s)
{
	for (;;) {
		struct epoll_event ev = { .events = EPOLLIN };
		struct sbx_caller who;
		struct conn *c;
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE)
				shed_one(s);
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				sbx_warn("accept: %s", strerror(errno));
			return;
		}
		if (sbx_caller_from_socket(fd, &who) < 0 || !admitted(s, &who)) {
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			sbx_limits_conn_close(s->b->limits, who.uid);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->caller = who;
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->n_conns++;
		conn_reset_input(s, c);
		ev.data.ptr = c;
		if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			conn_close(s, c);
	}
}

/* The journal moved on (or failed): release the replies it was holding. */
static void journal_progress(struct server *s)
{
	uint64_t durable;
	struct conn *c, *next;
	bool failed;

	sbx_journal_ack_event(s->b->journal);
	failed = sbx_journal_failed(s->b->journal, NULL, 0);
	if (failed)
		sbx_broker_degrade(s->b);
	durable = sbx_journal_durable_seq(s->b->journal);
	for (c = s->conns; c; c = next) {
		next = c->next;
		if (!c->replying || !c->wait_seq)
			continue;
		if (c->wait_seq > durable) {
			if (!failed)
				continue;
			/* Never acknowledge what did not reach the disk. */
			char msg[700];

			sbx_broker_not_recorded(s->b, msg, sizeof(msg));
			sbx_msg_free(&c->out);
			sbx_msg_init_reply(&c->out, SBX_OP_ERROR, SBX_ST_UNAVAILABLE, msg);
			sbx_msg_finish(&c->out);
		}
		c->wait_seq = 0;
		conn_flush(s, c);
	}
}

static void handle_signals(struct server *s)
{
	struct signalfd_siginfo si;

	while (read(s->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			sbx_broker_reload(s->b);
			break;
		case SIGTERM:
		case SIGINT:
			sbx_info("signal %u: stopping", si.ssi_signo);
			s->stopping = true;
			break;
		case SIGUSR1:
			/* Said once it is written (or why not): an operator
			 * asking again and again gets no line each time. */
			sbx_debug("signal %u: writing a snapshot", si.ssi_signo);
			s->snap_now = true;
			break;
		}
	}
}

static void sweep_deadlines(struct server *s)
{
	int64_t now = sbx_mono_ms();
	struct conn *c, *next;

	for (c = s->conns; c; c = next) {
		next = c->next;
		/* A reply held for the journal or the fleet's log is the
		 * broker's delay, not the client's: it is never timed out here. */
		if (c->replying && (c->wait_seq || c->change))
			continue;
		/* A follower is bounded by its queue instead (tail.h). */
		if (c->tail && !c->replying)
			continue;
		if (now >= c->deadline_ms)
			conn_close(s, c);
	}
}

static void commit_journal(struct server *s)
{
	uint64_t last = sbx_journal_last_seq(s->b->journal);
	int64_t now = sbx_mono_ms();

	if (last == s->committed)
		return;
	if (!s->uncommitted_since_ms)
		s->uncommitted_since_ms = now;
	if (!s->urgent && !s->b->commit_now && now - s->uncommitted_since_ms < COMMIT_DELAY_MS)
		return;
	sbx_journal_commit(s->b->journal);
	s->committed = last;
	s->uncommitted_since_ms = 0;
	s->urgent = false;
	s->b->commit_now = false;
}

/* Durable records go out to the connections that follow the journal. */
static void tail_progress(struct server *s)
{
	struct conn *c, *next;
	int64_t now = sbx_mono_ms();

	if (!s->b->tail)
		return;
	sbx_tail_pump(s->b->tail, sbx_journal_durable_seq(s->b->journal), now);
	for (c = s->conns; c; c = next) {
		int rc;

		next = c->next;
		if (!c->tail || c->replying)
			continue;
		rc = sbx_tail_sub_send(c->tail, c->fd, now);
		if (rc < 0) {
			conn_close(s, c);
		} else if ((rc > 0) != c->tail_out) {
			c->tail_out = rc > 0;
			conn_watch(s, c, c->tail_out ? EPOLLIN | EPOLLOUT : EPOLLIN);
		}
	}
}

static int add_fd(int ep, int fd, void *tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Release the snapshot child once its records are durable, and reap it
 * when it is done (its pidfd woke the loop, or every pass). */
static void snapshot_progress(struct server *s)
{
	struct sbx_snapshot_stats st;
	char why[400];
	int rc = sbx_journal_snapshot_poll(s->b->journal, why, sizeof(why));

	if (rc < 0) {
		/* Only lost speed at the next start-up; never the journal's
		 * failure. */
		sbx_warn("%s", why);
		return;
	}
	if (rc == 0)
		return;
	sbx_journal_snapshot_last(s->b->journal, &st);
	sbx_info("snapshot at seq %llu written: %llu entries, %.1f MB in %.2f s (the loop paused "
		 "%.1f ms to fork)", (unsigned long long)st.seq, (unsigned long long)st.entries,
		 (double)st.bytes / 1e6, (double)st.took_ms / 1e3, (double)st.fork_us / 1e3);
}

static void maybe_snapshot(struct server *s)
{
	struct sbx_journal *j = s->b->journal;
	uint64_t last = sbx_journal_last_seq(j), every = sbx_state_count(s->b->state), since;
	struct sbx_snapshot_stats st;
	char why[400];
	int rc, fd;

	snapshot_progress(s);
	sbx_journal_snapshot_last(j, &st);
	if (sbx_journal_snapshot_running(j)) {
		int64_t age = sbx_journal_snapshot_age_ms(j);

		if (age > SNAPSHOT_STUCK_MS && age > 10 * st.took_ms && sbx_journal_snapshot_kill(j))
			sbx_warn("snapshot: its process has been at work for %lld s (the last one took "
				 "%lld s): killed as stuck", (long long)age / 1000,
				 (long long)st.took_ms / 1000);
		return;
	}
	/* A broker whose journal failed has memory rebuilt to an older seq
	 * than the journal's last: no snapshot of that. */
	if (s->b->degraded[0])
		return;
	/* A failed one is tried again after as many records, not every pass. */
	since = last - (st.seq > s->snap_tried ? st.seq : s->snap_tried);
	if (every < SNAPSHOT_MIN_RECORDS)
		every = SNAPSHOT_MIN_RECORDS;
	if (!s->snap_now && since < every)
		return;
	s->snap_now = false;
	s->snap_tried = last;
	rc = sbx_journal_snapshot_start(j, sbx_broker_snapshot_state, s->b, why, sizeof(why));
	if (rc < 0)
		sbx_warn("snapshot not started: %s", why);
	fd = sbx_journal_snapshot_fd(j);
	if (rc > 0 && fd >= 0 && add_fd(s->ep, fd, &tag_snapshot) < 0)
		sbx_warn("snapshot: cannot watch its process (%s); it is reaped on a later pass",
			 strerror(errno));
}

static int loop_timeout_ms(struct server *s)
{
	/* A broker that cannot write cannot end anything either: do not spin
	 * on a deadline that has passed. */
	int64_t next = sbx_broker_next_deadline(s->b);
	int64_t now_us = sbx_now_us();
	int64_t ms = 250;

	if (s->uncommitted_since_ms) {
		int64_t left = COMMIT_DELAY_MS - (sbx_mono_ms() - s->uncommitted_since_ms);

		ms = left < 0 ? 0 : left;
	}

	if (next != INT64_MAX) {
		int64_t until = next * 1000 - now_us / 1000;

		if (until < ms)
			ms = until < 0 ? 0 : until;
	}
	if (s->listen_paused_until) {
		int64_t until = s->listen_paused_until - sbx_mono_ms();

		if (until < ms)
			ms = until < 0 ? 0 : until;
	}
	return (int)ms;
}

int sbx_server_run(struct sbx_broker *b, int listen_fd, const struct sbx_server_opts *o)
{
	struct server s = { .b = b, .o = o, .listen_fd = listen_fd, .ep = -1, .sig_fd = -1,
			    .spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC) };

	s.committed = sbx_journal_last_seq(b->journal);
	struct epoll_event evs[64];
	sigset_t mask;
	int64_t last_sweep = sbx_mono_ms();
	int ret = -1;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	s.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	s.ep = epoll_create1(EPOLL_CLOEXEC);
	s.journal_fd = sbx_journal_event_fd(b->journal);
	if (s.sig_fd < 0 || s.ep < 0 || add_fd(s.ep, listen_fd, &tag_listen) < 0 ||
	    add_fd(s.ep, s.sig_fd, &tag_signal) < 0 || add_fd(s.ep, s.journal_fd, &tag_journal) < 0 ||
	    (sbx_directory_fd(b) >= 0 && add_fd(s.ep, sbx_directory_fd(b), &tag_directory) < 0) ||
	    (sbx_slack_fd(b) >= 0 && add_fd(s.ep, sbx_slack_fd(b), &tag_slack) < 0) ||
	    (sbx_api_fd(b) >= 0 && add_fd(s.ep, sbx_api_fd(b), &tag_api) < 0) ||
	    (sbx_evidence_fd(b) >= 0 && add_fd(s.ep, sbx_evidence_fd(b), &tag_evidence) < 0) ||
	    (sbx_fleet_fd(b) >= 0 && add_fd(s.ep, sbx_fleet_fd(b), &tag_fleet) < 0)) {
		sbx_err("event loop set-up failed: %s", strerror(errno));
		goto out;
	}
	while (!s.stopping) {
		int n = epoll_wait(s.ep, evs, 64, loop_timeout_ms(&s));

		if (n < 0 && errno != EINTR) {
			sbx_err("epoll_wait: %s", strerror(errno));
			goto out;
		}
		for (int i = 0; i < n; i++) {
			void *tag = evs[i].data.ptr;

			if (tag == &tag_listen)
				accept_all(&s);
			else if (tag == &tag_signal)
				handle_signals(&s);
			else if (tag == &tag_journal)
				journal_progress(&s);
			else if (tag == &tag_directory)
				sbx_directory_on_ready(b);
			else if (tag == &tag_slack)
				sbx_slack_on_ready(b);
			else if (tag == &tag_api)
				sbx_api_on_ready(b);
			else if (tag == &tag_evidence)
				sbx_evidence_on_ready(b);
			else if (tag == &tag_fleet)
				sbx_fleet_on_ready(b);
			else if (tag == &tag_snapshot)
				snapshot_progress(&s);
			else if (((struct conn *)tag)->dead)
				continue;
			else if (conn_held_and_gone(&s, tag, evs[i].events))
				continue;
			else if (evs[i].events & EPOLLOUT)
				conn_flush(&s, tag);
			else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_readable(&s, tag);
		}
		sbx_broker_timers(b, sbx_now());
		if (b->fleet)
			fleet_progress(&s);
		resume_listening(&s);
		if (sbx_mono_ms() - last_sweep >= 100) {
			sweep_deadlines(&s);
			last_sweep = sbx_mono_ms();
		}
		commit_journal(&s);
		tail_progress(&s);
		maybe_snapshot(&s);
		bury_dead(&s);
	}
	ret = 0;
out:
	/* Let held replies go out if their records made it to disk. */
	if (sbx_journal_flush(b->journal) == 0)
		journal_progress(&s);
	while (s.conns)
		conn_close(&s, s.conns);
	bury_dead(&s);
	if (s.ep >= 0)
		close(s.ep);
	if (s.sig_fd >= 0)
		close(s.sig_fd);
	if (s.spare_fd >= 0)
		close(s.spare_fd);
	return ret;
}
