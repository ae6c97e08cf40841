#!/bin/bash
# The sbx demo: build, start the broker on the reference policy in a local
# folder (./demo-run), and walk through a just-in-time grant from request
# to expiry, a restart, and an audit.  Needs root (it speaks for erin and
# frank with --as, which only root and broker.admin_group may do) and
# installs the Debian packages it needs.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
run="${SBX_DEMO_DIR:-$top/demo-run}"
grant_secs=8

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '$'; printf ' %q' "$@"; printf '\n'; "$@"; }
# Commands that are expected to answer "no" (exit 1) in the story.
show_no() { printf '$'; printf ' %q' "$@"; printf '\n'; if "$@"; then echo "(unexpectedly allowed)"; exit 1; fi; }

if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh: run me as root: the demo acts for erin and frank with --as," >&2
  echo "which only root and members of broker.admin_group may do." >&2
  exit 2
fi

say "Installing build dependencies (Debian packages) if missing"
bash scripts/deps.sh build

if [ -n "${SBX_BUILDDIR:-}" ]; then
  bin="$SBX_BUILDDIR"
else
  bin="$top/build"
  if [ ! -x "$bin/sbx-brokerd" ] || [ ! -x "$bin/sbxctl" ] || [ ! -x "$bin/sbx-request" ]; then
    say "Building sbx (autoreconf, configure, make) in ./build"
    autoreconf -fi >/dev/null 2>&1
    mkdir -p "$bin"
    (cd "$bin" && "$top/configure" -q && make -j"$(nproc)" >/dev/null)
  fi
fi
brokerd="$bin/sbx-brokerd"
sbxctl="$bin/sbxctl"
sbxreq="$bin/sbx-request"
policy="$top/packaging/examples/policy.yaml"

rm -rf "$run"
mkdir -p "$run"
sock="$run/broker.sock"
state="$run/state"
export SBX_SOCKET="$sock"
broker_pid=
stop_broker() {
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid"; wait "$broker_pid" 2>/dev/null || true
  fi
  broker_pid=
}
trap stop_broker EXIT

start_broker() {
  "$brokerd" --config "$policy" --foreground --socket "$sock" --state-dir "$state" \
    2>>"$run/broker.log" &
  broker_pid=$!
  for _ in $(seq 100); do
    "$sbxctl" status >/dev/null 2>&1 && return 0
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "demo.sh: the broker did not start; its log:" >&2
  cat "$run/broker.log" >&2
  exit 1
}

say "1. The reference policy is valid"
show "$sbxctl" policy check "$policy"

say "2. Start sbx-brokerd on it, with its socket and journal in $run"
printf '$ %s\n' "sbx-brokerd --config $policy --foreground --socket $sock --state-dir $state &"
start_broker
show "$sbxctl" status

say "3. Who may log in on this sandbox host (sbx-01)?"
show "$sbxctl" check alice
show_no "$sbxctl" check erin
show_no "$sbxctl" check bob
show "$sbxctl" policy explain erin

say "4. erin asks for sandbox-admin for ${grant_secs}s (short, for the demo): it waits for an approval"
show "$sbxreq" --as erin sandbox-admin --for "${grant_secs}s" --reason "debug the ingest pipeline on sbx-01"
id=$("$sbxreq" --as erin list --json | jq -r '.[] | select(.role=="sandbox-admin" and .state=="pending") | .id')
[ -n "$id" ] || { echo "demo.sh: erin's request is not pending" >&2; exit 1; }
show "$sbxreq" --as erin status "$id"

say "5. erin cannot approve herself; frank, her manager, sees the request and approves it"
show_no "$sbxctl" --as erin approve "$id"
show "$sbxctl" --as frank pending
show "$sbxctl" --as frank approve "$id" --comment "ok, go ahead"

say "6. Now erin may log in, and the grant shows who approved it and when it ends"
show "$sbxctl" check erin
show "$sbxctl" grants

say "7. The grant ends at its expiry without anyone asking (waiting ${grant_secs}s)"
expires=$("$sbxreq" --as erin status "$id" --json | jq -r .expires_at)
echo "grant $id expires at $expires"
for _ in $(seq $((grant_secs * 10 + 30))); do
  grep -q '"event":"grant.expired"' "$state"/journal/*.jsonl && break
  sleep 0.1
done
show grep -h '"event":"grant.expired"' "$state"/journal/*.jsonl
show_no "$sbxctl" check erin

say "8. dave files a request, then the broker restarts: nothing is lost"
show "$sbxreq" --as dave sandbox-admin --for 30m --reason "rotate the sandbox TLS certificates"
stop_broker
echo "(broker stopped)"
start_broker
echo "(broker started again)"
show "$sbxctl" pending
show "$sbxreq" --as erin list --all

say "9. The journal is intact: every record hash-chained to the one before"
stop_broker
show "$sbxctl" audit verify --state-dir "$state"
show "$sbxctl" audit query --state-dir "$state" --role sandbox-admin --format text

say "Done. The journal is in $state/journal; see docs/audit.md for its format."
