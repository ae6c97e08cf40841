#!/bin/bash
# sbx-brokerd.service as `make` builds it from packaging/sbx-brokerd.service.in:
# it says what issue 16 asks of it (Type=notify, ordering, the preserved
# runtime directory, the state directory's mode, reload, the sandboxing),
# `systemd-analyze security` rates it 3.0 or better and docs/install.md
# records the figure, and every system call the broker makes through a
# request's life, a reload, an expiry and a stop is one its
# SystemCallFilter= allows (strace): a call the filter denied would fail
# with EPERM only under systemd.
. "$(dirname "$0")/lib.sh"
sbx_init
UNIT="$SBX_BUILDDIR/sbx-brokerd.service"
INSTALL_MD="$SBX_SRCDIR/docs/install.md"

assert_true "make built the unit" test -s "$UNIT" || {
	tap_done
	exit
}
for line in "Type=notify" "NotifyAccess=main" "Before=ssh.service sudo.service" \
	"RuntimeDirectory=sbx" "RuntimeDirectoryPreserve=yes" "StateDirectory=sbx" \
	"StateDirectoryMode=0700" "ExecReload=/bin/kill -HUP \$MAINPID" \
	"CapabilityBoundingSet=CAP_KILL" "NoNewPrivileges=yes" "SystemCallFilter=@system-service" \
	"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" "ProtectSystem=strict" \
	"ProtectHome=read-only" "PrivateTmp=yes" "LockPersonality=yes" \
	"MemoryDenyWriteExecute=yes" "WantedBy=multi-user.target"; do
	assert_true "the unit says $line" grep -qxF "$line" "$UNIT"
done
assert_match "ExecStart runs this build's broker in the foreground" \
	"^ExecStart=/.*/sbin/sbx-brokerd --foreground --config /.*/sbx/policy.yaml$" "$(cat "$UNIT")"

if ! command -v systemd-analyze >/dev/null; then
	tap_skip "systemd-analyze security rates the unit" "systemd-analyze is not installed"
else
	run systemd-analyze security --offline=true "$UNIT"
	score=$(printf '%s\n' "$OUT" | sed -n 's/.*Overall exposure level for sbx-brokerd.service: \([0-9.]*\).*/\1/p')
	assert_true "systemd-analyze security: 3.0 or better (got ${score:-nothing})" \
		awk -v s="${score:-99}" 'BEGIN { exit !(s <= 3.0) }'
	assert_contains "docs/install.md records that figure" "$(cat "$INSTALL_MD")" "rates it **$score OK**"
fi

# --- the system calls ---------------------------------------------------------------------------
if ! command -v strace >/dev/null || ! command -v systemd-analyze >/dev/null; then
	tap_skip "the broker's system calls pass the unit's filter" "strace or systemd-analyze is not installed"
	tap_done
	exit
fi
# expand @GROUP|NAME...: the system calls they name, one per line.
expand() {
	local x

	for x in "$@"; do
		case $x in
		@*) systemd-analyze syscall-filter "$x" | sed '1d; s/^ *//; /^#/d; /^$/d' |
			while read -r y; do expand "$y"; done ;;
		*) echo "$x" ;;
		esac
	done
}
# The lines apply in order (systemd.exec(5)): an allow list adds, a
# deny list (~) takes away from what the lines before it allowed.
ALLOWED=
while read -r value; do
	# shellcheck disable=SC2086 # the value is words
	case $value in
	~*) ALLOWED=$(comm -23 <(printf '%s\n' "$ALLOWED") <(expand ${value#\~} | sort -u)) ;;
	*) ALLOWED=$(sort -u <(printf '%s\n' "$ALLOWED") <(expand $value)) ;;
	esac
done < <(sed -n 's/^SystemCallFilter=//p' "$UNIT")
ALLOWED=$(printf '%s\n' "$ALLOWED" | sed '/^$/d')
assert_int_between "the filter allows a few hundred calls" 100 1000 "$(printf '%s\n' "$ALLOWED" | wc -l)"

BROKER_PREFIX=(strace -f -qq -o "$T/trace")
broker_start
# Signals go to the broker, strace's child, not to strace.
TRACED=$(pgrep -P "$BROKER_PID" | head -n 1)
assert_ne "the broker runs under strace" "" "$TRACED"
req --as erin sandbox-admin --for 1h --reason "strace of the broker's calls" --json
ID=$(out_id)
ctl --as frank approve "$ID"
ctl check erin
req --as erin list
ctl grants --all
kill -HUP "$TRACED"
wait_until 10 grep -q "policy reloaded" "$LOG"
ctl --as frank revoke "$ID" --reason "done"
req --as alice sandbox-readonly --reason "a grant that expires at once" --for 1s --json
EXPIRING=$(out_id)
wait_until 10 sh -c "'$SBXREQ' --socket '$SOCK' --as alice status '$EXPIRING' | grep -q expired"
req --as alice status "$EXPIRING"
assert_contains "a grant expired while traced" "$OUT" "expired"
ctl status
kill -TERM "$TRACED"
broker_exit_wait 15
assert_eq "the traced broker stopped cleanly" 0 "$BROKER_RC"
used=$(grep -oE '^[0-9]+ +[a-z_0-9]+\(' "$T/trace" | sed 's/.* //; s/($//' | sort -u)
assert_int_between "strace saw the broker's calls" 20 400 "$(printf '%s\n' "$used" | wc -l)"
assert_eq "every call it made is one SystemCallFilter= allows" "" \
	"$(comm -23 <(printf '%s\n' "$used") <(printf '%s\n' "$ALLOWED") | tr '\n' ' ')"

tap_done
