/*
 * libnss_sbx.so.2: the unix groups of sbx roles for glibc's `group`
 * database.  These are the module's entry points (the only symbols it
 * exports, see libnss_sbx.map) and the pieces its files share.
 *
 * Where answers come from, in order (docs/nss.md):
 *   1. the grant table <dir of the broker socket>/groups.table, mapped
 *      read-only; every membership is checked against the clock on every
 *      call;
 *   2. when the table is missing or malformed: the broker's socket, with a
 *      deadline of NSS_SBX_TIMEOUT_MS for the whole exchange;
 *   3. otherwise NSS_STATUS_UNAVAIL, so `group: files sbx` keeps working.
 * Inside sbx-brokerd itself step 2 is skipped: the broker would be
 * waiting for its own answer.
 */
#ifndef NSS_SBX_H
#define NSS_SBX_H

#include <grp.h>
#include <nss.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "sbx_table.h"

/* The whole socket exchange (connect, send, receive) must end within
 * this: a login waits at most this long for a broker that hangs.  The
 * issue allows 50 ms; the rest is margin for scheduling. */
#define NSS_SBX_TIMEOUT_MS 40

/* ---- entry points (glibc's names and signatures) -------------------------- */

enum nss_status _nss_sbx_getgrnam_r(const char *name, struct group *gr, char *buf,
				    size_t buflen, int *errnop);
enum nss_status _nss_sbx_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t buflen,
				    int *errnop);
enum nss_status _nss_sbx_setgrent(int stayopen);
enum nss_status _nss_sbx_getgrent_r(struct group *gr, char *buf, size_t buflen, int *errnop);
enum nss_status _nss_sbx_endgrent(void);
enum nss_status _nss_sbx_initgroups_dyn(const char *user, gid_t skipgroup, long int *start,
					long int *size, gid_t **groupsp, long int limit,
					int *errnop);

/* ---- the grant table (tblcache.c) --------------------------------------- */

/* The broker socket (SBX_SOCKET through secure_getenv, else the built-in
 * default) and the table beside it.  0, or -ENAMETOOLONG / -EINVAL (not an
 * absolute path). */
int nss_sbx_paths(char *sock, size_t socklen, char *table, size_t tablelen);

/* A counted reference to one mapping of the table.  Mappings are shared
 * between threads and calls while the file stays the same (device,
 * inode, size, times) and so does the process's effective uid (trust
 * depends on it); a replaced file gets a new mapping and the old one
 * goes away with its last reference. */
struct nss_sbx_map;

/* The table at path if it is there, trusted (a regular file owned by root
 * or by this process's effective uid, writable by nobody else) and valid
 * (sbx_tbl_open with full checks, done once per mapping).  NULL otherwise:
 * the caller falls back to the socket.  Never waits on what stands at
 * path (a FIFO, a device): see map_file. */
struct nss_sbx_map *nss_sbx_map_get(const char *path);
void nss_sbx_map_put(struct nss_sbx_map *m);
const struct sbx_tbl *nss_sbx_map_table(const struct nss_sbx_map *m);
/* The mapping cache's lock, for the fork handlers only. */
void nss_sbx_map_fork_lock(void);
void nss_sbx_map_fork_unlock(void);

/* ---- the socket (fallback.c) ---------------------------------------------- */

/* True inside sbx-brokerd (it exports SBX_BROKER_GUARD_SYMBOL). */
bool nss_sbx_in_broker(void);

/* One round trip (sbx_call): send req (finished here), receive the reply
 * into *frame (caller frees).  The socket and the peer must be root's or
 * this process's effective uid's.  0 or a negative errno; -EDEADLK inside
 * the broker. */
int nss_sbx_call(const char *sock, sbx_msg *req, uint8_t **frame, size_t *n);

#endif
