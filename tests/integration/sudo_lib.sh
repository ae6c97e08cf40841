# shellcheck shell=bash
# Real sudo with sbx_sudo.so (TESTING.md recipe 10): a private mount
# namespace whose /etc/passwd, /etc/group, /etc/sudoers and /etc/sudo.conf
# are the test's copies, with users the test adds (uids found free).
# Callers: sbx_init first; then sudo_init OPTIONS (the plugin's options on
# the sudo.conf lines) and sudo_as USER CMD...  Variables used by scripts.
# shellcheck disable=SC2034

SUDO_SO="$SBX_BUILDDIR/.libs/sbx_sudo.so"

# sudo_skip_reason: why this machine cannot run the test, or nothing.
sudo_skip_reason() {
	is_root || { echo "needs root (a private mount namespace, set-uid sudo)"; return; }
	for tool in unshare nsenter sudo setpriv; do
		command -v "$tool" >/dev/null || { echo "$tool is not installed"; return; }
	done
	[ -r "$SUDO_SO" ] || { echo "sbx_sudo.so is not built (no sudo_plugin.h)"; return; }
	# sudo is set-uid: the loader ignores LD_PRELOAD, so an ASan-built
	# plugin cannot be loaded into it.
	[ -z "${SAN_PRELOAD:-}" ] && ! ldd "$SUDO_SO" | grep -q libasan ||
		{ echo "the plugin is built with sanitizers; set-uid sudo cannot load it"; return; }
}

# A uid free both in /etc/passwd and as a gid in /etc/group.
_free_id() {
	local id=$1
	while getent passwd "$id" >/dev/null || getent group "$id" >/dev/null ||
		grep -q ":$id:" "$SE/passwd" "$SE/group" 2>/dev/null; do
		id=$((id + 1))
	done
	echo "$id"
}

# sudo_init "PLUGIN OPTIONS" USER:GROUPS... : users (GROUPS comma-separated
# extra groups, e.g. sbx-admin), sudoers rules, sudo.conf, the namespace.
# Names already on the host are refused (SKIP): the test never assumes a
# name is free.
sudo_init() {
	local opts=$1 spec name groups id g
	shift
	SE="$T/etc"
	mkdir -p "$SE"
	cp /etc/passwd "$SE/passwd"
	cp /etc/group "$SE/group"
	cp -p /etc/shadow "$SE/shadow"
	for g in sbx-admin:60001; do
		if getent group "${g%%:*}" >/dev/null || getent group "${g##*:}" >/dev/null; then
			echo "group ${g%%:*} or gid ${g##*:} exists on this host"
			return 1
		fi
		echo "$g" | sed 's/^\(.*\):\(.*\)$/\1:x:\2:/' >>"$SE/group"
	done
	for spec in "$@"; do
		name=${spec%%:*}
		groups=${spec#*:}
		if getent passwd "$name" >/dev/null; then
			echo "user $name exists on this host"
			return 1
		fi
		id=$(_free_id 23000)
		echo "$name:x:$id:$id:$name fixture:/tmp:/bin/sh" >>"$SE/passwd"
		echo "$name:x:$id:" >>"$SE/group"
		# '*': no password, not locked (sudo's PAM account stack asks)
		echo "$name:*:19000:0:99999:7:::" >>"$SE/shadow"
		for g in ${groups//,/ }; do
			sed -i "s/^\($g:x:[0-9]*:.*\)$/\1,$name/; s/^\($g:x:[0-9]*:\),/\1/" "$SE/group"
		done
	done
	cp -p /etc/sudoers "$SE/sudoers"
	printf '%s\n' '%sbx-admin ALL=(ALL) NOPASSWD: ALL' 'Defaults !lecture' \
		>>"$SE/sudoers"
	[ -n "${SUDOERS_EXTRA:-}" ] && printf '%s\n' "$SUDOERS_EXTRA" >>"$SE/sudoers"
	chmod 0440 "$SE/sudoers"
	sudo_conf "$opts"
	unshare -m --propagation private bash -c "
		set -e
		mount --bind '$SE/passwd' /etc/passwd
		mount --bind '$SE/group' /etc/group
		mount --bind '$SE/shadow' /etc/shadow
		mount --bind '$SE/sudoers' /etc/sudoers
		mount --bind '$SE/sudo.conf' /etc/sudo.conf
		echo ready >'$T/ns.ready'
		exec sleep 900
	" >"$T/ns.log" 2>&1 &
	NS_PID=$!
	track_pid "$NS_PID"
	wait_until 10 test -s "$T/ns.ready" || { cat "$T/ns.log"; return 1; }
	BROKER_PREFIX=(nsenter -t "$NS_PID" -m --)
}

# sudo_conf OPTIONS [noplugins]: (re)write the test's sudo.conf in place
# (the bind mount shows the new text: same inode).
sudo_conf() {
	{
		echo "Plugin sudoers_policy sudoers.so"
		if [ "${2:-}" != noplugins ]; then
			echo "Plugin sbx_audit $SUDO_SO $1"
			[ "${2:-}" = auditonly ] || echo "Plugin sbx_approval $SUDO_SO $1"
		fi
	} >"$SE/sudo.conf.new"
	if [ -e "$SE/sudo.conf" ]; then
		cat "$SE/sudo.conf.new" >"$SE/sudo.conf"
	else
		mv "$SE/sudo.conf.new" "$SE/sudo.conf"
	fi
	chmod 0644 "$SE/sudo.conf"
}

# sudo_as USER CMD...: run `sudo -n CMD` as USER (with the groups the
# namespace's /etc/group gives) inside the namespace; sets RC OUT ERR.
sudo_as() {
	local user=$1
	shift
	run nsenter -t "$NS_PID" -m -- setpriv --reuid="$user" --regid="$user" --init-groups \
		--reset-env -- sudo -n "$@"
}
