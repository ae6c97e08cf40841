#!/bin/bash
# docs/architecture.md against the tree: every file:function its behaviour
# table names exists (a definition, not a mention), every top-level part
# of the tree is in its parts table, and the programs link what the table
# says (sbx-request no libldap, libcrypto or libpq; the modules nothing of
# the broker's libraries, and neither logging nor the daemon's helpers).
. "$(dirname "$0")/lib.sh"
sbx_init
DOC="$SBX_SRCDIR/docs/architecture.md"

# defined NAME FILE: NAME is defined in FILE (at the start of a line, or
# after its return type on the same line), not only called.
defined() { grep -qE "^([A-Za-z_].*[ *])?$1\(" "$2"; }

# ---- the behaviour table ----------------------------------------------------
missing=""
checked=0
while read -r ref; do
	file=${ref%%:*}
	fn=${ref#*:}
	checked=$((checked + 1))
	if [ ! -f "$SBX_SRCDIR/$file" ]; then
		missing="$missing $ref(no file)"
		continue
	fi
	# A definition: the name at the start of a line, or after a return type
	# on the same line, followed by "(" - not a call inside a body.
	defined "$fn" "$SBX_SRCDIR/$file" || missing="$missing $ref"
done < <(sed -n '/^## Where each behaviour lives/,/^## /p' "$DOC" |
	grep -oE '`[a-z_/]+\.[ch]:[a-zA-Z_0-9]+`' | tr -d '`' | sort -u)
assert_int_between "the behaviour table names at least 40 file:function places" 40 1000 "$checked"
assert_eq "every file:function in the behaviour table is defined there" "" "$missing"

# Bare function names after a file:function in the same cell belong to
# that file: check them too.
missing=""
while IFS= read -r line; do
	file=""
	for tok in $(printf '%s' "$line" | grep -oE '`[^`]+`' | tr -d '`'); do
		case "$tok" in
		*/*.[ch]:*) file=${tok%%:*} ;;
		*[!a-zA-Z0-9_]*) ;;
		*)
			[ -n "$file" ] || continue
			defined "$tok" "$SBX_SRCDIR/$file" || missing="$missing $file:$tok"
			;;
		esac
	done
done < <(sed -n '/^## Where each behaviour lives/,/^## /p' "$DOC" | grep '^|')
assert_eq "every function named beside a file in the table is defined in that file" "" "$missing"

# ---- the parts table ------------------------------------------------------------
parts=$(sed -n '/^## The parts/,/^## /p' "$DOC" | grep -oE '^\| `[a-z_/]+/`' | tr -d '|` ' | sort -u)
unlisted=""
# The folders the repository holds (a build directory of any name is not
# one of them); without git, every folder but the usual build ones.
if git -C "$SBX_SRCDIR" rev-parse --git-dir >/dev/null 2>&1; then
	folders=$(git -C "$SBX_SRCDIR" ls-files | sed -n 's|^\([^/]*\)/.*|\1/|p' | sort -u)
else
	folders=$(cd "$SBX_SRCDIR" && ls -d -- */)
fi
for name in $folders; do
	case "$name" in
	.*/|build*/|autom4te.cache/|m4/|build-aux/|scripts/|docs/|packaging/|demo-run/) continue ;;
	esac
	printf '%s\n' "$parts" | grep -qx "$name" || unlisted="$unlisted $name"
done
assert_eq "every top-level code folder is in the parts table" "" "$unlisted"

# ---- what each program links ------------------------------------------------------
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' '; }
REQ_BIN="$SBX_BUILDDIR/.libs/sbx-request"
[ -x "$REQ_BIN" ] || REQ_BIN="$SBX_BUILDDIR/sbx-request"
assert_not_contains "sbx-request links no libldap" "$(needed "$REQ_BIN")" "libldap"
assert_not_contains "sbx-request links no libcrypto" "$(needed "$REQ_BIN")" "libcrypto"
assert_not_contains "sbx-request links no libpq" "$(needed "$REQ_BIN")" "libpq"
CTL_BIN="$SBX_BUILDDIR/.libs/sbxctl"
[ -x "$CTL_BIN" ] || CTL_BIN="$SBX_BUILDDIR/sbxctl"
assert_contains "sbxctl links libldap (policy check --online)" "$(needed "$CTL_BIN")" "libldap"
assert_contains "sbxctl links libpq (fleet init/status/verify)" "$(needed "$CTL_BIN")" "libpq"
for so in "$SBX_BUILDDIR/.libs/pam_sbx.so" "$SBX_BUILDDIR/.libs/libnss_sbx.so.2" \
	"$SBX_BUILDDIR/.libs/sbx_sudo.so"; do
	[ -r "$so" ] || continue # sbx_sudo.so: built where sudo_plugin.h is
	syms=$(nm "$so" | awk '{print $3}' |
		grep -E '^sbx_(log|journal|policy|namemap|secret|broker|ldap)' | tr '\n' ' ')
	assert_eq "$(basename "$so") carries none of the broker's code (logging, journal, policy)" \
		"" "$syms"
	assert_not_contains "$(basename "$so") links no libpq" "$(needed "$so")" "libpq"
done
syms=$(nm "$SBX_BUILDDIR/.libs/pam_sbx.so" | awk '{print $3}' | grep -c '^sbx_tbl_' || true)
assert_eq "pam_sbx.so carries no grant-table reader (it never reads the table)" 0 "$syms"

tap_done
