#!/bin/bash
# Access review decisions and deadlines on a real broker (docs/review.md):
# certify/revoke recorded, who may decide, a revoke ending grants and
# eligibility (kept across a restart, gone when the policy changes, shown by
# policy explain), both reflected in the next report; and a missed review with
# on_missed_review: suspend refusing requests until a certify.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/slack_lib.sh"
sbx_init

broker_start
tap_result "broker starts with the reference policy" || {
	tap_done
	exit
}

req --as erin --json sandbox-admin --reason "migrate the reporting database"
GRANT=$(out_id)
ctl --as frank approve "$GRANT" --comment "ok"
assert_rc "erin holds a grant of sandbox-admin" 0

# ---- who may decide ----
ctl --as erin review certify erin sandbox-admin --comment "I am fine"
assert_rc "nobody reviews their own access" 1
assert_contains "and is told so" "$ERR" "cannot review your own access"
ctl --as carol review certify erin sandbox-admin --comment "looks fine"
assert_rc "carol is no approver of sandbox-admin" 1
assert_contains "and is told who is" "$ERR" "only the approvers of sandbox-admin"
ctl --as grace review certify erin sandbox-admin
assert_rc "a decision needs a comment" 2
ctl --as grace review certify bob sandbox-admin --comment "no access at all"
assert_rc "bob has nothing to review (not found: exit 2)" 2
assert_contains "and says so" "$ERR" "bob has no access to sandbox-admin to review"

# ---- certify ----
ctl --as grace review certify dave sandbox-admin --comment "still runs the db"
assert_rc "grace (security-leads) certifies dave" 0
assert_contains "the reply says what" "$OUT" "certified dave's eligible access to sandbox-admin"
assert_eq "review.certified is recorded with its ground" \
	'["grace","dave","sandbox-admin","eligible","member of security-leads","still runs the db"]' \
	"$(journal_select '.event == "review.certified"' | jq -c '[.actor,.user,.role,.access,.ground,.comment]')"

# ---- revoke: grants end, eligibility goes ----
ctl --as frank review revoke erin sandbox-admin --comment "left the db team"
assert_rc "frank (erin's manager) revokes erin's sandbox-admin" 0
assert_contains "one grant ended" "$OUT" "1 grant(s) ended"
assert_true "review.revoked removes eligibility" \
	journal_has '.event == "review.revoked" and .user == "erin" and .eligibility_removed == true'
assert_eq "erin's grant was revoked at once, saying why" \
	"revoked in an access review: left the db team" \
	"$(journal_select ".event == \"grant.revoked\" and .id == $GRANT" | jq -r .reason)"
req --as erin sandbox-admin --reason "migrate the reporting database again"
assert_rc "erin's next request is refused" 1
assert_contains "saying why" "$ERR" "eligibility for sandbox-admin was revoked in an access review by frank"
ctl --json policy explain erin
assert_eq "policy explain shows the revoke" "revoked" \
	"$(json_get '.roles[] | select(.role == "sandbox-admin") | .how')"
ctl policy explain erin
assert_contains "also in words" "$OUT" "revoked in an access review by frank"
req --as erin --json roles
assert_eq "sbx-request roles lists the role as revoked, not eligible" "revoked" \
	"$(json_get '.[] | select(.role == "sandbox-admin") | .how')"
req --as erin roles
assert_contains "and says by whom" "$OUT" "revoked in an access review by frank"

# ---- standing access from the file: recorded, stays ----
ctl review revoke alice sandbox-user --comment "contractor ended"
assert_rc "an admin revokes alice's standing sandbox-user" 0
assert_contains "the reply says it stays" "$OUT" "keeps it"
assert_true "recorded without removing eligibility" \
	journal_has '.event == "review.revoked" and .user == "alice" and .eligibility_removed == false'
ctl check alice
assert_rc "alice still logs in (the file says so)" 0

# ---- a restart keeps the override: from the records, and from a snapshot ----
broker_stop
rm -f "$STATE/snapshot.json"
broker_start
assert_rc "broker restarts without a snapshot" 0 "$([ -n "$BROKER_PID" ] && echo 0 || echo 1)"
req --as erin sandbox-admin --reason "migrate the reporting database again"
assert_rc "after a restart erin is still refused (rebuilt from the journal)" 1
broker_stop
assert_true "the stop wrote a snapshot with the reviews part" \
	grep -q '"ext":"reviews"' "$STATE/snapshot.json"
broker_start
assert_ne "that start used the snapshot" "null" \
	"$(journal_select '.event == "broker.started"' | tail -n 1 | jq -r '.snapshot_seq // "null"')"
req --as erin sandbox-admin --reason "migrate the reporting database again"
assert_rc "and after a restart from a snapshot" 1
assert_contains "still the review's refusal" "$ERR" "revoked in an access review"

# ---- the next report reflects both decisions ----
run "$SBXCTL" review report --config "$POLICY" --state-dir "$STATE" --format json
assert_rc "report over the broker's journal" 0
assert_eq "erin: revoked by frank, 1 grant" '["revoked","frank","left the db team",1]' \
	"$(json_get '.rows[] | select(.role=="sandbox-admin" and .user=="erin") | [.last_decision.decision,.last_decision.by,.last_decision.comment,.grants] | tojson')"
