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

# Still no room (a limit below the journal's size): the broker refuses
# to start, and says why.
jsize=$(cat "$STATE"/journal/*.jsonl | wc -c)
BROKER_PREFIX=(bash -c "ulimit -f $((jsize / 1024)) && exec \"\$@\"" sh)
if broker_start; then
	tap_fail "ulimit: the broker does not start while its start-up records cannot be written"
	broker_stop
else
	tap_ok "ulimit: the broker does not start while its start-up records cannot be written"
	assert_contains "ulimit: ... and its log says why" "$(tail -n 5 "$LOG")" "File too large"
	assert_contains "ulimit: ... and what to do" "$(tail -n 5 "$LOG")" "not starting (free space"
fi

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

# --- variant 2: a full tmpfs (ENOSPC), then room again -------------------------------
# The tmpfs lives in a mount namespace held open by a sleeping process, so
# the same state dir outlives the broker: the restart after space is freed
# replays exactly what is on disk, and no refused request may be there.
ns_journal_select() {
	nsenter -t "$NS" -m sh -c 'cat "$1"/journal/*.jsonl' sh "$STATE" 2>/dev/null |
		jq -c -R 'fromjson? // empty' | jq -c "select($1)"
}
# fill_parallel: ask in waves of 6 users at once until a wave has a
# refusal, so the failing write holds several requests' records, whole
# ones among them.  Sets ACKED, REFUSED, FAILED_USER and that user's
# RC/OUT/ERR.
fill_parallel() {
	local i n u

	ACKED=()
	REFUSED=()
	FAILED_USER=
	for ((i = 1; i + 5 <= USERS - 12; i += 6)); do
		local pids=()
		for ((n = i; n < i + 6; n++)); do
			u=$(printf 'u%03d' "$n")
			( "$SBXREQ" --socket "$SOCK" --as "$u" --json burst >"$T/p.$u.out" 2>"$T/p.$u.err"
			  echo $? >"$T/p.$u.rc" ) &
			pids+=($!)
		done
		# Not a bare wait: the broker and the namespace holder are jobs too.
		wait "${pids[@]}"
		for ((n = i; n < i + 6; n++)); do
			u=$(printf 'u%03d' "$n")
			if [ "$(cat "$T/p.$u.rc")" = 0 ] &&
			   [ "$(jq -r .state "$T/p.$u.out" 2>/dev/null)" = active ]; then
				ACKED+=("$u")
			else
				REFUSED+=("$u")
				FAILED_USER=$u
			fi
		done
		if [ -n "$FAILED_USER" ]; then
			RC=$(cat "$T/p.$FAILED_USER.rc")
			OUT=$(cat "$T/p.$FAILED_USER.out")
			ERR=$(cat "$T/p.$FAILED_USER.err")
			return 0
		fi
	done
	return 1
}

if ! is_root; then
	tap_skip "ENOSPC on a tiny tmpfs" "needs root (a mount namespace and a tmpfs)"
elif ! unshare -m --propagation private true 2>/dev/null; then
	tap_skip "ENOSPC on a tiny tmpfs" "unshare -m is not permitted here"
else
	mkdir -p "$T/full"
	unshare -m --propagation private sleep 3600 &
	NS=$!
	track_pid "$NS"
	wait_until 5 eval '[ "$(readlink /proc/$NS/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ]'
	if ! nsenter -t "$NS" -m mount -t tmpfs -o size=8k,mode=0700 sbxtest "$T/full"; then
		tap_skip "ENOSPC on a tiny tmpfs" "mounting a tmpfs is not permitted here"
		tap_done
		exit
	fi
	STATE="$T/full/state"
	BROKER_PREFIX=(nsenter -t "$NS" -m)
	broker_start
	if tap_result "ENOSPC: broker starts with its state dir on an 8 KiB tmpfs"; then
		if fill_parallel; then
			diag "ENOSPC: ${#ACKED[@]} requests acknowledged, refused: ${REFUSED[*]}"
			assert_int_between "ENOSPC: some requests succeed before the disk is full" 1 40 \
				"${#ACKED[@]}"
			degraded_checks "ENOSPC"
			assert_contains "ENOSPC: the broker says it cut the journal back" "$(cat "$LOG")" \
				"the journal was cut back to seq"
		else
			tap_fail "ENOSPC: a request fails once the tmpfs is full"
		fi
		broker_stop
		nsenter -t "$NS" -m mount -o remount,size=1m "$T/full"
		broker_start
		tap_result "ENOSPC: the broker starts again once there is room"
		ctl --json grants --all
		assert_eq "ENOSPC: after the restart, the granted users are exactly the acknowledged ones" \
			"$(printf '%s\n' "${ACKED[@]}" | sort | tr '\n' ' ')" \
			"$(json_get '.[].user' | sort | tr '\n' ' ')"
		refused_json=$(printf '%s\n' "${REFUSED[@]}" u050 | jq -R . | jq -s -c .)
		assert_eq "ENOSPC: no record of a refused request came back (${REFUSED[*]} u050)" "" \
			"$(ns_journal_select "(.user as \$u | $refused_json | index(\$u)) and (.event | startswith(\"request.\") or startswith(\"grant.\"))")"
		req --as "${FAILED_USER:-u060}" --json list
		assert_eq "ENOSPC: $FAILED_USER has no request at all" 0 "$(json_get 'length')"
		ctl check "${FAILED_USER:-u060}"
		assert_rc "ENOSPC: $FAILED_USER still may not log in" 1
		assert_eq "ENOSPC: the restart had nothing torn to cut" "" \
			"$(ns_journal_select '.event == "journal.recovered"')"
		broker_stop
		run nsenter -t "$NS" -m "$SBXCTL" audit verify --state-dir "$STATE"
		assert_rc "ENOSPC: the journal verifies after the restart" 0
	fi
	kill "$NS" 2>/dev/null
fi

tap_done
