#!/bin/bash
# sbxctl review report over a scripted quarter (tests/data/review/quarter.jsonl:
# 2026Q3 under the reference policy, written through the journal's own append
# path with the script's times).  Every number is worked out by hand in the
# script's comments; here the report must say exactly that in md, csv and
# json, and the HTML report must show it in a real headless Chromium.
. "$(dirname "$0")/lib.sh"
sbx_init

JW="$SBX_BUILDDIR/tests/integration/journal_writer"
Q="$T/q"
mkdir -p "$Q"
run "$JW" "$Q" <"$SBX_SRCDIR/tests/data/review/quarter.jsonl"
assert_rc "the scripted quarter is written" 0
run "$SBXCTL" audit verify --state-dir "$Q"
assert_rc "its journal is intact" 0

report() { run "$SBXCTL" review report --config "$POLICY" --state-dir "$Q" --quarter 2026Q3 "$@"; }

# ---- csv: the whole file, line by line ----
# Flagged rows first (role, user order), then the rest.
#  prod-data/alice: review_every 90d from the first policy.loaded (06-20 08:00)
#    -> due 09-18 08:00, never reviewed: overdue at the quarter's end.
#  sandbox-admin/alice: one auto-approved 1h grant of a role with a unix_group.
#  sandbox-admin/erin: 3 grants x 2h (the max) = 6.0 h, frank approved all three
#    after 10, 20, 30 min (avg 20m, max 30m); 3 allowed logins (the denied one
#    is not counted), 2 sessions, 2 sudo commands under grant 4; the June grant is
#    before the quarter (carol's command ran under no grant: no row's).
#  carol: an open drift finding (bob's was resolved) on both her rows; her only
#    login is in June: standing sandbox-user unused.
#  dave: last standing login 08-15, 47 days before the end: unused (30d).
report --format csv
assert_rc "csv report" 0
expected=$(cat <<'CSV'
role,user,access,source,grants,hours,at_max,auto_approved,approvers,wait_avg,wait_max,reasons,tickets,logins,last_login,sessions,last_session,sudo_commands,drift_open,last_decision,flags
prod-data,alice,eligible,"policy file, by name",0,0.0,0,0,,-,-,,,0,never,0,never,0,0,-,review-overdue
sandbox-admin,alice,eligible,group sre (policy file),1,1.0,0,1,,-,-,emergency db restore (1),INC-9 (1),0,never,0,never,0,0,-,auto-approved-sensitive
sandbox-admin,erin,eligible,group sre (policy file),3,6.0,3,0,frank (3),20m,30m,"fix the ingest pipeline (2); rotate the certs, | and <b> (1)",INC-1 (2); INC-7 (1),3,2026-09-14T07:35:00Z,2,2026-09-14T07:36:00Z,2,0,-,max-duration same-approver
sandbox-readonly,carol,eligible,group developers (policy file),0,0.0,0,0,,-,-,,,0,never,0,never,0,1,-,drift
sandbox-user,carol,standing,group developers (policy file),0,0.0,0,0,,-,-,,,0,2026-06-25T09:00:00Z,0,never,0,1,-,unused drift
sandbox-user,dave,standing,group developers (policy file),0,0.0,0,0,,-,-,,,1,2026-08-15T08:00:00Z,0,never,0,0,-,unused
sandbox-admin,dave,eligible,"policy file, by name",1,1.0,0,0,grace (1),5m,5m,restart the queue workers (1),,0,never,0,never,0,0,-,
sandbox-readonly,alice,eligible,group developers (policy file),2,0.5,0,2,,-,-,read the logs (2),,0,never,0,never,0,0,-,
sandbox-readonly,dave,eligible,group developers (policy file),0,0.0,0,0,,-,-,,,0,never,0,never,0,0,-,
sandbox-user,alice,standing,group developers (policy file),0,0.0,0,0,,-,-,,,2,2026-09-28T08:00:00Z,0,never,0,0,-,
CSV
)
got=$(printf '%s\n' "$OUT" | tr -d '\r')
n=0
while IFS= read -r line; do
	n=$((n + 1))
	assert_eq "csv line $n" "$line" "$(printf '%s\n' "$got" | sed -n "${n}p")"
done <<<"$expected"
assert_eq "csv has a header and 10 rows" 11 "$(printf '%s\n' "$got" | wc -l)"
assert_eq "csv lines end in CRLF" 11 "$(printf '%s\n' "$OUT" | grep -c $'\r$')"

