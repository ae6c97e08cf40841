#!/bin/bash
# Snapshots are written by a child process while the broker goes on: a
# check and a request are answered while the child is stuck; a killed or
# failed child is logged with its reason and leaves the old snapshot,
# which the next start uses; SIGTERM does not wait for a stuck child; a
# clean stop of a small broker leaves a snapshot the next start uses; a
# snapshot in the old one-document format is ignored with a note.
#
# The child is held still without any timing: snapshot.json.tmp is made a
# FIFO, and the child's open() of it for writing waits until someone opens
# it for reading.  (A FIFO also cannot be fsync'ed, which is how a child
# is made to fail.)
. "$(dirname "$0")/lib.sh"
sbx_init

TMP="$STATE/snapshot.json.tmp"

# The seq of the last record, of snapshot.json's header, and the
# snapshot_seq the last start says it used ("null": none).
last_seq() { journal | tail -n 1 | jq .seq; }
snap_seq() { head -n 1 "$STATE/snapshot.json" 2>/dev/null | jq .seq 2>/dev/null; }
started_from() { journal_select '.event == "broker.started"' | tail -n 1 | jq .snapshot_seq; }
# The broker's snapshot child ("" when none).
child() { pgrep -P "$BROKER_PID" | head -n 1; }
has_child() { [ -n "$(child)" ]; }
logged() { grep -q -- "$1" "$LOG"; }

broker_start
tap_result "broker starts" || {
	tap_done
	exit
}

req --as erin --json sandbox-admin --reason "snapshot test: before any snapshot"
P1=$(out_id)
assert_rc "erin files a request" 0

# --- SIGUSR1: a snapshot now, in the background -------------------------------
SEQ=$(last_seq)
kill -USR1 "$BROKER_PID"
wait_until 10 logged "snapshot at seq $SEQ written"
tap_result "SIGUSR1 writes a snapshot and logs it"
assert_eq "snapshot.json names the last record" "$SEQ" "$(snap_seq)"
assert_true "no temporary file is left" test ! -e "$TMP"
SNAP1=$SEQ

# --- a stuck child: the broker goes on ---------------------------------------
req --as dave --json sandbox-readonly
assert_rc "dave files a request (something new to snapshot)" 0
mkfifo "$TMP"
kill -USR1 "$BROKER_PID"
wait_until 10 has_child
tap_result "a snapshot child is started"
C=$(child)
ctl --json check alice
assert_rc "a check is answered while the child is stuck" 0
assert_eq "... and decided" true "$(json_get .allowed)"
req --as alice --json sandbox-readonly --reason "snapshot test: filed while the child is stuck"
assert_rc "a request is filed and acknowledged while the child is stuck" 0
P2=$(out_id)
assert_true "the child is still there, stuck" alive "$C"

# --- a killed child -------------------------------------------------------------
kill -9 "$C"
wait_until 10 logged "not written: its process was killed by signal 9"
tap_result "a killed child is logged with its reason"
assert_true "its temporary file is removed" test ! -e "$TMP"
assert_eq "the old snapshot stays" "$SNAP1" "$(snap_seq)"
ctl status
assert_rc "the broker goes on" 0

# --- a failed child -------------------------------------------------------------
mkfifo "$TMP"
kill -USR1 "$BROKER_PID"
wait_until 10 has_child
# Reading lets it write; a FIFO cannot be fsync'ed.
cat "$TMP" >"$T/drained" &
track_pid $!
wait_until 10 logged "fsync of snapshot.json.tmp failed: Invalid argument"
tap_result "a failed child is logged with its reason"
assert_true "the child wrote its entries before it failed" grep -q '"entries":' "$T/drained"
assert_eq "the old snapshot stays" "$SNAP1" "$(snap_seq)"
req --as dave --json sandbox-admin --reason "snapshot test: after a failed snapshot"
assert_rc "a failed snapshot does not fail the journal" 0
P3=$(out_id)

# --- kill -9: the next start uses the old snapshot and the journal after it -----
broker_kill9
broker_start
tap_result "broker restarts after kill -9"
assert_eq "it started from the old snapshot" "$SNAP1" "$(started_from)"
for id in "$P1" "$P2" "$P3"; do
	req --json status "$id"
	assert_rc "request $id is there" 0
done

# --- SIGTERM does not wait for a stuck child ---------------------------------
assert_true "no leftover temporary file" test ! -e "$TMP"
mkfifo "$TMP"
kill -USR1 "$BROKER_PID"
wait_until 10 has_child
tap_result "a stuck child again"
C=$(child)
broker_stop
assert_eq "SIGTERM stops the broker cleanly (no SIGKILL needed)" 0 "$BROKER_RC"
assert_true "the stuck child is gone" eval '! alive "$C"'
assert_true "its FIFO is removed" test ! -e "$TMP"
assert_true "the log says it was stopped" logged "took longer than 500 ms and was stopped"
assert_eq "the old snapshot stays" "$SNAP1" "$(snap_seq)"
broker_start
tap_result "broker restarts"
assert_eq "it started from the old snapshot" "$SNAP1" "$(started_from)"

# --- a clean stop of a small broker leaves a snapshot ----------------------------
broker_stop
assert_rc "broker stops cleanly" 0 "$BROKER_RC"
STOPPED=$(last_seq)
assert_eq "the stop wrote a snapshot up to broker.stopped" "$STOPPED" "$(snap_seq)"
broker_start
tap_result "broker restarts after SIGTERM"
assert_eq "it started from the stop's snapshot" "$STOPPED" "$(started_from)"
assert_eq "it replayed nothing before broker.started" 0 \
	"$(journal_select '.event == "broker.started"' | tail -n 1 | jq .replayed)"
req --json status "$P2"
assert_eq "requests survive" "$P2" "$(json_get .id)"

# --- a snapshot in the old format is ignored with a note --------------------------
broker_kill9
printf '{"seq":%s,"hash":"%064d","segment":"000000000001.jsonl","offset":0,"state":{"version":1,"requests":[]}}\n' \
	"$STOPPED" 0 >"$STATE/snapshot.json"
broker_start
tap_result "broker starts with an old-format snapshot"
assert_true "the log says why it was not used" \
	logged "snapshot.json ignored (it is in the older one-document format, which is no longer read); replayed from seq 1"
assert_eq "it replayed from seq 1" null "$(started_from)"
req --json status "$P3"
assert_eq "requests survive" "$P3" "$(json_get .id)"

broker_stop
assert_rc "broker stops cleanly" 0 "$BROKER_RC"
tap_done
