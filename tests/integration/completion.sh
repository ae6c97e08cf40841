#!/bin/bash
# bash completion (packaging/bash-completion): commands, subcommands and
# options in each position, durations and formats, and from a running
# broker (the one --socket on the line names) the roles one may ask for,
# one's request ids, pending requests to approve and grants to revoke.
# With no broker it completes the rest and stays quiet.
. "$(dirname "$0")/lib.sh"
sbx_init
COMP="$SBX_SRCDIR/packaging/bash-completion"

# complete TOOL WORD...: what bash would offer for the last WORD (may be
# empty) after the others, one per line, sorted.  The tools by name from
# the build tree, as the completion runs them.
complete_words() {
	local tool=$1

	shift
	PATH="$SBX_BUILDDIR:$PATH" bash -c '
		source "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		"$FN" 2>&1; printf "%s\n" "${COMPREPLY[@]}"' sh "$COMP/$tool" "$tool" "$@" |
		grep -v '^$' | sort
}
req_words() { FN=_sbx_request complete_words sbx-request "$@"; }
ctl_words() { FN=_sbxctl complete_words sbxctl "$@"; }
export FN

# Without a broker: no ids, and no noise.
got=$(req_words --socket "$SOCK" "")
assert_eq "sbx-request, no broker: the commands" "cancel drop extend help list roles status token" "$(echo $got)"
assert_eq "sbx-request status, no broker: no ids and nothing printed" "" "$(req_words --socket "$SOCK" status "")"

broker_start
req --as erin sandbox-admin --for 30m --reason "completion test request" --json
ID=$(out_id)
req --as alice sandbox-readonly --for 10m --reason "completion test grant" --json
GRANT=$(out_id)

got=$(req_words --socket "$SOCK" sand)
assert_eq "sbx-request: role names from the broker" \
	"sandbox-admin sandbox-readonly sandbox-user" "$(echo $got)"
assert_contains "sbx-request: commands and roles together" "$(req_words --socket "$SOCK" "")" "list"
assert_eq "sbx-request --as erin status: erin's request ids" "$ID" \
	"$(echo $(req_words --socket "$SOCK" --as erin status ""))"
assert_eq "sbx-request --as alice drop: alice's" "$GRANT" \
	"$(echo $(req_words --socket "$SOCK" --as alice drop ""))"
assert_eq "sbx-request ROLE --: the request's options and the global ones" \
	"--as --for --help --json --reason --socket --ticket --timeout --timeout-ms --version --wait" \
	"$(echo $(req_words sandbox-admin --))"
assert_eq "sbx-request list --a: its --all and the global --as" "--all --as" "$(echo $(req_words list --a))"
assert_contains "sbx-request --for: durations" "$(req_words sandbox-admin --for "")" "1h"
assert_eq "sbx-request --reason: nothing to offer" "" "$(req_words sandbox-admin --reason "")"

assert_eq "sbxctl: the commands" \
	"activity alerts approve audit check deny drift fleet grants help pending policy review revoke status token" "$(echo $(ctl_words ""))"
assert_eq "sbxctl policy: its subcommands" "check explain" "$(echo $(ctl_words policy ""))"
assert_eq "sbxctl audit: its subcommands" "export init query tail verify verify-export" \
	"$(echo $(ctl_words audit ""))"
assert_eq "sbxctl fleet: its subcommands" "init status verify" "$(echo $(ctl_words fleet ""))"
assert_eq "sbxctl drift: its subcommand" "scan" "$(echo $(ctl_words drift ""))"
assert_eq "sbxctl review: its subcommands" "certify report revoke status" "$(echo $(ctl_words review ""))"
assert_eq "sbxctl review report --format: its formats" "csv html json md" \
	"$(echo $(ctl_words review report --format ""))"
assert_eq "sbxctl activity --: its options" "--config --grant --since --state-dir --user" \
	"$(echo $(ctl_words activity --) | tr ' ' '\n' | grep -vE '^--(socket|json|as|help|version|timeout-ms)$' | sort | tr '\n' ' ' | sed 's/ $//')"
assert_eq "sbxctl token: its subcommands" "list revoke" "$(echo $(ctl_words token ""))"
assert_eq "sbxctl approve: the pending requests' ids" "$ID" \
	"$(echo $(ctl_words --socket "$SOCK" approve ""))"
assert_eq "sbxctl revoke: the active grants' ids" "$GRANT" \
	"$(echo $(ctl_words --socket "$SOCK" revoke ""))"
assert_eq "sbxctl approve ID: no second id" "" "$(ctl_words --socket "$SOCK" approve "$ID" "")"
assert_eq "sbxctl audit query --format: the formats" "csv jsonl text" \
	"$(echo $(ctl_words audit query --format ""))"
assert_contains "sbxctl audit query --: its filters" "$(ctl_words audit query --)" "--since"
assert_contains "... and --outcome" "$(ctl_words audit query --)" "--outcome"
assert_eq "sbxctl audit export --format: its formats" "csv json jsonl" \
	"$(echo $(ctl_words audit export --format ""))"
assert_contains "sbxctl audit tail --: --follow" "$(ctl_words audit tail --)" "--follow"
assert_eq "sbxctl grants --: --user and --all, then the global options" \
	"--all --as --help --json --socket --timeout-ms --user --version" "$(echo $(ctl_words grants --))"
assert_contains "sbxctl check: user names" "$(ctl_words check ro)" "root"
assert_contains "sbxctl policy check: file names" \
	"$(cd "$SBX_SRCDIR" && ctl_words policy check packaging/examples/sl)" "packaging/examples/slack.yaml"

broker_stop
tap_done
