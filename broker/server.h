/*
 * The broker's event loop: one thread, epoll, non-blocking sockets, so a
 * slow or stuck client costs only its own connection.  Replies that
 * acknowledge a change wait here until the journal says they are durable.
 */
#ifndef SBX_SERVER_H
#define SBX_SERVER_H

#include "broker.h"

struct sbx_server_opts {
	int io_timeout_ms;    /* a client has this long to send a frame or take a reply */
};

/* The directory of the socket at path (which also holds the group table):
 * created (0755) if missing, else refused unless it is a directory owned
 * by root or the broker's user that nobody else may write to (or that has
 * the sticky bit).  0, or a negative errno with err set. */
int sbx_server_socket_dir(const char *path, char *err, size_t errlen);

/* Create the listening socket: its directory checked (above), a stale
 * socket file removed, mode 0666 from birth (who may do what is decided
 * per peer).  Returns the fd or -1 with err set. */
int sbx_server_listen(const char *path, char *err, size_t errlen);

/* Run until SIGTERM or SIGINT (blocked by the caller and read through a
 * signalfd here); SIGHUP reloads the policy.  Returns 0 on a clean stop. */
int sbx_server_run(struct sbx_broker *b, int listen_fd, const struct sbx_server_opts *o);

#endif
