#!/bin/bash
# What pam_sbx.so brings into sshd: it links libpam and libc and nothing
# heavy (no jansson, libyaml, libldap, libcurl, OpenSSL), exports only the
# pam_sm_* entry points, never calls exit, and is configured to install
# where the system's libpam looks for modules.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pam_lib.sh"
sbx_init
PAM_SO="$SBX_BUILDDIR/.libs/pam_sbx.so"
if [ ! -r "$PAM_SO" ]; then
	echo "Bail out! $PAM_SO is missing: build it first (make pam_sbx.la)"
	exit 1
fi

# Direct dependencies (DT_NEEDED): libpam and libc, plus the sanitizer
# runtimes in a --enable-sanitizers build.
needed=$(readelf -d "$PAM_SO" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' |
	grep -vE '^lib(asan|ubsan|stdc\+\+|m|gcc_s|dl|pthread|rt)\.so' | sort | tr '\n' ' ')
assert_eq "pam_sbx.so needs only libc and libpam" "libc.so.6 libpam.so.0 " "$needed"

# Everything ldd loads with it: nothing heavy, directly or indirectly.
libs=$(ldd "$PAM_SO")
heavy=$(printf '%s\n' "$libs" | grep -E 'jansson|yaml|ldap|lber|curl|crypto|ssl|microhttpd|sasl' || true)
assert_eq "ldd shows no jansson, yaml, ldap, curl, crypto or ssl" "" "$heavy"
diag "$libs"

exported=$(nm -D --defined-only "$PAM_SO" | awk '{print $3}' | sort | tr '\n' ' ')
assert_eq "only pam_sm_* symbols are exported" \
	"pam_sm_acct_mgmt pam_sm_authenticate pam_sm_close_session pam_sm_open_session pam_sm_setcred " \
	"$exported"

calls_exit=$(nm -D --undefined-only "$PAM_SO" | awk '{print $2}' | sed 's/@.*//' |
	grep -xE 'exit|_exit|_Exit|quick_exit|abort|daemon|fork|vfork|system|popen|sleep' || true)
assert_eq "the module never calls exit, abort, fork or sleep" "" "$calls_exit"

# The module loads and resolves: dlopen with RTLD_NOW via pamtester.
if command -v pamtester >/dev/null && ldconfig -p | grep -q libpam_wrapper; then
	pam_init
	pam_service sbx "socket=/nonexistent/sock"
	pt sbx alice acct_mgmt
	assert_rc "the module loads, and with no broker refuses (failmode secure)" 1
	assert_not_contains "no unresolved symbol" "$OUT$ERR" "undefined symbol"
else
	tap_skip "the module loads under pam_wrapper" "needs libpam-wrapper and pamtester"
fi

# Where `make install` puts it: the directory of the system's pam_unix.so
# (Debian's multiarch /lib/<triplet>/security) unless configured otherwise.
moddir=$(sed -n 's/^pammoddir = //p' "$SBX_BUILDDIR/Makefile")
unix=$(find /lib /usr/lib -maxdepth 3 -name pam_unix.so -path '*/security/*' 2>/dev/null | head -n 1)
case "$moddir" in
*'$'*) tap_skip "pammoddir is the system's PAM module directory" \
	"configured with --with-pammoddir=$moddir" ;;
*)
	if [ -z "$unix" ]; then
		tap_skip "pammoddir is the system's PAM module directory" "no pam_unix.so on this system"
	else
		# /lib may be a link to /usr/lib (merged /usr): compare real paths.
		assert_eq "pammoddir is the system's PAM module directory" \
			"$(readlink -f "$(dirname "$unix")")" "$(readlink -f "$moddir")"
	fi
	;;
esac

tap_done