assert_eq "dave: certified by grace" '["certified","grace"]' \
	"$(json_get '.rows[] | select(.role=="sandbox-admin" and .user=="dave") | [.last_decision.decision,.last_decision.by] | tojson')"
assert_eq "alice: flagged revoked-still-standing" "true" \
	"$(json_get '.rows[] | select(.role=="sandbox-user" and .user=="alice") | .flags | index("revoked-still-standing") != null')"
run "$SBXCTL" review report --config "$POLICY" --state-dir "$STATE" --format csv
assert_contains "csv: erin's decision" "$OUT" "revoked by frank at "

# ---- a policy change ends the override ----
echo "# changed" >>"$POLICY"
kill -HUP "$BROKER_PID"
wait_until 10 eval 'journal_select ".event == \"policy.loaded\"" | tail -n 1 | grep -q "$(sha256sum "$POLICY" | cut -c1-64)"'
req --as erin sandbox-admin --reason "migrate the reporting database again"
assert_rc "once the policy file changes erin may ask again" 0
broker_stop

# ---- deadlines: a missed review suspends new grants ----
STATE="$T/state2"
P2="$T/review.yaml"
{
	policy_broker 24h
	cat <<'YAML'
profiles:
  quick:
    review_every: 5s
    review_grace: 2s
    on_missed_review: suspend
  chatty:
    review_every: 5s
users:
  erin: { manager: frank }
  frank: {}
roles:
  vault:
    profile: quick
    hosts: ["sbx-*"]
    eligible: { users: [erin] }
    approvers: { users: [frank] }
  wiki:
    profile: chatty
    hosts: ["sbx-*"]
    eligible: { users: [erin] }
    approvers: { users: [frank] }
YAML
} >"$P2"
# The approvers hear of it through Slack (a stand-in webhook).
POLICY=$P2
slack_setup
broker_start "$P2"
assert_rc "a broker with 5s reviews starts" 0 "$([ -n "$BROKER_PID" ] && echo 0 || echo 1)"
req --as erin --json vault --reason "filed before the deadline"
VAULT_REQ=$(out_id)
assert_ne "erin files a vault request before it is suspended" "" "$VAULT_REQ"
wait_record 15 '.event == "review.due" and .role == "vault"'
assert_rc "review.due is recorded for vault" 0 "$?"
assert_eq "it names the approvers and what happens next" '["frank","suspend","2s"]' \
	"$(journal_select '.event == "review.due" and .role == "vault"' | head -n 1 | jq -c '[.approvers,.on_missed_review,.review_grace]')"
assert_contains "the log says it" "$(cat "$LOG")" "access review of vault is due"
wait_record 10 '.event == "notify.delivered" and .state == "review.due" and .role == "vault"'
assert_rc "the notice went to Slack through the outbox" 0 "$?"
posted=$(jq -r 'select(.status == 200 and (.path | startswith("/services/"))) | .json.text // empty' "$FAKE_LOG" | grep '^Access review due: vault' | head -n 1)
assert_contains "Slack got the summary" "$posted" "0 standing and 1 eligible members, 0 live grants. Approvers: frank."
wait_record 15 '.event == "review.suspended" and .role == "vault"'
assert_rc "vault is suspended after the grace" 0 "$?"
ctl --as frank approve "$VAULT_REQ" --comment "ok"
assert_rc "a request filed before the suspension is not granted now" 1
assert_contains "the approval is refused saying why" "$ERR" "vault is suspended since"
req --as erin cancel "$VAULT_REQ"
assert_rc "erin cancels it" 0
ctl --json review status
assert_eq "review status: vault suspended" "suspended" "$(json_get '.[] | select(.role=="vault") | .state')"
assert_eq "review status: wiki (notify) only due" "due" "$(json_get '.[] | select(.role=="wiki") | .state')"
assert_eq "review status: next due and every" "5" "$(json_get '.[] | select(.role=="vault") | .review_every')"
ctl review status
assert_contains "review status in words" "$OUT" "suspended"
req --as erin vault --reason "read the audit vault"
assert_rc "a request for the suspended role is refused" 1
assert_contains "saying why" "$ERR" "vault is suspended since"
req --as erin wiki --reason "edit the team wiki"
assert_rc "on_missed_review: notify keeps taking requests" 0
n_wiki=$(journal_select '.event == "review.suspended" and .role == "wiki"' | wc -l)
assert_eq "notify never suspends" 0 "$n_wiki"
ctl --as frank review certify erin vault --comment "reviewed the vault list"
assert_rc "frank certifies" 0
assert_true "review.resumed is recorded" journal_has '.event == "review.resumed" and .role == "vault"'
req --as erin --json vault --reason "read the audit vault"
assert_rc "the next request is taken again" 0
assert_eq "and pending approval" "pending" "$(json_get .state)"
broker_stop

tap_done