# ---- md ----
report --format md
assert_rc "md report" 0
for l in "- rows: 10" "- flagged: 6" "- roles: 4" "- grants: 7" "- grant hours: 8.5" \
	"- logins: 6" "- open drift findings: 1" "- flag unused: 2" "- flag max-duration: 1" \
	"- flag same-approver: 1" "- flag auto-approved-sensitive: 1" "- flag drift: 2" \
	"- flag review-overdue: 1" "- flag revoked-still-standing: 0" \
	"Period: 2026-07-01T00:00:00Z to 2026-10-01T00:00:00Z" \
	"| prod-data | 90d | never | 2026-09-18T08:00:00Z | overdue | 0 |" \
	"| sandbox-admin | - | never | - | no review | 5 |" \
	"| sandbox-readonly | - | never | - | no review | 2 |" \
	"| sandbox-user | - | never | - | no review | 0 |" \
	; do
	assert_eq "md has: $l" 1 "$(printf '%s\n' "$OUT" | grep -cxF -- "$l")"
done
# Flagged rows are listed twice: under Flagged and under All access.
for l in \
	'| sandbox-admin | erin | eligible | group sre (policy file) | 3 | 6.0 | 3 | 0 | frank (3) | 20m | 30m | fix the ingest pipeline (2); rotate the certs, \| and \<b\> (1) | INC-1 (2); INC-7 (1) | 3 | 2026-09-14T07:35:00Z | 2 | 2026-09-14T07:36:00Z | 2 | 0 | - | max-duration same-approver |' \
	"| sandbox-user | dave | standing | group developers (policy file) | 0 | 0.0 | 0 | 0 |  | - | - |  |  | 1 | 2026-08-15T08:00:00Z | 0 | never | 0 | 0 | - | unused |"; do
	assert_eq "md has twice: $l" 2 "$(printf '%s\n' "$OUT" | grep -cxF -- "$l")"
done
assert_eq "md: an unflagged row once" 1 "$(printf '%s\n' "$OUT" | grep -cxF -- \
	"| sandbox-admin | dave | eligible | policy file, by name | 1 | 1.0 | 0 | 0 | grace (1) | 5m | 5m | restart the queue workers (1) |  | 0 | never | 0 | never | 0 | 0 | - |  |")"
flagged=$(printf '%s\n' "$OUT" | sed -n '/^## Flagged/,/^## All/p' | grep -c '^| [a-z]')
assert_eq "md: 6 flagged rows (and the header)" 7 "$flagged"

# ---- json ----
report --format json
assert_rc "json report" 0
assert_eq "json summary" '{"rows":10,"flagged":6,"roles":4,"grants":7,"grant_seconds":30600,"logins":6,"drift_open":1,"flags":{"unused":2,"max-duration":1,"same-approver":1,"auto-approved-sensitive":1,"drift":2,"review-overdue":1,"revoked-still-standing":0},"week_starts":"2026-07-01T00:00:00Z"}' \
	"$(json_get '.summary | tojson')"
assert_eq "json erin" '[3,21600,3,3,1200,1800,"frank",3,3,2,["max-duration","same-approver"]]' \
	"$(json_get '.rows[] | select(.role=="sandbox-admin" and .user=="erin") | [.grants,.grant_seconds,.at_max_duration,.approved,.wait_avg_seconds,.wait_max_seconds,.approvers[0].text,.approvers[0].count,.logins,.sessions,.flags] | tojson')"
assert_eq "json: the sudo commands run under erin's grants (command.run, sbx_sudo.so)" "2" \
	"$(json_get '.rows[] | select(.role=="sandbox-admin" and .user=="erin") | .sudo_commands')"
assert_eq "json reason kept as recorded" "rotate the certs, | and <b>" \
	"$(json_get '.rows[] | select(.user=="erin") | .reasons[1].text')"
assert_eq "json grants per week of sandbox-admin (14 weeks from 07-01)" \
	'[1,0,1,0,1,1,0,0,0,0,1,0,0,0]' \
	"$(json_get '.roles[] | select(.role=="sandbox-admin") | .grants_per_week | tojson')"
assert_eq "json prod-data review" '[7776000,null,"2026-09-18T08:00:00Z",true]' \
	"$(json_get '.roles[] | select(.role=="prod-data") | [.review_every_seconds,.last_review,.next_due,.overdue] | tojson')"

# ---- filters ----
report --format json --user erin
assert_eq "--user erin: erin's rows only" "sandbox-admin" "$(json_get '[.rows[].role] | join(",")')"
report --format json --role sandbox-user
assert_eq "--role sandbox-user: its three standing members" "alice carol dave" \
	"$(json_get '[.rows[].user] | sort | join(" ")')"
