#!/bin/bash
# A grant ends at its expires_at within one second, with a grant.expired
# event, while nobody asks the broker anything (we only read the journal
# files); a grant's clock starts when it is activated, not when asked for.
. "$(dirname "$0")/lib.sh"
sbx_init

cat >>"$POLICY" <<'EOF'

  quick:
    description: Short grants for the tests
    hosts: ["sbx-*"]
    eligible: { users: [erin, dave] }
    approvers: { manager: true }
    approvals: 1
    default_duration: 2s
    max_duration: 3s
EOF

broker_start
tap_result "broker starts" || {
	tap_done
	exit
}

REASON="expiry test for the journal"

# check_expired_on_time ID EXPIRES_AT: the journal's grant.expired for ID
# was written no earlier than EXPIRES_AT and less than a second after it.
check_expired_on_time() {
	local id=$1 expires=$2 rec t_us e_us late_ms

	rec=$(journal_select ".event == \"grant.expired\" and .id == $id" | head -n 1)
	if [ -z "$rec" ]; then
		tap_fail "grant $id: grant.expired recorded"
		return
	fi
	tap_ok "grant $id: grant.expired recorded without anyone asking"
	assert_eq "grant $id: the event names the grant's expires_at" "$(to_s "$expires")" \
		"$(to_s "$(jq -r .expires_at <<<"$rec")")"
	t_us=$(to_us "$(jq -r .time <<<"$rec")")
	e_us=$(to_us "$expires")
	late_ms=$(((t_us - e_us) / 1000))
	diag "grant $id expired ${late_ms} ms after its expires_at"
	assert_int_between "grant $id ends within one second of expires_at" 0 999 "$late_ms"
}

# --- the clock starts at activation -------------------------------------------
req --as erin --json quick --reason "$REASON"
assert_rc "erin asks for quick (default 2s)" 0
G1=$(out_id)
created=$(json_get .created_at)
# Approve late: the request's age must not eat into the grant.
sleep 2.2
ctl --as frank --json approve "$G1"
assert_rc "frank approves two seconds later" 0
act=$(json_get .activated_at)
exp1=$(json_get .expires_at)
assert_eq "the grant is active" active "$(json_get .state)"
if [ "$act" != null ] && [ "$exp1" != null ] && [ -n "$act" ] && [ -n "$exp1" ]; then
	assert_eq "expires_at - activated_at == the 2s duration" 2 \
		$(($(to_s "$exp1") - $(to_s "$act")))
	assert_true "activated_at is at least 2s after created_at" \
		[ $(($(to_s "$act") - $(to_s "$created"))) -ge 2 ]
else
	tap_fail "expires_at - activated_at == the 2s duration"
	tap_fail "activated_at is at least 2s after created_at"
	diag "created_at=$created activated_at=$act expires_at=$exp1"
fi
ctl check erin
assert_rc "check erin during the grant: allowed" 0

# A second, longer grant activated after the first: two deadlines, the
# earlier one first.
req --as dave --json quick --for 3s --reason "$REASON"
G2=$(out_id)
ctl --as bob --json approve "$G2"
assert_rc "bob (dave's manager) approves a 3s grant" 0
exp2=$(json_get .expires_at)

# --- nobody asks: watch the journal files only ---------------------------------
wait_record 8 ".event == \"grant.expired\" and .id == ${G1:-0}"
check_expired_on_time "${G1:-0}" "$exp1"
wait_record 8 ".event == \"grant.expired\" and .id == ${G2:-0}"
check_expired_on_time "${G2:-0}" "$exp2"
assert_eq "the grant.expired records come in expiry order" "$G1 $G2" \
	"$(journal_select '.event == "grant.expired"' | jq -r .id | tr '\n' ' ' | sed 's/ $//')"

# --- and the decisions follow -------------------------------------------------
ctl --json check erin
assert_rc "check erin after expiry: exit 1" 1
assert_eq "check erin after expiry: allowed false" false "$(json_get .allowed)"
req --json status "${G1:-0}"
assert_eq "status says expired" expired "$(json_get .state)"
assert_eq "an expired grant has ended_at" true "$(json_get '.ended_at != null')"

# A grant that ended cannot be dropped or revoked any more.
req --as erin drop "${G1:-0}"
assert_rc "dropping an expired grant: exit 1" 1

tap_done
