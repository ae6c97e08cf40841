#include "config.h"

#include "nss_sbx.h"
#include "sbxio.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Inside sbx-brokerd the broker itself resolves users and groups (its
 * admin_group check); with `group: files sbx` that reaches this module.
 * Asking the socket then would make the broker wait for its own answer
 * (up to the timeout, on every lookup).  The broker says who it is by
 * exporting SBX_BROKER_GUARD_SYMBOL from its executable, the way nslcd
 * marks itself with _nss_ldap_enablelookups: a property of the process
 * image, which no environment variable or process name can fake or lose,
 * whichever way the module was loaded (glibc, nss_wrapper).  The answer
 * cannot change for the life of the process image, so it is looked up
 * once. */
static int guard_state; /* 0 unknown, 1 not the broker, 2 the broker */

bool nss_sbx_in_broker(void)
{
	int s = __atomic_load_n(&guard_state, __ATOMIC_RELAXED);

	if (s == 0) {
		s = dlsym(RTLD_DEFAULT, SBX_BROKER_GUARD_SYMBOL) ? 2 : 1;
		__atomic_store_n(&guard_state, s, __ATOMIC_RELAXED);
	}
	return s == 2;
}

static int peer_trusted(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return -errno;
	if (len != sizeof(cred) || (cred.uid != 0 && cred.uid != geteuid()))
		return -EPERM;
	return 0;
}

static uint16_t frame_op(const uint8_t *frame)
{
	return (uint16_t)((uint16_t)frame[6] << 8 | frame[7]);
}

int nss_sbx_call(const char *sock, sbx_msg *req, uint8_t **frame, size_t *n)
{
	struct sbx_conn_opts o = { .path = sock, .timeout_ms = NSS_SBX_TIMEOUT_MS };
	int64_t deadline = sbx_mono_ms() + NSS_SBX_TIMEOUT_MS;
	uint8_t *reply = NULL;
	size_t rlen = 0;
	int fd = -1, ret;

	if (nss_sbx_in_broker())
		return -EDEADLK;
	ret = sbx_msg_finish(req);
	if (ret)
		goto out;
	fd = sbx_connect(&o, deadline);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	ret = peer_trusted(fd);
	if (ret)
		goto out;
	ret = sbx_send_all(fd, req->buf, req->len, deadline);
	if (ret)
		goto out;
	ret = sbx_recv_frame(fd, &reply, &rlen, deadline);
	if (ret)
		goto out;
	if (frame_op(reply) != (uint16_t)(frame_op(req->buf) | SBX_OP_REPLY)) {
		ret = -EBADMSG;
		goto out;
	}
	*frame = reply;
	*n = rlen;
	reply = NULL;
out:
	free(reply);
	if (fd >= 0)
		close(fd);
	return ret;
}
