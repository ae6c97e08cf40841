#include "config.h"

#include "nss_sbx.h"
#include "sbxio.h"

#include <dlfcn.h>
#include <errno.h>

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

int nss_sbx_call(const char *sock, sbx_msg *req, uint8_t **frame, size_t *n)
{
	/* The peer may be root or this process's own uid: a broker run by an
	 * unprivileged service (or test) answers its own processes. */
	const struct sbx_conn_opts o = {
		.path = sock,
		.timeout_ms = NSS_SBX_TIMEOUT_MS,
		.require_root = 1,
		.or_own_uid = 1,
	};

	if (nss_sbx_in_broker())
		return -EDEADLK;
	return sbx_call(&o, req, frame, n);
}
