#!/bin/bash
# What libnss_sbx.so.2 brings into every process that resolves a group:
# only libc (the in-tree protocol code is compiled in), only the six
# _nss_sbx_* entry points exported, the soname glibc asks for.  And
# sbx-brokerd exports the marker that keeps the module off its socket.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nss_lib.sh"
sbx_init
nss_init

for tool in ldd nm objdump; do
	if ! command -v "$tool" >/dev/null; then
		tap_skip "the module's link surface" "$tool is not installed"
		tap_done
		exit
	fi
done

# --- what it links -------------------------------------------------------------------------
deps=$(ldd "$MODULE" | awk '{ print $1 }' | sed 's/\.so.*//' | sort -u | tr '\n' ' ')
diag "ldd: $deps"
extra=$(tr ' ' '\n' <<<"$deps" | grep -vE '^(linux-vdso|libc|/lib64/ld-linux-x86-64|/lib/ld-linux.*|ld-linux.*)$' |
	grep -v '^$')
if [ -n "$SAN_PRELOAD" ]; then
	# The sanitizer runtimes and what they need are expected there.
	extra=$(grep -vE '^(libasan|libubsan|libm|libgcc_s|libstdc\+\+)$' <<<"$extra")
fi
assert_eq "ldd: the module needs libc and nothing else" "" "$extra"
for heavy in jansson yaml ldap lber curl crypto ssl pam microhttpd; do
	if ldd "$MODULE" | grep -q "lib$heavy"; then
		tap_fail "does not load lib$heavy"
	else
		tap_ok "does not load lib$heavy"
	fi
done

# --- what it exports -------------------------------------------------------------------------
exported=$(nm -D --defined-only "$MODULE" | awk '$2 ~ /^[TDBRVWiu]$/ { print $3 }' | sort | tr '\n' ' ')
diag "exported: $exported"
assert_eq "exports exactly glibc's six entry points" \
	"_nss_sbx_endgrent _nss_sbx_getgrent_r _nss_sbx_getgrgid_r _nss_sbx_getgrnam_r _nss_sbx_initgroups_dyn _nss_sbx_setgrent " \
	"$exported"
soname=$(objdump -p "$MODULE" | awk '$1 == "SONAME" { print $2 }')
assert_eq "soname libnss_sbx.so.2" "libnss_sbx.so.2" "$soname"
assert_eq "no RPATH/RUNPATH" "" "$(objdump -p "$MODULE" | awk '$1 ~ /RPATH|RUNPATH/')"
assert_eq "no text relocations" "" "$(objdump -p "$MODULE" | awk '$1 == "TEXTREL"')"
if [ -n "$SAN_PRELOAD" ]; then
	# ASan intercepts libc, so the module's libc symbols lose their
	# version: check the names against what libc.so.6 defines instead.
	libc=$(ldd "$MODULE" | awk '$1 == "libc.so.6" { print $3 }')
	libc_syms=$(nm -D --defined-only "$libc" | awk '{ sub(/@.*/, "", $3); print $3 }' | sort -u)
	assert_eq "every undefined symbol is libc's or the sanitizer runtime's" "" \
		"$(nm -D --undefined-only "$MODULE" | awk '{ sub(/@.*/, "", $2); print $2 }' |
		   grep -vE '^(__gmon_start__|_ITM_.*|__cxa_finalize|__(asan|ubsan|sanitizer|lsan)_.*)$' |
		   sort -u | comm -23 - <(printf '%s\n' "$libc_syms"))"
else
	assert_eq "every undefined symbol is libc's (links with -z defs)" "" \
		"$(nm -D --undefined-only "$MODULE" | grep -vE '@GLIBC_|__gmon_start__|_ITM_|__cxa_finalize')"
fi

# --- the broker's marker -----------------------------------------------------------------------
# libtool may wrap the program; the real binary is then in .libs.
b="$BROKERD"
[ -x "$SBX_BUILDDIR/.libs/sbx-brokerd" ] && b="$SBX_BUILDDIR/.libs/sbx-brokerd"
assert_match "sbx-brokerd exports sbx_brokerd_nss_guard (the recursion guard)" \
	' sbx_brokerd_nss_guard$' "$(nm -D --defined-only "$b")"
for p in "$SBXCTL" "$SBXREQ"; do
	[ -x "$SBX_BUILDDIR/.libs/$(basename "$p")" ] && p="$SBX_BUILDDIR/.libs/$(basename "$p")"
	assert_eq "$(basename "$p") does not carry the marker" "" \
		"$(nm -D --defined-only "$p" 2>/dev/null | grep sbx_brokerd_nss_guard)"
done

tap_done
