#!/bin/sh
# uninstall-guard.sh DESTDIR PAMMODDIR SBINDIR
#
# Run by every rule of `make uninstall` before it removes anything (as
# $(NORMAL_UNINSTALL)).  Refuses, saying what to do, while
#   - a file in DESTDIR/etc/pam.d still names this pam_sbx.so: without the
#     module every login through that file fails (sshd included), and
#   - sbx-brokerd runs from SBINDIR: it would run on from a deleted binary.
# Silent and exit 0 otherwise.
set -u

destdir=$1 pammoddir=$2 sbindir=$3
pamd="$destdir/etc/pam.d"

# A bare "pam_sbx.so" means this module only when it is installed where
# libpam looks for bare names; an absolute path names it exactly.
bare_is_ours() {
	case $1 in
	/lib/security | /lib/*/security | /lib64/security | \
	/usr/lib/security | /usr/lib/*/security | /usr/lib64/security) return 0 ;;
	esac
	return 1
}

# FILE:LINE: text of every PAM line (not a comment) naming our module.
pam_lines() {
	[ -d "$pamd" ] || return 0
	pattern="[[:space:]]$pammoddir/pam_sbx\\.so([[:space:]]|\$)"
	if bare_is_ours "$pammoddir"; then
		pattern="[[:space:]]($pammoddir/)?pam_sbx\\.so([[:space:]]|\$)"
	fi
	grep -HnE "$pattern" "$pamd"/* 2>/dev/null | grep -vE '^[^:]*:[0-9]+:[[:space:]]*#'
}

# Pids of sbx-brokerd processes running SBINDIR/sbx-brokerd.
brokers() {
	[ -z "$destdir" ] || return 0
	for exe in /proc/[0-9]*/exe; do
		[ "$(readlink "$exe" 2>/dev/null)" = "$sbindir/sbx-brokerd" ] || continue
		pid=${exe#/proc/}
		echo "${pid%/exe}"
	done
}

refused=0
lines=$(pam_lines)
if [ -n "$lines" ]; then
	echo "make uninstall: refusing: PAM still uses $pammoddir/pam_sbx.so, and without it" >&2
	echo "every login through these lines would fail (root's too):" >&2
	echo "$lines" | sed 's/^/  /' >&2
	echo "Remove those lines first (\`pam-auth-update --disable sbx\` if the sbx profile put" >&2
	echo "them there), then run make uninstall again." >&2
	refused=1
fi
pids=$(brokers | tr '\n' ' ')
if [ -n "$pids" ]; then
	echo "make uninstall: refusing: sbx-brokerd is running from $sbindir (pid $pids)." >&2
	echo "Stop it first: systemctl disable --now sbx-brokerd (or kill $pids)." >&2
	refused=1
fi
exit $refused
