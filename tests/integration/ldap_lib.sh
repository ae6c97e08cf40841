# shellcheck shell=bash
# A private slapd for the directory tests (source after lib.sh and
# sbx_init).
#
# slapd_setup writes a slapd.conf under $T/ldap (mdb backend; core, cosine,
# inetorgperson and nis schemas, plus tests/data/ldap/sbx-test.schema for
# the Slack id) and loads tests/data/ldap/people.ldif: the reference
# policy's people and groups, managers as DNs.  slapd_start runs it on
# 127.0.0.1 at a free high port ($LDAP_PORT, $LDAP_URI); slapd_stop stops
# it (the exit trap kills it too).  Nothing outside $T is touched.
#
# ldap_policy FILE [DIRECTORY-LINES...] writes the reference policy with
# its groups: and users: sections removed and a directory: section that
# binds as cn=sbx,ou=services,dc=example,dc=org (password in
# $LDAP_PWFILE); extra lines are appended to the section (indent them by
# two spaces).

# shellcheck disable=SC2034
LDAP_DATA="$SBX_SRCDIR/tests/data/ldap"
LDAP_DIR=
LDAP_PORT=
LDAP_URI=
LDAP_PID=
LDAP_PWFILE=
LDAP_PASSWORD=sbx-test-secret
LDAP_ADMIN_DN=cn=admin,dc=example,dc=org
LDAP_ADMIN_PW=admin-secret
LDAP_SBX_DN=cn=sbx,ou=services,dc=example,dc=org

# Skip the whole script (printing why) when slapd cannot run here.
ldap_require() {
	local b missing=

	for b in slapd slapadd slappasswd ldapsearch ldapmodify ldapadd python3; do
		command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing="$missing $b"
	done
	if [ -n "$missing" ]; then
		tap_skip "directory tests" "missing:$missing (apt-get install slapd ldap-utils python3)"
		tap_done
		exit 0
	fi
	if [ ! -r /etc/ldap/schema/nis.schema ]; then
		tap_skip "directory tests" "no /etc/ldap/schema/nis.schema (apt-get install slapd)"
		tap_done
		exit 0
	fi
	PATH="$PATH:/usr/sbin"
}

# A port nothing listens on now (the kernel's choice; it could be taken
# before slapd binds it, which slapd_start reports).
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# slapd_setup [EXTRA-SLAPD-CONF-LINES]: config and data, not started.
slapd_setup() {
	local extra=${1:-}

	LDAP_DIR="$T/ldap"
	mkdir -p "$LDAP_DIR/db"
	LDAP_PORT=$(free_port)
	LDAP_URI="ldap://127.0.0.1:$LDAP_PORT"
	cat >"$LDAP_DIR/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include $LDAP_DATA/sbx-test.schema
pidfile $LDAP_DIR/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
$extra
database mdb
maxsize 104857600
suffix "dc=example,dc=org"
rootdn "$LDAP_ADMIN_DN"
rootpw $(slappasswd -s "$LDAP_ADMIN_PW")
# sbx reads every person and group (in pages of 500): like a real
# directory's service account, it may read more than the default 500.
limits dn.exact="$LDAP_SBX_DN" size=unlimited
directory $LDAP_DIR/db
index objectClass,uid,memberUid,member eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
EOF
	sed "s|@SBX_PASSWORD_HASH@|$(slappasswd -s "$LDAP_PASSWORD")|" "$LDAP_DATA/people.ldif" \
		>"$LDAP_DIR/data.ldif"
	slapadd -q -f "$LDAP_DIR/slapd.conf" -l "$LDAP_DIR/data.ldif" >"$LDAP_DIR/slapadd.log" 2>&1 || {
		diag "slapadd failed:" "$(cat "$LDAP_DIR/slapadd.log")"
		return 1
	}
	LDAP_PWFILE="$T/ldap.pw"
	(umask 077 && printf '%s\n' "$LDAP_PASSWORD" >"$LDAP_PWFILE")
}

_slapd_answers() {
	ldapsearch -x -H "$LDAP_URI" -b dc=example,dc=org -s base dn >/dev/null 2>&1
}

# slapd_start [URLS]: start it (default: $LDAP_URI) and wait until it answers.
slapd_start() {
	local urls=${1:-$LDAP_URI/}

	slapd -f "$LDAP_DIR/slapd.conf" -h "$urls" >>"$LDAP_DIR/slapd.log" 2>&1 || {
		diag "slapd did not start:" "$(tail -n 5 "$LDAP_DIR/slapd.log")"
		return 1
	}
	wait_until 10 test -s "$LDAP_DIR/slapd.pid" || return 1
	LDAP_PID=$(cat "$LDAP_DIR/slapd.pid")
	track_pid "$LDAP_PID"
	wait_until 10 _slapd_answers
}

# slapd_stop: SIGINT and wait for it to go (it removes its pid file).
slapd_stop() {
	[ -n "$LDAP_PID" ] || return 0
	kill -CONT "$LDAP_PID" 2>/dev/null
	kill -INT "$LDAP_PID" 2>/dev/null
	wait_until 10 eval '[ ! -e "$LDAP_DIR/slapd.pid" ]'
	LDAP_PID=
}

# ldap_modify LDIF-TEXT: change the directory as its administrator.
ldap_modify() {
	printf '%s\n' "$1" | ldapmodify -x -H "$LDAP_URI" -D "$LDAP_ADMIN_DN" -w "$LDAP_ADMIN_PW" \
		>>"$LDAP_DIR/modify.log" 2>&1
}

ldap_add() {
	printf '%s\n' "$1" | ldapadd -x -H "$LDAP_URI" -D "$LDAP_ADMIN_DN" -w "$LDAP_ADMIN_PW" \
		>>"$LDAP_DIR/modify.log" 2>&1
}

# The reference policy without its own people: everything outside the
# groups: and users: sections, as the test's $POLICY has it.
policy_without_people() {
	awk '
		/^(groups|users):/ { skip = 1; next }
		/^[^ #]/ { skip = 0 }
		!skip { print }
	' "$POLICY"
}

# ldap_policy FILE [DIRECTORY-LINES...]
ldap_policy() {
	local file=$1 line

	shift
	{
		policy_without_people
		cat <<EOF
directory:
  uri: $LDAP_URI
  start_tls: false
  base: dc=example,dc=org
  bind_dn: $LDAP_SBX_DN
  bind_password_file: $LDAP_PWFILE
  user_search: { base: "ou=people,dc=example,dc=org", filter: "(objectClass=inetOrgPerson)" }
  group_search: { base: "ou=groups,dc=example,dc=org" }
  attributes: { slack_id: slackUserId }
EOF
		for line in "$@"; do
			printf '  %s\n' "$line"
		done
	} >"$file"
}

# Milliseconds since the epoch.
now_ms() { echo $(($(date +%s%N) / 1000000)); }
