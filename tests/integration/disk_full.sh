#!/bin/bash
# When the journal cannot be written, the broker stops changing anything:
# new requests are refused with a clear error naming the journal (exit 1),
# `check` keeps answering from what is on disk, and nothing the broker did
# not acknowledge ever shows up as granted, then or after a restart.
#
# Variant 1: a file-size limit (ulimit -f; the broker ignores SIGXFSZ, so
# the write fails with EFBIG).  Variant 2 (root, mount namespaces): a
# tiny tmpfs, for a real ENOSPC.
. "$(dirname "$0")/lib.sh"
sbx_init

USERS=60
policy_many_users "$POLICY" "$USERS" true

# fill VARIANT: ask as u001, u002, ... until a request fails (at most
# $USERS).  Sets ACKED (the users acknowledged), FAILED_USER, and leaves
# the failing call's RC/OUT/ERR.
fill() {
	local i u

	ACKED=()
	FAILED_USER=
	for i in $(seq -f '%03g' 1 "$USERS"); do
		u="u$i"
		req --as "$u" --json burst
		if [ "$RC" -ne 0 ]; then
			FAILED_USER=$u
			return 0
		fi
		if [ "$(json_get .state)" = active ] && [ "$(json_get .user)" = "$u" ]; then
			ACKED+=("$u")
		fi
	done
	return 1
}

# degraded_checks VARIANT: the broker has hit the write failure.
degraded_checks() {
	local v=$1 a

	assert_rc "$v: the request that hit the failure is refused: exit 1" 1
	assert_contains "$v: its error says the journal failed" "$ERR" "journal"
	diag "$v: $ERR"
	req --as u050 burst
	assert_rc "$v: a new request afterwards: exit 1" 1
	assert_contains "$v: the refusal names the journal problem" "$ERR" "journal"
	assert_contains "$v: the refusal says it refuses changes" "$ERR" "refuses new requests"
	ctl --json status
	assert_rc "$v: status answers, exit 1 (degraded)" 1
	assert_ne "$v: status says the broker is degraded, and why" null "$(json_get .degraded)"
	if [ "${#ACKED[@]}" -gt 0 ]; then
		a=${ACKED[0]}
		ctl --json check "$a"
		assert_rc "$v: check still answers: $a (acknowledged grant) may log in" 0
		req --as "$a" --json list
		id=$(json_get '.[0].id // empty')
		req --as "$a" drop "${id:-0}"
		assert_rc "$v: dropping a grant is refused too: exit 1" 1
	else
		tap_fail "$v: some requests were acknowledged before the failure"
	fi
	ctl --json check "$FAILED_USER"
	assert_rc "$v: $FAILED_USER (not acknowledged) may not log in" 1
	ctl --json grants --all
	assert_eq "$v: the granted users are exactly the acknowledged ones" \
		"$(printf '%s\n' "${ACKED[@]}" | sort | tr '\n' ' ')" \
		"$(json_get '.[].user' | sort | tr '\n' ' ')"
}

# --- variant 1: ulimit -f ------------------------------------------------------------
# Start-up writes about 700 bytes, each auto-approved request about 720:
# 4 KiB holds a few requests.
BROKER_PREFIX=(bash -c 'ulimit -f 4 && exec "$@"' sh)
broker_start
tap_result "broker starts under a 4 KiB file-size limit" || {
	tap_done
	exit
}
if fill; then
	diag "ulimit: ${#ACKED[@]} requests acknowledged, $FAILED_USER failed"
	assert_int_between "ulimit: some requests succeed before the limit" 1 20 "${#ACKED[@]}"
	degraded_checks "ulimit"
else
	tap_fail "ulimit: a request fails once the journal hits the file-size limit"
fi
broker_stop
diag "ulimit: the degraded broker exited with status $BROKER_RC"

# Without the limit, the broker starts again from what is on disk.
BROKER_PREFIX=()
broker_start
tap_result "ulimit: the broker starts again without the limit" || {
	tap_done
	exit
}
ctl --json grants --all
assert_eq "ulimit: after the restart, the granted users are exactly the acknowledged ones" \
	"$(printf '%s\n' "${ACKED[@]}" | sort | tr '\n' ' ')" \
	"$(json_get '.[].user' | sort | tr '\n' ' ')"
ctl check "${FAILED_USER:-u060}"
assert_rc "ulimit: after the restart, $FAILED_USER still may not log in" 1
if journal_has '.event == "journal.recovered"'; then
	diag "ulimit: the restart cut a torn record: $(journal_select '.event == "journal.recovered"')"
fi
req --as u059 --json burst
assert_rc "ulimit: after the restart requests work again" 0
broker_stop
run "$SBXCTL" audit verify --state-dir "$STATE"
assert_rc "ulimit: the journal verifies after the restart" 0

# --- variant 2: a full tmpfs (ENOSPC) ------------------------------------------------
if ! is_root; then
	tap_skip "ENOSPC on a tiny tmpfs" "needs root (a mount namespace and a tmpfs)"
elif ! unshare -m --propagation private true 2>/dev/null; then
	tap_skip "ENOSPC on a tiny tmpfs" "unshare -m is not permitted here"
elif ! unshare -m --propagation private mount -t tmpfs -o size=8k sbxtest "$T" 2>/dev/null; then
	tap_skip "ENOSPC on a tiny tmpfs" "mounting a tmpfs is not permitted here"
else
	mkdir -p "$T/full"
	STATE="$T/full/state"
	# The tmpfs exists only in the broker's mount namespace.
	BROKER_PREFIX=(unshare -m --propagation private
		bash -c 'mount -t tmpfs -o size=8k,mode=0700 sbxtest "$0" && exec "$@"' "$T/full")
	broker_start
	if tap_result "ENOSPC: broker starts with its state dir on an 8 KiB tmpfs"; then
		if fill; then
			diag "ENOSPC: ${#ACKED[@]} requests acknowledged, $FAILED_USER failed"
			assert_int_between "ENOSPC: some requests succeed before the disk is full" 1 40 \
				"${#ACKED[@]}"
			degraded_checks "ENOSPC"
		else
			tap_fail "ENOSPC: a request fails once the tmpfs is full"
		fi
		broker_stop
	fi
fi

tap_done
