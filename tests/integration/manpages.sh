#!/bin/bash
# The man pages (docs/man, one hand-written roff source each): every page
# renders without a warning from man/groff at 80 columns, has the sections
# a reader looks for, and every page that a --help text or another page's
# SEE ALSO names as ours exists.  `make install` puts them in place
# (uninstall_guard.sh, packaging.sh).
. "$(dirname "$0")/lib.sh"
sbx_init
MAN="$SBX_SRCDIR/docs/man"
PAGES="sbx-brokerd.8 sbx-request.1 sbxctl.8 pam_sbx.8 libnss_sbx.8 sbx-policy.5"

command -v man >/dev/null || {
	tap_skip "the man pages render without warnings" "man (man-db) is not installed"
	tap_done
	exit
}
for p in $PAGES; do
	assert_true "docs/man/$p exists" test -s "$MAN/$p" || continue
	run env MANWIDTH=80 man --warnings -l "$MAN/$p"
	assert_eq "man -l $p: no warnings (MANWIDTH=80 man --warnings)" "0:" "$RC:$ERR"
	assert_match "$p: NAME, SYNOPSIS, DESCRIPTION and SEE ALSO" \
		'^NAME .*SYNOPSIS .*DESCRIPTION .*SEE ALSO' \
		"$(printf '%s\n' "$OUT" | grep -E '^[A-Z][A-Z ]+$' | tr '\n' ' ')"
	name=${p%.*}
	assert_match "$p: its NAME line is \"$name - ...\"" "^ +${name} +- " "$(printf '%s\n' "$OUT" | sed -n 4p)"
done

# Pages of ours that TEXT names: sbx-*(N), sbxctl(N), pam_sbx(N), libnss_sbx(N).
ours() { grep -oE '\b(sbx-[a-z]+|sbxctl|pam_sbx|libnss_sbx)\([0-9]\)' | sort -u; }
missing=""
# exists REF...: each NAME(N) has docs/man/NAME.N.
exists() {
	local ref

	for ref in "$@"; do
		[ -e "$MAN/${ref%(*}.$(echo "$ref" | tr -dc 0-9)" ] || missing="$missing $ref"
	done
}
named=0
for prog in "$BROKERD" "$SBXREQ" "$SBXCTL"; do
	refs=$("$prog" --help | grep -iA3 'see also' | ours)
	assert_ne "$(basename "$prog") --help has a \"See also\" naming our pages" "" "$refs"
	# shellcheck disable=SC2086 # one reference a word
	exists $refs
	named=$((named + $(printf '%s\n' "$refs" | grep -c .)))
done
for p in $PAGES; do
	# shellcheck disable=SC2086
	exists $(MANWIDTH=200 man -l "$MAN/$p" 2>/dev/null | ours)
done
assert_eq "every page a --help or a SEE ALSO names as ours exists ($named named by --help)" "" "$missing"
assert_true "sbxctl and sbx-request name each other's pages" \
	sh -c "'$SBXCTL' --help | grep -q 'sbx-request(1)' && '$SBXREQ' --help | grep -q 'sbxctl(8)'"

tap_done