run "$SBXCTL" review report --config "$POLICY" --state-dir "$Q" --since 7d --quarter 2026Q3
assert_rc "--since with --quarter is a usage error" 2
report --format pdf
assert_rc "an unknown format is a usage error" 2
assert_contains "it names the formats" "$ERR" "md, csv, json or html"
run "$SBXCTL" review report --config "$POLICY" --state-dir "$Q" --quarter 2026Q5
assert_rc "a bad quarter is a usage error" 2

# ---- the --out file: never one someone else planted ----
printf 'old\n' >"$T/mine.html"
chmod 644 "$T/mine.html"
report --format html --out "$T/mine.html"
assert_rc "--out over a file of one's own" 0
assert_eq "... it is rewritten and 0600" "600 0" \
	"$(stat -c %a "$T/mine.html") $(grep -c '^old$' "$T/mine.html")"
ln "$T/mine.html" "$T/link.html"
report --format html --out "$T/link.html"
assert_rc "--out to a file with a second name (a hard link) is refused" 2
rm -f "$T/link.html"
mkfifo "$T/fifo.html"
report --format html --out "$T/fifo.html"
assert_rc "--out to a FIFO is refused, without waiting for a reader" 2
if is_root; then
	install -m 666 -o 65534 /dev/null "$T/planted.html"
	report --format html --out "$T/planted.html"
	assert_rc "--out to a file another user owns is refused" 2
	assert_contains "... saying why" "$ERR" "another user's"
	assert_eq "... and it stays empty" 0 "$(stat -c %s "$T/planted.html")"
else
	tap_skip "--out to a file another user owns" "needs root to make one"
fi

# ---- html in Chromium ----
report --format html --out "$T/report.html"
assert_rc "html report to --out" 0
assert_eq "the report file is 0600" 600 "$(stat -c %a "$T/report.html")"
assert_eq "no external references in the file" 0 \
	"$(grep -ciE '(src|href)=|<script|@import|url\(' "$T/report.html")"
run /usr/bin/python3 "$SBX_SRCDIR/tests/integration/review_html.py" "$T/report.html" "$T/shot.png"
if [ "$RC" -eq 77 ] || [ ! -x /usr/bin/python3 ]; then
	tap_skip "html report in headless Chromium" "$ERR (scripts/deps.sh test installs it)"
else
	assert_rc "Chromium opened the report" 0
	H=$OUT
	hj() { printf '%s' "$H" | jq -r "$1"; }
	assert_eq "a screenshot was taken (PNG)" "PNG" "$(head -c 4 "$T/shot.png" | tail -c 3)"
	assert_true "the screenshot is not empty" [ "$(stat -c %s "$T/shot.png")" -gt 10000 ]
	assert_eq "page title" "sbx access review" "$(hj .title)"
	assert_eq "it prints (Chromium's print to PDF)" "%PDF-" "$(hj .pdf_magic)"
	assert_true "to at least one page" [ "$(hj .pdf_pages)" -ge 1 ]
	assert_eq "page summary" '{"s-rows":"10","s-flagged":"6","s-roles":"4","s-grants":"7","s-hours":"8.5","s-logins":"6","s-drift":"1","f-unused":"2","f-max-duration":"1","f-same-approver":"1","f-auto-approved-sensitive":"1","f-drift":"2","f-review-overdue":"1","f-revoked-still-standing":"0"}' \
		"$(hj '.summary | tojson')"
	assert_eq "6 flagged rows shown" 6 "$(hj '.flagged_rows | length')"
	assert_eq "erin's flagged row as shown" 'sandbox-admin|erin|3|6.0|frank (3)|20m|fix the ingest pipeline (2); rotate the certs, | and <b> (1)|2|max-duration same-approver' \
		"$(hj '.flagged_rows[] | select(.[1]=="erin") | [.[0],.[1],.[4],.[5],.[8],.[9],.[11],.[17],.[20]] | join("|")')"
	assert_eq "10 rows in everything" 10 "$(hj .all_rows)"
	assert_eq "7 bars in the chart (one per role and week with grants)" 7 "$(hj .chart_bars)"
	assert_eq "nothing fetched besides the page" 0 "$(hj '.resources | length')"
	assert_eq "no scripts" 0 "$(hj .scripts)"
	# The reason's <b> is text: the only <b> elements are the 7 flag names.
	assert_eq "recorded markup is shown, not obeyed" 7 "$(hj .bold_elements)"
	assert_contains "the page says what each flag means" "$(hj .text)" \
		"same-approver: the same approver approved every grant"
fi

tap_done
