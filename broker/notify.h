/*
 * Readiness and state for the service manager (sbx-brokerd.service is
 * Type=notify), through the datagram socket systemd names in NOTIFY_SOCKET
 * (the protocol documented in sd_notify(3)); no libsystemd.
 */
#ifndef SBX_NOTIFY_H
#define SBX_NOTIFY_H

/* Send state ("READY=1\nSTATUS=...") to $NOTIFY_SOCKET.  0 when it was
 * sent or there is nobody to tell (no NOTIFY_SOCKET), else -errno
 * (-EAFNOSUPPORT for an address that is neither a path nor abstract). */
int sbx_notify(const char *state);

#endif
