# shellcheck shell=bash
# Helpers for the libnss_sbx integration tests (source after lib.sh and
# call nss_init after sbx_init).
#
#   MODULE        the built libnss_sbx.so.2
#   NSS_TOOL      tests/integration/nss_tool (calls the module directly)
#   NSS_GUARDED   the same, marked like sbx-brokerd (SBX_BROKER_GUARD_SYMBOL)
#   SAN_PRELOAD   the ASan runtime when the module was built with
#                 --enable-sanitizers: programs that are not (getent, id,
#                 sudo) must load it first to load the module at all.
#
# nw CMD...    CMD under nss_wrapper: users and groups from $T/passwd and
#              $T/group, the group database also through libnss_sbx.
# nss CMD...   CMD calling the module directly (nss_tool), SBX_SOCKET=$SOCK.

# shellcheck disable=SC2034
MODULE="$SBX_BUILDDIR/.libs/libnss_sbx.so.2"
NSS_TOOL="$SBX_BUILDDIR/tests/integration/nss_tool"
NSS_GUARDED="$SBX_BUILDDIR/tests/integration/nss_tool_guarded"
SAN_PRELOAD=
TABLE=

# Users the tests know: the reference policy's people, with made-up ids.
nss_write_accounts() {
	local u id=2000

	: >"$T/passwd"
	: >"$T/group"
	for u in alice bob carol dave erin frank grace; do
		id=$((id + 1))
		echo "$u:x:$id:$id:$u:/nonexistent:/bin/sh" >>"$T/passwd"
		echo "$u:x:$id:" >>"$T/group"
	done
}

nss_init() {
	local lib

	for lib in "$MODULE" "$NSS_TOOL" "$NSS_GUARDED"; do
		if [ ! -e "$lib" ]; then
			echo "Bail out! $lib is missing: build it first (make libnss_sbx.la tests/integration/nss_tool tests/integration/nss_tool_guarded)"
			exit 1
		fi
	done
	lib=$(ldd "$MODULE" 2>/dev/null | awk '/libasan/ { print $3 }')
	if [ -n "$lib" ]; then
		SAN_PRELOAD=$lib
		diag "sanitizer build: foreign programs get LD_PRELOAD=$lib"
	fi
	# The grant table lives beside the broker's socket.
	TABLE="$(dirname "$SOCK")/groups.table"
	nss_write_accounts
}

have_nss_wrapper() {
	[ -e /usr/lib/x86_64-linux-gnu/libnss_wrapper.so ] || ldconfig -p 2>/dev/null | grep -q libnss_wrapper.so
}

nw() {
	env LD_PRELOAD="${SAN_PRELOAD:+$SAN_PRELOAD }libnss_wrapper.so" \
		NSS_WRAPPER_PASSWD="$T/passwd" NSS_WRAPPER_GROUP="$T/group" \
		NSS_WRAPPER_MODULE_SO_PATH="$MODULE" NSS_WRAPPER_MODULE_FN_PREFIX=sbx \
		NSS_WRAPPER_DISABLE_DEEPBIND=1 SBX_SOCKET="$SOCK" \
		ASAN_OPTIONS=detect_leaks=0 "$@"
}

# run_nw CMD...: run (sets RC OUT ERR) under nss_wrapper.
run_nw() { run env LD_PRELOAD="${SAN_PRELOAD:+$SAN_PRELOAD }libnss_wrapper.so" \
	NSS_WRAPPER_PASSWD="$T/passwd" NSS_WRAPPER_GROUP="$T/group" \
	NSS_WRAPPER_MODULE_SO_PATH="$MODULE" NSS_WRAPPER_MODULE_FN_PREFIX=sbx \
	NSS_WRAPPER_DISABLE_DEEPBIND=1 SBX_SOCKET="$SOCK" ASAN_OPTIONS=detect_leaks=0 "$@"; }

# run_tool ARGS...: nss_tool on the module (sets RC OUT ERR).
run_tool() { run env SBX_SOCKET="$SOCK" "$NSS_TOOL" "$MODULE" "$@"; }

# getent_group KEY: the line getent prints under nss_wrapper (empty if none).
getent_group() { nw getent group "$1" 2>/dev/null; }

# A grant of ROLE for USER approved by APPROVER: prints the grant's id.
# Extra request arguments follow (e.g. --for 3s).
nss_grant() {
	local user=$1 role=$2 approver=$3 id

	shift 3
	req --as "$user" --json "$role" --reason "testing the nss module" "$@"
	id=$(out_id)
	[ -n "$id" ] || return 1
	ctl --as "$approver" --json approve "$id"
	[ "$(json_get .state)" = active ] || return 1
	echo "$id"
}
